/*
 * fs.h - the FUSE file system of the daemon (DESIGN.md §7), on libfuse3's
 * low-level API, driven by the daemon's event loop.
 *
 * What a user sees under the mount point:
 *   /              one directory per ONLINE, mutual buddy, by name
 *   /NAME/...      the folder shared with that buddy: the entries of the
 *                  store (store_entry_*) under the buddy's peer id
 *
 * Metadata (lookup, getattr, readdir, readdirplus) is read from the LMDB
 * store only, never from the network.  Writes go to a private staging file
 * in HOME/staging/; when the last writer releases the file, it is cut into
 * blocks and hashed (manifest_build), the manifest is signed with our key,
 * the staging file becomes the object HOME/objects/<manifest hash hex> and
 * the manifest, its blocks (store_block_local_put) and the entry are
 * written in one store transaction.  A daemon killed before that publishes
 * nothing: leftover staging files are removed at the next start.  Reads of
 * our own versions come from the object file; other versions (a buddy's)
 * from the store's blocks, after their manifest's hash, owner and
 * signature checked out against the owner's pinned certificate.  Files are
 * opened with keep_cache while the version the kernel cached is current.
 *
 * Online state is an input (the network side, sync, calls
 * fs_buddy_set_online()); nothing is online until then, unless the
 * test-only switch fs_params.test_online marks every buddy in the store
 * online and mutual.
 *
 * Reading a buddy's file whose blocks are not in the store never blocks
 * the loop: the read asks fs_params.fetch for each missing block, keeps
 * its fuse_req and the reply it is building, and answers once every block
 * it needs came: by fs_block_data() (the checked bytes, before they are in
 * the store) or by fs_block_arrived() (then read from the store's cache);
 * or EIO when a block will not come or fs_params.timeout_s passed.
 * Sequential reads also ask for the blocks after the ones read, without
 * waiting for them: FS_FETCH_AHEAD_MIN_BYTES ahead at first, twice as far
 * with each sequential read, up to FS_FETCH_AHEAD_BYTES.
 *
 * Owns: the FUSE session and its mount, the inode table (lookup counts,
 * forget), open handles and staging files, the object files it publishes,
 * the reads waiting for blocks and what to fetch ahead.
 * Leaves: the store schema to store, hashing and signing to manifest, keys
 * to identity, moving and checking blocks to xfer (through
 * fs_params.fetch), telling the buddy about our changes to sync (through
 * fs_params.published).
 *
 * Threading: everything runs on the loop's thread, except
 *   - the slow half of a publish (hashing, signing, fsync, linking the
 *     object), which runs on a thread of its own and touches no store,
 *     node or loop; its store transaction runs back on the loop.  One
 *     publish per file at a time, so versions commit in order; reads,
 *     stat and new writes of the file are served meanwhile from the
 *     staged data;
 *   - the kernel cache invalidations (fs_entry_changed,
 *     fs_buddy_set_online), which one notifier thread writes to the FUSE
 *     device: such a write can wait for a lock held by a request that
 *     only the loop answers (a lookup in the same directory, a read of
 *     the same file waiting for its blocks), so the loop must never make
 *     it itself.
 */
#ifndef BUDDYFS_FS_H
#define BUDDYFS_FS_H

#include <stdbool.h>
#include <stdint.h>

#include "buddyfs/store.h"
#include "buddyfs/xfer.h"

struct fs;
struct loop;
struct identity;

#define FS_STAGING_DIR "staging"
#define FS_OBJECTS_DIR "objects"
#define FS_ATTR_TIMEOUT_S 1.0 /* kernel cache of attributes and names */
#define FS_TIMEOUT_S_DEFAULT 15u /* a read waiting for blocks fails after this */
#define FS_FETCH_AHEAD_BYTES (8u << 20)      /* sequential reads ask up to this far past their end, */
#define FS_FETCH_AHEAD_MIN_BYTES (512u << 10) /* from this far on the first, twice as far each next */

struct fs_params {
	const char *home;          /* the home directory (copied) */
	struct loop *loop;         /* the daemon's loop (borrowed) */
	struct store *store;       /* open store (borrowed, outlives the fs) */
	const struct identity *id; /* our identity (borrowed): owner and signing key */
	bool test_online;          /* TEST ONLY: every buddy is online and mutual */
	/* called on the loop when the kernel ends the session (unmounted from outside) */
	void (*on_exit)(void *ctx);
	void *ctx;
	/*
	 * Ask for block @w of a buddy's file (xfer_fetch): 0 when asked (the
	 * answer comes through fs_block_arrived(), later, never inside this
	 * call), a negative errno when it cannot be (the read fails with
	 * EIO).  @w and w->path live during the call only.  NULL: no network,
	 * reads of missing blocks fail with EIO at once.
	 */
	int (*fetch)(void *ctx, const struct xfer_want *w);
	/*
	 * We committed a change of @path in the folder shared with @buddy (a
	 * new file version, a directory, a tombstone of unlink/rmdir, both
	 * paths of a rename and every entry moved with a directory, new
	 * metadata of chmod/utimens/truncate): sync_published().  Called on
	 * the loop, after the store transaction, never inside a FUSE reply.
	 * May be NULL.
	 */
	void (*published)(void *ctx, const uint8_t buddy[32], const char *path);
	void *net_ctx;             /* @ctx of fetch and published */
	unsigned timeout_s;        /* reads waiting for blocks: 0 = FS_TIMEOUT_S_DEFAULT */
};

/*
 * fs_new - a file system over @p (not mounted yet).  Creates HOME/objects
 * and HOME/staging (mode 0700) and empties HOME/staging (interrupted
 * writes of an earlier daemon).
 * Errors: -ENOMEM, -errno of mkdir/opendir.
 */
int fs_new(struct fs **out, const struct fs_params *p);

/*
 * fs_mount - create the FUSE session, mount it on @mountpoint (an existing
 * directory) with @fsname as the source shown in /proc/mounts (type
 * fuse.buddyfs), and serve its fd from the loop.  Requests are answered
 * from the loop's callbacks, one reply per request.
 * Errors: -EINVAL (bad options), -EIO (the mount failed: libfuse printed
 * why), loop_fd_add errors.
 */
int fs_mount(struct fs *fs, const char *mountpoint, const char *fsname);

/*
 * fs_unmount - answer the requests already queued (so that files closed
 * before the unmount are published), then unmount and end the session.
 * Files still open for writing publish nothing.  Idempotent.
 */
void fs_unmount(struct fs *fs);

/* fs_free - unmount if needed, drop every handle and inode.  NULL is fine. */
void fs_free(struct fs *fs);

/* ---- the network side's hooks (sync) ---- */

/*
 * fs_block_arrived - the block @hash that fetch asked for is in the store's
 * cache, checked (@err 0), or will not come (@err < 0: every read waiting
 * for it fails with EIO).  Reads that still lacked it take it from the
 * store and are answered if they lack nothing more.  A hash nobody waits for is fine (read-ahead).
 * Call it from loop callbacks (xfer's arrived), not from inside fetch.
 */
void fs_block_arrived(struct fs *fs, const uint8_t hash[static STORE_HASH_BYTES], int err);

/*
 * fs_block_data - the block @hash (@len bytes at @data, checked against
 * its hash by the caller) came from the network: reads waiting for it
 * take their bytes now, and the ones that lack nothing more are answered
 * without waiting for the store.  fs_block_arrived() must still follow
 * (a copy of a whole file needs the block in the store).  Calls nothing
 * of the network side; safe from inside an rtmfp event.
 */
void fs_block_data(struct fs *fs, const uint8_t hash[static STORE_HASH_BYTES], const uint8_t *data, size_t len);

/*
 * fs_buddy_set_online - mark the buddy @id online (its directory appears in
 * the root, if it is a mutual buddy in the store) or offline (it
 * disappears: the kernel's cached name is invalidated, by the notifier
 * thread).  Safe from any loop callback, also from inside a FUSE
 * operation of this fs: it never writes to the FUSE device itself.
 */
void fs_buddy_set_online(struct fs *fs, const uint8_t id[static STORE_PEER_ID_BYTES], bool online);

/* fs_buddy_online - what the root shows for @id now. */
bool fs_buddy_online(const struct fs *fs, const uint8_t id[static STORE_PEER_ID_BYTES]);

/*
 * fs_entry_changed - the store entry (@buddy, @path) was changed by someone
 * else than this fs (a buddy's update applied by sync): drop the kernel's
 * cached attributes, pages and name of it, and the attributes and listing
 * of its parent directory (so a new name shows in ls at once).  A removed
 * entry's inode leaves the path table (the next lookup makes a new one),
 * unless we have unpublished writes of it.  Same calling rules as
 * fs_buddy_set_online().
 */
void fs_entry_changed(struct fs *fs, const uint8_t buddy[static STORE_PEER_ID_BYTES], const char *path);

/* fs_mountpoint - the mount point given to fs_mount(), or NULL. */
const char *fs_mountpoint(const struct fs *fs);

/*
 * fs_name_check - may @name be one directory entry?  0; -EINVAL for "",
 * ".", "..", or a name with '/'; -ENAMETOOLONG over STORE_FILE_NAME_MAX
 * bytes.  For names from the kernel and from a buddy's index alike.
 */
int fs_name_check(const char *name);

#endif
