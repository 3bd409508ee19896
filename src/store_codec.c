/*
 * store_codec.c - the byte layouts of the store's records (see store.h and
 * docs/PROTOCOL.md, "Store records"): peers, names, entries, blocks, synced
 * records, and the path rules entries and objects share.
 *
 * Every record starts with a version byte; integers are big-endian; strings
 * are length-prefixed and NUL-free.  Encodings are canonical: a record that
 * decodes encodes back to the same bytes (the fuzzers check it), so
 * decoders refuse unused flag bits, out-of-range enums and trailing bytes.
 * Parsing goes through buf_reader only.  The LMDB side (keys,
 * transactions) is store.c's.
 */
#include <errno.h>
#include <string.h>

#include "buddyfs/buf.h"
#include "buddyfs/err.h"
#include "buddyfs/store.h"
#include "buddyfs/store_codec.h"

#define PEER_FLAG_MUTUAL 0x01
#define ENTRY_FLAG_DELETED 0x01
#define ENTRY_MODE_MASK 07777u

/* ---- paths ---- */

/* path_bytes_ok - the path rules of store.h over @n bytes at @p. */
static bool path_bytes_ok(const uint8_t *p, size_t n, size_t max)
{
	size_t comp = 0;

	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || p[i] == '/') {
			if (comp == 0 || comp > STORE_FILE_NAME_MAX)
				return false;
			if (p[i - comp] == '.' && (comp == 1 || (comp == 2 && p[i - 1] == '.')))
				return false;
			comp = 0;
			continue;
		}
		if (p[i] == '\0')
			return false;
		comp++;
	}
	return true;
}

int store_path_check(const char *path)
{
	size_t n = strnlen(path, STORE_PATH_MAX + 1);

	return path_bytes_ok((const uint8_t *)path, n, STORE_PATH_MAX) ? 0 : BFS_EBADNAME;
}

int store_object_check(const char *object)
{
	size_t n = strnlen(object, STORE_OBJECT_MAX + 1);

	return path_bytes_ok((const uint8_t *)object, n, STORE_OBJECT_MAX) ? 0 : BFS_EBADNAME;
}

void store_path_split(const char *path, size_t *parent_len, const char **name)
{
	const char *slash = strrchr(path, '/');

	*parent_len = slash ? (size_t)(slash - path) : 0;
	*name = slash ? slash + 1 : path;
}

/* finish - the result of an encode: its length, or -ENOSPC. */
static long finish(const struct buf_writer *w)
{
	return buf_writer_ok(w) ? (long)buf_writer_len(w) : -ENOSPC;
}

/* ---- peers ---- */

static bool addr_ok(const struct store_addr *a)
{
	return (a->kind == STORE_ADDR_LOCAL || a->kind == STORE_ADDR_OBSERVED) &&
	       (a->family == 4 || a->family == 6);
}

int store_peer_check(const struct store_peer *p)
{
	if (strnlen(p->name, sizeof(p->name)) == sizeof(p->name))
		return -EINVAL;
	if (p->cert_len > STORE_CERT_MAX_BYTES || p->n_addrs > STORE_PEER_ADDRS_MAX)
		return -EINVAL;
	if (p->buddy != STORE_BUDDY_NONE && p->buddy != STORE_BUDDY_ADDED)
		return -EINVAL;
	for (size_t i = 0; i < p->n_addrs; i++)
		if (!addr_ok(&p->addrs[i]))
			return -EINVAL;
	return 0;
}

long store_peer_encode(uint8_t *out, size_t cap, const struct store_peer *p)
{
	struct buf_writer w;
	size_t name_len;

	if (store_peer_check(p))
		return -EINVAL;
	name_len = strlen(p->name);
	buf_writer_init(&w, out, cap);
	buf_put_u8(&w, STORE_RECORD_VERSION);
	buf_put_bytes(&w, p->id, STORE_PEER_ID_BYTES);
	buf_put_u8(&w, (uint8_t)name_len);
	buf_put_bytes(&w, p->name, name_len);
	buf_put_u16be(&w, (uint16_t)p->cert_len);
	buf_put_bytes(&w, p->cert, p->cert_len);
	buf_put_u8(&w, p->buddy);
	buf_put_u8(&w, p->mutual ? PEER_FLAG_MUTUAL : 0);
	buf_put_u64be(&w, p->added);
	buf_put_u64be(&w, p->last_seen);
	buf_put_u8(&w, (uint8_t)p->n_addrs);
	for (size_t i = 0; i < p->n_addrs; i++) {
		const struct store_addr *a = &p->addrs[i];

		buf_put_u8(&w, a->kind);
		buf_put_u8(&w, a->family);
		buf_put_u16be(&w, a->port);
		buf_put_bytes(&w, a->addr, a->family == 4 ? 4 : 16);
	}
	return finish(&w);
}

static bool get_addr(struct buf_reader *r, struct store_addr *a)
{
	buf_get_u8(r, &a->kind);
	buf_get_u8(r, &a->family);
	buf_get_u16be(r, &a->port);
	if (!buf_reader_ok(r) || !addr_ok(a))
		return false;
	return buf_get_bytes(r, a->addr, a->family == 4 ? 4 : 16);
}

int store_peer_decode(struct store_peer *out, const uint8_t *in, size_t len)
{
	struct buf_reader r;
	uint8_t version, name_len, flags, n_addrs;
	uint16_t cert_len;

	memset(out, 0, sizeof(*out));
	buf_reader_init(&r, in, len);
	if (!buf_get_u8(&r, &version))
		return BFS_EMALFORMED;
	if (version != STORE_RECORD_VERSION)
		return BFS_EVERSION;
	buf_get_bytes(&r, out->id, STORE_PEER_ID_BYTES);
	if (!buf_get_u8(&r, &name_len) || name_len > STORE_NAME_MAX)
		goto bad;
	if (!buf_get_bytes(&r, out->name, name_len) || memchr(out->name, '\0', name_len))
		goto bad;
	if (!buf_get_u16be(&r, &cert_len) || cert_len > STORE_CERT_MAX_BYTES)
		goto bad;
	buf_get_bytes(&r, out->cert, cert_len);
	out->cert_len = cert_len;
	buf_get_u8(&r, &out->buddy);
	buf_get_u8(&r, &flags);
	buf_get_u64be(&r, &out->added);
	buf_get_u64be(&r, &out->last_seen);
	buf_get_u8(&r, &n_addrs);
	if (!buf_reader_ok(&r) || (flags & ~PEER_FLAG_MUTUAL) || n_addrs > STORE_PEER_ADDRS_MAX)
		goto bad;
	if (out->buddy != STORE_BUDDY_NONE && out->buddy != STORE_BUDDY_ADDED)
		goto bad;
	out->mutual = flags & PEER_FLAG_MUTUAL;
	for (out->n_addrs = 0; out->n_addrs < n_addrs; out->n_addrs++)
		if (!get_addr(&r, &out->addrs[out->n_addrs]))
			goto bad;
	if (!buf_reader_done(&r))
		goto bad;
	return 0;
bad:
	memset(out, 0, sizeof(*out));
	return BFS_EMALFORMED;
}

/* ---- names ---- */

long store_name_encode(uint8_t *out, size_t cap, const uint8_t id[static STORE_PEER_ID_BYTES])
{
	struct buf_writer w;

	buf_writer_init(&w, out, cap);
	buf_put_u8(&w, STORE_RECORD_VERSION);
	buf_put_bytes(&w, id, STORE_PEER_ID_BYTES);
	return finish(&w);
}

int store_name_decode(uint8_t id[static STORE_PEER_ID_BYTES], const uint8_t *in, size_t len)
{
	struct buf_reader r;
	uint8_t version;

	buf_reader_init(&r, in, len);
	if (!buf_get_u8(&r, &version))
		return BFS_EMALFORMED;
	if (version != STORE_RECORD_VERSION)
		return BFS_EVERSION;
	if (!buf_get_bytes(&r, id, STORE_PEER_ID_BYTES) || !buf_reader_done(&r)) {
		memset(id, 0, STORE_PEER_ID_BYTES);
		return BFS_EMALFORMED;
	}
	return 0;
}

/* ---- entries ---- */

int store_entry_check(const struct store_entry *e)
{
	if (strnlen(e->path, sizeof(e->path)) == sizeof(e->path) || store_path_check(e->path))
		return BFS_EBADNAME;
	if (e->type != STORE_ENTRY_FILE && e->type != STORE_ENTRY_DIR)
		return -EINVAL;
	if (e->mode & ~ENTRY_MODE_MASK)
		return -EINVAL;
	return 0;
}

/* Two's complement both ways without implementation-defined conversions. */
static uint64_t i64_to_u64(int64_t v)
{
	return v < 0 ? ~(uint64_t)(-(v + 1)) : (uint64_t)v;
}

static int64_t u64_to_i64(uint64_t v)
{
	return v > INT64_MAX ? -(int64_t)~v - 1 : (int64_t)v;
}

long store_entry_encode(uint8_t *out, size_t cap, const struct store_entry *e)
{
	struct buf_writer w;
	size_t path_len;

	if (store_entry_check(e))
		return -EINVAL;
	path_len = strlen(e->path);
	buf_writer_init(&w, out, cap);
	buf_put_u8(&w, e->has_base ? STORE_ENTRY_RECORD_VERSION_BASE : STORE_RECORD_VERSION);
	buf_put_u8(&w, e->type);
	buf_put_u8(&w, e->deleted ? ENTRY_FLAG_DELETED : 0);
	buf_put_u32be(&w, e->mode);
	buf_put_u64be(&w, e->size);
	buf_put_u64be(&w, i64_to_u64(e->mtime_ns));
	buf_put_bytes(&w, e->owner, STORE_PEER_ID_BYTES);
	buf_put_u64be(&w, e->version);
	buf_put_bytes(&w, e->manifest, STORE_HASH_BYTES);
	buf_put_u16be(&w, (uint16_t)path_len);
	buf_put_bytes(&w, e->path, path_len);
	if (e->has_base)
		buf_put_u64be(&w, e->base);
	return finish(&w);
}

int store_entry_decode(struct store_entry *out, const uint8_t *in, size_t len)
{
	struct buf_reader r;
	uint8_t version, flags;
	uint16_t path_len;
	uint64_t mtime;
	const uint8_t *path;

	memset(out, 0, sizeof(*out));
	buf_reader_init(&r, in, len);
	if (!buf_get_u8(&r, &version))
		return BFS_EMALFORMED;
	if (version != STORE_RECORD_VERSION && version != STORE_ENTRY_RECORD_VERSION_BASE)
		return BFS_EVERSION;
	buf_get_u8(&r, &out->type);
	buf_get_u8(&r, &flags);
	buf_get_u32be(&r, &out->mode);
	buf_get_u64be(&r, &out->size);
	buf_get_u64be(&r, &mtime);
	buf_get_bytes(&r, out->owner, STORE_PEER_ID_BYTES);
	buf_get_u64be(&r, &out->version);
	buf_get_bytes(&r, out->manifest, STORE_HASH_BYTES);
	buf_get_u16be(&r, &path_len);
	if (!buf_reader_ok(&r) || path_len > STORE_PATH_MAX || !buf_get_ref(&r, path_len, &path))
		goto bad;
	if (version == STORE_ENTRY_RECORD_VERSION_BASE && !buf_get_u64be(&r, &out->base))
		goto bad;
	out->has_base = version == STORE_ENTRY_RECORD_VERSION_BASE;
	if (!buf_reader_done(&r) || !path_bytes_ok(path, path_len, STORE_PATH_MAX))
		goto bad;
	if (flags & ~ENTRY_FLAG_DELETED)
		goto bad;
	if (out->type != STORE_ENTRY_FILE && out->type != STORE_ENTRY_DIR)
		goto bad;
	if (out->mode & ~ENTRY_MODE_MASK)
		goto bad;
	memcpy(out->path, path, path_len);
	out->deleted = flags & ENTRY_FLAG_DELETED;
	out->mtime_ns = u64_to_i64(mtime);
	return 0;
bad:
	memset(out, 0, sizeof(*out));
	return BFS_EMALFORMED;
}

/* ---- blocks ---- */

long store_block_encode(uint8_t *out, size_t cap, const struct store_block *b)
{
	struct buf_writer w;
	size_t object_len;

	if (b->length == 0 || b->length > STORE_BLOCK_MAX_BYTES)
		return -EINVAL;
	buf_writer_init(&w, out, cap);
	switch (b->kind) {
	case STORE_BLOCK_LOCAL:
		if (strnlen(b->object, sizeof(b->object)) == sizeof(b->object) ||
		    store_object_check(b->object))
			return -EINVAL;
		object_len = strlen(b->object);
		buf_put_u8(&w, STORE_RECORD_VERSION);
		buf_put_u8(&w, STORE_BLOCK_LOCAL);
		buf_put_u16be(&w, (uint16_t)object_len);
		buf_put_bytes(&w, b->object, object_len);
		buf_put_u64be(&w, b->offset);
		buf_put_u32be(&w, b->length);
		break;
	case STORE_BLOCK_CACHED:
		if (!b->data)
			return -EINVAL;
		store_block_cached_header(&w, b->length);
		buf_put_bytes(&w, b->data, b->length);
		break;
	case STORE_BLOCK_CACHED_FILE:
		buf_put_u8(&w, STORE_BLOCK_RECORD_VERSION_FILE);
		buf_put_u8(&w, STORE_BLOCK_CACHED_FILE);
		buf_put_u32be(&w, b->length);
		break;
	default:
		return -EINVAL;
	}
	return finish(&w);
}

void store_block_cached_header(struct buf_writer *w, uint32_t length)
{
	buf_put_u8(w, STORE_RECORD_VERSION);
	buf_put_u8(w, STORE_BLOCK_CACHED);
	buf_put_u32be(w, length);
}

int store_block_decode(struct store_block *out, const uint8_t *in, size_t len)
{
	struct buf_reader r;
	uint8_t version;
	uint16_t object_len;
	const uint8_t *object;

	memset(out, 0, sizeof(*out));
	buf_reader_init(&r, in, len);
	if (!buf_get_u8(&r, &version))
		return BFS_EMALFORMED;
	if (version != STORE_RECORD_VERSION && version != STORE_BLOCK_RECORD_VERSION_FILE)
		return BFS_EVERSION;
	buf_get_u8(&r, &out->kind);
	if (version == STORE_BLOCK_RECORD_VERSION_FILE) {
		/* version 2 holds file-backed cached blocks only, version 1 never */
		if (out->kind != STORE_BLOCK_CACHED_FILE || !buf_get_u32be(&r, &out->length))
			goto bad;
		goto done;
	}
	switch (out->kind) {
	case STORE_BLOCK_LOCAL:
		if (!buf_get_u16be(&r, &object_len) || object_len > STORE_OBJECT_MAX ||
		    !buf_get_ref(&r, object_len, &object) ||
		    !path_bytes_ok(object, object_len, STORE_OBJECT_MAX))
			goto bad;
		memcpy(out->object, object, object_len);
		buf_get_u64be(&r, &out->offset);
		buf_get_u32be(&r, &out->length);
		break;
	case STORE_BLOCK_CACHED:
		if (!buf_get_u32be(&r, &out->length) || out->length > STORE_BLOCK_MAX_BYTES ||
		    !buf_get_ref(&r, out->length, &out->data))
			goto bad;
		break;
	default:
		goto bad;
	}
done:
	if (!buf_reader_done(&r) || out->length == 0 || out->length > STORE_BLOCK_MAX_BYTES)
		goto bad;
	return 0;
bad:
	memset(out, 0, sizeof(*out));
	return BFS_EMALFORMED;
}

/* ---- synced records ---- */

long store_synced_encode(uint8_t *out, size_t cap, const struct store_synced *v)
{
	struct buf_writer w;

	buf_writer_init(&w, out, cap);
	buf_put_u8(&w, STORE_RECORD_VERSION);
	buf_put_bytes(&w, v->digest, STORE_HASH_BYTES);
	buf_put_u64be(&w, v->vv[0]);
	buf_put_u64be(&w, v->vv[1]);
	buf_put_u64be(&w, v->version);
	return finish(&w);
}

int store_synced_decode(struct store_synced *out, const uint8_t *in, size_t len)
{
	struct buf_reader r;
	uint8_t version;

	memset(out, 0, sizeof(*out));
	buf_reader_init(&r, in, len);
	if (!buf_get_u8(&r, &version))
		return BFS_EMALFORMED;
	if (version != STORE_RECORD_VERSION)
		return BFS_EVERSION;
	buf_get_bytes(&r, out->digest, STORE_HASH_BYTES);
	buf_get_u64be(&r, &out->vv[0]);
	buf_get_u64be(&r, &out->vv[1]);
	buf_get_u64be(&r, &out->version);
	if (!buf_reader_done(&r)) {
		memset(out, 0, sizeof(*out));
		return BFS_EMALFORMED;
	}
	return 0;
}
