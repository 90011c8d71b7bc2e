UNIT_TESTS += virtio
FUZZERS += virtq_fuzz
