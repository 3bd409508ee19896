/*
 * daemon.c - the daemon's wiring and the CLI side of mount/umount/status
 * (daemon.h has the picture).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buddyfs/buf.h"
#include "buddyfs/ctl.h"
#include "buddyfs/daemon.h"
#include "buddyfs/err.h"
#include "buddyfs/fs.h"
#include "buddyfs/identity.h"
#include "buddyfs/log.h"
#include "buddyfs/loop.h"
#include "buddyfs/net.h"
#include "buddyfs/rdv_proto.h"
#include "buddyfs/rtmfp.h"
#include "buddyfs/rtmfp_posix.h"
#include "buddyfs/store.h"
#include "buddyfs/sync.h"
#include "buddyfs/udp.h"
#include "buddyfs/xfer.h"

#define CTL_TIMEOUT_MS 5000
#define FSTYPE "fuse.buddyfs"
#define DAEMON_MMAP_THRESHOLD_BYTES (32 << 20)
#define DAEMON_TRIM_THRESHOLD_BYTES (32 << 20)
#define STATUS_XFER_MAX 64
#define CLOSE_POLL_NS (20 * LOOP_NS_PER_MS)

struct daemon {
	const struct daemon_params *p;
	char mountpoint[PATH_MAX];
	struct identity *id;
	struct store *store;
	struct loop *loop;
	struct fs *fs;
	struct net *net;
	struct sync *sync;
	struct xfer *xfer;
	struct ctl_server *ctl;
	bool stopping;
	uint64_t stop_deadline;
	int lock_fd;
	int notify_fd; /* the parent waits on it during start-up; -1 after */
};

/* ---- options ---- */

static bool parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* numeric_ip - a numeric IPv4 or IPv6 address (no name: nothing resolves). */
static bool numeric_ip(const char *s)
{
	struct in6_addr a6;
	struct in_addr a4;

	return inet_pton(AF_INET, s, &a4) == 1 || inet_pton(AF_INET6, s, &a6) == 1;
}

static bool rendezvous_ok(const char *s)
{
	char host[IDENTITY_HOST_MAX + 1];
	uint16_t port;

	return strcmp(s, "none") == 0 || identity_addr_parse(host, &port, s, RDV_DEFAULT_PORT) == 0;
}

int daemon_options_parse(struct daemon_params *p, const char *opts, char *bad, size_t bad_cap)
{
	char *copy = strdup(opts), *save = NULL;
	int rc = 0;

	if (!copy)
		return -ENOMEM;
	for (char *o = strtok_r(copy, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		uint64_t v;

		if (strncmp(o, "timeout=", 8) == 0 && parse_uint(o + 8, 1, 3600, &v)) {
			p->timeout_s = (unsigned)v;
		} else if (strncmp(o, "cache_size=", 11) == 0 && parse_uint(o + 11, 1, 1048576, &v)) {
			p->cache_bytes = v << 20;
		} else if (strncmp(o, "port=", 5) == 0 && parse_uint(o + 5, 0, 65535, &v)) {
			p->port = (uint16_t)v;
		} else if (strncmp(o, "bind=", 5) == 0 && numeric_ip(o + 5)) {
			snprintf(p->bind, sizeof(p->bind), "%s", o + 5);
		} else if (strncmp(o, "rendezvous=", 11) == 0 && rendezvous_ok(o + 11)) {
			snprintf(p->rendezvous, sizeof(p->rendezvous), "%s", o + 11);
		} else if (strcmp(o, "test_online") == 0) {
			p->test_online = true;
		} else if (strcmp(o, "test_tamper") == 0) {
			p->test_tamper = true;
		} else {
			snprintf(bad, bad_cap, "%s", o);
			rc = -EINVAL;
			break;
		}
	}
	free(copy);
	return rc;
}

/* ---- mount points ---- */

/*
 * canonical - the absolute path of @dir without following the last
 * component's mount (a dead FUSE mount cannot be stat'ed).
 */
static int canonical(char out[PATH_MAX], const char *dir)
{
	char tmp[PATH_MAX], parent[PATH_MAX];
	const char *base;
	char *slash;
	size_t n;

	if (realpath(dir, out))
		return 0;
	if (errno != ENOTCONN && errno != EIO)
		return -errno;
	n = strlen(dir);
	if (n == 0 || n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, dir, n + 1);
	while (n > 1 && tmp[n - 1] == '/')
		tmp[--n] = '\0';
	slash = strrchr(tmp, '/');
	if (slash) {
		*slash = '\0';
		base = slash + 1;
		if (!realpath(tmp[0] ? tmp : "/", parent))
			return -errno;
	} else {
		base = tmp;
		if (!realpath(".", parent))
			return -errno;
	}
	if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
		return -EINVAL;
	if ((size_t)snprintf(out, PATH_MAX, "%s/%s", strcmp(parent, "/") ? parent : "", base) >= PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/* unescape - undo the \ooo escapes of /proc/self/mountinfo in place. */
static void unescape(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' &&
		    s[3] <= '7') {
			*w++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

/*
 * mount_info - the last mount on @path: its type and source.  Returns 1 if
 * mounted, 0 if not, or a negative errno.
 */
static int mount_info(const char *path, char *fstype, size_t ft_cap, char *source, size_t src_cap)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	int found = 0;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		char *save = NULL, *tok, *mnt = NULL, *type = NULL, *src = NULL;
		int field = 0;
		bool after_dash = false;

		for (tok = strtok_r(line, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save), field++) {
			if (field == 4)
				mnt = tok;
			else if (!after_dash && field > 5 && strcmp(tok, "-") == 0)
				after_dash = true;
			else if (after_dash && !type)
				type = tok;
			else if (after_dash && !src)
				src = tok;
		}
		if (!mnt || !type || !src)
			continue;
		unescape(mnt);
		if (strcmp(mnt, path) != 0)
			continue;
		unescape(src);
		snprintf(fstype, ft_cap, "%s", type);
		snprintf(source, src_cap, "%s", src);
		found = 1;
	}
	free(line);
	fclose(f);
	return found;
}

static int detach(const char *path)
{
	pid_t pid;
	int status;

	if (umount2(path, MNT_DETACH) == 0)
		return 0;
	if (errno != EPERM)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-u", "-z", "--", path, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EPERM;
}

/*
 * dead - @dir is a mount whose FUSE daemon is gone.  statfs() always
 * reaches the daemon (stat() may be answered from the kernel's cache).
 */
static bool dead(const char *dir)
{
	struct statfs sf;

	return statfs(dir, &sf) != 0 && (errno == ENOTCONN || errno == ECONNABORTED);
}

int daemon_clean_stale(const char *dir)
{
	char path[PATH_MAX];
	int rc;

	if (!dead(dir))
		return 0;
	rc = canonical(path, dir);
	if (rc == 0)
		rc = detach(path);
	if (rc)
		return rc;
	log_info("cleaned the stale mount on %s", path);
	return 1;
}

/* ---- stopping: close the sessions in order, then leave the loop ---- */

static void on_closing(struct loop *loop, struct loop_timer *t, void *ctx)
{
	struct daemon *d = ctx;

	if (net_idle(d->net) || loop_now(loop) >= d->stop_deadline)
		loop_stop(loop);
	else
		loop_timer_rearm(loop, t, CLOSE_POLL_NS);
}

/* begin_stop - say goodbye to the rendezvous and buddies (at most
 * DAEMON_NET_CLOSE_MS), then stop the loop; a second call stops at once. */
static void begin_stop(struct daemon *d)
{
	if (d->stopping || !d->net) {
		loop_stop(d->loop);
		return;
	}
	d->stopping = true;
	net_shutdown(d->net);
	d->stop_deadline = loop_now(d->loop) + DAEMON_NET_CLOSE_MS * LOOP_NS_PER_MS;
	if (loop_timer_add(d->loop, CLOSE_POLL_NS, on_closing, d, NULL))
		loop_stop(d->loop);
}

/* ---- the wiring between net, sync, xfer and fs (daemon.h) ---- */

static int hook_open_flow(void *ctx, const uint8_t peer_id[static STORE_PEER_ID_BYTES], const uint8_t *meta,
			  size_t meta_len, struct rtmfp_send **out)
{
	struct daemon *d = ctx;

	*out = NULL;
	return d->net ? net_open_flow(d->net, peer_id, meta, meta_len, out) : -ENOTCONN;
}

/* hook_kick - sync or xfer wrote outside the instance's callbacks: send now. */
static void hook_kick(void *ctx)
{
	struct daemon *d = ctx;

	if (d->net)
		rtmfp_posix_kick(net_posix(d->net));
}

static void hook_presence(void *ctx, const uint8_t peer_id[static STORE_PEER_ID_BYTES], bool online)
{
	struct daemon *d = ctx;

	if (d->sync)
		sync_peer_online(d->sync, peer_id, online);
	if (!online && d->xfer)
		xfer_peer_down(d->xfer, peer_id);
}

static void hook_buddy_up(void *ctx, const uint8_t peer_id[static STORE_PEER_ID_BYTES], bool up)
{
	struct daemon *d = ctx;

	if (d->fs)
		fs_buddy_set_online(d->fs, peer_id, up);
}

static void hook_entry_changed(void *ctx, const uint8_t buddy[static STORE_PEER_ID_BYTES], const char *path)
{
	struct daemon *d = ctx;

	if (d->fs)
		fs_entry_changed(d->fs, buddy, path);
}

static bool hook_allowed(void *ctx, const uint8_t peer_id[static STORE_PEER_ID_BYTES])
{
	struct daemon *d = ctx;

	return d->sync && sync_buddy_is_up(d->sync, peer_id);
}

static void hook_arrived(void *ctx, const uint8_t hash[static STORE_HASH_BYTES], int err)
{
	struct daemon *d = ctx;

	if (d->fs)
		fs_block_arrived(d->fs, hash, err);
}

static void hook_delivered(void *ctx, const uint8_t hash[static STORE_HASH_BYTES], const uint8_t *data, size_t len)
{
	struct daemon *d = ctx;

	if (d->fs)
		fs_block_data(d->fs, hash, data, len);
}

static int hook_fetch(void *ctx, const struct xfer_want *w)
{
	struct daemon *d = ctx;

	return d->xfer ? xfer_fetch(d->xfer, w) : -ENOTCONN;
}

static void hook_published(void *ctx, const uint8_t buddy[static STORE_PEER_ID_BYTES], const char *path)
{
	struct daemon *d = ctx;

	if (d->sync)
		sync_published(d->sync, buddy, path);
}

/* net's upper modules: sync then xfer (ctx is the module) */
static void sync_opened(void *ctx, struct rtmfp_session *ss)
{
	sync_on_session_opened(ctx, ss);
}

static void sync_closed(void *ctx, struct rtmfp_session *ss, int err)
{
	sync_on_session_closed(ctx, ss, err);
}

static bool sync_rflow(void *ctx, struct rtmfp_recv *f, const uint8_t *meta, size_t len, struct rtmfp_send *assoc)
{
	return sync_on_recv_flow(ctx, f, meta, len, assoc);
}

static bool sync_msg(void *ctx, struct rtmfp_recv *f, const uint8_t *msg, size_t len)
{
	return sync_on_message(ctx, f, msg, len);
}

static bool sync_rclosed(void *ctx, struct rtmfp_recv *f, int err)
{
	return sync_on_recv_closed(ctx, f, err);
}

static bool sync_wr(void *ctx, struct rtmfp_send *f)
{
	return sync_on_writable(ctx, f);
}

static bool sync_sclosed(void *ctx, struct rtmfp_send *f, int err)
{
	return sync_on_send_closed(ctx, f, err);
}

static void xfer_closed(void *ctx, struct rtmfp_session *ss, int err)
{
	xfer_on_session_closed(ctx, ss, err);
}

static bool xfer_rflow(void *ctx, struct rtmfp_recv *f, const uint8_t *meta, size_t len, struct rtmfp_send *assoc)
{
	return xfer_on_recv_flow(ctx, f, meta, len, assoc);
}

static bool xfer_msg(void *ctx, struct rtmfp_recv *f, const uint8_t *msg, size_t len)
{
	return xfer_on_message(ctx, f, msg, len);
}

static bool xfer_rclosed(void *ctx, struct rtmfp_recv *f, int err)
{
	return xfer_on_recv_closed(ctx, f, err);
}

static bool xfer_wr(void *ctx, struct rtmfp_send *f)
{
	return xfer_on_writable(ctx, f);
}

static bool xfer_sclosed(void *ctx, struct rtmfp_send *f, int err)
{
	return xfer_on_send_closed(ctx, f, err);
}

/* ---- control requests and status ---- */

static void append_status(struct daemon *d, struct buf_writer *w);
static void append_buddies(struct daemon *d, struct buf_writer *w);

static int on_ctl(void *ctx, uint8_t type, struct buf_writer *text, bool *hold)
{
	struct daemon *d = ctx;
	static const char bye[] = "unmounting\n";

	switch (type) {
	case CTL_REQ_STATUS:
		append_status(d, text);
		return 0;
	case CTL_REQ_BUDDIES:
		append_buddies(d, text);
		return 0;
	case CTL_REQ_RESCAN:
		net_rescan(d->net);
		return 0;
	case CTL_REQ_UMOUNT:
		buf_put_bytes(text, bye, sizeof(bye) - 1);
		*hold = true;
		begin_stop(d);
		return 0;
	default:
		buf_put_bytes(text, "unknown request", 15);
		return -EOPNOTSUPP;
	}
}

static void put_line(struct buf_writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put_line(struct buf_writer *w, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0)
		buf_put_bytes(w, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* rtt_text - the session's smoothed RTT in milliseconds, "12.3" (0.0 on
 * loopback: RTMFP timestamps tick in 4 ms). */
static const char *rtt_text(char out[static 24], uint64_t srtt_ns)
{
	snprintf(out, 24, "%llu.%llu", (unsigned long long)(srtt_ns / 1000000),
		 (unsigned long long)(srtt_ns / 100000 % 10));
	return out;
}

struct status_ctx {
	struct daemon *d;
	struct buf_writer *w;
};

static int status_peer(void *ctx, const struct store_peer *p)
{
	struct status_ctx *c = ctx;
	struct daemon *d = c->d;
	char hex[IDENTITY_PEER_ID_HEX_BYTES], addr[UDP_ADDR_STR_BYTES], rtt[24];
	const char *name = p->name[0] ? p->name : "-";
	struct sync_buddy_stats ss;
	struct net_peer_info ni;

	if (p->buddy != STORE_BUDDY_ADDED)
		return 0;
	identity_peer_id_hex(hex, p->id);
	net_peer_info(d->net, p->id, &ni);
	put_line(c->w, "buddy %s %s sharing=%s online=%s\n", name, hex,
		 p->mutual || d->p->test_online ? "mutual" : "pending",
		 ni.online || fs_buddy_online(d->fs, p->id) || d->p->test_online ? "yes" : "no");
	if (ni.session) {
		udp_addr_format(addr, &ni.addr);
		put_line(c->w, "link %s %s %s rtt_ms=%s\n", name, ni.relayed ? "relayed" : "direct", addr,
			 rtt_text(rtt, ni.srtt_ns));
	}
	if (sync_buddy_stats(d->sync, p->id, &ss) == 0)
		put_line(c->w, "folder %s %s applied=%llu conflicts=%llu refused=%llu\n", name,
			 ss.up ? "up" : "down", (unsigned long long)ss.applied, (unsigned long long)ss.conflicts,
			 (unsigned long long)ss.refused);
	return 0;
}

static int buddies_peer(void *ctx, const struct store_peer *p)
{
	struct status_ctx *c = ctx;
	char hex[IDENTITY_PEER_ID_HEX_BYTES], addr[UDP_ADDR_STR_BYTES], rtt[24];
	struct net_peer_info ni;

	if (p->buddy != STORE_BUDDY_ADDED)
		return 0;
	identity_peer_id_hex(hex, p->id);
	net_peer_info(c->d->net, p->id, &ni);
	if (ni.have_addr)
		udp_addr_format(addr, &ni.addr);
	put_line(c->w, "%s %s %s %s %s\n", hex, ni.online ? "online" : "offline", ni.have_addr ? addr : "-",
		 ni.session ? (ni.relayed ? "relayed" : "direct") : "-", ni.session ? rtt_text(rtt, ni.srtt_ns) : "-");
	return 0;
}

static void append_buddies(struct daemon *d, struct buf_writer *w)
{
	struct status_ctx c = { d, w };

	store_peer_foreach(d->store, buddies_peer, &c);
}

static void append_transfers(struct daemon *d, struct buf_writer *w)
{
	struct xfer_stat st[STATUS_XFER_MAX];
	size_t n = xfer_stats(d->xfer, st, STATUS_XFER_MAX);
	struct xfer_totals t;

	xfer_totals(d->xfer, &t);
	put_line(w, "blocks fetched=%llu fetched_bytes=%llu bad=%llu timeouts=%llu served=%llu served_bytes=%llu\n",
		 (unsigned long long)t.blocks_fetched, (unsigned long long)t.bytes_fetched,
		 (unsigned long long)t.blocks_bad, (unsigned long long)t.timeouts, (unsigned long long)t.blocks_served,
		 (unsigned long long)t.bytes_served);
	if (n == 0) {
		put_line(w, "transfers none\n");
		return;
	}
	put_line(w, "transfers %zu\n", n);
	for (size_t i = 0; i < n; i++) {
		char hex[IDENTITY_PEER_ID_HEX_BYTES];
		struct store_peer p;
		const char *name = hex;

		identity_peer_id_hex(hex, st[i].peer);
		if (store_peer_get(d->store, st[i].peer, &p) == 0 && p.name[0])
			name = p.name;
		put_line(w, "transfer %s %s done=%llu total=%llu rate=%llu/s in_flight=%u\n", name,
			 st[i].serving ? "serving" : "fetching", (unsigned long long)st[i].bytes_done,
			 (unsigned long long)st[i].bytes_total, (unsigned long long)st[i].rate_bytes_s,
			 st[i].in_flight);
	}
}

static void append_status(struct daemon *d, struct buf_writer *w)
{
	char hex[IDENTITY_PEER_ID_HEX_BYTES], a[UDP_ADDR_STR_BYTES], b[UDP_ADDR_STR_BYTES];
	struct status_ctx c = { d, w };
	struct sockaddr_storage local;
	struct net_rdv_info ri;

	identity_peer_id_hex(hex, d->id->peer_id);
	put_line(w, "home %s\n", d->p->home);
	put_line(w, "mount %s\n", d->mountpoint);
	put_line(w, "pid %ld\n", (long)getpid());
	put_line(w, "peer %s %s\n", hex, d->id->config.name);
	if (net_local(d->net, &local) == 0) {
		udp_addr_format(a, &local);
		put_line(w, "udp %s\n", a);
	}
	net_rdv_info(d->net, &ri);
	if (!ri.configured) {
		put_line(w, "rendezvous none\n");
	} else {
		udp_addr_format(a, &ri.server);
		if (ri.have_observed)
			udp_addr_format(b, &ri.observed);
		put_line(w, "rendezvous %s %s observed=%s registered=%s\n", a,
			 ri.connected ? "connected" : "connecting", ri.have_observed ? b : "-",
			 ri.reg_code < 0 ? "-" : ri.reg_code == RDV_OK ? "yes" : rdv_result_str((unsigned)ri.reg_code));
	}
	if (d->p->test_online)
		put_line(w, "test_online yes\n");
	if (d->p->test_tamper)
		put_line(w, "test_tamper yes\n");
	store_peer_foreach(d->store, status_peer, &c);
	append_transfers(d, w);
}

static void on_signal(struct loop *loop, int signo, void *ctx)
{
	struct daemon *d = ctx;

	(void)loop;
	log_info("signal %d: unmounting", signo);
	begin_stop(d);
}

static void on_fs_exit(void *ctx)
{
	struct daemon *d = ctx;

	log_info("the kernel ended the session (unmounted from outside)");
	begin_stop(d);
}

/* notify - tell the waiting parent how start-up went ('K' or 'E'). */
static void notify(struct daemon *d, char c)
{
	if (d->notify_fd < 0)
		return;
	(void)!write(d->notify_fd, &c, 1);
	close(d->notify_fd);
	d->notify_fd = -1;
}

/* to_log - after start-up: stdin/stdout to /dev/null, stderr to HOME/daemon.log. */
static void to_log(struct daemon *d)
{
	char path[PATH_MAX];
	int null = open("/dev/null", O_RDWR | O_CLOEXEC), logfd;

	snprintf(path, sizeof(path), "%s/%s", d->p->home, DAEMON_LOG_FILE);
	logfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(logfd >= 0 ? logfd : null, STDERR_FILENO);
		close(null);
	}
	if (logfd >= 0)
		close(logfd);
}

static void write_lock_info(struct daemon *d)
{
	char text[PATH_MAX + 32];
	int n = snprintf(text, sizeof(text), "%ld %s\n", (long)getpid(), d->mountpoint);

	if (ftruncate(d->lock_fd, 0) == 0 && n > 0)
		(void)!pwrite(d->lock_fd, text, (size_t)n, 0);
}

/*
 * net_config - the socket address and the rendezvous from the options and
 * the home's config.  A rendezvous whose name does not resolve is left
 * out with a warning (the daemon still serves the mount and buddies that
 * connect).  Errors: -EINVAL (a bad -o bind).
 */
static int net_config(struct daemon *d, struct net_params *np)
{
	char host[IDENTITY_HOST_MAX + 1], text[IDENTITY_ADDR_TEXT_BYTES + 8];
	const char *opt = d->p->rendezvous;
	uint16_t port = 0;
	int rc;

	host[0] = '\0';
	if (opt[0] && strcmp(opt, "none") != 0) {
		if (identity_addr_parse(host, &port, opt, RDV_DEFAULT_PORT))
			host[0] = '\0';
	} else if (!opt[0] && d->id->config.rdv_host[0]) {
		snprintf(host, sizeof(host), "%s", d->id->config.rdv_host);
		port = d->id->config.rdv_port;
	}
	if (host[0]) {
		identity_addr_format(text, host, port);
		rc = udp_addr_parse(&np->rdv, text, RDV_DEFAULT_PORT);
		if (rc == 0)
			np->have_rdv = true;
		else
			log_warn("cannot resolve the rendezvous %s (%s): running without it", text, bfs_strerror(rc));
	}
	if (d->p->bind[0])
		snprintf(text, sizeof(text), strchr(d->p->bind, ':') ? "[%s]:%u" : "%s:%u", d->p->bind, d->p->port);
	else
		snprintf(text, sizeof(text), np->have_rdv && np->rdv.ss_family == AF_INET6 ? "[::]:%u" : "0.0.0.0:%u",
			 d->p->port);
	rc = udp_addr_parse(&np->bind, text, 0);
	if (rc)
		log_error("bad UDP address %s: %s", text, bfs_strerror(rc));
	return rc;
}

/* start_net - sync, xfer and net, wired (daemon.h).  Logs its error. */
static int start_net(struct daemon *d)
{
	struct sync_params sp = { 0 };
	struct xfer_params xp = { 0 };
	struct net_params np = { 0 };
	char text[UDP_ADDR_STR_BYTES];
	int rc;

	sp.loop = d->loop;
	sp.store = d->store;
	sp.id = d->id;
	sp.open_flow = hook_open_flow;
	sp.buddy_up = hook_buddy_up;
	sp.entry_changed = hook_entry_changed;
	sp.kick = hook_kick;
	sp.dead_ms = DAEMON_SYNC_DEAD_MS;
	sp.ctx = d;
	rc = sync_new(&d->sync, &sp);
	if (rc) {
		log_error("cannot start the folder protocol: %s", bfs_strerror(rc));
		return rc;
	}
	xp.loop = d->loop;
	xp.store = d->store;
	xp.id = d->id;
	xp.home = d->p->home;
	xp.timeout_s = d->p->timeout_s;
	xp.test_tamper = d->p->test_tamper;
	xp.open_flow = hook_open_flow;
	xp.allowed = hook_allowed;
	xp.arrived = hook_arrived;
	xp.delivered = hook_delivered;
	xp.kick = hook_kick;
	xp.ctx = d;
	rc = xfer_new(&d->xfer, &xp);
	if (rc) {
		log_error("cannot start block transfers: %s", bfs_strerror(rc));
		return rc;
	}
	rc = net_config(d, &np);
	if (rc)
		return rc;
	np.loop = d->loop;
	np.store = d->store;
	np.id = d->id;
	np.presence = hook_presence;
	np.ctx = d;
	np.n_upper = 2;
	np.upper[0] = (struct net_upper){
		.meta = SYNC_FLOW_METADATA, .session_opened = sync_opened, .session_closed = sync_closed,
		.recv_flow = sync_rflow, .message = sync_msg, .recv_closed = sync_rclosed, .writable = sync_wr,
		.send_closed = sync_sclosed, .ctx = d->sync,
	};
	np.upper[1] = (struct net_upper){
		.meta = XFER_FLOW_METADATA, .session_closed = xfer_closed, .recv_flow = xfer_rflow,
		.message = xfer_msg, .recv_closed = xfer_rclosed, .writable = xfer_wr, .send_closed = xfer_sclosed,
		.ctx = d->xfer,
	};
	rc = net_new(&d->net, &np);
	if (rc) {
		udp_addr_format(text, &np.bind);
		log_error("cannot open the UDP socket on %s: %s", text, bfs_strerror(rc));
	}
	return rc;
}

/* run - the daemon proper, after the fork.  Returns 0 or an error (logged). */
static int run(struct daemon *d)
{
	char path[PATH_MAX];
	struct fs_params fp = { 0 };
	int rc;

	signal(SIGPIPE, SIG_IGN);
	/*
	 * A buddy's blocks pass through buffers of about 256 KiB (xfer's
	 * answers, LMDB's pages for a cached block).  Above glibc's mmap
	 * threshold each is a fresh mapping whose pages fault in anew for
	 * every block, and a trimmed heap does the same: that cost most of a
	 * cold read's CPU here.  Take them from the heap and keep what is
	 * freed for the next block.
	 */
	mallopt(M_MMAP_THRESHOLD, DAEMON_MMAP_THRESHOLD_BYTES);
	mallopt(M_TRIM_THRESHOLD, DAEMON_TRIM_THRESHOLD_BYTES);
	rc = store_open(&d->store, d->p->home, 0);
	if (rc) {
		log_error("cannot open the store in %s/store: %s", d->p->home, bfs_strerror(rc));
		goto out;
	}
	if (d->p->cache_bytes)
		store_block_cache_set_limit(d->store, d->p->cache_bytes);
	store_cache_sweep(d->store); /* leftovers of a crash; it logs what it removed */
	rc = loop_new(&d->loop);
	if (rc) {
		log_error("cannot make the event loop: %s", bfs_strerror(rc));
		goto out;
	}
	rc = start_net(d);
	if (rc)
		goto out;
	fp.home = d->p->home;
	fp.loop = d->loop;
	fp.store = d->store;
	fp.id = d->id;
	fp.test_online = d->p->test_online;
	fp.on_exit = on_fs_exit;
	fp.ctx = d;
	fp.fetch = hook_fetch;
	fp.published = hook_published;
	fp.net_ctx = d;
	fp.timeout_s = d->p->timeout_s;
	rc = fs_new(&d->fs, &fp);
	if (rc) {
		log_error("cannot prepare %s/%s and %s/%s: %s", d->p->home, FS_OBJECTS_DIR, d->p->home,
			  FS_STAGING_DIR, bfs_strerror(rc));
		goto out;
	}
	snprintf(path, sizeof(path), "%s/%s", d->p->home, CTL_SOCKET_NAME);
	rc = ctl_server_new(&d->ctl, d->loop, path, on_ctl, d);
	if (rc) {
		log_error("cannot listen on %s: %s", path, bfs_strerror(rc));
		goto out;
	}
	if ((rc = loop_signal_add(d->loop, SIGINT, on_signal, d)) != 0 ||
	    (rc = loop_signal_add(d->loop, SIGTERM, on_signal, d)) != 0 ||
	    (rc = loop_signal_add(d->loop, SIGHUP, on_signal, d)) != 0) {
		log_error("cannot watch signals: %s", bfs_strerror(rc));
		goto out;
	}
	rc = fs_mount(d->fs, d->mountpoint, d->p->home);
	if (rc) {
		log_error("cannot mount on %s: %s", d->mountpoint, bfs_strerror(rc));
		goto out;
	}
	write_lock_info(d);
	log_info("mounted %s on %s", d->p->home, d->mountpoint);
	if (d->notify_fd >= 0) {
		to_log(d);
		notify(d, 'K');
	}
	rc = net_start(d->net);
	if (rc) {
		log_error("cannot start the network: %s", bfs_strerror(rc));
		goto out;
	}
	rc = loop_run(d->loop);
	if (rc)
		log_error("event loop: %s", bfs_strerror(rc));
	log_info("unmounting %s", d->mountpoint);
out:
	fs_free(d->fs); /* unmounts after answering what was queued */
	d->fs = NULL;
	net_free(d->net); /* the instance first: flows die without events */
	d->net = NULL;
	sync_free(d->sync);
	d->sync = NULL;
	xfer_free(d->xfer);
	d->xfer = NULL;
	store_close(d->store);
	d->store = NULL;
	ctl_server_free(d->ctl); /* last: a waiting `umount` sees EOF now */
	d->ctl = NULL;
	loop_free(d->loop);
	d->loop = NULL;
	if (d->lock_fd >= 0)
		(void)!ftruncate(d->lock_fd, 0); /* no daemon runs for this home any more */
	return rc;
}

/* lock_home - take HOME/daemon.lock; -EBUSY (and who holds it in @who) if taken. */
static int lock_home(const char *home, int *fd_out, char *who, size_t who_cap)
{
	char path[PATH_MAX];
	int fd;

	*fd_out = -1;
	snprintf(path, sizeof(path), "%s/%s", home, DAEMON_LOCK_FILE);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		int err = errno == EWOULDBLOCK ? -EBUSY : -errno;
		ssize_t n = pread(fd, who, who_cap - 1, 0);

		who[n > 0 ? n : 0] = '\0';
		if (n > 0 && who[n - 1] == '\n')
			who[n - 1] = '\0';
		close(fd);
		return err;
	}
	*fd_out = fd;
	return 0;
}

int daemon_mount(const struct daemon_params *in)
{
	struct daemon_params params = *in, *p = &params;
	struct daemon d = { .p = p, .lock_fd = -1, .notify_fd = -1 };
	char who[PATH_MAX + 32], fstype[64], source[PATH_MAX], home[PATH_MAX];
	const char *failed = NULL;
	struct stat st;
	int rc, pfd[2];
	pid_t pid;

	/* absolute: the daemon leaves the caller's directory, and umount finds it by this name */
	if (realpath(in->home, home))
		params.home = home;
	rc = identity_load(&d.id, p->home, &failed);
	if (rc == BFS_ENOIDENT) {
		log_error("no identity in %s: run 'buddyfs init NAME' first (or pass --home DIR)", p->home);
		return rc;
	}
	if (rc) {
		log_error("cannot load the identity in %s: %s%s%s", p->home, failed ? failed : "",
			  failed ? ": " : "", bfs_strerror(rc));
		return rc;
	}
	rc = lock_home(p->home, &d.lock_fd, who, sizeof(who));
	if (rc == -EBUSY) {
		log_error("a buddyfs daemon already runs for %s (pid and mount point: %s); "
			  "'buddyfs umount DIR' stops it", p->home, who[0] ? who : "unknown");
		goto out;
	}
	if (rc) {
		log_error("cannot lock %s/%s: %s", p->home, DAEMON_LOCK_FILE, bfs_strerror(rc));
		goto out;
	}
	rc = daemon_clean_stale(p->mountpoint);
	if (rc < 0) {
		log_error("cannot clean the stale mount on %s: %s (try 'fusermount3 -u -z %s')", p->mountpoint,
			  bfs_strerror(rc), p->mountpoint);
		goto out;
	}
	rc = canonical(d.mountpoint, p->mountpoint);
	if (rc == 0 && stat(d.mountpoint, &st) != 0)
		rc = -errno;
	if (rc == 0 && !S_ISDIR(st.st_mode))
		rc = -ENOTDIR;
	if (rc) {
		log_error("cannot mount on '%s': %s", p->mountpoint, bfs_strerror(rc));
		goto out;
	}
	if (mount_info(d.mountpoint, fstype, sizeof(fstype), source, sizeof(source)) == 1 &&
	    strcmp(fstype, FSTYPE) == 0) {
		log_error("%s is already a buddyfs mount (of %s): 'buddyfs umount %s' first", d.mountpoint,
			  source, d.mountpoint);
		rc = -EBUSY;
		goto out;
	}
	if (p->foreground) {
		rc = run(&d);
		goto out;
	}
	if (pipe2(pfd, O_CLOEXEC)) {
		rc = -errno;
		log_error("cannot start the daemon: %s", strerror(errno));
		goto out;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		log_error("cannot start the daemon: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		goto out;
	}
	if (pid == 0) {
		close(pfd[0]);
		d.notify_fd = pfd[1];
		setsid();
		if (chdir("/")) /* keep no directory of the caller's busy */
			log_warn("cannot change to /: %s", strerror(errno));
		rc = run(&d);
		notify(&d, 'E');
		identity_free(d.id);
		close(d.lock_fd);
		exit(rc ? 1 : 0); /* not _exit: stdio was flushed before the fork; atexit checks (LeakSanitizer) run */
	}
	close(pfd[1]);
	{
		char c = 0;
		ssize_t n;

		do
			n = read(pfd[0], &c, 1);
		while (n < 0 && errno == EINTR);
		close(pfd[0]);
		if (n == 1 && c == 'K') {
			rc = 0;
		} else {
			int status;

			waitpid(pid, &status, 0);
			if (n != 1)
				log_error("the daemon died while starting (see %s/%s)", p->home, DAEMON_LOG_FILE);
			rc = -EIO;
		}
	}
out:
	identity_free(d.id);
	if (d.lock_fd >= 0)
		close(d.lock_fd);
	return rc;
}

/* ---- client side ---- */

static int ask(const char *home, uint8_t type, bool wait_close, struct ctl_reply *r)
{
	char path[PATH_MAX];

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", home, CTL_SOCKET_NAME) >= sizeof(path))
		return -ENAMETOOLONG;
	return ctl_call(path, type, wait_close ? DAEMON_UMOUNT_WAIT_MS : CTL_TIMEOUT_MS, wait_close, r);
}

int daemon_status(const char *home, char **text)
{
	struct ctl_reply r;
	int rc = ask(home, CTL_REQ_STATUS, false, &r);

	*text = NULL;
	if (rc == -ENOENT || rc == -ECONNREFUSED)
		return -ESRCH;
	if (rc) {
		log_error("cannot ask the daemon of %s: %s", home, bfs_strerror(rc));
		return rc;
	}
	if (r.code) {
		log_error("the daemon of %s: %s", home, r.text);
		free(r.text);
		return -r.code;
	}
	*text = r.text;
	return 0;
}

int daemon_buddies(const char *home, char **text)
{
	struct ctl_reply r;
	int rc = ask(home, CTL_REQ_BUDDIES, false, &r);

	*text = NULL;
	if (rc == -ENOENT || rc == -ECONNREFUSED)
		return -ESRCH;
	if (rc)
		return rc;
	if (r.code) {
		free(r.text);
		return -r.code;
	}
	*text = r.text;
	return 0;
}

int daemon_rescan(const char *home)
{
	struct ctl_reply r;
	int rc = ask(home, CTL_REQ_RESCAN, false, &r);

	if (rc == -ENOENT || rc == -ECONNREFUSED)
		return -ESRCH;
	if (rc)
		return rc;
	free(r.text);
	return r.code ? -r.code : 0;
}

/* serves - the daemon of @home is mounted on @mnt. */
static bool serves(const char *home, const char *mnt)
{
	struct ctl_reply r;
	bool yes = false;

	if (ask(home, CTL_REQ_STATUS, false, &r) != 0)
		return false;
	for (char *line = r.text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (strncmp(line, "mount ", 6) == 0 && strcmp(line + 6, mnt) == 0)
			yes = true;
	}
	free(r.text);
	return yes;
}

int daemon_umount(const char *home, const char *dir)
{
	char mnt[PATH_MAX], fstype[64] = "", source[PATH_MAX] = "";
	const char *via = NULL;
	struct ctl_reply r;
	int rc, mounted;

	rc = canonical(mnt, dir);
	if (rc) {
		log_error("cannot unmount '%s': %s", dir, bfs_strerror(rc));
		return rc;
	}
	mounted = mount_info(mnt, fstype, sizeof(fstype), source, sizeof(source));
	if (home && serves(home, mnt))
		via = home;
	else if (mounted == 1 && strcmp(fstype, FSTYPE) == 0 && source[0] == '/' && serves(source, mnt))
		via = source;
	if (via) {
		rc = ask(via, CTL_REQ_UMOUNT, true, &r);
		if (rc == 0) {
			free(r.text);
			return 0;
		}
		log_warn("the daemon of %s did not confirm (%s): unmounting directly", via, bfs_strerror(rc));
	}
	if (mounted != 1 || strncmp(fstype, "fuse", 4) != 0) {
		log_error("%s is not a buddyfs mount", mnt);
		return -ENOENT;
	}
	if (dead(mnt)) {
		rc = detach(mnt);
	} else if (umount2(mnt, 0) == 0) {
		rc = 0;
	} else {
		rc = detach(mnt);
	}
	if (rc)
		log_error("cannot unmount %s: %s", mnt, bfs_strerror(rc));
	return rc;
}
