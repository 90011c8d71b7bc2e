/* Interrupt delivery for the KVM engine with a split irqchip: the MSI sink
 * the userspace IOAPIC (and device MSIs) deliver through (KVM_SIGNAL_MSI),
 * the GSI routes that make KVM report EOIs of level-triggered vectors, and
 * injection of the userspace PIC's output into vCPU 0 (KVM_INTERRUPT,
 * interrupt-window exits). */
#include <errno.h>
#include <string.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include "monitor/irq.h"
#include "monitor/kvm/kvm_int.h"

#define MSI_DATA_LEVEL (1u << 15)    /* trigger mode: level */

/* KVM sets a vCPU's EOI-exit vectors from the MSI routes of GSIs below
 * the reserved IOAPIC route count (KVM_CAP_SPLIT_IRQCHIP args[0]) whose
 * trigger mode is level. Each distinct level-triggered message the sink
 * sees gets such a route; the table is small (24), so when full the
 * oldest entry is replaced. A stale route only costs an EOI exit that the
 * IOAPIC model ignores. Called with route_lock held. */
static int level_route_locked(struct kvm_engine *k, uint64_t addr, uint32_t data)
{
	for (int i = 0; i < k->nroutes; i++)
		if (k->routes[i].addr == addr && k->routes[i].data == data)
			return 0;
	int slot;
	if (k->nroutes < KVM_IOAPIC_ROUTES) {
		slot = k->nroutes++;
	} else {
		slot = k->route_next;
		k->route_next = (k->route_next + 1) % KVM_IOAPIC_ROUTES;
	}
	k->routes[slot].addr = addr;
	k->routes[slot].data = data;

	size_t sz = sizeof(struct kvm_irq_routing) +
		    KVM_IOAPIC_ROUTES * sizeof(struct kvm_irq_routing_entry);
	struct kvm_irq_routing *rt = calloc(1, sz);
	if (!rt)
		return -ENOMEM;
	rt->nr = (uint32_t)k->nroutes;
	for (int i = 0; i < k->nroutes; i++) {
		struct kvm_irq_routing_entry *e = &rt->entries[i];
		e->gsi = (uint32_t)i;
		e->type = KVM_IRQ_ROUTING_MSI;
		e->u.msi.address_lo = (uint32_t)k->routes[i].addr;
		e->u.msi.address_hi = (uint32_t)(k->routes[i].addr >> 32);
		e->u.msi.data = k->routes[i].data;
	}
	int r = kvm_ioctl(k->vm_fd, KVM_SET_GSI_ROUTING, rt);
	free(rt);
	return r < 0 ? r : 0;
}

int kvm_level_routes_from_lapic(struct kvm_engine *k, const uint8_t *page)
{
	uint32_t id = (uint32_t)page[0x23];          /* xAPIC ID in bits 31:24 */
	int r = 0;
	pthread_mutex_lock(&k->route_lock);
	for (unsigned v = 16; v < 256 && r == 0; v++) {
		const uint8_t *tmr = page + 0x180 + (v / 32) * 0x10;
		uint32_t word = tmr[0] | tmr[1] << 8 | tmr[2] << 16 | (uint32_t)tmr[3] << 24;
		if (word & (1u << (v % 32)))
			r = level_route_locked(k, LAPIC_BASE | (uint64_t)id << 12,
					       v | 1u << 14 | MSI_DATA_LEVEL);
	}
	pthread_mutex_unlock(&k->route_lock);
	return r;
}

void kvm_msi_sink(void *opaque, uint64_t addr, uint32_t data)
{
	struct kvm_engine *k = opaque;

	if (data & MSI_DATA_LEVEL) {
		pthread_mutex_lock(&k->route_lock);
		int r = level_route_locked(k, addr, data);
		pthread_mutex_unlock(&k->route_lock);
		if (r < 0) {
			vm_request_stop(k->vm, VM_STOP_ERROR, 1,
					"KVM_SET_GSI_ROUTING for a level-triggered interrupt failed: %s",
					strerror(-r));
			return;
		}
	}
	struct kvm_msi m = {
		.address_lo = (uint32_t)addr,
		.address_hi = (uint32_t)(addr >> 32),
		.data = data,
	};
	/* > 0 delivered, 0 blocked by the guest (masked, no destination):
	 * both are the guest's business. < 0 is a malformed message (a
	 * guest-programmed address outside the MSI window): dropped, as
	 * hardware drops it. */
	(void)kvm_ioctl(k->vm_fd, KVM_SIGNAL_MSI, &m);
}

void kvm_msi(struct engine *e, uint64_t addr, uint32_t data)
{
	kvm_msi_sink(kvm_of(e), addr, data);
}

void kvm_irq_line(struct engine *e, unsigned gsi, int level)
{
	struct kvm_engine *k = kvm_of(e);
	irqchip_set_irq(k->vm->irq, gsi, level);
	/* The PIC output goes to vCPU 0 only, injected from its thread. */
	if (irqchip_pic_pending(k->vm->irq) >= 0)
		kvm_kick(e, 0);
}

int kvm_pic_inject(struct kvm_engine *k, struct kvm_vcpu_ctx *v)
{
	struct kvm_run *run = v->run;

	if (irqchip_pic_pending(k->vm->irq) < 0) {
		run->request_interrupt_window = 0;
		return 0;
	}
	/* ready_for_interrupt_injection: RFLAGS.IF set, no interrupt shadow,
	 * LVT0 accepts ExtINT and no ExtINT already queued in KVM. */
	if (!run->ready_for_interrupt_injection) {
		run->request_interrupt_window = 1;
		return 0;
	}
	run->request_interrupt_window = 0;
	int vec = irqchip_pic_ack(k->vm->irq);
	if (vec < 0)
		return 0;       /* withdrawn between pending and ack */
	struct kvm_interrupt ki = { .irq = (uint32_t)vec };
	int r = kvm_ioctl(v->fd, KVM_INTERRUPT, &ki);
	if (r < 0) {
		vm_request_stop(k->vm, VM_STOP_ERROR, 1,
				"vCPU %d: KVM_INTERRUPT (vector %d) failed: %s",
				v->index, vec, strerror(-r));
		return r;
	}
	return 0;
}
