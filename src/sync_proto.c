/*
 * sync_proto.c - encode and decode the sync messages (sync_proto.h has
 * the layouts), and the entry digest.  Every read of untrusted bytes goes
 * through a buf_reader.
 */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "buddyfs/buf.h"
#include "buddyfs/err.h"
#include "buddyfs/sync_proto.h"

#define MODE_MASK 07777u

/* Two's complement both ways without implementation-defined conversions. */
static uint64_t i64_to_u64(int64_t v)
{
	return v < 0 ? ~(uint64_t)(-(v + 1)) : (uint64_t)v;
}

static int64_t u64_to_i64(uint64_t v)
{
	return v > INT64_MAX ? -(int64_t)~v - 1 : (int64_t)v;
}

static bool type_known(uint8_t type)
{
	return type >= SYNC_MSG_HELLO && type <= SYNC_MSG_PING;
}

static int put_path_bytes(struct buf_writer *w, const char *path, size_t len)
{
	if (len == 0 || len > STORE_PATH_MAX)
		return -EINVAL;
	buf_put_u16be(w, (uint16_t)len);
	buf_put_bytes(w, path, len);
	return 0;
}

static int put_entry(struct buf_writer *w, const struct sync_entry *e)
{
	uint8_t flags = e->deleted ? SYNC_ENTRY_DELETED : 0;
	int rc;

	if (e->type != STORE_ENTRY_FILE && e->type != STORE_ENTRY_DIR)
		return -EINVAL;
	if (e->mode & ~MODE_MASK)
		return -EINVAL;
	if (e->manifest_len) {
		if (!e->manifest || e->deleted || e->type != STORE_ENTRY_FILE ||
		    e->manifest_len > SYNC_MANIFEST_MAX_BYTES)
			return -EINVAL;
		flags |= SYNC_ENTRY_MANIFEST;
	}
	rc = put_path_bytes(w, e->path, e->path_len);
	if (rc)
		return rc;
	buf_put_u8(w, e->type);
	buf_put_u8(w, flags);
	buf_put_u32be(w, e->mode);
	buf_put_u64be(w, e->size);
	buf_put_u64be(w, i64_to_u64(e->mtime_ns));
	buf_put_bytes(w, e->owner, STORE_PEER_ID_BYTES);
	buf_put_u64be(w, e->version);
	buf_put_u64be(w, e->vv[0]);
	buf_put_u64be(w, e->vv[1]);
	buf_put_bytes(w, e->manifest_hash, STORE_HASH_BYTES);
	if (e->manifest_len) {
		buf_put_u32be(w, (uint32_t)e->manifest_len);
		buf_put_bytes(w, e->manifest, e->manifest_len);
	}
	return 0;
}

int sync_msg_encode(struct buf_writer *w, const struct sync_msg *m)
{
	size_t mark = buf_writer_mark(w), name_len;
	int rc = 0;

	switch (m->type) {
	case SYNC_MSG_HELLO:
		name_len = strnlen(m->name, sizeof(m->name));
		if (name_len > STORE_NAME_MAX || (m->hello_flags & ~SYNC_HELLO_BUDDY))
			return -EINVAL;
		buf_put_u8(w, m->type);
		buf_put_u8(w, m->version);
		buf_put_u8(w, m->hello_flags);
		buf_put_u8(w, (uint8_t)name_len);
		buf_put_bytes(w, m->name, name_len);
		break;
	case SYNC_MSG_INDEX_END:
		buf_put_u8(w, m->type);
		buf_put_u64be(w, m->count);
		break;
	case SYNC_MSG_RESEND:
		buf_put_u8(w, m->type);
		rc = put_path_bytes(w, m->path, m->path_len);
		break;
	case SYNC_MSG_PING:
		buf_put_u8(w, m->type);
		break;
	default:
		return -EINVAL;
	}
	if (rc == 0 && !buf_writer_ok(w))
		rc = -ENOSPC;
	if (rc)
		buf_writer_rollback(w, mark);
	return rc;
}

/* ---- batches ---- */

int sync_batch_begin(struct sync_batch *b, struct buf_writer *w, uint8_t type)
{
	memset(b, 0, sizeof(*b));
	if (type != SYNC_MSG_INDEX && type != SYNC_MSG_PUSH && type != SYNC_MSG_ACK)
		return -EINVAL;
	b->w = w;
	b->type = type;
	b->start = buf_writer_mark(w);
	buf_put_u8(w, type);
	buf_put_u16be(w, 0); /* the count, written by sync_batch_end */
	if (!buf_writer_ok(w)) {
		buf_writer_rollback(w, b->start);
		return -ENOSPC;
	}
	return 0;
}

/* item_end - the common end of adding one item at @mark. */
static int item_end(struct sync_batch *b, size_t mark, int rc)
{
	if (rc == 0 && !buf_writer_ok(b->w))
		rc = -ENOSPC;
	if (rc) {
		buf_writer_rollback(b->w, mark);
		return rc;
	}
	b->n++;
	return 0;
}

int sync_batch_add_entry(struct sync_batch *b, const struct sync_entry *e)
{
	size_t mark = buf_writer_mark(b->w);

	if (b->type != SYNC_MSG_INDEX && b->type != SYNC_MSG_PUSH)
		return -EINVAL;
	if (b->n == SYNC_BATCH_MAX)
		return -ENOSPC;
	return item_end(b, mark, put_entry(b->w, e));
}

int sync_batch_add_ack(struct sync_batch *b, const struct sync_ack *a)
{
	size_t mark = buf_writer_mark(b->w);
	int rc;

	if (b->type != SYNC_MSG_ACK)
		return -EINVAL;
	if (b->n == SYNC_BATCH_MAX)
		return -ENOSPC;
	rc = put_path_bytes(b->w, a->path, a->path_len);
	buf_put_bytes(b->w, a->digest, SYNC_DIGEST_BYTES);
	buf_put_u64be(b->w, a->vv[0]);
	buf_put_u64be(b->w, a->vv[1]);
	return item_end(b, mark, rc);
}

int sync_batch_end(struct sync_batch *b)
{
	if (b->n == 0 || !buf_writer_ok(b->w)) {
		buf_writer_rollback(b->w, b->start);
		return -EINVAL;
	}
	/* the count sits after the type byte, inside what this batch wrote */
	buf_store16_be(b->w->base + b->start + 1, b->n);
	return 0;
}

/* ---- decoding ---- */

static bool get_path_into(struct buf_reader *r, char *path, size_t *path_len)
{
	uint16_t len;

	if (!buf_get_u16be(r, &len) || len == 0 || len > STORE_PATH_MAX)
		return false;
	if (!buf_get_bytes(r, path, len))
		return false;
	path[len] = '\0';
	*path_len = len;
	return true;
}

static bool get_entry(struct buf_reader *r, struct sync_entry *e)
{
	uint8_t flags;
	uint64_t mtime;
	uint32_t mlen;

	e->manifest = NULL;
	e->manifest_len = 0;
	if (!get_path_into(r, e->path, &e->path_len))
		return false;
	buf_get_u8(r, &e->type);
	buf_get_u8(r, &flags);
	buf_get_u32be(r, &e->mode);
	buf_get_u64be(r, &e->size);
	buf_get_u64be(r, &mtime);
	buf_get_bytes(r, e->owner, STORE_PEER_ID_BYTES);
	buf_get_u64be(r, &e->version);
	buf_get_u64be(r, &e->vv[0]);
	buf_get_u64be(r, &e->vv[1]);
	buf_get_bytes(r, e->manifest_hash, STORE_HASH_BYTES);
	if (!buf_reader_ok(r))
		return false;
	if (e->type != STORE_ENTRY_FILE && e->type != STORE_ENTRY_DIR)
		return false;
	if ((flags & ~(SYNC_ENTRY_DELETED | SYNC_ENTRY_MANIFEST)) || (e->mode & ~MODE_MASK))
		return false;
	e->deleted = flags & SYNC_ENTRY_DELETED;
	e->mtime_ns = u64_to_i64(mtime);
	if (!(flags & SYNC_ENTRY_MANIFEST))
		return true;
	if (e->deleted || e->type != STORE_ENTRY_FILE)
		return false;
	if (!buf_get_u32be(r, &mlen) || mlen == 0 || mlen > SYNC_MANIFEST_MAX_BYTES)
		return false;
	if (!buf_get_ref(r, mlen, &e->manifest))
		return false;
	e->manifest_len = mlen;
	return true;
}

static bool get_ack(struct buf_reader *r, struct sync_ack *a)
{
	return get_path_into(r, a->path, &a->path_len) && buf_get_bytes(r, a->digest, SYNC_DIGEST_BYTES) &&
	       buf_get_u64be(r, &a->vv[0]) && buf_get_u64be(r, &a->vv[1]);
}

/* check_items - every item of a batch parses and nothing follows. */
static bool check_items(struct sync_msg *m)
{
	struct buf_reader r = m->items;
	struct sync_entry e;
	struct sync_ack a;

	if (m->n_items == 0 || m->n_items > SYNC_BATCH_MAX)
		return false;
	for (uint16_t i = 0; i < m->n_items; i++)
		if (!(m->type == SYNC_MSG_ACK ? get_ack(&r, &a) : get_entry(&r, &e)))
			return false;
	return buf_reader_done(&r);
}

int sync_msg_decode(struct sync_msg *out, const uint8_t *in, size_t len)
{
	struct buf_reader r;
	uint8_t name_len;
	bool ok = false;

	memset(out, 0, sizeof(*out));
	buf_reader_init(&r, in, len);
	if (!buf_get_u8(&r, &out->type) || !type_known(out->type))
		goto bad;
	switch (out->type) {
	case SYNC_MSG_HELLO:
		buf_get_u8(&r, &out->version);
		buf_get_u8(&r, &out->hello_flags);
		buf_get_u8(&r, &name_len);
		ok = buf_reader_ok(&r) && name_len <= STORE_NAME_MAX &&
		     !(out->hello_flags & ~SYNC_HELLO_BUDDY) && buf_get_bytes(&r, out->name, name_len) &&
		     !memchr(out->name, 0, name_len);
		break;
	case SYNC_MSG_INDEX:
	case SYNC_MSG_PUSH:
	case SYNC_MSG_ACK:
		if (!buf_get_u16be(&r, &out->n_items))
			break;
		buf_get_sub(&r, buf_reader_remaining(&r), &out->items);
		ok = check_items(out);
		break;
	case SYNC_MSG_INDEX_END:
		ok = buf_get_u64be(&r, &out->count);
		break;
	case SYNC_MSG_RESEND:
		ok = get_path_into(&r, out->path, &out->path_len);
		break;
	case SYNC_MSG_PING:
		ok = true;
		break;
	}
	if (ok && buf_reader_done(&r))
		return 0;
bad:
	memset(out, 0, sizeof(*out));
	return BFS_EMALFORMED;
}

int sync_msg_next_entry(struct sync_msg *m, struct sync_entry *out)
{
	if ((m->type != SYNC_MSG_INDEX && m->type != SYNC_MSG_PUSH) || buf_reader_remaining(&m->items) == 0)
		return 0;
	return get_entry(&m->items, out) ? 1 : 0;
}

int sync_msg_next_ack(struct sync_msg *m, struct sync_ack *out)
{
	if (m->type != SYNC_MSG_ACK || buf_reader_remaining(&m->items) == 0)
		return 0;
	return get_ack(&m->items, out) ? 1 : 0;
}

void sync_entry_digest(uint8_t out[static SYNC_DIGEST_BYTES], const struct store_entry *e)
{
	uint8_t b[sizeof(SYNC_DIGEST_CONTEXT) + 1 + 1 + 4 + 8 + 8 + 2 * STORE_HASH_BYTES];
	struct buf_writer w;

	buf_writer_init(&w, b, sizeof(b));
	buf_put_bytes(&w, SYNC_DIGEST_CONTEXT, sizeof(SYNC_DIGEST_CONTEXT)); /* with its NUL */
	buf_put_u8(&w, e->type);
	buf_put_u8(&w, e->deleted ? 1 : 0);
	buf_put_u32be(&w, e->mode);
	buf_put_u64be(&w, e->size);
	buf_put_u64be(&w, i64_to_u64(e->mtime_ns));
	buf_put_bytes(&w, e->owner, STORE_PEER_ID_BYTES);
	buf_put_bytes(&w, e->manifest, STORE_HASH_BYTES);
	crypto_generichash(out, SYNC_DIGEST_BYTES, b, buf_writer_len(&w), NULL, 0);
}
