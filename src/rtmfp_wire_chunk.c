/*
 * rtmfp_wire_chunk.c - codecs for the RTMFP chunks of RFC 7016 section 2.3
 * and the User Data options of 2.3.11.1 (see rtmfp_wire.h).
 *
 * Decoders read the chunk value through a struct buf_reader and return 0
 * or BFS_EMALFORMED; byte strings in their output borrow the value.
 * Encoders write a whole chunk between rtmfp_wire_chunk_open() and
 * rtmfp_wire_chunk_close(), so a chunk that does not fit leaves the writer
 * as it was.
 */
#include <errno.h>
#include <string.h>

#include "buddyfs/buf.h"
#include "buddyfs/err.h"
#include "buddyfs/rtmfp_wire.h"
#include "rtmfp_wire_internal.h"

/*
 * rest - borrow every byte left in @r as a span (NULL when empty).  An
 * empty reader is not asked at all: its base may be NULL, and buf.c would
 * then form NULL + 0.
 */
static struct rtmfp_wire_span rest(struct buf_reader *r)
{
	struct rtmfp_wire_span s = { NULL, 0 };

	if (buf_reader_ok(r) && buf_reader_remaining(r) > 0)
		buf_get_rest(r, &s.p, &s.len);
	return s;
}

/* done - the result of a decoder that read its fields through @r. */
static int done(const struct buf_reader *r)
{
	return buf_reader_ok(r) ? 0 : BFS_EMALFORMED;
}

/* put_span - buf_put_bytes() of a span. */
static bool put_span(struct buf_writer *w, struct rtmfp_wire_span s)
{
	return buf_put_bytes(w, s.p, s.len);
}

/* put_field_span - rtmfp_wire_put_field() of a span. */
static bool put_field_span(struct buf_writer *w, struct rtmfp_wire_span s)
{
	return rtmfp_wire_put_field(w, s.p, s.len);
}

/* ---- names ---- */

const char *rtmfp_wire_chunk_name(uint8_t type)
{
	switch (type) {
	case RTMFP_WIRE_CHUNK_PING: return "Ping";
	case RTMFP_WIRE_CHUNK_CLOSE: return "Session Close Request";
	case RTMFP_WIRE_CHUNK_FIHELLO: return "FIHello";
	case RTMFP_WIRE_CHUNK_USERDATA: return "User Data";
	case RTMFP_WIRE_CHUNK_NEXT_USERDATA: return "Next User Data";
	case RTMFP_WIRE_CHUNK_BUFFER_PROBE: return "Buffer Probe";
	case RTMFP_WIRE_CHUNK_IHELLO: return "IHello";
	case RTMFP_WIRE_CHUNK_IIKEYING: return "IIKeying";
	case RTMFP_WIRE_CHUNK_PING_REPLY: return "Ping Reply";
	case RTMFP_WIRE_CHUNK_CLOSE_ACK: return "Session Close Acknowledgement";
	case RTMFP_WIRE_CHUNK_ACK_BITMAP: return "Data Ack Bitmap";
	case RTMFP_WIRE_CHUNK_ACK_RANGES: return "Data Ack Ranges";
	case RTMFP_WIRE_CHUNK_EXCEPTION: return "Flow Exception Report";
	case RTMFP_WIRE_CHUNK_RHELLO: return "RHello";
	case RTMFP_WIRE_CHUNK_REDIRECT: return "Redirect";
	case RTMFP_WIRE_CHUNK_RIKEYING: return "RIKeying";
	case RTMFP_WIRE_CHUNK_COOKIE_CHANGE: return "Cookie Change";
	case RTMFP_WIRE_CHUNK_FRAGMENT: return "Packet Fragment";
	case RTMFP_WIRE_CHUNK_PADDING: return "Padding";
	default: return "unknown";
	}
}

/* ---- IHello 0x30 (2.3.2) ---- */

int rtmfp_wire_ihello_decode(struct rtmfp_wire_ihello *out, const uint8_t *value, size_t len)
{
	struct buf_reader r;

	memset(out, 0, sizeof(*out));
	buf_reader_init(&r, value, len);
	rtmfp_wire_get_field(&r, &out->epd);
	out->tag = rest(&r);
	return done(&r);
}

int rtmfp_wire_ihello_encode(struct buf_writer *w, const struct rtmfp_wire_ihello *c)
{
	size_t mark;
	int rc = rtmfp_wire_chunk_open(w, RTMFP_WIRE_CHUNK_IHELLO, &mark);

	if (rc)
		return rc;
	put_field_span(w, c->epd);
	put_span(w, c->tag);
	return rtmfp_wire_chunk_close(w, mark);
}

/* ---- FIHello 0x0f (2.3.3) ---- */

int rtmfp_wire_fihello_decode(struct rtmfp_wire_fihello *out, const uint8_t *value, size_t len)
{
	struct buf_reader r;

	memset(out, 0, sizeof(*out));
	buf_reader_init(&r, value, len);
	rtmfp_wire_get_field(&r, &out->epd);
	rtmfp_wire_get_address(&r, &out->reply_address);
	out->tag = rest(&r);
	return done(&r);
}

int rtmfp_wire_fihello_encode(struct buf_writer *w, const struct rtmfp_wire_fihello *c)
{
	size_t mark;
	int rc;

	if (rtmfp_wire_address_size(&c->reply_address) == 0)
		return -EINVAL;
	rc = rtmfp_wire_chunk_open(w, RTMFP_WIRE_CHUNK_FIHELLO, &mark);
	if (rc)
		return rc;
	put_field_span(w, c->epd);
	rtmfp_wire_put_address(w, &c->reply_address);
	put_span(w, c->tag);
	return rtmfp_wire_chunk_close(w, mark);
}

/* ---- RHello 0x70 (2.3.4) ---- */

int rtmfp_wire_rhello_decode(struct rtmfp_wire_rhello *out, const uint8_t *value, size_t len)
{
	struct buf_reader r;

	memset(out, 0, sizeof(*out));
	buf_reader_init(&r, value, len);
	rtmfp_wire_get_field(&r, &out->tag);
	rtmfp_wire_get_field(&r, &out->cookie);
	out->cert = rest(&r);
	return done(&r);
}

int rtmfp_wire_rhello_encode(struct buf_writer *w, const struct rtmfp_wire_rhello *c)
{
	size_t mark;
	int rc = rtmfp_wire_chunk_open(w, RTMFP_WIRE_CHUNK_RHELLO, &mark);

	if (rc)
		return rc;
	put_field_span(w, c->tag);
	put_field_span(w, c->cookie);
	put_span(w, c->cert);
	return rtmfp_wire_chunk_close(w, mark);
}

/* ---- Redirect 0x71 (2.3.5) ---- */

int rtmfp_wire_redirect_decode(struct rtmfp_wire_redirect *out, const uint8_t *value, size_t len)
{
	struct buf_reader r;

	memset(out, 0, sizeof(*out));
	buf_reader_init(&r, value, len);
	if (!rtmfp_wire_get_field(&r, &out->tag))
		return BFS_EMALFORMED;
	out->addresses = rest(&r);
	if (!rtmfp_wire_address_list_valid(out->addresses, &out->address_count)) {
		memset(out, 0, sizeof(*out));
		return BFS_EMALFORMED;
	}
	return 0;
}

int rtmfp_wire_redirect_encode(struct buf_writer *w, const struct rtmfp_wire_redirect *c)
{
	size_t mark;
	int rc;

	if (!rtmfp_wire_address_list_valid(c->addresses, NULL))
		return -EINVAL;
	rc = rtmfp_wire_chunk_open(w, RTMFP_WIRE_CHUNK_REDIRECT, &mark);
	if (rc)
		return rc;
	put_field_span(w, c->tag);
	put_span(w, c->addresses);
	return rtmfp_wire_chunk_close(w, mark);
}

/* ---- Cookie Change 0x79 (2.3.6) ---- */

int rtmfp_wire_cookie_change_decode(struct rtmfp_wire_cookie_change *out, const uint8_t *value,
				    size_t len)
{
	struct buf_reader r;

	memset(out, 0, sizeof(*out));
	buf_reader_init(&r, value, len);
	rtmfp_wire_get_field(&r, &out->old_cookie);
	out->new_cookie = rest(&r);
	return done(&r);
}

int rtmfp_wire_cookie_change_encode(struct buf_writer *w, const struct rtmfp_wire_cookie_change *c)
{
	size_t mark;
	int rc = rtmfp_wire_chunk_open(w, RTMFP_WIRE_CHUNK_COOKIE_CHANGE, &mark);

	if (rc)
		return rc;
	put_field_span(w, c->old_cookie);
	put_span(w, c->new_cookie);
	return rtmfp_wire_chunk_close(w, mark);
}

/* ---- IIKeying 0x38 (2.3.7) and RIKeying 0x78 (2.3.8) ---- */

int rtmfp_wire_iikeying_decode(struct rtmfp_wire_iikeying *out, const uint8_t *value, size_t len)
{
	struct buf_reader r, s;

	memset(out, 0, sizeof(*out));
	buf_reader_init(&r, value, len);
	buf_get_u32be(&r, &out->session_id);
	rtmfp_wire_get_field(&r, &out->cookie);
	rtmfp_wire_get_field(&r, &out->cert);
	rtmfp_wire_get_field(&r, &out->skic);
	if (!buf_reader_ok(&r)) {
		memset(out, 0, sizeof(*out));
		return BFS_EMALFORMED;
	}
	/* the signed part: every byte read so far */
	buf_reader_init(&s, value, len);
	buf_get_ref(&s, r.pos, &out->signed_part.p);
	out->signed_part.len = r.pos;
	out->signature = rest(&r);
	return 0;
}

int rtmfp_wire_iikeying_put_signed(struct buf_writer *w, const struct rtmfp_wire_iikeying *c)
{
	size_t mark = buf_writer_mark(w);

	if (!buf_writer_ok(w))
		return BFS_ETOOBIG;
	if (buf_put_u32be(w, c->session_id) && put_field_span(w, c->cookie) &&
	    put_field_span(w, c->cert) && put_field_span(w, c->skic))
		return 0;
	buf_writer_rollback(w, mark);
	return BFS_ETOOBIG;
}

int rtmfp_wire_iikeying_encode(struct buf_writer *w, const struct rtmfp_wire_iikeying *c)
{
	size_t mark;
	int rc = rtmfp_wire_chunk_open(w, RTMFP_WIRE_CHUNK_IIKEYING, &mark);

	if (rc)
		return rc;
	if (rtmfp_wire_iikeying_put_signed(w, c) == 0)
		put_span(w, c->signature);
	else
		w->err = true;
	return rtmfp_wire_chunk_close(w, mark);
}

int rtmfp_wire_rikeying_decode(struct rtmfp_wire_rikeying *out, const uint8_t *value, size_t len)
{
	struct buf_reader r, s;

	memset(out, 0, sizeof(*out));
	buf_reader_init(&r, value, len);
	buf_get_u32be(&r, &out->session_id);
	rtmfp_wire_get_field(&r, &out->skrc);
	if (!buf_reader_ok(&r)) {
		memset(out, 0, sizeof(*out));
		return BFS_EMALFORMED;
	}
	buf_reader_init(&s, value, len);
	buf_get_ref(&s, r.pos, &out->signed_part.p);
	out->signed_part.len = r.pos;
	out->signature = rest(&r);
	return 0;
}

int rtmfp_wire_rikeying_put_signed(struct buf_writer *w, const struct rtmfp_wire_rikeying *c)
{
	size_t mark = buf_writer_mark(w);

	if (!buf_writer_ok(w))
		return BFS_ETOOBIG;
	if (buf_put_u32be(w, c->session_id) && put_field_span(w, c->skrc))
		return 0;
	buf_writer_rollback(w, mark);
	return BFS_ETOOBIG;
}

int rtmfp_wire_rikeying_encode(struct buf_writer *w, const struct rtmfp_wire_rikeying *c)
{
	size_t mark;
	int rc = rtmfp_wire_chunk_open(w, RTMFP_WIRE_CHUNK_RIKEYING, &mark);

	if (rc)
		return rc;
	if (rtmfp_wire_rikeying_put_signed(w, c) == 0)
		put_span(w, c->signature);
	else
		w->err = true;
	return rtmfp_wire_chunk_close(w, mark);
}

/* ---- Ping 0x01 and Ping Reply 0x41 (2.3.9, 2.3.10) ---- */

int rtmfp_wire_ping_decode(struct rtmfp_wire_ping *out, const uint8_t *value, size_t len)
{
	struct buf_reader r;

	buf_reader_init(&r, value, len);
	out->message = rest(&r);
	return 0;
}

int rtmfp_wire_ping_encode(struct buf_writer *w, uint8_t type, const struct rtmfp_wire_ping *c)
{
	size_t mark;
	int rc;

	if (type != RTMFP_WIRE_CHUNK_PING && type != RTMFP_WIRE_CHUNK_PING_REPLY)
		return -EINVAL;
	rc = rtmfp_wire_chunk_open(w, type, &mark);
	if (rc)
		return rc;
	put_span(w, c->message);
	return rtmfp_wire_chunk_close(w, mark);
}

/* ---- User Data 0x10 (2.3.11) and Next User Data 0x11 (2.3.12) ---- */

/* userdata_tail - the option list (if flagged) and the data of @out. */
static int userdata_tail(struct rtmfp_wire_userdata *out, struct buf_reader *r)
{
	if ((out->flags & RTMFP_WIRE_UD_FLAG_OPT) && !rtmfp_wire_get_option_list(r, &out->options))
		return BFS_EMALFORMED;
	out->data = rest(r);
	return done(r);
}

int rtmfp_wire_userdata_decode(struct rtmfp_wire_userdata *out, const uint8_t *value, size_t len)
{
	struct buf_reader r;
	int rc;

	memset(out, 0, sizeof(*out));
	buf_reader_init(&r, value, len);
	buf_get_u8(&r, &out->flags);
	rtmfp_wire_get_vlu(&r, &out->flow_id);
	rtmfp_wire_get_vlu(&r, &out->seq);
	rtmfp_wire_get_vlu(&r, &out->fsn_offset);
	if (!buf_reader_ok(&r) || out->fsn_offset > out->seq)
		rc = BFS_EMALFORMED;
	else
		rc = userdata_tail(out, &r);
	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

int rtmfp_wire_next_userdata_decode(struct rtmfp_wire_userdata *out, const uint8_t *value, size_t len)
{
	struct buf_reader r;
	int rc;

	memset(out, 0, sizeof(*out));
	buf_reader_init(&r, value, len);
	if (!buf_get_u8(&r, &out->flags))
		rc = BFS_EMALFORMED;
	else
		rc = userdata_tail(out, &r);
	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

int rtmfp_wire_userdata_expand_next(struct rtmfp_wire_userdata *next,
				    const struct rtmfp_wire_userdata *prev)
{
	if (prev->seq == UINT64_MAX || prev->fsn_offset > prev->seq)
		return BFS_EMALFORMED;
	next->flow_id = prev->flow_id;
	next->seq = prev->seq + 1;
	next->fsn_offset = prev->fsn_offset + 1;
	return 0;
}

size_t rtmfp_wire_userdata_header_size(uint64_t flow_id, uint64_t seq, uint64_t fsn_offset)
{
	return RTMFP_WIRE_CHUNK_HEADER_BYTES + 1 + rtmfp_wire_vlu_size(flow_id) +
	       rtmfp_wire_vlu_size(seq) + rtmfp_wire_vlu_size(fsn_offset);
}

/* userdata_check - whether @c can be encoded (options agree with OPT). */
static bool userdata_check(const struct rtmfp_wire_userdata *c)
{
	if (!(c->flags & RTMFP_WIRE_UD_FLAG_OPT))
		return c->options.len == 0;
	return rtmfp_wire_option_list_valid(c->options);
}

/* put_userdata_tail - option list with marker (if flagged), then data. */
static void put_userdata_tail(struct buf_writer *w, const struct rtmfp_wire_userdata *c)
{
	if (c->flags & RTMFP_WIRE_UD_FLAG_OPT) {
		put_span(w, c->options);
		rtmfp_wire_put_marker(w);
	}
	put_span(w, c->data);
}

int rtmfp_wire_userdata_encode(struct buf_writer *w, const struct rtmfp_wire_userdata *c)
{
	size_t mark;
	int rc;

	if (!userdata_check(c) || c->fsn_offset > c->seq)
		return -EINVAL;
	rc = rtmfp_wire_chunk_open(w, RTMFP_WIRE_CHUNK_USERDATA, &mark);
	if (rc)
		return rc;
	buf_put_u8(w, c->flags);
	rtmfp_wire_put_vlu(w, c->flow_id);
	rtmfp_wire_put_vlu(w, c->seq);
	rtmfp_wire_put_vlu(w, c->fsn_offset);
	put_userdata_tail(w, c);
	return rtmfp_wire_chunk_close(w, mark);
}

int rtmfp_wire_next_userdata_encode(struct buf_writer *w, const struct rtmfp_wire_userdata *c)
{
	size_t mark;
	int rc;

	if (!userdata_check(c))
		return -EINVAL;
	rc = rtmfp_wire_chunk_open(w, RTMFP_WIRE_CHUNK_NEXT_USERDATA, &mark);
	if (rc)
		return rc;
	buf_put_u8(w, c->flags);
	put_userdata_tail(w, c);
	return rtmfp_wire_chunk_close(w, mark);
}

/* ---- User Data options (2.3.11.1) ---- */

int rtmfp_wire_flow_options_parse(struct rtmfp_wire_flow_options *out, struct rtmfp_wire_span list)
{
	struct rtmfp_wire_option_iter it;
	struct rtmfp_wire_option opt;
	int rc;

	memset(out, 0, sizeof(*out));
	rtmfp_wire_option_iter_init(&it, list);
	while ((rc = rtmfp_wire_option_next(&it, &opt)) == 1) {
		switch (opt.type) {
		case RTMFP_WIRE_UD_OPTION_METADATA:
			out->has_metadata = true;
			out->metadata = opt.value;
			break;
		case RTMFP_WIRE_UD_OPTION_RETURN_ASSOCIATION:
			/* the value is exactly one VLU */
			if (opt.value.len == 0 || opt.value.len > RTMFP_WIRE_VLU_MAX_BYTES ||
			    rtmfp_wire_vlu_decode(&out->return_flow_id, opt.value.p, opt.value.len) !=
			    (int)opt.value.len)
				goto bad;
			out->has_return_flow = true;
			break;
		default:
			if (opt.type < RTMFP_WIRE_UD_OPTION_MANDATORY_BELOW)
				out->unknown_mandatory = true;
			break;
		}
	}
	/* a marker inside the list (rc 0 before its end) is malformed too */
	if (rc == 0 && buf_reader_done(&it.r))
		return 0;
bad:
	memset(out, 0, sizeof(*out));
	return BFS_EMALFORMED;
}

bool rtmfp_wire_put_option_metadata(struct buf_writer *w, const void *metadata, size_t len)
{
	return rtmfp_wire_put_option(w, RTMFP_WIRE_UD_OPTION_METADATA, metadata, len);
}

bool rtmfp_wire_put_option_return_flow(struct buf_writer *w, uint64_t flow_id)
{
	return rtmfp_wire_put_option_vlu(w, RTMFP_WIRE_UD_OPTION_RETURN_ASSOCIATION, flow_id);
}

/* ---- Data Ack Bitmap 0x50 and Ranges 0x51 (2.3.13, 2.3.14) ---- */

/* ack_head - the three VLUs both ack chunks start with. */
static void ack_head(struct buf_reader *r, struct rtmfp_wire_ack *out)
{
	rtmfp_wire_get_vlu(r, &out->flow_id);
	rtmfp_wire_get_vlu(r, &out->buffer_blocks);
	rtmfp_wire_get_vlu(r, &out->cumulative_ack);
}

int rtmfp_wire_ack_bitmap_decode(struct rtmfp_wire_ack *out, const uint8_t *value, size_t len)
{
	struct buf_reader r;

	memset(out, 0, sizeof(*out));
	buf_reader_init(&r, value, len);
	ack_head(&r, out);
	if (!buf_reader_ok(&r)) {
		memset(out, 0, sizeof(*out));
		return BFS_EMALFORMED;
	}
	out->bitmap = rest(&r);
	return 0;
}

/*
 * next_range - read one (holes - 1, received - 1) pair from @r and turn
 * it into the absolute range after *cursor.  Returns 1 with the range,
 * 0 if no whole pair is left (nothing consumed), BFS_EMALFORMED if the
 * sequence numbers would pass 2^64 - 1.
 */
static int next_range(struct buf_reader *r, uint64_t *cursor, struct rtmfp_wire_seq_range *out)
{
	struct buf_reader t = *r;
	uint64_t holes, received;

	if (!rtmfp_wire_get_vlu(&t, &holes) || !rtmfp_wire_get_vlu(&t, &received))
		return 0;
	/* first = cursor + (holes - 1) + 2, last = first + (received - 1) */
	if (*cursor > UINT64_MAX - 2 || holes > UINT64_MAX - 2 - *cursor)
		return BFS_EMALFORMED;
	out->first = *cursor + holes + 2;
	if (received > UINT64_MAX - out->first)
		return BFS_EMALFORMED;
	out->last = out->first + received;
	*cursor = out->last;
	*r = t;
	return 1;
}

int rtmfp_wire_ack_ranges_decode(struct rtmfp_wire_ack *out, const uint8_t *value, size_t len)
{
	struct buf_reader r, s;
	struct rtmfp_wire_seq_range range;
	uint64_t cursor;
	size_t start;
	int rc;

	memset(out, 0, sizeof(*out));
	buf_reader_init(&r, value, len);
	ack_head(&r, out);
	if (!buf_reader_ok(&r))
		goto bad;
	start = r.pos;
	cursor = out->cumulative_ack;
	while ((rc = next_range(&r, &cursor, &range)) == 1)
		out->range_count++;
	if (rc < 0)
		goto bad;
	/* keep the whole pairs; a cut-short trailing VLU is dropped */
	buf_reader_init(&s, value, len);
	buf_skip(&s, start);
	buf_get_ref(&s, r.pos - start, &out->ranges.p);
	out->ranges.len = r.pos - start;
	if (out->ranges.len == 0)
		out->ranges.p = NULL;
	return 0;
bad:
	memset(out, 0, sizeof(*out));
	return BFS_EMALFORMED;
}

void rtmfp_wire_ack_iter_init(struct rtmfp_wire_ack_iter *it, const struct rtmfp_wire_ack *a)
{
	buf_reader_init(&it->r, a->ranges.p, a->ranges.len);
	it->cursor = a->cumulative_ack;
}

int rtmfp_wire_ack_iter_next(struct rtmfp_wire_ack_iter *it, struct rtmfp_wire_seq_range *out)
{
	int rc;

	out->first = out->last = 0;
	if (!buf_reader_ok(&it->r))
		return BFS_EMALFORMED;
	if (buf_reader_remaining(&it->r) == 0)
		return 0;
	rc = next_range(&it->r, &it->cursor, out);
	if (rc == 1)
		return 1;
	it->r.err = true;
	return BFS_EMALFORMED;
}

/* ranges_valid - @ranges is whole pairs that do not overflow. */
static bool ranges_valid(const struct rtmfp_wire_ack *c)
{
	struct rtmfp_wire_ack_iter it;
	struct rtmfp_wire_seq_range range;
	int rc;

	rtmfp_wire_ack_iter_init(&it, c);
	while ((rc = rtmfp_wire_ack_iter_next(&it, &range)) == 1)
		;
	return rc == 0;
}

static int ack_encode(struct buf_writer *w, uint8_t type, const struct rtmfp_wire_ack *c,
		      struct rtmfp_wire_span tail)
{
	size_t mark;
	int rc = rtmfp_wire_chunk_open(w, type, &mark);

	if (rc)
		return rc;
	rtmfp_wire_put_vlu(w, c->flow_id);
	rtmfp_wire_put_vlu(w, c->buffer_blocks);
	rtmfp_wire_put_vlu(w, c->cumulative_ack);
	put_span(w, tail);
	return rtmfp_wire_chunk_close(w, mark);
}

int rtmfp_wire_ack_ranges_encode(struct buf_writer *w, const struct rtmfp_wire_ack *c)
{
	if (!ranges_valid(c))
		return -EINVAL;
	return ack_encode(w, RTMFP_WIRE_CHUNK_ACK_RANGES, c, c->ranges);
}

int rtmfp_wire_ack_bitmap_encode(struct buf_writer *w, const struct rtmfp_wire_ack *c)
{
	return ack_encode(w, RTMFP_WIRE_CHUNK_ACK_BITMAP, c, c->bitmap);
}

int rtmfp_wire_ack_ranges_build(struct buf_writer *w, uint64_t flow_id, uint64_t buffer_blocks,
				uint64_t cumulative_ack, const struct rtmfp_wire_seq_range *ranges,
				size_t n, size_t *written)
{
	uint64_t cursor = cumulative_ack;
	size_t mark, pair;
	int rc;

	*written = 0;
	for (size_t i = 0; i < n; i++) {
		if (cursor > UINT64_MAX - 2 || ranges[i].first < cursor + 2 ||
		    ranges[i].last < ranges[i].first)
			return -EINVAL;
		cursor = ranges[i].last;
	}
	rc = rtmfp_wire_chunk_open(w, RTMFP_WIRE_CHUNK_ACK_RANGES, &mark);
	if (rc)
		return rc;
	rtmfp_wire_put_vlu(w, flow_id);
	rtmfp_wire_put_vlu(w, buffer_blocks);
	rtmfp_wire_put_vlu(w, cumulative_ack);
	if (!buf_writer_ok(w)) {
		buf_writer_rollback(w, mark);
		return BFS_ETOOBIG;
	}
	cursor = cumulative_ack;
	for (size_t i = 0; i < n; i++) {
		pair = buf_writer_mark(w);
		rtmfp_wire_put_vlu(w, ranges[i].first - cursor - 2);
		rtmfp_wire_put_vlu(w, ranges[i].last - ranges[i].first);
		if (!buf_writer_ok(w) ||
		    w->len - mark - RTMFP_WIRE_CHUNK_HEADER_BYTES > RTMFP_WIRE_CHUNK_MAX_VALUE_BYTES) {
			buf_writer_rollback(w, pair);
			break;
		}
		cursor = ranges[i].last;
		(*written)++;
	}
	rc = rtmfp_wire_chunk_close(w, mark);
	if (rc)
		*written = 0;
	return rc;
}

/* ---- Buffer Probe 0x18, Flow Exception Report 0x5e, Close 0x0c/0x4c ---- */

int rtmfp_wire_buffer_probe_decode(struct rtmfp_wire_buffer_probe *out, const uint8_t *value,
				   size_t len)
{
	struct buf_reader r;

	buf_reader_init(&r, value, len);
	if (!rtmfp_wire_get_vlu(&r, &out->flow_id))
		return BFS_EMALFORMED;
	return 0;
}

int rtmfp_wire_buffer_probe_encode(struct buf_writer *w, const struct rtmfp_wire_buffer_probe *c)
{
	size_t mark;
	int rc = rtmfp_wire_chunk_open(w, RTMFP_WIRE_CHUNK_BUFFER_PROBE, &mark);

	if (rc)
		return rc;
	rtmfp_wire_put_vlu(w, c->flow_id);
	return rtmfp_wire_chunk_close(w, mark);
}

int rtmfp_wire_exception_decode(struct rtmfp_wire_exception *out, const uint8_t *value, size_t len)
{
	struct buf_reader r;

	buf_reader_init(&r, value, len);
	rtmfp_wire_get_vlu(&r, &out->flow_id);
	rtmfp_wire_get_vlu(&r, &out->code);
	if (!buf_reader_ok(&r)) {
		out->flow_id = out->code = 0;
		return BFS_EMALFORMED;
	}
	return 0;
}

int rtmfp_wire_exception_encode(struct buf_writer *w, const struct rtmfp_wire_exception *c)
{
	size_t mark;
	int rc = rtmfp_wire_chunk_open(w, RTMFP_WIRE_CHUNK_EXCEPTION, &mark);

	if (rc)
		return rc;
	rtmfp_wire_put_vlu(w, c->flow_id);
	rtmfp_wire_put_vlu(w, c->code);
	return rtmfp_wire_chunk_close(w, mark);
}

int rtmfp_wire_close_encode(struct buf_writer *w, uint8_t type)
{
	size_t mark;
	int rc;

	if (type != RTMFP_WIRE_CHUNK_CLOSE && type != RTMFP_WIRE_CHUNK_CLOSE_ACK)
		return -EINVAL;
	rc = rtmfp_wire_chunk_open(w, type, &mark);
	if (rc)
		return rc;
	return rtmfp_wire_chunk_close(w, mark);
}

/* ---- any chunk ---- */

bool rtmfp_wire_chunk_known(uint8_t type)
{
	switch (type) {
	case RTMFP_WIRE_CHUNK_IHELLO:
	case RTMFP_WIRE_CHUNK_FIHELLO:
	case RTMFP_WIRE_CHUNK_RHELLO:
	case RTMFP_WIRE_CHUNK_REDIRECT:
	case RTMFP_WIRE_CHUNK_COOKIE_CHANGE:
	case RTMFP_WIRE_CHUNK_IIKEYING:
	case RTMFP_WIRE_CHUNK_RIKEYING:
	case RTMFP_WIRE_CHUNK_PING:
	case RTMFP_WIRE_CHUNK_PING_REPLY:
	case RTMFP_WIRE_CHUNK_USERDATA:
	case RTMFP_WIRE_CHUNK_NEXT_USERDATA:
	case RTMFP_WIRE_CHUNK_ACK_BITMAP:
	case RTMFP_WIRE_CHUNK_ACK_RANGES:
	case RTMFP_WIRE_CHUNK_BUFFER_PROBE:
	case RTMFP_WIRE_CHUNK_EXCEPTION:
	case RTMFP_WIRE_CHUNK_CLOSE:
	case RTMFP_WIRE_CHUNK_CLOSE_ACK:
		return true;
	default:
		return false;
	}
}

int rtmfp_wire_chunk_decode(struct rtmfp_wire_chunk_body *out, const struct rtmfp_wire_chunk *c)
{
	const uint8_t *v = c->value.p;
	size_t n = c->value.len;

	memset(out, 0, sizeof(*out));
	out->type = c->type;
	switch (c->type) {
	case RTMFP_WIRE_CHUNK_IHELLO: return rtmfp_wire_ihello_decode(&out->u.ihello, v, n);
	case RTMFP_WIRE_CHUNK_FIHELLO: return rtmfp_wire_fihello_decode(&out->u.fihello, v, n);
	case RTMFP_WIRE_CHUNK_RHELLO: return rtmfp_wire_rhello_decode(&out->u.rhello, v, n);
	case RTMFP_WIRE_CHUNK_REDIRECT: return rtmfp_wire_redirect_decode(&out->u.redirect, v, n);
	case RTMFP_WIRE_CHUNK_COOKIE_CHANGE:
		return rtmfp_wire_cookie_change_decode(&out->u.cookie_change, v, n);
	case RTMFP_WIRE_CHUNK_IIKEYING: return rtmfp_wire_iikeying_decode(&out->u.iikeying, v, n);
	case RTMFP_WIRE_CHUNK_RIKEYING: return rtmfp_wire_rikeying_decode(&out->u.rikeying, v, n);
	case RTMFP_WIRE_CHUNK_PING:
	case RTMFP_WIRE_CHUNK_PING_REPLY: return rtmfp_wire_ping_decode(&out->u.ping, v, n);
	case RTMFP_WIRE_CHUNK_USERDATA: return rtmfp_wire_userdata_decode(&out->u.userdata, v, n);
	case RTMFP_WIRE_CHUNK_NEXT_USERDATA:
		return rtmfp_wire_next_userdata_decode(&out->u.userdata, v, n);
	case RTMFP_WIRE_CHUNK_ACK_BITMAP: return rtmfp_wire_ack_bitmap_decode(&out->u.ack, v, n);
	case RTMFP_WIRE_CHUNK_ACK_RANGES: return rtmfp_wire_ack_ranges_decode(&out->u.ack, v, n);
	case RTMFP_WIRE_CHUNK_BUFFER_PROBE:
		return rtmfp_wire_buffer_probe_decode(&out->u.buffer_probe, v, n);
	case RTMFP_WIRE_CHUNK_EXCEPTION: return rtmfp_wire_exception_decode(&out->u.exception, v, n);
	case RTMFP_WIRE_CHUNK_CLOSE:
	case RTMFP_WIRE_CHUNK_CLOSE_ACK:
		return 0;
	default:
		out->u.raw = c->value;
		return 0;
	}
}

int rtmfp_wire_chunk_encode(struct buf_writer *w, const struct rtmfp_wire_chunk_body *b)
{
	size_t mark;
	int rc;

	switch (b->type) {
	case RTMFP_WIRE_CHUNK_IHELLO: return rtmfp_wire_ihello_encode(w, &b->u.ihello);
	case RTMFP_WIRE_CHUNK_FIHELLO: return rtmfp_wire_fihello_encode(w, &b->u.fihello);
	case RTMFP_WIRE_CHUNK_RHELLO: return rtmfp_wire_rhello_encode(w, &b->u.rhello);
	case RTMFP_WIRE_CHUNK_REDIRECT: return rtmfp_wire_redirect_encode(w, &b->u.redirect);
	case RTMFP_WIRE_CHUNK_COOKIE_CHANGE:
		return rtmfp_wire_cookie_change_encode(w, &b->u.cookie_change);
	case RTMFP_WIRE_CHUNK_IIKEYING: return rtmfp_wire_iikeying_encode(w, &b->u.iikeying);
	case RTMFP_WIRE_CHUNK_RIKEYING: return rtmfp_wire_rikeying_encode(w, &b->u.rikeying);
	case RTMFP_WIRE_CHUNK_PING:
	case RTMFP_WIRE_CHUNK_PING_REPLY: return rtmfp_wire_ping_encode(w, b->type, &b->u.ping);
	case RTMFP_WIRE_CHUNK_USERDATA: return rtmfp_wire_userdata_encode(w, &b->u.userdata);
	case RTMFP_WIRE_CHUNK_NEXT_USERDATA: return rtmfp_wire_next_userdata_encode(w, &b->u.userdata);
	case RTMFP_WIRE_CHUNK_ACK_BITMAP: return rtmfp_wire_ack_bitmap_encode(w, &b->u.ack);
	case RTMFP_WIRE_CHUNK_ACK_RANGES: return rtmfp_wire_ack_ranges_encode(w, &b->u.ack);
	case RTMFP_WIRE_CHUNK_BUFFER_PROBE: return rtmfp_wire_buffer_probe_encode(w, &b->u.buffer_probe);
	case RTMFP_WIRE_CHUNK_EXCEPTION: return rtmfp_wire_exception_encode(w, &b->u.exception);
	case RTMFP_WIRE_CHUNK_CLOSE:
	case RTMFP_WIRE_CHUNK_CLOSE_ACK: return rtmfp_wire_close_encode(w, b->type);
	default:
		rc = rtmfp_wire_chunk_open(w, b->type, &mark);
		if (rc)
			return rc;
		put_span(w, b->u.raw);
		return rtmfp_wire_chunk_close(w, mark);
	}
}
