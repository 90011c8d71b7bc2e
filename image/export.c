/* Export of a tree into a file: the calling thread walks the chunks in order
 * and hands them out in jobs of about 1 MiB; one worker per CPU (at least
 * two), each with its own read-only SQLite connection, fetches, decompresses
 * and re-hashes a job's chunks into its buffer and writes each run of
 * adjacent ones with one call. Zero chunks become holes in a regular file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "image/store_int.h"

#define NSLOTS 16
#define JOB_BYTES (1u << 20)
#define JOB_CHUNKS 64        /* at most, for small chunk sizes */

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
	unsigned per_job;          /* chunks per job */
	struct xjob jobs[NSLOTS];
	pthread_mutex_t m;
	pthread_cond_t cv;
	bool done, stop;
	int err;
	char errmsg[512];
};

struct xworker {
	struct xport *x;
	sqlite3 *db;
	sqlite3_stmt *get;
	uint8_t *buf;              /* per_job chunks */
};

static int wrong_size(const struct store_hash *h)
{
	char hex[STORE_HASH_HEX];
	store_hex(h, hex);
	return store_err(EBADMSG, "chunk %s has the wrong size for its tree; run 'roam verify'",
			 hex);
}

/* Reads one chunk of want bytes through the worker's own connection (the
 * store's shared one when that could not be opened) and decodes it into
 * dst. */
static int fetch(struct xworker *w, const struct store_hash *h, void *dst, uint64_t want)
{
	if (!w->get) {
		struct store_raw raw;
		int r = store_get_raw(w->x->s, h, &raw);
		if (r)
			return r;
		r = raw.info.size != want ? wrong_size(h) :
			store_decode_into(w->x->s, h, raw.info.codec, want, raw.data,
					  raw.info.stored_size, dst);
		store_raw_release(&raw);
		return r;
	}
	sqlite3_bind_blob(w->get, 1, h->b, STORE_HASH_LEN, SQLITE_STATIC);
	int rc = sqlite3_step(w->get), r;
	if (rc == SQLITE_ROW) {
		const void *p = sqlite3_column_blob(w->get, 2);
		size_t n = (size_t)sqlite3_column_bytes(w->get, 2);
		r = (uint64_t)sqlite3_column_int64(w->get, 1) != want ? wrong_size(h) :
			store_decode_into(w->x->s, h, sqlite3_column_int(w->get, 0), want, p, n,
					  dst);
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

/* Decodes a job's chunks into the worker's buffer (chunk i at i * chunk)
 * and writes each run of adjacent chunks with one call. */
static int write_job(struct xworker *w, struct xjob *j)
{
	struct xport *x = w->x;
	int r = 0;
	unsigned run = 0;   /* first chunk of the current run */
	/* One read transaction for the job, not one per chunk. */
	bool txn = w->get && sqlite3_exec(w->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
	for (unsigned i = 0; i < j->n && !r; i++) {
		uint64_t off = j->idx[i] * x->chunk;
		uint64_t want = x->size - off < x->chunk ? x->size - off : x->chunk;
		if ((r = fetch(w, &j->h[i], w->buf + (size_t)i * x->chunk, want)))
			break;
		if (i + 1 == j->n || j->idx[i + 1] != j->idx[i] + 1) {
			uint64_t start = j->idx[run] * x->chunk;
			r = write_full(x->fd, w->buf + (size_t)run * x->chunk,
				       (size_t)(off + want - start), start);
			run = i + 1;
		}
	}
	if (txn && sqlite3_exec(w->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
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
	uint64_t nchunks = (x->size + x->chunk - 1) / x->chunk, last = store_now_ms();
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
		if (++n == x->per_job) {
			submit(x, j, n);
			j = NULL;
			n = 0;
		}
		if (progress && progress->fn && store_now_ms() - last >= 100) {
			last = store_now_ms();
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
	x->per_job = JOB_BYTES / x->chunk;
	x->per_job = x->per_job < 1 ? 1 : x->per_job > JOB_CHUNKS ? JOB_CHUNKS : x->per_job;
	int nworkers = store_nworkers();
	pthread_mutex_init(&x->m, NULL);
	pthread_cond_init(&x->cv, NULL);
	pthread_t th[STORE_MAX_WORKERS];
	struct xworker w[STORE_MAX_WORKERS];
	int started = 0;
	for (int i = 0; i < nworkers; i++)
		w[i] = (struct xworker){ .x = x };
	if (sparse && (ftruncate(fd, 0) || ftruncate(fd, (off_t)x->size))) {
		r = store_err(errno, "cannot size the output file: %s", strerror(errno));
		goto out;
	}
	for (int i = 0; i < nworkers; i++) {
		if (!(w[i].buf = malloc((size_t)x->per_job * x->chunk))) {
			r = store_err(ENOMEM, "out of memory");
			goto out;
		}
		if (sqlite3_open_v2(s->db_path, &w[i].db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
				    NULL) != SQLITE_OK ||
		    sqlite3_prepare_v2(w[i].db, "SELECT codec, size, data FROM objects WHERE hash=?",
				       -1, &w[i].get, NULL) != SQLITE_OK) {
			sqlite3_finalize(w[i].get);
			w[i].get = NULL;
		}
	}
	for (; started < nworkers; started++)
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
	for (int i = 0; i < nworkers; i++) {
		sqlite3_finalize(w[i].get);
		sqlite3_close(w[i].db);
		free(w[i].buf);
	}
	pthread_cond_destroy(&x->cv);
	pthread_mutex_destroy(&x->m);
	free(x);
	store_tree_free(t);
	return r;
}
