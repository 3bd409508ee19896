/*
 * fs_internal.h - what the parts of the file system share (not an API):
 * fs.c (the FUSE operations and the session), fs_node.c (names, the inode
 * table, attributes), fs_stage.c (staging files, publishing, objects),
 * fs_remote.c (a buddy's files: manifests and blocks), fs_fetch.c (reads
 * waiting for blocks, read-ahead) and fs_notify.c (the notifier thread).
 * Everything here runs on the loop's thread, but the publish and notifier
 * threads' own parts, which say so.
 */
#ifndef BUDDYFS_FS_INTERNAL_H
#define BUDDYFS_FS_INTERNAL_H

#define FUSE_USE_VERSION 35

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>

#include "buddyfs/fs.h"
#include "buddyfs/store.h"

/* st_blksize of files: cp and friends size their buffers by it (fewer, larger requests) */
#define FS_IO_BYTES (1 << 20)

struct identity;
struct job;
struct loop;
struct loop_fd;

#define ID_BYTES STORE_PEER_ID_BYTES
#define HEX_BYTES (2 * STORE_HASH_BYTES + 1)

struct stage {
	int fd;
	char name[64];   /* under HOME/staging */
	unsigned refs;   /* writer handles */
	bool discard;    /* unlinked before it was published, or a write failed */
	bool ready;      /* no writer left: published, or waiting for the node's job */
	uint32_t mode;
	int64_t mtime_ns;
	bool has_base;   /* base: the entry version this data started from (sync's conflicts) */
	uint64_t base;
};

struct node {
	uint64_t ino;
	uint64_t nlookup;
	unsigned opens;
	bool hashed;               /* in the path table */
	uint8_t buddy[ID_BYTES];
	char *path;                /* "" for the buddy's directory */
	struct node *next_ino, *next_path;
	struct stage *stage;       /* the newest unpublished data, if any */
	struct job *job;           /* the publish running for this node (its stage may be older) */
	bool cached_valid;         /* the kernel may hold pages of version @cached */
	uint8_t cached[STORE_HASH_BYTES];
};

struct handle {
	struct handle *prev, *next; /* fs->handles: freed at fs_free if still open */
	struct node *node;
	int fd;        /* reader: object or staging file; -1 for writers and remote files */
	bool writer;
	struct manifest *m; /* reader of a file whose object is not local: its blocks */
	/* the rest is for readers with @m (fs_fetch.c) */
	uint8_t version[STORE_HASH_BYTES]; /* the manifest hash of @m */
	uint64_t next_off;  /* where the last read ended: sequential if the next starts near */
	uint32_t ahead;     /* blocks before this one were asked for ahead already */
	uint32_t ahead_n;   /* blocks the next sequential read asks ahead; 0: the least */
	uint8_t *blk;       /* the last block read partly, for the next small read */
	uint32_t blk_index; /* which block @blk holds, if @blk_valid */
	bool blk_valid;
	unsigned waits;     /* reads of this handle waiting for blocks */
};

struct dent {
	char *name;
	uint8_t buddy[ID_BYTES]; /* root listing: the buddy */
	struct stat st;
};

struct dirsnap {
	size_t n, cap;
	struct dent *v;
};

struct table {
	struct node **b;
	size_t nb, count;
};

struct wait;
struct notifier;

struct fs {
	char *home;
	char *mountpoint;
	struct loop *loop;
	struct store *store;
	const struct identity *id;
	bool test_online;
	void (*on_exit)(void *ctx);
	void *ctx;

	struct fuse_session *se;
	struct loop_fd *fdh;
	struct fuse_buf buf;
	bool mounted;
	bool exited;

	struct table by_ino, by_path;
	uint64_t next_ino;
	size_t n_online, cap_online;
	uint8_t (*online)[ID_BYTES];
	unsigned stage_seq;
	struct handle *handles;
	unsigned jobs;             /* publishes running or not yet reaped */
	struct job *job_list;      /* those publishes */
	int done_pipe[2];          /* job threads write their struct job * here */
	struct loop_fd *done_h;
	int64_t start_ns; /* mtime of the root and the buddy directories */

	/* the network side (fs_fetch.c) */
	int (*fetch)(void *ctx, const struct xfer_want *w);
	void (*published)(void *ctx, const uint8_t buddy[32], const char *path);
	void *net_ctx;
	uint64_t timeout_ns;
	struct wait *waits;        /* reads waiting for blocks */
	bool sweep_queued;         /* a deferred sweep of interrupted waits is queued */
	bool closing;              /* unmounting: reads no longer wait for blocks */
	struct notifier *nt;       /* the notifier thread (fs_notify.c), while mounted */
};

/*
 * A publish of a node's staged data (fs_stage.c): the slow half runs on
 * @thread and fills @rc, @m, @hash, @made_object and @s; the rest is the
 * loop's.
 */
struct job {
	struct job *prev, *next; /* fs->job_list */
	struct fs *fs;
	struct node *node;
	struct stage *st;
	pthread_t thread;
	bool threaded;
	int rc;
	struct manifest *m;
	uint8_t hash[STORE_HASH_BYTES];
	bool made_object;
	struct stat s;
};

/* ---- fs_node.c: names, paths, the inode table, attributes ---- */

/* fs_path_join - "@dir/@name" (or @name when @dir is ""), malloc'd; NULL with *err set. */
char *fs_path_join(const char *dir, const char *name, int *err);
/* fs_errno - a positive errno for a reply from 0 / -errno / BFS_E*. */
int fs_errno(int rc);
/* fs_node_find - the hashed node of (@buddy, @path), or NULL. */
struct node *fs_node_find(struct fs *fs, const uint8_t buddy[ID_BYTES], const char *path);
/* fs_node_get - the node of (@buddy, @path), made (nlookup 0) if needed; NULL on ENOMEM. */
struct node *fs_node_get(struct fs *fs, const uint8_t buddy[ID_BYTES], const char *path);
/* fs_node_of - the node of inode @ino (NULL for the root or an unknown inode). */
struct node *fs_node_of(struct fs *fs, fuse_ino_t ino);
/* fs_node_unhash - @n no longer names its path (it stays known by inode). */
void fs_node_unhash(struct fs *fs, struct node *n);
/* fs_node_release - free @n if no lookup, handle or staging file is left. */
void fs_node_release(struct fs *fs, struct node *n);
/* fs_node_rename - nodes at @from and under it move to @to; the one at @to is unhashed. */
int fs_node_rename(struct fs *fs, const uint8_t buddy[ID_BYTES], const char *from, const char *to);
void fs_stat_dir(struct stat *st, fuse_ino_t ino, uint32_t mode, int64_t mtime_ns);
void fs_stat_entry(struct stat *st, fuse_ino_t ino, const struct store_entry *e);
int64_t fs_now_ns(void);
/* fs_live_entry - the entry of (@buddy, @path); -ENOENT when absent or a tombstone. */
int fs_live_entry(struct fs *fs, const uint8_t buddy[ID_BYTES], const char *path, struct store_entry *e);
/* fs_node_stat - @n's attributes: staged data wins over the store. */
int fs_node_stat(struct fs *fs, struct node *n, struct stat *st);
/* fs_reply_entry - reply an entry for @n and count the lookup. */
void fs_reply_entry(fuse_req_t req, struct node *n, const struct stat *st);
/* fs_published - tell the network side (fs_params.published) that (@buddy, @path) was committed. */
void fs_published(struct fs *fs, const uint8_t buddy[ID_BYTES], const char *path);

/* ---- fs_stage.c: staging files, publishing, objects ---- */

/*
 * fs_stage_open - take a writer reference on @n's staging file, making it
 * (a copy of the current version, or empty when @empty) if needed.
 */
int fs_stage_open(struct fs *fs, struct node *n, bool empty);
/* fs_stage_put - drop a writer reference; the last one publishes (unless discarded). */
int fs_stage_put(struct fs *fs, struct node *n);
/*
 * fs_jobs_reap - finish the publishes whose slow half is done (their store
 * transaction); with @wait, block until none is left.
 */
void fs_jobs_reap(struct fs *fs, bool wait);
/* fs_stage_free - remove the staging file and free @st. */
void fs_stage_free(struct fs *fs, struct stage *st);
/*
 * fs_object_open - an fd on the object of @n's current version (@e
 * receives the entry).  -ENODATA when the object is not here (a buddy's
 * file: read it block by block, fs_remote.c).
 */
int fs_object_open(struct fs *fs, struct node *n, struct store_entry *e);

/* ---- fs_remote.c: files whose blocks come from the block store ---- */

struct manifest;

/*
 * fs_remote_manifest - the manifest of entry @e, checked: its hash is
 * e->manifest, its owner is e->owner, and the owner's signature verifies
 * with the certificate pinned in the store (ours for our own files).
 * Errors: -EIO for anything missing or wrong (logged), -ENOMEM.
 */
int fs_remote_manifest(struct fs *fs, const struct store_entry *e, struct manifest **out);
/*
 * fs_remote_block - block @i of @m into @dst (@cap bytes, at least the
 * block's length), from the store: a cached copy or a local object.
 * Errors: -ENOENT when the store does not have it (fetch it), -EIO when
 * what it has does not fit the manifest or cannot be read.
 */
int fs_remote_block(struct fs *fs, const struct manifest *m, uint32_t i, uint8_t *dst, size_t cap);
/*
 * fs_remote_pread - up to @size bytes at @off of the file of @m, from its
 * blocks in the store (cached copies, or local objects).  Returns the
 * count (short only at the end of the file), or -EIO when a block is not
 * here (nothing is fetched: for copies of whole files, fs_stage.c).
 */
long fs_remote_pread(struct fs *fs, const struct manifest *m, uint8_t *buf, size_t size, uint64_t off);

/* ---- fs_fetch.c: reads of a buddy's file, waits for blocks, read-ahead ---- */

/*
 * fs_fetch_read - answer the read (@size bytes at @off) of @h (a handle
 * with a manifest): at once when its blocks are here; else ask for the
 * missing ones and keep @req until they arrived (fs_block_arrived), one
 * failed, the timeout passed or the kernel interrupted it.  Sequential
 * reads also ask ahead.
 */
void fs_fetch_read(struct fs *fs, fuse_req_t req, struct handle *h, size_t size, uint64_t off);
/* A FUSE operation to run again once the blocks it needs are here; @ctx is the caller's copy. */
typedef void fs_fetch_retry_fn(struct fs *fs, fuse_req_t req, const void *ctx);
/*
 * fs_fetch_whole - before a write copies @n's current version into a
 * staging file: 0 when it needs no block from the network (every block
 * is here, the object is local, @n has staged data, or there is no
 * network: the copy then fails with EIO by itself); 1 when @req now
 * waits for the missing blocks, asked for: once they are all here,
 * @retry(@fs, @req, copy of @ctx) runs (on the loop, from
 * fs_block_arrived); on failure, timeout or interrupt @req gets EIO or
 * EINTR and @retry never runs.  -ENOMEM, -EIO (bad manifest).
 */
int fs_fetch_whole(struct fs *fs, fuse_req_t req, struct node *n, fs_fetch_retry_fn *retry, const void *ctx,
		   size_t ctx_len);
/* fs_fetch_fail - fail the waiting requests of @h (every one when NULL) with @err (positive errno). */
void fs_fetch_fail(struct fs *fs, struct handle *h, int err);

/* ---- fs_notify.c: kernel cache invalidations, from a thread of their own ---- */

/* fs_notify_start - start the notifier thread on fs->se.  Errors: -ENOMEM, -errno of pthread_create. */
int fs_notify_start(struct fs *fs);
/*
 * fs_notify_inode - drop the kernel's attributes of inode @ino, and its
 * pages (or a directory's cached listing) when @pages.  Queued; the
 * notifier thread writes it.  Without a notifier (not mounted), nothing.
 */
void fs_notify_inode(struct fs *fs, fuse_ino_t ino, bool pages);
/* fs_notify_entry - drop the kernel's name @name in directory @parent (queued). */
void fs_notify_entry(struct fs *fs, fuse_ino_t parent, const char *name);
/*
 * fs_notify_stop - drop what is queued and end the thread.  The one it is
 * writing may wait for a request the loop must answer: @pump(@fs) is
 * called (answering queued requests) until the thread is done.
 */
void fs_notify_stop(struct fs *fs, void (*pump)(struct fs *fs));

#endif
