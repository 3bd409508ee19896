/*
 * err.h - buddyfs error codes and their messages.
 *
 * Every function in buddyfs that can fail returns an int: 0 on success, a
 * negative errno value (-ENOENT, -EIO, ...) for system-level failures, or one
 * of the BFS_E* codes below for failures that errno cannot name.  The BFS_E*
 * codes live in a reserved negative range far below any errno, in the way
 * LMDB reserves MDB_KEYEXIST..MDB_LAST_ERRCODE, so one bfs_strerror() names
 * them all.
 */
#ifndef BUDDYFS_ERR_H
#define BUDDYFS_ERR_H

enum {
	BFS_E_FIRST = -30900,
	BFS_EMALFORMED = BFS_E_FIRST, /* bytes do not decode (network or disk) */
	BFS_EVERSION,                 /* a record or message of a version we do not know */
	BFS_ESCHEMA,                  /* store schema version unknown */
	BFS_EBADSIG,                  /* signature does not verify */
	BFS_EBADHASH,                 /* content does not match its hash */
	BFS_ENOIDENT,                 /* no identity in the home directory */
	BFS_EBADNAME,                 /* a user or file name that is not allowed */
	BFS_ESTORE,                   /* the LMDB store failed in an unexpected way */
	BFS_ETOOBIG,                  /* a value exceeds a protocol or format limit */
	BFS_EPROTO,                   /* the far side broke the protocol */
	BFS_ECRYPTO,                  /* a cryptographic operation failed */
	BFS_ECLOSED,                  /* the session or flow is closed */
	BFS_E_LAST
};

/*
 * bfs_strerror - a static, human-readable message for @err.
 * @err: 0, a negative errno value or a BFS_E* code.  Positive values are
 *       accepted as plain errno values.
 * Never returns NULL; the string is static and must not be freed.
 */
const char *bfs_strerror(int err);

#endif
