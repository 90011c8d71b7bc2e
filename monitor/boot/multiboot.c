/* Multiboot v1 loader (for test kernels): header search, ELF or a.out-
 * kludge placement, multiboot_info, and 32-bit protected-mode entry.
 *
 * multiboot_info written at BOOT_MB_INFO_ADDR (offsets):
 *   0 flags (MEM | CMDLINE | MMAP | LOADER_NAME)   4 mem_lower (KiB)
 *   8 mem_upper (KiB above 1 MiB)   16 cmdline   44 mmap_length
 *   48 mmap_addr   64 boot_loader_name; the rest zero.
 * mmap entries (24 bytes): u32 size (20), u64 base, u64 length, u32 type. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "monitor/cpu_state.h"
#include "monitor/guest_mem.h"
#include "monitor/boot/boot.h"
#include "monitor/boot/boot_int.h"

#define MB_INFO_MEM     0x001u
#define MB_INFO_CMDLINE 0x004u
#define MB_INFO_MMAP    0x040u
#define MB_INFO_NAME    0x200u
#define MB_MMAP_ADDR    (BOOT_MB_INFO_ADDR + 0x100)
#define MB_NAME_ADDR    (BOOT_MB_INFO_ADDR + 0x300)
#define MB_KNOWN_FLAGS  0x0007u  /* page-align modules, memory info, video */
#define ONE_MIB         ((uint64_t)0x100000)
#define FOUR_GIB        ((uint64_t)0x100000000)
#define MB_MAX_FILE     (512u << 20)

int mb_find(const uint8_t *buf, size_t len, const char *name, struct mb_hdr *h,
	    char *err, size_t errlen)
{
	memset(h, 0, sizeof(*h));
	size_t lim = len < MB_SEARCH ? len : MB_SEARCH;
	for (size_t off = 0; off + 12 <= lim; off += 4) {
		if (rd32(buf + off) != MB_MAGIC)
			continue;
		uint32_t flags = rd32(buf + off + 4), sum = rd32(buf + off + 8);
		if ((uint32_t)(MB_MAGIC + flags + sum) != 0)
			return boot_fail(err, errlen, -ENOEXEC, "%s: Multiboot header at offset %zu has a bad checksum",
					 name, off);
		h->off = off;
		h->flags = flags;
		if (flags & MB_FLAG_AOUT) {
			if (len - off < 32)
				return boot_fail(err, errlen, -ENOEXEC, "%s: truncated Multiboot header (address fields missing)", name);
			h->header_addr = rd32(buf + off + 12);
			h->load_addr = rd32(buf + off + 16);
			h->load_end_addr = rd32(buf + off + 20);
			h->bss_end_addr = rd32(buf + off + 24);
			h->entry_addr = rd32(buf + off + 28);
		}
		return 0;
	}
	return -ENOENT;
}

/* Where the image goes: either ELF segments or one a.out-kludge range. */
struct mb_plan {
	bool aout;
	struct elf_img elf;
	uint64_t file_off, load, load_len, bss_end, entry;
};

static int mb_plan(const uint8_t *buf, size_t len, const char *name, uint64_t max_paddr,
		   struct mb_plan *p, char *err, size_t errlen)
{
	struct mb_hdr h;
	memset(p, 0, sizeof(*p));
	int r = mb_find(buf, len, name, &h, err, errlen);
	if (r == -ENOENT && elf_is_elf(buf, len))
		return boot_fail(err, errlen, -ENOEXEC, "%s: an ELF file without a Multiboot header: not a kernel roam can boot (for Linux, use the bzImage)",
				 name);
	if (r == -ENOENT)
		return boot_fail(err, errlen, -ENOEXEC, "%s: not a kernel (no Linux setup header, no Multiboot header in the first 8 KiB)",
				 name);
	if (r < 0)
		return r;
	if (h.flags & 0xfff8u)
		return boot_fail(err, errlen, -ENOTSUP, "%s: Multiboot header requests features roam lacks (flags 0x%x)",
				 name, h.flags & 0xffffu);
	if (h.flags & MB_FLAG_AOUT) {
		p->aout = true;
		if (h.header_addr < h.load_addr || h.header_addr - h.load_addr > h.off)
			return boot_fail(err, errlen, -ENOEXEC, "%s: Multiboot header_addr/load_addr do not match the file", name);
		p->file_off = h.off - (h.header_addr - h.load_addr);
		p->load = h.load_addr;
		if (h.load_end_addr == 0)
			p->load_len = len - p->file_off;
		else if (h.load_end_addr <= h.load_addr)
			return boot_fail(err, errlen, -ENOEXEC, "%s: Multiboot load_end_addr below load_addr", name);
		else
			p->load_len = h.load_end_addr - h.load_addr;
		if (p->load_len > len - p->file_off)
			return boot_fail(err, errlen, -ENOEXEC, "%s: Multiboot load range lies past the end of the file (truncated?)",
					 name);
		p->bss_end = p->load + p->load_len;
		if (h.bss_end_addr) {
			if (h.bss_end_addr < p->bss_end)
				return boot_fail(err, errlen, -ENOEXEC, "%s: Multiboot bss_end_addr below the loaded image", name);
			p->bss_end = h.bss_end_addr;
		}
		if (p->bss_end > max_paddr)
			return boot_fail(err, errlen, -E2BIG, "%s: kernel image ends at 0x%" PRIx64 ", beyond guest RAM",
					 name, p->bss_end);
		if (h.entry_addr < p->load || h.entry_addr >= p->bss_end)
			return boot_fail(err, errlen, -ENOEXEC, "%s: Multiboot entry 0x%x outside the loaded image",
					 name, h.entry_addr);
		p->entry = h.entry_addr;
		if (p->load < ONE_MIB)
			return boot_fail(err, errlen, -ENOEXEC, "%s: kernel loads at 0x%" PRIx64 ", below 1 MiB", name, p->load);
		return 0;
	}
	if (!elf_is_elf(buf, len))
		return boot_fail(err, errlen, -ENOEXEC, "%s: Multiboot kernel is not an ELF and has no a.out-kludge addresses", name);
	if ((r = elf_parse(buf, len, name, max_paddr, &p->elf, err, errlen)) < 0)
		return r;
	if ((r = elf_entry_phys(&p->elf, name, &p->entry, err, errlen)) < 0)
		return r;
	if (p->entry >= FOUR_GIB)
		return boot_fail(err, errlen, -ENOEXEC, "%s: entry point 0x%" PRIx64 " is not reachable in 32-bit mode",
				 name, p->entry);
	if (p->elf.lo < ONE_MIB)
		return boot_fail(err, errlen, -ENOEXEC, "%s: kernel loads at 0x%" PRIx64 ", below 1 MiB", name, p->elf.lo);
	return 0;
}

int mb_check(const uint8_t *buf, size_t len, const char *name, char *err, size_t errlen)
{
	struct mb_plan p;
	return mb_plan(buf, len, name, FOUR_GIB, &p, err, errlen);
}

int mb_load_buf(struct guest_mem *m, const uint8_t *buf, size_t len, const char *name,
		const char *cmdline, struct cpu_state *bsp, char *err, size_t errlen)
{
	uint64_t low_end = boot_low_ram_end(m);
	struct mb_plan p;
	int r = mb_plan(buf, len, name, low_end, &p, err, errlen);
	if (r == -E2BIG)
		return boot_fail(err, errlen, r, "%s: kernel too big for RAM (%" PRIu64 " MiB below 3 GiB)",
				 name, low_end >> 20);
	if (r < 0)
		return r;
	if (p.aout) {
		uint8_t *dst = gmem_ptr(m, p.load, p.bss_end - p.load);
		if (!dst)
			return boot_fail(err, errlen, -E2BIG, "%s: kernel too big for RAM", name);
		memcpy(dst, buf + p.file_off, p.load_len);
		memset(dst + p.load_len, 0, p.bss_end - p.load - p.load_len);
	} else if ((r = elf_load(m, buf, &p.elf, name, err, errlen)) < 0) {
		return r;
	}

	if (!cmdline)
		cmdline = "";
	size_t clen = strlen(cmdline);
	if (clen >= BOOT_CMDLINE_MAX)
		return boot_fail(err, errlen, -E2BIG, "kernel command line is %zu bytes; at most %llu", clen,
				 (unsigned long long)BOOT_CMDLINE_MAX - 1);
	if (gmem_write(m, BOOT_MB_CMDLINE_ADDR, cmdline, clen + 1) < 0 ||
	    gmem_write(m, MB_NAME_ADDR, "roam", 5) < 0)
		return boot_fail(err, errlen, -E2BIG, "guest RAM too small for the Multiboot data");

	struct e820_ent e[E820_MAX];
	int n = boot_e820(m, e);
	uint8_t mmap[E820_MAX * 24];
	for (int i = 0; i < n; i++) {
		uint8_t *q = mmap + 24 * i;
		wr32(q, 20);
		wr64(q + 4, e[i].addr);
		wr64(q + 12, e[i].size);
		wr32(q + 20, e[i].type);
	}
	uint8_t info[128];
	memset(info, 0, sizeof(info));
	uint64_t upper = low_end > ONE_MIB ? (low_end - ONE_MIB) >> 10 : 0;
	wr32(info, MB_INFO_MEM | MB_INFO_CMDLINE | MB_INFO_MMAP | MB_INFO_NAME);
	wr32(info + 4, 639);
	wr32(info + 8, upper > UINT32_MAX ? UINT32_MAX : (uint32_t)upper);
	wr32(info + 16, (uint32_t)BOOT_MB_CMDLINE_ADDR);
	wr32(info + 44, (uint32_t)(24 * n));
	wr32(info + 48, (uint32_t)MB_MMAP_ADDR);
	wr32(info + 64, (uint32_t)MB_NAME_ADDR);
	if (gmem_write(m, MB_MMAP_ADDR, mmap, (size_t)(24 * n)) < 0 ||
	    gmem_write(m, BOOT_MB_INFO_ADDR, info, sizeof(info)) < 0)
		return boot_fail(err, errlen, -E2BIG, "guest RAM too small for the Multiboot data");
	if ((r = boot_write_gdt(m, err, errlen)) < 0)
		return r;
	boot_cpu_prot32(bsp, (uint32_t)p.entry, MB_BOOT_MAGIC, (uint32_t)BOOT_MB_INFO_ADDR);
	return 0;
}

int boot_multiboot(struct guest_mem *m, const char *path, const char *cmdline,
		   struct cpu_state *bsp, char *err, size_t errlen)
{
	uint8_t *buf;
	size_t len;
	int r = boot_read_file(path, "kernel", MB_MAX_FILE, &buf, &len, err, errlen);
	if (r < 0)
		return r;
	r = mb_load_buf(m, buf, len, path, cmdline, bsp, err, errlen);
	free(buf);
	return r;
}
