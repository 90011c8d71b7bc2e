/* The virtio 1.x PCI transport shared by virtio device models: struct
 * virtio_dev (embedded first in each device), the per-device ops table, and
 * the generic dev_type callbacks.
 *
 * BAR layout of every virtio function:
 *   BAR1 (32-bit, 4 KiB): MSI-X table at 0, PBA at 0x800
 *   BAR4 (64-bit, 16 KiB):
 *     0x0000  common config (struct virtio_pci_common_cfg, 0x40 bytes)
 *     0x1000  ISR status (1 byte, read clears, deasserts INTx)
 *     0x2000  device config (ops->cfg_size bytes; no cap when 0)
 *     0x3000  notify: queue q at 0x3000 + 4 * q (notify_off_multiplier 4)
 *
 * State record (version 1), little-endian, after the PCI function record
 * (pci_dev_save):
 *   u64 host_features  u64 guest_features  u32 dfselect  u32 gfselect
 *   u8 status  u8 config_generation  u8 isr  u16 msix_config  u16 queue_select
 *   u8 nqueues, then per queue: u16 msix_vector + virtq_save record
 *   u32 kicked-queue mask (notifications not yet served), then the
 *   device's own tail (ops->save).
 *
 * Threads: each device has one worker thread. A notify write (vCPU thread)
 * only sets the queue's kick bit and wakes the worker, so the vCPU goes on
 * running; the worker pops chains under the device lock, serves each one
 * (ops->handle: disk I/O) with the lock dropped and inflight set, then
 * pushes it and interrupts under the lock. Device reset, pause, save and
 * load wait until no chain is in flight. */
#ifndef ROAM_VIRTIO_INT_H
#define ROAM_VIRTIO_INT_H
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "monitor/dev.h"
#include "monitor/dev/pci.h"
#include "monitor/dev/virtq.h"

#define VIRTIO_MAX_QUEUES    8
#define VIRTIO_NO_VECTOR     0xFFFF
#define VIRTIO_STATE_VERSION 1

/* device_status bits */
#define VIRTIO_S_ACKNOWLEDGE 0x01
#define VIRTIO_S_DRIVER      0x02
#define VIRTIO_S_DRIVER_OK   0x04
#define VIRTIO_S_FEATURES_OK 0x08
#define VIRTIO_S_NEEDS_RESET 0x40
#define VIRTIO_S_FAILED      0x80

/* transport feature bits */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX     29
#define VIRTIO_F_VERSION_1     32

/* BAR4 regions */
#define VIRTIO_BAR_MSIX      1
#define VIRTIO_BAR_MAIN      4
#define VIRTIO_BAR_SIZE      0x4000
#define VIRTIO_COMMON_OFF    0x0000
#define VIRTIO_COMMON_LEN    0x40
#define VIRTIO_ISR_OFF       0x1000
#define VIRTIO_DEVCFG_OFF    0x2000
#define VIRTIO_NOTIFY_OFF    0x3000
#define VIRTIO_NOTIFY_MULT   4

struct virtio_dev;

struct virtio_dev_ops {
	uint16_t device_id;             /* virtio type: 2 blk, 4 rng */
	uint32_t class_code;            /* PCI class */
	unsigned nqueues;
	uint16_t queue_max;             /* power of two <= VIRTQ_MAX_SIZE */
	uint32_t cfg_size;              /* device config bytes, <= 0x1000 */
	/* Fills cfg_size bytes of device config. Device lock held. */
	void (*get_config)(struct virtio_dev *vd, uint8_t *buf);
	/* Serves one chain from queue q; sets *written (bytes written into
	 * the chain). 0, or -EINVAL when the chain is malformed for this
	 * device (the device then goes to NEEDS_RESET). Runs on the worker
	 * thread WITHOUT the device lock (vd->s must not be touched; the
	 * queue's struct virtq is stable while a chain is in flight). */
	int (*handle)(struct virtio_dev *vd, unsigned q, struct virtq_req *req,
		      uint32_t *written);
	/* Optional: device-specific reset, state tail, teardown. */
	void (*reset)(struct virtio_dev *vd);
	void (*save)(struct virtio_dev *vd, struct rec_writer *w);
	int (*load)(struct virtio_dev *vd, struct rec_reader *r);
	void (*release)(struct virtio_dev *vd);
};

struct virtio_queue {
	struct virtq q;
	uint16_t vector;
};

struct virtio_dev {
	struct dev dev;                 /* first */
	struct pci_dev pci;
	const struct virtio_dev_ops *ops;
	struct vm *vm;
	pthread_mutex_t lock;           /* s, paused, inflight, stop, req */
	struct virtio_state {           /* guest-visible, saved */
		uint64_t host_features, guest_features;
		uint32_t dfselect, gfselect;
		uint8_t status, cfg_gen, isr;
		uint16_t msix_config, queue_sel;
		uint32_t kick;          /* queues notified, not yet served */
		struct virtio_queue vq[VIRTIO_MAX_QUEUES];
	} s;
	bool paused;                    /* worker holds off (dev_type.pause) */
	bool inflight;                  /* worker is serving req unlocked */
	unsigned hold;                  /* threads waiting for inflight to clear */
	bool stop;
	pthread_cond_t work;            /* worker waits: kick / resume / stop */
	pthread_cond_t idle;            /* others wait: inflight cleared, idle */
	pthread_t worker;
	struct virtq_req *req;          /* the chain being served */
};

/* Sets up the PCI function, BARs and capabilities. vd must be zeroed.
 * Returns 0 or -errno; on error nothing needs undoing. */
int virtio_dev_init(struct virtio_dev *vd, struct vm *vm, const struct virtio_dev_ops *ops,
		    uint64_t host_features);
/* Plugs the function into a slot and links the device into the VM under
 * id with dev_type t. On error the caller calls virtio_dev_destroy. */
int virtio_dev_plug(struct virtio_dev *vd, const struct dev_type *t, const char *id);
/* Stops the worker and releases what virtio_dev_init acquired (not vd
 * itself). */
void virtio_dev_destroy(struct virtio_dev *vd);

/* Waits until the worker has served every kicked queue (or is paused).
 * For tests and for callers that need completion before looking at the
 * rings. */
void virtio_dev_drain(struct virtio_dev *vd);

/* The device hit malformed guest input: DEVICE_NEEDS_RESET, stop serving
 * queues, config interrupt when the driver is up. Lock held. */
void virtio_dev_fail(struct virtio_dev *vd);

/* Generic dev_type callbacks for virtio devices (.free frees the
 * container: struct virtio_dev must be its first member). */
void virtio_dev_reset(struct dev *d);
int virtio_dev_save(struct dev *d, struct rec_writer *w);
int virtio_dev_load(struct dev *d, struct rec_reader *r, uint32_t version);
void virtio_dev_pause(struct dev *d);
void virtio_dev_resume(struct dev *d);
void virtio_dev_free(struct dev *d);
#endif
