/* Exact reads from an ffs_disk. */
#include <errno.h>
#include "fusefs/disk.h"

int ffs_disk_read(const struct ffs_disk *d, void *buf, size_t len, uint64_t off)
{
	if (off > d->size || len > d->size - off)
		return -EIO;
	size_t done = 0;
	while (done < len) {
		ssize_t n = d->pread(d->opaque, (char *)buf + done, len - done, off + done);
		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}
