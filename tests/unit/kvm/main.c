/* Unit tests of the KVM engine (monitor/kvm/) and engine selection. The
 * conversion, CPUID-model and dirty-bitmap tests need no /dev/kvm; the live
 * tests run tiny guests and skip with "/dev/kvm absent" where there is none;
 * the fake tests drive the whole engine against a scripted /dev/kvm.
 * test.h keeps its counters per file, so each group returns its failures. */
#include "tests/unit/kvm/kvm_tests.h"

int main(void)
{
	int failed = kvm_conv_tests() + kvm_cpuid_tests() + kvm_dirty_tests() +
		     kvm_select_tests() + kvm_fake_tests() + kvm_live_tests();
	return failed ? 1 : 0;
}
