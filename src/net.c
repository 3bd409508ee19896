/*
 * net.c - the daemon's socket, RTMFP instance and rendezvous client, and
 * the routing of the instance's events (net.h has the picture).
 *
 * State: a list of peers (the store's buddies, plus any peer a flow was
 * opened to) with their presence, and a list of the instance's open
 * sessions with their far peer ids; a peer's session is looked up there.
 * Opening flows are remembered per peer, so that the relay fallback can add
 * the relay's address to them; each is forgotten at its send_closed event
 * (before the upper module hears of it) or when the peer's session opens.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include <sodium.h>

#include "buddyfs/buf.h"
#include "buddyfs/err.h"
#include "buddyfs/identity.h"
#include "buddyfs/log.h"
#include "buddyfs/loop.h"
#include "buddyfs/net.h"
#include "buddyfs/rdv_client.h"
#include "buddyfs/rtmfp.h"
#include "buddyfs/rtmfp_crypto.h"
#include "buddyfs/rtmfp_crypto_sodium.h"
#include "buddyfs/rtmfp_posix.h"
#include "buddyfs/udp.h"

#define ID_BYTES STORE_PEER_ID_BYTES
#define RELAY_RETRY_NS (1000 * LOOP_NS_PER_MS)
/* An "unreachable" mark expires after this: if the rendezvous still says
 * online, the modules above are told so again and try once more (the path
 * may have broken while both ends live). */
#define UNREACHABLE_NS (15 * LOOP_NS_PER_S)

struct net;

struct peer {
	struct net *net;
	struct peer *next;
	uint8_t id[ID_BYTES];
	char name[STORE_NAME_MAX + 1];
	bool buddy;        /* one of the store's buddies (watched) */
	bool seen;         /* marked by the current rescan */
	bool presence;     /* the rendezvous says online */
	bool unreachable;  /* a session failed by timeout since then */
	bool told;         /* what net_params.presence said last */
	size_t n_addrs;    /* of the last presence */
	struct sockaddr_storage addrs[RDV_MAX_PRESENCE_ADDRS];
	bool have_observed;
	struct sockaddr_storage observed;
	size_t n_opening;
	struct rtmfp_send *opening[NET_MAX_OPENING];
	struct loop_timer *relay_timer;
	struct loop_timer *unreachable_timer;
};

struct sess {
	struct sess *next;
	struct rtmfp_session *ss;
	bool closing;      /* we closed it: a newer session with the same peer replaced it */
	bool have_id;
	uint8_t id[ID_BYTES];
};

struct net {
	struct net_params p;
	bool v6;                 /* the socket is IPv6 (dual stack) */
	struct rtmfp_crypto *crypto;
	struct rtmfp_posix *px;
	struct rdv_client *rdv;
	struct peer *peers;
	struct sess *sessions;
	struct loop_timer *rescan;
	bool started, shut;
	int reg_code;
	size_t n_watch;
	uint8_t (*watch)[ID_BYTES];
	bool watch_sent;
};

static uint64_t now_ns(void)
{
	return rtmfp_posix_now();
}

static struct rtmfp *core(const struct net *n)
{
	return rtmfp_posix_core(n->px);
}

static const char *peer_label(const struct peer *p, char hex[static IDENTITY_PEER_ID_HEX_BYTES])
{
	if (p->name[0])
		return p->name;
	identity_peer_id_hex(hex, p->id);
	return hex;
}

/*
 * fit - @a as an address the socket can send to: IPv4 v4-mapped on an
 * IPv6 socket, v4-mapped as IPv4 on an IPv4 socket; false for IPv6 on an
 * IPv4 socket or another family.
 */
static bool fit(const struct net *n, struct sockaddr_storage *out, const struct sockaddr_storage *a)
{
	struct rdv_addr ra;

	if (rdv_addr_from_sockaddr(&ra, a, RDV_ADDR_LOCAL) || (ra.family == 6 && !n->v6))
		return false;
	return rdv_addr_to_sockaddr(out, &ra, n->v6) == 0;
}

/* ---- peers and sessions ---- */

static struct peer *peer_find(const struct net *n, const uint8_t id[static ID_BYTES])
{
	for (struct peer *p = n->peers; p; p = p->next)
		if (sodium_memcmp(p->id, id, ID_BYTES) == 0)
			return p;
	return NULL;
}

static void on_relay_timer(struct loop *loop, struct loop_timer *t, void *ctx);
static void on_unreachable_timer(struct loop *loop, struct loop_timer *t, void *ctx);

static struct peer *peer_make(struct net *n, const uint8_t id[static ID_BYTES])
{
	struct peer *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	if (loop_timer_new(n->p.loop, on_relay_timer, p, &p->relay_timer)) {
		free(p);
		return NULL;
	}
	if (loop_timer_new(n->p.loop, on_unreachable_timer, p, &p->unreachable_timer)) {
		loop_timer_cancel(n->p.loop, p->relay_timer);
		free(p);
		return NULL;
	}
	p->net = n;
	memcpy(p->id, id, ID_BYTES);
	p->next = n->peers;
	n->peers = p;
	return p;
}

static void peer_drop(struct net *n, struct peer *p)
{
	for (struct peer **pp = &n->peers; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	loop_timer_cancel(n->p.loop, p->relay_timer);
	loop_timer_cancel(n->p.loop, p->unreachable_timer);
	free(p);
}

/* session_of - an open session with @id, or NULL. */
static struct rtmfp_session *session_of(const struct net *n, const uint8_t id[static ID_BYTES])
{
	for (struct sess *s = n->sessions; s; s = s->next)
		if (s->have_id && !s->closing && rtmfp_session_is_open(s->ss) &&
		    sodium_memcmp(s->id, id, ID_BYTES) == 0)
			return s->ss;
	return NULL;
}

/*
 * close_older - a session with @s's peer opened: any older one with that
 * peer is stale (the peer restarted at another address, and the old one
 * only waits for its timeout); close it so that flows use the new one.
 */
static void close_older(struct net *n, const struct sess *s)
{
	struct sess *o;

	do {
		for (o = n->sessions; o; o = o->next)
			if (o != s && o->have_id && !o->closing && sodium_memcmp(o->id, s->id, ID_BYTES) == 0)
				break;
		if (o) {
			o->closing = true;
			log_debug("net: a newer session with the same peer replaces an older one");
			rtmfp_session_close(o->ss, now_ns());
		}
	} while (o);
}

/* tell - give the modules above the peer's online state when it changed
 * (or, with @again, once more: its addresses changed). */
static void tell(struct net *n, struct peer *p, bool again)
{
	bool online = p->buddy && p->presence && !p->unreachable;

	if (online == p->told && !(again && online))
		return;
	p->told = online;
	if (n->p.presence)
		n->p.presence(n->p.ctx, p->id, online);
}

static void forget_opening(struct peer *p, const struct rtmfp_send *f)
{
	for (size_t i = 0; i < p->n_opening; i++) {
		if (p->opening[i] == f) {
			p->opening[i] = p->opening[--p->n_opening];
			return;
		}
	}
}

/* prune_opening - drop the flows that have a session now. */
static void prune_opening(struct peer *p)
{
	for (size_t i = 0; i < p->n_opening;) {
		if (rtmfp_send_session(p->opening[i]))
			p->opening[i] = p->opening[--p->n_opening];
		else
			i++;
	}
}

static void on_unreachable_timer(struct loop *loop, struct loop_timer *t, void *ctx)
{
	struct peer *p = ctx;

	(void)loop;
	(void)t;
	if (!p->unreachable || p->net->shut)
		return;
	p->unreachable = false;
	tell(p->net, p, false);
}

/* ---- buddies from the store ---- */

static int rescan_one(void *ctx, const struct store_peer *sp)
{
	struct net *n = ctx;
	struct peer *p;

	if (sp->buddy != STORE_BUDDY_ADDED)
		return 0;
	p = peer_find(n, sp->id);
	if (!p) {
		p = peer_make(n, sp->id);
		if (!p)
			return -ENOMEM;
	}
	p->buddy = true;
	p->seen = true;
	memcpy(p->name, sp->name, sizeof(p->name));
	return 0;
}

static void rescan(struct net *n)
{
	uint8_t (*ids)[ID_BYTES] = NULL;
	size_t count = 0, k = 0;
	struct peer *p, *next;
	bool same;
	int rc;

	for (p = n->peers; p; p = p->next)
		p->seen = false;
	rc = store_peer_foreach(n->p.store, rescan_one, n);
	if (rc) {
		log_warn("net: cannot read the buddies from the store: %s", bfs_strerror(rc));
		return;
	}
	for (p = n->peers; p; p = next) {
		next = p->next;
		if (p->buddy && !p->seen) {
			p->buddy = false; /* removed from the store */
			tell(n, p, false);
		}
		if (!p->buddy && p->n_opening == 0)
			peer_drop(n, p);
		else if (p->buddy)
			count++;
	}
	if (count > RDV_MAX_WATCH)
		count = RDV_MAX_WATCH;
	if (count) {
		ids = calloc(count, ID_BYTES);
		if (!ids)
			return;
		for (p = n->peers; p && k < count; p = p->next)
			if (p->buddy)
				memcpy(ids[k++], p->id, ID_BYTES);
	}
	/* peers are kept newest first: compare as sets */
	same = k == n->n_watch;
	for (size_t i = 0; same && i < k; i++) {
		bool found = false;

		for (size_t j = 0; j < n->n_watch && !found; j++)
			found = memcmp(ids[i], n->watch[j], ID_BYTES) == 0;
		same = found;
	}
	if (same && n->watch_sent) {
		free(ids);
		return;
	}
	free(n->watch);
	n->watch = ids;
	n->n_watch = k;
	if (n->rdv) {
		rc = rdv_client_watch(n->rdv, (const uint8_t (*)[RDV_PEER_ID_BYTES])n->watch, n->n_watch);
		if (rc)
			log_warn("net: cannot watch the buddies: %s", bfs_strerror(rc));
		else
			n->watch_sent = true;
	} else {
		n->watch_sent = true;
	}
}

static void on_rescan(struct loop *loop, struct loop_timer *t, void *ctx)
{
	struct net *n = ctx;

	rescan(n);
	if (!n->shut)
		loop_timer_rearm(loop, t, n->p.rescan_ns);
}

void net_rescan(struct net *n)
{
	rescan(n);
}

/* ---- the relay fallback ---- */

static void on_relay_timer(struct loop *loop, struct loop_timer *t, void *ctx)
{
	struct peer *p = ctx;
	struct net *n = p->net;
	char hex[IDENTITY_PEER_ID_HEX_BYTES];
	int rc;

	if (n->shut || !n->rdv)
		return;
	prune_opening(p);
	if (p->n_opening == 0 || session_of(n, p->id))
		return;
	rc = rdv_client_relay(n->rdv, p->id);
	if (rc == -ENOTCONN || rc == -EAGAIN) {
		loop_timer_rearm(loop, t, RELAY_RETRY_NS);
		return;
	}
	if (rc)
		log_warn("net: cannot ask for a relay to %s: %s", peer_label(p, hex), bfs_strerror(rc));
	else
		log_info("net: no session with %s after %llu ms: asking for a relay", peer_label(p, hex),
			 (unsigned long long)(n->p.relay_after_ns / LOOP_NS_PER_MS));
}

/* ---- rendezvous events ---- */

static void ev_connection(void *ctx, bool up, const struct sockaddr_storage *observed)
{
	char text[UDP_ADDR_STR_BYTES];

	(void)ctx;
	if (up) {
		udp_addr_format(text, observed);
		log_info("rendezvous: connected, it sees us at %s", text);
	} else {
		log_info("rendezvous: disconnected (reconnecting)");
	}
}

static void ev_registered(void *ctx, const char *name, int code)
{
	struct net *n = ctx;

	if (code != RDV_OK && code != n->reg_code)
		log_warn("rendezvous: cannot register '%s': %s", name,
			 code >= 0 ? rdv_result_str((unsigned)code) : bfs_strerror(code));
	else if (code == RDV_OK && n->reg_code != RDV_OK)
		log_info("rendezvous: registered '%s'", name);
	n->reg_code = code;
}

static void ev_presence(void *ctx, const uint8_t peer_id[static RDV_PEER_ID_BYTES], bool online,
			const struct rdv_addr *addrs, size_t n_addrs)
{
	struct net *n = ctx;
	struct peer *p = peer_find(n, peer_id);
	struct sockaddr_storage sa[RDV_MAX_PRESENCE_ADDRS], obs;
	char hex[IDENTITY_PEER_ID_HEX_BYTES];
	bool have_obs = false, changed;
	size_t k = 0;

	if (!p || !p->buddy)
		return;
	for (size_t i = 0; i < n_addrs && k < RDV_MAX_PRESENCE_ADDRS; i++) {
		struct sockaddr_storage a;

		if (rdv_addr_to_sockaddr(&a, &addrs[i], false) || !fit(n, &sa[k], &a))
			continue;
		if (addrs[i].kind == RDV_ADDR_OBSERVED) {
			obs = a;
			have_obs = true;
		}
		k++;
	}
	changed = k != p->n_addrs;
	for (size_t i = 0; !changed && i < k; i++)
		changed = !udp_addr_equal(&sa[i], &p->addrs[i]);
	memcpy(p->addrs, sa, k * sizeof(sa[0]));
	p->n_addrs = k;
	p->have_observed = have_obs;
	if (have_obs)
		p->observed = obs;
	if (online != p->presence)
		log_info("net: %s is %s", peer_label(p, hex), online ? "online" : "offline");
	p->presence = online;
	if (!online) {
		tell(n, p, false);
		return;
	}
	p->unreachable = false;
	/* a flow still opening to it gets its (new) addresses as candidates */
	prune_opening(p);
	for (size_t f = 0; f < p->n_opening && changed; f++)
		for (size_t i = 0; i < k; i++)
			rtmfp_send_add_address(p->opening[f], &sa[i], now_ns());
	rtmfp_posix_kick(n->px);
	tell(n, p, changed);
}

static void ev_relay(void *ctx, const uint8_t peer_id[static RDV_PEER_ID_BYTES], int code,
		     const struct sockaddr_storage *relay)
{
	struct net *n = ctx;
	struct peer *p = peer_find(n, peer_id);
	char hex[IDENTITY_PEER_ID_HEX_BYTES], text[UDP_ADDR_STR_BYTES];
	struct sockaddr_storage a;

	if (!p)
		return;
	if (code != RDV_OK) {
		log_warn("net: no relay to %s: %s", peer_label(p, hex),
			 code > 0 ? rdv_result_str((unsigned)code) : bfs_strerror(code));
		return;
	}
	udp_addr_format(text, relay);
	log_info("net: relay to %s ready at %s", peer_label(p, hex), text);
	if (!fit(n, &a, relay))
		return;
	prune_opening(p);
	for (size_t i = 0; i < p->n_opening; i++)
		rtmfp_send_add_address(p->opening[i], &a, now_ns());
	rtmfp_posix_kick(n->px);
}

/* ---- instance events: the rendezvous client first, then the modules above ---- */

static void cb_session_opened(void *ctx, struct rtmfp_session *ss)
{
	struct net *n = ctx;
	struct sess *s = calloc(1, sizeof(*s));
	struct peer *p = NULL;

	if (s) {
		s->ss = ss;
		s->have_id = rtmfp_session_far_peer_id(ss, s->id) == 0;
		s->next = n->sessions;
		n->sessions = s;
		if (s->have_id) {
			p = peer_find(n, s->id);
			close_older(n, s);
		}
	}
	if (p) {
		prune_opening(p);
		loop_timer_stop(n->p.loop, p->relay_timer);
		if (p->unreachable) {
			p->unreachable = false;
			tell(n, p, false);
		}
	}
	for (size_t i = 0; i < n->p.n_upper; i++)
		if (n->p.upper[i].session_opened)
			n->p.upper[i].session_opened(n->p.upper[i].ctx, ss);
}

static void cb_session_closed(void *ctx, struct rtmfp_session *ss, int err)
{
	struct net *n = ctx;
	struct sess *gone = NULL;
	struct peer *p;
	char hex[IDENTITY_PEER_ID_HEX_BYTES];

	for (size_t i = 0; i < n->p.n_upper; i++)
		if (n->p.upper[i].session_closed)
			n->p.upper[i].session_closed(n->p.upper[i].ctx, ss, err);
	for (struct sess **pp = &n->sessions; *pp; pp = &(*pp)->next) {
		if ((*pp)->ss == ss) {
			gone = *pp;
			*pp = gone->next;
			break;
		}
	}
	if (!gone)
		return;
	p = gone->have_id ? peer_find(n, gone->id) : NULL;
	if (p && p->buddy) {
		log_info("net: session with %s closed: %s", peer_label(p, hex), err ? bfs_strerror(err) : "closed");
		if (err == -ETIMEDOUT && !session_of(n, p->id) && !n->shut) {
			p->unreachable = true;
			loop_timer_rearm(n->p.loop, p->unreachable_timer, UNREACHABLE_NS);
			tell(n, p, false);
		}
	}
	free(gone);
}

static bool meta_is(const char *want, const uint8_t *meta, size_t len)
{
	return want && strlen(want) == len && memcmp(want, meta, len) == 0;
}

static void cb_recv_flow(void *ctx, struct rtmfp_recv *f, const uint8_t *meta, size_t meta_len,
			 struct rtmfp_send *assoc)
{
	struct net *n = ctx;

	if (n->rdv && rdv_client_on_recv_flow(n->rdv, f, meta, meta_len, assoc))
		return;
	for (size_t i = 0; i < n->p.n_upper; i++) {
		const struct net_upper *u = &n->p.upper[i];

		if (meta_is(u->meta, meta, meta_len)) {
			if (u->recv_flow)
				u->recv_flow(u->ctx, f, meta, meta_len, assoc);
			return; /* not accepted there: rejected */
		}
	}
	log_debug("net: rejected a flow with unknown metadata (%zu bytes)", meta_len);
	/* not accepted: the instance rejects it (Flow Exception Report) */
}

static void cb_message(void *ctx, struct rtmfp_recv *f, const uint8_t *msg, size_t len)
{
	struct net *n = ctx;

	if (n->rdv && rdv_client_on_message(n->rdv, f, msg, len))
		return;
	for (size_t i = 0; i < n->p.n_upper; i++)
		if (n->p.upper[i].message && n->p.upper[i].message(n->p.upper[i].ctx, f, msg, len))
			return;
}

static void cb_recv_closed(void *ctx, struct rtmfp_recv *f, int err)
{
	struct net *n = ctx;

	if (n->rdv && rdv_client_on_recv_closed(n->rdv, f, err))
		return;
	for (size_t i = 0; i < n->p.n_upper; i++)
		if (n->p.upper[i].recv_closed && n->p.upper[i].recv_closed(n->p.upper[i].ctx, f, err))
			return;
}

static void cb_writable(void *ctx, struct rtmfp_send *f)
{
	struct net *n = ctx;

	for (size_t i = 0; i < n->p.n_upper; i++)
		if (n->p.upper[i].writable && n->p.upper[i].writable(n->p.upper[i].ctx, f))
			return;
}

static void cb_send_closed(void *ctx, struct rtmfp_send *f, int err)
{
	struct net *n = ctx;

	for (struct peer *p = n->peers; p; p = p->next)
		forget_opening(p, f);
	if (n->rdv && rdv_client_on_send_closed(n->rdv, f, err))
		return;
	for (size_t i = 0; i < n->p.n_upper; i++)
		if (n->p.upper[i].send_closed && n->p.upper[i].send_closed(n->p.upper[i].ctx, f, err))
			return;
}

static const struct rtmfp_callbacks net_callbacks = {
	.session_opened = cb_session_opened,
	.session_closed = cb_session_closed,
	.recv_flow = cb_recv_flow,
	.message = cb_message,
	.recv_closed = cb_recv_closed,
	.writable = cb_writable,
	.send_closed = cb_send_closed,
};

/* ---- the API ---- */

int net_new(struct net **out, const struct net_params *params)
{
	struct rtmfp_params rp;
	struct rdv_client_config cfg;
	struct sockaddr_storage bound;
	struct net *n;
	int rc;

	*out = NULL;
	if (!params->loop || !params->store || !params->id || params->n_upper > NET_MAX_UPPER)
		return -EINVAL;
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->p = *params;
	n->reg_code = -1;
	if (!n->p.keepalive_ns)
		n->p.keepalive_ns = NET_KEEPALIVE_MS * LOOP_NS_PER_MS;
	if (!n->p.retransmit_limit_ns)
		n->p.retransmit_limit_ns = NET_RETRANSMIT_LIMIT_MS * LOOP_NS_PER_MS;
	if (!n->p.relay_after_ns)
		n->p.relay_after_ns = NET_RELAY_AFTER_MS * LOOP_NS_PER_MS;
	if (!n->p.rescan_ns)
		n->p.rescan_ns = NET_RESCAN_MS * LOOP_NS_PER_MS;
	rtmfp_params_default(&rp);
	rp.keepalive_ns = n->p.keepalive_ns;
	rp.retransmit_limit_ns = n->p.retransmit_limit_ns;
	rc = rtmfp_crypto_sodium_new(&n->crypto, n->p.id->secret_key, NULL, 0, 0);
	if (rc)
		goto fail;
	if (n->p.have_rdv) {
		memset(&cfg, 0, sizeof(cfg));
		cfg.id = n->p.id;
		cfg.probe_ns = n->p.rdv_probe_ns;
		cfg.ev.connection = ev_connection;
		cfg.ev.registered = ev_registered;
		cfg.ev.presence = ev_presence;
		cfg.ev.relay = ev_relay;
		cfg.ctx = n;
		/* the server's address is fitted to the socket's family below */
		cfg.server = n->p.rdv;
	}
	rc = rtmfp_posix_new(&n->px, n->p.loop, n->crypto, &net_callbacks, n, &rp, &n->p.bind);
	if (rc)
		goto fail;
	rc = udp_local(rtmfp_posix_udp(n->px), &bound);
	if (rc)
		goto fail;
	n->v6 = bound.ss_family == AF_INET6;
	if (n->p.have_rdv) {
		if (!fit(n, &cfg.server, &n->p.rdv)) {
			rc = -EAFNOSUPPORT; /* an IPv6 rendezvous and an IPv4 socket */
			goto fail;
		}
		n->p.rdv = cfg.server;
		rc = rdv_client_new(&n->rdv, n->p.loop, &cfg);
		if (rc)
			goto fail;
	}
	rc = loop_timer_new(n->p.loop, on_rescan, n, &n->rescan);
	if (rc)
		goto fail;
	*out = n;
	return 0;
fail:
	net_free(n);
	return rc;
}

int net_start(struct net *n)
{
	int rc = 0;

	if (n->started)
		return 0;
	n->started = true;
	if (n->rdv) {
		rc = rdv_client_register(n->rdv, n->p.id->config.name);
		if (rc)
			log_warn("rendezvous: will not register '%s': %s", n->p.id->config.name, bfs_strerror(rc));
	} else {
		log_info("no rendezvous configured: no presence or introductions; buddies are reached "
			 "only when they connect to us");
	}
	rescan(n);
	if (n->rdv) {
		rc = rdv_client_start(n->rdv, n->px);
		if (rc)
			return rc;
	}
	loop_timer_rearm(n->p.loop, n->rescan, n->p.rescan_ns);
	rtmfp_posix_kick(n->px);
	return 0;
}

void net_free(struct net *n)
{
	if (!n)
		return;
	rtmfp_posix_free(n->px); /* first: no events after this */
	rdv_client_free(n->rdv);
	rtmfp_crypto_free(n->crypto);
	while (n->peers)
		peer_drop(n, n->peers);
	while (n->sessions) {
		struct sess *s = n->sessions;

		n->sessions = s->next;
		free(s);
	}
	loop_timer_cancel(n->p.loop, n->rescan);
	free(n->watch);
	free(n);
}

int net_open_flow(struct net *n, const uint8_t peer_id[static STORE_PEER_ID_BYTES], const uint8_t *meta,
		  size_t meta_len, struct rtmfp_send **out)
{
	uint8_t epd[RTMFP_CRYPTO_SODIUM_EPD_PEER_ID_BYTES];
	struct sockaddr_storage cand[NET_MAX_ADDRS];
	struct peer *p = peer_find(n, peer_id);
	size_t k = 0;
	int rc;

	*out = NULL;
	if (n->shut)
		return -ESHUTDOWN;
	if (n->rdv)
		cand[k++] = n->p.rdv;
	for (size_t i = 0; p && i < p->n_addrs && k < NET_MAX_ADDRS; i++) {
		bool dup = false;

		for (size_t j = 0; j < k && !dup; j++)
			dup = udp_addr_equal(&cand[j], &p->addrs[i]);
		if (!dup)
			cand[k++] = p->addrs[i];
	}
	rtmfp_crypto_sodium_epd_peer_id(epd, peer_id);
	rc = rtmfp_open_flow(core(n), out, epd, sizeof(epd), meta, meta_len, cand, k, now_ns());
	if (rc) {
		*out = NULL;
		return rc;
	}
	rtmfp_posix_kick(n->px);
	if (rtmfp_send_session(*out) && rtmfp_session_is_open(rtmfp_send_session(*out)))
		return 0;
	if (!p)
		p = peer_make(n, peer_id);
	if (!p)
		return 0; /* no relay fallback for it; the flow still opens */
	prune_opening(p);
	if (p->n_opening < NET_MAX_OPENING)
		p->opening[p->n_opening++] = *out;
	if (n->rdv && !loop_timer_armed(p->relay_timer))
		loop_timer_rearm(n->p.loop, p->relay_timer, n->p.relay_after_ns);
	return 0;
}

void net_shutdown(struct net *n)
{
	if (n->shut)
		return;
	n->shut = true;
	loop_timer_stop(n->p.loop, n->rescan);
	rtmfp_shutdown(core(n), true, now_ns());
	rtmfp_posix_kick(n->px);
}

bool net_idle(const struct net *n)
{
	return rtmfp_idle(core(n));
}

int net_local(const struct net *n, struct sockaddr_storage *out)
{
	return udp_local(rtmfp_posix_udp(n->px), out);
}

struct rtmfp_posix *net_posix(const struct net *n)
{
	return n->px;
}

void net_rdv_info(const struct net *n, struct net_rdv_info *out)
{
	memset(out, 0, sizeof(*out));
	out->reg_code = n->reg_code;
	if (!n->rdv)
		return;
	out->configured = true;
	out->server = n->p.rdv;
	out->connected = rdv_client_connected(n->rdv);
	out->have_observed = rdv_client_observed(n->rdv, &out->observed) == 0;
}

int net_peer_info(const struct net *n, const uint8_t peer_id[static STORE_PEER_ID_BYTES],
		  struct net_peer_info *out)
{
	const struct peer *p = peer_find(n, peer_id);
	struct rtmfp_session *ss = session_of(n, peer_id);
	struct sockaddr_storage relay;

	memset(out, 0, sizeof(*out));
	if (!p && !ss)
		return -ENOENT;
	if (ss) {
		struct rtmfp_session_stats st;

		out->online = true;
		out->session = true;
		out->have_addr = true;
		out->addr = *rtmfp_session_far_addr(ss);
		out->relayed = n->rdv && rdv_client_relay_addr(n->rdv, &relay) == 0 &&
			       udp_addr_equal(&relay, &out->addr);
		rtmfp_session_stats(ss, &st);
		out->srtt_ns = st.srtt_ns;
		return 0;
	}
	out->online = p->presence && !p->unreachable;
	if (out->online && p->have_observed) {
		out->have_addr = true;
		out->addr = p->observed;
	}
	return 0;
}
