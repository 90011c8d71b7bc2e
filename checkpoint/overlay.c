/* Block overlay over a store tree (overlay.h). One chunk = the store's
 * chunk size; a chunk is either clean (read from the base tree) or dirty
 * (its whole content is in the working file). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "checkpoint/overlay.h"

struct ckpt_overlay {
	struct blockdev bdev;       /* first: the VM sees a blockdev */
	struct store *s;
	struct store_tree *base;
	struct store_hash base_hash;
	struct store_tree *pending;   /* saved, not adopted yet */
	struct store_hash pending_hash;
	uint64_t size;
	uint32_t chunk;
	int fd;
	uint64_t *dirty;            /* one bit per chunk */
	uint64_t *read;             /* one bit per chunk the guest read from base */
	uint64_t nchunks;
	uint8_t *buf;               /* one chunk, for copy-up */
};

static bool is_dirty(const struct ckpt_overlay *o, uint64_t c) { return o->dirty[c / 64] >> (c % 64) & 1; }
static void set_dirty(struct ckpt_overlay *o, uint64_t c) { o->dirty[c / 64] |= 1ULL << (c % 64); }

static int full_pread(int fd, void *buf, size_t len, uint64_t off)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {                   /* past EOF of a sparse file */
			memset((char *)buf + done, 0, len - done);
			return 0;
		}
		done += (size_t)n;
	}
	return 0;
}

static int full_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	return 0;
}

static int base_read(struct ckpt_overlay *o, void *buf, size_t len, uint64_t off)
{
	ssize_t n = store_tree_read(o->base, buf, len, off);
	if (n < 0)
		return (int)n == -EBADMSG ? -EIO : (int)n;
	if ((size_t)n < len)
		memset((char *)buf + n, 0, len - (size_t)n);
	return 0;
}

static uint64_t chunk_len(const struct ckpt_overlay *o, uint64_t c)
{
	uint64_t start = c * o->chunk;
	return o->size - start < o->chunk ? o->size - start : o->chunk;
}

static int ov_pread(struct blockdev *b, void *buf, size_t len, uint64_t off)
{
	struct ckpt_overlay *o = (struct ckpt_overlay *)b;
	if (off > o->size || len > o->size - off)
		return -EINVAL;
	while (len) {
		uint64_t c = off / o->chunk;
		/* Merge runs of chunks with the same source into one read. */
		bool d = is_dirty(o, c);
		uint64_t end = (c + 1) * o->chunk;
		while (end < off + len && is_dirty(o, end / o->chunk) == d)
			end += o->chunk;
		size_t n = (size_t)((end < off + len ? end : off + len) - off);
		int rc = d ? full_pread(o->fd, buf, n, off) : base_read(o, buf, n, off);
		if (rc < 0)
			return rc;
		/* Chunks read from the base, marked atomically so that
		 * concurrent requests need no lock. */
		for (uint64_t k = c; !d && k * o->chunk < off + n; k++)
			__atomic_fetch_or(&o->read[k / 64], 1ULL << (k % 64), __ATOMIC_RELAXED);
		buf = (char *)buf + n;
		off += n;
		len -= n;
	}
	return 0;
}

static int ov_pwrite(struct blockdev *b, const void *buf, size_t len, uint64_t off)
{
	struct ckpt_overlay *o = (struct ckpt_overlay *)b;
	if (off > o->size || len > o->size - off)
		return -EINVAL;
	while (len) {
		uint64_t c = off / o->chunk, cstart = c * o->chunk, clen = chunk_len(o, c);
		size_t n = (size_t)(cstart + clen - off < len ? cstart + clen - off : len);
		int rc;
		if (!is_dirty(o, c) && n < clen) {
			/* Copy up: the working file holds whole chunks. */
			rc = base_read(o, o->buf, clen, cstart);
			if (rc < 0)
				return rc;
			memcpy(o->buf + (off - cstart), buf, n);
			rc = full_pwrite(o->fd, o->buf, clen, cstart);
		} else {
			rc = full_pwrite(o->fd, buf, n, off);
		}
		if (rc < 0)
			return rc;
		set_dirty(o, c);
		buf = (const char *)buf + n;
		off += n;
		len -= n;
	}
	return 0;
}

static int ov_flush(struct blockdev *b)
{
	return 0;       /* durability comes from commits (see overlay.h) */
}

static int ov_discard(struct blockdev *b, uint64_t off, uint64_t len)
{
	struct ckpt_overlay *o = (struct ckpt_overlay *)b;
	if (off > o->size || len > o->size - off)
		return -EINVAL;
	/* Whole chunks become zero chunks (holes); partial ones are written. */
	while (len) {
		uint64_t c = off / o->chunk, cstart = c * o->chunk, clen = chunk_len(o, c);
		uint64_t n = cstart + clen - off < len ? cstart + clen - off : len;
		int rc;
		if (off == cstart && n == clen) {
			rc = fallocate(o->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)n);
			if (rc < 0)
				return -errno;
			set_dirty(o, c);
		} else {
			static const uint8_t zeros[4096];
			for (uint64_t z = 0; z < n; z += sizeof(zeros)) {
				size_t k = (size_t)(n - z < sizeof(zeros) ? n - z : sizeof(zeros));
				if ((rc = ov_pwrite(b, zeros, k, off + z)) < 0)
					return rc;
			}
		}
		off += n;
		len -= n;
	}
	return 0;
}

static int ov_size(struct blockdev *b, uint64_t *ret)
{
	*ret = ((struct ckpt_overlay *)b)->size;
	return 0;
}

static void ov_free(struct blockdev *b)
{
	struct ckpt_overlay *o = (struct ckpt_overlay *)b;
	store_tree_free(o->base);
	store_tree_free(o->pending);
	if (o->fd >= 0)
		close(o->fd);
	free(o->dirty);
	free(o->read);
	free(o->buf);
	free(o);
}

static const struct blockdev_ops overlay_ops = {
	.name = "overlay",
	.pread = ov_pread,
	.pwrite = ov_pwrite,
	.flush = ov_flush,
	.discard = ov_discard,
	.size = ov_size,
	.free = ov_free,
};

int ckpt_overlay_new(struct store *s, const struct store_hash *base, const char *work_path,
		     bool readonly, struct ckpt_overlay **ret)
{
	struct ckpt_overlay *o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->bdev.ops = &overlay_ops;
	o->bdev.readonly = readonly;
	o->s = s;
	o->fd = -1;
	o->base_hash = *base;
	o->chunk = store_chunk_size(s);
	int rc = store_tree_open(s, base, &o->base);
	if (rc < 0)
		goto err;
	o->size = store_tree_size(o->base);
	o->nchunks = (o->size + o->chunk - 1) / o->chunk;
	o->dirty = calloc(o->nchunks / 64 + 1, sizeof(uint64_t));
	o->read = calloc(o->nchunks / 64 + 1, sizeof(uint64_t));
	o->buf = malloc(o->chunk);
	if (!o->dirty || !o->read || !o->buf) {
		rc = -ENOMEM;
		goto err;
	}
	o->fd = open(work_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (o->fd < 0 || ftruncate(o->fd, (off_t)o->size) < 0) {
		rc = -errno;
		goto err;
	}
	*ret = o;
	return 0;
err:
	ov_free(&o->bdev);
	return rc;
}

struct blockdev *ckpt_overlay_bdev(struct ckpt_overlay *o) { return &o->bdev; }

uint64_t ckpt_overlay_dirty_chunks(struct ckpt_overlay *o)
{
	uint64_t n = 0;
	for (uint64_t i = 0; i <= o->nchunks / 64; i++)
		n += (uint64_t)__builtin_popcountll(o->dirty[i]);
	return n;
}

int ckpt_overlay_read_blobs(struct ckpt_overlay *o, struct store_hash **v, size_t *n,
			   size_t *cap)
{
	for (uint64_t c = 0; c < o->nchunks; c++) {
		if (!(o->read[c / 64] >> (c % 64) & 1) || is_dirty(o, c))
			continue;
		struct store_hash h;
		int rc = store_tree_chunk_hash(o->base, c, &h);
		if (rc < 0)
			return rc;
		if (store_hash_is_zero(&h))
			continue;
		if (*n == *cap) {
			size_t nc = *cap ? *cap * 2 : 1024;
			void *nv = realloc(*v, nc * sizeof(**v));
			if (!nv)
				return -ENOMEM;
			*v = nv;
			*cap = nc;
		}
		(*v)[(*n)++] = h;
	}
	return 0;
}

int ckpt_overlay_save(struct ckpt_overlay *o, struct store_hash *ret, uint64_t *ret_bytes)
{
	struct store_tree_builder *b;
	uint64_t bytes = 0;
	int rc = store_tree_builder_new(o->s, o->size, &o->base_hash, &b);
	if (rc < 0)
		return rc;
	for (uint64_t c = 0; c < o->nchunks && rc == 0; c++) {
		if (!is_dirty(o, c))
			continue;
		uint64_t len = chunk_len(o, c);
		rc = full_pread(o->fd, o->buf, len, c * o->chunk);
		if (rc == 0)
			rc = store_tree_builder_set(b, c, o->buf, len);
		bytes += len;
	}
	struct store_hash root;
	if (rc == 0)
		rc = store_tree_builder_finish(b, &root);
	store_tree_builder_free(b);
	if (rc < 0)
		return rc;
	struct store_tree *t;
	rc = store_tree_open(o->s, &root, &t);
	if (rc < 0)
		return rc;
	store_tree_free(o->pending);
	o->pending = t;
	o->pending_hash = root;
	*ret = root;
	if (ret_bytes)
		*ret_bytes = bytes;
	return 0;
}

void ckpt_overlay_adopt(struct ckpt_overlay *o)
{
	if (!o->pending)
		return;
	store_tree_free(o->base);
	o->base = o->pending;
	o->base_hash = o->pending_hash;
	o->pending = NULL;
	memset(o->dirty, 0, (o->nchunks / 64 + 1) * sizeof(uint64_t));
}
