/* Objects over the wire codec with a store on each end (xfer.h): basis maps
 * built by walking two commits' trees side by side (only where they
 * differ), page indexes of the blobs the receiver has, sending one object,
 * and resolving one received record. Tree nodes are read here from their
 * documented encoding (image/store_int.h) only far enough to pair children
 * by position and list a tree's blobs. */
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
	struct store_hash *blobs;
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

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A tree node's shape: level, fanout, chunk size, children. */
struct node { uint8_t *data; size_t len; uint32_t count; };

static int load_node(struct store *s, const struct store_hash *h, struct node *n)
{
	enum store_kind k;
	void *data;
	size_t len;
	int rc = store_get(s, h, &k, &data, &len);
	if (rc < 0)
		return rc;
	const uint8_t *p = data;
	if (k != STORE_TREE || len < 24 || memcmp(p, "RTRE", 4) ||
	    len != 24 + (size_t)le32(p + 12) * STORE_HASH_LEN) {
		free(data);
		return -EBADMSG;
	}
	n->data = data;
	n->len = len;
	n->count = le32(p + 12);
	return 0;
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
	/* children pair up only between nodes of the same shape: level,
	 * fanout and chunk size (bytes 5..11) */
	bool same = !memcmp(a.data + 5, b.data + 5, 7);
	uint32_t n = a.count < b.count ? a.count : b.count;
	for (uint32_t i = 0; same && !rc && i < n; i++) {
		struct store_hash nc, oc;
		memcpy(nc.b, a.data + 24 + (size_t)i * STORE_HASH_LEN, STORE_HASH_LEN);
		memcpy(oc.b, b.data + 24 + (size_t)i * STORE_HASH_LEN, STORE_HASH_LEN);
		if (store_hash_eq(&nc, &oc) || store_hash_is_zero(&nc) || store_hash_is_zero(&oc))
			continue;
		rc = a.data[5] == 0 ? bmap_add(m, &nc, &oc) : pair_nodes(m, s, &nc, &oc, depth + 1);
	}
	free(a.data);
	free(b.data);
	return rc;
}

int sync_bmap_add_commits(struct sync_bmap *m, struct store *s, const struct store_hash *newc,
			  const struct store_hash *oldc)
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

static int hash_cmp(const void *a, const void *b)
{
	return memcmp(a, b, STORE_HASH_LEN);
}

/* Blob hashes, at most max of them. */
struct blob_list {
	struct store_hash *v;
	size_t n, cap, max;
};

/* Appends the blobs (level-0 children) under tree node h to l. */
static int tree_blobs(struct store *s, const struct store_hash *h, int depth, struct blob_list *l)
{
	if (store_hash_is_zero(h) || depth > 16 || l->n >= l->max)
		return 0;
	struct node nd;
	int rc = load_node(s, h, &nd);
	if (rc < 0)
		return rc;
	for (uint32_t i = 0; i < nd.count && rc == 0 && l->n < l->max; i++) {
		struct store_hash c;
		memcpy(c.b, nd.data + 24 + (size_t)i * STORE_HASH_LEN, STORE_HASH_LEN);
		if (store_hash_is_zero(&c))
			continue;
		if (nd.data[5] != 0) {
			rc = tree_blobs(s, &c, depth + 1, l);
			continue;
		}
		if (l->n == l->cap) {
			size_t nc = l->cap ? l->cap * 2 : 1024;
			struct store_hash *nv = realloc(l->v, nc * sizeof(*nv));
			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			l->v = nv;
			l->cap = nc;
		}
		l->v[l->n++] = c;
	}
	free(nd.data);
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
			return &x->blobs[x->blob[i]];
	return NULL;
}

#define INDEX_THREADS 3   /* helpers, besides the calling thread */

struct index_job {
	struct store *s;
	struct page_index *x;
	const struct store_hash *v;
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
		if (store_get(j->s, &j->v[i], &k, &data, &len) < 0)
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

int sync_bmap_index_pages(struct sync_bmap *m, struct store *s, const struct store_hash *newc,
			  const struct store_hash *oldc)
{
	if (m->pages || store_hash_eq(newc, oldc))
		return 0;
	struct store_commit *a, *b;
	int rc = store_commit_get(s, newc, &a);
	if (rc < 0)
		return rc;
	if ((rc = store_commit_get(s, oldc, &b)) < 0) {
		store_commit_free(a);
		return rc;
	}
	const struct store_commit_root *nm = store_commit_root(a, "memory");
	const struct store_commit_root *om = store_commit_root(b, "memory");
	uint64_t chunk = store_chunk_size(s) ? store_chunk_size(s) : PAGE;
	struct blob_list l = { .max = SYNC_PAGE_INDEX_BYTES / chunk };
	/* Only memory moves pages around: without new memory, nothing to do.
	 * The old memory first (pages the guest moved), then the disks. */
	if (nm && nm->kind == STORE_TREE && (!om || !store_hash_eq(&om->hash, &nm->hash))) {
		if (om && om->kind == STORE_TREE)
			rc = tree_blobs(s, &om->hash, 0, &l);
		for (size_t i = 0; rc == 0 && i < b->n_roots; i++)
			if (b->roots[i].kind == STORE_TREE && &b->roots[i] != om)
				rc = tree_blobs(s, &b->roots[i].hash, 0, &l);
	}
	store_commit_free(a);
	store_commit_free(b);
	struct store_hash *v = l.v;
	size_t n = l.n;
	if (rc < 0 || n == 0) {
		free(v);
		return rc;
	}
	qsort(v, n, STORE_HASH_LEN, hash_cmp);
	size_t u = 0;
	for (size_t i = 0; i < n; i++)
		if (!u || memcmp(v[u - 1].b, v[i].b, STORE_HASH_LEN))
			v[u++] = v[i];
	struct page_index *x = calloc(1, sizeof(*x));
	uint64_t pages = (u * chunk < SYNC_PAGE_INDEX_BYTES ? u * chunk : SYNC_PAGE_INDEX_BYTES) / PAGE;
	size_t slots = 1024;
	while (slots < 2 * pages)
		slots *= 2;
	if (x) {
		x->key = calloc(slots, sizeof(*x->key));
		x->blob = malloc(slots * sizeof(*x->blob));
		x->mask = slots - 1;
		x->blobs = v;
	}
	if (!x || !x->key || !x->blob) {
		if (x) {
			free(x->key);
			free(x->blob);
			free(x);
		}
		free(v);
		return -ENOMEM;
	}
	struct index_job j = { .s = s, .x = x, .v = v, .u = u };
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
