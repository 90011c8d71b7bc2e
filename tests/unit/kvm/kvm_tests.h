/* The groups of tests/unit/kvm/, one per file; each returns its failures. */
#ifndef ROAM_KVM_TESTS_H
#define ROAM_KVM_TESTS_H
int kvm_conv_tests(void);
int kvm_cpuid_tests(void);
int kvm_dirty_tests(void);
int kvm_select_tests(void);
int kvm_fake_tests(void);
int kvm_live_tests(void);
#endif
