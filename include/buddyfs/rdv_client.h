/*
 * rdv_client.h - a daemon's side of the rendezvous (DESIGN.md §4).
 *
 * Owns: the control flow to buddyfs-rendezvous over the daemon's own RTMFP
 * instance (so the server observes the address buddies can reach), with
 * reconnection and exponential backoff when it fails (or when a periodic
 * REPORT goes unanswered: a restarted server); what is re-sent on
 * every (re)connection: REPORT of the local interface addresses, REGISTER
 * of the name (when set), WATCH of the set (when set); LOOKUP requests and
 * their answers (the certificate is checked: its SHA-256 is the peer id
 * returned, and must equal an expected id when one is given); PRESENCE and
 * YOUR_ADDRESS events.
 *
 * The instance is the owner's: it calls the rdv_client_on_* hooks from its
 * own rtmfp callbacks (each returns true when the object was the client's,
 * so the owner knows it need not look further).  rdv_client_callbacks is a
 * ready set of callbacks for an instance that carries nothing else.
 *
 * Leaves to others: the wire (rdv_proto), the instance and its socket
 * (rtmfp_posix), the store (the caller pins what lookups return),
 * connecting to buddies (the caller opens flows to their EPDs with the
 * server's address as a candidate: the server introduces).
 * One event loop, no threads.  Errors: 0, negative errno or BFS_E*.
 */
#ifndef BUDDYFS_RDV_CLIENT_H
#define BUDDYFS_RDV_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buddyfs/rdv_proto.h"
#include "buddyfs/rtmfp.h"

struct loop;
struct identity;
struct rtmfp_posix;
struct rdv_client;

#define RDV_CLIENT_MAX_PENDING 64 /* requests waiting for their RESULT */
#define RDV_CLIENT_MAX_RELAYS 8   /* relay channels being set up at once */

/* Events; each member may be NULL. */
struct rdv_client_events {
	/* The server answered (@up, with the address it observes) or the
	 * control flow failed (!up, @observed NULL; a reconnect is scheduled). */
	void (*connection)(void *ctx, bool up, const struct sockaddr_storage *observed);
	/* The RESULT of each REGISTER, also of those re-sent on reconnection:
	 * an RDV_* code (RDV_OK, RDV_ERR_TAKEN, RDV_ERR_BADSIG...). */
	void (*registered)(void *ctx, const char *name, int code);
	/* A watched peer is online (with its addresses, local ones then the
	 * observed one) or offline (n_addrs 0). */
	void (*presence)(void *ctx, const uint8_t peer_id[static RDV_PEER_ID_BYTES], bool online,
			 const struct rdv_addr *addrs, size_t n_addrs);
	/*
	 * The relay for the session with @peer_id: @code RDV_OK and @relay
	 * (the server's relay address) once both ends are bound (whoever
	 * asked): add @relay as a candidate address for that peer
	 * (rtmfp_send_add_address on an opening flow, or open one with it);
	 * else why not: an RDV_* code from the server for our RELAY request
	 * (RDV_ERR_NOTFOUND: a peer is offline), or -ETIMEDOUT when the
	 * binding got no READY in 5 s.
	 */
	void (*relay)(void *ctx, const uint8_t peer_id[static RDV_PEER_ID_BYTES], int code,
		      const struct sockaddr_storage *relay);
};

struct rdv_client_config {
	struct sockaddr_storage server;          /* where the rendezvous listens */
	bool pin_server;                         /* true: select it by server_id */
	uint8_t server_id[RDV_PEER_ID_BYTES];    /* else by its name RDV_SERVER_NAME */
	const struct identity *id;               /* borrowed; signs REGISTER */
	uint64_t backoff_min_ns;                 /* 0: 500 ms */
	uint64_t backoff_max_ns;                 /* 0: 30 s */
	/* Liveness: every probe_ns (0: 15 s) while connected the client sends
	 * REPORT again (fresh interface addresses); no RESULT within
	 * probe_timeout_ns (0: 10 s) and the server is taken as gone (e.g.
	 * restarted: it forgot our session): the session is closed and the
	 * client reconnects, without waiting for the RTMFP retransmit limit. */
	uint64_t probe_ns;
	uint64_t probe_timeout_ns;
	/* Local addresses to report instead of the interfaces' (tests). */
	size_t n_local;
	struct rdv_addr local[RDV_MAX_REPORT_ADDRS];
	struct rdv_client_events ev;
	void *ctx;
};

/*
 * rdv_client_new - a client for the instance @px (borrowed; outlives the
 * client) on @loop, with @cfg (copied).  Nothing is sent until
 * rdv_client_start().  Errors: -ENOMEM, -EINVAL (no identity).
 */
int rdv_client_new(struct rdv_client **out, struct loop *loop, const struct rdv_client_config *cfg);
/* rdv_client_start - connect to the server using @px (borrowed; outlives
 * the client).  Errors: those of rtmfp_open_flow(). */
int rdv_client_start(struct rdv_client *c, struct rtmfp_posix *px);
/*
 * rdv_client_free - free the client.  The control flow belongs to the
 * instance: free the instance first (rtmfp_posix_free), or stop calling the
 * hooks before this call; for an orderly goodbye to the server call
 * rtmfp_shutdown() and run the loop until rtmfp_idle().  NULL is fine.
 */
void rdv_client_free(struct rdv_client *c);

/*
 * rdv_client_register - register @name (a normalized user name) now and on
 * every reconnection; each RESULT goes to events.registered.
 * Errors: BFS_EBADNAME.
 */
int rdv_client_register(struct rdv_client *c, const char *name);

/*
 * rdv_client_watch - replace the watched set with @n ids (at most
 * RDV_MAX_WATCH; copied); re-sent on every reconnection.  The server sends
 * the current presence of each at once.  Errors: -EINVAL.
 */
int rdv_client_watch(struct rdv_client *c, const uint8_t (*ids)[RDV_PEER_ID_BYTES], size_t n);

/*
 * rdv_lookup_fn - the answer to rdv_client_lookup: @code is RDV_OK (with
 * the certificate and its peer id, both borrowed for the call), another
 * RDV_* code from the server, BFS_EBADHASH (the certificate does not hash
 * to the expected peer id), BFS_EMALFORMED (not a certificate), or
 * BFS_ECLOSED (the control flow failed before the answer).
 */
typedef void rdv_lookup_fn(void *ctx, int code, const uint8_t *cert, size_t cert_len,
			   const uint8_t *peer_id);

/*
 * rdv_client_lookup - ask for @name's certificate; @expect (NULL or 32
 * bytes) is a pinned peer id the answer must match.  @fn is called exactly
 * once (never inside this call) unless the client is freed first.
 * Errors: BFS_EBADNAME, -EAGAIN (RDV_CLIENT_MAX_PENDING requests waiting),
 * -ENOTCONN (not connected: try after the connection event).
 */
int rdv_client_lookup(struct rdv_client *c, const char *name, const uint8_t *expect,
		      rdv_lookup_fn *fn, void *ctx);

/*
 * rdv_client_relay - ask the server to relay our session with @peer_id
 * (when no direct path formed).  The server offers a channel to both ends;
 * the client binds to it (RELAY-BIND datagrams from the instance's socket,
 * every 200 ms until READY, at most 5 s) and gives events.relay.
 * Errors: -ENOTCONN (not connected), -EAGAIN (RDV_CLIENT_MAX_RELAYS being
 * set up), those of the control flow's write.
 */
int rdv_client_relay(struct rdv_client *c, const uint8_t peer_id[static RDV_PEER_ID_BYTES]);
/* rdv_client_relay_addr - the server's relay address once a channel is
 * known (for telling "relayed" from "direct" by a session's far address);
 * -ENOENT before. */
int rdv_client_relay_addr(const struct rdv_client *c, struct sockaddr_storage *out);

/* rdv_client_connected - the server has answered on the current flow. */
bool rdv_client_connected(const struct rdv_client *c);
/* rdv_client_observed - the address the server last said it observes;
 * -ENOTCONN when not known. */
int rdv_client_observed(const struct rdv_client *c, struct sockaddr_storage *out);
/* rdv_client_session - the session with the server, NULL when not open. */
struct rtmfp_session *rdv_client_session(const struct rdv_client *c);

/*
 * rdv_client_local_addrs - the interface addresses to report for a socket
 * bound to @bound: its address if it is not a wildcard, else every
 * interface address of its family (and IPv4 for a dual-stack IPv6 socket)
 * except loopback and IPv6 link-local, unless only loopback exists; each
 * with @bound's port.  Returns the count (at most @cap) or a negative errno.
 */
int rdv_client_local_addrs(struct rdv_addr *out, size_t cap, const struct sockaddr_storage *bound);

/* ---- hooks for the owner's rtmfp callbacks (true: it was the client's) ---- */
bool rdv_client_on_recv_flow(struct rdv_client *c, struct rtmfp_recv *f, const uint8_t *meta,
			     size_t meta_len, struct rtmfp_send *assoc);
bool rdv_client_on_message(struct rdv_client *c, struct rtmfp_recv *f, const uint8_t *msg, size_t len);
bool rdv_client_on_recv_closed(struct rdv_client *c, struct rtmfp_recv *f, int err);
bool rdv_client_on_send_closed(struct rdv_client *c, struct rtmfp_send *f, int err);

/* Callbacks for an instance used only by one client: ctx must be the
 * struct rdv_client (create the instance with it after rdv_client_new). */
extern const struct rtmfp_callbacks rdv_client_callbacks;

#endif
