/*
 * fuzz_rtmfp_crypto_open.c - opening far packets: the default key of both
 * profiles and a complete sodium session key (its replay window too) never
 * crash on garbage; and the input, sealed as cleartext, opens back to itself.
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_rtmfp_crypto_setup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct pair {
	struct rtmfp_crypto_key *ki, *kr;
};

/* pair_make - one complete session between @i and @r (signatures skipped:
 * the fuzzer is after the packet path). */
static void pair_make(struct pair *pr, struct rtmfp_crypto *i, struct rtmfp_crypto *r)
{
	struct rtmfp_crypto_cert *ic = NULL, *rc = NULL;
	uint8_t skic[RTMFP_CRYPTO_MAX_SKIC_BYTES], skrc[RTMFP_CRYPTO_MAX_SKRC_BYTES];
	const uint8_t *p;
	size_t n, skic_len, skrc_len;

	rtmfp_crypto_local_cert(r, &p, &n);
	if (rtmfp_crypto_cert_decode(i, p, n, &rc) < 0)
		abort();
	rtmfp_crypto_local_cert(i, &p, &n);
	if (rtmfp_crypto_cert_decode(r, p, n, &ic) < 0 ||
	    rtmfp_crypto_key_new(i, &pr->ki) < 0 || rtmfp_crypto_key_new(r, &pr->kr) < 0 ||
	    rtmfp_crypto_key_initiator_skic(pr->ki, rc, skic, sizeof(skic), &skic_len) < 0 ||
	    rtmfp_crypto_key_responder(pr->kr, ic, skic, skic_len, skrc, sizeof(skrc), &skrc_len) < 0 ||
	    rtmfp_crypto_key_initiator_complete(pr->ki, skrc, skrc_len) < 0)
		abort();
	rtmfp_crypto_cert_free(ic);
	rtmfp_crypto_cert_free(rc);
}

static void roundtrip(struct rtmfp_crypto_key *from, struct rtmfp_crypto_key *to,
		      const uint8_t *data, size_t size)
{
	static uint8_t pkt[4096];
	size_t front = rtmfp_crypto_front_bytes(from->profile), n, off, clen;

	if (size == 0 || size > sizeof(pkt) - RTMFP_CRYPTO_MAX_OVERHEAD_BYTES)
		return;
	memcpy(pkt + front, data, size);
	if (rtmfp_crypto_key_seal(from, pkt, sizeof(pkt), size, &n) < 0 ||
	    rtmfp_crypto_key_open(to, pkt, n, &off, &clen) < 0 ||
	    clen < size || memcmp(pkt + off, data, size) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct fuzz_ends *e = fuzz_ends();
	static struct pair sp, pp;
	uint8_t *copy;
	size_t off, clen;

	if (!sp.ki) {
		pair_make(&sp, e->s1, e->s2);
		pair_make(&pp, e->p1, e->p2);
	}
	copy = malloc(size ? size : 1);
	if (!copy)
		abort();
#define TRY(call) do { if (size) memcpy(copy, data, size); \
		if ((call) == 0 && (off > size || clen > size - off || clen == 0)) abort(); } while (0)
	TRY(rtmfp_crypto_open_default(e->s1, copy, size, &off, &clen));
	TRY(rtmfp_crypto_open_default(e->p1, copy, size, &off, &clen));
	TRY(rtmfp_crypto_key_open(sp.kr, copy, size, &off, &clen));
	TRY(rtmfp_crypto_key_open(pp.kr, copy, size, &off, &clen));
#undef TRY
	free(copy);
	roundtrip(sp.ki, sp.kr, data, size);
	roundtrip(pp.kr, pp.ki, data, size);
	return 0;
}
