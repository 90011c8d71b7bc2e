/* A VM disk while it runs: a block overlay over the last commit's tree.
 * Reads of clean chunks come from the store (only the chunks touched);
 * writes go to a sparse working file in the store's run directory, chunk
 * by chunk, with a dirty bitmap. A save hashes and stores only the dirty
 * chunks, building the new tree on top of the old one.
 *
 * The working file holds no state of its own beyond the running VM: after a
 * crash the disk is what its last commit says (as for memory), so guest
 * flushes need not reach stable storage here; a commit is the durable point. */
#ifndef ROAM_CKPT_OVERLAY_H
#define ROAM_CKPT_OVERLAY_H
#include <stdint.h>
#include "image/store.h"
#include "monitor/dev/blockdev.h"

struct ckpt_overlay;

/* Opens an overlay of tree base (must exist in s) with its working file at
 * work_path (created, truncated). The overlay is a struct blockdev: pass
 * ckpt_overlay_bdev() to the VM; the VM frees it through blockdev_free. */
int ckpt_overlay_new(struct store *s, const struct store_hash *base, const char *work_path,
		     bool readonly, struct ckpt_overlay **ret);
struct blockdev *ckpt_overlay_bdev(struct ckpt_overlay *o);

/* Stores the dirty chunks and builds the new tree (*ret), in the caller's
 * transaction. The caller has quiesced the device (no request in flight).
 * The overlay is unchanged until ckpt_overlay_adopt: a save whose
 * transaction does not commit leaves the chunks dirty and the base as it
 * was. ret_bytes (may be NULL) gets the bytes of dirty chunks written. */
int ckpt_overlay_save(struct ckpt_overlay *o, struct store_hash *ret, uint64_t *ret_bytes);
/* Once the save's objects are committed: its tree becomes the base and
 * nothing is dirty (a no-op without a save since the last adopt). */
void ckpt_overlay_adopt(struct ckpt_overlay *o);
/* Appends to *v (*n used of *cap, grown with realloc) the hashes of the
 * chunks the guest has read from the base since the overlay opened and not
 * written since: disk content that may also sit in guest RAM (page cache,
 * copies). */
int ckpt_overlay_read_blobs(struct ckpt_overlay *o, struct store_hash **v, size_t *n,
			   size_t *cap);
/* Chunks written since the last save. */
uint64_t ckpt_overlay_dirty_chunks(struct ckpt_overlay *o);
#endif
