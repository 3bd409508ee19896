/*
 * test_ctl.c - the control socket: frame codec, and a server on a real loop
 * answered by the blocking client from a second thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "buddyfs/buf.h"
#include "buddyfs/ctl.h"
#include "buddyfs/err.h"
#include "buddyfs/loop.h"
#include "t.h"

T_CASE(frame_roundtrip)
{
	uint8_t b[64];
	struct buf_writer w;
	struct ctl_frame f;
	size_t used;

	buf_writer_init(&w, b, sizeof(b));
	T_CHECK_EQ_INT(ctl_frame_encode(&w, CTL_REQ_STATUS, "abc", 3), 0);
	T_CHECK_EQ_INT(buf_writer_len(&w), CTL_HEADER_BYTES + 3);
	T_CHECK_MEM(b, "BC\x01\x01\x00\x00\x00\x03" "abc", 11);
	T_CHECK_EQ_INT(ctl_frame_decode(&f, b, 11, &used), 0);
	T_CHECK_EQ_INT(used, 11);
	T_CHECK_EQ_INT(f.type, CTL_REQ_STATUS);
	T_CHECK_EQ_INT(f.body_len, 3);
	T_CHECK_MEM(f.body, "abc", 3);
	for (size_t n = 0; n < 11; n++)
		T_CHECK_EQ_INT(ctl_frame_decode(&f, b, n, &used), -EAGAIN);
}

T_CASE(frame_rejects)
{
	struct ctl_frame f;
	size_t used;
	uint8_t code;
	const uint8_t *text;
	size_t tl;

	T_CHECK_EQ_INT(ctl_frame_decode(&f, (const uint8_t *)"XC\x01\x01\0\0\0\0", 8, &used), BFS_EMALFORMED);
	T_CHECK_EQ_INT(ctl_frame_decode(&f, (const uint8_t *)"BX\x01\x01\0\0\0\0", 8, &used), BFS_EMALFORMED);
	T_CHECK_EQ_INT(ctl_frame_decode(&f, (const uint8_t *)"BC\x02\x01\0\0\0\0", 8, &used), BFS_EVERSION);
	T_CHECK_EQ_INT(ctl_frame_decode(&f, (const uint8_t *)"BC\x01\x01\0\x01\0\x01", 8, &used), BFS_ETOOBIG);
	T_CHECK_EQ_INT(ctl_reply_decode(NULL, 0, &code, &text, &tl), BFS_EMALFORMED);
	T_CHECK_EQ_INT(ctl_reply_decode((const uint8_t *)"\0a\0b", 4, &code, &text, &tl), BFS_EMALFORMED);
	T_CHECK_EQ_INT(ctl_reply_decode((const uint8_t *)"\x05hi", 3, &code, &text, &tl), 0);
	T_CHECK_EQ_INT(code, 5);
	T_CHECK_EQ_INT(tl, 2);
}

/* ---- server and client ---- */

struct call {
	const char *path;
	uint8_t type;
	bool wait_close;
	int rc;
	struct ctl_reply r;
	volatile bool done;
};

static int handler(void *ctx, uint8_t type, struct buf_writer *text, bool *hold)
{
	int *holds = ctx;

	if (type == CTL_REQ_STATUS) {
		buf_put_bytes(text, "home /x\n", 8);
		return 0;
	}
	if (type == CTL_REQ_UMOUNT) {
		*hold = true;
		(*holds)++;
		buf_put_bytes(text, "bye\n", 4);
		return 0;
	}
	return -EOPNOTSUPP;
}

static void *client(void *arg)
{
	struct call *c = arg;

	c->rc = ctl_call(c->path, c->type, 5000, c->wait_close, &c->r);
	c->done = true;
	return NULL;
}

/* serve - run @loop until @c is done, or @holds reaches @want_holds. */
static void serve(struct loop *loop, struct call *c, int *holds, int want_holds)
{
	for (int i = 0; i < 2000 && !c->done && (want_holds == 0 || *holds < want_holds); i++)
		loop_run_once(loop, 10 * LOOP_NS_PER_MS);
}

T_CASE(server_status_umount_unknown)
{
	char dir[] = "/tmp/test_ctl.XXXXXX", path[64];
	struct ctl_server *s = NULL;
	struct loop *loop = NULL;
	struct call c = { 0 };
	pthread_t th;
	int holds = 0;

	T_CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/ctl.sock", dir);
	T_CHECK_EQ_INT(loop_new(&loop), 0);
	T_CHECK_EQ_INT(ctl_server_new(&s, loop, path, handler, &holds), 0);

	c.path = path;
	c.type = CTL_REQ_STATUS;
	pthread_create(&th, NULL, client, &c);
	serve(loop, &c, &holds, 0);
	pthread_join(th, NULL);
	T_CHECK_EQ_INT(c.rc, 0);
	T_CHECK_EQ_INT(c.r.code, 0);
	T_CHECK(strcmp(c.r.text, "home /x\n") == 0);
	free(c.r.text);

	memset(&c, 0, sizeof(c));
	c.path = path;
	c.type = 0x33;
	pthread_create(&th, NULL, client, &c);
	serve(loop, &c, &holds, 0);
	pthread_join(th, NULL);
	T_CHECK_EQ_INT(c.rc, 0);
	T_CHECK_EQ_INT(c.r.code, EOPNOTSUPP);
	free(c.r.text);

	/* umount: the reply comes, EOF only when the server goes */
	memset(&c, 0, sizeof(c));
	c.path = path;
	c.type = CTL_REQ_UMOUNT;
	c.wait_close = true;
	pthread_create(&th, NULL, client, &c);
	serve(loop, &c, &holds, 1);
	for (int i = 0; i < 20; i++)
		loop_run_once(loop, 5 * LOOP_NS_PER_MS);
	T_CHECK(!c.done);
	ctl_server_free(s);
	pthread_join(th, NULL);
	T_CHECK_EQ_INT(c.rc, 0);
	T_CHECK(strcmp(c.r.text, "bye\n") == 0);
	free(c.r.text);
	T_CHECK(access(path, F_OK) != 0); /* the socket file is gone */

	/* nobody listens now */
	memset(&c, 0, sizeof(c));
	T_CHECK(ctl_call(path, CTL_REQ_STATUS, 1000, false, &c.r) < 0);
	loop_free(loop);
	rmdir(dir);
}

T_CASE(server_rejects_garbage)
{
	char dir[] = "/tmp/test_ctl.XXXXXX", path[64];
	struct ctl_server *s = NULL;
	struct loop *loop = NULL;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ctl_frame f;
	uint8_t in[256];
	size_t used, len = 0;
	int holds = 0, fd;

	T_CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/ctl.sock", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	T_CHECK_EQ_INT(loop_new(&loop), 0);
	T_CHECK_EQ_INT(ctl_server_new(&s, loop, path, handler, &holds), 0);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	T_CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	T_CHECK(write(fd, "GET / HTTP/1.0\r\n\r\n", 18) == 18);
	for (int i = 0; i < 20; i++)
		loop_run_once(loop, 5 * LOOP_NS_PER_MS);
	for (;;) {
		ssize_t n = read(fd, in + len, sizeof(in) - len);

		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	T_CHECK_EQ_INT(ctl_frame_decode(&f, in, len, &used), 0);
	T_CHECK(f.body_len >= 1);
	T_CHECK_EQ_INT(f.body[0], EPROTO);
	ctl_server_free(s);
	loop_free(loop);
	rmdir(dir);
}

int main(void)
{
	T_RUN(frame_roundtrip);
	T_RUN(frame_rejects);
	T_RUN(server_status_umount_unknown);
	T_RUN(server_rejects_garbage);
	return t_done();
}
