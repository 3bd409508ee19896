/*
 * rtmfp_wire.c - RTMFP wire primitives, packets and the packet assembler
 * (RFC 7016 sections 2.1 and 2.2; see rtmfp_wire.h).  The chunk codecs of
 * section 2.3 are in rtmfp_wire_chunk.c.
 *
 * Every read of untrusted bytes goes through struct buf_reader; a getter
 * that fails works on a copy of the reader, so the caller's reader is left
 * where it was with only its error flag set.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "buddyfs/buf.h"
#include "buddyfs/err.h"
#include "buddyfs/rtmfp_wire.h"
#include "rtmfp_wire_internal.h"

/* ---- limits ---- */

size_t rtmfp_wire_max_packet_bytes(size_t crypto_overhead)
{
	size_t room = RTMFP_WIRE_MAX_DATAGRAM_BYTES - RTMFP_WIRE_SSID_BYTES;

	/* a packet needs at least a flags byte and one chunk header */
	if (crypto_overhead > room - 1 - RTMFP_WIRE_CHUNK_HEADER_BYTES)
		return 0;
	return room - crypto_overhead;
}

/* ---- header helpers and timestamps ---- */

enum rtmfp_wire_mode rtmfp_wire_header_mode(const struct rtmfp_wire_header *h)
{
	return (enum rtmfp_wire_mode)(h->flags & RTMFP_WIRE_FLAG_MODE_MASK);
}

uint16_t rtmfp_wire_timestamp(uint64_t ms)
{
	return (uint16_t)(ms / RTMFP_WIRE_TIMESTAMP_TICK_MS);
}

uint32_t rtmfp_wire_timestamp_elapsed_ms(uint16_t later, uint16_t earlier)
{
	return (uint32_t)(uint16_t)(later - earlier) * RTMFP_WIRE_TIMESTAMP_TICK_MS;
}

/* ---- scrambled session id (2.2.2) ---- */

/* first_words - the XOR of the two 32-bit words after the SSID (0-filled). */
static uint32_t first_words(const uint8_t *datagram, size_t len)
{
	uint8_t words[8] = { 0 };
	struct buf_reader r;
	size_t n;

	buf_reader_init(&r, datagram, len);
	buf_skip(&r, RTMFP_WIRE_SSID_BYTES);
	n = buf_reader_remaining(&r);
	buf_get_bytes(&r, words, n < sizeof(words) ? n : sizeof(words));
	return buf_load32_be(words) ^ buf_load32_be(words + 4);
}

int rtmfp_wire_ssid_scramble(uint8_t *datagram, size_t len, uint32_t session_id)
{
	if (!datagram || len < RTMFP_WIRE_SSID_BYTES)
		return -EINVAL;
	buf_store32_be(datagram, session_id ^ first_words(datagram, len));
	return 0;
}

int rtmfp_wire_ssid_unscramble(uint32_t *session_id, const uint8_t *datagram, size_t len)
{
	*session_id = 0;
	if (!datagram || len < RTMFP_WIRE_SSID_BYTES)
		return BFS_EMALFORMED;
	*session_id = buf_load32_be(datagram) ^ first_words(datagram, len);
	return 0;
}

/* ---- spans ---- */

bool rtmfp_wire_span_eq(struct rtmfp_wire_span a, struct rtmfp_wire_span b)
{
	if (a.len != b.len)
		return false;
	return a.len == 0 || memcmp(a.p, b.p, a.len) == 0;
}

/* ---- VLU (2.1.2) and fields ---- */

size_t rtmfp_wire_vlu_size(uint64_t v)
{
	size_t n = 1;

	while (v >>= 7)
		n++;
	return n;
}

size_t rtmfp_wire_vlu_encode(uint8_t out[static RTMFP_WIRE_VLU_MAX_BYTES], uint64_t v)
{
	size_t n = rtmfp_wire_vlu_size(v);

	/* the last byte carries the low 7 bits and no continuation bit */
	for (size_t i = n; i-- > 0; v >>= 7)
		out[i] = (uint8_t)((v & 0x7f) | (i == n - 1 ? 0 : 0x80));
	return n;
}

bool rtmfp_wire_get_vlu(struct buf_reader *r, uint64_t *v)
{
	struct buf_reader t = *r;
	uint64_t acc = 0;
	uint8_t b;

	*v = 0;
	for (size_t i = 0; i < RTMFP_WIRE_VLU_MAX_BYTES; i++) {
		if (!buf_get_u8(&t, &b) || acc > (UINT64_MAX >> 7))
			break;
		acc = acc << 7 | (b & 0x7f);
		if (!(b & 0x80)) {
			*r = t;
			*v = acc;
			return true;
		}
	}
	r->err = true;
	return false;
}

int rtmfp_wire_vlu_decode(uint64_t *v, const uint8_t *in, size_t len)
{
	struct buf_reader r;

	buf_reader_init(&r, in, len);
	if (!rtmfp_wire_get_vlu(&r, v))
		return BFS_EMALFORMED;
	return (int)r.pos;
}

bool rtmfp_wire_put_vlu(struct buf_writer *w, uint64_t v)
{
	uint8_t tmp[RTMFP_WIRE_VLU_MAX_BYTES];

	return buf_put_bytes(w, tmp, rtmfp_wire_vlu_encode(tmp, v));
}

bool rtmfp_wire_get_field(struct buf_reader *r, struct rtmfp_wire_span *out)
{
	struct buf_reader t = *r;
	uint64_t n;

	out->p = NULL;
	out->len = 0;
	if (!rtmfp_wire_get_vlu(&t, &n) || n > buf_reader_remaining(&t) ||
	    !buf_get_ref(&t, (size_t)n, &out->p)) {
		out->p = NULL;
		r->err = true;
		return false;
	}
	out->len = (size_t)n;
	*r = t;
	return true;
}

bool rtmfp_wire_put_field(struct buf_writer *w, const void *p, size_t len)
{
	size_t mark = buf_writer_mark(w);

	if (!buf_writer_ok(w))
		return false;
	if (rtmfp_wire_put_vlu(w, len) && buf_put_bytes(w, p, len))
		return true;
	buf_writer_rollback(w, mark);
	w->err = true;
	return false;
}

size_t rtmfp_wire_field_size(size_t len)
{
	return rtmfp_wire_vlu_size(len) + len;
}

/* ---- options (2.1.3, 2.1.4) ---- */

int rtmfp_wire_get_option(struct buf_reader *r, struct rtmfp_wire_option *opt)
{
	struct buf_reader t = *r, body;
	uint64_t n;

	opt->type = 0;
	opt->value.p = NULL;
	opt->value.len = 0;
	if (!rtmfp_wire_get_vlu(&t, &n))
		goto bad;
	if (n == 0) {
		*r = t;
		return 0;
	}
	if (n > buf_reader_remaining(&t) || !buf_get_sub(&t, (size_t)n, &body) ||
	    !rtmfp_wire_get_vlu(&body, &opt->type))
		goto bad;
	buf_get_rest(&body, &opt->value.p, &opt->value.len);
	*r = t;
	return 1;
bad:
	opt->type = 0;
	r->err = true;
	return BFS_EMALFORMED;
}

size_t rtmfp_wire_option_size(uint64_t type, size_t value_len)
{
	size_t body = rtmfp_wire_vlu_size(type) + value_len;

	return rtmfp_wire_vlu_size(body) + body;
}

bool rtmfp_wire_put_option(struct buf_writer *w, uint64_t type, const void *value, size_t len)
{
	size_t mark = buf_writer_mark(w);
	size_t tlen = rtmfp_wire_vlu_size(type);

	if (!buf_writer_ok(w))
		return false;
	if (len > SIZE_MAX - tlen)
		goto fail;
	if (rtmfp_wire_put_vlu(w, tlen + len) && rtmfp_wire_put_vlu(w, type) &&
	    buf_put_bytes(w, value, len))
		return true;
fail:
	buf_writer_rollback(w, mark);
	w->err = true;
	return false;
}

bool rtmfp_wire_put_option_vlu(struct buf_writer *w, uint64_t type, uint64_t v)
{
	uint8_t tmp[RTMFP_WIRE_VLU_MAX_BYTES];

	return rtmfp_wire_put_option(w, type, tmp, rtmfp_wire_vlu_encode(tmp, v));
}

bool rtmfp_wire_put_marker(struct buf_writer *w)
{
	return buf_put_u8(w, 0x00);
}

bool rtmfp_wire_get_option_list(struct buf_reader *r, struct rtmfp_wire_span *list)
{
	struct buf_reader t = *r, start = *r;
	struct rtmfp_wire_option opt;
	size_t n, before;
	int rc;

	list->p = NULL;
	list->len = 0;
	do {
		before = t.pos;
		rc = rtmfp_wire_get_option(&t, &opt);
	} while (rc == 1);
	if (rc < 0) {
		r->err = true;
		return false;
	}
	/* the options are the bytes before the marker */
	n = before - start.pos;
	buf_get_ref(&start, n, &list->p);
	list->len = n;
	if (n == 0)
		list->p = NULL;
	*r = t;
	return true;
}

bool rtmfp_wire_option_list_valid(struct rtmfp_wire_span list)
{
	struct rtmfp_wire_option_iter it;
	struct rtmfp_wire_option opt;
	int rc;

	rtmfp_wire_option_iter_init(&it, list);
	while ((rc = rtmfp_wire_option_next(&it, &opt)) == 1)
		;
	/* a marker inside the list is not allowed either */
	return rc == 0 && buf_reader_done(&it.r);
}

void rtmfp_wire_option_iter_init(struct rtmfp_wire_option_iter *it, struct rtmfp_wire_span list)
{
	buf_reader_init(&it->r, list.p, list.len);
}

int rtmfp_wire_option_next(struct rtmfp_wire_option_iter *it, struct rtmfp_wire_option *opt)
{
	if (!buf_reader_ok(&it->r))
		return BFS_EMALFORMED;
	if (buf_reader_remaining(&it->r) == 0) {
		opt->type = 0;
		opt->value.p = NULL;
		opt->value.len = 0;
		return 0;
	}
	return rtmfp_wire_get_option(&it->r, opt);
}

/* ---- addresses (2.1.5) ---- */

bool rtmfp_wire_get_address(struct buf_reader *r, struct rtmfp_wire_address *out)
{
	struct buf_reader t = *r;
	uint8_t flags, ip[16];
	uint16_t port;
	size_t iplen;

	memset(out, 0, sizeof(*out));
	if (!buf_get_u8(&t, &flags))
		goto bad;
	iplen = (flags & RTMFP_WIRE_ADDR_FLAG_INET6) ? 16 : 4;
	if (!buf_get_bytes(&t, ip, iplen) || !buf_get_u16be(&t, &port))
		goto bad;
	if (iplen == 16) {
		struct sockaddr_in6 sin6;

		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons(port);
		memcpy(&sin6.sin6_addr, ip, 16);
		memcpy(&out->addr, &sin6, sizeof(sin6));
	} else {
		struct sockaddr_in sin;

		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons(port);
		memcpy(&sin.sin_addr, ip, 4);
		memcpy(&out->addr, &sin, sizeof(sin));
	}
	out->origin = (enum rtmfp_wire_origin)(flags & RTMFP_WIRE_ADDR_ORIGIN_MASK);
	*r = t;
	return true;
bad:
	r->err = true;
	return false;
}

size_t rtmfp_wire_address_size(const struct rtmfp_wire_address *a)
{
	switch (a->addr.ss_family) {
	case AF_INET:
		return 1 + 4 + 2;
	case AF_INET6:
		return 1 + 16 + 2;
	default:
		return 0;
	}
}

int rtmfp_wire_put_address(struct buf_writer *w, const struct rtmfp_wire_address *a)
{
	size_t mark = buf_writer_mark(w);
	uint8_t flags = (uint8_t)(a->origin & RTMFP_WIRE_ADDR_ORIGIN_MASK);
	const void *ip;
	size_t iplen;
	uint16_t port;
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	if (a->addr.ss_family == AF_INET) {
		memcpy(&sin, &a->addr, sizeof(sin));
		ip = &sin.sin_addr;
		iplen = 4;
		port = ntohs(sin.sin_port);
	} else if (a->addr.ss_family == AF_INET6) {
		memcpy(&sin6, &a->addr, sizeof(sin6));
		ip = &sin6.sin6_addr;
		iplen = 16;
		port = ntohs(sin6.sin6_port);
		flags |= RTMFP_WIRE_ADDR_FLAG_INET6;
	} else {
		return -EAFNOSUPPORT;
	}
	if (!buf_writer_ok(w))
		return BFS_ETOOBIG;
	if (buf_put_u8(w, flags) && buf_put_bytes(w, ip, iplen) && buf_put_u16be(w, port))
		return 0;
	buf_writer_rollback(w, mark);
	w->err = true;
	return BFS_ETOOBIG;
}

socklen_t rtmfp_wire_address_socklen(const struct rtmfp_wire_address *a)
{
	switch (a->addr.ss_family) {
	case AF_INET:
		return sizeof(struct sockaddr_in);
	case AF_INET6:
		return sizeof(struct sockaddr_in6);
	default:
		return 0;
	}
}

int rtmfp_wire_address_set(struct rtmfp_wire_address *out, const struct sockaddr *sa,
			   socklen_t salen, enum rtmfp_wire_origin origin)
{
	memset(out, 0, sizeof(*out));
	if (!sa || salen < (socklen_t)sizeof(sa->sa_family))
		return -EAFNOSUPPORT;
	if (sa->sa_family == AF_INET && salen >= (socklen_t)sizeof(struct sockaddr_in)) {
		struct sockaddr_in sin;

		memcpy(&sin, sa, sizeof(sin));
		memcpy(&out->addr, &sin, sizeof(sin));
	} else if (sa->sa_family == AF_INET6 && salen >= (socklen_t)sizeof(struct sockaddr_in6)) {
		struct sockaddr_in6 sin6;

		memcpy(&sin6, sa, sizeof(sin6));
		memcpy(&out->addr, &sin6, sizeof(sin6));
	} else {
		return -EAFNOSUPPORT;
	}
	out->origin = (enum rtmfp_wire_origin)(origin & RTMFP_WIRE_ADDR_ORIGIN_MASK);
	return 0;
}

bool rtmfp_wire_address_eq(const struct rtmfp_wire_address *a, const struct rtmfp_wire_address *b)
{
	if (a->addr.ss_family != b->addr.ss_family)
		return false;
	if (a->addr.ss_family == AF_INET) {
		struct sockaddr_in x, y;

		memcpy(&x, &a->addr, sizeof(x));
		memcpy(&y, &b->addr, sizeof(y));
		return x.sin_port == y.sin_port &&
		       memcmp(&x.sin_addr, &y.sin_addr, sizeof(x.sin_addr)) == 0;
	}
	if (a->addr.ss_family == AF_INET6) {
		struct sockaddr_in6 x, y;

		memcpy(&x, &a->addr, sizeof(x));
		memcpy(&y, &b->addr, sizeof(y));
		return x.sin6_port == y.sin6_port &&
		       memcmp(&x.sin6_addr, &y.sin6_addr, sizeof(x.sin6_addr)) == 0;
	}
	return false;
}

bool rtmfp_wire_address_list_valid(struct rtmfp_wire_span list, size_t *count)
{
	struct buf_reader r;
	struct rtmfp_wire_address a;
	size_t n = 0;

	buf_reader_init(&r, list.p, list.len);
	while (buf_reader_remaining(&r) > 0 && rtmfp_wire_get_address(&r, &a))
		n++;
	if (count)
		*count = buf_reader_ok(&r) ? n : 0;
	return buf_reader_ok(&r);
}

/* ---- packets and the chunk iterator (2.2.4) ---- */

int rtmfp_wire_packet_begin(struct rtmfp_wire_chunk_iter *it, struct rtmfp_wire_header *h,
			    const uint8_t *packet, size_t len)
{
	memset(h, 0, sizeof(*h));
	buf_reader_init(&it->r, packet, len);
	it->done = true;
	if (!buf_get_u8(&it->r, &h->flags))
		return BFS_EMALFORMED;
	h->has_timestamp = (h->flags & RTMFP_WIRE_FLAG_TS) != 0;
	h->has_timestamp_echo = (h->flags & RTMFP_WIRE_FLAG_TSE) != 0;
	if (h->has_timestamp && !buf_get_u16be(&it->r, &h->timestamp))
		return BFS_EMALFORMED;
	if (h->has_timestamp_echo && !buf_get_u16be(&it->r, &h->timestamp_echo))
		return BFS_EMALFORMED;
	it->done = false;
	return 0;
}

/* only_zeros - whether every byte left in @r is 0x00 (consumes nothing). */
static bool only_zeros(const struct buf_reader *r)
{
	struct buf_reader t = *r;
	uint8_t b;

	while (buf_get_u8(&t, &b))
		if (b != 0x00)
			return false;
	return true;
}

int rtmfp_wire_chunk_next(struct rtmfp_wire_chunk_iter *it, struct rtmfp_wire_chunk *c)
{
	struct buf_reader peek, value;
	uint8_t type;
	uint16_t len;

	c->type = 0;
	c->value.p = NULL;
	c->value.len = 0;
	if (it->done)
		return buf_reader_ok(&it->r) ? 0 : BFS_EMALFORMED;
	peek = it->r;
	if (buf_reader_remaining(&it->r) < RTMFP_WIRE_CHUNK_HEADER_BYTES ||
	    !buf_get_u8(&peek, &type) || type == RTMFP_WIRE_CHUNK_PADDING ||
	    (type == 0x00 && only_zeros(&it->r))) {
		it->done = true;
		return 0;
	}
	buf_get_u8(&it->r, &type);
	buf_get_u16be(&it->r, &len);
	if (!buf_get_sub(&it->r, len, &value)) {
		it->done = true;
		return BFS_EMALFORMED;
	}
	c->type = type;
	buf_get_rest(&value, &c->value.p, &c->value.len);
	if (c->value.len == 0)
		c->value.p = NULL;
	return 1;
}

/* ---- chunk framing shared with rtmfp_wire_chunk.c ---- */

int rtmfp_wire_chunk_open(struct buf_writer *w, uint8_t type, size_t *mark)
{
	*mark = buf_writer_mark(w);
	if (!buf_writer_ok(w))
		return BFS_ETOOBIG;
	if (buf_put_u8(w, type) && buf_put_u16be(w, 0))
		return 0;
	buf_writer_rollback(w, *mark);
	return BFS_ETOOBIG;
}

int rtmfp_wire_chunk_close(struct buf_writer *w, size_t mark)
{
	size_t vlen;

	if (!buf_writer_ok(w) || w->len - mark < RTMFP_WIRE_CHUNK_HEADER_BYTES)
		goto fail;
	vlen = w->len - mark - RTMFP_WIRE_CHUNK_HEADER_BYTES;
	if (vlen > RTMFP_WIRE_CHUNK_MAX_VALUE_BYTES)
		goto fail;
	/* the length bytes follow the type byte at the (trusted) mark */
	buf_store16_be(w->base + mark + 1, (uint16_t)vlen);
	return 0;
fail:
	buf_writer_rollback(w, mark);
	return BFS_ETOOBIG;
}

/* ---- packet assembler ---- */

int rtmfp_wire_asm_init(struct rtmfp_wire_asm *a, uint8_t *buf, size_t limit,
			const struct rtmfp_wire_header *h)
{
	uint8_t flags = h->flags & (uint8_t) ~(RTMFP_WIRE_FLAG_TS | RTMFP_WIRE_FLAG_TSE);

	if (h->has_timestamp)
		flags |= RTMFP_WIRE_FLAG_TS;
	if (h->has_timestamp_echo)
		flags |= RTMFP_WIRE_FLAG_TSE;
	buf_writer_init(&a->w, buf, limit);
	a->header_len = 0;
	a->chunk_start = 0;
	a->in_chunk = false;
	buf_put_u8(&a->w, flags);
	if (h->has_timestamp)
		buf_put_u16be(&a->w, h->timestamp);
	if (h->has_timestamp_echo)
		buf_put_u16be(&a->w, h->timestamp_echo);
	if (!buf_writer_ok(&a->w)) {
		buf_writer_rollback(&a->w, 0);
		a->w.cap = 0; /* nothing fits in a packet without a header */
		return BFS_ETOOBIG;
	}
	a->header_len = buf_writer_len(&a->w);
	return 0;
}

void rtmfp_wire_asm_set_flags(struct rtmfp_wire_asm *a, uint8_t bits)
{
	if (a->header_len > 0)
		a->w.base[0] |= bits;
}

size_t rtmfp_wire_asm_len(const struct rtmfp_wire_asm *a)
{
	return buf_writer_len(&a->w);
}

bool rtmfp_wire_asm_empty(const struct rtmfp_wire_asm *a)
{
	return buf_writer_len(&a->w) <= a->header_len;
}

size_t rtmfp_wire_asm_room(const struct rtmfp_wire_asm *a)
{
	if (!buf_writer_ok(&a->w))
		return 0;
	return a->w.cap - a->w.len;
}

size_t rtmfp_wire_asm_chunk_room(const struct rtmfp_wire_asm *a)
{
	size_t room = rtmfp_wire_asm_room(a);

	if (room <= RTMFP_WIRE_CHUNK_HEADER_BYTES)
		return 0;
	room -= RTMFP_WIRE_CHUNK_HEADER_BYTES;
	return room > RTMFP_WIRE_CHUNK_MAX_VALUE_BYTES ? RTMFP_WIRE_CHUNK_MAX_VALUE_BYTES : room;
}

int rtmfp_wire_asm_begin(struct rtmfp_wire_asm *a, uint8_t type)
{
	int rc;

	if (a->in_chunk)
		return -EINVAL;
	rc = rtmfp_wire_chunk_open(&a->w, type, &a->chunk_start);
	if (rc == 0)
		a->in_chunk = true;
	return rc;
}

int rtmfp_wire_asm_commit(struct rtmfp_wire_asm *a)
{
	if (!a->in_chunk)
		return -EINVAL;
	a->in_chunk = false;
	return rtmfp_wire_chunk_close(&a->w, a->chunk_start);
}

void rtmfp_wire_asm_rollback(struct rtmfp_wire_asm *a)
{
	if (!a->in_chunk)
		return;
	buf_writer_rollback(&a->w, a->chunk_start);
	a->in_chunk = false;
}

int rtmfp_wire_asm_pad(struct rtmfp_wire_asm *a, size_t len)
{
	if (a->in_chunk)
		return -EINVAL;
	if (!buf_writer_ok(&a->w))
		buf_writer_rollback(&a->w, a->w.len);
	if (len > a->w.cap)
		len = a->w.cap;
	while (a->w.len < len)
		buf_put_u8(&a->w, RTMFP_WIRE_CHUNK_PADDING);
	a->w.cap = a->w.len;
	return 0;
}
