/* SSE moves (aligned/unaligned, scalar, low/high halves, non-temporal),
 * GPR <-> xmm transfers (MOVD/MOVQ, MOVMSK, PMOVMSKB, PEXTR/PINSR, scalar
 * conversions to and from integers), flag-setting compares (COMIS/UCOMIS,
 * PTEST, PCMPxSTRx), shifts by immediate, MASKMOVDQU, MOVNTI, LDMXCSR and
 * STMXCSR. */
#include <string.h>
#include "monitor/bt/sse_int.h"

static void st_xmm(struct bt_cpu *c, const struct bt_insn *i, const union bt_xmm *v, int msize, int align)
{
	int seg = bt_ea_seg(i);
	uint64_t off = bt_ea(c, i);
	if (align && ((c->seg[seg].base + off) & 15))
		bt_raise_err(c, BT_GP, 0);
	if (msize == 16) {
		/* Check both halves before writing either. */
		bt_write_buf(c, seg, off, v, 16);
	} else {
		bt_write(c, seg, off, msize, v->q[0]);
	}
}

/* 0F 10/11/28/29/6F/7F/2B/E7/F0 and 38 2A: full-register moves. */
static void ex_mov_load(struct bt_cpu *c, const struct bt_insn *i)
{
	int al = BT_BYTE(i->op) == 0x28 || (BT_BYTE(i->op) == 0x6f && i->rep != 0xf3) ||
		 BT_MAP(i->op) == 2;
	bt_sse_check(c);
	union bt_xmm v;
	sse_src(c, i, &v, 16, al);
	c->xmm[i->reg] = v;
}

static void ex_mov_store(struct bt_cpu *c, const struct bt_insn *i)
{
	uint8_t b = BT_BYTE(i->op);
	int al = b == 0x29 || b == 0x2b || b == 0xe7 || (b == 0x7f && i->rep != 0xf3);
	bt_sse_check(c);
	if (i->mod == 3)
		c->xmm[i->rm] = c->xmm[i->reg];
	else
		st_xmm(c, i, &c->xmm[i->reg], 16, al);
}

/* F3/F2 0F 10/11: MOVSS/MOVSD. */
static void ex_movs(struct bt_cpu *c, const struct bt_insn *i)
{
	int n = i->rep == 0xf3 ? 4 : 8;
	bt_sse_check(c);
	if (BT_BYTE(i->op) == 0x10) {
		if (i->mod == 3) {
			memcpy(&c->xmm[i->reg], &c->xmm[i->rm], n);
		} else {
			union bt_xmm v;
			sse_src(c, i, &v, n, 0);
			c->xmm[i->reg] = v;
		}
	} else if (i->mod == 3) {
		memcpy(&c->xmm[i->rm], &c->xmm[i->reg], n);
	} else {
		st_xmm(c, i, &c->xmm[i->reg], n, 0);
	}
}

/* 0F 12/13/16/17: MOVLPS/MOVLPD/MOVHLPS, MOVHPS/MOVHPD/MOVLHPS. */
static void ex_movlh(struct bt_cpu *c, const struct bt_insn *i)
{
	uint8_t b = BT_BYTE(i->op);
	int hi = b == 0x16 || b == 0x17;
	bt_sse_check(c);
	if (b == 0x13 || b == 0x17) {
		int seg = bt_ea_seg(i);
		bt_write(c, seg, bt_ea(c, i), 8, c->xmm[i->reg].q[hi]);
		return;
	}
	if (i->mod == 3)     /* MOVHLPS / MOVLHPS */
		c->xmm[i->reg].q[hi] = c->xmm[i->rm].q[!hi];
	else
		c->xmm[i->reg].q[hi] = bt_read(c, bt_ea_seg(i), bt_ea(c, i), 8);
}

/* 66 0F 6E: MOVD/MOVQ xmm, r/m. */
static void ex_movd_in(struct bt_cpu *c, const struct bt_insn *i)
{
	int size = i->opsize == 8 ? 8 : 4;
	bt_sse_check(c);
	uint64_t v = e_rd(c, i, size);
	memset(&c->xmm[i->reg], 0, 16);
	c->xmm[i->reg].q[0] = v;
}

/* 66 0F 7E: MOVD/MOVQ r/m, xmm; F3 0F 7E: MOVQ xmm, xmm/m64. */
static void ex_movd_out(struct bt_cpu *c, const struct bt_insn *i)
{
	bt_sse_check(c);
	if (i->rep == 0xf3) {
		union bt_xmm v;
		sse_src(c, i, &v, 8, 0);
		v.q[1] = 0;
		c->xmm[i->reg] = v;
		return;
	}
	int size = i->opsize == 8 ? 8 : 4;
	e_wr(c, i, size, c->xmm[i->reg].q[0]);
}

/* 66 0F D6: MOVQ xmm/m64, xmm. */
static void ex_movq_st(struct bt_cpu *c, const struct bt_insn *i)
{
	bt_sse_check(c);
	if (i->mod == 3) {
		c->xmm[i->rm].q[0] = c->xmm[i->reg].q[0];
		c->xmm[i->rm].q[1] = 0;
	} else {
		bt_write(c, bt_ea_seg(i), bt_ea(c, i), 8, c->xmm[i->reg].q[0]);
	}
}

static void ex_movmsk(struct bt_cpu *c, const struct bt_insn *i)
{
	const union bt_xmm *x = &c->xmm[i->rm];
	uint32_t m = 0;
	bt_sse_check(c);
	if (BT_BYTE(i->op) == 0xd7) {
		for (int k = 0; k < 16; k++)
			m |= (uint32_t)(x->b[k] >> 7) << k;
	} else if (i->pfx66) {
		m = (uint32_t)(x->q[0] >> 63) | (uint32_t)(x->q[1] >> 63) << 1;
	} else {
		for (int k = 0; k < 4; k++)
			m |= (x->d[k] >> 31) << k;
	}
	reg_wr(c, i, i->reg, i->opsize == 8 ? 8 : 4, m);
}

/* PINSRW (0F C4), PEXTRW (0F C5), and 0F 3A 14-17/20/22. */
static void ex_pinsrw(struct bt_cpu *c, const struct bt_insn *i)
{
	bt_sse_check(c);
	c->xmm[i->reg].w[i->imm & 7] = (uint16_t)e_rd(c, i, 2);
}

static void ex_pextrw(struct bt_cpu *c, const struct bt_insn *i)
{
	bt_sse_check(c);
	reg_wr(c, i, i->reg, i->opsize == 8 ? 8 : 4, c->xmm[i->rm].w[i->imm & 7]);
}

static void ex_pextr(struct bt_cpu *c, const struct bt_insn *i)
{
	const union bt_xmm *x = &c->xmm[i->reg];
	uint64_t v;
	int size;
	bt_sse_check(c);
	switch (BT_BYTE(i->op)) {
	case 0x14: v = x->b[i->imm & 15]; size = 1; break;
	case 0x15: v = x->w[i->imm & 7]; size = 2; break;
	case 0x16:
		if (i->opsize == 8) { v = x->q[i->imm & 1]; size = 8; }
		else { v = x->d[i->imm & 3]; size = 4; }
		break;
	default: v = x->d[i->imm & 3]; size = 4; break;      /* EXTRACTPS */
	}
	if (i->mod == 3)    /* register destinations are zero-extended */
		reg_wr(c, i, i->rm, i->opsize == 8 ? 8 : 4, v);
	else
		bt_write(c, bt_ea_seg(i), bt_ea(c, i), size, v);
}

static void ex_pinsr(struct bt_cpu *c, const struct bt_insn *i)
{
	union bt_xmm *x = &c->xmm[i->reg];
	bt_sse_check(c);
	switch (BT_BYTE(i->op)) {
	case 0x20: x->b[i->imm & 15] = (uint8_t)e_rd(c, i, 1); break;
	default:
		if (i->opsize == 8)
			x->q[i->imm & 1] = e_rd(c, i, 8);
		else
			x->d[i->imm & 3] = (uint32_t)e_rd(c, i, 4);
	}
}

/* F3/F2 0F 2A: CVTSI2SS/SD; F3/F2 0F 2C/2D: CVT(T)SS2SI / CVT(T)SD2SI. */
static void ex_cvtsi2s(struct bt_cpu *c, const struct bt_insn *i)
{
	bt_sse_check(c);
	uint64_t v = e_rd(c, i, i->opsize == 8 ? 8 : 4);
	union bt_xmm d = c->xmm[i->reg];
	uint32_t h = mx_enter(c);
	int64_t sv = i->opsize == 8 ? (int64_t)v : (int32_t)v;
	if (i->rep == 0xf3)
		__asm__ volatile("movdqu %0, %%xmm0\n\tcvtsi2ssq %1, %%xmm0\n\tmovdqu %%xmm0, %0"
				 : "+m"(d) : "r"(sv) : "xmm0", "memory");
	else
		__asm__ volatile("movdqu %0, %%xmm0\n\tcvtsi2sdq %1, %%xmm0\n\tmovdqu %%xmm0, %0"
				 : "+m"(d) : "r"(sv) : "xmm0", "memory");
	mx_leave(c, h);
	c->xmm[i->reg] = d;
}

static void ex_cvts2si(struct bt_cpu *c, const struct bt_insn *i)
{
	union bt_xmm s;
	int ss = i->rep == 0xf3, trunc = BT_BYTE(i->op) == 0x2c, q = i->opsize == 8;
	bt_sse_check(c);
	sse_src(c, i, &s, ss ? 4 : 8, 0);
	uint64_t r;
	uint32_t h = mx_enter(c);
	/* %q0 / %k0: the 64- or 32-bit name of the output register */
#define CV(insn, w) __asm__ volatile("movdqu %1, %%xmm0\n\t" insn " %%xmm0, %" w "0" \
				     : "=r"(r) : "m"(s) : "xmm0")
	if (ss && trunc) { if (q) CV("cvttss2si", "q"); else CV("cvttss2si", "k"); }
	else if (ss) { if (q) CV("cvtss2si", "q"); else CV("cvtss2si", "k"); }
	else if (trunc) { if (q) CV("cvttsd2si", "q"); else CV("cvttsd2si", "k"); }
	else { if (q) CV("cvtsd2si", "q"); else CV("cvtsd2si", "k"); }
#undef CV
	mx_leave(c, h);
	reg_wr(c, i, i->reg, q ? 8 : 4, r);
}

/* 0F 2E/2F: UCOMISS/COMISS (no prefix), UCOMISD/COMISD (66). */
static void ex_comis(struct bt_cpu *c, const struct bt_insn *i)
{
	union bt_xmm s, d;
	uint64_t fl;
	int pd = i->pfx66, ord = BT_BYTE(i->op) == 0x2f;
	bt_sse_check(c);
	sse_src(c, i, &s, pd ? 8 : 4, 0);
	d = c->xmm[i->reg];
	uint32_t h = mx_enter(c);
#define CM(insn) __asm__ volatile("movdqu %1, %%xmm0\n\tmovdqu %2, %%xmm1\n\t" insn " %%xmm1, %%xmm0\n\t" \
				  "pushfq\n\tpopq %0" : "=r"(fl) : "m"(d), "m"(s) : "xmm0", "xmm1", "cc")
	if (pd) { if (ord) CM("comisd"); else CM("ucomisd"); }
	else { if (ord) CM("comiss"); else CM("ucomiss"); }
#undef CM
	mx_leave(c, h);
	bt_flags_set(c, BT_ARITH_FLAGS, (uint32_t)fl & (BT_ZF | BT_PF_FLAG | BT_CF));
}

/* 66 0F 38 17: PTEST. */
static void ex_ptest(struct bt_cpu *c, const struct bt_insn *i)
{
	union bt_xmm s;
	bt_sse_check(c);
	sse_src(c, i, &s, 16, 1);
	const union bt_xmm *d = &c->xmm[i->reg];
	int zf = !((d->q[0] & s.q[0]) | (d->q[1] & s.q[1]));
	int cf = !((~d->q[0] & s.q[0]) | (~d->q[1] & s.q[1]));
	bt_flags_set(c, BT_ARITH_FLAGS, (zf ? BT_ZF : 0) | (cf ? BT_CF : 0));
}

/* 66 0F 3A 60-63: PCMPESTRM/PCMPESTRI/PCMPISTRM/PCMPISTRI. */
#define PCS(n) case (n): \
	__asm__ volatile("movdqu %3, %%xmm0\n\tmovdqu %4, %%xmm1\n\t" INSN " %5, %%xmm1, %%xmm0\n\t" \
			 "pushfq\n\tpopq %1\n\tmovdqu %%xmm0, %2" \
			 : "=c"(ecx), "=r"(fl), "=m"(out) \
			 : "m"(d), "m"(s), "i"(n), "a"(la), "d"(ld) : "xmm0", "xmm1", "cc", "memory"); \
	break;
#define PCS4(n) PCS(n) PCS((n) + 1) PCS((n) + 2) PCS((n) + 3)
#define PCS16(n) PCS4(n) PCS4((n) + 4) PCS4((n) + 8) PCS4((n) + 12)
#define PCS128 PCS16(0) PCS16(16) PCS16(32) PCS16(48) PCS16(64) PCS16(80) PCS16(96) PCS16(112)
#define PCMPSTR(name, insn) \
static void name(const union bt_xmm *dp, const union bt_xmm *sp, int imm, uint32_t la, uint32_t ld, \
		 uint32_t *ecxp, uint64_t *flp, union bt_xmm *outp) \
{ \
	union bt_xmm d = *dp, s = *sp, out = *outp; \
	uint32_t ecx = 0; uint64_t fl = 0; \
	switch (imm & 127) { PCS128 } \
	*ecxp = ecx; *flp = fl; *outp = out; \
}
#define INSN "pcmpestri"
PCMPSTR(h_pcmpestri, INSN)
#undef INSN
#define INSN "pcmpestrm"
PCMPSTR(h_pcmpestrm, INSN)
#undef INSN
#define INSN "pcmpistri"
PCMPSTR(h_pcmpistri, INSN)
#undef INSN
#define INSN "pcmpistrm"
PCMPSTR(h_pcmpistrm, INSN)
#undef INSN

static uint32_t clamp_len(uint64_t v, int q)
{
	int64_t s = q ? (int64_t)v : (int32_t)v;
	if (s > 64) s = 64;
	if (s < -64) s = -64;
	return (uint32_t)s;
}

static void ex_pcmpstr(struct bt_cpu *c, const struct bt_insn *i)
{
	union bt_xmm s, out = c->xmm[0];
	uint32_t ecx;
	uint64_t fl;
	int q = i->opsize == 8;
	bt_sse_check(c);
	sse_src(c, i, &s, 16, 0);
	uint32_t la = clamp_len(c->r[0], q), ld = clamp_len(c->r[2], q);
	switch (BT_BYTE(i->op)) {
	case 0x60: h_pcmpestrm(&c->xmm[i->reg], &s, (int)i->imm, la, ld, &ecx, &fl, &out); break;
	case 0x61: h_pcmpestri(&c->xmm[i->reg], &s, (int)i->imm, la, ld, &ecx, &fl, &out); break;
	case 0x62: h_pcmpistrm(&c->xmm[i->reg], &s, (int)i->imm, la, ld, &ecx, &fl, &out); break;
	default: h_pcmpistri(&c->xmm[i->reg], &s, (int)i->imm, la, ld, &ecx, &fl, &out); break;
	}
	if (BT_BYTE(i->op) & 1)
		c->r[CPU_RCX] = ecx;
	else
		c->xmm[0] = out;
	bt_flags_set(c, BT_ARITH_FLAGS, (uint32_t)fl & BT_ARITH_FLAGS);
}

/* 66 0F 71/72/73: shifts by immediate, through the by-xmm forms. */
static void ex_shift_imm(struct bt_cpu *c, const struct bt_insn *i)
{
	union bt_xmm *x = &c->xmm[i->rm];
	unsigned n = (unsigned)(i->imm & 0xff);
	int r = i->reg & 7;
	bt_sse_check(c);
	if (BT_BYTE(i->op) == 0x73 && (r == 3 || r == 7)) {   /* PSRLDQ, PSLLDQ */
		union bt_xmm v;
		memset(&v, 0, sizeof(v));
		if (n < 16) {
			if (r == 3)
				memcpy(v.b, x->b + n, 16 - n);
			else
				memcpy(v.b + n, x->b, 16 - n);
		}
		*x = v;
		return;
	}
	union bt_xmm cnt;
	memset(&cnt, 0, sizeof(cnt));
	cnt.q[0] = n;
	uint8_t b = BT_BYTE(i->op);
	/* element size from the opcode, operation from /r */
	int w = b == 0x71 ? 0 : b == 0x72 ? 1 : 2;
	static const char ops[3][3] = { { 1, 2, 3 }, { 1, 2, 3 }, { 1, 0, 3 } };
	int op = r == 2 ? ops[w][0] : r == 4 ? ops[w][1] : ops[w][2];   /* 1 srl 2 sra 3 sll */
	union bt_xmm d = *x;
	const union bt_xmm *s = &cnt;
#define SH(insn) __asm__ volatile("movdqu %0, %%xmm0\n\tmovdqu %1, %%xmm1\n\t" insn " %%xmm1, %%xmm0\n\t" \
				  "movdqu %%xmm0, %0" : "+m"(d) : "m"(*s) : "xmm0", "xmm1", "memory")
	switch (w * 4 + op) {
	case 1: SH("psrlw"); break; case 2: SH("psraw"); break; case 3: SH("psllw"); break;
	case 5: SH("psrld"); break; case 6: SH("psrad"); break; case 7: SH("pslld"); break;
	case 9: SH("psrlq"); break; case 11: SH("psllq"); break;
	}
#undef SH
	*x = d;
}

static void ex_maskmov(struct bt_cpu *c, const struct bt_insn *i)
{
	const union bt_xmm *v = &c->xmm[i->reg], *m = &c->xmm[i->rm];
	int seg = i->seg != 0xff ? i->seg : SEG_DS;
	uint64_t base = c->r[CPU_RDI];
	bt_sse_check(c);
	for (int k = 0; k < 16; k++)
		if (m->b[k] & 0x80)
			bt_write(c, seg, ea_mask(i, base + k), 1, v->b[k]);
}

static void ex_movnti(struct bt_cpu *c, const struct bt_insn *i)
{
	int size = i->opsize == 8 ? 8 : 4;
	bt_write(c, bt_ea_seg(i), bt_ea(c, i), size, reg_rd(c, i, i->reg, size));
}

static void ex_ldmxcsr(struct bt_cpu *c, const struct bt_insn *i)
{
	bt_sse_check(c);
	uint32_t v = (uint32_t)bt_read(c, bt_ea_seg(i), bt_ea(c, i), 4);
	if (v & ~0xffffu)
		bt_raise_err(c, BT_GP, 0);
	c->mxcsr = v;
}

static void ex_stmxcsr(struct bt_cpu *c, const struct bt_insn *i)
{
	bt_sse_check(c);
	bt_write(c, bt_ea_seg(i), bt_ea(c, i), 4, c->mxcsr);
}

bt_exec_fn bt_sel_sse_more(const struct bt_insn *i)
{
	int map = BT_MAP(i->op);
	int pfx = i->rep == 0xf3 ? 2 : i->rep == 0xf2 ? 3 : i->pfx66 ? 1 : 0;
	uint8_t b = BT_BYTE(i->op);
	if (map == 2) {
		if (b == 0x17) return ex_ptest;
		if (b == 0x2a) return ex_mov_load;    /* MOVNTDQA */
		return NULL;
	}
	if (map == 3) {
		switch (b) {
		case 0x14: case 0x15: case 0x16: case 0x17: return ex_pextr;
		case 0x20: case 0x22: return ex_pinsr;
		case 0x60 ... 0x63: return ex_pcmpstr;
		}
		return NULL;
	}
	switch (b) {
	case 0x10: case 0x11:
		if (pfx >= 2) return ex_movs;
		return b == 0x10 ? ex_mov_load : ex_mov_store;
	case 0x28: return ex_mov_load;
	case 0x29: case 0x2b: return ex_mov_store;
	case 0x12: case 0x13: case 0x16: case 0x17:
		return pfx <= 1 ? ex_movlh : NULL;
	case 0x6f: return pfx ? ex_mov_load : NULL;
	case 0x7f: return pfx ? ex_mov_store : NULL;
	case 0xe7: return pfx == 1 ? ex_mov_store : NULL;
	case 0xf0: return ex_mov_load;               /* LDDQU */
	case 0x6e: return pfx == 1 ? ex_movd_in : NULL;
	case 0x7e: return pfx ? ex_movd_out : NULL;
	case 0xd6: return pfx == 1 ? ex_movq_st : NULL;
	case 0x50: return ex_movmsk;
	case 0xd7: return pfx == 1 ? ex_movmsk : NULL;
	case 0xc4: return pfx == 1 ? ex_pinsrw : NULL;
	case 0xc5: return pfx == 1 ? ex_pextrw : NULL;
	case 0x2a: return pfx >= 2 ? ex_cvtsi2s : NULL;
	case 0x2c: case 0x2d: return pfx >= 2 ? ex_cvts2si : NULL;
	case 0x2e: case 0x2f: return ex_comis;
	case 0x71: case 0x72: case 0x73: return pfx == 1 ? ex_shift_imm : NULL;
	case 0xf7: return pfx == 1 ? ex_maskmov : NULL;
	case 0xc3: return ex_movnti;
	case 0xae:
		if (i->mod != 3 && (i->reg & 7) == 2) return ex_ldmxcsr;
		if (i->mod != 3 && (i->reg & 7) == 3) return ex_stmxcsr;
		return NULL;
	}
	return NULL;
}
