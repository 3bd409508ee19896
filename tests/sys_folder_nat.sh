#!/usr/bin/env bash
# sys_folder_nat.sh - real mounts across real NATs (tests/netlab.sh): the
# rendezvous on pub, alice's daemon on h1a (behind r1), bob's on h2 (behind
# r2), each mounted from its own network namespace.  Shows: each sees the
# other's directory; a file copied at alice is read at bob with the same
# sha256, over a direct path (`buddy list` says direct, at the other's NAT
# address; the server relayed nothing).  Then, with random NAT mapping on
# both routers (symmetric NATs), the same through the relay (`buddy list`
# says relayed, the server relayed bytes).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netlab.sh"

BFS=$(cd "$BUILD" && pwd)/buddyfs
RDV=$(cd "$BUILD" && pwd)/buddyfs-rendezvous
lab_check || { note "skipping: $LAB_SKIP"; finish; }

MNTS=()
unmount_all() {
	local m
	for m in "${MNTS[@]}"; do
		grep -q " $m fuse" /proc/mounts && { fusermount3 -uz "$m" 2>/dev/null || umount -l "$m"; }
	done
	chmod -R u+rwx "$LIB_TMP" 2>/dev/null
	rm -rf "$LIB_TMP"
}
trap unmount_all EXIT

mounted() { grep -q " $1 fuse" /proc/mounts; }
sha() { sha256sum "$1" 2>/dev/null | cut -d' ' -f1; }
same_file() { [ -f "$2" ] && [ "$(sha "$1")" = "$(sha "$2")" ]; }

# stats_lines_over N - the server printed more than N stats lines.
stats_lines_over() { [ "$(grep -c '^stats ' "$W/srv")" -gt "$1" ]; }

# stats FIELD - a counter from the server's SIGUSR1 line.
stats() {
	local n
	n=$(grep -c '^stats ' "$W/srv")
	kill -USR1 "$SPID"
	wait_for 5 stats_lines_over "$n"
	grep '^stats ' "$W/srv" | tail -n 1 | sed -n "s/.* $1 \([0-9]*\).*/\1/p"
}

# scenario LABEL [--random-nat]: one lab, two daemons, a file across.
scenario() {
	local label=$1 nat=${2:-} want path A B f
	W=$LIB_TMP/$label
	mkdir -p "$W"
	lab_up $nat || { fail "${label}_lab_up" "cannot build the lab"; return; }
	lab_bg pub "$RDV" --listen "$(lab_addr pub):1935" --db "$W/db" >"$W/srv" 2>&1
	SPID=$LAB_PID
	wait_for 10 grep -q '^listening on' "$W/srv" || { fail "${label}_rendezvous" "$(tail -3 "$W/srv")"; lab_down; return; }
	for u in alice:h1a bob:h2; do
		local n=${u%%:*} node=${u##*:}
		lab_exec "$node" "$BFS" --home "$W/$n" init "$n" --rendezvous "$(lab_addr pub):1935" >/dev/null 2>"$W/$n.init" ||
			{ fail "${label}_init_$n" "$(cat "$W/$n.init")"; lab_down; return; }
		mkdir -p "$W/$n.mnt"
		MNTS+=("$W/$n.mnt")
	done
	lab_exec h1a "$BFS" --home "$W/alice" buddy add bob >/dev/null &&
		lab_exec h2 "$BFS" --home "$W/bob" buddy add alice >/dev/null ||
		{ fail "${label}_buddy_add" "lookup failed"; lab_down; return; }
	lab_bg h1a "$BFS" --home "$W/alice" mount "$W/alice.mnt" -f -o timeout=10 >"$W/alice.log" 2>&1
	lab_bg h2 "$BFS" --home "$W/bob" mount "$W/bob.mnt" -f -o timeout=10 >"$W/bob.log" 2>&1
	A=$W/alice.mnt B=$W/bob.mnt
	if wait_for 10 mounted "$A" && wait_for 10 mounted "$B" &&
	   wait_for 15 test -d "$A/bob" && wait_for 15 test -d "$B/alice"; then
		pass "${label}_buddies_listed"
	else
		fail "${label}_buddies_listed" "alice: $(ls "$A" 2>&1 | tr '\n' ' ') bob: $(ls "$B" 2>&1 | tr '\n' ' ')"
		tail -5 "$W/alice.log" "$W/bob.log" | sed 's/^/  /'
		lab_down
		return
	fi
	f=$W/data.bin
	head -c 5000000 /dev/urandom >"$f"
	cp "$f" "$A/bob/data.bin"
	if wait_for 20 same_file "$f" "$B/alice/data.bin"; then
		pass "${label}_file_crosses_same_sha256"
	else
		fail "${label}_file_crosses_same_sha256" "bob has: $(ls -l "$B/alice" 2>&1 | tr '\n' ' ')"
	fi
	if [ -z "$nat" ]; then
		path=direct want="bob .* online +$(lab_nat_addr h2):[0-9]+ +direct"
	else
		path=relayed want="bob .* online +.* +relayed"
	fi
	if lab_exec h1a "$BFS" --home "$W/alice" buddy list >"$W/list" 2>&1 && grep -Eq "$want" "$W/list"; then
		pass "${label}_buddy_list_says_$path"
	else
		fail "${label}_buddy_list" "want /$want/: $(cat "$W/list")"
	fi
	local relayed
	relayed=$(stats relayed_bytes)
	if { [ -z "$nat" ] && [ "$relayed" = 0 ]; } || { [ -n "$nat" ] && [ "${relayed:-0}" -gt 0 ]; }; then
		pass "${label}_server_relayed_bytes_${relayed}"
	else
		fail "${label}_server_relayed_bytes" "relayed_bytes=${relayed:-none}"
	fi
	"$BFS" --home "$W/alice" umount "$A" >/dev/null 2>&1
	"$BFS" --home "$W/bob" umount "$B" >/dev/null 2>&1
	if mounted "$A" || mounted "$B"; then fail "${label}_umount" "still mounted"; else pass "${label}_umount"; fi
	lab_down
}

scenario cone
scenario symmetric --random-nat
finish
