#!/bin/sh
# Every libFuzzer harness (make fuzz) builds and survives a short run from
# an empty corpus. Long campaigns are run by hand: build/fuzz/NAME -max_total_time=600.
. "$ROAM_SRC/tests/integration/lib.sh"
cd "$ROAM_SRC" || exit 1
if ! command -v clang >/dev/null 2>&1; then
	skip fuzz "clang not installed"
	exit 0
fi
if ! make -s fuzz >"$T/build.log" 2>&1; then
	fail fuzz_build "$(tail -n 5 "$T/build.log" | tr '\n' ' ')"
	exit 0
fi
for f in build/fuzz/*; do
	[ -x "$f" ] || continue
	n=$(basename "$f")
	mkdir -p "$T/$n"
	if "$f" -runs=20000 -max_total_time=15 -rss_limit_mb=2048 "$T/$n" >"$T/$n.log" 2>&1; then
		pass "fuzz_$n"
	else
		fail "fuzz_$n" "$(grep -m1 -E 'ERROR|SUMMARY|panic' "$T/$n.log")"
	fi
done
