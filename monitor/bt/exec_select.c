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

bt_exec_fn bt_select(const struct bt_insn *i)
{
	/* per opcode map, the selectors that can claim it, likeliest first */
	static const sel_fn map0[] = { bt_sel_mov, bt_sel_alu, bt_sel_branch, bt_sel_string,
				       bt_sel_fpu, bt_sel_misc, NULL };
	static const sel_fn map1[] = { bt_sel_mov, bt_sel_branch, bt_sel_bits, bt_sel_alu,
				       bt_sel_sse, bt_sel_mmx, bt_sel_fpu, bt_sel_misc, NULL };
	static const sel_fn map23[] = { bt_sel_sse, bt_sel_mmx, bt_sel_bits, NULL };
	if (i->flags & BT_I_SYS)
		return bt_sys_exec;
	int map = BT_MAP(i->op);
	const sel_fn *sel = map == 0 ? map0 : map == 1 ? map1 : map23;
	for (; *sel; sel++) {
		bt_exec_fn f = (*sel)(i);
		if (f)
			return f;
	}
	return NULL;
}
