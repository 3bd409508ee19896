/*
 * daemon.h - the buddyfs daemon: wiring of the home, the identity, the
 * store, the event loop, the FUSE file system (fs) and the control socket
 * (ctl); and the client side of `buddyfs mount/umount/status`.
 *
 * One daemon per home: it holds an flock() on HOME/daemon.lock for its
 * whole life (a second `mount` of the same home is refused) and writes its
 * pid and mount point into that file.  Unless told to stay in the
 * foreground it forks (setsid) BEFORE it opens the store or makes its loop
 * (neither survives fork); the parent returns only once the mount is live
 * or the child failed.  After start-up the daemon's stderr goes to
 * HOME/daemon.log.  SIGINT and SIGTERM unmount cleanly.
 *
 * The network side joins the same loop: net (socket, RTMFP instance,
 * rendezvous), sync (folder protocol) and xfer (blocks), wired as
 * docs/ARCHITECTURE.md "daemon" says: presence -> sync (and xfer when a
 * buddy goes offline), sync's open_flow and xfer's -> net_open_flow,
 * sync's buddy_up / entry_changed -> fs, xfer's allowed -> sync, xfer's
 * arrived -> fs, fs's fetch -> xfer, fs's published -> sync.  Stopping
 * (SIGINT, SIGTERM, SIGHUP, `umount`, an unmount from outside) first closes
 * every RTMFP session in order, for at most DAEMON_NET_CLOSE_MS, so that
 * buddies and the rendezvous see us leave at once.
 *
 * Leaves to others: what each module does (net.h, sync.h, xfer.h, fs.h).
 * Errors: 0, negative errno or BFS_E*; the functions below print one
 * line with log_error() before they fail, so the CLI only maps to exit 1.
 */
#ifndef BUDDYFS_DAEMON_H
#define BUDDYFS_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DAEMON_LOCK_FILE "daemon.lock"
#define DAEMON_LOG_FILE "daemon.log"
#define DAEMON_TIMEOUT_DEFAULT_S 15
#define DAEMON_UMOUNT_WAIT_MS 30000
#define DAEMON_NET_CLOSE_MS 2000 /* orderly close of the sessions at exit, at most */
/* sync's dead_ms: a buddy silent this long is down (its directory leaves
 * the root); with PINGs every second this keeps a kill -9 under 5 s. */
#define DAEMON_SYNC_DEAD_MS 3000
#define DAEMON_ADDR_TEXT_BYTES 270 /* "[host]:port" of an -o option */

struct daemon_params {
	const char *home;        /* resolved home directory */
	const char *mountpoint;  /* as typed */
	bool foreground;         /* -f */
	unsigned timeout_s;      /* -o timeout=S: a buddy that answers nothing fails reads (sync) */
	uint64_t cache_bytes;    /* -o cache_size=MiB, in bytes; 0 = store default */
	bool test_online;        /* -o test_online: TEST ONLY, every buddy online and mutual */
	bool test_tamper;        /* -o test_tamper: TEST ONLY, corrupt every block we serve */
	uint16_t port;           /* -o port=N: the UDP port (0: any) */
	char bind[DAEMON_ADDR_TEXT_BYTES];       /* -o bind=IP: numeric address ("" any) */
	char rendezvous[DAEMON_ADDR_TEXT_BYTES]; /* -o rendezvous=HOST:PORT|none ("" the home's) */
};

/*
 * daemon_options_parse - "-o" text: comma-separated timeout=S (1..3600),
 * cache_size=MiB (1..1048576), port=N (0..65535), bind=IP (a numeric IPv4
 * or IPv6 address), rendezvous=HOST:PORT (or "none": no rendezvous, even
 * if the home names one), test_online, test_tamper.  Fills @p (other
 * fields left alone).  Returns 0, or -EINVAL with the offending option copied into
 * @bad (NUL-terminated, cut to @bad_cap).
 */
int daemon_options_parse(struct daemon_params *p, const char *opts, char *bad, size_t bad_cap);

/*
 * daemon_mount - check the identity, refuse a second daemon of the home,
 * clean a stale mount at the mount point, then run the daemon (in this
 * process with p->foreground, else in a child).  Returns 0 when the daemon
 * ran and stopped cleanly (foreground) or is running (background parent);
 * an error after a one-line message otherwise.  Never returns in the
 * background child (it exits).
 */
int daemon_mount(const struct daemon_params *p);

/*
 * daemon_umount - unmount @dir: ask the daemon that serves it over its
 * control socket (the home's, or the one named by the mount's source) and
 * wait until it exits; with no daemon answering, unmount directly (a stale
 * mount is detached).  Returns 0, -ENOENT if @dir is not a buddyfs mount,
 * or another error, after a one-line message.
 */
int daemon_umount(const char *home, const char *dir);

/*
 * daemon_status - the running daemon's view as text lines (malloc'd into
 * *@text; free() it).  Returns 0, -ESRCH when no daemon runs for @home
 * (no message printed), or another error after a one-line message.
 */
int daemon_status(const char *home, char **text);

/*
 * daemon_buddies - the running daemon's network view of each buddy
 * (CTL_REQ_BUDDIES lines, malloc'd into *@text).  Returns 0, -ESRCH when
 * no daemon runs for @home, -EOPNOTSUPP when it is too old to tell, or
 * another error (nothing printed: the caller falls back to the store).
 */
int daemon_buddies(const char *home, char **text);

/*
 * daemon_rescan - tell the running daemon of @home that its buddies
 * changed in the store (it re-reads them at once instead of within
 * NET_RESCAN_MS).  Returns 0, -ESRCH when no daemon runs, or another
 * error; prints nothing.
 */
int daemon_rescan(const char *home);

/*
 * daemon_clean_stale - if @dir is a mount point whose FUSE daemon is gone
 * ("Transport endpoint is not connected"), detach it.  Returns 1 when one
 * was cleaned, 0 when there was nothing to clean, or a negative errno.
 */
int daemon_clean_stale(const char *dir);

#endif
