/*
 * fuzz_rtmfp_wire_packet.c - a decrypted RTMFP packet: header, chunk
 * iterator and every chunk decoder.  Each chunk that decodes is encoded
 * again and must decode to the same thing; the chunks are also assembled
 * into a new packet with the same header, which must walk the same way.
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

static bool addr_same(const struct rtmfp_wire_address *a, const struct rtmfp_wire_address *b)
{
	return rtmfp_wire_address_eq(a, b) && a->origin == b->origin;
}

/* address lists compare by value: reserved flag bits are not kept */
static bool addr_list_same(struct rtmfp_wire_span x, struct rtmfp_wire_span y)
{
	struct buf_reader rx, ry;
	struct rtmfp_wire_address a, b;

	buf_reader_init(&rx, x.p, x.len);
	buf_reader_init(&ry, y.p, y.len);
	while (buf_reader_remaining(&rx) > 0 && buf_reader_remaining(&ry) > 0) {
		if (!rtmfp_wire_get_address(&rx, &a) || !rtmfp_wire_get_address(&ry, &b) ||
		    !addr_same(&a, &b))
			return false;
	}
	return buf_reader_remaining(&rx) == 0 && buf_reader_remaining(&ry) == 0;
}

/* ack ranges compare by the sequence numbers they name */
static bool ranges_same(const struct rtmfp_wire_ack *x, const struct rtmfp_wire_ack *y)
{
	struct rtmfp_wire_ack_iter ix, iy;
	struct rtmfp_wire_seq_range a, b;
	int rx, ry;

	rtmfp_wire_ack_iter_init(&ix, x);
	rtmfp_wire_ack_iter_init(&iy, y);
	do {
		rx = rtmfp_wire_ack_iter_next(&ix, &a);
		ry = rtmfp_wire_ack_iter_next(&iy, &b);
		if (rx != ry || (rx == 1 && (a.first != b.first || a.last != b.last)))
			return false;
	} while (rx == 1);
	return rx == 0;
}

static bool body_same(const struct rtmfp_wire_chunk_body *x, const struct rtmfp_wire_chunk_body *y)
{
	if (x->type != y->type)
		return false;
	switch (x->type) {
	case RTMFP_WIRE_CHUNK_IHELLO:
		return rtmfp_wire_span_eq(x->u.ihello.epd, y->u.ihello.epd) &&
		       rtmfp_wire_span_eq(x->u.ihello.tag, y->u.ihello.tag);
	case RTMFP_WIRE_CHUNK_FIHELLO:
		return rtmfp_wire_span_eq(x->u.fihello.epd, y->u.fihello.epd) &&
		       addr_same(&x->u.fihello.reply_address, &y->u.fihello.reply_address) &&
		       rtmfp_wire_span_eq(x->u.fihello.tag, y->u.fihello.tag);
	case RTMFP_WIRE_CHUNK_RHELLO:
		return rtmfp_wire_span_eq(x->u.rhello.tag, y->u.rhello.tag) &&
		       rtmfp_wire_span_eq(x->u.rhello.cookie, y->u.rhello.cookie) &&
		       rtmfp_wire_span_eq(x->u.rhello.cert, y->u.rhello.cert);
	case RTMFP_WIRE_CHUNK_REDIRECT:
		return rtmfp_wire_span_eq(x->u.redirect.tag, y->u.redirect.tag) &&
		       x->u.redirect.address_count == y->u.redirect.address_count &&
		       addr_list_same(x->u.redirect.addresses, y->u.redirect.addresses);
	case RTMFP_WIRE_CHUNK_COOKIE_CHANGE:
		return rtmfp_wire_span_eq(x->u.cookie_change.old_cookie, y->u.cookie_change.old_cookie) &&
		       rtmfp_wire_span_eq(x->u.cookie_change.new_cookie, y->u.cookie_change.new_cookie);
	case RTMFP_WIRE_CHUNK_IIKEYING:
		/* signed_part keeps the sender's VLU spelling: not compared */
		return x->u.iikeying.session_id == y->u.iikeying.session_id &&
		       rtmfp_wire_span_eq(x->u.iikeying.cookie, y->u.iikeying.cookie) &&
		       rtmfp_wire_span_eq(x->u.iikeying.cert, y->u.iikeying.cert) &&
		       rtmfp_wire_span_eq(x->u.iikeying.skic, y->u.iikeying.skic) &&
		       rtmfp_wire_span_eq(x->u.iikeying.signature, y->u.iikeying.signature);
	case RTMFP_WIRE_CHUNK_RIKEYING:
		return x->u.rikeying.session_id == y->u.rikeying.session_id &&
		       rtmfp_wire_span_eq(x->u.rikeying.skrc, y->u.rikeying.skrc) &&
		       rtmfp_wire_span_eq(x->u.rikeying.signature, y->u.rikeying.signature);
	case RTMFP_WIRE_CHUNK_PING:
	case RTMFP_WIRE_CHUNK_PING_REPLY:
		return rtmfp_wire_span_eq(x->u.ping.message, y->u.ping.message);
	case RTMFP_WIRE_CHUNK_USERDATA:
	case RTMFP_WIRE_CHUNK_NEXT_USERDATA:
		return x->u.userdata.flags == y->u.userdata.flags &&
		       x->u.userdata.flow_id == y->u.userdata.flow_id &&
		       x->u.userdata.seq == y->u.userdata.seq &&
		       x->u.userdata.fsn_offset == y->u.userdata.fsn_offset &&
		       rtmfp_wire_span_eq(x->u.userdata.options, y->u.userdata.options) &&
		       rtmfp_wire_span_eq(x->u.userdata.data, y->u.userdata.data);
	case RTMFP_WIRE_CHUNK_ACK_BITMAP:
	case RTMFP_WIRE_CHUNK_ACK_RANGES:
		return x->u.ack.flow_id == y->u.ack.flow_id &&
		       x->u.ack.buffer_blocks == y->u.ack.buffer_blocks &&
		       x->u.ack.cumulative_ack == y->u.ack.cumulative_ack &&
		       rtmfp_wire_span_eq(x->u.ack.bitmap, y->u.ack.bitmap) &&
		       x->u.ack.range_count == y->u.ack.range_count && ranges_same(&x->u.ack, &y->u.ack);
	case RTMFP_WIRE_CHUNK_BUFFER_PROBE:
		return x->u.buffer_probe.flow_id == y->u.buffer_probe.flow_id;
	case RTMFP_WIRE_CHUNK_EXCEPTION:
		return x->u.exception.flow_id == y->u.exception.flow_id &&
		       x->u.exception.code == y->u.exception.code;
	case RTMFP_WIRE_CHUNK_CLOSE:
	case RTMFP_WIRE_CHUNK_CLOSE_ACK:
		return true;
	default:
		return rtmfp_wire_span_eq(x->u.raw, y->u.raw);
	}
}

/* extra checks on what a decoded chunk offers its users */
static void use_body(struct rtmfp_wire_chunk_body *b, struct rtmfp_wire_userdata *prev, bool *have_prev)
{
	struct rtmfp_wire_flow_options fo;
	struct rtmfp_wire_seq_range range;
	struct rtmfp_wire_ack_iter it;
	size_t n = 0;

	switch (b->type) {
	case RTMFP_WIRE_CHUNK_USERDATA:
		*prev = b->u.userdata;
		*have_prev = true;
		break;
	case RTMFP_WIRE_CHUNK_NEXT_USERDATA:
		if (*have_prev && rtmfp_wire_userdata_expand_next(&b->u.userdata, prev) == 0) {
			CHECK(b->u.userdata.seq - b->u.userdata.fsn_offset == prev->seq - prev->fsn_offset);
			*prev = b->u.userdata;
		} else {
			*have_prev = false;
		}
		break;
	case RTMFP_WIRE_CHUNK_ACK_RANGES:
		rtmfp_wire_ack_iter_init(&it, &b->u.ack);
		while (rtmfp_wire_ack_iter_next(&it, &range) == 1) {
			CHECK(range.first <= range.last);
			n++;
		}
		CHECK(n == b->u.ack.range_count);
		break;
	default:
		break;
	}
	if ((b->type == RTMFP_WIRE_CHUNK_USERDATA || b->type == RTMFP_WIRE_CHUNK_NEXT_USERDATA) &&
	    (b->u.userdata.flags & RTMFP_WIRE_UD_FLAG_OPT))
		rtmfp_wire_flow_options_parse(&fo, b->u.userdata.options);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t again[RTMFP_WIRE_CHUNK_HEADER_BYTES + RTMFP_WIRE_CHUNK_MAX_VALUE_BYTES];
	static uint8_t packet[1 << 17];
	struct rtmfp_wire_chunk_iter it, it2;
	struct rtmfp_wire_header h, h2;
	struct rtmfp_wire_chunk c, c2;
	struct rtmfp_wire_chunk_body body, body2;
	struct rtmfp_wire_userdata prev;
	struct rtmfp_wire_asm a;
	struct buf_writer w;
	bool have_prev = false;
	size_t chunks = 0, chunks2 = 0;
	int rc;
	uint32_t sid;

	rtmfp_wire_ssid_unscramble(&sid, data, size);
	if (rtmfp_wire_packet_begin(&it, &h, data, size) != 0)
		return 0;
	CHECK(rtmfp_wire_asm_init(&a, packet, sizeof(packet), &h) == 0);
	while ((rc = rtmfp_wire_chunk_next(&it, &c)) == 1) {
		if (rtmfp_wire_chunk_decode(&body, &c) != 0)
			continue;
		/* decode -> encode -> decode gives the same chunk */
		buf_writer_init(&w, again, sizeof(again));
		CHECK(rtmfp_wire_chunk_encode(&w, &body) == 0);
		CHECK(buf_writer_len(&w) <= RTMFP_WIRE_CHUNK_HEADER_BYTES + c.value.len);
		c2.type = again[0];
		c2.value.p = again + RTMFP_WIRE_CHUNK_HEADER_BYTES;
		c2.value.len = buf_writer_len(&w) - RTMFP_WIRE_CHUNK_HEADER_BYTES;
		CHECK(c2.value.len == buf_load16_be(again + 1));
		CHECK(rtmfp_wire_chunk_decode(&body2, &c2) == 0);
		CHECK(body_same(&body, &body2));
		/* and the chunk goes into a new packet */
		CHECK(rtmfp_wire_chunk_encode(&a.w, &body) == 0);
		chunks++;
		use_body(&body, &prev, &have_prev);
	}
	CHECK(rc == 0 || rc == BFS_EMALFORMED);

	CHECK(rtmfp_wire_packet_begin(&it2, &h2, packet, rtmfp_wire_asm_len(&a)) == 0);
	CHECK(h2.has_timestamp == h.has_timestamp && h2.timestamp == h.timestamp);
	CHECK(h2.has_timestamp_echo == h.has_timestamp_echo && h2.timestamp_echo == h.timestamp_echo);
	CHECK(h2.flags == h.flags);
	while (rtmfp_wire_chunk_next(&it2, &c2) == 1) {
		/* a decoded 0x00/0xff chunk at the end may read as padding */
		CHECK(rtmfp_wire_chunk_decode(&body2, &c2) == 0);
		chunks2++;
	}
	CHECK(chunks2 <= chunks);
	return 0;
}
