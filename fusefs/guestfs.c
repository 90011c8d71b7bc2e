/* Reading a guest's ext2/3/4 filesystem through libext2fs (guestfs.h). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ext2fs/ext2fs.h>
#include "fusefs/ext_io.h"
#include "fusefs/guestfs.h"

#define MAX_SYMLINK_DEPTH 40

struct ffs_fs {
	struct ffs_range range;
	ext2_filsys fs;
	pthread_mutex_t lock;
};

/* libext2fs returns its own error codes (com_err); map them to errno. */
static int to_errno(errcode_t e)
{
	if (e == 0)
		return 0;
	if (e > 0 && e < 4096)
		return -(int)e;
	switch (e) {
	case EXT2_ET_FILE_NOT_FOUND: return -ENOENT;
	case EXT2_ET_NO_DIRECTORY: return -ENOTDIR;
	case EXT2_ET_SYMLINK_LOOP: return -ELOOP;
	case EXT2_ET_NO_MEMORY: return -ENOMEM;
	default: return -EIO;
	}
}

int ffs_fs_probe(const struct ffs_disk *d, uint64_t offset)
{
	uint8_t magic[2];
	if (offset > d->size || d->size - offset < 2048)
		return 0;
	int rc = ffs_disk_read(d, magic, 2, offset + 1024 + 56);
	if (rc < 0)
		return rc;
	return magic[0] == 0x53 && magic[1] == 0xef;
}

int ffs_fs_open(const struct ffs_disk *d, uint64_t offset, uint64_t size,
		struct ffs_fs **ret, char *err, size_t errlen)
{
	int probe = ffs_fs_probe(d, offset);
	if (probe < 0) {
		snprintf(err, errlen, "cannot read the disk: %s", strerror(-probe));
		return -EIO;
	}
	if (!probe) {
		snprintf(err, errlen, "no ext2/3/4 filesystem found");
		return -EINVAL;
	}
	struct ffs_fs *f = calloc(1, sizeof(*f));
	if (!f) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	f->range = (struct ffs_range){ d, offset, size };
	pthread_mutex_init(&f->lock, NULL);
	char name[64];
	ffs_range_name(&f->range, name, sizeof(name));
	errcode_t e = ext2fs_open2(name, NULL, EXT2_FLAG_64BITS, 0, 0, ffs_io_manager, &f->fs);
	if (e) {
		snprintf(err, errlen, "cannot open the ext filesystem: %s",
			 e == EIO ? "I/O error reading the disk" : "the superblock or group descriptors are damaged");
		pthread_mutex_destroy(&f->lock);
		free(f);
		return e == EIO ? -EIO : -EINVAL;
	}
	*ret = f;
	return 0;
}

void ffs_fs_free(struct ffs_fs *f)
{
	if (!f)
		return;
	ext2fs_close_free(&f->fs);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

int ffs_fs_lookup(struct ffs_fs *f, const char *path, int follow, uint64_t *ret_ino)
{
	if (!path || path[0] != '/')
		return -EINVAL;
	ext2_ino_t ino;
	pthread_mutex_lock(&f->lock);
	errcode_t e = path[1] == 0 ? (ino = EXT2_ROOT_INO, 0)
		: follow ? ext2fs_namei_follow(f->fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path + 1, &ino)
			 : ext2fs_namei(f->fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path + 1, &ino);
	pthread_mutex_unlock(&f->lock);
	if (e)
		return to_errno(e);
	*ret_ino = ino;
	return 0;
}

int ffs_fs_lookup_at(struct ffs_fs *f, uint64_t dir, const char *name, uint64_t *ret_ino)
{
	ext2_ino_t ino;
	if (dir > UINT32_MAX)
		return -ENOENT;
	pthread_mutex_lock(&f->lock);
	errcode_t e = ext2fs_lookup(f->fs, (ext2_ino_t)dir, name, (int)strlen(name), NULL, &ino);
	pthread_mutex_unlock(&f->lock);
	if (e)
		return to_errno(e);
	*ret_ino = ino;
	return 0;
}

static int read_inode(struct ffs_fs *f, uint64_t ino, struct ext2_inode_large *in)
{
	if (ino < 1 || ino > f->fs->super->s_inodes_count)
		return -ENOENT;
	memset(in, 0, sizeof(*in));
	return to_errno(ext2fs_read_inode_full(f->fs, (ext2_ino_t)ino, (struct ext2_inode *)in,
					       sizeof(*in)));
}

static struct timespec ts(uint32_t sec, uint32_t extra, int has_extra)
{
	struct timespec t = { .tv_sec = (time_t)(int32_t)sec };
	if (has_extra) {
		t.tv_sec += (time_t)(extra & 3) << 32;
		t.tv_nsec = extra >> 2;
		if (t.tv_nsec >= 1000000000)
			t.tv_nsec = 0;
	}
	return t;
}

int ffs_fs_stat(struct ffs_fs *f, uint64_t ino, struct ffs_stat *st)
{
	struct ext2_inode_large in;
	pthread_mutex_lock(&f->lock);
	int rc = read_inode(f, ino, &in);
	if (rc == 0) {
		int extra = EXT2_INODE_SIZE(f->fs->super) > EXT2_GOOD_OLD_INODE_SIZE &&
			    in.i_extra_isize >= 24;
		*st = (struct ffs_stat){
			.ino = ino,
			.mode = in.i_mode,
			.uid = inode_uid(in),
			.gid = inode_gid(in),
			.nlink = in.i_links_count,
			.size = EXT2_I_SIZE(&in),
			.blocks = ext2fs_get_stat_i_blocks(f->fs, (struct ext2_inode *)&in),
			.atime = ts(in.i_atime, in.i_atime_extra, extra),
			.mtime = ts(in.i_mtime, in.i_mtime_extra, extra),
			.ctime = ts(in.i_ctime, in.i_ctime_extra, extra),
		};
		if (LINUX_S_ISCHR(in.i_mode) || LINUX_S_ISBLK(in.i_mode))
			st->rdev = in.i_block[0] ? in.i_block[0] : in.i_block[1];
	}
	pthread_mutex_unlock(&f->lock);
	return rc;
}

/* Directory entries are collected under the lock and handed to the
 * caller's callback after it is released, so callbacks may call back into
 * the filesystem (stat each entry, recurse). */
struct dir_ent {
	char *name;
	uint64_t ino;
	unsigned dtype;
};

struct dir_list {
	struct dir_ent *e;
	size_t n, cap;
	int rc;
};

static int dir_cb(ext2_ino_t dir, int entry, struct ext2_dir_entry *de, int offset,
		  int blocksize, char *buf, void *priv)
{
	struct dir_list *l = priv;
	int len = ext2fs_dirent_name_len(de);
	if (!de->inode || (len == 1 && de->name[0] == '.') ||
	    (len == 2 && de->name[0] == '.' && de->name[1] == '.'))
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct dir_ent *e = realloc(l->e, cap * sizeof(*e));
		if (!e) {
			l->rc = -ENOMEM;
			return DIRENT_ABORT;
		}
		l->e = e;
		l->cap = cap;
	}
	static const unsigned char dtypes[] = { 0, 8, 4, 2, 6, 1, 12, 10 };  /* EXT2_FT_* -> DT_* */
	unsigned ft = (unsigned)ext2fs_dirent_file_type(de);
	struct dir_ent *e = &l->e[l->n];
	e->name = strndup(de->name, (size_t)len);
	if (!e->name) {
		l->rc = -ENOMEM;
		return DIRENT_ABORT;
	}
	e->ino = de->inode;
	e->dtype = ft < 8 ? dtypes[ft] : 0;
	l->n++;
	return 0;
}

int ffs_fs_readdir(struct ffs_fs *f, uint64_t dir,
		   int (*fn)(void *arg, const char *name, uint64_t ino, unsigned dtype), void *arg)
{
	struct dir_list l = { 0 };
	if (dir < 1 || dir > UINT32_MAX)
		return -ENOENT;
	pthread_mutex_lock(&f->lock);
	errcode_t e = ext2fs_dir_iterate2(f->fs, (ext2_ino_t)dir, 0, NULL, dir_cb, &l);
	pthread_mutex_unlock(&f->lock);
	int rc = l.rc ? l.rc : to_errno(e);
	for (size_t i = 0; i < l.n; i++) {
		if (rc == 0)
			rc = fn(arg, l.e[i].name, l.e[i].ino, l.e[i].dtype);
		free(l.e[i].name);
	}
	free(l.e);
	return rc;
}

ssize_t ffs_fs_read(struct ffs_fs *f, uint64_t ino, void *buf, size_t len, uint64_t off)
{
	if (ino < 1 || ino > UINT32_MAX)
		return -ENOENT;
	ext2_file_t file;
	ssize_t done = 0;
	pthread_mutex_lock(&f->lock);
	errcode_t e = ext2fs_file_open(f->fs, (ext2_ino_t)ino, 0, &file);
	if (e)
		goto out;
	__u64 size = 0;
	e = ext2fs_file_get_lsize(file, &size);
	if (e || off >= size)
		goto close;
	if (len > size - off)
		len = (size_t)(size - off);
	e = ext2fs_file_llseek(file, off, EXT2_SEEK_SET, NULL);
	while (!e && (size_t)done < len) {
		unsigned int want = len - (size_t)done > (1u << 30) ? 1u << 30 : (unsigned)(len - (size_t)done);
		unsigned int got = 0;
		e = ext2fs_file_read(file, (char *)buf + done, want, &got);
		if (!e && got == 0)
			break;
		done += got;
	}
close:
	ext2fs_file_close(file);
out:
	pthread_mutex_unlock(&f->lock);
	return e ? to_errno(e) : done;
}

int ffs_fs_readlink(struct ffs_fs *f, uint64_t ino, char *buf, size_t len)
{
	struct ext2_inode_large in;
	pthread_mutex_lock(&f->lock);
	int rc = read_inode(f, ino, &in);
	pthread_mutex_unlock(&f->lock);
	if (rc)
		return rc;
	if (!LINUX_S_ISLNK(in.i_mode))
		return -EINVAL;
	uint64_t size = EXT2_I_SIZE(&in);
	if (size + 1 > len)
		return -ENAMETOOLONG;
	if (ext2fs_is_fast_symlink((struct ext2_inode *)&in) && !(in.i_flags & EXT4_INLINE_DATA_FL)) {
		if (size > sizeof(in.i_block))
			return -EIO;
		memcpy(buf, in.i_block, size);
	} else if (in.i_flags & EXT4_INLINE_DATA_FL) {
		size_t got = 0;
		char tmp[4096];
		pthread_mutex_lock(&f->lock);
		errcode_t e = ext2fs_inline_data_get(f->fs, (ext2_ino_t)ino, (struct ext2_inode *)&in, tmp, &got);
		pthread_mutex_unlock(&f->lock);
		if (e || got < size)
			return -EIO;
		memcpy(buf, tmp, size);
	} else {
		ssize_t n = ffs_fs_read(f, ino, buf, size, 0);
		if (n < 0)
			return (int)n;
		if ((uint64_t)n != size)
			return -EIO;
	}
	buf[size] = 0;
	return 0;
}

uint64_t ffs_fs_offset(const struct ffs_fs *f)
{
	return f->range.offset;
}

struct blk_iter {
	struct ffs_fs *f;
	int (*fn)(void *arg, uint64_t off, uint32_t len);
	void *arg;
	int rc;
};

static int blk_cb(ext2_filsys fs, blk64_t *blk, e2_blkcnt_t bcnt, blk64_t ref_blk,
		  int ref_off, void *priv)
{
	struct blk_iter *it = priv;
	uint32_t bs = fs->blocksize;
	it->rc = it->fn(it->arg, *blk * bs, bs);
	return it->rc ? BLOCK_ABORT : 0;
}

int ffs_fs_data_blocks(struct ffs_fs *f, uint64_t ino,
		       int (*fn)(void *arg, uint64_t off, uint32_t len), void *arg)
{
	struct blk_iter it = { f, fn, arg, 0 };
	if (ino < 1 || ino > UINT32_MAX)
		return -ENOENT;
	/* The callback runs under the lock: it must not call back into fs. */
	pthread_mutex_lock(&f->lock);
	errcode_t e = ext2fs_block_iterate3(f->fs, (ext2_ino_t)ino, BLOCK_FLAG_DATA_ONLY | BLOCK_FLAG_READ_ONLY,
					    NULL, blk_cb, &it);
	pthread_mutex_unlock(&f->lock);
	return it.rc ? it.rc : to_errno(e);
}
