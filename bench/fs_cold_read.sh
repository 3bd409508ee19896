#!/usr/bin/env bash
# fs_cold_read.sh - the quick form of fs_bench.sh's headline figure: a
# rendezvous and two daemons (alice, bob) on loopback; alice copies SIZE MiB
# of random bytes into her folder with bob; the page cache is dropped; bob
# reads the file once (every block fetched from alice's daemon over RTMFP
# and checked against her signed manifest).  Prints the cp and cold-read
# rates and bob's peak RSS.  Needs root (/dev/fuse, drop_caches).
#
#   BUILD=build bash bench/fs_cold_read.sh [SIZE_MIB]     (default 256)
set -u
: "${BUILD:=build}"
N=${1:-256}
B=$(cd "$BUILD" && pwd)
T=$(mktemp -d "${TMPDIR:-/var/tmp}/bfs-cold.XXXXXX")
RP=
cleanup() {
	for u in alice bob; do
		"$B/buddyfs" --home "$T/$u" umount "$T/$u.m" >/dev/null 2>&1
	done
	[ -n "$RP" ] && kill "$RP" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.1f", n / (b - a) }'; }

P=$((20000 + RANDOM % 20000))
"$B/buddyfs-rendezvous" --listen "127.0.0.1:$P" --db "$T/db" >"$T/rdv.out" 2>&1 &
RP=$!
for _ in $(seq 50); do grep -q '^listening on' "$T/rdv.out" && break; sleep 0.1; done
for u in alice bob; do
	"$B/buddyfs" --home "$T/$u" init "$u" --rendezvous "127.0.0.1:$P" >/dev/null || exit 1
	mkdir "$T/$u.m"
done
"$B/buddyfs" --home "$T/alice" buddy add bob >/dev/null && "$B/buddyfs" --home "$T/bob" buddy add alice >/dev/null || exit 1
"$B/buddyfs" --home "$T/alice" mount "$T/alice.m" -o timeout=30 || exit 1
"$B/buddyfs" --home "$T/bob" mount "$T/bob.m" -o timeout=30 || exit 1
for _ in $(seq 100); do [ -d "$T/bob.m/alice" ] && [ -d "$T/alice.m/bob" ] && break; sleep 0.1; done
[ -d "$T/bob.m/alice" ] || { echo "fs_cold_read: the daemons did not see each other" >&2; exit 1; }
head -c $((N << 20)) /dev/urandom >"$T/f.bin"
s=$(now); cp "$T/f.bin" "$T/alice.m/bob/f.bin"; e=$(now)
echo "cp of $N MiB into a buddy directory: $(rate "$N" "$s" "$e") MiB/s"
for _ in $(seq 300); do [ -f "$T/bob.m/alice/f.bin" ] && break; sleep 0.1; done
sync
echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || echo "(cannot drop caches: not root?)"
s=$(now); cat "$T/bob.m/alice/f.bin" >/dev/null; e=$(now)
echo "cold read of $N MiB at bob: $(rate "$N" "$s" "$e") MiB/s"
cmp -s "$T/f.bin" "$T/bob.m/alice/f.bin" && echo "bob's copy is identical" || echo "bob's copy DIFFERS"
pid=$(pgrep -f "buddyfs --home $T/bob mount" | head -n 1)
[ -n "$pid" ] && echo "bob's daemon peak RSS: $(awk '/VmHWM/ { print $2, $3 }' "/proc/$pid/status")"
exit 0
