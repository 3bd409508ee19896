/*
 * xfer.h - block transfers of the folder protocol (DESIGN.md §6): a reader
 * asks the owner of a file version for its blocks, many in flight on one
 * flow per buddy; the owner answers from its object store; every block is
 * checked against its BLAKE2b-256 hash before it is cached in the store.
 *
 * A request names the folder's path, the manifest hash and the block index
 * (and the block's hash and length, from the signed manifest the reader
 * has checked).  The owner serves a block only to a mutual buddy whose
 * folder holds an entry at that path with that manifest, whose manifest
 * has that hash and length at that index, and only from its own objects
 * (LOCAL blocks; never a cached copy); anything else is refused and logged.
 *
 * Flows (xfer_proto.h has every byte): the reader opens one send flow per
 * owner (XFER_FLOW_METADATA) and writes GETs on it, up to XFER_WINDOW_BYTES
 * and XFER_WINDOW_REQS in flight; the owner answers each GET, in order,
 * with a BLOCK or an ERROR on a return flow associated with that flow
 * (same metadata).  The owner does not hash what it serves (its objects
 * are immutable and the reader checks every byte); the reader hashes each
 * answer (on a thread of its own, so the loop goes on meanwhile); a block
 * that checks out is handed to delivered() at once (so a
 * waiting read is answered from memory, without waiting for the store),
 * and the blocks that check out in one loop iteration go into the store's
 * cache in one transaction (a deferred call), then arrived() runs for each
 * of them.
 *
 * Owns: request/answer flows, the in-flight table and its timeouts,
 * serving blocks from HOME/objects, putting verified blocks in the store's
 * cache, transfer counters for `buddyfs status`, and the test-only tamper
 * switch (the server flips one byte of every block it serves).
 * Leaves to others: sessions (the owner's open_flow), deciding what to
 * fetch and read-ahead (fs), who is a mutual buddy (the owner's allowed).
 *
 * One event loop; the checker thread only hashes answered blocks (its
 * requests are out of the loop's hands meanwhile).  Errors: 0, negative errno or BFS_E*.
 */
#ifndef BUDDYFS_XFER_H
#define BUDDYFS_XFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buddyfs/store.h"

struct loop;
struct identity;
struct rtmfp_session;
struct rtmfp_send;
struct rtmfp_recv;
struct xfer;

#define XFER_FLOW_METADATA "buddyfs-blocks 1" /* metadata of block flows */
#define XFER_WINDOW_BYTES ((uint64_t)16 << 20)  /* bytes asked and unanswered, per owner */
#define XFER_WINDOW_REQS 512u                  /* requests in flight, per owner */
#define XFER_SERVE_QUEUE_MAX 4096u             /* GETs an owner queues per flow */
#define XFER_SERVE_FLOWS_MAX 64u               /* request flows an owner serves at once */
#define XFER_TIMEOUT_DEFAULT_S 15u
#define XFER_TIMEOUT_CAP 4u  /* a request fails this many timeouts after it was asked */

/* One block a reader wants. */
struct xfer_want {
	uint8_t owner[STORE_PEER_ID_BYTES];    /* who serves it: the buddy */
	const char *path;                      /* in the folder shared with owner */
	uint8_t manifest[STORE_HASH_BYTES];    /* the file version */
	uint32_t index;                        /* block number in the manifest */
	uint8_t hash[STORE_HASH_BYTES];        /* BLAKE2b-256 of the block */
	uint32_t len;                          /* its length in bytes */
	bool urgent;                           /* a read waits for it (not read-ahead) */
};

/* A transfer in progress, for `buddyfs status`. */
struct xfer_stat {
	uint8_t peer[STORE_PEER_ID_BYTES];
	bool serving;             /* we send (true) or fetch (false) */
	uint64_t bytes_done;      /* since the transfer began */
	uint64_t bytes_total;     /* asked so far */
	uint64_t rate_bytes_s;    /* over the last few seconds */
	unsigned in_flight;       /* blocks asked and not answered */
};

struct xfer_params {
	struct loop *loop;         /* borrowed */
	struct store *store;       /* borrowed */
	const struct identity *id; /* borrowed */
	const char *home;          /* copied: objects live in HOME/objects */
	/*
	 * An owner with requests outstanding that answers nothing for this
	 * long fails them all (-ETIMEDOUT); one that answers keeps them alive
	 * (a long queue on a slow path is not a timeout), but a request still
	 * unanswered XFER_TIMEOUT_CAP * timeout_s after it was asked fails.
	 * 0: XFER_TIMEOUT_DEFAULT_S.
	 */
	unsigned timeout_s;
	bool test_tamper;          /* TEST ONLY: corrupt every block served */
	int (*open_flow)(void *ctx, const uint8_t peer_id[static STORE_PEER_ID_BYTES], const uint8_t *meta,
			 size_t meta_len, struct rtmfp_send **out);
	/*
	 * May @peer_id have our blocks (a mutual buddy whose folder is up)?
	 * Asked when a block flow arrives, for every GET, and by xfer_fetch()
	 * about the owner (false: -ENOTCONN).  NULL: everyone may.
	 */
	bool (*allowed)(void *ctx, const uint8_t peer_id[static STORE_PEER_ID_BYTES]);
	/*
	 * The block @hash asked with xfer_fetch() is in the store's cache,
	 * checked (@err 0), or will not come (@err: -ETIMEDOUT, -EIO for a
	 * block that did not check out or a refusal, -ENOTCONN when the owner
	 * went away).  Called once per hash for all the asks of it.
	 */
	void (*arrived)(void *ctx, const uint8_t hash[static STORE_HASH_BYTES], int err);
	/*
	 * Optional: the block @hash asked with xfer_fetch() came and checked
	 * out; @data (@len bytes) is valid only during the call.  It comes
	 * before the block is in the store (arrived() follows), from a loop
	 * callback that may be an rtmfp event: take the bytes, call nothing
	 * of xfer.  NULL: only
	 * arrived() is called.
	 */
	void (*delivered)(void *ctx, const uint8_t hash[static STORE_HASH_BYTES], const uint8_t *data,
			  size_t len);
	/*
	 * Optional: xfer wrote to or closed flows outside an rtmfp event (in
	 * xfer_fetch, xfer_peer_down, a timer or a deferred call); the owner
	 * flushes (rtmfp_posix_kick).  NULL: nothing is called.
	 */
	void (*kick)(void *ctx);
	void *ctx;
};

/* Counters since xfer_new(), for status and tests. */
struct xfer_totals {
	uint64_t blocks_fetched, bytes_fetched; /* checked and cached */
	uint64_t blocks_bad;       /* answers that did not check out (-EIO) */
	uint64_t errors_received;  /* ERROR answers (-EIO) */
	uint64_t timeouts;         /* requests failed with -ETIMEDOUT */
	uint64_t blocks_served, bytes_served;
	uint64_t errors_sent;      /* GETs answered with an ERROR */
	uint64_t flows_refused;    /* block flows rejected (not allowed, too many) */
	uint64_t store_commits;    /* transactions that cached fetched blocks */
	uint64_t store_ns;         /* time spent in them */
};

/* xfer_new - transfers over @p (copied).  Errors: -ENOMEM, -EINVAL. */
int xfer_new(struct xfer **out, const struct xfer_params *p);
/*
 * xfer_free - NULL is fine; no arrived events.  Flows belong to the rtmfp
 * instance and are not touched: free the instance first (or make sure no
 * more of its events reach xfer).  Never call it from arrived().
 */
void xfer_free(struct xfer *x);

/*
 * xfer_fetch - ask for the block @w (copied); arrived() follows, never
 * inside this call.  Asking for a block already in flight (by hash, from
 * any owner) adds nothing.  Callable from arrived().
 * Errors: -ENOTCONN (the owner's folder is down: allowed() says no, or no
 * flow can be opened), -EINVAL (w->len 0 or over STORE_BLOCK_MAX_BYTES,
 * bad path), -ENOMEM.
 */
int xfer_fetch(struct xfer *x, const struct xfer_want *w);

/* xfer_peer_down - fail what is in flight to or from @peer_id (-ENOTCONN). */
void xfer_peer_down(struct xfer *x, const uint8_t peer_id[static STORE_PEER_ID_BYTES]);

/*
 * xfer_stats - up to @cap transfers in progress into @out (one per peer and
 * direction, listed while something is in flight and for a few seconds
 * after); returns the count.
 */
size_t xfer_stats(const struct xfer *x, struct xfer_stat *out, size_t cap);
/* xfer_totals - the counters since xfer_new(). */
void xfer_totals(const struct xfer *x, struct xfer_totals *out);

/* ---- hooks for the owner's rtmfp callbacks (true: it was xfer's) ---- */
void xfer_on_session_closed(struct xfer *x, struct rtmfp_session *ss, int err);
bool xfer_on_recv_flow(struct xfer *x, struct rtmfp_recv *f, const uint8_t *meta, size_t meta_len,
		       struct rtmfp_send *assoc);
bool xfer_on_message(struct xfer *x, struct rtmfp_recv *f, const uint8_t *msg, size_t len);
bool xfer_on_recv_closed(struct xfer *x, struct rtmfp_recv *f, int err);
bool xfer_on_writable(struct xfer *x, struct rtmfp_send *f);
bool xfer_on_send_closed(struct xfer *x, struct rtmfp_send *f, int err);

#endif
