/*
 * test_sync.c - the folder protocol's control part between real RTMFP
 * instances (rtmfp_posix on 127.0.0.1, one loop) and real stores in temp
 * homes: HELLO and mutual (not mutual when only one side added; a
 * non-buddy's flow refused), pushes of files, directories, tombstones and
 * renames both ways, reconciliation of changes made while apart (one side
 * killed and restarted, found silent by the heartbeat first), concurrent
 * writes kept on both sides with identical names (apart, crossing pushes,
 * and a write opened before the buddy's version arrived), and malformed
 * entries refused while the session stays usable.
 *
 * Entries are published as fs does (a signed manifest and the entry in
 * one transaction, version counted up, the base of the write recorded),
 * then sync_published() is called.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>

#include <sodium.h>

#include "t.h"
#include "pair.h"
#include "buddyfs/buf.h"
#include "buddyfs/err.h"
#include "buddyfs/identity.h"
#include "buddyfs/log.h"
#include "buddyfs/loop.h"
#include "buddyfs/manifest.h"
#include "buddyfs/rtmfp_posix.h"
#include "buddyfs/store.h"
#include "buddyfs/sync.h"
#include "buddyfs/sync_proto.h"
#include "buddyfs/udp.h"

#define SEC LOOP_NS_PER_S
#define MS LOOP_NS_PER_MS
#define MAX_NODES 3
#define DAY_NS (86400ll * 1000000000ll)
#define NOV_24_2026_NS (1795478400ll * 1000000000ll) /* 2026-11-24 00:00 UTC */

struct node {
	const char *label;
	struct pair_node pn;          /* home, identity, store, instance */
	struct sync *sync;
	struct rtmfp_send *out;       /* the last flow sync opened */
	int ups, downs;               /* buddy_up events */
	int changed;                  /* entry_changed events */
	char last_changed[STORE_PATH_MAX + 1];
	int objects;
};

static struct loop *loop;
static struct node nodes[MAX_NODES];
static struct node *alice = &nodes[0], *bob = &nodes[1], *carol = &nodes[2];

/* WAIT - run the loop until @cond holds or @sec seconds pass. */
#define WAIT(cond, sec)                                                       \
	do {                                                                  \
		uint64_t end_ = loop_clock_ns() + (uint64_t)(sec) * SEC;      \
		while (!(cond) && loop_clock_ns() < end_)                     \
			loop_run_once(loop, 10 * MS);                         \
	} while (0)

/* ---- the glue a daemon has: rtmfp events to sync, sync's open_flow ---- */

static struct node *node_of(const uint8_t *id)
{
	for (int i = 0; i < MAX_NODES; i++)
		if (nodes[i].pn.id && memcmp(nodes[i].pn.id->peer_id, id, 32) == 0)
			return &nodes[i];
	return NULL;
}

static int open_flow(void *ctx, const uint8_t peer_id[static STORE_PEER_ID_BYTES], const uint8_t *meta,
		     size_t meta_len, struct rtmfp_send **out)
{
	struct node *n = ctx, *far = node_of(peer_id);
	int rc;

	if (!far || !far->pn.px || !n->pn.px)
		return -EHOSTUNREACH;
	rc = pair_open_flow(&n->pn, &far->pn, peer_id, meta, meta_len, out);
	if (rc == 0)
		n->out = *out;
	rtmfp_posix_kick(n->pn.px);
	return rc;
}

static void ev_buddy_up(void *ctx, const uint8_t peer_id[static STORE_PEER_ID_BYTES], bool up)
{
	struct node *n = ctx;

	(void)peer_id;
	if (up)
		n->ups++;
	else
		n->downs++;
}

static void ev_changed(void *ctx, const uint8_t buddy[static STORE_PEER_ID_BYTES], const char *path)
{
	struct node *n = ctx;

	(void)buddy;
	n->changed++;
	snprintf(n->last_changed, sizeof(n->last_changed), "%s", path);
}

static void ev_kick(void *ctx)
{
	struct node *n = ctx;

	if (n->pn.px)
		rtmfp_posix_kick(n->pn.px);
}

/* node_run - the instance and sync of @n (its identity and store stay). */
static int node_run(struct node *n)
{
	const struct rtmfp_callbacks cb = {
		.session_opened = pair_sync_session_opened,
		.session_closed = pair_sync_session_closed,
		.recv_flow = pair_sync_recv_flow,
		.message = pair_sync_message,
		.recv_closed = pair_sync_recv_closed,
		.writable = pair_sync_writable,
		.send_closed = pair_sync_send_closed,
	};
	struct sync_params sp = {
		.loop = loop, .store = n->pn.store, .id = n->pn.id, .open_flow = open_flow,
		.buddy_up = ev_buddy_up, .entry_changed = ev_changed, .kick = ev_kick, .ctx = n,
		.heartbeat_ms = 200, .dead_ms = 800,
	};
	struct rtmfp_params rp = pair_fast_params();
	int rc;

	rc = sync_new(&n->sync, &sp);
	if (rc)
		return rc;
	return pair_node_listen(&n->pn, loop, &cb, &n->sync, &rp);
}

/* node_kill - the process vanishes without a word (kill -9). */
static void node_kill(struct node *n)
{
	pair_node_stop(&n->pn);
	sync_free(n->sync);
	n->sync = NULL;
	n->out = NULL;
}

static int node_start(struct node *n, const char *label)
{
	int rc;

	memset(n, 0, sizeof(*n));
	n->label = label;
	snprintf(n->pn.home, sizeof(n->pn.home), "/tmp/test_sync_%s.XXXXXX", label);
	rc = pair_node_open(&n->pn, label);
	return rc ? rc : node_run(n);
}

static void node_free(struct node *n)
{
	if (!n->pn.id)
		return;
	node_kill(n);
	pair_node_close(&n->pn);
	memset(n, 0, sizeof(*n));
}

static void free_all(void)
{
	for (int i = 0; i < MAX_NODES; i++)
		node_free(&nodes[i]);
}

/* add_buddy - @n adds @b (pinned certificate, as `buddy add` does). */
static int add_buddy(struct node *n, const struct node *b, uint8_t state)
{
	return pair_add_buddy(&n->pn, &b->pn, b->label, state);
}

static bool up(const struct node *n, const struct node *b)
{
	return n->sync && sync_buddy_is_up(n->sync, b->pn.id->peer_id);
}

static struct sync_buddy_stats stats(const struct node *n, const struct node *b)
{
	struct sync_buddy_stats st;

	memset(&st, 0, sizeof(st));
	if (n->sync)
		sync_buddy_stats(n->sync, b->pn.id->peer_id, &st);
	return st;
}

/* pair - two nodes that added each other, folder up. */
static bool pair(void)
{
	if (node_start(alice, "alice") || node_start(bob, "bob"))
		return false;
	if (add_buddy(alice, bob, STORE_BUDDY_ADDED) || add_buddy(bob, alice, STORE_BUDDY_ADDED))
		return false;
	sync_peer_online(alice->sync, bob->pn.id->peer_id, true);
	sync_peer_online(bob->sync, alice->pn.id->peer_id, true);
	WAIT(up(alice, bob) && up(bob, alice), 5);
	return up(alice, bob) && up(bob, alice);
}

/* ---- publishing as fs does ---- */

static int get_entry(const struct node *n, const struct node *b, const char *path, struct store_entry *e)
{
	return store_entry_get(n->pn.store, NULL, b->pn.id->peer_id, path, e);
}

/*
 * publish - @n writes @content to @path of the folder it shares with @b:
 * a signed manifest and the entry in one transaction.  @mtime_ns 0: now.
 * @base: the version the write started from, or -1 for the current one.
 */
static int publish_base(struct node *n, struct node *b, const char *path, const char *content, int64_t mtime_ns,
			int64_t base)
{
	struct store_entry e, old;
	struct manifest *m = NULL;
	struct store_txn *t;
	const uint8_t *bytes;
	uint8_t hash[32];
	char obj[128];
	size_t len;
	int rc;

	snprintf(obj, sizeof(obj), "%s/obj%d", n->pn.home, n->objects++);
	rc = pair_manifest(&n->pn, obj, content, strlen(content), NULL, &m, &bytes, &len, hash);
	if (rc)
		return rc;
	memset(&e, 0, sizeof(e));
	memcpy(e.buddy, b->pn.id->peer_id, 32);
	snprintf(e.path, sizeof(e.path), "%s", path);
	e.type = STORE_ENTRY_FILE;
	e.mode = 0644;
	e.size = strlen(content);
	e.mtime_ns = mtime_ns ? mtime_ns : (int64_t)time(NULL) * 1000000000ll;
	memcpy(e.owner, n->pn.id->peer_id, 32);
	e.version = get_entry(n, b, path, &old) == 0 ? old.version + 1 : 1;
	e.has_base = true;
	e.base = base >= 0 ? (uint64_t)base : e.version - 1;
	memcpy(e.manifest, hash, 32);
	rc = store_txn_begin(n->pn.store, &t);
	if (rc)
		goto out;
	rc = store_manifest_put(n->pn.store, t, hash, bytes, len);
	if (rc == 0)
		rc = store_entry_put(n->pn.store, t, &e);
	if (rc) {
		store_txn_abort(t);
		goto out;
	}
	rc = store_txn_commit(t);
	if (rc == 0 && n->sync)
		sync_published(n->sync, b->pn.id->peer_id, path);
out:
	manifest_free(m);
	return rc;
}

static int publish(struct node *n, struct node *b, const char *path, const char *content, int64_t mtime_ns)
{
	return publish_base(n, b, path, content, mtime_ns, -1);
}

static int make_dir(struct node *n, struct node *b, const char *path)
{
	struct store_entry e, old;
	int rc;

	memset(&e, 0, sizeof(e));
	memcpy(e.buddy, b->pn.id->peer_id, 32);
	snprintf(e.path, sizeof(e.path), "%s", path);
	e.type = STORE_ENTRY_DIR;
	e.mode = 0755;
	e.mtime_ns = (int64_t)time(NULL) * 1000000000ll;
	memcpy(e.owner, n->pn.id->peer_id, 32);
	e.version = get_entry(n, b, path, &old) == 0 ? old.version + 1 : 1;
	e.has_base = true;
	e.base = e.version - 1;
	rc = store_entry_put(n->pn.store, NULL, &e);
	if (rc == 0 && n->sync)
		sync_published(n->sync, b->pn.id->peer_id, path);
	return rc;
}

/* tombstone_in - replace @path by a tombstone inside @t (as fs's unlink). */
static int tombstone_in(struct node *n, struct node *b, struct store_txn *t, const char *path)
{
	struct store_entry e;
	int rc = store_entry_get(n->pn.store, t, b->pn.id->peer_id, path, &e);

	if (rc)
		return rc;
	e.has_base = true;
	e.base = e.version;
	e.deleted = true;
	e.version++;
	e.size = 0;
	memcpy(e.owner, n->pn.id->peer_id, 32);
	memset(e.manifest, 0, 32);
	e.mtime_ns = (int64_t)time(NULL) * 1000000000ll;
	return store_entry_put(n->pn.store, t, &e);
}

static int remove_path(struct node *n, struct node *b, const char *path)
{
	int rc = tombstone_in(n, b, NULL, path);

	if (rc == 0)
		sync_published(n->sync, b->pn.id->peer_id, path);
	return rc;
}

/* rename_path - a tombstone at @from and the entry at @to, one transaction. */
static int rename_path(struct node *n, struct node *b, const char *from, const char *to)
{
	struct store_entry e, dst;
	struct store_txn *t;
	uint64_t v = 0;
	int rc = get_entry(n, b, from, &e);

	if (rc)
		return rc;
	if (get_entry(n, b, to, &dst) == 0)
		v = dst.version;
	rc = store_txn_begin(n->pn.store, &t);
	if (rc)
		return rc;
	rc = tombstone_in(n, b, t, from);
	snprintf(e.path, sizeof(e.path), "%s", to);
	e.has_base = true;
	e.base = v;
	e.version = (v > e.version ? v : e.version) + 1;
	if (rc == 0)
		rc = store_entry_put(n->pn.store, t, &e);
	if (rc) {
		store_txn_abort(t);
		return rc;
	}
	rc = store_txn_commit(t);
	if (rc == 0) {
		sync_published(n->sync, b->pn.id->peer_id, from);
		sync_published(n->sync, b->pn.id->peer_id, to);
	}
	return rc;
}

/* same - @path is the same version at @x (folder of @xb) and @y (folder of @yb). */
static bool same(struct node *x, struct node *xb, struct node *y, struct node *yb, const char *path)
{
	struct store_entry a, b;
	uint8_t da[32], db[32];

	if (get_entry(x, xb, path, &a) || get_entry(y, yb, path, &b))
		return false;
	sync_entry_digest(da, &a);
	sync_entry_digest(db, &b);
	return memcmp(da, db, 32) == 0;
}

static bool live(struct node *n, struct node *b, const char *path)
{
	struct store_entry e;

	return get_entry(n, b, path, &e) == 0 && !e.deleted;
}

static bool gone(struct node *n, struct node *b, const char *path)
{
	struct store_entry e;

	return get_entry(n, b, path, &e) == 0 && e.deleted;
}

static bool absent(struct node *n, struct node *b, const char *path)
{
	struct store_entry e;

	return get_entry(n, b, path, &e) == -ENOENT;
}

/* has_manifest - the store of @n has the manifest of @path. */
static bool has_manifest(struct node *n, struct node *b, const char *path)
{
	struct store_entry e;
	uint8_t *bytes = NULL;
	size_t len;
	int rc;

	if (get_entry(n, b, path, &e))
		return false;
	rc = store_manifest_get(n->pn.store, NULL, e.manifest, &bytes, &len);
	free(bytes);
	return rc == 0;
}

/* acked - @n knows that @b agreed on its version of @path. */
static bool acked(struct node *n, struct node *b, const char *path)
{
	struct store_synced a;
	struct store_entry e;
	uint8_t d[32];

	if (get_entry(n, b, path, &e) || store_synced_get(n->pn.store, NULL, b->pn.id->peer_id, path, &a))
		return false;
	sync_entry_digest(d, &e);
	return memcmp(d, a.digest, 32) == 0;
}

/* ---- the codec ---- */

T_CASE(proto_codec)
{
	static const uint8_t hello[] = { 0x01, 0x01, 0x01, 0x03, 'b', 'o', 'b' };
	struct sync_msg *m = calloc(1, sizeof(*m));
	struct sync_entry *e = calloc(2, sizeof(*e));
	struct sync_ack a;
	struct sync_batch batch;
	struct buf_writer w;
	uint8_t buf[600], man[4] = { 1, 2, 3, 4 };
	size_t len;

	T_CHECK(m && e);
	memset(&a, 0, sizeof(a));
	/* HELLO, byte for byte */
	m->type = SYNC_MSG_HELLO;
	m->version = SYNC_PROTO_VERSION;
	m->hello_flags = SYNC_HELLO_BUDDY;
	snprintf(m->name, sizeof(m->name), "bob");
	buf_writer_init(&w, buf, sizeof(buf));
	T_CHECK_EQ_INT(sync_msg_encode(&w, m), 0);
	T_CHECK(buf_writer_len(&w) == sizeof(hello) && memcmp(buf, hello, sizeof(hello)) == 0);
	T_CHECK_EQ_INT(sync_msg_decode(m, hello, sizeof(hello)), 0);
	T_CHECK(strcmp(m->name, "bob") == 0 && m->hello_flags == SYNC_HELLO_BUDDY);
	T_CHECK_EQ_INT(sync_msg_decode(m, hello, sizeof(hello) - 1), BFS_EMALFORMED);
	/* a PUSH of two entries: the count, a manifest on the file only */
	snprintf(e[0].path, sizeof(e[0].path), "a/b.txt");
	e[0].path_len = 7;
	e[0].type = STORE_ENTRY_FILE;
	e[0].mode = 0644;
	e[0].size = 4;
	e[0].mtime_ns = -5;
	e[0].vv[1] = 7;
	e[0].manifest = man;
	e[0].manifest_len = sizeof(man);
	e[1] = e[0];
	e[1].type = STORE_ENTRY_DIR;
	e[1].manifest = NULL;
	e[1].manifest_len = 0;
	e[1].deleted = true;
	buf_writer_init(&w, buf, sizeof(buf));
	T_CHECK_EQ_INT(sync_batch_begin(&batch, &w, SYNC_MSG_PUSH), 0);
	T_CHECK_EQ_INT(sync_batch_add_entry(&batch, &e[0]), 0);
	T_CHECK_EQ_INT(sync_batch_add_ack(&batch, &a), -EINVAL);
	e[1].manifest = man;
	e[1].manifest_len = sizeof(man);
	T_CHECK_EQ_INT(sync_batch_add_entry(&batch, &e[1]), -EINVAL); /* a manifest on a tombstone */
	e[1].manifest = NULL;
	e[1].manifest_len = 0;
	T_CHECK_EQ_INT(sync_batch_add_entry(&batch, &e[1]), 0);
	T_CHECK_EQ_INT(sync_batch_end(&batch), 0);
	len = buf_writer_len(&w);
	T_CHECK(buf[0] == SYNC_MSG_PUSH && buf[1] == 0 && buf[2] == 2);
	T_CHECK_EQ_INT(len, 3 + 2 * (2 + 7 + SYNC_ENTRY_FIXED_BYTES) + 4 + sizeof(man));
	T_CHECK_EQ_INT(sync_msg_decode(m, buf, len), 0);
	T_CHECK_EQ_INT(m->n_items, 2);
	T_CHECK_EQ_INT(sync_msg_next_entry(m, &e[1]), 1);
	T_CHECK(e[1].mtime_ns == -5 && e[1].vv[1] == 7 && e[1].manifest_len == 4 && memcmp(e[1].manifest, man, 4) == 0);
	T_CHECK_EQ_INT(sync_msg_next_entry(m, &e[1]), 1);
	T_CHECK(e[1].deleted && e[1].type == STORE_ENTRY_DIR && !e[1].manifest);
	T_CHECK_EQ_INT(sync_msg_next_entry(m, &e[1]), 0);
	/* damage: trailing byte, count off by one, a count of 0, an unknown flag */
	buf[len] = 0;
	T_CHECK_EQ_INT(sync_msg_decode(m, buf, len + 1), BFS_EMALFORMED);
	buf[2] = 3;
	T_CHECK_EQ_INT(sync_msg_decode(m, buf, len), BFS_EMALFORMED);
	buf[2] = 0;
	T_CHECK_EQ_INT(sync_msg_decode(m, buf, len), BFS_EMALFORMED);
	buf[2] = 2;
	buf[3 + 2 + 7 + 1] |= 0x80;
	T_CHECK_EQ_INT(sync_msg_decode(m, buf, len), BFS_EMALFORMED);
	/* an empty batch leaves nothing behind */
	buf_writer_init(&w, buf, sizeof(buf));
	T_CHECK_EQ_INT(sync_batch_begin(&batch, &w, SYNC_MSG_ACK), 0);
	T_CHECK_EQ_INT(sync_batch_end(&batch), -EINVAL);
	T_CHECK_EQ_INT(buf_writer_len(&w), 0);
	free(m);
	free(e);
}

/* ---- cases ---- */

T_CASE(hello_mutual_push_tombstone_rename)
{
	struct store_peer p;
	struct store_entry e;

	if (!pair()) {
		free_all();
		T_FAIL("alice and bob did not come up");
	}
	T_CHECK(store_peer_get(alice->pn.store, bob->pn.id->peer_id, &p) == 0 && p.mutual);
	T_CHECK(store_peer_get(bob->pn.store, alice->pn.id->peer_id, &p) == 0 && p.mutual);
	T_CHECK_EQ_INT(alice->ups, 1);
	T_CHECK_EQ_INT(bob->ups, 1);
	/* a file */
	T_CHECK_EQ_INT(publish(alice, bob, "hello.txt", "hello bob\n", 0), 0);
	WAIT(same(alice, bob, bob, alice, "hello.txt"), 5);
	T_CHECK(same(alice, bob, bob, alice, "hello.txt"));
	T_CHECK(has_manifest(bob, alice, "hello.txt"));
	T_CHECK(get_entry(bob, alice, "hello.txt", &e) == 0 && memcmp(e.owner, alice->pn.id->peer_id, 32) == 0);
	T_CHECK(strcmp(bob->last_changed, "hello.txt") == 0);
	/* a directory, a file in it, then its removal */
	T_CHECK_EQ_INT(make_dir(alice, bob, "docs"), 0);
	T_CHECK_EQ_INT(publish(alice, bob, "docs/a.txt", "a", 0), 0);
	WAIT(live(bob, alice, "docs/a.txt"), 5);
	T_CHECK(live(bob, alice, "docs") && same(alice, bob, bob, alice, "docs"));
	T_CHECK(same(alice, bob, bob, alice, "docs/a.txt"));
	T_CHECK_EQ_INT(remove_path(alice, bob, "docs/a.txt"), 0);
	WAIT(gone(bob, alice, "docs/a.txt"), 5);
	T_CHECK(same(alice, bob, bob, alice, "docs/a.txt"));
	/* rename = tombstone + new entry */
	T_CHECK_EQ_INT(rename_path(alice, bob, "hello.txt", "docs/hello.txt"), 0);
	WAIT(live(bob, alice, "docs/hello.txt") && gone(bob, alice, "hello.txt"), 5);
	T_CHECK(gone(bob, alice, "hello.txt"));
	T_CHECK(same(alice, bob, bob, alice, "docs/hello.txt"));
	/* the other way */
	T_CHECK_EQ_INT(publish(bob, alice, "docs/from-bob.txt", "from bob", 0), 0);
	WAIT(same(alice, bob, bob, alice, "docs/from-bob.txt"), 5);
	T_CHECK(same(alice, bob, bob, alice, "docs/from-bob.txt"));
	T_CHECK(has_manifest(alice, bob, "docs/from-bob.txt"));
	/* bob overwrites alice's file: newer wins at alice */
	T_CHECK_EQ_INT(publish(bob, alice, "docs/hello.txt", "bob was here", 0), 0);
	WAIT(get_entry(alice, bob, "docs/hello.txt", &e) == 0 && memcmp(e.owner, bob->pn.id->peer_id, 32) == 0, 5);
	T_CHECK(same(alice, bob, bob, alice, "docs/hello.txt"));
	T_CHECK_EQ_INT(stats(alice, bob).conflicts + stats(bob, alice).conflicts, 0);
	T_CHECK_EQ_INT(stats(alice, bob).refused + stats(bob, alice).refused, 0);
	free_all();
}

T_CASE(not_mutual_and_non_buddy_refused)
{
	struct store_peer p;

	T_CHECK_EQ_INT(node_start(bob, "bob"), 0);
	T_CHECK_EQ_INT(node_start(carol, "carol"), 0);
	/* carol added bob; bob knows carol's name but has not added her */
	T_CHECK_EQ_INT(add_buddy(carol, bob, STORE_BUDDY_ADDED), 0);
	T_CHECK_EQ_INT(add_buddy(bob, carol, STORE_BUDDY_NONE), 0);
	sync_peer_online(carol->sync, bob->pn.id->peer_id, true);
	sync_peer_online(bob->sync, carol->pn.id->peer_id, true); /* not a buddy: nothing happens */
	WAIT(stats(carol, bob).refused_by_far, 5);
	T_CHECK(stats(carol, bob).refused_by_far);
	T_CHECK_EQ_INT((int)sync_flows_refused(bob->sync), 1);
	T_CHECK(!up(carol, bob) && !up(bob, carol));
	T_CHECK_EQ_INT(carol->ups + bob->ups, 0);
	T_CHECK(store_peer_get(carol->pn.store, bob->pn.id->peer_id, &p) == 0 && !p.mutual);
	/* carol's entries never reach bob */
	T_CHECK_EQ_INT(publish(carol, bob, "x.txt", "x", 0), 0);
	pair_run_for(loop, 300 * MS);
	T_CHECK(absent(bob, carol, "x.txt"));
	/* once bob adds carol, her retry (or his) brings the folder up */
	T_CHECK_EQ_INT(add_buddy(bob, carol, STORE_BUDDY_ADDED), 0);
	sync_peer_online(bob->sync, carol->pn.id->peer_id, true);
	WAIT(up(bob, carol) && up(carol, bob), 5);
	T_CHECK(up(bob, carol) && up(carol, bob));
	WAIT(live(bob, carol, "x.txt"), 5);
	T_CHECK(same(bob, carol, carol, bob, "x.txt"));
	T_CHECK(store_peer_get(carol->pn.store, bob->pn.id->peer_id, &p) == 0 && p.mutual);
	/* bob removes carol while up: the folder goes down on both sides */
	T_CHECK_EQ_INT(add_buddy(bob, carol, STORE_BUDDY_NONE), 0);
	WAIT(!up(bob, carol) && !up(carol, bob), 3);
	T_CHECK(!up(bob, carol) && !up(carol, bob));
	free_all();
}

T_CASE(silent_buddy_down_then_up_again)
{
	struct udp_sock *u;

	if (!pair()) {
		free_all();
		T_FAIL("alice and bob did not come up");
	}
	/* bob's datagrams vanish for a while (shorter than the session's limit) */
	u = rtmfp_posix_udp(bob->pn.px);
	udp_set_drop(u, 100);
	WAIT(alice->downs == 1 && bob->downs == 1, 3);
	T_CHECK_EQ_INT(alice->downs, 1);
	T_CHECK(!up(alice, bob));
	udp_set_drop(u, 0);
	WAIT(up(alice, bob) && up(bob, alice), 3);
	T_CHECK(up(alice, bob) && up(bob, alice));
	T_CHECK_EQ_INT(alice->ups, 2);
	/* and the folder works as before */
	T_CHECK_EQ_INT(publish(bob, alice, "back.txt", "back", 0), 0);
	WAIT(same(alice, bob, bob, alice, "back.txt"), 3);
	T_CHECK(same(alice, bob, bob, alice, "back.txt"));
	free_all();
}

T_CASE(reconcile_after_kill_and_restart)
{
	struct sync_buddy_stats st;

	if (!pair()) {
		free_all();
		T_FAIL("alice and bob did not come up");
	}
	T_CHECK_EQ_INT(publish(alice, bob, "keep.txt", "kept", 0), 0);
	T_CHECK_EQ_INT(publish(alice, bob, "doomed.txt", "doomed", 0), 0);
	T_CHECK_EQ_INT(publish(alice, bob, "lost.txt", "lost at bob", 0), 0);
	WAIT(live(bob, alice, "doomed.txt") && live(bob, alice, "keep.txt") && acked(alice, bob, "lost.txt"), 5);
	T_CHECK(live(bob, alice, "doomed.txt"));
	T_CHECK(acked(alice, bob, "lost.txt"));
	/* bob dies without a word: the heartbeat notices within dead_ms */
	node_kill(bob);
	WAIT(alice->downs == 1, 3);
	T_CHECK_EQ_INT(alice->downs, 1);
	T_CHECK(!up(alice, bob));
	/* changes while apart, on both sides */
	T_CHECK_EQ_INT(publish(alice, bob, "while-apart-a.txt", "from alice", 0), 0);
	T_CHECK_EQ_INT(publish(alice, bob, "keep.txt", "kept v2", 0), 0);
	T_CHECK_EQ_INT(publish(bob, alice, "while-apart-b.txt", "from bob", 0), 0); /* no sync: stored only */
	T_CHECK_EQ_INT(tombstone_in(bob, alice, NULL, "doomed.txt"), 0);
	/* bob loses lost.txt and its manifest: alice's index omits agreed manifests, bob asks */
	{
		struct store_entry e;

		T_CHECK(get_entry(bob, alice, "lost.txt", &e) == 0);
		T_CHECK_EQ_INT(store_manifest_del(bob->pn.store, NULL, e.manifest), 0);
		T_CHECK_EQ_INT(store_entry_del(bob->pn.store, NULL, alice->pn.id->peer_id, "lost.txt"), 0);
		T_CHECK_EQ_INT(store_synced_del(bob->pn.store, NULL, alice->pn.id->peer_id, "lost.txt"), 0);
	}
	/* bob restarts with the same store */
	T_CHECK_EQ_INT(node_run(bob), 0);
	sync_peer_online(bob->sync, alice->pn.id->peer_id, true);
	WAIT(up(alice, bob) && up(bob, alice), 6);
	T_CHECK(up(alice, bob) && up(bob, alice));
	WAIT(live(bob, alice, "while-apart-a.txt") && live(alice, bob, "while-apart-b.txt") &&
	     gone(alice, bob, "doomed.txt") && same(alice, bob, bob, alice, "keep.txt"), 5);
	T_CHECK(same(alice, bob, bob, alice, "while-apart-a.txt"));
	T_CHECK(same(alice, bob, bob, alice, "while-apart-b.txt"));
	T_CHECK(same(alice, bob, bob, alice, "doomed.txt") && gone(alice, bob, "doomed.txt"));
	T_CHECK(same(alice, bob, bob, alice, "keep.txt"));
	WAIT(has_manifest(bob, alice, "lost.txt"), 3);
	T_CHECK(same(alice, bob, bob, alice, "lost.txt") && has_manifest(bob, alice, "lost.txt"));
	WAIT(stats(alice, bob).index_rounds >= 1 && stats(bob, alice).index_rounds >= 1, 3);
	st = stats(bob, alice);
	T_CHECK(st.index_rounds >= 1);
	T_CHECK_EQ_INT(st.conflicts + stats(alice, bob).conflicts, 0);
	/* an orderly offline and back: down, then up with nothing lost */
	sync_peer_online(alice->sync, bob->pn.id->peer_id, false);
	WAIT(!up(bob, alice), 3);
	T_CHECK(!up(alice, bob) && !up(bob, alice));
	T_CHECK_EQ_INT(publish(bob, alice, "after-offline.txt", "b", 0), 0);
	sync_peer_online(alice->sync, bob->pn.id->peer_id, true);
	WAIT(live(alice, bob, "after-offline.txt"), 6);
	T_CHECK(same(alice, bob, bob, alice, "after-offline.txt"));
	free_all();
}

/* conflict_copy_checks - both sides: @path the winner, @copy the loser, equal. */
static bool conflict_settled(const char *path, const char *copy)
{
	return same(alice, bob, bob, alice, path) && same(alice, bob, bob, alice, copy) && live(alice, bob, copy);
}

T_CASE(conflict_keeps_both_identically)
{
	const char *copy1 = "same (conflict from bob 2026-11-24).txt";
	const char *copy2 = "cross (conflict from alice 2026-11-24).txt";
	const char *copy3 = "draft (conflict from alice 2026-11-27)";
	struct store_entry e;

	if (!pair()) {
		free_all();
		T_FAIL("alice and bob did not come up");
	}
	T_CHECK_EQ_INT(publish(alice, bob, "same.txt", "v1", NOV_24_2026_NS), 0);
	WAIT(same(alice, bob, bob, alice, "same.txt"), 5);
	/* 1. apart: both write same.txt; alice's is newer (mtime), bob's is kept as a copy */
	sync_peer_online(alice->sync, bob->pn.id->peer_id, false);
	sync_peer_online(bob->sync, alice->pn.id->peer_id, false);
	WAIT(!up(bob, alice), 3);
	T_CHECK_EQ_INT(publish(alice, bob, "same.txt", "alice's v2", NOV_24_2026_NS + DAY_NS), 0);
	T_CHECK_EQ_INT(publish(bob, alice, "same.txt", "bob's v2", NOV_24_2026_NS + 3600ll * 1000000000ll), 0);
	sync_peer_online(alice->sync, bob->pn.id->peer_id, true);
	sync_peer_online(bob->sync, alice->pn.id->peer_id, true);
	WAIT(conflict_settled("same.txt", copy1), 6);
	T_CHECK(conflict_settled("same.txt", copy1));
	T_CHECK(get_entry(bob, alice, "same.txt", &e) == 0 && memcmp(e.owner, alice->pn.id->peer_id, 32) == 0);
	T_CHECK(get_entry(alice, bob, copy1, &e) == 0 && memcmp(e.owner, bob->pn.id->peer_id, 32) == 0);
	T_CHECK(has_manifest(alice, bob, copy1) && has_manifest(bob, alice, "same.txt"));
	/* 2. crossing pushes while up: bob's is newer this time */
	T_CHECK_EQ_INT(publish(alice, bob, "cross.txt", "alice crossing", NOV_24_2026_NS), 0);
	T_CHECK_EQ_INT(publish(bob, alice, "cross.txt", "bob crossing", NOV_24_2026_NS + 1), 0);
	WAIT(conflict_settled("cross.txt", copy2), 5);
	T_CHECK(conflict_settled("cross.txt", copy2));
	T_CHECK(get_entry(alice, bob, "cross.txt", &e) == 0 && memcmp(e.owner, bob->pn.id->peer_id, 32) == 0);
	/* 3. bob opened "draft" before alice's version arrived, released after */
	T_CHECK_EQ_INT(publish(alice, bob, "draft", "d1", NOV_24_2026_NS), 0);
	WAIT(same(alice, bob, bob, alice, "draft"), 5);
	T_CHECK(get_entry(bob, alice, "draft", &e) == 0);
	{
		int64_t opened_at = (int64_t)e.version; /* bob opens draft for writing */

		T_CHECK_EQ_INT(publish(alice, bob, "draft", "d2 by alice", NOV_24_2026_NS + 3 * DAY_NS), 0);
		WAIT(get_entry(bob, alice, "draft", &e) == 0 && e.size == strlen("d2 by alice"), 5);
		T_CHECK(same(alice, bob, bob, alice, "draft"));
		T_CHECK_EQ_INT(publish_base(bob, alice, "draft", "d2 by bob", NOV_24_2026_NS + 2 * DAY_NS,
					    opened_at), 0);
	}
	WAIT(conflict_settled("draft", copy3), 5);
	T_CHECK(conflict_settled("draft", copy3));
	/* bob's release came last (a higher version): his stays, alice's is the copy */
	T_CHECK(get_entry(alice, bob, "draft", &e) == 0 && e.size == strlen("d2 by bob"));
	T_CHECK(stats(alice, bob).conflicts >= 1 && stats(bob, alice).conflicts >= 1);
	free_all();
}

/* Delete against modify, directory against file, delete against delete. */
T_CASE(conflict_kinds)
{
	const char *dcopy = "d (conflict from bob 2026-11-24)";
	struct store_entry e;

	if (!pair()) {
		free_all();
		T_FAIL("alice and bob did not come up");
	}
	T_CHECK_EQ_INT(publish(alice, bob, "x", "x1", NOV_24_2026_NS), 0);
	T_CHECK_EQ_INT(publish(alice, bob, "y", "y1", NOV_24_2026_NS), 0);
	WAIT(same(alice, bob, bob, alice, "x") && same(alice, bob, bob, alice, "y"), 5);
	sync_peer_online(alice->sync, bob->pn.id->peer_id, false);
	sync_peer_online(bob->sync, alice->pn.id->peer_id, false);
	WAIT(!up(bob, alice), 3);
	T_CHECK_EQ_INT(remove_path(alice, bob, "x"), 0);                           /* alice deletes x */
	T_CHECK_EQ_INT(publish(bob, alice, "x", "x2 by bob", NOV_24_2026_NS), 0);  /* bob changes it */
	T_CHECK_EQ_INT(make_dir(alice, bob, "d"), 0);                              /* a directory ... */
	T_CHECK_EQ_INT(publish(bob, alice, "d", "a file", NOV_24_2026_NS), 0);     /* ... and a file */
	T_CHECK_EQ_INT(remove_path(alice, bob, "y"), 0);                           /* both delete y */
	T_CHECK_EQ_INT(remove_path(bob, alice, "y"), 0);
	sync_peer_online(alice->sync, bob->pn.id->peer_id, true);
	sync_peer_online(bob->sync, alice->pn.id->peer_id, true);
	WAIT(same(alice, bob, bob, alice, "x") && conflict_settled("d", dcopy) && same(alice, bob, bob, alice, "y"),
	     6);
	/* the change beats the removal: the data stays */
	T_CHECK(same(alice, bob, bob, alice, "x") && get_entry(alice, bob, "x", &e) == 0 && !e.deleted &&
		e.size == strlen("x2 by bob"));
	/* the directory stays, the file moves aside */
	T_CHECK(conflict_settled("d", dcopy));
	T_CHECK(get_entry(bob, alice, "d", &e) == 0 && e.type == STORE_ENTRY_DIR && !e.deleted);
	T_CHECK(get_entry(bob, alice, dcopy, &e) == 0 && e.type == STORE_ENTRY_FILE);
	/* two removals: one tombstone, no copy */
	T_CHECK(same(alice, bob, bob, alice, "y") && gone(alice, bob, "y"));
	free_all();
}

/* craft - write one PUSH of entry @e on alice's sync flow to bob. */
static int craft(const struct sync_entry *e)
{
	struct sync_batch batch;
	struct buf_writer w;
	uint8_t *bytes;
	size_t len;
	int rc;

	buf_writer_init_dynamic(&w, SYNC_MSG_MAX_BYTES);
	rc = sync_batch_begin(&batch, &w, SYNC_MSG_PUSH);
	if (rc == 0)
		rc = sync_batch_add_entry(&batch, e);
	if (rc == 0)
		rc = sync_batch_end(&batch);
	if (rc) {
		buf_writer_free(&w);
		return rc;
	}
	bytes = buf_writer_steal(&w, &len);
	rc = rtmfp_send_write(alice->out, bytes, len, rtmfp_posix_now());
	free(bytes);
	rtmfp_posix_kick(alice->pn.px);
	return rc;
}

/* signed_manifest - a manifest of @content owned by @owner, signed with @signer's key. */
static int signed_manifest(struct node *owner, struct node *signer, const char *content, uint8_t **out,
			   size_t *len, uint8_t hash[32])
{
	struct manifest *m = NULL;
	const uint8_t *bytes;
	char obj[128];
	int fd, rc;

	snprintf(obj, sizeof(obj), "%s/craft%d", owner->pn.home, owner->objects++);
	fd = open(obj, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -errno;
	rc = write(fd, content, strlen(content)) == (ssize_t)strlen(content) ? 0 : -EIO;
	if (rc == 0)
		rc = manifest_build(&m, fd, owner->pn.id->peer_id, NULL);
	close(fd);
	if (rc == 0)
		rc = manifest_sign(m, signer->pn.id->secret_key);
	if (rc == 0)
		rc = manifest_bytes(m, &bytes, len);
	if (rc == 0)
		rc = manifest_hash(m, hash);
	if (rc == 0)
		rc = (*out = malloc(*len)) ? 0 : -ENOMEM;
	if (rc == 0)
		memcpy(*out, bytes, *len);
	manifest_free(m);
	return rc;
}

static void file_msg(struct sync_entry *e, const char *path, size_t path_len, const uint8_t *owner,
		     const uint8_t *manifest, size_t mlen, const uint8_t hash[32], uint64_t size)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->path, path, path_len);
	e->path_len = path_len;
	e->type = STORE_ENTRY_FILE;
	e->mode = 0644;
	e->size = size;
	e->mtime_ns = NOV_24_2026_NS;
	memcpy(e->owner, owner, 32);
	e->version = 1;
	e->vv[0] = e->vv[1] = 1;
	memcpy(e->manifest_hash, hash, 32);
	e->manifest = manifest;
	e->manifest_len = mlen;
}

T_CASE(malformed_entries_refused_session_usable)
{
	static const char bad_paths[][12] = { "../x", "a/../b", "./a", "a//b", "/a", "a/", ".", "..", "a/." };
	char long_name[300], long_path[STORE_PATH_MAX + 1];
	struct sync_entry *m = calloc(1, sizeof(*m));
	uint8_t *good = NULL, *forged = NULL, *by_carol = NULL, hash[32], fhash[32], chash[32];
	size_t glen = 0, flen = 0, clen = 0;
	uint64_t refused;
	int sent = 0;

	T_CHECK(m != NULL);
	if (!pair() || node_start(carol, "carol")) {
		free(m);
		free_all();
		T_FAIL("setup failed");
	}
	T_CHECK_EQ_INT(signed_manifest(alice, alice, "ok", &good, &glen, hash), 0);
	T_CHECK_EQ_INT(signed_manifest(alice, carol, "forged", &forged, &flen, fhash), 0);
	T_CHECK_EQ_INT(signed_manifest(carol, carol, "carol's", &by_carol, &clen, chash), 0);
	/* bad names */
	for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
		file_msg(m, bad_paths[i], strlen(bad_paths[i]), alice->pn.id->peer_id, good, glen, hash, 2);
		T_CHECK_EQ_INT(craft(m), 0);
		sent++;
	}
	file_msg(m, "a\0b", 3, alice->pn.id->peer_id, good, glen, hash, 2); /* a NUL inside */
	T_CHECK_EQ_INT(craft(m), 0);
	sent++;
	memset(long_name, 'n', 256);
	long_name[256] = '\0';
	file_msg(m, long_name, 256, alice->pn.id->peer_id, good, glen, hash, 2); /* a 256-byte name */
	T_CHECK_EQ_INT(craft(m), 0);
	sent++;
	memset(long_path, 'p', STORE_PATH_MAX);
	long_path[STORE_PATH_MAX] = '\0';
	for (size_t i = 100; i < STORE_PATH_MAX; i += 100)
		long_path[i] = '/';
	file_msg(m, long_path, STORE_PATH_MAX, alice->pn.id->peer_id, good, glen, hash, 2); /* fits: accepted */
	T_CHECK_EQ_INT(craft(m), 0);
	/* bad manifests and owners */
	file_msg(m, "forged.txt", 10, alice->pn.id->peer_id, forged, flen, fhash, 6); /* signed by carol */
	T_CHECK_EQ_INT(craft(m), 0);
	sent++;
	file_msg(m, "carol.txt", 9, carol->pn.id->peer_id, by_carol, clen, chash, 7); /* owner not one of us */
	T_CHECK_EQ_INT(craft(m), 0);
	sent++;
	file_msg(m, "hash.txt", 8, alice->pn.id->peer_id, good, glen, fhash, 2); /* hash of another manifest */
	T_CHECK_EQ_INT(craft(m), 0);
	sent++;
	file_msg(m, "size.txt", 8, alice->pn.id->peer_id, good, glen, hash, 3); /* size differs */
	T_CHECK_EQ_INT(craft(m), 0);
	sent++;
	file_msg(m, "owner.txt", 9, bob->pn.id->peer_id, good, glen, hash, 2); /* manifest owner differs */
	T_CHECK_EQ_INT(craft(m), 0);
	sent++;
	file_msg(m, "dir", 3, alice->pn.id->peer_id, NULL, 0, hash, 0); /* a directory with a manifest hash */
	m->type = STORE_ENTRY_DIR;
	T_CHECK_EQ_INT(craft(m), 0);
	sent++;
	{
		static const uint8_t junk[] = { SYNC_MSG_PUSH, 0, 0 }; /* does not decode */

		T_CHECK_EQ_INT(rtmfp_send_write(alice->out, junk, sizeof(junk), rtmfp_posix_now()), 0);
		sent++;
	}
	/* then a good one through the same flow */
	T_CHECK_EQ_INT(publish(alice, bob, "good.txt", "still works", 0), 0);
	WAIT(same(alice, bob, bob, alice, "good.txt"), 5);
	T_CHECK(same(alice, bob, bob, alice, "good.txt"));
	refused = stats(bob, alice).refused;
	T_CHECK_EQ_INT((int)refused, sent);
	T_CHECK(up(alice, bob) && up(bob, alice));
	T_CHECK(live(bob, alice, long_path));
	T_CHECK(absent(bob, alice, "forged.txt") && absent(bob, alice, "carol.txt"));
	T_CHECK(absent(bob, alice, "hash.txt") && absent(bob, alice, "size.txt"));
	T_CHECK(absent(bob, alice, "owner.txt") && absent(bob, alice, "dir"));
	T_CHECK(absent(bob, alice, "x") && absent(bob, alice, "a"));
	free(good);
	free(forged);
	free(by_carol);
	free(m);
	free_all();
}

/* The conflict name keeps the extension and fits the name limit. */
/* fill_many - @n entries "d/fNNNNN" of @a's folder with @b, written straight to the store (one transaction). */
static int fill_many(struct node *a, struct node *b, int n)
{
	struct manifest *m = NULL;
	struct store_entry e;
	struct store_txn *t;
	const uint8_t *bytes;
	uint8_t hash[32];
	char obj[128];
	size_t len;
	int rc;

	snprintf(obj, sizeof(obj), "%s/obj-many", a->pn.home);
	rc = pair_manifest(&a->pn, obj, "many", 4, NULL, &m, &bytes, &len, hash);
	if (rc == 0)
		rc = store_txn_begin(a->pn.store, &t);
	if (rc) {
		manifest_free(m);
		return rc;
	}
	rc = store_manifest_put(a->pn.store, t, hash, bytes, len);
	memset(&e, 0, sizeof(e));
	memcpy(e.buddy, b->pn.id->peer_id, 32);
	snprintf(e.path, sizeof(e.path), "d");
	e.type = STORE_ENTRY_DIR;
	e.mode = 0755;
	memcpy(e.owner, a->pn.id->peer_id, 32);
	e.version = 1;
	if (rc == 0)
		rc = store_entry_put(a->pn.store, t, &e);
	for (int i = 0; rc == 0 && i < n; i++) {
		memset(&e, 0, sizeof(e));
		memcpy(e.buddy, b->pn.id->peer_id, 32);
		snprintf(e.path, sizeof(e.path), "d/f%05d", i);
		e.type = STORE_ENTRY_FILE;
		e.mode = 0644;
		e.size = 4;
		e.mtime_ns = NOV_24_2026_NS;
		memcpy(e.owner, a->pn.id->peer_id, 32);
		e.version = 2;
		e.has_base = true;
		e.base = 1;
		memcpy(e.manifest, hash, 32);
		rc = store_entry_put(a->pn.store, t, &e);
	}
	manifest_free(m);
	if (rc) {
		store_txn_abort(t);
		return rc;
	}
	return store_txn_commit(t);
}

/* count_live - live entries of @n's folder with @b. */
static int count_one(void *ctx, const struct store_entry *e)
{
	if (!e->deleted)
		(*(int *)ctx)++;
	return 0;
}

static int count_live(struct node *n, struct node *b)
{
	int c = 0;

	return store_entry_foreach(n->pn.store, NULL, b->pn.id->peer_id, count_one, &c) ? -1 : c;
}

/*
 * reconcile_10000_bounded - 10,000 entries new to bob arrive in alice's
 * index: bob applies them in few transactions (at most SYNC_APPLY_BUDGET
 * items each, one per loop turn), alice records the acks likewise; bob
 * killed halfway loses nothing; a reconnection with nothing changed
 * commits nothing.
 */
#define MANY 10000
T_CASE(reconcile_10000_bounded)
{
	const uint64_t max_commits = MANY / SYNC_APPLY_BUDGET + 8;
	struct sync_buddy_stats sb, sa;
	int i;

	if (!pair()) {
		free_all();
		T_FAIL("alice and bob did not come up");
	}
	/* alice's folder grows while bob is away */
	sync_peer_online(alice->sync, bob->pn.id->peer_id, false);
	sync_peer_online(bob->sync, alice->pn.id->peer_id, false);
	WAIT(!up(alice, bob) && !up(bob, alice), 3);
	T_CHECK_EQ_INT(fill_many(alice, bob, MANY), 0);
	sync_peer_online(alice->sync, bob->pn.id->peer_id, true);
	sync_peer_online(bob->sync, alice->pn.id->peer_id, true);
	WAIT(stats(bob, alice).applied >= MANY + 1 && live(bob, alice, "d/f09999") &&
	     acked(alice, bob, "d/f09999") && stats(alice, bob).inbox == 0, 15);
	sb = stats(bob, alice);
	sa = stats(alice, bob);
	T_CHECK_EQ_INT(count_live(bob, alice), MANY + 1);
	T_CHECK(same(alice, bob, bob, alice, "d/f00000") && same(alice, bob, bob, alice, "d/f09999"));
	T_CHECK(has_manifest(bob, alice, "d/f05000"));
	/* one transaction per turn of at most SYNC_APPLY_BUDGET items, not one per entry or message */
	T_CHECK(sb.max_turn_items <= SYNC_APPLY_BUDGET && sa.max_turn_items <= SYNC_APPLY_BUDGET);
	T_CHECK(sb.commits >= 1 && sb.commits <= max_commits);
	T_CHECK(sa.commits >= 1 && sa.commits <= max_commits);
	T_CHECK(sb.turns >= MANY / SYNC_APPLY_BUDGET); /* the loop turned in between */
	if (sb.commits > max_commits || sa.commits > max_commits)
		fprintf(stderr, "commits: bob %llu alice %llu\n", (unsigned long long)sb.commits,
			(unsigned long long)sa.commits);

	/* a reconnection with nothing changed writes nothing */
	sync_peer_online(alice->sync, bob->pn.id->peer_id, false);
	WAIT(!up(alice, bob) && !up(bob, alice), 3);
	sync_peer_online(alice->sync, bob->pn.id->peer_id, true);
	WAIT(up(alice, bob) && up(bob, alice) && stats(bob, alice).index_rounds >= 2 &&
	     stats(alice, bob).index_rounds >= 2, 6);
	for (i = 0; i < 100 && (stats(bob, alice).inbox || stats(alice, bob).inbox || stats(bob, alice).queued ||
				stats(alice, bob).queued); i++)
		pair_run_for(loop, 20 * MS);
	T_CHECK(stats(bob, alice).index_rounds >= 2);
	T_CHECK_EQ_INT(stats(bob, alice).commits - sb.commits, 0);
	T_CHECK_EQ_INT(stats(alice, bob).commits - sa.commits, 0);

	/* bob killed halfway through a first reconciliation: nothing lost */
	node_kill(bob);
	{
		struct store_txn *t, *ta;

		/* bob forgets the folder: entries and agreements */
		T_CHECK_EQ_INT(store_txn_begin(bob->pn.store, &t), 0);
		T_CHECK_EQ_INT(store_txn_begin(alice->pn.store, &ta), 0);
		for (i = 0; i < MANY; i++) {
			char p[32];

			snprintf(p, sizeof(p), "d/f%05d", i);
			store_entry_del(bob->pn.store, t, alice->pn.id->peer_id, p);
			store_synced_del(bob->pn.store, t, alice->pn.id->peer_id, p);
			store_synced_del(alice->pn.store, ta, bob->pn.id->peer_id, p);
		}
		T_CHECK_EQ_INT(store_txn_commit(t), 0);
		T_CHECK_EQ_INT(store_txn_commit(ta), 0);
	}
	WAIT(!up(alice, bob), 3);
	T_CHECK_EQ_INT(node_run(bob), 0);
	sync_peer_online(bob->sync, alice->pn.id->peer_id, true);
	WAIT(stats(bob, alice).applied >= MANY / 3, 10);
	T_CHECK(stats(bob, alice).applied < MANY); /* really halfway */
	node_kill(bob); /* kill -9: what was committed stays, the rest comes again */
	WAIT(!up(alice, bob), 3);
	T_CHECK(count_live(bob, alice) >= MANY / 3 - (int)SYNC_APPLY_BUDGET);
	T_CHECK_EQ_INT(node_run(bob), 0);
	sync_peer_online(bob->sync, alice->pn.id->peer_id, true);
	WAIT(count_live(bob, alice) == MANY + 1 && acked(alice, bob, "d/f09999"), 15);
	T_CHECK_EQ_INT(count_live(bob, alice), MANY + 1);
	T_CHECK(same(alice, bob, bob, alice, "d/f00000") && same(alice, bob, bob, alice, "d/f09999"));
	free_all();
}

T_CASE(conflict_names)
{
	char longn[260];
	struct store_entry e;

	if (!pair()) {
		free_all();
		T_FAIL("alice and bob did not come up");
	}
	/* a long name with an extension: the stem is cut, the suffix and ".txt" stay */
	memset(longn, 'L', 250);
	memcpy(longn + 250, ".txt", 5);
	T_CHECK_EQ_INT(publish(alice, bob, longn, "v1", NOV_24_2026_NS), 0);
	WAIT(same(alice, bob, bob, alice, longn), 5);
	sync_peer_online(alice->sync, bob->pn.id->peer_id, false);
	sync_peer_online(bob->sync, alice->pn.id->peer_id, false);
	WAIT(!up(bob, alice), 3);
	T_CHECK_EQ_INT(publish(alice, bob, longn, "alice", NOV_24_2026_NS + 2), 0);
	T_CHECK_EQ_INT(publish(bob, alice, longn, "bob", NOV_24_2026_NS + 1), 0);
	sync_peer_online(alice->sync, bob->pn.id->peer_id, true);
	sync_peer_online(bob->sync, alice->pn.id->peer_id, true);
	WAIT(stats(alice, bob).conflicts >= 1 && stats(bob, alice).conflicts >= 1, 6);
	{
		char want[300];
		size_t suffix = strlen(" (conflict from bob 2026-11-24)");

		snprintf(want, sizeof(want), "%.*s (conflict from bob 2026-11-24).txt", (int)(255 - suffix - 4),
			 longn);
		T_CHECK_EQ_INT(strlen(want), 255);
		WAIT(conflict_settled(longn, want), 3);
		T_CHECK(conflict_settled(longn, want));
		T_CHECK(get_entry(alice, bob, want, &e) == 0 && e.size == 3);
	}
	free_all();
}

int main(void)
{
	log_init("test_sync");
	log_set_level(getenv("SYNC_TEST_LOG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
	if (loop_new(&loop))
		return 1;
	T_RUN(proto_codec);
	T_RUN(hello_mutual_push_tombstone_rename);
	T_RUN(not_mutual_and_non_buddy_refused);
	T_RUN(reconcile_after_kill_and_restart);
	T_RUN(silent_buddy_down_then_up_again);
	T_RUN(conflict_keeps_both_identically);
	T_RUN(conflict_kinds);
	T_RUN(malformed_entries_refused_session_usable);
	T_RUN(conflict_names);
	T_RUN(reconcile_10000_bounded);
	loop_free(loop);
	return t_done();
}
