/*
 * test_udp.c - batched UDP I/O over loopback: GSO coalescing, GRO
 * splitting, order, the drop switch, address parsing.
 */
#include "t.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>

#include "buddyfs/udp.h"

struct sink {
	size_t count;
	size_t bytes;
	int bad;
	uint32_t next;
	struct sockaddr_storage last_from;
};

/* Each datagram starts with its 32-bit index; the rest is index & 0xff. */
static void fill(uint8_t *p, size_t len, uint32_t idx)
{
	memset(p, (int)(idx & 0xff), len);
	if (len >= 4)
		memcpy(p, &idx, 4);
}

static void on_dgram(void *ctx, const struct sockaddr_storage *from, uint8_t *data, size_t len)
{
	struct sink *k = ctx;
	uint32_t idx;

	k->last_from = *from;
	k->count++;
	k->bytes += len;
	if (len < 4) {
		k->bad++;
		return;
	}
	memcpy(&idx, data, 4);
	if (idx != k->next)
		k->bad++;
	k->next = idx + 1;
	for (size_t i = 4; i < len; i++)
		if (data[i] != (uint8_t)(idx & 0xff)) {
			k->bad++;
			break;
		}
}

static void drain(struct udp_sock *s, struct sink *k, size_t want)
{
	struct pollfd pfd = { .fd = udp_fd(s), .events = POLLIN };

	while (k->count < want && poll(&pfd, 1, 500) > 0)
		while (udp_recv(s, on_dgram, k) > 0)
			;
}

static int open_local(struct udp_sock **s, const char *addr)
{
	struct sockaddr_storage a;
	int rc = udp_addr_parse(&a, addr, 0);

	return rc ? rc : udp_open(s, &a);
}

T_CASE(addr_parse_format)
{
	struct sockaddr_storage a, b;
	char s[UDP_ADDR_STR_BYTES];

	T_CHECK_EQ_INT(udp_addr_parse(&a, "127.0.0.1:1935", 0), 0);
	udp_addr_format(s, &a);
	T_CHECK(strcmp(s, "127.0.0.1:1935") == 0);
	T_CHECK_EQ_INT(udp_addr_parse(&b, "127.0.0.1", 1935), 0);
	T_CHECK(udp_addr_equal(&a, &b));
	T_CHECK_EQ_INT(udp_addr_parse(&a, "[::1]:80", 0), 0);
	udp_addr_format(s, &a);
	T_CHECK(strcmp(s, "[::1]:80") == 0);
	T_CHECK_EQ_INT(udp_addr_parse(&a, "127.0.0.1", 0), -EINVAL);
	T_CHECK_EQ_INT(udp_addr_parse(&a, "127.0.0.1:0", 0), 0);
	T_CHECK_EQ_INT(udp_addr_parse(&a, "127.0.0.1:", 0), -EINVAL);
	T_CHECK_EQ_INT(udp_addr_parse(&a, "127.0.0.1:65536", 0), -EINVAL);
	T_CHECK_EQ_INT(udp_addr_parse(&a, "127.0.0.1:-1", 0), -EINVAL);
	T_CHECK_EQ_INT(udp_addr_parse(&a, ":80", 0), -EINVAL);
	T_CHECK_EQ_INT(udp_addr_parse(&a, "::1:80", 0), -EINVAL);
	T_CHECK_EQ_INT(udp_addr_parse(&a, "[::1", 0), -EINVAL);
	/* (no unresolvable name here: that would query the DNS server) */
}

T_CASE(batch_roundtrip_in_order)
{
	struct udp_sock *tx = NULL, *rx = NULL;
	struct sockaddr_storage to;
	struct udp_stats st;
	struct sink k = { 0 };
	uint8_t dg[UDP_MAX_DATAGRAM_BYTES];
	const size_t n = 300;

	T_CHECK_EQ_INT(open_local(&tx, "127.0.0.1:0"), 0);
	T_CHECK_EQ_INT(open_local(&rx, "127.0.0.1:0"), 0);
	T_CHECK_EQ_INT(udp_local(rx, &to), 0);
	for (uint32_t i = 0; i < n; i++) {
		/* mostly full datagrams, a short one every 50th */
		size_t len = i % 50 == 49 ? 100 + i % 7 : 1200;

		fill(dg, len, i);
		T_CHECK_EQ_INT(udp_send(tx, &to, dg, len), 0);
	}
	T_CHECK_EQ_INT(udp_flush(tx), 0);
	drain(rx, &k, n);
	udp_get_stats(tx, &st);
	T_CHECK_EQ_INT(k.count, n);
	T_CHECK_EQ_INT(k.bad, 0);
	T_CHECK_EQ_INT(st.tx_datagrams, n);
	/* with GSO, runs of equal datagrams leave in far fewer messages */
	T_CHECK(st.tx_syscalls <= 2);
	udp_close(tx);
	udp_close(rx);
}

T_CASE(without_offload)
{
	struct udp_sock *tx = NULL, *rx = NULL;
	struct sockaddr_storage to;
	struct sink k = { 0 };
	uint8_t dg[1200];

	T_CHECK_EQ_INT(open_local(&tx, "127.0.0.1:0"), 0);
	T_CHECK_EQ_INT(open_local(&rx, "127.0.0.1:0"), 0);
	udp_set_offload(tx, false);
	udp_set_offload(rx, false);
	T_CHECK_EQ_INT(udp_local(rx, &to), 0);
	for (uint32_t i = 0; i < 100; i++) {
		fill(dg, sizeof(dg), i);
		T_CHECK_EQ_INT(udp_send(tx, &to, dg, sizeof(dg)), 0);
	}
	T_CHECK_EQ_INT(udp_flush(tx), 0);
	drain(rx, &k, 100);
	T_CHECK_EQ_INT(k.count, 100);
	T_CHECK_EQ_INT(k.bad, 0);
	udp_close(tx);
	udp_close(rx);
}

T_CASE(two_destinations_and_v6_socket)
{
	struct udp_sock *tx = NULL, *a = NULL, *b = NULL;
	struct sockaddr_storage ta, tb;
	struct sink ka = { 0 }, kb = { 0 };
	uint8_t dg[1000];
	char s[UDP_ADDR_STR_BYTES];

	/* a dual-stack sender reaching IPv4 receivers */
	if (open_local(&tx, "[::]:0") != 0)
		T_CHECK_EQ_INT(open_local(&tx, "127.0.0.1:0"), 0);
	T_CHECK_EQ_INT(open_local(&a, "127.0.0.1:0"), 0);
	T_CHECK_EQ_INT(open_local(&b, "127.0.0.1:0"), 0);
	T_CHECK_EQ_INT(udp_local(a, &ta), 0);
	T_CHECK_EQ_INT(udp_local(b, &tb), 0);
	for (uint32_t i = 0; i < 40; i++) {
		fill(dg, sizeof(dg), i / 2);
		T_CHECK_EQ_INT(udp_send(tx, i % 2 ? &tb : &ta, dg, sizeof(dg)), 0);
	}
	T_CHECK_EQ_INT(udp_flush(tx), 0);
	drain(a, &ka, 20);
	drain(b, &kb, 20);
	T_CHECK_EQ_INT(ka.count, 20);
	T_CHECK_EQ_INT(kb.count, 20);
	T_CHECK_EQ_INT(ka.bad + kb.bad, 0);
	udp_addr_format(s, &ka.last_from);
	T_CHECK(strncmp(s, "127.0.0.1:", 10) == 0); /* v4-mapped shown as v4 */
	udp_close(tx);
	udp_close(a);
	udp_close(b);
}

T_CASE(drop_switch_and_limits)
{
	struct udp_sock *tx = NULL, *rx = NULL;
	struct sockaddr_storage to;
	struct udp_stats st;
	struct sink k = { 0 };
	uint8_t dg[UDP_MAX_DATAGRAM_BYTES + 1] = { 0 };

	T_CHECK_EQ_INT(open_local(&tx, "127.0.0.1:0"), 0);
	T_CHECK_EQ_INT(open_local(&rx, "127.0.0.1:0"), 0);
	T_CHECK_EQ_INT(udp_local(rx, &to), 0);
	T_CHECK_EQ_INT(udp_send(tx, &to, dg, sizeof(dg)), -EMSGSIZE);
	udp_set_drop(tx, 100);
	for (int i = 0; i < 10; i++)
		T_CHECK_EQ_INT(udp_send(tx, &to, dg, 100), 0);
	T_CHECK_EQ_INT(udp_flush(tx), 0);
	udp_get_stats(tx, &st);
	T_CHECK_EQ_INT(st.tx_dropped, 10);
	T_CHECK_EQ_INT(st.tx_datagrams, 0);
	udp_set_drop(tx, 0);
	fill(dg, 4, 0);
	T_CHECK_EQ_INT(udp_send(tx, &to, dg, 4), 0);
	T_CHECK_EQ_INT(udp_flush(tx), 0);
	drain(rx, &k, 1);
	T_CHECK_EQ_INT(k.count, 1);
	udp_close(tx);
	udp_close(rx);
}

T_CASE(queue_overflow_flushes)
{
	struct udp_sock *tx = NULL, *rx = NULL;
	struct sockaddr_storage to;
	struct sink k = { 0 };
	uint8_t dg[64];
	int sz = 4 << 20;

	T_CHECK_EQ_INT(open_local(&tx, "127.0.0.1:0"), 0);
	T_CHECK_EQ_INT(open_local(&rx, "127.0.0.1:0"), 0);
	setsockopt(udp_fd(rx), SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	T_CHECK_EQ_INT(udp_local(rx, &to), 0);
	for (uint32_t i = 0; i < 3000; i++) { /* more than the queue holds */
		fill(dg, sizeof(dg), i);
		T_CHECK_EQ_INT(udp_send(tx, &to, dg, sizeof(dg)), 0);
		if (i % 500 == 499)
			drain(rx, &k, i + 1 - 200); /* keep the receive buffer from overflowing */
	}
	T_CHECK_EQ_INT(udp_flush(tx), 0);
	drain(rx, &k, 3000);
	T_CHECK_EQ_INT(k.count, 3000);
	T_CHECK_EQ_INT(k.bad, 0);
	udp_close(tx);
	udp_close(rx);
}

T_CASE(large_datagram_arrives_whole)
{
	struct udp_sock *tx = NULL, *rx = NULL;
	struct sockaddr_storage to;
	struct udp_stats st;
	struct sink k = { 0 };
	uint8_t big[60000] = { 0 }, small[8];
	int fd;

	T_CHECK_EQ_INT(open_local(&rx, "127.0.0.1:0"), 0);
	T_CHECK_EQ_INT(open_local(&tx, "127.0.0.1:0"), 0);
	udp_set_offload(rx, false);
	T_CHECK_EQ_INT(udp_local(rx, &to), 0);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	T_CHECK(fd >= 0);
	T_CHECK(sendto(fd, big, sizeof(big), 0, (struct sockaddr *)&to, sizeof(struct sockaddr_in)) ==
		(ssize_t)sizeof(big));
	close(fd);
	fill(small, sizeof(small), 0);
	T_CHECK_EQ_INT(udp_send(tx, &to, small, sizeof(small)), 0);
	T_CHECK_EQ_INT(udp_flush(tx), 0);
	drain(rx, &k, 2);
	udp_get_stats(rx, &st);
	T_CHECK_EQ_INT(k.count, 2);
	T_CHECK_EQ_INT(k.bytes, sizeof(big) + sizeof(small)); /* nothing cut short */
	T_CHECK_EQ_INT(st.rx_dropped, 0);
	udp_close(tx);
	udp_close(rx);
}

int main(void)
{
	T_RUN(addr_parse_format);
	T_RUN(batch_roundtrip_in_order);
	T_RUN(without_offload);
	T_RUN(two_destinations_and_v6_socket);
	T_RUN(drop_switch_and_limits);
	T_RUN(queue_overflow_flushes);
	T_RUN(large_datagram_arrives_whole);
	return t_done();
}
