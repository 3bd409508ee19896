/*
 * fuzz_rtmfp_crypto_keying.c - far keying bytes: SKIC (at a responder),
 * SKRC (at an initiator) and IIKeying/RIKeying signatures, in both profiles.
 * The first input byte picks the parser; the rest is the far bytes.  A
 * failed SKRC must leave the initiator key incomplete.
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_rtmfp_crypto_setup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void skic(struct rtmfp_crypto *i, struct rtmfp_crypto *r, const uint8_t *data, size_t size)
{
	struct rtmfp_crypto_cert *ic = NULL;
	struct rtmfp_crypto_key *k = NULL;
	uint8_t skrc[RTMFP_CRYPTO_MAX_SKRC_BYTES];
	const uint8_t *p;
	size_t n;
	int rc;

	rtmfp_crypto_local_cert(i, &p, &n);
	if (rtmfp_crypto_cert_decode(r, p, n, &ic) < 0 || rtmfp_crypto_key_new(r, &k) < 0)
		abort();
	rc = rtmfp_crypto_key_responder(k, ic, data, size, skrc, sizeof(skrc), &n);
	if ((rc == 0) != rtmfp_crypto_key_is_complete(k))
		abort();
	rtmfp_crypto_key_free(k);
	rtmfp_crypto_cert_free(ic);
}

static void skrc(struct rtmfp_crypto *i, struct rtmfp_crypto *r, const uint8_t *data, size_t size)
{
	struct rtmfp_crypto_cert *rc_cert = NULL;
	struct rtmfp_crypto_key *k = NULL;
	uint8_t skic_buf[RTMFP_CRYPTO_MAX_SKIC_BYTES];
	const uint8_t *p;
	size_t n;
	int rc;

	rtmfp_crypto_local_cert(r, &p, &n);
	if (rtmfp_crypto_cert_decode(i, p, n, &rc_cert) < 0 || rtmfp_crypto_key_new(i, &k) < 0 ||
	    rtmfp_crypto_key_initiator_skic(k, rc_cert, skic_buf, sizeof(skic_buf), &n) < 0)
		abort();
	rc = rtmfp_crypto_key_initiator_complete(k, data, size);
	if ((rc == 0) != rtmfp_crypto_key_is_complete(k))
		abort();
	rtmfp_crypto_key_free(k);
	rtmfp_crypto_cert_free(rc_cert);
}

static void sig(struct rtmfp_crypto *signer, struct rtmfp_crypto *verifier, const uint8_t *data, size_t size)
{
	struct rtmfp_crypto_cert *c = NULL;
	const uint8_t *p;
	size_t n, half = size / 2;

	rtmfp_crypto_local_cert(signer, &p, &n);
	if (rtmfp_crypto_cert_decode(verifier, p, n, &c) < 0)
		abort();
	/* message = first half, signature = second half */
	(void)rtmfp_crypto_cert_verify(c, RTMFP_CRYPTO_SIG_IIKEYING, data, half, NULL, 0,
				       data + half, size - half);
	(void)rtmfp_crypto_cert_verify(c, RTMFP_CRYPTO_SIG_RIKEYING, data, half / 2, data + half / 2,
				       half - half / 2, data + half, size - half);
	rtmfp_crypto_cert_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct fuzz_ends *e = fuzz_ends();
	uint8_t op;

	if (size < 1)
		return 0;
	op = data[0];
	data++;
	size--;
	switch (op % 6) {
	case 0: skic(e->s2, e->s1, data, size); break;
	case 1: skrc(e->s2, e->s1, data, size); break;
	case 2: sig(e->s1, e->s2, data, size); break;
	case 3: skic(e->p1, e->p2, data, size); break;
	case 4: skrc(e->p1, e->p2, data, size); break;
	default: skic(e->s1, e->s2, data, size); break;
	}
	return 0;
}
