/* BT model-specific registers: RDMSR/WRMSR and the list the CPU model
 * has. Everything else raises #GP(0), which Linux's *_safe accessors
 * expect. Supported:
 *   0x10 TSC, 0x1b APIC_BASE, 0x3b TSC_ADJUST, 0x3a FEATURE_CONTROL (locked, read-only),
 *   0x48 SPEC_CTRL, 0x49 PRED_CMD (write-only), 0x8b BIOS_SIGN_ID,
 *   0xfe MTRRCAP (no MTRRs), 0x10a ARCH_CAPABILITIES (read-only),
 *   0x174-0x176 SYSENTER_CS/ESP/EIP, 0x179 MCG_CAP and 0x17a MCG_STATUS
 *   (zero), 0x1a0 MISC_ENABLE, 0x277 PAT, 0x2ff MTRR_DEF_TYPE, 0x6e0
 *   TSC_DEADLINE, 0xc0000080 EFER, 0xc0000081-84 STAR/LSTAR/CSTAR/SFMASK,
 *   0xc0000100-102 FS/GS/KERNEL_GS base, 0xc0000103 TSC_AUX. */
#include <errno.h>
#include "monitor/bt/sys_int.h"
#include "monitor/irq.h"
#include "monitor/vm.h"

#define MSR_FEATURE_CONTROL 0x3a
#define MSR_TSC_ADJUST 0x3b
#define MSR_SPEC_CTRL 0x48
#define MSR_PRED_CMD 0x49
#define MSR_BIOS_SIGN_ID 0x8b
#define MSR_MTRRCAP 0xfe
#define MSR_ARCH_CAPABILITIES 0x10a
#define MSR_MCG_CAP 0x179
#define MSR_MCG_STATUS 0x17a
#define MSR_MTRR_DEF_TYPE 0x2ff

/* RDCL_NO, IBRS_ALL, SKIP_L1DFL_VMENTRY, SSB_NO, MDS_NO, PSCHANGE_MC_NO,
 * TAA_NO, SBDR_SSDP_NO, FBSDP_NO, PSDP_NO, BHI_NO, PBRSB_NO, GDS_NO,
 * RFDS_NO, ITS_NO */
#define ARCH_CAP_VALUE ((1ULL << 0) | (1ULL << 1) | (1ULL << 3) | (1ULL << 4) | \
	(1ULL << 5) | (1ULL << 6) | (1ULL << 8) | (1ULL << 13) | (1ULL << 14) | \
	(1ULL << 15) | (1ULL << 20) | (1ULL << 24) | (1ULL << 26) | (1ULL << 27) | \
	(1ULL << 62))

#define EFER_SCE (1ULL << 0)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)
#define EFER_NXE (1ULL << 11)
#define CR0_PG (1ULL << 31)

static bool canonical(uint64_t a)
{
	return (uint64_t)((int64_t)(a << 16) >> 16) == a;
}

int bt_msr_read(struct bt_cpu *c, uint32_t idx, uint64_t *val)
{
	struct irqchip *irq = c->vm->irq;
	switch (idx) {
	case MSR_IA32_TSC: *val = vm_guest_tsc(c->vm) + c->tsc_adjust; return 0;
	case MSR_IA32_APIC_BASE:
		*val = irq ? lapic_get_base_msr(irq, c->index)
			   : (LAPIC_BASE | (1u << 11) | (c->index == 0 ? 1u << 8 : 0));
		return 0;
	case MSR_TSC_ADJUST: *val = c->tsc_adjust; return 0;
	case MSR_FEATURE_CONTROL: *val = 1; return 0;
	case MSR_SPEC_CTRL: *val = c->sys->spec_ctrl; return 0;
	case MSR_BIOS_SIGN_ID: *val = 0; return 0;
	case MSR_MTRRCAP: *val = 0; return 0;
	case MSR_ARCH_CAPABILITIES: *val = ARCH_CAP_VALUE; return 0;
	case MSR_IA32_SYSENTER_CS: *val = c->sysenter_cs; return 0;
	case MSR_IA32_SYSENTER_ESP: *val = c->sysenter_esp; return 0;
	case MSR_IA32_SYSENTER_EIP: *val = c->sysenter_eip; return 0;
	case MSR_MCG_CAP: case MSR_MCG_STATUS: *val = 0; return 0;
	case MSR_IA32_MISC_ENABLE: *val = c->misc_enable; return 0;
	case MSR_IA32_PAT: *val = c->pat; return 0;
	case MSR_MTRR_DEF_TYPE: *val = c->sys->mtrr_def_type; return 0;
	case MSR_IA32_TSC_DEADLINE:
		*val = irq ? lapic_get_tsc_deadline(irq, c->index) : 0;
		return 0;
	case MSR_EFER: *val = c->efer; return 0;
	case MSR_STAR: *val = c->star; return 0;
	case MSR_LSTAR: *val = c->lstar; return 0;
	case MSR_CSTAR: *val = c->cstar; return 0;
	case MSR_SFMASK: *val = c->sfmask; return 0;
	case MSR_FS_BASE: *val = c->seg[SEG_FS].base; return 0;
	case MSR_GS_BASE: *val = c->seg[SEG_GS].base; return 0;
	case MSR_KERNEL_GS_BASE: *val = c->kernel_gs_base; return 0;
	case MSR_TSC_AUX: *val = c->tsc_aux; return 0;
	default: return -ENOENT;
	}
}

static bool pat_ok(uint64_t v)
{
	for (int k = 0; k < 8; k++) {
		unsigned t = (v >> (8 * k)) & 0xff;
		if (t == 2 || t == 3 || t > 7)
			return false;
	}
	return true;
}

int bt_msr_write(struct bt_cpu *c, uint32_t idx, uint64_t v)
{
	struct irqchip *irq = c->vm->irq;
	switch (idx) {
	case MSR_IA32_TSC: c->tsc_adjust = v - vm_guest_tsc(c->vm); return 0;
	case MSR_TSC_ADJUST: c->tsc_adjust = v; return 0;
	case MSR_IA32_APIC_BASE:
		if (!irq)
			return -EINVAL;
		return lapic_set_base_msr(irq, c->index, v);
	case MSR_SPEC_CTRL:
		if (v & ~7ULL)
			return -EINVAL;
		c->sys->spec_ctrl = v;
		return 0;
	case MSR_PRED_CMD: return (v & ~1ULL) ? -EINVAL : 0;
	case MSR_BIOS_SIGN_ID: return 0;
	case MSR_IA32_SYSENTER_CS: c->sysenter_cs = v & 0xffff; return 0;
	case MSR_IA32_SYSENTER_ESP:
		if (!canonical(v))
			return -EINVAL;
		c->sysenter_esp = v;
		return 0;
	case MSR_IA32_SYSENTER_EIP:
		if (!canonical(v))
			return -EINVAL;
		c->sysenter_eip = v;
		return 0;
	case MSR_MCG_STATUS: return v ? -EINVAL : 0;
	case MSR_IA32_MISC_ENABLE: c->misc_enable = v; return 0;
	case MSR_IA32_PAT:
		if (!pat_ok(v))
			return -EINVAL;
		c->pat = v;
		return 0;
	case MSR_MTRR_DEF_TYPE:
		if (v & ~0xcffULL)
			return -EINVAL;
		c->sys->mtrr_def_type = v;
		return 0;
	case MSR_IA32_TSC_DEADLINE:
		if (irq)
			lapic_set_tsc_deadline(irq, c->index, v);
		c->sys->check_events = 1;
		c->sys->irq_maybe = 1;
		return 0;
	case MSR_EFER: {
		if (v & ~(EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE))
			return -EINVAL;
		if ((c->cr0 & CR0_PG) && ((v ^ c->efer) & EFER_LME))
			return -EINVAL;
		uint64_t nv = (v & ~EFER_LMA) | (c->efer & EFER_LMA);
		if ((nv ^ c->efer) & EFER_NXE)
			bt_tlb_flush_all(c);
		c->efer = nv;
		return 0;
	}
	case MSR_STAR: c->star = v; return 0;
	case MSR_LSTAR:
	case MSR_CSTAR:
	case MSR_FS_BASE:
	case MSR_GS_BASE:
	case MSR_KERNEL_GS_BASE:
		if (!canonical(v))
			return -EINVAL;
		if (idx == MSR_LSTAR) c->lstar = v;
		else if (idx == MSR_CSTAR) c->cstar = v;
		else if (idx == MSR_FS_BASE) c->seg[SEG_FS].base = v;
		else if (idx == MSR_GS_BASE) c->seg[SEG_GS].base = v;
		else c->kernel_gs_base = v;
		return 0;
	case MSR_SFMASK: c->sfmask = v & 0xffffffffULL; return 0;
	case MSR_TSC_AUX:
		if (v >> 32)
			return -EINVAL;
		c->tsc_aux = v;
		return 0;
	default: return -ENOENT;
	}
}

void bt_msr_exec(struct bt_cpu *c, bool write)
{
	if (c->cpl != 0)
		bt_raise_err(c, BT_GP, 0);
	uint32_t idx = (uint32_t)c->r[CPU_RCX];
	if (write) {
		uint64_t v = (c->r[CPU_RAX] & 0xffffffffULL) | (c->r[CPU_RDX] << 32);
		if (bt_msr_write(c, idx, v) < 0)
			bt_raise_err(c, BT_GP, 0);
	} else {
		uint64_t v;
		if (bt_msr_read(c, idx, &v) < 0)
			bt_raise_err(c, BT_GP, 0);
		c->r[CPU_RAX] = (uint32_t)v;
		c->r[CPU_RDX] = v >> 32;
	}
}
