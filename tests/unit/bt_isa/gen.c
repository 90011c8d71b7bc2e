/* Random instruction sequences for the differential test: an encoder for
 * ModRM forms (register, or memory at r15 + disp [+ r14 * scale] inside the
 * data area), templates for each instruction class, and tracking of flags
 * the architecture leaves undefined so only defined flags are compared. A
 * flag consumer whose input is undefined gets a CMP in front of it. */
#include <string.h>
#include "monitor/bt/exec_int.h"
#include "tests/unit/bt_isa/isa_test.h"

const char *const isa_gen_names[GEN_KINDS] = {
	"int", "shift", "muldiv", "bits", "move", "stack", "string", "branch",
	"sse", "x87", "mmx", "mix",
};

uint64_t isa_rand(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

#define CF 0x01u
#define PF 0x04u
#define AF 0x10u
#define ZF 0x40u
#define SF 0x80u
#define OF 0x800u
#define ALL (CF | PF | AF | ZF | SF | OF)

struct gen {
	uint64_t *rng;
	uint8_t *p;
	size_t n, cap;
	uint32_t undef;         /* flags whose value may differ */
	int ninsn;
};

static uint64_t R(struct gen *g) { return isa_rand(g->rng); }
static int RN(struct gen *g, int n) { return (int)(R(g) % (uint64_t)n); }

static const int dests[] = { 0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13 };
static int dreg(struct gen *g) { return dests[RN(g, 13)]; }
static int sreg(struct gen *g) { return RN(g, 16); }

struct eop {
	int mem, reg;           /* register number when !mem */
	int32_t disp;
	int index, scale;       /* index: use r14 */
};

static struct eop ereg(int r) { struct eop e = { 0, r, 0, 0, 0 }; return e; }

static struct eop emem(struct gen *g, int size, int align)
{
	struct eop e = { 1, 0, 0, 0, 0 };
	e.index = RN(g, 4) == 0;
	e.scale = RN(g, 4);
	int32_t max = (int32_t)ISA_DATA_SIZE - 2048 - 64;
	e.disp = RN(g, 3) == 0 ? RN(g, 120) : RN(g, max);
	if (RN(g, 64) == 0) {
		/* at the end of the data area: the access crosses into (or
		 * lies in) the unmapped page after it */
		e.index = 0;
		e.disp = (int32_t)ISA_DATA_SIZE - 1 - RN(g, size + 4);
	}
	if (align) {
		e.index = 0;
		e.disp &= ~(align - 1);
	}
	return e;
}

struct enc {
	int p66, rep, lock, w, force_rex, map, op, reg;
	struct eop e;
	int modrm;              /* 0: no ModRM */
	uint64_t imm;
	int isz;
};

static void put(struct gen *g, uint8_t b)
{
	if (g->n < g->cap)
		g->p[g->n++] = b;
}

static void emit(struct gen *g, const struct enc *x)
{
	if (x->lock) put(g, 0xf0);
	if (x->p66) put(g, 0x66);
	if (x->rep) put(g, (uint8_t)x->rep);
	int rex = 0x40 | (x->w ? 8 : 0);
	if (x->modrm) {
		rex |= (x->reg & 8) ? 4 : 0;
		if (x->e.mem) {
			rex |= 1;                       /* base r15 */
			if (x->e.index)
				rex |= 2;               /* index r14 */
		} else {
			rex |= (x->e.reg & 8) ? 1 : 0;
		}
	} else {
		rex |= (x->reg & 8) ? 1 : 0;            /* opcode register */
	}
	if (rex != 0x40 || x->force_rex)
		put(g, (uint8_t)rex);
	if (x->map >= 1) put(g, 0x0f);
	if (x->map == 2) put(g, 0x38);
	if (x->map == 3) put(g, 0x3a);
	put(g, (uint8_t)(x->op | (x->modrm ? 0 : (x->reg & 7))));
	if (x->modrm) {
		if (!x->e.mem) {
			put(g, (uint8_t)(0xc0 | ((x->reg & 7) << 3) | (x->e.reg & 7)));
		} else {
			int d8 = x->e.disp >= -128 && x->e.disp < 128;
			int mod = d8 ? 1 : 2;
			if (x->e.index) {
				put(g, (uint8_t)((mod << 6) | ((x->reg & 7) << 3) | 4));
				put(g, (uint8_t)((x->e.scale << 6) | (6 << 3) | 7));
			} else {
				put(g, (uint8_t)((mod << 6) | ((x->reg & 7) << 3) | 7));
			}
			if (d8) {
				put(g, (uint8_t)x->e.disp);
			} else {
				for (int k = 0; k < 4; k++)
					put(g, (uint8_t)(x->e.disp >> (8 * k)));
			}
		}
	}
	for (int k = 0; k < x->isz; k++)
		put(g, (uint8_t)(x->imm >> (8 * k)));
	g->ninsn++;
}

/* Updates the undefined-flag set for an instruction that defines def and
 * leaves undef undefined. */
static void fl(struct gen *g, uint32_t def, uint32_t undef)
{
	g->undef = (g->undef & ~def) | undef;
}

static void define_all(struct gen *g)
{
	struct enc x = { .w = 1, .op = 0x39, .modrm = 1, .reg = sreg(g), .e = ereg(sreg(g)) };
	emit(g, &x);
	g->undef = 0;
}

static void need(struct gen *g, uint32_t reads)
{
	if (g->undef & reads)
		define_all(g);
}

static uint32_t cc_reads(int cc)
{
	static const uint32_t r[8] = { OF, CF, ZF, CF | ZF, SF, PF, SF | OF, ZF | SF | OF };
	return r[(cc >> 1) & 7];
}

/* Operand size choice: 1, 2, 4, 8 -> encoding fields. */
static int pick_size(struct gen *g) { static const int s[4] = { 1, 2, 4, 8 }; return s[RN(g, 4)]; }

static void size_fields(struct enc *x, int size, int byte_op, int full_op)
{
	x->op = size == 1 ? byte_op : full_op;
	x->p66 = size == 2;
	x->w = size == 8;
}

/* Byte registers 4-7 mean AH..BH without REX and SPL..DIL with it;
 * destinations must not be SPL. */
static int needs_rex(const struct enc *x)
{
	return x->w || x->force_rex || (x->reg & 8) || (x->modrm && !x->e.mem && (x->e.reg & 8)) ||
	       (x->modrm && x->e.mem);
}

static void fix_byte_dest(struct enc *x, int size, int dest_is_reg_field)
{
	if (size != 1 || !needs_rex(x))
		return;
	if (dest_is_reg_field && x->reg == 4)
		x->reg = 0;
	if (!dest_is_reg_field && x->modrm && !x->e.mem && x->e.reg == 4)
		x->e.reg = 0;
}

static uint64_t imm_for(struct gen *g, int isz)
{
	static const uint64_t sp[] = { 0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff,
				       0x7fffffff, 0x80000000, 0xffffffff, 2, 3, 31, 32, 63 };
	uint64_t v = RN(g, 3) == 0 ? sp[RN(g, 16)] : R(g);
	return isz == 8 ? v : v & ((1ull << (8 * isz)) - 1);
}

/* ---- templates ---- */
static void t_alu(struct gen *g)
{
	int op = RN(g, 8), size = pick_size(g), form = RN(g, 4);
	struct enc x = { .force_rex = RN(g, 4) == 0 };
	if (op == 2 || op == 3)
		need(g, CF);
	int lock = op != 7 && RN(g, 6) == 0;
	switch (form) {
	case 0: /* E, G */
		size_fields(&x, size, op * 8, op * 8 + 1);
		x.modrm = 1;
		x.reg = sreg(g);
		x.e = RN(g, 2) ? ereg(dreg(g)) : emem(g, size, 0);
		x.lock = x.e.mem && lock;
		fix_byte_dest(&x, size, 0);
		break;
	case 1: /* G, E */
		size_fields(&x, size, op * 8 + 2, op * 8 + 3);
		x.modrm = 1;
		x.reg = dreg(g);
		x.e = RN(g, 2) ? ereg(sreg(g)) : emem(g, size, 0);
		fix_byte_dest(&x, size, 1);
		break;
	case 2: { /* E, imm (80/81/83) */
		int kind = size == 1 ? 0 : RN(g, 2);
		x.op = size == 1 ? 0x80 : kind ? 0x83 : 0x81;
		x.p66 = size == 2;
		x.w = size == 8;
		x.modrm = 1;
		x.reg = op;
		x.e = RN(g, 2) ? ereg(dreg(g)) : emem(g, size, 0);
		x.lock = x.e.mem && lock;
		x.isz = size == 1 || kind ? 1 : size == 2 ? 2 : 4;
		x.imm = imm_for(g, x.isz);
		fix_byte_dest(&x, size, 0);
		break;
	}
	default: /* AL/eAX, imm */
		size_fields(&x, size, op * 8 + 4, op * 8 + 5);
		x.isz = size == 1 ? 1 : size == 2 ? 2 : 4;
		x.imm = imm_for(g, x.isz);
		break;
	}
	emit(g, &x);
	fl(g, ALL, (op == 1 || op == 4 || op == 6) ? AF : 0);
}

static void t_test_incdec_neg(struct gen *g)
{
	int size = pick_size(g), k = RN(g, 5);
	struct enc x = { .force_rex = RN(g, 4) == 0, .modrm = 1 };
	x.p66 = size == 2;
	x.w = size == 8;
	x.e = RN(g, 2) ? ereg(dreg(g)) : emem(g, size, 0);
	switch (k) {
	case 0: /* TEST E, G */
		x.op = size == 1 ? 0x84 : 0x85;
		x.reg = sreg(g);
		emit(g, &x);
		fl(g, ALL, AF);
		return;
	case 1: /* TEST E, imm */
		x.op = size == 1 ? 0xf6 : 0xf7;
		x.reg = 0;
		x.isz = size == 1 ? 1 : size == 2 ? 2 : 4;
		x.imm = imm_for(g, x.isz);
		emit(g, &x);
		fl(g, ALL, AF);
		return;
	case 2: /* INC/DEC */
		x.op = size == 1 ? 0xfe : 0xff;
		x.reg = RN(g, 2);
		x.lock = x.e.mem && RN(g, 3) == 0;
		fix_byte_dest(&x, size, 0);
		emit(g, &x);
		fl(g, ALL & ~CF, 0);
		return;
	default: /* NOT, NEG */
		x.op = size == 1 ? 0xf6 : 0xf7;
		x.reg = k == 3 ? 2 : 3;
		x.lock = x.e.mem && RN(g, 3) == 0;
		fix_byte_dest(&x, size, 0);
		emit(g, &x);
		if (k != 3)
			fl(g, ALL, 0);
		return;
	}
}

static void mov_imm32(struct gen *g, int reg, uint32_t v)
{
	struct enc x = { .op = 0xb8, .reg = reg, .imm = v, .isz = 4 };
	emit(g, &x);
}

static void t_shift(struct gen *g)
{
	int size = pick_size(g), bits = 8 * size, op = RN(g, 8), form = RN(g, 3);
	int cnt;
	struct enc x = { .force_rex = RN(g, 4) == 0, .modrm = 1, .reg = op };
	static const int cnts[] = { 0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255 };
	cnt = RN(g, 2) ? cnts[RN(g, 16)] : RN(g, 256);
	if (form == 1)
		cnt = 1;
	if (form == 2) {
		mov_imm32(g, 1, (uint32_t)cnt | (uint32_t)(R(g) & 0xffffff00u));
	}
	x.p66 = size == 2;
	x.w = size == 8;
	x.op = form == 0 ? (size == 1 ? 0xc0 : 0xc1) : form == 1 ? (size == 1 ? 0xd0 : 0xd1) :
	       (size == 1 ? 0xd2 : 0xd3);
	if (form == 0) {
		x.isz = 1;
		x.imm = (uint64_t)cnt;
	}
	x.e = RN(g, 3) ? ereg(dreg(g)) : emem(g, size, 0);
	if (form == 2 && !x.e.mem && x.e.reg == 1)
		x.e.reg = 0;
	fix_byte_dest(&x, size, 0);
	if (op == 2 || op == 3)
		need(g, CF);
	emit(g, &x);
	int m = cnt & (size == 8 ? 63 : 31);
	if (m == 0)
		return;
	if (op <= 3) {          /* rotates: CF, OF (OF undefined if count > 1) */
		fl(g, CF | OF, m == 1 ? 0 : OF);
		return;
	}
	uint32_t u = AF;
	if (m > 1)
		u |= OF;
	if (m >= bits)
		u |= CF | (op == 7 ? 0 : OF);
	fl(g, ALL, u);
}

static void t_shxd(struct gen *g)
{
	int size = 2 << RN(g, 3), bits = 8 * size;
	int cnt = RN(g, 2) ? RN(g, 64) : RN(g, 4);
	int byc = RN(g, 2);
	if (size == 2)
		cnt %= 17;
	struct enc x = { .map = 1, .modrm = 1, .reg = sreg(g), .p66 = size == 2, .w = size == 8 };
	int left = RN(g, 2);
	x.op = left ? (byc ? 0xa5 : 0xa4) : (byc ? 0xad : 0xac);
	if (byc)
		mov_imm32(g, 1, (uint32_t)cnt);
	else {
		x.isz = 1;
		x.imm = (uint64_t)cnt;
	}
	x.e = RN(g, 3) ? ereg(dreg(g)) : emem(g, size, 0);
	if (byc && !x.e.mem && x.e.reg == 1)
		x.e.reg = 0;
	emit(g, &x);
	int m = cnt & (size == 8 ? 63 : 31);
	if (m == 0)
		return;
	fl(g, ALL, AF | (m > 1 ? OF : 0) | (m > bits ? ALL : 0));
}

static void t_muldiv(struct gen *g)
{
	int size = pick_size(g), k = RN(g, 4);
	struct enc x = { .force_rex = RN(g, 4) == 0, .modrm = 1 };
	x.p66 = size == 2;
	x.w = size == 8;
	x.e = RN(g, 2) ? ereg(sreg(g)) : emem(g, size, 0);
	if (k == 0) {            /* MUL/IMUL 1-op */
		x.op = size == 1 ? 0xf6 : 0xf7;
		x.reg = 4 + RN(g, 2);
		emit(g, &x);
		fl(g, CF | OF, SF | ZF | AF | PF);
		return;
	}
	if (k == 1) {            /* DIV/IDIV; often with a small high half */
		if (RN(g, 2)) {
			struct enc z = { .op = 0x31, .modrm = 1, .reg = 2, .e = ereg(2) };  /* xor edx,edx */
			emit(g, &z);
			fl(g, ALL, AF);
			if (size == 1) {
				struct enc a = { .map = 1, .op = 0xb6, .modrm = 1, .reg = 0, .e = ereg(0) };  /* movzx eax,al */
				emit(g, &a);
			}
		}
		x.op = size == 1 ? 0xf6 : 0xf7;
		x.reg = 6 + RN(g, 2);
		emit(g, &x);
		fl(g, 0, ALL);
		return;
	}
	if (size == 1)
		size = 4;
	x.p66 = size == 2;
	x.w = size == 8;
	x.reg = dreg(g);
	if (k == 2) {
		x.map = 1;
		x.op = 0xaf;
	} else {
		int b = RN(g, 2);
		x.op = b ? 0x6b : 0x69;
		x.isz = b ? 1 : size == 2 ? 2 : 4;
		x.imm = imm_for(g, x.isz);
	}
	emit(g, &x);
	fl(g, CF | OF, SF | ZF | AF | PF);
}

static void t_bits(struct gen *g)
{
	int size = 2 << RN(g, 3), k = RN(g, 8);
	struct enc x = { .map = 1, .modrm = 1, .p66 = size == 2, .w = size == 8 };
	switch (k) {
	case 0: case 1: { /* BT* reg offset / imm */
		int op = RN(g, 4);
		if (k == 0) {
			x.op = 0xa3 + op * 8;
			x.reg = dreg(g);
			x.e = RN(g, 2) ? ereg(dreg(g)) : emem(g, size, 0);
			if (x.e.mem) {
				/* keep the bit offset inside the data area */
				struct enc a = { .op = 0x81, .modrm = 1, .reg = 4, .e = ereg(x.reg),
						 .isz = 4, .imm = 0x3ff, .w = 1 };
				emit(g, &a);
				fl(g, ALL, AF);
			} else if (x.e.reg == x.reg) {
				x.reg = x.reg == 0 ? 1 : 0;
			}
		} else {
			x.op = 0xba;
			x.reg = 4 + op;
			x.e = RN(g, 2) ? ereg(dreg(g)) : emem(g, size, 0);
			x.isz = 1;
			x.imm = (uint64_t)RN(g, 256);
		}
		x.lock = x.e.mem && op && RN(g, 3) == 0;
		emit(g, &x);
		fl(g, CF, OF | SF | AF | PF);
		return;
	}
	case 2: /* BSF/BSR, TZCNT/LZCNT */
		x.op = 0xbc + RN(g, 2);
		x.rep = RN(g, 2) ? 0xf3 : 0;
		x.reg = dreg(g);
		x.e = RN(g, 2) ? ereg(sreg(g)) : emem(g, size, 0);
		emit(g, &x);
		if (x.rep)
			fl(g, CF | ZF, OF | SF | AF | PF);
		else
			fl(g, ZF, CF | OF | SF | AF | PF);
		return;
	case 3: /* POPCNT */
		x.op = 0xb8;
		x.rep = 0xf3;
		x.reg = dreg(g);
		x.e = RN(g, 2) ? ereg(sreg(g)) : emem(g, size, 0);
		emit(g, &x);
		fl(g, ALL, 0);
		return;
	case 4: /* BSWAP */
		x.op = 0xc8;
		x.modrm = 0;
		x.p66 = 0;
		x.w = RN(g, 2);
		x.reg = dreg(g);
		emit(g, &x);
		return;
	case 5: { /* XADD / CMPXCHG */
		int s = pick_size(g);
		x.p66 = s == 2;
		x.w = s == 8;
		x.op = (RN(g, 2) ? 0xc0 : 0xb0) + (s != 1);
		x.reg = dreg(g);
		x.e = RN(g, 2) ? ereg(dreg(g)) : emem(g, s, 0);
		x.lock = x.e.mem && RN(g, 2);
		fix_byte_dest(&x, s, 1);
		fix_byte_dest(&x, s, 0);
		emit(g, &x);
		fl(g, ALL, 0);
		return;
	}
	case 6: /* CMPXCHG8B/16B */
		x.op = 0xc7;
		x.reg = 1;
		x.p66 = 0;
		x.w = RN(g, 2);
		x.e = emem(g, 16, 16);
		x.lock = RN(g, 2);
		emit(g, &x);
		fl(g, ZF, 0);
		return;
	default: { /* XCHG */
		int s = pick_size(g);
		struct enc y = { .modrm = 1, .op = s == 1 ? 0x86 : 0x87, .p66 = s == 2, .w = s == 8,
				 .reg = dreg(g) };
		y.e = RN(g, 2) ? ereg(dreg(g)) : emem(g, s, 0);
		fix_byte_dest(&y, s, 1);
		fix_byte_dest(&y, s, 0);
		emit(g, &y);
		return;
	}
	}
}

static void t_move(struct gen *g)
{
	int size = pick_size(g), k = RN(g, 10);
	struct enc x = { .force_rex = RN(g, 4) == 0, .modrm = 1 };
	x.p66 = size == 2;
	x.w = size == 8;
	switch (k) {
	case 0: /* MOV E,G / G,E */
		x.op = (size == 1 ? 0x88 : 0x89) + (RN(g, 2) ? 2 : 0);
		x.reg = (x.op & 2) ? dreg(g) : sreg(g);
		x.e = RN(g, 2) ? ereg((x.op & 2) ? sreg(g) : dreg(g)) : emem(g, size, 0);
		fix_byte_dest(&x, size, (x.op & 2) != 0);
		break;
	case 1: /* MOV E, imm */
		x.op = size == 1 ? 0xc6 : 0xc7;
		x.reg = 0;
		x.e = RN(g, 2) ? ereg(dreg(g)) : emem(g, size, 0);
		x.isz = size == 1 ? 1 : size == 2 ? 2 : 4;
		x.imm = imm_for(g, x.isz);
		fix_byte_dest(&x, size, 0);
		break;
	case 2: /* MOV r, imm */
		x.modrm = 0;
		x.op = size == 1 ? 0xb0 : 0xb8;
		x.reg = dreg(g);
		x.isz = size;
		x.imm = imm_for(g, size);
		if (size == 1 && needs_rex(&x) && (x.reg & 7) == 4)
			x.reg = 0;
		break;
	case 3: /* MOVZX/MOVSX */
		x.map = 1;
		x.op = (RN(g, 2) ? 0xb6 : 0xbe) + RN(g, 2);
		if (size == 1)
			x.p66 = 0, x.w = 0;
		x.reg = dreg(g);
		x.e = RN(g, 2) ? ereg(sreg(g)) : emem(g, 2, 0);
		break;
	case 4: /* MOVSXD */
		x.op = 0x63;
		x.reg = dreg(g);
		x.e = RN(g, 2) ? ereg(sreg(g)) : emem(g, 4, 0);
		break;
	case 5: { /* LEA with any registers */
		x.op = 0x8d;
		if (size == 1)
			x.w = 1;
		x.reg = dreg(g);
		x.e = emem(g, 1, 0);
		emit(g, &x);
		/* also an arbitrary-register SIB form */
		uint8_t b[16];
		int n = 0;
		int base = sreg(g), idx = sreg(g), sc = RN(g, 4), d = dreg(g);
		int rex = 0x48 | ((d & 8) ? 4 : 0) | ((idx & 8) ? 2 : 0) | ((base & 8) ? 1 : 0);
		if (RN(g, 2))
			b[n++] = 0x67;
		b[n++] = (uint8_t)rex;
		b[n++] = 0x8d;
		b[n++] = (uint8_t)(0x80 | ((d & 7) << 3) | 4);
		b[n++] = (uint8_t)((sc << 6) | ((idx & 7) << 3) | (base & 7));
		uint32_t disp = (uint32_t)R(g);
		memcpy(b + n, &disp, 4);
		n += 4;
		for (int j = 0; j < n; j++)
			put(g, b[j]);
		g->ninsn++;
		return;
	}
	case 6: { /* CMOVcc */
		int cc = RN(g, 16);
		need(g, cc_reads(cc));
		x.map = 1;
		x.op = 0x40 + cc;
		if (size == 1)
			x.w = 0;
		x.reg = dreg(g);
		x.e = RN(g, 2) ? ereg(sreg(g)) : emem(g, size, 0);
		break;
	}
	case 7: { /* SETcc */
		int cc = RN(g, 16);
		need(g, cc_reads(cc));
		x.map = 1;
		x.op = 0x90 + cc;
		x.p66 = x.w = 0;
		x.reg = 0;
		x.e = RN(g, 2) ? ereg(dreg(g)) : emem(g, 1, 0);
		fix_byte_dest(&x, 1, 0);
		break;
	}
	case 8: { /* CBW.., CWD.., LAHF, SAHF, CLC, STC, CMC */
		static const uint8_t ops[] = { 0x98, 0x99, 0x9f, 0x9e, 0xf8, 0xf9, 0xf5 };
		int j = RN(g, 7);
		struct enc y = { .op = ops[j], .p66 = j < 2 && size == 2, .w = j < 2 && size == 8 };
		if (j == 2)
			need(g, ALL & ~OF);
		if (j == 6)
			need(g, CF);
		emit(g, &y);
		if (j == 3)
			fl(g, ALL & ~OF, 0);
		if (j >= 4)
			fl(g, CF, 0);
		return;
	}
	default: { /* MOV moffs (absolute address of the data area) */
		uint8_t op = (uint8_t)(0xa0 + RN(g, 4));
		if (size == 1)
			op &= 0xfe;
		if (size == 2) put(g, 0x66);
		if (size == 8) put(g, 0x48);
		put(g, op);
		uint64_t a = ISA_DATA + (uint64_t)RN(g, 1024);
		for (int j = 0; j < 8; j++)
			put(g, (uint8_t)(a >> (8 * j)));
		g->ninsn++;
		return;
	}
	}
	emit(g, &x);
}

static void t_stack(struct gen *g)
{
	int k = RN(g, 6), w = RN(g, 4) ? 0 : 1;   /* 66: 16-bit push/pop */
	struct enc x = { .p66 = w };
	switch (k) {
	case 0: x.op = 0x50; x.reg = sreg(g); break;
	case 1: x.op = 0x58; x.reg = dreg(g); break;
	case 2: x.op = RN(g, 2) ? 0x68 : 0x6a; x.isz = x.op == 0x6a ? 1 : w ? 2 : 4; x.imm = imm_for(g, x.isz); break;
	case 3: x.op = 0xff; x.modrm = 1; x.reg = 6; x.e = emem(g, 8, 0); break;
	case 4: x.op = 0x8f; x.modrm = 1; x.reg = 0; x.e = RN(g, 2) ? emem(g, 8, 0) : ereg(dreg(g)); break;
	default: { /* ENTER/LEAVE pair or CALL +0 / POP */
		if (RN(g, 2)) {
			/* nested levels read the old frame: point RBP at the stack */
			static const uint8_t lea_rbp[5] = { 0x48, 0x8d, 0x6c, 0x24, 0xc0 };
			for (int j = 0; j < 5; j++)
				put(g, lea_rbp[j]);
			g->ninsn++;
			struct enc e = { .op = 0xc8, .isz = 3, .imm = (uint64_t)RN(g, 64) | ((uint64_t)RN(g, 4) << 16) };
			emit(g, &e);
			struct enc l = { .op = 0xc9 };
			emit(g, &l);
		} else {
			struct enc cl = { .op = 0xe8, .isz = 4, .imm = 0 };
			emit(g, &cl);
			struct enc p = { .op = 0x58, .reg = dreg(g) };
			emit(g, &p);
		}
		return;
	}
	}
	emit(g, &x);
}

static void lea_data(struct gen *g, int reg, int32_t off)
{
	struct enc x = { .op = 0x8d, .w = 1, .modrm = 1, .reg = reg,
			 .e = { 1, 0, off, 0, 0 } };
	emit(g, &x);
}

static void t_string(struct gen *g)
{
	int size = pick_size(g), down = RN(g, 3) == 0;
	int op = RN(g, 5);   /* MOVS CMPS STOS LODS SCAS */
	static const uint8_t ops[5] = { 0xa4, 0xa6, 0xaa, 0xac, 0xae };
	int n = RN(g, 4) == 0 ? RN(g, 600) : RN(g, 40);
	int rep = RN(g, 4) ? (op == 1 || op == 4 ? (RN(g, 2) ? 0xf3 : 0xf2) : 0xf3) : 0;
	/* n * size stays inside the data area in either direction, or
	 * (sometimes) runs off its end or start: a page fault mid-way */
	if (RN(g, 6) == 0) {
		int32_t lo = down ? RN(g, 64) : (int32_t)ISA_DATA_SIZE - 64 + RN(g, 64) - 64;
		n = 100 + RN(g, 400);
		lea_data(g, 6, RN(g, 2) ? lo : 5000 + RN(g, 6000));
		lea_data(g, 7, RN(g, 2) ? lo : 5000 + RN(g, 6000));
	} else {
		lea_data(g, 6, 5000 + RN(g, 6000));
		lea_data(g, 7, 5000 + RN(g, 6000));
	}
	mov_imm32(g, 1, (uint32_t)n);
	if (down) {
		put(g, 0xfd);
		g->ninsn++;
	}
	if (RN(g, 8) == 0 && size == 1 && op == 0) {
		/* make part of the data equal so REPE CMPS runs a while */
		n = 0;
	}
	struct enc x = { .op = ops[op] + (size != 1), .p66 = size == 2, .w = size == 8, .rep = rep };
	emit(g, &x);
	if ((op == 1 || op == 4) && (!rep || n > 0))
		fl(g, ALL, 0);
	if (down) {
		put(g, 0xfc);
		g->ninsn++;
	}
}

static void t_branch(struct gen *g)
{
	int k = RN(g, 4);
	uint8_t tmp[64];
	struct gen sub = *g;
	sub.p = tmp;
	sub.n = 0;
	sub.cap = sizeof(tmp);
	t_alu(&sub);
	int skip = (int)sub.n;
	if (k == 0) {                        /* Jcc rel8 over an ALU op */
		int cc = RN(g, 16);
		need(g, cc_reads(cc));
		put(g, (uint8_t)(0x70 + cc));
		put(g, (uint8_t)skip);
	} else if (k == 1) {                 /* Jcc rel32 */
		int cc = RN(g, 16);
		need(g, cc_reads(cc));
		put(g, 0x0f);
		put(g, (uint8_t)(0x80 + cc));
		for (int j = 0; j < 4; j++)
			put(g, (uint8_t)(skip >> (8 * j)));
	} else if (k == 2) {                 /* LOOP/LOOPE/LOOPNE/JRCXZ */
		int op = RN(g, 4);
		if (op < 2)
			need(g, ZF);
		if (RN(g, 2))
			put(g, 0x67);
		put(g, (uint8_t)(0xe0 + op));
		put(g, (uint8_t)skip);
	} else {                             /* JMP rel8 over it */
		put(g, 0xeb);
		put(g, (uint8_t)skip);
	}
	g->ninsn++;
	uint32_t save = g->undef;
	for (int j = 0; j < skip; j++)
		put(g, tmp[j]);
	g->ninsn += sub.ninsn;
	/* the skipped op may or may not have run */
	g->undef = save | sub.undef;
}

/* ---- patterns the block optimizer rewrites (monitor/bt/fuse.c) ---- */
static void mov_rr(struct gen *g, int dst, int src)
{
	struct enc x = { .w = 1, .op = 0x89, .modrm = 1, .reg = src, .e = ereg(dst) };
	emit(g, &x);
}

/* Jcc over an ALU op, as in t_branch. */
static void jcc_over(struct gen *g, int cc)
{
	uint8_t tmp[64];
	struct gen sub = *g;
	sub.p = tmp;
	sub.n = 0;
	sub.cap = sizeof(tmp);
	t_alu(&sub);
	int skip = (int)sub.n;
	need(g, cc_reads(cc));
	if (RN(g, 2)) {
		put(g, (uint8_t)(0x70 + cc));
		put(g, (uint8_t)skip);
	} else {
		put(g, 0x0f);
		put(g, (uint8_t)(0x80 + cc));
		for (int j = 0; j < 4; j++)
			put(g, (uint8_t)(skip >> (8 * j)));
	}
	g->ninsn++;
	uint32_t save = g->undef;
	for (int j = 0; j < skip; j++)
		put(g, tmp[j]);
	g->ninsn += sub.ninsn;
	g->undef = save | sub.undef;
}

/* A register CMP or TEST, then a Jcc; operands often equal or adjacent so
 * that every condition goes both ways. */
static void fuse_cmp_jcc(struct gen *g)
{
	int size = pick_size(g), form = RN(g, 6), rel = RN(g, 3);
	int a = dreg(g), b = RN(g, 4) == 0 ? a : sreg(g);
	uint32_t v = (uint32_t)RN(g, 200) + 1;
	struct enc x = { .force_rex = RN(g, 4) == 0, .modrm = 1, .p66 = size == 2, .w = size == 8 };
	if (form == 3)
		a = 0;
	if (form <= 1 || form == 4) {
		if (rel < 2 && a != b) {
			mov_rr(g, a, b);
			if (rel == 1) {     /* a = b +- 1 */
				struct enc d = { .w = 1, .op = 0xff, .modrm = 1, .reg = RN(g, 2), .e = ereg(a) };
				emit(g, &d);
				fl(g, ALL & ~CF, 0);
			}
		}
	} else if (rel < 2) {
		mov_imm32(g, a, v);
		if (rel == 1)
			v += (uint32_t)RN(g, 3) - 1;
	}
	int isz = size == 1 ? 1 : size == 2 ? 2 : 4;
	uint64_t imm = rel < 2 ? v : imm_for(g, isz);
	switch (form) {
	case 0: x.op = size == 1 ? 0x38 : 0x39; x.reg = b; x.e = ereg(a); break;
	case 1: x.op = size == 1 ? 0x3a : 0x3b; x.reg = a; x.e = ereg(b); break;
	case 2:
		x.op = size == 1 ? 0x80 : RN(g, 2) ? 0x83 : 0x81;
		x.reg = 7;
		x.e = ereg(a);
		x.isz = x.op == 0x81 ? isz : 1;
		x.imm = imm & (x.isz == 1 ? 0xff : x.isz == 2 ? 0xffff : 0xffffffff);
		break;
	case 3:
		x.modrm = 0;
		x.force_rex = 0;
		x.op = size == 1 ? 0x3c : 0x3d;
		x.isz = isz;
		x.imm = imm & (isz == 1 ? 0xff : isz == 2 ? 0xffff : 0xffffffff);
		break;
	case 4: x.op = size == 1 ? 0x84 : 0x85; x.reg = b; x.e = ereg(a); break;
	default:
		x.op = size == 1 ? 0xf6 : 0xf7;
		x.reg = 0;
		x.e = ereg(a);
		x.isz = isz;
		x.imm = rel < 2 ? imm_for(g, isz) & v : imm_for(g, isz);
		break;
	}
	emit(g, &x);
	fl(g, ALL, form >= 4 ? AF : 0);
	jcc_over(g, RN(g, 16));
}

/* A memory CMP/TEST, or a register SUB/ADD/AND with an immediate or a
 * DEC, then a Jcc. */
static void fuse_other_jcc(struct gen *g)
{
	int size = pick_size(g), form = RN(g, 9);
	int isz = size == 1 ? 1 : size == 2 ? 2 : 4;
	struct enc x = { .force_rex = RN(g, 4) == 0, .modrm = 1, .p66 = size == 2, .w = size == 8 };
	uint32_t undef = 0;
	if (form <= 4) {
		x.e = emem(g, size, 0);
		switch (form) {
		case 0: x.op = size == 1 ? 0x38 : 0x39; x.reg = sreg(g); break;
		case 1: x.op = size == 1 ? 0x3a : 0x3b; x.reg = sreg(g); break;
		case 2: x.op = size == 1 ? 0x80 : 0x83; x.reg = 7; x.isz = 1; x.imm = imm_for(g, 1); break;
		case 3: x.op = size == 1 ? 0x84 : 0x85; x.reg = sreg(g); undef = AF; break;
		default:
			x.op = size == 1 ? 0xf6 : 0xf7;
			x.reg = 0;
			x.isz = isz;
			x.imm = imm_for(g, isz);
			undef = AF;
			break;
		}
		emit(g, &x);
		fl(g, ALL, undef);
	} else {
		int d = dreg(g);
		uint32_t v = (uint32_t)RN(g, 4) == 0 ? 0x80000000u : (uint32_t)RN(g, 300);
		if (RN(g, 2))
			mov_imm32(g, d, v);
		x.e = ereg(d);
		if (form == 8) {            /* DEC */
			x.op = size == 1 ? 0xfe : 0xff;
			x.reg = 1;
			fix_byte_dest(&x, size, 0);
			emit(g, &x);
			fl(g, ALL & ~CF, 0);
		} else {                    /* SUB, ADD, AND with an immediate */
			static const int ops[3] = { 5, 0, 4 };
			x.op = size == 1 ? 0x80 : RN(g, 2) ? 0x83 : 0x81;
			x.reg = ops[form - 5];
			x.isz = x.op == 0x81 ? isz : 1;
			x.imm = RN(g, 2) ? (v & (x.isz == 1 ? 0x7f : 0x7fffffff)) : imm_for(g, x.isz);
			fix_byte_dest(&x, size, 0);
			emit(g, &x);
			fl(g, ALL, form == 7 ? AF : 0);
		}
	}
	jcc_over(g, RN(g, 16));
}

/* A register rotate, flag-neutral instructions, then something that
 * overwrites the flags, reads them, or nothing (flags live at the end). */
static void fuse_rotate(struct gen *g)
{
	static const int cnts[] = { 0, 1, 2, 3, 7, 8, 31, 32, 33, 63, 64, 255 };
	int size = RN(g, 2) ? 8 : 4, form = RN(g, 3), cnt = cnts[RN(g, 12)];
	struct enc x = { .force_rex = RN(g, 4) == 0, .modrm = 1, .reg = RN(g, 2), .w = size == 8 };
	x.e = ereg(dreg(g));
	if (form == 1)
		cnt = 1;
	if (form == 2) {
		mov_imm32(g, 1, (uint32_t)cnt);
		if (x.e.reg == 1)
			x.e.reg = 0;
	}
	x.op = form == 0 ? 0xc1 : form == 1 ? 0xd1 : 0xd3;
	if (form == 0) {
		x.isz = 1;
		x.imm = (uint64_t)cnt;
	}
	emit(g, &x);
	int m = cnt & (size == 8 ? 63 : 31);
	if (m)
		fl(g, CF | OF, m == 1 ? 0 : OF);
	for (int k = RN(g, 3); k > 0; k--) {
		int d = dreg(g);
		switch (RN(g, 6)) {
		case 0: mov_rr(g, d, sreg(g)); break;
		case 1: mov_imm32(g, d, (uint32_t)R(g)); break;
		case 2: { struct enc l = { .w = 1, .op = 0x8d, .modrm = 1, .reg = d, .e = emem(g, 8, 0) };
			emit(g, &l); break; }
		case 3: { struct enc z = { .map = 1, .op = 0xb6, .modrm = 1, .reg = d, .e = ereg(sreg(g)), .force_rex = 1 };
			emit(g, &z); break; }
		case 4: { struct enc w = { .map = 1, .op = 0xc8, .reg = d, .w = RN(g, 2) };
			emit(g, &w); break; }
		default: { struct enc sx = { .w = 1, .op = 0x63, .modrm = 1, .reg = d, .e = ereg(sreg(g)) };
			emit(g, &sx); break; }
		}
	}
	switch (RN(g, 4)) {
	case 0: case 1: t_alu(g); break;
	case 2: fuse_cmp_jcc(g); break;
	}
}

static void t_fuse(struct gen *g)
{
	switch (RN(g, 3)) {
	case 0: fuse_cmp_jcc(g); break;
	case 1: fuse_other_jcc(g); break;
	default: fuse_rotate(g); break;
	}
}

/* ---- SSE ---- */
struct sse_t { uint8_t map, op, pfx, imm, ms, al; uint8_t flags; };
static const struct sse_t sse_ops[] = {
	{1, 0x58, 0, 0, 16, 1, 0}, {1, 0x58, 1, 0, 16, 1, 0}, {1, 0x58, 2, 0, 4, 0, 0}, {1, 0x58, 3, 0, 8, 0, 0},
	{1, 0x59, 0, 0, 16, 1, 0}, {1, 0x59, 3, 0, 8, 0, 0}, {1, 0x5c, 1, 0, 16, 1, 0}, {1, 0x5c, 2, 0, 4, 0, 0},
	{1, 0x5e, 0, 0, 16, 1, 0}, {1, 0x5e, 3, 0, 8, 0, 0}, {1, 0x5d, 1, 0, 16, 1, 0}, {1, 0x5f, 2, 0, 4, 0, 0},
	{1, 0x51, 1, 0, 16, 1, 0}, {1, 0x51, 2, 0, 4, 0, 0}, {1, 0x5a, 0, 0, 8, 0, 0}, {1, 0x5a, 1, 0, 16, 1, 0},
	{1, 0x5a, 3, 0, 8, 0, 0}, {1, 0x5b, 0, 0, 16, 1, 0}, {1, 0x5b, 1, 0, 16, 1, 0}, {1, 0x5b, 2, 0, 16, 1, 0},
	{1, 0xe6, 1, 0, 16, 1, 0}, {1, 0xe6, 2, 0, 8, 0, 0}, {1, 0xe6, 3, 0, 16, 1, 0},
	{1, 0x54, 0, 0, 16, 1, 0}, {1, 0x55, 1, 0, 16, 1, 0}, {1, 0x56, 0, 0, 16, 1, 0}, {1, 0x57, 1, 0, 16, 1, 0},
	{1, 0x14, 0, 0, 16, 1, 0}, {1, 0x15, 1, 0, 16, 1, 0}, {1, 0xc2, 0, 1, 16, 1, 0}, {1, 0xc2, 3, 1, 8, 0, 0},
	{1, 0xc6, 0, 1, 16, 1, 0}, {1, 0xc6, 1, 1, 16, 1, 0}, {1, 0x70, 1, 1, 16, 1, 0}, {1, 0x70, 2, 1, 16, 1, 0},
	{1, 0x70, 3, 1, 16, 1, 0}, {1, 0x7c, 1, 0, 16, 1, 0}, {1, 0x7d, 3, 0, 16, 1, 0}, {1, 0xd0, 1, 0, 16, 1, 0},
	{1, 0x12, 3, 0, 8, 0, 0}, {1, 0x16, 2, 0, 16, 1, 0},
	{1, 0x60, 1, 0, 16, 1, 0}, {1, 0x63, 1, 0, 16, 1, 0}, {1, 0x64, 1, 0, 16, 1, 0}, {1, 0x67, 1, 0, 16, 1, 0},
	{1, 0x6a, 1, 0, 16, 1, 0}, {1, 0x6b, 1, 0, 16, 1, 0}, {1, 0x6c, 1, 0, 16, 1, 0}, {1, 0x74, 1, 0, 16, 1, 0},
	{1, 0x76, 1, 0, 16, 1, 0}, {1, 0xd1, 1, 0, 16, 1, 0}, {1, 0xd3, 1, 0, 16, 1, 0}, {1, 0xd4, 1, 0, 16, 1, 0},
	{1, 0xd5, 1, 0, 16, 1, 0}, {1, 0xd8, 1, 0, 16, 1, 0}, {1, 0xda, 1, 0, 16, 1, 0}, {1, 0xdb, 1, 0, 16, 1, 0},
	{1, 0xdf, 1, 0, 16, 1, 0}, {1, 0xe0, 1, 0, 16, 1, 0}, {1, 0xe2, 1, 0, 16, 1, 0}, {1, 0xe4, 1, 0, 16, 1, 0},
	{1, 0xe5, 1, 0, 16, 1, 0}, {1, 0xe8, 1, 0, 16, 1, 0}, {1, 0xea, 1, 0, 16, 1, 0}, {1, 0xef, 1, 0, 16, 1, 0},
	{1, 0xf2, 1, 0, 16, 1, 0}, {1, 0xf4, 1, 0, 16, 1, 0}, {1, 0xf5, 1, 0, 16, 1, 0}, {1, 0xf6, 1, 0, 16, 1, 0},
	{1, 0xfb, 1, 0, 16, 1, 0}, {1, 0xfe, 1, 0, 16, 1, 0},
	{2, 0x00, 1, 0, 16, 1, 0}, {2, 0x04, 1, 0, 16, 1, 0}, {2, 0x0b, 1, 0, 16, 1, 0}, {2, 0x1d, 1, 0, 16, 1, 0},
	{2, 0x10, 1, 0, 16, 1, 0}, {2, 0x15, 1, 0, 16, 1, 0}, {2, 0x17, 1, 0, 16, 1, 1}, {2, 0x21, 1, 0, 4, 0, 0},
	{2, 0x33, 1, 0, 8, 0, 0}, {2, 0x29, 1, 0, 16, 1, 0}, {2, 0x37, 1, 0, 16, 1, 0}, {2, 0x3b, 1, 0, 16, 1, 0},
	{2, 0x40, 1, 0, 16, 1, 0}, {2, 0x41, 1, 0, 16, 1, 0},
	{3, 0x08, 1, 1, 16, 1, 0}, {3, 0x0b, 1, 1, 8, 0, 0}, {3, 0x0c, 1, 1, 16, 1, 0}, {3, 0x0e, 1, 1, 16, 1, 0},
	{3, 0x0f, 1, 1, 16, 1, 0}, {3, 0x21, 1, 1, 4, 0, 0}, {3, 0x40, 1, 1, 16, 1, 0}, {3, 0x42, 1, 1, 16, 1, 0},
	{3, 0x61, 1, 1, 16, 0, 1}, {3, 0x63, 1, 1, 16, 0, 1}, {3, 0x60, 1, 1, 16, 0, 1},
	/* moves */
	{1, 0x10, 0, 0, 16, 0, 0}, {1, 0x10, 2, 0, 4, 0, 0}, {1, 0x11, 3, 0, 8, 0, 0}, {1, 0x28, 1, 0, 16, 1, 0},
	{1, 0x29, 0, 0, 16, 1, 0}, {1, 0x6f, 1, 0, 16, 1, 0}, {1, 0x6f, 2, 0, 16, 0, 0}, {1, 0x7f, 2, 0, 16, 0, 0},
	{1, 0x7e, 2, 0, 8, 0, 0}, {1, 0xd6, 1, 0, 8, 0, 0}, {1, 0x2e, 1, 0, 8, 0, 1}, {1, 0x2f, 0, 0, 4, 0, 1},
};

static const uint64_t fvals[] = {
	0x3ff0000000000000ull, 0xbff8000000000000ull, 0x7ff0000000000000ull, 0xfff8000000000000ull,
	0x0000000000000001ull, 0x0000000000000000ull, 0x8000000000000000ull, 0x4340000000000000ull,
	0x3f8000003fc00000ull, 0x7f8000007fc00000ull, 0x0000000180000000ull, 0x4f0000004effffffull,
};

static void t_sse(struct gen *g)
{
	const struct sse_t *s = &sse_ops[RN(g, sizeof(sse_ops) / sizeof(sse_ops[0]))];
	int k = RN(g, 6);
	if (k == 0) {
		/* GPR transfers */
		static const struct { uint8_t op, pfx, w; } gx[] = {
			{0x6e, 1, 0}, {0x6e, 1, 1}, {0x7e, 1, 0}, {0x7e, 1, 1}, {0xd7, 1, 0}, {0x50, 0, 0},
			{0x50, 1, 0}, {0x2a, 3, 1}, {0x2a, 2, 0}, {0x2c, 3, 1}, {0x2d, 2, 0}, {0x2c, 2, 1},
			{0xc5, 1, 0}, {0xc4, 1, 0},
		};
		int j = RN(g, sizeof(gx) / sizeof(gx[0]));
		struct enc x = { .map = 1, .modrm = 1, .op = gx[j].op, .w = gx[j].w,
				 .p66 = gx[j].pfx == 1, .rep = gx[j].pfx == 2 ? 0xf3 : gx[j].pfx == 3 ? 0xf2 : 0 };
		int gdst = gx[j].op == 0x7e || gx[j].op == 0xd7 || gx[j].op == 0x50 || gx[j].op == 0x2c ||
			   gx[j].op == 0x2d || gx[j].op == 0xc5;
		if (gx[j].op == 0x7e) {
			x.reg = RN(g, 16);
			x.e = ereg(dreg(g));
		} else if (gdst) {
			x.reg = dreg(g);
			x.e = ereg(RN(g, 16));
		} else {
			x.reg = RN(g, 16);
			x.e = ereg(sreg(g));
		}
		if (gx[j].op == 0xc4 || gx[j].op == 0xc5) {
			x.isz = 1;
			x.imm = (uint64_t)RN(g, 256);
		}
		emit(g, &x);
		return;
	}
	struct enc x = { .map = s->map, .op = s->op, .modrm = 1, .reg = RN(g, 16),
			 .p66 = s->pfx == 1, .rep = s->pfx == 2 ? 0xf3 : s->pfx == 3 ? 0xf2 : 0 };
	x.e = RN(g, 3) ? ereg(RN(g, 16)) : emem(g, s->ms, s->al ? 16 : 0);
	if (x.e.mem && s->al && RN(g, 20) == 0)
		x.e.disp |= 8;                       /* misaligned: #GP */
	if (s->imm) {
		x.isz = 1;
		x.imm = (uint64_t)RN(g, 256);
		if (s->op == 0xc2 && s->map == 1)
			x.imm &= 7;
		if (s->map == 3 && (s->op >= 0x60))
			x.imm &= 0x7f;
	}
	emit(g, &x);
	if (s->flags)
		fl(g, ALL, 0);
}

/* Random encodings anywhere in the SSE opcode space that the decoder
 * accepts and the SSE executor claims (bt_sel_sse), with GPR operands
 * steered to registers the sequence may change. */
static void t_sse_rand(struct gen *g)
{
	for (int tries = 0; tries < 200; tries++) {
		uint8_t b[32];
		int n = 0, map = RN(g, 10) < 7 ? 1 : RN(g, 2) ? 2 : 3, pf = RN(g, 8);
		uint8_t op = (uint8_t)R(g);
		if (pf < 4)
			b[n++] = 0x66;
		else if (pf == 5)
			b[n++] = 0xf3;
		else if (pf == 6)
			b[n++] = 0xf2;
		int mem = RN(g, 3) == 0, reg = RN(g, 16), rm = RN(g, 16), w = RN(g, 4) == 0;
		int32_t disp = RN(g, (int)ISA_DATA_SIZE - 2048) & ~15;
		if (RN(g, 16) == 0)
			disp |= 8;
		uint8_t rex = (uint8_t)(0x40 | (w ? 8 : 0) | ((reg & 8) ? 4 : 0) | (mem ? 1 : ((rm & 8) ? 1 : 0)));
		int rexat = n;
		b[n++] = rex;
		b[n++] = 0x0f;
		if (map == 2) b[n++] = 0x38;
		if (map == 3) b[n++] = 0x3a;
		int opat = n;
		b[n++] = op;
		int mat = n;
		b[n++] = mem ? (uint8_t)(0x80 | ((reg & 7) << 3) | 7) : (uint8_t)(0xc0 | ((reg & 7) << 3) | (rm & 7));
		if (mem)
			for (int k = 0; k < 4; k++)
				b[n++] = (uint8_t)(disp >> (8 * k));
		b[n++] = (uint8_t)R(g);           /* immediate, if any */
		(void)opat;
		struct bt_insn in;
		if (bt_decode(b, (size_t)n, BT_MODE64, &in) || !bt_sel_sse(&in))
			continue;
		/* keep out of the test's exits: stores through rDI, MXCSR/FPU
		 * state loads, non-temporal GPR stores */
		int m1 = map == 1;
		if ((m1 && (op == 0xf7 || op == 0xae)))
			continue;
		/* GPR destinations in ModRM.reg or ModRM.rm */
		int gpr_reg = (m1 && (op == 0xd7 || op == 0x50 || op == 0x2c || op == 0x2d || op == 0xc5));
		int gpr_rm = (m1 && op == 0x7e && in.rep != 0xf3) || (map == 3 && op >= 0x14 && op <= 0x17);
		if (gpr_reg) {
			reg = dreg(g);
			b[rexat] = (uint8_t)((b[rexat] & ~4) | ((reg & 8) ? 4 : 0));
			b[mat] = (uint8_t)((b[mat] & ~0x38) | ((reg & 7) << 3));
		}
		if (gpr_rm && !mem) {
			rm = dreg(g);
			b[rexat] = (uint8_t)((b[rexat] & ~1) | ((rm & 8) ? 1 : 0));
			b[mat] = (uint8_t)((b[mat] & ~7) | (rm & 7));
		}
		if (bt_decode(b, (size_t)n, BT_MODE64, &in))
			continue;
		for (int k = 0; k < in.len; k++)
			put(g, b[k]);
		g->ninsn++;
		if ((m1 && (op == 0x2e || op == 0x2f)) || (map == 2 && op == 0x17) ||
		    (map == 3 && op >= 0x60 && op <= 0x63))
			fl(g, ALL, 0);
		return;
	}
}

/* MMX: all eight registers loaded from memory first (their initial
 * contents are whatever the FPU held), then random mm encodings. */
static void t_mmx(struct gen *g)
{
	for (int r = 0; r < 8; r++) {
		struct enc x = { .map = 1, .op = 0x6f, .modrm = 1, .reg = r, .e = emem(g, 8, 8) };
		emit(g, &x);
	}
	int n = 1 + RN(g, 8);
	for (int j = 0; j < n; j++) {
		for (int tries = 0; tries < 200; tries++) {
			uint8_t b[32];
			int k = 0, map = RN(g, 10) < 8 ? 1 : RN(g, 2) ? 2 : 3;
			int mem = RN(g, 3) == 0, reg = RN(g, 8), rm = RN(g, 8);
			int32_t disp = RN(g, (int)ISA_DATA_SIZE - 2048);
			if (RN(g, 8) == 0) {
				b[k++] = 0x66;              /* CVTPI2PD, CVT(T)PD2PI */
				disp &= ~15;
			}
			if (mem)
				b[k++] = 0x41;
			b[k++] = 0x0f;
			if (map == 2) b[k++] = 0x38;
			if (map == 3) b[k++] = 0x3a;
			uint8_t op = (uint8_t)R(g);
			b[k++] = op;
			int mat = k;
			b[k++] = mem ? (uint8_t)(0x80 | (reg << 3) | 7) : (uint8_t)(0xc0 | (reg << 3) | rm);
			if (mem)
				for (int q = 0; q < 4; q++)
					b[k++] = (uint8_t)(disp >> (8 * q));
			b[k++] = (uint8_t)R(g);
			struct bt_insn in;
			if (bt_decode(b, (size_t)k, BT_MODE64, &in) || !bt_sel_mmx(&in))
				continue;
			if (map == 1 && (op == 0xf7 || op == 0x77))
				continue;
			/* GPR destinations: MOVD r/m (7E), PEXTRW (C5), PMOVMSKB (D7);
			 * without REX.R/B only rax..rdi, minus rsp */
			static const int low[7] = { 0, 1, 2, 3, 5, 6, 7 };
			if (map == 1 && (op == 0xc5 || op == 0xd7))
				b[mat] = (uint8_t)((b[mat] & ~0x38) | low[RN(g, 7)] << 3);
			if (map == 1 && op == 0x7e && !mem)
				b[mat] = (uint8_t)((b[mat] & ~7) | low[RN(g, 7)]);
			if (bt_decode(b, (size_t)k, BT_MODE64, &in))
				continue;
			for (int q = 0; q < in.len; q++)
				put(g, b[q]);
			g->ninsn++;
			break;
		}
	}
	struct enc fx = { .map = 1, .op = 0xae, .modrm = 1, .reg = 0, .e = { 1, 0, 0x3000, 0, 0 } };
	emit(g, &fx);
	put(g, 0x0f);
	put(g, 0x77);
	g->ninsn++;
}

/* ---- x87 ---- */
static void t_x87(struct gen *g)
{
	int n = 2 + RN(g, 6);
	for (int j = 0; j < n; j++) {
		int k = RN(g, 11);
		struct enc x = { .modrm = 1 };
		switch (k) {
		case 0: case 1: { /* loads from memory */
			static const uint8_t op[4] = { 0xdd, 0xd9, 0xdb, 0xdf };
			int m = RN(g, 4);
			x.op = op[m];
			x.reg = m == 3 ? 5 : 0;     /* fild m64 */
			x.e = emem(g, 8, 8);
			emit(g, &x);
			break;
		}
		case 2: { /* constants */
			static const uint8_t c[] = { 0xe8, 0xee, 0xeb, 0xe9, 0xea, 0xec, 0xed };
			put(g, 0xd9);
			put(g, c[RN(g, 7)]);
			g->ninsn++;
			break;
		}
		case 3: case 4: { /* register arithmetic */
			static const uint8_t esc[3] = { 0xd8, 0xdc, 0xde };
			int e = RN(g, 3), op = RN(g, 8);
			if (op == 2 || op == 3)
				op = 0;
			put(g, esc[e]);
			put(g, (uint8_t)(0xc0 | (op << 3) | RN(g, 4)));
			g->ninsn++;
			break;
		}
		case 5: { /* memory arithmetic */
			static const uint8_t esc[4] = { 0xd8, 0xdc, 0xda, 0xde };
			x.op = esc[RN(g, 4)];
			x.reg = RN(g, 8);
			if (x.reg == 2 || x.reg == 3)
				x.reg = 1;
			x.e = emem(g, 8, 8);
			emit(g, &x);
			break;
		}
		case 6: { /* one-operand */
			static const uint8_t o[] = { 0xe0, 0xe1, 0xfa, 0xfc, 0xc9, 0xe5, 0xe4, 0xf7, 0xf6, 0xfd, 0xf8 };
			put(g, 0xd9);
			put(g, o[RN(g, sizeof(o))]);
			g->ninsn++;
			break;
		}
		case 7: /* compare into EFLAGS */
			put(g, RN(g, 2) ? 0xdb : 0xdf);
			put(g, (uint8_t)((RN(g, 2) ? 0xe8 : 0xf0) | RN(g, 4)));
			g->ninsn++;
			fl(g, ALL, 0);
			break;
		case 8: { /* stores */
			static const uint8_t op[4] = { 0xdd, 0xd9, 0xdb, 0xdf };
			int m = RN(g, 4);
			x.op = op[m];
			x.reg = m == 3 ? 7 : m == 2 ? 3 : 3;
			if (m == 2 && RN(g, 2))
				x.reg = 1;                      /* fisttp m32 */
			x.e = emem(g, 8, 8);
			emit(g, &x);
			break;
		}
		case 9:
			if (RN(g, 3) == 0) {         /* FBSTP / FBLD */
				x.op = 0xdf;
				x.reg = RN(g, 2) ? 6 : 4;
				x.e = emem(g, 10, 8);
				emit(g, &x);
				break;
			}
			/* fall through */
		default: /* FNSTSW AX / FXCH */
			put(g, RN(g, 2) ? 0xdf : 0xd9);
			put(g, g->p[g->n - 1] == 0xdf ? 0xe0 : (uint8_t)(0xc8 | RN(g, 4)));
			g->ninsn++;
			break;
		}
	}
	/* FXSAVE the whole FPU state into the data area for comparison */
	struct enc fx = { .map = 1, .op = 0xae, .modrm = 1, .reg = 0, .e = { 1, 0, 0x3000, 0, 0 } };
	emit(g, &fx);
}

static uint64_t rval(struct gen *g)
{
	static const uint64_t sp[] = { 0, 1, ~0ull, 0x80, 0x7f, 0x8000, 0x7fff, 0x80000000ull,
				       0x7fffffffull, 0x8000000000000000ull, 0x7fffffffffffffffull,
				       0xffffffffull, 0x100000000ull, 2, 10, 0xff };
	switch (RN(g, 6)) {
	case 0: case 1: return sp[RN(g, 16)];
	case 2: return R(g) & 0xff;
	case 3: return R(g) & 0xffffffffull;
	default: return R(g);
	}
}

void isa_gen(struct isa_case *t, uint64_t *rng, int kind)
{
	struct gen g = { rng, t->code, 0, sizeof(t->code) - 16, 0, 0 };
	memset(&t->in, 0, sizeof(t->in));
	for (int r = 0; r < 16; r++)
		t->in.r[r] = rval(&g);
	t->in.r[CPU_RSP] = ISA_RSP0;
	t->in.r[14] = R(&g) & 0xff;
	t->in.r[15] = ISA_DATA;
	t->in.rflags = 0x202 | (R(&g) & (CF | PF | AF | ZF | SF | OF));
	t->in.mxcsr = 0x1f80;
	if (RN(&g, 4) == 0)
		t->in.mxcsr |= (uint32_t)RN(&g, 4) << 13 | (RN(&g, 4) == 0 ? 0x8040 : 0);
	for (int k = 0; k < 16; k++) {
		for (int j = 0; j < 2; j++)
			t->in.xmm[k].q[j] = RN(&g, 2) ? fvals[RN(&g, 12)] : R(&g);
	}
	for (size_t k = 0; k < ISA_DATA_SIZE; k += 8) {
		uint64_t v = RN(&g, 2) ? fvals[RN(&g, 12)] : rval(&g);
		if (RN(&g, 8) == 0)
			v = 0;
		memcpy(t->data + k, &v, 8);
	}
	for (size_t k = 0; k < ISA_STACK_SIZE; k += 8) {
		uint64_t v = R(&g);
		memcpy(t->stack + k, &v, 8);
	}
	int n = 1 + RN(&g, 6);
	t->fx_check = 0;
	if (kind == GEN_MIX)
		n = 4 + RN(&g, 10);
	for (int j = 0; j < n && g.n < g.cap - 64; j++) {
		int k = kind == GEN_MIX ? RN(&g, GEN_X87) : kind;
		switch (k) {
		case GEN_INT: if (RN(&g, 2)) t_alu(&g); else t_test_incdec_neg(&g); break;
		case GEN_SHIFT: if (RN(&g, 3)) t_shift(&g); else t_shxd(&g); break;
		case GEN_MULDIV: t_muldiv(&g); break;
		case GEN_BITS: t_bits(&g); break;
		case GEN_MOVE: t_move(&g); break;
		case GEN_STACK: t_stack(&g); break;
		case GEN_STRING: t_string(&g); break;
		case GEN_BRANCH: if (RN(&g, 2)) t_branch(&g); else t_fuse(&g); break;
		case GEN_SSE: if (RN(&g, 2)) t_sse(&g); else t_sse_rand(&g); break;
		case GEN_X87: t_x87(&g); j = n; break;
		case GEN_MMX: t_mmx(&g); j = n; break;
		}
	}
	t->len = g.n;
	t->flag_mask = ALL & ~g.undef;
	t->ninsn = g.ninsn;
	t->fx_check = kind == GEN_X87 || kind == GEN_MMX;
}
