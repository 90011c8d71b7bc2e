/* KVM memory slots and dirty logging: one slot per RAM region (low RAM at
 * GPA 0, the rest at 4 GiB), re-registered with KVM_MEM_LOG_DIRTY_PAGES
 * when logging starts; KVM_GET_DIRTY_LOG per slot, merged into the
 * RAM-offset bitmap the engine interface speaks, and KVM_CLEAR_DIRTY_LOG
 * when manual dirty-log protection is on. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include "monitor/guest_mem.h"
#include "monitor/kvm/kvm_int.h"

void kvm_dirty_merge(uint64_t *dst, uint64_t first_page, const uint64_t *src, uint64_t npages)
{
	unsigned shift = (unsigned)(first_page % 64);
	uint64_t base = first_page / 64;
	uint64_t words = (npages + 63) / 64;

	for (uint64_t w = 0; w < words; w++) {
		uint64_t v = src[w];
		if (w == words - 1 && npages % 64)
			v &= (1ULL << (npages % 64)) - 1;   /* bits past the slot */
		if (!v)
			continue;
		dst[base + w] |= v << shift;
		/* Only touches the next word when bits land there, so a slot
		 * ending at the bitmap's last word never writes past it. */
		if (shift && v >> (64 - shift))
			dst[base + w + 1] |= v >> (64 - shift);
	}
}

int kvm_set_slots(struct kvm_engine *k, bool log_dirty)
{
	for (int i = 0; i < k->nslots; i++) {
		struct kvm_slot *s = &k->slots[i];
		struct kvm_userspace_memory_region r = {
			.slot = s->slot,
			.flags = log_dirty ? KVM_MEM_LOG_DIRTY_PAGES : 0,
			.guest_phys_addr = s->gpa,
			.memory_size = s->size,
			.userspace_addr = (uint64_t)(uintptr_t)(gmem_base(k->vm->mem) + s->ram_off),
		};
		int ret = kvm_ioctl(k->vm_fd, KVM_SET_USER_MEMORY_REGION, &r);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int kvm_dirty_log_start(struct engine *e)
{
	struct kvm_engine *k = kvm_of(e);
	if (k->dirty_logging)
		return 0;
	for (int i = 0; i < k->nslots; i++) {
		struct kvm_slot *s = &k->slots[i];
		uint64_t words = (s->size / GMEM_PAGE + 63) / 64;
		if (!s->bitmap && !(s->bitmap = calloc(words, sizeof(uint64_t))))
			return -ENOMEM;
	}
	int r = kvm_set_slots(k, true);
	if (r < 0)
		return r;
	k->dirty_logging = true;
	return 0;
}

int kvm_dirty_log(struct engine *e, uint64_t *bits)
{
	struct kvm_engine *k = kvm_of(e);
	if (!k->dirty_logging)
		return -EINVAL;
	for (int i = 0; i < k->nslots; i++) {
		struct kvm_slot *s = &k->slots[i];
		uint64_t npages = s->size / GMEM_PAGE;
		uint64_t words = (npages + 63) / 64;
		memset(s->bitmap, 0, words * sizeof(uint64_t));
		struct kvm_dirty_log dl = { .slot = s->slot, .dirty_bitmap = s->bitmap };
		int r = kvm_ioctl(k->vm_fd, KVM_GET_DIRTY_LOG, &dl);
		if (r < 0)
			return r;
		if (k->manual_protect) {
			/* Re-protects exactly the pages reported; a write after
			 * this is logged again. Chunks are multiples of 64 pages
			 * except the last, which ends at the slot end. */
			for (uint64_t first = 0; first < npages; first += 1ULL << 30) {
				uint64_t num = npages - first < (1ULL << 30) ? npages - first : 1ULL << 30;
				struct kvm_clear_dirty_log cl = {
					.slot = s->slot, .first_page = first,
					.num_pages = (uint32_t)num,
					.dirty_bitmap = s->bitmap + first / 64,
				};
				r = kvm_ioctl(k->vm_fd, KVM_CLEAR_DIRTY_LOG, &cl);
				if (r < 0)
					return r;
			}
		}
		kvm_dirty_merge(bits, s->ram_off / GMEM_PAGE, s->bitmap, npages);
	}
	return 0;
}
