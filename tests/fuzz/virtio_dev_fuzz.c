/* libFuzzer harness for the whole virtio-pci device path: a fresh machine
 * (RAM, buses, PCI host, virtio-blk over an in-memory disk, virtio-rng) per
 * input, brought up like a driver would (MSI-X, queue 0 of each device),
 * then driven by the input: common-config, notify, ISR, device-config and
 * MSI-X accesses, config cycles, and writes of guest RAM (rings, descriptors,
 * buffers). Ends with a save -> load -> save round trip that must reproduce
 * the record. ASan/UBSan catch memory errors; a failed round trip aborts.
 *
 * The VM-level functions the devices call (vm_msi, vm_set_irq) are
 * stand-ins here: the harness links the device sources and the device list
 * (vm_devs.c), not vm.c and its engines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "monitor/bus.h"
#include "monitor/dev.h"
#include "monitor/dev/blockdev.h"
#include "monitor/dev/pci.h"
#include "monitor/dev/virtio.h"
#include "monitor/dev/virtio_int.h"
#include "monitor/guest_mem.h"
#include "monitor/vm.h"

#define RAM   (1ULL << 20)
#define DISK  (64 * 1024)
#define QBASE 0x10000ULL

void vm_msi(struct vm *vm, uint64_t addr, uint32_t data) { (void)vm; (void)addr; (void)data; }
void vm_set_irq(struct vm *vm, unsigned gsi, int level) { (void)vm; (void)gsi; (void)level; }

/* In-memory block backend. */
struct memdisk {
	struct blockdev b;
	uint8_t data[DISK];
};

static int md_pread(struct blockdev *b, void *buf, size_t len, uint64_t off)
{
	if (off > DISK || len > DISK - off)
		return -5;
	memcpy(buf, ((struct memdisk *)b)->data + off, len);
	return 0;
}

static int md_pwrite(struct blockdev *b, const void *buf, size_t len, uint64_t off)
{
	if (off > DISK || len > DISK - off)
		return -5;
	memcpy(((struct memdisk *)b)->data + off, buf, len);
	return 0;
}

static int md_flush(struct blockdev *b) { (void)b; return 0; }

static int md_discard(struct blockdev *b, uint64_t off, uint64_t len)
{
	if (off > DISK || len > DISK - off)
		return -5;
	memset(((struct memdisk *)b)->data + off, 0, len);
	return 0;
}

static int md_size(struct blockdev *b, uint64_t *ret) { (void)b; *ret = DISK; return 0; }
static void md_free(struct blockdev *b) { free(b); }

static const struct blockdev_ops md_ops = {
	.name = "fuzz-mem", .pread = md_pread, .pwrite = md_pwrite, .flush = md_flush,
	.discard = md_discard, .size = md_size, .free = md_free,
};

struct in { const uint8_t *p; size_t n; };

static uint32_t take(struct in *in, unsigned bytes)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < bytes; i++) {
		v |= (uint32_t)(in->n ? *in->p : 0) << (8 * i);
		if (in->n) {
			in->p++;
			in->n--;
		}
	}
	return v;
}

static uint32_t cfg_rw(struct vm *vm, unsigned slot, unsigned reg, uint32_t v, unsigned len, int wr)
{
	uint32_t a = 0x80000000u | slot << 11 | (reg & 0xFC);
	bus_write(vm->pio, 0xCF8, &a, 4);
	if (wr)
		bus_write(vm->pio, 0xCFC + (reg & 3), &v, len);
	else
		bus_read(vm->pio, 0xCFC + (reg & 3), &v, len);
	return v;
}

static uint64_t bar(struct vm *vm, unsigned slot, int i)
{
	uint64_t a = cfg_rw(vm, slot, 0x10 + 4 * i, 0, 4, 0) & ~0xFu;
	if (i == 4)
		a |= (uint64_t)cfg_rw(vm, slot, 0x24, 0, 4, 0) << 32;
	return a;
}

static void mw(struct vm *vm, uint64_t addr, uint64_t v, unsigned len)
{
	bus_write(vm->mmio, addr, &v, len);
}

static void drain(struct vm *vm)
{
	for (struct dev *d = vm->devs; d; d = d->next)
		if (!strncmp(d->type->name, "virtio-", 7))
			virtio_dev_drain((struct virtio_dev *)d);
}

/* Driver bring-up of the function in slot s: features from the input,
 * MSI-X, queue 0 (size 16) at QBASE + s * 0x4000, DRIVER_OK. */
static void bring_up(struct vm *vm, unsigned s, struct in *in)
{
	uint64_t b4 = bar(vm, s, 4), mx = bar(vm, s, 1);
	mw(vm, b4 + 0x14, 0, 1);
	mw(vm, b4 + 0x14, 3, 1);
	mw(vm, b4 + 0x08, 0, 4);
	mw(vm, b4 + 0x0C, take(in, 4), 4);
	mw(vm, b4 + 0x08, 1, 4);
	mw(vm, b4 + 0x0C, 1, 4);                   /* VERSION_1 */
	mw(vm, b4 + 0x14, 0xB, 1);
	for (unsigned v = 0; v < 2; v++) {
		mw(vm, mx + 16 * v, 0xFEE00000, 4);
		mw(vm, mx + 16 * v + 12, 0, 4);
	}
	cfg_rw(vm, s, 0x40 + 2, 0x8000, 2, 1);     /* MSI-X cap is the first */
	uint64_t q = QBASE + s * 0x4000;
	mw(vm, b4 + 0x18, 16, 2);
	mw(vm, b4 + 0x20, q, 8);
	mw(vm, b4 + 0x28, q + 0x1000, 8);
	mw(vm, b4 + 0x30, q + 0x2000, 8);
	mw(vm, b4 + 0x1A, 1, 2);
	mw(vm, b4 + 0x1C, 1, 2);
	mw(vm, b4 + 0x14, 0xF, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vm vm;
	memset(&vm, 0, sizeof(vm));
	vm.ncpus = 1;
	if (gmem_new(RAM, &vm.mem) < 0 || bus_new(0x10000, &vm.pio) < 0 ||
	    bus_new(0, &vm.mmio) < 0 || pci_host_create(&vm, &vm.pci) < 0)
		abort();
	struct memdisk *md = calloc(1, sizeof(*md));
	if (!md)
		abort();
	md->b.ops = &md_ops;
	struct in in = { data, size };
	bool ro = take(&in, 1) & 1;
	md->b.readonly = false;
	if (virtio_blk_create(&vm, &md->b, ro, "virtio-blk0") < 0 || virtio_rng_create(&vm) < 0)
		abort();
	bring_up(&vm, 1, &in);
	bring_up(&vm, 2, &in);

	for (int steps = 0; in.n && steps < 256; steps++) {
		unsigned op = take(&in, 1) % 8, s = 1 + take(&in, 1) % 2;
		static const unsigned lens[] = { 1, 2, 4, 8 };
		unsigned len = lens[take(&in, 1) % 4];
		uint64_t b4 = bar(&vm, s, 4), v;
		switch (op) {
		case 0: {               /* RAM: 8 bytes anywhere in the ring/buffer area */
			uint64_t a = (take(&in, 2) * 8ULL) % 0x20000;
			v = take(&in, 4) | (uint64_t)take(&in, 4) << 32;
			gmem_write(vm.mem, a, &v, 8);
			break;
		}
		case 1: {               /* publish a head in the avail ring, notify */
			uint64_t q = QBASE + s * 0x4000 + 0x1000;
			uint16_t head = (uint16_t)take(&in, 1), idx;
			gmem_read(vm.mem, q + 2, &idx, 2);
			gmem_write(vm.mem, q + 4 + 2 * (idx % 16), &head, 2);
			idx++;
			gmem_write(vm.mem, q + 2, &idx, 2);
		}
			/* fall through */
		case 2:                 /* notify */
			mw(&vm, b4 + 0x3000, 0, 2);
			drain(&vm);
			break;
		case 3:                 /* common config write */
			mw(&vm, b4 + (take(&in, 1) % 0x40 & ~(len - 1)), take(&in, 4), len);
			break;
		case 4: {               /* reads: common, ISR, device config */
			uint64_t off = take(&in, 2) % 0x3000 & ~(uint64_t)(len - 1);
			bus_read(vm.mmio, b4 + off, &v, len);
			break;
		}
		case 5:                 /* MSI-X table / PBA */
			mw(&vm, bar(&vm, s, 1) + (take(&in, 2) % 0x1000 & ~(len - 1)), take(&in, 4),
			   len);
			break;
		case 6:                 /* config cycle (BARs and command included) */
			if (len <= 4) {
				unsigned reg = take(&in, 1) & ~(len - 1);
				cfg_rw(&vm, take(&in, 1) % 4, reg, take(&in, 4), len, take(&in, 1) & 1);
			}
			break;
		case 7:                 /* pause / resume */
			for (struct dev *d = vm.devs; d; d = d->next)
				if (d->type->pause) {
					d->type->pause(d);
					d->type->resume(d);
				}
			break;
		}
	}
	drain(&vm);

	/* Every device's record must survive a load and save unchanged. */
	for (struct dev *d = vm.devs; d; d = d->next) {
		if (d->type->pause)
			d->type->pause(d);
		struct rec_writer w1, w2;
		rec_writer_init(&w1);
		rec_writer_init(&w2);
		if (d->type->save(d, &w1) < 0)
			abort();
		struct rec_reader r;
		rec_reader_init(&r, w1.buf, w1.len);
		int rc = d->type->load(d, &r, d->type->version);
		if (rc < 0) {
			fprintf(stderr, "%s: its own record does not load: %d\n", d->id, rc);
			abort();
		}
		if (d->type->save(d, &w2) < 0)
			abort();
		size_t k = 0;
		while (k < w1.len && k < w2.len && w1.buf[k] == w2.buf[k])
			k++;
		if (k != w1.len || w1.len != w2.len) {
			fprintf(stderr, "%s: record changed by load at byte %zu of %zu\n", d->id, k, w1.len);
			abort();
		}
		rec_writer_free(&w1);
		rec_writer_free(&w2);
	}

	while (vm.devs) {
		struct dev *d = vm.devs;
		vm.devs = d->next;
		d->type->free(d);
	}
	bus_free(vm.pio);
	bus_free(vm.mmio);
	gmem_free(vm.mem);
	return 0;
}
