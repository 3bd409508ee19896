/*
 * xfer_fetch.c - cold fetch throughput of block transfers: an owner
 * process and a reader process, each with its own loop, store, home and
 * rtmfp instance (sodium profile) on 127.0.0.1.  The owner publishes a
 * file of random bytes (as fs_stage does); the reader asks for every block
 * at once (xfer keeps its window) and waits until all are checked and in
 * its store's cache.  No FUSE: this is what xfer + rtmfp + the store can
 * feed the file system.
 *
 *   build/bench/xfer_fetch [MIB] [ROUNDS] [DIR]  (default 256 MiB, 3 rounds, /tmp)
 *
 * DIR holds both homes (/dev/shm takes the disk out of the picture).
 *
 * Prints per round: MB/s, the reader's CPU seconds, its store commits and
 * their time, and the reader's peak RSS so far (VmHWM).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <netinet/in.h>

#include <sodium.h>

#include "buddyfs/buf.h"
#include "buddyfs/identity.h"
#include "buddyfs/log.h"
#include "buddyfs/loop.h"
#include "buddyfs/manifest.h"
#include "buddyfs/rtmfp.h"
#include "buddyfs/rtmfp_crypto.h"
#include "buddyfs/rtmfp_crypto_sodium.h"
#include "buddyfs/rtmfp_posix.h"
#include "buddyfs/store.h"
#include "buddyfs/udp.h"
#include "buddyfs/xfer.h"

struct node {
	char home[64];
	struct loop *loop;
	struct identity *id;
	struct rtmfp_crypto *crypto;
	struct rtmfp_posix *px;
	struct store *store;
	struct xfer *x;
	struct sockaddr_storage bound, far;
	uint32_t arrived, failed;
};

static void cb_recv_flow(void *ctx, struct rtmfp_recv *f, const uint8_t *meta, size_t len,
			 struct rtmfp_send *assoc)
{
	xfer_on_recv_flow(((struct node *)ctx)->x, f, meta, len, assoc);
}

static void cb_message(void *ctx, struct rtmfp_recv *f, const uint8_t *msg, size_t len)
{
	xfer_on_message(((struct node *)ctx)->x, f, msg, len);
}

static void cb_recv_closed(void *ctx, struct rtmfp_recv *f, int err)
{
	xfer_on_recv_closed(((struct node *)ctx)->x, f, err);
}

static void cb_writable(void *ctx, struct rtmfp_send *f)
{
	xfer_on_writable(((struct node *)ctx)->x, f);
}

static void cb_send_closed(void *ctx, struct rtmfp_send *f, int err)
{
	xfer_on_send_closed(((struct node *)ctx)->x, f, err);
}

static int open_flow(void *ctx, const uint8_t peer_id[static STORE_PEER_ID_BYTES], const uint8_t *meta,
		     size_t meta_len, struct rtmfp_send **out)
{
	struct node *n = ctx;
	uint8_t epd[RTMFP_CRYPTO_SODIUM_EPD_PEER_ID_BYTES];

	rtmfp_crypto_sodium_epd_peer_id(epd, peer_id);
	return rtmfp_open_flow(rtmfp_posix_core(n->px), out, epd, sizeof(epd), meta, meta_len, &n->far, 1,
			       rtmfp_posix_now());
}

static void kick(void *ctx)
{
	rtmfp_posix_kick(((struct node *)ctx)->px);
}

static void arrived(void *ctx, const uint8_t hash[static STORE_HASH_BYTES], int err)
{
	struct node *n = ctx;

	(void)hash;
	n->arrived++;
	if (err)
		n->failed++;
}

static int node_start(struct node *n, size_t map_bytes)
{
	const struct rtmfp_callbacks cb = {
		.recv_flow = cb_recv_flow,
		.message = cb_message,
		.recv_closed = cb_recv_closed,
		.writable = cb_writable,
		.send_closed = cb_send_closed,
	};
	struct xfer_params xp = { 0 };
	struct sockaddr_storage any;
	int rc;

	rc = loop_new(&n->loop);
	if (rc == 0)
		rc = store_open(&n->store, n->home, map_bytes);
	if (rc)
		return rc;
	store_block_cache_set_limit(n->store, map_bytes / 2);
	rc = rtmfp_crypto_sodium_new(&n->crypto, n->id->secret_key, NULL, 0, 0);
	if (rc)
		return rc;
	udp_addr_parse(&any, "127.0.0.1:0", 0);
	rc = rtmfp_posix_new(&n->px, n->loop, n->crypto, &cb, n, NULL, &any);
	if (rc)
		return rc;
	udp_local(rtmfp_posix_udp(n->px), &n->bound);
	xp.loop = n->loop;
	xp.store = n->store;
	xp.id = n->id;
	xp.home = n->home;
	xp.timeout_s = 30;
	xp.open_flow = open_flow;
	xp.arrived = arrived;
	xp.kick = kick;
	xp.ctx = n;
	return xfer_new(&n->x, &xp);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static bool full_write(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t k = write(fd, b, n);

		if (k <= 0)
			return false;
		b += k;
		n -= (size_t)k;
	}
	return true;
}

static bool full_read(int fd, void *p, size_t n)
{
	uint8_t *b = p;

	while (n) {
		ssize_t k = read(fd, b, n);

		if (k <= 0)
			return false;
		b += k;
		n -= (size_t)k;
	}
	return true;
}

/* publish - @mib MiB of random bytes as "bench.bin" for @reader; the manifest. */
static struct manifest *publish(struct node *n, const uint8_t reader[static 32], size_t mib)
{
	char tmp[PATH_MAX], obj[PATH_MAX], hex[65];
	uint8_t *chunk = malloc(1 << 20), hash[32];
	struct store_entry *e = calloc(1, sizeof(*e));
	struct manifest *m = NULL;
	struct store_txn *t;
	int fd, rc = -1;

	snprintf(tmp, sizeof(tmp), "%s/objects/.tmp", n->home);
	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0600);
	randombytes_buf(chunk, 1 << 20);
	for (size_t i = 0; fd >= 0 && chunk && i < mib; i++) {
		for (size_t k = 0; k < (1 << 20); k += 4096)
			buf_store64_be(chunk + k, i); /* every block different, cheaply */
		if (!full_write(fd, chunk, 1 << 20))
			goto out;
	}
	if (fd < 0 || !e || manifest_build(&m, fd, n->id->peer_id, NULL) || manifest_sign(m, n->id->secret_key) ||
	    manifest_hash(m, hash))
		goto out;
	buf_hex(hex, hash, 32);
	snprintf(obj, sizeof(obj), "%s/objects/%s", n->home, hex);
	if (rename(tmp, obj) || store_txn_begin(n->store, &t))
		goto out;
	{
		const uint8_t *bytes;
		size_t len;

		rc = manifest_bytes(m, &bytes, &len);
		if (rc == 0)
			rc = store_manifest_put(n->store, t, hash, bytes, len);
	}
	for (uint32_t i = 0; rc == 0 && i < manifest_block_count(m); i++) {
		struct manifest_block b;

		rc = manifest_block(m, i, &b);
		if (rc == 0)
			rc = store_block_local_put(n->store, t, b.hash, hex, b.offset, b.len);
	}
	memcpy(e->buddy, reader, 32);
	strcpy(e->path, "bench.bin");
	e->type = STORE_ENTRY_FILE;
	e->mode = 0644;
	e->size = manifest_file_size(m);
	memcpy(e->owner, n->id->peer_id, 32);
	e->version = 1;
	memcpy(e->manifest, hash, 32);
	if (rc == 0)
		rc = store_entry_put(n->store, t, e);
	if (rc == 0)
		rc = store_txn_commit(t);
	else
		store_txn_abort(t);
out:
	if (fd >= 0)
		close(fd);
	free(chunk);
	free(e);
	if (rc) {
		manifest_free(m);
		return NULL;
	}
	return m;
}

static double cpu_s(int who)
{
	struct rusage ru;

	getrusage(who, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

/* owner - the child: publish, report port and manifest, serve until the pipe closes. */
static int owner(struct node *n, const uint8_t reader[static 32], size_t mib, int up, int down)
{
	struct manifest *m;
	const uint8_t *bytes;
	size_t len;
	uint8_t hdr[12];
	char c;

	if (node_start(n, ((mib + 64) << 20) * 2) != 0)
		return 1;
	m = publish(n, reader, mib);
	if (!m || manifest_bytes(m, &bytes, &len))
		return 1;
	buf_store32_be(hdr, (uint32_t)((const struct sockaddr_in *)(void *)&n->bound)->sin_port);
	buf_store64_be(hdr + 4, len);
	if (!full_write(up, hdr, sizeof(hdr)) || !full_write(up, bytes, len))
		return 1;
	fcntl(down, F_SETFL, O_NONBLOCK);
	while (read(down, &c, 1) != 0)
		loop_run_once(n->loop, 50 * LOOP_NS_PER_MS);
	fprintf(stderr, "owner cpu %.2f s\n", cpu_s(RUSAGE_SELF));
	manifest_free(m);
	rtmfp_posix_free(n->px);
	xfer_free(n->x);
	store_close(n->store);
	loop_free(n->loop);
	return 0;
}

/* vmhwm_kib - this process's peak resident set (VmHWM), 0 when unknown. */
static unsigned long vmhwm_kib(void)
{
	char line[128];
	unsigned long kib = 0;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %lu kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 256;
	int rounds = argc > 2 ? atoi(argv[2]) : 3;
	struct node rd = { 0 }, ow = { 0 };
	int up[2], down[2], status;
	uint8_t hdr[12], *mbytes;
	struct manifest *m = NULL;
	char obj[PATH_MAX];
	pid_t pid;
	size_t mlen;

	log_set_level(LOG_LEVEL_WARN);
	const char *dir = argc > 3 ? argv[3] : "/tmp";

	if (strlen(dir) > sizeof(rd.home) - 20)
		return 1;
	snprintf(rd.home, sizeof(rd.home), "%s/xfer_bench_r.XXXXXX", dir);
	snprintf(ow.home, sizeof(ow.home), "%s/xfer_bench_o.XXXXXX", dir);
	if (!mkdtemp(rd.home) || !mkdtemp(ow.home) || identity_create(&rd.id, rd.home, "reader", "", 0) ||
	    identity_create(&ow.id, ow.home, "owner", "", 0))
		return 1;
	snprintf(obj, sizeof(obj), "%s/objects", ow.home);
	mkdir(obj, 0700);
	if (pipe(up) || pipe(down))
		return 1;
	pid = fork();
	if (pid == 0) {
		close(up[0]);
		close(down[1]);
		_exit(owner(&ow, rd.id->peer_id, mib, up[1], down[0]));
	}
	close(up[1]);
	close(down[0]);
	if (!full_read(up[0], hdr, sizeof(hdr)))
		return 1;
	mlen = buf_load64_be(hdr + 4);
	mbytes = malloc(mlen);
	if (!mbytes || !full_read(up[0], mbytes, mlen) || manifest_decode(&m, mbytes, mlen))
		return 1;
	udp_addr_parse(&rd.far, "127.0.0.1:1", 0);
	((struct sockaddr_in *)(void *)&rd.far)->sin_port = (in_port_t)buf_load32_be(hdr);
	if (node_start(&rd, ((mib + 64) << 20) * 2) != 0)
		return 1;
	printf("xfer_fetch: %zu MiB, %u blocks of %u KiB, window %llu MiB\n", mib, manifest_block_count(m),
	       manifest_block_bytes(m) / 1024, (unsigned long long)(XFER_WINDOW_BYTES >> 20));
	for (int r = 0; r < rounds; r++) {
		uint64_t t0 = loop_clock_ns(), t;
		double c0 = cpu_s(RUSAGE_SELF);
		struct xfer_totals tot0, tot;
		uint8_t mh[32];

		xfer_totals(rd.x, &tot0);
		manifest_hash(m, mh);
		rd.arrived = rd.failed = 0;
		for (uint32_t i = 0; i < manifest_block_count(m); i++) {
			struct xfer_want w = { .path = "bench.bin", .index = i };
			struct manifest_block b;

			manifest_block(m, i, &b);
			memcpy(w.owner, ow.id->peer_id, 32);
			memcpy(w.manifest, mh, 32);
			memcpy(w.hash, b.hash, 32);
			w.len = b.len;
			if (xfer_fetch(rd.x, &w))
				return 1;
		}
		while (rd.arrived < manifest_block_count(m))
			loop_run_once(rd.loop, 50 * LOOP_NS_PER_MS);
		t = loop_clock_ns() - t0;
		xfer_totals(rd.x, &tot);
		printf("round %d: %.1f MB/s (%.2f s), %u failed, reader cpu %.2f s, %llu store commits (%.2f s), "
		       "VmHWM %lu MiB\n",
		       r + 1, (double)manifest_file_size(m) / ((double)t / 1e3), (double)t / 1e9, rd.failed,
		       cpu_s(RUSAGE_SELF) - c0, (unsigned long long)(tot.store_commits - tot0.store_commits),
		       (double)(tot.store_ns - tot0.store_ns) / 1e9, vmhwm_kib() >> 10);
		fflush(stdout);
		/* forget the cached copies for the next round */
		for (uint32_t i = 0; i < manifest_block_count(m); i++) {
			struct manifest_block b;

			manifest_block(m, i, &b);
			store_block_del(rd.store, NULL, b.hash);
		}
	}
	close(down[1]);
	waitpid(pid, &status, 0);
	manifest_free(m);
	free(mbytes);
	rtmfp_posix_free(rd.px);
	xfer_free(rd.x);
	store_close(rd.store);
	loop_free(rd.loop);
	identity_free(rd.id);
	identity_free(ow.id);
	nftw(rd.home, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	nftw(ow.home, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}
