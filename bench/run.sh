#!/bin/sh
# run.sh - run every benchmark: each executable in $BUILD/bench/ (built from
# bench/*.c; default BUILD=build) and each script bench/*.sh other than this
# one (run with bash, BUILD exported), one after the other, with no
# arguments: each bench's defaults are its full run.
#
#   BENCH_FILTER=word   run only the benches whose name contains word
#
# Prints each bench's output under a "== name" line and ends with
# "N benches ran, N failed"; exits 1 if any bench exited non-zero.  Figures
# are printed, never judged here: a slow run is not a failure.
set -u
: "${BUILD:=build}"
: "${BENCH_FILTER:=}"
export BUILD
ran=0
failed=0

run_one() { # NAME COMMAND...
	name=$1
	shift
	case "$name" in
	*"$BENCH_FILTER"*) ;;
	*) return 0 ;;
	esac
	echo "== $name"
	ran=$((ran + 1))
	"$@"
	rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "bench: $name exited with status $rc" >&2
		failed=$((failed + 1))
	fi
}

for b in "$BUILD"/bench/*; do
	if [ ! -f "$b" ] || [ ! -x "$b" ]; then
		continue
	fi
	case "$b" in
	*.d | *.o) continue ;;
	esac
	run_one "$(basename "$b")" "$b"
done
for s in bench/*.sh; do
	[ -f "$s" ] || continue
	[ "$(basename "$s")" = run.sh ] && continue
	run_one "$(basename "$s")" bash "$s"
done
echo "$ran benches ran, $failed failed"
[ "$failed" -eq 0 ]
