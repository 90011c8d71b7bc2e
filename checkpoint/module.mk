LIB_SRCS += $(wildcard checkpoint/*.c)
UNIT_TESTS += checkpoint
