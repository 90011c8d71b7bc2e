/* Objects over the wire codec with a store on each end (xfer.h): basis maps
 * built by walking two commits' trees side by side (only where they
 * differ), sending one object, and resolving one received record. Tree
 * nodes are read here from their documented encoding (image/store_int.h)
 * only far enough to pair children by position. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "image/commit.h"
#include "sync/objs.h"
#include "sync/xfer.h"

struct bpair { struct store_hash h, base; };

struct sync_bmap {
	struct bpair *v;
	size_t n, cap;
	bool sorted;
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
	const struct store_hash *bh = sync_bmap_find(m, h);
	void *base = NULL;
	size_t base_len = 0;
	enum store_kind bk;
	if (bh && (store_get(s, bh, &bk, &base, &base_len) < 0 || bk != kind)) {
		free(base);
		base = NULL;
	}
	rc = base ? sync_wenc_obj_basis(e, kind, data, len, bh, base, base_len)
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
		char hex[STORE_HASH_HEX];
		store_hash_hex(&r->base, hex);
		enum store_kind bk;
		void *base;
		size_t blen;
		int rc = store_get(s, &r->base, &bk, &base, &blen);
		if (rc == -ENOENT) {
			snprintf(err, errlen, "a delta names base object %.16s, which this store does not "
				 "have: refused", hex);
			return rc;
		}
		if (rc < 0) {
			snprintf(err, errlen, "cannot read base object %.16s of a delta: %s", hex,
				 store_last_error());
			return rc;
		}
		if (bk != r->kind) {
			free(base);
			snprintf(err, errlen, "a delta for a %s names base object %.16s, which is a %s: "
				 "refused", store_kind_name(r->kind), hex, store_kind_name(bk));
			return -EINVAL;
		}
		rc = sync_wdec_undelta(d, base, blen, r->body, r->len, &out, &len);
		free(base);
		if (rc < 0) {
			snprintf(err, errlen, "%s (base %.16s)", sync_wdec_error(d), hex);
			return rc;
		}
	}
	store_hash_buf(out, len, ret_h);
	*ret = out;
	*ret_len = len;
	return 0;
}
