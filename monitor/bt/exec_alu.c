/* Integer ALU instructions: ADD..CMP and TEST in every form and size,
 * INC/DEC, NOT/NEG, MUL/IMUL/DIV/IDIV (#DE), shifts and rotates, SHLD/SHRD.
 * The common forms are separate functions per operation and size so the
 * block loop calls straight into specialized code. */
#include "monitor/bt/exec_int.h"

/* op: 0 ADD 1 OR 2 ADC 3 SBB 4 AND 5 SUB 6 XOR 7 CMP 8 TEST */
static inline __attribute__((always_inline)) uint64_t
alu_op(struct bt_cpu *c, int op, int size, uint64_t a, uint64_t b)
{
	uint64_t m = sz_mask(size), r;
	int sz = sz_idx(size), cf;
	switch (op) {
	case 0: r = (a + b) & m; cc_set(c, CC_OP(CC_ADD, sz), r, a, b); break;
	case 1: r = a | b; c->cc_op = CC_OP(CC_LOGIC, sz); c->cc_dst = r; break;
	case 2: cf = bt_cf(c); r = (a + b + cf) & m; cc_set(c, CC_OP(CC_ADC, sz), r, a, b); break;
	case 3: cf = bt_cf(c); r = (a - b - cf) & m; cc_set(c, CC_OP(CC_SBB, sz), r, a, b); break;
	/* logic results need only the result: CF = OF = AF = 0 */
	case 4: case 8: r = a & b; c->cc_op = CC_OP(CC_LOGIC, sz); c->cc_dst = r; break;
	case 6: r = a ^ b; c->cc_op = CC_OP(CC_LOGIC, sz); c->cc_dst = r; break;
	default: r = (a - b) & m; cc_set(c, CC_OP(CC_SUB, sz), r, a, b); break;
	}
	return r;
}

#define NOWB(op) ((op) == 7 || (op) == 8)

/* The register forms and the slow (not directly mapped) memory paths. */
#define ALU_FNS(OP, SZ) \
static void alu_rr_##OP##_##SZ(struct bt_cpu *c, const struct bt_insn *i) \
{ \
	uint64_t r = alu_op(c, OP, SZ, reg_rd(c, i, i->rm, SZ), reg_rd(c, i, i->reg, SZ)); \
	if (!NOWB(OP)) reg_wr(c, i, i->rm, SZ, r); \
} \
static void alu_rrv_##OP##_##SZ(struct bt_cpu *c, const struct bt_insn *i) \
{ \
	uint64_t r = alu_op(c, OP, SZ, reg_rd(c, i, i->reg, SZ), reg_rd(c, i, i->rm, SZ)); \
	if (!NOWB(OP)) reg_wr(c, i, i->reg, SZ, r); \
} \
static void __attribute__((noinline)) alu_mr_slow_##OP##_##SZ(struct bt_cpu *c, const struct bt_insn *i) \
{ \
	uint64_t off = bt_ea(c, i); int seg = bt_ea_seg(i); \
	uint64_t a = NOWB(OP) ? (bt_read)(c, seg, off, SZ) : (bt_read_rmw)(c, seg, off, SZ); \
	uint64_t r = alu_op(c, OP, SZ, a, reg_rd(c, i, i->reg, SZ)); \
	if (!NOWB(OP)) (bt_write)(c, seg, off, SZ, r); \
} \
static void __attribute__((noinline)) alu_rm_slow_##OP##_##SZ(struct bt_cpu *c, const struct bt_insn *i) \
{ \
	uint64_t b = (bt_read)(c, bt_ea_seg(i), bt_ea(c, i), SZ); \
	uint64_t r = alu_op(c, OP, SZ, reg_rd(c, i, i->reg, SZ), b); \
	if (!NOWB(OP)) reg_wr(c, i, i->reg, SZ, r); \
} \
static void alu_ri_##OP##_##SZ(struct bt_cpu *c, const struct bt_insn *i) \
{ \
	uint64_t r = alu_op(c, OP, SZ, reg_rd(c, i, i->rm, SZ), i->imm & sz_mask(SZ)); \
	if (!NOWB(OP)) reg_wr(c, i, i->rm, SZ, r); \
} \
static void __attribute__((noinline)) alu_mi_slow_##OP##_##SZ(struct bt_cpu *c, const struct bt_insn *i) \
{ \
	uint64_t off = bt_ea(c, i); int seg = bt_ea_seg(i); \
	uint64_t a = NOWB(OP) ? (bt_read)(c, seg, off, SZ) : (bt_read_rmw)(c, seg, off, SZ); \
	uint64_t r = alu_op(c, OP, SZ, a, i->imm & sz_mask(SZ)); \
	if (!NOWB(OP)) (bt_write)(c, seg, off, SZ, r); \
}
/* The memory forms' fast paths through host pointer EA: ea_host for any
 * operand (alu_mr, alu_rm, alu_mi), ea_host_bd for [base + disp] ones
 * (ea_is_bd: alu_mrb, alu_rmb, alu_mib). */
#define ALU_MEM_FNS(OP, SZ, X, EA) \
static void alu_mr##X##_##OP##_##SZ(struct bt_cpu *c, const struct bt_insn *i) \
{ \
	uint8_t *p = EA(c, i, NOWB(OP) ? BT_ACC_R : BT_ACC_W, SZ); \
	if (!p) { alu_mr_slow_##OP##_##SZ(c, i); return; } \
	uint64_t r = alu_op(c, OP, SZ, bt_ld_host(p, SZ), reg_rd(c, i, i->reg, SZ)); \
	if (!NOWB(OP)) bt_st_host(p, SZ, r); \
} \
static void alu_rm##X##_##OP##_##SZ(struct bt_cpu *c, const struct bt_insn *i) \
{ \
	const uint8_t *p = EA(c, i, BT_ACC_R, SZ); \
	if (!p) { alu_rm_slow_##OP##_##SZ(c, i); return; } \
	uint64_t r = alu_op(c, OP, SZ, reg_rd(c, i, i->reg, SZ), bt_ld_host(p, SZ)); \
	if (!NOWB(OP)) reg_wr(c, i, i->reg, SZ, r); \
} \
static void alu_mi##X##_##OP##_##SZ(struct bt_cpu *c, const struct bt_insn *i) \
{ \
	uint8_t *p = EA(c, i, NOWB(OP) ? BT_ACC_R : BT_ACC_W, SZ); \
	if (!p) { alu_mi_slow_##OP##_##SZ(c, i); return; } \
	uint64_t r = alu_op(c, OP, SZ, bt_ld_host(p, SZ), i->imm & sz_mask(SZ)); \
	if (!NOWB(OP)) bt_st_host(p, SZ, r); \
}
#define ALU_ALL(OP, SZ) ALU_FNS(OP, SZ) ALU_MEM_FNS(OP, SZ, , ea_host) ALU_MEM_FNS(OP, SZ, b, ea_host_bd)
#define ALU_SIZES(OP) ALU_ALL(OP, 1) ALU_ALL(OP, 2) ALU_ALL(OP, 4) ALU_ALL(OP, 8)
ALU_SIZES(0) ALU_SIZES(1) ALU_SIZES(2) ALU_SIZES(3) ALU_SIZES(4)
ALU_SIZES(5) ALU_SIZES(6) ALU_SIZES(7) ALU_SIZES(8)

#define ROW(F, OP) { F##_##OP##_1, F##_##OP##_2, F##_##OP##_4, F##_##OP##_8 }
#define FORM(F) { ROW(F, 0), ROW(F, 1), ROW(F, 2), ROW(F, 3), ROW(F, 4), \
		  ROW(F, 5), ROW(F, 6), ROW(F, 7), ROW(F, 8) }
enum { F_RR, F_RRV, F_MR, F_RM, F_RI, F_MI, F_MRB, F_RMB, F_MIB };
static const bt_exec_fn alu_tab[9][9][4] = {
	FORM(alu_rr), FORM(alu_rrv), FORM(alu_mr), FORM(alu_rm), FORM(alu_ri), FORM(alu_mi),
	FORM(alu_mrb), FORM(alu_rmb), FORM(alu_mib),
};

/* ---- INC/DEC/NOT/NEG ---- */
static void incdec(struct bt_cpu *c, const struct bt_insn *i, int size, int dec, int r)
{
	int cf = bt_cf(c);
	uint64_t a, v;
	if (r >= 0) {
		a = reg_rd(c, i, r, size);
		v = (dec ? a - 1 : a + 1) & sz_mask(size);
		reg_wr(c, i, r, size, v);
	} else {
		uint64_t off = bt_ea(c, i);
		int seg = bt_ea_seg(i);
		a = bt_read_rmw(c, seg, off, size);
		v = (dec ? a - 1 : a + 1) & sz_mask(size);
		bt_write(c, seg, off, size, v);
	}
	cc_set(c, CC_OP(dec ? CC_DEC : CC_INC, sz_idx(size)), v, a, (uint64_t)cf);
}

static void ex_incdec_e(struct bt_cpu *c, const struct bt_insn *i)
{
	incdec(c, i, bsize(i), i->reg & 1, i->mod == 3 ? i->rm : -1);
}

static void ex_incdec_r(struct bt_cpu *c, const struct bt_insn *i)  /* 40-4F, 16/32-bit */
{
	incdec(c, i, i->opsize, (i->op & 8) != 0, i->op & 7);
}

static void ex_not(struct bt_cpu *c, const struct bt_insn *i)
{
	int size = bsize(i);
	if (i->mod == 3) {
		reg_wr(c, i, i->rm, size, ~reg_rd(c, i, i->rm, size));
	} else {
		uint64_t off = bt_ea(c, i);
		int seg = bt_ea_seg(i);
		bt_write(c, seg, off, size, ~bt_read_rmw(c, seg, off, size));
	}
}

static void ex_neg(struct bt_cpu *c, const struct bt_insn *i)
{
	int size = bsize(i);
	uint64_t a, r;
	if (i->mod == 3) {
		a = reg_rd(c, i, i->rm, size);
		r = (0 - a) & sz_mask(size);
		reg_wr(c, i, i->rm, size, r);
	} else {
		uint64_t off = bt_ea(c, i);
		int seg = bt_ea_seg(i);
		a = bt_read_rmw(c, seg, off, size);
		r = (0 - a) & sz_mask(size);
		bt_write(c, seg, off, size, r);
	}
	cc_set(c, CC_OP(CC_SUB, sz_idx(size)), r, 0, a);
}

static void ex_test_i(struct bt_cpu *c, const struct bt_insn *i)   /* F6/F7 /0 /1 */
{
	int size = bsize(i);
	alu_op(c, 8, size, e_rd(c, i, size), i->imm & sz_mask(size));
}

/* ---- MUL/IMUL/DIV/IDIV ---- */
static void ex_muldiv(struct bt_cpu *c, const struct bt_insn *i)
{
	int size = bsize(i), sz = sz_idx(size);
	uint64_t m = sz_mask(size), s = e_rd(c, i, size);
	uint64_t a = c->r[0] & m, d = c->r[2] & m;
	uint64_t lo, hi;
	int ovf;

	switch (i->reg & 7) {
	case 4: { /* MUL */
		unsigned __int128 p = (unsigned __int128)a * s;
		lo = (uint64_t)p & m;
		hi = size == 8 ? (uint64_t)(p >> 64) : (uint64_t)(p >> (8 * size)) & m;
		ovf = hi != 0;
		break;
	}
	case 5: { /* IMUL */
		__int128 p = (__int128)sext_sz(a, size) * sext_sz(s, size);
		lo = (uint64_t)p & m;
		hi = size == 8 ? (uint64_t)((unsigned __int128)p >> 64) : (uint64_t)(p >> (8 * size)) & m;
		ovf = p != (__int128)sext_sz(lo, size);
		break;
	}
	case 6: { /* DIV */
		unsigned __int128 n;
		if (size == 1)
			n = c->r[0] & 0xffff;
		else
			n = ((unsigned __int128)d << (8 * size)) | a;
		if (s == 0)
			bt_raise(c, BT_DE);
		unsigned __int128 q = n / s;
		if (q > m)
			bt_raise(c, BT_DE);
		lo = (uint64_t)q;
		hi = (uint64_t)(n % s);
		goto store_div;
	}
	default: { /* IDIV */
		__int128 n;
		if (size == 1)
			n = (int16_t)c->r[0];
		else if (size == 8)
			n = (__int128)(((unsigned __int128)d << 64) | a);
		else if (size == 2)
			n = (int32_t)((d << 16) | a);
		else
			n = (int64_t)((d << 32) | a);
		int64_t dv = sext_sz(s, size);
		if (dv == 0)
			bt_raise(c, BT_DE);
		__int128 lim = (__int128)1 << (8 * size - 1), q, rm;
		if (dv == -1) {
			if (n <= -lim || n > lim)
				bt_raise(c, BT_DE);
			q = -n;
			rm = 0;
		} else {
			q = n / dv;
			rm = n % dv;
		}
		if (q >= lim || q < -lim)
			bt_raise(c, BT_DE);
		lo = (uint64_t)q & m;
		hi = (uint64_t)rm & m;
		goto store_div;
	}
	}
	if (size == 1) {
		reg_wr(c, i, 0, 2, lo | (hi << 8));
	} else {
		reg_wr(c, i, 0, size, lo);
		reg_wr(c, i, 2, size, hi);
	}
	cc_set(c, CC_OP(CC_MUL, sz), lo, (uint64_t)ovf, 0);
	return;
store_div:
	if (size == 1) {
		reg_wr(c, i, 0, 2, (lo & 0xff) | ((hi & 0xff) << 8));
	} else {
		reg_wr(c, i, 0, size, lo);
		reg_wr(c, i, 2, size, hi);
	}
}

/* IMUL Gv, Ev (0F AF) and IMUL Gv, Ev, imm (69, 6B); 32/64-bit forms
 * specialized. */
#define IMUL2(SZ, T) \
static void imul2_##SZ(struct bt_cpu *c, const struct bt_insn *i) \
{ \
	T a = (T)(i->op == BT_OP(1, 0xaf) ? c->r[i->reg] : i->imm); \
	T b = (T)(i->mod == 3 ? c->r[i->rm] : e_rd(c, i, SZ)); \
	T lo; \
	int ovf = __builtin_mul_overflow(a, b, &lo); \
	reg_wr(c, i, i->reg, SZ, (uint64_t)lo); \
	cc_set(c, CC_OP(CC_MUL, sz_idx(SZ)), (uint64_t)lo, (uint64_t)ovf, 0); \
}
IMUL2(4, int32_t)
IMUL2(8, int64_t)

static void ex_imul2(struct bt_cpu *c, const struct bt_insn *i)
{
	int size = i->opsize;
	uint64_t a = i->op == BT_OP(1, 0xaf) ? reg_rd(c, i, i->reg, size) : i->imm;
	uint64_t b = e_rd(c, i, size);
	__int128 p = (__int128)sext_sz(a, size) * sext_sz(b, size);
	uint64_t lo = (uint64_t)p & sz_mask(size);
	reg_wr(c, i, i->reg, size, lo);
	cc_set(c, CC_OP(CC_MUL, sz_idx(size)), lo, p != (__int128)sext_sz(lo, size), 0);
}

/* ---- shifts and rotates ---- */
static void set_arith(struct bt_cpu *c, int size, uint64_t res, int cf, int of, int af)
{
	uint64_t m = sz_mask(size);
	uint32_t f = 0;
	res &= m;
	if (cf) f |= BT_CF;
	if (of) f |= BT_OF_FLAG;
	if (af) f |= BT_AF;
	if (res == 0) f |= BT_ZF;
	if (res & sz_sign(size)) f |= BT_SF;
	if (!__builtin_parity((uint32_t)(res & 0xff))) f |= BT_PF_FLAG;
	c->rflags = (c->rflags & ~(uint64_t)BT_ARITH_FLAGS) | f;
	c->cc_op = CC_EFLAGS;
}

static inline __attribute__((always_inline)) uint64_t
shift_op(struct bt_cpu *c, int op, int size, uint64_t a, unsigned cnt)
{
	int bits = 8 * size, sz = sz_idx(size);
	uint64_t m = sz_mask(size), r;
	cnt &= size == 8 ? 63 : 31;
	if (cnt == 0)
		return a;
	switch (op) {
	case 0: case 1: { /* ROL, ROR */
		unsigned n = cnt % bits;
		if (op == 0)
			r = n ? ((a << n) | (a >> (bits - n))) & m : a;
		else
			r = n ? ((a >> n) | (a << (bits - n))) & m : a;
		/* lazy: CF and OF come from r, the rest from the state
		 * rotated over (materialized first if that is a rotate) */
		if (CC_KIND(c->cc_op) >= CC_ROL)
			bt_flags_flush(c);
		c->cc_rot_op = c->cc_op;
		c->cc_rot = r;
		c->cc_op = CC_OP(op == 0 ? CC_ROL : CC_ROR, sz);
		return r;
	}
	case 2: case 3: { /* RCL, RCR */
		unsigned n = size <= 2 ? cnt % (bits + 1) : cnt;
		int cf = bt_cf(c);
		r = a;
		for (unsigned k = 0; k < n; k++) {
			int out;
			if (op == 2) {
				out = (int)((r >> (bits - 1)) & 1);
				r = ((r << 1) | (uint64_t)cf) & m;
			} else {
				out = (int)(r & 1);
				r = (r >> 1) | ((uint64_t)cf << (bits - 1));
			}
			cf = out;
		}
		int of = op == 2 ? (int)(((r >> (bits - 1)) & 1) ^ (uint64_t)cf)
				 : (int)(((r >> (bits - 1)) ^ (r >> (bits - 2))) & 1);
		bt_flags_set(c, BT_CF | BT_OF_FLAG, (cf ? BT_CF : 0) | (of ? BT_OF_FLAG : 0));
		return r;
	}
	case 4: case 6:
		r = cnt >= 64 ? 0 : (a << cnt) & m;
		cc_set(c, CC_OP(CC_SHL, sz), r, a, cnt);
		return r;
	case 5:
		r = a >> cnt;
		cc_set(c, CC_OP(CC_SHR, sz), r, a, cnt);
		return r;
	default:
		r = (uint64_t)(sext_sz(a, size) >> cnt) & m;
		cc_set(c, CC_OP(CC_SAR, sz), r, a, cnt);
		return r;
	}
}

static void ex_shift(struct bt_cpu *c, const struct bt_insn *i)
{
	int size = bsize(i);
	unsigned cnt;
	uint8_t b = BT_BYTE(i->op);
	if (b == 0xc0 || b == 0xc1)
		cnt = (unsigned)i->imm;
	else if (b == 0xd0 || b == 0xd1)
		cnt = 1;
	else
		cnt = (unsigned)c->r[1] & 0xff;
	if (i->mod == 3) {
		uint64_t a = reg_rd(c, i, i->rm, size);
		uint64_t r = shift_op(c, i->reg & 7, size, a, cnt);
		/* written even for a zero count: 32-bit writes zero-extend */
		if ((cnt & (size == 8 ? 63 : 31)) || size == 4)
			reg_wr(c, i, i->rm, size, r);
	} else {
		uint64_t off = bt_ea(c, i);
		int seg = bt_ea_seg(i);
		uint64_t a = bt_read_rmw(c, seg, off, size);
		uint64_t r = shift_op(c, i->reg & 7, size, a, cnt);
		if (cnt & (size == 8 ? 63 : 31))
			bt_write(c, seg, off, size, r);
	}
}

/* Specialized register shifts by an immediate (SHL/SHR/SAR r32/r64). */
#define SHIFT_RI(NAME, OP, SZ) \
static void NAME(struct bt_cpu *c, const struct bt_insn *i) \
{ \
	unsigned cnt = (unsigned)i->imm & (SZ == 8 ? 63 : 31); \
	if (!cnt) { reg_wr(c, i, i->rm, SZ, reg_rd(c, i, i->rm, SZ)); return; } \
	reg_wr(c, i, i->rm, SZ, shift_op(c, OP, SZ, reg_rd(c, i, i->rm, SZ), cnt)); \
}
SHIFT_RI(shl_ri_4, 4, 4) SHIFT_RI(shl_ri_8, 4, 8)
SHIFT_RI(shr_ri_4, 5, 4) SHIFT_RI(shr_ri_8, 5, 8)
SHIFT_RI(sar_ri_4, 7, 4) SHIFT_RI(sar_ri_8, 7, 8)
SHIFT_RI(rol_ri_4, 0, 4) SHIFT_RI(rol_ri_8, 0, 8)
SHIFT_RI(ror_ri_4, 1, 4) SHIFT_RI(ror_ri_8, 1, 8)
/* ... by 1 (D1) and by CL (D3) */
#define SHIFT_RX(NAME, OP, SZ, CNT) \
static void NAME(struct bt_cpu *c, const struct bt_insn *i) \
{ \
	unsigned cnt = (unsigned)(CNT) & (SZ == 8 ? 63 : 31); \
	if (!cnt) { reg_wr(c, i, i->rm, SZ, reg_rd(c, i, i->rm, SZ)); return; } \
	reg_wr(c, i, i->rm, SZ, shift_op(c, OP, SZ, reg_rd(c, i, i->rm, SZ), cnt)); \
}
SHIFT_RX(shl_r1_4, 4, 4, 1) SHIFT_RX(shl_r1_8, 4, 8, 1)
SHIFT_RX(shr_r1_4, 5, 4, 1) SHIFT_RX(shr_r1_8, 5, 8, 1)
SHIFT_RX(sar_r1_4, 7, 4, 1) SHIFT_RX(sar_r1_8, 7, 8, 1)
SHIFT_RX(shl_rc_4, 4, 4, c->r[1]) SHIFT_RX(shl_rc_8, 4, 8, c->r[1])
SHIFT_RX(shr_rc_4, 5, 4, c->r[1]) SHIFT_RX(shr_rc_8, 5, 8, c->r[1])
SHIFT_RX(sar_rc_4, 7, 4, c->r[1]) SHIFT_RX(sar_rc_8, 7, 8, c->r[1])

/* SHLD/SHRD: 0F A4/A5 (left), 0F AC/AD (right). */
static void ex_shxd(struct bt_cpu *c, const struct bt_insn *i)
{
	int size = i->opsize, bits = 8 * size;
	uint8_t b = BT_BYTE(i->op);
	int left = b == 0xa4 || b == 0xa5;
	unsigned cnt = (b == 0xa4 || b == 0xac) ? (unsigned)i->imm : (unsigned)c->r[1];
	cnt &= size == 8 ? 63 : 31;
	uint64_t off = 0;
	int seg = 0;
	uint64_t a;
	if (i->mod == 3) {
		a = reg_rd(c, i, i->rm, size);
	} else {
		/* the operand is accessed (and may fault) even for a zero count */
		off = bt_ea(c, i);
		seg = bt_ea_seg(i);
		a = bt_read_rmw(c, seg, off, size);
	}
	if (!cnt) {
		if (i->mod == 3 && size == 4)
			reg_wr(c, i, i->rm, 4, a);
		return;
	}
	uint64_t s = reg_rd(c, i, i->reg, size), m = sz_mask(size), r;
	int cf;
	if (size == 2) {
		/* 16-bit: counts above 16 shift through a 48-bit a:s:a chain,
		 * as Intel and AMD hardware do. */
		unsigned __int128 x;
		if (left) {
			x = ((unsigned __int128)a << 32) | (s << 16) | a;
			r = (uint64_t)(x >> (32 - cnt)) & m;
			cf = (int)((x >> (48 - cnt)) & 1);
		} else {
			x = ((unsigned __int128)a) | ((unsigned __int128)s << 16) | ((unsigned __int128)a << 32);
			r = (uint64_t)(x >> cnt) & m;
			cf = (int)((x >> (cnt - 1)) & 1);
		}
	} else if (left) {
		r = ((a << cnt) | (s >> (bits - cnt))) & m;
		cf = (int)((a >> (bits - cnt)) & 1);
	} else {
		r = ((a >> cnt) | (s << (bits - cnt))) & m;
		cf = (int)((a >> (cnt - 1)) & 1);
	}
	int of = (int)(((r ^ a) >> (bits - 1)) & 1);
	set_arith(c, size, r, cf, of, 0);
	if (i->mod == 3)
		reg_wr(c, i, i->rm, size, r);
	else
		bt_write(c, seg, off, size, r);
}

/* ---- selector ---- */
bt_exec_fn bt_sel_alu(const struct bt_insn *i)
{
	uint8_t b = BT_BYTE(i->op);
	int mem = i->mod != 3 && i->has_modrm, bd = ea_is_bd(i);
	if (BT_MAP(i->op) == 0) {
		if (b < 0x40 && (b & 7) < 6) {
			int op = b >> 3, size = (b & 1) ? i->opsize : 1, s = sz_idx(size);
			switch (b & 7) {
			case 0: case 1: return alu_tab[mem ? (bd ? F_MRB : F_MR) : F_RR][op][s];
			case 2: case 3: return alu_tab[mem ? (bd ? F_RMB : F_RM) : F_RRV][op][s];
			default: return alu_tab[F_RI][op][s];
			}
		}
		switch (b) {
		case 0x80: case 0x81: case 0x82: case 0x83: {
			int size = b == 0x80 || b == 0x82 ? 1 : i->opsize;
			return alu_tab[mem ? (bd ? F_MIB : F_MI) : F_RI][i->reg & 7][sz_idx(size)];
		}
		case 0x84: case 0x85:
			return alu_tab[mem ? (bd ? F_MRB : F_MR) : F_RR][8][sz_idx(bsize(i))];
		case 0xa8: case 0xa9:
			return alu_tab[F_RI][8][sz_idx(bsize(i))];
		case 0x40 ... 0x4f:
			return ex_incdec_r;
		case 0xfe:
			return ex_incdec_e;
		case 0xff:
			return (i->reg & 7) <= 1 ? ex_incdec_e : NULL;
		case 0xf6: case 0xf7:
			switch (i->reg & 7) {
			case 0: case 1: return ex_test_i;
			case 2: return ex_not;
			case 3: return ex_neg;
			default: return ex_muldiv;
			}
		case 0x69: case 0x6b:
			return i->opsize == 8 ? imul2_8 : i->opsize == 4 ? imul2_4 : ex_imul2;
		case 0xc1:
			if (!mem && (i->opsize == 4 || i->opsize == 8)) {
				int e = i->opsize == 8;
				switch (i->reg & 7) {
				case 0: return e ? rol_ri_8 : rol_ri_4;
				case 1: return e ? ror_ri_8 : ror_ri_4;
				case 4: case 6: return e ? shl_ri_8 : shl_ri_4;
				case 5: return e ? shr_ri_8 : shr_ri_4;
				case 7: return e ? sar_ri_8 : sar_ri_4;
				}
			}
			return ex_shift;
		case 0xd1: case 0xd3:
			if (!mem && (i->opsize == 4 || i->opsize == 8)) {
				int e = i->opsize == 8, one = b == 0xd1;
				switch (i->reg & 7) {
				case 4: case 6: return one ? (e ? shl_r1_8 : shl_r1_4) : (e ? shl_rc_8 : shl_rc_4);
				case 5: return one ? (e ? shr_r1_8 : shr_r1_4) : (e ? shr_rc_8 : shr_rc_4);
				case 7: return one ? (e ? sar_r1_8 : sar_r1_4) : (e ? sar_rc_8 : sar_rc_4);
				}
			}
			return ex_shift;
		case 0xc0: case 0xd0: case 0xd2:
			return ex_shift;
		}
		return NULL;
	}
	if (BT_MAP(i->op) == 1) {
		switch (b) {
		case 0xaf: return i->opsize == 8 ? imul2_8 : i->opsize == 4 ? imul2_4 : ex_imul2;
		case 0xa4: case 0xa5: case 0xac: case 0xad: return ex_shxd;
		}
	}
	return NULL;
}
