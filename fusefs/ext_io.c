/* A libext2fs io_manager over an ffs_disk: block reads become reads of the
 * disk range the filesystem lives in; writes are refused (read-only view).
 * libext2fs opens channels by name, so the name carries the address of the
 * range description ("roam:<hex pointer>"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ext2fs/ext2fs.h>
#include "fusefs/ext_io.h"

static errcode_t io_open(const char *name, int flags, io_channel *ret);

static errcode_t io_close(io_channel ch)
{
	if (--ch->refcount > 0)
		return 0;
	free(ch->name);
	free(ch);
	return 0;
}

static errcode_t io_set_blksize(io_channel ch, int blksize)
{
	ch->block_size = blksize;
	return 0;
}

static errcode_t io_read64(io_channel ch, unsigned long long block, int count, void *data)
{
	const struct ffs_range *r = ch->private_data;
	uint64_t len = count < 0 ? (uint64_t)-(int64_t)count : (uint64_t)count * (uint64_t)ch->block_size;
	uint64_t off = block * (uint64_t)ch->block_size;
	if (off / ch->block_size != block || off > r->size || len > r->size - off)
		return EXT2_ET_SHORT_READ;
	int rc = ffs_disk_read(r->disk, data, len, r->offset + off);
	if (rc < 0)
		return rc == -EIO || rc == -EBADMSG ? EIO : (errcode_t)-rc;
	return 0;
}

static errcode_t io_read(io_channel ch, unsigned long block, int count, void *data)
{
	return io_read64(ch, block, count, data);
}

static errcode_t io_write64(io_channel ch, unsigned long long block, int count, const void *data)
{
	return EROFS;
}

static errcode_t io_write(io_channel ch, unsigned long block, int count, const void *data)
{
	return EROFS;
}

static errcode_t io_write_byte(io_channel ch, unsigned long off, int count, const void *data)
{
	return EROFS;
}

static errcode_t io_flush(io_channel ch)
{
	return 0;
}

static errcode_t io_set_option(io_channel ch, const char *opt, const char *arg)
{
	return EXT2_ET_INVALID_ARGUMENT;
}

static struct struct_io_manager roam_io = {
	.magic = EXT2_ET_MAGIC_IO_MANAGER,
	.name = "roam store I/O manager",
	.open = io_open,
	.close = io_close,
	.set_blksize = io_set_blksize,
	.read_blk = io_read,
	.write_blk = io_write,
	.flush = io_flush,
	.write_byte = io_write_byte,
	.set_option = io_set_option,
	.read_blk64 = io_read64,
	.write_blk64 = io_write64,
};

io_manager ffs_io_manager = &roam_io;

static errcode_t io_open(const char *name, int flags, io_channel *ret)
{
	struct ffs_range *r;
	if (!name || sscanf(name, "roam:%p", (void **)&r) != 1 || !r)
		return EXT2_ET_BAD_DEVICE_NAME;
	if (flags & IO_FLAG_RW)
		return EROFS;
	io_channel ch = calloc(1, sizeof(*ch));
	if (!ch)
		return ENOMEM;
	ch->magic = EXT2_ET_MAGIC_IO_CHANNEL;
	ch->manager = &roam_io;
	ch->name = strdup(name);
	if (!ch->name) {
		free(ch);
		return ENOMEM;
	}
	ch->block_size = 1024;
	ch->refcount = 1;
	ch->private_data = r;
	*ret = ch;
	return 0;
}

void ffs_range_name(const struct ffs_range *r, char *buf, size_t len)
{
	snprintf(buf, len, "roam:%p", (const void *)r);
}
