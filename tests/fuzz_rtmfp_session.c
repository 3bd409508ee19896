/*
 * fuzz_rtmfp_session.c - libFuzzer target: packets into an open session.
 *
 * Each input opens a session between two instances (plain profile) on a
 * fake clock, then reads records  kind(1) | len(2, big-endian) | bytes:
 *   kind % 4 == 0  bytes are a plaintext packet (flags byte first) that
 *                  the far end seals with its session key and sends
 *   kind % 4 == 1  bytes are a startup plaintext packet, sealed with the
 *                  default key under session id 0
 *   kind % 4 == 2  bytes are a raw datagram
 *   kind % 4 == 3  the clock moves len x 10 ms; timers and the link run
 * The responder must never crash, leak or break its own invariants.
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "buddyfs/rtmfp.h"
#include "buddyfs/rtmfp_crypto_plain.h"
#include "buddyfs/rtmfp_session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MS RTMFP_NS_PER_MS
#define QMAX 256

struct fz_dgram {
	int to;
	size_t len;
	uint8_t b[RTMFP_BUF_BYTES];
};

struct fz {
	struct rtmfp *r[2];
	struct rtmfp_crypto *c[2];
	struct fz_dgram *q;
	size_t n;
	uint64_t now;
};

static struct sockaddr_storage fz_addr(int i)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *a = (void *)&ss;

	memset(&ss, 0, sizeof(ss));
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)(2001 + i));
	a->sin_addr.s_addr = htonl(0x7f000001);
	return ss;
}

struct fz_node {
	struct fz *z;
	int idx;
};

static struct fz_node nodes[2];

static void fz_send(void *ctx, int iface, const struct sockaddr_storage *to,
		    const uint8_t *bytes, size_t len)
{
	struct fz_node *nd = ctx;
	struct fz *z = nd->z;

	(void)iface;
	(void)to;
	if (z->n == QMAX || len > RTMFP_BUF_BYTES)
		return;
	z->q[z->n].to = 1 - nd->idx;
	z->q[z->n].len = len;
	memcpy(z->q[z->n].b, bytes, len);
	z->n++;
}

static void fz_recv_flow(void *ctx, struct rtmfp_recv *f, const uint8_t *meta, size_t len,
			 struct rtmfp_send *assoc)
{
	(void)ctx;
	(void)meta;
	(void)assoc;
	if (len % 2 == 0)
		rtmfp_recv_accept(f);
}

static void fz_message(void *ctx, struct rtmfp_recv *f, const uint8_t *msg, size_t len)
{
	struct fz_node *nd = ctx;

	(void)msg;
	if (len == 7)
		rtmfp_recv_close(f, nd->z->now);
}

static const struct rtmfp_callbacks fz_cb = {
	.send = fz_send,
	.recv_flow = fz_recv_flow,
	.message = fz_message,
};

static void fz_deliver(struct fz *z)
{
	for (int rounds = 0; rounds < 8 && z->n; rounds++) {
		size_t n = z->n;
		struct fz_dgram *batch = malloc(n * sizeof(*batch));

		if (!batch)
			return;
		memcpy(batch, z->q, n * sizeof(*batch));
		z->n = 0;
		for (size_t i = 0; i < n; i++) {
			struct sockaddr_storage from = fz_addr(1 - batch[i].to);

			rtmfp_feed(z->r[batch[i].to], 0, &from, batch[i].b, batch[i].len, z->now);
		}
		free(batch);
	}
}

static void fz_tick(struct fz *z, uint64_t dt)
{
	z->now += dt;
	for (int i = 0; i < 2; i++)
		if (rtmfp_next_deadline(z->r[i]) <= z->now)
			rtmfp_on_timer(z->r[i], z->now);
	fz_deliver(z);
}

/* fz_seal - seal @clear as a datagram from node 0 to node 1 and feed it. */
static void fz_feed_sealed(struct fz *z, const uint8_t *clear, size_t len, bool startup)
{
	uint8_t dg[RTMFP_BUF_BYTES];
	struct sockaddr_storage from = fz_addr(0);
	struct rtmfp_session *s = z->r[0]->sessions;
	size_t front = rtmfp_crypto_front_bytes(z->c[0]), out;
	uint32_t ssid = 0;
	int rc;

	if (len == 0 || len + front + RTMFP_CRYPTO_MAX_TRAILER_BYTES + 4 > sizeof(dg))
		return;
	memcpy(dg + 4 + front, clear, len);
	if (startup) {
		rc = rtmfp_crypto_seal_default(z->c[0], dg + 4, sizeof(dg) - 4, len, &out);
	} else {
		if (!s || !s->key || s->state != RTMFP_S_OPEN)
			return;
		ssid = s->tx_id;
		rc = rtmfp_crypto_key_seal(s->key, dg + 4, sizeof(dg) - 4, len, &out);
	}
	if (rc != 0 || rtmfp_wire_ssid_scramble(dg, out + 4, ssid) != 0)
		return;
	rtmfp_feed(z->r[1], 0, &from, dg, out + 4, z->now);
	fz_deliver(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const ids[2] = { "alice", "bob" };
	struct fz z = { .now = 1000 * RTMFP_NS_PER_SEC };
	struct rtmfp_send *f = NULL;
	struct sockaddr_storage bob = fz_addr(1);
	struct rtmfp_params p;
	size_t pos = 0;

	rtmfp_params_default(&p);
	p.keepalive_ns = 2 * RTMFP_NS_PER_SEC;
	p.retransmit_limit_ns = 5 * RTMFP_NS_PER_SEC;
	p.idle_limit_ns = 8 * RTMFP_NS_PER_SEC;
	z.q = malloc(QMAX * sizeof(*z.q));
	if (!z.q)
		return 0;
	for (int i = 0; i < 2; i++) {
		nodes[i].z = &z;
		nodes[i].idx = i;
		if (rtmfp_crypto_plain_new(&z.c[i], ids[i], strlen(ids[i])) != 0 ||
		    rtmfp_new(&z.r[i], z.c[i], &fz_cb, &nodes[i], &p, z.now) != 0 ||
		    rtmfp_add_interface(z.r[i], 0) != 0)
			abort();
	}
	if (rtmfp_open_flow(z.r[0], &f, (const uint8_t *)"bob", 3, (const uint8_t *)"md", 2,
			    &bob, 1, z.now) == 0)
		(void)rtmfp_send_write(f, "hello", 5, z.now);
	for (int i = 0; i < 10; i++)
		fz_tick(&z, 10 * MS);

	while (size - pos >= 3) {
		uint8_t kind = data[pos];
		size_t len = (size_t)data[pos + 1] << 8 | data[pos + 2];

		pos += 3;
		if (len > size - pos)
			len = size - pos;
		switch (kind % 4) {
		case 0:
			fz_feed_sealed(&z, data + pos, len, false);
			break;
		case 1:
			fz_feed_sealed(&z, data + pos, len, true);
			break;
		case 2: {
			struct sockaddr_storage from = fz_addr(kind & 0x80 ? 5 : 0);

			rtmfp_feed(z.r[1], 0, &from, data + pos, len, z.now);
			fz_deliver(&z);
			break;
		}
		default:
			fz_tick(&z, (uint64_t)(len % 3000) * 10 * MS);
			break;
		}
		pos += len;
	}
	fz_tick(&z, 100 * MS);
	for (int i = 0; i < 2; i++) {
		rtmfp_free(z.r[i]);
		rtmfp_crypto_free(z.c[i]);
	}
	free(z.q);
	return 0;
}
