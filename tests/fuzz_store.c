/*
 * fuzz_store.c - every store record decoder (the first input byte picks
 * one: 0 peer, 1 name, 2 entry, 3 block; the rest is the record).  A record
 * that decodes must encode back to exactly its input bytes (the layouts are
 * canonical) and decode again to the same fields.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buddyfs/err.h"
#include "buddyfs/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_bytes(const uint8_t *in, size_t len, const uint8_t *out, long n)
{
	if (n < 0 || (size_t)n != len || memcmp(in, out, len) != 0)
		abort();
}

static void check_rc(int rc)
{
	if (rc != 0 && rc != BFS_EMALFORMED && rc != BFS_EVERSION)
		abort();
}

static void peer(const uint8_t *in, size_t len)
{
	uint8_t out[STORE_PEER_RECORD_MAX_BYTES];
	struct store_peer p, q;
	int rc = store_peer_decode(&p, in, len);

	check_rc(rc);
	if (rc)
		return;
	same_bytes(in, len, out, store_peer_encode(out, sizeof(out), &p));
	if (store_peer_decode(&q, out, len) != 0 || memcmp(&p, &q, sizeof(p)) != 0)
		abort();
}

static void name(const uint8_t *in, size_t len)
{
	uint8_t out[STORE_NAME_RECORD_BYTES], id[STORE_PEER_ID_BYTES];
	int rc = store_name_decode(id, in, len);

	check_rc(rc);
	if (rc == 0)
		same_bytes(in, len, out, store_name_encode(out, sizeof(out), id));
}

static void entry(const uint8_t *in, size_t len)
{
	static uint8_t out[STORE_ENTRY_RECORD_MAX_BYTES];
	static struct store_entry e, f;
	int rc = store_entry_decode(&e, in, len);

	check_rc(rc);
	if (rc)
		return;
	if (store_path_check(e.path) != 0)
		abort();
	same_bytes(in, len, out, store_entry_encode(out, sizeof(out), &e));
	if (store_entry_decode(&f, out, len) != 0 || memcmp(&e, &f, sizeof(e)) != 0)
		abort();
}

static void block(const uint8_t *in, size_t len)
{
	uint8_t *out = malloc(len ? len : 1);
	struct store_block b;
	int rc = store_block_decode(&b, in, len);

	check_rc(rc);
	if (!out)
		abort();
	if (rc == 0) {
		if (b.kind == STORE_BLOCK_CACHED && (b.data < in || b.data + b.length != in + len))
			abort();
		same_bytes(in, len, out, store_block_encode(out, len, &b));
	}
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	switch (data[0] % 4) {
	case 0: peer(data + 1, size - 1); break;
	case 1: name(data + 1, size - 1); break;
	case 2: entry(data + 1, size - 1); break;
	default: block(data + 1, size - 1); break;
	}
	return 0;
}
