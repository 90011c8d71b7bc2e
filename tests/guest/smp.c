/* smp: brings up the other CPUs with INIT-SIPI-SIPI through a real-mode
 * trampoline below 1 MiB (real -> protected -> long mode on each AP), has
 * each print and increment a shared counter with lock-prefixed adds from
 * user mode at the same time as the BSP, and sends each AP a fixed IPI.
 * CPUs come from the MP table (cpus=N limits them; without an MP table,
 * cpus=N assumes APIC ids 0..N-1). Options: rounds=N (default 100000). */
#include "rt.h"

const char rt_kernel_name[] = "smp";

#define VEC_IPI 0x40

static volatile u64 shared_counter, go, done_cpus, ipi_count[RT_MAX_CPUS];
static u64 rounds;

static u64 u_count(u64 cpu)
{
	while (!atomic_load(&go))
		cpu_relax();
	for (u64 i = 0; i < rounds; i++)
		atomic_add(&shared_counter, 1);
	return rt_syscall(SYS_GETCPU, 0, 0, 0);
}

static void ipi_handler(struct rt_frame *f)
{
	ipi_count[rt_cpu()->index]++;
	rt_lapic_eoi();
}

static void ap_main(int idx)
{
	struct rt_cpu *c = rt_cpu();
	rt_printf("smp: cpu %d online, apic id %u\n", idx, c->apic_id);
	u64 who = rt_user_call(u_count, idx, false);
	if (who != (u64)idx)
		rt_printf("smp: cpu %d: SYS_GETCPU said %lu\n", idx, who);
	atomic_add(&done_cpus, who == (u64)idx ? 1 : 0x10000);
	/* then idle in sti;hlt (rt_ap_start), taking IPIs */
}

void test_main(void)
{
	u32 ids[RT_MAX_CPUS];
	int n = rt_cpu_count(ids, RT_MAX_CPUS);
	rounds = rt_opt_u64("rounds", 100000);
	rt_lapic_enable();
	rt_pic_disable();
	rt_set_handler(VEC_IPI, ipi_handler);
	u32 self = rt_lapic_id();
	rt_printf("smp: %d cpus, bsp apic id %u\n", n, self);
	if (n < 2) {
		rt_skip("smp_boot", "only one CPU (run with 2 or more)");
		return;
	}
	int started = 0, idx = 1;
	for (int i = 0; i < n; i++) {
		if (ids[i] == self)
			continue;
		if (rt_start_ap(idx, ids[i], ap_main)) {
			rt_fail("smp_boot", "cpu with apic id %u did not come online in 5 s", ids[i]);
			return;
		}
		idx++;
		started++;
	}
	if (rt_ncpus_online == started + 1) rt_ok("smp_boot");
	else rt_fail("smp_boot", "%d cpus online, want %d", rt_ncpus_online, started + 1);

	if (rt_test_enabled("smp_counter")) {
		atomic_store(&go, 1);
		u64 who = rt_user_call(u_count, 0, false);
		struct rt_deadline d;
		rt_deadline_start(&d, 20);
		while (atomic_load(&done_cpus) < (u64)started && !rt_deadline_passed(&d))
			cpu_relax();
		u64 want = rounds * (started + 1), got = atomic_load(&shared_counter);
		if (who != 0) rt_fail("smp_counter", "SYS_GETCPU on the BSP said %lu", who);
		else if (atomic_load(&done_cpus) != (u64)started) rt_fail("smp_counter", "only %#lx APs finished", done_cpus);
		else if (got != want) rt_fail("smp_counter", "counter %lu, want %lu (lost atomic updates)", got, want);
		else rt_ok("smp_counter");
		rt_printf("smp: counter=%lu\n", got);
	}
	if (rt_test_enabled("smp_ipi")) {
		int bad = 0;
		for (int c = 1; c <= started; c++) {
			struct rt_cpu *cpu = rt_cpus[c];
			u64 before = ipi_count[c];
			for (int k = 0; k < 3; k++) {
				if (rt_ipi(cpu->apic_id, VEC_IPI)) {
					rt_fail("smp_ipi", "IPI to apic id %u stuck in delivery", cpu->apic_id);
					return;
				}
				struct rt_deadline d;
				rt_deadline_start(&d, 3);
				while (ipi_count[c] < before + k + 1 && !rt_deadline_passed(&d))
					cpu_relax();
			}
			if (ipi_count[c] != before + 3) {
				rt_fail("smp_ipi", "cpu %d took %lu of 3 IPIs", c, ipi_count[c] - before);
				bad = 1;
			}
		}
		if (!bad)
			rt_ok("smp_ipi");
	}
}
