UNIT_TESTS += virtio
FUZZERS += virtq_fuzz
FUZZ_SRCS_virtq_fuzz := monitor/dev/virtq.c monitor/guest_mem.c monitor/rec.c
