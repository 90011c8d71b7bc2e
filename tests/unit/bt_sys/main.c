/* bt_sys unit tests: the BT engine's system half (memory path, page
 * walker, segment loads, exception delivery). */
#include <stdlib.h>
#include <string.h>
#include "tests/unit/bt_sys/bt_sys_test.h"

struct bt_cpu *tvm_new(struct tvm *t, uint64_t mem)
{
	memset(t, 0, sizeof(*t));
	if (gmem_new(mem ? mem : 16 << 20, &t->vm.mem) < 0 ||
	    bus_new(1ULL << 32, &t->vm.mmio) < 0 || bus_new(0x10000, &t->vm.pio) < 0 ||
	    bt_cpu_init(&t->cpu, &t->vm, 0) < 0) {
		printf("FAIL: tvm_new: cannot set up a test VM\n");
		exit(1);
	}
	t->vm.ncpus = 1;
	t->ram = gmem_base(t->vm.mem);
	return &t->cpu;
}

void tvm_free(struct tvm *t)
{
	bt_cpu_fini(&t->cpu);
	bus_free(t->vm.mmio);
	bus_free(t->vm.pio);
	gmem_free(t->vm.mem);
}

void tvm_pmode32(struct bt_cpu *c)
{
	c->cr0 |= 1;
	for (int i = 0; i < 6; i++) {
		c->seg[i].base = 0;
		c->seg[i].limit = 0xffffffff;
		c->seg[i].attr = SEG_ATTR_P | SEG_ATTR_S | SEG_ATTR_DB | SEG_ATTR_G |
				 (i == SEG_CS ? 0xb : 0x3);
		c->seg[i].sel = i == SEG_CS ? 8 : 16;
	}
	bt_mode_changed(c);
	bt_tlb_flush_all(c);
}

void tvm_long64(struct bt_cpu *c, uint64_t cr3)
{
	tvm_pmode32(c);
	c->cr4 |= 1ULL << 5;
	c->efer |= (1ULL << 8) | (1ULL << 10);
	c->cr3 = cr3;
	c->cr0 |= 0x80000000ULL;
	c->seg[SEG_CS].attr = SEG_ATTR_P | SEG_ATTR_S | SEG_ATTR_L | SEG_ATTR_G | 0xb;
	bt_mode_changed(c);
	bt_tlb_flush_all(c);
}

int tvm_read(struct bt_cpu *c, int seg, uint64_t off, int size, uint64_t *v)
{
	if (setjmp(c->jmp))
		return c->exc_vector;
	*v = bt_read(c, seg, off, size);
	return -1;
}

int tvm_write(struct bt_cpu *c, int seg, uint64_t off, int size, uint64_t v)
{
	if (setjmp(c->jmp))
		return c->exc_vector;
	bt_write(c, seg, off, size, v);
	return -1;
}

int main(void)
{
	(void)test_failed_now;
	test_failures += mmu_tests();
	test_failures += seg_tests();
	test_failures += except_tests();
	TEST_EXIT();
}
