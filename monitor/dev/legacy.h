/* Legacy PC devices shared by both engines: the console and its 8250/16550A
 * UART (COM1, 0x3f8, IRQ4), the i8042 keyboard controller (0x60/0x64, reset
 * through command 0xfe) with port 0x92, the 8254 PIT (0x40-0x43, speaker
 * port 0x61), the CMOS RTC (0x70/0x71, IRQ8), the debug-exit port (0xf4) and
 * sinks for ports Linux pokes (0x80 POST, 0xed delay).
 *
 * Machine assembly (vm.c): after irqchip_new(vm, &vm->irq), call
 * legacy_devices_create(vm). It needs vm->pio, vm->ev, vm->mem and vm->cfg
 * (console_in/console_out, -1 for none), creates the console in vm->con and
 * every device above, each linked into vm's device list (vm_free frees them
 * through their dev_type->free, which also frees vm->con with uart0: do not
 * free vm->con yourself). Devices raise lines with vm_set_irq(), so vm.c's
 * vm_set_irq must route to vm->irq (or the engine) from any thread. Free
 * devices only after evloop_stop (their timers live on vm->ev). */
#ifndef ROAM_DEV_LEGACY_H
#define ROAM_DEV_LEGACY_H
#include <stddef.h>
#include <stdint.h>

struct vm;
struct console;

/* All legacy devices at their standard places. 0 or -errno (a bus overlap,
 * -ENOMEM, a console fd that cannot be watched). */
int legacy_devices_create(struct vm *vm);

/* The pieces, for tests and other machine types. */
int uart_create(struct vm *vm, uint16_t base, unsigned irq, struct console *con,
		const char *id);          /* takes ownership of con (may be NULL) */
int pit_create(struct vm *vm);            /* also port 0x61 */
int rtc_create(struct vm *vm);
int i8042_create(struct vm *vm);          /* also port 0x92 */
int debug_exit_create(struct vm *vm);
int port_sinks_create(struct vm *vm);     /* 0x80, 0xed */

/* ---- console: the host side of the serial line ----
 * in_fd: a TTY is put in raw mode (restored by console_restore, atexit and
 * console_free) and gets the escape keys: Ctrl-A x stops the VM
 * (VM_STOP_HOST), Ctrl-A s requests a suspend (console_take_request),
 * Ctrl-A Ctrl-A sends Ctrl-A, Ctrl-A h prints the help. A pipe or socket
 * passes bytes through; EOF just ends input. A regular file is read as the
 * guest consumes it. in_fd/out_fd -1: no input / output dropped. The
 * console never closes the fds. */
int console_new(struct vm *vm, int in_fd, int out_fd, struct console **ret);
void console_free(struct console *con);
/* Writes guest output (blocking). A reader that went away (EPIPE, never a
 * SIGPIPE) stops the VM with VM_STOP_HOST, status 128 + SIGPIPE; other
 * write errors drop the output. */
void console_write(struct console *con, const void *buf, size_t n);
/* Takes up to n buffered input bytes; returns how many (0: none now). */
size_t console_read(struct console *con, void *buf, size_t n);
/* cb(opaque) runs on the evloop thread whenever new input is buffered. */
void console_set_notify(struct console *con, void (*cb)(void *opaque), void *opaque);
/* Restores the terminal (idempotent; any thread). */
void console_restore(struct console *con);
/* Restores every terminal a console put in raw mode. Async-signal-safe:
 * signal handlers call this (cmd_boot's SIGINT/SIGTERM handlers). */
void console_restore_tty(void);
/* Returns a pending escape request once ('s': suspend), else 0. */
int console_take_request(struct console *con);
#endif
