# The wire codec (sync protocol 2) over a real sshd, against protocol 1
# (objects exactly as stored, forced with ROAM_SYNC_WIRE=stored): full and
# incremental pushes of the same VM to two far stores send fewer bytes
# (asserted on the protocol counter), pulls with basis deltas receive fewer
# bytes, every store verifies and ends at the same head, and a far side
# that speaks only protocol 1 (an older roam) still takes a push and serves
# a pull.
. "$ROAM_SRC/tests/integration/lib.sh"
. "$ROAM_SRC/tests/integration/sync_sshd.inc"
A="$ROAM --store $T/a"
B="$ROAM --store $T/b"
C="$ROAM --store $T/c"
K=$ROAM_BUILD/guest/counter.elf
[ -f "$K" ] || { skip sync_wire "no $K (make guest-tests)"; exit 0; }
# a disk of text files: chunks compress far better in one stream than alone
find /usr/share -type f -size +4k 2>/dev/null | head -4000 | xargs cat 2>/dev/null |
	head -c 8M > "$T/d.img"
$A init >/dev/null && $A create vm --kernel "$K" --disk "$T/d.img" --mem 64M >/dev/null ||
	{ fail sync_wire_setup "cannot create the VM"; exit 0; }
json_field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
U="ssh://root@127.0.0.1:$PORT$T"
printf '#!/bin/sh\nROAM_SYNC_WIRE=stored exec %s "$@"\n' "$ROAM" > "$T/oldroam"
chmod +x "$T/oldroam"

# full push: wire codec vs as stored
$A --json push "$U/r2" vm $RR > "$T/f2" 2>"$T/e" || fail wire_full_push "$(cat "$T/e")"
ROAM_SYNC_WIRE=stored $A --json push "$U/r1" vm $RR > "$T/f1" 2>"$T/e" ||
	fail stored_full_push "$(cat "$T/e")"
f2=$(json_field bytes_sent < "$T/f2"); f1=$(json_field bytes_sent < "$T/f1")
if [ -n "$f2" ] && [ -n "$f1" ] && [ $((f2 * 10)) -lt $((f1 * 9)) ]; then pass wire_full_fewer_bytes;
else fail wire_full_fewer_bytes "wire $f2 vs stored $f1 bytes"; fi
# clones of the old head: b over the wire codec, c as stored
check clone_wire $B clone "$U/r2" vm $RR
ROAM_SYNC_WIRE=stored check clone_stored $C clone "$U/r1" vm $RR

# a change: run the counter kernel (memory and a few disk sectors), suspend
$A run vm --engine bt </dev/null >"$T/run.log" 2>&1 &
rp=$!
sleep 2
$A suspend vm >/dev/null 2>&1 || fail run_suspend "$(tail -3 "$T/run.log")"
wait $rp
check_fails wire_level_out_of_range 'a level 1..19' $A push "$U/r2" vm --wire-level 20 $RR
$A --json push "$U/r2" vm --wire-level 19 $RR > "$T/i2" 2>"$T/e" && pass wire_incremental_push ||
	fail wire_incremental_push "$(cat "$T/e")"
ROAM_SYNC_WIRE=stored $A --json push "$U/r1" vm $RR > "$T/i1" 2>"$T/e" ||
	fail stored_incremental_push "$(cat "$T/e")"
grep -q '"protocol":3,"wire_level":19' "$T/i2" && grep -q '"protocol":1,' "$T/i1" &&
	pass wire_level_reported || fail wire_level_reported "$(cat "$T/i2" "$T/i1")"
i2=$(json_field bytes_sent < "$T/i2"); i1=$(json_field bytes_sent < "$T/i1")
o2=$(json_field objects < "$T/i2"); o1=$(json_field objects < "$T/i1")
[ -n "$o2" ] && [ "$o2" = "$o1" ] && pass wire_same_objects || fail wire_same_objects "$o2 vs $o1"
if [ -n "$i2" ] && [ -n "$i1" ] && [ $((i2 * 10)) -lt $((i1 * 7)) ]; then pass wire_incremental_fewer_bytes;
else fail wire_incremental_fewer_bytes "wire $i2 vs stored $i1 bytes"; fi

# pulls of the change: b with basis deltas against its head, c as stored
$B --json pull origin vm > "$T/l2" 2>"$T/e" || fail wire_pull "$(cat "$T/e")"
ROAM_SYNC_WIRE=stored $C --json pull origin vm > "$T/l1" 2>"$T/e" || fail stored_pull "$(cat "$T/e")"
l2=$(json_field bytes_received < "$T/l2"); l1=$(json_field bytes_received < "$T/l1")
if [ -n "$l2" ] && [ -n "$l1" ] && [ $((l2 * 10)) -lt $((l1 * 7)) ]; then pass wire_pull_fewer_bytes;
else fail wire_pull_fewer_bytes "wire $l2 vs stored $l1 bytes"; fi
h=$($A log vm | head -1 | cut -c1-12)
[ "$($B log vm | head -1 | cut -c1-12)" = "$h" ] && [ "$($C log vm | head -1 | cut -c1-12)" = "$h" ] &&
	pass wire_same_head || fail wire_same_head

# a far side that speaks protocol 1 only (an older roam)
check old_server_push $A push "$U/r3" vm --remote-roam "$T/oldroam"
$ROAM --store "$T/d" init >/dev/null
check old_server_pull $ROAM --store "$T/d" pull "$U/r3" vm --remote-roam "$T/oldroam"
check verify_all sh -c "$A verify && $B verify && $C verify && $ROAM --store $T/d verify &&
	$ROAM --store $T/r1 verify && $ROAM --store $T/r2 verify && $ROAM --store $T/r3 verify"
echo "bytes: full wire $f2 stored $f1; incremental push wire $i2 stored $i1; pull wire $l2 stored $l1"
