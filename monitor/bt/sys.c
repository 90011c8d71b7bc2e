/* BT system instructions: bt_sys_exec dispatches every instruction the
 * decoder marks as a system instruction (see bt_int.h for the list) to its
 * implementation here or in sys_seg.c, sys_io.c and sys_msr.c: segment
 * register moves, far transfers, software interrupts, IRET, flag moves
 * with IOPL rules, HLT, control and debug registers, descriptor-table
 * instructions, SYSCALL/SYSRET/SYSENTER/SYSEXIT, SWAPGS, CPUID, RDTSC. */
#include "monitor/bt/exec_int.h"
#include "monitor/bt/sys_int.h"
#include "monitor/irq.h"
#include "monitor/vm.h"

#define CR0_PE (1ULL << 0)
#define CR0_MP (1ULL << 1)
#define CR0_EM (1ULL << 2)
#define CR0_TS (1ULL << 3)
#define CR0_ET (1ULL << 4)
#define CR0_NE (1ULL << 5)
#define CR0_WP (1ULL << 16)
#define CR0_AM (1ULL << 18)
#define CR0_NW (1ULL << 29)
#define CR0_CD (1ULL << 30)
#define CR0_PG (1ULL << 31)
#define CR4_TSD (1ULL << 2)
#define CR4_DE (1ULL << 3)
#define CR4_PSE (1ULL << 4)
#define CR4_PAE (1ULL << 5)
#define CR4_PGE (1ULL << 7)
/* CR4 bits the model supports: VME..OSXMMEXCPT (0-10). */
#define CR4_VALID 0x7ffULL
#define EFER_SCE (1ULL << 0)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

static _Noreturn void gp0(struct bt_cpu *c) { bt_raise_err(c, BT_GP, 0); }
static _Noreturn void ud(struct bt_cpu *c) { bt_raise(c, BT_UD); }

static void need_cpl0(struct bt_cpu *c)
{
	if (c->cpl != 0)
		gp0(c);
}

static bool in_pmode(const struct bt_cpu *c) { return c->cr0 & CR0_PE; }
static bool in_v86(const struct bt_cpu *c) { return c->rflags & BT_VM; }
static int iopl(const struct bt_cpu *c) { return (int)((c->rflags >> 12) & 3); }

/* ---- control registers ---- */

void bt_write_cr0(struct bt_cpu *c, uint64_t v)
{
	if (v >> 32)
		gp0(c);
	v |= CR0_ET;
	if ((v & CR0_PG) && !(v & CR0_PE))
		gp0(c);
	if ((v & CR0_NW) && !(v & CR0_CD))
		gp0(c);
	uint64_t old = c->cr0;
	if ((v & CR0_PG) && !(old & CR0_PG) && (c->efer & EFER_LME)) {
		if (!(c->cr4 & CR4_PAE) || (c->seg[SEG_CS].attr & SEG_ATTR_L))
			gp0(c);
		c->efer |= EFER_LMA;
	}
	if (!(v & CR0_PG) && (old & CR0_PG) && (c->efer & EFER_LMA)) {
		if (c->mode == BT_MODE64)
			gp0(c);
		c->efer &= ~EFER_LMA;
	}
	c->cr0 = v;
	if ((old ^ v) & (CR0_PG | CR0_WP | CR0_PE))
		bt_tlb_flush_all(c);
	bt_mode_changed(c);
}

void bt_write_cr4(struct bt_cpu *c, uint64_t v)
{
	if (v & ~CR4_VALID)
		gp0(c);
	if ((c->efer & EFER_LMA) && !(v & CR4_PAE))
		gp0(c);
	uint64_t old = c->cr4;
	c->cr4 = v;
	if ((old ^ v) & (CR4_PGE | CR4_PAE | CR4_PSE))
		bt_tlb_flush_all(c);
}

void bt_write_cr3(struct bt_cpu *c, uint64_t v)
{
	if ((c->efer & EFER_LMA) && (v >> 40))
		gp0(c);
	c->cr3 = (c->efer & EFER_LMA) ? v : (uint32_t)v;
	bt_tlb_flush_nonglobal(c);
}

static void mov_cr(struct bt_cpu *c, const struct bt_insn *i)
{
	need_cpl0(c);
	int to = BT_BYTE(i->op) == 0x22;
	int size = c->mode == BT_MODE64 ? 8 : 4;
	int cr = i->reg;
	if (to) {
		uint64_t v = c->r[i->rm] & sz_mask(size);
		switch (cr) {
		case 0: bt_write_cr0(c, v); break;
		case 2: c->cr2 = v; break;
		case 3: bt_write_cr3(c, v); break;
		case 4: bt_write_cr4(c, v); break;
		case 8:
			if (v & ~0xfULL)
				gp0(c);
			if (c->vm->irq)
				lapic_set_tpr(c->vm->irq, c->index, (uint8_t)(v << 4));
			c->sys->check_events = 1;
			c->sys->irq_maybe = 1;
			break;
		default: ud(c);
		}
	} else {
		uint64_t v;
		switch (cr) {
		case 0: v = c->cr0; break;
		case 2: v = c->cr2; break;
		case 3: v = c->cr3; break;
		case 4: v = c->cr4; break;
		case 8: v = c->vm->irq ? (uint64_t)(lapic_get_tpr(c->vm->irq, c->index) >> 4) : 0; break;
		default: ud(c);
		}
		c->r[i->rm] = v & sz_mask(size);
	}
}

static void mov_dr(struct bt_cpu *c, const struct bt_insn *i)
{
	need_cpl0(c);
	int dr = i->reg;
	if (dr > 7)
		ud(c);
	if ((dr == 4 || dr == 5) && (c->cr4 & CR4_DE))
		ud(c);
	if (dr == 4 || dr == 5)
		dr += 2;
	int size = c->mode == BT_MODE64 ? 8 : 4;
	if (BT_BYTE(i->op) == 0x23) {
		uint64_t v = c->r[i->rm] & sz_mask(size);
		if (dr == 6)
			v = (v & 0xf00f) | 0xffff0ff0ULL;
		else if (dr == 7)
			v = (v & 0xffff2fffULL) | 0x400;
		c->dr[dr] = v;
	} else {
		c->r[i->rm] = c->dr[dr] & sz_mask(size);
	}
}

/* ---- group 6 / 7 ---- */

static uint16_t rd16_e(struct bt_cpu *c, const struct bt_insn *i)
{
	if (i->mod == 3)
		return (uint16_t)c->r[i->rm];
	return (uint16_t)bt_read(c, bt_ea_seg(i), bt_ea(c, i), 2);
}

/* SLDT/STR/SMSW store: 16 bits to memory, opsize to a register. */
static void st_sel(struct bt_cpu *c, const struct bt_insn *i, uint64_t v)
{
	if (i->mod == 3)
		reg_wr(c, i, i->rm, i->opsize, v & 0xffff);
	else
		bt_write(c, bt_ea_seg(i), bt_ea(c, i), 2, v & 0xffff);
}

static void set_zf(struct bt_cpu *c, bool z)
{
	uint64_t f = bt_get_rflags(c);
	f = z ? (f | BT_ZF) : (f & ~(uint64_t)BT_ZF);
	bt_set_rflags(c, f);
}

static void grp6(struct bt_cpu *c, const struct bt_insn *i)
{
	if (!in_pmode(c) || in_v86(c))
		ud(c);
	switch (i->reg) {
	case 0: st_sel(c, i, c->seg[SEG_LDTR].sel); break;   /* SLDT */
	case 1: st_sel(c, i, c->seg[SEG_TR].sel); break;     /* STR */
	case 2: need_cpl0(c); bt_lldt(c, rd16_e(c, i)); break;
	case 3: need_cpl0(c); bt_ltr(c, rd16_e(c, i)); break;
	case 4: case 5: {
		uint64_t v;
		set_zf(c, bt_seg_probe(c, rd16_e(c, i), i->reg == 4 ? 2 : 3, &v));
		break;
	}
	default: ud(c);
	}
}

static void lgdt_lidt(struct bt_cpu *c, const struct bt_insn *i, struct cpu_dtable *t)
{
	need_cpl0(c);
	int seg = bt_ea_seg(i);
	uint64_t ea = bt_ea(c, i);
	uint16_t limit = (uint16_t)bt_read(c, seg, ea, 2);
	uint64_t base;
	if (c->mode == BT_MODE64) {
		base = bt_read(c, seg, ea_mask(i, ea + 2), 8);
	} else {
		base = bt_read(c, seg, ea_mask(i, ea + 2), 4);
		if (i->opsize == 2)
			base &= 0xffffff;
	}
	t->limit = limit;
	t->base = base;
}

static void sgdt_sidt(struct bt_cpu *c, const struct bt_insn *i, const struct cpu_dtable *t)
{
	if ((c->cr4 & (1ULL << 11)) && c->cpl > 0)
		gp0(c);
	int seg = bt_ea_seg(i);
	uint64_t ea = bt_ea(c, i);
	uint8_t buf[10];
	buf[0] = (uint8_t)t->limit;
	buf[1] = (uint8_t)(t->limit >> 8);
	for (int k = 0; k < 8; k++)
		buf[2 + k] = (uint8_t)(t->base >> (8 * k));
	bt_write_buf(c, seg, ea, buf, c->mode == BT_MODE64 ? 10 : 6);
}

static void grp7(struct bt_cpu *c, const struct bt_insn *i)
{
	if (i->mod == 3) {
		switch (i->reg * 8 + (i->rm & 7)) {
		case 1 * 8 + 0:   /* MONITOR */
			need_cpl0(c);
			return;
		case 1 * 8 + 1:   /* MWAIT: a hint; resume at once */
			need_cpl0(c);
			return;
		case 1 * 8 + 2:   /* CLAC, STAC: no SMAP in the model */
		case 1 * 8 + 3:
			ud(c);
		case 2 * 8 + 0:   /* XGETBV / XSETBV: no XSAVE in the model */
		case 2 * 8 + 1:
			ud(c);
		case 7 * 8 + 0:   /* SWAPGS */
			if (c->mode != BT_MODE64)
				ud(c);
			need_cpl0(c);
			{
				uint64_t t = c->seg[SEG_GS].base;
				c->seg[SEG_GS].base = c->kernel_gs_base;
				c->kernel_gs_base = t;
			}
			return;
		case 7 * 8 + 1: { /* RDTSCP */
			if ((c->cr4 & CR4_TSD) && c->cpl > 0)
				gp0(c);
			uint64_t t = vm_guest_tsc(c->vm) + c->tsc_adjust;
			c->r[CPU_RAX] = (uint32_t)t;
			c->r[CPU_RDX] = t >> 32;
			c->r[CPU_RCX] = (uint32_t)c->tsc_aux;
			return;
		}
		default:
			break;
		}
		if (i->reg == 4) {           /* SMSW r */
			reg_wr(c, i, i->rm, i->opsize, c->cr0 & sz_mask(i->opsize));
			return;
		}
		if (i->reg == 6) {           /* LMSW r */
			need_cpl0(c);
			uint64_t v = c->r[i->rm] & 0xf;
			bt_write_cr0(c, (c->cr0 & ~0xeULL) | v | (c->cr0 & CR0_PE));
			return;
		}
		ud(c);
	}
	switch (i->reg) {
	case 0: sgdt_sidt(c, i, &c->gdt); break;
	case 1: sgdt_sidt(c, i, &c->idt); break;
	case 2: lgdt_lidt(c, i, &c->gdt); break;
	case 3: lgdt_lidt(c, i, &c->idt); break;
	case 4: st_sel(c, i, c->cr0); break;   /* SMSW m16 */
	case 6: {                               /* LMSW */
		need_cpl0(c);
		uint64_t v = rd16_e(c, i) & 0xf;
		bt_write_cr0(c, (c->cr0 & ~0xeULL) | v | (c->cr0 & CR0_PE));
		break;
	}
	case 7: {                               /* INVLPG */
		need_cpl0(c);
		uint64_t off = bt_ea(c, i);
		int seg = bt_ea_seg(i);
		uint64_t la = c->mode == BT_MODE64 ?
			off + (seg >= SEG_FS ? c->seg[seg].base : 0) :
			(c->seg[seg].base + off) & 0xffffffffULL;
		bt_tlb_flush_page(c, la);
		break;
	}
	default: ud(c);
	}
}

/* ---- flags ---- */

static void pushf(struct bt_cpu *c, const struct bt_insn *i)
{
	if (in_v86(c) && iopl(c) < 3)
		gp0(c);
	uint64_t f = bt_get_rflags(c) & ~(uint64_t)(BT_VM | BT_RF);
	bt_push(c, i->opsize, f & sz_mask(i->opsize));
}

static void popf(struct bt_cpu *c, const struct bt_insn *i)
{
	if (in_v86(c) && iopl(c) < 3)
		gp0(c);
	uint64_t f = bt_get_rflags(c);
	uint64_t nf = bt_pop(c, i->opsize);
	uint64_t m = in_pmode(c) ? bt_flags_writable(c, i->opsize) :
		     ((BT_ARITH_FLAGS | BT_TF | BT_DF_FLAG | BT_NT | BT_AC_FLAG | BT_ID |
		       BT_IOPL | BT_IF) & sz_mask(i->opsize));
	if (in_v86(c))
		m &= ~(uint64_t)BT_IOPL;
	bool was_if = f & BT_IF;
	bt_set_rflags(c, (f & ~m) | (nf & m));
	if (!was_if && (c->rflags & BT_IF))
		c->sys->check_events = 1;
}

static void cli_sti(struct bt_cpu *c, bool sti)
{
	if (in_pmode(c) && (in_v86(c) ? iopl(c) < 3 : c->cpl > iopl(c)))
		gp0(c);
	if (sti) {
		if (!(c->rflags & BT_IF)) {
			c->rflags |= BT_IF;
			c->shadow = 1;
			c->sys->check_events = 1;
		}
	} else {
		c->rflags &= ~(uint64_t)BT_IF;
	}
}

/* ---- fast system calls ---- */

static void flat_cs(struct cpu_seg *s, uint16_t sel, int dpl, bool l64)
{
	s->sel = sel;
	s->base = 0;
	s->limit = 0xffffffff;
	s->attr = SEG_ATTR_P | SEG_ATTR_S | 0xb | ((uint32_t)dpl << 5) | SEG_ATTR_G |
		  (l64 ? SEG_ATTR_L : SEG_ATTR_DB);
}

static void flat_ss(struct cpu_seg *s, uint16_t sel, int dpl)
{
	s->sel = sel;
	s->base = 0;
	s->limit = 0xffffffff;
	s->attr = SEG_ATTR_P | SEG_ATTR_S | 0x3 | ((uint32_t)dpl << 5) | SEG_ATTR_G | SEG_ATTR_DB;
}

static void syscall_insn(struct bt_cpu *c)
{
	if (!(c->efer & EFER_SCE) || !in_pmode(c))
		ud(c);
	uint16_t sel = (uint16_t)(c->star >> 32) & 0xfffc;
	if (c->efer & EFER_LMA) {
		c->r[CPU_RCX] = c->next_rip;
		c->r[CPU_R11] = bt_get_rflags(c) & ~(uint64_t)BT_RF;
		flat_cs(&c->seg[SEG_CS], sel, 0, true);
		flat_ss(&c->seg[SEG_SS], (uint16_t)(sel + 8), 0);
		bt_set_rflags(c, bt_get_rflags(c) & ~(c->sfmask | BT_RF));
		c->next_rip = c->mode == BT_MODE64 ? c->lstar : c->cstar;
	} else {
		c->r[CPU_RCX] = (uint32_t)c->next_rip;
		flat_cs(&c->seg[SEG_CS], sel, 0, false);
		flat_ss(&c->seg[SEG_SS], (uint16_t)(sel + 8), 0);
		bt_set_rflags(c, bt_get_rflags(c) & ~(uint64_t)(BT_VM | BT_IF | BT_RF));
		c->next_rip = (uint32_t)c->star;
	}
	bt_mode_changed(c);
}

static void sysret_insn(struct bt_cpu *c, const struct bt_insn *i)
{
	if (!(c->efer & EFER_SCE) || !in_pmode(c))
		ud(c);
	need_cpl0(c);
	uint16_t sel = (uint16_t)(c->star >> 48);
	if (c->efer & EFER_LMA) {
		if (i->opsize == 8) {
			uint64_t rip = c->r[CPU_RCX];
			if ((uint64_t)((int64_t)(rip << 16) >> 16) != rip)
				gp0(c);
			flat_cs(&c->seg[SEG_CS], (uint16_t)((sel + 16) | 3), 3, true);
			c->next_rip = rip;
		} else {
			flat_cs(&c->seg[SEG_CS], (uint16_t)(sel | 3), 3, false);
			c->next_rip = (uint32_t)c->r[CPU_RCX];
		}
		bt_set_rflags(c, (c->r[CPU_R11] & 0x3c7fd7ULL) | 2);
	} else {
		flat_cs(&c->seg[SEG_CS], (uint16_t)(sel | 3), 3, false);
		c->rflags |= BT_IF;
		c->next_rip = (uint32_t)c->r[CPU_RCX];
	}
	/* SS keeps its selector's RPL 3 and flat attributes */
	flat_ss(&c->seg[SEG_SS], (uint16_t)((sel + 8) | 3), 3);
	bt_mode_changed(c);
	c->sys->check_events = 1;
}

static void sysenter_insn(struct bt_cpu *c)
{
	if (!in_pmode(c))
		gp0(c);
	uint16_t sel = (uint16_t)c->sysenter_cs & 0xfffc;
	if (!sel)
		gp0(c);
	bool lm = c->efer & EFER_LMA;
	bt_set_rflags(c, bt_get_rflags(c) & ~(uint64_t)(BT_VM | BT_IF | BT_RF));
	flat_cs(&c->seg[SEG_CS], sel, 0, lm);
	flat_ss(&c->seg[SEG_SS], (uint16_t)(sel + 8), 0);
	c->r[CPU_RSP] = lm ? c->sysenter_esp : (uint32_t)c->sysenter_esp;
	c->next_rip = lm ? c->sysenter_eip : (uint32_t)c->sysenter_eip;
	bt_mode_changed(c);
}

static void sysexit_insn(struct bt_cpu *c, const struct bt_insn *i)
{
	if (!in_pmode(c))
		gp0(c);
	need_cpl0(c);
	uint16_t sel = (uint16_t)c->sysenter_cs & 0xfffc;
	if (!sel)
		gp0(c);
	if (i->opsize == 8) {
		flat_cs(&c->seg[SEG_CS], (uint16_t)((sel + 32) | 3), 3, true);
		flat_ss(&c->seg[SEG_SS], (uint16_t)((sel + 40) | 3), 3);
		c->r[CPU_RSP] = c->r[CPU_RCX];
		c->next_rip = c->r[CPU_RDX];
	} else {
		flat_cs(&c->seg[SEG_CS], (uint16_t)((sel + 16) | 3), 3, false);
		flat_ss(&c->seg[SEG_SS], (uint16_t)((sel + 24) | 3), 3);
		c->r[CPU_RSP] = (uint32_t)c->r[CPU_RCX];
		c->next_rip = (uint32_t)c->r[CPU_RDX];
	}
	bt_mode_changed(c);
}

/* ---- segment register moves ---- */

static void mov_sreg(struct bt_cpu *c, const struct bt_insn *i, bool to)
{
	int sr = i->reg & 7;
	if (sr > SEG_GS)
		ud(c);
	if (!to) {
		uint16_t v = c->seg[sr].sel;
		if (i->mod == 3)
			reg_wr(c, i, i->rm, i->opsize, v);
		else
			bt_write(c, bt_ea_seg(i), bt_ea(c, i), 2, v);
		return;
	}
	if (sr == SEG_CS)
		ud(c);
	bt_load_seg(c, sr, rd16_e(c, i));
}

static void load_far_ptr(struct bt_cpu *c, const struct bt_insn *i, int sr)
{
	int seg = bt_ea_seg(i);
	uint64_t ea = bt_ea(c, i);
	uint64_t off = bt_read(c, seg, ea, i->opsize);
	uint16_t sel = (uint16_t)bt_read(c, seg, ea_mask(i, ea + (uint64_t)i->opsize), 2);
	bt_load_seg(c, sr, sel);
	reg_wr(c, i, i->reg, i->opsize, off);
}

static void push_sreg(struct bt_cpu *c, const struct bt_insn *i, int sr)
{
	bt_push(c, i->opsize, c->seg[sr].sel);
}

static void pop_sreg(struct bt_cpu *c, const struct bt_insn *i, int sr)
{
	uint64_t sp = c->r[CPU_RSP];
	uint16_t v = (uint16_t)bt_pop(c, i->opsize);
	uint64_t after = c->r[CPU_RSP];
	c->r[CPU_RSP] = sp;    /* a fault in the load leaves RSP unchanged */
	bt_load_seg(c, sr, v);
	c->r[CPU_RSP] = after;
}

static void far_indirect(struct bt_cpu *c, const struct bt_insn *i, bool call)
{
	if (i->mod == 3)
		ud(c);
	int seg = bt_ea_seg(i);
	uint64_t ea = bt_ea(c, i);
	uint64_t off = bt_read(c, seg, ea, i->opsize);
	uint16_t sel = (uint16_t)bt_read(c, seg, ea_mask(i, ea + (uint64_t)i->opsize), 2);
	if (call)
		bt_far_call(c, sel, off, i->opsize);
	else
		bt_far_jmp(c, sel, off);
}

static void soft_int(struct bt_cpu *c, int vector)
{
	if (in_v86(c) && iopl(c) < 3)
		gp0(c);
	bt_interrupt(c, vector, BT_EV_SOFT, 0, 0, c->next_rip);
}

static void bound(struct bt_cpu *c, const struct bt_insn *i)
{
	int seg = bt_ea_seg(i);
	uint64_t ea = bt_ea(c, i);
	int sz = i->opsize;
	int64_t lo = sext_sz(bt_read(c, seg, ea, sz), sz);
	int64_t hi = sext_sz(bt_read(c, seg, ea_mask(i, ea + (uint64_t)sz), sz), sz);
	int64_t v = sext_sz(c->r[i->reg], sz);
	if (v < lo || v > hi)
		bt_raise(c, BT_BR);
}

static void lar_lsl(struct bt_cpu *c, const struct bt_insn *i)
{
	if (!in_pmode(c) || in_v86(c))
		ud(c);
	uint64_t v = 0;
	bool ok = bt_seg_probe(c, rd16_e(c, i), BT_BYTE(i->op) == 0x02 ? 0 : 1, &v);
	if (ok)
		reg_wr(c, i, i->reg, i->opsize, v & sz_mask(i->opsize));
	set_zf(c, ok);
}

static void hlt(struct bt_cpu *c)
{
	need_cpl0(c);
	c->halted = 1;
	c->mp_state = CPU_HALTED;
}

void bt_sys_exec(struct bt_cpu *c, const struct bt_insn *i)
{
	uint8_t b = (uint8_t)BT_BYTE(i->op);
	if (BT_MAP(i->op) == 0) {
		switch (b) {
		case 0x06: push_sreg(c, i, SEG_ES); return;
		case 0x07: pop_sreg(c, i, SEG_ES); return;
		case 0x0e: push_sreg(c, i, SEG_CS); return;
		case 0x16: push_sreg(c, i, SEG_SS); return;
		case 0x17: pop_sreg(c, i, SEG_SS); return;
		case 0x1e: push_sreg(c, i, SEG_DS); return;
		case 0x1f: pop_sreg(c, i, SEG_DS); return;
		case 0x62: bound(c, i); return;
		case 0x6c: case 0x6d: case 0x6e: case 0x6f:
		case 0xe4: case 0xe5: case 0xe6: case 0xe7:
		case 0xec: case 0xed: case 0xee: case 0xef:
			bt_io_exec(c, i);
			return;
		case 0x8c: mov_sreg(c, i, false); return;
		case 0x8e: mov_sreg(c, i, true); return;
		case 0x9a: bt_far_call(c, i->imm2, i->imm, i->opsize); return;
		case 0x9c: pushf(c, i); return;
		case 0x9d: popf(c, i); return;
		case 0xc4: load_far_ptr(c, i, SEG_ES); return;
		case 0xc5: load_far_ptr(c, i, SEG_DS); return;
		case 0xca: bt_far_ret(c, i->opsize, (uint16_t)i->imm); return;
		case 0xcb: bt_far_ret(c, i->opsize, 0); return;
		case 0xcc: soft_int(c, BT_BP); return;
		case 0xcd: soft_int(c, (int)(i->imm & 0xff)); return;
		case 0xce:
			if (bt_get_rflags(c) & BT_OF_FLAG)
				soft_int(c, BT_OF);
			return;
		case 0xcf:
			bt_iret(c, i->opsize);
			c->sys->nmi_masked = 0;
			c->sys->check_events = 1;
			return;
		case 0xea: bt_far_jmp(c, i->imm2, i->imm); return;
		case 0xf1: bt_interrupt(c, BT_DB, BT_EV_EXC, 0, 0, c->next_rip); return;
		case 0xf4: hlt(c); return;
		case 0xfa: cli_sti(c, false); return;
		case 0xfb: cli_sti(c, true); return;
		case 0xff:
			if (i->reg == 3 || i->reg == 5) {
				far_indirect(c, i, i->reg == 3);
				return;
			}
			break;
		default:
			break;
		}
		ud(c);
	}
	if (BT_MAP(i->op) != 1)
		ud(c);
	switch (b) {
	case 0x00: grp6(c, i); return;
	case 0x01: grp7(c, i); return;
	case 0x02: case 0x03: lar_lsl(c, i); return;
	case 0x05:
		syscall_insn(c);
		return;
	case 0x06: need_cpl0(c); c->cr0 &= ~CR0_TS; return;     /* CLTS */
	case 0x07: sysret_insn(c, i); return;
	case 0x08: case 0x09: need_cpl0(c); return;             /* INVD, WBINVD */
	case 0x0b: ud(c);                                       /* UD2 */
	case 0x20: case 0x22: mov_cr(c, i); return;
	case 0x21: case 0x23: mov_dr(c, i); return;
	case 0x30: case 0x32: bt_msr_exec(c, b == 0x30); return;
	case 0x31: {                                            /* RDTSC */
		if ((c->cr4 & CR4_TSD) && c->cpl > 0 && in_pmode(c))
			gp0(c);
		uint64_t t = vm_guest_tsc(c->vm) + c->tsc_adjust;
		c->r[CPU_RAX] = (uint32_t)t;
		c->r[CPU_RDX] = t >> 32;
		return;
	}
	case 0x33: gp0(c);                                      /* RDPMC: no counters */
	case 0x34: sysenter_insn(c); return;
	case 0x35: sysexit_insn(c, i); return;
	case 0xa0: push_sreg(c, i, SEG_FS); return;
	case 0xa1: pop_sreg(c, i, SEG_FS); return;
	case 0xa2: {                                            /* CPUID */
		uint32_t out[4];
		bt_cpuid(c, (uint32_t)c->r[CPU_RAX], (uint32_t)c->r[CPU_RCX], out);
		c->r[CPU_RAX] = out[0];
		c->r[CPU_RBX] = out[1];
		c->r[CPU_RCX] = out[2];
		c->r[CPU_RDX] = out[3];
		return;
	}
	case 0xa8: push_sreg(c, i, SEG_GS); return;
	case 0xa9: pop_sreg(c, i, SEG_GS); return;
	case 0xaa: ud(c);                                       /* RSM */
	case 0xb2: load_far_ptr(c, i, SEG_SS); return;
	case 0xb4: load_far_ptr(c, i, SEG_FS); return;
	case 0xb5: load_far_ptr(c, i, SEG_GS); return;
	default: ud(c);
	}
}
