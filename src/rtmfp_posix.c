/*
 * rtmfp_posix.c - an RTMFP instance on a UDP socket and event loop (see
 * rtmfp_posix.h).
 *
 * One deferred "sync" per loop iteration does the batching: it flushes the
 * socket's send queue (so every datagram the core produced while handling a
 * whole batch of received datagrams leaves in as few GSO sends as possible)
 * and moves the single timer to the core's next deadline.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "buddyfs/err.h"
#include "buddyfs/log.h"
#include "buddyfs/loop.h"
#include "buddyfs/rtmfp_posix.h"
#include "buddyfs/udp.h"

#define IFACE 0

struct rtmfp_posix {
	struct loop *loop;
	struct udp_sock *udp;
	struct loop_fd *fd;
	struct loop_timer *timer;
	struct rtmfp *core;
	bool sync_pending;
	int last_send_err;
	struct rtmfp_callbacks up; /* the owner's events */
	void *up_ctx;
};

uint64_t rtmfp_posix_now(void)
{
	return loop_clock_ns();
}

static void sync_now(struct loop *loop, void *ctx)
{
	struct rtmfp_posix *p = ctx;
	uint64_t deadline;
	int rc;

	(void)loop;
	p->sync_pending = false;
	rc = udp_flush(p->udp);
	if (rc && rc != p->last_send_err)
		log_warn("udp send: %s", bfs_strerror(rc));
	p->last_send_err = rc;
	deadline = rtmfp_next_deadline(p->core);
	if (deadline == RTMFP_NEVER)
		loop_timer_stop(p->loop, p->timer);
	else
		loop_timer_rearm_at(p->loop, p->timer, deadline);
}

void rtmfp_posix_kick(struct rtmfp_posix *p)
{
	if (p->sync_pending)
		return;
	if (loop_defer(p->loop, sync_now, p) == 0)
		p->sync_pending = true;
	else
		sync_now(p->loop, p); /* out of memory for the defer: do it now */
}

static void on_timer(struct loop *loop, struct loop_timer *t, void *ctx)
{
	struct rtmfp_posix *p = ctx;

	(void)loop;
	(void)t;
	rtmfp_on_timer(p->core, loop_clock_ns());
	rtmfp_posix_kick(p);
}

struct feed_ctx {
	struct rtmfp_posix *p;
	uint64_t now;
};

static void on_datagram(void *ctx, const struct sockaddr_storage *from, uint8_t *data, size_t len)
{
	struct feed_ctx *f = ctx;

	rtmfp_feed_inplace(f->p->core, IFACE, from, data, len, f->now);
}

static void on_readable(struct loop *loop, struct loop_fd *h, int fd, uint32_t events, void *ctx)
{
	struct rtmfp_posix *p = ctx;
	struct feed_ctx f = { .p = p };
	int n, rounds = 0;

	(void)loop;
	(void)h;
	(void)fd;
	(void)events;
	/* A bounded number of batches per wake-up keeps timers and other fds served. */
	do {
		f.now = loop_clock_ns();
		n = udp_recv(p->udp, on_datagram, &f);
	} while (n > 0 && ++rounds < 8);
	if (n < 0)
		log_warn("udp receive: %s", bfs_strerror(n));
	rtmfp_posix_kick(p);
}

static void on_send(void *ctx, int iface, const struct sockaddr_storage *to, const uint8_t *bytes, size_t len)
{
	struct rtmfp_posix *p = ctx;

	(void)iface;
	udp_send(p->udp, to, bytes, len);
	rtmfp_posix_kick(p);
}

/* Events pass through to the owner unchanged. */
#define PASS(name, ...)                                                       \
	do {                                                                  \
		struct rtmfp_posix *p_ = ctx;                                 \
		if (p_->up.name)                                              \
			p_->up.name(p_->up_ctx, __VA_ARGS__);                 \
		rtmfp_posix_kick(p_);                                         \
	} while (0)

static void ev_session_opened(void *ctx, struct rtmfp_session *s)
{
	PASS(session_opened, s);
}

static void ev_session_closed(void *ctx, struct rtmfp_session *s, int err)
{
	PASS(session_closed, s, err);
}

static void ev_recv_flow(void *ctx, struct rtmfp_recv *f, const uint8_t *meta, size_t meta_len,
			 struct rtmfp_send *assoc)
{
	PASS(recv_flow, f, meta, meta_len, assoc);
}

static void ev_message(void *ctx, struct rtmfp_recv *f, const uint8_t *msg, size_t len)
{
	PASS(message, f, msg, len);
}

static void ev_recv_closed(void *ctx, struct rtmfp_recv *f, int err)
{
	PASS(recv_closed, f, err);
}

static void ev_writable(void *ctx, struct rtmfp_send *f)
{
	PASS(writable, f);
}

static void ev_send_closed(void *ctx, struct rtmfp_send *f, int err)
{
	PASS(send_closed, f, err);
}

static void ev_unmatched_ihello(void *ctx, int iface, const struct sockaddr_storage *from,
				const uint8_t *epd, size_t epd_len, const uint8_t *tag, size_t tag_len)
{
	PASS(unmatched_ihello, iface, from, epd, epd_len, tag, tag_len);
}

int rtmfp_posix_new(struct rtmfp_posix **out, struct loop *loop, struct rtmfp_crypto *crypto,
		    const struct rtmfp_callbacks *cb, void *ctx, const struct rtmfp_params *params,
		    const struct sockaddr_storage *bind_addr)
{
	struct rtmfp_callbacks down = {
		.send = on_send,
		.session_opened = ev_session_opened,
		.session_closed = ev_session_closed,
		.recv_flow = ev_recv_flow,
		.message = ev_message,
		.recv_closed = ev_recv_closed,
		.writable = ev_writable,
		.send_closed = ev_send_closed,
		.unmatched_ihello = cb->unmatched_ihello ? ev_unmatched_ihello : NULL,
	};
	struct rtmfp_posix *p;
	int rc;

	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->loop = loop;
	p->up = *cb;
	p->up_ctx = ctx;
	rc = udp_open(&p->udp, bind_addr);
	if (rc)
		goto fail;
	rc = rtmfp_new(&p->core, crypto, &down, p, params, loop_clock_ns());
	if (rc)
		goto fail;
	rc = rtmfp_add_interface(p->core, IFACE);
	if (rc)
		goto fail;
	rc = loop_fd_add(loop, udp_fd(p->udp), LOOP_IN, on_readable, p, &p->fd);
	if (rc)
		goto fail;
	rc = loop_timer_new(loop, on_timer, p, &p->timer);
	if (rc)
		goto fail;
	*out = p;
	return 0;
fail:
	rtmfp_posix_free(p);
	return rc;
}

void rtmfp_posix_free(struct rtmfp_posix *p)
{
	if (!p)
		return;
	if (p->sync_pending)
		loop_defer_cancel(p->loop, sync_now, p);
	loop_timer_cancel(p->loop, p->timer);
	if (p->fd)
		loop_fd_remove(p->loop, p->fd);
	rtmfp_free(p->core);
	udp_close(p->udp);
	free(p);
}

struct rtmfp *rtmfp_posix_core(const struct rtmfp_posix *p)
{
	return p->core;
}

struct udp_sock *rtmfp_posix_udp(const struct rtmfp_posix *p)
{
	return p->udp;
}
