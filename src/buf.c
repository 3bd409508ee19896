/*
 * buf.c - bounded readers and writers over byte buffers (see buf.h).
 */
#include <stdlib.h>
#include <string.h>

#include "buddyfs/buf.h"

uint16_t buf_load16_be(const uint8_t p[static 2])
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

uint32_t buf_load32_be(const uint8_t p[static 4])
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint64_t buf_load64_be(const uint8_t p[static 8])
{
	return (uint64_t)buf_load32_be(p) << 32 | buf_load32_be(p + 4);
}

void buf_store16_be(uint8_t p[static 2], uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

void buf_store32_be(uint8_t p[static 4], uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

void buf_store64_be(uint8_t p[static 8], uint64_t v)
{
	buf_store32_be(p, (uint32_t)(v >> 32));
	buf_store32_be(p + 4, (uint32_t)v);
}

void buf_reader_init(struct buf_reader *r, const void *base, size_t len)
{
	r->base = base;
	r->len = base ? len : 0;
	r->pos = 0;
	r->err = false;
}

size_t buf_reader_remaining(const struct buf_reader *r)
{
	return r->len - r->pos;
}

bool buf_reader_ok(const struct buf_reader *r)
{
	return !r->err;
}

bool buf_reader_done(const struct buf_reader *r)
{
	return !r->err && r->pos == r->len;
}

/* take - the one place that checks a length against what is left. */
static const uint8_t *take(struct buf_reader *r, size_t n)
{
	const uint8_t *p;

	if (r->err || n > r->len - r->pos) {
		r->err = true;
		return NULL;
	}
	if (!r->base)
		return (const uint8_t *)""; /* n is 0: a valid pointer to nothing */
	p = r->base + r->pos;
	r->pos += n;
	return p;
}

bool buf_get_u8(struct buf_reader *r, uint8_t *out)
{
	const uint8_t *p = take(r, 1);

	*out = p ? p[0] : 0;
	return p != NULL;
}

bool buf_get_u16be(struct buf_reader *r, uint16_t *out)
{
	const uint8_t *p = take(r, 2);

	*out = p ? buf_load16_be(p) : 0;
	return p != NULL;
}

bool buf_get_u32be(struct buf_reader *r, uint32_t *out)
{
	const uint8_t *p = take(r, 4);

	*out = p ? buf_load32_be(p) : 0;
	return p != NULL;
}

bool buf_get_u64be(struct buf_reader *r, uint64_t *out)
{
	const uint8_t *p = take(r, 8);

	*out = p ? buf_load64_be(p) : 0;
	return p != NULL;
}

bool buf_get_bytes(struct buf_reader *r, void *out, size_t n)
{
	const uint8_t *p = take(r, n);

	if (p && n)
		memcpy(out, p, n);
	return p != NULL;
}

bool buf_get_ref(struct buf_reader *r, size_t n, const uint8_t **out)
{
	*out = take(r, n);
	return *out != NULL;
}

void buf_get_rest(struct buf_reader *r, const uint8_t **out, size_t *n)
{
	*n = r->err ? 0 : r->len - r->pos;
	*out = take(r, *n);
}

bool buf_skip(struct buf_reader *r, size_t n)
{
	return take(r, n) != NULL;
}

bool buf_get_sub(struct buf_reader *r, size_t n, struct buf_reader *sub)
{
	const uint8_t *p = take(r, n);

	buf_reader_init(sub, p, p ? n : 0);
	if (!p)
		sub->err = true;
	return p != NULL;
}

void buf_writer_init(struct buf_writer *w, void *base, size_t cap)
{
	w->base = base;
	w->cap = base ? cap : 0;
	w->len = 0;
	w->max = w->cap;
	w->err = false;
	w->dynamic = false;
}

void buf_writer_init_dynamic(struct buf_writer *w, size_t max_cap)
{
	w->base = NULL;
	w->cap = 0;
	w->len = 0;
	w->max = max_cap;
	w->err = false;
	w->dynamic = true;
}

void buf_writer_free(struct buf_writer *w)
{
	if (w->dynamic)
		free(w->base);
	w->base = NULL;
	w->cap = 0;
	w->len = 0;
}

uint8_t *buf_writer_steal(struct buf_writer *w, size_t *len)
{
	uint8_t *p = w->base;

	*len = w->len;
	if (w->err) {
		buf_writer_free(w);
		*len = 0;
		return NULL;
	}
	if (!p)
		p = malloc(1); /* an empty result is still a buffer to free */
	w->base = NULL;
	w->cap = 0;
	w->len = 0;
	return p;
}

bool buf_writer_ok(const struct buf_writer *w)
{
	return !w->err;
}

size_t buf_writer_len(const struct buf_writer *w)
{
	return w->len;
}

/* grow - make room for @n more bytes in a dynamic writer. */
static bool grow(struct buf_writer *w, size_t n)
{
	size_t want = w->cap ? w->cap : 256;
	uint8_t *p;

	if (n > w->max - w->len)
		return false;
	if (want > w->max)
		want = w->max; /* cap bounds every put (room() checks cap only) */
	while (want - w->len < n)
		want = want > w->max / 2 ? w->max : want * 2;
	p = realloc(w->base, want);
	if (!p)
		return false;
	w->base = p;
	w->cap = want;
	return true;
}

/* room - the one place that checks a length against the space left. */
static uint8_t *room(struct buf_writer *w, size_t n)
{
	uint8_t *p;

	if (w->err)
		return NULL;
	if (n > w->cap - w->len && !(w->dynamic && grow(w, n))) {
		w->err = true;
		return NULL;
	}
	if (!w->base)
		return (uint8_t *)w; /* n is 0: any valid pointer, never written */
	p = w->base + w->len;
	w->len += n;
	return p;
}

bool buf_put_u8(struct buf_writer *w, uint8_t v)
{
	uint8_t *p = room(w, 1);

	if (p)
		p[0] = v;
	return p != NULL;
}

bool buf_put_u16be(struct buf_writer *w, uint16_t v)
{
	uint8_t *p = room(w, 2);

	if (p)
		buf_store16_be(p, v);
	return p != NULL;
}

bool buf_put_u32be(struct buf_writer *w, uint32_t v)
{
	uint8_t *p = room(w, 4);

	if (p)
		buf_store32_be(p, v);
	return p != NULL;
}

bool buf_put_u64be(struct buf_writer *w, uint64_t v)
{
	uint8_t *p = room(w, 8);

	if (p)
		buf_store64_be(p, v);
	return p != NULL;
}

bool buf_put_bytes(struct buf_writer *w, const void *src, size_t n)
{
	uint8_t *p = room(w, n);

	if (p && n)
		memcpy(p, src, n);
	return p != NULL;
}

bool buf_put_reserve(struct buf_writer *w, size_t n, uint8_t **out)
{
	*out = room(w, n);
	return *out != NULL;
}

size_t buf_writer_mark(const struct buf_writer *w)
{
	return w->len;
}

void buf_writer_rollback(struct buf_writer *w, size_t mark)
{
	if (mark <= w->len)
		w->len = mark;
	w->err = false;
}

void buf_hex(char *out, const uint8_t *in, size_t n)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool buf_unhex(uint8_t *out, size_t n, const char *hex)
{
	for (size_t i = 0; i < n; i++) {
		int hi, lo;

		if (!hex[2 * i] || !hex[2 * i + 1])
			return false;
		hi = nibble(hex[2 * i]);
		lo = nibble(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return hex[2 * n] == '\0';
}
