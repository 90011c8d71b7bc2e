/* Conversion between struct bt_cpu and the canonical struct cpu_state:
 * registers, segments, control registers, the MSRs the BT CPU model has,
 * the x87/SSE state as a standard FXSAVE image (+ XSAVE header), pending
 * event state, and the LAPIC page through irq.h. */
#include <string.h>
#include "monitor/bt/sys_int.h"
#include "monitor/irq.h"
#include "monitor/vm.h"

/* Tag of a non-empty x87 register from its 80-bit contents: 0 valid,
 * 1 zero, 2 special (NaN, infinity, denormal, unsupported). */
static unsigned x87_tag(const uint8_t r[10])
{
	uint64_t mant;
	uint16_t se;
	memcpy(&mant, r, 8);
	memcpy(&se, r + 8, 2);
	unsigned exp = se & 0x7fff;
	if (exp == 0x7fff)
		return 2;
	if (exp == 0)
		return mant ? 2 : 1;
	return (mant >> 63) ? 0 : 2;
}

void bt_fxsave_image(const struct bt_cpu *c, uint8_t img[512])
{
	memset(img, 0, 512);
	memcpy(img + 0, &c->fcw, 2);
	memcpy(img + 2, &c->fsw, 2);
	uint8_t abridged = 0;
	for (int k = 0; k < 8; k++)
		if (((c->ftw >> (2 * k)) & 3) != 3)
			abridged |= (uint8_t)(1u << k);
	img[4] = abridged;
	memcpy(img + 6, &c->fop, 2);
	memcpy(img + 8, &c->fip, 8);
	memcpy(img + 16, &c->fdp, 8);
	memcpy(img + 24, &c->mxcsr, 4);
	uint32_t mxcsr_mask = 0xffff;
	memcpy(img + 28, &mxcsr_mask, 4);
	unsigned top = (c->fsw >> 11) & 7;
	for (int k = 0; k < 8; k++)
		memcpy(img + 32 + 16 * k, &c->st[(top + (unsigned)k) & 7], 10);
	for (int k = 0; k < 16; k++)
		memcpy(img + 160 + 16 * k, c->xmm[k].b, 16);
}

void bt_fxrstor_image(struct bt_cpu *c, const uint8_t img[512])
{
	memcpy(&c->fcw, img + 0, 2);
	memcpy(&c->fsw, img + 2, 2);
	memcpy(&c->fop, img + 6, 2);
	memcpy(&c->fip, img + 8, 8);
	memcpy(&c->fdp, img + 16, 8);
	memcpy(&c->mxcsr, img + 24, 4);
	c->mxcsr &= 0xffff;
	unsigned top = (c->fsw >> 11) & 7;
	for (int k = 0; k < 8; k++) {
		memset(&c->st[(top + (unsigned)k) & 7], 0, sizeof(c->st[0]));
		memcpy(&c->st[(top + (unsigned)k) & 7], img + 32 + 16 * k, 10);
	}
	uint16_t ftw = 0;
	for (unsigned r = 0; r < 8; r++) {
		unsigned t = 3;
		if (img[4] & (1u << r))
			t = x87_tag((const uint8_t *)&c->st[r]);
		ftw |= (uint16_t)(t << (2 * r));
	}
	c->ftw = ftw;
	for (int k = 0; k < 16; k++)
		memcpy(c->xmm[k].b, img + 160 + 16 * k, 16);
}

void bt_cpu_get_state(struct bt_cpu *c, struct cpu_state *st)
{
	struct irqchip *irq = c->vm->irq;
	memset(st, 0, sizeof(*st));
	memcpy(st->gpr, c->r, sizeof(st->gpr));
	st->rip = c->rip;
	st->rflags = bt_get_rflags(c);
	memcpy(st->seg, c->seg, sizeof(st->seg));
	st->gdt = c->gdt;
	st->idt = c->idt;
	st->cr0 = c->cr0;
	st->cr2 = c->cr2;
	st->cr3 = c->cr3;
	st->cr4 = c->cr4;
	st->cr8 = irq ? (uint64_t)(lapic_get_tpr(irq, c->index) >> 4) : 0;
	st->efer = c->efer;
	memcpy(st->dr, c->dr, sizeof(st->dr));
	st->xcr0 = c->xcr0;
	static const uint32_t msrs[] = {
		MSR_IA32_TSC, 0x3b /* TSC_ADJUST */, MSR_IA32_APIC_BASE, MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP,
		MSR_IA32_SYSENTER_EIP, MSR_IA32_MISC_ENABLE, MSR_IA32_PAT, MSR_IA32_TSC_DEADLINE,
		MSR_STAR, MSR_LSTAR, MSR_CSTAR, MSR_SFMASK, MSR_KERNEL_GS_BASE, MSR_TSC_AUX,
	};
	for (size_t k = 0; k < sizeof(msrs) / sizeof(msrs[0]); k++) {
		uint64_t v;
		if (bt_msr_read(c, msrs[k], &v) == 0)
			cpu_state_set_msr(st, msrs[k], v);
	}
	bt_fxsave_image(c, st->xsave);
	uint64_t xstate_bv = 3;
	memcpy(st->xsave + 512, &xstate_bv, 8);
	st->xsave_size = 512 + 64;
	st->ev.shadow = c->shadow;
	st->ev.nmi_masked = c->sys->nmi_masked;
	st->ev.nmi_pending = c->sys->nmi_pending;
	st->mp_state = c->halted ? CPU_HALTED : c->mp_state;
	if (irq)
		lapic_get_page(irq, c->index, st->lapic);
}

int bt_cpu_set_state(struct bt_cpu *c, const struct cpu_state *st)
{
	struct irqchip *irq = c->vm->irq;
	memcpy(c->r, st->gpr, sizeof(c->r));
	c->rip = st->rip;
	memcpy(c->seg, st->seg, sizeof(c->seg));
	c->gdt = st->gdt;
	c->idt = st->idt;
	c->cr0 = st->cr0;
	c->cr2 = st->cr2;
	c->cr3 = st->cr3;
	c->cr4 = st->cr4;
	c->efer = st->efer;
	bt_set_rflags(c, st->rflags);
	memcpy(c->dr, st->dr, sizeof(c->dr));
	c->xcr0 = st->xcr0 ? st->xcr0 : 1;
	if (irq)
		lapic_set_page(irq, c->index, st->lapic);
	if (irq)
		lapic_set_tpr(irq, c->index, (uint8_t)(st->cr8 << 4));
	for (uint32_t k = 0; k < st->nmsrs && k < CPU_MAX_MSRS; k++) {
		/* values a real CPU would refuse are dropped, not fatal */
		if (st->msrs[k].index == MSR_IA32_TSC_DEADLINE && !st->msrs[k].value)
			continue;
		(void)bt_msr_write(c, st->msrs[k].index, st->msrs[k].value);
	}
	if (st->xsave_size >= 512)
		bt_fxrstor_image(c, st->xsave);
	c->shadow = st->ev.shadow;
	c->sys->nmi_masked = st->ev.nmi_masked;
	c->sys->nmi_pending = st->ev.nmi_pending;
	c->halted = st->mp_state == CPU_HALTED;
	c->mp_state = st->mp_state;
	bt_mode_changed(c);
	bt_tlb_flush_all(c);
	return 0;
}
