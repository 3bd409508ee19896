/*
 * test_manifest_change.c - manifest_build() on a file that changes while it
 * is hashed: shrunk, grown, or rewritten in place with the same size.  A
 * manifest of such a file describes bytes no version of it ever held, so
 * each must end in -EAGAIN.
 *
 * The change is made at an exact moment by wrapping pread(): this binary's
 * definition takes the place of libc's for the library linked into it, and
 * calls the system call itself.  Its own binary, so the other manifest
 * tests keep the real pread().
 */
#include "t.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "buddyfs/manifest.h"

#define FILE_BYTES (64u * 4096)

enum change { NONE, SHRINK, GROW, REWRITE };

static enum change change_at_first_read;
static int reads;

ssize_t pread(int fd, void *buf, size_t count, off_t offset);

/* change_file - what another process would do to the file meanwhile. */
static void change_file(int fd)
{
	static uint8_t other[4096];
	struct timespec times[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_sec = 1000000000 } };

	switch (change_at_first_read) {
	case SHRINK:
		(void)!ftruncate(fd, FILE_BYTES / 2);
		break;
	case GROW:
		(void)!ftruncate(fd, FILE_BYTES * 2);
		break;
	case REWRITE:
		memset(other, 0x5a, sizeof(other));
		(void)!syscall(SYS_pwrite64, fd, other, sizeof(other), (off_t)(FILE_BYTES - sizeof(other)));
		/* An mtime that cannot equal the one read before (timestamps are
		 * coarse: a write within the same tick would not move it). */
		futimens(fd, times);
		break;
	case NONE:
		break;
	}
}

ssize_t pread(int fd, void *buf, size_t count, off_t offset)
{
	if (reads++ == 0)
		change_file(fd);
	return (ssize_t)syscall(SYS_pread64, fd, buf, count, offset);
}

static int make_file(char path[static 64])
{
	static uint8_t block[4096];
	int fd;

	snprintf(path, 64, "/tmp/bfs-test-manifest-change-XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	for (unsigned i = 0; i < FILE_BYTES / sizeof(block); i++) {
		memset(block, (int)i, sizeof(block));
		if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block)) {
			close(fd);
			return -1;
		}
	}
	return fd;
}

static int build_with(enum change c, unsigned threads)
{
	const struct manifest_build_params p = { .block_bytes = 4096, .threads = threads };
	uint8_t owner[MANIFEST_PEER_ID_BYTES] = { 1 };
	struct manifest *m = NULL;
	char path[64];
	int fd = make_file(path), rc;

	if (fd < 0)
		return -999;
	change_at_first_read = c;
	reads = 0;
	rc = manifest_build(&m, fd, owner, &p);
	if (rc == 0 && !m)
		rc = -998;
	if (rc != 0 && m)
		rc = -997;
	manifest_free(m);
	close(fd);
	unlink(path);
	return rc;
}

T_CASE(unchanged_file_builds)
{
	T_CHECK_EQ_INT(build_with(NONE, 1), 0);
	T_CHECK_EQ_INT(build_with(NONE, 4), 0);
	T_CHECK(reads >= 64);
}

T_CASE(shrunk_while_hashed_is_eagain)
{
	T_CHECK_EQ_INT(build_with(SHRINK, 1), -EAGAIN);
	T_CHECK_EQ_INT(build_with(SHRINK, 4), -EAGAIN);
}

T_CASE(grown_while_hashed_is_eagain)
{
	T_CHECK_EQ_INT(build_with(GROW, 1), -EAGAIN);
	T_CHECK_EQ_INT(build_with(GROW, 4), -EAGAIN);
}

T_CASE(same_size_rewrite_while_hashed_is_eagain)
{
	T_CHECK_EQ_INT(build_with(REWRITE, 1), -EAGAIN);
	T_CHECK_EQ_INT(build_with(REWRITE, 4), -EAGAIN);
}

int main(void)
{
	T_RUN(unchanged_file_builds);
	T_RUN(shrunk_while_hashed_is_eagain);
	T_RUN(grown_while_hashed_is_eagain);
	T_RUN(same_size_rewrite_while_hashed_is_eagain);
	return t_done();
}
