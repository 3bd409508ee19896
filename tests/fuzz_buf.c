/*
 * fuzz_buf.c - the bounded reader never reads outside its buffer, whatever
 * sequence of getters the input asks for.
 */
#include <stddef.h>
#include <stdint.h>

#include "buddyfs/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf_reader r, sub;
	uint8_t op, tmp[64];
	uint16_t v16;
	uint32_t v32;
	uint64_t v64;
	const uint8_t *p;

	buf_reader_init(&r, data, size);
	while (buf_get_u8(&r, &op)) {
		switch (op % 7) {
		case 0: buf_get_u16be(&r, &v16); break;
		case 1: buf_get_u32be(&r, &v32); break;
		case 2: buf_get_u64be(&r, &v64); break;
		case 3: buf_get_bytes(&r, tmp, op % sizeof(tmp)); break;
		case 4: if (buf_get_ref(&r, op, &p) && op) tmp[0] = p[op - 1]; break;
		case 5:
			if (buf_get_sub(&r, op / 4, &sub))
				while (buf_get_u8(&sub, &tmp[0]))
					;
			break;
		default: buf_skip(&r, (size_t)op << 20); break;
		}
		if (!buf_reader_ok(&r))
			break;
	}
	return 0;
}
