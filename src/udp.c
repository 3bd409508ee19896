/*
 * udp.c - one UDP socket with batched, segment-offloaded I/O (see udp.h).
 *
 * Send path: udp_send() appends datagrams to an arena and a queue of
 * entries; udp_flush() walks the queue and turns every run of consecutive
 * datagrams to one destination, all of one size but the last (which may be
 * shorter), into one message with a UDP_SEGMENT control message, then sends
 * up to SEND_BATCH messages per sendmmsg().  Receive path: recvmmsg() into
 * RECV_BATCH buffers; a buffer that arrived with a UDP_GRO control message
 * holds several datagrams of gso_size bytes (the last may be shorter).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "buddyfs/udp.h"

#define QUEUE_ARENA_BYTES (512 * 1024)
#define QUEUE_MAX 1024
#define SEND_BATCH 64
#define GSO_MAX_BYTES 65000      /* stay under the 64 KiB IP datagram limit */
#define RECV_BATCH 16
#define RECV_BYTES 65536 /* any UDP datagram, or a GRO batch, fits whole */
#define SOCKET_BUFFER_BYTES (8 << 20) /* room for bursts at a few Gbit/s */

struct queued {
	struct sockaddr_storage to;
	size_t off;
	uint16_t len;
};

struct udp_sock {
	int fd;
	int family;
	bool gso, gro;
	unsigned drop_percent;
	uint64_t drop_rng;  /* xorshift64 state for drop_one (never 0) */
	struct udp_stats stats;

	uint8_t *arena;
	size_t arena_len;
	struct queued *queue;
	size_t n_queued;

	uint8_t *rx;     /* RECV_BATCH buffers of rx_size bytes */
	size_t rx_size;
};

/* to_family - @in expressed in @family (v4 <-> v4-mapped v6). */
static void to_family(struct sockaddr_storage *out, const struct sockaddr_storage *in, int family)
{
	*out = *in;
	if (in->ss_family == AF_INET && family == AF_INET6) {
		const struct sockaddr_in *v4 = (const struct sockaddr_in *)(const void *)in;
		struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)(void *)out;

		memset(out, 0, sizeof(*out));
		v6->sin6_family = AF_INET6;
		v6->sin6_port = v4->sin_port;
		v6->sin6_addr.s6_addr[10] = 0xff;
		v6->sin6_addr.s6_addr[11] = 0xff;
		memcpy(&v6->sin6_addr.s6_addr[12], &v4->sin_addr, 4);
	} else if (in->ss_family == AF_INET6 && family == AF_INET) {
		const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)(const void *)in;
		struct sockaddr_in *v4 = (struct sockaddr_in *)(void *)out;

		if (!IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr))
			return;
		memset(out, 0, sizeof(*out));
		v4->sin_family = AF_INET;
		v4->sin_port = v6->sin6_port;
		memcpy(&v4->sin_addr, &v6->sin6_addr.s6_addr[12], 4);
	}
}

socklen_t udp_addr_len(const struct sockaddr_storage *a)
{
	return a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

bool udp_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	struct sockaddr_storage x, y;

	to_family(&x, a, AF_INET);
	to_family(&y, b, AF_INET);
	if (x.ss_family != y.ss_family)
		return false;
	if (x.ss_family == AF_INET) {
		const struct sockaddr_in *p = (const void *)&x, *q = (const void *)&y;

		return p->sin_port == q->sin_port && p->sin_addr.s_addr == q->sin_addr.s_addr;
	}
	if (x.ss_family == AF_INET6) {
		const struct sockaddr_in6 *p = (const void *)&x, *q = (const void *)&y;

		return p->sin6_port == q->sin6_port &&
		       memcmp(&p->sin6_addr, &q->sin6_addr, sizeof(p->sin6_addr)) == 0;
	}
	return false;
}

void udp_addr_format(char out[static UDP_ADDR_STR_BYTES], const struct sockaddr_storage *a)
{
	struct sockaddr_storage x;
	char host[INET6_ADDRSTRLEN];

	to_family(&x, a, AF_INET);
	if (x.ss_family == AF_INET) {
		const struct sockaddr_in *v4 = (const void *)&x;

		inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
		snprintf(out, UDP_ADDR_STR_BYTES, "%s:%u", host, ntohs(v4->sin_port));
	} else if (x.ss_family == AF_INET6) {
		const struct sockaddr_in6 *v6 = (const void *)&x;

		inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
		snprintf(out, UDP_ADDR_STR_BYTES, "[%s]:%u", host, ntohs(v6->sin6_port));
	} else {
		snprintf(out, UDP_ADDR_STR_BYTES, "-");
	}
}

int udp_addr_parse(struct sockaddr_storage *out, const char *s, uint16_t default_port)
{
	char host[256];
	const char *port_str = NULL, *end;
	unsigned long port = default_port;
	struct addrinfo hints, *res = NULL;
	size_t hlen;
	int rc;

	if (s[0] == '[') {
		end = strchr(s, ']');
		if (!end)
			return -EINVAL;
		hlen = (size_t)(end - s - 1);
		if (hlen == 0 || hlen >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		if (end[1] == ':')
			port_str = end + 2;
		else if (end[1] != '\0')
			return -EINVAL;
	} else {
		end = strrchr(s, ':');
		if (end && strchr(s, ':') != end)
			return -EINVAL; /* bare IPv6 needs brackets */
		hlen = end ? (size_t)(end - s) : strlen(s);
		if (hlen == 0 || hlen >= sizeof(host))
			return -EINVAL;
		memcpy(host, s, hlen);
		host[hlen] = '\0';
		if (end)
			port_str = end + 1;
	}
	if (port_str) {
		char *e;

		if (*port_str < '0' || *port_str > '9')
			return -EINVAL;
		errno = 0;
		port = strtoul(port_str, &e, 10);
		if (errno || *e || port > 65535)
			return -EINVAL;
	} else if (default_port == 0) {
		return -EINVAL;
	}

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc != 0 || !res)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	memcpy(out, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	if (out->ss_family == AF_INET)
		((struct sockaddr_in *)(void *)out)->sin_port = htons((uint16_t)port);
	else if (out->ss_family == AF_INET6)
		((struct sockaddr_in6 *)(void *)out)->sin6_port = htons((uint16_t)port);
	else
		return -EINVAL;
	return 0;
}

int udp_open(struct udp_sock **out, const struct sockaddr_storage *addr)
{
	struct udp_sock *s;
	int one = 1, zero = 0, rc;

	*out = NULL;
	if (sodium_init() < 0)
		return -EIO;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->family = addr->ss_family;
	s->fd = socket(s->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
	if (s->fd < 0) {
		rc = -errno;
		goto fail;
	}
	if (s->family == AF_INET6)
		setsockopt(s->fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(s->fd, (const struct sockaddr *)addr, udp_addr_len(addr)) < 0) {
		rc = -errno;
		goto fail;
	}
	/* Large buffers: as root past rmem_max/wmem_max, else up to them. */
	if (setsockopt(s->fd, SOL_SOCKET, SO_RCVBUFFORCE, &(int){ SOCKET_BUFFER_BYTES }, sizeof(int)) < 0)
		setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &(int){ SOCKET_BUFFER_BYTES }, sizeof(int));
	if (setsockopt(s->fd, SOL_SOCKET, SO_SNDBUFFORCE, &(int){ SOCKET_BUFFER_BYTES }, sizeof(int)) < 0)
		setsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &(int){ SOCKET_BUFFER_BYTES }, sizeof(int));
	/* GSO is asked per send; probe that the option exists at all. */
	s->gso = setsockopt(s->fd, IPPROTO_UDP, UDP_SEGMENT, &zero, sizeof(zero)) == 0;
	s->gro = setsockopt(s->fd, IPPROTO_UDP, UDP_GRO, &one, sizeof(one)) == 0;
	s->rx_size = RECV_BYTES;
	s->arena = malloc(QUEUE_ARENA_BYTES);
	s->queue = calloc(QUEUE_MAX, sizeof(*s->queue));
	s->rx = malloc(RECV_BATCH * s->rx_size);
	if (!s->arena || !s->queue || !s->rx) {
		rc = -ENOMEM;
		goto fail;
	}
	*out = s;
	return 0;
fail:
	udp_close(s);
	return rc;
}

void udp_close(struct udp_sock *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	free(s->arena);
	free(s->queue);
	free(s->rx);
	free(s);
}

int udp_fd(const struct udp_sock *s)
{
	return s->fd;
}

int udp_local(const struct udp_sock *s, struct sockaddr_storage *out)
{
	socklen_t len = sizeof(*out);

	memset(out, 0, sizeof(*out));
	return getsockname(s->fd, (struct sockaddr *)out, &len) < 0 ? -errno : 0;
}

void udp_set_drop(struct udp_sock *s, unsigned percent)
{
	s->drop_percent = percent > 100 ? 100 : percent;
	/* seeded once: a getrandom() per datagram cost more than the rest of
	 * the send path under loss tests */
	while (s->drop_rng == 0)
		randombytes_buf(&s->drop_rng, sizeof(s->drop_rng));
}

void udp_set_offload(struct udp_sock *s, bool on)
{
	int v = on ? 1 : 0;

	s->gso = on && setsockopt(s->fd, IPPROTO_UDP, UDP_SEGMENT, &(int){ 0 }, sizeof(int)) == 0;
	s->gro = on && setsockopt(s->fd, IPPROTO_UDP, UDP_GRO, &v, sizeof(v)) == 0;
	if (!on)
		setsockopt(s->fd, IPPROTO_UDP, UDP_GRO, &v, sizeof(v));
}

void udp_get_stats(const struct udp_sock *s, struct udp_stats *out)
{
	*out = s->stats;
}

static bool drop_one(struct udp_sock *s)
{
	uint64_t x = s->drop_rng;

	if (!s->drop_percent)
		return false;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	s->drop_rng = x;
	return (x >> 11) % 100 < s->drop_percent;
}

int udp_send(struct udp_sock *s, const struct sockaddr_storage *to, const void *data, size_t len)
{
	struct queued *q;
	int rc = 0;

	if (len > UDP_MAX_DATAGRAM_BYTES)
		return -EMSGSIZE;
	if (drop_one(s)) {
		s->stats.tx_dropped++;
		return 0;
	}
	if (s->n_queued == QUEUE_MAX || len > QUEUE_ARENA_BYTES - s->arena_len)
		rc = udp_flush(s);
	q = &s->queue[s->n_queued++];
	to_family(&q->to, to, s->family);
	q->off = s->arena_len;
	q->len = (uint16_t)len;
	memcpy(s->arena + s->arena_len, data, len);
	s->arena_len += len;
	return rc;
}

/* One sendmmsg message: a run of queue entries [first, first + count). */
struct run {
	struct iovec iov;
	struct {
		_Alignas(struct cmsghdr) char buf[CMSG_SPACE(sizeof(uint16_t))];
	} ctl;
};

/* run_length - how many entries from @i can go out as one GSO send. */
static size_t run_length(const struct udp_sock *s, size_t i)
{
	const struct queued *first = &s->queue[i];
	size_t n = 1, bytes = first->len;

	if (!s->gso)
		return 1;
	while (i + n < s->n_queued && n < UDP_MAX_SEGMENTS) {
		const struct queued *q = &s->queue[i + n];

		if (q->len > first->len || bytes + q->len > GSO_MAX_BYTES ||
		    !udp_addr_equal(&q->to, &first->to))
			break;
		bytes += q->len;
		n++;
		if (q->len < first->len)
			break; /* a shorter segment can only be the last */
	}
	return n;
}

int udp_flush(struct udp_sock *s)
{
	struct mmsghdr msgs[SEND_BATCH];
	struct run runs[SEND_BATCH];
	size_t counts[SEND_BATCH];
	size_t i = 0;
	int first_err = 0;

	memset(runs, 0, sizeof(runs));

	while (i < s->n_queued) {
		unsigned n = 0;
		size_t j = i;
		int sent;

		memset(msgs, 0, sizeof(msgs));
		while (j < s->n_queued && n < SEND_BATCH) {
			size_t count = run_length(s, j), bytes = 0;
			struct msghdr *m = &msgs[n].msg_hdr;

			for (size_t k = 0; k < count; k++)
				bytes += s->queue[j + k].len;
			runs[n].iov.iov_base = s->arena + s->queue[j].off;
			runs[n].iov.iov_len = bytes;
			m->msg_name = &s->queue[j].to;
			m->msg_namelen = udp_addr_len(&s->queue[j].to);
			m->msg_iov = &runs[n].iov;
			m->msg_iovlen = 1;
			if (count > 1) {
				struct cmsghdr *c;
				uint16_t seg = s->queue[j].len;

				m->msg_control = runs[n].ctl.buf;
				m->msg_controllen = sizeof(runs[n].ctl.buf);
				c = CMSG_FIRSTHDR(m);
				c->cmsg_level = IPPROTO_UDP;
				c->cmsg_type = UDP_SEGMENT;
				c->cmsg_len = CMSG_LEN(sizeof(seg));
				memcpy(CMSG_DATA(c), &seg, sizeof(seg));
			}
			counts[n++] = count;
			j += count;
		}
		sent = sendmmsg(s->fd, msgs, n, 0);
		s->stats.tx_syscalls++;
		if (sent < 0) {
			int e = errno;

			if (e == EINTR)
				continue;
			if ((e == EIO || e == EINVAL || e == EOPNOTSUPP) && s->gso && counts[0] > 1) {
				s->gso = false; /* the path refuses segmentation: go on without */
				continue;
			}
			if (e == EAGAIN || e == EWOULDBLOCK) {
				/* The socket buffer is full: the rest would fail the
				 * same way, so drop it all now, as a full link would. */
				s->stats.tx_dropped += s->n_queued - i;
				break;
			}
			/* The first message failed: drop it and go on with the rest. */
			if (!first_err)
				first_err = -e;
			s->stats.tx_errors += counts[0];
			i += counts[0];
			continue;
		}
		for (int k = 0; k < sent; k++) {
			s->stats.tx_datagrams += counts[k];
			s->stats.tx_bytes += runs[k].iov.iov_len;
			i += counts[k];
		}
	}
	s->n_queued = 0;
	s->arena_len = 0;
	return first_err;
}

static int gro_size(struct msghdr *m)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
		if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO) {
			int v;

			memcpy(&v, CMSG_DATA(c), sizeof(v));
			return v;
		}
	}
	return 0;
}

int udp_recv(struct udp_sock *s, udp_recv_fn *fn, void *ctx)
{
	struct mmsghdr msgs[RECV_BATCH];
	struct iovec iov[RECV_BATCH];
	struct sockaddr_storage from[RECV_BATCH];
	struct {
		_Alignas(struct cmsghdr) char buf[CMSG_SPACE(sizeof(int))];
	} ctl[RECV_BATCH];
	int got, delivered = 0;

	memset(msgs, 0, sizeof(msgs));
	memset(ctl, 0, sizeof(ctl));
	for (int i = 0; i < RECV_BATCH; i++) {
		iov[i].iov_base = s->rx + (size_t)i * s->rx_size;
		iov[i].iov_len = s->rx_size;
		msgs[i].msg_hdr.msg_name = &from[i];
		msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
		msgs[i].msg_hdr.msg_control = ctl[i].buf;
		msgs[i].msg_hdr.msg_controllen = sizeof(ctl[i].buf);
	}
	do
		got = recvmmsg(s->fd, msgs, RECV_BATCH, MSG_DONTWAIT, NULL);
	while (got < 0 && errno == EINTR);
	s->stats.rx_syscalls++;
	if (got < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
	for (int i = 0; i < got; i++) {
		uint8_t *p = iov[i].iov_base;
		size_t left = msgs[i].msg_len;
		size_t seg = (size_t)gro_size(&msgs[i].msg_hdr);
		struct sockaddr_storage src;

		if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
			s->stats.rx_dropped++; /* cannot happen with 64 KiB buffers; never parse a cut datagram */
			continue;
		}
		if (seg == 0 || seg > left)
			seg = left;
		to_family(&src, &from[i], AF_INET);
		if (src.ss_family == AF_INET6)
			src = from[i];
		while (left > 0) {
			size_t n = left < seg ? left : seg;

			if (drop_one(s)) {
				s->stats.rx_dropped++;
			} else {
				s->stats.rx_datagrams++;
				s->stats.rx_bytes += n;
				fn(ctx, &src, p, n);
				delivered++;
			}
			p += n;
			left -= n;
		}
	}
	return delivered;
}
