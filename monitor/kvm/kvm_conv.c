/* Pure conversions between the canonical struct cpu_state and KVM's vCPU
 * structures (regs, sregs, segments, events, MP state, legacy FPU). No
 * ioctls here: the unit tests run these without /dev/kvm. */
#include <errno.h>
#include <string.h>
#include "monitor/kvm/kvm_int.h"

void kvm_seg_from_cpu(const struct cpu_seg *c, struct kvm_segment *k)
{
	memset(k, 0, sizeof(*k));
	k->base = c->base;
	k->limit = c->limit;
	k->selector = c->sel;
	k->type = SEG_ATTR_TYPE(c->attr);
	k->s = !!(c->attr & SEG_ATTR_S);
	k->dpl = SEG_ATTR_DPL(c->attr);
	k->present = !!(c->attr & SEG_ATTR_P);
	k->avl = !!(c->attr & SEG_ATTR_AVL);
	k->l = !!(c->attr & SEG_ATTR_L);
	k->db = !!(c->attr & SEG_ATTR_DB);
	k->g = !!(c->attr & SEG_ATTR_G);
	k->unusable = !!(c->attr & SEG_ATTR_UNUSABLE);
}

void kvm_seg_to_cpu(const struct kvm_segment *k, struct cpu_seg *c)
{
	c->base = k->base;
	c->limit = k->limit;
	c->sel = k->selector;
	c->attr = (k->type & 0xfu) | (k->s ? SEG_ATTR_S : 0) | ((k->dpl & 3u) << 5) |
		  (k->present ? SEG_ATTR_P : 0) | (k->avl ? SEG_ATTR_AVL : 0) |
		  (k->l ? SEG_ATTR_L : 0) | (k->db ? SEG_ATTR_DB : 0) |
		  (k->g ? SEG_ATTR_G : 0) | (k->unusable ? SEG_ATTR_UNUSABLE : 0);
}

/* Canonical segment order (ES CS SS DS FS GS LDTR TR) -> kvm_sregs field. */
static struct kvm_segment *sreg_seg(struct kvm_sregs *s, int i)
{
	switch (i) {
	case SEG_ES: return &s->es;
	case SEG_CS: return &s->cs;
	case SEG_SS: return &s->ss;
	case SEG_DS: return &s->ds;
	case SEG_FS: return &s->fs;
	case SEG_GS: return &s->gs;
	case SEG_LDTR: return &s->ldt;
	default: return &s->tr;
	}
}

/* Fills everything but apic_base and interrupt_bitmap, which the caller
 * keeps from KVM's current sregs. */
void kvm_sregs_from_cpu(const struct cpu_state *st, struct kvm_sregs *s)
{
	for (int i = 0; i < SEG_COUNT; i++)
		kvm_seg_from_cpu(&st->seg[i], sreg_seg(s, i));
	memset(&s->gdt, 0, sizeof(s->gdt));
	memset(&s->idt, 0, sizeof(s->idt));
	s->gdt.base = st->gdt.base;
	s->gdt.limit = st->gdt.limit;
	s->idt.base = st->idt.base;
	s->idt.limit = st->idt.limit;
	s->cr0 = st->cr0;
	s->cr2 = st->cr2;
	s->cr3 = st->cr3;
	s->cr4 = st->cr4;
	s->cr8 = st->cr8;
	s->efer = st->efer;
}

void kvm_sregs_to_cpu(const struct kvm_sregs *s, struct cpu_state *st)
{
	for (int i = 0; i < SEG_COUNT; i++)
		kvm_seg_to_cpu(sreg_seg((struct kvm_sregs *)s, i), &st->seg[i]);
	st->gdt.base = s->gdt.base;
	st->gdt.limit = s->gdt.limit;
	st->idt.base = s->idt.base;
	st->idt.limit = s->idt.limit;
	st->cr0 = s->cr0;
	st->cr2 = s->cr2;
	st->cr3 = s->cr3;
	st->cr4 = s->cr4;
	st->cr8 = s->cr8;
	st->efer = s->efer;
}

void kvm_regs_from_cpu(const struct cpu_state *st, struct kvm_regs *r)
{
	const uint64_t *g = st->gpr;
	*r = (struct kvm_regs){
		.rax = g[CPU_RAX], .rbx = g[CPU_RBX], .rcx = g[CPU_RCX], .rdx = g[CPU_RDX],
		.rsi = g[CPU_RSI], .rdi = g[CPU_RDI], .rsp = g[CPU_RSP], .rbp = g[CPU_RBP],
		.r8 = g[CPU_R8], .r9 = g[CPU_R9], .r10 = g[CPU_R10], .r11 = g[CPU_R11],
		.r12 = g[CPU_R12], .r13 = g[CPU_R13], .r14 = g[CPU_R14], .r15 = g[CPU_R15],
		.rip = st->rip, .rflags = st->rflags,
	};
}

void kvm_regs_to_cpu(const struct kvm_regs *r, struct cpu_state *st)
{
	uint64_t *g = st->gpr;
	g[CPU_RAX] = r->rax; g[CPU_RBX] = r->rbx; g[CPU_RCX] = r->rcx; g[CPU_RDX] = r->rdx;
	g[CPU_RSI] = r->rsi; g[CPU_RDI] = r->rdi; g[CPU_RSP] = r->rsp; g[CPU_RBP] = r->rbp;
	g[CPU_R8] = r->r8; g[CPU_R9] = r->r9; g[CPU_R10] = r->r10; g[CPU_R11] = r->r11;
	g[CPU_R12] = r->r12; g[CPU_R13] = r->r13; g[CPU_R14] = r->r14; g[CPU_R15] = r->r15;
	st->rip = r->rip;
	st->rflags = r->rflags;
}

/* Canonical shadow: 1 after STI, 2 after MOV SS. KVM: STI 2, MOV SS 1. */
static uint8_t shadow_to_kvm(uint8_t s)
{
	return (uint8_t)(((s & 1) ? KVM_X86_SHADOW_INT_STI : 0) |
			 ((s & 2) ? KVM_X86_SHADOW_INT_MOV_SS : 0));
}

static uint8_t shadow_to_cpu(uint8_t s)
{
	return (uint8_t)(((s & KVM_X86_SHADOW_INT_STI) ? 1 : 0) |
			 ((s & KVM_X86_SHADOW_INT_MOV_SS) ? 2 : 0));
}

/* Without KVM_CAP_EXCEPTION_PAYLOAD, KVM has one "injected" exception
 * flag meaning "to be delivered on next entry"; a canonical pending
 * exception (its payload, e.g. CR2, already applied) maps onto it. */
void kvm_events_from_cpu(const struct cpu_state *st, struct kvm_vcpu_events *ev)
{
	const struct cpu_events *c = &st->ev;
	memset(ev, 0, sizeof(*ev));
	ev->exception.injected = (c->exc_pending || c->exc_injected) ? 1 : 0;
	ev->exception.nr = c->exc_vector;
	ev->exception.has_error_code = c->exc_has_error ? 1 : 0;
	ev->exception.error_code = c->exc_error;
	ev->interrupt.injected = c->irq_injected ? 1 : 0;
	ev->interrupt.nr = c->irq_vector;
	ev->interrupt.shadow = shadow_to_kvm(c->shadow);
	ev->nmi.injected = c->nmi_injected ? 1 : 0;
	ev->nmi.pending = c->nmi_pending ? 1 : 0;
	ev->nmi.masked = c->nmi_masked ? 1 : 0;
	ev->sipi_vector = st->sipi_vector & 0xff;
	ev->flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW |
		    KVM_VCPUEVENT_VALID_SIPI_VECTOR;
}

void kvm_events_to_cpu(const struct kvm_vcpu_events *ev, struct cpu_state *st)
{
	struct cpu_events *c = &st->ev;
	memset(c, 0, sizeof(*c));
	c->exc_pending = ev->exception.pending ? 1 : 0;
	c->exc_injected = ev->exception.injected ? 1 : 0;
	c->exc_vector = ev->exception.nr;
	c->exc_has_error = ev->exception.has_error_code ? 1 : 0;
	c->exc_error = ev->exception.error_code;
	c->irq_injected = ev->interrupt.injected ? 1 : 0;
	c->irq_vector = ev->interrupt.nr;
	c->shadow = shadow_to_cpu(ev->interrupt.shadow);
	c->nmi_injected = ev->nmi.injected ? 1 : 0;
	c->nmi_pending = ev->nmi.pending ? 1 : 0;
	c->nmi_masked = ev->nmi.masked ? 1 : 0;
	st->sipi_vector = ev->sipi_vector & 0xff;
}

/* KVM's UNINITIALIZED (an AP after reset, waiting for INIT) and
 * INIT_RECEIVED (waiting for SIPI) are both "wait for SIPI" on hardware,
 * where an AP comes out of reset in that state; a canonical WAIT_SIPI goes
 * back as INIT_RECEIVED. x86 KVM has no STOPPED state: a canonical stopped
 * CPU becomes UNINITIALIZED, which only an INIT leaves. */
int kvm_mp_from_cpu(uint32_t cpu_mp, uint32_t *kvm_mp)
{
	switch (cpu_mp) {
	case CPU_RUNNABLE: *kvm_mp = KVM_MP_STATE_RUNNABLE; return 0;
	case CPU_HALTED: *kvm_mp = KVM_MP_STATE_HALTED; return 0;
	case CPU_WAIT_SIPI: *kvm_mp = KVM_MP_STATE_INIT_RECEIVED; return 0;
	case CPU_STOPPED: *kvm_mp = KVM_MP_STATE_UNINITIALIZED; return 0;
	default: return -EINVAL;
	}
}

int kvm_mp_to_cpu(uint32_t kvm_mp, uint32_t *cpu_mp)
{
	switch (kvm_mp) {
	case KVM_MP_STATE_RUNNABLE: *cpu_mp = CPU_RUNNABLE; return 0;
	case KVM_MP_STATE_HALTED: *cpu_mp = CPU_HALTED; return 0;
	case KVM_MP_STATE_UNINITIALIZED:
	case KVM_MP_STATE_INIT_RECEIVED:
	case KVM_MP_STATE_AP_RESET_HOLD: *cpu_mp = CPU_WAIT_SIPI; return 0;
	/* SIPI accepted, not yet run: the next entry starts the AP. */
	case KVM_MP_STATE_SIPI_RECEIVED: *cpu_mp = CPU_RUNNABLE; return 0;
	default: return -EINVAL;
	}
}

/* FXSAVE (64-bit) layout: 0 FCW, 2 FSW, 4 abridged FTW, 6 FOP, 8 FIP,
 * 16 FDP, 24 MXCSR, 28 MXCSR_MASK, 32 ST0-7 (16 bytes each), 160 XMM0-15. */
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)v); put16(p + 2, (uint16_t)(v >> 16)); }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)v); put32(p + 4, (uint32_t)(v >> 32)); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const uint8_t *p) { return get16(p) | (uint32_t)get16(p + 2) << 16; }
static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }

void kvm_fpu_to_fxsave(const struct kvm_fpu *f, uint8_t fx[512])
{
	memset(fx, 0, 512);
	put16(fx + 0, f->fcw);
	put16(fx + 2, f->fsw);
	fx[4] = f->ftwx;
	put16(fx + 6, f->last_opcode);
	put64(fx + 8, f->last_ip);
	put64(fx + 16, f->last_dp);
	put32(fx + 24, f->mxcsr);
	put32(fx + 28, 0xffff);         /* MXCSR_MASK: all defined bits */
	memcpy(fx + 32, f->fpr, sizeof(f->fpr));
	memcpy(fx + 160, f->xmm, sizeof(f->xmm));
}

void kvm_fpu_from_fxsave(const uint8_t fx[512], struct kvm_fpu *f)
{
	memset(f, 0, sizeof(*f));
	f->fcw = get16(fx + 0);
	f->fsw = get16(fx + 2);
	f->ftwx = fx[4];
	f->last_opcode = get16(fx + 6);
	f->last_ip = get64(fx + 8);
	f->last_dp = get64(fx + 16);
	f->mxcsr = get32(fx + 24);
	memcpy(f->fpr, fx + 32, sizeof(f->fpr));
	memcpy(f->xmm, fx + 160, sizeof(f->xmm));
}
