/* Memory of the test kernels: a bump heap over the RAM above the kernel
 * image, and helpers over the 4-level page tables built by boot.S (map and
 * unmap 4 KiB / 2 MiB pages, split 2 MiB pages, find entries). Intermediate
 * tables are created P|W|U so that the leaf entry alone decides access. */
#include "rt.h"

extern char _end[];
extern u64 boot_pml4[];

static u64 heap_next, heap_end;
static volatile u32 heap_lock;

void rt_mem_init(u64 mem_top)
{
	heap_next = ((u64)_end + RT_PAGE - 1) & ~(RT_PAGE - 1);
	heap_end = mem_top;
	if (heap_end <= heap_next + RT_2M)
		rt_panic("only %#lx bytes of RAM; need more than the kernel", mem_top);
}

void *rt_alloc(u64 size, u64 align, bool zero)
{
	if (align < 16)
		align = 16;
	while (__atomic_exchange_n(&heap_lock, 1, __ATOMIC_ACQUIRE))
		cpu_relax();
	u64 p = (heap_next + align - 1) & ~(align - 1);
	if (p + size > heap_end || p + size < p) {
		__atomic_store_n(&heap_lock, 0, __ATOMIC_RELEASE);
		rt_panic("out of memory: %#lx bytes wanted, %#lx left", size, heap_end - heap_next);
	}
	heap_next = p + size;
	__atomic_store_n(&heap_lock, 0, __ATOMIC_RELEASE);
	if (zero)
		memset((void *)p, 0, size);
	return (void *)p;
}

static u64 *table_of(u64 entry) { return (u64 *)(entry & PTE_ADDR); }

static int idx(u64 va, int level) { return (va >> (12 + 9 * (level - 1))) & 511; }

/* Walks down to the table at `level` (1 = PT) for va, creating tables on
 * the way and splitting a large page found above it. */
static u64 *walk_create(u64 va, int level)
{
	u64 *t = boot_pml4;
	for (int l = 4; l > level; l--) {
		u64 *e = &t[idx(va, l)];
		if (!(*e & PTE_P)) {
			u64 *n = rt_alloc(RT_PAGE, RT_PAGE, true);
			*e = (u64)n | PTE_P | PTE_W | PTE_U;
		} else if (*e & PTE_PS) {
			/* split: 1 GiB -> 2 MiB or 2 MiB -> 4 KiB entries */
			u64 *n = rt_alloc(RT_PAGE, RT_PAGE, true);
			u64 size = 1ULL << (12 + 9 * (l - 2));
			u64 base = *e & PTE_ADDR & ~((size << 9) - 1);
			u64 fl = *e & ~PTE_ADDR;
			if (l == 2)
				fl &= ~PTE_PS;
			for (int i = 0; i < 512; i++)
				n[i] = (base + i * size) | fl;
			*e = (u64)n | PTE_P | PTE_W | PTE_U;
			write_cr3(read_cr3());
		}
		t = table_of(*e);
	}
	return t;
}

void rt_map_4k(u64 va, u64 pa, u64 flags)
{
	u64 *pt = walk_create(va, 1);
	pt[idx(va, 1)] = (pa & PTE_ADDR) | flags;
	invlpg(va);
}

void rt_map_range_4k(u64 va, u64 pa, u64 len, u64 flags)
{
	for (u64 off = 0; off < len;) {
		u64 *pt = walk_create(va + off, 1);
		int i = idx(va + off, 1);
		for (; i < 512 && off < len; i++, off += RT_PAGE)
			pt[i] = ((pa + off) & PTE_ADDR) | flags;
	}
	write_cr3(read_cr3());
}

void rt_map_2m(u64 va, u64 pa, u64 flags)
{
	u64 *pd = walk_create(va, 2);
	pd[idx(va, 2)] = (pa & PTE_ADDR & ~(RT_2M - 1)) | flags | PTE_PS;
	write_cr3(read_cr3());
}

u64 *rt_pt_entry(u64 va, int level)
{
	u64 *t = boot_pml4;
	for (int l = 4; l >= 1; l--) {
		u64 *e = &t[idx(va, l)];
		if (l == level)
			return e;
		if (!(*e & PTE_P) || (*e & PTE_PS))
			return NULL;
		t = table_of(*e);
	}
	return NULL;
}

u64 *rt_pte(u64 va)
{
	u64 *t = boot_pml4;
	for (int l = 4; l >= 1; l--) {
		u64 *e = &t[idx(va, l)];
		if (!(*e & PTE_P))
			return NULL;
		if (l == 1 || (*e & PTE_PS))
			return e;
		t = table_of(*e);
	}
	return NULL;
}

void rt_unmap(u64 va)
{
	u64 *e = rt_pte(va);
	if (e) {
		*e = 0;
		invlpg(va);
	}
}

void rt_map_identity(u64 pa, u64 len, u64 flags)
{
	for (u64 a = pa & ~(RT_2M - 1); a < pa + len; a += RT_2M)
		rt_map_2m(a, a, flags);
}

int rt_maxphyaddr(void)
{
	u32 r[4];
	cpuid(0x80000000, 0, r);
	if (r[0] < 0x80000008)
		return 36;
	cpuid(0x80000008, 0, r);
	return r[0] & 0xff;
}

u64 rt_pte_nx(void)
{
	return (rdmsr(MSR_EFER) & 0x800) ? PTE_NX : 0;
}
