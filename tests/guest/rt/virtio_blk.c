/* virtio 1.x modern PCI block driver for the test kernels: finds vendor
 * 0x1af4 device 0x1042, walks the vendor capabilities for the common,
 * notify, ISR and device configuration windows, negotiates VERSION_1 (and
 * FLUSH and RO when offered), sets up queue 0 (split ring, up to 64
 * entries, no MSI-X vectors) and runs one polled request at a time.
 * Usable from CPL3 (the kernels run it in user mode). */
#include "rt.h"

struct vblk {
	struct rt_pci pci;
	u64 common, notify_base, isr, devcfg;
	u32 notify_mult;
	u64 features;
	struct vblk_ring ring;
	u8 *hdr;          /* 16-byte request header */
	volatile u8 *status;
};

#define C_DFSELECT 0
#define C_DF 4
#define C_GFSELECT 8
#define C_GF 12
#define C_MSIX 16
#define C_NUMQ 18
#define C_STATUS 20
#define C_QSELECT 22
#define C_QSIZE 24
#define C_QMSIX 26
#define C_QENABLE 28
#define C_QNOFF 30
#define C_QDESC 32
#define C_QDRIVER 40
#define C_QDEVICE 48

static int find_caps(struct vblk *b)
{
	const struct rt_pci *p = &b->pci;
	if (!(rt_pci_read16(p, 0x06) & 0x10)) {
		rt_printf("vblk: %02x:%02x.%x has no capability list\n", p->bus, p->dev, p->fn);
		return -1;
	}
	u8 ptr = rt_pci_read8(p, 0x34) & 0xfc;
	for (int guard = 0; ptr && guard < 48; guard++) {
		u8 id = rt_pci_read8(p, ptr), next = rt_pci_read8(p, ptr + 1) & 0xfc;
		if (id == 0x09) {
			u8 type = rt_pci_read8(p, ptr + 3), bar = rt_pci_read8(p, ptr + 4);
			u32 off = rt_pci_read32(p, ptr + 8);
			if (bar <= 5 && type >= 1 && type <= 4) {
				u64 base = rt_pci_bar(p, bar);
				if (!base) {
					rt_printf("vblk: BAR%u has no address\n", bar);
					return -1;
				}
				base += off;
				switch (type) {
				case 1: if (!b->common) b->common = base; break;
				case 2:
					if (!b->notify_base) {
						b->notify_base = base;
						b->notify_mult = rt_pci_read32(p, ptr + 16);
					}
					break;
				case 3: if (!b->isr) b->isr = base; break;
				case 4: if (!b->devcfg) b->devcfg = base; break;
				}
			}
		}
		ptr = next;
	}
	if (!b->common || !b->notify_base || !b->isr || !b->devcfg) {
		rt_printf("vblk: missing virtio capabilities (common %#lx notify %#lx isr %#lx device %#lx)\n",
			  b->common, b->notify_base, b->isr, b->devcfg);
		return -1;
	}
	return 0;
}

static void write64(u64 a, u64 v)
{
	mmio_write32(a, (u32)v);
	mmio_write32(a + 4, (u32)(v >> 32));
}

static int setup(struct vblk *b)
{
	u64 c = b->common;
	mmio_write8(c + C_STATUS, 0);
	for (int i = 0; mmio_read8(c + C_STATUS) != 0; i++) {
		if (i > 100000) {
			rt_printf("vblk: device does not reset\n");
			return -1;
		}
		cpu_relax();
	}
	mmio_write8(c + C_STATUS, 1);
	mmio_write8(c + C_STATUS, 1 | 2);
	mmio_write32(c + C_DFSELECT, 0);
	u64 f = mmio_read32(c + C_DF);
	mmio_write32(c + C_DFSELECT, 1);
	f |= (u64)mmio_read32(c + C_DF) << 32;
	if (!(f & (1ULL << VIRTIO_F_VERSION_1))) {
		rt_printf("vblk: device does not offer VIRTIO_F_VERSION_1 (features %#lx)\n", f);
		return -1;
	}
	u64 want = f & ((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_BLK_F_FLUSH) | (1ULL << VIRTIO_BLK_F_RO));
	mmio_write32(c + C_GFSELECT, 0);
	mmio_write32(c + C_GF, (u32)want);
	mmio_write32(c + C_GFSELECT, 1);
	mmio_write32(c + C_GF, (u32)(want >> 32));
	mmio_write8(c + C_STATUS, 1 | 2 | 8);
	if (!(mmio_read8(c + C_STATUS) & 8)) {
		rt_printf("vblk: device refused features %#lx\n", want);
		return -1;
	}
	b->features = want;
	mmio_write16(c + C_QSELECT, 0);
	u16 max = mmio_read16(c + C_QSIZE), n = 1;
	while (n * 2 <= max && n * 2 <= 64)
		n *= 2;
	if (!max) {
		rt_printf("vblk: queue 0 does not exist\n");
		return -1;
	}
	struct vblk_ring *r = &b->ring;
	if (!r->desc) {
		r->desc = rt_alloc(RT_PAGE, RT_PAGE, true);
		r->avail = rt_alloc(RT_PAGE, RT_PAGE, true);
		r->used = rt_alloc(RT_PAGE, RT_PAGE, true);
	} else {
		memset(r->desc, 0, RT_PAGE);
		memset((void *)r->avail, 0, RT_PAGE);
		memset((void *)r->used, 0, RT_PAGE);
	}
	r->size = n;
	r->avail_idx = r->used_seen = 0;
	mmio_write16(c + C_QSIZE, n);
	mmio_write16(c + C_MSIX, 0xffff);
	mmio_write16(c + C_QMSIX, 0xffff);
	write64(c + C_QDESC, (u64)r->desc);
	write64(c + C_QDRIVER, (u64)r->avail);
	write64(c + C_QDEVICE, (u64)r->used);
	r->notify = b->notify_base + (u64)mmio_read16(c + C_QNOFF) * b->notify_mult;
	mmio_write16(c + C_QENABLE, 1);
	mmio_write8(c + C_STATUS, 1 | 2 | 4 | 8);
	return 0;
}

int vblk_init(int nth, struct vblk **ret)
{
	struct vblk *b = rt_alloc(sizeof(*b), 64, true);
	if (rt_pci_find(0x1af4, 0x1042, nth, &b->pci)) {
		rt_printf("vblk: no virtio-blk (1af4:1042) device #%d on the PCI bus\n", nth);
		return -1;
	}
	if (rt_opt_u64("pci_reassign", 0)) {
		/* forget the firmware's BARs to exercise rt_pci_bar's assignment
		 * (roam has no firmware, so this is its normal path) */
		rt_pci_write16(&b->pci, 0x04, rt_pci_read16(&b->pci, 0x04) & ~3);
		for (int i = 0; i < 6; i++)
			rt_pci_write32(&b->pci, 0x10 + 4 * i, 0);
	}
	if (find_caps(b))
		return -1;
	b->hdr = rt_alloc(64, 64, true);
	b->status = b->hdr + 32;
	if (setup(b))
		return -1;
	*ret = b;
	return 0;
}

int vblk_reinit(struct vblk *b) { return setup(b); }
u64 vblk_features(struct vblk *b) { return b->features; }
u8 vblk_status(struct vblk *b) { return mmio_read8(b->common + C_STATUS); }
struct vblk_ring *vblk_ring(struct vblk *b) { return &b->ring; }
u64 vblk_common(struct vblk *b) { return b->common; }
const struct rt_pci *vblk_pci(struct vblk *b) { return &b->pci; }

u64 vblk_capacity(struct vblk *b)
{
	return mmio_read32(b->devcfg) | ((u64)mmio_read32(b->devcfg + 4) << 32);
}

int vblk_submit_raw(struct vblk *b, u16 head, u32 timeout_s)
{
	struct vblk_ring *r = &b->ring;
	r->avail[2 + (r->avail_idx % r->size)] = head;
	mb();
	r->avail[1] = ++r->avail_idx;
	mb();
	mmio_write16(r->notify, 0);
	struct rt_deadline d;
	rt_deadline_start(&d, timeout_s);
	for (u32 i = 0;; i++) {
		mb();
		if (r->used[1] != r->used_seen)
			break;
		if ((i & 1023) == 1023 && (vblk_status(b) & VIRTIO_STATUS_NEEDS_RESET))
			return -1;
		if (rt_deadline_passed(&d))
			return -1;
		cpu_relax();
	}
	r->used_seen = r->used[1];
	return 0;
}

int vblk_rw(struct vblk *b, u32 type, u64 sector, void *buf, u32 len)
{
	struct vring_desc *d = b->ring.desc;
	u32 *h = (u32 *)b->hdr;
	h[0] = type;
	h[1] = 0;
	*(u64 *)(h + 2) = sector;
	*b->status = 0xff;
	d[0] = (struct vring_desc){ (u64)b->hdr, 16, VRING_DESC_F_NEXT, 1 };
	if (len) {
		u16 fl = VRING_DESC_F_NEXT | (type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID ? VRING_DESC_F_WRITE : 0);
		d[1] = (struct vring_desc){ (u64)buf, len, fl, 2 };
	} else {
		d[0].next = 2;
	}
	d[2] = (struct vring_desc){ (u64)b->status, 1, VRING_DESC_F_WRITE, 0 };
	if (vblk_submit_raw(b, 0, 10))
		return -1;
	mb();
	return *b->status;
}
