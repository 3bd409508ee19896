#!/usr/bin/env bash
# sys_rtmfp_tool.sh - two rtmfp-tool processes over loopback, in both
# crypto profiles: messages of 1 byte to 1 MiB on several flows arrive
# intact and in order (the sender checks every echo against what it sent),
# also with 10% and 30% of datagrams dropped each way (the sender's --drop
# drops that share of what it sends and of what it receives, so each
# direction of the path loses exactly that share; the listener drops
# nothing, else the two would compound to 19% and 51%); a listener that is
# killed mid-transfer makes the sender fail with a clear error, not hang.
. "$(dirname "$0")/lib.sh"

TOOL=$BUILD/rtmfp-tool
PIDS=()
cleanup_procs() {
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
}
trap 'cleanup_procs; chmod -R u+rwx "$LIB_TMP" 2>/dev/null; rm -rf "$LIB_TMP"' EXIT

# start_listener PROFILE NAME DROP -> sets LPORT, LPID, LOUT, LID (sodium peer id)
start_listener() {
	local profile=$1 name=$2 drop=$3 i limit=30
	# at 30% loss each way, backed-off retransmissions can all be lost for
	# 30 s: the session limit is raised so that the test is not a lottery
	[ "$drop" -ge 30 ] && limit=120
	drop=0 # the sender alone drops (see the top of the file)
	LOUT=$(mktemp "$LIB_TMP/listen.XXXXXX")
	for i in 1 2 3 4 5; do
		LPORT=$((20000 + RANDOM % 20000))
		"$TOOL" listen --profile "$profile" --name "$name" --port "$LPORT" --drop "$drop" \
			--retransmit-limit "$limit" \
			>"$LOUT" 2>"$LOUT.err" &
		LPID=$!
		PIDS+=("$LPID")
		for _ in $(seq 50); do
			grep -q '^listening on port' "$LOUT" && break
			kill -0 "$LPID" 2>/dev/null || break
			sleep 0.1
		done
		grep -q '^listening on port' "$LOUT" && break
	done
	LID=$(sed -n 's/^peer id \([0-9a-f]*\)$/\1/p' "$LOUT")
}

stop_listener() {
	kill "$LPID" 2>/dev/null
	wait "$LPID" 2>/dev/null
}

epd_for() { # PROFILE NAME
	if [ "$1" = plain ]; then echo "$2"; else echo "$LID"; fi
}

transfer() { # NAME PROFILE DROP COUNT SIZE FLOWS [--no-echo]
	local name=$1 profile=$2 drop=$3 count=$4 size=$5 flows=$6 echo=${7:-} got limit=30
	[ "$drop" -ge 30 ] && limit=120
	start_listener "$profile" server "$drop"
	run "$TOOL" send --profile "$profile" --name client --to "127.0.0.1:$LPORT" \
		--epd "$(epd_for "$profile" server)" --count "$count" --size "$size" \
		--flows "$flows" --drop "$drop" --timeout 500 --quiet --list --retransmit-limit "$limit" $echo
	stop_listener
	got=$(grep -c '^msg flow=' "$LOUT")
	# What the listener received, flow by flow and in order, is exactly what
	# the sender wrote (the sort is stable, so order within a flow stays).
	printf '%s\n' "$OUT" | sed -n 's/^sent \(flow=\)/\1/p' | sort -s -t' ' -k1,1 >"$LIB_TMP/sent"
	sed -n 's/^msg //p' "$LOUT" | sort -s -t' ' -k1,1 >"$LIB_TMP/got"
	if [ "$RC" -ne 0 ]; then
		fail "$name" "sender exit $RC"
		lib_show
	elif [ "$got" -ne "$count" ]; then
		fail "$name" "listener saw $got of $count messages"
	elif ! cmp -s "$LIB_TMP/sent" "$LIB_TMP/got"; then
		fail "$name" "messages differ or arrived out of order: $(diff "$LIB_TMP/sent" "$LIB_TMP/got" | head -3)"
	elif ! printf '%s\n' "$OUT" | grep -Eq 'goodput [0-9.]+ MB/s'; then
		fail "$name" "no goodput line"
		lib_show
	else
		pass "$name"
		printf '%s\n' "$OUT" | grep -v '^sent ' | sed 's/^/  /'
	fi
}

check_exit tool_help 0 "$TOOL" --help
check_exit tool_usage 2 "$TOOL" send --profile plain --name a
check_exit tool_bad_profile 2 "$TOOL" listen --profile rot13 --name a --port 1

# transfer NAME PROFILE DROP COUNT SIZES FLOWS [--no-echo]: sizes spread
# log-uniformly from 1 byte to 1 MiB (the first message is 1 byte, the
# second 1 MiB; 75 MB for 1,000 messages).  At 30% loss each way RFC 7016
# congestion control keeps the window near its floor, so those 75 MB take
# about a minute here.
for profile in plain sodium; do
	transfer "${profile}_1000_msgs_1B_to_1MiB_4_flows" "$profile" 0 1000 1-1048576 4
done
transfer sodium_drop10_echo sodium 10 1000 1-1048576 4
transfer plain_drop10_no_echo plain 10 1000 1-1048576 4 --no-echo
transfer sodium_drop30_1000_msgs_1B_to_1MiB sodium 30 1000 1-1048576 4 --no-echo
transfer plain_drop30_1000_msgs_1B_to_1MiB plain 30 1000 1-1048576 4 --no-echo

# A listener that vanishes: the sender must fail with a clear error.
start_listener sodium server 0
"$TOOL" send --profile sodium --name client --to "127.0.0.1:$LPORT" --epd "$LID" \
	--count 100000 --size 65536 --timeout 300 --quiet >"$LIB_TMP/v.out" 2>"$LIB_TMP/v.err" &
SPID=$!
PIDS+=("$SPID")
sleep 1
kill -9 "$LPID"
start=$SECONDS
wait "$SPID"
RC=$?
took=$((SECONDS - start))
if [ "$RC" -eq 1 ] && grep -q 'stopped answering' "$LIB_TMP/v.err" && [ "$took" -lt 120 ]; then
	pass "vanished_listener_detected_in_${took}s"
else
	fail vanished_listener "exit $RC after ${took}s: $(head -c 300 "$LIB_TMP/v.err")"
fi

finish
