/* Hostile-guest tests: malformed rings, descriptors and register writes put
 * the device into DEVICE_NEEDS_RESET with a config interrupt, stop the
 * queue, and never touch memory outside guest RAM (run under SANITIZE=1);
 * a device reset brings it back. */
#include <string.h>
#include "monitor/guest_mem.h"
#include "tests/unit/test.h"
#include "tests/unit/virtio/tests.h"

#define HDR   0x100000ULL
#define STAT  0x100100ULL
#define ITBL  0x300000ULL

struct idesc { uint64_t a; uint32_t l; uint16_t f, n; };

static void put_itbl(struct tvm *t, const struct idesc *tbl, size_t n)
{
	gmem_write(t->vm.mem, ITBL, tbl, n * sizeof(*tbl));
}

/* A well-framed read request whose data descriptor is (addr, len). */
static void bad_data(struct drv *d, uint64_t addr, uint32_t len)
{
	uint8_t hdr[16] = { 0 };
	gmem_write(d->t->vm.mem, HDR, hdr, sizeof(hdr));
	drv_desc(d, 0, HDR, 16, 1, 1);
	drv_desc(d, 1, addr, len, 3, 2);
	drv_desc(d, 2, STAT, 1, 2, 0);
}

/* Builds malformed request number c on queue 0 and submits it (or breaks
 * the device some other way). Returns 0 if the case does not exist. */
static int hostile_case(int c, struct drv *d)
{
	struct tvm *t = d->t;
	uint8_t *av = gmem_ptr(t->vm.mem, QBASE + 0x1000, 0x1000);
	uint16_t v;
	switch (c) {
	case 0:         /* data descriptor far outside RAM */
		bad_data(d, 0xFFFF000000000ULL, 512);
		break;
	case 1:         /* data descriptor straddling the end of RAM */
		bad_data(d, T_RAM - 256, 512);
		break;
	case 2:         /* huge length */
		bad_data(d, 0, 0xFFFFFE00u);
		break;
	case 3:         /* two-descriptor loop */
		drv_desc(d, 0, HDR, 16, 1, 1);
		drv_desc(d, 1, STAT, 1, 1 | 2, 0);
		break;
	case 4:         /* self loop */
		drv_desc(d, 0, HDR, 16, 1, 0);
		break;
	case 5:         /* next index past the table */
		drv_desc(d, 0, HDR, 16, 1, 999);
		break;
	case 6:         /* avail idx jumps by more than the queue size */
		drv_desc(d, 0, HDR, 16, 1, 1);          /* a valid read request */
		drv_desc(d, 1, DATA_GPA, 512, 3, 2);
		drv_desc(d, 2, STAT, 1, 2, 0);
		v = 100;
		memcpy(av + 2, &v, 2);
		mmio_write(t, d->bar4 + 0x3000, 0, 2);
		return 1;
	case 7:         /* head index out of range */
		v = 40;
		memcpy(av + 4, &v, 2);
		v = 1;
		memcpy(av + 2, &v, 2);
		mmio_write(t, d->bar4 + 0x3000, 0, 2);
		return 1;
	case 8:         /* indirect table outside RAM */
		drv_desc(d, 0, 0xFFFFFFFFFFFFF000ULL, 64, 4, 0);
		break;
	case 9:         /* indirect length not a multiple of 16 */
		drv_desc(d, 0, ITBL, 20, 4, 0);
		break;
	case 10: {      /* nested indirect */
		struct idesc tbl[1] = { { ITBL, 16, 4, 0 } };
		put_itbl(t, tbl, 1);
		drv_desc(d, 0, ITBL, 16, 4, 0);
		break;
	}
	case 11: {      /* loop inside an indirect table */
		struct idesc tbl[2] = { { HDR, 16, 1, 1 }, { STAT, 1, 3, 0 } };
		put_itbl(t, tbl, 2);
		drv_desc(d, 0, ITBL, 32, 4, 0);
		break;
	}
	case 12: {      /* indirect next past its table */
		struct idesc tbl[2] = { { HDR, 16, 1, 1 }, { STAT, 1, 3, 2 } };
		put_itbl(t, tbl, 2);
		drv_desc(d, 0, ITBL, 32, 4, 0);
		break;
	}
	case 13:        /* INDIRECT together with NEXT */
		drv_desc(d, 0, ITBL, 32, 4 | 1, 1);
		drv_desc(d, 1, STAT, 1, 2, 0);
		break;
	case 14:        /* indirect table larger than any queue */
		drv_desc(d, 0, ITBL, 16 * 2048, 4, 0);
		break;
	case 15:        /* indirect after a direct descriptor */
		drv_desc(d, 0, HDR, 16, 1, 1);
		drv_desc(d, 1, ITBL, 32, 4, 0);
		break;
	case 16:        /* readable after writable */
		drv_desc(d, 0, HDR, 16, 1 | 2, 1);
		drv_desc(d, 1, STAT, 1, 0, 0);
		break;
	case 17:        /* virtio-blk framing: no status byte */
		drv_desc(d, 0, HDR, 16, 0, 0);
		break;
	case 18:        /* virtio-blk framing: header too short */
		drv_desc(d, 0, HDR, 8, 1, 1);
		drv_desc(d, 1, STAT, 1, 2, 0);
		break;
	case 19:        /* a chain longer than the queue via 16 NEXT hops */
		for (uint16_t i = 0; i < 16; i++)
			drv_desc(d, i, HDR, 16, 1, (uint16_t)((i + 1) % 16));
		break;
	case 20:        /* indirect chain with a descriptor outside RAM */
		{
			struct idesc tbl[2] = { { HDR, 16, 1, 1 }, { 1ULL << 50, 512, 3, 0 } };
			put_itbl(t, tbl, 2);
			drv_desc(d, 0, ITBL, 32, 4, 0);
		}
		break;
	default:
		return 0;
	}
	drv_submit(d, 0);
	return 1;
}

static void test_hostile_rings(void)
{
	for (int c = 0;; c++) {
		struct drv d;
		struct tvm *t = blk_ready(false, &d, F_INDIRECT);
		CHECK(t);
		if (!t)
			return;
		int n0 = t->nmsi;
		uint16_t used0 = drv_used_idx(&d);
		if (!hostile_case(c, &d)) {
			blk_done(t);
			break;
		}
		tvm_drain(t);
		uint8_t st = drv_status(&d);
		if (!(st & 0x40) || t->nmsi != n0 + 1 || t->msi_data[n0] != 0x40 ||
		    drv_used_idx(&d) != used0) {
			printf("  hostile case %d: status %#x, msi %d -> %d (data %#x), used %u\n",
			       c, st, n0, t->nmsi, t->msi_data[n0], drv_used_idx(&d));
			CHECK(0);
		}
		/* The queue stays stopped: a good request is not served. */
		CHECK_EQ(blk_rw(&d, 0, 0, DATA_GPA, 512), 0xFF);
		/* Reset and set up again: works. */
		CHECK_EQ(drv_negotiate(&d, F_VERSION_1 | F_INDIRECT), 0xB);
		drv_common_write(&d, 0x10, 0, 2);
		drv_common_write(&d, 0x1A, 1, 2);
		drv_queue_setup(&d, 16, QBASE);
		drv_driver_ok(&d);
		CHECK_EQ(drv_status(&d), 0xF);
		CHECK_EQ(blk_rw(&d, 0, 0, DATA_GPA, 512), 0);
		blk_done(t);
	}
}

static void test_indirect_not_negotiated(void)
{
	struct drv d;
	struct tvm *t = blk_ready(false, &d, 0);
	CHECK(t);
	if (!t)
		return;
	struct idesc tbl[3] = { { HDR, 16, 1, 1 }, { DATA_GPA, 512, 3, 2 }, { STAT, 1, 2, 0 } };
	put_itbl(t, tbl, 3);
	drv_desc(&d, 0, ITBL, sizeof(tbl), 4, 0);
	drv_submit(&d, 0);
	CHECK(drv_status(&d) & 0x40);
	blk_done(t);
}

static void test_bad_queue_setup(void)
{
	static const struct { uint16_t size; uint64_t desc, avail, used; } bad[] = {
		{ 16, 0xFFFFFFFF0000ULL, QBASE + 0x1000, QBASE + 0x2000 },
		{ 16, QBASE, T_RAM - 2, QBASE + 0x2000 },
		{ 16, QBASE, QBASE + 0x1000, T_RAM - 64 },
		{ 12, QBASE, QBASE + 0x1000, QBASE + 0x2000 },   /* not a power of 2 */
		{ 512, QBASE, QBASE + 0x1000, QBASE + 0x2000 },  /* above the maximum */
		{ 0, QBASE, QBASE + 0x1000, QBASE + 0x2000 },
		{ 16, QBASE + 8, QBASE + 0x1000, QBASE + 0x2000 }, /* misaligned */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct drv d;
		struct tvm *t = blk_vm(false, &d);
		CHECK(t);
		if (!t)
			return;
		drv_negotiate(&d, F_VERSION_1);
		drv_common_write(&d, 0x16, 0, 2);
		drv_common_write(&d, 0x18, bad[i].size, 2);
		drv_common_write(&d, 0x20, (uint32_t)bad[i].desc, 4);
		drv_common_write(&d, 0x24, (uint32_t)(bad[i].desc >> 32), 4);
		drv_common_write(&d, 0x28, (uint32_t)bad[i].avail, 4);
		drv_common_write(&d, 0x30, (uint32_t)bad[i].used, 4);
		drv_common_write(&d, 0x1C, 1, 2);
		if (drv_common_read(&d, 0x1C, 2) != 0 || !(drv_status(&d) & 0x40)) {
			printf("  bad queue setup %zu accepted\n", i);
			CHECK(0);
		}
		blk_done(t);
	}
}

/* Deterministic garbage on every register window; nothing may crash. */
static void test_register_garbage(void)
{
	struct drv d;
	struct tvm *t = blk_ready(false, &d, F_INDIRECT | F_EVENT_IDX);
	CHECK(t);
	if (!t)
		return;
	uint64_t x = 0x9E3779B97F4A7C15ULL;
	uint64_t bar4 = d.bar4, msix = d.msix;
	for (int i = 0; i < 20000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		static const unsigned lens[] = { 1, 2, 4, 8 };
		unsigned len = lens[x & 3];
		uint64_t val = x * 0x2545F4914F6CDD1DULL;
		switch ((x >> 2) % 5) {
		case 0:
			mmio_write(t, bar4 + ((x >> 8) % 0x4000 & ~(uint64_t)(len - 1)), val, len);
			break;
		case 1:
			mmio_read(t, bar4 + ((x >> 8) % 0x4000 & ~(uint64_t)(len - 1)), len);
			break;
		case 2:
			mmio_write(t, msix + ((x >> 8) % 0x1000 & ~(uint64_t)(len - 1)), val, len);
			break;
		case 3:
			if (len <= 4) {
				unsigned reg = (unsigned)(x >> 8) & 0xFF & ~(len - 1);
				/* Leave the BARs and command alone so the loop keeps
				 * reaching the device. */
				if (reg >= 0x10 && reg < 0x28)
					break;
				if (reg == 4 || reg == 5)
					break;
				cfg_write(t, (unsigned)(x >> 20) % 3, reg, (uint32_t)val, len);
			}
			break;
		case 4:
			/* Scribble on the rings and kick the queue. */
			gmem_write(t->vm.mem, QBASE + ((x >> 8) % 0x3000), &val, 8);
			mmio_write(t, bar4 + 0x3000, 0, 2);
			break;
		}
	}
	tvm_drain(t);
	/* Still answers. */
	CHECK_EQ(cfg_read(t, 1, 0, 2), 0x1AF4);
	blk_done(t);
}

int run_hostile_tests(void)
{
	TEST(test_hostile_rings);
	TEST(test_indirect_not_negotiated);
	TEST(test_bad_queue_setup);
	TEST(test_register_garbage);
	return test_failures;
}
