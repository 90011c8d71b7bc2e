/* x86 instruction decoder for the BT engine: a pure function from bytes to
 * struct bt_insn, table-driven, for 16/32/64-bit code. It knows lengths,
 * prefixes, REX, ModRM/SIB/displacement/immediates and which encodings are
 * invalid (#UD); it knows nothing about CPU state beyond the code size. */
#ifndef ROAM_BT_DECODE_H
#define ROAM_BT_DECODE_H
#include <stddef.h>
#include <stdint.h>

struct bt_cpu;
struct bt_insn;
typedef void (*bt_exec_fn)(struct bt_cpu *c, const struct bt_insn *i);

enum bt_mode { BT_MODE16 = 2, BT_MODE32 = 4, BT_MODE64 = 8 };

/* Opcode maps: one-byte, 0F, 0F 38, 0F 3A. */
#define BT_OP(map, byte) ((uint16_t)(((map) << 8) | (byte)))
#define BT_MAP(op)  ((op) >> 8)
#define BT_BYTE(op) ((op) & 0xff)

#define BT_REG_NONE -1
#define BT_BASE_RIP 16          /* base register value for RIP-relative */

/* insn->flags */
#define BT_I_BRANCH   0x01      /* may change RIP: ends a translated block */
#define BT_I_SYS      0x02      /* system instruction: executed by bt_sys_exec */
#define BT_I_MEM      0x04      /* has a memory operand (ModRM mod != 3, or moffs) */
#define BT_I_MOFFS    0x08      /* A0-A3: absolute address in disp */

struct bt_insn {
	uint16_t op;            /* BT_OP(map, opcode byte) */
	uint8_t len;            /* total length, 1..15 */
	uint8_t opsize;         /* 2, 4 or 8 after 66/REX.W and 64-bit defaults
				 * (near branches, push/pop default to 8) */
	uint8_t addrsize;       /* 2, 4 or 8 after 67 */
	uint8_t seg;            /* segment override SEG_ES..SEG_GS, or 0xff */
	uint8_t rep;            /* 0, 0xF2 or 0xF3 (the last one seen) */
	uint8_t lock;           /* F0 seen */
	uint8_t pfx66;          /* 66 seen (also a mandatory SSE prefix) */
	uint8_t rex;            /* REX byte (0x40-0x4f) or 0 */
	uint8_t has_modrm;
	uint8_t mod, reg, rm;   /* reg and rm include REX.R / REX.B (0-15);
				 * reg is the /digit for group opcodes */
	int8_t base, index;     /* memory operand registers (REX applied), or
				 * BT_REG_NONE; base BT_BASE_RIP = RIP-relative */
	uint8_t scale;          /* 1, 2, 4, 8 */
	uint8_t imm_size;       /* bytes of the first immediate as encoded */
	uint8_t flags;          /* BT_I_* */
	int64_t disp;           /* sign-extended displacement (or moffs) */
	uint64_t imm;           /* first immediate, sign-extended to opsize
				 * where the encoding sign-extends */
	uint16_t imm2;          /* second immediate: ENTER's level, far
				 * pointer selector */
	bt_exec_fn exec;        /* set by bt_select() */
};

/* Decodes one instruction from bytes[0..avail). Returns 0 on success,
 * -EAGAIN when avail is too short to finish (the caller fetches more, up
 * to 15 bytes), -EILSEQ for an invalid or unsupported encoding (#UD), and
 * -E2BIG when the instruction would exceed 15 bytes (#GP(0)). */
int bt_decode(const uint8_t *bytes, size_t avail, enum bt_mode mode, struct bt_insn *out);
#endif
