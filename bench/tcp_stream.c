/*
 * tcp_stream.c - the yardstick for transport benchmarks: one TCP stream
 * over loopback between two processes, moving a given number of bytes.
 *
 *   tcp_stream [MiB]     (default 1024)
 *
 * Prints "tcp_stream: N MiB in S s: R MB/s" (MB = 10^6 bytes).  The
 * receiver times from the first byte to the last, as rtmfp-tool does.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_BYTES (256 * 1024)

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int sender(uint16_t port, uint64_t total)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	static uint8_t buf[CHUNK_BYTES];
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	memset(buf, 0x5a, sizeof(buf));
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		return 1;
	while (total > 0) {
		size_t n = total < sizeof(buf) ? (size_t)total : sizeof(buf);
		ssize_t w = write(fd, buf, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return 1;
		total -= (uint64_t)w;
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 1024, total, got = 0;
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	static uint8_t buf[CHUNK_BYTES];
	double t0 = 0, t1;
	int lfd, fd, status;
	pid_t pid;

	if (mib == 0 || mib > (1u << 20)) {
		fprintf(stderr, "usage: tcp_stream [MiB]\n");
		return 2;
	}
	total = mib << 20;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 1) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) < 0) {
		perror("tcp_stream: listen");
		return 1;
	}
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0)
		_exit(sender(ntohs(a.sin_port), total));
	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		return 1;
	while (got < total) {
		ssize_t r = read(fd, buf, sizeof(buf));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (got == 0)
			t0 = now_s();
		got += (uint64_t)r;
	}
	t1 = now_s();
	close(fd);
	close(lfd);
	waitpid(pid, &status, 0);
	if (got != total) {
		fprintf(stderr, "tcp_stream: only %llu of %llu bytes arrived\n",
			(unsigned long long)got, (unsigned long long)total);
		return 1;
	}
	printf("tcp_stream: %llu MiB in %.3f s: %.1f MB/s\n", (unsigned long long)mib, t1 - t0,
	       (double)total / (t1 - t0) / 1e6);
	return 0;
}
