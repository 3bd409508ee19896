/*
 * rtmfp_wire_internal.h - chunk framing shared by rtmfp_wire.c and
 * rtmfp_wire_chunk.c.  Not part of the public API (see rtmfp_wire.h).
 */
#ifndef BUDDYFS_RTMFP_WIRE_INTERNAL_H
#define BUDDYFS_RTMFP_WIRE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "buddyfs/buf.h"

/*
 * rtmfp_wire_chunk_open - write a chunk header of @type with a zero length
 * to @w and remember where it starts in *mark.  Returns 0 or BFS_ETOOBIG
 * (writer unchanged; also when the writer had already failed).
 */
int rtmfp_wire_chunk_open(struct buf_writer *w, uint8_t type, size_t *mark);

/*
 * rtmfp_wire_chunk_close - fill in the length of the chunk opened at @mark.
 * If any put since the open failed, or the value passed 65535 bytes, the
 * chunk is rolled back (writer as before the open, error cleared) and
 * BFS_ETOOBIG returned.
 */
int rtmfp_wire_chunk_close(struct buf_writer *w, size_t mark);

#endif
