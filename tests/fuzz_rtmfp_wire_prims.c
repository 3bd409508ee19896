/*
 * fuzz_rtmfp_wire_prims.c - VLUs, fields, option lists, addresses and the
 * User Data options of RFC 7016 (2.1, 2.3.11.1).  The first input byte
 * picks what the rest is parsed as; whatever decodes is encoded again and
 * must decode to the same value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buddyfs/buf.h"
#include "buddyfs/err.h"
#include "buddyfs/rtmfp_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                  \
	do {                         \
		if (!(cond))         \
			abort();     \
	} while (0)

static void vlus(struct buf_reader *r)
{
	uint8_t out[RTMFP_WIRE_VLU_MAX_BYTES];
	uint64_t v, v2;
	size_t start;

	for (;;) {
		start = r->pos;
		if (!rtmfp_wire_get_vlu(r, &v)) {
			CHECK(r->pos == start);
			return;
		}
		CHECK(r->pos - start <= RTMFP_WIRE_VLU_MAX_BYTES);
		size_t n = rtmfp_wire_vlu_encode(out, v);
		CHECK(n == rtmfp_wire_vlu_size(v) && n <= r->pos - start);
		CHECK(rtmfp_wire_vlu_decode(&v2, out, n) == (int)n && v2 == v);
	}
}

static void fields(struct buf_reader *r)
{
	static uint8_t out[1 << 17];
	struct rtmfp_wire_span s, s2;
	struct buf_writer w;
	struct buf_reader r2;

	while (rtmfp_wire_get_field(r, &s)) {
		buf_writer_init(&w, out, sizeof(out));
		CHECK(rtmfp_wire_put_field(&w, s.p, s.len));
		CHECK(buf_writer_len(&w) == rtmfp_wire_field_size(s.len));
		buf_reader_init(&r2, out, buf_writer_len(&w));
		CHECK(rtmfp_wire_get_field(&r2, &s2) && buf_reader_done(&r2));
		CHECK(rtmfp_wire_span_eq(s, s2));
	}
}

static void options(struct buf_reader *r)
{
	static uint8_t out[1 << 17];
	struct rtmfp_wire_span list, list2;
	struct rtmfp_wire_option_iter it, it2;
	struct rtmfp_wire_option opt, opt2;
	struct rtmfp_wire_flow_options fo, fo2;
	struct buf_writer w;
	struct buf_reader r2;
	int rc, rc2;

	while (rtmfp_wire_get_option_list(r, &list)) {
		CHECK(rtmfp_wire_option_list_valid(list));
		/* rebuild the list option by option (minimal VLUs), plus marker */
		buf_writer_init(&w, out, sizeof(out));
		rtmfp_wire_option_iter_init(&it, list);
		while ((rc = rtmfp_wire_option_next(&it, &opt)) == 1)
			CHECK(rtmfp_wire_put_option(&w, opt.type, opt.value.p, opt.value.len));
		CHECK(rc == 0);
		CHECK(rtmfp_wire_put_marker(&w));
		buf_reader_init(&r2, out, buf_writer_len(&w));
		CHECK(rtmfp_wire_get_option_list(&r2, &list2) && buf_reader_done(&r2));
		rtmfp_wire_option_iter_init(&it, list);
		rtmfp_wire_option_iter_init(&it2, list2);
		do {
			rc = rtmfp_wire_option_next(&it, &opt);
			rc2 = rtmfp_wire_option_next(&it2, &opt2);
			CHECK(rc == rc2);
			CHECK(rc != 1 || (opt.type == opt2.type && rtmfp_wire_span_eq(opt.value, opt2.value)));
		} while (rc == 1);
		rc = rtmfp_wire_flow_options_parse(&fo, list);
		rc2 = rtmfp_wire_flow_options_parse(&fo2, list2);
		CHECK(rc == rc2);
		if (rc == 0) {
			CHECK(fo.has_metadata == fo2.has_metadata && fo.has_return_flow == fo2.has_return_flow);
			CHECK(fo.return_flow_id == fo2.return_flow_id);
			CHECK(fo.unknown_mandatory == fo2.unknown_mandatory);
			CHECK(rtmfp_wire_span_eq(fo.metadata, fo2.metadata));
		}
	}
}

static void addresses(struct buf_reader *r)
{
	uint8_t out[RTMFP_WIRE_ADDRESS_MAX_BYTES];
	struct rtmfp_wire_address a, a2;
	struct buf_writer w;
	struct buf_reader r2;

	while (rtmfp_wire_get_address(r, &a)) {
		buf_writer_init(&w, out, sizeof(out));
		CHECK(rtmfp_wire_put_address(&w, &a) == 0);
		CHECK(buf_writer_len(&w) == rtmfp_wire_address_size(&a));
		buf_reader_init(&r2, out, buf_writer_len(&w));
		CHECK(rtmfp_wire_get_address(&r2, &a2) && buf_reader_done(&r2));
		CHECK(rtmfp_wire_address_eq(&a, &a2) && a.origin == a2.origin);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf_reader r;
	size_t count;
	uint8_t mode;

	buf_reader_init(&r, data, size);
	if (!buf_get_u8(&r, &mode))
		return 0;
	switch (mode % 5) {
	case 0: vlus(&r); break;
	case 1: fields(&r); break;
	case 2: options(&r); break;
	case 3: addresses(&r); break;
	default:
		if (buf_reader_remaining(&r) > 0) {
			struct rtmfp_wire_span rest;

			buf_get_rest(&r, &rest.p, &rest.len);
			rtmfp_wire_address_list_valid(rest, &count);
			rtmfp_wire_option_list_valid(rest);
		}
		break;
	}
	return 0;
}
