/*
 * rdv_oneshot.h - blocking, one-shot rendezvous requests for the CLI
 * (`buddyfs init NAME --rendezvous HOST:PORT`, `buddyfs buddy add NAME`;
 * issue 5 item 5).
 *
 * Owns: for the length of one call, a private event loop, an RTMFP instance
 * (rtmfp_posix, sodium profile from the identity's secret key, on a fresh
 * UDP socket of any port) and an rdv_client on it; the deadline; the
 * mapping of the server's RDV_* result codes to errno values and a one-line
 * reason for a human.  Everything is freed before the call returns, on every
 * path.  The server is selected by its name RDV_SERVER_NAME (the CLI knows
 * no server id to pin).
 *
 * Leaves to others: the protocol and the reconnection logic (rdv_client,
 * rdv_proto), the store (the caller pins what a lookup returns: TOFU), the
 * identity files (identity.c).  Never call these from inside an event loop
 * callback: they run a loop of their own and block (at most @timeout_ms,
 * plus a short goodbye to the server after an answer).
 *
 * Errors: 0, negative errno or BFS_E* (err.h); @why gets one line (no
 * newline) on every error, "" on success.  @why may be NULL when @why_len
 * is 0.
 */
#ifndef BUDDYFS_RDV_ONESHOT_H
#define BUDDYFS_RDV_ONESHOT_H

#include <stddef.h>
#include <stdint.h>

struct identity;

/* The timeout used when 0 is given. */
#define RDV_ONESHOT_DEFAULT_TIMEOUT_MS 5000u
/* The longest goodbye (orderly close of the session) after an answer. */
#define RDV_ONESHOT_GOODBYE_MS 500u
/* A buffer large enough for any @why of this module. */
#define RDV_ONESHOT_WHY_BYTES 384

/*
 * rdv_oneshot_register - register @id's name (id->config.name) at the
 * rendezvous @host (a DNS name or a numeric address, IPv6 without brackets)
 * and @port, signed by @id; wait at most @timeout_ms (0: the default) for
 * the answer.  Registering one's own name again is fine.
 * Returns 0 or:
 *   -EEXIST     the name belongs to another peer id;
 *   -ETIMEDOUT  no answer in time (@why: "no answer from HOST:PORT in N s");
 *   -ENOENT     @host does not resolve;
 *   -EINVAL     a bad host or port (0);
 *   -EAGAIN     the server refused for now (rate limit): try later;
 *   BFS_EBADSIG, BFS_EBADNAME, -EIO   the server refused the signature, the
 *               name, or failed itself;
 *   -ENOMEM, socket errors (-EADDRINUSE, -EAFNOSUPPORT...).
 */
int rdv_oneshot_register(const struct identity *id, const char *host, uint16_t port, unsigned timeout_ms,
			 char *why, size_t why_len) __attribute__((warn_unused_result));

/*
 * rdv_oneshot_lookup - ask the rendezvous @host:@port for the certificate
 * registered under @name (any case: normalized first), over a session
 * keyed with @id's key.
 * @peer_id:  on success SHA-256 of the certificate (checked here again).
 * @cert:     on success the certificate (@cert_cap bytes of room; at least
 *            IDENTITY_CERT_BYTES is enough for any valid one), its length
 *            in *@cert_len.  Nothing is written on error.
 * Returns 0 or:
 *   -ENOENT        no such name at the server;
 *   -ETIMEDOUT     no answer in time (@why as above);
 *   -EHOSTUNREACH  @host does not resolve (not -ENOENT: that means the
 *                  name is not registered);
 *   BFS_EBADNAME   @name is not a valid user name;
 *   BFS_EMALFORMED the server sent something that is not a certificate;
 *   BFS_ETOOBIG    @cert_cap too small;
 *   -EINVAL, -EAGAIN, -EIO, -ENOMEM, socket errors as for
 *   rdv_oneshot_register().
 */
int rdv_oneshot_lookup(const struct identity *id, const char *host, uint16_t port, const char *name,
		       unsigned timeout_ms, uint8_t peer_id[static 32], uint8_t *cert, size_t cert_cap,
		       size_t *cert_len, char *why, size_t why_len) __attribute__((warn_unused_result));

#endif
