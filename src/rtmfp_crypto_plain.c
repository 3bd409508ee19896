/*
 * rtmfp_crypto_plain.c - the "plain" profile (see rtmfp_crypto_plain.h):
 * bit-exact with rtmfp-cpp's PlainCryptoAdapter, for interoperability tests.
 * No confidentiality, no authentication: a checksum against accidents only.
 *
 * Owns: identity-string certificates and EPDs, the 16-bit salts exchanged as
 * SKIC/SKRC, the padded and checksummed packet format.  The checksum itself
 * is rtmfp_crypto_in_cksum() (rtmfp_crypto.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "buddyfs/buf.h"
#include "buddyfs/err.h"
#include "buddyfs/rtmfp_crypto_plain.h"

#define TRAILER_BYTES (RTMFP_CRYPTO_PLAIN_PAD_BYTES + RTMFP_CRYPTO_PLAIN_CKSUM_BYTES)

enum role { ROLE_NONE, ROLE_INITIATOR, ROLE_RESPONDER };

struct plain_state {
	size_t len;
	uint8_t identity[RTMFP_CRYPTO_PLAIN_MAX_IDENTITY_BYTES];
	uint8_t peer_id[RTMFP_CRYPTO_PEER_ID_BYTES];
};

struct plain_cert {
	struct rtmfp_crypto_cert base; /* first: the interface's view */
	size_t len;
	uint8_t identity[RTMFP_CRYPTO_PLAIN_MAX_IDENTITY_BYTES];
};

struct plain_key {
	struct rtmfp_crypto_key base; /* first */
	enum role role;
	bool complete;
	uint16_t rx_salt; /* ours: sent in our SKIC/SKRC, subtracted on open */
	uint16_t tx_salt; /* the far side's: added on seal once complete */
};

static struct plain_state *state_of(const struct rtmfp_crypto *c)
{
	return c->state;
}

static const struct plain_cert *cert_of(const struct rtmfp_crypto_cert *cert)
{
	return (const struct plain_cert *)cert;
}

static struct plain_key *key_of(struct rtmfp_crypto_key *key)
{
	return (struct plain_key *)key;
}

static bool bytes_equal(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len)
{
	return a_len == b_len && (a_len == 0 || memcmp(a, b, a_len) == 0);
}

static int plain_create(struct rtmfp_crypto *c, const struct rtmfp_crypto_params *params)
{
	struct plain_state *s;

	if (!params->identity || params->identity_len == 0 ||
	    params->identity_len > RTMFP_CRYPTO_PLAIN_MAX_IDENTITY_BYTES)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->len = params->identity_len;
	memcpy(s->identity, params->identity, s->len);
	crypto_hash_sha256(s->peer_id, s->identity, s->len);
	c->state = s;
	return 0;
}

static void plain_destroy(struct rtmfp_crypto *c)
{
	free(c->state);
	c->state = NULL;
}

static void plain_local_cert(const struct rtmfp_crypto *c, const uint8_t **cert, size_t *len)
{
	*cert = state_of(c)->identity;
	*len = state_of(c)->len;
}

static void plain_local_peer_id(const struct rtmfp_crypto *c, uint8_t out[RTMFP_CRYPTO_PEER_ID_BYTES])
{
	memcpy(out, state_of(c)->peer_id, RTMFP_CRYPTO_PEER_ID_BYTES);
}

static bool plain_is_selected(const struct rtmfp_crypto *c, const uint8_t *epd, size_t len)
{
	return bytes_equal(epd, len, state_of(c)->identity, state_of(c)->len);
}

static int plain_sign(const struct rtmfp_crypto *c, enum rtmfp_crypto_sig_purpose purpose,
		      const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
		      uint8_t *sig, size_t sig_cap, size_t *sig_len)
{
	(void)c; (void)purpose; (void)a; (void)a_len; (void)b; (void)b_len;
	if (sig_cap < 1)
		return BFS_ETOOBIG;
	sig[0] = RTMFP_CRYPTO_PLAIN_SIG;
	*sig_len = 1;
	return 0;
}

/* less - rtmfp-cpp compares std::vector<uint8_t>: unsigned bytes, then length. */
static bool less(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len)
{
	size_t n = a_len < b_len ? a_len : b_len;
	int d = n ? memcmp(a, b, n) : 0;

	return d < 0 || (d == 0 && a_len < b_len);
}

static bool plain_near_wins_glare(const struct rtmfp_crypto *c, const struct rtmfp_crypto_cert *far)
{
	return less(state_of(c)->identity, state_of(c)->len,
		    cert_of(far)->identity, cert_of(far)->len);
}

static int plain_cert_decode(struct rtmfp_crypto *c, const uint8_t *bytes, size_t len,
			     struct rtmfp_crypto_cert **out)
{
	struct plain_cert *cert;

	/* rtmfp-cpp decodes an empty identity but never finds it authentic. */
	if (len == 0 || len > RTMFP_CRYPTO_PLAIN_MAX_IDENTITY_BYTES)
		return BFS_EMALFORMED;
	cert = calloc(1, sizeof(*cert));
	if (!cert)
		return -ENOMEM;
	cert->base.profile = c;
	cert->len = len;
	memcpy(cert->identity, bytes, len);
	*out = &cert->base;
	return 0;
}

static void plain_cert_free(struct rtmfp_crypto_cert *cert)
{
	free(cert);
}

static void plain_cert_bytes(const struct rtmfp_crypto_cert *cert, const uint8_t **bytes, size_t *len)
{
	*bytes = cert_of(cert)->identity;
	*len = cert_of(cert)->len;
}

static void plain_cert_peer_id(const struct rtmfp_crypto_cert *cert, uint8_t out[RTMFP_CRYPTO_PEER_ID_BYTES])
{
	crypto_hash_sha256(out, cert_of(cert)->identity, cert_of(cert)->len);
}

static bool plain_cert_selected(const struct rtmfp_crypto_cert *cert, const uint8_t *epd, size_t len)
{
	return bytes_equal(epd, len, cert_of(cert)->identity, cert_of(cert)->len);
}

static bool plain_cert_overrides(const struct rtmfp_crypto_cert *cert, const struct rtmfp_crypto_cert *old)
{
	return bytes_equal(cert_of(cert)->identity, cert_of(cert)->len,
			   cert_of(old)->identity, cert_of(old)->len);
}

static int plain_cert_verify(const struct rtmfp_crypto_cert *cert, enum rtmfp_crypto_sig_purpose purpose,
			     const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
			     const uint8_t *sig, size_t sig_len)
{
	(void)cert; (void)purpose; (void)a; (void)a_len; (void)b; (void)b_len;
	(void)sig; (void)sig_len;
	return 0; /* rtmfp-cpp: checkSignature always calls ongood */
}

static int plain_key_new(struct rtmfp_crypto *c, struct rtmfp_crypto_key **out)
{
	struct plain_key *k = calloc(1, sizeof(*k));

	if (!k)
		return -ENOMEM;
	k->base.profile = c;
	randombytes_buf(&k->rx_salt, sizeof(k->rx_salt));
	*out = &k->base;
	return 0;
}

static void plain_key_free(struct rtmfp_crypto_key *key)
{
	sodium_memzero(key_of(key), sizeof(struct plain_key));
	free(key);
}

static bool plain_key_is_complete(const struct rtmfp_crypto_key *key)
{
	return ((const struct plain_key *)key)->complete;
}

static int put_salt(uint16_t salt, uint8_t *out, size_t cap, size_t *len)
{
	if (cap < RTMFP_CRYPTO_PLAIN_SALT_BYTES)
		return BFS_ETOOBIG;
	buf_store16_be(out, salt);
	*len = RTMFP_CRYPTO_PLAIN_SALT_BYTES;
	return 0;
}

/* get_salt - rtmfp-cpp takes the first 2 bytes of a component of >= 2. */
static int get_salt(const uint8_t *in, size_t len, uint16_t *salt)
{
	struct buf_reader r;

	buf_reader_init(&r, in, len);
	if (!buf_get_u16be(&r, salt))
		return BFS_EMALFORMED;
	return 0;
}

static int plain_key_initiator_skic(struct rtmfp_crypto_key *key, const struct rtmfp_crypto_cert *responder,
				    uint8_t *skic, size_t cap, size_t *len)
{
	struct plain_key *k = key_of(key);
	int rc;

	(void)responder;
	if (k->role == ROLE_RESPONDER || k->complete)
		return -EINVAL;
	rc = put_salt(k->rx_salt, skic, cap, len);
	if (rc == 0)
		k->role = ROLE_INITIATOR;
	return rc;
}

static int plain_key_initiator_complete(struct rtmfp_crypto_key *key, const uint8_t *skrc, size_t len)
{
	struct plain_key *k = key_of(key);
	uint16_t salt;
	int rc;

	if (k->role != ROLE_INITIATOR || k->complete)
		return -EINVAL;
	rc = get_salt(skrc, len, &salt);
	if (rc < 0)
		return rc;
	k->tx_salt = salt;
	k->complete = true;
	return 0;
}

static int plain_key_responder(struct rtmfp_crypto_key *key, const struct rtmfp_crypto_cert *initiator,
			       const uint8_t *skic, size_t skic_len,
			       uint8_t *skrc, size_t cap, size_t *skrc_len)
{
	struct plain_key *k = key_of(key);
	uint16_t salt;
	int rc;

	(void)initiator;
	if (k->role != ROLE_NONE || k->complete)
		return -EINVAL;
	rc = get_salt(skic, skic_len, &salt);
	if (rc < 0)
		return rc;
	rc = put_salt(k->rx_salt, skrc, cap, skrc_len);
	if (rc < 0)
		return rc;
	k->role = ROLE_RESPONDER;
	k->tx_salt = salt;
	k->complete = true;
	return 0;
}

/* seal - P | 0xff x 16 | (in_cksum(P | pad) + salt) big-endian. */
static void seal(uint8_t *pkt, size_t clear_len, uint16_t salt, size_t *out_len)
{
	uint16_t cksum;

	memset(pkt + clear_len, 0xff, RTMFP_CRYPTO_PLAIN_PAD_BYTES);
	cksum = rtmfp_crypto_in_cksum(pkt, clear_len + RTMFP_CRYPTO_PLAIN_PAD_BYTES);
	cksum = (uint16_t)(cksum + salt);
	buf_store16_be(pkt + clear_len + RTMFP_CRYPTO_PLAIN_PAD_BYTES, cksum);
	*out_len = clear_len + TRAILER_BYTES;
}

/*
 * open - as rtmfp-cpp's decrypt: the last 2 bytes minus our salt must equal
 * the checksum of everything before them; the cleartext is everything
 * before them (pad included) and must not be empty.
 */
static int open_pkt(const uint8_t *pkt, size_t len, uint16_t salt, size_t *clear_off, size_t *clear_len)
{
	uint16_t got;

	if (len < RTMFP_CRYPTO_PLAIN_CKSUM_BYTES + 1)
		return BFS_EMALFORMED;
	got = (uint16_t)(buf_load16_be(pkt + len - RTMFP_CRYPTO_PLAIN_CKSUM_BYTES) - salt);
	if (rtmfp_crypto_in_cksum(pkt, len - RTMFP_CRYPTO_PLAIN_CKSUM_BYTES) != got)
		return BFS_ECRYPTO;
	*clear_off = 0;
	*clear_len = len - RTMFP_CRYPTO_PLAIN_CKSUM_BYTES;
	return 0;
}

static int plain_key_seal(struct rtmfp_crypto_key *key, uint8_t *pkt, size_t cap,
			  size_t clear_len, size_t *out_len)
{
	struct plain_key *k = key_of(key);

	(void)cap;
	seal(pkt, clear_len, k->complete ? k->tx_salt : 0, out_len);
	return 0;
}

static int plain_key_open(struct rtmfp_crypto_key *key, uint8_t *pkt, size_t len,
			  size_t *clear_off, size_t *clear_len)
{
	struct plain_key *k = key_of(key);

	return open_pkt(pkt, len, k->complete ? k->rx_salt : 0, clear_off, clear_len);
}

static int plain_seal_default(struct rtmfp_crypto *c, uint8_t *pkt, size_t cap,
			      size_t clear_len, size_t *out_len)
{
	(void)c; (void)cap;
	seal(pkt, clear_len, 0, out_len);
	return 0;
}

static int plain_open_default(struct rtmfp_crypto *c, uint8_t *pkt, size_t len,
			      size_t *clear_off, size_t *clear_len)
{
	(void)c;
	return open_pkt(pkt, len, 0, clear_off, clear_len);
}

const struct rtmfp_crypto_ops rtmfp_crypto_plain_ops = {
	.name = RTMFP_CRYPTO_PLAIN_NAME,
	.front_bytes = 0,
	.trailer_bytes = TRAILER_BYTES,
	.create = plain_create,
	.destroy = plain_destroy,
	.local_cert = plain_local_cert,
	.local_epd = plain_local_cert, /* EPD = certificate = identity */
	.local_peer_id = plain_local_peer_id,
	.is_selected = plain_is_selected,
	.sign = plain_sign,
	.near_wins_glare = plain_near_wins_glare,
	.cert_decode = plain_cert_decode,
	.cert_free = plain_cert_free,
	.cert_bytes = plain_cert_bytes,
	.cert_epd = plain_cert_bytes,
	.cert_peer_id = plain_cert_peer_id,
	.cert_selected = plain_cert_selected,
	.cert_overrides = plain_cert_overrides,
	.cert_verify = plain_cert_verify,
	.key_new = plain_key_new,
	.key_free = plain_key_free,
	.key_is_complete = plain_key_is_complete,
	.key_initiator_skic = plain_key_initiator_skic,
	.key_initiator_complete = plain_key_initiator_complete,
	.key_responder = plain_key_responder,
	.key_seal = plain_key_seal,
	.key_open = plain_key_open,
	.seal_default = plain_seal_default,
	.open_default = plain_open_default,
};

int rtmfp_crypto_plain_new(struct rtmfp_crypto **out, const char *identity, size_t len)
{
	struct rtmfp_crypto_params params = {
		.identity = (const uint8_t *)identity,
		.identity_len = len,
	};

	return rtmfp_crypto_new(out, RTMFP_CRYPTO_PLAIN_NAME, &params);
}

int rtmfp_crypto_plain_key_set_salt(struct rtmfp_crypto_key *key, uint16_t rx_salt)
{
	if (key->profile->ops != &rtmfp_crypto_plain_ops || key_of(key)->complete ||
	    key_of(key)->role != ROLE_NONE)
		return -EINVAL;
	key_of(key)->rx_salt = rx_salt;
	return 0;
}
