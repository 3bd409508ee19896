/*
 * rdv_server.c - the rendezvous service (see rdv_server.h).
 *
 * State: one struct peer per open session (the session's ctx), in a list
 * of all and, while online, in a hash table by peer id (what introductions
 * look up).  Each watch set is an array of entries that are also chained
 * in a second hash table by watched id, so a change of presence reaches
 * its watchers without walking every session.  Names and certificates
 * live in the store; presence only in memory.
 *
 * Registrations are committed in groups: the first REGISTER of a loop
 * iteration opens a store write transaction, every REGISTER of that
 * iteration adds its record to it (name checks read through it, so first
 * come, first served holds inside a group), and a deferred call at the end
 * of the iteration commits it (one fsync) and only then sends the RESULTs,
 * in arrival order, and brings the new names online.  So an acknowledged
 * registration is on disk, and registrations per second are bound by CPU,
 * not by the disk's fsync latency.  A failed commit answers every
 * registration of the group RDV_ERR_INTERNAL.  (A LOOKUP reads through the
 * open transaction: it may see a name of the group a moment before its
 * commit.)  When no transaction can be opened (another is open), a
 * registration is its own transaction and is answered at once.
 *
 * Messages are decoded into, and built in, two buffers of the server (a
 * struct rdv_msg is ~9 KiB: a WATCH set): no allocation per message.  A
 * presence change is encoded once and the bytes go to every watcher.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <netinet/in.h>

#include <sodium.h>

#include "buddyfs/err.h"
#include "buddyfs/identity.h"
#include "buddyfs/log.h"
#include "buddyfs/loop.h"
#include "buddyfs/rdv_proto.h"
#include "buddyfs/rdv_relay.h"
#include "buddyfs/rdv_server.h"
#include "buddyfs/rtmfp_crypto.h"
#include "buddyfs/rtmfp_crypto_sodium.h"
#include "buddyfs/rtmfp_posix.h"
#include "buddyfs/store.h"
#include "buddyfs/udp.h"

#define ID_BYTES RDV_PEER_ID_BYTES
#define HASH_BUCKETS 16384u /* power of two */
#define RATE_SLOTS 4096u    /* power of two */
#define MAX_GROUP 4096u     /* registrations in one commit; more commit early */
#define SERVER_IDENTITY_NAME "rendezvous"

enum rate_class { RATE_IHELLO, RATE_REGISTER, RATE_LOOKUP, RATE_CLASSES };

struct rate_slot {
	uint8_t key[17];        /* family byte | address (16) */
	bool used;
	uint64_t last_ns;
	double tokens[RATE_CLASSES];
};

struct peer;

/* One watched id of one watcher, chained by id in rdv_server.whash. */
struct watch_ent {
	uint8_t id[ID_BYTES];
	struct peer *w;
	struct watch_ent *hnext;
};

struct peer {
	struct rdv_server *srv;
	struct rtmfp_session *s;
	uint8_t id[ID_BYTES];
	struct rtmfp_recv *ctl_in;
	struct rtmfp_send *ctl_out;
	bool online;
	bool closing;
	size_t n_local;
	struct rdv_addr local[RDV_MAX_REPORT_ADDRS];
	struct rdv_addr observed;  /* last YOUR_ADDRESS sent */
	size_t n_watch;
	struct watch_ent *watch;   /* n_watch entries */
	struct peer *prev, *next;  /* all sessions */
	struct peer *hnext;        /* hash chain while online */
};

/* A REGISTER answered once its group is committed. */
struct reg_wait {
	struct peer *p;    /* NULL once the session ended */
	uint32_t req;
	uint8_t code;      /* RDV_OK if the commit succeeds, or a refusal */
};

struct rdv_server {
	struct loop *loop;
	struct rtmfp_posix *px;
	struct rtmfp_crypto *crypto;
	struct store *store;
	struct rdv_server_params p;
	uint8_t id[ID_BYTES];
	struct peer *peers;
	struct peer *hash[HASH_BUCKETS];
	struct watch_ent *whash[HASH_BUCKETS];
	struct rate_slot *rates;
	uint8_t rate_key[crypto_shorthash_KEYBYTES];
	struct rdv_relay *relay;
	struct rdv_server_stats st;
	struct rdv_msg *in, *out;      /* the message being handled / being built */
	/* the registration group (see the file comment) */
	struct store_txn *txn;         /* open while a group is being gathered */
	struct reg_wait *waits;        /* answers of the group, in arrival order */
	size_t n_waits, cap_waits;
	bool commit_queued;            /* loop_defer(commit_group) pending */
};

void rdv_server_params_default(struct rdv_server_params *p)
{
	memset(p, 0, sizeof(*p));
	p->ihello = (struct rdv_rate){ 50, 100 };
	p->reg = (struct rdv_rate){ 2, 10 };
	p->lookup = (struct rdv_rate){ 20, 40 };
	p->max_sessions = 100000;
	p->max_buffered_bytes = 65536;
	p->max_relays = 1024;
	rtmfp_params_default(&p->rtmfp);
}

static uint64_t now_ns(void)
{
	return rtmfp_posix_now();
}

/* ---- rate limits ---- */

static void addr_key(uint8_t key[17], const struct sockaddr_storage *a)
{
	struct rdv_addr ra;

	memset(key, 0, 17);
	if (rdv_addr_from_sockaddr(&ra, a, RDV_ADDR_OBSERVED) == 0) {
		key[0] = ra.family;
		memcpy(key + 1, ra.addr, 16);
	}
}

static const struct rdv_rate *rate_of(const struct rdv_server *srv, enum rate_class c)
{
	return c == RATE_IHELLO ? &srv->p.ihello : c == RATE_REGISTER ? &srv->p.reg : &srv->p.lookup;
}

/* rate_take - one token of class @c for the IP of @from; false when empty. */
static bool rate_take(struct rdv_server *srv, const struct sockaddr_storage *from, enum rate_class c)
{
	uint8_t key[17], h[crypto_shorthash_BYTES];
	struct rate_slot *slot;
	uint64_t now = now_ns();

	addr_key(key, from);
	crypto_shorthash(h, key, sizeof(key), srv->rate_key);
	slot = &srv->rates[(h[0] | (unsigned)h[1] << 8) & (RATE_SLOTS - 1)];
	if (!slot->used || memcmp(slot->key, key, sizeof(key)) != 0) {
		/* a new address (or a collision: the newer address takes the slot) */
		memcpy(slot->key, key, sizeof(key));
		slot->used = true;
		slot->last_ns = now;
		for (int k = 0; k < RATE_CLASSES; k++)
			slot->tokens[k] = rate_of(srv, (enum rate_class)k)->burst;
	} else if (now > slot->last_ns) {
		double dt = (double)(now - slot->last_ns) / 1e9;

		for (int k = 0; k < RATE_CLASSES; k++) {
			const struct rdv_rate *r = rate_of(srv, (enum rate_class)k);

			slot->tokens[k] += dt * r->rate;
			if (slot->tokens[k] > r->burst)
				slot->tokens[k] = r->burst;
		}
		slot->last_ns = now;
	}
	if (slot->tokens[c] < 1.0) {
		srv->st.rate_limited++;
		return false;
	}
	slot->tokens[c] -= 1.0;
	return true;
}

/* ---- the online index ---- */

static unsigned bucket_of(const uint8_t id[ID_BYTES])
{
	return (unsigned)(id[0] | id[1] << 8 | id[2] << 16) & (HASH_BUCKETS - 1);
}

static struct peer *online_find(struct rdv_server *srv, const uint8_t id[ID_BYTES])
{
	for (struct peer *p = srv->hash[bucket_of(id)]; p; p = p->hnext)
		if (sodium_memcmp(p->id, id, ID_BYTES) == 0)
			return p;
	return NULL;
}

static void online_remove(struct rdv_server *srv, struct peer *p)
{
	struct peer **pp = &srv->hash[bucket_of(p->id)];

	for (; *pp; pp = &(*pp)->hnext) {
		if (*pp == p) {
			*pp = p->hnext;
			p->hnext = NULL;
			p->online = false;
			srv->st.online--;
			return;
		}
	}
}

/* ---- sending ---- */

static void close_peer(struct peer *p)
{
	if (p->closing)
		return;
	p->closing = true;
	rtmfp_session_close(p->s, now_ns());
}

/* encode - @m into @b (RDV_MSG_MAX_BYTES); its length, or 0 if it cannot be. */
static size_t encode(uint8_t *b, const struct rdv_msg *m)
{
	struct buf_writer w;
	int rc;

	buf_writer_init(&w, b, RDV_MSG_MAX_BYTES);
	rc = rdv_msg_encode(&w, m);
	if (rc) {
		log_warn("rendezvous: cannot encode a message of type 0x%02x: %s", m->type, bfs_strerror(rc));
		return 0;
	}
	return buf_writer_len(&w);
}

/* send_bytes - one encoded message on @p's control flow; a peer that does
 * not read it (backlog over max_buffered_bytes) is closed. */
static void send_bytes(struct peer *p, const uint8_t *b, size_t len)
{
	int rc;

	if (!p->ctl_out || p->closing || len == 0)
		return;
	if (rtmfp_send_buffered(p->ctl_out) > p->srv->p.max_buffered_bytes) {
		log_debug("rendezvous: a peer does not read its control flow; closing its session");
		close_peer(p);
		return;
	}
	rc = rtmfp_send_write(p->ctl_out, b, len, now_ns());
	if (rc) {
		log_debug("rendezvous: control write failed (%s); closing the session", bfs_strerror(rc));
		close_peer(p);
	}
}

static void send_msg(struct peer *p, const struct rdv_msg *m)
{
	uint8_t b[RDV_MSG_MAX_BYTES];

	if (!p->ctl_out || p->closing)
		return;
	send_bytes(p, b, encode(b, m));
}

/* out_msg - the server's outgoing message, cleared, of type @type. */
static struct rdv_msg *out_msg(struct rdv_server *srv, uint8_t type)
{
	memset(srv->out, 0, sizeof(*srv->out));
	srv->out->type = type;
	return srv->out;
}

static void send_result(struct peer *p, uint32_t req, uint8_t code)
{
	struct rdv_msg *m = out_msg(p->srv, RDV_MSG_RESULT);

	m->req = req;
	m->code = code;
	send_msg(p, m);
}

/* fill_presence - the presence of @target (NULL: offline) for peer id @id. */
static void fill_presence(struct rdv_msg *m, const uint8_t id[ID_BYTES], const struct peer *target)
{
	memset(m, 0, sizeof(*m));
	m->type = RDV_MSG_PRESENCE;
	memcpy(m->peer_id, id, ID_BYTES);
	if (!target || !target->online)
		return;
	m->online = true;
	memcpy(m->addrs, target->local, target->n_local * sizeof(target->local[0]));
	m->n_addrs = target->n_local;
	if (rdv_addr_from_sockaddr(&m->addrs[m->n_addrs], rtmfp_session_far_addr(target->s),
				   RDV_ADDR_OBSERVED) == 0)
		m->n_addrs++;
}

static void watch_clear(struct rdv_server *srv, struct peer *p)
{
	for (size_t i = 0; i < p->n_watch; i++) {
		struct watch_ent **pp = &srv->whash[bucket_of(p->watch[i].id)];

		for (; *pp; pp = &(*pp)->hnext) {
			if (*pp == &p->watch[i]) {
				*pp = p->watch[i].hnext;
				break;
			}
		}
	}
	free(p->watch);
	p->watch = NULL;
	p->n_watch = 0;
}

/* notify - tell every watcher of @p->id its current presence. */
static void notify(struct rdv_server *srv, struct peer *p)
{
	uint8_t b[RDV_MSG_MAX_BYTES];
	struct peer **ws = NULL;
	size_t n = 0, cap = 0, len;

	fill_presence(srv->out, p->id, p->online ? p : NULL);
	len = encode(b, srv->out); /* once for every watcher; srv->out is free again */
	if (len == 0)
		return;
	/* collect first: a send may close (not free) a watcher's session */
	for (struct watch_ent *e = srv->whash[bucket_of(p->id)]; e; e = e->hnext) {
		if (e->w == p || memcmp(e->id, p->id, ID_BYTES) != 0)
			continue;
		if (n == cap) {
			size_t nc = cap ? 2 * cap : 16;
			struct peer **x = realloc(ws, nc * sizeof(*x));

			if (!x)
				break;
			ws = x;
			cap = nc;
		}
		ws[n++] = e->w;
	}
	for (size_t i = 0; i < n; i++)
		send_bytes(ws[i], b, len);
	free(ws);
}

static void go_online(struct rdv_server *srv, struct peer *p)
{
	struct peer *old;

	if (!p->online) {
		old = online_find(srv, p->id);
		if (old)
			online_remove(srv, old); /* a restarted peer replaces its old session */
		p->online = true;
		p->hnext = srv->hash[bucket_of(p->id)];
		srv->hash[bucket_of(p->id)] = p;
		srv->st.online++;
	}
	notify(srv, p);
}

/* ---- registrations, committed in groups ---- */

/* reg_finish - answer one REGISTER (@p NULL: its session is gone) and,
 * when it succeeded, bring the name online. */
static void reg_finish(struct rdv_server *srv, struct peer *p, uint32_t req, uint8_t code)
{
	if (code == RDV_OK)
		srv->st.registrations++;
	else if (code != RDV_ERR_RATELIMIT)
		srv->st.refused++;
	if (!p)
		return;
	send_result(p, req, code);
	if (code == RDV_OK)
		go_online(srv, p);
}

/* group_commit - commit the open group (one fsync), then answer each of
 * its registrations in arrival order.  Returns the commit's result. */
static int group_commit(struct rdv_server *srv)
{
	size_t n = srv->n_waits;
	int rc = 0;

	if (srv->txn) {
		rc = store_txn_commit(srv->txn);
		srv->txn = NULL;
		if (rc == 0)
			srv->st.commits++;
		else
			log_error("rendezvous: cannot commit %zu registration(s): %s", n, bfs_strerror(rc));
	}
	/* n_waits stays set while answering: a session that ends meanwhile
	 * clears its entries (peer_free) */
	for (size_t i = 0; i < srv->n_waits; i++) {
		struct reg_wait *w = &srv->waits[i];

		reg_finish(srv, w->p, w->req, rc && w->code == RDV_OK ? RDV_ERR_INTERNAL : w->code);
	}
	srv->n_waits = 0;
	return rc;
}

static void on_commit(struct loop *loop, void *ctx)
{
	struct rdv_server *srv = ctx;

	(void)loop;
	srv->commit_queued = false;
	group_commit(srv);
}

/* group_room - make room for one more answer in the group (committing a
 * full group first).  False when memory is short: the request is then
 * refused at once, without a write. */
static bool group_room(struct rdv_server *srv)
{
	if (srv->n_waits >= MAX_GROUP)
		group_commit(srv);
	if (srv->n_waits == srv->cap_waits) {
		size_t nc = srv->cap_waits ? 2 * srv->cap_waits : 64;
		struct reg_wait *x = realloc(srv->waits, nc * sizeof(*x));

		if (!x)
			return false;
		srv->waits = x;
		srv->cap_waits = nc;
	}
	return true;
}

/* reg_answer - answer a REGISTER now, or after the group's commit when a
 * group is open (also for refusals: answers keep their order). */
static void reg_answer(struct rdv_server *srv, struct peer *p, uint32_t req, uint8_t code)
{
	if (!srv->txn && srv->n_waits == 0) {
		reg_finish(srv, p, req, code);
		return;
	}
	/* group_room() ran before the request was handled: there is room */
	srv->waits[srv->n_waits++] = (struct reg_wait){ .p = p, .req = req, .code = code };
	if (!srv->commit_queued && loop_defer(srv->loop, on_commit, srv) == 0)
		srv->commit_queued = true;
	if (!srv->commit_queued)
		group_commit(srv); /* cannot defer: commit now */
}

/* put_record - write @rec into the group's transaction (opening it); when
 * the store cannot take it there, in a transaction of its own. */
static int put_record(struct rdv_server *srv, const struct store_peer *rec)
{
	int rc;

	if (!srv->txn && store_txn_begin(srv->store, &srv->txn) != 0)
		srv->txn = NULL;
	if (srv->txn)
		return store_peer_put_txn(srv->store, srv->txn, rec);
	rc = store_peer_put(srv->store, rec);
	if (rc == 0)
		srv->st.commits++;
	return rc;
}

/* ---- requests ---- */

static uint8_t do_register(struct rdv_server *srv, struct peer *p, const struct rdv_msg *m)
{
	char name[IDENTITY_NAME_MAX + 1];
	uint8_t signed_bytes[RDV_REGISTER_SIGNED_MAX_BYTES];
	struct store_peer *rec = NULL;
	const uint8_t *cert;
	size_t cert_len;
	long n;
	uint8_t code = RDV_ERR_INTERNAL;
	int rc;

	if (identity_name_normalize(name, m->name) || strcmp(name, m->name) != 0)
		return RDV_ERR_MALFORMED;
	cert = rtmfp_session_far_cert(p->s, &cert_len);
	n = rdv_register_signed(signed_bytes, p->id, name);
	if (!cert || n < 0 || identity_verify(cert, cert_len, m->sig, signed_bytes, (size_t)n) != 0)
		return RDV_ERR_BADSIG;
	if (cert_len > STORE_CERT_MAX_BYTES)
		return RDV_ERR_BADSIG;
	rec = calloc(1, sizeof(*rec));
	if (!rec)
		return RDV_ERR_INTERNAL;
	rc = store_peer_by_name(srv->store, name, rec);
	if (rc == 0 && sodium_memcmp(rec->id, p->id, ID_BYTES) != 0) {
		code = RDV_ERR_TAKEN;
		goto out;
	}
	rc = store_peer_get(srv->store, p->id, rec);
	if (rc == -ENOENT || rc == BFS_EMALFORMED || rc == BFS_EVERSION) {
		memset(rec, 0, sizeof(*rec));
		memcpy(rec->id, p->id, ID_BYTES);
	} else if (rc) {
		goto out;
	}
	strcpy(rec->name, name);
	memcpy(rec->cert, cert, cert_len);
	rec->cert_len = cert_len;
	rec->last_seen = (uint64_t)time(NULL);
	rc = put_record(srv, rec);
	if (rc == -EEXIST)
		code = RDV_ERR_TAKEN;
	else if (rc == 0)
		code = RDV_OK;
	else
		log_error("rendezvous: cannot store the name '%s': %s", name, bfs_strerror(rc));
out:
	free(rec);
	return code;
}

static void do_lookup(struct rdv_server *srv, struct peer *p, const struct rdv_msg *m)
{
	char name[IDENTITY_NAME_MAX + 1];
	struct store_peer *rec = calloc(1, sizeof(*rec));
	struct rdv_msg *r = out_msg(srv, RDV_MSG_RESULT);
	int rc;

	if (!rec)
		goto out;
	r->req = m->req;
	srv->st.lookups++;
	if (identity_name_normalize(name, m->name)) {
		r->code = RDV_ERR_MALFORMED;
	} else {
		rc = store_peer_by_name(srv->store, name, rec);
		if (rc == 0 && rec->cert_len > 0 && rec->cert_len <= RDV_CERT_MAX_BYTES) {
			r->code = RDV_OK;
			memcpy(r->cert, rec->cert, rec->cert_len);
			r->cert_len = rec->cert_len;
		} else {
			r->code = rc == 0 || rc == -ENOENT ? RDV_ERR_NOTFOUND : RDV_ERR_INTERNAL;
		}
	}
	send_msg(p, r);
out:
	free(rec);
}

static void do_watch(struct rdv_server *srv, struct peer *p, const struct rdv_msg *m)
{
	struct rdv_msg *ev;

	watch_clear(srv, p);
	if (m->n_ids) {
		p->watch = calloc(m->n_ids, sizeof(*p->watch));
		if (!p->watch) {
			send_result(p, m->req, RDV_ERR_INTERNAL);
			return;
		}
		for (size_t i = 0; i < m->n_ids; i++) {
			struct watch_ent *e = &p->watch[i];
			unsigned b = bucket_of(m->ids[i]);

			memcpy(e->id, m->ids[i], ID_BYTES);
			e->w = p;
			e->hnext = srv->whash[b];
			srv->whash[b] = e;
		}
		p->n_watch = m->n_ids;
	}
	send_result(p, m->req, RDV_OK);
	ev = srv->out;
	for (size_t i = 0; i < p->n_watch; i++) {
		fill_presence(ev, p->watch[i].id, online_find(srv, p->watch[i].id));
		send_msg(p, ev);
	}
}

/* do_report - the local addresses; watchers hear of it only when the peer
 * comes online or its addresses changed (clients re-send REPORT as a
 * liveness probe). */
static void do_report(struct rdv_server *srv, struct peer *p, const struct rdv_msg *m)
{
	bool changed = m->n_addrs != p->n_local ||
		       memcmp(p->local, m->addrs, m->n_addrs * sizeof(m->addrs[0])) != 0;

	memcpy(p->local, m->addrs, m->n_addrs * sizeof(m->addrs[0]));
	p->n_local = m->n_addrs;
	send_result(p, m->req, RDV_OK);
	if (!p->online)
		go_online(srv, p);
	else if (changed)
		notify(srv, p);
}

/* send_relay - RELAY_OFFER (with @token) or, @token NULL, RELAY_READY to
 * @to about the channel with @other. */
static void send_relay(struct rdv_server *srv, struct peer *to, const uint8_t other[ID_BYTES],
		       const uint8_t *token)
{
	struct rdv_msg *m = out_msg(srv, token ? RDV_MSG_RELAY_OFFER : RDV_MSG_RELAY_READY);

	memcpy(m->peer_id, other, ID_BYTES);
	if (token)
		memcpy(m->token, token, RDV_RELAY_TOKEN_BYTES);
	m->relay_port = rdv_relay_port(srv->relay);
	send_msg(to, m);
	sodium_memzero(m->token, sizeof(m->token));
}

/*
 * do_relay - @p asks to relay its session with m->peer_id: both must be
 * online (else RESULT not found).  Both get a RELAY_OFFER with their own
 * token; once both have bound (rdv_relay's ready event) both get
 * RELAY_READY.  Asking again for a bound channel gives READY at once.
 */
static void do_relay(struct rdv_server *srv, struct peer *p, const struct rdv_msg *m)
{
	uint8_t tok_p[RDV_RELAY_TOKEN_BYTES], tok_o[RDV_RELAY_TOKEN_BYTES];
	struct peer *o = online_find(srv, m->peer_id);
	bool ready = false;
	int rc;

	if (!p->online || !o || !srv->relay) {
		send_result(p, m->req, RDV_ERR_NOTFOUND);
		return;
	}
	rc = rdv_relay_channel(srv->relay, p->id, o->id, tok_p, tok_o, &ready);
	if (rc) {
		send_result(p, m->req, rc == -ENOSPC ? RDV_ERR_RATELIMIT
				       : rc == -EINVAL ? RDV_ERR_MALFORMED : RDV_ERR_INTERNAL);
		return;
	}
	send_result(p, m->req, RDV_OK);
	if (ready) {
		send_relay(srv, p, o->id, NULL);
	} else {
		send_relay(srv, p, o->id, tok_p);
		send_relay(srv, o, p->id, tok_o);
	}
	sodium_memzero(tok_p, sizeof(tok_p));
	sodium_memzero(tok_o, sizeof(tok_o));
}

static void on_relay_ready(void *ctx, const uint8_t a[static ID_BYTES], const uint8_t b[static ID_BYTES])
{
	struct rdv_server *srv = ctx;
	struct peer *pa = online_find(srv, a), *pb = online_find(srv, b);

	if (pa)
		send_relay(srv, pa, b, NULL);
	if (pb)
		send_relay(srv, pb, a, NULL);
}

static void on_control(struct rdv_server *srv, struct peer *p, const uint8_t *msg, size_t len)
{
	const struct sockaddr_storage *from = rtmfp_session_far_addr(p->s);
	struct rdv_msg *m = srv->in;
	int rc;

	rc = rdv_msg_decode(m, msg, len);
	if (rc || m->type >= RDV_MSG_RESULT) {
		srv->st.malformed++;
		log_debug("rendezvous: malformed control message (%s); closing that session",
			  rc ? bfs_strerror(rc) : "a server message from a client");
		close_peer(p);
		return;
	}
	switch (m->type) {
	case RDV_MSG_REGISTER:
		if (!group_room(srv))
			reg_finish(srv, p, m->req, RDV_ERR_INTERNAL); /* no room to wait in: now */
		else if (!rate_take(srv, from, RATE_REGISTER))
			reg_answer(srv, p, m->req, RDV_ERR_RATELIMIT);
		else
			reg_answer(srv, p, m->req, do_register(srv, p, m));
		break;
	case RDV_MSG_LOOKUP:
		if (!rate_take(srv, from, RATE_LOOKUP)) {
			send_result(p, m->req, RDV_ERR_RATELIMIT);
			break;
		}
		do_lookup(srv, p, m);
		break;
	case RDV_MSG_WATCH:
		if (!rate_take(srv, from, RATE_LOOKUP)) {
			send_result(p, m->req, RDV_ERR_RATELIMIT);
			break;
		}
		do_watch(srv, p, m);
		break;
	case RDV_MSG_REPORT:
		do_report(srv, p, m);
		break;
	case RDV_MSG_RELAY:
		if (!rate_take(srv, from, RATE_LOOKUP)) {
			send_result(p, m->req, RDV_ERR_RATELIMIT);
			break;
		}
		do_relay(srv, p, m);
		break;
	}
}

/* ---- RTMFP events ---- */

static void ev_session_opened(void *ctx, struct rtmfp_session *s)
{
	struct rdv_server *srv = ctx;
	struct peer *p;

	if (srv->st.sessions >= srv->p.max_sessions) {
		rtmfp_session_close(s, now_ns());
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		rtmfp_session_close(s, now_ns());
		return;
	}
	p->srv = srv;
	p->s = s;
	if (rtmfp_session_far_peer_id(s, p->id) != 0) {
		free(p);
		rtmfp_session_close(s, now_ns());
		return;
	}
	p->next = srv->peers;
	if (srv->peers)
		srv->peers->prev = p;
	srv->peers = p;
	srv->st.sessions++;
	rtmfp_session_set_ctx(s, p);
}

static void peer_free(struct rdv_server *srv, struct peer *p)
{
	for (size_t i = 0; i < srv->n_waits; i++)
		if (srv->waits[i].p == p)
			srv->waits[i].p = NULL;
	watch_clear(srv, p);
	if (p->prev)
		p->prev->next = p->next;
	else
		srv->peers = p->next;
	if (p->next)
		p->next->prev = p->prev;
	free(p);
}

static void ev_session_closed(void *ctx, struct rtmfp_session *s, int err)
{
	struct rdv_server *srv = ctx;
	struct peer *p = rtmfp_session_get_ctx(s);

	(void)err;
	if (!p)
		return;
	rtmfp_session_set_ctx(s, NULL);
	srv->st.sessions--;
	if (p->online) {
		online_remove(srv, p);
		if (!online_find(srv, p->id))
			notify(srv, p);
	}
	peer_free(srv, p);
}

/* send_your_address - tell @p what we observe; true when it changed. */
static bool send_your_address(struct peer *p)
{
	struct rdv_msg *m;
	struct rdv_addr a;

	if (rdv_addr_from_sockaddr(&a, rtmfp_session_far_addr(p->s), RDV_ADDR_OBSERVED) != 0 ||
	    memcmp(&a, &p->observed, sizeof(a)) == 0)
		return false;
	p->observed = a;
	m = out_msg(p->srv, RDV_MSG_YOUR_ADDRESS);
	m->n_addrs = 1;
	m->addrs[0] = a;
	send_msg(p, m);
	return true;
}

static void ev_recv_flow(void *ctx, struct rtmfp_recv *f, const uint8_t *meta, size_t meta_len,
			 struct rtmfp_send *assoc)
{
	struct peer *p = rtmfp_session_get_ctx(rtmfp_recv_session(f));
	(void)ctx;
	(void)assoc;
	if (!p || p->ctl_in || p->closing || meta_len != strlen(RDV_PROTO_METADATA) ||
	    memcmp(meta, RDV_PROTO_METADATA, meta_len) != 0)
		return; /* not accepted: rejected */
	if (rtmfp_recv_open_return(f, &p->ctl_out, meta, meta_len, now_ns()) != 0)
		return;
	rtmfp_recv_accept(f);
	rtmfp_recv_set_ctx(f, p);
	rtmfp_send_set_ctx(p->ctl_out, p);
	p->ctl_in = f;
	send_your_address(p);
}

static void ev_message(void *ctx, struct rtmfp_recv *f, const uint8_t *msg, size_t len)
{
	struct peer *p = rtmfp_recv_get_ctx(f);

	if (!p || p->closing)
		return;
	/* the peer moved (NAT rebinding, §3.5.4.2): tell it and its watchers */
	if (send_your_address(p) && p->online)
		notify(ctx, p);
	on_control(ctx, p, msg, len);
}

static void ev_recv_closed(void *ctx, struct rtmfp_recv *f, int err)
{
	struct peer *p = rtmfp_recv_get_ctx(f);

	(void)ctx;
	(void)err;
	if (!p)
		return;
	p->ctl_in = NULL;
	if (p->ctl_out) {
		rtmfp_send_close(p->ctl_out, now_ns());
	}
}

static void ev_send_closed(void *ctx, struct rtmfp_send *f, int err)
{
	struct peer *p = rtmfp_send_get_ctx(f);

	(void)ctx;
	(void)err;
	if (p && p->ctl_out == f)
		p->ctl_out = NULL;
}

static void ev_unmatched_ihello(void *ctx, int iface, const struct sockaddr_storage *from,
				const uint8_t *epd, size_t epd_len, const uint8_t *tag, size_t tag_len)
{
	struct rdv_server *srv = ctx;
	struct sockaddr_storage addrs[RDV_MAX_PRESENCE_ADDRS];
	struct rdv_addr obs;
	struct peer *t;
	bool v6 = from->ss_family == AF_INET6;
	size_t n = 0;
	uint64_t now = now_ns();

	srv->st.ihellos++;
	if (epd_len != RTMFP_CRYPTO_SODIUM_EPD_PEER_ID_BYTES || epd[0] != RTMFP_CRYPTO_SODIUM_EPD_PEER_ID)
		return;
	if (!rate_take(srv, from, RATE_IHELLO))
		return;
	t = online_find(srv, epd + 1);
	if (!t || t->closing)
		return;
	/* local addresses first, then the observed one (§3.5.1.4) */
	for (size_t i = 0; i < t->n_local; i++) {
		if (t->local[i].family == 6 && !v6)
			continue;
		if (rdv_addr_to_sockaddr(&addrs[n], &t->local[i], v6) == 0)
			n++;
	}
	if (rdv_addr_from_sockaddr(&obs, rtmfp_session_far_addr(t->s), RDV_ADDR_OBSERVED) == 0 &&
	    !(obs.family == 6 && !v6) && rdv_addr_to_sockaddr(&addrs[n], &obs, v6) == 0)
		n++;
	if (n == 0)
		return;
	if (rtmfp_redirect(rtmfp_posix_core(srv->px), iface, from, tag, tag_len, addrs, n, now) != 0)
		return;
	/* then the FIHello, so the target answers the initiator directly (§3.5.1.5) */
	if (rtmfp_session_send_fihello(t->s, epd, epd_len, from, tag, tag_len, now) == 0)
		srv->st.introductions++;
}

/* ---- setup ---- */

static int load_identity(struct identity **id, const char *dir)
{
	int rc = identity_load(id, dir, NULL);

	if (rc == BFS_ENOIDENT) {
		rc = identity_create(id, dir, SERVER_IDENTITY_NAME, "", 0);
		if (rc == 0)
			log_info("rendezvous: made a new identity in %s", dir);
	}
	return rc;
}

int rdv_server_new(struct rdv_server **out, struct loop *loop, const char *db_dir,
		   const struct sockaddr_storage *listen, const struct rdv_server_params *params)
{
	const struct rtmfp_callbacks cb = {
		.session_opened = ev_session_opened,
		.session_closed = ev_session_closed,
		.recv_flow = ev_recv_flow,
		.message = ev_message,
		.recv_closed = ev_recv_closed,
		.send_closed = ev_send_closed,
		.unmatched_ihello = ev_unmatched_ihello,
	};
	struct rdv_server *srv;
	struct identity *id = NULL;
	struct sockaddr_storage relay_addr;
	int rc;

	*out = NULL;
	rc = identity_crypto_init();
	if (rc)
		return rc;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->loop = loop;
	if (params)
		srv->p = *params;
	else
		rdv_server_params_default(&srv->p);
	srv->rates = calloc(RATE_SLOTS, sizeof(*srv->rates));
	srv->in = malloc(sizeof(*srv->in));
	srv->out = malloc(sizeof(*srv->out));
	if (!srv->rates || !srv->in || !srv->out) {
		rc = -ENOMEM;
		goto fail;
	}
	randombytes_buf(srv->rate_key, sizeof(srv->rate_key));
	rc = load_identity(&id, db_dir);
	if (rc)
		goto fail;
	rc = rtmfp_crypto_sodium_new(&srv->crypto, id->secret_key, (const uint8_t *)RDV_SERVER_NAME,
				     strlen(RDV_SERVER_NAME), 0);
	identity_free(id);
	if (rc)
		goto fail;
	rtmfp_crypto_local_peer_id(srv->crypto, srv->id);
	rc = store_open(&srv->store, db_dir, 0);
	if (rc)
		goto fail;
	rc = rtmfp_posix_new(&srv->px, loop, srv->crypto, &cb, srv, &srv->p.rtmfp, listen);
	if (rc)
		goto fail;
	/* The relay: same address as the service, any port. */
	relay_addr = *listen;
	if (relay_addr.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&relay_addr)->sin6_port = 0;
	else
		((struct sockaddr_in *)&relay_addr)->sin_port = 0;
	rc = rdv_relay_new(&srv->relay, loop, &relay_addr, srv->p.max_relays, 0, on_relay_ready, srv);
	if (rc)
		goto fail;
	*out = srv;
	return 0;
fail:
	rdv_server_free(srv);
	return rc;
}

void rdv_server_free(struct rdv_server *srv)
{
	if (!srv)
		return;
	/* a group still open: commit it (its answers are queued, never sent) */
	if (srv->commit_queued)
		loop_defer_cancel(srv->loop, on_commit, srv);
	if (srv->txn || srv->n_waits)
		group_commit(srv);
	rtmfp_posix_free(srv->px);
	rdv_relay_free(srv->relay);
	while (srv->peers)
		peer_free(srv, srv->peers);
	store_close(srv->store);
	rtmfp_crypto_free(srv->crypto);
	free(srv->rates);
	free(srv->waits);
	if (srv->in)
		sodium_memzero(srv->in, sizeof(*srv->in));
	free(srv->in);
	free(srv->out);
	sodium_memzero(srv->rate_key, sizeof(srv->rate_key));
	free(srv);
}

void rdv_server_peer_id(const struct rdv_server *srv, uint8_t out[static 32])
{
	memcpy(out, srv->id, ID_BYTES);
}

int rdv_server_local_addr(const struct rdv_server *srv, struct sockaddr_storage *out)
{
	return udp_local(rtmfp_posix_udp(srv->px), out);
}

int rdv_server_relay_addr(const struct rdv_server *srv, struct sockaddr_storage *out)
{
	return srv->relay ? rdv_relay_local_addr(srv->relay, out) : -ENOENT;
}

void rdv_server_get_stats(const struct rdv_server *srv, struct rdv_server_stats *out)
{
	struct rdv_relay_stats rs;

	*out = srv->st;
	if (srv->relay) {
		rdv_relay_get_stats(srv->relay, &rs);
		out->relays = rs.channels;
		out->relayed_packets = rs.packets;
		out->relayed_bytes = rs.bytes;
		out->relay_dropped = rs.dropped;
	}
}
