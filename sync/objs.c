/* Object helpers for sync and bundles (objs.h). Tree nodes are parsed here
 * from their documented encoding (image/store_int.h) only far enough to list
 * children; store_put_raw validates a node itself when it is stored (its
 * header, and that its children exist and fit it). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include "image/commit.h"
#include "sync/objs.h"

int sync_obj_decode(const struct store_hash *h, enum store_codec codec, uint64_t size,
		    const void *stored, size_t stored_len, void **ret)
{
	if (size > SYNC_OBJ_MAX)
		return -E2BIG;
	void *buf = malloc(size ? size : 1);
	if (!buf)
		return -ENOMEM;
	if (codec == STORE_CODEC_RAW) {
		if (stored_len != size)
			goto bad;
		memcpy(buf, stored, size);
	} else if (codec == STORE_CODEC_ZSTD) {
		unsigned long long fs = ZSTD_getFrameContentSize(stored, stored_len);
		if (fs != size)
			goto bad;
		size_t n = ZSTD_decompress(buf, size, stored, stored_len);
		if (ZSTD_isError(n) || n != size)
			goto bad;
	} else {
		goto bad;
	}
	struct store_hash got;
	store_hash_buf(buf, size, &got);
	if (!store_hash_eq(&got, h))
		goto bad;
	*ret = buf;
	return 0;
bad:
	free(buf);
	return -EBADMSG;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int sync_obj_tree(const void *data, size_t len, struct sync_tree_node *ret)
{
	const uint8_t *p = data;
	if (len < 24 || memcmp(p, "RTRE", 4) != 0)
		return -EBADMSG;
	uint32_t count = le32(p + 12);
	if (count > 4096 || len != 24 + (size_t)count * STORE_HASH_LEN)
		return -EBADMSG;
	*ret = (struct sync_tree_node){ .level = p[5], .fanout = (unsigned)p[6] | (unsigned)p[7] << 8,
					.chunk_size = le32(p + 8), .count = count,
					.size = (uint64_t)le32(p + 20) << 32 | le32(p + 16),
					.children = p + 24 };
	return 0;
}

int sync_ref_target_ok(struct store *s, const char *name, const struct store_hash *h, char *err,
		       size_t errlen)
{
	struct store_obj_info info;
	int r = store_stat(s, h, &info);
	if (r < 0) {
		snprintf(err, errlen, "%s", store_last_error());
		return r;
	}
	size_t n = strlen(name);
	enum store_kind want = n >= 6 && !strcmp(name + n - 6, "/lease") ? STORE_BLOB : STORE_COMMIT;
	if (info.kind == want)
		return 0;
	char hex[STORE_HASH_HEX];
	store_hash_hex(h, hex);
	snprintf(err, errlen, "ref %s would name %s %.16s, not a %s", name,
		 store_kind_name(info.kind), hex, store_kind_name(want));
	return -EBADMSG;
}

int sync_obj_children(enum store_kind kind, const void *data, size_t len,
		      int (*fn)(void *arg, const struct store_hash *h, enum store_kind kind),
		      void *arg)
{
	if (kind == STORE_TREE) {
		struct sync_tree_node t;
		if (sync_obj_tree(data, len, &t) < 0)
			return -EBADMSG;
		enum store_kind ck = t.level == 0 ? STORE_BLOB : STORE_TREE;
		for (uint32_t i = 0; i < t.count; i++) {
			struct store_hash h;
			memcpy(h.b, t.children + (size_t)i * STORE_HASH_LEN, STORE_HASH_LEN);
			if (store_hash_is_zero(&h))
				continue;
			int rc = fn(arg, &h, ck);
			if (rc)
				return rc;
		}
		return 0;
	}
	if (kind == STORE_COMMIT) {
		struct store_commit *c;
		if (store_commit_decode(data, len, &c) < 0)
			return -EBADMSG;
		int rc = 0;
		for (size_t i = 0; !rc && i < c->n_parents; i++)
			rc = fn(arg, &c->parents[i], STORE_COMMIT);
		for (size_t i = 0; !rc && i < c->n_roots; i++)
			rc = fn(arg, &c->roots[i].hash, c->roots[i].kind);
		store_commit_free(c);
		return rc;
	}
	return 0;
}

struct sync_hset {
	struct store_hash *slots;   /* zero hash = empty */
	size_t cap, n;
};

struct sync_hset *sync_hset_new(void)
{
	struct sync_hset *hs = calloc(1, sizeof(*hs));
	if (!hs)
		return NULL;
	hs->cap = 1024;
	hs->slots = calloc(hs->cap, sizeof(*hs->slots));
	if (!hs->slots) {
		free(hs);
		return NULL;
	}
	return hs;
}

void sync_hset_free(struct sync_hset *hs)
{
	if (!hs)
		return;
	free(hs->slots);
	free(hs);
}

static size_t slot_of(const struct store_hash *h, size_t cap)
{
	uint64_t v;
	memcpy(&v, h->b, sizeof(v));
	return (size_t)v & (cap - 1);
}

static bool hset_insert(struct store_hash *slots, size_t cap, const struct store_hash *h)
{
	for (size_t i = slot_of(h, cap);; i = (i + 1) & (cap - 1)) {
		if (store_hash_is_zero(&slots[i])) {
			slots[i] = *h;
			return true;
		}
		if (store_hash_eq(&slots[i], h))
			return false;
	}
}

int sync_hset_add(struct sync_hset *hs, const struct store_hash *h)
{
	if (store_hash_is_zero(h) || sync_hset_has(hs, h))
		return 0;
	if ((hs->n + 1) * 2 > hs->cap) {
		size_t cap = hs->cap * 2;
		struct store_hash *s = calloc(cap, sizeof(*s));
		if (!s)
			return -ENOMEM;
		for (size_t i = 0; i < hs->cap; i++)
			if (!store_hash_is_zero(&hs->slots[i]))
				hset_insert(s, cap, &hs->slots[i]);
		free(hs->slots);
		hs->slots = s;
		hs->cap = cap;
	}
	hset_insert(hs->slots, hs->cap, h);
	hs->n++;
	return 1;
}

bool sync_hset_has(const struct sync_hset *hs, const struct store_hash *h)
{
	if (store_hash_is_zero(h))
		return false;
	for (size_t i = slot_of(h, hs->cap);; i = (i + 1) & (hs->cap - 1)) {
		if (store_hash_is_zero(&hs->slots[i]))
			return false;
		if (store_hash_eq(&hs->slots[i], h))
			return true;
	}
}

size_t sync_hset_count(const struct sync_hset *hs)
{
	return hs->n;
}

int sync_hlist_push(struct sync_hlist *l, const struct store_hash *h, enum store_kind kind)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct sync_hent *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n].h = *h;
	l->v[l->n].kind = kind;
	l->n++;
	return 0;
}

void sync_hlist_free(struct sync_hlist *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

struct reach_ctx { struct sync_hset *set; struct sync_hlist *queue; };

static int reach_child(void *arg, const struct store_hash *h, enum store_kind kind)
{
	struct reach_ctx *c = arg;
	int rc = sync_hset_add(c->set, h);
	if (rc <= 0)
		return rc;
	return kind == STORE_TREE || kind == STORE_COMMIT ? sync_hlist_push(c->queue, h, kind) : 0;
}

int sync_reach(struct store *s, const struct store_hash *h, struct sync_hset *set)
{
	struct sync_hlist queue = { 0 };
	struct reach_ctx c = { set, &queue };
	struct store_obj_info info;
	int rc = store_stat(s, h, &info);
	if (rc < 0)
		return rc;
	rc = reach_child(&c, h, info.kind);
	while (rc >= 0 && queue.n) {
		struct sync_hent e = queue.v[--queue.n];
		void *data;
		size_t len;
		rc = store_get(s, &e.h, NULL, &data, &len);
		if (rc < 0)
			break;
		rc = sync_obj_children(e.kind, data, len, reach_child, &c);
		free(data);
	}
	sync_hlist_free(&queue);
	return rc < 0 ? rc : 0;
}

int sync_is_ancestor(struct store *s, const struct store_hash *anc, const struct store_hash *new)
{
	struct sync_hset *seen = sync_hset_new();
	struct sync_hlist queue = { 0 };
	int rc = seen ? sync_hlist_push(&queue, new, STORE_COMMIT) : -ENOMEM;
	int found = 0;
	while (rc >= 0 && queue.n && !found) {
		struct store_hash h = queue.v[--queue.n].h;
		if (store_hash_eq(&h, anc)) {
			found = 1;
			break;
		}
		if (sync_hset_add(seen, &h) != 1)
			continue;
		struct store_commit *c;
		rc = store_commit_get(s, &h, &c);
		if (rc == -ENOENT) {
			rc = 0;
			continue;
		}
		if (rc < 0)
			break;
		for (size_t i = 0; rc >= 0 && i < c->n_parents; i++)
			rc = sync_hlist_push(&queue, &c->parents[i], STORE_COMMIT);
		store_commit_free(c);
	}
	sync_hlist_free(&queue);
	sync_hset_free(seen);
	return rc < 0 ? rc : found;
}

int sync_ref_add(struct sync_ref **v, size_t *n, const char *name, const struct store_hash *h)
{
	struct sync_ref *nv = realloc(*v, (*n + 1) * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	*v = nv;
	snprintf(nv[*n].name, sizeof(nv[*n].name), "%s", name);
	nv[*n].h = *h;
	(*n)++;
	return 0;
}
