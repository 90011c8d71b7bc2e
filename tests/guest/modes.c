/* modes: processor mode switches at CPL0: 64-bit -> compatibility mode
 * and back; and the full trip long -> compatibility -> protected mode with
 * paging off -> 16-bit protected -> real mode -> protected -> long mode,
 * with legacy 32-bit paging (4 KiB and 4 MiB pages) and PAE paging (4 KiB
 * and 2 MiB pages) switched on and off again while long mode is off,
 * with work done and checked at each stage, repeated; then checks that
 * paging, the IDT, SYSCALL and user mode still work. Options: rounds=N
 * (default 10). */
#include "rt.h"

const char rt_kernel_name[] = "modes";

#define MODES_ADDR 0x6000ULL

u32 modes_compat(u32 a);
u32 modes_roundtrip(u32 a);
extern char modes_blob[], modes_blob_end[], modes_d_arg[], modes_d_res[], modes_d_width[], modes_d_gdtr[];
extern volatile u32 modes_pm32_mark, modes_pm32_cr0, modes_pse_read, modes_pae_read;

/* Tables for the legacy paging stages (below 16 MiB, identity mapped). */
u32 modes_pd32[1024] __attribute__((aligned(4096)));
static u32 pt32[1024] __attribute__((aligned(4096)));
u64 modes_pdpt[4] __attribute__((aligned(32)));
static u64 pd_pae0[512] __attribute__((aligned(4096)));
static u64 pd_pae1[512] __attribute__((aligned(4096)));
static u64 pt_pae[512] __attribute__((aligned(4096)));
static volatile u32 page1[1024] __attribute__((aligned(4096)));
static volatile u32 page2[1024] __attribute__((aligned(4096)));

static void build_legacy_tables(void)
{
	for (u32 i = 0; i < 4; i++)
		modes_pd32[i] = (i << 22) | 0x83;           /* 0..16 MiB, 4 MiB pages */
	modes_pd32[0x80000000u >> 22] = 0 | 0x83;       /* 2 GiB -> 0 */
	modes_pd32[0x40000000u >> 22] = (u32)(u64)pt32 | 0x3;
	pt32[0] = (u32)(u64)page1 | 0x3;
	for (u64 i = 0; i < 8; i++)
		pd_pae0[i] = (i << 21) | 0x83;              /* 0..16 MiB, 2 MiB pages */
	pd_pae1[0] = (u64)pt_pae | 0x3;                 /* 1 GiB: 4 KiB page */
	pd_pae1[1] = 0 | 0x83;                          /* 1 GiB + 2 MiB -> 0 */
	pt_pae[0] = (u64)page2 | 0x3;
	modes_pdpt[0] = (u64)pd_pae0 | 1;               /* PDPTEs: only P */
	modes_pdpt[1] = (u64)pd_pae1 | 1;
}
extern u64 gdt[];
extern char gdt_ptr[];

static u64 u_add(u64 a) { return rt_syscall(SYS_ADD3, a, 1, 2); }

static volatile u32 *blob_word(char *sym) { return (volatile u32 *)(MODES_ADDR + (sym - modes_blob)); }

void test_main(void)
{
	u64 rounds = rt_opt_u64("rounds", 10);
	if (rt_test_enabled("mode_compat32")) {
		u32 bad = 0, r = 0;
		for (u32 i = 0; i < 100 && !bad; i++) {
			u32 a = 0x10000 + i * 0x101;
			r = modes_compat(a);
			if (r != (((a - 1) & 0xffff) | (4u << 16)))
				bad = a;
		}
		if (!bad) rt_ok("mode_compat32");
		else rt_fail("mode_compat32", "arg %#x: got %#x, want %#x (low: a-1 via 0x48 DEC, high: push width 4)",
			     bad, r, ((bad - 1) & 0xffff) | (4u << 16));
	}
	if (rt_test_enabled("mode_real_roundtrip")) {
		memcpy((void *)MODES_ADDR, modes_blob, modes_blob_end - modes_blob);
		/* the GDT pseudo-descriptor for the way back up (32-bit base) */
		*(volatile u16 *)blob_word(modes_d_gdtr) = *(u16 *)gdt_ptr;
		*(volatile u32 *)((u64)blob_word(modes_d_gdtr) + 2) = (u32)*(u64 *)(gdt_ptr + 2);
		u64 gs = rdmsr(MSR_GS_BASE);
		int bad = 0, bad32 = 0, badpae = 0;
		build_legacy_tables();
		for (u64 i = 0; i < rounds && !bad; i++) {
			u32 arg = 0xabcd0000u + (u32)i * 0x1111;
			*blob_word(modes_d_arg) = arg;
			*blob_word(modes_d_width) = 0;
			*(volatile u16 *)0x7010 = 0;
			modes_pm32_mark = 0;
			modes_pm32_cr0 = 0xffffffff;
			page1[0] = page2[0] = 0;
			modes_pse_read = modes_pae_read = 0;
			*(volatile u32 *)0x7020 = 0xfeedf00d;   /* read back through the PAE 2 MiB alias */
			u32 r = modes_roundtrip(arg);
			wrmsr(MSR_GS_BASE, gs);     /* segment loads on the way reset it */
			u32 want = (arg & 0xffff0000u) | ((arg + 0x1234) & 0xffff);
			if (modes_pm32_mark != 0x32323232 || (modes_pm32_cr0 & 0x80000000u)) {
				rt_fail("mode_real_roundtrip", "round %lu: protected-mode stage mark %#x CR0 %#x (want paging off)",
					i, modes_pm32_mark, modes_pm32_cr0);
				bad = 1;
			} else if (*(volatile u16 *)0x7010 != 0xbeef) {
				rt_fail("mode_real_roundtrip", "round %lu: real-mode store to 0700:0010 missing (%#x)", i, *(volatile u16 *)0x7010);
				bad = 1;
			} else if (*blob_word(modes_d_width) != 2) {
				rt_fail("mode_real_roundtrip", "round %lu: real-mode push width %u, want 2", i, *blob_word(modes_d_width));
				bad = 1;
			} else if (r != want) {
				rt_fail("mode_real_roundtrip", "round %lu: real-mode result %#x, want %#x", i, r, want);
				bad = 1;
			}
			if (!bad32 && (page1[0] != 0x11223344 || modes_pse_read != 0x32323232)) {
				rt_fail("mode_paging32", "round %lu: write through a 4 KiB page gave %#x (want 0x11223344), read through a 4 MiB page %#x (want 0x32323232)",
					i, page1[0], modes_pse_read);
				bad32 = 1;
			}
			if (!badpae && (page2[0] != 0x55667788 || modes_pae_read != 0xfeedf00d)) {
				rt_fail("mode_pae32", "round %lu: write through a 4 KiB page gave %#x (want 0x55667788), read through a 2 MiB page %#x (want 0xfeedf00d)",
					i, page2[0], modes_pae_read);
				badpae = 1;
			}
		}
		if (!bad32)
			rt_ok("mode_paging32");
		if (!badpae)
			rt_ok("mode_pae32");
		if (!bad)
			rt_ok("mode_real_roundtrip");
		rt_printf("modes: %lu round trips, EFER=%#lx CR0=%#lx CR4=%#lx\n", rounds, rdmsr(MSR_EFER), read_cr0(), read_cr4());
	}
	if (rt_test_enabled("mode_state_after")) {
		u64 efer = rdmsr(MSR_EFER);
		u64 r = rt_user_call(u_add, 39, false);
		if (!(efer & 0x400)) rt_fail("mode_state_after", "EFER.LMA clear after returning to long mode (%#lx)", efer);
		else if (r != 42) rt_fail("mode_state_after", "user-mode syscall returned %lu, want 42", r);
		else if (rt_cpu()->self != (u64)rt_cpu()) rt_fail("mode_state_after", "per-CPU data lost");
		else rt_ok("mode_state_after");
	}
}
