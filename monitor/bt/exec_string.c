/* String instructions MOVS/CMPS/SCAS/LODS/STOS with REP/REPE/REPNE, the
 * direction flag and every address size. REP MOVS/STOS with DF=0 copy in
 * chunks that stay inside one page on both sides through bt_read_buf/
 * bt_write_buf, updating rCX/rSI/rDI after each chunk, so a fault leaves
 * them exactly where the CPU would. A long REP stops after a bounded
 * amount of work and restarts itself (next_rip = rip) so interrupts are
 * checked in between, as the CPU allows. */
#include <string.h>
#include "monitor/bt/exec_int.h"

#define REP_BUDGET (64 * 1024)   /* bytes per exec call */

static inline uint64_t areg(const struct bt_cpu *c, const struct bt_insn *i, int r)
{
	return c->r[r] & sz_mask(i->addrsize);
}

static inline void aset(struct bt_cpu *c, const struct bt_insn *i, int r, uint64_t v)
{
	if (i->addrsize == 8)
		c->r[r] = v;
	else if (i->addrsize == 4)
		c->r[r] = (uint32_t)v;
	else
		c->r[r] = (c->r[r] & ~0xffffull) | (v & 0xffff);
}

static inline int src_seg(const struct bt_insn *i)
{
	return i->seg != 0xff ? i->seg : SEG_DS;
}

/* One iteration of the string op; returns 0 to stop a REPE/REPNE. */
static int str_once(struct bt_cpu *c, const struct bt_insn *i, int size)
{
	int64_t step = (c->rflags & BT_DF_FLAG) ? -size : size;
	uint8_t b = BT_BYTE(i->op);
	uint64_t v, w;
	switch (b) {
	case 0xa4: case 0xa5: /* MOVS */
		v = bt_read(c, src_seg(i), areg(c, i, CPU_RSI), size);
		bt_write(c, SEG_ES, areg(c, i, CPU_RDI), size, v);
		aset(c, i, CPU_RSI, c->r[CPU_RSI] + step);
		aset(c, i, CPU_RDI, c->r[CPU_RDI] + step);
		return 1;
	case 0xa6: case 0xa7: /* CMPS */
		v = bt_read(c, src_seg(i), areg(c, i, CPU_RSI), size);
		w = bt_read(c, SEG_ES, areg(c, i, CPU_RDI), size);
		cc_set(c, CC_OP(CC_SUB, sz_idx(size)), (v - w) & sz_mask(size), v, w);
		aset(c, i, CPU_RSI, c->r[CPU_RSI] + step);
		aset(c, i, CPU_RDI, c->r[CPU_RDI] + step);
		return 1;
	case 0xaa: case 0xab: /* STOS */
		bt_write(c, SEG_ES, areg(c, i, CPU_RDI), size, c->r[0] & sz_mask(size));
		aset(c, i, CPU_RDI, c->r[CPU_RDI] + step);
		return 1;
	case 0xac: case 0xad: /* LODS */
		v = bt_read(c, src_seg(i), areg(c, i, CPU_RSI), size);
		reg_wr(c, i, 0, size, v);
		aset(c, i, CPU_RSI, c->r[CPU_RSI] + step);
		return 1;
	default: /* SCAS */
		v = c->r[0] & sz_mask(size);
		w = bt_read(c, SEG_ES, areg(c, i, CPU_RDI), size);
		cc_set(c, CC_OP(CC_SUB, sz_idx(size)), (v - w) & sz_mask(size), v, w);
		aset(c, i, CPU_RDI, c->r[CPU_RDI] + step);
		return 1;
	}
}

static void ex_string(struct bt_cpu *c, const struct bt_insn *i)
{
	int size = (i->op & 1) ? i->opsize : 1;
	str_once(c, i, size);
}

/* Bytes from off to the end of its page, in units of size (at least 0). */
static inline uint64_t page_room(uint64_t off, int size)
{
	return (4096 - (off & 4095)) / (uint64_t)size;
}

/* Bulk forward MOVS/STOS; returns the elements done. Only in flat
 * address spaces where offsets do not wrap within the chunk. */
static uint64_t bulk(struct bt_cpu *c, const struct bt_insn *i, int size, uint64_t cnt)
{
	uint8_t buf[4096];
	int movs = BT_BYTE(i->op) <= 0xa5;
	uint64_t done = 0, m = sz_mask(i->addrsize);
	while (cnt > 0 && done * size < REP_BUDGET) {
		uint64_t di = areg(c, i, CPU_RDI), si = areg(c, i, CPU_RSI);
		uint64_t n = page_room(di, size);
		if (movs && page_room(si, size) < n)
			n = page_room(si, size);
		if (n > cnt)
			n = cnt;
		/* A destination just above the source sees its own writes
		 * element by element: copy at most the gap at a time. */
		if (movs && di > si && di - si < n * size)
			n = (di - si) / size;
		if (n == 0)
			break;   /* straddles a page or overlaps closely: go singly */
		uint64_t bytes = n * size;
		if (((di + bytes - 1) & m) < di || (movs && ((si + bytes - 1) & m) < si))
			break;
		if (movs) {
			bt_read_buf(c, src_seg(i), si, buf, bytes);
		} else {
			uint64_t v = c->r[0];
			if (size == 1)
				memset(buf, (int)(v & 0xff), bytes);
			else
				for (uint64_t k = 0; k < bytes; k += size)
					memcpy(buf + k, &v, size);
		}
		bt_write_buf(c, SEG_ES, di, buf, bytes);
		aset(c, i, CPU_RDI, di + bytes);
		if (movs)
			aset(c, i, CPU_RSI, si + bytes);
		cnt -= n;
		aset(c, i, CPU_RCX, cnt);
		done += n;
	}
	return done;
}

static void ex_rep(struct bt_cpu *c, const struct bt_insn *i)
{
	int size = (i->op & 1) ? i->opsize : 1;
	uint8_t b = BT_BYTE(i->op);
	int cond = b == 0xa6 || b == 0xa7 || b == 0xae || b == 0xaf;
	uint64_t budget = REP_BUDGET;
	for (;;) {
		uint64_t cnt = areg(c, i, CPU_RCX);
		if (cnt == 0)
			return;
		if (!cond && !(c->rflags & BT_DF_FLAG) && (b <= 0xa5 || b == 0xaa || b == 0xab)) {
			uint64_t n = bulk(c, i, size, cnt);
			if (n) {
				if (n * size >= budget)
					goto yield;
				budget -= n * size;
				continue;
			}
		}
		str_once(c, i, size);
		aset(c, i, CPU_RCX, cnt - 1);
		if (cond) {
			int zf = bt_cond(c, 4);
			if (i->rep == 0xf3 ? !zf : zf)
				return;
		}
		if (budget <= (uint64_t)size)
			goto yield;
		budget -= size;
	}
yield:
	if (areg(c, i, CPU_RCX) != 0)
		c->next_rip -= i->len;   /* run again */
}

bt_exec_fn bt_sel_string(const struct bt_insn *i)
{
	if (BT_MAP(i->op) != 0)
		return NULL;
	switch (BT_BYTE(i->op)) {
	case 0xa4 ... 0xa7: case 0xaa ... 0xaf:
		return i->rep ? ex_rep : ex_string;
	}
	return NULL;
}
