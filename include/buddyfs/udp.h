/*
 * udp.h - one UDP socket with batched, segment-offloaded I/O.
 *
 * Owns the socket calls under the RTMFP instance: bind, batched receive
 * (recvmmsg, split UDP GRO super-datagrams into their segments) and batched
 * send (datagrams queued by the caller are coalesced into UDP GSO sends of
 * up to UDP_MAX_SEGMENTS equal-size segments for one destination, flushed
 * with sendmmsg).  Falls back to one datagram per message where the kernel
 * refuses GSO or GRO.  Knows nothing of RTMFP; the event loop and the RTMFP
 * instance are joined by rtmfp_posix.
 *
 * A test switch drops a share of datagrams in each direction (rtmfp-tool
 * --drop), decided by libsodium's random generator.
 *
 * Not thread-safe: one socket belongs to one event loop.
 */
#ifndef BUDDYFS_UDP_H
#define BUDDYFS_UDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define UDP_MAX_DATAGRAM_BYTES 1472 /* the most one queued datagram may hold */
#define UDP_MAX_SEGMENTS 64         /* segments per GSO send (kernel limit) */
#define UDP_ADDR_STR_BYTES 64       /* "[v6]:port" with NUL */

struct udp_sock;

/* Statistics since udp_open(). */
struct udp_stats {
	uint64_t tx_datagrams, tx_bytes, tx_syscalls, tx_dropped, tx_errors;
	uint64_t rx_datagrams, rx_bytes, rx_syscalls, rx_dropped;
};

/*
 * udp_open - a non-blocking UDP socket bound to @addr (port 0: any).
 * IPv6 sockets accept IPv4 too (IPV6_V6ONLY off).  GSO and GRO are turned on
 * where the kernel has them.
 * Errors: negative errno from socket/bind (-EADDRINUSE, ...), -ENOMEM.
 */
int udp_open(struct udp_sock **out, const struct sockaddr_storage *addr);
/* udp_close - flush nothing, close the socket, free everything. NULL is fine. */
void udp_close(struct udp_sock *s);
/* udp_fd - the socket, for the event loop (wait for EPOLLIN). */
int udp_fd(const struct udp_sock *s);
/* udp_local - the bound address (with the port the kernel chose). */
int udp_local(const struct udp_sock *s, struct sockaddr_storage *out);
/* udp_set_drop - drop @percent (0-100) of datagrams sent and received. */
void udp_set_drop(struct udp_sock *s, unsigned percent);
/* udp_set_offload - turn GSO/GRO use off (for measurements and tests). */
void udp_set_offload(struct udp_sock *s, bool on);
void udp_get_stats(const struct udp_sock *s, struct udp_stats *out);

/*
 * udp_send - queue one datagram of @len bytes (at most
 * UDP_MAX_DATAGRAM_BYTES) to @to; it is copied.  The queue is flushed when
 * full; call udp_flush() when done producing (e.g. at the end of a loop
 * iteration).  Errors: -EMSGSIZE for a too-long datagram; send errors of
 * the flush (the datagrams are then dropped, as UDP would).
 */
int udp_send(struct udp_sock *s, const struct sockaddr_storage *to, const void *data, size_t len);
/*
 * udp_flush - send everything queued.  Returns 0, or the first send error
 * other than EAGAIN (datagrams a full socket buffer refused are dropped
 * and counted in tx_dropped; RTMFP retransmits).
 */
int udp_flush(struct udp_sock *s);

/*
 * udp_recv_fn - called once per received datagram.  @data lives until the
 * callback returns.
 */
typedef void udp_recv_fn(void *ctx, const struct sockaddr_storage *from, uint8_t *data, size_t len);
/*
 * udp_recv - read what is waiting (up to one batch of system calls) and
 * call @fn for each datagram.  Returns the number of datagrams delivered
 * (0 when nothing was waiting) or a negative errno.
 */
int udp_recv(struct udp_sock *s, udp_recv_fn *fn, void *ctx);

/* ---- addresses ---- */

/*
 * udp_addr_parse - "HOST:PORT", "[V6]:PORT" or, when @default_port is not 0,
 * a bare "HOST" / "[V6]", into @out; HOST is a numeric address or a name
 * resolved with getaddrinfo (first result).  Port 0 is accepted (bind to
 * any port).  Errors: -EINVAL for a bad form or port, -ENOENT when the name does not resolve.
 */
int udp_addr_parse(struct sockaddr_storage *out, const char *s, uint16_t default_port);
/* udp_addr_format - "a.b.c.d:port" or "[v6]:port" (v4-mapped shown as v4). */
void udp_addr_format(char out[static UDP_ADDR_STR_BYTES], const struct sockaddr_storage *a);
/* udp_addr_equal - same family, address and port (v4-mapped equals v4). */
bool udp_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
/* udp_addr_len - the socklen_t for @a's family. */
socklen_t udp_addr_len(const struct sockaddr_storage *a);

#endif
