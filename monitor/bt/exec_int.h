/* Private helpers of the BT engine's ISA half (exec_*.c, flags.c, fpu*.c,
 * sse*.c, ea.c, exec_select.c): register access by operand size, the lazy
 * flags encoding, condition evaluation, operand fetch/store, and the exec
 * function tables each file exports to bt_select(). */
#ifndef ROAM_BT_EXEC_INT_H
#define ROAM_BT_EXEC_INT_H
#include <stdint.h>
#include "monitor/bt/bt_int.h"
#include "monitor/bt/mem_fast.h"

/* The exec functions use the inline fast paths (mem_fast.h). */
#define bt_read(c, seg, off, size) bt_read_fast(c, seg, off, size)
#define bt_read_rmw(c, seg, off, size) bt_read_rmw_fast(c, seg, off, size)
#define bt_write(c, seg, off, size, val) bt_write_fast(c, seg, off, size, val)
#define bt_push(c, size, val) bt_push_fast(c, size, val)
#define bt_pop(c, size) bt_pop_fast(c, size)

/* ---- lazy flags ----
 * cc_op = kind * 4 + size index (0: 8-bit, 1: 16, 2: 32, 3: 64); kind 0 is
 * "arithmetic flags live in c->rflags". cc_dst is the result, cc_src1 and
 * cc_src2 the operands (per kind below). */
enum {
	CC_EFLAGS = 0,
	CC_ADD,         /* src1 + src2 */
	CC_ADC,         /* src1 + src2 + carry (carry recovered from dst) */
	CC_SUB,         /* src1 - src2 (also CMP) */
	CC_SBB,         /* src1 - src2 - borrow */
	CC_LOGIC,       /* CF = OF = AF = 0 */
	CC_INC,         /* src1 + 1; src2 = old CF */
	CC_DEC,         /* src1 - 1; src2 = old CF */
	CC_SHL,         /* src1 << src2 (src2 = masked count, non-zero) */
	CC_SHR,
	CC_SAR,
	CC_MUL,         /* CF = OF = (src1 != 0); SZP from dst */
	CC_ROL,         /* rotate with result cc_rot: CF and OF from it, the */
	CC_ROR,         /* rest from the state cc_rot_op over cc_dst/src1/src2
			 * (never itself a rotate) */
	CC_NKINDS
};
#define CC_OP(kind, sz) ((uint32_t)((kind) * 4 + (sz)))
#define CC_KIND(op) ((op) >> 2)
#define CC_SZ(op) ((op) & 3)

static inline int sz_idx(int size) { return size == 1 ? 0 : size == 2 ? 1 : size == 4 ? 2 : 3; }
static inline uint64_t sz_mask(int size) { return size == 8 ? ~0ull : (1ull << (8 * size)) - 1; }
static inline uint64_t sz_sign(int size) { return 1ull << (8 * size - 1); }
static inline int64_t sext_sz(uint64_t v, int size)
{
	return size == 8 ? (int64_t)v : size == 4 ? (int32_t)v : size == 2 ? (int16_t)v : (int8_t)v;
}

static inline void cc_set(struct bt_cpu *c, uint32_t op, uint64_t dst, uint64_t s1, uint64_t s2)
{
	c->cc_op = op;
	c->cc_dst = dst;
	c->cc_src1 = s1;
	c->cc_src2 = s2;
}

/* Arithmetic flags of the lazy state (flags.c). */
uint32_t bt_cc_flags(const struct bt_cpu *c);
/* Carry flag alone (flags.c; bt_cf below inlines the common cases). */
int bt_cc_cf(const struct bt_cpu *c);
/* Condition code 0-15 (Jcc low nibble) true? (flags.c; bt_cc below
 * inlines CMP/SUB and logic results) */
int bt_cond(const struct bt_cpu *c, int cc);

static inline int bt_cf(const struct bt_cpu *c)
{
	uint32_t op = c->cc_op;
	if (op == CC_OP(CC_SUB, 2))
		return (uint32_t)c->cc_src1 < (uint32_t)c->cc_src2;
	if (op == CC_OP(CC_SUB, 3))
		return c->cc_src1 < c->cc_src2;
	if (CC_KIND(op) == CC_LOGIC)
		return 0;
	return bt_cc_cf(c);
}

/* cc is a compile-time constant at every call site. */
static inline __attribute__((always_inline)) int bt_cc(const struct bt_cpu *c, int cc)
{
	uint32_t op = c->cc_op;
	int r;
	if (op == CC_OP(CC_SUB, 2) || op == CC_OP(CC_SUB, 3)) {
		int q = op == CC_OP(CC_SUB, 3);
		uint64_t a = q ? c->cc_src1 : (uint32_t)c->cc_src1;
		uint64_t b = q ? c->cc_src2 : (uint32_t)c->cc_src2;
		int64_t sa = q ? (int64_t)a : (int32_t)a, sb = q ? (int64_t)b : (int32_t)b;
		switch (cc >> 1) {
		case 1: r = a < b; break;
		case 2: r = a == b; break;
		case 3: r = a <= b; break;
		case 4: r = (q ? (int64_t)c->cc_dst : (int32_t)c->cc_dst) < 0; break;
		case 6: r = sa < sb; break;
		case 7: r = sa <= sb; break;
		default: return bt_cond(c, cc);
		}
		return r ^ (cc & 1);
	}
	/* ZF and SF come straight from the result for every lazy kind but
	 * the rotates */
	if (op != CC_EFLAGS && op < CC_OP(CC_ROL, 0) && ((cc >> 1) == 2 || (cc >> 1) == 4)) {
		int sz = CC_SZ(op);
		uint64_t d = c->cc_dst << (64 - (8 << sz));
		r = (cc >> 1) == 2 ? d == 0 : (int64_t)d < 0;
		return r ^ (cc & 1);
	}
	if (op == CC_OP(CC_LOGIC, 2) || op == CC_OP(CC_LOGIC, 3)) {
		int64_t d = op == CC_OP(CC_LOGIC, 3) ? (int64_t)c->cc_dst : (int32_t)c->cc_dst;
		switch (cc >> 1) {
		case 0: case 1: r = 0; break;
		case 2: case 3: r = d == 0; break;
		case 4: case 6: r = d < 0; break;
		case 7: r = d <= 0; break;
		default: return bt_cond(c, cc);
		}
		return r ^ (cc & 1);
	}
	return bt_cond(c, cc);
}
/* Puts the arithmetic flags into c->rflags (cc_op becomes CC_EFLAGS). */
void bt_flags_flush(struct bt_cpu *c);
/* Sets the arithmetic flags in mask to the bits of v (others kept). */
void bt_flags_set(struct bt_cpu *c, uint32_t mask, uint32_t v);

/* ---- registers ---- */
static inline uint64_t reg_rd(const struct bt_cpu *c, const struct bt_insn *i, int r, int size)
{
	if (size == 1) {
		if (!i->rex && r >= 4 && r < 8)
			return (c->r[r - 4] >> 8) & 0xff;
		return c->r[r] & 0xff;
	}
	return c->r[r] & sz_mask(size);
}

static inline void reg_wr(struct bt_cpu *c, const struct bt_insn *i, int r, int size, uint64_t v)
{
	switch (size) {
	case 1:
		if (!i->rex && r >= 4 && r < 8)
			c->r[r - 4] = (c->r[r - 4] & ~0xff00ull) | ((v & 0xff) << 8);
		else
			c->r[r] = (c->r[r] & ~0xffull) | (v & 0xff);
		break;
	case 2:
		c->r[r] = (c->r[r] & ~0xffffull) | (v & 0xffff);
		break;
	case 4:
		c->r[r] = (uint32_t)v;
		break;
	default:
		c->r[r] = v;
	}
}

/* ---- memory operands ---- */
static inline uint64_t ea_mask(const struct bt_insn *i, uint64_t a)
{
	return i->addrsize == 8 ? a : i->addrsize == 4 ? (uint32_t)a : (uint16_t)a;
}

/* Inline forms of bt_ea / bt_ea_seg (ea.c) for the exec functions. */
static inline uint64_t ea_of(const struct bt_cpu *c, const struct bt_insn *i)
{
	uint64_t a = (uint64_t)i->disp;
	if (i->base >= 0)
		a += i->base == BT_BASE_RIP ? c->next_rip : c->r[i->base];
	if (i->index >= 0)
		a += c->r[i->index] * i->scale;
	return ea_mask(i, a);
}

static inline int ea_seg_of(const struct bt_insn *i)
{
	if (i->seg != 0xff)
		return i->seg;
	return (i->base == CPU_RSP || i->base == CPU_RBP) ? SEG_SS : SEG_DS;
}
#define bt_ea(c, i) ea_of(c, i)
#define bt_ea_seg(i) ea_seg_of(i)

/* Host pointer to the memory operand of i when it is a 64-bit-mode access
 * of size bytes, allowed for kind (BT_ACC_R, or BT_ACC_W for writes and
 * read-modify-writes) and present in the soft TLB; NULL otherwise, when
 * the caller runs its complete out-of-line form. Exec functions whose
 * fast path then makes no call need no stack frame. */
static inline __attribute__((always_inline)) uint8_t *
ea_host(struct bt_cpu *c, const struct bt_insn *i, int kind, int size)
{
	if (__builtin_expect(c->mode != BT_MODE64, 0))
		return NULL;
	uint64_t la = bt_lin64(c, ea_seg_of(i), ea_of(c, i));
	const struct bt_tlb_ent *e = bt_tlb_hit(c, kind, la, size);
	return __builtin_expect(e != NULL, 1) ? (uint8_t *)(e->addend + la) : NULL;
}

/* A memory operand of the form [base + disp] (no index, not RIP-relative,
 * 64-bit addressing, no FS/GS override): exec functions specialized for it
 * compute the address with one add. Such operands come only from 64-bit
 * code, which blocks run only in 64-bit mode. */
static inline bool ea_is_bd(const struct bt_insn *i)
{
	return i->has_modrm && i->mod != 3 && i->index < 0 && i->base >= 0 &&
	       i->base != BT_BASE_RIP && i->addrsize == 8 && (i->seg == 0xff || i->seg < SEG_FS);
}

static inline __attribute__((always_inline)) uint8_t *
ea_host_bd(struct bt_cpu *c, const struct bt_insn *i, int kind, int size)
{
	uint64_t la = c->r[i->base] + (uint64_t)i->disp;
	const struct bt_tlb_ent *e = bt_tlb_hit(c, kind, la, size);
	if (__builtin_expect(e == NULL || c->mode != BT_MODE64, 0))
		return NULL;
	return (uint8_t *)(e->addend + la);
}

/* Operand "E" (ModRM rm) of the given size: register or memory. */
static inline __attribute__((always_inline)) uint64_t e_rd(struct bt_cpu *c, const struct bt_insn *i, int size)
{
	if (i->mod == 3)
		return reg_rd(c, i, i->rm, size);
	return bt_read(c, bt_ea_seg(i), bt_ea(c, i), size);
}

static inline void e_wr(struct bt_cpu *c, const struct bt_insn *i, int size, uint64_t v)
{
	if (i->mod == 3)
		reg_wr(c, i, i->rm, size, v);
	else
		bt_write(c, bt_ea_seg(i), bt_ea(c, i), size, v);
}

/* Operand size of a byte-or-full opcode pair (even opcode = byte). */
static inline int bsize(const struct bt_insn *i)
{
	return (i->op & 1) ? i->opsize : 1;
}

/* Stack-pointer width for explicit RSP arithmetic (ENTER/LEAVE). */
int bt_stack_size(const struct bt_cpu *c);

/* Branch target: masks to the operand size (16/32-bit code). */
static inline void jump_to(struct bt_cpu *c, const struct bt_insn *i, uint64_t target)
{
	c->next_rip = i->opsize == 8 ? target : i->opsize == 4 ? (uint32_t)target : (uint16_t)target;
}

/* ---- exec selectors of each file (return NULL when not handled) ---- */
bt_exec_fn bt_sel_alu(const struct bt_insn *i);
bt_exec_fn bt_sel_mov(const struct bt_insn *i);
bt_exec_fn bt_sel_branch(const struct bt_insn *i);
bt_exec_fn bt_sel_string(const struct bt_insn *i);
bt_exec_fn bt_sel_bits(const struct bt_insn *i);
bt_exec_fn bt_sel_sse(const struct bt_insn *i);
bt_exec_fn bt_sel_mmx(const struct bt_insn *i);
bt_exec_fn bt_sel_fpu(const struct bt_insn *i);
bt_exec_fn bt_sel_misc(const struct bt_insn *i);

/* x87/SSE availability checks (#NM on CR0.TS/EM, #UD without OSFXSR). */
void bt_fpu_check(struct bt_cpu *c);
void bt_sse_check(struct bt_cpu *c);
#endif
