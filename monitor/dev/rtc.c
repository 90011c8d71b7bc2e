/* The MC146818 CMOS RTC at 0x70 (index, bit 7 NMI disable) / 0x71 (data):
 * the host's current time (UTC) plus an offset the guest sets through the
 * SET bit, BCD or binary and 12/24-hour per register B, the update-in-
 * progress bit in the last 244 us of each second, periodic / alarm /
 * update-ended interrupts on IRQ8 from one evloop timer, and 128 bytes of
 * CMOS memory with the memory size fields a BIOS would fill in. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "monitor/bus.h"
#include "monitor/dev.h"
#include "monitor/dev/legacy.h"
#include "monitor/evloop.h"
#include "monitor/guest_mem.h"
#include "monitor/vm.h"

#define REG_A 0x0a
#define REG_B 0x0b
#define REG_C 0x0c
#define REG_D 0x0d
#define CENTURY 0x32

#define B_SET  0x80
#define B_PIE  0x40
#define B_AIE  0x20
#define B_UIE  0x10
#define B_DM   0x04            /* binary */
#define B_24H  0x02
#define C_IRQF 0x80
#define C_PF   0x40
#define C_AF   0x20
#define C_UF   0x10

#define MAX_OFFSET_S 100000000000LL    /* ~3000 years either way */

struct rtc {
	struct dev d;
	pthread_mutex_t lock;
	struct ev_timer *timer;
	bool paused;
	int64_t last_sec;        /* host second last seen by the timer */
	uint64_t next_pf_ns;     /* next periodic tick (monotonic), 0 none */
	/* guest-visible state (the record) */
	uint8_t index, nmi_off, irq_line;
	uint8_t cmos[128];
	int64_t offset_s;        /* guest time - host UTC, seconds */
};

static void host_time(int64_t *sec, long *nsec)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	*sec = ts.tv_sec;
	*nsec = ts.tv_nsec;
}

static uint8_t to_reg(const struct rtc *r, int v)
{
	if (r->cmos[REG_B] & B_DM)
		return (uint8_t)v;
	return (uint8_t)(((v / 10) % 10) << 4 | (v % 10));
}

static int from_reg(const struct rtc *r, uint8_t v)
{
	if (r->cmos[REG_B] & B_DM)
		return v;
	return ((v >> 4) & 0xf) * 10 + (v & 0xf);
}

static uint8_t hour_to_reg(const struct rtc *r, int h)
{
	if (r->cmos[REG_B] & B_24H)
		return to_reg(r, h);
	int h12 = h % 12 ? h % 12 : 12;
	return (uint8_t)(to_reg(r, h12) | (h >= 12 ? 0x80 : 0));
}

static int hour_from_reg(const struct rtc *r, uint8_t v)
{
	if (r->cmos[REG_B] & B_24H)
		return from_reg(r, v);
	int h = from_reg(r, v & 0x7f) % 12;
	return (v & 0x80) ? h + 12 : h;
}

/* Fills registers 0,2,4,6-9 and the century of dst (a 128-byte CMOS
 * image) from guest time t, in r's current format. */
static void time_to_regs(const struct rtc *r, int64_t t, uint8_t *dst)
{
	struct tm tm;
	time_t tt = (time_t)t;
	if (!gmtime_r(&tt, &tm))
		memset(&tm, 0, sizeof(tm));
	dst[0] = to_reg(r, tm.tm_sec);
	dst[2] = to_reg(r, tm.tm_min);
	dst[4] = hour_to_reg(r, tm.tm_hour);
	dst[6] = to_reg(r, tm.tm_wday + 1);
	dst[7] = to_reg(r, tm.tm_mday);
	dst[8] = to_reg(r, tm.tm_mon + 1);
	int year = tm.tm_year + 1900;
	dst[9] = to_reg(r, year % 100);
	dst[CENTURY] = to_reg(r, year / 100);
}

/* Guest time described by the registers (as the guest wrote them). */
static int64_t regs_to_time(const struct rtc *r)
{
	struct tm tm = { 0 };
	tm.tm_sec = from_reg(r, r->cmos[0]) % 60;
	tm.tm_min = from_reg(r, r->cmos[2]) % 60;
	tm.tm_hour = hour_from_reg(r, r->cmos[4]) % 24;
	tm.tm_mday = from_reg(r, r->cmos[7]);
	tm.tm_mon = from_reg(r, r->cmos[8]) - 1;
	tm.tm_year = from_reg(r, r->cmos[CENTURY]) * 100 + from_reg(r, r->cmos[9]) - 1900;
	if (tm.tm_mday < 1 || tm.tm_mday > 31)
		tm.tm_mday = 1;
	if (tm.tm_mon < 0 || tm.tm_mon > 11)
		tm.tm_mon = 0;
	return (int64_t)timegm(&tm);
}

static int64_t guest_now(const struct rtc *r)
{
	int64_t s;
	long ns;
	host_time(&s, &ns);
	return s + r->offset_s;
}

static void set_offset(struct rtc *r, int64_t guest_t)
{
	int64_t s;
	long ns;
	host_time(&s, &ns);
	int64_t off = guest_t - s;
	if (off > MAX_OFFSET_S)
		off = MAX_OFFSET_S;
	if (off < -MAX_OFFSET_S)
		off = -MAX_OFFSET_S;
	r->offset_s = off;
}

static bool divider_running(const struct rtc *r) { return ((r->cmos[REG_A] >> 4) & 7) == 2; }

static uint64_t periodic_ns(const struct rtc *r)
{
	unsigned rate = r->cmos[REG_A] & 0x0f;
	if (!rate)
		return 0;
	if (rate < 3)
		rate += 7;
	return (1000000000ULL << (rate - 1)) / 32768;
}

static bool alarm_match(const struct rtc *r, const uint8_t *now)
{
	for (int i = 0; i < 6; i += 2) {
		uint8_t al = r->cmos[i + 1];
		if ((al & 0xc0) != 0xc0 && al != now[i])
			return false;
	}
	return true;
}

static void raise_flags(struct rtc *r, uint8_t flags)
{
	r->cmos[REG_C] |= flags;
	if ((r->cmos[REG_C] & r->cmos[REG_B] & (C_PF | C_AF | C_UF)) && !(r->cmos[REG_C] & C_IRQF)) {
		r->cmos[REG_C] |= C_IRQF;
		if (!r->irq_line) {
			r->irq_line = 1;
			vm_set_irq(r->d.vm, 8, 1);
		}
	}
}

static void schedule(struct rtc *r)
{
	if (!r->timer)
		return;
	uint64_t now = now_ns(), at = 0;
	uint8_t b = r->cmos[REG_B];
	if (r->paused || !divider_running(r)) {
		ev_timer_cancel(r->timer);
		r->next_pf_ns = 0;
		return;
	}
	uint64_t per = (b & B_PIE) ? periodic_ns(r) : 0;
	if (per) {
		if (!r->next_pf_ns || r->next_pf_ns <= now)
			r->next_pf_ns = (now / per + 1) * per;
		at = r->next_pf_ns;
	} else {
		r->next_pf_ns = 0;
	}
	if ((b & (B_UIE | B_AIE)) && !(b & B_SET)) {
		int64_t s;
		long ns;
		host_time(&s, &ns);
		uint64_t sec_at = now + (uint64_t)(1000000000L - ns);
		if (!at || sec_at < at)
			at = sec_at;
	}
	if (at)
		ev_timer_arm(r->timer, at);
	else
		ev_timer_cancel(r->timer);
}

static void timer_cb(void *opaque)
{
	struct rtc *r = opaque;
	pthread_mutex_lock(&r->lock);
	if (!r->paused) {
		uint64_t now = now_ns();
		uint8_t flags = 0;
		if (r->next_pf_ns && now >= r->next_pf_ns) {
			flags |= C_PF;
			r->next_pf_ns = 0;
		}
		int64_t s;
		long ns;
		host_time(&s, &ns);
		if (s != r->last_sec && !(r->cmos[REG_B] & B_SET)) {
			r->last_sec = s;
			flags |= C_UF;
			uint8_t cur[128];
			time_to_regs(r, s + r->offset_s, cur);
			if (alarm_match(r, cur))
				flags |= C_AF;
		}
		raise_flags(r, flags);
		schedule(r);
	}
	pthread_mutex_unlock(&r->lock);
}

static uint8_t data_read(struct rtc *r)
{
	uint8_t idx = r->index;
	uint8_t b = r->cmos[REG_B];
	switch (idx) {
	case 0: case 2: case 4: case 6: case 7: case 8: case 9: case CENTURY:
		if (!(b & B_SET)) {
			uint8_t cur[128];
			time_to_regs(r, guest_now(r), cur);
			return cur[idx];
		}
		return r->cmos[idx];
	case REG_A: {
		int64_t s;
		long ns;
		host_time(&s, &ns);
		bool uip = divider_running(r) && !(b & B_SET) && ns >= 1000000000L - 244000;
		return (uint8_t)((r->cmos[REG_A] & 0x7f) | (uip ? 0x80 : 0));
	}
	case REG_C: {
		uint8_t v = r->cmos[REG_C];
		r->cmos[REG_C] = 0;
		if (r->irq_line) {
			r->irq_line = 0;
			vm_set_irq(r->d.vm, 8, 0);
		}
		return v;
	}
	default:
		return r->cmos[idx];
	}
}

static void data_write(struct rtc *r, uint8_t v)
{
	uint8_t idx = r->index;
	switch (idx) {
	case 0: case 2: case 4: case 6: case 7: case 8: case 9: case CENTURY:
		if (!(r->cmos[REG_B] & B_SET)) {
			/* Direct write while running: the clock jumps now. */
			time_to_regs(r, guest_now(r), r->cmos);
			r->cmos[idx] = v;
			set_offset(r, regs_to_time(r));
		} else {
			r->cmos[idx] = v;
		}
		break;
	case REG_A:
		r->cmos[REG_A] = v & 0x7f;
		schedule(r);
		break;
	case REG_B: {
		uint8_t old = r->cmos[REG_B];
		if (v & B_SET) {
			v &= (uint8_t)~B_UIE;
			if (!(old & B_SET))      /* freeze what the guest will edit */
				time_to_regs(r, guest_now(r), r->cmos);
		}
		/* Keep the time in the registers' current format while
		 * switching BCD/binary or 12/24h. */
		int64_t t = (old & B_SET) ? regs_to_time(r) : guest_now(r);
		r->cmos[REG_B] = v;
		if ((old ^ v) & (B_DM | B_24H))
			time_to_regs(r, t, r->cmos);
		if ((old & B_SET) && !(v & B_SET))
			set_offset(r, t);
		raise_flags(r, 0);
		schedule(r);
		break;
	}
	case REG_C:
	case REG_D:
		break;          /* read-only */
	default:
		r->cmos[idx] = v;
		break;
	}
}

static void rtc_read(void *o, uint64_t off, void *data, unsigned len)
{
	struct rtc *r = o;
	memset(data, 0xff, len);
	pthread_mutex_lock(&r->lock);
	*(uint8_t *)data = off == 0 ? (uint8_t)(r->index | r->nmi_off << 7) : data_read(r);
	pthread_mutex_unlock(&r->lock);
}

static void rtc_write(void *o, uint64_t off, const void *data, unsigned len)
{
	struct rtc *r = o;
	uint8_t v = *(const uint8_t *)data;
	pthread_mutex_lock(&r->lock);
	if (off == 0) {
		r->index = v & 0x7f;
		r->nmi_off = v >> 7;
	} else {
		data_write(r, v);
	}
	pthread_mutex_unlock(&r->lock);
}

static const struct bus_ops rtc_ops = { rtc_read, rtc_write };

static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

/* The BIOS data area bytes: equipment and memory sizes, checksum. */
static void fill_cmos(struct rtc *r)
{
	struct vm *vm = r->d.vm;
	uint64_t low = 0, high = 0;
	if (vm->mem) {
		struct gmem_region reg[2];
		int n = gmem_regions(vm->mem, reg);
		for (int i = 0; i < n; i++) {
			if (reg[i].gpa < GMEM_HIGH_BASE)
				low += reg[i].size;
			else
				high += reg[i].size;
		}
	}
	uint8_t *c = r->cmos;
	c[0x14] = 0x02;                                 /* FPU, VGA */
	put16(c + 0x15, 640);                           /* base memory, KiB */
	uint64_t ext = low > (1 << 20) ? (low >> 10) - 1024 : 0;
	if (ext > 0xffff)
		ext = 0xffff;
	put16(c + 0x17, (uint32_t)ext);
	put16(c + 0x30, (uint32_t)ext);
	uint64_t above16 = low > (16 << 20) ? (low - (16 << 20)) >> 16 : 0;
	if (above16 > 0xffff)
		above16 = 0xffff;
	put16(c + 0x34, (uint32_t)above16);
	uint64_t hi64k = high >> 16;
	if (hi64k > 0xffffff)
		hi64k = 0xffffff;
	c[0x5b] = (uint8_t)hi64k;
	c[0x5c] = (uint8_t)(hi64k >> 8);
	c[0x5d] = (uint8_t)(hi64k >> 16);
	c[0x5f] = (uint8_t)(vm->ncpus > 0 ? vm->ncpus - 1 : 0);
	unsigned sum = 0;
	for (int i = 0x10; i <= 0x2d; i++)
		sum += c[i];
	c[0x2e] = (uint8_t)(sum >> 8);
	c[0x2f] = (uint8_t)sum;
}

static void reset_locked(struct rtc *r)
{
	memset(r->cmos, 0, sizeof(r->cmos));
	r->index = r->nmi_off = 0;
	r->cmos[REG_A] = 0x26;          /* 32.768 kHz divider, 1024 Hz rate */
	r->cmos[REG_B] = B_24H;         /* BCD, 24-hour */
	r->cmos[REG_D] = 0x80;          /* valid RAM and time */
	r->offset_s = 0;
	if (r->irq_line) {
		r->irq_line = 0;
		vm_set_irq(r->d.vm, 8, 0);
	}
	time_to_regs(r, guest_now(r), r->cmos);
	fill_cmos(r);
	schedule(r);
}

static void rtc_reset(struct dev *d)
{
	struct rtc *r = (struct rtc *)d;
	pthread_mutex_lock(&r->lock);
	reset_locked(r);
	pthread_mutex_unlock(&r->lock);
}

static void rtc_pause(struct dev *d)
{
	struct rtc *r = (struct rtc *)d;
	pthread_mutex_lock(&r->lock);
	r->paused = true;
	schedule(r);
	pthread_mutex_unlock(&r->lock);
}

static void rtc_resume(struct dev *d)
{
	struct rtc *r = (struct rtc *)d;
	pthread_mutex_lock(&r->lock);
	r->paused = false;
	schedule(r);
	pthread_mutex_unlock(&r->lock);
}

/* Record v1: index nmi_off irq_line (u8), cmos[128], offset_s (u64, two's
 * complement). While SET is clear the time registers in cmos[] are only the
 * last snapshot; the clock is host UTC + offset_s. */
static int rtc_save(struct dev *d, struct rec_writer *w)
{
	struct rtc *r = (struct rtc *)d;
	pthread_mutex_lock(&r->lock);
	rec_put_u8(w, r->index);
	rec_put_u8(w, r->nmi_off);
	rec_put_u8(w, r->irq_line);
	rec_put_bytes(w, r->cmos, sizeof(r->cmos));
	rec_put_u64(w, (uint64_t)r->offset_s);
	pthread_mutex_unlock(&r->lock);
	return w->err;
}

static int rtc_load(struct dev *d, struct rec_reader *rd, uint32_t version)
{
	struct rtc *r = (struct rtc *)d;
	uint8_t idx = rec_get_u8(rd), nmi = rec_get_u8(rd), line = rec_get_u8(rd);
	uint8_t cmos[128];
	rec_get_bytes(rd, cmos, sizeof(cmos));
	int64_t off = (int64_t)rec_get_u64(rd);
	if (rd->err || idx > 0x7f || nmi > 1 || line > 1 || (cmos[REG_A] & 0x80) ||
	    (cmos[REG_C] & 0x0f) || cmos[REG_D] != 0x80 || off > MAX_OFFSET_S ||
	    off < -MAX_OFFSET_S || line != !!(cmos[REG_C] & C_IRQF))
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	r->index = idx;
	r->nmi_off = nmi;
	memcpy(r->cmos, cmos, sizeof(cmos));
	r->offset_s = off;
	if (line != r->irq_line) {
		r->irq_line = line;
		vm_set_irq(r->d.vm, 8, line);
	}
	r->next_pf_ns = 0;
	schedule(r);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

static void rtc_free(struct dev *d)
{
	struct rtc *r = (struct rtc *)d;
	ev_timer_free(r->timer);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static const struct dev_type rtc_type = {
	.name = "rtc-mc146818", .version = 1, .min_version = 1,
	.reset = rtc_reset, .save = rtc_save, .load = rtc_load,
	.pause = rtc_pause, .resume = rtc_resume, .free = rtc_free,
};

int rtc_create(struct vm *vm)
{
	struct rtc *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	r->d.vm = vm;
	int rc = ev_timer_new(vm->ev, timer_cb, r, &r->timer);
	if (!rc)
		rc = bus_register(vm->pio, 0x70, 2, &rtc_ops, r);
	if (rc) {
		rtc_free(&r->d);
		return rc;
	}
	vm_add_dev(vm, &r->d, &rtc_type, "rtc");
	rtc_reset(&r->d);
	return 0;
}
