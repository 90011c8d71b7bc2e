/* MBR and GPT parsing (see parttable.h). Sector size is 512 bytes; GPT on
 * 4096-byte-sector disks is found by also probing LBA 1 at 4096. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>
#include "fusefs/parttable.h"

#define SECTOR 512u
#define MAX_LOGICAL 64          /* bound on the EBR chain */

static uint32_t le32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t le64(const uint8_t *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

static void __attribute__((format(printf, 2, 3))) note(struct ffs_parts *r, const char *fmt, ...)
{
	if (r->note[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->note, sizeof(r->note), fmt, ap);
	va_end(ap);
}

static void add(struct ffs_parts *r, const struct ffs_disk *d, unsigned number,
		uint64_t start, uint64_t size, const char *type)
{
	if (!size)
		return;
	if (start >= d->size || size > d->size - start) {
		note(r, "partition %u lies outside the disk and is not shown", number);
		return;
	}
	if (r->n >= FFS_MAX_PARTS)
		return;
	struct ffs_part *p = &r->part[r->n++];
	p->number = number;
	p->start = start;
	p->size = size;
	snprintf(p->type, sizeof(p->type), "%s", type);
}

static int is_extended(uint8_t t) { return t == 0x05 || t == 0x0f || t == 0x85; }

/* Logical partitions: a chain of EBRs, each relative to the extended
 * partition's start (the link) or to itself (the partition). */
static int parse_ebr_chain(const struct ffs_disk *d, uint64_t ext_lba, struct ffs_parts *r)
{
	uint64_t ebr = ext_lba;
	uint8_t s[SECTOR];
	for (unsigned i = 0; i < MAX_LOGICAL; i++) {
		if (ebr > d->size / SECTOR)
			return 0;
		int rc = ffs_disk_read(d, s, SECTOR, ebr * SECTOR);
		if (rc < 0)
			return rc == -EIO ? 0 : rc;
		if (s[510] != 0x55 || s[511] != 0xaa)
			return 0;
		const uint8_t *e = s + 446;
		char type[8];
		snprintf(type, sizeof(type), "0x%02x", e[4]);
		if (e[4])
			add(r, d, 5 + i, (ebr + le32(e + 8)) * SECTOR, (uint64_t)le32(e + 12) * SECTOR, type);
		const uint8_t *link = s + 446 + 16;
		if (!is_extended(link[4]) || !le32(link + 8))
			return 0;
		uint64_t next = ext_lba + le32(link + 8);
		if (next <= ebr) {
			note(r, "the logical partition chain loops after partition %u", 5 + i);
			return 0;
		}
		ebr = next;
	}
	note(r, "more than %u logical partitions; the rest are not shown", MAX_LOGICAL);
	return 0;
}

static void guid_str(const uint8_t *g, char *out, size_t n)
{
	snprintf(out, n, "%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 le32(g), g[4] | g[5] << 8, g[6] | g[7] << 8, g[8], g[9],
		 g[10], g[11], g[12], g[13], g[14], g[15]);
}

/* Parses the GPT whose header is at byte offset hdr_off; 0 on success,
 * -EINVAL when that header is not valid. */
static int parse_gpt_at(const struct ffs_disk *d, uint64_t hdr_off, unsigned lba_size,
			struct ffs_parts *r)
{
	uint8_t h[512];
	if (hdr_off + sizeof(h) > d->size || ffs_disk_read(d, h, sizeof(h), hdr_off) < 0)
		return -EINVAL;
	if (memcmp(h, "EFI PART", 8))
		return -EINVAL;
	uint32_t hsize = le32(h + 12);
	if (hsize < 92 || hsize > sizeof(h))
		return -EINVAL;
	uint32_t want = le32(h + 16);
	memset(h + 16, 0, 4);
	if ((uint32_t)crc32(0, h, hsize) != want)
		return -EINVAL;
	uint64_t entries_lba = le64(h + 72);
	uint32_t count = le32(h + 80), esize = le32(h + 84);
	if (esize < 128 || esize > 4096 || esize % 8 || count > 16384)
		return -EINVAL;
	uint64_t bytes = (uint64_t)count * esize;
	if (entries_lba > d->size / lba_size || bytes > d->size - entries_lba * lba_size)
		return -EINVAL;
	/* Read the array in pieces, checking the CRC over all of it. */
	uint8_t buf[4096];
	uint32_t crc = 0;
	uint64_t off = entries_lba * lba_size;
	unsigned number = 0;
	r->n = 0;
	for (uint32_t i = 0; i < count; i++, off += esize) {
		if (ffs_disk_read(d, buf, esize, off) < 0)
			return -EINVAL;
		crc = (uint32_t)crc32(crc, buf, esize);
		number++;
		static const uint8_t unused[16];
		if (!memcmp(buf, unused, 16))
			continue;
		uint64_t first = le64(buf + 32), last = le64(buf + 40);
		if (last < first || last > d->size / lba_size) {
			note(r, "GPT entry %u lies outside the disk and is not shown", number);
			continue;
		}
		char type[40];
		guid_str(buf, type, sizeof(type));
		add(r, d, number, first * lba_size, (last - first + 1) * lba_size, type);
	}
	if (crc != le32(h + 88)) {
		r->n = 0;
		return -EINVAL;
	}
	r->table = FFS_TABLE_GPT;
	return 0;
}

static int parse_gpt(const struct ffs_disk *d, struct ffs_parts *r)
{
	static const unsigned lbas[] = { 512, 4096 };
	for (unsigned i = 0; i < 2; i++) {
		unsigned lba = lbas[i];
		if (parse_gpt_at(d, lba, lba, r) == 0)
			return 0;
		/* The backup header sits in the last LBA. */
		if (d->size >= 2 * lba && parse_gpt_at(d, d->size / lba * lba - lba, lba, r) == 0) {
			snprintf(r->note, sizeof(r->note),
				 "the primary GPT header is damaged; using the backup");
			return 0;
		}
	}
	snprintf(r->note, sizeof(r->note), "the disk has a protective MBR but no valid GPT");
	return -EINVAL;
}

int ffs_parse_parts(const struct ffs_disk *d, struct ffs_parts *r)
{
	memset(r, 0, sizeof(*r));
	if (d->size < SECTOR)
		return 0;
	uint8_t s[SECTOR];
	int rc = ffs_disk_read(d, s, SECTOR, 0);
	if (rc < 0)
		return rc;
	if (s[510] != 0x55 || s[511] != 0xaa)
		return 0;
	const uint8_t *e = s + 446;
	/* A boot sector of a filesystem (FAT, NTFS) also ends in 55 AA; an MBR
	 * has only 0x00/0x80 status bytes. */
	for (int i = 0; i < 4; i++)
		if (e[16 * i] != 0 && e[16 * i] != 0x80)
			return 0;
	for (int i = 0; i < 4; i++)
		if (e[16 * i + 4] == 0xee)
			return parse_gpt(d, r);
	r->table = FFS_TABLE_MBR;
	for (int i = 0; i < 4; i++) {
		const uint8_t *p = e + 16 * i;
		if (!p[4])
			continue;
		if (is_extended(p[4])) {
			rc = parse_ebr_chain(d, le32(p + 8), r);
			if (rc < 0)
				return rc;
			continue;
		}
		char type[8];
		snprintf(type, sizeof(type), "0x%02x", p[4]);
		add(r, d, (unsigned)i + 1, (uint64_t)le32(p + 8) * SECTOR, (uint64_t)le32(p + 12) * SECTOR, type);
	}
	if (r->n == 0)
		r->table = FFS_TABLE_NONE;
	return 0;
}
