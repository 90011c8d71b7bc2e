# Leases across hosts over a real sshd: push hands the lease off (removed
# on both sides), pull copies the remote's lease as it is, taking a lease
# held by another host is refused naming it unless --steal.
. "$ROAM_SRC/tests/integration/lib.sh"
. "$ROAM_SRC/tests/integration/sync_sshd.inc"
A="$ROAM --store $T/a"
B="$ROAM --store $T/b"
K=$ROAM_BUILD/guest/counter.elf
[ -f "$K" ] || { skip sync_lease "no $K (make guest-tests)"; exit 0; }
head -c 1M /dev/urandom > "$T/d.img"
$A init >/dev/null && $A create vm --kernel "$K" --disk "$T/d.img" --mem 64M >/dev/null &&
	$A remote add home "$URLA" --remote-roam "$ROAM" && $A push home vm >/dev/null 2>&1 &&
	$B clone "$URLA" vm $RR >/dev/null 2>&1 || { fail sync_lease_setup "cannot push/clone"; exit 0; }
# leases: a VM leased on a is refused on b after a pull, unless stolen
check lease_take_a $A lease vm --take
check push_a_hands_off $A push home vm
$A lease vm | grep -q 'no lease' && pass push_releases_local_lease || fail push_releases_local_lease
$ROAM --store "$T/remote" lease vm | grep -q 'no lease' && pass push_removes_remote_lease ||
	fail push_removes_remote_lease
# leased on the remote host by another machine (as if running there): pull
# copies the lease; taking it here is refused naming the holder, unless stolen
$ROAM --store "$T/remote" lease vm --take --host office-pc >/dev/null
check pull_with_lease $B pull origin vm $RR
$B lease vm | grep -q "leased by office-pc" && pass pull_copies_lease || fail pull_copies_lease "$($B lease vm)"
check_fails lease_refused_names_holder 'leased by host office-pc since .*--steal' $B lease vm --take
if $ROAM run --help 2>&1 | grep -q -- --steal; then
	check_fails run_refused_names_holder 'office-pc' $B run vm --engine bt
else
	skip run_refused_names_holder "roam run has no --steal yet (lease not wired into run)"
fi
check lease_steal $B lease vm --steal
$B lease vm | grep -q "leased by $(hostname)" && pass lease_stolen || fail lease_stolen "$($B lease vm)"
$ROAM --store "$T/remote" lease vm --release
check pull_no_lease $B pull origin vm $RR --force
$B lease vm | grep -q 'no lease' && pass pull_copies_no_lease || fail pull_copies_no_lease "$($B lease vm)"
check verify_all sh -c "$A verify && $B verify && $ROAM --store $T/remote verify"

# a running VM is neither pushed nor pulled into; roam run takes the lease
$A run vm --engine bt </dev/null >"$T/runa.log" 2>&1 &
rp=$!
i=0; while [ $i -lt 100 ] && ! $A status vm 2>/dev/null | grep -q running; do sleep 0.1; i=$((i + 1)); done
check_fails push_running_refused 'is running; suspend it first' $A push home vm
check_fails pull_into_running_refused 'is running here' $A pull home vm
$A lease vm | grep -q "leased by $(hostname)" && pass run_takes_lease || fail run_takes_lease "$($A lease vm)"
$A suspend vm >/dev/null 2>&1
wait $rp
check push_after_suspend $A push home vm
$A lease vm | grep -q 'no lease' && pass suspend_push_releases || fail suspend_push_releases "$($A lease vm)"
