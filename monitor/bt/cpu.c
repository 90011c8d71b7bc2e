/* BT vCPU construction: allocation of the system half's per-vCPU state, the
 * architectural reset state, and the helpers that keep the derived state
 * (mode, CPL, TLB privilege index, segment permission cache) in step with
 * the architectural registers. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "monitor/bt/sys_int.h"
#include "monitor/guest_mem.h"
#include "monitor/vm.h"

#define CR0_PE 1ULL
#define EFER_LMA (1ULL << 10)

void bt_set_seg_real(struct bt_cpu *c, int seg, uint16_t sel)
{
	struct cpu_seg *s = &c->seg[seg];
	s->sel = sel;
	s->base = (uint64_t)sel << 4;
	if (c->rflags & BT_VM) {
		s->limit = 0xffff;
		s->attr = 0xf3;  /* data RW accessed, DPL 3, present */
	}
	/* in real mode the limit and attributes stay as they were loaded
	 * ("big real mode"), except that the segment becomes usable */
	s->attr &= ~SEG_ATTR_UNUSABLE;
	s->attr |= SEG_ATTR_P;
	bt_seg_cache(c, seg);
}

void bt_mode_changed(struct bt_cpu *c)
{
	struct bt_sys *s = c->sys;
	uint8_t mode;
	if (!(c->cr0 & CR0_PE)) {
		c->cpl = 0;
		mode = BT_MODE16;
	} else if (c->rflags & BT_VM) {
		c->cpl = 3;
		mode = BT_MODE16;
	} else {
		c->cpl = (uint8_t)SEG_ATTR_DPL(c->seg[SEG_CS].attr);
		if ((c->efer & EFER_LMA) && (c->seg[SEG_CS].attr & SEG_ATTR_L))
			mode = BT_MODE64;
		else
			mode = (c->seg[SEG_CS].attr & SEG_ATTR_DB) ? BT_MODE32 : BT_MODE16;
	}
	c->mode = mode;
	bt_set_user(s, c->cpl == 3);
	for (int i = 0; i < SEG_COUNT; i++)
		bt_seg_cache(c, i);
}

static void reset_state(struct bt_cpu *c)
{
	void *sys = c->sys;
	struct vm *vm = c->vm;
	struct bt_engine *eng = c->eng;
	int index = c->index;
	memset(c, 0, offsetof(struct bt_cpu, jmp));
	c->sys = sys;
	c->vm = vm;
	c->eng = eng;
	c->index = index;
	c->rflags = 2;
	c->rip = 0xfff0;
	c->cr0 = 0x60000010;
	c->r[CPU_RDX] = 0x600;   /* family 6 */
	for (int i = 0; i < SEG_COUNT; i++) {
		c->seg[i].sel = 0;
		c->seg[i].base = 0;
		c->seg[i].limit = 0xffff;
		c->seg[i].attr = SEG_ATTR_P | SEG_ATTR_S | 0x3;
	}
	c->seg[SEG_CS].sel = 0xf000;
	c->seg[SEG_CS].base = 0xffff0000;
	c->seg[SEG_CS].attr = SEG_ATTR_P | SEG_ATTR_S | 0xb;
	c->seg[SEG_LDTR].attr = SEG_ATTR_P | 0x2;
	c->seg[SEG_TR].attr = SEG_ATTR_P | 0xb;
	c->gdt.limit = 0xffff;
	c->idt.limit = 0xffff;
	c->dr[6] = 0xffff0ff0;
	c->dr[7] = 0x400;
	c->fcw = 0x37f;
	c->ftw = 0xffff;
	c->mxcsr = 0x1f80;
	c->xcr0 = 1;
	c->pat = 0x0007040600070406ULL;
	c->misc_enable = 1;  /* fast strings */
	c->mp_state = index == 0 ? CPU_RUNNABLE : CPU_WAIT_SIPI;
}

void bt_cpu_reset(struct bt_cpu *c)
{
	reset_state(c);
	bt_mode_changed(c);
	bt_tlb_flush_all(c);
	struct bt_sys *s = c->sys;
	s->delivering = 0;
	s->tf_pending = 0;
	s->nmi_masked = 0;
	s->prev = NULL;
}

int bt_cpu_init(struct bt_cpu *c, struct vm *vm, int index)
{
	memset(c, 0, sizeof(*c));
	struct bt_sys *s = aligned_alloc(64, (sizeof(*s) + 63) & ~(size_t)63);
	if (!s)
		return -ENOMEM;
	memset(s, 0, sizeof(*s));
	s->ram = gmem_base(vm->mem);
	s->ram_size = gmem_size(vm->mem);
	s->ram_low = s->ram_size < GMEM_LOW_MAX ? s->ram_size : GMEM_LOW_MAX;
	c->sys = s;
	c->vm = vm;
	c->index = index;
	bt_cpu_reset(c);
	return 0;
}

void bt_cpu_fini(struct bt_cpu *c)
{
	if (!c)
		return;
	free(c->sys);
	c->sys = NULL;
}
