/* Block-level optimization of freshly decoded BT blocks (ISA half):
 *  - flag liveness: walking the block backwards, an instruction whose
 *    arithmetic flags are overwritten before anything can read them (the
 *    next flag-writing instruction writes all six, reads none and cannot
 *    fault, and nothing in between reads flags or can fault) gets an exec
 *    function that skips computing them; used for rotates, whose CF/OF
 *    update otherwise materializes every lazy flag;
 *  - fusion of a CMP or TEST (register or memory operands), or a register
 *    SUB/ADD/AND with an immediate or DEC, with the Jcc that ends the block
 *    into one exec function: one dispatch instead of two, and the
 *    condition is computed from the operands directly. The lazy flags are
 *    still set, so everything after the pair sees the CPU's flags.
 * Neither changes what a fault or an interrupt sees: faults can only come
 * from instructions that keep exact semantics or from a fused pair's first
 * half (with RIP at it, as for the lone instruction), and interrupts are
 * taken at block boundaries. Single-stepping (TF) runs unoptimized one-instruction
 * blocks (block.c). */
#include "monitor/bt/exec_int.h"

/* ---- flag use of an instruction ---- */
enum { FU_USE, FU_NONE, FU_KILL };

/* FU_KILL: writes all six arithmetic flags, reads none, cannot fault;
 * FU_NONE: neither reads nor writes them and cannot fault; FU_USE: may
 * read them or may fault (either way they must be exact before it). */
static int flag_use(const struct bt_insn *i)
{
	uint8_t b = BT_BYTE(i->op);
	int reg = i->has_modrm && i->mod == 3;
	if (i->lock || (i->flags & (BT_I_SYS | BT_I_BRANCH)))
		return FU_USE;
	if (BT_MAP(i->op) == 0) {
		if (b < 0x40 && (b & 7) < 6) {
			int op = b >> 3;
			if (op == 2 || op == 3)
				return FU_USE;        /* ADC, SBB read CF */
			return ((b & 7) >= 4 || reg) ? FU_KILL : FU_USE;
		}
		switch (b) {
		case 0x80: case 0x81: case 0x83:
			return reg && (i->reg & 7) != 2 && (i->reg & 7) != 3 ? FU_KILL : FU_USE;
		case 0x84: case 0x85:
			return reg ? FU_KILL : FU_USE;
		case 0xa8: case 0xa9:
			return FU_KILL;
		case 0x88 ... 0x8b:
		case 0x63:                    /* MOVSXD (ARPL is BT_I_SYS) */
			return reg ? FU_NONE : FU_USE;
		case 0x8d:                    /* LEA: no memory access */
			return FU_NONE;
		case 0xb0 ... 0xbf:
			return FU_NONE;
		}
		return FU_USE;
	}
	if (BT_MAP(i->op) == 1) {
		switch (b) {
		case 0xb6: case 0xb7: case 0xbe: case 0xbf:
			return reg ? FU_NONE : FU_USE;
		case 0xc8 ... 0xcf:           /* BSWAP */
			return FU_NONE;
		}
	}
	return FU_USE;
}

/* ---- rotates without flags ---- */
#define ROT_NF(NAME, SZ, LEFT, CNT) \
static void NAME(struct bt_cpu *c, const struct bt_insn *i) \
{ \
	unsigned n = (unsigned)(CNT) & (SZ == 8 ? 63 : 31); \
	uint64_t a = reg_rd(c, i, i->rm, SZ), r = a; \
	if (n) \
		r = LEFT ? ((a << n) | (a >> (8 * SZ - n))) : ((a >> n) | (a << (8 * SZ - n))); \
	reg_wr(c, i, i->rm, SZ, r); \
}
ROT_NF(rol_i4_nf, 4, 1, i->imm) ROT_NF(rol_i8_nf, 8, 1, i->imm)
ROT_NF(ror_i4_nf, 4, 0, i->imm) ROT_NF(ror_i8_nf, 8, 0, i->imm)
ROT_NF(rol_14_nf, 4, 1, 1) ROT_NF(rol_18_nf, 8, 1, 1)
ROT_NF(ror_14_nf, 4, 0, 1) ROT_NF(ror_18_nf, 8, 0, 1)
ROT_NF(rol_c4_nf, 4, 1, c->r[1]) ROT_NF(rol_c8_nf, 8, 1, c->r[1])
ROT_NF(ror_c4_nf, 4, 0, c->r[1]) ROT_NF(ror_c8_nf, 8, 0, c->r[1])

/* The flag-less variant of i, or NULL. */
static bt_exec_fn select_noflags(const struct bt_insn *i)
{
	uint8_t b = BT_BYTE(i->op);
	if (BT_MAP(i->op) != 0 || !i->has_modrm || i->mod != 3 || (i->reg & 7) > 1 ||
	    (i->opsize != 4 && i->opsize != 8))
		return NULL;
	int q = i->opsize == 8, left = (i->reg & 7) == 0;
	static const bt_exec_fn tab[3][2][2] = {
		{ { ror_i4_nf, ror_i8_nf }, { rol_i4_nf, rol_i8_nf } },
		{ { ror_14_nf, ror_18_nf }, { rol_14_nf, rol_18_nf } },
		{ { ror_c4_nf, ror_c8_nf }, { rol_c4_nf, rol_c8_nf } },
	};
	switch (b) {
	case 0xc1: return tab[0][left][q];
	case 0xd1: return tab[1][left][q];
	case 0xd3: return tab[2][left][q];
	}
	return NULL;
}

/* ---- CMP/TEST + Jcc ---- */
static inline __attribute__((always_inline)) int
cond_sub(int cc, int size, uint64_t a, uint64_t b, uint64_t r)
{
	uint64_t sign = sz_sign(size);
	int t;
	switch (cc >> 1) {
	case 0: t = ((a ^ b) & (a ^ r) & sign) != 0; break;
	case 1: t = a < b; break;
	case 2: t = a == b; break;
	case 3: t = a <= b; break;
	case 4: t = (r & sign) != 0; break;
	case 5: t = !__builtin_parity((uint32_t)(r & 0xff)); break;
	case 6: t = sext_sz(a, size) < sext_sz(b, size); break;
	default: t = sext_sz(a, size) <= sext_sz(b, size); break;
	}
	return t ^ (cc & 1);
}

static inline __attribute__((always_inline)) int cond_logic(int cc, int size, uint64_t r)
{
	int t;
	switch (cc >> 1) {
	case 0: case 1: t = 0; break;
	case 2: case 3: t = r == 0; break;
	case 4: case 6: t = sext_sz(r, size) < 0; break;
	case 5: t = !__builtin_parity((uint32_t)(r & 0xff)); break;
	default: t = sext_sz(r, size) <= 0; break;
	}
	return t ^ (cc & 1);
}

/* The fused instruction keeps the fields of its flag-setting half; the Jcc
 * stays decoded in the slot after it (block.c keeps that slot), where the
 * exec function reads the displacement and operand size. */
static inline __attribute__((always_inline)) void fz_jump(struct bt_cpu *c, const struct bt_insn *i)
{
	const struct bt_insn *j = i + 1;
	uint64_t t = c->next_rip + j->imm;
	c->next_rip = j->opsize == 8 ? t : j->opsize == 4 ? (uint32_t)t : (uint16_t)t;
}

/* Condition cc after ADD (kind 2) or DEC (kind 3; cf is the CF it keeps). */
static inline __attribute__((always_inline)) int
cond_adddec(int kind, int cc, int size, uint64_t a, uint64_t b, uint64_t r, int cf)
{
	uint64_t sign = sz_sign(size);
	int of = kind == 2 ? ((a ^ r) & (b ^ r) & sign) != 0 : a == sign;
	int zf = r == 0, sf = (r & sign) != 0, t;
	if (kind == 2)
		cf = r < a;
	switch (cc >> 1) {
	case 0: t = of; break;
	case 1: t = cf; break;
	case 2: t = zf; break;
	case 3: t = cf | zf; break;
	case 4: t = sf; break;
	case 5: t = !__builtin_parity((uint32_t)(r & 0xff)); break;
	case 6: t = sf != of; break;
	default: t = zf | (sf != of); break;
	}
	return t ^ (cc & 1);
}

/* Memory operand of a fused CMP/TEST (never RIP-relative): may fault,
 * with c->rip at the fused instruction, which is where the CMP/TEST is. */
static inline __attribute__((always_inline)) uint64_t fz_mem(struct bt_cpu *c, const struct bt_insn *i, int size)
{
	const uint8_t *p = ea_host(c, i, BT_ACC_R, size);
	if (__builtin_expect(p != NULL, 1))
		return bt_ld_host(p, size);
	return (bt_read)(c, bt_ea_seg(i), bt_ea(c, i), size);
}

/* Forms (F):
 *  0 CMP E,G  1 CMP G,E  2 CMP E,imm  3 TEST E,G  4 TEST E,imm (registers)
 *  5 CMP M,G  6 CMP G,M  7 CMP M,imm  8 TEST M,G  9 TEST M,imm (memory)
 * 10 SUB E,imm  11 ADD E,imm  12 AND E,imm  13 DEC E (registers, written) */
#define FZ_MEMF(F) ((F) >= 5 && (F) <= 9)
#define FZ_KIND(F) ((F) == 11 ? 2 : (F) == 13 ? 3 : \
		    ((F) == 3 || (F) == 4 || (F) == 8 || (F) == 9 || (F) == 12) ? 1 : 0)
#define FZ_A(F, SZ) ((F) == 1 || (F) == 6 ? reg_rd(c, i, i->reg, SZ) : \
		     FZ_MEMF(F) ? fz_mem(c, i, SZ) : reg_rd(c, i, i->rm, SZ))
#define FZ_B(F, SZ) ((F) == 13 ? 1 : \
		     ((F) == 2 || (F) == 4 || (F) == 7 || (F) == 9 || (F) >= 10) ? i->imm & sz_mask(SZ) : \
		     (F) == 1 ? reg_rd(c, i, i->rm, SZ) : (F) == 6 ? fz_mem(c, i, SZ) : \
		     reg_rd(c, i, i->reg, SZ))
#define FZ_FN(F, SZ, CC) \
static void fz_##F##_##SZ##_##CC(struct bt_cpu *c, const struct bt_insn *i) \
{ \
	int cf = FZ_KIND(F) == 3 ? bt_cf(c) : 0; \
	uint64_t a = FZ_A(F, SZ), b = FZ_B(F, SZ), r; \
	int t; \
	switch (FZ_KIND(F)) { \
	case 0: \
		r = (a - b) & sz_mask(SZ); \
		cc_set(c, CC_OP(CC_SUB, sz_idx(SZ)), r, a, b); \
		t = cond_sub(CC, SZ, a, b, r); \
		break; \
	case 1: \
		r = a & b; \
		c->cc_op = CC_OP(CC_LOGIC, sz_idx(SZ)); \
		c->cc_dst = r; \
		t = cond_logic(CC, SZ, r); \
		break; \
	case 2: \
		r = (a + b) & sz_mask(SZ); \
		cc_set(c, CC_OP(CC_ADD, sz_idx(SZ)), r, a, b); \
		t = cond_adddec(2, CC, SZ, a, b, r, 0); \
		break; \
	default: \
		r = (a - 1) & sz_mask(SZ); \
		cc_set(c, CC_OP(CC_DEC, sz_idx(SZ)), r, a, (uint64_t)cf); \
		t = cond_adddec(3, CC, SZ, a, b, r, cf); \
		break; \
	} \
	if ((F) >= 10) \
		reg_wr(c, i, i->rm, SZ, r); \
	if (t) \
		fz_jump(c, i); \
}
#define FZ16(F, SZ) \
	FZ_FN(F, SZ, 0) FZ_FN(F, SZ, 1) FZ_FN(F, SZ, 2) FZ_FN(F, SZ, 3) \
	FZ_FN(F, SZ, 4) FZ_FN(F, SZ, 5) FZ_FN(F, SZ, 6) FZ_FN(F, SZ, 7) \
	FZ_FN(F, SZ, 8) FZ_FN(F, SZ, 9) FZ_FN(F, SZ, 10) FZ_FN(F, SZ, 11) \
	FZ_FN(F, SZ, 12) FZ_FN(F, SZ, 13) FZ_FN(F, SZ, 14) FZ_FN(F, SZ, 15)
#define FZ_SIZES(F) FZ16(F, 1) FZ16(F, 4) FZ16(F, 8)
FZ_SIZES(0) FZ_SIZES(1) FZ_SIZES(2) FZ_SIZES(3) FZ_SIZES(4)
FZ_SIZES(5) FZ_SIZES(6) FZ_SIZES(7) FZ_SIZES(8) FZ_SIZES(9)
FZ_SIZES(10) FZ_SIZES(11) FZ_SIZES(12) FZ_SIZES(13)

#define FZ_ROW(F, SZ) { fz_##F##_##SZ##_0, fz_##F##_##SZ##_1, fz_##F##_##SZ##_2, \
	fz_##F##_##SZ##_3, fz_##F##_##SZ##_4, fz_##F##_##SZ##_5, fz_##F##_##SZ##_6, \
	fz_##F##_##SZ##_7, fz_##F##_##SZ##_8, fz_##F##_##SZ##_9, fz_##F##_##SZ##_10, \
	fz_##F##_##SZ##_11, fz_##F##_##SZ##_12, fz_##F##_##SZ##_13, fz_##F##_##SZ##_14, \
	fz_##F##_##SZ##_15 }
#define FZ_FORM(F) { FZ_ROW(F, 1), FZ_ROW(F, 4), FZ_ROW(F, 8) }
static const bt_exec_fn fz_tab[14][3][16] = {
	FZ_FORM(0), FZ_FORM(1), FZ_FORM(2), FZ_FORM(3), FZ_FORM(4),
	FZ_FORM(5), FZ_FORM(6), FZ_FORM(7), FZ_FORM(8), FZ_FORM(9),
	FZ_FORM(10), FZ_FORM(11), FZ_FORM(12), FZ_FORM(13),
};

/* Fusion form (see above) of a flag-setting instruction, or -1. */
static int fuse_form(const struct bt_insn *i)
{
	uint8_t b = BT_BYTE(i->op);
	int reg = i->has_modrm && i->mod == 3;
	int mem = i->has_modrm && i->mod != 3 && i->base != BT_BASE_RIP;
	if (BT_MAP(i->op) != 0 || i->lock)
		return -1;
	switch (b) {
	case 0x38: case 0x39: return reg ? 0 : mem ? 5 : -1;
	case 0x3a: case 0x3b: return reg ? 1 : mem ? 6 : -1;
	case 0x3c: case 0x3d: return 2;
	case 0x80: case 0x81: case 0x83:
		switch (i->reg & 7) {
		case 7: return reg ? 2 : mem ? 7 : -1;
		case 5: return reg ? 10 : -1;
		case 0: return reg ? 11 : -1;
		case 4: return reg ? 12 : -1;
		}
		return -1;
	case 0x84: case 0x85: return reg ? 3 : mem ? 8 : -1;
	case 0xa8: case 0xa9: return 4;
	case 0xf6: case 0xf7: return (i->reg & 7) <= 1 ? (reg ? 4 : mem ? 9 : -1) : -1;
	case 0xfe: case 0xff: return reg && (i->reg & 7) == 1 ? 13 : -1;
	}
	return -1;
}

static int jcc_cond(const struct bt_insn *i)
{
	uint8_t b = BT_BYTE(i->op);
	if (BT_MAP(i->op) == 0 && b >= 0x70 && b <= 0x7f)
		return b & 15;
	if (BT_MAP(i->op) == 1 && b >= 0x80 && b <= 0x8f)
		return b & 15;
	return -1;
}

static bool try_fuse(struct bt_insn *a, const struct bt_insn *j)
{
	int f = fuse_form(a), cc = jcc_cond(j);
	if (f < 0 || cc < 0)
		return false;
	int size = (BT_BYTE(a->op) & 1) ? a->opsize : 1;
	int s = size == 1 ? 0 : size == 4 ? 1 : size == 8 ? 2 : -1;
	if (s < 0)
		return false;
	a->exec = fz_tab[f][s][cc];
	a->len = (uint8_t)(a->len + j->len);
	a->flags |= BT_I_BRANCH;
	return true;
}

int bt_block_optimize(struct bt_insn *ins, int n)
{
	if (n >= 2 && try_fuse(&ins[n - 2], &ins[n - 1]))
		n--;
	bool live = true;   /* flags are live at the block's end */
	for (int k = n - 1; k >= 0; k--) {
		struct bt_insn *i = &ins[k];
		if (!live) {
			bt_exec_fn nf = select_noflags(i);
			if (nf)
				i->exec = nf;
		}
		int u = flag_use(i);
		if (u == FU_KILL)
			live = false;
		else if (u == FU_USE)
			live = true;
	}
	return n;
}
