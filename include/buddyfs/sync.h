/*
 * sync.h - the folder protocol's control part (DESIGN.md §6): with each
 * mutual buddy, over RTMFP flows of the daemon's instance, a HELLO that
 * proves both sides share the folder, reconciliation of the folder index
 * on every (re)connection, and changes pushed as they happen.  Blocks are
 * xfer's.
 *
 * A buddy's folder is "up" once both HELLOs crossed on the two sync flows
 * (ours to the buddy, the buddy's to us) and each side has added the
 * other (mutual: recorded in the store's peer record); then each side
 * sends its whole index (tombstones included) and pushes every commit.
 * It is down when a flow closes or fails, when presence says the buddy
 * went offline, or when the buddy is no longer one of ours; while up, a
 * buddy not heard from for dead_ms is reported down (buddy_up false) until
 * it is heard again (a PING goes every heartbeat_ms when nothing else
 * does).  A flow from a peer we have not added is refused
 * (rtmfp_recv_close) and logged; our flow refused by the buddy means it has
 * not added us (peer.mutual = 0; we try again in 30 s or when it
 * connects).  Flows that fail otherwise are reopened after 2 s while the
 * buddy is online.
 *
 * Entries that arrive are untrusted input: names, paths, owner, sizes and
 * the signed manifest of each file version (hash, owner, signature against
 * the owner's pinned certificate) are checked before one store transaction
 * per loop turn (at most apply_budget items, across messages) commits
 * them, and acknowledged only after it; a bad entry is refused, logged and counted,
 * and the session goes on.  Newer versions win; concurrent writes of one
 * path keep both versions, the loser renamed "NAME (conflict from BUDDY
 * YYYY-MM-DD).EXT", the same way on both sides.  docs/PROTOCOL.md has the
 * messages and the version rule (which needs the base fs records in
 * struct store_entry).
 *
 * Owns: per-buddy state (flows, HELLO, queue, inbox, heartbeat), the sync wire
 * messages (sync_proto.h), applying a buddy's entries to the store, the
 * store's "synced" records.
 * Leaves to others: sessions, introductions and relays (the owner's
 * open_flow: net), blocks (xfer), the kernel's caches (the owner's
 * entry_changed: fs_entry_changed), publishing our own changes (fs, which
 * calls sync_published() after its commit).
 *
 * One event loop, no threads.  Errors: 0, negative errno or BFS_E*.
 */
#ifndef BUDDYFS_SYNC_H
#define BUDDYFS_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buddyfs/store.h"

struct loop;
struct identity;
struct rtmfp_session;
struct rtmfp_send;
struct rtmfp_recv;
struct sync;

#define SYNC_FLOW_METADATA "buddyfs-sync 1" /* metadata of sync flows */

struct sync_params {
	struct loop *loop;         /* borrowed */
	struct store *store;       /* borrowed */
	const struct identity *id; /* borrowed: our peer id and name */
	/*
	 * Open a send flow with @meta to the buddy @peer_id, starting a session
	 * if needed (the daemon's net_open_flow: rendezvous introduction, then
	 * the relay).  Returns 0 or a negative errno.
	 */
	int (*open_flow)(void *ctx, const uint8_t peer_id[static STORE_PEER_ID_BYTES], const uint8_t *meta,
			 size_t meta_len, struct rtmfp_send **out);
	/* The folder shared with @peer_id became usable (@up) or not. */
	void (*buddy_up)(void *ctx, const uint8_t peer_id[static STORE_PEER_ID_BYTES], bool up);
	/* The buddy changed entry @path of its folder (committed). */
	void (*entry_changed)(void *ctx, const uint8_t buddy[static STORE_PEER_ID_BYTES], const char *path);
	/*
	 * Optional (NULL: none): sync wrote to a flow, perhaps outside the
	 * instance's callbacks (sync_published, a timer): the daemon passes
	 * rtmfp_posix_kick() so that the data goes out now.
	 */
	void (*kick)(void *ctx);
	void *ctx;
	/*
	 * Heartbeat: while a folder is up a PING goes every heartbeat_ms (0:
	 * 1000) when nothing else is queued; a buddy heard from for dead_ms
	 * (0: 4000) is reported down (buddy_up false) until it is heard again.
	 */
	unsigned heartbeat_ms;
	unsigned dead_ms;
	/*
	 * Bounded work per loop turn (0: the defaults, SYNC_APPLY_BUDGET and
	 * SYNC_SEND_BUDGET): the buddy's messages are queued as they arrive and
	 * applied at the end of a loop turn, at most apply_budget items (entries
	 * and acks, across messages) in ONE store transaction per turn, then the
	 * rest waits for the next turn (loop_defer), so timers, FUSE and the
	 * control socket are served in between; acks leave only after that
	 * commit.  Likewise one turn encodes at most send_budget queued items.
	 */
	unsigned apply_budget;
	unsigned send_budget;
};

#define SYNC_APPLY_BUDGET 256 /* items applied per loop turn, one transaction */
#define SYNC_SEND_BUDGET 1024 /* items encoded per loop turn */

/* Counters of one buddy, for tests and `buddyfs status`. */
struct sync_buddy_stats {
	bool up;                  /* the folder is up (mutual, HELLOs crossed) */
	bool refused_by_far;      /* the buddy refused our flow: it has not added us */
	uint64_t index_rounds;    /* INDEX_END messages received */
	uint64_t applied;         /* entries that changed our store */
	uint64_t refused;         /* entries or messages refused as bad input */
	uint64_t conflicts;       /* concurrent writes resolved */
	uint64_t queued;          /* messages waiting to be written */
	uint64_t inbox;           /* received messages waiting to be applied */
	uint64_t commits;         /* store transactions committed for received items */
	uint64_t turns;           /* loop turns that applied received items */
	uint64_t max_turn_items;  /* most items (entries + acks) applied in one turn */
};

/*
 * sync_new - the folder protocol over @p (copied; loop, store, id and
 * open_flow are required; the other callbacks may be NULL).  Nothing
 * happens until sync_peer_online() or a flow from a buddy.
 * Errors: -ENOMEM, -EINVAL.
 */
int sync_new(struct sync **out, const struct sync_params *p);
/* sync_free - forget every buddy's state (flows belong to the instance:
 * free it first).  NULL is fine. */
void sync_free(struct sync *s);

/*
 * sync_peer_online - presence: @peer_id is online (sync connects when it
 * is a buddy of ours) or offline (its folder goes down at once).
 */
void sync_peer_online(struct sync *s, const uint8_t peer_id[static STORE_PEER_ID_BYTES], bool online);

/*
 * sync_published - our file system committed a change of @path in the
 * folder shared with @buddy (new version, tombstone, directory, metadata):
 * push it now if the folder is up (else at the next reconciliation).
 */
void sync_published(struct sync *s, const uint8_t buddy[static STORE_PEER_ID_BYTES], const char *path);

/* sync_buddy_is_up - the folder shared with @peer_id is up. */
bool sync_buddy_is_up(const struct sync *s, const uint8_t peer_id[static STORE_PEER_ID_BYTES]);

/* sync_buddy_stats - counters of @peer_id; -ENOENT when sync never saw it. */
int sync_buddy_stats(const struct sync *s, const uint8_t peer_id[static STORE_PEER_ID_BYTES],
		     struct sync_buddy_stats *out);
/* sync_flows_refused - flows from non-buddies refused so far. */
uint64_t sync_flows_refused(const struct sync *s);

/* ---- hooks for the owner's rtmfp callbacks (true: it was sync's) ---- */
void sync_on_session_opened(struct sync *s, struct rtmfp_session *ss);
void sync_on_session_closed(struct sync *s, struct rtmfp_session *ss, int err);
bool sync_on_recv_flow(struct sync *s, struct rtmfp_recv *f, const uint8_t *meta, size_t meta_len,
		       struct rtmfp_send *assoc);
bool sync_on_message(struct sync *s, struct rtmfp_recv *f, const uint8_t *msg, size_t len);
bool sync_on_recv_closed(struct sync *s, struct rtmfp_recv *f, int err);
bool sync_on_writable(struct sync *s, struct rtmfp_send *f);
bool sync_on_send_closed(struct sync *s, struct rtmfp_send *f, int err);

#endif
