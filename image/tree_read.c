/* Random access to trees: chunk lookup through cached interior nodes, range
 * reads with a small LRU of decompressed chunks (thread-safe), and the tree
 * builder that writes a new tree from changed chunks over a base tree. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "image/store_int.h"

#define CACHE_CHUNKS 32
#define CACHE_NODES 16

struct cache_ent {
	uint64_t key;
	uint64_t tick;
	void *data;           /* NULL: empty slot */
	size_t len;
};

struct store_tree {
	struct store *s;
	struct store_hash root_hash;
	void *root_buf;
	struct tree_node root;
	uint64_t size, nchunks;
	uint32_t chunk;
	unsigned fanout;
	pthread_mutex_t lock;  /* guards the caches */
	uint64_t tick;
	struct cache_ent chunks[CACHE_CHUNKS];
	struct cache_ent nodes[CACHE_NODES];
};

static struct cache_ent *cache_find(struct store_tree *t, struct cache_ent *c, int n,
				    uint64_t key)
{
	for (int i = 0; i < n; i++)
		if (c[i].data && c[i].key == key) {
			c[i].tick = ++t->tick;
			return &c[i];
		}
	return NULL;
}

/* Takes ownership of data. Caller holds t->lock. */
static void cache_add(struct store_tree *t, struct cache_ent *c, int n, uint64_t key,
		      void *data, size_t len)
{
	if (cache_find(t, c, n, key)) {
		free(data);
		return;
	}
	int victim = 0;
	for (int i = 0; i < n; i++) {
		if (!c[i].data) {
			victim = i;
			break;
		}
		if (c[i].tick < c[victim].tick)
			victim = i;
	}
	free(c[victim].data);
	c[victim] = (struct cache_ent){ key, ++t->tick, data, len };
}

int store_tree_open(struct store *s, const struct store_hash *root, struct store_tree **ret)
{
	struct store_tree *t = calloc(1, sizeof(*t));
	if (!t)
		return store_err(ENOMEM, "out of memory");
	char hex[STORE_HASH_HEX];
	store_hex(root, hex);
	enum store_kind kind;
	size_t len;
	int r = store_get(s, root, &kind, &t->root_buf, &len);
	if (r) {
		free(t);
		return r;
	}
	if (kind != STORE_TREE || tree_node_parse(t->root_buf, len, &t->root)) {
		free(t->root_buf);
		free(t);
		return store_err(EINVAL, "object %s is not a tree", hex);
	}
	if (pthread_mutex_init(&t->lock, NULL)) {
		free(t->root_buf);
		free(t);
		return store_err(ENOMEM, "out of memory");
	}
	t->s = s;
	t->root_hash = *root;
	t->size = t->root.size;
	t->chunk = t->root.chunk_size;
	t->fanout = t->root.fanout;
	t->nchunks = (t->size + t->chunk - 1) / t->chunk;
	*ret = t;
	return 0;
}

void store_tree_free(struct store_tree *t)
{
	if (!t)
		return;
	for (int i = 0; i < CACHE_CHUNKS; i++)
		free(t->chunks[i].data);
	for (int i = 0; i < CACHE_NODES; i++)
		free(t->nodes[i].data);
	pthread_mutex_destroy(&t->lock);
	free(t->root_buf);
	free(t);
}

uint64_t store_tree_size(const struct store_tree *t)
{
	return t->size;
}

uint32_t store_tree_chunk_size(const struct store_tree *t)
{
	return t->chunk;
}

static uint64_t chunks_per(const struct store_tree *t, unsigned level)
{
	return tree_child_span(1, t->fanout, level);
}

/* Loads the level-m node with index j (covering chunks from j*F^(m+1)),
 * whose hash is h, checking it fits its place; caches it. */
static int load_node(struct store_tree *t, unsigned m, uint64_t j, const struct store_hash *h)
{
	char hex[STORE_HASH_HEX];
	enum store_kind kind;
	void *data;
	size_t len;
	int r = store_get(t->s, h, &kind, &data, &len);
	if (r)
		return r;
	struct tree_node n;
	uint64_t span = tree_child_span(t->chunk, t->fanout, m + 1);
	uint64_t expect = t->size - j * span < span ? t->size - j * span : span;
	if (kind != STORE_TREE || tree_node_parse(data, len, &n) || n.level != m ||
	    n.fanout != t->fanout || n.chunk_size != t->chunk || n.size != expect) {
		free(data);
		store_hex(h, hex);
		return store_err(EBADMSG, "tree node %s does not fit its tree; run 'roam verify'",
				 hex);
	}
	pthread_mutex_lock(&t->lock);
	cache_add(t, t->nodes, CACHE_NODES, (uint64_t)m << 56 | j, data, len);
	pthread_mutex_unlock(&t->lock);
	return 0;
}

/* Hash of the level-k subtree containing chunk c (k = -1: the chunk). */
static int lookup(struct store_tree *t, int k, uint64_t c, struct store_hash *ret)
{
	unsigned L = t->root.level;
	if (c >= t->nchunks || k >= (int)L)
		return store_err(EINVAL, "chunk %llu is outside the tree",
				 (unsigned long long)c);
	const uint8_t *p = t->root.children +
		(size_t)(c / chunks_per(t, L)) * STORE_HASH_LEN;
	memcpy(ret->b, p, STORE_HASH_LEN);
	for (int m = (int)L - 1; m > k; m--) {
		if (store_hash_is_zero(ret))
			return 0;
		uint64_t j = c / chunks_per(t, (unsigned)m + 1);
		uint64_t key = (uint64_t)m << 56 | j;
		size_t idx = (size_t)(c / chunks_per(t, (unsigned)m) % t->fanout);
		for (int tries = 0;; tries++) {
			pthread_mutex_lock(&t->lock);
			struct cache_ent *e = cache_find(t, t->nodes, CACHE_NODES, key);
			if (e) {
				struct tree_node n;
				tree_node_parse(e->data, e->len, &n);
				memcpy(ret->b, n.children + idx * STORE_HASH_LEN, STORE_HASH_LEN);
			}
			pthread_mutex_unlock(&t->lock);
			if (e)
				break;
			if (tries)
				return store_err(EIO, "tree cache failure");
			int r = load_node(t, (unsigned)m, j, ret);
			if (r)
				return r;
		}
	}
	return 0;
}

int store_tree_chunk_hash(struct store_tree *t, uint64_t index, struct store_hash *ret)
{
	return lookup(t, -1, index, ret);
}

/* Copies part of chunk c (from offset off, n bytes) into buf. */
static int read_chunk(struct store_tree *t, uint64_t c, void *buf, size_t off, size_t n)
{
	pthread_mutex_lock(&t->lock);
	struct cache_ent *e = cache_find(t, t->chunks, CACHE_CHUNKS, c);
	if (e)
		memcpy(buf, (uint8_t *)e->data + off, n);
	pthread_mutex_unlock(&t->lock);
	if (e)
		return 0;
	struct store_hash h;
	int r = lookup(t, -1, c, &h);
	if (r)
		return r;
	if (store_hash_is_zero(&h)) {
		memset(buf, 0, n);
		return 0;
	}
	void *data;
	size_t len;
	r = store_get(t->s, &h, NULL, &data, &len);
	if (r)
		return r;
	uint64_t expect = t->size - c * t->chunk < t->chunk ? t->size - c * t->chunk : t->chunk;
	if (len != expect) {
		free(data);
		char hex[STORE_HASH_HEX];
		store_hex(&h, hex);
		return store_err(EBADMSG, "chunk %s has %zu bytes where the tree needs %llu; "
				 "run 'roam verify'", hex, len, (unsigned long long)expect);
	}
	memcpy(buf, (uint8_t *)data + off, n);
	pthread_mutex_lock(&t->lock);
	cache_add(t, t->chunks, CACHE_CHUNKS, c, data, len);
	pthread_mutex_unlock(&t->lock);
	return 0;
}

ssize_t store_tree_read(struct store_tree *t, void *buf, size_t len, uint64_t off)
{
	if (off >= t->size)
		return 0;
	if (len > t->size - off)
		len = (size_t)(t->size - off);
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	size_t done = 0;
	while (done < len) {
		uint64_t pos = off + done;
		uint64_t c = pos / t->chunk;
		size_t in = (size_t)(pos % t->chunk);
		size_t n = t->chunk - in < len - done ? t->chunk - in : len - done;
		int r = read_chunk(t, c, (uint8_t *)buf + done, in, n);
		if (r)
			return r;
		done += n;
	}
	return (ssize_t)done;
}

/* ---- builder ------------------------------------------------------------ */

struct change {
	uint64_t idx, seq;
	struct store_hash h;
};

struct store_tree_builder {
	struct store *s;
	uint64_t size, nchunks;
	struct store_tree *base;
	struct change *chg;
	size_t n, cap;
	int puts;           /* in the open transaction */
	bool in_txn;
};

int store_tree_builder_new(struct store *s, uint64_t size, const struct store_hash *base,
			   struct store_tree_builder **ret)
{
	struct store_tree_builder *b = calloc(1, sizeof(*b));
	if (!b)
		return store_err(ENOMEM, "out of memory");
	b->s = s;
	b->size = size;
	b->nchunks = (size + s->chunk_size - 1) / s->chunk_size;
	if (base) {
		int r = store_tree_open(s, base, &b->base);
		if (r) {
			free(b);
			return r;
		}
		if (b->base->size != size || b->base->chunk != s->chunk_size ||
		    b->base->fanout != TREE_FANOUT) {
			store_tree_free(b->base);
			free(b);
			return store_err(EINVAL, "base tree has another size or chunk size; a "
					 "tree can only be built over a base of the same shape");
		}
	}
	*ret = b;
	return 0;
}

void store_tree_builder_free(struct store_tree_builder *b)
{
	if (!b)
		return;
	if (b->in_txn)
		store_txn_abort(b->s);
	store_tree_free(b->base);
	free(b->chg);
	free(b);
}

static int add_change(struct store_tree_builder *b, uint64_t idx, const struct store_hash *h)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		struct change *c = realloc(b->chg, cap * sizeof(*c));
		if (!c)
			return store_err(ENOMEM, "out of memory");
		b->chg = c;
		b->cap = cap;
	}
	b->chg[b->n] = (struct change){ idx, b->n, *h };
	b->n++;
	return 0;
}

static size_t chunk_len(const struct store_tree_builder *b, uint64_t idx)
{
	uint32_t c = b->s->chunk_size;
	return b->size - idx * c < c ? (size_t)(b->size - idx * c) : c;
}

/* Opens the builder's write transaction, or commits it every 256 blobs. */
static int blob_txn(struct store_tree_builder *b, bool after)
{
	int r = 0;
	if (!after && !b->in_txn) {
		if ((r = store_txn_begin(b->s)))
			return r;
		b->in_txn = true;
		b->puts = 0;
	} else if (after && ++b->puts >= 256) {
		b->in_txn = false;
		r = store_txn_commit(b->s);
	}
	return r;
}

int store_tree_builder_set(struct store_tree_builder *b, uint64_t index, const void *data,
			   size_t len)
{
	if (index >= b->nchunks || len != chunk_len(b, index))
		return store_err(EINVAL, "chunk %llu: wrong index or length %zu",
				 (unsigned long long)index, len);
	struct store_hash h = { { 0 } };
	if (!store_is_zero(data, len)) {
		int r = blob_txn(b, false);
		if (!r)
			r = store_put(b->s, STORE_BLOB, data, len, &h);
		if (!r)
			r = blob_txn(b, true);
		if (r)
			return r;
	}
	return add_change(b, index, &h);
}

int store_tree_builder_set_blob(struct store_tree_builder *b, uint64_t index,
				const struct store_blob *blob)
{
	if (index >= b->nchunks || blob->size != chunk_len(b, index))
		return store_err(EINVAL, "chunk %llu: wrong index or length %zu",
				 (unsigned long long)index, blob->size);
	int r = blob_txn(b, false);
	if (!r)
		r = store_put_encoded(b->s, &blob->h, STORE_BLOB, blob->size, blob->codec,
				      blob->stored, blob->stored_len);
	if (r == -ESTALE && blob->data) {
		struct store_blob plain;
		r = store_blob_encode(b->s, blob->data, blob->size, &blob->h, &plain);
		if (!r)
			r = store_put_encoded(b->s, &plain.h, STORE_BLOB, plain.size, plain.codec,
					      plain.stored, plain.stored_len);
		store_blob_release(&plain);
	}
	if (!r)
		r = blob_txn(b, true);
	return r ? r : add_change(b, index, &blob->h);
}

int store_tree_builder_set_hash(struct store_tree_builder *b, uint64_t index,
				const struct store_hash *h)
{
	if (index >= b->nchunks)
		return store_err(EINVAL, "chunk %llu is outside the tree", (unsigned long long)index);
	return add_change(b, index, h);
}

static int cmp_change(const void *a, const void *b)
{
	const struct change *x = a, *y = b;
	if (x->idx != y->idx)
		return x->idx < y->idx ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Pushes the unchanged chunks [p, end) from the base (or zeros). */
static int push_unchanged(struct store_tree_builder *b, struct tree_writer *w, uint64_t p,
			  uint64_t end)
{
	unsigned root = tree_root_level(b->size, b->s->chunk_size, TREE_FANOUT);
	static const struct store_hash zero;
	while (p < end) {
		int k;
		/* The largest aligned subtree that fits before the next change. */
		for (k = (int)root - 1; k >= 0; k--) {
			uint64_t per = tree_child_span(1, TREE_FANOUT, (unsigned)k + 1);
			if (p % per == 0 && (p + per <= end || end == b->nchunks))
				break;
		}
		struct store_hash h = zero;
		int r;
		if (k >= 0) {
			if (b->base && (r = lookup(b->base, k, p, &h)))
				return r;
			if ((r = tree_writer_push_node(w, (unsigned)k, &h)))
				return r;
			uint64_t per = tree_child_span(1, TREE_FANOUT, (unsigned)k + 1);
			p = p + per < b->nchunks ? p + per : b->nchunks;
		} else {
			if (b->base && (r = lookup(b->base, -1, p, &h)))
				return r;
			if ((r = tree_writer_push(w, &h)))
				return r;
			p++;
		}
	}
	return 0;
}

int store_tree_builder_finish(struct store_tree_builder *b, struct store_hash *ret)
{
	int r;
	if (b->base && b->n == 0) {
		if (b->in_txn && (r = store_txn_commit(b->s)))
			return r;
		b->in_txn = false;
		*ret = b->base->root_hash;
		/* Pin the reused root for this handle, like any other reuse. */
		if ((r = store_txn_begin(b->s)))
			return r;
		pthread_mutex_lock(&b->s->lock);
		r = store_pin_locked(b->s, ret);
		pthread_mutex_unlock(&b->s->lock);
		if (r < 0) {
			store_txn_abort(b->s);
			return r;
		}
		return store_txn_commit(b->s);
	}
	if (b->n)
		qsort(b->chg, b->n, sizeof(*b->chg), cmp_change);
	if (!b->in_txn) {
		if ((r = store_txn_begin(b->s)))
			return r;
		b->in_txn = true;
	}
	struct tree_writer *w;
	if ((r = tree_writer_new(b->s, b->size, &w)))
		return r;
	uint64_t p = 0;
	for (size_t i = 0; i < b->n && !r; i++) {
		if (i + 1 < b->n && b->chg[i + 1].idx == b->chg[i].idx)
			continue;   /* a later change of the same chunk wins */
		const struct change *c = &b->chg[i];
		r = push_unchanged(b, w, p, c->idx);
		if (!r && !store_hash_is_zero(&c->h)) {
			/* Reused hashes must exist, and get pinned for this handle. */
			pthread_mutex_lock(&b->s->lock);
			int e = store_pin_locked(b->s, &c->h);
			pthread_mutex_unlock(&b->s->lock);
			if (e == 0) {
				char hex[STORE_HASH_HEX];
				store_hex(&c->h, hex);
				e = store_err(ENOENT, "chunk %llu: blob %s is not in the store",
					      (unsigned long long)c->idx, hex);
			}
			r = e < 0 ? e : 0;
		}
		if (!r)
			r = tree_writer_push(w, &c->h);
		p = c->idx + 1;
	}
	if (!r)
		r = push_unchanged(b, w, p, b->nchunks);
	if (!r)
		r = tree_writer_finish(w, ret);
	tree_writer_free(w);
	b->in_txn = false;
	if (r) {
		store_txn_abort(b->s);
		return r;
	}
	return store_txn_commit(b->s);
}
