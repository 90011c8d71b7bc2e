/* Objects: put (hash, compress when it pays, check references, pin), get
 * (decompress and re-hash: a mismatch is -EBADMSG, never data), raw access
 * for moving objects between stores, and prefix lookup. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "image/commit.h"
#include "image/store_int.h"

int store_encode(struct store *s, const void *data, size_t len, const void **ret_stored,
		 size_t *ret_len, enum store_codec *ret_codec, void **ret_buf)
{
	*ret_buf = NULL;
	*ret_stored = data;
	*ret_len = len;
	*ret_codec = STORE_CODEC_RAW;
	if (len < 64)
		return 0;
	/* Compression pays when it saves at least 1/32 of the bytes; only room
	 * for that much is offered, so zstd gives up early on random data. */
	size_t cap = len - len / 32;
	void *buf = malloc(store_compress_bound(len));
	if (!buf)
		return store_err(ENOMEM, "out of memory");
	size_t n;
	int r = store_compress(s, data, len, buf, cap, &n);
	if (r) {
		/* dstSize_tooSmall: incompressible. */
		free(buf);
		return 0;
	}
	*ret_buf = buf;
	*ret_stored = buf;
	*ret_len = n;
	*ret_codec = STORE_CODEC_ZSTD;
	return 0;
}

struct refcheck {
	struct store *s;
	int r;
	const char *what;
	bool kinds;     /* check the kind too (a commit's few children) */
};

static int check_one(void *arg, const struct store_hash *h, enum store_kind kind)
{
	struct refcheck *c = arg;
	struct store_obj_info info;
	int r;
	if (c->kinds) {
		r = store_stat(c->s, h, &info);
		r = r == 0 ? 1 : r == -ENOENT ? 0 : r;
	} else {
		r = store_has(c->s, h);
	}
	if (r < 0)
		return r;
	char hex[STORE_HASH_HEX];
	store_hex(h, hex);
	if (r == 0)
		return store_err(ENOENT, "%s references %s %s, which is not in the store",
				 c->what, store_kind_name(kind), hex);
	if (c->kinds && info.kind != kind)
		return store_err(EBADMSG, "%s references %s as a %s; it is a %s", c->what, hex,
				 store_kind_name(kind), store_kind_name(info.kind));
	return 0;
}

int store_check_refs(struct store *s, enum store_kind kind, const void *data, size_t len)
{
	struct refcheck c = { s, 0, store_kind_name(kind), kind == STORE_COMMIT };
	return store_children(kind, data, len, check_one, &c);
}

int store_children(enum store_kind kind, const void *data, size_t len,
		   int (*fn)(void *arg, const struct store_hash *h, enum store_kind kind),
		   void *arg)
{
	if (kind == STORE_TREE) {
		struct tree_node n;
		int r = tree_node_parse(data, len, &n);
		if (r)
			return r;
		enum store_kind ck = n.level ? STORE_TREE : STORE_BLOB;
		for (uint32_t i = 0; i < n.count; i++) {
			struct store_hash h;
			memcpy(h.b, n.children + (size_t)i * STORE_HASH_LEN, STORE_HASH_LEN);
			if (store_hash_is_zero(&h))
				continue;
			if ((r = fn(arg, &h, ck)))
				return r;
		}
		return 0;
	}
	if (kind == STORE_COMMIT) {
		struct store_commit *c;
		int r = store_commit_decode(data, len, &c);
		if (r)
			return r;
		for (size_t i = 0; i < c->n_parents && !r; i++)
			r = fn(arg, &c->parents[i], STORE_COMMIT);
		for (size_t i = 0; i < c->n_roots && !r; i++)
			r = fn(arg, &c->roots[i].hash, c->roots[i].kind);
		store_commit_free(c);
		return r;
	}
	return 0;
}

int store_insert_locked(struct store *s, const struct store_hash *h, enum store_kind kind,
			uint64_t size, enum store_codec codec, const void *stored,
			size_t stored_len)
{
	sqlite3_stmt *st = s->st_put;
	sqlite3_bind_blob(st, 1, h->b, STORE_HASH_LEN, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, kind);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)size);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)stored_len);
	sqlite3_bind_int(st, 5, codec);
	sqlite3_bind_blob(st, 6, stored, (int)stored_len, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	int added = sqlite3_changes(s->db) > 0;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, "storing an object");
	int r = store_pend_locked(s, h);
	return r ? r : added;
}

static int has_locked(struct store *s, const struct store_hash *h)
{
	sqlite3_stmt *st = s->st_has;
	sqlite3_bind_blob(st, 1, h->b, STORE_HASH_LEN, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return store_sqlerr(s, rc, "looking up an object");
}

int store_pin_locked(struct store *s, const struct store_hash *h)
{
	int r = has_locked(s, h);
	if (r <= 0)
		return r;
	r = store_pend_locked(s, h);
	return r ? r : 1;
}

int store_has(struct store *s, const struct store_hash *h)
{
	pthread_mutex_lock(&s->lock);
	int r = has_locked(s, h);
	pthread_mutex_unlock(&s->lock);
	return r;
}

int store_put_encoded(struct store *s, const struct store_hash *h, enum store_kind kind,
		      uint64_t size, enum store_codec codec, const void *stored, size_t stored_len)
{
	int r = store_txn_begin(s);
	if (r)
		return r;
	pthread_mutex_lock(&s->lock);
	r = store_pin_locked(s, h);
	if (r == 0 && codec == STORE_CODEC_DELTA) {
		r = store_delta_check_locked(s, stored, stored_len);
		r = r > 0 ? 0 : r < 0 ? r : -ESTALE;
	}
	if (r == 0)
		r = store_insert_locked(s, h, kind, size, codec, stored, stored_len);
	pthread_mutex_unlock(&s->lock);
	if (r < 0 && r != -ESTALE) {
		store_txn_abort(s);
		return r;
	}
	int c = store_txn_commit(s);   /* -ESTALE wrote nothing: the caller's transaction goes on */
	return c ? c : r == -ESTALE ? r : 0;
}

int store_blob_encode(struct store *s, const void *data, size_t len, const struct store_hash *h,
		      struct store_blob *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->h = *h;
	ret->size = len;
	ret->data = data;
	return store_encode(s, data, len, &ret->stored, &ret->stored_len, &ret->codec, &ret->buf);
}

void store_blob_release(struct store_blob *b)
{
	free(b->buf);
	b->buf = NULL;
}

int store_put(struct store *s, enum store_kind kind, const void *data, size_t len,
	      struct store_hash *ret)
{
	struct store_hash h;
	if (kind < STORE_BLOB || kind > STORE_COMMIT)
		return store_err(EINVAL, "unknown object kind %d", kind);
	if (len > STORE_OBJ_MAX)
		return store_err(E2BIG, "object of %zu bytes is larger than the limit", len);
	store_hash_buf(data, len, &h);
	if (store_hash_is_zero(&h))
		return store_err(EINVAL, "object hashes to zero");
	int r = store_check_refs(s, kind, data, len);
	if (r)
		return r;
	const void *stored;
	size_t stored_len;
	enum store_codec codec;
	void *buf;
	r = store_encode(s, data, len, &stored, &stored_len, &codec, &buf);
	if (r)
		return r;
	r = store_put_encoded(s, &h, kind, len, codec, stored, stored_len);
	free(buf);
	if (!r && ret)
		*ret = h;
	return r;
}

int store_decode_into(struct store *s, const struct store_hash *h, enum store_codec codec,
		      uint64_t size, const void *stored, size_t stored_len, void *out)
{
	int r = 0;
	if (codec == STORE_CODEC_RAW) {
		if (stored_len != size)
			r = -EBADMSG;
		else
			memcpy(out, stored, size);
	} else if (codec == STORE_CODEC_ZSTD) {
		r = store_decompress(s, stored, stored_len, out, size);
	} else if (codec == STORE_CODEC_DELTA) {
		r = store_delta_decode(s, h, stored, stored_len, out, size);
		if (r)
			return r;   /* it names the object and says why */
	} else {
		r = -EBADMSG;
	}
	if (!r) {
		struct store_hash got;
		store_hash_buf(out, size, &got);
		if (!store_hash_eq(&got, h))
			r = -EBADMSG;
	}
	if (r == -EBADMSG) {
		char hex[STORE_HASH_HEX];
		store_hex(h, hex);
		return store_err(EBADMSG, "object %s is corrupt (its content does not "
				 "match its hash); run 'roam verify'", hex);
	}
	return r;
}

int store_decode(struct store *s, const struct store_hash *h, enum store_codec codec,
		 uint64_t size, const void *stored, size_t stored_len, void **ret)
{
	if (size > STORE_OBJ_MAX) {
		char hex[STORE_HASH_HEX];
		store_hex(h, hex);
		return store_err(EBADMSG, "object %s is corrupt (size %llu); run 'roam verify'",
				 hex, (unsigned long long)size);
	}
	void *out = malloc(size ? size : 1);
	if (!out)
		return store_err(ENOMEM, "out of memory");
	int r = store_decode_into(s, h, codec, size, stored, stored_len, out);
	if (r) {
		free(out);
		return r;
	}
	*ret = out;
	return 0;
}

int store_fetch_raw(struct store *s, const struct store_hash *h, struct store_raw *ret)
{
	memset(ret, 0, sizeof(*ret));
	pthread_mutex_lock(&s->lock);
	sqlite3_stmt *st = s->st_get;
	sqlite3_bind_blob(st, 1, h->b, STORE_HASH_LEN, SQLITE_STATIC);
	int rc = sqlite3_step(st), r = 0;
	if (rc == SQLITE_ROW) {
		ret->info.kind = sqlite3_column_int(st, 0);
		ret->info.size = (uint64_t)sqlite3_column_int64(st, 1);
		ret->info.codec = sqlite3_column_int(st, 2);
		const void *p = sqlite3_column_blob(st, 3);
		size_t n = (size_t)sqlite3_column_bytes(st, 3);
		ret->info.stored_size = n;
		ret->data = malloc(n ? n : 1);
		if (!ret->data)
			r = store_err(ENOMEM, "out of memory");
		else if (n)
			memcpy(ret->data, p, n);
	} else if (rc == SQLITE_DONE) {
		char hex[STORE_HASH_HEX];
		store_hex(h, hex);
		r = store_err(ENOENT, "object %s is not in the store", hex);
	} else {
		r = store_sqlerr(s, rc, "reading an object");
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&s->lock);
	return r;
}

int store_get_raw(struct store *s, const struct store_hash *h, struct store_raw *ret)
{
	int r = store_fetch_raw(s, h, ret);
	if (r || ret->info.codec != STORE_CODEC_DELTA)
		return r;
	void *plain;
	r = store_decode(s, h, ret->info.codec, ret->info.size, ret->data, ret->info.stored_size,
			 &plain);
	store_raw_release(ret);
	if (r)
		return r;
	const void *stored;
	size_t len;
	void *buf;
	r = store_encode(s, plain, ret->info.size, &stored, &len, &ret->info.codec, &buf);
	if (!r) {
		if (buf) {
			free(plain);
			plain = buf;
		}
		ret->data = plain;
		ret->info.stored_size = len;
	} else {
		free(plain);
	}
	return r;
}

void store_raw_release(struct store_raw *r)
{
	if (!r)
		return;
	free(r->data);
	r->data = NULL;
}

int store_get(struct store *s, const struct store_hash *h, enum store_kind *ret_kind,
	      void **ret_data, size_t *ret_len)
{
	struct store_raw raw;
	int r = store_fetch_raw(s, h, &raw);
	if (r)
		return r;
	void *out;
	r = store_decode(s, h, raw.info.codec, raw.info.size, raw.data, raw.info.stored_size, &out);
	store_raw_release(&raw);
	if (r)
		return r;
	if (ret_kind)
		*ret_kind = raw.info.kind;
	*ret_data = out;
	*ret_len = raw.info.size;
	return 0;
}

int store_stat(struct store *s, const struct store_hash *h, struct store_obj_info *ret)
{
	pthread_mutex_lock(&s->lock);
	sqlite3_stmt *st = s->st_stat;
	sqlite3_bind_blob(st, 1, h->b, STORE_HASH_LEN, SQLITE_STATIC);
	int rc = sqlite3_step(st), r = 0;
	if (rc == SQLITE_ROW) {
		ret->kind = sqlite3_column_int(st, 0);
		ret->size = (uint64_t)sqlite3_column_int64(st, 1);
		ret->stored_size = (uint64_t)sqlite3_column_int64(st, 2);
		ret->codec = sqlite3_column_int(st, 3);
	} else if (rc == SQLITE_DONE) {
		char hex[STORE_HASH_HEX];
		store_hex(h, hex);
		r = store_err(ENOENT, "object %s is not in the store", hex);
	} else {
		r = store_sqlerr(s, rc, "reading an object");
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* Whether the children of tree node h (data) are stored and fit it: chunks
 * of the size their place calls for, subtrees one level down of the same
 * shape; what verify checks. A tree from elsewhere that did not fit would
 * be stored, and then fail every read. */
static int check_tree_fits(struct store *s, const struct store_hash *h, const void *data, size_t len)
{
	struct tree_node n;
	int r = tree_node_parse(data, len, &n);
	for (uint32_t k = 0; !r && k < n.count; k++) {
		struct store_hash ch;
		memcpy(ch.b, n.children + (size_t)k * STORE_HASH_LEN, STORE_HASH_LEN);
		if (store_hash_is_zero(&ch))
			continue;
		struct tree_node c = { 0 };
		bool ok = false;
		if (n.level == 0) {
			struct store_obj_info info;
			if (!(r = store_stat(s, &ch, &info))) {
				c.size = info.size;
				ok = tree_child_fits(&n, k, info.kind, &c);
			}
		} else {
			enum store_kind kind;
			void *d;
			size_t dl;
			if (!(r = store_get(s, &ch, &kind, &d, &dl))) {
				ok = kind == STORE_TREE && !tree_node_parse(d, dl, &c) &&
				     tree_child_fits(&n, k, kind, &c);
				free(d);
			}
		}
		if (r == -ENOENT)
			r = check_one(&(struct refcheck){ s, 0, "tree", false }, &ch,
				      n.level ? STORE_TREE : STORE_BLOB);
		if (r)
			break;
		if (!ok) {
			char hex[STORE_HASH_HEX];
			store_hex(h, hex);
			r = store_err(EBADMSG, "tree %s: child %u does not fit its place (kind, level "
				      "or size)", hex, k);
		}
	}
	return r;
}

int store_put_raw(struct store *s, const struct store_hash *h, const struct store_raw *raw)
{
	const struct store_obj_info *in = &raw->info;
	char hex[STORE_HASH_HEX];
	store_hex(h, hex);
	if (in->kind < STORE_BLOB || in->kind > STORE_COMMIT ||
	    (in->codec != STORE_CODEC_RAW && in->codec != STORE_CODEC_ZSTD))
		return store_err(EBADMSG, "object %s has an unknown kind or codec", hex);
	void *plain;
	int r = store_decode(s, h, in->codec, in->size, raw->data, in->stored_size, &plain);
	if (r)
		return r == -EBADMSG ? store_err(EBADMSG, "received object %s does not match "
						 "its hash; refusing it", hex) : r;
	r = in->kind == STORE_TREE ? check_tree_fits(s, h, plain, in->size) :
				    store_check_refs(s, in->kind, plain, in->size);
	free(plain);
	if (r)
		return r;
	return store_put_encoded(s, h, in->kind, in->size, in->codec, raw->data, in->stored_size);
}

int store_resolve_prefix(struct store *s, const char *prefix, struct store_hash *ret)
{
	size_t n = strlen(prefix);
	if (n < 4 || n > 2 * STORE_HASH_LEN)
		return store_err(EINVAL, "'%s' is not a hash prefix (4 to 64 hex digits)", prefix);
	uint8_t lo[STORE_HASH_LEN] = { 0 }, hi[STORE_HASH_LEN];
	memset(hi, 0xff, sizeof(hi));
	for (size_t i = 0; i < n; i++) {
		char c = prefix[i];
		int v = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 :
			(c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
		if (v < 0)
			return store_err(EINVAL, "'%s' is not a hash prefix (4 to 64 hex digits)",
					 prefix);
		int sh = i % 2 ? 0 : 4;
		lo[i / 2] = (uint8_t)((lo[i / 2] & ~(0xf << sh)) | v << sh);
		hi[i / 2] = (uint8_t)((hi[i / 2] & ~(0xf << sh)) | v << sh);
	}
	pthread_mutex_lock(&s->lock);
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, "SELECT hash FROM objects WHERE hash >= ? AND "
				    "hash <= ? LIMIT 2", -1, &st, NULL);
	int r = 0, found = 0;
	if (rc == SQLITE_OK) {
		sqlite3_bind_blob(st, 1, lo, STORE_HASH_LEN, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, hi, STORE_HASH_LEN, SQLITE_STATIC);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (sqlite3_column_bytes(st, 0) == STORE_HASH_LEN && !found)
				memcpy(ret->b, sqlite3_column_blob(st, 0), STORE_HASH_LEN);
			found++;
		}
		sqlite3_finalize(st);
	}
	if (rc != SQLITE_DONE)
		r = store_sqlerr(s, rc, "looking up a hash prefix");
	else if (!found)
		r = store_err(ENOENT, "no object or ref named '%s'; 'roam ls' lists refs", prefix);
	else if (found > 1)
		r = store_err(EEXIST, "hash prefix '%s' is ambiguous; give more digits", prefix);
	pthread_mutex_unlock(&s->lock);
	return r;
}
