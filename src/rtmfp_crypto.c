/*
 * rtmfp_crypto.c - the profile interface (see rtmfp_crypto.h): profile
 * lookup by name, dispatch through the profile's table, and the helpers the
 * profiles share (the Internet checksum, random bytes, SHA-256).
 *
 * The wrappers hold no protocol logic; each profile owns its rules.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "buddyfs/err.h"
#include "buddyfs/rtmfp_crypto.h"
#include "buddyfs/rtmfp_crypto_plain.h"
#include "buddyfs/rtmfp_crypto_sodium.h"

static const struct rtmfp_crypto_ops *const profiles[] = {
	&rtmfp_crypto_sodium_ops,
	&rtmfp_crypto_plain_ops,
};

const struct rtmfp_crypto_ops *rtmfp_crypto_profile_find(const char *name)
{
	size_t i;

	if (!name)
		name = RTMFP_CRYPTO_DEFAULT_PROFILE;
	for (i = 0; i < sizeof(profiles) / sizeof(profiles[0]); i++)
		if (strcmp(profiles[i]->name, name) == 0)
			return profiles[i];
	return NULL;
}

int rtmfp_crypto_new(struct rtmfp_crypto **out, const char *name,
		     const struct rtmfp_crypto_params *params)
{
	const struct rtmfp_crypto_ops *ops = rtmfp_crypto_profile_find(name);
	struct rtmfp_crypto *c;
	int rc;

	if (!ops)
		return -ENOENT;
	if (!params)
		return -EINVAL;
	if (sodium_init() < 0)
		return BFS_ECRYPTO;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->ops = ops;
	rc = ops->create(c, params);
	if (rc < 0) {
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void rtmfp_crypto_free(struct rtmfp_crypto *c)
{
	if (!c)
		return;
	c->ops->destroy(c);
	free(c);
}

const char *rtmfp_crypto_name(const struct rtmfp_crypto *c)
{
	return c->ops->name;
}

size_t rtmfp_crypto_front_bytes(const struct rtmfp_crypto *c)
{
	return c->ops->front_bytes;
}

size_t rtmfp_crypto_trailer_bytes(const struct rtmfp_crypto *c)
{
	return c->ops->trailer_bytes;
}

size_t rtmfp_crypto_overhead_bytes(const struct rtmfp_crypto *c)
{
	return c->ops->front_bytes + c->ops->trailer_bytes;
}

void rtmfp_crypto_local_cert(const struct rtmfp_crypto *c, const uint8_t **cert, size_t *len)
{
	c->ops->local_cert(c, cert, len);
}

void rtmfp_crypto_local_epd(const struct rtmfp_crypto *c, const uint8_t **epd, size_t *len)
{
	c->ops->local_epd(c, epd, len);
}

void rtmfp_crypto_local_peer_id(const struct rtmfp_crypto *c,
				uint8_t out[static RTMFP_CRYPTO_PEER_ID_BYTES])
{
	c->ops->local_peer_id(c, out);
}

bool rtmfp_crypto_is_selected(const struct rtmfp_crypto *c, const uint8_t *epd, size_t len)
{
	if (!epd && len)
		return false;
	return c->ops->is_selected(c, epd, len);
}

int rtmfp_crypto_sign(const struct rtmfp_crypto *c, enum rtmfp_crypto_sig_purpose purpose,
		      const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
		      uint8_t *sig, size_t sig_cap, size_t *sig_len)
{
	if (purpose != RTMFP_CRYPTO_SIG_IIKEYING && purpose != RTMFP_CRYPTO_SIG_RIKEYING)
		return -EINVAL;
	if (a_len > RTMFP_CRYPTO_MAX_SIGNED_BYTES ||
	    b_len > RTMFP_CRYPTO_MAX_SIGNED_BYTES - a_len)
		return BFS_ETOOBIG;
	return c->ops->sign(c, purpose, a, a_len, b, b_len, sig, sig_cap, sig_len);
}

bool rtmfp_crypto_near_wins_glare(const struct rtmfp_crypto *c,
				  const struct rtmfp_crypto_cert *far)
{
	if (far->profile != c)
		return false;
	return c->ops->near_wins_glare(c, far);
}

int rtmfp_crypto_cert_decode(struct rtmfp_crypto *c, const uint8_t *bytes, size_t len,
			     struct rtmfp_crypto_cert **out)
{
	if (!bytes && len)
		return -EINVAL;
	return c->ops->cert_decode(c, bytes, len, out);
}

void rtmfp_crypto_cert_free(struct rtmfp_crypto_cert *cert)
{
	if (cert)
		cert->profile->ops->cert_free(cert);
}

void rtmfp_crypto_cert_bytes(const struct rtmfp_crypto_cert *cert, const uint8_t **bytes, size_t *len)
{
	cert->profile->ops->cert_bytes(cert, bytes, len);
}

void rtmfp_crypto_cert_epd(const struct rtmfp_crypto_cert *cert, const uint8_t **epd, size_t *len)
{
	cert->profile->ops->cert_epd(cert, epd, len);
}

void rtmfp_crypto_cert_peer_id(const struct rtmfp_crypto_cert *cert,
			       uint8_t out[static RTMFP_CRYPTO_PEER_ID_BYTES])
{
	cert->profile->ops->cert_peer_id(cert, out);
}

bool rtmfp_crypto_cert_selected(const struct rtmfp_crypto_cert *cert, const uint8_t *epd, size_t len)
{
	if (!epd && len)
		return false;
	return cert->profile->ops->cert_selected(cert, epd, len);
}

bool rtmfp_crypto_cert_overrides(const struct rtmfp_crypto_cert *cert,
				 const struct rtmfp_crypto_cert *old)
{
	if (cert->profile != old->profile)
		return false;
	return cert->profile->ops->cert_overrides(cert, old);
}

int rtmfp_crypto_cert_verify(const struct rtmfp_crypto_cert *cert,
			     enum rtmfp_crypto_sig_purpose purpose,
			     const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
			     const uint8_t *sig, size_t sig_len)
{
	if (purpose != RTMFP_CRYPTO_SIG_IIKEYING && purpose != RTMFP_CRYPTO_SIG_RIKEYING)
		return BFS_EBADSIG;
	if (a_len > RTMFP_CRYPTO_MAX_SIGNED_BYTES ||
	    b_len > RTMFP_CRYPTO_MAX_SIGNED_BYTES - a_len)
		return BFS_ETOOBIG;
	return cert->profile->ops->cert_verify(cert, purpose, a, a_len, b, b_len, sig, sig_len);
}

int rtmfp_crypto_key_new(struct rtmfp_crypto *c, struct rtmfp_crypto_key **out)
{
	return c->ops->key_new(c, out);
}

void rtmfp_crypto_key_free(struct rtmfp_crypto_key *key)
{
	if (key)
		key->profile->ops->key_free(key);
}

bool rtmfp_crypto_key_is_complete(const struct rtmfp_crypto_key *key)
{
	return key->profile->ops->key_is_complete(key);
}

int rtmfp_crypto_key_initiator_skic(struct rtmfp_crypto_key *key,
				    const struct rtmfp_crypto_cert *responder,
				    uint8_t *skic, size_t cap, size_t *len)
{
	if (responder->profile != key->profile)
		return -EINVAL;
	return key->profile->ops->key_initiator_skic(key, responder, skic, cap, len);
}

int rtmfp_crypto_key_initiator_complete(struct rtmfp_crypto_key *key,
					const uint8_t *skrc, size_t len)
{
	if (!skrc && len)
		return BFS_EMALFORMED;
	return key->profile->ops->key_initiator_complete(key, skrc, len);
}

int rtmfp_crypto_key_responder(struct rtmfp_crypto_key *key,
			       const struct rtmfp_crypto_cert *initiator,
			       const uint8_t *skic, size_t skic_len,
			       uint8_t *skrc, size_t cap, size_t *skrc_len)
{
	if (initiator->profile != key->profile)
		return -EINVAL;
	if (!skic && skic_len)
		return BFS_EMALFORMED;
	return key->profile->ops->key_responder(key, initiator, skic, skic_len, skrc, cap, skrc_len);
}

/* sealable - the common size checks of every seal. */
static int sealable(const struct rtmfp_crypto *c, size_t cap, size_t clear_len)
{
	if (clear_len == 0)
		return -EINVAL;
	if (cap < rtmfp_crypto_overhead_bytes(c) ||
	    clear_len > cap - rtmfp_crypto_overhead_bytes(c))
		return BFS_ETOOBIG;
	return 0;
}

int rtmfp_crypto_key_seal(struct rtmfp_crypto_key *key, uint8_t *pkt, size_t cap,
			  size_t clear_len, size_t *out_len)
{
	int rc = sealable(key->profile, cap, clear_len);

	if (rc < 0)
		return rc;
	return key->profile->ops->key_seal(key, pkt, cap, clear_len, out_len);
}

int rtmfp_crypto_key_open(struct rtmfp_crypto_key *key, uint8_t *pkt, size_t len,
			  size_t *clear_off, size_t *clear_len)
{
	if (!pkt || len == 0)
		return BFS_EMALFORMED;
	return key->profile->ops->key_open(key, pkt, len, clear_off, clear_len);
}

int rtmfp_crypto_seal_default(struct rtmfp_crypto *c, uint8_t *pkt, size_t cap,
			      size_t clear_len, size_t *out_len)
{
	int rc = sealable(c, cap, clear_len);

	if (rc < 0)
		return rc;
	return c->ops->seal_default(c, pkt, cap, clear_len, out_len);
}

int rtmfp_crypto_open_default(struct rtmfp_crypto *c, uint8_t *pkt, size_t len,
			      size_t *clear_off, size_t *clear_len)
{
	if (!pkt || len == 0)
		return BFS_EMALFORMED;
	return c->ops->open_default(c, pkt, len, clear_off, clear_len);
}

uint16_t rtmfp_crypto_in_cksum(const uint8_t *p, size_t len)
{
	uint64_t sum = 0;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		sum += p[len - 1]; /* the odd byte is the LOW byte, as rtmfp-cpp */
	while (sum >> 16)
		sum = (sum >> 16) + (sum & 0xffff);
	return (uint16_t)~sum;
}

void rtmfp_crypto_random(void *out, size_t n)
{
	randombytes_buf(out, n);
}

void rtmfp_crypto_hash256(uint8_t out[static 32], const uint8_t *msg, size_t len)
{
	crypto_hash_sha256(out, msg, len);
}
