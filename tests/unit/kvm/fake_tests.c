/* The KVM engine against the scripted /dev/kvm stand-in (fake_kvm.h):
 * creation (split irqchip before vCPUs, memory slots, TSS/identity pages,
 * per-vCPU CPUID, reset state), set/get state and its ioctl order, the run
 * loop's exits, kicks, level-triggered MSI routes, dirty logging and PIC
 * injection. Runs everywhere; the real-KVM tests are in live.c. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "monitor/bus.h"
#include "monitor/guest_mem.h"
#include "monitor/irq.h"
#include "monitor/kvm/kvm_int.h"
#include "monitor/vm.h"
#include "tests/unit/test.h"
#include "tests/unit/kvm/fake_kvm.h"
#include "tests/unit/kvm/kvm_tests.h"

#define MEM (16ULL << 20)
#define TEST_PORT 0x7f0
#define TEST_MMIO 0xfed00000ULL

static struct vm *fake_vm_tsc(int ncpus, uint64_t mem, uint32_t tsc_khz)
{
	fake_kvm_reset(true);
	fake_kvm.tsc_khz = tsc_khz;
	struct vm_config cfg = { .mem_size = mem, .ncpus = ncpus, .engine = &kvm_engine_ops,
				 .console_in = -1, .console_out = -1 };
	struct vm *vm = NULL;
	char err[256] = "";
	int r = vm_new(&cfg, &vm, err, sizeof(err));
	if (r < 0 || !vm || !vm->eng) {
		printf("  vm_new under the stand-in: %s (%d)\n", err, r);
		if (vm)
			vm_free(vm);
		return NULL;
	}
	return vm;
}

static struct vm *fake_vm_mem(int ncpus, uint64_t mem) { return fake_vm_tsc(ncpus, mem, 0); }
static struct vm *fake_vm(int ncpus) { return fake_vm_mem(ncpus, MEM); }

static void done(struct vm *vm)
{
	vm_free(vm);
	fake_kvm_reset(false);
}

static void fake_probe_reasons(void)
{
	const char *why = NULL;
	fake_kvm_reset(true);
	CHECK_EQ(kvm_engine_ops.probe(&why), 0);
	fake_kvm.caps_missing_split = true;
	CHECK_EQ(kvm_engine_ops.probe(&why), -ENOTSUP);
	CHECK(why && strstr(why, "KVM_CAP_SPLIT_IRQCHIP"));
	fake_kvm_reset(false);
}

static void fake_create_layout(void)
{
	struct vm *vm = fake_vm(2);
	CHECK(vm != NULL);
	if (!vm)
		return;
	struct fake_kvm *f = &fake_kvm;
	CHECK_EQ(f->split_routes, 24);
	CHECK(f->split_before_vcpus);
	CHECK_EQ(f->ident_addr, 0xFEFFC000ULL);
	CHECK_EQ(f->tss_addr, 0xFEFFD000ULL);
	CHECK(f->manual_protect);
	CHECK_EQ(f->slots[0].guest_phys_addr, 0);
	CHECK_EQ(f->slots[0].memory_size, MEM);
	CHECK_EQ(f->slots[0].flags, 0);
	CHECK(f->slots[0].userspace_addr == (uint64_t)(uintptr_t)gmem_base(vm->mem));
	for (int i = 0; i < 2; i++) {
		struct fake_vcpu *v = &f->vcpu[i];
		CHECK(v->used);
		bool leaf1 = false;
		for (int j = 0; j < v->ncpuid; j++)
			if (v->cpuid[j].function == 1) {
				leaf1 = true;
				CHECK_EQ(v->cpuid[j].ebx >> 24, i);
				CHECK(v->cpuid[j].ecx & (1u << 31));
				CHECK(!(v->cpuid[j].ecx & (1u << 5)));
				CHECK(!(v->cpuid[j].ecx & (1u << 21)));
				CHECK(v->cpuid[j].ecx & (1u << 24));
			}
		CHECK(leaf1);
		CHECK_EQ(v->regs.rip, 0xfff0);
		CHECK_EQ(v->sregs.cs.base, 0xffff0000ULL);
		CHECK_EQ(v->sregs.cs.selector, 0xf000);
		CHECK_EQ(v->sregs.apic_base, 0xfee00800ULL | (i == 0 ? 0x100 : 0));
		CHECK_EQ((unsigned char)v->lapic.regs[0x23], i);     /* KVM's page kept */
		CHECK_EQ(v->xcr0, 1);
	}
	CHECK_EQ(f->vcpu[0].mp, KVM_MP_STATE_RUNNABLE);
	CHECK_EQ(f->vcpu[1].mp, KVM_MP_STATE_INIT_RECEIVED);
	uint64_t misc = 0;
	for (int j = 0; j < f->vcpu[0].nmsr; j++)
		if (f->vcpu[0].msr_idx[j] == MSR_IA32_MISC_ENABLE)
			misc = f->vcpu[0].msr_val[j];
	CHECK_EQ(misc & 1, 1);
	done(vm);
}

static void fake_tsc_rate_recorded(void)
{
	/* KVM here cannot scale the TSC (no KVM_CAP_TSC_CONTROL): the VM
	 * records the host rate the guest really sees. */
	struct vm *vm = fake_vm_tsc(1, MEM, 2900000);
	CHECK(vm != NULL);
	if (!vm)
		return;
	CHECK_EQ(vm->tsc_khz, 2900000);
	done(vm);
}

static void fake_state_roundtrip_order(void)
{
	struct vm *vm = fake_vm(1);
	CHECK(vm != NULL);
	if (!vm)
		return;
	struct cpu_state *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	CHECK(a && b);
	if (a && b) {
		CHECK_EQ(vm->eng_ops->get_state(vm->eng, 0, a), 0);
		for (int i = 0; i < 16; i++)
			a->gpr[i] = 0x1000 + (uint64_t)i;
		a->rip = 0xffffffff81000000ULL;
		a->rflags = 0x246;
		a->seg[SEG_CS] = (struct cpu_seg){ .limit = 0xffffffff, .sel = 0x10,
			.attr = 0xb | SEG_ATTR_S | SEG_ATTR_P | SEG_ATTR_L | SEG_ATTR_G };
		a->seg[SEG_FS].base = 0x7f0000001000ULL;
		a->cr0 = 0x80050033;
		a->cr3 = 0x1000;
		a->cr4 = 0x6f0;
		a->efer = 0xd01;
		a->dr[0] = 0x4000;
		a->dr[7] = 0x401;
		a->xcr0 = 7;
		memset(a->xsave + 160, 0x3c, 16);
		a->xsave[512] = 3;
		a->ev.shadow = 1;
		a->ev.nmi_masked = 1;
		a->mp_state = CPU_HALTED;
		a->lapic[0x80] = 0x40;
		CHECK_EQ(cpu_state_set_msr(a, MSR_LSTAR, 0xffffffff81e00000ULL), 0);
		CHECK_EQ(cpu_state_set_msr(a, MSR_IA32_TSC, 123456789), 0);
		CHECK_EQ(cpu_state_set_msr(a, MSR_IA32_TSC_DEADLINE, 987654321), 0);
		CHECK_EQ(cpu_state_set_msr(a, MSR_EFER, 0xdead), 0);   /* sregs win */
		fake_kvm.order[0] = 0;
		CHECK_EQ(vm->eng_ops->set_state(vm->eng, 0, a), 0);
		CHECK(!strcmp(fake_kvm.order,
			      "SREGS,REGS,XSAVE,XCRS,MSRS,MP,LAPIC,MSRS:DEADLINE,DEBUGREGS,EVENTS"));
		if (strcmp(fake_kvm.order,
			   "SREGS,REGS,XSAVE,XCRS,MSRS,MP,LAPIC,MSRS:DEADLINE,DEBUGREGS,EVENTS"))
			printf("  order: %s\n", fake_kvm.order);
		struct fake_vcpu *v = &fake_kvm.vcpu[0];
		CHECK_EQ(v->ev.interrupt.shadow, KVM_X86_SHADOW_INT_STI);
		CHECK_EQ(v->mp, KVM_MP_STATE_HALTED);
		CHECK_EQ(v->sregs.cs.l, 1);
		CHECK_EQ(v->sregs.efer, 0xd01);
		CHECK_EQ(v->xcr0, 7);
		for (int j = 0; j < v->nmsr; j++)
			CHECK(v->msr_idx[j] != MSR_EFER || v->msr_val[j] != 0xdead);

		CHECK_EQ(vm->eng_ops->get_state(vm->eng, 0, b), 0);
		CHECK(!memcmp(a->gpr, b->gpr, sizeof(a->gpr)));
		CHECK_EQ(b->rip, a->rip);
		CHECK_EQ(b->rflags, a->rflags);
		for (int s = 0; s < SEG_COUNT; s++) {
			CHECK_EQ(b->seg[s].base, a->seg[s].base);
			CHECK_EQ(b->seg[s].attr, a->seg[s].attr);
			CHECK_EQ(b->seg[s].limit, a->seg[s].limit);
			CHECK_EQ(b->seg[s].sel, a->seg[s].sel);
		}
		CHECK_EQ(b->cr0, a->cr0);
		CHECK_EQ(b->cr3, a->cr3);
		CHECK_EQ(b->cr4, a->cr4);
		CHECK_EQ(b->efer, a->efer);
		CHECK_EQ(b->dr[0], a->dr[0]);
		CHECK_EQ(b->dr[7], a->dr[7]);
		CHECK_EQ(b->xcr0, 7);
		CHECK_EQ(b->xsave_size, CPU_XSAVE_MAX);
		CHECK(!memcmp(b->xsave, a->xsave, 576));
		CHECK_EQ(b->ev.shadow, 1);
		CHECK_EQ(b->ev.nmi_masked, 1);
		CHECK_EQ(b->mp_state, CPU_HALTED);
		CHECK_EQ(b->lapic[0x80], 0x40);
		uint64_t val = 0;
		CHECK_EQ(cpu_state_msr(b, MSR_LSTAR, &val), 0);
		CHECK_EQ(val, 0xffffffff81e00000ULL);
		CHECK_EQ(cpu_state_msr(b, MSR_IA32_TSC, &val), 0);
		CHECK_EQ(val, 123456789);
		CHECK_EQ(cpu_state_msr(b, MSR_IA32_TSC_DEADLINE, &val), 0);
		CHECK_EQ(val, 987654321);

		/* Refused before touching the vCPU: an exception vector > 31. */
		a->ev.exc_injected = 1;
		a->ev.exc_vector = 40;
		fake_kvm.order[0] = 0;
		CHECK_EQ(vm->eng_ops->set_state(vm->eng, 0, a), -EINVAL);
		CHECK_EQ(fake_kvm.order[0], 0);
	}
	free(a);
	free(b);
	done(vm);
}

/* A port and an MMIO device recording what the engine dispatched. */
struct probe_dev { uint64_t w_off[8], w_val[8]; unsigned w_len[8]; int nw, nr; };

static void probe_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct probe_dev *d = opaque;
	uint64_t v = 0x1122334455667788ULL;
	if (off < 0x10)
		v = 0xdeadbeef;
	memcpy(data, &v, len);
	d->nr++;
}

static void probe_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct probe_dev *d = opaque;
	uint64_t v = 0;
	memcpy(&v, data, len);
	if (d->nw < 8) {
		d->w_off[d->nw] = off;
		d->w_val[d->nw] = v;
		d->w_len[d->nw] = len;
	}
	d->nw++;
}

static const struct bus_ops probe_ops = { probe_read, probe_write };

static void fake_run_exits(void)
{
	struct vm *vm = fake_vm(1);
	CHECK(vm != NULL);
	if (!vm)
		return;
	struct probe_dev pio = { .nw = 0 }, mmio = { .nw = 0 };
	CHECK_EQ(bus_register(vm->pio, TEST_PORT, 4, &probe_ops, &pio), 0);
	CHECK_EQ(bus_register(vm->mmio, TEST_MMIO, 0x1000, &probe_ops, &mmio), 0);
	struct fake_vcpu *v = &fake_kvm.vcpu[0];
	struct fake_exit s[] = {
		{ .reason = KVM_EXIT_IO, .dir = KVM_EXIT_IO_OUT, .size = 2, .port = TEST_PORT, .count = 1,
		  .data = { 0x34, 0x12 } },
		{ .reason = KVM_EXIT_IO, .dir = KVM_EXIT_IO_OUT, .size = 1, .port = TEST_PORT + 1, .count = 3,
		  .data = { 1, 2, 3 } },
		{ .reason = KVM_EXIT_IO, .dir = KVM_EXIT_IO_IN, .size = 4, .port = TEST_PORT, .count = 1 },
		{ .reason = KVM_EXIT_MMIO, .addr = TEST_MMIO + 0x10, .len = 4, .is_write = true,
		  .data = { 0x78, 0x56, 0x34, 0x12 } },
		{ .reason = KVM_EXIT_MMIO, .addr = TEST_MMIO + 0x20, .len = 8 },
		{ .reason = KVM_EXIT_MMIO, .addr = TEST_MMIO + 0x10000, .len = 3 },
		{ .reason = KVM_EXIT_IOAPIC_EOI, .sub = 0x30 },
		{ .reason = KVM_EXIT_IRQ_WINDOW_OPEN },
	};
	memcpy(v->script, s, sizeof(s));
	v->nscript = (int)(sizeof(s) / sizeof(s[0]));
	CHECK_EQ(vm->eng_ops->run(vm->eng, 0), 0);       /* ends on SHUTDOWN */
	CHECK_EQ(atomic_load(&vm->stop), VM_STOP_RESET);
	CHECK_EQ(v->runs, 9);
	CHECK_EQ(pio.nw, 4);
	CHECK_EQ(pio.w_val[0], 0x1234);
	CHECK_EQ(pio.w_len[0], 2);
	CHECK_EQ(pio.w_off[1], 1);
	CHECK_EQ(pio.w_val[1], 1);
	CHECK_EQ(pio.w_val[3], 3);
	CHECK_EQ(pio.nr, 1);
	CHECK_EQ(mmio.nw, 1);
	CHECK_EQ(mmio.w_off[0], 0x10);
	CHECK_EQ(mmio.w_val[0], 0x12345678);
	CHECK_EQ(mmio.w_len[0], 4);
	CHECK_EQ(mmio.nr, 1);
	/* The last read before SHUTDOWN was the unmapped 3-byte MMIO read:
	 * all-ones, byte by byte. */
	CHECK_EQ(v->last_in[0], 0xff);
	CHECK_EQ(v->last_in[1], 0xff);
	CHECK_EQ(v->last_in[2], 0xff);
	done(vm);
}

static void fake_run_in_and_mmio_read(void)
{
	struct vm *vm = fake_vm(1);
	CHECK(vm != NULL);
	if (!vm)
		return;
	struct probe_dev pio = { .nw = 0 }, mmio = { .nw = 0 };
	CHECK_EQ(bus_register(vm->pio, TEST_PORT, 4, &probe_ops, &pio), 0);
	CHECK_EQ(bus_register(vm->mmio, TEST_MMIO, 0x1000, &probe_ops, &mmio), 0);
	struct fake_vcpu *v = &fake_kvm.vcpu[0];
	v->script[0] = (struct fake_exit){ .reason = KVM_EXIT_IO, .dir = KVM_EXIT_IO_IN, .size = 4,
					   .port = TEST_PORT, .count = 1 };
	v->nscript = 1;
	CHECK_EQ(vm->eng_ops->run(vm->eng, 0), 0);
	uint32_t got;
	memcpy(&got, v->last_in, 4);
	CHECK_EQ(got, 0xdeadbeef);
	done(vm);

	vm = fake_vm(1);
	CHECK(vm != NULL);
	if (!vm)
		return;
	CHECK_EQ(bus_register(vm->mmio, TEST_MMIO, 0x1000, &probe_ops, &mmio), 0);
	v = &fake_kvm.vcpu[0];
	v->script[0] = (struct fake_exit){ .reason = KVM_EXIT_MMIO, .addr = TEST_MMIO + 0x20, .len = 8 };
	v->nscript = 1;
	CHECK_EQ(vm->eng_ops->run(vm->eng, 0), 0);
	uint64_t g8;
	memcpy(&g8, v->last_in, 8);
	CHECK_EQ(g8, 0x1122334455667788ULL);
	done(vm);
}

static void fake_run_errors(void)
{
	struct vm *vm = fake_vm(1);
	CHECK(vm != NULL);
	if (!vm)
		return;
	struct fake_vcpu *v = &fake_kvm.vcpu[0];
	v->regs.rip = 0x1234;
	v->script[0] = (struct fake_exit){ .reason = KVM_EXIT_INTERNAL_ERROR,
					   .sub = KVM_INTERNAL_ERROR_EMULATION };
	v->nscript = 1;
	CHECK(vm->eng_ops->run(vm->eng, 0) < 0);
	CHECK_EQ(atomic_load(&vm->stop), VM_STOP_ERROR);
	CHECK(strstr(vm->error, "emulation failure") != NULL);
	CHECK(strstr(vm->error, "RIP 0x1234") != NULL);
	CHECK(strchr(vm->error, '\n') == NULL);
	done(vm);

	vm = fake_vm(1);
	CHECK(vm != NULL);
	if (!vm)
		return;
	v = &fake_kvm.vcpu[0];
	v->script[0] = (struct fake_exit){ .reason = KVM_EXIT_IO, .dir = KVM_EXIT_IO_OUT, .size = 3,
					   .port = TEST_PORT, .count = 1 };
	v->nscript = 1;
	CHECK(vm->eng_ops->run(vm->eng, 0) < 0);        /* malformed exit: no crash */
	CHECK_EQ(atomic_load(&vm->stop), VM_STOP_ERROR);
	done(vm);
}

struct runner { struct vm *vm; int ret; volatile int finished; };

static void *run_thread(void *p)
{
	struct runner *r = p;
	r->ret = r->vm->eng_ops->run(r->vm->eng, 0);
	r->finished = 1;
	return NULL;
}

static void fake_kick(void)
{
	struct vm *vm = fake_vm(1);
	CHECK(vm != NULL);
	if (!vm)
		return;
	struct fake_vcpu *v = &fake_kvm.vcpu[0];

	/* A kick before run(): the first KVM_RUN returns at once. */
	vm->eng_ops->kick(vm->eng, 0);
	v->nscript = 0;
	CHECK_EQ(vm->eng_ops->run(vm->eng, 0), 0);
	CHECK_EQ(v->eintr, 1);

	/* A kick while the guest spins inside KVM_RUN: run() returns once
	 * vm->pause is set. */
	atomic_store(&vm->stop, VM_RUNNING);
	v->script[0] = (struct fake_exit){ .reason = 0 };
	v->nscript = 1;
	v->pos = 0;
	v->repeat_last = true;
	struct runner r = { .vm = vm };
	pthread_t t;
	CHECK_EQ(pthread_create(&t, NULL, run_thread, &r), 0);
	usleep(20000);
	CHECK(!r.finished);
	atomic_store(&vm->pause, 1);
	vm->eng_ops->kick(vm->eng, 0);
	for (int i = 0; i < 2000 && !r.finished; i++)
		usleep(1000);
	CHECK(r.finished);
	if (!r.finished) {
		atomic_store(&vm->stop, VM_STOP_HOST);
		vm->eng_ops->kick(vm->eng, 0);
	}
	pthread_join(t, NULL);
	CHECK_EQ(r.ret, 0);
	atomic_store(&vm->pause, 0);
	done(vm);
}

static void fake_level_msi_routes(void)
{
	struct vm *vm = fake_vm(1);
	CHECK(vm != NULL);
	if (!vm)
		return;
	struct fake_kvm *f = &fake_kvm;
	vm->eng_ops->msi(vm->eng, 0xfee00000, 0x31);              /* edge */
	CHECK_EQ(f->routing_calls, 0);
	CHECK_EQ(f->nmsis, 1);
	CHECK_EQ(f->msis[0].data, 0x31);
	vm->eng_ops->msi(vm->eng, 0xfee01000, 0xc032);            /* level, dest 1 */
	CHECK_EQ(f->routing_calls, 1);
	CHECK_EQ(f->nroutes, 1);
	CHECK_EQ(f->routes[0].type, KVM_IRQ_ROUTING_MSI);
	CHECK_EQ(f->routes[0].gsi, 0);
	CHECK_EQ(f->routes[0].u.msi.address_lo, 0xfee01000);
	CHECK_EQ(f->routes[0].u.msi.data, 0xc032);
	CHECK_EQ(f->nmsis, 2);
	CHECK_EQ(f->msis[1].data, 0xc032);
	vm->eng_ops->msi(vm->eng, 0xfee01000, 0xc032);            /* known: no update */
	CHECK_EQ(f->routing_calls, 1);
	for (uint32_t vec = 0x40; vec < 0x40 + 30; vec++)
		vm->eng_ops->msi(vm->eng, 0xfee00000, 0xc000 | vec);
	CHECK_EQ(f->nroutes, 24);                                  /* the reserved routes */
	for (int i = 0; i < f->nroutes; i++)
		CHECK(f->routes[i].gsi < 24);

	/* A restored LAPIC page with a level vector in TMR gets a route too. */
	struct cpu_state *st = calloc(1, sizeof(*st));
	CHECK(st != NULL);
	if (st) {
		CHECK_EQ(vm->eng_ops->get_state(vm->eng, 0, st), 0);
		st->lapic[0x180 + 0x10 * (0xa5 / 32) + (0xa5 % 32) / 8] |= (uint8_t)(1u << (0xa5 % 8));
		int calls = f->routing_calls;
		CHECK_EQ(vm->eng_ops->set_state(vm->eng, 0, st), 0);
		CHECK_EQ(f->routing_calls, calls + 1);
		bool found = false;
		for (int i = 0; i < f->nroutes; i++)
			found |= (f->routes[i].u.msi.data & 0xff) == 0xa5 && (f->routes[i].u.msi.data & 0x8000);
		CHECK(found);
		free(st);
	}
	done(vm);
}

static void fake_dirty_log(void)
{
	struct vm *vm = fake_vm(1);
	CHECK(vm != NULL);
	if (!vm)
		return;
	struct fake_kvm *f = &fake_kvm;
	uint64_t words = (MEM / GMEM_PAGE + 63) / 64;
	uint64_t *bits = calloc(words, sizeof(uint64_t));
	CHECK(bits != NULL);
	if (bits) {
		CHECK_EQ(vm->eng_ops->dirty_log(vm->eng, bits), -EINVAL);   /* not started */
		CHECK_EQ(vm->eng_ops->dirty_log_start(vm->eng), 0);
		CHECK(f->slots[0].flags & KVM_MEM_LOG_DIRTY_PAGES);
		CHECK_EQ(f->slots[0].memory_size, MEM);
		f->dirty[0][0] = (1ULL << 3) | (1ULL << 40);
		f->dirty[0][1] = 1;
		bits[2] = 1;                                  /* ORed, not overwritten */
		CHECK_EQ(vm->eng_ops->dirty_log(vm->eng, bits), 0);
		CHECK_EQ(bits[0], (1ULL << 3) | (1ULL << 40));
		CHECK_EQ(bits[1], 1);
		CHECK_EQ(bits[2], 1);
		CHECK_EQ(f->clears, 1);
		CHECK_EQ(f->last_clear.first_page, 0);
		CHECK_EQ(f->last_clear.num_pages, MEM / GMEM_PAGE);
		memset(bits, 0, words * sizeof(uint64_t));
		CHECK_EQ(vm->eng_ops->dirty_log(vm->eng, bits), 0);  /* cleared by CLEAR */
		CHECK_EQ(bits[0], 0);
		CHECK_EQ(bits[1], 0);
		free(bits);
	}
	done(vm);
}

static void fake_high_memory_slots(void)
{
	/* 3 GiB + 64 MiB: RAM above the hole is slot 1 at 4 GiB, backed by
	 * RAM offset 3 GiB; its dirty pages land at RAM page 786432 on. */
	const uint64_t mem = GMEM_LOW_MAX + (64ULL << 20);
	struct vm *vm = fake_vm_mem(1, mem);
	CHECK(vm != NULL);
	if (!vm)
		return;
	struct fake_kvm *f = &fake_kvm;
	uint64_t base = (uint64_t)(uintptr_t)gmem_base(vm->mem);
	CHECK_EQ(f->slots[0].guest_phys_addr, 0);
	CHECK_EQ(f->slots[0].memory_size, GMEM_LOW_MAX);
	CHECK(f->slots[0].userspace_addr == base);
	CHECK_EQ(f->slots[1].slot, 1);
	CHECK_EQ(f->slots[1].guest_phys_addr, GMEM_HIGH_BASE);
	CHECK_EQ(f->slots[1].memory_size, 64ULL << 20);
	CHECK(f->slots[1].userspace_addr == base + GMEM_LOW_MAX);
	uint64_t words = (mem / GMEM_PAGE + 63) / 64;
	uint64_t *bits = calloc(words, sizeof(uint64_t));
	CHECK(bits != NULL);
	if (bits) {
		CHECK_EQ(vm->eng_ops->dirty_log_start(vm->eng), 0);
		CHECK(f->slots[1].flags & KVM_MEM_LOG_DIRTY_PAGES);
		f->dirty[0][0] = 1ULL << 7;
		f->dirty[1][0] = (1ULL << 0) | (1ULL << 9);
		CHECK_EQ(vm->eng_ops->dirty_log(vm->eng, bits), 0);
		uint64_t hp = GMEM_LOW_MAX / GMEM_PAGE;
		CHECK_EQ(bits[0], 1ULL << 7);
		CHECK_EQ(bits[hp / 64], (1ULL << (hp % 64)) | (1ULL << (hp % 64 + 9)));
		int total = 0;
		for (uint64_t i = 0; i < words; i++)
			total += __builtin_popcountll(bits[i]);
		CHECK_EQ(total, 3);
		CHECK_EQ(f->clears, 2);
		CHECK_EQ(f->last_clear.slot, 1);
		CHECK_EQ(f->last_clear.num_pages, (64ULL << 20) / GMEM_PAGE);
		free(bits);
	}
	done(vm);
}

static void fake_pic_injection(void)
{
	struct vm *vm = fake_vm(1);
	CHECK(vm != NULL);
	if (!vm)
		return;
	/* ICW1-4: vector base 0x20; unmask IRQ4 only. */
	static const struct { uint16_t port; uint8_t v; } init[] = {
		{ 0x20, 0x11 }, { 0x21, 0x20 }, { 0x21, 0x04 }, { 0x21, 0x01 }, { 0x21, 0xef },
		{ 0xa0, 0x11 }, { 0xa1, 0x28 }, { 0xa1, 0x02 }, { 0xa1, 0x01 }, { 0xa1, 0xff },
	};
	for (size_t i = 0; i < sizeof(init) / sizeof(init[0]); i++)
		CHECK_EQ(bus_write(vm->pio, init[i].port, &init[i].v, 1), 0);
	irqchip_set_irq(vm->irq, 4, 1);
	CHECK_EQ(irqchip_pic_pending(vm->irq), 0x24);
	struct fake_vcpu *v = &fake_kvm.vcpu[0];
	v->script[0] = (struct fake_exit){ .reason = KVM_EXIT_IRQ_WINDOW_OPEN, .ready = true };
	v->nscript = 1;
	CHECK_EQ(vm->eng_ops->run(vm->eng, 0), 0);
	CHECK(v->saw_window_request);
	CHECK_EQ(v->ninterrupts, 1);
	CHECK_EQ(v->interrupts[0], 0x24);
	irqchip_set_irq(vm->irq, 4, 0);
	done(vm);
}

int kvm_fake_tests(void)
{
	TEST(fake_probe_reasons);
	TEST(fake_create_layout);
	TEST(fake_tsc_rate_recorded);
	TEST(fake_state_roundtrip_order);
	TEST(fake_run_exits);
	TEST(fake_run_in_and_mmio_read);
	TEST(fake_run_errors);
	TEST(fake_kick);
	TEST(fake_level_msi_routes);
	TEST(fake_dirty_log);
	TEST(fake_high_memory_slots);
	TEST(fake_pic_injection);
	return test_failures;
}
