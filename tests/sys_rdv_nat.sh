#!/usr/bin/env bash
# sys_rdv_nat.sh - the rendezvous across real NATs (tests/netlab.sh):
# buddyfs-rendezvous on pub, peer A on h1a (behind r1), B on h2 (behind r2),
# C on h1b (A's LAN); the peers are bench/rdv_peer.  Shows: A and B register
# and see each other online/offline within 5 s of a start or kill; A reaches
# B through an introduction over a DIRECT path (the server's relayed-byte
# counter stays 0; each side's session address is the other's NAT address)
# and 100,000 bytes cross intact; A and C connect by their LAN addresses; a
# restarted server gets every peer back (registered, watching, online)
# without anything done by hand; a taken name and garbage datagrams (to the
# service and relay ports) are refused while the others stay served.  With
# an ASan build, a sanitizer report in any log fails.  Then, in a second lab with random NAT
# mapping on both routers (symmetric NATs), A and B cannot punch, ask the
# server to relay, and the data still crosses intact through it (relayed
# bytes > 0).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netlab.sh"

RDV=$BUILD/buddyfs-rendezvous
PEER=$BUILD/bench/rdv_peer
for f in "$RDV" "$PEER"; do
	[ -x "$f" ] || { fail sys_rdv_nat_build "$f missing (make $f)"; finish; }
done
lab_check || { note "skipping: $LAB_SKIP"; finish; }

# wait_for FILE REGEX SECONDS [COUNT] - true once FILE has COUNT (1) lines
# matching REGEX; polls every 0.1 s.
wait_for() {
	local i n=${4:-1}
	for ((i = 0; i < $3 * 10; i++)); do
		[ "$(grep -cE -- "$2" "$1" 2>/dev/null)" -ge "$n" ] && return 0
		sleep 0.1
	done
	return 1
}

# clean_logs LABEL NAME... - no sanitizer report in the logs (for ASan
# builds: every process ran to a clean exit on SIGTERM by then).
clean_logs() {
	local n bad='' label=$1
	shift
	for n in "$@"; do
		grep -q 'Sanitizer' "$LIB_TMP/$n" 2>/dev/null && bad+=" $n"
	done
	if [ -z "$bad" ]; then
		pass "rdv_${label}_clean_exit"
	else
		fail "rdv_${label}_clean_exit" "sanitizer reports in:$bad"
		# shellcheck disable=SC2086 # a list of names
		show $bad
	fi
}

# ms - milliseconds now.
ms() {
	echo $(($(date +%s%N) / 1000000))
}

# start_server - buddyfs-rendezvous on pub:1935 with $SDB; SPID, SID.
start_server() {
	: >"$LIB_TMP/srv"
	lab_bg pub "$RDV" --listen "$(lab_addr pub):1935" --db "$SDB" >>"$LIB_TMP/srv" 2>&1
	SPID=$LAB_PID
	wait_for "$LIB_TMP/srv" '^listening on' 10 || return 1
	SID=$(sed -n 's/^peer id \([0-9a-f]\{64\}\)$/\1/p' "$LIB_TMP/srv")
}

# stats FIELD - a counter from the server's SIGUSR1 line.
stats() {
	local n
	n=$(grep -c '^stats ' "$LIB_TMP/srv")
	kill -USR1 "$SPID"
	wait_for "$LIB_TMP/srv" '^stats ' 5 $((n + 1)) || { echo none; return; }
	grep '^stats ' "$LIB_TMP/srv" | tail -n 1 | sed -n "s/.* $1 \([0-9]*\).*/\1/p"
}

# peer NODE NAME ARGS... - start a peer (home $LIB_TMP/NAME.home, log
# $LIB_TMP/NAME); pid in PID_<NAME>.
peer() {
	local node=$1 name=$2
	shift 2
	lab_bg "$node" "$PEER" --home "$LIB_TMP/$name.home" --server "$(lab_addr pub):1935" \
		--server-id "$SID" "$@" >>"$LIB_TMP/$name" 2>&1
	printf -v "PID_$name" '%s' "$LAB_PID"
}

# show NAME... - the logs, after a failure.
show() {
	local n
	for n in "$@"; do
		sed "s/^/  $n: /" "$LIB_TMP/$n" | tail -n 15
	done
}

T0=$SECONDS
for n in A B C; do
	"$PEER" --home "$LIB_TMP/$n.home" --id >"$LIB_TMP/$n.id" || { fail rdv_nat_ids "cannot make identity $n"; finish; }
	printf -v "ID_$n" '%s' "$(sed -n 's/^id //p' "$LIB_TMP/$n.id")"
done

# ---- the cone lab ----
lab_up || { fail lab_up "cannot build the lab"; finish; }
SDB=$(tmp_dir)
if start_server; then pass rdv_nat_server_up; else fail rdv_nat_server_up "no 'listening on'"; show srv; finish; fi
R1=$(lab_nat_addr r1)
R2=$(lab_nat_addr r2)

# A first (registers, watches B and C), then B (connects to... nobody; A
# connects to B once B is online).
peer h1a A --register alice --watch "$ID_C" --connect "$ID_B" --relay-after 4
if wait_for "$LIB_TMP/A" "^up $R1:" 10 && wait_for "$LIB_TMP/A" '^registered alice: ok$' 5; then
	pass rdv_nat_a_registered_observed_r1
else
	fail rdv_nat_a_registered_observed_r1 "A not up at $R1 or not registered"; show A srv
fi
t=$(ms)
peer h2 B --register bob --watch "$ID_A"
if wait_for "$LIB_TMP/A" "^presence $ID_B online .*$R2:" 5; then
	pass rdv_nat_a_sees_b_online_5s
	note "A saw B online $(($(ms) - t)) ms after B started"
else
	fail rdv_nat_a_sees_b_online_5s "no presence online for B in A's log"; show A B
fi
if wait_for "$LIB_TMP/B" "^presence $ID_A online .*$R1:" 5; then
	pass rdv_nat_b_sees_a_online
else
	fail rdv_nat_b_sees_a_online "B's log"; show B
fi

# A -> B: introduction, direct session between the two NAT addresses.
if wait_for "$LIB_TMP/A" "^session $ID_B far $R2:" 10; then
	pass rdv_nat_a_session_far_is_r2
else
	fail rdv_nat_a_session_far_is_r2 "A's session to B"; show A B
fi
if wait_for "$LIB_TMP/B" "^session $ID_A far $R1:" 5; then
	pass rdv_nat_b_session_far_is_r1
else
	fail rdv_nat_b_session_far_is_r1 "B's session to A"; show B
fi
if wait_for "$LIB_TMP/B" '^received 100000 ok$' 15 && wait_for "$LIB_TMP/A" '^sent 100000$' 5; then
	pass rdv_nat_direct_data_intact
else
	fail rdv_nat_direct_data_intact "no 'received 100000 ok' in B / 'sent' in A"; show A B
fi
v=$(stats introductions)
if [ "${v:-0}" -ge 1 ] 2>/dev/null; then pass rdv_nat_introduced; else fail rdv_nat_introduced "introductions $v"; fi
v=$(stats relayed_bytes)
if [ "$v" = 0 ]; then pass rdv_nat_direct_relayed_bytes_0; else fail rdv_nat_direct_relayed_bytes_0 "relayed_bytes $v"; fi
if grep -q '^relay' "$LIB_TMP/A"; then fail rdv_nat_no_relay_asked "A: $(grep '^relay' "$LIB_TMP/A" | head -n 1)"; else pass rdv_nat_no_relay_asked; fi

# C on A's LAN connects to A: both use their LAN addresses.
peer h1b C --register carol --connect "$ID_A"
if wait_for "$LIB_TMP/C" "^session $ID_A far $(lab_addr h1a):" 15 &&
   wait_for "$LIB_TMP/A" "^session $ID_C far $(lab_addr h1b):" 5; then
	pass rdv_nat_same_lan_local_addresses
else
	fail rdv_nat_same_lan_local_addresses "want $(lab_addr h1a) / $(lab_addr h1b)"; show A C
fi
if wait_for "$LIB_TMP/A" '^received 100000 ok$' 15; then pass rdv_nat_same_lan_data_intact; else fail rdv_nat_same_lan_data_intact "A's log"; show A C; fi

# kill B: A sees it offline within 5 s; B again: online within 5 s.
t=$(ms)
kill "$PID_B"
if wait_for "$LIB_TMP/A" "^presence $ID_B offline" 5; then
	pass rdv_nat_a_sees_b_offline_5s
	note "A saw B offline $(($(ms) - t)) ms after the kill"
else
	fail rdv_nat_a_sees_b_offline_5s "A's log"; show A
fi
wait "$PID_B" 2>/dev/null
t=$(ms)
peer h2 B --register bob --watch "$ID_A"
if wait_for "$LIB_TMP/A" "^presence $ID_B online" 5 2; then
	pass rdv_nat_a_sees_b_back_5s
	note "A saw B back $(($(ms) - t)) ms after its start"
else
	fail rdv_nat_a_sees_b_back_5s "A's log"; show A
fi
wait_for "$LIB_TMP/B" '^registered bob: ok$' 5 2

# Restart the server: peers reconnect, re-register, re-watch by themselves.
nA=$(grep -c '^up ' "$LIB_TMP/A")
nB=$(grep -c '^up ' "$LIB_TMP/B")
nOn=$(grep -c "^presence $ID_B online" "$LIB_TMP/A")
kill "$SPID"
wait "$SPID" 2>/dev/null
if start_server; then pass rdv_nat_server_restarted; else fail rdv_nat_server_restarted "no 'listening on'"; show srv; fi
t=$(ms)
if wait_for "$LIB_TMP/A" '^up ' 20 $((nA + 1)) && wait_for "$LIB_TMP/B" '^up ' 10 $((nB + 1)); then
	pass rdv_nat_restart_peers_reconnect
	note "both peers back $(($(ms) - t)) ms after the server restarted"
else
	fail rdv_nat_restart_peers_reconnect "A or B did not reconnect"; show A B srv
fi
if wait_for "$LIB_TMP/A" "^presence $ID_B online" 10 $((nOn + 1)) &&
   wait_for "$LIB_TMP/A" '^registered alice: ok$' 5 2; then
	pass rdv_nat_restart_rewatch_online
else
	fail rdv_nat_restart_rewatch_online "A did not see B online again"; show A
fi
v=$(stats online)
if [ "$v" = 3 ]; then pass rdv_nat_restart_all_online; else fail rdv_nat_restart_all_online "online $v, want 3"; fi

# Refusals while the others stay served: garbage datagrams to the service
# and relay ports from h2, a taken name from a new peer on h1b.
RPORT=$(sed -n 's/^relay on .*:\([0-9]*\)$/\1/p' "$LIB_TMP/srv")
# shellcheck disable=SC2016 # expanded by the inner bash
lab_exec h2 bash -c 'for i in $(seq 100); do
	head -c $((1 + RANDOM % 1200)) /dev/urandom >/dev/udp/$1/$2
	head -c $((1 + RANDOM % 1200)) /dev/urandom >/dev/udp/$1/$3
done 2>/dev/null' _ "$(lab_addr pub)" 1935 "${RPORT:-1}"
LOAD=$BUILD/bench/rdv_load
run lab_exec h1b "$LOAD" --server "$(lab_addr pub):1935" --server-id "$SID" \
	--home "$LIB_TMP/D.home" --register alice --timeout 10
if [ "$RC" -ne 0 ] && printf '%s\n' "$OUT" | grep -q '^registered alice: the name is taken'; then
	pass rdv_nat_taken_name_refused
else
	fail rdv_nat_taken_name_refused "rdv_load: $OUT"; lib_show
fi
run lab_exec h2 "$LOAD" --server "$(lab_addr pub):1935" --server-id "$SID" \
	--home "$LIB_TMP/B2.home" --lookup alice --expect "$ID_A" --timeout 10
if [ "$RC" -eq 0 ] && kill -0 "$SPID" 2>/dev/null; then
	pass rdv_nat_served_after_garbage
else
	fail rdv_nat_served_after_garbage "lookup from h2: $OUT"; lib_show
fi
t=$(ms)
kill "$PID_B"
if wait_for "$LIB_TMP/A" "^presence $ID_B offline" 5 2; then
	pass rdv_nat_presence_after_garbage
else
	fail rdv_nat_presence_after_garbage "A did not see B offline"; show A
fi
v=$(stats relayed_bytes)
if [ "$v" = 0 ]; then pass rdv_nat_garbage_not_relayed; else fail rdv_nat_garbage_not_relayed "relayed_bytes $v"; fi
note "cone part took $((SECONDS - T0)) s"
lab_down
clean_logs nat srv A B C

# ---- the symmetric lab: random NAT ports on both routers -> relay ----
# (a subshell: its own lab, prefix and trap; its PASS/FAIL lines count)
T1=$SECONDS
for n in A B; do : >"$LIB_TMP/$n"; done
(
	lab_up --random-nat || { fail lab_up_random "cannot build the lab"; exit 1; }
	SDB=$(tmp_dir)
	start_server || { fail rdv_relay_server_up "no 'listening on'"; show srv; exit 1; }
	peer h1a A --watch "$ID_B" --connect "$ID_B" --relay-after 3
	peer h2 B --watch "$ID_A"
	if wait_for "$LIB_TMP/A" "^relay asked" 15; then
		pass rdv_relay_asked_when_no_direct_path
	else
		fail rdv_relay_asked_when_no_direct_path "A never asked"; show A B
	fi
	if wait_for "$LIB_TMP/A" "^relay $ID_B ready $(lab_addr pub):" 10 &&
	   wait_for "$LIB_TMP/B" "^relay $ID_A ready $(lab_addr pub):" 5; then
		pass rdv_relay_ready_both
	else
		fail rdv_relay_ready_both "no 'relay ... ready'"; show A B
	fi
	if wait_for "$LIB_TMP/A" "^session $ID_B far $(lab_addr pub):" 10 &&
	   wait_for "$LIB_TMP/B" "^session $ID_A far $(lab_addr pub):" 5; then
		pass rdv_relay_session_via_server
	else
		fail rdv_relay_session_via_server "sessions not through the relay"; show A B
	fi
	if wait_for "$LIB_TMP/B" '^received 100000 ok$' 20 && wait_for "$LIB_TMP/A" '^sent 100000$' 5; then
		pass rdv_relay_data_intact
	else
		fail rdv_relay_data_intact "no 'received 100000 ok'"; show A B
	fi
	v=$(stats relayed_bytes)
	if [ "${v:-0}" -gt 100000 ] 2>/dev/null; then
		pass rdv_relay_relayed_bytes
		note "relayed $v bytes in $(stats relayed_packets) datagrams"
	else
		fail rdv_relay_relayed_bytes "relayed_bytes $v"
	fi
	lab_down
	clean_logs relay srv A B
	[ "$LIB_FAILED" -eq 0 ]
) || LIB_FAILED=$((LIB_FAILED + 1))
note "relay part took $((SECONDS - T1)) s"

finish
