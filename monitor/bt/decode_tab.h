/* Opcode attribute tables of the BT decoder (private to decode*.c): one
 * 32-bit word per opcode of the one-byte, 0F, 0F 38 and 0F 3A maps saying
 * whether it has a ModRM byte, which immediate follows, how the operand
 * size defaults in 64-bit mode, and which encodings are invalid. */
#ifndef ROAM_BT_DECODE_TAB_H
#define ROAM_BT_DECODE_TAB_H
#include <stdint.h>

/* Immediate kinds (bits 0-2). */
#define DI_NONE  0u
#define DI_B     1u   /* imm8 */
#define DI_W     2u   /* imm16 */
#define DI_Z     3u   /* imm16/32 by operand size (32 for 64-bit operands) */
#define DI_V     4u   /* imm16/32/64 by operand size (MOV r, imm) */
#define DI_WB    5u   /* imm16 then imm8 (ENTER) */
#define DI_AP    6u   /* imm16/32 offset then imm16 selector (far ptr) */
#define DI_MOFFS 7u   /* address-size offset (A0-A3) */
#define DI_IMM(a) ((a) & 7u)

#define DA_M       (1u << 3)   /* has ModRM */
#define DA_SX      (1u << 4)   /* imm8 is sign-extended */
#define DA_INV64   (1u << 5)   /* invalid in 64-bit mode */
#define DA_INV     (1u << 6)   /* invalid (or not supported at all) */
#define DA_D64     (1u << 7)   /* 64-bit default operand size in 64-bit mode */
#define DA_F64     (1u << 8)   /* 64-bit operand size forced in 64-bit mode */
#define DA_BR      (1u << 9)   /* control transfer */
#define DA_SYS     (1u << 10)  /* system instruction (bt_sys_exec) */
#define DA_LOCK    (1u << 11)  /* LOCK allowed with a memory operand */
#define DA_MEMONLY (1u << 12)  /* mod == 3 is invalid */
#define DA_REGONLY (1u << 13)  /* mod != 3 is invalid */
#define DA_GRP     (1u << 14)  /* validity depends on ModRM: see decode.c */
#define DA_SSE     (1u << 15)  /* valid only with the mandatory prefixes below */
#define DA_MODREG  (1u << 16)  /* ModRM always names registers (MOV CR/DR) */
#define DA_X87     (1u << 17)
/* Mandatory-prefix set for DA_SSE opcodes: none, 66, F3, F2. */
#define DA_PN      (1u << 20)
#define DA_P66     (1u << 21)
#define DA_PF3     (1u << 22)
#define DA_PF2     (1u << 23)
/* Per-prefix "memory only" / "register only" refinements for SSE opcodes:
 * bit (24 + p) = mem only with prefix p, (28 + p) = register only. */
#define DA_MEMP(p) (1u << (24 + (p)))
#define DA_REGP(p) (1u << (28 + (p)))

extern const uint32_t bt_dtab_1[256];
extern const uint32_t bt_dtab_0f[256];
extern const uint32_t bt_dtab_38[256];
extern const uint32_t bt_dtab_3a[256];
#endif
