/*
 * fs_fetch.c - reads of a buddy's file (a handle with a manifest): from the
 * store's blocks when they are here, else by asking the network side for
 * the missing ones (fs_params.fetch) and keeping the fuse_req until they
 * have all arrived (fs_block_arrived), one of them failed, the timeout
 * passed or the kernel interrupted the request.  The loop never waits.
 *
 * A waiting read ("wait") keeps the reply it is building and the block
 * indices it still lacks.  A block that checked out is copied into every
 * wait that lacks it as soon as it comes (fs_block_data, before it is in
 * the store), and a wait that lacks nothing more is answered then; a block
 * that only reached the store (fs_block_arrived) is read from there (one
 * evicted meanwhile is simply asked for again, within the same deadline).
 * Several reads may wait for one block; the network side answers each hash
 * once, so every wait that lacks it is told.
 *
 * Read-ahead: a read that starts where the previous read of the handle
 * ended (or at 0) asks for the blocks up to a window past its end that are
 * not here and were not asked for yet, and does not wait for them.  The
 * window is FS_FETCH_AHEAD_MIN_BYTES for the first such read and doubles
 * with each next one up to FS_FETCH_AHEAD_BYTES, as the kernel's own
 * read-ahead grows: the first read of a file (time to first byte) does
 * not queue megabytes in front of the requests that follow it (its
 * release, the next read), and a long sequential read soon has the whole
 * window in flight.  A read elsewhere restarts the count and the window.
 *
 * Writing a buddy's file without truncating it first copies its current
 * version into a staging file (fs_stage.c), which needs every block: the
 * open (or truncate) waits the same way for the missing ones
 * (fs_fetch_whole), then runs again.
 *
 * A handle keeps the last block a read used only partly (the kernel may
 * split a block over several requests), so the next request does not copy
 * it out of LMDB again; blocks a request covers whole go straight into the
 * reply.
 *
 * Leaves to others: moving and checking blocks (xfer, behind fetch), the
 * store's cache and its LRU (store), opening handles (fs.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buddyfs/err.h"
#include "buddyfs/log.h"
#include "buddyfs/loop.h"
#include "buddyfs/manifest.h"
#include "buddyfs/store.h"
#include "fs_internal.h"

struct wait {
	struct wait *prev, *next; /* fs->waits */
	struct fs *fs;
	fuse_req_t req;
	struct node *node;        /* whose blocks (the kernel holds it while @req runs) */
	const struct manifest *m; /* the version whose blocks are awaited */
	/* a read: of @h, @size bytes at @off */
	struct handle *h;
	uint64_t off;
	size_t size;
	uint8_t *out;      /* the reply being built: w->size bytes */
	/* a whole file (h NULL): @own_m; @retry(@fs, @req, @ctx) once all is here */
	struct manifest *own_m;
	fs_fetch_retry_fn *retry;
	void *ctx;
	struct loop_timer *timer;
	uint32_t *missing; /* block indices not here yet */
	size_t n_missing, cap_missing;
	int err;           /* a block will not come (fs_block_arrived) */
	bool ready;        /* every block arrived, or @err: answer it */
	bool interrupted;  /* the kernel interrupted @req */
};

static void wait_free(struct fs *fs, struct wait *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		fs->waits = w->next;
	if (w->next)
		w->next->prev = w->prev;
	loop_timer_cancel(fs->loop, w->timer);
	if (w->h)
		w->h->waits--;
	manifest_free(w->own_m);
	free(w->out);
	free(w->ctx);
	free(w->missing);
	free(w);
}

/* wait_end - answer @w with the error @err (positive errno) and free it. */
static void wait_end(struct fs *fs, struct wait *w, int err)
{
	fuse_reply_err(w->req, err);
	wait_free(fs, w);
}

static int add_missing(struct wait *w, uint32_t i)
{
	for (size_t k = 0; k < w->n_missing; k++)
		if (w->missing[k] == i)
			return 0;
	if (w->n_missing == w->cap_missing) {
		size_t cap = w->cap_missing ? w->cap_missing * 2 : 8;
		uint32_t *v = realloc(w->missing, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		w->missing = v;
		w->cap_missing = cap;
	}
	w->missing[w->n_missing++] = i;
	return 0;
}

/*
 * part - the bytes of block @i that the read wants, through the handle's
 * block buffer.  0, -ENOENT (not here), -EIO, -ENOMEM.
 */
static int part(struct fs *fs, struct handle *h, uint32_t i, uint8_t *dst, size_t in, size_t n)
{
	uint32_t bsize = manifest_block_bytes(h->m);
	int rc;

	if (!h->blk_valid || h->blk_index != i) {
		if (!h->blk && !(h->blk = malloc(bsize)))
			return -ENOMEM;
		h->blk_valid = false;
		rc = fs_remote_block(fs, h->m, i, h->blk, bsize);
		if (rc)
			return rc;
		h->blk_valid = true;
		h->blk_index = i;
	}
	memcpy(dst, h->blk + in, n);
	return 0;
}

/* overlap - the part [*from, *to) of block @mb that @w's read wants. */
static void overlap(const struct wait *w, const struct manifest_block *mb, uint64_t *from, uint64_t *to)
{
	uint64_t end = w->off + w->size;

	*from = mb->offset > w->off ? mb->offset : w->off;
	*to = mb->offset + mb->len < end ? mb->offset + mb->len : end;
}

/*
 * block_into - the bytes of block @i that @w's read wants, from the store
 * into w->out.  0, -ENOENT (not here), -EIO, -ENOMEM.
 */
static int block_into(struct fs *fs, struct wait *w, uint32_t i)
{
	struct handle *h = w->h;
	struct manifest_block mb;
	uint64_t from, to;

	if (manifest_block(h->m, i, &mb))
		return -EIO;
	overlap(w, &mb, &from, &to);
	if (from == mb.offset && to == mb.offset + mb.len)
		return fs_remote_block(fs, h->m, i, w->out + (from - w->off), mb.len);
	return part(fs, h, i, w->out + (from - w->off), (size_t)(from - mb.offset), (size_t)(to - from));
}

/*
 * fill - the bytes of @w's read into w->out, block by block; the blocks
 * that are not here go to w->missing.  The first time every block of the
 * read is looked at, later only the ones still missing.  0 when all are
 * here, 1 when some are missing, -EIO or -ENOMEM.
 */
static int fill(struct fs *fs, struct wait *w)
{
	int rc;

	if (!w->out) {
		uint64_t bsize = manifest_block_bytes(w->h->m);
		uint32_t first = (uint32_t)(w->off / bsize), last = (uint32_t)((w->off + w->size - 1) / bsize);

		w->out = malloc(w->size);
		if (!w->out)
			return -ENOMEM;
		w->n_missing = 0;
		for (uint32_t i = first; i <= last; i++) {
			rc = block_into(fs, w, i);
			if (rc == -ENOENT)
				rc = add_missing(w, i);
			if (rc)
				return rc;
		}
		return w->n_missing ? 1 : 0;
	}
	for (size_t k = 0; k < w->n_missing;) {
		rc = block_into(fs, w, w->missing[k]);
		if (rc == -ENOENT) {
			k++;
			continue;
		}
		if (rc)
			return rc;
		w->missing[k] = w->missing[--w->n_missing];
	}
	return w->n_missing ? 1 : 0;
}

/*
 * ask - ask the network side for block @i of version @version (@m) of @n's
 * file; @urgent: a read waits for it (else read-ahead).
 */
static int ask(struct fs *fs, const struct node *n, const struct manifest *m,
	       const uint8_t version[STORE_HASH_BYTES], uint32_t i, bool urgent)
{
	struct manifest_block mb;
	struct xfer_want want;
	int rc = manifest_block(m, i, &mb);

	if (rc)
		return -EIO;
	memset(&want, 0, sizeof(want));
	memcpy(want.owner, n->buddy, ID_BYTES);
	want.path = n->path;
	memcpy(want.manifest, version, STORE_HASH_BYTES);
	want.index = i;
	memcpy(want.hash, mb.hash, STORE_HASH_BYTES);
	want.len = mb.len;
	want.urgent = urgent;
	return fs->fetch(fs->net_ctx, &want);
}

/* present - the store has block @i of @m (without touching the LRU). */
static bool present(struct fs *fs, const struct manifest *m, uint32_t i)
{
	struct manifest_block mb;
	struct store_block b;

	return manifest_block(m, i, &mb) == 0 && store_block_get(fs->store, NULL, mb.hash, &b, NULL, 0) == 0;
}

/* ahead - on a sequential read of @h ending at block @last, ask for the next blocks. */
static void ahead(struct fs *fs, struct handle *h, uint64_t off, size_t size)
{
	uint64_t bsize = manifest_block_bytes(h->m);
	uint32_t count = manifest_block_count(h->m), last, from, to, n;
	bool seq = off == 0 || (off + bsize >= h->next_off && off <= h->next_off + bsize);

	h->next_off = off + size;
	if (!seq) {
		h->ahead = 0;
		h->ahead_n = 0;
		return;
	}
	if (!fs->fetch || fs->closing)
		return;
	last = (uint32_t)((off + size - 1) / bsize);
	/* the window starts small and doubles with each sequential read */
	n = h->ahead_n ? h->ahead_n : (uint32_t)(FS_FETCH_AHEAD_MIN_BYTES / bsize);
	if (n < 2)
		n = 2;
	h->ahead_n = n * 2 <= FS_FETCH_AHEAD_BYTES / bsize ? n * 2 : (uint32_t)(FS_FETCH_AHEAD_BYTES / bsize);
	from = last + 1 > h->ahead ? last + 1 : h->ahead;
	to = count - last - 1 > n ? last + n : count - 1;
	if (last + 1 >= count || from > to)
		return;
	for (uint32_t i = from; i <= to; i++)
		if (!present(fs, h->m, i) && ask(fs, h->node, h->m, h->version, i, false) != 0)
			break; /* the read itself will say why, if it needs the block */
	h->ahead = to + 1;
}

static void on_timeout(struct loop *loop, struct loop_timer *t, void *ctx)
{
	struct wait *w = ctx;

	(void)loop;
	(void)t;
	log_info("%s of %s waited %llu s for %zu block(s): EIO", w->h ? "a read" : "a copy", w->node->path,
		 (unsigned long long)(w->fs->timeout_ns / LOOP_NS_PER_S), w->n_missing);
	wait_end(w->fs, w, EIO);
}

static void sweep(struct loop *loop, void *ctx)
{
	struct fs *fs = ctx;
	struct wait *w, *next;

	(void)loop;
	fs->sweep_queued = false;
	for (w = fs->waits; w; w = next) {
		next = w->next;
		if (w->interrupted)
			wait_end(fs, w, EINTR);
	}
}

/*
 * on_interrupt - libfuse calls it on the loop's thread, maybe from inside
 * fuse_req_interrupt_func() with the request's lock held: no reply here,
 * a deferred sweep answers it.
 */
static void on_interrupt(fuse_req_t req, void *data)
{
	struct wait *w = data;
	struct fs *fs = w->fs;

	(void)req;
	w->interrupted = true;
	if (!fs->sweep_queued && loop_defer(fs->loop, sweep, fs) == 0)
		fs->sweep_queued = true;
}

/* ask_missing - ask for every block @w lacks: 1, or -EIO when one cannot be asked for. */
static int ask_missing(struct fs *fs, struct wait *w, const uint8_t version[STORE_HASH_BYTES])
{
	if (!fs->fetch || fs->closing) {
		log_debug("block %u of %s is not here and there is no network", w->missing[0], w->node->path);
		return -EIO;
	}
	for (size_t k = 0; k < w->n_missing; k++) {
		int err = ask(fs, w->node, w->m, version, w->missing[k], true);

		if (err) {
			log_info("cannot ask for block %u of %s: %s", w->missing[k], w->node->path,
				 bfs_strerror(err));
			return -EIO;
		}
	}
	return 1;
}

/*
 * attempt - answer @w if every block is in its reply now (true: @w is
 * done, the caller frees it), else ask for what is missing (false).  A
 * failure answers with EIO (true).
 */
static bool attempt(struct fs *fs, struct wait *w)
{
	int rc = fill(fs, w);

	if (rc == 0) {
		fuse_reply_buf(w->req, (const char *)w->out, w->size);
		return true;
	}
	if (rc == 1)
		rc = ask_missing(fs, w, w->h->version);
	if (rc == 1)
		return false;
	fuse_reply_err(w->req, fs_errno(rc));
	return true;
}

/* start_wait - keep @first (on the caller's stack) as a waiting request. */
static int start_wait(struct fs *fs, struct wait *first)
{
	struct wait *w = malloc(sizeof(*w));

	if (!w || loop_timer_add(fs->loop, fs->timeout_ns, on_timeout, w, &first->timer)) {
		free(w);
		return -ENOMEM;
	}
	*w = *first;
	w->next = fs->waits;
	if (w->next)
		w->next->prev = w;
	fs->waits = w;
	if (w->h)
		w->h->waits++;
	fuse_req_interrupt_func(w->req, on_interrupt, w);
	return 0;
}

void fs_fetch_read(struct fs *fs, fuse_req_t req, struct handle *h, size_t size, uint64_t off)
{
	uint64_t fsize = manifest_file_size(h->m);
	struct wait first = { .fs = fs, .req = req, .node = h->node, .m = h->m, .h = h, .off = off, .size = size };

	if (off >= fsize || size == 0) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > fsize - off)
		first.size = size = (size_t)(fsize - off);
	/* the blocks this read needs are asked for first, read-ahead after them */
	if (attempt(fs, &first)) {
		free(first.missing);
		free(first.out);
	} else if (start_wait(fs, &first)) {
		free(first.missing);
		free(first.out);
		fuse_reply_err(req, ENOMEM);
	}
	ahead(fs, h, off, size);
}

int fs_fetch_whole(struct fs *fs, fuse_req_t req, struct node *n, fs_fetch_retry_fn *retry, const void *ctx,
		   size_t ctx_len)
{
	struct wait first = { .fs = fs, .req = req, .node = n, .retry = retry };
	struct store_entry *e = NULL;
	int fd, rc;

	if (n->stage || !fs->fetch || fs->closing)
		return 0;
	e = malloc(sizeof(*e));
	if (!e)
		return -ENOMEM;
	fd = fs_object_open(fs, n, e);
	if (fd >= 0)
		close(fd);
	rc = fd == -ENODATA ? fs_remote_manifest(fs, e, &first.own_m) : 0;
	first.m = first.own_m;
	for (uint32_t i = 0; rc == 0 && first.m && i < manifest_block_count(first.m); i++)
		if (!present(fs, first.m, i))
			rc = add_missing(&first, i);
	if (rc == 0 && first.n_missing) {
		rc = ask_missing(fs, &first, e->manifest);
		if (rc == 1)
			rc = (first.ctx = malloc(ctx_len ? ctx_len : 1)) ? 0 : -ENOMEM;
		if (rc == 0) {
			memcpy(first.ctx, ctx, ctx_len);
			rc = start_wait(fs, &first);
		}
		if (rc == 0) {
			free(e);
			return 1;
		}
		free(first.ctx);
	}
	/* every block is here, or the copy will fail with EIO by itself (no fetch) */
	free(e);
	free(first.missing);
	manifest_free(first.own_m);
	return rc == -ENOMEM ? rc : 0;
}

/*
 * arrived - @w lacked @hash, which is now in the store (@err 0) or will
 * not come: take it off the list (a read copies its bytes from the store
 * now; one evicted already stays on the list and is asked for again).
 * True if @w lacked it.
 */
static bool arrived(struct fs *fs, struct wait *w, const uint8_t hash[STORE_HASH_BYTES], int err)
{
	bool hit = false;

	for (size_t k = 0; k < w->n_missing;) {
		struct manifest_block mb;

		if (manifest_block(w->m, w->missing[k], &mb) != 0 || memcmp(mb.hash, hash, STORE_HASH_BYTES) != 0) {
			k++;
			continue;
		}
		hit = true;
		if (w->out && !err) {
			int rc = block_into(fs, w, w->missing[k]);

			if (rc == -ENOENT) {
				k++;
				continue;
			}
			if (rc && !w->err)
				w->err = rc;
		}
		w->missing[k] = w->missing[--w->n_missing];
	}
	return hit;
}

void fs_block_arrived(struct fs *fs, const uint8_t hash[static STORE_HASH_BYTES], int err)
{
	struct wait *w;

	/* mark first, answer after: answering may ask again and change the list */
	for (w = fs->waits; w; w = w->next)
		if (arrived(fs, w, hash, err) && (err || w->err || w->out || w->n_missing == 0)) {
			w->ready = true;
			if (err && !w->err)
				w->err = err;
		}
	for (;;) {
		for (w = fs->waits; w && !w->ready; w = w->next)
			;
		if (!w)
			break;
		w->ready = false;
		if (w->err) {
			log_info("a block of %s did not come: %s", w->node->path, bfs_strerror(w->err));
			wait_end(fs, w, EIO);
		} else if (!w->h && !w->interrupted) {
			/* a whole file is here: run the operation again (it may wait again) */
			fs_fetch_retry_fn *retry = w->retry;
			fuse_req_t req = w->req;
			void *ctx = w->ctx;

			w->ctx = NULL;
			wait_free(fs, w);
			retry(fs, req, ctx);
			free(ctx);
		} else if (w->interrupted || attempt(fs, w)) {
			if (w->interrupted)
				fuse_reply_err(w->req, EINTR);
			wait_free(fs, w);
		}
	}
}

void fs_block_data(struct fs *fs, const uint8_t hash[static STORE_HASH_BYTES], const uint8_t *data, size_t len)
{
	struct wait *w, *next;

	for (w = fs->waits; w; w = next) {
		bool hit = false;

		next = w->next;
		if (!w->h || !w->out || w->interrupted)
			continue; /* a whole file needs the block in the store: fs_block_arrived */
		for (size_t k = 0; k < w->n_missing;) {
			struct manifest_block mb;
			uint64_t from, to;

			if (manifest_block(w->m, w->missing[k], &mb) || mb.len != len ||
			    memcmp(mb.hash, hash, STORE_HASH_BYTES) != 0) {
				k++;
				continue;
			}
			/* a file may hold the same block at several indices */
			overlap(w, &mb, &from, &to);
			memcpy(w->out + (from - w->off), data + (from - mb.offset), (size_t)(to - from));
			w->missing[k] = w->missing[--w->n_missing];
			hit = true;
		}
		if (hit && w->n_missing == 0) {
			fuse_reply_buf(w->req, (const char *)w->out, w->size);
			wait_free(fs, w);
		}
	}
}

void fs_fetch_fail(struct fs *fs, struct handle *h, int err)
{
	struct wait *w, *next;

	for (w = fs->waits; w; w = next) {
		next = w->next;
		if (!h || w->h == h)
			wait_end(fs, w, err);
	}
	if (!h && fs->sweep_queued) {
		loop_defer_cancel(fs->loop, sweep, fs);
		fs->sweep_queued = false;
	}
}
