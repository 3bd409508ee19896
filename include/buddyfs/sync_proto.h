/*
 * sync_proto.h - the folder protocol's control messages (DESIGN.md §6):
 * codecs only.
 *
 * Owns the byte layout of every message on a sync flow (metadata
 * SYNC_FLOW_METADATA, sync.h) and the entry digest both buddies compare.
 * Each RTMFP message is one sync message:
 *
 *   type (1) | body (by type)
 *
 *   HELLO      version (1) | flags (1) | name length (1) | name (0..32)
 *   INDEX      count (2) | count entries (below): part of the sender's index
 *   INDEX_END  count (8): the entries of this index round
 *   PUSH       count (2) | count entries: changes committed just now
 *   ACK        count (2) | count acks: the receiver's agreed states
 *   RESEND     path: send this entry again, with its manifest
 *   PING       (empty): a heartbeat while the folder is up
 *
 *   path  = length (2, 1..STORE_PATH_MAX) | bytes
 *   entry = path | type (1) | flags (1) | mode (4) | size (8) | mtime (8,
 *           signed ns) | owner (32) | version (8) | vv (2 x 8) | manifest
 *           hash (32) [| manifest length (4) | signed manifest bytes]
 *   ack   = path | digest (32) | vv (2 x 8)
 *   count = 1..SYNC_BATCH_MAX
 *
 * Several entries travel in one message so that the receiver applies
 * them in one store transaction (one fsync, not one per entry).
 * Integers are big-endian.  A message with trailing bytes, an unknown
 * type or flag, or an out-of-range field is malformed.  The decoder
 * checks the layout only: what the path names, who the owner is and
 * whether the manifest verifies are the engine's checks (sync.c), because
 * the bytes come from a buddy and are untrusted.  docs/PROTOCOL.md has
 * the tables.
 *
 * Leaves to others: flows (rtmfp), what the messages mean (sync), the
 * manifest format (manifest), path rules (store_path_check).
 */
#ifndef BUDDYFS_SYNC_PROTO_H
#define BUDDYFS_SYNC_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buddyfs/buf.h"
#include "buddyfs/store.h"

#define SYNC_PROTO_VERSION 1
#define SYNC_HELLO_BUDDY 0x01        /* HELLO flag: the sender has the receiver as a buddy */
#define SYNC_ENTRY_DELETED 0x01      /* entry flag: a tombstone */
#define SYNC_ENTRY_MANIFEST 0x02     /* entry flag: the signed manifest follows */
#define SYNC_DIGEST_BYTES 32
/* The largest manifest a message carries (RTMFP messages stop at 16 MiB). */
#define SYNC_MANIFEST_MAX_BYTES ((size_t)15 << 20)
/* An entry without its path and manifest. */
#define SYNC_ENTRY_FIXED_BYTES (1 + 1 + 4 + 8 + 8 + 32 + 8 + 16 + 32)
#define SYNC_BATCH_MAX 1024                      /* items in one INDEX, PUSH or ACK */
#define SYNC_BATCH_TARGET_BYTES ((size_t)256 << 10) /* senders stop adding items past this */
/* The largest message a sender makes: a batch filled to the target, then one entry with the largest manifest. */
#define SYNC_MSG_MAX_BYTES \
	(1 + 2 + SYNC_BATCH_TARGET_BYTES + 2 + STORE_PATH_MAX + SYNC_ENTRY_FIXED_BYTES + 4 + SYNC_MANIFEST_MAX_BYTES)
/* Domain separation of the entry digest. */
#define SYNC_DIGEST_CONTEXT "buddyfs sync entry v1"

enum sync_msg_type {
	SYNC_MSG_HELLO = 0x01,
	SYNC_MSG_INDEX = 0x02,
	SYNC_MSG_INDEX_END = 0x03,
	SYNC_MSG_PUSH = 0x04,
	SYNC_MSG_ACK = 0x05,
	SYNC_MSG_RESEND = 0x06,
	SYNC_MSG_PING = 0x07,
};

/* An entry on the wire (INDEX, PUSH); the path may hold any bytes. */
struct sync_entry {
	char path[STORE_PATH_MAX + 1]; /* NUL-terminated copy; may hold NULs: see path_len */
	size_t path_len;               /* 1..STORE_PATH_MAX */
	uint8_t type;                  /* enum store_entry_type */
	bool deleted;
	uint32_t mode;                 /* <= 07777 */
	uint64_t size;
	int64_t mtime_ns;
	uint8_t owner[STORE_PEER_ID_BYTES];
	uint64_t version;
	uint64_t vv[2];                /* version vector: writes by the lower, the higher peer id */
	uint8_t manifest_hash[STORE_HASH_BYTES];
	const uint8_t *manifest;       /* NULL or the signed manifest, borrowed */
	size_t manifest_len;           /* 0 or 1..SYNC_MANIFEST_MAX_BYTES */
};

/* An ack on the wire: the receiver now agrees on @digest at @path. */
struct sync_ack {
	char path[STORE_PATH_MAX + 1]; /* as in sync_entry */
	size_t path_len;
	uint8_t digest[SYNC_DIGEST_BYTES];
	uint64_t vv[2];
};

struct sync_msg {
	uint8_t type;                  /* enum sync_msg_type */
	/* HELLO */
	uint8_t version;
	uint8_t hello_flags;
	char name[STORE_NAME_MAX + 1]; /* NUL-terminated; any bytes but NUL */
	/* INDEX_END */
	uint64_t count;
	/* RESEND */
	char path[STORE_PATH_MAX + 1]; /* as in sync_entry */
	size_t path_len;
	/* INDEX, PUSH, ACK: the items, checked by decode, read with sync_msg_next_* */
	uint16_t n_items;
	struct buf_reader items;       /* borrows the decoded bytes */
};

/*
 * sync_msg_encode - append a HELLO, INDEX_END, RESEND or PING @m to @w
 * (the others are batches: sync_batch_*).  Returns 0, -EINVAL (a field
 * out of range: another type, a flag, a path or name of a bad length) or
 * -ENOSPC (@w is full; nothing is left of the message).
 */
int sync_msg_encode(struct buf_writer *w, const struct sync_msg *m);

/*
 * sync_msg_decode - parse one message, every item of a batch included.
 * @out is zeroed first; out->items borrows @in (lives as long as @in).
 * Returns 0 or BFS_EMALFORMED; a HELLO of another protocol version is
 * decoded as is (the engine decides).
 */
int sync_msg_decode(struct sync_msg *out, const uint8_t *in, size_t len);

/*
 * sync_msg_next_entry / sync_msg_next_ack - the next item of a decoded
 * INDEX/PUSH (entry) or ACK (ack) @m: 1 and *out filled, or 0 at the end
 * (and for a message of another type).  out->manifest borrows the input.
 */
int sync_msg_next_entry(struct sync_msg *m, struct sync_entry *out);
int sync_msg_next_ack(struct sync_msg *m, struct sync_ack *out);

/* A batch being encoded (INDEX, PUSH or ACK). */
struct sync_batch {
	struct buf_writer *w;
	size_t start;   /* where the message begins in w */
	uint16_t n;     /* items so far */
	uint8_t type;
};

/*
 * sync_batch_begin - start a message of @type (INDEX, PUSH or ACK) in @w.
 * sync_batch_add_entry / sync_batch_add_ack - one more item; on an error
 * the item is left out and the batch goes on: -EINVAL (out of range, as
 * sync_msg_encode, or an item of the other kind), -ENOSPC (@w full, or
 * SYNC_BATCH_MAX items already).
 * sync_batch_end - write the count: 0, or -EINVAL when the batch is empty
 * (the message is then removed from @w) or the writer failed.
 */
int sync_batch_begin(struct sync_batch *b, struct buf_writer *w, uint8_t type);
int sync_batch_add_entry(struct sync_batch *b, const struct sync_entry *e);
int sync_batch_add_ack(struct sync_batch *b, const struct sync_ack *a);
int sync_batch_end(struct sync_batch *b);

/*
 * sync_entry_digest - the digest buddies compare to tell "the same
 * version" of a path: BLAKE2b-256 of SYNC_DIGEST_CONTEXT and its NUL, then
 * type (1) | deleted (1) | mode (4) | size (8) | mtime (8) | owner (32) |
 * manifest hash (32).  Path, version counter and vector are left out.
 */
void sync_entry_digest(uint8_t out[static SYNC_DIGEST_BYTES], const struct store_entry *e);

#endif
