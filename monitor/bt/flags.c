/* Lazy arithmetic flags of the BT engine: materialization from the cc_*
 * state (see exec_int.h for the encoding), condition evaluation with fast
 * paths for CMP/SUB and logic results, and RFLAGS get/set. */
#include "monitor/bt/exec_int.h"

static inline uint32_t szp(uint64_t dst, uint64_t sign)
{
	uint32_t f = 0;
	if (dst == 0)
		f |= BT_ZF;
	if (dst & sign)
		f |= BT_SF;
	if (!__builtin_parity((uint32_t)(dst & 0xff)))
		f |= BT_PF_FLAG;
	return f;
}

/* CF and OF of a rotate of size index sz with result r. */
static uint32_t rot_flags(uint32_t op, uint64_t r)
{
	int bits = 8 << CC_SZ(op);
	int msb = (int)((r >> (bits - 1)) & 1), cf, of;
	if (CC_KIND(op) == CC_ROL) {
		cf = (int)(r & 1);
		of = msb ^ cf;
	} else {
		cf = msb;
		of = msb ^ (int)((r >> (bits - 2)) & 1);
	}
	return (cf ? BT_CF : 0) | (of ? BT_OF_FLAG : 0);
}

static uint32_t cc_flags_of(const struct bt_cpu *c, uint32_t op);

uint32_t bt_cc_flags(const struct bt_cpu *c)
{
	return cc_flags_of(c, c->cc_op);
}

static uint32_t cc_flags_of(const struct bt_cpu *c, uint32_t op)
{
	int sz = CC_SZ(op), bits = 8 << sz;
	uint64_t mask = bits == 64 ? ~0ull : (1ull << bits) - 1, sign = 1ull << (bits - 1);
	uint64_t d = c->cc_dst & mask, a = c->cc_src1 & mask, b = c->cc_src2 & mask;
	uint32_t f;
	int cf, cin;

	switch (CC_KIND(op)) {
	case CC_ROL:
	case CC_ROR:
		return (cc_flags_of(c, c->cc_rot_op) & ~(uint32_t)(BT_CF | BT_OF_FLAG)) |
		       rot_flags(op, c->cc_rot);
	case CC_EFLAGS:
		return (uint32_t)c->rflags & BT_ARITH_FLAGS;
	case CC_ADD:
	case CC_ADC:
		f = szp(d, sign);
		if (CC_KIND(op) == CC_ADC) {
			cin = ((d - a - b) & mask) != 0;
			cf = cin ? d <= a : d < a;
		} else {
			cf = d < a;
		}
		if (cf)
			f |= BT_CF;
		if ((a ^ b ^ d) & 0x10)
			f |= BT_AF;
		if ((a ^ d) & (b ^ d) & sign)
			f |= BT_OF_FLAG;
		return f;
	case CC_SUB:
	case CC_SBB:
		f = szp(d, sign);
		if (CC_KIND(op) == CC_SBB) {
			cin = ((a - b - d) & mask) != 0;
			cf = cin ? a <= b : a < b;
		} else {
			cf = a < b;
		}
		if (cf)
			f |= BT_CF;
		if ((a ^ b ^ d) & 0x10)
			f |= BT_AF;
		if ((a ^ b) & (a ^ d) & sign)
			f |= BT_OF_FLAG;
		return f;
	case CC_LOGIC:
		return szp(d, sign);
	case CC_INC:
	case CC_DEC:
		f = szp(d, sign) | (c->cc_src2 & 1 ? BT_CF : 0);
		if ((a ^ d) & 0x10)
			f |= BT_AF;
		if (CC_KIND(op) == CC_INC ? d == sign : a == sign)
			f |= BT_OF_FLAG;
		return f;
	case CC_SHL:
		f = szp(d, sign);
		cf = (int)(((a << (c->cc_src2 - 1)) >> (bits - 1)) & 1);
		if (c->cc_src2 > (uint64_t)bits)
			cf = 0;
		if (cf)
			f |= BT_CF;
		if (((d >> (bits - 1)) ^ (uint64_t)cf) & 1)
			f |= BT_OF_FLAG;
		return f;
	case CC_SHR:
		f = szp(d, sign);
		if ((a >> (c->cc_src2 - 1)) & 1)
			f |= BT_CF;
		if (a & sign)
			f |= BT_OF_FLAG;
		return f;
	case CC_SAR: {
		f = szp(d, sign);
		int64_t sa = sext_sz(a, 1 << sz);
		uint64_t n = c->cc_src2 - 1;
		if ((sa >> (n > 63 ? 63 : n)) & 1)
			f |= BT_CF;
		return f;
	}
	case CC_MUL:
		f = szp(d, sign);
		if (c->cc_src1)
			f |= BT_CF | BT_OF_FLAG;
		return f;
	}
	return 0;
}

int bt_cc_cf(const struct bt_cpu *c)
{
	uint32_t op = c->cc_op;
	int sz = CC_SZ(op);
	uint64_t mask = sz == 3 ? ~0ull : (1ull << (8 << sz)) - 1;
	switch (CC_KIND(op)) {
	case CC_EFLAGS:
		return c->rflags & BT_CF;
	case CC_ADD:
		return (c->cc_dst & mask) < (c->cc_src1 & mask);
	case CC_SUB:
		return (c->cc_src1 & mask) < (c->cc_src2 & mask);
	case CC_ADC: {
		uint64_t d = c->cc_dst & mask, a = c->cc_src1 & mask, b = c->cc_src2 & mask;
		return ((d - a - b) & mask) ? d <= a : d < a;
	}
	case CC_SBB: {
		uint64_t d = c->cc_dst & mask, a = c->cc_src1 & mask, b = c->cc_src2 & mask;
		return ((a - b - d) & mask) ? a <= b : a < b;
	}
	case CC_MUL:
		return c->cc_src1 != 0;
	case CC_ROL:
	case CC_ROR:
		return (rot_flags(op, c->cc_rot) & BT_CF) != 0;
	case CC_LOGIC:
		return 0;
	case CC_INC:
	case CC_DEC:
		return c->cc_src2 & 1;
	default:
		return (bt_cc_flags(c) & BT_CF) != 0;
	}
}

int bt_cond(const struct bt_cpu *c, int cc)
{
	uint32_t op = c->cc_op;
	int r;
	if (CC_KIND(op) == CC_SUB && (cc >> 1) != 0 && (cc >> 1) != 5) {
		int sz = CC_SZ(op);
		uint64_t mask = sz == 3 ? ~0ull : (1ull << (8 << sz)) - 1;
		uint64_t a = c->cc_src1 & mask, b = c->cc_src2 & mask;
		int64_t sa = sext_sz(a, 1 << sz), sb = sext_sz(b, 1 << sz);
		switch (cc >> 1) {
		case 1: r = a < b; break;
		case 2: r = a == b; break;
		case 3: r = a <= b; break;
		case 4: r = (sext_sz(c->cc_dst & mask, 1 << sz)) < 0; break;
		case 6: r = sa < sb; break;
		default: r = sa <= sb; break;
		}
		return r ^ (cc & 1);
	}
	if (CC_KIND(op) == CC_LOGIC && (cc >> 1) != 5) {
		int sz = CC_SZ(op);
		int64_t d = sext_sz(c->cc_dst, 1 << sz);
		switch (cc >> 1) {
		case 0: case 1: r = 0; break;
		case 2: case 3: r = d == 0; break;
		case 4: case 6: r = d < 0; break;
		default: r = d <= 0; break;
		}
		return r ^ (cc & 1);
	}
	if ((cc >> 1) == 1)
		return bt_cc_cf(c) ^ (cc & 1);   /* CF alone is cheaper */
	uint32_t f = bt_cc_flags(c);
	int of = (f & BT_OF_FLAG) != 0, sf = (f & BT_SF) != 0, zf = (f & BT_ZF) != 0;
	switch (cc >> 1) {
	case 0: r = of; break;
	case 1: r = (f & BT_CF) != 0; break;
	case 2: r = zf; break;
	case 3: r = (f & BT_CF) || zf; break;
	case 4: r = sf; break;
	case 5: r = (f & BT_PF_FLAG) != 0; break;
	case 6: r = sf != of; break;
	default: r = zf || sf != of; break;
	}
	return r ^ (cc & 1);
}

void bt_flags_flush(struct bt_cpu *c)
{
	if (c->cc_op == CC_EFLAGS)
		return;
	c->rflags = (c->rflags & ~(uint64_t)BT_ARITH_FLAGS) | bt_cc_flags(c);
	c->cc_op = CC_EFLAGS;
}

void bt_flags_set(struct bt_cpu *c, uint32_t mask, uint32_t v)
{
	bt_flags_flush(c);
	c->rflags = (c->rflags & ~(uint64_t)mask) | (v & mask);
}

uint64_t bt_get_rflags(struct bt_cpu *c)
{
	uint64_t f = c->rflags & ~(uint64_t)BT_ARITH_FLAGS;
	return f | bt_cc_flags(c) | 2;
}

void bt_set_rflags(struct bt_cpu *c, uint64_t v)
{
	c->rflags = v | 2;
	c->cc_op = CC_EFLAGS;
}
