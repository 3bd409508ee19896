/*
 * loop_timers.c - what timers and fd dispatch cost in the event loop.
 *
 *   loop_timers [N]     (default N = 100000 timers)
 *
 * Prints ns per operation for: adding N timers, re-arming each of them
 * (the RTMFP retransmission pattern: every ack moves the timer), cancelling
 * half, firing the other half in one pass, and one loop iteration with one
 * ready fd (an eventfd written and read each time).  Figures only; nothing
 * is judged.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "buddyfs/loop.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static size_t fired;

static void on_timer(struct loop *loop, struct loop_timer *t, void *ctx)
{
	(void)loop;
	(void)t;
	(void)ctx;
	fired++;
}

static void on_fd(struct loop *loop, struct loop_fd *h, int fd, uint32_t events, void *ctx)
{
	uint64_t v;

	(void)loop;
	(void)h;
	(void)events;
	(void)ctx;
	if (read(fd, &v, sizeof(v)) != sizeof(v))
		abort();
}

static void report(const char *what, uint64_t t0, size_t ops)
{
	uint64_t dt = loop_clock_ns() - t0;

	printf("%-34s %10zu ops %9.1f ns/op\n", what, ops, ops ? (double)dt / (double)ops : 0.0);
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
	struct loop_timer **h;
	struct loop *loop;
	uint64_t t0, now, one = 1;
	size_t iters = 100000;
	int efd, rc = 1;

	if (n < 2 || loop_new(&loop) < 0)
		return 1;
	h = calloc(n, sizeof(*h));
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!h || efd < 0)
		goto out;
	printf("timers: %zu\n", n);

	t0 = loop_clock_ns();
	for (size_t i = 0; i < n; i++)
		if (loop_timer_add(loop, LOOP_NS_PER_S * 1000 + rng() % LOOP_NS_PER_S, on_timer, NULL, &h[i]) < 0)
			goto out;
	report("add (random deadline)", t0, n);

	t0 = loop_clock_ns();
	for (int round = 0; round < 10; round++)
		for (size_t i = 0; i < n; i++)
			loop_timer_rearm(loop, h[i], LOOP_NS_PER_S * 1000 + rng() % LOOP_NS_PER_S);
	report("re-arm (random deadline)", t0, 10 * n);

	t0 = loop_clock_ns();
	for (size_t i = 0; i < n; i += 2) {
		loop_timer_cancel(loop, h[i]);
		h[i] = NULL;
	}
	report("cancel half", t0, (n + 1) / 2);

	now = loop_now(loop);
	for (size_t i = 1; i < n; i += 2)
		loop_timer_rearm_at(loop, h[i], now - 1 - rng() % LOOP_NS_PER_S);
	t0 = loop_clock_ns();
	if (loop_run_once(loop, 0) < 0)
		goto out;
	report("fire the other half (one pass)", t0, fired);

	if (loop_fd_add(loop, efd, LOOP_IN, on_fd, NULL, NULL) < 0)
		goto out;
	t0 = loop_clock_ns();
	for (size_t i = 0; i < iters; i++) {
		if (write(efd, &one, sizeof(one)) != sizeof(one) || loop_run_once(loop, LOOP_NS_PER_S) != 1)
			goto out;
	}
	report("iteration with one ready fd", t0, iters);
	rc = 0;
out:
	loop_free(loop);
	if (efd >= 0)
		close(efd);
	free(h);
	return rc;
}
