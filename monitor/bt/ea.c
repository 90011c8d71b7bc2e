/* Effective addresses of decoded memory operands: base + index * scale +
 * displacement (RIP-relative from the next instruction), masked to the
 * address size, and the segment they use. */
#include "monitor/bt/exec_int.h"
#undef bt_ea
#undef bt_ea_seg

uint64_t bt_ea(struct bt_cpu *c, const struct bt_insn *i)
{
	uint64_t a = (uint64_t)i->disp;
	if (i->flags & BT_I_MOFFS)
		return ea_mask(i, a);
	if (i->base >= 0)
		a += i->base == BT_BASE_RIP ? c->next_rip : c->r[i->base];
	if (i->index >= 0)
		a += c->r[i->index] * i->scale;
	return ea_mask(i, a);
}

int bt_ea_seg(const struct bt_insn *i)
{
	if (i->seg != 0xff)
		return i->seg;
	if (i->base == CPU_RSP || i->base == CPU_RBP)
		return (i->flags & BT_I_MOFFS) ? SEG_DS : SEG_SS;
	return SEG_DS;
}
