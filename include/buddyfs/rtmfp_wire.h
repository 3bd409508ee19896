/*
 * rtmfp_wire.h - the RTMFP wire codec (RFC 7016 section 2).
 *
 * Owns: variable length unsigned integers (VLU, 2.1.2), VLU-length-prefixed
 * fields, options and option lists (2.1.3, 2.1.4), socket address encoding
 * (2.1.5), the scrambled session id of the multiplex layer (2.2.2), the
 * decrypted packet layout (flags, timestamp, timestamp echo, chunks, padding;
 * 2.2.4), a codec for every chunk of 2.3 that a peer may send, the User Data
 * options of 2.3.11.1, and a packet assembler that builds a plaintext packet
 * chunk by chunk into a caller buffer.
 *
 * Leaves to others: encryption, decryption and the cryptographic meaning of
 * EPDs, certificates, SKIC/SKRC and signatures (rtmfp_crypto*); which chunk
 * is allowed in which mode or session state, cookies, timers (rtmfp_session);
 * flow state, fragmentation and acknowledgement policy (rtmfp_sendflow,
 * rtmfp_recvflow).  This module has no state, no clock and no malloc.
 *
 * Conventions:
 * - Decoders read untrusted bytes through struct buf_reader and never read
 *   outside them.  Decoded byte strings are struct rtmfp_wire_span values
 *   that BORROW the input: they stay valid as long as the input buffer.
 * - Chunk decoders take the chunk VALUE (the bytes after the 3-byte chunk
 *   header, as returned by rtmfp_wire_chunk_next()).  They return 0 or
 *   BFS_EMALFORMED.  Bytes after the last field of a chunk with a fixed set
 *   of fields (Buffer Probe, Flow Exception Report, Session Close Request
 *   and Acknowledgement) are ignored, as rtmfp-cpp does; every other chunk
 *   ends with a "rest of the chunk" field.
 * - Chunk encoders write a WHOLE chunk (type, 16-bit length, value) to a
 *   struct buf_writer, usually the writer of a struct rtmfp_wire_asm.  They
 *   are all-or-nothing: on failure the writer is left exactly as it was.
 *   They return 0, BFS_ETOOBIG (the chunk does not fit in the writer, or its
 *   value would exceed 65535 bytes) or -EINVAL (the struct cannot be encoded,
 *   e.g. an address family other than AF_INET/AF_INET6, a malformed option
 *   list span, descending ack ranges).
 * - Low-level getters (rtmfp_wire_get_*) follow buf.h: they return bool; on
 *   failure they set the reader's sticky error flag and consume nothing.
 *   Low-level putters (rtmfp_wire_put_*) likewise return bool and set the
 *   writer's error flag when the bytes do not fit (a partly written value is
 *   cut back, so the writer never holds half a VLU or field).
 *
 * Byte order is big-endian ("network order") everywhere, as in the RFC.
 */
#ifndef BUDDYFS_RTMFP_WIRE_H
#define BUDDYFS_RTMFP_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buddyfs/buf.h"

/* ------------------------------------------------------------------ */
/* Sizes and limits                                                    */
/* ------------------------------------------------------------------ */

/* A VLU holding any uint64_t takes at most 10 bytes (70 bits of payload). */
#define RTMFP_WIRE_VLU_MAX_BYTES 10
/* The scrambled session id in front of every encrypted packet (2.2.2). */
#define RTMFP_WIRE_SSID_BYTES 4
/* Chunk header: type (1) and value length (2, big-endian) (2.2.4). */
#define RTMFP_WIRE_CHUNK_HEADER_BYTES 3
/* Largest chunk value: the length field is 16 bits. */
#define RTMFP_WIRE_CHUNK_MAX_VALUE_BYTES 65535
/* Packet header: flags byte plus timestamp and timestamp echo (2.2.4). */
#define RTMFP_WIRE_MAX_HEADER_BYTES 5
/* An encoded address: flags byte, 4 or 16 address bytes, 2 port bytes. */
#define RTMFP_WIRE_ADDRESS_MAX_BYTES (1 + 16 + 2)
/* One timestamp tick is 4 milliseconds (2.2.4: "1/250 second"). */
#define RTMFP_WIRE_TIMESTAMP_TICK_MS 4
/* Data Ack chunks count the receive buffer in 1024-byte blocks (2.3.13). */
#define RTMFP_WIRE_BUFFER_BLOCK_BYTES 1024

/*
 * Datagram size.  We keep every datagram we send inside the IPv6 minimum
 * MTU of 1280 bytes, headers included, so no path ever has to fragment it:
 *   RTMFP_WIRE_PATH_MTU_BYTES (1280)
 *   - IPv6 header (40) - UDP header (8)   = RTMFP_WIRE_MAX_DATAGRAM_BYTES (1232),
 * the UDP payload: scrambled session id (4) + encrypted packet.  The
 * encrypted packet is the plaintext packet plus the crypto profile's
 * overhead (nonce, tag, checksum, padding: the profile says how much), so
 * the largest plaintext packet (flags byte through the last chunk) is
 *   RTMFP_WIRE_MAX_PACKET_BYTES(overhead) = 1232 - 4 - overhead.
 * For example the plain profile adds 18 bytes (16 x 0xff + checksum) and
 * gets 1210; a profile adding an 8-byte nonce and a 16-byte tag gets 1204.
 * @crypto_overhead must be a constant expression or variable below 1228.
 */
#define RTMFP_WIRE_PATH_MTU_BYTES 1280
#define RTMFP_WIRE_IP_UDP_HEADER_BYTES (40 + 8)
#define RTMFP_WIRE_MAX_DATAGRAM_BYTES (RTMFP_WIRE_PATH_MTU_BYTES - RTMFP_WIRE_IP_UDP_HEADER_BYTES)
#define RTMFP_WIRE_MAX_PACKET_BYTES(crypto_overhead) \
	((size_t)(RTMFP_WIRE_MAX_DATAGRAM_BYTES - RTMFP_WIRE_SSID_BYTES) - (size_t)(crypto_overhead))
/* The same, under the name the transport issue uses. */
#define RTMFP_MAX_PACKET_BYTES(crypto_overhead) RTMFP_WIRE_MAX_PACKET_BYTES(crypto_overhead)

/*
 * rtmfp_wire_max_packet_bytes - RTMFP_WIRE_MAX_PACKET_BYTES() as a function
 * that cannot underflow: 0 if @crypto_overhead leaves no room for even a
 * packet header and one empty chunk.
 */
size_t rtmfp_wire_max_packet_bytes(size_t crypto_overhead);

/* ------------------------------------------------------------------ */
/* Packet header (2.2.4)                                               */
/* ------------------------------------------------------------------ */

#define RTMFP_WIRE_FLAG_TC 0x80       /* time critical */
#define RTMFP_WIRE_FLAG_TCR 0x40      /* time critical reverse */
#define RTMFP_WIRE_FLAG_RESERVED 0x30 /* sent as 0, ignored on receipt */
#define RTMFP_WIRE_FLAG_TS 0x08       /* timestamp present */
#define RTMFP_WIRE_FLAG_TSE 0x04      /* timestamp echo present */
#define RTMFP_WIRE_FLAG_MODE_MASK 0x03

/* Packet mode, the low two bits of the flags byte.  0 is forbidden. */
enum rtmfp_wire_mode {
	RTMFP_WIRE_MODE_FORBIDDEN = 0,
	RTMFP_WIRE_MODE_INITIATOR = 1,
	RTMFP_WIRE_MODE_RESPONDER = 2,
	RTMFP_WIRE_MODE_STARTUP = 3,
};

/*
 * struct rtmfp_wire_header - the fields before the first chunk.
 * @flags: the flags byte as on the wire.  On encode the TS and TSE bits are
 *         taken from @has_timestamp/@has_timestamp_echo, not from @flags.
 *         On decode every bit is kept (reserved bits included).
 */
struct rtmfp_wire_header {
	uint8_t flags;
	bool has_timestamp;
	bool has_timestamp_echo;
	uint16_t timestamp;      /* sender's clock in 4 ms ticks */
	uint16_t timestamp_echo; /* the last timestamp the sender received */
};

/* rtmfp_wire_header_mode - the mode bits of @h->flags. */
enum rtmfp_wire_mode rtmfp_wire_header_mode(const struct rtmfp_wire_header *h);

/*
 * rtmfp_wire_timestamp - the 16-bit timestamp for a clock reading of @ms
 * milliseconds (any epoch): (ms / 4) mod 65536.
 */
uint16_t rtmfp_wire_timestamp(uint64_t ms);

/*
 * rtmfp_wire_timestamp_elapsed_ms - milliseconds from timestamp @earlier to
 * timestamp @later, modulo the 16-bit wrap (0 .. 262140 ms).
 */
uint32_t rtmfp_wire_timestamp_elapsed_ms(uint16_t later, uint16_t earlier);

/* ------------------------------------------------------------------ */
/* Scrambled session id (2.2.2)                                        */
/* ------------------------------------------------------------------ */

/*
 * rtmfp_wire_ssid_scramble - write the scrambled session id into the first
 * 4 bytes of @datagram: session_id XOR the first two 32-bit big-endian
 * words of the encrypted packet that follows it (datagram bytes 4..11).
 * Bytes past @len count as zero (rtmfp-cpp does the same), so a short
 * packet still gets a defined id.
 * @datagram: SSID (4 bytes, overwritten) + encrypted packet; @len its length.
 * Returns 0, or -EINVAL if @len < 4.
 */
int rtmfp_wire_ssid_scramble(uint8_t *datagram, size_t len, uint32_t session_id);

/*
 * rtmfp_wire_ssid_unscramble - the session id of a received @datagram
 * (the inverse of rtmfp_wire_ssid_scramble).
 * Returns 0 and sets *session_id, or BFS_EMALFORMED if @len < 4.
 */
int rtmfp_wire_ssid_unscramble(uint32_t *session_id, const uint8_t *datagram, size_t len);

/* ------------------------------------------------------------------ */
/* Byte spans                                                          */
/* ------------------------------------------------------------------ */

/*
 * struct rtmfp_wire_span - a borrowed byte string.  From a decoder it points
 * into the decoded input; for an encoder it points at the caller's bytes.
 * @p may be NULL when @len is 0.
 */
struct rtmfp_wire_span {
	const uint8_t *p;
	size_t len;
};

/* rtmfp_wire_span_eq - same length and same bytes (not constant time). */
bool rtmfp_wire_span_eq(struct rtmfp_wire_span a, struct rtmfp_wire_span b);

/* ------------------------------------------------------------------ */
/* VLU (2.1.2) and fields                                              */
/* ------------------------------------------------------------------ */

/*
 * A VLU is big-endian base 128: every byte but the last has its high bit
 * set.  We decode values that fit a uint64_t in at most 10 bytes; a longer
 * encoding (even of a small value, with leading 0x80 bytes) or one whose
 * value exceeds 2^64 - 1 is malformed.  We always encode minimally.
 */

/* rtmfp_wire_vlu_size - bytes of the minimal encoding of @v (1..10). */
size_t rtmfp_wire_vlu_size(uint64_t v);

/* rtmfp_wire_vlu_encode - write @v to @out; returns the bytes written. */
size_t rtmfp_wire_vlu_encode(uint8_t out[static RTMFP_WIRE_VLU_MAX_BYTES], uint64_t v);

/*
 * rtmfp_wire_vlu_decode - decode one VLU from the start of @in (@len bytes).
 * Returns the number of bytes consumed (1..10), or BFS_EMALFORMED if the
 * VLU is cut short by @len, is longer than 10 bytes or overflows 64 bits.
 */
int rtmfp_wire_vlu_decode(uint64_t *v, const uint8_t *in, size_t len);

bool rtmfp_wire_get_vlu(struct buf_reader *r, uint64_t *v);
bool rtmfp_wire_put_vlu(struct buf_writer *w, uint64_t v);

/*
 * A field is a VLU length followed by that many bytes (the "...Length" +
 * bytes pairs of 2.3, e.g. the EPD of IHello).
 * rtmfp_wire_get_field - borrow the field's bytes into *out.
 * rtmfp_wire_field_size - encoded size of a field of @len bytes.
 */
bool rtmfp_wire_get_field(struct buf_reader *r, struct rtmfp_wire_span *out);
bool rtmfp_wire_put_field(struct buf_writer *w, const void *p, size_t len);
size_t rtmfp_wire_field_size(size_t len);

/* ------------------------------------------------------------------ */
/* Options and option lists (2.1.3, 2.1.4)                             */
/* ------------------------------------------------------------------ */

/*
 * An option is: length VLU L, then L bytes made of a type VLU and the
 * value.  L == 0 (the single byte 0x00) is the marker that ends a list.
 */
struct rtmfp_wire_option {
	uint64_t type;
	struct rtmfp_wire_span value;
};

/*
 * rtmfp_wire_get_option - read one option or the marker.
 * Returns 1 and fills *opt for an option, 0 for the marker, or
 * BFS_EMALFORMED (reader error flag set, nothing consumed) if the length
 * overruns the reader or the type VLU does not fit inside the option.
 */
int rtmfp_wire_get_option(struct buf_reader *r, struct rtmfp_wire_option *opt);

/* rtmfp_wire_put_option - an option of @type with @len value bytes. */
bool rtmfp_wire_put_option(struct buf_writer *w, uint64_t type, const void *value, size_t len);
/* rtmfp_wire_put_option_vlu - an option whose value is the VLU @v. */
bool rtmfp_wire_put_option_vlu(struct buf_writer *w, uint64_t type, uint64_t v);
/* rtmfp_wire_put_marker - the 0x00 that ends an option list. */
bool rtmfp_wire_put_marker(struct buf_writer *w);
/* rtmfp_wire_option_size - encoded size of an option (not the marker). */
size_t rtmfp_wire_option_size(uint64_t type, size_t value_len);

/*
 * rtmfp_wire_get_option_list - read a whole option list up to and
 * including its marker, checking every option.  *list covers the options
 * WITHOUT the marker (possibly empty); walk it with
 * struct rtmfp_wire_option_iter.  Returns false (reader error set, nothing
 * consumed) if an option is malformed or the marker is missing.
 */
bool rtmfp_wire_get_option_list(struct buf_reader *r, struct rtmfp_wire_span *list);

/*
 * rtmfp_wire_option_list_valid - @list is a sequence of whole options with
 * no marker (the form rtmfp_wire_get_option_list() returns).
 */
bool rtmfp_wire_option_list_valid(struct rtmfp_wire_span list);

/* Walk a list from rtmfp_wire_get_option_list() (or any valid list). */
struct rtmfp_wire_option_iter {
	struct buf_reader r;
};
void rtmfp_wire_option_iter_init(struct rtmfp_wire_option_iter *it, struct rtmfp_wire_span list);
/*
 * rtmfp_wire_option_next - 1 and *opt for the next option, 0 at the end of
 * the list (or at a marker), BFS_EMALFORMED if the list is not valid.
 */
int rtmfp_wire_option_next(struct rtmfp_wire_option_iter *it, struct rtmfp_wire_option *opt);

/* ------------------------------------------------------------------ */
/* Addresses (2.1.5)                                                   */
/* ------------------------------------------------------------------ */

/* Flags byte: I bit (IPv6), 5 reserved bits, 2 origin bits. */
#define RTMFP_WIRE_ADDR_FLAG_INET6 0x80
#define RTMFP_WIRE_ADDR_ORIGIN_MASK 0x03

enum rtmfp_wire_origin {
	RTMFP_WIRE_ORIGIN_UNKNOWN = 0,
	RTMFP_WIRE_ORIGIN_LOCAL = 1,    /* reported by the host itself */
	RTMFP_WIRE_ORIGIN_OBSERVED = 2, /* seen as a packet's source */
	RTMFP_WIRE_ORIGIN_RELAY = 3,    /* a relay (e.g. our rendezvous) */
};

/*
 * struct rtmfp_wire_address - an IPv4 or IPv6 socket address and its origin.
 * @addr holds a struct sockaddr_in or sockaddr_in6 (family, address, port;
 * other sockaddr_in6 fields zero on decode and ignored on encode).
 */
struct rtmfp_wire_address {
	struct sockaddr_storage addr;
	enum rtmfp_wire_origin origin;
};

/*
 * rtmfp_wire_get_address - decode one address.  Reserved flag bits are
 * ignored.  Fails like a buf getter when the bytes run short.
 */
bool rtmfp_wire_get_address(struct buf_reader *r, struct rtmfp_wire_address *out);

/*
 * rtmfp_wire_put_address - encode @a.  Returns 0, -EAFNOSUPPORT if the
 * family is not AF_INET or AF_INET6 (the writer is untouched), or
 * BFS_ETOOBIG if it does not fit (writer error set, nothing written).
 */
int rtmfp_wire_put_address(struct buf_writer *w, const struct rtmfp_wire_address *a);

/* rtmfp_wire_address_size - 7 for IPv4, 19 for IPv6, 0 otherwise. */
size_t rtmfp_wire_address_size(const struct rtmfp_wire_address *a);

/*
 * rtmfp_wire_address_set - fill @out from a sockaddr (@sa, @salen) and
 * @origin.  Returns 0 or -EAFNOSUPPORT (also for a short @salen).
 */
int rtmfp_wire_address_set(struct rtmfp_wire_address *out, const struct sockaddr *sa,
			   socklen_t salen, enum rtmfp_wire_origin origin);

/*
 * rtmfp_wire_address_socklen - the length to pass to sendto()/connect()
 * with (struct sockaddr *)&a->addr: sizeof(struct sockaddr_in) or
 * sizeof(struct sockaddr_in6), 0 for another family.
 */
socklen_t rtmfp_wire_address_socklen(const struct rtmfp_wire_address *a);

/*
 * rtmfp_wire_address_eq - same family, address and port (origin and
 * IPv6 flow info/scope ignored).
 */
bool rtmfp_wire_address_eq(const struct rtmfp_wire_address *a, const struct rtmfp_wire_address *b);

/*
 * rtmfp_wire_address_list_valid - @list is zero or more whole addresses
 * (the form of a Redirect's destination list); *count receives how many.
 */
bool rtmfp_wire_address_list_valid(struct rtmfp_wire_span list, size_t *count);

/* ------------------------------------------------------------------ */
/* Packets and the chunk iterator (2.2.4)                              */
/* ------------------------------------------------------------------ */

/* Chunk types (2.3). */
enum rtmfp_wire_chunk_type {
	RTMFP_WIRE_CHUNK_PING = 0x01,
	RTMFP_WIRE_CHUNK_CLOSE = 0x0c,              /* Session Close Request */
	RTMFP_WIRE_CHUNK_FIHELLO = 0x0f,            /* Forwarded Initiator Hello */
	RTMFP_WIRE_CHUNK_USERDATA = 0x10,
	RTMFP_WIRE_CHUNK_NEXT_USERDATA = 0x11,
	RTMFP_WIRE_CHUNK_BUFFER_PROBE = 0x18,
	RTMFP_WIRE_CHUNK_IHELLO = 0x30,             /* Initiator Hello */
	RTMFP_WIRE_CHUNK_IIKEYING = 0x38,           /* Initiator Initial Keying */
	RTMFP_WIRE_CHUNK_PING_REPLY = 0x41,
	RTMFP_WIRE_CHUNK_CLOSE_ACK = 0x4c,          /* Session Close Acknowledgement */
	RTMFP_WIRE_CHUNK_ACK_BITMAP = 0x50,         /* Data Acknowledgement Bitmap */
	RTMFP_WIRE_CHUNK_ACK_RANGES = 0x51,         /* Data Acknowledgement Ranges */
	RTMFP_WIRE_CHUNK_EXCEPTION = 0x5e,          /* Flow Exception Report */
	RTMFP_WIRE_CHUNK_RHELLO = 0x70,             /* Responder Hello */
	RTMFP_WIRE_CHUNK_REDIRECT = 0x71,           /* Responder Redirect */
	RTMFP_WIRE_CHUNK_RIKEYING = 0x78,           /* Responder Initial Keying */
	RTMFP_WIRE_CHUNK_COOKIE_CHANGE = 0x79,      /* Responder Hello Cookie Change */
	RTMFP_WIRE_CHUNK_FRAGMENT = 0x7f,           /* Packet Fragment (no codec) */
	RTMFP_WIRE_CHUNK_PADDING = 0xff,            /* padding to the end of the packet */
};

/* rtmfp_wire_chunk_name - a static name for logs ("unknown" if none). */
const char *rtmfp_wire_chunk_name(uint8_t type);

/* One chunk as found in a packet; @value borrows the packet bytes. */
struct rtmfp_wire_chunk {
	uint8_t type;
	struct rtmfp_wire_span value;
};

struct rtmfp_wire_chunk_iter {
	struct buf_reader r;
	bool done;
};

/*
 * rtmfp_wire_packet_begin - decode the header of a decrypted packet
 * (@len bytes at @packet, starting at the flags byte) and set up @it to walk
 * its chunks.  The mode bits are not judged here (the session does).
 * Returns 0, or BFS_EMALFORMED if the packet is empty or a flagged
 * timestamp is cut short.  @packet must outlive @it and every chunk taken
 * from it.
 */
int rtmfp_wire_packet_begin(struct rtmfp_wire_chunk_iter *it, struct rtmfp_wire_header *h,
			    const uint8_t *packet, size_t len);

/*
 * rtmfp_wire_chunk_next - the next chunk.
 * Returns 1 and fills *c; 0 at the end of the packet; BFS_EMALFORMED if a
 * chunk's length runs past the end of the packet.  After 0 or an error,
 * further calls return the same.  The end is: no bytes left; fewer than 3
 * bytes left (trailing padding); a chunk type of 0xff (padding to the end);
 * or only 0x00 bytes left (zero padding).  Chunk types we have no codec
 * for are returned like any other; the caller ignores them.
 */
int rtmfp_wire_chunk_next(struct rtmfp_wire_chunk_iter *it, struct rtmfp_wire_chunk *c);

/* ------------------------------------------------------------------ */
/* Chunk bodies (2.3)                                                  */
/* ------------------------------------------------------------------ */

/* IHello 0x30 (2.3.2): epd field, tag (rest). */
struct rtmfp_wire_ihello {
	struct rtmfp_wire_span epd;
	struct rtmfp_wire_span tag;
};

/* FIHello 0x0f (2.3.3): epd field, reply address, tag (rest). */
struct rtmfp_wire_fihello {
	struct rtmfp_wire_span epd;
	struct rtmfp_wire_address reply_address;
	struct rtmfp_wire_span tag;
};

/* RHello 0x70 (2.3.4): tag echo field, cookie field, responder cert (rest). */
struct rtmfp_wire_rhello {
	struct rtmfp_wire_span tag;
	struct rtmfp_wire_span cookie;
	struct rtmfp_wire_span cert;
};

/*
 * Redirect 0x71 (2.3.5): tag echo field, then zero or more addresses to the
 * end.  @addresses is the encoded address list (validated on decode and on
 * encode); read it with rtmfp_wire_get_address() over a reader on it.
 * @address_count is set by the decoder and ignored by the encoder.
 */
struct rtmfp_wire_redirect {
	struct rtmfp_wire_span tag;
	struct rtmfp_wire_span addresses;
	size_t address_count;
};

/* Cookie Change 0x79 (2.3.6): old cookie field, new cookie (rest). */
struct rtmfp_wire_cookie_change {
	struct rtmfp_wire_span old_cookie;
	struct rtmfp_wire_span new_cookie;
};

/*
 * IIKeying 0x38 (2.3.7): initiator session id (32 bits), cookie echo field,
 * initiator certificate field, SKIC field, signature (rest).  The signature
 * covers @signed_part: the chunk value from the session id through the SKIC
 * field (set by the decoder; ignored by the encoder; build it for signing
 * with rtmfp_wire_iikeying_put_signed()).
 * The session id is read big-endian; rtmfp_wire_ssid_* use the same order,
 * so its 4 bytes equal the unscrambled SSID bytes (what rtmfp-cpp, which
 * treats them as opaque bytes, expects).
 */
struct rtmfp_wire_iikeying {
	uint32_t session_id;
	struct rtmfp_wire_span cookie;
	struct rtmfp_wire_span cert;
	struct rtmfp_wire_span skic;
	struct rtmfp_wire_span signature;
	struct rtmfp_wire_span signed_part;
};

/*
 * RIKeying 0x78 (2.3.8): responder session id (32 bits), SKRC field,
 * signature (rest).  @signed_part: session id and SKRC field, as above.
 */
struct rtmfp_wire_rikeying {
	uint32_t session_id;
	struct rtmfp_wire_span skrc;
	struct rtmfp_wire_span signature;
	struct rtmfp_wire_span signed_part;
};

/* Ping 0x01 / Ping Reply 0x41 (2.3.9, 2.3.10): the message (whole value). */
struct rtmfp_wire_ping {
	struct rtmfp_wire_span message;
};

/* User Data flags (2.3.11). */
#define RTMFP_WIRE_UD_FLAG_OPT 0x80        /* an option list follows */
#define RTMFP_WIRE_UD_FLAG_RESERVED 0x4c   /* sent as 0, ignored */
#define RTMFP_WIRE_UD_FLAG_FRA_MASK 0x30   /* fragment control */
#define RTMFP_WIRE_UD_FRA_WHOLE 0x00
#define RTMFP_WIRE_UD_FRA_BEGIN 0x10
#define RTMFP_WIRE_UD_FRA_END 0x20
#define RTMFP_WIRE_UD_FRA_MIDDLE 0x30
#define RTMFP_WIRE_UD_FLAG_ABN 0x02        /* abandon */
#define RTMFP_WIRE_UD_FLAG_FIN 0x01        /* final fragment of the flow */

/*
 * User Data 0x10 (2.3.11): flags, flow id VLU, sequence number VLU,
 * forward sequence number offset VLU, option list (only if OPT is set),
 * user data (rest).
 * Next User Data 0x11 (2.3.12): flags, option list (if OPT), user data;
 * flow id, sequence number and FSN offset are implied by the chunk before
 * it (rtmfp_wire_userdata_expand_next()).  The Next User Data decoder
 * leaves @flow_id, @seq and @fsn_offset zero and the encoder ignores them.
 * @options: the option list WITHOUT its marker; meaningful only when OPT is
 * set in @flags (the encoder then appends the marker; it returns -EINVAL if
 * @options is non-empty without OPT or is not a valid list).
 * The decoder rejects fsn_offset > seq (the FSN would be negative).
 */
struct rtmfp_wire_userdata {
	uint8_t flags;
	uint64_t flow_id;
	uint64_t seq;
	uint64_t fsn_offset; /* forward sequence number = seq - fsn_offset */
	struct rtmfp_wire_span options;
	struct rtmfp_wire_span data;
};

/*
 * rtmfp_wire_userdata_expand_next - complete a decoded Next User Data
 * chunk @next from the (User Data or expanded Next User Data) chunk @prev
 * just before it in the same packet: same flow, seq = prev->seq + 1, same
 * forward sequence number (so fsn_offset = prev->fsn_offset + 1).
 * Returns 0, or BFS_EMALFORMED if the sequence number would overflow.
 */
int rtmfp_wire_userdata_expand_next(struct rtmfp_wire_userdata *next,
				    const struct rtmfp_wire_userdata *prev);

/*
 * rtmfp_wire_userdata_header_size - bytes a User Data chunk (chunk header
 * included) needs before its option list and data for these numbers; add
 * the option list and marker if any, and the data.  For fragmentation.
 */
size_t rtmfp_wire_userdata_header_size(uint64_t flow_id, uint64_t seq, uint64_t fsn_offset);

/* User Data option types (2.3.11.1). */
#define RTMFP_WIRE_UD_OPTION_METADATA 0x00          /* User's Per-Flow Metadata */
#define RTMFP_WIRE_UD_OPTION_RETURN_ASSOCIATION 0x0a /* Return Flow Association */
/* Option types below this are mandatory: a receiver that does not know one
 * must reject the flow (2.3.11.1). */
#define RTMFP_WIRE_UD_OPTION_MANDATORY_BELOW 0x2000

/*
 * struct rtmfp_wire_flow_options - the User Data options a flow's first
 * fragment may carry, as found by rtmfp_wire_flow_options_parse().
 */
struct rtmfp_wire_flow_options {
	bool has_metadata;
	struct rtmfp_wire_span metadata;
	bool has_return_flow;
	uint64_t return_flow_id;
	bool unknown_mandatory; /* an unknown type < 0x2000 was present */
};

/*
 * rtmfp_wire_flow_options_parse - walk @list (a User Data option list
 * without marker) into @out.  Later duplicates win.
 * Returns 0, or BFS_EMALFORMED if the list is malformed or a Return Flow
 * Association value is not exactly one VLU.
 */
int rtmfp_wire_flow_options_parse(struct rtmfp_wire_flow_options *out, struct rtmfp_wire_span list);

/* Builders for the two options (append to an option list being built). */
bool rtmfp_wire_put_option_metadata(struct buf_writer *w, const void *metadata, size_t len);
bool rtmfp_wire_put_option_return_flow(struct buf_writer *w, uint64_t flow_id);

/*
 * Data Ack Bitmap 0x50 (2.3.13, parse only; nobody sends it): flow id VLU,
 * buffer blocks available VLU, cumulative ack VLU, bitmap bytes (rest).
 * Data Ack Ranges 0x51 (2.3.14): the same three VLUs, then pairs of VLUs
 * (holes - 1, received - 1) to the end.
 * @ranges: the encoded pairs.  The decoder keeps only whole pairs: a
 * trailing odd or cut-short VLU is dropped (rtmfp-cpp's encoder may leave
 * one when it truncates), and rejects pairs whose absolute sequence
 * numbers would overflow 64 bits.  @range_count is set by the decoder and
 * ignored by the encoder.  Walk the ranges with struct rtmfp_wire_ack_iter.
 */
struct rtmfp_wire_ack {
	uint64_t flow_id;
	uint64_t buffer_blocks;  /* receive buffer available, in 1024-byte blocks */
	uint64_t cumulative_ack; /* every sequence number <= this was received */
	struct rtmfp_wire_span bitmap; /* 0x50 only */
	struct rtmfp_wire_span ranges; /* 0x51 only */
	size_t range_count;            /* 0x51 only */
};

/* An inclusive range of sequence numbers. */
struct rtmfp_wire_seq_range {
	uint64_t first;
	uint64_t last;
};

struct rtmfp_wire_ack_iter {
	struct buf_reader r;
	uint64_t cursor; /* last sequence number covered so far */
};
void rtmfp_wire_ack_iter_init(struct rtmfp_wire_ack_iter *it, const struct rtmfp_wire_ack *a);
/*
 * rtmfp_wire_ack_iter_next - 1 and the next received range in *out, 0 at
 * the end, BFS_EMALFORMED on an invalid span (never for a decoded one).
 */
int rtmfp_wire_ack_iter_next(struct rtmfp_wire_ack_iter *it, struct rtmfp_wire_seq_range *out);

/*
 * rtmfp_wire_ack_ranges_build - write a whole Data Ack Ranges chunk with
 * as many of @ranges as fit in @w (and in 65535 value bytes).
 * @ranges: @n received ranges above @cumulative_ack, ascending, each
 *          first <= last, with at least one missing sequence number
 *          before each (first >= previous last + 2, and the first range
 *          first >= cumulative_ack + 2).
 * @written: out, how many ranges went in (0 .. n).
 * Returns 0; BFS_ETOOBIG if not even the three leading VLUs fit (nothing
 * written); -EINVAL if @ranges break the rules above (nothing written).
 */
int rtmfp_wire_ack_ranges_build(struct buf_writer *w, uint64_t flow_id, uint64_t buffer_blocks,
				uint64_t cumulative_ack, const struct rtmfp_wire_seq_range *ranges,
				size_t n, size_t *written);

/* Buffer Probe 0x18 (2.3.15): flow id VLU. */
struct rtmfp_wire_buffer_probe {
	uint64_t flow_id;
};

/* Flow Exception Report 0x5e (2.3.16): flow id VLU, exception code VLU. */
struct rtmfp_wire_exception {
	uint64_t flow_id;
	uint64_t code;
};

/* Session Close Request 0x0c and Acknowledgement 0x4c (2.3.17, 2.3.18)
 * have no fields. */

/*
 * struct rtmfp_wire_chunk_body - any decoded chunk, tagged by @type.
 * For a type with no codec (unknown, FRAGMENT, PADDING) @u.raw is the value.
 */
struct rtmfp_wire_chunk_body {
	uint8_t type;
	union {
		struct rtmfp_wire_ihello ihello;
		struct rtmfp_wire_fihello fihello;
		struct rtmfp_wire_rhello rhello;
		struct rtmfp_wire_redirect redirect;
		struct rtmfp_wire_cookie_change cookie_change;
		struct rtmfp_wire_iikeying iikeying;
		struct rtmfp_wire_rikeying rikeying;
		struct rtmfp_wire_ping ping;          /* PING and PING_REPLY */
		struct rtmfp_wire_userdata userdata;  /* USERDATA and NEXT_USERDATA */
		struct rtmfp_wire_ack ack;            /* ACK_BITMAP and ACK_RANGES */
		struct rtmfp_wire_buffer_probe buffer_probe;
		struct rtmfp_wire_exception exception;
		struct rtmfp_wire_span raw;
	} u;
};

/* rtmfp_wire_chunk_known - whether @type has a codec here. */
bool rtmfp_wire_chunk_known(uint8_t type);

/*
 * rtmfp_wire_chunk_decode - decode @c into @out (out->type = c->type).
 * Returns 0 or BFS_EMALFORMED.  Unknown types decode to u.raw and return 0.
 */
int rtmfp_wire_chunk_decode(struct rtmfp_wire_chunk_body *out, const struct rtmfp_wire_chunk *c);

/*
 * rtmfp_wire_chunk_encode - write @b as a whole chunk (see Conventions).
 * Unknown types write u.raw as the value.
 */
int rtmfp_wire_chunk_encode(struct buf_writer *w, const struct rtmfp_wire_chunk_body *b);

/* Per-chunk decoders: @value, @len is the chunk value (see Conventions). */
int rtmfp_wire_ihello_decode(struct rtmfp_wire_ihello *out, const uint8_t *value, size_t len);
int rtmfp_wire_fihello_decode(struct rtmfp_wire_fihello *out, const uint8_t *value, size_t len);
int rtmfp_wire_rhello_decode(struct rtmfp_wire_rhello *out, const uint8_t *value, size_t len);
int rtmfp_wire_redirect_decode(struct rtmfp_wire_redirect *out, const uint8_t *value, size_t len);
int rtmfp_wire_cookie_change_decode(struct rtmfp_wire_cookie_change *out, const uint8_t *value, size_t len);
int rtmfp_wire_iikeying_decode(struct rtmfp_wire_iikeying *out, const uint8_t *value, size_t len);
int rtmfp_wire_rikeying_decode(struct rtmfp_wire_rikeying *out, const uint8_t *value, size_t len);
int rtmfp_wire_ping_decode(struct rtmfp_wire_ping *out, const uint8_t *value, size_t len);
int rtmfp_wire_userdata_decode(struct rtmfp_wire_userdata *out, const uint8_t *value, size_t len);
int rtmfp_wire_next_userdata_decode(struct rtmfp_wire_userdata *out, const uint8_t *value, size_t len);
int rtmfp_wire_ack_bitmap_decode(struct rtmfp_wire_ack *out, const uint8_t *value, size_t len);
int rtmfp_wire_ack_ranges_decode(struct rtmfp_wire_ack *out, const uint8_t *value, size_t len);
int rtmfp_wire_buffer_probe_decode(struct rtmfp_wire_buffer_probe *out, const uint8_t *value, size_t len);
int rtmfp_wire_exception_decode(struct rtmfp_wire_exception *out, const uint8_t *value, size_t len);

/* Per-chunk encoders: write the whole chunk (see Conventions). */
int rtmfp_wire_ihello_encode(struct buf_writer *w, const struct rtmfp_wire_ihello *c);
int rtmfp_wire_fihello_encode(struct buf_writer *w, const struct rtmfp_wire_fihello *c);
int rtmfp_wire_rhello_encode(struct buf_writer *w, const struct rtmfp_wire_rhello *c);
int rtmfp_wire_redirect_encode(struct buf_writer *w, const struct rtmfp_wire_redirect *c);
int rtmfp_wire_cookie_change_encode(struct buf_writer *w, const struct rtmfp_wire_cookie_change *c);
int rtmfp_wire_iikeying_encode(struct buf_writer *w, const struct rtmfp_wire_iikeying *c);
int rtmfp_wire_rikeying_encode(struct buf_writer *w, const struct rtmfp_wire_rikeying *c);
/* @type: RTMFP_WIRE_CHUNK_PING or RTMFP_WIRE_CHUNK_PING_REPLY. */
int rtmfp_wire_ping_encode(struct buf_writer *w, uint8_t type, const struct rtmfp_wire_ping *c);
int rtmfp_wire_userdata_encode(struct buf_writer *w, const struct rtmfp_wire_userdata *c);
int rtmfp_wire_next_userdata_encode(struct buf_writer *w, const struct rtmfp_wire_userdata *c);
/* Writes a Data Ack Ranges chunk from an already encoded @c->ranges span;
 * to build one from sequence numbers use rtmfp_wire_ack_ranges_build(). */
int rtmfp_wire_ack_ranges_encode(struct buf_writer *w, const struct rtmfp_wire_ack *c);
/* For tests and fuzzing only: we never send bitmaps. */
int rtmfp_wire_ack_bitmap_encode(struct buf_writer *w, const struct rtmfp_wire_ack *c);
int rtmfp_wire_buffer_probe_encode(struct buf_writer *w, const struct rtmfp_wire_buffer_probe *c);
int rtmfp_wire_exception_encode(struct buf_writer *w, const struct rtmfp_wire_exception *c);
/* @type: RTMFP_WIRE_CHUNK_CLOSE or RTMFP_WIRE_CHUNK_CLOSE_ACK (empty value). */
int rtmfp_wire_close_encode(struct buf_writer *w, uint8_t type);

/*
 * rtmfp_wire_iikeying_put_signed - write only the part of an IIKeying that
 * the initiator signs (session id, cookie, cert and SKIC fields; no chunk
 * header, no signature) to @w, to be signed.  Returns 0 or BFS_ETOOBIG
 * (writer unchanged).  rtmfp_wire_rikeying_put_signed: the same for
 * RIKeying (session id, SKRC field).
 */
int rtmfp_wire_iikeying_put_signed(struct buf_writer *w, const struct rtmfp_wire_iikeying *c);
int rtmfp_wire_rikeying_put_signed(struct buf_writer *w, const struct rtmfp_wire_rikeying *c);

/* ------------------------------------------------------------------ */
/* Packet assembler                                                    */
/* ------------------------------------------------------------------ */

/*
 * struct rtmfp_wire_asm - builds one plaintext packet (flags byte through
 * the last chunk) in a caller buffer, chunk by chunk, never past a limit.
 * No allocation: keep it on the stack or in the session.
 *
 *   uint8_t buf[RTMFP_WIRE_MAX_PACKET_BYTES(overhead)];   (or a bigger one)
 *   struct rtmfp_wire_asm a;
 *   struct rtmfp_wire_header h = { .flags = RTMFP_WIRE_MODE_INITIATOR, ... };
 *   rtmfp_wire_asm_init(&a, buf, sizeof(buf), &h);
 *   if (rtmfp_wire_userdata_encode(&a.w, &ud) == BFS_ETOOBIG) ...packet full
 *   rtmfp_wire_asm_begin(&a, type); put fields into a.w; rtmfp_wire_asm_commit(&a);
 *   then encrypt buf[0 .. rtmfp_wire_asm_len(&a)).
 *
 * Chunk encoders (rtmfp_wire_*_encode) write to &a.w directly and are
 * all-or-nothing.  For a custom chunk: rtmfp_wire_asm_begin(), then
 * buf_put_...() or rtmfp_wire_put_...() into a.w, then rtmfp_wire_asm_commit()
 * (fills in the length, or rolls back if anything failed) or
 * rtmfp_wire_asm_rollback().
 */
struct rtmfp_wire_asm {
	struct buf_writer w;  /* the packet so far; chunk encoders write here */
	size_t header_len;    /* bytes of flags and timestamps */
	size_t chunk_start;   /* offset of the open chunk's type byte */
	bool in_chunk;
};

/*
 * rtmfp_wire_asm_init - start a packet in @buf (@limit bytes: pass the
 * smaller of the buffer size and RTMFP_WIRE_MAX_PACKET_BYTES(overhead))
 * with the header @h (flags, and the timestamps flagged present).
 * Returns 0, or BFS_ETOOBIG if the header alone does not fit.
 */
int rtmfp_wire_asm_init(struct rtmfp_wire_asm *a, uint8_t *buf, size_t limit,
			const struct rtmfp_wire_header *h);

/* rtmfp_wire_asm_set_flags - OR @bits (e.g. RTMFP_WIRE_FLAG_TC) into the flags byte. */
void rtmfp_wire_asm_set_flags(struct rtmfp_wire_asm *a, uint8_t bits);

/* rtmfp_wire_asm_len - bytes of the packet so far (committed or not). */
size_t rtmfp_wire_asm_len(const struct rtmfp_wire_asm *a);

/* rtmfp_wire_asm_empty - no chunk (or padding) after the header yet. */
bool rtmfp_wire_asm_empty(const struct rtmfp_wire_asm *a);

/* rtmfp_wire_asm_room - bytes left before the limit. */
size_t rtmfp_wire_asm_room(const struct rtmfp_wire_asm *a);

/*
 * rtmfp_wire_asm_chunk_room - the largest value a new chunk could carry:
 * room minus the 3-byte chunk header (0 if less), at most 65535.
 */
size_t rtmfp_wire_asm_chunk_room(const struct rtmfp_wire_asm *a);

/*
 * rtmfp_wire_asm_begin - open a chunk of @type.  Returns 0, BFS_ETOOBIG
 * (the header does not fit) or -EINVAL (a chunk is already open).
 */
int rtmfp_wire_asm_begin(struct rtmfp_wire_asm *a, uint8_t type);

/*
 * rtmfp_wire_asm_commit - close the open chunk, writing its length.
 * Returns 0; BFS_ETOOBIG (a put into a.w failed or the value passed 65535
 * bytes: the chunk is rolled back); -EINVAL if no chunk is open.
 */
int rtmfp_wire_asm_commit(struct rtmfp_wire_asm *a);

/* rtmfp_wire_asm_rollback - drop the open chunk (no-op if none). */
void rtmfp_wire_asm_rollback(struct rtmfp_wire_asm *a);

/*
 * rtmfp_wire_asm_pad - append padding (0xff bytes) until the packet is
 * @len bytes long (capped at the limit).  Only with no chunk open.  The
 * packet is then closed: its limit drops to its length, so later chunks
 * fail with BFS_ETOOBIG.  Returns 0 or -EINVAL (a chunk is open).
 */
int rtmfp_wire_asm_pad(struct rtmfp_wire_asm *a, size_t len);

#endif
