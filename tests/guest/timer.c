/* timer: timer interrupts arrive. The PIT (channel 0, rate generator)
 * through the IOAPIC pin the MP table names for ISA IRQ 0 (pin 2 on a PC),
 * delivered while the CPU halts at CPL0 and while it spins at CPL3; the
 * LAPIC timer periodic, one-shot and TSC-deadline (when CPUID advertises
 * it); both at once; and a coarse check of
 * the PIT rate against the RTC. Timeouts use the CMOS RTC, not interrupts.
 * Options: hz=N (PIT rate, default 100), ticks=N (per test, default 20),
 * lapic_count=N (LAPIC initial count, default 100000, divide by 16). */
#include "rt.h"

const char rt_kernel_name[] = "timer";

#define VEC_PIT 0x30
#define VEC_LAPIC 0x31

static volatile u64 pit_ticks, lapic_ticks, user_ticks;

static void pit_irq(struct rt_frame *f)
{
	pit_ticks++;
	if ((f->cs & 3) == 3)
		user_ticks++;
	rt_lapic_eoi();
}

static void lapic_irq(struct rt_frame *f)
{
	lapic_ticks++;
	rt_lapic_eoi();
}

/* Spins with interrupts on until *ctr reaches want or the deadline passes
 * (CPL0). No hlt here: a missing interrupt must end in a FAIL, not a hang. */
static bool wait_ticks(volatile u64 *ctr, u64 want, u32 seconds)
{
	struct rt_deadline d;
	rt_deadline_start(&d, seconds);
	sti();
	while (*ctr < want) {
		if (rt_deadline_passed(&d)) {
			cli();
			return false;
		}
		cpu_relax();
	}
	cli();
	return true;
}

/* CPL3: spins until the PIT count advances by arg or ~5 s of RTC pass. */
static u64 u_spin_ticks(u64 n)
{
	u64 start = pit_ticks;
	struct rt_deadline d;
	rt_deadline_start(&d, 5);
	while (pit_ticks < start + n) {
		if (rt_deadline_passed(&d))
			return pit_ticks - start;
		cpu_relax();
	}
	return pit_ticks - start;
}

/* CPL3: waits for both timers to advance by n */
static u64 u_both(u64 n)
{
	u64 p0 = pit_ticks, l0 = lapic_ticks;
	struct rt_deadline d;
	rt_deadline_start(&d, 10);
	while (pit_ticks < p0 + n || lapic_ticks < l0 + n) {
		if (rt_deadline_passed(&d))
			return 0;
		cpu_relax();
	}
	return 1;
}

void test_main(void)
{
	u32 hz = (u32)rt_opt_u64("hz", 100);
	u64 n = rt_opt_u64("ticks", 20);
	u32 lcount = (u32)rt_opt_u64("lapic_count", 100000);
	int pin = rt_isa_irq_pin(0);

	rt_pic_disable();
	rt_lapic_enable();
	rt_set_handler(VEC_PIT, pit_irq);
	rt_set_handler(VEC_LAPIC, lapic_irq);
	rt_printf("timer: PIT %u Hz on IOAPIC pin %d -> vector %#x, lapic id %u\n", hz, pin, VEC_PIT, rt_lapic_id());

	rt_ioapic_route(pin, VEC_PIT, rt_lapic_id(), false, false, false);
	rt_pit_periodic(hz);
	if (rt_test_enabled("pit_ioapic")) {
		u64 s = pit_ticks;
		if (wait_ticks(&pit_ticks, s + n, 10)) rt_ok("pit_ioapic");
		else rt_fail("pit_ioapic", "%lu of %lu PIT interrupts in 10 s", pit_ticks - s, n);
	}
	if (rt_test_enabled("hlt_wakeup")) {
		/* only once the PIT is known to tick, since hlt would never end */
		u64 s = pit_ticks;
		for (int i = 0; i < 5 && pit_ticks - s < 40; i++)
			__asm__ volatile("sti; hlt; cli" ::: "memory");
		if (pit_ticks > s) rt_ok("hlt_wakeup");
		else rt_fail("hlt_wakeup", "hlt returned without a PIT interrupt");
	}
	if (rt_test_enabled("pit_user")) {
		user_ticks = 0;
		u64 got = rt_user_call(u_spin_ticks, n, true);
		if (got >= n && user_ticks) rt_ok("pit_user");
		else rt_fail("pit_user", "%lu of %lu ticks while at CPL3 (%lu taken from CPL3)", got, n, user_ticks);
	}
	if (rt_test_enabled("pit_rate")) {
		/* count PIT ticks across two RTC second boundaries */
		struct rt_deadline d;
		u8 s0 = (u8)rt_rtc_tick();
		rt_deadline_start(&d, 3);
		sti();
		while ((u8)rt_rtc_tick() == s0 && !rt_deadline_passed(&d))
			cpu_relax();
		u64 t0 = pit_ticks;
		u8 s1 = (u8)rt_rtc_tick();
		while ((u8)rt_rtc_tick() == s1 && !rt_deadline_passed(&d))
			cpu_relax();
		u64 t1 = pit_ticks;
		cli();
		u64 per_s = t1 - t0;
		if (per_s >= hz / 4 && per_s <= hz * 4)
			rt_ok("pit_rate");
		else
			rt_fail("pit_rate", "%lu PIT interrupts in one RTC second, want about %u", per_s, hz);
		rt_printf("timer: pit_rate %lu/s\n", per_s);
	}

	if (rt_test_enabled("lapic_periodic")) {
		u64 s = lapic_ticks;
		rt_lapic_timer(VEC_LAPIC, lcount, true);
		bool ok = wait_ticks(&lapic_ticks, s + n, 10);
		rt_lapic_timer_stop();
		if (ok) rt_ok("lapic_periodic");
		else rt_fail("lapic_periodic", "%lu of %lu LAPIC timer interrupts in 10 s", lapic_ticks - s, n);
	}
	if (rt_test_enabled("lapic_count_down")) {
		rt_lapic_write(0x320, 0x10000 | VEC_LAPIC);    /* masked one-shot */
		rt_lapic_write(0x3e0, 0x3);
		rt_lapic_write(0x380, 0xffffffff);
		u32 a = rt_lapic_read(0x390);
		rt_spin(100000);
		u32 b = rt_lapic_read(0x390);
		rt_lapic_timer_stop();
		if (b < a && a <= 0xffffffff) rt_ok("lapic_count_down");
		else rt_fail("lapic_count_down", "current count %#x then %#x: not decreasing", a, b);
	}
	if (rt_test_enabled("lapic_oneshot")) {
		u64 s = lapic_ticks;
		rt_lapic_timer(VEC_LAPIC, lcount, false);
		bool ok = wait_ticks(&lapic_ticks, s + 1, 10);
		/* then no more: wait for 5 PIT ticks */
		u64 p = pit_ticks;
		wait_ticks(&pit_ticks, p + 5, 5);
		u64 got = lapic_ticks - s;
		u32 cur = rt_lapic_read(0x390);
		rt_lapic_timer_stop();
		if (ok && got == 1 && cur == 0) rt_ok("lapic_oneshot");
		else rt_fail("lapic_oneshot", "%lu interrupts (want 1), current count %#x (want 0)", got, cur);
	}
	if (rt_test_enabled("lapic_tsc_deadline")) {
		u32 c[4];
		cpuid(1, 0, c);
		if (!((c[2] >> 24) & 1)) {
			rt_skip("lapic_tsc_deadline", "CPUID does not advertise TSC-deadline");
		} else {
			u64 s = lapic_ticks;
			rt_lapic_write(0x320, VEC_LAPIC | (2u << 17));   /* TSC-deadline mode */
			__asm__ volatile("mfence" ::: "memory");
			wrmsr(0x6e0, rdtsc() + 2000000);
			bool ok = wait_ticks(&lapic_ticks, s + 1, 5);
			u64 after = rdmsr(0x6e0);
			/* armed ~10 ms ahead (the wait below is 10 PIT ticks, 100 ms
			 * at the default rate), then disarmed by writing 0: nothing
			 * may fire. The margin covers a host that deschedules the
			 * vCPU between the two writes. */
			wrmsr(0x6e0, rdtsc() + 20000000);
			wrmsr(0x6e0, 0);
			u64 p = pit_ticks;
			wait_ticks(&pit_ticks, p + 10, 5);
			u64 got = lapic_ticks - s;
			rt_lapic_timer_stop();
			if (!ok) rt_fail("lapic_tsc_deadline", "no interrupt within 5 s of a deadline 2M TSC cycles ahead");
			else if (after != 0) rt_fail("lapic_tsc_deadline", "IA32_TSC_DEADLINE reads %#lx after firing, want 0", after);
			else if (got != 1) rt_fail("lapic_tsc_deadline", "%lu interrupts, want 1 (a disarmed deadline fired)", got);
			else rt_ok("lapic_tsc_deadline");
		}
	}
	if (rt_test_enabled("both_user")) {
		rt_lapic_timer(VEC_LAPIC, lcount, true);
		u64 r = rt_user_call(u_both, n, true);
		rt_lapic_timer_stop();
		if (r) rt_ok("both_user");
		else rt_fail("both_user", "PIT %lu, LAPIC %lu ticks: one timer stalled", pit_ticks, lapic_ticks);
	}
	rt_pit_stop();
	rt_ioapic_route(pin, VEC_PIT, 0, false, false, true);
	rt_printf("timer: totals pit=%lu lapic=%lu irqs=%lu\n", pit_ticks, lapic_ticks, rt_cpu()->irqs);
}
