/*
 * fuse_page_cache.c - how fast a warm FUSE file re-reads from the kernel
 * page cache, next to the same bytes read from a local (ext4) file, and
 * what folio sizes the page cache holds for each.
 *
 *   fuse_page_cache [SIZE_MIB]     (default 1024; needs root and /dev/fuse)
 *
 * Writes SIZE MiB of pseudo-random bytes to a backing file in a fresh
 * directory under /var/tmp, then mounts at <dir>/mnt a minimal libfuse3
 * low-level file system that exposes that one file read-only (open sets
 * keep_cache, entry/attr timeouts are long, read is a pread of the backing
 * file; the connection keeps libfuse's defaults).  It then prints:
 *
 *   fill read      one whole-file read of each (the local file first, after
 *                  fsync + POSIX_FADV_DONTNEED, so it comes from disk; the
 *                  FUSE file second, so its backing file is then cached);
 *   warm re-read   the median of 5 passes each (reopen, read the whole file
 *                  with 1 MiB read() calls into one buffer), FUSE and local
 *                  interleaved;
 *   folio sizes    per file: mmap it, touch every page, look the pages up
 *                  in /proc/self/pagemap and /proc/kpageflags and count
 *                  order-0 pages against pages of large folios.
 *
 * GB = 10^9 bytes.  Figures only; nothing is judged.  The mount is always
 * undone and the scratch directory removed, also on errors.  Exits 0 when
 * it measured, 1 when it could not set up.
 */
#define FUSE_USE_VERSION 35

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MIB_BYTES (1024u * 1024u)
#define IO_BYTES MIB_BYTES
#define WARM_PASSES 5
#define DEFAULT_SIZE_MIB 1024
#define FILE_NAME "data"
#define FILE_INO 2
#define CACHE_TIMEOUT_S 86400.0

/* kpageflags bits (include/uapi/linux/kernel-page-flags.h). */
#define KPF_COMPOUND_HEAD 15
#define KPF_COMPOUND_TAIL 16
#define KPF_THP 22
#define PM_PRESENT (1ull << 63)
#define PM_PFN_MASK ((1ull << 55) - 1)

/* What the FUSE handlers serve: the backing file and its size. */
static int backing_fd = -1;
static uint64_t file_bytes;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* ---- the file system: root directory (inode 1) holding FILE_NAME ---- */

static void fill_attr(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)file_bytes;
		st->st_blocks = (blkcnt_t)(file_bytes / 512);
		st->st_blksize = IO_BYTES;
	}
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;

	if (parent != FUSE_ROOT_ID || strcmp(name, FILE_NAME) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = FILE_INO;
	e.generation = 1;
	e.attr_timeout = CACHE_TIMEOUT_S;
	e.entry_timeout = CACHE_TIMEOUT_S;
	fill_attr(FILE_INO, &e.attr);
	fuse_reply_entry(req, &e);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	if (ino != FUSE_ROOT_ID && ino != FILE_INO) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_attr(ino, &st);
	fuse_reply_attr(req, &st, CACHE_TIMEOUT_S);
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino != FILE_INO) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EROFS);
		return;
	}
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	char *buf;
	ssize_t n;

	(void)ino;
	(void)fi;
	if (off < 0 || (uint64_t)off >= file_bytes) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > file_bytes - (uint64_t)off)
		size = (size_t)(file_bytes - (uint64_t)off);
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = pread(backing_fd, buf, size, off);
	if (n < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static const struct fuse_lowlevel_ops fs_ops = {
	.lookup = fs_lookup,
	.getattr = fs_getattr,
	.open = fs_open,
	.read = fs_read,
};

static void *session_main(void *arg)
{
	struct fuse_session *se = arg;

	if (fuse_session_loop(se) != 0)
		fprintf(stderr, "fuse_page_cache: fuse session loop ended with an error\n");
	return NULL;
}

/* ---- setup ---- */

/* Writes file_bytes pseudo-random bytes to path, fsyncs, drops its cache. */
static int write_backing(const char *path)
{
	uint64_t *buf = malloc(IO_BYTES);
	uint64_t done = 0;
	int fd, rc = -1;

	if (!buf)
		return -1;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (fd < 0) {
		fprintf(stderr, "fuse_page_cache: create %s: %s\n", path, strerror(errno));
		goto out;
	}
	while (done < file_bytes) {
		size_t i;

		for (i = 0; i < IO_BYTES / sizeof(*buf); i++)
			buf[i] = rng();
		if (write(fd, buf, IO_BYTES) != (ssize_t)IO_BYTES) {
			fprintf(stderr, "fuse_page_cache: write %s: %s\n", path, strerror(errno));
			goto out;
		}
		done += IO_BYTES;
	}
	if (fsync(fd) != 0) {
		fprintf(stderr, "fuse_page_cache: fsync %s: %s\n", path, strerror(errno));
		goto out;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

/* ---- measures ---- */

/* Reads all of path with IO_BYTES read() calls; returns seconds, or < 0. */
static double read_whole(const char *path, char *buf)
{
	uint64_t total = 0;
	double t0, t1;
	ssize_t n;
	int fd;

	t0 = now_s();
	fd = open(path, O_RDONLY);
	if (fd < 0) {
		fprintf(stderr, "fuse_page_cache: open %s: %s\n", path, strerror(errno));
		return -1;
	}
	while ((n = read(fd, buf, IO_BYTES)) > 0)
		total += (uint64_t)n;
	t1 = now_s();
	if (n < 0)
		fprintf(stderr, "fuse_page_cache: read %s: %s\n", path, strerror(errno));
	close(fd);
	if (n < 0)
		return -1;
	if (total != file_bytes) {
		fprintf(stderr, "fuse_page_cache: %s: read %" PRIu64 " of %" PRIu64 " bytes\n",
			path, total, file_bytes);
		return -1;
	}
	return t1 - t0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double gbps(double seconds)
{
	return (double)file_bytes / seconds / 1e9;
}

static void print_line(const char *what, double local_s, double fuse_s)
{
	printf("%-13s local %.1f GB/s  fuse %.1f GB/s  ratio %.2f\n", what,
	       gbps(local_s), gbps(fuse_s), local_s / fuse_s);
}

/*
 * Prints the folio make-up of path's page cache: order-0 pages and pages
 * of large folios (with a count of folios by size).  Returns 0, or -1 when
 * the file could not be mapped or pagemap read.
 */
static int print_folios(const char *label, const char *path, int kpf_fd)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t npages = (size_t)(file_bytes / page), i, run = 0;
	uint64_t heads = 0, tails = 0, order0 = 0, thp = 0, absent = 0;
	uint64_t by_order[64] = { 0 };
	volatile const unsigned char *map;
	uint64_t *ent = NULL;
	unsigned long sum = 0;
	int fd, pm = -1, rc = -1, order;

	fd = open(path, O_RDONLY);
	if (fd < 0) {
		fprintf(stderr, "fuse_page_cache: open %s: %s\n", path, strerror(errno));
		return -1;
	}
	map = mmap(NULL, (size_t)file_bytes, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		fprintf(stderr, "fuse_page_cache: mmap %s: %s\n", path, strerror(errno));
		goto out_fd;
	}
	for (i = 0; i < npages; i++)
		sum += map[i * page];
	(void)sum;
	ent = malloc(npages * sizeof(*ent));
	pm = open("/proc/self/pagemap", O_RDONLY);
	if (!ent || pm < 0 ||
	    pread(pm, ent, npages * sizeof(*ent),
		  (off_t)((uintptr_t)map / page * sizeof(*ent))) !=
		    (ssize_t)(npages * sizeof(*ent))) {
		fprintf(stderr, "fuse_page_cache: /proc/self/pagemap: %s\n", strerror(errno));
		goto out_map;
	}
	for (i = 0; i <= npages; i++) {
		uint64_t flags = 0;
		int head = 0, tail = 0;

		if (i < npages) {
			if (!(ent[i] & PM_PRESENT)) {
				absent++;
				continue;
			}
			if (pread(kpf_fd, &flags, sizeof(flags),
				  (off_t)((ent[i] & PM_PFN_MASK) * sizeof(flags))) !=
			    (ssize_t)sizeof(flags)) {
				fprintf(stderr, "fuse_page_cache: /proc/kpageflags: %s\n",
					strerror(errno));
				goto out_map;
			}
			head = (int)(flags >> KPF_COMPOUND_HEAD & 1);
			tail = (int)(flags >> KPF_COMPOUND_TAIL & 1);
			thp += flags >> KPF_THP & 1;
		}
		if (tail) {
			tails++;
			run++;
			continue;
		}
		/* A large folio ends here: file it by size. */
		if (run) {
			for (order = 0; ((size_t)1 << order) < run; order++)
				;
			by_order[order]++;
			run = 0;
		}
		if (head) {
			heads++;
			run = 1;
		} else if (i < npages) {
			order0++;
		}
	}
	printf("folio sizes   %-5s %zu pages: order-0 %" PRIu64 ", in large folios %" PRIu64
	       " (%" PRIu64 " folios", label, npages, order0, heads + tails, heads);
	for (order = 1; order < 64; order++)
		if (by_order[order])
			printf(", %zuK x %" PRIu64, (page << order) / 1024, by_order[order]);
	printf("), thp-flagged %" PRIu64 ", not present %" PRIu64 "\n", thp, absent);
	rc = 0;
out_map:
	if (pm >= 0)
		close(pm);
	free(ent);
	munmap((void *)map, (size_t)file_bytes);
out_fd:
	close(fd);
	return rc;
}

int main(int argc, char **argv)
{
	char dir[] = "/var/tmp/fuse_page_cache.XXXXXX";
	char backing[sizeof(dir) + 16], mnt[sizeof(dir) + 16], fuse_path[sizeof(dir) + 32];
	char *fuse_argv[] = { argv[0], NULL };
	struct fuse_args args = FUSE_ARGS_INIT(1, fuse_argv);
	struct fuse_session *se = NULL;
	double local_s[WARM_PASSES], fuse_s[WARM_PASSES], fill_local, fill_fuse;
	unsigned long size_mib = DEFAULT_SIZE_MIB;
	int have_dir = 0, have_mnt = 0, have_file = 0, mounted = 0, threaded = 0;
	int kpf_fd = -1, rc = 1, i;
	char *buf = NULL;
	pthread_t thread;

	if (argc > 2 || (argc == 2 && (size_mib = strtoul(argv[1], NULL, 10)) == 0)) {
		fprintf(stderr, "usage: fuse_page_cache [SIZE_MIB]\n");
		return 1;
	}
	if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) != 0) {
		fprintf(stderr, "fuse_page_cache: needs root and /dev/fuse\n");
		return 1;
	}
	file_bytes = (uint64_t)size_mib * MIB_BYTES;
	buf = malloc(IO_BYTES);
	if (!buf)
		goto out;
	if (!mkdtemp(dir)) {
		fprintf(stderr, "fuse_page_cache: mkdtemp: %s\n", strerror(errno));
		goto out;
	}
	have_dir = 1;
	snprintf(backing, sizeof(backing), "%s/%s", dir, FILE_NAME);
	snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
	snprintf(fuse_path, sizeof(fuse_path), "%s/%s", mnt, FILE_NAME);
	if (mkdir(mnt, 0755) != 0) {
		fprintf(stderr, "fuse_page_cache: mkdir %s: %s\n", mnt, strerror(errno));
		goto out;
	}
	have_mnt = 1;
	have_file = 1;
	if (write_backing(backing) != 0)
		goto out;
	backing_fd = open(backing, O_RDONLY);
	if (backing_fd < 0) {
		fprintf(stderr, "fuse_page_cache: open %s: %s\n", backing, strerror(errno));
		goto out;
	}

	se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), NULL);
	if (!se) {
		fprintf(stderr, "fuse_page_cache: fuse_session_new failed\n");
		goto out;
	}
	if (fuse_session_mount(se, mnt) != 0) {
		fprintf(stderr, "fuse_page_cache: cannot mount at %s\n", mnt);
		goto out;
	}
	mounted = 1;
	if (pthread_create(&thread, NULL, session_main, se) != 0) {
		fprintf(stderr, "fuse_page_cache: pthread_create failed\n");
		goto out;
	}
	threaded = 1;

	printf("fuse_page_cache: %lu MiB, %u KiB reads, %d warm passes, dir %s\n",
	       size_mib, IO_BYTES / 1024, WARM_PASSES, dir);
	fill_local = read_whole(backing, buf);
	if (fill_local < 0)
		goto out;
	fill_fuse = read_whole(fuse_path, buf);
	if (fill_fuse < 0)
		goto out;
	print_line("fill read", fill_local, fill_fuse);
	for (i = 0; i < WARM_PASSES; i++) {
		fuse_s[i] = read_whole(fuse_path, buf);
		local_s[i] = read_whole(backing, buf);
		if (fuse_s[i] < 0 || local_s[i] < 0)
			goto out;
	}
	qsort(local_s, WARM_PASSES, sizeof(*local_s), cmp_double);
	qsort(fuse_s, WARM_PASSES, sizeof(*fuse_s), cmp_double);
	print_line("warm re-read", local_s[WARM_PASSES / 2], fuse_s[WARM_PASSES / 2]);
	fflush(stdout);

	kpf_fd = open("/proc/kpageflags", O_RDONLY);
	if (kpf_fd < 0) {
		printf("folio sizes: not readable (/proc/kpageflags: %s)\n", strerror(errno));
	} else if (print_folios("local", backing, kpf_fd) != 0 ||
		   print_folios("fuse", fuse_path, kpf_fd) != 0) {
		printf("folio sizes: not readable\n");
	}
	rc = 0;
out:
	fflush(stdout);
	if (kpf_fd >= 0)
		close(kpf_fd);
	if (mounted) {
		fuse_session_exit(se);
		fuse_session_unmount(se);
	}
	if (threaded)
		pthread_join(thread, NULL);
	if (se)
		fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	if (backing_fd >= 0)
		close(backing_fd);
	if (have_file)
		unlink(backing);
	if (have_mnt)
		rmdir(mnt);
	if (have_dir)
		rmdir(dir);
	free(buf);
	return rc;
}
