/*
 * store_codec.h - helpers the store's record codecs share with store.c.
 *
 * Internal to the store module: other modules use store.h, whose
 * store_*_encode/decode functions are the public face of the codecs.
 * The byte layouts are in docs/PROTOCOL.md ("Store records").
 */
#ifndef BUDDYFS_STORE_CODEC_H
#define BUDDYFS_STORE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "buddyfs/buf.h"
#include "buddyfs/store.h"

/* The version byte every record of schema 1 starts with. */
#define STORE_RECORD_VERSION 1
/*
 * An entry record with the base of its write (store_entry.has_base): the
 * layout of version 1 and the base (u64) after the path.  Entries without
 * a base are still written as version 1, so old records and old readers
 * keep working and every layout stays canonical.
 */
#define STORE_ENTRY_RECORD_VERSION_BASE 2
/*
 * A block record of kind STORE_BLOCK_CACHED_FILE: version, kind, length
 * (u32); the bytes are in the block's cache file.  Version 1 block records
 * (LOCAL, CACHED with inline bytes) are still read and written as before.
 */
#define STORE_BLOCK_RECORD_VERSION_FILE 2

/* store_object_check - a local object name: path rules, STORE_OBJECT_MAX bytes. */
int store_object_check(const char *object);
/*
 * store_path_split - for a checked path "a/b/c": *parent_len = 3 ("a/b")
 * and *name = "c"; for "c": 0 and "c".
 */
void store_path_split(const char *path, size_t *parent_len, const char **name);
/* store_peer_check - 0 or -EINVAL: can @p be encoded? */
int store_peer_check(const struct store_peer *p);
/* store_entry_check - 0, BFS_EBADNAME (path) or -EINVAL (type, mode). */
int store_entry_check(const struct store_entry *e);
/*
 * store_block_cached_header - the STORE_BLOCK_CACHED_HEADER_BYTES before a
 * cached block's bytes (so store.c can write them into LMDB-reserved space).
 */
void store_block_cached_header(struct buf_writer *w, uint32_t length);

#endif
