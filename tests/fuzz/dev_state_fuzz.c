/* libFuzzer harness for the legacy devices and interrupt controllers:
 * the input is either a state record for one device (which must be
 * refused or, once accepted, save into a record that loads again) or a
 * stream of guest port / IOAPIC / LAPIC accesses. */
#include <assert.h>
#include "monitor/dev/legacy.h"
#include "tests/unit/irq/fake_vm.h"

static struct vm *vm;

static void setup(void)
{
	if (vm)
		return;
	if (fake_vm_new(2, 16, 1, &vm) || legacy_devices_create(vm))
		abort();
}

static void guest_ops(const uint8_t *p, size_t n)
{
	for (; n >= 4; p += 4, n -= 4) {
		uint16_t port = (uint16_t)(p[0] | p[1] << 8);
		uint8_t v = p[2], op = p[3];
		uint32_t d = v;
		switch (op & 7) {
		case 0:
			if (port < 0xf4 || port > 0xf7)
				bus_write(vm->pio, port, &d, 1);
			break;
		case 1:
			bus_read(vm->pio, port, &d, 1);
			break;
		case 2:
			d = (uint32_t)v << (8 * (op >> 6));
			bus_write(vm->mmio, IOAPIC_BASE + (port & 0x1f), &d, 4);
			break;
		case 3:
			d = (uint32_t)v << (8 * (op >> 6));
			if ((port & 0x3f0) == 0x380)
				d |= 1u << 30;
			lapic_mmio_write(vm->irq, op >> 7, port & 0x3ff, &d, 4);
			break;
		case 4:
			lapic_mmio_read(vm->irq, op >> 7, port & 0x3ff, &d, 4);
			break;
		case 5:
			irqchip_set_irq(vm->irq, port % 24, v & 1);
			break;
		case 6:
			if (irqchip_pending(vm->irq, op >> 7) >= 0)
				(void)irqchip_ack(vm->irq, op >> 7);
			break;
		default:
			irqchip_msi(vm->irq, 0xfee00000 | (uint32_t)(port & 0xff) << 12, (uint32_t)v << 8 | p[1]);
			break;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	if (size < 1)
		return 0;
	if (data[0] == 0xff) {
		guest_ops(data + 1, size - 1);
		return 0;
	}
	int ndev = 0;
	for (struct dev *d = vm->devs; d; d = d->next)
		ndev++;
	struct dev *d = vm->devs;
	for (int i = data[0] % ndev; i > 0; i--)
		d = d->next;
	struct rec_reader r;
	rec_reader_init(&r, data + 1, size - 1);
	if (d->type->load(d, &r, d->type->version) == 0) {
		struct rec_writer w;
		rec_writer_init(&w);
		assert(d->type->save(d, &w) == 0);
		rec_reader_init(&r, w.buf, w.len);
		assert(d->type->load(d, &r, d->type->version) == 0);
		rec_writer_free(&w);
	}
	return 0;
}
