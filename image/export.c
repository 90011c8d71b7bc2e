/* Export of a tree into a file: the calling thread walks the chunks in order;
 * two workers, each with its own read-only SQLite connection, fetch,
 * decompress, re-hash and pwrite them at their offsets. Zero chunks become
 * holes in a regular file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "image/store_int.h"

#define NSLOTS 8
#define NWORKERS 2
#define JOB_CHUNKS 16

enum { J_FREE, J_FILLING, J_READY, J_TAKEN };

struct xjob {
	int state;
	unsigned n;
	uint64_t idx[JOB_CHUNKS];
	struct store_hash h[JOB_CHUNKS];
};

struct xport {
	struct store *s;
	int fd;
	uint64_t size;
	uint32_t chunk;
	struct xjob jobs[NSLOTS];
	pthread_mutex_t m;
	pthread_cond_t cv;
	bool done, stop;
	int err;
	char errmsg[512];
};

static int write_full(int fd, const uint8_t *p, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return store_err(n < 0 ? errno : EIO, "cannot write the output at offset "
					 "%llu: %s", (unsigned long long)off,
					 strerror(n < 0 ? errno : EIO));
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

struct xworker {
	struct xport *x;
	sqlite3 *db;
	sqlite3_stmt *get;
};

/* Reads and decodes one chunk through the worker's own connection (the
 * store's shared one when that could not be opened). */
static int fetch(struct xworker *w, const struct store_hash *h, void **ret, uint64_t *ret_size)
{
	if (!w->get) {
		struct store_raw raw;
		int r = store_get_raw(w->x->s, h, &raw);
		if (r)
			return r;
		*ret_size = raw.info.size;
		r = store_decode(w->x->s, h, raw.info.codec, raw.info.size, raw.data,
				 raw.info.stored_size, ret);
		store_raw_release(&raw);
		return r;
	}
	sqlite3_bind_blob(w->get, 1, h->b, STORE_HASH_LEN, SQLITE_STATIC);
	int rc = sqlite3_step(w->get), r;
	if (rc == SQLITE_ROW) {
		*ret_size = (uint64_t)sqlite3_column_int64(w->get, 1);
		const void *p = sqlite3_column_blob(w->get, 2);
		size_t n = (size_t)sqlite3_column_bytes(w->get, 2);
		r = store_decode(w->x->s, h, sqlite3_column_int(w->get, 0), *ret_size, p, n, ret);
	} else {
		char hex[STORE_HASH_HEX];
		store_hex(h, hex);
		r = rc == SQLITE_DONE ? store_err(ENOENT, "chunk %s is not in the store; run "
						  "'roam verify'", hex)
				      : store_err(EIO, "reading chunk %s: %s", hex,
						  sqlite3_errmsg(w->db));
	}
	sqlite3_reset(w->get);
	return r;
}

static int write_job(struct xworker *w, struct xjob *j)
{
	struct xport *x = w->x;
	for (unsigned i = 0; i < j->n; i++) {
		uint64_t off = j->idx[i] * x->chunk;
		uint64_t want = x->size - off < x->chunk ? x->size - off : x->chunk;
		void *data;
		uint64_t size = 0;
		int r = fetch(w, &j->h[i], &data, &size);
		if (r)
			return r;
		if (size != want) {
			free(data);
			char hex[STORE_HASH_HEX];
			store_hex(&j->h[i], hex);
			return store_err(EBADMSG, "chunk %s has the wrong size for its tree; run "
					 "'roam verify'", hex);
		}
		r = write_full(x->fd, data, (size_t)want, off);
		free(data);
		if (r)
			return r;
	}
	return 0;
}

static void *xworker(void *arg)
{
	struct xworker *w = arg;
	struct xport *x = w->x;
	for (;;) {
		pthread_mutex_lock(&x->m);
		struct xjob *j = NULL;
		while (!x->stop) {
			for (int i = 0; i < NSLOTS && !j; i++)
				if (x->jobs[i].state == J_READY)
					j = &x->jobs[i];
			if (j || x->done)
				break;
			pthread_cond_wait(&x->cv, &x->m);
		}
		if (!j) {
			pthread_mutex_unlock(&x->m);
			return NULL;
		}
		j->state = J_TAKEN;
		pthread_mutex_unlock(&x->m);
		int r = write_job(w, j);
		pthread_mutex_lock(&x->m);
		j->n = 0;
		j->state = J_FREE;
		if (r && !x->err) {
			x->err = r;
			snprintf(x->errmsg, sizeof(x->errmsg), "%s", store_last_error());
			x->stop = true;
		}
		pthread_cond_broadcast(&x->cv);
		pthread_mutex_unlock(&x->m);
	}
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waits for a free job slot; NULL when stopping. */
static struct xjob *free_job(struct xport *x)
{
	pthread_mutex_lock(&x->m);
	struct xjob *j = NULL;
	while (!x->stop && !j) {
		for (int i = 0; i < NSLOTS && !j; i++)
			if (x->jobs[i].state == J_FREE)
				j = &x->jobs[i];
		if (!j)
			pthread_cond_wait(&x->cv, &x->m);
	}
	if (j) {
		j->state = J_FILLING;
		j->n = 0;
	}
	pthread_mutex_unlock(&x->m);
	return j;
}

static void submit(struct xport *x, struct xjob *j, unsigned n)
{
	pthread_mutex_lock(&x->m);
	j->n = n;
	j->state = n ? J_READY : J_FREE;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->m);
}

static int produce(struct xport *x, struct store_tree *t, bool sparse,
		   const struct store_progress *progress)
{
	uint64_t nchunks = (x->size + x->chunk - 1) / x->chunk, last = now_ms();
	uint8_t *zeros = NULL;
	struct xjob *j = NULL;
	unsigned n = 0;
	int r = 0;
	for (uint64_t c = 0; c < nchunks && !r; c++) {
		struct store_hash h;
		if ((r = store_tree_chunk_hash(t, c, &h)))
			break;
		if (store_hash_is_zero(&h)) {
			if (sparse)
				continue;
			uint64_t off = c * x->chunk;
			size_t len = x->size - off < x->chunk ? (size_t)(x->size - off) : x->chunk;
			if (!zeros && !(zeros = calloc(1, x->chunk))) {
				r = store_err(ENOMEM, "out of memory");
				break;
			}
			r = write_full(x->fd, zeros, len, off);
			continue;
		}
		if (!j && !(j = free_job(x)))
			break;
		j->idx[n] = c;
		j->h[n] = h;
		if (++n == JOB_CHUNKS) {
			submit(x, j, n);
			j = NULL;
			n = 0;
		}
		if (progress && progress->fn && now_ms() - last >= 100) {
			last = now_ms();
			progress->fn(progress->arg, c * x->chunk, x->size, c);
		}
	}
	if (j)
		submit(x, j, r ? 0 : n);
	free(zeros);
	return r;
}

int store_export_fd(struct store *s, const struct store_hash *root, int fd,
		    const struct store_progress *progress)
{
	struct store_tree *t;
	int r = store_tree_open(s, root, &t);
	if (r)
		return r;
	struct stat sb;
	if (fstat(fd, &sb)) {
		store_tree_free(t);
		return store_err(errno, "cannot stat the output: %s", strerror(errno));
	}
	bool sparse = S_ISREG(sb.st_mode);
	struct xport *x = calloc(1, sizeof(*x));
	if (!x) {
		store_tree_free(t);
		return store_err(ENOMEM, "out of memory");
	}
	x->s = s;
	x->fd = fd;
	x->size = store_tree_size(t);
	x->chunk = store_tree_chunk_size(t);   /* the tree's, not the store's */
	pthread_mutex_init(&x->m, NULL);
	pthread_cond_init(&x->cv, NULL);
	pthread_t th[NWORKERS];
	struct xworker w[NWORKERS];
	int started = 0;
	for (int i = 0; i < NWORKERS; i++)
		w[i] = (struct xworker){ .x = x };
	if (sparse && (ftruncate(fd, 0) || ftruncate(fd, (off_t)x->size))) {
		r = store_err(errno, "cannot size the output file: %s", strerror(errno));
		goto out;
	}
	for (int i = 0; i < NWORKERS; i++) {
		if (sqlite3_open_v2(s->db_path, &w[i].db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
				    NULL) != SQLITE_OK ||
		    sqlite3_prepare_v2(w[i].db, "SELECT codec, size, data FROM objects WHERE hash=?",
				       -1, &w[i].get, NULL) != SQLITE_OK) {
			sqlite3_finalize(w[i].get);
			w[i].get = NULL;
		}
	}
	for (; started < NWORKERS; started++)
		if (pthread_create(&th[started], NULL, xworker, &w[started]))
			break;
	if (!started) {
		r = store_err(EAGAIN, "cannot start export threads");
		goto out;
	}
	r = produce(x, t, sparse, progress);
	pthread_mutex_lock(&x->m);
	x->done = true;
	if (r)
		x->stop = true;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->m);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	if (!r && x->err)
		r = store_err(-x->err, "%s", x->errmsg);
	if (!r && sparse && fsync(fd) && errno != EINVAL)
		r = store_err(errno, "cannot flush the output: %s", strerror(errno));
	if (!r && progress && progress->fn)
		progress->fn(progress->arg, x->size, x->size, 0);
out:
	for (int i = 0; i < NWORKERS; i++) {
		sqlite3_finalize(w[i].get);
		sqlite3_close(w[i].db);
	}
	pthread_cond_destroy(&x->cv);
	pthread_mutex_destroy(&x->m);
	free(x);
	store_tree_free(t);
	return r;
}
