/*
 * xfer_proto.h - the block transfer messages of the folder protocol
 * (DESIGN.md §6): codecs only.
 *
 * A reader opens one RTMFP flow to the owner of a file version with
 * metadata XFER_FLOW_METADATA and writes GETs on it; the owner answers
 * each GET with one BLOCK or one ERROR on a return flow associated with
 * it (RFC 7016 §2.3.11.1.1), carrying the same metadata.  Each RTMFP
 * message is one xfer message:
 *
 *   version (1) = XFER_PROTO_VERSION | type (1) | body (by type)
 *
 *   GET    (0x01) request id (4) | manifest hash (32) | block index (4) |
 *                 block hash (32) | block length (4) | path length (2) |
 *                 path (1..STORE_PATH_MAX bytes, no NUL)
 *   BLOCK  (0x81) request id (4) | the block's bytes (the rest, >= 1)
 *   ERROR  (0x82) request id (4) | code (1, enum xfer_proto_code)
 *
 * Integers are big-endian.  A message with trailing bytes, an unknown
 * type, a length of 0 or over STORE_BLOCK_MAX_BYTES, a path with a NUL,
 * or an unknown error code is malformed.  docs/PROTOCOL.md has the tables.
 *
 * Leaves to others: flows and sessions (rtmfp), what the messages mean
 * (xfer), path rules beyond NUL and length (store_path_check, applied by
 * the owner when it looks the entry up).
 */
#ifndef BUDDYFS_XFER_PROTO_H
#define BUDDYFS_XFER_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "buddyfs/buf.h"
#include "buddyfs/store.h"

#define XFER_PROTO_VERSION 0x01
#define XFER_PROTO_GET_FIXED_BYTES (2 + 4 + 32 + 4 + 32 + 4 + 2) /* 80 */
#define XFER_PROTO_GET_MAX_BYTES (XFER_PROTO_GET_FIXED_BYTES + STORE_PATH_MAX)
#define XFER_PROTO_BLOCK_HEADER_BYTES (2 + 4)                   /* 6 */
#define XFER_PROTO_ERROR_BYTES (2 + 4 + 1)                      /* 7 */

enum xfer_proto_type {
	XFER_MSG_GET = 0x01,
	XFER_MSG_BLOCK = 0x81,
	XFER_MSG_ERROR = 0x82,
};

enum xfer_proto_code {
	XFER_ERR_REFUSED = 1,   /* not a mutual buddy, or a request that does not
	                         * match the manifest (index, hash, length) */
	XFER_ERR_NOT_FOUND = 2, /* no such entry, or the block is not here */
	XFER_ERR_CHANGED = 3,   /* the entry has another version now */
	XFER_ERR_MAX = XFER_ERR_CHANGED,
};

/* A decoded message.  Pointers borrow from the decoded bytes. */
struct xfer_proto_msg {
	uint8_t type;                       /* enum xfer_proto_type */
	uint32_t req;                       /* request id */
	/* GET */
	uint8_t manifest[STORE_HASH_BYTES];
	uint32_t index;
	uint8_t hash[STORE_HASH_BYTES];
	uint32_t len;                       /* the block's length */
	const uint8_t *path;                /* not NUL-terminated */
	size_t path_len;
	/* BLOCK: the bytes (data_len == the block's length) */
	const uint8_t *data;
	size_t data_len;
	/* ERROR */
	uint8_t code;                       /* enum xfer_proto_code */
};

/*
 * xfer_proto_get_encode - a GET for @m (type ignored) into @w.
 * Returns 0, -EINVAL (path length 0 or over STORE_PATH_MAX, a NUL in it,
 * len 0 or over STORE_BLOCK_MAX_BYTES) or -ENOSPC (@w is full).
 */
int xfer_proto_get_encode(struct buf_writer *w, const struct xfer_proto_msg *m);
/*
 * xfer_proto_block_header - the 6 bytes before a BLOCK's data into @out.
 * The sender appends the block right after them (one buffer, one write).
 */
void xfer_proto_block_header(uint8_t out[static XFER_PROTO_BLOCK_HEADER_BYTES], uint32_t req);
/* xfer_proto_error_encode - an ERROR; -EINVAL for an unknown code, -ENOSPC. */
int xfer_proto_error_encode(struct buf_writer *w, uint32_t req, uint8_t code);

/*
 * xfer_proto_decode - parse one untrusted message (@in, @len) into @out;
 * its pointers live as long as @in.  Returns 0, BFS_EVERSION (another
 * version byte) or BFS_EMALFORMED (anything else wrong).
 */
int xfer_proto_decode(struct xfer_proto_msg *out, const uint8_t *in, size_t len);

#endif
