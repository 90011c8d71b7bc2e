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
 *         if (rc < 0) { if (!d->bdev) blockdev_free(b); fail; }
 *     if (cfg.rng)
 *         rc = virtio_rng_create(vm);
 *
 * Each device is added to vm's device list and freed by vm_free; on success
 * virtio_blk_create takes ownership of the blockdev (freed with the device),
 * on failure the caller keeps it. Devices take PCI slots in creation order
 * (disks first: slot 1, 2, ...; then the rng).
 *
 * Requests are processed synchronously on the vCPU thread that writes the
 * queue's notify register, under the device lock. dev_type.pause waits for
 * a request in progress to finish and defers later notifications;
 * dev_type.resume processes the deferred ones. */
#ifndef ROAM_VIRTIO_H
#define ROAM_VIRTIO_H
#include <stdbool.h>

struct vm;
struct blockdev;

/* Creates a virtio-blk device over bdev (capacity = size / 512, rounded
 * down). readonly advertises VIRTIO_BLK_F_RO and fails writes; it is forced
 * on when bdev->readonly. id names the device in the VM (unique, < 32
 * chars) and is also the serial returned by GET_ID (first 20 bytes).
 * Returns 0, -EINVAL (bad id, empty disk), -ENOSPC (no PCI slot or MMIO
 * space), -EEXIST (duplicate id), -ENOMEM, or the backend's -errno. */
int virtio_blk_create(struct vm *vm, struct blockdev *bdev, bool readonly, const char *id);

/* Creates a virtio-rng device ("virtio-rng0") fed by getrandom(2). */
int virtio_rng_create(struct vm *vm);
#endif
