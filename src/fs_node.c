/*
 * fs_node.c - the file system's names, paths, inode table and attributes
 * (fs.c has the inode rules).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buddyfs/buf.h"
#include "buddyfs/err.h"
#include "buddyfs/identity.h"
#include "buddyfs/log.h"
#include "buddyfs/manifest.h"
#include "buddyfs/store.h"
#include "fs_internal.h"

/* ---- names and paths ---- */

int fs_name_check(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strchr(name, '/'))
		return -EINVAL;
	if (n > STORE_FILE_NAME_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/* join - @dir/@name into a new string; NULL on ENOMEM, *err set. */
char *fs_path_join(const char *dir, const char *name, int *err)
{
	size_t a = strlen(dir), b = strlen(name);
	char *p;

	if (a + 1 + b > STORE_PATH_MAX) {
		*err = -ENAMETOOLONG;
		return NULL;
	}
	p = malloc(a + b + 2);
	if (!p) {
		*err = -ENOMEM;
		return NULL;
	}
	if (a) {
		memcpy(p, dir, a);
		p[a++] = '/';
	}
	memcpy(p + a, name, b + 1);
	return p;
}

int fs_errno(int rc)
{
	if (rc == 0)
		return 0;
	if (rc == BFS_EBADNAME)
		return EINVAL;
	if (rc < 0 && rc > -4096)
		return -rc;
	return EIO;
}

/* ---- node tables ---- */

static uint64_t hash_path(const uint8_t buddy[ID_BYTES], const char *path)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < ID_BYTES; i++)
		h = (h ^ buddy[i]) * 1099511628211ull;
	for (; *path; path++)
		h = (h ^ (uint8_t)*path) * 1099511628211ull;
	return h;
}

static struct node **chain(struct table *t, bool by_ino, const struct node *n)
{
	uint64_t h = by_ino ? n->ino * 0x9e3779b97f4a7c15ull : hash_path(n->buddy, n->path);

	return &t->b[h & (t->nb - 1)];
}

static struct node **next_of(struct node *n, bool by_ino)
{
	return by_ino ? &n->next_ino : &n->next_path;
}

static int table_grow(struct table *t, bool by_ino)
{
	struct table nt = { .nb = t->nb ? t->nb * 2 : 256, .count = t->count };

	nt.b = calloc(nt.nb, sizeof(*nt.b));
	if (!nt.b)
		return -ENOMEM;
	for (size_t i = 0; i < t->nb; i++) {
		struct node *n = t->b[i], *next;

		for (; n; n = next) {
			struct node **c = chain(&nt, by_ino, n);

			next = *next_of(n, by_ino);
			*next_of(n, by_ino) = *c;
			*c = n;
		}
	}
	free(t->b);
	*t = nt;
	return 0;
}

static int table_add(struct table *t, bool by_ino, struct node *n)
{
	struct node **c;

	if (t->count >= t->nb && table_grow(t, by_ino) && !t->nb)
		return -ENOMEM;
	c = chain(t, by_ino, n);
	*next_of(n, by_ino) = *c;
	*c = n;
	t->count++;
	return 0;
}

static void table_del(struct table *t, bool by_ino, struct node *n)
{
	struct node **c = chain(t, by_ino, n);

	for (; *c; c = next_of(*c, by_ino))
		if (*c == n) {
			*c = *next_of(n, by_ino);
			t->count--;
			return;
		}
}

struct node *fs_node_find(struct fs *fs, const uint8_t buddy[ID_BYTES], const char *path)
{
	struct node key = { .path = (char *)path };

	if (!fs->by_path.nb)
		return NULL;
	memcpy(key.buddy, buddy, ID_BYTES);
	for (struct node *n = *chain(&fs->by_path, false, &key); n; n = n->next_path)
		if (memcmp(n->buddy, buddy, ID_BYTES) == 0 && strcmp(n->path, path) == 0)
			return n;
	return NULL;
}

static struct node *find_ino(struct fs *fs, fuse_ino_t ino)
{
	struct node key = { .ino = ino };

	if (!fs->by_ino.nb)
		return NULL;
	for (struct node *n = *chain(&fs->by_ino, true, &key); n; n = n->next_ino)
		if (n->ino == ino)
			return n;
	return NULL;
}

void fs_node_unhash(struct fs *fs, struct node *n)
{
	if (n->hashed)
		table_del(&fs->by_path, false, n);
	n->hashed = false;
}

/* node_get - the node of (@buddy, @path), made if needed; NULL on ENOMEM. */
struct node *fs_node_get(struct fs *fs, const uint8_t buddy[ID_BYTES], const char *path)
{
	struct node *n = fs_node_find(fs, buddy, path);

	if (n)
		return n;
	n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->path = strdup(path);
	if (!n->path)
		goto fail;
	memcpy(n->buddy, buddy, ID_BYTES);
	n->ino = fs->next_ino++;
	if (table_add(&fs->by_ino, true, n))
		goto fail;
	if (table_add(&fs->by_path, false, n)) {
		table_del(&fs->by_ino, true, n);
		goto fail;
	}
	n->hashed = true;
	return n;
fail:
	free(n->path);
	free(n);
	return NULL;
}

/* node_maybe_free - release @n when nothing refers to it any more. */
void fs_node_release(struct fs *fs, struct node *n)
{
	if (n->nlookup || n->opens || n->stage || n->job)
		return;
	fs_node_unhash(fs, n);
	table_del(&fs->by_ino, true, n);
	free(n->path);
	free(n);
}

struct node *fs_node_of(struct fs *fs, fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? NULL : find_ino(fs, ino);
}


/* ---- attributes ---- */

/* the daemon's user owns everything shown; asked once, not per entry listed */
static uid_t owner_uid;
static gid_t owner_gid;
static bool owner_known;

static void owner_ids(struct stat *st)
{
	if (!owner_known) {
		owner_uid = getuid();
		owner_gid = getgid();
		owner_known = true;
	}
	st->st_uid = owner_uid;
	st->st_gid = owner_gid;
}

void fs_stat_dir(struct stat *st, fuse_ino_t ino, uint32_t mode, int64_t mtime_ns)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFDIR | (mode & 07777);
	st->st_nlink = 2;
	owner_ids(st);
	st->st_size = 4096;
	st->st_mtim.tv_sec = mtime_ns / 1000000000;
	st->st_mtim.tv_nsec = mtime_ns % 1000000000;
	st->st_ctim = st->st_mtim;
	st->st_atim = st->st_mtim;
}

void fs_stat_entry(struct stat *st, fuse_ino_t ino, const struct store_entry *e)
{
	fs_stat_dir(st, ino, e->mode, e->mtime_ns);
	if (e->type == STORE_ENTRY_FILE) {
		st->st_mode = S_IFREG | (e->mode & 07777);
		st->st_nlink = 1;
		st->st_blksize = FS_IO_BYTES;
		st->st_size = (off_t)e->size;
		st->st_blocks = (blkcnt_t)((e->size + 511) / 512);
	}
}

int64_t fs_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* live_entry - the entry of @n's path, -ENOENT when absent or a tombstone. */
int fs_live_entry(struct fs *fs, const uint8_t buddy[ID_BYTES], const char *path, struct store_entry *e)
{
	int rc = store_entry_get(fs->store, NULL, buddy, path, e);

	if (rc == 0 && e->deleted)
		rc = -ENOENT;
	return rc;
}

/* node_stat - the attributes of @n (staged data wins over the store). */
int fs_node_stat(struct fs *fs, struct node *n, struct stat *st)
{
	struct store_entry *e;
	int rc;

	if (!n->path[0]) {
		fs_stat_dir(st, n->ino, 0755, fs->start_ns);
		return 0;
	}
	if (n->stage) {
		struct stat s;

		if (fstat(n->stage->fd, &s))
			return -errno;
		memset(st, 0, sizeof(*st));
		st->st_ino = n->ino;
		st->st_mode = S_IFREG | (n->stage->mode & 07777);
		st->st_nlink = 1;
		st->st_blksize = FS_IO_BYTES;
		owner_ids(st);
		st->st_size = s.st_size;
		st->st_blocks = s.st_blocks;
		st->st_mtim = s.st_mtim;
		if (n->stage->mtime_ns) {
			st->st_mtim.tv_sec = n->stage->mtime_ns / 1000000000;
			st->st_mtim.tv_nsec = n->stage->mtime_ns % 1000000000;
		}
		st->st_ctim = st->st_mtim;
		st->st_atim = st->st_mtim;
		return 0;
	}
	e = malloc(sizeof(*e));
	if (!e)
		return -ENOMEM;
	rc = fs_live_entry(fs, n->buddy, n->path, e);
	if (rc == 0)
		fs_stat_entry(st, n->ino, e);
	free(e);
	return rc;
}

void fs_published(struct fs *fs, const uint8_t buddy[ID_BYTES], const char *path)
{
	if (fs->published)
		fs->published(fs->net_ctx, buddy, path);
}

void fs_reply_entry(fuse_req_t req, struct node *n, const struct stat *st)
{
	struct fuse_entry_param ep;

	memset(&ep, 0, sizeof(ep));
	ep.ino = n->ino;
	ep.attr = *st;
	ep.attr_timeout = FS_ATTR_TIMEOUT_S;
	ep.entry_timeout = FS_ATTR_TIMEOUT_S;
	n->nlookup++;
	fuse_reply_entry(req, &ep);
}

int fs_node_rename(struct fs *fs, const uint8_t buddy[ID_BYTES], const char *from, const char *to)
{
	size_t flen = strlen(from), tlen = strlen(to);
	struct node *victim = fs_node_find(fs, buddy, to);
	struct node **moved = NULL;
	size_t n_moved = 0;

	if (victim) {
		if (victim->stage)
			victim->stage->discard = true;
		fs_node_unhash(fs, victim);
	}
	moved = malloc((fs->by_ino.count + 1) * sizeof(*moved));
	if (!moved)
		return -ENOMEM;
	for (size_t i = 0; i < fs->by_ino.nb; i++)
		for (struct node *n = fs->by_ino.b[i]; n; n = n->next_ino)
			if (n->hashed && memcmp(n->buddy, buddy, ID_BYTES) == 0 &&
			    strncmp(n->path, from, flen) == 0 && (n->path[flen] == '\0' || n->path[flen] == '/'))
				moved[n_moved++] = n;
	for (size_t i = 0; i < n_moved; i++) {
		struct node *n = moved[i];
		size_t rest = strlen(n->path) - flen;
		char *p = malloc(tlen + rest + 1);

		fs_node_unhash(fs, n);
		if (p) {
			memcpy(p, to, tlen);
			memcpy(p + tlen, n->path + flen, rest + 1);
			free(n->path);
			n->path = p;
			if (!fs_node_find(fs, buddy, p) && table_add(&fs->by_path, false, n) == 0)
				n->hashed = true;
		}
	}
	free(moved);
	return 0;
}
