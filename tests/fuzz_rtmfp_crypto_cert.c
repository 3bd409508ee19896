/*
 * fuzz_rtmfp_crypto_cert.c - certificate decoding (RHello, IIKeying) in both
 * profiles: no crash on garbage, and a certificate that decodes re-encodes
 * to the same bytes, is selected by its own canonical EPD and overrides
 * itself.
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_rtmfp_crypto_setup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one(struct rtmfp_crypto *c, const uint8_t *data, size_t size)
{
	struct rtmfp_crypto_cert *cert = NULL;
	const uint8_t *p, *epd;
	size_t n, epd_len;
	uint8_t id[RTMFP_CRYPTO_PEER_ID_BYTES];

	if (rtmfp_crypto_cert_decode(c, data, size, &cert) < 0)
		return;
	rtmfp_crypto_cert_bytes(cert, &p, &n);
	if (n != size || (n && memcmp(p, data, n) != 0))
		abort();
	rtmfp_crypto_cert_epd(cert, &epd, &epd_len);
	if (!rtmfp_crypto_cert_selected(cert, epd, epd_len) || !rtmfp_crypto_cert_overrides(cert, cert))
		abort();
	rtmfp_crypto_cert_peer_id(cert, id);
	(void)rtmfp_crypto_cert_selected(cert, data, size);
	(void)rtmfp_crypto_near_wins_glare(c, cert);
	rtmfp_crypto_cert_free(cert);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct fuzz_ends *e = fuzz_ends();

	one(e->s1, data, size);
	one(e->p1, data, size);
	return 0;
}
