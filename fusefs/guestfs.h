/* The guest's own files: an ext2/3/4 filesystem on a disk (or a partition
 * of it) read through libext2fs, with an io_manager that reads only the
 * blocks it needs from an ffs_disk. Read-only; every call is serialized on
 * the filesystem's lock (libext2fs is not thread-safe). */
#ifndef ROAM_FFS_GUESTFS_H
#define ROAM_FFS_GUESTFS_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include "fusefs/disk.h"

struct ffs_fs;

struct ffs_stat {
	uint64_t ino;
	uint32_t mode, uid, gid, nlink, rdev;
	uint64_t size;
	uint64_t blocks;            /* 512-byte units actually allocated */
	struct timespec atime, mtime, ctime;
};

/* Opens the ext2/3/4 filesystem at [offset, offset + size) of d; d must
 * outlive it. -EINVAL with a one-line reason in err when there is none or it
 * is too damaged to open. */
int ffs_fs_open(const struct ffs_disk *d, uint64_t offset, uint64_t size,
		struct ffs_fs **ret, char *err, size_t errlen);
void ffs_fs_free(struct ffs_fs *fs);
/* 1 when the superblock at offset looks like ext2/3/4 (cheap probe), 0 when
 * not, -errno when the disk cannot be read there. */
int ffs_fs_probe(const struct ffs_disk *d, uint64_t offset);

#define FFS_ROOT_INO 2
/* Resolves an absolute path inside the guest filesystem. follow: also
 * follow a symlink in the last component. Symlinks resolve inside the guest
 * filesystem, never on the host. -ENOENT, -ENOTDIR, -ELOOP, -EIO. */
int ffs_fs_lookup(struct ffs_fs *fs, const char *path, int follow, uint64_t *ret_ino);
/* Looks up one name in directory dir. */
int ffs_fs_lookup_at(struct ffs_fs *fs, uint64_t dir, const char *name, uint64_t *ret_ino);
int ffs_fs_stat(struct ffs_fs *fs, uint64_t ino, struct ffs_stat *ret);
/* Calls fn for each entry but "." and ".."; a non-zero return stops. */
int ffs_fs_readdir(struct ffs_fs *fs, uint64_t dir,
		   int (*fn)(void *arg, const char *name, uint64_t ino, unsigned dtype),
		   void *arg);
/* Reads file data (holes read as zeros). Bytes read, or -errno (-EIO when
 * the disk below fails, e.g. a corrupt chunk in the store). */
ssize_t ffs_fs_read(struct ffs_fs *fs, uint64_t ino, void *buf, size_t len, uint64_t off);
/* Calls fn with the byte offset (from the start of the filesystem) of each
 * data block of a file, in file order; holes are skipped. */
int ffs_fs_data_blocks(struct ffs_fs *fs, uint64_t ino,
		       int (*fn)(void *arg, uint64_t off, uint32_t len), void *arg);
/* Offset of the filesystem on its disk (the partition start). */
uint64_t ffs_fs_offset(const struct ffs_fs *fs);
/* Symlink target, NUL-terminated; -ENAMETOOLONG if it does not fit. */
int ffs_fs_readlink(struct ffs_fs *fs, uint64_t ino, char *buf, size_t len);
#endif
