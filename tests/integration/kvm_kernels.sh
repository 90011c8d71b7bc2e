#!/bin/sh
# Every test kernel ($ROAM_BUILD/guest/*.elf, tests/guest/README.md) under
# `roam boot --engine kvm`: exceptions, user mode, timers (PIT, LAPIC),
# mode switches, self-modifying code, virtio-blk (pattern checked from the
# host, then read back by a second boot), hostile virtio input, SMP
# (--cpus 2 and 4), cpubench with its known checksum, touch64. A kernel
# passes with debug-exit status 33 and "RESULT: PASS" on the console;
# status 37 (the kernel skipped itself) is a skip. Skipped where /dev/kvm
# is absent or not accessible. counter belongs to the checkpoint tests.
. "$ROAM_SRC/tests/integration/lib.sh"

if [ ! -e /dev/kvm ]; then skip kvm_kernels "/dev/kvm absent"; exit 0; fi
if ! have_kvm; then skip kvm_kernels "no /dev/kvm access"; exit 0; fi
set -- "$ROAM_BUILD"/guest/*.elf
if [ ! -f "$1" ]; then skip kvm_kernels "no test kernels in $ROAM_BUILD/guest (make guest-tests)"; exit 0; fi

. "$ROAM_SRC/tests/integration/kernels.inc"
run_kernels kvm "$@"
