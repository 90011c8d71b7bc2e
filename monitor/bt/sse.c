/* SSE/SSE2/SSE3/SSSE3/SSE4.1 arithmetic, logic, compares, conversions,
 * shuffles and packed-integer operations of the xmm, xmm/m128 shape. Each
 * is run on the host's SSE unit with the one real instruction (see
 * sse_int.h); moves, GPR transfers and flag-setting ones are in
 * sse_move.c. MMX (no-prefix 0F 60-7F, D0-FF) is not supported. */
#include <string.h>
#include "monitor/bt/sse_int.h"

void bt_sse_check(struct bt_cpu *c)
{
	if ((c->cr0 & 4) || !(c->cr4 & (1u << 9)))   /* CR0.EM, CR4.OSFXSR */
		bt_raise(c, BT_UD);
	if (c->cr0 & 8)                             /* CR0.TS */
		bt_raise(c, BT_NM);
}

void sse_src(struct bt_cpu *c, const struct bt_insn *i, union bt_xmm *out, int msize, int align)
{
	if (i->mod == 3) {
		*out = c->xmm[i->rm];
		return;
	}
	int seg = bt_ea_seg(i);
	uint64_t off = bt_ea(c, i);
	if (align && ((c->seg[seg].base + off) & 15))
		bt_raise_err(c, BT_GP, 0);
	memset(out, 0, sizeof(*out));
	if (msize == 16) {
		out->q[0] = bt_read(c, seg, off, 8);
		out->q[1] = bt_read(c, seg, off + 8, 8);
	} else {
		out->q[0] = bt_read(c, seg, off, msize);
	}
}

void mx_leave(struct bt_cpu *c, uint32_t host)
{
	uint32_t after;
	__asm__ volatile("stmxcsr %0" : "=m"(after));
	__asm__ volatile("ldmxcsr %0" : : "m"(host) : "memory");
	uint32_t flags = after & 0x3f;
	uint32_t unmasked = flags & ~(c->mxcsr >> 7) & 0x3f;
	if (unmasked) {
		/* Only the flags of the faulting operation's exceptions that
		 * are unmasked are reported with #XM; denormal/precision may
		 * accompany them. */
		c->mxcsr |= flags;
		bt_raise(c, (c->cr4 & CR4_OSXMMEXCPT) ? BT_XM : BT_UD);
	}
	c->mxcsr |= flags;
}

static inline __attribute__((always_inline)) void
sse_bin(struct bt_cpu *c, const struct bt_insn *i, sse_host_fn fn, int fp, int msize, int align)
{
	union bt_xmm s, d;
	bt_sse_check(c);
	sse_src(c, i, &s, msize, align);
	d = c->xmm[i->reg];
	if (fp) {
		uint32_t h = mx_enter(c);
		fn(&d, &s);
		mx_leave(c, h);
	} else {
		fn(&d, &s);
	}
	c->xmm[i->reg] = d;
}

static inline __attribute__((always_inline)) void
sse_imm(struct bt_cpu *c, const struct bt_insn *i, sse_host_imm_fn fn, int fp, int msize, int align)
{
	union bt_xmm s, d;
	bt_sse_check(c);
	sse_src(c, i, &s, msize, align);
	d = c->xmm[i->reg];
	if (fp) {
		uint32_t h = mx_enter(c);
		fn(&d, &s, (int)i->imm);
		mx_leave(c, h);
	} else {
		fn(&d, &s, (int)i->imm);
	}
	c->xmm[i->reg] = d;
}

#define FP 1
#define IN 0
#define BIN(name, insn, fp, ms, al) HOST_BIN(h_##name, insn) \
static void ex_##name(struct bt_cpu *c, const struct bt_insn *i) { sse_bin(c, i, h_##name, fp, ms, al); }
#define IMM(name, insn, kind, fp, ms, al) kind(h_##name, insn) \
static void ex_##name(struct bt_cpu *c, const struct bt_insn *i) { sse_imm(c, i, h_##name, fp, ms, al); }

/* ---- floating point ---- */
BIN(sqrtps, "sqrtps", FP, 16, 1) BIN(sqrtpd, "sqrtpd", FP, 16, 1)
BIN(sqrtss, "sqrtss", FP, 4, 0) BIN(sqrtsd, "sqrtsd", FP, 8, 0)
BIN(rsqrtps, "rsqrtps", FP, 16, 1) BIN(rsqrtss, "rsqrtss", FP, 4, 0)
BIN(rcpps, "rcpps", FP, 16, 1) BIN(rcpss, "rcpss", FP, 4, 0)
#define ARITH(op) BIN(op##ps, #op "ps", FP, 16, 1) BIN(op##pd, #op "pd", FP, 16, 1) \
	BIN(op##ss, #op "ss", FP, 4, 0) BIN(op##sd, #op "sd", FP, 8, 0)
ARITH(add) ARITH(mul) ARITH(sub) ARITH(min) ARITH(div) ARITH(max)
BIN(cvtps2pd, "cvtps2pd", FP, 8, 0) BIN(cvtpd2ps, "cvtpd2ps", FP, 16, 1)
BIN(cvtss2sd, "cvtss2sd", FP, 4, 0) BIN(cvtsd2ss, "cvtsd2ss", FP, 8, 0)
BIN(cvtdq2ps, "cvtdq2ps", FP, 16, 1) BIN(cvtps2dq, "cvtps2dq", FP, 16, 1)
BIN(cvttps2dq, "cvttps2dq", FP, 16, 1)
BIN(cvttpd2dq, "cvttpd2dq", FP, 16, 1) BIN(cvtdq2pd, "cvtdq2pd", FP, 8, 0)
BIN(cvtpd2dq, "cvtpd2dq", FP, 16, 1)
BIN(haddpd, "haddpd", FP, 16, 1) BIN(haddps, "haddps", FP, 16, 1)
BIN(hsubpd, "hsubpd", FP, 16, 1) BIN(hsubps, "hsubps", FP, 16, 1)
BIN(addsubpd, "addsubpd", FP, 16, 1) BIN(addsubps, "addsubps", FP, 16, 1)
IMM(cmpps, "cmpps", HOST_IMM8, FP, 16, 1) IMM(cmppd, "cmppd", HOST_IMM8, FP, 16, 1)
IMM(cmpss, "cmpss", HOST_IMM8, FP, 4, 0) IMM(cmpsd, "cmpsd", HOST_IMM8, FP, 8, 0)
IMM(roundps, "roundps", HOST_IMM16, FP, 16, 1) IMM(roundpd, "roundpd", HOST_IMM16, FP, 16, 1)
IMM(roundss, "roundss", HOST_IMM16, FP, 4, 0) IMM(roundsd, "roundsd", HOST_IMM16, FP, 8, 0)
IMM(dpps, "dpps", HOST_IMM256, FP, 16, 1) IMM(dppd, "dppd", HOST_IMM256, FP, 16, 1)

/* ---- bitwise, shuffles, unpacks ---- */
BIN(andps, "andps", IN, 16, 1) BIN(andpd, "andpd", IN, 16, 1)
BIN(andnps, "andnps", IN, 16, 1) BIN(andnpd, "andnpd", IN, 16, 1)
BIN(orps, "orps", IN, 16, 1) BIN(orpd, "orpd", IN, 16, 1)
BIN(xorps, "xorps", IN, 16, 1) BIN(xorpd, "xorpd", IN, 16, 1)
BIN(unpcklps, "unpcklps", IN, 16, 1) BIN(unpcklpd, "unpcklpd", IN, 16, 1)
BIN(unpckhps, "unpckhps", IN, 16, 1) BIN(unpckhpd, "unpckhpd", IN, 16, 1)
BIN(movsldup, "movsldup", IN, 16, 1) BIN(movshdup, "movshdup", IN, 16, 1)
BIN(movddup, "movddup", IN, 8, 0)
IMM(shufps, "shufps", HOST_IMM256, IN, 16, 1) IMM(shufpd, "shufpd", HOST_IMM256, IN, 16, 1)
IMM(pshufd, "pshufd", HOST_IMM256, IN, 16, 1) IMM(pshufhw, "pshufhw", HOST_IMM256, IN, 16, 1)
IMM(pshuflw, "pshuflw", HOST_IMM256, IN, 16, 1)
IMM(blendps, "blendps", HOST_IMM16, IN, 16, 1) IMM(blendpd, "blendpd", HOST_IMM16, IN, 16, 1)
IMM(pblendw, "pblendw", HOST_IMM256, IN, 16, 1) IMM(palignr, "palignr", HOST_IMM256, IN, 16, 1)
IMM(mpsadbw, "mpsadbw", HOST_IMM8, IN, 16, 1) IMM(insertps_r, "insertps", HOST_IMM256, IN, 16, 0)

/* ---- packed integer (66 0F) ---- */
#define PI(name) BIN(name, #name, IN, 16, 1)
PI(punpcklbw) PI(punpcklwd) PI(punpckldq) PI(packsswb) PI(pcmpgtb) PI(pcmpgtw)
PI(pcmpgtd) PI(packuswb) PI(punpckhbw) PI(punpckhwd) PI(punpckhdq) PI(packssdw)
PI(punpcklqdq) PI(punpckhqdq) PI(pcmpeqb) PI(pcmpeqw) PI(pcmpeqd)
PI(psrlw) PI(psrld) PI(psrlq) PI(paddq) PI(pmullw) PI(psubusb) PI(psubusw)
PI(pminub) PI(pand) PI(paddusb) PI(paddusw) PI(pmaxub) PI(pandn) PI(pavgb)
PI(psraw) PI(psrad) PI(pavgw) PI(pmulhuw) PI(pmulhw) PI(psubsb) PI(psubsw)
PI(pminsw) PI(por) PI(paddsb) PI(paddsw) PI(pmaxsw) PI(pxor) PI(psllw) PI(pslld)
PI(psllq) PI(pmuludq) PI(pmaddwd) PI(psadbw) PI(psubb) PI(psubw) PI(psubd)
PI(psubq) PI(paddb) PI(paddw) PI(paddd)
/* SSSE3 */
PI(pshufb) PI(phaddw) PI(phaddd) PI(phaddsw) PI(pmaddubsw) PI(phsubw) PI(phsubd)
PI(phsubsw) PI(psignb) PI(psignw) PI(psignd) PI(pmulhrsw) PI(pabsb) PI(pabsw) PI(pabsd)
/* SSE4.1 / 4.2 */
PI(pmuldq) PI(pcmpeqq) PI(packusdw) PI(pcmpgtq) PI(pminsb) PI(pminsd) PI(pminuw)
PI(pminud) PI(pmaxsb) PI(pmaxsd) PI(pmaxuw) PI(pmaxud) PI(pmulld) PI(phminposuw)
BIN(pmovsxbw, "pmovsxbw", IN, 8, 0) BIN(pmovsxbd, "pmovsxbd", IN, 4, 0)
BIN(pmovsxbq, "pmovsxbq", IN, 2, 0) BIN(pmovsxwd, "pmovsxwd", IN, 8, 0)
BIN(pmovsxwq, "pmovsxwq", IN, 4, 0) BIN(pmovsxdq, "pmovsxdq", IN, 8, 0)
BIN(pmovzxbw, "pmovzxbw", IN, 8, 0) BIN(pmovzxbd, "pmovzxbd", IN, 4, 0)
BIN(pmovzxbq, "pmovzxbq", IN, 2, 0) BIN(pmovzxwd, "pmovzxwd", IN, 8, 0)
BIN(pmovzxwq, "pmovzxwq", IN, 4, 0) BIN(pmovzxdq, "pmovzxdq", IN, 8, 0)

/* INSERTPS from memory: the float goes in lane 0 and imm[7:6] (source
 * lane) is ignored, as the CPU does for a memory source. */
static void ex_insertps(struct bt_cpu *c, const struct bt_insn *i)
{
	union bt_xmm s, d;
	bt_sse_check(c);
	if (i->mod == 3) {
		ex_insertps_r(c, i);
		return;
	}
	sse_src(c, i, &s, 4, 0);
	d = c->xmm[i->reg];
	h_insertps_r(&d, &s, (int)(i->imm & 0x3f));
	c->xmm[i->reg] = d;
}

/* PBLENDVB/BLENDVPS/BLENDVPD: implicit mask in xmm0. */
#define BLENDV(name, insn) \
static void ex_##name(struct bt_cpu *c, const struct bt_insn *i) \
{ \
	union bt_xmm s, d, m; \
	bt_sse_check(c); \
	sse_src(c, i, &s, 16, 1); \
	d = c->xmm[i->reg]; \
	m = c->xmm[0]; \
	__asm__ volatile("movdqu %2, %%xmm0\n\tmovdqu %0, %%xmm1\n\tmovdqu %1, %%xmm2\n\t" \
			 insn " %%xmm0, %%xmm2, %%xmm1\n\tmovdqu %%xmm1, %0" \
			 : "+m"(d) : "m"(s), "m"(m) : "xmm0", "xmm1", "xmm2", "memory"); \
	c->xmm[i->reg] = d; \
}
BLENDV(pblendvb, "pblendvb") BLENDV(blendvps, "blendvps") BLENDV(blendvpd, "blendvpd")

#define P(op, pfx) (((op) << 2) | (pfx))
bt_exec_fn bt_sel_sse(const struct bt_insn *i)
{
	int map = BT_MAP(i->op);
	if (map == 0)
		return NULL;
	int pfx = i->rep == 0xf3 ? 2 : i->rep == 0xf2 ? 3 : i->pfx66 ? 1 : 0;
	uint8_t b = BT_BYTE(i->op);
	if (map == 1) {
		switch (P(b, pfx)) {
		case P(0x51, 0): return ex_sqrtps; case P(0x51, 1): return ex_sqrtpd;
		case P(0x51, 2): return ex_sqrtss; case P(0x51, 3): return ex_sqrtsd;
		case P(0x52, 0): return ex_rsqrtps; case P(0x52, 2): return ex_rsqrtss;
		case P(0x53, 0): return ex_rcpps; case P(0x53, 2): return ex_rcpss;
		case P(0x54, 0): return ex_andps; case P(0x54, 1): return ex_andpd;
		case P(0x55, 0): return ex_andnps; case P(0x55, 1): return ex_andnpd;
		case P(0x56, 0): return ex_orps; case P(0x56, 1): return ex_orpd;
		case P(0x57, 0): return ex_xorps; case P(0x57, 1): return ex_xorpd;
#define AR(o, n) case P(o, 0): return ex_##n##ps; case P(o, 1): return ex_##n##pd; \
		 case P(o, 2): return ex_##n##ss; case P(o, 3): return ex_##n##sd;
		AR(0x58, add) AR(0x59, mul) AR(0x5c, sub) AR(0x5d, min) AR(0x5e, div) AR(0x5f, max)
		case P(0x5a, 0): return ex_cvtps2pd; case P(0x5a, 1): return ex_cvtpd2ps;
		case P(0x5a, 2): return ex_cvtss2sd; case P(0x5a, 3): return ex_cvtsd2ss;
		case P(0x5b, 0): return ex_cvtdq2ps; case P(0x5b, 1): return ex_cvtps2dq;
		case P(0x5b, 2): return ex_cvttps2dq;
		case P(0xe6, 1): return ex_cvttpd2dq; case P(0xe6, 2): return ex_cvtdq2pd;
		case P(0xe6, 3): return ex_cvtpd2dq;
		case P(0x7c, 1): return ex_haddpd; case P(0x7c, 3): return ex_haddps;
		case P(0x7d, 1): return ex_hsubpd; case P(0x7d, 3): return ex_hsubps;
		case P(0xd0, 1): return ex_addsubpd; case P(0xd0, 3): return ex_addsubps;
		case P(0xc2, 0): return ex_cmpps; case P(0xc2, 1): return ex_cmppd;
		case P(0xc2, 2): return ex_cmpss; case P(0xc2, 3): return ex_cmpsd;
		case P(0x14, 0): return ex_unpcklps; case P(0x14, 1): return ex_unpcklpd;
		case P(0x15, 0): return ex_unpckhps; case P(0x15, 1): return ex_unpckhpd;
		case P(0x12, 2): return ex_movsldup; case P(0x12, 3): return ex_movddup;
		case P(0x16, 2): return ex_movshdup;
		case P(0xc6, 0): return ex_shufps; case P(0xc6, 1): return ex_shufpd;
		case P(0x70, 1): return ex_pshufd; case P(0x70, 2): return ex_pshufhw;
		case P(0x70, 3): return ex_pshuflw;
#define I1(o, n) case P(o, 1): return ex_##n;
		I1(0x60, punpcklbw) I1(0x61, punpcklwd) I1(0x62, punpckldq) I1(0x63, packsswb)
		I1(0x64, pcmpgtb) I1(0x65, pcmpgtw) I1(0x66, pcmpgtd) I1(0x67, packuswb)
		I1(0x68, punpckhbw) I1(0x69, punpckhwd) I1(0x6a, punpckhdq) I1(0x6b, packssdw)
		I1(0x6c, punpcklqdq) I1(0x6d, punpckhqdq) I1(0x74, pcmpeqb) I1(0x75, pcmpeqw)
		I1(0x76, pcmpeqd) I1(0xd1, psrlw) I1(0xd2, psrld) I1(0xd3, psrlq) I1(0xd4, paddq)
		I1(0xd5, pmullw) I1(0xd8, psubusb) I1(0xd9, psubusw) I1(0xda, pminub) I1(0xdb, pand)
		I1(0xdc, paddusb) I1(0xdd, paddusw) I1(0xde, pmaxub) I1(0xdf, pandn) I1(0xe0, pavgb)
		I1(0xe1, psraw) I1(0xe2, psrad) I1(0xe3, pavgw) I1(0xe4, pmulhuw) I1(0xe5, pmulhw)
		I1(0xe8, psubsb) I1(0xe9, psubsw) I1(0xea, pminsw) I1(0xeb, por) I1(0xec, paddsb)
		I1(0xed, paddsw) I1(0xee, pmaxsw) I1(0xef, pxor) I1(0xf1, psllw) I1(0xf2, pslld)
		I1(0xf3, psllq) I1(0xf4, pmuludq) I1(0xf5, pmaddwd) I1(0xf6, psadbw) I1(0xf8, psubb)
		I1(0xf9, psubw) I1(0xfa, psubd) I1(0xfb, psubq) I1(0xfc, paddb) I1(0xfd, paddw)
		I1(0xfe, paddd)
		}
		return bt_sel_sse_more(i);
	}
	if (pfx != 1)
		return NULL;
	if (map == 2) {
		switch (b) {
		case 0x00: return ex_pshufb; case 0x01: return ex_phaddw; case 0x02: return ex_phaddd;
		case 0x03: return ex_phaddsw; case 0x04: return ex_pmaddubsw; case 0x05: return ex_phsubw;
		case 0x06: return ex_phsubd; case 0x07: return ex_phsubsw; case 0x08: return ex_psignb;
		case 0x09: return ex_psignw; case 0x0a: return ex_psignd; case 0x0b: return ex_pmulhrsw;
		case 0x1c: return ex_pabsb; case 0x1d: return ex_pabsw; case 0x1e: return ex_pabsd;
		case 0x10: return ex_pblendvb; case 0x14: return ex_blendvps; case 0x15: return ex_blendvpd;
		case 0x20: return ex_pmovsxbw; case 0x21: return ex_pmovsxbd; case 0x22: return ex_pmovsxbq;
		case 0x23: return ex_pmovsxwd; case 0x24: return ex_pmovsxwq; case 0x25: return ex_pmovsxdq;
		case 0x30: return ex_pmovzxbw; case 0x31: return ex_pmovzxbd; case 0x32: return ex_pmovzxbq;
		case 0x33: return ex_pmovzxwd; case 0x34: return ex_pmovzxwq; case 0x35: return ex_pmovzxdq;
		case 0x28: return ex_pmuldq; case 0x29: return ex_pcmpeqq; case 0x2b: return ex_packusdw;
		case 0x37: return ex_pcmpgtq; case 0x38: return ex_pminsb; case 0x39: return ex_pminsd;
		case 0x3a: return ex_pminuw; case 0x3b: return ex_pminud; case 0x3c: return ex_pmaxsb;
		case 0x3d: return ex_pmaxsd; case 0x3e: return ex_pmaxuw; case 0x3f: return ex_pmaxud;
		case 0x40: return ex_pmulld; case 0x41: return ex_phminposuw;
		}
		return bt_sel_sse_more(i);
	}
	switch (b) {
	case 0x08: return ex_roundps; case 0x09: return ex_roundpd;
	case 0x0a: return ex_roundss; case 0x0b: return ex_roundsd;
	case 0x0c: return ex_blendps; case 0x0d: return ex_blendpd;
	case 0x0e: return ex_pblendw; case 0x0f: return ex_palignr;
	case 0x21: return ex_insertps;
	case 0x40: return ex_dpps; case 0x41: return ex_dppd; case 0x42: return ex_mpsadbw;
	}
	return bt_sel_sse_more(i);
}
