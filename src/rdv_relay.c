/*
 * rdv_relay.c - the rendezvous relay (see rdv_relay.h).
 *
 * The table is a fixed array scanned linearly (max_channels, 1,024 by
 * default): enough for a home-scale server; a hash by address is the next
 * step for large ones.  Each end's address is learnt only from a RELAY-BIND
 * carrying its secret token (sent over the peer's authenticated control
 * flow), so nobody else can bind, and a NAT that rebinds the peer's port
 * is followed by the peer binding again.
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

struct end {
	uint8_t id[ID_BYTES];
	uint8_t token[TOKEN_BYTES];
	struct sockaddr_storage addr;
	bool bound;
};

struct channel {
	bool used;
	bool announced;     /* the ready event was given */
	uint64_t last_ns;   /* made, bound or forwarded */
	struct end e[2];
};

struct rdv_relay {
	struct loop *loop;
	struct udp_sock *udp;
	struct loop_fd *fd;
	struct loop_timer *sweep;
	uint16_t port;
	size_t max;
	uint64_t idle_ns;
	struct channel *ch;
	rdv_relay_ready_fn *ready;
	void *ctx;
	struct rdv_relay_stats st;
};

static struct channel *find_pair(struct rdv_relay *r, const uint8_t *a, const uint8_t *b)
{
	for (size_t i = 0; i < r->max; i++) {
		struct channel *c = &r->ch[i];

		if (!c->used)
			continue;
		if ((memcmp(c->e[0].id, a, ID_BYTES) == 0 && memcmp(c->e[1].id, b, ID_BYTES) == 0) ||
		    (memcmp(c->e[0].id, b, ID_BYTES) == 0 && memcmp(c->e[1].id, a, ID_BYTES) == 0))
			return c;
	}
	return NULL;
}

/* ends_of - how many channels @id is an end of. */
static size_t ends_of(const struct rdv_relay *r, const uint8_t *id)
{
	size_t n = 0;

	for (size_t i = 0; i < r->max; i++)
		if (r->ch[i].used && (memcmp(r->ch[i].e[0].id, id, ID_BYTES) == 0 ||
				      memcmp(r->ch[i].e[1].id, id, ID_BYTES) == 0))
			n++;
	return n;
}

int rdv_relay_channel(struct rdv_relay *r, const uint8_t a[static RDV_PEER_ID_BYTES],
		      const uint8_t b[static RDV_PEER_ID_BYTES],
		      uint8_t tok_a[static RDV_RELAY_TOKEN_BYTES],
		      uint8_t tok_b[static RDV_RELAY_TOKEN_BYTES], bool *ready)
{
	struct channel *c;
	size_t i;
	int ia;

	if (memcmp(a, b, ID_BYTES) == 0)
		return -EINVAL;
	c = find_pair(r, a, b);
	if (!c) {
		if (ends_of(r, a) >= MAX_PER_PEER || ends_of(r, b) >= MAX_PER_PEER)
			return -ENOSPC;
		for (i = 0; i < r->max && r->ch[i].used; i++)
			;
		if (i == r->max)
			return -ENOSPC;
		c = &r->ch[i];
		memset(c, 0, sizeof(*c));
		c->used = true;
		memcpy(c->e[0].id, a, ID_BYTES);
		memcpy(c->e[1].id, b, ID_BYTES);
		randombytes_buf(c->e[0].token, TOKEN_BYTES);
		randombytes_buf(c->e[1].token, TOKEN_BYTES);
		c->last_ns = loop_now(r->loop);
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
	sodium_memzero(c, sizeof(*c));
	r->st.channels--;
}

/* bind_end - a RELAY-BIND for @token from @from. */
static void bind_end(struct rdv_relay *r, const struct sockaddr_storage *from, const uint8_t *token)
{
	for (size_t i = 0; i < r->max; i++) {
		struct channel *c = &r->ch[i];

		if (!c->used)
			continue;
		for (int k = 0; k < 2; k++) {
			if (sodium_memcmp(c->e[k].token, token, TOKEN_BYTES) != 0)
				continue;
			c->e[k].addr = *from;
			c->e[k].bound = true;
			c->last_ns = loop_now(r->loop);
			if (c->e[0].bound && c->e[1].bound && !c->announced) {
				c->announced = true;
				if (r->ready)
					r->ready(r->ctx, c->e[0].id, c->e[1].id);
			}
			return;
		}
	}
	r->st.dropped++;
}

void rdv_relay_input(struct rdv_relay *r, const struct sockaddr_storage *from,
		     const uint8_t *data, size_t len)
{
	uint8_t token[TOKEN_BYTES];

	/* A datagram from a bound end: forward (a BIND again from a bound end
	 * is the peer refreshing; it is not forwarded). */
	for (size_t i = 0; i < r->max; i++) {
		struct channel *c = &r->ch[i];
		int k;

		if (!c->used)
			continue;
		if (c->e[0].bound && udp_addr_equal(&c->e[0].addr, from))
			k = 0;
		else if (c->e[1].bound && udp_addr_equal(&c->e[1].addr, from))
			k = 1;
		else
			continue;
		if (len == RDV_RELAY_BIND_BYTES && rdv_relay_bind_decode(data, len, token))
			break;
		if (!c->e[1 - k].bound) {
			r->st.dropped++;
			return;
		}
		c->last_ns = loop_now(r->loop);
		if (udp_send(r->udp, &c->e[1 - k].addr, data, len) == 0) {
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

	for (size_t i = 0; i < r->max; i++)
		if (r->ch[i].used && now - r->ch[i].last_ns >= r->idle_ns)
			free_channel(r, &r->ch[i]);
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
	r->ch = calloc(r->max, sizeof(*r->ch));
	if (!r->ch) {
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
	if (r->ch) {
		sodium_memzero(r->ch, r->max * sizeof(*r->ch));
		free(r->ch);
	}
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
