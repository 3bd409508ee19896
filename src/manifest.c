/*
 * manifest.c - blocks, block hashes and signed manifests (see manifest.h).
 *
 * A struct manifest keeps one buffer laid out as the signed message and the
 * encoding back to back:
 *
 *   [ MANIFEST_SIG_CONTEXT | header | block hashes | signature ]
 *     \_ signed message: everything before the signature _/
 *                         \_ encoding: all but the context ___/
 *
 * so signing, verifying, encoding and the manifest hash all work on it in
 * place, and manifest_build()'s workers write each block hash straight into
 * its slot.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "buddyfs/buf.h"
#include "buddyfs/err.h"
#include "buddyfs/manifest.h"

_Static_assert(MANIFEST_SIG_BYTES == crypto_sign_BYTES, "Ed25519 signature size");
_Static_assert(sizeof(MANIFEST_SIG_CONTEXT) == MANIFEST_SIG_CONTEXT_BYTES, "context and its NUL");
_Static_assert(MANIFEST_HEADER_BYTES == 1 + MANIFEST_PEER_ID_BYTES + 8 + 4 + 4, "header layout");

/* Work is handed out in spans of blocks of about this many bytes. */
#define SPAN_BYTES (4u * 1024 * 1024)
/* Below this many blocks a file is hashed on the calling thread alone. */
#define THREADED_MIN_BLOCKS 8u

struct manifest {
	uint8_t *buf;         /* context, header, hashes, signature */
	size_t len;           /* all of buf */
	uint64_t file_size;
	uint32_t block_bytes;
	uint32_t count;
	bool is_signed;
	uint8_t hash[MANIFEST_HASH_BYTES]; /* valid when is_signed */
};

static uint8_t *hash_slot(const struct manifest *m, uint32_t i)
{
	return m->buf + MANIFEST_SIG_CONTEXT_BYTES + MANIFEST_HEADER_BYTES + (size_t)i * MANIFEST_HASH_BYTES;
}

static uint8_t *sig_slot(const struct manifest *m)
{
	return m->buf + m->len - MANIFEST_SIG_BYTES;
}

/* block_len - the length of block @i (< count): the block size, less for the last. */
static uint32_t block_len(const struct manifest *m, uint32_t i)
{
	uint64_t left = m->file_size - (uint64_t)i * m->block_bytes;

	return left < m->block_bytes ? (uint32_t)left : m->block_bytes;
}

static bool block_bytes_ok(uint32_t bs)
{
	return bs >= MANIFEST_BLOCK_MIN_BYTES && bs <= MANIFEST_BLOCK_MAX_BYTES && (bs & (bs - 1)) == 0;
}

/* blocks_for - ceil(@size / @bs) without overflow (@bs > 0). */
static uint64_t blocks_for(uint64_t size, uint32_t bs)
{
	return size ? (size - 1) / bs + 1 : 0;
}

/*
 * manifest_new - a manifest with its context and header written, block
 * hashes and signature still to fill in.  @count is at most
 * MANIFEST_MAX_BLOCKS, so the sizes below cannot overflow.
 */
static struct manifest *manifest_new(const uint8_t owner[static MANIFEST_PEER_ID_BYTES], uint64_t size,
				     uint32_t bs, uint32_t count)
{
	struct manifest *m = calloc(1, sizeof(*m));
	struct buf_writer w;
	uint8_t *rest;

	if (!m)
		return NULL;
	m->len = MANIFEST_SIG_CONTEXT_BYTES + MANIFEST_ENCODED_BYTES(count);
	m->buf = malloc(m->len);
	if (!m->buf) {
		free(m);
		return NULL;
	}
	m->file_size = size;
	m->block_bytes = bs;
	m->count = count;
	buf_writer_init(&w, m->buf, m->len);
	buf_put_bytes(&w, MANIFEST_SIG_CONTEXT, MANIFEST_SIG_CONTEXT_BYTES);
	buf_put_u8(&w, MANIFEST_VERSION);
	buf_put_bytes(&w, owner, MANIFEST_PEER_ID_BYTES);
	buf_put_u64be(&w, size);
	buf_put_u32be(&w, bs);
	buf_put_u32be(&w, count);
	/* Hashes and signature: zero until filled in. */
	if (buf_put_reserve(&w, (size_t)count * MANIFEST_HASH_BYTES + MANIFEST_SIG_BYTES, &rest))
		memset(rest, 0, (size_t)count * MANIFEST_HASH_BYTES + MANIFEST_SIG_BYTES);
	/* The buffer was sized for exactly this; anything else is a bug. */
	if (!buf_writer_ok(&w) || buf_writer_len(&w) != m->len)
		abort();
	return m;
}

void manifest_free(struct manifest *m)
{
	if (!m)
		return;
	free(m->buf);
	free(m);
}

void manifest_block_hash(uint8_t out[static MANIFEST_HASH_BYTES], const void *data, size_t len)
{
	crypto_generichash(out, MANIFEST_HASH_BYTES, data, len, NULL, 0);
}

/* ---- building: the work queue and its workers ---- */

struct job {
	struct manifest *m;
	int fd;
	enum manifest_read read;
	uint32_t span;         /* blocks per task */
	uint32_t ntasks;
	size_t page;           /* mmap offset alignment */
	atomic_uint next;      /* the work queue: next task to take */
	atomic_int err;        /* the first error, 0 if none */
};

/* read_full - pread exactly @len bytes at @off; -EAGAIN on early EOF. */
static int read_full(int fd, uint8_t *p, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EAGAIN; /* the file shrank under us */
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int hash_span_pread(struct job *j, uint8_t *buf, uint32_t first, uint32_t n)
{
	const struct manifest *m = j->m;

	for (uint32_t i = first; i < first + n; i++) {
		uint32_t len = block_len(m, i);
		int err = read_full(j->fd, buf, len, (uint64_t)i * m->block_bytes);

		if (err)
			return err;
		manifest_block_hash(hash_slot(m, i), buf, len);
	}
	return 0;
}

static int hash_span_mmap(struct job *j, uint32_t first, uint32_t n)
{
	const struct manifest *m = j->m;
	uint64_t start = (uint64_t)first * m->block_bytes;
	uint64_t end = (uint64_t)(first + n) * m->block_bytes;
	uint64_t map_off = start & ~((uint64_t)j->page - 1);
	size_t map_len, delta = (size_t)(start - map_off);
	uint8_t *map;

	if (end > m->file_size)
		end = m->file_size;
	map_len = delta + (size_t)(end - start);
	map = mmap(NULL, map_len, PROT_READ, MAP_SHARED | MAP_POPULATE, j->fd, (off_t)map_off);
	if (map == MAP_FAILED)
		return -errno;
	madvise(map, map_len, MADV_SEQUENTIAL);
	for (uint32_t i = 0; i < n; i++)
		manifest_block_hash(hash_slot(m, first + i), map + delta + (size_t)i * m->block_bytes,
				    block_len(m, first + i));
	munmap(map, map_len);
	return 0;
}

static void *worker(void *arg)
{
	struct job *j = arg;
	uint8_t *buf = NULL;
	int err = 0;

	if (j->read == MANIFEST_READ_PREAD) {
		buf = malloc(j->m->block_bytes);
		if (!buf)
			err = -ENOMEM;
	}
	while (!err && atomic_load(&j->err) == 0) {
		unsigned t = atomic_fetch_add(&j->next, 1);
		uint32_t first, n;

		if (t >= j->ntasks)
			break;
		first = t * j->span;
		n = j->m->count - first < j->span ? j->m->count - first : j->span;
		if (j->read == MANIFEST_READ_PREAD)
			err = hash_span_pread(j, buf, first, n);
		else
			err = hash_span_mmap(j, first, n);
	}
	if (err) {
		int expected = 0;

		atomic_compare_exchange_strong(&j->err, &expected, err);
	}
	free(buf);
	return NULL;
}

static unsigned pick_threads(unsigned asked, uint32_t count)
{
	long cpus;
	unsigned t = asked;

	if (t == 0) {
		cpus = sysconf(_SC_NPROCESSORS_ONLN);
		t = cpus > 0 ? (unsigned)cpus : 1;
	}
	if (t > MANIFEST_THREADS_MAX)
		t = MANIFEST_THREADS_MAX;
	if (count < THREADED_MIN_BLOCKS)
		t = 1;
	else if (t > count / (THREADED_MIN_BLOCKS / 2))
		t = count / (THREADED_MIN_BLOCKS / 2);
	return t ? t : 1;
}

/* run_job - the caller and up to @threads - 1 helpers drain the queue. */
static int run_job(struct job *j, unsigned threads)
{
	pthread_t tid[MANIFEST_THREADS_MAX];
	unsigned started = 0;
	sigset_t all, old;

	if (threads > 1) {
		/* Helpers start with every signal blocked; the caller's mask is restored. */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		while (started < threads - 1 && pthread_create(&tid[started], NULL, worker, j) == 0)
			started++;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	worker(j);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	return atomic_load(&j->err);
}

static bool same_time(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/*
 * unchanged - did the file keep its size and times while it was read?  The
 * times catch a same-size rewrite (a write moves mtime and ctime), as far
 * as the file system's timestamp granularity lets them.
 */
static bool unchanged(const struct stat *before, const struct stat *after)
{
	return before->st_size == after->st_size && same_time(&before->st_mtim, &after->st_mtim) &&
	       same_time(&before->st_ctim, &after->st_ctim);
}

int manifest_build(struct manifest **out, int fd, const uint8_t owner[static MANIFEST_PEER_ID_BYTES],
		   const struct manifest_build_params *params)
{
	struct manifest_build_params p = { 0 };
	struct manifest *m = NULL;
	struct job j;
	struct stat st, st_end;
	uint64_t count, span;
	long page;
	int err;

	*out = NULL;
	if (params)
		p = *params;
	if (!p.block_bytes)
		p.block_bytes = MANIFEST_BLOCK_BYTES;
	if (!block_bytes_ok(p.block_bytes) || (p.read != MANIFEST_READ_PREAD && p.read != MANIFEST_READ_MMAP))
		return -EINVAL;
	if (sodium_init() < 0)
		return BFS_ECRYPTO;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_size < 0)
		return -EINVAL;
	count = blocks_for((uint64_t)st.st_size, p.block_bytes);
	if (count > MANIFEST_MAX_BLOCKS)
		return BFS_ETOOBIG;
	m = manifest_new(owner, (uint64_t)st.st_size, p.block_bytes, (uint32_t)count);
	if (!m)
		return -ENOMEM;
	if (count == 0)
		goto check;

	page = sysconf(_SC_PAGESIZE);
	span = SPAN_BYTES / p.block_bytes;
	if (span == 0)
		span = 1;
	j.m = m;
	j.fd = fd;
	j.read = p.read;
	j.page = page > 0 ? (size_t)page : 4096;
	j.span = (uint32_t)span;
	j.ntasks = (uint32_t)((count + span - 1) / span);
	atomic_init(&j.next, 0);
	atomic_init(&j.err, 0);
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	err = run_job(&j, pick_threads(p.threads, (uint32_t)count));
	if (err)
		goto fail;
check:
	/* A file that changed while it was read has no one manifest. */
	if (fstat(fd, &st_end) < 0) {
		err = -errno;
		goto fail;
	}
	if (!unchanged(&st, &st_end)) {
		err = -EAGAIN;
		goto fail;
	}
	*out = m;
	return 0;
fail:
	manifest_free(m);
	return err;
}

/* ---- signing, encoding, decoding ---- */

int manifest_sign(struct manifest *m, const uint8_t sk[static crypto_sign_SECRETKEYBYTES])
{
	m->is_signed = false;
	if (crypto_sign_detached(sig_slot(m), NULL, m->buf, m->len - MANIFEST_SIG_BYTES, sk) != 0)
		return BFS_ECRYPTO;
	crypto_generichash(m->hash, sizeof(m->hash), m->buf + MANIFEST_SIG_CONTEXT_BYTES,
			   m->len - MANIFEST_SIG_CONTEXT_BYTES, NULL, 0);
	m->is_signed = true;
	return 0;
}

bool manifest_is_signed(const struct manifest *m)
{
	return m->is_signed;
}

size_t manifest_encoded_len(const struct manifest *m)
{
	return m->len - MANIFEST_SIG_CONTEXT_BYTES;
}

int manifest_bytes(const struct manifest *m, const uint8_t **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	if (!m->is_signed)
		return -EINVAL;
	*out = m->buf + MANIFEST_SIG_CONTEXT_BYTES;
	*len = m->len - MANIFEST_SIG_CONTEXT_BYTES;
	return 0;
}

long manifest_encode(uint8_t *out, size_t cap, const struct manifest *m)
{
	struct buf_writer w;
	const uint8_t *enc;
	size_t len;

	if (manifest_bytes(m, &enc, &len) < 0)
		return -EINVAL;
	buf_writer_init(&w, out, cap);
	if (!buf_put_bytes(&w, enc, len))
		return -ENOSPC;
	return (long)buf_writer_len(&w);
}

int manifest_decode(struct manifest **out, const uint8_t *in, size_t len)
{
	struct buf_reader r;
	struct manifest *m;
	const uint8_t *owner, *hashes, *sig;
	uint8_t version;
	uint64_t size;
	uint32_t bs, count;

	*out = NULL;
	buf_reader_init(&r, in, len);
	if (!buf_get_u8(&r, &version))
		return BFS_EMALFORMED;
	if (version != MANIFEST_VERSION)
		return BFS_EVERSION;
	buf_get_ref(&r, MANIFEST_PEER_ID_BYTES, &owner);
	buf_get_u64be(&r, &size);
	buf_get_u32be(&r, &bs);
	buf_get_u32be(&r, &count);
	if (!buf_reader_ok(&r) || !block_bytes_ok(bs))
		return BFS_EMALFORMED;
	if (count > MANIFEST_MAX_BLOCKS)
		return BFS_ETOOBIG;
	if (blocks_for(size, bs) != count)
		return BFS_EMALFORMED;
	/* count <= 2^22, so count * 32 cannot overflow. */
	buf_get_ref(&r, (size_t)count * MANIFEST_HASH_BYTES, &hashes);
	buf_get_ref(&r, MANIFEST_SIG_BYTES, &sig);
	if (!buf_reader_done(&r))
		return BFS_EMALFORMED;

	m = manifest_new(owner, size, bs, count);
	if (!m)
		return -ENOMEM;
	if (count)
		memcpy(hash_slot(m, 0), hashes, (size_t)count * MANIFEST_HASH_BYTES);
	memcpy(sig_slot(m), sig, MANIFEST_SIG_BYTES);
	crypto_generichash(m->hash, sizeof(m->hash), in, len, NULL, 0);
	m->is_signed = true;
	*out = m;
	return 0;
}

int manifest_verify(const struct manifest *m, const uint8_t pk[static crypto_sign_PUBLICKEYBYTES])
{
	if (!m->is_signed)
		return BFS_EBADSIG;
	if (crypto_sign_verify_detached(sig_slot(m), m->buf, m->len - MANIFEST_SIG_BYTES, pk) != 0)
		return BFS_EBADSIG;
	return 0;
}

int manifest_hash(const struct manifest *m, uint8_t out[static MANIFEST_HASH_BYTES])
{
	if (!m->is_signed)
		return -EINVAL;
	memcpy(out, m->hash, MANIFEST_HASH_BYTES);
	return 0;
}

/* ---- accessors and block checks ---- */

const uint8_t *manifest_owner(const struct manifest *m)
{
	return m->buf + MANIFEST_SIG_CONTEXT_BYTES + 1;
}

uint64_t manifest_file_size(const struct manifest *m)
{
	return m->file_size;
}

uint32_t manifest_block_bytes(const struct manifest *m)
{
	return m->block_bytes;
}

uint32_t manifest_block_count(const struct manifest *m)
{
	return m->count;
}

int manifest_block(const struct manifest *m, uint32_t i, struct manifest_block *out)
{
	if (i >= m->count)
		return -ERANGE;
	out->hash = hash_slot(m, i);
	out->offset = (uint64_t)i * m->block_bytes;
	out->len = block_len(m, i);
	return 0;
}

int manifest_block_verify(const struct manifest *m, uint32_t i, const void *data, size_t len)
{
	struct manifest_block b;
	uint8_t h[MANIFEST_HASH_BYTES];
	int err = manifest_block(m, i, &b);

	if (err)
		return err;
	if (len != b.len)
		return BFS_EBADHASH;
	manifest_block_hash(h, data, len);
	return crypto_verify_32(h, b.hash) == 0 ? 0 : BFS_EBADHASH;
}
