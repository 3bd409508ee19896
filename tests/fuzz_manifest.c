/*
 * fuzz_manifest.c - the manifest decoder on untrusted bytes.
 *
 * Any input either fails to decode with a BFS_E* code or decodes to a
 * manifest whose encoding is the input itself (the encoding is canonical),
 * whose blocks tile the file exactly, and which survives re-signing with a
 * fixed key: sign, verify, encode, decode, verify again, same hash.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "buddyfs/err.h"
#include "buddyfs/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];

static void setup(void)
{
	static int done;
	uint8_t seed[crypto_sign_SEEDBYTES] = { 42 };

	if (done)
		return;
	if (sodium_init() < 0)
		abort();
	crypto_sign_seed_keypair(pk, sk, seed);
	done = 1;
}

static void check_blocks(const struct manifest *m, const uint8_t *data, size_t size)
{
	struct manifest_block b;
	uint64_t next = 0;
	uint32_t n = manifest_block_count(m);

	for (uint32_t i = 0; i < n; i++) {
		if (manifest_block(m, i, &b) != 0 || b.offset != next || b.len == 0 ||
		    b.len > manifest_block_bytes(m))
			abort();
		next += b.len;
	}
	if (next != manifest_file_size(m) || manifest_block(m, n, &b) != -ERANGE)
		abort();
	if (n) {
		int err;

		manifest_block(m, 0, &b);
		err = manifest_block_verify(m, 0, data, size < b.len ? size : b.len);
		if (err != 0 && err != BFS_EBADHASH)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct manifest *m = NULL, *again = NULL;
	uint8_t h1[MANIFEST_HASH_BYTES], h2[MANIFEST_HASH_BYTES];
	uint8_t *enc = NULL;
	int err;
	long n;

	setup();
	err = manifest_decode(&m, data, size);
	if (err) {
		if (m || (err != BFS_EMALFORMED && err != BFS_EVERSION && err != BFS_ETOOBIG))
			abort();
		return 0;
	}
	/* Canonical: the encoding is the input, byte for byte. */
	enc = malloc(size);
	if (!enc)
		abort();
	n = manifest_encode(enc, size, m);
	if (n < 0 || (size_t)n != size || memcmp(enc, data, size) != 0 || manifest_encoded_len(m) != size)
		abort();
	check_blocks(m, data, size);
	err = manifest_verify(m, pk);
	if (err != 0 && err != BFS_EBADSIG)
		abort();

	/* Re-signed, it verifies, and survives a round trip unchanged. */
	if (manifest_sign(m, sk) != 0 || manifest_verify(m, pk) != 0)
		abort();
	n = manifest_encode(enc, size, m);
	if (n < 0 || (size_t)n != size)
		abort();
	if (manifest_decode(&again, enc, size) != 0 || manifest_verify(again, pk) != 0)
		abort();
	manifest_hash(m, h1);
	manifest_hash(again, h2);
	if (memcmp(h1, h2, sizeof(h1)) != 0 || manifest_file_size(m) != manifest_file_size(again) ||
	    manifest_block_count(m) != manifest_block_count(again) ||
	    memcmp(manifest_owner(m), manifest_owner(again), MANIFEST_PEER_ID_BYTES) != 0)
		abort();
	manifest_free(again);
	manifest_free(m);
	free(enc);
	return 0;
}
