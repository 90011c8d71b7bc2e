/* hostile_virtio: hands the virtio-blk device garbage and checks that it
 * survives. Each case builds a malformed request (addresses outside RAM,
 * descriptor loops, huge lengths, indices out of range, missing or
 * misflagged descriptors, an avail index far ahead, a queue moved out of
 * RAM, a notify for a queue that does not exist, MSI-X messages aimed
 * outside RAM), waits briefly for the
 * device to complete it, flag NEEDS_RESET or ignore it (all acceptable),
 * then resets the device and requires a good write + read to work again.
 * The VMM must not crash; the kernel passes if it gets to the end. */
#include "rt.h"

const char rt_kernel_name[] = "hostile_virtio";

static struct vblk *b;
static u8 *hdr, *data, *status, *good;
static struct vring_desc *garbage_table;
static u64 far_addr;

struct hcase {
	const char *name;
	/* fills descriptors and returns the head to publish; -1 = the case
	 * does its own submission */
	int (*setup)(struct vblk_ring *r);
};

static void req_hdr(u32 type, u64 sector)
{
	((u32 *)hdr)[0] = type;
	((u32 *)hdr)[1] = 0;
	*(u64 *)(hdr + 8) = sector;
	*status = 0xff;
}

static void chain3(struct vblk_ring *r, u64 daddr, u32 dlen, u16 dflags)
{
	req_hdr(VIRTIO_BLK_T_IN, 0);
	r->desc[0] = (struct vring_desc){ (u64)hdr, 16, VRING_DESC_F_NEXT, 1 };
	r->desc[1] = (struct vring_desc){ daddr, dlen, dflags | VRING_DESC_F_NEXT, 2 };
	r->desc[2] = (struct vring_desc){ (u64)status, 1, VRING_DESC_F_WRITE, 0 };
}

static int c_addr_out_of_ram(struct vblk_ring *r) { chain3(r, 0xfffffffff000ULL, 512, VRING_DESC_F_WRITE); return 0; }
static int c_addr_beyond_top(struct vblk_ring *r) { chain3(r, far_addr, 4096, VRING_DESC_F_WRITE); return 0; }
static int c_addr_straddles_top(struct vblk_ring *r) { chain3(r, rt_mem_top() - 256, 512, VRING_DESC_F_WRITE); return 0; }
static int c_addr_wraps(struct vblk_ring *r) { chain3(r, 0xfffffffffffffe00ULL, 1024, VRING_DESC_F_WRITE); return 0; }
static int c_huge_len(struct vblk_ring *r) { chain3(r, (u64)data, 0xfffffe00u, VRING_DESC_F_WRITE); return 0; }
static int c_odd_len(struct vblk_ring *r) { chain3(r, (u64)data, 100, VRING_DESC_F_WRITE); return 0; }
static int c_write_huge_len(struct vblk_ring *r)
{
	chain3(r, (u64)data, 0x80000000u, 0);
	((u32 *)hdr)[0] = VIRTIO_BLK_T_OUT;
	return 0;
}

static int c_desc_loop(struct vblk_ring *r)
{
	chain3(r, (u64)data, 512, VRING_DESC_F_WRITE);
	r->desc[1].next = 0;              /* 0 -> 1 -> 0 -> ... */
	return 0;
}

static int c_self_loop(struct vblk_ring *r)
{
	chain3(r, (u64)data, 512, VRING_DESC_F_WRITE);
	r->desc[1].next = 1;
	return 0;
}

static int c_next_out_of_range(struct vblk_ring *r)
{
	chain3(r, (u64)data, 512, VRING_DESC_F_WRITE);
	r->desc[1].next = 999;
	return 0;
}

static int c_head_out_of_range(struct vblk_ring *r)
{
	chain3(r, (u64)data, 512, VRING_DESC_F_WRITE);
	return r->size + 7;
}

static int c_head_ffff(struct vblk_ring *r)
{
	chain3(r, (u64)data, 512, VRING_DESC_F_WRITE);
	return 0xffff;
}

static int c_short_header(struct vblk_ring *r)
{
	chain3(r, (u64)data, 512, VRING_DESC_F_WRITE);
	r->desc[0].len = 4;
	return 0;
}

static int c_no_status(struct vblk_ring *r)
{
	req_hdr(VIRTIO_BLK_T_IN, 0);
	r->desc[0] = (struct vring_desc){ (u64)hdr, 16, 0, 0 };
	return 0;
}

static int c_writable_header(struct vblk_ring *r)
{
	chain3(r, (u64)data, 512, VRING_DESC_F_WRITE);
	r->desc[0].flags |= VRING_DESC_F_WRITE;
	return 0;
}

static int c_readonly_status(struct vblk_ring *r)
{
	chain3(r, (u64)data, 512, VRING_DESC_F_WRITE);
	r->desc[2].flags = 0;
	return 0;
}

static int c_indirect_unnegotiated(struct vblk_ring *r)
{
	for (int i = 0; i < 4; i++)
		garbage_table[i] = (struct vring_desc){ 0xdead0000beef0000ULL + i, 0x7fffffff, 0xffff, (u16)(i * 1000) };
	r->desc[0] = (struct vring_desc){ (u64)garbage_table, 64, VRING_DESC_F_INDIRECT, 0 };
	return 0;
}

static int c_indirect_out_of_ram(struct vblk_ring *r)
{
	r->desc[0] = (struct vring_desc){ 0xfffffffff000ULL, 0x10000, VRING_DESC_F_INDIRECT, 0 };
	return 0;
}

static int c_sector_overflow(struct vblk_ring *r)
{
	chain3(r, (u64)data, 4096, VRING_DESC_F_WRITE);
	*(u64 *)(hdr + 8) = 0xfffffffffffffff8ULL;   /* sector + len wraps */
	return 0;
}

static int c_bad_type(struct vblk_ring *r)
{
	chain3(r, (u64)data, 512, VRING_DESC_F_WRITE);
	((u32 *)hdr)[0] = 0x7777;
	return 0;
}

static int c_avail_idx_jump(struct vblk_ring *r)
{
	chain3(r, (u64)data, 512, VRING_DESC_F_WRITE);
	r->avail[2] = 0;
	mb();
	r->avail_idx += 1000;
	r->avail[1] = r->avail_idx;
	mb();
	mmio_write16(r->notify, 0);
	return -1;
}

static int c_queue_out_of_ram(struct vblk_ring *r)
{
	u64 c = vblk_common(b);
	mmio_write16(c + 22, 0);
	mmio_write32(c + 32, 0xfff00000u);     /* queue_desc -> 0x0000ffff_fff00000 */
	mmio_write32(c + 36, 0xffff);
	mmio_write32(c + 40, 0xfff01000u);     /* driver area */
	mmio_write32(c + 44, 0xffff);
	chain3(r, (u64)data, 512, VRING_DESC_F_WRITE);
	return 0;
}

static int c_notify_bad_queue(struct vblk_ring *r)
{
	mmio_write16(r->notify, 0x1234);
	mmio_write16(r->notify, 0xffff);
	return -1;
}

static int c_status_garbage(struct vblk_ring *r)
{
	/* driver writes nonsense status bits, then submits */
	mmio_write8(vblk_common(b) + 20, 0x3f);
	chain3(r, (u64)data, 512, VRING_DESC_F_WRITE);
	return 0;
}

/* Queue registers written while live and for queues that do not exist. */
static int c_queue_cfg_garbage(struct vblk_ring *r)
{
	u64 c = vblk_common(b);
	mmio_write16(c + 22, 0x1234);              /* queue_select: no such queue */
	mmio_write16(c + 24, 0x7fff);
	mmio_write32(c + 32, 0xdead0000u);
	mmio_write32(c + 36, 0xffffffffu);
	mmio_write16(c + 28, 1);                   /* enable it */
	mmio_write16(c + 22, 0);
	mmio_write16(c + 24, 0x7fff);              /* resize the live queue */
	mmio_write16(c + 24, 3);
	chain3(r, (u64)data, 512, VRING_DESC_F_WRITE);
	return 0;
}

/* MSI-X on, table entry 0 aimed outside RAM, queue and config vectors at
 * entry 0 and at a vector the table does not have; then a request, so the
 * device signals into nowhere. MSI-X is switched off again afterwards. */
static u8 msix_cap;
static int c_msix_garbage(struct vblk_ring *r)
{
	const struct rt_pci *p = vblk_pci(b);
	u8 ptr = rt_pci_read8(p, 0x34) & 0xfc;
	for (int guard = 0; ptr && guard < 48 && !msix_cap; guard++) {
		if (rt_pci_read8(p, ptr) == 0x11)
			msix_cap = ptr;
		ptr = rt_pci_read8(p, ptr + 1) & 0xfc;
	}
	if (!msix_cap)
		return -1;                         /* no MSI-X: nothing to abuse */
	u32 tbl = rt_pci_read32(p, msix_cap + 4);
	u64 base = rt_pci_bar(p, tbl & 7) + (tbl & ~7u);
	mmio_write32(base + 0, 0xdead0000u);       /* address: not RAM, not APIC */
	mmio_write32(base + 4, 0xbeef);
	mmio_write32(base + 8, 0x4141);
	mmio_write32(base + 12, 0);                /* unmasked */
	rt_pci_write16(p, msix_cap + 2, rt_pci_read16(p, msix_cap + 2) | 0x8000);
	u64 c = vblk_common(b);
	mmio_write16(c + 16, 0x7777);              /* config vector: no such entry */
	mmio_write16(c + 22, 0);
	mmio_write16(c + 26, 0);                   /* queue 0 -> entry 0 */
	chain3(r, (u64)data, 512, VRING_DESC_F_WRITE);
	return 0;
}

static void msix_off(void)
{
	if (msix_cap) {
		const struct rt_pci *p = vblk_pci(b);
		rt_pci_write16(p, msix_cap + 2, rt_pci_read16(p, msix_cap + 2) & ~0x8000);
	}
}

static const struct hcase cases[] = {
	{ "addr_out_of_ram", c_addr_out_of_ram },
	{ "addr_beyond_ram_top", c_addr_beyond_top },
	{ "addr_straddles_ram_top", c_addr_straddles_top },
	{ "addr_wraps", c_addr_wraps },
	{ "huge_len", c_huge_len },
	{ "write_huge_len", c_write_huge_len },
	{ "odd_len", c_odd_len },
	{ "desc_loop", c_desc_loop },
	{ "desc_self_loop", c_self_loop },
	{ "next_out_of_range", c_next_out_of_range },
	{ "head_out_of_range", c_head_out_of_range },
	{ "head_ffff", c_head_ffff },
	{ "short_header", c_short_header },
	{ "no_status_desc", c_no_status },
	{ "writable_header", c_writable_header },
	{ "readonly_status", c_readonly_status },
	{ "indirect_unnegotiated", c_indirect_unnegotiated },
	{ "indirect_out_of_ram", c_indirect_out_of_ram },
	{ "sector_overflow", c_sector_overflow },
	{ "bad_type", c_bad_type },
	{ "avail_idx_jump", c_avail_idx_jump },
	{ "queue_out_of_ram", c_queue_out_of_ram },
	{ "notify_bad_queue", c_notify_bad_queue },
	{ "status_garbage", c_status_garbage },
	{ "queue_cfg_garbage", c_queue_cfg_garbage },
	{ "msix_garbage", c_msix_garbage },
};

/* A good write + read of one sector after a reset. */
static int alive(const char **why)
{
	if (vblk_reinit(b)) {
		*why = "re-initialization after reset failed";
		return -1;
	}
	for (int i = 0; i < 512; i++)
		good[i] = (u8)(i * 13 + 7);
	if (vblk_rw(b, VIRTIO_BLK_T_OUT, 1, good, 512) != 0) {
		*why = "write after reset failed";
		return -1;
	}
	memset(data, 0, 512);
	if (vblk_rw(b, VIRTIO_BLK_T_IN, 1, data, 512) != 0) {
		*why = "read after reset failed";
		return -1;
	}
	if (memcmp(data, good, 512)) {
		*why = "read after reset returned wrong data";
		return -1;
	}
	return 0;
}

static u64 u_main(u64 unused)
{
	const char *why;
	if (vblk_init(0, &b)) {
		rt_fail("hostile_init", "no usable virtio-blk device");
		return 0;
	}
	hdr = rt_alloc(64, 64, true);
	status = hdr + 32;
	data = rt_alloc(8192, RT_PAGE, true);
	good = rt_alloc(512, 64, true);
	garbage_table = rt_alloc(RT_PAGE, RT_PAGE, true);
	far_addr = (rt_mem_top() + (64ULL << 20)) & ~0xfffULL;
	if (alive(&why)) {
		rt_fail("hostile_init", "device broken before any garbage: %s", why);
		return 0;
	}
	rt_ok("hostile_init");
	int survived = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char name[64];
		rt_snprintf(name, sizeof(name), "hostile_%s", cases[i].name);
		if (!rt_test_enabled(name))
			continue;
		struct vblk_ring *r = vblk_ring(b);
		int head = cases[i].setup(r);
		const char *outcome;
		if (head >= 0) {
			int rc = vblk_submit_raw(b, (u16)head, 1);
			u8 st = vblk_status(b);
			outcome = rc == 0 ? "completed" : (st & VIRTIO_STATUS_NEEDS_RESET) ? "needs_reset" : "ignored";
		} else {
			struct rt_deadline d;
			rt_deadline_start(&d, 1);
			while (!rt_deadline_passed(&d) && r->used[1] == r->used_seen &&
			       !(vblk_status(b) & VIRTIO_STATUS_NEEDS_RESET))
				cpu_relax();
			outcome = (vblk_status(b) & VIRTIO_STATUS_NEEDS_RESET) ? "needs_reset" :
				  r->used[1] != r->used_seen ? "completed" : "ignored";
		}
		u8 st = *status;
		msix_off();
		if (alive(&why)) {
			rt_fail(name, "device unusable after the garbage (%s) and a reset: %s", outcome, why);
		} else {
			rt_printf("hostile_virtio: %s -> %s (status byte %#x)\n", cases[i].name, outcome, st);
			rt_ok(name);
			survived++;
		}
	}
	rt_printf("hostile_virtio: survived %d cases\n", survived);
	return 0;
}

void test_main(void)
{
	rt_user_call(u_main, 0, false);
}
