/*
 * rdv_server.h - the rendezvous service (the Stratus role, DESIGN.md §4).
 *
 * Owns: one RTMFP instance on one UDP socket (rtmfp_posix, sodium profile,
 * the server's own identity kept in the database directory and made on
 * first start), the name registry (LMDB, through store_peer_*: first come,
 * first served; re-registering one's own name is fine), the presence of
 * every session with a control flow (online once it registered or reported
 * its addresses, offline when its session ends), watchers (told at once on
 * WATCH and on every change), and introductions (RFC 7016 §3.5.1.4-§3.5.1.6:
 * an IHello for the EPD 0x0f|peer id of an online peer is answered with a
 * Redirect listing the peer's addresses, local ones first, then the
 * observed one, and the peer gets an FIHello over its session, after the
 * Redirect; IHellos for anyone else get nothing).
 *
 * Registrations are committed in groups: every REGISTER that arrives in
 * one loop iteration goes into one LMDB write transaction (one fsync),
 * committed at the end of the iteration; the RESULTs go out after the
 * commit, so an acknowledged registration survives a crash.
 *
 * Limits: token buckets per source IP address for IHello, REGISTER and
 * LOOKUP (a fixed table, so bounded memory; RESULT code RDV_ERR_RATELIMIT
 * or, for IHello, silence), at most max_sessions tracked sessions, one
 * control flow per session, a capped watch set, a capped return-flow
 * buffer (a peer that does not read is closed).  A control message that
 * does not decode closes that session only.
 *
 * Relay (issue 5 item 4): a RELAY request from an online peer for another
 * online peer makes a channel in rdv_relay (a second UDP socket on the
 * listen address, any port) and sends both a RELAY_OFFER with a token;
 * each binds its observed address with a RELAY-BIND datagram from its
 * RTMFP socket; then both get RELAY_READY and add the relay address as a
 * candidate for each other: their sealed RTMFP packets cross unchanged.
 *
 * Leaves to others: the wire (rdv_proto), forwarding (rdv_relay), RTMFP
 * itself, the process (main_rendezvous.c).  One event loop, no threads.
 * Errors: 0, negative errno or BFS_E* (err.h).
 */
#ifndef BUDDYFS_RDV_SERVER_H
#define BUDDYFS_RDV_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buddyfs/rtmfp.h"

struct loop;
struct rdv_server;

/* A token bucket: @rate tokens per second, at most @burst. */
struct rdv_rate {
	double rate;
	double burst;
};

struct rdv_server_params {
	struct rdv_rate ihello;      /* 50/s, burst 100 */
	struct rdv_rate reg;         /* 2/s, burst 10 */
	struct rdv_rate lookup;      /* 20/s, burst 40 */
	size_t max_sessions;         /* 100000 */
	size_t max_buffered_bytes;   /* 65536: return-flow backlog before closing */
	size_t max_relays;           /* 1024 relay channels (rdv_relay) */
	struct rtmfp_params rtmfp;   /* rtmfp_params_default() */
};

/* rdv_server_params_default - fill @p with the defaults shown above. */
void rdv_server_params_default(struct rdv_server_params *p);

struct rdv_server_stats {
	uint64_t sessions;        /* sessions open now */
	uint64_t online;          /* peers online now */
	uint64_t registrations;   /* REGISTER accepted */
	uint64_t refused;         /* REGISTER refused (taken, bad signature, bad name) */
	uint64_t commits;         /* registry write transactions (each holds a group
	                           * of registrations: one fsync for all of them) */
	uint64_t lookups;
	uint64_t ihellos;         /* IHellos for another EPD (introductions asked) */
	uint64_t introductions;   /* Redirect + FIHello pairs sent */
	uint64_t rate_limited;    /* requests and IHellos refused by a bucket */
	uint64_t malformed;       /* sessions closed for a malformed message */
	uint64_t relays;          /* relay channels open now */
	uint64_t relayed_packets; /* datagrams forwarded by the relay */
	uint64_t relayed_bytes;   /* their bytes (UDP payload) */
	uint64_t relay_dropped;   /* datagrams the relay dropped (no bound end, bad token) */
};

/*
 * rdv_server_new - start the service on @loop: load the identity in
 * @db_dir (create @db_dir and a new identity named "rendezvous" when it has
 * none), open the store in @db_dir/store, bind @listen.
 * @params: NULL for the defaults (copied).
 * Errors: those of identity_load/identity_create, store_open and
 * rtmfp_posix_new (-EADDRINUSE...), -ENOMEM.
 */
int rdv_server_new(struct rdv_server **out, struct loop *loop, const char *db_dir,
		   const struct sockaddr_storage *listen, const struct rdv_server_params *params);

/* rdv_server_free - close the socket and the store, free everything (no
 * close handshake: peers notice by timeout).  NULL is fine. */
void rdv_server_free(struct rdv_server *srv);

/* rdv_server_peer_id - the server's peer id (what clients may pin). */
void rdv_server_peer_id(const struct rdv_server *srv, uint8_t out[static 32]);

/* rdv_server_local_addr - the bound address (the port when 0 was asked). */
int rdv_server_local_addr(const struct rdv_server *srv, struct sockaddr_storage *out);

/* rdv_server_relay_addr - the relay socket's bound address. */
int rdv_server_relay_addr(const struct rdv_server *srv, struct sockaddr_storage *out);

/* rdv_server_get_stats - counters. */
void rdv_server_get_stats(const struct rdv_server *srv, struct rdv_server_stats *out);

#endif
