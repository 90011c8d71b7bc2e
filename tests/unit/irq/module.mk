UNIT_TESTS += irq
