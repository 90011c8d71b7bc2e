/* Streaming import of a file into a tree: one reader thread (skipping holes
 * with SEEK_DATA/SEEK_HOLE), one worker per CPU (at least two) that detects
 * zero chunks, hashes, looks for existing copies and compresses, and the
 * calling thread as the only SQLite writer, storing chunks in file order
 * and building the tree as it goes. Jobs of about 1 MiB pass through NSLOTS
 * slots, so memory stays bounded whatever the file size. The similar
 * variant also lets workers store a chunk as a delta against earlier ones. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "image/store_int.h"

#define NSLOTS 8
#define JOB_BYTES (1u << 20)
#define TXN_BYTES (16ull << 20)   /* stored bytes per write transaction */
#define WAL_BYTES (256ull << 20) /* WAL size at which the writer lets it restart */

enum { SLOT_FREE, SLOT_FILLED, SLOT_WORKING, SLOT_DONE };
enum { C_ZERO = 1, C_EXISTS = 2, C_NEW = 3 };

struct slot {
	int state;
	int err;
	uint64_t seq, first;
	unsigned n;
	uint8_t *in;                       /* n chunks */
	size_t *len;
	uint8_t *what;                     /* C_* per chunk; reader sets 1 for holes */
	struct store_hash *h;
	uint8_t *out;                      /* compressed chunks, back to back */
	size_t *out_off, *out_len;
	uint8_t *codec;
};

struct import {
	struct store *s;
	int fd;
	uint64_t size, nchunks;
	uint32_t chunk;
	unsigned per_job;
	uint64_t njobs;
	struct slot slots[NSLOTS];
	pthread_mutex_t m;
	/* One condition per waiter, so that a state change wakes only the
	 * threads it concerns: the reader waits for a free slot, workers for a
	 * filled one, the writer for a done one. */
	pthread_cond_t cv_free, cv_filled, cv_done;
	bool stop;
	int err;
	char errmsg[512];
	uint64_t next_work;                /* lowest job seq not yet taken by a worker */
	struct sim_index *sim;             /* store_import_similar_fd only */
	/* Checkpointer: copies the WAL into the database (and fsyncs) on its
	 * own connection, so the writer never waits for the disk. */
	sqlite3 *ckdb;
	pthread_cond_t ckcv;
	uint64_t commits;         /* writer transactions committed */
	uint64_t ck_started;      /* commits covered by the running/last checkpoint */
	uint64_t ck_done;         /* commits fully copied into the database */
	bool ckstop, ck_running;
};

static void *checkpointer_main(void *arg)
{
	struct import *im = arg;
	pthread_mutex_lock(&im->m);
	for (;;) {
		while (!im->ckstop && im->commits == im->ck_done &&
		       im->commits == im->ck_started)
			pthread_cond_wait(&im->ckcv, &im->m);
		if (im->ckstop)
			break;
		uint64_t upto = im->commits;
		im->ck_started = upto;
		pthread_mutex_unlock(&im->m);
		/* PASSIVE never blocks the writer; what it cannot copy now (a
		 * reader's snapshot in the way) is copied on the next round. */
		int nlog = -1, nckpt = -2;
		int rc = sqlite3_wal_checkpoint_v2(im->ckdb, NULL, SQLITE_CHECKPOINT_PASSIVE,
						   &nlog, &nckpt);
		pthread_mutex_lock(&im->m);
		if (rc == SQLITE_OK && nlog == nckpt) {
			im->ck_done = upto;
			pthread_cond_broadcast(&im->ckcv);
		} else {
			im->ck_started = upto - 1;   /* retry */
			pthread_mutex_unlock(&im->m);
			struct timespec ts = { 0, 5000000 };
			nanosleep(&ts, NULL);
			pthread_mutex_lock(&im->m);
		}
	}
	pthread_mutex_unlock(&im->m);
	return NULL;
}

static void wake_all(struct import *im)
{
	pthread_cond_broadcast(&im->cv_free);
	pthread_cond_broadcast(&im->cv_filled);
	pthread_cond_broadcast(&im->cv_done);
}

static void fail(struct import *im, int err)
{
	pthread_mutex_lock(&im->m);
	if (!im->err) {
		im->err = err;
		snprintf(im->errmsg, sizeof(im->errmsg), "%s", store_last_error());
	}
	im->stop = true;
	wake_all(im);
	pthread_mutex_unlock(&im->m);
}

/* Bytes of chunk c of the input: the chunk size but for the last one. */
static size_t chunk_len(const struct import *im, uint64_t c)
{
	uint64_t off = c * im->chunk;
	return im->size - off < im->chunk ? (size_t)(im->size - off) : im->chunk;
}

static int read_full(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pread(fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return store_err(errno, "cannot read the input at offset %llu: %s",
					 (unsigned long long)off, strerror(errno));
		if (n == 0)
			return store_err(EIO, "the input file shrank while it was being imported "
					 "(at offset %llu)", (unsigned long long)off);
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static void *reader_main(void *arg)
{
	struct import *im = arg;
	uint64_t data_start = 0, data_end = 0;   /* current data extent */
	bool seek_ok = true;
	for (uint64_t seq = 0; seq < im->njobs; seq++) {
		struct slot *sl = &im->slots[seq % NSLOTS];
		pthread_mutex_lock(&im->m);
		while (sl->state != SLOT_FREE && !im->stop)
			pthread_cond_wait(&im->cv_free, &im->m);
		bool stop = im->stop;
		pthread_mutex_unlock(&im->m);
		if (stop)
			return NULL;
		sl->seq = seq;
		sl->first = seq * im->per_job;
		sl->n = (unsigned)(im->nchunks - sl->first < im->per_job ? im->nchunks - sl->first :
				   im->per_job);
		int r = 0;
		for (unsigned i = 0; i < sl->n; i++) {
			uint64_t off = (sl->first + i) * im->chunk;
			size_t len = chunk_len(im, sl->first + i);
			sl->len[i] = len;
			sl->what[i] = 0;
			if (seek_ok && off >= data_end) {
				off_t d = lseek(im->fd, (off_t)off, SEEK_DATA);
				if (d < 0 && errno == ENXIO) {
					data_start = data_end = UINT64_MAX;   /* only holes left */
				} else if (d < 0) {
					seek_ok = false;
				} else {
					off_t e = lseek(im->fd, d, SEEK_HOLE);
					data_start = (uint64_t)d;
					data_end = e < 0 ? im->size : (uint64_t)e;
				}
			}
			if (seek_ok && data_start >= off + len)
				sl->what[i] = C_ZERO;   /* inside a hole: not read */
		}
		/* Read each run of data chunks with one call. */
		for (unsigned i = 0; i < sl->n && !r;) {
			if (sl->what[i] == C_ZERO) {
				i++;
				continue;
			}
			unsigned k = i;
			size_t len = 0;
			while (k < sl->n && sl->what[k] != C_ZERO)
				len += sl->len[k++];
			r = read_full(im->fd, sl->in + (size_t)i * im->chunk, len,
				      (sl->first + i) * im->chunk);
			i = k;
		}
		pthread_mutex_lock(&im->m);
		sl->err = r;
		sl->state = SLOT_FILLED;
		pthread_cond_signal(&im->cv_filled);
		pthread_mutex_unlock(&im->m);
		if (r) {
			fail(im, r);
			return NULL;
		}
	}
	return NULL;
}

struct worker {
	struct import *im;
	sqlite3 *db;
	sqlite3_stmt *has;
	sqlite3_stmt *get;                 /* with im->sim: reads stored bases */
	uint8_t *bases, *delta;            /* with im->sim: candidate bases, a delta */
};

/* Reads a base into buf (im->chunk bytes): an earlier chunk of the input
 * (which must not change during the import), or a plain blob of the store
 * (through the worker's own connection: the writer holds the store's). */
static int base_load(struct worker *w, const struct sim_base *b, uint8_t *buf, size_t *ret_len)
{
	struct import *im = w->im;
	if (!b->stored) {
		*ret_len = chunk_len(im, b->chunk);
		return read_full(im->fd, buf, *ret_len, b->chunk * im->chunk);
	}
	if (!w->get)
		return -ENOENT;
	sqlite3_bind_blob(w->get, 1, b->h.b, STORE_HASH_LEN, SQLITE_STATIC);
	int r = -ENOENT;
	if (sqlite3_step(w->get) == SQLITE_ROW) {
		uint64_t size = (uint64_t)sqlite3_column_int64(w->get, 1);
		int codec = sqlite3_column_int(w->get, 2);
		if (store_delta_base_ok(sqlite3_column_int(w->get, 0), size, codec) &&
		    size <= im->chunk) {
			r = store_decode_into(im->s, &b->h, codec, size, sqlite3_column_blob(w->get, 3),
					      (size_t)sqlite3_column_bytes(w->get, 3), buf);
			*ret_len = (size_t)size;
		}
	}
	sqlite3_reset(w->get);
	return r;
}

/* Indexes the stored blobs the caller offered as bases, on every worker.
 * They are not re-hashed here: only the anchors come from them, and a delta
 * is made against a base only after base_load has checked it. */
struct base_indexer {
	struct import *im;
	const struct store_hash *h;
	size_t n;
	_Atomic size_t next;
};

static void *index_bases(void *arg)
{
	struct base_indexer *bx = arg;
	uint8_t *buf = malloc(bx->im->chunk);
	for (size_t i; buf && (i = atomic_fetch_add(&bx->next, 1)) < bx->n;) {
		struct store_raw raw;
		if (store_fetch_raw(bx->im->s, &bx->h[i], &raw))
			continue;   /* a base is optional: a bad one is just not used */
		uint64_t a[SIM_MAX_ANCHORS];
		unsigned na = 0;
		if (store_delta_base_ok(raw.info.kind, raw.info.size, raw.info.codec) &&
		    raw.info.size <= bx->im->chunk && !store_delta_base_decode(bx->im->s, &raw, buf))
			na = sim_anchors(buf, (size_t)raw.info.size, a);
		store_raw_release(&raw);
		if (na)
			sim_add(bx->im->sim, a, na, &(struct sim_base){ .stored = true, .h = bx->h[i] });
	}
	free(buf);
	return NULL;
}

/* Loads into w->bases the earlier chunks of the input, or the stored
 * blobs, that share the most anchors with chunk i of the job: how many (0
 * when there are none or one cannot be read); *plen = their bytes. */
static unsigned delta_bases(struct worker *w, struct slot *sl, unsigned i, const uint64_t *a,
			    unsigned na, struct sim_base base[STORE_DELTA_BASES], size_t *plen)
{
	unsigned nb = sim_find(w->im->sim, a, na, sl->first + i, base);
	size_t n;
	*plen = 0;
	for (unsigned k = 0; k < nb; k++) {
		if (store_hash_eq(&base[k].h, &sl->h[i]) || base_load(w, &base[k], w->bases + *plen, &n))
			return 0;
		*plen += n;
	}
	return nb;
}

/* Encodes chunk i of the job into sl->out as a zstd delta against the nb
 * bases in w->bases, if that fits in cap bytes. */
static bool delta_encode(struct worker *w, struct slot *sl, unsigned i,
			 const struct sim_base *base, unsigned nb, size_t plen, size_t cap)
{
	struct store_hash h[STORE_DELTA_BASES];
	for (unsigned k = 0; k < nb; k++)
		h[k] = base[k].h;
	/* Into w->delta first: the plain encoding may be in sl->out already. */
	size_t n = store_delta_encode(w->im->s, sl->in + (size_t)i * w->im->chunk, sl->len[i],
				      w->bases, plen, h, nb, w->delta, cap);
	if (!n)
		return false;
	memcpy(sl->out + sl->out_off[i], w->delta, n);
	sl->out_len[i] = n;
	sl->codec[i] = STORE_CODEC_DELTA;
	return true;
}

static int process(struct worker *w, struct slot *sl)
{
	struct import *im = w->im;
	for (unsigned i = 0; i < sl->n; i++) {
		uint8_t *p = sl->in + (size_t)i * im->chunk;
		if (sl->what[i] == C_ZERO || store_is_zero(p, sl->len[i])) {
			sl->what[i] = C_ZERO;
			memset(&sl->h[i], 0, sizeof(sl->h[i]));
			continue;
		}
		store_hash_buf(p, sl->len[i], &sl->h[i]);
		sl->what[i] = C_NEW;
	}
	/* All of the job's lookups in one short read transaction: a reader
	 * that stays in the WAL would keep the writer from starting it over. */
	if (w->has && sqlite3_exec(w->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK) {
		for (unsigned i = 0; i < sl->n; i++) {
			if (sl->what[i] != C_NEW)
				continue;
			sqlite3_bind_blob(w->has, 1, sl->h[i].b, STORE_HASH_LEN, SQLITE_STATIC);
			if (sqlite3_step(w->has) == SQLITE_ROW)
				sl->what[i] = C_EXISTS;
			sqlite3_reset(w->has);
		}
		if (sqlite3_exec(w->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
	}
	size_t out = 0;
	for (unsigned i = 0; i < sl->n; i++) {
		if (sl->what[i] != C_NEW)
			continue;
		uint8_t *p = sl->in + (size_t)i * im->chunk;
		sl->out_off[i] = out;
		/* A delta is tried first and must take at most a quarter of the
		 * chunk (then it is not compressed plainly at all); failing that,
		 * once more against the plain encoding, of which it must save an
		 * eighth. */
		uint64_t a[SIM_MAX_ANCHORS];
		struct sim_base base[STORE_DELTA_BASES];
		size_t plen = 0;
		unsigned na = im->sim ? sim_anchors(p, sl->len[i], a) : 0;
		unsigned nb = na ? delta_bases(w, sl, i, a, na, base, &plen) : 0;
		if (nb && delta_encode(w, sl, i, base, nb, plen, sl->len[i] / 4)) {
			out += sl->out_len[i];
			continue;
		}
		size_t n, cap = sl->len[i] - sl->len[i] / 32;
		if (sl->len[i] >= 64 &&
		    !store_compress(im->s, p, sl->len[i], sl->out + out, cap, &n)) {
			sl->codec[i] = STORE_CODEC_ZSTD;
		} else {
			memcpy(sl->out + out, p, sl->len[i]);
			n = sl->len[i];
			sl->codec[i] = STORE_CODEC_RAW;
		}
		sl->out_len[i] = n;
		if (nb && delta_encode(w, sl, i, base, nb, plen, n - n / 8)) {
			out += sl->out_len[i];
			continue;
		}
		if (na)   /* stored plainly: a base for later chunks */
			sim_add(im->sim, a, na, &(struct sim_base){ .chunk = sl->first + i, .h = sl->h[i] });
		out += n;
	}
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct import *im = w->im;
	for (;;) {
		pthread_mutex_lock(&im->m);
		struct slot *sl = NULL;
		while (!im->stop) {
			if (im->next_work < im->njobs) {
				struct slot *c = &im->slots[im->next_work % NSLOTS];
				if (c->state == SLOT_FILLED && c->seq == im->next_work) {
					sl = c;
					break;
				}
			} else {
				break;
			}
			pthread_cond_wait(&im->cv_filled, &im->m);
		}
		if (!sl) {
			pthread_mutex_unlock(&im->m);
			return NULL;
		}
		sl->state = SLOT_WORKING;
		im->next_work++;
		pthread_mutex_unlock(&im->m);
		int r = sl->err ? sl->err : process(w, sl);
		pthread_mutex_lock(&im->m);
		sl->err = r;
		sl->state = SLOT_DONE;
		pthread_cond_signal(&im->cv_done);
		pthread_mutex_unlock(&im->m);
	}
}

/* Stores one finished job: called by the writer (calling thread). */
static int store_job(struct import *im, struct tree_writer *tw, struct slot *sl,
		     struct store_import_stats *st, uint64_t *txn_bytes)
{
	struct store *s = im->s;
	int r = 0;
	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < sl->n && r >= 0; i++) {
		if (sl->what[i] == C_ZERO) {
			st->zero_bytes += sl->len[i];
			continue;
		}
		st->chunks++;
		const void *stored = sl->out + sl->out_off[i];
		size_t slen = sl->out_len[i];
		enum store_codec codec = sl->codec[i];
		bool plain = false;
		if (sl->what[i] == C_EXISTS) {
			/* Found by the worker outside this transaction: make sure it
			 * is still there (gc may have run) and pin it; if it is gone,
			 * store it after all. */
			r = store_pin_locked(s, &sl->h[i]);
			if (r != 0)
				continue;
			plain = true;
		} else if (codec == STORE_CODEC_DELTA) {
			/* Its bases must be plain blobs in the store (an identical
			 * chunk stored earlier as a delta would not do). */
			r = store_delta_check_locked(s, stored, slen);
			if (r < 0)
				break;
			plain = r == 0;
		}
		void *buf = NULL;
		if (plain && (r = store_encode(s, sl->in + (size_t)i * im->chunk, sl->len[i], &stored,
					       &slen, &codec, &buf)))
			break;
		r = store_insert_locked(s, &sl->h[i], STORE_BLOB, sl->len[i], codec, stored, slen);
		free(buf);
		if (r > 0) {
			st->new_chunks++;
			st->new_stored += slen;
			*txn_bytes += slen;
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < sl->n; i++)
		if ((r = tree_writer_push(tw, &sl->h[i])))
			return r;
	return 0;
}

static int input_size(int fd, uint64_t *ret)
{
	struct stat sb;
	if (fstat(fd, &sb))
		return store_err(errno, "cannot stat the input: %s", strerror(errno));
	if (S_ISREG(sb.st_mode)) {
		*ret = (uint64_t)sb.st_size;
		return 0;
	}
	if (S_ISBLK(sb.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, ret))
			return store_err(errno, "cannot get the size of the block device: %s",
					 strerror(errno));
		return 0;
	}
	return store_err(EINVAL, "the input is not a regular file or block device");
}

static int slots_alloc(struct import *im)
{
	size_t cb = store_compress_bound(im->chunk);
	for (int i = 0; i < NSLOTS; i++) {
		struct slot *sl = &im->slots[i];
		unsigned n = im->per_job;
		sl->in = malloc((size_t)n * im->chunk);
		sl->len = calloc(n, sizeof(*sl->len));
		sl->what = calloc(n, 1);
		sl->h = calloc(n, sizeof(*sl->h));
		sl->out = malloc((size_t)n * cb);
		sl->out_off = calloc(n, sizeof(size_t));
		sl->out_len = calloc(n, sizeof(size_t));
		sl->codec = calloc(n, 1);
		if (!sl->in || !sl->len || !sl->what || !sl->h || !sl->out || !sl->out_off ||
		    !sl->out_len || !sl->codec)
			return store_err(ENOMEM, "out of memory");
	}
	return 0;
}

static void slots_free(struct import *im)
{
	for (int i = 0; i < NSLOTS; i++) {
		struct slot *sl = &im->slots[i];
		free(sl->in);
		free(sl->len);
		free(sl->what);
		free(sl->h);
		free(sl->out);
		free(sl->out_off);
		free(sl->out_len);
		free(sl->codec);
	}
}

static int run_writer(struct import *im, const struct store_progress *progress,
		      struct store_hash *ret_root, struct store_import_stats *st)
{
	struct store *s = im->s;
	struct tree_writer *tw;
	int r = tree_writer_new(s, im->size, &tw);
	if (r)
		return r;
	if ((r = store_txn_begin(s))) {
		tree_writer_free(tw);
		return r;
	}
	uint64_t txn_bytes = 0, wal_bytes = 0, last = store_now_ms();
	for (uint64_t seq = 0; seq < im->njobs && !r; seq++) {
		struct slot *sl = &im->slots[seq % NSLOTS];
		pthread_mutex_lock(&im->m);
		while ((sl->state != SLOT_DONE || sl->seq != seq) && !im->stop)
			pthread_cond_wait(&im->cv_done, &im->m);
		if (im->stop)
			r = im->err ? im->err : -ECANCELED;
		pthread_mutex_unlock(&im->m);
		if (r)
			break;
		if (sl->err) {
			r = sl->err;
			break;
		}
		r = store_job(im, tw, sl, st, &txn_bytes);
		uint64_t done = (sl->first + sl->n) * im->chunk;   /* before the slot is reused */
		pthread_mutex_lock(&im->m);
		sl->state = SLOT_FREE;
		pthread_cond_signal(&im->cv_free);
		pthread_mutex_unlock(&im->m);
		if (!r && txn_bytes >= TXN_BYTES) {
			wal_bytes += txn_bytes;
			txn_bytes = 0;
			r = store_txn_commit(s);
			pthread_mutex_lock(&im->m);
			im->commits++;
			pthread_cond_broadcast(&im->ckcv);
			/* Bound the WAL: let the checkpointer (which has been copying
			 * in the background) finish, so the next transaction starts
			 * the WAL over instead of growing it. Not worth a wait when
			 * less than that much input is left. */
			if (im->ck_running && wal_bytes >= WAL_BYTES && im->size - done >= WAL_BYTES) {
				struct timespec until;
				clock_gettime(CLOCK_REALTIME, &until);
				until.tv_sec += 5;
				while (im->ck_done < im->commits && !im->ckstop &&
				       pthread_cond_timedwait(&im->ckcv, &im->m, &until) == 0)
					;
				wal_bytes = 0;
			}
			pthread_mutex_unlock(&im->m);
			if (!r)
				r = store_txn_begin(s);
			if (r) {
				tree_writer_free(tw);
				return r;
			}
		}
		if (progress && progress->fn && store_now_ms() - last >= 100) {
			last = store_now_ms();
			progress->fn(progress->arg, done < im->size ? done : im->size, im->size,
				     st->chunks);
		}
	}
	if (!r)
		r = tree_writer_finish(tw, ret_root);
	tree_writer_free(tw);
	if (r) {
		store_txn_abort(s);
		return r;
	}
	r = store_txn_commit(s);
	if (!r && progress && progress->fn)
		progress->fn(progress->arg, im->size, im->size, st->chunks);
	return r;
}

/* Stored bases offered beyond this much are not indexed. */
#define BASES_MAX_BYTES (1ull << 30)

static int import_fd(struct store *s, int fd, bool similar, const struct store_hash *bases,
		     size_t nbases, const struct store_progress *progress,
		     struct store_hash *ret_root, struct store_import_stats *ret_stats)
{
	struct import *im = calloc(1, sizeof(*im));
	if (!im)
		return store_err(ENOMEM, "out of memory");
	struct store_import_stats st = { 0 };
	struct worker w[STORE_MAX_WORKERS] = { 0 };
	pthread_t reader, workers[STORE_MAX_WORKERS];
	int nworkers = store_nworkers();
	int nstarted = 0;
	bool reader_started = false;
	int r = input_size(fd, &im->size);
	if (r)
		goto out;
	im->s = s;
	im->fd = fd;
	im->chunk = s->chunk_size;
	im->nchunks = (im->size + im->chunk - 1) / im->chunk;
	im->per_job = JOB_BYTES / im->chunk ? JOB_BYTES / im->chunk : 1;
	im->njobs = (im->nchunks + im->per_job - 1) / im->per_job;
	st.size = im->size;
	pthread_mutex_init(&im->m, NULL);
	pthread_cond_init(&im->cv_free, NULL);
	pthread_cond_init(&im->cv_filled, NULL);
	pthread_cond_init(&im->cv_done, NULL);
	if ((r = slots_alloc(im)))
		goto out_sync;
	if (nbases > BASES_MAX_BYTES / im->chunk)
		nbases = BASES_MAX_BYTES / im->chunk;
	if (similar && !(im->sim = sim_index_new(im->nchunks + nbases, im->chunk))) {
		r = store_err(ENOMEM, "out of memory");
		goto out_sync;
	}
	if (similar && nbases) {
		struct base_indexer bx = { .im = im, .h = bases, .n = nbases };
		pthread_t th;
		bool helper = pthread_create(&th, NULL, index_bases, &bx) == 0;
		index_bases(&bx);
		if (helper)
			pthread_join(th, NULL);
	}
	for (int i = 0; i < nworkers && similar; i++)
		if (!(w[i].bases = malloc(STORE_DELTA_BASES * (size_t)im->chunk)) ||
		    !(w[i].delta = malloc(store_compress_bound(im->chunk)))) {
			r = store_err(ENOMEM, "out of memory");
			goto out_sync;
		}
	for (int i = 0; i < nworkers; i++) {
		w[i].im = im;
		/* A second connection lets workers find existing chunks without
		 * the writer's lock; without it they just compress everything. */
		if (sqlite3_open_v2(s->db_path, &w[i].db, SQLITE_OPEN_READONLY |
				    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
		    sqlite3_prepare_v2(w[i].db, "SELECT 1 FROM objects WHERE hash=?", -1,
				       &w[i].has, NULL) != SQLITE_OK) {
			sqlite3_finalize(w[i].has);
			w[i].has = NULL;
		} else {
			sqlite3_busy_timeout(w[i].db, 1000);
			if (similar && sqlite3_prepare_v2(w[i].db, "SELECT kind, size, codec, data "
							  "FROM objects WHERE hash=?", -1,
							  &w[i].get, NULL) != SQLITE_OK)
				w[i].get = NULL;   /* stored bases are then not used */
		}
	}
	pthread_t ck;
	bool ck_thread = false;
	pthread_cond_init(&im->ckcv, NULL);
	if (sqlite3_open_v2(s->db_path, &im->ckdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
			    NULL) == SQLITE_OK &&
	    sqlite3_exec(im->ckdb, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) == SQLITE_OK &&
	    !pthread_create(&ck, NULL, checkpointer_main, im)) {
		ck_thread = true;
		im->ck_running = true;
		store_exec(s, "PRAGMA wal_autocheckpoint=0");
	}
	if (pthread_create(&reader, NULL, reader_main, im)) {
		r = store_err(EAGAIN, "cannot start the reader thread");
		goto out_conn;
	}
	reader_started = true;
	for (; nstarted < nworkers; nstarted++)
		if (pthread_create(&workers[nstarted], NULL, worker_main, &w[nstarted])) {
			r = store_err(EAGAIN, "cannot start a worker thread");
			break;
		}
	if (!r)
		r = run_writer(im, progress, ret_root, &st);
	if (r) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", im->err && im->errmsg[0] ? im->errmsg :
			 store_last_error());
		pthread_mutex_lock(&im->m);
		im->stop = true;
		wake_all(im);
		pthread_mutex_unlock(&im->m);
		store_err(-r, "%s", msg);
	} else {
		/* Everything was consumed: wake idle workers so they exit. */
		pthread_mutex_lock(&im->m);
		im->stop = true;
		wake_all(im);
		pthread_mutex_unlock(&im->m);
	}
out_conn:
	if (ck_thread) {
		pthread_mutex_lock(&im->m);
		im->ckstop = true;
		pthread_cond_signal(&im->ckcv);
		pthread_mutex_unlock(&im->m);
		pthread_join(ck, NULL);
		/* back to the handle's setting */
		if (store_set_autocheckpoint(s, !s->no_autocheckpoint) < 0) {
			/* left off: the store's close still copies the WAL */
		}
	}
	sqlite3_close(im->ckdb);
	pthread_cond_destroy(&im->ckcv);
	if (reader_started)
		pthread_join(reader, NULL);
	for (int i = 0; i < nstarted; i++)
		pthread_join(workers[i], NULL);
	for (int i = 0; i < nworkers; i++) {
		sqlite3_finalize(w[i].has);
		sqlite3_finalize(w[i].get);
		sqlite3_close(w[i].db);
	}
out_sync:
	for (int i = 0; i < nworkers; i++) {
		free(w[i].bases);
		free(w[i].delta);
	}
	sim_index_free(im->sim);
	slots_free(im);
	pthread_cond_destroy(&im->cv_free);
	pthread_cond_destroy(&im->cv_filled);
	pthread_cond_destroy(&im->cv_done);
	pthread_mutex_destroy(&im->m);
out:
	free(im);
	if (!r && ret_stats)
		*ret_stats = st;
	return r;
}

int store_import_fd(struct store *s, int fd, const struct store_progress *progress,
		    struct store_hash *ret_root, struct store_import_stats *ret_stats)
{
	return import_fd(s, fd, false, NULL, 0, progress, ret_root, ret_stats);
}

int store_import_similar_fd(struct store *s, int fd, const struct store_hash *bases,
			    size_t nbases, const struct store_progress *progress,
			    struct store_hash *ret_root, struct store_import_stats *ret_stats)
{
	return import_fd(s, fd, true, bases, nbases, progress, ret_root, ret_stats);
}
