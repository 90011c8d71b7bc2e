/* The debug-exit port 0xf4 (as QEMU's isa-debug-exit): a guest write of v
 * (1, 2 or 4 bytes) stops the VM with status (v << 1) | 1. Test kernels
 * use it to report results. Reads return all ones. No state. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "monitor/bus.h"
#include "monitor/dev.h"
#include "monitor/dev/legacy.h"
#include "monitor/vm.h"

struct debug_exit { struct dev d; };

static void dx_read(void *o, uint64_t off, void *data, unsigned len)
{
	memset(data, 0xff, len);
}

static void dx_write(void *o, uint64_t off, const void *data, unsigned len)
{
	struct debug_exit *x = o;
	const uint8_t *d = data;
	uint32_t v = 0;
	for (unsigned i = 0; i < len && i < 4; i++)
		v |= (uint32_t)d[i] << (8 * i);
	vm_request_stop(x->d.vm, VM_STOP_DEBUG_EXIT, (int)((v << 1) | 1), NULL);
}

static const struct bus_ops dx_ops = { dx_read, dx_write };

static void dx_reset(struct dev *d) { }
static int dx_save(struct dev *d, struct rec_writer *w) { return w->err; }
static int dx_load(struct dev *d, struct rec_reader *r, uint32_t version) { return r->err; }
static void dx_free(struct dev *d) { free(d); }

static const struct dev_type debug_exit_type = {
	.name = "debug-exit", .version = 1, .min_version = 1,
	.reset = dx_reset, .save = dx_save, .load = dx_load, .free = dx_free,
};

int debug_exit_create(struct vm *vm)
{
	struct debug_exit *x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->d.vm = vm;
	int rc = bus_register(vm->pio, 0xf4, 4, &dx_ops, x);
	if (rc) {
		free(x);
		return rc;
	}
	vm_add_dev(vm, &x->d, &debug_exit_type, "debug-exit");
	return 0;
}
