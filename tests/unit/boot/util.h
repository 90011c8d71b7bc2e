/* Helpers shared by the boot unit tests: little-endian writers, temp
 * files, and builders for small ELF images and fake bzImages. */
#ifndef ROAM_TEST_BOOT_UTIL_H
#define ROAM_TEST_BOOT_UTIL_H
#include <stddef.h>
#include <stdint.h>

/* Writes len bytes to a new temp file; returns its malloc'd path. */
char *tmp_file(const void *buf, size_t len);
void tmp_remove(char *path);

/* ELF executable with one PT_LOAD: data (n bytes) at file offset 0x1000,
 * loaded at paddr/vaddr with memsz. Returns the size written to out
 * (which must hold 0x1000 + n). */
size_t make_elf(uint8_t *out, int is64, uint64_t paddr, uint64_t vaddr,
		const uint8_t *data, size_t n, uint64_t memsz, uint64_t entry);

enum { Z_GZIP, Z_XZ, Z_ZSTD, Z_LZ4, Z_BZIP2_FAKE, Z_NONE };
/* Compresses in as Linux's build would (codec stream + 4-byte LE size). */
uint8_t *compress_payload(int codec, const uint8_t *in, size_t n, size_t *ret_len);
/* Fake bzImage: one setup sector, protocol 2.15, 64-bit, init_size as
 * given, payload placed 0x40 bytes into the protected-mode part. */
uint8_t *make_bzimage(const uint8_t *payload, size_t plen, uint32_t init_size, size_t *ret_len);
/* qemu.c: boots the kit kernel in QEMU TCG from the state boot_linux
 * built (fallback: with the bzImage's own 64-bit entry instead of the
 * host-decompressed vmlinux); 0 when Linux reached userspace with roam's
 * tables, else -1 with the reasons printed. */
int test_linux_in_qemu(const char *kpath, const char *ipath, int fallback);
/* qemu.c: runs a tests/guest/ Multiboot kernel (hello) in QEMU from the
 * state boot_load built; 0 when it saw roam's memory map and MP table. */
int test_multiboot_in_qemu(const char *kpath);
#endif
