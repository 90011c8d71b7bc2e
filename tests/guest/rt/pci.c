/* PCI configuration space for the test kernels: mechanism 1 (ports
 * 0xCF8/0xCFC), a scan of bus 0 and the buses behind bridges, and BAR
 * decoding with assignment from a private window when firmware left a BAR
 * at 0 (roam has no firmware). */
#include "rt.h"

/* BARs roam leaves unassigned go here (below the IOAPIC, above RAM). */
#define BAR_WINDOW_BASE 0xe0000000ULL
#define BAR_WINDOW_END  0xfec00000ULL
static u64 bar_next = BAR_WINDOW_BASE;

static u32 addr(const struct rt_pci *p, u8 off)
{
	return 0x80000000u | ((u32)p->bus << 16) | ((u32)p->dev << 11) | ((u32)p->fn << 8) | (off & 0xfc);
}

u32 rt_pci_read32(const struct rt_pci *p, u8 off) { outl(0xcf8, addr(p, off)); return inl(0xcfc); }
u16 rt_pci_read16(const struct rt_pci *p, u8 off) { outl(0xcf8, addr(p, off)); return inw(0xcfc + (off & 2)); }
u8 rt_pci_read8(const struct rt_pci *p, u8 off) { outl(0xcf8, addr(p, off)); return inb(0xcfc + (off & 3)); }
void rt_pci_write32(const struct rt_pci *p, u8 off, u32 v) { outl(0xcf8, addr(p, off)); outl(0xcfc, v); }
void rt_pci_write16(const struct rt_pci *p, u8 off, u16 v) { outl(0xcf8, addr(p, off)); outw(0xcfc + (off & 2), v); }

static int scan_bus(int bus, u16 vendor, u16 device, int *nth, struct rt_pci *ret, int depth)
{
	for (int d = 0; d < 32; d++) {
		for (int f = 0; f < 8; f++) {
			struct rt_pci p = { (u8)bus, (u8)d, (u8)f, 0, 0 };
			u32 id = rt_pci_read32(&p, 0);
			if ((id & 0xffff) == 0xffff || id == 0) {
				if (f == 0)
					break;
				continue;
			}
			p.vendor = id & 0xffff;
			p.device = id >> 16;
			if (p.vendor == vendor && p.device == device && (*nth)-- == 0) {
				*ret = p;
				return 0;
			}
			u8 hdr = rt_pci_read8(&p, 0x0e);
			if ((hdr & 0x7f) == 1 && depth < 8) {   /* PCI-PCI bridge */
				int sec = rt_pci_read8(&p, 0x19);
				if (sec > bus && !scan_bus(sec, vendor, device, nth, ret, depth + 1))
					return 0;
			}
			if (f == 0 && !(hdr & 0x80))
				break;                              /* single function */
		}
	}
	return -1;
}

int rt_pci_find(u16 vendor, u16 device, int nth, struct rt_pci *ret)
{
	return scan_bus(0, vendor, device, &nth, ret, 0);
}

u64 rt_pci_bar(const struct rt_pci *p, int bar)
{
	u8 off = 0x10 + 4 * bar;
	u32 lo = rt_pci_read32(p, off);
	if (lo & 1)
		return lo & ~3u;                            /* I/O BAR */
	bool is64 = ((lo >> 1) & 3) == 2;
	u64 base = lo & ~0xfULL;
	if (is64)
		base |= (u64)rt_pci_read32(p, off + 4) << 32;
	if (!base) {
		/* size it, then give it the next aligned slot of the window */
		u16 cmd = rt_pci_read16(p, 0x04);
		rt_pci_write16(p, 0x04, cmd & ~3);
		rt_pci_write32(p, off, 0xffffffff);
		u32 mask = rt_pci_read32(p, off) & ~0xfu;
		u64 size = mask ? (u64)(~mask + 1) : 0;
		if (size) {
			u64 a = (bar_next + size - 1) & ~(size - 1);
			if (a + size <= BAR_WINDOW_END) {
				bar_next = a + size;
				base = a;
			}
		}
		rt_pci_write32(p, off, (u32)base | (lo & 0xf));
		if (is64)
			rt_pci_write32(p, off + 4, (u32)(base >> 32));
		rt_pci_write16(p, 0x04, cmd);
	}
	if (base >= 0x100000000ULL)
		rt_map_identity(base, RT_2M, PTE_P | PTE_W | PTE_U | PTE_PCD | PTE_PWT);
	rt_pci_write16(p, 0x04, rt_pci_read16(p, 0x04) | 0x6);   /* memory + bus master */
	return base;
}
