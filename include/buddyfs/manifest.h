/*
 * manifest.h - blocks, block hashes and signed file manifests (DESIGN.md §5).
 *
 * A file version is described by its manifest: the file is cut into
 * fixed-size blocks (MANIFEST_BLOCK_BYTES by default), each block is hashed
 * with BLAKE2b-256 (libsodium's crypto_generichash, 32-byte output, no key),
 * and the manifest lists the owner's peer id, the file size, the block size,
 * the block count and the block hashes, followed by the owner's Ed25519
 * signature.  The manifest hash - BLAKE2b-256 of the whole encoding,
 * signature included - is the version id of the file.
 *
 * Encoding, version 1 (every integer big-endian; docs/PROTOCOL.md has it as
 * a table):
 *
 *   off  size        field
 *   0    1           version (1)
 *   1    32          owner peer id
 *   33   8           file size in bytes
 *   41   4           block size in bytes (power of two, 4 KiB..16 MiB)
 *   45   4           block count n = ceil(file size / block size)
 *   49   32 * n      block hashes, block 0 first
 *   49+32n  64       Ed25519 signature
 *
 * The signature is crypto_sign_detached() over MANIFEST_SIG_CONTEXT (the
 * 19 ASCII bytes "buddyfs manifest v1" and one 0x00 byte, 20 bytes in all)
 * followed by the encoding's first 49 + 32n bytes (everything before the
 * signature).  The context keeps a manifest signature from ever being
 * valid for another kind of message signed with the same identity key.
 *
 * This module owns the format, its codec, hashing a file into a manifest
 * and checking blocks against it.  It leaves keys and peer ids to identity
 * (it takes raw keys), storing manifests to store, and fetching blocks to
 * sync.  Errors: 0, negative errno or BFS_E* (err.h).
 *
 * Threading: a struct manifest is plain data; concurrent readers are fine,
 * a writer (manifest_sign) needs exclusive access.  manifest_build() may
 * run worker threads of its own (see there); none outlive the call.
 */
#ifndef BUDDYFS_MANIFEST_H
#define BUDDYFS_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#define MANIFEST_VERSION 1
#define MANIFEST_BLOCK_BYTES (256u * 1024)     /* the default block size */
#define MANIFEST_BLOCK_MIN_BYTES 4096u
#define MANIFEST_BLOCK_MAX_BYTES (16u * 1024 * 1024)
/* The block count cap: 2^22 blocks, 1 TiB at the default block size. */
#define MANIFEST_MAX_BLOCKS (1u << 22)
#define MANIFEST_HASH_BYTES 32                 /* block hashes, manifest hash */
#define MANIFEST_PEER_ID_BYTES 32
#define MANIFEST_SIG_BYTES 64                  /* crypto_sign_BYTES */
#define MANIFEST_HEADER_BYTES 49               /* version .. block count */
#define MANIFEST_SIG_CONTEXT "buddyfs manifest v1"
#define MANIFEST_SIG_CONTEXT_BYTES 20          /* the string and its NUL */
/* The encoded size of a manifest of @n blocks. */
#define MANIFEST_ENCODED_BYTES(n) \
	((size_t)MANIFEST_HEADER_BYTES + (size_t)(n) * MANIFEST_HASH_BYTES + MANIFEST_SIG_BYTES)
/* The largest encoding (a file of MANIFEST_MAX_BLOCKS blocks): 128 MiB + 113. */
#define MANIFEST_ENCODED_MAX_BYTES MANIFEST_ENCODED_BYTES(MANIFEST_MAX_BLOCKS)
/* Worker threads manifest_build() uses at most. */
#define MANIFEST_THREADS_MAX 16

struct manifest;

/* How manifest_build() reads the file. */
enum manifest_read {
	/*
	 * pread() into one block-sized buffer per thread (the default).  Safe
	 * when another process truncates the file meanwhile: the build fails
	 * with -EAGAIN.
	 */
	MANIFEST_READ_PREAD = 0,
	/*
	 * mmap() of windows of a few MiB (MAP_POPULATE, MADV_SEQUENTIAL),
	 * hashed in place.  No copy, but a file truncated under the mapping
	 * kills the process with SIGBUS: only for files nobody else writes.
	 */
	MANIFEST_READ_MMAP = 1,
};

struct manifest_build_params {
	uint32_t block_bytes;  /* 0: MANIFEST_BLOCK_BYTES; else a power of two in MIN..MAX */
	unsigned threads;      /* 0: online CPUs (at most MANIFEST_THREADS_MAX); 1: no threads */
	enum manifest_read read;
};

/*
 * manifest_build - hash the regular file open at @fd into a new, unsigned
 * manifest owned by @owner.
 * @out:    the manifest, freed with manifest_free(); NULL on error.
 * @fd:     open for reading; read with pread()/mmap() at explicit offsets,
 *          so its file position is left alone.  posix_fadvise(SEQUENTIAL)
 *          is applied to it (a hint on the open file description).
 * @owner:  the owner's peer id (identity module), copied.
 * @params: NULL for the defaults.
 *
 * Streaming: memory use is the block hashes (32 bytes a block) plus one
 * block buffer or one mapped window per thread; a 10 GiB file never sits
 * in memory.
 *
 * Threads: with @params->threads != 1 and more than a few blocks, the
 * caller and up to threads - 1 helper threads hash blocks in parallel.
 * They share only the work queue (an atomic block counter) and the first
 * error; each writes only its own blocks' hash slots.  All are joined
 * before the call returns.  The file must not change while it is hashed:
 * a change of its size, mtime or ctime seen during or after the read is
 * reported as -EAGAIN (so a same-size rewrite is caught too, unless it
 * lands within one timestamp tick of the first fstat and leaves the
 * times as they were: hash a staged, private copy to be sure).
 *
 * Helper threads run with every signal blocked.  When a thread cannot be
 * started the others (at least the caller) do its share.
 *
 * Calls sodium_init() (idempotent), so the fastest BLAKE2b is used.
 * Errors: -EINVAL (not a regular file, bad params), BFS_ETOOBIG (more than
 * MANIFEST_MAX_BLOCKS blocks), -EAGAIN (the file changed), -ENOMEM,
 * -errno from fstat/pread/mmap, BFS_ECRYPTO (sodium_init failed).
 */
int manifest_build(struct manifest **out, int fd, const uint8_t owner[static MANIFEST_PEER_ID_BYTES],
		   const struct manifest_build_params *params);

/*
 * manifest_sign - sign @m with the owner's Ed25519 secret key (libsodium
 * layout: seed then public key, crypto_sign_SECRETKEYBYTES), replacing any
 * signature it had, and compute its manifest hash.  The caller is trusted
 * to pass the key that belongs to manifest_owner(m); this module does not
 * know how peer ids derive from keys.  @sk is only read.
 * Errors: BFS_ECRYPTO if libsodium fails.
 */
int manifest_sign(struct manifest *m, const uint8_t sk[static crypto_sign_SECRETKEYBYTES]);

/* manifest_is_signed - manifest_sign() or manifest_decode() made it. */
bool manifest_is_signed(const struct manifest *m);

/*
 * manifest_encoded_len - the number of bytes manifest_encode() writes:
 * MANIFEST_ENCODED_BYTES(manifest_block_count(m)).
 */
size_t manifest_encoded_len(const struct manifest *m);

/*
 * manifest_encode - write the canonical encoding of a signed @m to @out.
 * Returns the length written, -EINVAL if @m is not signed, or -ENOSPC when
 * @cap is below manifest_encoded_len(m).
 */
long manifest_encode(uint8_t *out, size_t cap, const struct manifest *m);

/*
 * manifest_bytes - borrow the canonical encoding of a signed @m without a
 * copy: *out lives until @m is signed again or freed.  -EINVAL if unsigned.
 */
int manifest_bytes(const struct manifest *m, const uint8_t **out, size_t *len);

/*
 * manifest_decode - parse an untrusted encoding into a new manifest.
 * Checks the layout, not the signature: call manifest_verify() with the
 * owner's key before trusting the contents.  Decoding is exact: the only
 * accepted encoding of a manifest is the one manifest_encode() writes.
 * @out: the manifest, freed with manifest_free(); NULL on error.
 * Errors: BFS_EVERSION (first byte is not MANIFEST_VERSION),
 * BFS_EMALFORMED (short, trailing bytes, block size not a power of two in
 * MIN..MAX, block count not ceil(file size / block size)), BFS_ETOOBIG
 * (block count over MANIFEST_MAX_BLOCKS), -ENOMEM.
 */
int manifest_decode(struct manifest **out, const uint8_t *in, size_t len);

/*
 * manifest_verify - check the signature of @m against the owner's Ed25519
 * public key @pk (the caller maps manifest_owner(m) to its key).
 * Errors: BFS_EBADSIG (wrong key, tampered contents, or not signed).
 */
int manifest_verify(const struct manifest *m, const uint8_t pk[static crypto_sign_PUBLICKEYBYTES])
	__attribute__((warn_unused_result));

/*
 * manifest_hash - the version id: BLAKE2b-256 of the encoding.
 * Errors: -EINVAL if @m is not signed (its encoding is not final).
 */
int manifest_hash(const struct manifest *m, uint8_t out[static MANIFEST_HASH_BYTES]);

/* Accessors; the owner pointer lives as long as @m. */
const uint8_t *manifest_owner(const struct manifest *m);
uint64_t manifest_file_size(const struct manifest *m);
uint32_t manifest_block_bytes(const struct manifest *m);
uint32_t manifest_block_count(const struct manifest *m);

/* Where block i is and what it must hash to. */
struct manifest_block {
	const uint8_t *hash; /* MANIFEST_HASH_BYTES, lives as long as the manifest */
	uint64_t offset;     /* i * block size */
	uint32_t len;        /* block size, less for the last block */
};

/* manifest_block - block @i of @m; -ERANGE if @i >= the block count. */
int manifest_block(const struct manifest *m, uint32_t i, struct manifest_block *out);

/*
 * manifest_block_verify - check that @data (@len bytes) is block @i of @m:
 * the length must match and the BLAKE2b-256 too (compared in constant time).
 * Errors: -ERANGE (no block @i), BFS_EBADHASH (length or content differs).
 */
int manifest_block_verify(const struct manifest *m, uint32_t i, const void *data, size_t len)
	__attribute__((warn_unused_result));

/* manifest_block_hash - the block hash of @len bytes: BLAKE2b-256, no key. */
void manifest_block_hash(uint8_t out[static MANIFEST_HASH_BYTES], const void *data, size_t len);

/* manifest_free - free @m (NULL is fine). */
void manifest_free(struct manifest *m);

#endif
