/* Lazy restore of guest RAM: the guest runs before all of its memory is
 * loaded. RAM (the memfd's shared mapping) is registered with userfaultfd in
 * MISSING mode; a handler thread answers each first touch of a page (by a
 * vCPU, the BT engine, a device doing DMA, a save hashing RAM) by fetching
 * its chunk from the memory tree and placing it with UFFDIO_COPY, while a
 * fetcher thread loads every other non-zero chunk in the background. When
 * the fetcher is done the range is unregistered and RAM is ordinary memory.
 *
 * Until then pages not yet fetched read as zeros through the memfd (not
 * through the mapping): ckpt_mem_save_full must not run before
 * ckpt_lazy_finish; incremental saves (which read dirty chunks through the
 * mapping) may. The loader uses its own read-only store handle, so it never
 * waits for a writer holding the session's handle (which may itself be
 * waiting on a fault). */
#ifndef ROAM_CKPT_LAZYMEM_H
#define ROAM_CKPT_LAZYMEM_H
#include <stdint.h>
#include "image/store.h"

struct guest_mem;
struct ckpt_lazy;

struct ckpt_lazy_stats {
	uint64_t faults;          /* faults answered by the handler */
	uint64_t chunks;          /* non-zero chunks placed (either thread) */
	uint64_t done_ns;         /* start to everything loaded; 0: not yet */
	int error;                /* first load error (-errno), 0 if none */
};

/* Called once, from the loader's threads, when a chunk cannot be loaded
 * (missing or corrupt object): the guest must be stopped and nothing of it
 * saved, because the page that faulted is then filled with zeros so that
 * the faulting thread can return. */
typedef void (*ckpt_lazy_fail_cb)(void *arg, int err, const char *msg);

/* Starts a lazy restore of tree root (the store at store_path) into m,
 * which must be fresh (nothing touched yet). Returns 0, or -errno when
 * userfaultfd cannot be used here (-ENOSYS, -EPERM, -EINVAL: not for this
 * memory) -- the caller then restores eagerly -- or the tree is unusable
 * (-ENOENT, -EBADMSG, -EINVAL for a size mismatch). */
int ckpt_lazy_start(const char *store_path, const struct store_hash *root, struct guest_mem *m,
		    ckpt_lazy_fail_cb fail, void *fail_arg, struct ckpt_lazy **ret);
/* Waits until every non-zero chunk is loaded and RAM is unregistered.
 * Returns the first load error (a chunk missing or corrupt), or 0. */
int ckpt_lazy_finish(struct ckpt_lazy *l);
void ckpt_lazy_get_stats(struct ckpt_lazy *l, struct ckpt_lazy_stats *ret);
/* Stops the threads and unregisters RAM (pages not loaded then read as
 * zeros: call it when the guest no longer runs). NULL is a no-op. */
void ckpt_lazy_free(struct ckpt_lazy *l);
#endif
