LIB_SRCS += $(wildcard checkpoint/*.c)
