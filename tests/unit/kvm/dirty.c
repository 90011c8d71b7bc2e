/* Merging per-slot KVM dirty bitmaps into the RAM-offset bitmap. */
#include <stdlib.h>
#include <string.h>
#include "monitor/guest_mem.h"
#include "monitor/kvm/kvm_int.h"
#include "tests/unit/test.h"
#include "tests/unit/kvm/kvm_tests.h"

static int bit(const uint64_t *b, uint64_t i) { return (int)((b[i / 64] >> (i % 64)) & 1); }

static void dirty_merge_aligned(void)
{
	uint64_t dst[4] = { 0x1, 0, 0, 0 };
	uint64_t src[2] = { 0x8000000000000002ULL, 0x5 };
	kvm_dirty_merge(dst, 64, src, 128);
	CHECK_EQ(dst[0], 0x1);                      /* kept, ORed not overwritten */
	CHECK_EQ(dst[1], 0x8000000000000002ULL);
	CHECK_EQ(dst[2], 0x5);
	CHECK_EQ(dst[3], 0);
}

static void dirty_merge_unaligned_and_tail(void)
{
	/* A 70-page slot at page 5: bits past page 70 of the source (KVM
	 * bitmap padding) must not leak; bit 63 crosses into the next word. */
	uint64_t dst[3] = { 0 };
	uint64_t src[2] = { (1ULL << 0) | (1ULL << 63), (1ULL << 5) | (1ULL << 6) | ~0ULL << 7 };
	kvm_dirty_merge(dst, 5, src, 70);
	CHECK_EQ(bit(dst, 5), 1);
	CHECK_EQ(bit(dst, 68), 1);
	CHECK_EQ(bit(dst, 5 + 64 + 5), 1);
	CHECK_EQ(bit(dst, 5 + 64 + 6), 0);           /* page 70 of a 70-page slot: absent */
	int total = 0;
	for (uint64_t i = 0; i < 192; i++)
		total += bit(dst, i);
	CHECK_EQ(total, 3);
	CHECK_EQ(dst[2], 0);
}

static void dirty_merge_high_slot(void)
{
	/* 3 GiB + 8 MiB of RAM: slot 1 (GPA 4 GiB) covers RAM offsets from
	 * 3 GiB. Its page 0 and last page land at RAM pages 786432 and
	 * 786432 + 2047; nothing is written past the bitmap. */
	uint64_t ram_pages = (GMEM_LOW_MAX + (8ULL << 20)) / GMEM_PAGE;
	uint64_t words = (ram_pages + 63) / 64;
	uint64_t *dst = calloc(words, sizeof(uint64_t));
	uint64_t src[2048 / 64];
	CHECK(dst != NULL);
	if (!dst)
		return;
	memset(src, 0, sizeof(src));
	src[0] = 1;
	src[2048 / 64 - 1] = 1ULL << 63;
	kvm_dirty_merge(dst, GMEM_LOW_MAX / GMEM_PAGE, src, 2048);
	CHECK_EQ(bit(dst, 786432), 1);
	CHECK_EQ(bit(dst, 786432 + 2047), 1);
	CHECK_EQ(bit(dst, 786431), 0);
	int total = 0;
	for (uint64_t i = 0; i < words; i++)
		total += __builtin_popcountll(dst[i]);
	CHECK_EQ(total, 2);
	free(dst);
}

static void dirty_merge_unaligned_end_of_bitmap(void)
{
	/* Slot of 60 pages at page 4 ends exactly at the bitmap's end (64
	 * pages, one word): the last page's bit lands in word 0 only. */
	uint64_t *dst = calloc(1, sizeof(uint64_t));
	uint64_t src[1] = { 1ULL << 59 };
	CHECK(dst != NULL);
	if (!dst)
		return;
	kvm_dirty_merge(dst, 4, src, 60);
	CHECK_EQ(dst[0], 1ULL << 63);
	free(dst);
}

int kvm_dirty_tests(void)
{
	TEST(dirty_merge_aligned);
	TEST(dirty_merge_unaligned_and_tail);
	TEST(dirty_merge_high_slot);
	TEST(dirty_merge_unaligned_end_of_bitmap);
	return test_failures;
}
