/*
 * test_loop.c - the event loop: timers (order, cancellation and re-arming
 * from callbacks, many timers), fd readiness and removal inside a batch,
 * signals, deferred calls, loop_stop, and loop_free with live handles.
 *
 * No timing asserts: a test may check that a timer never fired before its
 * deadline, never that it fired soon enough.
 */
#include "t.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buddyfs/loop.h"

#define GUARD_NS (5 * LOOP_NS_PER_S) /* longest a single run_once may wait */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static int make_pipe(int p[2])
{
	return pipe2(p, O_NONBLOCK | O_CLOEXEC);
}

/* ---- many timers: each fires once, in (deadline, arming) order ---- */

#define MANY 20000

struct many {
	struct loop_timer *h[MANY];
	uint64_t deadline[MANY];
	int fired[MANY];
	int order[MANY];
	int nfired;
	int early;
};

static struct many *many_ctx;

static void many_fire(struct loop *loop, struct loop_timer *t, void *ctx)
{
	struct many *m = many_ctx;
	int i = (int)(intptr_t)ctx;

	(void)t;
	if (loop_now(loop) < m->deadline[i])
		m->early++;
	m->fired[i]++;
	m->order[m->nfired++] = i;
}

T_CASE(timers_many_fire_once_in_order)
{
	struct loop *loop;
	struct many *m = calloc(1, sizeof(*m));
	uint64_t start;

	T_CHECK(m != NULL);
	many_ctx = m;
	T_CHECK_EQ_INT(loop_new(&loop), 0);
	start = loop_now(loop);
	for (int i = 0; i < MANY; i++) {
		/* 10 us steps within 50 ms: many equal deadlines */
		m->deadline[i] = start + (rng() % 5000) * 10 * LOOP_NS_PER_US;
		/* even: owned handles (idle after firing); odd: detached */
		T_CHECK_EQ_INT(loop_timer_add_at(loop, m->deadline[i], many_fire, (void *)(intptr_t)i,
						 i % 2 ? NULL : &m->h[i]), 0);
	}
	T_CHECK_EQ_INT(loop_timer_count(loop), MANY);
	while (m->nfired < MANY) {
		int n = loop_run_once(loop, GUARD_NS);

		T_CHECK(n > 0);
	}
	T_CHECK_EQ_INT(m->early, 0);
	for (int i = 0; i < MANY; i++)
		T_CHECK_EQ_INT(m->fired[i], 1);
	for (int k = 1; k < MANY; k++) {
		int a = m->order[k - 1], b = m->order[k];

		T_CHECK(m->deadline[a] < m->deadline[b] || (m->deadline[a] == m->deadline[b] && a < b));
	}
	/* the detached half released itself; the owned half is idle */
	T_CHECK_EQ_INT(loop_timer_count(loop), MANY / 2);
	T_CHECK(!loop_timer_armed(m->h[0]));
	T_CHECK_EQ_INT(loop_run_once(loop, 0), 0);
	for (int i = 0; i < MANY; i += 2)
		loop_timer_cancel(loop, m->h[i]);
	T_CHECK_EQ_INT(loop_timer_count(loop), 0);
	loop_free(loop);
	free(m);
}

/* ---- 100,000 timers: re-arm, cancel half, fire the rest ---- */

#define HUGE_N 100000

static int huge_fired;
static uint64_t huge_last;
static int huge_unordered;

static void huge_fire(struct loop *loop, struct loop_timer *t, void *ctx)
{
	(void)loop;
	(void)ctx;
	if (loop_timer_deadline(t) < huge_last)
		huge_unordered++;
	huge_last = loop_timer_deadline(t);
	huge_fired++;
}

T_CASE(timers_100k_rearm_cancel)
{
	struct loop *loop;
	struct loop_timer **h = calloc(HUGE_N, sizeof(*h));
	uint64_t now;

	T_CHECK(h != NULL);
	T_CHECK_EQ_INT(loop_new(&loop), 0);
	now = loop_now(loop);
	for (int i = 0; i < HUGE_N; i++)
		T_CHECK_EQ_INT(loop_timer_add(loop, LOOP_NS_PER_S * 1000 + rng() % LOOP_NS_PER_S, huge_fire,
					      NULL, &h[i]), 0);
	for (int i = 0; i < HUGE_N; i++)
		loop_timer_rearm(loop, h[i], LOOP_NS_PER_S * 2000 + rng() % LOOP_NS_PER_S);
	for (int i = 0; i < HUGE_N; i += 2) {
		loop_timer_cancel(loop, h[i]);
		h[i] = NULL;
	}
	/* the rest: due in the past, in scrambled order */
	for (int i = 1; i < HUGE_N; i += 2)
		loop_timer_rearm_at(loop, h[i], now - 1 - rng() % LOOP_NS_PER_S);
	T_CHECK_EQ_INT(loop_run_once(loop, 0), HUGE_N / 2);
	T_CHECK_EQ_INT(huge_fired, HUGE_N / 2);
	T_CHECK_EQ_INT(huge_unordered, 0);
	T_CHECK_EQ_INT(loop_run_once(loop, 0), 0);
	T_CHECK_EQ_INT(loop_timer_count(loop), HUGE_N / 2);
	loop_free(loop); /* releases the idle half */
	free(h);
}

/* ---- random operations against a model ---- */

#define MODEL_N 512

struct model {
	struct loop_timer *h[MODEL_N]; /* NULL: no timer in this slot */
	bool armed[MODEL_N];
	uint64_t deadline[MODEL_N];
	uint64_t armed_as[MODEL_N]; /* the test's own arming counter */
	uint64_t arm_counter;
	size_t live;
	int bad_fire, early, unordered, fires;
	uint64_t last_deadline, last_arm, last_iter;
	uint64_t iter;
};

static struct model *model;

static void model_arm(struct loop *loop, int i, uint64_t deadline)
{
	struct model *m = model;

	loop_timer_rearm_at(loop, m->h[i], deadline);
	m->armed[i] = true;
	m->deadline[i] = deadline;
	m->armed_as[i] = m->arm_counter++;
}

static void model_fire(struct loop *loop, struct loop_timer *t, void *ctx);

/* one random operation on a random slot */
static void model_op(struct loop *loop)
{
	struct model *m = model;
	int i = (int)(rng() % MODEL_N);
	uint64_t now = loop_now(loop);
	uint64_t deadline = now - 2 * LOOP_NS_PER_MS + rng() % (4 * LOOP_NS_PER_MS);

	switch (rng() % 4) {
	case 0: /* create or re-arm */
	case 1:
		if (!m->h[i]) {
			if (loop_timer_new(loop, model_fire, (void *)(intptr_t)i, &m->h[i]) < 0)
				return;
			m->live++;
		}
		model_arm(loop, i, deadline);
		break;
	case 2:
		if (m->h[i]) {
			loop_timer_cancel(loop, m->h[i]);
			m->h[i] = NULL;
			m->armed[i] = false;
			m->live--;
		}
		break;
	default:
		if (m->h[i]) {
			loop_timer_stop(loop, m->h[i]);
			m->armed[i] = false;
		}
		break;
	}
}

static void model_fire(struct loop *loop, struct loop_timer *t, void *ctx)
{
	struct model *m = model;
	int i = (int)(intptr_t)ctx;

	m->fires++;
	if (!m->armed[i] || m->h[i] != t || loop_timer_armed(t))
		m->bad_fire++;
	if (loop_now(loop) < m->deadline[i])
		m->early++;
	/* within one pass: (deadline, arming order) increases */
	if (m->last_iter == m->iter &&
	    (m->deadline[i] < m->last_deadline ||
	     (m->deadline[i] == m->last_deadline && m->armed_as[i] < m->last_arm)))
		m->unordered++;
	m->last_iter = m->iter;
	m->last_deadline = m->deadline[i];
	m->last_arm = m->armed_as[i];
	m->armed[i] = false;
	for (int k = (int)(rng() % 4); k > 0; k--)
		model_op(loop);
}

T_CASE(timers_random_ops_match_model)
{
	struct loop *loop;
	struct model *m = calloc(1, sizeof(*m));
	size_t armed;

	T_CHECK(m != NULL);
	model = m;
	T_CHECK_EQ_INT(loop_new(&loop), 0);
	for (int round = 0; round < 300; round++) {
		for (int k = 0; k < 20; k++)
			model_op(loop);
		m->iter++;
		T_CHECK(loop_run_once(loop, LOOP_NS_PER_MS) >= 0);
		for (int i = 0; i < MODEL_N; i++)
			if (m->h[i] && loop_timer_armed(m->h[i]) != m->armed[i])
				T_FAIL("slot %d: armed %d, model %d", i, loop_timer_armed(m->h[i]), m->armed[i]);
		T_CHECK_EQ_INT(loop_timer_count(loop), m->live);
	}
	/* drain: everything armed fires */
	do {
		armed = 0;
		for (int i = 0; i < MODEL_N; i++)
			armed += m->armed[i];
		if (armed) {
			m->iter++;
			T_CHECK(loop_run_once(loop, GUARD_NS) > 0);
		}
	} while (armed);
	T_CHECK(m->fires > 1000);
	T_CHECK_EQ_INT(m->bad_fire, 0);
	T_CHECK_EQ_INT(m->early, 0);
	T_CHECK_EQ_INT(m->unordered, 0);
	loop_free(loop);
	free(m);
}

/* ---- cancellation from callbacks ---- */

struct cancel_ctx {
	struct loop_timer *a, *b, *c, *self;
	int fired_a, fired_b, fired_c, fired_self;
};

static void cancel_a(struct loop *loop, struct loop_timer *t, void *ctx)
{
	struct cancel_ctx *c = ctx;

	(void)t;
	c->fired_a++;
	loop_timer_cancel(loop, c->c); /* due later in this same pass */
	c->c = NULL;
}

static void cancel_b(struct loop *loop, struct loop_timer *t, void *ctx)
{
	struct cancel_ctx *c = ctx;

	(void)loop;
	(void)t;
	c->fired_b++;
}

static void cancel_c(struct loop *loop, struct loop_timer *t, void *ctx)
{
	struct cancel_ctx *c = ctx;

	(void)loop;
	(void)t;
	c->fired_c++;
}

static void cancel_self(struct loop *loop, struct loop_timer *t, void *ctx)
{
	struct cancel_ctx *c = ctx;

	c->fired_self++;
	loop_timer_cancel(loop, t);
	c->self = NULL;
}

T_CASE(timer_cancel_from_callback)
{
	struct loop *loop;
	struct cancel_ctx c = { 0 };
	uint64_t now;

	T_CHECK_EQ_INT(loop_new(&loop), 0);
	now = loop_now(loop);
	/* all due, so all in the same pass: a, then self, then b, then c */
	T_CHECK_EQ_INT(loop_timer_add_at(loop, now - 4, cancel_a, &c, &c.a), 0);
	T_CHECK_EQ_INT(loop_timer_add_at(loop, now - 3, cancel_self, &c, &c.self), 0);
	T_CHECK_EQ_INT(loop_timer_add_at(loop, now - 2, cancel_b, &c, &c.b), 0);
	T_CHECK_EQ_INT(loop_timer_add_at(loop, now - 1, cancel_c, &c, &c.c), 0);
	/* a detached timer cancelling itself */
	T_CHECK_EQ_INT(loop_timer_add_at(loop, now - 1, cancel_self, &c, NULL), 0);
	T_CHECK_EQ_INT(loop_timer_count(loop), 5);
	T_CHECK_EQ_INT(loop_run_once(loop, 0), 4);
	T_CHECK_EQ_INT(c.fired_a, 1);
	T_CHECK_EQ_INT(c.fired_self, 2);
	T_CHECK_EQ_INT(c.fired_b, 1);
	T_CHECK_EQ_INT(c.fired_c, 0);
	T_CHECK_EQ_INT(loop_timer_count(loop), 2); /* a and b, idle */
	T_CHECK_EQ_INT(loop_run_once(loop, 0), 0);
	loop_timer_cancel(loop, c.a);
	loop_timer_cancel(loop, c.b);
	T_CHECK_EQ_INT(loop_timer_count(loop), 0);
	loop_free(loop);
}

/* A detached timer cancels an owned one; the owned one cancels the detached. */
struct cross_ctx {
	struct loop_timer *owned;
	int fired;
};

static void cross_detached(struct loop *loop, struct loop_timer *t, void *ctx)
{
	struct cross_ctx *c = ctx;

	(void)t;
	c->fired++;
	loop_timer_cancel(loop, c->owned);
	c->owned = NULL;
	/* and a new one, due already: must wait for the next iteration */
	loop_timer_add(loop, 0, cross_detached, c, NULL);
}

T_CASE(timer_add_and_cancel_others_in_pass)
{
	struct loop *loop;
	struct cross_ctx c = { 0 };
	uint64_t now;

	T_CHECK_EQ_INT(loop_new(&loop), 0);
	now = loop_now(loop);
	T_CHECK_EQ_INT(loop_timer_add_at(loop, now - 2, cross_detached, &c, NULL), 0);
	T_CHECK_EQ_INT(loop_timer_add_at(loop, now - 1, cross_detached, &c, &c.owned), 0);
	T_CHECK_EQ_INT(loop_run_once(loop, 0), 1);
	T_CHECK_EQ_INT(c.fired, 1);
	T_CHECK_EQ_INT(loop_timer_count(loop), 1); /* the new detached one */
	T_CHECK_EQ_INT(loop_run_once(loop, GUARD_NS), 1);
	T_CHECK_EQ_INT(c.fired, 2);
	T_CHECK_EQ_INT(loop_timer_count(loop), 1); /* it added another */
	loop_free(loop);                           /* releases that one */
}

/* A detached timer that re-arms and then stops itself is released. */
static void rearm_then_stop(struct loop *loop, struct loop_timer *t, void *ctx)
{
	++*(int *)ctx;
	loop_timer_rearm(loop, t, 0);
	loop_timer_stop(loop, t);
}

T_CASE(timer_detached_stops_itself)
{
	struct loop *loop;
	int fired = 0;

	T_CHECK_EQ_INT(loop_new(&loop), 0);
	T_CHECK_EQ_INT(loop_timer_add(loop, 0, rearm_then_stop, &fired, NULL), 0);
	T_CHECK_EQ_INT(loop_run_once(loop, GUARD_NS), 1);
	T_CHECK_EQ_INT(fired, 1);
	T_CHECK_EQ_INT(loop_timer_count(loop), 0);
	T_CHECK_EQ_INT(loop_run_once(loop, 0), 0);
	loop_free(loop);
}

/* ---- re-arming ---- */

struct periodic {
	int fired;
	int limit;
	uint64_t period;
	int early;
};

static void periodic_fire(struct loop *loop, struct loop_timer *t, void *ctx)
{
	struct periodic *p = ctx;

	if (loop_now(loop) < loop_timer_deadline(t))
		p->early++;
	if (++p->fired < p->limit)
		loop_timer_rearm_at(loop, t, loop_timer_deadline(t) + p->period);
}

T_CASE(timer_rearm_itself_periodically)
{
	struct loop *loop;
	struct loop_timer *t;
	struct periodic owned = { .limit = 5, .period = LOOP_NS_PER_MS };
	struct periodic detached = { .limit = 7, .period = 500 * LOOP_NS_PER_US };

	T_CHECK_EQ_INT(loop_new(&loop), 0);
	T_CHECK_EQ_INT(loop_timer_add(loop, LOOP_NS_PER_MS, periodic_fire, &owned, &t), 0);
	T_CHECK_EQ_INT(loop_timer_add(loop, LOOP_NS_PER_MS, periodic_fire, &detached, NULL), 0);
	while (owned.fired < owned.limit || detached.fired < detached.limit)
		T_CHECK(loop_run_once(loop, GUARD_NS) > 0);
	T_CHECK_EQ_INT(owned.fired, 5);
	T_CHECK_EQ_INT(detached.fired, 7);
	T_CHECK_EQ_INT(owned.early + detached.early, 0);
	T_CHECK(!loop_timer_armed(t));
	T_CHECK_EQ_INT(loop_timer_count(loop), 1); /* the detached one released itself */
	/* an idle owned timer re-arms without allocating */
	loop_timer_rearm(loop, t, 0);
	T_CHECK(loop_timer_armed(t));
	owned.limit = 6;
	T_CHECK_EQ_INT(loop_run_once(loop, GUARD_NS), 1);
	T_CHECK_EQ_INT(owned.fired, 6);
	loop_free(loop);
}

/* A timer that re-arms itself with delay 0 fires once per iteration, fds still run. */
static int spin_fired, spin_fd_calls;

static void spin_timer(struct loop *loop, struct loop_timer *t, void *ctx)
{
	(void)ctx;
	spin_fired++;
	loop_timer_rearm(loop, t, 0);
}

static void spin_fd(struct loop *loop, struct loop_fd *h, int fd, uint32_t events, void *ctx)
{
	(void)loop;
	(void)h;
	(void)fd;
	(void)ctx;
	if (events & LOOP_IN)
		spin_fd_calls++;
}

T_CASE(timer_rearm_zero_does_not_starve_fds)
{
	struct loop *loop;
	int p[2];

	T_CHECK_EQ_INT(loop_new(&loop), 0);
	T_CHECK_EQ_INT(make_pipe(p), 0);
	T_CHECK_EQ_INT(write(p[1], "x", 1), 1);
	T_CHECK_EQ_INT(loop_fd_add(loop, p[0], LOOP_IN, spin_fd, NULL, NULL), 0);
	T_CHECK_EQ_INT(loop_timer_add(loop, 0, spin_timer, NULL, NULL), 0);
	for (int i = 1; i <= 3; i++) {
		T_CHECK_EQ_INT(loop_run_once(loop, GUARD_NS), 2);
		T_CHECK_EQ_INT(spin_fired, i);
		T_CHECK_EQ_INT(spin_fd_calls, i);
	}
	loop_free(loop);
	close(p[0]);
	close(p[1]);
}

/* ---- rescheduling and tie order ---- */

static int resched_log[8], resched_n;

static void resched_fire(struct loop *loop, struct loop_timer *t, void *ctx)
{
	(void)loop;
	(void)t;
	resched_log[resched_n++] = (int)(intptr_t)ctx;
}

T_CASE(timer_reschedule_and_ties)
{
	struct loop *loop;
	struct loop_timer *t1, *t2, *t3;
	uint64_t now, past;

	T_CHECK_EQ_INT(loop_new(&loop), 0);
	now = loop_now(loop);
	past = now - LOOP_NS_PER_MS;
	T_CHECK_EQ_INT(loop_timer_add(loop, LOOP_NS_PER_S * 100, resched_fire, (void *)1, &t1), 0);
	T_CHECK_EQ_INT(loop_timer_add(loop, LOOP_NS_PER_S * 200, resched_fire, (void *)2, &t2), 0);
	T_CHECK_EQ_INT(loop_timer_add(loop, LOOP_NS_PER_S * 300, resched_fire, (void *)3, &t3), 0);
	/* move t2 into the past: only it fires */
	loop_timer_rearm_at(loop, t2, past);
	T_CHECK_EQ_INT(loop_timer_deadline(t2), past);
	T_CHECK_EQ_INT(loop_run_once(loop, 0), 1);
	T_CHECK_EQ_INT(resched_log[0], 2);
	/* move t3 later than t1: still armed, not fired */
	loop_timer_rearm(loop, t3, LOOP_NS_PER_S * 50);
	T_CHECK(loop_timer_armed(t3));
	/* equal deadlines fire in arming order: t3, t2, t1 */
	loop_timer_rearm_at(loop, t3, past);
	loop_timer_rearm_at(loop, t2, past);
	loop_timer_rearm_at(loop, t1, past);
	T_CHECK_EQ_INT(loop_run_once(loop, 0), 3);
	T_CHECK_EQ_INT(resched_log[1], 3);
	T_CHECK_EQ_INT(resched_log[2], 2);
	T_CHECK_EQ_INT(resched_log[3], 1);
	/* re-arming again changes the tie order: t1 first now */
	loop_timer_rearm_at(loop, t2, past);
	loop_timer_rearm_at(loop, t1, past);
	loop_timer_rearm_at(loop, t2, past);
	T_CHECK_EQ_INT(loop_run_once(loop, 0), 2);
	T_CHECK_EQ_INT(resched_log[4], 1);
	T_CHECK_EQ_INT(resched_log[5], 2);
	/* stop: armed -> idle, never fires; stop again is fine */
	loop_timer_rearm_at(loop, t3, past);
	loop_timer_stop(loop, t3);
	loop_timer_stop(loop, t3);
	T_CHECK(!loop_timer_armed(t3));
	T_CHECK_EQ_INT(loop_run_once(loop, 0), 0);
	T_CHECK_EQ_INT(resched_n, 6);
	T_CHECK_EQ_INT(loop_timer_count(loop), 3);
	/* a timer created idle fires only once armed */
	T_CHECK_EQ_INT(loop_timer_new(loop, resched_fire, (void *)4, &t1), 0);
	T_CHECK(!loop_timer_armed(t1));
	T_CHECK_EQ_INT(loop_run_once(loop, 0), 0);
	loop_timer_rearm_at(loop, t1, past);
	T_CHECK_EQ_INT(loop_run_once(loop, 0), 1);
	T_CHECK_EQ_INT(resched_log[6], 4);
	T_CHECK_EQ_INT(loop_timer_count(loop), 4);
	T_CHECK_EQ_INT(loop_timer_add(loop, 0, NULL, NULL, NULL), -EINVAL);
	T_CHECK_EQ_INT(loop_timer_new(loop, resched_fire, NULL, NULL), -EINVAL);
	loop_free(loop);
}

/* ---- fds ---- */

struct fdlog {
	int calls;
	uint32_t events;
	struct loop_fd *h;
	struct fdlog *peer;
	bool remove_self, remove_peer, drain;
};

static void fd_cb(struct loop *loop, struct loop_fd *h, int fd, uint32_t events, void *ctx)
{
	struct fdlog *l = ctx;
	char buf[16];

	T_CHECK_EQ_INT(loop_fd_get(h), fd);
	T_CHECK(h == l->h);
	l->calls++;
	l->events = events;
	if (l->drain && (events & LOOP_IN))
		while (read(fd, buf, sizeof(buf)) > 0)
			;
	if (l->remove_self) {
		loop_fd_remove(loop, h);
		l->h = NULL;
	}
	if (l->remove_peer && l->peer->h) {
		loop_fd_remove(loop, l->peer->h);
		l->peer->h = NULL;
	}
}

T_CASE(fd_pipe_level_and_edge)
{
	struct loop *loop;
	struct fdlog r = { 0 }, w = { 0 };
	int p[2];
	char c;

	T_CHECK_EQ_INT(loop_new(&loop), 0);
	T_CHECK_EQ_INT(make_pipe(p), 0);
	T_CHECK_EQ_INT(loop_fd_add(loop, p[0], LOOP_IN, fd_cb, &r, &r.h), 0);
	T_CHECK_EQ_INT(loop_fd_add(loop, p[0], LOOP_IN, fd_cb, &r, NULL), -EEXIST);
	T_CHECK_EQ_INT(loop_fd_add(loop, p[1], 1u << 20, fd_cb, &w, NULL), -EINVAL);
	T_CHECK_EQ_INT(loop_fd_add(loop, -1, LOOP_IN, fd_cb, &w, NULL), -EINVAL);
	T_CHECK_EQ_INT(loop_fd_add(loop, p[1], LOOP_OUT, fd_cb, &w, &w.h), 0);
	/* the write end is writable at once; the read end is quiet */
	T_CHECK_EQ_INT(loop_run_once(loop, 0), 1);
	T_CHECK_EQ_INT(w.calls, 1);
	T_CHECK(w.events & LOOP_OUT);
	T_CHECK_EQ_INT(loop_fd_modify(loop, w.h, 0), 0);
	T_CHECK_EQ_INT(loop_run_once(loop, 0), 0);
	/* level-triggered: reported again until read */
	T_CHECK_EQ_INT(write(p[1], "ab", 2), 2);
	T_CHECK_EQ_INT(loop_run_once(loop, GUARD_NS), 1);
	T_CHECK_EQ_INT(loop_run_once(loop, GUARD_NS), 1);
	T_CHECK_EQ_INT(r.calls, 2);
	T_CHECK_EQ_INT(r.events, LOOP_IN);
	/* edge-triggered: once per new write */
	T_CHECK_EQ_INT(loop_fd_modify(loop, r.h, LOOP_IN | LOOP_EDGE), 0);
	T_CHECK_EQ_INT(loop_run_once(loop, 0), 1); /* MOD re-arms the edge once */
	T_CHECK_EQ_INT(loop_run_once(loop, 0), 0);
	T_CHECK_EQ_INT(write(p[1], "c", 1), 1);
	T_CHECK_EQ_INT(loop_run_once(loop, GUARD_NS), 1);
	T_CHECK_EQ_INT(loop_run_once(loop, 0), 0);
	T_CHECK_EQ_INT(r.calls, 4);
	T_CHECK_EQ_INT(read(p[0], &c, 1), 1);
	/* hang-up is reported without asking */
	T_CHECK_EQ_INT(loop_fd_modify(loop, r.h, LOOP_IN), 0);
	r.drain = true;
	loop_fd_remove(loop, w.h);
	close(p[1]);
	T_CHECK_EQ_INT(loop_run_once(loop, GUARD_NS), 1);
	T_CHECK(r.events & LOOP_HUP);
	loop_fd_remove(loop, r.h);
	T_CHECK_EQ_INT(loop_fd_modify(loop, NULL, LOOP_IN), -EINVAL);
	close(p[0]);
	loop_free(loop);
}

T_CASE(fd_add_refuses_regular_file)
{
	struct loop *loop;
	struct fdlog r = { 0 };
	FILE *f = tmpfile();

	T_CHECK(f != NULL);
	T_CHECK_EQ_INT(loop_new(&loop), 0);
	T_CHECK_EQ_INT(loop_fd_add(loop, fileno(f), LOOP_IN, fd_cb, &r, NULL), -EPERM);
	loop_free(loop);
	fclose(f);
}

T_CASE(fd_remove_self_in_callback)
{
	struct loop *loop;
	struct fdlog r = { .remove_self = true };
	int sp[2];

	T_CHECK_EQ_INT(loop_new(&loop), 0);
	T_CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp), 0);
	T_CHECK_EQ_INT(write(sp[1], "x", 1), 1);
	T_CHECK_EQ_INT(loop_fd_add(loop, sp[0], LOOP_IN, fd_cb, &r, &r.h), 0);
	T_CHECK_EQ_INT(loop_run_once(loop, GUARD_NS), 1);
	T_CHECK(r.h == NULL);
	/* still readable, but gone from the loop */
	T_CHECK_EQ_INT(loop_run_once(loop, 0), 0);
	T_CHECK_EQ_INT(r.calls, 1);
	/* the fd may be registered again */
	r.remove_self = false;
	T_CHECK_EQ_INT(loop_fd_add(loop, sp[0], LOOP_IN, fd_cb, &r, &r.h), 0);
	T_CHECK_EQ_INT(loop_run_once(loop, 0), 1);
	loop_free(loop);
	close(sp[0]);
	close(sp[1]);
}

T_CASE(fd_remove_other_in_same_batch)
{
	struct loop *loop;
	struct fdlog a = { .remove_peer = true }, b = { .remove_peer = true };
	int sa[2], sb[2];

	a.peer = &b;
	b.peer = &a;
	T_CHECK_EQ_INT(loop_new(&loop), 0);
	T_CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sa), 0);
	T_CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sb), 0);
	T_CHECK_EQ_INT(loop_fd_add(loop, sa[0], LOOP_IN, fd_cb, &a, &a.h), 0);
	T_CHECK_EQ_INT(loop_fd_add(loop, sb[0], LOOP_IN, fd_cb, &b, &b.h), 0);
	T_CHECK_EQ_INT(write(sa[1], "a", 1), 1);
	T_CHECK_EQ_INT(write(sb[1], "b", 1), 1);
	/* both are ready in one batch; whichever runs first removes the other */
	T_CHECK_EQ_INT(loop_run_once(loop, GUARD_NS), 1);
	T_CHECK_EQ_INT(a.calls + b.calls, 1);
	T_CHECK((a.h == NULL) != (b.h == NULL));
	loop_free(loop);
	close(sa[0]);
	close(sa[1]);
	close(sb[0]);
	close(sb[1]);
}

/* Remove another fd and register the same fd again within one batch: the
 * event that is still in the batch belongs to the old handle and is dropped. */
struct replace_ctx {
	struct fdlog *victim;
	int victim_fd;
	struct fdlog *fresh;
};

static void replace_cb(struct loop *loop, struct loop_fd *h, int fd, uint32_t events, void *ctx)
{
	struct replace_ctx *r = ctx;

	(void)h;
	(void)fd;
	(void)events;
	if (!r->victim->h)
		return;
	loop_fd_remove(loop, r->victim->h);
	r->victim->h = NULL;
	T_CHECK_EQ_INT(loop_fd_add(loop, r->victim_fd, LOOP_IN, fd_cb, r->fresh, &r->fresh->h), 0);
}

T_CASE(fd_remove_and_readd_in_same_batch)
{
	struct loop *loop;
	struct fdlog victim = { 0 }, fresh = { 0 };
	struct replace_ctx rc = { .victim = &victim, .fresh = &fresh };
	struct loop_fd *first;
	int sa[2], sb[2];

	T_CHECK_EQ_INT(loop_new(&loop), 0);
	T_CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sa), 0);
	T_CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sb), 0);
	rc.victim_fd = sb[0];
	/* epoll reports in readiness order: make the replacer's fd ready first */
	T_CHECK_EQ_INT(loop_fd_add(loop, sa[0], LOOP_IN, replace_cb, &rc, &first), 0);
	T_CHECK_EQ_INT(loop_fd_add(loop, sb[0], LOOP_IN, fd_cb, &victim, &victim.h), 0);
	T_CHECK_EQ_INT(write(sa[1], "a", 1), 1);
	T_CHECK_EQ_INT(write(sb[1], "b", 1), 1);
	T_CHECK_EQ_INT(loop_run_once(loop, GUARD_NS), 1);
	T_CHECK_EQ_INT(victim.calls, 0);
	T_CHECK_EQ_INT(fresh.calls, 0);
	T_CHECK(fresh.h != NULL);
	/* the next iteration reports it to the new handle */
	loop_fd_remove(loop, first);
	T_CHECK_EQ_INT(loop_run_once(loop, GUARD_NS), 1);
	T_CHECK_EQ_INT(fresh.calls, 1);
	loop_free(loop);
	close(sa[0]);
	close(sa[1]);
	close(sb[0]);
	close(sb[1]);
}

/* ---- signals ---- */

static int sig_seen[NSIG];

static void sig_cb(struct loop *loop, int signo, void *ctx)
{
	(void)loop;
	(void)ctx;
	sig_seen[signo]++;
}

static bool blocked(int signo)
{
	sigset_t cur;

	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	return sigismember(&cur, signo) == 1;
}

T_CASE(signal_delivery)
{
	struct loop *loop;

	T_CHECK_EQ_INT(loop_new(&loop), 0);
	T_CHECK(!blocked(SIGUSR1));
	T_CHECK_EQ_INT(loop_signal_add(loop, SIGUSR1, sig_cb, NULL), 0);
	T_CHECK_EQ_INT(loop_signal_add(loop, SIGUSR1, sig_cb, NULL), -EEXIST);
	T_CHECK_EQ_INT(loop_signal_add(loop, SIGKILL, sig_cb, NULL), -EINVAL);
	T_CHECK_EQ_INT(loop_signal_add(loop, 0, sig_cb, NULL), -EINVAL);
	T_CHECK_EQ_INT(loop_signal_add(loop, SIGHUP, sig_cb, NULL), 0);
	T_CHECK(blocked(SIGUSR1));
	T_CHECK_EQ_INT(raise(SIGUSR1), 0);
	T_CHECK_EQ_INT(loop_run_once(loop, GUARD_NS), 1);
	T_CHECK_EQ_INT(sig_seen[SIGUSR1], 1);
	T_CHECK_EQ_INT(kill(getpid(), SIGHUP), 0);
	T_CHECK_EQ_INT(loop_run_once(loop, GUARD_NS), 1);
	T_CHECK_EQ_INT(sig_seen[SIGHUP], 1);
	/* removal discards a pending instance and unblocks again */
	T_CHECK_EQ_INT(raise(SIGUSR1), 0);
	T_CHECK_EQ_INT(loop_signal_remove(loop, SIGUSR1), 0);
	T_CHECK_EQ_INT(loop_signal_remove(loop, SIGUSR1), -ENOENT);
	T_CHECK(!blocked(SIGUSR1));
	T_CHECK_EQ_INT(loop_run_once(loop, 0), 0);
	T_CHECK_EQ_INT(sig_seen[SIGUSR1], 1);
	loop_free(loop); /* unblocks SIGHUP */
	T_CHECK(!blocked(SIGHUP));
}

T_CASE(signal_sigchld)
{
	struct loop *loop;
	pid_t pid;
	int status = -1, go[2];
	char c;

	/* the child owns no loop (so leak checkers see nothing in it); it
	 * exits once the parent's loop is ready for SIGCHLD */
	T_CHECK_EQ_INT(pipe(go), 0);
	pid = fork();
	T_CHECK(pid >= 0);
	if (pid == 0) {
		close(go[1]);
		_exit(read(go[0], &c, 1) == 1 ? 7 : 1);
	}
	close(go[0]);
	T_CHECK_EQ_INT(loop_new(&loop), 0);
	T_CHECK_EQ_INT(loop_signal_add(loop, SIGCHLD, sig_cb, NULL), 0);
	T_CHECK_EQ_INT(write(go[1], "g", 1), 1);
	close(go[1]);
	while (sig_seen[SIGCHLD] == 0)
		T_CHECK(loop_run_once(loop, GUARD_NS) > 0);
	T_CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
	T_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7);
	loop_free(loop);
}

/* ---- loop_stop, deferred calls, nesting ---- */

static void stop_timer(struct loop *loop, struct loop_timer *t, void *ctx)
{
	int *n = ctx;

	(void)t;
	if (++*n == 3)
		loop_stop(loop);
	else
		loop_timer_add(loop, LOOP_NS_PER_MS, stop_timer, ctx, NULL);
}

static void count_defer(struct loop *loop, void *ctx)
{
	(void)loop;
	++*(int *)ctx;
}

T_CASE(loop_run_until_stop)
{
	struct loop *loop;
	int n = 0, d = 0;

	T_CHECK_EQ_INT(loop_new(&loop), 0);
	T_CHECK_EQ_INT(loop_timer_add(loop, LOOP_NS_PER_MS, stop_timer, &n, NULL), 0);
	T_CHECK_EQ_INT(loop_run(loop), 0);
	T_CHECK_EQ_INT(n, 3);
	/* a stop asked between runs ends the next run after one iteration,
	 * whose deferred calls still run */
	T_CHECK_EQ_INT(loop_defer(loop, count_defer, &d), 0);
	loop_stop(loop);
	T_CHECK_EQ_INT(loop_run(loop), 0);
	T_CHECK_EQ_INT(d, 1);
	loop_free(loop);
}

struct defer_ctx {
	int log[16];
	int n;
	int again;
};

static void defer_log(struct loop *loop, void *ctx)
{
	struct defer_ctx *d = ctx;

	d->log[d->n++] = 100;
	if (d->again-- > 0)
		T_CHECK_EQ_INT(loop_defer(loop, defer_log, d), 0); /* runs next iteration */
}

static void defer_log2(struct loop *loop, void *ctx)
{
	struct defer_ctx *d = ctx;

	(void)loop;
	d->log[d->n++] = 200;
}

/* cancels a call queued after it in the same deferred phase */
static void defer_killer(struct loop *loop, void *ctx)
{
	struct defer_ctx *d = ctx;

	d->log[d->n++] = 300;
	T_CHECK_EQ_INT(loop_defer_cancel(loop, defer_log2, d), 1);
}

static void defer_from_timer(struct loop *loop, struct loop_timer *t, void *ctx)
{
	struct defer_ctx *d = ctx;

	(void)t;
	d->log[d->n++] = 1;
	T_CHECK_EQ_INT(loop_defer(loop, defer_log, d), 0);
	T_CHECK_EQ_INT(loop_defer(loop, defer_log2, d), 0);
	T_CHECK_EQ_INT(loop_defer(loop, defer_log2, d), 0);
	/* cancelled before it runs */
	T_CHECK_EQ_INT(loop_defer_cancel(loop, defer_log2, d), 2);
	T_CHECK_EQ_INT(loop_defer(loop, defer_log2, d), 0);
	T_CHECK_EQ_INT(loop_defer(loop, defer_killer, d), 0);
	T_CHECK_EQ_INT(loop_defer(loop, defer_log2, d), 0);
}

T_CASE(defer_runs_at_end_of_iteration)
{
	struct loop *loop;
	struct defer_ctx d = { .again = 1 };

	T_CHECK_EQ_INT(loop_new(&loop), 0);
	T_CHECK_EQ_INT(loop_timer_add(loop, 0, defer_from_timer, &d, NULL), 0);
	T_CHECK_EQ_INT(loop_run_once(loop, GUARD_NS), 4);
	T_CHECK_EQ_INT(d.n, 4);
	T_CHECK_EQ_INT(d.log[0], 1);
	T_CHECK_EQ_INT(d.log[1], 100);
	T_CHECK_EQ_INT(d.log[2], 200);
	T_CHECK_EQ_INT(d.log[3], 300);
	/* the call queued by a deferred call: next iteration, without blocking
	 * (a blocking wait would run out at the guard and return 0) */
	T_CHECK_EQ_INT(loop_run_once(loop, GUARD_NS), 1);
	T_CHECK_EQ_INT(d.n, 5);
	T_CHECK_EQ_INT(d.log[4], 100);
	T_CHECK_EQ_INT(loop_run_once(loop, 0), 0);
	T_CHECK_EQ_INT(loop_defer(loop, NULL, NULL), -EINVAL);
	loop_free(loop);
}

static int nested_rc = 1;

static void nested_cb(struct loop *loop, struct loop_timer *t, void *ctx)
{
	(void)t;
	(void)ctx;
	nested_rc = loop_run_once(loop, 0);
	if (nested_rc == -EBUSY)
		nested_rc = loop_run(loop);
}

T_CASE(no_nested_runs)
{
	struct loop *loop;

	T_CHECK_EQ_INT(loop_new(&loop), 0);
	T_CHECK_EQ_INT(loop_timer_add(loop, 0, nested_cb, NULL, NULL), 0);
	T_CHECK_EQ_INT(loop_run_once(loop, GUARD_NS), 1);
	T_CHECK_EQ_INT(nested_rc, -EBUSY);
	loop_free(loop);
}

T_CASE(clock_and_wait_limit)
{
	struct loop *loop;
	uint64_t a, b;

	T_CHECK_EQ_INT(loop_new(&loop), 0);
	a = loop_now(loop);
	T_CHECK_EQ_INT(loop_run_once(loop, LOOP_NS_PER_MS), 0);
	b = loop_now(loop);
	T_CHECK(b >= a + LOOP_NS_PER_MS); /* the wait was not cut short */
	T_CHECK(loop_clock_ns() >= b);
	loop_free(loop);
}

/* ---- loop_free with everything live ---- */

static void never(struct loop *loop, struct loop_timer *t, void *ctx)
{
	(void)loop;
	(void)t;
	(void)ctx;
}

static void never_defer(struct loop *loop, void *ctx)
{
	(void)loop;
	(void)ctx;
}

T_CASE(free_releases_everything)
{
	struct loop *loop;
	struct loop_timer *owned, *idle;
	struct fdlog r = { 0 };
	int p[2];

	T_CHECK_EQ_INT(loop_new(&loop), 0);
	T_CHECK_EQ_INT(make_pipe(p), 0);
	T_CHECK_EQ_INT(loop_fd_add(loop, p[0], LOOP_IN, fd_cb, &r, &r.h), 0);
	T_CHECK_EQ_INT(loop_fd_add(loop, p[1], LOOP_OUT, fd_cb, &r, NULL), 0);
	for (int i = 0; i < 1000; i++)
		T_CHECK_EQ_INT(loop_timer_add(loop, LOOP_NS_PER_S * 100 + (uint64_t)i, never, NULL, NULL), 0);
	T_CHECK_EQ_INT(loop_timer_add(loop, LOOP_NS_PER_S * 100, never, NULL, &owned), 0);
	T_CHECK_EQ_INT(loop_timer_add(loop, LOOP_NS_PER_S * 100, never, NULL, &idle), 0);
	loop_timer_stop(loop, idle);
	T_CHECK_EQ_INT(loop_signal_add(loop, SIGUSR2, sig_cb, NULL), 0);
	T_CHECK_EQ_INT(raise(SIGUSR2), 0); /* pending, discarded by loop_free */
	T_CHECK_EQ_INT(loop_defer(loop, never_defer, NULL), 0);
	T_CHECK_EQ_INT(loop_timer_count(loop), 1002);
	loop_free(loop);
	T_CHECK(!blocked(SIGUSR2));
	T_CHECK_EQ_INT(sig_seen[SIGUSR2], 0);
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	T_RUN(timers_many_fire_once_in_order);
	T_RUN(timers_100k_rearm_cancel);
	T_RUN(timers_random_ops_match_model);
	T_RUN(timer_cancel_from_callback);
	T_RUN(timer_add_and_cancel_others_in_pass);
	T_RUN(timer_detached_stops_itself);
	T_RUN(timer_rearm_itself_periodically);
	T_RUN(timer_rearm_zero_does_not_starve_fds);
	T_RUN(timer_reschedule_and_ties);
	T_RUN(fd_pipe_level_and_edge);
	T_RUN(fd_add_refuses_regular_file);
	T_RUN(fd_remove_self_in_callback);
	T_RUN(fd_remove_other_in_same_batch);
	T_RUN(fd_remove_and_readd_in_same_batch);
	T_RUN(signal_delivery);
	T_RUN(signal_sigchld);
	T_RUN(loop_run_until_stop);
	T_RUN(defer_runs_at_end_of_iteration);
	T_RUN(no_nested_runs);
	T_RUN(clock_and_wait_limit);
	T_RUN(free_releases_everything);
	return t_done();
}
