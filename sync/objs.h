/* Object helpers for sync and bundles: decode + re-hash raw objects, list
 * the children of trees and commits, hash sets and hash lists. Private to
 * sync/. */
#ifndef ROAM_SYNC_OBJS_H
#define ROAM_SYNC_OBJS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "image/store.h"

/* Largest decoded object sync accepts (a tree node of 4096 children or a
 * 1 MiB chunk, with room to spare). */
#define SYNC_OBJ_MAX (2u << 20)

/* Decodes stored bytes (codec) into a malloc'd buffer of size bytes and
 * checks that they hash to h. -EBADMSG on any mismatch, -E2BIG over
 * SYNC_OBJ_MAX. */
int sync_obj_decode(const struct store_hash *h, enum store_codec codec, uint64_t size,
		    const void *stored, size_t stored_len, void **ret);

/* Whether the stored object h may be what VM ref name (one sync_ref_allowed
 * takes) names: a blob for vms/VM/lease, a commit for the others. 0, or
 * -EBADMSG with a line saying why in err, or another -errno (store error). */
int sync_ref_target_ok(struct store *s, const char *name, const struct store_hash *h, char *err,
		       size_t errlen);

/* A decoded tree node, read from its documented encoding (image/
 * store_int.h): level (0: the children are blobs), fanout, chunk size,
 * logical size and count children (hashes, zero for absent ones) at
 * children. -EBADMSG if it is not a tree node of at most 4096 children. */
struct sync_tree_node {
	unsigned level, fanout;
	uint32_t chunk_size, count;
	uint64_t size;
	const uint8_t *children;
};
int sync_obj_tree(const void *data, size_t len, struct sync_tree_node *ret);
/* Calls fn for each non-zero child of a decoded tree node or commit (kind
 * of the child as the parent says). Blobs and states have none. -EBADMSG if
 * the object is malformed. */
int sync_obj_children(enum store_kind kind, const void *data, size_t len,
		      int (*fn)(void *arg, const struct store_hash *h, enum store_kind kind),
		      void *arg);

struct sync_hset;
struct sync_hset *sync_hset_new(void);
void sync_hset_free(struct sync_hset *hs);
int sync_hset_add(struct sync_hset *hs, const struct store_hash *h);   /* 1 new, 0 had, -ENOMEM */
bool sync_hset_has(const struct sync_hset *hs, const struct store_hash *h);
size_t sync_hset_count(const struct sync_hset *hs);

/* A growable list of (hash, kind). */
struct sync_hent { struct store_hash h; enum store_kind kind; };
struct sync_hlist { struct sync_hent *v; size_t n, cap; };
int sync_hlist_push(struct sync_hlist *l, const struct store_hash *h, enum store_kind kind);
void sync_hlist_free(struct sync_hlist *l);

/* A growing array of refs (name and value). */
struct sync_ref { char name[STORE_REF_MAX + 1]; struct store_hash h; };
int sync_ref_add(struct sync_ref **v, size_t *n, const char *name, const struct store_hash *h);

/* All objects reachable from h (kind) in the store, into set (which may
 * already hold some: those are not descended into). */
int sync_reach(struct store *s, const struct store_hash *h, struct sync_hset *set);
/* 1 if commit anc is new or an ancestor of new (walking parents), 0 if
 * not, -errno. Commits missing locally end that branch of the walk. */
int sync_is_ancestor(struct store *s, const struct store_hash *anc, const struct store_hash *new);
#endif
