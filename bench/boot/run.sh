#!/bin/sh
# bench/boot: boot-to-exit time under KVM, roam against QEMU on the same
# /dev/kvm.
#   1. the touch64 test kernel (boots, touches 64 MiB, exits through the
#      debug-exit port): `roam boot --engine kvm` vs
#      `qemu-system-x86_64 -accel kvm -M pc` with isa-debug-exit, 10 runs
#      each, medians and the ratio roam/QEMU (target <= 1.0);
#   2. where the CPU has vmx/svm: the guest kit (Debian kernel + initrd,
#      `roam.halt` powers off after userspace is up) vs QEMU -M microvm.
# Where /dev/kvm is absent or unusable it prints "skipped: <why>" and exits 0.
# Usage: sh bench/boot/run.sh   (ROAM=path/to/roam, BUILD=build, RUNS=10)
set -u
BUILD=${BUILD:-build}
ROAM=${ROAM:-$PWD/$BUILD/roam}
RUNS=${RUNS:-10}
K=$PWD/$BUILD/guest/touch64.elf
QEMU=qemu-system-x86_64

if [ ! -e /dev/kvm ]; then echo "bench/boot: skipped: /dev/kvm absent"; exit 0; fi
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then echo "bench/boot: skipped: no /dev/kvm access"; exit 0; fi
if [ ! -f "$K" ]; then echo "bench/boot: skipped: $K not built (make guest-tests)"; exit 0; fi
if ! command -v $QEMU >/dev/null; then echo "bench/boot: skipped: $QEMU not installed"; exit 0; fi

W=$(mktemp -d /tmp/roam-bench-boot.XXXXXX)
trap 'rm -rf "$W"' EXIT

now_ns() { date +%s%N; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# time_runs FILE EXPECTED_STATUS CMD... : RUNS timings (ms) into FILE;
# returns non-zero when a run ends with another status.
time_runs() {
	out=$1; want=$2; shift 2
	: > "$out"
	i=0
	while [ $i -lt "$RUNS" ]; do
		t0=$(now_ns)
		timeout -k 5 300 "$@" >"$W/run.log" 2>&1 </dev/null
		rc=$?
		t1=$(now_ns)
		if [ $rc -ne "$want" ]; then
			echo "  run failed with status $rc (expected $want): $(tail -n 3 "$W/run.log" | tr '\n' ' ')"
			return 1
		fi
		echo $(( (t1 - t0) / 1000000 )) >> "$out"
		i=$((i + 1))
	done
}

report() { # LABEL ROAM_FILE PEER_FILE PEER_NAME
	r=$(median < "$2"); q=$(median < "$3")
	ratio=$(echo "scale=2; $r / $q" | bc -l)
	printf '%-28s roam %8s ms   %-14s %8s ms   ratio %s (target <= 1.0)\n' "$1" "$r" "$4" "$q" "$ratio"
}

echo "bench/boot: $RUNS runs each, medians; host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
if grep -qwE 'vmx|svm' /proc/cpuinfo; then echo "  /dev/kvm with hardware virtualization"
else echo "  /dev/kvm without vmx/svm (PVM): guest kernel code is emulated"; fi

ok=1
time_runs "$W/roam.t" 33 "$ROAM" boot --engine kvm --mem 256M "$K" || ok=0
time_runs "$W/qemu.t" 33 $QEMU -accel kvm -M pc -m 256M -nographic -no-reboot -net none \
	-device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel "$K" || ok=0
if [ $ok -eq 1 ]; then report "touch64 (test kernel)" "$W/roam.t" "$W/qemu.t" "qemu -accel kvm"
else echo "touch64 (test kernel): a run failed; no numbers"; fi

if ! grep -qwE 'vmx|svm' /proc/cpuinfo; then
	echo "kit vs microvm: skipped: no vmx/svm (a stock kernel under PVM takes minutes)"
	exit 0
fi
KIT=$PWD/$BUILD/kit
if [ ! -f "$KIT/vmlinuz" ] || [ ! -f "$KIT/initrd.img" ]; then
	echo "kit vs microvm: skipped: guest kit not built (make kit)"
	exit 0
fi
APPEND="console=ttyS0 roam.halt quiet"
ok=1
time_runs "$W/roam-kit.t" 0 "$ROAM" boot --engine kvm --mem 512M \
	--initrd "$KIT/initrd.img" --append "$APPEND" "$KIT/vmlinuz" || ok=0
time_runs "$W/qemu-kit.t" 0 $QEMU -accel kvm -M microvm -m 512M -nographic -no-reboot \
	-kernel "$KIT/vmlinuz" -initrd "$KIT/initrd.img" -append "$APPEND" || ok=0
if [ $ok -eq 1 ]; then report "kit (Debian kernel, halt)" "$W/roam-kit.t" "$W/qemu-kit.t" "qemu microvm"
else echo "kit vs microvm: a run failed; no numbers"; fi
