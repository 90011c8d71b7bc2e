/* Data movement: MOV in all forms (specialized per size for registers and
 * memory), MOVZX/MOVSX/MOVSXD, LEA, XCHG, CMOVcc, SETcc, stack operations
 * (PUSH/POP/PUSHA/POPA/ENTER/LEAVE), sign extensions of rAX, LAHF/SAHF,
 * flag instructions, XLAT, BCD adjustments and SALC. */
#include "monitor/bt/exec_int.h"

int bt_stack_size(const struct bt_cpu *c)
{
	if (c->mode == BT_MODE64)
		return 8;
	return (c->seg[SEG_SS].attr & SEG_ATTR_DB) ? 4 : 2;
}

static inline uint64_t sp_mask(const struct bt_cpu *c)
{
	return sz_mask(bt_stack_size(c));
}

static inline void sp_set(struct bt_cpu *c, uint64_t v)
{
	uint64_t m = sp_mask(c);
	c->r[CPU_RSP] = (c->r[CPU_RSP] & ~m) | (v & m);
}

/* ---- MOV ---- */
#define MOV_FNS(SZ) \
static void mov_rr_##SZ(struct bt_cpu *c, const struct bt_insn *i) \
{ reg_wr(c, i, i->rm, SZ, reg_rd(c, i, i->reg, SZ)); } \
static void mov_rrv_##SZ(struct bt_cpu *c, const struct bt_insn *i) \
{ reg_wr(c, i, i->reg, SZ, reg_rd(c, i, i->rm, SZ)); } \
static void __attribute__((noinline)) mov_mr_slow_##SZ(struct bt_cpu *c, const struct bt_insn *i) \
{ (bt_write)(c, bt_ea_seg(i), bt_ea(c, i), SZ, reg_rd(c, i, i->reg, SZ)); } \
static void __attribute__((noinline)) mov_rm_slow_##SZ(struct bt_cpu *c, const struct bt_insn *i) \
{ reg_wr(c, i, i->reg, SZ, (bt_read)(c, bt_ea_seg(i), bt_ea(c, i), SZ)); } \
static void mov_ri_##SZ(struct bt_cpu *c, const struct bt_insn *i) \
{ reg_wr(c, i, i->rm, SZ, i->imm); } \
static void mov_mi_##SZ(struct bt_cpu *c, const struct bt_insn *i) \
{ bt_write(c, bt_ea_seg(i), bt_ea(c, i), SZ, i->imm); }
/* Fast paths through host pointer EA: ea_host for any operand (mov_mr,
 * mov_rm), ea_host_bd for [base + disp] ones (ea_is_bd: mov_mr_bd, ...). */
#define MOV_MEM_FNS(SZ, X, EA) \
static void mov_mr##X##_##SZ(struct bt_cpu *c, const struct bt_insn *i) \
{ \
	uint8_t *p = EA(c, i, BT_ACC_W, SZ); \
	if (!p) { mov_mr_slow_##SZ(c, i); return; } \
	bt_st_host(p, SZ, reg_rd(c, i, i->reg, SZ)); \
} \
static void mov_rm##X##_##SZ(struct bt_cpu *c, const struct bt_insn *i) \
{ \
	const uint8_t *p = EA(c, i, BT_ACC_R, SZ); \
	if (!p) { mov_rm_slow_##SZ(c, i); return; } \
	reg_wr(c, i, i->reg, SZ, bt_ld_host(p, SZ)); \
}
#define MOV_ALL(SZ) MOV_FNS(SZ) MOV_MEM_FNS(SZ, , ea_host) MOV_MEM_FNS(SZ, _bd, ea_host_bd)
MOV_ALL(1) MOV_ALL(2) MOV_ALL(4) MOV_ALL(8)
#define MOVT(F) { F##_1, F##_2, F##_4, F##_8 }
static const bt_exec_fn mov_rr[4] = MOVT(mov_rr), mov_rrv[4] = MOVT(mov_rrv),
	mov_mr[4] = MOVT(mov_mr), mov_rm[4] = MOVT(mov_rm), mov_mi[4] = MOVT(mov_mi),
	mov_ri[4] = MOVT(mov_ri), mov_mr_bd[4] = MOVT(mov_mr_bd), mov_rm_bd[4] = MOVT(mov_rm_bd);

/* B0-BF: register in the opcode. */
static void ex_mov_oi(struct bt_cpu *c, const struct bt_insn *i)
{
	int r = (i->op & 7) | ((i->rex & 1) << 3);
	reg_wr(c, i, r, (i->op & 8) ? i->opsize : 1, i->imm);
}

static void ex_mov_oi64(struct bt_cpu *c, const struct bt_insn *i)
{
	c->r[(i->op & 7) | ((i->rex & 1) << 3)] = i->imm;
}

static void ex_mov_oi32(struct bt_cpu *c, const struct bt_insn *i)
{
	c->r[(i->op & 7) | ((i->rex & 1) << 3)] = (uint32_t)i->imm;
}

/* A0-A3 */
static void ex_mov_moffs(struct bt_cpu *c, const struct bt_insn *i)
{
	int size = bsize(i);
	uint64_t off = bt_ea(c, i);
	int seg = i->seg != 0xff ? i->seg : SEG_DS;
	if (i->op & 2)
		bt_write(c, seg, off, size, reg_rd(c, i, 0, size));
	else
		reg_wr(c, i, 0, size, bt_read(c, seg, off, size));
}

static void ex_movx(struct bt_cpu *c, const struct bt_insn *i)
{
	uint8_t b = BT_BYTE(i->op);
	int ss = (b & 1) ? 2 : 1;
	uint64_t v = e_rd(c, i, ss);
	if (b >= 0xbe)
		v = (uint64_t)sext_sz(v, ss);
	reg_wr(c, i, i->reg, i->opsize, v);
}

static void __attribute__((noinline)) movzx_rm8_4_slow(struct bt_cpu *c, const struct bt_insn *i)
{
	c->r[i->reg] = (uint8_t)(bt_read)(c, bt_ea_seg(i), bt_ea(c, i), 1);
}

#define MOVZX_RM8_4(NAME, EA) \
static void NAME(struct bt_cpu *c, const struct bt_insn *i) \
{ \
	const uint8_t *p = EA(c, i, BT_ACC_R, 1); \
	if (!p) { movzx_rm8_4_slow(c, i); return; } \
	c->r[i->reg] = *p; \
}
MOVZX_RM8_4(ex_movzx_rm8_4, ea_host)
MOVZX_RM8_4(movzx_rm8_4_bd, ea_host_bd)

static void ex_movsxd(struct bt_cpu *c, const struct bt_insn *i)
{
	/* the source is r/m32 for every operand size (a 16-bit form still
	 * reads, and may fault on, all four bytes) */
	uint64_t v = e_rd(c, i, 4);
	if (i->opsize == 8)
		c->r[i->reg] = (uint64_t)(int64_t)(int32_t)v;
	else
		reg_wr(c, i, i->reg, i->opsize, v);
}

static void ex_lea(struct bt_cpu *c, const struct bt_insn *i)
{
	reg_wr(c, i, i->reg, i->opsize, bt_ea(c, i));
}

static void ex_lea64(struct bt_cpu *c, const struct bt_insn *i)
{
	uint64_t a = (uint64_t)i->disp;
	if (i->base >= 0)
		a += i->base == BT_BASE_RIP ? c->next_rip : c->r[i->base];
	if (i->index >= 0)
		a += c->r[i->index] * i->scale;
	c->r[i->reg] = a;
}

/* ---- XCHG, CMOV, SETcc ---- */
static void ex_xchg(struct bt_cpu *c, const struct bt_insn *i)
{
	int size = bsize(i);
	uint64_t g = reg_rd(c, i, i->reg, size);
	if (i->mod == 3) {
		uint64_t e = reg_rd(c, i, i->rm, size);
		reg_wr(c, i, i->rm, size, g);
		reg_wr(c, i, i->reg, size, e);
	} else {
		uint64_t off = bt_ea(c, i);
		int seg = bt_ea_seg(i);
		uint64_t e = bt_read_rmw(c, seg, off, size);
		bt_write(c, seg, off, size, g);
		reg_wr(c, i, i->reg, size, e);
	}
}

static void ex_xchg_ax(struct bt_cpu *c, const struct bt_insn *i)
{
	int r = (i->op & 7) | ((i->rex & 1) << 3);
	uint64_t a = reg_rd(c, i, 0, i->opsize), b = reg_rd(c, i, r, i->opsize);
	reg_wr(c, i, 0, i->opsize, b);
	reg_wr(c, i, r, i->opsize, a);
}

static void ex_nop(struct bt_cpu *c, const struct bt_insn *i) { (void)c; (void)i; }

#define CCFN(CC) \
static void cmov_##CC(struct bt_cpu *c, const struct bt_insn *i) \
{ \
	uint64_t v = e_rd(c, i, i->opsize); \
	if (bt_cc(c, CC)) \
		reg_wr(c, i, i->reg, i->opsize, v); \
	else if (i->opsize == 4) \
		c->r[i->reg] = (uint32_t)c->r[i->reg]; \
} \
static void setcc_##CC(struct bt_cpu *c, const struct bt_insn *i) \
{ \
	e_wr(c, i, 1, (uint64_t)bt_cc(c, CC)); \
}
CCFN(0) CCFN(1) CCFN(2) CCFN(3) CCFN(4) CCFN(5) CCFN(6) CCFN(7)
CCFN(8) CCFN(9) CCFN(10) CCFN(11) CCFN(12) CCFN(13) CCFN(14) CCFN(15)
static const bt_exec_fn cmov_tab[16] = {
	cmov_0, cmov_1, cmov_2, cmov_3, cmov_4, cmov_5, cmov_6, cmov_7,
	cmov_8, cmov_9, cmov_10, cmov_11, cmov_12, cmov_13, cmov_14, cmov_15,
};
static const bt_exec_fn setcc_tab[16] = {
	setcc_0, setcc_1, setcc_2, setcc_3, setcc_4, setcc_5, setcc_6, setcc_7,
	setcc_8, setcc_9, setcc_10, setcc_11, setcc_12, setcc_13, setcc_14, setcc_15,
};

/* ---- stack ---- */
static void __attribute__((noinline)) push_r_slow(struct bt_cpu *c, const struct bt_insn *i)
{
	int r = (i->op & 7) | ((i->rex & 1) << 3);
	(bt_push)(c, i->opsize, c->r[r] & sz_mask(i->opsize));
}

static void __attribute__((noinline)) pop_r_slow(struct bt_cpu *c, const struct bt_insn *i)
{
	int r = (i->op & 7) | ((i->rex & 1) << 3);
	uint64_t v = (bt_pop)(c, i->opsize);
	reg_wr(c, i, r, i->opsize, v);
}

/* PUSH/POP r64 in 64-bit mode: TLB hit inline, everything else (other
 * sizes and modes, misses, faults) out of line. */
static void ex_push_r(struct bt_cpu *c, const struct bt_insn *i)
{
	uint64_t sp = c->r[CPU_RSP] - 8;
	const struct bt_tlb_ent *e;
	if (__builtin_expect(c->mode != BT_MODE64 || i->opsize != 8, 0) ||
	    !(e = bt_tlb_hit(c, BT_ACC_W, sp, 8))) {
		push_r_slow(c, i);
		return;
	}
	bt_st_host((uint8_t *)(e->addend + sp), 8, c->r[(i->op & 7) | ((i->rex & 1) << 3)]);
	c->r[CPU_RSP] = sp;
}

static void ex_pop_r(struct bt_cpu *c, const struct bt_insn *i)
{
	uint64_t sp = c->r[CPU_RSP];
	const struct bt_tlb_ent *e;
	if (__builtin_expect(c->mode != BT_MODE64 || i->opsize != 8, 0) ||
	    !(e = bt_tlb_hit(c, BT_ACC_R, sp, 8))) {
		pop_r_slow(c, i);
		return;
	}
	uint64_t v = bt_ld_host((const uint8_t *)(e->addend + sp), 8);
	c->r[CPU_RSP] = sp + 8;
	c->r[(i->op & 7) | ((i->rex & 1) << 3)] = v;
}

static void ex_push_i(struct bt_cpu *c, const struct bt_insn *i)
{
	bt_push(c, i->opsize, i->imm & sz_mask(i->opsize));
}

static void ex_push_e(struct bt_cpu *c, const struct bt_insn *i)
{
	bt_push(c, i->opsize, e_rd(c, i, i->opsize));
}

static void ex_pop_e(struct bt_cpu *c, const struct bt_insn *i)
{
	if (i->mod == 3) {
		reg_wr(c, i, i->rm, i->opsize, bt_pop(c, i->opsize));
		return;
	}
	/* The address uses RSP after the pop; RSP changes only when the
	 * store succeeds. */
	uint64_t old = c->r[CPU_RSP];
	uint64_t v = bt_read(c, SEG_SS, old & sp_mask(c), i->opsize);
	sp_set(c, old + i->opsize);
	uint64_t off = bt_ea(c, i);
	uint64_t nsp = c->r[CPU_RSP];
	c->r[CPU_RSP] = old;
	bt_write(c, bt_ea_seg(i), off, i->opsize, v);
	c->r[CPU_RSP] = nsp;
}

static void ex_pusha(struct bt_cpu *c, const struct bt_insn *i)
{
	uint64_t sp = c->r[CPU_RSP];
	for (int r = 0; r < 8; r++)
		bt_push(c, i->opsize, (r == CPU_RSP ? sp : c->r[r]) & sz_mask(i->opsize));
}

static void ex_popa(struct bt_cpu *c, const struct bt_insn *i)
{
	for (int r = 7; r >= 0; r--) {
		uint64_t v = bt_pop(c, i->opsize);
		if (r != CPU_RSP)
			reg_wr(c, i, r, i->opsize, v);
	}
}

static void ex_enter(struct bt_cpu *c, const struct bt_insn *i)
{
	int size = i->opsize, level = i->imm2 & 31;
	uint64_t m = sp_mask(c);
	uint64_t sp = c->r[CPU_RSP], bp = c->r[CPU_RBP];
	uint64_t frame = (sp - size) & m;
	/* Reads first, then writes, then RSP/RBP: a fault leaves both
	 * registers unchanged. */
	uint64_t saved[32];
	for (int k = 1; k < level; k++)
		saved[k] = bt_read(c, SEG_SS, (bp - (uint64_t)k * size) & m, size);
	bt_write(c, SEG_SS, frame, size, bp & sz_mask(size));
	uint64_t p = frame;
	for (int k = 1; k < level; k++) {
		p = (p - size) & m;
		bt_write(c, SEG_SS, p, size, saved[k]);
	}
	if (level > 0) {
		p = (p - size) & m;
		bt_write(c, SEG_SS, p, size, frame & sz_mask(size));
	}
	uint64_t nsp = (p - (uint16_t)i->imm) & m;
	if ((uint16_t)i->imm)
		(void)bt_read_rmw(c, SEG_SS, nsp, 1);
	reg_wr(c, i, CPU_RBP, size, frame);
	sp_set(c, nsp);
}

static void ex_leave(struct bt_cpu *c, const struct bt_insn *i)
{
	/* A faulting pop leaves RSP as it was. */
	uint64_t sp = c->r[CPU_RBP] & sp_mask(c);
	uint64_t v = bt_read(c, SEG_SS, sp, i->opsize);
	sp_set(c, sp + i->opsize);
	reg_wr(c, i, CPU_RBP, i->opsize, v);
}

/* ---- rAX extensions, flags ---- */
static void ex_cbw(struct bt_cpu *c, const struct bt_insn *i)
{
	int s = i->opsize;
	reg_wr(c, i, 0, s, (uint64_t)sext_sz(c->r[0], s / 2));
}

static void ex_cwd(struct bt_cpu *c, const struct bt_insn *i)
{
	int s = i->opsize;
	reg_wr(c, i, 2, s, sext_sz(c->r[0], s) < 0 ? ~0ull : 0);
}

static void ex_lahf(struct bt_cpu *c, const struct bt_insn *i)
{
	uint64_t f = bt_get_rflags(c) & 0xd5;
	(void)i;
	/* always AH, even with a REX prefix */
	c->r[0] = (c->r[0] & ~0xff00ull) | ((f | 2) << 8);
}

static void ex_sahf(struct bt_cpu *c, const struct bt_insn *i)
{
	(void)i;
	bt_flags_set(c, BT_SF | BT_ZF | BT_AF | BT_PF_FLAG | BT_CF, (uint32_t)(c->r[0] >> 8) & 0xd5);
}

static void ex_flagop(struct bt_cpu *c, const struct bt_insn *i)
{
	switch (BT_BYTE(i->op)) {
	case 0xf5: bt_flags_set(c, BT_CF, bt_cf(c) ? 0 : BT_CF); break;
	case 0xf8: bt_flags_set(c, BT_CF, 0); break;
	case 0xf9: bt_flags_set(c, BT_CF, BT_CF); break;
	case 0xfc: c->rflags &= ~(uint64_t)BT_DF_FLAG; break;
	case 0xfd: c->rflags |= BT_DF_FLAG; break;
	}
}

static void ex_xlat(struct bt_cpu *c, const struct bt_insn *i)
{
	uint64_t off = ea_mask(i, c->r[CPU_RBX] + (c->r[0] & 0xff));
	reg_wr(c, i, 0, 1, bt_read(c, i->seg != 0xff ? i->seg : SEG_DS, off, 1));
}

/* ---- BCD (16/32-bit code only) ---- */
static void ex_bcd(struct bt_cpu *c, const struct bt_insn *i)
{
	uint32_t f = (uint32_t)bt_get_rflags(c);
	uint8_t al = (uint8_t)c->r[0], ah = (uint8_t)(c->r[0] >> 8);
	int cf = f & BT_CF, af = (f & BT_AF) != 0;
	uint8_t res;
	switch (BT_BYTE(i->op)) {
	case 0x27: case 0x2f: { /* DAA, DAS */
		uint8_t old = al;
		int oldcf = cf, das = BT_BYTE(i->op) == 0x2f;
		cf = 0;
		if ((al & 0xf) > 9 || af) {
			cf = oldcf || (das ? al < 6 : al > 0xf9);
			al = das ? al - 6 : al + 6;
			af = 1;
		} else {
			af = 0;
		}
		if (old > 0x99 || oldcf) {
			al = das ? al - 0x60 : al + 0x60;
			cf = 1;
		}
		reg_wr(c, i, 0, 1, al);
		res = al;
		break;
	}
	case 0x37: case 0x3f: { /* AAA, AAS */
		int aas = BT_BYTE(i->op) == 0x3f;
		if ((al & 0xf) > 9 || af) {
			uint16_t ax = (uint16_t)c->r[0];
			ax = aas ? (uint16_t)(ax - 6) : (uint16_t)(ax + 6);
			ah = (uint8_t)(ax >> 8);
			ah = aas ? ah - 1 : ah + 1;
			al = (uint8_t)ax;
			af = cf = 1;
		} else {
			af = cf = 0;
		}
		al &= 0xf;
		reg_wr(c, i, 0, 2, (uint64_t)al | ((uint64_t)ah << 8));
		res = al;
		break;
	}
	case 0xd4: { /* AAM */
		uint8_t base = (uint8_t)i->imm;
		if (!base)
			bt_raise(c, BT_DE);
		ah = al / base;
		al = al % base;
		reg_wr(c, i, 0, 2, (uint64_t)al | ((uint64_t)ah << 8));
		res = al;
		cf = af = 0;
		break;
	}
	default: { /* AAD */
		al = (uint8_t)(al + ah * (uint8_t)i->imm);
		reg_wr(c, i, 0, 2, al);
		res = al;
		cf = af = 0;
		break;
	}
	}
	uint32_t nf = (cf ? BT_CF : 0) | (af ? BT_AF : 0) | (res == 0 ? BT_ZF : 0) |
		      (res & 0x80 ? BT_SF : 0) | (__builtin_parity(res) ? 0 : BT_PF_FLAG);
	bt_flags_set(c, BT_CF | BT_AF | BT_ZF | BT_SF | BT_PF_FLAG, nf);
}

static void ex_salc(struct bt_cpu *c, const struct bt_insn *i)
{
	reg_wr(c, i, 0, 1, bt_cf(c) ? 0xff : 0);
}

bt_exec_fn bt_sel_mov(const struct bt_insn *i)
{
	uint8_t b = BT_BYTE(i->op);
	int mem = i->has_modrm && i->mod != 3;
	if (BT_MAP(i->op) == 1) {
		switch (b) {
		case 0x40 ... 0x4f: return cmov_tab[b & 15];
		case 0x90 ... 0x9f: return setcc_tab[b & 15];
		case 0xb6:
			if (mem && i->opsize == 4)
				return ea_is_bd(i) ? movzx_rm8_4_bd : ex_movzx_rm8_4;
			return ex_movx;
		case 0xb7: case 0xbe: case 0xbf: return ex_movx;
		case 0x0d: case 0x18 ... 0x1f: return ex_nop;
		}
		return NULL;
	}
	if (BT_MAP(i->op) != 0)
		return NULL;
	int s = sz_idx(bsize(i));
	switch (b) {
	case 0x88: case 0x89: return mem ? (ea_is_bd(i) ? mov_mr_bd[s] : mov_mr[s]) : mov_rr[s];
	case 0x8a: case 0x8b: return mem ? (ea_is_bd(i) ? mov_rm_bd[s] : mov_rm[s]) : mov_rrv[s];
	case 0xc6: case 0xc7: return mem ? mov_mi[s] : mov_ri[s];
	case 0xb0 ... 0xb7: return ex_mov_oi;
	case 0xb8 ... 0xbf:
		return i->opsize == 8 ? ex_mov_oi64 : i->opsize == 4 ? ex_mov_oi32 : ex_mov_oi;
	case 0xa0 ... 0xa3: return ex_mov_moffs;
	case 0x63: return ex_movsxd;   /* 64-bit mode only (ARPL is BT_I_SYS) */
	case 0x8d: return i->addrsize == 8 && i->opsize == 8 ? ex_lea64 : ex_lea;
	case 0x86: case 0x87: return ex_xchg;
	case 0x90:
		if (i->rex & 1)
			return ex_xchg_ax;
		return ex_nop;           /* NOP, PAUSE */
	case 0x91 ... 0x97: return ex_xchg_ax;
	case 0x50 ... 0x57: return ex_push_r;
	case 0x58 ... 0x5f: return ex_pop_r;
	case 0x68: case 0x6a: return ex_push_i;
	case 0x8f: return ex_pop_e;
	case 0xff: return (i->reg & 7) == 6 ? ex_push_e : NULL;
	case 0x60: return ex_pusha;
	case 0x61: return ex_popa;
	case 0xc8: return ex_enter;
	case 0xc9: return ex_leave;
	case 0x98: return ex_cbw;
	case 0x99: return ex_cwd;
	case 0x9e: return ex_sahf;
	case 0x9f: return ex_lahf;
	case 0xf5: case 0xf8: case 0xf9: case 0xfc: case 0xfd: return ex_flagop;
	case 0xd7: return ex_xlat;
	case 0x27: case 0x2f: case 0x37: case 0x3f: case 0xd4: case 0xd5: return ex_bcd;
	case 0xd6: return ex_salc;
	}
	return NULL;
}
