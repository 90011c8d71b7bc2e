/* The guest programming behind the golden records (see golden.h). */
#include "monitor/bus.h"
#include "monitor/dev.h"
#include "monitor/irq.h"
#include "monitor/vm.h"
#include "tests/unit/dev_legacy/golden.h"

static void ob(struct vm *vm, uint16_t port, uint8_t v) { bus_write(vm->pio, port, &v, 1); }

static void iow(struct vm *vm, uint32_t idx, uint32_t v)
{
	bus_write(vm->mmio, IOAPIC_BASE, &idx, 4);
	bus_write(vm->mmio, IOAPIC_BASE + 0x10, &v, 4);
}

void golden_setup(struct vm *vm)
{
	struct dev *pit = vm_find_dev(vm, "pit");
	pit->type->pause(pit);
	/* PIC: Linux's init, masks, ELCR, IRQ3 in service, IRQ11 requested. */
	ob(vm, 0x20, 0x11); ob(vm, 0x21, 0x20); ob(vm, 0x21, 0x04); ob(vm, 0x21, 0x01);
	ob(vm, 0xa0, 0x11); ob(vm, 0xa1, 0x28); ob(vm, 0xa1, 0x02); ob(vm, 0xa1, 0x01);
	ob(vm, 0x21, 0xb0);
	ob(vm, 0xa1, 0x8e);
	ob(vm, 0x4d0, 0x20);
	ob(vm, 0x4d1, 0x0c);
	irqchip_set_irq(vm->irq, 3, 1);
	irqchip_set_irq(vm->irq, 3, 0);
	(void)irqchip_pic_ack(vm->irq);
	irqchip_set_irq(vm->irq, 11, 1);
	ob(vm, 0x20, 0x0b);
	/* IOAPIC: ID, a level pin with remote IRR, an edge pin, a masked one. */
	iow(vm, 0x00, 0x02000000);
	iow(vm, 0x11 + 2 * 10, 0x01000000);
	iow(vm, 0x10 + 2 * 10, 0x0000a940);
	irqchip_set_irq(vm->irq, 10, 1);
	iow(vm, 0x10 + 2 * 2, 0x00000030);
	iow(vm, 0x10 + 2 * 7, 0x00010045);
	irqchip_set_irq(vm->irq, 7, 1);
	/* UART: 115200 8N1, FIFO, loopback holding "go", scratch. */
	ob(vm, 0x3fb, 0x83); ob(vm, 0x3f8, 0x01); ob(vm, 0x3f9, 0x00); ob(vm, 0x3fb, 0x03);
	ob(vm, 0x3fa, 0xc7);
	ob(vm, 0x3fc, 0x1b);
	ob(vm, 0x3f8, 'g');
	ob(vm, 0x3f8, 'o');
	ob(vm, 0x3f9, 0x05);
	ob(vm, 0x3ff, 0x42);
	/* PIT: ch0 rate generator 100 Hz, ch1 square wave LSB-only, ch2
	 * one-shot with the gate up and a latched count. */
	ob(vm, 0x43, 0x34); ob(vm, 0x40, 11932 & 0xff); ob(vm, 0x40, 11932 >> 8);
	ob(vm, 0x43, 0x56); ob(vm, 0x41, 18);
	ob(vm, 0x61, 0x01);
	ob(vm, 0x43, 0xb0); ob(vm, 0x42, 0xa9); ob(vm, 0x42, 0x04);
	ob(vm, 0x43, 0x80);
	/* RTC: clock being set to 2024-05-06 07:08:09, CMOS byte, index. */
	ob(vm, 0x70, 0x0b); ob(vm, 0x71, 0x82);
	static const uint8_t t[][2] = { { 0, 0x09 }, { 2, 0x08 }, { 4, 0x07 }, { 6, 0x02 },
					{ 7, 0x06 }, { 8, 0x05 }, { 9, 0x24 }, { 0x32, 0x20 } };
	for (unsigned i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		ob(vm, 0x70, t[i][0]);
		ob(vm, 0x71, t[i][1]);
	}
	ob(vm, 0x70, 0x50); ob(vm, 0x71, 0x3c);
	ob(vm, 0x70, 0x8f);
	/* i8042: self-tested, command byte, an AUX byte waiting. */
	ob(vm, 0x64, 0xaa);
	uint8_t b;
	bus_read(vm->pio, 0x60, &b, 1);
	ob(vm, 0x64, 0x60); ob(vm, 0x60, 0x47);
	ob(vm, 0x64, 0xd3); ob(vm, 0x60, 0x5a);
}
