/* libFuzzer harness for the kernel loaders' parsers: the first byte picks
 * the bzImage path (setup header, payload codecs, vmlinux ELF, boot_params),
 * the Multiboot path (header, a.out kludge, ELF32/64), the ELF parser alone
 * or the payload decompressor alone; the rest is the hostile file. Guest
 * RAM is one 32 MiB guest_mem reused across runs. */
#include <stdint.h>
#include <stdlib.h>
#include "monitor/boot/boot.h"
#include "monitor/boot/boot_int.h"
#include "monitor/cpu_state.h"
#include "monitor/guest_mem.h"

static struct guest_mem *mem;
static struct cpu_state st;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	if (size < 1)
		return 0;
	if (!mem && gmem_new(32u << 20, &mem) < 0)
		abort();
	const uint8_t *b = data + 1;
	size_t n = size - 1;
	switch (data[0] & 3) {
	case 0: {
		struct linux_kernel k;
		if (linux_load_kernel(mem, b, n, "fuzz", 0, &k, err, sizeof(err)) == 0) {
			uint64_t ia = 0;
			if (linux_place_initrd(mem, &k, 4096, &ia, err, sizeof(err)) < 0)
				ia = 0;
			linux_setup(mem, 2, b, &k, "console=ttyS0", ia, ia ? 4096 : 0, &st, err, sizeof(err));
		}
		break;
	}
	case 1:
		mb_load_buf(mem, b, n, "fuzz", "x", &st, err, sizeof(err));
		break;
	case 2: {
		struct elf_img e;
		if (elf_parse(b, n, "fuzz", 32u << 20, &e, err, sizeof(err)) == 0) {
			uint64_t pa;
			elf_entry_phys(&e, "fuzz", &pa, err, sizeof(err));
			elf_load(mem, b, &e, "fuzz", err, sizeof(err));
		}
		break;
	}
	default: {
		uint8_t *out;
		size_t olen;
		if (bz_decompress(b, n, 8u << 20, &out, &olen, err, sizeof(err)) == 0)
			free(out);
		break;
	}
	}
	return 0;
}
