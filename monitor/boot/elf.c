/* ELF parsing and loading for both loaders: the vmlinux inside a bzImage
 * and Multiboot ELF kernels (ELFCLASS32 EM_386 or ELFCLASS64 EM_X86_64,
 * little-endian executables). Program headers are read field by field
 * from the untrusted buffer; every size and address is range-checked. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include "monitor/guest_mem.h"
#include "monitor/boot/boot_int.h"

#define PT_LOAD 1

bool elf_is_elf(const uint8_t *buf, size_t len)
{
	return len >= 4 && buf[0] == 0x7f && buf[1] == 'E' && buf[2] == 'L' && buf[3] == 'F';
}

int elf_parse(const uint8_t *buf, size_t len, const char *name, uint64_t max_paddr,
	      struct elf_img *e, char *err, size_t errlen)
{
	memset(e, 0, sizeof(*e));
	if (!elf_is_elf(buf, len))
		return boot_fail(err, errlen, -ENOEXEC, "%s: not an ELF file", name);
	if (len < 52)
		return boot_fail(err, errlen, -ENOEXEC, "%s: truncated ELF header", name);
	if (buf[4] != 1 && buf[4] != 2)
		return boot_fail(err, errlen, -ENOEXEC, "%s: bad ELF class %u", name, buf[4]);
	e->is64 = buf[4] == 2;
	if (buf[5] != 1)
		return boot_fail(err, errlen, -ENOEXEC, "%s: not a little-endian ELF", name);
	if (e->is64 && len < 64)
		return boot_fail(err, errlen, -ENOEXEC, "%s: truncated ELF header", name);
	uint16_t type = rd16(buf + 16);
	e->machine = rd16(buf + 18);
	if (type != 2)
		return boot_fail(err, errlen, -ENOEXEC, "%s: ELF type %u is not an executable", name, type);
	if ((e->is64 && e->machine != 62) || (!e->is64 && e->machine != 3))
		return boot_fail(err, errlen, -ENOEXEC, "%s: ELF%d for machine %u, not x86", name,
				 e->is64 ? 64 : 32, e->machine);
	uint64_t phoff;
	uint16_t phentsize, phnum;
	if (e->is64) {
		e->entry = rd64(buf + 24);
		phoff = rd64(buf + 32);
		phentsize = rd16(buf + 54);
		phnum = rd16(buf + 56);
	} else {
		e->entry = rd32(buf + 24);
		phoff = rd32(buf + 28);
		phentsize = rd16(buf + 42);
		phnum = rd16(buf + 44);
	}
	uint16_t want = e->is64 ? 56 : 32;
	if (phnum == 0)
		return boot_fail(err, errlen, -ENOEXEC, "%s: ELF has no program headers", name);
	if (phentsize < want)
		return boot_fail(err, errlen, -ENOEXEC, "%s: ELF program header size %u, expected %u",
				 name, phentsize, want);
	if (phoff > len || (uint64_t)phnum * phentsize > len - phoff)
		return boot_fail(err, errlen, -ENOEXEC, "%s: ELF program headers lie past the end of the file", name);

	e->lo = UINT64_MAX;
	for (unsigned i = 0; i < phnum; i++) {
		const uint8_t *ph = buf + phoff + (uint64_t)i * phentsize;
		struct elf_seg s;
		uint32_t ptype = rd32(ph);
		if (e->is64) {
			s.offset = rd64(ph + 8);
			s.vaddr = rd64(ph + 16);
			s.paddr = rd64(ph + 24);
			s.filesz = rd64(ph + 32);
			s.memsz = rd64(ph + 40);
		} else {
			s.offset = rd32(ph + 4);
			s.vaddr = rd32(ph + 8);
			s.paddr = rd32(ph + 12);
			s.filesz = rd32(ph + 16);
			s.memsz = rd32(ph + 20);
		}
		if (ptype != PT_LOAD || s.memsz == 0)
			continue;
		if (s.filesz > s.memsz)
			return boot_fail(err, errlen, -ENOEXEC, "%s: ELF segment %u: file size 0x%" PRIx64
					 " above memory size 0x%" PRIx64, name, i, s.filesz, s.memsz);
		if (s.offset > len || s.filesz > len - s.offset)
			return boot_fail(err, errlen, -ENOEXEC, "%s: ELF segment %u lies past the end of the file (truncated?)",
					 name, i);
		if (s.paddr > UINT64_MAX - s.memsz || s.vaddr > UINT64_MAX - s.memsz)
			return boot_fail(err, errlen, -ENOEXEC, "%s: ELF segment %u: address + size overflows", name, i);
		if (s.paddr + s.memsz > max_paddr)
			return boot_fail(err, errlen, -E2BIG, "%s: ELF segment %u at 0x%" PRIx64 "-0x%" PRIx64
					 " does not fit in guest RAM", name, i, s.paddr, s.paddr + s.memsz);
		for (int j = 0; j < e->nsegs; j++) {
			const struct elf_seg *o = &e->seg[j];
			if (s.paddr < o->paddr + o->memsz && o->paddr < s.paddr + s.memsz)
				return boot_fail(err, errlen, -ENOEXEC, "%s: ELF segments overlap at 0x%" PRIx64,
						 name, s.paddr);
		}
		if (e->nsegs == ELF_MAX_SEGS)
			return boot_fail(err, errlen, -ENOEXEC, "%s: more than %d loadable ELF segments",
					 name, ELF_MAX_SEGS);
		e->seg[e->nsegs++] = s;
		if (s.paddr < e->lo)
			e->lo = s.paddr;
		if (s.paddr + s.memsz > e->hi)
			e->hi = s.paddr + s.memsz;
	}
	if (e->nsegs == 0)
		return boot_fail(err, errlen, -ENOEXEC, "%s: ELF has no loadable segments", name);
	return 0;
}

int elf_load(struct guest_mem *m, const uint8_t *buf, const struct elf_img *e,
	     const char *name, char *err, size_t errlen)
{
	for (int i = 0; i < e->nsegs; i++) {
		const struct elf_seg *s = &e->seg[i];
		uint8_t *dst = gmem_ptr(m, s->paddr, s->memsz);
		if (!dst)
			return boot_fail(err, errlen, -E2BIG, "%s: kernel segment 0x%" PRIx64 "-0x%" PRIx64
					 " is not in guest RAM (%" PRIu64 " MiB): more memory needed?",
					 name, s->paddr, s->paddr + s->memsz, gmem_size(m) >> 20);
		memcpy(dst, buf + s->offset, s->filesz);
		memset(dst + s->filesz, 0, s->memsz - s->filesz);
	}
	return 0;
}

int elf_entry_phys(const struct elf_img *e, const char *name, uint64_t *ret,
		   char *err, size_t errlen)
{
	for (int i = 0; i < e->nsegs; i++) {
		const struct elf_seg *s = &e->seg[i];
		if (e->entry >= s->paddr && e->entry - s->paddr < s->memsz) {
			*ret = e->entry;
			return 0;
		}
	}
	for (int i = 0; i < e->nsegs; i++) {
		const struct elf_seg *s = &e->seg[i];
		if (e->entry >= s->vaddr && e->entry - s->vaddr < s->memsz) {
			*ret = e->entry - s->vaddr + s->paddr;
			return 0;
		}
	}
	return boot_fail(err, errlen, -ENOEXEC, "%s: ELF entry point 0x%" PRIx64 " is outside every loadable segment",
			 name, e->entry);
}
