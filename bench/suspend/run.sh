#!/bin/sh
# bench/suspend: suspend and resume of a 1 GiB Linux guest (the guest kit,
# 1 vCPU) that has written 300 MiB of data to tmpfs: half random, half text
# (/proc/kallsyms copied until 150 MiB). The random half comes from a disk
# of host random bytes (the guest's /dev/urandom is too slow under BT),
# shifted by 1000 bytes and byte-swapped in pairs (dd conv=swab) on the way,
# so that it is new data that is nowhere on the disk: roam stores memory
# that repeats disk content the guest read as deltas against the disk, and
# a plain copy would measure that instead (BENCH_RANDOM=disk does, as this
# benchmark did before). init_on_free=1 so that the page cache dropped
# afterwards leaves zeros.
#   roam (BT engine): roam suspend, bytes the store grew by, roam run until
#   the guest answers on its console (lazy and eager memory), a second
#   suspend after 10 MiB more of random data;
#   QEMU TCG (-M pc, same kernel and initrd): migrate "exec:cat > f" with
#   the bandwidth cap lifted, zstd -3 of f, -incoming "exec:cat f" until the
#   guest answers, and the same second save.
# Prints the numbers and the ratios roam/QEMU. Usage: sh bench/suspend/run.sh
# (from the source tree, after make and make kit). BENCH_MEM=512M shrinks
# the guest (and BENCH_DATA_MB the data) where a run would take too long.
set -u
SRC=$(cd "$(dirname "$0")/../.." && pwd)
R=${ROAM:-$SRC/build/roam}
KIT=${ROAM_KIT:-$SRC/build/kit}
MEM=${BENCH_MEM:-1G}
DATA_MB=${BENCH_DATA_MB:-300}
HALF=$((DATA_MB / 2))
Q=qemu-system-x86_64
for f in "$R" "$KIT/vmlinuz" "$KIT/initrd.img"; do
	[ -e "$f" ] || { echo "missing $f (make; make kit)"; exit 1; }
done
command -v $Q >/dev/null && command -v zstd >/dev/null || { echo "needs qemu-system-x86_64 and zstd"; exit 1; }
W=$(mktemp -d /tmp/roam-bench-suspend.XXXXXX)
QPID= RPID=
trap '[ -n "$RPID" ] && kill -9 $RPID 2>/dev/null; [ -n "$QPID" ] && kill -9 $QPID 2>/dev/null; rm -rf "$W"' EXIT
cd "$W" || exit 1
export ROAM_STORE=$W/store ROAM_KIT=$KIT

now() { date +%s.%N; }
dt() { printf '%.3f' "$(echo "$2 - $1" | bc)"; }
ratio() { echo "scale=3; $1 / $2" | bc | sed 's/^\./0./'; }
# wait_for FILE PATTERN SECONDS
wait_for() {
	k=0
	while ! { [ -f "$1" ] && tr -d '\r' < "$1" | grep -aqE "$2"; }; do
		k=$((k + 1)); [ $k -gt $(($3 * 50)) ] && return 1; sleep 0.02
	done
}
wait_gone() { while kill -0 "$1" 2>/dev/null; do sleep 0.02; done; }
stored() { $R du --json | sed 's/.*"stored_bytes":\([0-9]*\).*/\1/'; }
# The guest's work, typed on its console (no echo, no prompt first).
if [ "${BENCH_RANDOM:-new}" = disk ]; then RAND="tail -c +1001 /dev/vda"
else RAND="tail -c +1001 /dev/vda | dd bs=1M conv=swab 2>/dev/null"; fi
GEN="$RAND > /tmp/rand; echo 1 > /proc/sys/vm/drop_caches; cat /proc/kallsyms > /tmp/k; \
n=\$(( $((HALF * 1048576)) / \$(wc -c < /tmp/k) )); i=0; while [ \$i -lt \$n ]; do cat /tmp/k >> /tmp/t; i=\$((i+1)); done; \
echo GEN\$((1+1)) \$(cat /tmp/rand /tmp/t | wc -c)"
MORE="head -c 10485760 /dev/urandom > /tmp/more; echo MORE\$((2+2))"

load0=$(cut -d' ' -f1-3 /proc/loadavg)
# ---- roam ------------------------------------------------------------------
$R init >/dev/null
head -c $((HALF * 1048576 + 4096)) /dev/urandom > rand.img
APPEND="init_on_free=1"
$R create bench --mem "$MEM" --disk rand.img,ro --append "$APPEND" >/dev/null || exit 1
mkfifo rin; exec 3<>rin
rrun() { ROAM_RESTORE=$1 $R run bench --engine bt <&3 > "r.$2.out" 2> "r.$2.err" & RPID=$!; }
t0=$(now)
rrun lazy boot
wait_for r.boot.out 'roam-guest: ready' 600 || { echo "roam: the guest did not boot"; tail -5 r.boot.err; exit 1; }
sleep 2
printf '%s\n' 'stty -echo; PS1=; echo UP$((1+1))' >&3
wait_for r.boot.out UP2 120 || { echo "roam: no shell"; exit 1; }
echo "roam: booted in $(dt "$t0" "$(now)") s"
t0=$(now)
printf '%s\n' "$GEN" >&3
wait_for r.boot.out 'GEN2 ' 1200 || { echo "roam: data generation failed"; exit 1; }
echo "roam: guest wrote $(tr -d '\r' < r.boot.out | sed -n 's/^GEN2 //p') bytes in $(dt "$t0" "$(now)") s"
s0=$(stored)
t0=$(now); $R suspend bench >/dev/null || exit 1; t1=$(now); wait_gone $RPID
r_susp=$(dt "$t0" "$t1"); s1=$(stored); r_bytes=$((s1 - s0))
grep 'suspended bench' r.boot.err
# Resume until the guest answers, lazy then eager (suspending in between:
# the idle guest changes little).
for mode in lazy eager; do
	t0=$(now)
	rrun $mode $mode
	printf '%s\n' 'echo PING$((3+4))' >&3
	wait_for r.$mode.out PING7 120 || { echo "roam: no answer after resume ($mode)"; cat r.$mode.err; exit 1; }
	eval r_res_$mode=$(dt "$t0" "$(now)")
	sleep 2
	$R suspend bench >/dev/null; wait_gone $RPID
	grep -h 'lazy restore\|restored' r.$mode.err
done
rrun lazy more
printf '%s\n' "$MORE" >&3
wait_for r.more.out MORE4 300 || { echo "roam: no answer"; exit 1; }
s2=$(stored)
t0=$(now); $R suspend bench >/dev/null; t1=$(now); wait_gone $RPID; RPID=
r_susp2=$(dt "$t0" "$t1"); s3=$(stored); r_bytes2=$((s3 - s2))
grep 'suspended bench' r.more.err

# ---- QEMU TCG --------------------------------------------------------------
mkfifo qin; exec 4<>qin
qrun() { # NAME extra-args...
	n=$1; shift
	$Q -accel tcg -M pc -m "$MEM" -smp 1 -display none -no-reboot -net none \
		-kernel "$KIT/vmlinuz" -initrd "$KIT/initrd.img" -append "console=ttyS0 $APPEND" \
		-drive "file=$W/rand.img,format=raw,if=virtio,readonly=on" \
		-serial stdio -monitor "unix:$W/mon.$n,server,nowait" "$@" <&4 > "q.$n.out" 2> "q.$n.err" &
	QPID=$!
}
mon() { # NAME COMMAND: one HMP command on QEMU's monitor socket, its output
	python3 - "$W/mon.$1" "$2" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
def until_prompt():
    b = b""
    while not b.endswith(b"(qemu) "):
        d = s.recv(65536)
        if not d:
            break
        b += d
    return b
until_prompt()
s.sendall(sys.argv[2].encode() + b"\n")
sys.stdout.write(until_prompt().decode(errors="replace"))
PY
}
# migrate NAME FILE: prints seconds until "completed"
qsave() {
	mon "$1" "migrate_set_parameter max-bandwidth 100G" >/dev/null
	t0=$(now)
	mon "$1" "migrate \"exec:cat > $2\"" >/dev/null
	while ! mon "$1" "info migrate" | grep -q 'Migration status: completed'; do
		mon "$1" "info migrate" | grep -q 'Migration status: failed' && { echo "failed"; return 1; }
		sleep 0.02
	done
	dt "$t0" "$(now)"
}
t0=$(now)
qrun boot
wait_for q.boot.out 'roam-guest: ready' 600 || { echo "qemu: the guest did not boot"; tail -5 q.boot.err; exit 1; }
sleep 2
printf '%s\n' 'stty -echo; PS1=; echo UP$((1+1))' >&4
wait_for q.boot.out UP2 120 || { echo "qemu: no shell"; exit 1; }
echo "qemu: booted in $(dt "$t0" "$(now)") s"
t0=$(now)
printf '%s\n' "$GEN" >&4
wait_for q.boot.out 'GEN2 ' 1200 || { echo "qemu: data generation failed"; exit 1; }
echo "qemu: guest wrote $(tr -d '\r' < q.boot.out | sed -n 's/^GEN2 //p') bytes in $(dt "$t0" "$(now)") s"
q_mig=$(qsave boot state1) || exit 1
t0=$(now); zstd -q -3 -f state1 -o state1.zst; q_zstd=$(dt "$t0" "$(now)")
q_raw=$(stat -c %s state1); q_bytes=$(stat -c %s state1.zst)
mon boot quit >/dev/null; wait_gone $QPID
t0=$(now)
qrun inc -incoming "exec:cat $W/state1"
# Typed while the state still loads, QEMU's serial line drops the first
# bytes: type the ping again every second until it answers.
k=0
while :; do
	printf '\n%s\n' 'echo PING$((3+5))' >&4
	wait_for q.inc.out PING8 1 && break
	k=$((k + 1)); [ $k -gt 120 ] && { echo "qemu: no answer after -incoming"; cat q.inc.err; exit 1; }
done
q_res=$(dt "$t0" "$(now)")
printf '%s\n' "$MORE" >&4
wait_for q.inc.out MORE4 300 || { echo "qemu: no answer"; exit 1; }
q_mig2=$(qsave inc state2) || exit 1
t0=$(now); zstd -q -3 -f state2 -o state2.zst; q_zstd2=$(dt "$t0" "$(now)")
q_bytes2=$(stat -c %s state2.zst)
mon inc quit >/dev/null; wait_gone $QPID; QPID=

q_susp=$(printf '%.3f' "$(echo "$q_mig + $q_zstd" | bc)"); q_susp2=$(printf '%.3f' "$(echo "$q_mig2 + $q_zstd2" | bc)")
echo
echo "guest: $MEM, 1 vCPU, ${DATA_MB} MiB written to tmpfs (half random, ${BENCH_RANDOM:-new}, half kallsyms text)"
echo "load average: $load0 at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end (2 CPUs)"
printf '%-44s %12s %12s %8s\n' "" roam QEMU ratio
printf '%-44s %12s %12s %8s\n' "suspend, s (QEMU: migrate + zstd -3)" "$r_susp" "$q_susp" "$(ratio "$r_susp" "$q_susp")"
printf '%-44s %12s %12s %8s\n' "  QEMU migrate alone, s" "" "$q_mig" "$(ratio "$r_susp" "$q_mig")"
printf '%-44s %12s %12s %8s\n' "bytes stored (QEMU: zstd -3 file)" "$r_bytes" "$q_bytes" "$(ratio "$r_bytes" "$q_bytes")"
printf '%-44s %12s %12s\n' "  QEMU migration file, raw" "" "$q_raw"
printf '%-44s %12s %12s %8s\n' "resume to first answer, s (roam lazy)" "$r_res_lazy" "$q_res" "$(ratio "$r_res_lazy" "$q_res")"
printf '%-44s %12s %12s %8s\n' "resume to first answer, s (roam eager)" "$r_res_eager" "$q_res" "$(ratio "$r_res_eager" "$q_res")"
printf '%-44s %12s %12s %8s\n' "second suspend after 10 MiB, s" "$r_susp2" "$q_susp2" "$(ratio "$r_susp2" "$q_susp2")"
printf '%-44s %12s %12s %8s\n' "second suspend, bytes" "$r_bytes2" "$q_bytes2" "$(ratio "$r_bytes2" "$q_bytes2")"
printf '%-44s %12s %12s\n' "second / first suspend, bytes" "$(ratio "$r_bytes2" "$r_bytes")" "$(ratio "$q_bytes2" "$q_bytes")"
printf '%-44s %12s %12s\n' "second / first suspend, time" "$(ratio "$r_susp2" "$r_susp")" "$(ratio "$q_susp2" "$q_susp")"
