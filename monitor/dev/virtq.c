/* Split-ring virtqueue walker for devices: descriptor chains, indirect
 * tables, used ring updates, EVENT_IDX, with every guest value checked.
 *
 * Ring layout (guest memory, little-endian):
 *   desc:  size x { u64 addr; u32 len; u16 flags; u16 next; }   align 16
 *   avail: u16 flags; u16 idx; u16 ring[size]; u16 used_event;  align 2
 *   used:  u16 flags; u16 idx; {u32 id; u32 len}[size]; u16 avail_event;
 *          align 4 */
#include <errno.h>
#include <string.h>
#include "monitor/dev/virtq.h"
#include "monitor/guest_mem.h"

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

static uint64_t desc_bytes(uint16_t n) { return 16ULL * n; }
static uint64_t avail_bytes(uint16_t n) { return 6 + 2ULL * n; }
static uint64_t used_bytes(uint16_t n) { return 6 + 8ULL * n; }

void virtq_reset(struct virtq *q, struct guest_mem *m, uint16_t max_size)
{
	memset(q, 0, sizeof(*q));
	q->mem = m;
	q->size = max_size;
}

static bool size_ok(uint16_t n)
{
	return n && n <= VIRTQ_MAX_SIZE && !(n & (n - 1));
}

int virtq_check(const struct virtq *q)
{
	uint16_t n = q->size;
	if (!size_ok(n) || (q->desc & 15) || (q->avail & 1) || (q->used & 3))
		return -EINVAL;
	if (!gmem_ptr(q->mem, q->desc, desc_bytes(n)) ||
	    !gmem_ptr(q->mem, q->avail, avail_bytes(n)) ||
	    !gmem_ptr(q->mem, q->used, used_bytes(n)))
		return -EINVAL;
	return 0;
}

static uint16_t load16(const void *p)
{
	return __atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE);
}

static void store16(void *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)p, v, __ATOMIC_RELEASE);
}

static int add_seg(struct virtq *q, struct virtq_req *req, const struct vring_desc *d)
{
	if (d->len == 0)
		return 0;
	uint8_t *p = gmem_ptr(q->mem, d->addr, d->len);
	if (!p)
		return -EINVAL;
	if (req->nout + req->nin >= VIRTQ_MAX_SIZE ||
	    req->out_bytes + req->in_bytes + d->len > VIRTQ_MAX_REQ_BYTES)
		return -EINVAL;
	if (d->flags & VRING_DESC_F_WRITE) {
		req->in_bytes += d->len;
		req->nin++;
	} else {
		if (req->nin)
			return -EINVAL;     /* readable after writable */
		req->out_bytes += d->len;
		req->nout++;
	}
	req->seg[req->nout + req->nin - 1] = (struct virtq_seg){ p, d->addr, d->len };
	return 0;
}

/* Walks the chain starting at head into req. */
static int walk(struct virtq *q, uint16_t head, struct virtq_req *req)
{
	const uint8_t *tbl = gmem_ptr(q->mem, q->desc, desc_bytes(q->size));
	if (!tbl)
		return -EINVAL;
	unsigned tsize = q->size, idx = head, steps = 0;
	bool indirect = false;
	for (;;) {
		struct vring_desc d;
		memcpy(&d, tbl + 16ULL * idx, sizeof(d));
		if (d.flags & VRING_DESC_F_INDIRECT) {
			/* Only as the sole descriptor of a direct chain. */
			if (indirect || !q->indirect || steps || (d.flags & VRING_DESC_F_NEXT))
				return -EINVAL;
			if (d.len == 0 || d.len % 16 || d.len / 16 > VIRTQ_MAX_SIZE)
				return -EINVAL;
			tbl = gmem_ptr(q->mem, d.addr, d.len);
			if (!tbl)
				return -EINVAL;
			tsize = d.len / 16;
			indirect = true;
			idx = 0;
			steps = 0;
			continue;
		}
		int rc = add_seg(q, req, &d);
		if (rc < 0)
			return rc;
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		if (++steps >= tsize || d.next >= tsize)
			return -EINVAL;     /* loop or out-of-table index */
		idx = d.next;
	}
}

int virtq_pop(struct virtq *q, struct virtq_req *req)
{
	if (!q->ready)
		return 0;
	uint16_t n = q->size;
	uint8_t *avail = gmem_ptr(q->mem, q->avail, avail_bytes(n));
	if (!avail || !size_ok(n))
		return -EINVAL;
	uint16_t aidx = load16(avail + 2);
	if (aidx == q->last_avail && q->event_idx) {
		/* Publish how far we got before looking once more, so a
		 * buffer added in between is always notified. */
		uint8_t *used = gmem_ptr(q->mem, q->used, used_bytes(n));
		if (!used)
			return -EINVAL;
		store16(used + 4 + 8ULL * n, q->last_avail);
		gmem_mark_dirty(q->mem, q->used + 4 + 8ULL * n, 2);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		aidx = load16(avail + 2);
	}
	uint16_t pending = (uint16_t)(aidx - q->last_avail);
	if (pending == 0)
		return 0;
	if (pending > n)
		return -EINVAL;
	uint16_t head = load16(avail + 4 + 2ULL * (q->last_avail % n));
	if (head >= n)
		return -EINVAL;
	req->head = head;
	req->nout = req->nin = 0;
	req->out_bytes = req->in_bytes = 0;
	int rc = walk(q, head, req);
	if (rc < 0)
		return rc;
	q->last_avail++;
	if (q->event_idx) {
		uint8_t *used = gmem_ptr(q->mem, q->used, used_bytes(n));
		if (!used)
			return -EINVAL;
		store16(used + 4 + 8ULL * n, q->last_avail);
		gmem_mark_dirty(q->mem, q->used + 4 + 8ULL * n, 2);
	}
	return 1;
}

int virtq_push(struct virtq *q, uint16_t head, uint32_t written)
{
	uint16_t n = q->size;
	uint8_t *used = gmem_ptr(q->mem, q->used, used_bytes(n));
	if (!used || !size_ok(n))
		return -EINVAL;
	uint64_t eoff = 4 + 8ULL * (q->used_idx % n);
	uint32_t e[2] = { head, written };
	memcpy(used + eoff, e, sizeof(e));
	q->used_idx++;
	store16(used + 2, q->used_idx);
	gmem_mark_dirty(q->mem, q->used + eoff, 8);
	gmem_mark_dirty(q->mem, q->used + 2, 2);
	return 0;
}

bool virtq_should_notify(struct virtq *q)
{
	uint16_t n = q->size;
	const uint8_t *avail = gmem_ptr(q->mem, q->avail, avail_bytes(n));
	if (!avail)
		return true;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!q->event_idx)
		return !(load16(avail) & VRING_AVAIL_F_NO_INTERRUPT);
	uint16_t event = load16(avail + 4 + 2ULL * n);
	uint16_t old = q->signalled_used, cur = q->used_idx;
	bool valid = q->signalled_valid;
	q->signalled_used = cur;
	q->signalled_valid = true;
	if (!valid)
		return true;
	return (uint16_t)(cur - event - 1) < (uint16_t)(cur - old);
}

size_t virtq_req_read(const struct virtq_req *r, uint64_t off, void *buf, size_t len)
{
	uint8_t *out = buf;
	size_t done = 0;
	for (unsigned i = 0; i < r->nout && done < len; i++) {
		const struct virtq_seg *s = &r->seg[i];
		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		size_t n = s->len - off;
		if (n > len - done)
			n = len - done;
		memcpy(out + done, s->p + off, n);
		done += n;
		off = 0;
	}
	return done;
}

size_t virtq_req_write(const struct virtq *q, const struct virtq_req *r, uint64_t off,
		       const void *buf, size_t len)
{
	const uint8_t *in = buf;
	size_t done = 0;
	for (unsigned i = r->nout; i < r->nout + r->nin && done < len; i++) {
		const struct virtq_seg *s = &r->seg[i];
		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		size_t n = s->len - off;
		if (n > len - done)
			n = len - done;
		memcpy(s->p + off, in + done, n);
		gmem_mark_dirty(q->mem, s->gpa + off, n);
		done += n;
		off = 0;
	}
	return done;
}

void virtq_save(const struct virtq *q, struct rec_writer *w)
{
	rec_put_u16(w, q->size);
	rec_put_u8(w, (uint8_t)(q->ready | q->event_idx << 1 | q->indirect << 2 |
				q->signalled_valid << 3));
	rec_put_u64(w, q->desc);
	rec_put_u64(w, q->avail);
	rec_put_u64(w, q->used);
	rec_put_u16(w, q->last_avail);
	rec_put_u16(w, q->used_idx);
	rec_put_u16(w, q->signalled_used);
}

int virtq_load(struct virtq *q, struct rec_reader *r, uint16_t max_size)
{
	struct virtq t = { .mem = q->mem };
	t.size = rec_get_u16(r);
	uint8_t fl = rec_get_u8(r);
	t.desc = rec_get_u64(r);
	t.avail = rec_get_u64(r);
	t.used = rec_get_u64(r);
	t.last_avail = rec_get_u16(r);
	t.used_idx = rec_get_u16(r);
	t.signalled_used = rec_get_u16(r);
	/* A queue not yet enabled may hold any size the driver wrote. */
	if (r->err || (fl & ~0xFu) || ((fl & 1) && t.size > max_size))
		return -EINVAL;
	t.ready = fl & 1;
	t.event_idx = fl & 2;
	t.indirect = fl & 4;
	t.signalled_valid = fl & 8;
	if (t.ready && virtq_check(&t) < 0)
		return -EINVAL;
	*q = t;
	return 0;
}
