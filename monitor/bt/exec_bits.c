/* Bit and atomic-style instructions: BT/BTS/BTR/BTC, BSF/BSR/TZCNT/LZCNT,
 * POPCNT, BSWAP, XADD, CMPXCHG, CMPXCHG8B/16B, MOVBE, CRC32. The BT engine
 * runs all vCPUs on one host thread, so a read-modify-write through
 * bt_read_rmw/bt_write is atomic with respect to the other vCPUs. */
#include "monitor/bt/exec_int.h"

static void set_cf(struct bt_cpu *c, int cf)
{
	bt_flags_set(c, BT_CF, cf ? BT_CF : 0);
}

/* 0F A3/AB/B3/BB (bit offset in a register) and 0F BA /4-7 (imm8). */
static void ex_bt(struct bt_cpu *c, const struct bt_insn *i)
{
	int size = i->opsize, bits = 8 * size, op;
	uint64_t bit;
	int imm = BT_BYTE(i->op) == 0xba;
	if (imm) {
		op = (i->reg & 7) - 4;
		bit = i->imm & (bits - 1);
	} else {
		uint8_t b = BT_BYTE(i->op);
		op = b == 0xa3 ? 0 : b == 0xab ? 1 : b == 0xb3 ? 2 : 3;
		bit = reg_rd(c, i, i->reg, size);
	}
	if (i->mod == 3) {
		bit &= bits - 1;
		uint64_t v = reg_rd(c, i, i->rm, size);
		set_cf(c, (v >> bit) & 1);
		if (op == 1) v |= 1ull << bit;
		else if (op == 2) v &= ~(1ull << bit);
		else if (op == 3) v ^= 1ull << bit;
		if (op)
			reg_wr(c, i, i->rm, size, v);
		return;
	}
	uint64_t off = bt_ea(c, i);
	if (!imm) {
		int64_t sb = sext_sz(bit, size);
		off = ea_mask(i, off + (uint64_t)((sb >> (size == 2 ? 4 : size == 4 ? 5 : 6)) * size));
		bit = (uint64_t)sb & (bits - 1);
	}
	int seg = bt_ea_seg(i);
	uint64_t v = op ? bt_read_rmw(c, seg, off, size) : bt_read(c, seg, off, size);
	int cf = (v >> bit) & 1;
	if (op == 1) v |= 1ull << bit;
	else if (op == 2) v &= ~(1ull << bit);
	else if (op == 3) v ^= 1ull << bit;
	if (op)
		bt_write(c, seg, off, size, v);
	set_cf(c, cf);
}

/* BSF/BSR (no prefix) and TZCNT/LZCNT (F3). */
static void ex_bsf(struct bt_cpu *c, const struct bt_insn *i)
{
	int size = i->opsize, bits = 8 * size;
	uint64_t v = e_rd(c, i, size);
	int rev = BT_BYTE(i->op) == 0xbd;
	if (i->rep == 0xf3) {
		uint64_t n = v == 0 ? (uint64_t)bits :
			     rev ? (uint64_t)(__builtin_clzll(v) - (64 - bits)) : (uint64_t)__builtin_ctzll(v);
		reg_wr(c, i, i->reg, size, n);
		bt_flags_set(c, BT_CF | BT_ZF, (v == 0 ? BT_CF : 0) | (n == 0 ? BT_ZF : 0));
		return;
	}
	if (v == 0) {
		bt_flags_set(c, BT_ZF, BT_ZF);
		return;
	}
	reg_wr(c, i, i->reg, size, rev ? (uint64_t)(63 - __builtin_clzll(v)) : (uint64_t)__builtin_ctzll(v));
	bt_flags_set(c, BT_ZF, 0);
}

static void ex_popcnt(struct bt_cpu *c, const struct bt_insn *i)
{
	uint64_t v = e_rd(c, i, i->opsize);
	reg_wr(c, i, i->reg, i->opsize, (uint64_t)__builtin_popcountll(v));
	bt_flags_set(c, BT_ARITH_FLAGS, v == 0 ? BT_ZF : 0);
}

static void ex_bswap(struct bt_cpu *c, const struct bt_insn *i)
{
	int r = (i->op & 7) | ((i->rex & 1) << 3);
	if (i->opsize == 8)
		c->r[r] = __builtin_bswap64(c->r[r]);
	else if (i->opsize == 4)
		c->r[r] = __builtin_bswap32((uint32_t)c->r[r]);
	else
		reg_wr(c, i, r, 2, 0);      /* 16-bit BSWAP: hardware yields 0 */
}

static void ex_xadd(struct bt_cpu *c, const struct bt_insn *i)
{
	int size = bsize(i);
	uint64_t s = reg_rd(c, i, i->reg, size), d, r;
	if (i->mod == 3) {
		d = reg_rd(c, i, i->rm, size);
		r = (d + s) & sz_mask(size);
		reg_wr(c, i, i->reg, size, d);
		reg_wr(c, i, i->rm, size, r);
	} else {
		uint64_t off = bt_ea(c, i);
		int seg = bt_ea_seg(i);
		d = bt_read_rmw(c, seg, off, size);
		r = (d + s) & sz_mask(size);
		bt_write(c, seg, off, size, r);
		reg_wr(c, i, i->reg, size, d);
	}
	cc_set(c, CC_OP(CC_ADD, sz_idx(size)), r, d, s);
}

static void ex_cmpxchg(struct bt_cpu *c, const struct bt_insn *i)
{
	int size = bsize(i);
	uint64_t a = reg_rd(c, i, 0, size), s = reg_rd(c, i, i->reg, size), d;
	if (i->mod == 3) {
		d = reg_rd(c, i, i->rm, size);
		if (d == a)
			reg_wr(c, i, i->rm, size, s);
		else
			reg_wr(c, i, 0, size, d);
	} else {
		uint64_t off = bt_ea(c, i);
		int seg = bt_ea_seg(i);
		d = bt_read_rmw(c, seg, off, size);
		/* The destination is written either way, as the CPU does. */
		bt_write(c, seg, off, size, d == a ? s : d);
		if (d != a)
			reg_wr(c, i, 0, size, d);
	}
	cc_set(c, CC_OP(CC_SUB, sz_idx(size)), (a - d) & sz_mask(size), a, d);
}

static void ex_cmpxchg8b(struct bt_cpu *c, const struct bt_insn *i)
{
	uint64_t off = bt_ea(c, i);
	int seg = bt_ea_seg(i);
	if (i->opsize == 8) {
		if (off & 15)
			bt_raise_err(c, BT_GP, 0);
		uint64_t lo = bt_read_rmw(c, seg, off, 8);
		uint64_t hi = bt_read_rmw(c, seg, off + 8, 8);
		if (lo == c->r[0] && hi == c->r[2]) {
			bt_write(c, seg, off, 8, c->r[CPU_RBX]);
			bt_write(c, seg, off + 8, 8, c->r[CPU_RCX]);
			bt_flags_set(c, BT_ZF, BT_ZF);
		} else {
			bt_write(c, seg, off, 8, lo);
			bt_write(c, seg, off + 8, 8, hi);
			c->r[0] = lo;
			c->r[2] = hi;
			bt_flags_set(c, BT_ZF, 0);
		}
		return;
	}
	uint64_t v = bt_read_rmw(c, seg, off, 8);
	uint64_t cmp = (c->r[0] & 0xffffffffu) | (c->r[2] << 32);
	if (v == cmp) {
		bt_write(c, seg, off, 8, (c->r[CPU_RBX] & 0xffffffffu) | (c->r[CPU_RCX] << 32));
		bt_flags_set(c, BT_ZF, BT_ZF);
	} else {
		bt_write(c, seg, off, 8, v);
		c->r[0] = (uint32_t)v;
		c->r[2] = v >> 32;
		bt_flags_set(c, BT_ZF, 0);
	}
}

static void ex_movbe(struct bt_cpu *c, const struct bt_insn *i)
{
	int size = i->opsize;
	uint64_t off = bt_ea(c, i);
	int seg = bt_ea_seg(i);
	if (BT_BYTE(i->op) == 0xf0) {
		uint64_t v = bt_read(c, seg, off, size);
		v = size == 8 ? __builtin_bswap64(v) : size == 4 ? __builtin_bswap32((uint32_t)v) :
		    __builtin_bswap16((uint16_t)v);
		reg_wr(c, i, i->reg, size, v);
	} else {
		uint64_t v = reg_rd(c, i, i->reg, size);
		v = size == 8 ? __builtin_bswap64(v) : size == 4 ? __builtin_bswap32((uint32_t)v) :
		    __builtin_bswap16((uint16_t)v);
		bt_write(c, seg, off, size, v);
	}
}

__attribute__((target("sse4.2")))
static void ex_crc32(struct bt_cpu *c, const struct bt_insn *i)
{
	int size = BT_BYTE(i->op) == 0xf0 ? 1 : i->opsize;
	uint64_t v = e_rd(c, i, size);
	uint32_t crc = (uint32_t)c->r[i->reg];
	switch (size) {
	case 1: crc = __builtin_ia32_crc32qi(crc, (uint8_t)v); break;
	case 2: crc = __builtin_ia32_crc32hi(crc, (uint16_t)v); break;
	case 4: crc = __builtin_ia32_crc32si(crc, (uint32_t)v); break;
	default: crc = (uint32_t)__builtin_ia32_crc32di(crc, v); break;
	}
	c->r[i->reg] = crc;
}

bt_exec_fn bt_sel_bits(const struct bt_insn *i)
{
	uint8_t b = BT_BYTE(i->op);
	if (BT_MAP(i->op) == 2) {
		if (b == 0xf0 || b == 0xf1)
			return i->rep == 0xf2 ? ex_crc32 : ex_movbe;
		return NULL;
	}
	if (BT_MAP(i->op) != 1)
		return NULL;
	switch (b) {
	case 0xa3: case 0xab: case 0xb3: case 0xbb: case 0xba: return ex_bt;
	case 0xbc: case 0xbd: return ex_bsf;
	case 0xb8: return ex_popcnt;
	case 0xc8 ... 0xcf: return ex_bswap;
	case 0xc0: case 0xc1: return ex_xadd;
	case 0xb0: case 0xb1: return ex_cmpxchg;
	case 0xc7: return ex_cmpxchg8b;
	}
	return NULL;
}
