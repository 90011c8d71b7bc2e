# Interrupted push over a real sshd: the far side's roam serve is killed in
# the middle of a push of a 96 MiB disk. What arrived stays (committed in
# batches), the re-run sends only the rest, and both stores pass verify.
. "$ROAM_SRC/tests/integration/lib.sh"
. "$ROAM_SRC/tests/integration/sync_sshd.inc"
command -v sqlite3 >/dev/null || { skip sync_interrupt "no sqlite3 CLI"; exit 0; }
A="$ROAM --store $T/a"
K=$ROAM_BUILD/guest/counter.elf
[ -f "$K" ] || { skip sync_interrupt "no $K (make guest-tests)"; exit 0; }
head -c 96M /dev/urandom > "$T/d.img"
$A init >/dev/null && $A create vm --kernel "$K" --disk "$T/d.img" --mem 64M >/dev/null ||
	{ fail sync_interrupt_setup "cannot create the VM"; exit 0; }
rm -f "$T/d.img"
total=$(sqlite3 "$T/a/store.db" "SELECT count(*) FROM objects")
json_field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }

$A --json push "$URLA" vm $RR > "$T/p1" 2>"$T/p1e" &
pp=$!
# wait until the far side has committed a batch, then kill its roam serve
n=0; i=0
while [ $i -lt 600 ]; do
	n=$(sqlite3 "$T/remote/store.db" "SELECT count(*) FROM objects" 2>/dev/null || echo 0)
	[ "${n:-0}" -ge 300 ] && break
	i=$((i + 1)); sleep 0.05
done
spid=$(pgrep -f "serve --stdio --create $T/remote" | head -1)
[ -n "$spid" ] && kill -9 "$spid"
wait $pp
rc=$?
if [ $rc -ne 0 ] && [ -n "$spid" ]; then pass push_interrupted;
else fail push_interrupted "rc=$rc spid=$spid: $(cat "$T/p1e")"; fi
grep -qE 'connection|went away|closed|killed|exit' "$T/p1e" && pass interrupted_error_clear ||
	fail interrupted_error_clear "$(cat "$T/p1e")"
arrived=$(sqlite3 "$T/remote/store.db" "SELECT count(*) FROM objects")
[ "$arrived" -ge 256 ] && [ "$arrived" -lt "$total" ] && pass interrupted_kept_what_arrived ||
	fail interrupted_kept_what_arrived "arrived=$arrived of $total"
$ROAM --store "$T/remote" ls 2>/dev/null | grep -q '^vm' && fail interrupted_no_ref "vm ref exists" ||
	pass interrupted_no_ref

$A --json push "$URLA" vm $RR > "$T/p2" 2>"$T/p2e" && pass push_rerun || fail push_rerun "$(cat "$T/p2e")"
sent2=$(json_field objects < "$T/p2")
if [ -n "$sent2" ] && [ $((sent2 + arrived)) -le $((total + 2)) ] && [ "$sent2" -lt "$total" ]; then
	pass rerun_sends_only_the_rest
else
	fail rerun_sends_only_the_rest "sent $sent2 after $arrived arrived, $total in all"
fi
check verify_local $A verify
check verify_remote $ROAM --store "$T/remote" verify
$ROAM --store "$T/remote" ls | grep -q '^vm' && pass remote_has_vm || fail remote_has_vm
