/* Tests on a real /dev/kvm: tiny guests written as bytes (real mode and
 * 32-bit protected mode, ending with a write to the debug-exit port
 * 0xf4), a set/get state round trip, the CPUID model as the vCPU sees it,
 * and the dirty log after guest writes. Each skips with "/dev/kvm absent"
 * (or the probe's reason) where KVM cannot be used. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "monitor/guest_mem.h"
#include "monitor/kvm/kvm_int.h"
#include "monitor/vm.h"
#include "tests/unit/test.h"
#include "tests/unit/kvm/kvm_tests.h"

#define MEM (16ULL << 20)

static struct vm *make_vm(int ncpus)
{
	struct vm_config cfg = { .mem_size = MEM, .ncpus = ncpus, .engine = &kvm_engine_ops,
				 .console_in = -1, .console_out = -1 };
	struct vm *vm = NULL;
	char err[256] = "";
	int r = vm_new(&cfg, &vm, err, sizeof(err));
	if (r < 0) {
		printf("  vm_new: %s (%s)\n", err, strerror(-r));
		return NULL;
	}
	if (!vm->eng) {
		printf("  vm_new left no engine\n");
		vm_free(vm);
		return NULL;
	}
	return vm;
}

static int set_entry(struct vm *vm, int cpu, bool protected_mode, uint64_t rip)
{
	struct cpu_state *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	int r = vm->eng_ops->get_state(vm->eng, cpu, st);
	if (r == 0) {
		if (protected_mode) {
			st->cr0 = 0x11;             /* PE | ET */
			for (int s = SEG_ES; s <= SEG_GS; s++)
				st->seg[s] = (struct cpu_seg){ .limit = 0xffffffff,
					.attr = 0x3 | SEG_ATTR_S | SEG_ATTR_P | SEG_ATTR_DB | SEG_ATTR_G };
			st->seg[SEG_CS].attr = 0xb | SEG_ATTR_S | SEG_ATTR_P | SEG_ATTR_DB | SEG_ATTR_G;
			st->seg[SEG_CS].sel = 0x8;
		} else {
			st->seg[SEG_CS] = (struct cpu_seg){ .limit = 0xffff,
				.attr = 0xb | SEG_ATTR_S | SEG_ATTR_P };
		}
		st->rip = rip;
		st->rflags = 0x2;
		r = vm->eng_ops->set_state(vm->eng, cpu, st);
	}
	free(st);
	return r;
}

static const char *kvm_skip_reason(void)
{
	if (access("/dev/kvm", F_OK) != 0)
		return "/dev/kvm absent";
	const char *why = NULL;
	if (kvm_engine_ops.probe(&why) < 0)
		return why;
	return NULL;
}

static void kvm_realmode_out_hlt(void)
{
	/* mov al, 0x2a; out 0xf4, al; hlt */
	static const uint8_t code[] = { 0xb0, 0x2a, 0xe6, 0xf4, 0xf4 };
	struct vm *vm = make_vm(1);
	CHECK(vm != NULL);
	if (!vm)
		return;
	CHECK_EQ(gmem_write(vm->mem, 0x1000, code, sizeof(code)), 0);
	CHECK_EQ(set_entry(vm, 0, false, 0x1000), 0);
	CHECK_EQ(vm_run(vm), (0x2a << 1) | 1);
	vm_free(vm);
}

static void kvm_protected_mode_memory(void)
{
	/* mov eax, [0x2000]; add eax, 1; mov [0x2004], eax; mov al, 0x11;
	 * out 0xf4, al; hlt */
	static const uint8_t code[] = { 0xa1, 0x00, 0x20, 0x00, 0x00, 0x83, 0xc0, 0x01,
		0xa3, 0x04, 0x20, 0x00, 0x00, 0xb0, 0x11, 0xe6, 0xf4, 0xf4 };
	struct vm *vm = make_vm(1);
	CHECK(vm != NULL);
	if (!vm)
		return;
	uint32_t in = 41, outv = 0;
	CHECK_EQ(gmem_write(vm->mem, 0x1000, code, sizeof(code)), 0);
	CHECK_EQ(gmem_write(vm->mem, 0x2000, &in, 4), 0);
	CHECK_EQ(set_entry(vm, 0, true, 0x1000), 0);
	CHECK_EQ(vm_run(vm), (0x11 << 1) | 1);
	CHECK_EQ(gmem_read(vm->mem, 0x2004, &outv, 4), 0);
	CHECK_EQ(outv, 42);
	vm_free(vm);
}

static void kvm_state_roundtrip(void)
{
	struct vm *vm = make_vm(1);
	CHECK(vm != NULL);
	if (!vm)
		return;
	struct cpu_state *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	CHECK(a && b);
	if (!a || !b)
		goto out;
	CHECK_EQ(vm->eng_ops->get_state(vm->eng, 0, a), 0);
	for (int i = 0; i < 16; i++)
		a->gpr[i] = 0x0101010101010101ULL * (uint64_t)(i + 1);
	a->rip = 0x1234;
	a->rflags = 0x202 | (1u << 11);
	a->cr0 = 0x11;
	a->cr2 = 0xcafe000;
	for (int s = SEG_ES; s <= SEG_GS; s++)
		a->seg[s] = (struct cpu_seg){ .base = 0x10000ULL * (uint64_t)s, .limit = 0xfffff,
			.sel = (uint16_t)(0x10 + 8 * s),
			.attr = 0x3 | SEG_ATTR_S | SEG_ATTR_P | SEG_ATTR_DB };
	a->seg[SEG_CS].attr = 0xb | SEG_ATTR_S | SEG_ATTR_P | SEG_ATTR_DB;
	a->seg[SEG_CS].base = 0;
	a->gdt = (struct cpu_dtable){ 0x8000, 0x3f };
	a->idt = (struct cpu_dtable){ 0x9000, 0x7ff };
	a->dr[0] = 0x1000;
	a->dr[1] = 0x2000;
	a->dr[2] = 0x3000;
	a->dr[3] = 0x4000;
	a->dr[7] = 0x401;
	memset(a->xsave + 160, 0x5a, 16);           /* XMM0 */
	a->xsave[32] = 0x77;                        /* ST0 */
	a->xsave[512] |= 3;                         /* XSTATE_BV: x87, SSE in use */
	CHECK_EQ(cpu_state_set_msr(a, MSR_STAR, 0x0023001000000000ULL), 0);
	CHECK_EQ(cpu_state_set_msr(a, MSR_LSTAR, 0xffffffff81a00000ULL), 0);
	CHECK_EQ(cpu_state_set_msr(a, MSR_IA32_SYSENTER_EIP, 0x5555), 0);
	CHECK_EQ(cpu_state_set_msr(a, MSR_KERNEL_GS_BASE, 0xffff888000000000ULL), 0);
	a->lapic[0x80] = 0x20;                      /* TPR */
	a->ev.shadow = 1;                           /* after STI (IF is set) */
	a->ev.nmi_masked = 1;
	CHECK_EQ(vm->eng_ops->set_state(vm->eng, 0, a), 0);
	CHECK_EQ(vm->eng_ops->get_state(vm->eng, 0, b), 0);
	CHECK(!memcmp(a->gpr, b->gpr, sizeof(a->gpr)));
	CHECK_EQ(b->rip, a->rip);
	CHECK_EQ(b->rflags, a->rflags);
	for (int s = SEG_ES; s <= SEG_GS; s++) {
		CHECK_EQ(b->seg[s].base, a->seg[s].base);
		CHECK_EQ(b->seg[s].limit, a->seg[s].limit);
		CHECK_EQ(b->seg[s].sel, a->seg[s].sel);
		CHECK_EQ(b->seg[s].attr & 0xf0ff, a->seg[s].attr & 0xf0ff);
	}
	CHECK_EQ(b->gdt.base, a->gdt.base);
	CHECK_EQ(b->gdt.limit, a->gdt.limit);
	CHECK_EQ(b->idt.base, a->idt.base);
	CHECK_EQ(b->idt.limit, a->idt.limit);
	CHECK_EQ(b->cr0 & 0x11, 0x11);
	CHECK_EQ(b->cr2, a->cr2);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(b->dr[i], a->dr[i]);
	CHECK_EQ(b->dr[7] & 0xff, 0x01);
	CHECK(!memcmp(b->xsave + 160, a->xsave + 160, 16));
	CHECK_EQ(b->xsave[32], 0x77);
	const uint32_t msrs[] = { MSR_STAR, MSR_LSTAR, MSR_IA32_SYSENTER_EIP, MSR_KERNEL_GS_BASE };
	for (size_t i = 0; i < sizeof(msrs) / sizeof(msrs[0]); i++) {
		uint64_t va = 1, vb = 2;
		CHECK_EQ(cpu_state_msr(a, msrs[i], &va), 0);
		CHECK_EQ(cpu_state_msr(b, msrs[i], &vb), 0);
		CHECK_EQ(vb, va);
	}
	uint64_t tsc;
	CHECK_EQ(cpu_state_msr(b, MSR_IA32_TSC, &tsc), 0);
	CHECK_EQ(b->lapic[0x80], 0x20);
	CHECK_EQ(b->cr8, 2);
	CHECK_EQ(b->ev.shadow, 1);
	CHECK_EQ(b->ev.nmi_masked, 1);
	CHECK_EQ(b->mp_state, CPU_RUNNABLE);
out:
	free(a);
	free(b);
	vm_free(vm);
}

static void kvm_cpuid_as_seen(void)
{
	struct vm *vm = make_vm(2);
	CHECK(vm != NULL);
	if (!vm)
		return;
	struct kvm_engine *k = kvm_of(vm->eng);
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 512 * sizeof(struct kvm_cpuid_entry2));
	CHECK(c != NULL);
	if (c) {
		c->nent = 512;
		CHECK(kvm_ioctl(k->cpu[1].fd, KVM_GET_CPUID2, c) >= 0);
		bool seen1 = false;
		for (uint32_t i = 0; i < c->nent; i++) {
			struct kvm_cpuid_entry2 *e = &c->entries[i];
			if (e->function == 1) {
				seen1 = true;
				CHECK_EQ(e->ebx >> 24, 1);
				CHECK(e->ecx & (1u << 31));
				CHECK(!(e->ecx & (1u << 5)));
			}
			if (e->function == 0xd && e->index == 0)
				CHECK(e->ecx <= CPU_XSAVE_MAX);
		}
		CHECK(seen1);
		free(c);
	}
	struct cpu_state *st = calloc(1, sizeof(*st));
	if (st) {
		CHECK_EQ(vm->eng_ops->get_state(vm->eng, 1, st), 0);
		CHECK_EQ(st->lapic[0x23], 1);           /* APIC ID of vCPU 1 */
		CHECK_EQ(st->mp_state, CPU_WAIT_SIPI);
		free(st);
	}
	vm_free(vm);
}

static void kvm_dirty_log_after_writes(void)
{
	/* mov [0x5000], eax; mov [0x7000], eax; mov al, 1; out 0xf4, al; hlt */
	static const uint8_t code[] = { 0xa3, 0x00, 0x50, 0x00, 0x00, 0xa3, 0x00, 0x70,
		0x00, 0x00, 0xb0, 0x01, 0xe6, 0xf4, 0xf4 };
	struct vm *vm = make_vm(1);
	CHECK(vm != NULL);
	if (!vm)
		return;
	uint64_t words = (MEM / GMEM_PAGE + 63) / 64;
	uint64_t *bits = calloc(words, sizeof(uint64_t));
	CHECK(bits != NULL);
	if (bits) {
		CHECK_EQ(gmem_write(vm->mem, 0x1000, code, sizeof(code)), 0);
		CHECK_EQ(set_entry(vm, 0, true, 0x1000), 0);
		CHECK_EQ(vm->eng_ops->dirty_log_start(vm->eng), 0);
		CHECK_EQ(vm_run(vm), 3);
		CHECK_EQ(vm->eng_ops->dirty_log(vm->eng, bits), 0);
		CHECK(bits[0] & (1ULL << 5));
		CHECK(bits[0] & (1ULL << 7));
		CHECK(!(bits[0] & (1ULL << 6)));
		CHECK(!(bits[0] & (1ULL << 1)));      /* code only read */
		memset(bits, 0, words * sizeof(uint64_t));
		CHECK_EQ(vm->eng_ops->dirty_log(vm->eng, bits), 0);
		CHECK(!(bits[0] & ((1ULL << 5) | (1ULL << 7))));
		free(bits);
	}
	vm_free(vm);
}

#define LIVE(fn) do { if (why) SKIP(fn, why); else { alarm(60); TEST(fn); alarm(0); } } while (0)

int kvm_live_tests(void)
{
	const char *why = kvm_skip_reason();
	LIVE(kvm_realmode_out_hlt);
	LIVE(kvm_protected_mode_memory);
	LIVE(kvm_state_roundtrip);
	LIVE(kvm_cpuid_as_seen);
	LIVE(kvm_dirty_log_after_writes);
	return test_failures;
}
