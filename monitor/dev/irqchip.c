/* The interrupt controller complex of monitor/irq.h: creation and bus
 * registration, the one lock, routing of device lines (GSI) to the PIC and
 * IOAPIC, MSI delivery to the LAPICs (or the KVM sink), the per-vCPU entry
 * points the engines call, and the "pic"/"ioapic" save/load records.
 * LAPIC state is saved by the engines through the canonical register page
 * (lapic_get_page/lapic_set_page) and the APIC base / TSC-deadline MSRs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "monitor/bus.h"
#include "monitor/dev/irqchip_int.h"
#include "monitor/evloop.h"

void irqchip_lock(struct irqchip *c) { pthread_mutex_lock(&c->lock); }

void irqchip_unlock(struct irqchip *c)
{
	unsigned m = c->kick;
	c->kick = 0;
	pthread_mutex_unlock(&c->lock);
	for (int i = 0; m; i++, m >>= 1)
		if (m & 1)
			vm_kick_vcpu(c->vm, i);
}

static struct lapic *cpu_apic(struct irqchip *c, int cpu)
{
	return c && cpu >= 0 && cpu < c->ncpus ? &c->cpu[cpu] : NULL;
}

void irqchip_pic_changed(struct irqchip *c)
{
	if (pic_pending_vector(&c->pic) < 0)
		return;
	if (c->sink) {
		c->kick |= 1;   /* the engine injects the PIC itself */
		return;
	}
	for (int i = 0; i < c->ncpus; i++)
		if (lapic_accepts_pic(&c->cpu[i]))
			c->kick |= 1u << i;
}

void irqchip_deliver(struct irqchip *c, uint8_t dest, bool logical, unsigned mode,
		     uint8_t vector, bool level)
{
	if (mode == APIC_DM_LOWEST) {
		/* Lowest priority: the matching, enabled APIC with the lowest
		 * TPR (first one on ties). */
		struct lapic *best = NULL;
		for (int i = 0; i < c->ncpus; i++) {
			struct lapic *a = &c->cpu[i];
			if (!lapic_match_dest(a, dest, logical) || !(a->svr & APIC_SVR_ENABLE))
				continue;
			if (!best || (a->tpr & 0xf0) < (best->tpr & 0xf0))
				best = a;
		}
		if (best)
			lapic_accept(best, APIC_DM_FIXED, vector, level);
		return;
	}
	for (int i = 0; i < c->ncpus; i++)
		if (lapic_match_dest(&c->cpu[i], dest, logical))
			lapic_accept(&c->cpu[i], mode, vector, level);
}

void irqchip_send_msi(struct irqchip *c, uint64_t addr, uint32_t data)
{
	if (c->sink) {
		c->sink(c->sink_opaque, addr, data);
		return;
	}
	if ((addr >> 20) != (LAPIC_BASE >> 20))
		return;         /* not an interrupt message: dropped */
	unsigned mode = (data >> 8) & 7;
	bool level = data & (1u << 15);
	irqchip_deliver(c, (uint8_t)(addr >> 12), addr & 4, mode, (uint8_t)data,
			level && (mode == APIC_DM_FIXED || mode == APIC_DM_LOWEST));
	if (mode == APIC_DM_EXTINT)
		irqchip_pic_changed(c);
}

/* ---- buses ---- */

static void pic_rw(struct irqchip *c, unsigned chip, uint64_t off, uint8_t *d,
		   unsigned len, bool wr)
{
	irqchip_lock(c);
	for (unsigned i = 0; i < len; i++) {
		uint64_t port = off + i;
		if (port > 1) {
			if (!wr)
				d[i] = 0xff;
			continue;
		}
		if (wr)
			pic_port_write(&c->pic, chip, (unsigned)port, d[i]);
		else
			d[i] = pic_port_read(&c->pic, chip, (unsigned)port);
	}
	irqchip_pic_changed(c);
	irqchip_unlock(c);
}

static void master_read(void *o, uint64_t off, void *d, unsigned len) { pic_rw(o, 0, off, d, len, false); }
static void master_write(void *o, uint64_t off, const void *d, unsigned len) { pic_rw(o, 0, off, (uint8_t *)d, len, true); }
static void slave_read(void *o, uint64_t off, void *d, unsigned len) { pic_rw(o, 1, off, d, len, false); }
static void slave_write(void *o, uint64_t off, const void *d, unsigned len) { pic_rw(o, 1, off, (uint8_t *)d, len, true); }

static void elcr_read(void *o, uint64_t off, void *data, unsigned len)
{
	struct irqchip *c = o;
	uint8_t *d = data;
	irqchip_lock(c);
	for (unsigned i = 0; i < len; i++)
		d[i] = off + i < 2 ? pic_elcr_read(&c->pic, (unsigned)(off + i)) : 0xff;
	irqchip_unlock(c);
}

static void elcr_write(void *o, uint64_t off, const void *data, unsigned len)
{
	struct irqchip *c = o;
	const uint8_t *d = data;
	irqchip_lock(c);
	for (unsigned i = 0; i < len; i++)
		if (off + i < 2)
			pic_elcr_write(&c->pic, (unsigned)(off + i), d[i]);
	irqchip_pic_changed(c);
	irqchip_unlock(c);
}

static void io_read(void *o, uint64_t off, void *d, unsigned len)
{
	struct irqchip *c = o;
	irqchip_lock(c);
	ioapic_mmio_read(c, off, d, len);
	irqchip_unlock(c);
}

static void io_write(void *o, uint64_t off, const void *d, unsigned len)
{
	struct irqchip *c = o;
	irqchip_lock(c);
	ioapic_mmio_write(c, off, d, len);
	irqchip_unlock(c);
}

static const struct bus_ops master_ops = { master_read, master_write };
static const struct bus_ops slave_ops = { slave_read, slave_write };
static const struct bus_ops elcr_ops = { elcr_read, elcr_write };
static const struct bus_ops ioapic_ops = { io_read, io_write };

/* ---- save/load records ---- */

struct irq_dev {
	struct dev d;
	struct irqchip *c;
};

static struct irqchip *dev_chip(struct dev *d) { return ((struct irq_dev *)d)->c; }

static void pic_dev_reset(struct dev *d)
{
	struct irqchip *c = dev_chip(d);
	irqchip_lock(c);
	pic_reset(&c->pic);
	irqchip_unlock(c);
}

static int pic_dev_save(struct dev *d, struct rec_writer *w)
{
	struct irqchip *c = dev_chip(d);
	irqchip_lock(c);
	pic_save(&c->pic, w);
	irqchip_unlock(c);
	return w->err;
}

static int pic_dev_load(struct dev *d, struct rec_reader *r, uint32_t version)
{
	struct irqchip *c = dev_chip(d);
	irqchip_lock(c);
	int rc = pic_load(&c->pic, r);
	if (!rc)
		irqchip_pic_changed(c);
	irqchip_unlock(c);
	return rc;
}

static void ioapic_dev_reset(struct dev *d)
{
	struct irqchip *c = dev_chip(d);
	irqchip_lock(c);
	ioapic_reset(&c->ioapic, (uint8_t)c->ncpus);
	irqchip_unlock(c);
}

static int ioapic_dev_save(struct dev *d, struct rec_writer *w)
{
	struct irqchip *c = dev_chip(d);
	irqchip_lock(c);
	ioapic_save(&c->ioapic, w);
	irqchip_unlock(c);
	return w->err;
}

static int ioapic_dev_load(struct dev *d, struct rec_reader *r, uint32_t version)
{
	struct irqchip *c = dev_chip(d);
	irqchip_lock(c);
	int rc = ioapic_load(&c->ioapic, r);
	if (!rc)
		ioapic_service_all(c);
	irqchip_unlock(c);
	return rc;
}

static void irq_dev_free(struct dev *d) { free(d); }

static const struct dev_type pic_type = {
	.name = "pic", .version = 1, .min_version = 1,
	.reset = pic_dev_reset, .save = pic_dev_save, .load = pic_dev_load,
	.free = irq_dev_free,
};
static const struct dev_type ioapic_type = {
	.name = "ioapic", .version = 1, .min_version = 1,
	.reset = ioapic_dev_reset, .save = ioapic_dev_save, .load = ioapic_dev_load,
	.free = irq_dev_free,
};

/* ---- lifetime ---- */

static void lapic_timer_cb(void *opaque)
{
	struct lapic *a = opaque;
	irqchip_lock(a->chip);
	lapic_timer_fire(a);
	irqchip_unlock(a->chip);
}

static const struct { uint64_t base, len; const struct bus_ops *ops; } pio_ranges[] = {
	{ 0x20, 2, &master_ops }, { 0xa0, 2, &slave_ops }, { 0x4d0, 2, &elcr_ops },
};

int irqchip_new(struct vm *vm, struct irqchip **ret)
{
	if (!vm || !vm->pio || !vm->mmio || !vm->ev || vm->ncpus < 1 || vm->ncpus > VM_MAX_CPUS)
		return -EINVAL;
	struct irqchip *c = calloc(1, sizeof(*c));
	struct irq_dev *pd = calloc(1, sizeof(*pd)), *id = calloc(1, sizeof(*id));
	int rc = -ENOMEM, nreg = 0;
	bool mmio = false;
	if (!c || !pd || !id)
		goto err;
	c->vm = vm;
	c->ncpus = vm->ncpus;
	pthread_mutex_init(&c->lock, NULL);
	pic_reset(&c->pic);
	ioapic_reset(&c->ioapic, (uint8_t)vm->ncpus);
	for (int i = 0; i < c->ncpus; i++) {
		struct lapic *a = &c->cpu[i];
		a->chip = c;
		a->cpu = i;
		a->id = (uint32_t)i << 24;
		a->base_msr = LAPIC_BASE | APIC_BASE_ENABLE | (i == 0 ? APIC_BASE_BSP : 0);
		rc = ev_timer_new(vm->ev, lapic_timer_cb, a, &a->timer);
		if (rc)
			goto err;
		lapic_reset(a, i == 0);
	}
	for (; nreg < (int)(sizeof(pio_ranges) / sizeof(pio_ranges[0])); nreg++) {
		rc = bus_register(vm->pio, pio_ranges[nreg].base, pio_ranges[nreg].len,
				  pio_ranges[nreg].ops, c);
		if (rc)
			goto err;
	}
	rc = bus_register(vm->mmio, IOAPIC_BASE, 0x1000, &ioapic_ops, c);
	if (rc)
		goto err;
	mmio = true;
	pd->c = id->c = c;
	vm_add_dev(vm, &pd->d, &pic_type, "pic");
	vm_add_dev(vm, &id->d, &ioapic_type, "ioapic");
	*ret = c;
	return 0;
err:
	if (mmio)
		bus_unregister(vm->mmio, IOAPIC_BASE);
	while (nreg-- > 0)
		bus_unregister(vm->pio, pio_ranges[nreg].base);
	free(pd);
	free(id);
	irqchip_free(c);
	return rc;
}

void irqchip_free(struct irqchip *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->ncpus; i++)
		ev_timer_free(c->cpu[i].timer);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* ---- lines and messages ---- */

void irqchip_set_irq(struct irqchip *c, unsigned gsi, int level)
{
	if (gsi >= IOAPIC_PINS)
		return;
	irqchip_lock(c);
	if (gsi < 16 && gsi != 2) {
		pic_set_line(&c->pic, gsi, level);
		irqchip_pic_changed(c);
	}
	ioapic_set_line(c, gsi == 0 ? 2 : gsi, level);
	irqchip_unlock(c);
}

void irqchip_msi(struct irqchip *c, uint64_t addr, uint32_t data)
{
	irqchip_lock(c);
	irqchip_send_msi(c, addr, data);
	irqchip_unlock(c);
}

void irqchip_set_msi_sink(struct irqchip *c,
			  void (*sink)(void *opaque, uint64_t addr, uint32_t data),
			  void *opaque)
{
	irqchip_lock(c);
	c->sink = sink;
	c->sink_opaque = opaque;
	irqchip_unlock(c);
}

void irqchip_ioapic_eoi(struct irqchip *c, uint8_t vector)
{
	irqchip_lock(c);
	ioapic_eoi_vector(c, vector);
	irqchip_unlock(c);
}

/* ---- per-vCPU ---- */

int irqchip_pending(struct irqchip *c, int cpu)
{
	struct lapic *a = cpu_apic(c, cpu);
	if (!a)
		return -1;
	irqchip_lock(c);
	int v = lapic_accepts_pic(a) ? pic_pending_vector(&c->pic) : -1;
	if (v < 0)
		v = lapic_pending_vector(a);
	irqchip_unlock(c);
	return v;
}

int irqchip_ack(struct irqchip *c, int cpu)
{
	struct lapic *a = cpu_apic(c, cpu);
	if (!a)
		return -1;
	irqchip_lock(c);
	int v;
	if (lapic_accepts_pic(a) && pic_pending_vector(&c->pic) >= 0) {
		v = pic_inta(&c->pic);
		a->extint = false;
		irqchip_pic_changed(c);
	} else {
		v = lapic_ack_vector(a);
	}
	irqchip_unlock(c);
	return v;
}

int irqchip_take_nmi(struct irqchip *c, int cpu)
{
	struct lapic *a = cpu_apic(c, cpu);
	if (!a)
		return 0;
	irqchip_lock(c);
	int r = a->nmi;
	a->nmi = false;
	irqchip_unlock(c);
	return r;
}

int irqchip_take_init_sipi(struct irqchip *c, int cpu, uint8_t *vector)
{
	struct lapic *a = cpu_apic(c, cpu);
	if (!a)
		return 0;
	irqchip_lock(c);
	int r = 0;
	if (a->init) {
		/* INIT resets the APIC but for its ID and base; a SIPI that
		 * already followed stays pending. */
		bool sipi = a->sipi;
		uint8_t sv = a->sipi_vector;
		lapic_reset(a, cpu == 0);
		a->sipi = sipi;
		a->sipi_vector = sv;
		r = 1;
	} else if (a->sipi) {
		a->sipi = false;
		if (vector)
			*vector = a->sipi_vector;
		r = 2;
	}
	irqchip_unlock(c);
	return r;
}

int irqchip_pic_pending(struct irqchip *c)
{
	irqchip_lock(c);
	int v = pic_pending_vector(&c->pic);
	irqchip_unlock(c);
	return v;
}

int irqchip_pic_ack(struct irqchip *c)
{
	irqchip_lock(c);
	int v = pic_inta(&c->pic);
	irqchip_pic_changed(c);
	irqchip_unlock(c);
	return v;
}

/* ---- LAPIC access ---- */

void lapic_mmio_read(struct irqchip *c, int cpu, uint64_t off, void *data, unsigned len)
{
	uint8_t *d = data;
	struct lapic *a = cpu_apic(c, cpu);
	memset(d, 0xff, len);
	if (!a || off >= 0x1000 || len > 8 || off + len > 0x1000)
		return;
	irqchip_lock(c);
	uint64_t cached = ~0ULL;
	uint32_t val = 0;
	for (unsigned i = 0; i < len; i++) {
		uint64_t o = off + i, reg = o & 0xff0, b = o & 0xf;
		if (reg != cached) {
			val = lapic_read_reg(a, (uint32_t)reg);
			cached = reg;
		}
		d[i] = b < 4 ? (uint8_t)(val >> (8 * b)) : 0;
	}
	irqchip_unlock(c);
}

void lapic_mmio_write(struct irqchip *c, int cpu, uint64_t off, const void *data, unsigned len)
{
	const uint8_t *d = data;
	struct lapic *a = cpu_apic(c, cpu);
	/* Only aligned 32-bit (or wider) stores reach a register. */
	if (!a || off >= 0x1000 || (off & 0xf) || len < 4 || len > 8)
		return;
	uint32_t v = d[0] | d[1] << 8 | d[2] << 16 | (uint32_t)d[3] << 24;
	irqchip_lock(c);
	lapic_write_reg(a, (uint32_t)off, v);
	irqchip_unlock(c);
}

uint64_t lapic_get_base_msr(struct irqchip *c, int cpu)
{
	struct lapic *a = cpu_apic(c, cpu);
	if (!a)
		return 0;
	irqchip_lock(c);
	uint64_t v = a->base_msr;
	irqchip_unlock(c);
	return v;
}

int lapic_set_base_msr(struct irqchip *c, int cpu, uint64_t v)
{
	struct lapic *a = cpu_apic(c, cpu);
	if (!a)
		return -EINVAL;
	/* No relocation, no x2APIC, reserved bits zero. */
	if ((v & ~(APIC_BASE_BSP | APIC_BASE_ENABLE)) != LAPIC_BASE)
		return -EINVAL;
	irqchip_lock(c);
	bool was = a->base_msr & APIC_BASE_ENABLE, now = v & APIC_BASE_ENABLE;
	if (was && !now)
		lapic_reset(a, false);
	a->base_msr = (a->base_msr & APIC_BASE_BSP) | LAPIC_BASE | (now ? APIC_BASE_ENABLE : 0);
	irqchip_pic_changed(c);
	irqchip_unlock(c);
	return 0;
}

uint64_t lapic_get_tsc_deadline(struct irqchip *c, int cpu)
{
	struct lapic *a = cpu_apic(c, cpu);
	if (!a)
		return 0;
	irqchip_lock(c);
	uint64_t v = lapic_tsc_deadline(a);
	irqchip_unlock(c);
	return v;
}

void lapic_set_tsc_deadline(struct irqchip *c, int cpu, uint64_t v)
{
	struct lapic *a = cpu_apic(c, cpu);
	if (!a)
		return;
	irqchip_lock(c);
	lapic_write_tsc_deadline(a, v);
	irqchip_unlock(c);
}

uint8_t lapic_get_tpr(struct irqchip *c, int cpu)
{
	struct lapic *a = cpu_apic(c, cpu);
	if (!a)
		return 0;
	irqchip_lock(c);
	uint8_t v = (uint8_t)a->tpr;
	irqchip_unlock(c);
	return v;
}

void lapic_set_tpr(struct irqchip *c, int cpu, uint8_t tpr)
{
	struct lapic *a = cpu_apic(c, cpu);
	if (!a)
		return;
	irqchip_lock(c);
	a->tpr = tpr;
	irqchip_unlock(c);
}

void lapic_get_page(struct irqchip *c, int cpu, uint8_t page[1024])
{
	struct lapic *a = cpu_apic(c, cpu);
	if (!a) {
		memset(page, 0, 1024);
		return;
	}
	irqchip_lock(c);
	lapic_page_get(a, page);
	irqchip_unlock(c);
}

void lapic_set_page(struct irqchip *c, int cpu, const uint8_t page[1024])
{
	struct lapic *a = cpu_apic(c, cpu);
	if (!a)
		return;
	irqchip_lock(c);
	lapic_page_set(a, page);
	irqchip_unlock(c);
}
