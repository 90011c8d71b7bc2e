/* MMX (the no-prefix 0F 6x/7x/Dx-Fx forms, their SSE-era extensions and
 * the SSSE3 mm forms) run on the host MMX unit. The guest's mm0-mm7 are the
 * low 64 bits of the x87 physical registers R0-R7; an MMX instruction sets
 * TOP to 0, tags every register valid and writes the exponent/sign bits of
 * its destination to all ones; EMMS tags everything empty. */
#include <string.h>
#include "monitor/bt/sse_int.h"

typedef void (*mmx_host_fn)(uint64_t *d, const uint64_t *s);

static inline uint64_t mm_get(const struct bt_cpu *c, int r)
{
	uint64_t v;
	memcpy(&v, &c->st[r & 7], 8);
	return v;
}

static inline void mm_set(struct bt_cpu *c, int r, uint64_t v)
{
	uint8_t *p = (uint8_t *)&c->st[r & 7];
	memcpy(p, &v, 8);
	p[8] = p[9] = 0xff;
}

static void mmx_enter(struct bt_cpu *c)
{
	if (c->cr0 & 4)                     /* CR0.EM */
		bt_raise(c, BT_UD);
	if (c->cr0 & 8)                     /* CR0.TS */
		bt_raise(c, BT_NM);
	if (c->fsw & 0x80)                  /* pending x87 exception */
		bt_raise(c, BT_MF);
	c->fsw &= (uint16_t)~0x3800;        /* TOP = 0 */
	c->ftw = 0;                         /* all valid */
}

static uint64_t mm_src(struct bt_cpu *c, const struct bt_insn *i, int size)
{
	if (i->mod == 3)
		return mm_get(c, i->rm);
	return bt_read(c, bt_ea_seg(i), bt_ea(c, i), size);
}

#define MMX_HOST(name, insn) \
static void name(uint64_t *d, const uint64_t *s) \
{ \
	__asm__ volatile("movq %0, %%mm0\n\tmovq %1, %%mm1\n\t" insn " %%mm1, %%mm0\n\t" \
			 "movq %%mm0, %0\n\temms" : "+m"(*d) : "m"(*s) : "mm0", "mm1", "memory"); \
}
#define MB(name) MMX_HOST(m_##name, #name) \
static void ex_##name(struct bt_cpu *c, const struct bt_insn *i) \
{ \
	uint64_t s = mm_src(c, i, 8), d; \
	mmx_enter(c); \
	d = mm_get(c, i->reg); \
	m_##name(&d, &s); \
	mm_set(c, i->reg, d); \
}
MMX_HOST(m_punpcklbw, "punpcklbw") MMX_HOST(m_punpcklwd, "punpcklwd")
MMX_HOST(m_punpckldq, "punpckldq") MB(packsswb) MB(pcmpgtb) MB(pcmpgtw)
MB(pcmpgtd) MB(packuswb) MB(punpckhbw) MB(punpckhwd) MB(punpckhdq) MB(packssdw)
MB(pcmpeqb) MB(pcmpeqw) MB(pcmpeqd) MB(psrlw) MB(psrld) MB(psrlq) MB(paddq) MB(pmullw)
MB(psubusb) MB(psubusw) MB(pminub) MB(pand) MB(paddusb) MB(paddusw) MB(pmaxub) MB(pandn)
MB(pavgb) MB(psraw) MB(psrad) MB(pavgw) MB(pmulhuw) MB(pmulhw) MB(psubsb) MB(psubsw)
MB(pminsw) MB(por) MB(paddsb) MB(paddsw) MB(pmaxsw) MB(pxor) MB(psllw) MB(pslld) MB(psllq)
MB(pmuludq) MB(pmaddwd) MB(psadbw) MB(psubb) MB(psubw) MB(psubd) MB(psubq) MB(paddb)
MB(paddw) MB(paddd)
MB(pshufb) MB(phaddw) MB(phaddd) MB(phaddsw) MB(pmaddubsw) MB(phsubw) MB(phsubd)
MB(phsubsw) MB(psignb) MB(psignw) MB(psignd) MB(pmulhrsw) MB(pabsb) MB(pabsw) MB(pabsd)

/* PUNPCKL* read only 32 bits from memory. */
static void ex_punpckl32(struct bt_cpu *c, const struct bt_insn *i)
{
	uint64_t s = mm_src(c, i, i->mod == 3 ? 8 : 4), d;
	mmx_enter(c);
	d = mm_get(c, i->reg);
	switch (BT_BYTE(i->op)) {
	case 0x60: m_punpcklbw(&d, &s); break;
	case 0x61: m_punpcklwd(&d, &s); break;
	default: m_punpckldq(&d, &s); break;
	}
	mm_set(c, i->reg, d);
}

static void ex_emms(struct bt_cpu *c, const struct bt_insn *i)
{
	(void)i;
	if (c->cr0 & 4)
		bt_raise(c, BT_UD);
	if (c->cr0 & 8)
		bt_raise(c, BT_NM);
	c->ftw = 0xffff;
}

/* 0F 6E/7E: MOVD/MOVQ mm <-> r/m; 0F 6F/7F: MOVQ mm <-> mm/m64; 0F E7
 * MOVNTQ. */
static void ex_mmx_mov(struct bt_cpu *c, const struct bt_insn *i)
{
	uint8_t b = BT_BYTE(i->op);
	int size = (b == 0x6e || b == 0x7e) ? (i->opsize == 8 ? 8 : 4) : 8;
	if (b == 0x6e || b == 0x6f) {
		uint64_t v = b == 0x6e ? e_rd(c, i, size) : mm_src(c, i, 8);
		mmx_enter(c);
		mm_set(c, i->reg, v);
		return;
	}
	mmx_enter(c);
	uint64_t v = mm_get(c, i->reg);
	if (b == 0x7e)
		e_wr(c, i, size, v);
	else if (i->mod == 3)
		mm_set(c, i->rm, v);
	else
		bt_write(c, bt_ea_seg(i), bt_ea(c, i), 8, v);
}

static void ex_mmx_shift_imm(struct bt_cpu *c, const struct bt_insn *i)
{
	uint64_t cnt = i->imm & 0xff, d;
	int r = i->reg & 7;
	uint8_t b = BT_BYTE(i->op);
	mmx_enter(c);
	d = mm_get(c, i->rm);
	if (b == 0x71) {
		if (r == 2) m_psrlw(&d, &cnt); else if (r == 4) m_psraw(&d, &cnt); else m_psllw(&d, &cnt);
	} else if (b == 0x72) {
		if (r == 2) m_psrld(&d, &cnt); else if (r == 4) m_psrad(&d, &cnt); else m_pslld(&d, &cnt);
	} else {
		if (r == 2) m_psrlq(&d, &cnt); else m_psllq(&d, &cnt);
	}
	mm_set(c, i->rm, d);
}

/* PSHUFW (0F 70), PINSRW (0F C4), PEXTRW (0F C5), PMOVMSKB (0F D7),
 * PALIGNR mm (0F 3A 0F). */
static void ex_mmx_misc(struct bt_cpu *c, const struct bt_insn *i)
{
	uint8_t b = BT_BYTE(i->op);
	int imm = (int)(i->imm & 0xff);
	if (BT_MAP(i->op) == 3) {                         /* PALIGNR */
		uint64_t s = mm_src(c, i, 8);
		mmx_enter(c);
		unsigned __int128 x = ((unsigned __int128)mm_get(c, i->reg) << 64) | s;
		uint64_t r = imm >= 16 ? 0 : (uint64_t)(x >> (8 * imm));
		mm_set(c, i->reg, r);
		return;
	}
	switch (b) {
	case 0x70: {
		uint64_t s = mm_src(c, i, 8), r = 0;
		mmx_enter(c);
		for (int k = 0; k < 4; k++)
			r |= ((s >> (16 * ((imm >> (2 * k)) & 3))) & 0xffff) << (16 * k);
		mm_set(c, i->reg, r);
		return;
	}
	case 0xc4: {
		uint64_t w = e_rd(c, i, 2) & 0xffff;
		mmx_enter(c);
		int sh = 16 * (imm & 3);
		mm_set(c, i->reg, (mm_get(c, i->reg) & ~(0xffffull << sh)) | (w << sh));
		return;
	}
	case 0xc5:
		mmx_enter(c);
		reg_wr(c, i, i->reg, i->opsize == 8 ? 8 : 4, (mm_get(c, i->rm) >> (16 * (imm & 3))) & 0xffff);
		return;
	default: { /* D7 */
		mmx_enter(c);
		uint64_t v = mm_get(c, i->rm);
		uint32_t m = 0;
		for (int k = 0; k < 8; k++)
			m |= (uint32_t)((v >> (8 * k + 7)) & 1) << k;
		reg_wr(c, i, i->reg, i->opsize == 8 ? 8 : 4, m);
		return;
	}
	}
}

/* F3 0F D6 MOVQ2DQ xmm, mm; F2 0F D6 MOVDQ2Q mm, xmm. */
static void ex_movq2dq(struct bt_cpu *c, const struct bt_insn *i)
{
	bt_sse_check(c);
	if (i->rep == 0xf3) {
		mmx_enter(c);
		c->xmm[i->reg].q[0] = mm_get(c, i->rm);
		c->xmm[i->reg].q[1] = 0;
	} else {
		mmx_enter(c);
		mm_set(c, i->reg, c->xmm[i->rm].q[0]);
	}
}

/* MASKMOVQ mm1, mm2: bytes of mm1 selected by mm2's sign bits go to
 * DS:rDI. */
static void ex_maskmovq(struct bt_cpu *c, const struct bt_insn *i)
{
	mmx_enter(c);
	uint64_t v = mm_get(c, i->reg), m = mm_get(c, i->rm);
	int seg = i->seg != 0xff ? i->seg : SEG_DS;
	for (int k = 0; k < 8; k++)
		if ((m >> (8 * k + 7)) & 1)
			bt_write(c, seg, ea_mask(i, c->r[CPU_RDI] + k), 1, (v >> (8 * k)) & 0xff);
}

/* CVTPI2PS/CVTPI2PD (0F 2A), CVTTPS2PI/CVTTPD2PI (0F 2C), CVTPS2PI/
 * CVTPD2PI (0F 2D): packed conversions between mm and xmm, run on the
 * host with the guest MXCSR. */
static void ex_cvt_pi(struct bt_cpu *c, const struct bt_insn *i)
{
	uint8_t b = BT_BYTE(i->op);
	int pd = i->pfx66;
	bt_sse_check(c);
	if (b == 0x2a) {
		uint64_t s = i->mod == 3 ? 0 : bt_read(c, bt_ea_seg(i), bt_ea(c, i), 8);
		if (i->mod == 3) {
			mmx_enter(c);
			s = mm_get(c, i->rm);
		}
		union bt_xmm d = c->xmm[i->reg];
		uint32_t h = mx_enter(c);
		if (pd)
			__asm__ volatile("movq %1, %%mm0\n\tmovdqu %0, %%xmm0\n\tcvtpi2pd %%mm0, %%xmm0\n\t"
					 "movdqu %%xmm0, %0\n\temms" : "+m"(d) : "m"(s) : "mm0", "xmm0", "memory");
		else
			__asm__ volatile("movq %1, %%mm0\n\tmovdqu %0, %%xmm0\n\tcvtpi2ps %%mm0, %%xmm0\n\t"
					 "movdqu %%xmm0, %0\n\temms" : "+m"(d) : "m"(s) : "mm0", "xmm0", "memory");
		mx_leave(c, h);
		c->xmm[i->reg] = d;
		return;
	}
	union bt_xmm s;
	sse_src(c, i, &s, pd ? 16 : 8, pd);
	mmx_enter(c);
	uint64_t r = 0;
	uint32_t h = mx_enter(c);
#define CV(insn) __asm__ volatile("movdqu %1, %%xmm0\n\t" insn " %%xmm0, %%mm0\n\tmovq %%mm0, %0\n\temms" \
				  : "=m"(r) : "m"(s) : "mm0", "xmm0", "memory")
	if (b == 0x2c) {
		if (pd) CV("cvttpd2pi"); else CV("cvttps2pi");
	} else {
		if (pd) CV("cvtpd2pi"); else CV("cvtps2pi");
	}
#undef CV
	mx_leave(c, h);
	mm_set(c, i->reg, r);
}

bt_exec_fn bt_sel_mmx(const struct bt_insn *i)
{
	uint8_t b = BT_BYTE(i->op);
	int map = BT_MAP(i->op);
	if (map == 2 && !i->pfx66 && !i->rep) {
		switch (b) {
		case 0x00: return ex_pshufb; case 0x01: return ex_phaddw; case 0x02: return ex_phaddd;
		case 0x03: return ex_phaddsw; case 0x04: return ex_pmaddubsw; case 0x05: return ex_phsubw;
		case 0x06: return ex_phsubd; case 0x07: return ex_phsubsw; case 0x08: return ex_psignb;
		case 0x09: return ex_psignw; case 0x0a: return ex_psignd; case 0x0b: return ex_pmulhrsw;
		case 0x1c: return ex_pabsb; case 0x1d: return ex_pabsw; case 0x1e: return ex_pabsd;
		}
		return NULL;
	}
	if (map == 3)
		return b == 0x0f && !i->pfx66 ? ex_mmx_misc : NULL;
	if (map != 1)
		return NULL;
	if (b == 0xd6 && (i->rep == 0xf3 || i->rep == 0xf2))
		return ex_movq2dq;
	if ((b == 0x2a || b == 0x2c || b == 0x2d) && !i->rep)
		return ex_cvt_pi;
	if (i->pfx66 || i->rep)
		return NULL;
	switch (b) {
	case 0x60: case 0x61: case 0x62: return ex_punpckl32;
	case 0x63: return ex_packsswb; case 0x64: return ex_pcmpgtb; case 0x65: return ex_pcmpgtw;
	case 0x66: return ex_pcmpgtd; case 0x67: return ex_packuswb; case 0x68: return ex_punpckhbw;
	case 0x69: return ex_punpckhwd; case 0x6a: return ex_punpckhdq; case 0x6b: return ex_packssdw;
	case 0x74: return ex_pcmpeqb; case 0x75: return ex_pcmpeqw; case 0x76: return ex_pcmpeqd;
	case 0x77: return ex_emms;
	case 0xf7: return ex_maskmovq;
	case 0x6e: case 0x6f: case 0x7e: case 0x7f: case 0xe7: return ex_mmx_mov;
	case 0x70: case 0xc4: case 0xc5: case 0xd7: return ex_mmx_misc;
	case 0x71: case 0x72: case 0x73: return ex_mmx_shift_imm;
	case 0xd1: return ex_psrlw; case 0xd2: return ex_psrld; case 0xd3: return ex_psrlq;
	case 0xd4: return ex_paddq; case 0xd5: return ex_pmullw; case 0xd8: return ex_psubusb;
	case 0xd9: return ex_psubusw; case 0xda: return ex_pminub; case 0xdb: return ex_pand;
	case 0xdc: return ex_paddusb; case 0xdd: return ex_paddusw; case 0xde: return ex_pmaxub;
	case 0xdf: return ex_pandn; case 0xe0: return ex_pavgb; case 0xe1: return ex_psraw;
	case 0xe2: return ex_psrad; case 0xe3: return ex_pavgw; case 0xe4: return ex_pmulhuw;
	case 0xe5: return ex_pmulhw; case 0xe8: return ex_psubsb; case 0xe9: return ex_psubsw;
	case 0xea: return ex_pminsw; case 0xeb: return ex_por; case 0xec: return ex_paddsb;
	case 0xed: return ex_paddsw; case 0xee: return ex_pmaxsw; case 0xef: return ex_pxor;
	case 0xf1: return ex_psllw; case 0xf2: return ex_pslld; case 0xf3: return ex_psllq;
	case 0xf4: return ex_pmuludq; case 0xf5: return ex_pmaddwd; case 0xf6: return ex_psadbw;
	case 0xf8: return ex_psubb; case 0xf9: return ex_psubw; case 0xfa: return ex_psubd;
	case 0xfb: return ex_psubq; case 0xfc: return ex_paddb; case 0xfd: return ex_paddw;
	case 0xfe: return ex_paddd;
	}
	return NULL;
}
