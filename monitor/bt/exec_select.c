/* bt_select(): picks the exec function of a decoded instruction, once, at
 * decode time. System instructions (BT_I_SYS: segment loads, far
 * transfers, INT/IRET, PUSHF/POPF, CLI/STI, HLT, I/O, descriptor tables,
 * SYSCALL & co, CR/DR/MSR access, RDTSC, CPUID, UD2, ...) go to the system
 * half's bt_sys_exec; everything user-visible to the per-file selectors.
 * Also the small instructions that belong nowhere else: fences, CLFLUSH,
 * FWAIT. */
#include "monitor/bt/exec_int.h"

static void ex_fence(struct bt_cpu *c, const struct bt_insn *i)
{
	(void)c;
	(void)i;
}

static void ex_clflush(struct bt_cpu *c, const struct bt_insn *i)
{
	/* Faults like a byte load; the cache itself is not modelled. */
	(void)bt_read(c, bt_ea_seg(i), bt_ea(c, i), 1);
}

static void ex_fwait(struct bt_cpu *c, const struct bt_insn *i)
{
	(void)i;
	if ((c->cr0 & 0xa) == 0xa)          /* CR0.MP and CR0.TS */
		bt_raise(c, BT_NM);
	if (c->fsw & 0x80)                  /* FSW.ES: unmasked x87 exception */
		bt_raise(c, BT_MF);
}

bt_exec_fn bt_sel_misc(const struct bt_insn *i)
{
	if (i->op == BT_OP(0, 0x9b))
		return ex_fwait;
	if (i->op == BT_OP(1, 0xae)) {
		if (i->mod == 3)
			return ex_fence;            /* LFENCE, MFENCE, SFENCE */
		if ((i->reg & 7) == 7)
			return ex_clflush;          /* CLFLUSH, CLFLUSHOPT */
	}
	return NULL;
}

typedef bt_exec_fn (*sel_fn)(const struct bt_insn *);

/* The selector that usually claims an opcode (a hint: when it declines,
 * every selector of the map is asked). */
enum { H_NONE, H_ALU, H_MOV, H_BRANCH, H_STRING, H_FPU, H_BITS, H_SSE };
static const uint8_t hint0[256] = {
	[0x00 ... 0x4f] = H_ALU, [0x50 ... 0x6f] = H_MOV, [0x70 ... 0x7f] = H_BRANCH,
	[0x80 ... 0x85] = H_ALU, [0x86 ... 0xa3] = H_MOV, [0xa4 ... 0xa7] = H_STRING,
	[0xa8 ... 0xa9] = H_ALU, [0xaa ... 0xaf] = H_STRING, [0xb0 ... 0xbf] = H_MOV,
	[0xc0 ... 0xc1] = H_ALU, [0xc2 ... 0xc3] = H_BRANCH, [0xc6 ... 0xc9] = H_MOV,
	[0xd0 ... 0xd3] = H_ALU, [0xd4 ... 0xd7] = H_MOV, [0xd8 ... 0xdf] = H_FPU,
	[0xe0 ... 0xe3] = H_BRANCH, [0xe8 ... 0xeb] = H_BRANCH, [0xf5] = H_MOV, [0xf8 ... 0xfd] = H_MOV,
	[0xf6 ... 0xf7] = H_ALU, [0xfe ... 0xff] = H_ALU,
};
static const uint8_t hint1[256] = {
	[0x10 ... 0x17] = H_SSE, [0x18 ... 0x1f] = H_MOV, [0x28 ... 0x2f] = H_SSE,
	[0x40 ... 0x4f] = H_MOV, [0x50 ... 0x7f] = H_SSE, [0x80 ... 0x8f] = H_BRANCH,
	[0x90 ... 0x9f] = H_MOV, [0xa3] = H_BITS, [0xa4 ... 0xa5] = H_ALU, [0xab] = H_BITS,
	[0xac ... 0xad] = H_ALU, [0xaf] = H_ALU, [0xb0 ... 0xb1] = H_BITS, [0xb3] = H_BITS,
	[0xb6 ... 0xb7] = H_MOV, [0xb8] = H_BITS, [0xba ... 0xbd] = H_BITS,
	[0xbe ... 0xbf] = H_MOV, [0xc0 ... 0xc1] = H_BITS, [0xc2 ... 0xc6] = H_SSE,
	[0xc7 ... 0xcf] = H_BITS, [0xd0 ... 0xff] = H_SSE,
};

bt_exec_fn bt_select(const struct bt_insn *i)
{
	static const sel_fn by_hint[] = { NULL, bt_sel_alu, bt_sel_mov, bt_sel_branch,
					  bt_sel_string, bt_sel_fpu, bt_sel_bits, bt_sel_sse };
	/* per opcode map, the selectors that can claim it, likeliest first */
	static const sel_fn map0[] = { bt_sel_mov, bt_sel_alu, bt_sel_branch, bt_sel_string,
				       bt_sel_fpu, bt_sel_misc, NULL };
	static const sel_fn map1[] = { bt_sel_mov, bt_sel_branch, bt_sel_bits, bt_sel_alu,
				       bt_sel_sse, bt_sel_mmx, bt_sel_fpu, bt_sel_misc, NULL };
	static const sel_fn map23[] = { bt_sel_sse, bt_sel_mmx, bt_sel_bits, NULL };
	if (i->flags & BT_I_SYS)
		return bt_sys_exec;
	int map = BT_MAP(i->op);
	uint8_t h = map == 0 ? hint0[BT_BYTE(i->op)] : map == 1 ? hint1[BT_BYTE(i->op)] : H_SSE;
	if (h) {
		bt_exec_fn f = by_hint[h](i);
		if (f)
			return f;
	}
	const sel_fn *sel = map == 0 ? map0 : map == 1 ? map1 : map23;
	for (; *sel; sel++) {
		bt_exec_fn f = (*sel)(i);
		if (f)
			return f;
	}
	return NULL;
}
