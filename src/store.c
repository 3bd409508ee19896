/*
 * store.c - the LMDB store of one home (see store.h): the environment, its
 * sub-databases and schema check, transactions, keys, and the operations on
 * peers, names, entries, manifests and blocks with the block cache's LRU.
 *
 * Record byte layouts are store_codec.c's; keys are built here:
 *   peers      peer id (32)
 *   names      name bytes (1..32)
 *   entries    buddy id (32) | BLAKE2b-256(parent dir path) (32) | name
 *              (a directory's entries are one range; the full path is in
 *              the value, and LMDB keys stop at 511 bytes, so a parent path
 *              of up to 4 KiB cannot be in the key itself)
 *   manifests  manifest hash (32)
 *   blocks     block hash (32)
 *   lru        access tick, u64 big-endian (8) -> block hash (32)
 *   lru_hash   block hash (32) -> access tick (8)
 *   synced     the same key as entries -> what sync last agreed on
 *   meta       "schema" -> u32 big-endian; "cache_bytes" -> u64 big-endian
 *
 * A buddy's cached block keeps its bytes in a plain file,
 * HOME/cache/<2 hex>/<64 hex of the hash>, and only its record (kind
 * CACHED_FILE: the length) in LMDB; older records with the bytes inline
 * (kind CACHED) are still read.  A file is written under a temporary name
 * in its directory and renamed, never fsynced: after a machine crash a
 * record may name a missing or torn file.  A missing or short file reads as
 * "not cached"; a file this process did not write itself is checked
 * against its hash (BLAKE2b-256) the first time it is read, and the hashes
 * written or checked are kept in a small set in memory (cleared when full).
 * Files are unlinked when their record goes (eviction, delete, made local).
 *
 * Reads that touch the LRU (store_block_get) do not write: they queue the
 * hash in memory and the next write transaction begins by moving those
 * blocks to the young end (a full queue or store_close writes them too).  An LRU order lost in a
 * crash costs nothing but a worse eviction choice.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>
#include <sodium.h>

#include "buddyfs/buf.h"
#include "buddyfs/err.h"
#include "buddyfs/log.h"
#include "buddyfs/store.h"
#include "buddyfs/store_codec.h"

#define STORE_DBS_MAX 16
#define TOUCH_MAX 64
#define TICK_BYTES 8
#define DIR_KEY_BYTES (STORE_PEER_ID_BYTES + STORE_HASH_BYTES)
#define ENTRY_KEY_MAX_BYTES (DIR_KEY_BYTES + STORE_FILE_NAME_MAX)
#define VERIFIED_MIN 1024          /* slots of the verified set, a power of 2 */
#define VERIFIED_MAX 65536         /* 2 MiB of hashes; at half full it is cleared */
#define CACHE_NAME_BYTES (2 + 1 + 2 * STORE_HASH_BYTES + 1)          /* "ab/<hex>" */
#define CACHE_TMP_NAME_BYTES (CACHE_NAME_BYTES + 1 + 20 + 4)         /* + ".<pid>.tmp" */

static const char SCHEMA_KEY[] = "schema";
static const char CACHE_BYTES_KEY[] = "cache_bytes";

struct store_txn {
	struct store *s;
	MDB_txn *txn;
	int err;   /* the error that spoiled the transaction, or 0 */
	bool open;
};

struct store {
	MDB_env *env;
	MDB_dbi meta, peers, names, entries, manifests, blocks, lru, lru_hash, synced;
	MDB_txn *rtxn;          /* the read transaction, reset between uses */
	unsigned int rdepth;    /* nested users of rtxn (callbacks that read) */
	struct store_txn batch; /* the one store_txn */
	uint64_t lru_clock;     /* the last tick handed out */
	uint64_t cache_limit;
	size_t n_touch;
	uint8_t touch[TOUCH_MAX][STORE_HASH_BYTES];
	char cache_path[PATH_MAX]; /* HOME/cache */
	int cache_fd;              /* open on it, or -1 until first needed */
	uint8_t (*verified)[STORE_HASH_BYTES]; /* open addressing; zeros = empty */
	size_t n_verified, cap_verified;
};

/* mdb_to_err - the one map from LMDB's codes to ours. */
static int mdb_to_err(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_KEYEXIST:
		return -EEXIST;
	case MDB_MAP_FULL:
		return -ENOSPC;
	case MDB_TXN_FULL:
		return BFS_ETOOBIG;
	default:
		break;
	}
	if (rc > 0) /* LMDB passes system errors through as errno values */
		return -rc;
	log_warn("store: lmdb: %s", mdb_strerror(rc));
	return BFS_ESTORE;
}

static MDB_val val(const void *p, size_t n)
{
	MDB_val v = { .mv_size = n, .mv_data = (void *)p };

	return v;
}

static int db_get(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen, MDB_val *v)
{
	MDB_val key = val(k, klen);

	return mdb_to_err(mdb_get(txn, dbi, &key, v));
}

static int db_put(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen, const void *v, size_t vlen)
{
	MDB_val key = val(k, klen), data = val(v, vlen);

	return mdb_to_err(mdb_put(txn, dbi, &key, &data, 0));
}

static int db_del(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t klen)
{
	MDB_val key = val(k, klen);

	return mdb_to_err(mdb_del(txn, dbi, &key, NULL));
}

/* ---- the LRU of cached blocks ---- */

static int cache_bytes_get(struct store *s, MDB_txn *txn, uint64_t *bytes)
{
	MDB_val v;
	int rc = db_get(txn, s->meta, CACHE_BYTES_KEY, strlen(CACHE_BYTES_KEY), &v);

	*bytes = 0;
	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	if (v.mv_size == 8) /* else damaged: count from 0 again */
		*bytes = buf_load64_be(v.mv_data);
	return 0;
}

static int cache_bytes_put(struct store *s, MDB_txn *txn, uint64_t bytes)
{
	uint8_t b[8];

	buf_store64_be(b, bytes);
	return db_put(txn, s->meta, CACHE_BYTES_KEY, strlen(CACHE_BYTES_KEY), b, sizeof(b));
}

/* lru_tick_get - the tick of cached block @hash; -ENOENT if not cached. */
static int lru_tick_get(struct store *s, MDB_txn *txn, const uint8_t *hash, uint8_t tick[static TICK_BYTES])
{
	MDB_val v;
	int rc = db_get(txn, s->lru_hash, hash, STORE_HASH_BYTES, &v);

	if (rc)
		return rc;
	if (v.mv_size != TICK_BYTES)
		return BFS_EMALFORMED;
	memcpy(tick, v.mv_data, TICK_BYTES);
	return 0;
}

/* lru_unlink - delete lru[@tick] if it names @hash (a damaged index may not). */
static int lru_unlink(struct store *s, MDB_txn *txn, const uint8_t *tick, const uint8_t *hash)
{
	MDB_val v;
	int rc = db_get(txn, s->lru, tick, TICK_BYTES, &v);

	if (rc)
		return rc == -ENOENT ? 0 : rc;
	if (v.mv_size != STORE_HASH_BYTES || memcmp(v.mv_data, hash, STORE_HASH_BYTES) != 0)
		return 0;
	return db_del(txn, s->lru, tick, TICK_BYTES);
}

/* lru_set - give block @hash the newest tick, dropping its old one. */
static int lru_set(struct store *s, MDB_txn *txn, const uint8_t *hash)
{
	uint8_t tick[TICK_BYTES];
	MDB_val k = val(tick, TICK_BYTES), v = val(hash, STORE_HASH_BYTES);
	int rc = lru_tick_get(s, txn, hash, tick);

	if (rc == 0)
		rc = lru_unlink(s, txn, tick, hash);
	if (rc && rc != -ENOENT && rc != BFS_EMALFORMED)
		return rc;
	do { /* past any tick a damaged index left ahead of the clock */
		buf_store64_be(tick, ++s->lru_clock);
		rc = mdb_put(txn, s->lru, &k, &v, MDB_NOOVERWRITE);
	} while (rc == MDB_KEYEXIST);
	rc = mdb_to_err(rc);
	if (rc == 0)
		rc = db_put(txn, s->lru_hash, hash, STORE_HASH_BYTES, tick, TICK_BYTES);
	return rc;
}

/* lru_forget - drop block @hash from the LRU index (if it is there). */
static int lru_forget(struct store *s, MDB_txn *txn, const uint8_t *hash)
{
	uint8_t tick[TICK_BYTES];
	int rc = lru_tick_get(s, txn, hash, tick);

	if (rc == 0)
		rc = lru_unlink(s, txn, tick, hash);
	if (rc && rc != -ENOENT && rc != BFS_EMALFORMED)
		return rc;
	rc = db_del(txn, s->lru_hash, hash, STORE_HASH_BYTES);
	return rc == -ENOENT ? 0 : rc;
}

/* apply_touches - move the blocks read since the last write to the young end. */
static int apply_touches(struct store *s, MDB_txn *txn)
{
	uint8_t tick[TICK_BYTES];
	int rc;

	for (size_t i = 0; i < s->n_touch; i++) {
		rc = lru_tick_get(s, txn, s->touch[i], tick);
		if (rc == -ENOENT || rc == BFS_EMALFORMED)
			continue; /* evicted or made local meanwhile */
		if (rc == 0)
			rc = lru_set(s, txn, s->touch[i]);
		if (rc)
			return rc;
	}
	return 0;
}

/*
 * write_begin - a write transaction that starts by applying the queued LRU
 * uses, so that an eviction in it sees them.  When applying fails (a full
 * map) the uses are dropped and a clean transaction is begun.
 */
static int write_begin(struct store *s, MDB_txn **txn)
{
	int rc = mdb_to_err(mdb_txn_begin(s->env, NULL, 0, txn));

	if (rc || s->n_touch == 0)
		return rc;
	rc = apply_touches(s, *txn);
	s->n_touch = 0;
	if (rc == 0)
		return 0;
	log_debug("store: LRU update dropped: %s", bfs_strerror(rc));
	mdb_txn_abort(*txn);
	return mdb_to_err(mdb_txn_begin(s->env, NULL, 0, txn));
}

static void flush_touches(struct store *s)
{
	MDB_txn *txn;

	if (s->n_touch == 0 || s->batch.open || s->rdepth)
		return;
	if (write_begin(s, &txn) == 0 && mdb_txn_commit(txn) != 0)
		log_debug("store: LRU update dropped");
	s->n_touch = 0;
}

static void note_touch(struct store *s, const uint8_t *hash)
{
	if (s->n_touch && memcmp(s->touch[s->n_touch - 1], hash, STORE_HASH_BYTES) == 0)
		return;
	if (s->n_touch == TOUCH_MAX)
		flush_touches(s);
	if (s->n_touch == TOUCH_MAX)
		return; /* a transaction is open: this use is not recorded */
	memcpy(s->touch[s->n_touch++], hash, STORE_HASH_BYTES);
}

/* ---- operations: one transaction each, or a part of the caller's ---- */

struct op {
	struct store *s;
	struct store_txn *batch; /* the caller's transaction, or NULL */
	MDB_txn *txn;
	bool own;                /* op_end ends txn */
	bool write;
	bool dirty;              /* a write ran: a failure now spoils the batch */
};

/*
 * op_begin - the transaction for one call: the caller's @t, else (reads
 * only) the open store_txn, else a write transaction of its own or the
 * store's read transaction.
 */
static int op_begin(struct store *s, struct store_txn *t, bool write, struct op *op)
{
	int rc;

	memset(op, 0, sizeof(*op));
	op->s = s;
	op->write = write;
	if (t) {
		if (t != &s->batch || !t->open)
			return -EINVAL;
		if (t->err)
			return t->err;
		op->batch = t;
		op->txn = t->txn;
		return 0;
	}
	if (s->batch.open) {
		if (write)
			return -EBUSY;
		op->txn = s->batch.txn;
		return 0;
	}
	op->own = true;
	if (write)
		return write_begin(s, &op->txn);
	if (s->rdepth == 0) {
		if (s->rtxn)
			rc = mdb_txn_renew(s->rtxn);
		else
			rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->rtxn);
		if (rc)
			return mdb_to_err(rc);
	}
	s->rdepth++;
	op->txn = s->rtxn;
	return 0;
}

/* op_end - finish what op_begin started; returns @rc or the commit's error. */
static int op_end(struct op *op, int rc)
{
	struct store *s = op->s;

	if (!op->own) {
		if (op->batch && rc && op->dirty)
			op->batch->err = rc;
		return rc;
	}
	if (!op->write) {
		if (--s->rdepth == 0)
			mdb_txn_reset(s->rtxn);
		return rc;
	}
	if (rc) {
		mdb_txn_abort(op->txn);
		return rc;
	}
	return mdb_to_err(mdb_txn_commit(op->txn));
}

static int op_put(struct op *op, MDB_dbi dbi, const void *k, size_t klen, const void *v, size_t vlen)
{
	op->dirty = true;
	return db_put(op->txn, dbi, k, klen, v, vlen);
}

static int op_del(struct op *op, MDB_dbi dbi, const void *k, size_t klen)
{
	int rc = db_del(op->txn, dbi, k, klen);

	if (rc != -ENOENT)
		op->dirty = true;
	return rc;
}

/* ---- open, close, transactions ---- */

static int open_dbs(struct store *s, MDB_txn *txn)
{
	static const char *const names[] = {
		"peers", "names", "entries", "manifests", "blocks", "lru", "lru_hash", "synced",
	};
	MDB_dbi *dbis[] = {
		&s->peers, &s->names, &s->entries, &s->manifests, &s->blocks, &s->lru, &s->lru_hash,
		&s->synced,
	};
	int rc;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		rc = mdb_dbi_open(txn, names[i], MDB_CREATE, dbis[i]);
		if (rc)
			return mdb_to_err(rc);
	}
	return 0;
}

/* check_schema - write the schema version into a new store, check an old one's. */
static int check_schema(struct store *s, MDB_txn *txn, const char *path)
{
	uint8_t b[4];
	MDB_val v;
	int rc = db_get(txn, s->meta, SCHEMA_KEY, strlen(SCHEMA_KEY), &v);

	if (rc == -ENOENT) {
		buf_store32_be(b, STORE_SCHEMA_VERSION);
		return db_put(txn, s->meta, SCHEMA_KEY, strlen(SCHEMA_KEY), b, sizeof(b));
	}
	if (rc)
		return rc;
	if (v.mv_size != 4) {
		log_error("store %s: unreadable schema version (%zu bytes)", path, v.mv_size);
		return BFS_ESCHEMA;
	}
	if (buf_load32_be(v.mv_data) != STORE_SCHEMA_VERSION) {
		log_error("store %s: schema version %u, this buddyfs knows %u", path,
			  buf_load32_be(v.mv_data), STORE_SCHEMA_VERSION);
		return BFS_ESCHEMA;
	}
	return 0;
}

/* load_clock - the LRU clock resumes after the newest tick on disk. */
static int load_clock(struct store *s, MDB_txn *txn)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, s->lru, &c);

	if (rc)
		return mdb_to_err(rc);
	rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
	if (rc == 0 && k.mv_size == TICK_BYTES)
		s->lru_clock = buf_load64_be(k.mv_data);
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : mdb_to_err(rc);
}

/*
 * clear_dead_readers - free the reader slots of processes that died inside
 * a read transaction.  The slots live in the shared lock file: while any
 * other process (the daemon) keeps the store open, a stale one pins its
 * snapshot, so no page freed after it is ever reused and the map fills.
 */
static int clear_dead_readers(struct store *s, const char *path)
{
	int dead = 0, rc = mdb_reader_check(s->env, &dead);

	if (rc)
		return mdb_to_err(rc);
	if (dead)
		log_info("store %s: cleared %d reader slot(s) of dead processes", path, dead);
	return 0;
}

int store_open(struct store **out, const char *dir, size_t map_bytes)
{
	char path[PATH_MAX];
	struct store *s;
	MDB_txn *txn = NULL;
	int rc, n;

	*out = NULL;
	n = snprintf(path, sizeof(path), "%s/store", dir);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (sodium_init() < 0)
		return BFS_ECRYPTO;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cache_limit = STORE_BLOCK_CACHE_DEFAULT_BYTES;
	s->batch.s = s;
	s->cache_fd = -1;
	n = snprintf(s->cache_path, sizeof(s->cache_path), "%s/%s", dir, STORE_CACHE_DIR);
	if (n < 0 || (size_t)n >= sizeof(s->cache_path)) {
		free(s);
		return -ENAMETOOLONG;
	}
	rc = mdb_to_err(mdb_env_create(&s->env));
	if (rc)
		goto fail;
	rc = mdb_to_err(mdb_env_set_maxdbs(s->env, STORE_DBS_MAX));
	if (rc == 0)
		rc = mdb_to_err(mdb_env_set_mapsize(s->env, map_bytes ? map_bytes : STORE_MAP_DEFAULT_BYTES));
	if (rc == 0)
		rc = mdb_to_err(mdb_env_open(s->env, path, 0, 0600));
	if (rc == 0)
		rc = clear_dead_readers(s, path);
	if (rc == 0)
		rc = mdb_to_err(mdb_txn_begin(s->env, NULL, 0, &txn));
	if (rc)
		goto fail;
	rc = mdb_to_err(mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta));
	if (rc == 0)
		rc = check_schema(s, txn, path);
	if (rc == 0)
		rc = open_dbs(s, txn);
	if (rc == 0)
		rc = load_clock(s, txn);
	if (rc)
		goto fail;
	rc = mdb_to_err(mdb_txn_commit(txn));
	txn = NULL;
	if (rc)
		goto fail;
	*out = s;
	return 0;
fail:
	if (txn)
		mdb_txn_abort(txn);
	if (s->env)
		mdb_env_close(s->env);
	free(s);
	return rc;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	if (s->batch.open) {
		log_warn("store: closed with a transaction open; its changes are dropped");
		store_txn_abort(&s->batch);
	}
	s->rdepth = 0;
	flush_touches(s);
	if (s->rtxn)
		mdb_txn_abort(s->rtxn);
	mdb_env_close(s->env);
	if (s->cache_fd >= 0)
		close(s->cache_fd);
	free(s->verified);
	free(s);
}

int store_txn_begin(struct store *s, struct store_txn **out)
{
	int rc;

	*out = NULL;
	if (s->batch.open || s->rdepth)
		return -EBUSY;
	rc = write_begin(s, &s->batch.txn);
	if (rc)
		return rc;
	s->batch.open = true;
	s->batch.err = 0;
	*out = &s->batch;
	return 0;
}

int store_txn_commit(struct store_txn *t)
{
	int rc = t->err;

	t->open = false;
	if (rc) {
		mdb_txn_abort(t->txn);
		t->txn = NULL;
		return rc;
	}
	rc = mdb_to_err(mdb_txn_commit(t->txn));
	t->txn = NULL;
	return rc;
}

int store_txn_commit_cache(struct store_txn *t)
{
	MDB_env *env = t->txn ? mdb_txn_env(t->txn) : NULL;
	int rc;

	if (env)
		mdb_env_set_flags(env, MDB_NOMETASYNC, 1);
	rc = store_txn_commit(t);
	if (env)
		mdb_env_set_flags(env, MDB_NOMETASYNC, 0);
	return rc;
}

void store_txn_abort(struct store_txn *t)
{
	if (!t || !t->open)
		return;
	mdb_txn_abort(t->txn);
	t->txn = NULL;
	t->open = false;
}

/* ---- peers and names ---- */

static int peer_read(struct store *s, MDB_txn *txn, const uint8_t *id, struct store_peer *out)
{
	MDB_val v;
	int rc = db_get(txn, s->peers, id, STORE_PEER_ID_BYTES, &v);

	if (rc)
		return rc;
	rc = store_peer_decode(out, v.mv_data, v.mv_size);
	if (rc == 0 && sodium_memcmp(out->id, id, STORE_PEER_ID_BYTES) != 0)
		rc = BFS_EMALFORMED; /* a record under another peer's key */
	return rc;
}

/* name_read - the peer id names[@name] points at. */
static int name_read(struct store *s, MDB_txn *txn, const char *name, uint8_t id[static STORE_PEER_ID_BYTES])
{
	MDB_val v;
	int rc = db_get(txn, s->names, name, strlen(name), &v);

	return rc ? rc : store_name_decode(id, v.mv_data, v.mv_size);
}

/* name_drop - remove names[@name] if it points at @id. */
static int name_drop(struct op *op, const char *name, const uint8_t *id)
{
	uint8_t owner[STORE_PEER_ID_BYTES];
	int rc;

	if (!name[0])
		return 0;
	rc = name_read(op->s, op->txn, name, owner);
	if (rc == -ENOENT)
		return 0;
	if (rc == 0 && sodium_memcmp(owner, id, STORE_PEER_ID_BYTES) != 0)
		return 0;
	rc = op_del(op, op->s->names, name, strlen(name)); /* ours, or damaged */
	return rc == -ENOENT ? 0 : rc;
}

int store_peer_put(struct store *s, const struct store_peer *p)
{
	return store_peer_put_txn(s, NULL, p);
}

int store_peer_put_txn(struct store *s, struct store_txn *t, const struct store_peer *p)
{
	uint8_t rec[STORE_PEER_RECORD_MAX_BYTES], name_rec[STORE_NAME_RECORD_BYTES];
	uint8_t owner[STORE_PEER_ID_BYTES];
	struct store_peer *old;
	struct op op;
	long len;
	int rc;

	len = store_peer_encode(rec, sizeof(rec), p);
	if (len < 0)
		return (int)len;
	store_name_encode(name_rec, sizeof(name_rec), p->id);
	old = malloc(sizeof(*old));
	if (!old)
		return -ENOMEM;
	rc = op_begin(s, t, true, &op);
	if (rc)
		goto out;
	if (p->name[0]) {
		rc = name_read(s, op.txn, p->name, owner);
		if (rc == 0 && sodium_memcmp(owner, p->id, STORE_PEER_ID_BYTES) != 0)
			rc = -EEXIST;
		if (rc == -ENOENT || rc == BFS_EMALFORMED || rc == BFS_EVERSION)
			rc = 0; /* free, or a damaged name record that we replace */
		if (rc)
			goto end;
	}
	rc = peer_read(s, op.txn, p->id, old);
	if (rc == 0 && strcmp(old->name, p->name) != 0)
		rc = name_drop(&op, old->name, p->id);
	else if (rc == -ENOENT || rc == BFS_EMALFORMED || rc == BFS_EVERSION)
		rc = 0;
	if (rc == 0 && p->name[0])
		rc = op_put(&op, s->names, p->name, strlen(p->name), name_rec, sizeof(name_rec));
	if (rc == 0)
		rc = op_put(&op, s->peers, p->id, STORE_PEER_ID_BYTES, rec, (size_t)len);
end:
	rc = op_end(&op, rc);
out:
	free(old);
	return rc;
}

int store_peer_get(struct store *s, const uint8_t id[static STORE_PEER_ID_BYTES], struct store_peer *out)
{
	struct op op;
	int rc = op_begin(s, NULL, false, &op);

	if (rc)
		return rc;
	return op_end(&op, peer_read(s, op.txn, id, out));
}

int store_peer_by_name(struct store *s, const char *name, struct store_peer *out)
{
	uint8_t id[STORE_PEER_ID_BYTES];
	struct op op;
	int rc;

	if (!name[0] || strlen(name) > STORE_NAME_MAX)
		return -ENOENT;
	rc = op_begin(s, NULL, false, &op);
	if (rc)
		return rc;
	rc = name_read(s, op.txn, name, id);
	if (rc == 0)
		rc = peer_read(s, op.txn, id, out);
	if (rc == 0 && strcmp(out->name, name) != 0)
		rc = -ENOENT; /* a stale name: the peer goes by another now */
	return op_end(&op, rc);
}

int store_peer_del(struct store *s, const uint8_t id[static STORE_PEER_ID_BYTES])
{
	struct store_peer *old = malloc(sizeof(*old));
	struct op op;
	int rc;

	if (!old)
		return -ENOMEM;
	rc = op_begin(s, NULL, true, &op);
	if (rc)
		goto out;
	rc = peer_read(s, op.txn, id, old);
	if (rc == 0)
		rc = name_drop(&op, old->name, id);
	else if (rc == BFS_EMALFORMED || rc == BFS_EVERSION)
		rc = 0; /* remove a damaged record all the same */
	if (rc == 0)
		rc = op_del(&op, s->peers, id, STORE_PEER_ID_BYTES);
	rc = op_end(&op, rc);
out:
	free(old);
	return rc;
}

int store_peer_foreach(struct store *s, int (*fn)(void *ctx, const struct store_peer *p), void *ctx)
{
	struct store_peer *p = malloc(sizeof(*p));
	MDB_cursor *c = NULL;
	MDB_val k, v;
	struct op op;
	int rc, mrc;

	if (!p)
		return -ENOMEM;
	rc = op_begin(s, NULL, false, &op);
	if (rc)
		goto out;
	rc = mdb_to_err(mdb_cursor_open(op.txn, s->peers, &c));
	for (mrc = rc ? MDB_NOTFOUND : mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && mrc == 0;
	     mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		rc = store_peer_decode(p, v.mv_data, v.mv_size);
		if (rc == 0 && (k.mv_size != STORE_PEER_ID_BYTES || memcmp(k.mv_data, p->id, k.mv_size)))
			rc = BFS_EMALFORMED;
		if (rc == 0)
			rc = fn(ctx, p);
	}
	if (rc == 0 && mrc != MDB_NOTFOUND)
		rc = mdb_to_err(mrc);
	if (c)
		mdb_cursor_close(c);
	rc = op_end(&op, rc);
out:
	free(p);
	return rc;
}

/* ---- entries ---- */

/* dir_key - buddy id | BLAKE2b-256(dir path): the prefix of a directory's entries. */
static void dir_key(uint8_t key[static DIR_KEY_BYTES], const uint8_t *buddy, const char *dir, size_t dir_len)
{
	memcpy(key, buddy, STORE_PEER_ID_BYTES);
	crypto_generichash(key + STORE_PEER_ID_BYTES, STORE_HASH_BYTES, (const unsigned char *)dir, dir_len,
			   NULL, 0);
}

/* entry_key - the key of a checked @path in @buddy's folder; returns its length. */
static size_t entry_key(uint8_t key[static ENTRY_KEY_MAX_BYTES], const uint8_t *buddy, const char *path)
{
	const char *name;
	size_t parent_len, name_len;

	store_path_split(path, &parent_len, &name);
	name_len = strlen(name);
	dir_key(key, buddy, path, parent_len);
	memcpy(key + DIR_KEY_BYTES, name, name_len);
	return DIR_KEY_BYTES + name_len;
}

/* entry_from - decode an entries record and check it belongs under its key. */
static int entry_from(struct store_entry *e, const MDB_val *k, const MDB_val *v)
{
	uint8_t key[ENTRY_KEY_MAX_BYTES];
	int rc = store_entry_decode(e, v->mv_data, v->mv_size);

	if (rc)
		return rc;
	if (k->mv_size < STORE_PEER_ID_BYTES)
		return BFS_EMALFORMED;
	memcpy(e->buddy, k->mv_data, STORE_PEER_ID_BYTES);
	if (entry_key(key, e->buddy, e->path) != k->mv_size || memcmp(key, k->mv_data, k->mv_size) != 0)
		return BFS_EMALFORMED;
	return 0;
}

/* ---- records keyed by buddy and path (entries, synced) ---- */

/* path_decode_fn - decode the record @v found under key @k into @out. */
typedef int (*path_decode_fn)(void *out, const MDB_val *k, const MDB_val *v);

/* path_put - store @len bytes of @rec under @buddy's @path in @dbi; the caller has checked @path. */
static int path_put(struct store *s, struct store_txn *t, MDB_dbi dbi, const uint8_t *buddy, const char *path,
		    const void *rec, size_t len)
{
	uint8_t key[ENTRY_KEY_MAX_BYTES];
	size_t klen = entry_key(key, buddy, path);
	struct op op;
	int rc;

	rc = op_begin(s, t, true, &op);
	if (rc)
		return rc;
	return op_end(&op, op_put(&op, dbi, key, klen, rec, len));
}

/* path_get - check @path, find @buddy's record for it in @dbi and @decode it into @out. */
static int path_get(struct store *s, struct store_txn *t, MDB_dbi dbi, const uint8_t *buddy, const char *path,
		    path_decode_fn decode, void *out)
{
	uint8_t key[ENTRY_KEY_MAX_BYTES];
	MDB_val k, v;
	struct op op;
	int rc;

	rc = store_path_check(path);
	if (rc)
		return rc;
	k = val(key, entry_key(key, buddy, path));
	rc = op_begin(s, t, false, &op);
	if (rc)
		return rc;
	rc = mdb_to_err(mdb_get(op.txn, dbi, &k, &v));
	if (rc == 0)
		rc = decode(out, &k, &v);
	return op_end(&op, rc);
}

/* path_del - check @path and delete @buddy's record for it from @dbi. */
static int path_del(struct store *s, struct store_txn *t, MDB_dbi dbi, const uint8_t *buddy, const char *path)
{
	uint8_t key[ENTRY_KEY_MAX_BYTES];
	size_t klen;
	struct op op;
	int rc;

	rc = store_path_check(path);
	if (rc)
		return rc;
	klen = entry_key(key, buddy, path);
	rc = op_begin(s, t, true, &op);
	if (rc)
		return rc;
	return op_end(&op, op_del(&op, dbi, key, klen));
}

static int entry_decode(void *out, const MDB_val *k, const MDB_val *v)
{
	return entry_from(out, k, v);
}

int store_entry_put(struct store *s, struct store_txn *t, const struct store_entry *e)
{
	uint8_t rec[STORE_ENTRY_RECORD_MAX_BYTES];
	long len;
	int rc;

	rc = store_entry_check(e);
	if (rc)
		return rc;
	len = store_entry_encode(rec, sizeof(rec), e);
	if (len < 0)
		return (int)len;
	return path_put(s, t, s->entries, e->buddy, e->path, rec, (size_t)len);
}

int store_entry_get(struct store *s, struct store_txn *t, const uint8_t buddy[static STORE_PEER_ID_BYTES],
		    const char *path, struct store_entry *out)
{
	return path_get(s, t, s->entries, buddy, path, entry_decode, out);
}

int store_entry_del(struct store *s, struct store_txn *t, const uint8_t buddy[static STORE_PEER_ID_BYTES],
		    const char *path)
{
	return path_del(s, t, s->entries, buddy, path);
}

/* walk - call @fn for the entries whose keys start with @prefix, from @start. */
static int walk(struct store *s, struct store_txn *t, const uint8_t *prefix, size_t prefix_len,
		const uint8_t *start, size_t start_len, bool skip_start, store_entry_fn fn, void *ctx)
{
	struct store_entry *e = malloc(sizeof(*e));
	MDB_cursor *c = NULL;
	MDB_val k = val(start, start_len), v;
	struct op op;
	int rc, mrc;

	if (!e)
		return -ENOMEM;
	rc = op_begin(s, t, false, &op);
	if (rc)
		goto out;
	rc = mdb_to_err(mdb_cursor_open(op.txn, s->entries, &c));
	if (rc)
		goto end;
	mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	if (mrc == 0 && skip_start && k.mv_size == start_len && memcmp(k.mv_data, start, start_len) == 0)
		mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	for (; mrc == 0; mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size < prefix_len || memcmp(k.mv_data, prefix, prefix_len) != 0)
			break;
		rc = entry_from(e, &k, &v);
		if (rc == 0)
			rc = fn(ctx, e);
		if (rc)
			break;
	}
	if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND)
		rc = mdb_to_err(mrc);
end:
	if (c)
		mdb_cursor_close(c);
	rc = op_end(&op, rc);
out:
	free(e);
	return rc;
}

int store_entry_list(struct store *s, struct store_txn *t, const uint8_t buddy[static STORE_PEER_ID_BYTES],
		     const char *dir, const char *after, store_entry_fn fn, void *ctx)
{
	uint8_t start[ENTRY_KEY_MAX_BYTES];
	size_t after_len = 0;

	if (dir[0] && store_path_check(dir))
		return BFS_EBADNAME;
	if (after) {
		after_len = strnlen(after, STORE_FILE_NAME_MAX + 1);
		if (strchr(after, '/') || store_path_check(after))
			return BFS_EBADNAME;
		memcpy(start + DIR_KEY_BYTES, after, after_len);
	}
	dir_key(start, buddy, dir, strlen(dir));
	return walk(s, t, start, DIR_KEY_BYTES, start, DIR_KEY_BYTES + after_len, after != NULL, fn, ctx);
}

int store_entry_foreach(struct store *s, struct store_txn *t, const uint8_t buddy[static STORE_PEER_ID_BYTES],
			store_entry_fn fn, void *ctx)
{
	return walk(s, t, buddy, STORE_PEER_ID_BYTES, buddy, STORE_PEER_ID_BYTES, false, fn, ctx);
}

/* ---- synced records ---- */

static int synced_decode(void *out, const MDB_val *k, const MDB_val *v)
{
	(void)k;
	return store_synced_decode(out, v->mv_data, v->mv_size);
}

int store_synced_put(struct store *s, struct store_txn *t, const uint8_t buddy[static STORE_PEER_ID_BYTES],
		     const char *path, const struct store_synced *v)
{
	uint8_t rec[STORE_SYNCED_RECORD_BYTES];
	int rc = store_path_check(path);

	if (rc)
		return rc;
	store_synced_encode(rec, sizeof(rec), v);
	return path_put(s, t, s->synced, buddy, path, rec, sizeof(rec));
}

int store_synced_get(struct store *s, struct store_txn *t, const uint8_t buddy[static STORE_PEER_ID_BYTES],
		     const char *path, struct store_synced *out)
{
	return path_get(s, t, s->synced, buddy, path, synced_decode, out);
}

int store_synced_del(struct store *s, struct store_txn *t, const uint8_t buddy[static STORE_PEER_ID_BYTES],
		     const char *path)
{
	return path_del(s, t, s->synced, buddy, path);
}

/* ---- manifests ---- */

int store_manifest_put(struct store *s, struct store_txn *t, const uint8_t hash[static STORE_HASH_BYTES],
		       const uint8_t *bytes, size_t len)
{
	struct op op;
	int rc;

	if (len == 0)
		return -EINVAL;
	if (len > STORE_MANIFEST_MAX_BYTES)
		return BFS_ETOOBIG;
	rc = op_begin(s, t, true, &op);
	if (rc)
		return rc;
	return op_end(&op, op_put(&op, s->manifests, hash, STORE_HASH_BYTES, bytes, len));
}

int store_manifest_get(struct store *s, struct store_txn *t, const uint8_t hash[static STORE_HASH_BYTES],
		       uint8_t **out, size_t *len)
{
	MDB_val v;
	struct op op;
	int rc;

	*out = NULL;
	*len = 0;
	rc = op_begin(s, t, false, &op);
	if (rc)
		return rc;
	rc = db_get(op.txn, s->manifests, hash, STORE_HASH_BYTES, &v);
	if (rc == 0 && (v.mv_size == 0 || v.mv_size > STORE_MANIFEST_MAX_BYTES))
		rc = BFS_EMALFORMED;
	if (rc == 0) {
		*out = malloc(v.mv_size);
		if (*out) {
			memcpy(*out, v.mv_data, v.mv_size);
			*len = v.mv_size;
		} else {
			rc = -ENOMEM;
		}
	}
	return op_end(&op, rc);
}

int store_manifest_del(struct store *s, struct store_txn *t, const uint8_t hash[static STORE_HASH_BYTES])
{
	struct op op;
	int rc = op_begin(s, t, true, &op);

	if (rc)
		return rc;
	return op_end(&op, op_del(&op, s->manifests, hash, STORE_HASH_BYTES));
}

/* ---- the cache files of file-backed cached blocks ---- */

/* verified_slot - where @hash is in the verified set, or the empty slot it would take. */
static size_t verified_slot(uint8_t (*set)[STORE_HASH_BYTES], size_t cap, const uint8_t *hash)
{
	static const uint8_t zero[STORE_HASH_BYTES];
	size_t i = (size_t)buf_load64_be(hash) & (cap - 1);

	while (memcmp(set[i], hash, STORE_HASH_BYTES) != 0 && memcmp(set[i], zero, STORE_HASH_BYTES) != 0)
		i = (i + 1) & (cap - 1);
	return i;
}

static bool verified_has(const struct store *s, const uint8_t *hash)
{
	if (!s->verified)
		return false;
	return memcmp(s->verified[verified_slot(s->verified, s->cap_verified, hash)], hash, STORE_HASH_BYTES) == 0;
}

/*
 * verified_add - remember that the cache file of @hash holds the right
 * bytes.  A lost entry (no memory, an all-zero hash) only costs a check.
 */
static void verified_add(struct store *s, const uint8_t *hash)
{
	static const uint8_t zero[STORE_HASH_BYTES];
	uint8_t (*set)[STORE_HASH_BYTES];
	size_t cap, i;

	if (memcmp(hash, zero, STORE_HASH_BYTES) == 0 || verified_has(s, hash))
		return;
	if (s->n_verified + 1 > s->cap_verified / 2) {
		cap = s->cap_verified ? s->cap_verified * 2 : VERIFIED_MIN;
		if (cap > VERIFIED_MAX) { /* full: start again (blocks are checked again) */
			memset(s->verified, 0, s->cap_verified * STORE_HASH_BYTES);
			s->n_verified = 0;
		} else {
			set = calloc(cap, STORE_HASH_BYTES);
			if (!set)
				return;
			for (i = 0; i < s->cap_verified; i++)
				if (memcmp(s->verified[i], zero, STORE_HASH_BYTES) != 0)
					memcpy(set[verified_slot(set, cap, s->verified[i])], s->verified[i],
					       STORE_HASH_BYTES);
			free(s->verified);
			s->verified = set;
			s->cap_verified = cap;
		}
	}
	memcpy(s->verified[verified_slot(s->verified, s->cap_verified, hash)], hash, STORE_HASH_BYTES);
	s->n_verified++;
}

/* cache_name - "ab/<64 hex>": the cache file of @hash, relative to HOME/cache. */
static void cache_name(char out[static CACHE_NAME_BYTES], const uint8_t *hash)
{
	sodium_bin2hex(out + 3, 2 * STORE_HASH_BYTES + 1, hash, STORE_HASH_BYTES);
	out[0] = out[3];
	out[1] = out[4];
	out[2] = '/';
}

/* cache_dir - the open cache directory, made first when @create; -ENOENT if none. */
static int cache_dir(struct store *s, bool create)
{
	if (s->cache_fd >= 0)
		return s->cache_fd;
	if (create && mkdir(s->cache_path, 0700) < 0 && errno != EEXIST)
		return -errno;
	s->cache_fd = open(s->cache_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return s->cache_fd >= 0 ? s->cache_fd : -errno;
}

/* cache_file_write - @len bytes of @data into @hash's file (temp + rename). */
static int cache_file_write(struct store *s, const uint8_t *hash, const uint8_t *data, size_t len)
{
	char name[CACHE_NAME_BYTES], tmp[CACHE_TMP_NAME_BYTES];
	int dfd = cache_dir(s, true), fd, rc = 0;
	size_t done = 0;
	ssize_t n;

	if (dfd < 0)
		return dfd;
	cache_name(name, hash);
	snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", name, (long)getpid());
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ENOENT) {
		name[2] = '\0';
		if (mkdirat(dfd, name, 0700) < 0 && errno != EEXIST)
			return -errno;
		name[2] = '/';
		fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	}
	if (fd < 0)
		return -errno;
	while (rc == 0 && done < len) {
		n = write(fd, data + done, len - done);
		if (n < 0 && errno != EINTR)
			rc = -errno;
		else if (n > 0)
			done += (size_t)n;
	}
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && renameat(dfd, tmp, dfd, name) < 0)
		rc = -errno;
	if (rc) {
		unlinkat(dfd, tmp, 0);
		log_warn("store: cannot write cache file %s: %s", name, bfs_strerror(rc));
		return rc;
	}
	verified_add(s, hash);
	return 0;
}

/* stale_tmp - @name is "<64 hex>.<pid>.tmp" of a process that is not running. */
static bool stale_tmp(const char *name)
{
	const char *dot = strchr(name, '.');
	char *end;
	long pid;

	if (!dot || dot - name != 2 * STORE_HASH_BYTES)
		return false;
	errno = 0;
	pid = strtol(dot + 1, &end, 10);
	if (errno || pid <= 0 || pid > INT_MAX || strcmp(end, ".tmp") != 0)
		return false;
	return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

long store_cache_sweep(struct store *s)
{
	int dfd = cache_dir(s, false);
	long removed = 0;

	if (dfd == -ENOENT)
		return 0;
	if (dfd < 0)
		return dfd;
	for (unsigned i = 0; i < 256; i++) {
		char sub[3];
		struct dirent *de;
		DIR *d;
		int fd;

		snprintf(sub, sizeof(sub), "%02x", i);
		fd = openat(dfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			continue; /* no block of this prefix yet */
		d = fdopendir(fd);
		if (!d) {
			close(fd);
			continue;
		}
		while ((de = readdir(d)))
			if (stale_tmp(de->d_name) && unlinkat(fd, de->d_name, 0) == 0)
				removed++;
		closedir(d);
	}
	if (removed)
		log_info("store: removed %ld cache file(s) a crashed process left half written", removed);
	return removed;
}

/* cache_file_unlink - remove @hash's file (gone already is fine). */
static void cache_file_unlink(struct store *s, const uint8_t *hash)
{
	char name[CACHE_NAME_BYTES];
	int dfd = cache_dir(s, false);

	if (dfd < 0)
		return;
	cache_name(name, hash);
	if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
		log_warn("store: cannot remove cache file %s: %s", name, strerror(errno));
}

/*
 * cache_file_read - the @len bytes of @hash's file into @buf (NULL: only
 * check that it is there and @len bytes long).  A missing, short or (first
 * read in this process) wrong file is -ENOENT; a wrong one is removed.
 */
static int cache_file_read(struct store *s, const uint8_t *hash, uint8_t *buf, size_t len)
{
	char name[CACHE_NAME_BYTES];
	uint8_t sum[STORE_HASH_BYTES];
	int dfd = cache_dir(s, false), fd, rc = 0;
	struct stat st;
	size_t done = 0;
	ssize_t n;

	if (dfd < 0)
		return dfd == -ENOENT ? -ENOENT : -EIO;
	cache_name(name, hash);
	if (!buf) {
		if (fstatat(dfd, name, &st, 0) < 0)
			return errno == ENOENT ? -ENOENT : -EIO;
		return st.st_size == (off_t)len ? 0 : -ENOENT;
	}
	fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ENOENT : -EIO;
	while (rc == 0 && done < len) {
		n = pread(fd, buf + done, len - done, (off_t)done);
		if (n < 0 && errno != EINTR)
			rc = -EIO;
		else if (n == 0)
			rc = -ENOENT; /* short: torn */
		else if (n > 0)
			done += (size_t)n;
	}
	close(fd);
	if (rc || verified_has(s, hash))
		return rc;
	crypto_generichash(sum, sizeof(sum), buf, len, NULL, 0);
	if (sodium_memcmp(sum, hash, sizeof(sum)) != 0) {
		log_warn("store: cache file %s does not match its hash; dropped", name);
		unlinkat(dfd, name, 0);
		return -ENOENT;
	}
	verified_add(s, hash);
	return 0;
}

/* ---- blocks ---- */

/* block_read - decode the record of @hash (data borrowed from the txn). */
static int block_read(struct store *s, MDB_txn *txn, const uint8_t *hash, struct store_block *out)
{
	MDB_val v;
	int rc = db_get(txn, s->blocks, hash, STORE_HASH_BYTES, &v);

	return rc ? rc : store_block_decode(out, v.mv_data, v.mv_size);
}

/* cache_bytes_sub - take @n from the cache's byte count (never below 0). */
static int cache_bytes_sub(struct store *s, MDB_txn *txn, uint64_t n)
{
	uint64_t bytes;
	int rc = cache_bytes_get(s, txn, &bytes);

	return rc ? rc : cache_bytes_put(s, txn, bytes - (n < bytes ? n : bytes));
}

/*
 * uncache - if @hash is a cached block, drop it from the LRU and the byte
 * count, and remove its cache file.
 */
static int uncache(struct op *op, const uint8_t *hash)
{
	struct store *s = op->s;
	struct store_block b;
	int rc = block_read(s, op->txn, hash, &b);

	if (rc == -ENOENT || rc == BFS_EMALFORMED || rc == BFS_EVERSION)
		return 0;
	if (rc || (b.kind != STORE_BLOCK_CACHED && b.kind != STORE_BLOCK_CACHED_FILE))
		return rc;
	op->dirty = true;
	rc = lru_forget(s, op->txn, hash);
	if (rc == 0)
		rc = cache_bytes_sub(s, op->txn, b.length);
	if (rc == 0 && b.kind == STORE_BLOCK_CACHED_FILE)
		cache_file_unlink(s, hash); /* the caller drops or replaces the record */
	return rc;
}

/*
 * evict_oldest - drop the oldest entry of the LRU index and, when it is
 * the block's own position there, the cached block too.  Each call removes
 * one index entry (so a loop of calls ends, whatever the damage).  Returns
 * 0, or -ENOENT when the index is empty.
 */
static int evict_oldest(struct op *op)
{
	uint8_t hash[STORE_HASH_BYTES], tick[TICK_BYTES], cur[TICK_BYTES];
	struct store *s = op->s;
	struct store_block b;
	bool valid, cached, damaged;
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	rc = mdb_to_err(mdb_cursor_open(op->txn, s->lru, &c));
	if (rc)
		return rc;
	rc = mdb_to_err(mdb_cursor_get(c, &k, &v, MDB_FIRST));
	valid = rc == 0 && k.mv_size == TICK_BYTES && v.mv_size == STORE_HASH_BYTES;
	if (valid) {
		memcpy(tick, k.mv_data, TICK_BYTES);
		memcpy(hash, v.mv_data, STORE_HASH_BYTES);
	}
	if (rc == 0) {
		op->dirty = true;
		rc = mdb_to_err(mdb_cursor_del(c, 0));
	}
	mdb_cursor_close(c);
	if (rc || !valid)
		return rc;
	rc = lru_tick_get(s, op->txn, hash, cur);
	if (rc == 0 && memcmp(cur, tick, TICK_BYTES) != 0)
		return 0; /* a stale entry: the block sits younger in the index */
	if (rc != -ENOENT) {
		if (rc && rc != BFS_EMALFORMED)
			return rc;
		rc = db_del(op->txn, s->lru_hash, hash, STORE_HASH_BYTES);
		if (rc && rc != -ENOENT)
			return rc;
	}
	rc = block_read(s, op->txn, hash, &b);
	if (rc && rc != -ENOENT && rc != BFS_EMALFORMED && rc != BFS_EVERSION)
		return rc;
	cached = rc == 0 && (b.kind == STORE_BLOCK_CACHED || b.kind == STORE_BLOCK_CACHED_FILE);
	damaged = rc == BFS_EMALFORMED || rc == BFS_EVERSION;
	rc = 0;
	if (cached)
		rc = cache_bytes_sub(s, op->txn, b.length);
	if (rc == 0 && (cached || damaged))
		rc = db_del(op->txn, s->blocks, hash, STORE_HASH_BYTES);
	if (rc == 0 && cached && b.kind == STORE_BLOCK_CACHED_FILE)
		cache_file_unlink(s, hash);
	return rc;
}

int store_block_cache_put(struct store *s, struct store_txn *t, const uint8_t hash[static STORE_HASH_BYTES],
			  const uint8_t *data, size_t len)
{
	uint8_t rec[STORE_BLOCK_CACHED_FILE_RECORD_BYTES];
	struct store_block old, b = { .kind = STORE_BLOCK_CACHED_FILE, .length = (uint32_t)len };
	uint64_t bytes;
	struct op op;
	long n;
	int rc;

	if (len == 0)
		return -EINVAL;
	if (len > STORE_BLOCK_MAX_BYTES || len > s->cache_limit)
		return BFS_ETOOBIG;
	rc = op_begin(s, t, true, &op);
	if (rc)
		return rc;
	rc = block_read(s, op.txn, hash, &old);
	if (rc == 0) {
		if (old.kind == STORE_BLOCK_CACHED_FILE && old.length == len)
			rc = cache_file_write(s, hash, data, len); /* it may be missing or torn */
		if (rc == 0 && (old.kind == STORE_BLOCK_CACHED || old.kind == STORE_BLOCK_CACHED_FILE)) {
			op.dirty = true;
			rc = lru_set(s, op.txn, hash); /* already here: counts as used */
		}
		goto end;
	}
	if (rc != -ENOENT && rc != BFS_EMALFORMED && rc != BFS_EVERSION)
		goto end; /* (a damaged record is replaced) */
	rc = cache_bytes_get(s, op.txn, &bytes);
	while (rc == 0 && bytes > s->cache_limit - len) { /* (len <= cache_limit) */
		rc = evict_oldest(&op);
		if (rc == 0)
			rc = cache_bytes_get(s, op.txn, &bytes);
	}
	if (rc == -ENOENT) { /* the LRU is empty: the count had drifted */
		bytes = 0;
		rc = 0;
	}
	if (rc)
		goto end;
	/* The bytes go to a file first, so a committed record has its file. */
	rc = cache_file_write(s, hash, data, len);
	if (rc)
		goto end;
	n = store_block_encode(rec, sizeof(rec), &b);
	rc = n < 0 ? (int)n : op_put(&op, s->blocks, hash, STORE_HASH_BYTES, rec, (size_t)n);
	if (rc == 0)
		rc = lru_set(s, op.txn, hash);
	if (rc == 0)
		rc = cache_bytes_put(s, op.txn, bytes + len);
end:
	return op_end(&op, rc);
}

int store_block_local_put(struct store *s, struct store_txn *t, const uint8_t hash[static STORE_HASH_BYTES],
			  const char *object, uint64_t offset, uint32_t length)
{
	uint8_t rec[STORE_BLOCK_LOCAL_RECORD_MAX_BYTES];
	struct store_block b = { .kind = STORE_BLOCK_LOCAL, .offset = offset, .length = length };
	struct op op;
	long len;
	int rc;

	rc = store_object_check(object);
	if (rc)
		return rc;
	memcpy(b.object, object, strlen(object));
	len = store_block_encode(rec, sizeof(rec), &b);
	if (len < 0)
		return (int)len;
	rc = op_begin(s, t, true, &op);
	if (rc)
		return rc;
	rc = uncache(&op, hash);
	if (rc == 0)
		rc = op_put(&op, s->blocks, hash, STORE_HASH_BYTES, rec, (size_t)len);
	return op_end(&op, rc);
}

int store_block_get(struct store *s, struct store_txn *t, const uint8_t hash[static STORE_HASH_BYTES],
		    struct store_block *out, uint8_t *buf, size_t cap)
{
	bool used = false, file;
	struct op op;
	int rc;

	rc = op_begin(s, t, false, &op);
	if (rc)
		return rc;
	rc = block_read(s, op.txn, hash, out);
	file = rc == 0 && out->kind == STORE_BLOCK_CACHED_FILE;
	if (file) {
		out->kind = STORE_BLOCK_CACHED;
		if (buf && cap < out->length)
			rc = -ERANGE;
	} else if (rc == 0 && out->kind == STORE_BLOCK_CACHED) {
		if (buf && cap < out->length) {
			rc = -ERANGE;
		} else if (buf) {
			memcpy(buf, out->data, out->length);
			used = true;
		}
		out->data = NULL; /* it pointed into the transaction */
	}
	rc = op_end(&op, rc);
	if (rc == 0 && file) { /* read after the transaction: no LMDB pages held */
		rc = cache_file_read(s, hash, buf, out->length);
		used = rc == 0 && buf;
	}
	if (used)
		note_touch(s, hash);
	return rc;
}

int store_block_del(struct store *s, struct store_txn *t, const uint8_t hash[static STORE_HASH_BYTES])
{
	struct op op;
	int rc = op_begin(s, t, true, &op);

	if (rc)
		return rc;
	rc = uncache(&op, hash);
	if (rc == 0)
		rc = op_del(&op, s->blocks, hash, STORE_HASH_BYTES);
	return op_end(&op, rc);
}

void store_block_cache_set_limit(struct store *s, uint64_t bytes)
{
	s->cache_limit = bytes;
}

int store_block_cache_usage(struct store *s, uint64_t *bytes, uint64_t *blocks)
{
	MDB_stat st;
	struct op op;
	int rc;

	*bytes = 0;
	*blocks = 0;
	rc = op_begin(s, NULL, false, &op);
	if (rc)
		return rc;
	rc = cache_bytes_get(s, op.txn, bytes);
	if (rc == 0)
		rc = mdb_to_err(mdb_stat(op.txn, s->lru, &st));
	if (rc == 0)
		*blocks = st.ms_entries;
	return op_end(&op, rc);
}
