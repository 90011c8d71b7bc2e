/* Unit tests for the legacy PC devices: UART and console (pipes, files, a
 * pseudo-terminal with the escape keys), i8042, PIT with port 0x61, CMOS
 * RTC, debug-exit; each device's save/mutate/restore/compare round trip;
 * and a hostile guest hitting every port with random values. */
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include "monitor/dev/legacy.h"
#include "tests/unit/dev_legacy/golden.h"
#include "tests/unit/irq/fake_vm.h"
#include "tests/unit/test.h"

#define COM1 0x3f8

/* Save, mutate, restore, save again: the two records must match. */
static void roundtrip(struct vm *vm, const char *id, void (*mutate)(struct vm *))
{
	struct dev *d = vm_find_dev(vm, id);
	CHECK(d != NULL);
	if (!d)
		return;
	if (d->type->pause)
		d->type->pause(d);
	struct rec_writer a, b, m;
	CHECK_EQ(save_dev(d, &a), 0);
	mutate(vm);
	CHECK_EQ(save_dev(d, &m), 0);
	CHECK(!same_rec(&a, &m));               /* the mutation was visible */
	CHECK_EQ(load_dev(d, &a), 0);
	CHECK_EQ(save_dev(d, &b), 0);
	CHECK(same_rec(&a, &b));
	/* Truncated records are refused, random ones never crash. */
	struct rec_reader r;
	rec_reader_init(&r, a.buf, a.len ? a.len - 1 : 0);
	if (a.len)
		CHECK_EQ(d->type->load(d, &r, d->type->version), -EINVAL);
	for (int i = 0; i < 3000; i++) {
		uint8_t buf[256];
		size_t n = i < 1000 ? a.len : rnd() % sizeof(buf);
		if (n > sizeof(buf))
			n = sizeof(buf);
		memcpy(buf, a.buf, n < a.len ? n : a.len);
		for (int k = 0; k < 1 + i % 4; k++)
			if (n)
				buf[rnd() % n] = (uint8_t)rnd();
		rec_reader_init(&r, buf, n);
		(void)d->type->load(d, &r, d->type->version);
	}
	CHECK_EQ(load_dev(d, &a), 0);
	if (d->type->resume)
		d->type->resume(d);
	rec_writer_free(&a);
	rec_writer_free(&b);
	rec_writer_free(&m);
}

/* ---- UART ---- */

static void uart_mutate(struct vm *vm)
{
	outb(vm, COM1 + 3, 0x80);
	outb(vm, COM1 + 0, 0x01);
	outb(vm, COM1 + 1, 0x02);
	outb(vm, COM1 + 3, 0x1b);
	outb(vm, COM1 + 2, 0xc7);
	outb(vm, COM1 + 4, 0x1f);
	outb(vm, COM1 + 1, 0x0f);
	outb(vm, COM1 + 7, 0x77);
	outb(vm, COM1 + 0, 'q');
	outb(vm, COM1 + 0, 'r');
}

static void uart_loopback_irqs(void)
{
	struct vm *vm;
	CHECK_EQ(fake_vm_new(1, 16, 0, &vm), 0);
	int out[2];
	CHECK_EQ(pipe(out), 0);
	struct console *con;
	CHECK_EQ(console_new(vm, -1, out[1], &con), 0);
	CHECK_EQ(uart_create(vm, COM1, 4, con, "uart0"), 0);
	CHECK_EQ(inb(vm, COM1 + 5), 0x60);              /* THRE | TEMT */
	CHECK_EQ(inb(vm, COM1 + 2), 0x01);
	CHECK_EQ(inb(vm, COM1 + 6), 0xb0);
	/* Divisor latch. */
	outb(vm, COM1 + 3, 0x83);
	outb(vm, COM1 + 0, 0x01);
	outb(vm, COM1 + 1, 0x00);
	CHECK_EQ(inb(vm, COM1 + 0), 0x01);
	outb(vm, COM1 + 3, 0x03);
	CHECK_EQ(inb(vm, COM1 + 1), 0x00);              /* IER untouched */
	/* Output goes to the console fd. */
	outb(vm, COM1 + 0, 'Z');
	char ch = 0;
	CHECK_EQ(read(out[0], &ch, 1), 1);
	CHECK_EQ(ch, 'Z');
	/* THRE interrupt: raised when enabled, cleared by reading IIR, a fresh
	 * edge after each THR write. */
	outb(vm, COM1 + 1, 0x02);
	CHECK_EQ(inb(vm, COM1 + 2), 0x02);
	CHECK_EQ(fake.level[4], 0);
	outb(vm, COM1 + 1, 0x00);
	outb(vm, COM1 + 1, 0x02);
	CHECK_EQ(fake.level[4], 1);
	int e = fake.edges[4];
	outb(vm, COM1 + 0, 'Y');
	CHECK_EQ(fake.edges[4], e + 1);
	CHECK_EQ(read(out[0], &ch, 1), 1);
	(void)inb(vm, COM1 + 2);
	CHECK_EQ(fake.level[4], 0);
	/* Loopback: bytes come back, modem lines follow MCR. */
	outb(vm, COM1 + 4, 0x10);
	CHECK_EQ(inb(vm, COM1 + 6) & 0xf0, 0x00);
	outb(vm, COM1 + 4, 0x1a);                       /* RTS, OUT2 */
	CHECK_EQ(inb(vm, COM1 + 6), 0x99);              /* CTS, DCD + deltas */
	CHECK_EQ(inb(vm, COM1 + 6), 0x90);
	outb(vm, COM1 + 1, 0x01);
	outb(vm, COM1 + 0, 'A');
	CHECK_EQ(inb(vm, COM1 + 5) & 1, 1);
	CHECK_EQ(inb(vm, COM1 + 2), 0x04);
	CHECK_EQ(fake.level[4], 1);
	CHECK_EQ(inb(vm, COM1 + 0), 'A');
	CHECK_EQ(inb(vm, COM1 + 5) & 1, 0);
	CHECK_EQ(fake.level[4], 0);
	/* Without FIFO the second byte overruns. */
	outb(vm, COM1 + 0, '1');
	outb(vm, COM1 + 0, '2');
	CHECK_EQ(inb(vm, COM1 + 5) & 3, 3);
	CHECK_EQ(inb(vm, COM1 + 0), '1');
	/* FIFO: 16 bytes, IIR top bits, trigger level 4. */
	outb(vm, COM1 + 2, 0x47);
	CHECK_EQ(inb(vm, COM1 + 2) & 0xc0, 0xc0);
	for (int i = 0; i < 3; i++)
		outb(vm, COM1 + 0, (uint8_t)('a' + i));
	CHECK_EQ(inb(vm, COM1 + 2), 0xcc);              /* below trigger: timeout id */
	outb(vm, COM1 + 0, 'd');
	CHECK_EQ(inb(vm, COM1 + 2), 0xc4);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(inb(vm, COM1 + 0), 'a' + i);
	for (int i = 0; i < 17; i++)
		outb(vm, COM1 + 0, (uint8_t)i);
	CHECK_EQ(inb(vm, COM1 + 5) & 2, 2);             /* 17th overran */
	outb(vm, COM1 + 2, 0x03);                       /* clear RX FIFO */
	CHECK_EQ(inb(vm, COM1 + 5) & 1, 0);
	CHECK_EQ(inb(vm, COM1 + 7), 0x00);
	outb(vm, COM1 + 7, 0x5a);
	CHECK_EQ(inb(vm, COM1 + 7), 0x5a);
	roundtrip(vm, "uart0", uart_mutate);
	CHECK_EQ(inb(vm, COM1 + 7), 0x5a);
	/* The reader goes away: no SIGPIPE death, the VM stops instead. */
	outb(vm, COM1 + 4, 0x00);
	close(out[0]);
	CHECK_EQ(vm->stop, VM_RUNNING);
	outb(vm, COM1 + 0, 'E');
	CHECK_EQ(vm->stop, VM_STOP_HOST);
	CHECK_EQ(vm->exit_status, 128 + SIGPIPE);
	outb(vm, COM1 + 0, 'F');
	fake_vm_free(vm);
	close(out[1]);
}

static int read_rx(struct vm *vm, char *buf, int max, unsigned ms)
{
	int n = 0;
	uint64_t end = now_ns() + (uint64_t)ms * 1000000;
	while (n < max && now_ns() < end) {
		if (inb(vm, COM1 + 5) & 1)
			buf[n++] = (char)inb(vm, COM1 + 0);
		else
			sleep_ms(1);
	}
	return n;
}

static void uart_console_pipe(void)
{
	struct vm *vm;
	CHECK_EQ(fake_vm_new(1, 16, 0, &vm), 0);
	int in[2];
	CHECK_EQ(pipe(in), 0);
	vm->cfg.console_in = in[0];
	CHECK_EQ(legacy_devices_create(vm), 0);
	CHECK(vm->con != NULL);
	CHECK_EQ(evloop_start(vm->ev), 0);
	outb(vm, COM1 + 2, 0x01);
	outb(vm, COM1 + 1, 0x01);
	CHECK_EQ(write(in[1], "hello", 5), 5);
	char buf[16] = { 0 };
	uint64_t end = now_ns() + 1000000000ULL;
	while (!fake.level[4] && now_ns() < end)
		sleep_ms(1);
	CHECK_EQ(fake.level[4], 1);                     /* RX interrupt */
	CHECK_EQ(read_rx(vm, buf, 5, 1000), 5);
	CHECK(!memcmp(buf, "hello", 5));
	CHECK_EQ(fake.level[4], 0);
	/* 20000 bytes: the ring fills, the fd pauses, nothing is lost. */
	enum { BIG = 20000 };
	static char src[BIG], dst[BIG];
	for (int i = 0; i < BIG; i++)
		src[i] = (char)(i * 7 + i / 251);
	int wr = 0, rd = 0;
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	end = now_ns() + 10000000000ULL;
	while (rd < BIG && now_ns() < end) {
		if (wr < BIG) {
			ssize_t w = write(in[1], src + wr, (size_t)(BIG - wr));
			if (w > 0)
				wr += (int)w;
		}
		rd += read_rx(vm, dst + rd, BIG - rd, 2);
	}
	CHECK_EQ(rd, BIG);
	CHECK(!memcmp(src, dst, BIG));
	/* Ctrl-A is plain data on a pipe; EOF is not an error. */
	CHECK_EQ(write(in[1], "\x01x", 2), 2);
	close(in[1]);
	CHECK_EQ(read_rx(vm, buf, 2, 1000), 2);
	CHECK(!memcmp(buf, "\x01x", 2));
	sleep_ms(20);
	CHECK_EQ(vm->stop, VM_RUNNING);
	CHECK_EQ(console_take_request(vm->con), 0);
	fake_vm_free(vm);
	close(in[0]);
}

static void uart_console_file(void)
{
	struct vm *vm;
	CHECK_EQ(fake_vm_new(1, 16, 0, &vm), 0);
	char path[] = "/tmp/roam-con-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	unlink(path);
	CHECK_EQ(write(fd, "file input", 10), 10);
	lseek(fd, 0, SEEK_SET);
	struct console *con;
	CHECK_EQ(console_new(vm, fd, -1, &con), 0);
	CHECK_EQ(uart_create(vm, COM1, 4, con, "uart0"), 0);
	outb(vm, COM1 + 2, 0x01);
	char buf[16] = { 0 };
	CHECK_EQ(read_rx(vm, buf, 16, 50), 10);
	CHECK(!memcmp(buf, "file input", 10));
	outb(vm, COM1 + 0, 'x');                        /* no output fd: dropped */
	fake_vm_free(vm);
	close(fd);
	/* /dev/null cannot be polled: read on demand, EOF at once. */
	CHECK_EQ(fake_vm_new(1, 16, 0, &vm), 0);
	fd = open("/dev/null", O_RDONLY);
	vm->cfg.console_in = fd;
	CHECK_EQ(legacy_devices_create(vm), 0);
	outb(vm, COM1 + 2, 0x01);
	CHECK_EQ(read_rx(vm, buf, 16, 20), 0);
	CHECK_EQ(vm->stop, VM_RUNNING);
	fake_vm_free(vm);
	close(fd);
}

static void console_tty_escapes(void)
{
	struct vm *vm;
	CHECK_EQ(fake_vm_new(1, 16, 0, &vm), 0);
	int master, slave;
	if (openpty(&master, &slave, NULL, NULL, NULL) < 0) {
		fake_vm_free(vm);
		SKIP(console_tty_escapes, "no pseudo-terminals");
		return;
	}
	struct termios before, during, after;
	CHECK_EQ(tcgetattr(slave, &before), 0);
	CHECK(before.c_lflag & ICANON);
	/* Help goes to stderr: keep the test output clean. */
	int err = dup(2), devnull = open("/dev/null", O_WRONLY);
	dup2(devnull, 2);
	struct console *con;
	CHECK_EQ(console_new(vm, slave, -1, &con), 0);
	CHECK_EQ(uart_create(vm, COM1, 4, con, "uart0"), 0);
	vm->con = con;
	CHECK_EQ(tcgetattr(slave, &during), 0);
	CHECK(!(during.c_lflag & (ICANON | ECHO | ISIG)));
	CHECK_EQ(evloop_start(vm->ev), 0);
	outb(vm, COM1 + 2, 0x01);
	CHECK_EQ(write(master, "a\x01\x01" "b\x01s\x01hc", 9), 9);
	char buf[8] = { 0 };
	CHECK_EQ(read_rx(vm, buf, 4, 1000), 4);
	CHECK(!memcmp(buf, "a\x01" "bc", 4));
	CHECK_EQ(console_take_request(con), 's');
	CHECK_EQ(console_take_request(con), 0);
	CHECK_EQ(vm->stop, VM_RUNNING);
	CHECK_EQ(write(master, "\x01x", 2), 2);
	uint64_t end = now_ns() + 1000000000ULL;
	while (vm->stop == VM_RUNNING && now_ns() < end)
		sleep_ms(1);
	CHECK_EQ(vm->stop, VM_STOP_HOST);
	console_restore(con);
	CHECK_EQ(tcgetattr(slave, &after), 0);
	CHECK(after.c_lflag & ICANON);
	console_restore_tty();                          /* idempotent */
	fake_vm_free(vm);
	CHECK_EQ(tcgetattr(slave, &after), 0);
	CHECK_EQ(after.c_lflag, before.c_lflag);
	dup2(err, 2);
	close(err);
	close(devnull);
	close(master);
	close(slave);
}

/* ---- i8042 ---- */

static uint8_t kbd_wait(struct vm *vm)
{
	return (inb(vm, 0x64) & 1) ? inb(vm, 0x60) : 0xee;
}

static void i8042_mutate(struct vm *vm)
{
	outb(vm, 0x64, 0x60);
	outb(vm, 0x60, 0x47);
	outb(vm, 0x64, 0xd2);
	outb(vm, 0x60, 0x99);
	outb(vm, 0x64, 0xd1);
}

static void i8042_probe_reset(void)
{
	struct vm *vm;
	CHECK_EQ(fake_vm_new(1, 16, 0, &vm), 0);
	CHECK_EQ(i8042_create(vm), 0);
	CHECK_EQ(inb(vm, 0x64) & 1, 0);
	/* What Linux's i8042 driver does at probe. */
	outb(vm, 0x64, 0xaa);
	CHECK_EQ(kbd_wait(vm), 0x55);
	CHECK(inb(vm, 0x64) & 0x04);                    /* system flag */
	outb(vm, 0x64, 0x20);
	uint8_t ccb = kbd_wait(vm);
	CHECK_EQ(ccb & 0x03, 0x03);
	outb(vm, 0x64, 0x60);
	outb(vm, 0x60, 0x44);                           /* IRQs off */
	outb(vm, 0x64, 0x20);
	CHECK_EQ(kbd_wait(vm), 0x44);
	outb(vm, 0x64, 0xd3);                           /* AUX loopback */
	outb(vm, 0x60, 0x5a);
	CHECK_EQ(inb(vm, 0x64) & 0x21, 0x21);
	CHECK_EQ(inb(vm, 0x60), 0x5a);
	outb(vm, 0x64, 0x60);
	outb(vm, 0x60, 0x47);                           /* both IRQs on */
	outb(vm, 0x64, 0xd3);
	outb(vm, 0x60, 0xa5);
	CHECK_EQ(fake.level[12], 1);
	CHECK_EQ(inb(vm, 0x60), 0xa5);
	CHECK_EQ(fake.level[12], 0);
	/* A keyboard command with no keyboard: NAK and timeout. */
	outb(vm, 0x60, 0xf2);
	CHECK_EQ(inb(vm, 0x64) & 0x41, 0x41);
	CHECK_EQ(fake.level[1], 1);
	CHECK_EQ(inb(vm, 0x60), 0xfe);
	CHECK_EQ(fake.level[1], 0);
	outb(vm, 0x64, 0xa9);
	CHECK_EQ(kbd_wait(vm), 0x00);
	outb(vm, 0x64, 0xd0);
	CHECK_EQ(kbd_wait(vm) & 0x03, 0x03);
	CHECK_EQ(inb(vm, 0x92), 0x02);
	roundtrip(vm, "i8042", i8042_mutate);
	CHECK_EQ(vm->stop, VM_RUNNING);
	outb(vm, 0x64, 0xfe);
	CHECK_EQ(vm->stop, VM_STOP_RESET);
	CHECK_EQ(vm->exit_status, 0);
	fake_vm_free(vm);

	/* Port 0x92 fast reset. */
	CHECK_EQ(fake_vm_new(1, 16, 0, &vm), 0);
	CHECK_EQ(i8042_create(vm), 0);
	outb(vm, 0x92, 0x02);
	CHECK_EQ(vm->stop, VM_RUNNING);
	outb(vm, 0x92, 0x03);
	CHECK_EQ(vm->stop, VM_STOP_RESET);
	fake_vm_free(vm);

	/* Output port write with the reset line low. */
	CHECK_EQ(fake_vm_new(1, 16, 0, &vm), 0);
	CHECK_EQ(i8042_create(vm), 0);
	outb(vm, 0x64, 0xd1);
	outb(vm, 0x60, 0x02);
	CHECK_EQ(vm->stop, VM_STOP_RESET);
	fake_vm_free(vm);
}

/* ---- PIT ---- */

static uint16_t pit_latch(struct vm *vm, unsigned ch)
{
	outb(vm, 0x43, (uint8_t)(ch << 6));
	uint8_t lo = inb(vm, (uint16_t)(0x40 + ch));
	return (uint16_t)(lo | inb(vm, (uint16_t)(0x40 + ch)) << 8);
}

static void pit_mutate(struct vm *vm)
{
	outb(vm, 0x43, 0x34);
	outb(vm, 0x40, 0x00);
	outb(vm, 0x40, 0x10);
	outb(vm, 0x43, 0x96);
	outb(vm, 0x42, 0x33);
	outb(vm, 0x61, 0x03);
	outb(vm, 0x43, 0xc2);
}

static void pit_counting(void)
{
	struct vm *vm;
	CHECK_EQ(fake_vm_new(1, 16, 0, &vm), 0);
	CHECK_EQ(pit_create(vm), 0);
	CHECK_EQ(evloop_start(vm->ev), 0);
	/* Channel 0, mode 2, full count (55 ms): the counter runs down at
	 * 1.193182 MHz. */
	outb(vm, 0x43, 0x34);
	outb(vm, 0x40, 0x00);
	uint64_t t0 = now_ns();
	outb(vm, 0x40, 0x00);
	uint16_t a = pit_latch(vm, 0);
	uint64_t ta = now_ns() - t0;
	sleep_ms(3);
	uint16_t b = pit_latch(vm, 0);
	uint64_t tb = now_ns() - t0;
	CHECK(a >= 65536 - ta * 1193182 / 1000000000 - 2 || a == 0);
	if (tb < 50000000) {
		CHECK(b < a);
		CHECK(b <= 65536 - 3 * 1193);
		CHECK(b >= 65536 - tb * 1193182 / 1000000000 - 2);
	}
	/* IRQ0 edges every period: 10 ms (11932 ticks). */
	outb(vm, 0x40, 11932 & 0xff);
	outb(vm, 0x40, 11932 >> 8);
	t0 = now_ns();
	int e_start = fake.edges[0];
	sleep_ms(60);
	int edges = fake.edges[0] - e_start;
	uint64_t el = now_ns() - t0;
	CHECK(edges >= 2);
	CHECK((uint64_t)edges <= el / 10000000 + 1);
	/* Read-back status: OUT, rw=3, mode 2. */
	outb(vm, 0x43, 0xe2);                           /* status only, channel 0 */
	CHECK_EQ(inb(vm, 0x40) & 0x3f, 0x34);
	/* Lobyte-only access. */
	outb(vm, 0x43, 0x54);                           /* ch1, LSB, mode 2 */
	outb(vm, 0x41, 200);
	uint8_t lo = inb(vm, 0x41);
	CHECK(lo <= 200 && lo > 0);
	/* BCD: count 0x0100 = 100 ticks. */
	outb(vm, 0x43, 0x75);                           /* ch1, LSB/MSB, mode 2, BCD */
	outb(vm, 0x41, 0x00);
	outb(vm, 0x41, 0x01);
	uint16_t v = pit_latch(vm, 1);
	CHECK(v <= 0x100 && (v & 0xf) <= 9 && ((v >> 4) & 0xf) <= 9);

	/* Channel 2 one-shot (mode 0) seen through port 0x61, as Linux's
	 * TSC calibration does it. */
	outb(vm, 0x61, (uint8_t)((inb(vm, 0x61) & ~0x02) | 0x01));
	outb(vm, 0x43, 0xb0);
	outb(vm, 0x42, 1193 & 0xff);                    /* 1 ms */
	outb(vm, 0x42, 1193 >> 8);
	CHECK_EQ(inb(vm, 0x61) & 0x20, 0);
	t0 = now_ns();
	int polls = 0;
	while (!(inb(vm, 0x61) & 0x20) && now_ns() - t0 < 1000000000ULL)
		polls++;
	el = now_ns() - t0;
	CHECK(inb(vm, 0x61) & 0x20);
	CHECK(polls > 0);
	CHECK(el >= 900000 && el < 100000000);
	CHECK_EQ(inb(vm, 0x61) & 0x03, 0x01);
	/* Gate low stops the count. */
	outb(vm, 0x43, 0xb0);
	outb(vm, 0x42, 0xff);
	outb(vm, 0x42, 0xff);
	outb(vm, 0x61, 0x00);
	uint16_t g1 = pit_latch(vm, 2);
	sleep_ms(2);
	CHECK_EQ(pit_latch(vm, 2), g1);
	outb(vm, 0x61, 0x01);
	sleep_ms(2);
	CHECK(pit_latch(vm, 2) < g1);
	/* Refresh bit toggles. */
	int toggles = 0;
	uint8_t last = inb(vm, 0x61) & 0x10;
	for (int i = 0; i < 100000 && toggles < 2; i++) {
		uint8_t now = inb(vm, 0x61) & 0x10;
		toggles += now != last;
		last = now;
	}
	CHECK_EQ(toggles, 2);
	/* Mode 0 on channel 0: one IRQ0 only. */
	outb(vm, 0x43, 0x30);
	int e0 = fake.edges[0];
	outb(vm, 0x40, 0xa9);
	outb(vm, 0x40, 0x04);                           /* 1193 = 1 ms */
	uint64_t end = now_ns() + 1000000000ULL;
	while (fake.edges[0] == e0 && now_ns() < end)
		sleep_ms(1);
	sleep_ms(20);
	CHECK_EQ(fake.edges[0], e0 + 1);
	roundtrip(vm, "pit", pit_mutate);
	/* A tiny period is rate-limited, not a timer storm. */
	outb(vm, 0x43, 0x34);
	outb(vm, 0x40, 2);
	outb(vm, 0x40, 0);
	e0 = fake.edges[0];
	t0 = now_ns();
	sleep_ms(50);
	CHECK((uint64_t)(fake.edges[0] - e0) <= (now_ns() - t0) / 100000 + 2);
	fake_vm_free(vm);
}

/* ---- RTC ---- */

static uint8_t cmos(struct vm *vm, uint8_t idx)
{
	outb(vm, 0x70, idx);
	return inb(vm, 0x71);
}

static void cmos_w(struct vm *vm, uint8_t idx, uint8_t v)
{
	outb(vm, 0x70, idx);
	outb(vm, 0x71, v);
}

static int bcd(uint8_t v) { return (v >> 4) * 10 + (v & 0xf); }

/* Reads the clock as Linux does (wait for UIP clear) in seconds since
 * the epoch, decoding per register B. */
static int64_t rtc_read_time(struct vm *vm)
{
	while (cmos(vm, 0x0a) & 0x80)
		;
	uint8_t b = cmos(vm, 0x0b);
	int (*dec)(uint8_t) = (b & 4) ? NULL : bcd;
#define D(x) (dec ? dec(x) : (x))
	struct tm tm = { 0 };
	tm.tm_sec = D(cmos(vm, 0));
	tm.tm_min = D(cmos(vm, 2));
	uint8_t h = cmos(vm, 4);
	if (b & 2)
		tm.tm_hour = D(h);
	else
		tm.tm_hour = D(h & 0x7f) % 12 + ((h & 0x80) ? 12 : 0);
	tm.tm_mday = D(cmos(vm, 7));
	tm.tm_mon = D(cmos(vm, 8)) - 1;
	tm.tm_year = D(cmos(vm, 0x32)) * 100 + D(cmos(vm, 9)) - 1900;
#undef D
	return (int64_t)timegm(&tm);
}

static void rtc_mutate(struct vm *vm)
{
	cmos_w(vm, 0x0b, 0x82);
	cmos_w(vm, 0x09, 0x42);
	cmos_w(vm, 0x0b, 0x02);
	cmos_w(vm, 0x40, 0xaa);
	cmos_w(vm, 0x0a, 0x2f);
	outb(vm, 0x70, 0x8d);
}

static void rtc_clock(void)
{
	struct vm *vm;
	CHECK_EQ(fake_vm_new(1, 256, 0, &vm), 0);
	CHECK_EQ(rtc_create(vm), 0);
	CHECK_EQ(evloop_start(vm->ev), 0);
	CHECK_EQ(cmos(vm, 0x0d), 0x80);
	CHECK_EQ(cmos(vm, 0x0b) & 0x06, 0x02);          /* BCD, 24h */
	int64_t host = (int64_t)time(NULL);
	int64_t t = rtc_read_time(vm);
	CHECK(t >= host - 1 && t <= host + 2);
	struct tm tm;
	time_t ht = (time_t)host;
	gmtime_r(&ht, &tm);
	CHECK_EQ(bcd(cmos(vm, 6)), tm.tm_wday + 1);
	/* Binary, then 12-hour. */
	cmos_w(vm, 0x0b, 0x06);
	t = rtc_read_time(vm);
	CHECK(t >= host - 1 && t <= host + 3);
	cmos_w(vm, 0x0b, 0x04);
	t = rtc_read_time(vm);
	CHECK(t >= host - 1 && t <= host + 3);
	cmos_w(vm, 0x0b, 0x02);
	/* Setting the clock: 2001-02-03 04:05:06 UTC. */
	cmos_w(vm, 0x0b, 0x82);
	cmos_w(vm, 0x00, 0x06); cmos_w(vm, 0x02, 0x05); cmos_w(vm, 0x04, 0x04);
	cmos_w(vm, 0x07, 0x03); cmos_w(vm, 0x08, 0x02); cmos_w(vm, 0x09, 0x01);
	cmos_w(vm, 0x32, 0x20);
	CHECK_EQ(cmos(vm, 0x00), 0x06);                 /* frozen while SET */
	cmos_w(vm, 0x0b, 0x02);
	t = rtc_read_time(vm);
	CHECK(t >= 981173106 && t <= 981173108);
	/* Memory size bytes for 256 MiB. */
	CHECK_EQ(cmos(vm, 0x15) | cmos(vm, 0x16) << 8, 640);
	CHECK_EQ(cmos(vm, 0x17) | cmos(vm, 0x18) << 8, 0xffff);
	CHECK_EQ(cmos(vm, 0x30) | cmos(vm, 0x31) << 8, 0xffff);
	CHECK_EQ(cmos(vm, 0x34) | cmos(vm, 0x35) << 8, (256 - 16) * 16);
	CHECK_EQ(cmos(vm, 0x5b) | cmos(vm, 0x5c) << 8 | cmos(vm, 0x5d) << 16, 0);
	/* CMOS RAM and NMI-disable bit on the index port. */
	outb(vm, 0x70, 0x80 | 0x50);
	outb(vm, 0x71, 0x3c);
	CHECK_EQ(cmos(vm, 0x50), 0x3c);
	/* Periodic interrupt at 1024 Hz on IRQ8; register C acknowledges. */
	CHECK_EQ(cmos(vm, 0x0c), 0x00);
	cmos_w(vm, 0x0a, 0x26);
	cmos_w(vm, 0x0b, 0x42);
	uint64_t end = now_ns() + 500000000ULL;
	while (!fake.level[8] && now_ns() < end)
		sleep_ms(1);
	CHECK_EQ(fake.level[8], 1);
	CHECK_EQ(cmos(vm, 0x0c) & 0xc0, 0xc0);
	CHECK_EQ(fake.level[8], 0);
	cmos_w(vm, 0x0b, 0x02);
	cmos(vm, 0x0c);
	/* Update-ended interrupt within a second. */
	cmos_w(vm, 0x0b, 0x12);
	end = now_ns() + 1500000000ULL;
	while (!fake.level[8] && now_ns() < end)
		sleep_ms(2);
	CHECK_EQ(fake.level[8], 1);
	CHECK_EQ(cmos(vm, 0x0c) & 0x90, 0x90);
	cmos_w(vm, 0x0b, 0x02);
	(void)cmos(vm, 0x0c);
	roundtrip(vm, "rtc", rtc_mutate);
	t = rtc_read_time(vm);
	CHECK(t >= 981173106 && t <= 981173120);        /* offset came back */
	fake_vm_free(vm);
}

/* ---- debug exit, sinks, the whole set ---- */

static void debug_exit_status(void)
{
	struct vm *vm;
	CHECK_EQ(fake_vm_new(1, 16, 0, &vm), 0);
	CHECK_EQ(legacy_devices_create(vm), 0);
	outb(vm, 0x80, 0x12);
	outb(vm, 0xed, 0x34);
	CHECK_EQ(inb(vm, 0x80), 0xff);
	CHECK_EQ(vm->stop, VM_RUNNING);
	outl(vm, 0xf4, 0x12);
	CHECK_EQ(vm->stop, VM_STOP_DEBUG_EXIT);
	CHECK_EQ(vm->exit_status, 0x25);
	fake_vm_free(vm);
	CHECK_EQ(fake_vm_new(1, 16, 0, &vm), 0);
	CHECK_EQ(legacy_devices_create(vm), 0);
	CHECK_EQ(legacy_devices_create(vm), -EEXIST);   /* ports taken */
	outb(vm, 0xf4, 0x00);
	CHECK_EQ(vm->exit_status, 1);
	fake_vm_free(vm);
}

static void hostile_ports(void)
{
	struct vm *vm;
	CHECK_EQ(fake_vm_new(2, 16, 1, &vm), 0);
	int out = open("/dev/null", O_WRONLY);
	vm->cfg.console_out = out;
	CHECK_EQ(legacy_devices_create(vm), 0);
	CHECK_EQ(evloop_start(vm->ev), 0);
	static const uint16_t ports[] = {
		0x20, 0x21, 0x40, 0x41, 0x42, 0x43, 0x60, 0x61, 0x64, 0x70, 0x71,
		0x80, 0x92, 0xa0, 0xa1, 0xed, 0x3f8, 0x3f9, 0x3fa, 0x3fb, 0x3fc,
		0x3fd, 0x3fe, 0x3ff, 0x4d0, 0x4d1,
	};
	const int np = (int)(sizeof(ports) / sizeof(ports[0]));
	for (int i = 0; i < 300000; i++) {
		uint64_t r = rnd();
		uint16_t port = (r & 0xf00) ? ports[(r >> 16) % np] : (uint16_t)(r >> 16);
		if (port >= 0xf4 && port <= 0xf7)
			continue;                       /* would just stop the VM */
		uint32_t v = (uint32_t)(r >> 32);
		unsigned len = 1u << ((r >> 4) % 3);
		/* Keep the PIT from a 2-tick IRQ storm most of the time. */
		if (port == 0x40 && (v & 0xff) < 4)
			v |= 0x80;
		if (r & 1) {
			bus_write(vm->pio, port, &v, len);
		} else {
			uint32_t d = 0;
			bus_read(vm->pio, port, &d, len);
		}
		if ((r & 0xff) == 0x42) {
			int p = irqchip_pending(vm->irq, 0);
			if (p >= 0)
				(void)irqchip_ack(vm->irq, 0);
		}
	}
	/* Reset requests may have stopped it; that is a normal outcome. */
	CHECK(vm->stop == VM_RUNNING || vm->stop == VM_STOP_RESET);
	/* Every device still saves and reloads its own record. */
	for (struct dev *d = vm->devs; d; d = d->next) {
		struct rec_writer w;
		CHECK_EQ(save_dev(d, &w), 0);
		CHECK_EQ(load_dev(d, &w), 0);
		rec_writer_free(&w);
	}
	fake_vm_free(vm);
	close(out);
}

/* ---- golden records ---- */

static const struct {
	const char *id;
	const uint8_t *rec;
	const size_t *len;
} goldens[] = {
	{ "pic", golden_pic_v1, &golden_pic_v1_len },
	{ "ioapic", golden_ioapic_v1, &golden_ioapic_v1_len },
	{ "uart0", golden_uart0_v1, &golden_uart0_v1_len },
	{ "pit", golden_pit_v1, &golden_pit_v1_len },
	{ "rtc", golden_rtc_v1, &golden_rtc_v1_len },
	{ "i8042", golden_i8042_v1, &golden_i8042_v1_len },
};

static int golden_vm(struct vm **vm)
{
	int rc = fake_vm_new(2, 64, 1, vm);
	if (!rc)
		rc = legacy_devices_create(*vm);
	return rc;
}

static void check_golden(struct dev *d, const uint8_t *rec, size_t len)
{
	struct rec_writer w;
	CHECK_EQ(save_dev(d, &w), 0);
	int same = w.len == len && !memcmp(w.buf, rec, len);
	CHECK(same);
	if (!same) {
		printf("  %s record now (%zu bytes):", d->id, w.len);
		for (size_t i = 0; i < w.len; i++)
			printf("%s%02x", i % 24 ? " " : "\n   ", w.buf[i]);
		printf("\n");
	}
	rec_writer_free(&w);
}

static void golden_records(void)
{
	struct vm *vm;
	/* Version-1 records load, and save back byte for byte. */
	CHECK_EQ(golden_vm(&vm), 0);
	struct dev *pit = vm_find_dev(vm, "pit");
	pit->type->pause(pit);
	for (unsigned i = 0; i < sizeof(goldens) / sizeof(goldens[0]); i++) {
		struct dev *d = vm_find_dev(vm, goldens[i].id);
		CHECK(d != NULL);
		if (!d)
			continue;
		CHECK_EQ(d->type->version, 1);
		struct rec_reader r;
		rec_reader_init(&r, goldens[i].rec, *goldens[i].len);
		CHECK_EQ(d->type->load(d, &r, 1), 0);
		CHECK_EQ(r.pos, *goldens[i].len);
		check_golden(d, goldens[i].rec, *goldens[i].len);
	}
	/* What the records mean. */
	CHECK_EQ(inb(vm, 0x21), 0xb0);
	CHECK_EQ(inb(vm, 0xa1), 0x8e);
	CHECK_EQ(inb(vm, 0x4d1), 0x0c);
	CHECK_EQ(inb(vm, 0x3ff), 0x42);
	CHECK_EQ(inb(vm, 0x3f8), 'g');
	CHECK_EQ(inb(vm, 0x3f8), 'o');
	CHECK_EQ(inb(vm, 0x64) & 0x25, 0x25);
	CHECK_EQ(inb(vm, 0x60), 0x5a);
	outb(vm, 0x70, 0x09);
	CHECK_EQ(inb(vm, 0x71), 0x24);
	outb(vm, 0x70, 0x50);
	CHECK_EQ(inb(vm, 0x71), 0x3c);
	CHECK_EQ(pit_latch(vm, 2), 1193);               /* paused: no time passed */
	fake_vm_free(vm);
	/* The same guest programming today gives the same bytes. */
	CHECK_EQ(golden_vm(&vm), 0);
	golden_setup(vm);
	for (unsigned i = 0; i < sizeof(goldens) / sizeof(goldens[0]); i++) {
		struct dev *d = vm_find_dev(vm, goldens[i].id);
		if (d)
			check_golden(d, goldens[i].rec, *goldens[i].len);
	}
	fake_vm_free(vm);
}

int main(void)
{
	TEST(uart_loopback_irqs);
	TEST(uart_console_pipe);
	TEST(uart_console_file);
	TEST(console_tty_escapes);
	TEST(i8042_probe_reset);
	TEST(pit_counting);
	TEST(rtc_clock);
	TEST(debug_exit_status);
	TEST(hostile_ports);
	TEST(golden_records);
	TEST_EXIT();
}
