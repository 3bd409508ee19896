/*
 * rtmfp_crypto_sodium.h - the "sodium" RTMFP cryptography profile, the
 * default: libsodium only.
 *
 *   certificate  0x01 | Ed25519 public key (32) [| 0x0a | n | server name (n)]
 *   peer id      SHA-256(0x01 | public key): SHA-256 of the whole certificate
 *                when it carries no server name (as identity_peer_id_of())
 *   EPD          0x0f | peer id (32)  or  0x0a | server name (1..255 bytes)
 *   SKIC         0x01 | ciphers offered | X25519 ephemeral (32) | responder peer id (32)
 *   SKRC         0x01 | cipher chosen   | X25519 ephemeral (32) | initiator peer id (32)
 *   signatures   Ed25519 over a context string, 0x00, then the signed bytes
 *   keys         BLAKE2b-512(key = X25519 result, transcript hash), split in
 *                one key per direction; ephemerals wiped
 *   packets      counter (8, big-endian) | ciphertext | tag (16);
 *                ChaCha20-Poly1305-IETF or AES-256-GCM (both ends able),
 *                nonce = 0x00000000 | counter; replay window of
 *                RTMFP_CRYPTO_SODIUM_REPLAY_WINDOW packets
 *   default key  a fixed, published ChaCha20-Poly1305 key (session id 0)
 *   glare        the lower peer id wins
 * docs/PROTOCOL.md has every byte.  Everything else is in rtmfp_crypto.h.
 */
#ifndef BUDDYFS_RTMFP_CRYPTO_SODIUM_H
#define BUDDYFS_RTMFP_CRYPTO_SODIUM_H

#include "buddyfs/rtmfp_crypto.h"

#define RTMFP_CRYPTO_SODIUM_NAME "sodium"
#define RTMFP_CRYPTO_SODIUM_CERT_VERSION 0x01
#define RTMFP_CRYPTO_SODIUM_CERT_KEY_BYTES 33       /* 0x01 | public key */
#define RTMFP_CRYPTO_SODIUM_CERT_NAME_TAG 0x0a
#define RTMFP_CRYPTO_SODIUM_MAX_NAME_BYTES 255
#define RTMFP_CRYPTO_SODIUM_EPD_PEER_ID 0x0f
#define RTMFP_CRYPTO_SODIUM_EPD_NAME 0x0a
#define RTMFP_CRYPTO_SODIUM_EPD_PEER_ID_BYTES 33    /* 0x0f | peer id */
#define RTMFP_CRYPTO_SODIUM_KEYING_VERSION 0x01
#define RTMFP_CRYPTO_SODIUM_SKIC_BYTES 66
#define RTMFP_CRYPTO_SODIUM_SKRC_BYTES 66
#define RTMFP_CRYPTO_SODIUM_SIG_BYTES 64
#define RTMFP_CRYPTO_SODIUM_CIPHER_CHACHA20POLY1305 0x01
#define RTMFP_CRYPTO_SODIUM_CIPHER_AES256GCM 0x02
#define RTMFP_CRYPTO_SODIUM_COUNTER_BYTES 8
#define RTMFP_CRYPTO_SODIUM_TAG_BYTES 16
#define RTMFP_CRYPTO_SODIUM_REPLAY_WINDOW (8192 - 64)

extern const struct rtmfp_crypto_ops rtmfp_crypto_sodium_ops;

/*
 * rtmfp_crypto_sodium_new - rtmfp_crypto_new("sodium") from an Ed25519
 * secret key (libsodium layout, copied), an optional server name
 * (NULL/0 for none) and RTMFP_CRYPTO_F_* @flags.  Errors as rtmfp_crypto_new().
 */
int rtmfp_crypto_sodium_new(struct rtmfp_crypto **out,
			    const uint8_t ed25519_sk[static 64],
			    const uint8_t *server_name, size_t server_name_len,
			    unsigned int flags);

/* rtmfp_crypto_sodium_epd_peer_id - the EPD selecting peer id @id: 0x0f | id. */
void rtmfp_crypto_sodium_epd_peer_id(uint8_t epd[static RTMFP_CRYPTO_SODIUM_EPD_PEER_ID_BYTES],
				     const uint8_t id[static RTMFP_CRYPTO_PEER_ID_BYTES]);

/*
 * rtmfp_crypto_sodium_epd_name - the EPD selecting the server named @name
 * (1..255 bytes): 0x0a | name, into @epd (@cap bytes); *len its length.
 * Errors: -EINVAL (bad name length); BFS_ETOOBIG (@cap).
 */
int rtmfp_crypto_sodium_epd_name(uint8_t *epd, size_t cap, size_t *len,
				 const uint8_t *name, size_t name_len);

/*
 * rtmfp_crypto_sodium_key_cipher - the cipher a complete key uses
 * (RTMFP_CRYPTO_SODIUM_CIPHER_*), 0 while incomplete or for another profile.
 */
unsigned int rtmfp_crypto_sodium_key_cipher(const struct rtmfp_crypto_key *key);

#endif
