/*
 * rdv_proto.c - rendezvous control message codecs (see rdv_proto.h).
 *
 * Every parser reads through buf_reader; every count is checked against its
 * bound before anything is copied.  The tables are in docs/PROTOCOL.md.
 */
#include <errno.h>
#include <string.h>
#include <netinet/in.h>

#include "buddyfs/err.h"
#include "buddyfs/rdv_proto.h"

static int put_name(struct buf_writer *w, const char *name)
{
	size_t n = strnlen(name, RDV_NAME_MAX + 1);

	if (n == 0 || n > RDV_NAME_MAX)
		return -EINVAL;
	buf_put_u8(w, (uint8_t)n);
	buf_put_bytes(w, name, n);
	return 0;
}

static int get_name(struct buf_reader *r, char out[static RDV_NAME_MAX + 1])
{
	uint8_t n = 0;
	const uint8_t *p;

	if (!buf_get_u8(r, &n) || n == 0 || n > RDV_NAME_MAX || !buf_get_ref(r, n, &p))
		return BFS_EMALFORMED;
	if (memchr(p, 0, n))
		return BFS_EMALFORMED;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

static bool addr_valid(const struct rdv_addr *a)
{
	return (a->kind == RDV_ADDR_LOCAL || a->kind == RDV_ADDR_OBSERVED) &&
	       (a->family == 4 || a->family == 6);
}

static int put_addr(struct buf_writer *w, const struct rdv_addr *a)
{
	if (!addr_valid(a))
		return -EINVAL;
	buf_put_u8(w, a->kind);
	buf_put_u8(w, a->family);
	buf_put_bytes(w, a->addr, a->family == 4 ? 4 : 16);
	buf_put_u16be(w, a->port);
	return 0;
}

static int get_addr(struct buf_reader *r, struct rdv_addr *a)
{
	buf_get_u8(r, &a->kind);
	buf_get_u8(r, &a->family);
	if (!buf_reader_ok(r) || !addr_valid(a))
		return BFS_EMALFORMED;
	buf_get_bytes(r, a->addr, a->family == 4 ? 4 : 16);
	buf_get_u16be(r, &a->port);
	return buf_reader_ok(r) ? 0 : BFS_EMALFORMED;
}

static int put_addrs(struct buf_writer *w, const struct rdv_addr *a, size_t n, size_t max)
{
	int rc;

	if (n > max)
		return -EINVAL;
	buf_put_u8(w, (uint8_t)n);
	for (size_t i = 0; i < n; i++) {
		rc = put_addr(w, &a[i]);
		if (rc)
			return rc;
	}
	return 0;
}

static int get_addrs(struct buf_reader *r, struct rdv_msg *m, size_t max)
{
	uint8_t n = 0;
	int rc;

	if (!buf_get_u8(r, &n) || n > max)
		return BFS_EMALFORMED;
	for (size_t i = 0; i < n; i++) {
		rc = get_addr(r, &m->addrs[i]);
		if (rc)
			return rc;
	}
	m->n_addrs = n;
	return 0;
}

static bool all_kind(const struct rdv_msg *m, uint8_t kind)
{
	for (size_t i = 0; i < m->n_addrs; i++)
		if (m->addrs[i].kind != kind)
			return false;
	return true;
}

static int encode_body(struct buf_writer *w, const struct rdv_msg *m)
{
	switch (m->type) {
	case RDV_MSG_REGISTER:
		buf_put_u32be(w, m->req);
		if (put_name(w, m->name))
			return -EINVAL;
		buf_put_bytes(w, m->sig, RDV_SIG_BYTES);
		return 0;
	case RDV_MSG_LOOKUP:
		buf_put_u32be(w, m->req);
		return put_name(w, m->name);
	case RDV_MSG_WATCH:
		if (m->n_ids > RDV_MAX_WATCH)
			return -EINVAL;
		buf_put_u32be(w, m->req);
		buf_put_u16be(w, (uint16_t)m->n_ids);
		for (size_t i = 0; i < m->n_ids; i++)
			buf_put_bytes(w, m->ids[i], RDV_PEER_ID_BYTES);
		return 0;
	case RDV_MSG_REPORT:
		if (!all_kind(m, RDV_ADDR_LOCAL))
			return -EINVAL;
		buf_put_u32be(w, m->req);
		return put_addrs(w, m->addrs, m->n_addrs, RDV_MAX_REPORT_ADDRS);
	case RDV_MSG_RESULT:
		if (m->code > RDV_RESULT_MAX || m->cert_len > RDV_CERT_MAX_BYTES)
			return -EINVAL;
		buf_put_u32be(w, m->req);
		buf_put_u8(w, m->code);
		buf_put_u16be(w, (uint16_t)m->cert_len);
		buf_put_bytes(w, m->cert, m->cert_len);
		return 0;
	case RDV_MSG_PRESENCE:
		if (!m->online && m->n_addrs)
			return -EINVAL;
		buf_put_bytes(w, m->peer_id, RDV_PEER_ID_BYTES);
		buf_put_u8(w, m->online ? 1 : 0);
		return put_addrs(w, m->addrs, m->n_addrs, RDV_MAX_PRESENCE_ADDRS);
	case RDV_MSG_YOUR_ADDRESS:
		if (m->n_addrs != 1 || m->addrs[0].kind != RDV_ADDR_OBSERVED)
			return -EINVAL;
		return put_addr(w, &m->addrs[0]);
	case RDV_MSG_RELAY:
		buf_put_u32be(w, m->req);
		buf_put_bytes(w, m->peer_id, RDV_PEER_ID_BYTES);
		return 0;
	case RDV_MSG_RELAY_OFFER:
	case RDV_MSG_RELAY_READY:
		if (m->relay_port == 0)
			return -EINVAL;
		buf_put_bytes(w, m->peer_id, RDV_PEER_ID_BYTES);
		if (m->type == RDV_MSG_RELAY_OFFER)
			buf_put_bytes(w, m->token, RDV_RELAY_TOKEN_BYTES);
		buf_put_u16be(w, m->relay_port);
		return 0;
	default:
		return -EINVAL;
	}
}

int rdv_msg_encode(struct buf_writer *w, const struct rdv_msg *m)
{
	size_t mark = buf_writer_mark(w);
	int rc;

	buf_put_u8(w, RDV_PROTO_VERSION);
	buf_put_u8(w, m->type);
	rc = encode_body(w, m);
	if (rc == 0 && !buf_writer_ok(w))
		rc = -ENOSPC;
	if (rc)
		buf_writer_rollback(w, mark);
	return rc;
}

static int decode_body(struct buf_reader *r, struct rdv_msg *m)
{
	uint16_t n16 = 0;
	uint8_t u8 = 0;
	int rc;

	switch (m->type) {
	case RDV_MSG_REGISTER:
		buf_get_u32be(r, &m->req);
		rc = get_name(r, m->name);
		if (rc)
			return rc;
		buf_get_bytes(r, m->sig, RDV_SIG_BYTES);
		return 0;
	case RDV_MSG_LOOKUP:
		buf_get_u32be(r, &m->req);
		return get_name(r, m->name);
	case RDV_MSG_WATCH:
		buf_get_u32be(r, &m->req);
		if (!buf_get_u16be(r, &n16) || n16 > RDV_MAX_WATCH)
			return BFS_EMALFORMED;
		for (size_t i = 0; i < n16; i++)
			if (!buf_get_bytes(r, m->ids[i], RDV_PEER_ID_BYTES))
				return BFS_EMALFORMED;
		m->n_ids = n16;
		return 0;
	case RDV_MSG_REPORT:
		buf_get_u32be(r, &m->req);
		rc = get_addrs(r, m, RDV_MAX_REPORT_ADDRS);
		if (rc)
			return rc;
		return all_kind(m, RDV_ADDR_LOCAL) ? 0 : BFS_EMALFORMED;
	case RDV_MSG_RESULT:
		buf_get_u32be(r, &m->req);
		buf_get_u8(r, &m->code);
		if (!buf_get_u16be(r, &n16) || m->code > RDV_RESULT_MAX || n16 > RDV_CERT_MAX_BYTES)
			return BFS_EMALFORMED;
		if (!buf_get_bytes(r, m->cert, n16))
			return BFS_EMALFORMED;
		m->cert_len = n16;
		return 0;
	case RDV_MSG_PRESENCE:
		buf_get_bytes(r, m->peer_id, RDV_PEER_ID_BYTES);
		if (!buf_get_u8(r, &u8) || u8 > 1)
			return BFS_EMALFORMED;
		m->online = u8 == 1;
		rc = get_addrs(r, m, RDV_MAX_PRESENCE_ADDRS);
		if (rc)
			return rc;
		return !m->online && m->n_addrs ? BFS_EMALFORMED : 0;
	case RDV_MSG_YOUR_ADDRESS:
		rc = get_addr(r, &m->addrs[0]);
		if (rc)
			return rc;
		m->n_addrs = 1;
		return m->addrs[0].kind == RDV_ADDR_OBSERVED ? 0 : BFS_EMALFORMED;
	case RDV_MSG_RELAY:
		buf_get_u32be(r, &m->req);
		buf_get_bytes(r, m->peer_id, RDV_PEER_ID_BYTES);
		return buf_reader_ok(r) ? 0 : BFS_EMALFORMED;
	case RDV_MSG_RELAY_OFFER:
	case RDV_MSG_RELAY_READY:
		buf_get_bytes(r, m->peer_id, RDV_PEER_ID_BYTES);
		if (m->type == RDV_MSG_RELAY_OFFER)
			buf_get_bytes(r, m->token, RDV_RELAY_TOKEN_BYTES);
		if (!buf_get_u16be(r, &m->relay_port) || m->relay_port == 0)
			return BFS_EMALFORMED;
		return 0;
	default:
		return BFS_EMALFORMED;
	}
}

int rdv_msg_decode(struct rdv_msg *out, const uint8_t *in, size_t len)
{
	struct buf_reader r;
	uint8_t version = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	buf_reader_init(&r, in, len);
	if (!buf_get_u8(&r, &version))
		return BFS_EMALFORMED;
	if (version != RDV_PROTO_VERSION)
		return BFS_EVERSION;
	if (!buf_get_u8(&r, &out->type))
		return BFS_EMALFORMED;
	rc = decode_body(&r, out);
	if (rc == 0 && !buf_reader_done(&r))
		rc = BFS_EMALFORMED;
	if (rc) {
		uint8_t type = out->type;

		memset(out, 0, sizeof(*out));
		out->type = type;
	}
	return rc;
}

long rdv_register_signed(uint8_t out[static RDV_REGISTER_SIGNED_MAX_BYTES],
			 const uint8_t peer_id[static RDV_PEER_ID_BYTES], const char *name)
{
	struct buf_writer w;
	size_t n = strnlen(name, RDV_NAME_MAX + 1);

	if (n == 0 || n > RDV_NAME_MAX)
		return -EINVAL;
	buf_writer_init(&w, out, RDV_REGISTER_SIGNED_MAX_BYTES);
	buf_put_bytes(&w, RDV_REGISTER_CONTEXT, sizeof(RDV_REGISTER_CONTEXT)); /* with its NUL */
	buf_put_bytes(&w, peer_id, RDV_PEER_ID_BYTES);
	buf_put_u8(&w, (uint8_t)n);
	buf_put_bytes(&w, name, n);
	return buf_writer_ok(&w) ? (long)buf_writer_len(&w) : -EINVAL;
}

static const uint8_t v4_mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

int rdv_addr_from_sockaddr(struct rdv_addr *out, const struct sockaddr_storage *sa, uint8_t kind)
{
	memset(out, 0, sizeof(*out));
	out->kind = kind;
	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		out->family = 4;
		memcpy(out->addr, &s4->sin_addr, 4);
		out->port = ntohs(s4->sin_port);
		return 0;
	}
	if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

		out->port = ntohs(s6->sin6_port);
		if (memcmp(s6->sin6_addr.s6_addr, v4_mapped, sizeof(v4_mapped)) == 0) {
			out->family = 4;
			memcpy(out->addr, s6->sin6_addr.s6_addr + 12, 4);
		} else {
			out->family = 6;
			memcpy(out->addr, s6->sin6_addr.s6_addr, 16);
		}
		return 0;
	}
	return -EAFNOSUPPORT;
}

int rdv_addr_to_sockaddr(struct sockaddr_storage *out, const struct rdv_addr *a, bool v6)
{
	memset(out, 0, sizeof(*out));
	if (a->family == 4 && !v6) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)out;

		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, a->addr, 4);
		s4->sin_port = htons(a->port);
		return 0;
	}
	if (a->family == 4 || a->family == 6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;

		s6->sin6_family = AF_INET6;
		if (a->family == 4) {
			memcpy(s6->sin6_addr.s6_addr, v4_mapped, sizeof(v4_mapped));
			memcpy(s6->sin6_addr.s6_addr + 12, a->addr, 4);
		} else {
			memcpy(s6->sin6_addr.s6_addr, a->addr, 16);
		}
		s6->sin6_port = htons(a->port);
		return 0;
	}
	return -EAFNOSUPPORT;
}

const char *rdv_result_str(unsigned int code)
{
	switch (code) {
	case RDV_OK: return "ok";
	case RDV_ERR_TAKEN: return "the name is taken by another peer";
	case RDV_ERR_BADSIG: return "the registration signature does not verify";
	case RDV_ERR_NOTFOUND: return "no such name";
	case RDV_ERR_MALFORMED: return "the server refused a malformed request";
	case RDV_ERR_RATELIMIT: return "too many requests; try again later";
	case RDV_ERR_INTERNAL: return "the rendezvous server failed";
	default: return "unknown result code";
	}
}

void rdv_relay_bind_encode(uint8_t out[static RDV_RELAY_BIND_BYTES],
			   const uint8_t token[static RDV_RELAY_TOKEN_BYTES])
{
	memcpy(out, RDV_RELAY_BIND_MAGIC, 9);
	out[9] = RDV_PROTO_VERSION;
	memcpy(out + 10, token, RDV_RELAY_TOKEN_BYTES);
}

bool rdv_relay_bind_decode(const uint8_t *in, size_t len, uint8_t token[static RDV_RELAY_TOKEN_BYTES])
{
	struct buf_reader r;
	const uint8_t *magic;
	uint8_t version = 0;

	buf_reader_init(&r, in, len);
	if (!buf_get_ref(&r, 9, &magic) || memcmp(magic, RDV_RELAY_BIND_MAGIC, 9) != 0)
		return false;
	if (!buf_get_u8(&r, &version) || version != RDV_PROTO_VERSION)
		return false;
	return buf_get_bytes(&r, token, RDV_RELAY_TOKEN_BYTES) && buf_reader_done(&r);
}
