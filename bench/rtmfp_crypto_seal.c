/*
 * rtmfp_crypto_seal.c - packets per second through the sodium profile's
 * seal and open (in place, 1,252-byte cleartext: a 1,280-byte datagram) for
 * each cipher, and through plain.  Prints MB/s of cleartext for seal alone
 * and seal+open.  Usage: rtmfp_crypto_seal [packets] (default 200000).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "buddyfs/err.h"
#include "buddyfs/rtmfp_crypto.h"
#include "buddyfs/rtmfp_crypto_plain.h"
#include "buddyfs/rtmfp_crypto_sodium.h"

#define CLEAR_BYTES 1252

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int pair(struct rtmfp_crypto *i, struct rtmfp_crypto *r,
		struct rtmfp_crypto_key **ki, struct rtmfp_crypto_key **kr)
{
	struct rtmfp_crypto_cert *ic = NULL, *rc = NULL;
	uint8_t skic[RTMFP_CRYPTO_MAX_SKIC_BYTES], skrc[RTMFP_CRYPTO_MAX_SKRC_BYTES];
	const uint8_t *p;
	size_t n, a, b;
	int err;

	rtmfp_crypto_local_cert(r, &p, &n);
	if ((err = rtmfp_crypto_cert_decode(i, p, n, &rc)) < 0)
		return err;
	rtmfp_crypto_local_cert(i, &p, &n);
	if ((err = rtmfp_crypto_cert_decode(r, p, n, &ic)) < 0 ||
	    (err = rtmfp_crypto_key_new(i, ki)) < 0 || (err = rtmfp_crypto_key_new(r, kr)) < 0 ||
	    (err = rtmfp_crypto_key_initiator_skic(*ki, rc, skic, sizeof(skic), &a)) < 0 ||
	    (err = rtmfp_crypto_key_responder(*kr, ic, skic, a, skrc, sizeof(skrc), &b)) < 0 ||
	    (err = rtmfp_crypto_key_initiator_complete(*ki, skrc, b)) < 0)
		return err;
	rtmfp_crypto_cert_free(ic);
	rtmfp_crypto_cert_free(rc);
	return 0;
}

static void run(const char *label, struct rtmfp_crypto *i, struct rtmfp_crypto *r, long count)
{
	static uint8_t pkt[2048];
	struct rtmfp_crypto_key *ki = NULL, *kr = NULL;
	size_t n, off, clen;
	double t0, t1, t2;
	long k;

	if (pair(i, r, &ki, &kr) < 0) {
		printf("%s: key exchange failed\n", label);
		exit(1);
	}
	memset(pkt, 0x5a, sizeof(pkt));
	t0 = now_s();
	for (k = 0; k < count; k++)
		if (rtmfp_crypto_key_seal(ki, pkt, sizeof(pkt), CLEAR_BYTES, &n) < 0)
			exit(1);
	t1 = now_s();
	for (k = 0; k < count; k++) {
		if (rtmfp_crypto_key_seal(ki, pkt, sizeof(pkt), CLEAR_BYTES, &n) < 0 ||
		    rtmfp_crypto_key_open(kr, pkt, n, &off, &clen) < 0)
			exit(1);
	}
	t2 = now_s();
	printf("%-24s seal %8.1f MB/s   seal+open %8.1f MB/s   (%ld packets of %d bytes)\n", label,
	       (double)count * CLEAR_BYTES / (t1 - t0) / 1e6,
	       (double)count * CLEAR_BYTES / (t2 - t1) / 1e6, count, CLEAR_BYTES);
	rtmfp_crypto_key_free(ki);
	rtmfp_crypto_key_free(kr);
}

int main(int argc, char **argv)
{
	long count = argc > 1 ? atol(argv[1]) : 200000;
	uint8_t pk[32], sk1[64], sk2[64];
	struct rtmfp_crypto *a = NULL, *b = NULL, *c = NULL, *p1 = NULL, *p2 = NULL;

	if (sodium_init() < 0 || count <= 0)
		return 1;
	crypto_sign_keypair(pk, sk1);
	crypto_sign_keypair(pk, sk2);
	if (rtmfp_crypto_sodium_new(&a, sk1, NULL, 0, 0) < 0 ||
	    rtmfp_crypto_sodium_new(&b, sk2, NULL, 0, 0) < 0 ||
	    rtmfp_crypto_sodium_new(&c, sk2, NULL, 0, RTMFP_CRYPTO_F_NO_AES) < 0 ||
	    rtmfp_crypto_plain_new(&p1, "alice", 5) < 0 || rtmfp_crypto_plain_new(&p2, "bob", 3) < 0)
		return 1;
	sodium_memzero(sk1, sizeof(sk1));
	sodium_memzero(sk2, sizeof(sk2));
	if (crypto_aead_aes256gcm_is_available())
		run("sodium AES-256-GCM", a, b, count);
	else
		printf("sodium AES-256-GCM       not available on this CPU\n");
	run("sodium ChaCha20-Poly1305", a, c, count);
	run("plain (checksum)", p1, p2, count);
	rtmfp_crypto_free(a);
	rtmfp_crypto_free(b);
	rtmfp_crypto_free(c);
	rtmfp_crypto_free(p1);
	rtmfp_crypto_free(p2);
	return 0;
}
