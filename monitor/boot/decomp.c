/* Host-side decompression of a Linux bzImage payload: gzip (zlib), xz
 * (liblzma), zstd (libzstd) and lz4 in the legacy framing Linux uses
 * (liblz4). The codec is chosen by the payload's magic bytes. Linux's
 * build appends the uncompressed size as 4 little-endian bytes; it only
 * sizes the first allocation here, the codecs' own framing ends the data. */
#include <errno.h>
#include <lz4.h>
#include <lzma.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>
#include "monitor/boot/boot_int.h"

enum bz_comp bz_comp_detect(const uint8_t *p, size_t len)
{
	static const struct { enum bz_comp c; uint8_t n; uint8_t m[6]; } magic[] = {
		{ COMP_GZIP, 2, { 0x1f, 0x8b } },
		{ COMP_XZ, 6, { 0xfd, '7', 'z', 'X', 'Z', 0 } },
		{ COMP_ZSTD, 4, { 0x28, 0xb5, 0x2f, 0xfd } },
		{ COMP_LZ4, 4, { 0x02, 0x21, 0x4c, 0x18 } },
		{ COMP_BZIP2, 3, { 'B', 'Z', 'h' } },
		{ COMP_LZMA, 3, { 0x5d, 0, 0 } },
		{ COMP_LZO, 4, { 0x89, 'L', 'Z', 'O' } },
	};
	for (size_t i = 0; i < sizeof(magic) / sizeof(magic[0]); i++)
		if (len >= magic[i].n && !memcmp(p, magic[i].m, magic[i].n))
			return magic[i].c;
	return COMP_UNKNOWN;
}

const char *bz_comp_name(enum bz_comp c)
{
	switch (c) {
	case COMP_GZIP: return "gzip";
	case COMP_XZ: return "xz";
	case COMP_ZSTD: return "zstd";
	case COMP_LZ4: return "lz4";
	case COMP_BZIP2: return "bzip2";
	case COMP_LZMA: return "lzma";
	case COMP_LZO: return "lzo";
	default: return "unknown";
	}
}

/* Output buffer growing up to a cap. */
struct obuf { uint8_t *p; size_t len, cap, max; };

static int obuf_grow(struct obuf *o, size_t need)
{
	if (need <= o->cap)
		return 0;
	if (need > o->max)
		return -E2BIG;
	size_t cap = o->cap ? o->cap : 1 << 20;
	while (cap < need)
		cap = cap > o->max / 2 ? o->max : cap * 2;
	uint8_t *p = realloc(o->p, cap);
	if (!p)
		return -ENOMEM;
	o->p = p;
	o->cap = cap;
	return 0;
}

/* Room for at least one more byte; returns the free space. */
static int obuf_room(struct obuf *o, size_t *room)
{
	if (o->len == o->cap) {
		int r = obuf_grow(o, o->cap + (o->cap ? o->cap : 1 << 20));
		if (r == -E2BIG && o->cap < o->max)
			r = obuf_grow(o, o->max);
		if (r < 0)
			return r;
	}
	*room = o->cap - o->len;
	return 0;
}

static int do_gzip(const uint8_t *in, size_t inlen, struct obuf *o)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
		return -ENOMEM;
	z.next_in = (Bytef *)in;
	int r = 0;
	size_t left = inlen;
	for (;;) {
		size_t room;
		if ((r = obuf_room(o, &room)) < 0)
			break;
		uInt in_chunk = left > (1u << 30) ? 1u << 30 : (uInt)left;
		uInt out_chunk = room > (1u << 30) ? 1u << 30 : (uInt)room;
		z.avail_in = in_chunk;
		z.next_out = o->p + o->len;
		z.avail_out = out_chunk;
		int zr = inflate(&z, Z_NO_FLUSH);
		left -= in_chunk - z.avail_in;
		o->len += out_chunk - z.avail_out;
		if (zr == Z_STREAM_END) {
			r = 0;
			break;
		}
		if (zr != Z_OK && !(zr == Z_BUF_ERROR && z.avail_out == 0)) {
			r = zr == Z_MEM_ERROR ? -ENOMEM : -ENOEXEC;
			break;
		}
		if (zr == Z_OK && left == 0 && z.avail_out != 0) {
			r = -ENOEXEC;   /* input ended inside the stream */
			break;
		}
	}
	inflateEnd(&z);
	return r;
}

static int do_xz(const uint8_t *in, size_t inlen, struct obuf *o)
{
	lzma_stream s = LZMA_STREAM_INIT;
	/* Linux uses a 32 MiB dictionary at most; the limit keeps a hostile
	 * header from making liblzma allocate a 1.5 GiB one. */
	if (lzma_stream_decoder(&s, 256u << 20, 0) != LZMA_OK)
		return -ENOMEM;
	s.next_in = in;
	s.avail_in = inlen;
	int r;
	for (;;) {
		size_t room;
		if ((r = obuf_room(o, &room)) < 0)
			break;
		s.next_out = o->p + o->len;
		s.avail_out = room;
		lzma_ret lr = lzma_code(&s, s.avail_in ? LZMA_RUN : LZMA_FINISH);
		o->len += room - s.avail_out;
		if (lr == LZMA_STREAM_END) {
			r = 0;
			break;
		}
		if (lr == LZMA_MEM_ERROR) {
			r = -ENOMEM;
			break;
		}
		if (lr != LZMA_OK) {
			r = -ENOEXEC;
			break;
		}
	}
	lzma_end(&s);
	return r;
}

static int do_zstd(const uint8_t *in, size_t inlen, struct obuf *o)
{
	size_t flen = ZSTD_findFrameCompressedSize(in, inlen);
	if (ZSTD_isError(flen))
		return -ENOEXEC;
	ZSTD_DStream *d = ZSTD_createDStream();
	if (!d)
		return -ENOMEM;
	/* Linux compresses with zstd -22 --ultra: window log 27 (128 MiB).
	 * Allow that much and no more, so a hostile frame cannot make the
	 * host allocate gigabytes. */
	if (ZSTD_isError(ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, 27))) {
		ZSTD_freeDStream(d);
		return -ENOMEM;
	}
	ZSTD_inBuffer ib = { in, flen, 0 };
	int r;
	for (;;) {
		size_t room;
		if ((r = obuf_room(o, &room)) < 0)
			break;
		ZSTD_outBuffer ob = { o->p + o->len, room, 0 };
		size_t zr = ZSTD_decompressStream(d, &ob, &ib);
		o->len += ob.pos;
		if (ZSTD_isError(zr)) {
			r = ZSTD_getErrorCode(zr) == ZSTD_error_memory_allocation ? -ENOMEM : -ENOEXEC;
			break;
		}
		if (zr == 0) {
			r = 0;
			break;
		}
		if (ib.pos == ib.size && ob.pos < ob.size) {
			r = -ENOEXEC;
			break;
		}
	}
	ZSTD_freeDStream(d);
	return r;
}

/* Legacy LZ4 framing (lz4 -l): magic 0x184C2102, then blocks of
 * {u32 compressed size, data}, each at most 8 MiB uncompressed; the magic
 * may repeat. Linux's appended 4-byte size is what remains at the end. */
#define LZ4_LEGACY_BLOCK (8u << 20)
static int do_lz4(const uint8_t *in, size_t inlen, struct obuf *o)
{
	size_t pos = 4;
	int blocks = 0;
	while (inlen - pos >= 4) {
		uint32_t csize = rd32(in + pos);
		if (csize == 0x184c2102u) {
			pos += 4;
			continue;
		}
		if (inlen - pos == 4 && blocks > 0)
			break;          /* the appended uncompressed size */
		pos += 4;
		if (csize == 0 || csize > inlen - pos ||
		    csize > (uint32_t)LZ4_compressBound(LZ4_LEGACY_BLOCK))
			return -ENOEXEC;
		int r = obuf_grow(o, o->len + LZ4_LEGACY_BLOCK);
		if (r == -E2BIG && o->len < o->max)
			r = obuf_grow(o, o->max);
		if (r < 0)
			return r;
		size_t room = o->cap - o->len;
		int cap = room > LZ4_LEGACY_BLOCK ? (int)LZ4_LEGACY_BLOCK : (int)room;
		int n = LZ4_decompress_safe((const char *)in + pos, (char *)o->p + o->len,
					    (int)csize, cap);
		if (n < 0)
			return cap < (int)LZ4_LEGACY_BLOCK ? -E2BIG : -ENOEXEC;
		o->len += (size_t)n;
		pos += csize;
		blocks++;
	}
	return blocks ? 0 : -ENOEXEC;
}

int bz_decompress(const uint8_t *in, size_t inlen, size_t max_out,
		  uint8_t **ret_out, size_t *ret_len, char *err, size_t errlen)
{
	enum bz_comp c = bz_comp_detect(in, inlen);
	struct obuf o = { .max = max_out };
	/* Start at the size Linux appended when it is plausible. */
	if (inlen >= 8) {
		uint32_t hint = rd32(in + inlen - 4);
		if (hint > 0 && hint <= max_out && obuf_grow(&o, hint) < 0)
			return boot_fail(err, errlen, -ENOMEM, "out of memory for the %u-byte kernel", hint);
	}
	int r;
	switch (c) {
	case COMP_GZIP: r = do_gzip(in, inlen, &o); break;
	case COMP_XZ: r = do_xz(in, inlen, &o); break;
	case COMP_ZSTD: r = do_zstd(in, inlen, &o); break;
	case COMP_LZ4: r = do_lz4(in, inlen, &o); break;
	default:
		free(o.p);
		return boot_fail(err, errlen, -ENOTSUP, "payload compressed with %s, which roam cannot decompress (gzip, xz, zstd and lz4 only)",
				 bz_comp_name(c));
	}
	if (r < 0) {
		free(o.p);
		if (r == -E2BIG)
			return boot_fail(err, errlen, r, "%s payload decompresses to more than %zu MiB",
					 bz_comp_name(c), max_out >> 20);
		if (r == -ENOMEM)
			return boot_fail(err, errlen, r, "out of memory decompressing the %s payload", bz_comp_name(c));
		return boot_fail(err, errlen, r, "corrupt %s payload", bz_comp_name(c));
	}
	if (o.len == 0) {
		free(o.p);
		return boot_fail(err, errlen, -ENOEXEC, "%s payload is empty", bz_comp_name(c));
	}
	*ret_out = o.p;
	*ret_len = o.len;
	return 0;
}
