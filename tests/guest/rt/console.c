/* Console and reporting for the test kernels: the COM1 8250 (polled), a
 * small printf, the TEST/RESULT lines the host greps, the debug-exit port,
 * and the freestanding string functions. Output from several CPUs is
 * serialized by a spin lock taken per printf call. */
#include "rt.h"

#define COM1 0x3f8

static volatile u32 con_lock;
static int n_ok, n_fail, n_skip;

void rt_console_init(void)
{
	outb(COM1 + 1, 0x00);   /* no interrupts */
	outb(COM1 + 3, 0x80);   /* DLAB */
	outb(COM1 + 0, 0x01);   /* 115200 */
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03);   /* 8N1 */
	outb(COM1 + 2, 0x07);   /* FIFO on, cleared */
	outb(COM1 + 4, 0x03);   /* DTR, RTS */
}

void rt_putc(char c)
{
	/* Bounded wait for THR empty: a UART model that never sets it must not
	 * hang the kernel. */
	for (int i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); i++)
		cpu_relax();
	outb(COM1, (u8)c);
}

static void lock(void)
{
	for (u32 spins = 0; __atomic_exchange_n(&con_lock, 1, __ATOMIC_ACQUIRE); spins++) {
		cpu_relax();
		if (spins > 50000000)   /* holder died in a fault: print anyway */
			return;
	}
}
static void unlock(void) { __atomic_store_n(&con_lock, 0, __ATOMIC_RELEASE); }

static void put_locked(const char *s)
{
	for (; *s; s++) {
		if (*s == '\n')
			rt_putc('\r');
		rt_putc(*s);
	}
}

void rt_puts(const char *s)
{
	lock();
	put_locked(s);
	unlock();
}

/* ---- formatting ---- */
struct out { char *buf; size_t n, len; };

static void emit(struct out *o, char c)
{
	if (o->len + 1 < o->n)
		o->buf[o->len] = c;
	o->len++;
}

static void emit_num(struct out *o, u64 v, int base, bool neg, int width, char pad, bool upper)
{
	char tmp[24];
	int i = 0;
	const char *dig = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	do {
		tmp[i++] = dig[v % base];
		v /= base;
	} while (v);
	if (neg)
		tmp[i++] = '-';
	for (int w = i; w < width; w++)
		emit(o, pad);
	while (i)
		emit(o, tmp[--i]);
}

int rt_vsnprintf(char *buf, size_t n, const char *fmt, va_list ap)
{
	struct out o = { buf, n, 0 };
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			emit(&o, *fmt);
			continue;
		}
		fmt++;
		bool alt = false;
		char pad = ' ';
		int width = 0, lng = 0;
		if (*fmt == '#') { alt = true; fmt++; }
		if (*fmt == '0') { pad = '0'; fmt++; }
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l') { lng++; fmt++; }
		if (*fmt == 'z') { lng = 2; fmt++; }
		switch (*fmt) {
		case 'd': {
			int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
			emit_num(&o, v < 0 ? -(u64)v : (u64)v, 10, v < 0, width, pad, false);
			break;
		}
		case 'u':
			emit_num(&o, lng ? va_arg(ap, u64) : va_arg(ap, unsigned), 10, false, width, pad, false);
			break;
		case 'x': case 'X':
			if (alt) { emit(&o, '0'); emit(&o, 'x'); }
			emit_num(&o, lng ? va_arg(ap, u64) : va_arg(ap, unsigned), 16, false, width, pad, *fmt == 'X');
			break;
		case 'p':
			emit(&o, '0'); emit(&o, 'x');
			emit_num(&o, (u64)va_arg(ap, void *), 16, false, width, pad, false);
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			if (!s)
				s = "(null)";
			int l = (int)strlen(s);
			for (int w = l; w < width; w++)
				emit(&o, ' ');
			while (*s)
				emit(&o, *s++);
			break;
		}
		case 'c':
			emit(&o, (char)va_arg(ap, int));
			break;
		case '%':
			emit(&o, '%');
			break;
		default:
			emit(&o, '%');
			if (*fmt)
				emit(&o, *fmt);
			else
				fmt--;
		}
	}
	if (n)
		buf[o.len < n ? o.len : n - 1] = 0;
	return (int)o.len;
}

int rt_snprintf(char *buf, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = rt_vsnprintf(buf, n, fmt, ap);
	va_end(ap);
	return r;
}

int rt_printf(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int r = rt_vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	rt_puts(buf);
	return r;
}

/* ---- reporting ---- */
static void report(const char *name, const char *what, const char *fmt, va_list ap)
{
	char why[400];
	rt_vsnprintf(why, sizeof(why), fmt, ap);
	rt_printf("TEST %s: %s%s%s\n", name, what, why[0] ? " " : "", why);
}

void rt_ok(const char *name)
{
	__atomic_fetch_add(&n_ok, 1, __ATOMIC_SEQ_CST);
	rt_printf("TEST %s: ok\n", name);
}

void rt_fail(const char *name, const char *fmt, ...)
{
	va_list ap;
	__atomic_fetch_add(&n_fail, 1, __ATOMIC_SEQ_CST);
	va_start(ap, fmt);
	report(name, "FAIL", fmt, ap);
	va_end(ap);
}

void rt_skip(const char *name, const char *fmt, ...)
{
	va_list ap;
	__atomic_fetch_add(&n_skip, 1, __ATOMIC_SEQ_CST);
	va_start(ap, fmt);
	report(name, "SKIP", fmt, ap);
	va_end(ap);
}

void rt_exit(u8 v)
{
	outb(0xf4, v);
	/* No debug-exit device: stop here. hlt at CPL3 would fault, so spin. */
	for (;;)
		cpu_relax();
}

void rt_finish(void)
{
	const char *res = n_fail ? "FAIL" : (n_ok == 0 && n_skip) ? "SKIP" : n_ok ? "PASS" : "FAIL";
	rt_printf("RESULT: %s (%d ok, %d failed, %d skipped)\n", res, n_ok, n_fail, n_skip);
	rt_exit(res[0] == 'P' ? RT_EXIT_PASS : res[0] == 'S' ? RT_EXIT_SKIP : RT_EXIT_FAIL);
}

void rt_panic(const char *fmt, ...)
{
	char why[400];
	va_list ap;
	va_start(ap, fmt);
	rt_vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	rt_printf("FATAL: %s\n", why);
	rt_printf("RESULT: FAIL (%d ok, %d failed, %d skipped)\n", n_ok, n_fail + 1, n_skip);
	rt_exit(RT_EXIT_FAIL);
}

/* ---- string functions ---- */
/* rep stos/movs: one instruction each, which matters where CPL0 code is
 * emulated instruction by instruction (KVM on PVM). */
void *memset(void *d, int c, size_t n)
{
	void *p = d;
	__asm__ volatile("rep stosb" : "+D"(p), "+c"(n) : "a"(c) : "memory");
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	void *p = d;
	__asm__ volatile("rep movsb" : "+D"(p), "+S"(s), "+c"(n) :: "memory");
	return d;
}

void *memmove(void *d, const void *s, size_t n)
{
	u8 *p = d;
	const u8 *q = s;
	if (p < q) {
		while (n--)
			*p++ = *q++;
	} else {
		while (n--)
			p[n] = q[n];
	}
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const u8 *p = a, *q = b;
	for (; n; n--, p++, q++)
		if (*p != *q)
			return *p - *q;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

int strcmp(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return (u8)*a - (u8)*b;
}

int strncmp(const char *a, const char *b, size_t n)
{
	for (; n; n--, a++, b++) {
		if (*a != *b)
			return (u8)*a - (u8)*b;
		if (!*a)
			return 0;
	}
	return 0;
}

u64 rt_strtou64(const char *s, const char **end)
{
	u64 v = 0;
	int base = 10;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	for (;; s++) {
		int d;
		if (*s >= '0' && *s <= '9') d = *s - '0';
		else if (base == 16 && *s >= 'a' && *s <= 'f') d = *s - 'a' + 10;
		else if (base == 16 && *s >= 'A' && *s <= 'F') d = *s - 'A' + 10;
		else break;
		v = v * base + d;
	}
	if (*s == 'K' || *s == 'k') { v <<= 10; s++; }
	else if (*s == 'M' || *s == 'm') { v <<= 20; s++; }
	if (end)
		*end = s;
	return v;
}
