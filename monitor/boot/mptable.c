/* The Intel MultiProcessor Specification 1.4 table Linux reads with
 * acpi=off (arch/x86/kernel/mpparse.c): floating pointer at 0xf0000
 * (inside the 0xf0000-0xfffff range Linux scans), configuration table
 * right after it. Layout of each entry is spelled out where it is built.
 * What it describes is documented in boot.h (boot_mptable). */
#include <errno.h>
#include <string.h>
#include "monitor/guest_mem.h"
#include "monitor/boot/boot.h"
#include "monitor/boot/boot_int.h"

enum { MP_PROC = 0, MP_BUS = 1, MP_IOAPIC = 2, MP_INTSRC = 3, MP_LINTSRC = 4 };
enum { MP_INT = 0, MP_NMI = 1, MP_EXTINT = 3 };
#define MP_BUS_PCI 0
#define MP_BUS_ISA 1
#define MP_PCI_FLAGS 0x0f      /* polarity active low (3), trigger level (3<<2) */
#define MP_MAX_SIZE 0x4000

static uint8_t checksum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	for (size_t i = 0; i < n; i++)
		s = (uint8_t)(s + p[i]);
	return (uint8_t)-s;
}

/* I/O or local interrupt entry (8 bytes): type, irq type, u16 flags,
 * source bus, source irq, destination (IOAPIC id / LAPIC id), pin. */
static uint8_t *intsrc(uint8_t *p, uint8_t type, uint8_t irqtype, uint16_t flags,
		       uint8_t bus, uint8_t irq, uint8_t dst, uint8_t pin)
{
	p[0] = type;
	p[1] = irqtype;
	wr16(p + 2, flags);
	p[4] = bus;
	p[5] = irq;
	p[6] = dst;
	p[7] = pin;
	return p + 8;
}

int boot_mptable(struct guest_mem *m, int ncpus, char *err, size_t errlen)
{
	if (ncpus < 1 || ncpus > 254)
		return boot_fail(err, errlen, -EINVAL, "MP table: %d CPUs, must be 1..254", ncpus);
	uint8_t *base = gmem_ptr(m, BOOT_MPTABLE_ADDR, MP_MAX_SIZE);
	if (!base)
		return boot_fail(err, errlen, -E2BIG, "MP table: no guest RAM at 0x%llx",
				 (unsigned long long)BOOT_MPTABLE_ADDR);
	memset(base, 0, MP_MAX_SIZE);
	uint8_t *mpf = base, *cfg = base + 16, *p = cfg + 44;
	uint16_t count = 0;
	uint8_t ioapic_id = (uint8_t)ncpus;

	/* Processors (20 bytes): type, APIC id, APIC version, flags (EN=1,
	 * BP=2), u32 signature (family 6), u32 features (FPU | APIC). */
	for (int i = 0; i < ncpus; i++, count++) {
		p[0] = MP_PROC;
		p[1] = (uint8_t)i;
		p[2] = 0x14;
		p[3] = (uint8_t)(1 | (i == 0 ? 2 : 0));
		wr32(p + 4, 0x600);
		wr32(p + 8, 0x201);
		p += 20;
	}
	/* Buses (8 bytes): type, id, 6-byte name. */
	p[0] = MP_BUS; p[1] = MP_BUS_PCI; memcpy(p + 2, "PCI   ", 6); p += 8; count++;
	p[0] = MP_BUS; p[1] = MP_BUS_ISA; memcpy(p + 2, "ISA   ", 6); p += 8; count++;
	/* IOAPIC (8 bytes): type, id, version, flags (EN), u32 address. */
	p[0] = MP_IOAPIC; p[1] = ioapic_id; p[2] = 0x11; p[3] = 1;
	wr32(p + 4, (uint32_t)BOOT_IOAPIC_ADDR);
	p += 8; count++;
	/* ISA IRQs, edge/high as the ISA bus conforms to. */
	for (int irq = 0; irq < 16; irq++) {
		if (irq == 2)
			continue;
		p = intsrc(p, MP_INTSRC, MP_INT, 0, MP_BUS_ISA, (uint8_t)irq, ioapic_id,
			   (uint8_t)(irq == 0 ? 2 : irq));
		count++;
	}
	/* PCI bus 0: source irq = slot << 2 | pin. */
	for (int slot = 1; slot < 32; slot++)
		for (int pin = 0; pin < 4; pin++) {
			p = intsrc(p, MP_INTSRC, MP_INT, MP_PCI_FLAGS, MP_BUS_PCI,
				   (uint8_t)(slot << 2 | pin), ioapic_id,
				   (uint8_t)BOOT_PCI_IRQ_PIN(slot, pin));
			count++;
		}
	/* Local interrupts to every LAPIC (id 0xff): ExtINT on LINT0, NMI on LINT1. */
	p = intsrc(p, MP_LINTSRC, MP_EXTINT, 0, MP_BUS_ISA, 0, 0xff, 0); count++;
	p = intsrc(p, MP_LINTSRC, MP_NMI, 0, MP_BUS_ISA, 0, 0xff, 1); count++;

	size_t cfg_len = (size_t)(p - cfg);
	/* Configuration table header (44 bytes). */
	memcpy(cfg, "PCMP", 4);
	wr16(cfg + 4, (uint16_t)cfg_len);
	cfg[6] = 4;                                 /* spec revision 1.4 */
	memcpy(cfg + 8, "ROAM    ", 8);             /* OEM id */
	memcpy(cfg + 16, "ROAM VM     ", 12);       /* product id */
	wr16(cfg + 34, count);
	wr32(cfg + 36, (uint32_t)BOOT_LAPIC_ADDR);
	cfg[7] = checksum(cfg, cfg_len);

	/* Floating pointer (16 bytes): "_MP_", u32 table address, length in
	 * 16-byte units, revision, checksum, feature bytes (0: table present,
	 * no IMCR). */
	memcpy(mpf, "_MP_", 4);
	wr32(mpf + 4, (uint32_t)(BOOT_MPTABLE_ADDR + 16));
	mpf[8] = 1;
	mpf[9] = 4;
	mpf[10] = checksum(mpf, 16);
	return 0;
}
