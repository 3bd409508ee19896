#!/usr/bin/env bash
# sys_rtmfp_tool_exit.sh - rtmfp-tool at the edges of a run: a listener
# asked for port 0 says which port it got; a listener stopped while a
# sender's flows are still open frees everything (checked under valgrind,
# or by LeakSanitizer when $BUILD is a sanitizer build); a sender whose
# listener never answers says so and exits 1 at its --timeout.
. "$(dirname "$0")/lib.sh"

TOOL=$BUILD/rtmfp-tool
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done;
	chmod -R u+rwx "$LIB_TMP" 2>/dev/null; rm -rf "$LIB_TMP"' EXIT

# wait_listening FILE PID - until FILE has the "listening" line (10 s).
wait_listening() {
	for _ in $(seq 100); do
		grep -q '^listening on port' "$1" && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# 1. --port 0: the line names the port the kernel chose, and it works.
L="$LIB_TMP/l0"
"$TOOL" listen --profile plain --name srv --port 0 --quiet >"$L.out" 2>"$L.err" &
LPID=$!
PIDS+=("$LPID")
if wait_listening "$L.out" "$LPID"; then
	port=$(sed -n 's/^listening on port \([0-9]*\)$/\1/p' "$L.out")
	if [ -z "$port" ] || [ "$port" -eq 0 ]; then
		fail listen_port0_names_the_port "said: $(head -c 200 "$L.out")"
	else
		run "$TOOL" send --profile plain --name c --to "127.0.0.1:$port" --epd srv --count 3 \
			--size 100 --timeout 20 --quiet
		if [ "$RC" -eq 0 ]; then
			pass listen_port0_names_the_port
		else
			fail listen_port0_names_the_port "send to port $port: exit $RC"
			lib_show
		fi
	fi
else
	fail listen_port0_names_the_port "no listening line: $(head -c 200 "$L.err")"
fi
kill "$LPID" 2>/dev/null
wait "$LPID" 2>/dev/null

# 2. A listener stopped with flows open (the sender was killed mid-transfer)
# frees its per-flow echo state.
asan=0
if grep -aq __asan_init "$TOOL" 2>/dev/null; then
	asan=1
fi
# (valgrind cannot read the debug info of some clang builds: probe it first)
if [ "$asan" -eq 0 ] && ! { have valgrind && valgrind -q "$TOOL" --help >/dev/null 2>&1; }; then
	note "listener_exit_frees_open_flows skipped: no usable valgrind and not an ASan build"
else
	L="$LIB_TMP/l1"
	port=$((20000 + RANDOM % 20000))
	if [ "$asan" -eq 1 ]; then
		ASAN_OPTIONS=detect_leaks=1 "$TOOL" listen --profile plain --name srv --port "$port" \
			>"$L.out" 2>"$L.err" &
	else
		valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=9 \
			"$TOOL" listen --profile plain --name srv --port "$port" >"$L.out" 2>"$L.err" &
	fi
	LPID=$!
	PIDS+=("$LPID")
	if ! wait_listening "$L.out" "$LPID"; then
		fail listener_exit_frees_open_flows "no listening line: $(head -c 300 "$L.err")"
	else
		"$TOOL" send --profile plain --name c --to "127.0.0.1:$port" --epd srv --count 100000 \
			--size 2000 --flows 3 --timeout 60 --quiet >/dev/null 2>&1 &
		SPID=$!
		PIDS+=("$SPID")
		for _ in $(seq 100); do # until messages flow
			[ "$(grep -c '^msg ' "$L.out")" -gt 10 ] && break
			sleep 0.1
		done
		sleep 0.5
		kill -9 "$SPID" 2>/dev/null
		wait "$SPID" 2>/dev/null
		kill -TERM "$LPID"
		wait "$LPID"
		rc=$?
		if [ "$rc" -eq 0 ] && ! grep -q 'definitely lost\|LeakSanitizer' "$L.err"; then
			pass listener_exit_frees_open_flows
		else
			fail listener_exit_frees_open_flows "exit $rc: $(grep -m3 'definitely lost\|SUMMARY\|leak of' "$L.err")"
		fi
	fi
fi

# 3. Nobody answers at all: a clear message and exit 1 at the timeout.
run "$TOOL" send --profile plain --name c --to 127.0.0.1:9 --epd srv --count 1 --size 10 --timeout 2
if [ "$RC" -eq 1 ] && printf '%s\n' "$ERR" | grep -q 'no session with 127.0.0.1:9'; then
	pass sender_nobody_answers_exit_1
else
	fail sender_nobody_answers_exit_1 "exit $RC"
	lib_show
fi

finish
