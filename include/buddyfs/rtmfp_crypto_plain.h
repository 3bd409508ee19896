/*
 * rtmfp_crypto_plain.h - the "plain" RTMFP cryptography profile: for
 * interoperability tests only, never the default and never secure.
 *
 * Bit-exact with rtmfp-cpp's PlainCryptoAdapter (src/PlainCryptoAdapter.cpp):
 *   certificate = EPD = the identity string (1..RTMFP_CRYPTO_PLAIN_MAX_IDENTITY_BYTES
 *   bytes); an EPD selects a certificate when the bytes are equal; any
 *   signature is accepted and we send the one byte 'X'; glare: the
 *   lexicographically smaller identity (unsigned bytes, a prefix sorts first)
 *   wins; SKIC = SKRC = a random 16-bit "rx salt", 2 bytes big-endian (a far
 *   component of 2 or more bytes is accepted, its first 2 bytes used); the key
 *   is complete when the initiator gets the SKRC or the responder has
 *   processed the SKIC; a packet is  SSID(4) | P | 0xff x 16 | cksum (2 bytes,
 *   big-endian)  with P starting at the flags byte and
 *   cksum = (rtmfp_crypto_in_cksum(P | 0xff x 16) + salt) mod 65536, salt = 0
 *   until the key is complete (and always for the default key), then the far
 *   side's rx salt; the receiver subtracts its own rx salt and compares.
 * docs/PROTOCOL.md has the tables.  Everything else is in rtmfp_crypto.h.
 */
#ifndef BUDDYFS_RTMFP_CRYPTO_PLAIN_H
#define BUDDYFS_RTMFP_CRYPTO_PLAIN_H

#include "buddyfs/rtmfp_crypto.h"

#define RTMFP_CRYPTO_PLAIN_NAME "plain"
#define RTMFP_CRYPTO_PLAIN_MAX_IDENTITY_BYTES RTMFP_CRYPTO_MAX_CERT_BYTES
#define RTMFP_CRYPTO_PLAIN_SALT_BYTES 2   /* SKIC and SKRC */
#define RTMFP_CRYPTO_PLAIN_PAD_BYTES 16   /* 0xff bytes after the packet */
#define RTMFP_CRYPTO_PLAIN_CKSUM_BYTES 2
#define RTMFP_CRYPTO_PLAIN_SIG 'X'

extern const struct rtmfp_crypto_ops rtmfp_crypto_plain_ops;

/*
 * rtmfp_crypto_plain_new - rtmfp_crypto_new("plain") for an identity string
 * of @len bytes (copied).  Errors as rtmfp_crypto_new().
 */
int rtmfp_crypto_plain_new(struct rtmfp_crypto **out, const char *identity, size_t len);

/*
 * rtmfp_crypto_plain_key_set_salt - tests only: replace @key's own rx salt
 * (the value its SKIC/SKRC will carry) before the key exchange.
 * Errors: -EINVAL (not a plain key, or already complete).
 */
int rtmfp_crypto_plain_key_set_salt(struct rtmfp_crypto_key *key, uint16_t rx_salt);

#endif
