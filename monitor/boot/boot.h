/* Kernel loaders: Linux bzImage (64-bit boot protocol, payload decompressed
 * on the host), Multiboot v1 ELF kernels, and the platform tables the guest
 * finds without ACPI (e820 in boot_params, an Intel MP table).
 *
 * Kernel files are hostile input: every offset, size and address in them is
 * checked against the file and against guest RAM. Every function returns 0
 * or -errno and, on failure, one line in err (errlen may be 0) naming the
 * file and what is wrong with it.
 *
 * Guest-physical layout the loaders use (all below 1 MiB, reserved or
 * rewritten by the guest later):
 *   0x00500  GDT: 0x08 code32, 0x10 code64 (__BOOT_CS), 0x18 data
 *            (__BOOT_DS), 0x20 TSS (for TR; VMX needs a usable TR)
 *   0x07000  Linux boot_params (the "zero page")
 *   0x09000  Linux: identity page tables for 0..4 GiB (PML4 0x9000, PDPT
 *            0xa000, four PDs 0xb000-0xefff, 2 MiB pages)
 *            Multiboot: multiboot_info (0x9000), mmap (0x9100), loader name
 *   0x10000  Multiboot command line (up to 64 KiB)
 *   0x20000  Linux command line (up to the header's cmdline_size, 64 KiB)
 *   0xf0000  MP floating pointer, then the MP configuration table
 *   e820 marks 0x9fc00-0x100000 reserved (EBDA, VGA/ROM hole, MP table).
 */
#ifndef ROAM_BOOT_H
#define ROAM_BOOT_H
#include <stddef.h>
#include <stdint.h>

struct guest_mem;
struct cpu_state;

#define BOOT_GDT_ADDR        0x500ULL
#define BOOT_ZERO_PAGE       0x7000ULL
#define BOOT_PML4_ADDR       0x9000ULL
#define BOOT_MB_INFO_ADDR    0x9000ULL
#define BOOT_MB_CMDLINE_ADDR 0x10000ULL
#define BOOT_CMDLINE_ADDR    0x20000ULL
#define BOOT_CMDLINE_MAX     0x10000ULL
#define BOOT_MPTABLE_ADDR    0xf0000ULL

#define BOOT_SEL_CODE32 0x08
#define BOOT_SEL_CODE64 0x10
#define BOOT_SEL_DATA   0x18
#define BOOT_SEL_TSS    0x20

/* What the VM should put on a Linux command line before the user's text:
 * the console is the 8250 at 0x3f8 and there are no ACPI tables, so Linux
 * must find CPUs and the IOAPIC in the MP table. tsc=reliable: under the
 * binary translator a long stretch with interrupts off (FPU and alternatives
 * setup) would otherwise make Linux distrust the TSC and keep time from
 * lost ticks. */
#define BOOT_LINUX_CMDLINE_DEFAULT "console=ttyS0 acpi=off tsc=reliable"

enum boot_kind {
	BOOT_KIND_NONE = 0,
	BOOT_KIND_BZIMAGE,       /* Linux bzImage, protocol >= 2.12 */
	BOOT_KIND_MULTIBOOT,     /* ELF (32- or 64-bit) or a.out-kludge
				  * image with a Multiboot v1 header */
};

/* Tells what kind of kernel the file at path is, without loading it.
 * Returns 0 and *kind; -ENOENT/-EACCES/-EISDIR (missing or unreadable),
 * -ENOEXEC (not a kernel; a truncated or malformed one), -ENOTSUP (a Linux
 * kernel with a boot protocol roam cannot use), with a reason in err. */
int boot_detect(const char *path, enum boot_kind *kind, char *err, size_t errlen);

/* Loads a Linux bzImage into m for ncpus CPUs (1..255):
 * - the payload (xz, gzip, zstd or lz4 by its magic) is decompressed on the
 *   host and the vmlinux ELF's PT_LOAD segments are placed at their
 *   p_paddr (Debian: 16 MiB = LOAD_PHYSICAL_ADDR). The BSP enters
 *   vmlinux's startup_64 (e_entry, physical) in 64-bit mode as the boot
 *   protocol's 64-bit entry describes: identity-mapped 0..4 GiB, CS 0x10
 *   (64-bit), DS/ES/SS 0x18, interrupts off, RSI = boot_params. startup_64
 *   copes with any 2 MiB-aligned physical address by fixing up its own page
 *   tables (__startup_64); what it cannot do is apply the virtual
 *   relocations the in-kernel decompressor applies for KASLR. The kernel
 *   therefore runs at its link-time virtual address (no KASLR), which needs
 *   no relocation; boot_params.hdr.loadflags has no KASLR_FLAG, so the
 *   kernel knows.
 * - Fallback when the payload is not decompressible here (bzip2, lzma,
 *   lzo, or not an ELF inside): the protected-mode image is loaded at
 *   code32_start (1 MiB) and entered at +0x200, the bzImage's own 64-bit
 *   entry (needs XLF_KERNEL_64); the kernel then decompresses itself.
 * - boot_params: the file's setup header copied in, type_of_loader 0xff,
 *   cmd_line_ptr, an e820 map (gmem_regions minus the reserved
 *   0x9fc00-0x100000), and the initrd (if initrd_path) page-aligned at the
 *   top of RAM below min(initrd_addr_max, 3 GiB), above the kernel.
 * - the MP table (boot_mptable) for ncpus CPUs.
 * cmdline NULL means "". *bsp is reset (cpu_state_reset) and set for entry.
 * Errors: -ENOENT/-EACCES (file), -ENOEXEC (not a bzImage, truncated,
 * malformed payload or ELF), -ENOTSUP (protocol < 2.12), -E2BIG (kernel,
 * initrd or command line does not fit in RAM / the header's limits),
 * -ENOMEM (host allocation), -EINVAL (ncpus). */
int boot_linux(struct guest_mem *m, int ncpus, const char *kernel_path,
	       const char *initrd_path, const char *cmdline, struct cpu_state *bsp,
	       char *err, size_t errlen);

/* Loads a Multiboot v1 kernel: header (magic 0x1BADB002, flags, checksum)
 * 4-byte aligned in the first 8 KiB. With flag 16 the a.out-kludge address
 * fields place the image; otherwise the file must be an ELF, 32-bit
 * (EM_386) or 64-bit (EM_X86_64), whose PT_LOAD segments go to p_paddr.
 * Builds multiboot_info at BOOT_MB_INFO_ADDR with mem_lower/mem_upper, an
 * mmap (the e820 map boot_linux would give) , the command line and the
 * loader name "roam". The BSP enters at the entry point in 32-bit
 * protected mode, paging off, flat CS 0x08 / DS 0x18, EAX 0x2BADB002,
 * EBX = info address, interrupts off. The MP table is not written: call
 * boot_mptable for SMP test kernels. Errors as for boot_linux; -ENOTSUP
 * for header flags roam does not implement (bits 3-15 requested). */
int boot_multiboot(struct guest_mem *m, const char *path, const char *cmdline,
		   struct cpu_state *bsp, char *err, size_t errlen);

/* Writes an Intel MP 1.4 table at BOOT_MPTABLE_ADDR (floating pointer,
 * then the configuration table):
 * - one processor per CPU, APIC id = index, CPU 0 is the BSP;
 * - bus 0 "PCI", bus 1 "ISA";
 * - one IOAPIC, id = ncpus, version 0x11, 24 pins, at 0xFEC00000;
 * - ISA IRQ 0 -> pin 2, IRQs 1 and 3-15 -> the same pin (edge, high);
 *   IRQ 2 is not routed;
 * - PCI bus 0, slots 1..31, INTA..INTD (pin 0..3) -> IOAPIC pin
 *   BOOT_PCI_IRQ_PIN(slot, pin), level, active low. The PCI host bridge
 *   must program the same value into each device's Interrupt Line;
 * - ExtINT on LINT0, NMI on LINT1 of every local APIC.
 * Returns 0, -EINVAL (ncpus not 1..254), -E2BIG (no RAM at 0xf0000). */
int boot_mptable(struct guest_mem *m, int ncpus, char *err, size_t errlen);

/* What vm_boot needs in one call: boot_detect, then boot_linux for a
 * bzImage, or boot_multiboot + boot_mptable(ncpus) for a Multiboot kernel
 * (an initrd is refused there: -EINVAL). cmdline is passed as given (the
 * caller adds BOOT_LINUX_CMDLINE_DEFAULT for Linux). *ret_kind may be
 * NULL. Errors as for those functions. */
int boot_load(struct guest_mem *m, int ncpus, const char *kernel_path,
	      const char *initrd_path, const char *cmdline, struct cpu_state *bsp,
	      enum boot_kind *ret_kind, char *err, size_t errlen);

/* The PCI INTx swizzle of the MP table: slot 1..31, pin 0 (INTA)..3 (INTD)
 * -> IOAPIC pin 16..23. */
#define BOOT_PCI_IRQ_PIN(slot, pin) (16 + (((slot) - 1 + (pin)) & 7))

#define BOOT_IOAPIC_ADDR 0xfec00000ULL
#define BOOT_LAPIC_ADDR  0xfee00000ULL
#endif
