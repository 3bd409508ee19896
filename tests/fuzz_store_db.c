/*
 * fuzz_store_db.c - the store's operations over damaged sub-databases.
 *
 * The input is a list of raw records planted with LMDB directly, each
 *   u8 db (peers, names, entries, blocks, lru, lru_hash, meta)
 *   u8 key length, u16 value length (big-endian), key, value
 * then the store is opened and every read and write the API offers runs
 * over them (lookups, listings, the cache's eviction through a damaged LRU
 * index, renames, deletes).  Nothing may crash or leak, and every result
 * must be 0, a negative errno or a BFS_E* code.  Each input starts from an
 * empty store (in /dev/shm when it exists).
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#include "buddyfs/buf.h"
#include "buddyfs/err.h"
#include "buddyfs/log.h"
#include "buddyfs/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const dbs[] = { "peers", "names", "entries", "blocks", "lru", "lru_hash", "meta" };
static char home[64], store_dir[80];

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* remove_tree - @path and everything under it (the store's cache files). */
static void remove_tree(const char *path)
{
	nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void cleanup(void)
{
	remove_tree(home);
}

static void setup(void)
{
	if (home[0])
		return;
	snprintf(home, sizeof(home), "%s/bfs-fuzz-store-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(home))
		abort();
	snprintf(store_dir, sizeof(store_dir), "%s/store", home);
	atexit(cleanup);
	log_set_level(LOG_LEVEL_ERROR);
}

static void wipe(void)
{
	char p[128];

	snprintf(p, sizeof(p), "%s/data.mdb", store_dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/lock.mdb", store_dir);
	unlink(p);
	rmdir(store_dir);
	snprintf(p, sizeof(p), "%s/cache", home);
	remove_tree(p);
}

/* plant - write the input's records with LMDB itself. */
static void plant(const uint8_t *data, size_t size)
{
	struct buf_reader r;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	uint8_t db, klen;
	uint16_t vlen;
	const uint8_t *k, *v;

	if (mkdir(store_dir, 0700) < 0 || mdb_env_create(&env))
		abort();
	mdb_env_set_maxdbs(env, 16);
	if (mdb_env_open(env, store_dir, MDB_NOSYNC, 0600) || mdb_txn_begin(env, NULL, 0, &txn))
		abort();
	buf_reader_init(&r, data, size);
	while (buf_get_u8(&r, &db) && buf_get_u8(&r, &klen) && buf_get_u16be(&r, &vlen) &&
	       buf_get_ref(&r, klen, &k) && buf_get_ref(&r, vlen, &v)) {
		MDB_val key = { .mv_size = klen, .mv_data = (void *)k };
		MDB_val val = { .mv_size = vlen, .mv_data = (void *)v };

		if (klen == 0 || mdb_dbi_open(txn, dbs[db % 7], MDB_CREATE, &dbi))
			continue;
		mdb_put(txn, dbi, &key, &val, 0);
	}
	if (mdb_txn_commit(txn))
		abort();
	mdb_env_close(env);
}

/* check - 0, a negative errno or a BFS_E* code, nothing else. */
static void check(int rc)
{
	if (rc == 0 || (rc < 0 && rc > -4096) || (rc >= BFS_E_FIRST && rc < BFS_E_LAST))
		return;
	abort();
}

static int on_peer(void *ctx, const struct store_peer *p)
{
	struct store_peer q;

	check(store_peer_get(ctx, p->id, &q));
	if (p->name[0])
		check(store_peer_by_name(ctx, p->name, &q));
	return 0;
}

static int on_entry(void *ctx, const struct store_entry *e)
{
	struct store_entry *f = malloc(sizeof(*f));

	if (!f)
		abort();
	if (store_entry_get(ctx, NULL, e->buddy, e->path, f) != 0 || strcmp(f->path, e->path) != 0)
		abort(); /* a listed entry can be read back */
	free(f);
	return 0;
}

/* operate - everything the API does, keyed by bytes from the input. */
static void operate(struct store *s, const uint8_t *data, size_t size)
{
	uint8_t id[32] = { 0 }, h[32] = { 0 }, buf[64];
	struct store_peer p;
	struct store_block b;
	struct store_txn *t;
	uint64_t bytes, count;
	struct store_entry *e = calloc(1, sizeof(*e));

	if (!e)
		abort();
	/* ids and hashes as the planted keys would have them */
	for (size_t i = 0; i + 4 < size && i < 4096; i++) {
		if (data[i + 1] != 32)
			continue;
		if (i + 4 + 32 > size)
			break;
		memcpy(id, data + i + 4, 32);
		memcpy(h, data + i + 4, 32);
		check(store_peer_get(s, id, &p));
		check(store_block_get(s, NULL, h, &b, buf, sizeof(buf)));
		check(store_entry_foreach(s, NULL, id, on_entry, s));
		check(store_entry_list(s, NULL, id, "", NULL, on_entry, s));
		check(store_entry_list(s, NULL, id, "a", "b", on_entry, s));
	}
	check(store_peer_foreach(s, on_peer, s));
	check(store_peer_by_name(s, "a", &p));
	check(store_block_cache_usage(s, &bytes, &count));

	/* writes over the damage: a rename, cache churn, deletes */
	memset(&p, 0, sizeof(p));
	memcpy(p.id, id, 32);
	strcpy(p.name, "a");
	check(store_peer_put(s, &p));
	strcpy(p.name, "b");
	check(store_peer_put(s, &p));
	check(store_peer_del(s, id));
	store_block_cache_set_limit(s, 48);
	for (int i = 0; i < 4; i++) {
		h[0] ^= (uint8_t)(i + 1);
		check(store_block_cache_put(s, NULL, h, buf, 16));
	}
	check(store_block_get(s, NULL, h, &b, buf, sizeof(buf)));
	check(store_block_local_put(s, NULL, h, "o", 0, 1));
	check(store_block_del(s, NULL, h));
	memcpy(e->buddy, id, 32);
	strcpy(e->path, "a/b");
	e->type = STORE_ENTRY_FILE;
	if (store_txn_begin(s, &t) == 0) {
		check(store_entry_put(s, t, e));
		check(store_block_cache_put(s, t, id, buf, 40));
		check(store_manifest_put(s, t, h, buf, 8));
		check(store_txn_commit(t));
	}
	check(store_entry_list(s, NULL, id, "a", NULL, on_entry, s));
	check(store_entry_del(s, NULL, id, "a/b"));
	check(store_block_cache_usage(s, &bytes, &count));
	free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store *s;
	int rc;

	setup();
	plant(data, size);
	rc = store_open(&s, home, 1 << 20);
	check(rc);
	if (rc == 0) {
		operate(s, data, size);
		store_close(s);
	}
	wipe();
	return 0;
}
