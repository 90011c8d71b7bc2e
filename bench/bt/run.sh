#!/bin/sh
# bench/bt: the binary-translation engine against QEMU TCG.
#   1. the guest kit (Debian kernel + initrd, `roam.halt`: power off as soon
#      as userspace is up), boot to power-off, 512 MiB, one vCPU:
#      `roam boot --engine bt` vs `qemu-system-x86_64 -accel tcg -M pc`;
#   2. the cpubench test kernel (SHA-256 and sorting over mb= MiB with
#      paging on) under roam BT, QEMU TCG and, where /dev/kvm works, roam
#      KVM.
# RUNS runs each (default 5); prints the medians of wall time and of CPU
# time (user + sys, which a busy shared host distorts less) and the ratios
# roam/QEMU (issue target for the kit: <= 1.5 and under 30 s).
# Usage: sh bench/bt/run.sh   (ROAM=path/to/roam, BUILD=build, RUNS=5, MB=16)
set -u
BUILD=${BUILD:-build}
ROAM=${ROAM:-$PWD/$BUILD/roam}
RUNS=${RUNS:-5}
MB=${MB:-16}
QEMU=qemu-system-x86_64
KIT=$PWD/$BUILD/kit
CB=$PWD/$BUILD/guest/cpubench.elf

if ! command -v $QEMU >/dev/null; then echo "bench/bt: skipped: $QEMU not installed"; exit 0; fi
if [ ! -x /usr/bin/time ]; then echo "bench/bt: skipped: /usr/bin/time not installed"; exit 0; fi

W=$(mktemp -d /tmp/roam-bench-bt.XXXXXX)
trap 'rm -rf "$W"' EXIT
cp "$ROAM" "$W/roam" && ROAM=$W/roam

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# time_runs NAME EXPECTED_STATUS CMD... : RUNS runs; wall and CPU seconds
# into $W/NAME.wall and $W/NAME.cpu. Fails when a run ends otherwise.
time_runs() {
	name=$1; want=$2; shift 2
	: > "$W/$name.wall"; : > "$W/$name.cpu"
	i=0
	while [ $i -lt "$RUNS" ]; do
		/usr/bin/time -f "%e %U %S" -o "$W/time" timeout -k 5 600 "$@" >"$W/run.log" 2>&1 </dev/null
		rc=$?
		if [ $rc -ne "$want" ]; then
			echo "  $name: run failed with status $rc (expected $want): $(tail -n 3 "$W/run.log" | tr '\r\n' '  ')"
			return 1
		fi
		tail -n 1 "$W/time" | awk '{ print $1 }' >> "$W/$name.wall"
		tail -n 1 "$W/time" | awk '{ print $2 + $3 }' >> "$W/$name.cpu"
		i=$((i + 1))
	done
}

# report LABEL A B : medians of A and B (wall and CPU) and the ratios A/B.
report() {
	aw=$(median < "$W/$2.wall"); ac=$(median < "$W/$2.cpu")
	bw=$(median < "$W/$3.wall"); bc=$(median < "$W/$3.cpu")
	printf '%-34s wall %7.2f s vs %7.2f s  ratio %5.2f | cpu %7.2f s vs %7.2f s  ratio %5.2f\n' \
		"$1" "$aw" "$bw" "$(echo "$aw / $bw" | bc -l)" "$ac" "$bc" "$(echo "$ac / $bc" | bc -l)"
}

echo "bench/bt: $RUNS runs each, medians; host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"

if [ -f "$KIT/vmlinuz" ] && [ -f "$KIT/initrd.img" ]; then
	ok=1
	time_runs kit-bt 0 "$ROAM" boot --engine bt --mem 512M --cpus 1 \
		--initrd "$KIT/initrd.img" --append "roam.halt" "$KIT/vmlinuz" || ok=0
	time_runs kit-tcg 0 $QEMU -accel tcg -M pc -m 512M -smp 1 -nographic -no-reboot -net none \
		-kernel "$KIT/vmlinuz" -initrd "$KIT/initrd.img" -append "console=ttyS0 roam.halt" || ok=0
	if [ $ok -eq 1 ]; then report "kit boot->poweroff: bt vs tcg" kit-bt kit-tcg
	else echo "kit: a run failed; no numbers"; fi
else
	echo "kit: skipped: guest kit not built (make kit)"
fi

if [ -f "$CB" ]; then
	ok=1
	time_runs cb-bt 33 "$ROAM" boot --engine bt --mem 256M --append "mb=$MB" "$CB" || ok=0
	time_runs cb-tcg 33 $QEMU -accel tcg -M pc -m 256M -nographic -no-reboot -net none \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel "$CB" -append "mb=$MB" || ok=0
	if [ $ok -eq 1 ]; then report "cpubench mb=$MB: bt vs tcg" cb-bt cb-tcg
	else echo "cpubench: a run failed; no numbers"; fi
	if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
		if time_runs cb-kvm 33 "$ROAM" boot --engine kvm --mem 256M --append "mb=$MB" "$CB"; then
			report "cpubench mb=$MB: bt vs roam kvm" cb-bt cb-kvm
		fi
	else
		echo "cpubench under roam kvm: skipped: /dev/kvm absent"
	fi
else
	echo "cpubench: skipped: $CB not built (make guest-tests)"
fi
