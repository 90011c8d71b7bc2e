/* Commit objects: one suspend or checkpoint of a VM, or any named set of
 * roots. A commit names its parents, when and where it was made, a message,
 * and named roots ("config" -> a blob of JSON, "state" -> a state object,
 * "memory" -> a tree, "disk0" -> a tree, ...). Encoding: image/store_int.h. */
#ifndef ROAM_IMAGE_COMMIT_H
#define ROAM_IMAGE_COMMIT_H
#include <stddef.h>
#include <stdint.h>
#include "image/store.h"

#define STORE_COMMIT_MAX_PARENTS 16
#define STORE_COMMIT_MAX_ROOTS 64
#define STORE_COMMIT_MAX_NAME 64        /* root name bytes, [A-Za-z0-9._-] */
#define STORE_COMMIT_MAX_HOST 255
#define STORE_COMMIT_MAX_MESSAGE 65536

struct store_commit_root {
	char name[STORE_COMMIT_MAX_NAME + 1];
	enum store_kind kind;             /* STORE_BLOB, STORE_TREE or STORE_STATE */
	struct store_hash hash;
};

/* Callers fill this themselves for encoding (any root order; encode sorts a
 * copy); store_commit_decode allocates it with every pointer owned. */
struct store_commit {
	size_t n_parents;
	struct store_hash parents[STORE_COMMIT_MAX_PARENTS];
	int64_t time;                     /* unix seconds */
	char *host;                       /* may be NULL: "" */
	char *message;                    /* may be NULL: "" */
	size_t n_roots;
	struct store_commit_root roots[STORE_COMMIT_MAX_ROOTS];
};

/* Encodes c; *ret is malloc'd. -EINVAL if a field is out of range (bad root
 * name, duplicate root names, too many parents...). */
int store_commit_encode(const struct store_commit *c, void **ret, size_t *ret_len);
/* Decodes and validates; -EINVAL on anything malformed. */
int store_commit_decode(const void *data, size_t len, struct store_commit **ret);
void store_commit_free(struct store_commit *c);   /* for decoded commits */
/* Adds a root; -EINVAL (bad name, kind), -EEXIST, -E2BIG (too many). */
int store_commit_add_root(struct store_commit *c, const char *name, enum store_kind kind,
			  const struct store_hash *h);
/* The root called name, or NULL. */
const struct store_commit_root *store_commit_root(const struct store_commit *c,
						  const char *name);
/* Encode + store_put (which checks that parents and roots exist). */
int store_commit_put(struct store *s, const struct store_commit *c, struct store_hash *ret);
/* store_get + decode; -EINVAL if the object is not a commit. */
int store_commit_get(struct store *s, const struct store_hash *h, struct store_commit **ret);
#endif
