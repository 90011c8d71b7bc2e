/* BT segmentation instructions: descriptor reads from the GDT/LDT, segment
 * register loads with the protected-mode checks, far JMP/CALL/RET, IRET in
 * every mode (including returns to outer privilege and to virtual-8086
 * mode), LGDT/LIDT/LLDT/LTR and LAR/LSL/VERR/VERW. Call gates and task
 * switches are not supported (they raise #GP). */
#include "monitor/bt/sys_int.h"

#define CR0_PE 1ULL
#define EFER_LMA (1ULL << 10)

void bt_desc_to_seg(struct cpu_seg *s, uint16_t sel, uint32_t lo, uint32_t hi)
{
	s->sel = sel;
	s->base = (lo >> 16) | ((uint64_t)(hi & 0xff) << 16) | (hi & 0xff000000u);
	uint32_t limit = (lo & 0xffff) | (hi & 0xf0000);
	if (hi & (1u << 23))
		limit = (limit << 12) | 0xfff;
	s->limit = limit;
	s->attr = (hi >> 8) & 0xf0ff;
}

uint64_t bt_read_desc(struct bt_cpu *c, uint16_t sel, int exc)
{
	uint64_t base;
	uint32_t limit;
	if (sel & 4) {
		const struct cpu_seg *l = &c->seg[SEG_LDTR];
		if (l->attr & SEG_ATTR_UNUSABLE)
			bt_raise_err(c, exc, sel & 0xfffc);
		base = l->base;
		limit = l->limit;
	} else {
		base = c->gdt.base;
		limit = c->gdt.limit;
	}
	uint64_t idx = sel & 0xfff8;
	if (idx + 7 > limit)
		bt_raise_err(c, exc, sel & 0xfffc);
	uint64_t la = base + idx;
	if (!(c->efer & EFER_LMA))
		la &= 0xffffffffULL;
	return bt_lin_read(c, la, 8, 0);
}

/* Sets the accessed bit of a descriptor the CPU just loaded. */
static void set_accessed(struct bt_cpu *c, uint16_t sel, uint64_t d)
{
	if (d & (1ULL << 40))
		return;
	uint64_t base = (sel & 4) ? c->seg[SEG_LDTR].base : c->gdt.base;
	uint64_t la = base + (sel & 0xfff8) + 5;
	if (!(c->efer & EFER_LMA))
		la &= 0xffffffffULL;
	bt_lin_write(c, la, 1, (uint8_t)((d >> 40) | 1), 0);
}

static void null_seg(struct bt_cpu *c, int seg, uint16_t sel)
{
	struct cpu_seg *s = &c->seg[seg];
	s->sel = sel;
	s->attr = SEG_ATTR_UNUSABLE;
	if (!(c->mode == BT_MODE64 && seg >= SEG_FS))
		s->base = 0;
	s->limit = 0;
	bt_seg_cache(c, seg);
}

void bt_load_seg(struct bt_cpu *c, int seg, uint16_t sel)
{
	if (!(c->cr0 & CR0_PE) || (c->rflags & BT_VM)) {
		bt_set_seg_real(c, seg, sel);
		if (seg == SEG_SS)
			c->shadow = 2;
		return;
	}
	if ((sel & 0xfffc) == 0) {
		if (seg == SEG_SS) {
			if (!(c->mode == BT_MODE64 && c->cpl < 3 && (sel & 3) == c->cpl))
				bt_raise_err(c, BT_GP, 0);
			null_seg(c, seg, sel);
			c->seg[SEG_SS].attr |= (uint32_t)c->cpl << 5;
			c->shadow = 2;
			return;
		}
		null_seg(c, seg, sel);
		return;
	}
	uint64_t d = bt_read_desc(c, sel, BT_GP);
	uint32_t hi = (uint32_t)(d >> 32);
	int type = (int)((hi >> 8) & 0xf), dpl = (int)((hi >> 13) & 3), rpl = sel & 3;
	bool s_bit = (hi >> 12) & 1, present = (hi >> 15) & 1;
	uint32_t err = sel & 0xfffc;
	if (seg == SEG_SS) {
		if (!s_bit || (type & 8) || !(type & 2) || rpl != c->cpl || dpl != c->cpl)
			bt_raise_err(c, BT_GP, err);
		if (!present)
			bt_raise_err(c, BT_SS, err);
		c->shadow = 2;
	} else {
		if (!s_bit || ((type & 8) && !(type & 2)))
			bt_raise_err(c, BT_GP, err);
		bool conforming_code = (type & 8) && (type & 4);
		if (!conforming_code && (rpl > dpl || c->cpl > dpl))
			bt_raise_err(c, BT_GP, err);
		if (!present)
			bt_raise_err(c, BT_NP, err);
	}
	set_accessed(c, sel, d);
	bt_desc_to_seg(&c->seg[seg], sel, (uint32_t)d, hi | 0x100);
	bt_seg_cache(c, seg);
}

/* ---- far transfers ---- */

/* Checks a far JMP/CALL/RET target code segment and loads CS (at new_cpl)
 * and RIP. */
static void load_cs(struct bt_cpu *c, uint16_t sel, uint64_t d, int new_cpl, uint64_t rip)
{
	set_accessed(c, sel, d);
	bt_desc_to_seg(&c->seg[SEG_CS], (uint16_t)((sel & 0xfffc) | new_cpl),
		       (uint32_t)d, (uint32_t)(d >> 32) | 0x100);
	bt_mode_changed(c);
	c->next_rip = rip;
}

/* Descriptor of a far JMP/CALL target (same privilege); raises on the
 * checks. Returns it. */
static uint64_t far_target(struct bt_cpu *c, uint16_t sel)
{
	if ((sel & 0xfffc) == 0)
		bt_raise_err(c, BT_GP, 0);
	uint64_t d = bt_read_desc(c, sel, BT_GP);
	uint32_t hi = (uint32_t)(d >> 32);
	int type = (int)((hi >> 8) & 0xf), dpl = (int)((hi >> 13) & 3), rpl = sel & 3;
	uint32_t err = sel & 0xfffc;
	if (!((hi >> 12) & 1) || !(type & 8))
		bt_raise_err(c, BT_GP, err);   /* gates and TSSs: unsupported */
	if (type & 4) {
		if (dpl > c->cpl)
			bt_raise_err(c, BT_GP, err);
	} else if (rpl > c->cpl || dpl != c->cpl) {
		bt_raise_err(c, BT_GP, err);
	}
	if (!((hi >> 15) & 1))
		bt_raise_err(c, BT_NP, err);
	if ((c->efer & EFER_LMA) && ((hi >> 21) & 1) && ((hi >> 22) & 1))
		bt_raise_err(c, BT_GP, err);
	return d;
}

static uint64_t mask_ip(uint64_t rip, uint64_t d, bool lm)
{
	uint32_t hi = (uint32_t)(d >> 32);
	if (lm && ((hi >> 21) & 1))
		return rip;
	return ((hi >> 22) & 1) ? (uint32_t)rip : (uint16_t)rip;
}

void bt_far_jmp(struct bt_cpu *c, uint16_t sel, uint64_t off)
{
	if (!(c->cr0 & CR0_PE) || (c->rflags & BT_VM)) {
		bt_set_seg_real(c, SEG_CS, sel);
		c->next_rip = off & 0xffff;
		if (c->cr0 & CR0_PE)
			bt_mode_changed(c);
		return;
	}
	uint64_t d = far_target(c, sel);
	uint64_t rip = mask_ip(off, d, c->efer & EFER_LMA);
	/* limit check (outside 64-bit code) */
	uint32_t hi = (uint32_t)(d >> 32);
	if (!((c->efer & EFER_LMA) && ((hi >> 21) & 1))) {
		struct cpu_seg t;
		bt_desc_to_seg(&t, sel, (uint32_t)d, hi);
		if (rip > t.limit)
			bt_raise_err(c, BT_GP, 0);
	}
	load_cs(c, sel, d, c->cpl, rip);
}

static uint64_t ss_mask(const struct bt_cpu *c)
{
	return c->mode == BT_MODE64 ? ~0ULL :
	       (c->seg[SEG_SS].attr & SEG_ATTR_DB) ? 0xffffffffULL : 0xffffULL;
}

/* Pushes onto SS at *sp without touching RSP (committed by the caller once
 * everything that can fault has been done). */
static void push_tmp(struct bt_cpu *c, uint64_t *sp, int size, uint64_t v)
{
	uint64_t m = ss_mask(c);
	uint64_t n = (*sp - (uint64_t)size) & m;
	bt_write(c, SEG_SS, n, size, v);
	*sp = (*sp & ~m) | n;
}

void bt_far_call(struct bt_cpu *c, uint16_t sel, uint64_t off, int opsize)
{
	uint16_t old_cs = c->seg[SEG_CS].sel;
	uint64_t ret = c->next_rip;
	uint64_t sp = c->r[CPU_RSP];
	if (!(c->cr0 & CR0_PE) || (c->rflags & BT_VM)) {
		push_tmp(c, &sp, opsize, old_cs);
		push_tmp(c, &sp, opsize, ret);
		c->r[CPU_RSP] = sp;
		bt_set_seg_real(c, SEG_CS, sel);
		c->next_rip = opsize == 2 ? (off & 0xffff) : (uint32_t)off;
		return;
	}
	uint64_t d = far_target(c, sel);
	uint64_t rip = mask_ip(off, d, c->efer & EFER_LMA);
	push_tmp(c, &sp, opsize, old_cs);
	push_tmp(c, &sp, opsize, ret);
	c->r[CPU_RSP] = sp;
	load_cs(c, sel, d, c->cpl, rip);
}

/* After a return to an outer privilege level: data segment registers the
 * new CPL may not use become null. */
static void check_data_segs(struct bt_cpu *c)
{
	for (int sg = SEG_ES; sg <= SEG_GS; sg++) {
		if (sg == SEG_CS || sg == SEG_SS)
			continue;
		struct cpu_seg *s = &c->seg[sg];
		if (s->attr & SEG_ATTR_UNUSABLE)
			continue;
		int type = SEG_ATTR_TYPE(s->attr);
		bool conf_code = (type & 8) && (type & 4);
		if (!conf_code && (int)SEG_ATTR_DPL(s->attr) < c->cpl)
			null_seg(c, sg, 0);
	}
}

/* Loads SS for a return to privilege cpl from selector sel. */
static void load_ss_outer(struct bt_cpu *c, uint16_t sel, int cpl, bool lm64)
{
	if ((sel & 0xfffc) == 0) {
		if (lm64 && cpl < 3) {
			null_seg(c, SEG_SS, sel);
			c->seg[SEG_SS].attr |= (uint32_t)cpl << 5;
			return;
		}
		bt_raise_err(c, BT_GP, 0);
	}
	uint64_t d = bt_read_desc(c, sel, BT_GP);
	uint32_t hi = (uint32_t)(d >> 32);
	int type = (int)((hi >> 8) & 0xf);
	if ((sel & 3) != cpl || (int)((hi >> 13) & 3) != cpl || !((hi >> 12) & 1) ||
	    (type & 8) || !(type & 2))
		bt_raise_err(c, BT_GP, sel & 0xfffc);
	if (!((hi >> 15) & 1))
		bt_raise_err(c, BT_SS, sel & 0xfffc);
	set_accessed(c, sel, d);
	bt_desc_to_seg(&c->seg[SEG_SS], sel, (uint32_t)d, hi | 0x100);
	bt_seg_cache(c, SEG_SS);
}

static uint64_t stack_read(struct bt_cpu *c, uint64_t *sp, int size)
{
	uint64_t m = ss_mask(c);
	uint64_t v = bt_read(c, SEG_SS, *sp & m, size);
	*sp = (*sp & ~m) | ((*sp + (uint64_t)size) & m);
	return v;
}

static void set_sp(struct bt_cpu *c, uint64_t sp)
{
	uint64_t m = ss_mask(c);
	c->r[CPU_RSP] = (c->r[CPU_RSP] & ~m) | (sp & m);
}

void bt_far_ret(struct bt_cpu *c, int opsize, uint16_t imm)
{
	uint64_t sp = c->r[CPU_RSP];
	uint64_t rip = stack_read(c, &sp, opsize);
	uint16_t sel = (uint16_t)stack_read(c, &sp, opsize);
	if (!(c->cr0 & CR0_PE) || (c->rflags & BT_VM)) {
		bt_set_seg_real(c, SEG_CS, sel);
		set_sp(c, sp + imm);
		c->next_rip = opsize == 2 ? (rip & 0xffff) : (uint32_t)rip;
		return;
	}
	if ((sel & 0xfffc) == 0)
		bt_raise_err(c, BT_GP, 0);
	int rpl = sel & 3;
	if (rpl < c->cpl)
		bt_raise_err(c, BT_GP, sel & 0xfffc);
	uint64_t d = bt_read_desc(c, sel, BT_GP);
	uint32_t hi = (uint32_t)(d >> 32);
	int type = (int)((hi >> 8) & 0xf), dpl = (int)((hi >> 13) & 3);
	if (!((hi >> 12) & 1) || !(type & 8) || ((type & 4) ? dpl > rpl : dpl != rpl))
		bt_raise_err(c, BT_GP, sel & 0xfffc);
	if (!((hi >> 15) & 1))
		bt_raise_err(c, BT_NP, sel & 0xfffc);
	bool lm = c->efer & EFER_LMA;
	rip = mask_ip(rip, d, lm);
	if (rpl == c->cpl) {
		set_sp(c, sp + imm);
		load_cs(c, sel, d, rpl, rip);
		return;
	}
	sp += imm;
	uint64_t nsp = stack_read(c, &sp, opsize);
	uint16_t ss = (uint16_t)stack_read(c, &sp, opsize);
	bool to64 = lm && ((hi >> 21) & 1);
	load_cs(c, sel, d, rpl, rip);
	load_ss_outer(c, ss, rpl, to64);
	bt_mode_changed(c);
	if (c->mode == BT_MODE64)
		c->r[CPU_RSP] = nsp + imm;
	else
		set_sp(c, nsp + imm);
	check_data_segs(c);
}

/* RFLAGS bits POPF/IRET may change at the current CPL and IOPL. */
uint64_t bt_flags_writable(struct bt_cpu *c, int opsize)
{
	uint64_t m = BT_ARITH_FLAGS | BT_TF | BT_DF_FLAG | BT_NT | BT_AC_FLAG | BT_ID;
	int iopl = (int)((c->rflags >> 12) & 3);
	if (c->cpl == 0)
		m |= BT_IOPL | BT_IF;
	else if (c->cpl <= iopl)
		m |= BT_IF;
	if (opsize == 2)
		m &= 0xffff;
	return m;
}

void bt_iret(struct bt_cpu *c, int opsize)
{
	uint64_t flags = bt_get_rflags(c);
	uint64_t sp = c->r[CPU_RSP];
	if (!(c->cr0 & CR0_PE) || (flags & BT_VM)) {
		if ((flags & BT_VM) && ((flags >> 12) & 3) != 3)
			bt_raise_err(c, BT_GP, 0);
		uint64_t rip = stack_read(c, &sp, opsize);
		uint16_t sel = (uint16_t)stack_read(c, &sp, opsize);
		uint64_t nf = stack_read(c, &sp, opsize);
		uint64_t m = (flags & BT_VM) ? (0x3fffffULL & ~(uint64_t)(BT_IOPL | BT_VM | BT_VIP | BT_VIF))
					     : (0x3fffffULL & ~(uint64_t)(BT_VM | BT_VIP | BT_VIF));
		if (opsize == 2)
			m &= 0xffff;
		bt_set_seg_real(c, SEG_CS, sel);
		set_sp(c, sp);
		bt_set_rflags(c, (flags & ~m) | (nf & m));
		c->next_rip = opsize == 2 ? (rip & 0xffff) : (uint32_t)rip;
		return;
	}
	if (flags & BT_NT)
		bt_raise_err(c, BT_GP, 0);   /* task return: unsupported */
	bool lm = c->efer & EFER_LMA;
	uint64_t rip = stack_read(c, &sp, opsize);
	uint16_t sel = (uint16_t)stack_read(c, &sp, opsize);
	uint64_t nf = stack_read(c, &sp, opsize);
	if (opsize == 2)
		nf = (flags & ~0xffffULL) | (nf & 0xffff);
	if (!lm && (nf & BT_VM) && c->cpl == 0 && opsize == 4) {
		/* return to virtual-8086 mode */
		uint64_t nsp = stack_read(c, &sp, 4);
		uint16_t ss = (uint16_t)stack_read(c, &sp, 4);
		uint16_t es = (uint16_t)stack_read(c, &sp, 4);
		uint16_t ds = (uint16_t)stack_read(c, &sp, 4);
		uint16_t fs = (uint16_t)stack_read(c, &sp, 4);
		uint16_t gs = (uint16_t)stack_read(c, &sp, 4);
		bt_set_rflags(c, (nf & 0x3f7fd7ULL) | BT_VM);
		bt_mode_changed(c);
		bt_set_seg_real(c, SEG_CS, sel);
		bt_set_seg_real(c, SEG_SS, ss);
		bt_set_seg_real(c, SEG_ES, es);
		bt_set_seg_real(c, SEG_DS, ds);
		bt_set_seg_real(c, SEG_FS, fs);
		bt_set_seg_real(c, SEG_GS, gs);
		c->r[CPU_RSP] = (uint32_t)nsp;
		c->next_rip = rip & 0xffff;
		return;
	}
	if ((sel & 0xfffc) == 0)
		bt_raise_err(c, BT_GP, 0);
	int rpl = sel & 3;
	if (rpl < c->cpl)
		bt_raise_err(c, BT_GP, sel & 0xfffc);
	uint64_t d = bt_read_desc(c, sel, BT_GP);
	uint32_t hi = (uint32_t)(d >> 32);
	int type = (int)((hi >> 8) & 0xf), dpl = (int)((hi >> 13) & 3);
	if (!((hi >> 12) & 1) || !(type & 8) || ((type & 4) ? dpl > rpl : dpl != rpl))
		bt_raise_err(c, BT_GP, sel & 0xfffc);
	if (!((hi >> 15) & 1))
		bt_raise_err(c, BT_NP, sel & 0xfffc);
	bool to64 = lm && ((hi >> 21) & 1);
	if (lm && ((hi >> 21) & 1) && ((hi >> 22) & 1))
		bt_raise_err(c, BT_GP, sel & 0xfffc);
	rip = mask_ip(rip, d, lm);
	uint64_t wm = bt_flags_writable(c, opsize) | BT_RF;
	uint64_t newflags = (flags & ~wm) | (nf & wm);
	newflags &= ~(uint64_t)(BT_VM | BT_VIP | BT_VIF) | (flags & (BT_VIP | BT_VIF));
	if (c->mode == BT_MODE64 || rpl > c->cpl) {
		uint64_t nsp = stack_read(c, &sp, opsize);
		uint16_t ss = (uint16_t)stack_read(c, &sp, opsize);
		int old_cpl = c->cpl;
		/* check SS before changing anything */
		if (!((ss & 0xfffc) == 0 && to64 && rpl < 3)) {
			if ((ss & 0xfffc) == 0)
				bt_raise_err(c, BT_GP, 0);
			uint64_t sd = bt_read_desc(c, ss, BT_GP);
			uint32_t shi = (uint32_t)(sd >> 32);
			int st = (int)((shi >> 8) & 0xf);
			if ((ss & 3) != rpl || (int)((shi >> 13) & 3) != rpl ||
			    !((shi >> 12) & 1) || (st & 8) || !(st & 2))
				bt_raise_err(c, BT_GP, ss & 0xfffc);
			if (!((shi >> 15) & 1))
				bt_raise_err(c, BT_SS, ss & 0xfffc);
		}
		load_cs(c, sel, d, rpl, rip);
		load_ss_outer(c, ss, rpl, to64);
		bt_set_rflags(c, newflags);
		bt_mode_changed(c);
		if (c->mode == BT_MODE64)
			c->r[CPU_RSP] = nsp;
		else
			set_sp(c, nsp);
		if (rpl > old_cpl)
			check_data_segs(c);
		return;
	}
	set_sp(c, sp);
	load_cs(c, sel, d, rpl, rip);
	bt_set_rflags(c, newflags);
	bt_mode_changed(c);
}

/* ---- descriptor tables ---- */

/* Reads a system descriptor (LDT or TSS) for LLDT/LTR: 16 bytes in long
 * mode. Returns the loaded segment. */
static void sys_desc(struct bt_cpu *c, uint16_t sel, int want_type_mask, struct cpu_seg *out,
		     uint64_t *d_out)
{
	if ((sel & 0xfffc) == 0 || (sel & 4))
		bt_raise_err(c, BT_GP, sel & 0xfffc);
	uint64_t d = bt_read_desc(c, sel, BT_GP);
	uint32_t hi = (uint32_t)(d >> 32);
	int type = (int)((hi >> 8) & 0xf);
	if (((hi >> 12) & 1) || !((1 << type) & want_type_mask))
		bt_raise_err(c, BT_GP, sel & 0xfffc);
	if (!((hi >> 15) & 1))
		bt_raise_err(c, BT_NP, sel & 0xfffc);
	bt_desc_to_seg(out, sel, (uint32_t)d, hi);
	if (c->efer & EFER_LMA) {
		uint64_t la = c->gdt.base + (sel & 0xfff8) + 8;
		if ((uint64_t)(sel & 0xfff8) + 15 > c->gdt.limit)
			bt_raise_err(c, BT_GP, sel & 0xfffc);
		uint64_t d2 = bt_lin_read(c, la, 8, 0);
		out->base |= (d2 & 0xffffffffULL) << 32;
	}
	*d_out = d;
}

void bt_lldt(struct bt_cpu *c, uint16_t sel)
{
	if ((sel & 0xfffc) == 0) {
		c->seg[SEG_LDTR].sel = sel;
		c->seg[SEG_LDTR].attr = SEG_ATTR_UNUSABLE;
		return;
	}
	struct cpu_seg s;
	uint64_t d;
	sys_desc(c, sel, 1 << 2, &s, &d);
	c->seg[SEG_LDTR] = s;
}

void bt_ltr(struct bt_cpu *c, uint16_t sel)
{
	struct cpu_seg s;
	uint64_t d;
	/* available 16-bit (1) or 32/64-bit (9) TSS */
	sys_desc(c, sel, (c->efer & EFER_LMA) ? (1 << 9) : ((1 << 1) | (1 << 9)), &s, &d);
	/* mark it busy */
	uint64_t la = c->gdt.base + (sel & 0xfff8) + 5;
	if (!(c->efer & EFER_LMA))
		la &= 0xffffffffULL;
	bt_lin_write(c, la, 1, (uint8_t)((d >> 40) | 2), 0);
	s.attr |= 2;
	c->seg[SEG_TR] = s;
}

/* LAR/LSL/VERR/VERW: returns whether the selector passes (ZF) and the
 * descriptor. kind: 0 LAR, 1 LSL, 2 VERR, 3 VERW. */
bool bt_seg_probe(struct bt_cpu *c, uint16_t sel, int kind, uint64_t *val)
{
	if ((sel & 0xfffc) == 0)
		return false;
	uint64_t idx = sel & 0xfff8;
	uint64_t base = (sel & 4) ? c->seg[SEG_LDTR].base : c->gdt.base;
	uint32_t limit = (sel & 4) ? c->seg[SEG_LDTR].limit : c->gdt.limit;
	if ((sel & 4) && (c->seg[SEG_LDTR].attr & SEG_ATTR_UNUSABLE))
		return false;
	if (idx + 7 > limit)
		return false;
	uint64_t la = base + idx;
	if (!(c->efer & EFER_LMA))
		la &= 0xffffffffULL;
	uint64_t d = bt_lin_read(c, la, 8, 0);
	uint32_t hi = (uint32_t)(d >> 32);
	int type = (int)((hi >> 8) & 0xf), dpl = (int)((hi >> 13) & 3), rpl = sel & 3;
	bool s_bit = (hi >> 12) & 1;
	bool conf_code = s_bit && (type & 8) && (type & 4);
	if (!conf_code && (dpl < c->cpl || dpl < rpl))
		return false;
	if (!s_bit) {
		static const uint16_t lar_ok32 = (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) |
			(1 << 5) | (1 << 9) | (1 << 11) | (1 << 12);
		static const uint16_t lar_ok64 = (1 << 2) | (1 << 9) | (1 << 11) | (1 << 12);
		static const uint16_t lsl_ok32 = (1 << 1) | (1 << 2) | (1 << 3) | (1 << 9) | (1 << 11);
		static const uint16_t lsl_ok64 = (1 << 2) | (1 << 9) | (1 << 11);
		bool lm = c->efer & EFER_LMA;
		if (kind >= 2)
			return false;
		uint16_t ok = kind == 0 ? (lm ? lar_ok64 : lar_ok32) : (lm ? lsl_ok64 : lsl_ok32);
		if (!((1 << type) & ok))
			return false;
	} else if (kind == 2) {
		if ((type & 8) && !(type & 2))
			return false;
	} else if (kind == 3) {
		if ((type & 8) || !(type & 2))
			return false;
	}
	if (kind == 0) {
		*val = hi & 0x00f0ff00;
	} else if (kind == 1) {
		struct cpu_seg s;
		bt_desc_to_seg(&s, sel, (uint32_t)d, hi);
		*val = s.limit;
	}
	return true;
}
