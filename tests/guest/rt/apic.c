/* Interrupt controllers and clocks of the test kernels: the 8259 PIC (only
 * to mask it), the local APIC (enable, EOI, timer, IPIs), the IOAPIC, the
 * PIT, the CMOS RTC used for timeouts, and the Intel MP table that tells
 * which CPUs exist and where ISA IRQs are routed. */
#include "rt.h"

#define IOAPIC_BASE 0xfec00000ULL

void rt_pic_disable(void)
{
	/* ICW1-4: vectors 0x20/0x28, cascade on IRQ2, 8086 mode; then mask. */
	outb(0x20, 0x11); outb(0xa0, 0x11);
	outb(0x21, 0x20); outb(0xa1, 0x28);
	outb(0x21, 0x04); outb(0xa1, 0x02);
	outb(0x21, 0x01); outb(0xa1, 0x01);
	outb(0x21, 0xff); outb(0xa1, 0xff);
}

/* Cached so that LAPIC accesses from CPL3 (no RDMSR there) and from
 * emulated CPL0 code stay cheap; set by rt_lapic_enable on the BSP. */
static u64 lapic_base = 0xfee00000ULL;
u64 rt_lapic_base(void) { return lapic_base; }
u32 rt_lapic_read(u32 reg) { return mmio_read32(rt_lapic_base() + reg); }
void rt_lapic_write(u32 reg, u32 v) { mmio_write32(rt_lapic_base() + reg, v); }
u32 rt_lapic_id(void) { return rt_lapic_read(0x20) >> 24; }
void rt_lapic_eoi(void) { rt_lapic_write(0xb0, 0); }

void rt_lapic_enable(void)
{
	u64 m = rdmsr(MSR_APIC_BASE);
	wrmsr(MSR_APIC_BASE, m | (1 << 11));
	lapic_base = m & 0xfffff000ULL;
	rt_lapic_write(0x80, 0);              /* TPR: accept everything */
	rt_lapic_write(0xf0, 0x100 | 0xff);   /* software enable, spurious 0xff */
	rt_lapic_write(0x350, 0x10000);       /* LINT0 masked (PIC unused) */
	rt_lapic_write(0x320, 0x10000);       /* timer masked */
}

void rt_lapic_timer(int vector, u32 count, bool periodic)
{
	rt_lapic_write(0x3e0, 0x3);           /* divide by 16 */
	rt_lapic_write(0x320, (u32)vector | (periodic ? (1u << 17) : 0));
	rt_lapic_write(0x380, count);
}

void rt_lapic_timer_stop(void)
{
	rt_lapic_write(0x320, 0x10000);
	rt_lapic_write(0x380, 0);
}

int rt_ipi(u32 apic_id, u32 icr_low)
{
	rt_lapic_write(0x310, apic_id << 24);
	rt_lapic_write(0x300, icr_low);
	for (int i = 0; i < 1000000; i++) {
		if (!(rt_lapic_read(0x300) & (1u << 12)))   /* delivery status */
			return 0;
		cpu_relax();
	}
	return -1;
}

static u32 ioapic_read(u32 reg)
{
	mmio_write32(IOAPIC_BASE, reg);
	return mmio_read32(IOAPIC_BASE + 0x10);
}

static void ioapic_write(u32 reg, u32 v)
{
	mmio_write32(IOAPIC_BASE, reg);
	mmio_write32(IOAPIC_BASE + 0x10, v);
}

void rt_ioapic_route(int pin, int vector, u32 apic_id, bool level, bool low, bool masked)
{
	u32 lo = (u32)vector | (low ? 1u << 13 : 0) | (level ? 1u << 15 : 0) | (masked ? 1u << 16 : 0);
	(void)ioapic_read(1);
	ioapic_write(0x10 + 2 * pin, 0x10000);
	ioapic_write(0x11 + 2 * pin, apic_id << 24);
	ioapic_write(0x10 + 2 * pin, lo);
}

void rt_pit_periodic(u32 hz)
{
	u32 div = 1193182 / hz;
	if (div > 0xffff)
		div = 0xffff;
	if (div < 2)
		div = 2;
	outb(0x43, 0x34);                     /* ch0, lo/hi, mode 2 */
	outb(0x40, div & 0xff);
	outb(0x40, div >> 8);
}

void rt_pit_stop(void)
{
	outb(0x43, 0x30);                     /* ch0, mode 0, count never reloaded */
	outb(0x40, 0xff);
	outb(0x40, 0xff);
}

/* ---- RTC-based timeouts ---- */
u32 rt_rtc_tick(void)
{
	outb(0x70, 0x00);                     /* seconds */
	return inb(0x71);
}

void rt_deadline_start(struct rt_deadline *d, u32 seconds)
{
	d->last = (u8)rt_rtc_tick();
	d->left = seconds + 1;                /* the first change may be soon */
	d->polls = 0;
}

bool rt_deadline_passed(struct rt_deadline *d)
{
	/* Read the RTC every 64 polls: a port read is an exit. */
	if (++d->polls & 63)
		return false;
	u8 s = (u8)rt_rtc_tick();
	if (s != d->last) {
		d->last = s;
		if (--d->left == 0)
			return true;
	}
	return false;
}

void rt_spin(u32 n)
{
	for (u32 i = 0; i < n; i++)
		cpu_relax();
}

/* ---- MP table ---- */
static const u8 *mp_config(void)
{
	static const u64 ranges[][2] = {
		{ 0, 1024 },            /* EBDA, patched below */
		{ 0x9fc00, 0xa0000 },
		{ 0xf0000, 0x100000 },
	};
	u64 ebda = (u64)(*(volatile u16 *)0x40e) << 4;
	for (int r = 0; r < 3; r++) {
		u64 lo = ranges[r][0], hi = ranges[r][1];
		if (r == 0) {
			if (ebda < 0x80000 || ebda >= 0xa0000)
				continue;
			lo = ebda;
			hi = ebda + 1024;
		}
		for (u64 a = lo; a + 16 <= hi; a += 16) {
			const u8 *p = (const u8 *)a;
			if (p[0] != '_' || p[1] != 'M' || p[2] != 'P' || p[3] != '_')
				continue;
			u8 sum = 0;
			for (int i = 0; i < 16; i++)
				sum += p[i];
			u32 cfg = *(const u32 *)(p + 4);
			if (sum || !cfg)
				continue;
			const u8 *c = (const u8 *)(u64)cfg;
			if (c[0] == 'P' && c[1] == 'C' && c[2] == 'M' && c[3] == 'P')
				return c;
		}
	}
	return NULL;
}

int rt_mp_cpus(u32 *apic_ids, int max)
{
	const u8 *c = mp_config();
	if (!c)
		return 0;
	u16 len = *(const u16 *)(c + 4), count = *(const u16 *)(c + 34);
	const u8 *p = c + 44, *end = c + len;
	int n = 0;
	for (int i = 0; i < count && p < end; i++) {
		if (p[0] == 0) {
			if ((p[3] & 1) && n < max)
				apic_ids[n++] = p[1];
			p += 20;
		} else {
			p += 8;
		}
	}
	return n;
}

int rt_isa_irq_pin(int irq)
{
	const u8 *c = mp_config();
	if (!c)
		return irq == 0 ? 2 : irq;
	u16 len = *(const u16 *)(c + 4), count = *(const u16 *)(c + 34);
	const u8 *p = c + 44, *end = c + len;
	int isa_bus = -1;
	for (int i = 0; i < count && p < end; i++) {
		if (p[0] == 0) {
			p += 20;
			continue;
		}
		if (p[0] == 1 && !memcmp(p + 2, "ISA", 3))
			isa_bus = p[1];
		if (p[0] == 3 && p[1] == 0 && p[4] == isa_bus && p[5] == irq)
			return p[7];
		p += 8;
	}
	return irq == 0 ? 2 : irq;
}

int rt_cpu_count(u32 *apic_ids, int max)
{
	int n = rt_mp_cpus(apic_ids, max);
	int want = (int)rt_opt_u64("cpus", 0);
	if (want > max)
		want = max;
	if (want > n) {
		/* no MP table, or one that lists fewer CPUs than asked for
		 * (SeaBIOS under TCG may): assume APIC ids 0..want-1 */
		for (int i = 0; i < want; i++)
			apic_ids[i] = i;
		n = want;
	} else if (want > 0) {
		n = want;
	}
	return n ? n : 1;
}
