#!/bin/sh
# Every test kernel ($ROAM_BUILD/guest/*.elf, tests/guest/) under
# `roam boot --engine kvm`: exceptions, user mode, timers (PIT, LAPIC),
# virtio-blk, SMP (--cpus 2 and 4), hostile virtio input. A kernel passes
# with debug-exit status 33 and "RESULT: PASS" on the console; status 37
# (the kernel skipped itself) is a skip. Skipped where /dev/kvm is absent
# or not accessible. Benchmark-only kernels (cpubench, counter, touch64)
# run in bench/ instead.
. "$ROAM_SRC/tests/integration/lib.sh"

if [ ! -e /dev/kvm ]; then skip kvm_kernels "/dev/kvm absent"; exit 0; fi
if ! have_kvm; then skip kvm_kernels "no /dev/kvm access"; exit 0; fi
set -- "$ROAM_BUILD"/guest/*.elf
if [ ! -f "$1" ]; then skip kvm_kernels "no test kernels in $ROAM_BUILD/guest (make guest-tests)"; exit 0; fi

# run NAME KERNEL ARGS... : boots under KVM with a time limit.
run() {
	name=$1; k=$2; shift 2
	timeout -k 5 120 "$ROAM" boot --engine kvm --mem 256M "$@" "$k" >"$T/$name.out" 2>"$T/$name.err" </dev/null
	rc=$?
	if [ $rc -eq 33 ] && grep -q "RESULT: PASS" "$T/$name.out"; then
		pass "kvm_$name"
	elif [ $rc -eq 37 ]; then
		skip "kvm_$name" "$(grep -m1 'SKIP' "$T/$name.out" || echo 'kernel skipped itself')"
	else
		fail "kvm_$name" "exit $rc: $(grep -E 'FAIL|FATAL' "$T/$name.out" | head -n 3 | tr '\n' ' ')$(tail -n 2 "$T/$name.err" | tr '\n' ' ')"
	fi
}

for k in "$@"; do
	n=$(basename "$k" .elf)
	case $n in
	cpubench|counter|touch64) continue ;;
	virtio_blk|hostile_virtio)
		truncate -s 16M "$T/$n.img"
		run "$n" "$k" --disk "$T/$n.img" ;;
	smp)
		run smp_2 "$k" --cpus 2
		run smp_4 "$k" --cpus 4 ;;
	*)
		run "$n" "$k" ;;
	esac
done
