#!/bin/sh
# Every test kernel ($ROAM_BUILD/guest/*.elf) under `roam boot --engine bt`,
# the binary translator: exceptions with every error code, user mode and
# SYSCALL/SYSRET/INT 0x80, timers (PIT, LAPIC, TSC deadline), real <->
# protected <-> long mode round trips, self-modifying code (incl. device
# DMA over code), virtio-blk (pattern checked from the host, then read
# back by a second boot), hostile virtio input, SMP (--cpus 2 and 4,
# INIT/SIPI into real mode), cpubench with its known checksum, touch64.
# A kernel passes with debug-exit status 33 and "RESULT: PASS" on the
# console; status 37 (the kernel skipped itself) is a skip. counter belongs
# to the checkpoint tests.
. "$ROAM_SRC/tests/integration/lib.sh"

set -- "$ROAM_BUILD"/guest/*.elf
if [ ! -f "$1" ]; then skip bt_kernels "no test kernels in $ROAM_BUILD/guest (make guest-tests)"; exit 0; fi
if ! "$ROAM" boot --help >/dev/null 2>&1; then skip bt_kernels "roam boot is not built"; exit 0; fi

# run NAME KERNEL ARGS... : boots under BT with a time limit.
run() {
	name=$1; k=$2; shift 2
	timeout -k 5 120 "$ROAM" boot --engine bt --mem 256M "$@" "$k" >"$T/$name.out" 2>"$T/$name.err" </dev/null
	rc=$?
	if [ $rc -eq 33 ] && grep -q "RESULT: PASS" "$T/$name.out"; then
		pass "bt_$name"
	elif [ $rc -eq 37 ]; then
		skip "bt_$name" "$(grep -m1 'SKIP' "$T/$name.out" || echo 'kernel skipped itself')"
	else
		fail "bt_$name" "exit $rc: $(grep -E 'FAIL|FATAL|EXCEPTION' "$T/$name.out" | head -n 3 | tr '\n' ' ')$(tail -n 2 "$T/$name.err" | tr '\n' ' ')"
	fi
}

for k in "$@"; do
	n=$(basename "$k" .elf)
	case $n in
	counter) continue ;;
	virtio_blk)
		truncate -s 16M "$T/blk.img"
		run virtio_blk "$k" --disk "$T/blk.img" --append "sectors=256"
		line=$(dd if="$T/blk.img" bs=512 skip=255 count=1 2>/dev/null | head -c 31)
		if [ "$line" = "roam-blk sector 0000255 line 00" ]; then pass bt_virtio_blk_host_sees_data
		else fail bt_virtio_blk_host_sees_data "sector 255 starts with '$line'"; fi
		run virtio_blk_verify "$k" --disk "$T/blk.img,ro" --append "mode=verify ro sectors=256" ;;
	hostile_virtio)
		truncate -s 16M "$T/hostile.img"
		run hostile_virtio "$k" --disk "$T/hostile.img" ;;
	smc)
		truncate -s 1M "$T/smc.img"
		run smc "$k" --disk "$T/smc.img" ;;
	smp)
		run smp_2 "$k" --cpus 2 --append "cpus=2"
		run smp_4 "$k" --cpus 4 --append "cpus=4" ;;
	cpubench)
		run cpubench "$k" --append "mb=4 expect=30c1b82964a593857b4321a6459fb82f8adde45d8fb550e89661fcfe8ae2e4ad" ;;
	*)
		run "$n" "$k" ;;
	esac
done
