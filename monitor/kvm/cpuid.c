/* The guest CPU model under KVM: KVM_GET_SUPPORTED_CPUID filtered to
 * what roam can save, restore and move between hosts and engines.
 *
 * Starting from what KVM supports on this host, the model
 *  - sets the hypervisor bit (1.ECX[31]) and the APIC (1.EDX[9]);
 *  - describes one package with N cores, one thread each: APIC ID = vCPU
 *    index in 1.EBX[31:24], 0xB/0x1F (SMT level 1 thread, core level N),
 *    leaf 4 core/sharing counts, AMD 0x80000008.ECX; HTT when N > 1;
 *  - keeps only the XSAVE components whose standard-format state ends
 *    within CPU_XSAVE_MAX (4096) bytes, from the whitelist x87, SSE, AVX,
 *    MPX, AVX-512 (opmask, ZMM_Hi256, Hi16_ZMM) and PKRU; AMX never fits,
 *    so AMX and XFD are removed, and a dropped component drops the
 *    features that need it. No supervisor states (0xD.1 ECX/EDX = 0);
 *  - removes what the canonical state cannot carry or another engine or
 *    host cannot honour: VMX/SVM (no nested state), x2APIC (the userspace
 *    LAPIC model is xAPIC only), LA57, PMU (leaf 0xA, PDCM, AMD perfctr
 *    extensions), MONITOR/MWAIT, SGX, Intel PT, CET (SHSTK/IBT),
 *    WAITPKG, arch LBR, debug store and thermal features, AMD TOPOEXT and
 *    SEV; leaves 0x12, 0x14, 0x1D, 0x1E, 0x8000000A, 0x8000001D (cache
 *    topology, valid only with TOPOEXT), 0x8000001E, 0x8000001F, 0x80000022;
 *  - advertises TSC-deadline when KVM has KVM_CAP_TSC_DEADLINE_TIMER;
 *  - keeps the KVM signature leaf 0x40000000 and, in 0x40000001, only
 *    kvmclock with the new MSRs (CLOCKSOURCE2), NOP_IO_DELAY and the
 *    stable-clock bit: the MSRs of async PF, steal time, PV EOI and the
 *    other paravirt features are not in the canonical state.
 *
 * The portable model (vm_config.portable_cpu) further keeps only what the
 * BT engine implements (monitor/bt/cpuid.c), so the guest can be resumed
 * under BT: 1.EDX FPU DE PSE TSC MSR PAE CX8 APIC SEP PGE CMOV PAT PSE36
 * CLFSH MMX FXSR SSE SSE2 (+HTT for the topology), 1.ECX CX16 POPCNT
 * TSC-deadline hypervisor, 7.0.EBX ERMS, 7.0.EDX FSRM SPEC_CTRL
 * ARCH_CAPABILITIES, 0x80000001.EDX SYSCALL NX PDPE1GB RDTSCP LM,
 * 0x80000007.EDX invariant TSC; no XSAVE (leaf 0xD) and no paravirt
 * leaves. Vendor, family/model and address sizes stay the host's.
 */
#include <errno.h>
#include <string.h>
#include "monitor/kvm/kvm_int.h"

#define BIT(n) (1u << (n))

/* XCR0 components the model may keep. */
#define XCR0_X87    0
#define XCR0_SSE    1
#define XCR0_AVX    2
#define XCR0_BNDREG 3
#define XCR0_BNDCSR 4
#define XCR0_OPMASK 5
#define XCR0_ZMMH   6
#define XCR0_HIZMM  7
#define XCR0_PKRU   9
#define XCR0_KNOWN  ((1ULL << XCR0_X87) | (1ULL << XCR0_SSE) | (1ULL << XCR0_AVX) | \
		     (1ULL << XCR0_BNDREG) | (1ULL << XCR0_BNDCSR) | (1ULL << XCR0_OPMASK) | \
		     (1ULL << XCR0_ZMMH) | (1ULL << XCR0_HIZMM) | (1ULL << XCR0_PKRU))
#define XCR0_AVX512 ((1ULL << XCR0_OPMASK) | (1ULL << XCR0_ZMMH) | (1ULL << XCR0_HIZMM))
#define XCR0_MPX    ((1ULL << XCR0_BNDREG) | (1ULL << XCR0_BNDCSR))

#define KVM_FEATURE_CLOCKSOURCE2_BIT       3
#define KVM_FEATURE_NOP_IO_DELAY_BIT       1
#define KVM_FEATURE_CLOCKSOURCE_STABLE_BIT 24

static const struct kvm_cpuid_entry2 *find(const struct kvm_cpuid_entry2 *e, int n,
					   uint32_t fn, uint32_t idx)
{
	for (int i = 0; i < n; i++)
		if (e[i].function == fn && e[i].index == idx)
			return &e[i];
	return NULL;
}

uint32_t kvm_cpuid_xsave_size(const struct kvm_cpuid_entry2 *e, int n, uint64_t mask)
{
	uint32_t size = 512 + 64;
	for (unsigned c = 2; c < 64; c++) {
		if (!(mask & (1ULL << c)))
			continue;
		const struct kvm_cpuid_entry2 *d = find(e, n, 0xd, c);
		if (d && d->eax && (uint64_t)d->ebx + d->eax > size)
			size = d->ebx + d->eax;
	}
	return size;
}

/* XCR0 components kept: whitelisted, described by leaf 0xD, inside
 * CPU_XSAVE_MAX, and complete groups (AVX-512 needs AVX and all three of
 * its components; MPX both). */
static uint64_t kept_xcr0(const struct kvm_cpuid_entry2 *in, int nin)
{
	const struct kvm_cpuid_entry2 *d0 = find(in, nin, 0xd, 0);
	if (!d0)
		return 0;
	uint64_t mask = (d0->eax | (uint64_t)d0->edx << 32) & XCR0_KNOWN;
	for (unsigned c = 2; c < 64; c++) {
		if (!(mask & (1ULL << c)))
			continue;
		const struct kvm_cpuid_entry2 *d = find(in, nin, 0xd, c);
		if (!d || !d->eax || (uint64_t)d->ebx + d->eax > CPU_XSAVE_MAX)
			mask &= ~(1ULL << c);
	}
	if (!(mask & (1ULL << XCR0_AVX)) || (mask & XCR0_AVX512) != XCR0_AVX512)
		mask &= ~XCR0_AVX512;
	if ((mask & XCR0_MPX) != XCR0_MPX)
		mask &= ~XCR0_MPX;
	return mask;
}

static unsigned order(unsigned n)      /* ceil(log2(n)), n >= 1 */
{
	unsigned b = 0;
	while ((1u << b) < n)
		b++;
	return b;
}

static void leaf1(struct kvm_cpuid_entry2 *e, const struct kvm_cpuid_opts *o)
{
	e->ecx &= ~(BIT(2) | BIT(3) | BIT(4) | BIT(5) | BIT(6) | BIT(7) | BIT(8) |
		    BIT(14) | BIT(15) | BIT(21));
	e->ecx |= BIT(31);
	if (o->tsc_deadline)
		e->ecx |= BIT(24);
	else
		e->ecx &= ~BIT(24);
	e->edx &= ~(BIT(21) | BIT(22) | BIT(29) | BIT(31));
	e->edx |= BIT(9);
	unsigned ids = 1u << order((unsigned)o->ncpus);
	e->ebx = (e->ebx & 0xffff) | (ids & 0xff) << 16 | ((uint32_t)o->cpu & 0xff) << 24;
	if (o->ncpus > 1)
		e->edx |= BIT(28);
	else
		e->edx &= ~BIT(28);
}

static void leaf4(struct kvm_cpuid_entry2 *e, const struct kvm_cpuid_opts *o)
{
	if (!(e->eax & 0x1f))
		return;                 /* no more caches */
	unsigned ids = 1u << order((unsigned)o->ncpus);
	unsigned level = (e->eax >> 5) & 7;
	unsigned sharing = level >= 3 ? ids - 1 : 0;
	e->eax = (e->eax & 0x3fff) | (sharing & 0xfff) << 14 | ((ids - 1) & 0x3f) << 26;
}

static void leaf7(struct kvm_cpuid_entry2 *e, uint64_t xcr0)
{
	if (e->index == 0) {
		e->ebx &= ~(BIT(2) | BIT(25));           /* SGX, Intel PT */
		e->ecx &= ~(BIT(5) | BIT(7) | BIT(16) | BIT(29) | BIT(30) | BIT(31));
		e->edx &= ~(BIT(19) | BIT(20) | BIT(22) | BIT(24) | BIT(25));  /* LBR, IBT, AMX */
		if (!(xcr0 & XCR0_AVX512)) {
			e->ebx &= ~(BIT(16) | BIT(17) | BIT(21) | BIT(26) | BIT(27) | BIT(28) |
				    BIT(30) | BIT(31));
			e->ecx &= ~(BIT(1) | BIT(6) | BIT(11) | BIT(12) | BIT(14));
			e->edx &= ~(BIT(2) | BIT(3) | BIT(8) | BIT(23));
		}
		if (!(xcr0 & XCR0_MPX))
			e->ebx &= ~BIT(14);
		if (!(xcr0 & (1ULL << XCR0_PKRU)))
			e->ecx &= ~(BIT(3) | BIT(4));
		if (!(xcr0 & (1ULL << XCR0_AVX)))
			e->ebx &= ~BIT(5);                /* AVX2 */
	} else if (e->index == 1) {
		e->eax &= ~BIT(21);                       /* AMX-FP16 */
		if (!(xcr0 & XCR0_AVX512))
			e->eax &= ~BIT(5);                /* AVX512_BF16 */
		if (!(xcr0 & (1ULL << XCR0_AVX)))
			e->eax &= ~BIT(4);                /* AVX-VNNI */
	}
}

static void leafd(struct kvm_cpuid_entry2 *e, uint64_t xcr0,
		  const struct kvm_cpuid_entry2 *in, int nin)
{
	if (e->index == 0) {
		e->eax = (uint32_t)xcr0;
		e->edx = (uint32_t)(xcr0 >> 32);
		e->ecx = kvm_cpuid_xsave_size(in, nin, xcr0);
		e->ebx = 512 + 64;              /* for XCR0 = x87; KVM updates it */
	} else if (e->index == 1) {
		e->eax &= BIT(0) | BIT(1) | BIT(2) | BIT(3);   /* no XFD */
		e->ecx = 0;
		e->edx = 0;
	}
}

/* 0xB / 0x1F subleaf idx of the model (SMT: 1 thread, core: N cores). */
static struct kvm_cpuid_entry2 topo(uint32_t fn, uint32_t idx, const struct kvm_cpuid_opts *o)
{
	struct kvm_cpuid_entry2 t = { .function = fn, .index = idx,
		.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .edx = (uint32_t)o->cpu };
	if (idx == 0) {
		t.eax = 0;
		t.ebx = 1;
		t.ecx = 1u << 8;
	} else if (idx == 1) {
		t.eax = order((unsigned)o->ncpus);
		t.ebx = (uint32_t)o->ncpus;
		t.ecx = 1 | 2u << 8;
	} else {
		t.ecx = idx & 0xff;
	}
	return t;
}

/* Portable model masks (the BT engine's features, see the top). */
#define P_L1_EDX (BIT(0) | BIT(2) | BIT(3) | BIT(4) | BIT(5) | BIT(6) | BIT(8) | BIT(9) | \
		  BIT(11) | BIT(13) | BIT(15) | BIT(16) | BIT(17) | BIT(19) | BIT(23) | \
		  BIT(24) | BIT(25) | BIT(26) | BIT(28))
#define P_L1_ECX (BIT(13) | BIT(23) | BIT(24) | BIT(31))
#define P_L7_EBX BIT(9)
#define P_L7_EDX (BIT(4) | BIT(26) | BIT(29))
#define P_E1_EDX (BIT(11) | BIT(20) | BIT(26) | BIT(27) | BIT(29))
#define P_E7_EDX BIT(8)

static void portable(struct kvm_cpuid_entry2 *e)
{
	switch (e->function) {
	case 1:
		e->edx &= P_L1_EDX;
		e->ecx &= P_L1_ECX;
		break;
	case 7:
		if (e->index == 0) {
			e->eax = 0;                 /* no subleaf 1 and up */
			e->ebx &= P_L7_EBX;
			e->ecx = 0;
			e->edx &= P_L7_EDX;
		} else {
			e->eax = e->ebx = e->ecx = e->edx = 0;
		}
		break;
	case 0x80000001:
		e->ecx = 0;
		e->edx &= P_E1_EDX;
		break;
	case 0x80000007:
		e->edx &= P_E7_EDX;
		break;
	default:
		break;
	}
}

static int removed(uint32_t fn, uint32_t idx, uint64_t xcr0, bool portable_model)
{
	if (portable_model && (fn == 0xd || (fn >= 0x40000000 && fn < 0x50000000)))
		return 1;
	switch (fn) {
	case 0x12: case 0x14: case 0x1d: case 0x1e:
	case 0x8000000a: case 0x8000001d: case 0x8000001e: case 0x8000001f: case 0x80000022:
		return 1;
	case 0xd:
		return idx >= 2 && idx < 64 && !(xcr0 & (1ULL << idx));
	default:
		return 0;
	}
}

static int push(struct kvm_cpuid_entry2 *out, int *n, int max, const struct kvm_cpuid_entry2 *e)
{
	if (*n >= max)
		return -ENOSPC;
	out[(*n)++] = *e;
	return 0;
}

int kvm_cpuid_model(const struct kvm_cpuid_entry2 *in, int nin,
		    const struct kvm_cpuid_opts *o,
		    struct kvm_cpuid_entry2 *out, int max)
{
	uint64_t xcr0 = kept_xcr0(in, nin);
	int n = 0, r;
	bool done_b = false, done_1f = false;
	const struct kvm_cpuid_entry2 *l0 = find(in, nin, 0, 0);
	bool amd = l0 && (l0->ebx == 0x68747541 /* "Auth" */ || l0->ebx == 0x6f677948 /* "Hygo" */);

	if (o->ncpus < 1 || o->cpu < 0 || o->cpu >= o->ncpus)
		return -EINVAL;
	for (int i = 0; i < nin; i++) {
		struct kvm_cpuid_entry2 e = in[i];
		if (removed(e.function, e.index, xcr0, o->portable))
			continue;
		if (e.function == 0xb || e.function == 0x1f) {
			bool *done = e.function == 0xb ? &done_b : &done_1f;
			if (*done)
				continue;
			*done = true;
			for (uint32_t s = 0; s < 3; s++) {
				struct kvm_cpuid_entry2 t = topo(e.function, s, o);
				if ((r = push(out, &n, max, &t)) < 0)
					return r;
			}
			continue;
		}
		switch (e.function) {
		case 1: leaf1(&e, o); break;
		case 4: leaf4(&e, o); break;
		case 7: leaf7(&e, xcr0); break;
		case 0xa: e.eax = e.ebx = e.ecx = e.edx = 0; break;
		case 0xd: leafd(&e, xcr0, in, nin); break;
		case 0x40000000:
			if (e.eax > 0x40000001)
				e.eax = 0x40000001;
			break;
		case 0x40000001:
			e.eax &= BIT(KVM_FEATURE_CLOCKSOURCE2_BIT) | BIT(KVM_FEATURE_NOP_IO_DELAY_BIT) |
				 BIT(KVM_FEATURE_CLOCKSOURCE_STABLE_BIT);
			e.ebx = e.ecx = e.edx = 0;
			break;
		case 0x80000001:
			e.ecx &= ~(BIT(2) | BIT(22) | BIT(23) | BIT(24) | BIT(28));
			break;
		case 0x80000008:
			if (amd)
				e.ecx = ((uint32_t)o->ncpus - 1) | order((unsigned)o->ncpus) << 12;
			break;
		default:
			break;
		}
		if (o->portable)
			portable(&e);
		if ((r = push(out, &n, max, &e)) < 0)
			return r;
	}
	return n;
}
