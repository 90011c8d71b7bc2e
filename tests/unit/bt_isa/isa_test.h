/* Differential ISA test (tests/unit/bt_isa): shared layout and state.
 * Code, data and stack live at the same fixed addresses natively (in a
 * forked child, MAP_FIXED) and in the BT guest's RAM (identity-mapped,
 * paging off), so the same instruction bytes can run in both worlds. */
#ifndef ISA_TEST_H
#define ISA_TEST_H
#include <stddef.h>
#include <stdint.h>
#include "monitor/bt/bt_int.h"

#define ISA_DATA   0x1000000ull   /* data the sequences address via r15 */
#define ISA_DATA_SIZE 0x4000ull
#define ISA_CODE   0x1010000ull
#define ISA_CODE_SIZE 0x1000ull
#define ISA_STACK  0x1020000ull   /* stack region */
#define ISA_STACK_SIZE 0x2000ull
#define ISA_RSP0   (ISA_STACK + 0x1800)
#define ISA_CTL    0x1040000ull   /* native control block (not in the guest) */
#define ISA_RAM    (32ull << 20)

struct isa_state {
	uint64_t r[16];
	uint64_t rflags;
	uint32_t mxcsr, pad;
	union bt_xmm xmm[16];
	int fault;              /* 0, or the vector (#DE 0, #UD 6, #GP/#PF 13, ...) */
	uint64_t fault_rip;
};

struct isa_case {
	uint8_t code[1024];
	size_t len;             /* code bytes before the exit jump */
	uint8_t data[ISA_DATA_SIZE];
	uint8_t stack[ISA_STACK_SIZE];
	struct isa_state in;
	uint32_t flag_mask;     /* arithmetic flags to compare at the end */
	int ninsn;
	int fx_check;           /* data+0x3000 holds an FXSAVE image */
};

/* gen.c */
void isa_gen(struct isa_case *t, uint64_t *rng, int kind);
enum { GEN_INT, GEN_SHIFT, GEN_MULDIV, GEN_BITS, GEN_MOVE, GEN_STACK, GEN_STRING,
       GEN_BRANCH, GEN_SSE, GEN_X87, GEN_MMX, GEN_MIX, GEN_KINDS };
extern const char *const isa_gen_names[GEN_KINDS];
uint64_t isa_rand(uint64_t *s);

/* native.c: runs n cases in a child; out[k] gets the final state, data and
 * stack. Returns 0 or -errno. */
int isa_native(const struct isa_case *t, int n, struct isa_state *out,
	       uint8_t (*data)[ISA_DATA_SIZE], uint8_t (*stack)[ISA_STACK_SIZE]);
#endif
