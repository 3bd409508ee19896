/*
 * rtmfp_session.h - one RTMFP session (RFC 7016 §3.5), inside the instance.
 *
 * Owns, for one session: its state machine (§3.5: S_IHELLO_SENT,
 * S_KEYING_SENT, S_OPEN, S_NEARCLOSE, S_FARCLOSE_LINGER, S_CLOSED), the
 * retransmission of IHello and IIKeying (§3.5.1.1), the timestamps and the
 * round-trip estimate with MRTO and ERTO (§3.5.2.2), congestion control
 * (§3.5.2, Appendix A) with a burst limit (§3.5.2.3), delayed and obligatory
 * acks (§3.5.3), keepalive pings, the retransmission limit and the idle
 * timeout (§3.5.4), address mobility checked by a ping before DESTADDR moves
 * (§3.5.4.2), the close handshake with its linger (§3.5.5), fair round-robin
 * scheduling of many send flows, and the assembly of packets.  Two additions
 * to the RFC's loss recovery keep small windows out of timeouts: an ack
 * that reports holes lets one more packet out, and a loss probe (two packets
 * of new data beyond the window) goes out when acks stop for about two
 * round trips, so the negative acks that find a loss come before ERTO.  A
 * third, in the congestion window, tolerates random loss (see rtmfp_cc).
 *
 * Leaves to others: the session table, cookies and the stateless startup
 * answers (rtmfp.c); message fragmentation, sequence numbers, the per-flow
 * ack and reassembly state (rtmfp_sendflow, rtmfp_recvflow, which never call
 * the session: it asks them what to send and tells them what arrived); the
 * chunk codecs (rtmfp_wire); keys (rtmfp_crypto).
 *
 * This header is internal to the rtmfp core (rtmfp.c and rtmfp_session.c):
 * applications use rtmfp.h.  Times are nanoseconds on the owner's monotonic
 * clock; RTMFP_NEVER means "not armed".
 *
 * The congestion controller and the RTT estimator are plain structs with
 * pure functions so tests can drive them without a session.
 */
#ifndef BUDDYFS_RTMFP_SESSION_H
#define BUDDYFS_RTMFP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buddyfs/rtmfp.h"
#include "buddyfs/rtmfp_crypto.h"
#include "buddyfs/rtmfp_recvflow.h"
#include "buddyfs/rtmfp_sendflow.h"
#include "buddyfs/rtmfp_wire.h"

/* ---- parameters (RFC 7016 names where it has them) ---- */
#define RTMFP_MSS_BYTES 1150                  /* sender maximum segment (data) size */
#define RTMFP_CWND_INIT_BYTES (3 * RTMFP_MSS_BYTES)      /* Appendix A */
#define RTMFP_CWND_TIMEDOUT_BYTES (2 * RTMFP_MSS_BYTES)
#define RTMFP_CWND_DECAY_MARGIN_BYTES (6 * RTMFP_MSS_BYTES)
#define RTMFP_MAX_DATA_BURST_BYTES (6 * RTMFP_MSS_BYTES) /* §3.5.2.3: 6 packets */
#define RTMFP_CC_GENTLE_CUT_BYTES 67200         /* above: loss cuts cwnd by 1/8 */
/* Random-loss tolerance (see rtmfp_cc_on_ack): a loss while the fragments'
 * round trip shows at most this much queueing delay (or a quarter of the
 * base round trip, if more) ... */
#define RTMFP_CC_QUEUE_TOLERANCE_NS (5 * RTMFP_NS_PER_MS)
/* ... and costing at most 1/RTMFP_CC_TOLERATED_LOSS_DIV of the window (or
 * one packet, if more: RTMFP_CC_TOLERATED_LOSS_MIN_BYTES is less than two
 * full ones) in its round trip is taken for random loss: no cut. */
#define RTMFP_CC_TOLERATED_LOSS_DIV 32
#define RTMFP_CC_TOLERATED_LOSS_MIN_BYTES (2 * RTMFP_MSS_BYTES - 1)
/* The window never grows past this: about what a receiver's kernel buffers
 * hold (a TCP receive buffer tops out near 6 MiB too), so a session of many
 * flows on a fast, short path does not overrun the far socket and lose a
 * burst of packets; 6 MiB still fills 500 Mbit/s at a 100 ms round trip. */
#define RTMFP_CWND_MAX_BYTES (6u << 20)
#define RTMFP_BURST_RTT_THRESH_NS (4500 * 1000ull)   /* no pacing below 4.5 ms */
#define RTMFP_INITIAL_MRTO_NS (250 * RTMFP_NS_PER_MS)
#define RTMFP_INITIAL_ERTO_NS (3 * RTMFP_NS_PER_SEC)
#define RTMFP_MINIMUM_ERTO_NS (250 * RTMFP_NS_PER_MS)
#define RTMFP_MAX_ERTO_NS (10 * RTMFP_NS_PER_SEC)
#define RTMFP_DELACK_NS (200 * RTMFP_NS_PER_MS)      /* §3.5.3: at most 200 ms */
#define RTMFP_OBLIGATORY_ACK_AFTER 2                 /* packets with user data */
#define RTMFP_NAKS_FOR_LOSS 3
#define RTMFP_IHELLO_INITIAL_RTX_NS (1 * RTMFP_NS_PER_SEC)
#define RTMFP_IHELLO_BACKOFF_NS (1500 * RTMFP_NS_PER_MS)
#define RTMFP_NEARCLOSE_RTX_NS (5 * RTMFP_NS_PER_SEC)  /* §3.5.5.1 */
#define RTMFP_NEARCLOSE_PERIOD_NS (90 * RTMFP_NS_PER_SEC)
#define RTMFP_FARCLOSE_LINGER_NS (19 * RTMFP_NS_PER_SEC) /* §3.5.5.2 */
#define RTMFP_TS_TICK_NS (4 * RTMFP_NS_PER_MS)       /* §2.2.4: 4 ms ticks */
#define RTMFP_MAX_TS_ECHO_AGE_NS (128 * RTMFP_NS_PER_SEC)
#define RTMFP_MAX_EARLY_PACKETS 16                   /* S_KEYING_SENT reorder */
#define RTMFP_MOBILITY_LIFETIME_NS (120 * RTMFP_NS_PER_SEC)
#define RTMFP_RF_LINGER_NS (120 * RTMFP_NS_PER_SEC) /* done recv flows keep acking */
#define RTMFP_MAX_COOKIE_AGE_NS (95 * RTMFP_NS_PER_SEC)
#define RTMFP_PROBE_MIN_NS (1 * RTMFP_NS_PER_MS)  /* loss probe: 2 SRTT, at least */
#define RTMFP_MIN_RTT_WINDOW_NS (10 * RTMFP_NS_PER_SEC) /* fine RTT minimum kept this long */
#define RTMFP_MAX_PROBES 6                          /* per timeout period */
#define RTMFP_GLARE_GUARD_NS (10 * RTMFP_NS_PER_SEC) /* late IIKeyings of a won glare */
#define RTMFP_TAG_BYTES 16                           /* our IHello tags */
#define RTMFP_SECRET_BYTES 32
#define RTMFP_COOKIE_BYTES 36                        /* time(4) | mac(16) | mac(16) */
#define RTMFP_MAX_ACK_RANGES 64
#define RTMFP_CTL_BYTES 2048                         /* queued control chunks, at most */
#define RTMFP_CTL_MIN_BYTES 128                      /* the queue's first allocation */
#define RTMFP_FULL_SCAN_NS (1 * RTMFP_NS_PER_SEC)    /* deadline heap safety net */
#define RTMFP_BUF_BYTES 2048                         /* one datagram, with room */
#define RTMFP_MOBILITY_MARK 'M'

/* ---- round-trip time (§3.5.2.2) ---- */
struct rtmfp_rtt {
	uint64_t srtt_ns;   /* 0 until the first measurement */
	uint64_t rttvar_ns;
	uint64_t mrto_ns;   /* measured: srtt + 4 rttvar + delayed-ack time */
	uint64_t erto_ns;   /* effective: max(mrto, MINIMUM_ERTO), backed off */
	bool measured;
};

void rtmfp_rtt_init(struct rtmfp_rtt *t);
/* rtmfp_rtt_sample - one measurement from a timestamp echo. */
void rtmfp_rtt_sample(struct rtmfp_rtt *t, uint64_t rtt_ns);
/* rtmfp_rtt_backoff - ERTO expired: ERTO *= ~sqrt(2), at most MAX_ERTO. */
void rtmfp_rtt_backoff(struct rtmfp_rtt *t);

/*
 * ---- congestion window (§3.5.2, Appendix A) ----
 *
 * Appendix A's window (slow start, additive increase, a cut at most once a
 * round trip, the collapse on a timeout) with rtmfp-cpp's gentle cut (an
 * eighth above RTMFP_CC_GENTLE_CUT_BYTES in flight) and one addition, a
 * tolerance for random loss.  A loss that finds no queue (the fragments'
 * smoothed round trip is within RTMFP_CC_QUEUE_TOLERANCE_NS, or a quarter
 * of the base, of the smallest lately) opens a "tolerant" round: the window
 * is not cut, and goes on growing by Appendix A's rules while the round's
 * data drains.  If the round loses more than 1/32 of the window (or more
 * than one packet of a small window), the loss was no accident: Appendix
 * A's cut is made then.  A loss with a queue behind it is congestion and
 * is cut at once, as in Appendix A.  So random loss of a few percent (a radio link, --drop 1)
 * no longer keeps the window at a few packets, while a full bottleneck
 * (whose queue delays the fragments, or which drops more than a few
 * percent) gets the RFC's response.
 */
struct rtmfp_cc {
	size_t cwnd;
	size_t ssthresh;                 /* SIZE_MAX: no loss yet (slow start) */
	size_t acked_accumulator;        /* congestion avoidance */
	size_t recovery_remaining;       /* bytes to drain before leaving recovery */
	size_t recovery_loss_allowance;
	bool recovery_tolerant;          /* this round's loss looked random: no cut yet */
	size_t recovery_pre_cut;         /* the window in use when that round began */
	size_t recovery_lost;            /* bytes lost so far in that round */
	uint64_t rtt_ns;                 /* smoothed fragment round trip; 0: none yet */
	uint64_t base_rtt_ns;            /* the smallest lately; 0: none yet */
	uint64_t tolerated;              /* loss rounds taken for random loss */
	uint64_t cuts;                   /* multiplicative decreases made */
};

void rtmfp_cc_init(struct rtmfp_cc *c);
/*
 * rtmfp_cc_on_rtt - a fragment's round trip, @rtt_ns (send to ack, first
 * transmissions only), and the smallest of them lately, @base_rtt_ns.
 */
void rtmfp_cc_on_rtt(struct rtmfp_cc *c, uint64_t rtt_ns, uint64_t base_rtt_ns);
/*
 * rtmfp_cc_on_ack - after a packet with acks: @acked and @lost bytes left
 * the outstanding set; @pre_outstanding is what was outstanding before the
 * packet; @any_loss: some fragment counted lost (3 NAKs); @any_naks: some
 * fragment was skipped by an ack (a hole).
 */
void rtmfp_cc_on_ack(struct rtmfp_cc *c, size_t acked, size_t lost, bool any_loss,
		     bool any_naks, size_t pre_outstanding, size_t outstanding_after);
/* rtmfp_cc_on_timeout - ERTO fired; @idle: nothing was outstanding. */
void rtmfp_cc_on_timeout(struct rtmfp_cc *c, bool idle);

/* ---- the session ---- */

enum rtmfp_session_state {
	RTMFP_S_IHELLO_SENT = 1,
	RTMFP_S_KEYING_SENT,
	RTMFP_S_OPEN,
	RTMFP_S_NEARCLOSE,        /* we asked to close; Close Request repeats */
	RTMFP_S_FARCLOSE_LINGER,  /* far end closed; we answer Close Acks */
	RTMFP_S_CLOSED,
};


/* A send flow handle: the sendflow plus its place in a session. */
struct rtmfp_send {
	struct rtmfp *r;
	struct rtmfp_session *s;        /* bound session (open), or the opening one */
	struct rtmfp_sendflow *flow;
	struct rtmfp_send *next, *prev; /* in s->sends or s->waiting */
	struct rtmfp_send *rnext;       /* in s->ready (round robin) */
	struct rtmfp_send *dnext;       /* in r->dead_sends */
	void *ctx;
	bool bound;                     /* in s->sends (session open) */
	bool in_ready;
	bool closed;                    /* send_closed reported (or free) */
	bool dead;
};

/* A receiving flow handle. */
struct rtmfp_recv {
	struct rtmfp *r;
	struct rtmfp_session *s;
	struct rtmfp_recvflow *flow;
	struct rtmfp_recv *next, *prev; /* in s->recvs */
	struct rtmfp_recv *anext;       /* in s->acks */
	struct rtmfp_recv *dnext;       /* in r->dead_recvs */
	void *ctx;
	uint64_t linger_until;          /* RTMFP_NEVER while in use */
	bool accepted;
	bool in_acks;
	bool app_gone;                  /* closed by the app or reported closed */
	bool dead;
};

/* One candidate address of an opening session (IHello retransmission). */
struct rtmfp_candidate {
	struct sockaddr_storage addr;
	uint64_t next_tx;
	uint64_t interval;
};

struct rtmfp_session {
	struct rtmfp *r;
	struct rtmfp_session *next, *prev; /* r->sessions */
	struct rtmfp_session *hnext;       /* hash chain by rx_id */
	struct rtmfp_session *anext;       /* hash chain by dest (r->abuckets) */
	bool in_addr;                      /* on that chain */
	size_t heap_i;                     /* place in r->heap, plus 1; 0: not there */
	uint64_t heap_dl;                  /* the deadline it is kept under */
	bool touched;                      /* on r->touched: re-key at leave() */
	struct rtmfp_session *tnext;       /* r->touched */
	struct rtmfp_session *dnext;       /* r->dead_sessions */
	struct rtmfp_session *pnext;       /* r->pump: has something to send */
	enum rtmfp_session_state state;
	bool initiator;
	bool reported_open, reported_closed, dead;
	uint32_t rx_id, tx_id;
	int iface;
	struct sockaddr_storage dest;
	struct rtmfp_crypto_key *key;
	struct rtmfp_crypto_cert *cert;    /* far certificate, once known */

	/* startup (initiator) */
	uint8_t *epd;
	size_t epd_len;
	uint8_t tag[RTMFP_TAG_BYTES];
	struct rtmfp_candidate *cand;      /* RTMFP_MAX_REDIRECT_ADDRS of them, made by the
	                                    * first candidate (initiators only) */
	size_t n_cand;
	uint8_t *cookie;
	size_t cookie_len;
	bool cookie_changed;
	uint8_t skic[RTMFP_CRYPTO_MAX_SKIC_BYTES];
	size_t skic_len;
	uint8_t *keying;                   /* IIKeying (initiator) / RIKeying (responder) chunk */
	size_t keying_len;
	uint64_t keying_next, keying_interval;
	uint64_t open_deadline;
	uint64_t opened_at;
	uint8_t *early[RTMFP_MAX_EARLY_PACKETS];
	size_t early_len[RTMFP_MAX_EARLY_PACKETS];
	size_t n_early;

	/* timestamps (§3.5.2.2) */
	bool have_ts_rx, have_ts_echo_rx, have_ts_tx, have_ts_echo_tx;
	uint16_t ts_rx, ts_echo_rx, ts_tx, ts_echo_tx;
	uint64_t ts_rx_time;

	struct rtmfp_rtt rtt;
	struct rtmfp_cc cc;
	size_t outstanding;                /* wire bytes in flight, all flows */
	size_t limited_transmit;           /* outstanding allowed after an ack with holes */
	size_t probe_allow;                /* outstanding allowed for a loss probe */
	uint64_t probe_deadline;           /* next loss probe; NEVER if none */
	unsigned probe_count;              /* probes since the last progress */
	uint64_t probes;                   /* loss probes sent, ever */
	uint64_t min_rtt_ns, min_rtt_at;   /* smallest fragment RTT lately (ns
	                                    * precision, unlike 4 ms timestamps) */
	uint64_t delacks;                  /* delayed-ack timer expiries, ever */
	uint64_t erto_deadline;            /* RTMFP_NEVER: not armed */
	uint64_t rtx_epoch;                /* first unanswered send; NEVER if none */
	long burst_budget;
	uint64_t burst_deadline;

	/* acks (§3.5.3) */
	unsigned rx_data_packets;
	bool ack_now;
	uint64_t delack_deadline;
	struct rtmfp_recv *acks;           /* flows with acks to send */

	/* keepalive, idle (§3.5.4) */
	uint64_t last_tx;
	bool keepalive_outstanding;
	uint64_t idle_since;
	uint64_t mob_tx_sec, mob_rx_sec;

	/* close (§3.5.5) */
	uint64_t close_next_tx, close_deadline;

	/* flows */
	struct rtmfp_send *sends;          /* bound, open session */
	struct rtmfp_send *waiting;        /* waiting for this session to open */
	struct rtmfp_send *ready_head, *ready_tail;
	struct rtmfp_recv *recvs;
	struct rtmfp_send *last_send;      /* lookup caches: chunks come in runs */
	struct rtmfp_recv *last_recv;
	size_t n_sends, n_recvs;

	/* control chunks waiting for the next packet */
	uint8_t *ctl;                      /* grown by doubling up to RTMFP_CTL_BYTES */
	size_t ctl_len, ctl_cap;
	bool want_pump;                    /* on r->pump */
	bool pumping;                      /* inside rtmfp_session_pump */

	struct rtmfp_session_stats st;
	void *ctx;                         /* the owner's */
};

struct rtmfp {
	struct rtmfp_crypto *crypto;
	struct rtmfp_callbacks cb;
	void *ctx;
	struct rtmfp_params p;
	uint64_t epoch, now;
	int ifaces[RTMFP_MAX_INTERFACES];
	size_t n_ifaces;
	uint8_t secret[RTMFP_SECRET_BYTES];
	struct rtmfp_session **buckets;
	struct rtmfp_session **abuckets;   /* by dest, n_buckets of them too */
	size_t n_buckets, n_sessions;
	size_t n_initiators;               /* initiator sessions not buried */
	/* sessions by deadline (a binary min-heap): rtmfp_next_deadline() and
	 * rtmfp_on_timer() without walking every session; sessions an entry
	 * point touched are re-keyed when it leaves; a full walk every
	 * RTMFP_FULL_SCAN_NS catches a change that no touch reported */
	struct rtmfp_session **heap;
	size_t heap_n, heap_cap;
	struct rtmfp_session *touched;
	uint64_t full_scan_at;
	uint64_t addr_seed;                /* of the dest hash */
	struct rtmfp_session *sessions;
	struct rtmfp_session *dead_sessions;
	struct rtmfp_session *pump;        /* sessions to pump at the end of the call */
	struct rtmfp_send *dead_sends;
	struct rtmfp_recv *dead_recvs;
	uint64_t next_flow_id;
	int depth;
	bool shutdown, sent_any, freeing;
	size_t max_plain;                  /* largest plaintext packet */
	uint8_t tx[RTMFP_BUF_BYTES];
	uint8_t rx[RTMFP_BUF_BYTES];
};

/* ---- between rtmfp.c and rtmfp_session.c ---- */

/* rtmfp_ts_now - our 16-bit timestamp at @now. */
uint16_t rtmfp_ts_now(const struct rtmfp *r, uint64_t now);
/*
 * rtmfp_tx_packet - seal the plaintext packet at
 * r->tx + 4 + front (@clear_len bytes) with @key (NULL: the default key),
 * put @ssid in front and hand it to the send callback.
 */
void rtmfp_tx_packet(struct rtmfp *r, struct rtmfp_crypto_key *key, uint32_t ssid, int iface,
		     const struct sockaddr_storage *to, size_t clear_len);
/* rtmfp_tx_buf - where the plaintext of the next packet goes, and its limit. */
uint8_t *rtmfp_tx_buf(struct rtmfp *r, size_t *limit);
/* rtmfp_tx_startup - one startup-mode packet with one chunk (@chunk, whole). */
void rtmfp_tx_startup(struct rtmfp *r, struct rtmfp_crypto_key *key, uint32_t ssid, int iface,
		      const struct sockaddr_storage *to, const uint8_t *chunk, size_t len,
		      uint64_t now);
/* rtmfp_addr_bytes - @iface, family, address and port as bytes (for MACs). */
size_t rtmfp_addr_bytes(uint8_t out[static 32], int iface, const struct sockaddr_storage *a);
/* rtmfp_on_fihello - an FIHello arrived in an open session: answer its
 * initiator directly with an RHello, as if it had sent the IHello (§3.5.1.5). */
void rtmfp_on_fihello(struct rtmfp_session *s, const struct rtmfp_wire_fihello *fh, uint64_t now);
int rtmfp_table_add(struct rtmfp *r, struct rtmfp_session *s);
void rtmfp_table_remove(struct rtmfp *r, struct rtmfp_session *s);
bool rtmfp_addr_eq(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
/* rtmfp_touch - @s may have a new deadline: re-key it in the instance's
 * deadline heap when the current entry point leaves. */
void rtmfp_touch(struct rtmfp_session *s);
/* rtmfp_session_set_dest - set s->dest (and the instance's index by it). */
void rtmfp_session_set_dest(struct rtmfp_session *s, const struct sockaddr_storage *a);
/* rtmfp_mac - keyed BLAKE2b-128 of @a | @b with the instance secret. */
void rtmfp_mac(const struct rtmfp *r, uint8_t out[16], const uint8_t *a, size_t alen,
	       const uint8_t *b, size_t blen);
/* Session lifecycle hooks the session calls into the instance. */
void rtmfp_on_session_open(struct rtmfp_session *s, uint64_t now);
void rtmfp_on_session_gone(struct rtmfp_session *s, int err, uint64_t now);
void rtmfp_send_fail(struct rtmfp_send *f, int err);
void rtmfp_send_unlink(struct rtmfp_send *f);
void rtmfp_recv_fail(struct rtmfp_recv *f, int err);
void rtmfp_recv_bury(struct rtmfp_recv *f);
void rtmfp_wake(struct rtmfp_session *s);

/* Session functions (rtmfp_session.c). */
struct rtmfp_session *rtmfp_session_new(struct rtmfp *r, bool initiator, uint64_t now);
void rtmfp_session_destroy(struct rtmfp_session *s);
void rtmfp_session_set_open(struct rtmfp_session *s, uint32_t tx_id, uint64_t now);
/* rtmfp_session_note_timestamps - take the timestamp (to echo) and the
 * timestamp echo (an RTT sample) of an authentic packet for @s that did
 * not come through rtmfp_session_packet(): the RIKeying that opened it. */
void rtmfp_session_note_timestamps(struct rtmfp_session *s, const struct rtmfp_wire_header *h, uint64_t now);
/* rtmfp_session_packet - a decrypted packet for an open/closing session. */
void rtmfp_session_packet(struct rtmfp_session *s, int iface, const struct sockaddr_storage *from,
			  const uint8_t *clear, size_t len, uint64_t now);
void rtmfp_session_timer(struct rtmfp_session *s, uint64_t now);
uint64_t rtmfp_session_deadline(const struct rtmfp_session *s);
void rtmfp_session_pump(struct rtmfp_session *s, uint64_t now);
/* rtmfp_session_abort - end at once with @err (no close handshake). */
void rtmfp_session_abort(struct rtmfp_session *s, int err, uint64_t now);
void rtmfp_session_start_close(struct rtmfp_session *s, uint64_t now);
/* rtmfp_session_queue_chunk - a control chunk for the next packet. */
bool rtmfp_session_queue_ctl(struct rtmfp_session *s, const uint8_t *chunk, size_t len);
void rtmfp_session_send_ready(struct rtmfp_session *s, struct rtmfp_send *f);
/* rtmfp_session_want_ack - @f has something to acknowledge (§3.5.3 timing). */
void rtmfp_session_want_ack(struct rtmfp_session *s, struct rtmfp_recv *f, uint64_t now);
void rtmfp_session_bind(struct rtmfp_session *s, struct rtmfp_send *f, uint64_t now);

#endif
