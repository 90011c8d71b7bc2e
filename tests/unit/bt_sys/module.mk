UNIT_TESTS += bt_sys
$(BUILD)/tests/unit/bt_sys: $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tests/unit/bt_sys/*.c))
