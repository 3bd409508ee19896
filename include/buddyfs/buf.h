/*
 * buf.h - bounded readers and writers over byte buffers, endian helpers.
 *
 * Every parser of untrusted bytes (network, disk) reads through a struct
 * buf_reader.  Getters check "n > len - pos" before touching memory, never
 * "pos + n > len", so no arithmetic can wrap.  A failed getter sets the
 * reader's sticky error flag and consumes nothing; a parser may run a
 * sequence of getters and test buf_reader_ok() once at the end.
 *
 * Writers fill a fixed buffer (or a growing one) and have the same sticky
 * error flag; buf_writer_mark()/buf_writer_rollback() undo a partly written
 * unit (a chunk that turned out not to fit).
 *
 * All pointer arithmetic on untrusted lengths stays in buf.c.
 */
#ifndef BUDDYFS_BUF_H
#define BUDDYFS_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- endian helpers: load/store big-endian integers at any alignment ---- */
uint16_t buf_load16_be(const uint8_t p[static 2]);
uint32_t buf_load32_be(const uint8_t p[static 4]);
uint64_t buf_load64_be(const uint8_t p[static 8]);
void buf_store16_be(uint8_t p[static 2], uint16_t v);
void buf_store32_be(uint8_t p[static 4], uint32_t v);
void buf_store64_be(uint8_t p[static 8], uint64_t v);

/* ---- reader ---- */
struct buf_reader {
	const uint8_t *base;
	size_t len;
	size_t pos;
	bool err; /* sticky: set by the first getter that ran short */
};

/* buf_reader_init - read @len bytes at @base (may be NULL when @len is 0). */
void buf_reader_init(struct buf_reader *r, const void *base, size_t len);
size_t buf_reader_remaining(const struct buf_reader *r);
/* buf_reader_ok - no getter has failed so far. */
bool buf_reader_ok(const struct buf_reader *r);
/* buf_reader_done - no getter failed and every byte was consumed. */
bool buf_reader_done(const struct buf_reader *r);

/*
 * Getters return true and advance on success; on a short buffer they return
 * false, set r->err, advance nothing and leave *out zeroed (for integers).
 */
bool buf_get_u8(struct buf_reader *r, uint8_t *out);
bool buf_get_u16be(struct buf_reader *r, uint16_t *out);
bool buf_get_u32be(struct buf_reader *r, uint32_t *out);
bool buf_get_u64be(struct buf_reader *r, uint64_t *out);
/* buf_get_bytes - copy @n bytes into @out. */
bool buf_get_bytes(struct buf_reader *r, void *out, size_t n);
/* buf_get_ref - borrow @n bytes in place; *out lives as long as r->base. */
bool buf_get_ref(struct buf_reader *r, size_t n, const uint8_t **out);
/* buf_get_rest - borrow all remaining bytes (never fails; *n may be 0). */
void buf_get_rest(struct buf_reader *r, const uint8_t **out, size_t *n);
bool buf_skip(struct buf_reader *r, size_t n);
/*
 * buf_get_sub - split off the next @n bytes as an independent reader @sub,
 * for length-prefixed fields; fails like buf_get_ref().
 */
bool buf_get_sub(struct buf_reader *r, size_t n, struct buf_reader *sub);

/* ---- writer ---- */
struct buf_writer {
	uint8_t *base;
	size_t cap;   /* bytes at base */
	size_t len;
	size_t max;   /* dynamic writers: the most cap may grow to */
	bool err;     /* sticky: set by the first put that did not fit */
	bool dynamic; /* base is heap memory owned by the writer, grows */
};

/* buf_writer_init - write into the caller's @cap bytes at @base. */
void buf_writer_init(struct buf_writer *w, void *base, size_t cap);
/*
 * buf_writer_init_dynamic - a growing heap buffer, at most @max_cap bytes
 * (a put past it fails like a full fixed buffer).  Free with
 * buf_writer_free(), or take the buffer with buf_writer_steal().
 */
void buf_writer_init_dynamic(struct buf_writer *w, size_t max_cap);
void buf_writer_free(struct buf_writer *w);
/*
 * buf_writer_steal - hand the heap buffer (and its length in *len) to the
 * caller, who frees it with free(); the writer is left empty.  Returns NULL
 * if the writer failed (its buffer is then freed).
 */
uint8_t *buf_writer_steal(struct buf_writer *w, size_t *len);
bool buf_writer_ok(const struct buf_writer *w);
size_t buf_writer_len(const struct buf_writer *w);

/* Puts return false (and set w->err) when the bytes do not fit. */
bool buf_put_u8(struct buf_writer *w, uint8_t v);
bool buf_put_u16be(struct buf_writer *w, uint16_t v);
bool buf_put_u32be(struct buf_writer *w, uint32_t v);
bool buf_put_u64be(struct buf_writer *w, uint64_t v);
bool buf_put_bytes(struct buf_writer *w, const void *p, size_t n);
/* buf_put_reserve - reserve @n bytes to fill in later; *out points at them. */
bool buf_put_reserve(struct buf_writer *w, size_t n, uint8_t **out);

/* Marks: remember a length, and later cut back to it (clearing err). */
size_t buf_writer_mark(const struct buf_writer *w);
void buf_writer_rollback(struct buf_writer *w, size_t mark);

/* buf_hex - write 2*n lowercase hex digits and a NUL to @out. */
void buf_hex(char *out, const uint8_t *in, size_t n);
/* buf_unhex - parse exactly 2*n hex digits (any case); false on bad input. */
bool buf_unhex(uint8_t *out, size_t n, const char *hex);

#endif
