UNIT_TESTS += virtio
FUZZERS += virtq_fuzz
FUZZ_SRCS_virtq_fuzz := monitor/dev/virtq.c monitor/guest_mem.c monitor/rec.c
FUZZERS += virtio_dev_fuzz
FUZZ_SRCS_virtio_dev_fuzz := monitor/dev/pci.c monitor/dev/virtq.c monitor/dev/virtio_pci.c \
	monitor/dev/virtio_blk.c monitor/dev/virtio_rng.c monitor/dev/blockdev_raw.c \
	monitor/bus.c monitor/guest_mem.c monitor/rec.c monitor/vm_devs.c
