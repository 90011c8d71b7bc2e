/* BT event delivery: exceptions, external interrupts, NMIs and software
 * interrupts through the IVT (real mode) or IDT (protected and long mode):
 * gate checks, privilege changes with the stack from the TSS, IST, error
 * codes, and the double-fault / triple-fault rules. */
#include "monitor/bt/sys_int.h"

#define CR0_PE 1ULL
#define EFER_LMA (1ULL << 10)

/* Exception classes for the double-fault rules. */
static int exc_class(int v)
{
	switch (v) {
	case BT_DE: case BT_TS: case BT_NP: case BT_SS: case BT_GP:
		return 1;   /* contributory */
	case BT_PF:
		return 2;
	case BT_DF:
		return 3;
	default:
		return 0;   /* benign */
	}
}

/* Is the exception a trap (return address after the instruction)? */
static bool exc_is_trap(int v)
{
	return v == BT_BP || v == BT_OF;
}

void bt_deliver_exception(struct bt_cpu *c)
{
	struct bt_sys *s = c->sys;
	int vec = c->exc_vector;
	bool has_err = c->exc_has_error;
	uint32_t err = c->exc_error;
	if (s->delivering) {
		int first = exc_class(s->deliv_vector), second = exc_class(vec);
		if (first == 3) {
			/* triple fault: the loop resets the machine */
			s->delivering = 0;
			s->triple = 1;
			return;
		}
		if ((first == 1 && second == 1) || (first == 2 && second != 0)) {
			vec = BT_DF;
			has_err = true;
			err = 0;
		}
	}
	s->delivering = 1;
	s->deliv_vector = (uint8_t)vec;
	if (vec == BT_PF)
		c->cr2 = c->exc_cr2;
	if (vec == BT_DB)
		c->dr[6] |= 0x4000;   /* BS when raised for single step */
	uint64_t ret = exc_is_trap(vec) ? c->next_rip : c->rip;
	bt_interrupt(c, vec, BT_EV_EXC, has_err, err, ret);
	s->delivering = 0;
}

/* ---- stack pushes at the new privilege ---- */

struct pusher {
	uint64_t base, sp, mask;
	int user;
};

static void push(struct bt_cpu *c, struct pusher *p, int size, uint64_t v)
{
	p->sp = (p->sp - (uint64_t)size) & p->mask;
	uint64_t la = p->base + p->sp;
	if (c->mode != BT_MODE64 && !(c->efer & EFER_LMA))
		la &= 0xffffffffULL;
	bt_lin_write(c, la, size, v, p->user);
}

static void deliver_real(struct bt_cpu *c, int vector, uint64_t ret_rip)
{
	uint64_t ent = (uint64_t)vector * 4;
	if (ent + 3 > c->idt.limit)
		bt_raise_err(c, BT_GP, (uint32_t)(vector * 8 + 2));
	uint32_t v = (uint32_t)bt_lin_read(c, (c->idt.base + ent) & 0xffffffffULL, 4, 0);
	struct pusher p = { c->seg[SEG_SS].base, c->r[CPU_RSP],
			    (c->seg[SEG_SS].attr & SEG_ATTR_DB) ? 0xffffffffULL : 0xffffULL, 0 };
	push(c, &p, 2, bt_get_rflags(c));
	push(c, &p, 2, c->seg[SEG_CS].sel);
	push(c, &p, 2, ret_rip);
	c->r[CPU_RSP] = (c->r[CPU_RSP] & ~p.mask) | p.sp;
	bt_set_rflags(c, bt_get_rflags(c) & ~(uint64_t)(BT_IF | BT_TF | BT_AC_FLAG | BT_RF));
	bt_set_seg_real(c, SEG_CS, (uint16_t)(v >> 16));
	c->rip = c->next_rip = v & 0xffff;
}

/* Reads the new stack for privilege level dpl (or IST n) from the TSS. */
static void tss_stack(struct bt_cpu *c, int dpl, int ist, uint64_t *sp, uint16_t *ss)
{
	const struct cpu_seg *tr = &c->seg[SEG_TR];
	if (tr->attr & SEG_ATTR_UNUSABLE)
		bt_raise_err(c, BT_TS, tr->sel & 0xfffc);
	if (c->efer & EFER_LMA) {
		uint64_t off = ist ? 0x24 + (uint64_t)(ist - 1) * 8 : 4 + (uint64_t)dpl * 8;
		if (off + 7 > tr->limit)
			bt_raise_err(c, BT_TS, tr->sel & 0xfffc);
		*sp = bt_lin_read(c, tr->base + off, 8, 0);
		*ss = (uint16_t)dpl;
		return;
	}
	bool tss32 = (SEG_ATTR_TYPE(tr->attr) & 8) != 0;
	uint64_t off = tss32 ? 4 + (uint64_t)dpl * 8 : 2 + (uint64_t)dpl * 4;
	uint64_t need = tss32 ? 6 : 4;
	if (off + need - 1 > tr->limit)
		bt_raise_err(c, BT_TS, tr->sel & 0xfffc);
	uint64_t la = (tr->base + off) & 0xffffffffULL;
	if (tss32) {
		*sp = bt_lin_read(c, la, 4, 0);
		*ss = (uint16_t)bt_lin_read(c, (la + 4) & 0xffffffffULL, 2, 0);
	} else {
		*sp = bt_lin_read(c, la, 2, 0);
		*ss = (uint16_t)bt_lin_read(c, (la + 2) & 0xffffffffULL, 2, 0);
	}
}

void bt_interrupt(struct bt_cpu *c, int vector, int kind, int has_err,
		  uint32_t err, uint64_t ret_rip)
{
	if (!(c->cr0 & CR0_PE)) {
		deliver_real(c, vector, ret_rip);
		return;
	}
	bool lm = (c->efer & EFER_LMA) != 0;
	uint32_t ext = kind == BT_EV_SOFT ? 0 : 1;
	uint32_t gerr = (uint32_t)vector * 8 + 2 + ext;
	uint64_t esz = lm ? 16 : 8;
	uint64_t ent = (uint64_t)vector * esz;
	if (ent + esz - 1 > c->idt.limit)
		bt_raise_err(c, BT_GP, gerr);
	uint64_t la = c->idt.base + ent;
	if (!lm)
		la &= 0xffffffffULL;
	uint64_t lo = bt_lin_read(c, la, 8, 0);
	uint64_t hi = lm ? bt_lin_read(c, la + 8, 8, 0) : 0;
	int type = (int)((lo >> 40) & 0xf);
	int gdpl = (int)((lo >> 45) & 3);
	bool present = (lo >> 47) & 1;
	uint16_t sel = (uint16_t)(lo >> 16);
	uint64_t off = (lo & 0xffff) | ((lo >> 32) & 0xffff0000ULL);
	int ist = lm ? (int)((lo >> 32) & 7) : 0;
	if (lm)
		off |= (hi & 0xffffffffULL) << 32;
	bool gate32;
	if (lm) {
		if (type != 0xe && type != 0xf)
			bt_raise_err(c, BT_GP, gerr);
		gate32 = true;
	} else if (type == 0x6 || type == 0x7) {
		gate32 = false;
	} else if (type == 0xe || type == 0xf) {
		gate32 = true;
	} else {
		/* task gates are not supported: treat as a bad gate */
		bt_raise_err(c, BT_GP, gerr);
	}
	bool trap_gate = type & 1;
	if (kind == BT_EV_SOFT && gdpl < c->cpl)
		bt_raise_err(c, BT_GP, gerr);
	if (!present)
		bt_raise_err(c, BT_NP, gerr);

	/* target code segment */
	if ((sel & 0xfffc) == 0)
		bt_raise_err(c, BT_GP, ext);
	uint64_t d = bt_read_desc(c, sel, BT_GP);
	uint32_t dhi = (uint32_t)(d >> 32);
	int dtype = (int)((dhi >> 8) & 0xf);
	int ddpl = (int)((dhi >> 13) & 3);
	if (!((dhi >> 12) & 1) || !(dtype & 8) || ddpl > c->cpl)
		bt_raise_err(c, BT_GP, (sel & 0xfffc) | ext);
	if (!((dhi >> 15) & 1))
		bt_raise_err(c, BT_NP, (sel & 0xfffc) | ext);
	if (lm && (!((dhi >> 21) & 1) || ((dhi >> 22) & 1)))
		bt_raise_err(c, BT_GP, (sel & 0xfffc) | ext);
	bool conforming = (dtype & 4) != 0;
	int new_cpl = conforming ? c->cpl : ddpl;

	uint64_t old_flags = bt_get_rflags(c);
	uint16_t old_cs = c->seg[SEG_CS].sel, old_ss = c->seg[SEG_SS].sel;
	uint64_t old_rsp = c->r[CPU_RSP];
	int old_cpl = c->cpl;
	struct cpu_seg new_ss = c->seg[SEG_SS];
	struct pusher p;
	p.user = new_cpl == 3;

	if (lm) {
		uint64_t sp = c->r[CPU_RSP];
		uint16_t ss = c->seg[SEG_SS].sel;
		if (new_cpl < old_cpl || ist) {
			uint16_t dummy;
			tss_stack(c, new_cpl, ist, &sp, &dummy);
			if (new_cpl < old_cpl) {
				ss = (uint16_t)new_cpl;
				new_ss.sel = ss;
				new_ss.base = 0;
				new_ss.limit = 0;
				new_ss.attr = SEG_ATTR_UNUSABLE | ((uint32_t)new_cpl << 5);
			}
		}
		p.base = 0;
		p.mask = ~0ULL;
		p.sp = sp & ~0xfULL;
		push(c, &p, 8, old_ss);
		push(c, &p, 8, old_rsp);
		push(c, &p, 8, old_flags);
		push(c, &p, 8, old_cs);
		push(c, &p, 8, ret_rip);
		if (has_err)
			push(c, &p, 8, err);
		(void)ss;
	} else {
		int sz = gate32 ? 4 : 2;
		if (new_cpl < old_cpl) {
			uint64_t sp;
			uint16_t ss;
			tss_stack(c, new_cpl, 0, &sp, &ss);
			if ((ss & 0xfffc) == 0)
				bt_raise_err(c, BT_TS, ext);
			uint64_t sd = bt_read_desc(c, ss, BT_TS);
			uint32_t shi = (uint32_t)(sd >> 32);
			if ((ss & 3) != new_cpl || (int)((shi >> 13) & 3) != new_cpl ||
			    !((shi >> 12) & 1) || (shi & 0x800) || !(shi & 0x200))
				bt_raise_err(c, BT_TS, (ss & 0xfffc) | ext);
			if (!((shi >> 15) & 1))
				bt_raise_err(c, BT_SS, (ss & 0xfffc) | ext);
			bt_desc_to_seg(&new_ss, ss, (uint32_t)sd, shi);
			p.base = new_ss.base;
			p.mask = (new_ss.attr & SEG_ATTR_DB) ? 0xffffffffULL : 0xffffULL;
			p.sp = sp & p.mask;
			if (old_flags & BT_VM) {
				push(c, &p, sz, c->seg[SEG_GS].sel);
				push(c, &p, sz, c->seg[SEG_FS].sel);
				push(c, &p, sz, c->seg[SEG_DS].sel);
				push(c, &p, sz, c->seg[SEG_ES].sel);
			}
			push(c, &p, sz, old_ss);
			push(c, &p, sz, old_rsp);
		} else {
			if (old_flags & BT_VM)
				bt_raise_err(c, BT_GP, (sel & 0xfffc) | ext);
			p.base = c->seg[SEG_SS].base;
			p.mask = (c->seg[SEG_SS].attr & SEG_ATTR_DB) ? 0xffffffffULL : 0xffffULL;
			p.sp = c->r[CPU_RSP] & p.mask;
		}
		push(c, &p, sz, old_flags);
		push(c, &p, sz, old_cs);
		push(c, &p, sz, ret_rip);
		if (has_err)
			push(c, &p, sz, err);
		if (!gate32)
			off &= 0xffff;
	}

	/* commit */
	if (new_cpl < old_cpl) {
		c->seg[SEG_SS] = new_ss;
		if (old_flags & BT_VM) {
			for (int sg = SEG_ES; sg <= SEG_GS; sg++) {
				if (sg == SEG_CS || sg == SEG_SS)
					continue;
				c->seg[sg].sel = 0;
				c->seg[sg].attr = SEG_ATTR_UNUSABLE;
			}
		}
	}
	if (lm || new_cpl < old_cpl)
		c->r[CPU_RSP] = p.sp;
	else
		c->r[CPU_RSP] = (c->r[CPU_RSP] & ~p.mask) | p.sp;
	bt_desc_to_seg(&c->seg[SEG_CS], (uint16_t)((sel & 0xfffc) | new_cpl),
		       (uint32_t)d, dhi);
	uint64_t nf = old_flags & ~(uint64_t)(BT_TF | BT_NT | BT_RF | BT_VM);
	if (!trap_gate)
		nf &= ~(uint64_t)BT_IF;
	bt_set_rflags(c, nf);
	bt_mode_changed(c);
	c->rip = c->next_rip = off;
}
