/* Private state of the interrupt controllers (monitor/irq.h): the 8259A
 * pair (pic.c), the IOAPIC (ioapic.c), the local APICs (lapic.c) and the
 * glue that locks and routes between them (irqchip.c).
 *
 * Locking: one mutex per irqchip (struct irqchip.lock) covers all of it.
 * Functions named pic_*, ioapic_*, lapic_* with a struct pic/ioapic/lapic
 * argument run with that lock held and never call out of the irqchip except
 * through irqchip_deliver() and the kick mask, which irqchip_unlock() turns
 * into vm_kick_vcpu() calls after dropping the lock. */
#ifndef ROAM_IRQCHIP_INT_H
#define ROAM_IRQCHIP_INT_H
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "monitor/dev.h"
#include "monitor/irq.h"
#include "monitor/rec.h"
#include "monitor/vm.h"

struct ev_timer;

/* ---- 8259A ---- */
struct pic_chip {
	uint8_t irr, imr, isr;
	uint8_t elcr, elcr_mask;     /* level-triggered inputs (ports 0x4d0/1) */
	uint8_t lines;               /* current input levels */
	uint8_t base;                /* ICW2 vector base (bits 3-7) */
	uint8_t prio_add;            /* IRQ with the highest priority */
	uint8_t init_state;          /* 0 ready, 1-3: expecting ICW2-ICW4 */
	uint8_t need_icw4, single;   /* from ICW1 */
	uint8_t read_isr;            /* OCW3 RR/RIS: read ISR instead of IRR */
	uint8_t poll;                /* OCW3 poll command pending */
	uint8_t special_mask;        /* OCW3 SMM */
	uint8_t auto_eoi, rotate_auto_eoi, sfnm;
};

struct pic { struct pic_chip c[2]; };   /* 0 master (0x20), 1 slave (0xA0) */

void pic_reset(struct pic *p);
void pic_set_line(struct pic *p, unsigned irq, int level);   /* irq 0-15 */
/* Vector the master would present on INTA now, or -1 (no output). */
int pic_pending_vector(const struct pic *p);
/* INTA cycle: returns the vector (spurious base+7 when nothing is left). */
int pic_inta(struct pic *p);
void pic_port_write(struct pic *p, unsigned chip, unsigned port, uint8_t v);
uint8_t pic_port_read(struct pic *p, unsigned chip, unsigned port);
void pic_elcr_write(struct pic *p, unsigned chip, uint8_t v);
uint8_t pic_elcr_read(const struct pic *p, unsigned chip);
void pic_save(const struct pic *p, struct rec_writer *w);
int pic_load(struct pic *p, struct rec_reader *r);

/* ---- IOAPIC ---- */
#define IOAPIC_VERSION 0x11
struct ioapic {
	uint32_t id;                 /* bits 24-27 of the ID register */
	uint32_t regsel;
	uint64_t redir[IOAPIC_PINS];
	uint32_t irr;                /* latched requests */
	uint32_t lines;              /* current input levels */
};

#define IOAPIC_RTE_VECTOR     0xffULL
#define IOAPIC_RTE_DELMODE(e) (((e) >> 8) & 7)
#define IOAPIC_RTE_LOGICAL    (1ULL << 11)
#define IOAPIC_RTE_DELIVS     (1ULL << 12)
#define IOAPIC_RTE_POLARITY   (1ULL << 13)
#define IOAPIC_RTE_REMOTE_IRR (1ULL << 14)
#define IOAPIC_RTE_LEVEL      (1ULL << 15)
#define IOAPIC_RTE_MASK       (1ULL << 16)
#define IOAPIC_RTE_WRITABLE   0xff0000000001afffULL

void ioapic_reset(struct ioapic *io, uint8_t id);
void ioapic_set_line(struct irqchip *c, unsigned pin, int level);
void ioapic_eoi_vector(struct irqchip *c, uint8_t vector);
/* Sends every request that may go (after a load). */
void ioapic_service_all(struct irqchip *c);
void ioapic_mmio_read(struct irqchip *c, uint64_t off, void *data, unsigned len);
void ioapic_mmio_write(struct irqchip *c, uint64_t off, const void *data, unsigned len);
void ioapic_save(const struct ioapic *io, struct rec_writer *w);
int ioapic_load(struct ioapic *io, struct rec_reader *r);

/* ---- local APIC ---- */
enum { LVT_TIMER, LVT_THERMAL, LVT_PERF, LVT_LINT0, LVT_LINT1, LVT_ERROR, LVT_COUNT };

#define APIC_DM_FIXED    0
#define APIC_DM_LOWEST   1
#define APIC_DM_SMI      2
#define APIC_DM_NMI      4
#define APIC_DM_INIT     5
#define APIC_DM_STARTUP  6
#define APIC_DM_EXTINT   7

#define APIC_LVT_MASKED  (1u << 16)
#define APIC_BASE_BSP    (1ULL << 8)
#define APIC_BASE_X2APIC (1ULL << 10)
#define APIC_BASE_ENABLE (1ULL << 11)
#define APIC_SVR_ENABLE  (1u << 8)

struct lapic {
	struct irqchip *chip;
	int cpu;
	uint64_t base_msr;
	uint32_t id, tpr, ldr, dfr, svr, esr, esr_acc, icr_lo, icr_hi;
	uint32_t lvt[LVT_COUNT];
	uint32_t tmict, tdcr;
	uint32_t isr[8], tmr[8], irr[8];
	/* Timer: running while deadline_ns != 0. One-shot/periodic count from
	 * start_ns; TSC-deadline mode keeps the guest TSC value. */
	uint64_t start_ns, deadline_ns, tsc_deadline;
	struct ev_timer *timer;
	/* Events waiting for the engine. */
	bool nmi, init, sipi, extint;
	uint8_t sipi_vector;
};

void lapic_reset(struct lapic *a, bool bsp);
/* Accepts one interrupt message (delivery mode, vector, trigger). */
void lapic_accept(struct lapic *a, unsigned mode, uint8_t vector, bool level);
int lapic_highest_irr(const struct lapic *a);   /* -1 if none */
int lapic_pending_vector(const struct lapic *a); /* IRR above PPR, or -1 */
int lapic_ack_vector(struct lapic *a);
bool lapic_accepts_pic(const struct lapic *a);
bool lapic_match_dest(const struct lapic *a, uint8_t dest, bool logical);
void lapic_timer_fire(struct lapic *a);
void lapic_stop_timer(struct lapic *a);
uint32_t lapic_read_reg(struct lapic *a, uint32_t reg);
uint64_t lapic_tsc_deadline(struct lapic *a);
void lapic_write_tsc_deadline(struct lapic *a, uint64_t v);
void lapic_page_get(struct lapic *a, uint8_t page[CPU_LAPIC_SIZE]);
void lapic_page_set(struct lapic *a, const uint8_t page[CPU_LAPIC_SIZE]);
void lapic_write_reg(struct lapic *a, uint32_t reg, uint32_t v);

/* ---- the whole chip ---- */
struct irqchip {
	struct vm *vm;
	pthread_mutex_t lock;
	int ncpus;
	struct pic pic;
	struct ioapic ioapic;
	struct lapic cpu[VM_MAX_CPUS];
	unsigned kick;               /* CPUs to kick once the lock drops */
	void (*sink)(void *opaque, uint64_t addr, uint32_t data);
	void *sink_opaque;
};

void irqchip_lock(struct irqchip *c);
void irqchip_unlock(struct irqchip *c);     /* then kicks c->kick */
/* Delivers an interrupt message to the LAPICs it names (lock held).
 * src is the sending CPU for IPI shorthands, -1 for IOAPIC/MSI. */
void irqchip_deliver(struct irqchip *c, uint8_t dest, bool logical, unsigned mode,
		     uint8_t vector, bool level);
/* Sends an MSI (lock held): to the sink if one is set, else irqchip_deliver. */
void irqchip_send_msi(struct irqchip *c, uint64_t addr, uint32_t data);
/* The PIC output changed: kicks the CPUs that take it. */
void irqchip_pic_changed(struct irqchip *c);
#endif
