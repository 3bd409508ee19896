/*
 * fuzz_rdv_proto.c - libFuzzer target for the rendezvous control message
 * decoder: garbage is rejected without crashing, and whatever decodes
 * encodes back to the same bytes and decodes again to the same message.
 * The same bytes also go through the RELAY-BIND datagram decoder (a
 * round trip when it accepts them).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buddyfs/rdv_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rdv_msg a, b;
	static uint8_t out[RDV_MSG_MAX_BYTES];
	uint8_t token[RDV_RELAY_TOKEN_BYTES], bind[RDV_RELAY_BIND_BYTES];
	struct buf_writer w;

	if (rdv_relay_bind_decode(data, size, token)) {
		rdv_relay_bind_encode(bind, token);
		if (size != sizeof(bind) || memcmp(bind, data, size) != 0)
			abort();
	}
	if (rdv_msg_decode(&a, data, size) != 0)
		return 0;
	buf_writer_init(&w, out, sizeof(out));
	if (rdv_msg_encode(&w, &a) != 0)
		abort();
	if (buf_writer_len(&w) != size || memcmp(out, data, size) != 0)
		abort();
	if (rdv_msg_decode(&b, out, buf_writer_len(&w)) != 0 || memcmp(&a, &b, sizeof(a)) != 0)
		abort();
	return 0;
}
