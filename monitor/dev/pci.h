/* PCI host bridge (configuration mechanism 1) and the PCI function model
 * that device models (virtio) embed.
 *
 * What vm.c calls, in order, after irqchip_new and the legacy devices:
 *     rc = pci_host_create(vm, &vm->pci);
 * The host is a device in vm's list ("pci0"): vm_free frees it through that
 * list; never free it separately. It registers PIO 0xCF8-0xCFB (address
 * register, dword accesses only; byte/word accesses there are ignored) and
 * 0xCFC-0xCFF (data, byte/word/dword). Bus 0 only; the host bridge is
 * 00:00.0 (8086:1237, class 0x060000); functions take slots 1, 2, ... in
 * creation order (function 0 only).
 *
 * Firmware-less platform: every BAR gets an address at creation, memory BARs
 * in [PCI_MMIO_BASE, PCI_MMIO_END), naturally aligned, and memory decoding
 * starts enabled, so Linux (pci=conf1 or the default probe) and test kernels
 * can use the BARs as found. BARs are (un)registered on vm->mmio as the
 * guest moves them or toggles Command.Memory.
 *
 * INTx: each function uses INTA; slot s drives IOAPIC pin (GSI)
 * BOOT_PCI_IRQ_PIN(s, 0) = 16 + ((s - 1) mod 8), the swizzle of the MP table
 * (monitor/boot/boot.h), level-triggered; Interrupt Line holds that GSI.
 * MSI-X messages go to vm_msi(). */
#ifndef ROAM_PCI_H
#define ROAM_PCI_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "monitor/bus.h"
#include "monitor/rec.h"

struct vm;
struct pci_host;

#define PCI_MMIO_BASE   0xC0000000ULL
#define PCI_MMIO_END    0xFEC00000ULL
#define PCI_MAX_SLOTS   32
#define PCI_MSIX_MAX    32          /* vectors per function */
#define PCI_CFG_SIZE    256

/* Config space offsets and bits (type-0 header). */
#define PCI_VENDOR_ID       0x00
#define PCI_DEVICE_ID       0x02
#define PCI_COMMAND         0x04
#define  PCI_CMD_IO         0x0001
#define  PCI_CMD_MEM        0x0002
#define  PCI_CMD_MASTER     0x0004
#define  PCI_CMD_INTX_OFF   0x0400
#define PCI_STATUS          0x06
#define  PCI_STATUS_INTX    0x0008
#define  PCI_STATUS_CAPS    0x0010
#define PCI_REVISION        0x08
#define PCI_CLASS_PROG      0x09
#define PCI_HEADER_TYPE     0x0E
#define PCI_BAR0            0x10
#define PCI_SUBSYS_VENDOR   0x2C
#define PCI_SUBSYS_ID       0x2E
#define PCI_CAP_PTR         0x34
#define PCI_INT_LINE        0x3C
#define PCI_INT_PIN         0x3D
#define PCI_CAP_ID_VNDR     0x09
#define PCI_CAP_ID_MSIX     0x11
#define PCI_CAP_START       0x40

/* MSI-X table and PBA live in one 4 KiB BAR: table at 0, PBA at 0x800. */
#define PCI_MSIX_BAR_SIZE   0x1000
#define PCI_MSIX_PBA_OFF    0x800
#define PCI_MSIX_ENABLE     0x8000  /* message control */
#define PCI_MSIX_FMASK      0x4000

/* Creates the host bridge and registers its ports and its device record.
 * Returns 0 or -errno (-EEXIST if the ports are taken, -ENOMEM). */
int pci_host_create(struct vm *vm, struct pci_host **ret);

/* Test hook: when set, MSI-X messages and INTx level changes go to these
 * instead of vm_msi / vm_set_irq. Either may be NULL (then the VM's is
 * used). */
typedef void (*pci_msi_fn)(void *opaque, uint64_t addr, uint32_t data);
typedef void (*pci_intx_fn)(void *opaque, unsigned gsi, int level);
void pci_host_set_irq_hooks(struct pci_host *h, pci_msi_fn msi, pci_intx_fn intx,
			    void *opaque);

/* ---- for device models ---- */

enum pci_bar_type { PCI_BAR_NONE = 0, PCI_BAR_MEM32, PCI_BAR_MEM64 };

struct pci_bar {
	enum pci_bar_type type;
	uint64_t size;                  /* power of two, >= 4 KiB */
	const struct bus_ops *ops;
	void *opaque;
	bool mapped;                    /* registered on vm->mmio at mapped_addr */
	uint64_t mapped_addr;
};

/* One PCI function. The config image, BARs and MSI-X enable/mask bits are
 * guarded by the host's lock (config cycles); the MSI-X table, PBA and the
 * INTx line by msix_lock, a leaf lock (only the interrupt controller's
 * locks are taken under it) that may be taken under the device's own lock
 * or the host's. */
struct pci_dev {
	struct pci_host *host;
	unsigned slot;
	uint8_t cfg[PCI_CFG_SIZE];      /* guest-visible image */
	uint8_t wmask[PCI_CFG_SIZE];    /* guest-writable bits */
	uint8_t init[PCI_CFG_SIZE];     /* image after reset */
	uint8_t cap_end, cap_last;      /* next free cap offset, last cap */
	struct pci_bar bar[6];
	/* Optional: config bytes [hook_off, hook_off + hook_len) the device
	 * emulates. Called with the host lock held after the generic
	 * read/write of an access touching them (reg/len: the whole access);
	 * read may patch out[]. */
	void (*cfg_hook_read)(struct pci_dev *pd, unsigned reg, uint8_t *out, unsigned len);
	void (*cfg_hook_write)(struct pci_dev *pd, unsigned reg, unsigned len);
	uint8_t hook_off, hook_len;
	/* Optional: stop background work that may still raise interrupts
	 * (device threads). The host calls it when it is freed before the
	 * function; afterwards pd->host is NULL and interrupts are dropped. */
	void (*quiesce)(struct pci_dev *pd);

	pthread_mutex_t msix_lock;
	unsigned msix_nvec;             /* 0: no MSI-X */
	uint8_t msix_cap, msix_bar;
	bool msix_enabled, msix_fmask;  /* mirrors of message control */
	uint8_t msix_table[PCI_MSIX_MAX * 16];
	uint32_t msix_pba;
	_Atomic int intx_level;         /* asserted by the device */
	bool intx_off;                  /* Command.INTxDisable (under msix_lock) */
};

/* Initializes pd's header (no BARs or caps yet). Call once, before the
 * pci_dev_add_* calls and pci_dev_plug. */
int pci_dev_init(struct pci_dev *pd, struct pci_host *h, uint16_t vendor,
		 uint16_t device, uint32_t class_code, uint8_t revision,
		 uint16_t subsys_vendor, uint16_t subsys_id);
/* Declares BAR idx (a 64-bit BAR takes idx and idx + 1) and assigns its
 * address. ops/opaque receive accesses relative to the BAR. */
int pci_dev_add_bar(struct pci_dev *pd, int idx, enum pci_bar_type type, uint64_t size,
		    const struct bus_ops *ops, void *opaque);
/* Appends a capability (cap[0] = id; cap[1], the next pointer, is filled in).
 * Returns its config offset (> 0) or -ENOSPC. */
int pci_dev_add_cap(struct pci_dev *pd, const uint8_t *cap, unsigned len);
/* Adds an MSI-X capability with nvec vectors (1..PCI_MSIX_MAX) and its
 * table/PBA BAR (32-bit memory BAR idx, PCI_MSIX_BAR_SIZE bytes). */
int pci_dev_add_msix(struct pci_dev *pd, int bar_idx, unsigned nvec);
/* Takes a free slot, maps the BARs and makes the function visible.
 * -ENOSPC when all slots are used; -EEXIST if a BAR cannot be mapped. */
int pci_dev_plug(struct pci_dev *pd);
/* Unplugs pd from its host (if the host still exists) and frees its locks
 * (the vm frees the buses; BARs are not unregistered). Either the host or
 * its functions may be freed first. */
void pci_dev_destroy(struct pci_dev *pd);

/* Back to the reset image (BAR addresses as assigned at creation), MSI-X
 * table masked, PBA clear, INTx deasserted. */
void pci_dev_reset(struct pci_dev *pd);

bool pci_msix_enabled(struct pci_dev *pd);
/* Sends MSI-X vector vec, or sets its pending bit while masked. Vectors
 * >= nvec are ignored. */
void pci_msix_notify(struct pci_dev *pd, unsigned vec);
unsigned pci_msix_nvec(const struct pci_dev *pd);
/* Drives INTA (Command.INTxDisable holds the line low). */
void pci_set_intx(struct pci_dev *pd, int level);

/* State record of the function: config image, MSI-X table, PBA, INTx.
 * Load validates that read-only bits match this function and re-maps the
 * BARs; -EINVAL (pd unchanged) on any mismatch. */
void pci_dev_save(struct pci_dev *pd, struct rec_writer *w);
int pci_dev_load(struct pci_dev *pd, struct rec_reader *r);
#endif
