/* A minimal machine for device tests: a struct vm with real buses, event
 * loop and guest memory, and recording versions of the vm.c hooks devices
 * call (vm_set_irq, vm_request_stop, vm_kick_vcpu, vm_guest_tsc); the
 * device list is the real one (monitor/vm_devs.c). Include from exactly one
 * .c file per test program. */
#ifndef ROAM_TEST_FAKE_VM_H
#define ROAM_TEST_FAKE_VM_H
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "monitor/bus.h"
#include "monitor/dev.h"
#include "monitor/evloop.h"
#include "monitor/guest_mem.h"
#include "monitor/irq.h"
#include "monitor/vm.h"

static struct {
	_Atomic int level[IOAPIC_PINS];
	_Atomic int edges[IOAPIC_PINS];
	_Atomic int kicks[VM_MAX_CPUS];
	char msg[256];
} fake;

void vm_set_irq(struct vm *vm, unsigned gsi, int level)
{
	if (gsi < IOAPIC_PINS) {
		if (level && !fake.level[gsi])
			fake.edges[gsi]++;
		fake.level[gsi] = level;
	}
	if (vm->irq)
		irqchip_set_irq(vm->irq, gsi, level);
}

void vm_msi(struct vm *vm, uint64_t addr, uint32_t data)
{
	if (vm->irq)
		irqchip_msi(vm->irq, addr, data);
}

void vm_request_stop(struct vm *vm, enum vm_stop why, int status, const char *fmt, ...)
{
	int expect = VM_RUNNING;
	if (!atomic_compare_exchange_strong(&vm->stop, &expect, (int)why))
		return;
	vm->exit_status = status;
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(fake.msg, sizeof(fake.msg), fmt, ap);
		va_end(ap);
	}
}

void vm_kick_vcpu(struct vm *vm, int cpu)
{
	if (cpu >= 0 && cpu < VM_MAX_CPUS)
		fake.kicks[cpu]++;
}

uint64_t vm_guest_tsc(const struct vm *vm)
{
	return (now_ns() - vm->tsc_epoch_ns) * vm->tsc_khz / 1000000 + vm->tsc_offset;
}

static inline void fake_reset(void)
{
	for (int i = 0; i < IOAPIC_PINS; i++)
		fake.level[i] = fake.edges[i] = 0;
	for (int i = 0; i < VM_MAX_CPUS; i++)
		fake.kicks[i] = 0;
	fake.msg[0] = 0;
}

static inline void fake_vm_free(struct vm *vm)
{
	if (!vm)
		return;
	if (vm->ev)
		evloop_stop(vm->ev);
	while (vm->devs) {
		struct dev *d = vm->devs;
		vm->devs = d->next;
		d->type->free(d);
	}
	irqchip_free(vm->irq);
	bus_free(vm->pio);
	bus_free(vm->mmio);
	evloop_free(vm->ev);
	gmem_free(vm->mem);
	pthread_mutex_destroy(&vm->lock);
	free(vm);
}

/* A VM with ncpus CPUs and mem_mb MiB of RAM; with_irq adds the irqchip. */
static inline int fake_vm_new(int ncpus, uint64_t mem_mb, int with_irq, struct vm **ret)
{
	fake_reset();
	struct vm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	pthread_mutex_init(&vm->lock, NULL);
	vm->ncpus = vm->cfg.ncpus = ncpus;
	vm->cfg.mem_size = mem_mb << 20;
	vm->cfg.console_in = vm->cfg.console_out = -1;
	vm->tsc_khz = 2000000;
	vm->tsc_epoch_ns = now_ns();
	int rc;
	if ((rc = bus_new(0x10000, &vm->pio)) || (rc = bus_new(0, &vm->mmio)) ||
	    (rc = evloop_new(&vm->ev)) || (rc = gmem_new(mem_mb << 20, &vm->mem)) ||
	    (with_irq && (rc = irqchip_new(vm, &vm->irq)))) {
		fake_vm_free(vm);
		return rc;
	}
	*ret = vm;
	return 0;
}

/* Port and MMIO helpers. */
static inline void outb(struct vm *vm, uint16_t port, uint8_t v) { bus_write(vm->pio, port, &v, 1); }
static inline uint8_t inb(struct vm *vm, uint16_t port)
{
	uint8_t v = 0;
	bus_read(vm->pio, port, &v, 1);
	return v;
}
static inline void outl(struct vm *vm, uint16_t port, uint32_t v) { bus_write(vm->pio, port, &v, 4); }

/* Saves device d into a fresh writer (caller frees). */
static inline int save_dev(struct dev *d, struct rec_writer *w)
{
	rec_writer_init(w);
	return d->type->save(d, w);
}

static inline int load_dev(struct dev *d, const struct rec_writer *w)
{
	struct rec_reader r;
	rec_reader_init(&r, w->buf, w->len);
	return d->type->load(d, &r, d->type->version);
}

static inline int same_rec(const struct rec_writer *a, const struct rec_writer *b)
{
	return a->len == b->len && !memcmp(a->buf, b->buf, a->len);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static inline uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static inline void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}
#endif
