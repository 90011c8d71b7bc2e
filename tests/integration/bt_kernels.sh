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

. "$ROAM_SRC/tests/integration/kernels.inc"
run_kernels bt "$@"
