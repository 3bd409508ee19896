/*
 * test_manifest.c - block hashes, manifest building, the pinned encoding,
 * decoding of damaged input, signatures and block checks.
 *
 * The vectors below were computed independently of this code, with
 * Python's hashlib.blake2b(digest_size=32) and the cryptography package's
 * Ed25519 (seed 00 01 .. 1f), following the layout in manifest.h.
 *
 * Set BFS_TEST_BIG=1 to also hash a 5 GiB sparse file (offsets past 2^32;
 * a few seconds of CPU, so not in the default run).
 */
#include "t.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <sodium.h>

#include "buddyfs/buf.h"
#include "buddyfs/err.h"
#include "buddyfs/manifest.h"

#define KIB 1024u
#define MIB (1024u * 1024)

/* BLAKE2b-256 of "" and of "abc". */
static const char HASH_EMPTY[] = "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8";
static const char HASH_ABC[] = "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319";

/* The pattern file: 256 KiB + 1 bytes, byte i = i % 251; its two block hashes. */
#define PATTERN_BYTES (MANIFEST_BLOCK_BYTES + 1)
static const char PATTERN_BLOCK0[] = "cf154c47ef5ba3ba0e59ec362634617821a3bcad5681e962bb3d50f63fbc7d68";
static const char PATTERN_BLOCK1[] = "00d116515f37a4c0ac872096c8b7412c80693cc5cee2e99e83a7e760dc1ece91";

/* The key pair from seed 00 01 .. 1f, and the owner peer id 11 11 .. 11. */
static const char SEED_PK[] = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8";

/* The signed manifest of the pattern file, byte for byte, and its hash. */
static const char PATTERN_MANIFEST[] =
	"01"                                                               /* version */
	"1111111111111111111111111111111111111111111111111111111111111111" /* owner */
	"0000000000040001"                                                 /* size 262145 */
	"00040000"                                                         /* block size */
	"00000002"                                                         /* count */
	"cf154c47ef5ba3ba0e59ec362634617821a3bcad5681e962bb3d50f63fbc7d68"
	"00d116515f37a4c0ac872096c8b7412c80693cc5cee2e99e83a7e760dc1ece91"
	"e30980e3df249eb9143155b9e76cf99a486992a1b65e2bac3faf2355da32d7f7"  /* signature */
	"7b088c1dd4736e87f8b817564d71d386e249285e43b45c743fdc05a815098105";
static const char PATTERN_MANIFEST_HASH[] = "845a922ed8ef4f9ab1e53ce70c2ecd33f3d095eec1d064ddcb9772a49752a524";

/* The signed manifest of an empty file (same key and owner), and its hash. */
static const char EMPTY_MANIFEST[] =
	"01"
	"1111111111111111111111111111111111111111111111111111111111111111"
	"0000000000000000" "00040000" "00000000"
	"914772c43c05884797bf899e069cc6e9e122e4b528283397b7ee112817e8bf07"
	"8bf8f372e562c821183f0b99e58cab53d479e71ad04e86bca98452dd2c4df10a";
static const char EMPTY_MANIFEST_HASH[] = "fefeb43d0d6759d29b13d26b951cb116fe1d696052c39d1e4c6f4f4c5ea31caf";

static uint8_t owner[MANIFEST_PEER_ID_BYTES];
static uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];

static void keys_init(void)
{
	uint8_t seed[crypto_sign_SEEDBYTES];

	for (size_t i = 0; i < sizeof(seed); i++)
		seed[i] = (uint8_t)i;
	crypto_sign_seed_keypair(pk, sk, seed);
	memset(owner, 0x11, sizeof(owner));
}

/* tmp_file - an unlinked temporary file holding @len bytes of @data (or
 * @len bytes of hole when @data is NULL); -1 on failure. */
static int tmp_file(const void *data, size_t len)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/test_manifest.XXXXXX", dir && *dir ? dir : "/tmp");
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	unlink(path);
	if (data) {
		const uint8_t *p = data;
		size_t left = len;

		while (left) {
			ssize_t n = write(fd, p, left);

			if (n <= 0) {
				close(fd);
				return -1;
			}
			p += n;
			left -= (size_t)n;
		}
	} else if (ftruncate(fd, (off_t)len) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static uint8_t *pattern(size_t len)
{
	uint8_t *p = malloc(len ? len : 1);

	for (size_t i = 0; p && i < len; i++)
		p[i] = (uint8_t)(i % 251);
	return p;
}

/* hex_eq - @n bytes at @p spell @hex. */
static int hex_eq(const uint8_t *p, size_t n, const char *hex)
{
	uint8_t want[512];

	return t_unhex(want, sizeof(want), hex) == n && memcmp(p, want, n) == 0;
}

T_CASE(block_hash_vectors)
{
	uint8_t h[MANIFEST_HASH_BYTES];

	manifest_block_hash(h, "", 0);
	T_CHECK(hex_eq(h, sizeof(h), HASH_EMPTY));
	manifest_block_hash(h, "abc", 3);
	T_CHECK(hex_eq(h, sizeof(h), HASH_ABC));
	T_CHECK(hex_eq(pk, sizeof(pk), SEED_PK));
}

/* The pattern file: one byte over a block boundary, pinned encoding. */
T_CASE(pattern_manifest_pinned)
{
	uint8_t *data = pattern(PATTERN_BYTES), enc[256], h[MANIFEST_HASH_BYTES];
	struct manifest *m = NULL, *d = NULL;
	struct manifest_block b;
	const uint8_t *bytes;
	size_t blen;
	int fd = tmp_file(data, PATTERN_BYTES);
	long n;

	T_CHECK(data && fd >= 0);
	T_CHECK_EQ_INT(manifest_build(&m, fd, owner, NULL), 0);
	close(fd);
	T_CHECK_EQ_INT(manifest_file_size(m), PATTERN_BYTES);
	T_CHECK_EQ_INT(manifest_block_bytes(m), MANIFEST_BLOCK_BYTES);
	T_CHECK_EQ_INT(manifest_block_count(m), 2);
	T_CHECK_MEM(manifest_owner(m), owner, sizeof(owner));
	T_CHECK_EQ_INT(manifest_block(m, 0, &b), 0);
	T_CHECK(hex_eq(b.hash, MANIFEST_HASH_BYTES, PATTERN_BLOCK0));
	T_CHECK_EQ_INT(b.offset, 0);
	T_CHECK_EQ_INT(b.len, MANIFEST_BLOCK_BYTES);
	T_CHECK_EQ_INT(manifest_block(m, 1, &b), 0);
	T_CHECK(hex_eq(b.hash, MANIFEST_HASH_BYTES, PATTERN_BLOCK1));
	T_CHECK_EQ_INT(b.offset, MANIFEST_BLOCK_BYTES);
	T_CHECK_EQ_INT(b.len, 1);
	T_CHECK_EQ_INT(manifest_block(m, 2, &b), -ERANGE);

	T_CHECK(!manifest_is_signed(m));
	T_CHECK_EQ_INT(manifest_sign(m, sk), 0);
	T_CHECK(manifest_is_signed(m));
	T_CHECK_EQ_INT(manifest_encoded_len(m), MANIFEST_ENCODED_BYTES(2));
	n = manifest_encode(enc, sizeof(enc), m);
	T_CHECK_EQ_INT(n, 177);
	T_CHECK(hex_eq(enc, (size_t)n, PATTERN_MANIFEST));
	T_CHECK_EQ_INT(manifest_bytes(m, &bytes, &blen), 0);
	T_CHECK(blen == (size_t)n && memcmp(bytes, enc, blen) == 0);
	T_CHECK_EQ_INT(manifest_hash(m, h), 0);
	T_CHECK(hex_eq(h, sizeof(h), PATTERN_MANIFEST_HASH));
	T_CHECK_EQ_INT(manifest_verify(m, pk), 0);

	T_CHECK_EQ_INT(manifest_decode(&d, enc, (size_t)n), 0);
	T_CHECK_EQ_INT(manifest_verify(d, pk), 0);
	T_CHECK_EQ_INT(manifest_hash(d, h), 0);
	T_CHECK(hex_eq(h, sizeof(h), PATTERN_MANIFEST_HASH));
	T_CHECK_EQ_INT(manifest_block_verify(d, 0, data, MANIFEST_BLOCK_BYTES), 0);
	T_CHECK_EQ_INT(manifest_block_verify(d, 1, data + MANIFEST_BLOCK_BYTES, 1), 0);
	manifest_free(d);
	manifest_free(m);
	free(data);
}

T_CASE(empty_file)
{
	uint8_t enc[128], h[MANIFEST_HASH_BYTES];
	struct manifest *m = NULL, *d = NULL;
	struct manifest_block b;
	int fd = tmp_file(NULL, 0);
	long n;

	T_CHECK(fd >= 0);
	T_CHECK_EQ_INT(manifest_build(&m, fd, owner, NULL), 0);
	close(fd);
	T_CHECK_EQ_INT(manifest_file_size(m), 0);
	T_CHECK_EQ_INT(manifest_block_count(m), 0);
	T_CHECK_EQ_INT(manifest_block(m, 0, &b), -ERANGE);
	T_CHECK_EQ_INT(manifest_block_verify(m, 0, "", 0), -ERANGE);
	T_CHECK_EQ_INT(manifest_sign(m, sk), 0);
	n = manifest_encode(enc, sizeof(enc), m);
	T_CHECK_EQ_INT(n, MANIFEST_ENCODED_BYTES(0));
	T_CHECK(hex_eq(enc, (size_t)n, EMPTY_MANIFEST));
	T_CHECK_EQ_INT(manifest_hash(m, h), 0);
	T_CHECK(hex_eq(h, sizeof(h), EMPTY_MANIFEST_HASH));
	T_CHECK_EQ_INT(manifest_decode(&d, enc, (size_t)n), 0);
	T_CHECK_EQ_INT(manifest_verify(d, pk), 0);
	T_CHECK_EQ_INT(manifest_block_count(d), 0);
	manifest_free(d);
	manifest_free(m);
}

T_CASE(exactly_one_block)
{
	uint8_t *data = pattern(MANIFEST_BLOCK_BYTES), h[MANIFEST_HASH_BYTES];
	struct manifest *m = NULL;
	struct manifest_block b;
	int fd = tmp_file(data, MANIFEST_BLOCK_BYTES);

	T_CHECK(data && fd >= 0);
	T_CHECK_EQ_INT(manifest_build(&m, fd, owner, NULL), 0);
	close(fd);
	T_CHECK_EQ_INT(manifest_block_count(m), 1);
	T_CHECK_EQ_INT(manifest_block(m, 0, &b), 0);
	T_CHECK_EQ_INT(b.len, MANIFEST_BLOCK_BYTES);
	/* The first block of the pattern file is this whole file. */
	T_CHECK(hex_eq(b.hash, MANIFEST_HASH_BYTES, PATTERN_BLOCK0));
	manifest_block_hash(h, data, MANIFEST_BLOCK_BYTES);
	T_CHECK_MEM(h, b.hash, sizeof(h));
	T_CHECK_EQ_INT(manifest_block(m, 1, &b), -ERANGE);
	manifest_free(m);
	free(data);
}

/* Every read mode, thread count and block size gives the hashes of the
 * bytes in memory, over a file with a ragged tail. */
T_CASE(modes_agree)
{
	const size_t len = 16 * MIB + 4097;
	static const struct manifest_build_params params[] = {
		{ 0, 1, MANIFEST_READ_PREAD },
		{ 0, 2, MANIFEST_READ_PREAD },
		{ 0, 3, MANIFEST_READ_MMAP },
		{ 4096, 2, MANIFEST_READ_PREAD },
		{ 4096, 2, MANIFEST_READ_MMAP },
		{ 1 * MIB, 0, MANIFEST_READ_PREAD },
	};
	uint8_t *data = malloc(len), h[MANIFEST_HASH_BYTES];
	int fd = -1;

	T_CHECK(data);
	randombytes_buf_deterministic(data, len, (const uint8_t[randombytes_SEEDBYTES]){ 7 });
	fd = tmp_file(data, len);
	T_CHECK(fd >= 0);
	for (size_t k = 0; k < sizeof(params) / sizeof(params[0]); k++) {
		uint32_t bs = params[k].block_bytes ? params[k].block_bytes : MANIFEST_BLOCK_BYTES;
		struct manifest *m = NULL;
		struct manifest_block b;
		int bad = 0;

		T_CHECK_EQ_INT(manifest_build(&m, fd, owner, &params[k]), 0);
		T_CHECK_EQ_INT(manifest_block_count(m), (len + bs - 1) / bs);
		for (uint32_t i = 0; i < manifest_block_count(m); i++) {
			manifest_block(m, i, &b);
			manifest_block_hash(h, data + b.offset, b.len);
			bad += memcmp(h, b.hash, sizeof(h)) != 0;
			bad += manifest_block_verify(m, i, data + b.offset, b.len) != 0;
		}
		T_CHECK_EQ_INT(b.offset + b.len, len);
		manifest_free(m);
		T_CHECK_EQ_INT(bad, 0);
	}
	close(fd);
	free(data);
}

/* hash_sparse - a sparse file of @len bytes with a marker byte near the
 * end: every block hashes as zeros except the marked one. */
static int check_sparse(uint64_t len)
{
	uint8_t *zeros = calloc(1, MANIFEST_BLOCK_BYTES), *blk = NULL;
	uint8_t zh[MANIFEST_HASH_BYTES], h[MANIFEST_HASH_BYTES];
	const uint64_t mark = len - 12345;
	struct manifest *m = NULL;
	struct manifest_block b;
	int fd, ret = -1;

	fd = tmp_file(NULL, 0);
	if (!zeros || fd < 0 || ftruncate(fd, (off_t)len) < 0 || pwrite(fd, "x", 1, (off_t)mark) != 1)
		goto out;
	if (manifest_build(&m, fd, owner, NULL) != 0)
		goto out;
	if (manifest_block_count(m) != (len + MANIFEST_BLOCK_BYTES - 1) / MANIFEST_BLOCK_BYTES)
		goto out;
	manifest_block_hash(zh, zeros, MANIFEST_BLOCK_BYTES);
	for (uint32_t i = 0; i < manifest_block_count(m); i++) {
		manifest_block(m, i, &b);
		if (mark >= b.offset && mark - b.offset < b.len) {
			blk = calloc(1, b.len);
			if (!blk)
				goto out;
			blk[mark - b.offset] = 'x';
			manifest_block_hash(h, blk, b.len);
		} else if (b.len != MANIFEST_BLOCK_BYTES) {
			manifest_block_hash(h, zeros, b.len);
		} else {
			memcpy(h, zh, sizeof(h));
		}
		if (memcmp(h, b.hash, sizeof(h)) != 0)
			goto out;
	}
	ret = 0;
out:
	manifest_free(m);
	if (fd >= 0)
		close(fd);
	free(zeros);
	free(blk);
	return ret;
}

T_CASE(sparse_64mib)
{
	T_CHECK_EQ_INT(check_sparse(64 * (uint64_t)MIB + 777), 0);
}

T_CASE(sparse_5gib_if_asked)
{
	const char *big = getenv("BFS_TEST_BIG");

	if (!big || strcmp(big, "1") != 0)
		return; /* skipped: see the file comment */
	T_CHECK_EQ_INT(check_sparse(5 * (uint64_t)1024 * MIB + 3), 0);
}

/* Files over the block cap are refused before anything is read. */
T_CASE(too_big)
{
	const struct manifest_build_params small = { 4096, 0, MANIFEST_READ_PREAD };
	struct manifest *m = NULL;
	int fd = tmp_file(NULL, 0);

	T_CHECK(fd >= 0);
	T_CHECK(ftruncate(fd, (off_t)MANIFEST_MAX_BLOCKS * 4096 + 1) == 0);
	T_CHECK_EQ_INT(manifest_build(&m, fd, owner, &small), BFS_ETOOBIG);
	T_CHECK(m == NULL);
	T_CHECK(ftruncate(fd, (off_t)MANIFEST_MAX_BLOCKS * MANIFEST_BLOCK_BYTES + 1) == 0);
	T_CHECK_EQ_INT(manifest_build(&m, fd, owner, NULL), BFS_ETOOBIG);
	close(fd);
}

T_CASE(build_rejects)
{
	struct manifest_build_params p = { 0 };
	struct manifest *m = NULL;
	int fds[2], fd = tmp_file("abc", 3);

	T_CHECK(fd >= 0);
	p.block_bytes = 3000;
	T_CHECK_EQ_INT(manifest_build(&m, fd, owner, &p), -EINVAL);
	p.block_bytes = 2048;
	T_CHECK_EQ_INT(manifest_build(&m, fd, owner, &p), -EINVAL);
	p.block_bytes = 32 * MIB;
	T_CHECK_EQ_INT(manifest_build(&m, fd, owner, &p), -EINVAL);
	p.block_bytes = 0;
	p.read = (enum manifest_read)7;
	T_CHECK_EQ_INT(manifest_build(&m, fd, owner, &p), -EINVAL);
	close(fd);
	T_CHECK_EQ_INT(manifest_build(&m, fd, owner, NULL), -EBADF);
	T_CHECK(pipe(fds) == 0);
	T_CHECK_EQ_INT(manifest_build(&m, fds[0], owner, NULL), -EINVAL);
	close(fds[0]);
	close(fds[1]);
	T_CHECK(m == NULL);
}

T_CASE(unsigned_manifest)
{
	struct manifest *m = NULL;
	uint8_t enc[256], h[MANIFEST_HASH_BYTES];
	const uint8_t *bytes;
	size_t blen;
	int fd = tmp_file("abc", 3);

	T_CHECK(fd >= 0);
	T_CHECK_EQ_INT(manifest_build(&m, fd, owner, NULL), 0);
	close(fd);
	T_CHECK_EQ_INT(manifest_encode(enc, sizeof(enc), m), -EINVAL);
	T_CHECK_EQ_INT(manifest_bytes(m, &bytes, &blen), -EINVAL);
	T_CHECK_EQ_INT(manifest_hash(m, h), -EINVAL);
	T_CHECK_EQ_INT(manifest_verify(m, pk), BFS_EBADSIG);
	T_CHECK_EQ_INT(manifest_sign(m, sk), 0);
	T_CHECK_EQ_INT(manifest_encode(enc, MANIFEST_ENCODED_BYTES(1) - 1, m), -ENOSPC);
	T_CHECK_EQ_INT(manifest_encode(enc, MANIFEST_ENCODED_BYTES(1), m), MANIFEST_ENCODED_BYTES(1));
	manifest_free(m);
}

/* decode_hex - decode @hex after applying @edit to the bytes. */
static int decode_edit(const char *hex, void (*edit)(uint8_t *p, size_t *len), struct manifest **out)
{
	uint8_t enc[512];
	size_t len = t_unhex(enc, sizeof(enc) - 64, hex);

	if (edit)
		edit(enc, &len);
	return manifest_decode(out, enc, len);
}

static void add_trailing(uint8_t *p, size_t *len) { p[(*len)++] = 0; }
static void version_0(uint8_t *p, size_t *len) { (void)len; p[0] = 0; }
static void version_2(uint8_t *p, size_t *len) { (void)len; p[0] = 2; }
static void bs_odd(uint8_t *p, size_t *len) { (void)len; buf_store32_be(p + 41, 3 * 4096); }
static void bs_small(uint8_t *p, size_t *len) { (void)len; buf_store32_be(p + 41, 2048); }
static void bs_big(uint8_t *p, size_t *len) { (void)len; buf_store32_be(p + 41, 32 * MIB); }
static void bs_zero(uint8_t *p, size_t *len) { (void)len; buf_store32_be(p + 41, 0); }
static void count_low(uint8_t *p, size_t *len) { (void)len; buf_store32_be(p + 45, 1); }
static void count_high(uint8_t *p, size_t *len) { (void)len; buf_store32_be(p + 45, 3); }
static void count_over_cap(uint8_t *p, size_t *len) { (void)len; buf_store32_be(p + 45, MANIFEST_MAX_BLOCKS + 1); }
static void size_one_block(uint8_t *p, size_t *len) { (void)len; buf_store64_be(p + 33, MANIFEST_BLOCK_BYTES); }
static void size_zero(uint8_t *p, size_t *len) { (void)len; buf_store64_be(p + 33, 0); }
static void size_huge(uint8_t *p, size_t *len) { (void)len; buf_store64_be(p + 33, UINT64_MAX); }

/* One more hash and a count and size to match: well formed, bad signature. */
static void extra_block(uint8_t *p, size_t *len)
{
	memmove(p + 49 + 3 * 32, p + 49 + 2 * 32, 64);
	memset(p + 49 + 2 * 32, 0xee, 32);
	buf_store32_be(p + 45, 3);
	buf_store64_be(p + 33, 2 * (uint64_t)MANIFEST_BLOCK_BYTES + 5);
	*len += 32;
}

T_CASE(decode_rejects)
{
	static const struct {
		void (*edit)(uint8_t *p, size_t *len);
		int want;
	} cases[] = {
		{ add_trailing, BFS_EMALFORMED },
		{ version_0, BFS_EVERSION },
		{ version_2, BFS_EVERSION },
		{ bs_odd, BFS_EMALFORMED },
		{ bs_small, BFS_EMALFORMED },
		{ bs_big, BFS_EMALFORMED },
		{ bs_zero, BFS_EMALFORMED },
		{ count_low, BFS_EMALFORMED },
		{ count_high, BFS_EMALFORMED },
		{ count_over_cap, BFS_ETOOBIG },
		{ size_one_block, BFS_EMALFORMED },
		{ size_zero, BFS_EMALFORMED },
		{ size_huge, BFS_EMALFORMED },
	};
	uint8_t enc[256];
	size_t len = t_unhex(enc, sizeof(enc), PATTERN_MANIFEST);
	struct manifest *m = NULL;

	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		T_CHECK_EQ_INT(decode_edit(PATTERN_MANIFEST, cases[k].edit, &m), cases[k].want);
		T_CHECK(m == NULL);
	}
	/* Every proper prefix is short. */
	for (size_t n = 0; n < len; n++) {
		T_CHECK_EQ_INT(manifest_decode(&m, enc, n), BFS_EMALFORMED);
		T_CHECK(m == NULL);
	}
	T_CHECK_EQ_INT(manifest_decode(&m, NULL, 0), BFS_EMALFORMED);
	/* Well formed but tampered: decodes, does not verify. */
	T_CHECK_EQ_INT(decode_edit(PATTERN_MANIFEST, extra_block, &m), 0);
	T_CHECK_EQ_INT(manifest_block_count(m), 3);
	T_CHECK_EQ_INT(manifest_verify(m, pk), BFS_EBADSIG);
	manifest_free(m);
}

/* Any single bit flipped anywhere in the encoding is caught: by the decoder
 * or by the signature. */
T_CASE(every_bit_flip_rejected)
{
	uint8_t enc[256], h[MANIFEST_HASH_BYTES], h0[MANIFEST_HASH_BYTES];
	size_t len = t_unhex(enc, sizeof(enc), PATTERN_MANIFEST);
	int undetected = 0, sig_caught = 0;

	t_unhex(h0, sizeof(h0), PATTERN_MANIFEST_HASH);
	for (size_t bit = 0; bit < len * 8; bit++) {
		struct manifest *m = NULL;
		int err;

		enc[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		err = manifest_decode(&m, enc, len);
		if (err == 0) {
			if (manifest_verify(m, pk) == BFS_EBADSIG)
				sig_caught++;
			else
				undetected++;
			manifest_hash(m, h);
			undetected += memcmp(h, h0, sizeof(h)) == 0;
		}
		manifest_free(m);
		enc[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	T_CHECK_EQ_INT(undetected, 0);
	/* owner, hashes, signature and most size bits decode fine */
	T_CHECK(sig_caught > (32 + 64 + 64) * 8);
}

T_CASE(wrong_key_rejected)
{
	uint8_t enc[256], other_pk[crypto_sign_PUBLICKEYBYTES], other_sk[crypto_sign_SECRETKEYBYTES];
	size_t len = t_unhex(enc, sizeof(enc), PATTERN_MANIFEST);
	struct manifest *m = NULL;

	crypto_sign_keypair(other_pk, other_sk);
	T_CHECK_EQ_INT(manifest_decode(&m, enc, len), 0);
	T_CHECK_EQ_INT(manifest_verify(m, other_pk), BFS_EBADSIG);
	T_CHECK_EQ_INT(manifest_verify(m, pk), 0);
	/* Re-signed by someone else: verifies only under their key, new hash. */
	T_CHECK_EQ_INT(manifest_sign(m, other_sk), 0);
	T_CHECK_EQ_INT(manifest_verify(m, other_pk), 0);
	T_CHECK_EQ_INT(manifest_verify(m, pk), BFS_EBADSIG);
	sodium_memzero(other_sk, sizeof(other_sk));
	manifest_free(m);
}

T_CASE(block_verify)
{
	uint8_t enc[256], *data = pattern(PATTERN_BYTES);
	size_t len = t_unhex(enc, sizeof(enc), PATTERN_MANIFEST);
	struct manifest *m = NULL;

	T_CHECK(data);
	T_CHECK_EQ_INT(manifest_decode(&m, enc, len), 0);
	T_CHECK_EQ_INT(manifest_block_verify(m, 0, data, MANIFEST_BLOCK_BYTES), 0);
	T_CHECK_EQ_INT(manifest_block_verify(m, 1, data + MANIFEST_BLOCK_BYTES, 1), 0);
	/* wrong block, wrong length, one byte changed, no such block */
	T_CHECK_EQ_INT(manifest_block_verify(m, 1, data, MANIFEST_BLOCK_BYTES), BFS_EBADHASH);
	T_CHECK_EQ_INT(manifest_block_verify(m, 0, data, MANIFEST_BLOCK_BYTES - 1), BFS_EBADHASH);
	T_CHECK_EQ_INT(manifest_block_verify(m, 1, data + MANIFEST_BLOCK_BYTES, 0), BFS_EBADHASH);
	data[1000] ^= 1;
	T_CHECK_EQ_INT(manifest_block_verify(m, 0, data, MANIFEST_BLOCK_BYTES), BFS_EBADHASH);
	T_CHECK_EQ_INT(manifest_block_verify(m, 2, data, 1), -ERANGE);
	manifest_free(m);
	free(data);
}

/* A hand-made manifest of a 5 GiB + 3 file: offsets past 2^32 without
 * hashing 5 GiB. */
T_CASE(large_offsets)
{
	const uint64_t size = 5 * (uint64_t)1024 * MIB + 3;
	const uint32_t count = (uint32_t)((size + MANIFEST_BLOCK_BYTES - 1) / MANIFEST_BLOCK_BYTES);
	size_t enc_len = MANIFEST_ENCODED_BYTES(count);
	uint8_t *msg = malloc(MANIFEST_SIG_CONTEXT_BYTES + enc_len), *sig;
	struct manifest *m = NULL;
	struct manifest_block b;
	struct buf_writer w;
	uint8_t *hashes;

	T_CHECK(msg);
	buf_writer_init(&w, msg, MANIFEST_SIG_CONTEXT_BYTES + enc_len);
	buf_put_bytes(&w, "buddyfs manifest v1", 20);
	buf_put_u8(&w, 1);
	buf_put_bytes(&w, owner, sizeof(owner));
	buf_put_u64be(&w, size);
	buf_put_u32be(&w, MANIFEST_BLOCK_BYTES);
	buf_put_u32be(&w, count);
	T_CHECK(buf_put_reserve(&w, (size_t)count * 32, &hashes));
	memset(hashes, 0, (size_t)count * 32);
	for (uint32_t i = 0; i < count; i++)
		buf_store32_be(hashes + (size_t)i * 32, i);
	buf_put_reserve(&w, 64, &sig);
	T_CHECK(buf_writer_ok(&w));
	crypto_sign_detached(sig, NULL, msg, MANIFEST_SIG_CONTEXT_BYTES + enc_len - 64, sk);

	T_CHECK_EQ_INT(manifest_decode(&m, msg + MANIFEST_SIG_CONTEXT_BYTES, enc_len), 0);
	free(msg);
	T_CHECK_EQ_INT(manifest_verify(m, pk), 0);
	T_CHECK_EQ_INT(manifest_block_count(m), 20481);
	T_CHECK_EQ_INT(manifest_block(m, 20480, &b), 0);
	T_CHECK(b.offset == 5 * (uint64_t)1024 * MIB);
	T_CHECK_EQ_INT(b.len, 3);
	T_CHECK_EQ_INT(buf_load32_be(b.hash), 20480);
	T_CHECK_EQ_INT(manifest_block(m, 16385, &b), 0);
	T_CHECK(b.offset == 16385 * (uint64_t)MANIFEST_BLOCK_BYTES);
	T_CHECK_EQ_INT(b.len, MANIFEST_BLOCK_BYTES);
	manifest_free(m);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	keys_init();
	T_RUN(block_hash_vectors);
	T_RUN(pattern_manifest_pinned);
	T_RUN(empty_file);
	T_RUN(exactly_one_block);
	T_RUN(modes_agree);
	T_RUN(sparse_64mib);
	T_RUN(sparse_5gib_if_asked);
	T_RUN(too_big);
	T_RUN(build_rejects);
	T_RUN(unsigned_manifest);
	T_RUN(decode_rejects);
	T_RUN(every_bit_flip_rejected);
	T_RUN(wrong_key_rejected);
	T_RUN(block_verify);
	T_RUN(large_offsets);
	sodium_memzero(sk, sizeof(sk));
	return t_done();
}
