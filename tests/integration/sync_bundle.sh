# Bundles: a VM as one file and back (full and incremental since a
# checkpoint, into other stores); truncated, corrupted and wrong-base
# bundles are refused before anything changes.
. "$ROAM_SRC/tests/integration/lib.sh"
A="$ROAM --store $T/a"
B="$ROAM --store $T/b"
C="$ROAM --store $T/c"
K=$ROAM_BUILD/guest/counter.elf
[ -f "$K" ] || { skip sync_bundle "no $K (make guest-tests)"; exit 0; }
head -c 4M /dev/urandom > "$T/d.img"
$A init >/dev/null && $A create vm --kernel "$K" --disk "$T/d.img" --mem 64M >/dev/null &&
	$A checkpoint vm base >/dev/null || { fail sync_bundle_setup "cannot create the VM"; exit 0; }
json_field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
state() { # store: refs and object count
	sqlite3 "$1/store.db" "SELECT name, hex(hash) FROM refs ORDER BY name; SELECT count(*) FROM objects" 2>/dev/null
}
head_of() { $ROAM --store "$1" log vm 2>/dev/null | head -1 | cut -c1-12; }

check bundle_full $A bundle create vm -o "$T/full.bundle"
tar tf "$T/full.bundle" | head -1 | grep -qx manifest && pass bundle_is_tar_with_manifest ||
	fail bundle_is_tar_with_manifest
check import_full $B bundle import "$T/full.bundle"
[ "$(head_of "$T/a")" = "$(head_of "$T/b")" ] && pass import_full_same_head || fail import_full_same_head
$B log vm | grep -q '(base' && pass import_full_has_checkpoint || fail import_full_has_checkpoint
check import_full_verify $B verify
check import_again_idempotent $B bundle import "$T/full.bundle"

# a change on a: run the counter kernel (it writes its disk) and suspend
$A run vm --engine bt </dev/null >"$T/run.log" 2>&1 &
rp=$!
sleep 2
$A suspend vm >/dev/null 2>&1
wait $rp
$A --json bundle create vm -o "$T/inc.bundle" --since base > "$T/inc.json" 2>&1 &&
	pass bundle_incremental || fail bundle_incremental "$(cat "$T/inc.json")"
fs=$(stat -c %s "$T/full.bundle"); is=$(stat -c %s "$T/inc.bundle")
[ "$is" -lt $((fs / 4)) ] && pass incremental_is_small || fail incremental_is_small "$is vs $fs bytes"
check import_incremental $B bundle import "$T/inc.bundle"
[ "$(head_of "$T/a")" = "$(head_of "$T/b")" ] && pass import_incremental_same_head ||
	fail import_incremental_same_head
check import_incremental_verify $B verify
check bundle_at_tag $A bundle create vm@base -o "$T/tag.bundle"

# refused before anything changes: wrong base, truncated, corrupted
$C init >/dev/null
state "$T/c" > "$T/c.before"
check_fails wrong_base_refused 'needs commit [0-9a-f]+ \(checkpoint base of VM vm\) which this store does not have' \
	$C bundle import "$T/inc.bundle"
head -c $((fs / 2)) "$T/full.bundle" > "$T/trunc.bundle"
check_fails truncated_refused 'truncated|damage|not a roam bundle' $C bundle import "$T/trunc.bundle"
cp "$T/full.bundle" "$T/bad.bundle"
# flip a byte well inside the object data (past the manifest)
printf '\377' | dd of="$T/bad.bundle" bs=1 seek=$((fs / 2)) conv=notrunc 2>/dev/null
check_fails corrupted_refused 'corrupt|inconsistent|damage' $C bundle import "$T/bad.bundle"
printf 'not a bundle' > "$T/junk.bundle"
check_fails junk_refused 'not a roam bundle|cannot open' $C bundle import "$T/junk.bundle"
state "$T/c" > "$T/c.after"
cmp -s "$T/c.before" "$T/c.after" && pass refused_bundles_changed_nothing ||
	fail refused_bundles_changed_nothing "$(diff "$T/c.before" "$T/c.after" | head -5)"
check store_c_verify $C verify
