/* Userspace interrupt controllers: the 8259A PIC pair (ports 0x20/0xA0,
 * ELCR 0x4d0), the IOAPIC (MMIO 0xFEC00000, 24 pins) and one local APIC
 * per vCPU (MMIO 0xFEE00000, per-CPU view), including LAPIC timers
 * (one-shot, periodic, TSC-deadline) and IPIs (fixed, NMI, INIT, SIPI).
 * The BT engine uses all of it; the KVM engine uses the PIC and IOAPIC and
 * keeps LAPICs in the kernel (split irqchip), by installing an MSI sink.
 * Device state is engine-neutral: each part saves its own record. */
#ifndef ROAM_IRQ_H
#define ROAM_IRQ_H
#include <stdint.h>

struct vm;
struct irqchip;

#define IOAPIC_BASE 0xFEC00000ULL
#define LAPIC_BASE  0xFEE00000ULL
#define IOAPIC_PINS 24

/* Creates the controllers for vm->ncpus CPUs and registers the PIC ports and
 * IOAPIC MMIO on vm's buses, and the devices for save/load. */
int irqchip_new(struct vm *vm, struct irqchip **ret);
void irqchip_free(struct irqchip *c);

/* Device interrupt lines (any thread). GSI 0-15 drive the PIC and IOAPIC
 * pins, 16-23 only the IOAPIC. ISA IRQ0 (PIT) goes to IOAPIC pin 2 as the
 * MP table says. */
void irqchip_set_irq(struct irqchip *c, unsigned gsi, int level);
/* An MSI write (address 0xFEExxxxx, data with vector and mode). */
void irqchip_msi(struct irqchip *c, uint64_t addr, uint32_t data);

/* With an MSI sink set (KVM split irqchip), IOAPIC deliveries and MSIs go to
 * the sink instead of the userspace LAPICs. */
void irqchip_set_msi_sink(struct irqchip *c,
			  void (*sink)(void *opaque, uint64_t addr, uint32_t data),
			  void *opaque);
/* EOI of a level-triggered vector by a LAPIC outside the irqchip (KVM split
 * irqchip, KVM_EXIT_IOAPIC_EOI): clears remote IRR of the IOAPIC pins with
 * that vector and re-delivers those whose line is still asserted. */
void irqchip_ioapic_eoi(struct irqchip *c, uint8_t vector);

/* --- per-vCPU, called by the engine on that vCPU's thread --- */
/* Highest-priority maskable interrupt ready for this CPU (LAPIC IRR above
 * PPR, or the PIC through LINT0 ExtINT on the BSP), or -1. The engine checks
 * RFLAGS.IF and the interrupt shadow itself. */
int irqchip_pending(struct irqchip *c, int cpu);
/* Acknowledges it (IRR -> ISR, or PIC INTA) and returns the vector. */
int irqchip_ack(struct irqchip *c, int cpu);
/* Returns 1 once per pending NMI. */
int irqchip_take_nmi(struct irqchip *c, int cpu);
/* INIT / SIPI delivered to this CPU: returns 0 none, 1 INIT, 2 SIPI (with
 * *vector). */
int irqchip_take_init_sipi(struct irqchip *c, int cpu, uint8_t *vector);
/* The PIC's own output (KVM split irqchip injects it with KVM_INTERRUPT). */
int irqchip_pic_pending(struct irqchip *c);
int irqchip_pic_ack(struct irqchip *c);

/* LAPIC access for the CPU making it: MMIO offset within the 4 KiB page. */
void lapic_mmio_read(struct irqchip *c, int cpu, uint64_t off, void *data, unsigned len);
void lapic_mmio_write(struct irqchip *c, int cpu, uint64_t off, const void *data, unsigned len);
uint64_t lapic_get_base_msr(struct irqchip *c, int cpu);
int lapic_set_base_msr(struct irqchip *c, int cpu, uint64_t v);  /* -EINVAL: #GP */
uint64_t lapic_get_tsc_deadline(struct irqchip *c, int cpu);
void lapic_set_tsc_deadline(struct irqchip *c, int cpu, uint64_t v);
uint8_t lapic_get_tpr(struct irqchip *c, int cpu);           /* CR8 = TPR >> 4 */
void lapic_set_tpr(struct irqchip *c, int cpu, uint8_t tpr);
/* APIC register page in the canonical layout (struct cpu_state.lapic). */
void lapic_get_page(struct irqchip *c, int cpu, uint8_t page[1024]);
void lapic_set_page(struct irqchip *c, int cpu, const uint8_t page[1024]);
#endif
