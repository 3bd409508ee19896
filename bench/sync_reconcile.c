/*
 * sync_reconcile.c - how fast two buddies reconcile a folder index: two
 * sync instances over two RTMFP instances on 127.0.0.1 (one loop, this
 * process), stores in temp homes.
 *
 *   sync_reconcile [N]     N entries (10000) in alice's folder with bob
 *
 * Prints three figures: the first reconciliation (bob takes all N, each
 * with its signed manifest checked), a reconnection with nothing changed
 * (every entry agreed: nothing written), and N/10 pushes of changed
 * entries one by one while up.  Setup (N entries written in one store
 * transaction, sharing one manifest) is not timed.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buddyfs/identity.h"
#include "buddyfs/log.h"
#include "buddyfs/loop.h"
#include "buddyfs/manifest.h"
#include "buddyfs/rtmfp_crypto.h"
#include "buddyfs/rtmfp_crypto_sodium.h"
#include "buddyfs/rtmfp_posix.h"
#include "buddyfs/store.h"
#include "buddyfs/sync.h"
#include "buddyfs/udp.h"

struct node {
	char home[64];
	struct identity *id;
	struct rtmfp_crypto *crypto;
	struct rtmfp_posix *px;
	struct store *store;
	struct sync *sync;
	struct sockaddr_storage bound;
};

static struct loop *loop;
static struct node nodes[2];

static struct node *other(const uint8_t *id)
{
	return memcmp(nodes[0].id->peer_id, id, 32) == 0 ? &nodes[0] : &nodes[1];
}

static int open_flow(void *ctx, const uint8_t peer_id[static STORE_PEER_ID_BYTES], const uint8_t *meta,
		     size_t meta_len, struct rtmfp_send **out)
{
	struct node *n = ctx, *far = other(peer_id);
	uint8_t epd[RTMFP_CRYPTO_SODIUM_EPD_PEER_ID_BYTES];
	int rc;

	rtmfp_crypto_sodium_epd_peer_id(epd, peer_id);
	rc = rtmfp_open_flow(rtmfp_posix_core(n->px), out, epd, sizeof(epd), meta, meta_len, &far->bound, 1,
			     rtmfp_posix_now());
	rtmfp_posix_kick(n->px);
	return rc;
}

static void kick(void *ctx)
{
	rtmfp_posix_kick(((struct node *)ctx)->px);
}

static void cb_recv_flow(void *ctx, struct rtmfp_recv *f, const uint8_t *meta, size_t len, struct rtmfp_send *a)
{
	if (!sync_on_recv_flow(((struct node *)ctx)->sync, f, meta, len, a))
		rtmfp_recv_close(f, rtmfp_posix_now());
}

static void cb_message(void *ctx, struct rtmfp_recv *f, const uint8_t *msg, size_t len)
{
	sync_on_message(((struct node *)ctx)->sync, f, msg, len);
}

static void cb_recv_closed(void *ctx, struct rtmfp_recv *f, int err)
{
	sync_on_recv_closed(((struct node *)ctx)->sync, f, err);
}

static void cb_writable(void *ctx, struct rtmfp_send *f)
{
	sync_on_writable(((struct node *)ctx)->sync, f);
}

static void cb_send_closed(void *ctx, struct rtmfp_send *f, int err)
{
	sync_on_send_closed(((struct node *)ctx)->sync, f, err);
}

static int node_start(struct node *n, const char *name)
{
	const struct rtmfp_callbacks cb = {
		.recv_flow = cb_recv_flow, .message = cb_message, .recv_closed = cb_recv_closed,
		.writable = cb_writable, .send_closed = cb_send_closed,
	};
	struct sync_params sp = { .loop = loop, .open_flow = open_flow, .kick = kick, .ctx = n };
	struct sockaddr_storage any;
	int rc;

	snprintf(n->home, sizeof(n->home), "/tmp/bench_sync_%s.XXXXXX", name);
	if (!mkdtemp(n->home))
		return -errno;
	rc = identity_create(&n->id, n->home, name, "", 0);
	if (rc == 0)
		rc = rtmfp_crypto_sodium_new(&n->crypto, n->id->secret_key, NULL, 0, 0);
	if (rc == 0)
		rc = store_open(&n->store, n->home, 0);
	if (rc)
		return rc;
	sp.store = n->store;
	sp.id = n->id;
	rc = sync_new(&n->sync, &sp);
	udp_addr_parse(&any, "127.0.0.1:0", 0);
	if (rc == 0)
		rc = rtmfp_posix_new(&n->px, loop, n->crypto, &cb, n, NULL, &any);
	return rc ? rc : udp_local(rtmfp_posix_udp(n->px), &n->bound);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void node_free(struct node *n)
{
	rtmfp_posix_free(n->px);
	sync_free(n->sync);
	store_close(n->store);
	rtmfp_crypto_free(n->crypto);
	identity_free(n->id);
	nftw(n->home, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int add_buddy(struct node *n, const struct node *b, const char *name)
{
	struct store_peer p;

	memset(&p, 0, sizeof(p));
	memcpy(p.id, b->id->peer_id, 32);
	snprintf(p.name, sizeof(p.name), "%s", name);
	memcpy(p.cert, b->id->cert, IDENTITY_CERT_BYTES);
	p.cert_len = IDENTITY_CERT_BYTES;
	p.buddy = STORE_BUDDY_ADDED;
	return store_peer_put(n->store, &p);
}

/* fill - @n entries "dNN/fNNNNN" of one signed manifest in alice's folder with bob. */
static int fill(struct node *a, struct node *b, int n, uint64_t version)
{
	struct manifest *m = NULL;
	struct store_entry e;
	struct store_txn *t;
	const uint8_t *bytes;
	uint8_t hash[32];
	char obj[128];
	size_t len;
	int fd, rc;

	snprintf(obj, sizeof(obj), "%s/obj", a->home);
	fd = open(obj, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, "hello", 5) != 5)
		return -EIO;
	rc = manifest_build(&m, fd, a->id->peer_id, NULL);
	close(fd);
	if (rc == 0)
		rc = manifest_sign(m, a->id->secret_key);
	if (rc == 0)
		rc = manifest_bytes(m, &bytes, &len);
	if (rc == 0)
		rc = manifest_hash(m, hash);
	if (rc == 0)
		rc = store_txn_begin(a->store, &t);
	if (rc) {
		manifest_free(m);
		return rc;
	}
	rc = store_manifest_put(a->store, t, hash, bytes, len);
	for (int i = 0; rc == 0 && i < n; i++) {
		memset(&e, 0, sizeof(e));
		memcpy(e.buddy, b->id->peer_id, 32);
		snprintf(e.path, sizeof(e.path), "f%06d", i);
		e.type = STORE_ENTRY_FILE;
		e.mode = 0644;
		e.size = 5;
		e.mtime_ns = 1795478400ll * 1000000000ll + (int64_t)version;
		memcpy(e.owner, a->id->peer_id, 32);
		e.version = version;
		e.has_base = true;
		e.base = version - 1;
		memcpy(e.manifest, hash, 32);
		rc = store_entry_put(a->store, t, &e);
	}
	manifest_free(m);
	if (rc) {
		store_txn_abort(t);
		return rc;
	}
	return store_txn_commit(t);
}

static struct sync_buddy_stats stats(struct node *n, struct node *b)
{
	struct sync_buddy_stats st;

	memset(&st, 0, sizeof(st));
	sync_buddy_stats(n->sync, b->id->peer_id, &st);
	return st;
}

static uint64_t longest_turn_ns; /* the longest loop_run_once of the last run_until */

/* turn - one loop iteration (its wait included: at most 10 ms when idle). */
static void turn(void)
{
	uint64_t t0 = loop_clock_ns(), d;

	loop_run_once(loop, 10 * LOOP_NS_PER_MS);
	d = loop_clock_ns() - t0;
	if (d > longest_turn_ns)
		longest_turn_ns = d;
}

/* run_until - run the loop until bob applied @applied and saw @rounds index rounds. */
static double run_until(uint64_t applied, uint64_t rounds)
{
	uint64_t t0 = loop_clock_ns(), end = t0 + 300 * LOOP_NS_PER_S;
	struct sync_buddy_stats st;

	longest_turn_ns = 0;
	do {
		turn();
		st = stats(&nodes[1], &nodes[0]);
	} while ((st.applied < applied || st.index_rounds < rounds) && loop_clock_ns() < end);
	/* the acks too: until both queues and inboxes are empty */
	for (int i = 0; i < 20; i++)
		turn();
	return (double)(loop_clock_ns() - t0) / 1e9;
}

static void show_turns(void)
{
#ifdef SYNC_APPLY_BUDGET
	static uint64_t prev_a, prev_b;
	struct sync_buddy_stats a = stats(&nodes[0], &nodes[1]), b = stats(&nodes[1], &nodes[0]);

	printf("    longest loop turn %.1f ms; store commits for received items: bob %llu, alice %llu; "
	       "most items in one turn %llu\n",
	       (double)longest_turn_ns / 1e6, (unsigned long long)(b.commits - prev_b),
	       (unsigned long long)(a.commits - prev_a),
	       (unsigned long long)(a.max_turn_items > b.max_turn_items ? a.max_turn_items : b.max_turn_items));
	prev_a = a.commits;
	prev_b = b.commits;
#else
	printf("    longest loop turn %.1f ms\n", (double)longest_turn_ns / 1e6);
#endif
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 10000;
	struct node *alice = &nodes[0], *bob = &nodes[1];
	double s1, s2, s3;

	log_init("sync_reconcile");
	log_set_level(LOG_LEVEL_ERROR);
	if (n < 10 || loop_new(&loop) || node_start(alice, "alice") || node_start(bob, "bob") ||
	    add_buddy(alice, bob, "bob") || add_buddy(bob, alice, "alice") || fill(alice, bob, n, 1)) {
		fprintf(stderr, "sync_reconcile: setup failed\n");
		return 1;
	}
	sync_peer_online(alice->sync, bob->id->peer_id, true);
	sync_peer_online(bob->sync, alice->id->peer_id, true);
	s1 = run_until((uint64_t)n, 1);
	printf("first reconciliation: %d entries in %.2f s (%.0f entries/s)\n", n, s1, n / s1);
	show_turns();

	sync_peer_online(alice->sync, bob->id->peer_id, false);
	sync_peer_online(bob->sync, alice->id->peer_id, false);
	for (int i = 0; i < 50; i++)
		loop_run_once(loop, 10 * LOOP_NS_PER_MS);
	sync_peer_online(alice->sync, bob->id->peer_id, true);
	sync_peer_online(bob->sync, alice->id->peer_id, true);
	s2 = run_until((uint64_t)n, 2);
	printf("reconnection, nothing changed: %d entries in %.2f s (%.0f entries/s)\n", n, s2, n / s2);
	show_turns();

	{
		uint64_t before = stats(bob, alice).applied;
		int pushes = n / 10;

		if (fill(alice, bob, pushes, 2))
			return 1;
		for (int i = 0; i < pushes; i++) {
			char p[16];

			snprintf(p, sizeof(p), "f%06d", i);
			sync_published(alice->sync, bob->id->peer_id, p);
		}
		s3 = run_until(before + (uint64_t)pushes, 2);
		printf("pushes while up: %d changed entries in %.2f s (%.0f entries/s)\n", pushes, s3, pushes / s3);
		show_turns();
	}
	node_free(alice);
	node_free(bob);
	loop_free(loop);
	return 0;
}
