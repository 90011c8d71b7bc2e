/* 8250/16550A UART: RBR/THR, IER, IIR/FCR with the 16-byte receive FIFO,
 * LCR with the divisor latch, MCR with loopback, LSR, MSR, SCR. Transmit
 * is instantaneous (bytes go to the console as written, THR is empty again
 * at once, raising a fresh THRE interrupt edge); receive pulls bytes from
 * the console as the guest reads them. The interrupt line follows IIR. */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "monitor/bus.h"
#include "monitor/dev.h"
#include "monitor/dev/legacy.h"
#include "monitor/vm.h"

#define FIFO_SIZE 16

#define IER_RDI  0x01
#define IER_THRI 0x02
#define IER_RLSI 0x04
#define IER_MSI  0x08
#define LSR_DR   0x01
#define LSR_OE   0x02
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MCR_LOOP 0x10
#define LCR_DLAB 0x80

struct uart {
	struct dev d;
	pthread_mutex_t lock;
	struct console *con;
	unsigned irq;
	int line;               /* level last driven on irq */
	/* guest-visible state (the record) */
	uint8_t dll, dlm, ier, lcr, mcr, scr, fcr;
	uint8_t fifo_on, thri, overrun, msr_delta;
	uint8_t rx[FIFO_SIZE], rx_head, rx_count;
};

static uint8_t rx_cap(const struct uart *u) { return u->fifo_on ? FIFO_SIZE : 1; }

static uint8_t rx_trigger(const struct uart *u)
{
	static const uint8_t lv[4] = { 1, 4, 8, 14 };
	return lv[u->fcr >> 6];
}

/* Modem status lines: looped back from MCR, else CTS, DSR and DCD up. */
static uint8_t msr_lines(const struct uart *u)
{
	if (!(u->mcr & MCR_LOOP))
		return 0xb0;
	uint8_t m = u->mcr;
	return (uint8_t)(((m & 2) << 3) | ((m & 1) << 5) | ((m & 4) << 4) | ((m & 8) << 4));
}

static uint8_t iir(const struct uart *u)
{
	uint8_t id = 0x01;
	if ((u->ier & IER_RLSI) && u->overrun)
		id = 0x06;
	else if ((u->ier & IER_RDI) && u->rx_count)
		id = (u->fifo_on && u->rx_count < rx_trigger(u)) ? 0x0c : 0x04;
	else if ((u->ier & IER_THRI) && u->thri)
		id = 0x02;
	else if ((u->ier & IER_MSI) && u->msr_delta)
		id = 0x00;
	return (uint8_t)(id | (u->fifo_on ? 0xc0 : 0));
}

static void update_irq(struct uart *u)
{
	int level = !(iir(u) & 1);
	if (level != u->line) {
		u->line = level;
		vm_set_irq(u->d.vm, u->irq, level);
	}
}

static void rx_push(struct uart *u, uint8_t b)
{
	assert(u->rx_count <= rx_cap(u) && u->rx_head < FIFO_SIZE);
	if (u->rx_count >= rx_cap(u)) {
		u->overrun = 1;
		return;
	}
	u->rx[(u->rx_head + u->rx_count) % FIFO_SIZE] = b;
	u->rx_count++;
}

/* Tops the receive FIFO up from the console (not in loopback). */
static void fill(struct uart *u)
{
	if (!u->con || (u->mcr & MCR_LOOP) || u->rx_count >= rx_cap(u))
		return;
	uint8_t buf[FIFO_SIZE];
	size_t n = console_read(u->con, buf, (size_t)(rx_cap(u) - u->rx_count));
	for (size_t i = 0; i < n; i++)
		rx_push(u, buf[i]);
}

static void notify(void *opaque)
{
	struct uart *u = opaque;
	pthread_mutex_lock(&u->lock);
	fill(u);
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

static uint8_t reg_read(struct uart *u, unsigned reg)
{
	switch (reg) {
	case 0: {
		if (u->lcr & LCR_DLAB)
			return u->dll;
		uint8_t b = 0;
		if (u->rx_count) {
			b = u->rx[u->rx_head];
			u->rx_head = (uint8_t)((u->rx_head + 1) % FIFO_SIZE);
			u->rx_count--;
		}
		fill(u);
		return b;
	}
	case 1:
		return (u->lcr & LCR_DLAB) ? u->dlm : u->ier;
	case 2: {
		uint8_t v = iir(u);
		if ((v & 0x0f) == 0x02)
			u->thri = 0;    /* reading IIR acknowledges THRE */
		return v;
	}
	case 3:
		return u->lcr;
	case 4:
		return u->mcr;
	case 5: {
		fill(u);
		uint8_t v = LSR_THRE | LSR_TEMT | (u->rx_count ? LSR_DR : 0) |
			    (u->overrun ? LSR_OE : 0);
		u->overrun = 0;
		return v;
	}
	case 6: {
		uint8_t v = msr_lines(u) | u->msr_delta;
		u->msr_delta = 0;
		return v;
	}
	default:
		return u->scr;
	}
}

static void set_mcr(struct uart *u, uint8_t v)
{
	uint8_t before = msr_lines(u);
	u->mcr = v & 0x1f;
	uint8_t after = msr_lines(u), ch = before ^ after;
	/* Delta CTS, delta DSR, trailing edge RI, delta DCD. */
	u->msr_delta |= (uint8_t)(((ch >> 4) & 0x0b) | ((before & ~after & 0x40) ? 0x04 : 0));
}

static void reg_write(struct uart *u, unsigned reg, uint8_t v)
{
	switch (reg) {
	case 0:
		if (u->lcr & LCR_DLAB) {
			u->dll = v;
			break;
		}
		u->thri = 0;
		update_irq(u);
		if (u->mcr & MCR_LOOP)
			rx_push(u, v);
		else
			console_write(u->con, &v, 1);
		u->thri = 1;
		break;
	case 1:
		if (u->lcr & LCR_DLAB) {
			u->dlm = v;
			break;
		}
		/* Enabling THRE interrupts with THR empty raises one at once. */
		if ((v & IER_THRI) && !(u->ier & IER_THRI))
			u->thri = 1;
		u->ier = v & 0x0f;
		break;
	case 2:
		if ((v & 1) != u->fifo_on || (v & 2)) {
			u->rx_count = u->rx_head = 0;
			u->overrun = 0;
		}
		u->fifo_on = v & 1;
		u->fcr = v & 0xc9;
		fill(u);
		break;
	case 3:
		u->lcr = v;
		break;
	case 4:
		set_mcr(u, v);
		fill(u);
		break;
	case 7:
		u->scr = v;
		break;
	default:        /* LSR, MSR: factory test writes, ignored */
		break;
	}
	update_irq(u);
}

static void uart_read(void *o, uint64_t off, void *data, unsigned len)
{
	struct uart *u = o;
	uint8_t *d = data;
	pthread_mutex_lock(&u->lock);
	for (unsigned i = 0; i < len; i++)
		d[i] = off + i < 8 ? reg_read(u, (unsigned)(off + i)) : 0xff;
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

static void uart_write(void *o, uint64_t off, const void *data, unsigned len)
{
	struct uart *u = o;
	const uint8_t *d = data;
	pthread_mutex_lock(&u->lock);
	for (unsigned i = 0; i < len; i++)
		if (off + i < 8)
			reg_write(u, (unsigned)(off + i), d[i]);
	pthread_mutex_unlock(&u->lock);
}

static const struct bus_ops uart_ops = { uart_read, uart_write };

static void reset_locked(struct uart *u)
{
	u->dll = 0x0c;          /* 9600 baud */
	u->dlm = u->ier = u->lcr = u->mcr = u->scr = u->fcr = 0;
	u->fifo_on = u->overrun = u->msr_delta = 0;
	u->thri = 0;
	u->rx_head = u->rx_count = 0;
	memset(u->rx, 0, sizeof(u->rx));
	/* Input stays in the console until the guest looks at the UART. */
	update_irq(u);
}

static void uart_reset(struct dev *d)
{
	struct uart *u = (struct uart *)d;
	pthread_mutex_lock(&u->lock);
	reset_locked(u);
	pthread_mutex_unlock(&u->lock);
}

/* Record v1: dll dlm ier lcr mcr scr fcr fifo_on thri overrun msr_delta
 * rx_count (u8 each), then rx_count bytes of receive FIFO, oldest first. */
static int uart_save(struct dev *d, struct rec_writer *w)
{
	struct uart *u = (struct uart *)d;
	pthread_mutex_lock(&u->lock);
	const uint8_t hdr[] = { u->dll, u->dlm, u->ier, u->lcr, u->mcr, u->scr, u->fcr,
				u->fifo_on, u->thri, u->overrun, u->msr_delta, u->rx_count };
	rec_put_bytes(w, hdr, sizeof(hdr));
	for (unsigned i = 0; i < u->rx_count; i++)
		rec_put_u8(w, u->rx[(u->rx_head + i) % FIFO_SIZE]);
	pthread_mutex_unlock(&u->lock);
	return w->err;
}

static int uart_load(struct dev *d, struct rec_reader *r, uint32_t version)
{
	struct uart *u = (struct uart *)d;
	uint8_t h[12], rx[FIFO_SIZE];
	rec_get_bytes(r, h, sizeof(h));
	if (r->err || (h[2] & ~0x0f) || (h[4] & ~0x1f) || (h[6] & ~0xc9) || h[7] > 1 ||
	    (h[6] & 1) != h[7] || h[8] > 1 || h[9] > 1 || (h[10] & ~0x0f) ||
	    h[11] > (h[7] ? FIFO_SIZE : 1))
		return -EINVAL;
	rec_get_bytes(r, rx, h[11]);
	if (r->err)
		return -EINVAL;
	pthread_mutex_lock(&u->lock);
	u->dll = h[0]; u->dlm = h[1]; u->ier = h[2]; u->lcr = h[3]; u->mcr = h[4];
	u->scr = h[5]; u->fcr = h[6]; u->fifo_on = h[7]; u->thri = h[8];
	u->overrun = h[9]; u->msr_delta = h[10];
	u->rx_head = 0;
	u->rx_count = h[11];
	memcpy(u->rx, rx, h[11]);
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return 0;
}

static void uart_free(struct dev *d)
{
	struct uart *u = (struct uart *)d;
	console_set_notify(u->con, NULL, NULL);
	if (u->d.vm && u->d.vm->con == u->con)
		u->d.vm->con = NULL;
	console_free(u->con);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

static const struct dev_type uart_type = {
	.name = "uart16550a", .version = 1, .min_version = 1,
	.reset = uart_reset, .save = uart_save, .load = uart_load, .free = uart_free,
};

int uart_create(struct vm *vm, uint16_t base, unsigned irq, struct console *con,
		const char *id)
{
	struct uart *u = calloc(1, sizeof(*u));
	if (!u) {
		console_free(con);
		return -ENOMEM;
	}
	pthread_mutex_init(&u->lock, NULL);
	u->con = con;
	u->irq = irq;
	u->d.vm = vm;
	int rc = bus_register(vm->pio, base, 8, &uart_ops, u);
	if (rc) {
		u->d.vm = NULL;
		uart_free(&u->d);
		return rc;
	}
	vm_add_dev(vm, &u->d, &uart_type, id);
	uart_reset(&u->d);
	console_set_notify(con, notify, u);
	return 0;
}
