/*
 * test_rdv.c - the rendezvous server and clients in one process, over real
 * UDP sockets on loopback, one event loop: registration (taken names and
 * bad signatures refused, one's own name again is fine), lookups checked
 * against the peer id, watches that see online and offline, the observed
 * address, an introduction that ends in a direct session between two
 * clients, a relay channel that carries a session between two clients
 * through the server, and a server restart that keeps the registry while clients
 * reconnect and register again by themselves; registrations that were
 * answered OK survive a SIGKILL of the server right after the answers
 * (they are committed in groups, each before its answers go out).
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/wait.h>

#include <sodium.h>

#include "t.h"
#include "pair.h"
#include "buddyfs/err.h"
#include "buddyfs/identity.h"
#include "buddyfs/loop.h"
#include "buddyfs/rdv_client.h"
#include "buddyfs/rdv_proto.h"
#include "buddyfs/rdv_server.h"
#include "buddyfs/rtmfp_crypto.h"
#include "buddyfs/rtmfp_crypto_sodium.h"
#include "buddyfs/rtmfp_posix.h"
#include "buddyfs/udp.h"

#define SEC LOOP_NS_PER_S
#define MAX_WATCHED 4

struct tc {
	const char *label;
	char home[64];
	struct identity *id;
	struct identity *signer;       /* signs REGISTER (a wrong one for the bad-signature case) */
	struct rtmfp_crypto *crypto;
	struct rtmfp_posix *px;
	struct rdv_client *c;
	struct sockaddr_storage bound;
	bool up;
	struct sockaddr_storage observed;
	int reg_code, reg_count;
	/* presence of the watched ids */
	uint8_t watched[MAX_WATCHED][32];
	int online[MAX_WATCHED];       /* -1 unknown, 0, 1 */
	struct rdv_addr addrs[MAX_WATCHED][RDV_MAX_PRESENCE_ADDRS];
	size_t n_addrs[MAX_WATCHED];
	int lookup_code;
	bool lookup_done;
	uint8_t lookup_id[32];
	int app_messages;              /* messages on flows that are not the rendezvous' */
	int relay_code, relay_count;   /* the last relay event */
	int presence_count;            /* presence events of any id */
	struct sockaddr_storage relay_addr;
};

static struct loop *loop;
static struct rdv_server *srv;
static char db_dir[64];
static struct sockaddr_storage srv_addr;
static bool unpinned;              /* next tc_start selects the server by name */
static struct rdv_rate reg_rate;   /* when burst is not 0: the REGISTER bucket */
static bool slow_rtmfp;            /* next tc_start: default RTMFP timers (30 s limit) */
static uint64_t probe_ns;          /* next tc_start: probe interval and timeout (0: default) */

static uint16_t port_of(const struct sockaddr_storage *a)
{
	return a->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)a)->sin_port)
				       : ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
}

/* ---- run the loop until a condition holds ---- */

static bool run_until(bool (*cond)(void *), void *arg, uint64_t limit_ns)
{
	uint64_t end = loop_clock_ns() + limit_ns;

	while (!cond(arg)) {
		if (loop_clock_ns() > end)
			return false;
		loop_run_once(loop, 20 * LOOP_NS_PER_MS);
	}
	return true;
}

/* ---- a test client ---- */

static void ev_connection(void *ctx, bool up, const struct sockaddr_storage *observed)
{
	struct tc *t = ctx;

	t->up = up;
	if (up)
		t->observed = *observed;
}

static void ev_registered(void *ctx, const char *name, int code)
{
	struct tc *t = ctx;

	(void)name;
	t->reg_code = code;
	t->reg_count++;
}

static void ev_presence(void *ctx, const uint8_t id[static 32], bool online, const struct rdv_addr *a,
			size_t n)
{
	struct tc *t = ctx;

	t->presence_count++;
	for (int i = 0; i < MAX_WATCHED; i++) {
		if (memcmp(t->watched[i], id, 32) != 0)
			continue;
		t->online[i] = online;
		memcpy(t->addrs[i], a, n * sizeof(*a));
		t->n_addrs[i] = n;
	}
}

static void ev_relay(void *ctx, const uint8_t id[static 32], int code, const struct sockaddr_storage *relay)
{
	struct tc *t = ctx;

	(void)id;
	t->relay_code = code;
	t->relay_count++;
	if (relay)
		t->relay_addr = *relay;
}

static void cb_recv_flow(void *ctx, struct rtmfp_recv *f, const uint8_t *meta, size_t len,
			 struct rtmfp_send *assoc)
{
	struct tc *t = ctx;

	if (!rdv_client_on_recv_flow(t->c, f, meta, len, assoc))
		rtmfp_recv_accept(f); /* an application flow (the introduction test) */
}

static void cb_message(void *ctx, struct rtmfp_recv *f, const uint8_t *msg, size_t len)
{
	struct tc *t = ctx;

	if (!rdv_client_on_message(t->c, f, msg, len))
		t->app_messages++;
}

static void cb_recv_closed(void *ctx, struct rtmfp_recv *f, int err)
{
	struct tc *t = ctx;

	rdv_client_on_recv_closed(t->c, f, err);
}

static void cb_send_closed(void *ctx, struct rtmfp_send *f, int err)
{
	struct tc *t = ctx;

	rdv_client_on_send_closed(t->c, f, err);
}

static int tc_start(struct tc *t, const char *label, const char *name, struct identity *signer)
{
	const struct rtmfp_callbacks cb = {
		.recv_flow = cb_recv_flow,
		.message = cb_message,
		.recv_closed = cb_recv_closed,
		.send_closed = cb_send_closed,
	};
	struct rdv_client_config cfg;
	struct rtmfp_params rp = pair_fast_params();
	struct sockaddr_storage any;
	int rc;

	memset(t, 0, sizeof(*t));
	t->label = label;
	for (int i = 0; i < MAX_WATCHED; i++)
		t->online[i] = -1;
	strcpy(t->home, "/tmp/test_rdv_home.XXXXXX");
	if (!mkdtemp(t->home))
		return -errno;
	rc = identity_create(&t->id, t->home, name ? name : label, "", 0);
	if (rc)
		return rc;
	t->signer = signer ? signer : t->id;
	rc = rtmfp_crypto_sodium_new(&t->crypto, t->id->secret_key, NULL, 0, 0);
	if (rc)
		return rc;
	memset(&cfg, 0, sizeof(cfg));
	cfg.server = srv_addr;
	cfg.pin_server = !unpinned;
	if (cfg.pin_server)
		rdv_server_peer_id(srv, cfg.server_id);
	cfg.id = t->signer;
	cfg.backoff_min_ns = 200 * LOOP_NS_PER_MS;
	cfg.backoff_max_ns = 1 * SEC;
	cfg.probe_ns = probe_ns;
	cfg.probe_timeout_ns = probe_ns;
	if (slow_rtmfp)
		rtmfp_params_default(&rp);
	cfg.ev = (struct rdv_client_events){ ev_connection, ev_registered, ev_presence, ev_relay };
	cfg.ctx = t;
	rc = rdv_client_new(&t->c, loop, &cfg);
	if (rc)
		return rc;
	udp_addr_parse(&any, "0.0.0.0:0", 0);
	rc = rtmfp_posix_new(&t->px, loop, t->crypto, &cb, t, &rp, &any);
	if (rc)
		return rc;
	udp_local(rtmfp_posix_udp(t->px), &t->bound);
	if (name) {
		rc = rdv_client_register(t->c, name);
		if (rc)
			return rc;
	}
	return rdv_client_start(t->c, t->px);
}

/* tc_drop - the instance vanishes without a word (as a killed process). */
static void tc_drop(struct tc *t)
{
	rtmfp_posix_free(t->px);
	t->px = NULL;
	rdv_client_free(t->c);
	t->c = NULL;
}

static void tc_free(struct tc *t)
{
	tc_drop(t);
	rtmfp_crypto_free(t->crypto);
	if (t->signer != t->id)
		identity_free(t->signer);
	identity_free(t->id);
	if (t->home[0])
		pair_rm_rf(t->home);
	memset(t, 0, sizeof(*t));
}

static bool cond_up(void *arg)
{
	return ((struct tc *)arg)->up;
}

static bool cond_registered(void *arg)
{
	return ((struct tc *)arg)->reg_count > 0;
}

static bool cond_lookup(void *arg)
{
	return ((struct tc *)arg)->lookup_done;
}

static void on_lookup(void *ctx, int code, const uint8_t *cert, size_t cert_len, const uint8_t *id)
{
	struct tc *t = ctx;

	(void)cert;
	(void)cert_len;
	t->lookup_done = true;
	t->lookup_code = code;
	if (id)
		memcpy(t->lookup_id, id, 32);
}

static int lookup(struct tc *t, const char *name, const uint8_t *expect)
{
	t->lookup_done = false;
	if (rdv_client_lookup(t->c, name, expect, on_lookup, t) != 0)
		return -1;
	if (!run_until(cond_lookup, t, 5 * SEC))
		return -2;
	return t->lookup_code;
}

static int server_start(void)
{
	struct rdv_server_params p;
	struct sockaddr_storage a;

	rdv_server_params_default(&p);
	p.rtmfp = pair_fast_params();
	if (reg_rate.burst > 0)
		p.reg = reg_rate;
	if (srv_addr.ss_family == 0)
		udp_addr_parse(&a, "127.0.0.1:0", 0);
	else
		a = srv_addr;
	if (rdv_server_new(&srv, loop, db_dir, &a, &p) != 0)
		return -1;
	return rdv_server_local_addr(srv, &srv_addr);
}

static int setup(void)
{
	strcpy(db_dir, "/tmp/test_rdv_db.XXXXXX");
	memset(&srv_addr, 0, sizeof(srv_addr));
	if (!mkdtemp(db_dir) || loop_new(&loop) != 0)
		return -1;
	return server_start();
}

static void teardown(void)
{
	rdv_server_free(srv);
	srv = NULL;
	loop_free(loop);
	loop = NULL;
	pair_rm_rf(db_dir);
}

/* ---- cases ---- */

static struct tc a, b, c;

T_CASE(register_lookup_taken_badsig)
{
	struct identity *wrong = NULL;
	char home[64] = "/tmp/test_rdv_wrong.XXXXXX";
	uint8_t zero[32] = { 0 };

	T_CHECK(setup() == 0);
	T_CHECK(tc_start(&a, "alice", "alice", NULL) == 0);
	T_CHECK(run_until(cond_registered, &a, 5 * SEC));
	T_CHECK_EQ_INT(a.reg_code, RDV_OK);
	T_CHECK(a.up);
	/* the observed address is our socket's (loopback) */
	T_CHECK_EQ_INT(port_of(&a.observed), port_of(&a.bound));

	/* bob wants "alice" too: refused */
	T_CHECK(tc_start(&b, "bob", NULL, NULL) == 0);
	T_CHECK(run_until(cond_up, &b, 5 * SEC));
	T_CHECK(rdv_client_register(b.c, "alice") == 0);
	T_CHECK(run_until(cond_registered, &b, 5 * SEC));
	T_CHECK_EQ_INT(b.reg_code, RDV_ERR_TAKEN);
	b.reg_count = 0;
	T_CHECK(rdv_client_register(b.c, "bob") == 0);
	T_CHECK(run_until(cond_registered, &b, 5 * SEC));
	T_CHECK_EQ_INT(b.reg_code, RDV_OK);

	/* alice again: her own name is fine */
	a.reg_count = 0;
	T_CHECK(rdv_client_register(a.c, "alice") == 0);
	T_CHECK(run_until(cond_registered, &a, 5 * SEC));
	T_CHECK_EQ_INT(a.reg_code, RDV_OK);

	/* carol signs with a key that is not her session's: bad signature */
	T_CHECK(mkdtemp(home) != NULL);
	T_CHECK(identity_create(&wrong, home, "mallory", "", 0) == 0);
	pair_rm_rf(home);
	T_CHECK(tc_start(&c, "carol", "carol", wrong) == 0);
	T_CHECK(run_until(cond_registered, &c, 5 * SEC));
	T_CHECK_EQ_INT(c.reg_code, RDV_ERR_BADSIG);
	/* and the server still serves the others */
	T_CHECK_EQ_INT(lookup(&b, "alice", NULL), RDV_OK);
	T_CHECK_MEM(b.lookup_id, a.id->peer_id, 32);
	T_CHECK_EQ_INT(lookup(&b, "alice", a.id->peer_id), RDV_OK);
	T_CHECK_EQ_INT(lookup(&b, "alice", zero), BFS_EBADHASH);
	T_CHECK_EQ_INT(lookup(&b, "carol", NULL), RDV_ERR_NOTFOUND);
	T_CHECK_EQ_INT(lookup(&c, "bob", NULL), RDV_OK);
	T_CHECK_MEM(c.lookup_id, b.id->peer_id, 32);
	tc_free(&a);
	tc_free(&b);
	tc_free(&c);
	teardown();
}

static bool cond_a_online(void *arg)
{
	struct tc *t = arg;

	return t->online[0] == 1;
}

static bool cond_a_offline(void *arg)
{
	struct tc *t = arg;

	return t->online[0] == 0;
}

T_CASE(watch_online_offline)
{
	uint64_t t0;
	bool observed = false;

	T_CHECK(setup() == 0);
	T_CHECK(tc_start(&a, "alice", "alice", NULL) == 0);
	T_CHECK(tc_start(&b, "bob", "bob", NULL) == 0);
	T_CHECK(run_until(cond_registered, &a, 5 * SEC));
	T_CHECK(run_until(cond_registered, &b, 5 * SEC));
	memcpy(b.watched[0], a.id->peer_id, 32);
	T_CHECK(rdv_client_watch(b.c, (const uint8_t (*)[32])a.id->peer_id, 1) == 0);
	T_CHECK(run_until(cond_a_online, &b, 5 * SEC));
	/* alice's addresses: local ones, then the observed one (her port) */
	T_CHECK(b.n_addrs[0] >= 1);
	for (size_t i = 0; i < b.n_addrs[0]; i++) {
		T_CHECK_EQ_INT(b.addrs[0][i].port, port_of(&a.bound));
		if (b.addrs[0][i].kind == RDV_ADDR_OBSERVED) {
			T_CHECK_EQ_INT(i, b.n_addrs[0] - 1);
			observed = true;
		}
	}
	T_CHECK(observed);
	/* alice vanishes: bob hears it once the server's session times out */
	t0 = loop_clock_ns();
	tc_drop(&a);
	T_CHECK(run_until(cond_a_offline, &b, 10 * SEC));
	printf("  offline seen after %.2f s\n", (double)(loop_clock_ns() - t0) / 1e9);
	T_CHECK_EQ_INT(b.n_addrs[0], 0);
	tc_free(&a);
	tc_free(&b);
	teardown();
}

struct intro {
	struct rtmfp_send *f;
	struct tc *b;
};

static bool cond_intro(void *arg)
{
	struct intro *in = arg;
	struct rtmfp_session *s = rtmfp_send_session(in->f);

	return s && rtmfp_session_is_open(s) && in->b->app_messages > 0;
}

T_CASE(introduction_direct)
{
	uint8_t epd[RTMFP_CRYPTO_SODIUM_EPD_PEER_ID_BYTES];
	struct intro in;
	const struct sockaddr_storage *far;
	struct rdv_server_stats st;

	T_CHECK(setup() == 0);
	T_CHECK(tc_start(&a, "alice", "alice", NULL) == 0);
	T_CHECK(tc_start(&b, "bob", "bob", NULL) == 0);
	T_CHECK(run_until(cond_registered, &a, 5 * SEC));
	T_CHECK(run_until(cond_registered, &b, 5 * SEC));
	/* alice opens a flow to bob's EPD, knowing only the server's address */
	rtmfp_crypto_sodium_epd_peer_id(epd, b.id->peer_id);
	in.b = &b;
	T_CHECK(rtmfp_open_flow(rtmfp_posix_core(a.px), &in.f, epd, sizeof(epd), (const uint8_t *)"app", 3,
				&srv_addr, 1, rtmfp_posix_now()) == 0);
	T_CHECK(rtmfp_send_write(in.f, "hello", 5, rtmfp_posix_now()) == 0);
	rtmfp_posix_kick(a.px);
	T_CHECK(run_until(cond_intro, &in, 10 * SEC));
	far = rtmfp_session_far_addr(rtmfp_send_session(in.f));
	/* direct: bob's port, not the server's */
	T_CHECK_EQ_INT(port_of(far), port_of(&b.bound));
	T_CHECK(port_of(far) != port_of(&srv_addr));
	rdv_server_get_stats(srv, &st);
	T_CHECK(st.introductions >= 1);
	/* an IHello for someone offline gets nothing */
	{
		uint8_t nobody[32], epd2[RTMFP_CRYPTO_SODIUM_EPD_PEER_ID_BYTES];
		struct rtmfp_send *f2;
		uint64_t before = st.introductions;

		randombytes_buf(nobody, sizeof(nobody));
		rtmfp_crypto_sodium_epd_peer_id(epd2, nobody);
		T_CHECK(rtmfp_open_flow(rtmfp_posix_core(a.px), &f2, epd2, sizeof(epd2),
					(const uint8_t *)"app", 3, &srv_addr, 1, rtmfp_posix_now()) == 0);
		rtmfp_posix_kick(a.px);
		for (int i = 0; i < 20; i++)
			loop_run_once(loop, 20 * LOOP_NS_PER_MS);
		rdv_server_get_stats(srv, &st);
		T_CHECK_EQ_INT(st.introductions, before);
		T_CHECK(rtmfp_send_session(f2) == NULL);
	}
	tc_free(&a);
	tc_free(&b);
	teardown();
}

static bool cond_relay(void *arg)
{
	return ((struct tc *)arg)->relay_count > 0;
}

/* The relay: alice asks for one with bob; both bind and hear READY; a
 * session opened with the relay address as the only candidate keys and
 * carries data through it (the relay counts the bytes); asking for an
 * unknown peer gets not found; stray datagrams to the relay port are not
 * forwarded. */
T_CASE(relay_between_two_clients)
{
	uint8_t epd[RTMFP_CRYPTO_SODIUM_EPD_PEER_ID_BYTES], nobody[32];
	struct rdv_server_stats st;
	struct intro in;
	uint64_t before;

	T_CHECK(setup() == 0);
	T_CHECK(tc_start(&a, "alice", "alice", NULL) == 0);
	T_CHECK(tc_start(&b, "bob", "bob", NULL) == 0);
	T_CHECK(run_until(cond_registered, &a, 5 * SEC));
	T_CHECK(run_until(cond_registered, &b, 5 * SEC));
	T_CHECK_EQ_INT(rdv_client_relay(a.c, b.id->peer_id), 0);
	T_CHECK(run_until(cond_relay, &a, 5 * SEC));
	T_CHECK(run_until(cond_relay, &b, 5 * SEC));
	T_CHECK_EQ_INT(a.relay_code, RDV_OK);
	T_CHECK_EQ_INT(b.relay_code, RDV_OK);
	T_CHECK(udp_addr_equal(&a.relay_addr, &b.relay_addr));
	T_CHECK(port_of(&a.relay_addr) != port_of(&srv_addr));
	rdv_server_get_stats(srv, &st);
	T_CHECK_EQ_INT(st.relays, 1);
	T_CHECK_EQ_INT(st.relayed_bytes, 0);

	rtmfp_crypto_sodium_epd_peer_id(epd, b.id->peer_id);
	in.b = &b;
	T_CHECK(rtmfp_open_flow(rtmfp_posix_core(a.px), &in.f, epd, sizeof(epd), (const uint8_t *)"app", 3,
				&a.relay_addr, 1, rtmfp_posix_now()) == 0);
	T_CHECK(rtmfp_send_write(in.f, "hello", 5, rtmfp_posix_now()) == 0);
	rtmfp_posix_kick(a.px);
	T_CHECK(run_until(cond_intro, &in, 10 * SEC));
	T_CHECK(udp_addr_equal(rtmfp_session_far_addr(rtmfp_send_session(in.f)), &a.relay_addr));
	rdv_server_get_stats(srv, &st);
	T_CHECK(st.relayed_packets >= 4); /* IHello, RHello, IIKeying, RIKeying at least */
	T_CHECK(st.relayed_bytes > 0);

	/* asking again: READY at once, same channel */
	a.relay_count = 0;
	T_CHECK_EQ_INT(rdv_client_relay(a.c, b.id->peer_id), 0);
	T_CHECK(run_until(cond_relay, &a, 5 * SEC));
	T_CHECK_EQ_INT(a.relay_code, RDV_OK);
	rdv_server_get_stats(srv, &st);
	T_CHECK_EQ_INT(st.relays, 1);

	/* a peer that is not online: not found */
	a.relay_count = 0;
	randombytes_buf(nobody, sizeof(nobody));
	T_CHECK_EQ_INT(rdv_client_relay(a.c, nobody), 0);
	T_CHECK(run_until(cond_relay, &a, 5 * SEC));
	T_CHECK_EQ_INT(a.relay_code, RDV_ERR_NOTFOUND);

	/* strays (garbage, a BIND with a wrong token) are not forwarded */
	{
		struct udp_sock *u;
		struct sockaddr_storage any;
		uint8_t junk[RDV_RELAY_BIND_BYTES], tok[RDV_RELAY_TOKEN_BYTES];

		udp_addr_parse(&any, "127.0.0.1:0", 0);
		T_CHECK_EQ_INT(udp_open(&u, &any), 0);
		rdv_server_get_stats(srv, &st);
		before = st.relay_dropped; /* (a and b's own relayed keepalives may cross meanwhile) */
		randombytes_buf(junk, sizeof(junk));
		udp_send(u, &a.relay_addr, junk, sizeof(junk));
		randombytes_buf(tok, sizeof(tok));
		rdv_relay_bind_encode(junk, tok);
		udp_send(u, &a.relay_addr, junk, sizeof(junk));
		udp_flush(u);
		for (int i = 0; i < 10; i++)
			loop_run_once(loop, 20 * LOOP_NS_PER_MS);
		rdv_server_get_stats(srv, &st);
		T_CHECK_EQ_INT(st.relay_dropped, before + 2); /* both dropped, neither forwarded */
		udp_close(u);
	}
	tc_free(&a);
	tc_free(&b);
	teardown();
}

/* a bare instance that speaks garbage on a control flow */
struct bare {
	int send_err;
	bool send_closed;
};

static void bare_send_closed(void *ctx, struct rtmfp_send *f, int err)
{
	struct bare *x = ctx;

	(void)f;
	x->send_closed = true;
	x->send_err = err;
}

static bool cond_bare_closed(void *arg)
{
	return ((struct bare *)arg)->send_closed;
}

T_CASE(malformed_closes_only_that_session)
{
	const struct rtmfp_callbacks cb = { .send_closed = bare_send_closed };
	struct bare x = { 0 };
	struct rtmfp_crypto *crypto = NULL;
	struct rtmfp_posix *px = NULL;
	struct rtmfp_send *f;
	struct sockaddr_storage any;
	uint8_t sk[64], pk[32], epd[RTMFP_CRYPTO_SODIUM_EPD_PEER_ID_BYTES], id[32];
	struct rtmfp_params rp = pair_fast_params();
	struct rdv_server_stats st;

	T_CHECK(setup() == 0);
	T_CHECK(tc_start(&a, "alice", "alice", NULL) == 0);
	T_CHECK(run_until(cond_registered, &a, 5 * SEC));
	crypto_sign_keypair(pk, sk);
	T_CHECK(rtmfp_crypto_sodium_new(&crypto, sk, NULL, 0, 0) == 0);
	sodium_memzero(sk, sizeof(sk));
	udp_addr_parse(&any, "127.0.0.1:0", 0);
	T_CHECK(rtmfp_posix_new(&px, loop, crypto, &cb, &x, &rp, &any) == 0);
	rdv_server_peer_id(srv, id);
	rtmfp_crypto_sodium_epd_peer_id(epd, id);
	T_CHECK(rtmfp_open_flow(rtmfp_posix_core(px), &f, epd, sizeof(epd),
				(const uint8_t *)RDV_PROTO_METADATA, strlen(RDV_PROTO_METADATA), &srv_addr, 1,
				rtmfp_posix_now()) == 0);
	T_CHECK(rtmfp_send_write(f, "\x01\x7fjunk", 6, rtmfp_posix_now()) == 0);
	rtmfp_posix_kick(px);
	/* the server closes that session: the flow fails */
	T_CHECK(run_until(cond_bare_closed, &x, 5 * SEC));
	T_CHECK(x.send_err != 0);
	rdv_server_get_stats(srv, &st);
	T_CHECK_EQ_INT(st.malformed, 1);
	/* alice is still served */
	T_CHECK_EQ_INT(lookup(&a, "alice", a.id->peer_id), RDV_OK);
	rtmfp_posix_free(px);
	rtmfp_crypto_free(crypto);
	tc_free(&a);
	teardown();
}

static bool cond_reregistered(void *arg)
{
	return ((struct tc *)arg)->reg_count >= 2 && ((struct tc *)arg)->up;
}

T_CASE(server_restart_keeps_registry_clients_return)
{
	uint8_t id1[32], id2[32];

	T_CHECK(setup() == 0);
	rdv_server_peer_id(srv, id1);
	T_CHECK(tc_start(&a, "alice", "alice", NULL) == 0);
	T_CHECK(run_until(cond_registered, &a, 5 * SEC));
	T_CHECK_EQ_INT(a.reg_code, RDV_OK);
	rdv_server_free(srv);
	srv = NULL;
	T_CHECK(server_start() == 0);
	rdv_server_peer_id(srv, id2);
	T_CHECK_MEM(id1, id2, 32); /* same identity from the db dir */
	/* alice's session times out, she reconnects and registers again */
	T_CHECK(run_until(cond_reregistered, &a, 15 * SEC));
	T_CHECK_EQ_INT(a.reg_code, RDV_OK);
	/* the registry survived: bob (new) finds alice */
	T_CHECK(tc_start(&b, "bob", NULL, NULL) == 0);
	T_CHECK(run_until(cond_up, &b, 5 * SEC));
	T_CHECK_EQ_INT(lookup(&b, "alice", a.id->peer_id), RDV_OK);
	tc_free(&a);
	tc_free(&b);
	teardown();
}

#define N_GROUP 24 /* the last two ask for the same name */

static bool cond_all_registered(void *arg)
{
	struct tc *cs = arg;

	for (int i = 0; i < N_GROUP; i++)
		if (cs[i].reg_count == 0)
			return false;
	return true;
}

/* server_child - a server on @db_dir in this (forked) process until killed;
 * its address goes out on @fd. */
static void server_child(int fd)
{
	struct rdv_server_params p;
	struct sockaddr_storage addr;
	struct loop *l = NULL;
	struct rdv_server *s = NULL;

	rdv_server_params_default(&p);
	p.rtmfp = pair_fast_params();
	p.reg = (struct rdv_rate){ 1e6, 1e6 }; /* every client has the same IP */
	udp_addr_parse(&addr, "127.0.0.1:0", 0);
	if (loop_new(&l) != 0 || rdv_server_new(&s, l, db_dir, &addr, &p) != 0 ||
	    rdv_server_local_addr(s, &addr) != 0)
		_exit(1);
	if (write(fd, &addr, sizeof(addr)) != (ssize_t)sizeof(addr))
		_exit(1);
	loop_run(l);
	_exit(0);
}

/* Many clients register at once (the server commits them in one or a few
 * groups; two ask for the same name: one gets it, the other is refused);
 * the moment the last has its answer the server process is killed with
 * SIGKILL; a new server on the same database knows every name given. */
T_CASE(acknowledged_registrations_survive_kill)
{
	static char names[N_GROUP][16];
	struct tc *cs = calloc(N_GROUP, sizeof(*cs));
	int fds[2], status, ok = 0, dup;
	pid_t pid;

	T_CHECK(cs != NULL);
	if (!cs)
		return;
	strcpy(db_dir, "/tmp/test_rdv_db.XXXXXX");
	memset(&srv_addr, 0, sizeof(srv_addr));
	T_CHECK(mkdtemp(db_dir) != NULL && pipe(fds) == 0);
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		server_child(fds[1]);
	}
	T_CHECK(pid > 0);
	close(fds[1]);
	T_CHECK(read(fds[0], &srv_addr, sizeof(srv_addr)) == (ssize_t)sizeof(srv_addr));
	close(fds[0]);
	T_CHECK(loop_new(&loop) == 0);
	unpinned = true; /* the child's id is not known here: select it by name */
	for (int i = 0; i < N_GROUP; i++) {
		snprintf(names[i], sizeof(names[i]), "group%d", i < N_GROUP - 2 ? i : N_GROUP - 2);
		T_CHECK(tc_start(&cs[i], names[i], names[i], NULL) == 0);
	}
	unpinned = false;
	T_CHECK(run_until(cond_all_registered, cs, 15 * SEC));
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	for (int i = 0; i < N_GROUP; i++)
		ok += cs[i].reg_code == RDV_OK;
	T_CHECK_EQ_INT(ok, N_GROUP - 1);
	dup = cs[N_GROUP - 2].reg_code == RDV_OK ? N_GROUP - 1 : N_GROUP - 2; /* the refused one */
	T_CHECK_EQ_INT(cs[dup].reg_code, RDV_ERR_TAKEN);
	/* a new server on the same database: every acknowledged name is there */
	T_CHECK(server_start() == 0);
	T_CHECK(tc_start(&b, "bob", NULL, NULL) == 0);
	T_CHECK(run_until(cond_up, &b, 5 * SEC));
	for (int i = 0; i < N_GROUP; i++)
		if (i != dup)
			T_CHECK_EQ_INT(lookup(&b, names[i], cs[i].id->peer_id), RDV_OK);
	for (int i = 0; i < N_GROUP; i++)
		tc_free(&cs[i]);
	free(cs);
	tc_free(&b);
	teardown();
}

/* A client with the default RTMFP timers (a dead server is noticed only
 * after the 30 s retransmit limit) notices a restarted server by its
 * unanswered probe REPORT and comes back within seconds; probes do not
 * make the server repeat presence to watchers. */
T_CASE(probe_notices_restarted_server)
{
	int before;

	T_CHECK(setup() == 0);
	slow_rtmfp = true;
	probe_ns = 300 * LOOP_NS_PER_MS;
	T_CHECK(tc_start(&a, "alice", "alice", NULL) == 0);
	T_CHECK(tc_start(&b, "bob", "bob", NULL) == 0);
	slow_rtmfp = false;
	probe_ns = 0;
	T_CHECK(run_until(cond_registered, &a, 5 * SEC));
	T_CHECK(run_until(cond_registered, &b, 5 * SEC));
	memcpy(b.watched[0], a.id->peer_id, 32);
	T_CHECK(rdv_client_watch(b.c, (const uint8_t (*)[32])a.id->peer_id, 1) == 0);
	T_CHECK(run_until(cond_a_online, &b, 5 * SEC));
	before = b.presence_count;
	for (int i = 0; i < 60; i++) /* ~1.2 s: several probes by alice */
		loop_run_once(loop, 20 * LOOP_NS_PER_MS);
	T_CHECK_EQ_INT(b.presence_count, before);
	T_CHECK(a.up);
	rdv_server_free(srv);
	srv = NULL;
	T_CHECK(server_start() == 0);
	T_CHECK(run_until(cond_reregistered, &a, 8 * SEC));
	T_CHECK_EQ_INT(a.reg_code, RDV_OK);
	tc_free(&a);
	tc_free(&b);
	teardown();
}

static bool cond_b_known(void *arg)
{
	return ((struct tc *)arg)->online[1] != -1;
}

T_CASE(unpinned_rate_limit_watch_offline)
{
	uint8_t nobody[2][32];

	reg_rate = (struct rdv_rate){ 0.001, 2 };
	T_CHECK(setup() == 0);
	reg_rate.burst = 0;
	/* a client that does not pin the server finds it by its name */
	unpinned = true;
	T_CHECK(tc_start(&a, "alice", "alice", NULL) == 0);
	unpinned = false;
	T_CHECK(run_until(cond_registered, &a, 5 * SEC));
	T_CHECK_EQ_INT(a.reg_code, RDV_OK);
	/* the second registration from this address uses the last token,
	 * the third is refused */
	a.reg_count = 0;
	T_CHECK(rdv_client_register(a.c, "alice") == 0);
	T_CHECK(run_until(cond_registered, &a, 5 * SEC));
	T_CHECK_EQ_INT(a.reg_code, RDV_OK);
	a.reg_count = 0;
	T_CHECK(rdv_client_register(a.c, "alice") == 0);
	T_CHECK(run_until(cond_registered, &a, 5 * SEC));
	T_CHECK_EQ_INT(a.reg_code, RDV_ERR_RATELIMIT);
	/* watching peers that are not online: offline at once */
	randombytes_buf(nobody, sizeof(nobody));
	memcpy(a.watched[0], nobody[0], 32);
	memcpy(a.watched[1], nobody[1], 32);
	T_CHECK(rdv_client_watch(a.c, (const uint8_t (*)[32])nobody, 2) == 0);
	T_CHECK(run_until(cond_b_known, &a, 5 * SEC));
	T_CHECK_EQ_INT(a.online[0], 0);
	T_CHECK_EQ_INT(a.online[1], 0);
	tc_free(&a);
	teardown();
}

int main(void)
{
	if (identity_crypto_init() != 0)
		return 1;
	T_RUN(register_lookup_taken_badsig);
	T_RUN(watch_online_offline);
	T_RUN(introduction_direct);
	T_RUN(relay_between_two_clients);
	T_RUN(malformed_closes_only_that_session);
	T_RUN(server_restart_keeps_registry_clients_return);
	T_RUN(acknowledged_registrations_survive_kill);
	T_RUN(unpinned_rate_limit_watch_offline);
	T_RUN(probe_notices_restarted_server);
	return t_done();
}
