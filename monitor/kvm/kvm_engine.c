/* The KVM engine's life cycle and ops table: probing /dev/kvm, creating
 * the VM (memory slots, TSS and identity-map pages, split irqchip, MSI
 * sink, manual dirty-log protection) and its vCPUs (kvm_run mapping, the
 * CPUID model, TSC frequency, the reset state), and tearing it down.
 * Layout and interrupt design: kvm_int.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include "monitor/guest_mem.h"
#include "monitor/irq.h"
#include "monitor/kvm/kvm_int.h"

int kvm_ioctl(int fd, unsigned long req, void *arg)
{
	int r;
	do
		r = ioctl(fd, req, arg);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

struct cap_need { int cap; const char *why; };

/* Every capability the engine cannot do without, with the reason shown
 * when it is missing. */
static const struct cap_need needed_caps[] = {
	{ KVM_CAP_USER_MEMORY, "KVM lacks KVM_CAP_USER_MEMORY (user memory slots)" },
	{ KVM_CAP_SET_TSS_ADDR, "KVM lacks KVM_CAP_SET_TSS_ADDR" },
	{ KVM_CAP_SET_IDENTITY_MAP_ADDR, "KVM lacks KVM_CAP_SET_IDENTITY_MAP_ADDR" },
	{ KVM_CAP_EXT_CPUID, "KVM lacks KVM_CAP_EXT_CPUID (KVM_GET_SUPPORTED_CPUID)" },
	{ KVM_CAP_SPLIT_IRQCHIP, "KVM lacks KVM_CAP_SPLIT_IRQCHIP (needs Linux 4.6 or later)" },
	{ KVM_CAP_IRQ_ROUTING, "KVM lacks KVM_CAP_IRQ_ROUTING" },
	{ KVM_CAP_SIGNAL_MSI, "KVM lacks KVM_CAP_SIGNAL_MSI" },
	{ KVM_CAP_VCPU_EVENTS, "KVM lacks KVM_CAP_VCPU_EVENTS (interrupt/exception state)" },
	{ KVM_CAP_MP_STATE, "KVM lacks KVM_CAP_MP_STATE" },
	{ KVM_CAP_IMMEDIATE_EXIT, "KVM lacks KVM_CAP_IMMEDIATE_EXIT (needs Linux 4.11 or later)" },
};

static int open_kvm(const char **why)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT || e == ENODEV || e == ENXIO)
			*why = "no /dev/kvm access: /dev/kvm absent (load kvm-intel or kvm-amd, or use --engine bt)";
		else if (e == EACCES || e == EPERM)
			*why = "no /dev/kvm access: permission denied (add your user to the kvm group, or use --engine bt)";
		else
			*why = "no /dev/kvm access: cannot open /dev/kvm";
		return -e;
	}
	int v = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (v != KVM_API_VERSION) {
		close(fd);
		*why = "/dev/kvm does not speak KVM API version 12";
		return -ENOTSUP;
	}
	return fd;
}

static int check_caps(int fd, const char **why)
{
	for (size_t i = 0; i < sizeof(needed_caps) / sizeof(needed_caps[0]); i++)
		if (ioctl(fd, KVM_CHECK_EXTENSION, needed_caps[i].cap) <= 0) {
			*why = needed_caps[i].why;
			return -ENOTSUP;
		}
	return 0;
}

static int kvm_probe(const char **why)
{
	int fd = open_kvm(why);
	if (fd < 0)
		return fd;
	int r = check_caps(fd, why);
	close(fd);
	return r;
}

/* Records a one-line reason for a failed create in vm->error. */
__attribute__((format(printf, 3, 4)))
static int fail(struct kvm_engine *k, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(k->vm->error, sizeof(k->vm->error), fmt, ap);
	va_end(ap);
	return err;
}

static struct kvm_cpuid2 *supported_cpuid(int kvm_fd, int *ret)
{
	for (uint32_t n = 128; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));
		if (!c) {
			*ret = -ENOMEM;
			return NULL;
		}
		c->nent = n;
		int r = kvm_ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c);
		if (r >= 0)
			return c;
		free(c);
		if (r != -E2BIG) {
			*ret = r;
			return NULL;
		}
	}
	*ret = -E2BIG;
	return NULL;
}

static int create_vm(struct kvm_engine *k)
{
	int r;
	k->vm_fd = kvm_ioctl(k->kvm_fd, KVM_CREATE_VM, 0);
	if (k->vm_fd < 0)
		return fail(k, k->vm_fd, "KVM_CREATE_VM failed: %s", strerror(-k->vm_fd));

	/* Only VMX without unrestricted guest uses these pages (real mode);
	 * SVM and PVM ignore them, so a failure matters only with vmx. */
	bool vmx = host_cpu_has("vmx");
	uint64_t ident = KVM_IDENTITY_MAP_ADDR;
	if ((r = kvm_ioctl(k->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &ident)) < 0 && vmx)
		return fail(k, r, "KVM_SET_IDENTITY_MAP_ADDR failed: %s", strerror(-r));
	if ((r = kvm_ioctl(k->vm_fd, KVM_SET_TSS_ADDR, (void *)(uintptr_t)KVM_TSS_ADDR)) < 0 && vmx)
		return fail(k, r, "KVM_SET_TSS_ADDR failed: %s", strerror(-r));

	struct kvm_enable_cap cap = { .cap = KVM_CAP_SPLIT_IRQCHIP, .args = { KVM_IOAPIC_ROUTES } };
	if ((r = kvm_ioctl(k->vm_fd, KVM_ENABLE_CAP, &cap)) < 0)
		return fail(k, r, "enabling KVM split irqchip failed: %s", strerror(-r));

	int mp = ioctl(k->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
	if (mp > 0 && (mp & KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE)) {
		struct kvm_enable_cap c2 = { .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
					     .args = { KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE } };
		k->manual_protect = kvm_ioctl(k->vm_fd, KVM_ENABLE_CAP, &c2) == 0;
	}

	struct gmem_region reg[2];
	int n = gmem_regions(k->vm->mem, reg);
	uint64_t off = 0;
	for (int i = 0; i < n; i++) {
		k->slots[i] = (struct kvm_slot){ .slot = (uint32_t)i, .gpa = reg[i].gpa,
						 .size = reg[i].size, .ram_off = off };
		off += reg[i].size;
	}
	k->nslots = n;
	if ((r = kvm_set_slots(k, false)) < 0)
		return fail(k, r, "registering guest RAM with KVM failed: %s", strerror(-r));
	return 0;
}

/* TSC rate at creation: the VM's (vm->tsc_khz, the same for every engine)
 * where KVM can scale to it; otherwise the host's, recorded in the VM so
 * what is saved is what the guest saw. */
static void setup_tsc(struct kvm_engine *k, struct kvm_vcpu_ctx *v)
{
	int khz = ioctl(v->fd, KVM_GET_TSC_KHZ, 0);
	if (khz <= 0)
		return;
	if (kvm_apply_tsc_khz(k, v->fd) < 0)
		k->vm->tsc_khz = (uint64_t)khz;
}

static int setup_cpuid(struct kvm_engine *k, struct kvm_vcpu_ctx *v, const struct kvm_cpuid2 *sup)
{
	int max = (int)sup->nent + 8;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + (size_t)max * sizeof(struct kvm_cpuid_entry2));
	if (!c)
		return -ENOMEM;
	struct kvm_cpuid_opts o = { .cpu = v->index, .ncpus = k->ncpus,
				    .tsc_deadline = k->has_tsc_deadline,
				    .portable = k->vm->cfg.portable_cpu };
	int n = kvm_cpuid_model(sup->entries, (int)sup->nent, &o, c->entries, max);
	int r = n;
	if (n >= 0) {
		c->nent = (uint32_t)n;
		r = kvm_ioctl(v->fd, KVM_SET_CPUID2, c);
	}
	free(c);
	if (r < 0)
		return fail(k, r, "setting vCPU %d's CPUID failed: %s", v->index, strerror(-r));
	return 0;
}

/* The architectural reset state, with KVM's own LAPIC page (it carries
 * the APIC ID). */
static int reset_vcpu(struct kvm_engine *k, struct kvm_vcpu_ctx *v)
{
	struct cpu_state *st = malloc(sizeof(*st));
	if (!st)
		return -ENOMEM;
	cpu_state_reset(st, v->index == 0);
	struct kvm_lapic_state lapic;
	int r = kvm_ioctl(v->fd, KVM_GET_LAPIC, &lapic);
	if (r >= 0) {
		memcpy(st->lapic, lapic.regs, CPU_LAPIC_SIZE);
		uint64_t misc;
		if (cpu_state_msr(st, MSR_IA32_MISC_ENABLE, &misc) < 0)
			r = cpu_state_set_msr(st, MSR_IA32_MISC_ENABLE, 1);  /* fast strings */
		if (r >= 0)
			r = cpu_state_set_msr(st, MSR_IA32_APIC_BASE,
					      LAPIC_BASE | (1u << 11) | (v->index == 0 ? 1u << 8 : 0));
	}
	if (r >= 0)
		r = kvm_set_state((struct engine *)k, v->index, st);
	free(st);
	if (r < 0)
		return fail(k, r, "setting vCPU %d's reset state failed: %s", v->index, strerror(-r));
	return 0;
}

static int create_vcpu(struct kvm_engine *k, int i, const struct kvm_cpuid2 *sup)
{
	struct kvm_vcpu_ctx *v = &k->cpu[i];
	int r;
	v->index = i;
	v->fd = kvm_ioctl(k->vm_fd, KVM_CREATE_VCPU, (void *)(uintptr_t)i);
	if (v->fd < 0)
		return fail(k, v->fd, "KVM_CREATE_VCPU %d failed: %s", i, strerror(-v->fd));
	v->run_size = k->run_size;
	void *p = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (p == MAP_FAILED)
		return fail(k, -errno, "mapping vCPU %d's kvm_run failed: %s", i, strerror(errno));
	v->run = p;
	if ((r = setup_cpuid(k, v, sup)) < 0)
		return r;
	setup_tsc(k, v);
	if (i == 0 && (r = kvm_select_msrs(k, v->fd)) < 0)
		return fail(k, r, "listing KVM's MSRs failed: %s", strerror(-r));
	return 0;
}

static void kvm_destroy(struct engine *e)
{
	struct kvm_engine *k = kvm_of(e);
	if (!k)
		return;
	if (k->vm->irq)
		irqchip_set_msi_sink(k->vm->irq, NULL, NULL);
	for (int i = 0; i < VM_MAX_CPUS; i++) {
		struct kvm_vcpu_ctx *v = &k->cpu[i];
		if (v->run)
			munmap(v->run, v->run_size);
		if (v->fd >= 0)
			close(v->fd);
		pthread_mutex_destroy(&v->kick_lock);
	}
	for (int i = 0; i < k->nslots; i++)
		free(k->slots[i].bitmap);
	if (k->vm_fd >= 0)
		close(k->vm_fd);
	if (k->kvm_fd >= 0)
		close(k->kvm_fd);
	pthread_mutex_destroy(&k->route_lock);
	free(k);
}

static int kvm_create(struct vm *vm, struct engine **ret)
{
	if (vm->ncpus < 1 || vm->ncpus > VM_MAX_CPUS)
		return -EINVAL;
	struct kvm_engine *k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->vm = vm;
	k->ncpus = vm->ncpus;
	k->vm_fd = -1;
	pthread_mutex_init(&k->route_lock, NULL);
	for (int i = 0; i < VM_MAX_CPUS; i++) {
		k->cpu[i].fd = -1;
		pthread_mutex_init(&k->cpu[i].kick_lock, NULL);
	}

	const char *why = NULL;
	int r;
	struct kvm_cpuid2 *sup = NULL;
	k->kvm_fd = open_kvm(&why);
	if (k->kvm_fd < 0) {
		r = fail(k, k->kvm_fd, "%s", why);
		goto err;
	}
	if ((r = check_caps(k->kvm_fd, &why)) < 0) {
		fail(k, r, "%s", why);
		goto err;
	}
	int maxv = ioctl(k->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (maxv <= 0)
		maxv = ioctl(k->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (maxv > 0 && maxv < k->ncpus) {
		r = fail(k, -EINVAL, "KVM allows only %d vCPUs on this host", maxv);
		goto err;
	}
	k->has_xsave = ioctl(k->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0;
	k->has_xcrs = ioctl(k->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0;
	k->has_debugregs = ioctl(k->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_DEBUGREGS) > 0;
	k->has_tsc_control = ioctl(k->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_CONTROL) > 0;
	k->has_tsc_deadline = ioctl(k->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0;
	int rs = ioctl(k->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (rs < (int)sizeof(struct kvm_run)) {
		r = fail(k, rs < 0 ? -errno : -EIO, "KVM_GET_VCPU_MMAP_SIZE failed");
		goto err;
	}
	k->run_size = (size_t)rs;
	if ((r = kvm_install_kick_handler()) < 0) {
		fail(k, r, "installing the vCPU kick signal handler failed: %s", strerror(-r));
		goto err;
	}
	if (!(sup = supported_cpuid(k->kvm_fd, &r))) {
		fail(k, r, "KVM_GET_SUPPORTED_CPUID failed: %s", strerror(-r));
		goto err;
	}
	if ((r = create_vm(k)) < 0)
		goto err;
	for (int i = 0; i < k->ncpus; i++)
		if ((r = create_vcpu(k, i, sup)) < 0)
			goto err;
	for (int i = 0; i < k->ncpus; i++)
		if ((r = reset_vcpu(k, &k->cpu[i])) < 0)
			goto err;
	free(sup);
	if (vm->irq)
		irqchip_set_msi_sink(vm->irq, kvm_msi_sink, k);
	*ret = (struct engine *)k;
	return 0;
err:
	free(sup);
	kvm_destroy((struct engine *)k);
	return r;
}

const struct engine_ops kvm_engine_ops = {
	.name = "kvm",
	.one_thread = false,
	.probe = kvm_probe,
	.create = kvm_create,
	.destroy = kvm_destroy,
	.run = kvm_run_vcpu,
	.kick = kvm_kick,
	.get_state = kvm_get_state,
	.set_state = kvm_set_state,
	.irq_line = kvm_irq_line,
	.msi = kvm_msi,
	.dirty_log = kvm_dirty_log,
	.dirty_log_start = kvm_dirty_log_start,
};
