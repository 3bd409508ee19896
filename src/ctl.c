/*
 * ctl.c - the daemon's control socket: frame codec, server on the event
 * loop, blocking client (ctl.h has the layout).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "buddyfs/ctl.h"
#include "buddyfs/err.h"
#include "buddyfs/log.h"
#include "buddyfs/loop.h"

#define CONN_MAX 16
#define TEXT_MAX_BYTES (CTL_BODY_MAX_BYTES - 1)

struct conn {
	struct ctl_server *srv;
	struct loop_fd *h;
	int fd;
	bool held;
	size_t len;
	uint8_t in[CTL_HEADER_BYTES + 64]; /* requests have empty bodies in v1 */
};

struct ctl_server {
	struct loop *loop;
	struct loop_fd *h;
	int fd;
	char *path;
	ctl_handler_fn *fn;
	void *ctx;
	struct conn *conns[CONN_MAX];
};

/* ---- codec ---- */

int ctl_frame_encode(struct buf_writer *w, uint8_t type, const void *body, size_t len)
{
	if (len > CTL_BODY_MAX_BYTES)
		return -ENOSPC;
	buf_put_u8(w, CTL_MAGIC0);
	buf_put_u8(w, CTL_MAGIC1);
	buf_put_u8(w, CTL_VERSION);
	buf_put_u8(w, type);
	buf_put_u32be(w, (uint32_t)len);
	if (len)
		buf_put_bytes(w, body, len);
	return buf_writer_ok(w) ? 0 : -ENOSPC;
}

int ctl_frame_decode(struct ctl_frame *out, const uint8_t *in, size_t len, size_t *used)
{
	struct buf_reader r;
	uint8_t m0, m1;
	uint32_t n;

	memset(out, 0, sizeof(*out));
	*used = 0;
	buf_reader_init(&r, in, len);
	if (!buf_get_u8(&r, &m0))
		return -EAGAIN;
	if (m0 != CTL_MAGIC0)
		return BFS_EMALFORMED;
	if (!buf_get_u8(&r, &m1))
		return -EAGAIN;
	if (m1 != CTL_MAGIC1)
		return BFS_EMALFORMED;
	if (!buf_get_u8(&r, &out->version))
		return -EAGAIN;
	if (out->version != CTL_VERSION)
		return BFS_EVERSION;
	if (!buf_get_u8(&r, &out->type) || !buf_get_u32be(&r, &n))
		return -EAGAIN;
	if (n > CTL_BODY_MAX_BYTES)
		return BFS_ETOOBIG;
	if (!buf_get_ref(&r, n, &out->body))
		return -EAGAIN;
	out->body_len = n;
	*used = len - buf_reader_remaining(&r);
	return 0;
}

int ctl_reply_decode(const uint8_t *body, size_t len, uint8_t *code, const uint8_t **text, size_t *text_len)
{
	struct buf_reader r;

	buf_reader_init(&r, body, len);
	if (!buf_get_u8(&r, code))
		return BFS_EMALFORMED;
	buf_get_rest(&r, text, text_len);
	if (*text_len && memchr(*text, '\0', *text_len))
		return BFS_EMALFORMED;
	return 0;
}

/* ---- server ---- */

static void conn_close(struct conn *c)
{
	struct ctl_server *s = c->srv;

	for (size_t i = 0; i < CONN_MAX; i++)
		if (s->conns[i] == c)
			s->conns[i] = NULL;
	loop_fd_remove(s->loop, c->h);
	close(c->fd);
	free(c);
}

/* reply - answer the request in @f on @c; returns true to keep @c open (held). */
static bool reply(struct conn *c, const struct ctl_frame *f)
{
	struct ctl_server *s = c->srv;
	struct buf_writer text, body, frame;
	bool hold = false;
	uint8_t code = 0;
	ssize_t n;
	int rc;

	buf_writer_init_dynamic(&text, TEXT_MAX_BYTES);
	rc = s->fn(s->ctx, f->type, &text, &hold);
	if (rc < 0 && rc > -256)
		code = (uint8_t)-rc;
	else if (rc)
		code = EIO;
	if (!buf_writer_ok(&text)) {
		buf_writer_free(&text);
		buf_writer_init_dynamic(&text, TEXT_MAX_BYTES);
		buf_put_bytes(&text, "reply too long", 14);
		code = EMSGSIZE;
	}
	/* body: result byte and text; then the frame around it */
	buf_writer_init_dynamic(&body, CTL_BODY_MAX_BYTES);
	buf_put_u8(&body, code);
	buf_put_bytes(&body, text.base, buf_writer_len(&text));
	buf_writer_init_dynamic(&frame, CTL_HEADER_BYTES + CTL_BODY_MAX_BYTES);
	if (buf_writer_ok(&body) &&
	    ctl_frame_encode(&frame, (uint8_t)(CTL_REPLY_BIT | f->type), body.base, buf_writer_len(&body)) == 0) {
		/* small replies fit the socket buffer: one send, no queue */
		n = send(c->fd, frame.base, buf_writer_len(&frame), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 || (size_t)n != buf_writer_len(&frame))
			log_warn("control socket: reply not sent whole");
	}
	buf_writer_free(&frame);
	buf_writer_free(&body);
	buf_writer_free(&text);
	return hold;
}

static void send_error(int fd, uint8_t code, const char *msg)
{
	uint8_t b[CTL_HEADER_BYTES + 128];
	uint8_t body[100];
	struct buf_writer w;
	size_t n = strlen(msg);

	if (n > sizeof(body) - 1)
		n = sizeof(body) - 1;
	body[0] = code;
	memcpy(body + 1, msg, n);
	buf_writer_init(&w, b, sizeof(b));
	if (ctl_frame_encode(&w, CTL_REPLY_BIT, body, n + 1) == 0)
		(void)!send(fd, b, buf_writer_len(&w), MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void on_conn(struct loop *loop, struct loop_fd *h, int fd, uint32_t events, void *ctx)
{
	struct conn *c = ctx;
	struct ctl_frame f;
	size_t used;
	ssize_t n;
	int rc;

	(void)loop;
	(void)h;
	(void)events;
	if (c->held) {
		/* only EOF or errors matter now: the reply has gone */
		char tmp[64];

		n = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			conn_close(c);
		return;
	}
	n = recv(fd, c->in + c->len, sizeof(c->in) - c->len, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_close(c);
		return;
	}
	c->len += (size_t)n;
	rc = ctl_frame_decode(&f, c->in, c->len, &used);
	if (rc == -EAGAIN && c->len < sizeof(c->in))
		return;
	if (rc == BFS_EVERSION) {
		send_error(fd, EPROTONOSUPPORT, "unsupported control protocol version");
		conn_close(c);
		return;
	}
	if (rc) {
		send_error(fd, EPROTO, "malformed control request");
		conn_close(c);
		return;
	}
	if (reply(c, &f)) {
		c->held = true;
		return;
	}
	conn_close(c);
}

static void on_accept(struct loop *loop, struct loop_fd *h, int fd, uint32_t events, void *ctx)
{
	struct ctl_server *s = ctx;
	struct conn *c;
	size_t slot;
	int cfd;

	(void)h;
	(void)events;
	cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd < 0)
		return;
	for (slot = 0; slot < CONN_MAX && s->conns[slot]; slot++)
		;
	c = slot < CONN_MAX ? calloc(1, sizeof(*c)) : NULL;
	if (!c) {
		send_error(cfd, EBUSY, "too many control connections");
		close(cfd);
		return;
	}
	c->srv = s;
	c->fd = cfd;
	if (loop_fd_add(loop, cfd, LOOP_IN, on_conn, c, &c->h) != 0) {
		close(cfd);
		free(c);
		return;
	}
	s->conns[slot] = c;
}

static int sockaddr_of(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memcpy(sa->sun_path, path, strlen(path) + 1);
	return 0;
}

int ctl_server_new(struct ctl_server **out, struct loop *loop, const char *path, ctl_handler_fn *fn, void *ctx)
{
	struct sockaddr_un sa;
	struct ctl_server *s;
	mode_t old;
	int rc;

	*out = NULL;
	rc = sockaddr_of(&sa, path);
	if (rc)
		return rc;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->loop = loop;
	s->fn = fn;
	s->ctx = ctx;
	s->path = strdup(path);
	s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (!s->path || s->fd < 0) {
		rc = s->path ? -errno : -ENOMEM;
		goto fail;
	}
	unlink(path);
	old = umask(077);
	rc = bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)) ? -errno : 0;
	umask(old);
	if (rc)
		goto fail;
	if (listen(s->fd, 8)) {
		rc = -errno;
		goto fail;
	}
	rc = loop_fd_add(loop, s->fd, LOOP_IN, on_accept, s, &s->h);
	if (rc)
		goto fail;
	*out = s;
	return 0;
fail:
	if (s->fd >= 0)
		close(s->fd);
	if (s->path && rc != -EADDRINUSE)
		unlink(s->path);
	free(s->path);
	free(s);
	return rc;
}

void ctl_server_free(struct ctl_server *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < CONN_MAX; i++)
		if (s->conns[i])
			conn_close(s->conns[i]);
	loop_fd_remove(s->loop, s->h);
	close(s->fd);
	unlink(s->path);
	free(s->path);
	free(s);
}

/* ---- client ---- */

/* wait_fd - poll @fd for @ev up to @ms; 0, -ETIMEDOUT or -errno. */
static int wait_fd(int fd, short ev, int ms)
{
	struct pollfd p = { .fd = fd, .events = ev };
	int n;

	do
		n = poll(&p, 1, ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == 0 ? -ETIMEDOUT : 0;
}

int ctl_call(const char *path, uint8_t type, int timeout_ms, bool wait_close, struct ctl_reply *out)
{
	uint8_t req[CTL_HEADER_BYTES];
	struct sockaddr_un sa;
	struct buf_writer w;
	struct ctl_frame f;
	uint8_t *in = NULL;
	const uint8_t *text;
	size_t len = 0, used, text_len;
	int fd, rc;

	memset(out, 0, sizeof(*out));
	rc = sockaddr_of(&sa, path);
	if (rc)
		return rc;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		rc = -errno;
		goto out;
	}
	buf_writer_init(&w, req, sizeof(req));
	ctl_frame_encode(&w, type, NULL, 0);
	if (send(fd, req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req)) {
		rc = -EPIPE;
		goto out;
	}
	in = malloc(CTL_HEADER_BYTES + CTL_BODY_MAX_BYTES);
	if (!in) {
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n;

		rc = ctl_frame_decode(&f, in, len, &used);
		if (rc != -EAGAIN)
			break;
		rc = wait_fd(fd, POLLIN, timeout_ms);
		if (rc)
			goto out;
		n = recv(fd, in + len, CTL_HEADER_BYTES + CTL_BODY_MAX_BYTES - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : BFS_EPROTO;
			goto out;
		}
		len += (size_t)n;
	}
	if (rc)
		goto out;
	if ((f.type & CTL_REPLY_BIT) == 0) {
		rc = BFS_EPROTO;
		goto out;
	}
	rc = ctl_reply_decode(f.body, f.body_len, &out->code, &text, &text_len);
	if (rc)
		goto out;
	out->text = malloc(text_len + 1);
	if (!out->text) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(out->text, text, text_len);
	out->text[text_len] = '\0';
	if (wait_close) {
		for (;;) {
			char tmp[256];
			ssize_t n;

			rc = wait_fd(fd, POLLIN, timeout_ms);
			if (rc)
				break;
			n = recv(fd, tmp, sizeof(tmp), 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
		}
	}
out:
	if (rc && out->text) {
		free(out->text);
		out->text = NULL;
	}
	free(in);
	close(fd);
	return rc;
}
