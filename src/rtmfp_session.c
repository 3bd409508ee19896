/*
 * rtmfp_session.c - one RTMFP session: states, timers, acks, congestion
 * control and packet assembly (see rtmfp_session.h; RFC 7016 §3.5).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "buddyfs/err.h"
#include "buddyfs/rtmfp_session.h"

static size_t min_sz(size_t a, size_t b)
{
	return a < b ? a : b;
}

static size_t max_sz(size_t a, size_t b)
{
	return a > b ? a : b;
}

/* ---- round-trip time (§3.5.2.2) ---- */

void rtmfp_rtt_init(struct rtmfp_rtt *t)
{
	memset(t, 0, sizeof(*t));
	t->mrto_ns = RTMFP_INITIAL_MRTO_NS;
	t->erto_ns = RTMFP_INITIAL_ERTO_NS;
}

void rtmfp_rtt_sample(struct rtmfp_rtt *t, uint64_t rtt)
{
	if (t->measured) {
		uint64_t delta = t->srtt_ns > rtt ? t->srtt_ns - rtt : rtt - t->srtt_ns;

		t->rttvar_ns = (3 * t->rttvar_ns + delta) / 4;
		t->srtt_ns = (7 * t->srtt_ns + rtt) / 8;
	} else {
		t->srtt_ns = rtt;
		t->rttvar_ns = rtt / 2;
		t->measured = true;
	}
	t->mrto_ns = t->srtt_ns + 4 * t->rttvar_ns + RTMFP_DELACK_NS;
	t->erto_ns = t->mrto_ns > RTMFP_MINIMUM_ERTO_NS ? t->mrto_ns : RTMFP_MINIMUM_ERTO_NS;
}

void rtmfp_rtt_backoff(struct rtmfp_rtt *t)
{
	uint64_t e = t->erto_ns * 1414 / 1000; /* about sqrt(2) */

	if (e > RTMFP_MAX_ERTO_NS)
		e = RTMFP_MAX_ERTO_NS;
	if (e < t->mrto_ns)
		e = t->mrto_ns;
	t->erto_ns = e;
}

/* ---- congestion window (§3.5.2, Appendix A) ---- */

void rtmfp_cc_init(struct rtmfp_cc *c)
{
	memset(c, 0, sizeof(*c));
	c->cwnd = RTMFP_CWND_INIT_BYTES;
	c->ssthresh = SIZE_MAX;
}

void rtmfp_cc_on_rtt(struct rtmfp_cc *c, uint64_t rtt_ns, uint64_t base_rtt_ns)
{
	c->rtt_ns = c->rtt_ns ? (7 * c->rtt_ns + rtt_ns) / 8 : rtt_ns;
	c->base_rtt_ns = base_rtt_ns;
}

/* no_queue - the fragments' round trip shows no queue of ours to speak of. */
static bool no_queue(const struct rtmfp_cc *c)
{
	uint64_t tol = c->base_rtt_ns / 4;

	if (!c->rtt_ns || !c->base_rtt_ns)
		return false; /* nothing known: assume congestion */
	if (tol < RTMFP_CC_QUEUE_TOLERANCE_NS)
		tol = RTMFP_CC_QUEUE_TOLERANCE_NS;
	return c->rtt_ns <= c->base_rtt_ns + tol;
}

/* tolerated_loss - how many bytes a round of @window may lose and be random. */
static size_t tolerated_loss(size_t window)
{
	return max_sz(window / RTMFP_CC_TOLERATED_LOSS_DIV, RTMFP_CC_TOLERATED_LOSS_MIN_BYTES);
}

/*
 * cut - Appendix A's multiplicative decrease of @pre_cut (what was really in
 * flight) for a loss costing @loss_cost; recovery lasts until @remaining
 * bytes drain.  A big window gives up an eighth, a small one half
 * (rtmfp-cpp's rule; random loss on fast paths must not starve the flow).
 */
static void cut(struct rtmfp_cc *c, size_t pre_cut, size_t loss_cost, size_t remaining)
{
	size_t allowance = max_sz(pre_cut > RTMFP_CC_GENTLE_CUT_BYTES ? pre_cut / 8 : pre_cut / 2,
				  loss_cost);

	allowance = min_sz(allowance, pre_cut);
	c->recovery_loss_allowance = allowance;
	c->ssthresh = max_sz(pre_cut - allowance, RTMFP_CWND_INIT_BYTES);
	c->cwnd = c->ssthresh;
	c->acked_accumulator = 0;
	c->recovery_remaining = remaining;
	c->recovery_tolerant = false;
	c->cuts++;
}

/* grow - Appendix A's increase after @acked bytes of a window in use. */
static void grow(struct rtmfp_cc *c, size_t acked)
{
	size_t increase = 0;

	if (c->cwnd < c->ssthresh) {
		increase = acked; /* slow start */
		c->acked_accumulator = 0;
	} else {
		size_t aithresh = min_sz(max_sz(c->cwnd / 16, 64), 9600);

		c->acked_accumulator += acked;
		while (c->acked_accumulator >= aithresh) {
			c->acked_accumulator -= aithresh;
			increase += 96;
		}
	}
	c->cwnd = max_sz(c->cwnd + min_sz(increase, RTMFP_MSS_BYTES), RTMFP_CWND_INIT_BYTES);
	c->cwnd = min_sz(c->cwnd, max_sz(RTMFP_CWND_MAX_BYTES, RTMFP_CWND_INIT_BYTES));
}

void rtmfp_cc_on_ack(struct rtmfp_cc *c, size_t acked, size_t lost, bool any_loss,
		     bool any_naks, size_t pre_outstanding, size_t outstanding_after)
{
	size_t drained = acked + lost;
	size_t loss_cost = lost ? lost + (lost + 1) / 2 : 0; /* 1.5 x lost */

	/* Recovery lasts one window: the data outstanding at the loss drains. */
	if (c->recovery_remaining > drained) {
		c->recovery_remaining -= drained;
		if (c->recovery_tolerant) {
			c->recovery_lost += lost;
			if (c->recovery_lost > tolerated_loss(c->recovery_pre_cut)) {
				/* more than random loss: Appendix A's cut after all, and
				 * a full window of recovery from now, so no second cut
				 * follows within the round trip */
				size_t all = c->recovery_lost;

				cut(c, c->recovery_pre_cut, all + (all + 1) / 2,
				    max_sz(c->recovery_remaining, outstanding_after));
			} else if (pre_outstanding > c->cwnd * 63 / 64) {
				grow(c, acked); /* holes are expected here */
			}
			return;
		}
		if (loss_cost > c->recovery_loss_allowance) {
			/* lost more than the cut allowed: cut again, once */
			loss_cost -= c->recovery_loss_allowance;
			c->recovery_loss_allowance = 0;
			loss_cost = min_sz(loss_cost, c->ssthresh);
			c->ssthresh = max_sz(c->ssthresh - loss_cost, RTMFP_CWND_INIT_BYTES);
			c->cwnd = c->ssthresh;
			c->recovery_remaining += loss_cost;
		} else {
			c->recovery_loss_allowance -= loss_cost;
		}
		return;
	}
	c->recovery_remaining = 0;
	c->recovery_tolerant = false;

	if (any_loss) {
		size_t pre_cut = min_sz(c->cwnd, pre_outstanding);

		if (no_queue(c) && lost <= tolerated_loss(pre_cut) && outstanding_after > 0) {
			/* looks random: watch the round before cutting anything */
			c->recovery_tolerant = true;
			c->recovery_pre_cut = pre_cut;
			c->recovery_lost = lost;
			c->recovery_remaining = outstanding_after;
			c->tolerated++;
			return;
		}
		cut(c, pre_cut, loss_cost, outstanding_after);
	} else if (!any_naks && pre_outstanding > c->cwnd * 63 / 64) {
		grow(c, acked); /* the window was in use */
	} else if (!any_naks && c->cwnd > pre_outstanding + RTMFP_CWND_DECAY_MARGIN_BYTES) {
		c->cwnd--; /* slow decay of an unused window */
	}
}

void rtmfp_cc_on_timeout(struct rtmfp_cc *c, bool idle)
{
	size_t three_quarters = c->cwnd / 4 * 3;

	c->ssthresh = max_sz(c->ssthresh, three_quarters); /* Appendix A */
	c->acked_accumulator = 0;
	c->recovery_remaining = 0;
	c->recovery_tolerant = false;
	c->cwnd = idle ? RTMFP_CWND_INIT_BYTES : RTMFP_CWND_TIMEDOUT_BYTES;
}

/* ---- lifecycle ---- */

struct rtmfp_session *rtmfp_session_new(struct rtmfp *r, bool initiator, uint64_t now)
{
	struct rtmfp_session *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->r = r;
	s->initiator = initiator;
	s->iface = -1;
	rtmfp_rtt_init(&s->rtt);
	rtmfp_cc_init(&s->cc);
	s->erto_deadline = s->rtx_epoch = s->burst_deadline = RTMFP_NEVER;
	s->probe_deadline = RTMFP_NEVER;
	s->min_rtt_ns = RTMFP_NEVER;
	s->delack_deadline = s->idle_since = RTMFP_NEVER;
	s->close_next_tx = s->close_deadline = RTMFP_NEVER;
	s->keying_next = s->open_deadline = RTMFP_NEVER;
	s->burst_budget = RTMFP_MAX_DATA_BURST_BYTES;
	s->last_tx = now;
	if (rtmfp_table_add(r, s) != 0) {
		free(s);
		return NULL;
	}
	s->next = r->sessions;
	if (r->sessions)
		r->sessions->prev = s;
	r->sessions = s;
	return s;
}

void rtmfp_session_destroy(struct rtmfp_session *s)
{
	struct rtmfp *r = s->r;

	while (s->sends) {
		struct rtmfp_send *f = s->sends;

		s->sends = f->next;
		rtmfp_sendflow_free(f->flow);
		free(f);
	}
	while (s->waiting) {
		struct rtmfp_send *f = s->waiting;

		s->waiting = f->next;
		rtmfp_sendflow_free(f->flow);
		free(f);
	}
	while (s->recvs) {
		struct rtmfp_recv *f = s->recvs;

		s->recvs = f->next;
		rtmfp_recvflow_free(f->flow);
		free(f);
	}
	for (size_t i = 0; i < s->n_early; i++)
		free(s->early[i]);
	rtmfp_crypto_key_free(s->key);
	rtmfp_crypto_cert_free(s->cert);
	free(s->epd);
	free(s->cookie);
	free(s->cand);
	free(s->ctl);
	free(s->keying);
	sodium_memzero(s->skic, sizeof(s->skic));
	/* unlink from the instance list (the table entry went at burial) */
	if (s->prev)
		s->prev->next = s->next;
	else if (r->sessions == s)
		r->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	free(s);
}

/* bury - the session is gone: unreachable now, freed after the entry point. */
static void bury(struct rtmfp_session *s)
{
	if (s->dead)
		return;
	s->dead = true;
	s->state = RTMFP_S_CLOSED;
	rtmfp_table_remove(s->r, s);
	s->dnext = s->r->dead_sessions;
	s->r->dead_sessions = s;
}

static void ready_remove(struct rtmfp_session *s, struct rtmfp_send *f)
{
	struct rtmfp_send **pp, *prev = NULL;

	if (!f->in_ready)
		return;
	for (pp = &s->ready_head; *pp; prev = *pp, pp = &(*pp)->rnext) {
		if (*pp == f) {
			*pp = f->rnext;
			if (s->ready_tail == f)
				s->ready_tail = prev;
			break;
		}
	}
	f->in_ready = false;
	f->rnext = NULL;
}

void rtmfp_session_send_ready(struct rtmfp_session *s, struct rtmfp_send *f)
{
	if (f->in_ready || f->dead || !f->bound || !rtmfp_sendflow_has_data(f->flow))
		return;
	f->in_ready = true;
	f->rnext = NULL;
	if (s->ready_tail)
		s->ready_tail->rnext = f;
	else
		s->ready_head = f;
	s->ready_tail = f;
	rtmfp_wake(s);
}

static void list_unlink_send(struct rtmfp_send **head, struct rtmfp_send *f)
{
	if (f->prev)
		f->prev->next = f->next;
	else if (*head == f)
		*head = f->next;
	if (f->next)
		f->next->prev = f->prev;
	f->next = f->prev = NULL;
}

void rtmfp_send_unlink(struct rtmfp_send *f)
{
	struct rtmfp_session *s = f->s;
	struct rtmfp *r = f->r;

	if (f->dead)
		return;
	f->dead = true;
	f->closed = true;
	if (s && s->last_send == f)
		s->last_send = NULL;
	if (s) {
		if (f->bound) {
			size_t inflight = rtmfp_sendflow_bytes_in_flight(f->flow);

			ready_remove(s, f);
			list_unlink_send(&s->sends, f);
			s->n_sends--;
			s->outstanding = s->outstanding > inflight ? s->outstanding - inflight : 0;
			if (s->n_sends == 0 && s->n_recvs == 0)
				s->idle_since = r->now;
		} else {
			list_unlink_send(&s->waiting, f);
		}
	}
	f->dnext = r->dead_sends;
	r->dead_sends = f;
}

void rtmfp_send_fail(struct rtmfp_send *f, int err)
{
	struct rtmfp *r = f->r;

	if (!f->closed) {
		f->closed = true;
		if (r->cb.send_closed)
			r->cb.send_closed(r->ctx, f, err);
	}
	rtmfp_send_unlink(f);
}

void rtmfp_recv_fail(struct rtmfp_recv *f, int err)
{
	struct rtmfp *r = f->r;

	if (f->app_gone)
		return;
	f->app_gone = true;
	if (f->accepted && r->cb.recv_closed)
		r->cb.recv_closed(r->ctx, f, err);
}

static void acks_remove(struct rtmfp_session *s, struct rtmfp_recv *f)
{
	struct rtmfp_recv **pp;

	if (!f->in_acks)
		return;
	for (pp = &s->acks; *pp; pp = &(*pp)->anext) {
		if (*pp == f) {
			*pp = f->anext;
			break;
		}
	}
	f->in_acks = false;
}

void rtmfp_recv_bury(struct rtmfp_recv *f)
{
	struct rtmfp_session *s = f->s;

	if (f->dead)
		return;
	f->dead = true;
	f->app_gone = true;
	if (s->last_recv == f)
		s->last_recv = NULL;
	acks_remove(s, f);
	if (f->prev)
		f->prev->next = f->next;
	else if (s->recvs == f)
		s->recvs = f->next;
	if (f->next)
		f->next->prev = f->prev;
	f->next = f->prev = NULL;
	if (f->linger_until == RTMFP_NEVER && s->n_recvs > 0)
		s->n_recvs--;
	if (s->n_sends == 0 && s->n_recvs == 0 && s->idle_since == RTMFP_NEVER)
		s->idle_since = s->r->now;
	f->dnext = s->r->dead_recvs;
	s->r->dead_recvs = f;
}

/* recv_done - the flow no longer counts as in use; it lingers, acking. */
static void recv_done(struct rtmfp_session *s, struct rtmfp_recv *f, uint64_t now)
{
	if (f->linger_until != RTMFP_NEVER)
		return;
	f->linger_until = now + RTMFP_RF_LINGER_NS;
	if (s->n_recvs > 0)
		s->n_recvs--;
	if (s->n_sends == 0 && s->n_recvs == 0)
		s->idle_since = now;
}

/* fail_flows - every flow of @s ends with @err (events up). */
static void fail_flows(struct rtmfp_session *s, int err)
{
	while (s->sends)
		rtmfp_send_fail(s->sends, err);
	for (struct rtmfp_recv *f = s->recvs; f; f = f->next)
		rtmfp_recv_fail(f, err);
	while (s->recvs)
		rtmfp_recv_bury(s->recvs);
	s->ready_head = s->ready_tail = NULL;
	s->acks = NULL;
	s->outstanding = 0;
}

static void report_closed(struct rtmfp_session *s, int err)
{
	struct rtmfp *r = s->r;

	if (s->reported_open && !s->reported_closed) {
		s->reported_closed = true;
		if (r->cb.session_closed)
			r->cb.session_closed(r->ctx, s, err);
	}
}

void rtmfp_session_abort(struct rtmfp_session *s, int err, uint64_t now)
{
	if (s->dead)
		return;
	if (s->state < RTMFP_S_OPEN) {
		s->state = RTMFP_S_CLOSED;
		rtmfp_on_session_gone(s, err, now);
	} else {
		s->state = RTMFP_S_CLOSED;
		fail_flows(s, err);
		rtmfp_on_session_gone(s, err, now);
	}
	report_closed(s, err);
	bury(s);
}

static void stop_timers(struct rtmfp_session *s)
{
	s->erto_deadline = s->delack_deadline = s->burst_deadline = RTMFP_NEVER;
	s->idle_since = RTMFP_NEVER;
	s->rtx_epoch = RTMFP_NEVER;
	s->keepalive_outstanding = false;
	s->ack_now = false;
}

static void queue_close(struct rtmfp_session *s, uint8_t type)
{
	uint8_t c[RTMFP_WIRE_CHUNK_HEADER_BYTES] = { type, 0, 0 };

	rtmfp_session_queue_ctl(s, c, sizeof(c));
	rtmfp_wake(s);
}

void rtmfp_session_start_close(struct rtmfp_session *s, uint64_t now)
{
	if (s->state != RTMFP_S_OPEN)
		return;
	s->state = RTMFP_S_NEARCLOSE;
	fail_flows(s, BFS_ECLOSED);
	stop_timers(s);
	s->ctl_len = 0;
	s->close_deadline = now + RTMFP_NEARCLOSE_PERIOD_NS;
	s->close_next_tx = now + RTMFP_NEARCLOSE_RTX_NS;
	queue_close(s, RTMFP_WIRE_CHUNK_CLOSE);
	report_closed(s, 0);
}

static void farclose(struct rtmfp_session *s, uint64_t now)
{
	s->state = RTMFP_S_FARCLOSE_LINGER;
	fail_flows(s, BFS_ECLOSED);
	stop_timers(s);
	s->ctl_len = 0;
	s->close_deadline = now + RTMFP_FARCLOSE_LINGER_NS;
	s->close_next_tx = RTMFP_NEVER;
	report_closed(s, BFS_ECLOSED);
}

void rtmfp_session_bind(struct rtmfp_session *s, struct rtmfp_send *f, uint64_t now)
{
	f->s = s;
	if (s->state != RTMFP_S_OPEN) {
		f->bound = false;
		f->next = s->waiting;
		f->prev = NULL;
		if (s->waiting)
			s->waiting->prev = f;
		s->waiting = f;
		return;
	}
	f->bound = true;
	f->next = s->sends;
	f->prev = NULL;
	if (s->sends)
		s->sends->prev = f;
	s->sends = f;
	s->n_sends++;
	s->idle_since = RTMFP_NEVER;
	(void)now;
	rtmfp_session_send_ready(s, f);
}

void rtmfp_session_set_open(struct rtmfp_session *s, uint32_t tx_id, uint64_t now)
{
	struct rtmfp_send *w = s->waiting;

	s->state = RTMFP_S_OPEN;
	s->opened_at = now;
	s->tx_id = tx_id;
	s->last_tx = now;
	s->idle_since = now;
	s->keying_next = RTMFP_NEVER;
	s->open_deadline = RTMFP_NEVER;
	if (s->initiator) {
		free(s->keying);
		s->keying = NULL;
		s->keying_len = 0;
	}
	s->waiting = NULL;
	while (w) {
		struct rtmfp_send *next = w->next;

		rtmfp_session_bind(s, w, now);
		w = next;
	}
	rtmfp_on_session_open(s, now);
	rtmfp_wake(s);
}

bool rtmfp_session_queue_ctl(struct rtmfp_session *s, const uint8_t *chunk, size_t len)
{
	if (len > RTMFP_CTL_BYTES - s->ctl_len)
		return false;
	if (len > s->ctl_cap - s->ctl_len) {
		/* most sessions only ever queue a few small chunks: grow on demand */
		size_t cap = s->ctl_cap ? s->ctl_cap : RTMFP_CTL_MIN_BYTES;
		uint8_t *b;

		while (cap - s->ctl_len < len)
			cap *= 2;
		if (cap > RTMFP_CTL_BYTES)
			cap = RTMFP_CTL_BYTES;
		b = realloc(s->ctl, cap);
		if (!b)
			return false;
		s->ctl = b;
		s->ctl_cap = cap;
	}
	memcpy(s->ctl + s->ctl_len, chunk, len);
	s->ctl_len += len;
	return true;
}

/* ---- finding flows ---- */

static struct rtmfp_send *find_send(struct rtmfp_session *s, uint64_t id)
{
	if (s->last_send && rtmfp_sendflow_id(s->last_send->flow) == id)
		return s->last_send;
	for (struct rtmfp_send *f = s->sends; f; f = f->next)
		if (rtmfp_sendflow_id(f->flow) == id)
			return s->last_send = f;
	return NULL;
}

static struct rtmfp_recv *find_recv(struct rtmfp_session *s, uint64_t id)
{
	if (s->last_recv && rtmfp_recvflow_id(s->last_recv->flow) == id)
		return s->last_recv;
	for (struct rtmfp_recv *f = s->recvs; f; f = f->next)
		if (rtmfp_recvflow_id(f->flow) == id)
			return s->last_recv = f;
	return NULL;
}

/* ---- packet assembly ---- */

static void header_for(struct rtmfp_session *s, struct rtmfp_wire_header *h, uint64_t now)
{
	uint16_t ts = rtmfp_ts_now(s->r, now);

	memset(h, 0, sizeof(*h));
	h->flags = s->initiator ? RTMFP_WIRE_MODE_INITIATOR : RTMFP_WIRE_MODE_RESPONDER;
	if (!s->have_ts_tx || ts != s->ts_tx) {
		h->has_timestamp = true;
		h->timestamp = ts;
	}
	if (s->have_ts_rx && now - s->ts_rx_time <= RTMFP_MAX_TS_ECHO_AGE_NS) {
		uint16_t e = (uint16_t)(s->ts_rx + (now - s->ts_rx_time) / RTMFP_TS_TICK_NS);

		if (!s->have_ts_echo_tx || e != s->ts_echo_tx) {
			h->has_timestamp_echo = true;
			h->timestamp_echo = e;
		}
	}
}

static void sent_header(struct rtmfp_session *s, const struct rtmfp_wire_header *h)
{
	if (h->has_timestamp) {
		s->ts_tx = h->timestamp;
		s->have_ts_tx = true;
	}
	if (h->has_timestamp_echo) {
		s->ts_echo_tx = h->timestamp_echo;
		s->have_ts_echo_tx = true;
	}
}

/* send_single - one session packet with one chunk to @to (mobility checks). */
static void send_single(struct rtmfp_session *s, int iface, const struct sockaddr_storage *to,
			const uint8_t *chunk, size_t len, uint64_t now)
{
	struct rtmfp_wire_header h;
	struct rtmfp_wire_asm a;
	size_t limit;
	uint8_t *buf = rtmfp_tx_buf(s->r, &limit);

	header_for(s, &h, now);
	if (rtmfp_wire_asm_init(&a, buf, limit, &h) != 0 || !buf_put_bytes(&a.w, chunk, len))
		return;
	sent_header(s, &h);
	rtmfp_tx_packet(s->r, s->key, s->tx_id, iface, to, rtmfp_wire_asm_len(&a));
	s->st.packets_sent++;
}

/* put_ctl - as many whole queued control chunks as fit. */
static bool put_ctl(struct rtmfp_session *s, struct rtmfp_wire_asm *a)
{
	size_t off = 0;

	if (s->ctl_len == 0)
		return false; /* s->ctl may not be allocated yet */
	while (off + RTMFP_WIRE_CHUNK_HEADER_BYTES <= s->ctl_len) {
		size_t n = RTMFP_WIRE_CHUNK_HEADER_BYTES + buf_load16_be(s->ctl + off + 1);

		if (n > rtmfp_wire_asm_room(a) || !buf_put_bytes(&a->w, s->ctl + off, n))
			break;
		off += n;
	}
	if (off == 0 && s->ctl_len > 0 && rtmfp_wire_asm_empty(a))
		s->ctl_len = 0; /* a chunk that can never fit: drop it */
	memmove(s->ctl, s->ctl + off, s->ctl_len - off);
	s->ctl_len -= off;
	return off > 0;
}

/* put_acks - acks (and exception reports) of the flows in s->acks. */
static bool put_acks(struct rtmfp_session *s, struct rtmfp_wire_asm *a)
{
	struct rtmfp_wire_seq_range wr[RTMFP_MAX_ACK_RANGES];
	bool any = false;

	while (s->acks) {
		struct rtmfp_recv *f = s->acks;
		struct rtmfp_recvflow_ack ack;
		size_t mark = buf_writer_mark(&a->w), written, room;
		uint64_t code;

		if (rtmfp_recvflow_exception(f->flow, &code)) {
			struct rtmfp_wire_exception ex = { rtmfp_recvflow_id(f->flow), code };

			if (rtmfp_wire_exception_encode(&a->w, &ex) != 0)
				break;
		}
		room = rtmfp_wire_asm_chunk_room(a);
		if (room < 4 || rtmfp_recvflow_ack(f->flow, room, wr, RTMFP_MAX_ACK_RANGES, &ack) != 0) {
			buf_writer_rollback(&a->w, mark);
			break;
		}
		if (rtmfp_wire_ack_ranges_build(&a->w, rtmfp_recvflow_id(f->flow), ack.buffer_blocks,
						ack.cumulative_ack, wr, ack.nranges, &written) != 0) {
			buf_writer_rollback(&a->w, mark);
			break;
		}
		any = true;
		s->acks = f->anext;
		f->in_acks = false;
		f->anext = NULL;
	}
	if (!s->acks) {
		s->ack_now = false;
		s->rx_data_packets = 0;
		s->delack_deadline = RTMFP_NEVER;
	}
	return any;
}

/*
 * send_limit - how many bytes may be outstanding: the congestion window, or
 * more for a moment after an ack that reports holes (one more packet per
 * such ack: the ack clock keeps running in recovery, RFC 3042 and 6675 in
 * spirit) or when a loss probe is due (two more packets).
 */
static size_t send_limit(const struct rtmfp_session *s)
{
	size_t l = s->cc.cwnd;

	if (s->limited_transmit > l)
		l = s->limited_transmit;
	if (s->probe_allow > l)
		l = s->probe_allow;
	return l;
}

/* flow_options - the startup option list of @f into @w (no marker). */
static void flow_options(struct rtmfp_send *f, struct buf_writer *w)
{
	size_t mlen;
	const uint8_t *meta = rtmfp_sendflow_metadata(f->flow, &mlen);
	uint64_t rid;

	rtmfp_wire_put_option_metadata(w, meta, mlen);
	if (rtmfp_sendflow_return_flow(f->flow, &rid))
		rtmfp_wire_put_option_return_flow(w, rid);
}

/*
 * put_data - fragments of @f while they fit and the window allows.
 * Returns the number of chunks written; *full when the packet is full.
 */
static size_t put_data(struct rtmfp_session *s, struct rtmfp_send *f, struct rtmfp_wire_asm *a,
		       uint64_t now, bool *full)
{
	uint8_t obuf[RTMFP_MAX_METADATA_BYTES + 64];
	struct rtmfp_sendflow_frag frag, prev = { 0 };
	uint64_t id = rtmfp_sendflow_id(f->flow);
	/* A fragment must fit again, alone, when retransmitted in a packet with
	 * both timestamps and a full User Data header (seq and FSN offset below
	 * 2^28), so never cut one bigger than that. */
	size_t cap = s->r->max_plain - RTMFP_WIRE_MAX_HEADER_BYTES - RTMFP_WIRE_CHUNK_HEADER_BYTES -
		     (1 + rtmfp_wire_vlu_size(id) + 4 + 4);
	size_t n = 0;

	while (s->outstanding < send_limit(s)) {
		struct buf_writer ow;
		struct rtmfp_wire_userdata ud = { 0 };
		size_t room = rtmfp_wire_asm_chunk_room(a), hdr, olen = 0, before;
		bool opts = rtmfp_sendflow_wants_options(f->flow), next_ok;
		int rc;

		buf_writer_init(&ow, obuf, sizeof(obuf));
		if (opts) {
			flow_options(f, &ow);
			olen = buf_writer_len(&ow) + 1;
		}
		/* the smallest header first (seq unknown), then the exact one */
		hdr = (n > 0 && !opts) ? 1 : 1 + rtmfp_wire_vlu_size(id) + 2 + olen;
		if (room <= hdr) {
			*full = true;
			break;
		}
		if (rtmfp_sendflow_next(f->flow, now, min_sz(room - hdr, cap), &frag) != 1)
			break;
		next_ok = n > 0 && !opts && frag.seq == prev.seq + 1 &&
			  frag.seq - frag.fsn_offset == prev.seq - prev.fsn_offset;
		hdr = next_ok ? 1 : rtmfp_wire_userdata_header_size(id, frag.seq, frag.fsn_offset) -
				     RTMFP_WIRE_CHUNK_HEADER_BYTES + olen;
		if (hdr + frag.len > room) {
			uint64_t seq = frag.seq;

			if (room <= hdr || rtmfp_sendflow_next(f->flow, now, room - hdr, &frag) != 1 ||
			    frag.seq != seq || hdr + frag.len > room) {
				*full = true; /* the next packet has room for it */
				break;
			}
		}
		ud.flags = frag.fra & RTMFP_WIRE_UD_FLAG_FRA_MASK;
		if (frag.abandon)
			ud.flags |= RTMFP_WIRE_UD_FLAG_ABN;
		if (frag.final)
			ud.flags |= RTMFP_WIRE_UD_FLAG_FIN;
		if (opts) {
			ud.flags |= RTMFP_WIRE_UD_FLAG_OPT;
			ud.options = (struct rtmfp_wire_span){ obuf, buf_writer_len(&ow) };
		}
		ud.flow_id = id;
		ud.seq = frag.seq;
		ud.fsn_offset = frag.fsn_offset;
		ud.data = (struct rtmfp_wire_span){ frag.data, frag.len };
		before = rtmfp_wire_asm_len(a);
		rc = next_ok ? rtmfp_wire_next_userdata_encode(&a->w, &ud) :
			       rtmfp_wire_userdata_encode(&a->w, &ud);
		if (rc != 0) {
			*full = true;
			break;
		}
		rtmfp_sendflow_commit(f->flow, &frag, now, rtmfp_wire_asm_len(a) - before);
		s->outstanding += rtmfp_wire_asm_len(a) - before;
		s->burst_budget -= (long)(rtmfp_wire_asm_len(a) - before);
		s->st.data_bytes_sent += frag.len;
		if (frag.retransmission)
			s->st.retransmissions++;
		prev = frag;
		n++;
	}
	return n;
}

static bool burst_ok(struct rtmfp_session *s, uint64_t now)
{
	if (s->rtt.srtt_ns < RTMFP_BURST_RTT_THRESH_NS || s->burst_budget > 0)
		return true;
	if (s->burst_deadline == RTMFP_NEVER)
		s->burst_deadline = now + s->rtt.srtt_ns * RTMFP_MSS_BYTES / (s->cc.cwnd ? s->cc.cwnd : 1);
	return false;
}

/* put_all_data - round robin over ready flows (§3.6.2: many flows share fairly). */
static bool put_all_data(struct rtmfp_session *s, struct rtmfp_wire_asm *a, uint64_t now)
{
	bool any = false, full = false;
	struct rtmfp_send *stop = NULL;

	while (s->ready_head && !full && s->outstanding < send_limit(s) && burst_ok(s, now)) {
		struct rtmfp_send *f = s->ready_head;
		size_t n;

		if (f == stop)
			break;
		s->ready_head = f->rnext;
		if (!s->ready_head)
			s->ready_tail = NULL;
		f->in_ready = false;
		f->rnext = NULL;
		n = put_data(s, f, a, now, &full);
		if (n)
			any = true;
		/* still has data: to the tail; remember the first that sent
		 * nothing so a pass over only blocked flows ends */
		if (rtmfp_sendflow_has_data(f->flow)) {
			rtmfp_session_send_ready(s, f);
			if (!n && !stop)
				stop = f;
			else if (n)
				stop = NULL;
		}
	}
	return any;
}

static void pump(struct rtmfp_session *s, uint64_t now);

/*
 * probe_interval - how long without an ack before a loss probe: two round
 * trips (at least 10 ms), doubled for each probe already sent.  A probe is
 * two packets of new data beyond the window: the receiver acks a second
 * packet at once, and an ack of later data is what counts a negative ack
 * against the earlier, missing data (a "tail loss probe" that finds losses
 * long before ERTO, without the collapse of a timeout).
 */
static uint64_t probe_interval(const struct rtmfp_session *s)
{
	uint64_t t = 0;

	/* timestamps tick every 4 ms: below that, use the fragments' own RTT */
	if (s->rtt.measured && s->rtt.srtt_ns >= RTMFP_TS_TICK_NS)
		t = 2 * s->rtt.srtt_ns + 4 * s->rtt.rttvar_ns;
	else if (s->min_rtt_ns != RTMFP_NEVER)
		t = 4 * s->min_rtt_ns;
	else
		t = 2 * s->rtt.srtt_ns + 4 * s->rtt.rttvar_ns;

	if (t < RTMFP_PROBE_MIN_NS)
		t = RTMFP_PROBE_MIN_NS;
	return t << s->probe_count;
}

void rtmfp_session_pump(struct rtmfp_session *s, uint64_t now)
{
	if (s->dead || s->pumping)
		return;
	s->pumping = true;
	pump(s, now);
	s->pumping = false;
}

static void pump(struct rtmfp_session *s, uint64_t now)
{
	struct rtmfp *r = s->r;

	for (int guard = 0; guard < 100000; guard++) {
		struct rtmfp_wire_header h;
		struct rtmfp_wire_asm a;
		size_t limit;
		uint8_t *buf = rtmfp_tx_buf(r, &limit);
		bool data = false;

		if (s->state != RTMFP_S_OPEN && s->state != RTMFP_S_NEARCLOSE &&
		    s->state != RTMFP_S_FARCLOSE_LINGER)
			return;
		header_for(s, &h, now);
		if (rtmfp_wire_asm_init(&a, buf, limit, &h) != 0)
			return;
		put_ctl(s, &a);
		if (s->state == RTMFP_S_OPEN) {
			if (s->ack_now)
				put_acks(s, &a);
			data = put_all_data(s, &a, now);
			if (!rtmfp_wire_asm_empty(&a) && s->acks)
				put_acks(s, &a);
		}
		if (rtmfp_wire_asm_empty(&a))
			return;
		sent_header(s, &h);
		rtmfp_tx_packet(r, s->key, s->tx_id, s->iface, &s->dest, rtmfp_wire_asm_len(&a));
		s->st.packets_sent++;
		s->st.bytes_sent += rtmfp_wire_asm_len(&a) + RTMFP_WIRE_SSID_BYTES +
				    rtmfp_crypto_overhead_bytes(r->crypto);
		s->last_tx = now;
		if (data) {
			if (s->erto_deadline == RTMFP_NEVER)
				s->erto_deadline = now + s->rtt.erto_ns;
			if (s->rtx_epoch == RTMFP_NEVER)
				s->rtx_epoch = now;
			if (s->probe_deadline == RTMFP_NEVER && s->probe_count < RTMFP_MAX_PROBES)
				s->probe_deadline = now + probe_interval(s);
			if (s->outstanding >= s->probe_allow)
				s->probe_allow = 0; /* the probe went out */
			if (s->outstanding >= s->limited_transmit)
				s->limited_transmit = 0;
		}
	}
}

/* ---- receiving ---- */

/* message - the recvflow hands up a whole message. */
static void message(void *ctx, struct rtmfp_recvflow *flow, const uint8_t *data, size_t len)
{
	struct rtmfp_recv *f = ctx;
	struct rtmfp *r = f->r;

	(void)flow;
	if (f->accepted && !f->app_gone && r->cb.message)
		r->cb.message(r->ctx, f, data, len);
}

void rtmfp_session_want_ack(struct rtmfp_session *s, struct rtmfp_recv *f, uint64_t now)
{
	if (!f->in_acks) {
		f->in_acks = true;
		f->anext = NULL;
		/* append: older requests first */
		if (!s->acks) {
			s->acks = f;
		} else {
			struct rtmfp_recv *t = s->acks;

			while (t->anext)
				t = t->anext;
			t->anext = f;
		}
	}
	if (rtmfp_recvflow_ack_now(f->flow))
		s->ack_now = true;
	if (s->delack_deadline == RTMFP_NEVER)
		s->delack_deadline = now + RTMFP_DELACK_NS;
	rtmfp_wake(s);
}

static struct rtmfp_recv *new_recv(struct rtmfp_session *s, const struct rtmfp_wire_userdata *ud,
				   uint64_t now)
{
	struct rtmfp *r = s->r;
	struct rtmfp_wire_flow_options o = { 0 };
	struct rtmfp_recvflow_config cfg = { 0 };
	struct rtmfp_send *assoc = NULL;
	struct rtmfp_recv *f;
	bool reject = false;

	if ((ud->flags & RTMFP_WIRE_UD_FLAG_OPT) &&
	    rtmfp_wire_flow_options_parse(&o, ud->options) != 0)
		return NULL;
	if (!o.has_metadata || o.unknown_mandatory)
		reject = true;
	if (o.has_return_flow) {
		assoc = find_send(s, o.return_flow_id);
		if (!assoc || assoc->closed)
			reject = true;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->r = r;
	f->s = s;
	f->linger_until = RTMFP_NEVER;
	cfg.flow_id = ud->flow_id;
	cfg.metadata = o.metadata.p;
	cfg.metadata_len = o.has_metadata ? o.metadata.len : 0;
	cfg.has_return_flow = o.has_return_flow;
	cfg.return_flow_id = o.return_flow_id;
	cfg.on_message = message;
	cfg.ctx = f;
	if (rtmfp_recvflow_new(&f->flow, &cfg) != 0) {
		free(f);
		return NULL;
	}
	f->next = s->recvs;
	if (s->recvs)
		s->recvs->prev = f;
	s->recvs = f;
	s->n_recvs++;
	s->idle_since = RTMFP_NEVER;
	if (!reject && r->cb.recv_flow)
		r->cb.recv_flow(r->ctx, f, o.metadata.p, cfg.metadata_len, assoc);
	if (!f->accepted || f->app_gone) {
		f->app_gone = true;
		rtmfp_recvflow_reject(f->flow, 0);
		recv_done(s, f, now);
	}
	return f;
}

static void on_userdata(struct rtmfp_session *s, const struct rtmfp_wire_userdata *ud, uint64_t now)
{
	struct rtmfp_recv *f = find_recv(s, ud->flow_id);

	if (!f) {
		f = new_recv(s, ud, now);
		if (!f || s->dead || s->state != RTMFP_S_OPEN)
			return;
	}
	if (f->dead)
		return;
	(void)rtmfp_recvflow_data(f->flow, ud->seq, ud->fsn_offset,
				  ud->flags & RTMFP_WIRE_UD_FLAG_FRA_MASK,
				  (ud->flags & RTMFP_WIRE_UD_FLAG_ABN) != 0,
				  (ud->flags & RTMFP_WIRE_UD_FLAG_FIN) != 0, ud->data.p, ud->data.len);
	if (s->dead || f->dead)
		return;
	rtmfp_session_want_ack(s, f, now);
	if (rtmfp_recvflow_state(f->flow) != RTMFP_RECVFLOW_OPEN) {
		if (rtmfp_recvflow_state(f->flow) == RTMFP_RECVFLOW_COMPLETE)
			rtmfp_recv_fail(f, 0);
		recv_done(s, f, now);
	}
}

struct ack_tally {
	size_t acked, lost;
	bool any_acks, any_loss, any_holes;
};

static void on_ack(struct rtmfp_session *s, const struct rtmfp_wire_ack *ack, uint64_t now,
		   struct ack_tally *t)
{
	struct rtmfp_send *f = find_send(s, ack->flow_id);
	struct rtmfp_sendflow_ack_result res;
	struct rtmfp_wire_ack_iter it;
	struct rtmfp_wire_seq_range rg;
	struct rtmfp *r = s->r;
	size_t gone;

	if (!f || f->dead)
		return;
	rtmfp_sendflow_ack_begin(f->flow, now, ack->buffer_blocks, ack->cumulative_ack, &res);
	rtmfp_wire_ack_iter_init(&it, ack);
	while (rtmfp_wire_ack_iter_next(&it, &rg) == 1)
		rtmfp_sendflow_ack_range(f->flow, now, rg.first, rg.last, &res);
	rtmfp_sendflow_ack_end(f->flow, now, &res);
	gone = res.bytes_acked + res.bytes_lost;
	s->outstanding = s->outstanding > gone ? s->outstanding - gone : 0;
	t->acked += res.bytes_acked;
	t->lost += res.bytes_lost;
	t->any_loss |= res.frags_lost > 0;
	t->any_holes |= ack->range_count > 0;
	if (res.has_rtt) {
		if (s->min_rtt_ns == RTMFP_NEVER || now - s->min_rtt_at > RTMFP_MIN_RTT_WINDOW_NS ||
		    res.rtt_ns < s->min_rtt_ns) {
			s->min_rtt_ns = res.rtt_ns;
			s->min_rtt_at = now;
		}
		rtmfp_cc_on_rtt(&s->cc, res.rtt_ns, s->min_rtt_ns);
	}
	t->any_acks = true;
	s->st.data_bytes_acked += res.bytes_acked;
	s->keepalive_outstanding = false;
	s->rtx_epoch = RTMFP_NEVER;
	if (res.completed || rtmfp_sendflow_state(f->flow) == RTMFP_SENDFLOW_COMPLETE) {
		rtmfp_send_fail(f, 0);
		return;
	}
	rtmfp_session_send_ready(s, f);
	if (rtmfp_sendflow_take_writable(f->flow) && !f->closed && r->cb.writable)
		r->cb.writable(r->ctx, f);
}

static void on_exception(struct rtmfp_session *s, const struct rtmfp_wire_exception *ex)
{
	struct rtmfp_send *f = find_send(s, ex->flow_id);

	if (!f || f->dead)
		return;
	rtmfp_sendflow_on_exception(f->flow, ex->code);
	rtmfp_send_fail(f, -ECONNREFUSED);
}

static void on_ping(struct rtmfp_session *s, const struct rtmfp_wire_ping *p)
{
	uint8_t buf[RTMFP_CTL_BYTES];
	struct buf_writer w;

	buf_writer_init(&w, buf, sizeof(buf));
	if (p->message.len > 1000 ||
	    rtmfp_wire_ping_encode(&w, RTMFP_WIRE_CHUNK_PING_REPLY, p) != 0)
		return;
	rtmfp_session_queue_ctl(s, buf, buf_writer_len(&w));
	rtmfp_wake(s);
}

/* mobility_check - 'M' | seconds (4) | MAC(seconds, iface, address) (16). */
static size_t mobility_check(struct rtmfp_session *s, uint8_t out[static 21], uint32_t sec,
			     int iface, const struct sockaddr_storage *addr)
{
	uint8_t ab[32];
	size_t an = rtmfp_addr_bytes(ab, iface, addr);

	out[0] = RTMFP_MOBILITY_MARK;
	buf_store32_be(out + 1, sec);
	rtmfp_mac(s->r, out + 5, out, 5, ab, an);
	return 21;
}

static void send_mobility_check(struct rtmfp_session *s, int iface,
				const struct sockaddr_storage *from, uint64_t now)
{
	uint8_t msg[21], buf[64];
	uint64_t sec = (now - s->r->epoch) / RTMFP_NS_PER_SEC + 1;
	struct rtmfp_wire_ping p;
	struct buf_writer w;

	if (sec <= s->mob_tx_sec)
		return; /* at most one check a second */
	p.message = (struct rtmfp_wire_span){ msg, mobility_check(s, msg, (uint32_t)sec, iface, from) };
	buf_writer_init(&w, buf, sizeof(buf));
	if (rtmfp_wire_ping_encode(&w, RTMFP_WIRE_CHUNK_PING, &p) != 0)
		return;
	send_single(s, iface, from, buf, buf_writer_len(&w), now);
	s->mob_tx_sec = sec;
}

static void on_ping_reply(struct rtmfp_session *s, const struct rtmfp_wire_ping *p, int iface,
			  const struct sockaddr_storage *from, uint64_t now)
{
	uint8_t want[21];
	uint32_t sec;
	uint64_t now_sec = (now - s->r->epoch) / RTMFP_NS_PER_SEC + 1;

	s->keepalive_outstanding = false;
	s->rtx_epoch = RTMFP_NEVER;
	if (p->message.len != sizeof(want) || p->message.p[0] != RTMFP_MOBILITY_MARK)
		return;
	sec = buf_load32_be(p->message.p + 1);
	if (sec <= s->mob_rx_sec || sec > now_sec ||
	    (now_sec - sec) * RTMFP_NS_PER_SEC > RTMFP_MOBILITY_LIFETIME_NS)
		return;
	mobility_check(s, want, sec, iface, from);
	if (sodium_memcmp(want, p->message.p, sizeof(want)) != 0)
		return;
	/* §3.5.4.2: the far end answered at its new address: move there */
	s->mob_rx_sec = sec;
	rtmfp_session_set_dest(s, from);
	s->iface = iface;
	rtmfp_wake(s);
}

static void on_timestamps(struct rtmfp_session *s, const struct rtmfp_wire_header *h, uint64_t now)
{
	if (h->has_timestamp && (!s->have_ts_rx || h->timestamp != s->ts_rx)) {
		s->ts_rx = h->timestamp;
		s->ts_rx_time = now;
		s->have_ts_rx = true;
	}
	if (h->has_timestamp_echo && (!s->have_ts_echo_rx || h->timestamp_echo != s->ts_echo_rx)) {
		uint32_t ms = rtmfp_wire_timestamp_elapsed_ms(rtmfp_ts_now(s->r, now), h->timestamp_echo);

		s->ts_echo_rx = h->timestamp_echo;
		s->have_ts_echo_rx = true;
		if (ms < 32768u * RTMFP_WIRE_TIMESTAMP_TICK_MS)
			rtmfp_rtt_sample(&s->rtt, (uint64_t)ms * RTMFP_NS_PER_MS);
	}
}

void rtmfp_session_note_timestamps(struct rtmfp_session *s, const struct rtmfp_wire_header *h, uint64_t now)
{
	on_timestamps(s, h, now);
}

static void after_acks(struct rtmfp_session *s, const struct ack_tally *t, size_t pre, uint64_t now)
{
	rtmfp_cc_on_ack(&s->cc, t->acked, t->lost, t->any_loss, t->any_holes || t->any_loss, pre,
			s->outstanding);
	/* While the far end reports holes, each such ack lets one more packet
	 * out (see send_limit), so even a small window collects the 3 negative
	 * acks that find a loss without a timeout. */
	s->limited_transmit = t->any_holes ? s->outstanding + RTMFP_MSS_BYTES : 0;
	if (s->burst_budget < (long)RTMFP_MAX_DATA_BURST_BYTES)
		s->burst_budget = RTMFP_MAX_DATA_BURST_BYTES;
	s->burst_deadline = RTMFP_NEVER;
	s->erto_deadline = s->outstanding > 0 || s->keepalive_outstanding ? now + s->rtt.erto_ns :
									    RTMFP_NEVER;
	if (t->acked > 0)
		s->probe_count = 0;
	s->probe_allow = 0;
	s->probe_deadline = s->outstanding > 0 && s->probe_count < RTMFP_MAX_PROBES ?
		now + probe_interval(s) : RTMFP_NEVER;
	rtmfp_wake(s);
}

void rtmfp_session_packet(struct rtmfp_session *s, int iface, const struct sockaddr_storage *from,
			  const uint8_t *clear, size_t len, uint64_t now)
{
	struct rtmfp_wire_userdata prev_ud;
	struct rtmfp_wire_chunk_iter it;
	struct rtmfp_wire_header h;
	struct rtmfp_wire_chunk c;
	struct ack_tally t = { 0 };
	size_t pre = s->outstanding;
	bool have_prev = false, seen_data = false;
	enum rtmfp_wire_mode want = s->initiator ? RTMFP_WIRE_MODE_RESPONDER : RTMFP_WIRE_MODE_INITIATOR;

	if (rtmfp_wire_packet_begin(&it, &h, clear, len) != 0 || rtmfp_wire_header_mode(&h) != want)
		return;
	if (s->state == RTMFP_S_OPEN)
		on_timestamps(s, &h, now);
	while (!s->dead && rtmfp_wire_chunk_next(&it, &c) == 1) {
		struct rtmfp_wire_chunk_body b;
		bool open = s->state == RTMFP_S_OPEN;

		if (rtmfp_wire_chunk_decode(&b, &c) != 0) {
			have_prev = false;
			continue;
		}
		switch (c.type) {
		case RTMFP_WIRE_CHUNK_USERDATA:
			prev_ud = b.u.userdata;
			have_prev = true;
			if (open) {
				on_userdata(s, &b.u.userdata, now);
				seen_data = true;
			}
			continue;
		case RTMFP_WIRE_CHUNK_NEXT_USERDATA:
			if (!have_prev || rtmfp_wire_userdata_expand_next(&b.u.userdata, &prev_ud) != 0) {
				have_prev = false;
				continue;
			}
			prev_ud = b.u.userdata;
			if (open) {
				on_userdata(s, &b.u.userdata, now);
				seen_data = true;
			}
			continue;
		case RTMFP_WIRE_CHUNK_ACK_RANGES:
			if (open)
				on_ack(s, &b.u.ack, now, &t);
			break;
		case RTMFP_WIRE_CHUNK_BUFFER_PROBE:
			if (open) {
				struct rtmfp_recv *f = find_recv(s, b.u.buffer_probe.flow_id);

				if (f && !f->dead) {
					rtmfp_recvflow_on_probe(f->flow);
					rtmfp_session_want_ack(s, f, now);
				}
			}
			break;
		case RTMFP_WIRE_CHUNK_EXCEPTION:
			if (open)
				on_exception(s, &b.u.exception);
			break;
		case RTMFP_WIRE_CHUNK_PING:
			if (open)
				on_ping(s, &b.u.ping);
			break;
		case RTMFP_WIRE_CHUNK_PING_REPLY:
			if (open)
				on_ping_reply(s, &b.u.ping, iface, from, now);
			break;
		case RTMFP_WIRE_CHUNK_FIHELLO:
			if (open)
				rtmfp_on_fihello(s, &b.u.fihello, now);
			break;
		case RTMFP_WIRE_CHUNK_CLOSE:
			if (open)
				farclose(s, now);
			queue_close(s, RTMFP_WIRE_CHUNK_CLOSE_ACK);
			break;
		case RTMFP_WIRE_CHUNK_CLOSE_ACK:
			if (open) {
				/* the far end thinks we closed: answer and end */
				fail_flows(s, BFS_ECLOSED);
				report_closed(s, BFS_ECLOSED);
				s->state = RTMFP_S_FARCLOSE_LINGER;
				queue_close(s, RTMFP_WIRE_CHUNK_CLOSE_ACK);
				rtmfp_session_pump(s, now);
			}
			bury(s);
			break;
		default:
			break;
		}
		have_prev = false;
	}
	if (s->dead || s->state != RTMFP_S_OPEN)
		return;
	if (seen_data && ++s->rx_data_packets >= RTMFP_OBLIGATORY_ACK_AFTER && s->acks)
		s->ack_now = true;
	if (t.any_acks)
		after_acks(s, &t, pre, now);
	if (s->ack_now || s->ctl_len)
		rtmfp_wake(s);
	/* a packet from somewhere else: check with a ping before moving (§3.5.4.2) */
	if (iface != s->iface || !rtmfp_addr_eq(from, &s->dest))
		send_mobility_check(s, iface, from, now);
}

/* ---- timers ---- */

static uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t keepalive_at(const struct rtmfp_session *s)
{
	uint64_t t = s->last_tx + s->r->p.keepalive_ns;

	/* both ends may use the same period: the responder waits a bit more */
	return s->initiator ? t : t + s->rtt.mrto_ns;
}

uint64_t rtmfp_session_deadline(const struct rtmfp_session *s)
{
	uint64_t d = RTMFP_NEVER;

	if (s->dead)
		return d;
	switch (s->state) {
	case RTMFP_S_IHELLO_SENT:
		for (size_t i = 0; i < s->n_cand; i++)
			d = min64(d, s->cand[i].next_tx);
		return min64(d, s->open_deadline);
	case RTMFP_S_KEYING_SENT:
		return min64(s->keying_next, s->open_deadline);
	case RTMFP_S_OPEN:
		d = min64(s->erto_deadline, s->delack_deadline);
		d = min64(d, s->burst_deadline);
		d = min64(d, s->probe_deadline);
		if (s->outstanding == 0 && !s->keepalive_outstanding)
			d = min64(d, keepalive_at(s));
		if (s->idle_since != RTMFP_NEVER)
			d = min64(d, s->idle_since + s->r->p.idle_limit_ns);
		for (const struct rtmfp_recv *f = s->recvs; f; f = f->next)
			d = min64(d, f->linger_until);
		for (const struct rtmfp_send *f = s->sends; f; f = f->next)
			d = min64(d, rtmfp_sendflow_next_deadline(f->flow));
		return d;
	case RTMFP_S_NEARCLOSE:
	case RTMFP_S_FARCLOSE_LINGER:
		return min64(s->close_next_tx, s->close_deadline);
	default:
		return d;
	}
}

static void send_ping(struct rtmfp_session *s)
{
	uint8_t c[RTMFP_WIRE_CHUNK_HEADER_BYTES] = { RTMFP_WIRE_CHUNK_PING, 0, 0 };

	rtmfp_session_queue_ctl(s, c, sizeof(c));
	rtmfp_wake(s);
}

/* on_erto - the retransmission timer fired (§3.5.2.2, Appendix A). */
static void on_erto(struct rtmfp_session *s, uint64_t now)
{
	s->erto_deadline = RTMFP_NEVER;
	if (s->outstanding == 0 && !s->keepalive_outstanding) {
		rtmfp_cc_on_timeout(&s->cc, true);
		s->rtx_epoch = RTMFP_NEVER;
		return;
	}
	if (s->rtx_epoch != RTMFP_NEVER && now - s->rtx_epoch >= s->r->p.retransmit_limit_ns) {
		rtmfp_session_abort(s, -ETIMEDOUT, now);
		return;
	}
	for (struct rtmfp_send *f = s->sends; f; f = f->next) {
		rtmfp_sendflow_on_timeout(f->flow);
		rtmfp_session_send_ready(s, f);
	}
	s->outstanding = 0;
	s->limited_transmit = 0;
	s->probe_allow = 0;
	s->probe_count = 0;
	s->probe_deadline = RTMFP_NEVER;
	rtmfp_cc_on_timeout(&s->cc, false);
	rtmfp_rtt_backoff(&s->rtt);
	s->st.timeouts++;
	if (s->keepalive_outstanding)
		send_ping(s);
	s->erto_deadline = now + s->rtt.erto_ns;
	rtmfp_wake(s);
}

/*
 * probe_retransmit - a loss probe finds no new data to send (the tail of a
 * transfer): the oldest fragment in flight goes again instead, so a lost
 * last packet, or a lost retransmission, is answered by an ack rather than
 * by ERTO and the collapse of the window (a tail-loss probe, RFC 8985 in
 * spirit; no congestion response, as none is due until loss is known).
 */
static void probe_retransmit(struct rtmfp_session *s)
{
	for (struct rtmfp_send *f = s->sends; f; f = f->next) {
		size_t bytes;

		if (f->dead)
			continue;
		bytes = rtmfp_sendflow_probe_retransmit(f->flow);
		if (!bytes)
			continue;
		s->outstanding = s->outstanding > bytes ? s->outstanding - bytes : 0;
		rtmfp_session_send_ready(s, f);
		return;
	}
}

void rtmfp_session_timer(struct rtmfp_session *s, uint64_t now)
{
	if (s->dead)
		return;
	switch (s->state) {
	case RTMFP_S_IHELLO_SENT:
	case RTMFP_S_KEYING_SENT:
		if (now >= s->open_deadline)
			rtmfp_session_abort(s, -ETIMEDOUT, now);
		return;
	case RTMFP_S_NEARCLOSE:
		if (now >= s->close_deadline) {
			bury(s);
		} else if (now >= s->close_next_tx) {
			queue_close(s, RTMFP_WIRE_CHUNK_CLOSE);
			s->close_next_tx = now + RTMFP_NEARCLOSE_RTX_NS;
		}
		return;
	case RTMFP_S_FARCLOSE_LINGER:
		if (now >= s->close_deadline)
			bury(s);
		return;
	case RTMFP_S_OPEN:
		break;
	default:
		return;
	}
	if (now >= s->delack_deadline) {
		s->delack_deadline = RTMFP_NEVER;
		s->delacks++;
		if (s->acks) {
			s->ack_now = true;
			rtmfp_wake(s);
		}
	}
	if (now >= s->burst_deadline) {
		s->burst_deadline = RTMFP_NEVER;
		s->burst_budget = RTMFP_MSS_BYTES;
		rtmfp_wake(s);
	}
	if (now >= s->erto_deadline) {
		on_erto(s, now);
		if (s->dead)
			return;
	}
	if (now >= s->probe_deadline) {
		s->probe_deadline = RTMFP_NEVER;
		if (s->outstanding > 0 && s->probe_count < RTMFP_MAX_PROBES) {
			s->probe_count++;
			if (!s->ready_head)
				probe_retransmit(s);
			s->probe_allow = s->outstanding + 2 * RTMFP_MSS_BYTES;
			s->probes++;
			s->probe_deadline = now + probe_interval(s);
			rtmfp_wake(s);
		}
	}
	if (s->outstanding == 0 && !s->keepalive_outstanding && now >= keepalive_at(s)) {
		/* §3.5.4.1: quiet too long; the reply keeps NAT bindings open */
		send_ping(s);
		s->keepalive_outstanding = true;
		s->last_tx = now;
		if (s->rtx_epoch == RTMFP_NEVER)
			s->rtx_epoch = now;
		if (s->erto_deadline == RTMFP_NEVER)
			s->erto_deadline = now + s->rtt.erto_ns;
	}
	if (s->idle_since != RTMFP_NEVER && now >= s->idle_since + s->r->p.idle_limit_ns) {
		if (s->n_sends == 0 && s->n_recvs == 0) {
			rtmfp_session_start_close(s, now);
			return;
		}
		s->idle_since = RTMFP_NEVER;
	}
	for (struct rtmfp_recv *f = s->recvs, *next; f; f = next) {
		next = f->next;
		if (now >= f->linger_until)
			rtmfp_recv_bury(f);
	}
	for (struct rtmfp_send *f = s->sends; f; f = f->next) {
		if (rtmfp_sendflow_next_deadline(f->flow) > now)
			continue;
		if (rtmfp_sendflow_probe_due(f->flow, now, s->rtt.erto_ns)) {
			uint8_t buf[32];
			struct buf_writer w;
			struct rtmfp_wire_buffer_probe bp = { rtmfp_sendflow_id(f->flow) };

			buf_writer_init(&w, buf, sizeof(buf));
			if (rtmfp_wire_buffer_probe_encode(&w, &bp) == 0)
				rtmfp_session_queue_ctl(s, buf, buf_writer_len(&w));
			rtmfp_wake(s);
		}
		rtmfp_session_send_ready(s, f);
	}
}
