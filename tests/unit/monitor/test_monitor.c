/* Unit tests for the machine core: guest memory, bus, event loop, records. */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>
#include "monitor/bus.h"
#include "monitor/cpu_state.h"
#include "monitor/evloop.h"
#include "monitor/guest_mem.h"
#include "monitor/rec.h"
#include "tests/unit/test.h"

static void gmem_layout(void)
{
	struct guest_mem *m;
	CHECK_EQ(gmem_new(100, &m), -EINVAL);
	CHECK_EQ(gmem_new((1ULL << 20) + 1, &m), -EINVAL);
	/* 4 GiB: 3 GiB low, 1 GiB above 4 GiB (NORESERVE: costs nothing). */
	CHECK_EQ(gmem_new(4ULL << 30, &m), 0);
	struct gmem_region r[2];
	CHECK_EQ(gmem_regions(m, r), 2);
	CHECK_EQ(r[0].size, GMEM_LOW_MAX);
	CHECK_EQ(r[1].gpa, GMEM_HIGH_BASE);
	CHECK_EQ(r[1].size, 1ULL << 30);
	CHECK(gmem_ptr(m, GMEM_LOW_MAX - 4, 4) != NULL);
	CHECK(gmem_ptr(m, GMEM_LOW_MAX - 4, 8) == NULL);        /* runs into the hole */
	CHECK(gmem_ptr(m, 0xFEE00000, 4) == NULL);
	CHECK(gmem_ptr(m, GMEM_HIGH_BASE, 4) == gmem_base(m) + GMEM_LOW_MAX);
	CHECK(gmem_ptr(m, GMEM_HIGH_BASE + (1ULL << 30) - 4, 8) == NULL);
	CHECK(gmem_ptr(m, ~0ULL - 2, 8) == NULL);                /* wraps */
	CHECK_EQ(gmem_off_to_gpa(m, GMEM_LOW_MAX + 5), GMEM_HIGH_BASE + 5);
	uint32_t v = 0x12345678, w = 0;
	CHECK_EQ(gmem_write(m, GMEM_HIGH_BASE + 8, &v, 4), 0);
	CHECK_EQ(gmem_read(m, GMEM_HIGH_BASE + 8, &w, 4), 0);
	CHECK_EQ(w, v);
	CHECK_EQ(gmem_write(m, 0xFEC00000, &v, 4), -EFAULT);
	gmem_free(m);
	gmem_free(NULL);
}

static void gmem_dirty(void)
{
	struct guest_mem *m;
	CHECK_EQ(gmem_new(16ULL << 20, &m), 0);
	uint64_t bits[(16 << 20) / 4096 / 64];
	gmem_take_dirty(m, bits);
	uint8_t b[5000] = { 1 };
	CHECK_EQ(gmem_write(m, 4096 * 3 + 100, b, sizeof(b)), 0);    /* pages 3, 4 */
	gmem_mark_dirty(m, 4096 * 70, 1);
	gmem_take_dirty(m, bits);
	CHECK_EQ(bits[0], (1ULL << 3) | (1ULL << 4));
	CHECK_EQ(bits[1], 1ULL << 6);
	gmem_take_dirty(m, bits);
	CHECK_EQ(bits[0] | bits[1], 0);
	gmem_free(m);
}

static int reads, writes;
static uint64_t last_off;
static void rd(void *o, uint64_t off, void *data, unsigned len) { reads++; last_off = off; memset(data, 0x5a, len); }
static void wr(void *o, uint64_t off, const void *data, unsigned len) { writes++; last_off = off; }
static const struct bus_ops ops = { rd, wr };

static void bus_ranges(void)
{
	struct bus *b;
	CHECK_EQ(bus_new(0x10000, &b), 0);
	CHECK_EQ(bus_register(b, 0x3f8, 8, &ops, NULL), 0);
	CHECK_EQ(bus_register(b, 0x3f0, 8, &ops, NULL), 0);
	CHECK_EQ(bus_register(b, 0x3ff, 1, &ops, NULL), -EEXIST);
	CHECK_EQ(bus_register(b, 0x3f4, 8, &ops, NULL), -EEXIST);
	CHECK_EQ(bus_register(b, 0x3e0, 0x100, &ops, NULL), -EEXIST);
	CHECK_EQ(bus_register(b, 0xfff0, 0x20, &ops, NULL), -EINVAL);
	CHECK_EQ(bus_register(b, 0x100, 0, &ops, NULL), -EINVAL);
	uint8_t d[4];
	CHECK_EQ(bus_read(b, 0x3fa, d, 1), 0);
	CHECK_EQ(last_off, 2);
	CHECK_EQ(d[0], 0x5a);
	CHECK_EQ(bus_read(b, 0x3fe, d, 4), -ENOENT);   /* crosses the end */
	CHECK_EQ(d[0], 0xff);
	CHECK_EQ(bus_write(b, 0x3f0, d, 4), 0);
	CHECK_EQ(writes, 1);
	CHECK_EQ(bus_write(b, 0x80, d, 1), -ENOENT);
	CHECK_EQ(bus_unregister(b, 0x3f8), 0);
	CHECK_EQ(bus_unregister(b, 0x3f8), -ENOENT);
	CHECK_EQ(bus_read(b, 0x3f8, d, 1), -ENOENT);
	bus_free(b);

	CHECK_EQ(bus_new(0, &b), 0);
	CHECK_EQ(bus_register(b, 0xFFFFFFFFFFFFF000ULL, 0x1000, &ops, NULL), 0);
	CHECK_EQ(bus_register(b, 0xFFFFFFFFFFFFF000ULL, 0x2000, &ops, NULL), -EINVAL);
	bus_free(b);
}

static _Atomic int fired;
static void on_timer(void *o) { atomic_fetch_add(&fired, 1); }
static int pipe_seen;
static void on_fd(void *o, int fd, uint32_t ev) { char c; if (read(fd, &c, 1) == 1) pipe_seen = c; }

static void evloop_timers(void)
{
	struct evloop *ev;
	struct ev_timer *t1, *t2;
	CHECK_EQ(evloop_new(&ev), 0);
	CHECK_EQ(ev_timer_new(ev, on_timer, NULL, &t1), 0);
	CHECK_EQ(ev_timer_new(ev, on_timer, NULL, &t2), 0);
	int p[2];
	CHECK_EQ(pipe(p), 0);
	CHECK_EQ(evloop_add_fd(ev, p[0], 1 /* EPOLLIN */, on_fd, NULL), 0);
	CHECK_EQ(evloop_start(ev), 0);
	uint64_t t0 = now_ns();
	ev_timer_arm(t1, t0 + 20000000);
	ev_timer_arm(t2, t0 + 2000000);
	usleep(8000);
	CHECK_EQ(atomic_load(&fired), 1);         /* only the 2 ms one */
	ev_timer_cancel(t1);
	usleep(20000);
	CHECK_EQ(atomic_load(&fired), 1);         /* cancelled */
	ev_timer_arm(t1, now_ns() + 1000000);
	CHECK_EQ(write(p[1], "x", 1), 1);
	usleep(10000);
	CHECK_EQ(atomic_load(&fired), 2);
	CHECK_EQ(pipe_seen, 'x');
	evloop_stop(ev);
	ev_timer_free(t1);
	ev_timer_free(t2);
	CHECK_EQ(evloop_del_fd(ev, p[0]), 0);
	evloop_free(ev);
	close(p[0]);
	close(p[1]);
}

static void records(void)
{
	struct rec_writer w;
	rec_writer_init(&w);
	rec_put_u8(&w, 0xab);
	rec_put_u16(&w, 0x1234);
	rec_put_u32(&w, 0xdeadbeef);
	rec_put_u64(&w, 0x0102030405060708ULL);
	CHECK_EQ(w.err, 0);
	CHECK_EQ(w.len, 15);
	CHECK_EQ(w.buf[1], 0x34);                 /* little-endian */
	struct rec_reader r;
	rec_reader_init(&r, w.buf, w.len);
	CHECK_EQ(rec_get_u8(&r), 0xab);
	CHECK_EQ(rec_get_u16(&r), 0x1234);
	CHECK_EQ(rec_get_u32(&r), 0xdeadbeef);
	CHECK_EQ(rec_get_u64(&r), 0x0102030405060708ULL);
	CHECK_EQ(r.err, 0);
	CHECK_EQ(rec_get_u32(&r), 0);             /* past the end: sticky error */
	CHECK_EQ(r.err, -EINVAL);
	CHECK_EQ(rec_get_u8(&r), 0);
	rec_writer_free(&w);
}

static void cpu_state_msrs(void)
{
	static struct cpu_state st;
	cpu_state_reset(&st, 1);
	uint64_t v;
	CHECK_EQ(cpu_state_msr(&st, MSR_IA32_APIC_BASE, &v), 0);
	CHECK_EQ(v, 0xfee00900);
	CHECK_EQ(cpu_state_msr(&st, MSR_LSTAR, &v), -ENOENT);
	CHECK_EQ(cpu_state_set_msr(&st, MSR_LSTAR, 7), 0);
	CHECK_EQ(cpu_state_msr(&st, MSR_LSTAR, &v), 0);
	CHECK_EQ(v, 7);
	for (uint32_t i = 0; i < CPU_MAX_MSRS; i++)
		cpu_state_set_msr(&st, 0x1000 + i, i);
	CHECK_EQ(cpu_state_set_msr(&st, 0x9999, 1), -ENOSPC);
	CHECK_EQ(st.rip, 0xfff0);
	CHECK_EQ(st.seg[SEG_CS].base, 0xffff0000);
	cpu_state_reset(&st, 0);
	CHECK_EQ(st.mp_state, CPU_WAIT_SIPI);
}

int main(void)
{
	TEST(gmem_layout);
	TEST(gmem_dirty);
	TEST(bus_ranges);
	TEST(evloop_timers);
	TEST(records);
	TEST(cpu_state_msrs);
	TEST_EXIT();
}
