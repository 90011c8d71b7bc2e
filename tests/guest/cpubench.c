/* cpubench: a CPU-bound workload for engine benchmarks and correctness:
 * in user mode, fills mb MiB (default 64) with a xorshift stream, hashes
 * it with SHA-256, sorts it as 32-bit integers (quicksort), checks the
 * order and hashes the result. The buffer is mapped at 1 TiB with 4 KiB
 * pages (pages=2m for 2 MiB pages) so paging is exercised throughout. The
 * digests depend only on mb and seed, so every engine must print the same
 * "cpubench: checksum=..." line. Options: mb=N, seed=N, pages=4k|2m. */
#include "rt.h"

const char rt_kernel_name[] = "cpubench";

#define BUF_VA 0x10000000000ULL

/* ---- SHA-256 ---- */
struct sha { u32 h[8]; u8 blk[64]; u64 len; u32 fill; };
static const u32 K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};
static u32 ror(u32 x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha_block(struct sha *s, const u8 *p)
{
	u32 w[64], a, b, c, d, e, f, g, h;
	for (int i = 0; i < 16; i++)
		w[i] = (u32)p[4 * i] << 24 | (u32)p[4 * i + 1] << 16 | (u32)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 64; i++) {
		u32 s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
		u32 s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	a = s->h[0]; b = s->h[1]; c = s->h[2]; d = s->h[3];
	e = s->h[4]; f = s->h[5]; g = s->h[6]; h = s->h[7];
	for (int i = 0; i < 64; i++) {
		u32 t1 = h + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
		u32 t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
		h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
	}
	s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d;
	s->h[4] += e; s->h[5] += f; s->h[6] += g; s->h[7] += h;
}

static void sha_init(struct sha *s)
{
	static const u32 iv[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
				   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };
	memcpy(s->h, iv, sizeof(iv));
	s->len = 0;
	s->fill = 0;
}

static void sha_update(struct sha *s, const u8 *p, u64 n)
{
	s->len += n;
	while (n) {
		if (s->fill == 0 && n >= 64) {
			sha_block(s, p);
			p += 64;
			n -= 64;
			continue;
		}
		u32 c = 64 - s->fill < n ? 64 - s->fill : (u32)n;
		memcpy(s->blk + s->fill, p, c);
		s->fill += c;
		p += c;
		n -= c;
		if (s->fill == 64) {
			sha_block(s, s->blk);
			s->fill = 0;
		}
	}
}

static void sha_final(struct sha *s, char hex[65])
{
	u64 bits = s->len * 8;
	u8 pad = 0x80, z = 0;
	sha_update(s, &pad, 1);
	while (s->fill != 56)
		sha_update(s, &z, 1);
	u8 l[8];
	for (int i = 0; i < 8; i++)
		l[i] = (u8)(bits >> (56 - 8 * i));
	sha_update(s, l, 8);
	for (int i = 0; i < 8; i++)
		rt_snprintf(hex + 8 * i, 9, "%08x", s->h[i]);
}

/* ---- sort ---- */
static void isort(u32 *a, long n)
{
	for (long i = 1; i < n; i++) {
		u32 v = a[i];
		long j = i - 1;
		while (j >= 0 && a[j] > v) {
			a[j + 1] = a[j];
			j--;
		}
		a[j + 1] = v;
	}
}

static void qsort32(u32 *a, long n)
{
	struct { u32 *a; long n; } st[64];
	int sp = 0;
	st[sp].a = a; st[sp].n = n; sp++;
	while (sp) {
		sp--;
		a = st[sp].a;
		n = st[sp].n;
		while (n > 24) {
			u32 x = a[0], y = a[n / 2], z = a[n - 1];
			u32 p = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
			long i = 0, j = n - 1;
			for (;;) {
				while (a[i] < p) i++;
				while (a[j] > p) j--;
				if (i >= j) break;
				u32 t = a[i]; a[i] = a[j]; a[j] = t;
				i++; j--;
			}
			/* recurse into the smaller half via the stack, loop on the larger */
			long ln = j + 1, rn = n - (j + 1);
			if (ln < rn) {
				st[sp].a = a + ln; st[sp].n = rn; sp++;
				n = ln;
			} else {
				st[sp].a = a; st[sp].n = ln; sp++;
				a += ln; n = rn;
			}
		}
		isort(a, n);
	}
}

static u64 n_mb, seed;
static char d_fill[65], d_sort[65];
static u64 t_fill, t_hash, t_sort, t_hash2;

static u64 u_bench(u64 va)
{
	u64 n = n_mb << 20, x = seed | 1;
	u64 *q = (u64 *)va;
	u64 t0 = rdtsc();
	for (u64 i = 0; i < n / 8; i++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		q[i] = x * 0x2545f4914f6cdd1dULL;
	}
	u64 t1 = rdtsc();
	struct sha s;
	sha_init(&s);
	sha_update(&s, (const u8 *)va, n);
	sha_final(&s, d_fill);
	u64 t2 = rdtsc();
	u32 *a = (u32 *)va;
	qsort32(a, (long)(n / 4));
	u64 t3 = rdtsc();
	for (u64 i = 1; i < n / 4; i++)
		if (a[i - 1] > a[i])
			return i;
	sha_init(&s);
	sha_update(&s, (const u8 *)va, n);
	sha_final(&s, d_sort);
	u64 t4 = rdtsc();
	t_fill = t1 - t0; t_hash = t2 - t1; t_sort = t3 - t2; t_hash2 = t4 - t3;
	return 0;
}

void test_main(void)
{
	char pages[8] = "4k";
	n_mb = rt_opt_u64("mb", 64);
	seed = rt_opt_u64("seed", 1);
	rt_opt("pages", pages, sizeof(pages));
	bool big = !strcmp(pages, "2m");

	struct sha s;
	char hex[65];
	sha_init(&s);
	sha_update(&s, (const u8 *)"abc", 3);
	sha_final(&s, hex);
	if (strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")) {
		rt_fail("sha256_selftest", "sha256(abc) = %s", hex);
		return;
	}
	rt_ok("sha256_selftest");

	u64 bytes = n_mb << 20;
	u8 *buf = rt_alloc(bytes, RT_2M, false);
	if (big) {
		for (u64 off = 0; off < bytes; off += RT_2M)
			rt_map_2m(BUF_VA + off, (u64)buf + off, PTE_P | PTE_W | PTE_U | rt_pte_nx());
	} else {
		rt_map_range_4k(BUF_VA, (u64)buf, bytes, PTE_P | PTE_W | PTE_U | rt_pte_nx());
	}
	rt_printf("cpubench: mb=%lu seed=%lu pages=%s\n", n_mb, seed, big ? "2m" : "4k");
	u64 r = rt_user_call(u_bench, BUF_VA, false);
	if (r) {
		rt_fail("cpubench", "array not sorted at index %lu", r);
		return;
	}
	rt_printf("cpubench: fill_digest=%s\n", d_fill);
	rt_printf("cpubench: tsc fill=%lu hash=%lu sort=%lu hash2=%lu\n", t_fill, t_hash, t_sort, t_hash2);
	rt_printf("cpubench: checksum=%s\n", d_sort);
	char want[80];
	if (rt_opt("expect", want, sizeof(want)) && strncmp(want, d_sort, strlen(want)))
		rt_fail("cpubench", "checksum %s, expected %s", d_sort, want);
	else
		rt_ok("cpubench");
}
