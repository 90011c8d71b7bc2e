/* Shared helpers of the bt_sys unit tests: a minimal struct vm (RAM and an
 * MMIO bus only) with one BT vCPU, mode setters, and access wrappers that
 * catch raised exceptions. */
#ifndef ROAM_TEST_BT_SYS_H
#define ROAM_TEST_BT_SYS_H
#include <setjmp.h>
#include "monitor/bt/sys_int.h"
#include "monitor/bus.h"
#include "monitor/guest_mem.h"
#include "monitor/vm.h"
#include "tests/unit/test.h"

struct tvm {
	struct vm vm;
	struct bt_cpu cpu;
	uint8_t *ram;
};

/* RAM of mem bytes (0: 16 MiB); aborts the test program on failure. */
struct bt_cpu *tvm_new(struct tvm *t, uint64_t mem);
void tvm_free(struct tvm *t);
/* Flat 32-bit protected mode, CPL 0, paging off. */
void tvm_pmode32(struct bt_cpu *c);
/* 64-bit mode, CPL 0, paging on with the PML4 at cr3. */
void tvm_long64(struct bt_cpu *c, uint64_t cr3);
/* A GDT at 0x1000 with the descriptors listed in seg_test.c. */
void tvm_gdt(struct tvm *t, struct bt_cpu *c);
/* Return -1 on success, else the vector raised. */
int tvm_read(struct bt_cpu *c, int seg, uint64_t off, int size, uint64_t *v);
int tvm_write(struct bt_cpu *c, int seg, uint64_t off, int size, uint64_t v);

/* Each runs its file's tests and returns its number of failures (test.h
 * keeps per-file counters). */
int mmu_tests(void);
int seg_tests(void);
int except_tests(void);
#endif
