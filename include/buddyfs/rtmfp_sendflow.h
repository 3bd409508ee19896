/*
 * rtmfp_sendflow.h - the sending side of one RTMFP flow (RFC 7016 §3.6.2).
 *
 * Owns: the flow's message queue (copies of what the user wrote, capped),
 * cutting messages into numbered fragments sized to the byte budget the
 * session offers, the per-fragment transmission state (in flight, sent at,
 * retransmitted, negative-ack count), acknowledgement processing (cumulative
 * ack + ranges), loss by three negative acks and by the session's
 * retransmission timeout, the forward sequence number, the far side's
 * receive window (bufferBlocksAvailable) and the buffer probe schedule when
 * that window is 0, per-message deadlines and abandonment, close (the final
 * flag), the far side's flow exception report, and completion (all in
 * RFC 7016 §3.6.2; the chunk fields in §2.3.11 and §2.3.14).
 *
 * Leaves to others:
 * - rtmfp_session: the clock (every call that needs time takes @now, in
 *   nanoseconds on any monotonic clock), congestion control (§3.5.2,
 *   Appendix A: it reads rtmfp_sendflow_bytes_in_flight() and decides how
 *   many bytes to ask for), the RTO timer and its backoff (it calls
 *   rtmfp_sendflow_on_timeout() on every flow when ERTO fires), RTT
 *   measurement from timestamps (the ack result offers a per-fragment RTT
 *   sample it may use or ignore), choosing User Data (0x10) or Next User
 *   Data (0x11), packing several flows into a packet fairly, the linger after
 *   completion (F_COMPLETE_LINGER), flow id allocation.
 * - rtmfp_wire: every byte.  This module speaks plain integers: the session
 *   encodes a struct rtmfp_sendflow_frag into a User Data chunk and decodes
 *   a Data Ack Ranges chunk into the calls rtmfp_sendflow_ack_*().
 *
 * A flow never calls its session, reads a clock or touches a socket: the
 * session asks it what to send (rtmfp_sendflow_next/commit) and tells it what
 * happened (ack, timeout, exception).  Not thread-safe; one loop owns it.
 *
 * Sequence numbers start at 1 and are never reused; 0 means "none".
 *
 * Memory: one allocation per queued message (header + copy of its bytes)
 * plus one ring of fragment records (grows by doubling, at most
 * RTMFP_SENDFLOW_MAX_FRAGS records of 72 bytes).  Queued bytes are
 * capped by send_buffer_bytes (a single message larger than that is
 * accepted into an empty queue, up to max_message_bytes), queued messages
 * by max_messages.  Allocations of acked messages are kept for later
 * writes, at most send_buffer_bytes of them while the flow is open (one
 * when the queue is empty), freed when the flow completes or fails.
 * Everything is freed by rtmfp_sendflow_free().
 */
#ifndef BUDDYFS_RTMFP_SENDFLOW_H
#define BUDDYFS_RTMFP_SENDFLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buddyfs/rtmfp_wire.h" /* RTMFP_WIRE_UD_FRA_* */

#define RTMFP_SENDFLOW_MAX_METADATA_BYTES 512u
#define RTMFP_SENDFLOW_DEFAULT_BUFFER_BYTES (4u << 20)   /* 4 MiB */
#define RTMFP_SENDFLOW_DEFAULT_MAX_MESSAGES 8192u
#define RTMFP_SENDFLOW_DEFAULT_MAX_MESSAGE_BYTES (16u << 20)
#define RTMFP_SENDFLOW_MAX_FRAGS (1u << 18)
/* The window assumed before the first ack (rtmfp-cpp uses the same). */
#define RTMFP_SENDFLOW_INITIAL_RX_WINDOW_BYTES 65536u
/* §3.6.2 (negative acks and loss): this many NAKs and a fragment is lost. */
#define RTMFP_SENDFLOW_NAKS_FOR_LOSS 3u
/* Buffer probe schedule (rtmfp-cpp's persist timer): first 1 s after the
 * ack that closed the window, then x1.414 (at least ERTO), at most 60 s. */
#define RTMFP_SENDFLOW_PROBE_INITIAL_NS 1000000000ull
#define RTMFP_SENDFLOW_PROBE_MAX_NS 60000000000ull

struct rtmfp_sendflow;

struct rtmfp_sendflow_config {
	uint64_t flow_id;          /* the flow id the session allocated */
	const uint8_t *metadata;   /* user's per-flow metadata (copied) */
	size_t metadata_len;       /* <= RTMFP_SENDFLOW_MAX_METADATA_BYTES */
	bool has_return_flow;      /* send a Return Flow Association option */
	uint64_t return_flow_id;   /* the far side's flow id we answer */
	size_t send_buffer_bytes;  /* 0: RTMFP_SENDFLOW_DEFAULT_BUFFER_BYTES */
	size_t max_messages;       /* 0: RTMFP_SENDFLOW_DEFAULT_MAX_MESSAGES */
	size_t max_message_bytes;  /* 0: RTMFP_SENDFLOW_DEFAULT_MAX_MESSAGE_BYTES */
};

enum rtmfp_sendflow_state {
	RTMFP_SENDFLOW_OPEN,      /* accepts writes */
	RTMFP_SENDFLOW_CLOSING,   /* closed by the user, FIN not yet acked */
	RTMFP_SENDFLOW_COMPLETE,  /* everything (FIN included) acked; linger */
	RTMFP_SENDFLOW_EXCEPTION, /* the far side rejected the flow */
};

/*
 * A fragment to put in a User Data chunk (§2.3.11).  Filled by
 * rtmfp_sendflow_next(); the session encodes it and, if the chunk went into
 * the packet, hands it back unchanged to rtmfp_sendflow_commit().
 * The session may use Next User Data (0x11) for a fragment whose seq is
 * the previous chunk's seq + 1 in the same packet: the forward sequence
 * number it then implies (the previous chunk's) is never larger than the
 * one given here, and a smaller one is always safe (it says less).
 *
 * @data points into the flow's queue; it stays valid until the next call
 * that changes the flow (any call but the read-only getters).
 */
struct rtmfp_sendflow_frag {
	uint64_t seq;           /* sequenceNumber */
	uint64_t fsn_offset;    /* fsnOffset: seq - forward sequence number */
	uint8_t fra;            /* RTMFP_WIRE_UD_FRA_*, already in place in the
	                         * flags byte (flags |= fra) */
	bool abandon;           /* abn flag: no data, receiver skips seq */
	bool final;             /* fin flag: last sequence number of the flow */
	bool options;           /* send the startup options (metadata, return
	                         * association) in this chunk: true until the
	                         * flow's first ack arrives */
	bool retransmission;    /* seq was sent before */
	const uint8_t *data;    /* payload, NULL when len == 0 */
	size_t len;             /* payload bytes, <= max_data_bytes asked for */
};

/* Accumulates what one Data Ack Ranges chunk did (see rtmfp_sendflow_ack_*). */
struct rtmfp_sendflow_ack_result {
	size_t bytes_acked;     /* wire bytes of in-flight fragments newly acked
	                         * (as given to commit): congestion control */
	size_t frags_acked;     /* fragments newly acked (any state) */
	size_t bytes_lost;      /* wire bytes newly declared lost by 3 NAKs */
	size_t frags_lost;
	bool has_rtt;           /* a newly acked, never retransmitted fragment */
	uint64_t rtt_ns;        /* now - its send time (the newest such one) */
	bool completed;         /* the flow became COMPLETE with this ack */
	/* private */
	uint64_t priv_max_tx;   /* newest transmission order newly acked */
};

/*
 * rtmfp_sendflow_new - a flow in state OPEN with nothing queued.
 * @out: receives the flow; the caller frees it with rtmfp_sendflow_free().
 * @cfg: copied; metadata is copied.
 * Errors: -EINVAL (cfg NULL, metadata too long, metadata_len without
 * metadata), -ENOMEM.
 */
int rtmfp_sendflow_new(struct rtmfp_sendflow **out,
		       const struct rtmfp_sendflow_config *cfg)
	__attribute__((warn_unused_result));

/* rtmfp_sendflow_free - frees the flow, its queue and copies. NULL is ok. */
void rtmfp_sendflow_free(struct rtmfp_sendflow *f);

/*
 * rtmfp_sendflow_write - queue one message (its bytes are copied).
 * @deadline_ns: 0 for none; otherwise the message is abandoned if it is
 *   not completely acked when a call with now >= deadline_ns looks at it
 *   (§3.6.2, abandoning data; unsent fragments are never sent, sent ones are
 *   skipped by the receiver via the forward sequence number or abn).
 * @msg_id: optional; receives a per-flow message number (1, 2, ...) for
 *   rtmfp_sendflow_abandon().
 * Errors: BFS_ECLOSED (closed, complete or exception), -EMSGSIZE (len >
 *   max_message_bytes), -EAGAIN (the queued bytes plus len exceed
 *   send_buffer_bytes and the queue is not empty), -ENOBUFS (max_messages
 *   queued), -ENOMEM.  After -EAGAIN/-ENOBUFS the flow remembers that the
 *   writer waits: rtmfp_sendflow_take_writable() says when to retry.
 * A zero-length message is allowed and is delivered as one.
 */
int rtmfp_sendflow_write(struct rtmfp_sendflow *f, const void *data,
			 size_t len, uint64_t deadline_ns, uint64_t *msg_id)
	__attribute__((warn_unused_result));

/*
 * rtmfp_sendflow_abandon - abandon a queued message now (as if its deadline
 * passed).  -ENOENT if @msg_id is not queued (already acked or abandoned).
 */
int rtmfp_sendflow_abandon(struct rtmfp_sendflow *f, uint64_t msg_id);

/*
 * rtmfp_sendflow_close - no more writes; the last fragment carries the
 * final flag (an abandoned, empty fragment is added when the last one was
 * already sent).  A flow that never sent anything becomes COMPLETE at once.
 * Idempotent.
 */
void rtmfp_sendflow_close(struct rtmfp_sendflow *f);

/*
 * rtmfp_sendflow_on_exception - the far side sent a Flow Exception Report
 * for this flow (§2.3.16): the flow stops sending, drops its queue and
 * enters EXCEPTION with @code (rtmfp_sendflow_exception_code()).
 */
void rtmfp_sendflow_on_exception(struct rtmfp_sendflow *f, uint64_t code);

/*
 * rtmfp_sendflow_next - what the flow would send next in a chunk whose
 * payload may hold at most @max_data_bytes (the session has already taken
 * off the chunk header, flags, flow id, seq, fsn offset and, when
 * rtmfp_sendflow_wants_options() is true, the options).
 * Order: fragments to retransmit (lost, lowest seq first; abandoned ones go
 * out with abn and no data), then new data cut from the queue, then the
 * final-flag fragment.  Nothing is sent while the payload bytes in flight
 * reach the far receive window (as rtmfp-cpp does; the window may be
 * overshot by one fragment), nor in EXCEPTION or COMPLETE.
 * Messages whose deadline passed (now >= deadline) are abandoned first.
 * Returns 1 and fills @frag, 0 if nothing fits or nothing is due (a
 * retransmission larger than @max_data_bytes waits for a bigger budget;
 * a budget of 0 still sends abn/empty fragments).  Does not change what
 * will be sent: call rtmfp_sendflow_commit() once the chunk is in.
 */
int rtmfp_sendflow_next(struct rtmfp_sendflow *f, uint64_t now,
			size_t max_data_bytes, struct rtmfp_sendflow_frag *frag);

/*
 * rtmfp_sendflow_commit - @frag (from the last rtmfp_sendflow_next, no
 * other call in between) went into a packet of @wire_bytes bytes of chunk
 * (what congestion control counts).  Marks it in flight, sent at @now.
 */
void rtmfp_sendflow_commit(struct rtmfp_sendflow *f,
			   const struct rtmfp_sendflow_frag *frag,
			   uint64_t now, size_t wire_bytes);

/*
 * Acknowledgement processing (§3.6.2, processing acknowledgements),
 * streamed so the session can decode a Data Ack Ranges chunk (0x51) without an array:
 *   rtmfp_sendflow_ack_begin(f, now, bufferBlocksAvailable, cumulativeAck, &r);
 *   for each range: rtmfp_sendflow_ack_range(f, now, first, last, &r);
 *   rtmfp_sendflow_ack_end(f, now, &r);
 * Ranges are absolute and inclusive.  From the chunk: cursor = cumulativeAck;
 * for each (holesMinusOne, receivedMinusOne): first = cursor + holesMinusOne
 * + 2; last = first + receivedMinusOne; cursor = last.  A truncated chunk
 * is fine (just fewer ranges).
 * begin zeroes @r, sets the far window to blocks * 1024 bytes, acks every
 * seq <= cumulativeAck and stops the startup options.  end counts one
 * negative ack for each in-flight fragment transmitted before the newest
 * fragment this ack newly acked (for a retransmitted fragment, its first
 * transmission counts: which copy arrived is unknown, and using the last
 * one would condemn everything sent in between), declares lost those with
 * 3 (queued for retransmission, bytes out of flight), frees acked messages,
 * and detects completion.  An ack that brings no news counts no NAKs.  Acks for sequence numbers never sent are ignored.
 * Returns 0, or BFS_EPROTO when the cumulative ack or a range names a
 * sequence number not yet sent (what was valid is still applied).
 * In COMPLETE or EXCEPTION the calls do nothing and return 0.
 */
int rtmfp_sendflow_ack_begin(struct rtmfp_sendflow *f, uint64_t now,
			     uint64_t buffer_blocks, uint64_t cumulative_ack,
			     struct rtmfp_sendflow_ack_result *r);
int rtmfp_sendflow_ack_range(struct rtmfp_sendflow *f, uint64_t now,
			     uint64_t first, uint64_t last,
			     struct rtmfp_sendflow_ack_result *r);
void rtmfp_sendflow_ack_end(struct rtmfp_sendflow *f, uint64_t now,
			    struct rtmfp_sendflow_ack_result *r);

/*
 * rtmfp_sendflow_on_timeout - the session's retransmission timer fired
 * (§3.5.2, Appendix A): every fragment in flight is lost and queued for
 * retransmission.  Returns the wire bytes taken out of flight.
 */
size_t rtmfp_sendflow_on_timeout(struct rtmfp_sendflow *f);
/*
 * rtmfp_sendflow_probe_retransmit - a loss probe with no new data to carry
 * (the session's tail-loss probe): the oldest fragment in flight is taken
 * out of flight and queued to go again, as if lost, but without counting a
 * loss.  Returns its wire bytes (0 when nothing is in flight).
 */
size_t rtmfp_sendflow_probe_retransmit(struct rtmfp_sendflow *f);

/*
 * rtmfp_sendflow_probe_due - whether to send a Buffer Probe (0x18) for this
 * flow now: the last ack advertised a 0 window and data waits.  When it
 * returns true the next probe is scheduled (backoff x1.414, at least
 * @erto_ns, at most RTMFP_SENDFLOW_PROBE_MAX_NS).  An ack with a non-zero
 * window stops probing.
 */
bool rtmfp_sendflow_probe_due(struct rtmfp_sendflow *f, uint64_t now,
			      uint64_t erto_ns);

/*
 * rtmfp_sendflow_next_deadline - the earliest time (ns) at which the flow
 * wants a call (a probe or a message deadline); UINT64_MAX for none.  The
 * session arms a timer and then calls rtmfp_sendflow_probe_due() and
 * rtmfp_sendflow_next().
 */
uint64_t rtmfp_sendflow_next_deadline(const struct rtmfp_sendflow *f);

/*
 * rtmfp_sendflow_take_writable - true once when a writer that got -EAGAIN
 * or -ENOBUFS may write again (room or the flow ended); clears the flag.
 */
bool rtmfp_sendflow_take_writable(struct rtmfp_sendflow *f);

/* ---- read-only getters ---- */
uint64_t rtmfp_sendflow_id(const struct rtmfp_sendflow *f);
enum rtmfp_sendflow_state rtmfp_sendflow_state(const struct rtmfp_sendflow *f);
/* The exception code from the far side (0 unless EXCEPTION). */
uint64_t rtmfp_sendflow_exception_code(const struct rtmfp_sendflow *f);
/* True until the first ack: chunks carry the options (§3.6.2, startup). */
bool rtmfp_sendflow_wants_options(const struct rtmfp_sendflow *f);
/* The startup options' content: metadata (borrowed, lives with @f) and the
 * return flow association (returns false when there is none). */
const uint8_t *rtmfp_sendflow_metadata(const struct rtmfp_sendflow *f,
				       size_t *len);
bool rtmfp_sendflow_return_flow(const struct rtmfp_sendflow *f,
				uint64_t *flow_id);
/* Wire bytes in flight (committed, not acked, not lost): congestion control. */
size_t rtmfp_sendflow_bytes_in_flight(const struct rtmfp_sendflow *f);
/* Message bytes queued (not yet acked), what send_buffer_bytes caps. */
size_t rtmfp_sendflow_bytes_queued(const struct rtmfp_sendflow *f);
/* The far receive window in bytes (bufferBlocksAvailable * 1024). */
uint64_t rtmfp_sendflow_rx_window(const struct rtmfp_sendflow *f);
/* Whether rtmfp_sendflow_next() may return something now (ignoring the
 * byte budget): the session's "schedule this flow" test. */
bool rtmfp_sendflow_has_data(const struct rtmfp_sendflow *f);
/* Counters for tools: fragments retransmitted since the start. */
uint64_t rtmfp_sendflow_retransmissions(const struct rtmfp_sendflow *f);

#endif
