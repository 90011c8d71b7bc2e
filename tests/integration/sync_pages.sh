#!/bin/sh
# Memory pages that the far side already has on its disk (sync protocol 3,
# deltas against several blobs). The kit's Linux guest (BT, 256 MiB) has a
# data disk holding 4 MiB of random bytes; suspended, it is pushed to a far
# store and cloned from there into a third. Resumed, it reads the file (now
# 1024 pages of its page cache that nothing compresses) and is suspended
# again. The push of that change, and the pull of it into the clone, send
# the pages as deltas against the disk chunks the far side has: each moves
# under half of the file's size (without the page index it is over 4 MiB).
# Every store verifies and ends at the same head.
. "$ROAM_SRC/tests/integration/lib.sh"
cd "$T" || exit 1
KIT="${ROAM_KIT:-$ROAM_BUILD/kit}"
for f in vmlinuz initrd.img; do
	[ -f "$KIT/$f" ] || { skip sync_pages "$KIT/$f missing (make kit)"; exit 0; }
done
command -v mke2fs >/dev/null 2>&1 || { skip sync_pages "no mke2fs"; exit 0; }
export ROAM_KIT="$KIT"
A="$ROAM --store $T/a"
mkdir fs && head -c 4M /dev/urandom > fs/rnd.bin &&
	mke2fs -q -t ext4 -b 4096 -d fs data.img 64M || { fail sync_pages_setup "mke2fs"; exit 0; }
$A init >/dev/null && $A create vm --mem 256M --disk data.img >/dev/null ||
	{ fail sync_pages_setup "cannot create the VM"; exit 0; }
mkfifo in.fifo
exec 3<>in.fifo
pid=
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$T"' EXIT
wait_out() { # FILE PATTERN SECONDS
	k=0
	while ! tr -d '\r' 2>/dev/null < "$1" | grep -aqE "$2"; do
		kill -0 "$pid" 2>/dev/null || return 1
		k=$((k + 1)); [ $k -gt $(($3 * 5)) ] && return 1; sleep 0.2
	done
}
suspend_vm() { $A suspend vm >/dev/null 2>&1 && wait "$pid"; pid=; }
json_field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }

$A run vm --engine bt <&3 > boot.out 2> boot.err & pid=$!
if ! wait_out boot.out 'roam-guest: disk mounted' 300; then
	fail sync_pages_boot "$(tail -c 300 boot.out | tr -d '\r')"; exit 0
fi
printf '%s\n' 'stty -echo; PS1=; echo UP$((1+1))' >&3
wait_out boot.out UP2 60 || { fail sync_pages_shell; exit 0; }
suspend_vm || { fail sync_pages_suspend "$(tail -3 boot.err)"; exit 0; }
check push_first $A push "$T/far" vm
check clone_first $ROAM --store "$T/c" clone "$T/far" vm

$A run vm --engine bt <&3 > read.out 2> read.err & pid=$!
printf '%s\n' 'cat /mnt/rnd.bin > /dev/null; echo READ$((2+3))' >&3
wait_out read.out READ5 120 || { fail sync_pages_read "$(tail -3 read.err)"; exit 0; }
suspend_vm || { fail sync_pages_suspend2 "$(tail -3 read.err)"; exit 0; }

$A --json push "$T/far" vm > push.json 2> push.err || fail push_change "$(cat push.err)"
sent=$(json_field bytes_sent < push.json)
if [ -n "$sent" ] && [ "$sent" -lt $((2 << 20)) ]; then pass push_pages_from_disk
else fail push_pages_from_disk "$sent bytes sent for 4 MiB of page cache: $(cat push.json)"; fi
$ROAM --store "$T/c" --json pull origin vm > pull.json 2> pull.err || fail pull_change "$(cat pull.err)"
got=$(json_field bytes_received < pull.json)
echo "  4 MiB of page cache: push sent $sent bytes, pull received $got bytes"
if [ -n "$got" ] && [ "$got" -lt $((2 << 20)) ]; then pass pull_pages_from_disk
else fail pull_pages_from_disk "$got bytes received: $(cat pull.json)"; fi

head=$($A show vms/vm/head --json | sed -n 's/.*"hash":"\([0-9a-f]*\)".*/\1/p' | head -1)
for st in far c; do
	check "verify_$st" $ROAM --store "$T/$st" verify
	h=$($ROAM --store "$T/$st" show vms/vm/head --json | sed -n 's/.*"hash":"\([0-9a-f]*\)".*/\1/p' | head -1)
	[ -n "$head" ] && [ "$h" = "$head" ] && pass "same_head_$st" || fail "same_head_$st" "$h vs $head"
done
