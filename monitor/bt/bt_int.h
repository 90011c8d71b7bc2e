/* Internal contract of the BT engine between its two halves:
 *  - the ISA half (decode*.c, exec_*.c, flags.c, fpu*.c, sse*.c): decoding,
 *    user-visible instruction semantics, lazy flags, x87/SSE, bt_select();
 *  - the system half (cpu.c, mmu*.c, sys*.c, block*.c, engine.c): the vCPU
 *    loop, translated-block cache, shadow MMU and memory access, exceptions
 *    and interrupt delivery, privileged instructions (bt_sys_exec), timers,
 *    the engine_ops.
 *
 * Execution convention: while an instruction executes, c->next_rip is the
 * address after it. c->rip is its own address only for the instruction
 * that ends a block (and for single-stepped ones); for the instructions
 * before it, c->rip is still the block's entry address, so an exec function
 * that is not a block-ender must not read c->rip (RIP-relative operands
 * use next_rip). Control transfers set c->next_rip; the loop then does
 * c->rip = c->next_rip. An exception is raised with bt_raise*(), which
 * records it and longjmps to c->jmp; the loop then sets c->rip to the
 * faulting instruction (engine.c) and delivers it through the IDT (traps
 * use next_rip). The loop runs a block's instructions back to back, so only
 * instructions that end a block may leave next_rip anything but rip + len:
 * those flagged BT_I_BRANCH or BT_I_SYS, and REP string instructions
 * (block.c ends blocks after them too); an instruction that must run again
 * does c->next_rip -= i->len. */
#ifndef ROAM_BT_INT_H
#define ROAM_BT_INT_H
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include "monitor/bt/decode.h"
#include "monitor/cpu_state.h"

struct vm;
struct bt_engine;
struct bt_sys;

/* CPU model (cpuid.c, system half) — the features CPUID advertises, which
 * the ISA half implements: FPU, TSC, CX8, CMOV, PAT, CLFLUSH, MMX, FXSR,
 * SSE, SSE2, CX16 (CMPXCHG16B), POPCNT, ERMS/FSRM (REP MOVSB/STOSB hints),
 * SYSCALL, NX, LM, RDTSCP, 1 GiB pages. Not advertised (do not rely on
 * them being reachable from a well-behaved guest): SSE3 and later,
 * LAHF/SAHF in 64-bit mode, MOVBE, RDRAND, XSAVE/AVX, FSGSBASE. */

/* Exception vectors. */
enum { BT_DE = 0, BT_DB = 1, BT_NMI = 2, BT_BP = 3, BT_OF = 4, BT_BR = 5,
       BT_UD = 6, BT_NM = 7, BT_DF = 8, BT_TS = 10, BT_NP = 11, BT_SS = 12,
       BT_GP = 13, BT_PF = 14, BT_MF = 16, BT_AC = 17, BT_MC = 18, BT_XM = 19 };

/* RFLAGS bits. */
#define BT_CF 0x0001u
#define BT_PF_FLAG 0x0004u
#define BT_AF 0x0010u
#define BT_ZF 0x0040u
#define BT_SF 0x0080u
#define BT_TF 0x0100u
#define BT_IF 0x0200u
#define BT_DF_FLAG 0x0400u
#define BT_OF_FLAG 0x0800u
#define BT_IOPL 0x3000u
#define BT_NT 0x4000u
#define BT_RF 0x10000u
#define BT_VM 0x20000u
#define BT_AC_FLAG 0x40000u
#define BT_VIF 0x80000u
#define BT_VIP 0x100000u
#define BT_ID 0x200000u
#define BT_ARITH_FLAGS (BT_CF | BT_PF_FLAG | BT_AF | BT_ZF | BT_SF | BT_OF_FLAG)

union bt_xmm {
	uint8_t b[16];
	uint16_t w[8];
	uint32_t d[4];
	uint64_t q[2];
	float f[4];
	double df[2];
};

struct bt_cpu {
	/* --- user-visible state (ISA half owns the encodings) --- */
	uint64_t r[16];
	uint64_t rip, next_rip;
	uint64_t rflags;        /* all bits except the arithmetic ones while
				 * lazy flags are live: use bt_get_rflags() */
	uint32_t cc_op;         /* lazy-flags state, owned by the ISA half;
				 * 0 means the arithmetic flags are in rflags
				 * (a zeroed bt_cpu is consistent). Others
				 * read/write RFLAGS only via bt_get_rflags /
				 * bt_set_rflags. */
	uint64_t cc_dst, cc_src1, cc_src2;
	uint32_t cc_rot_op;     /* after a rotate: the lazy state it rotated over */
	uint64_t cc_rot;        /* ...and its result */

	long double st[8];      /* x87 physical registers R0..R7 */
	uint16_t fcw, fsw, ftw; /* ftw: full tag word (2 bits per reg) */
	uint16_t fop;
	uint64_t fip, fdp;
	union bt_xmm xmm[16];
	uint32_t mxcsr;

	/* --- system state (system half) --- */
	struct cpu_seg seg[SEG_COUNT];
	struct cpu_dtable gdt, idt;
	uint64_t cr0, cr2, cr3, cr4, efer, xcr0;
	uint64_t dr[8];
	uint64_t star, lstar, cstar, sfmask, kernel_gs_base;
	uint64_t sysenter_cs, sysenter_esp, sysenter_eip;
	uint64_t tsc_aux, pat, misc_enable, tsc_adjust;
	uint8_t cpl;
	uint8_t mode;           /* enum bt_mode of the current code segment */
	uint8_t shadow;         /* interrupt shadow: 1 after STI, 2 after MOV SS */
	uint8_t halted;
	uint32_t mp_state;      /* enum cpu_mp_state */

	/* Exception being raised (set by bt_raise*, consumed by the loop). */
	uint8_t exc_vector, exc_has_error;
	uint32_t exc_error;
	uint64_t exc_cr2;       /* for #PF */
	jmp_buf jmp;

	int index;              /* vCPU number */
	struct vm *vm;
	struct bt_engine *eng;
	struct bt_sys *sys;     /* system half's private per-vCPU state (TLB,
				 * block cache pointers, counters) */
};

/* ---- exceptions (never return) ---- */
_Noreturn void bt_raise(struct bt_cpu *c, int vector);
_Noreturn void bt_raise_err(struct bt_cpu *c, int vector, uint32_t error);
_Noreturn void bt_raise_pf(struct bt_cpu *c, uint64_t addr, uint32_t error);

/* ---- memory (system half): segmentation, paging, MMIO ----
 * seg is SEG_ES..SEG_GS; off is the offset within the segment (already
 * masked to the address size by the caller). size is 1, 2, 4 or 8 for the
 * scalar forms; the _buf forms take any length up to 4096 and may cross
 * pages. Faults raise #GP/#SS/#PF (with A/D bits set as the CPU does). */
uint64_t bt_read(struct bt_cpu *c, int seg, uint64_t off, int size);
void bt_write(struct bt_cpu *c, int seg, uint64_t off, int size, uint64_t val);
/* Read of a read-modify-write operand: faults as a write would. */
uint64_t bt_read_rmw(struct bt_cpu *c, int seg, uint64_t off, int size);
void bt_read_buf(struct bt_cpu *c, int seg, uint64_t off, void *buf, size_t n);
void bt_write_buf(struct bt_cpu *c, int seg, uint64_t off, const void *buf, size_t n);
/* Stack push/pop of size bytes in the current stack-address size (SS.B /
 * 64-bit), updating RSP; faults leave RSP unchanged. */
void bt_push(struct bt_cpu *c, int size, uint64_t val);
uint64_t bt_pop(struct bt_cpu *c, int size);

/* ---- flags (ISA half) ---- */
uint64_t bt_get_rflags(struct bt_cpu *c);
void bt_set_rflags(struct bt_cpu *c, uint64_t v);   /* no privilege checks */

/* ---- decoding support (ISA half) ---- */
/* Effective address (segment offset, masked to insn->addrsize) of the
 * memory operand, and its segment (override, else SS for rSP/rBP bases,
 * else DS). */
uint64_t bt_ea(struct bt_cpu *c, const struct bt_insn *i);
int bt_ea_seg(const struct bt_insn *i);
/* The exec function for a decoded instruction; bt_sys_exec for every
 * system instruction (the list is in exec_select.c), NULL when the
 * encoding is valid but has no exec function (the loop raises #UD). */
bt_exec_fn bt_select(const struct bt_insn *i);

/* What the ISA half implements (for the CPU model in cpuid.c): integer
 * ISA incl. CMOV, CX8, CX16, POPCNT, LZCNT/TZCNT (F3 0F BD/BC execute as
 * LZCNT/TZCNT, as on current hardware), MOVBE, CRC32, LAHF/SAHF in 64-bit
 * mode; x87 (host FPU); FXSR; SSE, SSE2, SSE3, SSSE3, SSE4.1, SSE4.2 (run
 * on the host SSE unit, checked against the host in tests/unit/bt_isa).
 * MMX on the host MMX unit. Not decoded (#UD): 3DNow!, AVX/VEX/EVEX/XOP, AES, PCLMULQDQ,
 * SHA, RDRAND/RDSEED, BMI, ADX, XSAVE. */

/* Optimizes the n decoded instructions of a new block in place (ISA half,
 * fuse.c): flag-less variants where the flags are dead, CMP/TEST fused
 * with a final Jcc. Every instruction must have its exec function set and
 * none may be one that raises unconditionally (#UD/#GP for a bad
 * encoding). Returns the new count (n or n - 1); when it is n - 1, the
 * instruction in slot n - 1 must stay (the fused one reads it). The result
 * must not be used for single-stepping. */
int bt_block_optimize(struct bt_insn *ins, int n);

/* ---- system instructions (system half) ----
 * Handles: push/pop of segment registers, mov to/from sreg, LES/LDS/LSS/
 * LFS/LGS, far call/jmp/ret, INT n/INT3/INTO/INT1, IRET, PUSHF/POPF,
 * CLI/STI, HLT, IN/OUT/INS/OUTS, group 6 and 7 (LGDT..INVLPG, SWAPGS,
 * RDTSCP, XGETBV/XSETBV, MONITOR/MWAIT, CLAC/STAC), LAR/LSL/VERR/VERW/ARPL,
 * SYSCALL/SYSRET/SYSENTER/SYSEXIT, CLTS, INVD/WBINVD, MOV CR/DR,
 * RDMSR/WRMSR, RDTSC, RDPMC, CPUID, UD2, RSM. */
void bt_sys_exec(struct bt_cpu *c, const struct bt_insn *i);

/* FXSAVE-format image of the x87/SSE state (512 bytes, 64-bit layout) and
 * its inverse (system half, cpu_conv.c; usable by FXSAVE/FXRSTOR). The
 * caller of bt_fxrstor_image checks MXCSR reserved bits. */
void bt_fxsave_image(const struct bt_cpu *c, uint8_t img[512]);
void bt_fxrstor_image(struct bt_cpu *c, const uint8_t img[512]);

/* Recomputes c->mode and c->cpl from CS, CR0.PE, EFER.LMA (system half);
 * called after any CS or mode change. Also flushes translation state that
 * depends on the mode. */
void bt_mode_changed(struct bt_cpu *c);
#endif
