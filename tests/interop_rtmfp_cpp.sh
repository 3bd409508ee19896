#!/usr/bin/env bash
# interop_rtmfp_cpp.sh - wire interop of $BUILD/rtmfp-tool (plain profile)
# with rtmfp-cpp (zenomt/rtmfp-cpp, PlainCryptoAdapter) on loopback.
#
#   tests/interop_rtmfp_cpp.sh /path/to/built/rtmfp-cpp
#
# The argument is an rtmfp-cpp tree already built by hand (librtmfp.a and
# test/server, test/testclient; see docs/PROTOCOL.md, "Interop check
# against rtmfp-cpp").  Not run by `make test` (CI has no network to fetch
# rtmfp-cpp); takes about a minute and a half.  Prints PASS/FAIL lines.
#
# Runs:
#   ref_client_to_listen   rtmfp-cpp test/testclient -> rtmfp-tool listen
#   ref_client_loss        the same with testclient -l 0.1 (10% of its
#                          datagrams replaced by empty ones)
#   send_to_ref_server     rtmfp-tool send --no-echo -> rtmfp-cpp test/server
#   send_to_ref_server_drop  the same with --drop 10
#   send_to_ref_echo_1flow rtmfp-tool send -> echo helper (echo checked)
#   send_to_ref_echo_4flows  the same with 4 flows, 1 B..100 kB messages
#   ref_send_to_listen     send helper -> rtmfp-tool listen (echo checked)
# The echo and send helpers (rtmfp-cpp has no plain-profile program that
# echoes, or that accepts return flows) are our own few lines of C++ below,
# compiled against the given tree into a temporary directory.
. "$(dirname "$0")/lib.sh"

REF=${1:-}
TOOL=$BUILD/rtmfp-tool
if [ -z "$REF" ] || [ ! -f "$REF/librtmfp.a" ] || [ ! -x "$REF/test/server" ] ||
   [ ! -x "$REF/test/testclient" ]; then
	fail interop_setup "usage: $0 RTMFP_CPP_DIR (built: librtmfp.a, test/server, test/testclient)"
	finish
fi
if [ ! -x "$TOOL" ]; then
	fail interop_setup "$TOOL is missing: make BUILD=$BUILD $TOOL"
	finish
fi
REF=$(cd "$REF" && pwd)

PIDS=()
stop_all() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	PIDS=()
}
trap 'stop_all; chmod -R u+rwx "$LIB_TMP" 2>/dev/null; rm -rf "$LIB_TMP"' EXIT

# ---- helpers linked against rtmfp-cpp (our code; plain profile) ----
HELP=$LIB_TMP/refhelper
cat >"$HELP.cpp" <<'EOF'
// refhelper: "echo PORT NAME" accepts every flow and echoes each message on
// a return flow; "send NAME DST ADDR PORT COUNT SIZE" writes COUNT messages
// of SIZE bytes on one flow, accepts the return flow, checks every echo,
// then shuts down with the close handshake.  Exit 0 when all came back.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include "rtmfp/PosixPlatformAdapter.hpp"
#include "rtmfp/PlainCryptoAdapter.hpp"
#include "rtmfp/RunLoops.hpp"
using namespace com::zenomt;
using namespace com::zenomt::rtmfp;

int main(int argc, char **argv)
{
	setvbuf(stdout, nullptr, _IOLBF, 0);
	bool echo = argc == 4 && !strcmp(argv[1], "echo");
	if(!echo && !(argc == 8 && !strcmp(argv[1], "send")))
		return 2;
	PreferredRunLoop rl;
	PosixPlatformAdapter platform(&rl);
	PlainCryptoAdapter crypto(echo ? argv[3] : argv[2]);
	auto rtmfp = share_ref(new RTMFP(&platform, &crypto), false);
	platform.setRtmfp(rtmfp.get());
	platform.onShutdownCompleteCallback = [&rl] { rl.stop(); };
	if(!platform.addUdpInterface(echo ? atoi(argv[2]) : 0, AF_INET))
		return 3;
	if(echo) {
		printf("ready\n");
		rtmfp->onRecvFlow = [] (std::shared_ptr<RecvFlow> f) {
			auto ret = f->openReturnFlow("echo", 4);
			f->setBufferCapacity(4 << 20);
			f->onMessage = [ret] (const uint8_t *p, size_t n, uintmax_t, size_t) {
				printf("msg size=%zu\n", n);
				ret->write(p, n);
			};
			f->onComplete = [ret] (bool) { ret->close(); };
			f->accept();
		};
		rl.run();
		return 0;
	}
	int count = atoi(argv[6]), size = atoi(argv[7]), done = 0, echoed = 0, bad = 0;
	Address to;
	if(!to.setFromPresentation(argv[4], false))
		return 2;
	to.setPort(atoi(argv[5]));
	Bytes msg(size);
	for(int i = 0; i < size; i++)
		msg[i] = uint8_t(i * 7 + 1);
	auto flow = rtmfp->openFlow(argv[3], strlen(argv[3]), "refhelper", 9);
	flow->setBufferCapacity(1 << 30);
	flow->addCandidateAddress(to, 0);
	auto finish = [&] {
		if(done == count && echoed == count) {
			flow->close();
			rtmfp->shutdown(false);
		}
	};
	for(int i = 0; i < count; i++)
		flow->write(msg.data(), msg.size())->onFinished = [&] (bool abn) { bad += abn; done++; finish(); };
	flow->onRecvFlow = [&] (std::shared_ptr<RecvFlow> r) {
		r->setBufferCapacity(4 << 20);
		r->onMessage = [&] (const uint8_t *p, size_t n, uintmax_t, size_t) {
			if(n == msg.size() && !memcmp(p, msg.data(), n)) echoed++; else bad++;
			finish();
		};
		r->accept();
	};
	rl.scheduleRel(Timer::makeAction([&rl] { rl.stop(); }), 40, 0);
	rl.run();
	platform.close();
	printf("sent %d acked %d echoed %d bad %d\n", count, done, echoed, bad);
	return !(done == count && echoed == count && !bad);
}
EOF
if ! ${CXX:-g++} -std=c++11 -O1 -w -I"$REF/include" -o "$HELP" "$HELP.cpp" "$REF/librtmfp.a" \
	>"$LIB_TMP/cxx.log" 2>&1; then
	note "cannot build the echo/send helpers: $(head -3 "$LIB_TMP/cxx.log")"
	HELP=
fi

free_port() {
	echo $((20000 + RANDOM % 20000))
}

# wait_line FILE REGEX: up to 5 s for a line to appear.
wait_line() {
	for _ in $(seq 50); do
		grep -qE "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# ---- rtmfp-cpp client -> our listener ----
ref_client_to_listen() {
	local name=$1 loss=$2 port out cout
	port=$(free_port)
	out=$LIB_TMP/$name.listen
	cout=$LIB_TMP/$name.client
	"$TOOL" listen --profile plain --name server --port "$port" >"$out" 2>"$out.err" &
	PIDS+=($!)
	if ! wait_line "$out" '^listening on port'; then
		fail "$name" "listener did not start: $(head -2 "$out.err")"
		stop_all
		return
	fi
	# testclient: two flows of 60 x 4096 zero bytes plus one 5-byte message,
	# then an abrupt shutdown (Close Ack) at 30 s.
	timeout 45 "$REF/test/testclient" -4 -l "$loss" -n client server 127.0.0.1 "$port" >"$cout" 2>&1
	local rc=$? msgs ok big small
	msgs=$(grep -c '^msg ' "$out")
	big=$(grep -c '^msg flow=[0-9]* size=4096 blake2b=686ede9288c391e7e05026e56f2f91bfd879987a040ea98445dabc76f55b8e5f$' "$out")
	small=$(grep -c '^msg flow=[0-9]* size=5 ' "$out")
	ok=$(grep -c '^onFinished .*(0)' "$cout")
	if [ "$rc" = 0 ] && [ "$msgs" = 121 ] && [ "$big" = 120 ] && [ "$small" = 1 ] && [ "$ok" = 120 ] &&
	   grep -q '^early onFinished (0)' "$cout" && grep -q 'shutdown complete' "$cout"; then
		pass "$name"
	else
		fail "$name" "testclient rc=$rc, listener got $msgs messages ($big x 4096 intact, $small x 5), testclient saw $ok acknowledged"
	fi
	stop_all
}

# ---- our sender -> rtmfp-cpp server (no echo: test/server does not echo) ----
send_to_ref_server() {
	local name=$1 drop=$2 port out sout
	port=$(free_port)
	out=$LIB_TMP/$name.server
	sout=$LIB_TMP/$name.send
	stdbuf -oL "$REF/test/server" -4 -p "$port" -n server >"$out" 2>&1 &
	PIDS+=($!)
	if ! wait_line "$out" '^got port'; then
		fail "$name" "test/server did not start: $(head -2 "$out")"
		stop_all
		return
	fi
	# test/server keeps its receive window at 0 for 3 s: buffer probes first.
	"$TOOL" send --profile plain --name client --to "127.0.0.1:$port" --epd server \
		--count 300 --size 1-20000 --flows 4 --no-echo --drop "$drop" --timeout 60 >"$sout" 2>&1
	local rc=$? got complete
	sleep 0.2
	got=$(grep -c '^onMessage' "$out")
	complete=$(grep -c '^flow complete ok' "$out")
	if [ "$rc" = 0 ] && [ "$got" = 300 ] && [ "$complete" = 4 ]; then
		pass "$name"
	else
		fail "$name" "rtmfp-tool rc=$rc, test/server got $got messages, $complete of 4 flows complete: $(tail -2 "$sout")"
	fi
	stop_all
}

# ---- our sender -> echo helper ----
send_to_ref_echo() {
	local name=$1 flows=$2 size=$3 count=$4 port out sout
	if [ -z "$HELP" ]; then
		note "$name skipped (no helper)"
		return
	fi
	port=$(free_port)
	out=$LIB_TMP/$name.echo
	sout=$LIB_TMP/$name.send
	"$HELP" echo "$port" server >"$out" 2>&1 &
	PIDS+=($!)
	if ! wait_line "$out" '^ready'; then
		fail "$name" "echo helper did not start"
		stop_all
		return
	fi
	"$TOOL" send --profile plain --name client --to "127.0.0.1:$port" --epd server \
		--count "$count" --size "$size" --flows "$flows" --timeout 20 >"$sout" 2>&1
	local rc=$?
	if [ "$rc" = 0 ]; then
		pass "$name"
	else
		fail "$name" "rtmfp-tool rc=$rc, helper got $(grep -c '^msg' "$out") of $count: $(tail -1 "$sout")"
	fi
	stop_all
}

# ---- send helper -> our listener (echo on a return flow, checked) ----
ref_send_to_listen() {
	local name=$1 port out
	if [ -z "$HELP" ]; then
		note "$name skipped (no helper)"
		return
	fi
	port=$(free_port)
	out=$LIB_TMP/$name.listen
	"$TOOL" listen --profile plain --name server --port "$port" >"$out" 2>"$out.err" &
	PIDS+=($!)
	if ! wait_line "$out" '^listening on port'; then
		fail "$name" "listener did not start: $(head -2 "$out.err")"
		stop_all
		return
	fi
	run "$HELP" send client server 127.0.0.1 "$port" 300 20000
	if [ "$RC" = 0 ] && [ "$(grep -c '^msg .*size=20000 ' "$out")" = 300 ]; then
		pass "$name"
	else
		fail "$name" "helper rc=$RC: $OUT"
	fi
	stop_all
}

send_to_ref_server send_to_ref_server 0
send_to_ref_server send_to_ref_server_drop 10
send_to_ref_echo send_to_ref_echo_1flow 1 3000 200
send_to_ref_echo send_to_ref_echo_4flows 4 1-100000 200
ref_send_to_listen ref_send_to_listen
ref_client_to_listen ref_client_to_listen 0
ref_client_to_listen ref_client_loss 0.1
finish
