# Kernel loaders: bzImage (host-side decompression), Multiboot, MP table.
LIB_SRCS += $(wildcard monitor/boot/*.c)
UNIT_TESTS += boot
FUZZERS += boot_fuzz
FUZZ_SRCS_boot_fuzz := $(wildcard monitor/boot/*.c) monitor/guest_mem.c monitor/cpu_state.c
