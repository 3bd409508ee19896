/*
 * rdv_peer.c - one rendezvous peer for the NAT system tests
 * (tests/sys_rdv_nat.sh): a stand-in for the daemon's use of rdv_client.
 *
 *   rdv_peer --home DIR --id          make the identity if missing, print
 *                                     "id HEX", exit
 *   rdv_peer --home DIR --server ADDR:PORT [--server-id HEX] [--bind ADDR:PORT]
 *            [--register NAME] [--watch HEX]... [--connect HEX]
 *            [--bytes N] [--relay-after S] [--timeout S]
 *
 * Runs until SIGINT/SIGTERM (or --timeout).  Prints, one line each,
 * flushed at once:
 *   id HEX                         at start
 *   up ADDR / down                 control flow to the server (observed ADDR)
 *   registered NAME: RESULT
 *   presence HEX online ADDR,...   / presence HEX offline
 *   session HEX far ADDR           a session with another peer opened (ADDR:
 *                                  where it sends)
 *   sent N                         --connect: N bytes written and acknowledged
 *   received N ok|bad              a data flow ended: N bytes, pattern intact
 *   relay ...                      the relay fallback (rdv_client prints none)
 * With --connect HEX (which is also watched) the peer opens a data flow to
 * HEX each time HEX comes online, giving the server's address as the only
 * candidate (the server introduces), and writes --bytes (100000) of a
 * known pattern.  With --relay-after S it asks the server for a relay when
 * the session has not opened S seconds after the flow was opened.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "buddyfs/buf.h"
#include "buddyfs/err.h"
#include "buddyfs/identity.h"
#include "buddyfs/log.h"
#include "buddyfs/loop.h"
#include "buddyfs/rdv_client.h"
#include "buddyfs/rtmfp_crypto.h"
#include "buddyfs/rtmfp_crypto_sodium.h"
#include "buddyfs/rtmfp_posix.h"
#include "buddyfs/udp.h"

#define DATA_META "rdv-peer data"
#define CHUNK_BYTES 1000
#define MAX_WATCH 8

struct peer {
	struct loop *loop;
	struct rdv_client *c;
	struct rtmfp_posix *px;
	struct sockaddr_storage server;
	uint8_t server_id[RDV_PEER_ID_BYTES];
	bool pin;
	uint8_t watch[MAX_WATCH][RDV_PEER_ID_BYTES];
	size_t n_watch;
	bool connect;
	uint8_t target[RDV_PEER_ID_BYTES];
	size_t bytes;
	/* the data flow we send */
	struct rtmfp_send *out;
	size_t written;
	bool out_done;
	/* receiving: bytes seen and whether the pattern held, per flow ctx */
	unsigned relay_after_s;
	struct loop_timer *relay_timer;
	uint64_t stop_deadline;
	int status;
};

struct inflow {
	size_t n;
	bool bad;
	struct inflow *next, **prev; /* in inflows, freed at exit if still open */
};

static struct inflow *inflows;

static void inflow_free(struct inflow *in)
{
	*in->prev = in->next;
	if (in->next)
		in->next->prev = in->prev;
	free(in);
}

static uint64_t now_ns(void)
{
	return rtmfp_posix_now();
}

static uint8_t pattern(size_t i)
{
	return (uint8_t)((i * 131u + (i >> 8) * 7u) & 0xff);
}

static void hex_id(char out[static 2 * RDV_PEER_ID_BYTES + 1], const uint8_t *id)
{
	buf_hex(out, id, RDV_PEER_ID_BYTES);
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void fill(struct peer *p)
{
	uint8_t chunk[CHUNK_BYTES];
	size_t n, i;
	int rc;

	while (p->out && p->written < p->bytes) {
		n = p->bytes - p->written;
		if (n > sizeof(chunk))
			n = sizeof(chunk);
		for (i = 0; i < n; i++)
			chunk[i] = pattern(p->written + i);
		rc = rtmfp_send_write(p->out, chunk, n, now_ns());
		if (rc == -EAGAIN)
			break;
		if (rc) {
			say("write failed: %s", bfs_strerror(rc));
			return;
		}
		p->written += n;
	}
	if (p->out && p->written == p->bytes && !p->out_done) {
		p->out_done = true;
		rtmfp_send_close(p->out, now_ns());
	}
	rtmfp_posix_kick(p->px);
}

static void on_relay_timer(struct loop *loop, struct loop_timer *t, void *ctx)
{
	struct peer *p = ctx;

	(void)loop;
	(void)t;
	int rc;

	if (!p->out || rtmfp_send_session(p->out))
		return;
	rc = rdv_client_relay(p->c, p->target);
	if (rc)
		say("relay request failed: %s", bfs_strerror(rc));
	else
		say("relay asked (no direct session after %u s)", p->relay_after_s);
}

static void ev_relay(void *ctx, const uint8_t peer_id[static RDV_PEER_ID_BYTES], int code,
		     const struct sockaddr_storage *relay)
{
	struct peer *p = ctx;
	char hex[2 * RDV_PEER_ID_BYTES + 1], text[UDP_ADDR_STR_BYTES];

	hex_id(hex, peer_id);
	if (code != RDV_OK) {
		say("relay %s failed: %s", hex, code > 0 ? rdv_result_str((unsigned)code) : bfs_strerror(code));
		return;
	}
	udp_addr_format(text, relay);
	say("relay %s ready %s", hex, text);
	/* Our opening flow to that peer gets the relay as one more candidate. */
	if (p->out && !rtmfp_send_session(p->out) && sodium_memcmp(peer_id, p->target, RDV_PEER_ID_BYTES) == 0) {
		rtmfp_send_add_address(p->out, relay, now_ns());
		rtmfp_posix_kick(p->px);
	}
}

static void open_data(struct peer *p)
{
	uint8_t epd[RTMFP_CRYPTO_SODIUM_EPD_PEER_ID_BYTES];
	int rc;

	if (p->out)
		return;
	rtmfp_crypto_sodium_epd_peer_id(epd, p->target);
	rc = rtmfp_open_flow(rtmfp_posix_core(p->px), &p->out, epd, sizeof(epd),
			     (const uint8_t *)DATA_META, strlen(DATA_META), &p->server, 1, now_ns());
	if (rc) {
		p->out = NULL;
		say("open failed: %s", bfs_strerror(rc));
		return;
	}
	p->written = 0;
	p->out_done = false;
	if (p->relay_after_s && p->relay_timer)
		loop_timer_rearm(p->loop, p->relay_timer, (uint64_t)p->relay_after_s * LOOP_NS_PER_S);
	fill(p);
}

/* ---- rdv_client events ---- */

static void ev_connection(void *ctx, bool up, const struct sockaddr_storage *observed)
{
	char text[UDP_ADDR_STR_BYTES];

	(void)ctx;
	if (!up) {
		say("down");
		return;
	}
	udp_addr_format(text, observed);
	say("up %s", text);
}

static void ev_registered(void *ctx, const char *name, int code)
{
	(void)ctx;
	say("registered %s: %s", name, rdv_result_str((unsigned)code));
}

static void ev_presence(void *ctx, const uint8_t peer_id[static RDV_PEER_ID_BYTES], bool online,
			const struct rdv_addr *addrs, size_t n_addrs)
{
	struct peer *p = ctx;
	char hex[2 * RDV_PEER_ID_BYTES + 1], list[RDV_MAX_PRESENCE_ADDRS * (UDP_ADDR_STR_BYTES + 1) + 1];
	char text[UDP_ADDR_STR_BYTES];
	struct sockaddr_storage sa;
	size_t i, off = 0;

	hex_id(hex, peer_id);
	list[0] = '\0';
	for (i = 0; i < n_addrs; i++) {
		if (rdv_addr_to_sockaddr(&sa, &addrs[i], false))
			continue;
		udp_addr_format(text, &sa);
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", off ? "," : "", text);
	}
	say("presence %s %s %s", hex, online ? "online" : "offline", list);
	if (online && p->connect && sodium_memcmp(peer_id, p->target, RDV_PEER_ID_BYTES) == 0)
		open_data(p);
}

/* ---- rtmfp callbacks: the client's objects first, then ours ---- */

static void cb_session_opened(void *ctx, struct rtmfp_session *s)
{
	struct peer *p = ctx;
	uint8_t id[RDV_PEER_ID_BYTES];
	char hex[2 * RDV_PEER_ID_BYTES + 1], text[UDP_ADDR_STR_BYTES];

	if (rtmfp_session_far_peer_id(s, id))
		return;
	if (p->pin && sodium_memcmp(id, p->server_id, RDV_PEER_ID_BYTES) == 0)
		return;
	if (s == rdv_client_session(p->c))
		return;
	hex_id(hex, id);
	udp_addr_format(text, rtmfp_session_far_addr(s));
	say("session %s far %s", hex, text);
}

static void cb_recv_flow(void *ctx, struct rtmfp_recv *f, const uint8_t *meta, size_t meta_len,
			 struct rtmfp_send *assoc)
{
	struct peer *p = ctx;
	struct inflow *in;

	if (rdv_client_on_recv_flow(p->c, f, meta, meta_len, assoc))
		return;
	if (meta_len != strlen(DATA_META) || memcmp(meta, DATA_META, meta_len) != 0)
		return; /* not accepted: rejected */
	in = calloc(1, sizeof(*in));
	if (!in)
		return;
	in->next = inflows;
	in->prev = &inflows;
	if (inflows)
		inflows->prev = &in->next;
	inflows = in;
	rtmfp_recv_set_ctx(f, in);
	rtmfp_recv_accept(f);
}

static void cb_message(void *ctx, struct rtmfp_recv *f, const uint8_t *msg, size_t len)
{
	struct peer *p = ctx;
	struct inflow *in;
	size_t i;

	if (rdv_client_on_message(p->c, f, msg, len))
		return;
	in = rtmfp_recv_get_ctx(f);
	if (!in)
		return;
	for (i = 0; i < len; i++)
		if (msg[i] != pattern(in->n + i))
			in->bad = true;
	in->n += len;
}

static void cb_recv_closed(void *ctx, struct rtmfp_recv *f, int err)
{
	struct peer *p = ctx;
	struct inflow *in;

	if (rdv_client_on_recv_closed(p->c, f, err))
		return;
	in = rtmfp_recv_get_ctx(f);
	if (!in)
		return;
	say("received %zu %s", in->n, !in->bad && err == 0 ? "ok" : "bad");
	inflow_free(in);
	rtmfp_recv_set_ctx(f, NULL);
}

static void cb_writable(void *ctx, struct rtmfp_send *f)
{
	struct peer *p = ctx;

	if (f == p->out)
		fill(p);
}

static void cb_send_closed(void *ctx, struct rtmfp_send *f, int err)
{
	struct peer *p = ctx;

	if (rdv_client_on_send_closed(p->c, f, err))
		return;
	if (f != p->out)
		return;
	if (err == 0)
		say("sent %zu", p->written);
	else
		say("send failed: %s", bfs_strerror(err));
	p->out = NULL;
}

static const struct rtmfp_callbacks peer_callbacks = {
	.session_opened = cb_session_opened,
	.recv_flow = cb_recv_flow,
	.message = cb_message,
	.recv_closed = cb_recv_closed,
	.writable = cb_writable,
	.send_closed = cb_send_closed,
};

/* Stop: close every session in order (the server sees this peer go
 * offline at once), wait for that at most 2 s. */
static void on_closing(struct loop *loop, struct loop_timer *t, void *ctx)
{
	struct peer *p = ctx;

	if (rtmfp_idle(rtmfp_posix_core(p->px)) || loop_now(loop) >= p->stop_deadline)
		loop_stop(loop);
	else
		loop_timer_rearm(loop, t, 20 * LOOP_NS_PER_MS);
}

static void on_signal(struct loop *loop, int signo, void *ctx)
{
	struct peer *p = ctx;

	(void)signo;
	if (p->stop_deadline) {
		loop_stop(loop);
		return;
	}
	p->stop_deadline = loop_now(loop) + 2 * LOOP_NS_PER_S;
	rtmfp_shutdown(rtmfp_posix_core(p->px), true, now_ns());
	rtmfp_posix_kick(p->px);
	if (loop_timer_add(loop, 20 * LOOP_NS_PER_MS, on_closing, p, NULL))
		loop_stop(loop);
}

static void on_timeout(struct loop *loop, struct loop_timer *t, void *ctx)
{
	(void)t;
	(void)ctx;
	loop_stop(loop);
}

static int load_id(struct identity **id, const char *home)
{
	int rc = identity_load(id, home, NULL);

	if (rc == BFS_ENOIDENT)
		rc = identity_create(id, home, "peer", "", 0);
	if (rc)
		log_error("identity in '%s': %s", home, bfs_strerror(rc));
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "home", required_argument, NULL, 'H' },
		{ "id", no_argument, NULL, 'I' },
		{ "server", required_argument, NULL, 's' },
		{ "server-id", required_argument, NULL, 'i' },
		{ "bind", required_argument, NULL, 'b' },
		{ "register", required_argument, NULL, 'r' },
		{ "watch", required_argument, NULL, 'w' },
		{ "connect", required_argument, NULL, 'c' },
		{ "bytes", required_argument, NULL, 'n' },
		{ "relay-after", required_argument, NULL, 'R' },
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	static struct peer p;
	const char *home = NULL, *server = NULL, *server_id = NULL, *bind = NULL, *reg = NULL;
	struct rdv_client_config cfg;
	struct identity *id = NULL;
	struct rtmfp_crypto *crypto = NULL;
	struct sockaddr_storage bind_addr;
	struct rtmfp_params params;
	char hex[2 * RDV_PEER_ID_BYTES + 1];
	unsigned timeout_s = 0;
	bool only_id = false;
	int c, rc;

	log_init("rdv_peer");
	if (argc == 1) {
		/* bench/run.sh runs every bench without arguments: nothing to time. */
		puts("rdv_peer: a helper for tests/sys_rdv_nat.sh (see its --home/--server options)");
		return 0;
	}
	if (identity_crypto_init())
		return 1;
	p.bytes = 100000;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'H': home = optarg; break;
		case 'I': only_id = true; break;
		case 's': server = optarg; break;
		case 'i': server_id = optarg; break;
		case 'b': bind = optarg; break;
		case 'r': reg = optarg; break;
		case 'w':
		case 'c':
			if (p.n_watch == MAX_WATCH || !buf_unhex(p.watch[p.n_watch], RDV_PEER_ID_BYTES, optarg)) {
				log_error("bad or too many peer ids ('%s')", optarg);
				return 2;
			}
			if (c == 'c') {
				memcpy(p.target, p.watch[p.n_watch], RDV_PEER_ID_BYTES);
				p.connect = true;
			}
			p.n_watch++;
			break;
		case 'n': p.bytes = (size_t)strtoul(optarg, NULL, 10); break;
		case 'R': p.relay_after_s = (unsigned)strtoul(optarg, NULL, 10); break;
		case 't': timeout_s = (unsigned)strtoul(optarg, NULL, 10); break;
		default: return 2;
		}
	}
	if (!home || (!only_id && !server)) {
		log_error("usage: rdv_peer --home DIR (--id | --server ADDR:PORT ...)");
		return 2;
	}
	if (load_id(&id, home))
		return 1;
	hex_id(hex, id->peer_id);
	printf("id %s\n", hex);
	fflush(stdout);
	if (only_id) {
		identity_free(id);
		return 0;
	}
	memset(&cfg, 0, sizeof(cfg));
	if (udp_addr_parse(&p.server, server, RDV_DEFAULT_PORT) ||
	    udp_addr_parse(&bind_addr, bind ? bind : "0.0.0.0:0", 0) ||
	    (server_id && !buf_unhex(p.server_id, RDV_PEER_ID_BYTES, server_id))) {
		log_error("bad --server, --bind or --server-id");
		identity_free(id);
		return 2;
	}
	p.pin = server_id != NULL;
	cfg.server = p.server;
	cfg.pin_server = p.pin;
	memcpy(cfg.server_id, p.server_id, RDV_PEER_ID_BYTES);
	cfg.id = id;
	cfg.backoff_max_ns = 2 * LOOP_NS_PER_S;
	cfg.ev.connection = ev_connection;
	cfg.ev.registered = ev_registered;
	cfg.ev.presence = ev_presence;
	cfg.ev.relay = ev_relay;
	cfg.ctx = &p;
	/* The daemon's RTMFP timers; a restarted server is noticed by the
	 * client's probe (2 s + 2 s here, 15 s + 10 s by default). */
	rtmfp_params_default(&params);
	cfg.probe_ns = 2 * LOOP_NS_PER_S;
	cfg.probe_timeout_ns = 2 * LOOP_NS_PER_S;
	p.status = 0;
	rc = loop_new(&p.loop);
	if (rc == 0)
		rc = rtmfp_crypto_sodium_new(&crypto, id->secret_key, NULL, 0, 0);
	if (rc == 0)
		rc = rdv_client_new(&p.c, p.loop, &cfg);
	if (rc == 0)
		rc = rtmfp_posix_new(&p.px, p.loop, crypto, &peer_callbacks, &p, &params, &bind_addr);
	if (rc == 0 && reg)
		rc = rdv_client_register(p.c, reg);
	if (rc == 0 && p.n_watch)
		rc = rdv_client_watch(p.c, (const uint8_t (*)[RDV_PEER_ID_BYTES])p.watch, p.n_watch);
	if (rc == 0)
		rc = rdv_client_start(p.c, p.px);
	if (rc == 0)
		rc = loop_timer_new(p.loop, on_relay_timer, &p, &p.relay_timer);
	if (rc == 0 && timeout_s)
		rc = loop_timer_add(p.loop, (uint64_t)timeout_s * LOOP_NS_PER_S, on_timeout, &p, NULL);
	if (rc == 0)
		rc = loop_signal_add(p.loop, SIGINT, on_signal, &p);
	if (rc == 0)
		rc = loop_signal_add(p.loop, SIGTERM, on_signal, &p);
	if (rc) {
		log_error("cannot start: %s", bfs_strerror(rc));
		p.status = 1;
	} else {
		loop_run(p.loop);
	}
	rtmfp_posix_free(p.px);
	rdv_client_free(p.c);
	while (inflows)
		inflow_free(inflows);
	if (p.relay_timer)
		loop_timer_cancel(p.loop, p.relay_timer);
	rtmfp_crypto_free(crypto);
	loop_free(p.loop);
	identity_free(id);
	fflush(stdout);
	return p.status;
}
