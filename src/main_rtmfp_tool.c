/*
 * main_rtmfp_tool.c - rtmfp-tool: drive the RTMFP transport from the shell.
 *
 *   rtmfp-tool listen --profile plain|sodium --name ID --port PORT [...]
 *   rtmfp-tool send --profile plain|sodium --name ID --to HOST:PORT --epd TARGET
 *                   --count N --size BYTES[-MAX] [--flows K] [--no-echo] [...]
 *
 * The listener accepts every session and flow, prints one line per whole
 * message and echoes it on a return flow.  The sender opens K flows, writes
 * N messages spread over them, waits until all are acknowledged (and echoed
 * back intact), closes the session with the close handshake and prints
 * goodput, retransmissions and smoothed RTT.  Used by the system tests, the
 * benchmarks and the interop checks against rtmfp-cpp (docs/PROTOCOL.md).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "buddyfs/buf.h"
#include "buddyfs/err.h"
#include "buddyfs/identity.h"
#include "buddyfs/log.h"
#include "buddyfs/loop.h"
#include "buddyfs/rtmfp.h"
#include "buddyfs/rtmfp_crypto.h"
#include "buddyfs/rtmfp_crypto_plain.h"
#include "buddyfs/rtmfp_crypto_sodium.h"
#include "buddyfs/rtmfp_posix.h"
#include "buddyfs/udp.h"

#define HASH_BYTES 32
#define MAX_FLOWS 256
#define META_PREFIX "rtmfp-tool flow "

struct opts {
	const char *profile;
	const char *name;
	const char *home;
	const char *to;
	const char *epd;
	const char *listen;
	unsigned port;
	unsigned long count;
	size_t size_min, size_max;
	unsigned flows;
	bool echo;
	unsigned drop;
	unsigned timeout_s;
	unsigned retransmit_limit_s; /* 0: the core's default */
	bool quiet;
	bool list;
};

/* ---- message contents: a pattern both ends can derive ---- */

static size_t msg_size(const struct opts *o, unsigned long i)
{
	uint64_t x;
	double lo, hi, u;

	if (o->size_min == o->size_max || i == 0)
		return o->size_min;
	if (i == 1)
		return o->size_max;
	/* log-uniform between min and max, from a hash of the index */
	x = (i + 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull;
	x ^= x >> 31;
	u = (double)(x >> 11) / 9007199254740992.0;
	lo = (double)(o->size_min ? o->size_min : 1);
	hi = (double)o->size_max;
	return (size_t)(lo * exp(u * log(hi / lo)));
}

static void msg_fill(uint8_t *p, size_t n, unsigned flow, unsigned long i)
{
	uint64_t x = ((uint64_t)flow << 40 ^ i) * 0x9e3779b97f4a7c15ull + 1;
	uint64_t l[4];
	size_t k = 0;

	/* four independent xorshift lanes: 32 bytes per step, not 8, so
	 * making 1 MiB messages does not cost as much as sealing them */
	for (int j = 0; j < 4; j++)
		l[j] = x + 0x9e3779b97f4a7c15ull * (uint64_t)(j + 1);
	for (; k + 32 <= n; k += 32) {
		for (int j = 0; j < 4; j++) {
			l[j] ^= l[j] << 13;
			l[j] ^= l[j] >> 7;
			l[j] ^= l[j] << 17;
		}
		memcpy(p + k, l, 32);
	}
	x = l[0] ^ l[1] ^ l[2] ^ l[3];
	for (; k + 8 <= n; k += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + k, &x, 8);
	}
	for (; k < n; k++)
		p[k] = (uint8_t)(x >> (8 * (k & 7)));
}

static void hash_hex(char out[2 * HASH_BYTES + 1], const uint8_t *p, size_t n)
{
	uint8_t h[HASH_BYTES];

	crypto_generichash(h, sizeof(h), p, n, NULL, 0);
	buf_hex(out, h, sizeof(h));
}

/* ---- shared state ---- */

struct tool;

struct flow_state {
	struct tool *t;
	unsigned index;
	struct rtmfp_send *send;
	unsigned long next;     /* next message number to write */
	unsigned long total;    /* messages for this flow */
	unsigned long echoed;
	uint8_t *hashes;        /* total * HASH_BYTES: what each message hashes to */
	bool send_done;         /* send_closed(0) seen */
	bool closed;
};

/* A listener's echo of one receiving flow (listed in tool.echoes). */
struct echo_state {
	struct tool *t;
	struct echo_state *prev, *next;
	struct rtmfp_send *ret;
	unsigned flow;
	uint8_t **queue;        /* messages waiting for room in the return flow */
	size_t *queue_len;
	size_t n_queued, cap;
	bool in_closed;
};

struct tool {
	struct opts o;
	struct loop *loop;
	struct rtmfp_posix *px;
	struct rtmfp_crypto *crypto;
	struct flow_state flows[MAX_FLOWS];
	unsigned flows_done;
	uint64_t start_ns, done_ns;
	uint64_t bytes_written;
	int result;             /* exit status */
	bool closing;
	struct rtmfp_session *session;
	bool opened;            /* a session was opened at some point */
	struct rtmfp_session_stats last_stats;
	uint8_t *scratch;
	unsigned long scratch_msg; /* message number + 1 that scratch holds; 0 none */
	struct echo_state *echoes; /* listener: every live echo_state, freed at exit */
};

static uint64_t now_ns(void)
{
	return rtmfp_posix_now();
}

static void finish(struct tool *t, int status)
{
	if (t->result == -1)
		t->result = status;
	loop_stop(t->loop);
}

/* ---- sender ---- */

/*
 * close_if_done - close a flow once everything is written and, with echo,
 * echoed back: a peer may refuse a return flow whose flow already ended
 * (rtmfp-cpp does), so the flow stays open while echoes are due.
 */
static void close_if_done(struct tool *t, struct flow_state *f)
{
	if (f->closed || !f->send || f->next < f->total || (t->o.echo && f->echoed < f->total))
		return;
	f->closed = true;
	rtmfp_send_close(f->send, now_ns());
}

static void write_some(struct tool *t, struct flow_state *f)
{
	while (f->next < f->total) {
		unsigned long global = f->next * t->o.flows + f->index;
		size_t n = msg_size(&t->o, global);
		uint8_t h[HASH_BYTES];
		int rc;

		/* a write refused with -EAGAIN comes back here: fill once */
		if (t->scratch_msg != global + 1) {
			msg_fill(t->scratch, n, f->index, global);
			t->scratch_msg = global + 1;
		}
		rc = rtmfp_send_write(f->send, t->scratch, n, now_ns());
		if (rc == -EAGAIN)
			return;
		if (rc) {
			log_error("flow %u: write failed: %s", f->index, bfs_strerror(rc));
			finish(t, 1);
			return;
		}
		/* only echoes and --list need the hash */
		if (t->o.echo || t->o.list) {
			crypto_generichash(h, sizeof(h), t->scratch, n, NULL, 0);
			memcpy(f->hashes + f->next * HASH_BYTES, h, HASH_BYTES);
		}
		if (t->o.list) {
			char hex[2 * HASH_BYTES + 1];

			buf_hex(hex, h, sizeof(h));
			printf("sent flow=%u size=%zu blake2b=%s\n", f->index, n, hex);
		}
		t->bytes_written += n;
		f->next++;
	}
	close_if_done(t, f);
}

static void maybe_done(struct tool *t)
{
	for (unsigned k = 0; k < t->o.flows; k++) {
		struct flow_state *f = &t->flows[k];

		if (!f->send_done || (t->o.echo && f->echoed < f->total))
			return;
	}
	if (t->closing)
		return;
	t->closing = true;
	t->done_ns = now_ns();
	if (t->session) {
		rtmfp_session_stats(t->session, &t->last_stats);
		rtmfp_session_close(t->session, now_ns());
	} else {
		finish(t, 0);
	}
}

static void snd_writable(void *ctx, struct rtmfp_send *s)
{
	struct tool *t = ctx;
	struct flow_state *f = rtmfp_send_get_ctx(s);

	if (t->o.listen == NULL && f)
		write_some(t, f);
}

static void snd_send_closed(void *ctx, struct rtmfp_send *s, int err)
{
	struct tool *t = ctx;
	struct flow_state *f = rtmfp_send_get_ctx(s);

	if (!f)
		return;
	f->send = NULL;
	if (err) {
		log_error("flow %u failed: %s", f->index,
			  err == -ETIMEDOUT ? "the far end stopped answering (timeout)" : bfs_strerror(err));
		finish(t, 1);
		return;
	}
	f->send_done = true;
	maybe_done(t);
}

static void snd_session_opened(void *ctx, struct rtmfp_session *s)
{
	struct tool *t = ctx;
	char a[UDP_ADDR_STR_BYTES];

	t->session = s;
	t->opened = true;
	udp_addr_format(a, rtmfp_session_far_addr(s));
	if (!t->o.quiet)
		fprintf(stderr, "rtmfp-tool: session open to %s\n", a);
}

static void snd_session_closed(void *ctx, struct rtmfp_session *s, int err)
{
	struct tool *t = ctx;

	(void)s;
	t->session = NULL;
	if (t->closing) {
		finish(t, 0);
		return;
	}
	log_error("session failed: %s", err == -ETIMEDOUT ? "the far end stopped answering (timeout)"
			      : err ? bfs_strerror(err) : "closed by the far end");
	finish(t, 1);
}

/* Echoes come back on flows associated with ours. */
static void snd_recv_flow(void *ctx, struct rtmfp_recv *r, const uint8_t *meta, size_t meta_len,
			  struct rtmfp_send *assoc)
{
	struct tool *t = ctx;

	(void)meta;
	(void)meta_len;
	/* Not ours, or --no-echo: left unaccepted, so rejected (the listener
	 * then stops echoing and the benchmark moves data one way only). */
	if (!assoc || !rtmfp_send_get_ctx(assoc) || !t->o.echo)
		return;
	rtmfp_recv_set_ctx(r, rtmfp_send_get_ctx(assoc));
	rtmfp_recv_accept(r);
}

static void snd_message(void *ctx, struct rtmfp_recv *r, const uint8_t *msg, size_t len)
{
	struct tool *t = ctx;
	struct flow_state *f = rtmfp_recv_get_ctx(r);
	uint8_t h[HASH_BYTES];

	if (!f)
		return;
	if (f->echoed >= f->next) {
		log_error("flow %u: an echo of a message never sent", f->index);
		finish(t, 1);
		return;
	}
	crypto_generichash(h, sizeof(h), msg, len, NULL, 0);
	if (sodium_memcmp(h, f->hashes + f->echoed * HASH_BYTES, HASH_BYTES) != 0) {
		log_error("flow %u: message %lu came back different (%zu bytes)", f->index, f->echoed, len);
		finish(t, 1);
		return;
	}
	f->echoed++;
	close_if_done(t, f);
}

static void on_deadline(struct loop *loop, struct loop_timer *tm, void *ctx)
{
	struct tool *t = ctx;

	(void)loop;
	(void)tm;
	if (!t->opened)
		log_error("no session with %s after %u s: nobody answered (is the listener up, is --epd "
			  "right?)", t->o.to, t->o.timeout_s);
	else
		log_error("gave up after %u s: not everything arrived (try --timeout)", t->o.timeout_s);
	finish(t, 1);
}

/* ---- listener ---- */

static void echo_drain(struct echo_state *e)
{
	size_t done = 0;

	while (done < e->n_queued && e->ret) {
		int rc = rtmfp_send_write(e->ret, e->queue[done], e->queue_len[done], now_ns());

		if (rc == -EAGAIN)
			break;
		if (rc)
			log_warn("flow %u: echo failed: %s", e->flow, bfs_strerror(rc));
		free(e->queue[done]);
		done++;
	}
	memmove(e->queue, e->queue + done, (e->n_queued - done) * sizeof(*e->queue));
	memmove(e->queue_len, e->queue_len + done, (e->n_queued - done) * sizeof(*e->queue_len));
	e->n_queued -= done;
	if (e->in_closed && e->n_queued == 0 && e->ret) {
		rtmfp_send_close(e->ret, now_ns());
		rtmfp_send_set_ctx(e->ret, NULL);
		e->ret = NULL;
	}
}

static void echo_free(struct echo_state *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		e->t->echoes = e->next;
	if (e->next)
		e->next->prev = e->prev;
	for (size_t i = 0; i < e->n_queued; i++)
		free(e->queue[i]);
	free(e->queue);
	free(e->queue_len);
	free(e);
}

static unsigned meta_flow(const uint8_t *meta, size_t len)
{
	char s[32];
	size_t plen = strlen(META_PREFIX);

	if (len <= plen || len - plen >= 12 || memcmp(meta, META_PREFIX, plen) != 0)
		return 0;
	memcpy(s, meta + plen, len - plen);
	s[len - plen] = '\0';
	return (unsigned)strtoul(s, NULL, 10);
}

static void lst_recv_flow(void *ctx, struct rtmfp_recv *r, const uint8_t *meta, size_t meta_len,
			  struct rtmfp_send *assoc)
{
	struct tool *t = ctx;
	struct echo_state *e;

	(void)assoc;
	e = calloc(1, sizeof(*e));
	if (!e)
		return; /* rejected */
	e->t = t;
	e->next = t->echoes;
	if (t->echoes)
		t->echoes->prev = e;
	t->echoes = e;
	e->flow = meta_flow(meta, meta_len);
	rtmfp_recv_set_ctx(r, e);
	rtmfp_recv_accept(r);
	if (rtmfp_recv_open_return(r, &e->ret, meta, meta_len, now_ns()) == 0)
		rtmfp_send_set_ctx(e->ret, e);
	else
		e->ret = NULL;
}

static void lst_message(void *ctx, struct rtmfp_recv *r, const uint8_t *msg, size_t len)
{
	struct tool *t = ctx;
	struct echo_state *e = rtmfp_recv_get_ctx(r);
	char hex[2 * HASH_BYTES + 1];

	if (!t->o.quiet) {
		hash_hex(hex, msg, len);
		printf("msg flow=%u size=%zu blake2b=%s\n", e ? e->flow : 0, len, hex);
	}
	if (!e || !e->ret)
		return;
	if (e->n_queued == e->cap) {
		size_t cap = e->cap ? 2 * e->cap : 16;
		uint8_t **q = realloc(e->queue, cap * sizeof(*q));
		size_t *ql;

		if (!q)
			return;
		e->queue = q;
		ql = realloc(e->queue_len, cap * sizeof(*ql));
		if (!ql)
			return;
		e->queue_len = ql;
		e->cap = cap;
	}
	e->queue[e->n_queued] = malloc(len ? len : 1);
	if (!e->queue[e->n_queued])
		return;
	memcpy(e->queue[e->n_queued], msg, len);
	e->queue_len[e->n_queued++] = len;
	echo_drain(e);
}

static void lst_recv_closed(void *ctx, struct rtmfp_recv *r, int err)
{
	struct echo_state *e = rtmfp_recv_get_ctx(r);

	(void)ctx;
	(void)err;
	if (!e)
		return;
	rtmfp_recv_set_ctx(r, NULL);
	e->in_closed = true;
	echo_drain(e);
	if (!e->ret)
		echo_free(e);
}

static void lst_writable(void *ctx, struct rtmfp_send *s)
{
	struct echo_state *e = rtmfp_send_get_ctx(s);

	(void)ctx;
	if (e)
		echo_drain(e);
}

static void lst_send_closed(void *ctx, struct rtmfp_send *s, int err)
{
	struct echo_state *e = rtmfp_send_get_ctx(s);

	(void)ctx;
	(void)err;
	if (!e)
		return;
	e->ret = NULL;
	if (e->in_closed)
		echo_free(e);
}

static void lst_session_opened(void *ctx, struct rtmfp_session *s)
{
	struct tool *t = ctx;
	char a[UDP_ADDR_STR_BYTES];

	udp_addr_format(a, rtmfp_session_far_addr(s));
	if (!t->o.quiet)
		fprintf(stderr, "rtmfp-tool: session from %s\n", a);
}

static void lst_session_closed(void *ctx, struct rtmfp_session *s, int err)
{
	struct tool *t = ctx;
	struct rtmfp_session_stats st;

	rtmfp_session_stats(s, &st);
	if (!t->o.quiet)
		fprintf(stderr, "rtmfp-tool: session closed (%s), %" PRIu64 " packets in, %" PRIu64 " out\n",
			err == 0 || err == BFS_ECLOSED ? "orderly" : bfs_strerror(err),
			st.packets_received, st.packets_sent);
}

/* ---- setup ---- */

static void on_signal(struct loop *loop, int signo, void *ctx)
{
	struct tool *t = ctx;

	(void)loop;
	(void)signo;
	finish(t, t->o.listen ? 0 : 130);
}

static int make_crypto(struct tool *t)
{
	struct opts *o = &t->o;
	int rc;

	if (strcmp(o->profile, "plain") == 0) {
		if (!o->name) {
			log_error("the plain profile needs --name ID (the identity string)");
			return 2;
		}
		rc = rtmfp_crypto_plain_new(&t->crypto, o->name, strlen(o->name));
	} else if (strcmp(o->profile, "sodium") == 0) {
		uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];

		if (o->home) {
			struct identity *id = NULL;
			const char *file = NULL;

			rc = identity_load(&id, o->home, &file);
			if (rc) {
				log_error("cannot load the identity in '%s' (%s): %s", o->home,
					  file ? file : "?", bfs_strerror(rc));
				return 1;
			}
			memcpy(sk, id->secret_key, sizeof(sk));
			identity_free(id);
		} else {
			crypto_sign_keypair(pk, sk);
		}
		rc = rtmfp_crypto_sodium_new(&t->crypto, sk, NULL, 0, 0);
		sodium_memzero(sk, sizeof(sk));
	} else {
		log_error("unknown profile '%s' (use plain or sodium)", o->profile);
		return 2;
	}
	if (rc) {
		log_error("cannot set up the %s profile: %s", o->profile, bfs_strerror(rc));
		return 1;
	}
	return 0;
}

static int target_epd(const struct opts *o, uint8_t *epd, size_t cap, size_t *len)
{
	if (strcmp(o->profile, "plain") == 0) {
		*len = strlen(o->epd);
		if (*len == 0 || *len > cap)
			return -EINVAL;
		memcpy(epd, o->epd, *len);
		return 0;
	} else {
		uint8_t id[RTMFP_CRYPTO_PEER_ID_BYTES];

		if (!buf_unhex(id, sizeof(id), o->epd) || cap < RTMFP_CRYPTO_SODIUM_EPD_PEER_ID_BYTES)
			return -EINVAL;
		rtmfp_crypto_sodium_epd_peer_id(epd, id);
		*len = RTMFP_CRYPTO_SODIUM_EPD_PEER_ID_BYTES;
		return 0;
	}
}

/* tool_params - the core's defaults, with the options that change them. */
static void tool_params(const struct tool *t, struct rtmfp_params *p)
{
	rtmfp_params_default(p);
	if (t->o.retransmit_limit_s)
		p->retransmit_limit_ns = (uint64_t)t->o.retransmit_limit_s * RTMFP_NS_PER_SEC;
}

static int run_listen(struct tool *t, struct sockaddr_storage *bind_addr)
{
	const struct rtmfp_callbacks cb = {
		.session_opened = lst_session_opened,
		.session_closed = lst_session_closed,
		.recv_flow = lst_recv_flow,
		.message = lst_message,
		.recv_closed = lst_recv_closed,
		.writable = lst_writable,
		.send_closed = lst_send_closed,
	};
	struct sockaddr_storage bound;
	unsigned port = t->o.port;
	struct rtmfp_params params;
	int rc;

	tool_params(t, &params);
	rc = rtmfp_posix_new(&t->px, t->loop, t->crypto, &cb, t, &params, bind_addr);

	if (rc) {
		log_error("cannot listen on port %u: %s", t->o.port, bfs_strerror(rc));
		return 1;
	}
	/* With --port 0 the kernel picked one: say which. */
	if (udp_local(rtmfp_posix_udp(t->px), &bound) == 0)
		port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)(void *)&bound)->sin6_port
							  : ((struct sockaddr_in *)(void *)&bound)->sin_port);
	udp_set_drop(rtmfp_posix_udp(t->px), t->o.drop);
	if (strcmp(t->o.profile, "sodium") == 0) {
		uint8_t id[RTMFP_CRYPTO_PEER_ID_BYTES];
		char hex[2 * sizeof(id) + 1];

		rtmfp_crypto_local_peer_id(t->crypto, id);
		buf_hex(hex, id, sizeof(id));
		printf("peer id %s\n", hex);
	}
	printf("listening on port %u\n", port);
	fflush(stdout);
	setvbuf(stdout, NULL, _IOLBF, 0);
	loop_run(t->loop);
	return t->result < 0 ? 0 : t->result;
}

static int run_send(struct tool *t)
{
	const struct rtmfp_callbacks cb = {
		.session_opened = snd_session_opened,
		.session_closed = snd_session_closed,
		.recv_flow = snd_recv_flow,
		.message = snd_message,
		.writable = snd_writable,
		.send_closed = snd_send_closed,
	};
	struct sockaddr_storage any, to;
	uint8_t epd[RTMFP_MAX_EPD_BYTES];
	size_t epd_len;
	struct rtmfp_session_stats st;
	struct rtmfp_params params;
	double secs;
	int rc;

	rc = udp_addr_parse(&to, t->o.to, 0);
	if (rc) {
		log_error("bad --to '%s': expected HOST:PORT", t->o.to);
		return 2;
	}
	if (target_epd(&t->o, epd, sizeof(epd), &epd_len)) {
		log_error("bad --epd '%s': %s", t->o.epd,
			  strcmp(t->o.profile, "plain") ? "expected the listener's 64-hex peer id"
							: "expected the listener's identity string");
		return 2;
	}
	udp_addr_parse(&any, to.ss_family == AF_INET6 ? "[::]:0" : "0.0.0.0:0", 0);
	tool_params(t, &params);
	rc = rtmfp_posix_new(&t->px, t->loop, t->crypto, &cb, t, &params, &any);
	if (rc) {
		log_error("cannot open a UDP socket: %s", bfs_strerror(rc));
		return 1;
	}
	udp_set_drop(rtmfp_posix_udp(t->px), t->o.drop);
	t->scratch = malloc(t->o.size_max ? t->o.size_max : 1);
	if (!t->scratch)
		return 1;
	t->start_ns = now_ns();
	for (unsigned k = 0; k < t->o.flows; k++) {
		struct flow_state *f = &t->flows[k];
		char meta[64];

		f->t = t;
		f->index = k;
		f->total = t->o.count / t->o.flows + (k < t->o.count % t->o.flows);
		f->hashes = malloc(f->total ? f->total * HASH_BYTES : 1);
		if (!f->hashes)
			return 1;
		snprintf(meta, sizeof(meta), META_PREFIX "%u", k);
		rc = rtmfp_open_flow(rtmfp_posix_core(t->px), &f->send, epd, epd_len,
				     (const uint8_t *)meta, strlen(meta), &to, 1, now_ns());
		if (rc) {
			log_error("cannot open flow %u: %s", k, bfs_strerror(rc));
			return 1;
		}
		rtmfp_send_set_ctx(f->send, f);
		write_some(t, f);
	}
	rtmfp_posix_kick(t->px);
	loop_timer_add(t->loop, (uint64_t)t->o.timeout_s * LOOP_NS_PER_S, on_deadline, t, NULL);
	loop_run(t->loop);
	if (t->result != 0)
		return t->result < 0 ? 1 : t->result;
	st = t->last_stats;
	secs = (double)(t->done_ns - t->start_ns) / 1e9;
	printf("sent %lu messages, %" PRIu64 " bytes on %u flows in %.3f s: goodput %.1f MB/s\n",
	       t->o.count, t->bytes_written, t->o.flows, secs,
	       secs > 0 ? (double)t->bytes_written / secs / 1e6 : 0.0);
	printf("retransmissions %" PRIu64 ", timeouts %" PRIu64 ", srtt %.3f ms, packets out %" PRIu64 " in %" PRIu64 " cwnd %" PRIu64 " probes %" PRIu64 "\n",
	       st.retransmissions, st.timeouts, (double)st.srtt_ns / 1e6, st.packets_sent, st.packets_received, st.cwnd_bytes, st.loss_probes);
	return 0;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: rtmfp-tool listen --profile plain|sodium [--name ID] --port PORT\n"
		"                         [--home DIR] [--drop PERCENT] [--quiet]\n"
		"       rtmfp-tool send --profile plain|sodium [--name ID] --to HOST:PORT --epd TARGET\n"
		"                       --count N --size BYTES[-MAX] [--flows K] [--no-echo]\n"
		"                       [--home DIR] [--drop PERCENT] [--timeout SECONDS] [--list] [--quiet]\n"
		"                       [--retransmit-limit SECONDS]\n"
		"\n"
		"Drives the buddyfs RTMFP transport (RFC 7016).\n"
		"  listen   accept sessions and flows; print 'msg flow=F size=N blake2b=HEX'\n"
		"           per message and echo it back on a return flow.  In the sodium\n"
		"           profile the first line is 'peer id HEX'.\n"
		"  send     open K flows (default 1), send N messages of BYTES each (or of\n"
		"           sizes spread from BYTES to MAX), wait until all are acknowledged\n"
		"           and echoed intact (unless --no-echo), close the session, print\n"
		"           goodput, retransmissions and smoothed RTT.\n"
		"  --profile   plain: the interop profile of rtmfp-cpp (tests only);\n"
		"              sodium: the buddyfs profile (Ed25519, X25519, AEAD)\n"
		"  --name ID   plain: this end's identity string\n"
		"  --epd T     plain: the listener's identity string; sodium: its peer id\n"
		"  --home DIR  sodium: use the identity of a buddyfs home, not a throwaway one\n"
		"  --drop P    drop P%% of datagrams in each direction (loss tests)\n"
		"  --list      send: print 'sent flow=F size=N blake2b=HEX' per message written\n"
		"  --retransmit-limit S  a session with nothing acknowledged for S seconds\n"
		"              fails (default 30; longer for heavy-loss tests)\n"
		"Exit status: 0 when everything arrived intact, 1 on failure, 2 on usage errors.\n");
}

static int parse_size(const char *s, size_t *lo, size_t *hi)
{
	char *end;
	unsigned long long a, b;

	errno = 0;
	a = strtoull(s, &end, 10);
	b = a;
	if (*end == '-')
		b = strtoull(end + 1, &end, 10);
	if (errno || *end || s[0] == '-' || a > b || b > (64ull << 20))
		return -EINVAL;
	*lo = (size_t)a;
	*hi = (size_t)b;
	return 0;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	return errno || *end || s[0] == '-' || s[0] == '\0' || *out > max ? -EINVAL : 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "profile", required_argument, NULL, 'P' },
		{ "name", required_argument, NULL, 'n' },
		{ "home", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "to", required_argument, NULL, 't' },
		{ "epd", required_argument, NULL, 'e' },
		{ "count", required_argument, NULL, 'c' },
		{ "size", required_argument, NULL, 's' },
		{ "flows", required_argument, NULL, 'f' },
		{ "no-echo", no_argument, NULL, 'E' },
		{ "drop", required_argument, NULL, 'd' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "retransmit-limit", required_argument, NULL, 'R' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "list", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct tool t = { .result = -1 };
	struct sockaddr_storage bind_addr;
	const char *cmd;
	unsigned long v;
	int c, rc;

	log_init(argv[0]);
	t.o.profile = "sodium";
	t.o.flows = 1;
	t.o.count = 1;
	t.o.size_min = t.o.size_max = 1000;
	t.o.echo = true;
	t.o.timeout_s = 60;
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	cmd = argv[1];
	if (strcmp(cmd, "listen") != 0 && strcmp(cmd, "send") != 0) {
		log_error("unknown command '%s' (see rtmfp-tool --help)", cmd);
		return 2;
	}
	optind = 2;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'P': t.o.profile = optarg; break;
		case 'n': t.o.name = optarg; break;
		case 'H': t.o.home = optarg; break;
		case 't': t.o.to = optarg; break;
		case 'e': t.o.epd = optarg; break;
		case 'E': t.o.echo = false; break;
		case 'q': t.o.quiet = true; break;
		case 'l': t.o.list = true; break;
		case 'h': usage(stdout); return 0;
		case 'p':
			if (parse_uint(optarg, 65535, &v)) goto bad;
			t.o.port = (unsigned)v;
			break;
		case 'c':
			if (parse_uint(optarg, 100000000, &v)) goto bad;
			t.o.count = v;
			break;
		case 'f':
			if (parse_uint(optarg, MAX_FLOWS, &v) || v == 0) goto bad;
			t.o.flows = (unsigned)v;
			break;
		case 'd':
			if (parse_uint(optarg, 100, &v)) goto bad;
			t.o.drop = (unsigned)v;
			break;
		case 'T':
			if (parse_uint(optarg, 86400, &v) || v == 0) goto bad;
			t.o.timeout_s = (unsigned)v;
			break;
		case 'R':
			if (parse_uint(optarg, 3600, &v) || v == 0) goto bad;
			t.o.retransmit_limit_s = (unsigned)v;
			break;
		case 's':
			if (parse_size(optarg, &t.o.size_min, &t.o.size_max)) goto bad;
			break;
		default:
			log_error("see rtmfp-tool --help");
			return 2;
		}
	}
	if (optind != argc) {
		log_error("unexpected argument '%s' (see rtmfp-tool --help)", argv[optind]);
		return 2;
	}
	if (strcmp(cmd, "send") == 0 && (!t.o.to || !t.o.epd)) {
		log_error("send needs --to HOST:PORT and --epd TARGET (see rtmfp-tool --help)");
		return 2;
	}
	if (strcmp(cmd, "listen") == 0) {
		char a[32];

		t.o.listen = "yes";
		snprintf(a, sizeof(a), "[::]:%u", t.o.port);
		if (udp_addr_parse(&bind_addr, a, 0))
			udp_addr_parse(&bind_addr, "0.0.0.0:0", 0);
	}
	if (sodium_init() < 0)
		return 1;
	rc = make_crypto(&t);
	if (rc)
		return rc;
	rc = loop_new(&t.loop);
	if (rc) {
		log_error("cannot start the event loop: %s", bfs_strerror(rc));
		rtmfp_crypto_free(t.crypto);
		return 1;
	}
	loop_signal_add(t.loop, SIGINT, on_signal, &t);
	loop_signal_add(t.loop, SIGTERM, on_signal, &t);
	rc = t.o.listen ? run_listen(&t, &bind_addr) : run_send(&t);
	rtmfp_posix_free(t.px);
	while (t.echoes) /* flows still open when the listener stopped */
		echo_free(t.echoes);
	loop_free(t.loop);
	rtmfp_crypto_free(t.crypto);
	for (unsigned k = 0; k < t.o.flows; k++)
		free(t.flows[k].hashes);
	free(t.scratch);
	return rc;
bad:
	log_error("bad value '%s' for an option (see rtmfp-tool --help)", optarg);
	return 2;
}
