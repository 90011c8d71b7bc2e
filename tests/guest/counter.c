/* counter: the continuity workload for suspend/resume/checkpoint tests.
 * A user-mode loop increments a counter in memory without pause; the PIT
 * ticks at hz (default 200, i.e. every 5 ms) and on every tick the loop
 * appends one numbered 512-byte record to the virtio disk (sector
 * start + seq), flushing every flush_every records; every print_every
 * records it prints a COUNTER line. With cpus=2 (or more) the other CPUs
 * run their own user-mode counters, reported in the records. Runs until
 * killed, or until records=N records are written (then PASS).
 *
 * Record layout (little-endian), see tests/guest/README.md:
 *   0 "ROAMCNT1"  8 seq  16 counter  24 ticks  32 boot_id  40 ap_counter
 *   48..503 filler byte (seq + i) & 0xff   504 FNV-1a-64 of bytes 0..503 */
#include "rt.h"

const char rt_kernel_name[] = "counter";

#define VEC_PIT 0x30

static volatile u64 ticks;
static volatile u64 counter;                    /* the memory counter */
static volatile u64 ap_counter[RT_MAX_CPUS];
static u64 boot_id;

static void pit_irq(struct rt_frame *f)
{
	ticks++;
	rt_lapic_eoi();
}

static u64 fnv(const u8 *p, u64 n)
{
	u64 h = 0xcbf29ce484222325ULL;
	for (u64 i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

static u64 ap_sum(void)
{
	u64 s = 0;
	for (int i = 1; i < RT_MAX_CPUS; i++)
		s += ap_counter[i];
	return s;
}

static u64 u_ap(u64 idx)
{
	for (;;)
		ap_counter[idx]++;
	return 0;
}

static void ap_main(int idx)
{
	rt_printf("COUNTER cpu=%d online\n", idx);
	rt_user_call(u_ap, idx, true);
}

static u64 u_main(u64 unused)
{
	struct vblk *b;
	u64 start = rt_opt_u64("start", 0), every = rt_opt_u64("every", 1);
	u64 flush_every = rt_opt_u64("flush_every", 10), print_every = rt_opt_u64("print_every", 100);
	u64 limit = rt_opt_u64("records", 0);
	if (!every)
		every = 1;
	if (!print_every)
		print_every = 100;
	if (vblk_init(0, &b)) {
		rt_fail("counter", "no usable virtio-blk device");
		return 1;
	}
	u64 cap = vblk_capacity(b);
	bool can_flush = vblk_features(b) & (1ULL << VIRTIO_BLK_F_FLUSH);
	u8 *rec = rt_alloc(512, 512, true);
	rt_printf("COUNTER start boot_id=%#lx sector=%lu capacity=%lu counter_addr=%p\n",
		  boot_id, start, cap, &counter);
	u64 seq = 0, next = ticks + every;
	bool full = false;
	for (;;) {
		counter++;
		if (ticks < next)
			continue;
		next += every;
		if (next <= ticks)                 /* fell behind (e.g. resumed): no burst */
			next = ticks + every;
		if (full || start + seq >= cap) {
			if (!full)
				rt_printf("COUNTER disk full at seq=%lu\n", seq);
			full = true;
			continue;
		}
		memcpy(rec, "ROAMCNT1", 8);
		u64 *w = (u64 *)rec;
		w[1] = seq;
		w[2] = counter;
		w[3] = ticks;
		w[4] = boot_id;
		w[5] = ap_sum();
		for (int i = 48; i < 504; i++)
			rec[i] = (u8)(seq + i);
		w[63] = fnv(rec, 504);
		int st = vblk_rw(b, VIRTIO_BLK_T_OUT, start + seq, rec, 512);
		if (st) {
			rt_fail("counter", "write of record %lu failed: status %d", seq, st);
			return 1;
		}
		seq++;
		if (can_flush && flush_every && seq % flush_every == 0 &&
		    (st = vblk_rw(b, VIRTIO_BLK_T_FLUSH, 0, NULL, 0))) {
			rt_fail("counter", "flush after record %lu failed: status %d", seq - 1, st);
			return 1;
		}
		if (seq % print_every == 0)
			rt_printf("COUNTER seq=%lu value=%lu ticks=%lu ap=%lu\n", seq, counter, ticks, ap_sum());
		if (limit && seq >= limit) {
			rt_printf("COUNTER done records=%lu value=%lu ticks=%lu\n", seq, counter, ticks);
			return 0;
		}
	}
}

void test_main(void)
{
	u32 ids[RT_MAX_CPUS];
	u32 hz = (u32)rt_opt_u64("hz", 200);
	boot_id = rdtsc() ^ ((u64)rt_rtc_tick() << 56) ^ (u64)rt_mem_top();
	rt_pic_disable();
	rt_lapic_enable();
	int n = rt_cpu_count(ids, RT_MAX_CPUS), idx = 1;
	for (int i = 0; i < n; i++) {
		if (ids[i] == rt_lapic_id())
			continue;
		if (rt_start_ap(idx, ids[i], ap_main)) {
			rt_fail("counter", "cpu with apic id %u did not start", ids[i]);
			return;
		}
		idx++;
	}
	rt_set_handler(VEC_PIT, pit_irq);
	rt_ioapic_route(rt_isa_irq_pin(0), VEC_PIT, rt_lapic_id(), false, false, false);
	rt_pit_periodic(hz);
	if (rt_user_call(u_main, 0, true) == 0)
		rt_ok("counter");
	rt_pit_stop();
}
