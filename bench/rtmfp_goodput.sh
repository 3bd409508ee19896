#!/usr/bin/env bash
# rtmfp_goodput.sh - goodput of the RTMFP transport on loopback, sodium
# profile, datagrams no larger than on the internet (<= 1,280 bytes), one
# flow and four flows, loss-free and with 1% of datagrams dropped each way,
# each printed with its ratio to one TCP stream moved in the same run.
#
#   BUILD=build bash bench/rtmfp_goodput.sh [MiB]     (default 1024)
set -u
: "${BUILD:=build}"
MIB=${1:-1024}
TOOL=$BUILD/rtmfp-tool
MSG=1048576
COUNT=$MIB
tmp=$(mktemp -d)
lpid=
trap '[ -n "$lpid" ] && kill "$lpid" 2>/dev/null; rm -rf "$tmp"' EXIT

tcp=$("$BUILD/bench/tcp_stream" "$MIB" | sed -n 's/.*: \([0-9.]*\) MB\/s$/\1/p')
echo "tcp stream over loopback: $tcp MB/s"

run() { # LABEL FLOWS DROP
	local label=$1 flows=$2 drop=$3 port mbs
	port=$((30000 + RANDOM % 20000))
	"$TOOL" listen --profile sodium --port "$port" --quiet >"$tmp/l" 2>"$tmp/l.err" &
	lpid=$!
	# up to 30 s: on a busy machine the listener can take seconds to start
	for _ in $(seq 300); do
		grep -q '^listening' "$tmp/l" && break
		kill -0 "$lpid" 2>/dev/null || break # it exited (port taken?)
		sleep 0.1
	done
	id=$(sed -n 's/^peer id //p' "$tmp/l")
	if [ -z "$id" ] || ! grep -q '^listening' "$tmp/l"; then
		echo "$label: failed (the listener did not start: $(head -c 200 "$tmp/l.err"))"
		kill "$lpid" 2>/dev/null
		wait "$lpid" 2>/dev/null
		lpid=
		return 1
	fi
	out=$("$TOOL" send --profile sodium --to "127.0.0.1:$port" --epd "$id" --count "$COUNT" \
		--size "$MSG" --flows "$flows" --no-echo --drop "$drop" --timeout 600 --quiet)
	kill "$lpid" 2>/dev/null
	wait "$lpid" 2>/dev/null
	lpid=
	mbs=$(printf '%s\n' "$out" | sed -n 's/.*goodput \([0-9.]*\) MB\/s.*/\1/p')
	retx=$(printf '%s\n' "$out" | sed -n 's/^retransmissions \([0-9]*\).*/\1/p')
	if [ -z "$mbs" ]; then
		echo "$label: failed"
		return 1
	fi
	awk -v l="$label" -v m="$mbs" -v t="$tcp" -v r="$retx" \
		'BEGIN { printf "%-30s %8.1f MB/s  %5.2fx tcp  retransmissions %s\n", l, m, m / t, r }'
	eval "R_$4=$mbs"
}

rc=0
run "rtmfp sodium, 1 flow" 1 0 one || rc=1
run "rtmfp sodium, 4 flows" 4 0 four || rc=1
run "rtmfp sodium, 1 flow, drop 1%" 1 1 drop || rc=1
if [ -n "${R_one:-}" ] && [ -n "${R_drop:-}" ]; then
	awk -v d="$R_drop" -v o="$R_one" 'BEGIN { printf "with 1%% drop: %.2fx the loss-free figure\n", d / o }'
fi
exit $rc
