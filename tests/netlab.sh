# netlab.sh - a small internet made of network namespaces, for system tests
# that need NATs (rendezvous, introductions, hole punching, relay, FUSE over
# NAT).  Source it after lib.sh:
#
#   . "$(dirname "$0")/lib.sh"
#   . "$(dirname "$0")/netlab.sh"
#   lab_check || { note "skipping: $LAB_SKIP"; finish; }
#   lab_up || { fail lab_up "cannot build the lab"; finish; }
#   lab_bg pub "$BUILD/buddyfs-rendezvous" --listen "$(lab_addr pub):1935"
#   lab_exec h1a "$BUILD/buddyfs" ...
#
# Topology (docs: /work/drafts/netlab.md):
#
#                 pub 198.18.0.10
#                      |
#      [inet: bridge "br0", 198.18.0.0/24, the public segment]
#            |                                  |
#   r1 wan 198.18.0.101                  r2 wan 198.18.0.102
#   r1 lan 198.19.1.1/24                 r2 lan 198.19.2.1/24
#      |            |                           |
#   h1a .1.10    h1b .1.11                   h2 .2.10
#
# Every node is a namespace named "$LAB_PREFIX<node>" (prefix unique per
# run, so parallel runs never collide).  Every interface is created inside
# its namespace, so nothing is added to the caller's namespace and two labs
# may use the same addresses.  A router forwards LAN -> wan with nftables
# masquerade ("masquerade random" for a symmetric NAT) and drops every
# unsolicited packet from the wan side, to itself or forwarded, as a home
# router does.  Only 198.18.0.0/15 is used, plus loopback.
#
# Functions:
#   lab_check                  0 when a lab can be built here; else 1 and the
#                              reason in $LAB_SKIP (the caller skips)
#   lab_up [--random-nat[=r1,r2]]  build the lab; random mapping on both
#                              routers, or on the listed ones.  Installs a
#                              trap (EXIT, INT, TERM, HUP) that runs lab_down
#                              and then the trap that was there before
#   lab_exec NODE CMD...       run CMD in NODE's network namespace only
#                              (nsenter --net): the caller's mount namespace,
#                              files and FUSE mounts stay the same
#   lab_bg NODE CMD...         the same in the background; pid in $LAB_PID,
#                              killed by lab_down.  Call it directly, not in
#                              $(...); redirect its output as for any command
#   lab_addr NODE              a node's address (a router's: its LAN side)
#   lab_nat_addr NODE          the public address a node is seen from: a
#                              router's wan address, a host's router's, pub's own
#   lab_ns NODE                the namespace name (for ip -n, ip netns pids)
#   lab_nodes                  the nodes, one a line
#   lab_set_nat ROUTER cone|random   change a router's mapping; flows that
#                              already have a conntrack entry keep theirs
#   lab_add_host NAME SEGMENT  one more host on SEGMENT (pub, r1 or r2); its
#                              address from lab_addr NAME
#   lab_down                   kill the lab's processes, delete its
#                              namespaces; idempotent, safe to call anywhere
#   lab_gc                     delete namespaces left by runs that were
#                              killed with SIGKILL (their creating shell is
#                              gone); touches only names made by lab_up
#
# One lab per shell: to run a second lab at the same time, call lab_up in a
# subshell "( lab_up ...; ...; lab_down )"; it gets its own prefix, state and
# trap (a subshell's trap runs only lab_down, never the parent's).  A trap the
# caller installs AFTER lab_up replaces the lab's: call lab_down from it.
# Errors: a non-zero status and a "netlab: ..." line on stderr.  Works
# under "set -eu" as well as without.

LAB_PREFIX=
LAB_SHELL=
LAB_DIR=
LAB_PID=
LAB_SKIP=
LAB_NODES=()
declare -A LAB_ADDR=() LAB_PUBADDR=() LAB_ROUTER=() LAB_NEXT=() LAB_KNOWN=()

LAB_PUB_NET=198.18.0
LAB_NETNS_DIR=/var/run/netns

# lab__err MSG... - a message on stderr.
lab__err() {
	echo "netlab: $*" >&2
}

lab__have() {
	command -v "$1" >/dev/null 2>&1
}

lab_ns() {
	echo "$LAB_PREFIX$1"
}

lab_nodes() {
	[ "${#LAB_NODES[@]}" -eq 0 ] || printf '%s\n' "${LAB_NODES[@]}"
}

# lab__get ARRAY KEY - ARRAY[KEY], or nothing (also for an empty KEY).
lab__get() {
	local -n arr=$1
	[ -z "$2" ] || printf '%s' "${arr[$2]:-}"
}

lab_addr() {
	local a
	a=$(lab__get LAB_ADDR "${1:-}")
	[ -n "$a" ] || { lab__err "no host or router '${1:-}'"; return 1; }
	echo "$a"
}

lab_nat_addr() {
	local a
	a=$(lab__get LAB_PUBADDR "${1:-}")
	[ -n "$a" ] || a=$(lab__get LAB_PUBADDR "$(lab__get LAB_ROUTER "${1:-}")")
	[ -n "$a" ] || { lab__err "no public address for '${1:-}'"; return 1; }
	echo "$a"
}

# lab__node_ok NODE - true when NODE is a node of the lab that is up.
lab__node_ok() {
	[ -n "$LAB_PREFIX" ] && [ -n "$(lab__get LAB_KNOWN "${1:-}")" ] && return 0
	lab__err "no node '${1:-}' (is the lab up?)"
	return 1
}

lab_exec() {
	local node=${1:-}
	[ $# -eq 0 ] || shift
	lab__node_ok "$node" || return 1
	nsenter --net="$LAB_NETNS_DIR/$LAB_PREFIX$node" -- "$@"
}

lab_bg() {
	local node=${1:-}
	[ $# -eq 0 ] || shift
	LAB_PID=
	lab__node_ok "$node" || return 1
	# nsenter joins the namespace and execs CMD: $! is CMD's pid.
	nsenter --net="$LAB_NETNS_DIR/$LAB_PREFIX$node" -- "$@" &
	LAB_PID=$!
	echo "$LAB_PID" >>"$LAB_DIR/pids"
}

# lab__sysctl NODE KEY VALUE - set a sysctl of NODE's namespace (the
# /proc/sys/net tree is the reader's namespace's).
lab__sysctl() {
	# shellcheck disable=SC2016 # expanded by sh
	nsenter --net="$LAB_NETNS_DIR/$LAB_PREFIX$1" -- \
		sh -c 'echo "$2" >"/proc/sys/$1"' sh "${2//.//}" "$3"
}

# lab__mkns NODE - a namespace with loopback up, no IPv6 chatter, and
# bridged frames kept out of the IP hooks (br_netfilter), whose settings
# are per namespace and may be missing.
lab__mkns() {
	local ns=$LAB_PREFIX$1
	ip netns add "$ns" || return 1
	LAB_NODES+=("$1")
	LAB_KNOWN[$1]=1
	# shellcheck disable=SC2016 # expanded by sh
	nsenter --net="$LAB_NETNS_DIR/$ns" -- sh -c '
		ip link set lo up || exit 1
		for f in ipv6/conf/all/disable_ipv6 ipv6/conf/default/disable_ipv6 \
		    bridge/bridge-nf-call-iptables bridge/bridge-nf-call-ip6tables \
		    bridge/bridge-nf-call-arptables; do
			v=0
			case $f in ipv6/*) v=1 ;; esac
			[ ! -e "/proc/sys/net/$f" ] || echo $v >"/proc/sys/net/$f"
		done'
}

# lab__bridge NODE BR - a bridge BR in NODE's namespace, up.
lab__bridge() {
	printf 'link add %s type bridge\nlink set %s up\n' "$2" "$2" |
		ip -n "$LAB_PREFIX$1" -b -
}

# lab__plug NODE IF SWNODE BR PORT ADDR/LEN [GATEWAY] - veth IF in NODE,
# its peer PORT in SWNODE enslaved to bridge BR, ADDR/LEN on IF, default
# route via GATEWAY.
lab__plug() {
	local ns=$LAB_PREFIX$1 sw=$LAB_PREFIX$3
	ip -n "$sw" link add "$5" type veth peer name "$2" netns "$ns" || return 1
	ip -n "$sw" link set "$5" master "$4" up || return 1
	{
		echo "addr add $6 dev $2"
		echo "link set $2 up"
		[ -z "${7:-}" ] || echo "route add default via $7"
	} | ip -n "$ns" -b -
}

# lab__nat_rules RANDOM - the nftables ruleset of a router.
lab__nat_rules() {
	cat <<EOF
table ip netlab_nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wan" masquerade $1
	}
}
table ip netlab_filter {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		iifname "lo" accept
		iifname "lan" accept
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname "lan" accept
	}
}
EOF
}

# lab__router NAME INDEX RANDOM - router NAME: wan on the public bridge,
# LAN bridge "lan" 198.19.INDEX.1/24, forwarding, NAT and filter.
lab__router() {
	local r=$1 wan=$LAB_PUB_NET.$((100 + $2)) lan=198.19.$2.1
	lab__mkns "$r" || return 1
	lab__plug "$r" wan inet br0 "$r" "$wan/24" || return 1
	printf 'link add lan type bridge\naddr add %s/24 dev lan\nlink set lan up\n' \
		"$lan" | ip -n "$LAB_PREFIX$r" -b - || return 1
	lab__sysctl "$r" net.ipv4.ip_forward 1 || return 1
	lab__nat_rules "$([ "$3" = 1 ] && echo random)" |
		lab__exec_raw "$r" nft -f - || return 1
	LAB_ADDR[$r]=$lan
	LAB_PUBADDR[$r]=$wan
	LAB_NEXT[$r]=10
}

# lab__exec_raw NODE CMD... - lab_exec before the node is registered.
lab__exec_raw() {
	local node=$1
	shift
	nsenter --net="$LAB_NETNS_DIR/$LAB_PREFIX$node" -- "$@"
}

lab_add_host() {
	local h=${1:-} seg=${2:-} addr
	[ -n "$LAB_PREFIX" ] || { lab__err "the lab is not up"; return 1; }
	case "$h" in
	*/* | "" | *[!A-Za-z0-9_]*) lab__err "bad node name '$h'"; return 1 ;;
	esac
	[ -z "${LAB_KNOWN[$h]:-}" ] || { lab__err "node '$h' exists"; return 1; }
	case "$seg" in
	pub)
		addr=$LAB_PUB_NET.${LAB_NEXT[inet]}
		LAB_NEXT[inet]=$((LAB_NEXT[inet] + 1))
		lab__mkns "$h" || return 1
		lab__plug "$h" eth0 inet br0 "$h" "$addr/24" || return 1
		LAB_PUBADDR[$h]=$addr
		;;
	r1 | r2)
		[ -n "${LAB_NEXT[$seg]:-}" ] || { lab__err "no router '$seg'"; return 1; }
		addr=${LAB_ADDR[$seg]%.1}.${LAB_NEXT[$seg]}
		LAB_NEXT[$seg]=$((LAB_NEXT[$seg] + 1))
		lab__mkns "$h" || return 1
		lab__plug "$h" eth0 "$seg" lan "$h" "$addr/24" \
			"${LAB_ADDR[$seg]}" || return 1
		LAB_ROUTER[$h]=$seg
		;;
	*)
		lab__err "no segment '$seg' (pub, r1, r2)"
		return 1
		;;
	esac
	LAB_ADDR[$h]=$addr
}

lab_set_nat() {
	local r=${1:-} opt=
	if [ -z "$(lab__get LAB_NEXT "$r")" ] || [ "$r" = inet ]; then
		lab__err "no router '$r'"
		return 1
	fi
	case "${2:-}" in
	cone) ;;
	random) opt=random ;;
	*) lab__err "nat mode '$2': cone or random"; return 1 ;;
	esac
	lab_exec "$r" nft flush chain ip netlab_nat postrouting &&
		lab_exec "$r" nft add rule ip netlab_nat postrouting \
			oifname wan masquerade $opt
}

lab_check() {
	local -
	set +e	# errexit of the caller must not cut this short
	local p ns
	LAB_SKIP=
	if [ "$(id -u)" != 0 ]; then
		LAB_SKIP="netlab needs root (network namespaces, nftables)"
		return 1
	fi
	for p in ip nft nsenter; do
		if ! lab__have "$p"; then
			LAB_SKIP="netlab needs '$p' (iproute2, nftables, util-linux)"
			return 1
		fi
	done
	# Try the kernel features once: netns, bridge, veth, nft nat.
	ns=netlab-probe-$$-$RANDOM
	if ! ip netns add "$ns" 2>/dev/null; then
		LAB_SKIP="cannot create a network namespace here"
		return 1
	fi
	if ! ip -n "$ns" link add b0 type bridge 2>/dev/null ||
	   ! ip -n "$ns" link add v0 type veth peer name v1 2>/dev/null; then
		LAB_SKIP="no bridge or veth support in this kernel"
	elif ! printf 'table ip t {\n chain p {\n %s\n masquerade random\n }\n}\n' \
	       'type nat hook postrouting priority srcnat; policy accept;' |
	     nsenter --net="$LAB_NETNS_DIR/$ns" -- nft -f - 2>/dev/null; then
		LAB_SKIP="no nftables NAT (masquerade) in this kernel"
	fi
	ip netns del "$ns" 2>/dev/null
	[ -z "$LAB_SKIP" ]
}

# lab__trap - make EXIT, INT, TERM and HUP run lab_down first.  In the
# shell that sourced us the trap that was there runs after it; in a
# subshell the parent's traps (which trap -p still shows) are not copied.
lab__trap() {
	local sig prev
	for sig in EXIT INT TERM HUP; do
		prev=
		if [ "$BASHPID" = "$$" ]; then
			prev=$(lab__trap_of "$sig")
		fi
		case "$prev" in
		"lab_down; "*) continue ;;
		esac
		# The old command is meant to be pasted in now.
		# shellcheck disable=SC2064
		case "$sig" in
		EXIT) trap "lab_down; $prev" EXIT ;;
		INT) trap "lab_down; ${prev:-exit 130}" INT ;;
		TERM) trap "lab_down; ${prev:-exit 143}" TERM ;;
		HUP) trap "lab_down; ${prev:-exit 129}" HUP ;;
		esac
	done
}

# lab__trap_of SIG - the command of SIG's trap, or nothing.
lab__trap_of() {
	local t
	t=$(trap -p "$1")
	[ -n "$t" ] || return 0
	eval "set -- $t"
	printf '%s' "${3:-}"
}

lab_up() {
	local -
	set +e	# errexit of the caller must not cut this short
	local rnd1=0 rnd2=0 arg
	for arg in "$@"; do
		case "$arg" in
		--random-nat) rnd1=1; rnd2=1 ;;
		--random-nat=*)
			case ",${arg#--random-nat=}," in *,r1,*) rnd1=1 ;; esac
			case ",${arg#--random-nat=}," in *,r2,*) rnd2=1 ;; esac
			;;
		*) lab__err "lab_up: unknown option '$arg'"; return 2 ;;
		esac
	done
	if [ -n "$LAB_PREFIX" ] && [ "$LAB_SHELL" = "$BASHPID" ]; then
		lab__err "a lab is already up in this shell ($LAB_PREFIX)"
		return 1
	fi
	# A lab of the parent shell (we are a subshell): start afresh.
	LAB_NODES=()
	# shellcheck disable=SC2034 # read through lab__get
	LAB_ADDR=() LAB_PUBADDR=() LAB_ROUTER=() LAB_NEXT=() LAB_KNOWN=()
	LAB_PREFIX=nl$$x$BASHPID-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')-
	LAB_SHELL=$BASHPID
	LAB_DIR=$(mktemp -d "${TMPDIR:-/tmp}/netlab.XXXXXX") || {
		LAB_PREFIX=
		return 1
	}
	: >"$LAB_DIR/pids"
	echo "$LAB_PREFIX" >"$LAB_DIR/prefix"
	lab__trap

	if ! {
		lab__mkns inet && lab__bridge inet br0 && LAB_NEXT[inet]=10 &&
		lab_add_host pub pub &&
		lab__router r1 1 "$rnd1" && lab__router r2 2 "$rnd2" &&
		lab_add_host h1a r1 && lab_add_host h1b r1 &&
		lab_add_host h2 r2
	}; then
		lab__err "lab_up failed; removing what was built"
		lab_down
		return 1
	fi
}

# lab__alive PID - true while PID runs (a zombie counts as gone).
lab__alive() {
	local st
	read -r st 2>/dev/null <"/proc/$1/stat" || return 1
	st=${st##*) }
	[ -n "$st" ] && [ "${st%% *}" != Z ]
}

lab_down() {
	local -
	set +e	# errexit of the caller must not cut this short
	local node ino p sig
	local -A ours=()
	local -a victims=() recorded=() live=()
	[ -n "$LAB_PREFIX" ] || return 0
	# Only the shell that built the lab tears it down (not a $(...)).
	[ "$LAB_SHELL" = "$BASHPID" ] || return 0

	# The lab's processes: those recorded by lab_bg that still live in one
	# of our namespaces (a pid may have been reused), and anything else
	# still inside one (started some other way).
	local -a files=()
	for node in "${LAB_NODES[@]}"; do
		files+=("$LAB_NETNS_DIR/$LAB_PREFIX$node")
	done
	if [ "${#files[@]}" -gt 0 ]; then
		for ino in $(stat -L -c %i "${files[@]}" 2>/dev/null); do
			ours["net:[$ino]"]=1
		done
	fi
	if [ -n "$LAB_DIR" ] && [ -f "$LAB_DIR/pids" ]; then
		mapfile -t recorded <"$LAB_DIR/pids"
	fi
	# One pass over /proc: "/proc/PID/ns/net net:[INODE]" per process.
	if [ "${#ours[@]}" -gt 0 ]; then
		while read -r p ino; do
			p=${p#/proc/}
			p=${p%%/*}
			[ -n "$ino" ] && [ -n "${ours[$ino]:-}" ] && victims+=("$p")
		done < <(find /proc/[0-9]*/ns/net -maxdepth 0 -printf '%p %l\n' \
			2>/dev/null)
	fi
	for sig in TERM KILL; do
		[ "${#victims[@]}" -gt 0 ] || break
		for p in "${victims[@]}"; do
			kill -"$sig" "$p" 2>/dev/null
		done
		for _ in $(seq 20); do
			live=()
			for p in "${victims[@]}"; do
				lab__alive "$p" && live+=("$p")
			done
			victims=("${live[@]}")
			[ "${#victims[@]}" -gt 0 ] || break
			sleep 0.1
		done
	done
	# Reap our own children so no zombie stays behind.
	for p in "${recorded[@]}"; do
		lab__alive "$p" || wait "$p" 2>/dev/null
	done

	for node in "${LAB_NODES[@]}"; do
		echo "netns del $LAB_PREFIX$node"
	done | ip -force -b - >/dev/null 2>&1
	[ -n "$LAB_DIR" ] && rm -rf "$LAB_DIR"
	LAB_PREFIX=
	LAB_DIR=
	LAB_NODES=()
	# shellcheck disable=SC2034 # read through lab__get
	LAB_ADDR=() LAB_PUBADDR=() LAB_ROUTER=() LAB_NEXT=() LAB_KNOWN=()
	return 0
}

lab_gc() {
	local -
	set +e	# errexit of the caller must not cut this short
	local ns d pre
	for ns in $(ip netns list 2>/dev/null | cut -d' ' -f1); do
		lab__stale "$ns" || continue
		ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
		ip netns del "$ns" 2>/dev/null
	done
	for d in "${TMPDIR:-/tmp}"/netlab.*; do
		[ -f "$d/prefix" ] || continue
		read -r pre <"$d/prefix" || continue
		lab__stale "$pre" && rm -rf "$d"
	done
	return 0
}

# lab__stale NAME - true when NAME (a namespace or prefix) was made by
# lab_up in a shell that no longer exists.  Names are
# nl<shell pid>x<subshell pid>-<6 hex>-<node>; the subshell owns the lab.
lab__stale() {
	[[ $1 =~ ^nl([0-9]+)x([0-9]+)-[0-9a-f]{6}- ]] || return 1
	! kill -0 "${BASH_REMATCH[2]}" 2>/dev/null
}
