/* usermode: entering CPL3 with IRETQ and coming back. Tests the user
 * segment selectors, SYSCALL/SYSRET round trips (RCX/R11 semantics,
 * FMASK, register preservation), int 0x80 round trips through a DPL3 gate,
 * SWAPGS keeping user and kernel GS bases apart, and leaving user mode
 * through SYS_EXIT from both paths. Also CPL3 instruction coverage the BT
 * engine needs: lock-prefixed atomics incl. CMPXCHG8B/16B, SSE registers
 * through FXSAVE/FXRSTOR, RDTSC, CPUID. */
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

u64 u_sse_fx(u64 buf);

static u64 u_ret42(u64 a) { return 42 + a; }

/* Lock-prefixed read-modify-writes and compare-exchanges at CPL3;
 * returns 0 or the number of the first failing check. */
static u64 u_atomics(u64 cx16)
{
	static volatile u64 v __attribute__((aligned(16)));
	static volatile union { __int128 x; u64 q[2]; } pp __attribute__((aligned(16)));
	volatile u64 *pair = pp.q;
	v = 5;
	if (__atomic_fetch_add(&v, 3, __ATOMIC_SEQ_CST) != 5 || v != 8) return 1;
	u64 exp = 8;
	if (!__atomic_compare_exchange_n(&v, &exp, 20, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST) || v != 20) return 2;
	exp = 7;
	if (__atomic_compare_exchange_n(&v, &exp, 30, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST) || exp != 20 || v != 20) return 3;
	if (__atomic_exchange_n(&v, 99, __ATOMIC_SEQ_CST) != 20 || v != 99) return 4;
	__atomic_fetch_or(&v, 0x100, __ATOMIC_SEQ_CST);
	__atomic_fetch_and(&v, ~1ULL, __ATOMIC_SEQ_CST);
	__atomic_fetch_xor(&v, 0xf0, __ATOMIC_SEQ_CST);
	if (v != (((99 | 0x100) & ~1ULL) ^ 0xf0)) return 5;
	u8 old;
	__asm__ volatile("lock btsq $40, %0; setc %1" : "+m"(v), "=r"(old) :: "memory");
	if (old || !(v >> 40 & 1)) return 6;
	/* cmpxchg8b: 32-bit halves of pair[0] */
	pair[0] = 0x1111111122222222ULL;
	u32 lo = 0x22222222, hi = 0x11111111;
	u8 ok;
	__asm__ volatile("lock cmpxchg8b %0; sete %1" : "+m"(pair[0]), "=r"(ok), "+a"(lo), "+d"(hi)
			 : "b"(0x44444444), "c"(0x33333333) : "memory");
	if (!ok || pair[0] != 0x3333333344444444ULL) return 7;
	if (cx16) {
		pair[0] = 1;
		pair[1] = 2;
		u64 a = 1, d = 2;
		__asm__ volatile("lock cmpxchg16b %0; sete %1" : "+m"(pp.x), "=r"(ok), "+a"(a), "+d"(d)
				 : "b"(0xaaaaULL), "c"(0xbbbbULL) : "memory");
		if (!ok || pair[0] != 0xaaaa || pair[1] != 0xbbbb) return 8;
		a = 5;
		__asm__ volatile("lock cmpxchg16b %0; sete %1" : "+m"(pp.x), "=r"(ok), "+a"(a), "+d"(d)
				 : "b"(0ULL), "c"(0ULL) : "memory");
		if (ok || a != 0xaaaa || d != 0xbbbb) return 9;
	}
	return 0;
}

static u64 u_rdtsc(u64 n)
{
	u64 prev = rdtsc();
	for (u64 i = 0; i < n; i++) {
		rt_syscall(SYS_ADD3, 0, 0, 0);
		u64 t = rdtsc();
		if (t <= prev)
			return i + 1;
		prev = t;
	}
	return 0;
}

static u64 u_cpuid(u64 unused)
{
	u32 r[4];
	cpuid(0, 0, r);
	if (r[0] < 1) return 1;
	cpuid(1, 0, r);
	u32 need = 1 | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 9) | (1 << 26);  /* FPU TSC MSR PAE APIC SSE2 */
	if ((r[3] & need) != need) return 2;
	cpuid(0x80000001, 0, r);
	if (!(r[3] & (1u << 29))) return 3;                                  /* LM */
	return 0;
}

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
	if (rt_test_enabled("atomics")) {
		u32 c[4];
		cpuid(1, 0, c);
		u64 cx16 = (c[2] >> 13) & 1;
		r = rt_user_call(u_atomics, cx16, false);
		if (!r) rt_ok("atomics");
		else rt_fail("atomics", "check %lu failed (1 xadd, 2-3 cmpxchg, 4 xchg, 5 or/and/xor, 6 bts, 7 cmpxchg8b, 8-9 cmpxchg16b; cx16=%lu)", r, cx16);
	}
	if (rt_test_enabled("sse_fxsave")) {
		write_cr0((read_cr0() & ~0x4ULL) | 0x2);       /* EM off, MP on */
		write_cr4(read_cr4() | 0x600);                 /* OSFXSR, OSXMMEXCPT */
		u8 *buf = rt_alloc(1024, 16, true);
		u32 *pat = (u32 *)(buf + 768);
		for (int i = 0; i < 64; i++)
			pat[i] = 0x01020304u * (u32)(i + 1) + (u32)i;
		r = rt_user_call(u_sse_fx, (u64)buf, false);
		const u32 *dump = (const u32 *)(buf + 512), *img = (const u32 *)(buf + 160);
		int bad = -1;
		for (int i = 0; i < 64 && bad < 0; i++) {
			u32 want = (i / 4 == 1) ? pat[i] + pat[i - 4] : pat[i];
			if (dump[i] != want || img[i] != want)
				bad = i;
		}
		u32 mxcsr = *(const u32 *)(buf + 24);
		if (bad >= 0) rt_fail("sse_fxsave", "xmm%d dword %d: after fxrstor %#x, fxsave image %#x", bad / 4, bad % 4, dump[bad], img[bad]);
		else if ((mxcsr & 0xffff) != 0x1f80) rt_fail("sse_fxsave", "MXCSR in the fxsave image %#x, want 0x1f80", mxcsr);
		else rt_ok("sse_fxsave");
	}
	if (rt_test_enabled("rdtsc_monotonic")) {
		r = rt_user_call(u_rdtsc, 1000, false);
		if (!r) rt_ok("rdtsc_monotonic"); else rt_fail("rdtsc_monotonic", "TSC did not increase at read %lu", r);
	}
	if (rt_test_enabled("cpuid_basic")) {
		u32 v[4];
		char vendor[13];
		cpuid(0, 0, v);
		memcpy(vendor, &v[1], 4);
		memcpy(vendor + 4, &v[3], 4);
		memcpy(vendor + 8, &v[2], 4);
		vendor[12] = 0;
		r = rt_user_call(u_cpuid, 0, false);
		rt_printf("usermode: cpu vendor \"%s\" max leaf %u\n", vendor, v[0]);
		if (!r) rt_ok("cpuid_basic");
		else rt_fail("cpuid_basic", "check %lu (1 max leaf, 2 FPU/TSC/MSR/PAE/APIC/SSE2, 3 LM)", r);
	}
	if (rt_test_enabled("user_many")) {
		u64 bad = 0;
		for (u64 i = 0; i < 200; i++)
			if (rt_user_call(u_ret42, i, i & 1) != 42 + i)
				bad++;
		if (!bad) rt_ok("user_many"); else rt_fail("user_many", "%lu of 200 entries returned wrong values", bad);
	}
}
