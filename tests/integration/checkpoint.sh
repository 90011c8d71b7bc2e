#!/bin/sh
# Suspend, resume, checkpoints and rollback of running VMs under the BT
# engine, with the counter test kernel: a user-mode counter in memory and a
# numbered record appended to the disk every 5 ms (tests/guest/README.md).
. "$ROAM_SRC/tests/integration/lib.sh"
R="$ROAM"
K="$ROAM_BUILD/guest/counter.elf"
CHECK="$ROAM_BUILD/tools/counter_check"
cd "$T" || exit 1
[ -f "$K" ] || { fail setup "$K missing (make guest-tests)"; exit 0; }
$R init >/dev/null

# wait_for FILE PATTERN SECONDS: until PATTERN appears in FILE.
wait_for() {
	n=0
	while ! grep -qE "$2" "$1" 2>/dev/null; do
		n=$((n + 1)); [ $n -gt $(($3 * 10)) ] && return 1; sleep 0.1
	done
}
# wait_exit PID SECONDS
wait_exit() {
	n=0
	while kill -0 "$1" 2>/dev/null; do
		n=$((n + 1)); [ $n -gt $(($2 * 10)) ] && return 1; sleep 0.1
	done
}
# Fields of the last / first COUNTER progress line of a console log.
last_field() { grep -a '^COUNTER seq=' "$1" | tail -n 1 | tr ' \r' '\n\n' | sed -n "s/^$2=//p"; }
first_field() { grep -a '^COUNTER seq=' "$1" | head -n 1 | tr ' \r' '\n\n' | sed -n "s/^$2=//p"; }

# run VM LOG: start roam run in the background; sets $pid.
run() { $R run "$1" --engine bt > "$2" 2> "$2.err" & pid=$!; }

# cycles VM CPUS: boot, then three suspend/resume cycles; checks that seq,
# counter and ticks continue across every resume and that the disk records
# have no gap or repetition.
cycles() {
	vm=$1; cpus=$2
	truncate -s 16M "$vm.img"
	$R create "$vm" --kernel "$K" --disk "$vm.img" --mem 64M --cpus "$cpus" \
		--append "print_every=10 cpus=$cpus" >/dev/null || { fail "${vm}_create"; return; }
	ok=1; prev_seq=-1; prev_val=-1; prev_ticks=-1
	for i in 1 2 3 4; do
		run "$vm" "$vm.$i.log"
		if ! wait_for "$vm.$i.log" '^COUNTER seq=[0-9]*[1-9]' 60; then
			fail "${vm}_cycle$i" "no progress: $(tail -c 300 "$vm.$i.log.err")"; ok=0; break
		fi
		sleep 0.3
		if ! $R suspend "$vm" >/dev/null 2>"$vm.susp.err" || ! wait_exit $pid 30; then
			fail "${vm}_suspend$i" "$(cat "$vm.susp.err")"; ok=0; break
		fi
		s=$(first_field "$vm.$i.log" seq); v=$(first_field "$vm.$i.log" value); t=$(first_field "$vm.$i.log" ticks)
		if [ "$s" -le "$prev_seq" ] || [ "$v" -le "$prev_val" ] || [ "$t" -le "$prev_ticks" ]; then
			fail "${vm}_continuity$i" "after resume seq=$s value=$v ticks=$t, before $prev_seq $prev_val $prev_ticks"; ok=0
		fi
		prev_seq=$(last_field "$vm.$i.log" seq); prev_val=$(last_field "$vm.$i.log" value)
		prev_ticks=$(last_field "$vm.$i.log" ticks)
	done
	[ $ok = 1 ] && pass "${vm}_continuity"
	check "${vm}_resume_notice" grep -q "resumed $vm" "$vm.2.log.err"
	# The disk: every record from 0 on, once, in order, from one boot.
	mkdir -p "mnt.$vm"
	if [ -c /dev/fuse ] && $R mount "mnt.$vm"; then
		check "${vm}_disk_records" "$CHECK" "mnt.$vm/vms/$vm/head/disk0.raw" 0 "$prev_seq"
		$R umount "mnt.$vm"
	else
		skip "${vm}_disk_records" "no FUSE to read the disk"
	fi
}
cycles c1 1
cycles c2 2

# Rollback: checkpoint A, keep running, suspend, roll back to A, run: the
# guest continues from A's counter, not from where it was suspended.
truncate -s 16M rb.img
$R create rb --kernel "$K" --disk rb.img --mem 64M --append "print_every=10" >/dev/null
run rb rb.1.log
wait_for rb.1.log '^COUNTER seq=[0-9]*[1-9]' 60 && sleep 0.3
$R checkpoint rb A -m "before" > cp.out 2>&1
check checkpoint_running grep -q "checkpoint A of running rb" cp.out
sleep 1
$R suspend rb >/dev/null; wait_exit $pid 30
check_fails rollback_unknown_tag "no checkpoint 'nope'" $R rollback rb nope
$R rollback rb A > rb.out 2>&1
check rollback grep -q "at checkpoint A" rb.out
run rb rb.2.log
wait_for rb.2.log '^COUNTER seq=' 60
after=$(first_field rb.2.log seq); last=$(last_field rb.1.log seq)
$R suspend rb >/dev/null; wait_exit $pid 30
check rollback_state sh -c "[ $after -lt $last ]"
check rollback_log_keeps_replaced sh -c "$R log rb | grep -q replaced/"
# The VM's lease ref (a blob) is not a commit to walk: no complaint about it.
check log_quiet sh -c "$R log rb 2>&1 >/dev/null | wc -c | grep -qx 0"
check log_json sh -c "$R log --json rb | grep -q '\"refs\":\"A\"'"
check checkpoint_offline sh -c "$R checkpoint rb B >/dev/null && $R log rb | grep -q '(head, B)\|(B, head)'"
check checkpoint_delete sh -c "$R checkpoint --delete rb B >/dev/null && ! $R log rb | grep -q '(B'"

# A VM leased by another host is refused; --steal takes the lease over.
if $R lease rb --take --steal --host elsewhere >/dev/null 2>&1; then
	check_fails run_leased_elsewhere "leased by host elsewhere.*--steal" $R run rb --engine bt
	$R run rb --engine bt --steal > steal.log 2> steal.err & pid=$!
	wait_for steal.log '^COUNTER seq=' 60
	$R suspend rb >/dev/null; wait_exit $pid 30
	check run_steal grep -q "took over the lease of rb from host elsewhere" steal.err
	check lease_is_ours sh -c "$R lease rb | grep -q \"$(hostname)\""
else
	fail lease_setup "roam lease --take --host failed"
fi

# Ctrl-A s on a terminal console suspends like 'roam suspend' (script(1)
# gives roam a pseudo-terminal).
if command -v script >/dev/null 2>&1; then
	(sleep 3; printf "\001s") |
		timeout 60 script -qfec "$R run rb --engine bt" /dev/null > esc.log 2>&1
	check escape_suspend sh -c "grep -q 'suspended rb: commit' esc.log && $R status rb | grep -q suspended"
else
	skip escape_suspend "no script(1) for a terminal"
fi

# Bad input: a VM running twice, unknown VM, too much memory, and damaged
# objects: a clear line, and the head still resumes.
run rb rb.3.log
wait_for rb.3.log '^COUNTER seq=' 60
check_fails run_twice "already running" $R run rb --engine bt
check_fails rollback_while_running "is running" $R rollback rb A
$R suspend rb >/dev/null; wait_exit $pid 30
check_fails run_unknown "no VM named nosuch" $R run nosuch
$R create big --kernel "$K" --mem 100000G --no-disk >/dev/null 2>&1
check_fails run_too_big "needs .* MiB of memory but this host has" $R run big --engine bt
check_fails create_exists "exists already" $R create rb --kernel "$K" --no-disk
check_fails create_not_kernel "not a kernel" $R create x --kernel /etc/passwd --no-disk

head=$($R log --json rb | sed 's/^\[{"commit":"\([0-9a-f]*\)".*/\1/')
cp -r "$ROAM_STORE" damaged
sqlite3 damaged/store.db "UPDATE objects SET data = zeroblob(length(data)) WHERE kind = 3" 2>/dev/null
ROAM_STORE=$T/damaged $R run rb --engine bt > /dev/null 2> dmg.err; rc=$?
check corrupt_state_refused sh -c "[ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -qiE 'corrupt|does not match' dmg.err"
check corrupt_head_unchanged sh -c "ROAM_STORE=$T/damaged $R log --json rb | grep -q '^\[{\"commit\":\"$head\"'"
# Damaged memory chunks: refused before running (eager) or as soon as the
# guest touches one (lazy); nothing of the run is saved either way.
rm -rf damaged; cp -r "$ROAM_STORE" damaged
sqlite3 damaged/store.db "UPDATE objects SET data = zeroblob(length(data)) WHERE kind = 1 AND length(data) > 1000" 2>/dev/null
for mode in eager lazy; do
	ROAM_RESTORE=$mode ROAM_STORE=$T/damaged timeout 60 $R run rb --engine bt > /dev/null 2> dmg.$mode.err; rc=$?
	check corrupt_memory_refused_$mode sh -c "[ $rc -ne 0 ] && [ $rc -lt 124 ] && grep -qiE 'memory' dmg.$mode.err"
	check corrupt_memory_head_unchanged_$mode sh -c "ROAM_STORE=$T/damaged $R log --json rb | grep -q '^\[{\"commit\":\"$head\"'"
done

# kill -9 while saving: the previous commit stays whole and resumable, and
# the next run says what happened.
for trial in 1 2 3 4 5; do
	run rb kill.$trial.log
	wait_for kill.$trial.log '^COUNTER seq=' 60
	# odd trials kill during a suspend, even ones during a checkpoint
	if [ $((trial % 2)) = 1 ]; then $R suspend rb >/dev/null 2>&1 &
	else $R checkpoint rb K$trial >/dev/null 2>&1 &
	fi
	sleep 0.0$trial
	kill -9 $pid 2>/dev/null
	wait
done
check kill9_verify $R verify
run rb kill.run.log
wait_for kill.run.log '^COUNTER seq=' 60
kill -9 $pid; wait
run rb kill.after.log
wait_for kill.after.log '^COUNTER seq=' 60
check kill9_resumes grep -q '^COUNTER seq=' kill.after.log
check kill9_says_what_happened grep -q "ended without saving" kill.after.log.err
$R suspend rb >/dev/null; wait_exit $pid 30
check kill9_verify_after $R verify
