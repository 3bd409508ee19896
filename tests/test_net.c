/*
 * test_net.c - the daemon's network side in one process: a rendezvous
 * server and two nets (alice, bob) on loopback, one event loop, two stores
 * in temporary homes where each has added the other.  Shows: both connect
 * to the rendezvous and register; each is told the other is online;
 * net_open_flow reaches the other through an introduction, over a direct
 * session, and the flow lands in the upper module whose metadata it
 * carries (messages, closes and writable events routed to it only); a flow
 * with unknown metadata is rejected; status facts (session, direct, far
 * address, RTT, observed address); a buddy removed from the store is told
 * offline at the next rescan and back when added again; a net that
 * vanishes without a goodbye is told offline once its session times out;
 * an orderly shutdown reaches idle and the rendezvous tells the other side.
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "t.h"
#include "buddyfs/identity.h"
#include "buddyfs/loop.h"
#include "buddyfs/net.h"
#include "buddyfs/rdv_server.h"
#include "buddyfs/rtmfp.h"
#include "buddyfs/rtmfp_posix.h"
#include "buddyfs/store.h"
#include "buddyfs/udp.h"

#define SEC LOOP_NS_PER_S
#define META_X "test-x 1"
#define META_Y "test-y 1"

/* One upper module of one side: counts what reached it. */
struct up {
	const char *meta;
	struct rtmfp_recv *in;      /* the flow it accepted */
	struct rtmfp_send *out;     /* a flow it opened */
	int flows, messages, recv_closed, send_closed, opened, closed;
	int send_err;
	size_t bytes;
};

struct side {
	const char *name;
	char home[64];
	struct identity *id;
	struct store *store;
	struct net *net;
	struct up up[2];
	int online;                 /* last presence of the other: -1 none yet */
	int presence_events;
};

static struct loop *loop;
static struct rdv_server *srv;
static char db_dir[64];
static struct sockaddr_storage srv_addr;
static struct side A = { .name = "alice" }, B = { .name = "bob" };

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

static bool run_until(bool (*cond)(void), uint64_t limit_ns)
{
	uint64_t end = loop_clock_ns() + limit_ns;

	while (!cond()) {
		if (loop_clock_ns() > end)
			return false;
		loop_run_once(loop, 20 * LOOP_NS_PER_MS);
	}
	return true;
}

static void run_for(uint64_t ns)
{
	uint64_t end = loop_clock_ns() + ns;

	while (loop_clock_ns() < end)
		loop_run_once(loop, 20 * LOOP_NS_PER_MS);
}

/* ---- the fake upper modules ---- */

static void up_opened(void *ctx, struct rtmfp_session *ss)
{
	struct up *u = ctx;

	(void)ss;
	u->opened++;
}

static void up_closed(void *ctx, struct rtmfp_session *ss, int err)
{
	struct up *u = ctx;

	(void)ss;
	(void)err;
	u->closed++;
}

static bool up_recv_flow(void *ctx, struct rtmfp_recv *f, const uint8_t *meta, size_t len,
			 struct rtmfp_send *assoc)
{
	struct up *u = ctx;

	(void)assoc;
	if (len != strlen(u->meta) || memcmp(meta, u->meta, len) != 0)
		return false; /* net must never route another module's flow here */
	u->flows++;
	u->in = f;
	rtmfp_recv_accept(f);
	return true;
}

static bool up_message(void *ctx, struct rtmfp_recv *f, const uint8_t *msg, size_t len)
{
	struct up *u = ctx;

	(void)msg;
	if (f != u->in)
		return false;
	u->messages++;
	u->bytes += len;
	return true;
}

static bool up_recv_closed(void *ctx, struct rtmfp_recv *f, int err)
{
	struct up *u = ctx;

	(void)err;
	if (f != u->in)
		return false;
	u->recv_closed++;
	u->in = NULL;
	return true;
}

static bool up_send_closed(void *ctx, struct rtmfp_send *f, int err)
{
	struct up *u = ctx;

	if (f != u->out)
		return false;
	u->send_closed++;
	u->send_err = err;
	u->out = NULL;
	return true;
}

static void on_presence(void *ctx, const uint8_t id[static STORE_PEER_ID_BYTES], bool online)
{
	struct side *s = ctx;

	(void)id;
	s->online = online;
	s->presence_events++;
}

/* ---- set-up ---- */

static int add_buddy(struct side *s, const struct side *other)
{
	struct store_peer p;

	memset(&p, 0, sizeof(p));
	memcpy(p.id, other->id->peer_id, sizeof(p.id));
	snprintf(p.name, sizeof(p.name), "%s", other->name);
	memcpy(p.cert, other->id->cert, IDENTITY_CERT_BYTES);
	p.cert_len = IDENTITY_CERT_BYTES;
	p.buddy = STORE_BUDDY_ADDED;
	return store_peer_put(s->store, &p);
}

/* side_net_at - @s's net bound to @bind, its rendezvous at @rdv. */
static int side_net_at(struct side *s, const char *bind, const struct sockaddr_storage *rdv)
{
	struct net_params np;

	memset(&np, 0, sizeof(np));
	np.loop = loop;
	np.store = s->store;
	np.id = s->id;
	udp_addr_parse(&np.bind, bind, 0);
	np.have_rdv = true;
	np.rdv = *rdv;
	np.keepalive_ns = 300 * LOOP_NS_PER_MS;
	np.retransmit_limit_ns = 1 * SEC;
	np.rescan_ns = 200 * LOOP_NS_PER_MS;
	np.presence = on_presence;
	np.ctx = s;
	np.n_upper = 2;
	for (int i = 0; i < 2; i++) {
		struct up *u = &s->up[i];

		memset(u, 0, sizeof(*u));
		u->meta = i == 0 ? META_X : META_Y;
		np.upper[i] = (struct net_upper){
			.meta = u->meta, .session_opened = up_opened, .session_closed = up_closed,
			.recv_flow = up_recv_flow, .message = up_message, .recv_closed = up_recv_closed,
			.send_closed = up_send_closed, .ctx = u,
		};
	}
	s->online = -1;
	s->presence_events = 0;
	if (net_new(&s->net, &np))
		return -1;
	return net_start(s->net);
}

static int side_net(struct side *s)
{
	return side_net_at(s, "127.0.0.1:0", &srv_addr);
}

static int side_make(struct side *s)
{
	snprintf(s->home, sizeof(s->home), "/tmp/test_net_%s.XXXXXX", s->name);
	if (!mkdtemp(s->home))
		return -1;
	rmdir(s->home); /* identity_create makes it */
	if (identity_create(&s->id, s->home, s->name, "", 0))
		return -1;
	return store_open(&s->store, s->home, 0);
}

static void side_free(struct side *s)
{
	net_free(s->net);
	s->net = NULL;
	store_close(s->store);
	s->store = NULL;
	identity_free(s->id);
	s->id = NULL;
	rm_rf(s->home);
}

/* setup_server - a rendezvous listening on @listen, two sides that added each other. */
static int setup_server(const char *listen)
{
	struct rdv_server_params p;
	struct sockaddr_storage a;

	strcpy(db_dir, "/tmp/test_net_db.XXXXXX");
	if (!mkdtemp(db_dir) || loop_new(&loop) != 0)
		return -1;
	rdv_server_params_default(&p); /* its default timers: ~50 s to notice a vanished peer */
	udp_addr_parse(&a, listen, 0);
	if (rdv_server_new(&srv, loop, db_dir, &a, &p) || rdv_server_local_addr(srv, &srv_addr))
		return -1;
	if (side_make(&A) || side_make(&B) || add_buddy(&A, &B) || add_buddy(&B, &A))
		return -1;
	return 0;
}

static int setup(void)
{
	if (setup_server("127.0.0.1:0"))
		return -1;
	return side_net(&A) || side_net(&B) ? -1 : 0;
}

static void teardown(void)
{
	side_free(&A);
	side_free(&B);
	rdv_server_free(srv);
	srv = NULL;
	loop_free(loop);
	loop = NULL;
	rm_rf(db_dir);
}

/* ---- conditions ---- */

static bool both_connected(void)
{
	struct net_rdv_info a, b;

	net_rdv_info(A.net, &a);
	net_rdv_info(B.net, &b);
	return a.connected && b.connected && a.reg_code == 0 && b.reg_code == 0;
}

static bool both_online(void)
{
	return A.online == 1 && B.online == 1;
}

static bool b_got_x_message(void)
{
	return B.up[0].messages > 0;
}

static bool a_x_refused(void)
{
	return A.up[0].send_err == -ECONNREFUSED;
}

static bool a_sees_b_offline(void)
{
	return A.online == 0;
}

static bool a_sees_b_online(void)
{
	return A.online == 1;
}

static bool a_idle(void)
{
	return net_idle(A.net);
}

static bool b_sees_a_offline(void)
{
	return B.online == 0;
}

static bool b_y_message(void)
{
	return B.up[1].messages > 0;
}

/* ---- the case ---- */

/* the body of the case: a failed check returns early, the case tears down */
static void two_nets(void)
{
	static const char hello[] = "hello";
	uint8_t meta_bad[] = "nobody's 1";
	struct net_rdv_info ri;
	struct net_peer_info pi;
	struct sockaddr_storage b_local;
	uint64_t t0;
	int rc;

	T_CHECK_EQ_INT(setup(), 0);

	/* both register and watch each other */
	T_CHECK(run_until(both_connected, 5 * SEC));
	net_rdv_info(A.net, &ri);
	T_CHECK(ri.configured && ri.have_observed);
	T_CHECK(run_until(both_online, 5 * SEC));
	T_CHECK_EQ_INT(net_peer_info(A.net, B.id->peer_id, &pi), 0);
	T_CHECK(pi.online && !pi.session && pi.have_addr);

	/* a flow with X's metadata reaches B's module X, through an introduction */
	rc = net_open_flow(A.net, B.id->peer_id, (const uint8_t *)META_X, strlen(META_X), &A.up[0].out);
	T_CHECK_EQ_INT(rc, 0);
	T_CHECK_EQ_INT(rtmfp_send_write(A.up[0].out, hello, sizeof(hello), rtmfp_posix_now()), 0);
	T_CHECK(run_until(b_got_x_message, 5 * SEC));
	T_CHECK_EQ_INT(B.up[0].flows, 1);
	T_CHECK_EQ_INT(B.up[1].flows, 0);
	T_CHECK_EQ_INT((int)B.up[0].bytes, (int)sizeof(hello));
	T_CHECK_EQ_INT(B.up[1].messages, 0);
	T_CHECK(A.up[0].opened >= 1 && A.up[1].opened >= 1); /* every module hears of sessions */

	/* status facts: a direct session to B's own socket, with an RTT */
	run_for(300 * LOOP_NS_PER_MS);
	T_CHECK_EQ_INT(net_peer_info(A.net, B.id->peer_id, &pi), 0);
	T_CHECK(pi.online && pi.session && !pi.relayed && pi.have_addr);
	T_CHECK_EQ_INT(net_local(B.net, &b_local), 0);
	T_CHECK(udp_addr_equal(&pi.addr, &b_local));
	T_CHECK(pi.srtt_ns < 1 * SEC); /* 0 on loopback: timestamps tick in 4 ms */

	/* a second flow, module Y's metadata, goes to Y only */
	rc = net_open_flow(A.net, B.id->peer_id, (const uint8_t *)META_Y, strlen(META_Y), &A.up[1].out);
	T_CHECK_EQ_INT(rc, 0);
	if (rc == 0)
		T_CHECK_EQ_INT(rtmfp_send_write(A.up[1].out, hello, 3, rtmfp_posix_now()), 0);
	T_CHECK(run_until(b_y_message, 5 * SEC));
	T_CHECK_EQ_INT(B.up[1].flows, 1);
	T_CHECK_EQ_INT(B.up[0].flows, 1);

	/* unknown metadata: rejected (the sender's flow fails -ECONNREFUSED) */
	if (A.up[0].out) {
		rtmfp_send_close(A.up[0].out, rtmfp_posix_now());
		run_for(200 * LOOP_NS_PER_MS);
	}
	A.up[0].send_err = 0;
	rc = net_open_flow(A.net, B.id->peer_id, meta_bad, sizeof(meta_bad) - 1, &A.up[0].out);
	T_CHECK_EQ_INT(rc, 0);
	if (rc == 0)
		T_CHECK_EQ_INT(rtmfp_send_write(A.up[0].out, hello, 3, rtmfp_posix_now()), 0);
	T_CHECK(run_until(a_x_refused, 5 * SEC));
	T_CHECK_EQ_INT(A.up[0].send_err, -ECONNREFUSED);
	T_CHECK_EQ_INT(B.up[0].flows, 1);
	T_CHECK_EQ_INT(B.up[1].flows, 1);

	/* B removed from A's store: offline at the next rescan; added: online */
	T_CHECK_EQ_INT(store_peer_del(A.store, B.id->peer_id), 0);
	T_CHECK(run_until(a_sees_b_offline, 3 * SEC));
	T_CHECK_EQ_INT(add_buddy(&A, &B), 0);
	T_CHECK(run_until(a_sees_b_online, 5 * SEC));

	/* B vanishes without a goodbye: A's session times out (the rendezvous
	 * has not noticed yet), and A counts B offline */
	net_free(B.net);
	B.net = NULL;
	t0 = loop_clock_ns();
	T_CHECK(run_until(a_sees_b_offline, 6 * SEC));
	printf("# A saw B offline %llu ms after B vanished\n",
	       (unsigned long long)((loop_clock_ns() - t0) / LOOP_NS_PER_MS));
	T_CHECK_EQ_INT(net_peer_info(A.net, B.id->peer_id, &pi), 0);
	T_CHECK(!pi.online && !pi.session);

	/* B comes back: A sees it online again (a new session at the rendezvous) */
	T_CHECK_EQ_INT(side_net(&B), 0);
	T_CHECK(run_until(a_sees_b_online, 5 * SEC));
	T_CHECK(run_until(both_online, 5 * SEC));

	/* A's orderly shutdown: idle soon, and B is told at once */
	net_shutdown(A.net);
	T_CHECK(run_until(a_idle, 3 * SEC));
	T_CHECK(run_until(b_sees_a_offline, 3 * SEC));
	T_CHECK_EQ_INT(net_open_flow(A.net, B.id->peer_id, (const uint8_t *)META_X, strlen(META_X), &A.up[0].out),
		       -ESHUTDOWN);
}

T_CASE(two_nets_over_a_rendezvous)
{
	two_nets();
	teardown();
}

static bool have_ipv6_loopback(void)
{
	struct sockaddr_storage a;
	struct udp_sock *u = NULL;

	if (udp_addr_parse(&a, "[::1]:0", 0) || udp_open(&u, &a))
		return false;
	udp_close(u);
	return true;
}

static void relayed(void)
{
	struct sockaddr_storage v6, v4;
	struct net_peer_info pi;
	uint16_t port;
	int rc;

	/* A speaks IPv6 only, B IPv4 only: no direct path; the server (dual
	 * stack) introduces in vain, then relays */
	if (!have_ipv6_loopback()) {
		printf("# no IPv6 loopback: relay case skipped\n");
		return;
	}
	T_CHECK_EQ_INT(setup_server("[::]:0"), 0);
	port = ntohs(((const struct sockaddr_in6 *)&srv_addr)->sin6_port);
	memset(&v6, 0, sizeof(v6));
	((struct sockaddr_in6 *)&v6)->sin6_family = AF_INET6;
	((struct sockaddr_in6 *)&v6)->sin6_addr = in6addr_loopback;
	((struct sockaddr_in6 *)&v6)->sin6_port = htons(port);
	memset(&v4, 0, sizeof(v4));
	((struct sockaddr_in *)&v4)->sin_family = AF_INET;
	((struct sockaddr_in *)&v4)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	((struct sockaddr_in *)&v4)->sin_port = htons(port);
	T_CHECK_EQ_INT(side_net_at(&A, "[::1]:0", &v6), 0);
	T_CHECK_EQ_INT(side_net_at(&B, "127.0.0.1:0", &v4), 0);
	T_CHECK(run_until(both_connected, 5 * SEC));
	T_CHECK(run_until(both_online, 5 * SEC));
	rc = net_open_flow(A.net, B.id->peer_id, (const uint8_t *)META_X, strlen(META_X), &A.up[0].out);
	T_CHECK_EQ_INT(rc, 0);
	T_CHECK_EQ_INT(rtmfp_send_write(A.up[0].out, "relay", 5, rtmfp_posix_now()), 0);
	/* 3 s without a session, then the relay (bound within a few 200 ms steps) */
	T_CHECK(run_until(b_got_x_message, 10 * SEC));
	T_CHECK_EQ_INT(net_peer_info(A.net, B.id->peer_id, &pi), 0);
	T_CHECK(pi.session && pi.relayed);
	T_CHECK_EQ_INT(net_peer_info(B.net, A.id->peer_id, &pi), 0);
	T_CHECK(pi.session && pi.relayed);
}

T_CASE(relay_when_no_direct_path)
{
	relayed();
	teardown();
}

T_CASE(no_rendezvous)
{
	struct net_params np;
	struct net_rdv_info ri;
	struct net_peer_info pi;
	struct rtmfp_send *f = NULL;
	struct net *bad = NULL;
	struct side *s = &A;
	int rc;

	memset(&np, 0, sizeof(np));
	T_CHECK_EQ_INT(loop_new(&loop), 0);
	T_CHECK_EQ_INT(side_make(s), 0);
	np.loop = loop;
	np.store = s->store;
	np.id = s->id;
	udp_addr_parse(&np.bind, "127.0.0.1:0", 0);
	T_CHECK_EQ_INT(net_new(&s->net, &np), 0);
	if (!s->net)
		goto out;
	T_CHECK_EQ_INT(net_start(s->net), 0);
	net_rdv_info(s->net, &ri);
	T_CHECK(!ri.configured && !ri.connected);
	T_CHECK_EQ_INT(net_peer_info(s->net, s->id->peer_id, &pi), -ENOENT);
	T_CHECK(!pi.online);
	/* no candidates at all: the flow waits for a session the buddy opens */
	rc = net_open_flow(s->net, s->id->peer_id, (const uint8_t *)META_X, strlen(META_X), &f);
	T_CHECK_EQ_INT(rc, 0);
	run_for(100 * LOOP_NS_PER_MS);
	/* too many upper modules */
	np.n_upper = NET_MAX_UPPER + 1;
	T_CHECK_EQ_INT(net_new(&bad, &np), -EINVAL);
	T_CHECK(bad == NULL);
out:
	side_free(s);
	loop_free(loop);
	loop = NULL;
}

int main(void)
{
	if (identity_crypto_init())
		return 1;
	T_RUN(two_nets_over_a_rendezvous);
	T_RUN(relay_when_no_direct_path);
	T_RUN(no_rendezvous);
	return t_done();
}
