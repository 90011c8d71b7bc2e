/* Unit tests for the PCI host bridge, virtio-pci transport, virtqueues,
 * virtio-blk, virtio-rng and the raw block backend, driven as a guest driver
 * would: config cycles on 0xCF8/0xCFC, MMIO on the BARs, rings in RAM. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "monitor/dev.h"
#include "monitor/dev/blockdev.h"
#include "monitor/bus.h"
#include "monitor/dev/pci.h"
#include "monitor/dev/virtio.h"
#include "monitor/guest_mem.h"
#include "tests/unit/test.h"
#include "tests/unit/virtio/harness.h"
#include "tests/unit/virtio/tests.h"

#define F_BLK_RO      (1ULL << 5)
#define F_BLK_FLUSH   (1ULL << 9)
#define F_BLK_DISCARD (1ULL << 13)
#define F_BLK_WZ      (1ULL << 14)

char disk_path[64];

int make_disk(uint64_t size)
{
	strcpy(disk_path, "/tmp/roam-virtio-XXXXXX");
	int fd = mkstemp(disk_path);
	if (fd < 0)
		return -1;
	int rc = ftruncate(fd, (off_t)size);
	close(fd);
	return rc;
}

struct tvm *blk_vm(bool ro, struct drv *d)
{
	struct tvm *t = tvm_new();
	if (!t)
		return NULL;
	struct blockdev *b;
	if (make_disk(1 << 20) < 0 || blockdev_open_raw(disk_path, ro, &b) < 0) {
		tvm_free(t);
		return NULL;
	}
	if (virtio_blk_create(&t->vm, b, ro, "virtio-blk0") < 0) {
		blockdev_free(b);
		tvm_free(t);
		return NULL;
	}
	if (d && drv_probe(d, t, 1) < 0) {
		tvm_free(t);
		return NULL;
	}
	return t;
}

/* Negotiated, MSI-X on, queue 0 of size 16, DRIVER_OK. */
struct tvm *blk_ready(bool ro, struct drv *d, uint64_t extra)
{
	struct tvm *t = blk_vm(ro, d);
	if (!t)
		return NULL;
	drv_negotiate(d, F_VERSION_1 | extra);
	drv_msix_setup(d);
	drv_queue_setup(d, 16, QBASE);
	drv_driver_ok(d);
	return t;
}

void blk_done(struct tvm *t)
{
	tvm_free(t);
	unlink(disk_path);
}

struct dev *tvm_dev(struct tvm *t, const char *id)
{
	for (struct dev *d = t->vm.devs; d; d = d->next)
		if (strcmp(d->id, id) == 0)
			return d;
	return NULL;
}

static void test_pci_enumeration(void)
{
	struct drv d;
	struct tvm *t = blk_vm(false, &d);
	CHECK(t);
	if (!t)
		return;
	CHECK_EQ(cfg_read(t, 0, 0, 4), 0x12378086);
	CHECK_EQ(cfg_read(t, 0, 0x0A, 2), 0x0600);
	CHECK_EQ(cfg_read(t, 1, 0, 2), 0x1AF4);
	CHECK_EQ(cfg_read(t, 1, 2, 2), 0x1042);
	CHECK_EQ(cfg_read(t, 1, 0x08, 1), 1);           /* revision */
	CHECK_EQ(cfg_read(t, 2, 0, 4), 0xFFFFFFFFu);    /* empty slot */
	CHECK_EQ(cfg_read(t, 0, 0x0E, 1), 0);           /* header type 0 */
	CHECK(cfg_read(t, 1, 0x06, 2) & PCI_STATUS_CAPS);
	CHECK_EQ(cfg_read(t, 1, PCI_INT_PIN, 1), 1);
	CHECK_EQ(cfg_read(t, 1, PCI_INT_LINE, 1), 16);
	CHECK(d.cap_common && d.cap_notify && d.cap_isr && d.cap_device && d.cap_msix);
	CHECK(d.bar4 >= PCI_MMIO_BASE && d.bar4 < PCI_MMIO_END && d.bar4 % 0x4000 == 0);
	CHECK_EQ(cfg_read(t, d.slot, d.cap_notify + 16, 4), 4);
	CHECK_EQ(cfg_read(t, d.slot, d.cap_msix + 2, 2) & 0x7FF, 1);  /* 2 vectors */
	/* Byte access to the address port is not an address write. */
	uint32_t a = 0x80000000u;
	bus_write(t->vm.pio, 0xCF8, &a, 4);
	uint8_t b = 1;
	bus_write(t->vm.pio, 0xCFB, &b, 1);
	uint32_t r = 0;
	bus_read(t->vm.pio, 0xCF8, &r, 4);
	CHECK_EQ(r, 0x80000000u);
	/* Disabled address register: data reads all-ones. */
	a = 0;
	bus_write(t->vm.pio, 0xCF8, &a, 4);
	bus_read(t->vm.pio, 0xCFC, &r, 4);
	CHECK_EQ(r, 0xFFFFFFFFu);
	/* Function 1 and bus 1 are absent. */
	a = 0x80000000u | 1 << 11 | 1 << 8;
	bus_write(t->vm.pio, 0xCF8, &a, 4);
	bus_read(t->vm.pio, 0xCFC, &r, 4);
	CHECK_EQ(r, 0xFFFFFFFFu);
	/* Read-only fields ignore writes. */
	cfg_write(t, 1, 0, 0x12345678, 4);
	CHECK_EQ(cfg_read(t, 1, 0, 4), 0x10421AF4);
	blk_done(t);
}

/* VIRTIO_PCI_CAP_PCI_CFG: BAR registers through config space. */
static void test_pci_cfg_window(void)
{
	struct drv d;
	struct tvm *t = blk_vm(false, &d);
	CHECK(t);
	if (!t)
		return;
	unsigned c = d.cap_pcicfg, s = d.slot;
	CHECK(c != 0);
	CHECK_EQ(cfg_read(t, s, c + 2, 1), 20);
	cfg_write(t, s, c + 4, 4, 1);                  /* BAR4 */
	cfg_write(t, s, c + 8, 0x12, 4);               /* num_queues */
	cfg_write(t, s, c + 12, 2, 4);
	CHECK_EQ(cfg_read(t, s, c + 16, 2), 1);
	cfg_write(t, s, c + 8, 0x14, 4);               /* device_status */
	cfg_write(t, s, c + 12, 1, 4);
	cfg_write(t, s, c + 16, 1, 1);
	CHECK_EQ(drv_status(&d), 1);
	CHECK_EQ(cfg_read(t, s, c + 16, 1), 1);
	/* Invalid windows read 0 and ignore writes. */
	cfg_write(t, s, c + 12, 3, 4);                 /* bad length */
	CHECK_EQ(cfg_read(t, s, c + 16, 4), 0);
	cfg_write(t, s, c + 16, 0, 1);
	CHECK_EQ(drv_status(&d), 1);
	cfg_write(t, s, c + 12, 4, 4);
	cfg_write(t, s, c + 8, 0x4000, 4);             /* past the BAR */
	CHECK_EQ(cfg_read(t, s, c + 16, 4), 0);
	cfg_write(t, s, c + 4, 0, 1);                  /* BAR0: not implemented */
	cfg_write(t, s, c + 8, 0, 4);
	CHECK_EQ(cfg_read(t, s, c + 16, 4), 0);
	cfg_write(t, s, c + 4, 1, 1);                  /* MSI-X BAR works too */
	cfg_write(t, s, c + 8, 12, 4);
	CHECK_EQ(cfg_read(t, s, c + 16, 4), 1);        /* vector 0 masked */
	blk_done(t);
}

static void test_bar_sizing_and_moving(void)
{
	struct drv d;
	struct tvm *t = blk_vm(false, &d);
	CHECK(t);
	if (!t)
		return;
	unsigned s = d.slot;
	uint32_t cmd = cfg_read(t, s, PCI_COMMAND, 2);
	CHECK(cmd & PCI_CMD_MEM);
	CHECK_EQ(drv_common_read(&d, 0x12, 2), 1);      /* num_queues via BAR4 */
	/* Linux-style sizing with decode off. */
	cfg_write(t, s, PCI_COMMAND, cmd & ~PCI_CMD_MEM, 2);
	CHECK_EQ(mmio_read(t, d.bar4 + 0x12, 2), 0xFFFF);   /* unmapped */
	uint32_t lo = cfg_read(t, s, 0x20, 4), hi = cfg_read(t, s, 0x24, 4);
	cfg_write(t, s, 0x20, 0xFFFFFFFF, 4);
	cfg_write(t, s, 0x24, 0xFFFFFFFF, 4);
	CHECK_EQ(cfg_read(t, s, 0x20, 4), 0xFFFFC004u);     /* 16 KiB, 64-bit */
	CHECK_EQ(cfg_read(t, s, 0x24, 4), 0xFFFFFFFFu);
	uint32_t m0 = cfg_read(t, s, 0x14, 4);
	cfg_write(t, s, 0x14, 0xFFFFFFFF, 4);
	CHECK_EQ(cfg_read(t, s, 0x14, 4), 0xFFFFF000u);     /* 4 KiB, 32-bit */
	cfg_write(t, s, 0x14, m0, 4);
	CHECK_EQ(cfg_read(t, s, 0x10, 4), 0);               /* BAR0 unimplemented */
	cfg_write(t, s, 0x10, 0xFFFFFFFF, 4);
	CHECK_EQ(cfg_read(t, s, 0x10, 4), 0);
	/* Move BAR4 to a new address above 4 GiB and enable decode. */
	cfg_write(t, s, 0x20, 0xE0000000, 4);
	cfg_write(t, s, 0x24, 0x1, 4);
	cfg_write(t, s, PCI_COMMAND, cmd, 2);
	CHECK_EQ(mmio_read(t, 0x1E0000000ULL + 0x12, 2), 1);
	CHECK_EQ(mmio_read(t, d.bar4 + 0x12, 2), 0xFFFF);   /* old place gone */
	/* Back where it was. */
	cfg_write(t, s, 0x20, lo, 4);
	cfg_write(t, s, 0x24, hi, 4);
	CHECK_EQ(drv_common_read(&d, 0x12, 2), 1);
	CHECK_EQ(mmio_read(t, 0x1E0000000ULL + 0x12, 2), 0xFFFF);
	blk_done(t);
}

static void test_feature_negotiation(void)
{
	struct drv d;
	struct tvm *t = blk_vm(false, &d);
	CHECK(t);
	if (!t)
		return;
	uint64_t f = drv_device_features(&d);
	CHECK(f & F_VERSION_1);
	CHECK(f & F_BLK_FLUSH);
	CHECK(f & F_BLK_DISCARD);
	CHECK(f & F_INDIRECT);
	CHECK(!(f & F_BLK_RO));
	/* Legacy driver (no VERSION_1): FEATURES_OK refused. */
	CHECK_EQ(drv_negotiate(&d, F_BLK_FLUSH), 3);
	/* A feature the device did not offer: refused. */
	CHECK_EQ(drv_negotiate(&d, F_VERSION_1 | (1ULL << 40)), 3);
	CHECK_EQ(drv_negotiate(&d, F_VERSION_1 | F_BLK_FLUSH), 0xB);
	/* Features are frozen after FEATURES_OK. */
	drv_common_write(&d, 0x08, 0, 4);
	drv_common_write(&d, 0x0C, 0, 4);
	CHECK_EQ(drv_common_read(&d, 0x0C, 4), (uint32_t)F_BLK_FLUSH);
	/* The guest cannot set NEEDS_RESET itself; reset clears everything. */
	drv_common_write(&d, 0x14, 0x4F, 1);
	CHECK_EQ(drv_status(&d), 0x0F);
	drv_common_write(&d, 0x14, 0, 1);
	CHECK_EQ(drv_status(&d), 0);
	CHECK_EQ(drv_common_read(&d, 0x0C, 4), 0);
	/* Queue size defaults to the maximum; bad queue_select reads 0. */
	drv_common_write(&d, 0x16, 0, 2);
	CHECK_EQ(drv_common_read(&d, 0x18, 2), 256);
	drv_common_write(&d, 0x16, 5, 2);
	CHECK_EQ(drv_common_read(&d, 0x18, 2), 0);
	/* Out-of-range MSI-X vectors read back as NO_VECTOR. */
	drv_common_write(&d, 0x10, 7, 2);
	CHECK_EQ(drv_common_read(&d, 0x10, 2), 0xFFFF);
	drv_common_write(&d, 0x10, 1, 2);
	CHECK_EQ(drv_common_read(&d, 0x10, 2), 1);
	/* Capacity in config space: 1 MiB = 2048 sectors. */
	CHECK_EQ(drv_devcfg_read(&d, 0, 4), 2048);
	CHECK_EQ(drv_devcfg_read(&d, 4, 4), 0);
	CHECK_EQ(drv_devcfg_read(&d, 20, 4), 512);
	blk_done(t);
}

static void test_blk_write_flush_read(void)
{
	struct drv d;
	struct tvm *t = blk_ready(false, &d, F_BLK_FLUSH);
	CHECK(t);
	if (!t)
		return;
	CHECK_EQ(drv_status(&d), 0xF);
	struct guest_mem *m = t->vm.mem;
	uint8_t pat[1024];
	for (int i = 0; i < 1024; i++)
		pat[i] = (uint8_t)(i * 7 + 3);
	gmem_write(m, DATA_GPA, pat, sizeof(pat));
	int n0 = t->nmsi;
	CHECK_EQ(blk_rw(&d, 1, 3, DATA_GPA, 1024), 0);
	CHECK_EQ(t->nmsi, n0 + 1);
	CHECK_EQ(t->msi_addr[n0], T_MSI_ADDR);
	CHECK_EQ(t->msi_data[n0], 0x41);                    /* queue vector 1 */
	uint32_t id, len;
	drv_used_elem(&d, 0, &id, &len);
	CHECK_EQ(id, 0);
	CHECK_EQ(len, 1);                                   /* status byte only */
	CHECK_EQ(blk_rw(&d, 4, 0, 0, 0), 0);                /* flush */
	/* The host file has the data. */
	int fd = open(disk_path, O_RDONLY);
	uint8_t host[1024];
	CHECK_EQ(pread(fd, host, sizeof(host), 3 * 512), 1024);
	close(fd);
	CHECK(memcmp(host, pat, sizeof(pat)) == 0);
	/* Read back into another buffer; pages written by DMA are dirty. */
	uint64_t *bits = calloc(T_RAM / 4096 / 64, 8);
	gmem_take_dirty(m, bits);
	CHECK_EQ(blk_rw(&d, 0, 3, DATA_GPA + 0x10000, 1024), 0);
	drv_used_elem(&d, 2, &id, &len);
	CHECK_EQ(len, 1025);
	uint8_t back[1024];
	gmem_read(m, DATA_GPA + 0x10000, back, sizeof(back));
	CHECK(memcmp(back, pat, sizeof(pat)) == 0);
	gmem_take_dirty(m, bits);
	uint64_t pg = (DATA_GPA + 0x10000) / 4096;
	CHECK(bits[pg / 64] & (1ULL << (pg % 64)));
	uint64_t upg = (QBASE + 0x2000) / 4096;
	CHECK(bits[upg / 64] & (1ULL << (upg % 64)));
	uint64_t other = (DATA_GPA + 0x40000) / 4096;
	CHECK(!(bits[other / 64] & (1ULL << (other % 64))));
	free(bits);
	/* Out of range and unaligned requests complete with IOERR. */
	CHECK_EQ(blk_rw(&d, 0, 2047, DATA_GPA, 1024), 1);
	CHECK_EQ(blk_rw(&d, 1, 1ULL << 62, DATA_GPA, 512), 1);
	CHECK_EQ(blk_rw(&d, 1, 0, DATA_GPA, 100), 1);
	CHECK_EQ(blk_rw(&d, 99, 0, DATA_GPA, 512), 2);      /* unknown type */
	/* GET_ID: the device id as serial. */
	memset(back, 0xAA, 20);
	gmem_write(m, DATA_GPA, back, 20);
	CHECK_EQ(blk_rw(&d, 8, 0, DATA_GPA, 20), 0);
	gmem_read(m, DATA_GPA, back, 20);
	CHECK(memcmp(back, "virtio-blk0\0\0\0\0\0\0\0\0", 20) == 0);
	CHECK_EQ(drv_status(&d), 0xF);
	blk_done(t);
}

static void test_blk_discard_write_zeroes(void)
{
	struct drv d;
	struct tvm *t = blk_ready(false, &d, F_BLK_DISCARD | F_BLK_WZ);
	CHECK(t);
	if (!t)
		return;
	struct guest_mem *m = t->vm.mem;
	uint8_t buf[8192];
	memset(buf, 0x5A, sizeof(buf));
	gmem_write(m, DATA_GPA, buf, sizeof(buf));
	CHECK_EQ(blk_rw(&d, 1, 8, DATA_GPA, 8192), 0);      /* sectors 8..23 */
	/* DISCARD sectors 8..15 (one segment). */
	uint8_t seg[16] = { 0 };
	uint64_t sector = 8;
	uint32_t num = 8;
	memcpy(seg, &sector, 8);
	memcpy(seg + 8, &num, 4);
	gmem_write(m, DATA_GPA + 0x10000, seg, 16);
	CHECK_EQ(blk_rw(&d, 11, 0, DATA_GPA + 0x10000, 16), 0);
	/* WRITE_ZEROES sectors 16..19 without unmap. */
	sector = 16;
	num = 4;
	memcpy(seg, &sector, 8);
	memcpy(seg + 8, &num, 4);
	gmem_write(m, DATA_GPA + 0x10000, seg, 16);
	CHECK_EQ(blk_rw(&d, 13, 0, DATA_GPA + 0x10000, 16), 0);
	int fd = open(disk_path, O_RDONLY);
	uint8_t host[8192];
	CHECK_EQ(pread(fd, host, sizeof(host), 8 * 512), 8192);
	close(fd);
	int zeros = 0, keep = 0;
	for (int i = 0; i < 6144; i++)
		zeros += host[i] == 0;
	for (int i = 6144; i < 8192; i++)
		keep += host[i] == 0x5A;
	CHECK_EQ(zeros, 6144);
	CHECK_EQ(keep, 2048);
	/* Discard flags other than 0, or out of range: refused. */
	uint32_t flags = 1;
	memcpy(seg + 12, &flags, 4);
	gmem_write(m, DATA_GPA + 0x10000, seg, 16);
	CHECK_EQ(blk_rw(&d, 11, 0, DATA_GPA + 0x10000, 16), 2);
	sector = 2040;
	num = 16;
	flags = 0;
	memcpy(seg, &sector, 8);
	memcpy(seg + 8, &num, 4);
	memcpy(seg + 12, &flags, 4);
	gmem_write(m, DATA_GPA + 0x10000, seg, 16);
	CHECK_EQ(blk_rw(&d, 11, 0, DATA_GPA + 0x10000, 16), 1);
	CHECK_EQ(blk_rw(&d, 11, 0, DATA_GPA + 0x10000, 8), 2);   /* not a whole segment */
	blk_done(t);
}

static void test_blk_readonly(void)
{
	struct drv d;
	struct tvm *t = blk_ready(true, &d, F_BLK_RO);
	CHECK(t);
	if (!t)
		return;
	uint64_t f = drv_device_features(&d);
	CHECK(f & F_BLK_RO);
	CHECK(!(f & F_BLK_DISCARD));
	CHECK_EQ(drv_status(&d), 0xF);
	uint8_t buf[512];
	memset(buf, 0x77, sizeof(buf));
	gmem_write(t->vm.mem, DATA_GPA, buf, sizeof(buf));
	CHECK_EQ(blk_rw(&d, 1, 0, DATA_GPA, 512), 1);
	CHECK_EQ(blk_rw(&d, 0, 0, DATA_GPA, 512), 0);
	gmem_read(t->vm.mem, DATA_GPA, buf, sizeof(buf));
	CHECK_EQ(buf[0], 0);                                /* file untouched */
	CHECK_EQ(buf[511], 0);
	blk_done(t);
}

static void test_msix_masking(void)
{
	struct drv d;
	struct tvm *t = blk_ready(false, &d, 0);
	CHECK(t);
	if (!t)
		return;
	/* Mask vector 1: completion sets its pending bit instead. */
	mmio_write(t, d.msix + 16 + 12, 1, 4);
	int n0 = t->nmsi;
	CHECK_EQ(blk_rw(&d, 0, 0, DATA_GPA, 512), 0);
	CHECK_EQ(t->nmsi, n0);
	CHECK_EQ(mmio_read(t, d.msix + PCI_MSIX_PBA_OFF, 4), 2);
	mmio_write(t, d.msix + 16 + 12, 0, 4);
	CHECK_EQ(t->nmsi, n0 + 1);
	CHECK_EQ(t->msi_data[n0], 0x41);
	CHECK_EQ(mmio_read(t, d.msix + PCI_MSIX_PBA_OFF, 4), 0);
	/* Function mask through config space. */
	uint32_t ctl = cfg_read(t, d.slot, d.cap_msix + 2, 2);
	cfg_write(t, d.slot, d.cap_msix + 2, ctl | PCI_MSIX_FMASK, 2);
	CHECK_EQ(blk_rw(&d, 0, 0, DATA_GPA, 512), 0);
	CHECK_EQ(t->nmsi, n0 + 1);
	cfg_write(t, d.slot, d.cap_msix + 2, ctl, 2);
	CHECK_EQ(t->nmsi, n0 + 2);
	/* NO_VECTOR for the queue: no message at all. */
	drv_common_write(&d, 0x16, 0, 2);
	drv_common_write(&d, 0x1A, 0xFFFF, 2);
	CHECK_EQ(blk_rw(&d, 0, 0, DATA_GPA, 512), 0);
	CHECK_EQ(t->nmsi, n0 + 2);
	/* Table reads back; reserved vector-control bits read 0. */
	mmio_write(t, d.msix + 12, 0xFFFFFFFF, 4);
	CHECK_EQ(mmio_read(t, d.msix + 12, 4), 1);
	CHECK_EQ(mmio_read(t, d.msix + 8, 4), 0x40);
	blk_done(t);
}

static void test_intx_and_isr(void)
{
	struct drv d;
	struct tvm *t = blk_vm(false, &d);
	CHECK(t);
	if (!t)
		return;
	drv_negotiate(&d, F_VERSION_1);
	drv_queue_setup(&d, 8, QBASE);
	drv_driver_ok(&d);
	CHECK_EQ(blk_rw(&d, 0, 0, DATA_GPA, 512), 0);
	CHECK_EQ(t->nmsi, 0);
	CHECK_EQ(t->intx_level[16], 1);
	CHECK(cfg_read(t, 1, PCI_STATUS, 2) & PCI_STATUS_INTX);
	uint32_t isr_off = cfg_read(t, 1, d.cap_isr + 8, 4);
	CHECK_EQ(mmio_read(t, d.bar4 + isr_off, 1), 1);
	CHECK_EQ(t->intx_level[16], 0);
	CHECK_EQ(mmio_read(t, d.bar4 + isr_off, 1), 0);     /* read cleared */
	CHECK(!(cfg_read(t, 1, PCI_STATUS, 2) & PCI_STATUS_INTX));
	/* Command.INTxDisable holds the line low while pending. */
	uint32_t cmd = cfg_read(t, 1, PCI_COMMAND, 2);
	cfg_write(t, 1, PCI_COMMAND, cmd | PCI_CMD_INTX_OFF, 2);
	CHECK_EQ(blk_rw(&d, 0, 0, DATA_GPA, 512), 0);
	CHECK_EQ(t->intx_level[16], 0);
	cfg_write(t, 1, PCI_COMMAND, cmd, 2);
	CHECK_EQ(t->intx_level[16], 1);
	/* Device reset deasserts. */
	drv_common_write(&d, 0x14, 0, 1);
	CHECK_EQ(t->intx_level[16], 0);
	blk_done(t);
}

static void test_indirect_and_event_idx(void)
{
	struct drv d;
	struct tvm *t = blk_ready(false, &d, F_INDIRECT | F_EVENT_IDX);
	CHECK(t);
	if (!t)
		return;
	struct guest_mem *m = t->vm.mem;
	/* Indirect table at 0x300000: header, 2 data descs, status. */
	uint8_t hdr[16] = { 0 };
	hdr[0] = 1;                             /* OUT, sector 5 */
	hdr[8] = 5;
	gmem_write(m, 0x301000, hdr, 16);
	uint8_t data[1024];
	memset(data, 0xC3, 512);
	memset(data + 512, 0x3C, 512);
	gmem_write(m, 0x302000, data, 1024);
	struct { uint64_t a; uint32_t l; uint16_t f, n; } tbl[4] = {
		{ 0x301000, 16, 1, 1 }, { 0x302000, 512, 1, 2 },
		{ 0x302200, 512, 1, 3 }, { 0x301100, 1, 2, 0 },
	};
	gmem_write(m, 0x300000, tbl, sizeof(tbl));
	/* used_event = 0: interrupt after the first completion only. */
	uint16_t ue = 0;
	gmem_write(m, QBASE + 0x1000 + 4 + 2 * 16, &ue, 2);
	drv_desc(&d, 0, 0x300000, sizeof(tbl), 4, 0);
	int n0 = t->nmsi;
	drv_submit(&d, 0);
	CHECK_EQ(drv_used_idx(&d), 1);
	uint8_t st = 0xFF;
	gmem_read(m, 0x301100, &st, 1);
	CHECK_EQ(st, 0);
	CHECK_EQ(t->nmsi, n0 + 1);
	/* avail_event published by the device. */
	uint16_t ae = 0;
	gmem_read(m, QBASE + 0x2000 + 4 + 8 * 16, &ae, 2);
	CHECK_EQ(ae, 1);
	/* used_event still 0: the next completion is suppressed. */
	drv_submit(&d, 0);
	CHECK_EQ(drv_used_idx(&d), 2);
	CHECK_EQ(t->nmsi, n0 + 1);
	ue = 2;
	gmem_write(m, QBASE + 0x1000 + 4 + 2 * 16, &ue, 2);
	drv_submit(&d, 0);
	CHECK_EQ(t->nmsi, n0 + 2);
	int fd = open(disk_path, O_RDONLY);
	uint8_t host[1024];
	CHECK_EQ(pread(fd, host, sizeof(host), 5 * 512), 1024);
	close(fd);
	CHECK(memcmp(host, data, 1024) == 0);
	CHECK_EQ(drv_status(&d), 0xF);
	blk_done(t);
}

static void test_rng(void)
{
	struct tvm *t = tvm_new();
	CHECK(t);
	if (!t)
		return;
	CHECK_EQ(virtio_rng_create(&t->vm), 0);
	struct drv d;
	CHECK_EQ(drv_probe(&d, t, 1), 0);
	CHECK_EQ(cfg_read(t, 1, 2, 2), 0x1044);
	CHECK_EQ(d.cap_device, 0);
	CHECK_EQ(drv_negotiate(&d, F_VERSION_1), 0xB);
	drv_msix_setup(&d);
	drv_queue_setup(&d, 8, QBASE);
	drv_driver_ok(&d);
	drv_desc(&d, 0, DATA_GPA, 4096, 2, 0);
	drv_submit(&d, 0);
	uint32_t id, len;
	drv_used_elem(&d, 0, &id, &len);
	CHECK_EQ(len, 4096);
	uint8_t buf[4096];
	gmem_read(t->vm.mem, DATA_GPA, buf, sizeof(buf));
	int zero = 0;
	for (int i = 0; i < 4096; i++)
		zero += buf[i] == 0;
	CHECK(zero < 100);
	CHECK_EQ(t->nmsi, 1);
	/* A blk with a duplicate or empty id is refused; the caller keeps
	 * the backend (ASan reports a double free or leak otherwise). */
	struct blockdev *b;
	CHECK_EQ(make_disk(4096), 0);
	CHECK_EQ(blockdev_open_raw(disk_path, false, &b), 0);
	CHECK_EQ(virtio_blk_create(&t->vm, b, false, "virtio-rng0"), -EEXIST);
	CHECK_EQ(virtio_blk_create(&t->vm, b, false, ""), -EINVAL);
	blockdev_free(b);
	unlink(disk_path);
	/* A second rng is refused (same id). */
	CHECK_EQ(virtio_rng_create(&t->vm), -EEXIST);
	tvm_free(t);
}

/* A full ring in one kick: the worker serves every chain in order. */
static void test_blk_full_ring(void)
{
	struct drv d;
	struct tvm *t = blk_ready(false, &d, 0);
	CHECK(t);
	if (!t)
		return;
	struct guest_mem *m = t->vm.mem;
	uint8_t *av = gmem_ptr(m, QBASE + 0x1000, 0x1000);
	/* 5 chains of 3 descriptors: header, 4 KiB data, status. */
	for (uint16_t r = 0; r < 5; r++) {
		uint64_t hdr = 0x100000 + 0x200ULL * r, st = hdr + 0x100;
		uint64_t data = 0x400000 + 0x1000ULL * r;
		uint8_t h[16] = { 1 };
		uint64_t sector = 100 + 8ULL * r;
		memcpy(h + 8, &sector, 8);
		gmem_write(m, hdr, h, 16);
		memset(gmem_ptr(m, data, 4096), 'a' + r, 4096);
		drv_desc(&d, (uint16_t)(3 * r), hdr, 16, 1, (uint16_t)(3 * r + 1));
		drv_desc(&d, (uint16_t)(3 * r + 1), data, 4096, 1, (uint16_t)(3 * r + 2));
		drv_desc(&d, (uint16_t)(3 * r + 2), st, 1, 2, 0);
		uint16_t head = (uint16_t)(3 * r);
		memcpy(av + 4 + 2 * r, &head, 2);
	}
	uint16_t idx = 5;
	memcpy(av + 2, &idx, 2);
	d.avail_idx = 5;
	mmio_write(t, d.bar4 + 0x3000, 0, 2);
	tvm_drain(t);
	CHECK_EQ(drv_used_idx(&d), 5);
	for (uint16_t r = 0; r < 5; r++) {
		uint32_t id, len;
		drv_used_elem(&d, r, &id, &len);
		CHECK_EQ(id, 3 * r);
		CHECK_EQ(len, 1);
	}
	int fd = open(disk_path, O_RDONLY);
	uint8_t host[4096];
	for (int r = 0; r < 5; r++) {
		CHECK_EQ(pread(fd, host, sizeof(host), (100 + 8 * r) * 512), 4096);
		CHECK(host[0] == 'a' + r && host[4095] == 'a' + r);
	}
	close(fd);
	blk_done(t);
}

/* The host may be freed before its functions while a device thread is
 * still busy (ASan checks there is no use after free), and the other way
 * round. */
static void test_teardown_orders(void)
{
	for (int order = 0; order < 2; order++) {
		struct drv d;
		struct tvm *t = blk_ready(false, &d, 0);
		CHECK(t);
		if (!t)
			return;
		CHECK_EQ(virtio_rng_create(&t->vm), 0);
		t->free_host_first = order == 0;
		uint8_t *av = gmem_ptr(t->vm.mem, QBASE + 0x1000, 0x1000);
		CHECK_EQ(blk_rw(&d, 0, 0, DATA_GPA, 512), 0);
		for (int i = 0; i < 8; i++) {
			uint16_t idx = ++d.avail_idx;
			memset(av + 4 + 2 * ((idx - 1) % 16), 0, 2);
			__atomic_store_n((uint16_t *)(av + 2), idx, __ATOMIC_RELEASE);
		}
		mmio_write(t, d.bar4 + 0x3000, 0, 2);  /* worker busy at free */
		blk_done(t);
	}
}

static void test_blockdev_raw(void)
{
	struct blockdev *b;
	CHECK_EQ(blockdev_open_raw("/nonexistent/roam-disk", false, &b), -ENOENT);
	CHECK_EQ(blockdev_open_raw("/tmp", false, &b), -EISDIR);
	CHECK_EQ(make_disk(65536), 0);
	CHECK_EQ(blockdev_open_raw(disk_path, true, &b), 0);
	uint64_t sz = 0;
	CHECK_EQ(blockdev_size(b, &sz), 0);
	CHECK_EQ(sz, 65536);
	char buf[512] = { 1 };
	CHECK_EQ(blockdev_pwrite(b, buf, 512, 0), -EROFS);
	CHECK_EQ(blockdev_discard(b, 0, 4096), -EROFS);
	CHECK_EQ(blockdev_pread(b, buf, 512, 0), 0);
	CHECK_EQ(buf[0], 0);
	/* Reads past EOF give zeros. */
	memset(buf, 1, sizeof(buf));
	CHECK_EQ(blockdev_pread(b, buf, 512, 65536 - 256), 0);
	CHECK_EQ(buf[300], 0);
	blockdev_free(b);
	blockdev_free(NULL);
	CHECK_EQ(blockdev_open_raw(disk_path, false, &b), 0);
	memset(buf, 9, sizeof(buf));
	CHECK_EQ(blockdev_pwrite(b, buf, 512, 4096), 0);
	CHECK_EQ(blockdev_flush(b), 0);
	CHECK_EQ(blockdev_discard(b, 4096, 4096), 0);
	CHECK_EQ(blockdev_pread(b, buf, 512, 4096), 0);
	CHECK_EQ(buf[0], 0);
	blockdev_free(b);
	unlink(disk_path);
}

int main(void)
{
	TEST(test_blockdev_raw);
	TEST(test_pci_enumeration);
	TEST(test_bar_sizing_and_moving);
	TEST(test_pci_cfg_window);
	TEST(test_feature_negotiation);
	TEST(test_blk_write_flush_read);
	TEST(test_blk_discard_write_zeroes);
	TEST(test_blk_readonly);
	TEST(test_msix_masking);
	TEST(test_intx_and_isr);
	TEST(test_indirect_and_event_idx);
	TEST(test_blk_full_ring);
	TEST(test_rng);
	TEST(test_teardown_orders);
	test_failures += run_hostile_tests();
	test_failures += run_state_tests();
	TEST_EXIT();
}
