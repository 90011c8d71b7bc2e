/* BT memory access path: segmentation (base, limit and type checks outside
 * 64-bit mode, FS/GS bases and canonical checks in it), the soft-TLB fast
 * path of bt_read/bt_write and friends, the slow path through the page
 * walker, page-crossing accesses, MMIO dispatch (the LAPIC page to the
 * current vCPU's LAPIC, the rest to vm->mmio) and the stack helpers. */
#include <string.h>
#include "monitor/bt/sys_int.h"
#include "monitor/bus.h"
#include "monitor/guest_mem.h"
#include "monitor/irq.h"
#include "monitor/vm.h"

#define CR0_PE 1ULL

/* Weak so that programs that link the memory path without the interrupt
 * controllers (unit tests, whose vm->irq is NULL) need not pull in the
 * whole machine; the roam binary always links irq code. */
#pragma weak lapic_mmio_read
#pragma weak lapic_mmio_write

static inline uint64_t load(const uint8_t *p, int size)
{
	switch (size) {
	case 1: return *p;
	case 2: { uint16_t v; memcpy(&v, p, 2); return v; }
	case 4: { uint32_t v; memcpy(&v, p, 4); return v; }
	default: { uint64_t v; memcpy(&v, p, 8); return v; }
	}
}

static inline void store(uint8_t *p, int size, uint64_t v)
{
	switch (size) {
	case 1: *p = (uint8_t)v; break;
	case 2: { uint16_t x = (uint16_t)v; memcpy(p, &x, 2); break; }
	case 4: { uint32_t x = (uint32_t)v; memcpy(p, &x, 4); break; }
	default: memcpy(p, &v, 8); break;
	}
}

void bt_seg_cache(struct bt_cpu *c, int seg)
{
	struct bt_sys *s = c->sys;
	uint32_t a = c->seg[seg].attr;
	uint8_t p;
	if (!(c->cr0 & CR0_PE) || (c->rflags & BT_VM))
		p = BT_SP_R | BT_SP_W;
	else if (a & SEG_ATTR_UNUSABLE)
		p = BT_SP_BAD;
	else if (!(a & SEG_ATTR_S))
		p = BT_SP_R | BT_SP_W;   /* LDTR / TR: never used for data */
	else if (a & 8)
		p = (a & 2) ? BT_SP_R : 0;
	else
		p = BT_SP_R | ((a & 2) ? BT_SP_W : 0) | ((a & 4) ? BT_SP_DOWN : 0) |
		    ((a & SEG_ATTR_DB) ? BT_SP_BIG : 0);
	s->segperm[seg] = p;
}

static _Noreturn void seg_fault(struct bt_cpu *c, int seg)
{
	bt_raise_err(c, seg == SEG_SS ? BT_SS : BT_GP, 0);
}

static inline bool canonical(uint64_t a)
{
	return ((a + 0x0000800000000000ULL) >> 48) == 0;
}

static inline __attribute__((always_inline))
uint64_t seg_linear(struct bt_cpu *c, int seg, uint64_t off, uint64_t size, int kind)
{
	if (c->mode == BT_MODE64) {
		uint64_t la = off;
		if (seg >= SEG_FS)
			la += c->seg[seg].base;
		if (__builtin_expect(!canonical(la) || !canonical(la + size - 1), 0))
			seg_fault(c, seg);
		return la;
	}
	uint8_t p = c->sys->segperm[seg];
	const struct cpu_seg *sg = &c->seg[seg];
	uint8_t need = kind == BT_ACC_W ? BT_SP_W : BT_SP_R;
	if (__builtin_expect(!(p & need), 0))
		seg_fault(c, seg);
	uint64_t last = off + size - 1;
	if (__builtin_expect(p & BT_SP_DOWN, 0)) {
		uint64_t top = (p & BT_SP_BIG) ? 0xffffffffULL : 0xffffULL;
		if (off <= sg->limit || last > top)
			seg_fault(c, seg);
	} else if (__builtin_expect(last > sg->limit, 0)) {
		seg_fault(c, seg);
	}
	return (sg->base + off) & 0xffffffffULL;
}

uint64_t bt_seg_linear(struct bt_cpu *c, int seg, uint64_t off, uint64_t size, int kind)
{
	return seg_linear(c, seg, off, size, kind);
}

/* ---- physical ---- */

uint64_t bt_phys_read(struct bt_cpu *c, uint64_t pa, int size)
{
	struct bt_sys *s = c->sys;
	uint8_t *h = bt_phys_ptr(s, pa);
	if (h)
		return load(h, size);
	uint64_t v = 0;
	s->check_events = 1;
	s->irq_maybe = 1;
	if ((pa & ~0xfffULL) == LAPIC_BASE && c->vm->irq && lapic_mmio_read)
		lapic_mmio_read(c->vm->irq, c->index, pa & 0xfff, &v, (unsigned)size);
	else if (c->vm->mmio)
		bus_read(c->vm->mmio, pa, &v, (unsigned)size);
	else
		v = ~0ULL;
	if (size < 8)
		v &= (1ULL << (size * 8)) - 1;
	return v;
}

void bt_phys_write(struct bt_cpu *c, uint64_t pa, int size, uint64_t val)
{
	struct bt_sys *s = c->sys;
	uint8_t *h = bt_phys_ptr(s, pa);
	if (h) {
		uint64_t pg = (uint64_t)(h - s->ram) >> 12;
		if (c->eng && c->eng->code_page[pg])
			bt_code_page_written(c->eng, pg);
		store(h, size, val);
		gmem_mark_dirty(c->vm->mem, pa, (uint64_t)size);
		return;
	}
	s->check_events = 1;
	s->irq_maybe = 1;
	if ((pa & ~0xfffULL) == LAPIC_BASE && c->vm->irq && lapic_mmio_write)
		lapic_mmio_write(c->vm->irq, c->index, pa & 0xfff, &val, (unsigned)size);
	else if (c->vm->mmio)
		bus_write(c->vm->mmio, pa, &val, (unsigned)size);
}

/* ---- linear, slow path ---- */

static uint64_t lin_read_slow(struct bt_cpu *c, uint64_t la, int size, int user, int kind)
{
	if (((la & 0xfff) + (uint64_t)size) <= 4096) {
		uint64_t pa = bt_xlate(c, la, kind, user);
		return bt_phys_read(c, pa, size);
	}
	/* crosses a page: translate both before touching either */
	uint64_t la2 = (la | 0xfff) + 1;
	if (c->mode != BT_MODE64)
		la2 &= 0xffffffffULL;
	int n1 = (int)(4096 - (la & 0xfff));
	uint64_t pa1 = bt_xlate(c, la, kind, user);
	uint64_t pa2 = bt_xlate(c, la2, kind, user);
	uint64_t v = 0;
	for (int k = 0; k < size; k++) {
		uint64_t b = k < n1 ? bt_phys_read(c, pa1 + k, 1)
				    : bt_phys_read(c, pa2 + (k - n1), 1);
		v |= b << (8 * k);
	}
	return v;
}

static void lin_write_slow(struct bt_cpu *c, uint64_t la, int size, uint64_t val, int user)
{
	if (((la & 0xfff) + (uint64_t)size) <= 4096) {
		uint64_t pa = bt_xlate(c, la, BT_ACC_W, user);
		bt_phys_write(c, pa, size, val);
		return;
	}
	uint64_t la2 = (la | 0xfff) + 1;
	if (c->mode != BT_MODE64)
		la2 &= 0xffffffffULL;
	int n1 = (int)(4096 - (la & 0xfff));
	uint64_t pa1 = bt_xlate(c, la, BT_ACC_W, user);
	uint64_t pa2 = bt_xlate(c, la2, BT_ACC_W, user);
	for (int k = 0; k < size; k++) {
		uint8_t b = (uint8_t)(val >> (8 * k));
		if (k < n1)
			bt_phys_write(c, pa1 + k, 1, b);
		else
			bt_phys_write(c, pa2 + (k - n1), 1, b);
	}
}

uint64_t bt_lin_read(struct bt_cpu *c, uint64_t la, int size, int user)
{
	struct bt_sys *s = c->sys;
	const struct bt_tlb_ent *e = &s->tlb[user][BT_ACC_R][(la >> 12) & (BT_TLB_SIZE - 1)];
	if (e->tag == (la & ~0xfffULL) && (la & 0xfff) <= 4096u - (unsigned)size)
		return load((const uint8_t *)(e->addend + la), size);
	return lin_read_slow(c, la, size, user, BT_ACC_R);
}

void bt_lin_write(struct bt_cpu *c, uint64_t la, int size, uint64_t val, int user)
{
	struct bt_sys *s = c->sys;
	const struct bt_tlb_ent *e = &s->tlb[user][BT_ACC_W][(la >> 12) & (BT_TLB_SIZE - 1)];
	if (e->tag == (la & ~0xfffULL) && (la & 0xfff) <= 4096u - (unsigned)size) {
		store((uint8_t *)(e->addend + la), size, val);
		return;
	}
	lin_write_slow(c, la, size, val, user);
}

/* ---- the ISA half's entry points ----
 * In 64-bit mode the fast path skips the canonical check: every TLB tag is
 * a canonical page, so a non-canonical address (or an access running off
 * the canonical range) misses and the slow path checks it. */

static inline __attribute__((always_inline))
uint64_t fast_linear(struct bt_cpu *c, int seg, uint64_t off, int size, int kind)
{
	if (__builtin_expect(c->mode == BT_MODE64, 1))
		return seg >= SEG_FS ? off + c->seg[seg].base : off;
	return seg_linear(c, seg, off, (uint64_t)size, kind);
}

static inline void check_canonical(struct bt_cpu *c, int seg, uint64_t la, int size)
{
	if (c->mode == BT_MODE64 && (!canonical(la) || !canonical(la + (uint64_t)size - 1)))
		seg_fault(c, seg);
}

static uint64_t __attribute__((noinline)) read_slow(struct bt_cpu *c, int seg, uint64_t la, int size, int kind)
{
	check_canonical(c, seg, la, size);
	return lin_read_slow(c, la, size, c->sys->user, kind);
}

static void __attribute__((noinline)) write_slow(struct bt_cpu *c, int seg, uint64_t la, int size, uint64_t val)
{
	check_canonical(c, seg, la, size);
	lin_write_slow(c, la, size, val, c->sys->user);
}

uint64_t bt_read(struct bt_cpu *c, int seg, uint64_t off, int size)
{
	uint64_t la = fast_linear(c, seg, off, size, BT_ACC_R);
	const struct bt_tlb_ent *e = &c->sys->tlb_cur[BT_ACC_R][(la >> 12) & (BT_TLB_SIZE - 1)];
	if (__builtin_expect(e->tag == (la & ~0xfffULL) && (la & 0xfff) <= 4096u - (unsigned)size, 1))
		return load((const uint8_t *)(e->addend + la), size);
	return read_slow(c, seg, la, size, BT_ACC_R);
}

void bt_write(struct bt_cpu *c, int seg, uint64_t off, int size, uint64_t val)
{
	uint64_t la = fast_linear(c, seg, off, size, BT_ACC_W);
	const struct bt_tlb_ent *e = &c->sys->tlb_cur[BT_ACC_W][(la >> 12) & (BT_TLB_SIZE - 1)];
	if (__builtin_expect(e->tag == (la & ~0xfffULL) && (la & 0xfff) <= 4096u - (unsigned)size, 1)) {
		store((uint8_t *)(e->addend + la), size, val);
		return;
	}
	write_slow(c, seg, la, size, val);
}

uint64_t bt_read_rmw(struct bt_cpu *c, int seg, uint64_t off, int size)
{
	uint64_t la = fast_linear(c, seg, off, size, BT_ACC_W);
	const struct bt_tlb_ent *e = &c->sys->tlb_cur[BT_ACC_W][(la >> 12) & (BT_TLB_SIZE - 1)];
	if (__builtin_expect(e->tag == (la & ~0xfffULL) && (la & 0xfff) <= 4096u - (unsigned)size, 1))
		return load((const uint8_t *)(e->addend + la), size);
	return read_slow(c, seg, la, size, BT_ACC_W);
}

/* Translates every page of [la, la+n) for kind before any byte moves, so a
 * fault leaves memory untouched. */
static void probe_range(struct bt_cpu *c, uint64_t la, size_t n, int kind)
{
	uint64_t mask = c->mode == BT_MODE64 ? ~0ULL : 0xffffffffULL;
	uint64_t end = la + n;
	for (uint64_t p = la & ~0xfffULL; p < end; p += 4096)
		bt_xlate(c, (p < la ? la : p) & mask, kind, c->sys->user);
}

void bt_read_buf(struct bt_cpu *c, int seg, uint64_t off, void *buf, size_t n)
{
	if (!n)
		return;
	uint64_t la = bt_seg_linear(c, seg, off, n, BT_ACC_R);
	uint64_t mask = c->mode == BT_MODE64 ? ~0ULL : 0xffffffffULL;
	if (((la & 0xfff) + n) > 4096)
		probe_range(c, la, n, BT_ACC_R);
	uint8_t *out = buf;
	size_t done = 0;
	while (done < n) {
		uint64_t a = (la + done) & mask;
		size_t chunk = 4096 - (a & 0xfff);
		if (chunk > n - done)
			chunk = n - done;
		uint64_t pa = bt_xlate(c, a, BT_ACC_R, c->sys->user);
		uint8_t *h = bt_phys_ptr(c->sys, pa);
		if (h && bt_phys_ptr(c->sys, pa + chunk - 1)) {
			memcpy(out + done, h, chunk);
		} else {
			for (size_t k = 0; k < chunk; k++)
				out[done + k] = (uint8_t)bt_phys_read(c, pa + k, 1);
		}
		done += chunk;
	}
}

void bt_write_buf(struct bt_cpu *c, int seg, uint64_t off, const void *buf, size_t n)
{
	if (!n)
		return;
	uint64_t la = bt_seg_linear(c, seg, off, n, BT_ACC_W);
	uint64_t mask = c->mode == BT_MODE64 ? ~0ULL : 0xffffffffULL;
	if (((la & 0xfff) + n) > 4096)
		probe_range(c, la, n, BT_ACC_W);
	const uint8_t *in = buf;
	size_t done = 0;
	while (done < n) {
		uint64_t a = (la + done) & mask;
		size_t chunk = 4096 - (a & 0xfff);
		if (chunk > n - done)
			chunk = n - done;
		uint64_t pa = bt_xlate(c, a, BT_ACC_W, c->sys->user);
		uint8_t *h = bt_phys_ptr(c->sys, pa);
		if (h && bt_phys_ptr(c->sys, pa + chunk - 1)) {
			uint64_t pg = (uint64_t)(h - c->sys->ram) >> 12;
			if (c->eng && c->eng->code_page[pg])
				bt_code_page_written(c->eng, pg);
			memcpy(h, in + done, chunk);
			gmem_mark_dirty(c->vm->mem, pa, chunk);
		} else {
			for (size_t k = 0; k < chunk; k++)
				bt_phys_write(c, pa + k, 1, in[done + k]);
		}
		done += chunk;
	}
}

/* ---- stack ---- */

static inline uint64_t sp_mask(const struct bt_cpu *c)
{
	if (c->mode == BT_MODE64)
		return ~0ULL;
	return (c->seg[SEG_SS].attr & SEG_ATTR_DB) ? 0xffffffffULL : 0xffffULL;
}

void bt_push(struct bt_cpu *c, int size, uint64_t val)
{
	uint64_t m = sp_mask(c);
	uint64_t sp = (c->r[CPU_RSP] - (uint64_t)size) & m;
	bt_write(c, SEG_SS, sp, size, val);
	c->r[CPU_RSP] = (c->r[CPU_RSP] & ~m) | sp;
}

uint64_t bt_pop(struct bt_cpu *c, int size)
{
	uint64_t m = sp_mask(c);
	uint64_t sp = c->r[CPU_RSP] & m;
	uint64_t v = bt_read(c, SEG_SS, sp, size);
	c->r[CPU_RSP] = (c->r[CPU_RSP] & ~m) | ((sp + (uint64_t)size) & m);
	return v;
}
