/* BT port I/O: IN/OUT and INS/OUTS (with REP) through vm->pio, with the
 * protected-mode permission check (CPL <= IOPL, else the TSS I/O bitmap;
 * always the bitmap in virtual-8086 mode). */
#include "monitor/bt/exec_int.h"
#include "monitor/bt/sys_int.h"
#include "monitor/bus.h"
#include "monitor/vm.h"

static void io_check(struct bt_cpu *c, unsigned port, int size)
{
	if (!(c->cr0 & 1))
		return;
	int iopl = (int)((c->rflags >> 12) & 3);
	if (!(c->rflags & BT_VM) && c->cpl <= iopl)
		return;
	const struct cpu_seg *tr = &c->seg[SEG_TR];
	int type = SEG_ATTR_TYPE(tr->attr);
	if ((tr->attr & SEG_ATTR_UNUSABLE) || (type != 9 && type != 11) || tr->limit < 0x67)
		bt_raise_err(c, BT_GP, 0);
	uint64_t mask = (c->efer & (1ULL << 10)) ? ~0ULL : 0xffffffffULL;
	uint64_t bm = bt_lin_read(c, (tr->base + 0x66) & mask, 2, 0);
	uint64_t off = bm + port / 8;
	if (off + 1 > tr->limit)
		bt_raise_err(c, BT_GP, 0);
	uint64_t bits = bt_lin_read(c, (tr->base + off) & mask, 2, 0);
	if ((bits >> (port & 7)) & ((1u << size) - 1))
		bt_raise_err(c, BT_GP, 0);
}

static uint64_t pio_in(struct bt_cpu *c, unsigned port, int size)
{
	uint64_t v = 0;
	c->sys->check_events = 1;
	c->sys->irq_maybe = 1;
	if (c->vm->pio)
		bus_read(c->vm->pio, port, &v, (unsigned)size);
	else
		v = ~0ULL;
	return v & ((1ULL << (size * 8)) - 1);
}

static void pio_out(struct bt_cpu *c, unsigned port, int size, uint64_t v)
{
	c->sys->check_events = 1;
	c->sys->irq_maybe = 1;
	if (c->vm->pio)
		bus_write(c->vm->pio, port, &v, (unsigned)size);
}

static uint64_t amask(const struct bt_insn *i)
{
	return i->addrsize == 8 ? ~0ULL : i->addrsize == 4 ? 0xffffffffULL : 0xffffULL;
}

static void set_areg(struct bt_cpu *c, const struct bt_insn *i, int r, uint64_t v)
{
	uint64_t m = amask(i);
	if (i->addrsize == 4)
		c->r[r] = (uint32_t)v;
	else
		c->r[r] = (c->r[r] & ~m) | (v & m);
}

void bt_io_exec(struct bt_cpu *c, const struct bt_insn *i)
{
	uint8_t b = (uint8_t)BT_BYTE(i->op);
	int size = (b & 1) ? (i->opsize == 2 ? 2 : 4) : 1;
	unsigned port;
	if (b >= 0xe4 && b <= 0xe7)
		port = (unsigned)(i->imm & 0xff);
	else
		port = (unsigned)(c->r[CPU_RDX] & 0xffff);
	io_check(c, port, size);
	switch (b) {
	case 0xe4: case 0xe5: case 0xec: case 0xed:
		reg_wr(c, i, CPU_RAX, size, pio_in(c, port, size));
		return;
	case 0xe6: case 0xe7: case 0xee: case 0xef:
		pio_out(c, port, size, c->r[CPU_RAX]);
		return;
	default:
		break;
	}
	/* INS / OUTS */
	uint64_t m = amask(i);
	int64_t step = (c->rflags & BT_DF_FLAG) ? -size : size;
	bool rep = i->rep != 0;
	uint64_t count = rep ? (c->r[CPU_RCX] & m) : 1;
	bool ins = b == 0x6c || b == 0x6d;
	int seg = i->seg != 0xff ? i->seg : SEG_DS;
	while (count) {
		if (ins) {
			uint64_t di = c->r[CPU_RDI] & m;
			/* probe the destination first so a fault does not lose data */
			bt_read_rmw(c, SEG_ES, di, size);
			uint64_t v = pio_in(c, port, size);
			bt_write(c, SEG_ES, di, size, v);
			set_areg(c, i, CPU_RDI, di + (uint64_t)step);
		} else {
			uint64_t si = c->r[CPU_RSI] & m;
			uint64_t v = bt_read(c, seg, si, size);
			pio_out(c, port, size, v);
			set_areg(c, i, CPU_RSI, si + (uint64_t)step);
		}
		count--;
		if (rep)
			set_areg(c, i, CPU_RCX, count);
	}
}
