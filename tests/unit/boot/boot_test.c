/* Unit tests for monitor/boot/: the Debian kit kernel end to end (when
 * build/kit exists), every payload codec on synthetic bzImages, the
 * fallback entry, Multiboot ELF32/ELF64/a.out-kludge kernels, the MP table
 * and e820, the cache of decompressed kernels, and the clear errors for
 * hostile or wrong inputs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "tests/unit/test.h"
#include "tests/unit/boot/util.h"
#include "monitor/boot/boot.h"
#include "monitor/boot/boot_int.h"
#include "monitor/cpu_state.h"
#include "monitor/guest_mem.h"

#define MiB (1ULL << 20)
static char err[256];
static struct cpu_state st;

static struct guest_mem *mem(uint64_t size)
{
	struct guest_mem *m = NULL;
	if (gmem_new(size, &m) < 0)
		abort();
	return m;
}

static uint8_t *gp(struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	uint8_t *p = gmem_ptr(m, gpa, len);
	if (!p)
		abort();
	return p;
}

static uint8_t sum8(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	for (size_t i = 0; i < n; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

/* Checks the MP table for ncpus; returns the number of I/O interrupt
 * entries found. */
static void check_mptable(struct guest_mem *m, int ncpus)
{
	const uint8_t *f = gp(m, BOOT_MPTABLE_ADDR, 16);
	CHECK(!memcmp(f, "_MP_", 4));
	CHECK_EQ(sum8(f, 16), 0);
	CHECK_EQ(f[8], 1);
	CHECK_EQ(f[9], 4);
	uint32_t cfga = rd32(f + 4);
	const uint8_t *c = gp(m, cfga, 44);
	CHECK(!memcmp(c, "PCMP", 4));
	uint16_t clen = rd16(c + 4), count = rd16(c + 34);
	c = gp(m, cfga, clen);
	CHECK_EQ(sum8(c, clen), 0);
	CHECK_EQ(rd32(c + 36), 0xfee00000u);
	int procs = 0, bsps = 0, ioapics = 0, buses = 0, lints = 0, isa = 0, pci = 0;
	int irq2 = 0, irq0pin = -1, s3a = -1, s31d = -1, s8b = -1;
	const uint8_t *p = c + 44, *end = c + clen;
	for (int i = 0; i < count; i++) {
		CHECK(p < end);
		if (p >= end)
			break;
		switch (p[0]) {
		case 0:
			CHECK_EQ(p[1], procs);
			procs++;
			bsps += (p[3] & 2) != 0;
			CHECK(p[3] & 1);
			p += 20;
			break;
		case 1: buses++; p += 8; break;
		case 2:
			ioapics++;
			CHECK_EQ(p[1], ncpus);
			CHECK_EQ(p[2], 0x11);
			CHECK_EQ(rd32(p + 4), 0xfec00000u);
			p += 8;
			break;
		case 3:
			CHECK_EQ(p[6], ncpus);
			if (p[4] == 1) {
				isa++;
				if (p[5] == 2) irq2++;
				if (p[5] == 0) irq0pin = p[7];
				if (p[5] != 0) CHECK_EQ(p[7], p[5]);
			} else {
				pci++;
				CHECK_EQ(p[4], 0);
				CHECK_EQ(rd16(p + 2), 0x0f);
				if (p[5] == (3 << 2 | 0)) s3a = p[7];
				if (p[5] == (31 << 2 | 3)) s31d = p[7];
				if (p[5] == (8 << 2 | 1)) s8b = p[7];
				CHECK(p[7] >= 16 && p[7] <= 23);
			}
			p += 8;
			break;
		case 4: lints++; CHECK_EQ(p[6], 0xff); p += 8; break;
		default: CHECK(0); i = count; break;
		}
	}
	CHECK(p == end);
	CHECK_EQ(procs, ncpus);
	CHECK_EQ(bsps, 1);
	CHECK_EQ(ioapics, 1);
	CHECK_EQ(buses, 2);
	CHECK_EQ(lints, 2);
	CHECK_EQ(isa, 15);
	CHECK_EQ(irq2, 0);
	CHECK_EQ(irq0pin, 2);
	CHECK_EQ(pci, 31 * 4);
	CHECK_EQ(s3a, 18);
	CHECK_EQ(s31d, 16 + ((31 - 1 + 3) & 7));
	CHECK_EQ(s8b, BOOT_PCI_IRQ_PIN(8, 1));
	CHECK_EQ(BOOT_PCI_IRQ_PIN(1, 0), 16);
}

static void check_e820(struct guest_mem *m, const uint8_t *zp, uint64_t ram)
{
	CHECK_EQ(zp[0x1e8], 3);
	const uint8_t *e = zp + 0x2d0;
	CHECK_EQ(rd64(e), 0); CHECK_EQ(rd64(e + 8), 0x9fc00); CHECK_EQ(rd32(e + 16), 1);
	CHECK_EQ(rd64(e + 20), 0x9fc00); CHECK_EQ(rd64(e + 28), 0x100000 - 0x9fc00); CHECK_EQ(rd32(e + 36), 2);
	CHECK_EQ(rd64(e + 40), 0x100000); CHECK_EQ(rd64(e + 48), ram - 0x100000); CHECK_EQ(rd32(e + 56), 1);
	(void)m;
}

static void check_long_mode(struct guest_mem *m)
{
	CHECK_EQ(st.cr0 & 0x80000001u, 0x80000001u);
	CHECK_EQ(st.cr4 & 0x20, 0x20);
	CHECK_EQ(st.efer & 0x500, 0x500);
	CHECK_EQ(st.cr3, BOOT_PML4_ADDR);
	CHECK_EQ(st.rflags, 2);
	CHECK_EQ(st.seg[SEG_CS].sel, 0x10);
	CHECK(st.seg[SEG_CS].attr & SEG_ATTR_L);
	CHECK(!(st.seg[SEG_CS].attr & SEG_ATTR_DB));
	CHECK_EQ(st.seg[SEG_DS].sel, 0x18);
	CHECK_EQ(st.seg[SEG_SS].sel, 0x18);
	CHECK_EQ(st.seg[SEG_TR].attr & 0x8f, 0x8b);
	CHECK_EQ(st.gdt.base, BOOT_GDT_ADDR);
	const uint8_t *g = gp(m, BOOT_GDT_ADDR, 40);
	CHECK_EQ(rd64(g + 0x10), 0x00af9b000000ffffULL);
	CHECK_EQ(rd64(g + 0x18), 0x00cf93000000ffffULL);
	CHECK_EQ(rd64(g + 0x08), 0x00cf9b000000ffffULL);
	/* Identity map: PML4[0] -> PDPT, PDPT[3] -> PD 3, 2 MiB page at 3 GiB + 2 MiB. */
	const uint8_t *pt = gp(m, BOOT_PML4_ADDR, 6 * 4096);
	CHECK_EQ(rd64(pt) & ~0xfffULL, BOOT_PML4_ADDR + 0x1000);
	uint64_t pd3 = rd64(pt + 0x1000 + 24) & ~0xfffULL;
	CHECK_EQ(pd3, BOOT_PML4_ADDR + 0x5000);
	CHECK_EQ(rd64(pt + 0x5000 + 8), 0xc0200000ULL | 0x83);
	CHECK_EQ(rd64(pt + 0x2000 + 8 * 8), 0x1000000ULL | 0x83);
}

static const char *src_path(const char *rel, char *buf, size_t n)
{
	const char *src = getenv("ROAM_SRC");
	snprintf(buf, n, "%s/%s", src ? src : ".", rel);
	return buf;
}

/* ---- the Debian kernel from build/kit ---- */
static void test_kit_kernel(void)
{
	char kpath[512], ipath[512];
	src_path("build/kit/vmlinuz", kpath, sizeof(kpath));
	src_path("build/kit/initrd.img", ipath, sizeof(ipath));
	struct guest_mem *m = mem(256 * MiB);
	const char *cmd = "console=ttyS0 acpi=off roam.halt";
	enum boot_kind kind;
	CHECK_EQ(boot_detect(kpath, &kind, err, sizeof(err)), 0);
	CHECK_EQ(kind, BOOT_KIND_BZIMAGE);
	int r = boot_linux(m, 2, kpath, ipath, cmd, &st, err, sizeof(err));
	CHECK_EQ(r, 0);
	if (r) {
		printf("  %s\n", err);
		gmem_free(m);
		return;
	}
	/* Compare guest RAM with the vmlinux decompressed here. */
	uint8_t *kb, *elf;
	size_t klen, elen;
	CHECK_EQ(boot_read_file(kpath, "kernel", 1u << 30, &kb, &klen, err, sizeof(err)), 0);
	struct bz_hdr h;
	CHECK_EQ(bz_parse(kb, klen, "k", &h, err, sizeof(err)), 0);
	CHECK(h.version >= 0x20c);
	const uint8_t *pl = kb + h.pm_offset + h.payload_offset;
	CHECK_EQ(bz_decompress(pl, h.payload_length, 1u << 30, &elf, &elen, err, sizeof(err)), 0);
	CHECK_EQ(elen, rd32(pl + h.payload_length - 4));
	struct elf_img e;
	CHECK_EQ(elf_parse(elf, elen, "vmlinux", 256 * MiB, &e, err, sizeof(err)), 0);
	CHECK(e.is64);
	CHECK_EQ(e.lo, 0x1000000);
	for (int i = 0; i < e.nsegs; i++) {
		const struct elf_seg *s = &e.seg[i];
		CHECK(!memcmp(gp(m, s->paddr, s->filesz), elf + s->offset, s->filesz));
	}
	CHECK_EQ(st.rip, e.entry);
	CHECK_EQ(st.rip, 0x1000000);
	CHECK_EQ(st.gpr[CPU_RSI], BOOT_ZERO_PAGE);
	check_long_mode(m);

	const uint8_t *zp = gp(m, BOOT_ZERO_PAGE, 4096);
	CHECK(!memcmp(zp + 0x202, "HdrS", 4));
	CHECK(!memcmp(zp + 0x1f1, kb + 0x1f1, 0x210 - 0x1f1));
	CHECK_EQ(zp[0x210], 0xff);
	CHECK_EQ(zp[0x211] & 0x83, 0x81);
	CHECK_EQ(rd32(zp + 0x228), BOOT_CMDLINE_ADDR);
	CHECK(!strcmp((const char *)gp(m, BOOT_CMDLINE_ADDR, strlen(cmd) + 1), cmd));
	uint32_t ri = rd32(zp + 0x218), rs = rd32(zp + 0x21c);
	struct stat sti;
	CHECK_EQ(stat(ipath, &sti), 0);
	CHECK_EQ(rs, sti.st_size);
	CHECK_EQ(ri & 0xfff, 0);
	CHECK(ri >= 0x1000000 + h.init_size);
	CHECK(ri + rs <= 256 * MiB);
	uint8_t *ib;
	size_t ilen;
	CHECK_EQ(boot_read_file(ipath, "initrd", 1u << 30, &ib, &ilen, err, sizeof(err)), 0);
	CHECK(ilen == rs && !memcmp(gp(m, ri, rs), ib, rs));
	check_e820(m, zp, 256 * MiB);
	check_mptable(m, 2);
	free(ib);
	free(elf);
	free(kb);
	gmem_free(m);

	/* The same kernel in too little RAM: a clear -E2BIG. */
	m = mem(48 * MiB);
	CHECK_EQ(boot_linux(m, 1, kpath, NULL, "", &st, err, sizeof(err)), -E2BIG);
	CHECK(strstr(err, "RAM") != NULL);
	gmem_free(m);
	/* Enough for the kernel, not for the initrd as well. */
	m = mem(80 * MiB);
	r = boot_linux(m, 1, kpath, ipath, "", &st, err, sizeof(err));
	CHECK_EQ(r, -E2BIG);
	CHECK(strstr(err, "initrd") != NULL);
	gmem_free(m);
}

/* ---- synthetic bzImages, one per codec ---- */
static uint8_t *test_elf(size_t *ret_len, uint64_t paddr, uint64_t memsz)
{
	static uint8_t data[3 * 4096 + 123];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + (i >> 8));
	uint8_t *out = malloc(0x1000 + sizeof(data));
	if (!out)
		abort();
	*ret_len = make_elf(out, 1, paddr, 0xffffffff80000000ULL + paddr, data, sizeof(data), memsz, paddr + 0x10);
	return out;
}

static void codec_case(int codec, const char *cname)
{
	size_t elen, plen, blen;
	uint8_t *elf = test_elf(&elen, 0x1000000, 0x8000);
	uint8_t *pl = compress_payload(codec, elf, elen, &plen);
	uint8_t *bz = make_bzimage(pl, plen, 0x400000, &blen);
	struct guest_mem *m = mem(64 * MiB);
	memset(gp(m, 0x1000000, 0x8000), 0xaa, 0x8000);
	char *path = tmp_file(bz, blen);
	int r = boot_linux(m, 1, path, NULL, "console=ttyS0", &st, err, sizeof(err));
	CHECK_EQ(r, 0);
	if (r)
		printf("  %s: %s\n", cname, err);
	const uint8_t *g = gp(m, 0x1000000, 0x8000);
	CHECK(!memcmp(g, elf + 0x1000, elen - 0x1000));
	CHECK_EQ(g[elen - 0x1000], 0);          /* bss zeroed */
	CHECK_EQ(g[0x7fff], 0);
	CHECK_EQ(st.rip, 0x1000010);
	check_long_mode(m);
	check_e820(m, gp(m, BOOT_ZERO_PAGE, 4096), 64 * MiB);
	check_mptable(m, 1);
	enum boot_kind kind;
	CHECK_EQ(boot_detect(path, &kind, err, sizeof(err)), 0);
	CHECK_EQ(kind, BOOT_KIND_BZIMAGE);

	/* Corrupt the compressed stream: a clear error, no crash. */
	if (codec != Z_BZIP2_FAKE) {
		for (size_t i = plen / 3; i < plen - 8; i++)
			bz[1024 + 0x40 + i] ^= 0x5a;
		tmp_remove(path);
		path = tmp_file(bz, blen);
		r = boot_linux(m, 1, path, NULL, "", &st, err, sizeof(err));
		CHECK(r == -ENOEXEC || r == -E2BIG);
		CHECK(strstr(err, cname) != NULL);
	}
	tmp_remove(path);
	gmem_free(m);
	free(bz);
	free(pl);
	free(elf);
}

static void test_codec_gzip(void) { codec_case(Z_GZIP, "gzip"); }
static void test_codec_xz(void) { codec_case(Z_XZ, "xz"); }
static void test_codec_zstd(void) { codec_case(Z_ZSTD, "zstd"); }
static void test_codec_lz4(void) { codec_case(Z_LZ4, "lz4"); }

/* A payload roam cannot decompress: the protected-mode image goes to
 * 1 MiB and the BSP enters the bzImage's own 64-bit entry. */
static void test_fallback_entry(void)
{
	size_t elen, plen, blen;
	uint8_t *elf = test_elf(&elen, 0x1000000, 0x8000);
	uint8_t *pl = compress_payload(Z_BZIP2_FAKE, elf, elen, &plen);
	uint8_t *bz = make_bzimage(pl, plen, 0x400000, &blen);
	struct guest_mem *m = mem(64 * MiB);
	struct linux_kernel k;
	CHECK_EQ(linux_load_kernel(m, bz, blen, "fake", 0, &k, err, sizeof(err)), 0);
	CHECK(!k.direct);
	CHECK_EQ(k.comp, COMP_BZIP2);
	CHECK_EQ(k.entry, 0x100200);
	CHECK(!memcmp(gp(m, 0x100000, blen - 1024), bz + 1024, blen - 1024));
	CHECK_EQ(linux_setup(m, 1, bz, &k, "x", 0, 0, &st, err, sizeof(err)), 0);
	CHECK_EQ(st.rip, 0x100200);
	CHECK_EQ(st.gpr[CPU_RSI], BOOT_ZERO_PAGE);
	gmem_free(m);
	free(bz);
	free(pl);
	free(elf);
}

/* ---- bad inputs ---- */
static int load_buf(const uint8_t *b, size_t n, uint64_t ram)
{
	struct guest_mem *m = mem(ram);
	char *path = tmp_file(b, n);
	int r = boot_linux(m, 1, path, NULL, "", &st, err, sizeof(err));
	tmp_remove(path);
	gmem_free(m);
	return r;
}

static void test_bad_files(void)
{
	struct guest_mem *m = mem(16 * MiB);
	enum boot_kind kind;
	CHECK_EQ(boot_linux(m, 1, "/nonexistent/vmlinuz", NULL, "", &st, err, sizeof(err)), -ENOENT);
	CHECK(strstr(err, "/nonexistent/vmlinuz") && strstr(err, "No such file"));
	CHECK_EQ(boot_detect("/nonexistent/vmlinuz", &kind, err, sizeof(err)), -ENOENT);
	CHECK_EQ(boot_detect("/tmp", &kind, err, sizeof(err)), -EISDIR);
	CHECK_EQ(boot_multiboot(m, "/tmp", "", &st, err, sizeof(err)), -EISDIR);
	char *p = tmp_file("hello, I am a text file\n", 24);
	CHECK_EQ(boot_detect(p, &kind, err, sizeof(err)), -ENOEXEC);
	CHECK(strstr(err, "not a kernel") != NULL);
	CHECK_EQ(kind, BOOT_KIND_NONE);
	CHECK_EQ(boot_linux(m, 1, p, NULL, "", &st, err, sizeof(err)), -ENOEXEC);
	CHECK_EQ(boot_multiboot(m, p, "", &st, err, sizeof(err)), -ENOEXEC);
	tmp_remove(p);
	p = tmp_file("", 0);
	CHECK_EQ(boot_detect(p, &kind, err, sizeof(err)), -ENOEXEC);
	tmp_remove(p);
	if (geteuid() != 0) {
		p = tmp_file("x", 1);
		CHECK_EQ(chmod(p, 0), 0);
		CHECK_EQ(boot_detect(p, &kind, err, sizeof(err)), -EACCES);
		tmp_remove(p);
	}
	CHECK_EQ(boot_linux(m, 0, "/x", NULL, "", &st, err, sizeof(err)), -EINVAL);
	gmem_free(m);
}

static void test_bad_bzimage(void)
{
	size_t elen, plen, blen;
	uint8_t *elf = test_elf(&elen, 0x1000000, 0x8000);
	uint8_t *pl = compress_payload(Z_GZIP, elf, elen, &plen);
	uint8_t *bz = make_bzimage(pl, plen, 0x400000, &blen);
	uint8_t *c = malloc(blen);
	enum boot_kind kind;

	/* Truncated inside the setup header. */
	CHECK_EQ(load_buf(bz, 0x220, 64 * MiB), -ENOEXEC);
	CHECK(strstr(err, "truncated") != NULL);
	/* Truncated inside the payload. */
	CHECK_EQ(load_buf(bz, blen - 100, 64 * MiB), -ENOEXEC);
	CHECK(strstr(err, "truncated") != NULL);
	char *p = tmp_file(bz, blen - 100);
	CHECK_EQ(boot_detect(p, &kind, err, sizeof(err)), -ENOEXEC);
	tmp_remove(p);
	/* Bad magic. */
	memcpy(c, bz, blen);
	memcpy(c + 0x202, "HdrZ", 4);
	CHECK_EQ(load_buf(c, blen, 64 * MiB), -ENOEXEC);
	CHECK(strstr(err, "not a Linux bzImage") != NULL);
	/* Old protocol. */
	memcpy(c, bz, blen);
	wr16(c + 0x206, 0x0204);
	CHECK_EQ(load_buf(c, blen, 64 * MiB), -ENOTSUP);
	CHECK(strstr(err, "2.04") != NULL);
	p = tmp_file(c, blen);
	CHECK_EQ(boot_detect(p, &kind, err, sizeof(err)), -ENOTSUP);
	tmp_remove(p);
	/* 32-bit only kernel. */
	memcpy(c, bz, blen);
	wr16(c + 0x236, 0);
	CHECK_EQ(load_buf(c, blen, 64 * MiB), -ENOTSUP);
	CHECK(strstr(err, "32-bit") != NULL);
	/* Payload length beyond the file. */
	memcpy(c, bz, blen);
	wr32(c + 0x24c, 0xfffffff0u);
	CHECK_EQ(load_buf(c, blen, 64 * MiB), -ENOEXEC);
	/* Huge setup_sects. */
	memcpy(c, bz, blen);
	c[0x1f1] = 0xff;
	CHECK_EQ(load_buf(c, blen, 64 * MiB), -ENOEXEC);
	/* Kernel too big for RAM (init_size reaches past 18 MiB). */
	CHECK_EQ(load_buf(bz, blen, 18 * MiB), -E2BIG);
	CHECK(strstr(err, "RAM") != NULL);
	/* Command line longer than cmdline_size. */
	{
		struct guest_mem *m = mem(64 * MiB);
		p = tmp_file(bz, blen);
		char *longcmd = malloc(5000);
		memset(longcmd, 'a', 4999);
		longcmd[4999] = 0;
		CHECK_EQ(boot_linux(m, 1, p, NULL, longcmd, &st, err, sizeof(err)), -E2BIG);
		CHECK(strstr(err, "command line") != NULL);
		/* Missing initrd. */
		CHECK_EQ(boot_linux(m, 1, p, "/nonexistent/initrd", "", &st, err, sizeof(err)), -ENOENT);
		CHECK(strstr(err, "initrd") != NULL);
		free(longcmd);
		tmp_remove(p);
		gmem_free(m);
	}
	free(c);
	free(bz);
	free(pl);
	free(elf);
}

/* The ELF inside a payload, malformed in different ways. */
static int load_payload_elf(uint8_t *elf, size_t elen, uint64_t ram)
{
	size_t plen, blen;
	uint8_t *pl = compress_payload(Z_ZSTD, elf, elen, &plen);
	uint8_t *bz = make_bzimage(pl, plen, 0x400000, &blen);
	int r = load_buf(bz, blen, ram);
	free(bz);
	free(pl);
	return r;
}

static void test_bad_elf(void)
{
	size_t elen;
	uint8_t *elf = test_elf(&elen, 0x1000000, 0x8000);
	uint8_t *c = malloc(elen);
	/* Segment data past the end of the file. */
	memcpy(c, elf, elen);
	wr64(c + 64 + 32, elen);                  /* p_filesz */
	wr64(c + 64 + 40, elen);                  /* p_memsz */
	CHECK_EQ(load_payload_elf(c, elen, 64 * MiB), -ENOEXEC);
	CHECK(strstr(err, "past the end") != NULL);
	/* Huge p_memsz: overflow, then merely too big. */
	memcpy(c, elf, elen);
	wr64(c + 64 + 40, 0xfffffffffffff000ULL);
	CHECK_EQ(load_payload_elf(c, elen, 64 * MiB), -ENOEXEC);
	CHECK(strstr(err, "overflow") != NULL);
	memcpy(c, elf, elen);
	wr64(c + 64 + 40, 1ULL << 30);
	CHECK_EQ(load_payload_elf(c, elen, 64 * MiB), -E2BIG);
	CHECK(strstr(err, "RAM") != NULL);
	/* filesz > memsz. */
	memcpy(c, elf, elen);
	wr64(c + 64 + 40, 16);
	CHECK_EQ(load_payload_elf(c, elen, 64 * MiB), -ENOEXEC);
	/* Program headers past the end. */
	memcpy(c, elf, elen);
	wr64(c + 32, elen - 8);
	CHECK_EQ(load_payload_elf(c, elen, 64 * MiB), -ENOEXEC);
	CHECK(strstr(err, "program headers") != NULL);
	/* Entry outside every segment. */
	memcpy(c, elf, elen);
	wr64(c + 24, 0x5000000);
	CHECK_EQ(load_payload_elf(c, elen, 64 * MiB), -ENOEXEC);
	CHECK(strstr(err, "entry") != NULL);
	/* Truncated ELF header. */
	CHECK_EQ(load_payload_elf(elf, 40, 64 * MiB), -ENOEXEC);
	/* Entry given as a virtual address is translated. */
	memcpy(c, elf, elen);
	wr64(c + 24, 0xffffffff81000020ULL);
	CHECK_EQ(load_payload_elf(c, elen, 64 * MiB), 0);
	CHECK_EQ(st.rip, 0x1000020);
	free(c);
	free(elf);
}

/* ---- Multiboot ---- */
static uint8_t mb_code[256];

static void mb_header(uint8_t *p, uint32_t flags)
{
	wr32(p, MB_MAGIC);
	wr32(p + 4, flags);
	wr32(p + 8, (uint32_t)-(MB_MAGIC + flags));
}

static void check_mb_info(struct guest_mem *m, const char *cmd, uint64_t ram)
{
	const uint8_t *i = gp(m, BOOT_MB_INFO_ADDR, 128);
	CHECK_EQ(st.gpr[CPU_RAX], 0x2badb002u);
	CHECK_EQ(st.gpr[CPU_RBX], BOOT_MB_INFO_ADDR);
	CHECK_EQ(st.cr0 & 0x80000001u, 1);
	CHECK_EQ(st.efer, 0);
	CHECK_EQ(st.seg[SEG_CS].sel, 0x08);
	CHECK(st.seg[SEG_CS].attr & SEG_ATTR_DB);
	CHECK(!(st.seg[SEG_CS].attr & SEG_ATTR_L));
	CHECK_EQ(st.seg[SEG_CS].limit, 0xffffffffu);
	CHECK_EQ(st.seg[SEG_DS].sel, 0x18);
	CHECK_EQ(st.rflags, 2);
	CHECK_EQ(rd32(i) & 0x245, 0x245);
	CHECK_EQ(rd32(i + 4), 639);
	CHECK_EQ(rd32(i + 8), (ram - MiB) >> 10);
	CHECK(!strcmp((const char *)gp(m, rd32(i + 16), strlen(cmd) + 1), cmd));
	CHECK(!strcmp((const char *)gp(m, rd32(i + 64), 5), "roam"));
	uint32_t ml = rd32(i + 44), ma = rd32(i + 48);
	CHECK_EQ(ml, 3 * 24);
	const uint8_t *mm = gp(m, ma, ml);
	CHECK_EQ(rd32(mm), 20);
	CHECK_EQ(rd64(mm + 4), 0);
	CHECK_EQ(rd64(mm + 12), 0x9fc00);
	CHECK_EQ(rd32(mm + 20), 1);
	CHECK_EQ(rd32(mm + 48 + 20), 1);
	CHECK_EQ(rd64(mm + 48 + 4), MiB);
	CHECK_EQ(rd64(mm + 48 + 12), ram - MiB);
}

static void mb_elf_case(int is64)
{
	for (size_t i = 0; i < sizeof(mb_code); i++)
		mb_code[i] = (uint8_t)(0xc3 ^ i);
	mb_header(mb_code, 0x3);
	uint8_t f[0x1000 + sizeof(mb_code)];
	size_t n = make_elf(f, is64, 0x100000, is64 ? 0xffffffff80100000ULL : 0x100000,
			    mb_code, sizeof(mb_code), 0x3000, 0x100010);
	char *path = tmp_file(f, n);
	struct guest_mem *m = mem(32 * MiB);
	memset(gp(m, 0x100000, 0x3000), 0x55, 0x3000);
	enum boot_kind kind;
	CHECK_EQ(boot_detect(path, &kind, err, sizeof(err)), 0);
	CHECK_EQ(kind, BOOT_KIND_MULTIBOOT);
	int r = boot_multiboot(m, path, "test=1 quiet", &st, err, sizeof(err));
	CHECK_EQ(r, 0);
	if (r)
		printf("  %s\n", err);
	CHECK(!memcmp(gp(m, 0x100000, sizeof(mb_code)), mb_code, sizeof(mb_code)));
	CHECK_EQ(gp(m, 0x100000, 0x3000)[0x2fff], 0);
	CHECK_EQ(st.rip, 0x100010);
	check_mb_info(m, "test=1 quiet", 32 * MiB);
	/* Kernel too big for a small VM. */
	struct guest_mem *s = mem(1 * MiB);
	CHECK_EQ(boot_multiboot(s, path, "", &st, err, sizeof(err)), -E2BIG);
	CHECK(strstr(err, "RAM") != NULL);
	gmem_free(s);
	tmp_remove(path);
	gmem_free(m);
}

static void test_multiboot_elf32(void) { mb_elf_case(0); }

/* boot_load dispatches on the kind and adds the MP table for Multiboot. */
static void test_boot_load(void)
{
	uint8_t code[64] = { 0 };
	uint8_t f[0x1000 + sizeof(code)];
	mb_header(code, 0x2);
	size_t n = make_elf(f, 0, 0x100000, 0x100000, code, sizeof(code), 0x1000, 0x100000);
	char *path = tmp_file(f, n);
	struct guest_mem *m = mem(16 * MiB);
	enum boot_kind kind = BOOT_KIND_NONE;
	CHECK_EQ(boot_load(m, 3, path, NULL, "a b", &st, &kind, err, sizeof(err)), 0);
	CHECK_EQ(kind, BOOT_KIND_MULTIBOOT);
	CHECK_EQ(st.rip, 0x100000);
	check_mptable(m, 3);
	CHECK_EQ(boot_load(m, 1, path, "/etc/hostname", "", &st, &kind, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "initrd") != NULL);
	tmp_remove(path);

	size_t elen, plen, blen;
	uint8_t *elf = test_elf(&elen, 0x1000000, 0x8000);
	uint8_t *pl = compress_payload(Z_LZ4, elf, elen, &plen);
	uint8_t *bz = make_bzimage(pl, plen, 0x400000, &blen);
	gmem_free(m);
	m = mem(64 * MiB);
	path = tmp_file(bz, blen);
	CHECK_EQ(boot_load(m, 2, path, "/etc/hostname", "console=ttyS0", &st, &kind, err, sizeof(err)), 0);
	CHECK_EQ(kind, BOOT_KIND_BZIMAGE);
	CHECK_EQ(st.rip, 0x1000010);
	CHECK(rd32(gp(m, BOOT_ZERO_PAGE, 4096) + 0x21c) > 0);
	check_mptable(m, 2);
	CHECK_EQ(boot_load(m, 1, "/nonexistent", NULL, "", &st, &kind, err, sizeof(err)), -ENOENT);
	CHECK_EQ(kind, BOOT_KIND_NONE);
	tmp_remove(path);
	gmem_free(m);
	free(bz);
	free(pl);
	free(elf);
}
static void test_multiboot_elf64(void) { mb_elf_case(1); }

static void test_multiboot_aout(void)
{
	/* Flat binary: 0x40 bytes of padding, header at 0x40, loaded at 2 MiB. */
	uint8_t f[0x400];
	memset(f, 0x90, sizeof(f));
	uint8_t *h = f + 0x40;
	mb_header(h, MB_FLAG_AOUT | 0x2);
	wr32(h + 12, 0x200040);              /* header_addr */
	wr32(h + 16, 0x200000);              /* load_addr */
	wr32(h + 20, 0x200300);              /* load_end_addr */
	wr32(h + 24, 0x202000);              /* bss_end_addr */
	wr32(h + 28, 0x200100);              /* entry */
	struct guest_mem *m = mem(16 * MiB);
	memset(gp(m, 0x200000, 0x3000), 0x77, 0x3000);
	char *path = tmp_file(f, sizeof(f));
	CHECK_EQ(boot_multiboot(m, path, "", &st, err, sizeof(err)), 0);
	CHECK(!memcmp(gp(m, 0x200000, 0x300), f, 0x300));
	CHECK_EQ(gp(m, 0x200300, 1)[0], 0);
	CHECK_EQ(gp(m, 0x201fff, 1)[0], 0);
	CHECK_EQ(gp(m, 0x202000, 1)[0], 0x77);
	CHECK_EQ(st.rip, 0x200100);
	check_mb_info(m, "", 16 * MiB);
	tmp_remove(path);

	/* load range past the end of the file. */
	wr32(h + 20, 0x201000);
	path = tmp_file(f, sizeof(f));
	CHECK_EQ(boot_multiboot(m, path, "", &st, err, sizeof(err)), -ENOEXEC);
	CHECK(strstr(err, "past the end") != NULL);
	tmp_remove(path);
	/* header_addr inconsistent with the header's offset. */
	wr32(h + 20, 0x200300);
	wr32(h + 12, 0x200400);
	path = tmp_file(f, sizeof(f));
	CHECK_EQ(boot_multiboot(m, path, "", &st, err, sizeof(err)), -ENOEXEC);
	tmp_remove(path);
	/* Entry outside the image. */
	wr32(h + 12, 0x200040);
	wr32(h + 28, 0x300000);
	path = tmp_file(f, sizeof(f));
	CHECK_EQ(boot_multiboot(m, path, "", &st, err, sizeof(err)), -ENOEXEC);
	CHECK(strstr(err, "entry") != NULL);
	tmp_remove(path);
	gmem_free(m);
}

static void test_multiboot_bad(void)
{
	uint8_t code[64] = { 0 };
	uint8_t f[0x1000 + sizeof(code)];
	struct guest_mem *m = mem(16 * MiB);
	enum boot_kind kind;
	/* Bad checksum. */
	wr32(code, MB_MAGIC);
	wr32(code + 4, 3);
	wr32(code + 8, 12345);
	size_t n = make_elf(f, 0, 0x100000, 0x100000, code, sizeof(code), 0x1000, 0x100000);
	char *path = tmp_file(f, n);
	CHECK_EQ(boot_multiboot(m, path, "", &st, err, sizeof(err)), -ENOEXEC);
	CHECK(strstr(err, "checksum") != NULL);
	CHECK_EQ(boot_detect(path, &kind, err, sizeof(err)), -ENOEXEC);
	tmp_remove(path);
	/* A feature flag roam does not implement. */
	mb_header(code, 0x8 | 0x2);
	n = make_elf(f, 0, 0x100000, 0x100000, code, sizeof(code), 0x1000, 0x100000);
	path = tmp_file(f, n);
	CHECK_EQ(boot_multiboot(m, path, "", &st, err, sizeof(err)), -ENOTSUP);
	tmp_remove(path);
	/* ELF without a Multiboot header. */
	memset(code, 0, sizeof(code));
	n = make_elf(f, 0, 0x100000, 0x100000, code, sizeof(code), 0x1000, 0x100000);
	path = tmp_file(f, n);
	CHECK_EQ(boot_detect(path, &kind, err, sizeof(err)), -ENOEXEC);
	CHECK(strstr(err, "without a Multiboot header") != NULL);
	tmp_remove(path);
	/* Segment below 1 MiB would clobber the boot data. */
	mb_header(code, 0x2);
	n = make_elf(f, 0, 0x8000, 0x8000, code, sizeof(code), 0x1000, 0x8000);
	path = tmp_file(f, n);
	CHECK_EQ(boot_multiboot(m, path, "", &st, err, sizeof(err)), -ENOEXEC);
	CHECK(strstr(err, "below 1 MiB") != NULL);
	tmp_remove(path);
	/* Truncated: the segment's data is cut off. */
	n = make_elf(f, 0, 0x100000, 0x100000, code, sizeof(code), 0x1000, 0x100000);
	path = tmp_file(f, n - 10);
	CHECK_EQ(boot_multiboot(m, path, "", &st, err, sizeof(err)), -ENOEXEC);
	CHECK(strstr(err, "past the end") != NULL);
	tmp_remove(path);
	gmem_free(m);
}

static void test_mptable_sizes(void)
{
	struct guest_mem *m = mem(2 * MiB);
	for (int n = 1; n <= 8; n++) {
		CHECK_EQ(boot_mptable(m, n, err, sizeof(err)), 0);
		check_mptable(m, n);
	}
	CHECK_EQ(boot_mptable(m, 254, err, sizeof(err)), 0);
	CHECK_EQ(boot_mptable(m, 0, err, sizeof(err)), -EINVAL);
	CHECK_EQ(boot_mptable(m, 255, err, sizeof(err)), -EINVAL);
	gmem_free(m);
}

static void test_e820_high(void)
{
	/* RAM above the 3 GiB hole shows up as a fourth entry at 4 GiB. */
	struct guest_mem *m = NULL;
	if (gmem_new(3 * 1024 * MiB + 64 * MiB, &m) < 0) {
		SKIP(test_e820_high, "cannot map 3.06 GiB of guest RAM");
		return;
	}
	struct e820_ent e[E820_MAX];
	int n = boot_e820(m, e);
	CHECK_EQ(n, 4);
	CHECK_EQ(e[2].addr + e[2].size, 0xc0000000ULL);
	CHECK_EQ(e[3].addr, 0x100000000ULL);
	CHECK_EQ(e[3].size, 64 * MiB);
	CHECK_EQ(e[3].type, 1);
	CHECK_EQ(boot_low_ram_end(m), 0xc0000000ULL);
	gmem_free(m);
}

/* Linux boots in QEMU from exactly the state boot_linux built, through
 * the direct vmlinux entry and through the fallback entry. */
static void test_qemu_boot(void)
{
	char k[512], i[512];
	src_path("build/kit/vmlinuz", k, sizeof(k));
	src_path("build/kit/initrd.img", i, sizeof(i));
	CHECK_EQ(test_linux_in_qemu(k, i, 0), 0);
	CHECK_EQ(test_linux_in_qemu(k, i, 1), 0);
}

/* A tests/guest/ kernel runs in QEMU from exactly the state boot_load built. */
static void test_qemu_multiboot(void)
{
	char k[512];
	CHECK_EQ(test_multiboot_in_qemu(src_path("build/guest/hello.elf", k, sizeof(k))), 0);
}

/* ---- the cache of decompressed kernels ---- */
static int count_entries(const char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "exit $(ls %s/kernels | grep -c '^vmlinux-')", dir);
	int r = system(cmd);
	return WIFEXITED(r) ? WEXITSTATUS(r) : -1;
}

static void test_kcache(void)
{
	char dir[] = "/tmp/roam-kcache-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	setenv("ROAM_CACHE_DIR", dir, 1);
	static uint8_t payload[4096], out[100000];
	test_fill_random(payload, sizeof(payload));
	test_fill_random(out, sizeof(out));
	uint8_t *got = NULL;
	size_t len = 0;
	CHECK_EQ(kcache_get(payload, sizeof(payload), 1 << 20, &got, &len), -ENOENT);
	kcache_put(payload, sizeof(payload), out, sizeof(out));
	CHECK_EQ(count_entries(dir), 1);
	CHECK_EQ(kcache_get(payload, sizeof(payload), 1 << 20, &got, &len), 0);
	CHECK(got && len == sizeof(out) && !memcmp(got, out, len));
	free(got);
	/* bigger than this VM allows: a miss, but the entry stays */
	CHECK_EQ(kcache_get(payload, sizeof(payload), 1000, &got, &len), -ENOENT);
	CHECK_EQ(count_entries(dir), 1);
	/* a damaged entry is a miss and goes away */
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "f=$(ls %s/kernels/vmlinux-*) && printf x | "
		 "dd of=$f bs=1 seek=5000 conv=notrunc 2>/dev/null", dir);
	CHECK_EQ(system(cmd), 0);
	CHECK_EQ(kcache_get(payload, sizeof(payload), 1 << 20, &got, &len), -ENOENT);
	CHECK_EQ(count_entries(dir), 0);
	/* only the most recently used entries are kept */
	for (int i = 0; i < 6; i++) {
		payload[0] = (uint8_t)i;
		kcache_put(payload, sizeof(payload), out, 1000);
	}
	CHECK_EQ(count_entries(dir), 4);
	payload[0] = 5;
	CHECK_EQ(kcache_get(payload, sizeof(payload), 1 << 20, &got, &len), 0);
	free(got);
	payload[0] = 0;
	CHECK_EQ(kcache_get(payload, sizeof(payload), 1 << 20, &got, &len), -ENOENT);
	/* set but empty: no cache at all */
	setenv("ROAM_CACHE_DIR", "", 1);
	payload[0] = 9;
	kcache_put(payload, sizeof(payload), out, 1000);
	CHECK_EQ(kcache_get(payload, sizeof(payload), 1 << 20, &got, &len), -ENOENT);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_EQ(system(cmd), 0);
}

int main(void)
{
	/* boot_linux caches decompressed kernels: keep the tests' out of ~/.cache */
	char cache[] = "/tmp/roam-kcache-XXXXXX";
	if (!mkdtemp(cache) || setenv("ROAM_CACHE_DIR", cache, 1))
		abort();
	char kpath[512];
	if (access(src_path("build/kit/vmlinuz", kpath, sizeof(kpath)), R_OK) == 0 &&
	    access(src_path("build/kit/initrd.img", kpath, sizeof(kpath)), R_OK) == 0)
		TEST(test_kit_kernel);
	else
		SKIP(test_kit_kernel, "build/kit/vmlinuz or initrd.img missing (run make kit)");
	if (access(src_path("build/kit/vmlinuz", kpath, sizeof(kpath)), R_OK) == 0 &&
	    access(src_path("build/kit/initrd.img", kpath, sizeof(kpath)), R_OK) == 0 &&
	    system("qemu-system-x86_64 --version >/dev/null 2>&1") == 0)
		TEST(test_qemu_boot);
	else
		SKIP(test_qemu_boot, "needs build/kit and qemu-system-x86_64");
	if (access(src_path("build/guest/hello.elf", kpath, sizeof(kpath)), R_OK) == 0 &&
	    system("qemu-system-x86_64 --version >/dev/null 2>&1") == 0)
		TEST(test_qemu_multiboot);
	else
		SKIP(test_qemu_multiboot, "needs build/guest/hello.elf (make guest-tests) and qemu-system-x86_64");
	TEST(test_codec_gzip);
	TEST(test_codec_xz);
	TEST(test_codec_zstd);
	TEST(test_codec_lz4);
	TEST(test_fallback_entry);
	TEST(test_bad_files);
	TEST(test_bad_bzimage);
	TEST(test_bad_elf);
	TEST(test_multiboot_elf32);
	TEST(test_multiboot_elf64);
	TEST(test_multiboot_aout);
	TEST(test_boot_load);
	TEST(test_multiboot_bad);
	TEST(test_mptable_sizes);
	TEST(test_e820_high);
	char cmd[100];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", cache);
	if (system(cmd))
		printf("  could not remove %s\n", cache);
	TEST(test_kcache);
	TEST_EXIT();
}
