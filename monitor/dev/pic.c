/* The 8259A programmable interrupt controller pair: master at 0x20/0x21,
 * slave at 0xA0/0xA1 cascaded on master IRQ2, edge/level per input from the
 * ELCR (0x4d0/0x4d1). Initialization words, OCW1-3 (masks, specific and
 * non-specific EOI, rotation, special mask, poll), auto-EOI, special fully
 * nested mode and spurious IRQ7/15. Pure logic; the irqchip lock is held. */
#include <assert.h>
#include <errno.h>
#include <string.h>
#include "monitor/dev/irqchip_int.h"

static void chip_reset(struct pic_chip *s, uint8_t elcr_mask)
{
	uint8_t elcr = s->elcr & elcr_mask;
	uint8_t lines = s->lines;
	memset(s, 0, sizeof(*s));
	s->elcr = elcr;
	s->elcr_mask = elcr_mask;
	s->lines = lines;
}

void pic_reset(struct pic *p)
{
	memset(p, 0, sizeof(*p));
	chip_reset(&p->c[0], 0xf8);
	chip_reset(&p->c[1], 0xde);
}

/* Priority 0 (highest) .. 7 of the first set bit in mask, counting from
 * prio_add; 8 if mask is empty. */
static int get_priority(const struct pic_chip *s, uint8_t mask)
{
	if (!mask)
		return 8;
	int prio = 0;
	while (!(mask & (1u << ((prio + s->prio_add) & 7))))
		prio++;
	return prio;
}

/* IRQ (0-7) this chip asserts its output for, or -1. */
static int chip_irq(const struct pic_chip *s, bool is_master)
{
	uint8_t req = s->irr & (uint8_t)~s->imr;
	int prio = get_priority(s, req);
	if (prio == 8)
		return -1;
	uint8_t in_service = s->isr;
	if (s->special_mask)
		in_service &= (uint8_t)~s->imr;
	/* Special fully nested mode: a slave request may nest over the
	 * in-service cascade input. */
	if (is_master && s->sfnm)
		in_service &= (uint8_t)~(1u << 2);
	int cur = get_priority(s, in_service);
	if (prio < cur)
		return (prio + s->prio_add) & 7;
	return -1;
}

static void chip_set_line(struct pic_chip *s, unsigned irq, int level)
{
	uint8_t bit = (uint8_t)(1u << irq);
	if (s->elcr & bit) {
		if (level)
			s->irr |= bit;
		else
			s->irr &= (uint8_t)~bit;
	} else if (level && !(s->lines & bit)) {
		s->irr |= bit;
	}
	if (level)
		s->lines |= bit;
	else
		s->lines &= (uint8_t)~bit;
}

/* Propagates the slave's output to master input 2. */
static void cascade(struct pic *p)
{
	chip_set_line(&p->c[0], 2, chip_irq(&p->c[1], false) >= 0);
}

void pic_set_line(struct pic *p, unsigned irq, int level)
{
	if (irq >= 16)
		return;
	if (irq >= 8)
		chip_set_line(&p->c[1], irq - 8, level);
	else if (irq != 2)
		chip_set_line(&p->c[0], irq, level);
	cascade(p);
}

int pic_pending_vector(const struct pic *p)
{
	int irq = chip_irq(&p->c[0], true);
	if (irq < 0)
		return -1;
	if (irq == 2) {
		int sirq = chip_irq(&p->c[1], false);
		return p->c[1].base + (sirq < 0 ? 7 : sirq);
	}
	return p->c[0].base + irq;
}

/* Acknowledges irq on one chip: IRR -> ISR (or auto-EOI). */
static void chip_ack(struct pic_chip *s, int irq)
{
	assert(irq >= 0 && irq < 8);
	uint8_t bit = (uint8_t)(1u << irq);
	if (s->auto_eoi) {
		if (s->rotate_auto_eoi)
			s->prio_add = (uint8_t)((irq + 1) & 7);
	} else {
		s->isr |= bit;
	}
	/* An edge request is consumed; a level one stays while the line is high. */
	if (!(s->elcr & bit))
		s->irr &= (uint8_t)~bit;
}

int pic_inta(struct pic *p)
{
	int irq = chip_irq(&p->c[0], true);
	int vec;
	if (irq < 0) {
		vec = p->c[0].base + 7;           /* spurious IRQ7 */
	} else if (irq == 2) {
		int sirq = chip_irq(&p->c[1], false);
		chip_ack(&p->c[0], 2);
		if (sirq < 0) {
			vec = p->c[1].base + 7;   /* spurious IRQ15 */
		} else {
			chip_ack(&p->c[1], sirq);
			vec = p->c[1].base + sirq;
		}
	} else {
		chip_ack(&p->c[0], irq);
		vec = p->c[0].base + irq;
	}
	cascade(p);
	return vec;
}

/* Poll command: the read acknowledges like INTA and returns 0x80 | level,
 * or 0 when the chip has no request. */
static uint8_t chip_poll(struct pic *p, unsigned chip)
{
	struct pic_chip *s = &p->c[chip];
	s->poll = 0;
	int irq = chip_irq(s, chip == 0);
	if (irq < 0)
		return 0;
	chip_ack(s, irq);
	if (chip == 1) {
		/* The master sees its cascade request served too. */
		p->c[0].irr &= (uint8_t)~(1u << 2);
	}
	cascade(p);
	return (uint8_t)(0x80 | irq);
}

static void ocw2(struct pic_chip *s, uint8_t v)
{
	unsigned cmd = v >> 5;
	int irq = v & 7;
	switch (cmd) {
	case 0:         /* rotate in auto-EOI mode: clear */
	case 4:         /* rotate in auto-EOI mode: set */
		s->rotate_auto_eoi = cmd == 4;
		break;
	case 1:         /* non-specific EOI */
	case 5: {       /* rotate on non-specific EOI */
		int prio = get_priority(s, s->isr);
		if (prio == 8)
			break;
		int hi = (prio + s->prio_add) & 7;
		s->isr &= (uint8_t)~(1u << hi);
		if (cmd == 5)
			s->prio_add = (uint8_t)((hi + 1) & 7);
		break;
	}
	case 3:         /* specific EOI */
		s->isr &= (uint8_t)~(1u << irq);
		break;
	case 6:         /* set priority: irq gets the lowest */
		s->prio_add = (uint8_t)((irq + 1) & 7);
		break;
	case 7:         /* rotate on specific EOI */
		s->isr &= (uint8_t)~(1u << irq);
		s->prio_add = (uint8_t)((irq + 1) & 7);
		break;
	default:        /* 2: no operation */
		break;
	}
}

void pic_port_write(struct pic *p, unsigned chip, unsigned port, uint8_t v)
{
	struct pic_chip *s = &p->c[chip & 1];
	if (port & 1) {
		switch (s->init_state) {
		case 0:
			s->imr = v;
			break;
		case 1:
			s->base = v & 0xf8;
			s->init_state = s->single ? (s->need_icw4 ? 3 : 0) : 2;
			break;
		case 2:         /* ICW3: the cascade wiring is fixed */
			s->init_state = s->need_icw4 ? 3 : 0;
			break;
		default:
			s->sfnm = (v >> 4) & 1;
			s->auto_eoi = (v >> 1) & 1;
			s->init_state = 0;
			break;
		}
	} else if (v & 0x10) {
		/* ICW1: masks, ISR, IRR edge latches and priorities reset. */
		chip_reset(s, s->elcr_mask);
		s->irr = s->lines & s->elcr;
		s->init_state = 1;
		s->need_icw4 = v & 1;
		s->single = (v >> 1) & 1;
	} else if (v & 0x08) {
		if (v & 0x04)
			s->poll = 1;
		if (v & 0x02)
			s->read_isr = v & 1;
		if (v & 0x40)
			s->special_mask = (v >> 5) & 1;
	} else {
		ocw2(s, v);
	}
	cascade(p);
}

void pic_elcr_write(struct pic *p, unsigned chip, uint8_t v)
{
	struct pic_chip *s = &p->c[chip & 1];
	s->elcr = v & s->elcr_mask;
	/* Level inputs follow their line; edge inputs keep their latch. */
	s->irr = (uint8_t)((s->irr & ~s->elcr) | (s->lines & s->elcr));
	cascade(p);
}

uint8_t pic_elcr_read(const struct pic *p, unsigned chip)
{
	return p->c[chip & 1].elcr;
}

uint8_t pic_port_read(struct pic *p, unsigned chip, unsigned port)
{
	struct pic_chip *s = &p->c[chip & 1];
	if (s->poll)
		return chip_poll(p, chip & 1);
	if (port & 1)
		return s->imr;
	return s->read_isr ? s->isr : s->irr;
}

/* Record: per chip 16 bytes in struct order. */
void pic_save(const struct pic *p, struct rec_writer *w)
{
	for (int i = 0; i < 2; i++) {
		const struct pic_chip *s = &p->c[i];
		const uint8_t b[] = { s->irr, s->imr, s->isr, s->elcr, s->lines, s->base,
				      s->prio_add, s->init_state, s->need_icw4, s->single,
				      s->read_isr, s->poll, s->special_mask, s->auto_eoi,
				      s->rotate_auto_eoi, s->sfnm };
		rec_put_bytes(w, b, sizeof(b));
	}
}

int pic_load(struct pic *p, struct rec_reader *r)
{
	struct pic n;
	pic_reset(&n);
	for (int i = 0; i < 2; i++) {
		struct pic_chip *s = &n.c[i];
		uint8_t b[16];
		rec_get_bytes(r, b, sizeof(b));
		if (r->err)
			return -EINVAL;
		s->irr = b[0]; s->imr = b[1]; s->isr = b[2];
		s->elcr = b[3]; s->lines = b[4]; s->base = b[5];
		s->prio_add = b[6]; s->init_state = b[7];
		if ((b[3] & ~s->elcr_mask) || (b[5] & 7) || b[6] > 7 || b[7] > 3)
			return -EINVAL;
		for (int k = 8; k < 16; k++)
			if (b[k] > 1)
				return -EINVAL;
		s->need_icw4 = b[8]; s->single = b[9]; s->read_isr = b[10];
		s->poll = b[11]; s->special_mask = b[12]; s->auto_eoi = b[13];
		s->rotate_auto_eoi = b[14]; s->sfnm = b[15];
	}
	*p = n;
	return 0;
}
