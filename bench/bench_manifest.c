/*
 * bench_manifest.c - manifest_build() of a file against BLAKE2b over the
 * same bytes in memory, in one run (issue 3: the build must reach 0.8x).
 *
 *   bench_manifest [MiB [threads]]      default 1024 MiB, threads 0 (= CPUs)
 *
 * Makes MiB of pseudo-random bytes in memory and writes them to a file in a
 * fresh directory under $TMPDIR (or /tmp), removed at exit.  Measures:
 *   memory   one thread, crypto_generichash over each 256 KiB block of the
 *            buffer (the same work a manifest does), and over the buffer as
 *            one stream, for reference;
 *   cold-ish manifest_build() once after fsync + POSIX_FADV_DONTNEED (the
 *            file's pages leave the page cache; the disk's cache may not);
 *   warm     manifest_build() with the page cache warm: pread (the
 *            default) with the asked thread count and with one thread, and
 *            mmap windows.
 * Warm and memory figures are the best of ROUNDS rounds, interleaved so
 * that load from other processes hits both alike.  MB/s is 10^6 bytes per
 * second.  The ratio compares the default build with the faster of the two
 * memory figures.  The manifest's hashes are checked against the memory
 * ones.  No figure makes the program fail: it prints a verdict.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "buddyfs/err.h"
#include "buddyfs/manifest.h"

#define ROUNDS 3
#define MIB (1024u * 1024)

/* A measurement: wall-clock seconds and CPU seconds of the whole process
 * (every thread, user and system). */
struct fig {
	double wall, cpu;
};

static struct fig now(void)
{
	struct timespec ts;
	struct rusage ru;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	getrusage(RUSAGE_SELF, &ru);
	return (struct fig){
		(double)ts.tv_sec + (double)ts.tv_nsec / 1e9,
		(double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
			(double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6,
	};
}

static struct fig since(struct fig t0)
{
	struct fig t = now();

	return (struct fig){ t.wall - t0.wall, t.cpu - t0.cpu };
}

/* keep_best - keep the run with the shortest wall-clock time. */
static void keep_best(struct fig *best, struct fig f)
{
	if (best->wall <= 0 || f.wall < best->wall)
		*best = f;
}

static double mbps(size_t bytes, double secs)
{
	return secs > 0 ? (double)bytes / secs / 1e6 : 0;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len > (1u << 30) ? (1u << 30) : len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One thread, one crypto_generichash per block, like a manifest. */
static struct fig mem_blocks(const uint8_t *buf, size_t len, uint8_t *hashes)
{
	struct fig t0 = now();

	for (size_t off = 0, i = 0; off < len; off += MANIFEST_BLOCK_BYTES, i++)
		manifest_block_hash(hashes + i * MANIFEST_HASH_BYTES, buf + off,
				    len - off < MANIFEST_BLOCK_BYTES ? len - off : MANIFEST_BLOCK_BYTES);
	return since(t0);
}

static struct fig mem_stream(const uint8_t *buf, size_t len)
{
	uint8_t h[MANIFEST_HASH_BYTES];
	struct fig t0 = now();

	crypto_generichash(h, sizeof(h), buf, len, NULL, 0);
	return since(t0);
}

/* build - one manifest_build(), checked against the memory hashes;
 * false (message printed) on failure. */
static bool build(struct fig *best, int fd, unsigned threads, enum manifest_read rd, const uint8_t *want,
		  size_t nblocks)
{
	static const uint8_t owner[MANIFEST_PEER_ID_BYTES];
	const struct manifest_build_params p = { MANIFEST_BLOCK_BYTES, threads, rd };
	struct manifest *m;
	struct manifest_block b;
	struct fig t0 = now();
	int err = manifest_build(&m, fd, owner, &p);

	keep_best(best, since(t0));
	if (err) {
		fprintf(stderr, "bench_manifest: manifest_build: %s\n", bfs_strerror(err));
		return false;
	}
	for (uint32_t i = 0; i < nblocks; i++) {
		manifest_block(m, i, &b);
		if (memcmp(b.hash, want + (size_t)i * MANIFEST_HASH_BYTES, MANIFEST_HASH_BYTES) != 0) {
			fprintf(stderr, "bench_manifest: block %u hash differs from memory\n", i);
			manifest_free(m);
			return false;
		}
	}
	manifest_free(m);
	return true;
}

static void row(const char *what, size_t bytes, struct fig f)
{
	printf("  %-36s %8.1f MB/s %8.1f MB/cpu-s  (%.3f s, %.3f cpu-s)\n", what, mbps(bytes, f.wall),
	       mbps(bytes, f.cpu), f.wall, f.cpu);
}

static void print_load(const char *when)
{
	double la[3];

	if (getloadavg(la, 3) == 3)
		printf("load average %s: %.2f %.2f %.2f\n", when, la[0], la[1], la[2]);
}

int main(int argc, char **argv)
{
	unsigned long mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
	unsigned threads = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 0;
	const char *tmp = getenv("TMPDIR");
	char dir[4096], path[4200];
	uint8_t *buf = NULL, *hashes = NULL;
	struct fig blocks = { 0, 0 }, stream = { 0, 0 }, pread2 = { 0, 0 }, pread1 = { 0, 0 };
	struct fig mmap2 = { 0, 0 }, cold = { 0, 0 };
	double best_mem, ratio;
	size_t len, nblocks;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int fd = -1, ret = 1;
	bool made_dir = false;

	if (argc > 3 || mib == 0 || mib > 64 * 1024) {
		fprintf(stderr, "usage: bench_manifest [MiB (1..65536) [threads]]\n");
		return 2;
	}
	if (sodium_init() < 0)
		return 1;
	len = (size_t)mib * MIB;
	nblocks = (len + MANIFEST_BLOCK_BYTES - 1) / MANIFEST_BLOCK_BYTES;
	buf = malloc(len);
	hashes = malloc(nblocks * MANIFEST_HASH_BYTES);
	if (!buf || !hashes) {
		fprintf(stderr, "bench_manifest: out of memory for %lu MiB\n", mib);
		goto out;
	}
	randombytes_buf_deterministic(buf, len, (const uint8_t[randombytes_SEEDBYTES]){ 1 });

	snprintf(dir, sizeof(dir), "%s/bench_manifest.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		fprintf(stderr, "bench_manifest: mkdtemp %s: %s\n", dir, strerror(errno));
		goto out;
	}
	made_dir = true;
	snprintf(path, sizeof(path), "%s/data", dir);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, buf, len) < 0) {
		fprintf(stderr, "bench_manifest: writing %s: %s\n", path, strerror(errno));
		goto out;
	}
	printf("bench_manifest: %lu MiB file in %s, block %u KiB, %ld CPUs, threads %u%s\n", mib, dir,
	       MANIFEST_BLOCK_BYTES / 1024, cpus, threads, threads ? "" : " (= CPUs)");

	/* The hashes every build is checked against; also warms the buffer. */
	mem_blocks(buf, len, hashes);
	print_load("before");

	/* Cold-ish: the file's pages written back and dropped from the cache. */
	fsync(fd);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	if (!build(&cold, fd, threads, MANIFEST_READ_PREAD, hashes, nblocks))
		goto out;

	for (int r = 0; r < ROUNDS; r++) {
		keep_best(&blocks, mem_blocks(buf, len, hashes));
		if (!build(&pread2, fd, threads, MANIFEST_READ_PREAD, hashes, nblocks))
			goto out;
		keep_best(&stream, mem_stream(buf, len));
		if (!build(&mmap2, fd, threads, MANIFEST_READ_MMAP, hashes, nblocks))
			goto out;
		if (!build(&pread1, fd, 1, MANIFEST_READ_PREAD, hashes, nblocks))
			goto out;
	}

	printf("memory, 1 thread (best of %d):\n", ROUNDS);
	row("BLAKE2b-256 per 256 KiB block", len, blocks);
	row("BLAKE2b-256 one stream", len, stream);
	printf("file, manifest_build (warm: best of %d):\n", ROUNDS);
	row("pread, cold-ish first run", len, cold);
	row("pread, default threads", len, pread2);
	row("pread, 1 thread", len, pread1);
	row("mmap windows, default threads", len, mmap2);
	print_load("after");
	best_mem = blocks.wall < stream.wall ? blocks.wall : stream.wall;
	ratio = best_mem / pread2.wall;
	printf("ratio: manifest_build (pread, default threads) / memory BLAKE2b = %.2f (target >= 0.80): %s\n",
	       ratio, ratio >= 0.8 ? "met" : "NOT met");
	printf("ratio: 1 thread pread / memory = %.2f, mmap / memory = %.2f\n", best_mem / pread1.wall,
	       best_mem / mmap2.wall);
	printf("cpu: build (pread, default threads) costs %.2fx the cpu of memory BLAKE2b per block\n",
	       pread2.cpu / blocks.cpu);
	ret = 0;
out:
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
	if (made_dir)
		rmdir(dir);
	free(buf);
	free(hashes);
	return ret;
}
