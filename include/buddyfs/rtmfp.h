/*
 * rtmfp.h - the RTMFP instance (RFC 7016): one per UDP socket, no OS in it.
 *
 * Owns: the interfaces, the table of sessions by receive session id, the
 * stateless responder side of startup (IHello -> RHello with a cookie bound
 * to the initiator's address and time, IIKeying checked against that cookie,
 * Cookie Change, §3.5.1), the initiator side (IHello retransmission, RHello,
 * Redirect, FIHello answered with RHello, §3.5.1.1-§3.5.1.6), glare
 * (§3.5.1.3), and the public API: open a flow to an Endpoint Discriminator,
 * write messages, accept receiving flows, close flows and sessions.
 *
 * Leaves to others: one session's timers, acks and congestion control
 * (rtmfp_session), flows (rtmfp_sendflow, rtmfp_recvflow), bytes on the wire
 * (rtmfp_wire), keys and certificates (rtmfp_crypto and its profiles), the
 * clock and the socket (rtmfp_posix, or a test's fake link).
 *
 * The platform boundary.  The core never reads a clock and never touches a
 * socket.  The owner:
 *   - passes "now" (nanoseconds, monotonic, any epoch) to every entry point;
 *   - feeds every received datagram with rtmfp_feed();
 *   - sends what the core hands to callbacks.send() (called any number of
 *     times per entry point; callbacks.flush(), when set, is called once at
 *     the end of an entry point that sent something: a batching hint, e.g.
 *     for UDP GSO);
 *   - asks rtmfp_next_deadline() after each entry point and calls
 *     rtmfp_on_timer() at or after that time.
 * Events go up through struct rtmfp_callbacks, all with the owner's ctx.
 * Callbacks may call back into this API (write, close, open), except
 * rtmfp_free().
 *
 * Lifetimes.  struct rtmfp_send / rtmfp_recv / rtmfp_session handles belong
 * to the instance.  A send flow handle stays valid until its send_closed
 * event returns; a receiving flow handle until its recv_closed event returns
 * or rtmfp_recv_close() returns (no events after that); a session handle
 * until its session_closed event returns.  Internally a closed object may
 * live on (a receiving flow lingers to answer retransmissions with acks, a
 * closing session finishes its handshake) but it is no longer the owner's.
 * rtmfp_free() frees everything without further events.
 *
 * Errors: 0 or negative errno / BFS_E* codes (err.h).  Not thread-safe: one
 * instance belongs to one event loop.
 */
#ifndef BUDDYFS_RTMFP_H
#define BUDDYFS_RTMFP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define RTMFP_NS_PER_SEC 1000000000ull
#define RTMFP_NS_PER_MS 1000000ull
#define RTMFP_NEVER UINT64_MAX      /* "no deadline" from rtmfp_next_deadline */
#define RTMFP_MAX_INTERFACES 8
#define RTMFP_MAX_METADATA_BYTES 512
#define RTMFP_MAX_EPD_BYTES 512
#define RTMFP_MAX_TAG_BYTES 64
#define RTMFP_MAX_REDIRECT_ADDRS 24 /* addresses tried at once for one IHello */

struct rtmfp;
struct rtmfp_session;
struct rtmfp_send;
struct rtmfp_recv;
struct rtmfp_crypto;   /* rtmfp_crypto.h: a profile instance */

/* Timing knobs; rtmfp_params_default() fills in the defaults shown. */
struct rtmfp_params {
	uint64_t keepalive_ns;        /* 20 s: ping after this long quiet (NATs) */
	uint64_t idle_limit_ns;       /* 300 s: close a session with no flows */
	uint64_t retransmit_limit_ns; /* 30 s: no answer to data or a keepalive this
	                               * long and the session fails (-ETIMEDOUT) */
	uint64_t open_timeout_ns;     /* 95 s: startup gives up (-ETIMEDOUT) */
	size_t max_packet_bytes;      /* 1232: largest UDP payload we send (IPv6
	                               * minimum MTU less headers; 576..1232) */
};

void rtmfp_params_default(struct rtmfp_params *p);

/* Events.  Every member may be NULL except send. */
struct rtmfp_callbacks {
	/* Send one datagram; @bytes lives until the call returns. */
	void (*send)(void *ctx, int iface, const struct sockaddr_storage *to,
		     const uint8_t *bytes, size_t len);
	/* The end of a batch of send() calls (see the file comment). */
	void (*flush)(void *ctx);
	/* A session reached S_OPEN (either role). */
	void (*session_opened)(void *ctx, struct rtmfp_session *s);
	/*
	 * A session ended: @err is 0 for an orderly close, -ETIMEDOUT when the
	 * far end stopped answering (or startup timed out), BFS_ECLOSED when
	 * the far end closed, -ECONNRESET when the far end came back with a
	 * new session (it restarted), other negative codes otherwise.  Its
	 * flows got their closed events first.
	 */
	void (*session_closed)(void *ctx, struct rtmfp_session *s, int err);
	/*
	 * A new receiving flow (§3.6.3) with its metadata; @assoc is the local
	 * send flow it returns to, or NULL.  Call rtmfp_recv_accept() inside
	 * the callback or the flow is rejected.
	 */
	void (*recv_flow)(void *ctx, struct rtmfp_recv *f, const uint8_t *meta,
			  size_t meta_len, struct rtmfp_send *assoc);
	/* One whole message, in order; @msg lives until the call returns. */
	void (*message)(void *ctx, struct rtmfp_recv *f, const uint8_t *msg, size_t len);
	/* The receiving flow ended: 0 after the sender's FIN, else an error. */
	void (*recv_closed)(void *ctx, struct rtmfp_recv *f, int err);
	/* A send flow has room in its buffer again after -EAGAIN. */
	void (*writable)(void *ctx, struct rtmfp_send *f);
	/*
	 * A send flow ended: 0 when everything was delivered after
	 * rtmfp_send_close(), -ECONNREFUSED when the far end rejected it (Flow
	 * Exception Report), -ETIMEDOUT / BFS_ECLOSED when its session failed
	 * or closed, -ETIMEDOUT when the session never opened.
	 */
	void (*send_closed)(void *ctx, struct rtmfp_send *f, int err);
	/*
	 * An IHello whose EPD does not select us (§3.5.1.4-§3.5.1.6): the hook
	 * of a rendezvous server (answer with rtmfp_redirect() or forward
	 * with rtmfp_session_send_fihello()).  Not called for FIHellos.
	 */
	void (*unmatched_ihello)(void *ctx, int iface, const struct sockaddr_storage *from,
				 const uint8_t *epd, size_t epd_len,
				 const uint8_t *tag, size_t tag_len);
};

/* Counters for one session (rtmfp_session_stats). */
struct rtmfp_session_stats {
	uint64_t packets_sent, packets_received;
	uint64_t bytes_sent, bytes_received;      /* datagram bytes */
	uint64_t data_bytes_sent, data_bytes_acked;
	uint64_t retransmissions;                  /* fragments sent again */
	uint64_t timeouts;                         /* ERTO expiries */
	uint64_t loss_probes;                      /* probes sent before ERTO */
	uint64_t srtt_ns, rttvar_ns, erto_ns;      /* srtt 0 until measured */
	uint64_t cwnd_bytes, outstanding_bytes;
};

/* ---- the instance ---- */

/*
 * rtmfp_new - an instance using @crypto (borrowed; lives longer than the
 * instance) and @cb (copied) with @ctx; @params may be NULL (defaults).
 * Add at least one interface before feeding or opening.
 * Errors: -ENOMEM, -EINVAL (no send callback, bad params).
 */
int rtmfp_new(struct rtmfp **out, struct rtmfp_crypto *crypto,
	      const struct rtmfp_callbacks *cb, void *ctx,
	      const struct rtmfp_params *params, uint64_t now);
/* rtmfp_free - free everything, without events, sending nothing. NULL ok. */
void rtmfp_free(struct rtmfp *r);

/* rtmfp_add_interface - @iface is any non-negative number the owner knows
 * (a socket index).  Errors: -EEXIST, -ENOSPC (RTMFP_MAX_INTERFACES). */
int rtmfp_add_interface(struct rtmfp *r, int iface);

/*
 * rtmfp_feed - one received datagram (@bytes are borrowed for the call).
 * Returns 0 when the datagram was taken (even if it turned out to be junk
 * that was dropped: too short, longer than 2,048 bytes, not authentic),
 * -ENOENT when its session id is unknown (the owner may log or count it).
 */
int rtmfp_feed(struct rtmfp *r, int iface, const struct sockaddr_storage *from,
	       const uint8_t *bytes, size_t len, uint64_t now);

/*
 * rtmfp_feed_inplace - rtmfp_feed() for a datagram the owner no longer
 * needs: packets of open sessions are decrypted inside @bytes (overwritten;
 * borrowed for the call), which saves a copy per packet.
 */
int rtmfp_feed_inplace(struct rtmfp *r, int iface, const struct sockaddr_storage *from,
		       uint8_t *bytes, size_t len, uint64_t now);

/* rtmfp_next_deadline - when rtmfp_on_timer() wants to run (RTMFP_NEVER:
 * nothing pending).  Cheap; call it after every entry point. */
uint64_t rtmfp_next_deadline(const struct rtmfp *r);
/* rtmfp_on_timer - run every timer due at @now. */
void rtmfp_on_timer(struct rtmfp *r, uint64_t now);

/*
 * rtmfp_shutdown - close every session (orderly: close handshake; else
 * abruptly) and refuse new ones.  rtmfp_idle() tells when all are gone.
 */
void rtmfp_shutdown(struct rtmfp *r, bool orderly, uint64_t now);
/* rtmfp_idle - no sessions left (open, opening or closing). */
bool rtmfp_idle(const struct rtmfp *r);

/* ---- flows ---- */

/*
 * rtmfp_open_flow - a new send flow with @meta (at most
 * RTMFP_MAX_METADATA_BYTES) to the endpoint @epd selects.  Uses the open
 * session to that endpoint if there is one, else starts one, sending IHellos
 * to each of @addrs (may be 0 addresses when a session is already open or
 * opening; add more with rtmfp_send_add_address()).  Messages written before
 * the session opens wait in the flow.
 * Errors: -EINVAL (sizes), -ENOMEM, -ESHUTDOWN after rtmfp_shutdown().
 */
int rtmfp_open_flow(struct rtmfp *r, struct rtmfp_send **out,
		    const uint8_t *epd, size_t epd_len,
		    const uint8_t *meta, size_t meta_len,
		    const struct sockaddr_storage *addrs, size_t n_addrs, uint64_t now);
/* rtmfp_send_add_address - one more candidate address for the opening
 * session of @f (ignored once it is keying or open). */
void rtmfp_send_add_address(struct rtmfp_send *f, const struct sockaddr_storage *addr, uint64_t now);

/*
 * rtmfp_recv_open_return - a send flow in @f's session associated with @f
 * (return flow, §2.3.11.1.1).  Errors as rtmfp_open_flow, -ENOTCONN when
 * the session is not open.
 */
int rtmfp_recv_open_return(struct rtmfp_recv *f, struct rtmfp_send **out,
			   const uint8_t *meta, size_t meta_len, uint64_t now);

/*
 * rtmfp_send_write - queue one message (copied).  Returns 0, -EAGAIN when
 * the flow's buffer is full (wait for the writable event), BFS_ECLOSED
 * after rtmfp_send_close() or once the flow failed, BFS_ETOOBIG for a
 * message the flow cannot carry.
 */
int rtmfp_send_write(struct rtmfp_send *f, const void *msg, size_t len, uint64_t now);
/* rtmfp_send_buffered - bytes written and not yet acknowledged. */
size_t rtmfp_send_buffered(const struct rtmfp_send *f);
/* rtmfp_send_close - no more writes; the send_closed event (0) follows
 * once everything is acknowledged (inside this call when nothing was ever
 * sent). */
void rtmfp_send_close(struct rtmfp_send *f, uint64_t now);
void rtmfp_send_set_ctx(struct rtmfp_send *f, void *ctx);
void *rtmfp_send_get_ctx(const struct rtmfp_send *f);
/* rtmfp_send_session - the session carrying @f, NULL while opening. */
struct rtmfp_session *rtmfp_send_session(const struct rtmfp_send *f);

/*
 * rtmfp_recv_pause - hold (true) or resume (false) delivery of messages on
 * @f.  Held data counts against the receive window, so the sender stops and
 * probes; resuming delivers what is complete (message events inside this
 * call).
 */
void rtmfp_recv_pause(struct rtmfp_recv *f, bool paused, uint64_t now);
/* rtmfp_recv_accept - accept @f (only inside the recv_flow event). */
void rtmfp_recv_accept(struct rtmfp_recv *f);
/* rtmfp_recv_close - reject/stop @f: the far sender gets a Flow Exception
 * Report (§3.6.3) and fails with -ECONNREFUSED; no more events for @f. */
void rtmfp_recv_close(struct rtmfp_recv *f, uint64_t now);
void rtmfp_recv_set_ctx(struct rtmfp_recv *f, void *ctx);
void *rtmfp_recv_get_ctx(const struct rtmfp_recv *f);
struct rtmfp_session *rtmfp_recv_session(const struct rtmfp_recv *f);
/* rtmfp_recv_metadata - the flow's metadata, borrowed for its lifetime. */
const uint8_t *rtmfp_recv_metadata(const struct rtmfp_recv *f, size_t *len);

/* ---- sessions ---- */

/*
 * rtmfp_session_open_flow - a new send flow in open session @s (no EPD, no
 * startup): how a server pushes to a client.  Errors as rtmfp_open_flow,
 * -ENOTCONN when @s is not open.
 */
int rtmfp_session_open_flow(struct rtmfp_session *s, struct rtmfp_send **out,
			    const uint8_t *meta, size_t meta_len, uint64_t now);
void rtmfp_session_set_ctx(struct rtmfp_session *s, void *ctx);
void *rtmfp_session_get_ctx(const struct rtmfp_session *s);
/* rtmfp_session_far_peer_id - the far end's peer id (profile's fingerprint
 * of its certificate, 32 bytes).  -ENOTCONN before the certificate is known. */
int rtmfp_session_far_peer_id(const struct rtmfp_session *s, uint8_t out[static 32]);

/* rtmfp_session_close - orderly close (§3.5.5): flows fail with BFS_ECLOSED,
 * Close Requests repeat until a Close Ack or the linger time ends. */
void rtmfp_session_close(struct rtmfp_session *s, uint64_t now);
/* rtmfp_session_far_cert - the far end's certificate, borrowed. */
const uint8_t *rtmfp_session_far_cert(const struct rtmfp_session *s, size_t *len);
/* rtmfp_session_far_addr - where the session sends (DESTADDR). */
const struct sockaddr_storage *rtmfp_session_far_addr(const struct rtmfp_session *s);
void rtmfp_session_stats(const struct rtmfp_session *s, struct rtmfp_session_stats *out);
bool rtmfp_session_is_open(const struct rtmfp_session *s);

/* ---- introduction (server side hooks, §3.5.1.4-§3.5.1.6) ---- */

/*
 * rtmfp_redirect - answer an IHello carrying @tag from @to with a
 * Redirect listing @addrs (at most RTMFP_MAX_REDIRECT_ADDRS).
 */
int rtmfp_redirect(struct rtmfp *r, int iface, const struct sockaddr_storage *to,
			const uint8_t *tag, size_t tag_len,
			const struct sockaddr_storage *addrs, size_t n_addrs, uint64_t now);
/*
 * rtmfp_session_send_fihello - forward an IHello to the peer at the end of
 * open session @s: it answers @reply_to directly with an RHello, sent on
 * all its interfaces.  Errors: -ENOTCONN (not open), -ENOBUFS (too many
 * control chunks queued), BFS_ETOOBIG / -EINVAL from the encoder.
 */
int rtmfp_session_send_fihello(struct rtmfp_session *s, const uint8_t *epd, size_t epd_len,
			       const struct sockaddr_storage *reply_to,
			       const uint8_t *tag, size_t tag_len, uint64_t now);

#endif
