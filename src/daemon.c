/*
 * daemon.c - the daemon's wiring and the CLI side of mount/umount/status
 * (daemon.h has the picture).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include "buddyfs/store.h"

#define CTL_TIMEOUT_MS 5000
#define FSTYPE "fuse.buddyfs"

struct daemon {
	const struct daemon_params *p;
	char mountpoint[PATH_MAX];
	struct identity *id;
	struct store *store;
	struct loop *loop;
	struct fs *fs;
	struct ctl_server *ctl;
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
		} else if (strcmp(o, "test_online") == 0) {
			p->test_online = true;
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

/* ---- the daemon ---- */

static void append_status(struct daemon *d, struct buf_writer *w);

static int on_ctl(void *ctx, uint8_t type, struct buf_writer *text, bool *hold)
{
	struct daemon *d = ctx;
	static const char bye[] = "unmounting\n";

	switch (type) {
	case CTL_REQ_STATUS:
		append_status(d, text);
		return 0;
	case CTL_REQ_UMOUNT:
		buf_put_bytes(text, bye, sizeof(bye) - 1);
		*hold = true;
		loop_stop(d->loop);
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

struct status_ctx {
	struct daemon *d;
	struct buf_writer *w;
};

static int status_peer(void *ctx, const struct store_peer *p)
{
	struct status_ctx *c = ctx;
	char hex[IDENTITY_PEER_ID_HEX_BYTES];

	if (p->buddy != STORE_BUDDY_ADDED)
		return 0;
	identity_peer_id_hex(hex, p->id);
	put_line(c->w, "buddy %s %s sharing=%s online=%s\n", p->name[0] ? p->name : "-", hex,
		 p->mutual || c->d->p->test_online ? "mutual" : "pending",
		 fs_buddy_online(c->d->fs, p->id) || c->d->p->test_online ? "yes" : "no");
	return 0;
}

static void append_status(struct daemon *d, struct buf_writer *w)
{
	char hex[IDENTITY_PEER_ID_HEX_BYTES];
	struct status_ctx c = { d, w };

	identity_peer_id_hex(hex, d->id->peer_id);
	put_line(w, "home %s\n", d->p->home);
	put_line(w, "mount %s\n", d->mountpoint);
	put_line(w, "pid %ld\n", (long)getpid());
	put_line(w, "peer %s %s\n", hex, d->id->config.name);
	put_line(w, "rendezvous %s\n", "none (not built yet)");
	if (d->p->test_online)
		put_line(w, "test_online yes\n");
	store_peer_foreach(d->store, status_peer, &c);
	put_line(w, "transfers none\n");
}

static void on_signal(struct loop *loop, int signo, void *ctx)
{
	(void)ctx;
	log_info("signal %d: unmounting", signo);
	loop_stop(loop);
}

static void on_fs_exit(void *ctx)
{
	struct daemon *d = ctx;

	log_info("the kernel ended the session (unmounted from outside)");
	loop_stop(d->loop);
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

/* run - the daemon proper, after the fork.  Returns 0 or an error (logged). */
static int run(struct daemon *d)
{
	char path[PATH_MAX];
	struct fs_params fp = { 0 };
	int rc;

	signal(SIGPIPE, SIG_IGN);
	rc = store_open(&d->store, d->p->home, 0);
	if (rc) {
		log_error("cannot open the store in %s/store: %s", d->p->home, bfs_strerror(rc));
		goto out;
	}
	if (d->p->cache_bytes)
		store_block_cache_set_limit(d->store, d->p->cache_bytes);
	rc = loop_new(&d->loop);
	if (rc) {
		log_error("cannot make the event loop: %s", bfs_strerror(rc));
		goto out;
	}
	fp.home = d->p->home;
	fp.loop = d->loop;
	fp.store = d->store;
	fp.id = d->id;
	fp.test_online = d->p->test_online;
	fp.on_exit = on_fs_exit;
	fp.ctx = d;
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
	rc = loop_run(d->loop);
	if (rc)
		log_error("event loop: %s", bfs_strerror(rc));
	log_info("unmounting %s", d->mountpoint);
out:
	fs_free(d->fs); /* unmounts after answering what was queued */
	d->fs = NULL;
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
