/* Inline fast path of the BT memory access functions for the ISA half's
 * exec functions: in 64-bit mode a read or write that hits the soft TLB
 * costs one tag compare (the tag is compared with the page of the access's
 * last byte, which, the TLB being direct-mapped by the page of the first
 * byte, also rejects page-crossing accesses). Everything else (legacy
 * modes with segment checks, misses, page crossings, MMIO, faults) calls
 * the out-of-line functions of mem.c, which do the full job. */
#ifndef ROAM_BT_MEM_FAST_H
#define ROAM_BT_MEM_FAST_H
#include <string.h>
#include "monitor/bt/sys_int.h"

static inline __attribute__((always_inline)) uint64_t bt_ld_host(const void *p, int size)
{
	switch (size) {
	case 1: return *(const uint8_t *)p;
	case 2: { uint16_t v; memcpy(&v, p, 2); return v; }
	case 4: { uint32_t v; memcpy(&v, p, 4); return v; }
	default: { uint64_t v; memcpy(&v, p, 8); return v; }
	}
}

static inline __attribute__((always_inline)) void bt_st_host(void *p, int size, uint64_t v)
{
	switch (size) {
	case 1: *(uint8_t *)p = (uint8_t)v; break;
	case 2: { uint16_t x = (uint16_t)v; memcpy(p, &x, 2); break; }
	case 4: { uint32_t x = (uint32_t)v; memcpy(p, &x, 4); break; }
	default: memcpy(p, &v, 8); break;
	}
}

/* The TLB entry of kind that maps [la, la+size) within one page, or NULL. */
static inline __attribute__((always_inline)) const struct bt_tlb_ent *
bt_tlb_hit(const struct bt_cpu *c, int kind, uint64_t la, int size)
{
	const struct bt_tlb_ent *e = &c->sys->tlb_cur[kind][(la >> 12) & (BT_TLB_SIZE - 1)];
	return e->tag == ((la + (uint64_t)size - 1) & ~0xfffULL) ? e : NULL;
}

static inline __attribute__((always_inline)) uint64_t bt_lin64(const struct bt_cpu *c, int seg, uint64_t off)
{
	return seg >= SEG_FS ? off + c->seg[seg].base : off;
}

static inline __attribute__((always_inline)) uint64_t
bt_read_fast(struct bt_cpu *c, int seg, uint64_t off, int size)
{
	if (__builtin_expect(c->mode == BT_MODE64, 1)) {
		uint64_t la = bt_lin64(c, seg, off);
		const struct bt_tlb_ent *e = bt_tlb_hit(c, BT_ACC_R, la, size);
		if (__builtin_expect(e != NULL, 1))
			return bt_ld_host((const uint8_t *)(e->addend + la), size);
	}
	return bt_read(c, seg, off, size);
}

static inline __attribute__((always_inline)) uint64_t
bt_read_rmw_fast(struct bt_cpu *c, int seg, uint64_t off, int size)
{
	if (__builtin_expect(c->mode == BT_MODE64, 1)) {
		uint64_t la = bt_lin64(c, seg, off);
		const struct bt_tlb_ent *e = bt_tlb_hit(c, BT_ACC_W, la, size);
		if (__builtin_expect(e != NULL, 1))
			return bt_ld_host((const uint8_t *)(e->addend + la), size);
	}
	return bt_read_rmw(c, seg, off, size);
}

static inline __attribute__((always_inline)) void
bt_write_fast(struct bt_cpu *c, int seg, uint64_t off, int size, uint64_t val)
{
	if (__builtin_expect(c->mode == BT_MODE64, 1)) {
		uint64_t la = bt_lin64(c, seg, off);
		const struct bt_tlb_ent *e = bt_tlb_hit(c, BT_ACC_W, la, size);
		if (__builtin_expect(e != NULL, 1)) {
			bt_st_host((uint8_t *)(e->addend + la), size, val);
			return;
		}
	}
	bt_write(c, seg, off, size, val);
}

/* 64-bit mode push/pop (RSP is the full stack pointer there); faults
 * leave RSP unchanged as in mem.c. */
static inline __attribute__((always_inline)) void bt_push_fast(struct bt_cpu *c, int size, uint64_t val)
{
	if (__builtin_expect(c->mode == BT_MODE64, 1)) {
		uint64_t sp = c->r[CPU_RSP] - (uint64_t)size;
		const struct bt_tlb_ent *e = bt_tlb_hit(c, BT_ACC_W, sp, size);
		if (__builtin_expect(e != NULL, 1)) {
			bt_st_host((uint8_t *)(e->addend + sp), size, val);
			c->r[CPU_RSP] = sp;
			return;
		}
	}
	bt_push(c, size, val);
}

static inline __attribute__((always_inline)) uint64_t bt_pop_fast(struct bt_cpu *c, int size)
{
	if (__builtin_expect(c->mode == BT_MODE64, 1)) {
		uint64_t sp = c->r[CPU_RSP];
		const struct bt_tlb_ent *e = bt_tlb_hit(c, BT_ACC_R, sp, size);
		if (__builtin_expect(e != NULL, 1)) {
			uint64_t v = bt_ld_host((const uint8_t *)(e->addend + sp), size);
			c->r[CPU_RSP] = sp + (uint64_t)size;
			return v;
		}
	}
	return bt_pop(c, size);
}
#endif
