/* Lazy restore of guest RAM with userfaultfd (lazymem.h). */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "checkpoint/lazymem.h"
#include "monitor/evloop.h"
#include "monitor/guest_mem.h"

enum { CHUNK_MISSING, CHUNK_DONE };

struct ckpt_lazy {
	struct store *s;              /* own read-only handle */
	struct store_tree *t;
	uint8_t *ram;
	uint64_t size, chunk, nchunks;
	int uffd, stopfd;
	_Atomic uint8_t *state;       /* per chunk */
	uint8_t *hbuf, *fbuf;         /* one chunk each: handler, fetcher */
	pthread_t handler, fetcher;
	bool handler_started, fetcher_started;
	pthread_mutex_t lock;         /* registered, finish/free */
	bool registered;
	_Atomic bool stop;
	_Atomic uint64_t faults, chunks, done_ns;
	_Atomic int error;
	uint64_t t0;
	ckpt_lazy_fail_cb fail;
	void *fail_arg;
};

static uint64_t chunk_len(const struct ckpt_lazy *l, uint64_t c)
{
	uint64_t off = c * l->chunk;
	return l->size - off < l->chunk ? l->size - off : l->chunk;
}

static void wake_range(struct ckpt_lazy *l, uint64_t off, uint64_t len)
{
	struct uffdio_range r = { .start = (uintptr_t)(l->ram + off), .len = len };
	ioctl(l->uffd, UFFDIO_WAKE, &r);   /* nothing to do if it fails: no waiter */
}

/* Places len bytes of src at RAM offset off (page by page where some pages
 * exist already) and wakes threads waiting there. src NULL: zeros. */
static void place(struct ckpt_lazy *l, const uint8_t *src, uint64_t off, uint64_t len)
{
	if (src) {
		struct uffdio_copy cp = { .dst = (uintptr_t)(l->ram + off), .src = (uintptr_t)src, .len = len };
		if (ioctl(l->uffd, UFFDIO_COPY, &cp) == 0)
			return;
	} else {
		struct uffdio_zeropage z = { .range = { (uintptr_t)(l->ram + off), len } };
		if (ioctl(l->uffd, UFFDIO_ZEROPAGE, &z) == 0)
			return;
	}
	/* Part of the range exists (the other thread, or -EAGAIN while the
	 * mapping changes): page by page; a page that exists is right. */
	static const uint8_t zeros[GMEM_PAGE];
	for (uint64_t p = 0; p < len; p += GMEM_PAGE) {
		struct uffdio_copy cp = { .dst = (uintptr_t)(l->ram + off + p),
					  .src = (uintptr_t)(src ? src + p : zeros), .len = GMEM_PAGE };
		while (ioctl(l->uffd, UFFDIO_COPY, &cp) < 0 && errno == EAGAIN)
			cp.copy = 0;
	}
	wake_range(l, off, len);
}

static void failed(struct ckpt_lazy *l, uint64_t c, int err)
{
	int none = 0;
	if (!atomic_compare_exchange_strong(&l->error, &none, err))
		return;
	char msg[400];
	snprintf(msg, sizeof(msg), "cannot load memory chunk %llu: %s",
		 (unsigned long long)c, err == -EBADMSG || err == -ENOENT ? store_last_error() : strerror(-err));
	if (l->fail)
		l->fail(l->fail_arg, err, msg);
}

/* Loads chunk c (buf: one chunk). zero_too: place zero chunks as well (a
 * fault in one); the fetcher leaves them as holes. */
static void load_chunk(struct ckpt_lazy *l, uint64_t c, uint8_t *buf, bool zero_too)
{
	if (atomic_load(&l->state[c]) == CHUNK_DONE) {
		wake_range(l, c * l->chunk, chunk_len(l, c));
		return;
	}
	uint64_t off = c * l->chunk, len = chunk_len(l, c);
	struct store_hash h;
	int rc = store_tree_chunk_hash(l->t, c, &h);
	if (rc == 0 && store_hash_is_zero(&h)) {
		if (zero_too) {
			place(l, NULL, off, len);
			atomic_store(&l->state[c], CHUNK_DONE);
		}
		return;
	}
	if (rc == 0) {
		ssize_t n = store_tree_read(l->t, buf, len, off);
		rc = n < 0 ? (int)n : (uint64_t)n != len ? -EIO : 0;
	}
	if (rc < 0) {
		failed(l, c, rc);
		/* The faulting thread must return; the guest is being stopped
		 * and nothing of it will be saved. */
		place(l, NULL, off, len);
		atomic_store(&l->state[c], CHUNK_DONE);
		return;
	}
	place(l, buf, off, len);
	atomic_store(&l->state[c], CHUNK_DONE);
	atomic_fetch_add(&l->chunks, 1);
}

static void unregister(struct ckpt_lazy *l)
{
	pthread_mutex_lock(&l->lock);
	if (l->registered) {
		struct uffdio_range r = { .start = (uintptr_t)l->ram, .len = l->size };
		ioctl(l->uffd, UFFDIO_UNREGISTER, &r);   /* fails only if already gone */
		l->registered = false;
	}
	pthread_mutex_unlock(&l->lock);
}

static void *handler_main(void *arg)
{
	struct ckpt_lazy *l = arg;
	struct pollfd p[2] = { { l->uffd, POLLIN, 0 }, { l->stopfd, POLLIN, 0 } };
	while (!atomic_load(&l->stop)) {
		if (poll(p, 2, -1) < 0)
			continue;
		if (p[1].revents)
			break;
		struct uffd_msg msg[16];
		ssize_t n = read(l->uffd, msg, sizeof(msg));
		if (n <= 0)
			continue;
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(msg[0]); i++) {
			if (msg[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			uint64_t addr = msg[i].arg.pagefault.address;
			if (addr < (uintptr_t)l->ram || addr >= (uintptr_t)l->ram + l->size)
				continue;
			atomic_fetch_add(&l->faults, 1);
			load_chunk(l, (addr - (uintptr_t)l->ram) / l->chunk, l->hbuf, true);
		}
	}
	return NULL;
}

static void *fetcher_main(void *arg)
{
	struct ckpt_lazy *l = arg;
	for (uint64_t c = 0; c < l->nchunks && !atomic_load(&l->stop); c++)
		load_chunk(l, c, l->fbuf, false);
	if (!atomic_load(&l->stop)) {
		/* Everything non-zero is in place: RAM is ordinary memory now
		 * (holes left are zero chunks, as they should read). */
		unregister(l);
		/* The page cache this read filled is shared with the VM's saves. */
		store_release_cache(l->s);
		atomic_store(&l->done_ns, now_ns() - l->t0);
	}
	return NULL;
}

int ckpt_lazy_start(const char *store_path, const struct store_hash *root, struct guest_mem *m,
		    ckpt_lazy_fail_cb fail, void *fail_arg, struct ckpt_lazy **ret)
{
	struct ckpt_lazy *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->uffd = l->stopfd = -1;
	l->ram = gmem_base(m);
	l->size = gmem_size(m);
	l->fail = fail;
	l->fail_arg = fail_arg;
	l->t0 = now_ns();
	pthread_mutex_init(&l->lock, NULL);
	int rc = store_open(store_path, STORE_OPEN_RDONLY, &l->s);
	if (rc == 0)
		rc = store_tree_open(l->s, root, &l->t);
	if (rc < 0)
		goto err;
	l->chunk = store_tree_chunk_size(l->t);
	if (store_tree_size(l->t) != l->size || !l->chunk || l->chunk % GMEM_PAGE) {
		rc = -EINVAL;
		goto err;
	}
	l->nchunks = (l->size + l->chunk - 1) / l->chunk;
	l->state = calloc(l->nchunks, sizeof(*l->state));
	l->hbuf = malloc(l->chunk);
	l->fbuf = malloc(l->chunk);
	if (!l->state || !l->hbuf || !l->fbuf) {
		rc = -ENOMEM;
		goto err;
	}
	l->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (l->uffd < 0) {
		rc = -errno;
		goto err;
	}
	struct uffdio_api api = { .api = UFFD_API };
	if (ioctl(l->uffd, UFFDIO_API, &api) < 0) {
		rc = -errno;
		goto err;
	}
	struct uffdio_register reg = { .range = { (uintptr_t)l->ram, l->size },
				       .mode = UFFDIO_REGISTER_MODE_MISSING };
	if (ioctl(l->uffd, UFFDIO_REGISTER, &reg) < 0) {
		rc = -errno;
		goto err;
	}
	l->registered = true;
	if (!(reg.ioctls & (1ULL << _UFFDIO_COPY)) || !(reg.ioctls & (1ULL << _UFFDIO_WAKE))) {
		rc = -EINVAL;
		goto err;
	}
	l->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->stopfd < 0) {
		rc = -errno;
		goto err;
	}
	if ((rc = pthread_create(&l->handler, NULL, handler_main, l)) != 0) {
		rc = -rc;
		goto err;
	}
	l->handler_started = true;
	if ((rc = pthread_create(&l->fetcher, NULL, fetcher_main, l)) != 0) {
		rc = -rc;
		goto err;
	}
	l->fetcher_started = true;
	*ret = l;
	return 0;
err:
	ckpt_lazy_free(l);
	return rc;
}

int ckpt_lazy_finish(struct ckpt_lazy *l)
{
	pthread_mutex_lock(&l->lock);
	bool join = l->fetcher_started;
	l->fetcher_started = false;
	pthread_mutex_unlock(&l->lock);
	if (join)
		pthread_join(l->fetcher, NULL);
	unregister(l);
	return atomic_load(&l->error);
}

void ckpt_lazy_get_stats(struct ckpt_lazy *l, struct ckpt_lazy_stats *ret)
{
	*ret = (struct ckpt_lazy_stats){ atomic_load(&l->faults), atomic_load(&l->chunks),
					 atomic_load(&l->done_ns), atomic_load(&l->error) };
}

void ckpt_lazy_free(struct ckpt_lazy *l)
{
	if (!l)
		return;
	atomic_store(&l->stop, true);
	if (l->fetcher_started)
		pthread_join(l->fetcher, NULL);
	/* Wakes any thread still waiting on a fault (it then sees zeros). */
	unregister(l);
	if (l->handler_started) {
		uint64_t one = 1;
		if (write(l->stopfd, &one, sizeof(one)) < 0) {
			/* an eventfd write fails only on overflow; the stop flag
			 * and the next poll wake-up end the thread anyway */
		}
		pthread_join(l->handler, NULL);
	}
	if (l->uffd >= 0)
		close(l->uffd);
	if (l->stopfd >= 0)
		close(l->stopfd);
	store_tree_free(l->t);
	store_free(l->s);
	free(l->state);
	free(l->hbuf);
	free(l->fbuf);
	pthread_mutex_destroy(&l->lock);
	free(l);
}
