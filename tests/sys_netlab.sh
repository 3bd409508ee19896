#!/usr/bin/env bash
# sys_netlab.sh - self-test of tests/netlab.sh, the namespace NAT lab: the
# lab comes up with the promised addresses and rules; every host reaches
# pub, through its router's NAT; the two hosts of one LAN reach each other
# directly; unsolicited UDP from the public side does not reach a LAN host;
# plain masquerade keeps the source port for every destination (cone-like),
# "masquerade random" changes it per destination; a simultaneous UDP hole
# punch between two NATed hosts crosses with plain masquerade and fails with
# random; a second lab runs beside the first; lab_down, a failing test and a
# killed test all leave no namespace and no process behind.
#
# The UDP checks use a small python3 helper (no project tool does this yet);
# without python3 they are skipped with a note.  Needs root, ip, nft,
# nsenter: otherwise the whole script is skipped with a note.
# shellcheck disable=SC2317 # functions called through check()
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netlab.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

if ! lab_check; then
	note "skipping netlab tests: $LAB_SKIP"
	finish
fi

# A python3 for the UDP helper.  Debian's own first: the pyenv shim costs
# a second per start.  NETLAB_PYTHON=PATH picks one; NETLAB_PYTHON=none
# tries the path without python.
PY=
if [ -n "${NETLAB_PYTHON:-}" ]; then
	PYS=("$NETLAB_PYTHON")
else
	PYS=(/usr/bin/python3 "$(command -v python3 2>/dev/null)")
fi
for p in "${PYS[@]}"; do
	if [ -n "$p" ] && [ -x "$p" ] && "$p" -c 'import socket, select' 2>/dev/null; then
		PY=$p
		break
	fi
done
UDP=$LIB_TMP/udp.py
cat >"$UDP" <<'EOF'
# udp.py - UDP probes for sys_netlab.sh.  Addresses are "ip port" text.
#   echo PORT...              answer every datagram with its source "ip port"
#   ask LPORT IP PORT         from local LPORT (0: any) ask an echo server,
#                             print the answer (our address as it saw us)
#   listen PORT SECS          print "ready" once bound, then "got IP PORT"
#                             for the first datagram within SECS (exit 0),
#                             else "none" (exit 1)
#   send LPORT IP PORT N      send N datagrams, 50 ms apart
#   punch LPORT IP PORT SECS  send to IP PORT every 50 ms while listening;
#                             on the first datagram from IP print "ok IP PORT",
#                             send 5 more (so the peer hears us) and exit 0;
#                             "fail" and exit 1 after SECS
import select, socket, sys, time

def sock(port):
	s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	s.bind(("0.0.0.0", port))
	return s

def main(a):
	if a[0] == "echo":
		socks = [sock(int(p)) for p in a[1:]]
		end = time.time() + 120
		while time.time() < end:
			r, _, _ = select.select(socks, [], [], 1)
			for s in r:
				d, src = s.recvfrom(2048)
				s.sendto(("%s %d" % src).encode(), src)
		return 0
	if a[0] == "ask":
		s = sock(int(a[1]))
		dst = (a[2], int(a[3]))
		for _ in range(10):
			s.sendto(b"ask", dst)
			r, _, _ = select.select([s], [], [], 0.3)
			if r:
				d, src = s.recvfrom(2048)
				if src == dst:
					print(d.decode())
					return 0
		return 1
	if a[0] == "listen":
		s = sock(int(a[1]))
		print("ready", flush=True)
		r, _, _ = select.select([s], [], [], float(a[2]))
		if r:
			d, src = s.recvfrom(2048)
			print("got %s %d" % src)
			return 0
		print("none")
		return 1
	if a[0] == "send":
		s = sock(int(a[1]))
		for _ in range(int(a[4])):
			s.sendto(b"hello", (a[2], int(a[3])))
			time.sleep(0.05)
		return 0
	if a[0] == "punch":
		s = sock(int(a[1]))
		dst = (a[2], int(a[3]))
		end = time.time() + float(a[4])
		while time.time() < end:
			s.sendto(b"punch", dst)
			r, _, _ = select.select([s], [], [], 0.05)
			if not r:
				continue
			d, src = s.recvfrom(2048)
			if src[0] != dst[0]:
				continue
			for _ in range(5):
				s.sendto(b"punch", dst)
				time.sleep(0.05)
			print("ok %s %d" % src)
			return 0
		print("fail")
		return 1
	return 2

sys.exit(main(sys.argv[1:]))
EOF

# udp NODE ARGS... - run the helper in NODE; output in $OUT, status in $RC.
udp() {
	local node=$1
	shift
	run lab_exec "$node" "$PY" "$UDP" "$@"
}

# ns_of_prefix PREFIX - the namespaces whose name starts with PREFIX.
ns_of_prefix() {
	ip netns list | cut -d' ' -f1 | grep -c "^$1"
}

ECHO_A=7000
ECHO_B=7001

# cone_checks - everything but the random-NAT cases, on the lab that is up.
cone_checks() {
	local pub r1 r2 h a b

	pub=$(lab_addr pub)
	r1=$(lab_nat_addr r1)
	r2=$(lab_nat_addr r2)
	lab_bg pub "$PY" "$UDP" echo $ECHO_A $ECHO_B >/dev/null 2>&1
	lab_bg h1b "$PY" "$UDP" echo $ECHO_A >/dev/null 2>&1

	for h in h1a h1b h2 h2b pub2; do
		udp "$h" ask 0 "$pub" $ECHO_A
		if [ "$RC" -ne 0 ]; then
			fail "reach_pub_$h" "no echo from pub"
			lib_show
			continue
		fi
		pass "reach_pub_$h"
		a=$(lab_nat_addr "$h")
		if [ "${OUT% *}" = "$a" ]; then
			pass "nat_source_$h"
		else
			fail "nat_source_$h" "pub saw ${OUT% *}, want $a"
		fi
	done

	# Same LAN: h1b sees h1a's own address, no NAT in between.
	udp h1a ask 0 "$(lab_addr h1b)" $ECHO_A
	if [ "$RC" -eq 0 ] && [ "${OUT% *}" = "$(lab_addr h1a)" ]; then
		pass same_lan_direct
	else
		fail same_lan_direct "h1b saw '$OUT', want $(lab_addr h1a)"
		lib_show
	fi

	# Cone-like mapping: the port is kept, whatever the destination.
	udp h1a ask 41000 "$pub" $ECHO_A
	a=$OUT
	udp h1a ask 41000 "$pub" $ECHO_B
	b=$OUT
	if [ "$a" = "$r1 41000" ] && [ "$b" = "$r1 41000" ]; then
		pass cone_port_kept
	else
		fail cone_port_kept "mapped '$a' and '$b', want '$r1 41000' twice"
	fi

	# Unsolicited: nothing reaches h1a without a mapping; with a mapping
	# to pub:ECHO_A, a datagram from another port of pub does not either
	# (filtering depends on address and port, so peers must punch).  The
	# control: one from pub:ECHO_A itself does arrive.
	udp h1a ask 41001 "$pub" $ECHO_A
	udp h1a ask 41002 "$pub" $ECHO_A
	listen_start h1a 41010 l1
	listen_start h1a 41001 l2
	listen_start h1a 41002 l3
	udp pub send 7002 "$r1" 41010 5
	udp pub send 7002 "$r1" 41001 5
	udp pub send $ECHO_A "$r1" 41002 5
	wait "${LPID[l1]}" "${LPID[l2]}" "${LPID[l3]}"
	if grep -qx none "$LIB_TMP/l1"; then
		pass unsolicited_dropped
	else
		fail unsolicited_dropped "h1a: $(cat "$LIB_TMP/l1")"
	fi
	if grep -qx none "$LIB_TMP/l2"; then
		pass other_port_dropped
	else
		fail other_port_dropped "h1a: $(cat "$LIB_TMP/l2")"
	fi
	if grep -qx "got $pub $ECHO_A" "$LIB_TMP/l3"; then
		pass mapped_port_reaches
	else
		fail mapped_port_reaches "h1a: $(cat "$LIB_TMP/l3")"
	fi

	# Hole punch: each side learns its mapping from pub, then both punch
	# at once to the other's mapping.
	punch_pair 42001 42002
	if [ "$P1" = "ok $r2 42002" ] && [ "$P2" = "ok $r1 42001" ]; then
		pass punch_cone
	else
		fail punch_cone "h1a: '$P1', h2: '$P2'"
	fi
}

# listen_start NODE PORT NAME - a listener for 2 s in NODE on PORT, output
# in $LIB_TMP/NAME, pid in ${LPID[NAME]}; returns once it is bound.
declare -A LPID=()
listen_start() {
	local f=$LIB_TMP/$3
	lab_bg "$1" "$PY" "$UDP" listen "$2" 2 >"$f" 2>&1
	LPID[$3]=$LAB_PID
	for _ in $(seq 100); do
		grep -qx ready "$f" && return 0
		sleep 0.05
	done
}

# punch_pair PORT1 PORT2 - h1a (PORT1) and h2 (PORT2) ask pub for their
# mappings, then punch to each other's at once; results in P1, P2.
punch_pair() {
	local o1 o2 pid1 pid2
	P1=
	P2=
	udp h1a ask "$1" "$(lab_addr pub)" $ECHO_A
	o1=$OUT
	udp h2 ask "$2" "$(lab_addr pub)" $ECHO_A
	o2=$OUT
	if [ -z "$o1" ] || [ -z "$o2" ]; then
		P1="no mapping ($o1)"
		P2="no mapping ($o2)"
		return
	fi
	lab_bg h1a "$PY" "$UDP" punch "$1" "${o2% *}" "${o2#* }" 3 >"$LIB_TMP/p1" 2>&1
	pid1=$LAB_PID
	lab_bg h2 "$PY" "$UDP" punch "$2" "${o1% *}" "${o1#* }" 3 >"$LIB_TMP/p2" 2>&1
	pid2=$LAB_PID
	wait "$pid1" "$pid2"
	P1=$(cat "$LIB_TMP/p1")
	P2=$(cat "$LIB_TMP/p2")
}

# random_checks - on a lab with "masquerade random" on both routers.
random_checks() {
	local pub r1 a b
	pub=$(lab_addr pub)
	r1=$(lab_nat_addr r1)
	lab_bg pub "$PY" "$UDP" echo $ECHO_A $ECHO_B >/dev/null 2>&1
	udp h1a ask 43000 "$pub" $ECHO_A
	a=$OUT
	udp h1a ask 43000 "$pub" $ECHO_B
	b=$OUT
	if [ -n "$a" ] && [ -n "$b" ] && [ "${a% *}" = "$r1" ] &&
	   [ "${b% *}" = "$r1" ] && [ "$a" != "$b" ]; then
		pass random_port_per_destination
	else
		fail random_port_per_destination "mapped '$a' and '$b' from $r1 43000"
	fi
	punch_pair 43001 43002
	if [ "$P1" = fail ] && [ "$P2" = fail ]; then
		pass punch_random_fails
	else
		fail punch_random_fails "h1a: '$P1', h2: '$P2' (want fail twice)"
	fi
}

# only_lab_addresses - every IPv4 address in the lab is loopback or in
# 198.18.0.0/15.
only_lab_addresses() {
	local n bad=
	for n in $(lab_nodes); do
		bad+=$(ip -n "$(lab_ns "$n")" -4 -o addr show |
			awk '{print $4}' | grep -Ev '^(127\.|198\.1[89]\.)')
	done
	[ -z "$bad" ] || { echo "stray addresses: $bad" >&2; return 1; }
}

# rules_ok ROUTER WANT_RANDOM - the router forwards, masquerades on wan the
# asked way and drops unsolicited input.
rules_ok() {
	local rs
	rs=$(lab_exec "$1" nft list ruleset) || return 1
	[ "$(lab_exec "$1" cat /proc/sys/net/ipv4/ip_forward)" = 1 ] || return 1
	printf '%s\n' "$rs" | grep -q 'chain input' || return 1
	printf '%s\n' "$rs" | grep -q 'hook input priority filter; policy drop;' ||
		return 1
	if [ "$2" = 1 ]; then
		printf '%s\n' "$rs" | grep -q 'oifname "wan" masquerade random'
	else
		printf '%s\n' "$rs" | grep -qx $'\t\toifname "wan" masquerade'
	fi
}

# $CHILD HOW FILE - a separate bash builds a lab, starts a sleeper in h1a,
# writes "PREFIX PID LAB_DIR" to FILE, then ends as HOW says: "fail" exits
# 1, "kill" waits to be killed.
CHILD=$LIB_TMP/child.sh
cat >"$CHILD" <<EOF
. "$HERE/lib.sh"
. "$HERE/netlab.sh"
lab_up || exit 2
lab_bg h1a sleep 60
echo "\$LAB_PREFIX \$LAB_PID \$LAB_DIR" >"\$2.tmp" && mv "\$2.tmp" "\$2"
[ "\$1" = fail ] && exit 1
sleep 30
EOF

# left_behind PREFIX PID - print what of a lab is still there.
left_behind() {
	local n
	n=$(ns_of_prefix "$1")
	[ "$n" -eq 0 ] || echo "$n namespaces"
	if running "$2"; then echo "process $2"; fi
}

# running PID - true when PID still runs after up to 2 s (a zombie waiting
# for init to reap it does not count).
running() {
	local st
	for _ in $(seq 20); do
		read -r st 2>/dev/null <"/proc/$1/stat" || return 1
		st=${st##*) }
		[ "${st%% *}" = Z ] && return 1
		sleep 0.1
	done
	return 0
}

# --- the cone lab ------------------------------------------------------
T0=$SECONDS
if ! lab_up; then
	fail lab_up "cannot build the lab"
	finish
fi
pass lab_up
FIRST=$LAB_PREFIX
note "lab $FIRST up in $((SECONDS - T0)) s"
n=$(ns_of_prefix "$FIRST")
if [ "$n" -eq 7 ]; then pass lab_namespaces; else fail lab_namespaces "$n namespaces, want 7"; fi
NFIRST=9	# after lab_add_host below
check lab_addresses_only_benchmarking only_lab_addresses
check_out lab_addr_h1a '^198\.19\.1\.10$' lab_addr h1a
check_out lab_addr_h2 '^198\.19\.2\.10$' lab_addr h2
check_out lab_addr_pub '^198\.18\.0\.10$' lab_addr pub
check_out lab_nat_addr_r1 '^198\.18\.0\.101$' lab_nat_addr r1
check_out lab_nat_addr_h2 '^198\.18\.0\.102$' lab_nat_addr h2
check_out h1a_default_route '^default via 198\.19\.1\.1 ' lab_exec h1a ip route show default
check rules_r1_cone rules_ok r1 0
check rules_r2_cone rules_ok r2 0
check_fails lab_exec_unknown_node lab_exec nosuch true
check_fails lab_addr_unknown_node lab_addr nosuch
check_fails lab_nat_addr_unknown_node lab_nat_addr nosuch
check lab_add_host_pub lab_add_host pub2 pub
check lab_add_host_r2 lab_add_host h2b r2
check_fails lab_add_host_twice lab_add_host h2b r2
check_fails lab_add_host_bad_segment lab_add_host h3 r9
check_out lab_add_host_pub_addr '^198\.18\.0\.11$' lab_addr pub2
check_out lab_add_host_r2_addr '^198\.19\.2\.11$' lab_addr h2b
check_out lab_add_host_r2_nat '^198\.18\.0\.102$' lab_nat_addr h2b
check_fails lab_up_twice lab_up
# nsenter --net keeps our mount namespace: a file only we can see through
# our mounts is visible to the command.
check lab_exec_sees_caller_files lab_exec h1a test -d "$LIB_TMP"
if [ "$(lab_exec h1a readlink /proc/self/ns/mnt)" = "$(readlink /proc/self/ns/mnt)" ]; then
	pass lab_exec_mount_namespace
else
	fail lab_exec_mount_namespace "lab_exec gave a different mount namespace"
fi

if [ -n "$PY" ]; then
	cone_checks
else
	note "no python3: UDP checks (reachability, NAT, punching) skipped"
fi

# --- a second lab, random NAT, beside the first (in a subshell) ----------
(
	if ! lab_up --random-nat; then
		fail lab_up_second "cannot build a second lab"
		exit 1
	fi
	pass lab_up_second
	if [ "$LAB_PREFIX" != "$FIRST" ] && [ "$(ns_of_prefix "$LAB_PREFIX")" -eq 7 ] &&
	   [ "$(ns_of_prefix "$FIRST")" -eq "$NFIRST" ]; then
		pass two_labs_side_by_side
	else
		fail two_labs_side_by_side "prefixes $FIRST $LAB_PREFIX"
	fi
	check rules_r1_random rules_ok r1 1
	check rules_r2_random rules_ok r2 1
	if [ -n "$PY" ]; then
		random_checks
	fi
	second=$LAB_PREFIX
	lab_down
	n=$(ns_of_prefix "$second")
	if [ "$n" -eq 0 ] && [ "$(ns_of_prefix "$FIRST")" -eq "$NFIRST" ]; then
		pass second_lab_down_keeps_first
	else
		fail second_lab_down_keeps_first "$n namespaces of $second left"
	fi
	[ "$LIB_FAILED" -eq 0 ]
) || LIB_FAILED=$((LIB_FAILED + 1))

# lab_set_nat switches a router at run time.
check lab_set_nat_random lab_set_nat r1 random
check rules_r1_switched rules_ok r1 1
check lab_set_nat_cone lab_set_nat r1 cone
check_fails lab_set_nat_bad lab_set_nat h1a cone

# --- teardown ---------------------------------------------------------
lab_bg h2 sleep 60
PIDS=$(cat "$LAB_DIR/pids")
lab_down
left=
for p in $PIDS; do
	running "$p" && left+=" $p"
done
n=$(ns_of_prefix "$FIRST")
if [ "$n" -eq 0 ] && [ -z "$left" ]; then
	pass lab_down_clean
else
	fail lab_down_clean "$n namespaces, processes:$left"
fi
check lab_down_again lab_down

# A test that fails (exits 1) and one that is killed (SIGTERM to its
# process group, as timeout(1) does) both leave nothing behind.
F=$LIB_TMP/child-fail
bash "$CHILD" fail "$F" >/dev/null 2>&1
read -r pre pid <"$F" 2>/dev/null
if [ -n "${pre:-}" ] && [ -z "$(left_behind "$pre" "$pid")" ]; then
	pass cleanup_on_failure
else
	fail cleanup_on_failure "left: $(left_behind "${pre:-none}" "${pid:-0}")"
fi

F=$LIB_TMP/child-kill
setsid bash "$CHILD" kill "$F" >/dev/null 2>&1 &
cpid=$!
for _ in $(seq 100); do
	[ -e "$F" ] && break
	sleep 0.1
done
kill -TERM -- "-$cpid" 2>/dev/null
wait "$cpid" 2>/dev/null
read -r pre pid <"$F" 2>/dev/null
if [ -n "${pre:-}" ] && [ -z "$(left_behind "$pre" "$pid")" ]; then
	pass cleanup_on_kill
else
	fail cleanup_on_kill "left: $(left_behind "${pre:-none}" "${pid:-0}")"
fi

# A test killed with SIGKILL cannot clean up: lab_gc removes its lab
# (namespaces, processes, state directory) and nothing else.
F=$LIB_TMP/child-sigkill
setsid bash "$CHILD" kill "$F" >/dev/null 2>&1 &
cpid=$!
for _ in $(seq 100); do
	[ -e "$F" ] && break
	sleep 0.1
done
# (braces: bash reports the killed job on its own stderr)
{ kill -KILL -- "-$cpid"; wait "$cpid"; } 2>/dev/null
read -r pre pid dir <"$F" 2>/dev/null
# (A parallel run's lab_gc may collect it first: the check holds either way.)
if [ -n "${pre:-}" ]; then
	ip netns add "netlab-keep-$$"
	lab_gc
	left=$(left_behind "$pre" "$pid")
	[ -d "$dir" ] && left+=" dir $dir"
	if [ -z "$left" ] && ip netns list | grep -q "^netlab-keep-$$"; then
		pass lab_gc_after_sigkill
	else
		fail lab_gc_after_sigkill "left: $left; netlab-keep-$$ there: $(ip netns list | grep -c "^netlab-keep-$$")"
	fi
	ip netns del "netlab-keep-$$" 2>/dev/null
else
	fail lab_gc_after_sigkill "the killed child did not report its lab"
fi

note "sys_netlab took $((SECONDS - T0)) s"
finish
