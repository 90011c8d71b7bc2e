/* libext2fs io_manager reading a byte range of an ffs_disk (ext_io.c). */
#ifndef ROAM_FFS_EXT_IO_H
#define ROAM_FFS_EXT_IO_H
#include <ext2fs/ext2_io.h>
#include "fusefs/disk.h"

struct ffs_range {
	const struct ffs_disk *disk;
	uint64_t offset, size;
};

extern io_manager ffs_io_manager;
/* The channel name under which ffs_io_manager opens r (r must outlive it). */
void ffs_range_name(const struct ffs_range *r, char *buf, size_t len);
#endif
