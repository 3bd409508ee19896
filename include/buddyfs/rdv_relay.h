/*
 * rdv_relay.h - the rendezvous server's relay (issue 5 item 4): a second
 * UDP socket that forwards datagrams between the two ends of a channel.
 *
 * Owns: the relay socket, the channel table (at most max_channels, found
 * through hash indexes by peer id, token and bound address; each
 * joins two peer ids, holds one secret 16-byte token per end and the
 * address each end bound with a RELAY-BIND datagram), forwarding (a
 * datagram from one bound end goes, unchanged, to the other bound end),
 * idle expiry, counters.  The peers' packets are RTMFP packets already
 * sealed end to end with their session keys: the relay never parses them
 * and learns nothing of their content; it only needs the two addresses.
 * A datagram from an address that is not a bound end and is not a valid
 * RELAY-BIND is dropped.
 *
 * Leaves to others: who may ask for a channel and telling peers (the
 * offer and ready messages of rdv_server), the RELAY-BIND bytes
 * (rdv_proto).  One event loop, no threads.  Errors: 0 or negative errno.
 */
#ifndef BUDDYFS_RDV_RELAY_H
#define BUDDYFS_RDV_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buddyfs/rdv_proto.h"

struct loop;
struct rdv_relay;

/* Both ends of a channel are bound: the owner tells the two peers. */
typedef void rdv_relay_ready_fn(void *ctx, const uint8_t a[static RDV_PEER_ID_BYTES],
				const uint8_t b[static RDV_PEER_ID_BYTES]);

struct rdv_relay_stats {
	uint64_t channels;        /* open now */
	uint64_t packets;         /* forwarded */
	uint64_t bytes;           /* forwarded, UDP payload */
	uint64_t dropped;         /* from nobody bound, or to an unbound end */
};

/*
 * rdv_relay_new - bind the relay socket to @bind (port 0: any) on @loop.
 * @max_channels: table size (0: 1024); @idle_ns: a channel that forwarded
 * nothing this long is freed (0: 60 s); @ready, @ctx: the ready event.
 * Errors: those of udp_open, loop_fd_add, -ENOMEM.
 */
int rdv_relay_new(struct rdv_relay **out, struct loop *loop, const struct sockaddr_storage *bind,
		  size_t max_channels, uint64_t idle_ns, rdv_relay_ready_fn *ready, void *ctx);
/* rdv_relay_free - close the socket, drop every channel.  NULL is fine. */
void rdv_relay_free(struct rdv_relay *r);
/* rdv_relay_port - the bound port (host order). */
uint16_t rdv_relay_port(const struct rdv_relay *r);
/* rdv_relay_local_addr - the bound address (udp_local). */
int rdv_relay_local_addr(const struct rdv_relay *r, struct sockaddr_storage *out);

/*
 * rdv_relay_channel - the channel between @a and @b (distinct), made when
 * missing (fresh random tokens), else the existing one: @tok_a and @tok_b
 * receive the token each end binds with; *@ready tells whether both ends
 * are already bound.  Errors: -EINVAL (@a equals @b), -ENOSPC (table full,
 * or @a or @b already an end of 8 channels), -ENOMEM.
 */
int rdv_relay_channel(struct rdv_relay *r, const uint8_t a[static RDV_PEER_ID_BYTES],
		      const uint8_t b[static RDV_PEER_ID_BYTES],
		      uint8_t tok_a[static RDV_RELAY_TOKEN_BYTES],
		      uint8_t tok_b[static RDV_RELAY_TOKEN_BYTES], bool *ready);

/* rdv_relay_input - one datagram that arrived on the relay socket (what
 * the socket handler calls; public for tests). */
void rdv_relay_input(struct rdv_relay *r, const struct sockaddr_storage *from,
		     const uint8_t *data, size_t len);

void rdv_relay_get_stats(const struct rdv_relay *r, struct rdv_relay_stats *out);

#endif
