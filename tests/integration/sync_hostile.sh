# A hostile far side (tests/integration/sync_fake_server.py run through a
# real sshd as --remote-roam) serving real objects with one thing wrong:
# corrupt object bytes, an oversized frame, a ref to a missing object, ref
# names with '..', another VM's name or an extra level, a blob where a
# commit is due; and in protocol 2 (the wire codec) a stream that is not
# zstd, a delta against a base the client lacks, a record over the size
# limit (a decompression bomb), a window over the limit, a record whose
# bytes do not match the hash asked for. Each pull is refused with a clear error and the local store
# is untouched (refs identical, verify passes).
. "$ROAM_SRC/tests/integration/lib.sh"
command -v python3 >/dev/null || { skip sync_hostile "no python3 for the fake server"; exit 0; }
. "$ROAM_SRC/tests/integration/sync_sshd.inc"
A="$ROAM --store $T/a"
B="$ROAM --store $T/b"
K=$ROAM_BUILD/guest/counter.elf
[ -f "$K" ] || { skip sync_hostile "no $K (make guest-tests)"; exit 0; }
head -c 2M /dev/urandom > "$T/d.img"
$A init >/dev/null && $A create vm --kernel "$K" --disk "$T/d.img" --mem 64M >/dev/null &&
	$B clone "$T/a" vm >/dev/null 2>&1 || { fail sync_hostile_setup "cannot create and clone"; exit 0; }
# a new head on a (run + suspend), so that a pull has objects to fetch
$A run vm --engine bt </dev/null >"$T/run.log" 2>&1 &
rp=$!
sleep 2
$A suspend vm >/dev/null 2>&1
wait $rp
refs_b() { sqlite3 "$T/b/store.db" "SELECT name, hex(hash) FROM refs ORDER BY name"; }
refs_b > "$T/refs.before"
hostile() { # name pattern mode
	printf '#!/bin/sh\nexec python3 %s %s "$@"\n' "$ROAM_SRC/tests/integration/sync_fake_server.py" "$3" \
		> "$T/fake-$3"
	chmod +x "$T/fake-$3"
	check_fails "$1" "$2" $B pull "ssh://root@127.0.0.1:$PORT$T/a" vm --remote-roam "$T/fake-$3"
	refs_b > "$T/refs.after"
	if cmp -s "$T/refs.before" "$T/refs.after" && $B verify >/dev/null 2>&1; then pass "$1_untouched";
	else fail "$1_untouched" "refs changed or verify failed"; fi
}
hostile hostile_bad_hash 'does not match its hash' badhash
hostile hostile_oversized_frame 'frame of [0-9]+ bytes .*limit' oversize
hostile hostile_missing_object 'not found' missing
hostile hostile_dotdot_ref "sent ref 'vms/vm/\.\./other/head', which is not a ref of VM vm" dotdot
hostile hostile_other_vm_ref "sent ref 'vms/other/head', which is not a ref of VM vm" othervm
hostile hostile_slash_ref "sent ref 'vms/vm/checkpoints/a/b'" slash
hostile hostile_wrong_kind 'as a blob where a commit was due' badkind
if command -v zstd >/dev/null; then
	hostile hostile_wire_not_zstd 'sent a bad wire stream .*does not decode' zbad
	hostile hostile_wire_missing_base 'names base object [0-9a-f]+, which this store does not have' zbase
	hostile hostile_wire_bomb 'object of [0-9]+ bytes, over the limit' zbomb
	hostile hostile_wire_window 'bad wire stream .*(too much memory|window)' zwindow
	hostile hostile_wire_bad_hash 'does not match its hash' zhash
else
	skip hostile_wire "no zstd tool for the fake server"
fi
# the real server still works afterwards
check pull_after_hostile $B pull "ssh://root@127.0.0.1:$PORT$T/a" vm $RR
check verify_after $B verify
