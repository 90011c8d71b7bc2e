/* Guest RAM <-> store trees. The tree covers RAM offsets 0..size (the
 * memfd's layout, not guest-physical addresses). The first save stores every
 * non-zero chunk (multi-threaded import of the memfd, skipping holes); later
 * saves store only chunks with a page written since the previous save, on
 * top of the previous tree. */
#ifndef ROAM_CKPT_MEMORY_H
#define ROAM_CKPT_MEMORY_H
#include <stdint.h>
#include "image/store.h"

struct guest_mem;

struct ckpt_mem_stats {
	uint64_t chunks_written;   /* chunks stored (or found in the store) */
	uint64_t bytes_written;
	uint64_t chunks_unchanged; /* incremental: dirty chunks equal to the base's */
};

/* Full save of all RAM. A chunk may be stored as a delta against earlier
 * chunks or against the stored blobs in bases (disk chunks the guest read;
 * may be NULL). RAM must not change during the call. */
int ckpt_mem_save_full(struct store *s, struct guest_mem *m, const struct store_hash *bases,
		       size_t nbases, struct store_hash *ret, struct ckpt_mem_stats *stats);
/* Incremental save: base is the previous memory tree; dirty has one bit per
 * 4 KiB page of RAM (gmem_take_dirty layout) for pages written since base.
 * RAM must not change during the call (the VM is paused). Dirty chunks that
 * still equal base's are left as they are. */
int ckpt_mem_save_dirty(struct store *s, struct guest_mem *m, const struct store_hash *base,
			const uint64_t *dirty, struct store_hash *ret, struct ckpt_mem_stats *stats);
/* Loads tree root into fresh (zeroed) RAM: zero chunks are skipped. On
 * failure err says which chunk or object and why. */
int ckpt_mem_restore(struct store *s, const struct store_hash *root, struct guest_mem *m,
		     char *err, size_t errlen);
#endif
