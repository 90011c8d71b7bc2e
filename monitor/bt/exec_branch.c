/* Near control transfers: Jcc (one function per condition), JMP, CALL and
 * RET (relative and indirect), LOOP/LOOPE/LOOPNE/JCXZ. They set
 * c->next_rip, masked to the operand size in 16/32-bit code. */
#include "monitor/bt/exec_int.h"

#define JCC(CC) \
static void jcc_##CC(struct bt_cpu *c, const struct bt_insn *i) \
{ if (bt_cc(c, CC)) jump_to(c, i, c->next_rip + i->imm); }
JCC(0) JCC(1) JCC(2) JCC(3) JCC(4) JCC(5) JCC(6) JCC(7)
JCC(8) JCC(9) JCC(10) JCC(11) JCC(12) JCC(13) JCC(14) JCC(15)
static const bt_exec_fn jcc_tab[16] = {
	jcc_0, jcc_1, jcc_2, jcc_3, jcc_4, jcc_5, jcc_6, jcc_7,
	jcc_8, jcc_9, jcc_10, jcc_11, jcc_12, jcc_13, jcc_14, jcc_15,
};

static void ex_jmp_rel(struct bt_cpu *c, const struct bt_insn *i)
{
	jump_to(c, i, c->next_rip + i->imm);
}

static void ex_jmp_rel64(struct bt_cpu *c, const struct bt_insn *i)
{
	c->next_rip += i->imm;
}

static void ex_call_rel(struct bt_cpu *c, const struct bt_insn *i)
{
	bt_push(c, i->opsize, c->next_rip & sz_mask(i->opsize));
	jump_to(c, i, c->next_rip + i->imm);
}

static void ex_jmp_ind(struct bt_cpu *c, const struct bt_insn *i)
{
	jump_to(c, i, e_rd(c, i, i->opsize));
}

static void ex_call_ind(struct bt_cpu *c, const struct bt_insn *i)
{
	uint64_t t = e_rd(c, i, i->opsize);
	bt_push(c, i->opsize, c->next_rip & sz_mask(i->opsize));
	jump_to(c, i, t);
}

static void ex_ret(struct bt_cpu *c, const struct bt_insn *i)
{
	uint64_t t = bt_pop(c, i->opsize);
	if (BT_BYTE(i->op) == 0xc2) {
		int ss = bt_stack_size(c);
		uint64_t m = sz_mask(ss);
		c->r[CPU_RSP] = (c->r[CPU_RSP] & ~m) | ((c->r[CPU_RSP] + (uint16_t)i->imm) & m);
	}
	jump_to(c, i, t);
}

static void ex_loop(struct bt_cpu *c, const struct bt_insn *i)
{
	int as = i->addrsize;
	uint64_t m = sz_mask(as), cx = c->r[CPU_RCX] & m;
	int take;
	if (BT_BYTE(i->op) == 0xe3) {
		take = cx == 0;
	} else {
		cx = (cx - 1) & m;
		reg_wr(c, i, CPU_RCX, as, cx);
		take = cx != 0;
		if (BT_BYTE(i->op) == 0xe1)
			take = take && bt_cond(c, 4);
		else if (BT_BYTE(i->op) == 0xe0)
			take = take && !bt_cond(c, 4);
	}
	if (take)
		jump_to(c, i, c->next_rip + i->imm);
}

bt_exec_fn bt_sel_branch(const struct bt_insn *i)
{
	uint8_t b = BT_BYTE(i->op);
	if (BT_MAP(i->op) == 1)
		return b >= 0x80 && b <= 0x8f ? jcc_tab[b & 15] : NULL;
	if (BT_MAP(i->op) != 0)
		return NULL;
	switch (b) {
	case 0x70 ... 0x7f: return jcc_tab[b & 15];
	case 0xe9: case 0xeb: return i->opsize == 8 ? ex_jmp_rel64 : ex_jmp_rel;
	case 0xe8: return ex_call_rel;
	case 0xc2: case 0xc3: return ex_ret;
	case 0xe0 ... 0xe3: return ex_loop;
	case 0xff:
		if ((i->reg & 7) == 2) return ex_call_ind;
		if ((i->reg & 7) == 4) return ex_jmp_ind;
		return NULL;
	}
	return NULL;
}
