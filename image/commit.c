/* Commit objects: encoding, decoding with full validation (the bytes may come
 * from another host), and put/get helpers. Format: image/store_int.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "image/commit.h"
#include "image/store_int.h"

static bool name_ok(const char *name, size_t n)
{
	if (n < 1 || n > STORE_COMMIT_MAX_NAME)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static bool root_kind_ok(enum store_kind k)
{
	return k == STORE_BLOB || k == STORE_TREE || k == STORE_STATE;
}

static int cmp_root(const void *a, const void *b)
{
	const struct store_commit_root *x = a, *y = b;
	return strcmp(x->name, y->name);
}

int store_commit_add_root(struct store_commit *c, const char *name, enum store_kind kind,
			  const struct store_hash *h)
{
	if (!name_ok(name, strlen(name)) || !root_kind_ok(kind) || store_hash_is_zero(h))
		return store_err(EINVAL, "bad commit root '%s'", name);
	if (store_commit_root(c, name))
		return store_err(EEXIST, "commit root '%s' given twice", name);
	if (c->n_roots >= STORE_COMMIT_MAX_ROOTS)
		return store_err(E2BIG, "too many commit roots");
	struct store_commit_root *r = &c->roots[c->n_roots++];
	strcpy(r->name, name);
	r->kind = kind;
	r->hash = *h;
	return 0;
}

const struct store_commit_root *store_commit_root(const struct store_commit *c,
						  const char *name)
{
	for (size_t i = 0; i < c->n_roots; i++)
		if (!strcmp(c->roots[i].name, name))
			return &c->roots[i];
	return NULL;
}

int store_commit_encode(const struct store_commit *c, void **ret, size_t *ret_len)
{
	const char *host = c->host ? c->host : "", *msg = c->message ? c->message : "";
	size_t hl = strlen(host), ml = strlen(msg);
	if (c->n_parents > STORE_COMMIT_MAX_PARENTS || c->n_roots > STORE_COMMIT_MAX_ROOTS ||
	    hl > STORE_COMMIT_MAX_HOST || ml > STORE_COMMIT_MAX_MESSAGE)
		return store_err(EINVAL, "commit has too many parents or roots, or a too long "
				 "host or message");
	for (size_t i = 0; i < c->n_parents; i++)
		if (store_hash_is_zero(&c->parents[i]))
			return store_err(EINVAL, "commit parent %zu is the zero hash", i);
	struct store_commit_root roots[STORE_COMMIT_MAX_ROOTS];
	memcpy(roots, c->roots, c->n_roots * sizeof(roots[0]));
	qsort(roots, c->n_roots, sizeof(roots[0]), cmp_root);
	size_t len = COMMIT_HDR + STORE_HASH_LEN * c->n_parents + hl + ml;
	for (size_t i = 0; i < c->n_roots; i++) {
		const struct store_commit_root *r = &roots[i];
		size_t nl = strnlen(r->name, sizeof(r->name));
		if (!name_ok(r->name, nl) || !root_kind_ok(r->kind) || store_hash_is_zero(&r->hash) ||
		    (i && !strcmp(roots[i - 1].name, r->name)))
			return store_err(EINVAL, "commit root '%.*s' is bad or repeated", (int)nl,
					 r->name);
		len += 2 + nl + STORE_HASH_LEN;
	}
	uint8_t *buf = malloc(len), *p = buf;
	if (!buf)
		return store_err(ENOMEM, "out of memory");
	memcpy(p, COMMIT_MAGIC, 4);
	p[4] = COMMIT_VERSION;
	p[5] = (uint8_t)c->n_parents;
	p[6] = (uint8_t)c->n_roots;
	p[7] = (uint8_t)hl;
	store_put_le(p + 8, (uint64_t)c->time, 8);
	store_put_le(p + 16, ml, 4);
	p += COMMIT_HDR;
	for (size_t i = 0; i < c->n_parents; i++, p += STORE_HASH_LEN)
		memcpy(p, c->parents[i].b, STORE_HASH_LEN);
	memcpy(p, host, hl);
	p += hl;
	for (size_t i = 0; i < c->n_roots; i++) {
		size_t nl = strlen(roots[i].name);
		*p++ = (uint8_t)roots[i].kind;
		*p++ = (uint8_t)nl;
		memcpy(p, roots[i].name, nl);
		p += nl;
		memcpy(p, roots[i].hash.b, STORE_HASH_LEN);
		p += STORE_HASH_LEN;
	}
	memcpy(p, msg, ml);
	p += ml;
	*ret = buf;
	*ret_len = (size_t)(p - buf);
	return 0;
}

void store_commit_free(struct store_commit *c)
{
	if (!c)
		return;
	free(c->host);
	free(c->message);
	free(c);
}

static char *dup_text(const uint8_t *p, size_t n)
{
	if (memchr(p, 0, n))
		return NULL;
	char *s = malloc(n + 1);
	if (s) {
		memcpy(s, p, n);
		s[n] = 0;
	}
	return s;
}

int store_commit_decode(const void *data, size_t len, struct store_commit **ret)
{
	const uint8_t *p = data, *end = p + len;
	if (len < COMMIT_HDR || memcmp(p, COMMIT_MAGIC, 4))
		return store_err(EINVAL, "not a commit (bad magic)");
	if (p[4] != COMMIT_VERSION)
		return store_err(EINVAL, "commit version %u is not supported (roam knows %u)",
				 p[4], COMMIT_VERSION);
	size_t np = p[5], nr = p[6], hl = p[7];
	uint64_t ml = store_get_le(p + 16, 4);
	if (np > STORE_COMMIT_MAX_PARENTS || nr > STORE_COMMIT_MAX_ROOTS ||
	    ml > STORE_COMMIT_MAX_MESSAGE)
		return store_err(EINVAL, "commit has too many parents or roots");
	struct store_commit *c = calloc(1, sizeof(*c));
	if (!c)
		return store_err(ENOMEM, "out of memory");
	c->time = (int64_t)store_get_le(p + 8, 8);
	p += COMMIT_HDR;
	int r = -EINVAL;
	if ((size_t)(end - p) < np * STORE_HASH_LEN + hl)
		goto bad;
	for (size_t i = 0; i < np; i++, p += STORE_HASH_LEN) {
		memcpy(c->parents[i].b, p, STORE_HASH_LEN);
		if (store_hash_is_zero(&c->parents[i]))
			goto bad;
	}
	c->n_parents = np;
	if (!(c->host = dup_text(p, hl)))
		goto bad;
	p += hl;
	for (size_t i = 0; i < nr; i++) {
		if (end - p < 2)
			goto bad;
		enum store_kind kind = p[0];
		size_t nl = p[1];
		p += 2;
		if ((size_t)(end - p) < nl + STORE_HASH_LEN || !root_kind_ok(kind) ||
		    !name_ok((const char *)p, nl))
			goto bad;
		struct store_commit_root *rt = &c->roots[i];
		memcpy(rt->name, p, nl);
		rt->name[nl] = 0;
		p += nl;
		rt->kind = kind;
		memcpy(rt->hash.b, p, STORE_HASH_LEN);
		p += STORE_HASH_LEN;
		if (store_hash_is_zero(&rt->hash) || (i && strcmp(c->roots[i - 1].name, rt->name) >= 0))
			goto bad;
		c->n_roots = i + 1;
	}
	if ((uint64_t)(end - p) != ml || !(c->message = dup_text(p, (size_t)ml)))
		goto bad;
	*ret = c;
	return 0;
bad:
	store_commit_free(c);
	return store_err(-r, "commit is malformed");
}

int store_commit_put(struct store *s, const struct store_commit *c, struct store_hash *ret)
{
	void *buf;
	size_t len;
	int r = store_commit_encode(c, &buf, &len);
	if (r)
		return r;
	r = store_put(s, STORE_COMMIT, buf, len, ret);
	free(buf);
	return r;
}

int store_commit_get(struct store *s, const struct store_hash *h, struct store_commit **ret)
{
	enum store_kind kind;
	void *data;
	size_t len;
	int r = store_get(s, h, &kind, &data, &len);
	if (r)
		return r;
	if (kind != STORE_COMMIT) {
		free(data);
		char hex[STORE_HASH_HEX];
		store_hex(h, hex);
		return store_err(EINVAL, "object %s is a %s, not a commit", hex,
				 store_kind_name(kind));
	}
	r = store_commit_decode(data, len, ret);
	free(data);
	return r;
}
