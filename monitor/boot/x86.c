/* The x86 side of booting: the boot GDT, identity page tables for 64-bit
 * entry, the BSP's entry state in canonical form, and the e820 map.
 * Addresses are the fixed low-memory spots listed in boot.h. */
#include <errno.h>
#include <string.h>
#include "monitor/cpu_state.h"
#include "monitor/guest_mem.h"
#include "monitor/boot/boot.h"
#include "monitor/boot/boot_int.h"

#define CR0_PE   0x1ULL
#define CR0_ET   0x10ULL
#define CR0_PG   0x80000000ULL
#define CR4_PAE  0x20ULL
#define EFER_LME 0x100ULL
#define EFER_LMA 0x400ULL

/* GDT descriptor from base, 20-bit limit and the access/flags bits in the
 * VMX attribute layout (attr bits 0-7 = access byte, 12-15 = flags). */
static uint64_t gdt_entry(uint32_t base, uint32_t limit20, uint32_t attr)
{
	return (uint64_t)(limit20 & 0xffff) | (uint64_t)(base & 0xffffff) << 16 |
	       (uint64_t)(attr & 0xff) << 40 | (uint64_t)((limit20 >> 16) & 0xf) << 48 |
	       (uint64_t)((attr >> 12) & 0xf) << 52 | (uint64_t)(base >> 24) << 56;
}

#define ATTR_CODE32 (SEG_ATTR_P | SEG_ATTR_S | 0xb | SEG_ATTR_DB | SEG_ATTR_G)
#define ATTR_CODE64 (SEG_ATTR_P | SEG_ATTR_S | 0xb | SEG_ATTR_L | SEG_ATTR_G)
#define ATTR_DATA   (SEG_ATTR_P | SEG_ATTR_S | 0x3 | SEG_ATTR_DB | SEG_ATTR_G)
#define ATTR_TSS    (SEG_ATTR_P | 0xb)
#define GDT_ENTRIES 5

int boot_write_gdt(struct guest_mem *m, char *err, size_t errlen)
{
	uint8_t gdt[GDT_ENTRIES * 8];
	uint64_t ent[GDT_ENTRIES] = {
		0,
		gdt_entry(0, 0xfffff, ATTR_CODE32),
		gdt_entry(0, 0xfffff, ATTR_CODE64),
		gdt_entry(0, 0xfffff, ATTR_DATA),
		gdt_entry(0, 0x67, ATTR_TSS),
	};
	for (int i = 0; i < GDT_ENTRIES; i++)
		wr64(gdt + 8 * i, ent[i]);
	if (gmem_write(m, BOOT_GDT_ADDR, gdt, sizeof(gdt)) < 0)
		return boot_fail(err, errlen, -E2BIG, "guest RAM too small for the boot GDT");
	return 0;
}

/* PML4 -> one PDPT -> four page directories of 2 MiB pages: 0..4 GiB. */
int boot_write_pagetables(struct guest_mem *m, char *err, size_t errlen)
{
	uint8_t *pt = gmem_ptr(m, BOOT_PML4_ADDR, 6 * 4096);
	if (!pt)
		return boot_fail(err, errlen, -E2BIG, "guest RAM too small for the boot page tables");
	memset(pt, 0, 6 * 4096);
	uint64_t pdpt = BOOT_PML4_ADDR + 0x1000, pd = BOOT_PML4_ADDR + 0x2000;
	wr64(pt, pdpt | 0x3);                             /* P | RW */
	for (int i = 0; i < 4; i++)
		wr64(pt + 0x1000 + 8 * i, (pd + 0x1000ULL * i) | 0x3);
	for (uint64_t i = 0; i < 4 * 512; i++)
		wr64(pt + 0x2000 + 8 * i, (i << 21) | 0x83);  /* P | RW | PS */
	return 0;
}

static void set_seg(struct cpu_seg *s, uint16_t sel, uint32_t limit, uint32_t attr)
{
	s->sel = sel;
	s->base = 0;
	s->limit = limit;
	s->attr = attr;
}

static void common_prot(struct cpu_state *st, uint32_t cs_attr, uint16_t cs_sel)
{
	cpu_state_reset(st, 1);
	set_seg(&st->seg[SEG_CS], cs_sel, 0xffffffff, cs_attr);
	for (int s = SEG_ES; s <= SEG_GS; s++)
		if (s != SEG_CS)
			set_seg(&st->seg[s], BOOT_SEL_DATA, 0xffffffff, ATTR_DATA);
	set_seg(&st->seg[SEG_TR], BOOT_SEL_TSS, 0x67, ATTR_TSS);
	set_seg(&st->seg[SEG_LDTR], 0, 0, SEG_ATTR_UNUSABLE);
	st->gdt.base = BOOT_GDT_ADDR;
	st->gdt.limit = GDT_ENTRIES * 8 - 1;
	st->idt.base = 0;
	st->idt.limit = 0;
	st->rflags = 0x2;
	st->gpr[CPU_RDX] = 0;
}

void boot_cpu_long(struct cpu_state *st, uint64_t rip, uint64_t rsi)
{
	common_prot(st, ATTR_CODE64, BOOT_SEL_CODE64);
	st->cr0 = CR0_PE | CR0_ET | CR0_PG;
	st->cr3 = BOOT_PML4_ADDR;
	st->cr4 = CR4_PAE;
	st->efer = EFER_LME | EFER_LMA;
	st->rip = rip;
	st->gpr[CPU_RSI] = rsi;
}

void boot_cpu_prot32(struct cpu_state *st, uint32_t eip, uint32_t eax, uint32_t ebx)
{
	common_prot(st, ATTR_CODE32, BOOT_SEL_CODE32);
	st->cr0 = CR0_PE | CR0_ET;
	st->rip = eip;
	st->gpr[CPU_RAX] = eax;
	st->gpr[CPU_RBX] = ebx;
}

#define EBDA_START 0x9fc00ULL
#define BIOS_END   0x100000ULL

int boot_e820(const struct guest_mem *m, struct e820_ent out[E820_MAX])
{
	struct gmem_region r[2];
	int nr = gmem_regions(m, r), n = 0;
	for (int i = 0; i < nr; i++) {
		uint64_t a = r[i].gpa, end = r[i].gpa + r[i].size;
		if (a < BIOS_END) {
			/* RAM below the EBDA, the reserved BIOS area, RAM above 1 MiB. */
			if (a < EBDA_START)
				out[n++] = (struct e820_ent){ a, (end < EBDA_START ? end : EBDA_START) - a, E820_RAM };
			if (end > EBDA_START) {
				uint64_t rs = a > EBDA_START ? a : EBDA_START;
				out[n++] = (struct e820_ent){ rs, BIOS_END - rs, E820_RESERVED };
			}
			if (end > BIOS_END)
				out[n++] = (struct e820_ent){ BIOS_END, end - BIOS_END, E820_RAM };
		} else {
			out[n++] = (struct e820_ent){ a, end - a, E820_RAM };
		}
	}
	return n;
}

uint64_t boot_low_ram_end(const struct guest_mem *m)
{
	struct gmem_region r[2];
	int nr = gmem_regions(m, r);
	for (int i = 0; i < nr; i++)
		if (r[i].gpa == 0)
			return r[i].size;
	return 0;
}
