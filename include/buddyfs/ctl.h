/*
 * ctl.h - the control socket of the daemon: a unix stream socket in the
 * home directory (HOME/ctl.sock, mode 0600) that `buddyfs status` and
 * `buddyfs umount` talk to.
 *
 * One request per connection, one reply, then the server closes the
 * connection (or holds it open until the daemon exits, so that a client can
 * wait for the exit by reading until EOF).  Both directions use one frame
 * layout (docs/PROTOCOL.md, "control socket"):
 *
 *   off  size  field
 *   0    2     magic "BC" (0x42 0x43)
 *   2    1     version (CTL_VERSION, 1)
 *   3    1     type: requests CTL_REQ_*, replies CTL_REPLY_BIT | request type
 *   4    4     body length n, big-endian, at most CTL_BODY_MAX_BYTES
 *   8    n     body
 *
 * Request bodies are empty in version 1.  A reply body is one byte of
 * result (0 success, else a positive errno value) and UTF-8 text: for
 * STATUS the daemon's view as "key value" lines; for BUDDIES one line per
 * buddy of the store, "PEERID PRESENCE ADDRESS PATH RTT" separated by
 * single spaces (PEERID 64 hex digits, PRESENCE online or offline, ADDRESS
 * the session's far address or the last observed one or "-", PATH direct,
 * relayed or "-" without a session, RTT the session's smoothed round trip
 * in milliseconds with one decimal, or "-" without a session); for
 * RESCAN nothing; for an error a one-line message.  A daemon that predates a request type answers EOPNOTSUPP.
 *
 * Owns: the frame codec, the listening socket and its connections (on the
 * caller's loop), and the blocking client call.  Leaves what the requests
 * do to the daemon (its handler).  Errors: 0, negative errno or BFS_E*.
 */
#ifndef BUDDYFS_CTL_H
#define BUDDYFS_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buddyfs/buf.h"

struct loop;
struct ctl_server;

#define CTL_SOCKET_NAME "ctl.sock"
#define CTL_VERSION 1
#define CTL_MAGIC0 0x42
#define CTL_MAGIC1 0x43
#define CTL_HEADER_BYTES 8
#define CTL_BODY_MAX_BYTES 65536u

#define CTL_REQ_STATUS 0x01
#define CTL_REQ_UMOUNT 0x02
#define CTL_REQ_BUDDIES 0x03 /* the network's view of each buddy (`buddy list`) */
#define CTL_REQ_RESCAN 0x04  /* the buddies changed in the store: re-read them now */
#define CTL_REPLY_BIT 0x80

/* A decoded frame; @body borrows from the input. */
struct ctl_frame {
	uint8_t version;
	uint8_t type;
	const uint8_t *body;
	size_t body_len;
};

/*
 * ctl_frame_encode - append one frame of @type with @len bytes of @body.
 * Returns 0, or -ENOSPC (the writer is full, or @len over the maximum).
 */
int ctl_frame_encode(struct buf_writer *w, uint8_t type, const void *body, size_t len);

/*
 * ctl_frame_decode - parse one frame at the start of @in (untrusted bytes).
 * @used: receives the frame's length (the next frame starts there).
 * Returns 0; -EAGAIN when @in holds only part of a frame (read more);
 * BFS_EMALFORMED (bad magic), BFS_EVERSION (another version; out->version
 * is set) or BFS_ETOOBIG (body over CTL_BODY_MAX_BYTES).
 */
int ctl_frame_decode(struct ctl_frame *out, const uint8_t *in, size_t len, size_t *used);

/*
 * ctl_reply_decode - split a reply body into its result and text.
 * @code: 0 or a positive errno value; @text borrows from @body (not
 * NUL-terminated; @text_len bytes).  Returns 0 or BFS_EMALFORMED (empty
 * body, or a NUL byte in the text).
 */
int ctl_reply_decode(const uint8_t *body, size_t len, uint8_t *code, const uint8_t **text, size_t *text_len);

/*
 * ctl_handler_fn - answer request @type.  Write the reply text into @text
 * (a dynamic writer) and return 0, or a negative errno whose message goes
 * back with it (the text then says why).  Set *@hold to keep the
 * connection open until ctl_server_free(), so the client sees EOF only
 * when the daemon is done (umount).  Unknown types reach the handler too.
 */
typedef int ctl_handler_fn(void *ctx, uint8_t type, struct buf_writer *text, bool *hold);

/*
 * ctl_server_new - listen on the unix socket @path (an old socket file
 * there is removed first: the caller must hold the home's lock) and serve
 * it from @loop, calling @fn(@ctx, ...) for each request.
 * Errors: -ENAMETOOLONG (path over sizeof(sun_path) - 1), -ENOMEM, -errno
 * of socket/bind/listen, loop_fd_add errors.
 */
int ctl_server_new(struct ctl_server **out, struct loop *loop, const char *path, ctl_handler_fn *fn, void *ctx);

/* ctl_server_free - close every connection and the socket, unlink @path.  NULL is fine. */
void ctl_server_free(struct ctl_server *s);

/* A reply as ctl_call() returns it. */
struct ctl_reply {
	uint8_t code;   /* 0 or a positive errno value from the daemon */
	char *text;     /* NUL-terminated, malloc'd: free() it */
};

/*
 * ctl_call - connect to @path, send request @type, read the reply (blocking,
 * at most @timeout_ms for each step).  With @wait_close, then read until
 * the daemon closes the connection (it exits), for at most @timeout_ms more.
 * Errors: -ENOENT / -ECONNREFUSED (no daemon listens), -ETIMEDOUT,
 * -ENAMETOOLONG, BFS_EMALFORMED / BFS_EVERSION / BFS_EPROTO (a bad reply),
 * -ENOMEM, -errno.
 */
int ctl_call(const char *path, uint8_t type, int timeout_ms, bool wait_close, struct ctl_reply *out);

#endif
