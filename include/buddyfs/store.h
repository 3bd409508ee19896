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
 *   blocks     block hash -> where the block's bytes are (LRU for cached ones)
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

#endif
