LIB_SRCS += $(wildcard monitor/dev/*.c)
