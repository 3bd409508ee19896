/*
 * rtmfp.c - the RTMFP instance: session table, startup, public API (see
 * rtmfp.h; RFC 7016 §3.5.1).
 *
 * Entry points (feed, timer, API calls) run inside enter()/leave(): leave()
 * of the outermost call assembles and sends what sessions have queued, frees
 * what was closed during the call, and calls the flush hint once.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "buddyfs/err.h"
#include "buddyfs/rtmfp_session.h"

#define COOKIE_MAC1_OFF 4
#define COOKIE_MAC2_OFF 20

/* ---- small helpers ---- */

void rtmfp_params_default(struct rtmfp_params *p)
{
	p->keepalive_ns = 20 * RTMFP_NS_PER_SEC;
	p->idle_limit_ns = 300 * RTMFP_NS_PER_SEC;
	p->retransmit_limit_ns = 30 * RTMFP_NS_PER_SEC;
	p->open_timeout_ns = 95 * RTMFP_NS_PER_SEC;
	p->max_packet_bytes = RTMFP_WIRE_MAX_DATAGRAM_BYTES;
}

bool rtmfp_addr_eq(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port &&
		       x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return false;
}

size_t rtmfp_addr_bytes(uint8_t out[static 32], int iface, const struct sockaddr_storage *a)
{
	size_t n = 0;

	buf_store32_be(out, (uint32_t)iface);
	n = 4;
	out[n++] = (uint8_t)a->ss_family;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a;

		memcpy(out + n, &x->sin_addr, 4);
		n += 4;
		memcpy(out + n, &x->sin_port, 2);
		n += 2;
	} else if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a;

		memcpy(out + n, &x->sin6_addr, 16);
		n += 16;
		memcpy(out + n, &x->sin6_port, 2);
		n += 2;
	}
	return n;
}

void rtmfp_mac(const struct rtmfp *r, uint8_t out[16], const uint8_t *a, size_t alen,
	       const uint8_t *b, size_t blen)
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, r->secret, sizeof(r->secret), 16);
	crypto_generichash_update(&st, a, alen);
	if (blen)
		crypto_generichash_update(&st, b, blen);
	crypto_generichash_final(&st, out, 16);
	sodium_memzero(&st, sizeof(st));
}

uint16_t rtmfp_ts_now(const struct rtmfp *r, uint64_t now)
{
	return rtmfp_wire_timestamp((now - r->epoch) / RTMFP_NS_PER_MS);
}

/* ---- cookies (§3.5.1.1.2): stateless, bound to address and time ---- */

enum cookie_check { COOKIE_BAD, COOKIE_MISMATCH, COOKIE_OK };

static void cookie_make(const struct rtmfp *r, uint8_t out[static RTMFP_COOKIE_BYTES],
			const struct sockaddr_storage *from, uint64_t now)
{
	uint8_t ab[32];
	size_t an = rtmfp_addr_bytes(ab, 0, from);

	buf_store32_be(out, (uint32_t)((now - r->epoch) / RTMFP_NS_PER_SEC));
	rtmfp_mac(r, out + COOKIE_MAC1_OFF, out, 4, NULL, 0);
	rtmfp_mac(r, out + COOKIE_MAC2_OFF, out, 4, ab, an);
}

static enum cookie_check cookie_check(const struct rtmfp *r, const uint8_t *c, size_t len,
				      const struct sockaddr_storage *from, uint64_t now)
{
	uint8_t mac[16], ab[32];
	uint64_t t, age_now;
	size_t an;

	if (len != RTMFP_COOKIE_BYTES)
		return COOKIE_BAD;
	t = buf_load32_be(c);
	age_now = (now - r->epoch) / RTMFP_NS_PER_SEC;
	if (t > age_now || (age_now - t) * RTMFP_NS_PER_SEC > RTMFP_MAX_COOKIE_AGE_NS)
		return COOKIE_BAD;
	rtmfp_mac(r, mac, c, 4, NULL, 0);
	if (crypto_verify_16(mac, c + COOKIE_MAC1_OFF) != 0)
		return COOKIE_BAD;
	an = rtmfp_addr_bytes(ab, 0, from);
	rtmfp_mac(r, mac, c, 4, ab, an);
	if (crypto_verify_16(mac, c + COOKIE_MAC2_OFF) != 0)
		return COOKIE_MISMATCH;
	return COOKIE_OK;
}

/* ---- session table ---- */

static size_t bucket_of(const struct rtmfp *r, uint32_t id)
{
	return (id * 2654435761u) & (r->n_buckets - 1);
}

static struct rtmfp_session *table_find(const struct rtmfp *r, uint32_t id)
{
	struct rtmfp_session *s;

	for (s = r->buckets[bucket_of(r, id)]; s; s = s->hnext)
		if (s->rx_id == id)
			return s;
	return NULL;
}

/* ---- the index by destination address (find_open_by_addr) ---- */

static size_t addr_bucket(const struct rtmfp *r, size_t n_buckets, const struct sockaddr_storage *a)
{
	uint64_t h = r->addr_seed;
	const uint8_t *p = NULL;
	size_t len = 0;
	uint16_t port = 0;

	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *v4 = (const void *)a;

		p = (const uint8_t *)&v4->sin_addr;
		len = 4;
		port = v4->sin_port;
	} else if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *v6 = (const void *)a;

		p = (const uint8_t *)&v6->sin6_addr;
		len = 16;
		port = v6->sin6_port;
	}
	h = (h ^ port) * 0x100000001b3u;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3u;
	h ^= h >> 29;
	return (size_t)h & (n_buckets - 1);
}

static void addr_unindex(struct rtmfp *r, struct rtmfp_session *s)
{
	struct rtmfp_session **pp;

	if (!s->in_addr)
		return;
	for (pp = &r->abuckets[addr_bucket(r, r->n_buckets, &s->dest)]; *pp; pp = &(*pp)->anext) {
		if (*pp == s) {
			*pp = s->anext;
			break;
		}
	}
	s->in_addr = false;
}

void rtmfp_session_set_dest(struct rtmfp_session *s, const struct sockaddr_storage *a)
{
	struct rtmfp *r = s->r;
	size_t b;

	addr_unindex(r, s);
	rtmfp_touch(s);
	s->dest = *a;
	b = addr_bucket(r, r->n_buckets, a);
	s->anext = r->abuckets[b];
	r->abuckets[b] = s;
	s->in_addr = true;
}

/* ---- the deadline heap ---- */

static void heap_put(struct rtmfp *r, size_t i, struct rtmfp_session *s)
{
	r->heap[i] = s;
	s->heap_i = i + 1;
}

static void heap_up(struct rtmfp *r, size_t i)
{
	struct rtmfp_session *s = r->heap[i];

	while (i > 0 && r->heap[(i - 1) / 2]->heap_dl > s->heap_dl) {
		heap_put(r, i, r->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_put(r, i, s);
}

static void heap_down(struct rtmfp *r, size_t i)
{
	struct rtmfp_session *s = r->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= r->heap_n)
			break;
		if (c + 1 < r->heap_n && r->heap[c + 1]->heap_dl < r->heap[c]->heap_dl)
			c++;
		if (r->heap[c]->heap_dl >= s->heap_dl)
			break;
		heap_put(r, i, r->heap[c]);
		i = c;
	}
	heap_put(r, i, s);
}

static void heap_del(struct rtmfp *r, struct rtmfp_session *s)
{
	struct rtmfp_session *last;
	size_t i;

	if (s->heap_i == 0)
		return;
	i = s->heap_i - 1;
	s->heap_i = 0;
	last = r->heap[--r->heap_n];
	if (last == s)
		return;
	heap_put(r, i, last);
	heap_up(r, i);
	heap_down(r, last->heap_i - 1);
}

/* heap_set - keep @s under deadline @dl (RTMFP_NEVER: not at all). */
static void heap_set(struct rtmfp *r, struct rtmfp_session *s, uint64_t dl)
{
	if (dl == RTMFP_NEVER) {
		heap_del(r, s);
		return;
	}
	if (s->heap_i == 0) {
		if (r->heap_n == r->heap_cap) {
			size_t nc = r->heap_cap ? 2 * r->heap_cap : 64;
			struct rtmfp_session **h = realloc(r->heap, nc * sizeof(*h));

			if (!h)
				return; /* the full walk still finds it */
			r->heap = h;
			r->heap_cap = nc;
		}
		s->heap_dl = dl;
		heap_put(r, r->heap_n++, s);
		heap_up(r, s->heap_i - 1);
		return;
	}
	s->heap_dl = dl;
	heap_up(r, s->heap_i - 1);
	heap_down(r, s->heap_i - 1);
}

void rtmfp_touch(struct rtmfp_session *s)
{
	struct rtmfp *r = s->r;

	if (s->touched || r->freeing)
		return;
	s->touched = true;
	s->tnext = r->touched;
	r->touched = s;
}

/* rekey - the touched sessions' deadlines into the heap. */
static void rekey(struct rtmfp *r)
{
	while (r->touched) {
		struct rtmfp_session *s = r->touched;

		r->touched = s->tnext;
		s->tnext = NULL;
		s->touched = false;
		if (s->dead)
			heap_del(r, s);
		else
			heap_set(r, s, rtmfp_session_deadline(s));
	}
}

static int table_grow(struct rtmfp *r)
{
	size_t n = r->n_buckets * 2, i;
	struct rtmfp_session **nb = calloc(n, sizeof(*nb)), **old = r->buckets;
	struct rtmfp_session **na = calloc(n, sizeof(*na));
	size_t old_n = r->n_buckets;

	if (!nb || !na) {
		free(nb);
		free(na);
		return -ENOMEM;
	}
	for (struct rtmfp_session *s = r->sessions; s; s = s->next) {
		if (s->in_addr) {
			size_t b = addr_bucket(r, n, &s->dest);

			s->anext = na[b];
			na[b] = s;
		}
	}
	free(r->abuckets);
	r->abuckets = na;
	r->buckets = nb;
	r->n_buckets = n;
	for (i = 0; i < old_n; i++) {
		struct rtmfp_session *s = old[i], *next;

		for (; s; s = next) {
			size_t b = bucket_of(r, s->rx_id);

			next = s->hnext;
			s->hnext = nb[b];
			nb[b] = s;
		}
	}
	free(old);
	return 0;
}

/* table_add - give @s a fresh random receive session id (never 0). */
static int table_add(struct rtmfp *r, struct rtmfp_session *s)
{
	uint32_t id;
	size_t b;

	if (r->n_sessions + 1 > r->n_buckets * 2 && table_grow(r) != 0)
		return -ENOMEM;
	do
		rtmfp_crypto_random(&id, sizeof(id));
	while (id == 0 || table_find(r, id));
	s->rx_id = id;
	b = bucket_of(r, id);
	s->hnext = r->buckets[b];
	r->buckets[b] = s;
	r->n_sessions++;
	if (s->initiator)
		r->n_initiators++;
	rtmfp_touch(s);
	return 0;
}

static void table_remove(struct rtmfp *r, struct rtmfp_session *s)
{
	struct rtmfp_session **pp = &r->buckets[bucket_of(r, s->rx_id)];

	addr_unindex(r, s);
	heap_del(r, s);
	for (; *pp; pp = &(*pp)->hnext) {
		if (*pp == s) {
			*pp = s->hnext;
			r->n_sessions--;
			if (s->initiator)
				r->n_initiators--;
			return;
		}
	}
}

/* ---- sending ---- */

uint8_t *rtmfp_tx_buf(struct rtmfp *r, size_t *limit)
{
	*limit = r->max_plain;
	return r->tx + RTMFP_WIRE_SSID_BYTES + rtmfp_crypto_front_bytes(r->crypto);
}

void rtmfp_tx_packet(struct rtmfp *r, struct rtmfp_crypto_key *key, uint32_t ssid, int iface,
		     const struct sockaddr_storage *to, size_t clear_len)
{
	uint8_t *pkt = r->tx + RTMFP_WIRE_SSID_BYTES;
	size_t cap = sizeof(r->tx) - RTMFP_WIRE_SSID_BYTES, out = 0;
	int rc;

	if (key)
		rc = rtmfp_crypto_key_seal(key, pkt, cap, clear_len, &out);
	else
		rc = rtmfp_crypto_seal_default(r->crypto, pkt, cap, clear_len, &out);
	if (rc != 0)
		return;
	if (rtmfp_wire_ssid_scramble(r->tx, out + RTMFP_WIRE_SSID_BYTES, ssid) != 0)
		return;
	if (iface < 0) {
		for (size_t i = 0; i < r->n_ifaces; i++)
			r->cb.send(r->ctx, r->ifaces[i], to, r->tx, out + RTMFP_WIRE_SSID_BYTES);
	} else {
		r->cb.send(r->ctx, iface, to, r->tx, out + RTMFP_WIRE_SSID_BYTES);
	}
	r->sent_any = true;
}

void rtmfp_tx_startup(struct rtmfp *r, struct rtmfp_crypto_key *key, uint32_t ssid, int iface,
		      const struct sockaddr_storage *to, const uint8_t *chunk, size_t len,
		      uint64_t now)
{
	struct rtmfp_wire_header h = {
		.flags = RTMFP_WIRE_MODE_STARTUP,
		.has_timestamp = true,
		.timestamp = rtmfp_ts_now(r, now),
	};
	struct rtmfp_wire_asm a;
	size_t limit;
	uint8_t *buf = rtmfp_tx_buf(r, &limit);

	if (rtmfp_wire_asm_init(&a, buf, limit, &h) != 0)
		return;
	if (!buf_put_bytes(&a.w, chunk, len))
		return;
	rtmfp_tx_packet(r, key, ssid, iface, to, rtmfp_wire_asm_len(&a));
}

/* chunk_to - encode one chunk into a scratch buffer, then send it. */
static void send_ihello(struct rtmfp *r, struct rtmfp_session *s, const struct sockaddr_storage *to,
			uint64_t now)
{
	uint8_t buf[RTMFP_BUF_BYTES];
	struct buf_writer w;
	struct rtmfp_wire_ihello c = {
		.epd = { s->epd, s->epd_len },
		.tag = { s->tag, sizeof(s->tag) },
	};

	buf_writer_init(&w, buf, sizeof(buf));
	if (rtmfp_wire_ihello_encode(&w, &c) == 0)
		rtmfp_tx_startup(r, NULL, 0, -1, to, buf, buf_writer_len(&w), now);
}

/* ---- entry and exit ---- */

static void enter(struct rtmfp *r, uint64_t now)
{
	if (r->depth++ == 0) {
		r->now = now;
		r->sent_any = false;
	}
}

static void reap(struct rtmfp *r)
{
	while (r->dead_sends) {
		struct rtmfp_send *f = r->dead_sends;

		r->dead_sends = f->dnext;
		rtmfp_sendflow_free(f->flow);
		free(f);
	}
	while (r->dead_recvs) {
		struct rtmfp_recv *f = r->dead_recvs;

		r->dead_recvs = f->dnext;
		rtmfp_recvflow_free(f->flow);
		free(f);
	}
	while (r->dead_sessions) {
		struct rtmfp_session *s = r->dead_sessions;

		r->dead_sessions = s->dnext;
		rtmfp_session_destroy(s);
	}
}

static void leave(struct rtmfp *r)
{
	if (--r->depth > 0)
		return;
	r->depth++;
	/* pumping may queue more (an ack makes room, a flow completes): drain */
	while (r->pump) {
		struct rtmfp_session *s = r->pump;

		r->pump = s->pnext;
		s->pnext = NULL;
		s->want_pump = false;
		if (!s->dead)
			rtmfp_session_pump(s, r->now);
	}
	rekey(r);
	r->depth--;
	reap(r);
	if (r->sent_any && r->cb.flush)
		r->cb.flush(r->ctx);
	r->sent_any = false;
}

void rtmfp_wake(struct rtmfp_session *s)
{
	rtmfp_touch(s);
	/* a session that is pumping sends all it can before it returns */
	if (s->want_pump || s->dead || s->pumping)
		return;
	s->want_pump = true;
	s->pnext = s->r->pump;
	s->r->pump = s;
}

/* ---- the instance ---- */

int rtmfp_new(struct rtmfp **out, struct rtmfp_crypto *crypto,
	      const struct rtmfp_callbacks *cb, void *ctx,
	      const struct rtmfp_params *params, uint64_t now)
{
	struct rtmfp *r;
	size_t over;

	if (!crypto || !cb || !cb->send)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->crypto = crypto;
	r->cb = *cb;
	r->ctx = ctx;
	if (params)
		r->p = *params;
	else
		rtmfp_params_default(&r->p);
	over = rtmfp_crypto_overhead_bytes(crypto);
	if (r->p.max_packet_bytes > RTMFP_WIRE_MAX_DATAGRAM_BYTES)
		r->p.max_packet_bytes = RTMFP_WIRE_MAX_DATAGRAM_BYTES;
	if (r->p.max_packet_bytes < 576 || r->p.keepalive_ns == 0 || r->p.idle_limit_ns == 0 ||
	    r->p.retransmit_limit_ns == 0 || r->p.open_timeout_ns == 0) {
		free(r);
		return -EINVAL;
	}
	r->max_plain = r->p.max_packet_bytes - RTMFP_WIRE_SSID_BYTES - over;
	r->epoch = now;
	r->now = now;
	r->next_flow_id = 1;
	r->n_buckets = 64;
	r->buckets = calloc(r->n_buckets, sizeof(*r->buckets));
	r->abuckets = calloc(r->n_buckets, sizeof(*r->abuckets));
	if (!r->buckets || !r->abuckets) {
		free(r->buckets);
		free(r->abuckets);
		free(r);
		return -ENOMEM;
	}
	rtmfp_crypto_random(r->secret, sizeof(r->secret));
	rtmfp_crypto_random(&r->addr_seed, sizeof(r->addr_seed));
	r->full_scan_at = now;
	*out = r;
	return 0;
}

void rtmfp_free(struct rtmfp *r)
{
	if (!r)
		return;
	r->freeing = true;
	r->dead_sessions = NULL; /* they are on r->sessions too */
	while (r->sessions)
		rtmfp_session_destroy(r->sessions);
	reap(r);
	free(r->buckets);
	free(r->abuckets);
	free(r->heap);
	sodium_memzero(r->secret, sizeof(r->secret));
	free(r);
}

int rtmfp_add_interface(struct rtmfp *r, int iface)
{
	if (iface < 0)
		return -EINVAL;
	for (size_t i = 0; i < r->n_ifaces; i++)
		if (r->ifaces[i] == iface)
			return -EEXIST;
	if (r->n_ifaces == RTMFP_MAX_INTERFACES)
		return -ENOSPC;
	r->ifaces[r->n_ifaces++] = iface;
	return 0;
}

/* ---- finding sessions ---- */

static bool epd_matches(const struct rtmfp_session *s, const uint8_t *epd, size_t len)
{
	if (s->epd && s->epd_len == len && memcmp(s->epd, epd, len) == 0)
		return true;
	return s->cert && rtmfp_crypto_cert_selected(s->cert, epd, len);
}

static struct rtmfp_session *find_open_by_epd(struct rtmfp *r, const uint8_t *epd, size_t len)
{
	for (struct rtmfp_session *s = r->sessions; s; s = s->next)
		if (s->state == RTMFP_S_OPEN && epd_matches(s, epd, len))
			return s;
	return NULL;
}

static struct rtmfp_session *find_opening_by_epd(struct rtmfp *r, const uint8_t *epd, size_t len)
{
	for (struct rtmfp_session *s = r->sessions; s; s = s->next)
		if ((s->state == RTMFP_S_IHELLO_SENT || s->state == RTMFP_S_KEYING_SENT) &&
		    epd_matches(s, epd, len))
			return s;
	return NULL;
}

static struct rtmfp_session *find_open_by_addr(struct rtmfp *r, const struct sockaddr_storage *a)
{
	for (struct rtmfp_session *s = r->abuckets[addr_bucket(r, r->n_buckets, a)]; s; s = s->anext)
		if (s->state == RTMFP_S_OPEN && rtmfp_addr_eq(&s->dest, a))
			return s;
	return NULL;
}

static bool opening_to(const struct rtmfp_session *s, const struct sockaddr_storage *a)
{
	if (s->state == RTMFP_S_KEYING_SENT)
		return rtmfp_addr_eq(&s->dest, a);
	if (s->state == RTMFP_S_IHELLO_SENT)
		for (size_t i = 0; i < s->n_cand; i++)
			if (rtmfp_addr_eq(&s->cand[i].addr, a))
				return true;
	return false;
}

/* ---- session lifecycle, as the instance sees it ---- */

static void move_waiting(struct rtmfp_session *from, struct rtmfp_session *to, uint64_t now)
{
	while (from->waiting) {
		struct rtmfp_send *f = from->waiting;

		from->waiting = f->next;
		if (from->waiting)
			from->waiting->prev = NULL;
		f->next = f->prev = NULL;
		f->s = NULL;
		rtmfp_session_bind(to, f, now);
	}
}

void rtmfp_on_session_open(struct rtmfp_session *s, uint64_t now)
{
	struct rtmfp *r = s->r;

	/* flows waiting on other opening sessions to the same endpoint (glare,
	 * or two addresses tried) come here; only initiators have such flows
	 * (a server that never initiates skips the walk) */
	for (struct rtmfp_session *o = r->n_initiators > (s->initiator ? 1u : 0u) ? r->sessions : NULL; o;
	     o = o->next) {
		if (o == s || o->dead || !o->waiting || o->state >= RTMFP_S_OPEN)
			continue;
		if (o->epd && rtmfp_crypto_cert_selected(s->cert, o->epd, o->epd_len)) {
			move_waiting(o, s, now);
			if (o->state == RTMFP_S_IHELLO_SENT || o->state == RTMFP_S_KEYING_SENT)
				rtmfp_session_abort(o, 0, now);
		}
	}
	if (r->cb.session_opened) {
		s->reported_open = true;
		r->cb.session_opened(r->ctx, s);
	}
}

void rtmfp_on_session_gone(struct rtmfp_session *s, int err, uint64_t now)
{
	struct rtmfp *r = s->r;

	/* waiting flows: another session to the endpoint may carry them */
	if (s->waiting && s->epd) {
		struct rtmfp_session *o = find_open_by_epd(r, s->epd, s->epd_len);

		if (o && o != s)
			move_waiting(s, o, now);
	}
	while (s->waiting)
		rtmfp_send_fail(s->waiting, err ? err : -ETIMEDOUT);
	(void)now;
}

/* ---- startup: the responder, stateless until IIKeying ---- */

static void on_ihello(struct rtmfp *r, int iface, const struct sockaddr_storage *from,
		      struct rtmfp_wire_span epd, struct rtmfp_wire_span tag, uint64_t now)
{
	uint8_t cookie[RTMFP_COOKIE_BYTES], buf[RTMFP_BUF_BYTES];
	struct rtmfp_wire_rhello rh;
	struct buf_writer w;
	const uint8_t *cert;
	size_t cert_len;

	if (!rtmfp_crypto_is_selected(r->crypto, epd.p, epd.len)) {
		if (r->cb.unmatched_ihello)
			r->cb.unmatched_ihello(r->ctx, iface, from, epd.p, epd.len, tag.p, tag.len);
		return;
	}
	if (r->shutdown)
		return;
	cookie_make(r, cookie, from, now);
	rtmfp_crypto_local_cert(r->crypto, &cert, &cert_len);
	rh.tag = tag;
	rh.cookie = (struct rtmfp_wire_span){ cookie, sizeof(cookie) };
	rh.cert = (struct rtmfp_wire_span){ cert, cert_len };
	buf_writer_init(&w, buf, sizeof(buf));
	if (rtmfp_wire_rhello_encode(&w, &rh) == 0)
		rtmfp_tx_startup(r, NULL, 0, iface, from, buf, buf_writer_len(&w), now);
}

static void send_cookie_change(struct rtmfp *r, int iface, const struct sockaddr_storage *from,
			       uint32_t isid, struct rtmfp_wire_span old, uint64_t now)
{
	uint8_t cookie[RTMFP_COOKIE_BYTES], buf[RTMFP_BUF_BYTES];
	struct rtmfp_wire_cookie_change cc;
	struct buf_writer w;

	cookie_make(r, cookie, from, now);
	cc.old_cookie = old;
	cc.new_cookie = (struct rtmfp_wire_span){ cookie, sizeof(cookie) };
	buf_writer_init(&w, buf, sizeof(buf));
	if (rtmfp_wire_cookie_change_encode(&w, &cc) == 0)
		rtmfp_tx_startup(r, NULL, isid, iface, from, buf, buf_writer_len(&w), now);
}

/* make_rikeying - our RIKeying chunk for @s, kept for retransmission. */
static int make_rikeying(struct rtmfp *r, struct rtmfp_session *s, const uint8_t *skrc,
			 size_t skrc_len)
{
	uint8_t signed_buf[RTMFP_BUF_BYTES], sig[RTMFP_CRYPTO_MAX_SIG_BYTES], buf[RTMFP_BUF_BYTES];
	struct rtmfp_wire_rikeying rk = {
		.session_id = s->rx_id,
		.skrc = { skrc, skrc_len },
	};
	struct buf_writer w;
	size_t sig_len;
	int rc;

	buf_writer_init(&w, signed_buf, sizeof(signed_buf));
	rc = rtmfp_wire_rikeying_put_signed(&w, &rk);
	if (rc == 0)
		rc = rtmfp_crypto_sign(r->crypto, RTMFP_CRYPTO_SIG_RIKEYING, signed_buf,
				       buf_writer_len(&w), s->skic, s->skic_len,
				       sig, sizeof(sig), &sig_len);
	if (rc != 0)
		return rc;
	rk.signature = (struct rtmfp_wire_span){ sig, sig_len };
	buf_writer_init(&w, buf, sizeof(buf));
	rc = rtmfp_wire_rikeying_encode(&w, &rk);
	if (rc != 0)
		return rc;
	s->keying = malloc(buf_writer_len(&w));
	if (!s->keying)
		return -ENOMEM;
	memcpy(s->keying, buf, buf_writer_len(&w));
	s->keying_len = buf_writer_len(&w);
	return 0;
}

static void on_iikeying(struct rtmfp *r, int iface, const struct sockaddr_storage *from,
			const struct rtmfp_wire_iikeying *ik, uint64_t now)
{
	struct rtmfp_crypto_cert *cert = NULL;
	struct rtmfp_session *s, *old, *glare = NULL;
	uint8_t skrc[RTMFP_CRYPTO_MAX_SKRC_BYTES];
	size_t skrc_len;
	enum cookie_check cc;

	if (r->shutdown)
		return;
	cc = cookie_check(r, ik->cookie.p, ik->cookie.len, from, now);
	if (cc == COOKIE_BAD)
		return;
	if (cc == COOKIE_MISMATCH) {
		send_cookie_change(r, iface, from, ik->session_id, ik->cookie, now);
		return;
	}
	/* a retransmitted IIKeying: send the same RIKeying, no crypto */
	old = find_open_by_addr(r, from);
	if (old && !old->initiator && old->tx_id == ik->session_id &&
	    old->skic_len == ik->skic.len && memcmp(old->skic, ik->skic.p, ik->skic.len) == 0) {
		rtmfp_tx_startup(r, NULL, old->tx_id, old->iface, &old->dest, old->keying,
				 old->keying_len, now);
		return;
	}
	if (ik->skic.len > sizeof(s->skic))
		return;
	if (rtmfp_crypto_cert_decode(r->crypto, ik->cert.p, ik->cert.len, &cert) != 0)
		return;
	if (rtmfp_crypto_cert_verify(cert, RTMFP_CRYPTO_SIG_IIKEYING, ik->signed_part.p,
				     ik->signed_part.len, NULL, 0, ik->signature.p,
				     ik->signature.len) != 0)
		goto out;
	/* an open session to the same address: replaced only by the same
	 * endpoint (it restarted), and not by a late IIKeying of a glare we
	 * just won */
	if (old) {
		if (!old->cert || !rtmfp_crypto_cert_overrides(cert, old->cert))
			goto out;
		if (old->initiator && now - old->opened_at < RTMFP_GLARE_GUARD_NS &&
		    rtmfp_crypto_near_wins_glare(r->crypto, cert))
			goto out;
		rtmfp_session_abort(old, -ECONNRESET, now);
	}
	/* glare (§3.5.1.3): we are opening to the same endpoint (only our
	 * initiator sessions open: a server that never initiates skips this) */
	for (s = r->n_initiators ? r->sessions : NULL; s; s = s->next) {
		if (s->dead || (s->state != RTMFP_S_IHELLO_SENT && s->state != RTMFP_S_KEYING_SENT))
			continue;
		if (opening_to(s, from) || (s->epd && rtmfp_crypto_cert_selected(cert, s->epd, s->epd_len))) {
			glare = s;
			break;
		}
	}
	if (glare && rtmfp_crypto_near_wins_glare(r->crypto, cert))
		goto out; /* we win: the far end will answer our IIKeying */

	s = rtmfp_session_new(r, false, now);
	if (!s)
		goto out;
	s->iface = iface;
	rtmfp_session_set_dest(s, from);
	s->cert = cert;
	cert = NULL;
	memcpy(s->skic, ik->skic.p, ik->skic.len);
	s->skic_len = ik->skic.len;
	if (rtmfp_crypto_key_new(r->crypto, &s->key) != 0 ||
	    rtmfp_crypto_key_responder(s->key, s->cert, ik->skic.p, ik->skic.len,
				       skrc, sizeof(skrc), &skrc_len) != 0 ||
	    make_rikeying(r, s, skrc, skrc_len) != 0) {
		rtmfp_session_abort(s, -EPROTO, now);
		goto out;
	}
	rtmfp_session_set_open(s, ik->session_id, now);
	rtmfp_tx_startup(r, NULL, s->tx_id, s->iface, &s->dest, s->keying, s->keying_len, now);
out:
	sodium_memzero(skrc, sizeof(skrc));
	rtmfp_crypto_cert_free(cert);
}

/* ---- startup: the initiator ---- */

/* add_candidate - send IHellos to one more address (all at once, §3.5.1.1.1). */
static void add_candidate(struct rtmfp *r, struct rtmfp_session *s,
			  const struct sockaddr_storage *addr, uint64_t now)
{
	struct rtmfp_candidate *c;

	if (s->state != RTMFP_S_IHELLO_SENT || s->n_cand == RTMFP_MAX_REDIRECT_ADDRS ||
	    (addr->ss_family != AF_INET && addr->ss_family != AF_INET6))
		return;
	for (size_t i = 0; i < s->n_cand; i++)
		if (rtmfp_addr_eq(&s->cand[i].addr, addr))
			return;
	if (!s->cand) {
		/* responders never need candidates: only initiators pay for them */
		s->cand = calloc(RTMFP_MAX_REDIRECT_ADDRS, sizeof(*s->cand));
		if (!s->cand)
			return;
	}
	c = &s->cand[s->n_cand++];
	c->addr = *addr;
	c->interval = RTMFP_IHELLO_INITIAL_RTX_NS;
	c->next_tx = now + c->interval;
	send_ihello(r, s, addr, now);
}

static struct rtmfp_session *find_by_tag(struct rtmfp *r, struct rtmfp_wire_span tag)
{
	for (struct rtmfp_session *s = r->sessions; s; s = s->next)
		if (s->state == RTMFP_S_IHELLO_SENT && !s->dead && tag.len == sizeof(s->tag) &&
		    memcmp(tag.p, s->tag, sizeof(s->tag)) == 0)
			return s;
	return NULL;
}

/* build_iikeying - (re)build the IIKeying chunk from s->cookie and s->skic. */
static int build_iikeying(struct rtmfp *r, struct rtmfp_session *s)
{
	uint8_t signed_buf[RTMFP_BUF_BYTES], sig[RTMFP_CRYPTO_MAX_SIG_BYTES], buf[RTMFP_BUF_BYTES];
	struct rtmfp_wire_iikeying ik = { .session_id = s->rx_id };
	struct buf_writer w;
	const uint8_t *cert;
	size_t cert_len, sig_len;
	int rc;

	rtmfp_crypto_local_cert(r->crypto, &cert, &cert_len);
	ik.cookie = (struct rtmfp_wire_span){ s->cookie, s->cookie_len };
	ik.cert = (struct rtmfp_wire_span){ cert, cert_len };
	ik.skic = (struct rtmfp_wire_span){ s->skic, s->skic_len };
	buf_writer_init(&w, signed_buf, sizeof(signed_buf));
	rc = rtmfp_wire_iikeying_put_signed(&w, &ik);
	if (rc == 0)
		rc = rtmfp_crypto_sign(r->crypto, RTMFP_CRYPTO_SIG_IIKEYING, signed_buf,
				       buf_writer_len(&w), NULL, 0, sig, sizeof(sig), &sig_len);
	if (rc != 0)
		return rc;
	ik.signature = (struct rtmfp_wire_span){ sig, sig_len };
	buf_writer_init(&w, buf, sizeof(buf));
	rc = rtmfp_wire_iikeying_encode(&w, &ik);
	if (rc != 0)
		return rc;
	free(s->keying);
	s->keying = malloc(buf_writer_len(&w));
	if (!s->keying)
		return -ENOMEM;
	memcpy(s->keying, buf, buf_writer_len(&w));
	s->keying_len = buf_writer_len(&w);
	return 0;
}

static void send_iikeying(struct rtmfp *r, struct rtmfp_session *s, uint64_t now)
{
	rtmfp_tx_startup(r, NULL, 0, s->iface, &s->dest, s->keying, s->keying_len, now);
	s->keying_interval = s->keying_interval < RTMFP_IHELLO_INITIAL_RTX_NS ?
		RTMFP_IHELLO_INITIAL_RTX_NS : s->keying_interval + RTMFP_IHELLO_BACKOFF_NS;
	s->keying_next = now + s->keying_interval;
}

static void on_rhello(struct rtmfp *r, int iface, const struct sockaddr_storage *from,
		      const struct rtmfp_wire_rhello *rh, uint64_t now)
{
	struct rtmfp_session *s = find_by_tag(r, rh->tag), *o;
	struct rtmfp_crypto_cert *cert = NULL;
	const uint8_t *cepd;
	size_t cepd_len;

	if (!s || rh->cookie.len == 0 || rh->cookie.len > 256)
		return;
	if (rtmfp_crypto_cert_decode(r->crypto, rh->cert.p, rh->cert.len, &cert) != 0)
		return;
	if (!rtmfp_crypto_cert_selected(cert, s->epd, s->epd_len))
		goto out;
	/* already open (or keying) to that endpoint by another way: join it */
	rtmfp_crypto_cert_epd(cert, &cepd, &cepd_len);
	o = find_open_by_epd(r, cepd, cepd_len);
	if (o) {
		move_waiting(s, o, now);
		rtmfp_session_abort(s, 0, now);
		goto out;
	}
	for (o = r->sessions; o; o = o->next) {
		if (o != s && o->state == RTMFP_S_KEYING_SENT && o->cert &&
		    rtmfp_crypto_cert_overrides(cert, o->cert)) {
			move_waiting(s, o, now);
			rtmfp_session_abort(s, 0, now);
			goto out;
		}
	}
	s->cookie = malloc(rh->cookie.len);
	if (!s->cookie || rtmfp_crypto_key_new(r->crypto, &s->key) != 0 ||
	    rtmfp_crypto_key_initiator_skic(s->key, cert, s->skic, sizeof(s->skic), &s->skic_len) != 0) {
		rtmfp_session_abort(s, -EPROTO, now);
		goto out;
	}
	memcpy(s->cookie, rh->cookie.p, rh->cookie.len);
	s->cookie_len = rh->cookie.len;
	s->cert = cert;
	cert = NULL;
	s->iface = iface;
	rtmfp_session_set_dest(s, from);
	s->state = RTMFP_S_KEYING_SENT; /* set_dest touched s */
	if (build_iikeying(r, s) != 0) {
		rtmfp_session_abort(s, -EPROTO, now);
		goto out;
	}
	s->keying_interval = 0;
	send_iikeying(r, s, now);
out:
	rtmfp_crypto_cert_free(cert);
}

static void on_redirect(struct rtmfp *r, const struct sockaddr_storage *from,
			const struct rtmfp_wire_redirect *rd, uint64_t now)
{
	struct rtmfp_session *s = find_by_tag(r, rd->tag);
	struct buf_reader br;
	struct rtmfp_wire_address a;
	size_t n = 0;

	if (!s)
		return;
	buf_reader_init(&br, rd->addresses.p, rd->addresses.len);
	while (buf_reader_remaining(&br) > 0 && rtmfp_wire_get_address(&br, &a)) {
		add_candidate(r, s, &a.addr, now);
		n++;
	}
	/* an empty Redirect: try the address it came from (§3.5.1.1.1) */
	if (n == 0)
		add_candidate(r, s, from, now);
}

static void on_cookie_change(struct rtmfp_session *s, const struct rtmfp_wire_cookie_change *cc,
			     uint64_t now)
{
	uint8_t *nc;

	if (s->state != RTMFP_S_KEYING_SENT || s->cookie_changed ||
	    cc->old_cookie.len != s->cookie_len || cc->new_cookie.len == 0 ||
	    cc->new_cookie.len > 256 || memcmp(cc->old_cookie.p, s->cookie, s->cookie_len) != 0)
		return;
	nc = malloc(cc->new_cookie.len);
	if (!nc)
		return;
	memcpy(nc, cc->new_cookie.p, cc->new_cookie.len);
	free(s->cookie);
	s->cookie = nc;
	s->cookie_len = cc->new_cookie.len;
	s->cookie_changed = true;
	if (build_iikeying(s->r, s) != 0) {
		rtmfp_session_abort(s, -EPROTO, now);
		return;
	}
	s->keying_interval = 0;
	send_iikeying(s->r, s, now);
}

/* on_rikeying - the responder's keying: the session opens.  Its packet's
 * timestamp is kept so that our first packet echoes it, as rtmfp-cpp's
 * initiator does (the responder gets an RTT sample at once). */
static void on_rikeying(struct rtmfp_session *s, const struct rtmfp_wire_header *h,
			const struct rtmfp_wire_rikeying *rk, uint64_t now)
{
	if (s->state != RTMFP_S_KEYING_SENT)
		return;
	if (rtmfp_crypto_cert_verify(s->cert, RTMFP_CRYPTO_SIG_RIKEYING, rk->signed_part.p,
				     rk->signed_part.len, s->skic, s->skic_len,
				     rk->signature.p, rk->signature.len) != 0)
		return;
	if (rtmfp_crypto_key_initiator_complete(s->key, rk->skrc.p, rk->skrc.len) != 0)
		return;
	rtmfp_session_set_open(s, rk->session_id, now);
	rtmfp_session_note_timestamps(s, h, now);
}

/* startup_packet - a default-keyed, startup-mode packet (session id 0, or
 * the RIKeying / Cookie Change for an opening session @s). */
static void startup_packet(struct rtmfp *r, struct rtmfp_session *s, int iface,
			   const struct sockaddr_storage *from, const uint8_t *clear,
			   size_t len, uint64_t now)
{
	struct rtmfp_wire_chunk_iter it;
	struct rtmfp_wire_header h;
	struct rtmfp_wire_chunk c;
	bool seen_ihello = false;

	if (rtmfp_wire_packet_begin(&it, &h, clear, len) != 0 ||
	    rtmfp_wire_header_mode(&h) != RTMFP_WIRE_MODE_STARTUP)
		return;
	while (rtmfp_wire_chunk_next(&it, &c) == 1) {
		struct rtmfp_wire_chunk_body b;

		if (rtmfp_wire_chunk_decode(&b, &c) != 0)
			continue;
		if (s) {
			if (s->dead)
				break;
			if (c.type == RTMFP_WIRE_CHUNK_RIKEYING)
				on_rikeying(s, &h, &b.u.rikeying, now);
			else if (c.type == RTMFP_WIRE_CHUNK_COOKIE_CHANGE)
				on_cookie_change(s, &b.u.cookie_change, now);
			continue;
		}
		switch (c.type) {
		case RTMFP_WIRE_CHUNK_IHELLO:
			if (!seen_ihello)
				on_ihello(r, iface, from, b.u.ihello.epd, b.u.ihello.tag, now);
			seen_ihello = true;
			break;
		case RTMFP_WIRE_CHUNK_RHELLO:
			on_rhello(r, iface, from, &b.u.rhello, now);
			break;
		case RTMFP_WIRE_CHUNK_REDIRECT:
			on_redirect(r, from, &b.u.redirect, now);
			break;
		case RTMFP_WIRE_CHUNK_IIKEYING:
			on_iikeying(r, iface, from, &b.u.iikeying, now);
			break;
		default:
			break;
		}
	}
}

/* keep_early - a session packet that came before RIKeying (reordering). */
static void keep_early(struct rtmfp_session *s, const uint8_t *bytes, size_t len)
{
	uint8_t *copy;

	if (s->n_early == RTMFP_MAX_EARLY_PACKETS || !(copy = malloc(len)))
		return;
	memcpy(copy, bytes, len);
	s->early[s->n_early] = copy;
	s->early_len[s->n_early++] = len;
}

/*
 * session_datagram - a datagram for session @s.  @mut, when not NULL, is
 * @bytes writable: an open session decrypts there and saves a copy.
 */
static void session_datagram(struct rtmfp *r, struct rtmfp_session *s, int iface,
			     const struct sockaddr_storage *from, const uint8_t *bytes,
			     uint8_t *mut, size_t len, uint64_t now)
{
	uint8_t *pkt = r->rx + RTMFP_WIRE_SSID_BYTES;
	size_t off, clen, plen = len - RTMFP_WIRE_SSID_BYTES;

	if (s->state == RTMFP_S_KEYING_SENT || s->state == RTMFP_S_IHELLO_SENT) {
		memcpy(r->rx, bytes, len);
		if (rtmfp_crypto_open_default(r->crypto, pkt, plen, &off, &clen) == 0) {
			startup_packet(r, s, iface, from, pkt + off, clen, now);
			/* packets that raced ahead of the RIKeying */
			if (s->state == RTMFP_S_OPEN) {
				size_t n = s->n_early;

				s->n_early = 0;
				for (size_t i = 0; i < n; i++) {
					if (!s->dead)
						session_datagram(r, s, iface, from, s->early[i],
								 NULL, s->early_len[i], now);
					free(s->early[i]);
				}
			}
		} else if (s->state == RTMFP_S_KEYING_SENT) {
			keep_early(s, bytes, len); /* bytes: still as received */
		}
		return;
	}
	if (s->state == RTMFP_S_CLOSED || !s->key)
		return;
	if (mut)
		pkt = mut + RTMFP_WIRE_SSID_BYTES;
	else
		memcpy(r->rx, bytes, len);
	if (rtmfp_crypto_key_open(s->key, pkt, plen, &off, &clen) != 0)
		return;
	s->st.packets_received++;
	s->st.bytes_received += len;
	rtmfp_session_packet(s, iface, from, pkt + off, clen, now);
}

static int feed(struct rtmfp *r, int iface, const struct sockaddr_storage *from,
		const uint8_t *bytes, uint8_t *mut, size_t len, uint64_t now)
{
	uint32_t id;
	int rc = 0;

	if (len < RTMFP_WIRE_SSID_BYTES + 1 || len > sizeof(r->rx) ||
	    rtmfp_wire_ssid_unscramble(&id, bytes, len) != 0)
		return 0;
	enter(r, now);
	if (id == 0) {
		uint8_t *pkt = r->rx + RTMFP_WIRE_SSID_BYTES;
		size_t off, clen;

		memcpy(r->rx, bytes, len);
		if (rtmfp_crypto_open_default(r->crypto, pkt, len - RTMFP_WIRE_SSID_BYTES,
					      &off, &clen) == 0)
			startup_packet(r, NULL, iface, from, pkt + off, clen, now);
	} else {
		struct rtmfp_session *s = table_find(r, id);

		if (s && !s->dead) {
			rtmfp_touch(s);
			session_datagram(r, s, iface, from, bytes, mut, len, now);
		}
		else
			rc = -ENOENT;
	}
	leave(r);
	return rc;
}

int rtmfp_feed(struct rtmfp *r, int iface, const struct sockaddr_storage *from,
	       const uint8_t *bytes, size_t len, uint64_t now)
{
	return feed(r, iface, from, bytes, NULL, len, now);
}

int rtmfp_feed_inplace(struct rtmfp *r, int iface, const struct sockaddr_storage *from,
		       uint8_t *bytes, size_t len, uint64_t now)
{
	return feed(r, iface, from, bytes, bytes, len, now);
}

/* ---- timers ---- */

uint64_t rtmfp_next_deadline(const struct rtmfp *r)
{
	uint64_t d = r->heap_n ? r->heap[0]->heap_dl : RTMFP_NEVER;

	if (r->sessions && r->full_scan_at + RTMFP_FULL_SCAN_NS < d)
		d = r->full_scan_at + RTMFP_FULL_SCAN_NS;
	return d;
}

static void session_due(struct rtmfp *r, struct rtmfp_session *s, uint64_t now);

void rtmfp_on_timer(struct rtmfp *r, uint64_t now)
{
	enter(r, now);
	if (now >= r->full_scan_at + RTMFP_FULL_SCAN_NS) {
		/* the safety net: every session, as if all were due */
		r->full_scan_at = now;
		for (struct rtmfp_session *s = r->sessions, *next; s; s = next) {
			next = s->next;
			if (!s->dead) {
				rtmfp_touch(s);
				session_due(r, s, now);
			}
		}
	} else {
		while (r->heap_n && r->heap[0]->heap_dl <= now) {
			struct rtmfp_session *s = r->heap[0];

			heap_del(r, s);
			rtmfp_touch(s);
			if (!s->dead)
				session_due(r, s, now);
		}
	}
	leave(r);
}

/* session_due - what rtmfp_on_timer does for one session. */
static void session_due(struct rtmfp *r, struct rtmfp_session *s, uint64_t now)
{
	/* IHello and IIKeying retransmission live here: they are startup */
	if (s->state == RTMFP_S_IHELLO_SENT) {
		for (size_t i = 0; i < s->n_cand; i++) {
			struct rtmfp_candidate *c = &s->cand[i];

			if (c->next_tx > now)
				continue;
			send_ihello(r, s, &c->addr, now);
			c->interval = c->interval < RTMFP_IHELLO_INITIAL_RTX_NS ?
				RTMFP_IHELLO_INITIAL_RTX_NS : c->interval + RTMFP_IHELLO_BACKOFF_NS;
			c->next_tx = now + c->interval;
		}
	} else if (s->state == RTMFP_S_KEYING_SENT && s->keying_next <= now) {
		send_iikeying(r, s, now);
	}
	rtmfp_session_timer(s, now);
}

void rtmfp_shutdown(struct rtmfp *r, bool orderly, uint64_t now)
{
	enter(r, now);
	r->shutdown = true;
	for (struct rtmfp_session *s = r->sessions; s; s = s->next) {
		if (s->dead)
			continue;
		if (orderly && s->state == RTMFP_S_OPEN)
			rtmfp_session_start_close(s, now);
		else if (s->state != RTMFP_S_CLOSED)
			rtmfp_session_abort(s, BFS_ECLOSED, now);
	}
	leave(r);
}

bool rtmfp_idle(const struct rtmfp *r)
{
	for (const struct rtmfp_session *s = r->sessions; s; s = s->next)
		if (!s->dead)
			return false;
	return true;
}

/* ---- flows ---- */

int rtmfp_open_flow(struct rtmfp *r, struct rtmfp_send **out,
		    const uint8_t *epd, size_t epd_len,
		    const uint8_t *meta, size_t meta_len,
		    const struct sockaddr_storage *addrs, size_t n_addrs, uint64_t now)
{
	struct rtmfp_sendflow_config cfg = { 0 };
	struct rtmfp_session *s;
	struct rtmfp_send *f;
	int rc;

	if (!epd || epd_len == 0 || epd_len > RTMFP_MAX_EPD_BYTES ||
	    meta_len > RTMFP_MAX_METADATA_BYTES || (meta_len && !meta))
		return -EINVAL;
	if (r->shutdown)
		return -ESHUTDOWN;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->r = r;
	cfg.flow_id = r->next_flow_id++;
	cfg.metadata = meta;
	cfg.metadata_len = meta_len;
	rc = rtmfp_sendflow_new(&f->flow, &cfg);
	if (rc != 0) {
		free(f);
		return rc;
	}
	enter(r, now);
	s = find_open_by_epd(r, epd, epd_len);
	if (s) {
		rtmfp_session_bind(s, f, now);
		goto done;
	}
	s = find_opening_by_epd(r, epd, epd_len);
	if (!s) {
		s = rtmfp_session_new(r, true, now);
		if (!s || !(s->epd = malloc(epd_len))) {
			if (s)
				rtmfp_session_abort(s, -ENOMEM, now);
			rtmfp_sendflow_free(f->flow);
			free(f);
			leave(r);
			return -ENOMEM;
		}
		memcpy(s->epd, epd, epd_len);
		s->epd_len = epd_len;
		s->state = RTMFP_S_IHELLO_SENT;
		rtmfp_crypto_random(s->tag, sizeof(s->tag));
		s->open_deadline = now + r->p.open_timeout_ns;
	}
	f->s = s;
	f->next = s->waiting;
	if (s->waiting)
		s->waiting->prev = f;
	s->waiting = f;
	for (size_t i = 0; i < n_addrs; i++)
		rtmfp_send_add_address(f, &addrs[i], now);
done:
	*out = f;
	leave(r);
	return 0;
}

void rtmfp_send_add_address(struct rtmfp_send *f, const struct sockaddr_storage *addr, uint64_t now)
{
	if (!f->s || f->bound || f->closed)
		return;
	enter(f->r, now);
	if (f->s)
		rtmfp_touch(f->s);
	add_candidate(f->r, f->s, addr, now);
	leave(f->r);
}

/* open_in - a send flow in open session @s, returning to @rf when set. */
static int open_in(struct rtmfp_session *s, struct rtmfp_recv *rf, struct rtmfp_send **out,
		   const uint8_t *meta, size_t meta_len, uint64_t now)
{
	struct rtmfp_sendflow_config cfg = { 0 };
	struct rtmfp *r;
	struct rtmfp_send *f;
	int rc;

	if (meta_len > RTMFP_MAX_METADATA_BYTES || (meta_len && !meta))
		return -EINVAL;
	if (!s || s->dead || s->state != RTMFP_S_OPEN)
		return -ENOTCONN;
	r = s->r;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->r = r;
	cfg.flow_id = r->next_flow_id++;
	cfg.metadata = meta;
	cfg.metadata_len = meta_len;
	if (rf) {
		cfg.has_return_flow = true;
		cfg.return_flow_id = rtmfp_recvflow_id(rf->flow);
	}
	rc = rtmfp_sendflow_new(&f->flow, &cfg);
	if (rc != 0) {
		free(f);
		return rc;
	}
	enter(r, now);
	rtmfp_session_bind(s, f, now);
	leave(r);
	*out = f;
	return 0;
}

int rtmfp_recv_open_return(struct rtmfp_recv *rf, struct rtmfp_send **out,
			   const uint8_t *meta, size_t meta_len, uint64_t now)
{
	return open_in(rf->s, rf, out, meta, meta_len, now);
}

int rtmfp_session_open_flow(struct rtmfp_session *s, struct rtmfp_send **out,
			    const uint8_t *meta, size_t meta_len, uint64_t now)
{
	return open_in(s, NULL, out, meta, meta_len, now);
}

void rtmfp_session_set_ctx(struct rtmfp_session *s, void *ctx)
{
	s->ctx = ctx;
}

void *rtmfp_session_get_ctx(const struct rtmfp_session *s)
{
	return s->ctx;
}

int rtmfp_session_far_peer_id(const struct rtmfp_session *s, uint8_t out[static 32])
{
	if (!s->cert)
		return -ENOTCONN;
	rtmfp_crypto_cert_peer_id(s->cert, out);
	return 0;
}

void rtmfp_recv_pause(struct rtmfp_recv *f, bool paused, uint64_t now)
{
	if (f->dead || f->app_gone)
		return;
	enter(f->r, now);
	if (f->s)
		rtmfp_touch(f->s);
	rtmfp_recvflow_set_paused(f->flow, paused);
	if (!f->dead && f->s && !f->s->dead && (rtmfp_recvflow_ack_wanted(f->flow) ||
						rtmfp_recvflow_ack_now(f->flow)))
		rtmfp_session_want_ack(f->s, f, now);
	leave(f->r);
}

int rtmfp_send_write(struct rtmfp_send *f, const void *msg, size_t len, uint64_t now)
{
	int rc;

	if (f->closed)
		return BFS_ECLOSED;
	rc = rtmfp_sendflow_write(f->flow, msg, len, 0, NULL);
	if (rc == -EMSGSIZE)
		return BFS_ETOOBIG;
	if (rc == -ENOBUFS)
		return -EAGAIN;
	if (rc == 0 && f->bound) {
		enter(f->r, now);
		if (f->s)
			rtmfp_touch(f->s);
		rtmfp_session_send_ready(f->s, f);
		leave(f->r);
	}
	return rc;
}

size_t rtmfp_send_buffered(const struct rtmfp_send *f)
{
	return rtmfp_sendflow_bytes_queued(f->flow);
}

void rtmfp_send_close(struct rtmfp_send *f, uint64_t now)
{
	if (f->closed)
		return;
	enter(f->r, now);
	if (f->s)
		rtmfp_touch(f->s);
	rtmfp_sendflow_close(f->flow);
	if (rtmfp_sendflow_state(f->flow) == RTMFP_SENDFLOW_COMPLETE) {
		f->closed = true;
		if (f->r->cb.send_closed)
			f->r->cb.send_closed(f->r->ctx, f, 0);
		rtmfp_send_unlink(f);
	} else if (f->bound) {
		rtmfp_session_send_ready(f->s, f);
	}
	leave(f->r);
}

void rtmfp_send_set_ctx(struct rtmfp_send *f, void *ctx)
{
	f->ctx = ctx;
}

void *rtmfp_send_get_ctx(const struct rtmfp_send *f)
{
	return f->ctx;
}

struct rtmfp_session *rtmfp_send_session(const struct rtmfp_send *f)
{
	return f->bound ? f->s : NULL;
}

void rtmfp_recv_accept(struct rtmfp_recv *f)
{
	f->accepted = true;
}

void rtmfp_recv_close(struct rtmfp_recv *f, uint64_t now)
{
	if (f->app_gone || f->dead)
		return;
	f->app_gone = true;
	enter(f->r, now);
	if (f->s)
		rtmfp_touch(f->s);
	if (rtmfp_recvflow_state(f->flow) == RTMFP_RECVFLOW_OPEN) {
		rtmfp_recvflow_reject(f->flow, 0);
		if (f->s && !f->in_acks) {
			f->in_acks = true;
			f->anext = f->s->acks;
			f->s->acks = f;
		}
		if (f->s) {
			f->s->ack_now = true;
			rtmfp_wake(f->s);
		}
	}
	if (f->linger_until == RTMFP_NEVER)
		f->linger_until = now + RTMFP_RF_LINGER_NS;
	leave(f->r);
}

void rtmfp_recv_set_ctx(struct rtmfp_recv *f, void *ctx)
{
	f->ctx = ctx;
}

void *rtmfp_recv_get_ctx(const struct rtmfp_recv *f)
{
	return f->ctx;
}

struct rtmfp_session *rtmfp_recv_session(const struct rtmfp_recv *f)
{
	return f->s;
}

const uint8_t *rtmfp_recv_metadata(const struct rtmfp_recv *f, size_t *len)
{
	return rtmfp_recvflow_metadata(f->flow, len);
}

/* ---- sessions ---- */

void rtmfp_session_close(struct rtmfp_session *s, uint64_t now)
{
	enter(s->r, now);
	rtmfp_touch(s);
	if (s->state == RTMFP_S_OPEN)
		rtmfp_session_start_close(s, now);
	else if (s->state < RTMFP_S_OPEN)
		rtmfp_session_abort(s, 0, now);
	leave(s->r);
}

const uint8_t *rtmfp_session_far_cert(const struct rtmfp_session *s, size_t *len)
{
	const uint8_t *p = NULL;

	*len = 0;
	if (s->cert)
		rtmfp_crypto_cert_bytes(s->cert, &p, len);
	return p;
}

const struct sockaddr_storage *rtmfp_session_far_addr(const struct rtmfp_session *s)
{
	return &s->dest;
}

void rtmfp_session_stats(const struct rtmfp_session *s, struct rtmfp_session_stats *out)
{
	*out = s->st;
	out->srtt_ns = s->rtt.srtt_ns;
	out->rttvar_ns = s->rtt.rttvar_ns;
	out->erto_ns = s->rtt.erto_ns;
	out->cwnd_bytes = s->cc.cwnd;
	out->outstanding_bytes = s->outstanding;
	out->loss_probes = s->probes;
}

bool rtmfp_session_is_open(const struct rtmfp_session *s)
{
	return s->state == RTMFP_S_OPEN;
}

/* ---- introduction ---- */

int rtmfp_redirect(struct rtmfp *r, int iface, const struct sockaddr_storage *to,
		   const uint8_t *tag, size_t tag_len,
		   const struct sockaddr_storage *addrs, size_t n_addrs, uint64_t now)
{
	uint8_t list[RTMFP_MAX_REDIRECT_ADDRS * RTMFP_WIRE_ADDRESS_MAX_BYTES];
	uint8_t buf[RTMFP_BUF_BYTES];
	struct rtmfp_wire_redirect rd;
	struct buf_writer lw, w;
	int rc;

	if (n_addrs > RTMFP_MAX_REDIRECT_ADDRS || tag_len > RTMFP_MAX_TAG_BYTES)
		return -EINVAL;
	buf_writer_init(&lw, list, sizeof(list));
	for (size_t i = 0; i < n_addrs; i++) {
		struct rtmfp_wire_address a = { .addr = addrs[i], .origin = RTMFP_WIRE_ORIGIN_UNKNOWN };

		rc = rtmfp_wire_put_address(&lw, &a);
		if (rc != 0)
			return rc;
	}
	rd.tag = (struct rtmfp_wire_span){ tag, tag_len };
	rd.addresses = (struct rtmfp_wire_span){ list, buf_writer_len(&lw) };
	rd.address_count = n_addrs;
	buf_writer_init(&w, buf, sizeof(buf));
	rc = rtmfp_wire_redirect_encode(&w, &rd);
	if (rc != 0)
		return rc;
	enter(r, now);
	rtmfp_tx_startup(r, NULL, 0, iface, to, buf, buf_writer_len(&w), now);
	leave(r);
	return 0;
}

int rtmfp_session_send_fihello(struct rtmfp_session *s, const uint8_t *epd, size_t epd_len,
			       const struct sockaddr_storage *reply_to,
			       const uint8_t *tag, size_t tag_len, uint64_t now)
{
	uint8_t buf[RTMFP_BUF_BYTES];
	struct rtmfp_wire_fihello fh;
	struct buf_writer w;
	int rc;

	if (s->state != RTMFP_S_OPEN)
		return -ENOTCONN;
	fh.epd = (struct rtmfp_wire_span){ epd, epd_len };
	fh.tag = (struct rtmfp_wire_span){ tag, tag_len };
	fh.reply_address.addr = *reply_to;
	fh.reply_address.origin = RTMFP_WIRE_ORIGIN_OBSERVED;
	buf_writer_init(&w, buf, sizeof(buf));
	rc = rtmfp_wire_fihello_encode(&w, &fh);
	if (rc != 0)
		return rc;
	enter(s->r, now);
	rtmfp_touch(s);
	if (!rtmfp_session_queue_ctl(s, buf, buf_writer_len(&w)))
		rc = -ENOBUFS;
	rtmfp_wake(s);
	leave(s->r);
	return rc;
}

void rtmfp_on_fihello(struct rtmfp_session *s, const struct rtmfp_wire_fihello *fh, uint64_t now)
{
	if (rtmfp_crypto_is_selected(s->r->crypto, fh->epd.p, fh->epd.len))
		on_ihello(s->r, -1, &fh->reply_address.addr, fh->epd, fh->tag, now);
}

int rtmfp_table_add(struct rtmfp *r, struct rtmfp_session *s)
{
	return table_add(r, s);
}

void rtmfp_table_remove(struct rtmfp *r, struct rtmfp_session *s)
{
	table_remove(r, s);
}
