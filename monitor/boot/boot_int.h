/* Private to monitor/boot/: the parsers (setup header, payload codecs, ELF,
 * Multiboot header) over in-memory buffers, the x86 entry-state builders
 * and the e820 map. The public loaders in boot.h read files and call
 * these; tests/fuzz/boot_fuzz.c calls them directly.
 *
 * Linux setup header fields used (offsets in the bzImage file and in
 * boot_params, which embeds the header at the same offset):
 *   0x1f1 u8  setup_sects (0 means 4)     0x228 u32 cmd_line_ptr
 *   0x1fe u16 boot_flag 0xaa55            0x22c u32 initrd_addr_max
 *   0x201 u8  jump offset: hdr ends at    0x230 u32 kernel_alignment
 *             0x202 + this byte           0x234 u8  relocatable_kernel
 *   0x202 u32 "HdrS"                      0x236 u16 xloadflags
 *   0x206 u16 version                     0x238 u32 cmdline_size
 *   0x210 u8  type_of_loader              0x248 u32 payload_offset
 *   0x211 u8  loadflags                   0x24c u32 payload_length
 *   0x214 u32 code32_start                0x258 u64 pref_address
 *   0x218 u32 ramdisk_image               0x260 u32 init_size
 *   0x21c u32 ramdisk_size
 * boot_params only: 0x0c0 ext_ramdisk_image, 0x0c4 ext_ramdisk_size,
 *   0x0c8 ext_cmd_line_ptr, 0x1e8 e820_entries, 0x2d0 e820_table[128]
 *   ({u64 addr, u64 size, u32 type}, packed).
 */
#ifndef ROAM_BOOT_INT_H
#define ROAM_BOOT_INT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct guest_mem;
struct cpu_state;

int boot_fail(char *err, size_t errlen, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t rd32(const uint8_t *p) { return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16; }
static inline uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void wr32(uint8_t *p, uint32_t v) { wr16(p, (uint16_t)v); wr16(p + 2, (uint16_t)(v >> 16)); }
static inline void wr64(uint8_t *p, uint64_t v) { wr32(p, (uint32_t)v); wr32(p + 4, (uint32_t)(v >> 32)); }

/* Whole file into a malloc'd buffer; refuses files above max bytes
 * (-E2BIG) and says "what" (e.g. "kernel") in messages. */
int boot_read_file(const char *path, const char *what, size_t max,
		   uint8_t **ret_buf, size_t *ret_len, char *err, size_t errlen);

/* ---- bzImage setup header ---- */
#define BZ_LOADED_HIGH   0x01
#define BZ_KASLR_FLAG    0x02
#define BZ_CAN_USE_HEAP  0x80
#define BZ_XLF_KERNEL_64 0x01
#define BZ_XLF_ABOVE_4G  0x02
#define BZ_MIN_VERSION   0x020c

struct bz_hdr {
	uint8_t setup_sects;
	uint16_t version;
	uint8_t loadflags;
	uint16_t xloadflags;
	uint32_t code32_start, initrd_addr_max, kernel_alignment;
	uint32_t cmdline_size, payload_offset, payload_length, init_size;
	uint64_t pref_address;
	size_t hdr_end;         /* file offset just past the setup header */
	size_t pm_offset;       /* protected-mode code: file offset, length */
	size_t pm_len;
};
/* 0, -ENOEXEC (not a bzImage / truncated / bad fields), -ENOTSUP (old
 * protocol or not a 64-bit kernel). */
int bz_parse(const uint8_t *buf, size_t len, const char *name, struct bz_hdr *h,
	     char *err, size_t errlen);

/* ---- payload codecs ---- */
enum bz_comp { COMP_UNKNOWN, COMP_GZIP, COMP_XZ, COMP_ZSTD, COMP_LZ4,
	       COMP_BZIP2, COMP_LZMA, COMP_LZO };
enum bz_comp bz_comp_detect(const uint8_t *p, size_t len);
const char *bz_comp_name(enum bz_comp c);
/* Decompresses a Linux payload (the codec's stream followed by the 4-byte
 * little-endian uncompressed size Linux appends) into a malloc'd buffer of
 * at most max_out bytes. 0; -ENOTSUP (codec not supported here), -ENOEXEC
 * (corrupt), -E2BIG (output above max_out), -ENOMEM. */
int bz_decompress(const uint8_t *in, size_t inlen, size_t max_out,
		  uint8_t **ret_out, size_t *ret_len, char *err, size_t errlen);

/* ---- ELF ---- */
#define ELF_MAX_SEGS 32
struct elf_seg { uint64_t paddr, vaddr, offset, filesz, memsz; };
struct elf_img {
	bool is64;
	uint16_t machine;       /* 3 EM_386, 62 EM_X86_64 */
	uint64_t entry;         /* e_entry as in the file */
	int nsegs;              /* PT_LOAD with p_memsz > 0 */
	struct elf_seg seg[ELF_MAX_SEGS];
	uint64_t lo, hi;        /* physical extent [lo, hi) of the segments */
};
bool elf_is_elf(const uint8_t *buf, size_t len);
/* Parses and checks the ELF header and program headers: every segment
 * inside the file, filesz <= memsz, no address overflow, below
 * max_paddr. 0 or -ENOEXEC / -E2BIG (segment beyond max_paddr). */
int elf_parse(const uint8_t *buf, size_t len, const char *name, uint64_t max_paddr,
	      struct elf_img *e, char *err, size_t errlen);
/* Copies the segments to guest RAM at p_paddr, zeroing memsz - filesz.
 * -E2BIG when a segment is not wholly in RAM. */
int elf_load(struct guest_mem *m, const uint8_t *buf, const struct elf_img *e,
	     const char *name, char *err, size_t errlen);
/* e_entry as a physical address: itself when inside a segment's physical
 * range, else translated through the segment whose virtual range holds it.
 * -ENOEXEC when neither. */
int elf_entry_phys(const struct elf_img *e, const char *name, uint64_t *ret,
		   char *err, size_t errlen);

/* ---- Multiboot v1 header ---- */
#define MB_MAGIC        0x1badb002u
#define MB_BOOT_MAGIC   0x2badb002u
#define MB_SEARCH       8192
#define MB_FLAG_AOUT    0x00010000u
struct mb_hdr {
	size_t off;             /* file offset of the header */
	uint32_t flags;
	uint32_t header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr;
};
/* 0 found; -ENOENT no header; -ENOEXEC a header with a bad checksum or
 * truncated address fields. */
int mb_find(const uint8_t *buf, size_t len, const char *name, struct mb_hdr *h,
	    char *err, size_t errlen);

/* Every check mb_load_buf makes except those needing guest RAM
 * (addresses below 4 GiB): 0, -ENOEXEC, -ENOTSUP, -E2BIG. */
int mb_check(const uint8_t *buf, size_t len, const char *name, char *err, size_t errlen);

/* ---- e820 ---- */
#define E820_RAM      1
#define E820_RESERVED 2
#define E820_MAX      8
struct e820_ent { uint64_t addr, size; uint32_t type; };
/* RAM from gmem_regions with 0x9fc00-0x100000 reserved. Returns count. */
int boot_e820(const struct guest_mem *m, struct e820_ent out[E820_MAX]);
/* End of the RAM region starting at 0 (the highest address below 4 GiB). */
uint64_t boot_low_ram_end(const struct guest_mem *m);

/* ---- x86 entry state ---- */
int boot_write_gdt(struct guest_mem *m, char *err, size_t errlen);
int boot_write_pagetables(struct guest_mem *m, char *err, size_t errlen);
/* Reset st and set it for 64-bit entry at rip with RSI = rsi (CR3 at
 * BOOT_PML4_ADDR), or 32-bit flat protected mode at eip with EAX/EBX. */
void boot_cpu_long(struct cpu_state *st, uint64_t rip, uint64_t rsi);
void boot_cpu_prot32(struct cpu_state *st, uint32_t eip, uint32_t eax, uint32_t ebx);

/* ---- in-memory loaders (boot_linux / boot_multiboot wrap these) ---- */
struct linux_kernel {
	struct bz_hdr hdr;
	uint64_t entry;         /* physical, 64-bit mode */
	uint64_t lo, end;       /* physical range the kernel owns */
	bool direct;            /* true: vmlinux entered at startup_64 */
	enum bz_comp comp;
};
/* Parses the bzImage in buf and loads the kernel into m. Flag
 * LINUX_NO_DECOMPRESS skips host-side decompression and takes the
 * fallback entry (tests use it to check that path on a real kernel);
 * LINUX_CACHE looks the decompressed kernel up in (and adds it to) the
 * cache of kcache.c. */
#define LINUX_NO_DECOMPRESS 1
#define LINUX_CACHE 2
int linux_load_kernel(struct guest_mem *m, const uint8_t *buf, size_t len,
		      const char *name, int flags, struct linux_kernel *k,
		      char *err, size_t errlen);
/* Cache of decompressed kernels (kcache.c), keyed by the compressed
 * payload: 0 and a malloc'd copy of at most max_out bytes, or -ENOENT. The
 * cache folder is the user's own and trusted like the kernel file. */
int kcache_get(const uint8_t *payload, size_t plen, size_t max_out, uint8_t **ret,
	       size_t *ret_len);
void kcache_put(const uint8_t *payload, size_t plen, const uint8_t *out, size_t len);
/* boot_linux with linux_load_kernel flags. */
int boot_linux_flags(struct guest_mem *m, int ncpus, const char *kernel_path,
		     const char *initrd_path, const char *cmdline, int flags,
		     struct cpu_state *bsp, char *err, size_t errlen);
/* Where an initrd of size bytes goes (page aligned, top of allowed RAM,
 * above the kernel): 0 and *ret_addr, or -E2BIG. */
int linux_place_initrd(const struct guest_mem *m, const struct linux_kernel *k,
		       uint64_t size, uint64_t *ret_addr, char *err, size_t errlen);
/* Zero page, command line, GDT, page tables, MP table and BSP state. */
int linux_setup(struct guest_mem *m, int ncpus, const uint8_t *buf,
		const struct linux_kernel *k, const char *cmdline,
		uint64_t initrd_addr, uint64_t initrd_size, struct cpu_state *bsp,
		char *err, size_t errlen);
int mb_load_buf(struct guest_mem *m, const uint8_t *buf, size_t len, const char *name,
		const char *cmdline, struct cpu_state *bsp, char *err, size_t errlen);
#endif
