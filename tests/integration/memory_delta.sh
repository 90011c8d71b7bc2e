#!/bin/sh
# Deltas in a real memory save: the kit's Linux guest (BT engine) holds
# 1 MiB of random bytes in tmpfs twice more at shifts of 1000 bytes; the
# first suspend stores those copies as deltas (roam du counts them), the
# resumed guest reads back the same bytes, the store verifies, and a bundle
# of the VM (which carries every object self-contained) imports and
# verifies in a second store. A second suspend after a few bytes changed
# in those pages stores the changed chunks as deltas against their previous
# versions, and the guest reads them back too.
. "$ROAM_SRC/tests/integration/lib.sh"
R="$ROAM"
cd "$T" || exit 1
KIT="${ROAM_KIT:-$ROAM_BUILD/kit}"
for f in vmlinuz initrd.img root.ext4; do
	[ -f "$KIT/$f" ] || { skip memory_delta "$KIT/$f missing (make kit)"; exit 0; }
done
export ROAM_KIT="$KIT"
$R init >/dev/null
$R create md --mem 512M >/dev/null || { fail memory_delta_create; exit 0; }
mkfifo in.fifo
exec 3<>in.fifo
pid=
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$T"' EXIT
runno=0
run() { runno=$((runno + 1)); $R run md --engine bt <&3 > "out.$runno" 2> "err.$runno" & pid=$!; }
say() { printf '%s\n' "$1" >&3; }
wait_out() {
	k=0
	while ! tr -d '\r' 2>/dev/null < "out.$runno" | grep -aqE "$1"; do
		kill -0 "$pid" 2>/dev/null || return 1
		k=$((k + 1)); [ $k -gt $(($2 * 5)) ] && return 1; sleep 0.2
	done
}
bail() { fail "$1" "$2"; exit 0; }
sums() { tr -d '\r' < "out.$runno" | sed -n "s/^$1 //p" | head -1; }
suspend_md() { $R suspend md > susp.out 2>&1 || bail "$1" "$(cat susp.out)"; wait "$pid"; pid=; }
delta_blobs() { $R du --json | sed 's/.*"delta_blobs":\([0-9]*\).*/\1/'; }
# resume_same TAG TEST SUM: resumed, the guest finds a and b as they were.
resume_same() {
	run
	say "echo $1 \$(cat /tmp/a /tmp/b | md5sum)"
	wait_out "^$1 [0-9a-f]{32}" 120 || bail "$2" "$(cat "err.$runno")"
	[ "$(sums "$1")" = "$3" ] && pass "${2}_same_bytes" ||
		fail "${2}_same_bytes" "$3 before, $(sums "$1") after"
}

run
wait_out '^roam-guest: disk mounted' 240 || bail memory_delta_boot "$(tail -c 300 "out.$runno")"
say 'stty -echo; PS1=; echo READY$((1+1))'
wait_out READY2 60 || bail memory_delta_boot "no shell"
say 'head -c 1048576 /dev/urandom > /tmp/a; (head -c 1000 /dev/zero; cat /tmp/a /tmp/a) > /tmp/b; echo SUM1 $(cat /tmp/a /tmp/b | md5sum)'
wait_out '^SUM1 [0-9a-f]{32}' 120 || bail memory_delta_data "$(tail -c 300 "out.$runno")"
sum1=$(sums SUM1)
suspend_md memory_delta_suspend
deltas=$(delta_blobs)
# 2 MiB of copies are 128 chunks of 16 KiB; their bases are a's 64.
[ "$deltas" -ge 100 ] && pass "memory_delta_stored ($deltas delta blobs)" ||
	fail memory_delta_stored "$deltas delta blobs after the suspend"
resume_same SUM2 memory_delta_resume "$sum1"
# A few bytes changed in 16 pages of a: the second suspend stores those
# chunks as deltas against their previous versions, which read back right.
say 'for i in 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do printf roam | dd of=/tmp/a bs=1 seek=$((i * 65536 + 777)) conv=notrunc 2>/dev/null; done; echo SUM3 $(cat /tmp/a /tmp/b | md5sum)'
wait_out '^SUM3 [0-9a-f]{32}' 120 || bail memory_delta_change "$(tail -c 300 "out.$runno")"
sum3=$(sums SUM3)
suspend_md memory_delta_suspend2
deltas2=$(delta_blobs)
[ "$deltas2" -ge $((deltas + 8)) ] && pass "memory_delta_incremental ($((deltas2 - deltas)) more)" ||
	fail memory_delta_incremental "$deltas delta blobs after the first suspend, $deltas2 after the second"
resume_same SUM4 memory_delta_resume2 "$sum3"
suspend_md memory_delta_suspend3
check memory_delta_verify $R verify
check memory_delta_bundle $R bundle create md -o md.bundle
$R init "$T/other" >/dev/null
check memory_delta_bundle_import $R --store "$T/other" bundle import md.bundle
check memory_delta_bundle_verify $R --store "$T/other" verify
