/* The guest CPUID model built from a canned KVM_GET_SUPPORTED_CPUID list
 * (an Intel host with AVX-512, AMX, VMX, LA57, PMU and paravirt leaves). */
#include <errno.h>
#include <string.h>
#include "monitor/kvm/kvm_int.h"
#include "tests/unit/test.h"
#include "tests/unit/kvm/kvm_tests.h"

#define SIG KVM_CPUID_FLAG_SIGNIFCANT_INDEX
#define E(fn, idx, fl, a, b, c, d) { .function = fn, .index = idx, .flags = fl, \
	.eax = a, .ebx = b, .ecx = c, .edx = d }

static const struct kvm_cpuid_entry2 host[] = {
	E(0, 0, 0, 0x1f, 0x756e6547, 0x6c65746e, 0x49656e69),
	/* 1: VMX(5) PDCM(15) x2APIC(21) MONITOR(3) AVX(28) XSAVE(26) */
	E(1, 0, 0, 0x806f8, 0x00000800, (1u << 5) | (1u << 15) | (1u << 21) | (1u << 3) |
	  (1u << 28) | (1u << 26) | 1, 0x178bfbff),
	E(4, 0, SIG, 0x121 | (63u << 26) | (1u << 14), 0x1c0003f, 0x3f, 0),
	E(4, 1, SIG, 0x143 | (63u << 26) | (1u << 14), 0x3c0003f, 0x7ff, 0),
	E(4, 2, SIG, 0x163 | (63u << 26) | (127u << 14), 0x3c0003f, 0xfffff, 4),
	E(4, 3, SIG, 0, 0, 0, 0),
	/* 7.0: AVX2(5) AVX512F(16) AVX512BW(30) SGX(2) PT(25); ECX LA57(16)
	 * WAITPKG(5) PKU(3); EDX AMX-TILE(24) AMX-INT8(25) AMX-BF16(22) IBT(20) */
	E(7, 0, SIG, 1, (1u << 5) | (1u << 16) | (1u << 30) | (1u << 2) | (1u << 25),
	  (1u << 16) | (1u << 5) | (1u << 3), (1u << 24) | (1u << 25) | (1u << 22) | (1u << 20)),
	E(7, 1, SIG, (1u << 4) | (1u << 5) | (1u << 21), 0, 0, 0),
	E(0xa, 0, 0, 0x07300805, 0, 0, 0x603),
	E(0xb, 0, SIG, 1, 2, 0x100, 0),
	E(0xb, 1, SIG, 7, 96, 0x201, 0),
	/* 0xD: x87 SSE AVX opmask ZMM_Hi256 Hi16_ZMM PKRU XTILECFG XTILEDATA */
	E(0xd, 0, SIG, 0x602e7, 0x240, 0x2b00, 0),
	E(0xd, 1, SIG, 0x1f, 0x240, 0x1900, 0),
	E(0xd, 2, SIG, 256, 576, 0, 0),
	E(0xd, 5, SIG, 64, 1088, 0, 0),
	E(0xd, 6, SIG, 512, 1152, 0, 0),
	E(0xd, 7, SIG, 1024, 1664, 0, 0),
	E(0xd, 9, SIG, 8, 2688, 0, 0),
	E(0xd, 17, SIG, 64, 2752, 0, 0),
	E(0xd, 18, SIG, 8192, 2816, 0, 0),
	E(0x12, 0, SIG, 1, 0, 0, 0),
	E(0x1d, 0, SIG, 1, 0, 0, 0),
	E(0x1f, 0, SIG, 1, 2, 0x100, 0),
	E(0x1f, 1, SIG, 7, 96, 0x201, 0),
	E(0x40000000, 0, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d),
	E(0x40000001, 0, 0, 0x01ffffff, 0, 0, 1),
	E(0x80000000, 0, 0, 0x80000008, 0, 0, 0),
	E(0x80000001, 0, 0, 0, 0, 0x121 | (1u << 2), 0x2c100800),
	E(0x80000008, 0, 0, 0x3030, 0, 0, 0),
	E(0x8000000a, 0, 0, 1, 0x8000, 0, 0),
	E(0x8000001d, 0, SIG, 0x121, 0x3f, 0x3f, 0),
};
#define NHOST ((int)(sizeof(host) / sizeof(host[0])))

static const struct kvm_cpuid_entry2 *get(const struct kvm_cpuid_entry2 *e, int n,
					  uint32_t fn, uint32_t idx)
{
	for (int i = 0; i < n; i++)
		if (e[i].function == fn && e[i].index == idx)
			return &e[i];
	return NULL;
}

static struct kvm_cpuid_entry2 out[64];

static int model(int cpu, int ncpus, bool deadline)
{
	struct kvm_cpuid_opts o = { .cpu = cpu, .ncpus = ncpus, .tsc_deadline = deadline };
	return kvm_cpuid_model(host, NHOST, &o, out, 64);
}

static void cpuid_leaf1_topology(void)
{
	int n = model(2, 4, true);
	CHECK(n > 0);
	const struct kvm_cpuid_entry2 *l1 = get(out, n, 1, 0);
	CHECK(l1 != NULL);
	if (!l1)
		return;
	CHECK_EQ(l1->ebx >> 24, 2);                  /* APIC ID */
	CHECK_EQ((l1->ebx >> 16) & 0xff, 4);         /* logical IDs per package */
	CHECK_EQ(l1->ebx & 0xffff, 0x0800);          /* CLFLUSH size kept */
	CHECK(l1->edx & (1u << 28));                 /* HTT */
	CHECK(l1->edx & (1u << 9));                  /* APIC */
	CHECK(l1->ecx & (1u << 31));                 /* hypervisor */
	CHECK(l1->ecx & (1u << 24));                 /* TSC deadline */
	CHECK(!(l1->ecx & (1u << 5)));               /* no VMX */
	CHECK(!(l1->ecx & (1u << 21)));              /* no x2APIC */
	CHECK(!(l1->ecx & (1u << 15)));              /* no PDCM */
	CHECK(!(l1->ecx & (1u << 3)));               /* no MONITOR */
	CHECK(l1->ecx & (1u << 28));                 /* AVX kept */

	n = model(0, 1, false);
	l1 = get(out, n, 1, 0);
	CHECK(l1 && !(l1->edx & (1u << 28)));
	CHECK(l1 && !(l1->ecx & (1u << 24)));
	CHECK(l1 && (l1->ebx >> 24) == 0);

	n = model(4, 5, false);
	l1 = get(out, n, 1, 0);
	CHECK(l1 && ((l1->ebx >> 16) & 0xff) == 8);  /* rounded to a power of 2 */
}

static void cpuid_leaf4_and_0xb(void)
{
	int n = model(3, 4, false);
	const struct kvm_cpuid_entry2 *l1d = get(out, n, 4, 0), *l3 = get(out, n, 4, 2);
	CHECK(l1d && l3);
	if (!l1d || !l3)
		return;
	CHECK_EQ(l1d->eax >> 26, 3);
	CHECK_EQ((l1d->eax >> 14) & 0xfff, 0);
	CHECK_EQ(l3->eax >> 26, 3);
	CHECK_EQ((l3->eax >> 14) & 0xfff, 3);
	CHECK_EQ(l3->eax & 0x3fff, 0x163);
	CHECK(get(out, n, 4, 3) != NULL);

	for (uint32_t fn = 0xb; fn <= 0x1f; fn += 0x14) {
		const struct kvm_cpuid_entry2 *s0 = get(out, n, fn, 0), *s1 = get(out, n, fn, 1),
					      *s2 = get(out, n, fn, 2);
		CHECK(s0 && s1 && s2);
		if (!s0 || !s1 || !s2)
			return;
		CHECK_EQ(s0->ebx, 1);
		CHECK_EQ(s0->ecx, 0x100);
		CHECK_EQ(s0->edx, 3);
		CHECK_EQ(s1->eax, 2);
		CHECK_EQ(s1->ebx, 4);
		CHECK_EQ(s1->ecx, 0x201);
		CHECK_EQ(s1->edx, 3);
		CHECK_EQ(s2->ebx, 0);
		CHECK_EQ(s2->ecx, 2);
		CHECK(s0->flags & SIG);
	}
	const struct kvm_cpuid_entry2 *x8 = get(out, n, 0x80000008, 0);
	CHECK(x8 && x8->ecx == 0);                   /* Intel: reserved, untouched */

	/* The same host as AMD: core count and APIC ID size in 0x80000008. */
	struct kvm_cpuid_entry2 h[NHOST];
	memcpy(h, host, sizeof(h));
	h[0].ebx = 0x68747541;
	struct kvm_cpuid_opts o = { .cpu = 3, .ncpus = 4 };
	n = kvm_cpuid_model(h, NHOST, &o, out, 64);
	x8 = get(out, n, 0x80000008, 0);
	CHECK(x8 && x8->ecx == (3u | 2u << 12));
}

static void cpuid_xsave_within_4k(void)
{
	int n = model(0, 2, false);
	const struct kvm_cpuid_entry2 *d0 = get(out, n, 0xd, 0), *d1 = get(out, n, 0xd, 1);
	CHECK(d0 && d1);
	if (!d0 || !d1)
		return;
	CHECK_EQ(d0->eax, 0x2e7);                    /* AMX tile state removed */
	CHECK_EQ(d0->edx, 0);
	CHECK_EQ(d0->ecx, 2696);                     /* PKRU ends at 2688 + 8 */
	CHECK(d0->ecx <= CPU_XSAVE_MAX);
	CHECK_EQ(d1->eax, 0xf);                      /* no XFD */
	CHECK_EQ(d1->ecx, 0);
	CHECK(get(out, n, 0xd, 17) == NULL);
	CHECK(get(out, n, 0xd, 18) == NULL);
	CHECK(get(out, n, 0xd, 7) != NULL);
	const struct kvm_cpuid_entry2 *l7 = get(out, n, 7, 0), *l71 = get(out, n, 7, 1);
	CHECK(l7 && l71);
	if (!l7 || !l71)
		return;
	CHECK(l7->ebx & (1u << 16));                 /* AVX-512F fits: kept */
	CHECK(l7->ebx & (1u << 5));
	CHECK(!(l7->edx & ((1u << 22) | (1u << 24) | (1u << 25))));   /* no AMX */
	CHECK(!(l7->edx & (1u << 20)));              /* no IBT */
	CHECK(!(l7->ebx & ((1u << 2) | (1u << 25))));/* no SGX, PT */
	CHECK(!(l7->ecx & ((1u << 16) | (1u << 5)))); /* no LA57, WAITPKG */
	CHECK(l7->ecx & (1u << 3));                  /* PKU kept */
	CHECK(!(l71->eax & (1u << 21)));             /* no AMX-FP16 */
	CHECK(l71->eax & (1u << 5));                 /* AVX512_BF16 kept */
	CHECK_EQ(kvm_cpuid_xsave_size(host, NHOST, 0x3), 576);
	CHECK_EQ(kvm_cpuid_xsave_size(host, NHOST, 0x7), 832);
	CHECK_EQ(kvm_cpuid_xsave_size(host, NHOST, 0x602e7), 2816 + 8192);
}

static void cpuid_avx512_dropped_when_too_big(void)
{
	/* A host whose Hi16_ZMM state would end past 4 KiB loses all of
	 * AVX-512 and the features using it. */
	struct kvm_cpuid_entry2 h[NHOST];
	memcpy(h, host, sizeof(h));
	for (int i = 0; i < NHOST; i++)
		if (h[i].function == 0xd && h[i].index == 7)
			h[i].ebx = 3500;
	struct kvm_cpuid_opts o = { .cpu = 0, .ncpus = 1 };
	int n = kvm_cpuid_model(h, NHOST, &o, out, 64);
	CHECK(n > 0);
	const struct kvm_cpuid_entry2 *d0 = get(out, n, 0xd, 0), *l7 = get(out, n, 7, 0),
				      *l71 = get(out, n, 7, 1);
	CHECK(d0 && l7 && l71);
	if (!d0 || !l7 || !l71)
		return;
	CHECK_EQ(d0->eax, 0x207);
	CHECK_EQ(d0->ecx, 2696);
	CHECK(!(l7->ebx & (1u << 16)));
	CHECK(!(l7->ebx & (1u << 30)));
	CHECK(l7->ebx & (1u << 5));                  /* AVX2 stays */
	CHECK(!(l71->eax & (1u << 5)));
	CHECK(get(out, n, 0xd, 5) == NULL);
	CHECK(get(out, n, 0xd, 6) == NULL);
	CHECK(get(out, n, 0xd, 7) == NULL);
}

static void cpuid_removed_leaves_and_pv(void)
{
	int n = model(0, 1, false);
	CHECK(get(out, n, 0x12, 0) == NULL);
	CHECK(get(out, n, 0x1d, 0) == NULL);
	CHECK(get(out, n, 0x8000000a, 0) == NULL);
	CHECK(get(out, n, 0x8000001d, 0) == NULL);
	const struct kvm_cpuid_entry2 *pmu = get(out, n, 0xa, 0);
	CHECK(pmu && !pmu->eax && !pmu->edx);
	const struct kvm_cpuid_entry2 *sig = get(out, n, 0x40000000, 0),
				      *pv = get(out, n, 0x40000001, 0);
	CHECK(sig && sig->ebx == 0x4b4d564b && sig->eax == 0x40000001);
	CHECK(pv && pv->eax == ((1u << 3) | (1u << 1) | (1u << 24)));
	CHECK(pv && pv->edx == 0);
	const struct kvm_cpuid_entry2 *e1 = get(out, n, 0x80000001, 0);
	CHECK(e1 && !(e1->ecx & (1u << 2)));         /* no SVM */
	CHECK(e1 && e1->edx == 0x2c100800);
	const struct kvm_cpuid_entry2 *l0 = get(out, n, 0, 0);
	CHECK(l0 && l0->ebx == 0x756e6547);
}

static void cpuid_portable_model(void)
{
	/* Only the BT engine's features: no AVX/XSAVE, no VMX, no paravirt
	 * leaves; topology and APIC IDs as usual. */
	struct kvm_cpuid_opts o = { .cpu = 1, .ncpus = 2, .tsc_deadline = true, .portable = true };
	int n = kvm_cpuid_model(host, NHOST, &o, out, 64);
	CHECK(n > 0);
	const struct kvm_cpuid_entry2 *l1 = get(out, n, 1, 0), *l7 = get(out, n, 7, 0),
				      *l71 = get(out, n, 7, 1), *e1 = get(out, n, 0x80000001, 0);
	CHECK(l1 && l7 && e1);
	if (!l1 || !l7 || !e1)
		return;
	CHECK_EQ(l1->ecx, (1u << 24) | (1u << 31));   /* host has no CX16/POPCNT here */
	CHECK(!(l1->ecx & ((1u << 26) | (1u << 28))));  /* no XSAVE, AVX */
	CHECK_EQ(l1->edx & ~0x178bfbffu, 0);
	CHECK(l1->edx & (1u << 26));                  /* SSE2 */
	CHECK(!(l1->edx & (1u << 12)));               /* no MTRR */
	CHECK_EQ(l1->ebx >> 24, 1);
	CHECK_EQ(l7->eax, 0);
	CHECK_EQ(l7->ebx, 0);                          /* host lacks ERMS */
	CHECK_EQ(l7->ecx, 0);
	CHECK_EQ(l7->edx, 0);
	CHECK(!l71 || (!l71->eax && !l71->ebx && !l71->ecx && !l71->edx));
	CHECK_EQ(e1->ecx, 0);
	CHECK_EQ(e1->edx, 0x2c100800u & ((1u << 11) | (1u << 20) | (1u << 26) | (1u << 27) | (1u << 29)));
	CHECK(get(out, n, 0xd, 0) == NULL);
	CHECK(get(out, n, 0xd, 2) == NULL);
	CHECK(get(out, n, 0x40000000, 0) == NULL);
	CHECK(get(out, n, 0x40000001, 0) == NULL);
	const struct kvm_cpuid_entry2 *b1 = get(out, n, 0xb, 1);
	CHECK(b1 && b1->ebx == 2 && b1->edx == 1);
}

static void cpuid_bad_args(void)
{
	struct kvm_cpuid_opts o = { .cpu = 2, .ncpus = 2 };
	CHECK_EQ(kvm_cpuid_model(host, NHOST, &o, out, 64), -EINVAL);
	o.cpu = 0;
	CHECK_EQ(kvm_cpuid_model(host, NHOST, &o, out, 5), -ENOSPC);
}

int kvm_cpuid_tests(void)
{
	TEST(cpuid_leaf1_topology);
	TEST(cpuid_leaf4_and_0xb);
	TEST(cpuid_xsave_within_4k);
	TEST(cpuid_avx512_dropped_when_too_big);
	TEST(cpuid_removed_leaves_and_pv);
	TEST(cpuid_portable_model);
	TEST(cpuid_bad_args);
	return test_failures;
}
