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
 * Owns: the FUSE session and its mount, the inode table (lookup counts,
 * forget), open handles and staging files, the object files it publishes.
 * Leaves: the store schema to store, hashing and signing to manifest, keys
 * to identity, fetching buddies' blocks to sync (not built yet: a read
 * that needs a block the store does not have fails with EIO).
 *
 * Threading: everything runs on the loop's thread, except the slow half of
 * a publish (hashing, signing, fsync, linking the object), which runs on a
 * thread of its own and touches no store, node or loop; its store
 * transaction runs back on the loop.  One publish per file at a time, so
 * versions commit in order; reads, stat and new writes of the file are
 * served meanwhile from the staged data.
 */
#ifndef BUDDYFS_FS_H
#define BUDDYFS_FS_H

#include <stdbool.h>
#include <stdint.h>

#include "buddyfs/store.h"

struct fs;
struct loop;
struct identity;

#define FS_STAGING_DIR "staging"
#define FS_OBJECTS_DIR "objects"
#define FS_ATTR_TIMEOUT_S 1.0 /* kernel cache of attributes and names */

struct fs_params {
	const char *home;          /* the home directory (copied) */
	struct loop *loop;         /* the daemon's loop (borrowed) */
	struct store *store;       /* open store (borrowed, outlives the fs) */
	const struct identity *id; /* our identity (borrowed): owner and signing key */
	bool test_online;          /* TEST ONLY: every buddy is online and mutual */
	/* called on the loop when the kernel ends the session (unmounted from outside) */
	void (*on_exit)(void *ctx);
	void *ctx;
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
 * fs_buddy_set_online - mark the buddy @id online (its directory appears in
 * the root, if it is a mutual buddy in the store) or offline (it
 * disappears: the kernel's cached name is invalidated).  Call it from loop
 * callbacks, never from inside a FUSE operation of this fs.
 */
void fs_buddy_set_online(struct fs *fs, const uint8_t id[static STORE_PEER_ID_BYTES], bool online);

/* fs_buddy_online - what the root shows for @id now. */
bool fs_buddy_online(const struct fs *fs, const uint8_t id[static STORE_PEER_ID_BYTES]);

/*
 * fs_entry_changed - the store entry (@buddy, @path) was changed by someone
 * else than this fs (a buddy's update applied by sync): drop the kernel's
 * cached attributes, pages and name for it.  Same calling rules as
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
