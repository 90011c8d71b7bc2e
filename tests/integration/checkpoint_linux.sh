#!/bin/sh
# Suspend, resume, checkpoint and rollback of the kit's Linux guest (1 GiB,
# 1 vCPU) under the BT engine. One boot serves every check, because Linux
# boots in tens of seconds under BT here:
#   incremental  an idle guest suspended twice: the second suspend stores at
#                most 5% of the bytes of the first;
#   continuity   a shell loop appends an increasing counter (a shell
#                variable, in memory) to a file on the guest's disk and
#                prints it with /proc/uptime; across two suspend/resume
#                cycles the console and the file continue without loss or
#                repetition, and uptime keeps running;
#   wall clock   suspended for 6 s, the resumed guest's time of day is
#                within 2 s of the host's (the kit's clock agent steps it to
#                the RTC) while its uptime did not jump by the 6 s;
#   fsck         checkpoint while the guest writes its disk heavily, roll
#                back to it, resume, stop the writers, power off: the
#                exported disk passes e2fsck -fn.
# The console is driven through a FIFO on roam's stdin.
. "$ROAM_SRC/tests/integration/lib.sh"
R="$ROAM"
cd "$T" || exit 1
KIT="${ROAM_KIT:-$ROAM_BUILD/kit}"
for f in vmlinuz initrd.img root.ext4; do
	[ -f "$KIT/$f" ] || { skip linux_guest "$KIT/$f missing (make kit)"; exit 0; }
done
command -v e2fsck >/dev/null 2>&1 || { skip linux_guest "no e2fsck"; exit 0; }
export ROAM_KIT="$KIT"
$R init >/dev/null
$R create lx --mem 1G >/dev/null || { fail create; exit 0; }

mkfifo in.fifo
exec 3<>in.fifo                     # keeps the FIFO open across runs
pid=
cleanup_vm() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; [ -d mnt ] && $R umount mnt 2>/dev/null; }
trap 'cleanup_vm; rm -rf "$T"' EXIT
runno=0
run() { runno=$((runno + 1)); $R run lx --engine bt <&3 > "out.$runno" 2> "err.$runno" & pid=$!; }
# say TEXT: types a line on the guest's console.
say() { printf '%s\n' "$1" >&3; }
# wait_out PATTERN SECONDS: until the current run's console shows PATTERN.
wait_out() {
	k=0
	while ! grep -aqE "$1" "out.$runno" 2>/dev/null; do
		kill -0 "$pid" 2>/dev/null || return 1
		k=$((k + 1)); [ $k -gt $(($2 * 5)) ] && return 1; sleep 0.2
	done
}
wait_exit() {
	k=0
	while kill -0 "$pid" 2>/dev/null; do
		k=$((k + 1)); [ $k -gt $(($1 * 5)) ] && return 1; sleep 0.2
	done
	pid=
}
suspend() { $R suspend lx > susp.out 2>&1 && wait_exit 60; }
stored() { $R du --json | sed 's/.*"stored_bytes":\([0-9]*\).*/\1/'; }
# resume: runs the suspended VM and waits until its console answers.
resume() {
	run
	m=$runno$runno
	say "echo PING\$((${m}+1))"
	wait_out "PING$((m + 1))" 60
}
bail() { fail "$1" "$2"; cleanup_vm; exit 0; }

t0=$(date +%s)
run
wait_out '^roam-guest: disk mounted' 240 || bail boot "no prompt: $(tail -c 300 "out.$runno" | tr -d '\r')"
# No echo and no prompt: the console then carries only what commands print.
say 'stty -echo; PS1=; echo READY$((1+1))'
wait_out READY2 60 || bail boot "shell does not answer: $(tail -c 300 "out.$runno")"
pass "boot ($(($(date +%s) - t0)) s)"

# ---- incremental: idle guest, two suspends --------------------------------
s0=$(stored)
suspend || bail suspend1 "$(cat susp.out)"
s1=$(stored)
resume || bail resume1 "$(cat "err.$runno")"
sleep 3
suspend || bail suspend2 "$(cat susp.out)"
s2=$(stored)
first=$((s1 - s0)); second=$((s2 - s1))
echo "first suspend stored $first bytes, second $second"
check incremental_5pct sh -c "[ $first -gt 0 ] && [ $((second * 100)) -le $((first * 5)) ]"

# ---- wall clock after resume ----------------------------------------------
resume || bail resume_clock "$(cat "err.$runno")"
say 'read up x < /proc/uptime; echo "UP1 $up"'
wait_out '^UP1 ' 60 || bail uptime1 "$(tail -c 300 "out.$runno")"
h1=$(date +%s.%N)
u1=$(tr -d '\r' < "out.$runno" | sed -n 's/^UP1 //p' | tail -n 1)
suspend || bail suspend_clock "$(cat susp.out)"
sleep 6
resume || bail resume_clock2 "$(cat "err.$runno")"
# The agent checks every 2 s (guest time): give it 3.
say 'sleep 3; read up x < /proc/uptime; echo "UP2 $up $(date +%s)"'
wait_out '^UP2 ' 60 || bail uptime2 "$(tail -c 300 "out.$runno")"
h2=$(date +%s.%N)
set -- $(tr -d '\r' < "out.$runno" | sed -n 's/^UP2 //p' | tail -n 1)
u2=$1 g=$2
echo "guest clock $g, host $h2; guest uptime $u1 -> $u2 over $(echo "$h2 - $h1" | bc) s of host time"
check wallclock_after_resume awk -v g="$g" -v h="$h2" 'BEGIN{d=g-h; if (d<0) d=-d; exit !(d<=2)}'
# Uptime ran on (u2 > u1) but not through the 6 s the VM was suspended.
check uptime_no_jump awk -v a="$u1" -v b="$u2" -v s="$h1" -v e="$h2" 'BEGIN{exit !(b>a && b-a <= e-s-5)}'
suspend || bail suspend_clock2 "$(cat susp.out)"

# ---- continuity over two suspend/resume cycles ---------------------------
resume || bail resume2 "$(cat "err.$runno")"
start=$runno
# In the foreground: it ends when a line is typed (read -t is its sleep).
say 'i=0; while ! read -t 0.01 x; do i=$((i+1)); echo $i >> /mnt/cnt; read up y < /proc/uptime; echo "C $i $up"; done; sync; echo LOOP$((2+3))'
wait_out '^C 20 ' 60 || bail loop "the loop does not run: $(tail -c 300 "out.$runno")"
for cycle in 1 2; do
	suspend || bail "cycle${cycle}_suspend" "$(cat susp.out)"
	run
	wait_out "^C [0-9]+ " 60 || bail "cycle${cycle}_resume" "$(cat "err.$runno")"
	sleep 2
done
say 'stop'
wait_out LOOP5 60 || bail loop_stop "$(tail -c 300 "out.$runno")"
say 'awk '\''NR!=$1{b++} END{print "FILE" "CHECK", NR, b+0}'\'' /mnt/cnt'
wait_out '^FILECHECK' 60 || bail filecheck "$(tail -c 300 "out.$runno")"
# The console stream of all runs, in order: "C i uptime" lines from 1 on,
# each once, i+1 after i, uptime never going back.
i=$start; : > cons
while [ $i -le $runno ]; do cat "out.$i" >> cons; i=$((i + 1)); done
tr -d '\r' < cons | grep -a '^C [0-9]* [0-9.]*$' > clines
check console_continuity awk 'BEGIN{e=1} $2!=e{print "line", NR, "has", $2, "expected", e; exit 1}
	{e++} $3+0<u{print "uptime went back at", $2; exit 1} {u=$3+0} END{if (e<40) {print "only", e-1; exit 1}}' clines
last=$(tail -n 1 clines | cut -d' ' -f2)
fc=$(tr -d '\r' < "out.$runno" | grep -a '^FILECHECK' | tail -n 1)
check disk_continuity sh -c "[ \"$fc\" = \"FILECHECK $last 0\" ]"
check resume_notice grep -q "resumed lx" "err.$runno"

# ---- checkpoint during heavy disk writes, rollback, fsck ------------------
# Two writers under a foreground subshell that stops them when a line is
# typed (with the writers as jobs of the interactive shell, busybox ash
# under BT exits when a job ends).
say '(echo WRITING$((3+4)); (k=0; while [ ! -e /tmp/stopw ]; do dd if=/dev/urandom of=/mnt/w$((k%3)) bs=64k count=48 2>/dev/null; k=$((k+1)); done) & (while [ ! -e /tmp/stopw ]; do cp -r /lib/modules /mnt/tree 2>/dev/null; rm -rf /mnt/tree; done) & read -r x; touch /tmp/stopw; wait); sync; echo SYNCED$((4+5))'
wait_out WRITING7 60 || bail writers "$(tail -c 300 "out.$runno")"
sleep 3
check checkpoint_while_writing $R checkpoint lx W -m "during heavy writes"
sleep 2
suspend || bail suspend3 "$(cat susp.out)"
check rollback_to_W $R rollback lx W
run
say 'go'
wait_out SYNCED9 120 || bail rollback_resume "$(cat "err.$runno"; tail -c 300 "out.$runno")"
say 'exit'
wait_exit 120 || bail poweroff "the guest did not power off: $(tail -c 300 "out.$runno")"
mkdir mnt
if [ -c /dev/fuse ] && $R mount mnt; then
	cp mnt/vms/lx/head/disk0.raw after.raw
	cp mnt/vms/lx/checkpoints/W/disk0.raw atW.raw
	$R umount mnt
	check fsck_after_rollback e2fsck -fn after.raw
	# The disk of W alone is a crash image of a mounted ext4: after its
	# journal is replayed it must be clean too.
	e2fsck -fy atW.raw > fsckW.1 2>&1
	check fsck_checkpoint_disk e2fsck -fn atW.raw
else
	skip fsck_after_rollback "no FUSE to export the disk"
fi
check verify $R verify
echo "total $(($(date +%s) - t0)) s"
