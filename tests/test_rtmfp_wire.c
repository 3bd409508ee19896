/*
 * test_rtmfp_wire.c - the RTMFP wire codec (RFC 7016 section 2).
 *
 * Every byte vector here was written by hand from the RFC's field diagrams
 * (the comment by each says how), never produced by our encoder.
 */
#include "t.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "buddyfs/buf.h"
#include "buddyfs/err.h"
#include "buddyfs/rtmfp_wire.h"

#define SPAN(s) ((struct rtmfp_wire_span){ (const uint8_t *)(s), sizeof(s) - 1 })

static bool span_is(struct rtmfp_wire_span s, const char *bytes, size_t n)
{
	return s.len == n && (n == 0 || memcmp(s.p, bytes, n) == 0);
}
#define SPAN_IS(s, lit) span_is((s), (lit), sizeof(lit) - 1)

static struct rtmfp_wire_address addr4(const char *ip, uint16_t port, enum rtmfp_wire_origin o)
{
	struct rtmfp_wire_address a;
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	inet_pton(AF_INET, ip, &sin.sin_addr);
	rtmfp_wire_address_set(&a, (struct sockaddr *)&sin, sizeof(sin), o);
	return a;
}

static struct rtmfp_wire_address addr6(const char *ip, uint16_t port, enum rtmfp_wire_origin o)
{
	struct rtmfp_wire_address a;
	struct sockaddr_in6 sin6;

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(port);
	inet_pton(AF_INET6, ip, &sin6.sin6_addr);
	rtmfp_wire_address_set(&a, (struct sockaddr *)&sin6, sizeof(sin6), o);
	return a;
}

/* ---- VLU ---- */

struct vlu_vec {
	uint64_t v;
	const char *hex;
};

/* base 128, most significant group first, high bit on all but the last */
static const struct vlu_vec vlu_vecs[] = {
	{ 0, "00" },
	{ 1, "01" },
	{ 127, "7f" },
	{ 128, "8100" },
	{ 300, "822c" },                 /* 2*128 + 44 */
	{ 16383, "ff7f" },
	{ 16384, "818000" },             /* 2^14 = 1*128^2 */
	{ 1ull << 63, "81808080808080808000" }, /* 128^9 */
	{ UINT64_MAX, "81ffffffffffffffff7f" },
};

T_CASE(vlu_vectors)
{
	for (size_t i = 0; i < sizeof(vlu_vecs) / sizeof(vlu_vecs[0]); i++) {
		uint8_t want[16], out[RTMFP_WIRE_VLU_MAX_BYTES];
		size_t n = t_unhex(want, sizeof(want), vlu_vecs[i].hex);
		uint64_t v = 12345;

		T_CHECK_EQ_INT(rtmfp_wire_vlu_size(vlu_vecs[i].v), n);
		T_CHECK_EQ_INT(rtmfp_wire_vlu_encode(out, vlu_vecs[i].v), n);
		T_CHECK_MEM(out, want, n);
		T_CHECK_EQ_INT(rtmfp_wire_vlu_decode(&v, want, n), (int)n);
		T_CHECK(v == vlu_vecs[i].v);
		/* every shorter prefix is cut short */
		for (size_t k = 0; k < n; k++)
			T_CHECK_EQ_INT(rtmfp_wire_vlu_decode(&v, want, k), BFS_EMALFORMED);
	}
}

T_CASE(vlu_rejects)
{
	uint8_t b[16];
	uint64_t v;
	size_t n;
	struct buf_reader r;

	/* 2^64: one too many */
	n = t_unhex(b, sizeof(b), "82808080808080808000");
	T_CHECK_EQ_INT(rtmfp_wire_vlu_decode(&v, b, n), BFS_EMALFORMED);
	/* 11 bytes, even though the value (0) is small */
	n = t_unhex(b, sizeof(b), "8080808080808080808000");
	T_CHECK_EQ_INT(rtmfp_wire_vlu_decode(&v, b, n), BFS_EMALFORMED);
	/* 10 bytes with leading zero groups: fits, accepted */
	n = t_unhex(b, sizeof(b), "80808080808080808001");
	T_CHECK_EQ_INT(rtmfp_wire_vlu_decode(&v, b, n), 10);
	T_CHECK_EQ_INT(v, 1);
	/* a continuation byte with nothing after it */
	n = t_unhex(b, sizeof(b), "81");
	T_CHECK_EQ_INT(rtmfp_wire_vlu_decode(&v, b, n), BFS_EMALFORMED);
	T_CHECK_EQ_INT(rtmfp_wire_vlu_decode(&v, NULL, 0), BFS_EMALFORMED);
	/* the reader getter consumes nothing on failure and goes sticky */
	n = t_unhex(b, sizeof(b), "05ff");
	buf_reader_init(&r, b, n);
	T_CHECK(rtmfp_wire_get_vlu(&r, &v) && v == 5);
	T_CHECK(!rtmfp_wire_get_vlu(&r, &v));
	T_CHECK_EQ_INT(r.pos, 1);
	T_CHECK(!buf_reader_ok(&r));
}

T_CASE(fields)
{
	uint8_t b[300], out[300];
	struct buf_reader r;
	struct buf_writer w;
	struct rtmfp_wire_span s;
	size_t n = t_unhex(b, sizeof(b), "03616263 00 05 6162");

	buf_reader_init(&r, b, n);
	T_CHECK(rtmfp_wire_get_field(&r, &s) && SPAN_IS(s, "abc"));
	T_CHECK(rtmfp_wire_get_field(&r, &s) && s.len == 0);
	T_CHECK(!rtmfp_wire_get_field(&r, &s)); /* says 5, has 2 */
	T_CHECK_EQ_INT(r.pos, 5);

	buf_writer_init(&w, out, sizeof(out));
	T_CHECK(rtmfp_wire_put_field(&w, "abc", 3));
	T_CHECK_MEM(out, "\x03" "abc", 4);
	memset(b, 'x', 200);
	buf_writer_init(&w, out, 201); /* 200 needs a 2-byte length: 202 */
	T_CHECK(!rtmfp_wire_put_field(&w, b, 200));
	T_CHECK_EQ_INT(buf_writer_len(&w), 0);
	T_CHECK_EQ_INT(rtmfp_wire_field_size(200), 202);
}

/* ---- options ---- */

/*
 * 03 00 54 43   option: length 3, type 0 (metadata), value "TC"
 * 02 0a 05      option: length 2, type 0x0a (return flow), value VLU 5
 * 02 c0 00      option: length 2, type 0x2000 (VLU c0 00), empty value
 * 00            marker
 */
static const char opt_list_hex[] = "03005443 020a05 02c000 00";

T_CASE(option_list)
{
	uint8_t b[32], out[32];
	size_t n = t_unhex(b, sizeof(b), opt_list_hex);
	struct buf_reader r;
	struct buf_writer w;
	struct rtmfp_wire_span list;
	struct rtmfp_wire_option_iter it;
	struct rtmfp_wire_option opt;
	struct rtmfp_wire_flow_options fo;

	buf_reader_init(&r, b, n);
	T_CHECK(rtmfp_wire_get_option_list(&r, &list));
	T_CHECK(buf_reader_done(&r));
	T_CHECK_EQ_INT(list.len, n - 1);
	T_CHECK(rtmfp_wire_option_list_valid(list));

	rtmfp_wire_option_iter_init(&it, list);
	T_CHECK_EQ_INT(rtmfp_wire_option_next(&it, &opt), 1);
	T_CHECK(opt.type == 0 && SPAN_IS(opt.value, "TC"));
	T_CHECK_EQ_INT(rtmfp_wire_option_next(&it, &opt), 1);
	T_CHECK(opt.type == 0x0a && SPAN_IS(opt.value, "\x05"));
	T_CHECK_EQ_INT(rtmfp_wire_option_next(&it, &opt), 1);
	T_CHECK(opt.type == 0x2000 && opt.value.len == 0);
	T_CHECK_EQ_INT(rtmfp_wire_option_next(&it, &opt), 0);

	T_CHECK_EQ_INT(rtmfp_wire_flow_options_parse(&fo, list), 0);
	T_CHECK(fo.has_metadata && SPAN_IS(fo.metadata, "TC"));
	T_CHECK(fo.has_return_flow && fo.return_flow_id == 5);
	T_CHECK(!fo.unknown_mandatory); /* 0x2000 is optional */

	buf_writer_init(&w, out, sizeof(out));
	T_CHECK(rtmfp_wire_put_option_metadata(&w, "TC", 2));
	T_CHECK(rtmfp_wire_put_option_return_flow(&w, 5));
	T_CHECK(rtmfp_wire_put_option(&w, 0x2000, NULL, 0));
	T_CHECK(rtmfp_wire_put_marker(&w));
	T_CHECK_EQ_INT(buf_writer_len(&w), n);
	T_CHECK_MEM(out, b, n);
	T_CHECK_EQ_INT(rtmfp_wire_option_size(0x2000, 0), 3);

	/* truncated anywhere: no list */
	for (size_t k = 0; k < n; k++) {
		buf_reader_init(&r, b, k);
		T_CHECK(!rtmfp_wire_get_option_list(&r, &list));
		T_CHECK_EQ_INT(r.pos, 0);
	}
}

T_CASE(option_malformed)
{
	uint8_t b[16];
	size_t n;
	struct buf_reader r;
	struct rtmfp_wire_span list;
	struct rtmfp_wire_option opt;
	struct rtmfp_wire_flow_options fo;

	/* length 1 but the type VLU inside needs more */
	n = t_unhex(b, sizeof(b), "0180 00");
	buf_reader_init(&r, b, n);
	T_CHECK_EQ_INT(rtmfp_wire_get_option(&r, &opt), BFS_EMALFORMED);
	T_CHECK_EQ_INT(r.pos, 0);
	/* length past the end */
	n = t_unhex(b, sizeof(b), "050001");
	buf_reader_init(&r, b, n);
	T_CHECK(!rtmfp_wire_get_option_list(&r, &list));
	/* an unknown mandatory option (type 0x05) is flagged, not an error */
	n = t_unhex(b, sizeof(b), "0205ff");
	T_CHECK_EQ_INT(rtmfp_wire_flow_options_parse(&fo, (struct rtmfp_wire_span){ b, n }), 0);
	T_CHECK(fo.unknown_mandatory);
	/* return flow association whose value is not exactly one VLU */
	n = t_unhex(b, sizeof(b), "030a0101");
	T_CHECK_EQ_INT(rtmfp_wire_flow_options_parse(&fo, (struct rtmfp_wire_span){ b, n }),
		       BFS_EMALFORMED);
	n = t_unhex(b, sizeof(b), "010a");
	T_CHECK_EQ_INT(rtmfp_wire_flow_options_parse(&fo, (struct rtmfp_wire_span){ b, n }),
		       BFS_EMALFORMED);
	/* a marker inside a list span */
	n = t_unhex(b, sizeof(b), "00 020a05");
	T_CHECK(!rtmfp_wire_option_list_valid((struct rtmfp_wire_span){ b, n }));
}

/* ---- addresses ---- */

T_CASE(addresses)
{
	uint8_t b[64], out[64];
	size_t n;
	struct buf_reader r;
	struct buf_writer w;
	struct rtmfp_wire_address a, want;
	struct sockaddr_in6 sin6;

	/* flags 0x02 (IPv4, observed), 192.0.2.1, port 1935 */
	n = t_unhex(b, sizeof(b), "02 c0000201 078f");
	buf_reader_init(&r, b, n);
	T_CHECK(rtmfp_wire_get_address(&r, &a) && buf_reader_done(&r));
	want = addr4("192.0.2.1", 1935, RTMFP_WIRE_ORIGIN_OBSERVED);
	T_CHECK(rtmfp_wire_address_eq(&a, &want));
	T_CHECK_EQ_INT(a.origin, RTMFP_WIRE_ORIGIN_OBSERVED);
	T_CHECK_EQ_INT(rtmfp_wire_address_socklen(&a), sizeof(struct sockaddr_in));
	buf_writer_init(&w, out, sizeof(out));
	T_CHECK_EQ_INT(rtmfp_wire_put_address(&w, &want), 0);
	T_CHECK_EQ_INT(buf_writer_len(&w), 7);
	T_CHECK_MEM(out, b, 7);
	for (size_t k = 0; k < n; k++) {
		buf_reader_init(&r, b, k);
		T_CHECK(!rtmfp_wire_get_address(&r, &a));
		T_CHECK_EQ_INT(r.pos, 0);
	}

	/* flags 0x81 (IPv6, local), 2001:db8::1, port 443 */
	n = t_unhex(b, sizeof(b), "81 20010db8000000000000000000000001 01bb");
	buf_reader_init(&r, b, n);
	T_CHECK(rtmfp_wire_get_address(&r, &a) && buf_reader_done(&r));
	want = addr6("2001:db8::1", 443, RTMFP_WIRE_ORIGIN_LOCAL);
	T_CHECK(rtmfp_wire_address_eq(&a, &want));
	T_CHECK_EQ_INT(a.origin, RTMFP_WIRE_ORIGIN_LOCAL);
	memcpy(&sin6, &a.addr, sizeof(sin6));
	T_CHECK_EQ_INT(sin6.sin6_family, AF_INET6);
	T_CHECK_EQ_INT(ntohs(sin6.sin6_port), 443);
	buf_writer_init(&w, out, sizeof(out));
	T_CHECK_EQ_INT(rtmfp_wire_put_address(&w, &want), 0);
	T_CHECK_EQ_INT(buf_writer_len(&w), 19);
	T_CHECK_MEM(out, b, 19);
	for (size_t k = 0; k < n; k++) {
		buf_reader_init(&r, b, k);
		T_CHECK(!rtmfp_wire_get_address(&r, &a));
	}

	/* relay origin, reserved bits set (ignored): 0xff = IPv6 + relay */
	n = t_unhex(b, sizeof(b), "ff 00000000000000000000000000000001 0001");
	buf_reader_init(&r, b, n);
	T_CHECK(rtmfp_wire_get_address(&r, &a));
	T_CHECK_EQ_INT(a.origin, RTMFP_WIRE_ORIGIN_RELAY);
	want = addr6("::1", 1, RTMFP_WIRE_ORIGIN_RELAY);
	T_CHECK(rtmfp_wire_address_eq(&a, &want));
	buf_writer_init(&w, out, sizeof(out));
	T_CHECK_EQ_INT(rtmfp_wire_put_address(&w, &want), 0);
	T_CHECK_EQ_INT(out[0], 0x83);

	/* unsupported family, and no room */
	memset(&a, 0, sizeof(a));
	a.addr.ss_family = AF_UNIX;
	buf_writer_init(&w, out, sizeof(out));
	T_CHECK_EQ_INT(rtmfp_wire_put_address(&w, &a), -EAFNOSUPPORT);
	buf_writer_init(&w, out, 6);
	T_CHECK_EQ_INT(rtmfp_wire_put_address(&w, &want), BFS_ETOOBIG);
	T_CHECK_EQ_INT(buf_writer_len(&w), 0);
	T_CHECK_EQ_INT(rtmfp_wire_address_set(&a, (struct sockaddr *)&sin6, 4, 0), -EAFNOSUPPORT);
}

/* ---- scrambled session id ---- */

T_CASE(ssid)
{
	/*
	 * session id 0x01020304, first words 0x11111111 and 0x22222222:
	 * SSID = 0x01020304 ^ 0x11111111 ^ 0x22222222 = 0x32313037
	 */
	uint8_t d[16], want[16];
	size_t n = t_unhex(d, sizeof(d), "00000000 11111111 22222222 aa");
	uint32_t sid;

	t_unhex(want, sizeof(want), "32313037 11111111 22222222 aa");
	T_CHECK_EQ_INT(rtmfp_wire_ssid_scramble(d, n, 0x01020304), 0);
	T_CHECK_MEM(d, want, n);
	T_CHECK_EQ_INT(rtmfp_wire_ssid_unscramble(&sid, d, n), 0);
	T_CHECK(sid == 0x01020304u);
	/* session id 0 with an all-zero packet stays 0 */
	memset(d, 0, sizeof(d));
	T_CHECK_EQ_INT(rtmfp_wire_ssid_scramble(d, 12, 0), 0);
	T_CHECK_EQ_INT(buf_load32_be(d), 0);
	/* short: bytes past the end count as zero: 0x01020304 ^ 0x11110000 */
	n = t_unhex(d, sizeof(d), "00000000 1111");
	T_CHECK_EQ_INT(rtmfp_wire_ssid_scramble(d, n, 0x01020304), 0);
	T_CHECK(buf_load32_be(d) == 0x10130304u);
	T_CHECK_EQ_INT(rtmfp_wire_ssid_unscramble(&sid, d, n), 0);
	T_CHECK(sid == 0x01020304u);
	T_CHECK_EQ_INT(rtmfp_wire_ssid_scramble(d, 3, 1), -EINVAL);
	T_CHECK_EQ_INT(rtmfp_wire_ssid_unscramble(&sid, d, 3), BFS_EMALFORMED);
}

/* ---- packet header and iterator ---- */

T_CASE(packet_header)
{
	uint8_t b[32];
	size_t n;
	struct rtmfp_wire_chunk_iter it;
	struct rtmfp_wire_header h;
	struct rtmfp_wire_chunk c;

	/* 0x8b: TC, TS, startup mode; timestamp 0x1234; Ping "m" */
	n = t_unhex(b, sizeof(b), "8b 1234 010001 6d");
	T_CHECK_EQ_INT(rtmfp_wire_packet_begin(&it, &h, b, n), 0);
	T_CHECK_EQ_INT(h.flags, 0x8b);
	T_CHECK(h.has_timestamp && !h.has_timestamp_echo && h.timestamp == 0x1234);
	T_CHECK_EQ_INT(rtmfp_wire_header_mode(&h), RTMFP_WIRE_MODE_STARTUP);
	T_CHECK_EQ_INT(rtmfp_wire_chunk_next(&it, &c), 1);
	T_CHECK(c.type == RTMFP_WIRE_CHUNK_PING && SPAN_IS(c.value, "m"));
	T_CHECK_EQ_INT(rtmfp_wire_chunk_next(&it, &c), 0);
	T_CHECK_EQ_INT(rtmfp_wire_chunk_next(&it, &c), 0);

	/* 0x4d: TCR, TS, TSE, initiator; ts 0x0010, echo 0x0020; Close */
	n = t_unhex(b, sizeof(b), "4d 0010 0020 0c0000");
	T_CHECK_EQ_INT(rtmfp_wire_packet_begin(&it, &h, b, n), 0);
	T_CHECK(h.has_timestamp && h.has_timestamp_echo);
	T_CHECK(h.timestamp == 0x10 && h.timestamp_echo == 0x20);
	T_CHECK_EQ_INT(rtmfp_wire_header_mode(&h), RTMFP_WIRE_MODE_INITIATOR);
	T_CHECK_EQ_INT(rtmfp_wire_chunk_next(&it, &c), 1);
	T_CHECK(c.type == RTMFP_WIRE_CHUNK_CLOSE && c.value.len == 0);
	T_CHECK_EQ_INT(rtmfp_wire_chunk_next(&it, &c), 0);
	for (size_t k = 0; k < 5; k++)
		T_CHECK_EQ_INT(rtmfp_wire_packet_begin(&it, &h, b, k), BFS_EMALFORMED);

	/* padding: 0xff chunk type ends the packet, whatever follows */
	n = t_unhex(b, sizeof(b), "02 4c0000 ff 0a0b0c0d");
	T_CHECK_EQ_INT(rtmfp_wire_packet_begin(&it, &h, b, n), 0);
	T_CHECK_EQ_INT(rtmfp_wire_chunk_next(&it, &c), 1);
	T_CHECK_EQ_INT(c.type, RTMFP_WIRE_CHUNK_CLOSE_ACK);
	T_CHECK_EQ_INT(rtmfp_wire_chunk_next(&it, &c), 0);
	/* zero padding, and fewer than 3 bytes left */
	n = t_unhex(b, sizeof(b), "02 4c0000 0000000000");
	T_CHECK_EQ_INT(rtmfp_wire_packet_begin(&it, &h, b, n), 0);
	T_CHECK_EQ_INT(rtmfp_wire_chunk_next(&it, &c), 1);
	T_CHECK_EQ_INT(rtmfp_wire_chunk_next(&it, &c), 0);
	n = t_unhex(b, sizeof(b), "02 4c0000 4c00");
	T_CHECK_EQ_INT(rtmfp_wire_packet_begin(&it, &h, b, n), 0);
	T_CHECK_EQ_INT(rtmfp_wire_chunk_next(&it, &c), 1);
	T_CHECK_EQ_INT(rtmfp_wire_chunk_next(&it, &c), 0);
	/* a chunk of type 0x00 with content is a (unknown) chunk */
	n = t_unhex(b, sizeof(b), "02 000001 07");
	T_CHECK_EQ_INT(rtmfp_wire_packet_begin(&it, &h, b, n), 0);
	T_CHECK_EQ_INT(rtmfp_wire_chunk_next(&it, &c), 1);
	T_CHECK(c.type == 0 && c.value.len == 1);
	T_CHECK(!rtmfp_wire_chunk_known(c.type));
	/* a length past the end stops the walk with an error, sticky */
	n = t_unhex(b, sizeof(b), "02 4c0000 010005 6d6d");
	T_CHECK_EQ_INT(rtmfp_wire_packet_begin(&it, &h, b, n), 0);
	T_CHECK_EQ_INT(rtmfp_wire_chunk_next(&it, &c), 1);
	T_CHECK_EQ_INT(rtmfp_wire_chunk_next(&it, &c), BFS_EMALFORMED);
	T_CHECK_EQ_INT(rtmfp_wire_chunk_next(&it, &c), BFS_EMALFORMED);
}

T_CASE(timestamps)
{
	T_CHECK_EQ_INT(rtmfp_wire_timestamp(0), 0);
	T_CHECK_EQ_INT(rtmfp_wire_timestamp(7), 1);
	T_CHECK_EQ_INT(rtmfp_wire_timestamp(4ull * 65536 + 8), 2);
	T_CHECK_EQ_INT(rtmfp_wire_timestamp_elapsed_ms(5, 3), 8);
	T_CHECK_EQ_INT(rtmfp_wire_timestamp_elapsed_ms(1, 0xffff), 8);
	T_CHECK_EQ_INT(rtmfp_wire_max_packet_bytes(18), 1210);
	T_CHECK_EQ_INT(RTMFP_WIRE_MAX_PACKET_BYTES(24), 1204);
	T_CHECK_EQ_INT(rtmfp_wire_max_packet_bytes(5000), 0);
}

/* ---- chunk vectors ---- */

struct chunk_vec {
	const char *name;
	const char *hex;     /* whole chunk: type, length, value */
	size_t min_value;    /* shorter values must not decode */
	bool rest_has_form;  /* the trailing part may be malformed when cut */
};

static const struct chunk_vec chunk_vecs[] = {
	/* IHello: epd field (02 "ab"), tag "T1" */
	{ "ihello", "30 0005 02 6162 5431", 3, false },
	/* FIHello: epd field (01 "x"), reply address 192.0.2.1:1935 observed, tag "t" */
	{ "fihello", "0f 000a 01 78 02 c0000201 078f 74", 9, false },
	/* RHello: tag field (02 "T1"), cookie field (03 010203), cert "C" */
	{ "rhello", "70 0008 02 5431 03 010203 43", 7, false },
	/* Redirect: tag field (02 "T1"), 192.0.2.1:1935 local, [2001:db8::1]:443 observed */
	{ "redirect", "71 001d 02 5431 01 c0000201 078f"
		      " 82 20010db8000000000000000000000001 01bb", 3, true },
	/* Cookie Change: old cookie field (02 aabb), new cookie ccddee */
	{ "cookie_change", "79 0006 02 aabb ccddee", 3, false },
	/* IIKeying: session id 0x01020304, cookie field (02 c1c2), cert field
	 * (01 "C"), SKIC field (02 5152), signature "X" */
	{ "iikeying", "38 000d 01020304 02 c1c2 01 43 02 5152 58", 12, false },
	/* RIKeying: session id 0xa1b2c3d4, SKRC field (02 1234), signature "X" */
	{ "rikeying", "78 0008 a1b2c3d4 02 1234 58", 7, false },
	/* Ping "msg", Ping Reply "msg", empty Ping */
	{ "ping", "01 0003 6d7367", 0, false },
	{ "ping_reply", "41 0003 6d7367", 0, false },
	{ "ping_empty", "01 0000", 0, false },
	/* User Data: flags 0x90 (OPT, FRA begin), flow 2, seq 1, fsn offset 1,
	 * options metadata "TC" and return flow 5, marker, data "hi" */
	{ "userdata_opt", "10 000e 90 02 01 01 03005443 020a05 00 6869", 12, false },
	/* User Data: flags 0x21 (FRA end, FIN), flow 300, seq 128, offset 0, data 0102 */
	{ "userdata", "10 0008 21 822c 8100 00 0102", 6, false },
	/* Next User Data: flags 0x30 (FRA middle), data "z" */
	{ "next_userdata", "11 0002 30 7a", 1, false },
	/* Next User Data with OPT and an empty option list, no data */
	{ "next_userdata_opt", "11 0002 80 00", 2, false },
	/* Ack Bitmap: flow 2, 16 blocks, cum ack 5, bitmap a0 */
	{ "ack_bitmap", "50 0004 02 10 05 a0", 3, false },
	/* Ack Ranges: flow 2, 64 blocks, cum ack 5; received 8-9 (holes 6-7:
	 * 2-1=1, received 2-1=1), received 12 (hole 10-11: 1, received 1-1=0) */
	{ "ack_ranges", "51 0007 02 40 05 0101 0100", 3, false },
	/* Buffer Probe: flow 2 */
	{ "buffer_probe", "18 0001 02", 1, false },
	/* Flow Exception Report: flow 2, code 129 (81 01) */
	{ "exception", "5e 0003 02 8101", 3, false },
	{ "close", "0c 0000", 0, false },
	{ "close_ack", "4c 0000", 0, false },
	/* an unknown type: decoded as raw, ignored by the caller */
	{ "unknown", "22 0002 abcd", 0, false },
};

#define N_CHUNK_VECS (sizeof(chunk_vecs) / sizeof(chunk_vecs[0]))

static size_t vec_bytes(uint8_t *out, size_t cap, size_t i)
{
	return t_unhex(out, cap, chunk_vecs[i].hex);
}

/* decode_vec - the vector as one chunk of a packet, decoded. */
static int decode_vec(size_t i, uint8_t *pkt, size_t cap, struct rtmfp_wire_chunk_body *body,
		      size_t *len)
{
	struct rtmfp_wire_chunk_iter it;
	struct rtmfp_wire_header h;
	struct rtmfp_wire_chunk c;
	int rc;

	pkt[0] = RTMFP_WIRE_MODE_STARTUP;
	*len = vec_bytes(pkt + 1, cap - 1, i);
	if (rtmfp_wire_packet_begin(&it, &h, pkt, *len + 1) != 0)
		return -1;
	if ((rc = rtmfp_wire_chunk_next(&it, &c)) != 1)
		return rc;
	rc = rtmfp_wire_chunk_decode(body, &c);
	if (rc == 0 && rtmfp_wire_chunk_next(&it, &c) != 0)
		return -2;
	return rc;
}

T_CASE(chunk_vectors_roundtrip)
{
	for (size_t i = 0; i < N_CHUNK_VECS; i++) {
		uint8_t pkt[128], out[128];
		struct rtmfp_wire_chunk_body body;
		struct buf_writer w;
		size_t len;

		if (decode_vec(i, pkt, sizeof(pkt), &body, &len) != 0)
			T_FAIL("%s: does not decode", chunk_vecs[i].name);
		buf_writer_init(&w, out, sizeof(out));
		if (rtmfp_wire_chunk_encode(&w, &body) != 0)
			T_FAIL("%s: does not encode", chunk_vecs[i].name);
		if (buf_writer_len(&w) != len || memcmp(out, pkt + 1, len) != 0)
			T_FAIL("%s: re-encoding differs", chunk_vecs[i].name);
		/* one byte short of room: nothing written */
		buf_writer_init(&w, out, len - 1);
		if (rtmfp_wire_chunk_encode(&w, &body) != BFS_ETOOBIG || buf_writer_len(&w) != 0 ||
		    !buf_writer_ok(&w))
			T_FAIL("%s: partial write", chunk_vecs[i].name);
	}
}

T_CASE(chunk_vectors_truncated)
{
	for (size_t i = 0; i < N_CHUNK_VECS; i++) {
		uint8_t pkt[128];
		size_t len = vec_bytes(pkt + 1, sizeof(pkt) - 1, i);
		struct rtmfp_wire_chunk_iter it;
		struct rtmfp_wire_header h;
		struct rtmfp_wire_chunk c;
		struct rtmfp_wire_chunk_body body;
		size_t vlen = len - RTMFP_WIRE_CHUNK_HEADER_BYTES;

		pkt[0] = RTMFP_WIRE_MODE_STARTUP;
		/* the packet cut at every byte: never a chunk */
		for (size_t k = 0; k < len; k++) {
			int rc;

			T_CHECK_EQ_INT(rtmfp_wire_packet_begin(&it, &h, pkt, k + 1), 0);
			rc = rtmfp_wire_chunk_next(&it, &c);
			if (k < RTMFP_WIRE_CHUNK_HEADER_BYTES ? rc != 0 : rc != BFS_EMALFORMED)
				T_FAIL("%s cut at %zu: %d", chunk_vecs[i].name, k, rc);
		}
		/* the value cut at every byte: only the trailing "rest" may go */
		for (size_t k = 0; k < vlen; k++) {
			struct rtmfp_wire_chunk cut = {
				.type = pkt[1],
				.value = { pkt + 1 + RTMFP_WIRE_CHUNK_HEADER_BYTES, k },
			};
			int rc = rtmfp_wire_chunk_decode(&body, &cut);

			if (k < chunk_vecs[i].min_value ? rc != BFS_EMALFORMED :
			    (rc != 0 && !(chunk_vecs[i].rest_has_form && rc == BFS_EMALFORMED)))
				T_FAIL("%s value cut at %zu: %d", chunk_vecs[i].name, k, rc);
		}
	}
}

/* find_vec - the bytes of the vector called @name. */
static size_t find_vec(uint8_t *out, size_t cap, const char *name)
{
	for (size_t i = 0; i < N_CHUNK_VECS; i++)
		if (strcmp(chunk_vecs[i].name, name) == 0)
			return vec_bytes(out, cap, i);
	return 0;
}

/* encode_is - @rc is 0 and @w holds exactly the vector @name. */
static bool encode_is(int rc, const struct buf_writer *w, const char *name)
{
	uint8_t want[128];
	size_t n = find_vec(want, sizeof(want), name);

	return rc == 0 && n > 0 && buf_writer_len(w) == n && memcmp(w->base, want, n) == 0;
}

/* value_of - the value span of vector @name (in @buf). */
static struct rtmfp_wire_span value_of(uint8_t *buf, size_t cap, const char *name)
{
	size_t n = find_vec(buf, cap, name);

	return (struct rtmfp_wire_span){ buf + 3, n - 3 };
}

T_CASE(chunk_hello_fields)
{
	uint8_t v[128], out[128];
	struct rtmfp_wire_span s;
	struct buf_writer w;
	struct rtmfp_wire_ihello ih;
	struct rtmfp_wire_fihello fi;
	struct rtmfp_wire_rhello rh;
	struct rtmfp_wire_address want = addr4("192.0.2.1", 1935, RTMFP_WIRE_ORIGIN_OBSERVED);

	s = value_of(v, sizeof(v), "ihello");
	T_CHECK_EQ_INT(rtmfp_wire_ihello_decode(&ih, s.p, s.len), 0);
	T_CHECK(SPAN_IS(ih.epd, "ab") && SPAN_IS(ih.tag, "T1"));
	ih = (struct rtmfp_wire_ihello){ SPAN("ab"), SPAN("T1") };
	buf_writer_init(&w, out, sizeof(out));
	T_CHECK(encode_is(rtmfp_wire_ihello_encode(&w, &ih), &w, "ihello"));

	s = value_of(v, sizeof(v), "fihello");
	T_CHECK_EQ_INT(rtmfp_wire_fihello_decode(&fi, s.p, s.len), 0);
	T_CHECK(SPAN_IS(fi.epd, "x") && SPAN_IS(fi.tag, "t"));
	T_CHECK(rtmfp_wire_address_eq(&fi.reply_address, &want));
	T_CHECK_EQ_INT(fi.reply_address.origin, RTMFP_WIRE_ORIGIN_OBSERVED);
	memset(&fi, 0, sizeof(fi));
	fi.epd = SPAN("x");
	fi.reply_address = want;
	fi.tag = SPAN("t");
	buf_writer_init(&w, out, sizeof(out));
	T_CHECK(encode_is(rtmfp_wire_fihello_encode(&w, &fi), &w, "fihello"));
	fi.reply_address.addr.ss_family = AF_UNSPEC;
	T_CHECK_EQ_INT(rtmfp_wire_fihello_encode(&w, &fi), -EINVAL);

	s = value_of(v, sizeof(v), "rhello");
	T_CHECK_EQ_INT(rtmfp_wire_rhello_decode(&rh, s.p, s.len), 0);
	T_CHECK(SPAN_IS(rh.tag, "T1") && SPAN_IS(rh.cookie, "\x01\x02\x03") && SPAN_IS(rh.cert, "C"));
	rh = (struct rtmfp_wire_rhello){ SPAN("T1"), SPAN("\x01\x02\x03"), SPAN("C") };
	buf_writer_init(&w, out, sizeof(out));
	T_CHECK(encode_is(rtmfp_wire_rhello_encode(&w, &rh), &w, "rhello"));
}

T_CASE(chunk_redirect_cookie_fields)
{
	uint8_t v[128], out[128], list[64];
	struct rtmfp_wire_span s;
	struct buf_writer w, lw;
	struct buf_reader r;
	struct rtmfp_wire_redirect rd;
	struct rtmfp_wire_cookie_change cc;
	struct rtmfp_wire_address a;
	struct rtmfp_wire_address a4 = addr4("192.0.2.1", 1935, RTMFP_WIRE_ORIGIN_LOCAL);
	struct rtmfp_wire_address a6 = addr6("2001:db8::1", 443, RTMFP_WIRE_ORIGIN_OBSERVED);

	s = value_of(v, sizeof(v), "redirect");
	T_CHECK_EQ_INT(rtmfp_wire_redirect_decode(&rd, s.p, s.len), 0);
	T_CHECK(SPAN_IS(rd.tag, "T1"));
	T_CHECK_EQ_INT(rd.address_count, 2);
	buf_reader_init(&r, rd.addresses.p, rd.addresses.len);
	T_CHECK(rtmfp_wire_get_address(&r, &a) && rtmfp_wire_address_eq(&a, &a4));
	T_CHECK_EQ_INT(a.origin, RTMFP_WIRE_ORIGIN_LOCAL);
	T_CHECK(rtmfp_wire_get_address(&r, &a) && rtmfp_wire_address_eq(&a, &a6));
	T_CHECK_EQ_INT(a.origin, RTMFP_WIRE_ORIGIN_OBSERVED);
	T_CHECK(buf_reader_done(&r));

	buf_writer_init(&lw, list, sizeof(list));
	T_CHECK_EQ_INT(rtmfp_wire_put_address(&lw, &a4), 0);
	T_CHECK_EQ_INT(rtmfp_wire_put_address(&lw, &a6), 0);
	memset(&rd, 0, sizeof(rd));
	rd.tag = SPAN("T1");
	rd.addresses = (struct rtmfp_wire_span){ list, buf_writer_len(&lw) };
	buf_writer_init(&w, out, sizeof(out));
	T_CHECK(encode_is(rtmfp_wire_redirect_encode(&w, &rd), &w, "redirect"));
	rd.addresses.len--; /* half an address */
	T_CHECK_EQ_INT(rtmfp_wire_redirect_encode(&w, &rd), -EINVAL);
	/* an address cut short inside a Redirect */
	T_CHECK_EQ_INT(rtmfp_wire_redirect_decode(&rd, s.p, s.len - 1), BFS_EMALFORMED);
	/* no addresses at all is fine (the sender's address is implied) */
	T_CHECK_EQ_INT(rtmfp_wire_redirect_decode(&rd, s.p, 3), 0);
	T_CHECK_EQ_INT(rd.address_count, 0);

	s = value_of(v, sizeof(v), "cookie_change");
	T_CHECK_EQ_INT(rtmfp_wire_cookie_change_decode(&cc, s.p, s.len), 0);
	T_CHECK(SPAN_IS(cc.old_cookie, "\xaa\xbb") && SPAN_IS(cc.new_cookie, "\xcc\xdd\xee"));
	cc = (struct rtmfp_wire_cookie_change){ SPAN("\xaa\xbb"), SPAN("\xcc\xdd\xee") };
	buf_writer_init(&w, out, sizeof(out));
	T_CHECK(encode_is(rtmfp_wire_cookie_change_encode(&w, &cc), &w, "cookie_change"));
}

T_CASE(chunk_keying_fields)
{
	uint8_t v[128], out[128], sig[64];
	struct rtmfp_wire_span s;
	struct buf_writer w;
	struct rtmfp_wire_iikeying ik;
	struct rtmfp_wire_rikeying rk;

	s = value_of(v, sizeof(v), "iikeying");
	T_CHECK_EQ_INT(rtmfp_wire_iikeying_decode(&ik, s.p, s.len), 0);
	T_CHECK(ik.session_id == 0x01020304u);
	T_CHECK(SPAN_IS(ik.cookie, "\xc1\xc2") && SPAN_IS(ik.cert, "C"));
	T_CHECK(SPAN_IS(ik.skic, "\x51\x52") && SPAN_IS(ik.signature, "X"));
	T_CHECK(ik.signed_part.p == s.p && ik.signed_part.len == 12);
	memset(&ik, 0, sizeof(ik));
	ik.session_id = 0x01020304;
	ik.cookie = SPAN("\xc1\xc2");
	ik.cert = SPAN("C");
	ik.skic = SPAN("\x51\x52");
	ik.signature = SPAN("X");
	buf_writer_init(&w, out, sizeof(out));
	T_CHECK(encode_is(rtmfp_wire_iikeying_encode(&w, &ik), &w, "iikeying"));
	buf_writer_init(&w, sig, sizeof(sig));
	T_CHECK_EQ_INT(rtmfp_wire_iikeying_put_signed(&w, &ik), 0);
	T_CHECK_EQ_INT(buf_writer_len(&w), 12);
	T_CHECK_MEM(sig, s.p, 12);

	s = value_of(v, sizeof(v), "rikeying");
	T_CHECK_EQ_INT(rtmfp_wire_rikeying_decode(&rk, s.p, s.len), 0);
	T_CHECK(rk.session_id == 0xa1b2c3d4u);
	T_CHECK(SPAN_IS(rk.skrc, "\x12\x34") && SPAN_IS(rk.signature, "X"));
	T_CHECK(rk.signed_part.p == s.p && rk.signed_part.len == 7);
	memset(&rk, 0, sizeof(rk));
	rk.session_id = 0xa1b2c3d4;
	rk.skrc = SPAN("\x12\x34");
	rk.signature = SPAN("X");
	buf_writer_init(&w, out, sizeof(out));
	T_CHECK(encode_is(rtmfp_wire_rikeying_encode(&w, &rk), &w, "rikeying"));
	buf_writer_init(&w, sig, 6);
	T_CHECK_EQ_INT(rtmfp_wire_rikeying_put_signed(&w, &rk), BFS_ETOOBIG);
	T_CHECK_EQ_INT(buf_writer_len(&w), 0);
}

T_CASE(chunk_ping_close_fields)
{
	uint8_t out[64];
	struct buf_writer w;
	struct rtmfp_wire_ping p = { SPAN("msg") };
	struct rtmfp_wire_buffer_probe bp = { 2 };
	struct rtmfp_wire_exception ex = { 2, 129 };
	uint8_t v[32];
	struct rtmfp_wire_span s;

	buf_writer_init(&w, out, sizeof(out));
	T_CHECK(encode_is(rtmfp_wire_ping_encode(&w, RTMFP_WIRE_CHUNK_PING, &p), &w, "ping"));
	buf_writer_init(&w, out, sizeof(out));
	T_CHECK(encode_is(rtmfp_wire_ping_encode(&w, RTMFP_WIRE_CHUNK_PING_REPLY, &p), &w,
			  "ping_reply"));
	T_CHECK_EQ_INT(rtmfp_wire_ping_encode(&w, 0x42, &p), -EINVAL);
	buf_writer_init(&w, out, sizeof(out));
	T_CHECK(encode_is(rtmfp_wire_buffer_probe_encode(&w, &bp), &w, "buffer_probe"));
	buf_writer_init(&w, out, sizeof(out));
	T_CHECK(encode_is(rtmfp_wire_exception_encode(&w, &ex), &w, "exception"));
	buf_writer_init(&w, out, sizeof(out));
	T_CHECK(encode_is(rtmfp_wire_close_encode(&w, RTMFP_WIRE_CHUNK_CLOSE), &w, "close"));
	buf_writer_init(&w, out, sizeof(out));
	T_CHECK(encode_is(rtmfp_wire_close_encode(&w, RTMFP_WIRE_CHUNK_CLOSE_ACK), &w, "close_ack"));
	T_CHECK_EQ_INT(rtmfp_wire_close_encode(&w, RTMFP_WIRE_CHUNK_PING), -EINVAL);

	s = value_of(v, sizeof(v), "exception");
	memset(&ex, 0, sizeof(ex));
	T_CHECK_EQ_INT(rtmfp_wire_exception_decode(&ex, s.p, s.len), 0);
	T_CHECK(ex.flow_id == 2 && ex.code == 129);
	s = value_of(v, sizeof(v), "buffer_probe");
	T_CHECK_EQ_INT(rtmfp_wire_buffer_probe_decode(&bp, s.p, s.len), 0);
	T_CHECK(bp.flow_id == 2);
	T_CHECK_EQ_INT(strcmp(rtmfp_wire_chunk_name(RTMFP_WIRE_CHUNK_EXCEPTION),
			      "Flow Exception Report"), 0);
	T_CHECK_EQ_INT(strcmp(rtmfp_wire_chunk_name(0x22), "unknown"), 0);
}

T_CASE(chunk_userdata_fields)
{
	uint8_t v[64], out[64], opts[32];
	struct rtmfp_wire_span s;
	struct buf_writer w, ow;
	struct rtmfp_wire_userdata ud, nx;
	struct rtmfp_wire_flow_options fo;

	s = value_of(v, sizeof(v), "userdata_opt");
	T_CHECK_EQ_INT(rtmfp_wire_userdata_decode(&ud, s.p, s.len), 0);
	T_CHECK_EQ_INT(ud.flags, RTMFP_WIRE_UD_FLAG_OPT | RTMFP_WIRE_UD_FRA_BEGIN);
	T_CHECK(ud.flow_id == 2 && ud.seq == 1 && ud.fsn_offset == 1);
	T_CHECK(SPAN_IS(ud.data, "hi"));
	T_CHECK_EQ_INT(rtmfp_wire_flow_options_parse(&fo, ud.options), 0);
	T_CHECK(fo.has_metadata && SPAN_IS(fo.metadata, "TC"));
	T_CHECK(fo.has_return_flow && fo.return_flow_id == 5 && !fo.unknown_mandatory);

	buf_writer_init(&ow, opts, sizeof(opts));
	T_CHECK(rtmfp_wire_put_option_metadata(&ow, "TC", 2));
	T_CHECK(rtmfp_wire_put_option_return_flow(&ow, 5));
	memset(&ud, 0, sizeof(ud));
	ud.flags = RTMFP_WIRE_UD_FLAG_OPT | RTMFP_WIRE_UD_FRA_BEGIN;
	ud.flow_id = 2;
	ud.seq = 1;
	ud.fsn_offset = 1;
	ud.options = (struct rtmfp_wire_span){ opts, buf_writer_len(&ow) };
	ud.data = SPAN("hi");
	buf_writer_init(&w, out, sizeof(out));
	T_CHECK(encode_is(rtmfp_wire_userdata_encode(&w, &ud), &w, "userdata_opt"));
	T_CHECK_EQ_INT(rtmfp_wire_userdata_header_size(2, 1, 1), 7);
	ud.flags = 0; /* options without OPT */
	T_CHECK_EQ_INT(rtmfp_wire_userdata_encode(&w, &ud), -EINVAL);

	s = value_of(v, sizeof(v), "userdata");
	T_CHECK_EQ_INT(rtmfp_wire_userdata_decode(&ud, s.p, s.len), 0);
	T_CHECK_EQ_INT(ud.flags & RTMFP_WIRE_UD_FLAG_FRA_MASK, RTMFP_WIRE_UD_FRA_END);
	T_CHECK(ud.flags & RTMFP_WIRE_UD_FLAG_FIN);
	T_CHECK(!(ud.flags & RTMFP_WIRE_UD_FLAG_ABN));
	T_CHECK(ud.flow_id == 300 && ud.seq == 128 && ud.fsn_offset == 0);
	T_CHECK(ud.options.len == 0 && SPAN_IS(ud.data, "\x01\x02"));

	s = value_of(v, sizeof(v), "next_userdata");
	T_CHECK_EQ_INT(rtmfp_wire_next_userdata_decode(&nx, s.p, s.len), 0);
	T_CHECK_EQ_INT(nx.flags, RTMFP_WIRE_UD_FRA_MIDDLE);
	T_CHECK(SPAN_IS(nx.data, "z"));
	T_CHECK_EQ_INT(rtmfp_wire_userdata_expand_next(&nx, &ud), 0);
	T_CHECK(nx.flow_id == 300 && nx.seq == 129 && nx.fsn_offset == 1);
	T_CHECK(nx.seq - nx.fsn_offset == ud.seq - ud.fsn_offset); /* same FSN */
	ud.seq = UINT64_MAX;
	T_CHECK_EQ_INT(rtmfp_wire_userdata_expand_next(&nx, &ud), BFS_EMALFORMED);

	memset(&nx, 0, sizeof(nx));
	nx.flags = RTMFP_WIRE_UD_FRA_MIDDLE;
	nx.flow_id = 99; /* ignored by the Next User Data encoder */
	nx.data = SPAN("z");
	buf_writer_init(&w, out, sizeof(out));
	T_CHECK(encode_is(rtmfp_wire_next_userdata_encode(&w, &nx), &w, "next_userdata"));

	/* fsn offset above the sequence number: rejected both ways */
	t_unhex(v, sizeof(v), "00 02 01 02");
	T_CHECK_EQ_INT(rtmfp_wire_userdata_decode(&ud, v, 4), BFS_EMALFORMED);
	ud.seq = 1;
	ud.fsn_offset = 2;
	ud.flags = 0;
	ud.options.len = 0;
	T_CHECK_EQ_INT(rtmfp_wire_userdata_encode(&w, &ud), -EINVAL);
	/* OPT set but no marker: malformed */
	t_unhex(v, sizeof(v), "80 02 01 00 020a05");
	T_CHECK_EQ_INT(rtmfp_wire_userdata_decode(&ud, v, 7), BFS_EMALFORMED);
}

T_CASE(chunk_ack_fields)
{
	uint8_t v[64], out[64];
	struct rtmfp_wire_span s;
	struct buf_writer w;
	struct rtmfp_wire_ack ack;
	struct rtmfp_wire_ack_iter it;
	struct rtmfp_wire_seq_range rg;
	const struct rtmfp_wire_seq_range ranges[] = { { 8, 9 }, { 12, 12 } };
	size_t written, n;

	s = value_of(v, sizeof(v), "ack_ranges");
	T_CHECK_EQ_INT(rtmfp_wire_ack_ranges_decode(&ack, s.p, s.len), 0);
	T_CHECK(ack.flow_id == 2 && ack.buffer_blocks == 64 && ack.cumulative_ack == 5);
	T_CHECK_EQ_INT(ack.range_count, 2);
	rtmfp_wire_ack_iter_init(&it, &ack);
	T_CHECK_EQ_INT(rtmfp_wire_ack_iter_next(&it, &rg), 1);
	T_CHECK(rg.first == 8 && rg.last == 9);
	T_CHECK_EQ_INT(rtmfp_wire_ack_iter_next(&it, &rg), 1);
	T_CHECK(rg.first == 12 && rg.last == 12);
	T_CHECK_EQ_INT(rtmfp_wire_ack_iter_next(&it, &rg), 0);

	buf_writer_init(&w, out, sizeof(out));
	T_CHECK_EQ_INT(rtmfp_wire_ack_ranges_build(&w, 2, 64, 5, ranges, 2, &written), 0);
	T_CHECK_EQ_INT(written, 2);
	T_CHECK(encode_is(0, &w, "ack_ranges"));
	/* room for the head and one pair only: 3 + 3 + 2 = 8 bytes */
	buf_writer_init(&w, out, 9);
	T_CHECK_EQ_INT(rtmfp_wire_ack_ranges_build(&w, 2, 64, 5, ranges, 2, &written), 0);
	T_CHECK_EQ_INT(written, 1);
	T_CHECK_EQ_INT(buf_writer_len(&w), 8);
	T_CHECK_MEM(out, "\x51\x00\x05\x02\x40\x05\x01\x01", 8);
	/* not even the head */
	buf_writer_init(&w, out, 5);
	T_CHECK_EQ_INT(rtmfp_wire_ack_ranges_build(&w, 2, 64, 5, ranges, 2, &written), BFS_ETOOBIG);
	T_CHECK_EQ_INT(buf_writer_len(&w), 0);
	/* no hole before a range, or descending: refused */
	buf_writer_init(&w, out, sizeof(out));
	T_CHECK_EQ_INT(rtmfp_wire_ack_ranges_build(&w, 2, 64, 7, ranges, 2, &written), -EINVAL);
	T_CHECK_EQ_INT(buf_writer_len(&w), 0);

	/* a trailing lone VLU (rtmfp-cpp may leave one) is dropped */
	n = t_unhex(v, sizeof(v), "02 40 05 0101 0100 03");
	T_CHECK_EQ_INT(rtmfp_wire_ack_ranges_decode(&ack, v, n), 0);
	T_CHECK_EQ_INT(ack.range_count, 2);
	T_CHECK_EQ_INT(ack.ranges.len, 4);
	/* ranges past 2^64 - 1 are malformed */
	n = t_unhex(v, sizeof(v), "02 40 81ffffffffffffffff7f 00 00");
	T_CHECK_EQ_INT(rtmfp_wire_ack_ranges_decode(&ack, v, n), BFS_EMALFORMED);

	s = value_of(v, sizeof(v), "ack_bitmap");
	T_CHECK_EQ_INT(rtmfp_wire_ack_bitmap_decode(&ack, s.p, s.len), 0);
	T_CHECK(ack.flow_id == 2 && ack.buffer_blocks == 16 && ack.cumulative_ack == 5);
	T_CHECK(SPAN_IS(ack.bitmap, "\xa0"));
}

/* ---- assembler ---- */

T_CASE(assembler)
{
	uint8_t buf[32];
	struct rtmfp_wire_asm a;
	struct rtmfp_wire_header h = {
		.flags = RTMFP_WIRE_MODE_INITIATOR | RTMFP_WIRE_FLAG_TSE, /* TSE from has_* */
		.has_timestamp = true,
		.timestamp = 0x0102,
	};
	struct rtmfp_wire_ping p = { SPAN("12345678") };
	struct rtmfp_wire_chunk_iter it;
	struct rtmfp_wire_header got;
	struct rtmfp_wire_chunk c;

	T_CHECK_EQ_INT(rtmfp_wire_asm_init(&a, buf, 20, &h), 0);
	T_CHECK_EQ_INT(rtmfp_wire_asm_len(&a), 3);
	T_CHECK(rtmfp_wire_asm_empty(&a));
	T_CHECK_EQ_INT(rtmfp_wire_asm_room(&a), 17);
	T_CHECK_EQ_INT(rtmfp_wire_asm_chunk_room(&a), 14);
	T_CHECK_EQ_INT(rtmfp_wire_ping_encode(&a.w, RTMFP_WIRE_CHUNK_PING, &p), 0);
	T_CHECK_EQ_INT(rtmfp_wire_asm_room(&a), 6);
	/* a second ping does not fit: nothing changes */
	T_CHECK_EQ_INT(rtmfp_wire_ping_encode(&a.w, RTMFP_WIRE_CHUNK_PING, &p), BFS_ETOOBIG);
	T_CHECK_EQ_INT(rtmfp_wire_asm_room(&a), 6);
	/* custom chunk by hand; one that overflows is rolled back */
	T_CHECK_EQ_INT(rtmfp_wire_asm_begin(&a, RTMFP_WIRE_CHUNK_PING), 0);
	T_CHECK(!buf_put_bytes(&a.w, "abcd", 4));
	T_CHECK_EQ_INT(rtmfp_wire_asm_commit(&a), BFS_ETOOBIG);
	T_CHECK_EQ_INT(rtmfp_wire_asm_len(&a), 14);
	T_CHECK_EQ_INT(rtmfp_wire_asm_begin(&a, RTMFP_WIRE_CHUNK_PING), 0);
	rtmfp_wire_asm_rollback(&a);
	T_CHECK_EQ_INT(rtmfp_wire_asm_len(&a), 14);
	T_CHECK_EQ_INT(rtmfp_wire_asm_begin(&a, RTMFP_WIRE_CHUNK_BUFFER_PROBE), 0);
	T_CHECK_EQ_INT(rtmfp_wire_asm_begin(&a, RTMFP_WIRE_CHUNK_BUFFER_PROBE), -EINVAL);
	T_CHECK(rtmfp_wire_put_vlu(&a.w, 7));
	T_CHECK_EQ_INT(rtmfp_wire_asm_commit(&a), 0);
	T_CHECK_EQ_INT(rtmfp_wire_asm_commit(&a), -EINVAL);
	T_CHECK_EQ_INT(rtmfp_wire_asm_len(&a), 18);
	T_CHECK(!rtmfp_wire_asm_empty(&a));
	T_CHECK_EQ_INT(rtmfp_wire_asm_begin(&a, RTMFP_WIRE_CHUNK_PING), BFS_ETOOBIG);
	rtmfp_wire_asm_set_flags(&a, RTMFP_WIRE_FLAG_TC);
	T_CHECK_EQ_INT(rtmfp_wire_asm_pad(&a, 1000), 0);
	T_CHECK_EQ_INT(rtmfp_wire_asm_len(&a), 20);
	T_CHECK_EQ_INT(rtmfp_wire_asm_room(&a), 0);
	T_CHECK_EQ_INT(buf[0], 0x89); /* TC | TS | initiator; TSE dropped */
	/* 89 0102 | 01 0008 "12345678" | 18 0001 07 | ff ff */
	T_CHECK_MEM(buf, "\x89\x01\x02\x01\x00\x08" "12345678" "\x18\x00\x01\x07\xff\xff", 20);

	T_CHECK_EQ_INT(rtmfp_wire_packet_begin(&it, &got, buf, rtmfp_wire_asm_len(&a)), 0);
	T_CHECK(got.has_timestamp && got.timestamp == 0x0102 && !got.has_timestamp_echo);
	T_CHECK_EQ_INT(rtmfp_wire_chunk_next(&it, &c), 1);
	T_CHECK(c.type == RTMFP_WIRE_CHUNK_PING && SPAN_IS(c.value, "12345678"));
	T_CHECK_EQ_INT(rtmfp_wire_chunk_next(&it, &c), 1);
	T_CHECK_EQ_INT(c.type, RTMFP_WIRE_CHUNK_BUFFER_PROBE);
	T_CHECK_EQ_INT(rtmfp_wire_chunk_next(&it, &c), 0);

	/* header that does not fit */
	T_CHECK_EQ_INT(rtmfp_wire_asm_init(&a, buf, 2, &h), BFS_ETOOBIG);
	T_CHECK_EQ_INT(rtmfp_wire_asm_room(&a), 0);
	T_CHECK_EQ_INT(rtmfp_wire_ping_encode(&a.w, RTMFP_WIRE_CHUNK_PING, &p), BFS_ETOOBIG);
}

T_CASE(assembler_big_chunk)
{
	/* a chunk value can never pass 65535 bytes, however big the buffer */
	static uint8_t buf[70000], data[66000];
	struct rtmfp_wire_asm a;
	struct rtmfp_wire_header h = { .flags = RTMFP_WIRE_MODE_RESPONDER };
	struct rtmfp_wire_ping p = { { data, 65535 } };

	T_CHECK_EQ_INT(rtmfp_wire_asm_init(&a, buf, sizeof(buf), &h), 0);
	T_CHECK_EQ_INT(rtmfp_wire_asm_chunk_room(&a), 65535);
	T_CHECK_EQ_INT(rtmfp_wire_ping_encode(&a.w, RTMFP_WIRE_CHUNK_PING, &p), 0);
	p.message.len = 65536;
	T_CHECK_EQ_INT(rtmfp_wire_ping_encode(&a.w, RTMFP_WIRE_CHUNK_PING, &p), BFS_ETOOBIG);
	T_CHECK_EQ_INT(rtmfp_wire_asm_len(&a), 1 + 3 + 65535);
}

int main(void)
{
	T_RUN(vlu_vectors);
	T_RUN(vlu_rejects);
	T_RUN(fields);
	T_RUN(option_list);
	T_RUN(option_malformed);
	T_RUN(addresses);
	T_RUN(ssid);
	T_RUN(packet_header);
	T_RUN(timestamps);
	T_RUN(chunk_vectors_roundtrip);
	T_RUN(chunk_vectors_truncated);
	T_RUN(chunk_hello_fields);
	T_RUN(chunk_redirect_cookie_fields);
	T_RUN(chunk_keying_fields);
	T_RUN(chunk_ping_close_fields);
	T_RUN(chunk_userdata_fields);
	T_RUN(chunk_ack_fields);
	T_RUN(assembler);
	T_RUN(assembler_big_chunk);
	return t_done();
}
