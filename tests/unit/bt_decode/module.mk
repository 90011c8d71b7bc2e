UNIT_TESTS += bt_decode
$(BUILD)/tests/unit/bt_decode: LDLIBS += -lcapstone
$(BUILD)/tests/unit/bt_decode: $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tests/unit/bt_decode/*.c))
FUZZERS += bt_decode_fuzz
FUZZ_SRCS_bt_decode_fuzz := monitor/bt/decode.c monitor/bt/decode_tab.c
