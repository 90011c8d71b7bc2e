/* SMP bring-up for the test kernels: copies the 16-bit trampoline of
 * boot.S below 1 MiB, sends INIT-SIPI-SIPI to one AP at a time, and gives
 * the AP its per-CPU data, tables and LAPIC before running the caller's
 * function on it. */
#include "rt.h"

#define RT_TRAMP_ADDR 0x8000ULL

extern char rt_tramp_start[], rt_tramp_end[];
extern u64 rt_ap_stack;

static struct rt_cpu *volatile ap_cpu;
static void (*volatile ap_fn)(int);
static volatile int ap_online;

void rt_ap_start(void);
void rt_ap_start(void)
{
	struct rt_cpu *c = ap_cpu;
	void (*fn)(int) = ap_fn;
	rt_cpu_init_ap(c);
	rt_lapic_enable();
	c->apic_id = rt_lapic_id();
	__atomic_fetch_add(&rt_ncpus_online, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&ap_online, 1, __ATOMIC_SEQ_CST);
	if (fn)
		fn((int)c->index);
	for (;;)
		__asm__ volatile("sti; hlt; cli" ::: "memory");
}

int rt_start_ap(int idx, u32 apic_id, void (*fn)(int idx))
{
	if (idx <= 0 || idx >= RT_MAX_CPUS)
		return -1;
	memcpy((void *)RT_TRAMP_ADDR, rt_tramp_start, rt_tramp_end - rt_tramp_start);
	struct rt_cpu *c = rt_cpu_alloc(idx);
	c->apic_id = apic_id;
	ap_cpu = c;
	ap_fn = fn;
	rt_ap_stack = c->kstack_top;
	ap_online = 0;
	mb();
	if (rt_ipi(apic_id, 0x4500))                        /* INIT, assert */
		return -1;
	rt_spin(20000);
	for (int i = 0; i < 2; i++) {                       /* STARTUP x2 */
		if (rt_ipi(apic_id, 0x4600 | (u32)(RT_TRAMP_ADDR >> 12)))
			return -1;
		rt_spin(2000);
	}
	struct rt_deadline d;
	rt_deadline_start(&d, 5);
	while (!__atomic_load_n(&ap_online, __ATOMIC_SEQ_CST)) {
		if (rt_deadline_passed(&d))
			return -1;
		cpu_relax();
	}
	return 0;
}
