/* Builders for the boot unit tests (see util.h). */
#include <lz4.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>
#include "tests/unit/boot/util.h"
#include "monitor/boot/boot_int.h"

char *tmp_file(const void *buf, size_t len)
{
	char *path = strdup("/tmp/roam-boot-test.XXXXXX");
	if (!path)
		abort();
	int fd = mkstemp(path);
	if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
		abort();
	close(fd);
	return path;
}

void tmp_remove(char *path)
{
	unlink(path);
	free(path);
}

size_t make_elf(uint8_t *out, int is64, uint64_t paddr, uint64_t vaddr,
		const uint8_t *data, size_t n, uint64_t memsz, uint64_t entry)
{
	memset(out, 0, 0x1000);
	memcpy(out, "\x7f" "ELF", 4);
	out[4] = is64 ? 2 : 1;
	out[5] = 1;
	out[6] = 1;
	wr16(out + 16, 2);
	wr16(out + 18, is64 ? 62 : 3);
	wr32(out + 20, 1);
	if (is64) {
		wr64(out + 24, entry);
		wr64(out + 32, 64);
		wr16(out + 52, 64);
		wr16(out + 54, 56);
		wr16(out + 56, 1);
		uint8_t *ph = out + 64;
		wr32(ph, 1);
		wr32(ph + 4, 7);
		wr64(ph + 8, 0x1000);
		wr64(ph + 16, vaddr);
		wr64(ph + 24, paddr);
		wr64(ph + 32, n);
		wr64(ph + 40, memsz);
		wr64(ph + 48, 0x1000);
	} else {
		wr32(out + 24, (uint32_t)entry);
		wr32(out + 28, 52);
		wr16(out + 40, 52);
		wr16(out + 42, 32);
		wr16(out + 44, 1);
		uint8_t *ph = out + 52;
		wr32(ph, 1);
		wr32(ph + 4, 0x1000);
		wr32(ph + 8, (uint32_t)vaddr);
		wr32(ph + 12, (uint32_t)paddr);
		wr32(ph + 16, (uint32_t)n);
		wr32(ph + 20, (uint32_t)memsz);
		wr32(ph + 24, 7);
		wr32(ph + 28, 0x1000);
	}
	memcpy(out + 0x1000, data, n);
	return 0x1000 + n;
}

uint8_t *compress_payload(int codec, const uint8_t *in, size_t n, size_t *ret_len)
{
	size_t cap = n + n / 2 + 4096;
	uint8_t *out = malloc(cap + 4);
	size_t len = 0;
	if (!out)
		abort();
	switch (codec) {
	case Z_GZIP: {
		z_stream z;
		memset(&z, 0, sizeof(z));
		if (deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
			abort();
		z.next_in = (Bytef *)in;
		z.avail_in = (uInt)n;
		z.next_out = out;
		z.avail_out = (uInt)cap;
		if (deflate(&z, Z_FINISH) != Z_STREAM_END)
			abort();
		len = z.total_out;
		deflateEnd(&z);
		break;
	}
	case Z_XZ:
		if (lzma_easy_buffer_encode(6, LZMA_CHECK_CRC32, NULL, in, n, out, &len, cap) != LZMA_OK)
			abort();
		break;
	case Z_ZSTD:
		len = ZSTD_compress(out, cap, in, n, 19);
		if (ZSTD_isError(len))
			abort();
		break;
	case Z_LZ4: {
		/* Legacy framing: magic, then {u32 size, block} per 8 MiB. */
		wr32(out, 0x184c2102u);
		len = 4;
		for (size_t off = 0; off < n; off += 8u << 20) {
			size_t chunk = n - off < (8u << 20) ? n - off : 8u << 20;
			int c = LZ4_compress_default((const char *)in + off, (char *)out + len + 4,
						     (int)chunk, (int)(cap - len - 4));
			if (c <= 0)
				abort();
			wr32(out + len, (uint32_t)c);
			len += 4 + (size_t)c;
		}
		break;
	}
	case Z_BZIP2_FAKE:
		memcpy(out, "BZh91AY&SY", 10);
		memcpy(out + 10, in, n < cap - 10 ? n : cap - 10);
		len = 10 + n;
		break;
	default:
		memcpy(out, in, n);
		len = n;
	}
	wr32(out + len, (uint32_t)n);
	*ret_len = len + 4;
	return out;
}

uint8_t *make_bzimage(const uint8_t *payload, size_t plen, uint32_t init_size, size_t *ret_len)
{
	size_t len = 1024 + 0x40 + plen + 0x20;
	uint8_t *b = calloc(1, len);
	if (!b)
		abort();
	b[0x1f1] = 1;                   /* setup_sects */
	wr16(b + 0x1fe, 0xaa55);
	b[0x200] = 0xeb;
	b[0x201] = 0x66;                /* header ends at 0x268 */
	memcpy(b + 0x202, "HdrS", 4);
	wr16(b + 0x206, 0x020f);
	b[0x211] = 0x01;                /* LOADED_HIGH */
	wr32(b + 0x214, 0x100000);
	wr32(b + 0x22c, 0x7fffffff);
	wr32(b + 0x230, 0x200000);
	b[0x234] = 1;
	wr16(b + 0x236, 0x03);          /* XLF_KERNEL_64 | CAN_BE_LOADED_ABOVE_4G */
	wr32(b + 0x238, 2047);
	wr32(b + 0x248, 0x40);
	wr32(b + 0x24c, (uint32_t)plen);
	wr64(b + 0x258, 0x1000000);
	wr32(b + 0x260, init_size);
	memset(b + 1024, 0x90, 0x40);
	memcpy(b + 1024 + 0x40, payload, plen);
	*ret_len = len;
	return b;
}
