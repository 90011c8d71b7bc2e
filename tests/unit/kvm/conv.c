/* cpu_state <-> KVM structure conversions (no /dev/kvm needed). */
#include <errno.h>
#include <string.h>
#include "monitor/kvm/kvm_int.h"
#include "tests/unit/test.h"
#include "tests/unit/kvm/kvm_tests.h"

static void seg_fields(void)
{
	/* 64-bit ring-3 code: type b, S, DPL 3, P, L, G, AVL. */
	struct cpu_seg c = { .base = 0x1234, .limit = 0xffffffff, .sel = 0x33,
		.attr = 0xb | SEG_ATTR_S | (3u << 5) | SEG_ATTR_P | SEG_ATTR_L | SEG_ATTR_G | SEG_ATTR_AVL };
	struct kvm_segment k;
	kvm_seg_from_cpu(&c, &k);
	CHECK_EQ(k.base, 0x1234);
	CHECK_EQ(k.limit, 0xffffffffu);
	CHECK_EQ(k.selector, 0x33);
	CHECK_EQ(k.type, 0xb);
	CHECK_EQ(k.s, 1);
	CHECK_EQ(k.dpl, 3);
	CHECK_EQ(k.present, 1);
	CHECK_EQ(k.l, 1);
	CHECK_EQ(k.db, 0);
	CHECK_EQ(k.g, 1);
	CHECK_EQ(k.avl, 1);
	CHECK_EQ(k.unusable, 0);

	/* Unusable null data segment, and a 32-bit TSS. */
	struct cpu_seg n = { .attr = SEG_ATTR_UNUSABLE | SEG_ATTR_DB };
	kvm_seg_from_cpu(&n, &k);
	CHECK_EQ(k.unusable, 1);
	CHECK_EQ(k.present, 0);
	CHECK_EQ(k.db, 1);
	struct kvm_segment tss = { .base = 0xfffff000, .limit = 0x67, .selector = 0x28,
				   .type = 0xb, .present = 1 };
	struct cpu_seg t;
	kvm_seg_to_cpu(&tss, &t);
	CHECK_EQ(t.attr, 0x8b);
	CHECK_EQ(t.limit, 0x67);
	CHECK_EQ(t.base, 0xfffff000);
	CHECK_EQ(t.sel, 0x28);
}

static void seg_roundtrip_all_attrs(void)
{
	/* Every combination of the defined attribute bits survives. */
	const uint32_t defined = 0xff | SEG_ATTR_AVL | SEG_ATTR_L | SEG_ATTR_DB | SEG_ATTR_G |
				 SEG_ATTR_UNUSABLE;
	int bad = 0;
	for (uint32_t a = 0; a < (1u << 17); a++) {
		if (a & ~defined)
			continue;
		struct cpu_seg c = { .base = a * 0x1000ULL, .limit = a, .sel = (uint16_t)a, .attr = a }, back;
		struct kvm_segment k;
		kvm_seg_from_cpu(&c, &k);
		kvm_seg_to_cpu(&k, &back);
		if (back.attr != c.attr || back.base != c.base || back.limit != c.limit || back.sel != c.sel)
			bad++;
	}
	CHECK_EQ(bad, 0);
}

static void fill_state(struct cpu_state *st)
{
	memset(st, 0, sizeof(*st));
	for (int i = 0; i < 16; i++)
		st->gpr[i] = 0x1111111111111111ULL * (uint64_t)(i + 1);
	st->rip = 0xffffffff81000000ULL;
	st->rflags = 0x246;
	for (int i = 0; i < SEG_COUNT; i++)
		st->seg[i] = (struct cpu_seg){ .base = 0x1000ULL * (uint64_t)i, .limit = 0xfffff,
			.sel = (uint16_t)(i * 8), .attr = 0x93 | (i == SEG_CS ? SEG_ATTR_L : 0) };
	st->gdt = (struct cpu_dtable){ 0xfffffe0000001000ULL, 0x7f };
	st->idt = (struct cpu_dtable){ 0xfffffe0000000000ULL, 0xfff };
	st->cr0 = 0x80050033;
	st->cr2 = 0xdeadb000;
	st->cr3 = 0x1234000;
	st->cr4 = 0x3506f0;
	st->cr8 = 0x2;
	st->efer = 0xd01;
}

static void sregs_regs_roundtrip(void)
{
	struct cpu_state a, b;
	fill_state(&a);
	struct kvm_sregs s;
	struct kvm_regs r;
	memset(&s, 0xa5, sizeof(s));
	kvm_sregs_from_cpu(&a, &s);
	kvm_regs_from_cpu(&a, &r);
	CHECK_EQ(s.cs.l, 1);
	CHECK_EQ(s.ss.selector, SEG_SS * 8);
	CHECK_EQ(s.ldt.base, 0x1000ULL * SEG_LDTR);
	CHECK_EQ(s.tr.selector, SEG_TR * 8);
	CHECK_EQ(r.rsp, a.gpr[CPU_RSP]);
	CHECK_EQ(r.r15, a.gpr[CPU_R15]);
	CHECK_EQ(r.rdi, a.gpr[CPU_RDI]);
	memset(&b, 0, sizeof(b));
	kvm_sregs_to_cpu(&s, &b);
	kvm_regs_to_cpu(&r, &b);
	CHECK(!memcmp(a.gpr, b.gpr, sizeof(a.gpr)));
	CHECK_EQ(b.rip, a.rip);
	CHECK_EQ(b.rflags, a.rflags);
	for (int i = 0; i < SEG_COUNT; i++) {
		CHECK_EQ(b.seg[i].base, a.seg[i].base);
		CHECK_EQ(b.seg[i].limit, a.seg[i].limit);
		CHECK_EQ(b.seg[i].sel, a.seg[i].sel);
		CHECK_EQ(b.seg[i].attr, a.seg[i].attr);
	}
	CHECK_EQ(b.gdt.base, a.gdt.base);
	CHECK_EQ(b.gdt.limit, a.gdt.limit);
	CHECK_EQ(b.idt.base, a.idt.base);
	CHECK_EQ(b.idt.limit, a.idt.limit);
	CHECK_EQ(b.cr0, a.cr0);
	CHECK_EQ(b.cr2, a.cr2);
	CHECK_EQ(b.cr3, a.cr3);
	CHECK_EQ(b.cr4, a.cr4);
	CHECK_EQ(b.cr8, a.cr8);
	CHECK_EQ(b.efer, a.efer);
}

static void events_mapping(void)
{
	struct cpu_state st;
	memset(&st, 0, sizeof(st));
	struct kvm_vcpu_events ev;

	st.ev.shadow = 1;                       /* after STI */
	kvm_events_from_cpu(&st, &ev);
	CHECK_EQ(ev.interrupt.shadow, KVM_X86_SHADOW_INT_STI);
	CHECK(ev.flags & KVM_VCPUEVENT_VALID_SHADOW);
	CHECK(ev.flags & KVM_VCPUEVENT_VALID_NMI_PENDING);
	st.ev.shadow = 2;                       /* after MOV SS */
	kvm_events_from_cpu(&st, &ev);
	CHECK_EQ(ev.interrupt.shadow, KVM_X86_SHADOW_INT_MOV_SS);

	/* A pending #PF with error code becomes KVM's (payload-less) injected
	 * exception. */
	memset(&st.ev, 0, sizeof(st.ev));
	st.ev.exc_pending = 1;
	st.ev.exc_vector = 14;
	st.ev.exc_has_error = 1;
	st.ev.exc_error = 0x6;
	st.ev.nmi_pending = 1;
	st.ev.nmi_masked = 1;
	st.ev.irq_injected = 1;
	st.ev.irq_vector = 0x31;
	st.sipi_vector = 0x9a;
	kvm_events_from_cpu(&st, &ev);
	CHECK_EQ(ev.exception.injected, 1);
	CHECK_EQ(ev.exception.pending, 0);
	CHECK_EQ(ev.exception.nr, 14);
	CHECK_EQ(ev.exception.has_error_code, 1);
	CHECK_EQ(ev.exception.error_code, 6);
	CHECK_EQ(ev.nmi.pending, 1);
	CHECK_EQ(ev.nmi.masked, 1);
	CHECK_EQ(ev.nmi.injected, 0);
	CHECK_EQ(ev.interrupt.injected, 1);
	CHECK_EQ(ev.interrupt.nr, 0x31);
	CHECK_EQ(ev.sipi_vector, 0x9a);

	struct cpu_state back;
	memset(&back, 0xff, sizeof(back));
	ev.interrupt.shadow = KVM_X86_SHADOW_INT_STI | KVM_X86_SHADOW_INT_MOV_SS;
	kvm_events_to_cpu(&ev, &back);
	CHECK_EQ(back.ev.exc_injected, 1);
	CHECK_EQ(back.ev.exc_pending, 0);
	CHECK_EQ(back.ev.exc_vector, 14);
	CHECK_EQ(back.ev.exc_has_error, 1);
	CHECK_EQ(back.ev.exc_error, 6);
	CHECK_EQ(back.ev.nmi_pending, 1);
	CHECK_EQ(back.ev.nmi_masked, 1);
	CHECK_EQ(back.ev.nmi_injected, 0);
	CHECK_EQ(back.ev.irq_injected, 1);
	CHECK_EQ(back.ev.irq_vector, 0x31);
	CHECK_EQ(back.ev.shadow, 3);
	CHECK_EQ(back.sipi_vector, 0x9a);
}

static void mp_state_mapping(void)
{
	uint32_t k, c;
	CHECK_EQ(kvm_mp_from_cpu(CPU_RUNNABLE, &k), 0);
	CHECK_EQ(k, KVM_MP_STATE_RUNNABLE);
	CHECK_EQ(kvm_mp_from_cpu(CPU_HALTED, &k), 0);
	CHECK_EQ(k, KVM_MP_STATE_HALTED);
	CHECK_EQ(kvm_mp_from_cpu(CPU_WAIT_SIPI, &k), 0);
	CHECK_EQ(k, KVM_MP_STATE_INIT_RECEIVED);
	CHECK_EQ(kvm_mp_from_cpu(CPU_STOPPED, &k), 0);
	CHECK_EQ(k, KVM_MP_STATE_UNINITIALIZED);
	CHECK_EQ(kvm_mp_from_cpu(77, &k), -EINVAL);
	/* Every canonical state survives a round trip but STOPPED, which KVM
	 * holds as a CPU waiting for INIT (reported as WAIT_SIPI). */
	for (uint32_t s = CPU_RUNNABLE; s <= CPU_WAIT_SIPI; s++) {
		CHECK_EQ(kvm_mp_from_cpu(s, &k), 0);
		CHECK_EQ(kvm_mp_to_cpu(k, &c), 0);
		CHECK_EQ(c, s);
	}
	CHECK_EQ(kvm_mp_to_cpu(KVM_MP_STATE_UNINITIALIZED, &c), 0);
	CHECK_EQ(c, CPU_WAIT_SIPI);
	CHECK_EQ(kvm_mp_to_cpu(KVM_MP_STATE_STOPPED, &c), -EINVAL);
}

static void fpu_fxsave_layout(void)
{
	struct kvm_fpu f, g;
	memset(&f, 0, sizeof(f));
	f.fcw = 0x037f;
	f.fsw = 0x4000;
	f.ftwx = 0x81;
	f.last_opcode = 0x7ff;
	f.last_ip = 0x1122334455667788ULL;
	f.last_dp = 0x99aabbccddeeff00ULL;
	f.mxcsr = 0x1f80;
	for (int i = 0; i < 8; i++)
		memset(f.fpr[i], 0x10 + i, 10);
	for (int i = 0; i < 16; i++)
		memset(f.xmm[i], 0x40 + i, 16);
	uint8_t fx[512];
	kvm_fpu_to_fxsave(&f, fx);
	CHECK_EQ(fx[0], 0x7f);
	CHECK_EQ(fx[1], 0x03);
	CHECK_EQ(fx[3], 0x40);
	CHECK_EQ(fx[4], 0x81);
	CHECK_EQ(fx[8], 0x88);
	CHECK_EQ(fx[15], 0x11);
	CHECK_EQ(fx[16], 0x00);
	CHECK_EQ(fx[24], 0x80);
	CHECK_EQ(fx[25], 0x1f);
	CHECK_EQ(fx[32], 0x10);
	CHECK_EQ(fx[32 + 16 * 7], 0x17);
	CHECK_EQ(fx[160], 0x40);
	CHECK_EQ(fx[160 + 16 * 15 + 15], 0x4f);
	kvm_fpu_from_fxsave(fx, &g);
	CHECK(!memcmp(&f, &g, sizeof(f)));
}

int kvm_conv_tests(void)
{
	TEST(seg_fields);
	TEST(seg_roundtrip_all_attrs);
	TEST(sregs_regs_roundtrip);
	TEST(events_mapping);
	TEST(mp_state_mapping);
	TEST(fpu_fxsave_layout);
	return test_failures;
}
