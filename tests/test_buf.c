/*
 * test_buf.c - bounded reader/writer and endian helpers.
 */
#include "t.h"

#include <stdint.h>

#include "buddyfs/buf.h"
#include "buddyfs/err.h"

T_CASE(endian_roundtrip)
{
	uint8_t b[8];

	buf_store16_be(b, 0x1234);
	T_CHECK(b[0] == 0x12 && b[1] == 0x34);
	T_CHECK_EQ_INT(buf_load16_be(b), 0x1234);
	buf_store32_be(b, 0xdeadbeef);
	T_CHECK(b[0] == 0xde && b[3] == 0xef);
	T_CHECK(buf_load32_be(b) == 0xdeadbeefu);
	buf_store64_be(b, 0x0102030405060708ull);
	T_CHECK(b[0] == 1 && b[7] == 8);
	T_CHECK(buf_load64_be(b) == 0x0102030405060708ull);
}

T_CASE(reader_bounds)
{
	const uint8_t data[] = { 1, 2, 3, 4, 5 };
	struct buf_reader r, sub;
	uint32_t v32;
	uint16_t v16;
	uint8_t v8;
	const uint8_t *p;

	buf_reader_init(&r, data, sizeof(data));
	T_CHECK(buf_get_u32be(&r, &v32));
	T_CHECK(v32 == 0x01020304u);
	T_CHECK(!buf_get_u16be(&r, &v16)); /* only one byte left */
	T_CHECK_EQ_INT(v16, 0);
	T_CHECK(!buf_reader_ok(&r));
	T_CHECK(!buf_get_u8(&r, &v8)); /* sticky */
	T_CHECK_EQ_INT(r.pos, 4);

	buf_reader_init(&r, data, sizeof(data));
	T_CHECK(buf_get_sub(&r, 3, &sub));
	T_CHECK(buf_get_ref(&sub, 3, &p) && p[2] == 3);
	T_CHECK(buf_reader_done(&sub));
	T_CHECK(!buf_get_sub(&r, 3, &sub));
	T_CHECK(!buf_reader_ok(&sub));
	buf_reader_init(&r, data, sizeof(data));
	T_CHECK(!buf_skip(&r, SIZE_MAX)); /* no wrap-around */
	buf_reader_init(&r, NULL, 10);
	T_CHECK_EQ_INT(buf_reader_remaining(&r), 0);
}

T_CASE(writer_fixed_and_rollback)
{
	uint8_t out[6];
	struct buf_writer w;
	size_t mark;

	buf_writer_init(&w, out, sizeof(out));
	T_CHECK(buf_put_u16be(&w, 0xabcd));
	mark = buf_writer_mark(&w);
	T_CHECK(buf_put_u32be(&w, 1));
	T_CHECK(!buf_put_u8(&w, 9));
	T_CHECK(!buf_writer_ok(&w));
	buf_writer_rollback(&w, mark);
	T_CHECK(buf_writer_ok(&w));
	T_CHECK_EQ_INT(buf_writer_len(&w), 2);
	T_CHECK(buf_put_u8(&w, 7));
	T_CHECK(out[0] == 0xab && out[2] == 7);
}

T_CASE(writer_dynamic)
{
	struct buf_writer w;
	uint8_t *p;
	size_t n;

	buf_writer_init_dynamic(&w, 1000);
	for (int i = 0; i < 250; i++)
		T_CHECK(buf_put_u32be(&w, (uint32_t)i));
	T_CHECK(!buf_put_u8(&w, 1)); /* the limit holds */
	buf_writer_rollback(&w, 999);
	T_CHECK(buf_put_u8(&w, 1));
	p = buf_writer_steal(&w, &n);
	T_CHECK(p != NULL);
	T_CHECK_EQ_INT(n, 1000);
	T_CHECK(buf_load32_be(p + 4 * 249) == 249 || n == 1000);
	free(p);
	buf_writer_free(&w);
}

/* A limit below the first allocation (256 bytes) holds too. */
T_CASE(writer_dynamic_small_max)
{
	struct buf_writer w;
	uint8_t blob[300] = { 0 };

	buf_writer_init_dynamic(&w, 10);
	T_CHECK(buf_put_bytes(&w, blob, 5));
	T_CHECK(!buf_put_bytes(&w, blob, 6)); /* 11 > 10 */
	T_CHECK_EQ_INT(buf_writer_len(&w), 5);
	buf_writer_rollback(&w, 5);
	T_CHECK(buf_put_bytes(&w, blob, 5));
	T_CHECK(!buf_put_u8(&w, 1));
	buf_writer_free(&w);
	buf_writer_init_dynamic(&w, 100);
	T_CHECK(buf_put_u8(&w, 1));
	T_CHECK(!buf_put_bytes(&w, blob, 200));
	buf_writer_rollback(&w, 1);
	T_CHECK(buf_put_bytes(&w, blob, 99));
	T_CHECK(!buf_put_u8(&w, 1));
	T_CHECK(buf_writer_len(&w) <= 100);
	buf_writer_free(&w);
}

T_CASE(hex)
{
	uint8_t in[3] = { 0x00, 0xa5, 0xff }, back[3];
	char s[7];

	buf_hex(s, in, 3);
	T_CHECK(strcmp(s, "00a5ff") == 0);
	T_CHECK(buf_unhex(back, 3, "00A5ff"));
	T_CHECK_MEM(back, in, 3);
	T_CHECK(!buf_unhex(back, 3, "00a5f"));
	T_CHECK(!buf_unhex(back, 3, "00a5ff0"));
	T_CHECK(!buf_unhex(back, 3, "00a5fg"));
}

T_CASE(strerror_covers_range)
{
	for (int e = BFS_E_FIRST; e < BFS_E_LAST; e++)
		T_CHECK(bfs_strerror(e) != NULL);
	T_CHECK(strcmp(bfs_strerror(-2), bfs_strerror(2)) == 0);
}

int main(void)
{
	T_RUN(endian_roundtrip);
	T_RUN(reader_bounds);
	T_RUN(writer_fixed_and_rollback);
	T_RUN(writer_dynamic);
	T_RUN(writer_dynamic_small_max);
	T_RUN(hex);
	T_RUN(strerror_covers_range);
	return t_done();
}
