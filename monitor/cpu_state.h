/* Canonical, engine-neutral state of one x86-64 vCPU. Both engines convert
 * to and from it; checkpoint/ serializes exactly this and nothing else for a
 * vCPU. Segment attributes use the VMX access-rights layout. */
#ifndef ROAM_CPU_STATE_H
#define ROAM_CPU_STATE_H
#include <stdint.h>

enum { CPU_RAX, CPU_RCX, CPU_RDX, CPU_RBX, CPU_RSP, CPU_RBP, CPU_RSI, CPU_RDI,
       CPU_R8, CPU_R9, CPU_R10, CPU_R11, CPU_R12, CPU_R13, CPU_R14, CPU_R15 };
enum { SEG_ES, SEG_CS, SEG_SS, SEG_DS, SEG_FS, SEG_GS, SEG_LDTR, SEG_TR, SEG_COUNT };

/* attr bits: 0-3 type, 4 S, 5-6 DPL, 7 P, 12 AVL, 13 L, 14 D/B, 15 G,
 * 16 unusable (null selector loaded). */
#define SEG_ATTR_TYPE(a)  ((a) & 0xf)
#define SEG_ATTR_S        (1u << 4)
#define SEG_ATTR_DPL(a)   (((a) >> 5) & 3)
#define SEG_ATTR_P        (1u << 7)
#define SEG_ATTR_AVL      (1u << 12)
#define SEG_ATTR_L        (1u << 13)
#define SEG_ATTR_DB       (1u << 14)
#define SEG_ATTR_G        (1u << 15)
#define SEG_ATTR_UNUSABLE (1u << 16)

struct cpu_seg {
	uint64_t base;
	uint32_t limit;     /* byte granular (already scaled by G) */
	uint32_t attr;
	uint16_t sel;
};

struct cpu_dtable { uint64_t base; uint16_t limit; };

#define CPU_MAX_MSRS 64
struct cpu_msr { uint32_t index; uint64_t value; };

/* Pending and injected events, interrupt shadow, activity. */
struct cpu_events {
	uint8_t exc_pending, exc_injected, exc_vector, exc_has_error;
	uint32_t exc_error;
	uint8_t nmi_pending, nmi_injected, nmi_masked;
	uint8_t irq_injected, irq_vector;
	uint8_t shadow;         /* 1: after STI, 2: after MOV SS / POP SS */
};

enum cpu_mp_state { CPU_RUNNABLE, CPU_HALTED, CPU_WAIT_SIPI, CPU_STOPPED };

#define CPU_XSAVE_MAX 4096
#define CPU_LAPIC_SIZE 1024

struct cpu_state {
	uint64_t gpr[16];
	uint64_t rip, rflags;
	struct cpu_seg seg[SEG_COUNT];
	struct cpu_dtable gdt, idt;
	uint64_t cr0, cr2, cr3, cr4, cr8, efer;
	uint64_t dr[8];                 /* dr0-3, (4,5 unused), dr6, dr7 */
	uint64_t xcr0;
	uint32_t nmsrs;
	struct cpu_msr msrs[CPU_MAX_MSRS];   /* includes IA32_TSC as guest value */
	uint32_t xsave_size;                 /* bytes used in xsave[] */
	uint8_t xsave[CPU_XSAVE_MAX];        /* standard XSAVE format (first 512
					      * bytes = FXSAVE image) */
	struct cpu_events ev;
	uint32_t mp_state;                   /* enum cpu_mp_state */
	uint32_t sipi_vector;
	uint8_t lapic[CPU_LAPIC_SIZE];       /* APIC register page, KVM layout:
					      * register at offset R is at [R]
					      * for R < 0x400 */
};

/* MSR indices the canonical state may carry. */
#define MSR_IA32_TSC            0x10
#define MSR_IA32_APIC_BASE      0x1b
#define MSR_IA32_MISC_ENABLE    0x1a0
#define MSR_IA32_SYSENTER_CS    0x174
#define MSR_IA32_SYSENTER_ESP   0x175
#define MSR_IA32_SYSENTER_EIP   0x176
#define MSR_IA32_PAT            0x277
#define MSR_IA32_TSC_DEADLINE   0x6e0
#define MSR_EFER                0xc0000080
#define MSR_STAR                0xc0000081
#define MSR_LSTAR               0xc0000082
#define MSR_CSTAR               0xc0000083
#define MSR_SFMASK              0xc0000084
#define MSR_FS_BASE             0xc0000100
#define MSR_GS_BASE             0xc0000101
#define MSR_KERNEL_GS_BASE      0xc0000102
#define MSR_TSC_AUX             0xc0000103
#define MSR_KVM_WALL_CLOCK_NEW  0x4b564d00
#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01

/* Helpers: find or set an MSR in st->msrs. cpu_state_msr returns 0 and the
 * value, or -ENOENT. cpu_state_set_msr returns -ENOSPC when full. */
int cpu_state_msr(const struct cpu_state *st, uint32_t index, uint64_t *val);
int cpu_state_set_msr(struct cpu_state *st, uint32_t index, uint64_t val);

/* Architectural reset state (as after power-on; BSP or AP). */
void cpu_state_reset(struct cpu_state *st, int is_bsp);
#endif
