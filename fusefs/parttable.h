/* Partition tables of guest disks: MBR (with extended/logical partitions)
 * and GPT (CRC-checked, primary header, falling back to the backup). Input is
 * a guest's disk, so every field is treated as hostile. */
#ifndef ROAM_FFS_PARTTABLE_H
#define ROAM_FFS_PARTTABLE_H
#include <stdint.h>
#include "fusefs/disk.h"

#define FFS_MAX_PARTS 128

enum ffs_table { FFS_TABLE_NONE, FFS_TABLE_MBR, FFS_TABLE_GPT };

struct ffs_part {
	unsigned number;        /* as Linux numbers them: p1.. (logical from p5) */
	uint64_t start, size;   /* bytes */
	char type[40];          /* "0x83" for MBR, a GUID for GPT */
};

struct ffs_parts {
	enum ffs_table table;
	int n;
	struct ffs_part part[FFS_MAX_PARTS];
	char note[160];         /* why entries were skipped, if any */
};

/* Reads the partition table of d. A disk without one gives table NONE and
 * n = 0. Entries that point outside the disk are skipped (and named in
 * note). Returns 0, -EINVAL for a table too corrupt to use (message in
 * note), or -errno from the disk. */
int ffs_parse_parts(const struct ffs_disk *d, struct ffs_parts *ret);
#endif
