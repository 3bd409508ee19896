/*
 * identity.h - who we are: the Ed25519 key pair, the certificate, the peer
 * id, the user name and the small config of a buddyfs home directory.
 *
 * Owns the files of the identity in HOME (DESIGN.md §1, §3):
 *   HOME/identity.key  the secret key (mode 0600), written last at init
 *   HOME/cert          the certificate: 0x01 || Ed25519 public key (33 bytes)
 *   HOME/config        a small text file: name and rendezvous address
 * and the rules for user names.  The byte layouts are in docs/PROTOCOL.md.
 *
 * The home must be a real directory (not a symbolic link) owned by the
 * effective user; no file in it is opened through a symbolic link.  Writers
 * use temporary files named "." FILE ".tmp." and 16 random hex digits.
 *
 * peer id = SHA-256(certificate), shown as 64 lowercase hex digits, like the
 * peer ids of RFC 7016 implementations (Stratus).  The RTMFP crypto profile
 * carries the certificate and signs with identity_sign(); the store keeps
 * buddies by peer id.  Leaves to others: the store (buddies), registering the
 * name at a rendezvous (rdv_client), session keys (rtmfp_crypto_sodium).
 *
 * Errors: 0, negative errno, or BFS_E* (err.h).  Secret keys live only in
 * memory from sodium_malloc() (guarded, locked where the system allows) and
 * are wiped on every path out.  Not thread-safe; no global state besides
 * libsodium's, which identity_crypto_init() sets up.
 */
#ifndef BUDDYFS_IDENTITY_H
#define BUDDYFS_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "buddyfs/buf.h"

#define IDENTITY_NAME_MAX 32          /* user names: 1-32 of a-z0-9._- */
#define IDENTITY_PUBLIC_KEY_BYTES 32  /* Ed25519 */
#define IDENTITY_SECRET_KEY_BYTES 64  /* libsodium's seed || public key */
#define IDENTITY_SEED_BYTES 32
#define IDENTITY_SIGNATURE_BYTES 64
#define IDENTITY_SIGN_CTX_MAX_BYTES 64 /* context strings of identity_sign_ctx() */
#define IDENTITY_CERT_VERSION 0x01
#define IDENTITY_CERT_BYTES 33        /* version byte + public key */
#define IDENTITY_PEER_ID_BYTES 32     /* SHA-256 of the certificate */
#define IDENTITY_PEER_ID_HEX_BYTES 65 /* 64 hex digits and a NUL */
#define IDENTITY_HOST_MAX 253         /* a DNS name, or an IPv6 address */
#define IDENTITY_RDV_DEFAULT_PORT 1935
#define IDENTITY_ADDR_TEXT_BYTES (IDENTITY_HOST_MAX + 9) /* "[host]:65535" */

/* The key file: magic, version, key type, seed, public key (70 bytes). */
#define IDENTITY_KEY_FILE_VERSION 0x01
#define IDENTITY_KEY_TYPE_ED25519 0x01
#define IDENTITY_KEY_FILE_BYTES 70
/* The config file starts with this line; the number is its version. */
#define IDENTITY_CONFIG_HEADER "buddyfs-config 1"
#define IDENTITY_CONFIG_MAX_BYTES 4096

/* File names inside the home directory. */
#define IDENTITY_KEY_FILE "identity.key"
#define IDENTITY_CERT_FILE "cert"
#define IDENTITY_CONFIG_FILE "config"

/* The settings in HOME/config. */
struct identity_config {
	char name[IDENTITY_NAME_MAX + 1];      /* normalized, never empty */
	char rdv_host[IDENTITY_HOST_MAX + 1];  /* "" when no rendezvous is set */
	uint16_t rdv_port;                     /* 0 when no rendezvous is set */
};

/* A loaded identity.  Allocated by identity_load()/identity_create() only. */
struct identity {
	struct identity_config config;
	uint8_t cert[IDENTITY_CERT_BYTES];
	uint8_t peer_id[IDENTITY_PEER_ID_BYTES];
	uint8_t public_key[IDENTITY_PUBLIC_KEY_BYTES];
	uint8_t secret_key[IDENTITY_SECRET_KEY_BYTES]; /* wiped by identity_free() */
};

/*
 * identity_crypto_init - initialize libsodium (sodium_init()); safe to call
 * more than once.  Every other function that uses keys calls it too.
 * Errors: BFS_ECRYPTO when libsodium cannot start.
 */
int identity_crypto_init(void);

/* ---- names ---- */

/*
 * identity_name_normalize - check a user name and fold it to lower case.
 * @out: the normalized name, NUL-terminated ("" on error).
 * @in:  1-32 characters of A-Z a-z 0-9 . _ - ; "." and ".." are refused.
 * Returns 0 or BFS_EBADNAME.
 */
int identity_name_normalize(char out[static IDENTITY_NAME_MAX + 1], const char *in);

/* ---- peer ids and certificates ---- */

/* identity_peer_id_hex - 64 lowercase hex digits and a NUL into @out. */
void identity_peer_id_hex(char out[static IDENTITY_PEER_ID_HEX_BYTES],
			  const uint8_t id[static IDENTITY_PEER_ID_BYTES]);
/*
 * identity_peer_id_parse - exactly 64 hex digits (either case) to 32 bytes.
 * Returns 0 or BFS_EMALFORMED (@out is then zeroed).
 */
int identity_peer_id_parse(uint8_t out[static IDENTITY_PEER_ID_BYTES], const char *hex);
/* identity_peer_id_of - SHA-256 of @cert (any bytes; no check of the layout). */
void identity_peer_id_of(uint8_t out[static IDENTITY_PEER_ID_BYTES], const uint8_t *cert, size_t cert_len);
/*
 * identity_cert_parse - the public key inside a certificate.
 * Returns 0, BFS_EVERSION for another version byte, BFS_EMALFORMED for a
 * wrong length.
 */
int identity_cert_parse(uint8_t public_key[static IDENTITY_PUBLIC_KEY_BYTES], const uint8_t *cert,
			size_t cert_len);
/* identity_cert_make - the certificate of @public_key. */
void identity_cert_make(uint8_t cert[static IDENTITY_CERT_BYTES],
			const uint8_t public_key[static IDENTITY_PUBLIC_KEY_BYTES]);

/* ---- signatures ---- */

/*
 * identity_sign_ctx - a detached signature of @msg by @id under the context
 * string @ctx, which names what the signature is for ("buddyfs-manifest v1"),
 * so that a signature made for one purpose never verifies for another.
 * The signature is Ed25519ph (RFC 8032 §5.1, libsodium's crypto_sign_init/
 * update/final_create, empty RFC 8032 context) over
 *   length of @ctx (1 byte) || @ctx || @msg
 * and so never equals a plain Ed25519 signature of identity_sign().
 * @ctx: 1-IDENTITY_SIGN_CTX_MAX_BYTES bytes of printable ASCII (0x20-0x7e),
 *       NUL-terminated.
 * Returns 0, or -EINVAL for a bad @ctx (@sig is then zeroed).
 */
int identity_sign_ctx(uint8_t sig[static IDENTITY_SIGNATURE_BYTES], const struct identity *id,
		      const char *ctx, const uint8_t *msg, size_t len) __attribute__((warn_unused_result));
/*
 * identity_verify_ctx - check a signature of identity_sign_ctx() over @msg
 * under @ctx against the key in @cert.
 * Returns 0, BFS_EBADSIG, -EINVAL for a bad @ctx, or an
 * identity_cert_parse() error.
 */
int identity_verify_ctx(const uint8_t *cert, size_t cert_len,
			const uint8_t sig[static IDENTITY_SIGNATURE_BYTES], const char *ctx,
			const uint8_t *msg, size_t len) __attribute__((warn_unused_result));

/*
 * identity_sign - a plain detached Ed25519 signature of @msg by @id, with no
 * context of its own: only for messages that carry their own domain
 * separation, such as rdv_register_signed() (RDV_REGISTER_CONTEXT), which
 * rdv_server checks with identity_verify().  New formats use
 * identity_sign_ctx().
 */
void identity_sign(uint8_t sig[static IDENTITY_SIGNATURE_BYTES], const struct identity *id,
		   const uint8_t *msg, size_t len);
/*
 * identity_verify - check a plain signature of identity_sign() over @msg
 * against the key in @cert.
 * Returns 0, BFS_EBADSIG, or an identity_cert_parse() error.
 */
int identity_verify(const uint8_t *cert, size_t cert_len, const uint8_t sig[static IDENTITY_SIGNATURE_BYTES],
		    const uint8_t *msg, size_t len) __attribute__((warn_unused_result));

/* ---- rendezvous address ---- */

/*
 * identity_addr_parse - "HOST[:PORT]", "[IPV6][:PORT]": host 1-253 of
 * A-Z a-z 0-9 . - (folded to lower case) or a bracketed IPv6 address, port
 * 1-65535 (decimal, default @default_port).  A bare IPv6 address is refused
 * (its colons are ambiguous): bracket it.
 * @host: the host without brackets.  Returns 0 or -EINVAL.
 */
int identity_addr_parse(char host[static IDENTITY_HOST_MAX + 1], uint16_t *port, const char *in,
			uint16_t default_port);
/* identity_addr_format - "host:port", or "[v6]:port" when host has a colon. */
void identity_addr_format(char out[static IDENTITY_ADDR_TEXT_BYTES], const char *host, uint16_t port);

/* ---- file codecs (exposed for tests and fuzzing) ---- */

/*
 * identity_key_encode - the key file bytes of @secret_key (libsodium layout:
 * seed || public key) into @w.  Returns 0 or -ENOSPC.  The caller wipes @w.
 */
int identity_key_encode(struct buf_writer *w, const uint8_t secret_key[static IDENTITY_SECRET_KEY_BYTES]);
/*
 * identity_key_decode - parse a key file and check that its seed gives its
 * public key.  @secret_key: seed || public key, wiped on error.
 * Returns 0, BFS_EVERSION (another version or key type), or BFS_EMALFORMED
 * (wrong magic or length, or a seed that does not match the public key).
 */
int identity_key_decode(uint8_t secret_key[static IDENTITY_SECRET_KEY_BYTES], const uint8_t *in, size_t len);
/* identity_config_encode - the config file text of @c.  Returns 0 or -ENOSPC. */
int identity_config_encode(struct buf_writer *w, const struct identity_config *c);
/*
 * identity_config_decode - parse config file bytes.
 * Returns 0, BFS_EVERSION (a header of another version), or BFS_EMALFORMED
 * (anything else: no header, unknown or repeated key, bad name or address,
 * no name, a NUL or control byte, too long).
 */
int identity_config_decode(struct identity_config *out, const uint8_t *in, size_t len);

/* ---- the home directory ---- */

/*
 * identity_home_resolve - pick the home directory: @opt (from --home) if not
 * NULL, else $BUDDYFS_HOME, else $XDG_DATA_HOME/buddyfs (when absolute), else
 * $HOME/.local/share/buddyfs.  Nothing is created.
 * Returns 0, -ENOENT (no environment to build a default from: pass --home)
 * or -ENAMETOOLONG.
 */
int identity_home_resolve(char *out, size_t cap, const char *opt);

/*
 * identity_create - make a new identity in @home: create @home (mode 0700,
 * parents as needed; the parent of each new directory is fsynced), then,
 * under an flock() of the home, check it, tighten it to 0700 and write cert,
 * config and last the secret key file (0600), each atomically through a
 * temporary file.  The key file is the commit point: it is linked into place
 * only if no key file exists, so two inits never both win.  Temporary files
 * of our naming left by a crash are removed while the lock is held.
 * Refused, with one log_error() line naming @home and nothing changed:
 *   - @home is a symbolic link (even to a directory): -ELOOP;
 *   - @home belongs to another user than the effective one: -EPERM;
 *   - @home is not empty and does not look like a buddyfs home: -ENOTEMPTY.
 *     A buddyfs home holds only cert and config files that decode as ours
 *     (left by an init that stopped before its key file), a "store"
 *     directory and our temporary files; cert and config are replaced only
 *     then, and only by rename() of a complete temporary file.
 * @out:  the new identity, freed with identity_free(); may be NULL.
 * @name: a normalized name (identity_name_normalize()).
 * @rdv_host, @rdv_port: the rendezvous, or "" and 0.
 * Errors: -EEXIST when @home already holds an identity (checked before
 * -ENOTEMPTY), the refusals above, BFS_EBADNAME, -ENOTDIR, -errno.
 */
int identity_create(struct identity **out, const char *home, const char *name, const char *rdv_host,
		    uint16_t rdv_port);

/*
 * identity_load - read the identity in @home and check that the secret key,
 * the certificate and the config agree.  No file is opened through a
 * symbolic link (O_NOFOLLOW), @home included.
 * Refused, with one log_error() line:
 *   - @home is a symbolic link: -ELOOP (@failed_file NULL);
 *   - @home belongs to another user than the effective one: -EPERM
 *     (@failed_file NULL);
 *   - the key file can be read or written by group or others (any of the
 *     0077 bits), as OpenSSH refuses such keys: -EACCES; the line gives the
 *     path, its mode and "chmod 600 PATH".
 * A key, cert or config file that is a symbolic link gives -ELOOP.
 * @out:         freed with identity_free().
 * @failed_file: if not NULL, set on error to the file name (IDENTITY_*_FILE,
 *               static) that failed, or NULL when no file is to blame.
 * Errors: BFS_ENOIDENT when @home or its key file is missing, BFS_EMALFORMED
 * or BFS_EVERSION for a damaged file, -ENOENT for a missing cert or config,
 * the refusals above, -ENOMEM, -errno.
 */
int identity_load(struct identity **out, const char *home, const char **failed_file);

/* identity_free - wipe and free @id (NULL is fine). */
void identity_free(struct identity *id);

#endif
