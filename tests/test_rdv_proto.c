/*
 * test_rdv_proto.c - rendezvous control message codecs: byte vectors for
 * each type, round trips, bounds and rejection of malformed input.
 */
#include <errno.h>
#include <arpa/inet.h>

#include "t.h"
#include "buddyfs/err.h"
#include "buddyfs/rdv_proto.h"

static struct rdv_msg m, d;

static size_t enc(const struct rdv_msg *msg, uint8_t *out, size_t cap)
{
	struct buf_writer w;

	buf_writer_init(&w, out, cap);
	if (rdv_msg_encode(&w, msg))
		return 0;
	return buf_writer_len(&w);
}

T_CASE(register_vector)
{
	uint8_t b[RDV_MSG_MAX_BYTES], want[128];
	size_t n, wn;

	memset(&m, 0, sizeof(m));
	m.type = RDV_MSG_REGISTER;
	m.req = 0x01020304;
	strcpy(m.name, "alice");
	memset(m.sig, 0xab, sizeof(m.sig));
	n = enc(&m, b, sizeof(b));
	wn = t_unhex(want, sizeof(want), "0101" "01020304" "05" "616c696365");
	memset(want + wn, 0xab, 64);
	wn += 64;
	T_CHECK_EQ_INT(n, wn);
	T_CHECK_MEM(b, want, n);
	T_CHECK_EQ_INT(rdv_msg_decode(&d, b, n), 0);
	T_CHECK_EQ_INT(d.type, RDV_MSG_REGISTER);
	T_CHECK_EQ_INT(d.req, 0x01020304);
	T_CHECK(strcmp(d.name, "alice") == 0);
	T_CHECK_MEM(d.sig, m.sig, 64);
	/* every truncation and one extra byte are malformed */
	for (size_t k = 0; k < n; k++)
		T_CHECK(rdv_msg_decode(&d, b, k) != 0);
	b[n] = 0;
	T_CHECK_EQ_INT(rdv_msg_decode(&d, b, n + 1), BFS_EMALFORMED);
	b[0] = 2;
	T_CHECK_EQ_INT(rdv_msg_decode(&d, b, n), BFS_EVERSION);
}

T_CASE(lookup_and_result_vectors)
{
	uint8_t b[RDV_MSG_MAX_BYTES], want[128];
	size_t n, wn;

	memset(&m, 0, sizeof(m));
	m.type = RDV_MSG_LOOKUP;
	m.req = 7;
	strcpy(m.name, "bob");
	n = enc(&m, b, sizeof(b));
	wn = t_unhex(want, sizeof(want), "0102" "00000007" "03" "626f62");
	T_CHECK_EQ_INT(n, wn);
	T_CHECK_MEM(b, want, n);

	memset(&m, 0, sizeof(m));
	m.type = RDV_MSG_RESULT;
	m.req = 7;
	m.code = RDV_OK;
	m.cert_len = 3;
	memcpy(m.cert, "\x01\x02\x03", 3);
	n = enc(&m, b, sizeof(b));
	wn = t_unhex(want, sizeof(want), "0181" "00000007" "00" "0003" "010203");
	T_CHECK_EQ_INT(n, wn);
	T_CHECK_MEM(b, want, n);
	T_CHECK_EQ_INT(rdv_msg_decode(&d, b, n), 0);
	T_CHECK_EQ_INT(d.cert_len, 3);
	/* a code out of range */
	b[6] = RDV_RESULT_MAX + 1;
	T_CHECK_EQ_INT(rdv_msg_decode(&d, b, n), BFS_EMALFORMED);
	m.code = RDV_RESULT_MAX + 1;
	T_CHECK_EQ_INT(enc(&m, b, sizeof(b)), 0);
}

T_CASE(watch_bounds)
{
	static uint8_t b[RDV_MSG_MAX_BYTES + 64];
	size_t n;

	memset(&m, 0, sizeof(m));
	m.type = RDV_MSG_WATCH;
	m.req = 9;
	m.n_ids = RDV_MAX_WATCH;
	for (size_t i = 0; i < m.n_ids; i++)
		memset(m.ids[i], (int)i, RDV_PEER_ID_BYTES);
	n = enc(&m, b, sizeof(b));
	T_CHECK_EQ_INT(n, RDV_MSG_MAX_BYTES);
	T_CHECK_EQ_INT(rdv_msg_decode(&d, b, n), 0);
	T_CHECK_EQ_INT(d.n_ids, RDV_MAX_WATCH);
	T_CHECK_MEM(d.ids, m.ids, sizeof(m.ids));
	/* a count over the bound is refused both ways */
	b[6] = (RDV_MAX_WATCH + 1) >> 8;
	b[7] = (RDV_MAX_WATCH + 1) & 0xff;
	T_CHECK_EQ_INT(rdv_msg_decode(&d, b, n), BFS_EMALFORMED);
	m.n_ids = RDV_MAX_WATCH + 1;
	T_CHECK_EQ_INT(enc(&m, b, sizeof(b)), 0);
	/* an empty set is fine */
	m.n_ids = 0;
	n = enc(&m, b, sizeof(b));
	T_CHECK_EQ_INT(n, 8);
	T_CHECK_EQ_INT(rdv_msg_decode(&d, b, n), 0);
	/* a writer too small: -ENOSPC and rolled back */
	{
		struct buf_writer w;
		uint8_t small[10];

		m.n_ids = 3;
		buf_writer_init(&w, small, sizeof(small));
		T_CHECK_EQ_INT(rdv_msg_encode(&w, &m), -ENOSPC);
		T_CHECK_EQ_INT(buf_writer_len(&w), 0);
		T_CHECK(buf_writer_ok(&w));
	}
}

T_CASE(presence_and_address_vectors)
{
	uint8_t b[RDV_MSG_MAX_BYTES], want[256];
	size_t n, wn;

	memset(&m, 0, sizeof(m));
	m.type = RDV_MSG_PRESENCE;
	memset(m.peer_id, 0x11, 32);
	m.online = true;
	m.n_addrs = 2;
	m.addrs[0] = (struct rdv_addr){ .kind = RDV_ADDR_LOCAL, .family = 4, .port = 1935,
					.addr = { 192, 168, 1, 2 } };
	m.addrs[1] = (struct rdv_addr){ .kind = RDV_ADDR_OBSERVED, .family = 6, .port = 0x1234,
					.addr = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 } };
	n = enc(&m, b, sizeof(b));
	wn = t_unhex(want, sizeof(want), "0182"
		     "1111111111111111111111111111111111111111111111111111111111111111"
		     "01" "02" "01" "04" "c0a80102" "078f"
		     "02" "06" "20010db8000000000000000000000001" "1234");
	T_CHECK_EQ_INT(n, wn);
	T_CHECK_MEM(b, want, n);
	T_CHECK_EQ_INT(rdv_msg_decode(&d, b, n), 0);
	T_CHECK(d.online);
	T_CHECK_EQ_INT(d.n_addrs, 2);
	T_CHECK_MEM(d.addrs, m.addrs, 2 * sizeof(m.addrs[0]));
	/* offline with addresses is malformed */
	b[34] = 0;
	T_CHECK_EQ_INT(rdv_msg_decode(&d, b, n), BFS_EMALFORMED);
	/* bad family */
	b[34] = 1;
	b[37] = 5;
	T_CHECK_EQ_INT(rdv_msg_decode(&d, b, n), BFS_EMALFORMED);

	memset(&m, 0, sizeof(m));
	m.type = RDV_MSG_YOUR_ADDRESS;
	m.n_addrs = 1;
	m.addrs[0] = (struct rdv_addr){ .kind = RDV_ADDR_OBSERVED, .family = 4, .port = 80,
					.addr = { 10, 0, 0, 1 } };
	n = enc(&m, b, sizeof(b));
	wn = t_unhex(want, sizeof(want), "0183" "02" "04" "0a000001" "0050");
	T_CHECK_EQ_INT(n, wn);
	T_CHECK_MEM(b, want, n);
	m.addrs[0].kind = RDV_ADDR_LOCAL;
	T_CHECK_EQ_INT(enc(&m, b, sizeof(b)), 0);
}

T_CASE(report_only_local)
{
	uint8_t b[RDV_MSG_MAX_BYTES];
	size_t n;

	memset(&m, 0, sizeof(m));
	m.type = RDV_MSG_REPORT;
	m.req = 1;
	m.n_addrs = RDV_MAX_REPORT_ADDRS;
	for (size_t i = 0; i < m.n_addrs; i++)
		m.addrs[i] = (struct rdv_addr){ .kind = RDV_ADDR_LOCAL, .family = 4,
						.port = (uint16_t)i, .addr = { 10, 0, 0, (uint8_t)i } };
	n = enc(&m, b, sizeof(b));
	T_CHECK(n > 0);
	T_CHECK_EQ_INT(rdv_msg_decode(&d, b, n), 0);
	T_CHECK_EQ_INT(d.n_addrs, RDV_MAX_REPORT_ADDRS);
	m.n_addrs = RDV_MAX_REPORT_ADDRS + 1;
	T_CHECK_EQ_INT(enc(&m, b, sizeof(b)), 0);
	m.n_addrs = 1;
	m.addrs[0].kind = RDV_ADDR_OBSERVED;
	T_CHECK_EQ_INT(enc(&m, b, sizeof(b)), 0);
}

T_CASE(garbage_rejected)
{
	uint8_t b[64];

	T_CHECK_EQ_INT(rdv_msg_decode(&d, NULL, 0), BFS_EMALFORMED);
	b[0] = RDV_PROTO_VERSION;
	T_CHECK_EQ_INT(rdv_msg_decode(&d, b, 1), BFS_EMALFORMED);
	b[1] = 0x7f; /* unknown type */
	T_CHECK_EQ_INT(rdv_msg_decode(&d, b, 2), BFS_EMALFORMED);
	/* a name with a NUL, a zero-length name */
	memcpy(b, "\x01\x02\x00\x00\x00\x01\x02a\x00", 9);
	T_CHECK_EQ_INT(rdv_msg_decode(&d, b, 9), BFS_EMALFORMED);
	memcpy(b, "\x01\x02\x00\x00\x00\x01\x00", 7);
	T_CHECK_EQ_INT(rdv_msg_decode(&d, b, 7), BFS_EMALFORMED);
	memset(&m, 0, sizeof(m));
	m.type = RDV_MSG_LOOKUP;
	memset(m.name, 'a', RDV_NAME_MAX);
	T_CHECK(enc(&m, b, sizeof(b)) > 0);
}

T_CASE(relay_vectors)
{
	uint8_t b[RDV_MSG_MAX_BYTES], want[128];
	size_t n, wn;

	/* RELAY req 5 for peer 22..22 */
	memset(&m, 0, sizeof(m));
	m.type = RDV_MSG_RELAY;
	m.req = 5;
	memset(m.peer_id, 0x22, 32);
	n = enc(&m, b, sizeof(b));
	wn = t_unhex(want, sizeof(want), "0105" "00000005"
		     "2222222222222222222222222222222222222222222222222222222222222222");
	T_CHECK_EQ_INT(n, wn);
	T_CHECK_MEM(b, want, n);
	T_CHECK_EQ_INT(rdv_msg_decode(&d, b, n), 0);
	T_CHECK_EQ_INT(d.req, 5);
	T_CHECK_MEM(d.peer_id, m.peer_id, 32);
	for (size_t k = 0; k < n; k++)
		T_CHECK(rdv_msg_decode(&d, b, k) != 0);

	/* RELAY_OFFER: peer 33..33, token 00..0f, port 40000 */
	memset(&m, 0, sizeof(m));
	m.type = RDV_MSG_RELAY_OFFER;
	memset(m.peer_id, 0x33, 32);
	for (int i = 0; i < 16; i++)
		m.token[i] = (uint8_t)i;
	m.relay_port = 40000;
	n = enc(&m, b, sizeof(b));
	wn = t_unhex(want, sizeof(want), "0184"
		     "3333333333333333333333333333333333333333333333333333333333333333"
		     "000102030405060708090a0b0c0d0e0f" "9c40");
	T_CHECK_EQ_INT(n, wn);
	T_CHECK_MEM(b, want, n);
	T_CHECK_EQ_INT(rdv_msg_decode(&d, b, n), 0);
	T_CHECK_MEM(d.token, m.token, 16);
	T_CHECK_EQ_INT(d.relay_port, 40000);
	for (size_t k = 0; k < n; k++)
		T_CHECK(rdv_msg_decode(&d, b, k) != 0);
	/* port 0 is refused both ways */
	b[n - 1] = 0;
	b[n - 2] = 0;
	T_CHECK_EQ_INT(rdv_msg_decode(&d, b, n), BFS_EMALFORMED);
	m.relay_port = 0;
	T_CHECK_EQ_INT(enc(&m, b, sizeof(b)), 0);

	/* RELAY_READY: peer 44..44, port 40000 */
	memset(&m, 0, sizeof(m));
	m.type = RDV_MSG_RELAY_READY;
	memset(m.peer_id, 0x44, 32);
	m.relay_port = 40000;
	n = enc(&m, b, sizeof(b));
	wn = t_unhex(want, sizeof(want), "0185"
		     "4444444444444444444444444444444444444444444444444444444444444444" "9c40");
	T_CHECK_EQ_INT(n, wn);
	T_CHECK_MEM(b, want, n);
	T_CHECK_EQ_INT(rdv_msg_decode(&d, b, n), 0);
	T_CHECK_EQ_INT(d.relay_port, 40000);
	b[n] = 0;
	T_CHECK_EQ_INT(rdv_msg_decode(&d, b, n + 1), BFS_EMALFORMED);
}

T_CASE(relay_bind_datagram)
{
	uint8_t tok[RDV_RELAY_TOKEN_BYTES], got[RDV_RELAY_TOKEN_BYTES];
	uint8_t b[RDV_RELAY_BIND_BYTES + 1], want[64];
	size_t wn;

	for (int i = 0; i < 16; i++)
		tok[i] = (uint8_t)(0xf0 + i);
	rdv_relay_bind_encode(b, tok);
	wn = t_unhex(want, sizeof(want), "6266732d72656c6179" "01"
		     "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
	T_CHECK_EQ_INT(wn, RDV_RELAY_BIND_BYTES);
	T_CHECK_MEM(b, want, wn);
	T_CHECK(rdv_relay_bind_decode(b, RDV_RELAY_BIND_BYTES, got));
	T_CHECK_MEM(got, tok, 16);
	for (size_t k = 0; k < RDV_RELAY_BIND_BYTES; k++)
		T_CHECK(!rdv_relay_bind_decode(b, k, got));
	b[RDV_RELAY_BIND_BYTES] = 0;
	T_CHECK(!rdv_relay_bind_decode(b, RDV_RELAY_BIND_BYTES + 1, got));
	b[9] = 2;
	T_CHECK(!rdv_relay_bind_decode(b, RDV_RELAY_BIND_BYTES, got));
	b[9] = 1;
	b[0] = 'B';
	T_CHECK(!rdv_relay_bind_decode(b, RDV_RELAY_BIND_BYTES, got));
}

T_CASE(register_signed_bytes)
{
	uint8_t out[RDV_REGISTER_SIGNED_MAX_BYTES], id[32];
	long n;

	memset(id, 0x5a, sizeof(id));
	n = rdv_register_signed(out, id, "carol");
	T_CHECK_EQ_INT(n, (long)sizeof(RDV_REGISTER_CONTEXT) + 32 + 1 + 5);
	T_CHECK_MEM(out, "buddyfs-rdv register v1\0", 24);
	T_CHECK_MEM(out + 24, id, 32);
	T_CHECK_EQ_INT(out[56], 5);
	T_CHECK_MEM(out + 57, "carol", 5);
	T_CHECK_EQ_INT(rdv_register_signed(out, id, ""), -EINVAL);
}

T_CASE(sockaddr_conversion)
{
	struct sockaddr_storage sa, back;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;
	struct rdv_addr a;

	memset(&sa, 0, sizeof(sa));
	s6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::ffff:10.1.2.3", &s6->sin6_addr);
	s6->sin6_port = htons(4000);
	T_CHECK_EQ_INT(rdv_addr_from_sockaddr(&a, &sa, RDV_ADDR_OBSERVED), 0);
	T_CHECK_EQ_INT(a.family, 4);
	T_CHECK_EQ_INT(a.port, 4000);
	T_CHECK_MEM(a.addr, "\x0a\x01\x02\x03", 4);
	T_CHECK_EQ_INT(rdv_addr_to_sockaddr(&back, &a, true), 0);
	T_CHECK_MEM(&((struct sockaddr_in6 *)&back)->sin6_addr, &s6->sin6_addr, 16);
	T_CHECK_EQ_INT(rdv_addr_to_sockaddr(&back, &a, false), 0);
	T_CHECK_EQ_INT(back.ss_family, AF_INET);
	T_CHECK_EQ_INT(ntohs(((struct sockaddr_in *)&back)->sin_port), 4000);
	sa.ss_family = AF_UNIX;
	T_CHECK_EQ_INT(rdv_addr_from_sockaddr(&a, &sa, RDV_ADDR_LOCAL), -EAFNOSUPPORT);
}

int main(void)
{
	T_RUN(register_vector);
	T_RUN(lookup_and_result_vectors);
	T_RUN(watch_bounds);
	T_RUN(presence_and_address_vectors);
	T_RUN(report_only_local);
	T_RUN(garbage_rejected);
	T_RUN(relay_vectors);
	T_RUN(relay_bind_datagram);
	T_RUN(register_signed_bytes);
	T_RUN(sockaddr_conversion);
	return t_done();
}
