#!/usr/bin/env bash
# demo.sh - `make demo`: a rendezvous and two buddies, alice and bob, on
# loopback, each with a home and a mount under demo/; a file copied into
# alice's folder with bob is read back at bob and compared by sha256.
# Everything is left running for you to explore until `make demo-stop`
# (scripts/demo-stop.sh); Ctrl-C while the demo runs stops it all.
#
#   bash scripts/demo.sh            (make demo runs it after deps and build)
#
# Environment: BUILD (default build), DEMO_DIR (default demo/ at the top of
# the tree).  Each run starts afresh: a demo still running is stopped and
# demo/ is made again (homes, keys and the rendezvous's registry in it are
# throwaway).  Layout:
#   demo/rendezvous/         the rendezvous's database; demo/rendezvous.log
#   demo/alice, demo/bob     the homes (daemon.log inside)
#   demo/alice/Buddies       alice's mount: bob/ is the folder she shares with bob
#   demo/bob/Buddies         bob's mount: alice/ is the same folder, seen by bob
#   demo/*.pid               what demo-stop stops
set -u
export LC_ALL=C
ROOT=$(cd "$(dirname "$0")/.." && pwd)
: "${BUILD:=build}"
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
: "${DEMO_DIR:=$ROOT/demo}"
DEMO=$(realpath -m "$DEMO_DIR")
BFS=$BUILD/buddyfs
RDV=$BUILD/buddyfs-rendezvous
WAIT_S=30   # how long to wait for each step that crosses the network
SAMPLE_MIB=16

say() { echo "demo: $*"; }
# rel PATH: PATH relative to the current directory when under it (make
# runs this at the top of the tree), else absolute
rel() {
	case "$1" in
	"$PWD"/*) echo "${1#"$PWD"/}" ;;
	*) echo "$1" ;;
	esac
}
STARTED=0
fail() {
	echo "demo: FAILED: $*" >&2
	if [ "$STARTED" = 1 ]; then
		echo "demo: the daemons' logs stay in $(rel "$DEMO")/alice/daemon.log, $(rel "$DEMO")/bob/daemon.log," \
			"$(rel "$DEMO")/rendezvous.log; stopping everything" >&2
		DEMO_DIR=$DEMO bash "$ROOT/scripts/demo-stop.sh" >/dev/null
	fi
	exit 1
}
on_signal() {
	trap - INT TERM
	echo
	say "interrupted: unmounting and stopping everything"
	DEMO_DIR=$DEMO bash "$ROOT/scripts/demo-stop.sh"
	exit 130
}
trap on_signal INT TERM

wait_for() { # SECONDS CMD...: poll CMD every 0.1 s until it succeeds
	local n=$(($1 * 10))
	shift
	while [ "$n" -gt 0 ]; do
		"$@" 2>/dev/null && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}
sees() { # MNT NAME: NAME is listed in MNT's root
	local f
	for f in "$1"/*; do
		[ "${f##*/}" = "$2" ] && return 0
	done
	return 1
}
has_size() { [ "$(stat -c %s "$1" 2>/dev/null)" = "$2" ]; }
show() { # CMD...: print the command, then run it indented
	echo "  \$ $*"
	"$@" 2>&1 | sed 's/^/    /'
	return "${PIPESTATUS[0]}"
}

# ---- what the demo needs ----
for b in "$BFS" "$RDV"; do
	[ -x "$b" ] || fail "$b is missing: run 'make demo' (it builds first) or 'make'"
done
if [ ! -c /dev/fuse ]; then
	fail "no /dev/fuse: this machine (or container) cannot mount FUSE file systems; 'modprobe fuse', or run the container with --device /dev/fuse --cap-add SYS_ADMIN"
fi
command -v fusermount3 >/dev/null || fail "fusermount3 is missing: run 'make deps' (package fuse3)"

# ---- a fresh demo/ ----
# is_demo_dir DIR: empty, or made by this script (never rm -rf anything else)
is_demo_dir() {
	[ -d "$1" ] && [ ! -L "$1" ] || return 1
	[ -z "$(ls -A "$1")" ] && return 0
	[ -e "$1/rendezvous.log" ] || [ -e "$1/alice/cert" ] || [ -e "$1/bob/cert" ]
}
if [ -e "$DEMO" ] || [ -L "$DEMO" ]; then
	is_demo_dir "$DEMO" ||
		{ echo "demo: FAILED: $DEMO exists and is not a demo directory: move it away, or set DEMO_DIR" >&2; exit 1; }
	DEMO_DIR=$DEMO bash "$ROOT/scripts/demo-stop.sh" --quiet
	if grep -q " $DEMO/" /proc/self/mounts; then
		fail "something under $DEMO is still mounted: run 'make demo-stop', or 'fusermount3 -u' it"
	fi
	rm -rf "$DEMO" || fail "cannot remove the old $DEMO"
fi
mkdir -p "$DEMO" || fail "cannot make $DEMO"
STARTED=1

# ---- the rendezvous, on a free port of 127.0.0.1 ----
port_free() { ! ss -Hlun "sport = :$1" 2>/dev/null | grep -q .; }
RDV_PID=
for _ in 1 2 3 4 5 6 7 8; do
	PORT=$((20000 + RANDOM % 40000))
	port_free "$PORT" || continue
	# setsid: its own session, so closing this terminal does not stop it
	setsid "$RDV" --listen "127.0.0.1:$PORT" --db "$DEMO/rendezvous" \
		</dev/null >"$DEMO/rendezvous.log" 2>&1 &
	RDV_PID=$!
	echo "$RDV_PID" >"$DEMO/rendezvous.pid"
	wait_for 5 grep -q '^listening' "$DEMO/rendezvous.log" && break
	kill "$RDV_PID" 2>/dev/null
	wait "$RDV_PID" 2>/dev/null
	RDV_PID=
	rm -f "$DEMO/rendezvous.pid"
done
[ -n "$RDV_PID" ] || fail "the rendezvous did not start: $(tail -n 1 "$DEMO/rendezvous.log" 2>/dev/null)"
say "started the rendezvous on 127.0.0.1:$PORT (pid $RDV_PID)"

# ---- two identities that are each other's buddies ----
for u in alice bob; do
	out=$("$BFS" --home "$DEMO/$u" init "$u" --rendezvous "127.0.0.1:$PORT" 2>&1) ||
		fail "buddyfs init $u: $out"
	say "$u: $(printf '%s\n' "$out" | head -n 1)"
done
out=$("$BFS" --home "$DEMO/alice" buddy add bob 2>&1) || fail "alice's buddy add bob: $out"
say "alice: $out"
out=$("$BFS" --home "$DEMO/bob" buddy add alice 2>&1) || fail "bob's buddy add alice: $out"
say "bob: $out"

# ---- the two daemons and their mounts ----
for u in alice bob; do
	mkdir -p "$DEMO/$u/Buddies"
	out=$(timeout -k 5 60 "$BFS" --home "$DEMO/$u" mount "$DEMO/$u/Buddies" 2>&1) ||
		fail "buddyfs mount for $u: $out"
	pid=$(cut -d' ' -f1 "$DEMO/$u/daemon.lock" 2>/dev/null)
	[ -n "$pid" ] && echo "$pid" >"$DEMO/$u.pid"
	say "mounted $(rel "$DEMO/$u/Buddies") ($u's daemon, pid ${pid:-?})"
done
say "waiting (at most $WAIT_S s) until alice and bob see each other online"
wait_for "$WAIT_S" sees "$DEMO/alice/Buddies" bob ||
	fail "alice's mount does not list bob after $WAIT_S s (is the daemons' networking built? see $(rel "$DEMO")/alice/daemon.log)"
wait_for "$WAIT_S" sees "$DEMO/bob/Buddies" alice ||
	fail "bob's mount does not list alice after $WAIT_S s (see $(rel "$DEMO")/bob/daemon.log)"
show ls -l "$DEMO/alice/Buddies" "$DEMO/bob/Buddies"

# ---- a file from alice to bob ----
cp "$ROOT/README.md" "$DEMO/README.md"
head -c $((SAMPLE_MIB * 1048576)) /dev/urandom >"$DEMO/sample.bin" || fail "cannot write $DEMO/sample.bin"
for f in README.md sample.bin; do
	cp "$DEMO/$f" "$DEMO/alice/Buddies/bob/$f" || fail "cp $f into alice's folder with bob failed"
done
say "alice copied README.md and sample.bin ($SAMPLE_MIB MiB) into $(rel "$DEMO/alice/Buddies/bob")/"
say "waiting (at most $WAIT_S s) until bob sees them"
for f in README.md sample.bin; do
	wait_for "$WAIT_S" has_size "$DEMO/bob/Buddies/alice/$f" "$(stat -c %s "$DEMO/$f")" ||
		fail "bob does not see $f in $(rel "$DEMO/bob/Buddies/alice") after $WAIT_S s"
done
say "the folder from both sides:"
show ls -l "$DEMO/alice/Buddies/bob" || fail "ls at alice failed"
show ls -l "$DEMO/bob/Buddies/alice" || fail "ls at bob failed"

# ---- read back at bob (its blocks come from alice's daemon) ----
say "bob reads the files (blocks fetched from alice, checked against her signed manifest):"
for f in README.md sample.bin; do
	want=$(sha256sum <"$DEMO/$f" | cut -d' ' -f1)
	got=$(timeout 120 sha256sum <"$DEMO/bob/Buddies/alice/$f" | cut -d' ' -f1)
	if [ -z "$got" ]; then
		fail "bob could not read $f (see $(rel "$DEMO")/bob/daemon.log)"
	elif [ "$got" != "$want" ]; then
		fail "$f read at bob has sha256 $got, alice wrote $want"
	fi
	echo "    $want  $f at alice"
	echo "    $got  $f at bob: same"
done
show "$BFS" --home "$DEMO/alice" buddy list

trap - INT TERM
D=$(rel "$DEMO")
B=$(rel "$BFS")
STOP="make demo-stop"
[ "$DEMO" = "$ROOT/demo" ] || STOP="DEMO_DIR=$DEMO make demo-stop"
echo
say "done: a rendezvous (127.0.0.1:$PORT) and two buddies are running; alice's"
say "files crossed to bob's mount and read back there with the same sha256."
echo
echo "Explore (everything stays up until '$STOP'):"
ex() { printf '  %-50s %s\n' "$1" "$2"; }
ex "ls -l $D/alice/Buddies/bob" "alice's view of the folder she shares with bob"
ex "ls -l $D/bob/Buddies/alice" "bob's view of the same folder"
ex "cp FILE $D/bob/Buddies/alice/" "bob shares a file back with alice"
ex "$B --home $D/alice status" "alice's daemon: rendezvous, buddies, transfers"
ex "$B --home $D/bob buddy list" "mutual, online, direct or relayed"
ex "less $D/alice/daemon.log" "what alice's daemon logged"
ex "$STOP" "unmount both, stop both daemons and the rendezvous"
exit 0
