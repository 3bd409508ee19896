/*
 * rtmfp_crypto_sodium.c - the "sodium" profile (see rtmfp_crypto_sodium.h),
 * RFC 7016 §2.2.3, §3.2, §3.5.1 with libsodium primitives.
 *
 * Owns: Ed25519 certificates and the peer id (SHA-256 of 0x01 | public key),
 * peer-id and name EPDs, the signed X25519 exchange carried in SKIC/SKRC,
 * key derivation from the X25519 result and a transcript hash, AEAD packet
 * sealing with an explicit 64-bit counter, the replay window (learned from
 * WireGuard's counter_validate), the published default key.
 * Leaves to others: which bytes get signed (the session layer passes the
 * IIKeying/RIKeying fields), reading the identity (identity.c).
 *
 * Every secret (identity key, ephemeral keys, X25519 results, derived keys)
 * is wiped on every path out.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "buddyfs/buf.h"
#include "buddyfs/err.h"
#include "buddyfs/rtmfp_crypto_sodium.h"

#define PK_BYTES 32
#define SK_BYTES 64
#define X_BYTES 32                      /* X25519 keys and results */
#define KEY_BYTES 32                    /* AEAD keys */
#define NONCE_BYTES 12
#define CTX_BYTES 32                    /* the context strings below */
#define COUNTER_BYTES RTMFP_CRYPTO_SODIUM_COUNTER_BYTES
#define TAG_BYTES RTMFP_CRYPTO_SODIUM_TAG_BYTES
#define ID_BYTES RTMFP_CRYPTO_PEER_ID_BYTES
#define CHACHA RTMFP_CRYPTO_SODIUM_CIPHER_CHACHA20POLY1305
#define AES RTMFP_CRYPTO_SODIUM_CIPHER_AES256GCM

/* Counters at or past this are refused (sender) and rejected (receiver). */
#define COUNTER_LIMIT (UINT64_C(1) << 60)

/* Replay window: a ring of 64-bit words, as WireGuard's backtrack bitmap. */
#define RING_WORDS 128
#define WINDOW ((uint64_t)(RING_WORDS - 1) * 64)

/* Fixed strings; each exactly CTX_BYTES ASCII bytes, no NUL. */
static const char default_key_text[KEY_BYTES + 1] = "buddyfs rtmfp sodium default v1.";
#define default_key ((const uint8_t *)default_key_text)
static const char ctx_iikeying[CTX_BYTES + 1] = "buddyfs rtmfp sodium IIKeying v1";
static const char ctx_rikeying[CTX_BYTES + 1] = "buddyfs rtmfp sodium RIKeying v1";
static const char ctx_session[CTX_BYTES + 1] = "buddyfs rtmfp sodium session v1.";

_Static_assert(RTMFP_CRYPTO_SODIUM_REPLAY_WINDOW == (RING_WORDS - 1) * 64, "window");
_Static_assert(RTMFP_CRYPTO_SODIUM_CERT_KEY_BYTES + 2 + RTMFP_CRYPTO_SODIUM_MAX_NAME_BYTES
	       <= RTMFP_CRYPTO_MAX_CERT_BYTES, "cert size");

enum role { ROLE_NONE, ROLE_INITIATOR, ROLE_RESPONDER };

struct sodium_state {
	uint8_t sk[SK_BYTES];           /* Ed25519 seed | public key; wiped */
	uint8_t cert[RTMFP_CRYPTO_MAX_CERT_BYTES];
	size_t cert_len;
	uint8_t peer_id[ID_BYTES];
	uint8_t epd[RTMFP_CRYPTO_SODIUM_EPD_PEER_ID_BYTES];
	const uint8_t *name;            /* into cert, or NULL */
	size_t name_len;
	unsigned int ciphers;           /* CHACHA, | AES when usable */
	uint64_t default_counter;       /* nonces for the default key */
};

struct sodium_cert {
	struct rtmfp_crypto_cert base;  /* first: the interface's view */
	uint8_t bytes[RTMFP_CRYPTO_MAX_CERT_BYTES];
	size_t len;
	uint8_t peer_id[ID_BYTES];
	uint8_t epd[RTMFP_CRYPTO_SODIUM_EPD_PEER_ID_BYTES];
	const uint8_t *name;            /* into bytes, or NULL */
	size_t name_len;
};

struct replay {
	uint64_t top;                   /* highest counter accepted, plus 1; 0: none */
	uint64_t ring[RING_WORDS];
};

struct sodium_key {
	struct rtmfp_crypto_key base;   /* first */
	crypto_aead_aes256gcm_state aes_tx, aes_rx; /* expanded AES keys; wiped */
	enum role role;
	bool complete;
	unsigned int cipher;            /* once complete */
	unsigned int offered;           /* initiator: what our SKIC offered */
	uint8_t eph_sk[X_BYTES];        /* initiator, until complete; wiped */
	crypto_generichash_state th;    /* initiator: transcript so far */
	uint8_t tx[KEY_BYTES], rx[KEY_BYTES]; /* session keys; wiped */
	uint64_t tx_counter;
	struct replay replay;
};

static struct sodium_state *state_of(const struct rtmfp_crypto *c)
{
	return c->state;
}

static const struct sodium_cert *cert_of(const struct rtmfp_crypto_cert *cert)
{
	return (const struct sodium_cert *)cert;
}

static struct sodium_key *key_of(struct rtmfp_crypto_key *key)
{
	return (struct sodium_key *)key;
}

/*
 * parse_cert - 0x01 | public key (32) [| 0x0a | n | name (n), n >= 1].
 * Sets *name and *name_len (into @bytes) and the peer id.
 */
static int parse_cert(const uint8_t *bytes, size_t len, uint8_t peer_id[ID_BYTES],
		      const uint8_t **name, size_t *name_len)
{
	struct buf_reader r;
	const uint8_t *pk;
	uint8_t version, tag, n;

	*name = NULL;
	*name_len = 0;
	buf_reader_init(&r, bytes, len);
	if (!buf_get_u8(&r, &version) || version != RTMFP_CRYPTO_SODIUM_CERT_VERSION ||
	    !buf_get_ref(&r, PK_BYTES, &pk))
		return BFS_EMALFORMED;
	if (buf_reader_remaining(&r) > 0) {
		if (!buf_get_u8(&r, &tag) || tag != RTMFP_CRYPTO_SODIUM_CERT_NAME_TAG ||
		    !buf_get_u8(&r, &n) || n == 0 || !buf_get_ref(&r, n, name))
			return BFS_EMALFORMED;
		*name_len = n;
	}
	if (!buf_reader_done(&r))
		return BFS_EMALFORMED;
	if (!crypto_core_ed25519_is_valid_point(pk))
		return BFS_EMALFORMED;
	crypto_hash_sha256(peer_id, bytes, RTMFP_CRYPTO_SODIUM_CERT_KEY_BYTES);
	return 0;
}

/* selects - does @epd select an endpoint with this peer id and name? */
static bool selects(const uint8_t *epd, size_t len, const uint8_t peer_id[ID_BYTES],
		    const uint8_t *name, size_t name_len)
{
	struct buf_reader r;
	const uint8_t *rest;
	size_t n;
	uint8_t type;

	buf_reader_init(&r, epd, len);
	if (!buf_get_u8(&r, &type))
		return false;
	buf_get_rest(&r, &rest, &n);
	switch (type) {
	case RTMFP_CRYPTO_SODIUM_EPD_PEER_ID:
		return n == ID_BYTES && crypto_verify_32(rest, peer_id) == 0;
	case RTMFP_CRYPTO_SODIUM_EPD_NAME:
		return name && n == name_len && n > 0 && memcmp(rest, name, n) == 0;
	default:
		return false;
	}
}

static int sodium_create(struct rtmfp_crypto *c, const struct rtmfp_crypto_params *params)
{
	uint8_t pk[PK_BYTES], sk[SK_BYTES];
	struct sodium_state *s = NULL;
	struct buf_writer w;
	int rc = -EINVAL;

	if (!params->ed25519_sk)
		goto out;
	if (params->server_name_len > RTMFP_CRYPTO_SODIUM_MAX_NAME_BYTES ||
	    (params->server_name_len > 0) != (params->server_name != NULL))
		goto out;
	/* The public half must be the seed's. */
	if (crypto_sign_seed_keypair(pk, sk, params->ed25519_sk) != 0 ||
	    sodium_memcmp(pk, params->ed25519_sk + 32, PK_BYTES) != 0)
		goto out;
	rc = -ENOMEM;
	s = calloc(1, sizeof(*s));
	if (!s)
		goto out;
	memcpy(s->sk, sk, SK_BYTES);

	buf_writer_init(&w, s->cert, sizeof(s->cert));
	buf_put_u8(&w, RTMFP_CRYPTO_SODIUM_CERT_VERSION);
	buf_put_bytes(&w, pk, PK_BYTES);
	if (params->server_name_len > 0) {
		buf_put_u8(&w, RTMFP_CRYPTO_SODIUM_CERT_NAME_TAG);
		buf_put_u8(&w, (uint8_t)params->server_name_len);
		buf_put_bytes(&w, params->server_name, params->server_name_len);
	}
	s->cert_len = buf_writer_len(&w);
	rc = parse_cert(s->cert, s->cert_len, s->peer_id, &s->name, &s->name_len);
	if (rc < 0) {
		rc = -EINVAL;
		sodium_memzero(s, sizeof(*s));
		free(s);
		goto out;
	}
	rtmfp_crypto_sodium_epd_peer_id(s->epd, s->peer_id);
	s->ciphers = CHACHA;
	if (crypto_aead_aes256gcm_is_available() && !(params->flags & RTMFP_CRYPTO_F_NO_AES))
		s->ciphers |= AES;
	randombytes_buf(&s->default_counter, sizeof(s->default_counter));
	s->default_counter &= COUNTER_LIMIT - 1;
	c->state = s;
	rc = 0;
out:
	sodium_memzero(sk, sizeof(sk));
	return rc;
}

static void sodium_destroy(struct rtmfp_crypto *c)
{
	sodium_memzero(c->state, sizeof(struct sodium_state));
	free(c->state);
	c->state = NULL;
}

static void sodium_local_cert(const struct rtmfp_crypto *c, const uint8_t **cert, size_t *len)
{
	*cert = state_of(c)->cert;
	*len = state_of(c)->cert_len;
}

static void sodium_local_epd(const struct rtmfp_crypto *c, const uint8_t **epd, size_t *len)
{
	*epd = state_of(c)->epd;
	*len = sizeof(state_of(c)->epd);
}

static void sodium_local_peer_id(const struct rtmfp_crypto *c, uint8_t out[ID_BYTES])
{
	memcpy(out, state_of(c)->peer_id, ID_BYTES);
}

static bool sodium_is_selected(const struct rtmfp_crypto *c, const uint8_t *epd, size_t len)
{
	const struct sodium_state *s = state_of(c);

	return selects(epd, len, s->peer_id, s->name, s->name_len);
}

/*
 * signed_message - context (32) | 0x00 | a | b into @buf (the caller
 * checked a_len + b_len against RTMFP_CRYPTO_MAX_SIGNED_BYTES).
 */
static size_t signed_message(uint8_t *buf, enum rtmfp_crypto_sig_purpose purpose,
			     const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len)
{
	const char *ctx = purpose == RTMFP_CRYPTO_SIG_IIKEYING ? ctx_iikeying : ctx_rikeying;

	memcpy(buf, ctx, CTX_BYTES);
	buf[CTX_BYTES] = 0x00;
	if (a_len)
		memcpy(buf + CTX_BYTES + 1, a, a_len);
	if (b_len)
		memcpy(buf + CTX_BYTES + 1 + a_len, b, b_len);
	return CTX_BYTES + 1 + a_len + b_len;
}

static int sodium_sign(const struct rtmfp_crypto *c, enum rtmfp_crypto_sig_purpose purpose,
		       const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
		       uint8_t *sig, size_t sig_cap, size_t *sig_len)
{
	uint8_t msg[CTX_BYTES + 1 + RTMFP_CRYPTO_MAX_SIGNED_BYTES];
	size_t n;

	if (sig_cap < RTMFP_CRYPTO_SODIUM_SIG_BYTES)
		return BFS_ETOOBIG;
	n = signed_message(msg, purpose, a, a_len, b, b_len);
	if (crypto_sign_detached(sig, NULL, msg, n, state_of(c)->sk) != 0)
		return BFS_ECRYPTO;
	*sig_len = RTMFP_CRYPTO_SODIUM_SIG_BYTES;
	return 0;
}

static bool sodium_near_wins_glare(const struct rtmfp_crypto *c, const struct rtmfp_crypto_cert *far)
{
	return memcmp(state_of(c)->peer_id, cert_of(far)->peer_id, ID_BYTES) < 0;
}

static int sodium_cert_decode(struct rtmfp_crypto *c, const uint8_t *bytes, size_t len,
			      struct rtmfp_crypto_cert **out)
{
	struct sodium_cert *cert;
	int rc;

	if (len > RTMFP_CRYPTO_MAX_CERT_BYTES)
		return BFS_EMALFORMED;
	cert = calloc(1, sizeof(*cert));
	if (!cert)
		return -ENOMEM;
	if (len)
		memcpy(cert->bytes, bytes, len);
	cert->len = len;
	rc = parse_cert(cert->bytes, len, cert->peer_id, &cert->name, &cert->name_len);
	if (rc < 0) {
		free(cert);
		return rc;
	}
	cert->base.profile = c;
	rtmfp_crypto_sodium_epd_peer_id(cert->epd, cert->peer_id);
	*out = &cert->base;
	return 0;
}

static void sodium_cert_free(struct rtmfp_crypto_cert *cert)
{
	free(cert);
}

static void sodium_cert_bytes(const struct rtmfp_crypto_cert *cert, const uint8_t **bytes, size_t *len)
{
	*bytes = cert_of(cert)->bytes;
	*len = cert_of(cert)->len;
}

static void sodium_cert_epd(const struct rtmfp_crypto_cert *cert, const uint8_t **epd, size_t *len)
{
	*epd = cert_of(cert)->epd;
	*len = sizeof(cert_of(cert)->epd);
}

static void sodium_cert_peer_id(const struct rtmfp_crypto_cert *cert, uint8_t out[ID_BYTES])
{
	memcpy(out, cert_of(cert)->peer_id, ID_BYTES);
}

static bool sodium_cert_selected(const struct rtmfp_crypto_cert *cert, const uint8_t *epd, size_t len)
{
	const struct sodium_cert *sc = cert_of(cert);

	return selects(epd, len, sc->peer_id, sc->name, sc->name_len);
}

static bool sodium_cert_overrides(const struct rtmfp_crypto_cert *cert, const struct rtmfp_crypto_cert *old)
{
	return crypto_verify_32(cert_of(cert)->peer_id, cert_of(old)->peer_id) == 0;
}

static int sodium_cert_verify(const struct rtmfp_crypto_cert *cert, enum rtmfp_crypto_sig_purpose purpose,
			      const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
			      const uint8_t *sig, size_t sig_len)
{
	uint8_t msg[CTX_BYTES + 1 + RTMFP_CRYPTO_MAX_SIGNED_BYTES];
	size_t n;

	if (!sig || sig_len != RTMFP_CRYPTO_SODIUM_SIG_BYTES)
		return BFS_EBADSIG;
	n = signed_message(msg, purpose, a, a_len, b, b_len);
	/* the public key is bytes 1..32 of the certificate */
	if (crypto_sign_verify_detached(sig, msg, n, cert_of(cert)->bytes + 1) != 0)
		return BFS_EBADSIG;
	return 0;
}

static int sodium_key_new(struct rtmfp_crypto *c, struct rtmfp_crypto_key **out)
{
	/* libsodium's hash state wants 64-byte alignment; malloc gives 16 */
	struct sodium_key *k = aligned_alloc(_Alignof(struct sodium_key), sizeof(*k));

	if (!k)
		return -ENOMEM;
	memset(k, 0, sizeof(*k));
	k->base.profile = c;
	*out = &k->base;
	return 0;
}

static void sodium_key_free(struct rtmfp_crypto_key *key)
{
	sodium_memzero(key_of(key), sizeof(struct sodium_key));
	free(key);
}

static bool sodium_key_is_complete(const struct rtmfp_crypto_key *key)
{
	return ((const struct sodium_key *)key)->complete;
}

/* th_put - a length-prefixed item of the transcript hash. */
static void th_put(crypto_generichash_state *th, const uint8_t *p, size_t len)
{
	uint8_t be[2];

	buf_store16_be(be, (uint16_t)len);
	crypto_generichash_update(th, be, sizeof(be));
	crypto_generichash_update(th, p, len);
}

/* th_start - context | cert_i | cert_r | SKIC, the part both sides know first. */
static void th_start(crypto_generichash_state *th, const uint8_t *cert_i, size_t cert_i_len,
		     const uint8_t *cert_r, size_t cert_r_len, const uint8_t *skic)
{
	crypto_generichash_init(th, NULL, 0, 32);
	crypto_generichash_update(th, (const uint8_t *)ctx_session, CTX_BYTES);
	th_put(th, cert_i, cert_i_len);
	th_put(th, cert_r, cert_r_len);
	th_put(th, skic, RTMFP_CRYPTO_SODIUM_SKIC_BYTES);
}

/*
 * derive - finish the transcript with the SKRC, then
 * okm = BLAKE2b-512(key = X25519 result, message = transcript hash):
 * okm[0..31] keys initiator -> responder, okm[32..63] responder -> initiator.
 * @th is consumed (finalised and wiped).  Wipes its own secrets.
 */
static int derive(struct sodium_key *k, crypto_generichash_state *th, const uint8_t *skrc,
		  const uint8_t my_sk[X_BYTES], const uint8_t far_pk[X_BYTES], unsigned int cipher)
{
	uint8_t dh[X_BYTES], hash[32], okm[64];
	int rc = BFS_ECRYPTO;

	th_put(th, skrc, RTMFP_CRYPTO_SODIUM_SKRC_BYTES);
	crypto_generichash_final(th, hash, sizeof(hash));
	if (crypto_scalarmult(dh, my_sk, far_pk) != 0) /* all-zero result */
		goto out;
	if (crypto_generichash(okm, sizeof(okm), hash, sizeof(hash), dh, sizeof(dh)) != 0)
		goto out;
	if (k->role == ROLE_INITIATOR) {
		memcpy(k->tx, okm, KEY_BYTES);
		memcpy(k->rx, okm + KEY_BYTES, KEY_BYTES);
	} else {
		memcpy(k->rx, okm, KEY_BYTES);
		memcpy(k->tx, okm + KEY_BYTES, KEY_BYTES);
	}
	if (cipher == AES) {
		crypto_aead_aes256gcm_beforenm(&k->aes_tx, k->tx);
		crypto_aead_aes256gcm_beforenm(&k->aes_rx, k->rx);
	}
	k->cipher = cipher;
	k->tx_counter = 0;
	memset(&k->replay, 0, sizeof(k->replay));
	k->complete = true;
	rc = 0;
out:
	sodium_memzero(dh, sizeof(dh));
	sodium_memzero(hash, sizeof(hash));
	sodium_memzero(okm, sizeof(okm));
	sodium_memzero(th, sizeof(*th));
	return rc;
}

/* x25519_keypair - a fresh ephemeral key pair (32 random bytes, clamped by X25519). */
static void x25519_keypair(uint8_t pk[X_BYTES], uint8_t sk[X_BYTES])
{
	randombytes_buf(sk, X_BYTES);
	crypto_scalarmult_base(pk, sk);
}

/* keying fields: version | cipher(s) | X25519 public key | peer id */
struct keying {
	uint8_t version;
	uint8_t ciphers;
	const uint8_t *pk;
	const uint8_t *peer_id;
};

static int parse_keying(const uint8_t *p, size_t len, struct keying *out)
{
	struct buf_reader r;

	buf_reader_init(&r, p, len);
	buf_get_u8(&r, &out->version);
	buf_get_u8(&r, &out->ciphers);
	buf_get_ref(&r, X_BYTES, &out->pk);
	buf_get_ref(&r, ID_BYTES, &out->peer_id);
	if (!buf_reader_done(&r) || out->version != RTMFP_CRYPTO_SODIUM_KEYING_VERSION)
		return BFS_EMALFORMED;
	return 0;
}

static void put_keying(uint8_t out[RTMFP_CRYPTO_SODIUM_SKIC_BYTES], unsigned int ciphers,
		       const uint8_t pk[X_BYTES], const uint8_t peer_id[ID_BYTES])
{
	struct buf_writer w;

	buf_writer_init(&w, out, RTMFP_CRYPTO_SODIUM_SKIC_BYTES);
	buf_put_u8(&w, RTMFP_CRYPTO_SODIUM_KEYING_VERSION);
	buf_put_u8(&w, (uint8_t)ciphers);
	buf_put_bytes(&w, pk, X_BYTES);
	buf_put_bytes(&w, peer_id, ID_BYTES);
}

static int sodium_key_initiator_skic(struct rtmfp_crypto_key *key, const struct rtmfp_crypto_cert *responder,
				     uint8_t *skic, size_t cap, size_t *len)
{
	struct sodium_key *k = key_of(key);
	const struct sodium_state *s = state_of(k->base.profile);
	const struct sodium_cert *r = cert_of(responder);
	uint8_t pk[X_BYTES];

	if (k->role != ROLE_NONE)
		return -EINVAL;
	if (cap < RTMFP_CRYPTO_SODIUM_SKIC_BYTES)
		return BFS_ETOOBIG;
	/* e */
	x25519_keypair(pk, k->eph_sk);
	put_keying(skic, s->ciphers, pk, r->peer_id);
	k->offered = s->ciphers;
	k->role = ROLE_INITIATOR;
	th_start(&k->th, s->cert, s->cert_len, r->bytes, r->len, skic);
	*len = RTMFP_CRYPTO_SODIUM_SKIC_BYTES;
	return 0;
}

static int sodium_key_initiator_complete(struct rtmfp_crypto_key *key, const uint8_t *skrc, size_t len)
{
	struct sodium_key *k = key_of(key);
	const struct sodium_state *s = state_of(k->base.profile);
	crypto_generichash_state th;
	struct keying f;
	int rc;

	if (k->role != ROLE_INITIATOR || k->complete)
		return -EINVAL;
	rc = parse_keying(skrc, len, &f);
	if (rc < 0)
		return rc;
	if ((f.ciphers != CHACHA && f.ciphers != AES) || !(f.ciphers & k->offered))
		return BFS_EPROTO;
	if (crypto_verify_32(f.peer_id, s->peer_id) != 0)
		return BFS_EPROTO;
	/* ee: on a copy of the transcript, so a bad SKRC leaves the key as it was */
	memcpy(&th, &k->th, sizeof(th));
	rc = derive(k, &th, skrc, k->eph_sk, f.pk, f.ciphers);
	if (rc < 0)
		return rc;
	sodium_memzero(k->eph_sk, sizeof(k->eph_sk));
	sodium_memzero(&k->th, sizeof(k->th));
	return 0;
}

static int sodium_key_responder(struct rtmfp_crypto_key *key, const struct rtmfp_crypto_cert *initiator,
				const uint8_t *skic, size_t skic_len,
				uint8_t *skrc, size_t cap, size_t *skrc_len)
{
	struct sodium_key *k = key_of(key);
	const struct sodium_state *s = state_of(k->base.profile);
	const struct sodium_cert *i = cert_of(initiator);
	uint8_t pk[X_BYTES], sk[X_BYTES], out[RTMFP_CRYPTO_SODIUM_SKRC_BYTES];
	crypto_generichash_state th;
	struct keying f;
	unsigned int cipher;
	int rc;

	if (k->role != ROLE_NONE)
		return -EINVAL;
	rc = parse_keying(skic, skic_len, &f);
	if (rc < 0)
		return rc;
	if (!(f.ciphers & CHACHA) || crypto_verify_32(f.peer_id, s->peer_id) != 0)
		return BFS_EPROTO;
	if (cap < RTMFP_CRYPTO_SODIUM_SKRC_BYTES)
		return BFS_ETOOBIG;
	cipher = (f.ciphers & s->ciphers & AES) ? AES : CHACHA;
	/* e */
	x25519_keypair(pk, sk);
	put_keying(out, cipher, pk, i->peer_id);
	th_start(&th, i->bytes, i->len, s->cert, s->cert_len, skic);
	k->role = ROLE_RESPONDER;
	/* ee */
	rc = derive(k, &th, out, sk, f.pk, cipher);
	if (rc < 0) {
		k->role = ROLE_NONE;
		goto out;
	}
	memcpy(skrc, out, sizeof(out));
	*skrc_len = sizeof(out);
out:
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(&th, sizeof(th));
	return rc;
}

/* ---- replay window (after WireGuard's counter_validate) ---- */

/* replay_fresh - could @ctr still be accepted?  Read-only. */
static bool replay_fresh(const struct replay *r, uint64_t ctr)
{
	uint64_t n;

	if (ctr >= COUNTER_LIMIT)
		return false;
	n = ctr + 1;
	if (n + WINDOW < r->top)
		return false; /* too old */
	if (n > r->top)
		return true;  /* ahead of everything seen */
	return !(r->ring[(n >> 6) & (RING_WORDS - 1)] >> (n & 63) & 1);
}

/* replay_accept - mark @ctr seen, moving the window; only after authentication. */
static bool replay_accept(struct replay *r, uint64_t ctr)
{
	uint64_t n, cur, top, i, d;

	if (!replay_fresh(r, ctr))
		return false;
	n = ctr + 1;
	if (n > r->top) {
		cur = r->top >> 6;
		top = n >> 6;
		d = top - cur < RING_WORDS ? top - cur : RING_WORDS;
		for (i = 1; i <= d; i++)
			r->ring[(cur + i) & (RING_WORDS - 1)] = 0;
		r->top = n;
	}
	r->ring[(n >> 6) & (RING_WORDS - 1)] |= UINT64_C(1) << (n & 63);
	return true;
}

/* ---- packets: counter (8) | ciphertext | tag (16) ---- */

static void make_nonce(uint8_t nonce[NONCE_BYTES], uint64_t ctr)
{
	memset(nonce, 0, 4);
	buf_store64_be(nonce + 4, ctr);
}

static int seal_chacha(const uint8_t key[KEY_BYTES], uint8_t *pkt, size_t clear_len, uint64_t ctr,
		       size_t *out_len)
{
	uint8_t nonce[NONCE_BYTES];
	uint8_t *m = pkt + COUNTER_BYTES;

	buf_store64_be(pkt, ctr);
	make_nonce(nonce, ctr);
	if (crypto_aead_chacha20poly1305_ietf_encrypt_detached(m, m + clear_len, NULL, m, clear_len,
							       NULL, 0, NULL, nonce, key) != 0)
		return BFS_ECRYPTO;
	*out_len = COUNTER_BYTES + clear_len + TAG_BYTES;
	return 0;
}

/* open_aead - verify then decrypt in place; *ctr gets the packet counter. */
static int open_aead(const uint8_t *key, const crypto_aead_aes256gcm_state *aes, unsigned int cipher,
		     uint8_t *pkt, size_t len, uint64_t *ctr, size_t *clear_off, size_t *clear_len)
{
	uint8_t nonce[NONCE_BYTES];
	uint8_t *m = pkt + COUNTER_BYTES;
	size_t n;
	int rc;

	if (len < COUNTER_BYTES + 1 + TAG_BYTES)
		return BFS_EMALFORMED;
	n = len - COUNTER_BYTES - TAG_BYTES;
	*ctr = buf_load64_be(pkt);
	make_nonce(nonce, *ctr);
	if (cipher == AES)
		rc = crypto_aead_aes256gcm_decrypt_detached_afternm(m, NULL, m, n, m + n, NULL, 0,
								    nonce, aes);
	else
		rc = crypto_aead_chacha20poly1305_ietf_decrypt_detached(m, NULL, m, n, m + n, NULL, 0,
									nonce, key);
	if (rc != 0)
		return BFS_ECRYPTO;
	*clear_off = COUNTER_BYTES;
	*clear_len = n;
	return 0;
}

static int sodium_seal_default(struct rtmfp_crypto *c, uint8_t *pkt, size_t cap,
			       size_t clear_len, size_t *out_len)
{
	struct sodium_state *s = state_of(c);

	(void)cap;
	s->default_counter = (s->default_counter + 1) & (COUNTER_LIMIT - 1);
	return seal_chacha(default_key, pkt, clear_len, s->default_counter, out_len);
}

static int sodium_open_default(struct rtmfp_crypto *c, uint8_t *pkt, size_t len,
			       size_t *clear_off, size_t *clear_len)
{
	uint64_t ctr;

	(void)c;
	return open_aead(default_key, NULL, CHACHA, pkt, len, &ctr, clear_off, clear_len);
}

static int sodium_key_seal(struct rtmfp_crypto_key *key, uint8_t *pkt, size_t cap,
			   size_t clear_len, size_t *out_len)
{
	struct sodium_key *k = key_of(key);
	uint8_t nonce[NONCE_BYTES];
	uint8_t *m = pkt + COUNTER_BYTES;
	uint64_t ctr;

	if (!k->complete)
		return sodium_seal_default((struct rtmfp_crypto *)k->base.profile, pkt, cap,
					   clear_len, out_len);
	if (k->tx_counter >= COUNTER_LIMIT)
		return BFS_ECRYPTO;
	ctr = k->tx_counter++;
	if (k->cipher != AES)
		return seal_chacha(k->tx, pkt, clear_len, ctr, out_len);
	buf_store64_be(pkt, ctr);
	make_nonce(nonce, ctr);
	if (crypto_aead_aes256gcm_encrypt_detached_afternm(m, m + clear_len, NULL, m, clear_len,
							   NULL, 0, NULL, nonce, &k->aes_tx) != 0)
		return BFS_ECRYPTO;
	*out_len = COUNTER_BYTES + clear_len + TAG_BYTES;
	return 0;
}

static int sodium_key_open(struct rtmfp_crypto_key *key, uint8_t *pkt, size_t len,
			   size_t *clear_off, size_t *clear_len)
{
	struct sodium_key *k = key_of(key);
	uint64_t ctr;
	int rc;

	if (!k->complete)
		return sodium_open_default((struct rtmfp_crypto *)k->base.profile, pkt, len,
					   clear_off, clear_len);
	if (len < COUNTER_BYTES + 1 + TAG_BYTES)
		return BFS_EMALFORMED;
	/* cheap drop of replays before any cryptography */
	if (!replay_fresh(&k->replay, buf_load64_be(pkt)))
		return BFS_ECRYPTO;
	rc = open_aead(k->rx, &k->aes_rx, k->cipher, pkt, len, &ctr, clear_off, clear_len);
	if (rc < 0)
		return rc;
	/* authentic: now, and only now, move the window */
	if (!replay_accept(&k->replay, ctr))
		return BFS_ECRYPTO;
	return 0;
}

const struct rtmfp_crypto_ops rtmfp_crypto_sodium_ops = {
	.name = RTMFP_CRYPTO_SODIUM_NAME,
	.front_bytes = COUNTER_BYTES,
	.trailer_bytes = TAG_BYTES,
	.create = sodium_create,
	.destroy = sodium_destroy,
	.local_cert = sodium_local_cert,
	.local_epd = sodium_local_epd,
	.local_peer_id = sodium_local_peer_id,
	.is_selected = sodium_is_selected,
	.sign = sodium_sign,
	.near_wins_glare = sodium_near_wins_glare,
	.cert_decode = sodium_cert_decode,
	.cert_free = sodium_cert_free,
	.cert_bytes = sodium_cert_bytes,
	.cert_epd = sodium_cert_epd,
	.cert_peer_id = sodium_cert_peer_id,
	.cert_selected = sodium_cert_selected,
	.cert_overrides = sodium_cert_overrides,
	.cert_verify = sodium_cert_verify,
	.key_new = sodium_key_new,
	.key_free = sodium_key_free,
	.key_is_complete = sodium_key_is_complete,
	.key_initiator_skic = sodium_key_initiator_skic,
	.key_initiator_complete = sodium_key_initiator_complete,
	.key_responder = sodium_key_responder,
	.key_seal = sodium_key_seal,
	.key_open = sodium_key_open,
	.seal_default = sodium_seal_default,
	.open_default = sodium_open_default,
};

int rtmfp_crypto_sodium_new(struct rtmfp_crypto **out, const uint8_t ed25519_sk[static 64],
			    const uint8_t *server_name, size_t server_name_len, unsigned int flags)
{
	struct rtmfp_crypto_params p = {
		.ed25519_sk = ed25519_sk,
		.server_name = server_name,
		.server_name_len = server_name_len,
		.flags = flags,
	};

	return rtmfp_crypto_new(out, RTMFP_CRYPTO_SODIUM_NAME, &p);
}

void rtmfp_crypto_sodium_epd_peer_id(uint8_t epd[static RTMFP_CRYPTO_SODIUM_EPD_PEER_ID_BYTES],
				     const uint8_t id[static RTMFP_CRYPTO_PEER_ID_BYTES])
{
	epd[0] = RTMFP_CRYPTO_SODIUM_EPD_PEER_ID;
	memcpy(epd + 1, id, RTMFP_CRYPTO_PEER_ID_BYTES);
}

int rtmfp_crypto_sodium_epd_name(uint8_t *epd, size_t cap, size_t *len,
				 const uint8_t *name, size_t name_len)
{
	if (!name || name_len == 0 || name_len > RTMFP_CRYPTO_SODIUM_MAX_NAME_BYTES)
		return -EINVAL;
	if (cap < name_len + 1)
		return BFS_ETOOBIG;
	epd[0] = RTMFP_CRYPTO_SODIUM_EPD_NAME;
	memcpy(epd + 1, name, name_len);
	*len = name_len + 1;
	return 0;
}

unsigned int rtmfp_crypto_sodium_key_cipher(const struct rtmfp_crypto_key *key)
{
	const struct sodium_key *k = (const struct sodium_key *)key;

	if (!key || key->profile->ops != &rtmfp_crypto_sodium_ops || !k->complete)
		return 0;
	return k->cipher;
}
