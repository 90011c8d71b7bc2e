/* Decoder vs capstone on random byte strings: validity and length must
 * agree except for the documented, intentional differences below. */
#include <capstone/capstone.h>
#include <elf.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "monitor/bt/decode.h"
#include "monitor/bt/decode_tab.h"
#include "monitor/bt/bt_int.h"
#define TEST_RNG_SEED 0x9e3779b97f4a7c15ull
#include "tests/unit/test.h"

/* Random instruction-like bytes: prefixes, escapes and ModRM bytes are
 * chosen often enough that every map and form is hit. */
static void gen(uint8_t *b, enum bt_mode mode)
{
	static const uint8_t pfx[] = { 0x66, 0x67, 0xf2, 0xf3, 0xf0, 0x2e, 0x3e,
				       0x26, 0x64, 0x65, 0x36 };
	int n = 0;
	for (int k = 0; k < 15; k++)
		b[k] = (uint8_t)test_rnd();
	uint64_t r = test_rnd();
	int np = r % 4 == 0 ? (int)((r >> 8) % 4) : 0;
	for (int k = 0; k < np; k++)
		b[n++] = pfx[(r >> (16 + 4 * k)) % sizeof(pfx)];
	if (mode == BT_MODE64 && (r >> 40) % 3 == 0)
		b[n++] = 0x40 | (uint8_t)((r >> 44) & 15);
	switch ((r >> 50) % 6) {
	case 0: case 1:
		b[n++] = 0x0f;
		break;
	case 2:
		b[n++] = 0x0f;
		b[n++] = (r >> 56) & 1 ? 0x38 : 0x3a;
		break;
	default:
		break;
	}
}

enum { MAXD = 64 };
struct diffrec { uint8_t bytes[15]; int mode, ours, theirs; char mn[32]; };
static struct diffrec diffs[MAXD];
static int ndiffs;

/* Intentional differences. Returns a reason or NULL. */
static const char *known(enum bt_mode mode, const uint8_t *b, int ours, int cslen,
			 const char *mn)
{
	static const char *const ext[] = {
		"sha", "aes", "vm", "xsave", "xrstor", "xbegin", "xabort", "xend",
		"xtest", "getsec", "femms", "pclmul", "invept", "invvpid",
		"invpcid", "rdrand", "rdseed", "ud0", "ud2b", "ud1", "rdfsbase",
		"rdgsbase", "wrfsbase", "wrgsbase", "clwb", "rdpid", "encl",
		"monitorx", "mwaitx", "clzero", "rdpkru", "wrpkru", "skinit",
		"stgi", "clgi", "invlpga", "ptwrite", "adcx", "adox", "v",
		"pf", "pi2f", "pavgusb", "pswapd", "pmulhrw", "xcrypt", "xstore",
		"montmul", "xsha", "insertq", "extrq", "movntsd", "movntss", "k",
	};
	int np = 0, lock = 0, rep = 0;
	while (np < 15 && (b[np] == 0x66 || b[np] == 0x67 || b[np] == 0xf0 ||
			   b[np] == 0xf2 || b[np] == 0xf3 || b[np] == 0x26 ||
			   b[np] == 0x2e || b[np] == 0x36 || b[np] == 0x3e ||
			   b[np] == 0x64 || b[np] == 0x65 ||
			   (mode == BT_MODE64 && (b[np] & 0xf0) == 0x40))) {
		lock |= b[np] == 0xf0;
		rep |= b[np] == 0xf2 || b[np] == 0xf3;
		np++;
	}
	uint8_t op = b[np], op2 = b[np + 1];
	int map = op == 0x0f ? (op2 == 0x38 ? 2 : op2 == 0x3a ? 3 : 1) : 0;
	uint8_t opc = map == 0 ? op : map == 1 ? op2 : b[np + 2];
	uint32_t attr = map == 1 ? bt_dtab_0f[opc] : map == 2 ? bt_dtab_38[opc] :
			map == 3 ? bt_dtab_3a[opc] : 0;
	if ((op == 0xe8 || op == 0xe9 || op == 0xc2 || op == 0x68 ||
				  (op == 0x0f && (op2 & 0xf0) == 0x80)) &&
	    np > 0 && ours != cslen && ours > 0 && cslen > 0)
		return "66/67/REX.W/F2 on a near branch or PUSH imm: "
		       "capstone 4 is inconsistent, we follow AMD hardware";
	if (ours >= 0 && cslen < 0 && mode == BT_MODE16 && map &&
	    ((attr & DA_SSE) || map >= 2))
		return "capstone 4 lacks most SSE2-SSE4.2 and POPCNT forms in 16-bit mode";
	if (ours >= 0 && cslen < 0 && op >= 0xa0 && op <= 0xa3 && rep)
		return "capstone 4 rejects F2/F3 on MOV moffs; hardware ignores them";
	if (ours >= 0 && cslen < 0) {
		if (op == 0x0f && (op2 == 0x0d || (op2 >= 0x18 && op2 <= 0x1f) ||
				   (op2 == 0xae && b[np + 2] >= 0xe8)))
			return "hint NOP / prefetch / fence form that capstone 4 rejects; hardware runs it";
		if ((op == 0x8c || op == 0x8e) && mode == BT_MODE64)
			return "REX on MOV Sreg: capstone 4 rejects, hardware runs it";
		if (rep || memchr(b, 0x66, np)) {
			/* capstone 4 wants the mandatory prefix right before
			 * the opcode: retry with it moved there. */
			uint8_t c[16];
			int n = 0, m = -1;
			for (int k = np - 1; k >= 0 && m < 0; k--)
				if (b[k] == 0xf2 || b[k] == 0xf3)
					m = k;
			for (int k = np - 1; k >= 0 && m < 0; k--)
				if (b[k] == 0x66)
					m = k;
			int rx = mode == BT_MODE64 && np && (b[np - 1] & 0xf0) == 0x40;
			for (int k = 0; k < np - rx; k++)
				if (k != m)
					c[n++] = b[k];
			c[n++] = b[m];
			for (int k = np - rx; k < 15; k++)
				c[n++] = b[k];
			csh h;
			cs_insn *ci;
			int len = -1;
			if (cs_open(CS_ARCH_X86, mode == BT_MODE64 ? CS_MODE_64 :
				    mode == BT_MODE32 ? CS_MODE_32 : CS_MODE_16, &h) == CS_ERR_OK) {
				if (cs_disasm(h, c, 15, 0, 1, &ci) == 1) {
					len = ci[0].size;
					cs_free(ci, 1);
				}
				cs_close(&h);
			}
			if (len == ours)
				return "capstone 4 needs the mandatory prefix last; hardware does not";
		}
		return NULL;
	}
	if (ours >= 0 || cslen < 0)
		return NULL;
	if ((attr & DA_SSE) || (map == 1 && opc == 0xae))
		return "SSE/MMX opcode with a mandatory prefix it has no form for: "
		       "capstone ignores the prefix, hardware raises #UD";
	if (b[np] == 0x8e && ((b[np + 1] >> 3) & 7) == 1)
		return "MOV CS, r/m: capstone accepts it, hardware raises #UD";
	if (b[np] == 0x0f && b[np + 1] == 0x77)
		return "66/F2/F3 EMMS: capstone accepts it, hardware raises #UD";
	for (unsigned k = 0; k < sizeof(ext) / sizeof(ext[0]); k++)
		if (!strncmp(mn, ext[k], strlen(ext[k])))
			return "extension not in the BT CPU model (decoded as #UD)";
	if (lock)
		return "LOCK on a non-lockable instruction or register operand: #UD on hardware";
	if (rep) {
		/* Without the F2/F3 prefixes the instruction is valid: the
		 * opcode has no F2/F3 form, which hardware rejects. */
		uint8_t c[16];
		int n = 0;
		for (int k = 0; k < 15; k++)
			if (k >= np || (b[k] != 0xf2 && b[k] != 0xf3))
				c[n++] = b[k];
		struct bt_insn in;
		if (bt_decode(c, n, mode, &in) == 0)
			return "F2/F3 on an SSE/MMX opcode without such a form: #UD on hardware";
	}
	return NULL;
}

static long run_mode(csh h, enum bt_mode mode, long n, long *nvalid, long *nknown)
{
	cs_insn *ci = cs_malloc(h);
	long bad = 0;
	for (long k = 0; k < n; k++) {
		uint8_t b[16];
		struct bt_insn in;
		gen(b, mode);
		int r = bt_decode(b, 15, mode, &in);
		const uint8_t *code = b;
		size_t sz = 15;
		uint64_t addr = 0x1000;
		bool ok = cs_disasm_iter(h, &code, &sz, &addr, ci);
		int ours = r == 0 ? in.len : r == -E2BIG ? -2 : -1;
		int theirs = ok ? ci->size : -1;
		if (r == 0)
			(*nvalid)++;
		if (ours == theirs || (ours == -2 && theirs == -1))
			continue;
		if (known(mode, b, ours, theirs, ok ? ci->mnemonic : "")) {
			(*nknown)++;
			continue;
		}
		bad++;
		if (ndiffs < MAXD) {
			struct diffrec *d = &diffs[ndiffs++];
			memcpy(d->bytes, b, 15);
			d->mode = mode;
			d->ours = ours;
			d->theirs = theirs;
			snprintf(d->mn, sizeof(d->mn), "%s", ok ? ci->mnemonic : "-");
		}
	}
	cs_free(ci, 1);
	return bad;
}

static void test_capstone(void)
{
	static const struct { enum bt_mode m; cs_mode cm; const char *name; } modes[] = {
		{ BT_MODE64, CS_MODE_64, "64" }, { BT_MODE32, CS_MODE_32, "32" },
		{ BT_MODE16, CS_MODE_16, "16" },
	};
	long per = 1000000;
	const char *e = getenv("BT_DECODE_N");
	if (e)
		per = atol(e);
	for (unsigned m = 0; m < 3; m++) {
		csh h;
		CHECK(cs_open(CS_ARCH_X86, modes[m].cm, &h) == CS_ERR_OK);
		long nvalid = 0, nknown = 0;
		ndiffs = 0;
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		long bad = run_mode(h, modes[m].m, per, &nvalid, &nknown);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		printf("  mode %s: %ld strings, %ld valid, %ld known differences, %ld mismatches (%.1f s)\n",
		       modes[m].name, per, nvalid, nknown, bad,
		       (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
		for (int k = 0; k < ndiffs; k++) {
			printf("   ours %d capstone %d (%s):", diffs[k].ours, diffs[k].theirs, diffs[k].mn);
			for (int j = 0; j < 15; j++)
				printf(" %02x", diffs[k].bytes[j]);
			printf("\n");
		}
		CHECK(bad == 0);
		cs_close(&h);
	}
}

/* Real code: every instruction of the host's libc and busybox .text
 * (walked with capstone) decodes to the same length and has an exec
 * function, except the encodings of extensions outside the CPU model. */
static int outside_model(const char *mn)
{
	static const char *const ext[] = { "v", "xbegin", "xabort", "xend", "xtest", "andn",
		"bextr", "blsi", "blsmsk", "blsr", "bzhi", "pdep", "pext", "rorx", "sarx",
		"shlx", "shrx", "mulx", "k", "rdrand", "rdseed", "xsave", "xrstor", "xgetbv",
		"aes", "pclmul", "sha", "adcx", "adox", "endbr", "rdpid", "rdfsbase", "rdgsbase",
		"wrfsbase", "wrgsbase", "ud1" };
	for (unsigned k = 0; k < sizeof(ext) / sizeof(ext[0]); k++)
		if (!strncmp(mn, ext[k], strlen(ext[k])))
			return 1;
	return 0;
}

static void check_elf(const char *path, long *tot, long *bad)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return;
	uint8_t *b = NULL;
	long n = -1;
	if (fseek(f, 0, SEEK_END) == 0)
		n = ftell(f);
	if (n > 0 && fseek(f, 0, SEEK_SET) == 0 && (b = malloc((size_t)n)) &&
	    fread(b, 1, (size_t)n, f) == (size_t)n && n > (long)sizeof(Elf64_Ehdr)) {
		Elf64_Ehdr *eh = (void *)b;
		csh h;
		if (eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr) <= (uint64_t)n &&
		    cs_open(CS_ARCH_X86, CS_MODE_64, &h) == CS_ERR_OK) {
			Elf64_Shdr *sh = (void *)(b + eh->e_shoff);
			const char *strs = (const char *)b + sh[eh->e_shstrndx].sh_offset;
			cs_insn *ci = cs_malloc(h);
			for (int s = 0; s < eh->e_shnum; s++) {
				if (strcmp(strs + sh[s].sh_name, ".text") ||
				    sh[s].sh_offset + sh[s].sh_size > (uint64_t)n)
					continue;
				const uint8_t *code = b + sh[s].sh_offset;
				size_t sz = sh[s].sh_size;
				uint64_t addr = sh[s].sh_addr;
				while (sz > 0) {
					const uint8_t *p = code;
					if (!cs_disasm_iter(h, &code, &sz, &addr, ci)) {
						code++, sz--, addr++;
						continue;
					}
					struct bt_insn in;
					(*tot)++;
					int r = bt_decode(p, ci->size, BT_MODE64, &in);
					if (r && outside_model(ci->mnemonic))
						continue;
					/* F3 (REX) 0F AE /5 is CET's INCSSP, which capstone 4
					 * shows as LFENCE; #UD without CET, as here */
					if (r && p[0] == 0xf3 && memmem(p, ci->size, "\x0f\xae", 2))
						continue;
					if (r || in.len != ci->size ||
					    (!(in.flags & BT_I_SYS) && !bt_select(&in))) {
						if ((*bad)++ < 10)
							printf("  %s: %s %s: ours %d len %d, capstone len %d\n", path,
							       ci->mnemonic, ci->op_str, r, r ? 0 : in.len, ci->size);
					}
				}
			}
			cs_free(ci, 1);
			cs_close(&h);
		}
	}
	free(b);
	fclose(f);
}

static void test_real_code(void)
{
	static const char *const files[] = { "/lib/x86_64-linux-gnu/libc.so.6",
		"/lib/x86_64-linux-gnu/libm.so.6", "/bin/busybox" };
	long tot = 0, bad = 0;
	for (unsigned k = 0; k < 3; k++)
		check_elf(files[k], &tot, &bad);
	printf("  %ld instructions of libc, libm and busybox, %ld disagreements\n", tot, bad);
	CHECK(tot > 0);
	CHECK_EQ(bad, 0);
}

/* bt_decode HEX...: prints both decoders' view of each byte string. */
static void show(const char *hex)
{
	uint8_t b[16] = { 0 };
	int n = 0;
	for (; hex[0] && hex[1] && n < 15; hex += 2) {
		unsigned v;
		if (sscanf(hex, "%2x", &v) != 1)
			break;
		b[n++] = (uint8_t)v;
	}
	static const cs_mode cm[] = { CS_MODE_64, CS_MODE_32, CS_MODE_16 };
	static const enum bt_mode bm[] = { BT_MODE64, BT_MODE32, BT_MODE16 };
	for (int m = 0; m < 3; m++) {
		csh h;
		cs_insn *ci;
		struct bt_insn in;
		if (cs_open(CS_ARCH_X86, cm[m], &h) != CS_ERR_OK)
			return;
		size_t c = cs_disasm(h, b, n, 0, 1, &ci);
		int r = bt_decode(b, n, bm[m], &in);
		printf("mode %d: ours %d len %d op %03x | capstone %s %s len %d\n", bm[m] * 8, r,
		       r ? 0 : in.len, r ? 0 : in.op, c ? ci[0].mnemonic : "-",
		       c ? ci[0].op_str : "", c ? ci[0].size : 0);
		if (c)
			cs_free(ci, c);
		cs_close(&h);
	}
}

static int dec(const char *hex, enum bt_mode m, struct bt_insn *in)
{
	uint8_t b[16];
	int n = 0;
	for (; hex[0] && hex[1] && n < 16; hex += 2) {
		unsigned v;
		if (sscanf(hex, "%2x", &v) != 1)
			break;
		b[n++] = (uint8_t)v;
	}
	return bt_decode(b, n, m, in);
}

/* Operand fields of a few well-known encodings. */
static void test_fields(void)
{
	struct bt_insn in;
	CHECK_EQ(dec("488b442408", BT_MODE64, &in), 0);   /* mov rax,[rsp+8] */
	CHECK_EQ(in.op, 0x8b); CHECK_EQ(in.opsize, 8); CHECK_EQ(in.base, 4);
	CHECK_EQ(in.index, BT_REG_NONE); CHECK_EQ(in.disp, 8); CHECK_EQ(in.len, 5);
	CHECK(in.flags & BT_I_MEM);
	CHECK_EQ(dec("4c8d0df0ffffff", BT_MODE64, &in), 0); /* lea r9,[rip-16] */
	CHECK_EQ(in.reg, 9); CHECK_EQ(in.base, BT_BASE_RIP); CHECK_EQ(in.disp, -16);
	CHECK_EQ(dec("4883c0ff", BT_MODE64, &in), 0);       /* add rax,-1 */
	CHECK_EQ(in.imm, -1); CHECK_EQ(in.imm_size, 1);
	CHECK_EQ(dec("83c0ff", BT_MODE32, &in), 0);         /* add eax,-1 */
	CHECK_EQ(in.imm, 0xffffffffll);
	CHECK_EQ(dec("cd80", BT_MODE32, &in), 0);           /* int 0x80 */
	CHECK_EQ(in.imm, 0x80);
	CHECK_EQ(dec("48b88877665544332211", BT_MODE64, &in), 0);
	CHECK_EQ(in.imm, 0x1122334455667788ll); CHECK_EQ(in.len, 10);
	CHECK_EQ(dec("428b04a510000000", BT_MODE64, &in), 0); /* mov eax,[r12*4+16] */
	CHECK_EQ(in.base, BT_REG_NONE); CHECK_EQ(in.index, 12); CHECK_EQ(in.scale, 4);
	CHECK_EQ(dec("8b4204", BT_MODE16, &in), 0);         /* mov ax,[bp+si+4] */
	CHECK_EQ(in.base, 5); CHECK_EQ(in.index, 6); CHECK_EQ(in.disp, 4);
	CHECK_EQ(dec("c8100001", BT_MODE64, &in), 0);       /* enter 16,1 */
	CHECK_EQ(in.imm, 16); CHECK_EQ(in.imm2, 1); CHECK_EQ(in.opsize, 8);
	CHECK_EQ(dec("ea785634122301", BT_MODE32, &in), 0); /* jmp far */
	CHECK_EQ(in.imm, 0x12345678); CHECK_EQ(in.imm2, 0x0123);
	CHECK_EQ(dec("f00fc10e", BT_MODE64, &in), 0);       /* lock xadd [rsi],ecx */
	CHECK_EQ(dec("f001c8", BT_MODE64, &in), -EILSEQ);   /* lock add eax,ecx */
	CHECK_EQ(dec("f090", BT_MODE64, &in), -EILSEQ);
	CHECK_EQ(dec("06", BT_MODE64, &in), -EILSEQ);       /* push es */
	CHECK_EQ(dec("06", BT_MODE32, &in), 0);
	CHECK_EQ(dec("c5f877", BT_MODE64, &in), -EILSEQ);   /* vzeroupper */
	CHECK_EQ(dec("c4", BT_MODE32, &in), -EAGAIN);
	CHECK_EQ(dec("4883", BT_MODE64, &in), -EAGAIN);
	CHECK_EQ(dec("6666666666666666666666666666489090", BT_MODE64, &in), -E2BIG);
	CHECK_EQ(dec("66666666666666666666666648050100000000", BT_MODE64, &in), -E2BIG);
	CHECK_EQ(dec("666666666648050100", BT_MODE64, &in), -EAGAIN);
	CHECK_EQ(dec("0f20c0", BT_MODE64, &in), 0);         /* mov rax,cr0 */
	CHECK(in.flags & BT_I_SYS);
	CHECK_EQ(dec("0f2000", BT_MODE64, &in), 0);         /* mod ignored */
	CHECK_EQ(in.len, 3); CHECK_EQ(in.mod, 3);
	CHECK_EQ(dec("a1efcdab8967452301", BT_MODE64, &in), 0);
	CHECK(in.flags & BT_I_MOFFS); CHECK_EQ(in.disp, 0x0123456789abcdefll);
}

int main(int argc, char **argv)
{
	if (argc > 1) {
		for (int k = 1; k < argc; k++)
			show(argv[k]);
		return 0;
	}
	TEST(test_fields);
	TEST(test_capstone);
	if (access("/lib/x86_64-linux-gnu/libc.so.6", R_OK) == 0)
		TEST(test_real_code);
	else
		SKIP(test_real_code, "no /lib/x86_64-linux-gnu/libc.so.6");
	TEST_EXIT();
}
