/* Private to sse*.c: operand access and the MXCSR discipline for running a
 * guest SSE operation on the host's own SSE unit. Every host stub takes
 * the destination and source registers by pointer, loads them into host
 * xmm0/xmm1, runs the one real instruction and stores xmm0 back. Floating
 * point stubs run with the guest's MXCSR control bits and all exceptions
 * masked; the resulting exception flags are merged into the guest MXCSR,
 * and an exception the guest left unmasked raises #XM (or #UD without
 * CR4.OSXMMEXCPT) before anything is written back. */
#ifndef ROAM_BT_SSE_INT_H
#define ROAM_BT_SSE_INT_H
#include "monitor/bt/exec_int.h"

typedef void (*sse_host_fn)(union bt_xmm *d, const union bt_xmm *s);
typedef void (*sse_host_imm_fn)(union bt_xmm *d, const union bt_xmm *s, int imm);

#define CR4_OSXMMEXCPT (1ull << 10)

/* Reads the xmm/m operand (ModRM rm) into *out: msize bytes from memory,
 * zero-extended, with the 16-byte alignment check when align is set. */
void sse_src(struct bt_cpu *c, const struct bt_insn *i, union bt_xmm *out, int msize, int align);

/* Runs fn with the guest MXCSR, then merges flags / raises #XM. */
static inline uint32_t mx_enter(const struct bt_cpu *c)
{
	uint32_t host, g = (c->mxcsr & 0xffc0) | 0x1f80;
	__asm__ volatile("stmxcsr %0" : "=m"(host));
	__asm__ volatile("ldmxcsr %0" : : "m"(g) : "memory");
	return host;
}

void mx_leave(struct bt_cpu *c, uint32_t host);

#define HOST_BIN(name, insn) \
static void name(union bt_xmm *d, const union bt_xmm *s) \
{ \
	__asm__ volatile("movdqu %0, %%xmm0\n\tmovdqu %1, %%xmm1\n\t" insn " %%xmm1, %%xmm0\n\t" \
			 "movdqu %%xmm0, %0" : "+m"(*d) : "m"(*s) : "xmm0", "xmm1", "memory"); \
}

#define IMMC(insn, n) case (n): \
	__asm__ volatile("movdqu %0, %%xmm0\n\tmovdqu %1, %%xmm1\n\t" insn " %2, %%xmm1, %%xmm0\n\t" \
			 "movdqu %%xmm0, %0" : "+m"(*d) : "m"(*s), "i"(n) : "xmm0", "xmm1", "memory"); \
	break;
#define IMM4(insn, n) IMMC(insn, n) IMMC(insn, (n) + 1) IMMC(insn, (n) + 2) IMMC(insn, (n) + 3)
#define IMM16(insn, n) IMM4(insn, n) IMM4(insn, (n) + 4) IMM4(insn, (n) + 8) IMM4(insn, (n) + 12)
#define IMM64(insn, n) IMM16(insn, n) IMM16(insn, (n) + 16) IMM16(insn, (n) + 32) IMM16(insn, (n) + 48)
#define IMM256(insn) IMM64(insn, 0) IMM64(insn, 64) IMM64(insn, 128) IMM64(insn, 192)
#define IMM8S(insn) IMM4(insn, 0) IMM4(insn, 4)

/* imm stubs: NBITS of the immediate matter (others ignored by hardware
 * or reserved). */
#define HOST_IMM256(name, insn) \
static void name(union bt_xmm *d, const union bt_xmm *s, int imm) \
{ switch (imm & 255) { IMM256(insn) } }
#define HOST_IMM16(name, insn) \
static void name(union bt_xmm *d, const union bt_xmm *s, int imm) \
{ switch (imm & 15) { IMM16(insn, 0) } }
#define HOST_IMM8(name, insn) \
static void name(union bt_xmm *d, const union bt_xmm *s, int imm) \
{ switch (imm & 7) { IMM8S(insn) } }

bt_exec_fn bt_sel_sse_more(const struct bt_insn *i);
#endif
