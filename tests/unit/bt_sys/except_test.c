/* Unit tests of BT event delivery: the real-mode IVT, protected-mode
 * gates with and without a privilege change (stack from the TSS), 64-bit
 * gates with IST, software-interrupt DPL checks, not-present gates, and
 * the double-fault / triple-fault rules. */
#include <string.h>
#include "tests/unit/bt_sys/bt_sys_test.h"

static void st16(struct tvm *t, uint64_t a, uint16_t v) { memcpy(t->ram + a, &v, 2); }
static void st32(struct tvm *t, uint64_t a, uint32_t v) { memcpy(t->ram + a, &v, 4); }
static void st64(struct tvm *t, uint64_t a, uint64_t v) { memcpy(t->ram + a, &v, 8); }
static uint16_t ld16(struct tvm *t, uint64_t a) { uint16_t v; memcpy(&v, t->ram + a, 2); return v; }
static uint32_t ld32(struct tvm *t, uint64_t a) { uint32_t v; memcpy(&v, t->ram + a, 4); return v; }
static uint64_t ld64(struct tvm *t, uint64_t a) { uint64_t v; memcpy(&v, t->ram + a, 8); return v; }

static void gate32(struct tvm *t, uint64_t idt, int vec, uint16_t sel, uint32_t off, int type, int dpl, int p)
{
	uint64_t g = (off & 0xffff) | ((uint64_t)sel << 16) |
		     ((uint64_t)(type | (dpl << 5) | (p << 7)) << 40) | ((uint64_t)(off >> 16) << 48);
	st64(t, idt + (uint64_t)vec * 8, g);
}

static void gate64(struct tvm *t, uint64_t idt, int vec, uint16_t sel, uint64_t off, int ist, int dpl)
{
	uint64_t g = (off & 0xffff) | ((uint64_t)sel << 16) | ((uint64_t)ist << 32) |
		     ((uint64_t)(0xe | (dpl << 5) | 0x80) << 40) | (((off >> 16) & 0xffff) << 48);
	st64(t, idt + (uint64_t)vec * 16, g);
	st64(t, idt + (uint64_t)vec * 16 + 8, off >> 32);
}

/* Runs the loop's delivery path for the exception in c->exc_*, including
 * nested faults. */
static void deliver(struct bt_cpu *c)
{
	setjmp(c->jmp);
	if (c->sys->triple)
		return;
	bt_deliver_exception(c);
}

static void raise_exc(struct bt_cpu *c, int vec, int has_err, uint32_t err)
{
	c->exc_vector = (uint8_t)vec;
	c->exc_has_error = (uint8_t)has_err;
	c->exc_error = err;
	c->sys->delivering = 0;
	c->sys->triple = 0;
	deliver(c);
}

static int soft(struct bt_cpu *c, int vec)
{
	if (setjmp(c->jmp))
		return c->exc_vector;
	bt_interrupt(c, vec, BT_EV_SOFT, 0, 0, c->next_rip);
	return -1;
}

static void test_real_mode(void)
{
	struct tvm t;
	struct bt_cpu *c = tvm_new(&t, 0);
	st16(&t, 0x21 * 4, 0x5678);
	st16(&t, 0x21 * 4 + 2, 0x1234);
	bt_set_seg_real(c, SEG_CS, 0x50);
	bt_set_seg_real(c, SEG_SS, 0);
	c->idt.base = 0;
	c->idt.limit = 0x3ff;
	c->r[CPU_RSP] = 0x1000;
	c->rip = 0x100;
	c->next_rip = 0x102;
	bt_set_rflags(c, 0x202);
	CHECK_EQ(soft(c, 0x21), -1);
	CHECK_EQ(c->seg[SEG_CS].sel, 0x1234);
	CHECK_EQ(c->seg[SEG_CS].base, 0x12340);
	CHECK_EQ(c->rip, 0x5678);
	CHECK_EQ(c->r[CPU_RSP], 0xffa);
	CHECK_EQ(ld16(&t, 0xffa), 0x102);
	CHECK_EQ(ld16(&t, 0xffc), 0x50);
	CHECK_EQ(ld16(&t, 0xffe), 0x202);
	CHECK(!(c->rflags & BT_IF));
	tvm_free(&t);
}

static void setup_pm(struct tvm *t, struct bt_cpu *c)
{
	tvm_pmode32(c);
	tvm_gdt(t, c);
	c->idt.base = 0x2000;
	c->idt.limit = 0x7ff;
	bt_desc_to_seg(&c->seg[SEG_TR], 0x50, 0x30000067, 0x00008b00);
	st32(t, 0x3000 + 4, 0xa000);   /* esp0 */
	st32(t, 0x3000 + 8, 0x10);     /* ss0 */
}

static void test_pm_same_cpl(void)
{
	struct tvm t;
	struct bt_cpu *c = tvm_new(&t, 0);
	setup_pm(&t, c);
	gate32(&t, 0x2000, 13, 0x08, 0x5000, 0xe, 0, 1);
	c->r[CPU_RSP] = 0x9000;
	c->rip = 0x1234;
	bt_set_rflags(c, 0x202);
	raise_exc(c, BT_GP, 1, 0x18);
	CHECK_EQ(c->rip, 0x5000);
	CHECK_EQ(c->r[CPU_RSP], 0x8ff0);
	CHECK_EQ(ld32(&t, 0x8ff0), 0x18);
	CHECK_EQ(ld32(&t, 0x8ff4), 0x1234);
	CHECK_EQ(ld32(&t, 0x8ff8), 0x08);
	CHECK_EQ(ld32(&t, 0x8ffc), 0x202);
	CHECK(!(c->rflags & BT_IF));
	CHECK(!c->sys->delivering);
	tvm_free(&t);
}

static void test_pm_privilege_change(void)
{
	struct tvm t;
	struct bt_cpu *c = tvm_new(&t, 0);
	setup_pm(&t, c);
	gate32(&t, 0x2000, 0x80, 0x08, 0x6000, 0xf, 3, 1);   /* trap gate, DPL 3 */
	gate32(&t, 0x2000, 0x81, 0x08, 0x6000, 0xe, 0, 1);   /* DPL 0 */
	bt_desc_to_seg(&c->seg[SEG_CS], 0x1b, 0x0000ffff, 0x00cffb00);
	bt_desc_to_seg(&c->seg[SEG_SS], 0x23, 0x0000ffff, 0x00cff300);
	bt_mode_changed(c);
	CHECK_EQ(c->cpl, 3);
	c->r[CPU_RSP] = 0x7000;
	c->rip = 0x400000;
	c->next_rip = 0x400002;
	bt_set_rflags(c, 0x202);
	/* INT 0x81 through a DPL 0 gate: #GP(vector * 8 + 2) */
	CHECK_EQ(soft(c, 0x81), BT_GP);
	CHECK_EQ(c->exc_error, 0x81 * 8 + 2);
	CHECK_EQ(soft(c, 0x80), -1);
	CHECK_EQ(c->cpl, 0);
	CHECK_EQ(c->seg[SEG_SS].sel, 0x10);
	CHECK_EQ(c->r[CPU_RSP], 0xa000 - 20);
	CHECK_EQ(ld32(&t, 0xa000 - 4), 0x23);
	CHECK_EQ(ld32(&t, 0xa000 - 8), 0x7000);
	CHECK_EQ(ld32(&t, 0xa000 - 12), 0x202);
	CHECK_EQ(ld32(&t, 0xa000 - 16), 0x1b);
	CHECK_EQ(ld32(&t, 0xa000 - 20), 0x400002);
	CHECK(c->rflags & BT_IF);       /* trap gate keeps IF */
	CHECK_EQ(c->rip, 0x6000);
	tvm_free(&t);
}

static void test_long_mode_ist(void)
{
	struct tvm t;
	struct bt_cpu *c = tvm_new(&t, 64 << 20);
	st64(&t, 0x10000, 0x11000 | 7);
	st64(&t, 0x11000, 0x12000 | 7);
	st64(&t, 0x12000, 0x87);
	tvm_long64(c, 0x10000);
	tvm_gdt(&t, c);
	c->idt.base = 0x2000;
	c->idt.limit = 0xfff;
	bt_desc_to_seg(&c->seg[SEG_TR], 0x58, 0x30000067, 0x00008b00);
	st64(&t, 0x3000 + 4, 0xb000);          /* rsp0 */
	st64(&t, 0x3000 + 0x24, 0xc008);       /* ist1 (aligned down to 16) */
	gate64(&t, 0x2000, 14, 0x28, 0xffffffff80001000ULL, 1, 0);
	gate64(&t, 0x2000, 32, 0x28, 0xffffffff80002000ULL, 0, 0);
	bt_desc_to_seg(&c->seg[SEG_CS], 0x33, 0x0000ffff, 0x00affb00);
	bt_desc_to_seg(&c->seg[SEG_SS], 0x23, 0x0000ffff, 0x00cff300);
	bt_mode_changed(c);
	CHECK_EQ(c->mode, BT_MODE64);
	CHECK_EQ(c->cpl, 3);
	c->r[CPU_RSP] = 0x7001;
	c->rip = 0x400000;
	bt_set_rflags(c, 0x202);
	c->exc_cr2 = 0xdead000;
	raise_exc(c, BT_PF, 1, 6);
	CHECK_EQ(c->cr2, 0xdead000);
	CHECK_EQ(c->rip, 0xffffffff80001000ULL);
	CHECK_EQ(c->r[CPU_RSP], 0xc000 - 48);
	CHECK_EQ(ld64(&t, 0xc000 - 8), 0x23);
	CHECK_EQ(ld64(&t, 0xc000 - 16), 0x7001);
	CHECK_EQ(ld64(&t, 0xc000 - 24), 0x202);
	CHECK_EQ(ld64(&t, 0xc000 - 32), 0x33);
	CHECK_EQ(ld64(&t, 0xc000 - 40), 0x400000);
	CHECK_EQ(ld64(&t, 0xc000 - 48), 6);
	CHECK_EQ(c->cpl, 0);
	CHECK(c->seg[SEG_SS].attr & SEG_ATTR_UNUSABLE);
	CHECK_EQ(c->seg[SEG_SS].sel, 0);
	/* an external interrupt at CPL 0 without IST stays on the stack,
	 * aligned down to 16 bytes */
	c->r[CPU_RSP] = 0x9008;
	if (!setjmp(c->jmp))
		bt_interrupt(c, 32, BT_EV_EXT, 0, 0, 0x1111);
	else
		CHECK(0);
	CHECK_EQ(c->r[CPU_RSP], 0x9000 - 40);
	CHECK_EQ(ld64(&t, 0x9000 - 40), 0x1111);
	CHECK_EQ(ld64(&t, 0x9000 - 16), 0x9008);
	tvm_free(&t);
}

static void test_not_present_and_df(void)
{
	struct tvm t;
	struct bt_cpu *c = tvm_new(&t, 0);
	setup_pm(&t, c);
	c->r[CPU_RSP] = 0x9000;
	gate32(&t, 0x2000, 13, 0x08, 0x5000, 0xe, 0, 0);    /* not present */
	gate32(&t, 0x2000, 11, 0x08, 0x5100, 0xe, 0, 1);
	gate32(&t, 0x2000, 8, 0x08, 0x5800, 0xe, 0, 1);
	/* #GP through a not-present gate: #NP(13*8+2+EXT) is contributory on
	 * contributory: #DF with error 0 */
	raise_exc(c, BT_GP, 1, 0);
	CHECK_EQ(c->rip, 0x5800);
	CHECK_EQ(ld32(&t, c->r[CPU_RSP]), 0);
	/* a benign exception then #NP is delivered serially */
	gate32(&t, 0x2000, 6, 0x08, 0x5000, 0xe, 0, 0);
	c->r[CPU_RSP] = 0x9000;
	raise_exc(c, BT_UD, 0, 0);
	CHECK_EQ(c->rip, 0x5100);
	CHECK_EQ(ld32(&t, c->r[CPU_RSP]), 6 * 8 + 2 + 1);
	/* #PF while delivering #PF: #DF */
	gate32(&t, 0x2000, 14, 0x08, 0x5000, 0xe, 0, 1);
	c->r[CPU_RSP] = 0x9000;
	st32(&t, 0x10000, 0);                   /* empty page directory */
	c->cr3 = 0x10000;
	c->cr0 |= 0x80000000ULL;
	bt_tlb_flush_all(c);
	c->exc_cr2 = 0x400000;
	/* the IDT itself is unmapped now: #PF -> #DF -> triple fault */
	raise_exc(c, BT_PF, 1, 0);
	CHECK(c->sys->triple);
	tvm_free(&t);
}

static void test_triple_fault(void)
{
	struct tvm t;
	struct bt_cpu *c = tvm_new(&t, 0);
	setup_pm(&t, c);
	c->idt.limit = 0;
	raise_exc(c, BT_GP, 1, 0);
	CHECK(c->sys->triple);
	tvm_free(&t);
}

int except_tests(void)
{
	TEST(test_real_mode);
	TEST(test_pm_same_cpl);
	TEST(test_pm_privilege_change);
	TEST(test_long_mode_ist);
	TEST(test_not_present_and_df);
	TEST(test_triple_fault);
	return test_failures;
}
