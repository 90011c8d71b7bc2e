/* Objects over the wire codec with a store on each end (xfer.h): basis maps
 * built by walking two commits' trees side by side (only where they
 * differ), page indexes of the blobs the receiver has, sending one object,
 * and resolving one received record. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "image/commit.h"
#include "sync/objs.h"
#include "sync/xfer.h"

struct bpair { struct store_hash h, base; };

/* 4 KiB pages of the receiver's blobs: a 64-bit key of each page's content
 * -> the blob (open addressing; keys only pick candidates, zstd finds the
 * actual matches, so a collision costs nothing but a useless base). */
struct page_index {
	uint64_t *key;               /* 0: empty slot */
	uint32_t *blob;
	size_t mask, used;
	struct sync_hent *blobs;      /* the blobs, by the index in blob[] */
};

struct sync_bmap {
	struct bpair *v;
	size_t n, cap;
	bool sorted;
	struct page_index *pages;
};

int sync_bmap_new(struct sync_bmap **ret)
{
	*ret = calloc(1, sizeof(**ret));
	return *ret ? 0 : -ENOMEM;
}

void sync_bmap_free(struct sync_bmap *m)
{
	if (!m)
		return;
	if (m->pages) {
		free(m->pages->key);
		free(m->pages->blob);
		free(m->pages->blobs);
		free(m->pages);
	}
	free(m->v);
	free(m);
}

size_t sync_bmap_count(const struct sync_bmap *m)
{
	return m ? m->n : 0;
}

static int bmap_add(struct sync_bmap *m, const struct store_hash *h, const struct store_hash *base)
{
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 256;
		struct bpair *v = realloc(m->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		m->v = v;
		m->cap = cap;
	}
	m->v[m->n].h = *h;
	m->v[m->n].base = *base;
	m->n++;
	m->sorted = false;
	return 0;
}

static int cmp_pair(const void *a, const void *b)
{
	return memcmp(((const struct bpair *)a)->h.b, ((const struct bpair *)b)->h.b, STORE_HASH_LEN);
}

const struct store_hash *sync_bmap_find(struct sync_bmap *m, const struct store_hash *h)
{
	if (!m || !m->n)
		return NULL;
	if (!m->sorted) {
		qsort(m->v, m->n, sizeof(*m->v), cmp_pair);
		m->sorted = true;
	}
	struct bpair key = { .h = *h };
	const struct bpair *p = bsearch(&key, m->v, m->n, sizeof(*m->v), cmp_pair);
	return p ? &p->base : NULL;
}

/* A tree node read from s: its decoded bytes (data, to free) and shape. */
struct node { void *data; struct sync_tree_node t; };

static int load_node(struct store *s, const struct store_hash *h, struct node *n)
{
	enum store_kind k;
	size_t len;
	int rc = store_get(s, h, &k, &n->data, &len);
	if (rc < 0)
		return rc;
	if (k != STORE_TREE || sync_obj_tree(n->data, len, &n->t) < 0) {
		free(n->data);
		return -EBADMSG;
	}
	return 0;
}

static void child(const struct node *n, uint32_t i, struct store_hash *ret)
{
	memcpy(ret->b, n->t.children + (size_t)i * STORE_HASH_LEN, STORE_HASH_LEN);
}

static int pair_nodes(struct sync_bmap *m, struct store *s, const struct store_hash *nh,
		      const struct store_hash *oh, int depth)
{
	if (store_hash_eq(nh, oh) || store_hash_is_zero(nh) || store_hash_is_zero(oh) || depth > 16)
		return 0;
	struct node a, b;
	int rc = load_node(s, nh, &a);
	if (rc < 0)
		return rc;
	rc = load_node(s, oh, &b);
	if (rc < 0) {
		free(a.data);
		return rc;
	}
	rc = bmap_add(m, nh, oh);
	/* children pair up only between nodes of the same shape */
	bool same = a.t.level == b.t.level && a.t.fanout == b.t.fanout &&
		    a.t.chunk_size == b.t.chunk_size;
	uint32_t n = a.t.count < b.t.count ? a.t.count : b.t.count;
	for (uint32_t i = 0; same && !rc && i < n; i++) {
		struct store_hash nc, oc;
		child(&a, i, &nc);
		child(&b, i, &oc);
		if (store_hash_eq(&nc, &oc) || store_hash_is_zero(&nc) || store_hash_is_zero(&oc))
			continue;
		rc = a.t.level == 0 ? bmap_add(m, &nc, &oc) : pair_nodes(m, s, &nc, &oc, depth + 1);
	}
	free(a.data);
	free(b.data);
	return rc;
}

static int index_pages(struct sync_bmap *m, struct store *s, const struct store_commit *a,
		       const struct store_commit *b);

int sync_bmap_add_commits(struct sync_bmap *m, struct store *s, const struct store_hash *newc,
			  const struct store_hash *oldc, bool pages)
{
	struct store_commit *a, *b;
	if (store_hash_eq(newc, oldc))
		return 0;
	int rc = store_commit_get(s, newc, &a);
	if (rc < 0)
		return rc;
	rc = store_commit_get(s, oldc, &b);
	if (rc < 0) {
		store_commit_free(a);
		return rc;
	}
	for (size_t i = 0; !rc && i < a->n_roots; i++) {
		const struct store_commit_root *nr = &a->roots[i];
		const struct store_commit_root *or = store_commit_root(b, nr->name);
		if (!or || or->kind != nr->kind || store_hash_eq(&or->hash, &nr->hash))
			continue;
		rc = nr->kind == STORE_TREE ? pair_nodes(m, s, &nr->hash, &or->hash, 0)
					    : bmap_add(m, &nr->hash, &or->hash);
	}
	if (rc == 0 && pages)
		rc = index_pages(m, s, a, b);
	store_commit_free(a);
	store_commit_free(b);
	return rc;
}

/* ---- page index ---- */

#define PAGE 4096u

static uint64_t page_key(const uint8_t *p)
{
	uint64_t h = 0x9e3779b97f4a7c15ull, a, b;
	for (size_t i = 0; i < PAGE; i += 16) {
		memcpy(&a, p + i, 8);
		memcpy(&b, p + i + 8, 8);
		h = (h ^ a) * 0xff51afd7ed558ccdull + (b ^ (h >> 29));
		h ^= h >> 32;
	}
	return h | 1;   /* never 0, the empty slot */
}

static bool page_zero(const uint8_t *p)
{
	return p[0] == 0 && !memcmp(p, p + 1, PAGE - 1);
}

/* The distinct blobs under some trees, at most max of them. */
struct blob_walk {
	struct store *s;
	struct sync_hset *seen;       /* blobs and tree nodes met */
	struct sync_hlist blobs;
	size_t max;
	int depth;
};

static int walk_tree(struct blob_walk *w, const struct store_hash *h);

static int walk_child(void *arg, const struct store_hash *h, enum store_kind kind)
{
	struct blob_walk *w = arg;
	if (w->blobs.n >= w->max)
		return 1;   /* enough: stops the walk */
	int rc = sync_hset_add(w->seen, h);
	if (rc <= 0)
		return rc;
	return kind == STORE_BLOB ? sync_hlist_push(&w->blobs, h, kind) : walk_tree(w, h);
}

static int walk_tree(struct blob_walk *w, const struct store_hash *h)
{
	enum store_kind k;
	void *data;
	size_t len;
	if (w->depth > 16)
		return 0;
	int rc = store_get(w->s, h, &k, &data, &len);
	if (rc < 0)
		return rc;
	w->depth++;
	rc = k == STORE_TREE ? sync_obj_children(k, data, len, walk_child, w) : -EBADMSG;
	w->depth--;
	free(data);
	return rc;
}

/* Adds a page while the table is at most half full. */
static void index_put(struct page_index *x, uint64_t k, uint32_t blob)
{
	if (x->used >= x->mask / 2)
		return;
	size_t i = k & x->mask;
	while (x->key[i] && x->key[i] != k)
		i = (i + 1) & x->mask;
	x->used += !x->key[i];
	x->key[i] = k;
	x->blob[i] = blob;
}

static const struct store_hash *index_get(const struct page_index *x, uint64_t k)
{
	for (size_t i = k & x->mask; x->key[i]; i = (i + 1) & x->mask)
		if (x->key[i] == k)
			return &x->blobs[x->blob[i]].h;
	return NULL;
}

#define INDEX_THREADS 3   /* helpers, besides the calling thread */

struct index_job {
	struct store *s;
	struct page_index *x;
	const struct sync_hent *v;
	size_t u;
	_Atomic size_t next;
	_Atomic uint64_t bytes;
	pthread_mutex_t lock;         /* x */
};

static void *index_worker(void *arg)
{
	struct index_job *j = arg;
	uint64_t keys[SYNC_OBJ_MAX / PAGE];
	for (;;) {
		size_t i = atomic_fetch_add(&j->next, 1);
		if (i >= j->u || atomic_load(&j->bytes) >= SYNC_PAGE_INDEX_BYTES)
			return NULL;
		enum store_kind k;
		void *data;
		size_t len, n = 0;
		if (store_get(j->s, &j->v[i].h, &k, &data, &len) < 0)
			continue;   /* an unreadable blob is just not a candidate */
		atomic_fetch_add(&j->bytes, len);
		for (size_t off = 0; k == STORE_BLOB && off + PAGE <= len && n < SYNC_OBJ_MAX / PAGE;
		     off += PAGE)
			if (!page_zero((const uint8_t *)data + off))
				keys[n++] = page_key((const uint8_t *)data + off);
		free(data);
		pthread_mutex_lock(&j->lock);
		for (size_t p = 0; p < n; p++)
			index_put(j->x, keys[p], (uint32_t)i);
		pthread_mutex_unlock(&j->lock);
	}
}

/* The page index (xfer.h, sync_bmap_add_commits) for new commit a over old
 * commit b: once per map. */
static int index_pages(struct sync_bmap *m, struct store *s, const struct store_commit *a,
		       const struct store_commit *b)
{
	if (m->pages)
		return 0;
	int rc;
	const struct store_commit_root *nm = store_commit_root(a, "memory");
	const struct store_commit_root *om = store_commit_root(b, "memory");
	uint64_t chunk = store_chunk_size(s) ? store_chunk_size(s) : PAGE;
	struct blob_walk w = { .s = s, .seen = sync_hset_new(), .max = SYNC_PAGE_INDEX_BYTES / chunk };
	rc = w.seen ? 0 : -ENOMEM;
	/* Only memory moves pages around: without new memory, nothing to do.
	 * The old memory first (pages the guest moved), then the disks. */
	if (!rc && nm && nm->kind == STORE_TREE && (!om || !store_hash_eq(&om->hash, &nm->hash))) {
		if (om && om->kind == STORE_TREE)
			rc = walk_tree(&w, &om->hash);
		for (size_t i = 0; rc == 0 && i < b->n_roots; i++)
			if (b->roots[i].kind == STORE_TREE && &b->roots[i] != om)
				rc = walk_tree(&w, &b->roots[i].hash);
	}
	sync_hset_free(w.seen);
	size_t u = w.blobs.n;
	if (rc < 0 || u == 0) {
		sync_hlist_free(&w.blobs);
		return rc < 0 ? rc : 0;
	}
	struct page_index *x = calloc(1, sizeof(*x));
	uint64_t pages = (u * chunk < SYNC_PAGE_INDEX_BYTES ? u * chunk : SYNC_PAGE_INDEX_BYTES) / PAGE;
	size_t slots = 1024;
	while (slots < 2 * pages)
		slots *= 2;
	if (x) {
		x->key = calloc(slots, sizeof(*x->key));
		x->blob = malloc(slots * sizeof(*x->blob));
		x->mask = slots - 1;
		x->blobs = w.blobs.v;
	}
	if (!x || !x->key || !x->blob) {
		if (x) {
			free(x->key);
			free(x->blob);
			free(x);
		}
		sync_hlist_free(&w.blobs);
		return -ENOMEM;
	}
	struct index_job j = { .s = s, .x = x, .v = w.blobs.v, .u = u };
	pthread_mutex_init(&j.lock, NULL);
	/* Reading and decompressing the blobs is the cost: on every CPU. */
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	pthread_t th[INDEX_THREADS];
	int nth = 0;
	while (nth < INDEX_THREADS && nth + 1 < ncpu && pthread_create(&th[nth], NULL, index_worker, &j) == 0)
		nth++;
	index_worker(&j);
	while (nth)
		pthread_join(th[--nth], NULL);
	pthread_mutex_destroy(&j.lock);
	m->pages = x;
	return 0;
}

/* The bases for blob data: its base by position (may be NULL) first, then
 * the receiver's blobs holding the same 4 KiB pages. Returns how many. */
static unsigned page_bases(const struct sync_bmap *m, const struct store_hash *h,
			   const uint8_t *data, size_t len, const struct store_hash *pos,
			   struct store_hash *out)
{
	unsigned n = 0;
	if (pos)
		out[n++] = *pos;
	for (size_t off = 0; m && m->pages && off + PAGE <= len && n < SYNC_WIRE_BASES_MAX;
	     off += PAGE) {
		if (page_zero(data + off))
			continue;
		const struct store_hash *b = index_get(m->pages, page_key(data + off));
		if (!b || store_hash_eq(b, h))
			continue;
		unsigned i = 0;
		while (i < n && !store_hash_eq(&out[i], b))
			i++;
		if (i == n)
			out[n++] = *b;
	}
	return n;
}

/* Loads bases[0..n) one after the other into one malloc'd prefix; a base
 * that is missing, of another kind than kind (form 1) or not a blob (form
 * 2), or over the size limits fails with err set. */
static int load_bases(struct store *s, enum store_kind kind, const struct store_hash *bases,
		      unsigned n, void **ret, size_t *ret_len, char *err, size_t errlen)
{
	uint8_t *pre = NULL;
	size_t len = 0;
	for (unsigned i = 0; i < n; i++) {
		char hex[STORE_HASH_HEX];
		store_hash_hex(&bases[i], hex);
		enum store_kind bk;
		void *b;
		size_t bl;
		int rc = store_get(s, &bases[i], &bk, &b, &bl);
		if (rc < 0) {
			if (rc == -ENOENT)
				snprintf(err, errlen, "a delta names base object %.16s, which this store "
					 "does not have: refused", hex);
			else
				snprintf(err, errlen, "cannot read base object %.16s of a delta: %s", hex,
					 store_last_error());
			free(pre);
			return rc;
		}
		if (bk != kind || (n > 1 && bk != STORE_BLOB)) {
			snprintf(err, errlen, "a delta for a %s names base object %.16s, which is a %s: "
				 "refused", store_kind_name(kind), hex, store_kind_name(bk));
			free(b);
			free(pre);
			return -EINVAL;
		}
		if (len + bl > (n > 1 ? SYNC_WIRE_BASES_BYTES : SYNC_OBJ_MAX)) {
			snprintf(err, errlen, "the bases of a delta are over %u bytes: refused",
				 n > 1 ? SYNC_WIRE_BASES_BYTES : SYNC_OBJ_MAX);
			free(b);
			free(pre);
			return -E2BIG;
		}
		uint8_t *np = realloc(pre, len + bl + 1);
		if (!np) {
			free(b);
			free(pre);
			return -ENOMEM;
		}
		pre = np;
		memcpy(pre + len, b, bl);
		len += bl;
		free(b);
	}
	*ret = pre;
	*ret_len = len;
	return 0;
}

static int send_stored(struct sync_wenc *e, struct sync_io *io, struct store *s,
		       const struct store_hash *h, uint64_t *size, bool *io_failed, char *err,
		       size_t errlen)
{
	int rc = e ? sync_wenc_flush(e) : 0;
	if (rc < 0) {
		*io_failed = true;
		return rc;
	}
	struct store_raw raw;
	rc = store_get_raw(s, h, &raw);
	if (rc < 0) {
		snprintf(err, errlen, "%s", store_last_error());
		return rc;
	}
	uint8_t hdr[SYNC_OBJ_HDR];
	sync_obj_header(hdr, h, raw.info.kind, raw.info.codec, raw.info.size);
	rc = sync_frame_write2(io, SYNC_OBJ, hdr, sizeof(hdr), raw.data, raw.info.stored_size);
	*size += raw.info.size;
	store_raw_release(&raw);
	if (rc < 0)
		*io_failed = true;
	return rc;
}

int sync_xfer_send(struct sync_wenc *e, struct sync_io *io, struct store *s,
		   struct sync_bmap *m, const struct store_hash *h, uint64_t *raw,
		   bool *io_failed, char *err, size_t errlen)
{
	enum store_kind kind;
	void *data;
	size_t len;
	*io_failed = false;
	if (!e)
		return send_stored(NULL, io, s, h, raw, io_failed, err, errlen);
	struct store_obj_info info;
	int rc = store_stat(s, h, &info);
	if (rc == 0 && info.size > SYNC_OBJ_MAX)
		return send_stored(e, io, s, h, raw, io_failed, err, errlen);
	if (rc == 0)
		rc = store_get(s, h, &kind, &data, &len);
	if (rc < 0) {
		snprintf(err, errlen, "%s", store_last_error());
		return rc;
	}
	struct store_hash bases[SYNC_WIRE_BASES_MAX];
	const struct store_hash *bh = sync_bmap_find(m, h);
	unsigned nb = kind == STORE_BLOB ? page_bases(m, h, data, len, bh, bases) : bh != NULL;
	if (nb && kind != STORE_BLOB)
		bases[0] = *bh;
	void *base = NULL;
	size_t base_len = 0;
	char why[256];
	/* a base that cannot be had only costs bytes */
	if (nb && load_bases(s, kind, bases, nb, &base, &base_len, why, sizeof(why)) < 0)
		nb = 0;
	rc = nb ? sync_wenc_obj_bases(e, kind, data, len, bases, nb, base, base_len)
		: sync_wenc_obj(e, kind, data, len);
	free(base);
	free(data);
	*raw += len;
	if (rc < 0) {
		*io_failed = rc != -ENOMEM;
		snprintf(err, errlen, "%s", rc == -ENOMEM ? "out of memory" : io->err);
		return rc;
	}
	return 0;
}

int sync_xfer_resolve(struct sync_wdec *d, struct store *s, const struct sync_wrec *r,
		      void **ret, size_t *ret_len, struct store_hash *ret_h, char *err,
		      size_t errlen)
{
	void *out;
	size_t len;
	if (!r->delta) {
		out = malloc(r->len ? r->len : 1);
		if (!out)
			return -ENOMEM;
		if (r->len)
			memcpy(out, r->body, r->len);
		len = r->len;
	} else {
		void *base;
		size_t blen;
		int rc = load_bases(s, r->kind, r->base, r->nbases, &base, &blen, err, errlen);
		if (rc < 0)
			return rc;
		rc = sync_wdec_undelta(d, base, blen, r->body, r->len, &out, &len);
		free(base);
		if (rc < 0) {
			char hex[STORE_HASH_HEX];
			store_hash_hex(&r->base[0], hex);
			snprintf(err, errlen, "%s (base %.16s%s)", sync_wdec_error(d), hex,
				 r->nbases > 1 ? " and others" : "");
			return rc;
		}
	}
	store_hash_buf(out, len, ret_h);
	*ret = out;
	*ret_len = len;
	return 0;
}
