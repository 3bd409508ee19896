#!/usr/bin/env bash
# fs_bench.sh - the buddyfs mount against local disk and sshfs, in one run on
# loopback (issue 6, "Done when"): cold sequential read of a SIZE file, warm
# re-read, `ls -l` of a 10,000-file directory (cold and warm), time to first
# byte of a cold file, `cp` of SIZE into the directory, daemon peak RSS.
#
#   BUILD=build bash bench/fs_bench.sh [SIZE_MIB]        (default 1024)
#
# Environment:
#   FS_BENCH_DIR=DIR     where the scratch directory goes (default /var/tmp:
#                        a disk, not a tmpfs); needs about 4 x SIZE free
#   FS_BENCH_BUDDY=auto|0|1
#                        1: read a BUDDY's file (rendezvous + alice + bob,
#                        two daemons); 0: one daemon with -o test_online
#                        serving its own files; auto (default): 1 unless
#                        src/xfer.c is still the stub, falling back to 0 when
#                        the two daemons do not see each other in time
#   FS_BENCH_REPS=N      runs of each warm figure and of each ls -l (the
#                        median is printed; default 3)
#   FS_BENCH_FILES=N     files in the listed directory (default 10000; fewer
#                        for a quick try of the script itself)
#   FS_BENCH_SETTLE_S=S  before each buddyfs figure, wait at most S seconds
#                        (default 120) until the daemons are idle
#   FS_BENCH_SSHFS_OPTS=O  more sshfs -o options (default: none, sshfs's
#                        and OpenSSH's defaults)
#
# sshfs: openssh-server on 127.0.0.1, a random high port, its own config
# and throwaway keys in the scratch directory, serving the same files the
# local figures read; `sshfs` and `openssh-server` are installed with
# apt-get when missing (the script says so).  Caches are dropped with
# /proc/sys/vm/drop_caches before each cold figure (needs root; the script
# says when it could not).  "Cold" also means a fresh sshfs mount and a
# fresh buddyfs daemon, so neither program's own caches help.
#
# Prints one line per measure: each system's figure and the ratio the issue
# sets as a goal, with the goal beside it.  No figure is judged: the script
# exits 0 when it measured, 1 when it could not set up (a missing binary, no
# FUSE).  Everything it started is stopped and unmounted on exit.
set -u
export LC_ALL=C
: "${BUILD:=build}"
: "${FS_BENCH_DIR:=/var/tmp}"
: "${FS_BENCH_BUDDY:=auto}"
: "${FS_BENCH_REPS:=3}"
: "${FS_BENCH_FILES:=10000}"
: "${FS_BENCH_SETTLE_S:=120}"
: "${FS_BENCH_SSHFS_OPTS:=}"
SIZE=${1:-1024}
case "$SIZE" in
'' | *[!0-9]* | 0) echo "usage: BUILD=build bash bench/fs_bench.sh [SIZE_MIB]" >&2; exit 2 ;;
esac
case "$FS_BENCH_REPS$FS_BENCH_FILES$FS_BENCH_SETTLE_S" in
*[!0-9]*) echo "fs_bench: FS_BENCH_REPS, FS_BENCH_FILES and FS_BENCH_SETTLE_S want numbers" >&2; exit 2 ;;
esac
[ "$FS_BENCH_REPS" -ge 1 ] && [ "$FS_BENCH_FILES" -ge 1 ] ||
	{ echo "fs_bench: FS_BENCH_REPS and FS_BENCH_FILES want numbers >= 1" >&2; exit 2; }
SRC_DIR=$(cd "$(dirname "$0")/.." && pwd)
BFS=$(realpath -m "$BUILD/buddyfs")
RDV=$(realpath -m "$BUILD/buddyfs-rendezvous")
NFILES=$FS_BENCH_FILES
TTFB_RUNS=5
REPS=$FS_BENCH_REPS
say() { echo "fs_bench: $*"; }
die() { echo "fs_bench: $*" >&2; exit 1; }

[ -x "$BFS" ] || die "$BFS is missing: build it first (make BUILD=$BUILD)"
{ [ -c /dev/fuse ] && [ -r /dev/fuse ] && [ -w /dev/fuse ]; } || die "no usable /dev/fuse: cannot mount"
command -v fusermount3 >/dev/null || die "fusermount3 is missing (package fuse3)"

T=$(mktemp -d "$FS_BENCH_DIR/buddyfs-bench.XXXXXX") || die "cannot make a scratch directory in $FS_BENCH_DIR"
T=$(realpath "$T")
avail=$(df -Pk "$T" | awk 'NR == 2 { print int($4 / 1024) }')
if [ "${avail:-0}" -lt $((SIZE * 4 + 512)) ]; then
	rmdir "$T"
	die "$FS_BENCH_DIR has $avail MiB free; the bench needs about $((SIZE * 4 + 512)) MiB (set FS_BENCH_DIR)"
fi

# ---------------------------------------------------------------- cleanup --
SSHD_PID="" SSHFS_PID="" RDV_PID=""
BFS_HOMES=() # homes whose daemon we started: "HOME MOUNTPOINT"
is_mounted() { grep -q " $1 " /proc/self/mounts; }
pid_gone() { # PID TENTHS: wait until PID has exited
	local n=$2
	while [ "$n" -gt 0 ]; do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}
bfs_stop() { # HOME MNT: clean umount; else SIGTERM, SIGKILL, and detach
	local h=$1 m=$2 pid
	pid=$(cut -d' ' -f1 "$h/daemon.lock" 2>/dev/null)
	[ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" != buddyfs ] && pid=""
	if is_mounted "$m"; then
		timeout -k 5 60 "$BFS" --home "$h" umount "$m" >/dev/null 2>&1
	fi
	if [ -n "$pid" ] && ! pid_gone "$pid" 100; then
		kill -TERM "$pid" 2>/dev/null
		pid_gone "$pid" 50 || kill -9 "$pid" 2>/dev/null
		pid_gone "$pid" 50
	fi
	if is_mounted "$m"; then
		fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	fi
	return 0
}
sshfs_stop() {
	if [ -n "$SSHFS_PID" ]; then
		is_mounted "$T/sshmnt" && { fusermount3 -u "$T/sshmnt" 2>/dev/null || fusermount3 -u -z "$T/sshmnt" 2>/dev/null; }
		kill "$SSHFS_PID" 2>/dev/null
		wait "$SSHFS_PID" 2>/dev/null
		SSHFS_PID=
	fi
	return 0
}
cleanup() {
	local hm
	trap - EXIT INT TERM
	for hm in "${BFS_HOMES[@]}"; do
		# shellcheck disable=SC2086
		bfs_stop $hm
	done
	sshfs_stop
	[ -n "$SSHD_PID" ] && kill "$SSHD_PID" 2>/dev/null && wait "$SSHD_PID" 2>/dev/null
	[ -n "$RDV_PID" ] && kill "$RDV_PID" 2>/dev/null && wait "$RDV_PID" 2>/dev/null
	# never let rm walk into a live mount
	if grep -q " $T/" /proc/self/mounts; then
		echo "fs_bench: left $T in place: something under it is still mounted" >&2
	else
		chmod -R u+rwx "$T" 2>/dev/null
		rm -rf "$T"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- helpers --
# bash's own clock: no fork, so no program loaded from a cold disk inside a figure
now_us() { local t=${EPOCHREALTIME/./}; echo "${t/,/}"; }
CAN_DROP=1
drop_caches() {
	sync
	if ! { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
		[ "$CAN_DROP" = 1 ] && say "cannot write /proc/sys/vm/drop_caches (not root?): 'cold' figures are read with warm caches"
		CAN_DROP=0
	fi
	# load the timed tools again: a cold figure is the file system's, not dd's start-up
	dd if=/dev/null of=/dev/null status=none
	ls -l / >/dev/null
}
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
# ms_of CMD...: run CMD, print its wall time in ms (3 decimals); on failure
# print "" and note CMD and its error in $T/failures for the report
ms_of() {
	local s e
	s=$(now_us)
	"$@" >/dev/null 2>"$T/cmd.err" || {
		printf '  %s: %s\n' "$*" "$(head -c 300 "$T/cmd.err" | tr '\n' ' ')" >>"$T/failures"
		echo ""
		return 1
	}
	e=$(now_us)
	awk -v d=$((e - s)) 'BEGIN { printf "%.3f", d / 1e3 }'
}
read_file() { dd if="$1" of=/dev/null bs=1M status=none; }
# open and read the first byte, in the shell itself (no program to start)
first_byte() { local _c; IFS= read -r -N 1 _c <"$1"; }
ls_l() { ls -l "$1" >/dev/null; }
mbs() { # MS -> MB/s of SIZE MiB
	[ -n "$1" ] || { echo ""; return; }
	awk -v ms="$1" -v mib="$SIZE" 'BEGIN { printf "%.1f", mib * 1048576 / 1e6 / (ms / 1000) }'
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
vm_hwm_mib() { # PID -> peak RSS in MiB
	awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null
}
max_of() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { print (a + 0 > b + 0) ? a : b }'; }

# ------------------------------------------------------------- the files --
say "scratch $T, size $SIZE MiB, $NFILES files, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
mkdir -p "$T/srv/many" "$T/localcp" "$T/sshmnt"
head -c $((SIZE * 1048576)) /dev/urandom >"$T/srv/big.bin" || die "cannot write $SIZE MiB in $T"
for i in $(seq $TTFB_RUNS); do
	head -c 4194304 /dev/urandom >"$T/srv/first$i.bin"
done
(cd "$T/srv/many" && for i in $(seq $NFILES); do printf 'file %d\n' "$i" >"f$i"; done)
BIG_SUM=$(sha256sum "$T/srv/big.bin" | cut -d' ' -f1)

# ------------------------------------------------------------------ sshfs --
SSH_OK=0
ssh_install() {
	local missing="" p sudo=""
	command -v sshfs >/dev/null || missing="$missing sshfs"
	[ -x /usr/sbin/sshd ] || missing="$missing openssh-server"
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null || { say "sshfs column n/a:$missing missing and no root to install it"; return 1; }
		sudo=sudo
	fi
	say "installing$missing with apt-get (missing; needed for the sshfs figures)"
	# keep the package from starting a system-wide sshd on port 22
	p=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null && $sudo chmod 755 /usr/sbin/policy-rc.d && p=1
	fi
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>"$T/apt.err" ||
		{ $sudo apt-get update -qq >/dev/null 2>&1 &&
			DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>"$T/apt.err"; }
	[ -n "$p" ] && $sudo rm -f /usr/sbin/policy-rc.d
	command -v sshfs >/dev/null && [ -x /usr/sbin/sshd ] && return 0
	say "sshfs column n/a: apt-get could not install$missing: $(tail -n 1 "$T/apt.err")"
	return 1
}
sshd_start() {
	local u port sftp
	u=$(id -un)
	mkdir -p "$T/ssh"
	chmod 700 "$T/ssh"
	ssh-keygen -q -t ed25519 -N '' -f "$T/ssh/host_key" >/dev/null || return 1
	ssh-keygen -q -t ed25519 -N '' -f "$T/ssh/id" >/dev/null || return 1
	cp "$T/ssh/id.pub" "$T/ssh/authorized_keys"
	sftp=internal-sftp
	[ -x /usr/lib/openssh/sftp-server ] && sftp=/usr/lib/openssh/sftp-server
	# sshd (privilege separation) wants this directory; the service makes it at start
	[ "$(id -u)" = 0 ] && [ ! -d /run/sshd ] && mkdir -p /run/sshd && chmod 755 /run/sshd
	for _ in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 40000))
		ss -ltn 2>/dev/null | grep -q ":$port " && continue
		cat >"$T/ssh/sshd_config" <<-EOF
			Port $port
			ListenAddress 127.0.0.1
			HostKey $T/ssh/host_key
			PidFile $T/ssh/sshd.pid
			AuthorizedKeysFile $T/ssh/authorized_keys
			AllowUsers $u
			PermitRootLogin prohibit-password
			PubkeyAuthentication yes
			PasswordAuthentication no
			KbdInteractiveAuthentication no
			UsePAM no
			StrictModes no
			Subsystem sftp $sftp
		EOF
		/usr/sbin/sshd -D -e -f "$T/ssh/sshd_config" 2>"$T/ssh/sshd.log" &
		SSHD_PID=$!
		if wait_for 5 sh -c "ss -ltn | grep -q '127.0.0.1:$port '"; then
			SSH_PORT=$port
			return 0
		fi
		kill "$SSHD_PID" 2>/dev/null
		wait "$SSHD_PID" 2>/dev/null
		SSHD_PID=
	done
	say "sshfs column n/a: sshd did not start: $(tail -n 2 "$T/ssh/sshd.log" | tr '\n' ' ')"
	return 1
}
sshfs_mount() {
	sshfs "$(id -un)@127.0.0.1:$T/srv" "$T/sshmnt" -f -p "$SSH_PORT" \
		-o IdentityFile="$T/ssh/id",UserKnownHostsFile=/dev/null,StrictHostKeyChecking=no,BatchMode=yes,LogLevel=ERROR${FS_BENCH_SSHFS_OPTS:+,$FS_BENCH_SSHFS_OPTS} \
		2>"$T/ssh/sshfs.log" &
	SSHFS_PID=$!
	wait_for 20 is_mounted "$T/sshmnt" && return 0
	say "sshfs column n/a: sshfs did not mount: $(head -n 2 "$T/ssh/sshfs.log" | tr '\n' ' ')"
	sshfs_stop
	return 1
}
SSHFS_HWM=
sshfs_remount() { # a fresh sshfs: nothing in its caches
	[ "$SSH_OK" = 1 ] || return 0
	SSHFS_HWM=$(max_of "$SSHFS_HWM" "$(vm_hwm_mib "$SSHFS_PID")")
	sshfs_stop
	sshfs_mount || SSH_OK=0
}
if ssh_install && sshd_start && sshfs_mount; then
	SSH_OK=1
	say "sshfs $(sshfs --version 2>&1 | sed -n 's/^SSHFS version //p') over $(ssh -V 2>&1 | cut -d, -f1) on 127.0.0.1:$SSH_PORT, default options"
fi

# ---------------------------------------------------------------- buddyfs --
# MODE own: one daemon, -o test_online, its own files under bob/.
# MODE buddy: alice writes under bob/, bob reads alice's files under alice/.
BFS_HWM=
declare -A HWM_OF # per home
bfs_pid() { cut -d' ' -f1 "$1/daemon.lock" 2>/dev/null; }
bfs_hwm_note() { # HOME: fold the daemon's VmHWM into BFS_HWM and HWM_OF[HOME]
	local p
	p=$(bfs_pid "$1")
	[ -n "$p" ] || return 0
	BFS_HWM=$(max_of "$BFS_HWM" "$(vm_hwm_mib "$p")")
	HWM_OF[$1]=$(max_of "${HWM_OF[$1]:-}" "$(vm_hwm_mib "$p")")
}
bfs_mount() { # HOME MNT [OPTS]
	local o=()
	[ -n "${3:-}" ] && o=(-o "$3")
	timeout -k 5 60 "$BFS" --home "$1" mount "$2" "${o[@]}" >/dev/null 2>"$T/mount.err" ||
		{ say "buddyfs mount of $1 failed: $(head -n 1 "$T/mount.err")"; return 1; }
}
sees() { # MNT NAME: NAME is listed in MNT's root (readdir, not a lookup)
	local f
	for f in "$1"/*; do
		[ "${f##*/}" = "$2" ] && return 0
	done
	return 1
}

try_buddy_mode() {
	local port a b
	mkdir -p "$T/rdv" "$T/amnt" "$T/bmnt"
	for _ in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 40000))
		"$RDV" --listen "127.0.0.1:$port" --db "$T/rdv" >"$T/rdv.out" 2>"$T/rdv.err" &
		RDV_PID=$!
		wait_for 5 grep -q '^listening' "$T/rdv.out" && break
		kill "$RDV_PID" 2>/dev/null
		wait "$RDV_PID" 2>/dev/null
		RDV_PID=
	done
	[ -n "$RDV_PID" ] || { say "rendezvous did not start: $(head -n 1 "$T/rdv.err")"; return 1; }
	a=$T/alice b=$T/bob
	"$BFS" --home "$a" init alice --rendezvous "127.0.0.1:$port" >/dev/null 2>&1 &&
		"$BFS" --home "$b" init bob --rendezvous "127.0.0.1:$port" >/dev/null 2>&1 &&
		"$BFS" --home "$a" buddy add bob >/dev/null 2>&1 &&
		"$BFS" --home "$b" buddy add alice >/dev/null 2>&1 || { say "init/buddy add with the rendezvous failed"; return 1; }
	BFS_HOMES+=("$a $T/amnt" "$b $T/bmnt")
	bfs_mount "$a" "$T/amnt" && bfs_mount "$b" "$T/bmnt" || return 1
	if ! wait_for 20 sees "$T/amnt" bob || ! wait_for 20 sees "$T/bmnt" alice; then
		say "alice and bob did not see each other within 20 s"
		return 1
	fi
	W_HOME=$a W_DIR=$T/amnt/bob
	R_HOME=$b R_MNT=$T/bmnt R_DIR=$T/bmnt/alice R_SEES=alice
	return 0
}
undo_buddy_mode() {
	local hm
	for hm in "${BFS_HOMES[@]}"; do
		# shellcheck disable=SC2086
		bfs_stop $hm
	done
	BFS_HOMES=()
	[ -n "$RDV_PID" ] && kill "$RDV_PID" 2>/dev/null && wait "$RDV_PID" 2>/dev/null
	RDV_PID=
}
own_mode() {
	local h=$T/own
	"$BFS" --home "$h" init alice >/dev/null 2>&1 &&
		"$BFS" --home "$h" buddy add bob --id "$(printf 'b%.0s' $(seq 64))" >/dev/null 2>&1 ||
		die "buddyfs init failed"
	mkdir -p "$T/omnt"
	BFS_HOMES+=("$h $T/omnt")
	bfs_mount "$h" "$T/omnt" test_online || die "cannot mount buddyfs"
	wait_for 10 sees "$T/omnt" bob || die "the test_online mount does not show bob"
	W_HOME=$h W_DIR=$T/omnt/bob
	R_HOME=$h R_MNT=$T/omnt R_DIR=$W_DIR R_SEES=bob
}
MODE=own
want_buddy=$FS_BENCH_BUDDY
if [ "$want_buddy" = auto ]; then
	want_buddy=1
	if grep -q 'STUB' "$SRC_DIR/src/xfer.c" 2>/dev/null; then
		want_buddy=0
	fi
fi
if [ "$want_buddy" = 1 ]; then
	if [ -x "$RDV" ] && try_buddy_mode; then
		MODE=buddy
	else
		say "two daemons did not work: falling back to one daemon serving its own files"
		undo_buddy_mode
	fi
fi
[ "$MODE" = own ] && own_mode
# a fresh reader: restart its daemon (empty caches) and wait for the folder
bfs_remount_reader() {
	local opts=""
	bfs_hwm_note "$R_HOME"
	[ "$MODE" = own ] && opts=test_online
	bfs_stop "$R_HOME" "$R_MNT"
	bfs_mount "$R_HOME" "$R_MNT" "$opts" && wait_for 20 sees "$R_MNT" "$R_SEES"
}
# settle: wait until every buddyfs daemon of the run is idle (under 5% of a
# CPU over a second: publishing, hashing and index exchange done), at most
# FS_BENCH_SETTLE_S seconds; a figure taken while they work says so
TICKS=$(getconf CLK_TCK 2>/dev/null || echo 100)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
settle() { # WHEN: said when the daemons did not settle
	local end=$((SECONDS + FS_BENCH_SETTLE_S)) h p pids a b busy
	while [ "$SECONDS" -lt "$end" ]; do
		pids=()
		for h in "$W_HOME" "$R_HOME"; do
			p=$(bfs_pid "$h")
			[ -n "$p" ] && pids+=("$p")
		done
		a=0 b=0 busy=0
		for p in "${pids[@]}"; do a=$((a + $(cpu_ticks "$p"))); done
		sleep 1
		for p in "${pids[@]}"; do b=$((b + $(cpu_ticks "$p"))); done
		[ $((b - a)) -gt $((TICKS / 20)) ] && busy=1
		[ "$busy" = 0 ] && return 0
	done
	say "the buddyfs daemons were still busy $FS_BENCH_SETTLE_S s $1: measuring anyway"
	return 1
}
if [ "$MODE" = buddy ]; then
	say "buddyfs: two daemons (alice writes, bob reads alice's files) with a rendezvous on loopback"
else
	say "buddyfs: one daemon with -o test_online serving its own files (no buddy: a buddy's file is n/a)"
fi

# ------------------------------------------------------------ the measures --
declare -A R # R[measure.system] = figure

# cp of SIZE into the directory (the source warm in the page cache)
read_file "$T/srv/big.bin"
R[cp.local]=$(mbs "$(ms_of cp "$T/srv/big.bin" "$T/localcp/big.bin")")
rm -f "$T/localcp/big.bin"
if [ "$SSH_OK" = 1 ]; then
	mkdir -p "$T/sshmnt/cp"
	R[cp.sshfs]=$(mbs "$(ms_of cp "$T/srv/big.bin" "$T/sshmnt/cp/big.bin")")
	rm -rf "$T/srv/cp"
fi
R[cp.buddyfs]=$(mbs "$(ms_of cp "$T/srv/big.bin" "$W_DIR/big.bin")")
for i in $(seq $TTFB_RUNS); do
	cp "$T/srv/first$i.bin" "$W_DIR/" || say "cp of first$i.bin into buddyfs failed"
done
if [ "$MODE" = buddy ]; then
	# the reader sees the files once the index has crossed
	have_files() {
		local i
		[ "$(stat -c %s "$R_DIR/big.bin" 2>/dev/null)" = $((SIZE * 1048576)) ] || return 1
		for i in $(seq $TTFB_RUNS); do
			[ -e "$R_DIR/first$i.bin" ] || return 1
		done
	}
	wait_for 300 have_files || say "bob did not see alice's files within 300 s: the buddyfs read figures will be missing"
fi
settle "after the cp"

# Each system: its directory and how to make it cold (a fresh mount or
# daemon, so nothing in the program's own caches helps).
SYSTEMS="local buddyfs"
[ "$SSH_OK" = 1 ] && SYSTEMS="local sshfs buddyfs"
dir_of() {
	case $1 in
	local) echo "$T/srv" ;;
	sshfs) echo "$T/sshmnt" ;;
	buddyfs) echo "$R_DIR" ;;
	esac
}
fresh() {
	case $1 in
	sshfs) sshfs_remount ;;
	buddyfs)
		bfs_remount_reader || say "the buddyfs reader did not come back after a restart"
		settle "after the reader's restart"
		;;
	esac
	return 0
}
# in MODE own, buddyfs reads its own blocks: not the goal's measure
key_of() { # MEASURE SYSTEM
	if [ "$2" = buddyfs ] && [ "$MODE" = own ] && [ "$1" != warm ] && [ "$1" != lscold ] && [ "$1" != lswarm ]; then
		echo "${1}_own"
	else
		echo "$1"
	fi
}

# time to first byte of a cold file: median over TTFB_RUNS files, each
# never read before through that system and with the caches dropped
for sys in $SYSTEMS; do
	fresh "$sys"
	r=()
	for i in $(seq $TTFB_RUNS); do
		drop_caches
		r+=("$(ms_of first_byte "$(dir_of "$sys")/first$i.bin")")
	done
	k=$(key_of ttfb "$sys")
	R[$k.$sys]=$(echo "${r[*]}" | median)
done

# cold sequential read (once: a buddy's blocks are cached after it), then
# the warm re-read (median of REPS)
for sys in $SYSTEMS; do
	fresh "$sys"
	drop_caches
	k=$(key_of cold "$sys")
	R[$k.$sys]=$(mbs "$(ms_of read_file "$(dir_of "$sys")/big.bin")")
	r=()
	for i in $(seq "$REPS"); do
		r+=("$(ms_of read_file "$(dir_of "$sys")/big.bin")")
	done
	R[warm.$sys]=$(mbs "$(echo "${r[*]}" | median)")
done
got=$(sha256sum "$R_DIR/big.bin" 2>/dev/null | cut -d' ' -f1)
[ "$got" = "$BIG_SUM" ] || say "WARNING: big.bin could not be read back through buddyfs, or has another sha256 than the original"

# the directory of NFILES files, made only now: until the index has them,
# the reads above are not slowed by a reader reconciling them
s=$(now_us)
cp -r "$T/srv/many" "$W_DIR/" || say "cp of the $NFILES files into buddyfs failed"
e=$(now_us)
CREATE_S=$(awk -v d=$((e - s)) 'BEGIN { printf "%.1f", d / 1e6 }')
if [ "$MODE" = buddy ]; then
	have_many() { [ "$(find "$R_DIR/many" -maxdepth 1 -type f 2>/dev/null | wc -l)" = "$NFILES" ]; }
	s=$(now_us)
	wait_for 600 have_many || say "bob did not see the $NFILES files within 600 s"
	e=$(now_us)
	CREATE_S="$CREATE_S s at alice, seen at bob $(awk -v d=$((e - s)) 'BEGIN { printf "%.1f", d / 1e6 }')"
fi
settle "after creating the $NFILES files"

# ls -l of the 10,000-file directory: cold (fresh mount or daemon, caches
# dropped), then warm; the median of REPS each
for sys in $SYSTEMS; do
	r=()
	for i in $(seq "$REPS"); do
		fresh "$sys"
		drop_caches
		r+=("$(ms_of ls_l "$(dir_of "$sys")/many")")
	done
	R[lscold.$sys]=$(echo "${r[*]}" | median)
	r=()
	for i in $(seq "$REPS"); do
		r+=("$(ms_of ls_l "$(dir_of "$sys")/many")")
	done
	R[lswarm.$sys]=$(echo "${r[*]}" | median)
done
if [ "$MODE" = own ]; then
	R[ttfb.buddyfs]=na
	R[cold.buddyfs]=na
fi
n=$(ls "$R_DIR/many" 2>/dev/null | wc -l)
[ "$n" = $NFILES ] || say "WARNING: buddyfs lists $n files in many/, not $NFILES"

# peak RSS: the highest VmHWM of any buddyfs daemon in this run (each
# restart starts a new one); sshfs: its client process
bfs_hwm_note "$W_HOME"
bfs_hwm_note "$R_HOME"
[ "$SSH_OK" = 1 ] && SSHFS_HWM=$(max_of "$SSHFS_HWM" "$(vm_hwm_mib "$SSHFS_PID")")
R[rss.buddyfs]=$BFS_HWM
R[rss.sshfs]=$SSHFS_HWM

# ------------------------------------------------------------------ report --
fig() { # KEY SYSTEM -> printable figure
	local v=${R[$1.$2]:-}
	case "$v" in
	'') echo "-" ;;
	na) echo "n/a" ;;
	*) echo "$v" ;;
	esac
}
# ratio NUM DEN OP GOAL -> "0.42x (goal >= 3x: met)"
ratio() {
	local a=$1 b=$2
	case "$a$b" in *-* | *n/a* | '') echo "n/a (goal $3 $4x)"; return ;; esac
	awk -v a="$a" -v b="$b" -v op="$3" -v g="$4" 'BEGIN {
		if (b + 0 == 0) { printf "n/a (goal %s %sx)", op, g; exit }
		r = a / b; ok = (op == ">=") ? (r >= g) : (r <= g)
		printf "%.2fx (goal %s %sx: %s)", r, op, g, ok ? "met" : "not met" }'
}
line() { # LABEL UNIT KEY, then RATIO text
	printf '%-34s %10s %10s %10s %-5s  %s\n' "$1" "$(fig "$3" local)" "$(fig "$3" sshfs)" "$(fig "$3" buddyfs)" "$2" "$4"
}
echo
printf '%-34s %10s %10s %10s %-5s  %s\n' "measure ($SIZE MiB, $NFILES files)" local sshfs buddyfs unit "buddyfs ratio"
line "cold sequential read" MB/s cold "vs sshfs $(ratio "$(fig cold buddyfs)" "$(fig cold sshfs)" '>=' 3)"
[ "$MODE" = own ] && echo "  (a buddy's file: n/a with one daemon; FS_BENCH_BUDDY=1 tries two)" &&
	line "  cold read, own file (local blocks)" MB/s cold_own "vs sshfs $(ratio "$(fig cold_own buddyfs)" "$(fig cold sshfs)" '>=' 3), not the goal's measure"
line "warm re-read" MB/s warm "vs local $(ratio "$(fig warm buddyfs)" "$(fig warm local)" '>=' 0.8)"
line "ls -l, cold" ms lscold "vs local $(ratio "$(fig lscold buddyfs)" "$(fig lscold local)" '<=' 1.5); vs sshfs $(ratio "$(fig lscold buddyfs)" "$(fig lscold sshfs)" '<=' 0.3)"
line "ls -l, warm" ms lswarm "vs local $(ratio "$(fig lswarm buddyfs)" "$(fig lswarm local)" '<=' 1.5)"
line "first byte, cold file (median $TTFB_RUNS)" ms ttfb "vs sshfs $(ratio "$(fig ttfb buddyfs)" "$(fig ttfb sshfs)" '<=' 1)"
[ "$MODE" = own ] &&
	line "  first byte, own file (local)" ms ttfb_own "vs sshfs $(ratio "$(fig ttfb_own buddyfs)" "$(fig ttfb sshfs)" '<=' 1), not the goal's measure"
line "cp into the directory" MB/s cp "vs local $(ratio "$(fig cp buddyfs)" "$(fig cp local)" '>=' 0.5)"
rss=$(fig rss buddyfs)
rss_goal="goal <= 64 MiB: $(awk -v r="$rss" 'BEGIN { if (r == "-") print "n/a"; else print (r + 0 <= 64) ? "met" : "not met" }')"
line "daemon peak RSS (VmHWM)" MiB rss "$rss_goal"
echo
say "mode $MODE; creating the $NFILES files in buddyfs took $CREATE_S s; caches dropped: $([ "$CAN_DROP" = 1 ] && echo yes || echo no)"
if [ "$MODE" = buddy ]; then
	say "peak RSS: alice's daemon (writer, server) ${HWM_OF[$W_HOME]:-?} MiB, bob's (reader) ${HWM_OF[$R_HOME]:-?} MiB"
fi
[ "$SSH_OK" = 1 ] || say "sshfs figures missing (see above)"
if [ -s "$T/failures" ]; then
	say "these timed commands failed (their figure is '-'):"
	cat "$T/failures"
	say "the last lines of the buddyfs reader's log ($R_HOME/daemon.log):"
	tail -n 5 "$R_HOME/daemon.log" 2>/dev/null | sed 's/^/  /'
fi
exit 0
