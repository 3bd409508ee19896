/*
 * store.h - the LMDB store of one buddyfs home (DESIGN.md §5).
 *
 * One LMDB environment per home directory (HOME/store/), with named
 * sub-databases:
 *   meta       schema version and small settings
 *   peers      peer id -> certificate, name, buddy state, addresses, last seen
 *   names      name -> peer id
 *   entries    (buddy peer id, path) -> file or directory entry
 *   manifests  manifest hash -> encoded, signed manifest
 *   blocks     block hash -> where the block's bytes are (LRU for cached ones;
 *              a buddy's cached block keeps its bytes in a plain file,
 *              HOME/cache/<2 hex>/<64 hex>, see store_block_cache_put)
 *   synced     (buddy peer id, path) -> the version the folder protocol last
 *              agreed on with the buddy (sync.c)
 *
 * Every record is an explicit, versioned byte layout (a version byte first,
 * big-endian integers, length-prefixed strings); decoders reject malformed
 * bytes with BFS_EMALFORMED and unknown versions with BFS_EVERSION.  Every
 * logical change is one write transaction, so a crash leaves the previous
 * state.  Errors: 0, negative errno, or BFS_E* (err.h); LMDB failures map to
 * BFS_ESTORE (MDB_MAP_FULL to -ENOSPC).
 *
 * Threading: a struct store belongs to the one thread (event loop) that
 * opened it.  Open the store after fork(), never before (LMDB Caveats).
 *
 * This header is shared by several modules: the peers/names part below is the
 * contract the CLI codes against.
 */
#ifndef BUDDYFS_STORE_H
#define BUDDYFS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_SCHEMA_VERSION 1
#define STORE_PEER_ID_BYTES 32
#define STORE_NAME_MAX 32          /* user names: 1-32 of a-z0-9._- */
#define STORE_CERT_MAX_BYTES 128   /* a certificate; ours is 33 bytes */
#define STORE_PEER_ADDRS_MAX 8

struct store;
struct store_txn;

/*
 * store_open - open (creating if needed) the store in @dir/store.
 * @out:  the new handle, freed with store_close().
 * @dir:  the home directory; must exist.
 * @map_bytes: LMDB map size, 0 for the default (1 GiB; sparse on disk).
 * Errors: -errno from the file system, BFS_ESCHEMA when the store was made by
 * an unknown schema version, BFS_ESTORE otherwise.
 */
int store_open(struct store **out, const char *dir, size_t map_bytes);
void store_close(struct store *s);

/* ---- peers and names ---- */

enum store_addr_kind {
	STORE_ADDR_LOCAL = 1,    /* an interface address the peer reported */
	STORE_ADDR_OBSERVED = 2, /* what the rendezvous saw */
};

struct store_addr {
	uint8_t kind;     /* enum store_addr_kind */
	uint8_t family;   /* 4 or 6 */
	uint16_t port;    /* host byte order */
	uint8_t addr[16]; /* 4 or 16 bytes used, network order */
};

enum store_buddy_state {
	STORE_BUDDY_NONE = 0,  /* known peer, not a buddy (a name looked up) */
	STORE_BUDDY_ADDED = 1, /* we added them */
};

struct store_peer {
	uint8_t id[STORE_PEER_ID_BYTES];
	char name[STORE_NAME_MAX + 1]; /* "" when unknown */
	uint8_t cert[STORE_CERT_MAX_BYTES];
	size_t cert_len;               /* 0 when the certificate is not known yet */
	uint8_t buddy;                 /* enum store_buddy_state */
	bool mutual;                   /* they have added us too (learned online) */
	uint64_t last_seen;            /* unix seconds, 0 = never */
	uint64_t added;                /* unix seconds the buddy was added */
	size_t n_addrs;
	struct store_addr addrs[STORE_PEER_ADDRS_MAX];
};

/*
 * store_peer_put - insert or replace the record of p->id and, when p->name
 * is not empty, point names[p->name] at it (dropping the name the peer had
 * before, if it differs), in one transaction.
 * Errors: -EEXIST when p->name already names another peer id.
 */
int store_peer_put(struct store *s, const struct store_peer *p);
/*
 * store_peer_put_txn - store_peer_put as a part of the write transaction
 * @t (store_txn_begin; NULL: a transaction of its own, as store_peer_put),
 * so that many records reach the disk with one fsync (the rendezvous
 * server commits the registrations of one loop iteration together).
 * store_peer_get/by_name see the record before the commit.
 * Errors: those of store_peer_put; -EEXIST leaves @t usable, a failure
 * part way spoils it (store_txn_begin).
 */
int store_peer_put_txn(struct store *s, struct store_txn *t, const struct store_peer *p);
/* store_peer_get - the record of @id; -ENOENT if none. */
int store_peer_get(struct store *s, const uint8_t id[static STORE_PEER_ID_BYTES], struct store_peer *out);
/* store_peer_by_name - the record that names[@name] points at; -ENOENT if none. */
int store_peer_by_name(struct store *s, const char *name, struct store_peer *out);
/* store_peer_del - remove the record of @id and its name; -ENOENT if none. */
int store_peer_del(struct store *s, const uint8_t id[static STORE_PEER_ID_BYTES]);
/*
 * store_peer_foreach - call @fn for each peer record in peer id order, in one
 * read transaction.  @fn returns 0 to go on or anything else to stop; that
 * value is returned.  @fn must not write to the store.
 */
int store_peer_foreach(struct store *s, int (*fn)(void *ctx, const struct store_peer *p), void *ctx);

/*
 * store_peer_encode / store_peer_decode - the record codec, exposed for
 * tests and fuzzing.  encode returns the length written or -ENOSPC when
 * @cap is too small; decode returns 0, BFS_EMALFORMED or BFS_EVERSION.
 */
long store_peer_encode(uint8_t *out, size_t cap, const struct store_peer *p);
int store_peer_decode(struct store_peer *out, const uint8_t *in, size_t len);

/* ---- the rest (meta, entries, manifests, blocks) follows below ---- */

/*
 * Notes on the contract above (behaviour, not new API):
 * - store_peer_put and store_peer_encode also fail with -EINVAL when @p is
 *   not a valid record (name not NUL-terminated, cert_len over
 *   STORE_CERT_MAX_BYTES, n_addrs over STORE_PEER_ADDRS_MAX, an address of
 *   an unknown kind or family, buddy not a store_buddy_state).
 * - store_peer_put with an empty name drops the name the peer had.
 * - store_peer_get/by_name/foreach return BFS_EMALFORMED or BFS_EVERSION
 *   for a damaged record; store_peer_del still removes one.
 * - While a store_txn (below) is open, store_peer_put/del fail with -EBUSY;
 *   store_peer_get/by_name/foreach read through the open transaction.
 */

/* ---- sizes and limits ---- */

#define STORE_HASH_BYTES 32            /* block and manifest hashes */
#define STORE_MAP_DEFAULT_BYTES ((size_t)1 << 30)
#define STORE_PATH_MAX 4095            /* bytes of an entry path */
#define STORE_FILE_NAME_MAX 255        /* bytes of one path component */
#define STORE_OBJECT_MAX 255           /* bytes of a local object name */
#define STORE_BLOCK_MAX_BYTES ((uint32_t)4 << 20)
#define STORE_MANIFEST_MAX_BYTES ((size_t)64 << 20)
#define STORE_BLOCK_CACHE_DEFAULT_BYTES ((uint64_t)256 << 20)

/* Largest encodings, for callers' buffers. */
#define STORE_PEER_RECORD_MAX_BYTES \
	(1 + STORE_PEER_ID_BYTES + 1 + STORE_NAME_MAX + 2 + STORE_CERT_MAX_BYTES + \
	 1 + 1 + 8 + 8 + 1 + STORE_PEER_ADDRS_MAX * 20)
#define STORE_NAME_RECORD_BYTES (1 + STORE_PEER_ID_BYTES)
#define STORE_ENTRY_RECORD_MAX_BYTES (105 + STORE_PATH_MAX)
#define STORE_BLOCK_LOCAL_RECORD_MAX_BYTES (1 + 1 + 2 + STORE_OBJECT_MAX + 8 + 4)
#define STORE_BLOCK_CACHED_HEADER_BYTES (1 + 1 + 4)

/* ---- write transactions ---- */

struct store_txn;

/*
 * store_txn_begin - open the one write transaction of @s, to group several
 * changes (publishing a file version writes entries, a manifest and blocks)
 * so that they reach the disk together or not at all.
 *
 * Pass the handle as @t to the functions below; with t == NULL each call
 * runs in a transaction of its own.  Each call inside @t is atomic: when it
 * fails before changing anything (-EINVAL, -ENOENT, -EEXIST, BFS_EBADNAME,
 * BFS_ETOOBIG, BFS_EMALFORMED...) @t goes on; when it fails part way (map
 * full, LMDB failure) @t is spoiled: later calls return that error and
 * store_txn_commit() aborts and returns it.
 *
 * While @t is open, calls with t == NULL may read (and see @t's changes)
 * but fail with -EBUSY when they would write.  The handle lives inside @s:
 * it is valid until store_txn_commit() or store_txn_abort().
 * Errors: -EBUSY when a transaction is already open or a listing callback
 * is running, -ENOSPC, BFS_ESTORE.
 */
int store_txn_begin(struct store *s, struct store_txn **out);
/*
 * store_txn_commit - make @t's changes durable (fsync) and end @t, which is
 * ended on error too.  Errors: the error that spoiled @t (nothing is
 * committed), -ENOSPC when the map is full, BFS_ESTORE.
 */
int store_txn_commit(struct store_txn *t);
/*
 * store_txn_commit_cache - store_txn_commit() for a transaction that holds
 * only what can be fetched again (a buddy's cached blocks): the data pages
 * are flushed but the meta page is not (LMDB's MDB_NOMETASYNC for this
 * commit), so a machine crash may undo this commit but never damages the
 * store; the next durable commit flushes it too.  Same errors.
 */
int store_txn_commit_cache(struct store_txn *t);
/* store_txn_abort - drop @t's changes and end it. */
void store_txn_abort(struct store_txn *t);

/* ---- entries: the shared folder of each buddy ---- */

/*
 * Paths are relative to the buddy's folder: components separated by '/',
 * no leading or trailing '/', no empty, "." or ".." component, each
 * component 1..STORE_FILE_NAME_MAX bytes, NUL-free, at most STORE_PATH_MAX
 * bytes in all.  The folder's root itself has no entry; "" names it in
 * store_entry_list().
 */
int store_path_check(const char *path); /* 0 or BFS_EBADNAME */

enum store_entry_type {
	STORE_ENTRY_FILE = 1,
	STORE_ENTRY_DIR = 2,
};

struct store_entry {
	uint8_t buddy[STORE_PEER_ID_BYTES]; /* whose shared folder (key) */
	char path[STORE_PATH_MAX + 1];
	uint8_t type;                       /* enum store_entry_type */
	bool deleted;                       /* a tombstone: the path was removed */
	uint32_t mode;                      /* permission bits only (<= 07777) */
	uint64_t size;                      /* bytes (files) */
	int64_t mtime_ns;                   /* unix time in nanoseconds */
	uint8_t owner[STORE_PEER_ID_BYTES]; /* who wrote this version */
	uint64_t version;                   /* newer wins (folder protocol) */
	uint8_t manifest[STORE_HASH_BYTES]; /* the file version; zeros for dirs */
	/*
	 * The base of this write: the version of the entry at this path that
	 * the writer started from (0: there was none), recorded when the
	 * change began - for a file version when it was opened for writing,
	 * created or truncated, not when it was released.  sync uses it to
	 * see a write that began before a buddy's version arrived (a
	 * conflict).  has_base false: not recorded (the change started from
	 * the entry it replaces, version - 1).
	 */
	bool has_base;
	uint64_t base;
};

/*
 * store_entry_put - insert or replace the entry of (e->buddy, e->path).
 * Errors: BFS_EBADNAME (path), -EINVAL (type, mode), -EBUSY, -ENOSPC,
 * BFS_ESTORE.
 */
int store_entry_put(struct store *s, struct store_txn *t, const struct store_entry *e);
/* store_entry_get - the entry of (@buddy, @path); -ENOENT if none. */
int store_entry_get(struct store *s, struct store_txn *t, const uint8_t buddy[static STORE_PEER_ID_BYTES],
		    const char *path, struct store_entry *out);
/* store_entry_del - remove the entry (no tombstone: put one for that); -ENOENT if none. */
int store_entry_del(struct store *s, struct store_txn *t, const uint8_t buddy[static STORE_PEER_ID_BYTES],
		    const char *path);

typedef int (*store_entry_fn)(void *ctx, const struct store_entry *e);
/*
 * store_entry_list - call @fn for each entry directly in directory @dir of
 * @buddy's folder ("" for the root; not the subdirectories' contents),
 * tombstones included, in name byte order, starting after the name @after
 * (NULL: from the first), in one read transaction.  @fn returns 0 to go on
 * or anything else to stop; that value is returned.  @e lives until @fn
 * returns; @fn may read the store but not write it.
 * Errors: BFS_EBADNAME (dir, after), BFS_EMALFORMED/BFS_EVERSION for a
 * damaged record (the walk stops there), BFS_ESTORE.
 */
int store_entry_list(struct store *s, struct store_txn *t, const uint8_t buddy[static STORE_PEER_ID_BYTES],
		     const char *dir, const char *after, store_entry_fn fn, void *ctx);
/*
 * store_entry_foreach - like store_entry_list but over every entry of
 * @buddy's folder, grouped by directory (in no useful order between them).
 */
int store_entry_foreach(struct store *s, struct store_txn *t, const uint8_t buddy[static STORE_PEER_ID_BYTES],
			store_entry_fn fn, void *ctx);

/*
 * store_entry_encode / store_entry_decode - the value codec (the buddy id
 * is in the key, not the value: decode leaves out->buddy zeroed).  encode
 * returns the length or -ENOSPC / -EINVAL (bad path, type or mode); decode
 * returns 0, BFS_EMALFORMED or BFS_EVERSION.
 */
long store_entry_encode(uint8_t *out, size_t cap, const struct store_entry *e);
int store_entry_decode(struct store_entry *out, const uint8_t *in, size_t len);

/* ---- synced: what both buddies last agreed on for a path (module sync) ---- */

/*
 * The folder protocol (sync.c, docs/PROTOCOL.md) remembers, per (buddy,
 * path), the version of the entry both sides last agreed on: its digest
 * (sync_entry_digest), its version vector (writes by the lower and by the
 * higher peer id) and the local entry's version counter at that moment.
 * Kept apart from the entry, which fs rewrites on every local change.
 */
struct store_synced {
	uint8_t digest[STORE_HASH_BYTES];
	uint64_t vv[2];
	uint64_t version;
};

#define STORE_SYNCED_RECORD_BYTES (1 + STORE_HASH_BYTES + 8 + 8 + 8)

/* store_synced_put - insert or replace the record of (@buddy, @path).
 * Errors: BFS_EBADNAME (path), -EBUSY, -ENOSPC, BFS_ESTORE. */
int store_synced_put(struct store *s, struct store_txn *t, const uint8_t buddy[static STORE_PEER_ID_BYTES],
		     const char *path, const struct store_synced *v);
/* store_synced_get - the record of (@buddy, @path); -ENOENT if none. */
int store_synced_get(struct store *s, struct store_txn *t, const uint8_t buddy[static STORE_PEER_ID_BYTES],
		     const char *path, struct store_synced *out);
/* store_synced_del - remove it; -ENOENT if none. */
int store_synced_del(struct store *s, struct store_txn *t, const uint8_t buddy[static STORE_PEER_ID_BYTES],
		     const char *path);
/* store_synced_encode / decode - the value codec (STORE_SYNCED_RECORD_BYTES). */
long store_synced_encode(uint8_t *out, size_t cap, const struct store_synced *v);
int store_synced_decode(struct store_synced *out, const uint8_t *in, size_t len);

/* ---- manifests: hash -> signed manifest bytes, opaque to the store ---- */

/* store_manifest_put - store @len (1..STORE_MANIFEST_MAX_BYTES) bytes under @hash. */
int store_manifest_put(struct store *s, struct store_txn *t, const uint8_t hash[static STORE_HASH_BYTES],
		       const uint8_t *bytes, size_t len);
/*
 * store_manifest_get - a copy of the bytes under @hash in *out (malloc'd,
 * the caller frees) and their length in *len.  Errors: -ENOENT, -ENOMEM.
 */
int store_manifest_get(struct store *s, struct store_txn *t, const uint8_t hash[static STORE_HASH_BYTES],
		       uint8_t **out, size_t *len);
int store_manifest_del(struct store *s, struct store_txn *t, const uint8_t hash[static STORE_HASH_BYTES]);

/* ---- blocks: hash -> where the bytes are ---- */

enum store_block_kind {
	STORE_BLOCK_LOCAL = 1,  /* in our object store: a file, offset, length */
	STORE_BLOCK_CACHED = 2, /* a buddy's block, its bytes kept in LMDB */
	/*
	 * A buddy's block whose bytes are in a plain file of the home's cache
	 * directory, HOME/cache/<first 2 hex digits>/<64 hex digits of the
	 * hash> (record version 2).  Only the codec shows this kind:
	 * store_block_get() reports such a block as STORE_BLOCK_CACHED.
	 */
	STORE_BLOCK_CACHED_FILE = 3,
};

#define STORE_CACHE_DIR "cache"        /* under the home */
#define STORE_BLOCK_CACHED_FILE_RECORD_BYTES (1 + 1 + 4)

struct store_block {
	uint8_t kind;                     /* enum store_block_kind */
	uint32_t length;                  /* bytes of the block, 1..STORE_BLOCK_MAX_BYTES */
	char object[STORE_OBJECT_MAX + 1];/* LOCAL: object name under the home's object store */
	uint64_t offset;                  /* LOCAL: where the block starts in it */
	const uint8_t *data;              /* CACHED, decode only: borrowed from the input */
};

/*
 * store_block_local_put - record that the block @hash is @length bytes at
 * @offset in the local object @object (a path as store_path_check() allows,
 * at most STORE_OBJECT_MAX bytes).  Replaces a cached copy.
 * Errors: BFS_EBADNAME, -EINVAL (length), -EBUSY, -ENOSPC, BFS_ESTORE.
 */
int store_block_local_put(struct store *s, struct store_txn *t, const uint8_t hash[static STORE_HASH_BYTES],
			  const char *object, uint64_t offset, uint32_t length);
/*
 * store_block_cache_put - keep a copy of a buddy's block (the caller has
 * checked that @hash is the BLAKE2b-256 of @data, manifest_block_hash),
 * evicting least recently used cached blocks so that the cache stays within
 * its limit.  The bytes go to the block's cache file (written under a
 * temporary name in the same directory and renamed; not fsynced), the
 * record (STORE_BLOCK_CACHED_FILE) to LMDB, and the hash to this process's
 * set of verified blocks.  A block already known is left as it is (a
 * cached one counts as used), except that the file of a file-backed one is
 * written again (it may have been missing or torn).
 * Errors: -EINVAL (len 0), BFS_ETOOBIG (len over STORE_BLOCK_MAX_BYTES or
 * the cache limit), -EBUSY, -ENOSPC, -errno from the file system,
 * BFS_ESTORE.
 */
int store_block_cache_put(struct store *s, struct store_txn *t, const uint8_t hash[static STORE_HASH_BYTES],
			  const uint8_t *data, size_t len);
/*
 * store_cache_sweep - remove the temporary files (<hash>.<pid>.tmp) that a
 * process which is no longer running left in HOME/cache when it died in
 * the middle of store_block_cache_put.  A live process's files are left
 * alone, so any process may call it; the daemon does at start.  Returns
 * the number of files removed (0 when there is no cache yet) or -errno.
 */
long store_cache_sweep(struct store *s);
/*
 * store_block_get - where block @hash is.  For a LOCAL block *out has the
 * object, offset and length.  For a CACHED block (inline or file-backed;
 * out->kind is STORE_BLOCK_CACHED for both) the bytes are copied into @buf
 * (out->data is NULL, out->length the count) and the block counts as used
 * for the LRU; with @buf NULL only the kind and length are returned.
 *
 * A file-backed block whose file is missing or not out->length bytes long
 * is not cached: -ENOENT (the caller fetches it again; the put rewrites the
 * file).  Cache files are not fsynced, so after a machine crash one may
 * hold torn bytes: the first time this process reads a file-backed block
 * that it did not put itself, its BLAKE2b-256 is checked against @hash; on
 * a mismatch the file is removed and the answer is -ENOENT.
 * Errors: -ENOENT, -ERANGE when @cap < out->length (out->length is set, so
 * the caller can retry), -EIO, BFS_EMALFORMED, BFS_EVERSION, BFS_ESTORE.
 */
int store_block_get(struct store *s, struct store_txn *t, const uint8_t hash[static STORE_HASH_BYTES],
		    struct store_block *out, uint8_t *buf, size_t cap);
/* store_block_del - forget block @hash (and its cached bytes or file); -ENOENT if none. */
int store_block_del(struct store *s, struct store_txn *t, const uint8_t hash[static STORE_HASH_BYTES]);
/* store_block_cache_set_limit - the cache's cap in bytes (this process; default above). */
void store_block_cache_set_limit(struct store *s, uint64_t bytes);
/* store_block_cache_usage - bytes and blocks in the cache now. */
int store_block_cache_usage(struct store *s, uint64_t *bytes, uint64_t *blocks);

/*
 * store_block_encode / store_block_decode - the value codec.  encode
 * writes b->data (CACHED), the location (LOCAL) or the length alone
 * (CACHED_FILE, record version 2); it returns the length or -ENOSPC /
 * -EINVAL.  decode returns 0, BFS_EMALFORMED or BFS_EVERSION; for CACHED
 * out->data points into @in (NULL for the other kinds).
 */
long store_block_encode(uint8_t *out, size_t cap, const struct store_block *b);
int store_block_decode(struct store_block *out, const uint8_t *in, size_t len);

/* store_name_encode / store_name_decode - the names value: the peer id. */
long store_name_encode(uint8_t *out, size_t cap, const uint8_t id[static STORE_PEER_ID_BYTES]);
int store_name_decode(uint8_t id[static STORE_PEER_ID_BYTES], const uint8_t *in, size_t len);

#endif
