/* BT shadow MMU: the guest page-table walker (no paging, 32-bit legacy with
 * 4 MiB pages, PAE, 4-level with 2 MiB / 1 GiB pages), permission checks
 * (U/S, R/W, CR0.WP, NX), accessed/dirty bit updates as the CPU makes them,
 * page-fault error codes, and the soft TLB fill and flush operations. */
#include <string.h>
#include "monitor/bt/sys_int.h"
#include "monitor/guest_mem.h"
#include "monitor/vm.h"

#define PTE_P   0x1ULL
#define PTE_W   0x2ULL
#define PTE_U   0x4ULL
#define PTE_A   0x20ULL
#define PTE_D   0x40ULL
#define PTE_PS  0x80ULL
#define PTE_G   0x100ULL
#define PTE_NX  (1ULL << 63)

#define PF_P    0x1u
#define PF_W    0x2u
#define PF_U    0x4u
#define PF_RSVD 0x8u
#define PF_I    0x10u

/* MAXPHYADDR is 40 (cpuid.c reports it): bits 40-51 of an entry's address
 * field are reserved. */
#define ADDR_MASK  0x000000fffffff000ULL
#define ADDR_RSVD  0x000fff0000000000ULL

#define CR0_PG (1ULL << 31)
#define CR0_WP (1ULL << 16)
#define CR4_PSE (1ULL << 4)
#define CR4_PAE (1ULL << 5)
#define CR4_PGE (1ULL << 7)
#define EFER_LMA (1ULL << 10)
#define EFER_NXE (1ULL << 11)

/* A pointer to a paging-structure entry in RAM, or NULL (entries outside
 * RAM read as not present). */
static void *entry_ptr(struct bt_cpu *c, uint64_t pa, int size)
{
	if (pa & (uint64_t)(size - 1))
		return NULL;
	return bt_phys_ptr(c->sys, pa);
}

static void mark_pt_dirty(struct bt_cpu *c, uint8_t *host)
{
	uint64_t off = (uint64_t)(host - c->sys->ram);
	gmem_mark_dirty(c->vm->mem, gmem_off_to_gpa(c->vm->mem, off), 8);
}

int bt_walk(struct bt_cpu *c, uint64_t la, int kind, int user, uint64_t *pa,
	    unsigned *flags, uint32_t *err)
{
	uint32_t base_err = (kind == BT_ACC_W ? PF_W : 0) | (user ? PF_U : 0);
	if (!(c->cr0 & CR0_PG)) {
		*pa = (c->efer & EFER_LMA) ? la : (la & 0xffffffffULL);
		*flags = BT_WK_WOK | BT_WK_DIRTY;
		return 0;
	}
	bool nxe = (c->efer & EFER_NXE) != 0;
	bool pge = (c->cr4 & CR4_PGE) != 0;
	/* entries used, for A/D updates after the permission check */
	void *ents[4];
	int esize = 8, nents = 0;
	uint64_t final = 0, page_mask = 0xfff, phys = 0;
	uint64_t uok = 1, wok = 1, nx = 0;
	uint64_t rsvd_nx = nxe ? 0 : PTE_NX;

	if (!(c->cr4 & CR4_PAE)) {
		/* 32-bit legacy paging */
		esize = 4;
		uint64_t a = (c->cr3 & 0xfffff000ULL) + ((la >> 22) & 0x3ff) * 4;
		uint32_t *pp = entry_ptr(c, a, 4);
		uint32_t pde = pp ? *pp : 0;
		if (!(pde & PTE_P))
			goto not_present;
		ents[nents++] = pp;
		uok &= pde >> 2; wok &= pde >> 1;
		if ((pde & PTE_PS) && (c->cr4 & CR4_PSE)) {
			if (pde & (1u << 21))
				goto rsvd;
			final = pde;
			page_mask = 0x3fffff;
			phys = (pde & 0xffc00000ULL) | ((uint64_t)((pde >> 13) & 0xff) << 32);
		} else {
			a = (pde & 0xfffff000ULL) + ((la >> 12) & 0x3ff) * 4;
			pp = entry_ptr(c, a, 4);
			uint32_t pte = pp ? *pp : 0;
			if (!(pte & PTE_P))
				goto not_present;
			ents[nents++] = pp;
			uok &= pte >> 2; wok &= pte >> 1;
			final = pte;
			phys = pte & 0xfffff000ULL;
		}
	} else {
		uint64_t table;
		int level;
		if (c->efer & EFER_LMA) {
			table = c->cr3 & ADDR_MASK;
			level = 4;
		} else {
			/* PAE: the PDPTE */
			uint64_t a = (c->cr3 & 0xffffffe0ULL) + ((la >> 30) & 3) * 8;
			uint64_t *pp = entry_ptr(c, a, 8);
			uint64_t e = pp ? *pp : 0;
			if (!(e & PTE_P))
				goto not_present;
			if (e & (0x1e6ULL | ADDR_RSVD | 0xfff0000000000000ULL))
				goto rsvd;
			table = e & ADDR_MASK;
			level = 2;
		}
		for (;; level--) {
			int shift = 12 + 9 * (level - 1);
			uint64_t a = table + ((la >> shift) & 511) * 8;
			uint64_t *pp = entry_ptr(c, a, 8);
			uint64_t e = pp ? *pp : 0;
			if (!(e & PTE_P))
				goto not_present;
			uint64_t rs = ADDR_RSVD | rsvd_nx;
			if (level == 4)
				rs |= PTE_PS;
			bool large = (level == 3 || level == 2) && (e & PTE_PS);
			if (large)
				rs |= level == 3 ? 0x3fffe000ULL : 0x1fe000ULL;
			if (e & rs)
				goto rsvd;
			ents[nents++] = pp;
			uok &= e >> 2; wok &= e >> 1;
			if (nxe)
				nx |= e >> 63;
			if (large || level == 1) {
				final = e;
				page_mask = (1ULL << shift) - 1;
				phys = e & ADDR_MASK & ~page_mask;
				break;
			}
			table = e & ADDR_MASK;
		}
	}
	uok &= 1; wok &= 1;

	/* permission checks */
	bool wp = (c->cr0 & CR0_WP) != 0;
	bool write_ok = user ? (uok && wok) : (wok || !wp);
	if (user && !uok)
		goto protection;
	if (kind == BT_ACC_W && !write_ok)
		goto protection;
	if (kind == BT_ACC_X && nx)
		goto protection;

	/* accessed / dirty */
	for (int k = 0; k < nents; k++) {
		if (esize == 4) {
			uint32_t *p = ents[k];
			if (!(*p & PTE_A)) {
				*p |= PTE_A;
				mark_pt_dirty(c, (uint8_t *)p);
			}
		} else {
			uint64_t *p = ents[k];
			if (!(*p & PTE_A)) {
				*p |= PTE_A;
				mark_pt_dirty(c, (uint8_t *)p);
			}
		}
	}
	bool dirty = (final & PTE_D) != 0;
	if (kind == BT_ACC_W && !dirty) {
		void *p = ents[nents - 1];
		if (esize == 4)
			*(uint32_t *)p |= PTE_D;
		else
			*(uint64_t *)p |= PTE_D;
		dirty = true;
	}
	*pa = phys | (la & page_mask);
	*flags = (write_ok ? BT_WK_WOK : 0) | (dirty ? BT_WK_DIRTY : 0) |
		 ((pge && (final & PTE_G)) ? BT_WK_GLOBAL : 0) |
		 (page_mask > 0xfff ? BT_WK_LARGE : 0);
	return 0;

not_present:
	*err = base_err | ((kind == BT_ACC_X && nxe && (c->cr4 & CR4_PAE)) ? PF_I : 0);
	return -1;
rsvd:
	*err = base_err | PF_P | PF_RSVD |
	       ((kind == BT_ACC_X && nxe && (c->cr4 & CR4_PAE)) ? PF_I : 0);
	return -1;
protection:
	*err = base_err | PF_P | ((kind == BT_ACC_X && nxe) ? PF_I : 0);
	return -1;
}

static void tlb_set(struct bt_sys *s, int user, int kind, uint64_t page,
		    uint8_t *host, unsigned fl)
{
	uint8_t g = ((fl & BT_WK_GLOBAL) ? 1 : 0) | ((fl & BT_WK_LARGE) ? 2 : 0);
	s->have_large |= g >> 1;
	unsigned idx = (unsigned)(page >> 12) & (BT_TLB_SIZE - 1);
	s->tlb[user][kind][idx].tag = page;
	s->tlb[user][kind][idx].addend = (uintptr_t)host - (uintptr_t)page;
	s->tlb_global[user][kind][idx] = g;
}

uint64_t bt_xlate(struct bt_cpu *c, uint64_t la, int kind, int user)
{
	struct bt_sys *s = c->sys;
	uint64_t pa;
	unsigned fl;
	uint32_t err;
	if (bt_walk(c, la, kind, user, &pa, &fl, &err) < 0)
		bt_raise_pf(c, la, err);
	uint64_t ppage = pa & ~0xfffULL;
	uint8_t *host = bt_phys_ptr(s, ppage);
	if (!host)
		return pa;
	uint64_t pg = (uint64_t)(host - s->ram) >> 12;
	uint64_t lpage = la & ~0xfffULL;
	bool code = c->eng && c->eng->code_page[pg];
	if (kind == BT_ACC_W && code) {
		/* the write that follows hits translated code */
		bt_code_page_written(c->eng, pg);
		code = false;
	}
	if (kind != BT_ACC_W)
		tlb_set(s, user, kind, lpage, host, fl);
	/* A write entry needs D set, write permission, no code on the page
	 * and the page in the dirty log. */
	if ((fl & BT_WK_DIRTY) && (fl & BT_WK_WOK) && !code &&
	    (kind == BT_ACC_W || kind == BT_ACC_R)) {
		gmem_mark_dirty(c->vm->mem, ppage, GMEM_PAGE);
		tlb_set(s, user, BT_ACC_W, lpage, host, fl);
	}
	return pa;
}

void bt_tlb_flush_all(struct bt_cpu *c)
{
	struct bt_sys *s = c->sys;
	for (int u = 0; u < 2; u++)
		for (int k = 0; k < 3; k++)
			for (unsigned i = 0; i < BT_TLB_SIZE; i++)
				s->tlb[u][k][i].tag = BT_TLB_INVALID;
}

void bt_tlb_flush_nonglobal(struct bt_cpu *c)
{
	struct bt_sys *s = c->sys;
	for (int u = 0; u < 2; u++)
		for (int k = 0; k < 3; k++)
			for (unsigned i = 0; i < BT_TLB_SIZE; i++)
				if (!(s->tlb_global[u][k][i] & 1))
					s->tlb[u][k][i].tag = BT_TLB_INVALID;
}

void bt_tlb_flush_page(struct bt_cpu *c, uint64_t la)
{
	struct bt_sys *s = c->sys;
	uint64_t page = la & ~0xfffULL;
	unsigned idx = (unsigned)(page >> 12) & (BT_TLB_SIZE - 1);
	for (int u = 0; u < 2; u++)
		for (int k = 0; k < 3; k++)
			if (s->tlb[u][k][idx].tag == page)
				s->tlb[u][k][idx].tag = BT_TLB_INVALID;
	/* INVLPG of an address in a large page invalidates the whole large
	 * translation: drop every entry that came from a large page. */
	if (s->have_large) {
		for (int u = 0; u < 2; u++)
			for (int k = 0; k < 3; k++)
				for (unsigned i = 0; i < BT_TLB_SIZE; i++)
					if (s->tlb_global[u][k][i] & 2)
						s->tlb[u][k][i].tag = BT_TLB_INVALID;
		s->have_large = 0;
	}
}

void bt_tlb_flush_writes(struct bt_cpu *c)
{
	struct bt_sys *s = c->sys;
	for (int u = 0; u < 2; u++)
		for (unsigned i = 0; i < BT_TLB_SIZE; i++)
			s->tlb[u][BT_ACC_W][i].tag = BT_TLB_INVALID;
}
