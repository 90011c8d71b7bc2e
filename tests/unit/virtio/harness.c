/* Test VM and guest-side virtio-pci driver for the virtio unit tests. */
#include <stdlib.h>
#include <string.h>
#include "monitor/bus.h"
#include "monitor/dev.h"
#include "monitor/dev/pci.h"
#include "monitor/dev/virtio_int.h"
#include "monitor/guest_mem.h"
#include "tests/unit/virtio/harness.h"

static void hook_msi(void *opaque, uint64_t addr, uint32_t data)
{
	struct tvm *t = opaque;
	if (t->nmsi < 64) {
		t->msi_addr[t->nmsi] = addr;
		t->msi_data[t->nmsi] = data;
	}
	t->nmsi++;
}

static void hook_intx(void *opaque, unsigned gsi, int level)
{
	struct tvm *t = opaque;
	if (gsi < 24)
		t->intx_level[gsi] = level;
	t->intx_changes++;
}

struct tvm *tvm_new(void)
{
	struct tvm *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	struct vm *vm = &t->vm;
	vm->ncpus = 1;
	if (gmem_new(T_RAM, &vm->mem) < 0 || bus_new(0x10000, &vm->pio) < 0 ||
	    bus_new(0, &vm->mmio) < 0 || pci_host_create(vm, &vm->pci) < 0) {
		tvm_free(t);
		return NULL;
	}
	pci_host_set_irq_hooks(vm->pci, hook_msi, hook_intx, t);
	return t;
}

void tvm_free(struct tvm *t)
{
	if (!t)
		return;
	struct dev *d = t->vm.devs, **pp = &t->vm.devs;
	if (t->free_host_first) {
		while (*pp && strcmp((*pp)->id, "pci0") != 0)
			pp = &(*pp)->next;
		if (*pp) {
			struct dev *h = *pp;
			*pp = h->next;
			h->type->free(h);
			d = t->vm.devs;
		}
	}
	while (d) {
		struct dev *next = d->next;
		d->type->free(d);
		d = next;
	}
	bus_free(t->vm.pio);
	bus_free(t->vm.mmio);
	gmem_free(t->vm.mem);
	free(t);
}

void tvm_drain(struct tvm *t)
{
	for (struct dev *d = t->vm.devs; d; d = d->next)
		if (strncmp(d->type->name, "virtio-", 7) == 0)
			virtio_dev_drain((struct virtio_dev *)d);
}

uint32_t cfg_read(struct tvm *t, unsigned slot, unsigned reg, unsigned len)
{
	uint32_t a = 0x80000000u | slot << 11 | (reg & 0xFC);
	bus_write(t->vm.pio, 0xCF8, &a, 4);
	uint32_t v = 0;
	bus_read(t->vm.pio, 0xCFC + (reg & 3), &v, len);
	return v;
}

void cfg_write(struct tvm *t, unsigned slot, unsigned reg, uint32_t v, unsigned len)
{
	uint32_t a = 0x80000000u | slot << 11 | (reg & 0xFC);
	bus_write(t->vm.pio, 0xCF8, &a, 4);
	bus_write(t->vm.pio, 0xCFC + (reg & 3), &v, len);
}

uint64_t mmio_read(struct tvm *t, uint64_t addr, unsigned len)
{
	uint64_t v = 0;
	bus_read(t->vm.mmio, addr, &v, len);
	return v;
}

void mmio_write(struct tvm *t, uint64_t addr, uint64_t v, unsigned len)
{
	bus_write(t->vm.mmio, addr, &v, len);
}

static uint64_t bar_addr(struct tvm *t, unsigned slot, int i)
{
	uint32_t lo = cfg_read(t, slot, 0x10 + 4 * i, 4);
	uint64_t a = lo & ~0xFu;
	if ((lo & 6) == 4)
		a |= (uint64_t)cfg_read(t, slot, 0x14 + 4 * i, 4) << 32;
	return a;
}

int drv_probe(struct drv *d, struct tvm *t, unsigned slot)
{
	memset(d, 0, sizeof(*d));
	d->t = t;
	d->slot = slot;
	if ((cfg_read(t, slot, 0, 2)) != 0x1AF4)
		return -1;
	unsigned cap = cfg_read(t, slot, 0x34, 1), guard = 0;
	while (cap && guard++ < 48) {
		unsigned id = cfg_read(t, slot, cap, 1);
		if (id == 0x11) {
			d->cap_msix = (uint8_t)cap;
			d->msix = bar_addr(t, slot, cfg_read(t, slot, cap + 4, 4) & 7);
		} else if (id == 0x09) {
			unsigned type = cfg_read(t, slot, cap + 3, 1);
			uint64_t off = cfg_read(t, slot, cap + 8, 4);
			if (type == 1 && off == 0)
				d->bar4 = bar_addr(t, slot, cfg_read(t, slot, cap + 4, 1));
			if (type == 1) d->cap_common = (uint8_t)cap;
			if (type == 2) d->cap_notify = (uint8_t)cap;
			if (type == 3) d->cap_isr = (uint8_t)cap;
			if (type == 4) d->cap_device = (uint8_t)cap;
			if (type == 5) d->cap_pcicfg = (uint8_t)cap;
		}
		cap = cfg_read(t, slot, cap + 1, 1);
	}
	return d->bar4 && d->msix && d->cap_notify && d->cap_isr ? 0 : -1;
}

uint32_t drv_common_read(struct drv *d, unsigned off, unsigned len)
{
	return (uint32_t)mmio_read(d->t, d->bar4 + off, len);
}

void drv_common_write(struct drv *d, unsigned off, uint32_t v, unsigned len)
{
	mmio_write(d->t, d->bar4 + off, v, len);
}

uint32_t drv_devcfg_read(struct drv *d, unsigned off, unsigned len)
{
	return (uint32_t)mmio_read(d->t, d->bar4 + 0x2000 + off, len);
}

uint8_t drv_status(struct drv *d)
{
	return (uint8_t)drv_common_read(d, 0x14, 1);
}

uint64_t drv_device_features(struct drv *d)
{
	drv_common_write(d, 0x00, 0, 4);
	uint64_t f = drv_common_read(d, 0x04, 4);
	drv_common_write(d, 0x00, 1, 4);
	return f | (uint64_t)drv_common_read(d, 0x04, 4) << 32;
}

uint8_t drv_negotiate(struct drv *d, uint64_t features)
{
	drv_common_write(d, 0x14, 0, 1);
	drv_common_write(d, 0x14, 1, 1);
	drv_common_write(d, 0x14, 3, 1);
	drv_common_write(d, 0x08, 0, 4);
	drv_common_write(d, 0x0C, (uint32_t)features, 4);
	drv_common_write(d, 0x08, 1, 4);
	drv_common_write(d, 0x0C, (uint32_t)(features >> 32), 4);
	drv_common_write(d, 0x14, 0xB, 1);
	return drv_status(d);
}

void drv_msix_setup(struct drv *d)
{
	for (unsigned v = 0; v < 2; v++) {
		mmio_write(d->t, d->msix + 16 * v, T_MSI_ADDR, 4);
		mmio_write(d->t, d->msix + 16 * v + 4, 0, 4);
		mmio_write(d->t, d->msix + 16 * v + 8, 0x40 + v, 4);
		mmio_write(d->t, d->msix + 16 * v + 12, 0, 4);
	}
	uint32_t ctl = cfg_read(d->t, d->slot, d->cap_msix + 2, 2);
	cfg_write(d->t, d->slot, d->cap_msix + 2, ctl | 0x8000, 2);
	drv_common_write(d, 0x10, 0, 2);
	drv_common_write(d, 0x16, 0, 2);
	drv_common_write(d, 0x1A, 1, 2);
}

void drv_queue_setup(struct drv *d, uint16_t qsize, uint64_t qbase)
{
	d->qsize = qsize;
	d->qbase = qbase;
	d->avail_idx = d->used_seen = 0;
	memset(gmem_ptr(d->t->vm.mem, qbase, 0x3000), 0, 0x3000);
	drv_common_write(d, 0x16, 0, 2);
	drv_common_write(d, 0x18, qsize, 2);
	drv_common_write(d, 0x20, (uint32_t)qbase, 4);
	drv_common_write(d, 0x24, (uint32_t)(qbase >> 32), 4);
	drv_common_write(d, 0x28, (uint32_t)(qbase + 0x1000), 4);
	drv_common_write(d, 0x2C, 0, 4);
	drv_common_write(d, 0x30, (uint32_t)(qbase + 0x2000), 4);
	drv_common_write(d, 0x34, 0, 4);
	drv_common_write(d, 0x1C, 1, 2);
}

void drv_driver_ok(struct drv *d)
{
	drv_common_write(d, 0x14, drv_status(d) | 4, 1);
}

void drv_desc(struct drv *d, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
	      uint16_t next)
{
	uint8_t *p = gmem_ptr(d->t->vm.mem, d->qbase + 16ULL * i, 16);
	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	memcpy(p + 12, &flags, 2);
	memcpy(p + 14, &next, 2);
}

void drv_submit(struct drv *d, uint16_t head)
{
	uint8_t *av = gmem_ptr(d->t->vm.mem, d->qbase + 0x1000, 0x1000);
	memcpy(av + 4 + 2 * (d->avail_idx % d->qsize), &head, 2);
	d->avail_idx++;
	__atomic_store_n((uint16_t *)(av + 2), d->avail_idx, __ATOMIC_RELEASE);
	uint32_t notify_off = cfg_read(d->t, d->slot, d->cap_notify + 8, 4);
	uint32_t mult = cfg_read(d->t, d->slot, d->cap_notify + 16, 4);
	drv_common_write(d, 0x16, 0, 2);
	uint32_t qoff = drv_common_read(d, 0x1E, 2);
	mmio_write(d->t, d->bar4 + notify_off + qoff * mult, 0, 2);
	tvm_drain(d->t);
}

uint16_t drv_used_idx(struct drv *d)
{
	/* The device thread may be writing it: read it as a driver would. */
	return __atomic_load_n((uint16_t *)gmem_ptr(d->t->vm.mem, d->qbase + 0x2002, 2),
			       __ATOMIC_ACQUIRE);
}

void drv_used_elem(struct drv *d, uint16_t i, uint32_t *id, uint32_t *len)
{
	const uint8_t *p = gmem_ptr(d->t->vm.mem, d->qbase + 0x2004 + 8ULL * (i % d->qsize), 8);
	memcpy(id, p, 4);
	memcpy(len, p + 4, 4);
}

#define HDR_GPA    0x100000ULL
#define STATUS_GPA 0x100100ULL

int blk_rw(struct drv *d, uint32_t type, uint64_t sector, uint64_t data_gpa, uint32_t len)
{
	struct guest_mem *m = d->t->vm.mem;
	uint8_t hdr[16] = { 0 };
	memcpy(hdr, &type, 4);
	memcpy(hdr + 8, &sector, 8);
	if (gmem_write(m, HDR_GPA, hdr, 16) < 0)
		return -1;
	uint8_t st = 0xFF;
	gmem_write(m, STATUS_GPA, &st, 1);
	bool device_writes = type == 0 || type == 8;
	uint16_t n = 0;
	drv_desc(d, n, HDR_GPA, 16, 1, (uint16_t)(n + 1));
	n++;
	if (len) {
		drv_desc(d, n, data_gpa, len, (uint16_t)(1 | (device_writes ? 2 : 0)), (uint16_t)(n + 1));
		n++;
	}
	drv_desc(d, n, STATUS_GPA, 1, 2, 0);
	uint16_t before = drv_used_idx(d);
	drv_submit(d, 0);
	if (drv_used_idx(d) != (uint16_t)(before + 1))
		return 0xFF;
	gmem_read(m, STATUS_GPA, &st, 1);
	return st;
}
