/* virtio_blk: the virtio 1.x PCI block device end to end, driven from user
 * mode. Writes a text pattern to a run of sectors, flushes, reads it back
 * with a different request size and compares; also checks that a read past
 * the end fails with IOERR and that GET_ID completes.
 * Sector s holds 16 lines of 32 bytes: "roam-blk sector %07u line %02u\n".
 * Options: start=S (first sector, default 0), sectors=N (default 256),
 * chunk=N (sectors per write request, default 8), mode=write|verify|both
 * (default both), ro (expect a read-only disk: writes must fail). */
#include "rt.h"

const char rt_kernel_name[] = "virtio_blk";

static void fill_sector(u8 *p, u64 s)
{
	char line[33];
	for (int l = 0; l < 16; l++) {
		rt_snprintf(line, sizeof(line), "roam-blk sector %07lu line %02d\n", s, l);
		memcpy(p + 32 * l, line, 32);
	}
}

static u64 u_main(u64 unused)
{
	struct vblk *b;
	char mode[16] = "both";
	rt_opt("mode", mode, sizeof(mode));
	u64 start = rt_opt_u64("start", 0), n = rt_opt_u64("sectors", 256);
	u64 chunk = rt_opt_u64("chunk", 8);
	bool ro = rt_opt_u64("ro", 0);
	bool do_write = strcmp(mode, "verify") != 0 && !ro, do_verify = strcmp(mode, "write") != 0;
	if (chunk < 1 || chunk > 64)
		chunk = 8;

	if (vblk_init(0, &b)) {
		rt_fail("blk_init", "no usable virtio-blk device");
		return 0;
	}
	u64 cap = vblk_capacity(b), feat = vblk_features(b);
	rt_printf("virtio_blk: capacity=%lu sectors features=%#lx queue_size=%u\n", cap, feat, vblk_ring(b)->size);
	rt_ok("blk_init");
	if (start + n > cap) {
		rt_fail("blk_range", "sectors %lu..%lu beyond capacity %lu", start, start + n, cap);
		return 0;
	}
	u8 *buf = rt_alloc(64 * 512, RT_PAGE, true), *want = rt_alloc(512, 64, true);
	u64 written = 0, verified = 0;

	if (ro && rt_test_enabled("blk_readonly")) {
		fill_sector(buf, start);
		int st = vblk_rw(b, VIRTIO_BLK_T_OUT, start, buf, 512);
		if (!(feat & (1ULL << VIRTIO_BLK_F_RO))) rt_fail("blk_readonly", "device does not offer VIRTIO_BLK_F_RO");
		else if (st != VIRTIO_BLK_S_IOERR) rt_fail("blk_readonly", "write to a read-only disk: status %d, want IOERR (1)", st);
		else rt_ok("blk_readonly");
	}
	if (do_write && rt_test_enabled("blk_write")) {
		int st = 0;
		for (u64 s = start; s < start + n && !st; s += chunk) {
			u64 c = start + n - s < chunk ? start + n - s : chunk;
			for (u64 i = 0; i < c; i++)
				fill_sector(buf + 512 * i, s + i);
			st = vblk_rw(b, VIRTIO_BLK_T_OUT, s, buf, (u32)(c * 512));
			if (st)
				rt_fail("blk_write", "write of sectors %lu+%lu: status %d", s, c, st);
			else
				written += c;
		}
		if (!st)
			rt_ok("blk_write");
	}
	if (do_write && rt_test_enabled("blk_flush")) {
		if (!(feat & (1ULL << VIRTIO_BLK_F_FLUSH))) {
			rt_skip("blk_flush", "device does not offer VIRTIO_BLK_F_FLUSH");
		} else {
			int st = vblk_rw(b, VIRTIO_BLK_T_FLUSH, 0, NULL, 0);
			if (st) rt_fail("blk_flush", "status %d", st); else rt_ok("blk_flush");
		}
	}
	if (do_verify && rt_test_enabled("blk_read_verify")) {
		/* single sectors first, then 16-sector requests */
		int bad = 0;
		for (u64 s = start; s < start + n && !bad;) {
			u64 c = s - start < 16 ? 1 : 16;
			if (c > start + n - s)
				c = start + n - s;
			memset(buf, 0xee, c * 512);
			int st = vblk_rw(b, VIRTIO_BLK_T_IN, s, buf, (u32)(c * 512));
			if (st) {
				rt_fail("blk_read_verify", "read of sectors %lu+%lu: status %d", s, c, st);
				bad = 1;
				break;
			}
			for (u64 i = 0; i < c; i++) {
				fill_sector(want, s + i);
				if (memcmp(buf + 512 * i, want, 512)) {
					char got[33];
					memcpy(got, buf + 512 * i, 32);
					got[31] = 0;
					rt_fail("blk_read_verify", "sector %lu differs: starts \"%s\"", s + i, got);
					bad = 1;
					break;
				}
				verified++;
			}
			s += c;
		}
		if (!bad)
			rt_ok("blk_read_verify");
	}
	if (rt_test_enabled("blk_read_beyond_end")) {
		int st = vblk_rw(b, VIRTIO_BLK_T_IN, cap, buf, 512);
		if (st == VIRTIO_BLK_S_IOERR) rt_ok("blk_read_beyond_end");
		else rt_fail("blk_read_beyond_end", "read at sector %lu (capacity): status %d, want IOERR (1)", cap, st);
	}
	if (rt_test_enabled("blk_get_id")) {
		memset(buf, 0, 20);
		int st = vblk_rw(b, VIRTIO_BLK_T_GET_ID, 0, buf, 20);
		if (st == VIRTIO_BLK_S_OK || st == VIRTIO_BLK_S_UNSUPP) rt_ok("blk_get_id");
		else rt_fail("blk_get_id", "status %d", st);
	}
	rt_printf("virtio_blk: summary start=%lu sectors=%lu written=%lu verified=%lu\n", start, n, written, verified);
	return 0;
}

void test_main(void)
{
	rt_user_call(u_main, 0, false);
}
