/*
 * loop.c - the event loop: epoll, a timer heap, signalfd, deferred calls
 * (see loop.h for the contract).
 *
 * Lifetimes.  A handle that is removed or cancelled while an iteration runs
 * is unlinked at once (no callback of it runs again, the heap no longer holds
 * it) but its memory goes on a dead list that is emptied at the end of the
 * iteration: the epoll batch may still point at a dead fd handle, and a timer
 * may cancel itself while the pass still looks at it.  Outside an iteration
 * memory is released at once.
 *
 * Timers sit in a binary min-heap ordered by (deadline, seq), where seq is a
 * counter taken at every arming, so equal deadlines fire in arming order.
 * Each timer knows its slot, so cancel and re-arm are O(log n) and need no
 * search.  The heap array always has room for every live timer (it grows
 * when a timer is allocated), so arming never allocates or fails.  A pass
 * fires only timers armed before it began (seq below the value at its
 * start); it stops at the first later one, which then fires in the next
 * iteration after the fds had their turn.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "buddyfs/loop.h"

#define BATCH_EVENTS 128     /* epoll events taken per iteration */
#define SIGINFO_BATCH 8      /* signalfd records read per read(2) */
#define NOT_ARMED SIZE_MAX   /* loop_timer.slot of a timer outside the heap */
#define REPORT_BITS (LOOP_IN | LOOP_OUT | LOOP_RDHUP | LOOP_PRI | LOOP_ERR | LOOP_HUP)
#define REQUEST_BITS (REPORT_BITS | LOOP_EDGE)

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
#define HAVE_EPOLL_PWAIT2 1
#else
#define HAVE_EPOLL_PWAIT2 0
#endif

struct loop_fd {
	struct loop_fd *prev, *next; /* live list; dead list uses next */
	loop_fd_fn *cb;
	void *ctx;
	int fd;
	uint32_t events;
	bool dead;
};

struct loop_timer {
	uint64_t deadline;
	uint64_t seq;
	loop_timer_fn *cb;
	void *ctx;
	size_t slot;                    /* heap index, or NOT_ARMED */
	struct loop_timer *prev, *next; /* live list; dead list uses next */
	bool detached;
	bool firing;
	bool dead;
};

struct defer_call {
	loop_defer_fn *cb; /* NULL once cancelled */
	void *ctx;
};

struct defer_list {
	struct defer_call *v;
	size_t len, cap;
};

struct signal_slot {
	loop_signal_fn *cb;
	void *ctx;
	bool we_blocked; /* unblock it again on removal */
};

struct loop {
	int epfd;
	uint64_t now;
	bool stop;
	bool in_iteration;
	bool use_pwait2;
	unsigned calls; /* callbacks called in this iteration */

	struct loop_fd *fds, *dead_fds;

	struct loop_timer **heap;
	size_t heap_len, heap_cap;
	struct loop_timer *timers, *dead_timers;
	size_t timer_count;
	uint64_t timer_seq;

	struct defer_list defer_next; /* queued for the next deferred phase */
	struct defer_list defer_run;  /* the phase now running */
	size_t defer_pos;

	int sfd;
	struct loop_fd *sfd_h;
	sigset_t sigmask;
	struct signal_slot sig[NSIG];

	struct epoll_event events[BATCH_EVENTS];
};

uint64_t loop_clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * LOOP_NS_PER_S + (uint64_t)ts.tv_nsec;
}

uint64_t loop_now(const struct loop *loop)
{
	return loop->in_iteration ? loop->now : loop_clock_ns();
}

/* deadline_after - @now + @delay, saturating. */
static uint64_t deadline_after(uint64_t now, uint64_t delay)
{
	return delay > UINT64_MAX - now ? UINT64_MAX : now + delay;
}

/* ---- fd handles ---- */

/* The LOOP_* event bits are the EPOLL* values; no translation needed. */
_Static_assert(LOOP_IN == EPOLLIN && LOOP_PRI == EPOLLPRI && LOOP_OUT == EPOLLOUT &&
		       LOOP_ERR == EPOLLERR && LOOP_HUP == EPOLLHUP && LOOP_RDHUP == EPOLLRDHUP &&
		       LOOP_EDGE == (uint32_t)EPOLLET,
	       "LOOP_* event bits must equal EPOLL* bits");

int loop_fd_add(struct loop *loop, int fd, uint32_t events, loop_fd_fn *cb, void *ctx,
		struct loop_fd **out)
{
	struct epoll_event ev;
	struct loop_fd *h;

	if (out)
		*out = NULL;
	if (fd < 0 || !cb || (events & ~(uint32_t)REQUEST_BITS))
		return -EINVAL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->cb = cb;
	h->ctx = ctx;
	h->fd = fd;
	h->events = events;
	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.ptr = h;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = -errno;

		free(h);
		return err;
	}
	h->next = loop->fds;
	if (loop->fds)
		loop->fds->prev = h;
	loop->fds = h;
	if (out)
		*out = h;
	return 0;
}

int loop_fd_modify(struct loop *loop, struct loop_fd *h, uint32_t events)
{
	struct epoll_event ev;

	if (!h || h->dead || (events & ~(uint32_t)REQUEST_BITS))
		return -EINVAL;
	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.ptr = h;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, h->fd, &ev) < 0)
		return -errno;
	h->events = events;
	return 0;
}

void loop_fd_remove(struct loop *loop, struct loop_fd *h)
{
	if (!h || h->dead)
		return;
	/* Fails only if the fd was closed already (then epoll dropped it). */
	(void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, h->fd, NULL);
	if (h->prev)
		h->prev->next = h->next;
	else
		loop->fds = h->next;
	if (h->next)
		h->next->prev = h->prev;
	h->dead = true;
	h->prev = NULL;
	if (loop->in_iteration) {
		h->next = loop->dead_fds;
		loop->dead_fds = h;
	} else {
		free(h);
	}
}

int loop_fd_get(const struct loop_fd *h)
{
	return h->fd;
}

static void dispatch_fds(struct loop *loop, int n)
{
	for (int i = 0; i < n; i++) {
		struct loop_fd *h = loop->events[i].data.ptr;

		if (h->dead)
			continue; /* removed earlier in this batch */
		if (h != loop->sfd_h)
			loop->calls++; /* signals count one per signal callback */
		h->cb(loop, h, h->fd, loop->events[i].events & REPORT_BITS, h->ctx);
	}
}

/* ---- timer heap ---- */

static bool timer_before(const struct loop_timer *a, const struct loop_timer *b)
{
	if (a->deadline != b->deadline)
		return a->deadline < b->deadline;
	return a->seq < b->seq;
}

static void heap_set(struct loop *loop, size_t i, struct loop_timer *t)
{
	loop->heap[i] = t;
	t->slot = i;
}

static void sift_up(struct loop *loop, size_t i)
{
	struct loop_timer *t = loop->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!timer_before(t, loop->heap[parent]))
			break;
		heap_set(loop, i, loop->heap[parent]);
		i = parent;
	}
	heap_set(loop, i, t);
}

static void sift_down(struct loop *loop, size_t i)
{
	struct loop_timer *t = loop->heap[i];
	size_t n = loop->heap_len;

	for (;;) {
		size_t child = 2 * i + 1;

		if (child >= n)
			break;
		if (child + 1 < n && timer_before(loop->heap[child + 1], loop->heap[child]))
			child++;
		if (!timer_before(loop->heap[child], t))
			break;
		heap_set(loop, i, loop->heap[child]);
		i = child;
	}
	heap_set(loop, i, t);
}

static void heap_remove(struct loop *loop, struct loop_timer *t)
{
	size_t i = t->slot;
	struct loop_timer *last;

	if (i == NOT_ARMED)
		return;
	t->slot = NOT_ARMED;
	last = loop->heap[--loop->heap_len];
	if (last == t)
		return;
	heap_set(loop, i, last);
	if (i > 0 && timer_before(last, loop->heap[(i - 1) / 2]))
		sift_up(loop, i);
	else
		sift_down(loop, i);
}

/* arm - (re)insert @t with a fresh seq; the heap always has room. */
static void arm(struct loop *loop, struct loop_timer *t, uint64_t deadline)
{
	heap_remove(loop, t);
	t->deadline = deadline;
	t->seq = loop->timer_seq++;
	t->slot = loop->heap_len++;
	loop->heap[t->slot] = t;
	sift_up(loop, t->slot);
}

static void timer_release(struct loop *loop, struct loop_timer *t)
{
	heap_remove(loop, t);
	if (t->prev)
		t->prev->next = t->next;
	else
		loop->timers = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->dead = true;
	t->prev = NULL;
	loop->timer_count--;
	if (loop->in_iteration) {
		t->next = loop->dead_timers;
		loop->dead_timers = t;
	} else {
		free(t);
	}
}

/* timer_alloc - a new idle timer; the heap grows here, never when arming. */
static int timer_alloc(struct loop *loop, loop_timer_fn *cb, void *ctx, bool detached,
		       struct loop_timer **out)
{
	struct loop_timer *t;

	if (!cb)
		return -EINVAL;
	if (loop->timer_count >= loop->heap_cap) {
		size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
		struct loop_timer **heap;

		if (cap > SIZE_MAX / sizeof(*heap))
			return -ENOMEM;
		heap = realloc(loop->heap, cap * sizeof(*heap));
		if (!heap)
			return -ENOMEM;
		loop->heap = heap;
		loop->heap_cap = cap;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->cb = cb;
	t->ctx = ctx;
	t->slot = NOT_ARMED;
	t->detached = detached;
	t->next = loop->timers;
	if (loop->timers)
		loop->timers->prev = t;
	loop->timers = t;
	loop->timer_count++;
	*out = t;
	return 0;
}

int loop_timer_new(struct loop *loop, loop_timer_fn *cb, void *ctx, struct loop_timer **out)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	return timer_alloc(loop, cb, ctx, false, out);
}

int loop_timer_add_at(struct loop *loop, uint64_t deadline_ns, loop_timer_fn *cb, void *ctx,
		      struct loop_timer **out)
{
	struct loop_timer *t;
	int err;

	if (out)
		*out = NULL;
	err = timer_alloc(loop, cb, ctx, out == NULL, &t);
	if (err)
		return err;
	arm(loop, t, deadline_ns);
	if (out)
		*out = t;
	return 0;
}

int loop_timer_add(struct loop *loop, uint64_t delay_ns, loop_timer_fn *cb, void *ctx,
		   struct loop_timer **out)
{
	return loop_timer_add_at(loop, deadline_after(loop_now(loop), delay_ns), cb, ctx, out);
}

void loop_timer_rearm_at(struct loop *loop, struct loop_timer *t, uint64_t deadline_ns)
{
	if (t && !t->dead)
		arm(loop, t, deadline_ns);
}

void loop_timer_rearm(struct loop *loop, struct loop_timer *t, uint64_t delay_ns)
{
	loop_timer_rearm_at(loop, t, deadline_after(loop_now(loop), delay_ns));
}

void loop_timer_stop(struct loop *loop, struct loop_timer *t)
{
	if (!t || t->dead)
		return;
	heap_remove(loop, t);
	if (t->detached && !t->firing)
		timer_release(loop, t);
}

void loop_timer_cancel(struct loop *loop, struct loop_timer *t)
{
	if (t && !t->dead)
		timer_release(loop, t);
}

bool loop_timer_armed(const struct loop_timer *t)
{
	return t->slot != NOT_ARMED;
}

uint64_t loop_timer_deadline(const struct loop_timer *t)
{
	return t->deadline;
}

size_t loop_timer_count(const struct loop *loop)
{
	return loop->timer_count;
}

/* fire_timers - one pass over the timers due at loop->now. */
static void fire_timers(struct loop *loop)
{
	uint64_t seq_limit = loop->timer_seq;

	while (loop->heap_len > 0) {
		struct loop_timer *t = loop->heap[0];

		if (t->deadline > loop->now || t->seq >= seq_limit)
			break;
		heap_remove(loop, t);
		t->firing = true;
		loop->calls++;
		t->cb(loop, t, t->ctx);
		if (t->dead)
			continue; /* cancelled by its callback; freed after the pass */
		t->firing = false;
		if (t->detached && t->slot == NOT_ARMED)
			timer_release(loop, t);
	}
}

/* ---- deferred calls ---- */

int loop_defer(struct loop *loop, loop_defer_fn *cb, void *ctx)
{
	struct defer_list *l = &loop->defer_next;

	if (!cb)
		return -EINVAL;
	if (l->len == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct defer_call *v;

		if (cap > SIZE_MAX / sizeof(*v))
			return -ENOMEM;
		v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->len].cb = cb;
	l->v[l->len].ctx = ctx;
	l->len++;
	return 0;
}

size_t loop_defer_cancel(struct loop *loop, loop_defer_fn *cb, void *ctx)
{
	struct defer_list *l = &loop->defer_next;
	size_t dropped = 0, keep = 0;

	for (size_t i = loop->defer_pos; i < loop->defer_run.len; i++) {
		struct defer_call *c = &loop->defer_run.v[i];

		if (c->cb == cb && c->ctx == ctx) {
			c->cb = NULL;
			dropped++;
		}
	}
	for (size_t i = 0; i < l->len; i++) {
		if (l->v[i].cb == cb && l->v[i].ctx == ctx)
			dropped++;
		else
			l->v[keep++] = l->v[i];
	}
	l->len = keep;
	return dropped;
}

/* run_deferred - the calls queued so far; new ones wait for the next phase. */
static void run_deferred(struct loop *loop)
{
	struct defer_list tmp = loop->defer_run;

	loop->defer_run = loop->defer_next;
	loop->defer_next = tmp;
	loop->defer_next.len = 0;
	for (loop->defer_pos = 0; loop->defer_pos < loop->defer_run.len;) {
		struct defer_call c = loop->defer_run.v[loop->defer_pos++];

		if (c.cb) {
			loop->calls++;
			c.cb(loop, c.ctx);
		}
	}
	loop->defer_run.len = 0;
	loop->defer_pos = 0;
}

/* ---- signals ---- */

static void signals_ready(struct loop *loop, struct loop_fd *h, int fd, uint32_t events, void *ctx)
{
	struct signalfd_siginfo si[SIGINFO_BATCH];

	(void)h;
	(void)events;
	(void)ctx;
	for (;;) {
		ssize_t n = read(fd, si, sizeof(si));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* EAGAIN: all read */
		for (size_t i = 0; i < (size_t)n / sizeof(si[0]); i++) {
			int signo = (int)si[i].ssi_signo;

			/* The slot may have been removed by an earlier callback. */
			if (signo > 0 && signo < NSIG && loop->sig[signo].cb) {
				loop->calls++;
				loop->sig[signo].cb(loop, signo, loop->sig[signo].ctx);
			}
		}
		if ((size_t)n < sizeof(si))
			return;
	}
}

/* discard_pending - consume the pending instances of the blocked @signo. */
static void discard_pending(int signo)
{
	static const struct timespec zero;
	sigset_t one;

	sigemptyset(&one);
	sigaddset(&one, signo);
	while (sigtimedwait(&one, NULL, &zero) == signo)
		;
}

int loop_signal_add(struct loop *loop, int signo, loop_signal_fn *cb, void *ctx)
{
	sigset_t one, old, mask;
	bool was_blocked;
	int err;

	if (signo <= 0 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP || !cb)
		return -EINVAL;
	if (loop->sig[signo].cb)
		return -EEXIST;
	sigemptyset(&one);
	sigaddset(&one, signo);
	err = pthread_sigmask(SIG_BLOCK, &one, &old);
	if (err)
		return -err;
	was_blocked = sigismember(&old, signo) == 1;
	mask = loop->sigmask;
	sigaddset(&mask, signo);
	if (loop->sfd < 0) {
		loop->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
		if (loop->sfd < 0) {
			err = -errno;
			goto fail;
		}
		err = loop_fd_add(loop, loop->sfd, LOOP_IN, signals_ready, NULL, &loop->sfd_h);
		if (err) {
			close(loop->sfd);
			loop->sfd = -1;
			goto fail;
		}
	} else if (signalfd(loop->sfd, &mask, 0) < 0) {
		err = -errno;
		goto fail;
	}
	loop->sigmask = mask;
	loop->sig[signo].cb = cb;
	loop->sig[signo].ctx = ctx;
	loop->sig[signo].we_blocked = !was_blocked;
	return 0;
fail:
	if (!was_blocked)
		pthread_sigmask(SIG_UNBLOCK, &one, NULL);
	return err;
}

int loop_signal_remove(struct loop *loop, int signo)
{
	sigset_t one;

	if (signo <= 0 || signo >= NSIG || !loop->sig[signo].cb)
		return -ENOENT;
	sigdelset(&loop->sigmask, signo);
	/* Cannot fail with a valid fd and mask; the slot check covers the rest. */
	(void)signalfd(loop->sfd, &loop->sigmask, 0);
	discard_pending(signo);
	if (loop->sig[signo].we_blocked) {
		sigemptyset(&one);
		sigaddset(&one, signo);
		pthread_sigmask(SIG_UNBLOCK, &one, NULL);
	}
	memset(&loop->sig[signo], 0, sizeof(loop->sig[signo]));
	return 0;
}

/* ---- the loop ---- */

int loop_new(struct loop **out)
{
	struct loop *loop;

	*out = NULL;
	loop = calloc(1, sizeof(*loop));
	if (!loop)
		return -ENOMEM;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		int err = -errno;

		free(loop);
		return err;
	}
	loop->sfd = -1;
	sigemptyset(&loop->sigmask);
	loop->use_pwait2 = HAVE_EPOLL_PWAIT2;
	*out = loop;
	return 0;
}

static void free_dead(struct loop *loop)
{
	while (loop->dead_fds) {
		struct loop_fd *h = loop->dead_fds;

		loop->dead_fds = h->next;
		free(h);
	}
	while (loop->dead_timers) {
		struct loop_timer *t = loop->dead_timers;

		loop->dead_timers = t->next;
		free(t);
	}
}

void loop_free(struct loop *loop)
{
	if (!loop)
		return;
	for (int s = 1; s < NSIG; s++)
		if (loop->sig[s].cb)
			loop_signal_remove(loop, s);
	loop->in_iteration = false;
	free_dead(loop);
	while (loop->fds)
		loop_fd_remove(loop, loop->fds);
	while (loop->timers)
		timer_release(loop, loop->timers);
	if (loop->sfd >= 0)
		close(loop->sfd);
	close(loop->epfd);
	free(loop->heap);
	free(loop->defer_next.v);
	free(loop->defer_run.v);
	free(loop);
}

void loop_stop(struct loop *loop)
{
	loop->stop = true;
}

/* wait_timeout_ns - how long the next wait may block. */
static uint64_t wait_timeout_ns(const struct loop *loop, uint64_t max_wait_ns)
{
	uint64_t wait = max_wait_ns;

	if (loop->defer_next.len > 0)
		return 0;
	if (loop->heap_len > 0) {
		uint64_t due = loop->heap[0]->deadline;
		uint64_t left = due > loop->now ? due - loop->now : 0;

		if (left < wait)
			wait = left;
	}
	return wait;
}

/* wait_events - epoll with a ns timeout; returns events or -errno (0 on EINTR). */
static int wait_events(struct loop *loop, uint64_t timeout_ns)
{
	int n;

#if HAVE_EPOLL_PWAIT2
	if (loop->use_pwait2) {
		struct timespec ts;

		if (timeout_ns != LOOP_WAIT_FOREVER) {
			ts.tv_sec = (time_t)(timeout_ns / LOOP_NS_PER_S);
			ts.tv_nsec = (long)(timeout_ns % LOOP_NS_PER_S);
		}
		n = epoll_pwait2(loop->epfd, loop->events, BATCH_EVENTS,
				 timeout_ns == LOOP_WAIT_FOREVER ? NULL : &ts, NULL);
		if (n >= 0)
			return n;
		if (errno != ENOSYS)
			return errno == EINTR ? 0 : -errno;
		loop->use_pwait2 = false;
	}
#endif
	{
		int ms;

		if (timeout_ns == LOOP_WAIT_FOREVER)
			ms = -1;
		else if (timeout_ns / LOOP_NS_PER_MS >= (uint64_t)INT_MAX)
			ms = INT_MAX;
		else /* round up: waking early would only spin */
			ms = (int)((timeout_ns + LOOP_NS_PER_MS - 1) / LOOP_NS_PER_MS);
		n = epoll_wait(loop->epfd, loop->events, BATCH_EVENTS, ms);
	}
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	return n;
}

int loop_run_once(struct loop *loop, uint64_t max_wait_ns)
{
	int n;

	if (loop->in_iteration)
		return -EBUSY;
	loop->now = loop_clock_ns();
	n = wait_events(loop, wait_timeout_ns(loop, max_wait_ns));
	if (n < 0)
		return n;
	loop->in_iteration = true;
	loop->calls = 0;
	loop->now = loop_clock_ns();
	dispatch_fds(loop, n);
	fire_timers(loop);
	run_deferred(loop);
	free_dead(loop);
	loop->in_iteration = false;
	return loop->calls > INT_MAX ? INT_MAX : (int)loop->calls;
}

int loop_run(struct loop *loop)
{
	if (loop->in_iteration)
		return -EBUSY;
	for (;;) {
		int n = loop_run_once(loop, LOOP_WAIT_FOREVER);

		if (n < 0)
			return n;
		if (loop->stop) {
			loop->stop = false;
			return 0;
		}
	}
}
