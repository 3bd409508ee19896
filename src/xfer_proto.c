/*
 * xfer_proto.c - block transfer message codecs (see xfer_proto.h).
 *
 * Every parser reads through buf_reader; lengths are checked against
 * their bounds before anything is borrowed.  The tables are in
 * docs/PROTOCOL.md.
 */
#include <errno.h>
#include <string.h>

#include "buddyfs/err.h"
#include "buddyfs/xfer_proto.h"

static void put_head(struct buf_writer *w, uint8_t type, uint32_t req)
{
	buf_put_u8(w, XFER_PROTO_VERSION);
	buf_put_u8(w, type);
	buf_put_u32be(w, req);
}

int xfer_proto_get_encode(struct buf_writer *w, const struct xfer_proto_msg *m)
{
	if (m->path_len == 0 || m->path_len > STORE_PATH_MAX || memchr(m->path, 0, m->path_len) ||
	    m->len == 0 || m->len > STORE_BLOCK_MAX_BYTES)
		return -EINVAL;
	put_head(w, XFER_MSG_GET, m->req);
	buf_put_bytes(w, m->manifest, STORE_HASH_BYTES);
	buf_put_u32be(w, m->index);
	buf_put_bytes(w, m->hash, STORE_HASH_BYTES);
	buf_put_u32be(w, m->len);
	buf_put_u16be(w, (uint16_t)m->path_len);
	buf_put_bytes(w, m->path, m->path_len);
	return buf_writer_ok(w) ? 0 : -ENOSPC;
}

void xfer_proto_block_header(uint8_t out[static XFER_PROTO_BLOCK_HEADER_BYTES], uint32_t req)
{
	out[0] = XFER_PROTO_VERSION;
	out[1] = XFER_MSG_BLOCK;
	buf_store32_be(out + 2, req);
}

int xfer_proto_error_encode(struct buf_writer *w, uint32_t req, uint8_t code)
{
	if (code == 0 || code > XFER_ERR_MAX)
		return -EINVAL;
	put_head(w, XFER_MSG_ERROR, req);
	buf_put_u8(w, code);
	return buf_writer_ok(w) ? 0 : -ENOSPC;
}

static int get_body(struct xfer_proto_msg *m, struct buf_reader *r)
{
	uint16_t n = 0;

	switch (m->type) {
	case XFER_MSG_GET:
		buf_get_bytes(r, m->manifest, STORE_HASH_BYTES);
		buf_get_u32be(r, &m->index);
		buf_get_bytes(r, m->hash, STORE_HASH_BYTES);
		buf_get_u32be(r, &m->len);
		buf_get_u16be(r, &n);
		if (!buf_reader_ok(r) || n == 0 || n > STORE_PATH_MAX || m->len == 0 ||
		    m->len > STORE_BLOCK_MAX_BYTES || !buf_get_ref(r, n, &m->path) || memchr(m->path, 0, n))
			return BFS_EMALFORMED;
		m->path_len = n;
		break;
	case XFER_MSG_BLOCK:
		buf_get_rest(r, &m->data, &m->data_len);
		if (m->data_len == 0 || m->data_len > STORE_BLOCK_MAX_BYTES)
			return BFS_EMALFORMED;
		break;
	case XFER_MSG_ERROR:
		if (!buf_get_u8(r, &m->code) || m->code == 0 || m->code > XFER_ERR_MAX)
			return BFS_EMALFORMED;
		break;
	default:
		return BFS_EMALFORMED;
	}
	return buf_reader_done(r) ? 0 : BFS_EMALFORMED;
}

int xfer_proto_decode(struct xfer_proto_msg *out, const uint8_t *in, size_t len)
{
	struct buf_reader r;
	uint8_t version = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	buf_reader_init(&r, in, len);
	if (!buf_get_u8(&r, &version))
		return BFS_EMALFORMED;
	if (version != XFER_PROTO_VERSION)
		return BFS_EVERSION;
	if (!buf_get_u8(&r, &out->type) || !buf_get_u32be(&r, &out->req))
		return BFS_EMALFORMED;
	rc = get_body(out, &r);
	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}
