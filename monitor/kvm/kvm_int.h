/* Private header of the KVM engine (monitor/kvm/): the engine and vCPU
 * structs shared by its files, and the pure conversion helpers between
 * struct cpu_state and KVM's structures (kvm_conv.c, cpuid.c), which the
 * unit tests exercise without /dev/kvm.
 *
 * Machine layout the engine sets up:
 *
 *   slot 0   RAM offset 0          -> GPA 0            (up to 3 GiB)
 *   slot 1   RAM offset 3 GiB      -> GPA 4 GiB        (the rest, if any)
 *   0xFEFFC000  1 page  identity-map page table (VMX without unrestricted
 *                       guest), KVM_SET_IDENTITY_MAP_ADDR
 *   0xFEFFD000  3 pages real-mode TSS (same), KVM_SET_TSS_ADDR
 *
 * Interrupts: split irqchip. LAPICs are in the kernel; the PIC and IOAPIC
 * are roam's userspace models (monitor/irq.h). IOAPIC and device MSIs reach
 * the LAPICs by KVM_SIGNAL_MSI; the PIC output is injected into vCPU 0 with
 * KVM_INTERRUPT. For level-triggered IOAPIC messages the engine keeps GSI
 * routes 0..23 as MSI routes so that KVM requests KVM_EXIT_IOAPIC_EOI on
 * their EOI (KVM derives its EOI-exit vector set from those routes).
 */
#ifndef ROAM_KVM_INT_H
#define ROAM_KVM_INT_H
#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "monitor/cpu_state.h"
#include "monitor/vm.h"

#define KVM_IDENTITY_MAP_ADDR 0xFEFFC000ULL
#define KVM_TSS_ADDR          0xFEFFD000ULL
#define KVM_IOAPIC_ROUTES     24
#define KVM_KICK_SIGNAL       SIGUSR1
#define KVM_MAX_SAVED_MSRS    CPU_MAX_MSRS

struct kvm_slot {
	uint32_t slot;
	uint64_t gpa, size, ram_off;
	uint64_t *bitmap;           /* KVM_GET_DIRTY_LOG buffer, npages bits */
};

struct kvm_vcpu_ctx {
	int fd;
	int index;
	struct kvm_run *run;
	size_t run_size;
	pthread_mutex_t kick_lock;
	bool in_run;                /* run() is executing on thread */
	pthread_t thread;
};

struct kvm_engine {
	struct vm *vm;
	int kvm_fd, vm_fd;
	int ncpus;
	size_t run_size;

	int nslots;
	struct kvm_slot slots[2];
	bool dirty_logging, manual_protect;

	bool has_xsave, has_xcrs, has_debugregs, has_tsc_control, has_tsc_deadline;
	uint32_t nmsrs;
	uint32_t msrs[KVM_MAX_SAVED_MSRS];  /* MSRs get/set_state transfer */

	pthread_mutex_t route_lock;
	int nroutes, route_next;
	struct { uint64_t addr; uint32_t data; } routes[KVM_IOAPIC_ROUTES];

	struct kvm_vcpu_ctx cpu[VM_MAX_CPUS];
};

static inline struct kvm_engine *kvm_of(struct engine *e)
{
	return (struct kvm_engine *)e;
}

/* ioctl that retries on EINTR; returns the ioctl result or -errno. */
int kvm_ioctl(int fd, unsigned long req, void *arg);

/* --- kvm_state.c --- */
int kvm_get_state(struct engine *e, int cpu, struct cpu_state *st);
int kvm_set_state(struct engine *e, int cpu, const struct cpu_state *st);
/* Runs the vCPU's TSC at vm->tsc_khz: 0 when it does (already, or by
 * scaling), -ENOTSUP when KVM cannot scale, or -errno. */
int kvm_apply_tsc_khz(struct kvm_engine *k, int vcpu_fd);
/* Picks the MSRs to transfer: candidates KVM lists and vCPU fd can read. */
int kvm_select_msrs(struct kvm_engine *k, int vcpu_fd);

/* --- kvm_irq.c --- */
void kvm_msi_sink(void *opaque, uint64_t addr, uint32_t data);
/* A restored LAPIC page may hold level-triggered vectors (TMR) still
 * awaiting EOI; gives each a route so KVM reports that EOI. */
int kvm_level_routes_from_lapic(struct kvm_engine *k, const uint8_t *page);
void kvm_irq_line(struct engine *e, unsigned gsi, int level);
void kvm_msi(struct engine *e, uint64_t addr, uint32_t data);
/* vCPU 0, before KVM_RUN: injects the PIC's output or asks for a window.
 * Returns 0 or -errno after stopping the VM. */
int kvm_pic_inject(struct kvm_engine *k, struct kvm_vcpu_ctx *v);

/* --- kvm_run.c --- */
int kvm_run_vcpu(struct engine *e, int cpu);
void kvm_kick(struct engine *e, int cpu);
int kvm_install_kick_handler(void);

/* --- kvm_dirty.c --- */
int kvm_set_slots(struct kvm_engine *k, bool log_dirty);
int kvm_dirty_log(struct engine *e, uint64_t *bits);
int kvm_dirty_log_start(struct engine *e);
/* ORs npages bits of src (bit i = page i of a slot) into dst at page
 * first_page (a RAM-offset page index). Any alignment. */
void kvm_dirty_merge(uint64_t *dst, uint64_t first_page, const uint64_t *src, uint64_t npages);

/* --- kvm_conv.c: pure conversions --- */
void kvm_seg_from_cpu(const struct cpu_seg *c, struct kvm_segment *k);
void kvm_seg_to_cpu(const struct kvm_segment *k, struct cpu_seg *c);
void kvm_sregs_from_cpu(const struct cpu_state *st, struct kvm_sregs *s);
void kvm_sregs_to_cpu(const struct kvm_sregs *s, struct cpu_state *st);
void kvm_regs_from_cpu(const struct cpu_state *st, struct kvm_regs *r);
void kvm_regs_to_cpu(const struct kvm_regs *r, struct cpu_state *st);
void kvm_events_from_cpu(const struct cpu_state *st, struct kvm_vcpu_events *ev);
void kvm_events_to_cpu(const struct kvm_vcpu_events *ev, struct cpu_state *st);
/* enum cpu_mp_state <-> KVM_MP_STATE_*; -EINVAL for values with no match. */
int kvm_mp_from_cpu(uint32_t cpu_mp, uint32_t *kvm_mp);
int kvm_mp_to_cpu(uint32_t kvm_mp, uint32_t *cpu_mp);
/* FXSAVE image (first 512 bytes of the XSAVE area) <-> struct kvm_fpu. */
void kvm_fpu_to_fxsave(const struct kvm_fpu *f, uint8_t fx[512]);
void kvm_fpu_from_fxsave(const uint8_t fx[512], struct kvm_fpu *f);

/* --- cpuid.c: the guest CPU model --- */
struct kvm_cpuid_opts {
	int cpu, ncpus;             /* this vCPU's APIC ID and the VM's count */
	bool tsc_deadline;          /* KVM_CAP_TSC_DEADLINE_TIMER */
	bool portable;              /* only what the BT engine implements */
};
/* Filters KVM_GET_SUPPORTED_CPUID output (in, nin) into the guest model
 * for one vCPU (out, at most max entries). Returns the entry count or
 * -ENOSPC. Documented in cpuid.c. */
int kvm_cpuid_model(const struct kvm_cpuid_entry2 *in, int nin,
		    const struct kvm_cpuid_opts *o,
		    struct kvm_cpuid_entry2 *out, int max);
/* Bytes of standard-format XSAVE area the XCR0 components in mask need,
 * from the leaf 0xD entries of a CPUID list (576 for x87|SSE). */
uint32_t kvm_cpuid_xsave_size(const struct kvm_cpuid_entry2 *e, int n, uint64_t mask);
#endif
