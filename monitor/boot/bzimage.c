/* Linux bzImage loader: setup header checks, payload decompression and
 * direct vmlinux placement (or the bzImage's own 64-bit entry as a
 * fallback), initrd placement, boot_params and the BSP's 64-bit entry
 * state. The why of each step is in boot.h (boot_linux). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "monitor/cpu_state.h"
#include "monitor/guest_mem.h"
#include "monitor/boot/boot.h"
#include "monitor/boot/boot_int.h"

#define BP_HDR       0x1f1
#define BP_HDR_MAX   0x290      /* boot_params.hdr ends before edd_mbr_sig_buffer */
#define BP_E820_N    0x1e8
#define BP_E820      0x2d0
#define BP_EXT_RD    0x0c0
#define BP_EXT_RDSZ  0x0c4
#define BP_EXT_CMD   0x0c8
#define HDR_MIN_END  0x264      /* through init_size: every field we read */
#define KERNEL_MAX_FILE (512u << 20)
#define VMLINUX_MAX  (1ULL << 30)
#define BOOT_STACK   0x8ff0ULL
#define ONE_MIB      ((uint64_t)0x100000)

int bz_parse(const uint8_t *buf, size_t len, const char *name, struct bz_hdr *h,
	     char *err, size_t errlen)
{
	memset(h, 0, sizeof(*h));
	if (len < 0x206 || rd16(buf + 0x1fe) != 0xaa55 || memcmp(buf + 0x202, "HdrS", 4))
		return boot_fail(err, errlen, -ENOEXEC, "%s: not a Linux bzImage (no HdrS setup header)", name);
	if (len < 0x208)
		return boot_fail(err, errlen, -ENOEXEC, "%s: truncated Linux setup header", name);
	h->version = rd16(buf + 0x206);
	if (h->version < BZ_MIN_VERSION)
		return boot_fail(err, errlen, -ENOTSUP, "%s: Linux boot protocol %u.%02u; roam needs 2.12 or later (a 64-bit kernel from 3.8 on)",
				 name, h->version >> 8, h->version & 0xff);
	h->hdr_end = 0x202 + (size_t)buf[0x201];
	if (h->hdr_end < HDR_MIN_END)
		return boot_fail(err, errlen, -ENOEXEC, "%s: Linux setup header too short (%zu bytes) for protocol %u.%02u",
				 name, h->hdr_end - BP_HDR, h->version >> 8, h->version & 0xff);
	if (len < h->hdr_end)
		return boot_fail(err, errlen, -ENOEXEC, "%s: truncated Linux setup header", name);
	h->setup_sects = buf[0x1f1] ? buf[0x1f1] : 4;
	h->loadflags = buf[0x211];
	h->code32_start = rd32(buf + 0x214);
	h->initrd_addr_max = rd32(buf + 0x22c);
	h->kernel_alignment = rd32(buf + 0x230);
	h->xloadflags = rd16(buf + 0x236);
	h->cmdline_size = rd32(buf + 0x238);
	h->payload_offset = rd32(buf + 0x248);
	h->payload_length = rd32(buf + 0x24c);
	h->pref_address = rd64(buf + 0x258);
	h->init_size = rd32(buf + 0x260);
	if (!(h->loadflags & BZ_LOADED_HIGH))
		return boot_fail(err, errlen, -ENOTSUP, "%s: a zImage (loaded low); roam boots bzImages only", name);
	if (!(h->xloadflags & BZ_XLF_KERNEL_64))
		return boot_fail(err, errlen, -ENOTSUP, "%s: a 32-bit Linux kernel (no 64-bit entry point); roam boots x86-64 kernels",
				 name);
	h->pm_offset = ((size_t)h->setup_sects + 1) * 512;
	if (h->pm_offset >= len)
		return boot_fail(err, errlen, -ENOEXEC, "%s: truncated bzImage: %zu bytes, the setup code alone is %zu",
				 name, len, h->pm_offset);
	h->pm_len = len - h->pm_offset;
	if ((uint64_t)h->payload_offset + h->payload_length > h->pm_len)
		return boot_fail(err, errlen, -ENOEXEC, "%s: truncated bzImage: payload ends at %" PRIu64 " of %zu bytes",
				 name, (uint64_t)h->pm_offset + h->payload_offset + h->payload_length, len);
	if (h->init_size == 0)
		return boot_fail(err, errlen, -ENOEXEC, "%s: Linux setup header has init_size 0", name);
	return 0;
}

/* The vmlinux ELF inside the payload, loaded at its physical addresses. */
static int load_direct(struct guest_mem *m, const uint8_t *elf, size_t elen,
		       const char *name, struct linux_kernel *k, char *err, size_t errlen)
{
	struct elf_img e;
	uint64_t low_end = boot_low_ram_end(m);
	int r = elf_parse(elf, elen, name, low_end, &e, err, errlen);
	if (r == -E2BIG)
		return boot_fail(err, errlen, r, "%s: kernel does not fit in %" PRIu64 " MiB of RAM below 3 GiB",
				 name, low_end >> 20);
	if (r < 0)
		return r;
	if (!e.is64)
		return boot_fail(err, errlen, -ENOEXEC, "%s: payload is a 32-bit ELF, not an x86-64 vmlinux", name);
	if (e.lo < ONE_MIB)
		return boot_fail(err, errlen, -ENOEXEC, "%s: vmlinux loads at 0x%" PRIx64 ", below 1 MiB", name, e.lo);
	if ((r = elf_entry_phys(&e, name, &k->entry, err, errlen)) < 0)
		return r;
	k->lo = e.lo;
	k->end = e.hi;
	if (k->hdr.init_size > k->end - k->lo)
		k->end = k->lo + k->hdr.init_size;
	if (k->end > low_end)
		return boot_fail(err, errlen, -E2BIG, "%s: kernel needs RAM up to %" PRIu64 " MiB, the VM has %" PRIu64 " MiB below 3 GiB",
				 name, (k->end + ONE_MIB - 1) >> 20, low_end >> 20);
	if ((r = elf_load(m, elf, &e, name, err, errlen)) < 0)
		return r;
	k->direct = true;
	return 0;
}

/* The protected-mode image at 1 MiB, entered at its startup_64 (+0x200);
 * it decompresses itself to pref_address. */
static int load_fallback(struct guest_mem *m, const uint8_t *buf, const char *name,
			 struct linux_kernel *k, char *err, size_t errlen)
{
	uint64_t low_end = boot_low_ram_end(m);
	k->lo = ONE_MIB;
	k->end = ONE_MIB + k->hdr.pm_len;
	uint64_t target = k->hdr.pref_address > ONE_MIB ? k->hdr.pref_address : ONE_MIB;
	if (target < UINT64_MAX - k->hdr.init_size && target + k->hdr.init_size > k->end)
		k->end = target + k->hdr.init_size;
	if (k->end > low_end || target >= UINT64_MAX - k->hdr.init_size)
		return boot_fail(err, errlen, -E2BIG, "%s: kernel needs RAM up to %" PRIu64 " MiB, the VM has %" PRIu64 " MiB below 3 GiB",
				 name, (k->end + ONE_MIB - 1) >> 20, low_end >> 20);
	if (gmem_write(m, ONE_MIB, buf + k->hdr.pm_offset, k->hdr.pm_len) < 0)
		return boot_fail(err, errlen, -E2BIG, "%s: kernel does not fit in guest RAM", name);
	k->entry = ONE_MIB + 0x200;
	k->direct = false;
	return 0;
}

int linux_load_kernel(struct guest_mem *m, const uint8_t *buf, size_t len,
		      const char *name, int flags, struct linux_kernel *k,
		      char *err, size_t errlen)
{
	memset(k, 0, sizeof(*k));
	int r = bz_parse(buf, len, name, &k->hdr, err, errlen);
	if (r < 0)
		return r;
	const uint8_t *pl = buf + k->hdr.pm_offset + k->hdr.payload_offset;
	size_t plen = k->hdr.payload_length;
	k->comp = bz_comp_detect(pl, plen);

	uint64_t max = gmem_size(m) < VMLINUX_MAX ? gmem_size(m) : VMLINUX_MAX;
	uint8_t *elf = NULL;
	size_t elen = 0;
	char why[160] = "";
	if (!plen || (flags & LINUX_NO_DECOMPRESS))
		r = -ENOTSUP;
	else if (!(flags & LINUX_CACHE) || kcache_get(pl, plen, (size_t)max, &elf, &elen) < 0) {
		r = bz_decompress(pl, plen, (size_t)max, &elf, &elen, why, sizeof(why));
		if (r == 0 && (flags & LINUX_CACHE) && elf_is_elf(elf, elen))
			kcache_put(pl, plen, elf, elen);
	} else {
		r = 0;
	}
	if (r == -E2BIG)
		return boot_fail(err, errlen, r, "%s: kernel too big for RAM: %s", name, why);
	if (r == -ENOMEM || r == -ENOEXEC)
		return boot_fail(err, errlen, r, "%s: %s", name, why);
	if (r == 0 && elf_is_elf(elf, elen)) {
		r = load_direct(m, elf, elen, name, k, err, errlen);
		free(elf);
		return r;
	}
	free(elf);
	/* Not decompressible here, or not an ELF inside: let the kernel's own
	 * decompressor do it. */
	return load_fallback(m, buf, name, k, err, errlen);
}

int linux_place_initrd(const struct guest_mem *m, const struct linux_kernel *k,
		       uint64_t size, uint64_t *ret_addr, char *err, size_t errlen)
{
	uint64_t top = boot_low_ram_end(m);
	uint64_t lim = k->hdr.initrd_addr_max ? (uint64_t)k->hdr.initrd_addr_max + 1 : 0x38000000ULL;
	if (lim < top)
		top = lim;
	uint64_t floor = (k->end + GMEM_PAGE - 1) & ~(GMEM_PAGE - 1);
	if (size > top || ((top - size) & ~(GMEM_PAGE - 1)) < floor)
		return boot_fail(err, errlen, -E2BIG, "initrd of %" PRIu64 " MiB does not fit between the kernel (ends at %" PRIu64
				 " MiB) and %" PRIu64 " MiB: more memory needed", (size + ONE_MIB - 1) >> 20,
				 (k->end + ONE_MIB - 1) >> 20, top >> 20);
	*ret_addr = (top - size) & ~(GMEM_PAGE - 1);
	return 0;
}

int linux_setup(struct guest_mem *m, int ncpus, const uint8_t *buf,
		const struct linux_kernel *k, const char *cmdline,
		uint64_t initrd_addr, uint64_t initrd_size, struct cpu_state *bsp,
		char *err, size_t errlen)
{
	uint8_t zp[4096];
	memset(zp, 0, sizeof(zp));
	size_t hend = k->hdr.hdr_end < BP_HDR_MAX ? k->hdr.hdr_end : BP_HDR_MAX;
	memcpy(zp + BP_HDR, buf + BP_HDR, hend - BP_HDR);
	zp[0x210] = 0xff;                                /* type_of_loader: undefined */
	zp[0x211] = (uint8_t)((zp[0x211] | BZ_CAN_USE_HEAP) & ~BZ_KASLR_FLAG);
	wr16(zp + 0x224, 0xfe00);                        /* heap_end_ptr */

	if (!cmdline)
		cmdline = "";
	size_t clen = strlen(cmdline);
	uint64_t cmax = k->hdr.cmdline_size < BOOT_CMDLINE_MAX - 1 ? k->hdr.cmdline_size : BOOT_CMDLINE_MAX - 1;
	if (clen > cmax)
		return boot_fail(err, errlen, -E2BIG, "kernel command line is %zu bytes; this kernel takes at most %" PRIu64,
				 clen, cmax);
	if (gmem_write(m, BOOT_CMDLINE_ADDR, cmdline, clen + 1) < 0)
		return boot_fail(err, errlen, -E2BIG, "guest RAM too small for the kernel command line");
	wr32(zp + 0x228, (uint32_t)BOOT_CMDLINE_ADDR);

	wr32(zp + 0x218, (uint32_t)initrd_addr);
	wr32(zp + 0x21c, (uint32_t)initrd_size);
	wr32(zp + BP_EXT_RD, (uint32_t)(initrd_addr >> 32));
	wr32(zp + BP_EXT_RDSZ, (uint32_t)(initrd_size >> 32));
	wr32(zp + BP_EXT_CMD, 0);

	struct e820_ent e[E820_MAX];
	int n = boot_e820(m, e);
	zp[BP_E820_N] = (uint8_t)n;
	for (int i = 0; i < n; i++) {
		uint8_t *p = zp + BP_E820 + 20 * i;
		wr64(p, e[i].addr);
		wr64(p + 8, e[i].size);
		wr32(p + 16, e[i].type);
	}
	if (gmem_write(m, BOOT_ZERO_PAGE, zp, sizeof(zp)) < 0)
		return boot_fail(err, errlen, -E2BIG, "guest RAM too small for boot_params");
	int r;
	if ((r = boot_write_gdt(m, err, errlen)) < 0 ||
	    (r = boot_write_pagetables(m, err, errlen)) < 0 ||
	    (r = boot_mptable(m, ncpus, err, errlen)) < 0)
		return r;
	boot_cpu_long(bsp, k->entry, BOOT_ZERO_PAGE);
	bsp->gpr[CPU_RSP] = BOOT_STACK;
	return 0;
}

/* Reads the initrd straight into guest RAM above the kernel. */
static int load_initrd(struct guest_mem *m, const struct linux_kernel *k, const char *path,
		       uint64_t *ret_addr, uint64_t *ret_size, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		return boot_fail(err, errlen, -e, "initrd %s: %s", path, strerror(e));
	}
	struct stat st;
	int r = 0;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		boot_fail(err, errlen, r, "initrd %s: %s", path, strerror(-r));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = boot_fail(err, errlen, -EINVAL, "initrd %s: not a regular file", path);
		goto out;
	}
	uint64_t size = (uint64_t)st.st_size, addr;
	if ((r = linux_place_initrd(m, k, size, &addr, err, errlen)) < 0) {
		boot_fail(err, errlen, r, "initrd %s: %" PRIu64 " MiB does not fit in guest RAM above the kernel: more memory needed",
			  path, (size + ONE_MIB - 1) >> 20);
		goto out;
	}
	uint8_t *dst = size ? gmem_ptr(m, addr, size) : NULL;
	if (size && !dst) {
		r = boot_fail(err, errlen, -E2BIG, "initrd %s: not in guest RAM", path);
		goto out;
	}
	for (uint64_t got = 0; got < size;) {
		ssize_t n = pread(fd, dst + got, size - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			boot_fail(err, errlen, r, "initrd %s: read failed: %s", path,
				  n < 0 ? strerror(-r) : "file shrank while reading");
			goto out;
		}
		got += (uint64_t)n;
	}
	*ret_addr = size ? addr : 0;
	*ret_size = size;
out:
	close(fd);
	return r;
}

int boot_linux(struct guest_mem *m, int ncpus, const char *kernel_path,
	       const char *initrd_path, const char *cmdline, struct cpu_state *bsp,
	       char *err, size_t errlen)
{
	return boot_linux_flags(m, ncpus, kernel_path, initrd_path, cmdline, LINUX_CACHE, bsp, err,
				errlen);
}

int boot_linux_flags(struct guest_mem *m, int ncpus, const char *kernel_path,
		     const char *initrd_path, const char *cmdline, int flags,
		     struct cpu_state *bsp, char *err, size_t errlen)
{
	if (ncpus < 1 || ncpus > 254)
		return boot_fail(err, errlen, -EINVAL, "%d CPUs: must be 1..254", ncpus);
	uint8_t *buf;
	size_t len;
	int r = boot_read_file(kernel_path, "kernel", KERNEL_MAX_FILE, &buf, &len, err, errlen);
	if (r < 0)
		return r;
	struct linux_kernel k;
	uint64_t iaddr = 0, isize = 0;
	r = linux_load_kernel(m, buf, len, kernel_path, flags, &k, err, errlen);
	if (r == 0 && initrd_path)
		r = load_initrd(m, &k, initrd_path, &iaddr, &isize, err, errlen);
	if (r == 0)
		r = linux_setup(m, ncpus, buf, &k, cmdline, iaddr, isize, bsp, err, errlen);
	free(buf);
	return r;
}
