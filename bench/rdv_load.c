/*
 * rdv_load.c - rendezvous clients from the shell.
 *
 *   rdv_load [--peers N]     the load run: a server (forked child) on
 *                            loopback and N (500) simulated peers in this
 *                            process, one socket each, that connect,
 *                            report and watch the next one, then register;
 *                            prints sessions/s, registrations/s and the
 *                            server's RSS
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

struct lpeer {
	struct load *l;
	struct identity *id;
	struct rtmfp_crypto *crypto;
	struct rtmfp_posix *px;
	struct rdv_client *c;
	bool registered;
	bool saw_online;
};

struct load {
	struct loop *loop;
	size_t n, n_registered, n_online;
	struct lpeer *p;
	uint64_t t_registered, t_online;
};

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

static void l_stop(struct loop *loop, int signo, void *ctx)
{
	(void)signo;
	(void)ctx;
	loop_stop(loop);
}

/* server_child - run a server on @fd's port until SIGTERM. */
static int server_child(const char *db, int fd)
{
	struct rdv_server_params prm;
	struct rdv_server *srv = NULL;
	struct loop *loop = NULL;
	struct sockaddr_storage a;
	int rc;

	rdv_server_params_default(&prm);
	prm.ihello = prm.reg = prm.lookup = (struct rdv_rate){ 1e9, 1e9 }; /* all peers share one IP */
	udp_addr_parse(&a, "127.0.0.1:0", 0);
	rc = loop_new(&loop);
	if (rc == 0)
		rc = rdv_server_new(&srv, loop, db, &a, &prm);
	if (rc == 0)
		rc = rdv_server_local_addr(srv, &a);
	if (rc == 0)
		rc = loop_signal_add(loop, SIGTERM, l_stop, NULL);
	if (write(fd, &a, sizeof(a)) != (ssize_t)sizeof(a) || rc)
		return 1;
	close(fd);
	loop_run(loop);
	rdv_server_free(srv);
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

static int run_load(size_t n)
{
	char db[] = "/tmp/rdv_load.XXXXXX", cmd[64];
	struct load l = { .n = n };
	struct sockaddr_storage srv_addr, any;
	int fds[2], status;
	pid_t pid;
	uint64_t t0, end;
	long rss0, rss1;

	if (!mkdtemp(db) || pipe(fds))
		return 1;
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		close(fds[0]);
		_exit(server_child(db, fds[1]));
	}
	close(fds[1]);
	if (read(fds[0], &srv_addr, sizeof(srv_addr)) != (ssize_t)sizeof(srv_addr)) {
		log_error("the server did not start");
		return 1;
	}
	close(fds[0]);
	rss0 = rss_kib(pid);
	l.p = calloc(n, sizeof(*l.p));
	if (!l.p || loop_new(&l.loop))
		return 1;
	udp_addr_parse(&any, "127.0.0.1:0", 0);
	for (size_t i = 0; i < n; i++) {
		char name[16];

		snprintf(name, sizeof(name), "p%zu", i);
		l.p[i].l = &l;
		l.p[i].id = mem_identity(name);
	}
	t0 = loop_clock_ns();
	for (size_t i = 0; i < n; i++) {
		struct lpeer *p = &l.p[i];
		struct rdv_client_config cfg;
		int rc;

		memset(&cfg, 0, sizeof(cfg));
		cfg.server = srv_addr;
		cfg.id = p->id;
		cfg.ev.registered = l_registered;
		cfg.ev.presence = l_presence;
		cfg.ctx = p;
		rc = rtmfp_crypto_sodium_new(&p->crypto, p->id->secret_key, NULL, 0, 0);
		if (rc == 0)
			rc = rdv_client_new(&p->c, l.loop, &cfg);
		if (rc == 0)
			rc = rtmfp_posix_new(&p->px, l.loop, p->crypto, &rdv_client_callbacks, p->c, NULL, &any);
		if (rc == 0)
			rc = rdv_client_watch(p->c, (const uint8_t (*)[RDV_PEER_ID_BYTES])l.p[(i + 1) % n].id->peer_id, 1);
		if (rc == 0)
			rc = rdv_client_start(p->c, p->px);
		if (rc) {
			log_error("peer %zu: %s", i, bfs_strerror(rc));
			return 1;
		}
	}
	/* phase 1: sessions (handshake, REPORT, WATCH) until every watcher saw its peer */
	end = t0 + 120 * LOOP_NS_PER_S;
	while (l.n_online < n && loop_clock_ns() < end)
		loop_run_once(l.loop, 50 * LOOP_NS_PER_MS);
	printf("peers %zu (one socket each, one process), server in a child process\n", n);
	if (l.n_online == n)
		printf("sessions: %zu open, reported and seen online by their watchers in %.3f s: %.0f /s\n", n,
		       (double)(l.t_online - t0) / 1e9, (double)n / ((double)(l.t_online - t0) / 1e9));
	else
		printf("only %zu of %zu watchers saw their peer online in 120 s\n", l.n_online, n);
	/* phase 2: every peer registers a name (one LMDB write transaction each) */
	t0 = loop_clock_ns();
	for (size_t i = 0; i < n; i++)
		rdv_client_register(l.p[i].c, l.p[i].id->config.name);
	end = t0 + 120 * LOOP_NS_PER_S;
	while (l.n_registered < n && loop_clock_ns() < end)
		loop_run_once(l.loop, 50 * LOOP_NS_PER_MS);
	rss1 = rss_kib(pid);
	if (l.n_registered == n)
		printf("registrations: %zu in %.3f s: %.0f /s\n", n, (double)(l.t_registered - t0) / 1e9,
		       (double)n / ((double)(l.t_registered - t0) / 1e9));
	else
		printf("registered only %zu of %zu in 120 s\n", l.n_registered, n);
	printf("server RSS: %ld KiB at start, %ld KiB with %zu sessions (%.1f KiB per session)\n", rss0, rss1, n,
	       (double)(rss1 - rss0) / (double)n);
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
	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", db);
	if (system(cmd) != 0)
		return 1;
	return l.n_registered == n ? 0 : 1;
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
		{ NULL, 0, NULL, 0 },
	};
	const char *server = NULL, *server_id = NULL, *home = NULL, *reg = NULL, *look = NULL, *expect = NULL;
	unsigned timeout_s = 10;
	size_t peers = 500;
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
	return run_load(peers);
}
