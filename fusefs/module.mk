LIB_SRCS += $(wildcard fusefs/*.c)
UNIT_TESTS += fusefs
FUZZERS += parttable_fuzz
FUZZ_SRCS_parttable_fuzz := fusefs/parttable.c fusefs/disk.c
