/* Canonical vCPU state helpers: MSR list access and the architectural
 * power-on state shared by both engines. */
#include <errno.h>
#include <string.h>
#include "monitor/cpu_state.h"

int cpu_state_msr(const struct cpu_state *st, uint32_t index, uint64_t *val)
{
	for (uint32_t i = 0; i < st->nmsrs && i < CPU_MAX_MSRS; i++)
		if (st->msrs[i].index == index) {
			*val = st->msrs[i].value;
			return 0;
		}
	return -ENOENT;
}

int cpu_state_set_msr(struct cpu_state *st, uint32_t index, uint64_t val)
{
	for (uint32_t i = 0; i < st->nmsrs && i < CPU_MAX_MSRS; i++)
		if (st->msrs[i].index == index) {
			st->msrs[i].value = val;
			return 0;
		}
	if (st->nmsrs >= CPU_MAX_MSRS)
		return -ENOSPC;
	st->msrs[st->nmsrs++] = (struct cpu_msr){ index, val };
	return 0;
}

static void seg(struct cpu_seg *s, uint16_t sel, uint64_t base, uint32_t attr)
{
	*s = (struct cpu_seg){ .base = base, .limit = 0xffff, .attr = attr, .sel = sel };
}

void cpu_state_reset(struct cpu_state *st, int is_bsp)
{
	memset(st, 0, sizeof(*st));
	st->rip = 0xfff0;
	st->rflags = 0x2;
	st->gpr[CPU_RDX] = 0x600;       /* family 6 reset signature */
	/* Real mode: CS = F000 with base FFFF0000, data segments readable. */
	seg(&st->seg[SEG_CS], 0xf000, 0xffff0000, SEG_ATTR_P | SEG_ATTR_S | 0xb);
	for (int s = SEG_ES; s <= SEG_GS; s++)
		if (s != SEG_CS)
			seg(&st->seg[s], 0, 0, SEG_ATTR_P | SEG_ATTR_S | 0x3);
	seg(&st->seg[SEG_LDTR], 0, 0, SEG_ATTR_P | 0x2);
	seg(&st->seg[SEG_TR], 0, 0, SEG_ATTR_P | 0xb);
	st->gdt.limit = st->idt.limit = 0xffff;
	st->cr0 = 0x60000010;
	st->dr[6] = 0xffff0ff0;
	st->dr[7] = 0x400;
	st->xcr0 = 1;
	/* FXSAVE image: FCW 0x37f, MXCSR 0x1f80. */
	st->xsave[0] = 0x7f;
	st->xsave[1] = 0x03;
	st->xsave[24] = 0x80;
	st->xsave[25] = 0x1f;
	st->xsave_size = 512 + 64;
	st->mp_state = is_bsp ? CPU_RUNNABLE : CPU_WAIT_SIPI;
	cpu_state_set_msr(st, MSR_IA32_APIC_BASE, 0xfee00000ULL | (1u << 11) | (is_bsp ? 1u << 8 : 0));
	cpu_state_set_msr(st, MSR_IA32_PAT, 0x0007040600070406ULL);
	cpu_state_set_msr(st, MSR_IA32_MISC_ENABLE, 1);  /* fast strings */
	/* LAPIC after reset: version 0x14 (6 LVTs), all LVTs masked, SVR 0xff. */
	st->lapic[0x30] = 0x14;
	st->lapic[0x32] = 0x05;
	for (int off = 0x320; off <= 0x370; off += 0x10)
		st->lapic[off + 2] = 0x01;
	if (is_bsp) {
		/* Virtual-wire mode, as firmware leaves it: the PIC reaches the
		 * BSP through LINT0 (ExtINT), NMIs through LINT1. */
		st->lapic[0x350] = 0x00, st->lapic[0x351] = 0x07, st->lapic[0x352] = 0;
		st->lapic[0x360] = 0x00, st->lapic[0x361] = 0x04, st->lapic[0x362] = 0;
	}
	st->lapic[0xe0 + 3] = 0xff;     /* DFR: flat model */
	st->lapic[0xe0 + 0] = 0xff;
	st->lapic[0xe0 + 1] = 0xff;
	st->lapic[0xe0 + 2] = 0xff;
	st->lapic[0xf0] = 0xff;
}
