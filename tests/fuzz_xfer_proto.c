/*
 * fuzz_xfer_proto.c - libFuzzer target for the block transfer message
 * decoder: garbage is rejected without crashing, and whatever decodes
 * encodes back to the same bytes and decodes again to the same message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buddyfs/xfer_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same(const struct xfer_proto_msg *a, const struct xfer_proto_msg *b)
{
	if (a->type != b->type || a->req != b->req || a->index != b->index || a->len != b->len ||
	    a->code != b->code || a->path_len != b->path_len || a->data_len != b->data_len ||
	    memcmp(a->manifest, b->manifest, sizeof(a->manifest)) != 0 ||
	    memcmp(a->hash, b->hash, sizeof(a->hash)) != 0 ||
	    (a->path_len && memcmp(a->path, b->path, a->path_len) != 0) ||
	    (a->data_len && memcmp(a->data, b->data, a->data_len) != 0))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[XFER_PROTO_GET_MAX_BYTES];
	struct xfer_proto_msg a, b;
	struct buf_writer w;
	uint8_t *blk;

	if (xfer_proto_decode(&a, data, size) != 0)
		return 0;
	buf_writer_init(&w, out, sizeof(out));
	switch (a.type) {
	case XFER_MSG_GET:
		if (xfer_proto_get_encode(&w, &a) != 0)
			abort();
		break;
	case XFER_MSG_ERROR:
		if (xfer_proto_error_encode(&w, a.req, a.code) != 0)
			abort();
		break;
	case XFER_MSG_BLOCK:
		blk = malloc(XFER_PROTO_BLOCK_HEADER_BYTES + a.data_len);
		if (!blk)
			return 0;
		xfer_proto_block_header(blk, a.req);
		memcpy(blk + XFER_PROTO_BLOCK_HEADER_BYTES, a.data, a.data_len);
		if (memcmp(blk, data, size) != 0 || xfer_proto_decode(&b, blk, size) != 0)
			abort();
		same(&a, &b);
		free(blk);
		return 0;
	default:
		abort();
	}
	if (buf_writer_len(&w) != size || memcmp(out, data, size) != 0)
		abort();
	if (xfer_proto_decode(&b, out, buf_writer_len(&w)) != 0)
		abort();
	same(&a, &b);
	return 0;
}
