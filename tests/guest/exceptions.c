/* exceptions: exception delivery through the IDT with the right vector,
 * error code, CR2 and RIP. Runs each faulting instruction in user mode
 * (and a few page faults carefully at CPL0): #DE, #UD, #GP with selector,
 * zero and IDT error codes, #GP from an unknown MSR, #BP, #DB single-step,
 * #SS, #NM, #DF on its IST stack, and #PF with every error-code bit (P, W,
 * U, RSVD, I/D) plus accessed/dirty bits. */
#include "rt.h"

const char rt_kernel_name[] = "exceptions";

extern volatile u64 x_fault_rip;
u64 x_de(u64), x_de_idiv(u64), x_ud(u64), x_gp_sel(u64), x_gp_noncanon(u64),
    x_gp_priv(u64), x_gp_intgate(u64), x_bp(u64), x_db_step(u64), x_ss(u64),
    x_nm(u64), x_rdmsr(u64), x_read(u64), x_write(u64), x_exec(u64);

#define NOVAL (~0ULL)
/* pf test area: page table entries made per test, far from RAM */
#define T 0x8000000000ULL

struct exp {
	const char *name;
	u64 (*fn)(u64);
	u64 arg;
	bool user;
	u64 vector, error, cr2;   /* NOVAL: not checked */
	int rip_delta;            /* expected RIP - x_fault_rip (trap: length) */
	bool rip_is_arg;          /* expected RIP is arg (instruction fetch) */
};

static void run(const struct exp *e)
{
	if (!rt_test_enabled(e->name))
		return;
	rt_catch_arm();
	u64 r = e->user ? rt_user_call(e->fn, e->arg, false) : e->fn(e->arg);
	rt_catch_armed = 0;
	volatile struct rt_caught *c = &rt_caught;
	if (!r || !c->hit) {
		rt_fail(e->name, "no exception (want vector %lu)", e->vector);
		return;
	}
	u64 want_rip = e->rip_is_arg ? e->arg : x_fault_rip + e->rip_delta;
	u64 want_cs = e->user ? SEL_UCODE64 : SEL_KCODE64;
	if (c->vector != e->vector || (e->error != NOVAL && c->error != e->error) ||
	    (e->cr2 != NOVAL && c->cr2 != e->cr2) || c->rip != want_rip || c->cs != want_cs) {
		char werr[24] = "any", wcr2[24] = "any";
		if (e->error != NOVAL)
			rt_snprintf(werr, sizeof(werr), "%#lx", e->error);
		if (e->cr2 != NOVAL)
			rt_snprintf(wcr2, sizeof(wcr2), "%#lx", e->cr2);
		rt_fail(e->name, "got vector=%lu error=%#lx cr2=%#lx rip=%#lx cs=%#lx; want vector=%lu error=%s cr2=%s rip=%#lx cs=%#lx",
			c->vector, c->error, c->cr2, c->rip, c->cs, e->vector, werr, wcr2, want_rip, want_cs);
	} else {
		rt_ok(e->name);
	}
}

static void page_setup(bool nx, int maxphy)
{
	u8 *ro = rt_alloc(RT_PAGE, RT_PAGE, true);
	u8 *sup = rt_alloc(RT_PAGE, RT_PAGE, true);
	u8 *nxp = rt_alloc(RT_PAGE, RT_PAGE, true);
	u8 *rsv = rt_alloc(RT_PAGE, RT_PAGE, true);
	u8 *ex = rt_alloc(RT_PAGE, RT_PAGE, true);
	u8 *ad = rt_alloc(RT_PAGE, RT_PAGE, true);
	nxp[0] = 0xc3;
	ex[0] = 0xc3;       /* ret */
	rt_map_4k(T + 0x1000, (u64)ro, PTE_P | PTE_U);
	rt_map_4k(T + 0x2000, (u64)sup, PTE_P | PTE_W);
	rt_map_4k(T + 0x3000, (u64)nxp, PTE_P | PTE_W | PTE_U | (nx ? PTE_NX : 0));
	u64 rbit = maxphy < 52 ? 1ULL << 51 : 0;
	rt_map_4k(T + 0x4000, (u64)rsv | rbit, PTE_P | PTE_W | PTE_U);
	rt_map_4k(T + 0x5000, (u64)ex, PTE_P | PTE_W | PTE_U);
	rt_map_4k(T + 0x6000, (u64)ad, PTE_P | PTE_W | PTE_U);
	/* a user PTE under a supervisor-only PDE */
	rt_map_4k(T + 0x200000, (u64)ex, PTE_P | PTE_W | PTE_U);
	u64 *pde = rt_pt_entry(T + 0x200000, 2);
	*pde &= ~PTE_U;
	/* the T + 0 page stays not present */
	rt_unmap(T);
	write_cr3(read_cr3());
}

static u64 u_exec_ok(u64 a) { return ((u64(*)(void))a)(), 7; }

static void ad_bits(void)
{
	if (!rt_test_enabled("pf_accessed_dirty"))
		return;
	u64 *pte = rt_pte(T + 0x6000);
	*pte &= ~(PTE_A | PTE_D);
	invlpg(T + 0x6000);
	rt_catch_arm();
	u64 r1 = rt_user_call(x_read, T + 0x6000, false);
	u64 after_read = *pte;
	u64 r2 = rt_user_call(x_write, T + 0x6000, false);
	u64 after_write = *pte;
	rt_catch_armed = 0;
	if (r1 || r2)
		rt_fail("pf_accessed_dirty", "access faulted (vector %lu)", rt_caught.vector);
	else if (!(after_read & PTE_A) || (after_read & PTE_D))
		rt_fail("pf_accessed_dirty", "after read PTE %#lx: want A set, D clear", after_read);
	else if (!(after_write & PTE_D))
		rt_fail("pf_accessed_dirty", "after write PTE %#lx: want D set", after_write);
	else
		rt_ok("pf_accessed_dirty");
}

static void wp_tests(void)
{
	/* CPL0 write to a read-only page: faults with CR0.WP=1, not with 0 */
	struct exp e = { "pf_kernel_write_ro_wp1", x_write, T + 0x1000, false, 14, 0x3, T + 0x1000, 0, false };
	run(&e);
	if (rt_test_enabled("pf_kernel_write_ro_wp0")) {
		u64 cr0 = read_cr0();
		write_cr0(cr0 & ~0x10000ULL);
		rt_catch_arm();
		u64 r = x_write(T + 0x1000);
		rt_catch_armed = 0;
		write_cr0(cr0);
		if (r) rt_fail("pf_kernel_write_ro_wp0", "faulted: vector %lu error %#lx", rt_caught.vector, rt_caught.error);
		else rt_ok("pf_kernel_write_ro_wp0");
	}
}

void test_main(void)
{
	u32 r[4];
	cpuid(0x80000001, 0, r);
	bool nx = (r[3] >> 20) & 1;
	int maxphy = rt_maxphyaddr();
	rt_printf("exceptions: nx=%d maxphyaddr=%d\n", nx, maxphy);
	page_setup(nx, maxphy);

	static const struct exp tests[] = {
		{ "de_div_zero", x_de, 0, true, 0, 0, NOVAL, 0, false },
		{ "de_idiv_overflow", x_de_idiv, 0, true, 0, 0, NOVAL, 0, false },
		{ "ud_ud2", x_ud, 0, true, 6, 0, NOVAL, 0, false },
		{ "gp_selector", x_gp_sel, 0, true, 13, 0xfff8, NOVAL, 0, false },
		{ "gp_noncanonical", x_gp_noncanon, 0, true, 13, 0, NOVAL, 0, false },
		{ "gp_privileged", x_gp_priv, 0, true, 13, 0, NOVAL, 0, false },
		{ "gp_int_dpl", x_gp_intgate, 0, true, 13, 0x0d * 8 + 2, NOVAL, 0, false },
		{ "bp_int3", x_bp, 0, true, 3, 0, NOVAL, 1, false },
		{ "db_single_step", x_db_step, 0, true, 1, 0, NOVAL, 1, false },
		{ "ss_noncanonical", x_ss, 0, true, 12, 0, NOVAL, 0, false },
		/* #PF: error code bits P=1 W=2 U=4 RSVD=8 I/D=16 */
		{ "pf_user_read_notpresent", x_read, T, true, 14, 0x4, T, 0, false },
		{ "pf_user_write_notpresent", x_write, T + 8, true, 14, 0x6, T + 8, 0, false },
		{ "pf_user_exec_notpresent", x_exec, T + 0x10, true, 14, 0x14, T + 0x10, 0, true },
		{ "pf_user_write_readonly", x_write, T + 0x1000, true, 14, 0x7, T + 0x1000, 0, false },
		{ "pf_user_read_supervisor", x_read, T + 0x2000, true, 14, 0x5, T + 0x2000, 0, false },
		{ "pf_user_write_supervisor", x_write, T + 0x2010, true, 14, 0x7, T + 0x2010, 0, false },
		{ "pf_user_read_supervisor_pde", x_read, T + 0x200000, true, 14, 0x5, T + 0x200000, 0, false },
		{ "pf_kernel_read_notpresent", x_read, T + 0x20, false, 14, 0x0, T + 0x20, 0, false },
		{ "pf_kernel_write_notpresent", x_write, T + 0x30, false, 14, 0x2, T + 0x30, 0, false },
	};
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
		run(&tests[i]);

	if (nx) {
		struct exp e1 = { "pf_user_exec_nx", x_exec, T + 0x3000, true, 14, 0x15, T + 0x3000, 0, true };
		struct exp e2 = { "pf_kernel_exec_nx", x_exec, T + 0x3000, false, 14, 0x11, T + 0x3000, 0, true };
		run(&e1);
		run(&e2);
	} else {
		rt_skip("pf_user_exec_nx", "CPU has no NX");
	}
	if (maxphy < 52) {
		struct exp e1 = { "pf_user_read_rsvd", x_read, T + 0x4000, true, 14, 0xd, T + 0x4000, 0, false };
		struct exp e2 = { "pf_user_write_rsvd", x_write, T + 0x4000, true, 14, 0xf, T + 0x4000, 0, false };
		run(&e1);
		run(&e2);
	} else {
		rt_skip("pf_user_read_rsvd", "MAXPHYADDR is 52: no reserved address bits");
	}
	if (rt_test_enabled("pf_user_exec_ok")) {
		rt_catch_arm();
		u64 v = rt_user_call(u_exec_ok, T + 0x5000, false);
		rt_catch_armed = 0;
		if (v == 7 && !rt_caught.hit) rt_ok("pf_user_exec_ok");
		else rt_fail("pf_user_exec_ok", "executing a user page trapped (vector %lu)", rt_caught.vector);
	}
	ad_bits();
	wp_tests();

	if (rt_test_enabled("nm_ts")) {
		struct exp e = { "nm_ts", x_nm, 0, true, 7, 0, NOVAL, 0, false };
		write_cr0(read_cr0() | 8);     /* TS */
		run(&e);
		write_cr0(read_cr0() & ~8ULL);
	}
	{
		struct exp e = { "gp_unknown_msr", x_rdmsr, 0, false, 13, 0, NOVAL, 0, false };
		run(&e);
	}
	if (rt_test_enabled("df_ist")) {
		/* #PF through a not-present gate: #NP during #PF delivery is a
		 * double fault, delivered on IST1. Its saved RIP is undefined,
		 * so only vector, error code and the stack are checked. */
		u64 top = rt_cpu()->ist_top;
		rt_idt_present(14, false);
		rt_catch_arm();
		u64 r = rt_user_call(x_read, T + 0x40, false);
		rt_catch_armed = 0;
		rt_idt_present(14, true);
		volatile struct rt_caught *c = &rt_caught;
		if (!r || !c->hit) rt_fail("df_ist", "no exception");
		else if (c->vector != 8 || c->error != 0) rt_fail("df_ist", "got vector=%lu error=%#lx, want #DF (8) error 0", c->vector, c->error);
		else if (c->frame >= top || c->frame < top - 8192) rt_fail("df_ist", "handler frame %#lx not on the IST1 stack (%#lx-%#lx)", c->frame, top - 8192, top);
		else rt_ok("df_ist");
	}
	if (rt_test_enabled("cr2_after")) {
		/* the runtime still works after all that: a user round trip */
		if (rt_user_call((u64 (*)(u64))x_read, (u64)&x_fault_rip, false) == 0)
			rt_ok("cr2_after");
		else
			rt_fail("cr2_after", "plain user read trapped");
	}
}
