/*
 * err.c - messages for buddyfs error codes (see err.h).
 */
#include <string.h>

#include "buddyfs/err.h"

static const char *const messages[] = {
	[BFS_EMALFORMED - BFS_E_FIRST] = "malformed data",
	[BFS_EVERSION - BFS_E_FIRST] = "unsupported format version",
	[BFS_ESCHEMA - BFS_E_FIRST] = "unknown store schema version",
	[BFS_EBADSIG - BFS_E_FIRST] = "signature does not verify",
	[BFS_EBADHASH - BFS_E_FIRST] = "content does not match its hash",
	[BFS_ENOIDENT - BFS_E_FIRST] = "no identity here (run 'buddyfs init NAME' first)",
	[BFS_EBADNAME - BFS_E_FIRST] = "name not allowed",
	[BFS_ESTORE - BFS_E_FIRST] = "store failure",
	[BFS_ETOOBIG - BFS_E_FIRST] = "value too large",
	[BFS_EPROTO - BFS_E_FIRST] = "protocol violation by the far side",
	[BFS_ECRYPTO - BFS_E_FIRST] = "cryptographic failure",
	[BFS_ECLOSED - BFS_E_FIRST] = "closed",
};

const char *bfs_strerror(int err)
{
	if (err == 0)
		return "success";
	if (err >= BFS_E_FIRST && err < BFS_E_LAST)
		return messages[err - BFS_E_FIRST];
	return strerror(err < 0 ? -err : err);
}
