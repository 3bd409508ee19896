/*
 * test_rdv_relay.c - the relay's channel table and forwarding, with real
 * UDP sockets on loopback as the two ends: binding by token (the ready
 * event once both are bound), datagrams forwarded unchanged both ways,
 * strays and wrong tokens dropped, a BIND again not forwarded, the per-peer
 * and table limits, idle expiry; and a table of many channels (the hash
 * indexes) fed through rdv_relay_input: each datagram reaches its own
 * channel's other end, a rebound end is followed, freed channels forget
 * their addresses and tokens.
 */
#include <errno.h>
#include <string.h>
#include <netinet/in.h>

#include <sodium.h>

#include "t.h"
#include "buddyfs/loop.h"
#include "buddyfs/rdv_proto.h"
#include "buddyfs/rdv_relay.h"
#include "buddyfs/udp.h"

static struct loop *loop;
static int ready_count;
static uint8_t ready_a[32], ready_b[32];

static void on_ready(void *ctx, const uint8_t a[static 32], const uint8_t b[static 32])
{
	(void)ctx;
	ready_count++;
	memcpy(ready_a, a, 32);
	memcpy(ready_b, b, 32);
}

struct got {
	size_t len;
	uint8_t data[256];
	struct sockaddr_storage from;
	int n;
};

static void on_dgram(void *ctx, const struct sockaddr_storage *from, uint8_t *data, size_t len)
{
	struct got *g = ctx;

	g->n++;
	g->from = *from;
	g->len = len < sizeof(g->data) ? len : sizeof(g->data);
	memcpy(g->data, data, g->len);
}

/* pump - run the loop a little, then read what @u received into @g. */
static void pump(struct udp_sock *u, struct got *g)
{
	for (int i = 0; i < 5; i++)
		loop_run_once(loop, 10 * LOOP_NS_PER_MS);
	if (u)
		udp_recv(u, on_dgram, g);
}

static void send_to(struct udp_sock *u, const struct sockaddr_storage *to, const void *d, size_t n)
{
	udp_send(u, to, d, n);
	udp_flush(u);
}

T_CASE(bind_forward_drop)
{
	struct rdv_relay *r = NULL;
	struct udp_sock *ua = NULL, *ub = NULL, *ux = NULL;
	struct sockaddr_storage any, raddr, aaddr, baddr;
	uint8_t ida[32], idb[32], ta[16], tb[16], ta2[16], tb2[16], bind[RDV_RELAY_BIND_BYTES];
	struct rdv_relay_stats st;
	struct got g;
	bool ready = true;

	memset(ida, 0xaa, 32);
	memset(idb, 0xbb, 32);
	udp_addr_parse(&any, "127.0.0.1:0", 0);
	T_CHECK_EQ_INT(loop_new(&loop), 0);
	T_CHECK_EQ_INT(rdv_relay_new(&r, loop, &any, 0, 0, on_ready, NULL), 0);
	T_CHECK(rdv_relay_port(r) != 0);
	T_CHECK_EQ_INT(rdv_relay_local_addr(r, &raddr), 0);
	T_CHECK_EQ_INT(udp_open(&ua, &any), 0);
	T_CHECK_EQ_INT(udp_open(&ub, &any), 0);
	T_CHECK_EQ_INT(udp_open(&ux, &any), 0);
	udp_local(ua, &aaddr);
	udp_local(ub, &baddr);

	T_CHECK_EQ_INT(rdv_relay_channel(r, ida, ida, ta, tb, &ready), -EINVAL);
	T_CHECK_EQ_INT(rdv_relay_channel(r, ida, idb, ta, tb, &ready), 0);
	T_CHECK(!ready);
	T_CHECK(memcmp(ta, tb, 16) != 0);
	/* the same pair either way round: the same channel, tokens swapped */
	T_CHECK_EQ_INT(rdv_relay_channel(r, idb, ida, tb2, ta2, &ready), 0);
	T_CHECK_MEM(ta2, ta, 16);
	T_CHECK_MEM(tb2, tb, 16);
	rdv_relay_get_stats(r, &st);
	T_CHECK_EQ_INT(st.channels, 1);

	/* before both ends are bound nothing is forwarded */
	rdv_relay_bind_encode(bind, ta);
	send_to(ua, &raddr, bind, sizeof(bind));
	pump(NULL, NULL);
	T_CHECK_EQ_INT(ready_count, 0);
	send_to(ua, &raddr, "early", 5);
	memset(&g, 0, sizeof(g));
	pump(ub, &g);
	T_CHECK_EQ_INT(g.n, 0);
	/* a wrong token binds nothing */
	randombytes_buf(ta2, 16);
	rdv_relay_bind_encode(bind, ta2);
	send_to(ux, &raddr, bind, sizeof(bind));
	pump(NULL, NULL);
	T_CHECK_EQ_INT(ready_count, 0);
	/* b binds: ready, with both ids */
	rdv_relay_bind_encode(bind, tb);
	send_to(ub, &raddr, bind, sizeof(bind));
	pump(NULL, NULL);
	T_CHECK_EQ_INT(ready_count, 1);
	T_CHECK_MEM(ready_a, ida, 32);
	T_CHECK_MEM(ready_b, idb, 32);
	T_CHECK_EQ_INT(rdv_relay_channel(r, ida, idb, ta2, tb2, &ready), 0);
	T_CHECK(ready);

	/* forwarded unchanged, both ways, from the relay's address */
	send_to(ua, &raddr, "sealed-a", 8);
	memset(&g, 0, sizeof(g));
	pump(ub, &g);
	T_CHECK_EQ_INT(g.n, 1);
	T_CHECK_EQ_INT(g.len, 8);
	T_CHECK_MEM(g.data, "sealed-a", 8);
	T_CHECK(udp_addr_equal(&g.from, &raddr));
	send_to(ub, &raddr, "sealed-b!", 9);
	memset(&g, 0, sizeof(g));
	pump(ua, &g);
	T_CHECK_EQ_INT(g.n, 1);
	T_CHECK_MEM(g.data, "sealed-b!", 9);
	/* a BIND again is not forwarded (and no second ready) */
	rdv_relay_bind_encode(bind, ta);
	send_to(ua, &raddr, bind, sizeof(bind));
	memset(&g, 0, sizeof(g));
	pump(ub, &g);
	T_CHECK_EQ_INT(g.n, 0);
	T_CHECK_EQ_INT(ready_count, 1);
	/* a stranger is not forwarded */
	send_to(ux, &raddr, "stray", 5);
	memset(&g, 0, sizeof(g));
	pump(ua, &g);
	T_CHECK_EQ_INT(g.n, 0);
	udp_recv(ub, on_dgram, &g);
	T_CHECK_EQ_INT(g.n, 0);
	rdv_relay_get_stats(r, &st);
	T_CHECK_EQ_INT(st.packets, 2);
	T_CHECK_EQ_INT(st.bytes, 17);
	T_CHECK(st.dropped >= 3);
	(void)aaddr;
	(void)baddr;

	udp_close(ua);
	udp_close(ub);
	udp_close(ux);
	rdv_relay_free(r);
	loop_free(loop);
	loop = NULL;
}

T_CASE(limits_and_expiry)
{
	struct rdv_relay *r = NULL;
	struct sockaddr_storage any;
	uint8_t ida[32], other[32], ta[16], tb[16];
	struct rdv_relay_stats st;
	bool ready;

	memset(ida, 0xaa, 32);
	udp_addr_parse(&any, "127.0.0.1:0", 0);
	T_CHECK_EQ_INT(loop_new(&loop), 0);
	T_CHECK_EQ_INT(rdv_relay_new(&r, loop, &any, 12, 100 * LOOP_NS_PER_MS, NULL, NULL), 0);
	/* one peer id: at most 8 channels */
	for (int i = 0; i < 8; i++) {
		memset(other, i + 1, 32);
		T_CHECK_EQ_INT(rdv_relay_channel(r, ida, other, ta, tb, &ready), 0);
	}
	memset(other, 9, 32);
	T_CHECK_EQ_INT(rdv_relay_channel(r, ida, other, ta, tb, &ready), -ENOSPC);
	/* the table: 12 in all */
	for (int i = 0; i < 4; i++) {
		uint8_t x[32], y[32];

		memset(x, 0x40 + i, 32);
		memset(y, 0x60 + i, 32);
		T_CHECK_EQ_INT(rdv_relay_channel(r, x, y, ta, tb, &ready), 0);
	}
	{
		uint8_t x[32], y[32];

		memset(x, 0x50, 32);
		memset(y, 0x70, 32);
		T_CHECK_EQ_INT(rdv_relay_channel(r, x, y, ta, tb, &ready), -ENOSPC);
	}
	rdv_relay_get_stats(r, &st);
	T_CHECK_EQ_INT(st.channels, 12);
	/* idle channels go (the sweep runs every idle/4) */
	for (int i = 0; i < 30 && st.channels; i++) {
		loop_run_once(loop, 20 * LOOP_NS_PER_MS);
		rdv_relay_get_stats(r, &st);
	}
	T_CHECK_EQ_INT(st.channels, 0);
	rdv_relay_free(r);
	loop_free(loop);
	loop = NULL;
}

#define MANY 600

/* fake_addr - 127.0.0.1:@port (nobody listens: sends go nowhere). */
static void fake_addr(struct sockaddr_storage *a, unsigned port)
{
	char text[32];

	snprintf(text, sizeof(text), "127.0.0.1:%u", port);
	udp_addr_parse(a, text, 0);
}

T_CASE(many_channels)
{
	static uint8_t tok[MANY][2][16];
	struct rdv_relay *r = NULL;
	struct sockaddr_storage any, from;
	uint8_t x[32], y[32], bind[RDV_RELAY_BIND_BYTES];
	struct rdv_relay_stats st;
	bool ready;
	int made = 0;

	udp_addr_parse(&any, "127.0.0.1:0", 0);
	T_CHECK_EQ_INT(loop_new(&loop), 0);
	T_CHECK_EQ_INT(rdv_relay_new(&r, loop, &any, MANY, 0, on_ready, NULL), 0);
	ready_count = 0;
	for (int i = 0; i < MANY; i++) {
		memset(x, 0, 32);
		memset(y, 0, 32);
		x[0] = 1, x[1] = (uint8_t)(i >> 8), x[2] = (uint8_t)i;
		y[0] = 2, y[1] = (uint8_t)(i >> 8), y[2] = (uint8_t)i;
		made += rdv_relay_channel(r, x, y, tok[i][0], tok[i][1], &ready) == 0;
	}
	T_CHECK_EQ_INT(made, MANY);
	memset(x, 5, 32);
	memset(y, 6, 32);
	T_CHECK_EQ_INT(rdv_relay_channel(r, x, y, tok[0][0], tok[0][1], &ready), -ENOSPC); /* full */
	/* bind every end from its own (fake) address: 20000 + 2i, 20001 + 2i */
	for (int i = 0; i < MANY; i++) {
		for (int k = 0; k < 2; k++) {
			fake_addr(&from, 20000u + 2u * (unsigned)i + (unsigned)k);
			rdv_relay_bind_encode(bind, tok[i][k]);
			rdv_relay_input(r, &from, bind, sizeof(bind));
		}
	}
	T_CHECK_EQ_INT(ready_count, MANY);
	/* a datagram from each end is forwarded; nothing is dropped */
	for (int i = 0; i < MANY; i++) {
		for (int k = 0; k < 2; k++) {
			fake_addr(&from, 20000u + 2u * (unsigned)i + (unsigned)k);
			rdv_relay_input(r, &from, (const uint8_t *)"data", 4);
		}
	}
	rdv_relay_get_stats(r, &st);
	T_CHECK_EQ_INT(st.packets, 2 * MANY);
	T_CHECK_EQ_INT(st.dropped, 0);
	/* one end moves (its NAT rebinds): the old address is a stranger now */
	fake_addr(&from, 40000);
	rdv_relay_bind_encode(bind, tok[7][0]);
	rdv_relay_input(r, &from, bind, sizeof(bind));
	rdv_relay_input(r, &from, (const uint8_t *)"data", 4);
	fake_addr(&from, 20000 + 14);
	rdv_relay_input(r, &from, (const uint8_t *)"data", 4);
	rdv_relay_get_stats(r, &st);
	T_CHECK_EQ_INT(st.packets, 2 * MANY + 1);
	T_CHECK_EQ_INT(st.dropped, 1);
	T_CHECK_EQ_INT(ready_count, MANY); /* already announced */
	T_CHECK_EQ_INT(st.channels, MANY);
	rdv_relay_free(r);
	/* a short idle limit: the sweep frees every channel, and with them
	 * their tokens and addresses */
	T_CHECK_EQ_INT(rdv_relay_new(&r, loop, &any, MANY, 50 * LOOP_NS_PER_MS, on_ready, NULL), 0);
	for (int i = 0; i < 100; i++) {
		memset(x, 0, 32);
		memset(y, 0, 32);
		x[0] = 3, x[1] = (uint8_t)i;
		y[0] = 4, y[1] = (uint8_t)i;
		T_CHECK_EQ_INT(rdv_relay_channel(r, x, y, tok[i][0], tok[i][1], &ready), 0);
		fake_addr(&from, 30000u + (unsigned)i);
		rdv_relay_bind_encode(bind, tok[i][0]);
		rdv_relay_input(r, &from, bind, sizeof(bind));
	}
	for (int i = 0; i < 50; i++) {
		loop_run_once(loop, 10 * LOOP_NS_PER_MS);
		rdv_relay_get_stats(r, &st);
		if (st.channels == 0)
			break;
	}
	T_CHECK_EQ_INT(st.channels, 0);
	/* their tokens bind nothing, their addresses forward nothing */
	st.dropped = 0;
	rdv_relay_bind_encode(bind, tok[5][0]);
	fake_addr(&from, 30005);
	rdv_relay_input(r, &from, bind, sizeof(bind));
	rdv_relay_input(r, &from, (const uint8_t *)"data", 4);
	rdv_relay_get_stats(r, &st);
	T_CHECK_EQ_INT(st.dropped, 2);
	T_CHECK_EQ_INT(st.packets, 0);
	rdv_relay_free(r);
	loop_free(loop);
	loop = NULL;
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	T_RUN(bind_forward_drop);
	T_RUN(limits_and_expiry);
	T_RUN(many_channels);
	return t_done();
}
