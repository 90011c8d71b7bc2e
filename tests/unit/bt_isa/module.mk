UNIT_TESTS += bt_isa
$(BUILD)/tests/unit/bt_isa: $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tests/unit/bt_isa/*.c))
