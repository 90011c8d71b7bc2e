/* Saving and restoring guest RAM as store trees (memory.h). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "checkpoint/memory.h"
#include "monitor/guest_mem.h"

int ckpt_mem_save_full(struct store *s, struct guest_mem *m, struct store_hash *ret,
		       struct ckpt_mem_stats *stats)
{
	struct store_import_stats is;
	if (lseek(gmem_fd(m), 0, SEEK_SET) < 0)
		return -errno;
	int rc = store_import_fd(s, gmem_fd(m), NULL, ret, &is);
	if (rc < 0)
		return rc;
	if (stats)
		*stats = (struct ckpt_mem_stats){ is.chunks, is.chunks * store_chunk_size(s) };
	return 0;
}

int ckpt_mem_save_dirty(struct store *s, struct guest_mem *m, const struct store_hash *base,
			const uint64_t *dirty, struct store_hash *ret, struct ckpt_mem_stats *stats)
{
	uint64_t size = gmem_size(m), chunk = store_chunk_size(s);
	uint64_t pages_per_chunk = chunk / GMEM_PAGE;
	struct store_tree_builder *b;
	int rc = store_tree_builder_new(s, size, base, &b);
	if (rc < 0)
		return rc;
	struct ckpt_mem_stats st = { 0 };
	uint64_t nchunks = (size + chunk - 1) / chunk;
	for (uint64_t c = 0; c < nchunks && rc == 0; c++) {
		uint64_t p0 = c * pages_per_chunk, p1 = p0 + pages_per_chunk;
		bool any = false;
		for (uint64_t p = p0; p < p1 && p < size / GMEM_PAGE; p++)
			if (dirty[p / 64] >> (p % 64) & 1) {
				any = true;
				break;
			}
		if (!any)
			continue;
		uint64_t len = size - c * chunk < chunk ? size - c * chunk : chunk;
		rc = store_tree_builder_set(b, c, gmem_base(m) + c * chunk, len);
		st.chunks_written++;
		st.bytes_written += len;
	}
	if (rc == 0)
		rc = store_tree_builder_finish(b, ret);
	store_tree_builder_free(b);
	if (rc == 0 && stats)
		*stats = st;
	return rc;
}

struct restore_job {
	struct store_tree *t;
	int fd;                /* the memfd */
	uint64_t size, chunk, next;
	pthread_mutex_t lock;
	int rc;
	char msg[300];        /* the worker's store_last_error (thread-local) */
};

/* Workers take runs of chunks and write the non-zero ones into the memfd:
 * pwrite puts whole chunks into the page cache in one call, where copying
 * into the mapping takes a page fault per 4 KiB (costly in a VM host). */
static void *restore_worker(void *arg)
{
	struct restore_job *j = arg;
	const uint64_t batch = 64;
	uint8_t *buf = malloc(j->chunk);
	if (!buf) {
		pthread_mutex_lock(&j->lock);
		if (!j->rc) {
			j->rc = -ENOMEM;
			snprintf(j->msg, sizeof(j->msg), "out of memory");
		}
		pthread_mutex_unlock(&j->lock);
		return NULL;
	}
	for (;;) {
		pthread_mutex_lock(&j->lock);
		uint64_t c0 = j->next;
		j->next += batch;
		int failed = j->rc;
		pthread_mutex_unlock(&j->lock);
		uint64_t nchunks = (j->size + j->chunk - 1) / j->chunk;
		if (failed || c0 >= nchunks) {
			free(buf);
			return NULL;
		}
		for (uint64_t c = c0; c < c0 + batch && c < nchunks; c++) {
			struct store_hash h;
			int rc = store_tree_chunk_hash(j->t, c, &h);
			if (rc == 0 && store_hash_is_zero(&h))
				continue;
			uint64_t off = c * j->chunk;
			uint64_t len = j->size - off < j->chunk ? j->size - off : j->chunk;
			if (rc == 0) {
				ssize_t n = store_tree_read(j->t, buf, len, off);
				rc = n < 0 ? (int)n : (uint64_t)n != len ? -EIO : 0;
			}
			if (rc == 0) {
				ssize_t n = pwrite(j->fd, buf, len, (off_t)off);
				rc = n < 0 ? -errno : (uint64_t)n != len ? -EIO : 0;
			}
			if (rc < 0) {
				pthread_mutex_lock(&j->lock);
				if (!j->rc) {
					j->rc = rc;
					snprintf(j->msg, sizeof(j->msg), "chunk %llu: %s", (unsigned long long)c,
						 rc == -EBADMSG || rc == -ENOENT ? store_last_error() : strerror(-rc));
				}
				pthread_mutex_unlock(&j->lock);
				free(buf);
				return NULL;
			}
		}
	}
}

int ckpt_mem_restore(struct store *s, const struct store_hash *root, struct guest_mem *m,
		     char *err, size_t errlen)
{
	struct restore_job j = { .fd = gmem_fd(m), .size = gmem_size(m),
				 .chunk = store_chunk_size(s) };
	int rc = store_tree_open(s, root, &j.t);
	if (rc < 0) {
		snprintf(err, errlen, "%s", store_last_error());
		return rc;
	}
	if (store_tree_size(j.t) != j.size) {
		snprintf(err, errlen, "the memory image has %llu bytes, the VM %llu",
			 (unsigned long long)store_tree_size(j.t), (unsigned long long)j.size);
		store_tree_free(j.t);
		return -EINVAL;
	}
	pthread_mutex_init(&j.lock, NULL);
	pthread_t th[2];
	int started = 0;
	for (; started < 2; started++)
		if (pthread_create(&th[started], NULL, restore_worker, &j))
			break;
	if (started == 0)
		restore_worker(&j);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&j.lock);
	store_tree_free(j.t);
	if (j.rc)
		snprintf(err, errlen, "%s", j.msg);
	return j.rc;
}
