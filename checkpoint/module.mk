LIB_SRCS += $(wildcard checkpoint/*.c)
UNIT_TESTS += checkpoint
FUZZERS += vm_config_fuzz
FUZZ_SRCS_vm_config_fuzz := checkpoint/vmconfig.c
FUZZERS += state_fuzz
FUZZ_SRCS_state_fuzz := checkpoint/state.c $(addprefix monitor/dev/,pic.c ioapic.c lapic.c \
	irqchip.c uart.c console.c i8042.c pit.c rtc.c debug_exit.c legacy.c) \
	monitor/bus.c monitor/evloop.c monitor/rec.c monitor/guest_mem.c monitor/vm_devs.c
