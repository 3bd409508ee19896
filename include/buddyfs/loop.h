/*
 * loop.h - the event loop: fd readiness (epoll), timers, signals, deferred calls.
 *
 * One loop per process drives everything that waits: the FUSE channel fd, the
 * UDP socket(s), the control socket, timers (RTMFP retransmission and
 * keepalive, FUSE read timeouts) and signals.  Everything runs on the thread
 * that calls loop_run(); nothing here is thread-safe, and no lock is needed
 * in code that only runs from loop callbacks.
 *
 * One iteration (loop_run_once) does, in this order:
 *   1. wait in epoll until an fd is ready, the earliest timer is due or the
 *      caller's limit passes (no wait when deferred calls are pending);
 *   2. refresh the cached clock (loop_now);
 *   3. call the callback of each ready fd (signals arrive this way too);
 *   4. fire the due timers that were armed before this step, earliest
 *      deadline first, ties in the order they were armed;
 *   5. run the deferred calls queued before this step;
 *   6. release the handles removed or cancelled during the iteration.
 *
 * Owned here: the epoll instance, one signalfd, the timer heap, the deferred
 * list and every handle they hold.  Not owned: the file descriptors given to
 * loop_fd_add() (the caller opens and closes them) and the callbacks' @ctx.
 *
 * Time is CLOCK_MONOTONIC in nanoseconds.  Waits use epoll_pwait2()
 * (nanosecond timeouts) and fall back to epoll_wait() rounded up to whole
 * milliseconds on kernels without it, so timers never fire early.
 *
 * A loop does not survive fork(): parent and child would share the epoll
 * and signalfd instances.  Create it after daemonizing, as the LMDB
 * environment.
 *
 * Errors are negative errno values.  Functions that are documented as
 * "callable from callbacks" may be called from inside any callback of the
 * same loop (fd, timer, signal or deferred); the others may not.
 */
#ifndef BUDDYFS_LOOP_H
#define BUDDYFS_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct loop_fd;
struct loop_timer;

/* Wait without a limit (loop_run_once). */
#define LOOP_WAIT_FOREVER UINT64_MAX

/* Nanoseconds in common units, for delays. */
#define LOOP_NS_PER_US UINT64_C(1000)
#define LOOP_NS_PER_MS UINT64_C(1000000)
#define LOOP_NS_PER_S UINT64_C(1000000000)

/*
 * fd events.  Request LOOP_IN and/or LOOP_OUT (and LOOP_RDHUP, LOOP_PRI if
 * wanted); LOOP_ERR and LOOP_HUP are always reported.  LOOP_EDGE asks for
 * edge-triggered reporting (the default is level-triggered): the callback is
 * then called once per change and must read or write until EAGAIN.
 * The values are those of the matching EPOLL* flags (loop.c checks), so code
 * that passes EPOLLIN by habit gets what it meant; prefer the LOOP_ names.
 */
#define LOOP_IN 0x001u       /* readable (or a peer closed, or an error) */
#define LOOP_PRI 0x002u      /* urgent / priority data */
#define LOOP_OUT 0x004u      /* writable */
#define LOOP_ERR 0x008u      /* error condition (reported, never needs asking) */
#define LOOP_HUP 0x010u      /* hang-up (reported, never needs asking) */
#define LOOP_RDHUP 0x2000u   /* stream peer shut down its writing half */
#define LOOP_EDGE (1u << 31) /* edge-triggered (request only) */

/* ---- the loop ---- */

/*
 * loop_new - a new loop with no fds, timers, signals or deferred calls.
 * @out: receives the loop; free it with loop_free().
 * Errors: -ENOMEM; errors of epoll_create1 (-EMFILE, -ENFILE).
 * Not callable from callbacks (of another loop it is fine).
 */
int loop_new(struct loop **out);

/*
 * loop_free - release the loop and everything still registered with it:
 * fd handles (the fds themselves stay open: they are the caller's), timers
 * (armed, idle or detached), deferred calls (not run) and signals (each one
 * loop_signal_add() blocked is unblocked again after its pending instances
 * are discarded).  No callback is called.  Every handle of the loop becomes
 * invalid.  NULL is fine.  Never call it from a callback of @loop.
 */
void loop_free(struct loop *loop);

/*
 * loop_run - run iterations until loop_stop() is called; the iteration in
 * which it was called finishes first (its remaining fd events, due timers
 * and deferred calls run), so no edge-triggered event is lost.  The stop
 * request is then consumed.
 * Returns 0 after a stop; a negative errno if epoll fails (EINTR is not a
 * failure); -EBUSY when called from a callback of @loop (no nesting).
 */
int loop_run(struct loop *loop);

/*
 * loop_run_once - one iteration (see the file comment), waiting at most
 * @max_wait_ns (0: poll; LOOP_WAIT_FOREVER: no limit other than the timers).
 * A stop request is neither consulted nor consumed here (it stays for the
 * next loop_run, which then returns after its first iteration).
 * Returns the number of callbacks called (fd, signal, timer and deferred;
 * 0 when the wait ran out), a negative errno if epoll fails, or -EBUSY when
 * called from a callback of @loop.
 */
int loop_run_once(struct loop *loop, uint64_t max_wait_ns);

/*
 * loop_stop - ask the running loop_run() to return at the end of the
 * current iteration.  Callable from callbacks (that is its usual place) and
 * between runs (the next loop_run() then returns after one iteration).
 */
void loop_stop(struct loop *loop);

/*
 * loop_now - the loop's clock, CLOCK_MONOTONIC in ns.  Inside an iteration
 * it is the value read once right after the wait: all callbacks of one
 * iteration see the same time, even if they run long.  Outside an iteration
 * (setting up before loop_run) it is a fresh reading.  Relative timer delays
 * (loop_timer_add, loop_timer_rearm) count from it.  Callable from callbacks.
 */
uint64_t loop_now(const struct loop *loop);

/* loop_clock_ns - a fresh CLOCK_MONOTONIC reading in ns (a system call's worth). */
uint64_t loop_clock_ns(void);

/* ---- file descriptors ---- */

/*
 * loop_fd_fn - @fd (registered as @h) is ready: @events is the subset of
 * LOOP_IN, LOOP_OUT, LOOP_RDHUP, LOOP_PRI, LOOP_ERR and LOOP_HUP that
 * epoll reported.  The callback may do anything callable from callbacks,
 * including loop_fd_remove() of @h itself or of any other handle.
 */
typedef void loop_fd_fn(struct loop *loop, struct loop_fd *h, int fd, uint32_t events, void *ctx);

/*
 * loop_fd_add - watch @fd for @events (LOOP_IN, LOOP_OUT, LOOP_RDHUP,
 * LOOP_PRI, optionally | LOOP_EDGE; 0 is allowed and reports only errors and
 * hang-ups) and call @cb(loop, h, fd, events, @ctx) when it is ready.
 * The fd should be non-blocking.  One handle per fd: epoll keeps one
 * registration per open file description.
 * @out: receives the handle (may be NULL if the caller never modifies or
 *       removes it before loop_free()).  The handle stays valid until
 *       loop_fd_remove() or loop_free(); the caller must call
 *       loop_fd_remove() BEFORE closing the fd.
 * Errors: -EINVAL (bad @events bits, NULL @cb, fd < 0), -EEXIST (@fd is
 * already registered), -ENOMEM, and the errors of epoll_ctl (-EBADF,
 * -EPERM for regular files, which epoll cannot watch).
 * Callable from callbacks; an fd added during a batch is first reported in
 * the next iteration.
 */
int loop_fd_add(struct loop *loop, int fd, uint32_t events, loop_fd_fn *cb, void *ctx,
		struct loop_fd **out);

/*
 * loop_fd_modify - replace the watched events of @h (same bits as
 * loop_fd_add, LOOP_EDGE included).  Typical use: add LOOP_OUT while a send
 * queue waits for room, drop it when the queue drained.
 * Errors: -EINVAL (bad bits, or @h was removed), errors of epoll_ctl.
 * Callable from callbacks, also on the handle whose callback is running.
 */
int loop_fd_modify(struct loop *loop, struct loop_fd *h, uint32_t events);

/*
 * loop_fd_remove - stop watching and release @h.  Never fails; the fd is
 * not closed (close it after this call).  No callback of @h runs after this
 * call, even when the current epoll batch still holds an event for it.
 * @h becomes invalid when this call returns (its memory is released at the
 * end of the iteration, so removing it from its own callback is safe).
 * NULL is fine.  Callable from callbacks, including @h's own.
 */
void loop_fd_remove(struct loop *loop, struct loop_fd *h);

/* loop_fd_get - the fd of a live handle. */
int loop_fd_get(const struct loop_fd *h);

/* ---- timers ---- */

/*
 * loop_timer_fn - @t is due.  When the callback starts, @t is no longer
 * armed; it may re-arm itself (loop_timer_rearm*), cancel itself or any
 * other timer, and add new timers.  A timer armed during a timer pass never
 * fires in that same pass, even if already due: it fires in the next
 * iteration, after the fds have had their turn (so a timer that re-arms
 * itself with delay 0 cannot starve the fds).
 */
typedef void loop_timer_fn(struct loop *loop, struct loop_timer *t, void *ctx);

/*
 * loop_timer_new - an owned timer that is idle (not armed): arm it later
 * with loop_timer_rearm*.  For a timer that is moved often and may have no
 * deadline for a while (RTMFP's next-deadline timer).  Released by
 * loop_timer_cancel() or loop_free().
 * Errors: -EINVAL (NULL @cb or @out), -ENOMEM.  Callable from callbacks.
 */
int loop_timer_new(struct loop *loop, loop_timer_fn *cb, void *ctx, struct loop_timer **out);

/*
 * loop_timer_add - arm a one-shot timer due @delay_ns after loop_now().
 * loop_timer_add_at - the same, due at the absolute @deadline_ns (on the
 * loop_now() clock; a deadline in the past fires in the next timer pass).
 * @out: receives the handle, or NULL for a detached timer.
 *   - With a handle, the caller owns the timer: after firing it stays
 *     allocated (idle), may be re-armed any number of times without
 *     allocating, and is released only by loop_timer_cancel() or
 *     loop_free().
 *   - A detached timer (@out NULL) releases itself after a firing whose
 *     callback did not re-arm it; until then its handle is the @t passed to
 *     its callback, which may re-arm or cancel it.
 * Errors: -EINVAL (NULL @cb), -ENOMEM.  Callable from callbacks.
 * Cost: O(log n) in the number of armed timers.
 */
int loop_timer_add(struct loop *loop, uint64_t delay_ns, loop_timer_fn *cb, void *ctx,
		   struct loop_timer **out);
int loop_timer_add_at(struct loop *loop, uint64_t deadline_ns, loop_timer_fn *cb, void *ctx,
		      struct loop_timer **out);

/*
 * loop_timer_rearm - (re)schedule @t to fire @delay_ns after loop_now();
 * loop_timer_rearm_at - at the absolute @deadline_ns.  Works on an armed
 * timer (it moves), an idle one and the one whose callback is running.
 * Never allocates, never fails.  Among timers with equal deadlines, the one
 * armed last fires last.  Callable from callbacks.
 */
void loop_timer_rearm(struct loop *loop, struct loop_timer *t, uint64_t delay_ns);
void loop_timer_rearm_at(struct loop *loop, struct loop_timer *t, uint64_t deadline_ns);

/*
 * loop_timer_stop - disarm @t without releasing it: it becomes idle and may
 * be re-armed later.  Idle timers are fine.  A detached timer has nobody to
 * re-arm it, so stopping one releases it (after its callback returns, when
 * it stops itself).  Callable from callbacks.
 */
void loop_timer_stop(struct loop *loop, struct loop_timer *t);

/*
 * loop_timer_cancel - disarm and release @t.  @t becomes invalid when this
 * call returns; its memory is released at the end of the iteration, so a
 * timer may cancel itself from its callback, and may cancel a timer that is
 * due later in the same pass (that one then does not fire).  NULL is fine.
 * Callable from callbacks.
 */
void loop_timer_cancel(struct loop *loop, struct loop_timer *t);

/* loop_timer_armed - @t is waiting to fire. */
bool loop_timer_armed(const struct loop_timer *t);
/* loop_timer_deadline - the deadline @t was last armed for (ns, loop_now clock). */
uint64_t loop_timer_deadline(const struct loop_timer *t);
/* loop_timer_count - timers alive (armed or idle), for tests and status. */
size_t loop_timer_count(const struct loop *loop);

/* ---- signals ---- */

/* loop_signal_fn - @signo arrived (standard signals pending together arrive once). */
typedef void loop_signal_fn(struct loop *loop, int signo, void *ctx);

/*
 * loop_signal_add - deliver @signo through the loop: the signal is blocked
 * in the calling thread (pthread_sigmask) and read from the loop's signalfd,
 * then @cb(loop, signo, @ctx) runs in the fd phase of an iteration.  Made for
 * SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGUSR1/2.  Call it before starting other
 * threads (they inherit the mask; a thread that does not block the signal
 * would take it instead).  Children inherit the blocked mask across exec:
 * unblock in the child before exec.
 * Errors: -EINVAL (@signo out of range, SIGKILL, SIGSTOP, NULL @cb),
 * -EEXIST (@signo already has a callback on this loop), -ENOMEM, and the
 * errors of signalfd (-EMFILE...).  Callable from callbacks.
 */
int loop_signal_add(struct loop *loop, int signo, loop_signal_fn *cb, void *ctx);

/*
 * loop_signal_remove - stop delivering @signo: its pending instances are
 * discarded, and it is unblocked again if loop_signal_add() blocked it.
 * Returns 0, or -ENOENT when @signo had no callback.  Callable from
 * callbacks (including the signal's own).
 */
int loop_signal_remove(struct loop *loop, int signo);

/* ---- deferred calls ---- */

typedef void loop_defer_fn(struct loop *loop, void *ctx);

/*
 * loop_defer - call @cb(loop, @ctx) once, at the end of this iteration
 * (after the fd callbacks and timers), or of the next one when called
 * outside an iteration or from a deferred call (the next wait then does not
 * block).  Meant for work batched across callbacks, such as flushing queued
 * UDP datagrams once per iteration.  The same pair may be queued more than
 * once (keep a "flush scheduled" flag to avoid that).
 * Errors: -EINVAL (NULL @cb), -ENOMEM.  Callable from callbacks.
 */
int loop_defer(struct loop *loop, loop_defer_fn *cb, void *ctx);

/*
 * loop_defer_cancel - drop every queued call of @cb with @ctx that has not
 * run yet (use it before freeing @ctx).  Returns how many were dropped.
 * Callable from callbacks.
 */
size_t loop_defer_cancel(struct loop *loop, loop_defer_fn *cb, void *ctx);

#endif
