/*
 * fs.c - the FUSE low-level file system (fs.h has the picture).
 *
 * Inodes: the root is FUSE_ROOT_ID; every other inode is a node keyed by
 * (buddy peer id, path in the buddy's folder), "" being the buddy's
 * directory.  Inode numbers come from a counter and are never reused, so
 * the generation is always 0.  A node lives while the kernel holds lookups
 * on it (nlookup, dropped by forget) or a handle or staging file uses it.
 * A node whose path was removed or replaced leaves the path table but stays
 * in the inode table until then.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "buddyfs/buf.h"
#include "buddyfs/err.h"
#include "buddyfs/fs.h"
#include "buddyfs/identity.h"
#include "buddyfs/log.h"
#include "buddyfs/loop.h"
#include "buddyfs/manifest.h"
#include "buddyfs/store.h"
#include "fs_internal.h"

#define REQS_PER_WAKEUP 64
#define FS_UNKNOWN_INO 0xffffffffu /* d_ino of a listed name with no inode yet */
#define FS_READAHEAD_BYTES (8u << 20) /* the kernel's read-ahead of our mount */

/* ---- buddies ---- */

bool fs_buddy_online(const struct fs *fs, const uint8_t id[static STORE_PEER_ID_BYTES])
{
	for (size_t i = 0; i < fs->n_online; i++)
		if (memcmp(fs->online[i], id, ID_BYTES) == 0)
			return true;
	return false;
}

/* visible - @p has a directory in the root now. */
static bool visible(const struct fs *fs, const struct store_peer *p)
{
	if (p->buddy != STORE_BUDDY_ADDED || !p->name[0])
		return false;
	if (fs->test_online)
		return true;
	return p->mutual && fs_buddy_online(fs, p->id);
}

void fs_buddy_set_online(struct fs *fs, const uint8_t id[static STORE_PEER_ID_BYTES], bool online)
{
	struct store_peer p;

	if (online == fs_buddy_online(fs, id))
		return;
	if (online) {
		if (fs->n_online == fs->cap_online) {
			size_t cap = fs->cap_online ? fs->cap_online * 2 : 8;
			uint8_t(*v)[ID_BYTES] = realloc(fs->online, cap * ID_BYTES);

			if (!v)
				return;
			fs->online = v;
			fs->cap_online = cap;
		}
		memcpy(fs->online[fs->n_online++], id, ID_BYTES);
		return;
	}
	for (size_t i = 0; i < fs->n_online; i++)
		if (memcmp(fs->online[i], id, ID_BYTES) == 0) {
			memmove(fs->online[i], fs->online[fs->n_online - 1], ID_BYTES);
			fs->n_online--;
			break;
		}
	if (fs->nt && store_peer_get(fs->store, id, &p) == 0 && p.name[0])
		fs_notify_entry(fs, FUSE_ROOT_ID, p.name);
}

/*
 * The kernel's caches are dropped through the notifier thread (fs_notify.c):
 * writing a notification from the loop could wait for a lock held by a
 * request that only the loop answers.
 */
void fs_entry_changed(struct fs *fs, const uint8_t buddy[static STORE_PEER_ID_BYTES], const char *path)
{
	struct node *n = fs_node_find(fs, buddy, path), *parent;
	const char *slash = strrchr(path, '/');
	char *dir;

	if (!path[0])
		return;
	if (n) {
		struct store_entry *e = malloc(sizeof(*e));

		n->cached_valid = false;
		fs_notify_inode(fs, n->ino, true);
		/* removed: the next lookup of the name gets a new inode (unless we have writes of it) */
		if (e && !n->stage && !n->job && fs_live_entry(fs, buddy, path, e) == -ENOENT) {
			fs_node_unhash(fs, n);
			fs_node_release(fs, n);
		}
		free(e);
	}
	dir = strndup(path, slash ? (size_t)(slash - path) : 0);
	if (!dir)
		return;
	parent = fs_node_find(fs, buddy, dir);
	if (parent) {
		fs_notify_entry(fs, parent->ino, slash ? slash + 1 : path);
		fs_notify_inode(fs, parent->ino, true); /* its attributes and cached listing */
	}
	free(dir);
}

/* ---- the operations ---- */

/*
 * bdi_of - the "MAJOR:MINOR" of the file system mounted on @mnt (fuse.buddyfs,
 * the last such mount), from /proc/self/mountinfo: never stat() our own
 * mount from the loop (the kernel would ask the loop).
 */
static int bdi_of(const char *mnt, char *out, size_t cap)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t len = 0;
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (getline(&line, &len, f) > 0) {
		char dev[32], point[PATH_MAX], *dash = strstr(line, " - "), *o = point;

		if (!dash || sscanf(line, "%*u %*u %31s %*s %4095s", dev, point) != 2 ||
		    strncmp(dash, " - fuse.buddyfs ", 16) != 0)
			continue;
		/* mountinfo writes space, tab, newline and backslash as \ooo */
		for (const char *c = point; *c; o++) {
			if (c[0] == '\\' && c[1] >= '0' && c[1] <= '3' && c[2] >= '0' && c[2] <= '7' &&
			    c[3] >= '0' && c[3] <= '7') {
				*o = (char)((c[1] - '0') * 64 + (c[2] - '0') * 8 + (c[3] - '0'));
				c += 4;
			} else {
				*o = *c++;
			}
		}
		*o = '\0';
		if (strcmp(point, mnt) == 0) {
			snprintf(out, cap, "%s", dev);
			rc = 0;
		}
	}
	free(line);
	fclose(f);
	return rc;
}

/*
 * raise_readahead - the kernel starts a FUSE mount with the default
 * read-ahead (128 KiB, and max_readahead can only lower it), so sequential
 * reads would come in 128 KiB requests.  Raise the mount's read-ahead to
 * FS_READAHEAD_BYTES in sysfs (needs root; best effort).  Runs after the
 * INIT reply, which would lower it again.
 */
static void raise_readahead(struct loop *loop, void *ctx)
{
	struct fs *fs = ctx;
	char dev[32], path[96], kb[32];
	int fd, n, rc;

	(void)loop;
	if (!fs->mountpoint || !fs->mounted)
		return;
	rc = bdi_of(fs->mountpoint, dev, sizeof(dev));
	if (rc) {
		log_debug("read-ahead of %s left as it is: %s", fs->mountpoint, bfs_strerror(rc));
		return;
	}
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
	n = snprintf(kb, sizeof(kb), "%u\n", FS_READAHEAD_BYTES / 1024);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	rc = fd < 0 || write(fd, kb, (size_t)n) != n ? -errno : 0;
	if (fd >= 0)
		close(fd);
	if (rc) {
		log_debug("read-ahead of %s left as it is: %s: %s", fs->mountpoint, path, strerror(-rc));
		return;
	}
	log_debug("read-ahead of %s (bdi %s) is %u KiB", fs->mountpoint, dev, FS_READAHEAD_BYTES / 1024);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;

	if (conn->capable & FUSE_CAP_EXPORT_SUPPORT)
		conn->want &= ~FUSE_CAP_EXPORT_SUPPORT;
	/*
	 * Large requests: libfuse offers max_write = its buffer (1 MiB) and
	 * max_pages to match, so reads and writes come in up to 1 MiB pieces;
	 * read-ahead is raised after the reply (raise_readahead).  Several
	 * reads in flight at once: buddy files answer them as blocks arrive.
	 */
	conn->max_readahead = FS_READAHEAD_BYTES;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	/*
	 * O_DIRECT reads as plain requests, not asynchronous ones: a signal
	 * then interrupts a direct read waiting for a buddy's blocks (EINTR)
	 * instead of leaving it to the timeout.  Page-cache reads, the usual
	 * path, are not affected.
	 */
	conn->want &= ~FUSE_CAP_ASYNC_DIO;
	if (loop_defer(fs->loop, raise_readahead, fs))
		log_debug("read-ahead left as it is: %s", strerror(ENOMEM));
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fuse_req_userdata(req);
	struct node *pn = fs_node_of(fs, parent), *n;
	struct store_peer p;
	struct stat st;
	char *path;
	int rc = fs_name_check(name);

	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (parent == FUSE_ROOT_ID) {
		rc = store_peer_by_name(fs->store, name, &p);
		if (rc || !visible(fs, &p)) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		n = fs_node_get(fs, p.id, "");
		if (!n) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		fs_stat_dir(&st, n->ino, 0755, fs->start_ns);
		fs_reply_entry(req, n, &st);
		return;
	}
	if (!pn) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	path = fs_path_join(pn->path, name, &rc);
	if (!path) {
		fuse_reply_err(req, -rc);
		return;
	}
	n = fs_node_find(fs, pn->buddy, path);
	if (n && n->stage) {
		rc = fs_node_stat(fs, n, &st);
	} else {
		struct store_entry *e = malloc(sizeof(*e));

		rc = e ? fs_live_entry(fs, pn->buddy, path, e) : -ENOMEM;
		if (rc == 0) {
			n = fs_node_get(fs, pn->buddy, path);
			if (n)
				fs_stat_entry(&st, n->ino, e);
			else
				rc = -ENOMEM;
		}
		free(e);
	}
	free(path);
	if (rc)
		fuse_reply_err(req, fs_errno(rc));
	else
		fs_reply_entry(req, n, &st);
}

static void forget_one(struct fs *fs, fuse_ino_t ino, uint64_t nlookup)
{
	struct node *n = fs_node_of(fs, ino);

	if (!n)
		return;
	n->nlookup = nlookup > n->nlookup ? 0 : n->nlookup - nlookup;
	fs_node_release(fs, n);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	forget_one(fuse_req_userdata(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fs *fs = fuse_req_userdata(req);

	for (size_t i = 0; i < count; i++)
		forget_one(fs, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct node *n = fs_node_of(fs, ino);
	struct stat st;
	int rc;

	(void)fi;
	if (ino == FUSE_ROOT_ID) {
		fs_stat_dir(&st, ino, 0755, fs->start_ns);
		fuse_reply_attr(req, &st, FS_ATTR_TIMEOUT_S);
		return;
	}
	rc = n ? fs_node_stat(fs, n, &st) : -ESTALE;
	if (rc)
		fuse_reply_err(req, fs_errno(rc));
	else
		fuse_reply_attr(req, &st, FS_ATTR_TIMEOUT_S);
}

/* update_meta - chmod/utimens of a stored entry: a new version of its metadata. */
static int update_meta(struct fs *fs, struct node *n, const struct stat *attr, int to_set)
{
	struct store_entry *e = malloc(sizeof(*e));
	int rc;

	if (!e)
		return -ENOMEM;
	rc = fs_live_entry(fs, n->buddy, n->path, e);
	if (rc == 0) {
		if (to_set & FUSE_SET_ATTR_MODE)
			e->mode = attr->st_mode & 07777;
		if (to_set & FUSE_SET_ATTR_MTIME_NOW)
			e->mtime_ns = fs_now_ns();
		else if (to_set & FUSE_SET_ATTR_MTIME)
			e->mtime_ns = (int64_t)attr->st_mtim.tv_sec * 1000000000 + attr->st_mtim.tv_nsec;
		e->has_base = true;
		e->base = e->version;
		e->version++;
		rc = store_entry_put(fs->store, NULL, e);
		if (rc == 0)
			fs_published(fs, n->buddy, n->path);
	}
	free(e);
	return rc;
}

/* object_open - open the object of the current version of @n read-only. */
/* stage_open - give @n a staging file with its current data (or none: @empty). */
/* A truncate waiting for the blocks of a buddy's file (fs_fetch_whole). */
struct setattr_again {
	fuse_ino_t ino;
	struct stat attr;
	int to_set;
};

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi);

static void setattr_again(struct fs *fs, fuse_req_t req, const void *ctx)
{
	struct setattr_again a = *(const struct setattr_again *)ctx;

	(void)fs;
	op_setattr(req, a.ino, &a.attr, a.to_set, NULL);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct node *n = fs_node_of(fs, ino);
	struct stat st;
	int rc = 0;

	(void)fi;
	if (!n || !n->path[0]) {
		fuse_reply_err(req, n || ino == FUSE_ROOT_ID ? EPERM : ESTALE);
		return;
	}
	if ((to_set & FUSE_SET_ATTR_SIZE) && attr->st_size != 0) {
		/* keeping some of a buddy's file: its blocks must be here first */
		struct setattr_again a = { .ino = ino, .attr = *attr, .to_set = to_set };

		rc = fs_fetch_whole(fs, req, n, setattr_again, &a, sizeof(a));
		if (rc == 1)
			return;
	}
	if (rc == 0 && (to_set & FUSE_SET_ATTR_SIZE)) {
		/* temp: no writer has the file open, so this truncate publishes at once */
		bool temp = !(n->stage && !n->stage->ready), took = false;

		rc = fs_node_stat(fs, n, &st);
		if (rc == 0 && S_ISDIR(st.st_mode))
			rc = -EISDIR;
		if (rc == 0) {
			rc = fs_stage_open(fs, n, attr->st_size == 0);
			took = rc == 0 || !temp; /* an existing stage got its ref even on error */
		}
		if (rc == 0 && ftruncate(n->stage->fd, attr->st_size))
			rc = -errno;
		if (took && !temp) {
			n->stage->refs--;
		} else if (took) {
			/* truncate(2) without an open file: publish now */
			if (rc)
				n->stage->discard = true;
			if (fs_stage_put(fs, n) && rc == 0)
				rc = -EIO;
		}
	}
	if (rc == 0 && (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))) {
		if (n->stage) {
			if (to_set & FUSE_SET_ATTR_MODE)
				n->stage->mode = attr->st_mode & 07777;
			if (to_set & FUSE_SET_ATTR_MTIME_NOW)
				n->stage->mtime_ns = fs_now_ns();
			else if (to_set & FUSE_SET_ATTR_MTIME)
				n->stage->mtime_ns = (int64_t)attr->st_mtim.tv_sec * 1000000000 +
						     attr->st_mtim.tv_nsec;
		} else {
			rc = update_meta(fs, n, attr, to_set);
		}
	}
	if (rc == 0)
		rc = fs_node_stat(fs, n, &st);
	if (rc)
		fuse_reply_err(req, fs_errno(rc));
	else
		fuse_reply_attr(req, &st, FS_ATTR_TIMEOUT_S);
}

/* parent_dir - @pn must be a directory of a buddy's folder we may write in. */
static int parent_dir(struct fs *fs, fuse_ino_t parent, struct node **pn)
{
	*pn = fs_node_of(fs, parent);
	if (parent == FUSE_ROOT_ID)
		return -EPERM;
	if (!*pn)
		return -ESTALE;
	if (!fs_buddy_online(fs, (*pn)->buddy) && !fs->test_online)
		return -EIO;
	return 0;
}

/*
 * child_of - the start of an operation on @name in directory @parent: the
 * name is checked, the parent resolved (*pn), the child's path joined
 * (*path) and an entry allocated (*e).  Returns 0 or a negative errno; the
 * caller frees *path and *e, which may be set even on an error.
 */
static int child_of(struct fs *fs, fuse_ino_t parent, const char *name, struct node **pn,
		    char **path, struct store_entry **e)
{
	int rc = fs_name_check(name);

	if (rc == 0)
		rc = parent_dir(fs, parent, pn);
	if (rc == 0)
		*path = fs_path_join((*pn)->path, name, &rc);
	if (rc == 0)
		rc = (*e = malloc(sizeof(**e))) ? 0 : -ENOMEM;
	return rc;
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct fs *fs = fuse_req_userdata(req);
	struct store_entry *e = NULL;
	struct node *pn, *n;
	struct stat st;
	char *path = NULL;
	int rc = child_of(fs, parent, name, &pn, &path, &e);

	if (rc)
		goto out;
	rc = store_entry_get(fs->store, NULL, pn->buddy, path, e);
	if ((rc == 0 && !e->deleted) || (fs_node_find(fs, pn->buddy, path) && fs_node_find(fs, pn->buddy, path)->stage)) {
		rc = -EEXIST;
		goto out;
	}
	if (rc && rc != -ENOENT)
		goto out;
	{
		uint64_t version = rc == 0 ? e->version : 0;

		memset(e, 0, sizeof(*e));
		memcpy(e->buddy, pn->buddy, ID_BYTES);
		snprintf(e->path, sizeof(e->path), "%s", path);
		e->type = STORE_ENTRY_DIR;
		e->mode = mode & 07777;
		e->mtime_ns = fs_now_ns();
		memcpy(e->owner, fs->id->peer_id, ID_BYTES);
		e->version = version + 1;
		e->has_base = true;
		e->base = version;
	}
	rc = store_entry_put(fs->store, NULL, e);
	if (rc)
		goto out;
	fs_published(fs, pn->buddy, path);
	n = fs_node_get(fs, pn->buddy, path);
	if (!n) {
		rc = -ENOMEM;
		goto out;
	}
	fs_stat_entry(&st, n->ino, e);
	fs_reply_entry(req, n, &st);
out:
	if (rc)
		fuse_reply_err(req, fs_errno(rc));
	free(path);
	free(e);
}

static int has_live(void *ctx, const struct store_entry *e)
{
	(void)ctx;
	return e->deleted ? 0 : 1;
}

/* tombstone - replace the entry of @path by a tombstone (newer version). */
static int tombstone(struct fs *fs, struct store_txn *t, struct store_entry *e)
{
	e->deleted = true;
	e->has_base = true;
	e->base = e->version;
	e->version++;
	e->size = 0;
	memcpy(e->owner, fs->id->peer_id, ID_BYTES);
	memset(e->manifest, 0, sizeof(e->manifest));
	e->mtime_ns = fs_now_ns();
	return store_entry_put(fs->store, t, e);
}

static void remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name, bool dir)
{
	struct fs *fs = fuse_req_userdata(req);
	struct store_entry *e = NULL;
	struct node *pn, *n;
	char *path = NULL;
	int rc = child_of(fs, parent, name, &pn, &path, &e);

	if (rc)
		goto out;
	n = fs_node_find(fs, pn->buddy, path);
	rc = fs_live_entry(fs, pn->buddy, path, e);
	if (rc == -ENOENT && n && n->stage && !dir) {
		n->stage->discard = true;
		fs_node_unhash(fs, n);
		rc = 0;
		goto out;
	}
	if (rc)
		goto out;
	if (dir && e->type != STORE_ENTRY_DIR) {
		rc = -ENOTDIR;
		goto out;
	}
	if (!dir && e->type == STORE_ENTRY_DIR) {
		rc = -EISDIR;
		goto out;
	}
	if (dir) {
		rc = store_entry_list(fs->store, NULL, pn->buddy, path, NULL, has_live, NULL);
		if (rc == 1)
			rc = -ENOTEMPTY;
		if (rc)
			goto out;
	}
	rc = tombstone(fs, NULL, e);
	if (rc == 0)
		fs_published(fs, pn->buddy, path);
	if (rc == 0 && n) {
		if (n->stage)
			n->stage->discard = true;
		fs_node_unhash(fs, n);
	}
out:
	fuse_reply_err(req, fs_errno(rc));
	free(path);
	free(e);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, false);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, true);
}

/* ---- rename ---- */

struct sub_list {
	const char *prefix;
	size_t plen;
	size_t n, cap;
	struct store_entry *v;
	int err;
};

static int collect_sub(void *ctx, const struct store_entry *e)
{
	struct sub_list *l = ctx;

	if (strncmp(e->path, l->prefix, l->plen) != 0 || e->path[l->plen] != '/' || e->deleted)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct store_entry *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *e;
	return 0;
}

/* move_one - put @e at @to (over whatever @to had) and a tombstone at its old path. */
static int move_one(struct fs *fs, struct store_txn *t, struct store_entry *e, const char *to)
{
	struct store_entry *old = malloc(sizeof(*old));
	uint64_t version = 0;
	int rc;

	if (!old)
		return -ENOMEM;
	rc = store_entry_get(fs->store, t, e->buddy, to, old);
	if (rc == 0)
		version = old->version;
	*old = *e;
	rc = tombstone(fs, t, old);
	if (rc == 0) {
		snprintf(e->path, sizeof(e->path), "%s", to);
		e->has_base = true;
		e->base = version;
		e->version = (version > e->version ? version : e->version) + 1;
		rc = store_entry_put(fs->store, t, e);
	}
	free(old);
	return rc;
}

/* rename_nodes - nodes under @from move to @to; a node that was at @to is unhashed. */
static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct fs *fs = fuse_req_userdata(req);
	struct store_entry *src = NULL, *dst = NULL;
	struct sub_list subs = { 0 };
	struct store_txn *t = NULL;
	struct node *pn, *npn, *sn;
	char *from = NULL, *to = NULL;
	bool have_dst;
	int rc = fs_name_check(name);

	if (rc == 0)
		rc = fs_name_check(newname);
	if (rc == 0)
		rc = parent_dir(fs, parent, &pn);
	if (rc == 0)
		rc = parent_dir(fs, newparent, &npn);
	if (rc == 0 && memcmp(pn->buddy, npn->buddy, ID_BYTES) != 0)
		rc = -EXDEV;
	if (rc == 0 && (flags & ~(unsigned)RENAME_NOREPLACE))
		rc = -EINVAL;
	if (rc == 0)
		from = fs_path_join(pn->path, name, &rc);
	if (rc == 0)
		to = fs_path_join(npn->path, newname, &rc);
	if (rc == 0) {
		src = malloc(sizeof(*src));
		dst = malloc(sizeof(*dst));
		rc = src && dst ? 0 : -ENOMEM;
	}
	if (rc)
		goto out;
	if (strcmp(from, to) == 0)
		goto out;
	sn = fs_node_find(fs, pn->buddy, from);
	rc = fs_live_entry(fs, pn->buddy, from, src);
	have_dst = fs_live_entry(fs, pn->buddy, to, dst) == 0;
	if (rc == -ENOENT && sn && sn->stage) {
		/* staged, never published: only the node moves */
		if (have_dst && dst->type == STORE_ENTRY_DIR)
			rc = -EISDIR;
		else if (have_dst && (flags & RENAME_NOREPLACE))
			rc = -EEXIST;
		else
			rc = 0;
		if (rc == 0 && have_dst)
			rc = tombstone(fs, NULL, dst);
		if (rc == 0 && have_dst)
			fs_published(fs, pn->buddy, to);
		if (rc == 0)
			rc = fs_node_rename(fs, pn->buddy, from, to);
		goto out;
	}
	if (rc)
		goto out;
	if (have_dst) {
		if (flags & RENAME_NOREPLACE)
			rc = -EEXIST;
		else if (src->type == STORE_ENTRY_DIR && dst->type != STORE_ENTRY_DIR)
			rc = -ENOTDIR;
		else if (src->type != STORE_ENTRY_DIR && dst->type == STORE_ENTRY_DIR)
			rc = -EISDIR;
		else if (dst->type == STORE_ENTRY_DIR) {
			rc = store_entry_list(fs->store, NULL, pn->buddy, to, NULL, has_live, NULL);
			if (rc == 1)
				rc = -ENOTEMPTY;
		}
		if (rc)
			goto out;
	}
	if (src->type == STORE_ENTRY_DIR) {
		size_t flen = strlen(from);

		if (strncmp(to, from, flen) == 0 && to[flen] == '/') {
			rc = -EINVAL;
			goto out;
		}
		subs.prefix = from;
		subs.plen = flen;
		rc = store_entry_foreach(fs->store, NULL, pn->buddy, collect_sub, &subs);
		if (rc)
			goto out;
	}
	rc = store_txn_begin(fs->store, &t);
	if (rc)
		goto out;
	rc = move_one(fs, t, src, to);
	for (size_t i = 0; rc == 0 && i < subs.n; i++) {
		char *np = fs_path_join(to, subs.v[i].path + strlen(from) + 1, &rc);

		if (np) {
			rc = move_one(fs, t, &subs.v[i], np);
			free(np);
		}
	}
	if (rc) {
		store_txn_abort(t);
		goto out;
	}
	rc = store_txn_commit(t);
	if (rc == 0) {
		fs_published(fs, pn->buddy, from);
		fs_published(fs, pn->buddy, to);
		for (size_t i = 0; i < subs.n; i++) {
			/* move_one() gave each its new path: the old one is under @from */
			int err;
			char *op = fs_path_join(from, subs.v[i].path + strlen(to) + 1, &err);

			if (op)
				fs_published(fs, pn->buddy, op);
			fs_published(fs, pn->buddy, subs.v[i].path);
			free(op);
		}
		rc = fs_node_rename(fs, pn->buddy, from, to);
	}
out:
	fuse_reply_err(req, fs_errno(rc));
	free(subs.v);
	free(from);
	free(to);
	free(src);
	free(dst);
}

/* ---- files ---- */

static struct handle *handle_new(struct fs *fs, struct node *n, int fd, bool writer)
{
	struct handle *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->node = n;
	h->fd = fd;
	h->writer = writer;
	h->next = fs->handles;
	if (h->next)
		h->next->prev = h;
	fs->handles = h;
	n->opens++;
	return h;
}

/* handle_free - unlink @h from the open list and free it and its manifest (the fd is the caller's). */
static void handle_free(struct fs *fs, struct handle *h)
{
	if (h->prev)
		h->prev->next = h->next;
	else
		fs->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	manifest_free(h->m);
	free(h->blk);
	free(h);
}

/*
 * stage_abandon - drop the writer reference of an open that failed or was
 * interrupted before the caller got it: a staging file this open made
 * publishes nothing; one shared with other writers stays theirs.
 */
static void stage_abandon(struct fs *fs, struct node *n)
{
	if (n->stage->refs == 1)
		n->stage->discard = true;
	fs_stage_put(fs, n);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct store_entry *e = NULL;
	struct node *pn, *n = NULL;
	struct handle *h;
	struct fuse_entry_param ep;
	char *path = NULL;
	int rc = child_of(fs, parent, name, &pn, &path, &e);

	if (rc)
		goto out;
	rc = fs_live_entry(fs, pn->buddy, path, e);
	if (rc == 0 && e->type == STORE_ENTRY_DIR)
		rc = -EISDIR;
	else if (rc == 0 && (fi->flags & O_EXCL))
		rc = -EEXIST;
	else if (rc == -ENOENT || rc == 0)
		rc = 0;
	if (rc)
		goto out;
	n = fs_node_get(fs, pn->buddy, path);
	if (!n) {
		rc = -ENOMEM;
		goto out;
	}
	rc = fs_stage_open(fs, n, true);
	if (rc)
		goto out;
	n->stage->mode = mode & 07777;
	h = handle_new(fs, n, -1, true);
	if (!h) {
		stage_abandon(fs, n);
		rc = -ENOMEM;
		goto out;
	}
	memset(&ep, 0, sizeof(ep));
	rc = fs_node_stat(fs, n, &ep.attr);
	if (rc) {
		n->opens--;
		handle_free(fs, h);
		stage_abandon(fs, n);
		goto out;
	}
	ep.ino = n->ino;
	ep.attr_timeout = FS_ATTR_TIMEOUT_S;
	ep.entry_timeout = FS_ATTR_TIMEOUT_S;
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->keep_cache = 0;
	n->nlookup++;
	n->cached_valid = false;
	if (fuse_reply_create(req, &ep, fi) == -ENOENT) {
		/* the creator was interrupted: undo the lookup and the handle */
		n->nlookup--;
		n->opens--;
		handle_free(fs, h);
		stage_abandon(fs, n);
		fs_node_release(fs, n);
	}
	n = NULL;
out:
	if (rc)
		fuse_reply_err(req, fs_errno(rc));
	if (n)
		fs_node_release(fs, n);
	free(path);
	free(e);
}

/* An open for writing waiting for the blocks of a buddy's file (fs_fetch_whole). */
struct open_again {
	fuse_ino_t ino;
	struct fuse_file_info fi;
};

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

static void open_again(struct fs *fs, fuse_req_t req, const void *ctx)
{
	struct open_again a = *(const struct open_again *)ctx;

	(void)fs;
	op_open(req, a.ino, &a.fi);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct node *n = fs_node_of(fs, ino);
	struct store_entry *e = NULL;
	bool writer = (fi->flags & O_ACCMODE) != O_RDONLY;
	struct manifest *m = NULL;
	struct handle *h;
	int fd = -1, rc = 0;

	if (!n || !n->path[0]) {
		fuse_reply_err(req, n || ino == FUSE_ROOT_ID ? EISDIR : ESTALE);
		return;
	}
	if (writer && !(fi->flags & O_TRUNC)) {
		/* writing into a buddy's file copies it: its blocks must be here first */
		struct open_again a = { .ino = ino, .fi = *fi };

		rc = fs_fetch_whole(fs, req, n, open_again, &a, sizeof(a));
		if (rc == 1)
			return;
		if (rc) {
			fuse_reply_err(req, fs_errno(rc));
			return;
		}
	}
	if (writer) {
		rc = fs_stage_open(fs, n, (fi->flags & O_TRUNC) != 0);
		if (rc == 0)
			n->cached_valid = false;
	} else if (n->stage) {
		fd = dup(n->stage->fd);
		rc = fd < 0 ? -errno : 0;
		n->cached_valid = false;
	} else {
		e = malloc(sizeof(*e));
		fd = e ? fs_object_open(fs, n, e) : -ENOMEM;
		rc = fd < 0 ? fd : 0;
		if (rc == -ENODATA) {
			/* a buddy's file: read from its blocks */
			fd = -1;
			rc = fs_remote_manifest(fs, e, &m);
		}
		if (rc == 0) {
			fi->keep_cache = n->cached_valid && memcmp(n->cached, e->manifest, STORE_HASH_BYTES) == 0;
			memcpy(n->cached, e->manifest, STORE_HASH_BYTES);
			n->cached_valid = true;
		}
	}
	free(e);
	if (rc) {
		fuse_reply_err(req, fs_errno(rc));
		return;
	}
	h = handle_new(fs, n, fd, writer);
	if (!h) {
		manifest_free(m);
		if (fd >= 0)
			close(fd);
		if (writer)
			stage_abandon(fs, n);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->m = m;
	if (m)
		memcpy(h->version, n->cached, STORE_HASH_BYTES);
	fi->fh = (uint64_t)(uintptr_t)h;
	if (fuse_reply_open(req, fi) == -ENOENT) {
		n->opens--;
		if (fd >= 0)
			close(fd);
		if (writer)
			stage_abandon(fs, n);
		handle_free(fs, h);
		fs_node_release(fs, n);
	}
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);

	(void)ino;
	if (h->m) {
		/* a buddy's file: from the store's blocks, maybe after fetching them */
		fs_fetch_read(fuse_req_userdata(req), req, h, size, (uint64_t)off);
		return;
	}
	bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	bv.buf[0].fd = h->writer ? h->node->stage->fd : h->fd;
	bv.buf[0].pos = off;
	fuse_reply_data(req, &bv, FUSE_BUF_NO_SPLICE);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	ssize_t n;

	(void)ino;
	if (!h->writer) {
		fuse_reply_err(req, EBADF);
		return;
	}
	n = pwrite(h->node->stage->fd, buf, size, off);
	if (n < 0 || (size_t)n < size) {
		/* ENOSPC or EIO while staging: this version must not be published */
		int err = n < 0 ? errno : ENOSPC;

		if (!h->node->stage->discard)
			log_warn("write to %s failed (%s): it will not be published", h->node->path, strerror(err));
		h->node->stage->discard = true;
		fuse_reply_err(req, err);
		return;
	}
	fuse_reply_write(req, (size_t)n);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	int fd = h->writer ? h->node->stage->fd : h->fd;

	(void)ino;
	(void)datasync;
	fuse_reply_err(req, fd >= 0 && fdatasync(fd) ? errno : 0);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct node *n = h->node;
	int rc = 0;

	(void)ino;
	if (h->waits)
		fs_fetch_fail(fs, h, EIO); /* the kernel waits for reads before it releases: not seen */
	if (h->writer)
		rc = fs_stage_put(fs, n);
	else if (h->fd >= 0)
		close(h->fd);
	n->opens--;
	handle_free(fs, h);
	fs_node_release(fs, n);
	fuse_reply_err(req, fs_errno(rc));
}

/* ---- directories ---- */

static void dirsnap_free(struct dirsnap *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].name);
	free(d->v);
	free(d);
}

static int dirsnap_add(struct dirsnap *d, const char *name, const uint8_t *buddy, const struct stat *st)
{
	struct dent *v;

	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;

		v = realloc(d->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		d->v = v;
		d->cap = cap;
	}
	v = &d->v[d->n];
	v->name = strdup(name);
	if (!v->name)
		return -ENOMEM;
	if (buddy)
		memcpy(v->buddy, buddy, ID_BYTES);
	v->st = *st;
	d->n++;
	return 0;
}

struct snap_ctx {
	struct fs *fs;
	struct dirsnap *d;
};

static int snap_peer(void *ctx, const struct store_peer *p)
{
	struct snap_ctx *c = ctx;
	struct stat st;

	if (!visible(c->fs, p))
		return 0;
	fs_stat_dir(&st, 0, 0755, c->fs->start_ns);
	return dirsnap_add(c->d, p->name, p->id, &st);
}

static int snap_entry(void *ctx, const struct store_entry *e)
{
	struct snap_ctx *c = ctx;
	const char *slash = strrchr(e->path, '/');
	struct stat st;

	if (e->deleted)
		return 0;
	fs_stat_entry(&st, 0, e);
	return dirsnap_add(c->d, slash ? slash + 1 : e->path, NULL, &st);
}

/* in_snap - @d lists @name already. */
static bool in_snap(const struct dirsnap *d, const char *name)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->v[i].name, name) == 0)
			return true;
	return false;
}

/* snap_pending - add @n to the listing of @dn if it is a staged file in it not listed yet. */
static int snap_pending(struct fs *fs, struct node *dn, struct dirsnap *d, struct node *n)
{
	size_t dlen = strlen(dn->path);
	const char *name;
	struct stat st;

	if (!n->stage || !n->hashed || memcmp(n->buddy, dn->buddy, ID_BYTES) != 0)
		return 0;
	if (dlen ? strncmp(n->path, dn->path, dlen) != 0 || n->path[dlen] != '/' : false)
		return 0;
	name = n->path + (dlen ? dlen + 1 : 0);
	if (strchr(name, '/') || in_snap(d, name) || fs_node_stat(fs, n, &st) != 0)
		return 0;
	return dirsnap_add(d, name, NULL, &st);
}

/*
 * snap_staged - add the files of directory @dn that are not published yet
 * (open for writing, or being published), so `ls` shows them.
 */
static int snap_staged(struct fs *fs, struct node *dn, struct dirsnap *d)
{
	int rc = 0;

	for (struct handle *h = fs->handles; h && rc == 0; h = h->next)
		if (h->writer)
			rc = snap_pending(fs, dn, d, h->node);
	for (struct job *j = fs->job_list; j && rc == 0; j = j->next)
		rc = snap_pending(fs, dn, d, j->node);
	return rc;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct node *n = fs_node_of(fs, ino);
	struct snap_ctx c = { .fs = fs };
	int rc;

	if (ino != FUSE_ROOT_ID && !n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	c.d = calloc(1, sizeof(*c.d));
	if (!c.d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (ino == FUSE_ROOT_ID)
		rc = store_peer_foreach(fs->store, snap_peer, &c);
	else
		rc = store_entry_list(fs->store, NULL, n->buddy, n->path, NULL, snap_entry, &c);
	if (rc == 0 && n)
		rc = snap_staged(fs, n, c.d);
	if (rc) {
		dirsnap_free(c.d);
		fuse_reply_err(req, fs_errno(rc));
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)c.d;
	fi->cache_readdir = 0;
	if (fuse_reply_open(req, fi) == -ENOENT)
		dirsnap_free(c.d);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi,
		       bool plus)
{
	struct fs *fs = fuse_req_userdata(req);
	struct dirsnap *d = (struct dirsnap *)(uintptr_t)fi->fh;
	struct node *dn = fs_node_of(fs, ino);
	char *buf = malloc(size);
	size_t used = 0;
	int rc = 0;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t i = (size_t)off; i < d->n; i++) {
		struct dent *de = &d->v[i];
		size_t need;

		if (plus) {
			struct fuse_entry_param ep;
			struct node *n;
			char *path = NULL;

			if (ino == FUSE_ROOT_ID) {
				n = fs_node_get(fs, de->buddy, "");
			} else {
				path = fs_path_join(dn->path, de->name, &rc);
				n = path ? fs_node_get(fs, dn->buddy, path) : NULL;
				free(path);
			}
			if (!n) {
				rc = rc ? rc : -ENOMEM;
				break;
			}
			memset(&ep, 0, sizeof(ep));
			ep.ino = n->ino;
			ep.attr = de->st;
			ep.attr.st_ino = n->ino;
			if (n->stage)
				fs_node_stat(fs, n, &ep.attr);
			ep.attr_timeout = FS_ATTR_TIMEOUT_S;
			ep.entry_timeout = FS_ATTR_TIMEOUT_S;
			need = fuse_add_direntry_plus(req, buf + used, size - used, de->name, &ep, (off_t)i + 1);
			if (need > size - used) {
				fs_node_release(fs, n);
				break;
			}
			n->nlookup++;
		} else {
			/* no lookup counted: a known inode number, else "unknown" (never 0) */
			struct node *n = NULL;
			char *path = NULL;

			if (ino == FUSE_ROOT_ID)
				n = fs_node_find(fs, de->buddy, "");
			else if ((path = fs_path_join(dn->path, de->name, &rc)) != NULL)
				n = fs_node_find(fs, dn->buddy, path);
			free(path);
			rc = 0;
			de->st.st_ino = n ? n->ino : FS_UNKNOWN_INO;
			need = fuse_add_direntry(req, buf + used, size - used, de->name, &de->st, (off_t)i + 1);
			if (need > size - used)
				break;
		}
		used += need;
	}
	if (rc && used == 0)
		fuse_reply_err(req, fs_errno(rc));
	else
		fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	dirsnap_free((struct dirsnap *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fuse_req_userdata(req);
	struct statvfs sv;

	(void)ino;
	if (statvfs(fs->home, &sv)) {
		fuse_reply_err(req, errno);
		return;
	}
	sv.f_namemax = STORE_FILE_NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.create = op_create,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.fsync = op_fsync,
	/*
	 * No flush: there is nothing to do at close() (a file is published at
	 * release, which the kernel sends without waiting), and without it
	 * libfuse answers ENOSYS once, after which the kernel stops sending
	 * FLUSH: a close() no longer waits for a trip through the loop.
	 */
	.release = op_release,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.statfs = op_statfs,
};

/* ---- the session on the loop ---- */

/* pump - answer up to @max queued requests; false once the session ended. */
static bool pump(struct fs *fs, int max)
{
	for (int i = 0; i < max; i++) {
		int n = fuse_session_receive_buf(fs->se, &fs->buf);

		if (fuse_session_exited(fs->se))
			return false;
		if (n == -EAGAIN || n == -EINTR)
			return true;
		if (n < 0) {
			log_warn("reading /dev/fuse: %s", bfs_strerror(n));
			return false;
		}
		if (n > 0)
			fuse_session_process_buf(fs->se, &fs->buf);
	}
	return true;
}

static void session_ended(struct fs *fs)
{
	if (fs->exited)
		return;
	fs->exited = true;
	fs->closing = true;
	fs_fetch_fail(fs, NULL, EIO);
	loop_fd_remove(fs->loop, fs->fdh);
	fs->fdh = NULL;
	if (fs->on_exit)
		fs->on_exit(fs->ctx);
}

static void on_fuse(struct loop *loop, struct loop_fd *h, int fd, uint32_t events, void *ctx)
{
	struct fs *fs = ctx;

	(void)loop;
	(void)h;
	(void)fd;
	(void)events;
	if (!pump(fs, REQS_PER_WAKEUP))
		session_ended(fs);
}

static void fuse_log_to_ours(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	if (n && line[n - 1] == '\n')
		line[n - 1] = '\0';
	log_msg(level <= FUSE_LOG_ERR ? LOG_LEVEL_ERROR : level <= FUSE_LOG_WARNING ? LOG_LEVEL_WARN
				       : level <= FUSE_LOG_INFO ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG, "%s", line);
}

int fs_mount(struct fs *fs, const char *mountpoint, const char *fsname)
{
	char opt[PATH_MAX + 64];
	char *argv[] = { "buddyfs", "-o", opt, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	int fd, rc;

	/* commas would split the option: fall back to a plain source name */
	snprintf(opt, sizeof(opt), "fsname=%s,subtype=buddyfs,default_permissions",
		 strchr(fsname, ',') || strchr(fsname, '\\') ? "buddyfs" : fsname);
	fuse_set_log_func(fuse_log_to_ours);
	fs->se = fuse_session_new(&args, &ops, sizeof(ops), fs);
	fuse_opt_free_args(&args);
	if (!fs->se)
		return -EINVAL;
	if (fuse_session_mount(fs->se, mountpoint)) {
		fuse_session_destroy(fs->se);
		fs->se = NULL;
		return -EIO;
	}
	fs->mounted = true;
	fs->closing = false;
	fs->mountpoint = strdup(mountpoint);
	fd = fuse_session_fd(fs->se);
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) ||
	    (rc = loop_fd_add(fs->loop, fd, LOOP_IN, on_fuse, fs, &fs->fdh)) != 0) {
		rc = -EIO;
		fs_unmount(fs);
		return rc;
	}
	rc = fs->mountpoint ? fs_notify_start(fs) : -ENOMEM;
	if (rc)
		fs_unmount(fs);
	return rc;
}

/* pump_all - answer every queued request (while unmounting). */
static void pump_all(struct fs *fs)
{
	if (fs->mounted && !fs->exited)
		(void)pump(fs, 1 << 20);
}

void fs_unmount(struct fs *fs)
{
	if (!fs->se)
		return;
	pump_all(fs); /* files closed before the unmount get published */
	/* reads waiting for blocks fail now; those coming meanwhile do not wait */
	fs->closing = true;
	fs_fetch_fail(fs, NULL, EIO);
	fs_notify_stop(fs, pump_all);
	fs_fetch_fail(fs, NULL, EIO);
	fs_jobs_reap(fs, true);
	if (fs->fdh)
		loop_fd_remove(fs->loop, fs->fdh);
	fs->fdh = NULL;
	if (fs->mounted)
		fuse_session_unmount(fs->se);
	fs->mounted = false;
	fuse_session_destroy(fs->se);
	fs->se = NULL;
	free(fs->buf.mem);
	fs->buf.mem = NULL;
}

const char *fs_mountpoint(const struct fs *fs)
{
	return fs->mountpoint;
}

/* ---- lifetime ---- */

static void on_job_done(struct loop *loop, struct loop_fd *h, int fd, uint32_t events, void *ctx)
{
	(void)loop;
	(void)h;
	(void)fd;
	(void)events;
	fs_jobs_reap(ctx, false);
}

static int clean_staging(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			log_info("removed the interrupted write %s/%s", dir, de->d_name);
	}
	closedir(d);
	return 0;
}

static int make_dir(const char *home, const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", home, name);
	if (mkdir(path, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

int fs_new(struct fs **out, const struct fs_params *p)
{
	struct fs *fs;
	char path[PATH_MAX];
	int rc;

	*out = NULL;
	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->home = strdup(p->home);
	if (!fs->home) {
		free(fs);
		return -ENOMEM;
	}
	fs->loop = p->loop;
	fs->store = p->store;
	fs->id = p->id;
	fs->test_online = p->test_online;
	fs->on_exit = p->on_exit;
	fs->ctx = p->ctx;
	fs->fetch = p->fetch;
	fs->published = p->published;
	fs->net_ctx = p->net_ctx;
	fs->timeout_ns = (uint64_t)(p->timeout_s ? p->timeout_s : FS_TIMEOUT_S_DEFAULT) * LOOP_NS_PER_S;
	fs->next_ino = FUSE_ROOT_ID + 1;
	fs->done_pipe[0] = fs->done_pipe[1] = -1;
	fs->start_ns = fs_now_ns();
	rc = make_dir(p->home, FS_OBJECTS_DIR);
	if (rc == 0)
		rc = make_dir(p->home, FS_STAGING_DIR);
	if (rc == 0) {
		snprintf(path, sizeof(path), "%s/%s", p->home, FS_STAGING_DIR);
		rc = clean_staging(path);
	}
	if (rc == 0 && pipe2(fs->done_pipe, O_CLOEXEC | O_NONBLOCK))
		rc = -errno;
	if (rc == 0)
		rc = loop_fd_add(fs->loop, fs->done_pipe[0], LOOP_IN, on_job_done, fs, &fs->done_h);
	if (rc) {
		fs_free(fs);
		return rc;
	}
	*out = fs;
	return 0;
}

void fs_free(struct fs *fs)
{
	if (!fs)
		return;
	fs_unmount(fs);
	fs_fetch_fail(fs, NULL, EIO);
	loop_defer_cancel(fs->loop, raise_readahead, fs);
	fs_jobs_reap(fs, true);
	if (fs->done_h)
		loop_fd_remove(fs->loop, fs->done_h);
	if (fs->done_pipe[0] >= 0) {
		close(fs->done_pipe[0]);
		close(fs->done_pipe[1]);
	}
	while (fs->handles) {
		/* files still open at the unmount: their writes publish nothing */
		if (fs->handles->fd >= 0)
			close(fs->handles->fd);
		handle_free(fs, fs->handles);
	}
	for (size_t i = 0; i < fs->by_ino.nb; i++) {
		struct node *n = fs->by_ino.b[i], *next;

		for (; n; n = next) {
			next = n->next_ino;
			if (n->stage)
				fs_stage_free(fs, n->stage);
			free(n->path);
			free(n);
		}
	}
	free(fs->by_ino.b);
	free(fs->by_path.b);
	free(fs->online);
	free(fs->mountpoint);
	free(fs->home);
	free(fs);
}
