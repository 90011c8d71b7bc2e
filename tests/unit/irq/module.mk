UNIT_TESTS += irq dev_legacy
FUZZERS += dev_state_fuzz
FUZZ_SRCS_dev_state_fuzz := $(addprefix monitor/dev/,pic.c ioapic.c lapic.c irqchip.c uart.c \
	console.c i8042.c pit.c rtc.c debug_exit.c legacy.c) \
	monitor/bus.c monitor/evloop.c monitor/rec.c monitor/guest_mem.c monitor/vm_devs.c
