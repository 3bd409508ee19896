/*
 * fs_internal.h - what the parts of the file system share (not an API):
 * fs.c (the FUSE operations and the session), fs_node.c (names, the inode
 * table, attributes) and fs_stage.c (staging files, publishing, objects).
 * Everything here runs on the loop's thread.
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
 * fs_remote_pread - up to @size bytes at @off of the file of @m, from its
 * blocks in the store (cached copies, or local objects).  Returns the
 * count (short only at the end of the file), or -EIO when a block is not
 * here (sync will fetch it: not built yet).
 */
long fs_remote_pread(struct fs *fs, const struct manifest *m, uint8_t *buf, size_t size, uint64_t off);

#endif
