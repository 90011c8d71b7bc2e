/* A read-only random-access disk as the browsing code sees it: a size and a
 * pread callback. Backed by a store tree (store_tree_read) in roam, by
 * memory in tests and fuzzers. */
#ifndef ROAM_FFS_DISK_H
#define ROAM_FFS_DISK_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct ffs_disk {
	uint64_t size;
	/* Returns bytes read (short only at the end), or -errno. */
	ssize_t (*pread)(void *opaque, void *buf, size_t len, uint64_t off);
	void *opaque;
};

/* Reads exactly len bytes at off: 0, -EIO on a short read, or -errno. */
int ffs_disk_read(const struct ffs_disk *d, void *buf, size_t len, uint64_t off);
#endif
