/*
 * test_rdv_oneshot.c - the CLI's blocking rendezvous calls against a real
 * server in a child process (one event loop per process: the helpers run
 * their own), over UDP on loopback: register, a taken name, one's own name
 * again, lookups (found, checked against the peer id; not found; a bad
 * name; too small a buffer), a server that never answers (the timeout), a
 * host that does not resolve.
 */
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "t.h"
#include "buddyfs/err.h"
#include "buddyfs/identity.h"
#include "buddyfs/loop.h"
#include "buddyfs/rdv_oneshot.h"
#include "buddyfs/rdv_proto.h"
#include "buddyfs/rdv_server.h"
#include "buddyfs/udp.h"

#define TIMEOUT_MS 5000u
#define SHORT_MS 1500u

static pid_t srv_pid = -1;
static uint16_t srv_port;
static char db_dir[64];
static struct identity *alice, *mallory, *bob;
static char homes[3][64];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void rm_rf(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void on_term(struct loop *loop, int signo, void *ctx)
{
	(void)signo;
	(void)ctx;
	loop_stop(loop);
}

/* The child: a server on 127.0.0.1:0; its port goes up @fd; SIGTERM ends it. */
static int server_child(int fd)
{
	struct loop *loop = NULL;
	struct rdv_server *srv = NULL;
	struct sockaddr_storage a;
	uint16_t port = 0;
	int rc;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	udp_addr_parse(&a, "127.0.0.1:0", 0);
	rc = loop_new(&loop);
	if (rc == 0)
		rc = loop_signal_add(loop, SIGTERM, on_term, NULL);
	if (rc == 0)
		rc = rdv_server_new(&srv, loop, db_dir, &a, NULL);
	if (rc == 0)
		rc = rdv_server_local_addr(srv, &a);
	if (rc == 0)
		port = ntohs(((struct sockaddr_in *)&a)->sin_port);
	if (write(fd, &port, sizeof(port)) != (ssize_t)sizeof(port))
		rc = -EIO;
	close(fd);
	if (rc == 0)
		loop_run(loop);
	rdv_server_free(srv);
	loop_free(loop);
	return rc ? 1 : 0;
}

static int server_start(void)
{
	int p[2];

	strcpy(db_dir, "/tmp/test_rdv_oneshot_db.XXXXXX");
	if (!mkdtemp(db_dir) || pipe(p) != 0)
		return -1;
	fflush(stdout);
	srv_pid = fork();
	if (srv_pid < 0)
		return -1;
	if (srv_pid == 0) {
		close(p[0]);
		_exit(server_child(p[1]));
	}
	close(p[1]);
	if (read(p[0], &srv_port, sizeof(srv_port)) != (ssize_t)sizeof(srv_port))
		srv_port = 0;
	close(p[0]);
	return srv_port ? 0 : -1;
}

static void server_stop(void)
{
	int st;

	if (srv_pid > 0) {
		kill(srv_pid, SIGTERM);
		waitpid(srv_pid, &st, 0);
		srv_pid = -1;
	}
	rm_rf(db_dir);
}

static int make_id(struct identity **out, char home[64], const char *name)
{
	strcpy(home, "/tmp/test_rdv_oneshot_home.XXXXXX");
	if (!mkdtemp(home))
		return -errno;
	return identity_create(out, home, name, "", 0);
}

static bool has(const char *s, const char *sub)
{
	return strstr(s, sub) != NULL;
}

/* ---- cases ---- */

T_CASE(register_taken_again)
{
	char why[RDV_ONESHOT_WHY_BYTES];

	T_CHECK_EQ_INT(rdv_oneshot_register(alice, "127.0.0.1", srv_port, TIMEOUT_MS, why, sizeof(why)), 0);
	T_CHECK(why[0] == '\0');
	/* another key wants "alice": refused */
	T_CHECK_EQ_INT(rdv_oneshot_register(mallory, "127.0.0.1", srv_port, TIMEOUT_MS, why, sizeof(why)),
		       -EEXIST);
	printf("  why: %s\n", why);
	T_CHECK(has(why, "taken"));
	/* alice again: her own name is fine */
	T_CHECK_EQ_INT(rdv_oneshot_register(alice, "127.0.0.1", srv_port, TIMEOUT_MS, why, sizeof(why)), 0);
	/* bob too (by name: localhost resolves) */
	T_CHECK_EQ_INT(rdv_oneshot_register(bob, "localhost", srv_port, TIMEOUT_MS, why, sizeof(why)), 0);
}

T_CASE(lookup_found_and_not)
{
	char why[RDV_ONESHOT_WHY_BYTES];
	uint8_t id[32], cert[RDV_CERT_MAX_BYTES];
	size_t len = 0;

	/* any case: normalized */
	T_CHECK_EQ_INT(rdv_oneshot_lookup(bob, "127.0.0.1", srv_port, "Alice", TIMEOUT_MS, id, cert,
					  sizeof(cert), &len, why, sizeof(why)), 0);
	T_CHECK_EQ_INT(len, IDENTITY_CERT_BYTES);
	T_CHECK_MEM(cert, alice->cert, IDENTITY_CERT_BYTES);
	T_CHECK_MEM(id, alice->peer_id, 32);
	/* one's own name */
	T_CHECK_EQ_INT(rdv_oneshot_lookup(bob, "127.0.0.1", srv_port, "bob", TIMEOUT_MS, id, cert,
					  sizeof(cert), &len, why, sizeof(why)), 0);
	T_CHECK_MEM(id, bob->peer_id, 32);
	/* nobody */
	T_CHECK_EQ_INT(rdv_oneshot_lookup(bob, "127.0.0.1", srv_port, "carol", TIMEOUT_MS, id, cert,
					  sizeof(cert), &len, why, sizeof(why)), -ENOENT);
	printf("  why: %s\n", why);
	T_CHECK(has(why, "carol"));
	/* not a name: refused before any packet */
	T_CHECK_EQ_INT(rdv_oneshot_lookup(bob, "127.0.0.1", srv_port, "no/slash", TIMEOUT_MS, id, cert,
					  sizeof(cert), &len, why, sizeof(why)), BFS_EBADNAME);
	/* too small a buffer */
	T_CHECK_EQ_INT(rdv_oneshot_lookup(bob, "127.0.0.1", srv_port, "alice", TIMEOUT_MS, id, cert,
					  IDENTITY_CERT_BYTES - 1, &len, why, sizeof(why)), BFS_ETOOBIG);
}

T_CASE(silent_server_times_out)
{
	char why[RDV_ONESHOT_WHY_BYTES], want[64];
	uint8_t id[32], cert[RDV_CERT_MAX_BYTES];
	size_t len;
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	uint64_t t0, dt;
	int fd;

	/* a socket that is bound (no ICMP) but never read: nothing answers */
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	T_CHECK(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	T_CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	T_CHECK(getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
	snprintf(want, sizeof(want), "no answer from 127.0.0.1:%u in 1.5 s", ntohs(a.sin_port));

	t0 = loop_clock_ns();
	T_CHECK_EQ_INT(rdv_oneshot_register(alice, "127.0.0.1", ntohs(a.sin_port), SHORT_MS, why, sizeof(why)),
		       -ETIMEDOUT);
	dt = loop_clock_ns() - t0;
	printf("  why: %s (after %.2f s)\n", why, (double)dt / 1e9);
	T_CHECK(strcmp(why, want) == 0);
	T_CHECK(dt >= SHORT_MS * LOOP_NS_PER_MS);
	T_CHECK_EQ_INT(rdv_oneshot_lookup(bob, "127.0.0.1", ntohs(a.sin_port), "alice", SHORT_MS, id, cert,
					  sizeof(cert), &len, why, sizeof(why)), -ETIMEDOUT);
	T_CHECK(strcmp(why, want) == 0);
	close(fd);
}

T_CASE(bad_hosts)
{
	char why[RDV_ONESHOT_WHY_BYTES];
	uint8_t id[32], cert[RDV_CERT_MAX_BYTES];
	size_t len;

	/*
	 * A name that does not resolve is not tried here: resolving it would ask
	 * the machine's DNS server, and tests send nothing beyond loopback.
	 */
	(void)id;
	(void)cert;
	(void)len;
	T_CHECK_EQ_INT(rdv_oneshot_register(alice, "127.0.0.1", 0, SHORT_MS, why, sizeof(why)), -EINVAL);
	T_CHECK_EQ_INT(rdv_oneshot_register(alice, "", 1935, SHORT_MS, NULL, 0), -EINVAL);
}

int main(void)
{
	int ok;

	ok = server_start() == 0 && make_id(&alice, homes[0], "alice") == 0 &&
	     make_id(&mallory, homes[1], "alice") == 0 && make_id(&bob, homes[2], "bob") == 0;
	if (!ok) {
		printf("FAIL %s:setup\n", T_NAME);
	} else {
		T_RUN(register_taken_again);
		T_RUN(lookup_found_and_not);
		T_RUN(silent_server_times_out);
		T_RUN(bad_hosts);
	}
	server_stop();
	identity_free(alice);
	identity_free(mallory);
	identity_free(bob);
	for (int i = 0; i < 3; i++)
		if (homes[i][0])
			rm_rf(homes[i]);
	return ok ? t_done() : 1;
}
