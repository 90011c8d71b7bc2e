/* virtio-blk (virtio 1.x section 5.2) over a struct blockdev: IN, OUT,
 * FLUSH, GET_ID, DISCARD, WRITE_ZEROES; read-only option. One request
 * queue; requests are served synchronously under the device lock.
 *
 * Request layout: readable { le32 type; le32 reserved; le64 sector; }
 * [data out | discard segments], writable [data in], u8 status (the last
 * writable byte). Malformed framing (no header, no status byte) puts the
 * device in NEEDS_RESET; well-framed requests the disk cannot serve
 * (out of range, unaligned, backend error) complete with IOERR/UNSUPP. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "monitor/dev/blockdev.h"
#include "monitor/dev/virtio.h"
#include "monitor/dev/virtio_int.h"
#include "monitor/guest_mem.h"
#include "monitor/vm.h"

#define BLK_STATE_VERSION 1
#define BLK_QUEUE_SIZE    256
#define BLK_CFG_SIZE      72      /* through the secure-erase fields (zero) */

#define VIRTIO_BLK_F_SEG_MAX      2
#define VIRTIO_BLK_F_RO           5
#define VIRTIO_BLK_F_BLK_SIZE     6
#define VIRTIO_BLK_F_FLUSH        9
#define VIRTIO_BLK_F_DISCARD      13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

#define VIRTIO_BLK_T_IN           0
#define VIRTIO_BLK_T_OUT          1
#define VIRTIO_BLK_T_FLUSH        4
#define VIRTIO_BLK_T_GET_ID       8
#define VIRTIO_BLK_T_DISCARD      11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_S_OK     0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

#define SECTOR            512ULL
#define MAX_DISCARD_SECT  0x400000u     /* 2 GiB per segment */
#define MAX_DISCARD_SEG   32u
#define ID_BYTES          20

struct virtio_blk {
	struct virtio_dev vd;           /* first */
	struct blockdev *bdev;
	bool readonly;
	uint64_t capacity;              /* sectors */
	char serial[ID_BYTES];
};

static struct virtio_blk *blk(struct virtio_dev *vd)
{
	return (struct virtio_blk *)vd;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)v); put16(p + 2, (uint16_t)(v >> 16)); }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)v); put32(p + 4, (uint32_t)(v >> 32)); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)(p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24); }
static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }

static void blk_get_config(struct virtio_dev *vd, uint8_t *c)
{
	struct virtio_blk *b = blk(vd);
	memset(c, 0, BLK_CFG_SIZE);
	put64(c + 0, b->capacity);
	put32(c + 12, BLK_QUEUE_SIZE - 2);      /* seg_max */
	put32(c + 20, (uint32_t)SECTOR);        /* blk_size */
	put16(c + 34, 1);                       /* num_queues */
	put32(c + 36, MAX_DISCARD_SECT);
	put32(c + 40, MAX_DISCARD_SEG);
	put32(c + 44, 8);                       /* discard alignment: 4 KiB */
	put32(c + 48, MAX_DISCARD_SECT);        /* max_write_zeroes_sectors */
	put32(c + 52, MAX_DISCARD_SEG);
	c[56] = 1;                              /* write_zeroes_may_unmap */
}

static bool range_ok(const struct virtio_blk *b, uint64_t sector, uint64_t bytes)
{
	uint64_t n = bytes / SECTOR;
	return sector <= b->capacity && n <= b->capacity - sector;
}

/* Moves len bytes between the disk at off and the data part of the chain:
 * readable bytes after the 16-byte header (write) or writable bytes from 0
 * (read). */
static int transfer(struct virtio_blk *b, struct virtq_req *r, bool to_disk, uint64_t off,
		    uint64_t len)
{
	unsigned first = to_disk ? 0 : r->nout, end = to_disk ? r->nout : r->nout + r->nin;
	uint64_t skip = to_disk ? 16 : 0;
	for (unsigned i = first; i < end && len; i++) {
		struct virtq_seg *s = &r->seg[i];
		if (skip >= s->len) {
			skip -= s->len;
			continue;
		}
		uint64_t n = s->len - skip;
		if (n > len)
			n = len;
		int rc = to_disk ? blockdev_pwrite(b->bdev, s->p + skip, n, off)
				 : blockdev_pread(b->bdev, s->p + skip, n, off);
		if (rc < 0)
			return rc;
		if (!to_disk)
			gmem_mark_dirty(b->vd.vm->mem, s->gpa + skip, n);
		off += n;
		len -= n;
		skip = 0;
	}
	return len ? -EIO : 0;
}

static int write_zeroes(struct virtio_blk *b, uint64_t off, uint64_t len, bool unmap)
{
	if (unmap && blockdev_discard(b->bdev, off, len) == 0)
		return 0;
	static const uint8_t zero[65536];
	while (len) {
		size_t n = len < sizeof(zero) ? (size_t)len : sizeof(zero);
		int rc = blockdev_pwrite(b->bdev, zero, n, off);
		if (rc < 0)
			return rc;
		off += n;
		len -= n;
	}
	return 0;
}

/* DISCARD / WRITE_ZEROES: segments { le64 sector; le32 num; le32 flags }. */
static uint8_t do_ranges(struct virtio_blk *b, struct virtq_req *r, uint32_t type)
{
	uint64_t bytes = r->out_bytes - 16;
	if (bytes == 0 || bytes % 16 || bytes / 16 > MAX_DISCARD_SEG)
		return VIRTIO_BLK_S_UNSUPP;
	if (b->readonly)
		return VIRTIO_BLK_S_IOERR;
	for (uint64_t i = 0; i < bytes / 16; i++) {
		uint8_t seg[16];
		virtq_req_read(r, 16 + 16 * i, seg, sizeof(seg));
		uint64_t sector = get64(seg);
		uint32_t num = get32(seg + 8), flags = get32(seg + 12);
		uint32_t allowed = type == VIRTIO_BLK_T_WRITE_ZEROES ? 1 : 0;
		if ((flags & ~allowed) || num > MAX_DISCARD_SECT)
			return VIRTIO_BLK_S_UNSUPP;
		if (!range_ok(b, sector, num * SECTOR))
			return VIRTIO_BLK_S_IOERR;
		int rc = type == VIRTIO_BLK_T_DISCARD
			? blockdev_discard(b->bdev, sector * SECTOR, num * SECTOR)
			: write_zeroes(b, sector * SECTOR, num * SECTOR, flags & 1);
		if (rc == -EOPNOTSUPP)
			return VIRTIO_BLK_S_UNSUPP;
		if (rc < 0)
			return VIRTIO_BLK_S_IOERR;
	}
	return VIRTIO_BLK_S_OK;
}

static int blk_handle(struct virtio_dev *vd, unsigned q, struct virtq_req *r, uint32_t *written)
{
	struct virtio_blk *b = blk(vd);
	if (r->out_bytes < 16 || r->in_bytes < 1)
		return -EINVAL;
	uint8_t hdr[16];
	virtq_req_read(r, 0, hdr, sizeof(hdr));
	uint32_t type = get32(hdr);
	uint64_t sector = get64(hdr + 8);
	uint64_t din = r->in_bytes - 1;        /* writable bytes before status */
	uint64_t dout = r->out_bytes - 16;
	uint8_t st = VIRTIO_BLK_S_OK;
	uint32_t data_written = 0;

	switch (type) {
	case VIRTIO_BLK_T_IN:
		if (din % SECTOR || !range_ok(b, sector, din))
			st = VIRTIO_BLK_S_IOERR;
		else if (transfer(b, r, false, sector * SECTOR, din) < 0)
			st = VIRTIO_BLK_S_IOERR;
		else
			data_written = (uint32_t)din;
		break;
	case VIRTIO_BLK_T_OUT:
		if (b->readonly || dout % SECTOR || !range_ok(b, sector, dout) ||
		    transfer(b, r, true, sector * SECTOR, dout) < 0)
			st = VIRTIO_BLK_S_IOERR;
		break;
	case VIRTIO_BLK_T_FLUSH:
		if (blockdev_flush(b->bdev) < 0)
			st = VIRTIO_BLK_S_IOERR;
		break;
	case VIRTIO_BLK_T_GET_ID: {
		size_t n = din < ID_BYTES ? (size_t)din : ID_BYTES;
		data_written = (uint32_t)virtq_req_write(&vd->s.vq[q].q, r, 0, b->serial, n);
		break;
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		st = do_ranges(b, r, type);
		break;
	default:
		st = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	virtq_req_write(&vd->s.vq[q].q, r, din, &st, 1);
	*written = data_written + 1;
	return 0;
}

static void blk_save(struct virtio_dev *vd, struct rec_writer *w)
{
	rec_put_u64(w, blk(vd)->capacity);
	rec_put_u8(w, blk(vd)->readonly);
}

static int blk_load(struct virtio_dev *vd, struct rec_reader *r)
{
	uint64_t cap = rec_get_u64(r);
	uint8_t ro = rec_get_u8(r);
	/* The disk must be the one the state was saved with. */
	if (r->err || cap != blk(vd)->capacity || ro != blk(vd)->readonly)
		return -EINVAL;
	return 0;
}

static void blk_release(struct virtio_dev *vd)
{
	blockdev_free(blk(vd)->bdev);
}

static const struct virtio_dev_ops blk_ops = {
	.device_id = 2,
	.class_code = 0x018000,         /* mass storage, other */
	.nqueues = 1,
	.queue_max = BLK_QUEUE_SIZE,
	.cfg_size = BLK_CFG_SIZE,
	.get_config = blk_get_config,
	.handle = blk_handle,
	.save = blk_save,
	.load = blk_load,
	.release = blk_release,
};

static const struct dev_type blk_type = {
	.name = "virtio-blk",
	.version = BLK_STATE_VERSION,
	.min_version = 1,
	.reset = virtio_dev_reset,
	.save = virtio_dev_save,
	.load = virtio_dev_load,
	.pause = virtio_dev_pause,
	.resume = virtio_dev_resume,
	.free = virtio_dev_free,
};

int virtio_blk_create(struct vm *vm, struct blockdev *bdev, bool readonly, const char *id)
{
	uint64_t size;
	int rc = blockdev_size(bdev, &size);
	if (rc < 0)
		return rc;
	if (size < SECTOR)
		return -EINVAL;
	struct virtio_blk *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->bdev = bdev;
	b->readonly = readonly || bdev->readonly;
	b->capacity = size / SECTOR;
	if (id)
		memcpy(b->serial, id, strnlen(id, sizeof(b->serial)));
	uint64_t f = 1ULL << VIRTIO_BLK_F_SEG_MAX | 1ULL << VIRTIO_BLK_F_BLK_SIZE |
		     1ULL << VIRTIO_BLK_F_FLUSH | 1ULL << VIRTIO_F_INDIRECT_DESC |
		     1ULL << VIRTIO_F_EVENT_IDX;
	f |= b->readonly ? 1ULL << VIRTIO_BLK_F_RO
			 : 1ULL << VIRTIO_BLK_F_DISCARD | 1ULL << VIRTIO_BLK_F_WRITE_ZEROES;
	rc = virtio_dev_init(&b->vd, vm, &blk_ops, f);
	if (rc < 0) {
		free(b);
		return rc;
	}
	rc = virtio_dev_plug(&b->vd, &blk_type, id);
	if (rc < 0) {
		virtio_dev_destroy(&b->vd);
		free(b);
		return rc;
	}
	return 0;
}
