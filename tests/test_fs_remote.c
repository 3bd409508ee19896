/*
 * test_fs_remote.c - a real mount served in-process: a buddy's file whose
 * blocks are in the store's cache reads back byte for byte; a file with a
 * missing block fails with EIO, and so does one whose cache file is gone
 * (the store's cache files: not cached); a manifest not signed by its owner is
 * refused; a buddy going offline leaves the root.  The loop runs in a
 * helper thread (the only one touching the fs) while the test thread uses
 * the mount; a pipe carries commands to the loop.  Needs root and
 * /dev/fuse (skipped otherwise).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>
#include <sodium.h>

#include "buddyfs/fs.h"
#include "buddyfs/identity.h"
#include "buddyfs/loop.h"
#include "buddyfs/manifest.h"
#include "buddyfs/store.h"
#include "fs_mount.h"
#include "t.h"

#define FILE_BYTES (600 * 1024 + 123) /* three blocks, the last one short */

struct env {
	struct tmount m;
	char src[64];
	uint8_t *data;
};

static struct env E;

enum { CMD_STOP = 1, CMD_BOB_OFFLINE = 2 };

static void on_cmd(struct loop *loop, struct loop_fd *h, int fd, uint32_t events, void *ctx)
{
	uint8_t c;

	(void)h;
	(void)events;
	(void)ctx;
	if (read(fd, &c, 1) != 1)
		return;
	if (c == CMD_STOP)
		loop_stop(loop);
	else if (c == CMD_BOB_OFFLINE)
		fs_buddy_set_online(E.m.fs, E.m.bob->peer_id, false);
}

/* send_cmd - ask the loop thread for @c and give it a moment to run it. */
static void send_cmd(uint8_t c)
{
	if (write(E.m.cmd[1], &c, 1) != 1)
		abort();
	usleep(100 * 1000);
}

/*
 * put_file - the entry @name of bob's folder, owned by bob, signed with
 * @signer: E.data with every byte xor @salt (distinct files, distinct
 * blocks); its blocks cached, all or all but block 1.
 */
static int put_file(const char *name, const struct identity *signer, bool skip_middle, uint8_t salt)
{
	struct manifest *m = NULL;
	struct store_entry e;
	const uint8_t *bytes;
	uint8_t *data;
	size_t len;
	int fd, rc;

	data = malloc(FILE_BYTES);
	if (!data)
		return -ENOMEM;
	for (size_t i = 0; i < FILE_BYTES; i++)
		data[i] = E.data[i] ^ salt;
	fd = open(E.src, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, data, FILE_BYTES) != FILE_BYTES) {
		free(data);
		return -EIO;
	}
	rc = manifest_build(&m, fd, E.m.bob->peer_id, NULL);
	close(fd);
	if (rc == 0)
		rc = manifest_sign(m, signer->secret_key);
	memset(&e, 0, sizeof(e));
	if (rc == 0)
		rc = manifest_hash(m, e.manifest);
	if (rc == 0)
		rc = manifest_bytes(m, &bytes, &len);
	if (rc == 0)
		rc = store_manifest_put(E.m.s, NULL, e.manifest, bytes, len);
	for (uint32_t i = 0; rc == 0 && i < manifest_block_count(m); i++) {
		struct manifest_block b;

		rc = manifest_block(m, i, &b);
		if (rc == 0 && !(skip_middle && i == 1))
			rc = store_block_cache_put(E.m.s, NULL, b.hash, data + b.offset, b.len);
	}
	free(data);
	memcpy(e.buddy, E.m.bob->peer_id, STORE_PEER_ID_BYTES);
	snprintf(e.path, sizeof(e.path), "%s", name);
	e.type = STORE_ENTRY_FILE;
	e.mode = 0644;
	e.size = FILE_BYTES;
	e.mtime_ns = 1000000000;
	memcpy(e.owner, E.m.bob->peer_id, STORE_PEER_ID_BYTES);
	e.version = 1;
	if (rc == 0)
		rc = store_entry_put(E.m.s, NULL, &e);
	manifest_free(m);
	return rc;
}

/* slurp - read all of @path (at most FILE_BYTES + 1) into @buf; bytes or -errno. */
static long slurp(const char *path, uint8_t *buf)
{
	long got = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return -errno;
	while ((n = read(fd, buf + got, (size_t)(FILE_BYTES + 1 - got))) > 0)
		got += n;
	if (n < 0)
		got = -errno;
	close(fd);
	return got;
}

T_CASE(setup)
{
	struct fs_params fp = { 0 };

	T_CHECK_EQ_INT(tmount_open(&E.m, "test_fs_remote"), 0);
	snprintf(E.src, sizeof(E.src), "%s/src.bin", E.m.home);
	E.data = malloc(FILE_BYTES + 1);
	T_CHECK(E.data != NULL);
	randombytes_buf(E.data, FILE_BYTES);

	T_CHECK_EQ_INT(put_file("photo.bin", E.m.bob, false, 0), 0);
	T_CHECK_EQ_INT(put_file("holey.bin", E.m.bob, true, 0x5a), 0);
	T_CHECK_EQ_INT(put_file("forged.bin", E.m.me, false, 0xa5), 0); /* owner bob, signed by alice */
	T_CHECK_EQ_INT(put_file("lost.bin", E.m.bob, false, 0x33), 0);

	T_CHECK_EQ_INT(tmount_start(&E.m, &fp, on_cmd), 0);
}

T_CASE(root_lists_online_buddy)
{
	DIR *d;
	struct dirent *de;
	int n = 0, bob = 0;

	d = opendir(E.m.mnt);
	T_CHECK(d != NULL);
	while ((de = readdir(d)) != NULL) {
		n++;
		bob += strcmp(de->d_name, "bob") == 0;
	}
	closedir(d);
	T_CHECK_EQ_INT(n, 1);
	T_CHECK_EQ_INT(bob, 1);
}

T_CASE(buddy_file_reads_from_cached_blocks)
{
	char path[128];
	uint8_t *buf = malloc(FILE_BYTES + 1);
	struct stat st;
	long got;

	T_CHECK(buf != NULL);
	snprintf(path, sizeof(path), "%s/bob/photo.bin", E.m.mnt);
	T_CHECK_EQ_INT(stat(path, &st), 0);
	T_CHECK_EQ_INT(st.st_size, FILE_BYTES);
	got = slurp(path, buf);
	T_CHECK_EQ_INT(got, FILE_BYTES);
	T_CHECK_MEM(buf, E.data, FILE_BYTES);
	free(buf);
}

T_CASE(missing_block_is_eio)
{
	char path[128];
	uint8_t *buf = malloc(FILE_BYTES + 1);
	int fd;

	T_CHECK(buf != NULL);
	snprintf(path, sizeof(path), "%s/bob/holey.bin", E.m.mnt);
	fd = open(path, O_RDONLY);
	T_CHECK(fd >= 0);
	T_CHECK(pread(fd, buf, 4096, 0) == 4096); /* block 0 is here */
	T_CHECK(buf[0] == (E.data[0] ^ 0x5a) && buf[4095] == (E.data[4095] ^ 0x5a));
	errno = 0;
	T_CHECK(pread(fd, buf, 4096, 300 * 1024) < 0 && errno == EIO); /* block 1 is not */
	close(fd);
	free(buf);
}

T_CASE(lost_cache_file_is_eio)
{
	uint8_t *blk = malloc(MANIFEST_BLOCK_BYTES), h[32], buf[4096];
	char hex[65], path[256];
	int fd;

	T_CHECK(blk != NULL);
	if (!blk)
		return;
	for (size_t i = 0; i < MANIFEST_BLOCK_BYTES; i++)
		blk[i] = E.data[MANIFEST_BLOCK_BYTES + i] ^ 0x33;
	crypto_generichash(h, sizeof(h), blk, MANIFEST_BLOCK_BYTES, NULL, 0);
	free(blk);
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	snprintf(path, sizeof(path), "%s/%s/%.2s/%s", E.m.home, STORE_CACHE_DIR, hex, hex);
	T_CHECK_EQ_INT(unlink(path), 0); /* block 1's bytes are gone, its record stays */
	snprintf(path, sizeof(path), "%s/bob/lost.bin", E.m.mnt);
	fd = open(path, O_RDONLY);
	T_CHECK(fd >= 0);
	T_CHECK(pread(fd, buf, sizeof(buf), 0) == (ssize_t)sizeof(buf));
	T_CHECK(buf[0] == (E.data[0] ^ 0x33));
	errno = 0;
	T_CHECK(pread(fd, buf, sizeof(buf), 300 * 1024) < 0 && errno == EIO);
	if (fd >= 0)
		close(fd);
}

T_CASE(forged_manifest_refused)
{
	char path[128];
	uint8_t *buf = malloc(FILE_BYTES + 1);

	T_CHECK(buf != NULL);
	snprintf(path, sizeof(path), "%s/bob/forged.bin", E.m.mnt);
	T_CHECK_EQ_INT(slurp(path, buf), -EIO);
	free(buf);
}

T_CASE(copy_of_buddy_file_is_published)
{
	char src[128], dst[128];
	uint8_t *buf = malloc(FILE_BYTES + 1);
	int fd;

	T_CHECK(buf != NULL);
	/* appending to a buddy's file stages a copy of its blocks */
	snprintf(src, sizeof(src), "%s/bob/photo.bin", E.m.mnt);
	fd = open(src, O_WRONLY | O_APPEND);
	T_CHECK(fd >= 0);
	T_CHECK(write(fd, "!", 1) == 1);
	close(fd);
	usleep(100 * 1000); /* release is asynchronous */
	T_CHECK_EQ_INT(slurp(src, buf), FILE_BYTES + 1);
	T_CHECK_MEM(buf, E.data, FILE_BYTES);
	T_CHECK_EQ_INT(buf[FILE_BYTES], '!');
	snprintf(dst, sizeof(dst), "%s/bob/holey.bin", E.m.mnt);
	T_CHECK(open(dst, O_WRONLY) < 0 && errno == EIO); /* its blocks are not all here */
	free(buf);
}

T_CASE(offline_buddy_leaves_root)
{
	char path[128];
	struct stat st;

	send_cmd(CMD_BOB_OFFLINE);
	snprintf(path, sizeof(path), "%s/bob", E.m.mnt);
	T_CHECK(stat(path, &st) < 0 && errno == ENOENT);
}

T_CASE(teardown)
{
	send_cmd(CMD_STOP);
	pthread_join(E.m.th, NULL);
	free(E.data);
	T_CHECK(tmount_close(&E.m));
}

int main(void)
{
	if (!tmount_can_run("test_fs_remote"))
		return 0;
	T_RUN(setup);
	if (t_failed)
		return t_done();
	T_RUN(root_lists_online_buddy);
	T_RUN(buddy_file_reads_from_cached_blocks);
	T_RUN(missing_block_is_eio);
	T_RUN(lost_cache_file_is_eio);
	T_RUN(forged_manifest_refused);
	T_RUN(copy_of_buddy_file_is_published);
	T_RUN(offline_buddy_leaves_root);
	T_RUN(teardown);
	return t_done();
}
