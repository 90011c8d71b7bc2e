/* The VM event loop: epoll over registered fds, one timerfd programmed to
 * the earliest armed ev_timer, and an eventfd to wake the loop when timers
 * change or it must stop. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include "monitor/evloop.h"

struct ev_fd {
	int fd;
	ev_fd_cb cb;
	void *opaque;
	struct ev_fd *next;
};

struct ev_timer {
	struct evloop *ev;
	ev_timer_cb cb;
	void *opaque;
	uint64_t deadline;
	bool armed;
	struct ev_timer *next;
};

struct evloop {
	int epfd, tfd, efd;
	pthread_t thread;
	bool running, stopping;
	pthread_mutex_t lock;
	struct ev_timer *timers;
	struct ev_fd *fds;
	uint64_t programmed;    /* deadline the timerfd holds, 0 = none */
};

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int evloop_new(struct evloop **ret)
{
	struct evloop *ev = calloc(1, sizeof(*ev));
	if (!ev)
		return -ENOMEM;
	ev->tfd = ev->efd = -1;
	pthread_mutex_init(&ev->lock, NULL);
	ev->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (ev->epfd < 0)
		goto err;
	ev->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	ev->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ev->tfd < 0 || ev->efd < 0)
		goto err;
	struct epoll_event e = { .events = EPOLLIN, .data.ptr = NULL };
	if (epoll_ctl(ev->epfd, EPOLL_CTL_ADD, ev->tfd, &e) < 0)
		goto err;
	e.data.ptr = ev;        /* marks the eventfd */
	if (epoll_ctl(ev->epfd, EPOLL_CTL_ADD, ev->efd, &e) < 0)
		goto err;
	*ret = ev;
	return 0;
err: {
	int rc = -errno;
	evloop_free(ev);
	return rc;
	}
}

void evloop_free(struct evloop *ev)
{
	if (!ev)
		return;
	evloop_stop(ev);
	while (ev->fds) {
		struct ev_fd *f = ev->fds;
		ev->fds = f->next;
		free(f);
	}
	if (ev->epfd >= 0)
		close(ev->epfd);
	if (ev->tfd >= 0)
		close(ev->tfd);
	if (ev->efd >= 0)
		close(ev->efd);
	pthread_mutex_destroy(&ev->lock);
	free(ev);
}

static void wake(struct evloop *ev)
{
	uint64_t one = 1;
	if (write(ev->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		abort();        /* an eventfd write only fails on overflow */
}

/* Programs the timerfd for the earliest armed timer. Lock held. */
static void reprogram(struct evloop *ev)
{
	uint64_t first = 0;
	for (struct ev_timer *t = ev->timers; t; t = t->next)
		if (t->armed && (!first || t->deadline < first))
			first = t->deadline;
	if (first == ev->programmed)
		return;
	ev->programmed = first;
	struct itimerspec its = { 0 };
	if (first) {
		its.it_value.tv_sec = (time_t)(first / 1000000000ULL);
		its.it_value.tv_nsec = (long)(first % 1000000000ULL);
		if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
			its.it_value.tv_nsec = 1;
	}
	timerfd_settime(ev->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void run_timers(struct evloop *ev)
{
	uint64_t buf;
	while (read(ev->tfd, &buf, sizeof(buf)) > 0)
		;
	for (;;) {
		uint64_t now = now_ns();
		struct ev_timer *due = NULL;
		pthread_mutex_lock(&ev->lock);
		for (struct ev_timer *t = ev->timers; t; t = t->next)
			if (t->armed && t->deadline <= now && (!due || t->deadline < due->deadline))
				due = t;
		if (due)
			due->armed = false;
		else {
			ev->programmed = (uint64_t)-1;  /* force a reprogram */
			reprogram(ev);
		}
		pthread_mutex_unlock(&ev->lock);
		if (!due)
			return;
		due->cb(due->opaque);
	}
}

static void *loop(void *arg)
{
	struct evloop *ev = arg;
	struct epoll_event evs[16];
	for (;;) {
		int n = epoll_wait(ev->epfd, evs, 16, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL) {
				run_timers(ev);
			} else if (evs[i].data.ptr == ev) {
				uint64_t v;
				while (read(ev->efd, &v, sizeof(v)) > 0)
					;
				pthread_mutex_lock(&ev->lock);
				bool stop = ev->stopping;
				reprogram(ev);
				pthread_mutex_unlock(&ev->lock);
				if (stop)
					return NULL;
			} else {
				struct ev_fd *f = evs[i].data.ptr;
				f->cb(f->opaque, f->fd, evs[i].events);
			}
		}
	}
	return NULL;
}

int evloop_start(struct evloop *ev)
{
	ev->stopping = false;
	int rc = pthread_create(&ev->thread, NULL, loop, ev);
	if (rc)
		return -rc;
	ev->running = true;
	return 0;
}

void evloop_stop(struct evloop *ev)
{
	if (!ev->running)
		return;
	pthread_mutex_lock(&ev->lock);
	ev->stopping = true;
	pthread_mutex_unlock(&ev->lock);
	wake(ev);
	pthread_join(ev->thread, NULL);
	ev->running = false;
}

int evloop_add_fd(struct evloop *ev, int fd, uint32_t events, ev_fd_cb cb, void *opaque)
{
	struct ev_fd *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	*f = (struct ev_fd){ fd, cb, opaque, NULL };
	struct epoll_event e = { .events = events, .data.ptr = f };
	if (epoll_ctl(ev->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
		int rc = -errno;
		free(f);
		return rc;
	}
	pthread_mutex_lock(&ev->lock);
	f->next = ev->fds;
	ev->fds = f;
	pthread_mutex_unlock(&ev->lock);
	return 0;
}

int evloop_del_fd(struct evloop *ev, int fd)
{
	pthread_mutex_lock(&ev->lock);
	struct ev_fd **pp = &ev->fds;
	while (*pp && (*pp)->fd != fd)
		pp = &(*pp)->next;
	struct ev_fd *f = *pp;
	if (f)
		*pp = f->next;
	pthread_mutex_unlock(&ev->lock);
	if (!f)
		return -ENOENT;
	epoll_ctl(ev->epfd, EPOLL_CTL_DEL, fd, NULL);
	free(f);
	return 0;
}

int ev_timer_new(struct evloop *ev, ev_timer_cb cb, void *opaque, struct ev_timer **ret)
{
	struct ev_timer *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->ev = ev;
	t->cb = cb;
	t->opaque = opaque;
	pthread_mutex_lock(&ev->lock);
	t->next = ev->timers;
	ev->timers = t;
	pthread_mutex_unlock(&ev->lock);
	*ret = t;
	return 0;
}

void ev_timer_free(struct ev_timer *t)
{
	if (!t)
		return;
	struct evloop *ev = t->ev;
	pthread_mutex_lock(&ev->lock);
	for (struct ev_timer **pp = &ev->timers; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	pthread_mutex_unlock(&ev->lock);
	free(t);
}

void ev_timer_arm(struct ev_timer *t, uint64_t deadline_ns)
{
	struct evloop *ev = t->ev;
	pthread_mutex_lock(&ev->lock);
	t->deadline = deadline_ns ? deadline_ns : 1;
	t->armed = true;
	bool earlier = !ev->programmed || t->deadline < ev->programmed;
	pthread_mutex_unlock(&ev->lock);
	if (earlier)
		wake(ev);
}

void ev_timer_cancel(struct ev_timer *t)
{
	pthread_mutex_lock(&t->ev->lock);
	t->armed = false;
	pthread_mutex_unlock(&t->ev->lock);
}
