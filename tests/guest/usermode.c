/* usermode: entering CPL3 with IRETQ and coming back. Tests the user
 * segment selectors, SYSCALL/SYSRET round trips (RCX/R11 semantics,
 * FMASK, register preservation), int 0x80 round trips through a DPL3 gate,
 * SWAPGS keeping user and kernel GS bases apart, and leaving user mode
 * through SYS_EXIT from both paths. */
#include "rt.h"

const char rt_kernel_name[] = "usermode";

#define ROUNDS 1000

static volatile u64 user_gs_word = 0x5a5a0000c0ffeeULL;
static volatile u64 kernel_rflags_seen, kernel_gs_ok;

/* User code, in usermode_asm.S */
u64 u_cs(u64);
u64 u_syscall_regs(u64);   /* 0 when RCX/R11/callee-saved regs are right */
u64 u_sysret_df(u64);      /* RFLAGS after a syscall made with DF=1 */
u64 u_gs_read(u64);        /* reads %gs:0 */
u64 u_exit_int80(u64);     /* leaves user mode through int 0x80 SYS_EXIT */

static u64 u_ret42(u64 a) { return 42 + a; }

static u64 u_syscall_loop(u64 n)
{
	for (u64 i = 0; i < n; i++)
		if (rt_syscall(SYS_ADD3, i, 2 * i, 3) != 3 * i + 3)
			return i + 1;
	return 0;
}

static u64 u_int80_loop(u64 n)
{
	for (u64 i = 0; i < n; i++)
		if (rt_int80(SYS_ADD3, i, 5, 7) != i + 12)
			return i + 1;
	return 0;
}

static u64 u_getcpu(u64 a) { return rt_syscall(SYS_GETCPU, 0, 0, 0) + 100 * rt_int80(SYS_GETCPU, 0, 0, 0); }

#define SYS_PROBE 16
static void probe_hook(struct rt_frame *f)
{
	if (f->rax != SYS_PROBE) {
		f->rax = (u64)-1;
		return;
	}
	kernel_rflags_seen = read_rflags();
	kernel_gs_ok = rt_cpu()->self == (u64)rt_cpu();
	f->rax = f->rdi ^ 0xabcdef;
}

static u64 u_probe(u64 a) { return rt_syscall(SYS_PROBE, a, 0, 0); }

void test_main(void)
{
	u64 r;
	rt_syscall_hook = probe_hook;

	if (rt_test_enabled("user_enter")) {
		r = rt_user_call(u_ret42, 1, false);
		if (r == 43) rt_ok("user_enter"); else rt_fail("user_enter", "returned %lu, want 43", r);
	}
	if (rt_test_enabled("user_cs")) {
		r = rt_user_call(u_cs, 0, false);
		if (r == SEL_UCODE64) rt_ok("user_cs"); else rt_fail("user_cs", "CS in user mode %#lx, want %#x", r, SEL_UCODE64);
	}
	if (rt_test_enabled("syscall_roundtrip")) {
		r = rt_user_call(u_syscall_loop, ROUNDS, false);
		if (!r) rt_ok("syscall_roundtrip"); else rt_fail("syscall_roundtrip", "wrong result at round %lu", r - 1);
	}
	if (rt_test_enabled("syscall_regs")) {
		r = rt_user_call(u_syscall_regs, 0, false);
		if (!r) rt_ok("syscall_regs");
		else rt_fail("syscall_regs", "check %lu failed (1 RCX != return RIP, 2 R11 != RFLAGS, 3 callee-saved clobbered, 4 result)", r);
	}
	if (rt_test_enabled("syscall_fmask")) {
		kernel_rflags_seen = ~0ULL;
		r = rt_user_call(u_probe, 0x1234, true);
		u64 kf = kernel_rflags_seen;
		if (r != (0x1234 ^ 0xabcdef)) rt_fail("syscall_fmask", "probe returned %#lx", r);
		else if (kf & (RFLAGS_IF | RFLAGS_TF | RFLAGS_DF)) rt_fail("syscall_fmask", "kernel RFLAGS %#lx: IF/TF/DF not masked", kf);
		else if (!kernel_gs_ok) rt_fail("syscall_fmask", "kernel GS base wrong after SWAPGS");
		else rt_ok("syscall_fmask");
	}
	if (rt_test_enabled("sysret_rflags")) {
		r = rt_user_call(u_sysret_df, 0, false);
		if ((r & RFLAGS_DF) && (r & 0x3000) == 0x3000) rt_ok("sysret_rflags");
		else rt_fail("sysret_rflags", "RFLAGS after SYSRET %#lx, want DF and IOPL=3 kept", r);
	}
	if (rt_test_enabled("int80_roundtrip")) {
		r = rt_user_call(u_int80_loop, ROUNDS, false);
		if (!r) rt_ok("int80_roundtrip"); else rt_fail("int80_roundtrip", "wrong result at round %lu", r - 1);
	}
	if (rt_test_enabled("int80_exit")) {
		r = rt_user_call(u_exit_int80, 77, false);
		if (r == 77) rt_ok("int80_exit"); else rt_fail("int80_exit", "returned %lu, want 77", r);
	}
	if (rt_test_enabled("swapgs")) {
		wrmsr(MSR_KERNEL_GS_BASE, (u64)&user_gs_word);
		r = rt_user_call(u_gs_read, 0, false);
		u64 after = rdmsr(MSR_KERNEL_GS_BASE);
		bool kgs = rt_cpu()->self == (u64)rt_cpu();
		wrmsr(MSR_KERNEL_GS_BASE, 0);
		if (r != user_gs_word) rt_fail("swapgs", "user read %%gs:0 = %#lx, want %#lx", r, user_gs_word);
		else if (after != (u64)&user_gs_word) rt_fail("swapgs", "KERNEL_GS_BASE %#lx after return, want %p", after, &user_gs_word);
		else if (!kgs) rt_fail("swapgs", "kernel GS base lost");
		else rt_ok("swapgs");
	}
	if (rt_test_enabled("getcpu")) {
		r = rt_user_call(u_getcpu, 0, false);
		if (r == 0) rt_ok("getcpu"); else rt_fail("getcpu", "got %lu, want 0", r);
	}
	if (rt_test_enabled("user_many")) {
		u64 bad = 0;
		for (u64 i = 0; i < 200; i++)
			if (rt_user_call(u_ret42, i, i & 1) != 42 + i)
				bad++;
		if (!bad) rt_ok("user_many"); else rt_fail("user_many", "%lu of 200 entries returned wrong values", bad);
	}
}
