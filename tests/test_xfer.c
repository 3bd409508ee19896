/*
 * test_xfer.c - block transfers between two xfer instances over two real
 * RTMFP instances (rtmfp_posix on 127.0.0.1, one loop), each with its own
 * home, identity and store: the owner ("srv") publishes files as fs_stage
 * does (object file, manifest, local blocks, an entry in the reader's
 * folder), the reader ("cli") fetches their blocks.  Shows: every block of
 * a multi-block file fetched, checked, cached and equal, many in flight,
 * duplicates merged, arrived() never inside xfer_fetch(); a tampered block
 * refused and never cached; a non-buddy refused; GETs that do not match
 * the entry or manifest refused; the owner vanishing mid-transfer fails
 * what is left within the timeout; an owner that stays connected but
 * answers nothing times out and its late answers are dropped; a raw owner
 * that answers wrong and a raw reader that asks wrong; xfer_peer_down and
 * a later fetch on new flows; the codec.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>
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
#include "buddyfs/rtmfp.h"
#include "buddyfs/rtmfp_posix.h"
#include "buddyfs/store.h"
#include "buddyfs/xfer.h"
#include "buddyfs/xfer_proto.h"

#define SEC LOOP_NS_PER_S
#define MAX_BLOCKS 512
#define TIMEOUT_S 10          /* generous: slow machines, valgrind */
#define SHORT_TIMEOUT_S 2     /* owner_vanishes */

struct node {
	const char *label;
	struct pair_node pn;        /* home, identity, store, instance */
	struct xfer *x;
	struct node *other;
	bool allow;                 /* what allowed() answers */
	bool tamper;
	bool pause_new;             /* hold delivery on new receiving flows */
	struct rtmfp_recv *paused;
	/* raw: no xfer behind the rtmfp events; the test speaks the protocol */
	bool raw;
	struct rtmfp_recv *raw_in;  /* a reader's GETs (raw owner) / answers (raw reader) */
	struct rtmfp_send *raw_out; /* our answers (raw owner) / GETs (raw reader) */
	int raw_gets, raw_answers, raw_out_closed;
	struct xfer_proto_msg raw_last; /* the last answer a raw reader got */
	/* arrivals, matched against the published file's blocks */
	const struct manifest *watch;
	int result[MAX_BLOCKS];     /* 1: not yet; else the err */
	int n_arrived, n_extra, n_dup;
	unsigned max_in_flight;     /* reader: asked and not answered */
	unsigned max_queued;        /* owner: GETs waiting for the flow */
};

static struct loop *loop;
static unsigned timeout_s = TIMEOUT_S; /* for the next node_start */
static bool in_fetch;          /* arrived() must never run inside xfer_fetch */
static int arrived_inside;

/* ---- the rtmfp glue a daemon's net module would be ---- */

/* ---- a raw peer: speaks the wire protocol by hand, badly ---- */

static void raw_recv_flow(struct node *n, struct rtmfp_recv *f, const uint8_t *meta, size_t len,
			  struct rtmfp_send *assoc)
{
	if (!assoc && rtmfp_recv_open_return(f, &n->raw_out, meta, len, rtmfp_posix_now()) != 0)
		return;
	rtmfp_recv_accept(f);
	n->raw_in = f;
}

static void raw_write(struct node *n, const void *msg, size_t len)
{
	if (n->raw_out)
		rtmfp_send_write(n->raw_out, msg, len, rtmfp_posix_now());
}

/* raw_message - as owner: GET 1 gets a stray and a short BLOCK, GET 2 a GET back. */
static void raw_message(struct node *n, const uint8_t *msg, size_t len)
{
	uint8_t out[64];
	struct xfer_proto_msg m;

	if (xfer_proto_decode(&m, msg, len) != 0)
		return;
	if (m.type != XFER_MSG_GET) { /* we are a reader: an answer */
		n->raw_answers++;
		n->raw_last = m;
		n->raw_last.data = NULL;
		return;
	}
	n->raw_gets++;
	memset(out, 0x5a, sizeof(out));
	if (n->raw_gets == 1) {
		xfer_proto_block_header(out, m.req + 1000); /* no such request: ignored */
		raw_write(n, out, sizeof(out));
		xfer_proto_block_header(out, m.req);        /* too short: -EIO */
		raw_write(n, out, sizeof(out));
	} else if (n->raw_gets == 2) {
		raw_write(n, msg, len);                     /* a GET on the answer flow */
	}
}

static void cb_recv_flow(void *ctx, struct rtmfp_recv *f, const uint8_t *meta, size_t len,
			 struct rtmfp_send *assoc)
{
	struct node *n = ctx;

	if (n->raw) {
		raw_recv_flow(n, f, meta, len, assoc);
		return;
	}
	xfer_on_recv_flow(n->x, f, meta, len, assoc); /* anything else: rejected */
	if (n->pause_new) {
		rtmfp_recv_pause(f, true, rtmfp_posix_now());
		n->paused = f;
	}
}

static void cb_message(void *ctx, struct rtmfp_recv *f, const uint8_t *msg, size_t len)
{
	struct node *n = ctx;

	if (n->raw)
		raw_message(n, msg, len);
	else
		xfer_on_message(n->x, f, msg, len);
}

static void cb_recv_closed(void *ctx, struct rtmfp_recv *f, int err)
{
	struct node *n = ctx;

	if (!n->raw)
		xfer_on_recv_closed(n->x, f, err);
	else if (f == n->raw_in)
		n->raw_in = NULL;
}

static void cb_writable(void *ctx, struct rtmfp_send *f)
{
	struct node *n = ctx;

	if (!n->raw)
		xfer_on_writable(n->x, f);
}

static void cb_send_closed(void *ctx, struct rtmfp_send *f, int err)
{
	struct node *n = ctx;

	if (!n->raw) {
		xfer_on_send_closed(n->x, f, err);
	} else if (f == n->raw_out) {
		n->raw_out = NULL;
		n->raw_out_closed = err ? err : 1;
	}
}

static void cb_session_closed(void *ctx, struct rtmfp_session *s, int err)
{
	struct node *n = ctx;

	if (!n->raw)
		xfer_on_session_closed(n->x, s, err);
}

static int open_flow(void *ctx, const uint8_t peer_id[static STORE_PEER_ID_BYTES], const uint8_t *meta,
		     size_t meta_len, struct rtmfp_send **out)
{
	struct node *n = ctx;

	if (!n->other || !n->other->pn.px)
		return -ENOTCONN;
	return pair_open_flow(&n->pn, &n->other->pn, peer_id, meta, meta_len, out);
}

static bool allowed(void *ctx, const uint8_t peer_id[static STORE_PEER_ID_BYTES])
{
	struct node *n = ctx;

	(void)peer_id;
	return n->allow;
}

static void kick(void *ctx)
{
	struct node *n = ctx;

	rtmfp_posix_kick(n->pn.px);
}

static void arrived(void *ctx, const uint8_t hash[static STORE_HASH_BYTES], int err)
{
	struct node *n = ctx;
	struct manifest_block b;
	bool found = false;

	if (in_fetch)
		arrived_inside++;
	n->n_arrived++;
	for (uint32_t i = 0; n->watch && i < manifest_block_count(n->watch); i++) {
		if (manifest_block(n->watch, i, &b) == 0 && memcmp(b.hash, hash, 32) == 0) {
			if (n->result[i] != 1)
				n->n_dup++;
			n->result[i] = err;
			found = true;
		}
	}
	if (!found)
		n->n_extra++;
}

static int node_start(struct node *n, const char *label)
{
	const struct rtmfp_callbacks cb = {
		.session_closed = cb_session_closed,
		.recv_flow = cb_recv_flow,
		.message = cb_message,
		.recv_closed = cb_recv_closed,
		.writable = cb_writable,
		.send_closed = cb_send_closed,
	};
	struct rtmfp_params rp = pair_fast_params();
	struct xfer_params xp;
	char objects[128];
	int rc;

	n->label = label;
	strcpy(n->pn.home, "/tmp/test_xfer_home.XXXXXX");
	rc = pair_node_open(&n->pn, label);
	if (rc)
		return rc;
	snprintf(objects, sizeof(objects), "%s/objects", n->pn.home);
	if (mkdir(objects, 0700))
		return -errno;
	rc = pair_node_listen(&n->pn, loop, &cb, n, &rp);
	if (rc)
		return rc;
	memset(&xp, 0, sizeof(xp));
	xp.loop = loop;
	xp.store = n->pn.store;
	xp.id = n->pn.id;
	xp.home = n->pn.home;
	xp.timeout_s = timeout_s;
	xp.test_tamper = n->tamper;
	xp.open_flow = open_flow;
	xp.allowed = allowed;
	xp.arrived = arrived;
	xp.kick = kick;
	xp.ctx = n;
	return xfer_new(&n->x, &xp);
}

/* node_vanish - the process dies: no word to the far end. */
static void node_vanish(struct node *n)
{
	pair_node_stop(&n->pn);
	xfer_free(n->x);
	n->x = NULL;
}

static void node_free(struct node *n)
{
	node_vanish(n);
	pair_node_close(&n->pn);
	memset(n, 0, sizeof(*n));
}

static struct node cli, srv;

static int pair_start_raw(bool srv_allows, bool tamper, bool cli_raw, bool srv_raw)
{
	int rc;

	memset(&cli, 0, sizeof(cli));
	memset(&srv, 0, sizeof(srv));
	if (loop_new(&loop))
		return -1;
	cli.allow = true;
	srv.allow = srv_allows;
	srv.tamper = tamper;
	cli.raw = cli_raw;
	srv.raw = srv_raw;
	rc = node_start(&cli, "cli");
	if (rc == 0)
		rc = node_start(&srv, "srv");
	cli.other = &srv;
	srv.other = &cli;
	return rc;
}

static int pair_start(bool srv_allows, bool tamper)
{
	return pair_start_raw(srv_allows, tamper, false, false);
}

static void pair_free(void)
{
	node_free(&cli);
	node_free(&srv);
	loop_free(loop);
	loop = NULL;
}

/* ---- publishing on the owner's side, as fs_stage does ---- */

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < n; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		p[i] = (uint8_t)(s >> 56);
	}
}

/*
 * publish - @len bytes of @data as @path in the folder @owner shares with
 * @folder (the reader's peer id), block size @bs.  Returns the signed
 * manifest (the caller frees it) or NULL.
 */
static struct manifest *publish(struct node *owner, const uint8_t folder[static 32], const char *path,
				const uint8_t *data, size_t len, uint32_t bs)
{
	struct manifest_build_params bp = { .block_bytes = bs, .threads = 1 };
	char tmp[PATH_MAX], obj[PATH_MAX], hex[2 * STORE_HASH_BYTES + 1];
	uint8_t hash[STORE_HASH_BYTES];
	struct manifest *m = NULL;
	struct store_entry *e = calloc(1, sizeof(*e));
	struct store_txn *t = NULL;
	const uint8_t *bytes;
	size_t blen;
	int rc;

	snprintf(tmp, sizeof(tmp), "%s/objects/.tmp", owner->pn.home);
	if (!e || pair_manifest(&owner->pn, tmp, data, len, &bp, &m, &bytes, &blen, hash))
		goto fail;
	buf_hex(hex, hash, STORE_HASH_BYTES);
	snprintf(obj, sizeof(obj), "%s/objects/%s", owner->pn.home, hex);
	if (rename(tmp, obj))
		goto fail;
	memcpy(e->buddy, folder, 32);
	snprintf(e->path, sizeof(e->path), "%s", path);
	e->type = STORE_ENTRY_FILE;
	e->mode = 0644;
	e->size = len;
	memcpy(e->owner, owner->pn.id->peer_id, 32);
	e->version = 1;
	memcpy(e->manifest, hash, STORE_HASH_BYTES);
	rc = store_txn_begin(owner->pn.store, &t);
	if (rc == 0)
		rc = store_manifest_put(owner->pn.store, t, hash, bytes, blen);
	for (uint32_t i = 0; rc == 0 && i < manifest_block_count(m); i++) {
		struct manifest_block b;

		rc = manifest_block(m, i, &b);
		if (rc == 0)
			rc = store_block_local_put(owner->pn.store, t, b.hash, hex, b.offset, b.len);
	}
	if (rc == 0)
		rc = store_entry_put(owner->pn.store, t, e);
	if (rc == 0)
		rc = store_txn_commit(t);
	else if (t)
		store_txn_abort(t);
	if (rc)
		goto fail;
	free(e);
	return m;
fail:
	free(e);
	manifest_free(m);
	return NULL;
}

static void want_of(struct xfer_want *w, const struct node *owner, const char *path,
		    const struct manifest *m, uint32_t i)
{
	struct manifest_block b;

	memset(w, 0, sizeof(*w));
	manifest_block(m, i, &b);
	memcpy(w->owner, owner->pn.id->peer_id, 32);
	w->path = path;
	manifest_hash(m, w->manifest);
	w->index = i;
	memcpy(w->hash, b.hash, 32);
	w->len = b.len;
}

static int fetch(struct node *n, const struct xfer_want *w)
{
	int rc;

	in_fetch = true;
	rc = xfer_fetch(n->x, w);
	in_fetch = false;
	return rc;
}

static void watch(struct node *n, const struct manifest *m)
{
	n->watch = m;
	n->n_arrived = n->n_extra = n->n_dup = 0;
	for (int i = 0; i < MAX_BLOCKS; i++)
		n->result[i] = 1;
}

static void sample(struct node *n)
{
	struct xfer_stat st[4];
	size_t k;

	if (!n->x)
		return;
	k = xfer_stats(n->x, st, 4);
	for (size_t i = 0; i < k; i++)
		if (!st[i].serving && st[i].in_flight > n->max_in_flight)
			n->max_in_flight = st[i].in_flight;
	if (!n->other->x)
		return;
	k = xfer_stats(n->other->x, st, 4);
	for (size_t i = 0; i < k; i++)
		if (st[i].serving && st[i].in_flight > n->other->max_queued)
			n->other->max_queued = st[i].in_flight;
}

/* run - the loop until @n saw @count arrivals or @limit_ns passed. */
static bool run_until_arrived(struct node *n, int count, uint64_t limit_ns)
{
	uint64_t end = loop_clock_ns() + limit_ns;

	while (n->n_arrived < count) {
		if (loop_clock_ns() > end)
			return false;
		loop_run_once(loop, 20 * LOOP_NS_PER_MS);
		sample(n);
	}
	return true;
}

/* cached_equal - block @i of @m is in @n's cache with the bytes of @data. */
static bool cached_equal(struct node *n, const struct manifest *m, uint32_t i, const uint8_t *data)
{
	static uint8_t buf[MANIFEST_BLOCK_BYTES];
	struct manifest_block b;
	struct store_block sb;

	if (manifest_block(m, i, &b) || store_block_get(n->pn.store, NULL, b.hash, &sb, buf, sizeof(buf)))
		return false;
	return sb.kind == STORE_BLOCK_CACHED && sb.length == b.len && memcmp(buf, data + b.offset, b.len) == 0;
}

static bool cached_any(struct node *n, const struct manifest *m)
{
	struct manifest_block b;
	struct store_block sb;

	for (uint32_t i = 0; i < manifest_block_count(m); i++)
		if (manifest_block(m, i, &b) == 0 && store_block_get(n->pn.store, NULL, b.hash, &sb, NULL, 0) == 0)
			return true;
	return false;
}

/* ---- cases ---- */

T_CASE(proto_roundtrip)
{
	uint8_t buf[XFER_PROTO_GET_MAX_BYTES + 8], blk[XFER_PROTO_BLOCK_HEADER_BYTES + 3];
	struct xfer_proto_msg m, d;
	struct buf_writer w;
	char path[STORE_PATH_MAX + 2];

	memset(&m, 0, sizeof(m));
	m.req = 0xdeadbeef;
	memset(m.manifest, 0x11, 32);
	m.index = 7;
	memset(m.hash, 0x22, 32);
	m.len = 262144;
	m.path = (const uint8_t *)"dir/file.txt";
	m.path_len = 12;
	buf_writer_init(&w, buf, sizeof(buf));
	T_CHECK_EQ_INT(xfer_proto_get_encode(&w, &m), 0);
	T_CHECK_EQ_INT(buf_writer_len(&w), XFER_PROTO_GET_FIXED_BYTES + 12);
	T_CHECK_EQ_INT(buf[0], XFER_PROTO_VERSION);
	T_CHECK_EQ_INT(buf[1], XFER_MSG_GET);
	T_CHECK_EQ_INT(xfer_proto_decode(&d, buf, buf_writer_len(&w)), 0);
	T_CHECK(d.type == XFER_MSG_GET && d.req == m.req && d.index == 7 && d.len == 262144);
	T_CHECK(d.path_len == 12 && memcmp(d.path, "dir/file.txt", 12) == 0);
	T_CHECK_MEM(d.manifest, m.manifest, 32);
	T_CHECK_MEM(d.hash, m.hash, 32);
	/* truncated, trailing byte, other version, zero length, NUL in the path */
	for (size_t n = 0; n < buf_writer_len(&w); n++)
		T_CHECK_EQ_INT(xfer_proto_decode(&d, buf, n), BFS_EMALFORMED);
	buf[buf_writer_len(&w)] = 'x';
	T_CHECK_EQ_INT(xfer_proto_decode(&d, buf, buf_writer_len(&w) + 1), BFS_EMALFORMED);
	buf[0] = 2;
	T_CHECK_EQ_INT(xfer_proto_decode(&d, buf, buf_writer_len(&w)), BFS_EVERSION);
	buf[0] = XFER_PROTO_VERSION;
	buf[XFER_PROTO_GET_FIXED_BYTES + 3] = 0;
	T_CHECK_EQ_INT(xfer_proto_decode(&d, buf, buf_writer_len(&w)), BFS_EMALFORMED);
	m.len = 0;
	buf_writer_init(&w, buf, sizeof(buf));
	T_CHECK_EQ_INT(xfer_proto_get_encode(&w, &m), -EINVAL);
	m.len = STORE_BLOCK_MAX_BYTES + 1;
	T_CHECK_EQ_INT(xfer_proto_get_encode(&w, &m), -EINVAL);
	m.len = 1;
	memset(path, 'a', sizeof(path));
	m.path = (const uint8_t *)path;
	m.path_len = STORE_PATH_MAX;
	T_CHECK_EQ_INT(xfer_proto_get_encode(&w, &m), 0);
	T_CHECK_EQ_INT(buf_writer_len(&w), XFER_PROTO_GET_MAX_BYTES);
	m.path_len = STORE_PATH_MAX + 1;
	buf_writer_init(&w, buf, sizeof(buf));
	T_CHECK_EQ_INT(xfer_proto_get_encode(&w, &m), -EINVAL);
	buf_writer_init(&w, buf, 10);
	m.path_len = 3;
	T_CHECK_EQ_INT(xfer_proto_get_encode(&w, &m), -ENOSPC);
	/* BLOCK */
	xfer_proto_block_header(blk, 42);
	memcpy(blk + XFER_PROTO_BLOCK_HEADER_BYTES, "abc", 3);
	T_CHECK_EQ_INT(xfer_proto_decode(&d, blk, sizeof(blk)), 0);
	T_CHECK(d.type == XFER_MSG_BLOCK && d.req == 42 && d.data_len == 3 && memcmp(d.data, "abc", 3) == 0);
	T_CHECK_EQ_INT(xfer_proto_decode(&d, blk, XFER_PROTO_BLOCK_HEADER_BYTES), BFS_EMALFORMED);
	/* ERROR */
	buf_writer_init(&w, buf, sizeof(buf));
	T_CHECK_EQ_INT(xfer_proto_error_encode(&w, 9, XFER_ERR_CHANGED), 0);
	T_CHECK_EQ_INT(buf_writer_len(&w), XFER_PROTO_ERROR_BYTES);
	T_CHECK_EQ_INT(xfer_proto_decode(&d, buf, XFER_PROTO_ERROR_BYTES), 0);
	T_CHECK(d.type == XFER_MSG_ERROR && d.req == 9 && d.code == XFER_ERR_CHANGED);
	buf[6] = 0;
	T_CHECK_EQ_INT(xfer_proto_decode(&d, buf, XFER_PROTO_ERROR_BYTES), BFS_EMALFORMED);
	buf[6] = XFER_ERR_MAX + 1;
	T_CHECK_EQ_INT(xfer_proto_decode(&d, buf, XFER_PROTO_ERROR_BYTES), BFS_EMALFORMED);
	T_CHECK_EQ_INT(xfer_proto_error_encode(&w, 9, 0), -EINVAL);
	/* unknown type */
	buf[1] = 0x02;
	T_CHECK_EQ_INT(xfer_proto_decode(&d, buf, XFER_PROTO_ERROR_BYTES), BFS_EMALFORMED);
	T_CHECK_EQ_INT(xfer_proto_decode(&d, buf, 0), BFS_EMALFORMED);
}

/* A 24 MiB + 1000 byte file (97 blocks, more than one window): all fetched. */
T_CASE(fetch_all_blocks)
{
	const size_t len = (24u << 20) + 1000;
	uint8_t *data = malloc(len);
	struct manifest *m = NULL;
	struct xfer_totals ct, st;
	struct xfer_want w;
	uint32_t n;
	bool ok = true;

	T_CHECK(data && pair_start(true, false) == 0);
	fill(data, len, 1);
	m = publish(&srv, cli.pn.id->peer_id, "docs/big.bin", data, len, 0);
	T_CHECK(m);
	n = manifest_block_count(m);
	T_CHECK_EQ_INT(n, 97);
	watch(&cli, m);
	for (uint32_t i = 0; i < n; i++) {
		want_of(&w, &srv, "docs/big.bin", m, i);
		ok &= fetch(&cli, &w) == 0;
	}
	want_of(&w, &srv, "docs/big.bin", m, 3); /* a duplicate: merged */
	ok &= fetch(&cli, &w) == 0;
	T_CHECK(ok);
	T_CHECK_EQ_INT(cli.n_arrived, 0);
	T_CHECK(run_until_arrived(&cli, (int)n, 15 * SEC));
	pair_run_for(loop, 50 * LOOP_NS_PER_MS);
	T_CHECK_EQ_INT(cli.n_arrived, n);
	T_CHECK_EQ_INT(cli.n_dup + cli.n_extra, 0);
	T_CHECK_EQ_INT(arrived_inside, 0);
	for (uint32_t i = 0; i < n; i++) {
		T_CHECK_EQ_INT(cli.result[i], 0);
		T_CHECK(cached_equal(&cli, m, i, data));
	}
	printf("  most blocks asked: %u, most GETs queued at the owner: %u\n", cli.max_in_flight,
	       srv.max_queued);
	T_CHECK(cli.max_in_flight > 16);
	T_CHECK(srv.max_queued <= XFER_WINDOW_BYTES / MANIFEST_BLOCK_BYTES);
	xfer_totals(cli.x, &ct);
	xfer_totals(srv.x, &st);
	T_CHECK_EQ_INT(ct.blocks_fetched, n);
	T_CHECK_EQ_INT(ct.bytes_fetched, len);
	T_CHECK_EQ_INT(st.blocks_served, n);
	T_CHECK_EQ_INT(st.errors_sent + ct.blocks_bad + ct.timeouts, 0);
	T_CHECK(ct.store_commits >= 1 && ct.store_commits <= n);
	/* status: one transfer each way, complete */
	{
		struct xfer_stat xs[4];

		T_CHECK_EQ_INT(xfer_stats(cli.x, xs, 4), 1);
		T_CHECK(!xs[0].serving && xs[0].in_flight == 0);
		T_CHECK_EQ_INT(xs[0].bytes_done, len);
		T_CHECK_EQ_INT(xs[0].bytes_total, len);
		T_CHECK_MEM(xs[0].peer, srv.pn.id->peer_id, 32);
		T_CHECK_EQ_INT(xfer_stats(srv.x, xs, 4), 1);
		T_CHECK(xs[0].serving && xs[0].in_flight == 0);
		T_CHECK_EQ_INT(xs[0].bytes_done, len);
		T_CHECK_MEM(xs[0].peer, cli.pn.id->peer_id, 32);
		T_CHECK_EQ_INT(xfer_stats(srv.x, xs, 0), 0);
	}
	/* bad wants are refused at once */
	want_of(&w, &srv, "docs/big.bin", m, 0);
	w.len = 0;
	T_CHECK_EQ_INT(fetch(&cli, &w), -EINVAL);
	w.len = 1;
	w.path = "";
	T_CHECK_EQ_INT(fetch(&cli, &w), -EINVAL);
	/* a block already cached is asked again only if the caller asks: it is answered */
	watch(&cli, m);
	want_of(&w, &srv, "docs/big.bin", m, n - 1);
	T_CHECK_EQ_INT(fetch(&cli, &w), 0);
	T_CHECK(run_until_arrived(&cli, 1, 5 * SEC));
	T_CHECK_EQ_INT(cli.result[n - 1], 0);
	manifest_free(m);
	free(data);
	pair_free();
}

T_CASE(tampered_blocks_refused)
{
	const size_t len = 5 * MANIFEST_BLOCK_BYTES;
	uint8_t *data = malloc(len);
	struct manifest *m = NULL;
	struct xfer_totals ct;
	struct xfer_want w;

	T_CHECK(data && pair_start(true, true) == 0);
	fill(data, len, 2);
	m = publish(&srv, cli.pn.id->peer_id, "t.bin", data, len, 0);
	T_CHECK(m);
	watch(&cli, m);
	for (uint32_t i = 0; i < 5; i++) {
		want_of(&w, &srv, "t.bin", m, i);
		T_CHECK_EQ_INT(fetch(&cli, &w), 0);
	}
	T_CHECK(run_until_arrived(&cli, 5, 10 * SEC));
	for (uint32_t i = 0; i < 5; i++)
		T_CHECK_EQ_INT(cli.result[i], -EIO);
	T_CHECK(!cached_any(&cli, m));
	xfer_totals(cli.x, &ct);
	T_CHECK_EQ_INT(ct.blocks_bad, 5);
	T_CHECK_EQ_INT(ct.blocks_fetched, 0);
	manifest_free(m);
	free(data);
	pair_free();
}

T_CASE(non_buddy_refused)
{
	const size_t len = 2 * MANIFEST_BLOCK_BYTES;
	uint8_t *data = malloc(len);
	struct manifest *m = NULL;
	struct xfer_totals ct, st;
	struct xfer_want w;

	T_CHECK(data && pair_start(false, false) == 0);
	fill(data, len, 3);
	m = publish(&srv, cli.pn.id->peer_id, "secret", data, len, 0);
	T_CHECK(m);
	watch(&cli, m);
	for (uint32_t i = 0; i < 2; i++) {
		want_of(&w, &srv, "secret", m, i);
		T_CHECK_EQ_INT(fetch(&cli, &w), 0);
	}
	T_CHECK(run_until_arrived(&cli, 2, 10 * SEC));
	T_CHECK_EQ_INT(cli.result[0], -EIO);
	T_CHECK_EQ_INT(cli.result[1], -EIO);
	T_CHECK(!cached_any(&cli, m));
	xfer_totals(srv.x, &st);
	xfer_totals(cli.x, &ct);
	T_CHECK(st.flows_refused >= 1);
	T_CHECK_EQ_INT(st.blocks_served, 0);
	T_CHECK_EQ_INT(ct.timeouts, 0);
	/* the reader's own gate: an owner whose folder is down is not asked */
	cli.allow = false;
	T_CHECK_EQ_INT(fetch(&cli, &w), -ENOTCONN);
	manifest_free(m);
	free(data);
	pair_free();
}

/* GETs that do not match the reader's folder are refused, then a good one works. */
T_CASE(mismatch_refused)
{
	const size_t len = 3 * MANIFEST_BLOCK_BYTES;
	uint8_t *data = malloc(len), *other = malloc(len), third[32];
	struct manifest *m = NULL, *m2 = NULL, *m3 = NULL;
	struct xfer_totals st;
	struct xfer_want w;

	T_CHECK(data && other && pair_start(true, false) == 0);
	fill(data, len, 4);
	fill(other, len, 5);
	m = publish(&srv, cli.pn.id->peer_id, "a", data, len, 0);
	/* another version, whose blocks the owner has: not the version of "a" */
	m2 = publish(&srv, cli.pn.id->peer_id, "old", other, len, 0);
	/* a file in the folder shared with someone else */
	memset(third, 0x33, sizeof(third));
	fill(other, len, 6);
	m3 = publish(&srv, third, "elsewhere", other, len, 0);
	T_CHECK(m && m2 && m3);
	watch(&cli, m);
	/* changed: the entry "a" has manifest m, the reader asks m2's block 0 */
	want_of(&w, &srv, "a", m2, 0);
	T_CHECK_EQ_INT(fetch(&cli, &w), 0);
	/* not found: no such path */
	want_of(&w, &srv, "nope", m, 0);
	T_CHECK_EQ_INT(fetch(&cli, &w), 0);
	/* refused: right entry, but block 1's index with block 2's hash */
	want_of(&w, &srv, "a", m, 2);
	w.index = 1;
	T_CHECK_EQ_INT(fetch(&cli, &w), 0);
	/* not found: the path is in another buddy's folder */
	want_of(&w, &srv, "elsewhere", m3, 0);
	T_CHECK_EQ_INT(fetch(&cli, &w), 0);
	T_CHECK(run_until_arrived(&cli, 4, 10 * SEC));
	T_CHECK_EQ_INT(cli.result[0], -EIO);
	T_CHECK_EQ_INT(cli.result[2], -EIO);
	T_CHECK_EQ_INT(cli.n_extra, 2); /* m2's and m3's blocks */
	xfer_totals(srv.x, &st);
	T_CHECK_EQ_INT(st.errors_sent, 4);
	T_CHECK_EQ_INT(st.blocks_served, 0);
	T_CHECK(!cached_any(&cli, m) && !cached_any(&cli, m2) && !cached_any(&cli, m3));
	/* the flow still works */
	watch(&cli, m);
	want_of(&w, &srv, "a", m, 1);
	T_CHECK_EQ_INT(fetch(&cli, &w), 0);
	T_CHECK(run_until_arrived(&cli, 1, 5 * SEC));
	T_CHECK_EQ_INT(cli.result[1], 0);
	T_CHECK(cached_equal(&cli, m, 1, data));
	manifest_free(m);
	manifest_free(m2);
	manifest_free(m3);
	free(data);
	free(other);
	pair_free();
}

/* The owner dies mid-transfer: what is left fails within the timeout. */
T_CASE(owner_vanishes)
{
	const size_t len = 32u << 20;
	uint8_t *data = malloc(len);
	struct manifest *m = NULL;
	struct xfer_want w;
	uint64_t t0;
	uint32_t n;
	int ok = 0, failed = 0, other = 0;

	timeout_s = SHORT_TIMEOUT_S;
	T_CHECK(data && pair_start(true, false) == 0);
	timeout_s = TIMEOUT_S;
	fill(data, len, 7);
	m = publish(&srv, cli.pn.id->peer_id, "huge", data, len, 0);
	T_CHECK(m);
	n = manifest_block_count(m);
	watch(&cli, m);
	for (uint32_t i = 0; i < n; i++) {
		want_of(&w, &srv, "huge", m, i);
		T_CHECK_EQ_INT(fetch(&cli, &w), 0);
	}
	T_CHECK(run_until_arrived(&cli, 1, 10 * SEC));
	node_vanish(&srv);
	t0 = loop_clock_ns();
	T_CHECK(run_until_arrived(&cli, (int)n, (SHORT_TIMEOUT_S + 3) * SEC));
	printf("  all %u answered %.2f s after the owner vanished\n", n, (double)(loop_clock_ns() - t0) / 1e9);
	for (uint32_t i = 0; i < n; i++) {
		if (cli.result[i] == 0)
			ok++;
		else if (cli.result[i] == -ETIMEDOUT || cli.result[i] == -ENOTCONN)
			failed++;
		else
			other++;
	}
	printf("  ok %d, failed %d\n", ok, failed);
	T_CHECK(ok >= 1 && failed >= 1);
	T_CHECK_EQ_INT(other, 0);
	T_CHECK_EQ_INT(cli.n_dup, 0);
	manifest_free(m);
	free(data);
	pair_free();
}

/*
 * The owner's session lives but it answers nothing (its GET flow is held):
 * -ETIMEDOUT after the timeout; its late answers are ignored, and the same
 * flow serves later requests.
 */
T_CASE(owner_silent)
{
	const size_t len = 4 * MANIFEST_BLOCK_BYTES;
	uint8_t *data = malloc(len);
	struct manifest *m = NULL, *m2 = NULL;
	struct xfer_totals ct;
	struct xfer_want w;

	timeout_s = SHORT_TIMEOUT_S;
	T_CHECK(data && pair_start(true, false) == 0);
	timeout_s = TIMEOUT_S;
	srv.pause_new = true;
	fill(data, len, 9);
	m = publish(&srv, cli.pn.id->peer_id, "slow", data, len, 0);
	T_CHECK(m);
	watch(&cli, m);
	for (uint32_t i = 0; i < 4; i++) {
		want_of(&w, &srv, "slow", m, i);
		T_CHECK_EQ_INT(fetch(&cli, &w), 0);
	}
	T_CHECK(run_until_arrived(&cli, 4, (SHORT_TIMEOUT_S + 3) * SEC));
	for (uint32_t i = 0; i < 4; i++)
		T_CHECK_EQ_INT(cli.result[i], -ETIMEDOUT);
	xfer_totals(cli.x, &ct);
	T_CHECK_EQ_INT(ct.timeouts, 4);
	T_CHECK(srv.paused);
	/* the owner wakes up: its answers come too late and are dropped */
	rtmfp_recv_pause(srv.paused, false, rtmfp_posix_now());
	rtmfp_posix_kick(srv.pn.px);
	pair_run_for(loop, 300 * LOOP_NS_PER_MS);
	T_CHECK_EQ_INT(cli.n_arrived, 4);
	T_CHECK(!cached_any(&cli, m));
	/* and the next request is served on the same flows */
	fill(data, len, 10);
	m2 = publish(&srv, cli.pn.id->peer_id, "slow2", data, len, 0);
	T_CHECK(m2);
	watch(&cli, m2);
	want_of(&w, &srv, "slow2", m2, 1);
	T_CHECK_EQ_INT(fetch(&cli, &w), 0);
	T_CHECK(run_until_arrived(&cli, 1, 5 * SEC));
	T_CHECK_EQ_INT(cli.result[1], 0);
	T_CHECK(cached_equal(&cli, m2, 1, data));
	manifest_free(m);
	manifest_free(m2);
	free(data);
	pair_free();
}

/* An owner that answers wrong: a stray id ignored, a short block, then a protocol error. */
T_CASE(bad_owner_answers)
{
	const size_t len = 3 * MANIFEST_BLOCK_BYTES;
	uint8_t *data = malloc(len);
	struct manifest *m = NULL;
	struct xfer_totals ct;
	struct xfer_want w;

	T_CHECK(data && pair_start_raw(true, false, false, true) == 0);
	fill(data, len, 11);
	m = publish(&srv, cli.pn.id->peer_id, "liar", data, len, 0);
	T_CHECK(m);
	watch(&cli, m);
	for (uint32_t i = 0; i < 3; i++) {
		want_of(&w, &srv, "liar", m, i);
		T_CHECK_EQ_INT(fetch(&cli, &w), 0);
	}
	T_CHECK(run_until_arrived(&cli, 3, 10 * SEC));
	for (uint32_t i = 0; i < 3; i++)
		T_CHECK_EQ_INT(cli.result[i], -EIO);
	T_CHECK(!cached_any(&cli, m));
	xfer_totals(cli.x, &ct);
	T_CHECK_EQ_INT(ct.blocks_bad, 1);
	T_CHECK(srv.raw_gets >= 2);
	manifest_free(m);
	free(data);
	pair_free();
}

/* A reader that asks wrong: a path with "..", then garbage (its flow is closed). */
T_CASE(bad_reader_requests)
{
	const size_t len = MANIFEST_BLOCK_BYTES;
	uint8_t *data = malloc(len), buf[XFER_PROTO_GET_MAX_BYTES];
	struct manifest *m = NULL;
	struct xfer_proto_msg g;
	struct xfer_totals st;
	struct buf_writer w;
	uint64_t end;

	T_CHECK(data && pair_start_raw(true, false, true, false) == 0);
	fill(data, len, 12);
	m = publish(&srv, cli.pn.id->peer_id, "x", data, len, 0);
	T_CHECK(m);
	T_CHECK(pair_open_flow(&cli.pn, &srv.pn, srv.pn.id->peer_id, (const uint8_t *)XFER_FLOW_METADATA,
			       strlen(XFER_FLOW_METADATA), &cli.raw_out) == 0);
	memset(&g, 0, sizeof(g));
	g.req = 77;
	manifest_hash(m, g.manifest);
	g.len = len;
	{
		struct manifest_block b;

		manifest_block(m, 0, &b);
		memcpy(g.hash, b.hash, 32);
	}
	g.path = (const uint8_t *)"../x";
	g.path_len = 4;
	buf_writer_init(&w, buf, sizeof(buf));
	T_CHECK_EQ_INT(xfer_proto_get_encode(&w, &g), 0);
	T_CHECK_EQ_INT(rtmfp_send_write(cli.raw_out, buf, buf_writer_len(&w), rtmfp_posix_now()), 0);
	rtmfp_posix_kick(cli.pn.px);
	end = loop_clock_ns() + 10 * SEC;
	while (cli.raw_answers < 1 && loop_clock_ns() < end)
		loop_run_once(loop, 20 * LOOP_NS_PER_MS);
	T_CHECK_EQ_INT(cli.raw_answers, 1);
	T_CHECK(cli.raw_last.type == XFER_MSG_ERROR && cli.raw_last.req == 77 &&
		cli.raw_last.code == XFER_ERR_NOT_FOUND);
	/* garbage: the owner closes the flow */
	T_CHECK_EQ_INT(rtmfp_send_write(cli.raw_out, "junk", 4, rtmfp_posix_now()), 0);
	rtmfp_posix_kick(cli.pn.px);
	end = loop_clock_ns() + 10 * SEC;
	while (!cli.raw_out_closed && loop_clock_ns() < end)
		loop_run_once(loop, 20 * LOOP_NS_PER_MS);
	T_CHECK_EQ_INT(cli.raw_out_closed, -ECONNREFUSED);
	xfer_totals(srv.x, &st);
	T_CHECK_EQ_INT(st.errors_sent, 1);
	T_CHECK_EQ_INT(st.blocks_served, 0);
	manifest_free(m);
	free(data);
	pair_free();
}

/* Presence says the owner went offline: its requests fail with -ENOTCONN; later ones work. */
T_CASE(peer_down_then_back)
{
	const size_t len = 8 * MANIFEST_BLOCK_BYTES;
	uint8_t *data = malloc(len);
	struct manifest *m = NULL;
	struct xfer_want w;

	T_CHECK(data && pair_start(true, false) == 0);
	fill(data, len, 8);
	m = publish(&srv, cli.pn.id->peer_id, "p", data, len, 0);
	T_CHECK(m);
	watch(&cli, m);
	for (uint32_t i = 0; i < 8; i++) {
		want_of(&w, &srv, "p", m, i);
		T_CHECK_EQ_INT(fetch(&cli, &w), 0);
	}
	xfer_peer_down(cli.x, srv.pn.id->peer_id);
	T_CHECK_EQ_INT(cli.n_arrived, 0);
	T_CHECK(run_until_arrived(&cli, 8, 5 * SEC));
	for (uint32_t i = 0; i < 8; i++)
		T_CHECK_EQ_INT(cli.result[i], -ENOTCONN);
	T_CHECK(!cached_any(&cli, m));
	watch(&cli, m);
	for (uint32_t i = 0; i < 8; i++) {
		want_of(&w, &srv, "p", m, i);
		T_CHECK_EQ_INT(fetch(&cli, &w), 0);
	}
	T_CHECK(run_until_arrived(&cli, 8, 10 * SEC));
	for (uint32_t i = 0; i < 8; i++) {
		T_CHECK_EQ_INT(cli.result[i], 0);
		T_CHECK(cached_equal(&cli, m, i, data));
	}
	manifest_free(m);
	free(data);
	pair_free();
}

int main(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	T_RUN(proto_roundtrip);
	T_RUN(fetch_all_blocks);
	T_RUN(tampered_blocks_refused);
	T_RUN(non_buddy_refused);
	T_RUN(mismatch_refused);
	T_RUN(owner_vanishes);
	T_RUN(owner_silent);
	T_RUN(bad_owner_answers);
	T_RUN(bad_reader_requests);
	T_RUN(peer_down_then_back);
	return t_done();
}
