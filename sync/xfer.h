/* Objects over the wire codec with a store on each end (used by the client
 * and the server alike): basis maps (which old object sits where a new one
 * goes), sending one object as a full record, a basis delta or (too big for
 * a record) an OBJ frame, and turning a received record back into a
 * verified object. Private to sync/. */
#ifndef ROAM_SYNC_XFER_H
#define ROAM_SYNC_XFER_H
#include <stdbool.h>
#include <stddef.h>
#include "image/store.h"
#include "sync/wire.h"

/* new object hash -> base object hash (the one it replaces). */
struct sync_bmap;
int sync_bmap_new(struct sync_bmap **ret);
void sync_bmap_free(struct sync_bmap *m);
/* Adds a pair for every object reachable from commit newc that sits where
 * a different object reachable from commit oldc sits: same root name, same
 * position in the tree (chunks and tree nodes), or the same root blob/state.
 * Only changed paths are read. Both commits must be in s.
 * With pages (peers of version 3 and up), and when newc has new memory, it
 * also indexes the 4 KiB pages of every blob reachable from oldc (the
 * receiver has them; once per map), so that a memory chunk can go as a
 * delta against the disk or memory blobs holding its pages: pages of files
 * the guest read sit in its page cache and on its disk. That reads at most
 * SYNC_PAGE_INDEX_BYTES of blobs. */
#define SYNC_PAGE_INDEX_BYTES (4ull << 30)
int sync_bmap_add_commits(struct sync_bmap *m, struct store *s, const struct store_hash *newc,
			  const struct store_hash *oldc, bool pages);
size_t sync_bmap_count(const struct sync_bmap *m);
/* The base for h, or NULL. */
const struct store_hash *sync_bmap_find(struct sync_bmap *m, const struct store_hash *h);

/* Sends object h of s: a delta against its base in m (may be NULL) when
 * that pays, else a full record, or an OBJ frame after a flush when it is
 * over SYNC_OBJ_MAX or e is NULL (level 0: objects as stored). *raw grows by the object's size. On failure err says
 * why and *io_failed tells a broken connection from a store error. */
int sync_xfer_send(struct sync_wenc *e, struct sync_io *io, struct store *s,
		   struct sync_bmap *m, const struct store_hash *h, uint64_t *raw,
		   bool *io_failed, char *err, size_t errlen);

/* The object a record carries: a copy of a full body, or a delta decoded
 * against its base loaded from s (which must exist there and be of the
 * record's kind). *ret is malloc'd; *ret_h its SHA-256. -EBADMSG (bad
 * delta), -ENOENT (base missing), -EINVAL (base of another kind); err says
 * which. */
int sync_xfer_resolve(struct sync_wdec *d, struct store *s, const struct sync_wrec *r,
		      void **ret, size_t *ret_len, struct store_hash *ret_h, char *err,
		      size_t errlen);
#endif
