/*
 * rdv_load.c - rendezvous clients from the shell.
 *
 *   rdv_load [--peers N] [--concurrency C] [--intro-seconds S]
 *            [--intro-sockets K] [--window W]
 *                            the load run: a server (forked child) on
 *                            loopback and N (500) simulated peers in this
 *                            process, one socket each.  Phase 1: every
 *                            peer opens its session (full handshake; C
 *                            (200) opening at once, the next starting as
 *                            one is up), REPORTs and WATCHes the next one;
 *                            phase 2:
 *                            every peer REGISTERs a name at once; phase 3
 *                            (S seconds, 3; 0 skips it): K (4) raw sockets
 *                            send sealed IHellos for the peers' EPDs to
 *                            the server, W (64) in flight each, one more
 *                            per Redirect back (the server also sends the
 *                            target its FIHello); then the server's RSS.
 *                            Each rate is printed per wall second and per
 *                            second of server CPU, with the goal
 *                            and the load average beside it.
 *   rdv_load --server HOST:PORT --home DIR [--server-id HEX]
 *            [--register NAME] [--lookup NAME [--expect HEX]] [--timeout S]
 *                            one peer (system tests): prints
 *                            "observed ADDR", "registered NAME: RESULT",
 *                            "lookup NAME PEERID" or "lookup NAME: RESULT";
 *                            exit 0 when everything asked succeeded
 *
 * The identity of the one peer is HOME's (made when missing).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <netinet/in.h>

#include <sodium.h>

#include "buddyfs/buf.h"
#include "buddyfs/err.h"
#include "buddyfs/identity.h"
#include "buddyfs/log.h"
#include "buddyfs/loop.h"
#include "buddyfs/rdv_client.h"
#include "buddyfs/rdv_server.h"
#include "buddyfs/rtmfp_crypto.h"
#include "buddyfs/rtmfp_crypto_sodium.h"
#include "buddyfs/rtmfp_posix.h"
#include "buddyfs/rtmfp_wire.h"
#include "buddyfs/udp.h"

struct one {
	struct loop *loop;
	const char *reg, *look;
	bool have_expect;
	uint8_t expect[RDV_PEER_ID_BYTES];
	bool reg_done, look_done, look_sent;
	struct rdv_client *c;
	int status;
};

static void maybe_stop(struct one *o)
{
	if ((!o->reg || o->reg_done) && (!o->look || o->look_done))
		loop_stop(o->loop);
}

static void on_lookup(void *ctx, int code, const uint8_t *cert, size_t cert_len, const uint8_t *id)
{
	struct one *o = ctx;
	char hex[2 * RDV_PEER_ID_BYTES + 1];

	(void)cert;
	(void)cert_len;
	o->look_done = true;
	if (code == RDV_OK) {
		buf_hex(hex, id, RDV_PEER_ID_BYTES);
		printf("lookup %s %s\n", o->look, hex);
	} else {
		printf("lookup %s: %s\n", o->look, code > 0 ? rdv_result_str((unsigned)code) : bfs_strerror(code));
		o->status = 1;
	}
	maybe_stop(o);
}

static void ev_connection(void *ctx, bool up, const struct sockaddr_storage *observed)
{
	struct one *o = ctx;
	char text[UDP_ADDR_STR_BYTES];
	int rc;

	if (!up)
		return;
	udp_addr_format(text, observed);
	printf("observed %s\n", text);
	if (o->look && !o->look_sent) {
		rc = rdv_client_lookup(o->c, o->look, o->have_expect ? o->expect : NULL, on_lookup, o);
		if (rc) {
			printf("lookup %s: %s\n", o->look, bfs_strerror(rc));
			o->status = 1;
			o->look_done = true;
		}
		o->look_sent = true;
	}
	maybe_stop(o);
}

static void ev_registered(void *ctx, const char *name, int code)
{
	struct one *o = ctx;

	printf("registered %s: %s\n", name, rdv_result_str((unsigned)code));
	if (code != RDV_OK)
		o->status = 1;
	o->reg_done = true;
	maybe_stop(o);
}

static void on_timeout(struct loop *loop, struct loop_timer *t, void *ctx)
{
	struct one *o = ctx;

	(void)t;
	log_error("no answer from the rendezvous server in time");
	o->status = 1;
	loop_stop(loop);
}

static int run_one(const char *server, const char *server_id, const char *home, const char *reg,
		   const char *look, const char *expect, unsigned timeout_s)
{
	struct one o = { .reg = reg, .look = look };
	struct rdv_client_config cfg;
	struct identity *id = NULL;
	struct rtmfp_crypto *crypto = NULL;
	struct rtmfp_posix *px = NULL;
	struct sockaddr_storage any;
	int rc;

	memset(&cfg, 0, sizeof(cfg));
	if (udp_addr_parse(&cfg.server, server, RDV_DEFAULT_PORT)) {
		log_error("bad --server '%s'", server);
		return 2;
	}
	if (server_id) {
		if (!buf_unhex(cfg.server_id, sizeof(cfg.server_id), server_id)) {
			log_error("bad --server-id '%s'", server_id);
			return 2;
		}
		cfg.pin_server = true;
	}
	if (expect) {
		if (!buf_unhex(o.expect, sizeof(o.expect), expect)) {
			log_error("bad --expect '%s'", expect);
			return 2;
		}
		o.have_expect = true;
	}
	rc = identity_load(&id, home, NULL);
	if (rc == BFS_ENOIDENT)
		rc = identity_create(&id, home, reg ? reg : "peer", "", 0);
	if (rc) {
		log_error("identity in '%s': %s", home, bfs_strerror(rc));
		return 1;
	}
	o.status = 0;
	rc = loop_new(&o.loop);
	if (rc == 0)
		rc = rtmfp_crypto_sodium_new(&crypto, id->secret_key, NULL, 0, 0);
	cfg.id = id;
	cfg.ev.connection = ev_connection;
	cfg.ev.registered = ev_registered;
	cfg.ctx = &o;
	if (rc == 0)
		rc = rdv_client_new(&o.c, o.loop, &cfg);
	udp_addr_parse(&any, cfg.server.ss_family == AF_INET6 ? "[::]:0" : "0.0.0.0:0", 0);
	if (rc == 0)
		rc = rtmfp_posix_new(&px, o.loop, crypto, &rdv_client_callbacks, o.c, NULL, &any);
	if (rc == 0 && reg)
		rc = rdv_client_register(o.c, reg);
	if (rc == 0)
		rc = rdv_client_start(o.c, px);
	if (rc == 0)
		rc = loop_timer_add(o.loop, (uint64_t)timeout_s * LOOP_NS_PER_S, on_timeout, &o, NULL);
	if (rc) {
		log_error("cannot start: %s", bfs_strerror(rc));
		o.status = 1;
	} else {
		loop_run(o.loop);
	}
	rtmfp_posix_free(px);
	rdv_client_free(o.c);
	rtmfp_crypto_free(crypto);
	loop_free(o.loop);
	identity_free(id);
	fflush(stdout);
	return o.status;
}


/* ---- the load run ---- */

/*
 * The server runs in a forked child (its own core, its own RSS); the
 * parent asks it for its counters over a pipe and reads its CPU time and
 * RSS from /proc.  Rates are given per second of wall time and per second
 * of the server's CPU time (user + system): the goals are "on one
 * core", and client and server share the machine's cores.
 */

#define GOAL_SESSIONS 10000u       /* concurrent, within GOAL_RSS_MIB */
#define GOAL_RSS_MIB 100.0
#define GOAL_INTRO_PER_S 20000.0
#define GOAL_NEW_PER_S 2000.0
#define PHASE_LIMIT_NS (180 * LOOP_NS_PER_S)

struct lpeer {
	struct load *l;
	struct identity *id;
	struct rtmfp_crypto *crypto;
	struct rtmfp_posix *px;
	struct rdv_client *c;
	bool up;
	bool registered;
	bool saw_online;
};

/* A raw socket that sends IHellos for online peers' EPDs (phase 3). */
struct intro_sock {
	struct load *l;
	struct udp_sock *u;
	struct loop_fd *fd;
	uint64_t sent, redirects, others;
	uint64_t mark_sent, mark_redirects; /* at the last progress check */
	size_t next;                        /* next target */
};

struct load {
	struct loop *loop;
	size_t n, n_up, n_registered, n_online;
	size_t n_started, concurrency;      /* phase 1: sessions opening at once */
	int start_err;
	struct sockaddr_storage any;
	struct lpeer *p;
	uint64_t t_up, t_registered, t_online;
	pid_t pid;
	int req_fd, resp_fd;
	struct sockaddr_storage srv_addr;
	/* phase 3 */
	uint8_t (*ihello)[128];             /* one sealed IHello datagram per target */
	size_t *ihello_len;
	size_t window;
};

struct snap {
	struct rdv_server_stats st;
	double cpu_s;   /* server user + system seconds */
	long rss_kib;
	uint64_t t_ns;
};

static int start_peer(struct load *l, size_t i);

static void l_connection(void *ctx, bool up, const struct sockaddr_storage *observed)
{
	struct lpeer *p = ctx;
	struct load *l = p->l;

	(void)observed;
	if (!up || p->up)
		return;
	p->up = true;
	if (++l->n_up == l->n)
		l->t_up = loop_clock_ns();
	/* one session up: the next one starts (at most `concurrency` opening) */
	if (l->n_started < l->n && !l->start_err) {
		l->start_err = start_peer(l, l->n_started);
		l->n_started++;
	}
}

static void l_registered(void *ctx, const char *name, int code)
{
	struct lpeer *p = ctx;

	(void)name;
	if (code != RDV_OK || p->registered)
		return;
	p->registered = true;
	if (++p->l->n_registered == p->l->n)
		p->l->t_registered = loop_clock_ns();
}

static void l_presence(void *ctx, const uint8_t id[static RDV_PEER_ID_BYTES], bool online,
		       const struct rdv_addr *a, size_t n)
{
	struct lpeer *p = ctx;

	(void)id;
	(void)a;
	(void)n;
	if (!online || p->saw_online)
		return;
	p->saw_online = true;
	if (++p->l->n_online == p->l->n)
		p->l->t_online = loop_clock_ns();
}

static long rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* cpu_s - user + system seconds of @pid (fields 14 and 15 of stat). */
static double cpu_s(pid_t pid)
{
	char path[64], buf[1024], *q;
	unsigned long ut = 0, st = 0;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	q = strrchr(buf, ')'); /* the command name may hold spaces */
	if (!q || sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* udp_drops - the kernel's drop count of the IPv4 UDP socket bound to
 * @port (/proc/net/udp, last column); -1 when not found.  With @n: how
 * many sockets have that port (more than one would steal datagrams), and
 * @rxq: the bytes waiting in their receive queues. */
static long long udp_drops(uint16_t port, int *n, unsigned long *rxq)
{
	char line[512];
	unsigned lport;
	unsigned long txq, q;
	long long drops = -1, d;
	FILE *f = fopen("/proc/net/udp", "r");

	*n = 0;
	*rxq = 0;
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':'), *last;

		if (!colon || !(colon = strchr(colon + 1, ':')) || sscanf(colon + 1, "%x", &lport) != 1 ||
		    lport != port)
			continue;
		if (sscanf(colon + 1, "%*x %*x:%*x %*x %lx:%lx", &txq, &q) == 2)
			*rxq += q;
		last = NULL;
		for (char *save = NULL, *tok = strtok_r(line, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save))
			last = tok;
		if (last && sscanf(last, "%lld", &d) == 1) {
			drops = drops < 0 ? d : drops + d;
			(*n)++;
		}
	}
	fclose(f);
	return drops;
}

static uint16_t port_of(const struct sockaddr_storage *a)
{
	return ntohs(((const struct sockaddr_in *)a)->sin_port);
}

static void load_avg(char *out, size_t cap)
{
	FILE *f = fopen("/proc/loadavg", "r");
	double a = -1;

	if (f) {
		if (fscanf(f, "%lf", &a) != 1)
			a = -1;
		fclose(f);
	}
	snprintf(out, cap, "load %.2f", a);
}

/* snapshot - the server's counters (asked over the pipe), CPU time, RSS. */
static int snapshot(struct load *l, struct snap *s)
{
	char c = 's';

	if (write(l->req_fd, &c, 1) != 1 || read(l->resp_fd, &s->st, sizeof(s->st)) != (ssize_t)sizeof(s->st))
		return -1;
	s->cpu_s = cpu_s(l->pid);
	s->rss_kib = rss_kib(l->pid);
	s->t_ns = loop_clock_ns();
	return 0;
}

static void l_stop(struct loop *loop, int signo, void *ctx)
{
	(void)signo;
	(void)ctx;
	loop_stop(loop);
}

struct child {
	struct rdv_server *srv;
	int resp_fd;
};

static void on_stats_req(struct loop *loop, struct loop_fd *h, int fd, uint32_t events, void *ctx)
{
	struct child *ch = ctx;
	struct rdv_server_stats st;
	char c;

	(void)h;
	(void)events;
	if (read(fd, &c, 1) != 1) {
		loop_stop(loop); /* the parent is gone */
		return;
	}
	rdv_server_get_stats(ch->srv, &st);
	if (write(ch->resp_fd, &st, sizeof(st)) != (ssize_t)sizeof(st))
		loop_stop(loop);
}

/* server_child - run a server on loopback until SIGTERM; its address goes
 * out on @resp_fd first, then one stats struct per byte read on @req_fd. */
static int server_child(const char *db, int req_fd, int resp_fd)
{
	struct rdv_server_params prm;
	struct child ch = { .resp_fd = resp_fd };
	struct loop *loop = NULL;
	struct sockaddr_storage a;
	int rc;

	rdv_server_params_default(&prm);
	prm.ihello = prm.reg = prm.lookup = (struct rdv_rate){ 1e9, 1e9 }; /* all peers share one IP */
	udp_addr_parse(&a, "127.0.0.1:0", 0);
	rc = loop_new(&loop);
	if (rc == 0)
		rc = rdv_server_new(&ch.srv, loop, db, &a, &prm);
	if (rc == 0)
		rc = rdv_server_local_addr(ch.srv, &a);
	if (rc == 0)
		rc = loop_signal_add(loop, SIGTERM, l_stop, NULL);
	if (rc == 0)
		rc = loop_fd_add(loop, req_fd, LOOP_IN, on_stats_req, &ch, NULL);
	if (write(resp_fd, &a, sizeof(a)) != (ssize_t)sizeof(a) || rc)
		return 1;
	loop_run(loop);
	rdv_server_free(ch.srv);
	loop_free(loop);
	return 0;
}

static struct identity *mem_identity(const char *name)
{
	struct identity *id = calloc(1, sizeof(*id));

	if (!id)
		return NULL;
	crypto_sign_keypair(id->public_key, id->secret_key);
	identity_cert_make(id->cert, id->public_key);
	identity_peer_id_of(id->peer_id, id->cert, sizeof(id->cert));
	snprintf(id->config.name, sizeof(id->config.name), "%s", name);
	return id;
}

static void run_phase(struct load *l, const size_t *count, size_t want)
{
	uint64_t end = loop_clock_ns() + PHASE_LIMIT_NS;

	while (*count < want && loop_clock_ns() < end)
		loop_run_once(l->loop, 50 * LOOP_NS_PER_MS);
}

/* report - one figure: @n events between @a and @b (server CPU between
 * them too), against @goal per second (0: none). */
static void report(const char *what, double n, const struct snap *a, const struct snap *b, uint64_t t_end,
		   double goal)
{
	double wall = (double)(t_end - a->t_ns) / 1e9, cpu = b->cpu_s - a->cpu_s;
	char la[32];

	load_avg(la, sizeof(la));
	printf("%-14s %8.0f in %6.3f s: %8.0f /s wall; server CPU %.3f s: %8.0f /s per server core", what, n,
	       wall, wall > 0 ? n / wall : 0, cpu, cpu > 0 ? n / cpu : 0);
	if (goal > 0)
		printf(" (goal >= %.0f /s on one core)", goal);
	printf(" [%s]\n", la);
}

/* ---- phase 3: IHellos for online peers' EPDs ---- */

/* make_ihello - a sealed startup packet holding one IHello for @peer_id. */
static int make_ihello(struct rtmfp_crypto *crypto, const uint8_t *peer_id, uint8_t *out, size_t cap,
		       size_t *out_len)
{
	uint8_t epd[RTMFP_CRYPTO_SODIUM_EPD_PEER_ID_BYTES], tag[16];
	struct rtmfp_wire_header h = { .flags = RTMFP_WIRE_MODE_STARTUP, .has_timestamp = true };
	struct rtmfp_wire_ihello c = { .epd = { epd, sizeof(epd) }, .tag = { tag, sizeof(tag) } };
	struct rtmfp_wire_asm a;
	size_t front = rtmfp_crypto_front_bytes(crypto), limit, n = 0;
	int rc;

	if (cap < RTMFP_WIRE_SSID_BYTES + RTMFP_CRYPTO_MAX_OVERHEAD_BYTES + 64)
		return -ENOSPC;
	limit = cap - RTMFP_WIRE_SSID_BYTES - RTMFP_CRYPTO_MAX_OVERHEAD_BYTES;
	rtmfp_crypto_sodium_epd_peer_id(epd, peer_id);
	randombytes_buf(tag, sizeof(tag));
	rc = rtmfp_wire_asm_init(&a, out + RTMFP_WIRE_SSID_BYTES + front, limit, &h);
	if (rc == 0)
		rc = rtmfp_wire_ihello_encode(&a.w, &c);
	if (rc == 0)
		rc = rtmfp_crypto_seal_default(crypto, out + RTMFP_WIRE_SSID_BYTES, cap - RTMFP_WIRE_SSID_BYTES,
					       rtmfp_wire_asm_len(&a), &n);
	if (rc == 0)
		rc = rtmfp_wire_ssid_scramble(out, n + RTMFP_WIRE_SSID_BYTES, 0);
	*out_len = n + RTMFP_WIRE_SSID_BYTES;
	return rc;
}

static void intro_send(struct intro_sock *x, size_t k)
{
	struct load *l = x->l;

	for (size_t i = 0; i < k; i++) {
		size_t t = x->next++ % l->n;

		if (udp_send(x->u, &l->srv_addr, l->ihello[t], l->ihello_len[t]) == 0)
			x->sent++;
	}
	udp_flush(x->u);
}

static void intro_datagram(void *ctx, const struct sockaddr_storage *from, uint8_t *data, size_t len)
{
	struct intro_sock *x = ctx;

	(void)data;
	(void)len;
	if (udp_addr_equal(from, &x->l->srv_addr))
		x->redirects++;
	else
		x->others++; /* an RHello from the target, which got the FIHello */
}

static void intro_readable(struct loop *loop, struct loop_fd *h, int fd, uint32_t events, void *ctx)
{
	struct intro_sock *x = ctx;
	uint64_t before = x->redirects;
	int n, rounds = 0;

	(void)loop;
	(void)h;
	(void)fd;
	(void)events;
	do
		n = udp_recv(x->u, intro_datagram, x);
	while (n > 0 && ++rounds < 8);
	/* closed loop: one new IHello per Redirect */
	if (x->redirects > before)
		intro_send(x, (size_t)(x->redirects - before));
}

/* intro_refill - every 100 ms, a socket that got no Redirect since the
 * last check gives its IHellos up for lost (full socket buffers) and sends
 * a new window. */
static void intro_refill(struct load *l, struct intro_sock *xs, size_t k)
{
	for (size_t i = 0; i < k; i++) {
		struct intro_sock *x = &xs[i];

		if (x->redirects == x->mark_redirects)
			intro_send(x, l->window);
		x->mark_sent = x->sent;
		x->mark_redirects = x->redirects;
	}
}

static int phase_intro(struct load *l, double seconds, size_t n_sock)
{
	struct intro_sock *xs = calloc(n_sock, sizeof(*xs));
	struct rtmfp_crypto *crypto = NULL;
	struct identity *id = mem_identity("intro");
	struct sockaddr_storage any;
	struct snap a, b;
	uint64_t end, next_check, redirects = 0, others = 0, sent = 0, tx = 0, tx_lost = 0;
	long long drops0, drops1;
	unsigned long rxq;
	int n_bound;
	int rc = -ENOMEM;

	l->ihello = calloc(l->n, sizeof(*l->ihello));
	l->ihello_len = calloc(l->n, sizeof(*l->ihello_len));
	if (!xs || !id || !l->ihello || !l->ihello_len)
		goto out;
	rc = rtmfp_crypto_sodium_new(&crypto, id->secret_key, NULL, 0, 0);
	for (size_t t = 0; rc == 0 && t < l->n; t++)
		rc = make_ihello(crypto, l->p[t].id->peer_id, l->ihello[t], sizeof(l->ihello[t]), &l->ihello_len[t]);
	udp_addr_parse(&any, "127.0.0.1:0", 0);
	for (size_t i = 0; rc == 0 && i < n_sock; i++) {
		xs[i].l = l;
		xs[i].next = i * (l->n / n_sock);
		rc = udp_open(&xs[i].u, &any);
		if (rc == 0)
			udp_set_offload(xs[i].u, false); /* one IHello per datagram, as real initiators send */
		if (rc == 0)
			rc = loop_fd_add(l->loop, udp_fd(xs[i].u), LOOP_IN, intro_readable, &xs[i], &xs[i].fd);
	}
	if (rc)
		goto out;
	if (snapshot(l, &a))
		goto out;
	drops0 = udp_drops(port_of(&l->srv_addr), &n_bound, &rxq);
	for (size_t i = 0; i < n_sock; i++)
		intro_send(&xs[i], l->window);
	end = a.t_ns + (uint64_t)(seconds * 1e9);
	next_check = a.t_ns + 100 * LOOP_NS_PER_MS;
	while (loop_clock_ns() < end) {
		loop_run_once(l->loop, 10 * LOOP_NS_PER_MS);
		if (loop_clock_ns() >= next_check) {
			intro_refill(l, xs, n_sock);
			next_check += 100 * LOOP_NS_PER_MS;
		}
	}
	if (snapshot(l, &b))
		goto out;
	drops1 = udp_drops(port_of(&l->srv_addr), &n_bound, &rxq);
	for (size_t i = 0; i < n_sock; i++) {
		struct udp_stats us;

		redirects += xs[i].redirects;
		others += xs[i].others;
		sent += xs[i].sent;
		udp_get_stats(xs[i].u, &us);
		tx += us.tx_datagrams;
		tx_lost += us.tx_dropped + us.tx_errors;
	}
	report("introductions", (double)(b.st.introductions - a.st.introductions), &a, &b, b.t_ns, GOAL_INTRO_PER_S);
	printf("               IHellos queued %llu (sent %llu, lost in send %llu), Redirects back %llu, RHellos from the targets %llu"
	       " (%zu sockets, window %zu each, %zu targets; the server saw %llu IHellos, rate-limited %llu,"
	       " with %llu of %llu sessions online)\n",
	       (unsigned long long)sent, (unsigned long long)tx, (unsigned long long)tx_lost,
	       (unsigned long long)redirects, (unsigned long long)others, n_sock,
	       l->window, l->n, (unsigned long long)(b.st.ihellos - a.st.ihellos),
	       (unsigned long long)(b.st.rate_limited - a.st.rate_limited), (unsigned long long)b.st.online,
	       (unsigned long long)b.st.sessions);
	printf("               the server's socket: %lld datagrams dropped by the kernel, %lu bytes queued at the"
	       " end; %d socket(s) on its port\n", drops0 >= 0 && drops1 >= 0 ? drops1 - drops0 : -1, rxq, n_bound);
	/* let the FIHellos' answers drain before the sockets close */
	for (int i = 0; i < 10; i++)
		loop_run_once(l->loop, 10 * LOOP_NS_PER_MS);
	rc = 0;
out:
	for (size_t i = 0; xs && i < n_sock; i++) {
		if (xs[i].fd)
			loop_fd_remove(l->loop, xs[i].fd);
		udp_close(xs[i].u);
	}
	free(xs);
	rtmfp_crypto_free(crypto);
	if (id) {
		sodium_memzero(id, sizeof(*id));
		free(id);
	}
	free(l->ihello);
	free(l->ihello_len);
	l->ihello = NULL;
	l->ihello_len = NULL;
	return rc;
}

static int start_peer(struct load *l, size_t i)
{
	struct lpeer *p = &l->p[i];
	struct rdv_client_config cfg;
	int rc;

	memset(&cfg, 0, sizeof(cfg));
	cfg.server = l->srv_addr;
	cfg.id = p->id;
	cfg.ev.connection = l_connection;
	cfg.ev.registered = l_registered;
	cfg.ev.presence = l_presence;
	cfg.ctx = p;
	/* probes every 60 s: the phases measure requests, not liveness checks */
	cfg.probe_ns = 60 * LOOP_NS_PER_S;
	rc = rtmfp_crypto_sodium_new(&p->crypto, p->id->secret_key, NULL, 0, 0);
	if (rc == 0)
		rc = rdv_client_new(&p->c, l->loop, &cfg);
	if (rc == 0)
		rc = rtmfp_posix_new(&p->px, l->loop, p->crypto, &rdv_client_callbacks, p->c, NULL, &l->any);
	if (rc == 0)
		rc = rdv_client_watch(p->c, (const uint8_t (*)[RDV_PEER_ID_BYTES])l->p[(i + 1) % l->n].id->peer_id, 1);
	if (rc == 0)
		rc = rdv_client_start(p->c, p->px);
	return rc;
}

static int run_load(size_t n, size_t concurrency, double intro_s, size_t intro_socks, size_t window)
{
	char db[] = "/tmp/rdv_load.XXXXXX", cmd[64], la[32];
	struct load l = { .n = n, .window = window, .concurrency = concurrency };
	struct snap s0, s1, s2, s3;
	int req[2], resp[2], status, rc = 1;
	long rss_idle;

	if (n < 2 || !mkdtemp(db) || pipe(req) || pipe(resp))
		return 1;
	l.pid = fork();
	if (l.pid < 0)
		return 1;
	if (l.pid == 0) {
		close(req[1]);
		close(resp[0]);
		_exit(server_child(db, req[0], resp[1]));
	}
	close(req[0]);
	close(resp[1]);
	l.req_fd = req[1];
	l.resp_fd = resp[0];
	if (read(l.resp_fd, &l.srv_addr, sizeof(l.srv_addr)) != (ssize_t)sizeof(l.srv_addr)) {
		log_error("the server did not start");
		return 1;
	}
	l.p = calloc(n, sizeof(*l.p));
	if (!l.p || loop_new(&l.loop))
		return 1;
	udp_addr_parse(&l.any, "127.0.0.1:0", 0);
	for (size_t i = 0; i < n; i++) {
		char name[24];

		snprintf(name, sizeof(name), "p%zu", i);
		l.p[i].l = &l;
		l.p[i].id = mem_identity(name);
		if (!l.p[i].id)
			return 1;
	}
	if (snapshot(&l, &s0))
		goto out;
	rss_idle = s0.rss_kib;
	load_avg(la, sizeof(la));
	printf("rdv_load: %zu peers (one UDP socket and RTMFP instance each, one process), at most %zu"
	       " opening at once; the server in child process %d; %ld CPUs online [%s]\n", n, concurrency,
	       (int)l.pid, sysconf(_SC_NPROCESSORS_ONLN), la);
	fflush(stdout);

	/* phase 1: full handshakes, then REPORT and WATCH over the control flow */
	while (l.n_started < n && l.n_started < concurrency && !l.start_err)
		l.start_err = start_peer(&l, l.n_started++);
	run_phase(&l, &l.n_up, n);
	if (l.start_err) {
		log_error("peer %zu: %s (ulimit -n?)", l.n_started - 1, bfs_strerror(l.start_err));
		goto out;
	}
	run_phase(&l, &l.n_online, n);
	if (snapshot(&l, &s1))
		goto out;
	if (l.n_up < n) {
		printf("only %zu of %zu sessions opened in %.0f s\n", l.n_up, n, (double)PHASE_LIMIT_NS / 1e9);
		goto out;
	}
	report("new sessions", (double)n, &s0, &s1, l.t_up, GOAL_NEW_PER_S);
	if (l.n_online == n)
		printf("               (and every watcher saw its peer online after %.3f s)\n",
		       (double)(l.t_online - s0.t_ns) / 1e9);
	else
		printf("               only %zu of %zu watchers saw their peer online\n", l.n_online, n);

	/* phase 2: every peer registers a name at once */
	for (size_t i = 0; i < n; i++)
		rdv_client_register(l.p[i].c, l.p[i].id->config.name);
	run_phase(&l, &l.n_registered, n);
	if (snapshot(&l, &s2))
		goto out;
	if (l.n_registered < n) {
		printf("only %zu of %zu registered in %.0f s\n", l.n_registered, n, (double)PHASE_LIMIT_NS / 1e9);
		goto out;
	}
	report("registrations", (double)n, &s1, &s2, l.t_registered, 0);
	fflush(stdout);
	printf("               %llu registry commits (fsyncs): %.1f registrations per commit\n",
	       (unsigned long long)(s2.st.commits - s1.st.commits),
	       (double)n / (double)(s2.st.commits - s1.st.commits ? s2.st.commits - s1.st.commits : 1));

	/* phase 3: introductions */
	if (intro_s > 0 && phase_intro(&l, intro_s, intro_socks) != 0)
		goto out;

	if (snapshot(&l, &s3))
		goto out;
	load_avg(la, sizeof(la));
	printf("server RSS     %.1f MiB with %llu sessions open (%.1f MiB before any); %.2f KiB per session; "
	       "at %u sessions: %.1f MiB (goal <= %.0f MiB) [%s]\n",
	       (double)s3.rss_kib / 1024, (unsigned long long)s3.st.sessions, (double)rss_idle / 1024,
	       (double)(s3.rss_kib - rss_idle) / (double)n, GOAL_SESSIONS,
	       ((double)rss_idle + (double)(s3.rss_kib - rss_idle) / (double)n * GOAL_SESSIONS) / 1024,
	       GOAL_RSS_MIB, la);
	rc = 0;
out:
	for (size_t i = 0; i < n; i++) {
		rtmfp_posix_free(l.p[i].px);
		rdv_client_free(l.p[i].c);
		rtmfp_crypto_free(l.p[i].crypto);
		if (l.p[i].id) {
			sodium_memzero(l.p[i].id, sizeof(*l.p[i].id));
			free(l.p[i].id);
		}
	}
	free(l.p);
	loop_free(l.loop);
	kill(l.pid, SIGTERM);
	waitpid(l.pid, &status, 0);
	close(l.req_fd);
	close(l.resp_fd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", db);
	if (system(cmd) != 0)
		return 1;
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "server-id", required_argument, NULL, 'i' },
		{ "home", required_argument, NULL, 'H' },
		{ "register", required_argument, NULL, 'r' },
		{ "lookup", required_argument, NULL, 'l' },
		{ "expect", required_argument, NULL, 'e' },
		{ "timeout", required_argument, NULL, 't' },
		{ "peers", required_argument, NULL, 'n' },
		{ "intro-seconds", required_argument, NULL, 'I' },
		{ "intro-sockets", required_argument, NULL, 'S' },
		{ "window", required_argument, NULL, 'w' },
		{ "concurrency", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	const char *server = NULL, *server_id = NULL, *home = NULL, *reg = NULL, *look = NULL, *expect = NULL;
	unsigned timeout_s = 10;
	size_t peers = 500, intro_socks = 4, window = 64, concurrency = 200;
	double intro_s = 3;
	int c;

	log_init("rdv_load");
	if (identity_crypto_init())
		return 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 's': server = optarg; break;
		case 'i': server_id = optarg; break;
		case 'H': home = optarg; break;
		case 'r': reg = optarg; break;
		case 'l': look = optarg; break;
		case 'e': expect = optarg; break;
		case 't': timeout_s = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'n': peers = (size_t)strtoul(optarg, NULL, 10); break;
		case 'I': intro_s = strtod(optarg, NULL); break;
		case 'S': intro_socks = (size_t)strtoul(optarg, NULL, 10); break;
		case 'w': window = (size_t)strtoul(optarg, NULL, 10); break;
		case 'c': concurrency = (size_t)strtoul(optarg, NULL, 10); break;
		default: return 2;
		}
	}
	if (server) {
		if (!home) {
			log_error("--server needs --home DIR");
			return 2;
		}
		return run_one(server, server_id, home, reg, look, expect, timeout_s ? timeout_s : 10);
	}
	return run_load(peers, concurrency ? concurrency : 1, intro_s, intro_socks ? intro_socks : 1, window ? window : 1);
}
