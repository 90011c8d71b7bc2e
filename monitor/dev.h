/* Devices: every device instance embeds struct dev first and has a const
 * struct dev_type. The VM keeps the list; reset, save and load walk it.
 * State records are versioned per device type: load refuses a version newer
 * than type->version or older than type->min_version. */
#ifndef ROAM_DEV_H
#define ROAM_DEV_H
#include <stdint.h>
#include "monitor/rec.h"

struct vm;
struct dev;

struct dev_type {
	const char *name;
	uint32_t version, min_version;
	void (*reset)(struct dev *d);
	/* Writes the guest-visible state (never host fds or pointers). */
	int (*save)(struct dev *d, struct rec_writer *w);
	/* Validates everything; on error leaves the device reset-safe and
	 * returns -EINVAL. */
	int (*load)(struct dev *d, struct rec_reader *r, uint32_t version);
	/* Quiesce / restart backend activity (in-flight I/O, timers) around a
	 * save. Optional. */
	void (*pause)(struct dev *d);
	void (*resume)(struct dev *d);
	void (*free)(struct dev *d);
};

struct dev {
	const struct dev_type *type;
	struct vm *vm;
	char id[32];            /* unique in the VM: "uart0", "virtio-blk0" */
	struct dev *next;
};

/* Links d into vm's device list (takes ownership: freed by vm_free). */
void vm_add_dev(struct vm *vm, struct dev *d, const struct dev_type *t, const char *id);
struct dev *vm_find_dev(struct vm *vm, const char *id);
#endif
