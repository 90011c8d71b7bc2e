#!/bin/sh
# Runs every unit test program and integration test script, and ends with the
# one summary line CI reads: "N passed, N failed, N skipped".
# Each test prints lines "PASS: name", "FAIL: name: why", "SKIP: name: why".
# A program that exits non-zero without printing a FAIL counts as one failure.
# ROAM_TEST_FILTER=substring runs only matching test programs/scripts.
set -u
BUILD=${BUILD:-build}
export ROAM=${ROAM:-$PWD/$BUILD/roam} ROAM_BUILD=$PWD/$BUILD ROAM_SRC=$PWD
# The guest kit does not depend on the build flavour: make kit puts it here.
export ROAM_KIT=${ROAM_KIT:-$PWD/build/kit}
log=$(mktemp /tmp/roam-test.XXXXXX)
trap 'rm -f "$log"' EXIT

run_one() { # name cmd...
	name=$1; shift
	case "$name" in *"${ROAM_TEST_FILTER:-}"*) ;; *) return ;; esac
	echo "== $name"
	out=$(mktemp /tmp/roam-test-out.XXXXXX)
	t0=$(date +%s)
	timeout -k 10 "${ROAM_TEST_TIMEOUT:-600}" "$@" >"$out" 2>&1
	rc=$?
	cat "$out"
	echo "-- $name: $(( $(date +%s) - t0 )) s"
	grep -E '^(PASS|FAIL|SKIP): ' "$out" >>"$log"
	if [ $rc -ne 0 ] && ! grep -q '^FAIL: ' "$out"; then
		echo "FAIL: $name: exited with status $rc" | tee -a "$log"
	fi
	rm -f "$out"
}

for t in "$BUILD"/tests/unit/*; do
	[ -x "$t" ] && run_one "unit/$(basename "$t")" "$t"
done
for t in tests/integration/*.sh; do
	[ "$(basename "$t")" = lib.sh ] && continue
	[ -f "$t" ] && run_one "integration/$(basename "$t" .sh)" sh "$t"
done

p=$(grep -c '^PASS: ' "$log"); f=$(grep -c '^FAIL: ' "$log"); s=$(grep -c '^SKIP: ' "$log")
if [ "$f" -gt 0 ]; then echo; echo "failures:"; grep '^FAIL: ' "$log"; fi
echo "$p passed, $f failed, $s skipped"
[ "$f" -eq 0 ]
