/* The device bus: one port-I/O space and one MMIO space per VM. Ranges map
 * to device callbacks that receive offsets relative to their base.
 * Registration rejects overlaps and wraparound. KVM exits and the BT slow
 * path both dispatch through bus_read/bus_write. Thread-safe: vCPU threads
 * dispatch concurrently while PCI BARs move under a write lock. */
#ifndef ROAM_BUS_H
#define ROAM_BUS_H
#include <stdint.h>

struct bus;

struct bus_ops {
	/* len is 1, 2, 4 or 8; data is little-endian guest data. Handlers never
	 * fail the guest: unhandled reads return all-ones. */
	void (*read)(void *opaque, uint64_t offset, void *data, unsigned len);
	void (*write)(void *opaque, uint64_t offset, const void *data, unsigned len);
};

int bus_new(uint64_t space_size, struct bus **ret);  /* 0x10000 for PIO */
void bus_free(struct bus *b);

/* Returns 0, -EEXIST on overlap, -EINVAL on empty/wrapping/out-of-space. */
int bus_register(struct bus *b, uint64_t base, uint64_t len,
		 const struct bus_ops *ops, void *opaque);
int bus_unregister(struct bus *b, uint64_t base);    /* -ENOENT if absent */

/* Dispatch. Returns 0 if a device handled it, -ENOENT if nothing is mapped
 * there (reads then fill data with 0xff). */
int bus_read(struct bus *b, uint64_t addr, void *data, unsigned len);
int bus_write(struct bus *b, uint64_t addr, const void *data, unsigned len);
#endif
