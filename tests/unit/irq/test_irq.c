/* Unit tests for the interrupt controllers: 8259A pair, IOAPIC, LAPICs
 * (registers, priorities, timers, IPIs), their save/load records, and a
 * hostile guest writing random values everywhere. */
#include <time.h>
#include "monitor/cpu_state.h"
#include "tests/unit/irq/fake_vm.h"
#include "tests/unit/test.h"

static void lw(struct vm *vm, int cpu, uint32_t off, uint32_t v) { lapic_mmio_write(vm->irq, cpu, off, &v, 4); }
static uint32_t lr(struct vm *vm, int cpu, uint32_t off)
{
	uint32_t v = 0;
	lapic_mmio_read(vm->irq, cpu, off, &v, 4);
	return v;
}

static void iow(struct vm *vm, uint32_t idx, uint32_t v)
{
	bus_write(vm->mmio, IOAPIC_BASE, &idx, 4);
	bus_write(vm->mmio, IOAPIC_BASE + 0x10, &v, 4);
}

static uint32_t ior(struct vm *vm, uint32_t idx)
{
	uint32_t v = 0;
	bus_write(vm->mmio, IOAPIC_BASE, &idx, 4);
	bus_read(vm->mmio, IOAPIC_BASE + 0x10, &v, 4);
	return v;
}

/* Linux's init_8259A: master base 0x20, slave 0x28, cascade on IRQ2. */
static void pic_init(struct vm *vm, uint8_t icw4, uint8_t mask_m, uint8_t mask_s)
{
	outb(vm, 0x20, 0x11); outb(vm, 0x21, 0x20); outb(vm, 0x21, 0x04); outb(vm, 0x21, icw4);
	outb(vm, 0xa0, 0x11); outb(vm, 0xa1, 0x28); outb(vm, 0xa1, 0x02); outb(vm, 0xa1, icw4);
	outb(vm, 0x21, mask_m);
	outb(vm, 0xa1, mask_s);
}

static void pulse(struct vm *vm, unsigned gsi)
{
	irqchip_set_irq(vm->irq, gsi, 1);
	irqchip_set_irq(vm->irq, gsi, 0);
}

static int isr_bit(struct vm *vm, int cpu, unsigned v) { return (lr(vm, cpu, 0x100 + 0x10 * (v / 32)) >> (v % 32)) & 1; }
static int irr_bit(struct vm *vm, int cpu, unsigned v) { return (lr(vm, cpu, 0x200 + 0x10 * (v / 32)) >> (v % 32)) & 1; }
static int tmr_bit(struct vm *vm, int cpu, unsigned v) { return (lr(vm, cpu, 0x180 + 0x10 * (v / 32)) >> (v % 32)) & 1; }

static void pic_priority_eoi(void)
{
	struct vm *vm;
	CHECK_EQ(fake_vm_new(1, 16, 1, &vm), 0);
	struct irqchip *c = vm->irq;
	pic_init(vm, 0x01, 0x00, 0x00);
	CHECK_EQ(irqchip_pending(c, 0), -1);
	pulse(vm, 3);
	pulse(vm, 1);
	CHECK(fake.kicks[0] > 0);
	CHECK_EQ(irqchip_pending(c, 0), 0x21);
	CHECK_EQ(irqchip_ack(c, 0), 0x21);
	CHECK_EQ(irqchip_pending(c, 0), -1);           /* IRQ3 below in-service IRQ1 */
	outb(vm, 0x20, 0x0b);                           /* OCW3: read ISR */
	CHECK_EQ(inb(vm, 0x20), 0x02);
	outb(vm, 0x20, 0x20);                           /* non-specific EOI */
	CHECK_EQ(inb(vm, 0x20), 0x00);
	CHECK_EQ(irqchip_pending(c, 0), 0x23);
	CHECK_EQ(irqchip_ack(c, 0), 0x23);
	outb(vm, 0x20, 0x63);                           /* specific EOI 3 */
	outb(vm, 0x20, 0x0a);                           /* read IRR */
	CHECK_EQ(inb(vm, 0x20), 0x00);
	CHECK_EQ(irqchip_pending(c, 0), -1);

	/* Slave IRQ10 through the cascade. */
	pulse(vm, 10);
	CHECK_EQ(irqchip_pending(c, 0), 0x2a);
	CHECK_EQ(irqchip_ack(c, 0), 0x2a);
	outb(vm, 0x20, 0x0b);
	outb(vm, 0xa0, 0x0b);
	CHECK_EQ(inb(vm, 0x20), 0x04);
	CHECK_EQ(inb(vm, 0xa0), 0x04);
	outb(vm, 0xa0, 0x20);
	outb(vm, 0x20, 0x20);
	CHECK_EQ(inb(vm, 0x20), 0x00);

	/* Masks. */
	outb(vm, 0x21, 0x10);
	CHECK_EQ(inb(vm, 0x21), 0x10);
	pulse(vm, 4);
	CHECK_EQ(irqchip_pending(c, 0), -1);
	outb(vm, 0x21, 0x00);
	CHECK_EQ(irqchip_pending(c, 0), 0x24);
	CHECK_EQ(irqchip_ack(c, 0), 0x24);
	outb(vm, 0x20, 0x20);

	/* Spurious IRQ7 when the request went away before INTA. */
	CHECK_EQ(irqchip_ack(c, 0), -1);
	CHECK_EQ(irqchip_pic_ack(c), 0x27);
	outb(vm, 0x20, 0x0b);
	CHECK_EQ(inb(vm, 0x20), 0x00);                  /* not put in service */

	/* Level-triggered through ELCR: stays pending while the line is high. */
	outb(vm, 0x4d0, 0x20);
	CHECK_EQ(inb(vm, 0x4d0), 0x20);
	outb(vm, 0x4d0, 0xff);
	CHECK_EQ(inb(vm, 0x4d0), 0xf8);                 /* IRQ0-2 are edge only */
	outb(vm, 0x4d0, 0x20);
	irqchip_set_irq(c, 5, 1);
	CHECK_EQ(irqchip_ack(c, 0), 0x25);
	outb(vm, 0x20, 0x20);
	CHECK_EQ(irqchip_pending(c, 0), 0x25);
	irqchip_set_irq(c, 5, 0);
	CHECK_EQ(irqchip_pending(c, 0), -1);

	/* Edge input: a held line interrupts once. */
	irqchip_set_irq(c, 6, 1);
	CHECK_EQ(irqchip_ack(c, 0), 0x26);
	outb(vm, 0x20, 0x20);
	CHECK_EQ(irqchip_pending(c, 0), -1);
	irqchip_set_irq(c, 6, 0);

	/* Priority rotation: set priority makes IRQ3 lowest, IRQ4 highest. */
	outb(vm, 0x20, 0xc3);
	pulse(vm, 1);
	pulse(vm, 5 + 0);                               /* level input, pulsed */
	pulse(vm, 4);
	CHECK_EQ(irqchip_pending(c, 0), 0x24);
	CHECK_EQ(irqchip_ack(c, 0), 0x24);
	outb(vm, 0x20, 0x20);
	CHECK_EQ(irqchip_ack(c, 0), 0x21);
	outb(vm, 0x20, 0x20);
	outb(vm, 0x20, 0xc7);                           /* back to IRQ0 highest */

	/* Poll mode. */
	pulse(vm, 3);
	outb(vm, 0x20, 0x0c);
	CHECK_EQ(inb(vm, 0x20), 0x83);
	outb(vm, 0x20, 0x20);
	outb(vm, 0x20, 0x0c);
	CHECK_EQ(inb(vm, 0x20), 0x00);

	/* Auto-EOI: nothing stays in service. */
	pic_init(vm, 0x03, 0x00, 0x00);
	pulse(vm, 1);
	CHECK_EQ(irqchip_ack(c, 0), 0x21);
	outb(vm, 0x20, 0x0b);
	CHECK_EQ(inb(vm, 0x20), 0x00);

	/* The raw PIC output for the KVM split irqchip. */
	pulse(vm, 7);
	CHECK_EQ(irqchip_pic_pending(c), 0x27);
	CHECK_EQ(irqchip_pic_ack(c), 0x27);
	CHECK_EQ(irqchip_pic_pending(c), -1);
	fake_vm_free(vm);
}

static void ioapic_basics(void)
{
	struct vm *vm;
	CHECK_EQ(fake_vm_new(2, 16, 1, &vm), 0);
	CHECK_EQ(ior(vm, 1), 0x00170011);
	CHECK_EQ(ior(vm, 0), 2u << 24);
	iow(vm, 0, 0x05000000);
	CHECK_EQ(ior(vm, 0), 0x05000000);
	CHECK_EQ(ior(vm, 0x10), 1u << 16);              /* masked at reset */
	iow(vm, 0x11, 0xff000000);
	CHECK_EQ(ior(vm, 0x11), 0xff000000);
	iow(vm, 0x10, 0xffffffff);                      /* RO bits stay clear */
	CHECK_EQ(ior(vm, 0x10), 0x0001afff);
	uint8_t b = 0;
	uint32_t sel = 1;
	bus_write(vm->mmio, IOAPIC_BASE, &sel, 4);
	bus_read(vm->mmio, IOAPIC_BASE + 0x12, &b, 1);  /* byte of the version */
	CHECK_EQ(b, 0x17);
	fake_vm_free(vm);
}

static void ioapic_level_eoi(void)
{
	struct vm *vm;
	CHECK_EQ(fake_vm_new(2, 16, 1, &vm), 0);
	struct irqchip *c = vm->irq;
	pic_init(vm, 0x01, 0xff, 0xff);                 /* PIC masked, as Linux does */
	lw(vm, 0, 0xf0, 0x1ff);
	lw(vm, 1, 0xf0, 0x1ff);
	/* Pin 10: vector 0x40, level, physical to APIC 0. */
	iow(vm, 0x10 + 20, 0x8040);
	iow(vm, 0x11 + 20, 0);
	irqchip_set_irq(c, 10, 1);
	CHECK(irr_bit(vm, 0, 0x40));
	CHECK(ior(vm, 0x10 + 20) & (1u << 14));         /* remote IRR */
	CHECK_EQ(irqchip_pending(c, 0), 0x40);
	CHECK_EQ(irqchip_ack(c, 0), 0x40);
	CHECK(isr_bit(vm, 0, 0x40));
	CHECK(tmr_bit(vm, 0, 0x40));
	CHECK_EQ(lr(vm, 0, 0xa0), 0x40);                /* PPR */
	CHECK_EQ(irqchip_pending(c, 0), -1);
	/* EOI while the line is still high: delivered again. */
	lw(vm, 0, 0xb0, 0);
	CHECK(!isr_bit(vm, 0, 0x40));
	CHECK(irr_bit(vm, 0, 0x40));
	CHECK(ior(vm, 0x10 + 20) & (1u << 14));
	irqchip_set_irq(c, 10, 0);
	CHECK_EQ(irqchip_ack(c, 0), 0x40);
	lw(vm, 0, 0xb0, 0);
	CHECK(!(ior(vm, 0x10 + 20) & (1u << 14)));
	CHECK_EQ(irqchip_pending(c, 0), -1);

	/* Edge pin 4 (vector 0x41) and the mask. */
	iow(vm, 0x10 + 8, 0x10041);
	pulse(vm, 4);
	CHECK_EQ(irqchip_pending(c, 0), -1);
	iow(vm, 0x10 + 8, 0x00041);                     /* unmask: latched edge goes */
	CHECK_EQ(irqchip_pending(c, 0), 0x41);
	CHECK_EQ(irqchip_ack(c, 0), 0x41);
	CHECK(!tmr_bit(vm, 0, 0x41));
	lw(vm, 0, 0xb0, 0);

	/* ISA IRQ0 goes to pin 2. */
	iow(vm, 0x10 + 4, 0x00042);
	pulse(vm, 0);
	CHECK_EQ(irqchip_ack(c, 0), 0x42);
	lw(vm, 0, 0xb0, 0);

	/* Logical flat destination: APIC 1 has LDR bit 1. */
	lw(vm, 1, 0xe0, 0xffffffff);
	lw(vm, 1, 0xd0, 0x02000000);
	lw(vm, 0, 0xd0, 0x01000000);
	iow(vm, 0x10 + 10, 0x00850);                    /* pin 5, logical, vector 0x50 */
	iow(vm, 0x11 + 10, 0x02000000);
	int k1 = fake.kicks[1];
	pulse(vm, 5);
	CHECK_EQ(irqchip_pending(c, 1), 0x50);
	CHECK_EQ(irqchip_pending(c, 0), -1);
	CHECK(fake.kicks[1] > k1);
	CHECK_EQ(irqchip_ack(c, 1), 0x50);
	lw(vm, 1, 0xb0, 0);

	/* Lowest priority among APICs 0 and 1: APIC 0 has the higher TPR. */
	lapic_set_tpr(c, 0, 0x20);
	CHECK_EQ(lr(vm, 0, 0x80), 0x20);
	iow(vm, 0x10 + 12, 0x00951);                    /* pin 6, lowest prio, logical */
	iow(vm, 0x11 + 12, 0x03000000);
	pulse(vm, 6);
	CHECK_EQ(irqchip_pending(c, 1), 0x51);
	CHECK_EQ(irqchip_ack(c, 1), 0x51);
	lw(vm, 1, 0xb0, 0);
	lapic_set_tpr(c, 0, 0);

	/* Logical cluster model: cluster 1, member bit 0. */
	lw(vm, 1, 0xe0, 0x0fffffff);
	lw(vm, 1, 0xd0, 0x11000000);
	iow(vm, 0x11 + 10, 0x11000000);
	pulse(vm, 5);
	CHECK_EQ(irqchip_ack(c, 1), 0x50);
	lw(vm, 1, 0xb0, 0);

	/* NMI delivery mode. */
	iow(vm, 0x10 + 14, 0x00400);                    /* pin 7, NMI, APIC 0 */
	iow(vm, 0x11 + 14, 0);
	pulse(vm, 7);
	CHECK_EQ(irqchip_take_nmi(c, 0), 1);
	CHECK_EQ(irqchip_take_nmi(c, 0), 0);
	iow(vm, 0x10 + 14, 0x08400);                    /* level NMI: no remote IRR */
	irqchip_set_irq(c, 7, 1);
	CHECK_EQ(irqchip_take_nmi(c, 0), 1);
	CHECK(!(ior(vm, 0x10 + 14) & (1u << 14)));
	irqchip_set_irq(c, 7, 0);

	/* ExtINT on pin 3 to APIC 1: that CPU then takes the PIC. */
	outb(vm, 0x21, 0xf7);                           /* only IRQ3 */
	iow(vm, 0x10 + 6, 0x00700);
	iow(vm, 0x11 + 6, 0x01000000);
	CHECK_EQ(irqchip_pending(c, 1), -1);
	pulse(vm, 3);
	CHECK_EQ(irqchip_pending(c, 1), 0x23);
	CHECK_EQ(irqchip_ack(c, 1), 0x23);
	outb(vm, 0x20, 0x20);

	/* The KVM path: EOI from outside clears remote IRR. */
	iow(vm, 0x10 + 20, 0x8040);
	irqchip_set_irq(c, 10, 1);
	CHECK(ior(vm, 0x10 + 20) & (1u << 14));
	irqchip_set_irq(c, 10, 0);
	irqchip_ioapic_eoi(c, 0x40);
	CHECK(!(ior(vm, 0x10 + 20) & (1u << 14)));
	fake_vm_free(vm);
}

static uint64_t sink_addr;
static uint32_t sink_data;
static int sink_calls;
static void sink(void *opaque, uint64_t addr, uint32_t data)
{
	sink_addr = addr;
	sink_data = data;
	sink_calls++;
}

static void msi_and_sink(void)
{
	struct vm *vm;
	CHECK_EQ(fake_vm_new(2, 16, 1, &vm), 0);
	struct irqchip *c = vm->irq;
	lw(vm, 1, 0xf0, 0x1ff);
	irqchip_msi(c, 0xfee01000, 0x0061);             /* APIC 1, vector 0x61 */
	CHECK_EQ(irqchip_pending(c, 1), 0x61);
	irqchip_msi(c, 0xfec01000, 0x0062);             /* not an APIC address */
	CHECK_EQ(irqchip_ack(c, 1), 0x61);
	CHECK_EQ(irqchip_pending(c, 1), -1);
	/* Software-disabled APIC 0 drops fixed interrupts. */
	irqchip_msi(c, 0xfee00000, 0x0063);
	CHECK_EQ(irqchip_pending(c, 0), -1);
	irqchip_set_msi_sink(c, sink, NULL);
	iow(vm, 0x10 + 18, 0x0a855);                    /* pin 9: level, logical, vec 0x55 */
	iow(vm, 0x11 + 18, 0x03000000);
	irqchip_set_irq(c, 9, 1);
	CHECK_EQ(sink_calls, 1);
	CHECK_EQ(sink_addr, 0xfee03004);
	CHECK_EQ(sink_data, 0xc055);
	irqchip_msi(c, 0xfee00000, 0x0064);
	CHECK_EQ(sink_calls, 2);
	fake_vm_free(vm);
}

static void lapic_regs(void)
{
	struct vm *vm;
	CHECK_EQ(fake_vm_new(2, 16, 1, &vm), 0);
	struct irqchip *c = vm->irq;
	CHECK_EQ(lr(vm, 0, 0x30), 0x00050014);
	CHECK_EQ(lr(vm, 1, 0x20), 0x01000000);
	lw(vm, 1, 0x20, 0x05000000);                    /* ID is read-only */
	CHECK_EQ(lr(vm, 1, 0x20), 0x01000000);
	uint8_t pg[CPU_LAPIC_SIZE];
	lapic_get_page(c, 1, pg);
	pg[0x23] = 0;                                   /* a reset page says ID 0 */
	lapic_set_page(c, 1, pg);
	CHECK_EQ(lr(vm, 1, 0x20), 0x01000000);
	CHECK_EQ(lr(vm, 0, 0xf0), 0xff);
	CHECK_EQ(lr(vm, 0, 0xe0), 0xffffffff);
	CHECK_EQ(lr(vm, 0, 0x350), 0x700);              /* BSP LINT0: ExtINT */
	CHECK_EQ(lr(vm, 1, 0x350), 0x10000);
	CHECK_EQ(lapic_get_base_msr(c, 0), 0xfee00900);
	CHECK_EQ(lapic_get_base_msr(c, 1), 0xfee00800);
	/* LVTs cannot be unmasked while software-disabled. */
	lw(vm, 0, 0x320, 0x30);
	CHECK_EQ(lr(vm, 0, 0x320), 0x10030);
	lw(vm, 0, 0xf0, 0x1ff);
	lw(vm, 0, 0x320, 0x30);
	CHECK_EQ(lr(vm, 0, 0x320), 0x30);
	/* Sub-word reads, unaligned writes ignored. */
	uint8_t b = 0;
	lapic_mmio_read(c, 0, 0x31, &b, 1);
	CHECK_EQ(b, 0x00);
	lapic_mmio_read(c, 0, 0x32, &b, 1);
	CHECK_EQ(b, 0x05);
	uint32_t v = 0xabcd;
	lapic_mmio_write(c, 0, 0x82, &v, 4);
	CHECK_EQ(lr(vm, 0, 0x80), 0);
	/* TPR and CR8. */
	lapic_set_tpr(c, 0, 0x50);
	CHECK_EQ(lapic_get_tpr(c, 0), 0x50);
	irqchip_msi(c, 0xfee00000, 0x45);
	CHECK_EQ(irqchip_pending(c, 0), -1);            /* class 4 <= TPR class 5 */
	irqchip_msi(c, 0xfee00000, 0x65);
	CHECK_EQ(irqchip_pending(c, 0), 0x65);
	CHECK_EQ(irqchip_ack(c, 0), 0x65);
	CHECK_EQ(lr(vm, 0, 0xa0), 0x60);                /* PPR = ISR class */
	lw(vm, 0, 0xb0, 0);
	CHECK_EQ(lr(vm, 0, 0xa0), 0x50);
	lapic_set_tpr(c, 0, 0);
	CHECK_EQ(irqchip_ack(c, 0), 0x45);
	lw(vm, 0, 0xb0, 0);
	/* Base MSR: no relocation, no x2APIC, no reserved bits. */
	CHECK_EQ(lapic_set_base_msr(c, 0, 0xfed00900), -EINVAL);
	CHECK_EQ(lapic_set_base_msr(c, 0, 0xfee00d00), -EINVAL);
	CHECK_EQ(lapic_set_base_msr(c, 0, 0xfee00901), -EINVAL);
	CHECK_EQ(lapic_set_base_msr(c, 0, 0x1fee00900ULL), -EINVAL);
	/* Disabling hands the BSP the PIC directly; APIC interrupts stop. */
	CHECK_EQ(lapic_set_base_msr(c, 0, 0xfee00100), 0);
	CHECK_EQ(lapic_get_base_msr(c, 0), 0xfee00100);
	irqchip_msi(c, 0xfee00000, 0x66);
	CHECK_EQ(irqchip_pending(c, 0), -1);
	pic_init(vm, 0x01, 0x00, 0x00);
	pulse(vm, 1);
	CHECK_EQ(irqchip_pending(c, 0), 0x21);
	CHECK_EQ(lapic_set_base_msr(c, 0, 0xfee00900), 0);
	CHECK_EQ(lr(vm, 0, 0xf0), 0xff);                /* came back reset */
	CHECK_EQ(lr(vm, 0, 0x350), 0x10000);
	CHECK_EQ(irqchip_pending(c, 0), -1);            /* LINT0 masked now */
	/* ESR: illegal vectors. */
	lw(vm, 0, 0xf0, 0x1ff);
	lw(vm, 0, 0x300, 0x00005);                      /* fixed IPI, vector 5 */
	lw(vm, 0, 0x280, 0);
	CHECK_EQ(lr(vm, 0, 0x280), 0x20);
	lw(vm, 0, 0x280, 0);
	CHECK_EQ(lr(vm, 0, 0x280), 0);
	fake_vm_free(vm);
}

static void lapic_ipis(void)
{
	struct vm *vm;
	CHECK_EQ(fake_vm_new(3, 16, 1, &vm), 0);
	struct irqchip *c = vm->irq;
	for (int i = 0; i < 3; i++)
		lw(vm, i, 0xf0, 0x1ff);
	/* Fixed, physical destination 1. */
	int k = fake.kicks[1];
	lw(vm, 0, 0x310, 0x01000000);
	lw(vm, 0, 0x300, 0x000070);
	CHECK(fake.kicks[1] > k);
	CHECK_EQ(irqchip_pending(c, 1), 0x70);
	CHECK_EQ(irqchip_pending(c, 2), -1);
	CHECK_EQ(lr(vm, 0, 0x300) & (1u << 12), 0);    /* delivery status idle */
	CHECK_EQ(irqchip_ack(c, 1), 0x70);
	lw(vm, 1, 0xb0, 0);
	/* Shorthands: self, all including self, all but self. */
	lw(vm, 2, 0x300, 0x040071);
	CHECK_EQ(irqchip_ack(c, 2), 0x71);
	lw(vm, 2, 0xb0, 0);
	lw(vm, 0, 0x300, 0x080072);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(irqchip_ack(c, i), 0x72);
		lw(vm, i, 0xb0, 0);
	}
	lw(vm, 0, 0x300, 0x0c0073);
	CHECK_EQ(irqchip_pending(c, 0), -1);
	CHECK_EQ(irqchip_ack(c, 1), 0x73);
	CHECK_EQ(irqchip_ack(c, 2), 0x73);
	lw(vm, 1, 0xb0, 0);
	lw(vm, 2, 0xb0, 0);
	/* Broadcast physical 0xff. */
	lw(vm, 0, 0x310, 0xff000000);
	lw(vm, 0, 0x300, 0x000074);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(irqchip_pending(c, i), 0x74);
	/* NMI IPI. */
	lw(vm, 0, 0x310, 0x02000000);
	lw(vm, 0, 0x300, 0x000400);
	CHECK_EQ(irqchip_take_nmi(c, 2), 1);
	CHECK_EQ(irqchip_take_nmi(c, 1), 0);
	/* INIT assert, INIT de-assert, SIPI (Linux's wakeup_secondary_cpu). */
	uint8_t vec = 0;
	lw(vm, 0, 0x310, 0x01000000);
	lw(vm, 0, 0x300, 0x00c500);                     /* INIT, level assert */
	lw(vm, 0, 0x300, 0x008500);                     /* INIT de-assert */
	CHECK_EQ(irqchip_take_init_sipi(c, 1, &vec), 1);
	CHECK_EQ(irqchip_pending(c, 1), -1);            /* INIT reset the APIC */
	CHECK_EQ(lr(vm, 1, 0xf0), 0xff);
	CHECK_EQ(lr(vm, 1, 0x20), 0x01000000);
	CHECK_EQ(irqchip_take_init_sipi(c, 1, &vec), 0);
	lw(vm, 0, 0x300, 0x000608);                     /* SIPI, vector 8 */
	CHECK_EQ(irqchip_take_init_sipi(c, 1, &vec), 2);
	CHECK_EQ(vec, 8);
	CHECK_EQ(irqchip_take_init_sipi(c, 1, &vec), 0);
	/* INIT followed at once by SIPI: both reach the CPU. */
	lw(vm, 0, 0x310, 0x02000000);
	lw(vm, 0, 0x300, 0x004500);
	lw(vm, 0, 0x300, 0x000610);
	CHECK_EQ(irqchip_take_init_sipi(c, 2, &vec), 1);
	CHECK_EQ(irqchip_take_init_sipi(c, 2, &vec), 2);
	CHECK_EQ(vec, 0x10);
	/* Logical flat IPI to APICs with LDR bits 1 and 2. */
	lw(vm, 1, 0xf0, 0x1ff);
	lw(vm, 2, 0xf0, 0x1ff);
	lw(vm, 1, 0xd0, 0x02000000);
	lw(vm, 2, 0xd0, 0x04000000);
	lw(vm, 0, 0x310, 0x06000000);
	lw(vm, 0, 0x300, 0x000875);
	CHECK_EQ(irqchip_pending(c, 1), 0x75);
	CHECK_EQ(irqchip_pending(c, 2), 0x75);
	fake_vm_free(vm);
}

/* Waits up to ms for a pending vector on cpu; returns it or -1. */
static int wait_vector(struct irqchip *c, int cpu, unsigned ms)
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000;
	int v;
	while ((v = irqchip_pending(c, cpu)) < 0 && now_ns() < end)
		sleep_ms(1);
	return v;
}

static void lapic_timer(void)
{
	struct vm *vm;
	CHECK_EQ(fake_vm_new(1, 16, 1, &vm), 0);
	struct irqchip *c = vm->irq;
	CHECK_EQ(evloop_start(vm->ev), 0);
	lw(vm, 0, 0xf0, 0x1ff);
	/* One-shot: 5 ms at divide-by-1. */
	lw(vm, 0, 0x3e0, 0xb);
	lw(vm, 0, 0x320, 0x00030);
	uint64_t t0 = now_ns();
	lw(vm, 0, 0x380, 5000000);
	uint32_t cur = lr(vm, 0, 0x390);
	CHECK(cur <= 5000000);
	CHECK_EQ(wait_vector(c, 0, 1000), 0x30);
	CHECK(now_ns() - t0 >= 5000000);
	CHECK_EQ(lr(vm, 0, 0x390), 0);
	CHECK_EQ(irqchip_ack(c, 0), 0x30);
	lw(vm, 0, 0xb0, 0);
	sleep_ms(10);
	CHECK_EQ(irqchip_pending(c, 0), -1);            /* one-shot fired once */
	/* Divider: 16 -> count runs 16x slower. */
	lw(vm, 0, 0x3e0, 0x3);
	t0 = now_ns();
	lw(vm, 0, 0x380, 1000000);
	sleep_ms(2);
	cur = lr(vm, 0, 0x390);
	uint64_t el = now_ns() - t0;
	CHECK(cur <= 1000000 - 2000000 / 16 + 1);
	CHECK((uint64_t)cur + el / 16 + 1 >= 1000000 || cur == 0);
	lw(vm, 0, 0x380, 0);                            /* stops it */
	CHECK_EQ(lr(vm, 0, 0x390), 0);
	/* Periodic, 2 ms. */
	lw(vm, 0, 0x3e0, 0xb);
	lw(vm, 0, 0x320, 0x20031);
	t0 = now_ns();
	lw(vm, 0, 0x380, 2000000);
	int fired = 0;
	while (now_ns() - t0 < 3000000000ULL && fired < 5) {
		if (wait_vector(c, 0, 100) == 0x31) {
			CHECK_EQ(irqchip_ack(c, 0), 0x31);
			lw(vm, 0, 0xb0, 0);
			fired++;
		}
	}
	CHECK_EQ(fired, 5);
	CHECK(now_ns() - t0 >= 8000000);
	CHECK(lr(vm, 0, 0x390) > 0);
	/* Masked: counts but does not interrupt. */
	lw(vm, 0, 0x320, 0x30031);
	sleep_ms(5);
	(void)irqchip_ack(c, 0);
	lw(vm, 0, 0xb0, 0);
	sleep_ms(5);
	CHECK_EQ(irqchip_pending(c, 0), -1);
	/* TSC-deadline: 3 ms of guest TSC ahead; the MSR clears on expiry. */
	lw(vm, 0, 0x320, 0x40032);
	CHECK_EQ(lr(vm, 0, 0x380), 0);
	lw(vm, 0, 0x380, 1234);                         /* ignored in this mode */
	CHECK_EQ(lr(vm, 0, 0x380), 0);
	uint64_t dl = vm_guest_tsc(vm) + vm->tsc_khz * 3;
	t0 = now_ns();
	lapic_set_tsc_deadline(c, 0, dl);
	CHECK_EQ(lapic_get_tsc_deadline(c, 0), dl);
	CHECK_EQ(wait_vector(c, 0, 1000), 0x32);
	CHECK(now_ns() - t0 >= 2900000);
	CHECK(vm_guest_tsc(vm) >= dl);
	CHECK_EQ(lapic_get_tsc_deadline(c, 0), 0);
	CHECK_EQ(irqchip_ack(c, 0), 0x32);
	lw(vm, 0, 0xb0, 0);
	/* A deadline in the past fires at once; 0 disarms. */
	lapic_set_tsc_deadline(c, 0, 1);
	CHECK_EQ(wait_vector(c, 0, 1000), 0x32);
	CHECK_EQ(irqchip_ack(c, 0), 0x32);
	lw(vm, 0, 0xb0, 0);
	lapic_set_tsc_deadline(c, 0, vm_guest_tsc(vm) + vm->tsc_khz * 2);
	lapic_set_tsc_deadline(c, 0, 0);
	sleep_ms(5);
	CHECK_EQ(irqchip_pending(c, 0), -1);
	/* Outside TSC-deadline mode the MSR write is ignored. */
	lw(vm, 0, 0x320, 0x00032);
	lapic_set_tsc_deadline(c, 0, 5);
	CHECK_EQ(lapic_get_tsc_deadline(c, 0), 0);
	fake_vm_free(vm);
}

static void pic_ioapic_records(void)
{
	struct vm *vm;
	CHECK_EQ(fake_vm_new(2, 16, 1, &vm), 0);
	struct irqchip *c = vm->irq;
	pic_init(vm, 0x01, 0x12, 0x34);
	outb(vm, 0x4d0, 0x28);
	outb(vm, 0x4d1, 0x0c);
	pulse(vm, 3);
	(void)irqchip_ack(c, 0);
	pulse(vm, 11);
	iow(vm, 0x10 + 20, 0x8040);
	iow(vm, 0x11 + 20, 0x01000000);
	iow(vm, 0x10 + 6, 0x10041);
	irqchip_set_irq(c, 10, 1);
	struct dev *pd = vm_find_dev(vm, "pic"), *id = vm_find_dev(vm, "ioapic");
	CHECK(pd && id);
	if (!pd || !id) {
		fake_vm_free(vm);
		return;
	}
	struct rec_writer a, b, ia, ib;
	CHECK_EQ(save_dev(pd, &a), 0);
	CHECK_EQ(save_dev(id, &ia), 0);
	/* Mutate everything. */
	pic_init(vm, 0x03, 0xff, 0x00);
	outb(vm, 0x4d0, 0x00);
	pulse(vm, 9);
	iow(vm, 0x10 + 20, 0x10000);
	iow(vm, 0x10 + 30, 0x00099);
	irqchip_set_irq(c, 10, 0);
	CHECK_EQ(load_dev(pd, &a), 0);
	CHECK_EQ(load_dev(id, &ia), 0);
	CHECK_EQ(save_dev(pd, &b), 0);
	CHECK_EQ(save_dev(id, &ib), 0);
	CHECK(same_rec(&a, &b));
	CHECK(same_rec(&ia, &ib));
	CHECK_EQ(inb(vm, 0x21), 0x12);
	CHECK_EQ(ior(vm, 0x10 + 20) & 0xffff, 0xc040);
	/* Truncated and out-of-range records are refused. */
	struct rec_reader r;
	rec_reader_init(&r, a.buf, a.len - 1);
	CHECK_EQ(pd->type->load(pd, &r, 1), -EINVAL);
	a.buf[3] = 0x07;                                /* ELCR bits 0-2 */
	rec_reader_init(&r, a.buf, a.len);
	CHECK_EQ(pd->type->load(pd, &r, 1), -EINVAL);
	ia.buf[0] = 1;                                  /* ID low bits */
	rec_reader_init(&r, ia.buf, ia.len);
	CHECK_EQ(id->type->load(id, &r, 1), -EINVAL);
	CHECK_EQ(inb(vm, 0x21), 0x12);                  /* state untouched */
	/* Random bytes: refused or accepted, never a crash. */
	for (int i = 0; i < 2000; i++) {
		uint8_t buf[300];
		size_t n = rnd() % sizeof(buf);
		for (size_t j = 0; j < n; j++)
			buf[j] = (uint8_t)rnd();
		rec_reader_init(&r, buf, n);
		(void)pd->type->load(pd, &r, 1);
		rec_reader_init(&r, buf, n);
		(void)id->type->load(id, &r, 1);
	}
	rec_writer_free(&a);
	rec_writer_free(&b);
	rec_writer_free(&ia);
	rec_writer_free(&ib);
	fake_vm_free(vm);
}

static void lapic_page_roundtrip(void)
{
	struct vm *vm;
	CHECK_EQ(fake_vm_new(2, 16, 1, &vm), 0);
	struct irqchip *c = vm->irq;
	lw(vm, 1, 0xf0, 0x1ff);
	lw(vm, 1, 0xd0, 0x04000000);
	lw(vm, 1, 0xe0, 0x0fffffff);
	lw(vm, 1, 0x80, 0x20);
	lw(vm, 1, 0x350, 0x8700);
	lw(vm, 1, 0x370, 0x000fe);
	lw(vm, 1, 0x3e0, 0x9);
	lw(vm, 1, 0x310, 0x03000000);
	irqchip_msi(c, 0xfee01000, 0x8090);             /* level vector 0x90 */
	irqchip_msi(c, 0xfee01000, 0x00a0);
	(void)irqchip_ack(c, 1);
	uint8_t a[CPU_LAPIC_SIZE], b[CPU_LAPIC_SIZE], mid[CPU_LAPIC_SIZE];
	lapic_get_page(c, 1, a);
	lw(vm, 1, 0x80, 0x00);
	lw(vm, 1, 0xb0, 0);
	lw(vm, 1, 0x370, 0x10000);
	lw(vm, 1, 0xd0, 0);
	irqchip_msi(c, 0xfee01000, 0x00b0);
	lapic_get_page(c, 1, mid);
	CHECK(memcmp(a, mid, sizeof(a)) != 0);
	lapic_set_page(c, 1, a);
	lapic_get_page(c, 1, b);
	CHECK(!memcmp(a, b, sizeof(a)));
	CHECK_EQ(irqchip_pending(c, 1), -1);            /* 0x90 below ISR 0xa0 */
	lw(vm, 1, 0xb0, 0);
	CHECK_EQ(irqchip_pending(c, 1), 0x90);
	/* A running one-shot timer resumes with its remaining count. */
	CHECK_EQ(evloop_start(vm->ev), 0);
	lw(vm, 1, 0x3e0, 0xb);
	lw(vm, 1, 0x320, 0x000c0);
	lw(vm, 1, 0x380, 400000000);                    /* 400 ms */
	lapic_get_page(c, 1, a);
	lw(vm, 1, 0x380, 0);
	memcpy(a + 0x390, (uint32_t[]){ 3000000 }, 4);  /* 3 ms left */
	uint64_t t0 = now_ns();
	lapic_set_page(c, 1, a);
	(void)irqchip_ack(c, 1);
	lw(vm, 1, 0xb0, 0);
	CHECK_EQ(wait_vector(c, 1, 1000), 0xc0);
	CHECK(now_ns() - t0 < 300000000ULL);
	/* Garbage pages never crash and keep vectors 0-15 out. */
	for (int i = 0; i < 200; i++) {
		for (int j = 0; j < CPU_LAPIC_SIZE; j++)
			a[j] = (uint8_t)rnd();
		memset(a + 0x380, 0, 4);                /* no timer storm */
		lapic_set_page(c, 1, a);
		int v = irqchip_pending(c, 1);
		CHECK(v == -1 || (v >= 16 && v < 256));
	}
	fake_vm_free(vm);
}

/* A capture right after expiry, before the loop thread ran the timer,
 * carries the interrupt (the loop is not even started here). */
static void lapic_due_timer_capture(void)
{
	struct vm *vm;
	CHECK_EQ(fake_vm_new(1, 16, 1, &vm), 0);
	struct irqchip *c = vm->irq;
	lw(vm, 0, 0xf0, 0x1ff);
	lw(vm, 0, 0x3e0, 0xb);
	lw(vm, 0, 0x320, 0x000d0);
	lw(vm, 0, 0x380, 1000000);                      /* 1 ms one-shot */
	sleep_ms(3);
	CHECK_EQ(irqchip_pending(c, 0), -1);            /* nobody ran the timer */
	uint8_t pg[CPU_LAPIC_SIZE];
	lapic_get_page(c, 0, pg);
	CHECK(pg[0x200 + 0x10 * (0xd0 / 32) + (0xd0 % 32) / 8] & (1u << (0xd0 % 8)));
	CHECK_EQ(pg[0x390] | pg[0x391] | pg[0x392] | pg[0x393], 0);
	CHECK_EQ(irqchip_ack(c, 0), 0xd0);
	lw(vm, 0, 0xb0, 0);
	/* TSC-deadline: reading the MSR after the deadline delivers it. */
	lw(vm, 0, 0x320, 0x400d1);
	lapic_set_tsc_deadline(c, 0, vm_guest_tsc(vm) + vm->tsc_khz);   /* 1 ms */
	sleep_ms(3);
	CHECK_EQ(lapic_get_tsc_deadline(c, 0), 0);
	CHECK_EQ(irqchip_ack(c, 0), 0xd1);
	fake_vm_free(vm);
}

static void hostile_guest(void)
{
	struct vm *vm;
	CHECK_EQ(fake_vm_new(4, 16, 1, &vm), 0);
	struct irqchip *c = vm->irq;
	CHECK_EQ(evloop_start(vm->ev), 0);
	static const uint16_t ports[] = { 0x20, 0x21, 0xa0, 0xa1, 0x4d0, 0x4d1 };
	for (int i = 0; i < 200000; i++) {
		uint64_t r = rnd();
		uint32_t v = (uint32_t)rnd();
		int cpu = (int)(r >> 8) % 5 - (r & 0x10000 ? 1 : 0);   /* includes -1, 4 */
		unsigned len = 1u << ((r >> 20) % 4);
		switch (r % 12) {
		case 0:
			outb(vm, ports[(r >> 4) % 6], (uint8_t)v);
			break;
		case 1:
			(void)inb(vm, ports[(r >> 4) % 6]);
			break;
		case 2:
			bus_write(vm->mmio, IOAPIC_BASE + ((r >> 4) % 0x1000 & ~0ULL), &v, len);
			break;
		case 3: {
			uint64_t d = 0;
			bus_read(vm->mmio, IOAPIC_BASE + (r >> 4) % 0x1000, &d, len);
			break;
		}
		case 4: {
			/* Keep timers slow so the loop thread does not storm. */
			uint32_t off = (uint32_t)((r >> 4) % 0x1010);
			if ((off & 0xff0) == 0x380)
				v |= 0x10000000;
			uint64_t d = v;
			lapic_mmio_write(c, cpu, off, &d, len);
			break;
		}
		case 5: {
			uint64_t d = 0;
			lapic_mmio_read(c, cpu, (r >> 4) % 0x1010, &d, len);
			break;
		}
		case 6:
			irqchip_set_irq(c, (unsigned)(r >> 4) % 30, (int)(v & 1));
			break;
		case 7:
			irqchip_msi(c, (r & 0x100) ? 0xfee00000 | (v & 0xff00c) : r, v);
			break;
		case 8: {
			int p = irqchip_pending(c, cpu);
			CHECK(p >= -1 && p < 256);
			if (p >= 0)
				(void)irqchip_ack(c, cpu);
			break;
		}
		case 9: {
			uint8_t vec;
			(void)irqchip_take_init_sipi(c, cpu, &vec);
			(void)irqchip_take_nmi(c, cpu);
			break;
		}
		case 10:
			if (v & 1)
				(void)lapic_set_base_msr(c, cpu, (r & 0x200) ? 0xfee00000 | (v & 0xd00) : r);
			else
				lapic_set_tpr(c, cpu, (uint8_t)v);
			break;
		default:
			lapic_set_tsc_deadline(c, cpu, vm_guest_tsc(vm) + (v & 0xfffff) + 1000000);
			(void)irqchip_pic_ack(c);
			break;
		}
	}
	fake_vm_free(vm);
}

int main(void)
{
	TEST(pic_priority_eoi);
	TEST(ioapic_basics);
	TEST(ioapic_level_eoi);
	TEST(msi_and_sink);
	TEST(lapic_regs);
	TEST(lapic_ipis);
	TEST(lapic_timer);
	TEST(pic_ioapic_records);
	TEST(lapic_page_roundtrip);
	TEST(lapic_due_timer_capture);
	TEST(hostile_guest);
	TEST_EXIT();
}
