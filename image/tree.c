/* Tree node encoding (see store_int.h) and the streaming tree writer that
 * turns an ordered sequence of chunk hashes into stored nodes with bounded
 * memory (one partial node per level). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "image/store_int.h"

uint64_t tree_child_span(uint32_t chunk_size, unsigned fanout, unsigned level)
{
	uint64_t span = chunk_size;
	for (unsigned i = 0; i < level; i++)
		if (__builtin_mul_overflow(span, (uint64_t)fanout, &span))
			return 0;
	return span;
}

uint64_t tree_child_size(const struct tree_node *n, uint64_t k)
{
	uint64_t span = tree_child_span(n->chunk_size, n->fanout, n->level);
	return n->size - k * span < span ? n->size - k * span : span;
}

bool tree_child_fits(const struct tree_node *n, uint64_t k, enum store_kind kind,
		     const struct tree_node *c)
{
	uint64_t want = tree_child_size(n, k);
	return n->level ? kind == STORE_TREE && c->level == n->level - 1 && c->size == want &&
			  c->chunk_size == n->chunk_size && c->fanout == n->fanout
			: kind == STORE_BLOB && c->size == want;
}

unsigned tree_root_level(uint64_t size, uint32_t chunk_size, unsigned fanout)
{
	unsigned level = 0;
	for (;;) {
		uint64_t span = tree_child_span(chunk_size, fanout, level), full;
		if (!span || __builtin_mul_overflow(span, (uint64_t)fanout, &full) || size <= full)
			return level;
		level++;
	}
}

size_t tree_node_encode(uint8_t *buf, unsigned level, unsigned fanout, uint32_t chunk_size,
			uint64_t size, const uint8_t *children, uint32_t count)
{
	memcpy(buf, TREE_MAGIC, 4);
	buf[4] = TREE_VERSION;
	buf[5] = (uint8_t)level;
	store_put_le(buf + 6, fanout, 2);
	store_put_le(buf + 8, chunk_size, 4);
	store_put_le(buf + 12, count, 4);
	store_put_le(buf + 16, size, 8);
	memcpy(buf + TREE_HDR, children, (size_t)count * STORE_HASH_LEN);
	return TREE_HDR + (size_t)count * STORE_HASH_LEN;
}

int tree_node_parse(const void *data, size_t len, struct tree_node *ret)
{
	const uint8_t *p = data;
	if (len < TREE_HDR || memcmp(p, TREE_MAGIC, 4))
		return store_err(EINVAL, "not a tree node (bad magic)");
	if (p[4] != TREE_VERSION)
		return store_err(EINVAL, "tree node version %u is not supported (roam knows %u)",
				 p[4], TREE_VERSION);
	struct tree_node n = {
		.level = p[5],
		.fanout = (unsigned)store_get_le(p + 6, 2),
		.chunk_size = (uint32_t)store_get_le(p + 8, 4),
		.count = (uint32_t)store_get_le(p + 12, 4),
		.size = store_get_le(p + 16, 8),
		.children = p + TREE_HDR,
	};
	uint32_t c = n.chunk_size;
	if (n.level > TREE_LEVEL_MAX || n.fanout < TREE_FANOUT_MIN || n.fanout > TREE_FANOUT_MAX ||
	    c < STORE_CHUNK_MIN || c > STORE_CHUNK_MAX || (c & (c - 1)))
		return store_err(EINVAL, "tree node has a bad level, fanout or chunk size");
	if (n.count > n.fanout || len != TREE_HDR + (size_t)n.count * STORE_HASH_LEN)
		return store_err(EINVAL, "tree node has a bad child count");
	uint64_t span = tree_child_span(c, n.fanout, n.level);
	if (!span || n.size > (1ULL << 62))
		return store_err(EINVAL, "tree node is too large");
	if (n.size / span + (n.size % span != 0) != n.count)
		return store_err(EINVAL, "tree node size does not match its child count");
	*ret = n;
	return 0;
}

/* ---- streaming writer -------------------------------------------------- */

struct tw_level {
	uint8_t *buf;        /* fanout hashes */
	uint32_t count;      /* in the current (partial) node */
	uint64_t pos;        /* children pushed at this level in total */
	uint64_t total;      /* children this level will get */
	bool all_zero;
};

struct tree_writer {
	struct store *s;
	uint64_t size;
	uint32_t chunk;
	unsigned fanout, root;   /* root level */
	struct tw_level lv[TREE_LEVEL_MAX + 1];
	uint8_t *nodebuf;
	int err;
};

int tree_writer_new(struct store *s, uint64_t size, struct tree_writer **ret)
{
	struct tree_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return store_err(ENOMEM, "out of memory");
	w->s = s;
	w->size = size;
	w->chunk = s->chunk_size;
	w->fanout = TREE_FANOUT;
	w->root = tree_root_level(size, w->chunk, w->fanout);
	if (w->root > TREE_LEVEL_MAX || size > (1ULL << 62)) {
		free(w);
		return store_err(EFBIG, "a file of %llu bytes is too large for a tree",
				 (unsigned long long)size);
	}
	w->nodebuf = malloc(TREE_HDR + (size_t)STORE_HASH_LEN * w->fanout);
	if (!w->nodebuf) {
		free(w);
		return store_err(ENOMEM, "out of memory");
	}
	for (unsigned k = 0; k <= w->root; k++) {
		uint64_t span = tree_child_span(w->chunk, w->fanout, k);
		w->lv[k].total = size / span + (size % span != 0);
		w->lv[k].all_zero = true;
		w->lv[k].buf = malloc((size_t)STORE_HASH_LEN * w->fanout);
		if (!w->lv[k].buf) {
			tree_writer_free(w);
			return store_err(ENOMEM, "out of memory");
		}
	}
	*ret = w;
	return 0;
}

void tree_writer_free(struct tree_writer *w)
{
	if (!w)
		return;
	for (unsigned k = 0; k <= TREE_LEVEL_MAX; k++)
		free(w->lv[k].buf);
	free(w->nodebuf);
	free(w);
}

uint64_t tree_writer_pos(const struct tree_writer *w)
{
	return w->lv[0].pos;
}

/* Stores the node at level k from its buffer; *ret = its hash (zero when
 * every child is zero and it is not the root). */
static int close_node(struct tree_writer *w, unsigned k, uint64_t node_size, bool is_root,
		      struct store_hash *ret)
{
	struct tw_level *l = &w->lv[k];
	int r = 0;
	if (l->all_zero && !is_root) {
		memset(ret, 0, sizeof(*ret));
	} else {
		size_t n = tree_node_encode(w->nodebuf, k, w->fanout, w->chunk, node_size,
					    l->buf, l->count);
		r = store_put(w->s, STORE_TREE, w->nodebuf, n, ret);
	}
	l->count = 0;
	l->all_zero = true;
	return r;
}

static int append(struct tree_writer *w, unsigned k, const struct store_hash *h)
{
	struct tw_level *l = &w->lv[k];
	if (l->pos >= l->total || (k == w->root && l->count >= w->fanout))
		return store_err(EINVAL, "tree writer: more data than the declared size");
	memcpy(l->buf + (size_t)l->count * STORE_HASH_LEN, h->b, STORE_HASH_LEN);
	l->count++;
	l->pos++;
	if (!store_hash_is_zero(h))
		l->all_zero = false;
	if (k == w->root)
		return 0;
	if (l->count < w->fanout && l->pos < l->total)
		return 0;
	/* A level-k node is complete: it spans fanout children of span S(k). */
	uint64_t span = tree_child_span(w->chunk, w->fanout, k + 1);
	uint64_t index = (l->pos - 1) / w->fanout;
	uint64_t node_size = w->size - index * span < span ? w->size - index * span : span;
	struct store_hash nh;
	int r = close_node(w, k, node_size, false, &nh);
	if (r)
		return r;
	return append(w, k + 1, &nh);
}

int tree_writer_push(struct tree_writer *w, const struct store_hash *h)
{
	if (w->err)
		return w->err;
	int r = append(w, 0, h);
	if (r)
		w->err = r;
	return r;
}

int tree_writer_push_node(struct tree_writer *w, unsigned level, const struct store_hash *h)
{
	if (w->err)
		return w->err;
	if (level >= w->root)
		return store_err(EINVAL, "tree writer: node level %u at root level %u", level,
				 w->root);
	for (unsigned k = 0; k <= level; k++)
		if (w->lv[k].count)
			return store_err(EINVAL, "tree writer: unaligned subtree");
	uint64_t chunks_per = tree_child_span(1, w->fanout, level + 1);
	uint64_t start = w->lv[0].pos;
	uint64_t end = start + chunks_per < w->lv[0].total ? start + chunks_per : w->lv[0].total;
	for (unsigned k = 0; k <= level; k++) {
		uint64_t per = tree_child_span(1, w->fanout, k);
		w->lv[k].pos = (end + per - 1) / per;
	}
	int r = append(w, level + 1, h);
	if (r)
		w->err = r;
	return r;
}

int tree_writer_finish(struct tree_writer *w, struct store_hash *ret)
{
	if (w->err)
		return w->err;
	for (unsigned k = 0; k <= w->root; k++)
		if (w->lv[k].pos != w->lv[k].total)
			return store_err(EINVAL, "tree writer: %llu of %llu chunks given",
					 (unsigned long long)w->lv[0].pos,
					 (unsigned long long)w->lv[0].total);
	return close_node(w, w->root, w->size, true, ret);
}
