/* Unit tests of the BT memory path: the page walker in every paging mode
 * (each #PF error-code bit, A/D updates, 4K/2M/4M/1G pages, reserved bits,
 * NX, WP), the soft TLB, segmentation checks, page-crossing accesses and
 * MMIO dispatch. */
#include <string.h>
#include "tests/unit/bt_sys/bt_sys_test.h"

#define P 1ULL
#define W 2ULL
#define U 4ULL
#define A 0x20ULL
#define D 0x40ULL
#define PS 0x80ULL
#define G 0x100ULL
#define NX (1ULL << 63)

static void wr32(struct tvm *t, uint64_t pa, uint32_t v) { memcpy(t->ram + pa, &v, 4); }
static void wr64(struct tvm *t, uint64_t pa, uint64_t v) { memcpy(t->ram + pa, &v, 8); }
static uint32_t rd32(struct tvm *t, uint64_t pa) { uint32_t v; memcpy(&v, t->ram + pa, 4); return v; }
static uint64_t rd64(struct tvm *t, uint64_t pa) { uint64_t v; memcpy(&v, t->ram + pa, 8); return v; }

/* walk result: 0 ok (pa in *pa), else error code | 0x100 */
static int walk(struct bt_cpu *c, uint64_t la, int kind, int user, uint64_t *pa)
{
	unsigned fl;
	uint32_t err;
	uint64_t p = 0;
	if (pa)
		*pa = 0;
	if (bt_walk(c, la, kind, user, &p, &fl, &err) < 0)
		return (int)err | 0x100;
	if (pa)
		*pa = p;
	return 0;
}

static void test_no_paging(void)
{
	struct tvm t;
	struct bt_cpu *c = tvm_new(&t, 0);
	uint64_t pa = 0;
	CHECK_EQ(walk(c, 0x12345678, BT_ACC_W, 0, &pa), 0);
	CHECK_EQ(pa, 0x12345678);
	tvm_free(&t);
}

/* 32-bit legacy paging: PD at 0x10000, PT at 0x11000 */
static void setup_legacy(struct tvm *t, struct bt_cpu *c)
{
	tvm_pmode32(c);
	c->cr3 = 0x10000;
	c->cr0 |= 0x80000000ULL;
	wr32(t, 0x10000 + 0 * 4, 0x11000 | P | W | U);
	wr32(t, 0x11000 + 5 * 4, 0x20000 | P | W | U);   /* 0x5000 -> 0x20000 user RW */
	wr32(t, 0x11000 + 6 * 4, 0x21000 | P);           /* 0x6000 -> supervisor RO */
	wr32(t, 0x11000 + 7 * 4, 0x22000 | P | U);       /* 0x7000 -> user RO */
	/* 4M page at 0x400000 -> 0x800000 */
	wr32(t, 0x10000 + 1 * 4, 0x800000 | P | W | PS);
}

static void test_legacy(void)
{
	struct tvm t;
	struct bt_cpu *c = tvm_new(&t, 0);
	setup_legacy(&t, c);
	uint64_t pa = 0;
	CHECK_EQ(walk(c, 0x5123, BT_ACC_R, 1, &pa), 0);
	CHECK_EQ(pa, 0x20123);
	CHECK(rd32(&t, 0x10000) & A);
	CHECK(rd32(&t, 0x11000 + 20) & A);
	CHECK(!(rd32(&t, 0x11000 + 20) & D));
	CHECK_EQ(walk(c, 0x5123, BT_ACC_W, 1, &pa), 0);
	CHECK(rd32(&t, 0x11000 + 20) & D);
	CHECK(!(rd32(&t, 0x10000) & D));   /* D only in the final entry */
	/* not present: error code has no P */
	CHECK_EQ(walk(c, 0x8000, BT_ACC_R, 0, NULL), 0x100 | 0);
	CHECK_EQ(walk(c, 0x8000, BT_ACC_W, 0, NULL), 0x100 | 2);
	CHECK_EQ(walk(c, 0x8000, BT_ACC_W, 1, NULL), 0x100 | 6);
	CHECK_EQ(walk(c, 0x800000, BT_ACC_R, 1, NULL), 0x100 | 4);  /* PDE not present */
	/* user access to supervisor page */
	CHECK_EQ(walk(c, 0x6000, BT_ACC_R, 1, NULL), 0x100 | 5);
	/* user write to read-only page */
	CHECK_EQ(walk(c, 0x7000, BT_ACC_W, 1, NULL), 0x100 | 7);
	/* supervisor write to RO page: allowed with WP=0, #PF with WP=1 */
	CHECK_EQ(walk(c, 0x6000, BT_ACC_W, 0, NULL), 0);
	c->cr0 |= 1ULL << 16;
	CHECK_EQ(walk(c, 0x7000, BT_ACC_W, 0, NULL), 0x100 | 3);
	/* no NX in legacy paging: fetch is fine, and no I bit on faults */
	CHECK_EQ(walk(c, 0x5000, BT_ACC_X, 1, NULL), 0);
	CHECK_EQ(walk(c, 0x8000, BT_ACC_X, 1, NULL), 0x100 | 4);
	/* 4M page needs CR4.PSE */
	c->cr4 |= 1ULL << 4;
	CHECK_EQ(walk(c, 0x4abcde, BT_ACC_W, 0, &pa), 0);
	CHECK_EQ(pa, 0x8abcde);
	CHECK(rd32(&t, 0x10004) & D);
	CHECK_EQ(walk(c, 0x4abcde, BT_ACC_R, 1, NULL), 0x100 | 5);
	/* reserved bit 21 in a 4M PDE */
	wr32(&t, 0x10000 + 2 * 4, 0xc00000 | P | PS | (1u << 21));
	CHECK_EQ(walk(c, 0x800000, BT_ACC_R, 0, NULL), 0x100 | 9);
	tvm_free(&t);
}

/* PAE: PDPT at 0x10000 (32-byte aligned), PD at 0x11000, PT at 0x12000 */
static void test_pae(void)
{
	struct tvm t;
	struct bt_cpu *c = tvm_new(&t, 0);
	tvm_pmode32(c);
	c->cr4 |= 1ULL << 5;
	c->cr3 = 0x10000;
	c->cr0 |= 0x80000000ULL;
	wr64(&t, 0x10000, 0x11000 | P);
	wr64(&t, 0x11000, 0x12000 | P | W | U);
	wr64(&t, 0x12000 + 1 * 8, 0x30000 | P | W | U | NX);
	wr64(&t, 0x12000 + 2 * 8, 0x31000 | P | W | U);
	wr64(&t, 0x11000 + 8, 0x200000 | P | W | PS);          /* 2M at 0x200000 */
	uint64_t pa = 0;
	/* NX bit is reserved while EFER.NXE = 0 */
	CHECK_EQ(walk(c, 0x1000, BT_ACC_R, 0, NULL), 0x100 | 9);
	CHECK_EQ(walk(c, 0x1000, BT_ACC_X, 0, NULL), 0x100 | 9);
	c->efer |= 1ULL << 11;
	CHECK_EQ(walk(c, 0x1000, BT_ACC_R, 1, &pa), 0);
	CHECK_EQ(pa, 0x30000);
	CHECK_EQ(walk(c, 0x1000, BT_ACC_X, 1, NULL), 0x100 | 0x15);
	CHECK_EQ(walk(c, 0x1000, BT_ACC_X, 0, NULL), 0x100 | 0x11);
	CHECK_EQ(walk(c, 0x2000, BT_ACC_X, 1, NULL), 0);
	CHECK_EQ(walk(c, 0x3000, BT_ACC_X, 1, NULL), 0x100 | 0x14);  /* I on not-present */
	CHECK_EQ(walk(c, 0x2fffff, BT_ACC_R, 0, &pa), 0);
	CHECK_EQ(pa, 0x2fffff);
	/* reserved bits in a PDPTE */
	wr64(&t, 0x10008, 0x13000 | P | 2);
	CHECK_EQ(walk(c, 0x40000000, BT_ACC_R, 0, NULL), 0x100 | 9);
	/* reserved low bits of a 2M page */
	wr64(&t, 0x11000 + 16, 0x400000 | P | PS | 0x2000);
	CHECK_EQ(walk(c, 0x400000, BT_ACC_W, 1, NULL), 0x100 | 0xf);
	tvm_free(&t);
}

/* 4-level: PML4 0x10000, PDPT 0x11000, PD 0x12000, PT 0x13000 */
static void setup_long(struct tvm *t, struct bt_cpu *c)
{
	tvm_long64(c, 0x10000);
	wr64(t, 0x10000, 0x11000 | P | W | U);
	wr64(t, 0x10000 + 511 * 8, 0x11000 | P | W);          /* top half, supervisor */
	wr64(t, 0x11000, 0x12000 | P | W | U);
	wr64(t, 0x11000 + 8, 0x40000000 | P | W | PS | G);    /* 1G page at 1G -> 1G */
	wr64(t, 0x12000, 0x13000 | P | W | U);
	wr64(t, 0x12000 + 8, 0x600000 | P | U | PS);          /* 2M RO user at 2M -> 6M */
	wr64(t, 0x13000 + 8, 0x50000 | P | W | U | G);
	wr64(t, 0x13000 + 16, 0x51000 | P | W);
}

static void test_long(void)
{
	struct tvm t;
	struct bt_cpu *c = tvm_new(&t, 64 << 20);
	setup_long(&t, c);
	uint64_t pa = 0;
	CHECK_EQ(walk(c, 0x1abc, BT_ACC_W, 1, &pa), 0);
	CHECK_EQ(pa, 0x50abc);
	CHECK((rd64(&t, 0x10000) & A) && (rd64(&t, 0x11000) & A) && (rd64(&t, 0x12000) & A));
	CHECK(rd64(&t, 0x13008) & D);
	CHECK(!(rd64(&t, 0x12000) & D));
	CHECK_EQ(walk(c, 0x2000, BT_ACC_R, 1, NULL), 0x100 | 5);
	CHECK_EQ(walk(c, 0x3000, BT_ACC_R, 0, NULL), 0x100 | 0);
	/* 2M page, read-only for user */
	CHECK_EQ(walk(c, 0x212345, BT_ACC_R, 1, &pa), 0);
	CHECK_EQ(pa, 0x612345);
	CHECK_EQ(walk(c, 0x212345, BT_ACC_W, 1, NULL), 0x100 | 7);
	CHECK(!(rd64(&t, 0x12008) & D));
	/* 1G page: supervisor only */
	CHECK_EQ(walk(c, 0x40001234, BT_ACC_W, 0, &pa), 0);
	CHECK_EQ(pa, 0x40001234);
	CHECK(rd64(&t, 0x11008) & D);
	CHECK_EQ(walk(c, 0x40001234, BT_ACC_R, 1, NULL), 0x100 | 5);
	/* upper half (supervisor PML4E): user #PF with P */
	CHECK_EQ(walk(c, 0xffffff8000001000ULL, BT_ACC_R, 1, NULL), 0x100 | 5);
	CHECK_EQ(walk(c, 0xffffff8000001000ULL, BT_ACC_R, 0, &pa), 0);
	CHECK_EQ(pa, 0x50000);
	/* reserved: PS in a PML4E, address bit 40+ in a PTE */
	wr64(&t, 0x10008, 0x11000 | P | PS);
	CHECK_EQ(walk(c, 0x8000000000ULL, BT_ACC_R, 0, NULL), 0x100 | 9);
	wr64(&t, 0x13000 + 24, (1ULL << 45) | 0x1000 | P);
	CHECK_EQ(walk(c, 0x3000, BT_ACC_R, 1, NULL), 0x100 | 0xd);
	/* reserved bits in a 1G page's low address bits */
	wr64(&t, 0x11000 + 16, 0x80000000 | P | PS | 0x4000);
	CHECK_EQ(walk(c, 0x80000000, BT_ACC_R, 0, NULL), 0x100 | 9);
	tvm_free(&t);
}

static void test_tlb_and_flush(void)
{
	struct tvm t;
	struct bt_cpu *c = tvm_new(&t, 64 << 20);
	setup_long(&t, c);
	c->r[0] = 0;
	uint64_t v = 0;
	CHECK_EQ(tvm_write(c, SEG_DS, 0x1008, 8, 0x1122334455667788ULL), -1);
	CHECK_EQ(rd64(&t, 0x50008), 0x1122334455667788ULL);
	CHECK_EQ(tvm_read(c, SEG_DS, 0x1008, 4, &v), -1);
	CHECK_EQ(v, 0x55667788);
	/* remap 0x1000 to 0x52000: stale until INVLPG */
	wr64(&t, 0x13008, 0x52000 | P | W | U);
	wr64(&t, 0x52008, 0xabcdef);
	CHECK_EQ(tvm_read(c, SEG_DS, 0x1008, 8, &v), -1);
	CHECK_EQ(v, 0x1122334455667788ULL);
	bt_tlb_flush_page(c, 0x1000);
	CHECK_EQ(tvm_read(c, SEG_DS, 0x1008, 8, &v), -1);
	CHECK_EQ(v, 0xabcdef);
	/* a fault sets CR2 in exc_cr2 and the error code */
	CHECK_EQ(tvm_read(c, SEG_DS, 0x3000, 1, &v), BT_PF);
	CHECK_EQ(c->exc_error, 0);
	CHECK_EQ(c->exc_cr2, 0x3000);
	/* supervisor write to the supervisor page is fine, user is not */
	c->cpl = 3; bt_set_user(c->sys, 1);
	CHECK_EQ(tvm_write(c, SEG_DS, 0x2000, 4, 1), BT_PF);
	CHECK_EQ(c->exc_error, 7);
	c->cpl = 0; bt_set_user(c->sys, 0);
	CHECK_EQ(tvm_write(c, SEG_DS, 0x2000, 4, 1), -1);
	/* non-canonical: #GP(0); via SS: #SS(0) */
	CHECK_EQ(tvm_read(c, SEG_DS, 0x0000800000000000ULL, 1, &v), BT_GP);
	CHECK_EQ(tvm_read(c, SEG_SS, 0x0000800000000000ULL, 1, &v), BT_SS);
	/* FS base applies in 64-bit mode, DS base does not */
	c->seg[SEG_FS].base = 0x1000;
	c->seg[SEG_DS].base = 0x5000;
	CHECK_EQ(tvm_read(c, SEG_FS, 8, 8, &v), -1);
	CHECK_EQ(v, 0xabcdef);
	CHECK_EQ(tvm_read(c, SEG_DS, 0x1008, 8, &v), -1);
	CHECK_EQ(v, 0xabcdef);
	tvm_free(&t);
}

static void test_cross_page(void)
{
	struct tvm t;
	struct bt_cpu *c = tvm_new(&t, 64 << 20);
	setup_long(&t, c);
	uint64_t v = 0;
	/* 0x1ffc..0x2003 spans the user page and the supervisor page */
	CHECK_EQ(tvm_write(c, SEG_DS, 0x1ffc, 8, 0x0807060504030201ULL), -1);
	CHECK_EQ(rd32(&t, 0x50ffc), 0x04030201);
	CHECK_EQ(rd32(&t, 0x51000), 0x08070605);
	CHECK_EQ(tvm_read(c, SEG_DS, 0x1ffe, 4, &v), -1);
	CHECK_EQ(v, 0x06050403);
	/* crossing into a not-present page faults on the second page and
	 * writes nothing */
	wr64(&t, 0x51ff8, 0);
	CHECK_EQ(tvm_write(c, SEG_DS, 0x2ffe, 4, 0xffffffff), BT_PF);
	CHECK_EQ(c->exc_cr2, 0x3000);
	CHECK_EQ(rd64(&t, 0x51ff8), 0);
	/* buffers across pages */
	uint8_t buf[64], out[64];
	for (int k = 0; k < 64; k++)
		buf[k] = (uint8_t)k;
	if (!setjmp(c->jmp)) {
		bt_write_buf(c, SEG_DS, 0x1fe0, buf, 64);
		bt_read_buf(c, SEG_DS, 0x1fe0, out, 64);
		CHECK(!memcmp(buf, out, 64));
	} else {
		CHECK(0);
	}
	tvm_free(&t);
}

static void test_segments(void)
{
	struct tvm t;
	struct bt_cpu *c = tvm_new(&t, 0);
	uint64_t v;
	/* real mode: base = sel << 4, limit 64K */
	bt_set_seg_real(c, SEG_DS, 0x1000);
	CHECK_EQ(tvm_write(c, SEG_DS, 0x10, 2, 0xbeef), -1);
	CHECK_EQ(t.ram[0x10010], 0xef);
	CHECK_EQ(tvm_read(c, SEG_DS, 0xffff, 2, &v), BT_GP);
	CHECK_EQ(tvm_read(c, SEG_SS, 0xffff, 2, &v), BT_SS);
	/* protected mode: read-only data segment, code segment, expand-down */
	tvm_pmode32(c);
	c->seg[SEG_ES].attr = SEG_ATTR_P | SEG_ATTR_S | 0x1;         /* RO data */
	c->seg[SEG_ES].limit = 0xfff;
	c->seg[SEG_FS].attr = SEG_ATTR_P | SEG_ATTR_S | 0x9;         /* exec-only code */
	c->seg[SEG_GS].attr = SEG_ATTR_P | SEG_ATTR_S | 0x7 | SEG_ATTR_DB;  /* expand-down RW */
	c->seg[SEG_GS].limit = 0xfff;
	c->seg[SEG_DS].attr = SEG_ATTR_UNUSABLE;
	bt_mode_changed(c);
	CHECK_EQ(tvm_read(c, SEG_ES, 0xffc, 4, &v), -1);
	CHECK_EQ(tvm_read(c, SEG_ES, 0xffd, 4, &v), BT_GP);
	CHECK_EQ(tvm_write(c, SEG_ES, 0, 1, 0), BT_GP);
	CHECK_EQ(tvm_read(c, SEG_FS, 0, 1, &v), BT_GP);
	CHECK_EQ(tvm_read(c, SEG_GS, 0xfff, 1, &v), BT_GP);
	CHECK_EQ(tvm_read(c, SEG_GS, 0x1000, 4, &v), -1);
	CHECK_EQ(tvm_read(c, SEG_GS, 0xfffffffe, 4, &v), BT_GP);
	CHECK_EQ(tvm_read(c, SEG_DS, 0, 1, &v), BT_GP);
	tvm_free(&t);
}

struct mmio_log { uint64_t off, val; unsigned len; int writes, reads; };
static void mm_read(void *o, uint64_t off, void *data, unsigned len)
{
	struct mmio_log *l = o;
	l->reads++;
	l->off = off;
	uint64_t v = 0x1234567890abcdefULL;
	memcpy(data, &v, len);
}
static void mm_write(void *o, uint64_t off, const void *data, unsigned len)
{
	struct mmio_log *l = o;
	l->writes++;
	l->off = off;
	l->len = len;
	l->val = 0;
	memcpy(&l->val, data, len);
}
static const struct bus_ops mm_ops = { mm_read, mm_write };

static void test_mmio(void)
{
	struct tvm t;
	struct bt_cpu *c = tvm_new(&t, 0);
	struct mmio_log l = { 0 };
	CHECK_EQ(bus_register(t.vm.mmio, 0xd0000000ULL, 0x1000, &mm_ops, &l), 0);
	tvm_pmode32(c);
	uint64_t v = 0;
	CHECK_EQ(tvm_write(c, SEG_DS, 0xd0000010ULL, 4, 0xcafe), -1);
	CHECK_EQ(l.writes, 1);
	CHECK_EQ(l.off, 0x10);
	CHECK_EQ(l.len, 4);
	CHECK_EQ(l.val, 0xcafe);
	CHECK_EQ(tvm_read(c, SEG_DS, 0xd0000020ULL, 2, &v), -1);
	CHECK_EQ(v, 0xcdef);
	/* MMIO is never cached in the TLB: each access reaches the device */
	CHECK_EQ(tvm_read(c, SEG_DS, 0xd0000020ULL, 2, &v), -1);
	CHECK_EQ(l.reads, 2);
	/* unmapped physical space reads as all-ones */
	CHECK_EQ(tvm_read(c, SEG_DS, 0xe0000000ULL, 4, &v), -1);
	CHECK_EQ(v, 0xffffffff);
	tvm_free(&t);
}

static void test_dirty_log(void)
{
	struct tvm t;
	struct bt_cpu *c = tvm_new(&t, 0);
	tvm_pmode32(c);
	uint64_t bits[4096 / 64];
	gmem_take_dirty(t.vm.mem, bits);
	CHECK_EQ(tvm_write(c, SEG_DS, 0x5000, 4, 1), -1);
	CHECK_EQ(tvm_write(c, SEG_DS, 0x5004, 4, 1), -1);
	gmem_take_dirty(t.vm.mem, bits);
	CHECK_EQ(bits[0], 1ULL << 5);
	/* after re-arming, the next write to the same page is logged again */
	bt_tlb_flush_writes(c);
	CHECK_EQ(tvm_write(c, SEG_DS, 0x5008, 4, 1), -1);
	gmem_take_dirty(t.vm.mem, bits);
	CHECK_EQ(bits[0], 1ULL << 5);
	tvm_free(&t);
}

int mmu_tests(void)
{
	TEST(test_no_paging);
	TEST(test_legacy);
	TEST(test_pae);
	TEST(test_long);
	TEST(test_tlb_and_flush);
	TEST(test_cross_page);
	TEST(test_segments);
	TEST(test_mmio);
	TEST(test_dirty_log);
	return test_failures;
}
