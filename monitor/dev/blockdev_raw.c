/* The raw-file block backend: a host file or block device accessed with
 * pread/pwrite; flush is fdatasync, discard punches a hole. */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "monitor/dev/blockdev.h"

struct blockdev_raw {
	struct blockdev b;
	int fd;
	bool is_blk;
};

static struct blockdev_raw *raw(struct blockdev *b)
{
	return (struct blockdev_raw *)b;
}

static int raw_pread(struct blockdev *b, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	while (len) {
		ssize_t n = pread(raw(b)->fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0) {           /* past EOF of a file shorter than size */
			memset(p, 0, len);
			return 0;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int raw_pwrite(struct blockdev *b, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = pwrite(raw(b)->fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int raw_flush(struct blockdev *b)
{
	return fdatasync(raw(b)->fd) < 0 ? -errno : 0;
}

static int raw_discard(struct blockdev *b, uint64_t off, uint64_t len)
{
	if (raw(b)->is_blk) {
		uint64_t range[2] = { off, len };
		return ioctl(raw(b)->fd, BLKDISCARD, range) < 0 ? -errno : 0;
	}
	if (fallocate(raw(b)->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)off, (off_t)len) < 0)
		return -errno;
	return 0;
}

static int raw_size(struct blockdev *b, uint64_t *ret)
{
	if (raw(b)->is_blk) {
		uint64_t sz;
		if (ioctl(raw(b)->fd, BLKGETSIZE64, &sz) < 0)
			return -errno;
		*ret = sz;
		return 0;
	}
	struct stat st;
	if (fstat(raw(b)->fd, &st) < 0)
		return -errno;
	*ret = (uint64_t)st.st_size;
	return 0;
}

static void raw_free(struct blockdev *b)
{
	close(raw(b)->fd);
	free(b);
}

static const struct blockdev_ops raw_ops = {
	.name = "raw",
	.pread = raw_pread,
	.pwrite = raw_pwrite,
	.flush = raw_flush,
	.discard = raw_discard,
	.size = raw_size,
	.free = raw_free,
};

int blockdev_open_raw(const char *path, bool readonly, struct blockdev **ret)
{
	int fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		close(fd);
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	}
	struct blockdev_raw *r = calloc(1, sizeof(*r));
	if (!r) {
		close(fd);
		return -ENOMEM;
	}
	r->b.ops = &raw_ops;
	r->b.readonly = readonly;
	r->fd = fd;
	r->is_blk = S_ISBLK(st.st_mode);
	*ret = &r->b;
	return 0;
}

void blockdev_free(struct blockdev *b)
{
	if (b)
		b->ops->free(b);
}
