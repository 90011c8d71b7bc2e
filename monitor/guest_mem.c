/* Guest RAM: a memfd of the whole RAM size, mapped once. Low RAM sits at
 * guest-physical 0, the rest above 4 GiB; this file owns that mapping and
 * the software dirty bitmap. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "monitor/guest_mem.h"

struct guest_mem {
	uint64_t size, low;     /* low = bytes of RAM below the hole */
	int fd;
	uint8_t *base;
	_Atomic uint64_t *dirty; /* one bit per page */
	uint64_t dirty_words;
};

int gmem_new(uint64_t size, struct guest_mem **ret)
{
	if (size < (1ULL << 20) || size % GMEM_PAGE || size > (1ULL << 46))
		return -EINVAL;
	struct guest_mem *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->size = size;
	m->low = size < GMEM_LOW_MAX ? size : GMEM_LOW_MAX;
	m->fd = memfd_create("roam-ram", MFD_CLOEXEC);
	if (m->fd < 0)
		goto err_errno;
	if (ftruncate(m->fd, (off_t)size) < 0)
		goto err_errno;
	m->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, m->fd, 0);
	if (m->base == MAP_FAILED) {
		m->base = NULL;
		goto err_errno;
	}
	madvise(m->base, size, MADV_HUGEPAGE);
	m->dirty_words = (size / GMEM_PAGE + 63) / 64;
	m->dirty = calloc(m->dirty_words, sizeof(uint64_t));
	if (!m->dirty) {
		errno = ENOMEM;
		goto err_errno;
	}
	*ret = m;
	return 0;
err_errno: {
	int e = errno;
	gmem_free(m);
	return -e;
	}
}

void gmem_free(struct guest_mem *m)
{
	if (!m)
		return;
	if (m->base)
		munmap(m->base, m->size);
	if (m->fd >= 0)
		close(m->fd);
	free((void *)m->dirty);
	free(m);
}

uint64_t gmem_size(const struct guest_mem *m) { return m->size; }
int gmem_fd(const struct guest_mem *m) { return m->fd; }
uint8_t *gmem_base(const struct guest_mem *m) { return m->base; }

uint64_t gmem_gpa_to_off(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	if (gpa + len < gpa)
		return (uint64_t)-1;
	if (gpa + len <= m->low)
		return gpa;
	if (gpa >= GMEM_HIGH_BASE && gpa - GMEM_HIGH_BASE + len <= m->size - m->low)
		return gpa - GMEM_HIGH_BASE + m->low;
	return (uint64_t)-1;
}

uint64_t gmem_off_to_gpa(const struct guest_mem *m, uint64_t off)
{
	return off < m->low ? off : off - m->low + GMEM_HIGH_BASE;
}

void *gmem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	uint64_t off = gmem_gpa_to_off(m, gpa, len);
	return off == (uint64_t)-1 ? NULL : m->base + off;
}

int gmem_read(const struct guest_mem *m, uint64_t gpa, void *buf, size_t len)
{
	void *p = gmem_ptr(m, gpa, len);
	if (!p)
		return -EFAULT;
	memcpy(buf, p, len);
	return 0;
}

int gmem_write(struct guest_mem *m, uint64_t gpa, const void *buf, size_t len)
{
	void *p = gmem_ptr(m, gpa, len);
	if (!p)
		return -EFAULT;
	memcpy(p, buf, len);
	gmem_mark_dirty(m, gpa, len);
	return 0;
}

void gmem_mark_dirty(struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	if (!len)
		return;
	uint64_t off = gmem_gpa_to_off(m, gpa, len);
	if (off == (uint64_t)-1)
		return;
	for (uint64_t pg = off / GMEM_PAGE; pg <= (off + len - 1) / GMEM_PAGE; pg++) {
		uint64_t bit = 1ULL << (pg % 64);
		if (!(atomic_load_explicit(&m->dirty[pg / 64], memory_order_relaxed) & bit))
			atomic_fetch_or(&m->dirty[pg / 64], bit);
	}
}

void gmem_take_dirty(struct guest_mem *m, uint64_t *bits)
{
	for (uint64_t i = 0; i < m->dirty_words; i++)
		bits[i] = atomic_exchange(&m->dirty[i], 0);
}

int gmem_regions(const struct guest_mem *m, struct gmem_region out[2])
{
	out[0] = (struct gmem_region){ 0, m->low };
	if (m->size == m->low)
		return 1;
	out[1] = (struct gmem_region){ GMEM_HIGH_BASE, m->size - m->low };
	return 2;
}
