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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buddyfs/identity.h"
#include "buddyfs/log.h"
#include "buddyfs/loop.h"
#include "buddyfs/manifest.h"
#include "buddyfs/rtmfp_posix.h"
#include "buddyfs/store.h"
#include "buddyfs/sync.h"

#include "../tests/pair.h"

struct node {
	struct pair_node pn; /* home, identity, store, instance */
	struct sync *sync;
};

static struct loop *loop;
static struct node nodes[2];

static struct node *other(const uint8_t *id)
{
	return memcmp(nodes[0].pn.id->peer_id, id, 32) == 0 ? &nodes[0] : &nodes[1];
}

static int open_flow(void *ctx, const uint8_t peer_id[static STORE_PEER_ID_BYTES], const uint8_t *meta,
		     size_t meta_len, struct rtmfp_send **out)
{
	struct node *n = ctx;
	int rc = pair_open_flow(&n->pn, &other(peer_id)->pn, peer_id, meta, meta_len, out);

	rtmfp_posix_kick(n->pn.px);
	return rc;
}

static void kick(void *ctx)
{
	rtmfp_posix_kick(((struct node *)ctx)->pn.px);
}

static int node_start(struct node *n, const char *name)
{
	const struct rtmfp_callbacks cb = {
		.recv_flow = pair_sync_recv_flow, .message = pair_sync_message, .recv_closed = pair_sync_recv_closed,
		.writable = pair_sync_writable, .send_closed = pair_sync_send_closed,
	};
	struct sync_params sp = { .loop = loop, .open_flow = open_flow, .kick = kick, .ctx = n };
	int rc;

	snprintf(n->pn.home, sizeof(n->pn.home), "/tmp/bench_sync_%s.XXXXXX", name);
	rc = pair_node_open(&n->pn, name);
	if (rc)
		return rc;
	sp.store = n->pn.store;
	sp.id = n->pn.id;
	rc = sync_new(&n->sync, &sp);
	return rc ? rc : pair_node_listen(&n->pn, loop, &cb, &n->sync, NULL);
}

static void node_free(struct node *n)
{
	pair_node_stop(&n->pn);
	sync_free(n->sync);
	pair_node_close(&n->pn);
}

static int add_buddy(struct node *n, const struct node *b, const char *name)
{
	return pair_add_buddy(&n->pn, &b->pn, name, STORE_BUDDY_ADDED);
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
	int rc;

	snprintf(obj, sizeof(obj), "%s/obj", a->pn.home);
	rc = pair_manifest(&a->pn, obj, "hello", 5, NULL, &m, &bytes, &len, hash);
	if (rc == 0)
		rc = store_txn_begin(a->pn.store, &t);
	if (rc) {
		manifest_free(m);
		return rc;
	}
	rc = store_manifest_put(a->pn.store, t, hash, bytes, len);
	for (int i = 0; rc == 0 && i < n; i++) {
		memset(&e, 0, sizeof(e));
		memcpy(e.buddy, b->pn.id->peer_id, 32);
		snprintf(e.path, sizeof(e.path), "f%06d", i);
		e.type = STORE_ENTRY_FILE;
		e.mode = 0644;
		e.size = 5;
		e.mtime_ns = 1795478400ll * 1000000000ll + (int64_t)version;
		memcpy(e.owner, a->pn.id->peer_id, 32);
		e.version = version;
		e.has_base = true;
		e.base = version - 1;
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

static struct sync_buddy_stats stats(struct node *n, struct node *b)
{
	struct sync_buddy_stats st;

	memset(&st, 0, sizeof(st));
	sync_buddy_stats(n->sync, b->pn.id->peer_id, &st);
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
	sync_peer_online(alice->sync, bob->pn.id->peer_id, true);
	sync_peer_online(bob->sync, alice->pn.id->peer_id, true);
	s1 = run_until((uint64_t)n, 1);
	printf("first reconciliation: %d entries in %.2f s (%.0f entries/s)\n", n, s1, n / s1);
	show_turns();

	sync_peer_online(alice->sync, bob->pn.id->peer_id, false);
	sync_peer_online(bob->sync, alice->pn.id->peer_id, false);
	for (int i = 0; i < 50; i++)
		loop_run_once(loop, 10 * LOOP_NS_PER_MS);
	sync_peer_online(alice->sync, bob->pn.id->peer_id, true);
	sync_peer_online(bob->sync, alice->pn.id->peer_id, true);
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
			sync_published(alice->sync, bob->pn.id->peer_id, p);
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
