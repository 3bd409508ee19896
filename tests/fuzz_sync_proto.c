/*
 * fuzz_sync_proto.c - libFuzzer target for the sync message decoder and
 * the store's synced record decoder: garbage is rejected without
 * crashing, and whatever decodes encodes back to exactly the same bytes
 * (the layouts are canonical; a batch is rebuilt item by item with the
 * sync_batch_* encoder) and decodes again to the same message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buddyfs/buf.h"
#include "buddyfs/err.h"
#include "buddyfs/store.h"
#include "buddyfs/sync_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void synced(const uint8_t *data, size_t size)
{
	uint8_t out[STORE_SYNCED_RECORD_BYTES];
	struct store_synced a, b;
	int rc = store_synced_decode(&a, data, size);

	if (rc != 0 && rc != BFS_EMALFORMED && rc != BFS_EVERSION)
		abort();
	if (rc)
		return;
	if (store_synced_encode(out, sizeof(out), &a) != (long)size || memcmp(out, data, size) != 0)
		abort();
	if (store_synced_decode(&b, out, size) != 0 || memcmp(&a, &b, sizeof(a)) != 0)
		abort();
}

/* reencode - the same message from its decoded form; a batch item by item. */
static int reencode(struct buf_writer *w, struct sync_msg *m)
{
	static struct sync_entry e;
	static struct sync_ack a;
	struct sync_batch batch;
	int rc;

	if (m->type != SYNC_MSG_INDEX && m->type != SYNC_MSG_PUSH && m->type != SYNC_MSG_ACK)
		return sync_msg_encode(w, m);
	rc = sync_batch_begin(&batch, w, m->type);
	while (rc == 0 && (m->type == SYNC_MSG_ACK ? sync_msg_next_ack(m, &a) : sync_msg_next_entry(m, &e)) == 1)
		rc = m->type == SYNC_MSG_ACK ? sync_batch_add_ack(&batch, &a) : sync_batch_add_entry(&batch, &e);
	return rc ? rc : sync_batch_end(&batch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sync_msg a, b;
	struct buf_writer w;
	uint8_t *out;
	size_t len;
	int rc;

	synced(data, size);
	rc = sync_msg_decode(&a, data, size);
	if (rc != 0 && rc != BFS_EMALFORMED)
		abort();
	if (rc)
		return 0;
	buf_writer_init_dynamic(&w, SYNC_MSG_MAX_BYTES);
	if (reencode(&w, &a) != 0)
		abort();
	out = buf_writer_steal(&w, &len);
	if (!out || len != size || memcmp(out, data, size) != 0)
		abort();
	if (sync_msg_decode(&b, out, len) != 0 || b.n_items != a.n_items || b.type != a.type ||
	    b.count != a.count || b.version != a.version || b.hello_flags != a.hello_flags ||
	    strcmp(b.name, a.name) != 0 || b.path_len != a.path_len || memcmp(b.path, a.path, a.path_len) != 0)
		abort();
	free(out);
	return 0;
}
