/* Assembly of the legacy PC devices (see legacy.h), and the sinks for
 * ports Linux writes for I/O delays (0x80 POST codes, 0xed). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "monitor/bus.h"
#include "monitor/dev.h"
#include "monitor/dev/legacy.h"
#include "monitor/vm.h"

struct sinks { struct dev d; };

static void sink_read(void *o, uint64_t off, void *data, unsigned len)
{
	memset(data, 0xff, len);
}

static void sink_write(void *o, uint64_t off, const void *data, unsigned len) { }

static const struct bus_ops sink_ops = { sink_read, sink_write };

static void sinks_reset(struct dev *d) { }
static int sinks_save(struct dev *d, struct rec_writer *w) { return w->err; }
static int sinks_load(struct dev *d, struct rec_reader *r, uint32_t version) { return r->err; }
static void sinks_free(struct dev *d) { free(d); }

static const struct dev_type sinks_type = {
	.name = "port-sinks", .version = 1, .min_version = 1,
	.reset = sinks_reset, .save = sinks_save, .load = sinks_load, .free = sinks_free,
};

int port_sinks_create(struct vm *vm)
{
	struct sinks *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	int rc = bus_register(vm->pio, 0x80, 1, &sink_ops, s);
	if (!rc) {
		rc = bus_register(vm->pio, 0xed, 1, &sink_ops, s);
		if (rc)
			bus_unregister(vm->pio, 0x80);
	}
	if (rc) {
		free(s);
		return rc;
	}
	vm_add_dev(vm, &s->d, &sinks_type, "port-sinks");
	return 0;
}

int legacy_devices_create(struct vm *vm)
{
	if (!vm || !vm->pio || !vm->ev)
		return -EINVAL;
	struct console *con = NULL;
	int rc = console_new(vm, vm->cfg.console_in, vm->cfg.console_out, &con);
	if (rc)
		return rc;
	vm->con = con;
	/* uart0 owns the console from here on, even on failure. */
	rc = uart_create(vm, 0x3f8, 4, con, "uart0");
	if (rc) {
		vm->con = NULL;
		return rc;
	}
	if ((rc = pit_create(vm)) || (rc = rtc_create(vm)) || (rc = i8042_create(vm)) ||
	    (rc = debug_exit_create(vm)) || (rc = port_sinks_create(vm)))
		return rc;
	return 0;
}
