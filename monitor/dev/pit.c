/* The 8254 programmable interval timer at 0x40-0x43 (1.193182 MHz, three
 * channels) and port 0x61 (channel 2 gate, speaker enable, OUT2 in bit 5,
 * refresh toggle in bit 4). Counters are computed lazily from now_ns();
 * channel 0 drives IRQ0 with one evloop timer armed only for the next
 * output edge (modes 2/3: every period, at least TIMER_MIN_NS apart;
 * modes 0/1/4/5: once at terminal count). Modes 1 and 5 count from the
 * count write like 0 and 4 and restart on a gate edge. */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "monitor/bus.h"
#include "monitor/dev.h"
#include "monitor/dev/legacy.h"
#include "monitor/evloop.h"
#include "monitor/vm.h"

#define PIT_HZ       1193182ULL
#define NS_PER_S     1000000000ULL
#define TIMER_MIN_NS 100000ULL          /* IRQ0 at most every 100 us */

struct pit_chan {
	uint32_t count;          /* loaded count in ticks: 1..65536 (10000 BCD) */
	uint8_t mode, rw, bcd;
	uint8_t armed;           /* a count was written: counting */
	uint8_t gate;
	uint8_t frozen;          /* gate low: counting stopped at frozen_ticks */
	uint8_t latched;         /* count latch: bytes left to read (0-2) */
	uint8_t status_latched, status;
	uint8_t read_hi, write_hi, write_lsb, null_count;
	uint8_t done;            /* one-shot IRQ delivered */
	uint16_t latch_val;
	uint64_t frozen_ticks;
	uint64_t irq_seq;        /* last period whose IRQ0 was raised */
	int64_t load_ns;         /* time of the count write (may predate boot) */
};

struct pit {
	struct dev d;
	pthread_mutex_t lock;
	struct ev_timer *timer;
	bool paused;
	uint64_t pause_ns;
	struct pit_chan ch[3];
	uint8_t port61;          /* bits 0-3 as written */
};

static uint64_t pit_now(const struct pit *p) { return p->paused ? p->pause_ns : now_ns(); }

static uint64_t ticks_at(const struct pit_chan *c, uint64_t now)
{
	if (c->frozen)
		return c->frozen_ticks;
	int64_t d = (int64_t)now - c->load_ns;
	if (d <= 0)
		return 0;
	return (uint64_t)((unsigned __int128)(uint64_t)d * PIT_HZ / NS_PER_S);
}

/* ns after load_ns at which tick t begins (rounded up). */
static uint64_t tick_ns(uint64_t t)
{
	return (uint64_t)(((unsigned __int128)t * NS_PER_S + PIT_HZ - 1) / PIT_HZ);
}

static uint32_t modulus(const struct pit_chan *c) { return c->bcd ? 10000 : 65536; }

static uint16_t to_bcd(uint32_t v)
{
	return (uint16_t)((v % 10) | ((v / 10 % 10) << 4) | ((v / 100 % 10) << 8) |
			  ((v / 1000 % 10) << 12));
}

static uint32_t from_bcd(uint16_t v)
{
	uint32_t r = 0, mul = 1;
	for (int i = 0; i < 4; i++, mul *= 10) {
		uint32_t dgt = (v >> (4 * i)) & 0xf;
		r += (dgt > 9 ? 9 : dgt) * mul;
	}
	return r;
}

static uint16_t counter_value(const struct pit_chan *c, uint64_t now)
{
	if (!c->armed)
		return 0;
	assert(c->count >= 1 && c->count <= modulus(c));
	uint64_t t = ticks_at(c, now), n = c->count, m = modulus(c);
	uint64_t v;
	switch (c->mode) {
	case 2:
		v = n - t % n;
		break;
	case 3:
		v = (n - (2 * t) % n) & ~1ULL;
		break;
	default:
		v = (n + m - t % m) % m;
		break;
	}
	v %= m;
	return c->bcd ? to_bcd((uint32_t)v) : (uint16_t)v;
}

static int out_level(const struct pit_chan *c, uint64_t now)
{
	if (!c->armed)
		return c->mode != 0;
	uint64_t t = ticks_at(c, now), n = c->count;
	switch (c->mode) {
	case 0:
	case 1:
		return t >= n;
	case 2:
		return c->frozen || n < 2 || t % n != n - 1;
	case 3:
		return c->frozen || t % n < (n + 1) / 2;
	default:
		return t != n;
	}
}

static void pulse_irq0(struct pit *p)
{
	vm_set_irq(p->d.vm, 0, 1);
	vm_set_irq(p->d.vm, 0, 0);
}

/* Arms the timer for channel 0's next IRQ0 edge, or cancels it. */
static void schedule(struct pit *p)
{
	struct pit_chan *c = &p->ch[0];
	if (!p->timer)
		return;
	if (p->paused || !c->armed || c->frozen) {
		ev_timer_cancel(p->timer);
		return;
	}
	uint64_t now = pit_now(p), t = ticks_at(c, now), n = c->count;
	int64_t at;
	if (c->mode == 2 || c->mode == 3) {
		uint64_t k = t / n + 1;
		if (k <= c->irq_seq)
			k = c->irq_seq + 1;
		at = c->load_ns + (int64_t)tick_ns(k * n);
		if (at < (int64_t)(now + TIMER_MIN_NS))
			at = (int64_t)(now + TIMER_MIN_NS);
	} else {
		if (c->done) {
			ev_timer_cancel(p->timer);
			return;
		}
		at = c->load_ns + (int64_t)tick_ns(n + (c->mode >= 4));
	}
	ev_timer_arm(p->timer, at > 0 ? (uint64_t)at : 1);
}

static void timer_cb(void *opaque)
{
	struct pit *p = opaque;
	pthread_mutex_lock(&p->lock);
	struct pit_chan *c = &p->ch[0];
	if (!p->paused && c->armed && !c->frozen) {
		uint64_t t = ticks_at(c, pit_now(p)), n = c->count;
		if (c->mode == 2 || c->mode == 3) {
			if (t / n > c->irq_seq) {
				c->irq_seq = t / n;
				pulse_irq0(p);
			}
		} else if (!c->done && t >= n + (c->mode >= 4)) {
			c->done = 1;
			pulse_irq0(p);
		}
		schedule(p);
	}
	pthread_mutex_unlock(&p->lock);
}

static void load_count(struct pit *p, unsigned ch, uint16_t raw)
{
	struct pit_chan *c = &p->ch[ch];
	uint32_t n = c->bcd ? from_bcd(raw) : raw;
	c->count = n ? n : modulus(c);
	c->armed = 1;
	c->null_count = 0;
	c->done = 0;
	c->irq_seq = 0;
	c->load_ns = (int64_t)pit_now(p);
	c->frozen = !c->gate && c->mode != 1 && c->mode != 5;
	c->frozen_ticks = 0;
	if (ch == 0)
		schedule(p);
}

static void set_gate(struct pit *p, unsigned ch, uint8_t gate)
{
	struct pit_chan *c = &p->ch[ch];
	uint64_t now = pit_now(p);
	if (gate == c->gate)
		return;
	if (c->armed) {
		if (!gate) {
			if (c->mode != 1 && c->mode != 5) {
				c->frozen_ticks = ticks_at(c, now);
				c->frozen = 1;
			}
		} else if (c->mode == 0 || c->mode == 4) {
			if (c->frozen)       /* resume where it stopped */
				c->load_ns = (int64_t)now - (int64_t)tick_ns(c->frozen_ticks);
			c->frozen = 0;
		} else {                 /* rising edge retriggers */
			c->load_ns = (int64_t)now;
			c->frozen = 0;
			c->done = 0;
			c->irq_seq = 0;
		}
	}
	c->gate = gate;
	if (ch == 0)
		schedule(p);
}

static void latch_count(struct pit_chan *c, uint64_t now)
{
	if (c->latched)
		return;
	c->latch_val = counter_value(c, now);
	c->latched = c->rw == 3 ? 2 : 1;
}

static void control(struct pit *p, uint8_t v)
{
	uint64_t now = pit_now(p);
	unsigned sc = v >> 6;
	if (sc == 3) {                  /* read-back */
		for (unsigned i = 0; i < 3; i++) {
			if (!(v & (2u << i)))
				continue;
			struct pit_chan *c = &p->ch[i];
			if (!(v & 0x20))
				latch_count(c, now);
			if (!(v & 0x10) && !c->status_latched) {
				c->status = (uint8_t)(out_level(c, now) << 7 | c->null_count << 6 |
						      c->rw << 4 | c->mode << 1 | c->bcd);
				c->status_latched = 1;
			}
		}
		return;
	}
	struct pit_chan *c = &p->ch[sc];
	unsigned rw = (v >> 4) & 3;
	if (!rw) {
		latch_count(c, now);
		return;
	}
	unsigned mode = (v >> 1) & 7;
	c->rw = (uint8_t)rw;
	c->mode = (uint8_t)(mode > 5 ? mode - 4 : mode);
	c->bcd = v & 1;
	c->armed = 0;
	c->frozen = 0;
	c->null_count = 1;
	c->latched = c->status_latched = 0;
	c->read_hi = c->write_hi = 0;
	if (sc == 0)
		schedule(p);
}

static uint8_t data_read(struct pit *p, unsigned ch)
{
	struct pit_chan *c = &p->ch[ch];
	if (c->status_latched) {
		c->status_latched = 0;
		return c->status;
	}
	uint16_t v;
	if (c->latched) {
		v = c->latch_val;
		c->latched--;
	} else {
		v = counter_value(c, pit_now(p));
	}
	switch (c->rw) {
	case 1:
		c->latched = 0;
		return (uint8_t)v;
	case 2:
		c->latched = 0;
		return (uint8_t)(v >> 8);
	default:
		c->read_hi ^= 1;
		return c->read_hi ? (uint8_t)v : (uint8_t)(v >> 8);
	}
}

static void data_write(struct pit *p, unsigned ch, uint8_t v)
{
	struct pit_chan *c = &p->ch[ch];
	switch (c->rw) {
	case 1:
		load_count(p, ch, v);
		break;
	case 2:
		load_count(p, ch, (uint16_t)(v << 8));
		break;
	case 3:
		if (!c->write_hi) {
			c->write_lsb = v;
			c->write_hi = 1;
		} else {
			c->write_hi = 0;
			load_count(p, ch, (uint16_t)(c->write_lsb | v << 8));
		}
		break;
	default:        /* never programmed */
		break;
	}
}

static void pit_read(void *o, uint64_t off, void *data, unsigned len)
{
	struct pit *p = o;
	uint8_t *d = data;
	memset(d, 0xff, len);
	pthread_mutex_lock(&p->lock);
	if (off < 3)
		d[0] = data_read(p, (unsigned)off);
	pthread_mutex_unlock(&p->lock);
}

static void pit_write(void *o, uint64_t off, const void *data, unsigned len)
{
	struct pit *p = o;
	uint8_t v = *(const uint8_t *)data;
	pthread_mutex_lock(&p->lock);
	if (off < 3)
		data_write(p, (unsigned)off, v);
	else
		control(p, v);
	pthread_mutex_unlock(&p->lock);
}

static void p61_read(void *o, uint64_t off, void *data, unsigned len)
{
	struct pit *p = o;
	memset(data, 0xff, len);
	pthread_mutex_lock(&p->lock);
	uint64_t now = pit_now(p);
	/* Bit 4 toggles every refresh cycle (15.085 us). */
	uint8_t v = (uint8_t)(p->port61 | ((now / 15085) & 1) << 4 |
			      out_level(&p->ch[2], now) << 5);
	*(uint8_t *)data = v;
	pthread_mutex_unlock(&p->lock);
}

static void p61_write(void *o, uint64_t off, const void *data, unsigned len)
{
	struct pit *p = o;
	uint8_t v = *(const uint8_t *)data;
	pthread_mutex_lock(&p->lock);
	p->port61 = v & 0x0f;
	set_gate(p, 2, v & 1);
	pthread_mutex_unlock(&p->lock);
}

static const struct bus_ops pit_ops = { pit_read, pit_write };
static const struct bus_ops p61_ops = { p61_read, p61_write };

static void reset_locked(struct pit *p)
{
	memset(p->ch, 0, sizeof(p->ch));
	for (int i = 0; i < 3; i++) {
		p->ch[i].gate = i != 2;
		p->ch[i].rw = 3;
		p->ch[i].count = 65536;
	}
	p->port61 = 0;
	schedule(p);
}

static void pit_reset(struct dev *d)
{
	struct pit *p = (struct pit *)d;
	pthread_mutex_lock(&p->lock);
	reset_locked(p);
	pthread_mutex_unlock(&p->lock);
}

static void pit_pause(struct dev *d)
{
	struct pit *p = (struct pit *)d;
	pthread_mutex_lock(&p->lock);
	if (!p->paused) {
		p->pause_ns = now_ns();
		p->paused = true;
		schedule(p);
	}
	pthread_mutex_unlock(&p->lock);
}

static void pit_resume(struct dev *d)
{
	struct pit *p = (struct pit *)d;
	pthread_mutex_lock(&p->lock);
	if (p->paused) {
		/* The guest does not see the pause. */
		int64_t delta = (int64_t)(now_ns() - p->pause_ns);
		for (int i = 0; i < 3; i++)
			p->ch[i].load_ns += delta;
		p->paused = false;
		schedule(p);
	}
	pthread_mutex_unlock(&p->lock);
}

/* Record v1: port61 u8; per channel: count u32, mode rw bcd armed gate
 * frozen latched status_latched status read_hi write_hi write_lsb
 * null_count done (u8 each), latch_val u16, frozen_ticks u64, irq_seq u64,
 * elapsed ticks since the count write u64. */
static int pit_save(struct dev *d, struct rec_writer *w)
{
	struct pit *p = (struct pit *)d;
	pthread_mutex_lock(&p->lock);
	uint64_t now = pit_now(p);
	rec_put_u8(w, p->port61);
	for (int i = 0; i < 3; i++) {
		const struct pit_chan *c = &p->ch[i];
		rec_put_u32(w, c->count);
		const uint8_t b[] = { c->mode, c->rw, c->bcd, c->armed, c->gate, c->frozen,
				      c->latched, c->status_latched, c->status, c->read_hi,
				      c->write_hi, c->write_lsb, c->null_count, c->done };
		rec_put_bytes(w, b, sizeof(b));
		rec_put_u16(w, c->latch_val);
		rec_put_u64(w, c->frozen_ticks);
		rec_put_u64(w, c->irq_seq);
		rec_put_u64(w, c->frozen ? 0 : ticks_at(c, now));
	}
	pthread_mutex_unlock(&p->lock);
	return w->err;
}

static int pit_load(struct dev *d, struct rec_reader *r, uint32_t version)
{
	struct pit *p = (struct pit *)d;
	struct pit_chan ch[3];
	uint64_t elapsed[3];
	uint8_t p61 = rec_get_u8(r);
	if (p61 & ~0x0f)
		rec_fail(r);
	memset(ch, 0, sizeof(ch));
	for (int i = 0; i < 3; i++) {
		struct pit_chan *c = &ch[i];
		c->count = rec_get_u32(r);
		uint8_t b[14];
		rec_get_bytes(r, b, sizeof(b));
		c->mode = b[0]; c->rw = b[1]; c->bcd = b[2]; c->armed = b[3]; c->gate = b[4];
		c->frozen = b[5]; c->latched = b[6]; c->status_latched = b[7]; c->status = b[8];
		c->read_hi = b[9]; c->write_hi = b[10]; c->write_lsb = b[11];
		c->null_count = b[12]; c->done = b[13];
		c->latch_val = rec_get_u16(r);
		c->frozen_ticks = rec_get_u64(r);
		c->irq_seq = rec_get_u64(r);
		elapsed[i] = rec_get_u64(r);
		if (r->err)
			return -EINVAL;
		if (c->mode > 5 || c->rw > 3 || c->latched > 2 || (c->rw != 3 && c->latched > 1) ||
		    c->count < 1 || c->count > modulus(c) ||
		    c->bcd > 1 || c->armed > 1 || c->gate > 1 || c->frozen > 1 ||
		    c->status_latched > 1 || c->read_hi > 1 || c->write_hi > 1 ||
		    c->null_count > 1 || c->done > 1 || (i != 2 && !c->gate) ||
		    elapsed[i] > (1ULL << 50) || c->frozen_ticks > (1ULL << 50))
			return -EINVAL;
	}
	pthread_mutex_lock(&p->lock);
	uint64_t now = pit_now(p);
	for (int i = 0; i < 3; i++) {
		ch[i].load_ns = (int64_t)now - (int64_t)tick_ns(elapsed[i]);
		p->ch[i] = ch[i];
	}
	p->port61 = p61;
	schedule(p);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static void pit_free(struct dev *d)
{
	struct pit *p = (struct pit *)d;
	ev_timer_free(p->timer);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static const struct dev_type pit_type = {
	.name = "pit8254", .version = 1, .min_version = 1,
	.reset = pit_reset, .save = pit_save, .load = pit_load,
	.pause = pit_pause, .resume = pit_resume, .free = pit_free,
};

int pit_create(struct vm *vm)
{
	struct pit *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	p->d.vm = vm;
	int rc = ev_timer_new(vm->ev, timer_cb, p, &p->timer);
	if (rc)
		goto err;
	rc = bus_register(vm->pio, 0x40, 4, &pit_ops, p);
	if (rc)
		goto err;
	rc = bus_register(vm->pio, 0x61, 1, &p61_ops, p);
	if (rc) {
		bus_unregister(vm->pio, 0x40);
		goto err;
	}
	vm_add_dev(vm, &p->d, &pit_type, "pit");
	pit_reset(&p->d);
	return 0;
err:
	pit_free(&p->d);
	return rc;
}
