/* smc: self-modifying code. Writes new instructions into a page and runs
 * them, many times: plain rewrites, a hot loop whose immediate changes, a
 * store into the immediate of the next instruction in the same block, a
 * write through a second (alias) mapping of the code page, an instruction
 * straddling two pages with only the second page rewritten, rep movsb
 * copies, one rewrite at CPL0, and (when a virtio-blk disk is present)
 * code that arrives by DMA. Everything else runs in user mode.
 * Options: rounds=N (default 1000). */
#include "rt.h"

const char rt_kernel_name[] = "smc";

u32 smc_self(u32 v);
#define ALIAS_VA 0x9000000000ULL

static u8 *page, *two;
static u64 rounds;
typedef u32 (*fn_t)(u32);

static void emit_mov_ret(u8 *p, u32 imm)
{
	p[0] = 0xb8;                          /* mov $imm, %eax */
	memcpy(p + 1, &imm, 4);
	p[5] = 0xc3;                          /* ret */
}

static u64 u_basic(u64 unused)
{
	for (u64 i = 0; i < rounds; i++) {
		u32 v = (u32)(i * 0x01010101u + 1);
		emit_mov_ret(page, v);
		if (((fn_t)page)(0) != v)
			return i + 1;
	}
	return 0;
}

static u64 u_loop(u64 unused)
{
	/* mov $100,%ecx; xor %eax,%eax; 1: add $K,%eax; dec %ecx; jnz 1b; ret */
	static const u8 code[] = { 0xb9, 100, 0, 0, 0, 0x31, 0xc0, 0x05, 0, 0, 0, 0, 0xff, 0xc9, 0x75, 0xf7, 0xc3 };
	memcpy(page + 256, code, sizeof(code));
	for (u64 i = 0; i < rounds / 10 + 1; i++) {
		u32 k = (u32)i + 3;
		memcpy(page + 256 + 8, &k, 4);
		if (((fn_t)(page + 256))(0) != 100 * k)
			return i + 1;
	}
	return 0;
}

static u64 u_same_block(u64 unused)
{
	for (u64 i = 0; i < rounds; i++)
		if (smc_self((u32)i * 7 + 5) != (u32)i * 7 + 5)
			return i + 1;
	return 0;
}

static u64 u_alias(u64 unused)
{
	u8 *w = (u8 *)ALIAS_VA;               /* same physical page as `page` */
	for (u64 i = 0; i < rounds; i++) {
		u32 v = (u32)(i ^ 0xa5a5a5a5u);
		emit_mov_ret(w + 512, v);
		if (((fn_t)(page + 512))(0) != v)
			return i + 1;
	}
	return 0;
}

static u64 u_cross_page(u64 unused)
{
	u8 *op = two + RT_PAGE - 3;           /* b8 at -3; imm at -2..+1; ret at +2 */
	emit_mov_ret(op, 0x11223344);
	for (u64 i = 0; i < rounds; i++) {
		u16 hi = (u16)(i * 3 + 1);
		memcpy(two + RT_PAGE, &hi, 2);    /* bytes 2,3 of the immediate only */
		u32 want = ((u32)hi << 16) | 0x3344;
		if (((fn_t)op)(0) != want)
			return i + 1;
	}
	return 0;
}

static u64 u_rep_movs(u64 unused)
{
	u8 src[6];
	for (u64 i = 0; i < rounds / 10 + 1; i++) {
		u32 v = (u32)i + 0x1000;
		emit_mov_ret(src, v);
		void *d = page + 1024;
		const void *s = src;
		u64 n = sizeof(src);
		__asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) :: "memory");
		if (((fn_t)(page + 1024))(0) != v)
			return i + 1;
	}
	return 0;
}

static u64 u_dma(u64 unused)
{
	struct vblk *b;
	if (vblk_init(0, &b))
		return 1000;
	u8 *sec = rt_alloc(512, 512, true);
	for (u32 k = 0; k < 4; k++) {
		u32 v = 0xc0de0000u + k;
		memset(sec, 0xcc, 512);
		emit_mov_ret(sec, v);
		if (vblk_rw(b, VIRTIO_BLK_T_OUT, 8 + k, sec, 512))
			return 2000;
		/* the code page has run other code before the DMA lands */
		emit_mov_ret(page + 2048, 1);
		if (((fn_t)(page + 2048))(0) != 1)
			return 3000;
		if (vblk_rw(b, VIRTIO_BLK_T_IN, 8 + k, page + 2048, 512))
			return 4000;
		if (((fn_t)(page + 2048))(0) != v)
			return k + 1;
	}
	return 0;
}

static void check(const char *name, u64 (*fn)(u64))
{
	if (!rt_test_enabled(name))
		return;
	u64 r = rt_user_call(fn, 0, false);
	if (r == 0) rt_ok(name);
	else rt_fail(name, "stale code ran at iteration %lu", r - 1);
}

void test_main(void)
{
	rounds = rt_opt_u64("rounds", 1000);
	page = rt_alloc(RT_PAGE, RT_PAGE, true);
	two = rt_alloc(2 * RT_PAGE, RT_PAGE, true);
	rt_map_4k((u64)page, (u64)page, PTE_P | PTE_W | PTE_U);   /* split the 2M page */
	rt_map_4k(ALIAS_VA, (u64)page, PTE_P | PTE_W | PTE_U);
	check("smc_basic", u_basic);
	check("smc_loop_patch", u_loop);
	check("smc_same_block", u_same_block);
	check("smc_alias_mapping", u_alias);
	check("smc_cross_page", u_cross_page);
	check("smc_rep_movs", u_rep_movs);
	if (rt_test_enabled("smc_kernel")) {
		u64 bad = 0;
		for (u32 i = 0; i < 10; i++)
			if (smc_self(i + 100) != i + 100)
				bad = i + 1;
		if (!bad) rt_ok("smc_kernel"); else rt_fail("smc_kernel", "stale code at CPL0, iteration %lu", bad - 1);
	}
	if (rt_test_enabled("smc_dma")) {
		struct rt_pci p;
		if (rt_pci_find(0x1af4, 0x1042, 0, &p)) {
			rt_skip("smc_dma", "no virtio-blk disk");
		} else {
			u64 r = rt_user_call(u_dma, 0, false);
			if (r == 0) rt_ok("smc_dma");
			else if (r >= 1000) rt_fail("smc_dma", "disk I/O failed (step %lu)", r / 1000);
			else rt_fail("smc_dma", "code read by DMA not executed (round %lu ran stale code)", r - 1);
		}
	}
}
