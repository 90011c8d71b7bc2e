/* State tests: save -> mutate -> restore -> save-again-and-compare for the
 * PCI host, virtio-blk and virtio-rng; refusal of bad records; pause and
 * resume around in-flight work. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "monitor/dev.h"
#include "monitor/dev/pci.h"
#include "monitor/dev/virtio.h"
#include "monitor/guest_mem.h"
#include "tests/unit/test.h"
#include "tests/unit/virtio/tests.h"

extern const uint8_t golden_blk_v1[];
extern const size_t golden_blk_v1_len;

static int save(struct dev *d, struct rec_writer *w)
{
	rec_writer_init(w);
	return d->type->save(d, w);
}

static int load(struct dev *d, const struct rec_writer *w, size_t len, uint32_t version)
{
	struct rec_reader r;
	rec_reader_init(&r, w->buf, len);
	return d->type->load(d, &r, version);
}

static bool same(const struct rec_writer *a, const struct rec_writer *b)
{
	return a->len == b->len && memcmp(a->buf, b->buf, a->len) == 0;
}

static void test_blk_save_restore(void)
{
	struct drv d;
	struct tvm *t = blk_ready(false, &d, F_INDIRECT);
	CHECK(t);
	if (!t)
		return;
	struct dev *dev = tvm_dev(t, "virtio-blk0");
	CHECK(dev);
	if (!dev) {
		blk_done(t);
		return;
	}
	CHECK_EQ(blk_rw(&d, 1, 0, DATA_GPA, 512), 0);
	CHECK_EQ(blk_rw(&d, 0, 0, DATA_GPA, 512), 0);
	/* Leave a pending MSI-X bit and an asserted field or two. */
	mmio_write(t, d.msix + 16 + 12, 1, 4);
	CHECK_EQ(blk_rw(&d, 0, 0, DATA_GPA, 512), 0);
	struct rec_writer w1, w2;
	CHECK_EQ(save(dev, &w1), 0);
	uint8_t rings[0x3000];
	gmem_read(t->vm.mem, QBASE, rings, sizeof(rings));
	uint16_t avail = d.avail_idx;

	/* Mutate: more requests, MSI-X table, selectors, a moved BAR. */
	CHECK_EQ(blk_rw(&d, 0, 0, DATA_GPA, 512), 0);
	mmio_write(t, d.msix + 8, 0x99, 4);
	mmio_write(t, d.msix + 16 + 12, 0, 4);
	drv_common_write(&d, 0x16, 3, 2);
	drv_common_write(&d, 0x00, 1, 4);
	uint32_t cmd = cfg_read(t, 1, PCI_COMMAND, 2);
	cfg_write(t, 1, PCI_COMMAND, 0, 2);
	cfg_write(t, 1, 0x20, 0xD0000000, 4);
	cfg_write(t, 1, PCI_COMMAND, cmd | PCI_CMD_INTX_OFF, 2);
	CHECK_EQ(mmio_read(t, d.bar4 + 0x12, 2), 0xFFFF);

	CHECK_EQ(load(dev, &w1, w1.len, 1), 0);
	CHECK_EQ(save(dev, &w2), 0);
	CHECK(same(&w1, &w2));
	/* Works after restore, with memory restored alongside. */
	gmem_write(t->vm.mem, QBASE, rings, sizeof(rings));
	d.avail_idx = avail;
	CHECK_EQ(drv_common_read(&d, 0x12, 2), 1);          /* BAR4 back */
	CHECK_EQ(drv_status(&d), 0xF);
	int n0 = t->nmsi;
	CHECK_EQ(blk_rw(&d, 0, 0, DATA_GPA, 512), 0);
	CHECK_EQ(drv_used_idx(&d), 4);
	mmio_write(t, d.msix + 16 + 12, 0, 4);              /* pending delivered */
	CHECK(t->nmsi > n0);
	rec_writer_free(&w2);

	/* Bad records: refused with -EINVAL, device left reset. */
	CHECK_EQ(load(dev, &w1, w1.len - 1, 1), -EINVAL);
	CHECK_EQ(drv_status(&d), 0);
	CHECK_EQ(load(dev, &w1, w1.len, 2), -EINVAL);
	struct rec_writer bad;
	rec_writer_init(&bad);
	rec_put_bytes(&bad, w1.buf, w1.len);
	bad.buf[0] ^= 1;                                    /* vendor id */
	CHECK_EQ(load(dev, &bad, bad.len, 1), -EINVAL);
	memcpy(bad.buf, w1.buf, w1.len);
	bad.buf[bad.len - 9] ^= 0x10;                       /* capacity */
	CHECK_EQ(load(dev, &bad, bad.len, 1), -EINVAL);
	memcpy(bad.buf, w1.buf, w1.len);
	bad.buf[PCI_CFG_SIZE + 1 + 32 + 4 + 1 + 8] |= 0x80;   /* foreign feature bit */
	CHECK_EQ(load(dev, &bad, bad.len, 1), -EINVAL);
	rec_writer_free(&bad);
	/* And the original record still loads. */
	CHECK_EQ(load(dev, &w1, w1.len, 1), 0);
	CHECK_EQ(drv_status(&d), 0xF);
	rec_writer_free(&w1);
	blk_done(t);
}

static void test_rng_and_host_save_restore(void)
{
	struct tvm *t = tvm_new();
	CHECK(t);
	if (!t)
		return;
	CHECK_EQ(virtio_rng_create(&t->vm), 0);
	struct drv d;
	CHECK_EQ(drv_probe(&d, t, 1), 0);
	drv_negotiate(&d, F_VERSION_1);
	drv_queue_setup(&d, 8, QBASE);
	drv_driver_ok(&d);
	drv_desc(&d, 0, DATA_GPA, 64, 2, 0);
	drv_submit(&d, 0);
	struct dev *rng = tvm_dev(t, "virtio-rng0"), *host = tvm_dev(t, "pci0");
	CHECK(rng && host);
	if (!rng || !host) {
		tvm_free(t);
		return;
	}
	struct rec_writer r1, r2, h1, h2;
	CHECK_EQ(save(rng, &r1), 0);
	cfg_read(t, 0, 0x04, 2);                    /* leave 0xCF8 pointing at 00:00.0 */
	CHECK_EQ(save(host, &h1), 0);
	drv_submit(&d, 0);
	drv_common_write(&d, 0x14, 0, 1);
	cfg_write(t, 0, PCI_COMMAND, 0, 2);
	cfg_read(t, 1, 0x3C, 1);
	CHECK_EQ(load(rng, &r1, r1.len, 1), 0);
	CHECK_EQ(load(host, &h1, h1.len, 1), 0);
	CHECK_EQ(save(rng, &r2), 0);
	CHECK_EQ(save(host, &h2), 0);
	CHECK(same(&r1, &r2));
	CHECK(same(&h1, &h2));
	CHECK_EQ(drv_status(&d), 0xF);
	CHECK_EQ(load(host, &h1, 3, 1), -EINVAL);
	rec_writer_free(&r1);
	rec_writer_free(&r2);
	rec_writer_free(&h1);
	rec_writer_free(&h2);
	tvm_free(t);
}

static void test_pause_resume(void)
{
	struct drv d;
	struct tvm *t = blk_ready(false, &d, 0);
	CHECK(t);
	if (!t)
		return;
	struct dev *dev = tvm_dev(t, "virtio-blk0");
	CHECK(dev && dev->type->pause && dev->type->resume);
	if (!dev) {
		blk_done(t);
		return;
	}
	/* Pause serves what was notified before it. */
	CHECK_EQ(blk_rw(&d, 0, 0, DATA_GPA, 512), 0);
	uint8_t *av = gmem_ptr(t->vm.mem, QBASE + 0x1000, 0x1000);
	uint16_t idx = ++d.avail_idx;
	memset(av + 4 + 2 * ((idx - 1) % 16), 0, 2);
	__atomic_store_n((uint16_t *)(av + 2), idx, __ATOMIC_RELEASE);
	mmio_write(t, d.bar4 + 0x3000, 0, 2);
	dev->type->pause(dev);
	CHECK_EQ(drv_used_idx(&d), 2);
	CHECK_EQ(blk_rw(&d, 0, 0, DATA_GPA, 512), 0xFF);    /* held */
	CHECK_EQ(drv_used_idx(&d), 2);
	/* The held kick survives a save/load while paused. */
	struct rec_writer w;
	CHECK_EQ(save(dev, &w), 0);
	CHECK_EQ(load(dev, &w, w.len, 1), 0);
	rec_writer_free(&w);
	CHECK_EQ(drv_used_idx(&d), 2);                      /* load starts nothing */
	dev->type->resume(dev);
	tvm_drain(t);
	CHECK_EQ(drv_used_idx(&d), 3);
	blk_done(t);
}

/* The version-1 virtio-blk record of a fixed device state (golden.c).
 * Today's save must produce it byte for byte, and every later version must
 * still load it. ROAM_PRINT_GOLDEN=1 prints the current record instead. */
static void test_blk_golden_v1(void)
{
	struct drv d;
	struct tvm *t = blk_ready(false, &d, F_INDIRECT);
	CHECK(t);
	if (!t)
		return;
	struct dev *dev = tvm_dev(t, "virtio-blk0");
	CHECK_EQ(blk_rw(&d, 1, 0, DATA_GPA, 512), 0);
	mmio_write(t, d.msix + 16 + 12, 1, 4);
	CHECK_EQ(blk_rw(&d, 0, 0, DATA_GPA, 512), 0);
	struct rec_writer w;
	CHECK_EQ(save(dev, &w), 0);
	if (getenv("ROAM_PRINT_GOLDEN")) {
		for (size_t i = 0; i < w.len; i++)
			printf("0x%02x,%s", w.buf[i], i % 12 == 11 ? "\n" : " ");
		printf("\n");
	}
	CHECK_EQ(w.len, golden_blk_v1_len);
	size_t diff = 0;
	while (diff < w.len && diff < golden_blk_v1_len && w.buf[diff] == golden_blk_v1[diff])
		diff++;
	if (diff != w.len) {
		printf("  record differs from golden_blk_v1 at byte %zu\n", diff);
		CHECK(0);
	}
	rec_writer_free(&w);
	drv_common_write(&d, 0x14, 0, 1);
	struct rec_writer g = { .buf = (uint8_t *)golden_blk_v1, .len = golden_blk_v1_len };
	CHECK_EQ(load(dev, &g, g.len, 1), 0);
	CHECK_EQ(drv_status(&d), 0xF);
	CHECK_EQ(mmio_read(t, d.msix + PCI_MSIX_PBA_OFF, 4), 2);
	blk_done(t);
}

struct pauser {
	struct dev *dev;
	_Atomic int stop;
	_Atomic int rounds;
};

static void *pauser_main(void *arg)
{
	struct pauser *p = arg;
	while (!atomic_load(&p->stop)) {
		p->dev->type->pause(p->dev);
		struct rec_writer w;
		if (save(p->dev, &w) == 0)
			atomic_fetch_add(&p->rounds, 1);
		rec_writer_free(&w);
		p->dev->type->resume(p->dev);
	}
	return NULL;
}

/* Requests keep completing while another thread pauses, saves and resumes
 * the device in a loop (no deadlock, no lost kick). */
static void test_pause_during_io(void)
{
	struct drv d;
	struct tvm *t = blk_ready(false, &d, 0);
	CHECK(t);
	if (!t)
		return;
	struct pauser p = { .dev = tvm_dev(t, "virtio-blk0") };
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, pauser_main, &p), 0);
	int done = 0, i;
	/* At least 200 requests, and go on until the pauser has run a few
	 * rounds (bounded: 20000 requests). */
	for (i = 0; i < 20000 && (i < 200 || atomic_load(&p.rounds) < 5); i++) {
		uint16_t before = drv_used_idx(&d);
		blk_rw(&d, i & 1, (uint64_t)i, DATA_GPA, 512);
		for (int spin = 0; spin < 100000 && drv_used_idx(&d) == before; spin++) {
			tvm_drain(t);
			sched_yield();
		}
		done += drv_used_idx(&d) == (uint16_t)(before + 1);
	}
	atomic_store(&p.stop, 1);
	pthread_join(th, NULL);
	CHECK_EQ(done, i);
	CHECK(atomic_load(&p.rounds) >= 5);
	CHECK_EQ(drv_status(&d), 0xF);
	blk_done(t);
}

/* Records of states a driver can reach mid-setup load back (found by
 * virtio_dev_fuzz): feature bits not offered before FEATURES_OK, a disabled
 * queue with an oversized size, unused status bits written. */
static void test_midsetup_round_trip(void)
{
	struct drv d;
	struct tvm *t = blk_vm(false, &d);
	CHECK(t);
	if (!t)
		return;
	struct dev *dev = tvm_dev(t, "virtio-blk0");
	drv_common_write(&d, 0x14, 0x33, 1);
	CHECK_EQ(drv_status(&d), 0x03);
	drv_common_write(&d, 0x08, 0, 4);
	drv_common_write(&d, 0x0C, 0xFFFFFFFF, 4);
	drv_common_write(&d, 0x16, 0, 2);
	drv_common_write(&d, 0x18, 0xFFFF, 2);
	struct rec_writer w1, w2;
	CHECK_EQ(save(dev, &w1), 0);
	CHECK_EQ(load(dev, &w1, w1.len, 1), 0);
	CHECK_EQ(save(dev, &w2), 0);
	CHECK(same(&w1, &w2));
	/* Enabling that queue is refused. */
	drv_common_write(&d, 0x1C, 1, 2);
	CHECK(drv_status(&d) & 0x40);
	rec_writer_free(&w1);
	rec_writer_free(&w2);
	blk_done(t);
}

int run_state_tests(void)
{
	TEST(test_blk_golden_v1);
	TEST(test_blk_save_restore);
	TEST(test_rng_and_host_save_restore);
	TEST(test_pause_resume);
	TEST(test_midsetup_round_trip);
	TEST(test_pause_during_io);
	return test_failures;
}
