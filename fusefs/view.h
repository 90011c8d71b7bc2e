/* A browsable snapshot: one immutable commit of a VM (its config, disks and
 * memory) or one imported disk tree, with the guest filesystems on its first
 * disk opened lazily. Because objects never change, a view never goes stale;
 * new checkpoints are new views. Shared by the FUSE mount and by
 * `roam ls/cat/cp/diff VM[@TAG]:/path`.
 *
 * VMs in a store (written by checkpoint/): ref vms/<vm>/head and
 * vms/<vm>/checkpoints/<tag> name commits whose roots are "config" (blob,
 * JSON), "disk0".."disk7" (trees), and when suspended "memory" (tree) and
 * "state". Imported disks: ref disks/<name> names a tree. */
#ifndef ROAM_FFS_VIEW_H
#define ROAM_FFS_VIEW_H
#include <pthread.h>
#include <stdint.h>
#include "fusefs/disk.h"
#include "fusefs/guestfs.h"
#include "fusefs/parttable.h"
#include "image/store.h"

#define FFS_VIEW_DISKS 8

struct ffs_view_disk {
	char name[16];              /* "disk0" */
	struct store_tree *tree;
	struct ffs_disk disk;
};

/* One browsable filesystem of disk0: the whole disk (number 0) or a
 * partition. fs is NULL when it holds no filesystem roam can read. */
struct ffs_volume {
	unsigned number;
	struct ffs_fs *fs;
};

struct ffs_view {
	struct store *store;
	struct store_hash id;       /* commit, or tree for a bare disk */
	int64_t time;               /* commit time (0 for a bare disk) */
	char *config;               /* JSON text, or NULL */
	size_t config_len;
	int ndisks;
	struct ffs_view_disk disks[FFS_VIEW_DISKS];
	struct store_tree *memory;  /* NULL unless suspended */

	pthread_mutex_t lock;       /* guards the lazy fields below */
	int volumes_ready;
	struct ffs_parts parts;
	int nvolumes;
	struct ffs_volume *volumes;
	char readme[512];           /* files/README when nothing is readable */
};

/* Opens a view of commit h (a VM) or tree h (a disk). -EINVAL with err set
 * for anything else or a malformed commit; -EBADMSG for corrupt objects. */
int ffs_view_open(struct store *s, const struct store_hash *h, struct ffs_view **ret,
		  char *err, size_t errlen);
void ffs_view_free(struct ffs_view *v);

/* Finds the volumes of disk0 (once): 0, or -errno. */
int ffs_view_volumes(struct ffs_view *v);
/* The readable filesystem for a path inside the guest: the whole-disk one,
 * or for a partitioned disk the partition named by the first component
 * ("/p2/etc" -> volume 2, *rest = "/etc"). -ENOENT when none. */
int ffs_view_fs_for_path(struct ffs_view *v, const char *path, struct ffs_fs **ret,
			 const char **rest);

/* Resolves "VM", "VM@TAG", "VM@<commit hash prefix>" or an imported disk
 * name "NAME" to the object to view. Fills a one-line error. */
int ffs_resolve_target(struct store *s, const char *target, struct store_hash *ret,
		       char *err, size_t errlen);
#endif
