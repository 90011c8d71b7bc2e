/* virtio 1.x PCI devices (modern transport only, MSI-X with INTx fallback):
 * virtio-blk and virtio-rng.
 *
 * What vm.c calls, after pci_host_create (vm->pci must be set):
 *
 *     for each cfg.disks[i]:
 *         struct blockdev *b = d->bdev;
 *         if (!b && (rc = blockdev_open_raw(d->path, d->readonly, &b)) < 0)
 *             fail ("cannot open disk PATH: strerror(-rc)");
 *         rc = virtio_blk_create(vm, b, d->readonly, id);   id: "virtio-blk<i>"
 *         if (rc < 0) { blockdev_free(b); fail; }
 *     if (cfg.rng)
 *         rc = virtio_rng_create(vm);
 *
 * Ownership: on success virtio_blk_create owns the blockdev (freed with the
 * device); on failure the caller keeps it. (checkpoint/ expects vm_new to
 * own every caller-supplied bdev even when vm_new fails.) Each device is
 * added to vm's device list and freed by vm_free. Devices take PCI slots in
 * creation order (disks first: slot 1, 2, ...; then the rng).
 *
 * Each device serves its queues on its own worker thread: a notify from a
 * vCPU only wakes the worker, so the vCPU keeps running during disk I/O.
 * dev_type.pause serves every request already notified, then holds the
 * worker (call it after vm_pause: nothing is then in flight or pending);
 * dev_type.resume lets it go on. Notifications that arrive while paused are
 * part of the saved state; after dev_type.load they are served on the next
 * notify or resume (load never starts DMA by itself). dev_type.free joins
 * the worker, which may touch guest RAM until then: vm_free must free the
 * devices before the guest memory. */
#ifndef ROAM_VIRTIO_H
#define ROAM_VIRTIO_H
#include <stdbool.h>

struct vm;
struct blockdev;

/* Creates a virtio-blk device over bdev (capacity = size / 512, rounded
 * down). readonly advertises VIRTIO_BLK_F_RO and fails writes; it is forced
 * on when bdev->readonly. id names the device in the VM (unique, < 32
 * chars) and is also the serial returned by GET_ID (first 20 bytes).
 * Owns bdev on success; on failure the caller still owns it. Returns 0,
 * -EINVAL (bad id, empty disk), -ENOSPC (no PCI slot or MMIO space),
 * -EEXIST (duplicate id), -ENOMEM, or the backend's -errno. */
int virtio_blk_create(struct vm *vm, struct blockdev *bdev, bool readonly, const char *id);

/* Creates a virtio-rng device ("virtio-rng0") fed by getrandom(2). */
int virtio_rng_create(struct vm *vm);
#endif
