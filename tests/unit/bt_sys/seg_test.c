/* Unit tests of BT segment register loads (every protected-mode check and
 * its error code), far JMP, far RET and IRET to an outer privilege level,
 * IRETQ, and LAR/LSL/VERR/VERW. */
#include <string.h>
#include "tests/unit/bt_sys/bt_sys_test.h"

void tvm_gdt(struct tvm *t, struct bt_cpu *c)
{
	static const uint64_t gdt[] = {
		0,
		0x00cf9b000000ffffULL,   /* 0x08 code32 DPL0 */
		0x00cf93000000ffffULL,   /* 0x10 data32 DPL0 */
		0x00cffb000000ffffULL,   /* 0x18 code32 DPL3 */
		0x00cff3000000ffffULL,   /* 0x20 data32 DPL3 */
		0x00af9b000000ffffULL,   /* 0x28 code64 DPL0 */
		0x00affb000000ffffULL,   /* 0x30 code64 DPL3 */
		0x0040920123450fffULL,   /* 0x38 data, base 0x12345, limit 0xfff, not accessed */
		0x00cf13000000ffffULL,   /* 0x40 data, not present */
		0x00cf99000000ffffULL,   /* 0x48 code, execute-only */
		0x0000890030000067ULL,   /* 0x50 TSS32 at 0x3000 */
		0x0000890030000067ULL,   /* 0x58 TSS64 at 0x3000 (16 bytes) */
		0,
		0x00cff2000000ffffULL,   /* 0x68 data DPL3 not accessed */
	};
	memcpy(t->ram + 0x1000, gdt, sizeof(gdt));
	c->gdt.base = 0x1000;
	c->gdt.limit = sizeof(gdt) - 1;
}

static uint64_t gdt_ent(struct tvm *t, int sel)
{
	uint64_t v;
	memcpy(&v, t->ram + 0x1000 + (sel & ~7), 8);
	return v;
}

/* -1 on success, else the vector raised (error code in c->exc_error). */
static int load(struct bt_cpu *c, int seg, uint16_t sel)
{
	if (setjmp(c->jmp))
		return c->exc_vector;
	bt_load_seg(c, seg, sel);
	return -1;
}

static void test_load_data(void)
{
	struct tvm t;
	struct bt_cpu *c = tvm_new(&t, 0);
	tvm_pmode32(c);
	tvm_gdt(&t, c);
	CHECK_EQ(load(c, SEG_DS, 0x38), -1);
	CHECK_EQ(c->seg[SEG_DS].base, 0x12345);
	CHECK_EQ(c->seg[SEG_DS].limit, 0xfff);
	CHECK_EQ(c->seg[SEG_DS].attr & 0xff, 0x93);
	CHECK(gdt_ent(&t, 0x38) & (1ULL << 40));   /* accessed bit set */
	uint64_t v;
	t.ram[0x12345 + 0xffc] = 0x5a;
	CHECK_EQ(tvm_read(c, SEG_DS, 0xffc, 1, &v), -1);
	CHECK_EQ(v, 0x5a);
	CHECK_EQ(tvm_read(c, SEG_DS, 0xffe, 4, &v), BT_GP);
	/* a null selector loads an unusable segment; using it is #GP(0) */
	CHECK_EQ(load(c, SEG_ES, 0), -1);
	CHECK(c->seg[SEG_ES].attr & SEG_ATTR_UNUSABLE);
	CHECK_EQ(tvm_read(c, SEG_ES, 0, 1, &v), BT_GP);
	CHECK_EQ(c->exc_error, 0);
	/* not present: #NP(sel) */
	CHECK_EQ(load(c, SEG_DS, 0x40), BT_NP);
	CHECK_EQ(c->exc_error, 0x40);
	/* execute-only code: #GP(sel); readable code is fine */
	CHECK_EQ(load(c, SEG_FS, 0x48), BT_GP);
	CHECK_EQ(c->exc_error, 0x48);
	CHECK_EQ(load(c, SEG_FS, 0x08), -1);
	/* beyond the GDT limit, and a TI=1 selector without an LDT */
	CHECK_EQ(load(c, SEG_GS, 0x200), BT_GP);
	CHECK_EQ(c->exc_error, 0x200);
	c->seg[SEG_LDTR].attr = SEG_ATTR_UNUSABLE;
	CHECK_EQ(load(c, SEG_GS, 0x0c), BT_GP);
	CHECK_EQ(c->exc_error, 0x0c);
	/* a system descriptor (TSS) is not a data segment */
	CHECK_EQ(load(c, SEG_DS, 0x50), BT_GP);
	/* DPL 0 data from CPL 3: #GP(sel); RPL 3 with DPL 0 too */
	CHECK_EQ(load(c, SEG_DS, 0x13), BT_GP);
	CHECK_EQ(c->exc_error, 0x10);
	tvm_free(&t);
}

static void test_load_ss(void)
{
	struct tvm t;
	struct bt_cpu *c = tvm_new(&t, 0);
	tvm_pmode32(c);
	tvm_gdt(&t, c);
	CHECK_EQ(load(c, SEG_SS, 0x10), -1);
	CHECK_EQ(c->shadow, 2);
	CHECK_EQ(load(c, SEG_SS, 0), BT_GP);          /* null SS outside 64-bit */
	CHECK_EQ(c->exc_error, 0);
	CHECK_EQ(load(c, SEG_SS, 0x20), BT_GP);       /* DPL 3 != CPL 0 */
	CHECK_EQ(c->exc_error, 0x20);
	CHECK_EQ(load(c, SEG_SS, 0x08), BT_GP);       /* code */
	CHECK_EQ(load(c, SEG_SS, 0x11), BT_GP);       /* RPL 1 != CPL 0 */
	CHECK_EQ(c->exc_error, 0x10);
	/* not present: #SS(sel) */
	uint64_t np = 0x00cf13000000ffffULL;
	memcpy(t.ram + 0x1000 + 0x40, &np, 8);
	CHECK_EQ(load(c, SEG_SS, 0x40), BT_SS);
	CHECK_EQ(c->exc_error, 0x40);
	/* 64-bit mode at CPL 0 accepts a null SS */
	tvm_long64(c, 0x10000);
	memset(t.ram + 0x10000, 0, 8);
	CHECK_EQ(load(c, SEG_SS, 0), -1);
	CHECK(c->seg[SEG_SS].attr & SEG_ATTR_UNUSABLE);
	tvm_free(&t);
}

static void test_real_mode_load(void)
{
	struct tvm t;
	struct bt_cpu *c = tvm_new(&t, 0);
	CHECK_EQ(load(c, SEG_ES, 0x1234), -1);
	CHECK_EQ(c->seg[SEG_ES].base, 0x12340);
	CHECK_EQ(c->seg[SEG_ES].sel, 0x1234);
	CHECK_EQ(c->mode, BT_MODE16);
	tvm_free(&t);
}

static void st64(struct tvm *t, uint64_t a, uint64_t v) { memcpy(t->ram + a, &v, 8); }

static int far_jmp(struct bt_cpu *c, uint16_t sel, uint64_t off)
{
	if (setjmp(c->jmp))
		return c->exc_vector;
	bt_far_jmp(c, sel, off);
	return -1;
}

static void test_far_jmp(void)
{
	struct tvm t;
	struct bt_cpu *c = tvm_new(&t, 0);
	/* real mode -> protected mode via CR0.PE and a far jump */
	tvm_gdt(&t, c);
	c->cr0 |= 1;
	CHECK_EQ(far_jmp(c, 0x08, 0x100000), -1);
	CHECK_EQ(c->mode, BT_MODE32);
	CHECK_EQ(c->next_rip, 0x100000);
	CHECK_EQ(c->seg[SEG_CS].sel, 0x08);
	/* to a data segment: #GP(sel); DPL 3 code from CPL 0: #GP(sel) */
	CHECK_EQ(far_jmp(c, 0x10, 0), BT_GP);
	CHECK_EQ(c->exc_error, 0x10);
	CHECK_EQ(far_jmp(c, 0x18, 0), BT_GP);
	/* long mode: a 64-bit code segment enters 64-bit mode */
	st64(&t, 0x10000, 0x11000 | 3);
	st64(&t, 0x11000, 0x12000 | 3);
	st64(&t, 0x12000, 0x83);
	tvm_long64(c, 0x10000);
	c->seg[SEG_CS].attr &= ~(uint32_t)SEG_ATTR_L;
	c->seg[SEG_CS].attr |= SEG_ATTR_DB;
	bt_mode_changed(c);
	CHECK_EQ(c->mode, BT_MODE32);
	CHECK_EQ(far_jmp(c, 0x28, 0x200000), -1);
	CHECK_EQ(c->mode, BT_MODE64);
	tvm_free(&t);
}

static int iret(struct bt_cpu *c, int opsize)
{
	if (setjmp(c->jmp))
		return c->exc_vector;
	bt_iret(c, opsize);
	return -1;
}

static void st32(struct tvm *t, uint64_t a, uint32_t v) { memcpy(t->ram + a, &v, 4); }

static void test_iret_outer(void)
{
	struct tvm t;
	struct bt_cpu *c = tvm_new(&t, 0);
	tvm_pmode32(c);
	tvm_gdt(&t, c);
	CHECK_EQ(load(c, SEG_DS, 0x10), -1);
	CHECK_EQ(load(c, SEG_ES, 0x23), -1);
	c->r[CPU_RSP] = 0x8000;
	st32(&t, 0x8000, 0x401000);        /* EIP */
	st32(&t, 0x8004, 0x1b);            /* CS */
	st32(&t, 0x8008, 0x3202);          /* EFLAGS: IF, IOPL 3 */
	st32(&t, 0x800c, 0x7000);          /* ESP */
	st32(&t, 0x8010, 0x23);            /* SS */
	CHECK_EQ(iret(c, 4), -1);
	CHECK_EQ(c->cpl, 3);
	CHECK_EQ(c->next_rip, 0x401000);
	CHECK_EQ(c->r[CPU_RSP], 0x7000);
	CHECK_EQ(c->seg[SEG_SS].sel, 0x23);
	CHECK_EQ(bt_get_rflags(c) & 0x3200, 0x3200);
	CHECK(c->seg[SEG_DS].attr & SEG_ATTR_UNUSABLE);    /* DPL 0 data nulled */
	CHECK(!(c->seg[SEG_ES].attr & SEG_ATTR_UNUSABLE)); /* DPL 3 data kept */
	CHECK(c->sys->user);
	/* from CPL 3, IRET cannot raise IOPL or return to CPL 0 */
	c->r[CPU_RSP] = 0x8000;
	st32(&t, 0x8004, 0x08);
	CHECK_EQ(iret(c, 4), BT_GP);
	CHECK_EQ(c->exc_error, 0x08);
	tvm_free(&t);
}

static void test_iretq(void)
{
	struct tvm t;
	struct bt_cpu *c = tvm_new(&t, 64 << 20);
	/* identity-map the first 2 MiB, user accessible */
	st64(&t, 0x10000, 0x11000 | 7);
	st64(&t, 0x11000, 0x12000 | 7);
	st64(&t, 0x12000, 0x0 | 0x87);
	tvm_long64(c, 0x10000);
	tvm_gdt(&t, c);
	c->seg[SEG_CS].sel = 0x28;
	c->r[CPU_RSP] = 0x8000;
	st64(&t, 0x8000, 0x400123);        /* RIP */
	st64(&t, 0x8008, 0x33);            /* CS: 64-bit DPL 3 */
	st64(&t, 0x8010, 0x202);           /* RFLAGS */
	st64(&t, 0x8018, 0x7ff0);          /* RSP */
	st64(&t, 0x8020, 0x23);            /* SS */
	CHECK_EQ(iret(c, 8), -1);
	CHECK_EQ(c->mode, BT_MODE64);
	CHECK_EQ(c->cpl, 3);
	CHECK_EQ(c->next_rip, 0x400123);
	CHECK_EQ(c->r[CPU_RSP], 0x7ff0);
	CHECK_EQ(c->seg[SEG_SS].sel, 0x23);
	/* same-privilege IRETQ in 64-bit mode still pops SS:RSP */
	c->seg[SEG_CS].sel = 0x28;
	c->seg[SEG_CS].attr = SEG_ATTR_P | SEG_ATTR_S | SEG_ATTR_L | 0xb;
	bt_mode_changed(c);
	c->r[CPU_RSP] = 0x8000;
	st64(&t, 0x8008, 0x28);
	st64(&t, 0x8020, 0);
	CHECK_EQ(iret(c, 8), -1);
	CHECK_EQ(c->cpl, 0);
	CHECK_EQ(c->r[CPU_RSP], 0x7ff0);
	CHECK(c->seg[SEG_SS].attr & SEG_ATTR_UNUSABLE);
	tvm_free(&t);
}

static void test_probe(void)
{
	struct tvm t;
	struct bt_cpu *c = tvm_new(&t, 0);
	tvm_pmode32(c);
	tvm_gdt(&t, c);
	uint64_t v = 0;
	CHECK(bt_seg_probe(c, 0x38, 1, &v));
	CHECK_EQ(v, 0xfff);
	CHECK(bt_seg_probe(c, 0x08, 0, &v));
	CHECK_EQ(v, 0x00c09b00);   /* bits 19:16 are undefined: returned 0 */
	CHECK(!bt_seg_probe(c, 0x48, 2, &v));     /* exec-only: not readable */
	CHECK(bt_seg_probe(c, 0x10, 3, &v));      /* writable data */
	CHECK(!bt_seg_probe(c, 0x08, 3, &v));
	CHECK(!bt_seg_probe(c, 0, 0, &v));
	c->cpl = 3;
	CHECK(!bt_seg_probe(c, 0x10, 2, &v));     /* DPL 0 from CPL 3 */
	CHECK(bt_seg_probe(c, 0x23, 2, &v));
	tvm_free(&t);
}

int seg_tests(void)
{
	TEST(test_load_data);
	TEST(test_load_ss);
	TEST(test_real_mode_load);
	TEST(test_far_jmp);
	TEST(test_iret_outer);
	TEST(test_iretq);
	TEST(test_probe);
	return test_failures;
}
