/*
 * rdv_proto.h - the rendezvous control messages (DESIGN.md §4): codecs only.
 *
 * Owns the byte layout of every message on the control flow between a
 * buddyfs daemon and buddyfs-rendezvous, and the bytes a REGISTER signs.
 * The daemon opens one RTMFP flow to the server with metadata
 * RDV_PROTO_METADATA; the server answers on a return flow associated with
 * it (RFC 7016 §2.3.11.1.1).  Each RTMFP message is one control message:
 *
 *   version (1) = RDV_PROTO_VERSION | type (1) | body (by type)
 *
 * client -> server: REGISTER, LOOKUP, WATCH, REPORT, RELAY (each with a
 * request id echoed in its RESULT); server -> client: RESULT, PRESENCE,
 * YOUR_ADDRESS, RELAY_OFFER, RELAY_READY.  Besides the control flow, a
 * peer sends RELAY-BIND datagrams (rdv_relay_bind_*) from its RTMFP socket
 * to the server's relay port, outside RTMFP.
 * Integers are big-endian; every count and length is bounded below; a
 * message with trailing bytes, an unknown type or an out-of-range field is
 * malformed.  docs/PROTOCOL.md has the tables.
 *
 * Leaves to others: sessions and flows (rtmfp), what the messages mean
 * (rdv_server, rdv_client), name rules (identity_name_normalize).
 */
#ifndef BUDDYFS_RDV_PROTO_H
#define BUDDYFS_RDV_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buddyfs/buf.h"

#define RDV_PROTO_VERSION 0x01
#define RDV_PROTO_METADATA "buddyfs-rdv 1"   /* control flow metadata */
#define RDV_SERVER_NAME "buddyfs-rdv"        /* the server's certificate name */
#define RDV_DEFAULT_PORT 1935

#define RDV_PEER_ID_BYTES 32
#define RDV_NAME_MAX 32          /* a user name, 1..32 bytes (identity.h) */
#define RDV_SIG_BYTES 64         /* Ed25519 */
#define RDV_CERT_MAX_BYTES 128   /* a certificate in a RESULT (store.h) */
#define RDV_MAX_WATCH 256        /* peer ids in one WATCH set */
#define RDV_MAX_REPORT_ADDRS 8   /* local addresses one peer reports */
#define RDV_MAX_PRESENCE_ADDRS (RDV_MAX_REPORT_ADDRS + 1) /* + observed */
#define RDV_ADDR_MAX_BYTES 20    /* kind, family, 16 address bytes, port */
/* The largest message (a full WATCH). */
#define RDV_MSG_MAX_BYTES (2 + 4 + 2 + RDV_MAX_WATCH * RDV_PEER_ID_BYTES)
/* Domain separation of the REGISTER signature. */
#define RDV_REGISTER_CONTEXT "buddyfs-rdv register v1"
/* The relay (issue 5 item 4). */
#define RDV_RELAY_TOKEN_BYTES 16
#define RDV_RELAY_BIND_MAGIC "bfs-relay"  /* 9 ASCII bytes */
#define RDV_RELAY_BIND_BYTES (9 + 1 + RDV_RELAY_TOKEN_BYTES)
#define RDV_REGISTER_SIGNED_MAX_BYTES \
	(sizeof(RDV_REGISTER_CONTEXT) + RDV_PEER_ID_BYTES + 1 + RDV_NAME_MAX)

enum rdv_msg_type {
	RDV_MSG_REGISTER = 0x01,     /* req, name, signature */
	RDV_MSG_LOOKUP = 0x02,       /* req, name */
	RDV_MSG_WATCH = 0x03,        /* req, set of peer ids (replaces the set) */
	RDV_MSG_REPORT = 0x04,       /* req, local addresses */
	RDV_MSG_RELAY = 0x05,        /* req, peer id: relay my session with it */
	RDV_MSG_RESULT = 0x81,       /* req, code, certificate (LOOKUP ok) */
	RDV_MSG_PRESENCE = 0x82,     /* peer id, online, addresses */
	RDV_MSG_YOUR_ADDRESS = 0x83, /* the address the server observes */
	RDV_MSG_RELAY_OFFER = 0x84,  /* peer id, token, relay port: bind to it */
	RDV_MSG_RELAY_READY = 0x85,  /* peer id, relay port: both ends bound */
};

enum rdv_result_code {
	RDV_OK = 0,
	RDV_ERR_TAKEN = 1,       /* the name belongs to another peer id */
	RDV_ERR_BADSIG = 2,      /* the REGISTER signature does not verify */
	RDV_ERR_NOTFOUND = 3,    /* no such name */
	RDV_ERR_MALFORMED = 4,   /* a field the server does not accept (a bad name) */
	RDV_ERR_RATELIMIT = 5,   /* too many requests from this address; retry later */
	RDV_ERR_INTERNAL = 6,    /* the server failed (its store) */
	RDV_RESULT_MAX = RDV_ERR_INTERNAL,
};

enum rdv_addr_kind {
	RDV_ADDR_LOCAL = 1,    /* an interface address the peer reported */
	RDV_ADDR_OBSERVED = 2, /* the source address the server sees */
};

/* One address on the wire: kind | family (4/6) | address (4/16) | port (2). */
struct rdv_addr {
	uint8_t kind;     /* enum rdv_addr_kind */
	uint8_t family;   /* 4 or 6 */
	uint16_t port;    /* host byte order */
	uint8_t addr[16]; /* 4 or 16 bytes used, network order */
};

/*
 * One decoded message.  Which members mean something depends on type:
 *   REGISTER      req, name, sig
 *   LOOKUP        req, name
 *   WATCH         req, n_ids, ids
 *   REPORT        req, n_addrs, addrs (kind LOCAL)
 *   RESULT        req, code, cert (cert_len > 0 only for a LOOKUP that succeeded)
 *   PRESENCE      peer_id, online, n_addrs, addrs (none when offline)
 *   YOUR_ADDRESS  n_addrs = 1, addrs[0] (kind OBSERVED)
 *   RELAY         req, peer_id (the far end of the session to relay)
 *   RELAY_OFFER   peer_id (the other end), token, relay_port
 *   RELAY_READY   peer_id (the other end), relay_port
 * The struct is large (a WATCH set): keep it off small stacks if need be.
 */
struct rdv_msg {
	uint8_t type;                     /* enum rdv_msg_type */
	uint32_t req;                     /* request id, chosen by the client */
	uint8_t code;                     /* enum rdv_result_code */
	char name[RDV_NAME_MAX + 1];      /* NUL-terminated */
	uint8_t sig[RDV_SIG_BYTES];
	uint8_t cert[RDV_CERT_MAX_BYTES];
	size_t cert_len;
	uint8_t peer_id[RDV_PEER_ID_BYTES];
	bool online;
	size_t n_ids;
	uint8_t ids[RDV_MAX_WATCH][RDV_PEER_ID_BYTES];
	size_t n_addrs;
	struct rdv_addr addrs[RDV_MAX_PRESENCE_ADDRS];
	uint8_t token[RDV_RELAY_TOKEN_BYTES];
	uint16_t relay_port;              /* host order, not 0 */
};

/*
 * rdv_msg_encode - append the encoding of @m to @w.
 * Errors: -EINVAL when @m breaks a rule of its type (unknown type, name
 * length 0 or over RDV_NAME_MAX, counts over their bounds, an address of
 * an unknown kind or family, a code over RDV_RESULT_MAX); -ENOSPC when @w
 * is full (@w is rolled back to where it was).
 */
int rdv_msg_encode(struct buf_writer *w, const struct rdv_msg *m);

/*
 * rdv_msg_decode - parse one whole message (@in borrowed for the call) into
 * @out (zeroed first).  Returns 0, BFS_EVERSION (another version byte) or
 * BFS_EMALFORMED (anything else that is not exactly one valid message).
 */
int rdv_msg_decode(struct rdv_msg *out, const uint8_t *in, size_t len);

/*
 * rdv_register_signed - the bytes a REGISTER's signature covers, into @out
 * (RDV_REGISTER_SIGNED_MAX_BYTES):
 *   RDV_REGISTER_CONTEXT | 0x00 | peer id (32) | name length (1) | name
 * where peer id is the registering session's (the far certificate's).
 * Returns the length, or -EINVAL for a bad name length.
 */
long rdv_register_signed(uint8_t out[static RDV_REGISTER_SIGNED_MAX_BYTES],
			 const uint8_t peer_id[static RDV_PEER_ID_BYTES], const char *name);

/*
 * rdv_addr_from_sockaddr - @sa as an rdv_addr of @kind (a v4-mapped IPv6
 * address becomes IPv4).  Errors: -EAFNOSUPPORT (not AF_INET/AF_INET6).
 */
int rdv_addr_from_sockaddr(struct rdv_addr *out, const struct sockaddr_storage *sa, uint8_t kind);
/*
 * rdv_addr_to_sockaddr - @a as a socket address; with @v6 true an IPv4
 * address is given v4-mapped (for an AF_INET6 socket).
 * Errors: -EAFNOSUPPORT (bad family).
 */
int rdv_addr_to_sockaddr(struct sockaddr_storage *out, const struct rdv_addr *a, bool v6);

/*
 * rdv_relay_bind_encode - the RELAY-BIND datagram for @token into @out:
 *   "bfs-relay" (9 ASCII) | 0x01 | token (16)
 */
void rdv_relay_bind_encode(uint8_t out[static RDV_RELAY_BIND_BYTES],
			   const uint8_t token[static RDV_RELAY_TOKEN_BYTES]);
/* rdv_relay_bind_decode - true when @in is exactly a RELAY-BIND; its
 * token into @token. */
bool rdv_relay_bind_decode(const uint8_t *in, size_t len, uint8_t token[static RDV_RELAY_TOKEN_BYTES]);

/* rdv_result_str - a static, human-readable message for a result code. */
const char *rdv_result_str(unsigned int code);

#endif
