UNIT_TESTS += irq dev_legacy
