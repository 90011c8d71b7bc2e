/* Differential test of the BT executor against the host CPU: random and
 * edge-case user-mode sequences per instruction class run natively (in a
 * forked child) and under BT (decode + bt_select + exec, 64-bit mode,
 * CPL 3, paging off so guest-physical = linear = the native addresses);
 * registers, defined flags, xmm/MXCSR, data and stack memory and faults
 * must agree. A mismatch prints the bytes and both states. */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "monitor/bt/decode.h"
#include "monitor/bt/sys_int.h"
#include "monitor/guest_mem.h"
#include "monitor/vm.h"
#include "tests/unit/bt_isa/isa_test.h"
#include "tests/unit/test.h"

struct bt_env {
	struct vm vm;
	struct bt_cpu c;
};

/* Guest page tables: identity map of the first 32 MiB with 2 MiB pages,
 * except the 2 MiB around the test areas, where exactly the pages the
 * native child maps are present (data, code, stack), so running off the
 * data area faults in both worlds. */
#define ISA_PT 0x1800000ull
static void build_page_tables(struct guest_mem *m)
{
	uint64_t *pml4 = gmem_ptr(m, ISA_PT, 4096), *pdpt = gmem_ptr(m, ISA_PT + 0x1000, 4096);
	uint64_t *pd = gmem_ptr(m, ISA_PT + 0x2000, 4096), *pt = gmem_ptr(m, ISA_PT + 0x3000, 4096);
	memset(pml4, 0, 4 * 4096);
	pml4[0] = (ISA_PT + 0x1000) | 7;
	pdpt[0] = (ISA_PT + 0x2000) | 7;
	for (uint64_t k = 0; k < ISA_RAM >> 21; k++)
		pd[k] = (k << 21) | 0x87;                  /* P RW US PS */
	uint64_t big = ISA_DATA >> 21;
	pd[big] = (ISA_PT + 0x3000) | 7;
	pd[big - 1] = 0;                                   /* below the data: unmapped */
	const struct { uint64_t a, n; } maps[] = {
		{ ISA_DATA, ISA_DATA_SIZE }, { ISA_CODE, ISA_CODE_SIZE }, { ISA_STACK, ISA_STACK_SIZE },
	};
	for (unsigned k = 0; k < 3; k++)
		for (uint64_t a = maps[k].a; a < maps[k].a + maps[k].n; a += 4096)
			pt[(a >> 12) & 511] = a | 7;
}

static int env_init(struct bt_env *e)
{
	memset(&e->vm, 0, sizeof(e->vm));
	int r = gmem_new(ISA_RAM, &e->vm.mem);
	if (r)
		return r;
	build_page_tables(e->vm.mem);
	r = bt_cpu_init(&e->c, &e->vm, 0);
	if (r)
		gmem_free(e->vm.mem);
	return r;
}

static void env_fini(struct bt_env *e)
{
	bt_cpu_fini(&e->c);
	gmem_free(e->vm.mem);
}

/* 64-bit user mode, 4-level paging mapping what the native child maps,
 * OSFXSR/OSXMMEXCPT. */
static void cpu_setup(struct bt_cpu *c, const struct isa_state *in)
{
	c->cr0 = 0x80000033;             /* PG, PE, MP, ET, NE */
	c->cr3 = ISA_PT;
	c->cr4 = (1u << 5) | (1u << 9) | (1u << 10);   /* PAE, OSFXSR, OSXMMEXCPT */
	c->efer = 0x500;                 /* LME, LMA */
	c->seg[SEG_CS].attr = 0xb | SEG_ATTR_S | (3 << 5) | SEG_ATTR_P | SEG_ATTR_L;
	c->seg[SEG_CS].sel = 0x33;
	for (int s = 0; s < 6; s++) {
		if (s == SEG_CS)
			continue;
		c->seg[s].attr = 0x3 | SEG_ATTR_S | (3 << 5) | SEG_ATTR_P | SEG_ATTR_DB | SEG_ATTR_G;
		c->seg[s].base = 0;
		c->seg[s].limit = 0xffffffff;
		c->seg[s].sel = 0x2b;
	}
	bt_mode_changed(c);
	bt_tlb_flush_all(c);
	memcpy(c->r, in->r, sizeof(c->r));
	bt_set_rflags(c, in->rflags);
	memcpy(c->xmm, in->xmm, sizeof(c->xmm));
	c->mxcsr = in->mxcsr;
	c->fcw = 0x37f;
	c->fsw = 0;
	c->ftw = 0xffff;
	c->rip = ISA_CODE;
}

/* One instruction; returns -1, or the exception vector. */
static int step(struct bt_cpu *c, const struct bt_insn *in)
{
	if (setjmp(c->jmp))
		return c->exc_vector;
	in->exec(c, in);
	return -1;
}

__attribute__((weak)) void bt_sys_exec(struct bt_cpu *c, const struct bt_insn *i)
{
	(void)i;
	bt_raise(c, BT_UD);
}

enum { RUN_OK, RUN_UNIMPL };

static uint64_t insns_run;

/* Decodes a block at c->rip as the engine does (up to a branch, a system
 * or REP instruction, 64 instructions, or the end of the sequence), runs
 * bt_block_optimize on it and executes it. Returns RUN_OK with *fault
 * set (-1 or the vector), or RUN_UNIMPL. */
static int run_block(struct bt_env *e, uint64_t end, int *fault, int *ninsns, char *why, size_t whylen)
{
	struct bt_cpu *c = &e->c;
	struct bt_insn ins[64];
	uint64_t pos = c->rip;
	int n = 0;
	while (n < 64 && pos < end) {
		struct bt_insn *in = &ins[n];
		memset(in, 0, sizeof(*in));
		if (bt_decode(gmem_ptr(e->vm.mem, pos, 15), 15, BT_MODE64, in))
			break;
		in->exec = bt_select(in);
		if (!in->exec) {
			snprintf(why, whylen, "no exec for op %03x at +%lu", in->op,
				 (unsigned long)(pos - ISA_CODE));
			return RUN_UNIMPL;
		}
		pos += in->len;
		n++;
		if ((in->flags & (BT_I_BRANCH | BT_I_SYS)) || (in->rep && BT_MAP(in->op) == 0))
			break;
	}
	if (n == 0) {
		*fault = BT_UD;
		return RUN_OK;
	}
	n = bt_block_optimize(ins, n);
	*fault = -1;
	for (int k = 0; k < n; k++) {
		c->next_rip = c->rip + ins[k].len;
		*fault = step(c, &ins[k]);
		(*ninsns)++;
		insns_run++;
		if (getenv("BT_ISA_TRACE"))
			printf("    [block] +%-3lu op %03x exec %p -> rax %016lx fl %03lx fault %d\n",
			       (unsigned long)(c->rip - ISA_CODE), ins[k].op, (void *)ins[k].exec, (unsigned long)c->r[0],
			       (unsigned long)(bt_get_rflags(c) & 0xfff), *fault);
		if (*fault >= 0)
			return RUN_OK;
		c->rip = c->next_rip;
	}
	return RUN_OK;
}

/* Runs t under BT: one instruction at a time (blocks = 0) or in optimized
 * blocks as the engine runs them (blocks = 1). */
static int run_bt(struct bt_env *e, const struct isa_case *t, struct isa_state *out,
		  uint8_t *data, uint8_t *stack, char *why, size_t whylen, int blocks)
{
	struct bt_cpu *c = &e->c;
	memcpy(gmem_ptr(e->vm.mem, ISA_DATA, ISA_DATA_SIZE), t->data, ISA_DATA_SIZE);
	memcpy(gmem_ptr(e->vm.mem, ISA_STACK, ISA_STACK_SIZE), t->stack, ISA_STACK_SIZE);
	memcpy(gmem_ptr(e->vm.mem, ISA_CODE, t->len + 16), t->code, t->len);
	memset(gmem_ptr(e->vm.mem, ISA_CODE + t->len, 16), 0xcc, 16);
	cpu_setup(c, &t->in);
	uint64_t end = ISA_CODE + t->len;
	int fault = -1;
	for (int n = 0; blocks && n < 100000 && c->rip != end && fault < 0; ) {
		int r = run_block(e, end, &fault, &n, why, whylen);
		if (r != RUN_OK)
			return r;
	}
	for (int n = 0; !blocks && n < 100000 && c->rip != end; n++) {
		struct bt_insn in;
		const uint8_t *p = gmem_ptr(e->vm.mem, c->rip, 15);
		int r = bt_decode(p, 15, BT_MODE64, &in);
		if (r) {
			fault = BT_UD;
			break;
		}
		in.exec = bt_select(&in);
		if (!in.exec) {
			snprintf(why, whylen, "no exec for op %03x at +%lu", in.op,
				 (unsigned long)(c->rip - ISA_CODE));
			return RUN_UNIMPL;
		}
		c->next_rip = c->rip + in.len;
		fault = step(c, &in);
		if (getenv("BT_ISA_TRACE")) {
			long double st0 = c->st[(c->fsw >> 11) & 7];
			printf("    +%-3lu op %03x -> rax %016lx fl %03lx fsw %04x ftw %04x st0 %Lg fault %d\n",
			       (unsigned long)(c->rip - ISA_CODE), in.op, (unsigned long)c->r[0],
			       (unsigned long)(bt_get_rflags(c) & 0xfff), c->fsw, c->ftw, st0, fault);
		}
		insns_run++;
		if (fault >= 0)
			break;
		c->rip = c->next_rip;
	}
	memcpy(out->r, c->r, sizeof(out->r));
	out->rflags = bt_get_rflags(c);
	memcpy(out->xmm, c->xmm, sizeof(out->xmm));
	out->mxcsr = c->mxcsr;
	out->fault = fault;
	out->fault_rip = c->rip;
	memcpy(data, gmem_ptr(e->vm.mem, ISA_DATA, ISA_DATA_SIZE), ISA_DATA_SIZE);
	memcpy(stack, gmem_ptr(e->vm.mem, ISA_STACK, ISA_STACK_SIZE), ISA_STACK_SIZE);
	return RUN_OK;
}

static int vec_class(int v)
{
	return v == 14 ? 13 : v;     /* #PF and #GP: both "memory fault" */
}

static void dump_state(const char *who, const struct isa_state *s)
{
	printf("   %s: fault %d at %#lx rflags %#lx mxcsr %#x\n", who, s->fault,
	       (unsigned long)s->fault_rip, (unsigned long)s->rflags, s->mxcsr);
	for (int k = 0; k < 16; k++)
		printf("%s r%-2d %016lx", k % 4 == 0 ? "    " : "", k, (unsigned long)s->r[k]);
	printf("\n");
}

/* Returns 0 when equal, else prints and returns 1. */
static int compare(const struct isa_case *t, const struct isa_state *a, const uint8_t *ad,
		   const uint8_t *as, const struct isa_state *b, const uint8_t *bd, const uint8_t *bs)
{
	char what[128] = "";
	uint32_t fm = t->flag_mask | BT_DF_FLAG;
	int an = a->fault >= 0, bn = b->fault >= 0;
	if (an != bn || (an && (vec_class(a->fault) != vec_class(b->fault) || a->fault_rip != b->fault_rip)))
		snprintf(what, sizeof(what), "fault");
	else if (memcmp(a->r, b->r, sizeof(a->r)))
		snprintf(what, sizeof(what), "registers");
	/* the flag mask describes the end of the sequence, not a fault */
	else if (!an && ((a->rflags ^ b->rflags) & fm))
		snprintf(what, sizeof(what), "flags (%#lx)", (unsigned long)((a->rflags ^ b->rflags) & fm));
	else if (memcmp(a->xmm, b->xmm, sizeof(a->xmm))) {
		int k = 0;
		while (!memcmp(&a->xmm[k], &b->xmm[k], 16))
			k++;
		snprintf(what, sizeof(what), "xmm%d %016lx%016lx vs %016lx%016lx", k,
			 (unsigned long)a->xmm[k].q[1], (unsigned long)a->xmm[k].q[0],
			 (unsigned long)b->xmm[k].q[1], (unsigned long)b->xmm[k].q[0]);
	} else if (a->mxcsr != b->mxcsr)
		snprintf(what, sizeof(what), "mxcsr");
	else {
		for (size_t k = 0; k < ISA_DATA_SIZE && !what[0]; k++) {
			/* FXSAVE image: FOP/FIP/FDP are not modelled */
			if (k >= 0x3006 && k < 0x3018)
				continue;
			/* MXCSR_MASK: host-specific (AMD adds MM) */
			if (k >= 0x301c && k < 0x3020)
				continue;
			/* empty x87 registers hold stale contents */
			if (t->fx_check && k >= 0x3020 && k < 0x30a0) {
				int st = (int)(k - 0x3020) / 16, top = (ad[0x3003] >> 3) & 7;
				if (!(ad[0x3004] & (1 << ((top + st) & 7))))
					continue;
			}
			if (ad[k] != bd[k])
				snprintf(what, sizeof(what), "data byte +%#zx: %02x vs %02x", k, ad[k], bd[k]);
		}
		for (size_t k = 0; k < ISA_STACK_SIZE && !what[0]; k++)
			if (as[k] != bs[k])
				snprintf(what, sizeof(what), "stack byte +%#zx: %02x vs %02x", k, as[k], bs[k]);
	}
	if (!what[0])
		return 0;
	printf("  MISMATCH (%s), %d insns, flag mask %#x, bytes:", what, t->ninsn, t->flag_mask);
	for (size_t k = 0; k < t->len; k++)
		printf(" %02x", t->code[k]);
	printf("\n");
	dump_state("input ", &t->in);
	dump_state("native", a);
	dump_state("bt    ", b);
	return 1;
}

#define BATCH 200

struct stats { long cases, mism, unimpl, faults; };

static void run_kind(struct bt_env *e, int kind, int batches, uint64_t *rng, struct stats *st)
{
	struct isa_case *t = malloc(sizeof(*t) * BATCH);
	struct isa_state *na = malloc(sizeof(*na) * BATCH), bs;
	uint8_t (*nd)[ISA_DATA_SIZE] = malloc(ISA_DATA_SIZE * BATCH);
	uint8_t (*ns)[ISA_STACK_SIZE] = malloc(ISA_STACK_SIZE * BATCH);
	static uint8_t bd[ISA_DATA_SIZE], bstk[ISA_STACK_SIZE];
	if (!t || !na || !nd || !ns) {
		CHECK(0);
		goto out;
	}
	int shown = 0;
	for (int b = 0; b < batches; b++) {
		for (int k = 0; k < BATCH; k++)
			isa_gen(&t[k], rng, kind);
		int r = isa_native(t, BATCH, na, nd, ns);
		CHECK_EQ(r, 0);
		if (r)
			break;
		for (int k = 0; k < BATCH; k++) {
			char why[128];
			st->cases++;
			if (na[k].fault >= 0)
				st->faults++;
			/* one instruction at a time, then in optimized blocks */
			for (int blocks = 0; blocks < 2; blocks++) {
				if (run_bt(e, &t[k], &bs, bd, bstk, why, sizeof(why), blocks) == RUN_UNIMPL) {
					st->unimpl++;
					if (getenv("BT_ISA_VERBOSE"))
						printf("  unimplemented: %s\n", why);
					break;
				}
				if (compare(&t[k], &na[k], nd[k], ns[k], &bs, bd, bstk)) {
					if (blocks)
						printf("  (in optimized blocks)\n");
					st->mism++;
					if (++shown >= 3 && !getenv("BT_ISA_VERBOSE"))
						goto out;
				}
			}
		}
	}
out:
	free(t);
	free(na);
	free(nd);
	free(ns);
}

static void test_differential(void)
{
	struct bt_env *e = calloc(1, sizeof(*e));
	CHECK(e != NULL);
	if (!e || env_init(e)) {
		CHECK(0);
		free(e);
		return;
	}
	uint64_t rng = 0x243f6a8885a308d3ull;
	const char *s = getenv("BT_ISA_SEED");
	if (s)
		rng = strtoull(s, NULL, 0) | 1;
	int batches = 4;
	const char *b = getenv("BT_ISA_BATCHES");
	if (b)
		batches = atoi(b);
	const char *only = getenv("BT_ISA_KIND");
	for (int k = 0; k < GEN_KINDS; k++) {
		if (only && strcmp(only, isa_gen_names[k]))
			continue;
		struct stats st = { 0, 0, 0, 0 };
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		run_kind(e, k, batches, &rng, &st);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		printf("  %-7s %5ld sequences, %4ld faulting, %ld unimplemented, %ld mismatches (%.1f s)\n",
		       isa_gen_names[k], st.cases, st.faults, st.unimpl, st.mism,
		       (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
		CHECK(st.mism == 0);
		CHECK(st.unimpl == 0);
	}
	env_fini(e);
	free(e);
}

/* Exec-loop throughput on a simple integer loop (decode once, run many). */
static void test_speed(void)
{
	struct bt_env *e = calloc(1, sizeof(*e));
	if (!e || env_init(e)) {
		CHECK(0);
		free(e);
		return;
	}
	/* loop: add rax, rcx; xor rdx, rax; mov [r15+8], rdx; dec ecx; jnz loop */
	static const uint8_t code[] = { 0x48, 0x01, 0xc8, 0x48, 0x31, 0xc2, 0x49, 0x89, 0x57, 0x08,
					0xff, 0xc9, 0x75, 0xf2 };
	struct isa_state in;
	memset(&in, 0, sizeof(in));
	in.r[1] = 10000000;
	in.r[15] = ISA_DATA;
	in.r[4] = ISA_RSP0;
	in.rflags = 2;
	in.mxcsr = 0x1f80;
	memcpy(gmem_ptr(e->vm.mem, ISA_CODE, sizeof(code)), code, sizeof(code));
	cpu_setup(&e->c, &in);
	struct bt_insn ins[5];
	uint64_t rip = ISA_CODE;
	for (int k = 0; k < 5; k++) {
		CHECK_EQ(bt_decode(gmem_ptr(e->vm.mem, rip, 15), 15, BT_MODE64, &ins[k]), 0);
		ins[k].exec = bt_select(&ins[k]);
		CHECK(ins[k].exec != NULL);
		rip += ins[k].len;
	}
	struct bt_cpu *c = &e->c;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	uint64_t n = 0;
	if (!setjmp(c->jmp)) {
		for (;;) {
			int k = 0;
			for (; k < 5; k++) {
				c->next_rip = c->rip + ins[k].len;
				ins[k].exec(c, &ins[k]);
				c->rip = c->next_rip;
			}
			n += 5;
			if (c->rip != ISA_CODE)
				break;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("  exec loop: %lu instructions in %.3f s = %.0f M insns/s\n", (unsigned long)n, s, n / s / 1e6);
	CHECK_EQ(c->r[1], 0);
	env_fini(e);
	free(e);
}

/* Every valid, non-system encoding (each map, opcode, mandatory prefix,
 * REX.W, ModRM /digit, register and memory form) in 64- and 32-bit mode
 * has an exec function. */
static void test_select_coverage(void)
{
	static const uint8_t pfx[4] = { 0, 0x66, 0xf3, 0xf2 };
	int missing = 0;
	for (int mode = 0; mode < 2; mode++) {
		enum bt_mode m = mode ? BT_MODE32 : BT_MODE64;
		for (int map = 0; map < 4; map++)
			for (int op = 0; op < 256; op++)
				for (int p = 0; p < 4; p++)
					for (int w = 0; w < 2; w++)
						for (int mr = 0; mr < 16; mr++) {
			uint8_t b[16] = { 0 };
			int n = 0;
			if (pfx[p])
				b[n++] = pfx[p];
			if (w) {
				if (m != BT_MODE64)
					continue;
				b[n++] = 0x48;
			}
			if (map) b[n++] = 0x0f;
			if (map == 2) b[n++] = 0x38;
			if (map == 3) b[n++] = 0x3a;
			b[n++] = (uint8_t)op;
			b[n++] = (uint8_t)((mr < 8 ? 0xc0 : 0x00) | ((mr & 7) << 3) | (mr < 8 ? 1 : 3));
			struct bt_insn in;
			if (bt_decode(b, 15, m, &in) || (in.flags & BT_I_SYS) || bt_select(&in))
				continue;
			if (missing++ < 20)
				printf("  no exec: mode %d map %d op %02x pfx %02x w %d modrm %02x\n",
				       m * 8, map, op, pfx[p], w, b[n - 1]);
		}
	}
	CHECK_EQ(missing, 0);
}

/* BT_ISA_HEX=bytes: runs one sequence (random registers) with a trace. */
static void run_hex(const char *hex)
{
	static struct isa_case t;
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	isa_gen(&t, &rng, GEN_INT);
	t.len = 0;
	for (; hex[0] && hex[1]; hex += 2) {
		unsigned v;
		if (sscanf(hex, "%2x", &v) != 1)
			break;
		t.code[t.len++] = (uint8_t)v;
	}
	t.flag_mask = 0x8d5;
	static struct isa_state na, bs;
	static uint8_t nd[1][ISA_DATA_SIZE], ns[1][ISA_STACK_SIZE], bd[ISA_DATA_SIZE], bst[ISA_STACK_SIZE];
	struct bt_env *e = calloc(1, sizeof(*e));
	char why[128];
	if (!e || env_init(e) || isa_native(&t, 1, &na, nd, ns))
		return;
	setenv("BT_ISA_TRACE", "1", 1);
	for (int blocks = 0; blocks < 2; blocks++) {
		if (run_bt(e, &t, &bs, bd, bst, why, sizeof(why), blocks) != RUN_OK)
			printf("%s\n", why);
		if (!compare(&t, &na, nd[0], ns[0], &bs, bd, bst))
			printf("  equal%s\n", blocks ? " (optimized blocks)" : "");
	}
	env_fini(e);
	free(e);
}

int main(void)
{
	if (getenv("BT_ISA_HEX")) {
		run_hex(getenv("BT_ISA_HEX"));
		return 0;
	}
	TEST(test_select_coverage);
	TEST(test_differential);
	TEST(test_speed);
	printf("  %lu instructions executed under BT\n", (unsigned long)insns_run);
	TEST_EXIT();
}
