/*
 * fuzz_rtmfp_crypto_setup.h - fixed profiles for the rtmfp_crypto fuzzers:
 * two sodium ends (deterministic Ed25519 keys, one with a server name, one
 * ChaCha-only) and two plain ends, made once per process.
 */
#ifndef BUDDYFS_FUZZ_RTMFP_CRYPTO_SETUP_H
#define BUDDYFS_FUZZ_RTMFP_CRYPTO_SETUP_H

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "buddyfs/err.h"
#include "buddyfs/rtmfp_crypto.h"
#include "buddyfs/rtmfp_crypto_plain.h"
#include "buddyfs/rtmfp_crypto_sodium.h"

struct fuzz_ends {
	struct rtmfp_crypto *s1, *s2, *p1, *p2;
};

static struct rtmfp_crypto *fuzz_sodium(uint8_t seed_byte, const char *name, unsigned int flags)
{
	uint8_t seed[32], pk[32], sk[64];
	struct rtmfp_crypto *c = NULL;

	memset(seed, seed_byte, sizeof(seed));
	crypto_sign_seed_keypair(pk, sk, seed);
	if (rtmfp_crypto_sodium_new(&c, sk, (const uint8_t *)name, name ? strlen(name) : 0, flags) < 0)
		abort();
	sodium_memzero(sk, sizeof(sk));
	return c;
}

static const struct fuzz_ends *fuzz_ends(void)
{
	static struct fuzz_ends e;

	if (!e.s1) {
		if (sodium_init() < 0)
			abort();
		e.s1 = fuzz_sodium(1, "rdv.example.net", 0);
		e.s2 = fuzz_sodium(2, NULL, RTMFP_CRYPTO_F_NO_AES);
		if (rtmfp_crypto_plain_new(&e.p1, "alice", 5) < 0 ||
		    rtmfp_crypto_plain_new(&e.p2, "bob", 3) < 0)
			abort();
	}
	return &e;
}

#endif
