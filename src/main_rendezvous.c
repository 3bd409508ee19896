/*
 * main_rendezvous.c - the buddyfs-rendezvous command line.
 *
 *   buddyfs-rendezvous [--listen ADDR:PORT] [--db DIR]
 *
 * Runs the rendezvous service (rdv_server) on one event loop until SIGINT
 * or SIGTERM.  Prints "peer id HEX" (what clients may pin) and "listening
 * on ADDR" and "relay on ADDR" at start, on stdout; on SIGUSR1 one
 * "stats NAME VALUE..." line of counters.  Errors are one line on stderr; exit status
 * 0 after a signal, 1 on failure, 2 on a usage error.
 */
#include <errno.h>
#include <inttypes.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buddyfs/buf.h"
#include "buddyfs/err.h"
#include "buddyfs/log.h"
#include "buddyfs/loop.h"
#include "buddyfs/rdv_proto.h"
#include "buddyfs/rdv_server.h"
#include "buddyfs/udp.h"

#define DB_DEFAULT_SUBDIR "buddyfs-rendezvous"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: buddyfs-rendezvous [--listen ADDR:PORT] [--db DIR]\n"
		"\n"
		"The buddyfs rendezvous service (the Stratus role): names, presence and\n"
		"introductions for peers behind NATs, and a relay when no direct path\n"
		"forms, over RTMFP.\n"
		"  --listen ADDR:PORT  where to listen (default [::]:1935, or 0.0.0.0:1935\n"
		"                      without IPv6); [V6]:PORT for IPv6 addresses\n"
		"  --db DIR            the server's identity and registry (default\n"
		"                      $XDG_DATA_HOME/" DB_DEFAULT_SUBDIR " or\n"
		"                      ~/.local/share/" DB_DEFAULT_SUBDIR "); made on first start\n"
		"Prints 'peer id HEX' at start: clients may pin it, and 'relay on ADDR'.\n"
		"SIGUSR1 prints one 'stats ...' line of counters (relayed_bytes...).\n"
		"Stops on SIGINT/SIGTERM.\n");
}

static void on_signal(struct loop *loop, int signo, void *ctx)
{
	(void)signo;
	(void)ctx;
	loop_stop(loop);
}

/* SIGUSR1: one line of counters on stdout (the system tests read it). */
static void on_stats(struct loop *loop, int signo, void *ctx)
{
	struct rdv_server_stats st;

	(void)loop;
	(void)signo;
	rdv_server_get_stats(ctx, &st);
	printf("stats sessions %" PRIu64 " online %" PRIu64 " registrations %" PRIu64
	       " refused %" PRIu64 " lookups %" PRIu64 " introductions %" PRIu64
	       " rate_limited %" PRIu64 " malformed %" PRIu64 " relays %" PRIu64
	       " relayed_packets %" PRIu64 " relayed_bytes %" PRIu64 "\n",
	       st.sessions, st.online, st.registrations, st.refused, st.lookups,
	       st.introductions, st.rate_limited, st.malformed, st.relays,
	       st.relayed_packets, st.relayed_bytes);
	fflush(stdout);
}

static int default_db(char *out, size_t cap)
{
	const char *x = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
	int n;

	if (x && x[0] == '/')
		n = snprintf(out, cap, "%s/%s", x, DB_DEFAULT_SUBDIR);
	else if (home && home[0] == '/')
		n = snprintf(out, cap, "%s/.local/share/%s", home, DB_DEFAULT_SUBDIR);
	else
		return -ENOENT;
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "db", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *listen = NULL, *db = NULL;
	char dbbuf[4096], hex[2 * RDV_PEER_ID_BYTES + 1], text[UDP_ADDR_STR_BYTES];
	struct sockaddr_storage addr, bound;
	struct loop *loop = NULL;
	struct rdv_server *srv = NULL;
	uint8_t id[RDV_PEER_ID_BYTES];
	int c, rc, status = 1;

	log_init("buddyfs-rendezvous");
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'l': listen = optarg; break;
		case 'd': db = optarg; break;
		case 'h': usage(stdout); return 0;
		default:
			log_error("unknown option '%s' (see buddyfs-rendezvous --help)", argv[optind - 1]);
			return 2;
		}
	}
	if (optind != argc) {
		log_error("unexpected argument '%s' (see buddyfs-rendezvous --help)", argv[optind]);
		return 2;
	}
	if (listen) {
		rc = udp_addr_parse(&addr, listen, RDV_DEFAULT_PORT);
		if (rc) {
			log_error("bad --listen '%s': expected ADDR:PORT", listen);
			return 2;
		}
	} else {
		udp_addr_parse(&addr, "[::]:1935", 0);
	}
	if (!db) {
		if (default_db(dbbuf, sizeof(dbbuf))) {
			log_error("no default database directory (HOME is not set): pass --db DIR");
			return 2;
		}
		db = dbbuf;
	}
	rc = loop_new(&loop);
	if (rc) {
		log_error("cannot start the event loop: %s", bfs_strerror(rc));
		return 1;
	}
	rc = rdv_server_new(&srv, loop, db, &addr, NULL);
	if (rc == -EAFNOSUPPORT && !listen) {
		udp_addr_parse(&addr, "0.0.0.0:1935", 0);
		rc = rdv_server_new(&srv, loop, db, &addr, NULL);
	}
	if (rc) {
		udp_addr_format(text, &addr);
		log_error("cannot start on %s with database '%s': %s", text, db, bfs_strerror(rc));
		goto out;
	}
	if (loop_signal_add(loop, SIGINT, on_signal, NULL) || loop_signal_add(loop, SIGTERM, on_signal, NULL)) {
		log_error("cannot catch SIGINT/SIGTERM");
		goto out;
	}
	if (loop_signal_add(loop, SIGUSR1, on_stats, srv)) {
		log_error("cannot catch SIGUSR1");
		goto out;
	}
	rdv_server_peer_id(srv, id);
	buf_hex(hex, id, sizeof(id));
	if (rdv_server_local_addr(srv, &bound) == 0)
		udp_addr_format(text, &bound);
	else
		udp_addr_format(text, &addr);
	printf("peer id %s\nlistening on %s\n", hex, text);
	if (rdv_server_relay_addr(srv, &bound) == 0) {
		udp_addr_format(text, &bound);
		printf("relay on %s\n", text);
	}
	fflush(stdout);
	rc = loop_run(loop);
	if (rc) {
		log_error("event loop failed: %s", bfs_strerror(rc));
		goto out;
	}
	status = 0;
out:
	rdv_server_free(srv);
	loop_free(loop);
	return status;
}
