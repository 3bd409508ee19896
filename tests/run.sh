#!/bin/sh
# run.sh - run unit-test binaries and system-test scripts, count results.
#
# Each test prints "PASS name" / "FAIL name" lines.  A program that exits
# non-zero without printing a FAIL line (a crash, a timeout) counts as one
# failure.  Ends with one line "N passed, N failed"; exits 1 on any failure.
set -u
: "${BUILD:=build}"
: "${TEST_TIMEOUT:=600}"
export BUILD
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

for t in "$@"; do
	echo "== $t"
	case "$t" in
	*.sh) timeout -k 10 "$TEST_TIMEOUT" bash "$t" >"$log" 2>&1 ;;
	*) timeout -k 10 "$TEST_TIMEOUT" "$t" >"$log" 2>&1 ;;
	esac
	rc=$?
	cat "$log"
	p=$(grep -c '^PASS ' "$log")
	f=$(grep -c '^FAIL ' "$log")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL $t (exit status $rc)"
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
