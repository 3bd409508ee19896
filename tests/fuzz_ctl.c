/*
 * fuzz_ctl.c - the control socket's frame and reply decoders on untrusted
 * bytes: no read outside the input, every decoded frame re-encodes to the
 * same bytes, and a reply body splits into result and text or is refused.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buddyfs/buf.h"
#include "buddyfs/ctl.h"
#include "buddyfs/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf_writer w;
	struct ctl_frame f, g;
	size_t used, used2, pos = 0;

	while (pos < size) {
		int rc = ctl_frame_decode(&f, data + pos, size - pos, &used);
		const uint8_t *text;
		size_t text_len;
		uint8_t code;

		if (rc == -EAGAIN || rc == BFS_EMALFORMED || rc == BFS_EVERSION || rc == BFS_ETOOBIG)
			break;
		if (rc != 0 || used < CTL_HEADER_BYTES || used > size - pos ||
		    used != CTL_HEADER_BYTES + f.body_len)
			abort();
		/* round trip: decode -> encode gives the same bytes, decodes the same */
		buf_writer_init_dynamic(&w, CTL_HEADER_BYTES + CTL_BODY_MAX_BYTES);
		if (ctl_frame_encode(&w, f.type, f.body, f.body_len) != 0 || buf_writer_len(&w) != used ||
		    memcmp(w.base, data + pos, used) != 0)
			abort();
		if (ctl_frame_decode(&g, w.base, buf_writer_len(&w), &used2) != 0 || used2 != used ||
		    g.type != f.type || g.body_len != f.body_len)
			abort();
		buf_writer_free(&w);
		rc = ctl_reply_decode(f.body, f.body_len, &code, &text, &text_len);
		if (rc == 0 && (text_len + 1 != f.body_len || (text_len && memchr(text, 0, text_len))))
			abort();
		if (rc != 0 && rc != BFS_EMALFORMED)
			abort();
		pos += used;
	}
	return 0;
}
