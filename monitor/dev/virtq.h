/* Split virtqueues (virtio 1.x section 2.6) as seen by a device: walking
 * descriptor chains (direct and indirect) into checked host segments,
 * returning used buffers, and notification suppression (EVENT_IDX).
 *
 * Every ring is guest memory and hostile. virtq_pop copies each descriptor
 * once before using it, checks every address and length with gmem_ptr,
 * bounds chains by the queue (or indirect table) size, caps request bytes,
 * and returns -EINVAL on anything malformed; the caller then puts its device
 * into DEVICE_NEEDS_RESET. Nothing here can touch host memory outside
 * guest RAM. Not thread-safe: the owning device serializes calls. */
#ifndef ROAM_VIRTQ_H
#define ROAM_VIRTQ_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "monitor/rec.h"

struct guest_mem;

#define VIRTQ_MAX_SIZE      1024        /* largest queue size accepted */
#define VIRTQ_MAX_REQ_BYTES (1u << 30)  /* readable + writable bytes per chain */

#define VRING_DESC_F_NEXT      1
#define VRING_DESC_F_WRITE     2
#define VRING_DESC_F_INDIRECT  4
#define VRING_AVAIL_F_NO_INTERRUPT 1

struct virtq {
	struct guest_mem *mem;
	uint16_t size;                  /* power of two once ready */
	bool ready;
	bool event_idx, indirect;       /* negotiated features */
	uint64_t desc, avail, used;     /* guest-physical ring addresses */
	uint16_t last_avail;            /* next avail entry to consume */
	uint16_t used_idx;              /* our copy of used->idx */
	uint16_t signalled_used;        /* used_idx at the last interrupt */
	bool signalled_valid;
};

struct virtq_seg {
	uint8_t *p;                     /* host pointer into guest RAM */
	uint64_t gpa;
	uint32_t len;
};

/* One descriptor chain: seg[0, nout) device-readable, then seg[nout,
 * nout + nin) device-writable (readable after writable is rejected). */
struct virtq_req {
	uint16_t head;
	unsigned nout, nin;
	uint64_t out_bytes, in_bytes;
	struct virtq_seg seg[VIRTQ_MAX_SIZE];
};

/* Back to the reset state with queue size max_size, not ready. */
void virtq_reset(struct virtq *q, struct guest_mem *m, uint16_t max_size);
/* Is the configured layout usable (size a power of two <= VIRTQ_MAX_SIZE,
 * rings aligned and wholly in RAM)? 0 or -EINVAL. */
int virtq_check(const struct virtq *q);

/* Takes the next available chain. Returns 1 (req filled), 0 (queue empty
 * or not ready), -EINVAL (malformed: the queue must not be used again
 * until reset). */
int virtq_pop(struct virtq *q, struct virtq_req *req);
/* Returns the chain with head id, written bytes, to the used ring. 0 or
 * -EINVAL (used ring not in RAM). */
int virtq_push(struct virtq *q, uint16_t head, uint32_t written);
/* After pushes: should the device interrupt the driver now? Updates the
 * EVENT_IDX bookkeeping, so call it once per interrupt decision. */
bool virtq_should_notify(struct virtq *q);

/* Copies len bytes at byte offset off of the readable part into buf.
 * Returns the bytes copied (less when the chain is shorter). */
size_t virtq_req_read(const struct virtq_req *r, uint64_t off, void *buf, size_t len);
/* Copies buf into the writable part at byte offset off and marks the pages
 * dirty. Returns the bytes copied. */
size_t virtq_req_write(const struct virtq *q, const struct virtq_req *r, uint64_t off,
		       const void *buf, size_t len);

/* State: the fields above except mem. Load validates (a ready queue must
 * have size <= max_size and pass virtq_check) and returns 0 or -EINVAL with
 * q unchanged. */
void virtq_save(const struct virtq *q, struct rec_writer *w);
int virtq_load(struct virtq *q, struct rec_reader *r, uint16_t max_size);
#endif
