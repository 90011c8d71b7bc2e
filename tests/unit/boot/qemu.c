/* Cross-checks of the loaders against a real CPU. Linux: the guest memory and BSP
 * state boot_linux builds for the kit kernel are handed to QEMU (TCG) and
 * Linux must boot from them to the kit's userspace. QEMU's multiboot
 * loader starts a small trampoline (below) that copies roam's low-memory
 * structures into place, loads roam's GDT/CR3/CR4/EFER/CR0 values, far-
 * jumps to 64-bit mode and jumps to roam's RIP with roam's RSI/RSP. The
 * kernel image and initrd go in with QEMU's generic loader device at the
 * addresses roam chose. QEMU's BIOS keeps the 0xf0000 segment read-only,
 * so roam's MP floating pointer is copied to 0x0 (Linux scans there first)
 * pointing at roam's configuration table copied to 0x30000.
 * Multiboot: a test kernel from tests/guest/ is loaded by boot_load and
 * entered the same way in 32-bit mode (EAX/EBX, CS/DS from roam's GDT);
 * it must report roam's memory size and MP-table CPU count and pass. The
 * floating pointer goes to 0x9fc00, where the test runtime looks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "tests/unit/boot/util.h"
#include "monitor/boot/boot.h"
#include "monitor/boot/boot_int.h"
#include "monitor/cpu_state.h"
#include "monitor/guest_mem.h"

/* nasm source, org IMG_BASE + 0x20, PARAMS = IMG_BASE + 0x100 (the two
 * "mov ebx, PARAMS" immediates are patched at TRAMP_PARAMS_IMM1/2):
 *   cli; cld; mov ebx, PARAMS; lea edx, [ebx+64]
 * .next: mov ecx, [edx+8]; test ecx, ecx; jz .done
 *   mov esi, [edx]; mov edi, [edx+4]; rep movsb; add edx, 12; jmp .next
 * .done: lgdt [ebx]; mov eax, [ebx+8]; mov cr4, eax
 *   mov eax, [ebx+12]; mov cr3, eax
 *   mov ecx, 0xC0000080; rdmsr; or eax, [ebx+16]; wrmsr
 *   mov eax, [ebx+20]; mov cr0, eax; jmp far [ebx+24]
 * bits 64 (long64 = IMG_BASE + 0x61): mov ebx, PARAMS; mov eax, [rbx+32]
 *   mov ds/es/ss/fs/gs, ax; mov rsp, [rbx+40]; mov rsi, [rbx+48]; jmp [rbx+56]
 */
static const uint8_t tramp[] = {
	0xfa, 0xfc, 0xbb, 0x00, 0x01, 0x20, 0x00, 0x8d, 0x53, 0x40, 0x8b, 0x4a,
	0x08, 0x85, 0xc9, 0x74, 0x0c, 0x8b, 0x32, 0x8b, 0x7a, 0x04, 0xf3, 0xa4,
	0x83, 0xc2, 0x0c, 0xeb, 0xed, 0x0f, 0x01, 0x13, 0x8b, 0x43, 0x08, 0x0f,
	0x22, 0xe0, 0x8b, 0x43, 0x0c, 0x0f, 0x22, 0xd8, 0xb9, 0x80, 0x00, 0x00,
	0xc0, 0x0f, 0x32, 0x0b, 0x43, 0x10, 0x0f, 0x30, 0x8b, 0x43, 0x14, 0x0f,
	0x22, 0xc0, 0xff, 0x6b, 0x18, 0xbb, 0x00, 0x01, 0x20, 0x00, 0x8b, 0x43,
	0x20, 0x8e, 0xd8, 0x8e, 0xc0, 0x8e, 0xd0, 0x8e, 0xe0, 0x8e, 0xe8, 0x48,
	0x8b, 0x63, 0x28, 0x48, 0x8b, 0x73, 0x30, 0xff, 0x63, 0x38,
};
/* 32-bit variant: after the same copy loop, lgdt [ebx]; mov eax, [ebx+32];
 * mov ds/es/ss/fs/gs, ax; mov eax, [ebx+8]; mov ecx, ebx;
 * mov ebx, [ecx+12]; jmp far [ecx+24]. */
static const uint8_t tramp32[] = {
	0xfa, 0xfc, 0xbb, 0x00, 0x01, 0x00, 0x08, 0x8d, 0x53, 0x40, 0x8b, 0x4a,
	0x08, 0x85, 0xc9, 0x74, 0x0c, 0x8b, 0x32, 0x8b, 0x7a, 0x04, 0xf3, 0xa4,
	0x83, 0xc2, 0x0c, 0xeb, 0xed, 0x0f, 0x01, 0x13, 0x8b, 0x43, 0x20, 0x8e,
	0xd8, 0x8e, 0xc0, 0x8e, 0xd0, 0x8e, 0xe0, 0x8e, 0xe8, 0x8b, 0x43, 0x08,
	0x89, 0xd9, 0x8b, 0x59, 0x0c, 0xff, 0x69, 0x18,
};
#define IMG_BASE 0x8000000u     /* 128 MiB: clear of kernel and initrd */
#define PARAMS   0x100u
#define LONG64   (IMG_BASE + 0x61u)
#define TRAMP_PARAMS_IMM1 3
#define TRAMP_PARAMS_IMM2 66
#define BLOBS    0x400u
#define MPC_COPY 0x30000u

static int failed;
#define QCHECK(c) do { if (!(c)) { printf("  %s:%d: QCHECK(%s) failed\n", __FILE__, __LINE__, #c); failed = 1; } } while (0)

struct img { uint8_t *p; size_t len, cap, ncopy; };

static void add_copy(struct img *im, const void *src, uint32_t dst, uint32_t len)
{
	if (im->len + len > im->cap || im->ncopy == 20)
		abort();
	uint8_t *e = im->p + PARAMS + 64 + 12 * im->ncopy++;
	wr32(e, IMG_BASE + (uint32_t)im->len);
	wr32(e + 4, dst);
	wr32(e + 8, len);
	memcpy(im->p + im->len, src, len);
	im->len = (im->len + len + 15) & ~(size_t)15;
}

static char *dump_file(struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	return tmp_file(gmem_ptr(m, gpa, len), len);
}

static void img_init(struct img *im, const uint8_t *code, size_t n)
{
	im->cap = 1 << 20;
	im->len = BLOBS;
	im->ncopy = 0;
	im->p = calloc(1, im->cap);
	if (!im->p)
		abort();
	/* Multiboot header, a.out kludge: load at IMG_BASE, enter at +0x20. */
	wr32(im->p, MB_MAGIC);
	wr32(im->p + 4, MB_FLAG_AOUT);
	wr32(im->p + 8, (uint32_t)-(MB_MAGIC + MB_FLAG_AOUT));
	wr32(im->p + 12, IMG_BASE);
	wr32(im->p + 16, IMG_BASE);
	wr32(im->p + 24, 0);
	wr32(im->p + 28, IMG_BASE + 0x20);
	memcpy(im->p + 0x20, code, n);
	wr32(im->p + 0x20 + TRAMP_PARAMS_IMM1, IMG_BASE + PARAMS);
}

/* roam's MP table: the floating pointer (re-pointed at MPC_COPY) to fp_dst. */
static void add_mptable(struct img *im, struct guest_mem *m, uint32_t fp_dst)
{
	uint8_t mpf[16];
	memcpy(mpf, gmem_ptr(m, BOOT_MPTABLE_ADDR, 16), 16);
	uint32_t mpc = rd32(mpf + 4);
	uint16_t mpclen = rd16((const uint8_t *)gmem_ptr(m, mpc, 8) + 4);
	add_copy(im, gmem_ptr(m, mpc, mpclen), MPC_COPY, mpclen);
	wr32(mpf + 4, MPC_COPY);
	mpf[10] = 0;
	uint8_t s = 0;
	for (int i = 0; i < 16; i++)
		s = (uint8_t)(s + mpf[i]);
	mpf[10] = (uint8_t)-s;
	add_copy(im, mpf, fp_dst, 16);
}

/* Runs QEMU with the trampoline image (+ extra args), output to a temp
 * file whose malloc'd path is returned. */
static char *run_qemu(struct img *im, int ncpus, const char *extra)
{
	wr32(im->p + 20, IMG_BASE + (uint32_t)im->len);     /* load_end_addr */
	char *tpath = tmp_file(im->p, im->len);
	char *out = strdup("/tmp/roam-boot-qemu.XXXXXX");
	int ofd = out ? mkstemp(out) : -1;
	if (ofd < 0)
		abort();
	close(ofd);
	char sh[2048];
	snprintf(sh, sizeof(sh),
		 "timeout 120 qemu-system-x86_64 -accel tcg -smp %d -m 512 -nographic -no-reboot "
		 "-kernel %s %s </dev/null >%s 2>&1", ncpus, tpath, extra, out);
	int rc = system(sh);
	/* 124: timeout; a debug-exit status is (v << 1) | 1, odd. */
	QCHECK(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) != 124);
	tmp_remove(tpath);
	return out;
}

static void show_tail(const char *out)
{
	char sh[512];
	snprintf(sh, sizeof(sh), "tail -n 15 %s | sed 's/^/  qemu: /'", out);
	if (system(sh) != 0)
		printf("  (no QEMU output)\n");
}

int test_linux_in_qemu(const char *kpath, const char *ipath, int fallback)
{
	static struct cpu_state st;
	char err[256];
	struct guest_mem *m = NULL;
	failed = 0;
	if (gmem_new(256ULL << 20, &m) < 0)
		return -1;
	const char *cmd = "console=ttyS0 acpi=off roam.halt";
	/* SMP is checked on the direct path; one CPU keeps the slower fallback
	 * boot (the guest decompresses XZ under TCG) short. */
	int ncpus = fallback ? 1 : 2;
	char cpus_marker[32];
	snprintf(cpus_marker, sizeof(cpus_marker), "roam-guest: cpus=%d", ncpus);
	int r = boot_linux_flags(m, ncpus, kpath, ipath, cmd, fallback ? LINUX_NO_DECOMPRESS : 0,
				 &st, err, sizeof(err));
	if (r) {
		printf("  boot_linux: %s\n", err);
		gmem_free(m);
		return -1;
	}
	struct img im;
	img_init(&im, tramp, sizeof(tramp));
	wr32(im.p + 0x20 + TRAMP_PARAMS_IMM2, IMG_BASE + PARAMS);
	uint8_t *pa = im.p + PARAMS;
	wr16(pa, st.gdt.limit);
	wr32(pa + 2, (uint32_t)st.gdt.base);
	wr32(pa + 8, (uint32_t)st.cr4);
	wr32(pa + 12, (uint32_t)st.cr3);
	wr32(pa + 16, (uint32_t)(st.efer & 0x100));
	wr32(pa + 20, (uint32_t)st.cr0);
	wr32(pa + 24, LONG64);
	wr16(pa + 28, st.seg[SEG_CS].sel);
	wr32(pa + 32, st.seg[SEG_DS].sel);
	wr64(pa + 40, st.gpr[CPU_RSP]);
	wr64(pa + 48, st.gpr[CPU_RSI]);
	wr64(pa + 56, st.rip);

	const uint8_t *zp = gmem_ptr(m, st.gpr[CPU_RSI], 4096);
	add_copy(&im, gmem_ptr(m, st.gdt.base, st.gdt.limit + 1u), (uint32_t)st.gdt.base, st.gdt.limit + 1u);
	add_copy(&im, zp, (uint32_t)st.gpr[CPU_RSI], 4096);
	add_copy(&im, gmem_ptr(m, st.cr3, 6 * 4096), (uint32_t)st.cr3, 6 * 4096);
	uint32_t cl = rd32(zp + 0x228);
	add_copy(&im, gmem_ptr(m, cl, strlen(cmd) + 1), cl, (uint32_t)strlen(cmd) + 1);
	add_mptable(&im, m, 0);

	/* Direct: the vmlinux image roam placed; fallback: the protected-mode
	 * code at 1 MiB, entered at +0x200. */
	uint64_t kstart = rd64(zp + 0x258), ksize = rd32(zp + 0x260);
	if (fallback) {
		FILE *kf = fopen(kpath, "rb");
		long klen = -1;
		if (kf && fseek(kf, 0, SEEK_END) == 0)
			klen = ftell(kf);
		if (kf)
			fclose(kf);
		unsigned sects = zp[0x1f1] ? zp[0x1f1] : 4;
		kstart = st.rip - 0x200;
		ksize = klen > 0 ? (uint64_t)klen - (sects + 1) * 512 : 0;
		QCHECK(kstart == 0x100000 && ksize > 0);
	}
	uint32_t ri = rd32(zp + 0x218), rs = rd32(zp + 0x21c);
	char *kimg = dump_file(m, kstart, ksize), *iimg = dump_file(m, ri, rs);
	char extra[1024];
	snprintf(extra, sizeof(extra),
		 "-device loader,file=%s,addr=0x%llx,force-raw=on "
		 "-device loader,file=%s,addr=0x%x,force-raw=on -device virtio-rng-pci,addr=05.0",
		 kimg, (unsigned long long)kstart, iimg, ri);
	char *out = run_qemu(&im, ncpus, extra);
	FILE *f = fopen(out, "r");
	char line[1024];
	int ready = 0, cpus = 0, mp = 0, e820 = 0, irq = 0;
	while (f && fgets(line, sizeof(line), f)) {
		ready |= strstr(line, "roam-guest: ready") != NULL;
		cpus |= strstr(line, cpus_marker) != NULL;
		mp |= strstr(line, "MPTABLE: OEM ID: ROAM") != NULL;
		e820 |= strstr(line, "BIOS-e820: [mem 0x000000000009fc00-0x00000000000fffff] reserved") != NULL;
		/* slot 5 INTA: pin 16 + (5 - 1 + 0) % 8 = 20 */
		irq |= strstr(line, "00:05.0: PCI->APIC IRQ transform: INT A -> IRQ 20") != NULL;
	}
	if (f)
		fclose(f);
	QCHECK(ready);
	QCHECK(cpus);
	QCHECK(mp);
	QCHECK(e820);
	QCHECK(irq);
	if (!(ready && cpus && mp && e820 && irq))
		show_tail(out);
	unlink(out);
	free(out);
	tmp_remove(kimg);
	tmp_remove(iimg);
	free(im.p);
	gmem_free(m);
	return failed ? -1 : 0;
}

int test_multiboot_in_qemu(const char *kpath)
{
	static struct cpu_state st;
	char err[256];
	struct guest_mem *m = NULL;
	failed = 0;
	if (gmem_new(64ULL << 20, &m) < 0)
		return -1;
	const char *cmd = "roam-qemu-check";
	enum boot_kind kind;
	int r = boot_load(m, 2, kpath, NULL, cmd, &st, &kind, err, sizeof(err));
	if (r || kind != BOOT_KIND_MULTIBOOT) {
		printf("  boot_load: %s\n", r ? err : "not a Multiboot kernel");
		gmem_free(m);
		return -1;
	}
	struct elf_img e;
	uint8_t *kb;
	size_t klen;
	if (boot_read_file(kpath, "kernel", 64u << 20, &kb, &klen, err, sizeof(err)) < 0 ||
	    elf_parse(kb, klen, kpath, 64u << 20, &e, err, sizeof(err)) < 0) {
		printf("  %s\n", err);
		gmem_free(m);
		return -1;
	}
	free(kb);
	struct img im;
	img_init(&im, tramp32, sizeof(tramp32));
	uint8_t *pa = im.p + PARAMS;
	wr16(pa, st.gdt.limit);
	wr32(pa + 2, (uint32_t)st.gdt.base);
	wr32(pa + 8, (uint32_t)st.gpr[CPU_RAX]);
	wr32(pa + 12, (uint32_t)st.gpr[CPU_RBX]);
	wr32(pa + 24, (uint32_t)st.rip);
	wr16(pa + 28, st.seg[SEG_CS].sel);
	wr32(pa + 32, st.seg[SEG_DS].sel);
	add_copy(&im, gmem_ptr(m, st.gdt.base, st.gdt.limit + 1u), (uint32_t)st.gdt.base, st.gdt.limit + 1u);
	add_copy(&im, gmem_ptr(m, BOOT_MB_INFO_ADDR, 0x400), (uint32_t)BOOT_MB_INFO_ADDR, 0x400);
	add_copy(&im, gmem_ptr(m, BOOT_MB_CMDLINE_ADDR, strlen(cmd) + 1), (uint32_t)BOOT_MB_CMDLINE_ADDR,
		 (uint32_t)strlen(cmd) + 1);
	add_mptable(&im, m, 0x9fc00);
	add_copy(&im, gmem_ptr(m, e.lo, e.hi - e.lo), (uint32_t)e.lo, (uint32_t)(e.hi - e.lo));
	char *out = run_qemu(&im, 2, "-device isa-debug-exit,iobase=0xf4,iosize=4");
	FILE *f = fopen(out, "r");
	char line[1024];
	int banner = 0, facts = 0, ok = 0;
	while (f && fgets(line, sizeof(line), f)) {
		banner |= strstr(line, "cmdline=\"roam-qemu-check\"") != NULL;
		facts |= strstr(line, "mem_top=0x4000000 cpus_in_mp_table=2") != NULL;
		ok |= strstr(line, "TEST hello: ok") != NULL;
	}
	if (f)
		fclose(f);
	QCHECK(banner);
	QCHECK(facts);
	QCHECK(ok);
	if (!(banner && facts && ok))
		show_tail(out);
	unlink(out);
	free(out);
	free(im.p);
	gmem_free(m);
	return failed ? -1 : 0;
}
