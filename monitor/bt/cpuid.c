/* The BT engine's fixed CPU model, reported by CPUID. It is GenuineIntel
 * family 6 model 0x8f stepping 8 with only the features the engine
 * implements:
 *   leaf 1 EDX  FPU DE PSE TSC MSR PAE CX8 APIC SEP PGE CMOV PAT PSE36
 *               CLFSH MMX FXSR SSE SSE2
 *   leaf 1 ECX  CX16 POPCNT TSC-DEADLINE HYPERVISOR
 *   leaf 7 EBX  TSC_ADJUST ERMS;  EDX FSRM, IBRS/IBPB (SPEC_CTRL), ARCH_CAPABILITIES
 *   0x80000001  EDX SYSCALL NX PDPE1GB RDTSCP LM
 *   0x80000007  EDX invariant TSC
 *   0x80000008  40 physical / 48 linear address bits
 *   leaf 0x15/0x16  TSC frequency (crystal = TSC, ratio 1/1)
 * No x2APIC, MCE/MCA, MTRR, MONITOR/MWAIT, PCID, SMEP/SMAP, FSGSBASE,
 * XSAVE/AVX, SSE3 and later (the ISA half implements x87, SSE, SSE2; see
 * bt_int.h). IA32_ARCH_CAPABILITIES (sys_msr.c) reports the CPU as not
 * affected by Meltdown/MDS-class issues, so a guest kernel enables no
 * page-table isolation or buffer clearing, which would only cost time.
 * Invariant TSC + TSC_ADJUST let Linux skip the clocksource watchdog, which
 * under a translator (late timer ticks) would wrongly mark the TSC
 * unstable. */
#include <string.h>
#include "monitor/bt/sys_int.h"
#include "monitor/vm.h"

#define L1_EDX ((1u << 0) | (1u << 2) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6) | \
		(1u << 8) | (1u << 9) | (1u << 11) | (1u << 13) | (1u << 15) | (1u << 16) | \
		(1u << 17) | (1u << 19) | (1u << 23) | (1u << 24) | (1u << 25) | (1u << 26))
#define L1_ECX ((1u << 13) | (1u << 23) | (1u << 24) | (1u << 31))
#define L7_EBX ((1u << 1) | (1u << 9))
#define L7_EDX ((1u << 4) | (1u << 26) | (1u << 29))
#define E1_EDX ((1u << 11) | (1u << 20) | (1u << 26) | (1u << 27) | (1u << 29))

static void str4(uint32_t out[4], const char *s)
{
	memcpy(out, s, 16);
}

void bt_cpuid(struct bt_cpu *c, uint32_t leaf, uint32_t sub, uint32_t out[4])
{
	uint64_t khz = c->vm && c->vm->tsc_khz ? c->vm->tsc_khz : 1000000;
	memset(out, 0, 16);
	switch (leaf) {
	case 0:
		out[0] = 0x16;
		memcpy(&out[1], "Genu", 4);
		memcpy(&out[3], "ineI", 4);
		memcpy(&out[2], "ntel", 4);
		break;
	case 1:
		/* extended model 8, family 6, model f, stepping 8 */
		out[0] = (0x8u << 16) | (6u << 8) | (0xfu << 4) | 8;
		out[1] = ((uint32_t)c->index << 24) | (1u << 16) | (8u << 8);
		out[2] = L1_ECX;
		out[3] = L1_EDX;
		break;
	case 7:
		if (sub == 0) {
			out[1] = L7_EBX;
			out[3] = L7_EDX;
		}
		break;
	case 0x15:
		out[0] = 1;
		out[1] = 1;
		out[2] = (uint32_t)(khz * 1000 > 0xffffffffULL ? 0xffffffffULL : khz * 1000);
		break;
	case 0x16:
		out[0] = (uint32_t)(khz / 1000);
		out[1] = (uint32_t)(khz / 1000);
		out[2] = 100;
		break;
	case 0x80000000:
		out[0] = 0x80000008;
		break;
	case 0x80000001:
		out[3] = E1_EDX;
		break;
	case 0x80000002:
		str4(out, "roam BT virtual ");
		break;
	case 0x80000003:
		str4(out, "CPU (x86-64 base");
		break;
	case 0x80000004:
		str4(out, "line)\0\0\0\0\0\0\0\0\0\0\0");
		break;
	case 0x80000007:
		out[3] = 1u << 8;
		break;
	case 0x80000008:
		out[0] = 0x3028;
		break;
	default:
		break;
	}
}
