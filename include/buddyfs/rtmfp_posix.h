/*
 * rtmfp_posix.h - an RTMFP instance on a real UDP socket and event loop.
 *
 * Owns the glue between the OS-free core (rtmfp.h) and the process: one
 * UDP socket (udp.h) whose readiness feeds rtmfp_feed() with a fresh
 * CLOCK_MONOTONIC reading, the core's send() callback queued into the
 * socket's batch (UDP GSO) and flushed at the end of each loop iteration,
 * and one loop timer kept at rtmfp_next_deadline().
 *
 * Use: create it, then call the rtmfp_* API on rtmfp_posix_core() with
 * rtmfp_posix_now() as "now"; after calls made outside the instance's own
 * callbacks, call rtmfp_posix_kick() so that what they queued goes out and
 * the timer follows the new deadline (inside callbacks this is automatic).
 */
#ifndef BUDDYFS_RTMFP_POSIX_H
#define BUDDYFS_RTMFP_POSIX_H

#include <stdint.h>
#include <sys/socket.h>

#include "buddyfs/rtmfp.h"

struct loop;
struct udp_sock;
struct rtmfp_posix;

/*
 * rtmfp_posix_new - bind a UDP socket to @bind_addr, make an instance with
 * @crypto (borrowed), @params (NULL: defaults) and the events of @cb (its
 * send and flush members are ignored: the glue owns them) with @ctx.
 * Errors: negative errno from the socket (-EADDRINUSE...), -ENOMEM, and
 * those of rtmfp_new().
 */
int rtmfp_posix_new(struct rtmfp_posix **out, struct loop *loop, struct rtmfp_crypto *crypto,
		    const struct rtmfp_callbacks *cb, void *ctx, const struct rtmfp_params *params,
		    const struct sockaddr_storage *bind_addr);
/* rtmfp_posix_free - free the instance (no events), the timer and socket. */
void rtmfp_posix_free(struct rtmfp_posix *p);

/* rtmfp_posix_core - the instance, for the rtmfp_* API. */
struct rtmfp *rtmfp_posix_core(const struct rtmfp_posix *p);
/* rtmfp_posix_udp - the socket (statistics, the drop switch). */
struct udp_sock *rtmfp_posix_udp(const struct rtmfp_posix *p);
/* rtmfp_posix_now - the clock the instance runs on (ns, monotonic). */
uint64_t rtmfp_posix_now(void);
/* rtmfp_posix_kick - flush sends and re-arm the timer at the end of this
 * loop iteration.  Cheap; safe to call often and from anywhere. */
void rtmfp_posix_kick(struct rtmfp_posix *p);

#endif
