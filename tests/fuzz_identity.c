/*
 * fuzz_identity.c - the parsers of the identity files in a home directory:
 * the key file, the config file and the certificate.  The first input byte
 * picks the parser, the rest is the file.  Decoders must reject garbage
 * without crashing; whatever decodes must encode and decode again to the
 * same value (the key file to the very same bytes).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buddyfs/identity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_key(const uint8_t *in, size_t len)
{
	uint8_t sk[IDENTITY_SECRET_KEY_BYTES], again[IDENTITY_SECRET_KEY_BYTES], out[IDENTITY_KEY_FILE_BYTES];
	struct buf_writer w;

	if (identity_key_decode(sk, in, len) != 0)
		return;
	buf_writer_init(&w, out, sizeof(out));
	if (identity_key_encode(&w, sk) != 0 || buf_writer_len(&w) != len || memcmp(out, in, len) != 0)
		abort();
	if (identity_key_decode(again, out, sizeof(out)) != 0 || memcmp(again, sk, sizeof(sk)) != 0)
		abort();
}

static void fuzz_config(const uint8_t *in, size_t len)
{
	struct identity_config c, again;
	uint8_t out[IDENTITY_CONFIG_MAX_BYTES];
	struct buf_writer w;

	if (identity_config_decode(&c, in, len) != 0)
		return;
	buf_writer_init(&w, out, sizeof(out));
	if (identity_config_encode(&w, &c) != 0)
		abort();
	if (identity_config_decode(&again, out, buf_writer_len(&w)) != 0)
		abort();
	if (strcmp(c.name, again.name) != 0 || strcmp(c.rdv_host, again.rdv_host) != 0 ||
	    c.rdv_port != again.rdv_port)
		abort();
}

static void fuzz_cert(const uint8_t *in, size_t len)
{
	uint8_t pk[IDENTITY_PUBLIC_KEY_BYTES], cert[IDENTITY_CERT_BYTES];

	if (identity_cert_parse(pk, in, len) != 0)
		return;
	identity_cert_make(cert, pk);
	if (len != sizeof(cert) || memcmp(cert, in, len) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	switch (data[0] % 3) {
	case 0: fuzz_key(data + 1, size - 1); break;
	case 1: fuzz_config(data + 1, size - 1); break;
	default: fuzz_cert(data + 1, size - 1); break;
	}
	return 0;
}
