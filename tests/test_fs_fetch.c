/*
 * test_fs_fetch.c - the file system's side of the network, on a real mount
 * served in-process with a fake fetcher in place of xfer:
 *   - a read of a buddy's file whose blocks are not here waits, then
 *     returns the right bytes once they "arrive" (the fake puts them in
 *     the store's cache and calls fs_block_arrived a little later);
 *   - two reads waiting for one block both complete;
 *   - a block that fails (-EIO), a fetch refused (-ENOTCONN) and a block
 *     that never comes (timeout 1 s) make the read fail with EIO, and the
 *     loop stays responsive;
 *   - a sequential read asks ahead, a random one does not;
 *   - a second read is served without fetching again;
 *   - a read whose blocks come by fs_block_data (the way xfer hands over a
 *     checked block before it is in the store) is answered from them, and
 *     the bytes are right at every block boundary;
 *   - fs_entry_changed while a read waits for its blocks does not stop
 *     the loop, and new attributes show at once;
 *   - published() is called for each kind of local change.
 * The loop runs in a helper thread (the only one touching fs and store
 * once mounted); the test thread uses the mount and runs code on the loop
 * through a pipe (on_loop).  Needs root and /dev/fuse (skipped otherwise).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <sodium.h>

#include "buddyfs/fs.h"
#include "buddyfs/identity.h"
#include "buddyfs/loop.h"
#include "buddyfs/manifest.h"
#include "buddyfs/store.h"
#include "fs_mount.h"
#include "t.h"

#define BLOCK MANIFEST_BLOCK_BYTES
#define BIG_BLOCKS 60 /* 15 MiB: more than the read-ahead */
#define AHEAD_MIN (FS_FETCH_AHEAD_MIN_BYTES / BLOCK) /* blocks */
#define AHEAD_MAX (FS_FETCH_AHEAD_BYTES / BLOCK)
#define MAX_FILES 16
#define MAX_WANTS 4096
#define MAX_PUBS 128

struct tfile {
	char name[32];
	uint8_t *data;
	size_t len;
	struct manifest *m;
};

struct want_rec {
	char path[64];
	uint32_t index;
	uint8_t hash[32];
	uint8_t owner[32];
	uint8_t manifest[32];
};

struct env {
	struct tmount m;
	struct tfile files[MAX_FILES];
	size_t n_files;
	/* the fake fetcher's record: loop thread writes, test thread reads under mu */
	pthread_mutex_t mu;
	struct want_rec wants[MAX_WANTS];
	size_t n_wants;
	uint8_t pending[MAX_WANTS][32]; /* hashes asked, not answered yet (one answer per hash) */
	size_t n_pending;
	unsigned delay_ms;
	char pubs[MAX_PUBS][64];
	size_t n_pubs;
	bool pub_wrong_buddy;
};

static struct env E;

/* ---- running code on the loop thread ---- */

struct call {
	void (*fn)(void *arg);
	void *arg;
	sem_t done;
};

static void on_cmd(struct loop *loop, struct loop_fd *h, int fd, uint32_t events, void *ctx)
{
	struct call *c;

	(void)loop;
	(void)h;
	(void)events;
	(void)ctx;
	if (read(fd, &c, sizeof(c)) != (ssize_t)sizeof(c))
		return;
	c->fn(c->arg);
	sem_post(&c->done);
}

/* on_loop - run @fn(@arg) on the loop thread and wait for it. */
static void on_loop(void (*fn)(void *arg), void *arg)
{
	struct call c = { .fn = fn, .arg = arg }, *p = &c;

	sem_init(&c.done, 0, 0);
	if (write(E.m.cmd[1], &p, sizeof(p)) != (ssize_t)sizeof(p))
		abort();
	while (sem_wait(&c.done) != 0)
		;
	sem_destroy(&c.done);
}

static void stop_loop(void *arg)
{
	(void)arg;
	loop_stop(E.m.loop);
}

/* ---- the fake fetcher ---- */

/* find_block - the bytes of block @hash of one of the test files. */
static const uint8_t *find_block(const uint8_t hash[32], uint32_t *len)
{
	for (size_t f = 0; f < E.n_files; f++)
		for (uint32_t i = 0; i < manifest_block_count(E.files[f].m); i++) {
			struct manifest_block mb;

			if (manifest_block(E.files[f].m, i, &mb) == 0 && memcmp(mb.hash, hash, 32) == 0) {
				*len = mb.len;
				return E.files[f].data + mb.offset;
			}
		}
	return NULL;
}

struct answer {
	uint8_t hash[32];
	int err;
	bool mem; /* hand the bytes over with fs_block_data, keep them out of the store */
};

static void on_answer(struct loop *loop, struct loop_timer *t, void *ctx)
{
	struct answer *a = ctx;
	const uint8_t *data;
	uint32_t len;

	(void)loop;
	(void)t;
	if (a->err == 0) {
		data = find_block(a->hash, &len);
		if (data && a->mem)
			fs_block_data(E.m.fs, a->hash, data, len);
		else if (!data || store_block_cache_put(E.m.s, NULL, a->hash, data, len) != 0)
			a->err = -EIO;
	}
	pthread_mutex_lock(&E.mu);
	for (size_t k = 0; k < E.n_pending; k++)
		if (memcmp(E.pending[k], a->hash, 32) == 0) {
			memcpy(E.pending[k], E.pending[--E.n_pending], 32);
			break;
		}
	pthread_mutex_unlock(&E.mu);
	fs_block_arrived(E.m.fs, a->hash, a->err);
	free(a);
}

/*
 * fake_fetch - by the file's name: refuse* is refused, never* is never
 * answered, fail* answers -EIO, the rest arrives after E.delay_ms.  Like
 * xfer, a hash already asked for is answered once.
 */
static int fake_fetch(void *ctx, const struct xfer_want *w)
{
	struct answer *a;
	bool again = false;

	(void)ctx;
	if (strncmp(w->path, "refuse", 6) == 0)
		return -ENOTCONN;
	pthread_mutex_lock(&E.mu);
	if (E.n_wants < MAX_WANTS) {
		struct want_rec *r = &E.wants[E.n_wants++];

		snprintf(r->path, sizeof(r->path), "%s", w->path);
		r->index = w->index;
		memcpy(r->hash, w->hash, 32);
		memcpy(r->owner, w->owner, 32);
		memcpy(r->manifest, w->manifest, 32);
	}
	for (size_t k = 0; k < E.n_pending; k++)
		again |= memcmp(E.pending[k], w->hash, 32) == 0;
	if (!again && E.n_pending < MAX_WANTS)
		memcpy(E.pending[E.n_pending++], w->hash, 32);
	pthread_mutex_unlock(&E.mu);
	if (again || strncmp(w->path, "never", 5) == 0)
		return 0;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	memcpy(a->hash, w->hash, 32);
	a->err = strncmp(w->path, "fail", 4) == 0 ? -EIO : 0;
	a->mem = strncmp(w->path, "mem", 3) == 0;
	return loop_timer_add(E.m.loop, (uint64_t)E.delay_ms * LOOP_NS_PER_MS, on_answer, a, NULL);
}

static void fake_published(void *ctx, const uint8_t buddy[32], const char *path)
{
	(void)ctx;
	pthread_mutex_lock(&E.mu);
	if (memcmp(buddy, E.m.bob->peer_id, 32) != 0)
		E.pub_wrong_buddy = true;
	if (E.n_pubs < MAX_PUBS)
		snprintf(E.pubs[E.n_pubs++], sizeof(E.pubs[0]), "%s", path);
	pthread_mutex_unlock(&E.mu);
}

/* ---- helpers ---- */

static void nop(void *arg);

static size_t wants_of(const char *path, uint32_t *max_index)
{
	size_t n = 0;

	on_loop(nop, NULL); /* see asked() */

	pthread_mutex_lock(&E.mu);
	if (max_index)
		*max_index = 0;
	for (size_t k = 0; k < E.n_wants; k++)
		if (strcmp(E.wants[k].path, path) == 0) {
			n++;
			if (max_index && E.wants[k].index > *max_index)
				*max_index = E.wants[k].index;
		}
	pthread_mutex_unlock(&E.mu);
	return n;
}

static void nop(void *arg)
{
	(void)arg;
}

/*
 * asked - did the fetcher see block @index of @path?  A read is answered
 * before it asks ahead: a call through the loop first lets that finish.
 */
static bool asked(const char *path, uint32_t index)
{
	bool yes = false;

	on_loop(nop, NULL);

	pthread_mutex_lock(&E.mu);
	for (size_t k = 0; k < E.n_wants; k++)
		yes |= strcmp(E.wants[k].path, path) == 0 && E.wants[k].index == index;
	pthread_mutex_unlock(&E.mu);
	return yes;
}

/* published - did published() name @path (and how many times)? */
static int published(const char *path)
{
	int n = 0;

	pthread_mutex_lock(&E.mu);
	for (size_t k = 0; k < E.n_pubs; k++)
		n += strcmp(E.pubs[k], path) == 0;
	pthread_mutex_unlock(&E.mu);
	return n;
}

/* wait_published - published() of @path, waiting up to 5 s (publishing runs on a thread). */
static bool wait_published(const char *path)
{
	for (int i = 0; i < 500; i++) {
		if (published(path))
			return true;
		usleep(10 * 1000);
	}
	return false;
}

/*
 * add_file - a file @name of @len bytes in bob's folder, owned and signed
 * by bob, no block in the store (or all of them with @cached); seeds its
 * bytes from @salt.  Runs before the loop thread starts, or on it.
 */
static int add_file(const char *name, size_t len, uint8_t salt, bool cached)
{
	char src[96];
	struct tfile *f = &E.files[E.n_files];
	struct store_entry e;
	const uint8_t *bytes;
	size_t blen;
	int fd, rc;

	if (E.n_files == MAX_FILES)
		return -ENOSPC;
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->len = len;
	f->data = malloc(len ? len : 1);
	if (!f->data)
		return -ENOMEM;
	randombytes_buf_deterministic(f->data, len, (const uint8_t[32]){ salt });
	snprintf(src, sizeof(src), "%s/src.bin", E.m.home);
	fd = open(src, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, f->data, len) != (ssize_t)len)
		return -EIO;
	rc = manifest_build(&f->m, fd, E.m.bob->peer_id, NULL);
	close(fd);
	unlink(src);
	if (rc == 0)
		rc = manifest_sign(f->m, E.m.bob->secret_key);
	memset(&e, 0, sizeof(e));
	if (rc == 0)
		rc = manifest_hash(f->m, e.manifest);
	if (rc == 0)
		rc = manifest_bytes(f->m, &bytes, &blen);
	if (rc == 0)
		rc = store_manifest_put(E.m.s, NULL, e.manifest, bytes, blen);
	for (uint32_t i = 0; rc == 0 && cached && i < manifest_block_count(f->m); i++) {
		struct manifest_block b;

		rc = manifest_block(f->m, i, &b);
		if (rc == 0)
			rc = store_block_cache_put(E.m.s, NULL, b.hash, f->data + b.offset, b.len);
	}
	memcpy(e.buddy, E.m.bob->peer_id, STORE_PEER_ID_BYTES);
	snprintf(e.path, sizeof(e.path), "%s", name);
	e.type = STORE_ENTRY_FILE;
	e.mode = 0644;
	e.size = len;
	e.mtime_ns = 1000000000;
	memcpy(e.owner, E.m.bob->peer_id, STORE_PEER_ID_BYTES);
	e.version = 1;
	{
		struct store_entry *old = malloc(sizeof(*old));

		if (old && store_entry_get(E.m.s, NULL, e.buddy, name, old) == 0)
			e.version = old->version + 1;
		free(old);
	}
	if (rc == 0)
		rc = store_entry_put(E.m.s, NULL, &e);
	E.n_files++;
	return rc;
}

static const struct tfile *tfile(const char *name)
{
	for (size_t f = E.n_files; f-- > 0;)
		if (strcmp(E.files[f].name, name) == 0)
			return &E.files[f];
	return NULL;
}

static void mnt_path(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/bob/%s", E.m.mnt, name);
}

/* read_all - the whole file through the mount; bytes or -errno. */
static long read_all(const char *name, uint8_t *buf, size_t cap)
{
	char path[128];
	long got = 0;
	ssize_t n = 0;
	int fd;

	mnt_path(path, sizeof(path), name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	while ((size_t)got < cap && (n = read(fd, buf + got, cap - (size_t)got)) > 0)
		got += n;
	if (n < 0)
		got = -errno;
	close(fd);
	return got;
}

/* ---- cases ---- */

T_CASE(setup)
{
	struct fs_params fp = { 0 };

	pthread_mutex_init(&E.mu, NULL);
	T_CHECK_EQ_INT(tmount_open(&E.m, "test_fs_fetch"), 0);
	T_CHECK_EQ_INT(add_file("small.bin", 3 * BLOCK + 1234, 1, false), 0);
	T_CHECK_EQ_INT(add_file("twin1.bin", BLOCK + 77, 2, false), 0);
	T_CHECK_EQ_INT(add_file("twin2.bin", BLOCK + 77, 2, false), 0); /* same bytes, same blocks */
	T_CHECK_EQ_INT(add_file("fail.bin", 2 * BLOCK, 3, false), 0);
	T_CHECK_EQ_INT(add_file("refuse.bin", 2 * BLOCK, 4, false), 0);
	T_CHECK_EQ_INT(add_file("never.bin", 2 * BLOCK, 5, false), 0);
	T_CHECK_EQ_INT(add_file("never2.bin", 2 * BLOCK, 11, false), 0);
	T_CHECK_EQ_INT(add_file("never3.bin", 2 * BLOCK, 12, false), 0);
	T_CHECK_EQ_INT(add_file("append.bin", 3 * BLOCK + 5, 13, false), 0);
	T_CHECK_EQ_INT(add_file("cut.bin", 3 * BLOCK, 14, false), 0);
	T_CHECK_EQ_INT(add_file("big.bin", (size_t)BIG_BLOCKS * BLOCK, 6, false), 0);
	T_CHECK_EQ_INT(add_file("changing.bin", 2 * BLOCK, 7, false), 0);
	T_CHECK_EQ_INT(add_file("mem.bin", 3 * BLOCK + 999, 15, false), 0);
	E.delay_ms = 50;

	fp.fetch = fake_fetch;
	fp.published = fake_published;
	fp.timeout_s = 1;
	T_CHECK_EQ_INT(tmount_start(&E.m, &fp, on_cmd), 0);
}

/* kernel_readahead_kb - the read-ahead of our mount in sysfs, or -1. */
static long kernel_readahead_kb(void)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[1024], dev[32], point[512], path[128];
	long kb = -1;

	if (!f)
		return -1;
	dev[0] = '\0';
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%*u %*u %31s %*s %511s", dev, point) == 2 && strcmp(point, E.m.mnt) == 0)
			break;
	fclose(f);
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
	f = fopen(path, "r");
	if (f && fscanf(f, "%ld", &kb) != 1)
		kb = -1;
	if (f)
		fclose(f);
	return kb;
}

T_CASE(kernel_readahead_raised)
{
	struct stat st;

	T_CHECK_EQ_INT(stat(E.m.mnt, &st), 0); /* the INIT exchange is done */
	if (access("/sys/class/bdi", W_OK) != 0) {
		printf("# kernel_readahead_raised: /sys/class/bdi is read-only here, not checked\n");
		return;
	}
	/* raised right after the INIT exchange, from the loop: give it a moment */
	for (int i = 0; i < 100 && kernel_readahead_kb() != 8192; i++)
		usleep(10 * 1000);
	T_CHECK_EQ_INT(kernel_readahead_kb(), 8192); /* FS_READAHEAD_BYTES in fs.c */
}

T_CASE(read_waits_then_completes)
{
	const struct tfile *f = tfile("small.bin");
	uint8_t *buf = malloc(f->len + 1);
	struct want_rec w;

	T_CHECK(buf != NULL);
	T_CHECK_EQ_INT(read_all("small.bin", buf, f->len + 1), f->len);
	T_CHECK_MEM(buf, f->data, f->len);
	free(buf);
	/* every block was asked for, of bob, with the version's manifest */
	for (uint32_t i = 0; i < 4; i++)
		T_CHECK(asked("small.bin", i));
	pthread_mutex_lock(&E.mu);
	w = E.wants[0];
	pthread_mutex_unlock(&E.mu);
	T_CHECK_MEM(w.owner, E.m.bob->peer_id, 32);
	{
		uint8_t h[32];

		T_CHECK_EQ_INT(manifest_hash(f->m, h), 0);
		T_CHECK_MEM(w.manifest, h, 32);
	}
}

T_CASE(second_read_fetches_nothing)
{
	const struct tfile *f = tfile("small.bin");
	uint8_t *buf = malloc(f->len + 1);
	size_t before = wants_of("small.bin", NULL);

	T_CHECK(buf != NULL);
	T_CHECK_EQ_INT(read_all("small.bin", buf, f->len + 1), f->len);
	T_CHECK_MEM(buf, f->data, f->len);
	free(buf);
	T_CHECK_EQ_INT(wants_of("small.bin", NULL), before);
}

T_CASE(read_answered_from_memory)
{
	const struct tfile *f = tfile("mem.bin");
	uint8_t *buf = malloc(f->len + 1);
	size_t asked_first;
	char path[128];
	int fd;

	T_CHECK(buf != NULL);
	T_CHECK_EQ_INT(read_all("mem.bin", buf, f->len + 1), f->len);
	T_CHECK_MEM(buf, f->data, f->len);
	asked_first = wants_of("mem.bin", NULL);
	T_CHECK(asked_first >= 4);
	/* the blocks never reached the store: a read the kernel does not
	 * serve from its cache asks again, and gets them again; O_DIRECT
	 * reads cross each block boundary at odd offsets */
	mnt_path(path, sizeof(path), "mem.bin");
	fd = open(path, O_RDONLY | O_DIRECT);
	T_CHECK(fd >= 0);
	if (fd >= 0) {
		for (uint32_t i = 1; i <= 3; i++) {
			uint8_t *p = NULL;

			T_CHECK_EQ_INT(posix_memalign((void **)&p, 4096, 8192), 0);
			size_t off = (size_t)i * BLOCK - 4096, want = f->len - off < 8192 ? f->len - off : 8192;

			T_CHECK_EQ_INT(pread(fd, p, 8192, (off_t)off), (long)want);
			T_CHECK_MEM(p, f->data + off, want);
			free(p);
		}
		close(fd);
	}
	T_CHECK(wants_of("mem.bin", NULL) > asked_first);
	free(buf);
}

struct reader {
	const char *name;
	long got;
	uint8_t *buf;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;

	r->got = read_all(r->name, r->buf, BLOCK + 78);
	return NULL;
}

T_CASE(two_reads_wait_for_one_block)
{
	struct reader a = { .name = "twin1.bin" }, b = { .name = "twin2.bin" };
	const struct tfile *f = tfile("twin1.bin");
	pthread_t ta, tb;

	E.delay_ms = 300;
	a.buf = malloc(BLOCK + 78);
	b.buf = malloc(BLOCK + 78);
	T_CHECK(a.buf && b.buf);
	T_CHECK_EQ_INT(pthread_create(&ta, NULL, reader_main, &a), 0);
	T_CHECK_EQ_INT(pthread_create(&tb, NULL, reader_main, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	E.delay_ms = 50;
	T_CHECK_EQ_INT(a.got, f->len);
	T_CHECK_EQ_INT(b.got, f->len);
	T_CHECK_MEM(a.buf, f->data, f->len);
	T_CHECK_MEM(b.buf, f->data, f->len);
	free(a.buf);
	free(b.buf);
}

T_CASE(failed_block_is_eio)
{
	uint8_t buf[4096];

	T_CHECK_EQ_INT(read_all("fail.bin", buf, sizeof(buf)), -EIO);
}

T_CASE(refused_fetch_is_eio)
{
	uint8_t buf[4096];

	T_CHECK_EQ_INT(read_all("refuse.bin", buf, sizeof(buf)), -EIO);
}

T_CASE(timeout_is_eio)
{
	uint8_t buf[4096];
	struct timeval t0, t1;
	struct stat st;
	char path[128];

	gettimeofday(&t0, NULL);
	T_CHECK_EQ_INT(read_all("never.bin", buf, sizeof(buf)), -EIO);
	gettimeofday(&t1, NULL);
	/* the timeout is 1 s: it did wait (a little), and the loop still answers */
	T_CHECK((t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_usec - t0.tv_usec) >= 900000);
	mnt_path(path, sizeof(path), "small.bin");
	T_CHECK_EQ_INT(stat(path, &st), 0);
}

T_CASE(sequential_read_asks_ahead)
{
	char path[128];
	uint32_t max;
	void *buf;
	int fd;

	/* O_DIRECT: the kernel sends exactly our reads, no read-ahead of its own */
	T_CHECK_EQ_INT(posix_memalign(&buf, 4096, 8192), 0);
	mnt_path(path, sizeof(path), "big.bin");
	fd = open(path, O_RDONLY | O_DIRECT);
	T_CHECK(fd >= 0);
	T_CHECK_EQ_INT(pread(fd, buf, 4096, 0), 4096);
	T_CHECK_MEM(buf, tfile("big.bin")->data, 4096);
	/* block 0 was needed; blocks 1..N were asked for ahead, no further:
	 * the first window is the smallest */
	for (uint32_t i = 0; i <= AHEAD_MIN; i++)
		T_CHECK(asked("big.bin", i));
	wants_of("big.bin", &max);
	T_CHECK_EQ_INT(max, AHEAD_MIN);
	/* the next piece: the window doubled */
	T_CHECK_EQ_INT(pread(fd, buf, 4096, 4096), 4096);
	wants_of("big.bin", &max);
	T_CHECK_EQ_INT(max, 2 * AHEAD_MIN);
	/* a jump to the last block: only that one, nothing ahead */
	T_CHECK_EQ_INT(pread(fd, buf, 4096, (off_t)(BIG_BLOCKS - 1) * BLOCK), 4096);
	T_CHECK_MEM(buf, tfile("big.bin")->data + (size_t)(BIG_BLOCKS - 1) * BLOCK, 4096);
	T_CHECK(asked("big.bin", BIG_BLOCKS - 1));
	T_CHECK(!asked("big.bin", BIG_BLOCKS - 2));
	/* from block 2 again: a jump back, nothing ahead; then sequential
	 * reads from the smallest window, doubling up to the largest */
	T_CHECK_EQ_INT(pread(fd, buf, 8192, (off_t)2 * BLOCK), 8192);
	T_CHECK(!asked("big.bin", 2 * AHEAD_MIN + 1));
	T_CHECK_EQ_INT(pread(fd, buf, 8192, (off_t)2 * BLOCK + 8192), 8192);
	T_CHECK(asked("big.bin", 2 + AHEAD_MIN));
	T_CHECK(!asked("big.bin", 2 * AHEAD_MIN + 1));
	for (int k = 2; k < 10; k++)
		T_CHECK_EQ_INT(pread(fd, buf, 8192, (off_t)2 * BLOCK + 8192 * k), 8192);
	T_CHECK(asked("big.bin", 2 + AHEAD_MAX));
	T_CHECK(!asked("big.bin", 3 + AHEAD_MAX));
	close(fd);
	free(buf);
}

struct change {
	const char *name;
	size_t len;
	uint8_t salt;
};

static void change_file(void *arg)
{
	struct change *c = arg;

	if (add_file(c->name, c->len, c->salt, true) == 0)
		fs_entry_changed(E.m.fs, E.m.bob->peer_id, c->name);
}

struct late_change {
	struct change c;
	unsigned after_ms;
};

static void *change_later(void *arg)
{
	struct late_change *l = arg;

	usleep(l->after_ms * 1000);
	on_loop(change_file, &l->c);
	return NULL;
}

T_CASE(change_while_read_waits)
{
	const struct tfile *v1 = tfile("changing.bin");
	struct late_change l = { .c = { .name = "changing.bin", .len = 3 * BLOCK, .salt = 8 }, .after_ms = 100 };
	uint8_t *buf = malloc(2 * BLOCK + 1);
	char path[128];
	struct stat st;
	pthread_t th;
	int fd;

	T_CHECK(buf != NULL);
	mnt_path(path, sizeof(path), "changing.bin");
	fd = open(path, O_RDONLY);
	T_CHECK(fd >= 0);
	T_CHECK_EQ_INT(fstat(fd, &st), 0);
	T_CHECK_EQ_INT(st.st_size, 2 * BLOCK);
	/* a new version arrives (and is announced) while this read waits for its blocks */
	E.delay_ms = 400;
	T_CHECK_EQ_INT(pthread_create(&th, NULL, change_later, &l), 0);
	T_CHECK_EQ_INT(pread(fd, buf, 2 * BLOCK, 0), 2 * BLOCK);
	pthread_join(th, NULL);
	E.delay_ms = 50;
	T_CHECK_MEM(buf, v1->data, 2 * BLOCK); /* the open file reads its version */
	close(fd);
	/* the loop answers, and a new open reads the new version */
	T_CHECK_EQ_INT(stat(path, &st), 0);
	T_CHECK_EQ_INT(read_all("changing.bin", buf, 2 * BLOCK + 1), 2 * BLOCK + 1);
	T_CHECK_MEM(buf, tfile("changing.bin")->data, 2 * BLOCK + 1);
	free(buf);
}

T_CASE(changed_attributes_show_at_once)
{
	struct change c = { .name = "small.bin", .len = 5 * BLOCK, .salt = 10 };
	char path[128];
	struct stat st;
	int i;

	mnt_path(path, sizeof(path), "small.bin");
	T_CHECK_EQ_INT(stat(path, &st), 0);
	T_CHECK_EQ_INT(st.st_size, 3 * BLOCK + 1234); /* the kernel keeps this for FS_ATTR_TIMEOUT_S */
	on_loop(change_file, &c);
	/* the notifier thread tells the kernel soon after: well within the second */
	for (i = 0; i < 50; i++) {
		T_CHECK_EQ_INT(stat(path, &st), 0);
		if (st.st_size == 5 * BLOCK)
			break;
		usleep(10 * 1000);
	}
	T_CHECK_EQ_INT(st.st_size, 5 * BLOCK);
}

T_CASE(new_buddy_file_shows)
{
	struct change c = { .name = "fresh.bin", .len = 10, .salt = 9 };
	char path[128];
	struct stat st;

	mnt_path(path, sizeof(path), "fresh.bin");
	T_CHECK(stat(path, &st) < 0 && errno == ENOENT);
	on_loop(change_file, &c);
	T_CHECK_EQ_INT(stat(path, &st), 0);
	T_CHECK_EQ_INT(st.st_size, 10);
}

T_CASE(published_for_each_change)
{
	char a[128], b[128];
	int fd;

	mnt_path(a, sizeof(a), "mine.txt");
	fd = open(a, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	T_CHECK(fd >= 0);
	T_CHECK(write(fd, "hello", 5) == 5);
	close(fd);
	T_CHECK(wait_published("mine.txt"));
	T_CHECK_EQ_INT(chmod(a, 0600), 0);
	T_CHECK_EQ_INT(published("mine.txt"), 2);
	T_CHECK_EQ_INT(utimensat(AT_FDCWD, a, (const struct timespec[2]){ { 0, UTIME_OMIT }, { 12345, 0 } }, 0), 0);
	T_CHECK_EQ_INT(published("mine.txt"), 3);
	T_CHECK_EQ_INT(truncate(a, 2), 0);
	for (int i = 0; i < 500 && published("mine.txt") < 4; i++)
		usleep(10 * 1000);
	T_CHECK_EQ_INT(published("mine.txt"), 4);
	mnt_path(b, sizeof(b), "d");
	T_CHECK_EQ_INT(mkdir(b, 0755), 0);
	T_CHECK_EQ_INT(published("d"), 1);
	mnt_path(b, sizeof(b), "d/moved.txt");
	T_CHECK_EQ_INT(rename(a, b), 0);
	T_CHECK_EQ_INT(published("mine.txt"), 5);
	T_CHECK_EQ_INT(published("d/moved.txt"), 1);
	mnt_path(a, sizeof(a), "d");
	mnt_path(b, sizeof(b), "e");
	T_CHECK_EQ_INT(rename(a, b), 0); /* a directory: its entries move too */
	T_CHECK_EQ_INT(published("d"), 2);
	T_CHECK_EQ_INT(published("e"), 1);
	T_CHECK_EQ_INT(published("d/moved.txt"), 2);
	T_CHECK_EQ_INT(published("e/moved.txt"), 1);
	mnt_path(a, sizeof(a), "e/moved.txt");
	T_CHECK_EQ_INT(unlink(a), 0);
	T_CHECK_EQ_INT(published("e/moved.txt"), 2);
	mnt_path(a, sizeof(a), "e");
	T_CHECK_EQ_INT(rmdir(a), 0);
	T_CHECK_EQ_INT(published("e"), 2);
	T_CHECK(!E.pub_wrong_buddy);
}

T_CASE(write_into_uncached_buddy_file)
{
	const struct tfile *f = tfile("append.bin"), *g = tfile("cut.bin");
	uint8_t *buf = malloc(f->len + 2);
	char path[128];
	int fd;

	T_CHECK(buf != NULL);
	/* appending copies the file: the open waits for its blocks */
	mnt_path(path, sizeof(path), "append.bin");
	fd = open(path, O_WRONLY | O_APPEND);
	T_CHECK(fd >= 0);
	T_CHECK(write(fd, "!", 1) == 1);
	close(fd);
	T_CHECK(wants_of("append.bin", NULL) >= 3);
	T_CHECK(wait_published("append.bin"));
	T_CHECK_EQ_INT(read_all("append.bin", buf, f->len + 2), f->len + 1);
	T_CHECK_MEM(buf, f->data, f->len);
	T_CHECK_EQ_INT(buf[f->len], '!');
	/* so does a truncate that keeps some of it */
	mnt_path(path, sizeof(path), "cut.bin");
	T_CHECK_EQ_INT(truncate(path, 1000), 0);
	T_CHECK(wait_published("cut.bin"));
	T_CHECK_EQ_INT(read_all("cut.bin", buf, f->len + 2), 1000);
	T_CHECK_MEM(buf, g->data, 1000);
	/* a block that fails: the open fails, nothing is published */
	mnt_path(path, sizeof(path), "fail.bin");
	T_CHECK(open(path, O_WRONLY | O_APPEND) < 0 && errno == EIO);
	T_CHECK_EQ_INT(published("fail.bin"), 0);
	free(buf);
}

static void on_usr1(int sig)
{
	(void)sig;
}

struct direct_reader {
	const char *name;
	ssize_t got;
	int err;
};

/* direct_main - one O_DIRECT read (a request the kernel can interrupt). */
static void *direct_main(void *arg)
{
	struct direct_reader *r = arg;
	char path[128];
	void *buf = NULL;
	int fd;

	mnt_path(path, sizeof(path), r->name);
	fd = open(path, O_RDONLY | O_DIRECT);
	if (fd < 0 || posix_memalign(&buf, 4096, 4096)) {
		r->got = -2;
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	r->got = pread(fd, buf, 4096, 0);
	r->err = errno;
	close(fd);
	free(buf);
	return NULL;
}

T_CASE(interrupted_read_ends)
{
	struct sigaction sa = { .sa_handler = on_usr1 }; /* no SA_RESTART */
	struct direct_reader r = { .name = "never2.bin" };
	pthread_t th;
	int i;

	sigemptyset(&sa.sa_mask);
	T_CHECK_EQ_INT(sigaction(SIGUSR1, &sa, NULL), 0);
	T_CHECK_EQ_INT(pthread_create(&th, NULL, direct_main, &r), 0);
	for (i = 0; i < 300 && wants_of("never2.bin", NULL) == 0; i++)
		usleep(1000);
	pthread_kill(th, SIGUSR1);
	pthread_join(th, NULL);
	/* the kernel passed the interrupt on (fs.c turns asynchronous direct I/O off) */
	T_CHECK_EQ_INT(r.got, -1);
	T_CHECK_EQ_INT(r.err, EINTR);
}

T_CASE(teardown)
{
	struct direct_reader r = { .name = "never3.bin" };
	pthread_t th;

	/* a read waiting for blocks when the fs goes away: EIO, nothing leaks */
	T_CHECK_EQ_INT(pthread_create(&th, NULL, direct_main, &r), 0);
	for (int i = 0; i < 300 && wants_of("never3.bin", NULL) == 0; i++)
		usleep(1000);
	on_loop(stop_loop, NULL);
	pthread_join(E.m.th, NULL);
	fs_free(E.m.fs);
	E.m.fs = NULL;
	pthread_join(th, NULL);
	T_CHECK(r.got < 0);
	for (size_t f = 0; f < E.n_files; f++) {
		free(E.files[f].data);
		manifest_free(E.files[f].m);
	}
	pthread_mutex_destroy(&E.mu);
	T_CHECK(tmount_close(&E.m));
}

int main(void)
{
	if (!tmount_can_run("test_fs_fetch"))
		return 0;
	T_RUN(setup);
	if (t_failed)
		return t_done();
	T_RUN(kernel_readahead_raised);
	T_RUN(read_waits_then_completes);
	T_RUN(second_read_fetches_nothing);
	T_RUN(read_answered_from_memory);
	T_RUN(two_reads_wait_for_one_block);
	T_RUN(failed_block_is_eio);
	T_RUN(refused_fetch_is_eio);
	T_RUN(timeout_is_eio);
	T_RUN(sequential_read_asks_ahead);
	T_RUN(change_while_read_waits);
	T_RUN(changed_attributes_show_at_once);
	T_RUN(new_buddy_file_shows);
	T_RUN(published_for_each_change);
	T_RUN(write_into_uncached_buddy_file);
	T_RUN(interrupted_read_ends);
	T_RUN(teardown);
	return t_done();
}
