/* The BT instruction decoder: prefixes, REX, opcode maps, ModRM/SIB,
 * displacements and immediates, operand/address sizes and the validity
 * rules of each encoding (tables in decode_tab.c). Pure: no CPU state. */
#include <errno.h>
#include <string.h>
#include "monitor/bt/decode.h"
#include "monitor/bt/decode_tab.h"
#include "monitor/cpu_state.h"

#define MAXLEN 15

struct dstate {
	const uint8_t *b;
	size_t avail;
	size_t pos;
};

/* Fetches the next byte: 0 and the byte, -EAGAIN or -E2BIG. */
static int next(struct dstate *s, uint8_t *v)
{
	if (s->pos >= MAXLEN)
		return -E2BIG;
	if (s->pos >= s->avail)
		return -EAGAIN;
	*v = s->b[s->pos++];
	return 0;
}

static int take(struct dstate *s, int n, uint64_t *v)
{
	uint64_t x = 0;
	for (int k = 0; k < n; k++) {
		uint8_t b;
		int r = next(s, &b);
		if (r)
			return r;
		x |= (uint64_t)b << (8 * k);
	}
	*v = x;
	return 0;
}

static int64_t sext(uint64_t v, int bytes)
{
	int sh = 64 - 8 * bytes;
	return bytes >= 8 ? (int64_t)v : (int64_t)(v << sh) >> sh;
}

static uint64_t trunc_to(uint64_t v, int bytes)
{
	return bytes >= 8 ? v : v & ((1ull << (8 * bytes)) - 1);
}

/* x87 escape validity: register forms with reserved encodings. */
static int x87_valid(uint8_t op, uint8_t mod, uint8_t reg, uint8_t rm)
{
	if (mod != 3) {
		switch (op) {
		case 0xd9: return reg != 1;
		case 0xdb: return reg != 4 && reg != 6;
		case 0xdd: return reg != 5;
		default: return 1;
		}
	}
	switch (op) {
	case 0xd9:
		if (reg == 2) return rm == 0;              /* FNOP */
		if (reg == 3) return 1;                    /* FSTP1 alias */
		if (reg == 4) return rm != 2 && rm != 3 && rm != 6 && rm != 7;
		if (reg == 5) return rm != 7;
		return 1;
	case 0xda:
		if (reg >= 4) return reg == 5 && rm == 1;  /* FUCOMPP */
		return 1;
	case 0xdb:
		if (reg == 4) return rm <= 4;              /* FENI..FSETPM */
		return reg != 7;
	case 0xdd:
		return reg != 6 && reg != 7;
	case 0xde:
		if (reg == 3) return rm == 1;              /* FCOMPP */
		return 1;
	case 0xdf:
		if (reg == 4) return rm == 0;              /* FNSTSW AX */
		return reg != 7;
	default:
		return 1;
	}
}

/* Validity of group opcodes (DA_GRP) and whether LOCK is allowed.
 * Returns 0 for invalid; may adjust *attr (immediate, branch, system). */
static int group_check(uint16_t op, uint8_t mod, uint8_t reg, uint8_t rm,
		       int pfx, enum bt_mode mode, uint32_t *attr)
{
	uint32_t a = *attr;
	int lock_ok = 0;
	switch (op) {
	case BT_OP(0, 0x80): case BT_OP(0, 0x81):
	case BT_OP(0, 0x82): case BT_OP(0, 0x83):
		lock_ok = reg != 7;
		break;
	case BT_OP(0, 0x8c):
		if (reg > 5)
			return 0;
		break;
	case BT_OP(0, 0x8e):
		if (reg > 5 || reg == SEG_CS)
			return 0;
		break;
	case BT_OP(0, 0x8f): case BT_OP(0, 0xc6): case BT_OP(0, 0xc7):
		if (reg != 0)
			return 0;
		break;
	case BT_OP(0, 0xc0): case BT_OP(0, 0xc1):
	case BT_OP(0, 0xd0): case BT_OP(0, 0xd1):
	case BT_OP(0, 0xd2): case BT_OP(0, 0xd3):
		break;
	case BT_OP(0, 0xf6): case BT_OP(0, 0xf7):
		if (reg <= 1)
			a |= op == BT_OP(0, 0xf6) ? DI_B : DI_Z;
		lock_ok = reg == 2 || reg == 3;
		break;
	case BT_OP(0, 0xfe):
		if (reg > 1)
			return 0;
		lock_ok = 1;
		break;
	case BT_OP(0, 0xff):
		if (reg == 7)
			return 0;
		lock_ok = reg <= 1;
		if (reg == 2 || reg == 4)
			a |= DA_BR | DA_F64;
		if (reg == 3 || reg == 5) {
			if (mod == 3)
				return 0;
			a |= DA_BR | DA_SYS;
		}
		if (reg == 6)
			a |= DA_D64;
		break;
	case BT_OP(1, 0x00):
		if (reg >= 6)
			return 0;
		break;
	case BT_OP(1, 0x01):
		if (mod != 3)
			return reg != 5;
		switch (reg) {
		case 1: /* MONITOR, MWAIT, CLAC, STAC */
			return rm == 0 || rm == 1 || rm == 2 || rm == 3;
		case 2: /* XGETBV, XSETBV */
			return rm == 0 || rm == 1;
		case 4: case 6: /* SMSW, LMSW */
			return 1;
		case 7: /* SWAPGS (64-bit only), RDTSCP */
			return (rm == 0 && mode == BT_MODE64) || rm == 1;
		default:
			return 0;
		}
	case BT_OP(1, 0x0d):
		if (mod == 3)
			return 0;
		break;
	case BT_OP(1, 0x71): case BT_OP(1, 0x72):
		if (reg != 2 && reg != 4 && reg != 6)
			return 0;
		break;
	case BT_OP(1, 0x73):
		if (reg != 2 && reg != 6 && reg != 3 && reg != 7)
			return 0;
		if ((reg == 3 || reg == 7) && pfx != 1)
			return 0;
		break;
	case BT_OP(1, 0xae):
		if (mod != 3) {
			if (pfx == 2 || pfx == 3)
				return 0;
			if (pfx == 1)
				return reg == 7;            /* CLFLUSHOPT */
			return reg <= 3 || reg == 7;        /* FXSAVE..STMXCSR, CLFLUSH */
		}
		if (pfx != 0)
			return 0;
		return reg >= 5;                            /* LFENCE, MFENCE, SFENCE */
	case BT_OP(1, 0xba):
		if (reg < 4)
			return 0;
		lock_ok = reg != 4;
		break;
	case BT_OP(1, 0xc7):
		if (mod == 3 || reg != 1)
			return 0;
		lock_ok = 1;
		break;
	case BT_OP(2, 0xf0): case BT_OP(2, 0xf1):
		if (pfx == 3)       /* CRC32 */
			break;
		if (pfx == 2 || mod == 3)
			return 0;
		break;              /* MOVBE */
	}
	if (a & DA_X87) {
		if (!x87_valid(BT_BYTE(op), mod, reg & 7, rm & 7))
			return 0;
	}
	if (!lock_ok)
		a &= ~DA_LOCK;
	*attr = a;
	return 1;
}

int bt_decode(const uint8_t *bytes, size_t avail, enum bt_mode mode, struct bt_insn *out)
{
	struct dstate s = { bytes, avail, 0 };
	struct bt_insn i;
	uint8_t b = 0, rex = 0;
	int r, p66 = 0, p67 = 0;
	uint64_t v;

	memset(&i, 0, sizeof(i));
	i.seg = 0xff;
	i.base = i.index = BT_REG_NONE;
	i.scale = 1;

	for (;;) {
		if ((r = next(&s, &b)))
			return r;
		switch (b) {
		case 0x26: case 0x2e: case 0x36: case 0x3e:
			if (mode != BT_MODE64)
				i.seg = b == 0x26 ? SEG_ES : b == 0x2e ? SEG_CS :
					b == 0x36 ? SEG_SS : SEG_DS;
			rex = 0;
			continue;
		case 0x64: i.seg = SEG_FS; rex = 0; continue;
		case 0x65: i.seg = SEG_GS; rex = 0; continue;
		case 0x66: p66 = 1; rex = 0; continue;
		case 0x67: p67 = 1; rex = 0; continue;
		case 0xf0: i.lock = 1; rex = 0; continue;
		case 0xf2: case 0xf3: i.rep = b; rex = 0; continue;
		}
		if (mode == BT_MODE64 && (b & 0xf0) == 0x40) {
			rex = b;
			continue;
		}
		break;
	}
	i.rex = rex;
	i.pfx66 = p66;

	/* Opcode and map. */
	int map = 0;
	if (b == 0x0f) {
		if ((r = next(&s, &b)))
			return r;
		map = 1;
		if (b == 0x38 || b == 0x3a) {
			map = b == 0x38 ? 2 : 3;
			if ((r = next(&s, &b)))
				return r;
		}
	}
	i.op = BT_OP(map, b);
	uint32_t a = map == 0 ? bt_dtab_1[b] : map == 1 ? bt_dtab_0f[b] :
		     map == 2 ? bt_dtab_38[b] : bt_dtab_3a[b];
	if (map >= 2 && a == 0)
		return -EILSEQ;
	if (a & DA_INV)
		return -EILSEQ;

	/* VEX (C4/C5), EVEX (62) and XOP (8F) escapes: not advertised. */
	if (map == 0 && (b == 0xc4 || b == 0xc5 || b == 0x62)) {
		if (mode == BT_MODE64)
			return -EILSEQ;
		if (s.pos < s.avail && s.pos < MAXLEN && (s.b[s.pos] & 0xc0) == 0xc0)
			return -EILSEQ;
	}
	if ((a & DA_INV64) && mode == BT_MODE64)
		return -EILSEQ;
	if (map == 0 && b == 0x63 && mode != BT_MODE64)
		a |= DA_SYS;                       /* ARPL */

	/* Mandatory prefix for SSE-style opcodes: F2/F3 win over 66. */
	int pfx = i.rep == 0xf3 ? 2 : i.rep == 0xf2 ? 3 : p66 ? 1 : 0;
	if (map >= 2 && (b == 0xf0 || b == 0xf1))
		pfx = i.rep == 0xf2 ? 3 : i.rep == 0xf3 ? 2 : p66 ? 1 : 0;
	if (a & DA_SSE) {
		if (!(a & (DA_PN << pfx)))
			return -EILSEQ;
	}

	/* Operand and address size. */
	if (mode == BT_MODE64) {
		if (rex & 8)
			i.opsize = 8;
		else if (a & (DA_D64 | DA_F64))
			i.opsize = p66 ? 2 : 8;
		else
			i.opsize = p66 ? 2 : 4;
		i.addrsize = p67 ? 4 : 8;
	} else if (mode == BT_MODE32) {
		i.opsize = p66 ? 2 : 4;
		i.addrsize = p67 ? 2 : 4;
	} else {
		i.opsize = p66 ? 4 : 2;
		i.addrsize = p67 ? 4 : 2;
	}

	/* ModRM, SIB, displacement. */
	if (a & DA_M) {
		uint8_t m;
		if ((r = next(&s, &m)))
			return r;
		i.has_modrm = 1;
		i.mod = m >> 6;
		i.reg = ((m >> 3) & 7) | ((rex & 4) << 1);
		i.rm = (m & 7) | ((rex & 1) << 3);
		if (a & DA_MODREG)
			i.mod = 3;
		if ((a & DA_GRP) &&
		    !group_check(i.op, i.mod, (m >> 3) & 7, m & 7, pfx, mode, &a))
			return -EILSEQ;
		/* A group member may default to 64-bit operands (FF /2 /4 /6). */
		if (mode == BT_MODE64 && (a & (DA_D64 | DA_F64)) && !(rex & 8))
			i.opsize = p66 ? 2 : 8;
		if (i.mod == 3) {
			if (a & DA_MEMONLY)
				return -EILSEQ;
			if ((a & DA_SSE) && (a & DA_MEMP(pfx)))
				return -EILSEQ;
		} else {
			if (a & DA_REGONLY)
				return -EILSEQ;
			if ((a & DA_SSE) && (a & DA_REGP(pfx)))
				return -EILSEQ;
			i.flags |= BT_I_MEM;
			int dsz = 0;
			if (i.addrsize == 2) {
				static const int8_t b16[8] = { CPU_RBX, CPU_RBX, CPU_RBP, CPU_RBP,
							       CPU_RSI, CPU_RDI, CPU_RBP, CPU_RBX };
				static const int8_t x16[8] = { CPU_RSI, CPU_RDI, CPU_RSI, CPU_RDI,
							       -1, -1, -1, -1 };
				int rm3 = m & 7;
				i.base = b16[rm3];
				i.index = x16[rm3];
				if (i.mod == 0 && rm3 == 6) {
					i.base = BT_REG_NONE;
					dsz = 2;
				} else {
					dsz = i.mod == 1 ? 1 : i.mod == 2 ? 2 : 0;
				}
			} else {
				int rm3 = m & 7;
				if (rm3 == 4) {
					uint8_t sib;
					if ((r = next(&s, &sib)))
						return r;
					int idx = ((sib >> 3) & 7) | ((rex & 2) << 2);
					int base = (sib & 7) | ((rex & 1) << 3);
					i.scale = 1 << (sib >> 6);
					i.index = idx == 4 ? BT_REG_NONE : idx;
					if ((sib & 7) == 5 && i.mod == 0) {
						i.base = BT_REG_NONE;
						dsz = 4;
					} else {
						i.base = base;
					}
				} else if (rm3 == 5 && i.mod == 0) {
					i.base = mode == BT_MODE64 ? BT_BASE_RIP : BT_REG_NONE;
					dsz = 4;
				} else {
					i.base = i.rm;
				}
				if (i.mod == 1)
					dsz = 1;
				else if (i.mod == 2)
					dsz = 4;
			}
			if (dsz) {
				if ((r = take(&s, dsz, &v)))
					return r;
				i.disp = sext(v, dsz);
			}
		}
	}
	if (i.lock && (!(a & DA_LOCK) || i.mod == 3 || !(a & DA_M)))
		return -EILSEQ;

	/* Immediates. */
	int isz = 0;
	switch (DI_IMM(a)) {
	case DI_B: isz = 1; break;
	case DI_W: isz = 2; break;
	case DI_Z: isz = i.opsize == 2 ? 2 : 4; break;
	case DI_V: isz = i.opsize; break;
	case DI_WB: isz = 2; break;
	case DI_AP: isz = i.opsize == 2 ? 2 : 4; break;
	case DI_MOFFS: isz = i.addrsize; break;
	}
	if (isz) {
		if ((r = take(&s, isz, &v)))
			return r;
		if (DI_IMM(a) == DI_MOFFS) {
			i.disp = (int64_t)v;
			i.flags |= BT_I_MEM | BT_I_MOFFS;
		} else {
			i.imm_size = isz;
			if (DI_IMM(a) == DI_Z || (DI_IMM(a) == DI_B && (a & DA_SX)))
				i.imm = trunc_to((uint64_t)sext(v, isz), i.opsize);
			else
				i.imm = v;
		}
	}
	if (DI_IMM(a) == DI_WB || DI_IMM(a) == DI_AP) {
		if ((r = take(&s, DI_IMM(a) == DI_WB ? 1 : 2, &v)))
			return r;
		i.imm2 = (uint16_t)v;
	}

	if (a & DA_BR)
		i.flags |= BT_I_BRANCH;
	if (a & DA_SYS)
		i.flags |= BT_I_SYS;
	i.len = (uint8_t)s.pos;
	*out = i;
	return 0;
}
