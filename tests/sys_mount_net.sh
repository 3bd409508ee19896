#!/bin/bash
# sys_mount_net.sh - two daemons and a real rendezvous on loopback: the
# daemons register and watch each other; the buddy's directory appears in
# the mount only once both added each other (within 5 s), vanishes within
# 5 s of a kill -9 of the other daemon and comes back after its restart;
# `buddy list` and `status` show the buddy online over a direct session;
# once the folder protocol is built, files copied into each side's buddy
# directory arrive intact at the other (sha256).  Only 127.0.0.1, no DNS.
# Needs root and /dev/fuse (skipped otherwise).  Prints PASS/FAIL lines.
. "$(dirname "$0")/lib.sh"

BFS=$BUILD/buddyfs
RDV=$BUILD/buddyfs-rendezvous
SRC=$(dirname "$0")/../src
for b in "$BFS" "$RDV"; do
	if [ ! -x "$b" ]; then
		fail net_binaries "$b is missing: build it first (make BUILD=$BUILD)"
		finish
	fi
done
if [ "$(id -u)" -ne 0 ] || [ ! -c /dev/fuse ]; then
	note "sys_mount_net.sh skipped: needs root and /dev/fuse"
	finish
fi
export HOME=$LIB_TMP/userhome
mkdir -p "$HOME"
unset BUDDYFS_HOME XDG_DATA_HOME

A=$LIB_TMP/alice B=$LIB_TMP/bob
MA=$LIB_TMP/ma MB=$LIB_TMP/mb
mkdir -p "$MA" "$MB"
APID= BPID=

# net_cleanup - whatever happened: no daemon, no mount, no server left
# (before lib.sh removes $LIB_TMP: rm must never walk into a mount).
net_cleanup() {
	local p m
	for p in "$APID" "$BPID"; do
		[ -n "$p" ] && kill -9 "$p" 2>/dev/null
	done
	[ -n "$RDV_PID" ] && kill "$RDV_PID" 2>/dev/null && wait "$RDV_PID" 2>/dev/null
	for m in "$A" "$B" "$LIB_TMP/carol"; do
		p=$(cut -d' ' -f1 "$m/daemon.lock" 2>/dev/null)
		[ -n "$p" ] && kill -9 "$p" 2>/dev/null
	done
	for m in "$MA" "$MB" "$LIB_TMP/mc"; do
		timeout 10 fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	return 0
}
trap 'net_cleanup; chmod -R u+rwx "$LIB_TMP" 2>/dev/null; rm -rf "$LIB_TMP"' EXIT

ms() { date +%s%3N; }
is_mounted() { grep -q " $1 fuse.buddyfs " /proc/self/mounts; }

# ls_has DIR NAME - DIR lists NAME.
ls_has() { timeout 5 ls -1 "$1" 2>/dev/null | grep -qx "$2"; }
ls_lacks() { ! ls_has "$@"; }
# listed HOME NAME REGEX - `buddy list` of HOME has NAME's row matching REGEX.
listed() { "$BFS" --home "$1" buddy list 2>/dev/null | grep -E "^$2 " | grep -Eq -- "$3"; }

# start_daemon HOME MNT LOG - `mount -f` in the background; its pid in $DPID.
start_daemon() {
	"$BFS" --home "$1" mount "$2" -f -o bind=127.0.0.1,timeout=10 >>"$3" 2>&1 &
	DPID=$!
	wait_for 10 is_mounted "$2"
}

# ---- the rendezvous on a random port ----
start_rendezvous net_rendezvous_start
PORT=$RDV_PORT

check_out net_init_alice '^registered alice at 127\.0\.0\.1:' "$BFS" --home "$A" init alice --rendezvous "127.0.0.1:$PORT"
check_out net_init_bob '^registered bob at 127\.0\.0\.1:' "$BFS" --home "$B" init bob --rendezvous "127.0.0.1:$PORT"
ID_A=$("$BFS" --home "$A" id | cut -d' ' -f2)
ID_B=$("$BFS" --home "$B" id | cut -d' ' -f2)
check_out net_alice_adds_bob "^added bob $ID_B" "$BFS" --home "$A" buddy add bob

# ---- both daemons up; bob has not added alice yet ----
if start_daemon "$A" "$MA" "$LIB_TMP/a.log"; then APID=$DPID; pass net_mount_alice; else APID=$DPID; fail net_mount_alice "$(tail -n 3 "$LIB_TMP/a.log")"; finish; fi
if start_daemon "$B" "$MB" "$LIB_TMP/b.log"; then BPID=$DPID; pass net_mount_bob; else BPID=$DPID; fail net_mount_bob "$(tail -n 3 "$LIB_TMP/b.log")"; finish; fi

if wait_for 5 listed "$A" bob ' online '; then
	pass net_presence_before_mutual
else
	fail net_presence_before_mutual "alice's buddy list: $("$BFS" --home "$A" buddy list 2>&1 | tail -n 1)"
fi
check_out net_status_rendezvous_connected "^rendezvous 127\.0\.0\.1:$PORT connected observed=127\.0\.0\.1:[0-9]+ registered=yes$" \
	"$BFS" --home "$A" status
check_out net_status_udp "^udp 127\.0\.0\.1:[0-9]+$" "$BFS" --home "$A" status
# a UDP port in use fails the mount with one line and mounts nothing
APORT=$("$BFS" --home "$A" status | sed -n 's/^udp 127\.0\.0\.1:\([0-9]*\)$/\1/p')
C=$LIB_TMP/carol MC=$LIB_TMP/mc
mkdir -p "$MC"
"$BFS" --home "$C" init carol >/dev/null 2>&1
check_err net_port_in_use_refused 1 "cannot open the UDP socket on 127\.0\.0\.1:$APORT" \
	timeout 20 "$BFS" --home "$C" mount "$MC" -o "bind=127.0.0.1,port=$APORT"
if is_mounted "$MC"; then fail net_port_in_use_nothing_mounted "$MC is mounted"; else pass net_port_in_use_nothing_mounted; fi
sleep 2
if ls_lacks "$MA" bob; then pass net_not_shown_while_pending; else fail net_not_shown_while_pending "alice's mount lists bob"; fi
check_out net_list_pending "^bob +$ID_B +pending " "$BFS" --home "$A" buddy list

# ---- bob adds alice: both directories appear within 5 s ----
t=$(ms)
check_out net_bob_adds_alice "^added alice $ID_A" "$BFS" --home "$B" buddy add alice
if wait_for 5 ls_has "$MA" bob && wait_for 1 ls_has "$MB" alice; then
	pass net_shown_when_mutual_5s
	note "both directories listed $(($(ms) - t)) ms after the second buddy add"
else
	fail net_shown_when_mutual_5s "alice sees: $(ls "$MA" 2>&1 | tr '\n' ' '); bob sees: $(ls "$MB" 2>&1 | tr '\n' ' ')"
fi
if wait_for 5 listed "$A" bob "^bob +$ID_B +mutual +online +127\.0\.0\.1:[0-9]+ +direct$"; then
	pass net_list_online_direct
else
	fail net_list_online_direct "$("$BFS" --home "$A" buddy list 2>&1 | tail -n 1)"
fi
check_out net_status_link_direct "^link bob direct 127\.0\.0\.1:[0-9]+ rtt_ms=[0-9]+\.[0-9]$" "$BFS" --home "$A" status
check_out net_status_buddy_online "^buddy bob $ID_B sharing=mutual online=yes$" "$BFS" --home "$A" status

# ---- files both ways (once the folder protocol is built) ----
if grep -q STUB "$SRC/sync.c" 2>/dev/null || grep -q STUB "$SRC/xfer.c" 2>/dev/null; then
	note "sync or xfer is still a stub: copies skipped"
else
	head -c 3000000 /dev/urandom >"$LIB_TMP/a2b.bin"
	head -c 777777 /dev/urandom >"$LIB_TMP/b2a.bin"
	SUM_A2B=$(sha256sum <"$LIB_TMP/a2b.bin" | cut -d' ' -f1)
	SUM_B2A=$(sha256sum <"$LIB_TMP/b2a.bin" | cut -d' ' -f1)
	sum_is() { [ "$(timeout 30 sha256sum <"$1" 2>/dev/null | cut -d' ' -f1)" = "$2" ]; }
	check net_cp_alice_to_bob timeout 30 cp "$LIB_TMP/a2b.bin" "$MA/bob/a2b.bin"
	check net_cp_bob_to_alice timeout 30 cp "$LIB_TMP/b2a.bin" "$MB/alice/b2a.bin"
	if wait_for 20 ls_has "$MB/alice" a2b.bin && wait_for 30 sum_is "$MB/alice/a2b.bin" "$SUM_A2B"; then
		pass net_cp_alice_to_bob_sha256
	else
		fail net_cp_alice_to_bob_sha256 "bob sees: $(ls -l "$MB/alice" 2>&1 | tr '\n' ' ')"
	fi
	if wait_for 20 ls_has "$MA/bob" b2a.bin && wait_for 30 sum_is "$MA/bob/b2a.bin" "$SUM_B2A"; then
		pass net_cp_bob_to_alice_sha256
	else
		fail net_cp_bob_to_alice_sha256 "alice sees: $(ls -l "$MA/bob" 2>&1 | tr '\n' ' ')"
	fi
	check_out net_status_transfers '^transfers ' "$BFS" --home "$A" status
fi

# ---- kill -9 of bob's daemon: gone within 5 s; back after a restart ----
t=$(ms)
kill -9 "$BPID"
wait "$BPID" 2>/dev/null
BPID=
if wait_for 5 ls_lacks "$MA" bob; then
	pass net_gone_5s_after_kill9
	note "bob's directory gone $(($(ms) - t)) ms after the kill -9"
else
	fail net_gone_5s_after_kill9 "alice still lists bob after 5 s"
fi
t=$(ms)
if start_daemon "$B" "$MB" "$LIB_TMP/b.log"; then BPID=$DPID; pass net_restart_bob; else BPID=$DPID; fail net_restart_bob "$(tail -n 3 "$LIB_TMP/b.log")"; fi
if wait_for 10 ls_has "$MA" bob; then
	pass net_back_after_restart
	note "bob's directory back $(($(ms) - t)) ms after the restart began"
else
	fail net_back_after_restart "alice does not list bob"
fi
if wait_for 5 listed "$A" bob ' online +127\.0\.0\.1:[0-9]+ +direct$'; then
	pass net_list_online_after_restart
else
	fail net_list_online_after_restart "$("$BFS" --home "$A" buddy list 2>&1 | tail -n 1)"
fi

# ---- an orderly umount: the other side sees it leave at once ----
check net_umount_bob "$BFS" --home "$B" umount "$MB"
wait "$BPID" 2>/dev/null
BPID=
if wait_for 3 listed "$A" bob ' offline '; then pass net_offline_after_umount; else fail net_offline_after_umount "$("$BFS" --home "$A" buddy list 2>&1 | tail -n 1)"; fi
if wait_for 5 ls_lacks "$MA" bob; then pass net_gone_after_umount; else fail net_gone_after_umount "alice still lists bob"; fi
check net_umount_alice "$BFS" --home "$A" umount "$MA"
wait "$APID" 2>/dev/null
APID=
check_out net_list_without_daemon "^bob +$ID_B +mutual +offline +- +-$" "$BFS" --home "$A" buddy list
[ -n "${NET_SHOW_LOGS:-}" ] && cat "$LIB_TMP/a.log" "$LIB_TMP/b.log"
if grep -Eq 'Sanitizer|runtime error| error: ' "$LIB_TMP/a.log" "$LIB_TMP/b.log"; then
	fail net_daemon_logs_clean "$(grep -Eh 'Sanitizer|runtime error| error: ' "$LIB_TMP/a.log" "$LIB_TMP/b.log" | head -n 3)"
else
	pass net_daemon_logs_clean
fi
finish
