/* A scripted stand-in for /dev/kvm, linked into the kvm unit tests only:
 * while fake_kvm_on is set, open("/dev/kvm") and ioctls on the descriptors
 * it hands out are served from the state below instead of the kernel, so
 * the engine's create, state, run-loop, interrupt and dirty-log code runs
 * on hosts without KVM. Every other open/ioctl goes to the kernel. The
 * stand-in records what the engine asked for so tests can check it. */
#ifndef ROAM_FAKE_KVM_H
#define ROAM_FAKE_KVM_H
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

#define FAKE_MAX_VCPUS 8
#define FAKE_MAX_EXITS 16
#define FAKE_RUN_SIZE  12288

struct fake_exit {
	uint32_t reason;          /* KVM_EXIT_*; 0 with repeat = spin on INTR */
	uint8_t dir, size;        /* IO */
	uint16_t port;
	uint32_t count;
	uint8_t data[16];         /* IO OUT / MMIO write data */
	uint64_t addr;            /* MMIO */
	uint32_t len;
	bool is_write;
	uint32_t sub;             /* internal error suberror / EOI vector */
	bool ready;               /* ready_for_interrupt_injection to report */
};

struct fake_vcpu {
	bool used;
	int fd, id;
	struct kvm_run *run;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	uint8_t xsave[4096];
	uint64_t xcr0;
	struct kvm_debugregs dr;
	struct kvm_vcpu_events ev;
	uint32_t mp;
	struct kvm_lapic_state lapic;
	uint32_t msr_idx[64];
	uint64_t msr_val[64];
	int nmsr;
	struct kvm_cpuid_entry2 cpuid[64];
	int ncpuid;
	/* KVM_RUN script: exits returned in order; the last one repeats
	 * when repeat_last is set, else KVM_EXIT_SHUTDOWN follows. */
	struct fake_exit script[FAKE_MAX_EXITS];
	int nscript, pos;
	bool repeat_last;
	int runs, eintr;
	/* What the engine left in kvm_run when it re-entered after an exit. */
	uint8_t last_in[16];
	bool saw_window_request;
	int interrupts[8], ninterrupts;
};

struct fake_kvm {
	bool on;
	int kvm_fd, vm_fd;
	bool caps_missing_split;      /* pretend SPLIT_IRQCHIP is missing */
	uint32_t tsc_khz;             /* KVM_GET_TSC_KHZ answer (0: 2 GHz) */
	uint64_t split_routes;        /* KVM_ENABLE_CAP split irqchip args[0] */
	bool split_before_vcpus;
	bool manual_protect;
	uint64_t ident_addr, tss_addr;
	struct kvm_userspace_memory_region slots[4];
	int nslots_set;               /* KVM_SET_USER_MEMORY_REGION calls */
	struct kvm_irq_routing_entry routes[32];
	int nroutes, routing_calls;
	struct kvm_msi msis[64];
	int nmsis;
	uint64_t dirty[2][64];        /* KVM_GET_DIRTY_LOG answers per slot */
	int clears;
	struct kvm_clear_dirty_log last_clear;
	char order[512];              /* vCPU set ioctls, comma separated */
	struct fake_vcpu vcpu[FAKE_MAX_VCPUS];
};

extern struct fake_kvm fake_kvm;

/* Resets the stand-in (closing what it opened) and turns it on or off. */
void fake_kvm_reset(bool on);
#endif
