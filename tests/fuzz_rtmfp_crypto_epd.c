/*
 * fuzz_rtmfp_crypto_epd.c - Endpoint Discriminators from IHello and from
 * the application: matching against our own end and against far
 * certificates never crashes, and matches only what it should (a peer-id
 * EPD selects exactly the one certificate with that id).
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_rtmfp_crypto_setup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct fuzz_ends *e = fuzz_ends();
	struct rtmfp_crypto_cert *c1 = NULL, *c2 = NULL;
	const uint8_t *p;
	size_t n;
	bool s1, s2;

	rtmfp_crypto_local_cert(e->s1, &p, &n);
	if (rtmfp_crypto_cert_decode(e->s2, p, n, &c1) < 0)
		abort();
	rtmfp_crypto_local_cert(e->s2, &p, &n);
	if (rtmfp_crypto_cert_decode(e->s1, p, n, &c2) < 0)
		abort();
	s1 = rtmfp_crypto_is_selected(e->s1, data, size);
	s2 = rtmfp_crypto_is_selected(e->s2, data, size);
	/* our end and our certificate seen from afar agree */
	if (s1 != rtmfp_crypto_cert_selected(c1, data, size) ||
	    s2 != rtmfp_crypto_cert_selected(c2, data, size))
		abort();
	if (s1 && s2)
		abort(); /* no EPD selects two different sodium ends */
	(void)rtmfp_crypto_is_selected(e->p1, data, size);
	rtmfp_crypto_cert_free(c1);
	rtmfp_crypto_cert_free(c2);
	return 0;
}
