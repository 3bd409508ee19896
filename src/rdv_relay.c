/*
 * rdv_relay.c - the rendezvous relay (see rdv_relay.h).
 *
 * Channels are allocated when made (at most max_channels) and found
 * through three hash indexes over their ends, so that no datagram and no
 * request walks the table: by peer id (a pair is found among the <= 8
 * channels of one end; the per-peer limit counts the same chain), by
 * token (RELAY-BIND) and by bound address (forwarding).  Bucket counts are
 * powers of two sized for max_channels; the hash is SipHash
 * (crypto_shorthash) under a random key, as addresses, ids and tokens
 * come from the network.  Each end's address is learnt only from a
 * RELAY-BIND carrying its secret token (sent over the peer's authenticated
 * control flow), so nobody else can bind, and a NAT that rebinds the
 * peer's port is followed by the peer binding again.
 *
 * One address bound as an end of two channels (one peer relaying with
 * two others through one socket) is ambiguous: the datagram goes to the
 * channel bound last.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include <sodium.h>

#include "buddyfs/err.h"
#include "buddyfs/log.h"
#include "buddyfs/loop.h"
#include "buddyfs/rdv_relay.h"
#include "buddyfs/udp.h"

#define ID_BYTES RDV_PEER_ID_BYTES
#define TOKEN_BYTES RDV_RELAY_TOKEN_BYTES
#define MAX_PER_PEER 8 /* channels one peer id may be an end of */
#define ADDR_KEY_BYTES 19 /* family | port | address */

struct channel;

struct end {
	uint8_t id[ID_BYTES];
	uint8_t token[TOKEN_BYTES];
	struct sockaddr_storage addr;
	bool bound;
	struct channel *c;
	struct end *id_next, *tok_next, *addr_next; /* hash chains */
};

struct channel {
	bool announced;     /* the ready event was given */
	uint64_t last_ns;   /* made, bound or forwarded */
	struct end e[2];
	struct channel *prev, *next; /* every channel (the sweep) */
};

struct rdv_relay {
	struct loop *loop;
	struct udp_sock *udp;
	struct loop_fd *fd;
	struct loop_timer *sweep;
	uint16_t port;
	size_t max;
	uint64_t idle_ns;
	struct channel *all;
	size_t mask;                 /* buckets - 1 */
	struct end **by_id, **by_tok, **by_addr;
	uint8_t key[crypto_shorthash_KEYBYTES];
	rdv_relay_ready_fn *ready;
	void *ctx;
	struct rdv_relay_stats st;
};

static size_t slot(const struct rdv_relay *r, const uint8_t *bytes, size_t len)
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v = 0;

	crypto_shorthash(h, bytes, len, r->key);
	for (int i = 0; i < 8; i++)
		v = v << 8 | h[i];
	return (size_t)v & r->mask;
}

/* addr_key - the bytes of @a that tell ends apart (udp_addr_equal's view). */
static void addr_key(uint8_t k[ADDR_KEY_BYTES], const struct sockaddr_storage *a)
{
	memset(k, 0, ADDR_KEY_BYTES);
	k[0] = (uint8_t)a->ss_family;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *v4 = (const struct sockaddr_in *)a;

		memcpy(k + 1, &v4->sin_port, 2);
		memcpy(k + 3, &v4->sin_addr, 4);
	} else if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)a;

		memcpy(k + 1, &v6->sin6_port, 2);
		memcpy(k + 3, &v6->sin6_addr, 16);
	}
}

static size_t addr_slot(const struct rdv_relay *r, const struct sockaddr_storage *a)
{
	uint8_t k[ADDR_KEY_BYTES];

	addr_key(k, a);
	return slot(r, k, sizeof(k));
}

/* UNCHAIN - remove @e from the chain at @head, linked through member @link. */
#define UNCHAIN(head, e, link)                                  \
	do {                                                    \
		for (struct end **pp_ = (head); *pp_; pp_ = &(*pp_)->link) { \
			if (*pp_ == (e)) {                      \
				*pp_ = (e)->link;               \
				break;                          \
			}                                       \
		}                                               \
	} while (0)

static struct channel *find_pair(struct rdv_relay *r, const uint8_t *a, const uint8_t *b)
{
	for (struct end *e = r->by_id[slot(r, a, ID_BYTES)]; e; e = e->id_next) {
		const struct end *o = e == &e->c->e[0] ? &e->c->e[1] : &e->c->e[0];

		if (memcmp(e->id, a, ID_BYTES) == 0 && memcmp(o->id, b, ID_BYTES) == 0)
			return e->c;
	}
	return NULL;
}

/* ends_of - how many channels @id is an end of. */
static size_t ends_of(const struct rdv_relay *r, const uint8_t *id)
{
	size_t n = 0;

	for (const struct end *e = r->by_id[slot(r, id, ID_BYTES)]; e; e = e->id_next)
		n += memcmp(e->id, id, ID_BYTES) == 0;
	return n;
}

int rdv_relay_channel(struct rdv_relay *r, const uint8_t a[static RDV_PEER_ID_BYTES],
		      const uint8_t b[static RDV_PEER_ID_BYTES],
		      uint8_t tok_a[static RDV_RELAY_TOKEN_BYTES],
		      uint8_t tok_b[static RDV_RELAY_TOKEN_BYTES], bool *ready)
{
	struct channel *c;
	int ia;

	if (memcmp(a, b, ID_BYTES) == 0)
		return -EINVAL;
	c = find_pair(r, a, b);
	if (!c) {
		if (r->st.channels >= r->max || ends_of(r, a) >= MAX_PER_PEER || ends_of(r, b) >= MAX_PER_PEER)
			return -ENOSPC;
		c = calloc(1, sizeof(*c));
		if (!c)
			return -ENOMEM;
		memcpy(c->e[0].id, a, ID_BYTES);
		memcpy(c->e[1].id, b, ID_BYTES);
		for (int k = 0; k < 2; k++) {
			struct end *e = &c->e[k];
			size_t h;

			e->c = c;
			randombytes_buf(e->token, TOKEN_BYTES);
			h = slot(r, e->id, ID_BYTES);
			e->id_next = r->by_id[h];
			r->by_id[h] = e;
			h = slot(r, e->token, TOKEN_BYTES);
			e->tok_next = r->by_tok[h];
			r->by_tok[h] = e;
		}
		c->last_ns = loop_now(r->loop);
		c->next = r->all;
		if (r->all)
			r->all->prev = c;
		r->all = c;
		r->st.channels++;
	}
	ia = memcmp(c->e[0].id, a, ID_BYTES) == 0 ? 0 : 1;
	memcpy(tok_a, c->e[ia].token, TOKEN_BYTES);
	memcpy(tok_b, c->e[1 - ia].token, TOKEN_BYTES);
	*ready = c->e[0].bound && c->e[1].bound;
	return 0;
}

static void free_channel(struct rdv_relay *r, struct channel *c)
{
	for (int k = 0; k < 2; k++) {
		struct end *e = &c->e[k];

		UNCHAIN(&r->by_id[slot(r, e->id, ID_BYTES)], e, id_next);
		UNCHAIN(&r->by_tok[slot(r, e->token, TOKEN_BYTES)], e, tok_next);
		if (e->bound)
			UNCHAIN(&r->by_addr[addr_slot(r, &e->addr)], e, addr_next);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		r->all = c->next;
	if (c->next)
		c->next->prev = c->prev;
	sodium_memzero(c, sizeof(*c));
	free(c);
	r->st.channels--;
}

/* bind_end - a RELAY-BIND for @token from @from. */
static void bind_end(struct rdv_relay *r, const struct sockaddr_storage *from, const uint8_t *token)
{
	struct end *e;
	struct channel *c;
	size_t h;

	for (e = r->by_tok[slot(r, token, TOKEN_BYTES)]; e; e = e->tok_next)
		if (sodium_memcmp(e->token, token, TOKEN_BYTES) == 0)
			break;
	if (!e) {
		r->st.dropped++;
		return;
	}
	if (e->bound)
		UNCHAIN(&r->by_addr[addr_slot(r, &e->addr)], e, addr_next);
	e->addr = *from;
	e->bound = true;
	h = addr_slot(r, from);
	e->addr_next = r->by_addr[h];
	r->by_addr[h] = e;
	c = e->c;
	c->last_ns = loop_now(r->loop);
	if (c->e[0].bound && c->e[1].bound && !c->announced) {
		c->announced = true;
		if (r->ready)
			r->ready(r->ctx, c->e[0].id, c->e[1].id);
	}
}

void rdv_relay_input(struct rdv_relay *r, const struct sockaddr_storage *from,
		     const uint8_t *data, size_t len)
{
	uint8_t token[TOKEN_BYTES];
	struct end *e;

	/* A datagram from a bound end: forward (a BIND again from a bound end
	 * is the peer refreshing; it is not forwarded). */
	for (e = r->by_addr[addr_slot(r, from)]; e; e = e->addr_next)
		if (udp_addr_equal(&e->addr, from))
			break;
	if (e && !(len == RDV_RELAY_BIND_BYTES && rdv_relay_bind_decode(data, len, token))) {
		struct end *o = e == &e->c->e[0] ? &e->c->e[1] : &e->c->e[0];

		if (!o->bound) {
			r->st.dropped++;
			return;
		}
		e->c->last_ns = loop_now(r->loop);
		if (udp_send(r->udp, &o->addr, data, len) == 0) {
			r->st.packets++;
			r->st.bytes += len;
		}
		return;
	}
	if (rdv_relay_bind_decode(data, len, token))
		bind_end(r, from, token);
	else
		r->st.dropped++;
	sodium_memzero(token, sizeof(token));
}

struct input_ctx {
	struct rdv_relay *r;
};

static void on_datagram(void *ctx, const struct sockaddr_storage *from, uint8_t *data, size_t len)
{
	struct input_ctx *x = ctx;

	rdv_relay_input(x->r, from, data, len);
}

static void on_readable(struct loop *loop, struct loop_fd *h, int fd, uint32_t events, void *ctx)
{
	struct rdv_relay *r = ctx;
	struct input_ctx x = { .r = r };
	int n, rounds = 0;

	(void)loop;
	(void)h;
	(void)fd;
	(void)events;
	do {
		n = udp_recv(r->udp, on_datagram, &x);
	} while (n > 0 && ++rounds < 8);
	if (n < 0)
		log_warn("relay receive: %s", bfs_strerror(n));
	udp_flush(r->udp);
}

static void on_sweep(struct loop *loop, struct loop_timer *t, void *ctx)
{
	struct rdv_relay *r = ctx;
	uint64_t now = loop_now(loop);
	struct channel *c, *next;

	for (c = r->all; c; c = next) {
		next = c->next;
		if (now - c->last_ns >= r->idle_ns)
			free_channel(r, c);
	}
	loop_timer_rearm(loop, t, r->idle_ns / 4);
}

int rdv_relay_new(struct rdv_relay **out, struct loop *loop, const struct sockaddr_storage *bind,
		  size_t max_channels, uint64_t idle_ns, rdv_relay_ready_fn *ready, void *ctx)
{
	struct sockaddr_storage local;
	struct rdv_relay *r;
	int rc;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->loop = loop;
	r->max = max_channels ? max_channels : 1024;
	r->idle_ns = idle_ns ? idle_ns : 60 * LOOP_NS_PER_S;
	r->ready = ready;
	r->ctx = ctx;
	/* buckets: a power of two, at least the ends there can be */
	for (r->mask = 64; r->mask < 2 * r->max; r->mask *= 2)
		;
	r->by_id = calloc(r->mask, sizeof(*r->by_id));
	r->by_tok = calloc(r->mask, sizeof(*r->by_tok));
	r->by_addr = calloc(r->mask, sizeof(*r->by_addr));
	r->mask--;
	randombytes_buf(r->key, sizeof(r->key));
	if (!r->by_id || !r->by_tok || !r->by_addr) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = udp_open(&r->udp, bind);
	if (rc)
		goto fail;
	rc = udp_local(r->udp, &local);
	if (rc)
		goto fail;
	r->port = local.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&local)->sin6_port)
					      : ntohs(((struct sockaddr_in *)&local)->sin_port);
	rc = loop_fd_add(loop, udp_fd(r->udp), LOOP_IN, on_readable, r, &r->fd);
	if (rc)
		goto fail;
	rc = loop_timer_add(loop, r->idle_ns / 4, on_sweep, r, &r->sweep);
	if (rc)
		goto fail;
	*out = r;
	return 0;
fail:
	rdv_relay_free(r);
	return rc;
}

void rdv_relay_free(struct rdv_relay *r)
{
	if (!r)
		return;
	if (r->sweep)
		loop_timer_cancel(r->loop, r->sweep);
	if (r->fd)
		loop_fd_remove(r->loop, r->fd);
	udp_close(r->udp);
	while (r->all)
		free_channel(r, r->all);
	free(r->by_id);
	free(r->by_tok);
	free(r->by_addr);
	sodium_memzero(r->key, sizeof(r->key));
	free(r);
}

uint16_t rdv_relay_port(const struct rdv_relay *r)
{
	return r->port;
}

int rdv_relay_local_addr(const struct rdv_relay *r, struct sockaddr_storage *out)
{
	return udp_local(r->udp, out);
}

void rdv_relay_get_stats(const struct rdv_relay *r, struct rdv_relay_stats *out)
{
	*out = r->st;
}
