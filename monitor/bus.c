/* The PIO/MMIO bus: a sorted array of non-overlapping ranges searched by
 * binary search under a read lock; registration takes the write lock. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "monitor/bus.h"

struct bus_range {
	uint64_t base, len;
	const struct bus_ops *ops;
	void *opaque;
};

struct bus {
	uint64_t space;         /* 0: the full 64-bit space */
	pthread_rwlock_t lock;
	struct bus_range *r;
	size_t n, cap;
};

int bus_new(uint64_t space_size, struct bus **ret)
{
	struct bus *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->space = space_size;
	int rc = pthread_rwlock_init(&b->lock, NULL);
	if (rc) {
		free(b);
		return -rc;
	}
	*ret = b;
	return 0;
}

void bus_free(struct bus *b)
{
	if (!b)
		return;
	pthread_rwlock_destroy(&b->lock);
	free(b->r);
	free(b);
}

/* Index of the first range with base > addr. */
static size_t upper(const struct bus *b, uint64_t addr)
{
	size_t lo = 0, hi = b->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (b->r[mid].base > addr)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

int bus_register(struct bus *b, uint64_t base, uint64_t len,
		 const struct bus_ops *ops, void *opaque)
{
	if (!len || base + len - 1 < base || (b->space && base + len > b->space) || !ops)
		return -EINVAL;
	pthread_rwlock_wrlock(&b->lock);
	size_t i = upper(b, base);
	int rc = 0;
	if ((i > 0 && b->r[i - 1].base + b->r[i - 1].len - 1 >= base) ||
	    (i < b->n && b->r[i].base <= base + len - 1)) {
		rc = -EEXIST;
		goto out;
	}
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		struct bus_range *r = realloc(b->r, cap * sizeof(*r));
		if (!r) {
			rc = -ENOMEM;
			goto out;
		}
		b->r = r;
		b->cap = cap;
	}
	memmove(&b->r[i + 1], &b->r[i], (b->n - i) * sizeof(*b->r));
	b->r[i] = (struct bus_range){ base, len, ops, opaque };
	b->n++;
out:
	pthread_rwlock_unlock(&b->lock);
	return rc;
}

int bus_unregister(struct bus *b, uint64_t base)
{
	pthread_rwlock_wrlock(&b->lock);
	size_t i = upper(b, base);
	int rc = -ENOENT;
	if (i > 0 && b->r[i - 1].base == base) {
		memmove(&b->r[i - 1], &b->r[i], (b->n - i) * sizeof(*b->r));
		b->n--;
		rc = 0;
	}
	pthread_rwlock_unlock(&b->lock);
	return rc;
}

static const struct bus_range *find(const struct bus *b, uint64_t addr, unsigned len)
{
	size_t i = upper(b, addr);
	if (i == 0)
		return NULL;
	const struct bus_range *r = &b->r[i - 1];
	if (addr - r->base + len > r->len)
		return NULL;
	return r;
}

int bus_read(struct bus *b, uint64_t addr, void *data, unsigned len)
{
	pthread_rwlock_rdlock(&b->lock);
	const struct bus_range *r = find(b, addr, len);
	if (!r) {
		pthread_rwlock_unlock(&b->lock);
		memset(data, 0xff, len);
		return -ENOENT;
	}
	const struct bus_ops *ops = r->ops;
	void *opaque = r->opaque;
	uint64_t off = addr - r->base;
	memset(data, 0xff, len);
	if (ops->read)
		ops->read(opaque, off, data, len);
	pthread_rwlock_unlock(&b->lock);
	return 0;
}

int bus_write(struct bus *b, uint64_t addr, const void *data, unsigned len)
{
	pthread_rwlock_rdlock(&b->lock);
	const struct bus_range *r = find(b, addr, len);
	if (!r) {
		pthread_rwlock_unlock(&b->lock);
		return -ENOENT;
	}
	if (r->ops->write)
		r->ops->write(r->opaque, addr - r->base, data, len);
	pthread_rwlock_unlock(&b->lock);
	return 0;
}
