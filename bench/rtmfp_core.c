/*
 * rtmfp_core.c - CPU cost of the RTMFP core alone: two instances joined in
 * memory (no sockets, no latency), one or more flows of 1 MiB messages.
 * What it shows: how many bytes per second the instance, session, flows,
 * wire codec and crypto profile can move on one core, the ceiling for
 * rtmfp_posix and the loopback goodput benchmark.
 *
 *   build/bench/rtmfp_core [MIB [FLOWS [plain|sodium]]]   (default 256 1 sodium)
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "buddyfs/rtmfp.h"
#include "buddyfs/rtmfp_crypto.h"
#include "buddyfs/rtmfp_crypto_plain.h"
#include "buddyfs/rtmfp_crypto_sodium.h"

#define QCAP 65536
#define DG_BYTES 1280

struct bdg {
	int to;
	uint16_t len;
	uint8_t b[DG_BYTES];
};

static struct bdg *q;
static size_t qhead, qtail;
static struct rtmfp *inst[2];
static uint64_t fake_now = 1;
static uint64_t received_bytes, messages;
static uint64_t dgrams[2], dgram_bytes[2]; /* sent by instance 0 and 1 */

struct bnode {
	int idx;
};

static struct bnode bn[2] = { { 0 }, { 1 } };

static struct sockaddr_storage baddr(int i)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *a = (void *)&ss;

	memset(&ss, 0, sizeof(ss));
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)(3001 + i));
	a->sin_addr.s_addr = htonl(0x7f000001);
	return ss;
}

static void bsend(void *ctx, int iface, const struct sockaddr_storage *to,
		  const uint8_t *bytes, size_t len)
{
	struct bnode *n = ctx;
	struct bdg *d;

	(void)iface;
	(void)to;
	if (qtail - qhead == QCAP || len > DG_BYTES)
		return;
	dgrams[n->idx]++;
	dgram_bytes[n->idx] += len;
	d = &q[qtail++ % QCAP];
	d->to = 1 - n->idx;
	d->len = (uint16_t)len;
	memcpy(d->b, bytes, len);
}

static void brecv_flow(void *ctx, struct rtmfp_recv *f, const uint8_t *m, size_t l,
		       struct rtmfp_send *a)
{
	(void)ctx;
	(void)m;
	(void)l;
	(void)a;
	rtmfp_recv_accept(f);
}

static void bmessage(void *ctx, struct rtmfp_recv *f, const uint8_t *m, size_t len)
{
	(void)ctx;
	(void)f;
	(void)m;
	received_bytes += len;
	messages++;
}

static const struct rtmfp_callbacks bcb = {
	.send = bsend,
	.recv_flow = brecv_flow,
	.message = bmessage,
};

static double wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? (size_t)atoi(argv[1]) : 256;
	int flows = argc > 2 ? atoi(argv[2]) : 1;
	const char *prof = argc > 3 ? argv[3] : "sodium";
	struct rtmfp_crypto *c[2];
	struct rtmfp_send *f[64];
	size_t written[64] = { 0 };
	uint8_t *msg = malloc(1 << 20);
	size_t per_flow;
	double t0, t1;

	if (sodium_init() < 0 || !msg || flows < 1 || flows > 64 || mib == 0)
		return 1;
	q = malloc(QCAP * sizeof(*q));
	if (!q)
		return 1;
	memset(msg, 0xa5, 1 << 20);
	for (int i = 0; i < 2; i++) {
		int rc;

		if (strcmp(prof, "plain") == 0) {
			rc = rtmfp_crypto_plain_new(&c[i], i ? "bob" : "alice", i ? 3 : 5);
		} else {
			uint8_t pk[32], sk[64];

			crypto_sign_keypair(pk, sk);
			rc = rtmfp_crypto_sodium_new(&c[i], sk, NULL, 0, 0);
			sodium_memzero(sk, sizeof(sk));
		}
		if (rc || rtmfp_new(&inst[i], c[i], &bcb, &bn[i], NULL, fake_now) ||
		    rtmfp_add_interface(inst[i], 0))
			return 1;
	}
	{
		const uint8_t *epd;
		size_t epd_len;
		struct sockaddr_storage to = baddr(1);

		rtmfp_crypto_local_epd(c[1], &epd, &epd_len);
		for (int k = 0; k < flows; k++)
			if (rtmfp_open_flow(inst[0], &f[k], epd, epd_len, (const uint8_t *)"b", 1,
					    &to, 1, fake_now))
				return 1;
	}
	per_flow = mib / (size_t)flows;
	if (per_flow == 0)
		per_flow = 1;
	t0 = wall();
	while (received_bytes < (uint64_t)per_flow * (size_t)flows << 20) {
		for (int k = 0; k < flows; k++)
			while (written[k] < per_flow &&
			       rtmfp_send_write(f[k], msg, 1 << 20, fake_now) == 0)
				written[k]++;
		if (qhead == qtail) {
			/* nothing in flight: let timers run (delayed acks) */
			uint64_t d0 = rtmfp_next_deadline(inst[0]), d1 = rtmfp_next_deadline(inst[1]);
			uint64_t d = d0 < d1 ? d0 : d1;

			if (d == RTMFP_NEVER)
				break;
			if (d > fake_now)
				fake_now = d;
			rtmfp_on_timer(inst[0], fake_now);
			rtmfp_on_timer(inst[1], fake_now);
			continue;
		}
		/* one microsecond of fake time per datagram: a fast, short path */
		while (qhead != qtail) {
			struct bdg *d = &q[qhead++ % QCAP];
			struct sockaddr_storage from = baddr(1 - d->to);

			fake_now += 1000;
			rtmfp_feed_inplace(inst[d->to], 0, &from, d->b, d->len, fake_now);
		}
		for (int i = 0; i < 2; i++)
			if (rtmfp_next_deadline(inst[i]) <= fake_now)
				rtmfp_on_timer(inst[i], fake_now);
	}
	t1 = wall();
	printf("rtmfp_core: %s, %d flow(s), %zu MiB in %.3f s: %.1f MB/s of messages on one core\n",
	       prof, flows, (size_t)(received_bytes >> 20), t1 - t0,
	       (double)received_bytes / (t1 - t0) / 1e6);
	printf("rtmfp_core: sender %llu datagrams (%.0f bytes each), receiver %llu datagrams (%.0f bytes each)\n",
	       (unsigned long long)dgrams[0], dgrams[0] ? (double)dgram_bytes[0] / (double)dgrams[0] : 0.0,
	       (unsigned long long)dgrams[1], dgrams[1] ? (double)dgram_bytes[1] / (double)dgrams[1] : 0.0);
	for (int i = 0; i < 2; i++) {
		rtmfp_free(inst[i]);
		rtmfp_crypto_free(c[i]);
	}
	free(q);
	free(msg);
	return received_bytes ? 0 : 1;
}
