# lib.sh - helpers for buddyfs system tests (bash).  Source it first:
#
#   . "$(dirname "$0")/lib.sh"
#
# What it gives a test script:
#   $BUILD            the build directory (default: build)
#   $LIB_TMP          a scratch directory, removed when the script exits
#   tmp_dir           print the path of a new empty directory under $LIB_TMP
#   pass NAME         print "PASS NAME"
#   fail NAME WHY...  print "FAIL NAME: WHY", count the failure
#   note TEXT...      print "# TEXT" (neither PASS nor FAIL: for skips)
#   run CMD...        run CMD; its stdout in $OUT (and file $LIB_TMP/out),
#                     its stderr in $ERR (file $LIB_TMP/err), status in $RC
#   check NAME CMD...             PASS when CMD exits 0
#   check_fails NAME CMD...       PASS when CMD exits non-zero
#   check_exit NAME CODE CMD...   PASS when CMD exits with CODE
#   check_out NAME REGEX CMD...   PASS when CMD exits 0 and its stdout
#                                 matches the extended REGEX (grep -E)
#   check_err NAME CODE REGEX CMD...  PASS when CMD exits with CODE and its
#                                 stderr matches REGEX
#   have PROG         true when PROG is on $PATH
#   wait_for SECONDS CMD...   poll CMD (its output discarded) every 0.1 s:
#                     true once it succeeds, false if it still fails after
#                     SECONDS (whole seconds; one last try at the end)
#   start_rendezvous NAME     start $BUILD/buddyfs-rendezvous on a random
#                     127.0.0.1 port with a new database and wait until it
#                     listens; up to 5 ports are tried.  Sets RDV_PORT and
#                     RDV_PID (stdout and stderr in $LIB_TMP/rdv.out and
#                     rdv.err); on failure: FAIL NAME and finish.  The
#                     script's EXIT trap should kill $RDV_PID.
#   finish            end the script: exit 1 if anything failed
#
# On a failure the command's status and the first lines of its stderr and
# stdout are printed under the FAIL line.  CMD is run as given (an
# executable or a shell function), with no shell in between: quote
# arguments as you would for exec.  tests/run.sh counts the PASS and FAIL
# lines; a script that exits non-zero without a FAIL line counts as one
# failure.

set -u
: "${BUILD:=build}"
export BUILD
LIB_FAILED=0
LIB_TMP=$(mktemp -d "${TMPDIR:-/tmp}/buddyfs-test.XXXXXX") || {
	echo "FAIL lib.sh: cannot make a scratch directory"
	exit 1
}
# chmod first: a test may leave read-only directories behind.
trap 'chmod -R u+rwx "$LIB_TMP" 2>/dev/null; rm -rf "$LIB_TMP"' EXIT
OUT=
ERR=
RC=0
RDV_PORT=
RDV_PID=

tmp_dir() {
	mktemp -d "$LIB_TMP/d.XXXXXX"
}

pass() {
	echo "PASS $1"
}

fail() {
	local name=$1
	shift
	echo "FAIL $name: $*"
	LIB_FAILED=$((LIB_FAILED + 1))
}

note() {
	echo "# $*"
}

have() {
	command -v "$1" >/dev/null 2>&1
}

run() {
	"$@" >"$LIB_TMP/out" 2>"$LIB_TMP/err"
	RC=$?
	OUT=$(cat "$LIB_TMP/out")
	ERR=$(cat "$LIB_TMP/err")
	return 0
}

# lib_show - the last command's status and output, indented, after a FAIL.
lib_show() {
	echo "  exit status $RC"
	[ -n "$ERR" ] && printf '%s\n' "$ERR" | head -n 5 | sed 's/^/  stderr: /'
	[ -n "$OUT" ] && printf '%s\n' "$OUT" | head -n 5 | sed 's/^/  stdout: /'
	return 0
}

check() {
	local name=$1
	shift
	run "$@"
	if [ "$RC" -eq 0 ]; then pass "$name"; else fail "$name" "'$*' failed"; lib_show; fi
}

check_fails() {
	local name=$1
	shift
	run "$@"
	if [ "$RC" -ne 0 ]; then pass "$name"; else fail "$name" "'$*' succeeded"; lib_show; fi
}

check_exit() {
	local name=$1 code=$2
	shift 2
	run "$@"
	if [ "$RC" -eq "$code" ]; then pass "$name"; else fail "$name" "'$*' exit $RC, want $code"; lib_show; fi
}

check_out() {
	local name=$1 re=$2
	shift 2
	run "$@"
	if [ "$RC" -ne 0 ]; then
		fail "$name" "'$*' failed"
		lib_show
	elif ! printf '%s\n' "$OUT" | grep -Eq -- "$re"; then
		fail "$name" "stdout of '$*' does not match /$re/"
		lib_show
	else
		pass "$name"
	fi
}

check_err() {
	local name=$1 code=$2 re=$3
	shift 3
	run "$@"
	if [ "$RC" -ne "$code" ]; then
		fail "$name" "'$*' exit $RC, want $code"
		lib_show
	elif ! printf '%s\n' "$ERR" | grep -Eq -- "$re"; then
		fail "$name" "stderr of '$*' does not match /$re/"
		lib_show
	else
		pass "$name"
	fi
}

# lib_ms - milliseconds since the epoch.
lib_ms() {
	date +%s%3N
}

wait_for() {
	local end=$(($(lib_ms) + $1 * 1000))
	shift
	while [ "$(lib_ms)" -lt "$end" ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	"$@" >/dev/null 2>&1
}

# lib_rdv_settled - the rendezvous listens, or has exited.
lib_rdv_settled() {
	grep -q '^listening on' "$LIB_TMP/rdv.out" || ! kill -0 "$RDV_PID" 2>/dev/null
}

start_rendezvous() {
	local name=$1 db
	db=$(tmp_dir)
	for _ in 1 2 3 4 5; do
		RDV_PORT=$((20000 + RANDOM % 20000))
		"$BUILD/buddyfs-rendezvous" --listen "127.0.0.1:$RDV_PORT" --db "$db" \
			>"$LIB_TMP/rdv.out" 2>"$LIB_TMP/rdv.err" &
		RDV_PID=$!
		wait_for 5 lib_rdv_settled
		grep -q '^listening on' "$LIB_TMP/rdv.out" && return 0
		kill "$RDV_PID" 2>/dev/null
		wait "$RDV_PID" 2>/dev/null
		RDV_PID=
	done
	fail "$name" "$(head -n 3 "$LIB_TMP/rdv.err")"
	finish
}

finish() {
	[ "$LIB_FAILED" -eq 0 ]
	exit $?
}
