/* The scripted /dev/kvm stand-in of fake_kvm.h: interposes open() and
 * ioctl() for this test program. Descriptors are real (eventfds for the
 * system and VM, memfds for vCPUs so kvm_run can be mmapped). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "tests/unit/kvm/fake_kvm.h"

struct fake_kvm fake_kvm = { .kvm_fd = -1, .vm_fd = -1 };

void fake_kvm_reset(bool on)
{
	struct fake_kvm *f = &fake_kvm;
	/* The engine owns and closes the descriptors; only the stand-in's
	 * own view of each kvm_run goes here. */
	for (int i = 0; i < FAKE_MAX_VCPUS; i++)
		if (f->vcpu[i].run)
			munmap(f->vcpu[i].run, FAKE_RUN_SIZE);
	memset(f, 0, sizeof(*f));
	f->kvm_fd = f->vm_fd = -1;
	f->on = on;
}

int open(const char *path, int flags, ...)
{
	mode_t mode = 0;
	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	if (fake_kvm.on && !strcmp(path, "/dev/kvm")) {
		int fd = eventfd(0, EFD_CLOEXEC);
		if (fd >= 0)
			fake_kvm.kvm_fd = fd;
		return fd;
	}
	return (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}

static int fail(int e)
{
	errno = e;
	return -1;
}

static void note(const char *what)
{
	size_t n = strlen(fake_kvm.order);
	snprintf(fake_kvm.order + n, sizeof(fake_kvm.order) - n, "%s%s", n ? "," : "", what);
}

static struct fake_vcpu *vcpu_of(int fd)
{
	for (int i = 0; i < FAKE_MAX_VCPUS; i++)
		if (fake_kvm.vcpu[i].used && fake_kvm.vcpu[i].fd == fd)
			return &fake_kvm.vcpu[i];
	return NULL;
}

/* A small Intel-like supported CPUID list. */
static const struct kvm_cpuid_entry2 supported[] = {
	{ .function = 0, .eax = 0xd, .ebx = 0x756e6547, .ecx = 0x6c65746e, .edx = 0x49656e69 },
	{ .function = 1, .eax = 0x806f8, .ebx = 0x800, .ecx = 0x04000001 | (1u << 5) | (1u << 21),
	  .edx = 0x178bfbff },
	{ .function = 0xb, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .ebx = 1, .ecx = 0x100 },
	{ .function = 0xd, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 7, .ecx = 832 },
	{ .function = 0xd, .index = 2, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 256, .ebx = 576 },
	{ .function = 0x40000000, .eax = 0x40000001, .ebx = 0x4b4d564b },
	{ .function = 0x40000001, .eax = 0x01007afb },
};
#define NSUPPORTED ((uint32_t)(sizeof(supported) / sizeof(supported[0])))

/* MSRs the stand-in holds (others fail like unknown MSRs). */
static const uint32_t known_msrs[] = {
	0x10, 0x1b, 0x1a0, 0x174, 0x175, 0x176, 0x277, 0x6e0, 0xc0000080, 0xc0000081,
	0xc0000082, 0xc0000083, 0xc0000084, 0xc0000100, 0xc0000101, 0xc0000102,
	0xc0000103, 0x4b564d00, 0x4b564d01, 0x3b, 0x2ff,
};

static bool msr_known(uint32_t idx)
{
	for (size_t i = 0; i < sizeof(known_msrs) / sizeof(known_msrs[0]); i++)
		if (known_msrs[i] == idx)
			return true;
	return false;
}

static uint64_t *msr_slot(struct fake_vcpu *v, uint32_t idx)
{
	for (int i = 0; i < v->nmsr; i++)
		if (v->msr_idx[i] == idx)
			return &v->msr_val[i];
	if (v->nmsr >= 64)
		return NULL;
	v->msr_idx[v->nmsr] = idx;
	v->msr_val[v->nmsr] = 0;
	return &v->msr_val[v->nmsr++];
}

static int check_extension(long cap)
{
	switch (cap) {
	case KVM_CAP_SPLIT_IRQCHIP: return fake_kvm.caps_missing_split ? 0 : 1;
	case KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2: return 3;
	case KVM_CAP_MAX_VCPUS: return FAKE_MAX_VCPUS;
	case KVM_CAP_TSC_CONTROL: return 0;
	case KVM_CAP_USER_MEMORY: case KVM_CAP_SET_TSS_ADDR: case KVM_CAP_SET_IDENTITY_MAP_ADDR:
	case KVM_CAP_EXT_CPUID: case KVM_CAP_IRQ_ROUTING: case KVM_CAP_SIGNAL_MSI:
	case KVM_CAP_VCPU_EVENTS: case KVM_CAP_MP_STATE: case KVM_CAP_IMMEDIATE_EXIT:
	case KVM_CAP_XSAVE: case KVM_CAP_XCRS: case KVM_CAP_DEBUGREGS:
	case KVM_CAP_TSC_DEADLINE_TIMER:
		return 1;
	default:
		return 0;
	}
}

static int system_ioctl(unsigned long req, void *arg)
{
	switch (req) {
	case KVM_GET_API_VERSION: return KVM_API_VERSION;
	case KVM_CHECK_EXTENSION: return check_extension((long)arg);
	case KVM_GET_VCPU_MMAP_SIZE: return FAKE_RUN_SIZE;
	case KVM_GET_SUPPORTED_CPUID: {
		struct kvm_cpuid2 *c = arg;
		if (c->nent < NSUPPORTED) {
			c->nent = NSUPPORTED;
			return fail(E2BIG);
		}
		c->nent = NSUPPORTED;
		memcpy(c->entries, supported, sizeof(supported));
		return 0;
	}
	case KVM_GET_MSR_INDEX_LIST: {
		struct kvm_msr_list *l = arg;
		uint32_t n = 2;
		if (l->nmsrs < n) {
			l->nmsrs = n;
			return fail(E2BIG);
		}
		l->nmsrs = n;
		l->indices[0] = 0x3b;
		l->indices[1] = 0x10;
		return 0;
	}
	case KVM_CREATE_VM: {
		int fd = eventfd(0, EFD_CLOEXEC);
		if (fd >= 0)
			fake_kvm.vm_fd = fd;
		return fd;
	}
	default:
		return fail(ENOTTY);
	}
}

static int create_vcpu(long id)
{
	if (id < 0 || id >= FAKE_MAX_VCPUS || fake_kvm.vcpu[id].used)
		return fail(EINVAL);
	struct fake_vcpu *v = &fake_kvm.vcpu[id];
	int fd = memfd_create("fake-vcpu", MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, FAKE_RUN_SIZE) < 0) {
		close(fd);
		return -1;
	}
	void *p = mmap(NULL, FAKE_RUN_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		close(fd);
		return -1;
	}
	v->run = p;
	v->used = true;
	v->fd = fd;
	v->id = (int)id;
	v->mp = id ? KVM_MP_STATE_UNINITIALIZED : KVM_MP_STATE_RUNNABLE;
	v->lapic.regs[0x23] = (char)id;           /* APIC ID */
	v->lapic.regs[0x350 + 1] = 0x07;          /* LVT0 ExtINT on every CPU */
	if (fake_kvm.split_routes)
		fake_kvm.split_before_vcpus = true;
	return fd;
}

static int vm_ioctl(unsigned long req, void *arg)
{
	struct fake_kvm *f = &fake_kvm;
	switch (req) {
	case KVM_CHECK_EXTENSION: return check_extension((long)arg);
	case KVM_SET_IDENTITY_MAP_ADDR: f->ident_addr = *(uint64_t *)arg; return 0;
	case KVM_SET_TSS_ADDR: f->tss_addr = (uint64_t)(uintptr_t)arg; return 0;
	case KVM_ENABLE_CAP: {
		struct kvm_enable_cap *c = arg;
		if (c->cap == KVM_CAP_SPLIT_IRQCHIP) {
			for (int i = 0; i < FAKE_MAX_VCPUS; i++)
				if (f->vcpu[i].used)
					return fail(EINVAL);
			f->split_routes = c->args[0];
			return 0;
		}
		if (c->cap == KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) {
			f->manual_protect = c->args[0] & 1;
			return 0;
		}
		return fail(EINVAL);
	}
	case KVM_SET_USER_MEMORY_REGION: {
		struct kvm_userspace_memory_region *r = arg;
		if (r->slot >= 4)
			return fail(EINVAL);
		f->slots[r->slot] = *r;
		f->nslots_set++;
		return 0;
	}
	case KVM_CREATE_VCPU: return create_vcpu((long)arg);
	case KVM_SET_GSI_ROUTING: {
		struct kvm_irq_routing *rt = arg;
		if (rt->nr > 32)
			return fail(EINVAL);
		memcpy(f->routes, rt->entries, rt->nr * sizeof(rt->entries[0]));
		f->nroutes = (int)rt->nr;
		f->routing_calls++;
		return 0;
	}
	case KVM_SIGNAL_MSI:
		if (f->nmsis < 64)
			f->msis[f->nmsis++] = *(struct kvm_msi *)arg;
		return 1;
	case KVM_GET_DIRTY_LOG: {
		struct kvm_dirty_log *d = arg;
		if (d->slot >= 2 || !(f->slots[d->slot].flags & KVM_MEM_LOG_DIRTY_PAGES))
			return fail(ENOENT);
		uint64_t pages = f->slots[d->slot].memory_size / 4096;
		uint64_t words = (pages + 63) / 64;
		memcpy(d->dirty_bitmap, f->dirty[d->slot], (words < 64 ? words : 64) * 8);
		if (!f->manual_protect)
			memset(f->dirty[d->slot], 0, sizeof(f->dirty[d->slot]));
		return 0;
	}
	case KVM_CLEAR_DIRTY_LOG: {
		struct kvm_clear_dirty_log *c = arg;
		f->last_clear = *c;
		f->clears++;
		const uint64_t *b = c->dirty_bitmap;
		for (uint64_t i = 0; i < c->num_pages && (c->first_page + i) / 64 < 64; i++)
			if (b[i / 64] >> (i % 64) & 1)
				f->dirty[c->slot][(c->first_page + i) / 64] &= ~(1ULL << ((c->first_page + i) % 64));
		return 0;
	}
	default:
		return fail(ENOTTY);
	}
}

static int msrs_ioctl(struct fake_vcpu *v, struct kvm_msrs *m, bool set)
{
	uint32_t i;
	for (i = 0; i < m->nmsrs; i++) {
		if (!msr_known(m->entries[i].index))
			break;
		uint64_t *slot = msr_slot(v, m->entries[i].index);
		if (!slot)
			break;
		if (set)
			*slot = m->entries[i].data;
		else
			m->entries[i].data = *slot;
	}
	return (int)i;
}

static int run_ioctl(struct fake_vcpu *v)
{
	struct kvm_run *run = v->run;
	if (!run)
		return fail(EINVAL);
	v->runs++;
	/* Completion of the previous exit: what the engine left behind. */
	if (run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_IN)
		memcpy(v->last_in, (uint8_t *)run + run->io.data_offset, 16);
	if (run->exit_reason == KVM_EXIT_MMIO && !run->mmio.is_write)
		memcpy(v->last_in, run->mmio.data, 8);
	if (run->request_interrupt_window)
		v->saw_window_request = true;
	if (__atomic_load_n(&run->immediate_exit, __ATOMIC_SEQ_CST)) {
		v->eintr++;
		run->exit_reason = KVM_EXIT_INTR;
		return fail(EINTR);
	}
	struct fake_exit x = { .reason = KVM_EXIT_SHUTDOWN };
	if (v->pos < v->nscript)
		x = v->script[v->pos++];
	else if (v->repeat_last && v->nscript)
		x = v->script[v->nscript - 1];
	if (x.reason == 0) {                 /* a spinning guest: let time pass */
		usleep(1000);
		run->exit_reason = KVM_EXIT_INTR;
		return fail(EINTR);
	}
	run->exit_reason = x.reason;
	run->ready_for_interrupt_injection = x.ready;
	switch (x.reason) {
	case KVM_EXIT_IO:
		run->io.direction = x.dir;
		run->io.size = x.size;
		run->io.port = x.port;
		run->io.count = x.count;
		run->io.data_offset = 4096;
		memcpy((uint8_t *)run + 4096, x.data, 16);
		break;
	case KVM_EXIT_MMIO:
		run->mmio.phys_addr = x.addr;
		run->mmio.len = x.len;
		run->mmio.is_write = x.is_write;
		memcpy(run->mmio.data, x.data, 8);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		run->internal.suberror = x.sub;
		run->internal.ndata = 1;
		run->internal.data[0] = 0xabc;
		break;
	case KVM_EXIT_IOAPIC_EOI:
		run->eoi.vector = (uint8_t)x.sub;
		break;
	default:
		break;
	}
	return 0;
}

static int vcpu_ioctl(struct fake_vcpu *v, unsigned long req, void *arg)
{
	switch (req) {
	case KVM_SET_CPUID2: {
		struct kvm_cpuid2 *c = arg;
		if (c->nent > 64)
			return fail(E2BIG);
		memcpy(v->cpuid, c->entries, c->nent * sizeof(c->entries[0]));
		v->ncpuid = (int)c->nent;
		return 0;
	}
	case KVM_GET_TSC_KHZ: return fake_kvm.tsc_khz ? (int)fake_kvm.tsc_khz : 2000000;
	case KVM_GET_REGS: *(struct kvm_regs *)arg = v->regs; return 0;
	case KVM_SET_REGS: v->regs = *(struct kvm_regs *)arg; note("REGS"); return 0;
	case KVM_GET_SREGS: *(struct kvm_sregs *)arg = v->sregs; return 0;
	case KVM_SET_SREGS: v->sregs = *(struct kvm_sregs *)arg; note("SREGS"); return 0;
	case KVM_GET_XSAVE: memcpy(arg, v->xsave, 4096); return 0;
	case KVM_SET_XSAVE: memcpy(v->xsave, arg, 4096); note("XSAVE"); return 0;
	case KVM_GET_XCRS: {
		struct kvm_xcrs *x = arg;
		memset(x, 0, sizeof(*x));
		x->nr_xcrs = 1;
		x->xcrs[0].value = v->xcr0;
		return 0;
	}
	case KVM_SET_XCRS: {
		struct kvm_xcrs *x = arg;
		if (x->nr_xcrs != 1 || x->xcrs[0].xcr != 0 || !(x->xcrs[0].value & 1))
			return fail(EINVAL);
		v->xcr0 = x->xcrs[0].value;
		note("XCRS");
		return 0;
	}
	case KVM_GET_DEBUGREGS: *(struct kvm_debugregs *)arg = v->dr; return 0;
	case KVM_SET_DEBUGREGS: v->dr = *(struct kvm_debugregs *)arg; note("DEBUGREGS"); return 0;
	case KVM_GET_VCPU_EVENTS: *(struct kvm_vcpu_events *)arg = v->ev; return 0;
	case KVM_SET_VCPU_EVENTS: v->ev = *(struct kvm_vcpu_events *)arg; note("EVENTS"); return 0;
	case KVM_GET_MP_STATE: ((struct kvm_mp_state *)arg)->mp_state = v->mp; return 0;
	case KVM_SET_MP_STATE: v->mp = ((struct kvm_mp_state *)arg)->mp_state; note("MP"); return 0;
	case KVM_GET_LAPIC: *(struct kvm_lapic_state *)arg = v->lapic; return 0;
	case KVM_SET_LAPIC: v->lapic = *(struct kvm_lapic_state *)arg; note("LAPIC"); return 0;
	case KVM_GET_MSRS: return msrs_ioctl(v, arg, false);
	case KVM_SET_MSRS: {
		struct kvm_msrs *m = arg;
		char what[32];
		snprintf(what, sizeof(what), "MSRS%s", m->nmsrs == 1 && m->entries[0].index == 0x6e0 ? ":DEADLINE" : "");
		note(what);
		return msrs_ioctl(v, m, true);
	}
	case KVM_INTERRUPT:
		if (v->ninterrupts < 8)
			v->interrupts[v->ninterrupts++] = (int)((struct kvm_interrupt *)arg)->irq;
		return 0;
	case KVM_RUN: return run_ioctl(v);
	default:
		return fail(ENOTTY);
	}
}

int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (fake_kvm.on) {
		if (fd == fake_kvm.kvm_fd)
			return system_ioctl(req, arg);
		if (fd == fake_kvm.vm_fd)
			return vm_ioctl(req, arg);
		struct fake_vcpu *v = vcpu_of(fd);
		if (v)
			return vcpu_ioctl(v, req, arg);
	}
	return (int)syscall(SYS_ioctl, fd, req, arg);
}
