#!/bin/sh
# fuzz.sh - run each libFuzzer binary for FUZZ_SECONDS from its seed corpus
# (tests/corpus/NAME, copied to a scratch directory so runs add nothing to
# the tree).  Exits non-zero on the first crash, leak or sanitizer report.
set -eu
: "${FUZZ_SECONDS:=20}"
: "${BUILD:=build-fuzz}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for f in "$@"; do
	name=$(basename "$f")
	mkdir -p "$work/$name"
	[ -d "tests/corpus/$name" ] && cp -r "tests/corpus/$name/." "$work/$name/"
	echo "== $name ($FUZZ_SECONDS s)"
	"$f" -max_total_time="$FUZZ_SECONDS" -timeout=10 -print_final_stats=0 \
		-artifact_prefix="$BUILD/fuzz/$name-" "$work/$name" 2>"$work/$name.log" || {
		tail -n 40 "$work/$name.log"
		echo "fuzz: $name failed; the input is in $BUILD/fuzz/$name-*" >&2
		exit 1
	}
	grep -E '^#[0-9]+.*DONE' "$work/$name.log" | tail -n 1 || true
done
echo "fuzz: all $# targets ran clean for $FUZZ_SECONDS s each"
