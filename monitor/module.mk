LIB_SRCS += $(wildcard monitor/*.c)
UNIT_TESTS += monitor
