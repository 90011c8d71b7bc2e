/* The console: host terminal or pipe behind the UART. Input is read on the
 * evloop thread into a ring the UART drains as the guest reads; when the
 * ring is full the fd is taken off the loop until there is room again, so
 * nothing is lost and the loop never spins. A TTY runs in raw mode with the
 * Ctrl-A escape keys; its saved attributes also live in a process-wide
 * slot so atexit and signal handlers can restore it (the one global here:
 * neither hook can take an argument). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include "monitor/dev/legacy.h"
#include "monitor/evloop.h"
#include "monitor/vm.h"

#define RING_SIZE 4096
#define ESC_KEY   0x01            /* Ctrl-A */

struct console {
	struct vm *vm;
	int in_fd, out_fd;
	bool tty, file, watched, eof, esc;
	bool out_pipe;          /* out_fd is a FIFO or socket: may EPIPE */
	_Atomic bool out_dead;  /* the reader went away */
	pthread_mutex_t lock;
	uint8_t ring[RING_SIZE];
	size_t head, count;
	void (*notify)(void *opaque);
	void *notify_opaque;
	_Atomic int request;
};

/* Saved terminal for atexit and signal handlers. */
static struct {
	volatile sig_atomic_t active;
	int fd;
	struct termios saved;
} saved_tty;
static pthread_once_t atexit_once = PTHREAD_ONCE_INIT;

void console_restore_tty(void)
{
	if (saved_tty.active) {
		tcsetattr(saved_tty.fd, TCSANOW, &saved_tty.saved);
		saved_tty.active = 0;
	}
}

static void register_atexit(void)
{
	if (atexit(console_restore_tty))
		fputs("roam: cannot register the terminal restore at exit\n", stderr);
}

static const char help[] =
	"roam: console escapes: Ctrl-A x quit, Ctrl-A s suspend, "
	"Ctrl-A Ctrl-A send Ctrl-A, Ctrl-A h help\r\n";

/* Best effort: a missing stderr has nobody to tell. */
static void say(const char *s, size_t n)
{
	ssize_t r = write(STDERR_FILENO, s, n);
	(void)r;
}

static void ring_put(struct console *c, uint8_t b)
{
	if (c->count == RING_SIZE)
		return;         /* callers read at most the free space */
	c->ring[(c->head + c->count) % RING_SIZE] = b;
	c->count++;
}

/* One input byte through the escape state machine (lock held). */
static void input_byte(struct console *c, uint8_t b)
{
	if (!c->tty) {
		ring_put(c, b);
		return;
	}
	if (!c->esc) {
		if (b == ESC_KEY)
			c->esc = true;
		else
			ring_put(c, b);
		return;
	}
	c->esc = false;
	switch (b) {
	case 'x': case 'X':
		vm_request_stop(c->vm, VM_STOP_HOST, 0, "console: quit by Ctrl-A x");
		break;
	case 's': case 'S':
		c->request = 's';
		say("\r\nroam: suspend requested\r\n", 27);
		break;
	case ESC_KEY:
		ring_put(c, ESC_KEY);
		break;
	case 'h': case 'H': case '?':
		say(help, sizeof(help) - 1);
		break;
	default:
		break;
	}
}

static void on_input(void *opaque, int fd, uint32_t events)
{
	struct console *c = opaque;
	bool got = false;
	pthread_mutex_lock(&c->lock);
	size_t room = RING_SIZE - c->count;
	if (room == 0) {
		/* Full: stop watching until the UART drains (console_read). */
		evloop_del_fd(c->vm->ev, fd);
		c->watched = false;
	} else {
		uint8_t buf[RING_SIZE];
		ssize_t n = read(fd, buf, room);
		if (n > 0) {
			for (ssize_t i = 0; i < n; i++)
				input_byte(c, buf[i]);
			got = true;
		} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
			/* EOF (or a dead fd): input ends, the VM keeps running. */
			evloop_del_fd(c->vm->ev, fd);
			c->watched = false;
			c->eof = true;
		}
	}
	void (*cb)(void *) = c->notify;
	void *op = c->notify_opaque;
	pthread_mutex_unlock(&c->lock);
	if (got && cb)
		cb(op);
}

int console_new(struct vm *vm, int in_fd, int out_fd, struct console **ret)
{
	struct console *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->vm = vm;
	c->in_fd = in_fd;
	c->out_fd = out_fd;
	pthread_mutex_init(&c->lock, NULL);
	struct stat ost;
	if (out_fd >= 0 && fstat(out_fd, &ost) == 0)
		c->out_pipe = S_ISFIFO(ost.st_mode) || S_ISSOCK(ost.st_mode);
	if (in_fd >= 0) {
		struct stat st;
		if (fstat(in_fd, &st) < 0) {
			int rc = -errno;
			console_free(c);
			return rc;
		}
		c->file = S_ISREG(st.st_mode) || S_ISBLK(st.st_mode);
		c->tty = isatty(in_fd);
		if (!c->file) {
			int rc = evloop_add_fd(vm->ev, in_fd, EPOLLIN, on_input, c);
			if (rc == -EPERM) {
				/* Not pollable (/dev/null, ...): read on demand. */
				c->file = true;
			} else if (rc) {
				console_free(c);
				return rc;
			} else {
				c->watched = true;
			}
		}
	}
	if (c->tty && !saved_tty.active) {
		struct termios t;
		if (tcgetattr(in_fd, &t) == 0) {
			saved_tty.saved = t;
			saved_tty.fd = in_fd;
			pthread_once(&atexit_once, register_atexit);
			cfmakeraw(&t);
			if (tcsetattr(in_fd, TCSANOW, &t) == 0)
				saved_tty.active = 1;
			say(help, sizeof(help) - 1);
		}
	}
	*ret = c;
	return 0;
}

void console_restore(struct console *con)
{
	if (con && con->tty && saved_tty.active && saved_tty.fd == con->in_fd)
		console_restore_tty();
}

void console_free(struct console *con)
{
	if (!con)
		return;
	console_restore(con);
	if (con->watched)
		evloop_del_fd(con->vm->ev, con->in_fd);
	pthread_mutex_destroy(&con->lock);
	free(con);
}

/* write() that turns a vanished reader into EPIPE instead of a SIGPIPE
 * that would kill the process with the terminal still raw: SIGPIPE is
 * blocked for this thread around the write and a pending one consumed. */
static ssize_t write_nosigpipe(int fd, const void *p, size_t n)
{
	sigset_t pipe_set, old;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	if (pthread_sigmask(SIG_BLOCK, &pipe_set, &old))
		return -1;
	ssize_t w = write(fd, p, n);
	int saved = errno;
	if (w < 0 && errno == EPIPE && !sigismember(&old, SIGPIPE)) {
		struct timespec zero = { 0, 0 };
		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = saved;
	return w;
}

void console_write(struct console *con, const void *buf, size_t n)
{
	if (!con || con->out_fd < 0 || con->out_dead)
		return;
	const uint8_t *p = buf;
	while (n) {
		ssize_t w = con->out_pipe ? write_nosigpipe(con->out_fd, p, n)
					  : write(con->out_fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EPIPE) {
			/* Like any producer in a pipeline, stop when the reader
			 * is gone (roam boot ... | grep -m1 ready). */
			con->out_dead = true;
			vm_request_stop(con->vm, VM_STOP_HOST, 128 + SIGPIPE,
					"console output closed (broken pipe)");
			return;
		}
		if (w <= 0)
			return;         /* other errors: this output is dropped */
		p += w;
		n -= (size_t)w;
	}
}

size_t console_read(struct console *con, void *buf, size_t n)
{
	if (!con || con->in_fd < 0 || !n)
		return 0;
	uint8_t *out = buf;
	size_t got = 0;
	pthread_mutex_lock(&con->lock);
	if (con->file && !con->eof) {
		ssize_t r = read(con->in_fd, out, n);
		if (r > 0)
			got = (size_t)r;
		else if (r == 0 || errno != EINTR)
			con->eof = true;
	} else {
		while (got < n && con->count) {
			out[got++] = con->ring[con->head];
			con->head = (con->head + 1) % RING_SIZE;
			con->count--;
		}
		if (!con->watched && !con->eof && !con->file && con->count < RING_SIZE &&
		    evloop_add_fd(con->vm->ev, con->in_fd, EPOLLIN, on_input, con) == 0)
			con->watched = true;
	}
	pthread_mutex_unlock(&con->lock);
	return got;
}

void console_set_notify(struct console *con, void (*cb)(void *opaque), void *opaque)
{
	if (!con)
		return;
	pthread_mutex_lock(&con->lock);
	con->notify = cb;
	con->notify_opaque = opaque;
	pthread_mutex_unlock(&con->lock);
}

int console_take_request(struct console *con)
{
	if (!con)
		return 0;
	return atomic_exchange(&con->request, 0);
}
