/*
 * fs_remote.c - reading files whose object is not in this home (a buddy's
 * versions): the signed manifest from the store, checked against the
 * owner's pinned certificate, and the bytes from the store's blocks.
 * Fetching the blocks that are not here is fs_fetch.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "buddyfs/buf.h"
#include "buddyfs/err.h"
#include "buddyfs/identity.h"
#include "buddyfs/log.h"
#include "buddyfs/manifest.h"
#include "buddyfs/store.h"
#include "fs_internal.h"

int fs_remote_manifest(struct fs *fs, const struct store_entry *e, struct manifest **out)
{
	uint8_t pk[IDENTITY_PUBLIC_KEY_BYTES], hash[MANIFEST_HASH_BYTES];
	struct store_peer *p = NULL;
	struct manifest *m = NULL;
	uint8_t *bytes = NULL;
	size_t len;
	int rc;

	*out = NULL;
	rc = store_manifest_get(fs->store, NULL, e->manifest, &bytes, &len);
	if (rc == 0)
		rc = manifest_decode(&m, bytes, len);
	free(bytes);
	if (rc == 0)
		rc = manifest_hash(m, hash);
	if (rc == 0 && (sodium_memcmp(hash, e->manifest, sizeof(hash)) != 0 ||
			sodium_memcmp(manifest_owner(m), e->owner, STORE_PEER_ID_BYTES) != 0))
		rc = BFS_EBADHASH;
	if (rc)
		goto out;
	if (sodium_memcmp(e->owner, fs->id->peer_id, STORE_PEER_ID_BYTES) == 0) {
		memcpy(pk, fs->id->public_key, sizeof(pk));
	} else {
		p = malloc(sizeof(*p));
		rc = p ? store_peer_get(fs->store, e->owner, p) : -ENOMEM;
		if (rc == 0)
			rc = identity_cert_parse(pk, p->cert, p->cert_len);
		if (rc)
			goto out;
	}
	rc = manifest_verify(m, pk);
out:
	free(p);
	if (rc == -ENOMEM)
		return rc;
	if (rc) {
		log_warn("the manifest of %s does not check out: %s", e->path, bfs_strerror(rc));
		manifest_free(m);
		return -EIO;
	}
	*out = m;
	return 0;
}

int fs_remote_block(struct fs *fs, const struct manifest *m, uint32_t i, uint8_t *dst, size_t cap)
{
	struct manifest_block mb;
	struct store_block b;
	char path[PATH_MAX];
	int fd, rc;

	rc = manifest_block(m, i, &mb);
	if (rc == 0 && cap < mb.len)
		rc = -EIO;
	if (rc == 0)
		rc = store_block_get(fs->store, NULL, mb.hash, &b, dst, mb.len);
	if (rc == -ENOENT)
		return rc;
	if (rc == 0 && b.length != mb.len)
		rc = BFS_EBADHASH;
	if (rc == 0 && b.kind == STORE_BLOCK_LOCAL) {
		snprintf(path, sizeof(path), "%s/%s/%s", fs->home, FS_OBJECTS_DIR, b.object);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || pread(fd, dst, mb.len, (off_t)b.offset) != (ssize_t)mb.len)
			rc = -EIO;
		if (fd >= 0)
			close(fd);
	}
	if (rc)
		log_warn("block %u of a file cannot be read from the store: %s", i, bfs_strerror(rc));
	return rc ? -EIO : 0;
}

long fs_remote_pread(struct fs *fs, const struct manifest *m, uint8_t *buf, size_t size, uint64_t off)
{
	uint64_t fsize = manifest_file_size(m), bsize = manifest_block_bytes(m);
	uint8_t *blk;
	size_t done = 0;

	if (off >= fsize || size == 0)
		return 0;
	if (size > fsize - off)
		size = (size_t)(fsize - off);
	blk = malloc(bsize);
	if (!blk)
		return -ENOMEM;
	while (done < size) {
		uint64_t pos = off + done;
		uint32_t i = (uint32_t)(pos / bsize);
		size_t in = (size_t)(pos % bsize), n;
		int rc = fs_remote_block(fs, m, i, blk, bsize);

		if (rc) {
			free(blk);
			return -EIO;
		}
		n = bsize - in;
		if (n > size - done)
			n = size - done;
		memcpy(buf + done, blk + in, n);
		done += n;
	}
	free(blk);
	return (long)done;
}
