/* Block-device backends for virtio-blk: a const ops table per backend kind
 * (raw host file here; checkpoint/ adds a store overlay) behind an opaque
 * handle. Every backend embeds struct blockdev first.
 *
 * Offsets and lengths are in bytes. All ops return 0 or -errno. virtio-blk
 * calls them only from its worker thread, one request at a time, and never
 * while paused (dev_type.pause returns once no call is in progress), so
 * backends need no locking of their own; others may inspect a backend while
 * its device is paused. */
#ifndef ROAM_BLOCKDEV_H
#define ROAM_BLOCKDEV_H
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct blockdev;

struct blockdev_ops {
	const char *name;                        /* "raw", "overlay" */
	/* Whole-buffer transfers: a short read or write is an error (-EIO),
	 * except that reads past the end of a backend shorter than its
	 * reported size return zeros. */
	int (*pread)(struct blockdev *b, void *buf, size_t len, uint64_t off);
	int (*pwrite)(struct blockdev *b, const void *buf, size_t len, uint64_t off);
	/* Durable once it returns 0 (raw: fdatasync). */
	int (*flush)(struct blockdev *b);
	/* Afterwards the range reads as zeros (raw: punch a hole, size kept).
	 * -EOPNOTSUPP when the backend cannot. */
	int (*discard)(struct blockdev *b, uint64_t off, uint64_t len);
	/* Current size in bytes. */
	int (*size)(struct blockdev *b, uint64_t *ret);
	void (*free)(struct blockdev *b);
};

struct blockdev {
	const struct blockdev_ops *ops;
	bool readonly;                           /* writes/discards: -EROFS */
};

/* Opens a raw disk image (regular file or block device). readonly opens it
 * O_RDONLY. Returns 0 with *ret (free with blockdev_free), or -errno
 * (-ENOENT, -EACCES, -EISDIR ...). */
int blockdev_open_raw(const char *path, bool readonly, struct blockdev **ret);

/* NULL is a no-op. */
void blockdev_free(struct blockdev *b);

static inline int blockdev_pread(struct blockdev *b, void *buf, size_t len, uint64_t off)
{ return b->ops->pread(b, buf, len, off); }
static inline int blockdev_pwrite(struct blockdev *b, const void *buf, size_t len, uint64_t off)
{ return b->readonly ? -EROFS : b->ops->pwrite(b, buf, len, off); }
static inline int blockdev_flush(struct blockdev *b)
{ return b->ops->flush(b); }
static inline int blockdev_discard(struct blockdev *b, uint64_t off, uint64_t len)
{ return b->readonly ? -EROFS : b->ops->discard(b, off, len); }
static inline int blockdev_size(struct blockdev *b, uint64_t *ret)
{ return b->ops->size(b, ret); }
#endif
