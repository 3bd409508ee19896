/*
 * net.h - the daemon's network side: one UDP socket, one RTMFP instance
 * (sodium profile, the identity's key) on it, and the rendezvous client
 * over that same instance (DESIGN.md §2, §4), so that the address the
 * rendezvous observes is the one buddies reach.
 *
 * Owns:
 *   - the socket and instance (rtmfp_posix), their timing knobs, and the
 *     orderly shutdown (close handshakes, bounded by the caller's wait);
 *   - the rendezvous client (rdv_client): the name registered, the buddies
 *     of the store watched (the store is re-read every NET_RESCAN_MS and
 *     the watch replaced when the set changes), presence and the observed
 *     address kept for status;
 *   - routing of every instance event: the rendezvous client's hooks
 *     first, then the modules above (struct net_upper, in the order given):
 *     a new receiving flow goes to the upper module whose metadata it
 *     carries, and is rejected when none matches; other flow events are
 *     offered to each upper module until one takes them; session
 *     opened/closed events go to every upper module;
 *   - opening flows to buddies (net_open_flow): the buddy's EPD with the
 *     rendezvous server (which introduces, RFC 7016 §3.5.1.4-§3.5.1.6) and
 *     the addresses of its last presence as candidates; when no session
 *     has opened NET_RELAY_AFTER_MS later, a relay is asked for
 *     (rdv_client_relay) and its address added to every opening flow to
 *     that buddy (rtmfp_send_add_address);
 *   - per-buddy facts for `buddyfs status` and `buddy list`: online, the
 *     presence addresses, the open session, its far address, direct or
 *     relayed (far address == the rendezvous relay's), smoothed RTT.
 *
 * "Online" for the modules above (net_upper.presence) is the rendezvous's
 * presence, except that a session to the buddy that failed by timeout
 * (its machine vanished: kill -9, cable) counts as offline until the next
 * presence event or session, or 15 s (then, if the rendezvous still says
 * online, the modules above are told online again and retry): the
 * rendezvous may take far longer than the session's timers to notice.
 *
 * Leaves to others: what flows carry (sync, xfer), who may use them (sync
 * decides mutuality), the rendezvous wire (rdv_proto, rdv_client), the
 * buddies themselves (the store; the CLI adds and removes them).
 * One event loop, no threads.  Errors: 0, negative errno or BFS_E*.
 */
#ifndef BUDDYFS_NET_H
#define BUDDYFS_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buddyfs/store.h"

struct loop;
struct identity;
struct rtmfp_session;
struct rtmfp_send;
struct rtmfp_recv;
struct rtmfp_posix;
struct net;

#define NET_RELAY_AFTER_MS 3000    /* no session this long after an open: ask a relay */
#define NET_RESCAN_MS 2000         /* re-read the store's buddies this often */
#define NET_KEEPALIVE_MS 5000      /* RTMFP keepalive after this long quiet */
#define NET_RETRANSMIT_LIMIT_MS 10000 /* no answer this long: the session failed */
#define NET_MAX_UPPER 4            /* modules above net */
#define NET_MAX_OPENING 8          /* opening flows remembered per buddy (relay) */
#define NET_MAX_ADDRS 10           /* candidates: the server + presence addresses */

/*
 * One module above net (sync, xfer).  @meta is the metadata of the flows
 * it receives (NUL-terminated; compared byte for byte).  Every hook may be
 * NULL; a bool hook returns true when the object was the module's.
 */
struct net_upper {
	const char *meta;
	void (*session_opened)(void *ctx, struct rtmfp_session *ss);
	void (*session_closed)(void *ctx, struct rtmfp_session *ss, int err);
	bool (*recv_flow)(void *ctx, struct rtmfp_recv *f, const uint8_t *meta, size_t meta_len,
			  struct rtmfp_send *assoc);
	bool (*message)(void *ctx, struct rtmfp_recv *f, const uint8_t *msg, size_t len);
	bool (*recv_closed)(void *ctx, struct rtmfp_recv *f, int err);
	bool (*writable)(void *ctx, struct rtmfp_send *f);
	bool (*send_closed)(void *ctx, struct rtmfp_send *f, int err);
	void *ctx;
};

struct net_params {
	struct loop *loop;         /* borrowed */
	struct store *store;       /* borrowed: the buddies to watch */
	const struct identity *id; /* borrowed: key, name; outlives the net */
	struct sockaddr_storage bind; /* the UDP socket's address (port 0: any) */
	bool have_rdv;             /* false: no rendezvous (no presence, no introductions) */
	struct sockaddr_storage rdv; /* the rendezvous server (numeric, resolved) */
	uint64_t keepalive_ns;     /* 0: NET_KEEPALIVE_MS */
	uint64_t retransmit_limit_ns; /* 0: NET_RETRANSMIT_LIMIT_MS */
	uint64_t relay_after_ns;   /* 0: NET_RELAY_AFTER_MS */
	uint64_t rescan_ns;        /* 0: NET_RESCAN_MS */
	uint64_t rdv_probe_ns;     /* 0: rdv_client's default (15 s) */
	/* Presence of a buddy changed (see the file comment). */
	void (*presence)(void *ctx, const uint8_t peer_id[static STORE_PEER_ID_BYTES], bool online);
	void *ctx;
	size_t n_upper;
	struct net_upper upper[NET_MAX_UPPER];
};

/*
 * net_new - bind the socket, make the instance and the rendezvous client
 * (nothing is sent until net_start()).  @p is copied.
 * Errors: -EINVAL (no loop, store or identity; too many upper modules),
 * -ENOMEM, the socket's (-EADDRINUSE...), rtmfp_crypto/rtmfp_posix's.
 */
int net_new(struct net **out, const struct net_params *p);

/*
 * net_start - read the buddies, register the name, watch the buddies and
 * connect to the rendezvous (when one is configured; else say once in the
 * log that there is none).  Errors: those of the rendezvous client.
 */
int net_start(struct net *n);

/*
 * net_free - free the instance (no events, nothing sent), the rendezvous
 * client and every peer.  Flows held by upper modules die with the
 * instance: free those modules' flow state after this.  NULL is fine.
 */
void net_free(struct net *n);

/*
 * net_open_flow - a send flow with @meta to the buddy @peer_id (any peer
 * id: net need not know it), over the open session if there is one, else
 * starting one (see the file comment).  Without a rendezvous and without
 * a presence address, the flow waits for a session the buddy opens.
 * Errors: -EINVAL (metadata size), -ENOMEM, -ESHUTDOWN after net_shutdown().
 */
int net_open_flow(struct net *n, const uint8_t peer_id[static STORE_PEER_ID_BYTES], const uint8_t *meta,
		  size_t meta_len, struct rtmfp_send **out);

/*
 * net_shutdown - close every session in order (the rendezvous sees us go
 * offline at once, buddies at once); no new sessions.  Keep running the
 * loop until net_idle() or a deadline of the caller's.
 */
void net_shutdown(struct net *n);
/* net_idle - no session left (after net_shutdown()). */
bool net_idle(const struct net *n);

/* net_rescan - re-read the buddies from the store now (after a change). */
void net_rescan(struct net *n);

/* net_local - the socket's bound address (with the port the kernel chose). */
int net_local(const struct net *n, struct sockaddr_storage *out);
/* net_posix - the instance (for tests and the drop switch). */
struct rtmfp_posix *net_posix(const struct net *n);

/* The rendezvous as status shows it. */
struct net_rdv_info {
	bool configured;                 /* a rendezvous is set */
	struct sockaddr_storage server;  /* its address (when configured) */
	bool connected;                  /* it answered on the current session */
	bool have_observed;
	struct sockaddr_storage observed; /* the address it sees us at */
	int reg_code;                    /* last REGISTER result (RDV_*), -1 none yet */
};
void net_rdv_info(const struct net *n, struct net_rdv_info *out);

/* One buddy as status and `buddy list` show it. */
struct net_peer_info {
	bool online;                     /* see the file comment */
	bool session;                    /* a session is open */
	bool relayed;                    /* that session goes through the relay */
	bool have_addr;
	struct sockaddr_storage addr;    /* session: far address; else the presence's observed one */
	uint64_t srtt_ns;                /* session's smoothed RTT (0 unmeasured) */
};

/*
 * net_peer_info - what net knows of @peer_id: a watched buddy, or any peer
 * with an open session.  Returns 0, or -ENOENT when it knows nothing
 * (@out is then zeroed: offline, no session).
 */
int net_peer_info(const struct net *n, const uint8_t peer_id[static STORE_PEER_ID_BYTES],
		  struct net_peer_info *out);

#endif
