/*
 * sync.c - the folder protocol's control part (sync.h has the picture,
 * sync_proto.h the messages, docs/PROTOCOL.md the rules).
 *
 * Per buddy: our send flow (out) and the buddy's flow to us (in), the
 * HELLO state of both directions, a heartbeat, and a queue of messages to
 * write on out (HELLO, index entries, pushes, acks, resend requests,
 * pings).  Entries are encoded when they are written, from the store as
 * it is then, so a queue item is only a path; consecutive entries (or
 * acks) go out as one batch message.  When the flow is full (-EAGAIN) the
 * items wait for the writable event; one pump encodes at most send_budget
 * items, then yields to the next loop turn.
 *
 * Receiving.  Messages other than HELLO are checked (decoded), copied to
 * the buddy's inbox and applied at the end of the loop turn (drain): at
 * most apply_budget items, entries and acks across messages, in ONE store
 * transaction; its acks, pushes and entry_changed calls follow the commit
 * (nothing is acknowledged before it is durable), and the rest of the
 * inbox waits for the next turn, so the loop keeps serving heartbeats,
 * FUSE and the control socket during a 10,000-entry reconciliation.
 *
 * Versions.  Besides the entries (which fs rewrites on every local
 * change, counting entry.version up by one and recording the base of the
 * change), the store keeps per (buddy, path) the version both sides last
 * agreed on (store_synced: its digest, its version vector and the local
 * version counter then).  The vector of the local entry L is derived from
 * it (local_vv): the agreed vector when L is the agreed version, else the
 * agreed vector with our own component raised by the local writes since,
 * and the buddy's lowered by one when L's write began before the agreed
 * version arrived; with no agreed record, our component is L.version.  A
 * remote entry R carries its vector.  R dominates L: take R; L dominates
 * R: keep L; neither: a conflict, resolved by the same rule on both sides
 * (entry_order), the loser kept as "NAME (conflict from WHO DATE).EXT".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "buddyfs/buf.h"
#include "buddyfs/err.h"
#include "buddyfs/identity.h"
#include "buddyfs/log.h"
#include "buddyfs/loop.h"
#include "buddyfs/manifest.h"
#include "buddyfs/rtmfp.h"
#include "buddyfs/rtmfp_posix.h"
#include "buddyfs/store.h"
#include "buddyfs/sync.h"
#include "buddyfs/sync_proto.h"

#define ID_BYTES STORE_PEER_ID_BYTES
#define RETRY_NS (2 * LOOP_NS_PER_S)          /* reconnect after a flow failed */
#define REFUSED_RETRY_NS (30 * LOOP_NS_PER_S) /* after the buddy refused us */
#define HEX_SHORT 8                            /* hex digits of a peer id in logs */
#define HEARTBEAT_MS 1000
#define DEAD_MS 4000

struct qmsg {
	uint8_t type;        /* enum sync_msg_type */
	bool manifest;       /* INDEX/PUSH: carry the manifest even when agreed */
	char *path;          /* INDEX, PUSH, ACK, RESEND */
	uint8_t digest[SYNC_DIGEST_BYTES]; /* ACK */
	uint64_t vv[2];      /* ACK */
	uint64_t count;      /* INDEX_END */
};

struct buddy {
	struct sync *s;
	uint8_t id[ID_BYTES];
	char name[STORE_NAME_MAX + 1]; /* from its HELLO, checked; "" until then */
	bool online;                   /* presence says so */
	bool hello_sent, hello_got, far_has_us, up;
	bool alive;                    /* heard from within dead_ms (while up) */
	uint64_t last_heard;           /* loop_now() of its last message */
	struct loop_timer *beat;
	struct rtmfp_send *out;
	struct rtmfp_recv *in;
	struct qmsg *q;
	size_t q_head, q_len, q_cap;
	struct loop_timer *retry;
	bool pump_deferred;            /* a pump waits for the end of the loop iteration */
	bool pumping;                  /* inside pump(): events of the write must not recurse */
	/* received messages not yet applied (copies), oldest at in_head */
	struct inmsg *inq;
	size_t in_head, in_len, in_cap;
	struct sync_msg *cur;          /* the head message, decoded, being applied */
	size_t cur_done;               /* its items handled so far */
	bool drain_deferred;           /* a drain waits for the end of the loop iteration */
	struct sync_buddy_stats st;
};

/* A received message waiting to be applied. */
struct inmsg {
	uint8_t *bytes;
	size_t len;
};

struct sync {
	struct sync_params p;
	struct buddy **b;
	size_t n, cap;
	struct rtmfp_send **closing; /* send flows closed by us, ours until send_closed */
	size_t n_closing, cap_closing;
	uint64_t flows_refused;
};

/* The working set of one incoming entry (big: kept off the stack). */
struct apply {
	struct store_entry r, l, c;
	struct store_synced a;
	char path[STORE_PATH_MAX + 1];
};

enum decision { KEEP, TAKE, AGREE, CONFLICT };

static uint64_t now(void)
{
	return rtmfp_posix_now();
}

static void short_hex(char out[HEX_SHORT + 1], const uint8_t *id)
{
	char hex[2 * ID_BYTES + 1];

	buf_hex(hex, id, ID_BYTES);
	memcpy(out, hex, HEX_SHORT);
	out[HEX_SHORT] = '\0';
}

static const char *who(const struct buddy *b, char buf[HEX_SHORT + 1])
{
	if (b->name[0])
		return b->name;
	short_hex(buf, b->id);
	return buf;
}

static void kick(struct sync *s)
{
	if (s->p.kick)
		s->p.kick(s->p.ctx);
}

/* ---- buddies ---- */

static struct buddy *find(const struct sync *s, const uint8_t *id)
{
	for (size_t i = 0; i < s->n; i++)
		if (sodium_memcmp(s->b[i]->id, id, ID_BYTES) == 0)
			return s->b[i];
	return NULL;
}

static struct buddy *get(struct sync *s, const uint8_t *id)
{
	struct buddy *b = find(s, id);

	if (b)
		return b;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		struct buddy **v = realloc(s->b, cap * sizeof(*v));

		if (!v)
			return NULL;
		s->b = v;
		s->cap = cap;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->s = s;
	memcpy(b->id, id, ID_BYTES);
	s->b[s->n++] = b;
	return b;
}

/* is_buddy - we have added @id (the store says so). */
static bool is_buddy(struct sync *s, const uint8_t *id, struct store_peer *p)
{
	return store_peer_get(s->p.store, id, p) == 0 && p->buddy == STORE_BUDDY_ADDED;
}

/* set_mutual - record in the store whether the buddy has added us. */
static void set_mutual(struct sync *s, const uint8_t *id, bool mutual)
{
	struct store_peer *p = malloc(sizeof(*p));
	int rc;

	if (!p)
		return;
	if (store_peer_get(s->p.store, id, p) == 0 && p->mutual != mutual) {
		p->mutual = mutual;
		rc = store_peer_put(s->p.store, p);
		if (rc)
			log_warn("sync: cannot record the buddy state of %s: %s", p->name, bfs_strerror(rc));
	}
	free(p);
}

/* ---- the queue ---- */

static void q_clear(struct buddy *b)
{
	for (size_t i = b->q_head; i < b->q_len; i++)
		free(b->q[i].path);
	b->q_head = b->q_len = 0;
	b->st.queued = 0;
}

/* q_push - queue @m (its path is copied); front: before everything else. */
static int q_push(struct buddy *b, const struct qmsg *m, const char *path)
{
	struct qmsg *slot;

	if (b->q_head == b->q_len)
		b->q_head = b->q_len = 0;
	if (b->q_head > 0 && b->q_len == b->q_cap) {
		memmove(b->q, b->q + b->q_head, (b->q_len - b->q_head) * sizeof(*b->q));
		b->q_len -= b->q_head;
		b->q_head = 0;
	}
	if (b->q_len == b->q_cap) {
		size_t cap = b->q_cap ? b->q_cap * 2 : 64;
		struct qmsg *v = realloc(b->q, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		b->q = v;
		b->q_cap = cap;
	}
	slot = &b->q[b->q_len];
	*slot = *m;
	slot->path = NULL;
	if (path && !(slot->path = strdup(path)))
		return -ENOMEM;
	b->q_len++;
	b->st.queued = b->q_len - b->q_head;
	return 0;
}

static void q_pop(struct buddy *b)
{
	free(b->q[b->q_head].path);
	b->q_head++;
	b->st.queued = b->q_len - b->q_head;
}

/* ---- the inbox: received messages, applied in bounded turns ---- */

static void in_pop(struct buddy *b)
{
	free(b->inq[b->in_head].bytes);
	b->inq[b->in_head].bytes = NULL;
	b->in_head++;
	free(b->cur);
	b->cur = NULL;
	b->cur_done = 0;
	if (b->in_head == b->in_len)
		b->in_head = b->in_len = 0;
	b->st.inbox = b->in_len - b->in_head;
}

static void in_clear(struct buddy *b)
{
	while (b->in_head < b->in_len)
		in_pop(b);
	free(b->cur);
	b->cur = NULL;
	b->cur_done = 0;
}

/* in_push - keep a copy of received message @msg for the next drain. */
static int in_push(struct buddy *b, const uint8_t *msg, size_t len)
{
	struct inmsg *slot;

	if (b->in_head > 0 && b->in_len == b->in_cap) {
		memmove(b->inq, b->inq + b->in_head, (b->in_len - b->in_head) * sizeof(*b->inq));
		b->in_len -= b->in_head;
		b->in_head = 0;
	}
	if (b->in_len == b->in_cap) {
		size_t cap = b->in_cap ? b->in_cap * 2 : 16;
		struct inmsg *v = realloc(b->inq, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		b->inq = v;
		b->in_cap = cap;
	}
	slot = &b->inq[b->in_len];
	slot->bytes = malloc(len ? len : 1);
	if (!slot->bytes)
		return -ENOMEM;
	memcpy(slot->bytes, msg, len);
	slot->len = len;
	b->in_len++;
	b->st.inbox = b->in_len - b->in_head;
	return 0;
}

/* ---- versions ---- */

/* me - our slot in a version vector: 0 when our peer id sorts first. */
static int me(const struct buddy *b)
{
	return memcmp(b->s->p.id->peer_id, b->id, ID_BYTES) < 0 ? 0 : 1; /* an order, not a secret */
}

/* local_vv - the version vector of local entry @l given its synced record. */
static void local_vv(const struct buddy *b, const struct store_entry *l, const struct store_synced *a,
		     bool have_a, uint64_t vv[2])
{
	uint8_t d[SYNC_DIGEST_BYTES];
	uint64_t delta;
	int i = me(b);

	vv[0] = vv[1] = 0;
	if (!have_a) {
		vv[i] = l->version ? l->version : 1;
		return;
	}
	vv[0] = a->vv[0];
	vv[1] = a->vv[1];
	sync_entry_digest(d, l);
	if (sodium_memcmp(d, a->digest, sizeof(d)) == 0)
		return;
	delta = l->version > a->version ? l->version - a->version : 1;
	vv[i] = vv[i] > UINT64_MAX - delta ? UINT64_MAX : vv[i] + delta; /* a buddy's vector is untrusted */
	/*
	 * A write that began before the agreed version arrived (opened for
	 * writing, then the buddy's version was taken, then released) has
	 * not seen the buddy's last write: concurrent with it.
	 */
	if (l->has_base && l->base < a->version && vv[1 - i] > 0)
		vv[1 - i]--;
}

static bool vv_ge(const uint64_t x[2], const uint64_t y[2])
{
	return x[0] >= y[0] && x[1] >= y[1];
}

/* entry_order - newer first: the rule both sides apply to a conflict. */
static int entry_order(const struct store_entry *x, const struct store_entry *y)
{
	uint8_t dx[SYNC_DIGEST_BYTES], dy[SYNC_DIGEST_BYTES];

	if (x->deleted != y->deleted)
		return x->deleted ? -1 : 1; /* live data beats a removal */
	if (!x->deleted && x->type != y->type)
		return x->type == STORE_ENTRY_DIR ? 1 : -1; /* a directory stays, the file moves */
	if (x->version != y->version)
		return x->version > y->version ? 1 : -1;
	if (x->mtime_ns != y->mtime_ns)
		return x->mtime_ns > y->mtime_ns ? 1 : -1;
	sync_entry_digest(dx, x);
	sync_entry_digest(dy, y);
	return memcmp(dx, dy, sizeof(dx)) > 0 ? 1 : -1;
}

/*
 * conflict_path - "DIR/STEM (conflict from WHO YYYY-MM-DD).EXT" for @path
 * (the date of @mtime_ns, UTC); the stem is cut (at a UTF-8 boundary) to
 * keep the name within STORE_FILE_NAME_MAX.  -ENAMETOOLONG when no room.
 */
static int conflict_path(char out[static STORE_PATH_MAX + 1], const char *path, const char *whom,
			 int64_t mtime_ns)
{
	char suffix[96], date[16];
	const char *name = strrchr(path, '/'), *dot;
	size_t dir_len, stem_len, ext_len, suf_len, room;
	int64_t sec = mtime_ns / 1000000000;
	struct buf_writer w;
	struct tm tm;
	time_t t;

	if (mtime_ns < 0 && mtime_ns % 1000000000)
		sec--;
	t = (time_t)sec;
	if (!gmtime_r(&t, &tm) || strftime(date, sizeof(date), "%Y-%m-%d", &tm) == 0)
		snprintf(date, sizeof(date), "0000-00-00");
	snprintf(suffix, sizeof(suffix), " (conflict from %s %s)", whom, date);
	suf_len = strlen(suffix);
	name = name ? name + 1 : path;
	dir_len = (size_t)(name - path);
	dot = strrchr(name, '.');
	if (!dot || dot == name)
		dot = name + strlen(name);
	stem_len = (size_t)(dot - name);
	ext_len = strlen(dot);
	if (ext_len + suf_len + 1 > STORE_FILE_NAME_MAX) { /* a huge "extension": none */
		stem_len += ext_len;
		ext_len = 0;
		dot = name + stem_len;
	}
	room = STORE_FILE_NAME_MAX - suf_len - ext_len;
	if (dir_len + suf_len + ext_len + 1 > STORE_PATH_MAX)
		return -ENAMETOOLONG;
	if (room > STORE_PATH_MAX - dir_len - suf_len - ext_len)
		room = STORE_PATH_MAX - dir_len - suf_len - ext_len;
	if (stem_len > room) {
		stem_len = room;
		while (stem_len > 0 && ((unsigned char)name[stem_len] & 0xc0) == 0x80)
			stem_len--;
	}
	if (stem_len == 0)
		return -ENAMETOOLONG;
	buf_writer_init(&w, out, STORE_PATH_MAX);
	buf_put_bytes(&w, path, dir_len);
	buf_put_bytes(&w, name, stem_len);
	buf_put_bytes(&w, suffix, suf_len);
	buf_put_bytes(&w, dot, ext_len);
	if (!buf_writer_ok(&w))
		return -ENAMETOOLONG;
	out[buf_writer_len(&w)] = '\0';
	return 0;
}

/* ---- writing ---- */

/*
 * fill_entry - the wire entry of queue item @q from the store; 1 when
 * there is none (skip it).  *manifest is the malloc'd manifest it carries.
 */
static int fill_entry(struct buddy *b, const struct qmsg *q, struct sync_entry *out, uint8_t **manifest)
{
	struct sync *s = b->s;
	struct store_entry *l = malloc(sizeof(*l));
	struct store_synced a;
	uint8_t d[SYNC_DIGEST_BYTES];
	bool have_a, send_manifest;
	size_t len = 0;
	int rc;

	*manifest = NULL;
	if (!l)
		return -ENOMEM;
	rc = store_entry_get(s->p.store, NULL, b->id, q->path, l);
	if (rc) {
		free(l);
		return rc == -ENOENT ? 1 : rc;
	}
	have_a = store_synced_get(s->p.store, NULL, b->id, q->path, &a) == 0;
	sync_entry_digest(d, l);
	/* an agreed version goes without its manifest: the buddy has it */
	send_manifest = l->type == STORE_ENTRY_FILE && !l->deleted &&
			(q->manifest || !have_a || sodium_memcmp(d, a.digest, sizeof(d)) != 0);
	if (send_manifest) {
		rc = store_manifest_get(s->p.store, NULL, l->manifest, manifest, &len);
		if (rc == 0 && len > SYNC_MANIFEST_MAX_BYTES)
			rc = BFS_ETOOBIG;
		if (rc) {
			log_warn("sync: %s: no manifest to send (%s)", q->path, bfs_strerror(rc));
			free(*manifest);
			*manifest = NULL;
			free(l);
			return 1;
		}
	}
	memcpy(out->path, l->path, strlen(l->path) + 1);
	out->path_len = strlen(l->path);
	out->type = l->type;
	out->deleted = l->deleted;
	out->mode = l->mode;
	out->size = l->size;
	out->mtime_ns = l->mtime_ns;
	memcpy(out->owner, l->owner, ID_BYTES);
	out->version = l->version;
	local_vv(b, l, &a, have_a, out->vv);
	memcpy(out->manifest_hash, l->manifest, STORE_HASH_BYTES);
	out->manifest = *manifest;
	out->manifest_len = len;
	free(l);
	return 0;
}

static bool is_entry_item(uint8_t type)
{
	return type == SYNC_MSG_INDEX || type == SYNC_MSG_PUSH;
}

/* encode_entries - one INDEX/PUSH message of the entry items at the head. */
static int encode_entries(struct buddy *b, struct buf_writer *w, size_t *used)
{
	struct sync_entry *e = malloc(sizeof(*e));
	struct sync_batch batch;
	uint8_t *manifest;
	size_t i;
	int rc;

	if (!e)
		return -ENOMEM;
	rc = sync_batch_begin(&batch, w, b->q[b->q_head].type);
	for (i = b->q_head; rc == 0 && i < b->q_len && is_entry_item(b->q[i].type); i++) {
		if (batch.n == SYNC_BATCH_MAX || (batch.n && buf_writer_len(w) >= SYNC_BATCH_TARGET_BYTES))
			break;
		rc = fill_entry(b, &b->q[i], e, &manifest);
		if (rc == 0) {
			rc = sync_batch_add_entry(&batch, e);
			free(manifest);
			if (rc == -ENOSPC && batch.n) {
				rc = 0;
				break; /* the next message takes it */
			}
		}
		if (rc < 0)
			log_warn("sync: cannot send \"%s\": %s", b->q[i].path, bfs_strerror(rc));
		rc = 0; /* sent, or skipped */
	}
	*used = i - b->q_head;
	free(e);
	if (rc)
		return rc;
	return sync_batch_end(&batch) == 0 ? 0 : 1;
}

/* encode_acks - one ACK message of the ack items at the head. */
static int encode_acks(struct buddy *b, struct buf_writer *w, size_t *used)
{
	struct sync_ack *a = malloc(sizeof(*a));
	struct sync_batch batch;
	size_t i;
	int rc;

	if (!a)
		return -ENOMEM;
	rc = sync_batch_begin(&batch, w, SYNC_MSG_ACK);
	for (i = b->q_head; rc == 0 && i < b->q_len && b->q[i].type == SYNC_MSG_ACK; i++) {
		const struct qmsg *q = &b->q[i];

		if (batch.n == SYNC_BATCH_MAX || buf_writer_len(w) >= SYNC_BATCH_TARGET_BYTES)
			break;
		a->path_len = strlen(q->path);
		memcpy(a->path, q->path, a->path_len + 1);
		memcpy(a->digest, q->digest, sizeof(a->digest));
		a->vv[0] = q->vv[0];
		a->vv[1] = q->vv[1];
		if (sync_batch_add_ack(&batch, a))
			log_warn("sync: cannot ack \"%s\"", q->path);
	}
	*used = i - b->q_head;
	free(a);
	if (rc)
		return rc;
	return sync_batch_end(&batch) == 0 ? 0 : 1;
}

/*
 * encode_next - the next message from the head of the queue into @w;
 * *used: how many items it consumed.  Returns 0, 1 when they made no
 * message (skip them), or an error.
 */
static int encode_next(struct buddy *b, struct buf_writer *w, size_t *used)
{
	const struct qmsg *q = &b->q[b->q_head];
	struct sync_msg *m;
	int rc;

	if (is_entry_item(q->type))
		return encode_entries(b, w, used);
	if (q->type == SYNC_MSG_ACK)
		return encode_acks(b, w, used);
	*used = 1;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->type = q->type;
	switch (q->type) {
	case SYNC_MSG_HELLO:
		m->version = SYNC_PROTO_VERSION;
		m->hello_flags = SYNC_HELLO_BUDDY;
		snprintf(m->name, sizeof(m->name), "%s", b->s->p.id->config.name);
		break;
	case SYNC_MSG_INDEX_END:
		m->count = q->count;
		break;
	case SYNC_MSG_RESEND:
		m->path_len = strlen(q->path);
		memcpy(m->path, q->path, m->path_len + 1);
		break;
	default:
		break;
	}
	rc = sync_msg_encode(w, m);
	free(m);
	return rc;
}

static void maybe_up(struct buddy *b);
static void deferred_pump(struct loop *loop, void *ctx);

/* defer_pump - pump at the end of this loop turn (or the next one). */
static void defer_pump(struct buddy *b)
{
	if (b->pump_deferred)
		return;
	if (loop_defer(b->s->p.loop, deferred_pump, b) == 0)
		b->pump_deferred = true;
}

/*
 * pump - write queued messages until the flow is full or the queue empty,
 * encoding at most send_budget items in one call: the rest goes on at the
 * next loop turn, so a big index does not hold the loop.
 */
static void pump(struct buddy *b)
{
	size_t budget = b->s->p.send_budget ? b->s->p.send_budget : SYNC_SEND_BUDGET, spent = 0;
	bool wrote = false, hello = false;
	struct buf_writer w;
	uint8_t *bytes;
	size_t len, used;
	uint8_t type;
	int rc;

	if (b->pumping)
		return; /* the running pump sees what was queued */
	b->pumping = true;
	while (b->out && b->q_head < b->q_len) {
		if (spent >= budget) {
			defer_pump(b); /* yield: timers, FUSE and control requests first */
			break;
		}
		type = b->q[b->q_head].type;
		used = 1;
		buf_writer_init_dynamic(&w, SYNC_MSG_MAX_BYTES);
		rc = encode_next(b, &w, &used);
		spent += used;
		if (rc) {
			buf_writer_free(&w);
			if (rc < 0)
				log_warn("sync: cannot encode a message for %s: %s", b->name, bfs_strerror(rc));
			while (used-- > 0 && b->q_head < b->q_len)
				q_pop(b);
			continue;
		}
		bytes = buf_writer_steal(&w, &len);
		if (!bytes)
			break;
		rc = rtmfp_send_write(b->out, bytes, len, now());
		free(bytes);
		if (rc == -EAGAIN || rc == BFS_ECLOSED)
			break; /* the writable (or send_closed) event follows */
		if (rc)
			log_warn("sync: dropped a message of %zu bytes: %s", len, bfs_strerror(rc));
		else
			wrote = true;
		if (type == SYNC_MSG_HELLO && rc == 0)
			hello = true;
		while (used-- > 0 && b->q_head < b->q_len)
			q_pop(b);
	}
	b->pumping = false;
	if (wrote)
		kick(b->s);
	if (hello) {
		b->hello_sent = true;
		maybe_up(b);
	}
}

static void queue_simple(struct buddy *b, uint8_t type, const char *path)
{
	struct qmsg m = { .type = type };

	if (q_push(b, &m, path))
		log_warn("sync: out of memory queueing for %s", b->name);
}

/* ---- connecting, up and down ---- */

static void retry_fire(struct loop *loop, struct loop_timer *t, void *ctx);

static void arm_retry(struct buddy *b, uint64_t delay)
{
	if (!b->retry && loop_timer_new(b->s->p.loop, retry_fire, b, &b->retry))
		return;
	loop_timer_rearm(b->s->p.loop, b->retry, delay);
}

static void connect_out(struct buddy *b)
{
	struct sync *s = b->s;
	char h[HEX_SHORT + 1];
	int rc;

	if (b->out)
		return;
	rc = s->p.open_flow(s->p.ctx, b->id, (const uint8_t *)SYNC_FLOW_METADATA, strlen(SYNC_FLOW_METADATA),
			    &b->out);
	if (rc) {
		b->out = NULL;
		log_info("sync: cannot open a flow to %s: %s", who(b, h), bfs_strerror(rc));
		arm_retry(b, RETRY_NS);
		return;
	}
	b->hello_sent = false;
	/* HELLO goes first: anything queued before is stale */
	q_clear(b);
	queue_simple(b, SYNC_MSG_HELLO, NULL);
	pump(b);
}

static void retry_fire(struct loop *loop, struct loop_timer *t, void *ctx)
{
	struct buddy *b = ctx;
	struct store_peer p;

	(void)loop;
	(void)t;
	if (b->online && !b->out && is_buddy(b->s, b->id, &p))
		connect_out(b);
}

static void closing_add(struct sync *s, struct rtmfp_send *f)
{
	if (s->n_closing == s->cap_closing) {
		size_t cap = s->cap_closing ? s->cap_closing * 2 : 8;
		struct rtmfp_send **v = realloc(s->closing, cap * sizeof(*v));

		if (!v)
			return; /* its send_closed will be left for the next module */
		s->closing = v;
		s->cap_closing = cap;
	}
	s->closing[s->n_closing++] = f;
}

/* down - the folder is no longer usable: close both flows, forget the HELLOs. */
static void down(struct buddy *b, const char *why)
{
	struct sync *s = b->s;
	bool was_up = b->up, was_alive = b->alive;
	char h[HEX_SHORT + 1];

	b->up = b->hello_sent = b->hello_got = b->far_has_us = b->alive = false;
	b->st.up = false;
	if (b->beat)
		loop_timer_stop(s->p.loop, b->beat);
	q_clear(b);
	in_clear(b); /* unacknowledged: the next index carries them again */
	if (b->out) {
		struct rtmfp_send *f = b->out;

		b->out = NULL;
		closing_add(s, f); /* before the close: its event may come inside */
		rtmfp_send_close(f, now());
	}
	if (b->in) {
		struct rtmfp_recv *f = b->in;

		b->in = NULL;
		rtmfp_recv_close(f, now());
	}
	kick(s);
	if (was_up) {
		log_info("sync: folder with %s down (%s)", who(b, h), why);
		if (was_alive && s->p.buddy_up)
			s->p.buddy_up(s->p.ctx, b->id, false);
	}
}

static uint64_t heartbeat_ns(const struct sync *s)
{
	return (uint64_t)(s->p.heartbeat_ms ? s->p.heartbeat_ms : HEARTBEAT_MS) * LOOP_NS_PER_MS;
}

static uint64_t dead_ns(const struct sync *s)
{
	return (uint64_t)(s->p.dead_ms ? s->p.dead_ms : DEAD_MS) * LOOP_NS_PER_MS;
}

/* beat_fire - send a PING when idle; a buddy silent too long is down for now. */
static void beat_fire(struct loop *loop, struct loop_timer *t, void *ctx)
{
	struct buddy *b = ctx;
	struct sync *s = b->s;
	struct store_peer *p;
	char h[HEX_SHORT + 1];

	if (!b->up)
		return;
	p = malloc(sizeof(*p));
	if (p && !is_buddy(s, b->id, p)) {
		free(p);
		down(b, "no longer a buddy of ours"); /* `buddy remove` while up */
		return;
	}
	free(p);
	if (b->alive && loop_now(loop) - b->last_heard > dead_ns(s)) {
		b->alive = false;
		b->st.up = false;
		log_info("sync: nothing heard from %s for %u ms: folder down until it speaks", who(b, h),
			 (unsigned)(dead_ns(s) / LOOP_NS_PER_MS));
		if (s->p.buddy_up)
			s->p.buddy_up(s->p.ctx, b->id, false);
	}
	if (b->out && b->q_head == b->q_len) {
		queue_simple(b, SYNC_MSG_PING, NULL);
		pump(b);
	}
	loop_timer_rearm(loop, t, heartbeat_ns(s));
}

/* heard - a message from @b: it is alive. */
static void heard(struct buddy *b)
{
	struct sync *s = b->s;
	char h[HEX_SHORT + 1];

	b->last_heard = loop_now(s->p.loop);
	if (b->up && !b->alive) {
		b->alive = true;
		b->st.up = true;
		log_info("sync: %s speaks again: folder up", who(b, h));
		if (s->p.buddy_up)
			s->p.buddy_up(s->p.ctx, b->id, true);
	}
}

static int collect(void *ctx, const struct store_entry *e)
{
	struct buddy *b = ctx;
	struct qmsg m = { .type = SYNC_MSG_INDEX };

	return q_push(b, &m, e->path);
}

/* maybe_up - both HELLOs crossed and each has the other: the folder is up. */
static void maybe_up(struct buddy *b)
{
	struct sync *s = b->s;
	struct qmsg end = { .type = SYNC_MSG_INDEX_END };
	char h[HEX_SHORT + 1];
	size_t before;
	int rc;

	if (b->up || !b->hello_sent || !b->hello_got || !b->far_has_us)
		return;
	b->up = b->alive = true;
	b->st.up = true;
	b->st.refused_by_far = false;
	b->last_heard = loop_now(s->p.loop);
	if (b->beat || loop_timer_new(s->p.loop, beat_fire, b, &b->beat) == 0)
		loop_timer_rearm(s->p.loop, b->beat, heartbeat_ns(s));
	set_mutual(s, b->id, true);
	log_info("sync: folder with %s up", who(b, h));
	if (s->p.buddy_up)
		s->p.buddy_up(s->p.ctx, b->id, true);
	/* our index: every entry of the folder, tombstones too */
	before = b->q_len - b->q_head;
	rc = store_entry_foreach(s->p.store, NULL, b->id, collect, b);
	if (rc)
		log_warn("sync: cannot list the folder of %s: %s", who(b, h), bfs_strerror(rc));
	end.count = b->q_len - b->q_head - before;
	if (q_push(b, &end, NULL))
		log_warn("sync: out of memory queueing for %s", who(b, h));
	pump(b);
}

/* ---- applying a buddy's entry ---- */

/* owner_key - the Ed25519 key of @owner (us or @b) from its pinned certificate. */
static int owner_key(struct buddy *b, const uint8_t *owner, uint8_t pk[static IDENTITY_PUBLIC_KEY_BYTES])
{
	struct sync *s = b->s;
	struct store_peer *p;
	const uint8_t *cert = NULL;
	uint8_t id[ID_BYTES];
	size_t cert_len = 0;
	int rc;

	if (sodium_memcmp(owner, s->p.id->peer_id, ID_BYTES) == 0) {
		memcpy(pk, s->p.id->public_key, IDENTITY_PUBLIC_KEY_BYTES);
		return 0;
	}
	p = malloc(sizeof(*p));
	if (!p)
		return -ENOMEM;
	if (store_peer_get(s->p.store, b->id, p) == 0 && p->cert_len) {
		cert = p->cert;
		cert_len = p->cert_len;
	} else if (b->in && rtmfp_recv_session(b->in)) {
		cert = rtmfp_session_far_cert(rtmfp_recv_session(b->in), &cert_len);
	}
	rc = cert ? 0 : -ENOENT;
	if (rc == 0) {
		identity_peer_id_of(id, cert, cert_len);
		rc = sodium_memcmp(id, b->id, ID_BYTES) == 0 ? 0 : BFS_EBADSIG;
	}
	if (rc == 0)
		rc = identity_cert_parse(pk, cert, cert_len);
	free(p);
	return rc;
}

/*
 * check_manifest - the signed manifest of live file @r: from the message
 * or the store; hash, owner, size and signature checked.  *store_it: the
 * bytes came in the message.  Returns 0, 1 when we lack it (ask again),
 * or an error (refuse).
 */
static int check_manifest(struct buddy *b, const struct sync_entry *r, struct store_txn *t, uint8_t **held,
			  bool *store_it)
{
	uint8_t hash[MANIFEST_HASH_BYTES], pk[IDENTITY_PUBLIC_KEY_BYTES];
	const uint8_t *bytes = r->manifest;
	struct manifest *m = NULL;
	size_t len = r->manifest_len;
	int rc;

	*held = NULL;
	*store_it = bytes != NULL;
	if (!bytes) {
		rc = store_manifest_get(b->s->p.store, t, r->manifest_hash, held, &len);
		if (rc == -ENOENT)
			return 1;
		if (rc)
			return rc;
		bytes = *held;
	}
	rc = manifest_decode(&m, bytes, len);
	if (rc == 0)
		rc = manifest_hash(m, hash);
	if (rc == 0 && sodium_memcmp(hash, r->manifest_hash, sizeof(hash)) != 0)
		rc = BFS_EBADHASH;
	if (rc == 0 && sodium_memcmp(manifest_owner(m), r->owner, ID_BYTES) != 0)
		rc = BFS_EBADSIG;
	if (rc == 0 && manifest_file_size(m) != r->size)
		rc = BFS_EMALFORMED;
	if (rc == 0)
		rc = owner_key(b, r->owner, pk);
	if (rc == 0)
		rc = manifest_verify(m, pk);
	manifest_free(m);
	return rc;
}

/* check_entry - the checks of untrusted entry @r that need no store state. */
static int check_entry(struct buddy *b, const struct sync_entry *r)
{
	static const uint8_t zero[STORE_HASH_BYTES];
	const char *name, *slash;

	if (memchr(r->path, 0, r->path_len))
		return BFS_EBADNAME;
	/* the component rules of fs_name_check, then the whole path's */
	for (name = r->path; name; name = slash ? slash + 1 : NULL) {
		size_t n;

		slash = strchr(name, '/');
		n = slash ? (size_t)(slash - name) : strlen(name);
		if (n > STORE_FILE_NAME_MAX)
			return -ENAMETOOLONG;
		if (n == 0 || (n == 1 && name[0] == '.') || (n == 2 && name[0] == '.' && name[1] == '.'))
			return BFS_EBADNAME;
	}
	if (store_path_check(r->path))
		return BFS_EBADNAME;
	if (sodium_memcmp(r->owner, b->id, ID_BYTES) != 0 &&
	    sodium_memcmp(r->owner, b->s->p.id->peer_id, ID_BYTES) != 0)
		return BFS_EBADSIG; /* only the two of us write this folder */
	if (r->deleted || r->type == STORE_ENTRY_DIR) {
		if (r->size != 0 || memcmp(r->manifest_hash, zero, sizeof(zero)) != 0 || r->manifest)
			return BFS_EMALFORMED;
	} else if (memcmp(r->manifest_hash, zero, sizeof(zero)) == 0) {
		return BFS_EMALFORMED;
	}
	return 0;
}

static void to_store_entry(struct store_entry *e, const uint8_t *buddy, const struct sync_entry *r)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->buddy, buddy, ID_BYTES);
	memcpy(e->path, r->path, r->path_len);
	e->type = r->type;
	e->deleted = r->deleted;
	e->mode = r->mode;
	e->size = r->size;
	e->mtime_ns = r->mtime_ns;
	memcpy(e->owner, r->owner, ID_BYTES);
	e->version = r->version;
	memcpy(e->manifest, r->manifest_hash, STORE_HASH_BYTES);
}

static void queue_ack(struct buddy *b, const char *path, const uint8_t digest[SYNC_DIGEST_BYTES],
		      const uint64_t vv[2])
{
	struct qmsg m = { .type = SYNC_MSG_ACK, .vv = { vv[0], vv[1] } };

	memcpy(m.digest, digest, sizeof(m.digest));
	if (q_push(b, &m, path))
		log_warn("sync: out of memory queueing for %s", b->name);
}

static void queue_push(struct buddy *b, const char *path)
{
	struct qmsg m = { .type = SYNC_MSG_PUSH };

	if (q_push(b, &m, path))
		log_warn("sync: out of memory queueing for %s", b->name);
}

/* writer_name - who wrote @e, as both sides name them. */
static const char *writer_name(const struct buddy *b, const struct store_entry *e, char buf[HEX_SHORT + 1])
{
	if (sodium_memcmp(e->owner, b->s->p.id->peer_id, ID_BYTES) == 0)
		return b->s->p.id->config.name;
	if (b->name[0])
		return b->name;
	short_hex(buf, e->owner);
	return buf;
}

/* What to do once the batch's transaction committed, per entry. */
enum post_kind { POST_NONE, POST_RESEND, POST_ACK, POST_APPLIED };

struct post {
	uint8_t kind;                      /* enum post_kind */
	uint8_t d;                         /* enum decision (POST_APPLIED) */
	char *path, *cpath;                /* cpath: the conflict copy, or NULL */
	uint8_t digest[SYNC_DIGEST_BYTES]; /* POST_ACK, POST_APPLIED: what we agree on */
	uint64_t vv[2];
};

/*
 * put_outcome - into @t: the manifest (when it came with the entry), the
 * entry at its path and what both now agree on, and for a conflict the
 * loser at its conflict path (written to @cpath, "" when none).
 */
static int put_outcome(struct buddy *b, struct store_txn *t, struct apply *w, enum decision d,
		       struct store_entry *winner, const struct store_entry *loser, const uint64_t vv[2],
		       const struct sync_entry *r, bool have_l, bool store_manifest, char *cpath)
{
	struct store *st = b->s->p.store;
	struct store_synced agreed = { .vv = { vv[0], vv[1] } };
	char h[HEX_SHORT + 1];
	int rc = 0;

	cpath[0] = '\0';
	if (store_manifest && (d == TAKE || d == CONFLICT))
		rc = store_manifest_put(st, t, r->manifest_hash, r->manifest, r->manifest_len);
	if (rc == 0 && winner != &w->l) {
		/* the local counter only grows, so a base recorded before stays below */
		if (have_l && winner->version <= w->l.version)
			winner->version = w->l.version + 1;
		rc = store_entry_put(st, t, winner);
	}
	if (rc == 0) {
		sync_entry_digest(agreed.digest, winner);
		agreed.version = winner->version;
		rc = store_synced_put(st, t, b->id, winner->path, &agreed);
	}
	if (rc || !loser || loser->deleted || loser->type != STORE_ENTRY_FILE)
		return rc;
	if (conflict_path(cpath, w->path, writer_name(b, loser, h), loser->mtime_ns)) {
		log_warn("sync: no room for a conflict copy of %s", w->path);
		cpath[0] = '\0';
		return 0;
	}
	w->c = *loser;
	memcpy(w->c.path, cpath, strlen(cpath) + 1);
	w->c.has_base = false;
	rc = store_entry_put(st, t, &w->c);
	if (rc == 0) {
		sync_entry_digest(agreed.digest, &w->c);
		agreed.version = w->c.version;
		rc = store_synced_put(st, t, b->id, cpath, &agreed);
	}
	return rc;
}

static void refuse(struct buddy *b, const struct sync_entry *r, const char *what, int err)
{
	char h[HEX_SHORT + 1], shown[64];
	size_t n = 0;

	/* the path is untrusted: show a printable prefix */
	for (size_t i = 0; i < r->path_len && n + 5 < sizeof(shown); i++) {
		unsigned char c = (unsigned char)r->path[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			shown[n++] = (char)c;
		else
			n += (size_t)snprintf(shown + n, sizeof(shown) - n, "\\x%02x", c);
	}
	shown[n] = '\0';
	b->st.refused++;
	log_warn("sync: refused entry \"%s%s\" from %s: %s (%s)", shown, n < r->path_len ? "..." : "",
		 who(b, h), what, bfs_strerror(err));
}

/* decide - what to do with @w->r given our entry and agreed state. */
static enum decision decide(struct buddy *b, struct apply *w, bool have_l, bool have_a, uint64_t vv[2],
			    struct store_entry **winner, const struct store_entry **loser)
{
	uint8_t dl[SYNC_DIGEST_BYTES], dr[SYNC_DIGEST_BYTES];
	uint64_t vl[2];

	*winner = &w->r;
	*loser = NULL;
	if (!have_l)
		return TAKE;
	sync_entry_digest(dl, &w->l);
	sync_entry_digest(dr, &w->r);
	local_vv(b, &w->l, &w->a, have_a, vl);
	if (sodium_memcmp(dl, dr, sizeof(dl)) == 0) {
		*winner = &w->l;
	} else if (vv_ge(vl, vv) && !vv_ge(vv, vl)) {
		return KEEP; /* ours is newer: the buddy gets it from our index or push */
	} else if (vv_ge(vv, vl) && !vv_ge(vl, vv)) {
		return TAKE;
	} else if (entry_order(&w->l, &w->r) > 0) {
		/* neither saw the other's write (or equal vectors, which is as bad) */
		*winner = &w->l;
		*loser = &w->r;
	} else {
		*loser = &w->l;
	}
	vv[0] = vl[0] > vv[0] ? vl[0] : vv[0];
	vv[1] = vl[1] > vv[1] ? vl[1] : vv[1];
	return *loser ? CONFLICT : AGREE;
}

/*
 * apply_one - one untrusted entry of a batch, written into @t.  Fills
 * @post with what to do after the commit.  Returns 0 (applied, kept or
 * refused) or a store error (the batch stops).
 */
static int apply_one(struct buddy *b, const struct sync_entry *r, struct store_txn *t, struct apply *w,
		     struct post *post)
{
	struct sync *s = b->s;
	struct store_entry *winner;
	const struct store_entry *loser;
	uint8_t *held = NULL;
	char cpath[STORE_PATH_MAX + 1];
	uint64_t vv[2] = { r->vv[0], r->vv[1] };
	bool have_l, have_a, store_manifest = false;
	enum decision d;
	int rc = check_entry(b, r);

	memset(post, 0, sizeof(*post));
	if (rc) {
		refuse(b, r, "bad entry", rc);
		return 0;
	}
	memcpy(w->path, r->path, r->path_len + 1);
	to_store_entry(&w->r, b->id, r);
	rc = store_entry_get(s->p.store, t, b->id, w->path, &w->l);
	have_l = rc == 0;
	if (rc && rc != -ENOENT)
		return rc;
	have_a = store_synced_get(s->p.store, t, b->id, w->path, &w->a) == 0;
	d = decide(b, w, have_l, have_a, vv, &winner, &loser);
	if (d == KEEP)
		return 0;
	post->path = strdup(w->path);
	if (!post->path)
		return -ENOMEM;
	sync_entry_digest(post->digest, winner);
	post->vv[0] = vv[0];
	post->vv[1] = vv[1];
	if (d == AGREE && have_a && sodium_memcmp(w->a.digest, post->digest, SYNC_DIGEST_BYTES) == 0 &&
	    w->a.vv[0] == vv[0] && w->a.vv[1] == vv[1]) {
		post->kind = POST_ACK; /* a known agreement: nothing to write */
		return 0;
	}
	if ((d == TAKE || d == CONFLICT) && r->type == STORE_ENTRY_FILE && !r->deleted) {
		/* R goes into the store: its signed manifest must check out */
		rc = check_manifest(b, r, t, &held, &store_manifest);
		free(held);
		if (rc == 1) {
			log_debug("sync: asking for the manifest of %s", w->path);
			post->kind = POST_RESEND;
			return 0;
		}
		if (rc) {
			refuse(b, r, "bad manifest", rc);
			free(post->path);
			post->path = NULL;
			return 0;
		}
	}
	rc = put_outcome(b, t, w, d, winner, loser, vv, r, have_l, store_manifest, cpath);
	if (rc)
		return rc;
	post->kind = POST_APPLIED;
	post->d = (uint8_t)d;
	if (cpath[0] && !(post->cpath = strdup(cpath)))
		return -ENOMEM;
	return 0;
}

/* after - the consequences of one committed entry (or none, @ok false). */
static void after(struct buddy *b, struct post *p, bool ok)
{
	struct sync *s = b->s;
	char h[HEX_SHORT + 1];

	if (ok && p->kind == POST_RESEND)
		queue_simple(b, SYNC_MSG_RESEND, p->path);
	if (ok && (p->kind == POST_ACK || p->kind == POST_APPLIED))
		queue_ack(b, p->path, p->digest, p->vv);
	if (ok && p->kind == POST_APPLIED && p->d != AGREE) {
		b->st.applied++;
		if (s->p.entry_changed) {
			s->p.entry_changed(s->p.ctx, b->id, p->path);
			if (p->cpath)
				s->p.entry_changed(s->p.ctx, b->id, p->cpath);
		}
	}
	if (ok && p->kind == POST_APPLIED && p->d == CONFLICT) {
		b->st.conflicts++;
		log_info("sync: %s: concurrent writes with %s; the older is now \"%s\"", p->path, who(b, h),
			 p->cpath ? p->cpath : "(dropped)");
		/* the buddy may not see the conflict itself: give it the outcome */
		queue_push(b, p->path);
		if (p->cpath)
			queue_push(b, p->cpath);
	}
	free(p->path);
	free(p->cpath);
	p->path = p->cpath = NULL;
}

/*
 * ack_one - the buddy agrees on a version: remembered (into @t) when it is
 * still ours.  Returns 1 when a record was written, 0 when none was, or a
 * store error.  @l is scratch space.
 */
static int ack_one(struct buddy *b, struct store_txn *t, const struct sync_ack *a, struct store_entry *l)
{
	struct store *st = b->s->p.store;
	struct store_synced v, old;
	uint8_t d[SYNC_DIGEST_BYTES];
	int rc;

	if (memchr(a->path, 0, a->path_len) || store_path_check(a->path) ||
	    store_entry_get(st, t, b->id, a->path, l) != 0)
		return 0;
	sync_entry_digest(d, l);
	if (sodium_memcmp(d, a->digest, sizeof(d)) != 0)
		return 0; /* changed since: the next push carries it */
	memcpy(v.digest, d, sizeof(d));
	v.vv[0] = a->vv[0];
	v.vv[1] = a->vv[1];
	v.version = l->version;
	if (store_synced_get(st, t, b->id, a->path, &old) == 0 && sodium_memcmp(old.digest, d, sizeof(d)) == 0) {
		v.vv[0] = old.vv[0] > v.vv[0] ? old.vv[0] : v.vv[0];
		v.vv[1] = old.vv[1] > v.vv[1] ? old.vv[1] : v.vv[1];
		v.version = old.version;
		if (v.vv[0] == old.vv[0] && v.vv[1] == old.vv[1])
			return 0; /* known already */
	}
	rc = store_synced_put(st, t, b->id, a->path, &v);
	return rc ? rc : 1;
}

static void deferred_drain(struct loop *loop, void *ctx);

static void defer_drain(struct buddy *b)
{
	if (b->drain_deferred)
		return;
	if (loop_defer(b->s->p.loop, deferred_drain, b) == 0)
		b->drain_deferred = true;
}

/* Scratch space of one drain (big: kept off the stack). */
struct drain_work {
	struct sync_entry e;
	struct sync_ack a;
	struct apply w;
	struct store_entry l;
};

/*
 * drain_one - handle items of the head message into @t (begun on first
 * need) until it ends or *items reaches @budget.  Returns 0 or a store
 * error; *wrote is set when a record was written.
 */
static int drain_one(struct buddy *b, struct drain_work *dw, struct store_txn **t, struct post *posts,
		     size_t *n_posts, size_t *items, size_t budget, bool *wrote)
{
	struct sync_msg *m = b->cur;
	int rc = 0;

	if ((m->type == SYNC_MSG_INDEX || m->type == SYNC_MSG_PUSH || m->type == SYNC_MSG_ACK) && !*t)
		rc = store_txn_begin(b->s->p.store, t);
	switch (m->type) {
	case SYNC_MSG_INDEX:
	case SYNC_MSG_PUSH:
		while (rc == 0 && *items < budget) {
			struct post *p;

			if (sync_msg_next_entry(m, &dw->e) != 1) {
				b->cur_done = m->n_items; /* the end, whatever the count said */
				break;
			}
			p = &posts[(*n_posts)++];

			rc = apply_one(b, &dw->e, *t, &dw->w, p);
			if (p->kind == POST_APPLIED)
				*wrote = true;
			b->cur_done++;
			(*items)++;
		}
		break;
	case SYNC_MSG_ACK:
		while (rc == 0 && *items < budget) {
			if (sync_msg_next_ack(m, &dw->a) != 1) {
				b->cur_done = m->n_items;
				break;
			}
			rc = ack_one(b, *t, &dw->a, &dw->l);
			if (rc == 1) {
				*wrote = true;
				rc = 0;
			}
			b->cur_done++;
			(*items)++;
		}
		break;
	case SYNC_MSG_INDEX_END:
		b->st.index_rounds++;
		break;
	case SYNC_MSG_RESEND:
		if (!memchr(m->path, 0, m->path_len) && store_path_check(m->path) == 0) {
			struct qmsg q = { .type = SYNC_MSG_PUSH, .manifest = true };

			if (q_push(b, &q, m->path))
				log_warn("sync: out of memory queueing for %s", b->name);
		}
		break;
	default: /* PING: heard() did it all */
		break;
	}
	return rc;
}

/*
 * drain - apply received messages, oldest first, at most apply_budget
 * items (entries and acks, across messages) in ONE store transaction;
 * after its commit, the acks, pushes and entry_changed calls of what it
 * applied; what is left waits for the next loop turn.  A message whose
 * items fail to commit is dropped unacknowledged (the buddy's next index
 * carries them again), as is everything queued when the folder goes down.
 */
static void drain(struct buddy *b)
{
	struct sync *s = b->s;
	size_t budget = s->p.apply_budget ? s->p.apply_budget : SYNC_APPLY_BUDGET;
	struct drain_work *dw = malloc(sizeof(*dw));
	struct post *posts = calloc(budget, sizeof(*posts));
	struct store_txn *t = NULL;
	size_t n_posts = 0, items = 0;
	bool wrote = false;
	char h[HEX_SHORT + 1];
	int rc = dw && posts ? 0 : -ENOMEM;

	while (rc == 0 && b->up && items < budget && b->in_head < b->in_len) {
		if (!b->cur) {
			const struct inmsg *im = &b->inq[b->in_head];

			b->cur = malloc(sizeof(*b->cur));
			if (!b->cur) {
				rc = -ENOMEM;
				break;
			}
			b->cur_done = 0;
			if (sync_msg_decode(b->cur, im->bytes, im->len)) {
				in_pop(b); /* checked on arrival: cannot happen */
				continue;
			}
		}
		rc = drain_one(b, dw, &t, posts, &n_posts, &items, budget, &wrote);
		if (rc || b->cur_done >= b->cur->n_items)
			in_pop(b); /* done, or dropped with the failed transaction */
	}
	if (t) {
		if (rc) {
			store_txn_abort(t);
		} else {
			rc = store_txn_commit(t);
			if (rc == 0 && wrote)
				b->st.commits++;
		}
	}
	if (rc)
		log_warn("sync: cannot apply %zu items from %s: %s", items, who(b, h), bfs_strerror(rc));
	if (items) {
		b->st.turns++;
		if (items > b->st.max_turn_items)
			b->st.max_turn_items = items;
	}
	/* committed: now acks, pushes of conflicts' outcomes, kernel caches */
	for (size_t i = 0; i < n_posts; i++)
		after(b, &posts[i], rc == 0);
	free(posts);
	free(dw);
	if (!b->up)
		in_clear(b);
	else if (b->in_head < b->in_len)
		defer_drain(b); /* yield: timers, FUSE and control requests first */
	pump(b);
}

static void on_hello(struct buddy *b, const struct sync_msg *m)
{
	char norm[IDENTITY_NAME_MAX + 1], h[HEX_SHORT + 1];

	if (m->version != SYNC_PROTO_VERSION) {
		log_warn("sync: %s speaks sync version %u, we speak %u", who(b, h), m->version, SYNC_PROTO_VERSION);
		b->st.refused++;
		return;
	}
	if (identity_name_normalize(norm, m->name) == 0)
		snprintf(b->name, sizeof(b->name), "%s", norm);
	b->hello_got = true;
	b->far_has_us = m->hello_flags & SYNC_HELLO_BUDDY;
	if (!b->far_has_us) {
		log_info("sync: %s has not added us: no folder yet", who(b, h));
		set_mutual(b->s, b->id, false);
		return;
	}
	maybe_up(b);
}

/* ---- the API ---- */

static void deferred_pump(struct loop *loop, void *ctx)
{
	struct buddy *b = ctx;

	(void)loop;
	b->pump_deferred = false;
	pump(b);
}

static void deferred_drain(struct loop *loop, void *ctx)
{
	struct buddy *b = ctx;

	(void)loop;
	b->drain_deferred = false;
	drain(b);
}

int sync_new(struct sync **out, const struct sync_params *p)
{
	*out = NULL;
	if (!p || !p->loop || !p->store || !p->id || !p->open_flow)
		return -EINVAL;
	*out = calloc(1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	(*out)->p = *p;
	return 0;
}

void sync_free(struct sync *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		q_clear(s->b[i]);
		free(s->b[i]->q);
		in_clear(s->b[i]);
		free(s->b[i]->inq);
		loop_defer_cancel(s->p.loop, deferred_drain, s->b[i]);
		loop_timer_cancel(s->p.loop, s->b[i]->retry);
		loop_timer_cancel(s->p.loop, s->b[i]->beat);
		loop_defer_cancel(s->p.loop, deferred_pump, s->b[i]);
		free(s->b[i]);
	}
	free(s->b);
	free(s->closing);
	free(s);
}

void sync_peer_online(struct sync *s, const uint8_t peer_id[static STORE_PEER_ID_BYTES], bool online)
{
	struct store_peer p;
	struct buddy *b = find(s, peer_id);

	if (!online) {
		if (b) {
			b->online = false;
			if (b->retry)
				loop_timer_stop(s->p.loop, b->retry);
			down(b, "offline");
		}
		return;
	}
	if (!is_buddy(s, peer_id, &p))
		return;
	b = b ? b : get(s, peer_id);
	if (!b)
		return;
	b->online = true;
	connect_out(b);
}

void sync_published(struct sync *s, const uint8_t buddy[static STORE_PEER_ID_BYTES], const char *path)
{
	struct buddy *b = find(s, buddy);
	struct qmsg m = { .type = SYNC_MSG_PUSH };

	if (!b || !b->up)
		return; /* the next index carries it */
	if (q_push(b, &m, path)) {
		log_warn("sync: out of memory: %s goes at the next reconnection", path);
		return;
	}
	/* commits of one loop iteration go out as one batch */
	defer_pump(b);
	if (!b->pump_deferred)
		pump(b);
}

bool sync_buddy_is_up(const struct sync *s, const uint8_t peer_id[static STORE_PEER_ID_BYTES])
{
	const struct buddy *b = find(s, peer_id);

	return b && b->up && b->alive;
}

int sync_buddy_stats(const struct sync *s, const uint8_t peer_id[static STORE_PEER_ID_BYTES],
		     struct sync_buddy_stats *out)
{
	const struct buddy *b = find(s, peer_id);

	if (!b)
		return -ENOENT;
	*out = b->st;
	return 0;
}

uint64_t sync_flows_refused(const struct sync *s)
{
	return s->flows_refused;
}

void sync_on_session_opened(struct sync *s, struct rtmfp_session *ss)
{
	(void)s;
	(void)ss; /* flows tell us everything we need */
}

void sync_on_session_closed(struct sync *s, struct rtmfp_session *ss, int err)
{
	(void)s;
	(void)ss;
	(void)err; /* its flows got their closed events first */
}

bool sync_on_recv_flow(struct sync *s, struct rtmfp_recv *f, const uint8_t *meta, size_t meta_len,
		       struct rtmfp_send *assoc)
{
	struct rtmfp_session *ss = rtmfp_recv_session(f);
	uint8_t id[ID_BYTES];
	char hex[2 * ID_BYTES + 1];
	struct store_peer p;
	struct buddy *b;

	(void)assoc;
	if (meta_len != strlen(SYNC_FLOW_METADATA) || memcmp(meta, SYNC_FLOW_METADATA, meta_len) != 0)
		return false;
	if (!ss || rtmfp_session_far_peer_id(ss, id) != 0) {
		rtmfp_recv_close(f, now());
		return true;
	}
	if (!is_buddy(s, id, &p)) {
		buf_hex(hex, id, ID_BYTES);
		log_warn("sync: refused a folder flow from %s: not a buddy of ours", hex);
		s->flows_refused++;
		rtmfp_recv_close(f, now());
		return true;
	}
	b = get(s, id);
	if (!b) {
		rtmfp_recv_close(f, now());
		return true;
	}
	rtmfp_recv_accept(f);
	if (b->in) {
		/* the buddy started over (a new connection): so do we */
		down(b, "reconnected");
	}
	b->in = f;
	b->hello_got = b->far_has_us = false;
	if (!b->out)
		connect_out(b);
	return true;
}

static struct buddy *by_in(const struct sync *s, const struct rtmfp_recv *f)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->b[i]->in == f)
			return s->b[i];
	return NULL;
}

static struct buddy *by_out(const struct sync *s, const struct rtmfp_send *f)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->b[i]->out == f)
			return s->b[i];
	return NULL;
}

bool sync_on_message(struct sync *s, struct rtmfp_recv *f, const uint8_t *msg, size_t len)
{
	struct buddy *b = by_in(s, f);
	struct sync_msg *m;
	char h[HEX_SHORT + 1];
	int rc;

	if (!b)
		return false;
	heard(b);
	m = malloc(sizeof(*m));
	if (!m)
		return true;
	rc = sync_msg_decode(m, msg, len);
	if (rc) {
		b->st.refused++;
		log_warn("sync: a malformed message of %zu bytes from %s", len, who(b, h));
		goto out;
	}
	if (m->type == SYNC_MSG_HELLO) {
		on_hello(b, m);
		goto out;
	}
	if (!b->up) {
		b->st.refused++;
		log_warn("sync: %s sent folder messages before both HELLOs", who(b, h));
		goto out;
	}
	if (m->type == SYNC_MSG_PING && b->in_head == b->in_len)
		goto out; /* nothing to keep in order with */
	/* applied at the end of the loop turn, in order, in bounded turns */
	if (in_push(b, msg, len)) {
		log_warn("sync: out of memory: a message from %s dropped", who(b, h));
		goto out;
	}
	defer_drain(b);
	if (!b->drain_deferred)
		drain(b);
out:
	free(m);
	return true;
}

bool sync_on_recv_closed(struct sync *s, struct rtmfp_recv *f, int err)
{
	struct buddy *b = by_in(s, f);

	if (!b)
		return false;
	b->in = NULL;
	down(b, err ? bfs_strerror(err) : "closed by the buddy");
	if (b->online)
		arm_retry(b, RETRY_NS);
	return true;
}

bool sync_on_writable(struct sync *s, struct rtmfp_send *f)
{
	struct buddy *b = by_out(s, f);

	if (!b)
		return false;
	pump(b);
	return true;
}

bool sync_on_send_closed(struct sync *s, struct rtmfp_send *f, int err)
{
	struct buddy *b = by_out(s, f);
	char h[HEX_SHORT + 1];
	bool refused;

	if (!b) {
		for (size_t i = 0; i < s->n_closing; i++)
			if (s->closing[i] == f) {
				s->closing[i] = s->closing[--s->n_closing];
				return true;
			}
		return false;
	}
	b->out = NULL;
	/* refused before any HELLO of theirs: they have not added us */
	refused = err == -ECONNREFUSED && !b->hello_got;
	if (refused) {
		b->st.refused_by_far = true;
		log_info("sync: %s refused our folder flow: not mutual yet", who(b, h));
		set_mutual(s, b->id, false);
	}
	down(b, err ? bfs_strerror(err) : "flow closed");
	if (b->online)
		arm_retry(b, refused ? REFUSED_RETRY_NS : RETRY_NS);
	return true;
}
