#!/usr/bin/env bash
# demo-stop.sh - `make demo-stop`: unmount the demo's two mounts, stop
# alice's and bob's daemons and the rendezvous that scripts/demo.sh started
# (their pids are in demo/*.pid).  Idempotent: with nothing running it says
# so and exits 0.  demo/ itself (homes, logs) is kept; the next `make demo`
# makes it afresh.
#
#   bash scripts/demo-stop.sh [--quiet]
#
# Environment: BUILD (default build), DEMO_DIR (default demo/ at the top of
# the tree).  Exits 1 only when something could not be stopped.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
: "${BUILD:=build}"
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
: "${DEMO_DIR:=$ROOT/demo}"
DEMO=$(realpath -m "$DEMO_DIR")
BFS=$BUILD/buddyfs
QUIET=0
[ "${1:-}" = --quiet ] && QUIET=1
say() { [ "$QUIET" = 1 ] || echo "demo-stop: $*"; }
did=0
rc=0

is_mounted() { grep -q " $1 " /proc/self/mounts; }
# alive PID COMM: PID runs and is the program we started (not a reused pid)
alive() {
	[ -n "$1" ] && kill -0 "$1" 2>/dev/null && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]
}
gone_within() { # PID COMM TENTHS
	local n=$3
	while [ "$n" -gt 0 ]; do
		alive "$1" "$2" || return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}
stop_pid() { # PID COMM WHAT: SIGTERM, then SIGKILL after 5 s
	alive "$1" "$2" || return 0
	kill -TERM "$1" 2>/dev/null
	gone_within "$1" "$2" 50 && return 0
	say "$3 (pid $1) did not stop on SIGTERM: SIGKILL"
	kill -KILL "$1" 2>/dev/null
	gone_within "$1" "$2" 50
}

[ -d "$DEMO" ] || { say "no demo in $DEMO: nothing to stop"; exit 0; }

for u in alice bob; do
	m=$DEMO/$u/Buddies
	pid=$(cat "$DEMO/$u.pid" 2>/dev/null)
	[ -n "$pid" ] || pid=$(cut -d' ' -f1 "$DEMO/$u/daemon.lock" 2>/dev/null)
	if is_mounted "$m"; then
		did=1
		if [ -x "$BFS" ] && timeout -k 5 60 "$BFS" --home "$DEMO/$u" umount "$m" >/dev/null 2>&1; then
			say "unmounted $m ($u)"
			gone_within "$pid" buddyfs 50
		fi
	fi
	if alive "$pid" buddyfs; then
		did=1
		stop_pid "$pid" buddyfs "$u's daemon" && say "stopped $u's daemon (pid $pid)"
	fi
	if is_mounted "$m"; then
		# a daemon that is gone leaves a stale mount: detach it
		fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
		say "detached the stale mount $m"
	fi
	if is_mounted "$m" || alive "$pid" buddyfs; then
		echo "demo-stop: could not stop $u: pid ${pid:-?}, mount $m" >&2
		rc=1
	else
		rm -f "$DEMO/$u.pid"
	fi
done

pid=$(cat "$DEMO/rendezvous.pid" 2>/dev/null)
# comm is cut at 15 characters
if alive "$pid" buddyfs-rendezv; then
	did=1
	if stop_pid "$pid" buddyfs-rendezv "the rendezvous"; then
		say "stopped the rendezvous (pid $pid)"
	else
		echo "demo-stop: could not stop the rendezvous (pid $pid)" >&2
		rc=1
	fi
fi
alive "$pid" buddyfs-rendezv || rm -f "$DEMO/rendezvous.pid"

[ "$did" = 1 ] || say "nothing was running"
exit $rc
