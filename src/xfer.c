/*
 * xfer.c - block transfers (xfer.h has the picture, xfer_proto.h the bytes).
 *
 * Reader side: every asked block is a struct req, found by block hash
 * (duplicates merge) and, once sent, by request id.  Each owner is a
 * struct cpeer with one GET flow, the return flow its answers come on, a
 * queue of requests not sent yet and the window in flight.  An owner
 * that has requests outstanding and answers nothing for timeout_s fails
 * them all; a request still unanswered XFER_TIMEOUT_CAP times timeout_s
 * after it was asked fails alone.  All requests sit on one list in the
 * order they were asked (the order of their caps); one loop timer watches
 * the earliest of the owners' silence deadlines and the list's head.  An
 * answered block leaves the window at once and goes to the checker, a
 * thread that only hashes (BLAKE2b is a third of a reader's CPU per byte,
 * and the loop has the packets, the keys and FUSE to serve meanwhile); an
 * eventfd brings the verdicts back to the loop, which hands a good block
 * to delivered() (waiting reads) and finishes the request.  A finished
 * request moves to the done list; a deferred call puts the checked blocks
 * in the store (one transaction) and then calls arrived() for each, so
 * arrived() never runs inside xfer_fetch().  The checker touches only a
 * request's bytes, hash and verdict, and only while the loop leaves the
 * request alone (REQ_CHECKING: in no list, table or window of the loop).
 *
 * Owner side: each reader's GET flow is a struct sflow with our return
 * flow and a queue of GETs answered in order; a message that hit the
 * flow's buffer limit (-EAGAIN) is held until the writable event.
 *
 * Flows are told apart by pointer: the owner's hooks offer every event of
 * the instance, and a flow's ctx may belong to another module.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <sodium.h>

#include "buddyfs/buf.h"
#include "buddyfs/err.h"
#include "buddyfs/identity.h"
#include "buddyfs/log.h"
#include "buddyfs/loop.h"
#include "buddyfs/manifest.h"
#include "buddyfs/rtmfp.h"
#include "buddyfs/xfer.h"
#include "buddyfs/xfer_proto.h"

#define META_LEN (sizeof(XFER_FLOW_METADATA) - 1)
#define STAT_KEEP_NS (5 * LOOP_NS_PER_S)  /* list a transfer this long after its last block */
#define RATE_WINDOW_NS LOOP_NS_PER_S
#define MANIFEST_CACHE 4
#define FD_CACHE 8
#define POOL_BUFFERS 32                   /* block buffers kept for reuse (no page faults) */
#define POOL_BUFFER_BYTES (256u * 1024)   /* their size: the default block size */
#define ID_HEX 13                         /* short peer ids in logs: 6 bytes */
#define OBJECTS_DIR "objects"             /* HOME/objects: FS_OBJECTS_DIR of fs.h */

/* ---- intrusive lists ---- */

struct link {
	struct link *prev, *next;
};

#define OWNER(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static void list_init(struct link *h) { h->prev = h->next = h; }
static bool list_empty(const struct link *h) { return h->next == h; }

static void list_add_tail(struct link *h, struct link *l)
{
	l->prev = h->prev;
	l->next = h;
	h->prev->next = l;
	h->prev = l;
}

static void list_del(struct link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	l->prev = l->next = l;
}

/* ---- state ---- */

struct xstat {
	uint64_t done, total;       /* bytes, this transfer */
	uint64_t win_start, win_bytes, rate;
	uint64_t last_active;       /* ns, 0: never */
};

/*
 * QUEUED: on its peer's queue; SENT: in the window, findable by id;
 * CHECKING: answered, its bytes with the checker (which alone reads them
 * until it hands the request back); DONE: on x->done.
 */
enum req_state { REQ_QUEUED, REQ_SENT, REQ_CHECKING, REQ_DONE };

struct req {
	struct req *hnext;          /* bucket chain by block hash */
	struct req *inext;          /* bucket chain by id (sent only) */
	struct link all;            /* x->all (asked order) until done */
	struct link q;              /* the peer's queue (queued) or x->done (done) */
	struct cpeer *peer;
	uint64_t asked;             /* when xfer_fetch() took it (ns) */
	uint32_t id;
	uint8_t state;
	int err;
	uint8_t *data;              /* the answer's bytes: being checked, then waiting for the store */
	struct req *cnext;          /* the checker's lists (under its lock) */
	bool urgent;                /* a read waits for it */
	bool good;                  /* the checker's verdict: @data has @hash */
	uint8_t manifest[STORE_HASH_BYTES];
	uint8_t hash[STORE_HASH_BYTES];
	uint32_t index, len;
	uint16_t path_len;
	char path[];
};

struct cpeer {
	struct link link;           /* x->cpeers */
	uint8_t id[STORE_PEER_ID_BYTES];
	char hex[ID_HEX];
	struct rtmfp_send *out;     /* our GETs */
	struct rtmfp_recv *in;      /* the answers */
	bool blocked;               /* out said -EAGAIN: wait for writable */
	struct link queue;          /* requests not sent yet */
	unsigned in_flight;
	uint64_t in_flight_bytes;
	unsigned asked;             /* requests of this peer not done */
	uint64_t since;             /* its last answer, or when it got busy (ns) */
	struct xstat st;
};

struct sget {
	struct link link;
	uint32_t req, index, len;
	uint8_t manifest[STORE_HASH_BYTES];
	uint8_t hash[STORE_HASH_BYTES];
	char path[];
};

struct sflow {
	struct link link;           /* x->sflows */
	uint8_t id[STORE_PEER_ID_BYTES];
	char hex[ID_HEX];
	struct rtmfp_recv *in;      /* the reader's GETs */
	struct rtmfp_send *out;     /* our answers */
	struct link gets;
	unsigned n_gets;
	uint8_t *held;              /* the next message, when it hit -EAGAIN */
	size_t held_len, held_cap;
	bool has_held;
	struct xstat st;
};

struct orphan {
	struct link link;
	struct rtmfp_send *f;       /* closing; we wait for its send_closed */
};

struct mcache {
	uint8_t hash[STORE_HASH_BYTES];
	struct manifest *m;
	uint64_t used;
};

struct fdcache {
	char object[STORE_OBJECT_MAX + 1];
	int fd;
	uint64_t used;
};

/*
 * The checker: one thread hashing answered blocks.  Requests go in on @in
 * and come back on @out (both FIFO, under @mu); an eventfd wakes the loop.
 */
struct checker {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct req *in, **in_tail, *out, **out_tail;
	bool stop;
	int efd;
	struct loop_fd *lfd;
};

struct xfer {
	struct xfer_params p;
	struct checker *ck;         /* NULL: blocks are checked on the loop */
	unsigned ck_held;           /* requests the checker holds now */
	char *home;
	struct loop_timer *timer;
	bool deferred;
	struct link all, done, cpeers, sflows, orphans;
	struct req **by_hash, **by_id;
	size_t n_buckets, n_reqs;
	uint32_t next_id;
	uint8_t hkey[crypto_shorthash_KEYBYTES];
	struct mcache mc[MANIFEST_CACHE];
	struct fdcache fc[FD_CACHE];
	uint64_t tick;              /* use counter for the caches */
	unsigned n_sflows;
	uint8_t *pool[POOL_BUFFERS]; /* free block buffers of POOL_BUFFER_BYTES */
	unsigned n_pool;
	struct store_entry entry;   /* scratch (4 KiB) */
	struct xfer_totals totals;
};

static void peer_hex(char out[static ID_HEX], const uint8_t id[static STORE_PEER_ID_BYTES])
{
	buf_hex(out, id, (ID_HEX - 1) / 2);
}

static uint64_t now_ns(void)
{
	return loop_clock_ns();
}

static void kick(struct xfer *x)
{
	if (x->p.kick)
		x->p.kick(x->p.ctx);
}

static bool allowed(struct xfer *x, const uint8_t id[static STORE_PEER_ID_BYTES])
{
	return !x->p.allowed || x->p.allowed(x->p.ctx, id);
}

static void stat_begin(struct xstat *st, bool idle, uint64_t now)
{
	if (idle && (st->last_active == 0 || now - st->last_active > STAT_KEEP_NS)) {
		st->done = st->total = 0;
		st->win_start = now;
		st->win_bytes = 0;
		st->rate = 0;
	}
	st->last_active = now;
}

static void stat_done(struct xstat *st, uint64_t bytes, uint64_t now)
{
	st->done += bytes;
	st->win_bytes += bytes;
	st->last_active = now;
	if (now - st->win_start >= RATE_WINDOW_NS) {
		st->rate = st->win_bytes * LOOP_NS_PER_S / (now - st->win_start);
		st->win_start = now;
		st->win_bytes = 0;
	}
}

/* ---- block buffers: reused, so that a fetch does not fault in fresh pages ---- */

static uint8_t *buf_take(struct xfer *x, uint32_t len)
{
	if (len <= POOL_BUFFER_BYTES) {
		if (x->n_pool)
			return x->pool[--x->n_pool];
		return malloc(POOL_BUFFER_BYTES);
	}
	return malloc(len);
}

static void buf_give(struct xfer *x, uint8_t *p, uint32_t len)
{
	if (p && len <= POOL_BUFFER_BYTES && x->n_pool < POOL_BUFFERS)
		x->pool[x->n_pool++] = p;
	else
		free(p);
}

/* ---- the request table ---- */

static size_t hash_slot(const struct xfer *x, const uint8_t hash[static STORE_HASH_BYTES])
{
	uint8_t h[crypto_shorthash_BYTES];

	crypto_shorthash(h, hash, STORE_HASH_BYTES, x->hkey);
	return (size_t)buf_load64_be(h) & (x->n_buckets - 1);
}

static struct req *find_hash(const struct xfer *x, const uint8_t hash[static STORE_HASH_BYTES])
{
	for (struct req *r = x->by_hash[hash_slot(x, hash)]; r; r = r->hnext)
		if (memcmp(r->hash, hash, STORE_HASH_BYTES) == 0)
			return r;
	return NULL;
}

static struct req *find_id(const struct xfer *x, uint32_t id)
{
	for (struct req *r = x->by_id[id & (x->n_buckets - 1)]; r; r = r->inext)
		if (r->id == id && r->state == REQ_SENT)
			return r;
	return NULL;
}

static void unlink_chain(struct req **head, struct req *r, bool by_id)
{
	for (struct req **pp = head; *pp; pp = by_id ? &(*pp)->inext : &(*pp)->hnext) {
		if (*pp == r) {
			*pp = by_id ? r->inext : r->hnext;
			return;
		}
	}
}

static void id_add(struct xfer *x, struct req *r)
{
	size_t i = r->id & (x->n_buckets - 1);

	r->inext = x->by_id[i];
	x->by_id[i] = r;
}

static void id_del(struct xfer *x, struct req *r)
{
	unlink_chain(&x->by_id[r->id & (x->n_buckets - 1)], r, true);
	r->inext = NULL;
}

/* grow - double the buckets when the table is full; -ENOMEM keeps the old. */
static int grow(struct xfer *x)
{
	size_t n = x->n_buckets * 2;
	struct req **bh, **bi, **oh = x->by_hash, **oi = x->by_id;
	size_t on = x->n_buckets;

	bh = calloc(n, sizeof(*bh));
	bi = calloc(n, sizeof(*bi));
	if (!bh || !bi) {
		free(bh);
		free(bi);
		return -ENOMEM;
	}
	x->by_hash = bh;
	x->by_id = bi;
	x->n_buckets = n;
	for (size_t i = 0; i < on; i++) {
		for (struct req *r = oh[i], *next; r; r = next) {
			size_t j = hash_slot(x, r->hash);

			next = r->hnext;
			r->hnext = bh[j];
			bh[j] = r;
		}
		for (struct req *r = oi[i], *next; r; r = next) {
			next = r->inext;
			id_add(x, r);
		}
	}
	free(oh);
	free(oi);
	return 0;
}

/* ---- timers and the deferred completion ---- */

static uint64_t timeout_ns(const struct xfer *x)
{
	return (uint64_t)x->p.timeout_s * LOOP_NS_PER_S;
}

/*
 * arm - the timer at the earliest deadline, or earlier: a timer that finds
 * nothing due re-arms itself, so deadlines that move later (every answer
 * moves its owner's) cost nothing here.
 */
static void arm(struct xfer *x)
{
	uint64_t next = UINT64_MAX;

	for (struct link *l = x->cpeers.next; l != &x->cpeers; l = l->next) {
		struct cpeer *cp = OWNER(l, struct cpeer, link);

		if (cp->asked && cp->since + timeout_ns(x) < next)
			next = cp->since + timeout_ns(x);
	}
	if (!list_empty(&x->all)) {
		struct req *head = OWNER(x->all.next, struct req, all);

		if (head->asked + XFER_TIMEOUT_CAP * timeout_ns(x) < next)
			next = head->asked + XFER_TIMEOUT_CAP * timeout_ns(x);
	}
	if (next == UINT64_MAX)
		loop_timer_stop(x->p.loop, x->timer);
	else if (!loop_timer_armed(x->timer) || next < loop_timer_deadline(x->timer))
		loop_timer_rearm_at(x->p.loop, x->timer, next);
}

static void flush_done(struct loop *loop, void *ctx);
static void pump(struct xfer *x, struct cpeer *cp);

static void schedule(struct xfer *x)
{
	if (!x->deferred && loop_defer(x->p.loop, flush_done, x) == 0)
		x->deferred = true;
}

/*
 * finish - @r will not be answered any more (or was): off the timeout list,
 * the peer's queue and window and the id table, onto the done list.  It
 * stays findable by hash until arrived() is called.
 */
static void finish(struct xfer *x, struct req *r, int err)
{
	struct cpeer *cp = r->peer;

	if (r->state == REQ_DONE)
		return;
	if (r->state == REQ_QUEUED) {
		list_del(&r->all);
		list_del(&r->q);
	} else if (r->state == REQ_SENT) {
		list_del(&r->all);
		id_del(x, r);
		cp->in_flight--;
		cp->in_flight_bytes -= r->len;
	} /* CHECKING: out of the list and the window already (check_begin) */
	cp->asked--;
	r->state = REQ_DONE;
	r->err = err;
	list_add_tail(&x->done, &r->q);
	schedule(x);
}

/* fail_peer - finish every request of @cp with @err. */
static void fail_peer(struct xfer *x, struct cpeer *cp, int err)
{
	struct link *l, *next;
	unsigned n = 0;

	for (l = x->all.next; l != &x->all; l = next) {
		struct req *r = OWNER(l, struct req, all);

		next = l->next;
		if (r->peer == cp) {
			finish(x, r, err);
			n++;
		}
	}
	cp->blocked = false;
	if (err == -ETIMEDOUT)
		x->totals.timeouts += n;
	if (n)
		log_info("%u block requests to %s failed: %s", n, cp->hex, bfs_strerror(err));
	arm(x);
}

static void on_timer(struct loop *loop, struct loop_timer *t, void *ctx)
{
	struct xfer *x = ctx;
	uint64_t now = loop_now(loop);
	bool any = false;

	(void)t;
	for (struct link *l = x->cpeers.next; l != &x->cpeers; l = l->next) {
		struct cpeer *cp = OWNER(l, struct cpeer, link);

		if (cp->asked && cp->since + timeout_ns(x) <= now) {
			log_warn("%s answered no block request for %u s", cp->hex, x->p.timeout_s);
			fail_peer(x, cp, -ETIMEDOUT);
			any = true;
		}
	}
	while (!list_empty(&x->all)) {
		struct req *r = OWNER(x->all.next, struct req, all);

		if (r->asked + XFER_TIMEOUT_CAP * timeout_ns(x) > now)
			break;
		log_warn("block %u of %s from %s unanswered for %u s", r->index, r->path, r->peer->hex,
			 XFER_TIMEOUT_CAP * x->p.timeout_s);
		x->totals.timeouts++;
		finish(x, r, -ETIMEDOUT);
		any = true;
	}
	arm(x);
	if (any) { /* the windows have room again: send what waits */
		for (struct link *l = x->cpeers.next; l != &x->cpeers; l = l->next)
			pump(x, OWNER(l, struct cpeer, link));
		kick(x);
	}
}

/* put_batch - the checked blocks of the done list into the store, one transaction. */
static int put_batch(struct xfer *x, struct link *batch)
{
	struct store_txn *t = NULL;
	uint64_t t0 = now_ns();
	bool any = false;
	int rc;

	for (struct link *l = batch->next; l != batch; l = l->next)
		any |= OWNER(l, struct req, q)->data != NULL;
	if (!any)
		return 0;
	rc = store_txn_begin(x->p.store, &t);
	if (rc)
		return rc;
	for (struct link *l = batch->next; l != batch; l = l->next) {
		struct req *r = OWNER(l, struct req, q);
		int prc;

		if (!r->data)
			continue;
		prc = store_block_cache_put(x->p.store, t, r->hash, r->data, r->len);
		if (prc) {
			log_warn("cannot cache a block from %s: %s", r->peer->hex, bfs_strerror(prc));
			r->err = -EIO;
		}
	}
	rc = store_txn_commit_cache(t);
	if (rc)
		log_error("cannot commit fetched blocks to the store: %s", bfs_strerror(rc));
	x->totals.store_commits++;
	x->totals.store_ns += now_ns() - t0;
	return rc;
}

static void req_free(struct xfer *x, struct req *r)
{
	buf_give(x, r->data, r->len);
	free(r);
}

static void flush_done(struct loop *loop, void *ctx)
{
	struct xfer *x = ctx;
	struct link batch;
	int rc;

	(void)loop;
	x->deferred = false;
	if (list_empty(&x->done))
		return;
	rc = put_batch(x, &x->done);
	if (rc == -EBUSY) {
		schedule(x); /* someone holds the store's transaction: next iteration */
		return;
	}
	/* take the whole list: arrived() may ask for more (a new done list) */
	list_init(&batch);
	batch.next = x->done.next;
	batch.prev = x->done.prev;
	batch.next->prev = &batch;
	batch.prev->next = &batch;
	list_init(&x->done);
	while (!list_empty(&batch)) {
		struct req *r = OWNER(batch.next, struct req, q);
		int err = r->err;

		list_del(&r->q);
		unlink_chain(&x->by_hash[hash_slot(x, r->hash)], r, false);
		x->n_reqs--;
		if (err == 0 && rc)
			err = -EIO;
		if (err == 0) {
			x->totals.blocks_fetched++;
			x->totals.bytes_fetched += r->len;
		}
		x->p.arrived(x->p.ctx, r->hash, err);
		req_free(x, r);
	}
}

/* ---- reader side ---- */

static struct cpeer *cpeer_find(struct xfer *x, const uint8_t id[static STORE_PEER_ID_BYTES])
{
	for (struct link *l = x->cpeers.next; l != &x->cpeers; l = l->next) {
		struct cpeer *cp = OWNER(l, struct cpeer, link);

		if (memcmp(cp->id, id, STORE_PEER_ID_BYTES) == 0)
			return cp;
	}
	return NULL;
}

static struct cpeer *cpeer_get(struct xfer *x, const uint8_t id[static STORE_PEER_ID_BYTES])
{
	struct cpeer *cp = cpeer_find(x, id);

	if (cp)
		return cp;
	cp = calloc(1, sizeof(*cp));
	if (!cp)
		return NULL;
	memcpy(cp->id, id, STORE_PEER_ID_BYTES);
	peer_hex(cp->hex, id);
	list_init(&cp->queue);
	list_add_tail(&x->cpeers, &cp->link);
	return cp;
}

/* orphan - close send flow @f; its send_closed is still ours. */
static void orphan(struct xfer *x, struct rtmfp_send *f)
{
	struct orphan *o = calloc(1, sizeof(*o));

	if (!o) {
		log_error("out of memory closing a block flow");
		return; /* its events will be refused: the instance keeps it */
	}
	o->f = f;
	list_add_tail(&x->orphans, &o->link);
	rtmfp_send_close(f, now_ns()); /* may call send_closed at once */
}

/* cpeer_close - drop @cp's flows and fail its requests with @err. */
static void cpeer_close(struct xfer *x, struct cpeer *cp, int err)
{
	struct rtmfp_send *out = cp->out;
	struct rtmfp_recv *in = cp->in;

	cp->out = NULL;
	cp->in = NULL;
	if (in)
		rtmfp_recv_close(in, now_ns());
	if (out)
		orphan(x, out);
	fail_peer(x, cp, err);
}

/* pump - send queued GETs of @cp while the window has room. */
static void pump(struct xfer *x, struct cpeer *cp)
{
	uint8_t buf[XFER_PROTO_GET_MAX_BYTES];

	while (cp->out && !cp->blocked && !list_empty(&cp->queue)) {
		struct req *r = OWNER(cp->queue.next, struct req, q);
		struct xfer_proto_msg m;
		struct buf_writer w;
		int rc;

		if (cp->in_flight > 0 && (cp->in_flight >= XFER_WINDOW_REQS ||
					  cp->in_flight_bytes + r->len > XFER_WINDOW_BYTES))
			break;
		memset(&m, 0, sizeof(m));
		m.req = r->id = x->next_id++;
		memcpy(m.manifest, r->manifest, STORE_HASH_BYTES);
		m.index = r->index;
		memcpy(m.hash, r->hash, STORE_HASH_BYTES);
		m.len = r->len;
		m.path = (const uint8_t *)r->path;
		m.path_len = r->path_len;
		buf_writer_init(&w, buf, sizeof(buf));
		rc = xfer_proto_get_encode(&w, &m);
		if (rc == 0)
			rc = rtmfp_send_write(cp->out, buf, buf_writer_len(&w), now_ns());
		if (rc == -EAGAIN) {
			cp->blocked = true;
			break;
		}
		if (rc) {
			/* the flow failed: its send_closed event fails the peer */
			log_debug("cannot send a GET to %s: %s", cp->hex, bfs_strerror(rc));
			break;
		}
		list_del(&r->q);
		r->state = REQ_SENT;
		id_add(x, r);
		cp->in_flight++;
		cp->in_flight_bytes += r->len;
	}
}

int xfer_fetch(struct xfer *x, const struct xfer_want *w)
{
	size_t path_len = w->path ? strnlen(w->path, STORE_PATH_MAX + 1) : 0;
	uint64_t now = now_ns();
	struct cpeer *cp;
	struct req *r;
	int rc;

	if (w->len == 0 || w->len > STORE_BLOCK_MAX_BYTES || path_len == 0 || path_len > STORE_PATH_MAX)
		return -EINVAL;
	r = find_hash(x, w->hash);
	if (r) {
		r->urgent |= w->urgent;
		return 0;
	}
	if (!allowed(x, w->owner))
		return -ENOTCONN;
	if (x->n_reqs >= x->n_buckets && grow(x))
		return -ENOMEM;
	cp = cpeer_get(x, w->owner);
	if (!cp)
		return -ENOMEM;
	if (!cp->out) {
		cp->blocked = false;
		rc = x->p.open_flow(x->p.ctx, cp->id, (const uint8_t *)XFER_FLOW_METADATA, META_LEN, &cp->out);
		if (rc) {
			cp->out = NULL;
			log_info("cannot open a block flow to %s: %s", cp->hex, bfs_strerror(rc));
			return rc == -ENOMEM ? rc : -ENOTCONN;
		}
	}
	r = calloc(1, sizeof(*r) + path_len + 1);
	if (!r)
		return -ENOMEM;
	r->peer = cp;
	r->asked = now;
	r->state = REQ_QUEUED;
	memcpy(r->manifest, w->manifest, STORE_HASH_BYTES);
	memcpy(r->hash, w->hash, STORE_HASH_BYTES);
	r->index = w->index;
	r->len = w->len;
	r->urgent = w->urgent;
	r->path_len = (uint16_t)path_len;
	memcpy(r->path, w->path, path_len);
	{
		size_t i = hash_slot(x, r->hash);

		r->hnext = x->by_hash[i];
		x->by_hash[i] = r;
	}
	x->n_reqs++;
	list_add_tail(&x->all, &r->all);
	list_add_tail(&cp->queue, &r->q);
	stat_begin(&cp->st, cp->asked == 0, now);
	if (cp->asked == 0)
		cp->since = now; /* busy from now: silence counts from here */
	cp->asked++;
	cp->st.total += r->len;
	arm(x);
	pump(x, cp);
	kick(x);
	return 0;
}

/* block_good - @r's answer has the length and hash asked for (any thread). */
static bool block_good(const struct req *r)
{
	uint8_t got[STORE_HASH_BYTES];

	manifest_block_hash(got, r->data, r->len);
	return sodium_memcmp(got, r->hash, STORE_HASH_BYTES) == 0;
}

/*
 * checked - the verdict on @r's answer is in (r->good): a good block goes
 * to the reads waiting for it (delivered), then to the store (finish); a
 * bad one is dropped.
 */
static void checked(struct xfer *x, struct req *r)
{
	struct cpeer *cp = r->peer;

	if (!r->good) {
		x->totals.blocks_bad++;
		log_warn("block %u of %s from %s does not match its hash: dropped", r->index, r->path, cp->hex);
		buf_give(x, r->data, r->len);
		r->data = NULL;
		finish(x, r, -EIO);
		return;
	}
	if (x->p.delivered)
		x->p.delivered(x->p.ctx, r->hash, r->data, r->len);
	stat_done(&cp->st, r->len, now_ns());
	finish(x, r, 0);
}

/* ---- the checker thread ---- */

static void *checker_main(void *arg)
{
	struct checker *ck = arg;
	const uint64_t one = 1;

	pthread_mutex_lock(&ck->mu);
	for (;;) {
		struct req *r;
		bool good;

		while (!ck->in && !ck->stop)
			pthread_cond_wait(&ck->cv, &ck->mu);
		if (ck->stop)
			break;
		r = ck->in;
		ck->in = r->cnext;
		if (!ck->in)
			ck->in_tail = &ck->in;
		pthread_mutex_unlock(&ck->mu);
		good = block_good(r); /* the loop leaves a CHECKING request alone */
		pthread_mutex_lock(&ck->mu);
		r->good = good;
		r->cnext = NULL;
		*ck->out_tail = r;
		ck->out_tail = &r->cnext;
		if (write(ck->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			log_error("the block checker cannot wake the loop: %s", strerror(errno));
	}
	pthread_mutex_unlock(&ck->mu);
	return NULL;
}

/* check_begin - out of the window (more GETs may go) and to the checker. */
static void check_begin(struct xfer *x, struct req *r)
{
	struct checker *ck = x->ck;
	struct cpeer *cp = r->peer;

	list_del(&r->all);
	id_del(x, r);
	cp->in_flight--;
	cp->in_flight_bytes -= r->len;
	r->state = REQ_CHECKING;
	r->cnext = NULL;
	x->ck_held++;
	pthread_mutex_lock(&ck->mu);
	*ck->in_tail = r;
	ck->in_tail = &r->cnext;
	pthread_cond_signal(&ck->cv);
	pthread_mutex_unlock(&ck->mu);
}

/* on_checked - the checker handed requests back: act on each verdict. */
static void on_checked(struct loop *loop, struct loop_fd *h, int fd, uint32_t events, void *ctx)
{
	struct xfer *x = ctx;
	struct checker *ck = x->ck;
	struct req *list;
	uint64_t n;

	(void)loop;
	(void)h;
	(void)events;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_debug("block checker eventfd: %s", strerror(errno));
	pthread_mutex_lock(&ck->mu);
	list = ck->out;
	ck->out = NULL;
	ck->out_tail = &ck->out;
	pthread_mutex_unlock(&ck->mu);
	while (list) {
		struct req *r = list;

		list = r->cnext;
		r->cnext = NULL;
		x->ck_held--;
		checked(x, r);
	}
	arm(x);
	kick(x);
}

/* checker_free - stop and join the thread; the requests it holds are freed. */
static void checker_free(struct xfer *x)
{
	struct checker *ck = x->ck;
	struct req *lists[2];

	if (!ck)
		return;
	pthread_mutex_lock(&ck->mu);
	ck->stop = true;
	pthread_cond_signal(&ck->cv);
	pthread_mutex_unlock(&ck->mu);
	pthread_join(ck->thread, NULL);
	loop_fd_remove(x->p.loop, ck->lfd);
	close(ck->efd);
	lists[0] = ck->in;
	lists[1] = ck->out;
	for (int i = 0; i < 2; i++)
		while (lists[i]) {
			struct req *r = lists[i];

			lists[i] = r->cnext;
			req_free(x, r);
		}
	pthread_cond_destroy(&ck->cv);
	pthread_mutex_destroy(&ck->mu);
	free(ck);
	x->ck = NULL;
}

/*
 * checker_new - start the checker; on failure blocks are checked on the
 * loop (slower, same result).  Signals stay with the loop's thread.
 */
static void checker_new(struct xfer *x)
{
	struct checker *ck = calloc(1, sizeof(*ck));
	sigset_t all, old;
	int rc = -ENOMEM;

	if (!ck)
		goto fail;
	ck->in_tail = &ck->in;
	ck->out_tail = &ck->out;
	ck->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ck->efd < 0) {
		rc = -errno;
		goto fail;
	}
	rc = loop_fd_add(x->p.loop, ck->efd, LOOP_IN, on_checked, x, &ck->lfd);
	if (rc)
		goto fail_fd;
	pthread_mutex_init(&ck->mu, NULL);
	pthread_cond_init(&ck->cv, NULL);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&ck->thread, NULL, checker_main, ck);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc == 0) {
		x->ck = ck;
		return;
	}
	pthread_cond_destroy(&ck->cv);
	pthread_mutex_destroy(&ck->mu);
	loop_fd_remove(x->p.loop, ck->lfd);
fail_fd:
	close(ck->efd);
fail:
	free(ck);
	log_info("blocks are checked on the loop's thread: %s", bfs_strerror(rc));
}

/* answer - a BLOCK or ERROR on @cp's return flow. */
static void answer(struct xfer *x, struct cpeer *cp, const uint8_t *msg, size_t len)
{
	struct xfer_proto_msg m;
	struct req *r;
	int rc;

	rc = xfer_proto_decode(&m, msg, len);
	if (rc == 0 && m.type == XFER_MSG_GET)
		rc = BFS_EPROTO;
	if (rc) {
		log_warn("a bad block answer from %s: %s; closing its flows", cp->hex, bfs_strerror(rc));
		cpeer_close(x, cp, -EIO);
		return;
	}
	cp->since = now_ns(); /* it answers */
	r = find_id(x, m.req);
	if (!r || r->peer != cp) {
		log_debug("an answer from %s to no request in flight (%u)", cp->hex, m.req);
		return;
	}
	if (m.type == XFER_MSG_ERROR) {
		x->totals.errors_received++;
		log_warn("%s refused block %u of %s (code %u)", cp->hex, r->index, r->path, m.code);
		finish(x, r, -EIO);
	} else if (m.data_len != r->len) {
		r->good = false;
		checked(x, r);
	} else if (!(r->data = buf_take(x, r->len))) {
		finish(x, r, -ENOMEM);
	} else {
		memcpy(r->data, m.data, r->len);
		/*
		 * The checker, unless a read waits for this block and the
		 * checker is idle: waking a thread costs more than the hash
		 * when the cores are busy (time to first byte).
		 */
		if (x->ck && (!r->urgent || x->ck_held > 0)) {
			check_begin(x, r);
		} else {
			r->good = block_good(r);
			checked(x, r);
		}
	}
	arm(x);
	pump(x, cp);
}

/* ---- owner side ---- */

static struct manifest *manifest_cached(struct xfer *x, const uint8_t hash[static STORE_HASH_BYTES])
{
	struct mcache *victim = &x->mc[0];
	struct manifest *m = NULL;
	uint8_t *bytes = NULL;
	size_t len;

	for (int i = 0; i < MANIFEST_CACHE; i++) {
		struct mcache *c = &x->mc[i];

		if (c->m && memcmp(c->hash, hash, STORE_HASH_BYTES) == 0) {
			c->used = ++x->tick;
			return c->m;
		}
		if (!c->m || c->used < victim->used)
			victim = c;
	}
	if (store_manifest_get(x->p.store, NULL, hash, &bytes, &len) != 0)
		return NULL;
	if (manifest_decode(&m, bytes, len) != 0)
		m = NULL;
	free(bytes);
	if (!m)
		return NULL;
	manifest_free(victim->m);
	victim->m = m;
	memcpy(victim->hash, hash, STORE_HASH_BYTES);
	victim->used = ++x->tick;
	return m;
}

static int object_fd(struct xfer *x, const char *object)
{
	struct fdcache *victim = &x->fc[0];
	char path[PATH_MAX];
	int fd;

	for (int i = 0; i < FD_CACHE; i++) {
		struct fdcache *c = &x->fc[i];

		if (c->fd >= 0 && strcmp(c->object, object) == 0) {
			c->used = ++x->tick;
			return c->fd;
		}
		if (c->fd < 0 || c->used < victim->used)
			victim = c;
	}
	if (snprintf(path, sizeof(path), "%s/%s/%s", x->home, OBJECTS_DIR, object) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (victim->fd >= 0)
		close(victim->fd);
	victim->fd = fd;
	snprintf(victim->object, sizeof(victim->object), "%s", object);
	victim->used = ++x->tick;
	return fd;
}

/* check - may @g be served to @sf's peer?  0 and the block's place, or a code. */
static uint8_t check(struct xfer *x, struct sflow *sf, const struct sget *g, struct store_block *b)
{
	struct store_entry *e = &x->entry;
	struct manifest_block mb;
	struct manifest *m;
	int rc;

	if (!allowed(x, sf->id))
		return XFER_ERR_REFUSED;
	rc = store_entry_get(x->p.store, NULL, sf->id, g->path, e);
	if (rc)
		return XFER_ERR_NOT_FOUND;
	if (e->type != STORE_ENTRY_FILE || e->deleted)
		return XFER_ERR_NOT_FOUND;
	if (memcmp(e->manifest, g->manifest, STORE_HASH_BYTES) != 0)
		return XFER_ERR_CHANGED;
	if (memcmp(e->owner, x->p.id->peer_id, STORE_PEER_ID_BYTES) != 0)
		return XFER_ERR_NOT_FOUND; /* the buddy's own version: not ours to serve */
	m = manifest_cached(x, g->manifest);
	if (!m)
		return XFER_ERR_NOT_FOUND;
	if (manifest_block(m, g->index, &mb) != 0 || mb.len != g->len ||
	    memcmp(mb.hash, g->hash, STORE_HASH_BYTES) != 0)
		return XFER_ERR_REFUSED;
	rc = store_block_get(x->p.store, NULL, g->hash, b, NULL, 0);
	if (rc || b->kind != STORE_BLOCK_LOCAL || b->length != g->len)
		return XFER_ERR_NOT_FOUND;
	return 0;
}

static int held_room(struct sflow *sf, size_t n)
{
	uint8_t *p;

	if (sf->held_cap >= n)
		return 0;
	p = realloc(sf->held, n);
	if (!p)
		return -ENOMEM;
	sf->held = p;
	sf->held_cap = n;
	return 0;
}

/* prepare - the answer to @g into sf->held. */
static int prepare(struct xfer *x, struct sflow *sf, const struct sget *g)
{
	struct store_block b;
	struct buf_writer w;
	uint8_t code = check(x, sf, g, &b);
	size_t done = 0;
	int fd, rc;

	if (code == 0) {
		rc = held_room(sf, XFER_PROTO_BLOCK_HEADER_BYTES + (size_t)g->len);
		if (rc)
			return rc;
		fd = object_fd(x, b.object);
		while (fd >= 0 && done < g->len) {
			ssize_t n = pread(fd, sf->held + XFER_PROTO_BLOCK_HEADER_BYTES + done, g->len - done,
					  (off_t)(b.offset + done));

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				fd = n < 0 ? -errno : -EIO;
				break;
			}
			done += (size_t)n;
		}
		if (fd < 0) {
			log_error("cannot read block %u of %s from object %s: %s", g->index, g->path, b.object,
				  bfs_strerror(fd));
			code = XFER_ERR_NOT_FOUND;
		}
	}
	if (code) {
		rc = held_room(sf, XFER_PROTO_ERROR_BYTES);
		if (rc)
			return rc;
		buf_writer_init(&w, sf->held, XFER_PROTO_ERROR_BYTES);
		xfer_proto_error_encode(&w, g->req, code);
		sf->held_len = XFER_PROTO_ERROR_BYTES;
		x->totals.errors_sent++;
		log_info("refused block %u of %s to %s (code %u)", g->index, g->path, sf->hex, code);
		return 0;
	}
	xfer_proto_block_header(sf->held, g->req);
	if (x->p.test_tamper)
		sf->held[XFER_PROTO_BLOCK_HEADER_BYTES + g->len / 2] ^= 0x01;
	sf->held_len = XFER_PROTO_BLOCK_HEADER_BYTES + g->len;
	return 0;
}

static void sflow_free(struct xfer *x, struct sflow *sf)
{
	while (!list_empty(&sf->gets)) {
		struct sget *g = OWNER(sf->gets.next, struct sget, link);

		list_del(&g->link);
		free(g);
	}
	list_del(&sf->link);
	x->n_sflows--;
	free(sf->held);
	free(sf);
}

/* sflow_close - drop @sf: reject its GET flow, close our answers. */
static void sflow_close(struct xfer *x, struct sflow *sf)
{
	struct rtmfp_send *out = sf->out;
	struct rtmfp_recv *in = sf->in;

	sf->out = NULL;
	sf->in = NULL;
	sflow_free(x, sf);
	if (in)
		rtmfp_recv_close(in, now_ns());
	if (out)
		orphan(x, out);
}

/* serve - answer queued GETs of @sf in order until the flow is full. */
static void serve(struct xfer *x, struct sflow *sf)
{
	while (sf->out && (sf->has_held || !list_empty(&sf->gets))) {
		struct sget *g = OWNER(sf->gets.next, struct sget, link);
		int rc;

		if (!sf->has_held) {
			rc = prepare(x, sf, g);
			if (rc) {
				log_error("cannot answer %s: %s", sf->hex, bfs_strerror(rc));
				sflow_close(x, sf);
				return;
			}
			sf->has_held = true;
		}
		rc = rtmfp_send_write(sf->out, sf->held, sf->held_len, now_ns());
		if (rc == -EAGAIN)
			return; /* the writable event brings us back */
		if (rc) {
			log_info("the block flow to %s failed: %s", sf->hex, bfs_strerror(rc));
			sflow_close(x, sf);
			return;
		}
		sf->has_held = false;
		if (sf->held[1] == XFER_MSG_BLOCK) {
			x->totals.blocks_served++;
			x->totals.bytes_served += g->len;
		}
		stat_done(&sf->st, g->len, now_ns());
		list_del(&g->link);
		sf->n_gets--;
		free(g);
		if (sf->held_cap > (1u << 20) && list_empty(&sf->gets)) {
			free(sf->held); /* keep no big buffer for an idle flow */
			sf->held = NULL;
			sf->held_cap = 0;
		}
	}
}

static void on_get(struct xfer *x, struct sflow *sf, const uint8_t *msg, size_t len)
{
	struct xfer_proto_msg m;
	struct sget *g;
	int rc;

	rc = xfer_proto_decode(&m, msg, len);
	if (rc == 0 && m.type != XFER_MSG_GET)
		rc = BFS_EPROTO;
	if (rc == 0 && sf->n_gets >= XFER_SERVE_QUEUE_MAX)
		rc = -ENOBUFS;
	if (rc) {
		log_warn("a bad block request from %s: %s; closing its flow", sf->hex, bfs_strerror(rc));
		sflow_close(x, sf);
		return;
	}
	g = malloc(sizeof(*g) + m.path_len + 1);
	if (!g) {
		sflow_close(x, sf);
		return;
	}
	g->req = m.req;
	g->index = m.index;
	g->len = m.len;
	memcpy(g->manifest, m.manifest, STORE_HASH_BYTES);
	memcpy(g->hash, m.hash, STORE_HASH_BYTES);
	memcpy(g->path, m.path, m.path_len);
	g->path[m.path_len] = '\0';
	stat_begin(&sf->st, sf->n_gets == 0, now_ns());
	sf->st.total += m.len;
	list_add_tail(&sf->gets, &g->link);
	sf->n_gets++;
	if (sf->n_gets == 1 && !sf->has_held)
		serve(x, sf);
}

/* ---- hooks ---- */

static struct cpeer *cpeer_by_out(struct xfer *x, const struct rtmfp_send *f)
{
	for (struct link *l = x->cpeers.next; l != &x->cpeers; l = l->next) {
		struct cpeer *cp = OWNER(l, struct cpeer, link);

		if (cp->out == f)
			return cp;
	}
	return NULL;
}

static struct cpeer *cpeer_by_in(struct xfer *x, const struct rtmfp_recv *f)
{
	for (struct link *l = x->cpeers.next; l != &x->cpeers; l = l->next) {
		struct cpeer *cp = OWNER(l, struct cpeer, link);

		if (cp->in == f)
			return cp;
	}
	return NULL;
}

static struct sflow *sflow_by_in(struct xfer *x, const struct rtmfp_recv *f)
{
	for (struct link *l = x->sflows.next; l != &x->sflows; l = l->next) {
		struct sflow *sf = OWNER(l, struct sflow, link);

		if (sf->in == f)
			return sf;
	}
	return NULL;
}

static struct sflow *sflow_by_out(struct xfer *x, const struct rtmfp_send *f)
{
	for (struct link *l = x->sflows.next; l != &x->sflows; l = l->next) {
		struct sflow *sf = OWNER(l, struct sflow, link);

		if (sf->out == f)
			return sf;
	}
	return NULL;
}

static struct orphan *orphan_find(struct xfer *x, const struct rtmfp_send *f)
{
	for (struct link *l = x->orphans.next; l != &x->orphans; l = l->next) {
		struct orphan *o = OWNER(l, struct orphan, link);

		if (o->f == f)
			return o;
	}
	return NULL;
}

void xfer_on_session_closed(struct xfer *x, struct rtmfp_session *ss, int err)
{
	/* The session's flows got their closed events first: nothing is left. */
	(void)x;
	(void)ss;
	(void)err;
}

static void accept_requests(struct xfer *x, struct rtmfp_recv *f)
{
	struct rtmfp_session *ss = rtmfp_recv_session(f);
	uint8_t id[STORE_PEER_ID_BYTES];
	char hex[ID_HEX];
	struct sflow *sf;

	if (!ss || rtmfp_session_far_peer_id(ss, id) != 0) {
		x->totals.flows_refused++;
		return;
	}
	peer_hex(hex, id);
	if (!allowed(x, id)) {
		x->totals.flows_refused++;
		log_warn("refused a block flow from %s: not a mutual buddy", hex);
		return;
	}
	if (x->n_sflows >= XFER_SERVE_FLOWS_MAX) {
		x->totals.flows_refused++;
		log_warn("refused a block flow from %s: %u flows already", hex, x->n_sflows);
		return;
	}
	sf = calloc(1, sizeof(*sf));
	if (!sf)
		return;
	if (rtmfp_recv_open_return(f, &sf->out, (const uint8_t *)XFER_FLOW_METADATA, META_LEN, now_ns()) != 0) {
		free(sf);
		return;
	}
	memcpy(sf->id, id, sizeof(id));
	memcpy(sf->hex, hex, sizeof(hex));
	sf->in = f;
	list_init(&sf->gets);
	list_add_tail(&x->sflows, &sf->link);
	x->n_sflows++;
	rtmfp_recv_accept(f);
	log_debug("serving blocks to %s", hex);
}

bool xfer_on_recv_flow(struct xfer *x, struct rtmfp_recv *f, const uint8_t *meta, size_t meta_len,
		       struct rtmfp_send *assoc)
{
	struct cpeer *cp;

	if (meta_len != META_LEN || memcmp(meta, XFER_FLOW_METADATA, META_LEN) != 0)
		return false;
	if (!assoc) {
		accept_requests(x, f);
		return true;
	}
	cp = cpeer_by_out(x, assoc);
	if (!cp || cp->in)
		return true; /* not accepted: rejected */
	cp->in = f;
	rtmfp_recv_accept(f);
	return true;
}

bool xfer_on_message(struct xfer *x, struct rtmfp_recv *f, const uint8_t *msg, size_t len)
{
	struct cpeer *cp = cpeer_by_in(x, f);
	struct sflow *sf;

	if (cp) {
		answer(x, cp, msg, len);
		return true;
	}
	sf = sflow_by_in(x, f);
	if (sf) {
		on_get(x, sf, msg, len);
		return true;
	}
	return false;
}

bool xfer_on_recv_closed(struct xfer *x, struct rtmfp_recv *f, int err)
{
	struct cpeer *cp = cpeer_by_in(x, f);
	struct sflow *sf;

	if (cp) {
		cp->in = NULL;
		log_debug("the block answers of %s ended: %s", cp->hex, bfs_strerror(err));
		cpeer_close(x, cp, -ENOTCONN);
		return true;
	}
	sf = sflow_by_in(x, f);
	if (sf) {
		sf->in = NULL; /* the reader is done: drop what it still asked */
		sflow_close(x, sf);
		return true;
	}
	return false;
}

bool xfer_on_writable(struct xfer *x, struct rtmfp_send *f)
{
	struct cpeer *cp = cpeer_by_out(x, f);
	struct sflow *sf;

	if (cp) {
		cp->blocked = false;
		pump(x, cp);
		return true;
	}
	sf = sflow_by_out(x, f);
	if (sf) {
		serve(x, sf);
		return true;
	}
	return orphan_find(x, f) != NULL;
}

bool xfer_on_send_closed(struct xfer *x, struct rtmfp_send *f, int err)
{
	struct cpeer *cp = cpeer_by_out(x, f);
	struct orphan *o;
	struct sflow *sf;

	if (cp) {
		cp->out = NULL;
		if (err == -ECONNREFUSED)
			log_warn("%s refused our block requests", cp->hex);
		cpeer_close(x, cp, err == -ECONNREFUSED ? -EIO : -ENOTCONN);
		return true;
	}
	sf = sflow_by_out(x, f);
	if (sf) {
		sf->out = NULL;
		sflow_close(x, sf);
		return true;
	}
	o = orphan_find(x, f);
	if (o) {
		list_del(&o->link);
		free(o);
		return true;
	}
	return false;
}

void xfer_peer_down(struct xfer *x, const uint8_t peer_id[static STORE_PEER_ID_BYTES])
{
	struct cpeer *cp = cpeer_find(x, peer_id);
	struct link *l, *next;

	if (cp)
		cpeer_close(x, cp, -ENOTCONN);
	for (l = x->sflows.next; l != &x->sflows; l = next) {
		struct sflow *sf = OWNER(l, struct sflow, link);

		next = l->next;
		if (memcmp(sf->id, peer_id, STORE_PEER_ID_BYTES) == 0)
			sflow_close(x, sf);
	}
	kick(x);
}

/* ---- stats ---- */

static bool stat_out(const struct xstat *st, unsigned in_flight, const uint8_t id[static STORE_PEER_ID_BYTES],
		     bool serving, uint64_t now, struct xfer_stat *o)
{
	if (in_flight == 0 && (st->last_active == 0 || now - st->last_active > STAT_KEEP_NS))
		return false;
	memset(o, 0, sizeof(*o));
	memcpy(o->peer, id, STORE_PEER_ID_BYTES);
	o->serving = serving;
	o->bytes_done = st->done;
	o->bytes_total = st->total;
	o->in_flight = in_flight;
	o->rate_bytes_s = now - st->last_active > 2 * RATE_WINDOW_NS ? 0 : st->rate;
	if (o->rate_bytes_s == 0 && now > st->win_start && now - st->last_active <= 2 * RATE_WINDOW_NS)
		o->rate_bytes_s = st->win_bytes * LOOP_NS_PER_S / (now - st->win_start);
	return true;
}

size_t xfer_stats(const struct xfer *x, struct xfer_stat *out, size_t cap)
{
	uint64_t now = now_ns();
	size_t n = 0;

	for (const struct link *l = x->cpeers.next; l != &x->cpeers && n < cap; l = l->next) {
		const struct cpeer *cp = OWNER(l, struct cpeer, link);

		n += stat_out(&cp->st, cp->asked, cp->id, false, now, &out[n]);
	}
	for (const struct link *l = x->sflows.next; l != &x->sflows && n < cap; l = l->next) {
		const struct sflow *sf = OWNER(l, struct sflow, link);

		n += stat_out(&sf->st, sf->n_gets, sf->id, true, now, &out[n]);
	}
	return n;
}

void xfer_totals(const struct xfer *x, struct xfer_totals *out)
{
	*out = x->totals;
}

/* ---- life ---- */

int xfer_new(struct xfer **out, const struct xfer_params *p)
{
	struct xfer *x;
	int rc = -ENOMEM;

	*out = NULL;
	if (!p->loop || !p->store || !p->id || !p->home || !p->open_flow || !p->arrived)
		return -EINVAL;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->p = *p;
	if (!x->p.timeout_s)
		x->p.timeout_s = XFER_TIMEOUT_DEFAULT_S;
	list_init(&x->all);
	list_init(&x->done);
	list_init(&x->cpeers);
	list_init(&x->sflows);
	list_init(&x->orphans);
	for (int i = 0; i < FD_CACHE; i++)
		x->fc[i].fd = -1;
	x->n_buckets = 256;
	x->next_id = 1;
	randombytes_buf(x->hkey, sizeof(x->hkey));
	x->home = strdup(p->home);
	x->by_hash = calloc(x->n_buckets, sizeof(*x->by_hash));
	x->by_id = calloc(x->n_buckets, sizeof(*x->by_id));
	if (!x->home || !x->by_hash || !x->by_id)
		goto fail;
	rc = loop_timer_new(p->loop, on_timer, x, &x->timer);
	if (rc)
		goto fail;
	checker_new(x);
	*out = x;
	return 0;
fail:
	xfer_free(x);
	return rc;
}

void xfer_free(struct xfer *x)
{
	if (!x)
		return;
	checker_free(x);
	if (x->timer)
		loop_timer_cancel(x->p.loop, x->timer);
	loop_defer_cancel(x->p.loop, flush_done, x);
	while (!list_empty(&x->all)) {
		struct req *r = OWNER(x->all.next, struct req, all);

		list_del(&r->all);
		req_free(x, r);
	}
	while (!list_empty(&x->done)) {
		struct req *r = OWNER(x->done.next, struct req, q);

		list_del(&r->q);
		req_free(x, r);
	}
	while (!list_empty(&x->cpeers)) {
		struct cpeer *cp = OWNER(x->cpeers.next, struct cpeer, link);

		list_del(&cp->link);
		free(cp);
	}
	while (!list_empty(&x->sflows))
		sflow_free(x, OWNER(x->sflows.next, struct sflow, link));
	while (!list_empty(&x->orphans)) {
		struct orphan *o = OWNER(x->orphans.next, struct orphan, link);

		list_del(&o->link);
		free(o);
	}
	for (int i = 0; i < MANIFEST_CACHE; i++)
		manifest_free(x->mc[i].m);
	while (x->n_pool)
		free(x->pool[--x->n_pool]);
	for (int i = 0; i < FD_CACHE; i++)
		if (x->fc[i].fd >= 0)
			close(x->fc[i].fd);
	free(x->by_hash);
	free(x->by_id);
	free(x->home);
	free(x);
}
