/* The VM's event loop: one host thread running epoll over device backend
 * fds, the control socket, and one-shot timers on CLOCK_MONOTONIC. Devices
 * (PIT, RTC, LAPIC timers, UART input) use it instead of their own threads.
 * Callbacks run on the loop thread; they take their device's lock. */
#ifndef ROAM_EVLOOP_H
#define ROAM_EVLOOP_H
#include <stdint.h>

struct evloop;
struct ev_timer;

typedef void (*ev_fd_cb)(void *opaque, int fd, uint32_t events);
typedef void (*ev_timer_cb)(void *opaque);

int evloop_new(struct evloop **ret);
void evloop_free(struct evloop *ev);          /* stops the thread first */
int evloop_start(struct evloop *ev);          /* spawns the loop thread */
void evloop_stop(struct evloop *ev);          /* joins it */

/* events: EPOLLIN etc. Returns 0 or -errno. */
int evloop_add_fd(struct evloop *ev, int fd, uint32_t events, ev_fd_cb cb, void *opaque);
int evloop_del_fd(struct evloop *ev, int fd);

/* Timers are created once and armed many times (thread-safe). Free a timer
 * only after evloop_stop, or from the loop thread itself. */
int ev_timer_new(struct evloop *ev, ev_timer_cb cb, void *opaque, struct ev_timer **ret);
void ev_timer_free(struct ev_timer *t);
void ev_timer_arm(struct ev_timer *t, uint64_t deadline_ns);  /* absolute, now_ns() clock */
void ev_timer_cancel(struct ev_timer *t);

uint64_t now_ns(void);                        /* CLOCK_MONOTONIC in ns */
#endif
