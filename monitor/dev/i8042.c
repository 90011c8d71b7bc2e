/* The i8042 keyboard controller with no keyboard or mouse attached, enough
 * for Linux's probe: status and command bytes, self tests, the controller
 * command byte, the AUX loopback, output port (reset line, A20), and the
 * pulse-output command 0xfe that resets the machine. Writes meant for a
 * device answer 0xfe with the timeout bit set, as a port with nothing
 * plugged in does (Linux's PS/2 layer takes the NAK and gives up at once
 * instead of waiting out its command timeout). Port 0x92 (system control port A) is here too: bit 0
 * is the fast reset, bit 1 A20 (always on in this machine). */
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

#define STS_OBF     0x01
#define STS_SYS     0x04
#define STS_CMD     0x08
#define STS_UNLOCK  0x10
#define STS_AUX     0x20
#define STS_TIMEOUT 0x40

#define CCB_KBD_INT 0x01
#define CCB_AUX_INT 0x02
#define CCB_SYS     0x04
#define CCB_KBD_DIS 0x10
#define CCB_AUX_DIS 0x20

#define OUTQ 8

struct i8042 {
	struct dev d;
	pthread_mutex_t lock;
	int irq1, irq12;        /* levels last driven */
	/* guest-visible state (the record) */
	uint8_t status, ccb, pending_cmd, outport, port92;
	uint8_t q[OUTQ], qaux[OUTQ], qhead, qcount;
};

static void update_irq(struct i8042 *k)
{
	int l1 = 0, l12 = 0;
	if (k->qcount) {
		bool aux = k->qaux[k->qhead] & 1;
		l1 = !aux && (k->ccb & CCB_KBD_INT);
		l12 = aux && (k->ccb & CCB_AUX_INT);
	}
	if (l1 != k->irq1) {
		k->irq1 = l1;
		vm_set_irq(k->d.vm, 1, l1);
	}
	if (l12 != k->irq12) {
		k->irq12 = l12;
		vm_set_irq(k->d.vm, 12, l12);
	}
}

static void sync_status(struct i8042 *k)
{
	k->status &= (uint8_t)~(STS_OBF | STS_AUX | STS_TIMEOUT);
	if (k->qcount) {
		k->status |= STS_OBF;
		if (k->qaux[k->qhead] & 1)
			k->status |= STS_AUX;
		if (k->qaux[k->qhead] & 2)
			k->status |= STS_TIMEOUT;
	}
}

/* Queues a byte for the data port; flags bit 0 AUX, bit 1 timeout. */
static void push(struct i8042 *k, uint8_t b, uint8_t flags)
{
	assert(k->qcount <= OUTQ && k->qhead < OUTQ && flags <= 3);
	if (k->qcount == OUTQ)
		return;
	unsigned i = (k->qhead + k->qcount) % OUTQ;
	k->q[i] = b;
	k->qaux[i] = flags;
	k->qcount++;
	sync_status(k);
}

static void reset_machine(struct i8042 *k)
{
	vm_request_stop(k->d.vm, VM_STOP_RESET, 0, "guest reset through the keyboard controller");
}

static void command(struct i8042 *k, uint8_t cmd)
{
	k->pending_cmd = 0;
	switch (cmd) {
	case 0x20:
		push(k, k->ccb, 0);
		break;
	case 0x60: case 0xd1: case 0xd2: case 0xd3: case 0xd4:
		k->pending_cmd = cmd;   /* the next data byte is its argument */
		break;
	case 0xa7:
		k->ccb |= CCB_AUX_DIS;
		break;
	case 0xa8:
		k->ccb &= (uint8_t)~CCB_AUX_DIS;
		break;
	case 0xa9: case 0xab:           /* interface tests: pass */
		push(k, 0x00, 0);
		break;
	case 0xaa:                      /* self test */
		k->status |= STS_SYS;
		k->ccb |= CCB_SYS;
		push(k, 0x55, 0);
		break;
	case 0xad:
		k->ccb |= CCB_KBD_DIS;
		break;
	case 0xae:
		k->ccb &= (uint8_t)~CCB_KBD_DIS;
		break;
	case 0xc0:                      /* input port: keyboard not inhibited */
		push(k, 0x80, 0);
		break;
	case 0xd0:
		push(k, k->outport, 0);
		break;
	default:
		/* 0xf0-0xff pulse output lines for ~6 us; bit 0 low pulses reset. */
		if (cmd >= 0xf0 && !(cmd & 1))
			reset_machine(k);
		break;
	}
}

static void data_write(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->pending_cmd;
	k->pending_cmd = 0;
	switch (cmd) {
	case 0x60:
		k->ccb = v;
		if (v & CCB_SYS)
			k->status |= STS_SYS;
		break;
	case 0xd1:
		k->outport = v | 0x02;  /* A20 stays on */
		if (!(v & 1))
			reset_machine(k);
		break;
	case 0xd2:
		push(k, v, 0);
		break;
	case 0xd3:
		push(k, v, 1);
		break;
	case 0xd4:                      /* to the mouse: none there */
		push(k, 0xfe, 3);
		break;
	default:                        /* to the keyboard: none there */
		push(k, 0xfe, 2);
		break;
	}
}

static void port_read(struct i8042 *k, bool cmd_port, uint8_t *d, unsigned len)
{
	memset(d, 0xff, len);
	pthread_mutex_lock(&k->lock);
	if (!cmd_port) {
		/* Data port: the last byte stays readable once the queue is empty. */
		d[0] = k->q[k->qhead];
		if (k->qcount) {
			k->qcount--;
			if (k->qcount)
				k->qhead = (uint8_t)((k->qhead + 1) % OUTQ);
		}
		sync_status(k);
	} else {
		d[0] = k->status;
	}
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
}

static void port_write(struct i8042 *k, bool cmd_port, uint8_t v)
{
	pthread_mutex_lock(&k->lock);
	if (!cmd_port) {
		k->status &= (uint8_t)~STS_CMD;
		data_write(k, v);
	} else {
		k->status |= STS_CMD;
		command(k, v);
	}
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
}

static void p92_read(void *o, uint64_t off, void *data, unsigned len)
{
	struct i8042 *k = o;
	memset(data, 0xff, len);
	pthread_mutex_lock(&k->lock);
	*(uint8_t *)data = k->port92;
	pthread_mutex_unlock(&k->lock);
}

static void p92_write(void *o, uint64_t off, const void *data, unsigned len)
{
	struct i8042 *k = o;
	uint8_t v = *(const uint8_t *)data;
	pthread_mutex_lock(&k->lock);
	k->port92 = (v & ~1) | 0x02;
	if (v & 1)
		reset_machine(k);
	pthread_mutex_unlock(&k->lock);
}

static void data_rd(void *o, uint64_t off, void *d, unsigned len) { port_read(o, false, d, len); }
static void cmd_rd(void *o, uint64_t off, void *d, unsigned len) { port_read(o, true, d, len); }
static void data_wr(void *o, uint64_t off, const void *d, unsigned len) { port_write(o, false, *(const uint8_t *)d); }
static void cmd_wr(void *o, uint64_t off, const void *d, unsigned len) { port_write(o, true, *(const uint8_t *)d); }

static const struct bus_ops data_ops = { data_rd, data_wr };
static const struct bus_ops cmd_ops = { cmd_rd, cmd_wr };
static const struct bus_ops p92_ops = { p92_read, p92_write };

static void i8042_reset(struct dev *d)
{
	struct i8042 *k = (struct i8042 *)d;
	pthread_mutex_lock(&k->lock);
	k->status = STS_UNLOCK;
	k->ccb = CCB_KBD_INT | CCB_AUX_INT;
	k->pending_cmd = 0;
	k->outport = 0x03;      /* reset line high, A20 on */
	k->port92 = 0x02;
	k->qhead = k->qcount = 0;
	memset(k->q, 0, sizeof(k->q));
	memset(k->qaux, 0, sizeof(k->qaux));
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
}

/* Record v1: status ccb pending_cmd outport port92 qhead qcount, then
 * the 8 queue bytes and their 8 flag bytes. */
static int i8042_save(struct dev *d, struct rec_writer *w)
{
	struct i8042 *k = (struct i8042 *)d;
	pthread_mutex_lock(&k->lock);
	const uint8_t h[] = { k->status, k->ccb, k->pending_cmd, k->outport, k->port92,
			      k->qhead, k->qcount };
	rec_put_bytes(w, h, sizeof(h));
	rec_put_bytes(w, k->q, OUTQ);
	rec_put_bytes(w, k->qaux, OUTQ);
	pthread_mutex_unlock(&k->lock);
	return w->err;
}

static int i8042_load(struct dev *d, struct rec_reader *r, uint32_t version)
{
	struct i8042 *k = (struct i8042 *)d;
	uint8_t h[7], q[OUTQ], qa[OUTQ];
	rec_get_bytes(r, h, sizeof(h));
	rec_get_bytes(r, q, OUTQ);
	rec_get_bytes(r, qa, OUTQ);
	if (r->err || h[5] >= OUTQ || h[6] > OUTQ || (h[0] & 0x82))
		return -EINVAL;
	static const uint8_t cmds[] = { 0, 0x60, 0xd1, 0xd2, 0xd3, 0xd4 };
	bool ok = false;
	for (unsigned i = 0; i < sizeof(cmds); i++)
		ok |= h[2] == cmds[i];
	for (unsigned i = 0; i < OUTQ; i++)
		ok &= qa[i] <= 3;
	if (!ok)
		return -EINVAL;
	pthread_mutex_lock(&k->lock);
	k->status = h[0]; k->ccb = h[1]; k->pending_cmd = h[2];
	k->outport = h[3] | 0x02; k->port92 = (h[4] & ~1) | 0x02;
	k->qhead = h[5]; k->qcount = h[6];
	memcpy(k->q, q, OUTQ);
	memcpy(k->qaux, qa, OUTQ);
	sync_status(k);
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
	return 0;
}

static void i8042_free(struct dev *d)
{
	struct i8042 *k = (struct i8042 *)d;
	pthread_mutex_destroy(&k->lock);
	free(k);
}

static const struct dev_type i8042_type = {
	.name = "i8042", .version = 1, .min_version = 1,
	.reset = i8042_reset, .save = i8042_save, .load = i8042_load, .free = i8042_free,
};

int i8042_create(struct vm *vm)
{
	struct i8042 *k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	pthread_mutex_init(&k->lock, NULL);
	k->d.vm = vm;
	static const struct { uint16_t port; const struct bus_ops *ops; } r[] = {
		{ 0x60, &data_ops }, { 0x64, &cmd_ops }, { 0x92, &p92_ops },
	};
	for (int i = 0; i < 3; i++) {
		int rc = bus_register(vm->pio, r[i].port, 1, r[i].ops, k);
		if (rc) {
			while (i-- > 0)
				bus_unregister(vm->pio, r[i].port);
			i8042_free(&k->d);
			return rc;
		}
	}
	vm_add_dev(vm, &k->d, &i8042_type, "i8042");
	i8042_reset(&k->d);
	return 0;
}
