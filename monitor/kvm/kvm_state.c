/* Canonical vCPU state under KVM: get_state/set_state convert between
 * struct cpu_state and the vCPU ioctls (regs, sregs, debug registers,
 * XSAVE or legacy FPU, XCR0, MSRs, events, MP state, LAPIC page), and the
 * choice of MSRs the engine transfers.
 *
 * set_state order: sregs (CR0/CR4/EFER/segments, APIC base) before the
 * MSRs; the TSC rate before the TSC; XSAVE before XCR0; APIC base before the LAPIC page; the LAPIC
 * before the TSC-deadline MSR (KVM_SET_LAPIC restarts the timer); events
 * last, once nothing else can reset them. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include "monitor/kvm/kvm_int.h"

/* MSRs in the canonical state (cpu_state.h); transferred when KVM can
 * read them. EFER, FS_BASE and GS_BASE duplicate sregs: reported on get,
 * ignored on set (the segments are authoritative). */
static const uint32_t canonical_msrs[] = {
	MSR_IA32_TSC, MSR_IA32_APIC_BASE, MSR_IA32_MISC_ENABLE,
	MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP, MSR_IA32_SYSENTER_EIP,
	MSR_IA32_PAT, MSR_IA32_TSC_DEADLINE, MSR_EFER, MSR_STAR, MSR_LSTAR,
	MSR_CSTAR, MSR_SFMASK, MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE,
	MSR_TSC_AUX, MSR_KVM_WALL_CLOCK_NEW, MSR_KVM_SYSTEM_TIME_NEW,
};

/* Further guest-visible MSRs a Linux guest writes under this CPU model,
 * transferred when KVM lists them (KVM_GET_MSR_INDEX_LIST): SPEC_CTRL,
 * TSC_ADJUST, XSS. */
static const uint32_t listed_msrs[] = { 0x48, 0x3b, 0xda0 };
/* The MTRRs (default type, fixed ranges, 8 variable pairs): KVM does not
 * list them but holds them per vCPU; transferred when readable. */
static const uint32_t mtrr_msrs[] = {
	0x2ff, 0x250, 0x258, 0x259, 0x268, 0x269, 0x26a, 0x26b, 0x26c, 0x26d, 0x26e, 0x26f,
	0x200, 0x201, 0x202, 0x203, 0x204, 0x205, 0x206, 0x207,
	0x208, 0x209, 0x20a, 0x20b, 0x20c, 0x20d, 0x20e, 0x20f,
};

/* struct kvm_msrs with room for the entries (same layout). */
struct msr_buf {
	uint32_t nmsrs, pad;
	struct kvm_msr_entry e[KVM_MAX_SAVED_MSRS];
};
_Static_assert(offsetof(struct kvm_msrs, entries) == offsetof(struct msr_buf, e),
	       "msr_buf matches struct kvm_msrs");

static int msr_readable(int vcpu_fd, uint32_t index)
{
	struct msr_buf b;
	memset(&b, 0, sizeof(b));
	b.nmsrs = 1;
	b.e[0].index = index;
	return kvm_ioctl(vcpu_fd, KVM_GET_MSRS, &b) == 1;
}

static struct kvm_msr_list *msr_index_list(int kvm_fd)
{
	struct kvm_msr_list probe = { .nmsrs = 0 };
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return NULL;
	struct kvm_msr_list *l = calloc(1, sizeof(*l) + probe.nmsrs * sizeof(uint32_t));
	if (!l)
		return NULL;
	l->nmsrs = probe.nmsrs;
	if (kvm_ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		free(l);
		return NULL;
	}
	return l;
}

int kvm_select_msrs(struct kvm_engine *k, int vcpu_fd)
{
	k->nmsrs = 0;
	for (size_t i = 0; i < sizeof(canonical_msrs) / sizeof(canonical_msrs[0]); i++)
		if (msr_readable(vcpu_fd, canonical_msrs[i]) && k->nmsrs < KVM_MAX_SAVED_MSRS)
			k->msrs[k->nmsrs++] = canonical_msrs[i];
	struct kvm_msr_list *l = msr_index_list(k->kvm_fd);
	if (!l)
		return errno ? -errno : -EIO;
	for (size_t i = 0; i < sizeof(listed_msrs) / sizeof(listed_msrs[0]); i++) {
		bool listed = false;
		for (uint32_t j = 0; j < l->nmsrs && !listed; j++)
			listed = l->indices[j] == listed_msrs[i];
		if (listed && msr_readable(vcpu_fd, listed_msrs[i]) && k->nmsrs < KVM_MAX_SAVED_MSRS)
			k->msrs[k->nmsrs++] = listed_msrs[i];
	}
	free(l);
	for (size_t i = 0; i < sizeof(mtrr_msrs) / sizeof(mtrr_msrs[0]); i++)
		if (msr_readable(vcpu_fd, mtrr_msrs[i]) && k->nmsrs < KVM_MAX_SAVED_MSRS)
			k->msrs[k->nmsrs++] = mtrr_msrs[i];
	return 0;
}

int kvm_apply_tsc_khz(struct kvm_engine *k, int vcpu_fd)
{
	uint64_t want = k->vm->tsc_khz;
	int khz = ioctl(vcpu_fd, KVM_GET_TSC_KHZ, 0);
	if (khz <= 0 || !want)
		return -ENOTSUP;
	uint64_t diff = want > (uint64_t)khz ? want - (uint64_t)khz : (uint64_t)khz - want;
	if (diff * 1000000 <= want * 250)
		return 0;               /* within KVM's own tolerance */
	if (!k->has_tsc_control || want > 0xffffffffULL)
		return -ENOTSUP;
	int r = kvm_ioctl(vcpu_fd, KVM_SET_TSC_KHZ, (void *)(uintptr_t)want);
	return r < 0 ? r : 0;
}

static bool selected(const struct kvm_engine *k, uint32_t index)
{
	for (uint32_t i = 0; i < k->nmsrs; i++)
		if (k->msrs[i] == index)
			return true;
	return false;
}

static int get_msrs(struct kvm_engine *k, int fd, struct cpu_state *st)
{
	struct msr_buf b;
	memset(&b, 0, sizeof(b));
	b.nmsrs = k->nmsrs;
	for (uint32_t i = 0; i < k->nmsrs; i++)
		b.e[i].index = k->msrs[i];
	int r = kvm_ioctl(fd, KVM_GET_MSRS, &b);
	if (r < 0)
		return r;
	if ((uint32_t)r != k->nmsrs)
		return -EIO;
	st->nmsrs = 0;
	for (uint32_t i = 0; i < k->nmsrs; i++)
		if ((r = cpu_state_set_msr(st, b.e[i].index, b.e[i].data)) < 0)
			return r;
	return 0;
}

/* Sets the state's MSRs that this engine transfers: the TSC deadline
 * alone (deadline_only) or all the others. EFER and the FS/GS bases come
 * from sregs. -EINVAL when KVM refuses a value. */
static int set_msrs(struct kvm_engine *k, int fd, const struct cpu_state *st, bool deadline_only)
{
	struct msr_buf b;
	memset(&b, 0, sizeof(b));
	uint32_t n = 0;
	for (uint32_t i = 0; i < st->nmsrs && i < CPU_MAX_MSRS; i++) {
		uint32_t idx = st->msrs[i].index;
		bool is_deadline = idx == MSR_IA32_TSC_DEADLINE;
		if (is_deadline != deadline_only || !selected(k, idx))
			continue;
		if (idx == MSR_EFER || idx == MSR_FS_BASE || idx == MSR_GS_BASE)
			continue;
		/* Writing the wall-clock MSR makes KVM write the clock into
		 * guest memory at that address; 0 means the guest never set it. */
		if (idx == MSR_KVM_WALL_CLOCK_NEW && st->msrs[i].value == 0)
			continue;
		b.e[n].index = idx;
		b.e[n].data = st->msrs[i].value;
		n++;
	}
	if (!n)
		return 0;
	b.nmsrs = n;
	int r = kvm_ioctl(fd, KVM_SET_MSRS, &b);
	if (r < 0)
		return r;
	return (uint32_t)r == n ? 0 : -EINVAL;
}

static int get_fp(struct kvm_engine *k, int fd, struct cpu_state *st)
{
	int r;
	if (k->has_xsave) {
		struct kvm_xsave *x = calloc(1, sizeof(*x));
		if (!x)
			return -ENOMEM;
		r = kvm_ioctl(fd, KVM_GET_XSAVE, x);
		if (r >= 0) {
			_Static_assert(sizeof(x->region) == CPU_XSAVE_MAX, "KVM XSAVE area is 4 KiB");
			memcpy(st->xsave, x->region, CPU_XSAVE_MAX);
			st->xsave_size = CPU_XSAVE_MAX;
		}
		free(x);
		if (r < 0)
			return r;
	} else {
		struct kvm_fpu f;
		if ((r = kvm_ioctl(fd, KVM_GET_FPU, &f)) < 0)
			return r;
		kvm_fpu_to_fxsave(&f, st->xsave);
		memset(st->xsave + 512, 0, 64);
		st->xsave[512] = 3;              /* XSTATE_BV: x87 | SSE */
		st->xsave_size = 512 + 64;
	}
	st->xcr0 = 1;
	if (k->has_xcrs) {
		struct kvm_xcrs xc;
		memset(&xc, 0, sizeof(xc));
		if ((r = kvm_ioctl(fd, KVM_GET_XCRS, &xc)) < 0)
			return r;
		for (uint32_t i = 0; i < xc.nr_xcrs && i < KVM_MAX_XCRS; i++)
			if (xc.xcrs[i].xcr == 0)
				st->xcr0 = xc.xcrs[i].value;
	}
	return 0;
}

static int set_fp(struct kvm_engine *k, int fd, const struct cpu_state *st)
{
	int r;
	if (st->xsave_size < 512 || st->xsave_size > CPU_XSAVE_MAX)
		return -EINVAL;
	if (k->has_xsave) {
		struct kvm_xsave *x = calloc(1, sizeof(*x));
		if (!x)
			return -ENOMEM;
		memcpy(x->region, st->xsave, st->xsave_size);
		if (st->xsave_size < 512 + 64)
			((uint8_t *)x->region)[512] = 3;   /* bare FXSAVE image */
		r = kvm_ioctl(fd, KVM_SET_XSAVE, x);
		free(x);
		if (r < 0)
			return r;
	} else {
		struct kvm_fpu f;
		kvm_fpu_from_fxsave(st->xsave, &f);
		if ((r = kvm_ioctl(fd, KVM_SET_FPU, &f)) < 0)
			return r;
	}
	if (k->has_xcrs) {
		struct kvm_xcrs xc;
		memset(&xc, 0, sizeof(xc));
		xc.nr_xcrs = 1;
		xc.xcrs[0].xcr = 0;
		xc.xcrs[0].value = st->xcr0 ? st->xcr0 : 1;
		if ((r = kvm_ioctl(fd, KVM_SET_XCRS, &xc)) < 0)
			return r;
	} else if (st->xcr0 & ~3ULL) {
		return -EINVAL;
	}
	return 0;
}

int kvm_get_state(struct engine *e, int cpu, struct cpu_state *st)
{
	struct kvm_engine *k = kvm_of(e);
	if (cpu < 0 || cpu >= k->ncpus)
		return -EINVAL;
	int fd = k->cpu[cpu].fd, r;
	memset(st, 0, sizeof(*st));

	struct kvm_regs regs;
	if ((r = kvm_ioctl(fd, KVM_GET_REGS, &regs)) < 0)
		return r;
	kvm_regs_to_cpu(&regs, st);

	struct kvm_sregs sregs;
	if ((r = kvm_ioctl(fd, KVM_GET_SREGS, &sregs)) < 0)
		return r;
	kvm_sregs_to_cpu(&sregs, st);

	if (k->has_debugregs) {
		struct kvm_debugregs dr;
		if ((r = kvm_ioctl(fd, KVM_GET_DEBUGREGS, &dr)) < 0)
			return r;
		for (int i = 0; i < 4; i++)
			st->dr[i] = dr.db[i];
		st->dr[6] = dr.dr6;
		st->dr[7] = dr.dr7;
	} else {
		st->dr[6] = 0xffff0ff0;
		st->dr[7] = 0x400;
	}

	if ((r = get_fp(k, fd, st)) < 0)
		return r;
	if ((r = get_msrs(k, fd, st)) < 0)
		return r;

	struct kvm_vcpu_events ev;
	memset(&ev, 0, sizeof(ev));
	if ((r = kvm_ioctl(fd, KVM_GET_VCPU_EVENTS, &ev)) < 0)
		return r;
	kvm_events_to_cpu(&ev, st);

	struct kvm_mp_state mp;
	if ((r = kvm_ioctl(fd, KVM_GET_MP_STATE, &mp)) < 0)
		return r;
	if ((r = kvm_mp_to_cpu(mp.mp_state, &st->mp_state)) < 0)
		return r;

	struct kvm_lapic_state lapic;
	if ((r = kvm_ioctl(fd, KVM_GET_LAPIC, &lapic)) < 0)
		return r;
	_Static_assert(sizeof(lapic.regs) == CPU_LAPIC_SIZE, "LAPIC page is 1 KiB");
	memcpy(st->lapic, lapic.regs, CPU_LAPIC_SIZE);
	return 0;
}

int kvm_set_state(struct engine *e, int cpu, const struct cpu_state *st)
{
	struct kvm_engine *k = kvm_of(e);
	if (cpu < 0 || cpu >= k->ncpus || st->nmsrs > CPU_MAX_MSRS)
		return -EINVAL;
	int fd = k->cpu[cpu].fd, r;

	/* Checks that need no ioctl come first, so these bad states leave
	 * the vCPU untouched (KVM validates the rest as it goes). */
	const struct cpu_events *c = &st->ev;
	if ((c->exc_pending || c->exc_injected) && (c->exc_vector > 31 || c->exc_vector == 2))
		return -EINVAL;
	struct kvm_mp_state mp;
	if ((r = kvm_mp_from_cpu(st->mp_state, &mp.mp_state)) < 0)
		return r;
	if (st->xsave_size < 512 || st->xsave_size > CPU_XSAVE_MAX)
		return -EINVAL;

	struct kvm_sregs sregs;
	if ((r = kvm_ioctl(fd, KVM_GET_SREGS, &sregs)) < 0)
		return r;
	kvm_sregs_from_cpu(st, &sregs);
	uint64_t apic_base;
	if (cpu_state_msr(st, MSR_IA32_APIC_BASE, &apic_base) == 0)
		sregs.apic_base = apic_base;
	memset(sregs.interrupt_bitmap, 0, sizeof(sregs.interrupt_bitmap));
	if ((r = kvm_ioctl(fd, KVM_SET_SREGS, &sregs)) < 0)
		return r;

	struct kvm_regs regs;
	kvm_regs_from_cpu(st, &regs);
	if ((r = kvm_ioctl(fd, KVM_SET_REGS, &regs)) < 0)
		return r;

	if ((r = set_fp(k, fd, st)) < 0)
		return r;
	/* A restored VM's TSC rate (vm->tsc_khz, set before this call) where
	 * KVM can scale; before the TSC value itself. Without scaling the
	 * guest sees the host's rate, as kvmclock tells it. */
	(void)kvm_apply_tsc_khz(k, fd);
	if ((r = set_msrs(k, fd, st, false)) < 0)
		return r;

	if ((r = kvm_ioctl(fd, KVM_SET_MP_STATE, &mp)) < 0)
		return r;

	struct kvm_lapic_state lapic;
	memcpy(lapic.regs, st->lapic, CPU_LAPIC_SIZE);
	if ((r = kvm_ioctl(fd, KVM_SET_LAPIC, &lapic)) < 0)
		return r;
	if ((r = kvm_level_routes_from_lapic(k, st->lapic)) < 0)
		return r;
	if ((r = set_msrs(k, fd, st, true)) < 0)
		return r;

	if (k->has_debugregs) {
		struct kvm_debugregs dr;
		memset(&dr, 0, sizeof(dr));
		for (int i = 0; i < 4; i++)
			dr.db[i] = st->dr[i];
		dr.dr6 = st->dr[6];
		dr.dr7 = st->dr[7];
		if ((r = kvm_ioctl(fd, KVM_SET_DEBUGREGS, &dr)) < 0)
			return r;
	}

	struct kvm_vcpu_events ev;
	kvm_events_from_cpu(st, &ev);
	r = kvm_ioctl(fd, KVM_SET_VCPU_EVENTS, &ev);
	return r < 0 ? r : 0;
}
