LIB_SRCS += $(wildcard checkpoint/*.c)
UNIT_TESTS += checkpoint
FUZZERS += vm_config_fuzz
FUZZ_SRCS_vm_config_fuzz := checkpoint/vmconfig.c
