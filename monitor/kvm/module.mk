# The KVM engine (monitor/kvm/) and its unit tests (tests/unit/kvm/).
LIB_SRCS += $(wildcard monitor/kvm/*.c)
UNIT_TESTS += kvm
