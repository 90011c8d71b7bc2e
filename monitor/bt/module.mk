LIB_SRCS += $(wildcard monitor/bt/*.c)
