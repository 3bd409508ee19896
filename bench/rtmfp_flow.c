/*
 * rtmfp_flow.c - throughput of a send flow feeding a receive flow in one
 * process: no network, no crypto, no session; what the flow bookkeeping
 * (fragmenting, acks, reassembly, copies) costs per byte.  Fragments are
 * 1,184 bytes (a 1,280-byte path), every 2nd fragment is acked.
 *
 *   build/bench/rtmfp_flow [TOTAL_MIB]     (default 1024)
 *
 * Prints one line per case: message size, loss, MB/s, fragments/s.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buddyfs/rtmfp_recvflow.h"
#include "buddyfs/rtmfp_sendflow.h"

#define FRAG_BYTES 1184

static size_t delivered;

static void on_msg(void *ctx, struct rtmfp_recvflow *f, const uint8_t *d,
		   size_t len)
{
	(void)ctx;
	(void)f;
	(void)d;
	delivered += len;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void ack(struct rtmfp_sendflow *sf, struct rtmfp_recvflow *rf,
		uint64_t now)
{
	struct rtmfp_wire_seq_range rg[64];
	struct rtmfp_recvflow_ack ak;
	struct rtmfp_sendflow_ack_result r;
	size_t i;

	if (rtmfp_recvflow_ack(rf, 1000, rg, 64, &ak))
		return;
	(void)rtmfp_sendflow_ack_begin(sf, now, ak.buffer_blocks,
				       ak.cumulative_ack, &r);
	for (i = 0; i < ak.nranges; i++)
		(void)rtmfp_sendflow_ack_range(sf, now, rg[i].first,
					       rg[i].last, &r);
	rtmfp_sendflow_ack_end(sf, now, &r);
}

static int run(size_t msg, unsigned int loss, size_t total)
{
	struct rtmfp_sendflow_config sc = { .flow_id = 1,
					    .send_buffer_bytes = 8u << 20 };
	struct rtmfp_recvflow_config rc = { .flow_id = 1, .on_message = on_msg };
	struct rtmfp_sendflow *sf = NULL;
	struct rtmfp_recvflow *rf = NULL;
	uint8_t *buf = calloc(1, msg);
	struct timespec a, b;
	uint64_t now = 0, rng = 88172645463325252ull;
	size_t sent = 0;
	unsigned int pk = 0;
	double secs;
	int err = 1;

	delivered = 0;
	if (!buf || rtmfp_sendflow_new(&sf, &sc) || rtmfp_recvflow_new(&rf, &rc))
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &a);
	while (delivered < total) {
		struct rtmfp_sendflow_frag fr;

		while (sent < total &&
		       rtmfp_sendflow_write(sf, buf, msg, 0, NULL) == 0)
			sent += msg;
		if (rtmfp_sendflow_next(sf, now, FRAG_BYTES, &fr) == 1) {
			rtmfp_sendflow_commit(sf, &fr, now, fr.len + 16);
			if (xorshift(&rng) % 100 >= loss)
				(void)rtmfp_recvflow_data(rf, fr.seq,
					fr.fsn_offset, fr.fra, fr.abandon,
					fr.final, fr.data, fr.len);
			pk++;
		} else if (rtmfp_sendflow_bytes_in_flight(sf)) {
			rtmfp_sendflow_on_timeout(sf); /* stuck: the RTO */
		}
		if (pk >= 2 || rtmfp_recvflow_ack_now(rf)) {
			ack(sf, rf, now);
			pk = 0;
		}
		now += 1000;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	printf("message %8zu B, loss %u%%: %6.0f MB/s, %.2f M fragments/s, "
	       "%llu retransmissions\n", msg, loss, (double)total / secs / 1e6,
	       (double)total / FRAG_BYTES / secs / 1e6,
	       (unsigned long long)rtmfp_sendflow_retransmissions(sf));
	err = 0;
out:
	rtmfp_sendflow_free(sf);
	rtmfp_recvflow_free(rf);
	free(buf);
	return err;
}

int main(int argc, char **argv)
{
	size_t total = (argc > 1 ? strtoul(argv[1], NULL, 10) : 1024) << 20;
	int err = 0;

	err |= run(FRAG_BYTES, 0, total);
	err |= run(64 << 10, 0, total);
	err |= run(1 << 20, 0, total);
	err |= run(64 << 10, 1, total);
	return err;
}
