/* A hand-built struct vm (RAM, buses, PCI host; no engine, no irqchip) and a
 * small virtio-pci guest driver written against the port/MMIO interface,
 * as a guest kernel would drive the devices. Interrupts are observed through
 * the PCI host's test hooks. */
#ifndef ROAM_TEST_VIRTIO_HARNESS_H
#define ROAM_TEST_VIRTIO_HARNESS_H
#include <stdbool.h>
#include <stdint.h>
#include "monitor/vm.h"

#define T_RAM        (16ULL << 20)
#define T_MSI_ADDR   0xFEE00000ULL

struct tvm {
	struct vm vm;
	int nmsi;                       /* MSI messages seen */
	uint64_t msi_addr[64];
	uint32_t msi_data[64];
	int intx_level[24];             /* last level per GSI */
	int intx_changes;
	bool free_host_first;           /* tvm_free order (vm.c may use either) */
};

/* Creates RAM, buses and the PCI host with hooks. NULL on failure. */
struct tvm *tvm_new(void);
/* Frees devices, host, buses, RAM. */
void tvm_free(struct tvm *t);

/* Waits until every virtio device has served its kicked queues (devices
 * serve requests on their own threads). */
void tvm_drain(struct tvm *t);

/* Config cycles through 0xCF8/0xCFC. */
uint32_t cfg_read(struct tvm *t, unsigned slot, unsigned reg, unsigned len);
void cfg_write(struct tvm *t, unsigned slot, unsigned reg, uint32_t v, unsigned len);
uint64_t mmio_read(struct tvm *t, uint64_t addr, unsigned len);
void mmio_write(struct tvm *t, uint64_t addr, uint64_t v, unsigned len);

/* The guest driver for one virtio function. Queue 0 rings live at
 * qbase (desc), qbase+0x1000 (avail), qbase+0x2000 (used). */
struct drv {
	struct tvm *t;
	unsigned slot;
	uint64_t bar4, msix;            /* BAR addresses */
	uint8_t cap_common, cap_notify, cap_isr, cap_device, cap_msix, cap_pcicfg;
	uint16_t qsize;
	uint64_t qbase;
	uint16_t avail_idx, used_seen;
};

/* Finds the BARs and capabilities of the function at slot. 0 or -1. */
int drv_probe(struct drv *d, struct tvm *t, unsigned slot);
/* reset, ACK, DRIVER, features (must include VERSION_1), FEATURES_OK.
 * Returns the status read back. */
uint8_t drv_negotiate(struct drv *d, uint64_t features);
uint64_t drv_device_features(struct drv *d);
/* Enables MSI-X with vector v -> data 0x40 + v, config vector 0, queue 0
 * vector 1. */
void drv_msix_setup(struct drv *d);
/* Sets up queue 0 (size qsize, rings at qbase) and enables it. */
void drv_queue_setup(struct drv *d, uint16_t qsize, uint64_t qbase);
void drv_driver_ok(struct drv *d);
uint8_t drv_status(struct drv *d);
uint32_t drv_common_read(struct drv *d, unsigned off, unsigned len);
void drv_common_write(struct drv *d, unsigned off, uint32_t v, unsigned len);
uint32_t drv_devcfg_read(struct drv *d, unsigned off, unsigned len);

/* Writes descriptor i. */
void drv_desc(struct drv *d, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
	      uint16_t next);
/* Publishes head in the avail ring, notifies queue 0 and drains. */
void drv_submit(struct drv *d, uint16_t head);
/* used->idx, and entry i of the used ring. */
uint16_t drv_used_idx(struct drv *d);
void drv_used_elem(struct drv *d, uint16_t i, uint32_t *id, uint32_t *len);

/* virtio-blk helpers: one request with header at hdr_gpa, data, status.
 * Returns the status byte (0xFF when the request was not completed). */
int blk_rw(struct drv *d, uint32_t type, uint64_t sector, uint64_t data_gpa, uint32_t len);
#endif
