#!/bin/sh
# Proves the test kernels themselves (tests/guest/) by running them under
# QEMU TCG, the reference PC: when roam's engines fail a kernel that passes
# here, the bug is in roam. Also checks the exit-status contract
# (PASS 33, FAIL 35, SKIP 37) and the disks the kernels write.
. "$ROAM_SRC/tests/integration/lib.sh"

K=$ROAM_BUILD/guest
if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
	skip guest_qemu "qemu-system-x86_64 not installed"
	exit 0
fi
if [ ! -f "$K/hello.elf" ]; then
	skip guest_qemu "test kernels not built (make guest-tests)"
	exit 0
fi

# qk NAME KERNEL WANT_STATUS APPEND [QEMU ARGS...]: runs the kernel, passes
# when QEMU exits with WANT_STATUS and the RESULT line agrees with it.
qk() {
	n=$1 k=$2 want=$3 app=$4
	shift 4
	timeout 60 qemu-system-x86_64 -accel tcg -M pc -m 256 -nographic -no-reboot \
		-net none -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
		-kernel "$K/$k.elf" -append "$app" "$@" </dev/null >"$T/$n.out" 2>&1
	rc=$?
	case $want in 33) res=PASS ;; 35) res=FAIL ;; 37) res=SKIP ;; *) res=none ;; esac
	if [ $rc -ne "$want" ]; then
		fail "$n" "exit status $rc, want $want: $(grep -E '^(TEST .*: FAIL|FATAL|EXCEPTION)' "$T/$n.out" | head -n 3 | tr '\r\n' '  ')"
	elif ! grep -q "^RESULT: $res " "$T/$n.out"; then
		fail "$n" "no 'RESULT: $res' line: $(tail -n 3 "$T/$n.out" | tr '\r\n' '  ')"
	else
		pass "$n"
	fi
}
disk() { rm -f "$T/$1"; truncate -s "$2" "$T/$1"; }
vblk() { echo "-drive file=$T/$1,if=none,id=d0,format=raw${2:-} -device virtio-blk-pci,drive=d0,disable-legacy=on"; }

qk guest_hello hello 33 ""
# QEMU 7.2 TCG departs from the SDM (and from KVM) in four places, so those
# cases are skipped here: INT n through a DPL0 gate reports error vector*16+2
# instead of vector*8+2, a push to a non-canonical RSP raises #GP instead of
# #SS, reserved-bit page faults lack the P bit, and RDMSR of an unknown MSR
# returns 0 instead of raising #GP.
qk guest_exceptions exceptions 33 "skip=gp_int_dpl,ss_noncanonical,pf_user_read_rsvd,pf_user_write_rsvd,gp_unknown_msr"
qk guest_usermode usermode 33 ""
qk guest_timer timer 33 ""
qk guest_modes modes 33 ""
qk guest_smp smp 33 "cpus=2" -smp 2
qk guest_smp_one_cpu_skips smp 37 "" -smp 1
qk guest_no_test_selected_fails hello 35 "test=no_such_test"
qk guest_touch64 touch64 33 ""
qk guest_cpubench cpubench 33 "mb=4 expect=30c1b82964a593857b4321a6459fb82f8adde45d8fb550e89661fcfe8ae2e4ad"

disk blk.img 8M
# shellcheck disable=SC2046
qk guest_virtio_blk virtio_blk 33 "sectors=256" $(vblk blk.img)
if dd if="$T/blk.img" bs=512 skip=255 count=1 2>/dev/null | head -c 32 | grep -q '^roam-blk sector 0000255 line 00$' &&
   dd if="$T/blk.img" bs=512 skip=0 count=1 2>/dev/null | tail -c 32 | grep -q '^roam-blk sector 0000000 line 15$'; then
	pass guest_virtio_blk_disk_file
else
	fail guest_virtio_blk_disk_file "pattern not found in the disk image"
fi
# shellcheck disable=SC2046
qk guest_virtio_blk_verify_ro virtio_blk 33 "mode=verify ro sectors=256" $(vblk blk.img ",readonly=on")
# shellcheck disable=SC2046
qk guest_virtio_blk_bar_assign virtio_blk 33 "pci_reassign start=1000 sectors=32" $(vblk blk.img)

disk hostile.img 4M
# shellcheck disable=SC2046
qk guest_hostile_virtio hostile_virtio 33 "" $(vblk hostile.img)

disk smc.img 1M
# shellcheck disable=SC2046
qk guest_smc smc 33 "" $(vblk smc.img)

disk counter.img 4M
# shellcheck disable=SC2046
qk guest_counter counter 33 "records=200 cpus=2" -smp 2 $(vblk counter.img)
check guest_counter_records "$ROAM_BUILD/tools/counter_check" "$T/counter.img" 0 200
