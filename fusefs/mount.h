/* The read-only FUSE3 view of a store (mount.c):
 *
 *   disks/NAME/disk.raw                  an imported disk (roam disk import)
 *   disks/NAME/files/                    its guest filesystem
 *   vms/VM/head/                         the VM's current commit
 *   vms/VM/checkpoints/TAG/              each named checkpoint
 *       config.json  disk0.raw ...  memory.raw (when suspended)
 *       files/       the guest filesystem on disk0 (files/p1/ ... for a
 *                    partitioned disk; files/README says what could not be
 *                    read)
 *
 * Refs are read on every lookup, so new VMs and checkpoints appear without
 * remounting; what a path shows never changes under a reader because objects
 * are immutable. */
#ifndef ROAM_FFS_MOUNT_H
#define ROAM_FFS_MOUNT_H
#include <stdbool.h>

/* Mounts the store at store_path on mountpoint and serves it until
 * unmounted. Unless foreground, the calling process exits with status 0 once
 * the mount is up and a background child serves it. Returns 0 after the
 * unmount, or -errno with a message in err. */
int ffs_mount(const char *store_path, const char *mountpoint, bool foreground,
	      char *err, size_t errlen);
/* Unmounts (fusermount3 -u, or umount2 when root). */
int ffs_umount(const char *mountpoint, char *err, size_t errlen);
#endif
