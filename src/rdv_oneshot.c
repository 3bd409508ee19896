/*
 * rdv_oneshot.c - blocking, one-shot rendezvous requests (see rdv_oneshot.h).
 *
 * Each call builds a private loop, an RTMFP instance and an rdv_client,
 * runs the loop until the answer or the deadline, says goodbye to the
 * server when it answered (an orderly close, bounded), and frees it all.
 * A REGISTER is re-sent by the client on every reconnection by itself; a
 * LOOKUP is asked once the server has answered (the connection event) and
 * asked again after a reconnection if the flow failed first.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <sodium.h>

#include "buddyfs/err.h"
#include "buddyfs/identity.h"
#include "buddyfs/loop.h"
#include "buddyfs/rdv_client.h"
#include "buddyfs/rdv_oneshot.h"
#include "buddyfs/rdv_proto.h"
#include "buddyfs/rtmfp.h"
#include "buddyfs/rtmfp_crypto.h"
#include "buddyfs/rtmfp_crypto_sodium.h"
#include "buddyfs/rtmfp_posix.h"
#include "buddyfs/udp.h"

#define BACKOFF_MIN_NS (200 * LOOP_NS_PER_MS)
#define BACKOFF_MAX_NS (1 * LOOP_NS_PER_S)

struct oneshot {
	struct loop *loop;
	struct rtmfp_crypto *crypto;
	struct rtmfp_posix *px;
	struct rdv_client *c;
	const char *name;      /* normalized: registered or looked up */
	bool lookup;           /* else register */
	bool asked;            /* the LOOKUP is on the current control flow */
	bool done;
	bool answered;         /* the server answered (say goodbye) */
	int code;              /* RDV_* from the server, or a negative error */
	uint8_t cert[RDV_CERT_MAX_BYTES];
	size_t cert_len;
	uint8_t peer_id[RDV_PEER_ID_BYTES];
	char addr[IDENTITY_ADDR_TEXT_BYTES]; /* "host:port" for messages */
};

static void say(char *why, size_t why_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void say(char *why, size_t why_len, const char *fmt, ...)
{
	va_list ap;

	if (!why || why_len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, why_len, fmt, ap);
	va_end(ap);
}

static void finish(struct oneshot *o, int code, bool answered)
{
	if (o->done)
		return;
	o->done = true;
	o->code = code;
	o->answered = answered;
}

static void on_lookup(void *ctx, int code, const uint8_t *cert, size_t cert_len, const uint8_t *peer_id)
{
	struct oneshot *o = ctx;

	if (code == BFS_ECLOSED) {
		o->asked = false; /* the flow failed first: ask again once reconnected */
		return;
	}
	if (code == RDV_OK) {
		if (cert_len > sizeof(o->cert)) {
			finish(o, BFS_EMALFORMED, true);
			return;
		}
		memcpy(o->cert, cert, cert_len);
		o->cert_len = cert_len;
		memcpy(o->peer_id, peer_id, sizeof(o->peer_id));
	}
	finish(o, code, true);
}

static void ev_connection(void *ctx, bool up, const struct sockaddr_storage *observed)
{
	struct oneshot *o = ctx;
	int rc;

	(void)observed;
	if (!up) {
		o->asked = false;
		return;
	}
	if (!o->lookup || o->asked || o->done)
		return;
	rc = rdv_client_lookup(o->c, o->name, NULL, on_lookup, o);
	if (rc == 0)
		o->asked = true;
	else if (rc != -ENOTCONN)
		finish(o, rc, false);
}

static void ev_registered(void *ctx, const char *name, int code)
{
	struct oneshot *o = ctx;

	(void)name;
	finish(o, code, true);
}

/* The server's RDV_* answer (or a local negative code) as our error. */
static int explain(const struct oneshot *o, char *why, size_t why_len)
{
	switch (o->code) {
	case RDV_OK:
		return 0;
	case RDV_ERR_TAKEN:
		say(why, why_len, "the name '%s' is taken at %s by another peer", o->name, o->addr);
		return -EEXIST;
	case RDV_ERR_NOTFOUND:
		say(why, why_len, "no user '%s' is registered at %s", o->name, o->addr);
		return -ENOENT;
	case RDV_ERR_BADSIG:
		say(why, why_len, "%s refused the registration: bad signature", o->addr);
		return BFS_EBADSIG;
	case RDV_ERR_MALFORMED:
		say(why, why_len, "%s refused the name '%s'", o->addr, o->name);
		return BFS_EBADNAME;
	case RDV_ERR_RATELIMIT:
		say(why, why_len, "%s: too many requests, try again later", o->addr);
		return -EAGAIN;
	case RDV_ERR_INTERNAL:
		say(why, why_len, "%s failed (server error)", o->addr);
		return -EIO;
	}
	if (o->code < 0) {
		say(why, why_len, "%s: %s", o->addr, bfs_strerror(o->code));
		return o->code;
	}
	say(why, why_len, "%s sent an unknown result code %d", o->addr, o->code);
	return BFS_EPROTO;
}

/* "N s" with one decimal when N is not whole. */
static void fmt_secs(char out[32], unsigned ms)
{
	if (ms % 1000 == 0)
		snprintf(out, 32, "%u s", ms / 1000);
	else
		snprintf(out, 32, "%u.%u s", ms / 1000, (ms % 1000) / 100);
}

static void run_until_done(struct oneshot *o, uint64_t deadline)
{
	for (;;) {
		uint64_t now = loop_clock_ns();

		if (o->done || now >= deadline)
			return;
		if (loop_run_once(o->loop, deadline - now) < 0)
			return;
	}
}

/* An orderly close of the session, so the server forgets us at once. */
static void goodbye(struct oneshot *o)
{
	struct rtmfp *r = rtmfp_posix_core(o->px);
	uint64_t end = loop_clock_ns() + RDV_ONESHOT_GOODBYE_MS * LOOP_NS_PER_MS;

	rtmfp_shutdown(r, true, rtmfp_posix_now());
	rtmfp_posix_kick(o->px);
	while (!rtmfp_idle(r)) {
		uint64_t now = loop_clock_ns();

		if (now >= end || loop_run_once(o->loop, end - now) < 0)
			return;
	}
}

/* run - the whole request; the result is in @o (code, cert...). */
static int run(struct oneshot *o, const struct identity *id, const char *host, uint16_t port,
	       unsigned timeout_ms, char *why, size_t why_len)
{
	struct rdv_client_config cfg;
	struct sockaddr_storage srv, any;
	char secs[32];
	uint64_t deadline;
	int rc;

	if (!host || !host[0] || strlen(host) > IDENTITY_HOST_MAX || port == 0) {
		say(why, why_len, "bad rendezvous address '%s' port %u", host ? host : "", port);
		return -EINVAL;
	}
	if (timeout_ms == 0)
		timeout_ms = RDV_ONESHOT_DEFAULT_TIMEOUT_MS;
	identity_addr_format(o->addr, host, port);
	rc = udp_addr_parse(&srv, o->addr, 0);
	if (rc) {
		if (rc == -ENOENT)
			say(why, why_len, "the rendezvous host '%s' does not resolve", host);
		else
			say(why, why_len, "bad rendezvous address %s", o->addr);
		return rc;
	}
	udp_addr_parse(&any, srv.ss_family == AF_INET6 ? "[::]:0" : "0.0.0.0:0", 0);

	rc = loop_new(&o->loop);
	if (rc)
		goto fail;
	rc = rtmfp_crypto_sodium_new(&o->crypto, id->secret_key, NULL, 0, 0);
	if (rc)
		goto fail;
	memset(&cfg, 0, sizeof(cfg));
	cfg.server = srv;
	cfg.pin_server = false;
	cfg.id = id;
	cfg.backoff_min_ns = BACKOFF_MIN_NS;
	cfg.backoff_max_ns = BACKOFF_MAX_NS;
	cfg.ev.connection = ev_connection;
	cfg.ev.registered = ev_registered;
	cfg.ctx = o;
	rc = rdv_client_new(&o->c, o->loop, &cfg);
	if (rc)
		goto fail;
	rc = rtmfp_posix_new(&o->px, o->loop, o->crypto, &rdv_client_callbacks, o->c, NULL, &any);
	if (rc)
		goto fail;
	if (!o->lookup) {
		rc = rdv_client_register(o->c, o->name);
		if (rc)
			goto fail;
	}
	rc = rdv_client_start(o->c, o->px);
	if (rc)
		goto fail;
	rtmfp_posix_kick(o->px);

	deadline = loop_clock_ns() + (uint64_t)timeout_ms * LOOP_NS_PER_MS;
	run_until_done(o, deadline);
	if (!o->done) {
		fmt_secs(secs, timeout_ms);
		say(why, why_len, "no answer from %s in %s", o->addr, secs);
		return -ETIMEDOUT;
	}
	if (o->answered)
		goodbye(o);
	return 0;
fail:
	say(why, why_len, "cannot reach %s: %s", o->addr, bfs_strerror(rc));
	return rc;
}

static void teardown(struct oneshot *o)
{
	rtmfp_posix_free(o->px);     /* first: the control flow is the instance's */
	rdv_client_free(o->c);
	rtmfp_crypto_free(o->crypto);
	loop_free(o->loop);
	sodium_memzero(o, sizeof(*o));
}

int rdv_oneshot_register(const struct identity *id, const char *host, uint16_t port, unsigned timeout_ms,
			 char *why, size_t why_len)
{
	struct oneshot o;
	int rc;

	memset(&o, 0, sizeof(o));
	say(why, why_len, "%s", "");
	o.name = id->config.name;
	rc = run(&o, id, host, port, timeout_ms, why, why_len);
	if (rc == 0)
		rc = explain(&o, why, why_len);
	teardown(&o);
	return rc;
}

int rdv_oneshot_lookup(const struct identity *id, const char *host, uint16_t port, const char *name,
		       unsigned timeout_ms, uint8_t peer_id[static 32], uint8_t *cert, size_t cert_cap,
		       size_t *cert_len, char *why, size_t why_len)
{
	char norm[IDENTITY_NAME_MAX + 1];
	uint8_t check[RDV_PEER_ID_BYTES];
	struct oneshot o;
	int rc;

	memset(&o, 0, sizeof(o));
	say(why, why_len, "%s", "");
	if (identity_name_normalize(norm, name ? name : "")) {
		say(why, why_len, "'%s' is not a valid user name", name ? name : "");
		return BFS_EBADNAME;
	}
	o.name = norm;
	o.lookup = true;
	rc = run(&o, id, host, port, timeout_ms, why, why_len);
	if (rc == -ENOENT)
		rc = -EHOSTUNREACH; /* -ENOENT is kept for "no such name" */
	if (rc == 0)
		rc = explain(&o, why, why_len);
	if (rc == 0) {
		identity_peer_id_of(check, o.cert, o.cert_len);
		if (sodium_memcmp(check, o.peer_id, sizeof(check)) != 0) {
			say(why, why_len, "%s: the certificate does not hash to its peer id", o.addr);
			rc = BFS_EBADHASH;
		} else if (o.cert_len > cert_cap) {
			say(why, why_len, "the certificate of '%s' (%zu bytes) does not fit in %zu",
			    o.name, o.cert_len, cert_cap);
			rc = BFS_ETOOBIG;
		} else {
			memcpy(peer_id, o.peer_id, RDV_PEER_ID_BYTES);
			memcpy(cert, o.cert, o.cert_len);
			*cert_len = o.cert_len;
		}
	}
	teardown(&o);
	return rc;
}
