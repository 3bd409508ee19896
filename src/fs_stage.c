/*
 * fs_stage.c - staging files and publishing: a written file becomes a
 * signed manifest, an object file and one store transaction (fs.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
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

/* ---- staging and publishing ---- */

static int stage_new(struct fs *fs, struct node *n, int copy_from, uint32_t mode)
{
	struct stage *st = calloc(1, sizeof(*st));
	char path[PATH_MAX];
	int rc;

	if (!st)
		return -ENOMEM;
	snprintf(st->name, sizeof(st->name), "%ld.%u.tmp", (long)getpid(), fs->stage_seq++);
	snprintf(path, sizeof(path), "%s/%s/%s", fs->home, FS_STAGING_DIR, st->name);
	st->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (st->fd < 0) {
		rc = -errno;
		free(st);
		return rc;
	}
	st->mode = mode & 07777;
	if (copy_from >= 0) {
		loff_t in = 0, out = 0;
		ssize_t k;

		do
			k = copy_file_range(copy_from, &in, st->fd, &out, 1 << 30, 0);
		while (k > 0);
		if (k < 0) {
			rc = -errno;
			close(st->fd);
			unlink(path);
			free(st);
			return rc;
		}
	}
	n->stage = st;
	return 0;
}

void fs_stage_free(struct fs *fs, struct stage *st)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s/%s", fs->home, FS_STAGING_DIR, st->name);
	unlink(path);
	close(st->fd);
	free(st);
}

static void object_path(struct fs *fs, char out[PATH_MAX], const uint8_t hash[STORE_HASH_BYTES])
{
	char hex[HEX_BYTES];

	buf_hex(hex, hash, STORE_HASH_BYTES);
	snprintf(out, PATH_MAX, "%s/%s/%s", fs->home, FS_OBJECTS_DIR, hex);
}

/*
 * Publishing runs in two halves.  The slow half (hash every block, sign,
 * fsync, link the object into place) runs on a thread of its own, so the
 * loop keeps answering the kernel (and, later, the network) meanwhile; it
 * touches only the job, the staging file and the identity's keys.  The
 * loop half (one store transaction) runs in the loop when the thread
 * reports through fs->done_pipe.  One job per node at a time: a newer
 * version staged meanwhile waits (stage->ready) and starts when the job is
 * done, so versions commit in order.
 */
/* work - the slow half; runs on the job's thread. */
static void work(struct job *j)
{
	struct fs *fs = j->fs;
	char obj[PATH_MAX], tmp[PATH_MAX];
	int rc;

	rc = fstat(j->st->fd, &j->s) ? -errno : 0;
	if (rc == 0)
		rc = manifest_build(&j->m, j->st->fd, fs->id->peer_id, NULL);
	if (rc == 0)
		rc = manifest_sign(j->m, fs->id->secret_key);
	if (rc == 0)
		rc = manifest_hash(j->m, j->hash);
	if (rc == 0 && fsync(j->st->fd))
		rc = -errno;
	if (rc == 0) {
		object_path(fs, obj, j->hash);
		snprintf(tmp, sizeof(tmp), "%s/%s/%s", fs->home, FS_STAGING_DIR, j->st->name);
		if (link(tmp, obj) == 0)
			j->made_object = true;
		else if (errno != EEXIST)
			rc = -errno;
	}
	j->rc = rc;
}

static void *work_thread(void *arg)
{
	struct job *j = arg;

	work(j);
	if (write(j->fs->done_pipe[1], &j, sizeof(j)) != (ssize_t)sizeof(j))
		abort(); /* a pipe write of a pointer cannot be short */
	return NULL;
}

/* commit - the loop half: one transaction for the manifest, blocks and entry. */
static int commit(struct fs *fs, struct job *j)
{
	struct node *n = j->node;
	struct stage *st = j->st;
	struct store_entry *e = NULL;
	struct store_txn *t = NULL;
	char hex[HEX_BYTES];
	const uint8_t *bytes;
	uint64_t version = 0;
	size_t len;
	int rc = j->rc;

	if (rc == 0 && (st->discard || !n->hashed))
		rc = -ECANCELED; /* removed or replaced while it was hashed */
	if (rc == 0)
		rc = manifest_bytes(j->m, &bytes, &len);
	if (rc == 0)
		rc = (e = calloc(1, sizeof(*e))) ? 0 : -ENOMEM;
	if (rc)
		goto out;
	if (store_entry_get(fs->store, NULL, n->buddy, n->path, e) == 0)
		version = e->version;
	memset(e, 0, sizeof(*e));
	memcpy(e->buddy, n->buddy, ID_BYTES);
	snprintf(e->path, sizeof(e->path), "%s", n->path);
	e->type = STORE_ENTRY_FILE;
	e->mode = st->mode & 07777;
	e->size = (uint64_t)j->s.st_size;
	e->mtime_ns = st->mtime_ns ? st->mtime_ns
				   : (int64_t)j->s.st_mtim.tv_sec * 1000000000 + j->s.st_mtim.tv_nsec;
	memcpy(e->owner, fs->id->peer_id, ID_BYTES);
	e->version = version + 1;
	e->has_base = st->has_base;
	e->base = st->base;
	memcpy(e->manifest, j->hash, STORE_HASH_BYTES);
	buf_hex(hex, j->hash, STORE_HASH_BYTES);
	rc = store_txn_begin(fs->store, &t);
	if (rc)
		goto out;
	rc = store_manifest_put(fs->store, t, j->hash, bytes, len);
	for (uint32_t i = 0; rc == 0 && i < manifest_block_count(j->m); i++) {
		struct manifest_block b;

		rc = manifest_block(j->m, i, &b);
		if (rc == 0)
			rc = store_block_local_put(fs->store, t, b.hash, hex, b.offset, b.len);
	}
	if (rc == 0)
		rc = store_entry_put(fs->store, t, e);
	if (rc) {
		store_txn_abort(t);
		goto out;
	}
	rc = store_txn_commit(t);
	if (rc == 0) {
		log_debug("published %s (%llu bytes, version %llu)", n->path, (unsigned long long)e->size,
			  (unsigned long long)e->version);
		fs_published(fs, n->buddy, n->path);
	}
out:
	if (rc && j->made_object) {
		char obj[PATH_MAX];

		object_path(fs, obj, j->hash);
		unlink(obj);
	}
	if (rc && rc != -ECANCELED)
		log_warn("cannot publish %s: %s", n->path, bfs_strerror(rc));
	free(e);
	return rc;
}

static void job_start(struct fs *fs, struct node *n);

/* job_done - the loop half of @j, then the node's next staged version if one waits. */
static void job_done(struct fs *fs, struct job *j)
{
	struct node *n = j->node;

	if (j->threaded)
		pthread_join(j->thread, NULL);
	fs->jobs--;
	commit(fs, j);
	if (n->stage == j->st)
		n->stage = NULL;
	fs_stage_free(fs, j->st);
	manifest_free(j->m);
	n->job = NULL;
	if (j->prev)
		j->prev->next = j->next;
	else
		fs->job_list = j->next;
	if (j->next)
		j->next->prev = j->prev;
	free(j);
	if (n->stage && n->stage->refs == 0 && n->stage->ready) {
		if (n->stage->discard || !n->hashed) {
			fs_stage_free(fs, n->stage);
			n->stage = NULL;
		} else {
			job_start(fs, n);
		}
	}
	fs_node_release(fs, n);
}

/* job_start - publish n->stage (no writer left on it). */
static void job_start(struct fs *fs, struct node *n)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j) {
		log_warn("cannot publish %s: %s", n->path, strerror(ENOMEM));
		fs_stage_free(fs, n->stage);
		n->stage = NULL;
		return;
	}
	j->fs = fs;
	j->node = n;
	j->st = n->stage;
	n->job = j;
	fs->jobs++;
	j->next = fs->job_list;
	if (j->next)
		j->next->prev = j;
	fs->job_list = j;
	if (pthread_create(&j->thread, NULL, work_thread, j) == 0) {
		j->threaded = true;
		return;
	}
	work(j); /* no thread to be had: do it here */
	job_done(fs, j);
}

void fs_jobs_reap(struct fs *fs, bool wait)
{
	while (fs->jobs > 0) {
		struct pollfd p = { .fd = fs->done_pipe[0], .events = POLLIN };
		struct job *j;
		ssize_t k;

		k = read(fs->done_pipe[0], &j, sizeof(j));
		if (k == (ssize_t)sizeof(j)) {
			job_done(fs, j);
			continue;
		}
		if (!wait)
			return;
		(void)poll(&p, 1, -1);
	}
}

/* stage_put - a writer let go of @n's staging file: publish after the last. */
int fs_stage_put(struct fs *fs, struct node *n)
{
	struct stage *st = n->stage;

	if (--st->refs)
		return 0;
	if (st->discard || !n->hashed) {
		n->stage = NULL;
		fs_stage_free(fs, st);
		return 0;
	}
	st->ready = true;
	if (!n->job)
		job_start(fs, n);
	return 0;
}

int fs_object_open(struct fs *fs, struct node *n, struct store_entry *e)
{
	char obj[PATH_MAX];
	int fd, rc = fs_live_entry(fs, n->buddy, n->path, e);

	if (rc)
		return rc;
	if (e->type != STORE_ENTRY_FILE)
		return -EISDIR;
	object_path(fs, obj, e->manifest);
	fd = open(obj, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ENODATA : -errno; /* a buddy's file: fs_remote.c */
	return fd;
}

/* copy_remote - the whole file of entry @e, block by block, into @fd. */
static int copy_remote(struct fs *fs, const struct store_entry *e, int fd)
{
	const size_t chunk = 1u << 20;
	struct manifest *m = NULL;
	uint8_t *buf = malloc(chunk);
	uint64_t off = 0;
	int rc = buf ? fs_remote_manifest(fs, e, &m) : -ENOMEM;

	while (rc == 0 && off < manifest_file_size(m)) {
		long k = fs_remote_pread(fs, m, buf, chunk, off);

		if (k <= 0) {
			rc = k < 0 ? (int)k : -EIO;
			break;
		}
		if (pwrite(fd, buf, (size_t)k, (off_t)off) != k) {
			rc = -EIO;
			break;
		}
		off += (uint64_t)k;
	}
	manifest_free(m);
	free(buf);
	return rc;
}

int fs_stage_open(struct fs *fs, struct node *n, bool empty)
{
	struct store_entry *e;
	uint64_t base;
	int fd = -1, rc;

	if (n->stage && !n->stage->ready) {
		n->stage->refs++;
		if (empty && ftruncate(n->stage->fd, 0))
			return -errno;
		return 0;
	}
	if (n->stage) {
		/* its data is being (or waits to be) published: write a newer copy */
		struct stage *old = n->stage;

		rc = stage_new(fs, n, empty ? -1 : old->fd, old->mode);
		if (rc) {
			n->stage = old;
			return rc;
		}
		n->stage->mtime_ns = empty ? 0 : old->mtime_ns;
		n->stage->refs = 1;
		if (old != (n->job ? n->job->st : NULL))
			fs_stage_free(fs, old); /* a waiting version nobody will see now */
		return 0;
	}
	e = malloc(sizeof(*e));
	if (!e)
		return -ENOMEM;
	/* the base of this write: the entry version at the path now, tombstones included */
	base = store_entry_get(fs->store, NULL, n->buddy, n->path, e) == 0 ? e->version : 0;
	rc = fs_live_entry(fs, n->buddy, n->path, e);
	if (rc == 0 && !empty) {
		fd = fs_object_open(fs, n, e);
		rc = fd < 0 ? fd : 0;
	}
	if (rc == -ENODATA) {
		/* a buddy's file: copy its blocks into the staging file */
		rc = stage_new(fs, n, -1, e->mode);
		if (rc == 0)
			rc = copy_remote(fs, e, n->stage->fd);
		if (rc && n->stage) {
			fs_stage_free(fs, n->stage);
			n->stage = NULL;
		}
		if (rc == 0)
			n->stage->refs = 1;
	} else if (rc == 0 || rc == -ENOENT) {
		uint32_t mode = rc == 0 ? e->mode : 0644;

		rc = stage_new(fs, n, fd, mode);
		if (rc == 0)
			n->stage->refs = 1;
	}
	if (rc == 0) {
		n->stage->has_base = true;
		n->stage->base = base;
	}
	if (fd >= 0)
		close(fd);
	free(e);
	return rc;
}
