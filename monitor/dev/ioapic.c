/* The IOAPIC (version 0x11, 24 pins) at IOAPIC_BASE: IOREGSEL at 0x00 and
 * IOWIN at 0x10 over the ID, version, arbitration and redirection table
 * registers. A pin's request becomes an MSI-format message (destination,
 * destination mode, delivery mode, vector, trigger) handed to the LAPICs or
 * the MSI sink. Level pins hold remote IRR until a LAPIC EOI for their
 * vector. Runs under the irqchip lock. */
#include <errno.h>
#include <string.h>
#include "monitor/dev/irqchip_int.h"

void ioapic_reset(struct ioapic *io, uint8_t id)
{
	uint32_t lines = io->lines;
	memset(io, 0, sizeof(*io));
	io->id = (uint32_t)(id & 0xf) << 24;
	io->lines = lines;
	for (int i = 0; i < IOAPIC_PINS; i++)
		io->redir[i] = IOAPIC_RTE_MASK;
}

/* Sends pin's request if it has one and may. */
static void service(struct irqchip *c, unsigned pin)
{
	struct ioapic *io = &c->ioapic;
	uint64_t e = io->redir[pin];
	uint32_t bit = 1u << pin;
	if (!(io->irr & bit) || (e & IOAPIC_RTE_MASK))
		return;
	/* Remote IRR waits for an EOI, which only fixed and lowest-priority
	 * interrupts get; other modes are sent as edges. */
	unsigned mode = IOAPIC_RTE_DELMODE(e);
	bool level = (e & IOAPIC_RTE_LEVEL) && (mode == APIC_DM_FIXED || mode == APIC_DM_LOWEST);
	if (level) {
		if (e & IOAPIC_RTE_REMOTE_IRR)
			return;
		io->redir[pin] |= IOAPIC_RTE_REMOTE_IRR;
	} else {
		io->irr &= ~bit;
	}
	uint64_t addr = LAPIC_BASE | ((e >> 56) << 12) | ((e & IOAPIC_RTE_LOGICAL) ? 4 : 0);
	uint32_t data = (uint32_t)(e & IOAPIC_RTE_VECTOR) | (mode << 8) |
			(1u << 14) | (level ? 1u << 15 : 0);
	irqchip_send_msi(c, addr, data);
}

void ioapic_set_line(struct irqchip *c, unsigned pin, int level)
{
	struct ioapic *io = &c->ioapic;
	if (pin >= IOAPIC_PINS)
		return;
	uint32_t bit = 1u << pin;
	bool was = io->lines & bit;
	if (level)
		io->lines |= bit;
	else
		io->lines &= ~bit;
	if (io->redir[pin] & IOAPIC_RTE_LEVEL) {
		if (level) {
			io->irr |= bit;
			service(c, pin);
		} else {
			io->irr &= ~bit;
		}
	} else if (level && !was) {
		io->irr |= bit;
		service(c, pin);
	}
}

void ioapic_service_all(struct irqchip *c)
{
	for (unsigned pin = 0; pin < IOAPIC_PINS; pin++)
		service(c, pin);
}

void ioapic_eoi_vector(struct irqchip *c, uint8_t vector)
{
	struct ioapic *io = &c->ioapic;
	for (unsigned pin = 0; pin < IOAPIC_PINS; pin++) {
		uint64_t e = io->redir[pin];
		if ((e & IOAPIC_RTE_VECTOR) != vector || !(e & IOAPIC_RTE_LEVEL) ||
		    !(e & IOAPIC_RTE_REMOTE_IRR))
			continue;
		io->redir[pin] &= ~IOAPIC_RTE_REMOTE_IRR;
		if (io->lines & (1u << pin)) {
			io->irr |= 1u << pin;
			service(c, pin);
		}
	}
}

static uint32_t read_reg(const struct ioapic *io)
{
	uint32_t idx = io->regsel & 0xff;
	switch (idx) {
	case 0x00:
		return io->id;
	case 0x01:
		return IOAPIC_VERSION | ((IOAPIC_PINS - 1) << 16);
	case 0x02:
		return io->id;
	default:
		if (idx >= 0x10 && idx < 0x10 + 2 * IOAPIC_PINS) {
			uint64_t e = io->redir[(idx - 0x10) / 2];
			return (idx & 1) ? (uint32_t)(e >> 32) : (uint32_t)e;
		}
		return 0xffffffff;
	}
}

static void write_reg(struct irqchip *c, uint32_t v)
{
	struct ioapic *io = &c->ioapic;
	uint32_t idx = io->regsel & 0xff;
	if (idx == 0x00) {
		io->id = v & 0x0f000000;
		return;
	}
	if (idx < 0x10 || idx >= 0x10 + 2 * IOAPIC_PINS)
		return;
	unsigned pin = (idx - 0x10) / 2;
	uint64_t e = io->redir[pin];
	uint64_t nv = (idx & 1) ? ((uint64_t)v << 32) | (e & 0xffffffffULL)
				: (e & 0xffffffff00000000ULL) | v;
	nv = (nv & IOAPIC_RTE_WRITABLE) | (e & ~IOAPIC_RTE_WRITABLE);
	if (!(nv & IOAPIC_RTE_LEVEL))
		nv &= ~IOAPIC_RTE_REMOTE_IRR;
	io->redir[pin] = nv;
	/* A level line still asserted is pending again. */
	if ((nv & IOAPIC_RTE_LEVEL) && (io->lines & (1u << pin)))
		io->irr |= 1u << pin;
	service(c, pin);
}

/* Accesses of 1-4 bytes within IOREGSEL (0x00) or IOWIN (0x10); anything
 * else reads as ones and is ignored on write. */
void ioapic_mmio_read(struct irqchip *c, uint64_t off, void *data, unsigned len)
{
	uint8_t *d = data;
	memset(d, 0xff, len);
	uint64_t reg = off & ~3ULL, sh = off & 3;
	if ((reg != 0x00 && reg != 0x10) || sh + len > 4)
		return;
	uint32_t v = reg == 0 ? c->ioapic.regsel : read_reg(&c->ioapic);
	for (unsigned i = 0; i < len; i++)
		d[i] = (uint8_t)(v >> (8 * (sh + i)));
}

void ioapic_mmio_write(struct irqchip *c, uint64_t off, const void *data, unsigned len)
{
	const uint8_t *d = data;
	uint64_t reg = off & ~3ULL, sh = off & 3;
	if ((reg != 0x00 && reg != 0x10) || sh + len > 4)
		return;
	uint32_t cur = reg == 0 ? c->ioapic.regsel : read_reg(&c->ioapic);
	for (unsigned i = 0; i < len; i++) {
		unsigned s = 8 * (unsigned)(sh + i);
		cur = (cur & ~(0xffu << s)) | ((uint32_t)d[i] << s);
	}
	if (reg == 0)
		c->ioapic.regsel = cur & 0xff;
	else
		write_reg(c, cur);
}

/* Record: id u32, regsel u32, irr u32, lines u32, 24 x redir u64. */
void ioapic_save(const struct ioapic *io, struct rec_writer *w)
{
	rec_put_u32(w, io->id);
	rec_put_u32(w, io->regsel);
	rec_put_u32(w, io->irr);
	rec_put_u32(w, io->lines);
	for (int i = 0; i < IOAPIC_PINS; i++)
		rec_put_u64(w, io->redir[i]);
}

int ioapic_load(struct ioapic *io, struct rec_reader *r)
{
	struct ioapic n;
	n.id = rec_get_u32(r);
	n.regsel = rec_get_u32(r);
	n.irr = rec_get_u32(r);
	n.lines = rec_get_u32(r);
	uint32_t pins = (1u << IOAPIC_PINS) - 1;
	if ((n.id & ~0x0f000000u) || n.regsel > 0xff || (n.irr & ~pins) || (n.lines & ~pins))
		rec_fail(r);
	for (int i = 0; i < IOAPIC_PINS; i++) {
		n.redir[i] = rec_get_u64(r);
		/* Only writable bits plus remote IRR / delivery status. */
		if (n.redir[i] & ~(IOAPIC_RTE_WRITABLE | IOAPIC_RTE_REMOTE_IRR | IOAPIC_RTE_DELIVS))
			rec_fail(r);
	}
	if (r->err)
		return -EINVAL;
	*io = n;
	return 0;
}
