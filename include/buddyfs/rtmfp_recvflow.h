/*
 * rtmfp_recvflow.h - the receiving side of one RTMFP flow (RFC 7016 §3.6.3).
 *
 * Owns: the set of sequence numbers received (cumulative ack + ranges),
 * duplicate suppression, a bounded reorder buffer, reassembly of fragments
 * into messages and their in-order delivery (§3.6.3.2-3), abandoned
 * sequence numbers and the forward sequence number, receive buffer
 * accounting and the advertised bufferBlocksAvailable (flow control), the
 * content of Data Ack Ranges (§2.3.14, §3.6.3.4) sized to a byte budget,
 * the per-flow part of the immediate-ack rules, the final sequence number
 * and completion, and rejection with an exception code.
 *
 * Leaves to others:
 * - rtmfp_session: creating the flow when the first User Data for an
 *   unknown flow id arrives (it decodes the options: metadata, return flow
 *   association, and passes them in the config), the delayed-ack timer
 *   (200 ms), the "ack after every 2nd packet carrying user data" rule
 *   (a packet rule, not a flow rule), putting acks and Flow Exception
 *   Reports into packets, the linger after completion or rejection
 *   (RF_COMPLETE_LINGER, 120 s; the flow keeps answering with acks),
 *   routing Buffer Probes here.
 * - rtmfp_wire: every byte.  Ranges here are absolute and inclusive; the
 *   session converts them (see rtmfp_recvflow_ack()).
 *
 * Immediate-ack rules (§3.6.3.4, acknowledgement timing, as rtmfp-cpp
 * applies them):
 * the flow asks for an immediate ack (rtmfp_recvflow_ack_now()) when a
 * chunk is a duplicate, carries abn, carries fin for the first time, arrives
 * while the received set has a hole or changes the number of ranges, when
 * the last advertised window was under 2 blocks (and data or delivery
 * moved), on a Buffer Probe, on completion, and when rejected.  Otherwise
 * it only asks for an ack (rtmfp_recvflow_ack_wanted()), which the session
 * sends at the 2nd data packet or when its delayed-ack timer fires.
 *
 * Memory: per flow, the reorder ring (16 bytes per slot, grown by doubling
 * up to max_reorder_span slots), a sorted array of the received ranges above
 * the cumulative ack (16 bytes each, at most max_reorder_span / 2), so an ack
 * costs the ranges it reports, one malloc'd copy per fragment that cannot
 * be processed at once (out of order, or while paused), and one reassembly
 * buffer for the message in progress (at most max_message_bytes).  Data
 * held out of order or paused is capped at twice buffer_bytes (beyond that
 * fragments are dropped unacked; unpaused, the fragment the cumulative ack
 * waits for is always taken, so a full buffer never deadlocks); in-order data of a single fragment message is handed to the
 * callback straight from the caller's packet, no copy.  Everything is freed
 * by rtmfp_recvflow_free().  Not thread-safe; one loop owns it.
 */
#ifndef BUDDYFS_RTMFP_RECVFLOW_H
#define BUDDYFS_RTMFP_RECVFLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buddyfs/rtmfp_wire.h" /* RTMFP_WIRE_UD_FRA_*, struct rtmfp_wire_seq_range */

#define RTMFP_RECVFLOW_DEFAULT_BUFFER_BYTES (4u << 20)  /* 4 MiB */
#define RTMFP_RECVFLOW_DEFAULT_MAX_MESSAGE_BYTES (16u << 20)
#define RTMFP_RECVFLOW_DEFAULT_REORDER_SPAN 65536u      /* sequence numbers */
#define RTMFP_RECVFLOW_BLOCK_BYTES 1024u                /* bufferBlocksAvailable unit */

struct rtmfp_recvflow;

/*
 * Called once per complete message, in sequence order, from inside
 * rtmfp_recvflow_data() or rtmfp_recvflow_set_paused().  @data is borrowed
 * for the duration of the call (it may point into the caller's packet).
 * The callback may call rtmfp_recvflow_set_paused(f, true) (no further
 * message is delivered until unpaused) or rtmfp_recvflow_reject(); it must
 * not free @f.
 */
typedef void (*rtmfp_recvflow_message_fn)(void *ctx, struct rtmfp_recvflow *f,
					  const uint8_t *data, size_t len);

struct rtmfp_recvflow_config {
	uint64_t flow_id;           /* the far side's flow id */
	const uint8_t *metadata;    /* from the User's Per-Flow Metadata option (copied) */
	size_t metadata_len;
	bool has_return_flow;       /* a Return Flow Association option was present */
	uint64_t return_flow_id;    /* ... naming our send flow */
	size_t buffer_bytes;        /* 0: RTMFP_RECVFLOW_DEFAULT_BUFFER_BYTES */
	size_t max_message_bytes;   /* 0: RTMFP_RECVFLOW_DEFAULT_MAX_MESSAGE_BYTES */
	uint64_t max_reorder_span;  /* 0: RTMFP_RECVFLOW_DEFAULT_REORDER_SPAN */
	rtmfp_recvflow_message_fn on_message; /* may be NULL (messages dropped) */
	void *ctx;
};

enum rtmfp_recvflow_state {
	RTMFP_RECVFLOW_OPEN,
	RTMFP_RECVFLOW_COMPLETE,  /* fin seen, everything up to it delivered */
	RTMFP_RECVFLOW_REJECTED,  /* rejected locally: send exception reports */
};

/* The content of one Data Ack Ranges chunk. */
struct rtmfp_recvflow_ack {
	uint64_t buffer_blocks;   /* bufferBlocksAvailable */
	uint64_t cumulative_ack;  /* cumulativeAck */
	size_t nranges;           /* ranges written, lowest first */
	bool truncated;           /* more ranges existed than fit */
};

/*
 * rtmfp_recvflow_new - a flow in state OPEN, nothing received.
 * Errors: -EINVAL (cfg NULL, metadata_len without metadata), -ENOMEM.
 */
int rtmfp_recvflow_new(struct rtmfp_recvflow **out,
		       const struct rtmfp_recvflow_config *cfg)
	__attribute__((warn_unused_result));

/* rtmfp_recvflow_free - frees everything the flow holds.  NULL is ok. */
void rtmfp_recvflow_free(struct rtmfp_recvflow *f);

/*
 * rtmfp_recvflow_data - one User Data / Next User Data chunk for this flow.
 * @seq: sequenceNumber (>= 1).  @fsn_offset: fsnOffset (<= seq); every
 * sequence number <= seq - fsn_offset that has not arrived is abandoned.
 * @fra: flags & RTMFP_WIRE_UD_FLAG_FRA_MASK (RTMFP_WIRE_UD_FRA_*).  @abandon: abn (the data, if any, is
 * ignored).  @final: fin.  @data/@len: the payload, borrowed for the call.
 * Duplicates are ignored (and ask for an immediate ack); a seq
 * max_reorder_span or more past the next one to deliver is dropped unacked,
 * as if lost.  Complete
 * messages are delivered in order through on_message before this returns.
 * Returns 0; BFS_EPROTO for seq 0, fsn_offset > seq, stray bits in fra, or a second
 * and different final sequence number (the chunk is ignored); BFS_ECLOSED
 * when the flow is REJECTED (the session answers with a Flow Exception
 * Report and an ack); BFS_ETOOBIG when a message grew past
 * max_message_bytes, or -ENOMEM while reassembling (the flow is then
 * REJECTED with code 0: it never delivers a message with a hole); -ENOMEM
 * while storing an out-of-order fragment (dropped unacked, as if lost).
 */
int rtmfp_recvflow_data(struct rtmfp_recvflow *f, uint64_t seq,
			uint64_t fsn_offset, uint8_t fra, bool abandon,
			bool final, const uint8_t *data, size_t len);

/* rtmfp_recvflow_on_probe - a Buffer Probe (0x18) arrived: ack now. */
void rtmfp_recvflow_on_probe(struct rtmfp_recvflow *f);

/*
 * rtmfp_recvflow_set_paused - hold (true) or resume (false) delivery.
 * While paused, data is still received and acked, but complete messages
 * stay buffered and count against the advertised window, so the sender
 * stops at a 0 window and probes.  Resuming delivers what is complete at
 * once (callbacks run inside this call) and asks for an ack if the window
 * reopened.
 */
void rtmfp_recvflow_set_paused(struct rtmfp_recvflow *f, bool paused);

/*
 * rtmfp_recvflow_reject - refuse the flow with @code (§3.6.3, rejecting):
 * buffers are dropped, nothing more is delivered, and the session sends a Flow
 * Exception Report with rtmfp_recvflow_exception() next to each ack.
 */
void rtmfp_recvflow_reject(struct rtmfp_recvflow *f, uint64_t code);

/* True (and @code set) when the flow is REJECTED. */
bool rtmfp_recvflow_exception(const struct rtmfp_recvflow *f, uint64_t *code);

/* Something new to acknowledge (send within the delayed-ack time). */
bool rtmfp_recvflow_ack_wanted(const struct rtmfp_recvflow *f);
/* An ack is due immediately (see the rules at the top). */
bool rtmfp_recvflow_ack_now(const struct rtmfp_recvflow *f);

/*
 * rtmfp_recvflow_ack - the Data Ack Ranges content, as much as fits in
 * @max_bytes of chunk payload (flowID, bufferBlocksAvailable, cumulativeAck
 * and (holesMinusOne, receivedMinusOne) pairs, all VLUs, RFC 7016 §2.1.2 /
 * §2.3.14), and at most @max_ranges ranges into @ranges (may be NULL when
 * @max_ranges is 0).  Ranges are written lowest first: the wire encodes
 * each relative to the previous one, so the order is fixed, and a budget
 * that is too small drops the highest ranges (the ones the sender needs
 * least: it retransmits from the cumulative ack up).  They follow the rules
 * of rtmfp_wire_ack_ranges_build(), which encodes them as they are.
 * Clears ack_wanted/ack_now and records the advertised window.
 * Returns 0, or -ENOSPC when not even the fixed part fits (nothing changes).
 */
int rtmfp_recvflow_ack(struct rtmfp_recvflow *f, size_t max_bytes,
		       struct rtmfp_wire_seq_range *ranges, size_t max_ranges,
		       struct rtmfp_recvflow_ack *out);

/* ---- read-only getters ---- */
uint64_t rtmfp_recvflow_id(const struct rtmfp_recvflow *f);
enum rtmfp_recvflow_state rtmfp_recvflow_state(const struct rtmfp_recvflow *f);
const uint8_t *rtmfp_recvflow_metadata(const struct rtmfp_recvflow *f,
				       size_t *len);
bool rtmfp_recvflow_return_flow(const struct rtmfp_recvflow *f,
				uint64_t *flow_id);
/* Every sequence number <= this one was received or abandoned. */
uint64_t rtmfp_recvflow_cumulative_ack(const struct rtmfp_recvflow *f);
/* Bytes held that count against the window (out of order + paused). */
size_t rtmfp_recvflow_bytes_buffered(const struct rtmfp_recvflow *f);
/* The window rtmfp_recvflow_ack() would advertise now, in blocks. */
uint64_t rtmfp_recvflow_buffer_blocks(const struct rtmfp_recvflow *f);
/* Messages delivered so far. */
uint64_t rtmfp_recvflow_messages_delivered(const struct rtmfp_recvflow *f);

#endif
