/*
 * rdv_client.c - a daemon's side of the rendezvous (see rdv_client.h).
 *
 * One control flow at a time.  Its lifecycle: connect() opens it and queues
 * REPORT, REGISTER and WATCH (messages wait in the flow until the session
 * opens); the server's return flow arrives (recv_flow with the flow as
 * association) and says YOUR_ADDRESS first, which marks us connected and
 * resets the backoff; when the flow fails (session timeout, server close)
 * pending lookups fail with BFS_ECLOSED and a timer reconnects after the
 * backoff, doubled each failure up to its maximum, with jitter.
 */
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include <sodium.h>

#include "buddyfs/err.h"
#include "buddyfs/identity.h"
#include "buddyfs/log.h"
#include "buddyfs/loop.h"
#include "buddyfs/rdv_client.h"
#include "buddyfs/rtmfp_crypto.h"
#include "buddyfs/rtmfp_crypto_sodium.h"
#include "buddyfs/rtmfp_posix.h"
#include "buddyfs/udp.h"

#define BACKOFF_MIN_NS (500 * LOOP_NS_PER_MS)
#define BACKOFF_MAX_NS (30 * LOOP_NS_PER_S)
#define PROBE_NS (15 * LOOP_NS_PER_S)
#define PROBE_TIMEOUT_NS (10 * LOOP_NS_PER_S)

struct pending {
	bool used;
	uint32_t req;
	rdv_lookup_fn *fn;
	void *ctx;
	bool has_expect;
	uint8_t expect[RDV_PEER_ID_BYTES];
};

/* A relay channel being set up (RELAY asked and/or OFFER received). */
struct relay_ent {
	bool used;
	bool binding;                       /* OFFER received, no READY yet */
	bool asked;                         /* our RELAY waits for its RESULT */
	uint32_t req;
	unsigned tries;
	uint8_t id[RDV_PEER_ID_BYTES];
	uint8_t token[RDV_RELAY_TOKEN_BYTES];
	struct sockaddr_storage addr;       /* server address, relay port */
};

#define RELAY_BIND_INTERVAL_NS (200 * LOOP_NS_PER_MS)
#define RELAY_BIND_TRIES 25

struct rdv_client {
	struct loop *loop;
	struct rtmfp_posix *px;
	struct rdv_client_config cfg;
	char name[RDV_NAME_MAX + 1];        /* "" when not registering */
	uint32_t reg_req;
	size_t n_watch;
	uint8_t (*watch)[RDV_PEER_ID_BYTES];
	bool watch_set;
	struct rtmfp_send *ctl_out;
	struct rtmfp_recv *ctl_in;
	bool connected;
	bool have_observed;
	struct sockaddr_storage observed;
	uint32_t next_req;
	struct pending pending[RDV_CLIENT_MAX_PENDING];
	uint64_t backoff_ns;
	struct loop_timer *retry;
	struct rdv_msg scratch;             /* one message at a time */
	struct relay_ent relays[RDV_CLIENT_MAX_RELAYS];
	struct loop_timer *relay_timer;
	struct loop_timer *probe;
	bool probe_out;                     /* a probe REPORT waits for its RESULT */
	uint32_t probe_req;
	uint32_t report_req;                /* the last REPORT's request id */
	bool have_relay;
	struct sockaddr_storage relay_addr;
};

static uint64_t now_ns(void)
{
	return rtmfp_posix_now();
}

static uint32_t new_req(struct rdv_client *c)
{
	if (++c->next_req == 0)
		c->next_req = 1;
	return c->next_req;
}

static int write_msg(struct rdv_client *c, const struct rdv_msg *m)
{
	uint8_t b[RDV_MSG_MAX_BYTES];
	struct buf_writer w;
	int rc;

	if (!c->ctl_out)
		return -ENOTCONN;
	buf_writer_init(&w, b, sizeof(b));
	rc = rdv_msg_encode(&w, m);
	if (rc)
		return rc;
	rc = rtmfp_send_write(c->ctl_out, b, buf_writer_len(&w), now_ns());
	rtmfp_posix_kick(c->px);
	return rc;
}

/* ---- what every connection sends ---- */

static int send_report(struct rdv_client *c)
{
	struct rdv_msg *m = &c->scratch;
	struct sockaddr_storage bound;
	int n;

	memset(m, 0, sizeof(*m));
	m->type = RDV_MSG_REPORT;
	m->req = new_req(c);
	if (c->cfg.n_local) {
		m->n_addrs = c->cfg.n_local;
		memcpy(m->addrs, c->cfg.local, c->cfg.n_local * sizeof(c->cfg.local[0]));
	} else if (udp_local(rtmfp_posix_udp(c->px), &bound) == 0) {
		n = rdv_client_local_addrs(m->addrs, RDV_MAX_REPORT_ADDRS, &bound);
		m->n_addrs = n > 0 ? (size_t)n : 0;
	}
	c->report_req = m->req;
	return write_msg(c, m);
}

static int send_register(struct rdv_client *c)
{
	struct rdv_msg *m = &c->scratch;
	uint8_t signed_bytes[RDV_REGISTER_SIGNED_MAX_BYTES];
	long n;

	if (!c->name[0])
		return 0;
	memset(m, 0, sizeof(*m));
	m->type = RDV_MSG_REGISTER;
	m->req = c->reg_req = new_req(c);
	strcpy(m->name, c->name);
	n = rdv_register_signed(signed_bytes, c->cfg.id->peer_id, c->name);
	if (n < 0)
		return (int)n;
	identity_sign(m->sig, c->cfg.id, signed_bytes, (size_t)n);
	return write_msg(c, m);
}

static int send_watch(struct rdv_client *c)
{
	struct rdv_msg *m = &c->scratch;

	if (!c->watch_set)
		return 0;
	memset(m, 0, sizeof(*m));
	m->type = RDV_MSG_WATCH;
	m->req = new_req(c);
	m->n_ids = c->n_watch;
	if (c->n_watch)
		memcpy(m->ids, c->watch, c->n_watch * RDV_PEER_ID_BYTES);
	return write_msg(c, m);
}

static void schedule_retry(struct rdv_client *c)
{
	uint64_t d = c->backoff_ns;

	/* jitter: between 1/2 and 1 of the backoff */
	d = d / 2 + randombytes_uniform((uint32_t)(d / 2 / LOOP_NS_PER_MS + 1)) * LOOP_NS_PER_MS;
	loop_timer_rearm(c->loop, c->retry, d);
	c->backoff_ns *= 2;
	if (c->backoff_ns > c->cfg.backoff_max_ns)
		c->backoff_ns = c->cfg.backoff_max_ns;
}

static int connect_server(struct rdv_client *c)
{
	uint8_t epd[RTMFP_MAX_EPD_BYTES];
	size_t epd_len;
	int rc;

	if (c->cfg.pin_server) {
		rtmfp_crypto_sodium_epd_peer_id(epd, c->cfg.server_id);
		epd_len = RTMFP_CRYPTO_SODIUM_EPD_PEER_ID_BYTES;
	} else {
		rc = rtmfp_crypto_sodium_epd_name(epd, sizeof(epd), &epd_len,
						  (const uint8_t *)RDV_SERVER_NAME, strlen(RDV_SERVER_NAME));
		if (rc)
			return rc;
	}
	rc = rtmfp_open_flow(rtmfp_posix_core(c->px), &c->ctl_out, epd, epd_len,
			     (const uint8_t *)RDV_PROTO_METADATA, strlen(RDV_PROTO_METADATA),
			     &c->cfg.server, 1, now_ns());
	if (rc) {
		c->ctl_out = NULL;
		return rc;
	}
	rtmfp_send_set_ctx(c->ctl_out, c);
	rc = send_report(c);
	if (rc == 0)
		rc = send_register(c);
	if (rc == 0)
		rc = send_watch(c);
	rtmfp_posix_kick(c->px);
	return rc;
}

static void on_retry(struct loop *loop, struct loop_timer *t, void *ctx)
{
	struct rdv_client *c = ctx;
	int rc;

	(void)loop;
	(void)t;
	if (c->ctl_out)
		return;
	rc = connect_server(c);
	if (rc) {
		log_debug("rendezvous: cannot connect: %s", bfs_strerror(rc));
		if (c->ctl_out) {
			rtmfp_send_close(c->ctl_out, now_ns()); /* send_closed schedules the retry */
		} else {
			schedule_retry(c);
		}
	}
}

static void fail_pending(struct rdv_client *c)
{
	for (size_t i = 0; i < RDV_CLIENT_MAX_PENDING; i++) {
		struct pending *p = &c->pending[i];

		if (!p->used)
			continue;
		p->used = false;
		if (p->fn)
			p->fn(p->ctx, BFS_ECLOSED, NULL, 0, NULL);
	}
}

/* ---- public API ---- */

/* ---- liveness ---- */

static void on_probe(struct loop *loop, struct loop_timer *t, void *ctx)
{
	struct rdv_client *c = ctx;
	struct rtmfp_session *s;

	if (!c->connected || !c->ctl_out)
		return;
	if (c->probe_out) {
		log_info("rendezvous: no answer from the server for %llu ms; reconnecting",
			 (unsigned long long)(c->cfg.probe_timeout_ns / LOOP_NS_PER_MS));
		c->probe_out = false;
		s = rdv_client_session(c);
		if (s)
			rtmfp_session_close(s, now_ns());
		else
			rtmfp_send_close(c->ctl_out, now_ns());
		rtmfp_posix_kick(c->px);
		return;
	}
	if (send_report(c) != 0)
		return;
	c->probe_out = true;
	c->probe_req = c->report_req;
	loop_timer_rearm(loop, t, c->cfg.probe_timeout_ns);
}

/* ---- relay ---- */

static struct relay_ent *relay_find(struct rdv_client *c, const uint8_t *id, bool make)
{
	struct relay_ent *free_ent = NULL;

	for (size_t i = 0; i < RDV_CLIENT_MAX_RELAYS; i++) {
		struct relay_ent *e = &c->relays[i];

		if (e->used && memcmp(e->id, id, RDV_PEER_ID_BYTES) == 0)
			return e;
		if (!e->used && !free_ent)
			free_ent = e;
	}
	if (!make || !free_ent)
		return NULL;
	memset(free_ent, 0, sizeof(*free_ent));
	free_ent->used = true;
	memcpy(free_ent->id, id, RDV_PEER_ID_BYTES);
	return free_ent;
}

static void relay_done(struct rdv_client *c, struct relay_ent *e, int code)
{
	uint8_t id[RDV_PEER_ID_BYTES];
	struct sockaddr_storage addr = e->addr;

	memcpy(id, e->id, sizeof(id));
	sodium_memzero(e, sizeof(*e));
	if (c->cfg.ev.relay)
		c->cfg.ev.relay(c->cfg.ctx, id, code, code == RDV_OK ? &addr : NULL);
}

static void relay_bind_send(struct rdv_client *c, struct relay_ent *e)
{
	uint8_t b[RDV_RELAY_BIND_BYTES];

	rdv_relay_bind_encode(b, e->token);
	udp_send(rtmfp_posix_udp(c->px), &e->addr, b, sizeof(b));
	sodium_memzero(b, sizeof(b));
	rtmfp_posix_kick(c->px);
	e->tries++;
}

static void on_relay_timer(struct loop *loop, struct loop_timer *t, void *ctx)
{
	struct rdv_client *c = ctx;
	bool again = false;

	for (size_t i = 0; i < RDV_CLIENT_MAX_RELAYS; i++) {
		struct relay_ent *e = &c->relays[i];

		if (!e->used || !e->binding)
			continue;
		if (e->tries >= RELAY_BIND_TRIES) {
			relay_done(c, e, -ETIMEDOUT);
			continue;
		}
		relay_bind_send(c, e);
		again = true;
	}
	if (again)
		loop_timer_rearm(loop, t, RELAY_BIND_INTERVAL_NS);
}

static void set_port(struct sockaddr_storage *a, uint16_t port)
{
	if (a->ss_family == AF_INET6)
		((struct sockaddr_in6 *)a)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)a)->sin_port = htons(port);
}

static void on_relay_msg(struct rdv_client *c, const struct rdv_msg *m)
{
	struct relay_ent *e = relay_find(c, m->peer_id, m->type == RDV_MSG_RELAY_OFFER);

	if (!e) {
		if (m->type == RDV_MSG_RELAY_OFFER)
			log_warn("rendezvous: too many relays being set up; an offer is ignored");
		else if (c->cfg.ev.relay) {
			/* READY for a channel bound earlier (we asked again) */
			struct sockaddr_storage addr = c->cfg.server;

			set_port(&addr, m->relay_port);
			c->cfg.ev.relay(c->cfg.ctx, m->peer_id, RDV_OK, &addr);
		}
		return;
	}
	e->addr = c->cfg.server;
	set_port(&e->addr, m->relay_port);
	c->relay_addr = e->addr;
	c->have_relay = true;
	if (m->type == RDV_MSG_RELAY_READY) {
		relay_done(c, e, RDV_OK);
		return;
	}
	memcpy(e->token, m->token, sizeof(e->token));
	e->binding = true;
	e->tries = 0;
	relay_bind_send(c, e);
	if (!loop_timer_armed(c->relay_timer))
		loop_timer_rearm(c->loop, c->relay_timer, RELAY_BIND_INTERVAL_NS);
}

int rdv_client_relay(struct rdv_client *c, const uint8_t peer_id[static RDV_PEER_ID_BYTES])
{
	struct relay_ent *e;
	int rc;

	if (!c->connected)
		return -ENOTCONN;
	e = relay_find(c, peer_id, true);
	if (!e)
		return -EAGAIN;
	memset(&c->scratch, 0, sizeof(c->scratch));
	c->scratch.type = RDV_MSG_RELAY;
	c->scratch.req = new_req(c);
	memcpy(c->scratch.peer_id, peer_id, RDV_PEER_ID_BYTES);
	rc = write_msg(c, &c->scratch);
	if (rc) {
		if (!e->binding)
			sodium_memzero(e, sizeof(*e));
		return rc;
	}
	e->asked = true;
	e->req = c->scratch.req;
	return 0;
}

int rdv_client_relay_addr(const struct rdv_client *c, struct sockaddr_storage *out)
{
	if (!c->have_relay)
		return -ENOENT;
	*out = c->relay_addr;
	return 0;
}

int rdv_client_new(struct rdv_client **out, struct loop *loop, const struct rdv_client_config *cfg)
{
	struct rdv_client *c;
	int rc;

	*out = NULL;
	if (!cfg->id || cfg->n_local > RDV_MAX_REPORT_ADDRS)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->loop = loop;
	c->cfg = *cfg;
	if (!c->cfg.backoff_min_ns)
		c->cfg.backoff_min_ns = BACKOFF_MIN_NS;
	if (!c->cfg.backoff_max_ns)
		c->cfg.backoff_max_ns = BACKOFF_MAX_NS;
	if (c->cfg.backoff_max_ns < c->cfg.backoff_min_ns)
		c->cfg.backoff_max_ns = c->cfg.backoff_min_ns;
	c->backoff_ns = c->cfg.backoff_min_ns;
	rc = loop_timer_new(loop, on_retry, c, &c->retry);
	if (rc) {
		free(c);
		return rc;
	}
	if (!c->cfg.probe_ns)
		c->cfg.probe_ns = PROBE_NS;
	if (!c->cfg.probe_timeout_ns)
		c->cfg.probe_timeout_ns = PROBE_TIMEOUT_NS;
	rc = loop_timer_new(loop, on_relay_timer, c, &c->relay_timer);
	if (rc == 0)
		rc = loop_timer_new(loop, on_probe, c, &c->probe);
	if (rc) {
		loop_timer_cancel(loop, c->retry);
		loop_timer_cancel(loop, c->relay_timer);
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

int rdv_client_start(struct rdv_client *c, struct rtmfp_posix *px)
{
	int rc;

	c->px = px;
	rc = connect_server(c);
	if (rc && !c->ctl_out)
		schedule_retry(c);
	return rc;
}

void rdv_client_free(struct rdv_client *c)
{
	if (!c)
		return;
	loop_timer_cancel(c->loop, c->retry);
	loop_timer_cancel(c->loop, c->relay_timer);
	loop_timer_cancel(c->loop, c->probe);
	sodium_memzero(c->relays, sizeof(c->relays));
	free(c->watch);
	free(c);
}

int rdv_client_register(struct rdv_client *c, const char *name)
{
	char norm[IDENTITY_NAME_MAX + 1];

	if (identity_name_normalize(norm, name) || strcmp(norm, name) != 0)
		return BFS_EBADNAME;
	strcpy(c->name, norm);
	if (c->ctl_out)
		send_register(c);
	return 0;
}

int rdv_client_watch(struct rdv_client *c, const uint8_t (*ids)[RDV_PEER_ID_BYTES], size_t n)
{
	uint8_t (*w)[RDV_PEER_ID_BYTES] = NULL;

	if (n > RDV_MAX_WATCH)
		return -EINVAL;
	if (n) {
		w = malloc(n * RDV_PEER_ID_BYTES);
		if (!w)
			return -ENOMEM;
		memcpy(w, ids, n * RDV_PEER_ID_BYTES);
	}
	free(c->watch);
	c->watch = w;
	c->n_watch = n;
	c->watch_set = true;
	if (c->ctl_out)
		send_watch(c);
	return 0;
}

int rdv_client_lookup(struct rdv_client *c, const char *name, const uint8_t *expect,
		      rdv_lookup_fn *fn, void *ctx)
{
	char norm[IDENTITY_NAME_MAX + 1];
	struct pending *p = NULL;
	struct rdv_msg *m = &c->scratch;
	int rc;

	if (identity_name_normalize(norm, name))
		return BFS_EBADNAME;
	if (!c->ctl_out || !c->connected)
		return -ENOTCONN;
	for (size_t i = 0; i < RDV_CLIENT_MAX_PENDING && !p; i++)
		if (!c->pending[i].used)
			p = &c->pending[i];
	if (!p)
		return -EAGAIN;
	memset(m, 0, sizeof(*m));
	m->type = RDV_MSG_LOOKUP;
	m->req = new_req(c);
	strcpy(m->name, norm);
	rc = write_msg(c, m);
	if (rc)
		return rc;
	*p = (struct pending){ .used = true, .req = m->req, .fn = fn, .ctx = ctx,
			       .has_expect = expect != NULL };
	if (expect)
		memcpy(p->expect, expect, RDV_PEER_ID_BYTES);
	return 0;
}

bool rdv_client_connected(const struct rdv_client *c)
{
	return c->connected;
}

int rdv_client_observed(const struct rdv_client *c, struct sockaddr_storage *out)
{
	if (!c->have_observed)
		return -ENOTCONN;
	*out = c->observed;
	return 0;
}

struct rtmfp_session *rdv_client_session(const struct rdv_client *c)
{
	struct rtmfp_session *s = c->ctl_out ? rtmfp_send_session(c->ctl_out) : NULL;

	return s && rtmfp_session_is_open(s) ? s : NULL;
}

static bool is_loopback(const struct rdv_addr *a)
{
	static const uint8_t v6_lo[16] = { [15] = 1 };

	return a->family == 4 ? a->addr[0] == 127 : memcmp(a->addr, v6_lo, 16) == 0;
}

int rdv_client_local_addrs(struct rdv_addr *out, size_t cap, const struct sockaddr_storage *bound)
{
	struct ifaddrs *ifs = NULL;
	struct rdv_addr b, lo[RDV_MAX_REPORT_ADDRS];
	size_t n = 0, n_lo = 0;
	bool any4, any6;
	static const uint8_t zero[16];

	if (rdv_addr_from_sockaddr(&b, bound, RDV_ADDR_LOCAL))
		return -EAFNOSUPPORT;
	if (memcmp(b.addr, zero, b.family == 4 ? 4 : 16) != 0) {
		if (cap == 0)
			return 0;
		out[0] = b;
		return 1;
	}
	any4 = true;
	any6 = bound->ss_family == AF_INET6;
	if (getifaddrs(&ifs) != 0)
		return -errno;
	for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
		struct rdv_addr a;

		if (!i->ifa_addr || !(i->ifa_flags & IFF_UP))
			continue;
		if (!((i->ifa_addr->sa_family == AF_INET && any4) ||
		      (i->ifa_addr->sa_family == AF_INET6 && any6)))
			continue;
		if (rdv_addr_from_sockaddr(&a, (const struct sockaddr_storage *)(const void *)i->ifa_addr,
					   RDV_ADDR_LOCAL))
			continue;
		a.port = b.port;
		if (a.family == 6 && a.addr[0] == 0xfe && (a.addr[1] & 0xc0) == 0x80)
			continue; /* link-local: needs a scope id we cannot carry */
		if (is_loopback(&a) || (i->ifa_flags & IFF_LOOPBACK)) {
			if (n_lo < RDV_MAX_REPORT_ADDRS)
				lo[n_lo++] = a;
			continue;
		}
		if (n < cap)
			out[n++] = a;
	}
	freeifaddrs(ifs);
	if (n == 0) {
		for (size_t k = 0; k < n_lo && n < cap; k++)
			out[n++] = lo[k];
	}
	return (int)n;
}

/* ---- hooks ---- */

bool rdv_client_on_recv_flow(struct rdv_client *c, struct rtmfp_recv *f, const uint8_t *meta,
			     size_t meta_len, struct rtmfp_send *assoc)
{
	if (!assoc || assoc != c->ctl_out)
		return false;
	if (c->ctl_in || meta_len != strlen(RDV_PROTO_METADATA) ||
	    memcmp(meta, RDV_PROTO_METADATA, meta_len) != 0)
		return true; /* ours, but not what we expect: rejected */
	rtmfp_recv_accept(f);
	rtmfp_recv_set_ctx(f, c);
	c->ctl_in = f;
	return true;
}

static void on_result(struct rdv_client *c, const struct rdv_msg *m)
{
	if (c->probe_out && m->req == c->probe_req) {
		c->probe_out = false;
		loop_timer_rearm(c->loop, c->probe, c->cfg.probe_ns);
		return;
	}
	for (size_t i = 0; i < RDV_CLIENT_MAX_RELAYS; i++) {
		struct relay_ent *e = &c->relays[i];

		if (!e->used || !e->asked || e->req != m->req)
			continue;
		e->asked = false;
		if (m->code != RDV_OK)
			relay_done(c, e, m->code);
		return;
	}
	if (c->name[0] && m->req == c->reg_req) {
		if (m->code != RDV_OK)
			log_warn("rendezvous: registering '%s' failed: %s", c->name, rdv_result_str(m->code));
		if (c->cfg.ev.registered)
			c->cfg.ev.registered(c->cfg.ctx, c->name, m->code);
		return;
	}
	for (size_t i = 0; i < RDV_CLIENT_MAX_PENDING; i++) {
		struct pending *p = &c->pending[i];
		uint8_t id[RDV_PEER_ID_BYTES], pk[IDENTITY_PUBLIC_KEY_BYTES];
		int code = m->code;

		if (!p->used || p->req != m->req)
			continue;
		p->used = false;
		if (code == RDV_OK) {
			identity_peer_id_of(id, m->cert, m->cert_len);
			if (identity_cert_parse(pk, m->cert, m->cert_len) != 0)
				code = BFS_EMALFORMED;
			else if (p->has_expect && sodium_memcmp(id, p->expect, sizeof(id)) != 0)
				code = BFS_EBADHASH;
		}
		if (p->fn)
			p->fn(p->ctx, code, code == RDV_OK ? m->cert : NULL, code == RDV_OK ? m->cert_len : 0,
			      code == RDV_OK ? id : NULL);
		return;
	}
}

bool rdv_client_on_message(struct rdv_client *c, struct rtmfp_recv *f, const uint8_t *msg, size_t len)
{
	struct rdv_msg *m;
	int rc;

	if (f != c->ctl_in)
		return false;
	m = malloc(sizeof(*m));
	if (!m)
		return true;
	rc = rdv_msg_decode(m, msg, len);
	if (rc || m->type < RDV_MSG_RESULT) {
		log_warn("rendezvous: the server sent a malformed message (%s)",
			 rc ? bfs_strerror(rc) : "a client request");
		goto out;
	}
	switch (m->type) {
	case RDV_MSG_YOUR_ADDRESS:
		rdv_addr_to_sockaddr(&c->observed, &m->addrs[0], false);
		c->have_observed = true;
		c->connected = true;
		c->backoff_ns = c->cfg.backoff_min_ns;
		if (!c->probe_out)
			loop_timer_rearm(c->loop, c->probe, c->cfg.probe_ns);
		if (c->cfg.ev.connection)
			c->cfg.ev.connection(c->cfg.ctx, true, &c->observed);
		break;
	case RDV_MSG_RESULT:
		on_result(c, m);
		break;
	case RDV_MSG_PRESENCE:
		if (c->cfg.ev.presence)
			c->cfg.ev.presence(c->cfg.ctx, m->peer_id, m->online, m->addrs, m->n_addrs);
		break;
	case RDV_MSG_RELAY_OFFER:
	case RDV_MSG_RELAY_READY:
		on_relay_msg(c, m);
		break;
	}
out:
	free(m);
	return true;
}

bool rdv_client_on_recv_closed(struct rdv_client *c, struct rtmfp_recv *f, int err)
{
	(void)err;
	if (f != c->ctl_in)
		return false;
	c->ctl_in = NULL;
	/* the server ended its side: end ours, which reconnects */
	if (c->ctl_out)
		rtmfp_send_close(c->ctl_out, now_ns());
	return true;
}

bool rdv_client_on_send_closed(struct rdv_client *c, struct rtmfp_send *f, int err)
{
	bool was = c->connected;

	if (f != c->ctl_out)
		return false;
	c->ctl_out = NULL;
	c->connected = false;
	c->probe_out = false;
	loop_timer_stop(c->loop, c->probe);
	log_debug("rendezvous: control flow ended (%s); reconnecting", err ? bfs_strerror(err) : "closed");
	fail_pending(c);
	if (was && c->cfg.ev.connection)
		c->cfg.ev.connection(c->cfg.ctx, false, NULL);
	schedule_retry(c);
	return true;
}

/* ---- callbacks for an instance of the client's own ---- */

static void cb_send(void *ctx, int iface, const struct sockaddr_storage *to, const uint8_t *b, size_t n)
{
	(void)ctx;
	(void)iface;
	(void)to;
	(void)b;
	(void)n; /* rtmfp_posix replaces it */
}

static void cb_recv_flow(void *ctx, struct rtmfp_recv *f, const uint8_t *meta, size_t meta_len,
			 struct rtmfp_send *assoc)
{
	rdv_client_on_recv_flow(ctx, f, meta, meta_len, assoc);
}

static void cb_message(void *ctx, struct rtmfp_recv *f, const uint8_t *msg, size_t len)
{
	rdv_client_on_message(ctx, f, msg, len);
}

static void cb_recv_closed(void *ctx, struct rtmfp_recv *f, int err)
{
	rdv_client_on_recv_closed(ctx, f, err);
}

static void cb_send_closed(void *ctx, struct rtmfp_send *f, int err)
{
	rdv_client_on_send_closed(ctx, f, err);
}

const struct rtmfp_callbacks rdv_client_callbacks = {
	.send = cb_send,
	.recv_flow = cb_recv_flow,
	.message = cb_message,
	.recv_closed = cb_recv_closed,
	.send_closed = cb_send_closed,
};
