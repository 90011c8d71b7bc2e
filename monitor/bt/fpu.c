/* x87 FPU: register stack with tags, TOP and C0-C3, the arithmetic run on
 * the host's own x87 unit with the guest control word (precision and
 * rounding; exceptions masked on the host and reflected into the guest
 * status word, an unmasked one sets ES and is reported as #MF by the next
 * waiting FP instruction), loads and stores of every memory format,
 * compares, constants, transcendentals, control instructions, FSTENV/
 * FLDENV/FSAVE/FRSTOR and FXSAVE/FXRSTOR. */
#include <string.h>
#include "monitor/bt/exec_int.h"

#define FSW_IE 0x01
#define FSW_SF 0x40
#define FSW_ES 0x80
#define FSW_C0 0x100
#define FSW_C1 0x200
#define FSW_C2 0x400
#define FSW_C3 0x4000
#define FSW_B 0x8000
#define TAG_VALID 0
#define TAG_ZERO 1
#define TAG_SPECIAL 2
#define TAG_EMPTY 3

static inline int top(const struct bt_cpu *c) { return (c->fsw >> 11) & 7; }
static inline void set_top(struct bt_cpu *c, int t) { c->fsw = (uint16_t)((c->fsw & ~0x3800) | ((t & 7) << 11)); }
static inline int phys(const struct bt_cpu *c, int i) { return (top(c) + i) & 7; }
static inline int tag(const struct bt_cpu *c, int r) { return (c->ftw >> (2 * r)) & 3; }
static inline void set_tag(struct bt_cpu *c, int r, int t) { c->ftw = (uint16_t)((c->ftw & ~(3 << (2 * r))) | (t << (2 * r))); }

static int tag_of(long double v)
{
	uint8_t b[16];
	memcpy(b, &v, 10);
	uint16_t se = (uint16_t)(b[8] | (b[9] << 8));
	uint64_t m;
	memcpy(&m, b, 8);
	if ((se & 0x7fff) == 0x7fff)
		return TAG_SPECIAL;
	if ((se & 0x7fff) == 0)
		return m == 0 ? TAG_ZERO : TAG_SPECIAL;
	return (m >> 63) ? TAG_VALID : TAG_SPECIAL;
}

static long double indefinite(void)
{
	long double v = 0;
	uint8_t b[10] = { 0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0xff };
	memcpy(&v, b, 10);
	return v;
}

/* ---- host x87 discipline ---- */
static inline uint16_t fp_enter(const struct bt_cpu *c)
{
	/* The compiler may already hold long double values in x87
	 * registers, so the stack itself must not be touched: edit the
	 * environment instead (guest control word, status flags and C1
	 * cleared). */
	uint16_t env[14], host;
	__asm__ volatile("fnstenv %0" : "=m"(env));
	host = env[0];
	env[0] = (uint16_t)(c->fcw | 0x3f);
	env[2] = (uint16_t)((env[2] & ~(0x3f | FSW_SF | FSW_ES | FSW_B | FSW_C0 | FSW_C1 | FSW_C2 | FSW_C3)) |
			    (c->fsw & (FSW_C0 | FSW_C2 | FSW_C3)));
	__asm__ volatile("fldenv %0" : : "m"(env));
	return host;
}

/* opsw: the status word captured right after the operation, for C1 (the
 * compiler's own x87 loads and stores between the operation and here
 * would change C1; the exception flags are sticky). */
static inline void fp_leave(struct bt_cpu *c, uint16_t host, uint16_t opsw)
{
	uint16_t sw;
	__asm__ volatile("fnstsw %0\n\tfnclex\n\tfldcw %1" : "=m"(sw) : "m"(host));
	/* C1 reports rounding up (or is cleared) for the operations run here */
	c->fsw = (uint16_t)((c->fsw & ~FSW_C1) | (opsw & FSW_C1) | (sw & 0x3f));
	if (sw & 0x3f & ~c->fcw)
		c->fsw |= FSW_ES | FSW_B;
}

/* Stack fault: invalid operation with SF; C1 = 1 for overflow. */
static void stack_fault(struct bt_cpu *c, int overflow)
{
	c->fsw = (uint16_t)((c->fsw & ~FSW_C1) | FSW_IE | FSW_SF | (overflow ? FSW_C1 : 0));
	if (!(c->fcw & FSW_IE))
		c->fsw |= FSW_ES | FSW_B;
}

static int unmasked_ie(const struct bt_cpu *c) { return !(c->fcw & 1); }

/* ST(i) for reading. An empty register is a stack underflow: *ok = 0 and
 * the result is the real indefinite; callers then store the masked
 * response (the indefinite) when IE is masked, or nothing. */
static long double st_get(struct bt_cpu *c, int i, int *ok)
{
	int r = phys(c, i);
	if (tag(c, r) == TAG_EMPTY) {
		if (*ok)
			stack_fault(c, 0);
		*ok = 0;
		return indefinite();
	}
	return c->st[r];
}

static void st_set(struct bt_cpu *c, int i, long double v)
{
	int r = phys(c, i);
	c->st[r] = v;
	set_tag(c, r, tag_of(v));
}

static int fpush(struct bt_cpu *c, long double v)
{
	int t = (top(c) - 1) & 7;
	if (tag(c, t) != TAG_EMPTY) {
		stack_fault(c, 1);
		if (unmasked_ie(c))
			return 0;
		v = indefinite();
	}
	else
		c->fsw &= (uint16_t)~FSW_C1;
	set_top(c, t);
	c->st[t] = v;
	set_tag(c, t, tag_of(v));
	return 1;
}

static void fpop(struct bt_cpu *c)
{
	set_tag(c, top(c), TAG_EMPTY);
	set_top(c, top(c) + 1);
}

void bt_fpu_check(struct bt_cpu *c)
{
	if (c->cr0 & 4)                      /* CR0.EM */
		bt_raise(c, BT_NM);
	if (c->cr0 & 8)                      /* CR0.TS */
		bt_raise(c, BT_NM);
}

static void fpu_wait_check(struct bt_cpu *c)
{
	bt_fpu_check(c);
	if (c->fsw & FSW_ES)
		bt_raise(c, BT_MF);
}

/* ---- memory operands ---- */
static long double ld_mem(struct bt_cpu *c, const struct bt_insn *i, int kind)
{
	int seg = bt_ea_seg(i);
	uint64_t off = bt_ea(c, i);
	long double v = 0;
	uint64_t x;
	uint16_t h;
	if (kind == 0 || kind == 2) {
		/* Loads of denormals and SNaNs set DE / IE: run them on the
		 * host FPU under the guest control word. */
		x = bt_read(c, seg, off, kind == 0 ? 4 : 8);
		h = fp_enter(c);
		if (kind == 0) {
			float f;
			uint32_t u = (uint32_t)x;
			memcpy(&f, &u, 4);
			__asm__ volatile("flds %1" : "=t"(v) : "m"(f));
		} else {
			double d;
			memcpy(&d, &x, 8);
			__asm__ volatile("fldl %1" : "=t"(v) : "m"(d));
		}
		fp_leave(c, h, 0);
		return v;
	}
	switch (kind) {
	case 0: { /* m32 float */
		x = bt_read(c, seg, off, 4);
		float f;
		uint32_t u = (uint32_t)x;
		memcpy(&f, &u, 4);
		__asm__ volatile("flds %1" : "=t"(v) : "m"(f));
		break;
	}
	case 1: { /* m32 int */
		int32_t n = (int32_t)bt_read(c, seg, off, 4);
		__asm__ volatile("fildl %1" : "=t"(v) : "m"(n));
		break;
	}
	case 2: { /* m64 float */
		x = bt_read(c, seg, off, 8);
		double d;
		memcpy(&d, &x, 8);
		__asm__ volatile("fldl %1" : "=t"(v) : "m"(d));
		break;
	}
	case 3: { /* m16 int */
		int16_t n = (int16_t)bt_read(c, seg, off, 2);
		__asm__ volatile("filds %1" : "=t"(v) : "m"(n));
		break;
	}
	case 4: { /* m64 int */
		int64_t n = (int64_t)bt_read(c, seg, off, 8);
		__asm__ volatile("fildll %1" : "=t"(v) : "m"(n));
		break;
	}
	default: { /* m80 */
		uint8_t b[16] = { 0 };
		bt_read_buf(c, seg, off, b, 10);
		memcpy(&v, b, 10);
		break;
	}
	}
	return v;
}

/* Stores v in format kind (0 f32, 2 f64, 5 f80, 1 i32, 3 i16, 4 i64;
 * trunc: FISTTP). Returns 0 when an unmasked exception suppresses it. */
static int st_mem(struct bt_cpu *c, const struct bt_insn *i, int kind, long double v, int trunc)
{
	int seg = bt_ea_seg(i);
	uint64_t off = bt_ea(c, i);
	uint16_t h, osw = 0;
	uint64_t x = 0;
	int n = 0;
	uint8_t b[16];
	if (kind == 5) {
		memcpy(b, &v, 10);
		bt_write_buf(c, seg, off, b, 10);
		return 1;
	}
	/* Probe for write faults before touching the FPU state. */
	int size = kind == 0 || kind == 1 ? 4 : kind == 3 ? 2 : 8;
	(void)bt_read_rmw(c, seg, off, size);
	h = fp_enter(c);
	switch (kind) {
	case 0: { float f; __asm__ volatile("fstps %0\n\tfnstsw %1" : "=m"(f), "=m"(osw) : "t"(v) : "st"); uint32_t u; memcpy(&u, &f, 4); x = u; break; }
	case 2: { double d; __asm__ volatile("fstpl %0\n\tfnstsw %1" : "=m"(d), "=m"(osw) : "t"(v) : "st"); memcpy(&x, &d, 8); break; }
	case 1: {
		int32_t k;
		if (trunc)
			__asm__ volatile("fisttpl %0\n\tfnstsw %1" : "=m"(k), "=m"(osw) : "t"(v) : "st");
		else
			__asm__ volatile("fistpl %0\n\tfnstsw %1" : "=m"(k), "=m"(osw) : "t"(v) : "st");
		x = (uint32_t)k;
		break;
	}
	case 3: {
		int16_t k;
		if (trunc)
			__asm__ volatile("fisttps %0\n\tfnstsw %1" : "=m"(k), "=m"(osw) : "t"(v) : "st");
		else
			__asm__ volatile("fistps %0\n\tfnstsw %1" : "=m"(k), "=m"(osw) : "t"(v) : "st");
		x = (uint16_t)k;
		break;
	}
	default: {
		int64_t k;
		if (trunc)
			__asm__ volatile("fisttpll %0\n\tfnstsw %1" : "=m"(k), "=m"(osw) : "t"(v) : "st");
		else
			__asm__ volatile("fistpll %0\n\tfnstsw %1" : "=m"(k), "=m"(osw) : "t"(v) : "st");
		x = (uint64_t)k;
		break;
	}
	}
	uint16_t before = c->fsw;
	fp_leave(c, h, osw);
	if ((c->fsw & FSW_ES) && !(before & FSW_ES) && (c->fsw & 0x3f & ~c->fcw & 0x0d))
		n = 1;   /* unmasked invalid/overflow/underflow: memory unchanged */
	if (!n)
		bt_write(c, seg, off, size, x);
	return !n;
}

/* ---- arithmetic ---- */
static long double arith(struct bt_cpu *c, int op, long double a, long double b)
{
	uint16_t h = fp_enter(c), sw = 0;
	/* st(0) op st(1) with st(0) as destination: no AT&T operand
	 * reversal issues. */
	switch (op) {
	case 0: __asm__ volatile("fadd %%st(1), %%st\n\tfnstsw %1" : "+t"(a), "=m"(sw) : "u"(b)); break;
	case 1: __asm__ volatile("fmul %%st(1), %%st\n\tfnstsw %1" : "+t"(a), "=m"(sw) : "u"(b)); break;
	case 4: __asm__ volatile("fsub %%st(1), %%st\n\tfnstsw %1" : "+t"(a), "=m"(sw) : "u"(b)); break;
	case 5: __asm__ volatile("fsubr %%st(1), %%st\n\tfnstsw %1" : "+t"(a), "=m"(sw) : "u"(b)); break;
	case 6: __asm__ volatile("fdiv %%st(1), %%st\n\tfnstsw %1" : "+t"(a), "=m"(sw) : "u"(b)); break;
	default: __asm__ volatile("fdivr %%st(1), %%st\n\tfnstsw %1" : "+t"(a), "=m"(sw) : "u"(b)); break;
	}
	fp_leave(c, h, sw);
	return a;
}

static void set_cc(struct bt_cpu *c, int c0, int c2, int c3)
{
	c->fsw = (uint16_t)((c->fsw & ~(FSW_C0 | FSW_C1 | FSW_C2 | FSW_C3)) |
			    (c0 ? FSW_C0 : 0) | (c2 ? FSW_C2 : 0) | (c3 ? FSW_C3 : 0));
}

/* Compare a with b on the host: returns host flags (ZF PF CF). */
static uint32_t fcompare(struct bt_cpu *c, long double a, long double b, int ordered)
{
	uint64_t fl;
	uint16_t h = fp_enter(c);
	if (ordered)
		__asm__ volatile("fcomi %%st(1), %%st\n\tpushfq\n\tpopq %0" : "=r"(fl) : "t"(a), "u"(b) : "cc");
	else
		__asm__ volatile("fucomi %%st(1), %%st\n\tpushfq\n\tpopq %0" : "=r"(fl) : "t"(a), "u"(b) : "cc");
	fp_leave(c, h, 0);
	return (uint32_t)fl & (BT_ZF | BT_PF_FLAG | BT_CF);
}

static void fcom_cc(struct bt_cpu *c, uint32_t f)
{
	set_cc(c, f & BT_CF, f & BT_PF_FLAG, f & BT_ZF);
}

/* ST(0) op memory, run as the one host instruction with the memory
 * operand so exception reporting (denormal, NaN priorities) is exact.
 * kind: 0 m32 float, 2 m64 float, 1 m32 int, 3 m16 int. Compare ops
 * (2, 3) return the condition codes in *sw. */
static long double arith_mem(struct bt_cpu *c, int op, long double a, int kind, uint64_t x, uint16_t *sw)
{
	float f;
	double d;
	int32_t l = (int32_t)x;
	int16_t w = (int16_t)x;
	uint32_t u = (uint32_t)x;
	memcpy(&f, &u, 4);
	memcpy(&d, &x, 8);
	uint16_t h = fp_enter(c);
#define MOP(sfx, var) \
	switch (op) { \
	case 0: __asm__ volatile("fadd" sfx " %2\n\tfnstsw %0" : "=m"(*sw), "+t"(a) : "m"(var)); break; \
	case 1: __asm__ volatile("fmul" sfx " %2\n\tfnstsw %0" : "=m"(*sw), "+t"(a) : "m"(var)); break; \
	case 2: case 3: __asm__ volatile("fcom" sfx " %1\n\tfnstsw %0" : "=m"(*sw) : "m"(var), "t"(a)); break; \
	case 4: __asm__ volatile("fsub" sfx " %2\n\tfnstsw %0" : "=m"(*sw), "+t"(a) : "m"(var)); break; \
	case 5: __asm__ volatile("fsubr" sfx " %2\n\tfnstsw %0" : "=m"(*sw), "+t"(a) : "m"(var)); break; \
	case 6: __asm__ volatile("fdiv" sfx " %2\n\tfnstsw %0" : "=m"(*sw), "+t"(a) : "m"(var)); break; \
	default: __asm__ volatile("fdivr" sfx " %2\n\tfnstsw %0" : "=m"(*sw), "+t"(a) : "m"(var)); break; \
	}
	switch (kind) {
	case 0: MOP("s", f) break;
	case 2: MOP("l", d) break;
	case 1: switch (op) {
		case 0: __asm__ volatile("fiaddl %2\n\tfnstsw %0" : "=m"(*sw), "+t"(a) : "m"(l)); break;
		case 1: __asm__ volatile("fimull %2\n\tfnstsw %0" : "=m"(*sw), "+t"(a) : "m"(l)); break;
		case 2: case 3: __asm__ volatile("ficoml %1\n\tfnstsw %0" : "=m"(*sw) : "m"(l), "t"(a)); break;
		case 4: __asm__ volatile("fisubl %2\n\tfnstsw %0" : "=m"(*sw), "+t"(a) : "m"(l)); break;
		case 5: __asm__ volatile("fisubrl %2\n\tfnstsw %0" : "=m"(*sw), "+t"(a) : "m"(l)); break;
		case 6: __asm__ volatile("fidivl %2\n\tfnstsw %0" : "=m"(*sw), "+t"(a) : "m"(l)); break;
		default: __asm__ volatile("fidivrl %2\n\tfnstsw %0" : "=m"(*sw), "+t"(a) : "m"(l)); break;
		}
		break;
	default: switch (op) {
		case 0: __asm__ volatile("fiadds %2\n\tfnstsw %0" : "=m"(*sw), "+t"(a) : "m"(w)); break;
		case 1: __asm__ volatile("fimuls %2\n\tfnstsw %0" : "=m"(*sw), "+t"(a) : "m"(w)); break;
		case 2: case 3: __asm__ volatile("ficoms %1\n\tfnstsw %0" : "=m"(*sw) : "m"(w), "t"(a)); break;
		case 4: __asm__ volatile("fisubs %2\n\tfnstsw %0" : "=m"(*sw), "+t"(a) : "m"(w)); break;
		case 5: __asm__ volatile("fisubrs %2\n\tfnstsw %0" : "=m"(*sw), "+t"(a) : "m"(w)); break;
		case 6: __asm__ volatile("fidivs %2\n\tfnstsw %0" : "=m"(*sw), "+t"(a) : "m"(w)); break;
		default: __asm__ volatile("fidivrs %2\n\tfnstsw %0" : "=m"(*sw), "+t"(a) : "m"(w)); break;
		}
		break;
	}
#undef MOP
	fp_leave(c, h, *sw);
	return a;
}

/* D8/DC/DA/DE memory and register arithmetic. */
static void ex_farith(struct bt_cpu *c, const struct bt_insn *i)
{
	uint8_t b = BT_BYTE(i->op);
	int op = i->reg & 7, ok = 1;
	fpu_wait_check(c);
	if (i->mod != 3) {
		int kind = b == 0xd8 ? 0 : b == 0xdc ? 2 : b == 0xda ? 1 : 3;
		uint64_t x = bt_read(c, bt_ea_seg(i), bt_ea(c, i), kind == 2 ? 8 : kind == 3 ? 2 : 4);
		long double a = st_get(c, 0, &ok);
		if (!ok) {
			if (unmasked_ie(c))
				return;
			if (op == 2 || op == 3) {
				set_cc(c, 1, 1, 1);
				if (op == 3)
					fpop(c);
			} else {
				st_set(c, 0, indefinite());
			}
			return;
		}
		uint16_t sw = 0;
		long double r = arith_mem(c, op, a, kind, x, &sw);
		if (op == 2 || op == 3) {
			set_cc(c, sw & FSW_C0, sw & FSW_C2, sw & FSW_C3);
			if (op == 3)
				fpop(c);
			return;
		}
		st_set(c, 0, r);
		return;
	}
	int s = i->rm & 7;
	if (b == 0xd8) {
		long double a = st_get(c, 0, &ok), m = st_get(c, s, &ok);
		if (!ok) {
			if (unmasked_ie(c))
				return;
			if (op == 2 || op == 3) {
				set_cc(c, 1, 1, 1);
				if (op == 3)
					fpop(c);
			} else {
				st_set(c, 0, indefinite());
			}
			return;
		}
		if (op == 2 || op == 3) {
			fcom_cc(c, fcompare(c, a, m, 1));
			if (op == 3)
				fpop(c);
			return;
		}
		st_set(c, 0, arith(c, op, a, m));
		return;
	}
	/* DC / DE register forms: ST(i) = ST(i) op ST(0), with the
	 * sub/div directions as encoded. */
	long double a = st_get(c, s, &ok), m = st_get(c, 0, &ok);
	if (!ok) {
		if (unmasked_ie(c))
			return;
		if (op == 2 || op == 3) {
			set_cc(c, 1, 1, 1);
			if (b == 0xde)
				fpop(c);
			if (b == 0xde || op == 3)
				fpop(c);
		} else {
			st_set(c, s, indefinite());
			if (b == 0xde)
				fpop(c);
		}
		return;
	}
	if (op == 2 || op == 3) {             /* DC D0/D8 aliases, DE D9 FCOMPP */
		fcom_cc(c, fcompare(c, m, a, 1));
		if (b == 0xde) {
			fpop(c);
			fpop(c);
		} else if (op == 3) {
			fpop(c);
		}
		return;
	}
	/* /4 FSUBR: ST(i) = ST(0) - ST(i); /5 FSUB: ST(i) - ST(0); /6, /7
	 * the same for division: arith(op, ST(0), ST(i)) in every case. */
	st_set(c, s, arith(c, op, m, a));
	if (b == 0xde)
		fpop(c);
}

static void ex_fcmov(struct bt_cpu *c, const struct bt_insn *i)
{
	static const int cc[4] = { 2, 4, 6, 10 };     /* B, E, BE, P */
	int ok = 1, neg = BT_BYTE(i->op) == 0xdb;
	fpu_wait_check(c);
	long double v = st_get(c, i->rm & 7, &ok);
	(void)st_get(c, 0, &ok);
	if (!ok && unmasked_ie(c))
		return;
	if (!ok)
		st_set(c, 0, indefinite());
	else if (bt_cond(c, cc[i->reg & 3] | neg))
		st_set(c, 0, v);
}

static void ex_fcomi(struct bt_cpu *c, const struct bt_insn *i)
{
	int ok = 1, ordered = (i->reg & 7) == 6;
	fpu_wait_check(c);
	long double a = st_get(c, 0, &ok), b = st_get(c, i->rm & 7, &ok);
	if (!ok && unmasked_ie(c))
		return;
	uint16_t c1 = c->fsw & FSW_C1;
	uint32_t f = ok ? fcompare(c, a, b, ordered) : BT_ZF | BT_PF_FLAG | BT_CF;
	if (ok)
		c->fsw = (uint16_t)((c->fsw & ~FSW_C1) | c1);
	bt_flags_set(c, BT_ARITH_FLAGS, f);
	/* C1 is left as it was: what this (AMD) host does; Intel documents
	 * it as cleared. */
	if (BT_BYTE(i->op) == 0xdf)
		fpop(c);
}

static void ex_fucom(struct bt_cpu *c, const struct bt_insn *i)
{
	int ok = 1;
	uint8_t b = BT_BYTE(i->op);
	fpu_wait_check(c);
	int s = b == 0xda ? 1 : i->rm & 7;
	long double a = st_get(c, 0, &ok), m = st_get(c, s, &ok);
	if (!ok && unmasked_ie(c))
		return;
	if (ok)
		fcom_cc(c, fcompare(c, a, m, 0));
	else
		set_cc(c, 1, 1, 1);
	if (b == 0xda) {                       /* FUCOMPP */
		fpop(c);
		fpop(c);
	} else if ((i->reg & 7) == 5) {
		fpop(c);
	}
}

/* D9/DD/DB/DF loads and stores. */
static void ex_fldst(struct bt_cpu *c, const struct bt_insn *i)
{
	uint8_t b = BT_BYTE(i->op);
	int op = i->reg & 7, ok = 1;
	fpu_wait_check(c);
	int kind;
	if (b == 0xd9) kind = 0;
	else if (b == 0xdd) kind = 2;
	else if (b == 0xdb) kind = op >= 4 ? 5 : 1;
	else kind = op == 5 || op == 7 ? 4 : 3;
	if (op == 0 || op == 5) {
		if (tag(c, (top(c) - 1) & 7) != TAG_EMPTY) {
			/* stack overflow is detected before the conversion */
			(void)bt_read(c, bt_ea_seg(i), bt_ea(c, i), 1);
			fpush(c, 0);
			return;
		}
		fpush(c, ld_mem(c, i, kind));
		return;
	}
	long double v = st_get(c, 0, &ok);
	if (!ok && unmasked_ie(c))
		return;
	if (!st_mem(c, i, kind, v, op == 1))
		return;
	if (op != 2)
		fpop(c);
}

static void ex_fld_reg(struct bt_cpu *c, const struct bt_insn *i)
{
	int ok = 1;
	fpu_wait_check(c);
	long double v = st_get(c, i->rm & 7, &ok);
	if (ok || !unmasked_ie(c))
		fpush(c, v);
}

static void ex_fst_reg(struct bt_cpu *c, const struct bt_insn *i)
{
	int ok = 1;
	fpu_wait_check(c);
	long double v = st_get(c, 0, &ok);
	if (!ok && unmasked_ie(c))
		return;
	st_set(c, i->rm & 7, v);
	if ((i->reg & 7) != 2)
		fpop(c);
}

static void ex_fxch(struct bt_cpu *c, const struct bt_insn *i)
{
	int ok = 1;
	fpu_wait_check(c);
	int s = i->rm & 7;
	long double a = st_get(c, 0, &ok), b = st_get(c, s, &ok);
	if (!ok && unmasked_ie(c))
		return;
	st_set(c, 0, b);
	st_set(c, s, a);
	c->fsw &= (uint16_t)~FSW_C1;
}

static void ex_ffree(struct bt_cpu *c, const struct bt_insn *i)
{
	fpu_wait_check(c);
	set_tag(c, phys(c, i->rm & 7), TAG_EMPTY);
	if (BT_BYTE(i->op) == 0xdf)
		fpop(c);
}

/* D9 E0-FF: one-operand and constant instructions. */
static void ex_d9misc(struct bt_cpu *c, const struct bt_insn *i)
{
	int code = ((i->reg & 7) << 3) | (i->rm & 7), ok = 1;
	long double a, b, r, r2;
	uint16_t h;
	fpu_wait_check(c);
	switch (code) {
	case 0x10: return;                                 /* FNOP */
	case 0x20: case 0x21:
		a = st_get(c, 0, &ok);
		if (ok)
			st_set(c, 0, code == 0x20 ? -a : __builtin_fabsl(a));
		else if (!unmasked_ie(c))
			st_set(c, 0, a);
		if (ok)
			c->fsw &= (uint16_t)~FSW_C1;
		return;
	case 0x24: /* FTST */
		a = st_get(c, 0, &ok);
		if (ok)
			fcom_cc(c, fcompare(c, a, 0.0L, 1));
		else if (!unmasked_ie(c))
			set_cc(c, 1, 1, 1);
		return;
	case 0x25: { /* FXAM */
		int r0 = phys(c, 0);
		uint8_t by[16];
		memcpy(by, &c->st[r0], 10);
		int sign = by[9] >> 7;
		int c0 = 0, c2 = 0, c3 = 0;
		if (tag(c, r0) == TAG_EMPTY) { c0 = 1; c3 = 1; }
		else {
			uint16_t e = (uint16_t)((by[8] | (by[9] << 8)) & 0x7fff);
			uint64_t m;
			memcpy(&m, by, 8);
			if (e == 0x7fff) { if ((m << 1) == 0) { c0 = 1; c2 = 1; } else c0 = 1; }
			else if (e == 0) { if (m == 0) c3 = 1; else { c2 = 1; c3 = 1; } }
			else if (m >> 63) c2 = 1;
		}
		set_cc(c, c0, c2, c3);
		c->fsw = (uint16_t)((c->fsw & ~FSW_C1) | (sign ? FSW_C1 : 0));
		return;
	}
	case 0x28 ... 0x2e: {
		h = fp_enter(c);
		switch (code) {
		case 0x28: __asm__ volatile("fld1" : "=t"(r)); break;
		case 0x29: __asm__ volatile("fldl2t" : "=t"(r)); break;
		case 0x2a: __asm__ volatile("fldl2e" : "=t"(r)); break;
		case 0x2b: __asm__ volatile("fldpi" : "=t"(r)); break;
		case 0x2c: __asm__ volatile("fldlg2" : "=t"(r)); break;
		case 0x2d: __asm__ volatile("fldln2" : "=t"(r)); break;
		default: __asm__ volatile("fldz" : "=t"(r)); break;
		}
		fp_leave(c, h, 0);
		fpush(c, r);
		return;
	}
	case 0x36: set_top(c, top(c) - 1); c->fsw &= (uint16_t)~FSW_C1; return;  /* FDECSTP */
	case 0x37: set_top(c, top(c) + 1); c->fsw &= (uint16_t)~FSW_C1; return;  /* FINCSTP */
	}
	a = st_get(c, 0, &ok);
	if (!ok) {
		if (code == 0x35 || code == 0x38)
			c->fsw &= (uint16_t)~FSW_C2;
		if (!unmasked_ie(c))
			st_set(c, 0, a);
		return;
	}
	uint16_t cc = 0;
	switch (code) {
	case 0x30: /* F2XM1 */
		h = fp_enter(c); __asm__ volatile("f2xm1\n\tfnstsw %1" : "+t"(a), "=m"(cc)); fp_leave(c, h, cc);
		st_set(c, 0, a); return;
	case 0x3a: /* FSQRT */
		h = fp_enter(c); __asm__ volatile("fsqrt\n\tfnstsw %1" : "+t"(a), "=m"(cc)); fp_leave(c, h, cc);
		st_set(c, 0, a); return;
	case 0x3c: /* FRNDINT */
		h = fp_enter(c); __asm__ volatile("frndint\n\tfnstsw %1" : "+t"(a), "=m"(cc)); fp_leave(c, h, cc);
		st_set(c, 0, a); return;
	case 0x3e: case 0x3f: /* FSIN, FCOS */
		h = fp_enter(c);
		if (code == 0x3e)
			__asm__ volatile("fsin\n\tfnstsw %1" : "+t"(a), "=m"(cc));
		else
			__asm__ volatile("fcos\n\tfnstsw %1" : "+t"(a), "=m"(cc));
		fp_leave(c, h, cc);
		c->fsw = (uint16_t)((c->fsw & ~FSW_C2) | (cc & FSW_C2));
		st_set(c, 0, a);
		return;
	case 0x32: /* FPTAN */
		h = fp_enter(c);
		__asm__ volatile("fptan\n\tfnstsw %2" : "=t"(r2), "=u"(r), "=m"(cc) : "0"(a));
		fp_leave(c, h, cc);
		c->fsw = (uint16_t)((c->fsw & ~FSW_C2) | (cc & FSW_C2));
		if (cc & FSW_C2)
			return;
		st_set(c, 0, r);
		fpush(c, r2);
		return;
	case 0x3b: /* FSINCOS */
		h = fp_enter(c);
		__asm__ volatile("fsincos\n\tfnstsw %2" : "=t"(r2), "=u"(r), "=m"(cc) : "0"(a));
		fp_leave(c, h, cc);
		c->fsw = (uint16_t)((c->fsw & ~FSW_C2) | (cc & FSW_C2));
		if (cc & FSW_C2)
			return;
		st_set(c, 0, r);
		fpush(c, r2);
		return;
	case 0x34: /* FXTRACT */
		h = fp_enter(c);
		__asm__ volatile("fxtract\n\tfnstsw %2" : "=t"(r2), "=u"(r), "=m"(cc) : "0"(a));
		fp_leave(c, h, cc);
		st_set(c, 0, r);
		fpush(c, r2);
		return;
	}
	b = st_get(c, 1, &ok);
	if (!ok) {
		if (code == 0x35 || code == 0x38)    /* FPREM(1): C2 (incomplete) cleared */
			c->fsw &= (uint16_t)~FSW_C2;
		if (!unmasked_ie(c)) {
			if (code == 0x31 || code == 0x33 || code == 0x39)
				fpop(c);
			st_set(c, 0, b);
		}
		return;
	}
	h = fp_enter(c);
	switch (code) {
	case 0x31: __asm__ volatile("fyl2x\n\tfnstsw %1" : "=t"(r), "=m"(cc) : "0"(a), "u"(b) : "st(1)"); break;
	case 0x33: __asm__ volatile("fpatan\n\tfnstsw %1" : "=t"(r), "=m"(cc) : "0"(a), "u"(b) : "st(1)"); break;
	case 0x39: __asm__ volatile("fyl2xp1\n\tfnstsw %1" : "=t"(r), "=m"(cc) : "0"(a), "u"(b) : "st(1)"); break;
	case 0x3d: __asm__ volatile("fscale\n\tfnstsw %1" : "=t"(r), "=m"(cc) : "0"(a), "u"(b)); break;
	default: /* 0x35 FPREM1, 0x38 FPREM */
		if (code == 0x35)
			__asm__ volatile("fprem1\n\tfnstsw %1" : "=t"(r), "=m"(cc) : "0"(a), "u"(b));
		else
			__asm__ volatile("fprem\n\tfnstsw %1" : "=t"(r), "=m"(cc) : "0"(a), "u"(b));
		fp_leave(c, h, cc);
		c->fsw = (uint16_t)((c->fsw & ~(FSW_C0 | FSW_C1 | FSW_C2 | FSW_C3)) |
				    (cc & (FSW_C0 | FSW_C1 | FSW_C2 | FSW_C3)));
		st_set(c, 0, r);
		return;
	}
	fp_leave(c, h, cc);
	if (code == 0x3d) {
		st_set(c, 0, r);
		return;
	}
	fpop(c);
	st_set(c, 0, r);
}

/* ---- control ---- */
static void fninit(struct bt_cpu *c)
{
	c->fcw = 0x37f;
	c->fsw = 0;
	c->ftw = 0xffff;
	c->fop = 0;
	c->fip = c->fdp = 0;
}

static void ex_fctl(struct bt_cpu *c, const struct bt_insn *i)
{
	uint8_t b = BT_BYTE(i->op);
	bt_fpu_check(c);
	if (b == 0xdb) {
		if ((i->rm & 7) == 2)
			c->fsw &= 0x7f00;                 /* FNCLEX */
		else if ((i->rm & 7) == 3)
			fninit(c);
		return;                                   /* FENI/FDISI/FSETPM: no-ops */
	}
	if (b == 0xdf) {                                  /* FNSTSW AX */
		reg_wr(c, i, 0, 2, c->fsw);
		return;
	}
	int seg = bt_ea_seg(i);
	uint64_t off = bt_ea(c, i);
	switch ((b << 4) | (i->reg & 7)) {
	case 0xd95: /* FLDCW */
		c->fcw = (uint16_t)(bt_read(c, seg, off, 2) | 0x40);
		if (c->fsw & 0x3f & ~c->fcw)
			c->fsw |= FSW_ES | FSW_B;
		else
			c->fsw &= (uint16_t)~(FSW_ES | FSW_B);
		return;
	case 0xd97: bt_write(c, seg, off, 2, c->fcw); return;     /* FNSTCW */
	case 0xdd7: bt_write(c, seg, off, 2, c->fsw); return;     /* FNSTSW m16 */
	}
}

/* FNSTENV/FLDENV image: 28 bytes (32-bit operand size) or 14 (16-bit). */
static int env_store(struct bt_cpu *c, uint8_t *p, int size)
{
	if (size == 2) {
		uint16_t w[7] = { c->fcw, c->fsw, c->ftw, (uint16_t)c->fip, 0, (uint16_t)c->fdp, 0 };
		memcpy(p, w, 14);
		return 14;
	}
	uint32_t d[7] = { 0xffff0000u | c->fcw, 0xffff0000u | c->fsw, 0xffff0000u | c->ftw,
			  (uint32_t)c->fip, (uint32_t)c->fop << 16, (uint32_t)c->fdp, 0xffff0000u };
	memcpy(p, d, 28);
	return 28;
}

static int env_load(struct bt_cpu *c, const uint8_t *p, int size)
{
	uint16_t w[14];
	if (size == 2) {
		memcpy(w, p, 14);
		c->fcw = w[0]; c->fsw = w[1]; c->ftw = w[2];
		return 14;
	}
	uint32_t d[7];
	memcpy(d, p, 28);
	c->fcw = (uint16_t)d[0]; c->fsw = (uint16_t)d[1]; c->ftw = (uint16_t)d[2];
	c->fip = d[3]; c->fdp = d[5];
	return 28;
}

static void ex_fenv(struct bt_cpu *c, const struct bt_insn *i)
{
	uint8_t buf[112];
	int seg = bt_ea_seg(i), size = i->opsize == 2 ? 2 : 4;
	uint64_t off = bt_ea(c, i);
	int op = i->reg & 7;
	bt_fpu_check(c);
	if (BT_BYTE(i->op) == 0xd9 && op == 6) {         /* FNSTENV */
		int n = env_store(c, buf, size);
		bt_write_buf(c, seg, off, buf, n);
		c->fcw |= 0x3f;
		return;
	}
	if (BT_BYTE(i->op) == 0xd9) {                    /* FLDENV */
		bt_read_buf(c, seg, off, buf, size == 2 ? 14 : 28);
		env_load(c, buf, size);
	} else if (op == 6) {                            /* FNSAVE */
		int n = env_store(c, buf, size);
		for (int k = 0; k < 8; k++)
			memcpy(buf + n + 10 * k, &c->st[phys(c, k)], 10);
		bt_write_buf(c, seg, off, buf, n + 80);
		fninit(c);
		return;
	} else {                                         /* FRSTOR */
		int n = size == 2 ? 14 : 28;
		bt_read_buf(c, seg, off, buf, n + 80);
		env_load(c, buf, size);
		for (int k = 0; k < 8; k++)
			memcpy(&c->st[phys(c, k)], buf + n + 10 * k, 10);
	}
	if (c->fsw & 0x3f & ~c->fcw)
		c->fsw |= FSW_ES | FSW_B;
	else
		c->fsw &= (uint16_t)~(FSW_ES | FSW_B);
}

/* ---- FXSAVE / FXRSTOR (0F AE /0 /1) ---- */
static void ex_fxsave(struct bt_cpu *c, const struct bt_insn *i)
{
	uint8_t img[512];
	int seg = bt_ea_seg(i);
	uint64_t off = bt_ea(c, i);
	bt_fpu_check(c);
	if ((c->seg[seg].base + off) & 15)
		bt_raise_err(c, BT_GP, 0);
	/* Reserved and software-available bytes (and xmm8-15 outside
	 * 64-bit mode) keep their memory contents, as on hardware. */
	bt_read_buf(c, seg, off, img, 512);
	memset(img, 0, 160);
	memcpy(img + 0, &c->fcw, 2);
	memcpy(img + 2, &c->fsw, 2);
	uint8_t ab = 0;
	for (int r = 0; r < 8; r++)
		if (tag(c, r) != TAG_EMPTY)
			ab |= (uint8_t)(1 << r);
	img[4] = ab;
	memcpy(img + 6, &c->fop, 2);
	if (i->opsize == 8) {
		memcpy(img + 8, &c->fip, 8);
		memcpy(img + 16, &c->fdp, 8);
	} else {
		uint32_t ip = (uint32_t)c->fip, dp = (uint32_t)c->fdp;
		memcpy(img + 8, &ip, 4);
		memcpy(img + 16, &dp, 4);
	}
	memcpy(img + 24, &c->mxcsr, 4);
	uint32_t mask = 0xffff;
	memcpy(img + 28, &mask, 4);
	for (int k = 0; k < 8; k++)
		memcpy(img + 32 + 16 * k, &c->st[phys(c, k)], 10);
	int nx = c->mode == BT_MODE64 ? 16 : 8;
	for (int k = 0; k < nx; k++)
		memcpy(img + 160 + 16 * k, &c->xmm[k], 16);
	bt_write_buf(c, seg, off, img, 512);
}

static void ex_fxrstor(struct bt_cpu *c, const struct bt_insn *i)
{
	uint8_t img[512];
	int seg = bt_ea_seg(i);
	uint64_t off = bt_ea(c, i);
	bt_fpu_check(c);
	if ((c->seg[seg].base + off) & 15)
		bt_raise_err(c, BT_GP, 0);
	bt_read_buf(c, seg, off, img, 512);
	uint32_t mx;
	memcpy(&mx, img + 24, 4);
	if (mx & ~0xffffu)
		bt_raise_err(c, BT_GP, 0);
	memcpy(&c->fcw, img + 0, 2);
	memcpy(&c->fsw, img + 2, 2);
	memcpy(&c->fop, img + 6, 2);
	if (i->opsize == 8) {
		memcpy(&c->fip, img + 8, 8);
		memcpy(&c->fdp, img + 16, 8);
	} else {
		uint32_t ip, dp;
		memcpy(&ip, img + 8, 4);
		memcpy(&dp, img + 16, 4);
		c->fip = ip;
		c->fdp = dp;
	}
	c->mxcsr = mx;
	for (int k = 0; k < 8; k++)
		memcpy(&c->st[phys(c, k)], img + 32 + 16 * k, 10);
	uint16_t ftw = 0;
	for (int r = 0; r < 8; r++)
		ftw |= (uint16_t)(((img[4] >> r) & 1 ? tag_of(c->st[r]) : TAG_EMPTY) << (2 * r));
	c->ftw = ftw;
	int nx = c->mode == BT_MODE64 ? 16 : 8;
	for (int k = 0; k < nx; k++)
		memcpy(&c->xmm[k], img + 160 + 16 * k, 16);
	if (c->fsw & 0x3f & ~c->fcw)
		c->fsw |= FSW_ES | FSW_B;
	else
		c->fsw &= (uint16_t)~(FSW_ES | FSW_B);
}

/* DF /4 FBLD m80bcd, DF /6 FBSTP m80bcd: packed BCD through the host. */
static void ex_fbcd(struct bt_cpu *c, const struct bt_insn *i)
{
	uint8_t b[16] = { 0 };
	int seg = bt_ea_seg(i), ok = 1;
	uint64_t off = bt_ea(c, i);
	fpu_wait_check(c);
	if ((i->reg & 7) == 4) {
		bt_read_buf(c, seg, off, b, 10);
		if (tag(c, (top(c) - 1) & 7) != TAG_EMPTY) {
			fpush(c, 0);
			return;
		}
		long double v;
		uint16_t h = fp_enter(c);
		__asm__ volatile("fbld %1" : "=t"(v) : "m"(*(const uint8_t (*)[10])b));
		fp_leave(c, h, 0);
		fpush(c, v);
		return;
	}
	long double v = st_get(c, 0, &ok);
	if (!ok && unmasked_ie(c))
		return;
	uint8_t probe[10];
	bt_read_buf(c, seg, off, probe, 10);      /* write faults come first */
	uint16_t h = fp_enter(c), sw = 0;
	__asm__ volatile("fbstp %0\n\tfnstsw %1" : "=m"(*(uint8_t (*)[10])b), "=m"(sw) : "t"(v) : "st");
	uint16_t before = c->fsw;
	fp_leave(c, h, sw);
	if ((c->fsw & FSW_ES) && !(before & FSW_ES) && (c->fsw & FSW_IE))
		return;                                 /* unmasked invalid: no store */
	bt_write_buf(c, seg, off, b, 10);
	fpop(c);
}

bt_exec_fn bt_sel_fpu(const struct bt_insn *i)
{
	uint8_t b = BT_BYTE(i->op);
	int op = i->reg & 7, reg = i->mod == 3;
	if (BT_MAP(i->op) == 1) {
		if (b == 0xae && !reg && op == 0) return ex_fxsave;
		if (b == 0xae && !reg && op == 1) return ex_fxrstor;
		return NULL;
	}
	if (BT_MAP(i->op) != 0 || b < 0xd8 || b > 0xdf)
		return NULL;
	switch (b) {
	case 0xd8: return ex_farith;
	case 0xdc: return ex_farith;
	case 0xda:
		if (!reg) return ex_farith;
		if (op < 4) return ex_fcmov;
		return ex_fucom;                                      /* FUCOMPP */
	case 0xde:
		return ex_farith;
	case 0xd9:
		if (!reg) {
			if (op == 0 || op == 2 || op == 3) return ex_fldst;
			if (op == 4 || op == 6) return ex_fenv;
			return ex_fctl;
		}
		if (op == 0) return ex_fld_reg;
		if (op == 1) return ex_fxch;
		if (op == 3) return ex_fst_reg;                       /* FSTP1 */
		return ex_d9misc;
	case 0xdb:
		if (!reg) return ex_fldst;
		if (op < 4) return ex_fcmov;
		if (op == 4) return ex_fctl;
		return ex_fcomi;
	case 0xdd:
		if (!reg) {
			if (op == 4 || op == 6) return ex_fenv;
			if (op == 7) return ex_fctl;
			return ex_fldst;
		}
		if (op == 0) return ex_ffree;
		if (op == 1) return ex_fxch;
		if (op == 2 || op == 3) return ex_fst_reg;
		return ex_fucom;
	default: /* 0xdf */
		if (!reg) {
			if (op == 4 || op == 6) return ex_fbcd;           /* FBLD/FBSTP */
			return ex_fldst;
		}
		if (op == 4) return ex_fctl;                          /* FNSTSW AX */
		if (op == 5 || op == 6) return ex_fcomi;
		if (op == 0) return ex_ffree;                         /* FFREEP */
		if (op == 1) return ex_fxch;
		return ex_fst_reg;                                    /* FSTP8/9 aliases */
	}
}
