/* Local APICs in xAPIC mode, one per vCPU: the register page (ID, version
 * 0x14 with 6 LVT entries, TPR/APR/PPR, EOI, LDR/DFR, SVR, ISR/TMR/IRR,
 * ESR, ICR, LVTs, timer), interrupt acceptance and priority, IPIs with
 * shorthands and physical / logical flat / logical cluster destinations,
 * and the timer in one-shot, periodic and TSC-deadline modes on an evloop
 * timer. The timer bus clock is 1 GHz (one count per ns before the
 * divider). Runs under the irqchip lock. */
#include <assert.h>
#include <errno.h>
#include <string.h>
#include "monitor/dev/irqchip_int.h"
#include "monitor/evloop.h"

#define APIC_VERSION      0x00050014u     /* 6 LVT entries, integrated */
#define TIMER_MIN_PERIOD  100000ULL       /* ns; guards the loop thread */
#define TIMER_MODE(a)     (((a)->lvt[LVT_TIMER] >> 17) & 3)
#define TIMER_ONESHOT     0
#define TIMER_PERIODIC    1
#define TIMER_TSCDEADLINE 2

static const uint32_t lvt_writable[LVT_COUNT] = {
	[LVT_TIMER] = 0x700ff, [LVT_THERMAL] = 0x107ff, [LVT_PERF] = 0x107ff,
	[LVT_LINT0] = 0x1a7ff, [LVT_LINT1] = 0x1a7ff, [LVT_ERROR] = 0x100ff,
};

static bool vec_test(const uint32_t *bm, unsigned v) { return bm[v >> 5] & (1u << (v & 31)); }
static void vec_set(uint32_t *bm, unsigned v) { bm[v >> 5] |= 1u << (v & 31); }
static void vec_clear(uint32_t *bm, unsigned v) { bm[v >> 5] &= ~(1u << (v & 31)); }

static int highest(const uint32_t *bm)
{
	for (int i = 7; i >= 0; i--)
		if (bm[i])
			return i * 32 + 31 - __builtin_clz(bm[i]);
	return -1;
}

static bool hw_enabled(const struct lapic *a) { return a->base_msr & APIC_BASE_ENABLE; }
static bool sw_enabled(const struct lapic *a) { return a->svr & APIC_SVR_ENABLE; }

void lapic_reset(struct lapic *a, bool bsp)
{
	lapic_stop_timer(a);
	a->tpr = a->ldr = a->esr = a->esr_acc = a->icr_lo = a->icr_hi = 0;
	a->dfr = 0xffffffff;
	a->svr = 0xff;
	for (int i = 0; i < LVT_COUNT; i++)
		a->lvt[i] = APIC_LVT_MASKED;
	/* The BSP takes the PIC through LINT0 (virtual wire), as firmware
	 * leaves it and KVM models it. */
	if (bsp)
		a->lvt[LVT_LINT0] = APIC_DM_EXTINT << 8;
	a->tmict = a->tdcr = 0;
	memset(a->isr, 0, sizeof(a->isr));
	memset(a->tmr, 0, sizeof(a->tmr));
	memset(a->irr, 0, sizeof(a->irr));
	a->tsc_deadline = 0;
	a->nmi = a->init = a->sipi = a->extint = false;
	a->sipi_vector = 0;
}

static void kick(struct lapic *a) { a->chip->kick |= 1u << a->cpu; }

static uint32_t ppr(const struct lapic *a)
{
	int isrv = highest(a->isr);
	uint32_t isrc = isrv < 0 ? 0 : (uint32_t)isrv & 0xf0;
	return (a->tpr & 0xf0) >= isrc ? a->tpr & 0xff : isrc;
}

static void set_error(struct lapic *a, uint32_t bit)
{
	a->esr_acc |= bit;
	uint32_t lvt = a->lvt[LVT_ERROR];
	uint8_t v = (uint8_t)lvt;
	if (!(lvt & APIC_LVT_MASKED) && v >= 16 && sw_enabled(a) && !vec_test(a->irr, v)) {
		vec_set(a->irr, v);
		vec_clear(a->tmr, v);
		kick(a);
	}
}

void lapic_accept(struct lapic *a, unsigned mode, uint8_t vector, bool level)
{
	if (!hw_enabled(a))
		return;
	switch (mode) {
	case APIC_DM_FIXED:
	case APIC_DM_LOWEST:
		if (vector < 16) {
			set_error(a, 1u << 6);          /* receive illegal vector */
			return;
		}
		if (!sw_enabled(a))
			return;
		vec_set(a->irr, vector);
		if (level)
			vec_set(a->tmr, vector);
		else
			vec_clear(a->tmr, vector);
		kick(a);
		break;
	case APIC_DM_NMI:
		a->nmi = true;
		kick(a);
		break;
	case APIC_DM_INIT:
		a->init = true;
		a->sipi = false;
		kick(a);
		break;
	case APIC_DM_STARTUP:
		a->sipi = true;
		a->sipi_vector = vector;
		kick(a);
		break;
	case APIC_DM_EXTINT:
		a->extint = true;
		kick(a);
		break;
	default:        /* SMI and reserved modes: no SMM here */
		break;
	}
}

int lapic_highest_irr(const struct lapic *a) { return highest(a->irr); }

int lapic_pending_vector(const struct lapic *a)
{
	if (!hw_enabled(a))
		return -1;
	int v = highest(a->irr);
	if (v < 0 || ((uint32_t)v & 0xf0) <= (ppr(a) & 0xf0))
		return -1;
	return v;
}

int lapic_ack_vector(struct lapic *a)
{
	int v = lapic_pending_vector(a);
	if (v < 0)
		return -1;
	assert(v >= 16 && v < 256);
	vec_clear(a->irr, (unsigned)v);
	vec_set(a->isr, (unsigned)v);
	return v;
}

bool lapic_accepts_pic(const struct lapic *a)
{
	if (a->extint)
		return true;    /* an ExtINT message from the IOAPIC */
	if (a->cpu != 0)
		return false;   /* the PIC output is wired to the BSP's LINT0 */
	uint32_t lvt = a->lvt[LVT_LINT0];
	return !hw_enabled(a) ||
	       (!(lvt & APIC_LVT_MASKED) && ((lvt >> 8) & 7) == APIC_DM_EXTINT);
}

bool lapic_match_dest(const struct lapic *a, uint8_t dest, bool logical)
{
	if (!hw_enabled(a))
		return false;
	if (!logical)
		return dest == 0xff || (a->id >> 24) == dest;
	if (dest == 0xff)
		return true;
	uint8_t ldr = (uint8_t)(a->ldr >> 24);
	if ((a->dfr >> 28) == 0xf)                      /* flat */
		return (ldr & dest) != 0;
	return (ldr >> 4) == (dest >> 4) && (ldr & dest & 0xf);  /* cluster */
}

static void eoi(struct lapic *a)
{
	int v = highest(a->isr);
	if (v < 0)
		return;
	vec_clear(a->isr, (unsigned)v);
	if (vec_test(a->tmr, (unsigned)v)) {
		vec_clear(a->tmr, (unsigned)v);
		ioapic_eoi_vector(a->chip, (uint8_t)v);
	}
}

/* ---- timer ---- */

static uint64_t timer_div(const struct lapic *a)
{
	unsigned d = (a->tdcr & 3) | ((a->tdcr & 8) >> 1);
	return d == 7 ? 1 : 2ULL << d;
}

void lapic_stop_timer(struct lapic *a)
{
	a->deadline_ns = 0;
	if (a->timer)
		ev_timer_cancel(a->timer);
}

static void arm(struct lapic *a, uint64_t deadline)
{
	a->deadline_ns = deadline ? deadline : 1;
	if (a->timer)
		ev_timer_arm(a->timer, a->deadline_ns);
}

static uint64_t period_ns(const struct lapic *a)
{
	uint64_t p = (uint64_t)a->tmict * timer_div(a);
	if (TIMER_MODE(a) == TIMER_PERIODIC && p < TIMER_MIN_PERIOD)
		p = TIMER_MIN_PERIOD;
	return p;
}

/* Starts counting down tmict, already `done` ns into the first period. */
static void start_count(struct lapic *a, uint64_t done)
{
	lapic_stop_timer(a);
	if (!a->tmict || TIMER_MODE(a) == TIMER_TSCDEADLINE)
		return;
	uint64_t now = now_ns();
	a->start_ns = now - (done < now ? done : now);
	arm(a, a->start_ns + period_ns(a));
}

static uint32_t current_count(const struct lapic *a)
{
	if (!a->deadline_ns || TIMER_MODE(a) == TIMER_TSCDEADLINE)
		return 0;
	uint64_t now = now_ns(), div = timer_div(a);
	uint64_t el = now > a->start_ns ? now - a->start_ns : 0;
	uint64_t per = period_ns(a);
	if (TIMER_MODE(a) == TIMER_PERIODIC)
		el %= per;
	else if (el >= per)
		return 0;
	uint64_t ticks = el / div;
	return ticks >= a->tmict ? 0 : a->tmict - (uint32_t)ticks;
}

static void tsc_deadline_arm(struct lapic *a)
{
	lapic_stop_timer(a);
	if (!a->tsc_deadline || TIMER_MODE(a) != TIMER_TSCDEADLINE)
		return;
	struct vm *vm = a->chip->vm;
	uint64_t tsc = vm_guest_tsc(vm), now = now_ns();
	uint64_t khz = vm->tsc_khz ? vm->tsc_khz : 1000000;
	uint64_t delta = 0;
	if (a->tsc_deadline > tsc) {
		unsigned __int128 ns = (unsigned __int128)(a->tsc_deadline - tsc) * 1000000u / khz;
		/* Far-away deadlines: ten years is forever. */
		delta = ns > 315360000000000000ULL ? 315360000000000000ULL : (uint64_t)ns;
	}
	arm(a, now + delta);
}

void lapic_timer_fire(struct lapic *a)
{
	uint64_t now = now_ns();
	if (!a->deadline_ns || now < a->deadline_ns)
		return;         /* reprogrammed meanwhile */
	uint32_t lvt = a->lvt[LVT_TIMER];
	if (!(lvt & APIC_LVT_MASKED))
		lapic_accept(a, APIC_DM_FIXED, (uint8_t)lvt, false);
	switch (TIMER_MODE(a)) {
	case TIMER_PERIODIC: {
		uint64_t per = period_ns(a);
		/* Next boundary after now; missed periods coalesce. */
		uint64_t n = (now - a->start_ns) / per;
		a->start_ns += n * per;
		arm(a, a->start_ns + per);
		break;
	}
	case TIMER_TSCDEADLINE:
		a->tsc_deadline = 0;
		a->deadline_ns = 0;
		break;
	default:
		a->deadline_ns = 0;
		break;
	}
}

uint64_t lapic_tsc_deadline(struct lapic *a)
{
	lapic_timer_fire(a);    /* due: deliver it rather than report it armed */
	return a->tsc_deadline;
}

void lapic_write_tsc_deadline(struct lapic *a, uint64_t v)
{
	if (TIMER_MODE(a) != TIMER_TSCDEADLINE)
		return;         /* ignored outside TSC-deadline mode */
	a->tsc_deadline = v;
	tsc_deadline_arm(a);
}

/* ---- registers ---- */

static void send_ipi(struct lapic *a)
{
	uint32_t lo = a->icr_lo;
	unsigned mode = (lo >> 8) & 7, sh = (lo >> 18) & 3;
	uint8_t vector = (uint8_t)lo;
	bool logical = lo & (1u << 11), assert = lo & (1u << 14), trig = lo & (1u << 15);
	if (mode == APIC_DM_INIT && trig && !assert)
		return;         /* INIT level de-assert: no effect */
	if ((mode == APIC_DM_FIXED || mode == APIC_DM_LOWEST) && vector < 16) {
		set_error(a, 1u << 5);                  /* send illegal vector */
		return;
	}
	struct irqchip *c = a->chip;
	switch (sh) {
	case 1:
		lapic_accept(a, mode, vector, false);
		break;
	case 2:
	case 3:
		for (int i = 0; i < c->ncpus; i++)
			if (sh == 2 || i != a->cpu)
				lapic_accept(&c->cpu[i], mode == APIC_DM_LOWEST ? APIC_DM_FIXED : mode,
					     vector, false);
		break;
	default:
		irqchip_deliver(c, (uint8_t)(a->icr_hi >> 24), logical, mode, vector, false);
		break;
	}
}

uint32_t lapic_read_reg(struct lapic *a, uint32_t reg)
{
	switch (reg) {
	case 0x20: return a->id;
	case 0x30: return APIC_VERSION;
	case 0x80: return a->tpr;
	case 0x90: return ppr(a);
	case 0xa0: return ppr(a);
	case 0xd0: return a->ldr;
	case 0xe0: return a->dfr | 0x0fffffff;
	case 0xf0: return a->svr;
	case 0x280: return a->esr;
	case 0x300: return a->icr_lo;
	case 0x310: return a->icr_hi;
	case 0x380: return a->tmict;
	case 0x390: return current_count(a);
	case 0x3e0: return a->tdcr;
	default:
		break;
	}
	if (reg >= 0x100 && reg < 0x180)
		return a->isr[(reg - 0x100) >> 4];
	if (reg >= 0x180 && reg < 0x200)
		return a->tmr[(reg - 0x180) >> 4];
	if (reg >= 0x200 && reg < 0x280)
		return a->irr[(reg - 0x200) >> 4];
	if (reg >= 0x320 && reg < 0x380)
		return a->lvt[(reg - 0x320) >> 4];
	return 0;
}

static void write_lvt(struct lapic *a, unsigned i, uint32_t v)
{
	uint32_t old = a->lvt[i];
	v &= lvt_writable[i];
	if (!sw_enabled(a))
		v |= APIC_LVT_MASKED;
	/* Remote IRR of LINT0/1 is read-only. */
	uint32_t keep = (i == LVT_LINT0 || i == LVT_LINT1) ? old & (1u << 14) : 0;
	a->lvt[i] = v | keep;
	if (i == LVT_TIMER && ((old ^ v) >> 17) & 3) {
		/* A mode change stops the timer. */
		lapic_stop_timer(a);
		a->tmict = 0;
		a->tsc_deadline = 0;
	}
	if (i == LVT_LINT0)
		irqchip_pic_changed(a->chip);
}

void lapic_write_reg(struct lapic *a, uint32_t reg, uint32_t v)
{
	switch (reg) {
	case 0x20:
		return;         /* read-only: the ID is the CPU index, as the MP table says */
	case 0x80:
		a->tpr = v & 0xff;
		return;
	case 0xb0:
		eoi(a);
		return;
	case 0xd0:
		a->ldr = v & 0xff000000;
		return;
	case 0xe0:
		a->dfr = (v & 0xf0000000) | 0x0fffffff;
		return;
	case 0xf0:
		a->svr = v & 0x3ff;
		if (!(v & APIC_SVR_ENABLE))
			for (int i = 0; i < LVT_COUNT; i++)
				a->lvt[i] |= APIC_LVT_MASKED;
		irqchip_pic_changed(a->chip);
		return;
	case 0x280:
		a->esr = a->esr_acc;
		a->esr_acc = 0;
		return;
	case 0x300:
		a->icr_lo = v & 0xccfff;
		send_ipi(a);
		return;
	case 0x310:
		a->icr_hi = v & 0xff000000;
		return;
	case 0x380:
		if (TIMER_MODE(a) == TIMER_TSCDEADLINE)
			return;
		a->tmict = v;
		start_count(a, 0);
		return;
	case 0x3e0:
		a->tdcr = v & 0xb;
		return;
	default:
		break;
	}
	if (reg >= 0x320 && reg < 0x380)
		write_lvt(a, (reg - 0x320) >> 4, v);
}

/* ---- canonical register page ---- */

static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t get32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

void lapic_page_get(struct lapic *a, uint8_t page[CPU_LAPIC_SIZE])
{
	/* A timer that is due but whose callback has not run yet fires now,
	 * so the page never shows an expired count without its interrupt. */
	lapic_timer_fire(a);
	memset(page, 0, CPU_LAPIC_SIZE);
	for (uint32_t reg = 0x20; reg < 0x400; reg += 0x10)
		put32(page + reg, lapic_read_reg(a, reg));
	put32(page + 0xb0, 0);
}

void lapic_page_set(struct lapic *a, const uint8_t page[CPU_LAPIC_SIZE])
{
	lapic_stop_timer(a);
	/* The APIC ID stays the CPU index (see the ID register). */
	a->tpr = get32(page + 0x80) & 0xff;
	a->ldr = get32(page + 0xd0) & 0xff000000;
	a->dfr = (get32(page + 0xe0) & 0xf0000000) | 0x0fffffff;
	a->svr = get32(page + 0xf0) & 0x3ff;
	a->esr = get32(page + 0x280) & 0xef;
	a->esr_acc = 0;
	a->icr_lo = get32(page + 0x300) & 0xccfff;
	a->icr_hi = get32(page + 0x310) & 0xff000000;
	for (int i = 0; i < 8; i++) {
		a->isr[i] = get32(page + 0x100 + 0x10 * i);
		a->tmr[i] = get32(page + 0x180 + 0x10 * i);
		a->irr[i] = get32(page + 0x200 + 0x10 * i);
	}
	/* Vectors 0-15 cannot be requested or in service. */
	a->isr[0] &= 0xffff0000;
	a->tmr[0] &= 0xffff0000;
	a->irr[0] &= 0xffff0000;
	for (int i = 0; i < LVT_COUNT; i++) {
		uint32_t w = lvt_writable[i] | (i == LVT_LINT0 || i == LVT_LINT1 ? 1u << 14 : 0);
		a->lvt[i] = get32(page + 0x320 + 0x10 * i) & w;
	}
	a->tmict = get32(page + 0x380);
	a->tdcr = get32(page + 0x3e0) & 0xb;
	uint32_t cur = get32(page + 0x390);
	irqchip_pic_changed(a->chip);
	if (TIMER_MODE(a) == TIMER_TSCDEADLINE || !a->tmict)
		return;
	if (cur == 0 && TIMER_MODE(a) == TIMER_ONESHOT)
		return;         /* expired */
	if (cur == 0 || cur > a->tmict)
		cur = a->tmict;
	start_count(a, (uint64_t)(a->tmict - cur) * timer_div(a));
}
