/*
 * rtmfp_crypto.h - the RTMFP cryptography profile interface (RFC 7016 §2.2.3,
 * §3.2, §3.5.1).
 *
 * RFC 7016 leaves certificates, Endpoint Discriminators (EPDs), the session
 * key exchange (SKIC/SKRC), signatures and packet encryption to a
 * "cryptography profile".  This header is the one seam between the RTMFP core
 * (rtmfp, rtmfp_session) and the profiles:
 *   - sodium (rtmfp_crypto_sodium.h), the default: Ed25519 certificates,
 *     X25519 ephemeral keys, ChaCha20-Poly1305 or AES-256-GCM packets;
 *   - plain (rtmfp_crypto_plain.h), for interoperability tests only:
 *     bit-exact with rtmfp-cpp's PlainCryptoAdapter, no security at all.
 * docs/PROTOCOL.md has every byte of both.
 *
 * Owns: the profile object (struct rtmfp_crypto: a table of function pointers
 * plus opaque state), decoded far certificates (struct rtmfp_crypto_cert),
 * per-session keys (struct rtmfp_crypto_key), sealing and opening packets,
 * profile lookup by name, the Internet checksum used by plain.
 * Leaves to others: chunk encoding (rtmfp_wire), which bytes are signed (the
 * session layer passes them in, see "Handshake" below), session ids and
 * their scrambling (rtmfp / rtmfp_session), reading identity files
 * (identity; a profile takes raw key bytes and never touches files).
 *
 * Handshake (RFC 7016 §3.5.1), what the session layer calls, in order:
 *
 *   Initiator                               Responder
 *   IHello(epd = rtmfp_crypto_cert_epd()
 *          or rtmfp_crypto_sodium_epd_*)
 *                                           rtmfp_crypto_is_selected(epd)?
 *                                           RHello(cert = rtmfp_crypto_local_cert())
 *   cert = rtmfp_crypto_cert_decode(RHello cert)
 *   rtmfp_crypto_cert_selected(cert, epd)?  (else drop the RHello)
 *   key = rtmfp_crypto_key_new()
 *   rtmfp_crypto_key_initiator_skic(key, cert) -> SKIC
 *   signed = isid | cookie field | local cert field | SKIC field
 *            (the IIKeying bytes from the session id through the SKIC
 *             field, exactly as on the wire, RFC 7016 §2.3.7)
 *   rtmfp_crypto_sign(SIG_IIKEYING, signed) -> signature
 *   IIKeying(signed | signature)
 *                                           cert = rtmfp_crypto_cert_decode(IIKeying cert)
 *                                           rtmfp_crypto_cert_verify(cert, SIG_IIKEYING,
 *                                               signed, signature)   (else drop)
 *                                           key = rtmfp_crypto_key_new()
 *                                           rtmfp_crypto_key_responder(key, cert, SKIC)
 *                                               -> SKRC, key complete
 *                                           signed = rsid | SKRC field   (RFC 7016 §2.3.8)
 *                                           rtmfp_crypto_sign(SIG_RIKEYING, signed, SKIC)
 *                                               -> signature
 *                                           RIKeying(signed | signature), sealed with
 *                                               the DEFAULT key (rtmfp_crypto_seal_default)
 *   rtmfp_crypto_cert_verify(cert, SIG_RIKEYING, signed, SKIC, signature)
 *   rtmfp_crypto_key_initiator_complete(key, SKRC)  -> key complete
 *
 * Glare (§3.5.1.3): rtmfp_crypto_near_wins_glare(profile, far cert).
 * A new certificate replaces an existing session when
 * rtmfp_crypto_cert_overrides() says they name the same endpoint (§3.2).
 *
 * Packets.  A datagram is  SSID(4) | encrypted packet.  The session layer
 * writes and reads the scrambled session id word; a profile seals and opens
 * the "encrypted packet" in place, in the caller's buffer, with no malloc:
 *
 *   pkt[0 .. front)                  profile front: sodium 8-byte packet
 *                                    counter (big-endian), plain nothing
 *   pkt[front .. front+n)            the packet of §2.2.4 (flags, timestamp,
 *                                    timestamp echo, chunks): n cleartext
 *                                    bytes in, n ciphertext bytes out
 *   pkt[front+n .. front+n+trailer)  profile trailer: sodium 16-byte AEAD tag,
 *                                    plain 16 x 0xff then a 16-bit checksum
 *
 * where pkt is the byte right after the SSID word.  An encrypted packet we
 * seal is always at least 8 bytes (both profiles), so scrambling the SSID
 * (§2.2.2: session id XOR the first two 32-bit words of pkt) never needs the
 * zero-padding case on send; a far packet may be shorter (plain accepts 3
 * bytes, as rtmfp-cpp does), so the receiver pads with zeros as §2.2.2
 * says.  The session layer therefore: puts the cleartext at
 * pkt + rtmfp_crypto_front_bytes(), keeps front + n + trailer (that is
 * n + rtmfp_crypto_overhead_bytes()) + 4 within its datagram limit (1,280
 * bytes), calls a seal function, then scrambles the session id over the
 * first 8 bytes of pkt.  On receipt it unscrambles the SSID, picks the key
 * (session id 0: the default key; see rtmfp_crypto_open_default()), calls an
 * open function and parses *clear_len bytes at pkt + *clear_off.
 *
 * Keys.  A struct rtmfp_crypto_key starts incomplete; until it completes,
 * rtmfp_crypto_key_seal()/_open() use the profile's Default Session Key,
 * like rtmfp-cpp's SessionCryptoKey.  Once complete they use the session
 * keys only.  rtmfp_crypto_seal_default()/_open_default() always use the
 * default key: for session id 0 (IHello, RHello, IIKeying, Redirect) and
 * for startup packets sent to the initiator's session id before it has a
 * key (RIKeying, Cookie Change), as rtmfp-cpp's StartupSession does.
 * The default key is public: it guards startup packets against accidents,
 * not attackers.
 *
 * Errors: 0 or a negative code (err.h): BFS_EMALFORMED (far bytes do not
 * decode), BFS_EBADSIG, BFS_ECRYPTO (authentication or a primitive failed,
 * a replayed or too old packet), BFS_EPROTO (far side broke the profile's
 * rules, e.g. a SKIC for another responder), BFS_ETOOBIG (an output does
 * not fit), -EINVAL (misuse: wrong state, wrong profile), -ENOMEM, -ENOENT.
 *
 * Threading: none.  A profile and everything made from it belong to one
 * event loop.  Secrets (private keys, ephemeral keys, session keys) are
 * wiped with sodium_memzero when they are no longer needed and on free.
 */
#ifndef BUDDYFS_RTMFP_CRYPTO_H
#define BUDDYFS_RTMFP_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Upper bounds over all profiles, for fixed buffers in the session layer. */
#define RTMFP_CRYPTO_PEER_ID_BYTES 32     /* far/near peer id (fingerprint) */
#define RTMFP_CRYPTO_MAX_CERT_BYTES 512   /* an encoded certificate */
#define RTMFP_CRYPTO_MAX_EPD_BYTES 512    /* an EPD a profile will produce/match */
#define RTMFP_CRYPTO_MAX_SKIC_BYTES 128   /* a SKIC we produce */
#define RTMFP_CRYPTO_MAX_SKRC_BYTES 128   /* a SKRC we produce */
#define RTMFP_CRYPTO_MAX_SIG_BYTES 64     /* a signature we produce */
#define RTMFP_CRYPTO_MAX_FRONT_BYTES 8    /* rtmfp_crypto_front_bytes() <= this */
#define RTMFP_CRYPTO_MAX_TRAILER_BYTES 18 /* rtmfp_crypto_trailer_bytes() <= this */
#define RTMFP_CRYPTO_MAX_OVERHEAD_BYTES \
	(RTMFP_CRYPTO_MAX_FRONT_BYTES + RTMFP_CRYPTO_MAX_TRAILER_BYTES)
/* The most bytes rtmfp_crypto_sign()/_cert_verify() sign (a + b). */
#define RTMFP_CRYPTO_MAX_SIGNED_BYTES 2048

/* The profile used when none is named. */
#define RTMFP_CRYPTO_DEFAULT_PROFILE "sodium"

/* What a signature is for; part of what sodium signs (domain separation). */
enum rtmfp_crypto_sig_purpose {
	RTMFP_CRYPTO_SIG_IIKEYING = 1, /* IIKeying signed parameters (§2.3.7) */
	RTMFP_CRYPTO_SIG_RIKEYING = 2, /* RIKeying signed parameters + SKIC (§2.3.8) */
};

/*
 * Parameters of rtmfp_crypto_new().  Every pointer is borrowed for the call
 * only: the profile copies what it keeps, so the caller may wipe and free
 * the secret key right after.
 */
struct rtmfp_crypto_params {
	/* plain: the identity string; certificate = EPD = these bytes.
	 * 1..RTMFP_CRYPTO_PLAIN_MAX_IDENTITY_BYTES bytes.  Ignored by sodium. */
	const uint8_t *identity;
	size_t identity_len;
	/* sodium: the Ed25519 secret key in libsodium's layout (32-byte seed
	 * then the 32-byte public key), 64 bytes.  Required by sodium. */
	const uint8_t *ed25519_sk;
	/* sodium: an optional server name (e.g. the rendezvous host name),
	 * carried in the certificate and matched by name EPDs (0x0a);
	 * NULL/0 for none, else 1..255 bytes. */
	const uint8_t *server_name;
	size_t server_name_len;
	/* RTMFP_CRYPTO_F_* flags. */
	unsigned int flags;
};

/* sodium: never offer or pick AES-256-GCM (tests; forces ChaCha20-Poly1305). */
#define RTMFP_CRYPTO_F_NO_AES 0x1u

struct rtmfp_crypto;

/*
 * A decoded far certificate.  Made by rtmfp_crypto_cert_decode(), freed by
 * rtmfp_crypto_cert_free().  Only the profile looks inside: the visible
 * member is the first member of each profile's private struct.
 */
struct rtmfp_crypto_cert {
	const struct rtmfp_crypto *profile;
};

/*
 * A session key (one per session and per responder attempt).  Made by
 * rtmfp_crypto_key_new(), freed (and wiped) by rtmfp_crypto_key_free().
 * Same layout rule as struct rtmfp_crypto_cert.
 */
struct rtmfp_crypto_key {
	const struct rtmfp_crypto *profile;
};

/*
 * The profile interface: one static table per profile.  The session layer
 * calls the rtmfp_crypto_* wrappers below, never these pointers; they are
 * here so a new profile (or a test double) can be added without touching
 * the core.  Each function's contract is the wrapper's of the same name.
 */
struct rtmfp_crypto_ops {
	const char *name;
	size_t front_bytes;
	size_t trailer_bytes;

	int (*create)(struct rtmfp_crypto *c, const struct rtmfp_crypto_params *params);
	void (*destroy)(struct rtmfp_crypto *c);

	void (*local_cert)(const struct rtmfp_crypto *c, const uint8_t **cert, size_t *len);
	void (*local_epd)(const struct rtmfp_crypto *c, const uint8_t **epd, size_t *len);
	void (*local_peer_id)(const struct rtmfp_crypto *c, uint8_t out[RTMFP_CRYPTO_PEER_ID_BYTES]);
	bool (*is_selected)(const struct rtmfp_crypto *c, const uint8_t *epd, size_t len);
	int (*sign)(const struct rtmfp_crypto *c, enum rtmfp_crypto_sig_purpose purpose,
		    const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
		    uint8_t *sig, size_t sig_cap, size_t *sig_len);
	bool (*near_wins_glare)(const struct rtmfp_crypto *c, const struct rtmfp_crypto_cert *far);

	int (*cert_decode)(struct rtmfp_crypto *c, const uint8_t *bytes, size_t len,
			   struct rtmfp_crypto_cert **out);
	void (*cert_free)(struct rtmfp_crypto_cert *cert);
	void (*cert_bytes)(const struct rtmfp_crypto_cert *cert, const uint8_t **bytes, size_t *len);
	void (*cert_epd)(const struct rtmfp_crypto_cert *cert, const uint8_t **epd, size_t *len);
	void (*cert_peer_id)(const struct rtmfp_crypto_cert *cert, uint8_t out[RTMFP_CRYPTO_PEER_ID_BYTES]);
	bool (*cert_selected)(const struct rtmfp_crypto_cert *cert, const uint8_t *epd, size_t len);
	bool (*cert_overrides)(const struct rtmfp_crypto_cert *cert, const struct rtmfp_crypto_cert *old);
	int (*cert_verify)(const struct rtmfp_crypto_cert *cert, enum rtmfp_crypto_sig_purpose purpose,
			   const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
			   const uint8_t *sig, size_t sig_len);

	int (*key_new)(struct rtmfp_crypto *c, struct rtmfp_crypto_key **out);
	void (*key_free)(struct rtmfp_crypto_key *key);
	bool (*key_is_complete)(const struct rtmfp_crypto_key *key);
	int (*key_initiator_skic)(struct rtmfp_crypto_key *key, const struct rtmfp_crypto_cert *responder,
				  uint8_t *skic, size_t cap, size_t *len);
	int (*key_initiator_complete)(struct rtmfp_crypto_key *key, const uint8_t *skrc, size_t len);
	int (*key_responder)(struct rtmfp_crypto_key *key, const struct rtmfp_crypto_cert *initiator,
			     const uint8_t *skic, size_t skic_len,
			     uint8_t *skrc, size_t cap, size_t *skrc_len);
	int (*key_seal)(struct rtmfp_crypto_key *key, uint8_t *pkt, size_t cap,
			size_t clear_len, size_t *out_len);
	int (*key_open)(struct rtmfp_crypto_key *key, uint8_t *pkt, size_t len,
			size_t *clear_off, size_t *clear_len);
	int (*seal_default)(struct rtmfp_crypto *c, uint8_t *pkt, size_t cap,
			    size_t clear_len, size_t *out_len);
	int (*open_default)(struct rtmfp_crypto *c, uint8_t *pkt, size_t len,
			    size_t *clear_off, size_t *clear_len);
};

/* A profile instance: its table and its private state. */
struct rtmfp_crypto {
	const struct rtmfp_crypto_ops *ops;
	void *state; /* the profile's; opaque to everyone else */
};

/* ---- profiles ---- */

/*
 * rtmfp_crypto_profile_find - the table of the profile called @name
 * ("sodium", "plain"), or NULL.  @name NULL means the default profile.
 */
const struct rtmfp_crypto_ops *rtmfp_crypto_profile_find(const char *name);

/*
 * rtmfp_crypto_new - make a profile instance.
 * @out:    receives the instance; free with rtmfp_crypto_free().
 * @name:   profile name, NULL for RTMFP_CRYPTO_DEFAULT_PROFILE.
 * @params: what the profile needs (see struct rtmfp_crypto_params).
 * Errors: -ENOENT unknown profile; -EINVAL missing or bad parameters (e.g.
 * an Ed25519 secret key whose public half does not match its seed);
 * -ENOMEM; BFS_ECRYPTO (libsodium could not start).
 */
int rtmfp_crypto_new(struct rtmfp_crypto **out, const char *name,
		     const struct rtmfp_crypto_params *params);

/* rtmfp_crypto_free - free @c and wipe its secrets (NULL is fine).  Free
 * every cert and key made from @c first. */
void rtmfp_crypto_free(struct rtmfp_crypto *c);

/* rtmfp_crypto_name - the profile's name ("sodium", "plain"); static. */
const char *rtmfp_crypto_name(const struct rtmfp_crypto *c);

/* ---- packet layout (see "Packets" above) ---- */

/* Bytes a profile puts before the cleartext (sodium 8, plain 0). */
size_t rtmfp_crypto_front_bytes(const struct rtmfp_crypto *c);
/* Bytes a profile puts after the cleartext (sodium 16, plain 18). */
size_t rtmfp_crypto_trailer_bytes(const struct rtmfp_crypto *c);
/* front + trailer: what sealing adds to a packet (sodium 24, plain 18). */
size_t rtmfp_crypto_overhead_bytes(const struct rtmfp_crypto *c);

/* ---- the near end ---- */

/*
 * rtmfp_crypto_local_cert - our encoded certificate, for RHello and
 * IIKeying.  *cert is borrowed and lives as long as @c.
 */
void rtmfp_crypto_local_cert(const struct rtmfp_crypto *c, const uint8_t **cert, size_t *len);

/*
 * rtmfp_crypto_local_epd - the canonical EPD that selects us (plain: the
 * identity; sodium: 0x0f | peer id).  Borrowed, lives as long as @c.
 */
void rtmfp_crypto_local_epd(const struct rtmfp_crypto *c, const uint8_t **epd, size_t *len);

/* rtmfp_crypto_local_peer_id - our peer id (sodium: SHA-256 of the key part
 * of our certificate; plain: SHA-256 of the identity string). */
void rtmfp_crypto_local_peer_id(const struct rtmfp_crypto *c,
				uint8_t out[static RTMFP_CRYPTO_PEER_ID_BYTES]);

/*
 * rtmfp_crypto_is_selected - does the EPD of an IHello (far bytes, any
 * length, may be garbage) select this end?  False for anything that does
 * not decode.  No error: an unmatched IHello goes to the unmatched hook.
 */
bool rtmfp_crypto_is_selected(const struct rtmfp_crypto *c, const uint8_t *epd, size_t len);

/*
 * rtmfp_crypto_sign - sign the bytes @a followed by @b (@b may be NULL with
 * @b_len 0) with our identity, for @purpose.
 * @sig: receives the signature (sodium 64 bytes, plain the one byte 'X');
 * @sig_cap its size (RTMFP_CRYPTO_MAX_SIG_BYTES always fits); *sig_len its
 * length.
 * Errors: BFS_ETOOBIG (@sig_cap too small, or a_len + b_len >
 * RTMFP_CRYPTO_MAX_SIGNED_BYTES); -EINVAL bad purpose.
 */
int rtmfp_crypto_sign(const struct rtmfp_crypto *c, enum rtmfp_crypto_sig_purpose purpose,
		      const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
		      uint8_t *sig, size_t sig_cap, size_t *sig_len);

/*
 * rtmfp_crypto_near_wins_glare - RFC 7016 §3.5.1.3: true when this end wins
 * glare against the far end of @far (sodium: our peer id is lower, as
 * unsigned bytes; plain: our identity sorts first).  Equal ids: false.
 */
bool rtmfp_crypto_near_wins_glare(const struct rtmfp_crypto *c,
				  const struct rtmfp_crypto_cert *far);

/* ---- far certificates ---- */

/*
 * rtmfp_crypto_cert_decode - decode far certificate bytes (from RHello or
 * IIKeying; any length, may be garbage).
 * @out: receives a new cert (copies what it needs; @bytes may go away);
 * free with rtmfp_crypto_cert_free().  Not touched on error.
 * Errors: BFS_EMALFORMED (not a certificate of this profile, e.g. sodium:
 * wrong length or version, not a valid Ed25519 point; plain: empty or
 * longer than RTMFP_CRYPTO_MAX_CERT_BYTES); -ENOMEM.
 */
int rtmfp_crypto_cert_decode(struct rtmfp_crypto *c, const uint8_t *bytes, size_t len,
			     struct rtmfp_crypto_cert **out);

/* rtmfp_crypto_cert_free - free @cert (NULL is fine). */
void rtmfp_crypto_cert_free(struct rtmfp_crypto_cert *cert);

/* rtmfp_crypto_cert_bytes - the encoded certificate; lives as long as @cert. */
void rtmfp_crypto_cert_bytes(const struct rtmfp_crypto_cert *cert, const uint8_t **bytes, size_t *len);

/*
 * rtmfp_crypto_cert_epd - the canonical EPD of @cert: the one the session
 * layer files the session under and compares new EPDs with (plain: the
 * identity; sodium: 0x0f | peer id).  Lives as long as @cert.
 */
void rtmfp_crypto_cert_epd(const struct rtmfp_crypto_cert *cert, const uint8_t **epd, size_t *len);

/* rtmfp_crypto_cert_peer_id - the far peer id (fingerprint) of @cert. */
void rtmfp_crypto_cert_peer_id(const struct rtmfp_crypto_cert *cert,
			       uint8_t out[static RTMFP_CRYPTO_PEER_ID_BYTES]);

/*
 * rtmfp_crypto_cert_selected - is @cert selected by @epd (an EPD we were
 * asked to open a session to)?  The initiator drops an RHello whose
 * certificate is not selected by its EPD (§3.5.1.1.2).  False for an EPD
 * that does not decode.
 */
bool rtmfp_crypto_cert_selected(const struct rtmfp_crypto_cert *cert, const uint8_t *epd, size_t len);

/*
 * rtmfp_crypto_cert_overrides - RFC 7016 §3.2: does a session with @cert
 * replace an existing session with @old (same endpoint: plain equal
 * identities, sodium equal peer ids)?
 */
bool rtmfp_crypto_cert_overrides(const struct rtmfp_crypto_cert *cert,
				 const struct rtmfp_crypto_cert *old);

/*
 * rtmfp_crypto_cert_verify - check that @sig over @a | @b (@b may be NULL)
 * for @purpose was made by the owner of @cert.  plain accepts any
 * signature (as rtmfp-cpp does).
 * Errors: BFS_EBADSIG (bad signature, wrong length, wrong purpose);
 * BFS_ETOOBIG (a_len + b_len > RTMFP_CRYPTO_MAX_SIGNED_BYTES).
 */
int rtmfp_crypto_cert_verify(const struct rtmfp_crypto_cert *cert,
			     enum rtmfp_crypto_sig_purpose purpose,
			     const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
			     const uint8_t *sig, size_t sig_len);

/* ---- session keys ---- */

/*
 * rtmfp_crypto_key_new - a new, incomplete session key: seals and opens with
 * the default key until completed.  Free with rtmfp_crypto_key_free().
 * Errors: -ENOMEM.
 */
int rtmfp_crypto_key_new(struct rtmfp_crypto *c, struct rtmfp_crypto_key **out);

/* rtmfp_crypto_key_free - wipe and free @key (NULL is fine). */
void rtmfp_crypto_key_free(struct rtmfp_crypto_key *key);

/* rtmfp_crypto_key_is_complete - has the key exchange finished? */
bool rtmfp_crypto_key_is_complete(const struct rtmfp_crypto_key *key);

/*
 * rtmfp_crypto_key_initiator_skic - make @key an initiator key toward
 * @responder (whose RHello certificate selected our EPD) and write the
 * Session Key Initiator Component (§2.3.7) to @skic (@cap bytes;
 * RTMFP_CRYPTO_MAX_SKIC_BYTES always fits); *len its length.
 * Call once per key; IIKeying retransmissions resend the same SKIC.
 * @responder is not kept (copy what is needed).
 * Errors: -EINVAL (called twice, or @responder of another profile);
 * BFS_ETOOBIG (@cap); BFS_ECRYPTO.
 */
int rtmfp_crypto_key_initiator_skic(struct rtmfp_crypto_key *key,
				    const struct rtmfp_crypto_cert *responder,
				    uint8_t *skic, size_t cap, size_t *len);

/*
 * rtmfp_crypto_key_initiator_complete - combine the responder's SKRC (far
 * bytes, from an RIKeying whose signature rtmfp_crypto_cert_verify()
 * accepted) with the state of rtmfp_crypto_key_initiator_skic(); on success
 * the key is complete and its ephemeral secrets are wiped.  On failure the
 * key is unchanged (a forged RIKeying cannot spoil it).
 * Errors: -EINVAL (not an initiator key, or already complete);
 * BFS_EMALFORMED (SKRC does not decode); BFS_EPROTO (SKRC not for us, or a
 * cipher we did not offer); BFS_ECRYPTO (degenerate X25519 result).
 */
int rtmfp_crypto_key_initiator_complete(struct rtmfp_crypto_key *key,
					const uint8_t *skrc, size_t len);

/*
 * rtmfp_crypto_key_responder - make @key a responder key: take the
 * initiator's SKIC (far bytes from an IIKeying whose signature
 * rtmfp_crypto_cert_verify() accepted with @initiator), write our SKRC
 * (§2.3.8) to @skrc (@cap bytes; RTMFP_CRYPTO_MAX_SKRC_BYTES always fits)
 * and complete the key.  @initiator is not kept.
 * Errors: -EINVAL (key already used); BFS_EMALFORMED (SKIC does not
 * decode); BFS_EPROTO (SKIC for another responder, no common cipher);
 * BFS_ETOOBIG (@cap); BFS_ECRYPTO.
 */
int rtmfp_crypto_key_responder(struct rtmfp_crypto_key *key,
			       const struct rtmfp_crypto_cert *initiator,
			       const uint8_t *skic, size_t skic_len,
			       uint8_t *skrc, size_t cap, size_t *skrc_len);

/*
 * rtmfp_crypto_key_seal - seal one packet in place (see "Packets").
 * @pkt:       the bytes after the SSID word; the cleartext is at
 *             pkt + rtmfp_crypto_front_bytes(), @clear_len (>= 1) bytes.
 * @cap:       bytes available at @pkt; must be >= clear_len + overhead.
 * @out_len:   receives front + clear_len + trailer.
 * Incomplete key: the default key.  Complete sodium key: the next packet
 * counter of this direction.
 * Errors: BFS_ETOOBIG (@cap too small); -EINVAL (@clear_len 0);
 * BFS_ECRYPTO (the packet counter ran out: a new session is needed).
 */
int rtmfp_crypto_key_seal(struct rtmfp_crypto_key *key, uint8_t *pkt, size_t cap,
			  size_t clear_len, size_t *out_len);

/*
 * rtmfp_crypto_key_open - authenticate and decrypt one packet in place.
 * @pkt, @len: the bytes after the SSID word (far bytes, may be garbage;
 *             @pkt is overwritten with the cleartext).
 * @clear_off, @clear_len: where the cleartext (flags byte first) is in
 *             @pkt; *clear_len >= 1.  plain: the cleartext ends with the
 *             sender's 16 0xff pad bytes (rtmfp-cpp hands them on too): the
 *             chunk parser meets chunk type 0xff, padding in RFC 7016
 *             §2.2.4, and stops.  sodium: no padding.
 * Incomplete key: the default key.  A complete sodium key checks the
 * packet counter against a replay window before and after authentication
 * and moves the window only for packets that authenticate.
 * Errors: BFS_ECRYPTO (not authentic, replayed, too old); BFS_EMALFORMED
 * (too short).  On error the bytes at @pkt are unspecified: drop them.
 */
int rtmfp_crypto_key_open(struct rtmfp_crypto_key *key, uint8_t *pkt, size_t len,
			  size_t *clear_off, size_t *clear_len);

/*
 * rtmfp_crypto_seal_default, rtmfp_crypto_open_default - the same with the
 * profile's Default Session Key (session id 0 packets, RIKeying).  No
 * replay window (startup packets are idempotent; cookies bound the rest).
 */
int rtmfp_crypto_seal_default(struct rtmfp_crypto *c, uint8_t *pkt, size_t cap,
			      size_t clear_len, size_t *out_len);
int rtmfp_crypto_open_default(struct rtmfp_crypto *c, uint8_t *pkt, size_t len,
			      size_t *clear_off, size_t *clear_len);

/* ---- helpers shared by the profiles and the core ---- */

/*
 * rtmfp_crypto_in_cksum - the Internet checksum (RFC 1071) as rtmfp-cpp
 * computes it: 16-bit big-endian words summed, carries folded, complemented;
 * an odd last byte is added as the LOW byte of a final word (not the high
 * byte as RFC 1071 pads).  Used by plain.
 */
uint16_t rtmfp_crypto_in_cksum(const uint8_t *p, size_t len);

/* rtmfp_crypto_random - @n cryptographically strong random bytes. */
void rtmfp_crypto_random(void *out, size_t n);

/* rtmfp_crypto_hash256 - SHA-256 of @msg (for cookies, mobility checks). */
void rtmfp_crypto_hash256(uint8_t out[static 32], const uint8_t *msg, size_t len);

#endif
