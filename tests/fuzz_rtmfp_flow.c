/*
 * fuzz_rtmfp_flow.c - the send and receive flows take whatever sequence
 * numbers, offsets, flags, acks and ranges a far peer sends (decoded by
 * rtmfp_wire, so any integers) without crashing, leaking or breaking their
 * invariants: the cumulative ack never goes back, ack ranges stay valid for
 * rtmfp_wire_ack_ranges_build(), a timeout empties the bytes in flight.
 * The input is a list of operations.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buddyfs/buf.h"
#include "buddyfs/rtmfp_recvflow.h"
#include "buddyfs/rtmfp_sendflow.h"
#include "buddyfs/rtmfp_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_msg(void *ctx, struct rtmfp_recvflow *f, const uint8_t *d,
		   size_t len)
{
	size_t *total = ctx;

	(void)f;
	if (len)
		*total += d[0] + d[len - 1];
}

static uint64_t get_vlu(struct buf_reader *r)
{
	uint64_t v = 0;

	(void)rtmfp_wire_get_vlu(r, &v);
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t payload[4096];
	static struct rtmfp_wire_seq_range ranges[64];
	struct rtmfp_sendflow_config sc = { 0 };
	struct rtmfp_recvflow_config rc = { 0 };
	struct rtmfp_sendflow *sf = NULL;
	struct rtmfp_recvflow *rf = NULL;
	struct buf_reader r;
	uint64_t now = 0, cum = 0;
	size_t total = 0;
	uint8_t op;

	memset(payload, 0xa5, sizeof(payload));
	sc.flow_id = 3;
	sc.send_buffer_bytes = 65536;
	sc.max_messages = 64;
	rc.flow_id = 3;
	rc.buffer_bytes = 8192;
	rc.max_message_bytes = 20000;
	rc.max_reorder_span = 4096;
	rc.on_message = on_msg;
	rc.ctx = &total;
	if (rtmfp_sendflow_new(&sf, &sc) || rtmfp_recvflow_new(&rf, &rc))
		goto out;
	buf_reader_init(&r, data, size);
	while (buf_get_u8(&r, &op)) {
		now += 1000000;
		switch (op % 12) {
		case 0: { /* a data chunk for the receiver */
			uint8_t fl = 0;
			uint64_t seq, off;
			uint16_t len = 0;

			seq = get_vlu(&r);
			off = get_vlu(&r);
			(void)buf_get_u8(&r, &fl);
			(void)buf_get_u16be(&r, &len);
			(void)rtmfp_recvflow_data(rf, seq, off,
				fl & RTMFP_WIRE_UD_FLAG_FRA_MASK,
				fl & RTMFP_WIRE_UD_FLAG_ABN,
				fl & RTMFP_WIRE_UD_FLAG_FIN, payload,
				len % sizeof(payload));
			break;
		}
		case 1: { /* an ack from the receiver: check it */
			struct rtmfp_recvflow_ack ak;
			uint8_t budget = 0, pk[2048];
			struct buf_writer w;
			size_t written, i;

			(void)buf_get_u8(&r, &budget);
			if (rtmfp_recvflow_ack(rf, budget, ranges, 64, &ak))
				break;
			if (ak.cumulative_ack < cum)
				abort();
			cum = ak.cumulative_ack;
			for (i = 0; i < ak.nranges; i++) {
				if (ranges[i].first > ranges[i].last ||
				    ranges[i].first < (i ? ranges[i - 1].last :
							   cum) + 2)
					abort();
			}
			buf_writer_init(&w, pk, sizeof(pk));
			if (rtmfp_wire_ack_ranges_build(&w, 3, ak.buffer_blocks,
					ak.cumulative_ack, ranges, ak.nranges,
					&written) != 0)
				abort();
			break;
		}
		case 2:
			rtmfp_recvflow_on_probe(rf);
			break;
		case 3:
			rtmfp_recvflow_set_paused(rf, op & 0x10);
			break;
		case 4: { /* the user writes */
			uint16_t len = 0;

			(void)buf_get_u16be(&r, &len);
			(void)rtmfp_sendflow_write(sf, payload,
				len % sizeof(payload), (op & 0x10) ? now + 5000000 : 0,
				NULL);
			break;
		}
		case 5: { /* the session sends */
			struct rtmfp_sendflow_frag fr;
			uint16_t room = 0;

			(void)buf_get_u16be(&r, &room);
			if (rtmfp_sendflow_next(sf, now, room % 1500, &fr) == 1) {
				if (fr.len > room % 1500 ||
				    fr.fsn_offset > fr.seq)
					abort();
				rtmfp_sendflow_commit(sf, &fr, now, fr.len + 8);
			}
			break;
		}
		case 6: { /* an ack from the far side, any integers */
			struct rtmfp_sendflow_ack_result res;
			uint8_t n = 0;

			(void)rtmfp_sendflow_ack_begin(sf, now, get_vlu(&r),
						       get_vlu(&r), &res);
			(void)buf_get_u8(&r, &n);
			while (n-- % 8) {
				uint64_t a = get_vlu(&r), b = get_vlu(&r);

				(void)rtmfp_sendflow_ack_range(sf, now, a, b,
							       &res);
			}
			rtmfp_sendflow_ack_end(sf, now, &res);
			break;
		}
		case 7:
			(void)rtmfp_sendflow_on_timeout(sf);
			if (rtmfp_sendflow_bytes_in_flight(sf))
				abort();
			break;
		case 8:
			(void)rtmfp_sendflow_probe_due(sf, now, 1000000);
			(void)rtmfp_sendflow_next_deadline(sf);
			(void)rtmfp_sendflow_take_writable(sf);
			break;
		case 9:
			(void)rtmfp_sendflow_abandon(sf, get_vlu(&r));
			break;
		case 10:
			if (op & 0x80)
				rtmfp_sendflow_close(sf);
			else if (op & 0x40)
				rtmfp_sendflow_on_exception(sf, op);
			break;
		default:
			if (op == 0xff)
				rtmfp_recvflow_reject(rf, 9);
			break;
		}
	}
out:
	rtmfp_sendflow_free(sf);
	rtmfp_recvflow_free(rf);
	return 0;
}
