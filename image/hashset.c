/* A set of object hashes (open addressing, linear probing): the mark set of
 * gc and the visited sets of verify and du. Hashes are uniform already, so
 * their first bytes index the table. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "image/store_int.h"

struct hashset {
	struct store_hash *slots;
	uint8_t *used;
	size_t cap, count;     /* cap is a power of two */
};

struct hashset *hashset_new(void)
{
	struct hashset *hs = calloc(1, sizeof(*hs));
	if (!hs)
		return NULL;
	hs->cap = 1024;
	hs->slots = malloc(hs->cap * sizeof(*hs->slots));
	hs->used = calloc(hs->cap, 1);
	if (!hs->slots || !hs->used) {
		hashset_free(hs);
		return NULL;
	}
	return hs;
}

void hashset_free(struct hashset *hs)
{
	if (!hs)
		return;
	free(hs->slots);
	free(hs->used);
	free(hs);
}

static size_t slot_of(const struct hashset *hs, const struct store_hash *h)
{
	uint64_t v;
	memcpy(&v, h->b, sizeof(v));
	return (size_t)v & (hs->cap - 1);
}

static bool find(const struct hashset *hs, const struct store_hash *h, size_t *ret)
{
	size_t i = slot_of(hs, h);
	while (hs->used[i]) {
		if (store_hash_eq(&hs->slots[i], h)) {
			*ret = i;
			return true;
		}
		i = (i + 1) & (hs->cap - 1);
	}
	*ret = i;
	return false;
}

static int grow(struct hashset *hs)
{
	struct hashset n = { .cap = hs->cap * 2 };
	n.slots = malloc(n.cap * sizeof(*n.slots));
	n.used = calloc(n.cap, 1);
	if (!n.slots || !n.used) {
		free(n.slots);
		free(n.used);
		return -ENOMEM;
	}
	for (size_t i = 0; i < hs->cap; i++) {
		if (!hs->used[i])
			continue;
		size_t j;
		find(&n, &hs->slots[i], &j);
		n.slots[j] = hs->slots[i];
		n.used[j] = 1;
	}
	free(hs->slots);
	free(hs->used);
	hs->slots = n.slots;
	hs->used = n.used;
	hs->cap = n.cap;
	return 0;
}

int hashset_add(struct hashset *hs, const struct store_hash *h)
{
	size_t i;
	if (find(hs, h, &i))
		return 0;
	if ((hs->count + 1) * 4 > hs->cap * 3) {
		if (grow(hs))
			return -ENOMEM;
		find(hs, h, &i);
	}
	hs->slots[i] = *h;
	hs->used[i] = 1;
	hs->count++;
	return 1;
}

bool hashset_has(const struct hashset *hs, const struct store_hash *h)
{
	size_t i;
	return find(hs, h, &i);
}

size_t hashset_count(const struct hashset *hs)
{
	return hs->count;
}
