/* verify: re-hash every object, check every reference (present, right kind,
 * right size, tree shape), then name for each bad or missing object every
 * ref that reaches it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "image/store_int.h"

struct vobj {
	struct store_hash h;
	uint8_t kind;        /* 0: missing */
	uint8_t level;       /* trees */
	bool bad;
	uint64_t size;       /* blobs: bytes; trees: logical size */
	uint32_t chunk;      /* trees */
	uint16_t fanout;     /* trees */
	size_t child_off, n_children;
	size_t bad_idx;
};

struct verify {
	struct store *s;
	struct vobj *o;
	size_t n, cap, n_existing;   /* o[0..n_existing) sorted; missing appended */
	struct store_hash *edges;
	uint8_t *edge_kinds;         /* the kind the parent says the child is */
	size_t n_edges, cap_edges;
	struct store_verify_report *rep;
	char pending_reason[128];
};

static int cmp_hash(const void *a, const void *b)
{
	return memcmp(a, b, STORE_HASH_LEN);
}

static struct vobj *find(struct verify *v, const struct store_hash *h)
{
	struct vobj *o = bsearch(h, v->o, v->n_existing, sizeof(*v->o), cmp_hash);
	if (o)
		return o;
	for (size_t i = v->n_existing; i < v->n; i++)
		if (store_hash_eq(&v->o[i].h, h))
			return &v->o[i];
	return NULL;
}

static int add_bad(struct verify *v, struct vobj *o, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int add_bad(struct verify *v, struct vobj *o, const char *fmt, ...)
{
	if (o->bad)
		return 0;
	struct store_verify_report *rep = v->rep;
	void *nb = realloc(rep->bad, (rep->n_bad + 1) * sizeof(*rep->bad));
	if (!nb)
		return store_err(ENOMEM, "out of memory");
	rep->bad = nb;
	struct store_bad_object *b = &rep->bad[rep->n_bad];
	memset(b, 0, sizeof(*b));
	b->hash = o->h;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b->reason, sizeof(b->reason), fmt, ap);
	va_end(ap);
	o->bad = true;
	o->bad_idx = rep->n_bad++;
	return 0;
}

static int add_edge(void *arg, const struct store_hash *h, enum store_kind kind)
{
	struct verify *v = arg;
	if (v->n_edges == v->cap_edges) {
		size_t cap = v->cap_edges ? v->cap_edges * 2 : 4096;
		void *e = realloc(v->edges, cap * sizeof(*v->edges));
		if (e)
			v->edges = e;
		void *k = e ? realloc(v->edge_kinds, cap) : NULL;
		if (!k)
			return store_err(ENOMEM, "out of memory");
		v->edge_kinds = k;
		v->cap_edges = cap;
	}
	v->edge_kinds[v->n_edges] = (uint8_t)kind;
	v->edges[v->n_edges++] = *h;
	return 0;
}

static int list_objects(struct verify *v)
{
	struct store *s = v->s;
	pthread_mutex_lock(&s->lock);
	sqlite3_stmt *q;
	int rc = sqlite3_prepare_v2(s->db, "SELECT hash FROM objects ORDER BY hash", -1, &q, NULL);
	int r = 0;
	if (rc != SQLITE_OK)
		r = store_sqlerr(s, rc, "listing objects");
	while (!r && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		if (sqlite3_column_bytes(q, 0) != STORE_HASH_LEN)
			continue;
		if (v->n == v->cap) {
			size_t cap = v->cap ? v->cap * 2 : 4096;
			void *o = realloc(v->o, cap * sizeof(*v->o));
			if (!o) {
				r = store_err(ENOMEM, "out of memory");
				break;
			}
			v->o = o;
			v->cap = cap;
		}
		struct vobj *o = &v->o[v->n++];
		memset(o, 0, sizeof(*o));
		memcpy(o->h.b, sqlite3_column_blob(q, 0), STORE_HASH_LEN);
	}
	if (!r && rc != SQLITE_DONE)
		r = store_sqlerr(s, rc, "listing objects");
	sqlite3_finalize(q);
	pthread_mutex_unlock(&s->lock);
	v->n_existing = v->n;
	return r;
}

/* Pass 1: read and re-hash each object, record its children. */
static int check_object(struct verify *v, size_t i)
{
	struct vobj *o = &v->o[i];
	struct store_raw raw;
	int r = store_fetch_raw(v->s, &o->h, &raw);
	if (r)
		return r;
	v->rep->stored_bytes += raw.info.stored_size;
	o->kind = (uint8_t)raw.info.kind;
	o->size = raw.info.size;
	void *data;
	size_t len = raw.info.size;
	r = store_decode(v->s, &o->h, raw.info.codec, raw.info.size, raw.data,
			 raw.info.stored_size, &data);
	store_raw_release(&raw);
	if (r == -EBADMSG)
		return add_bad(v, o, "content does not match its hash");
	if (r)
		return r;
	o->child_off = v->n_edges;
	if (o->kind == STORE_TREE) {
		struct tree_node n;
		if (tree_node_parse(data, len, &n)) {
			free(data);
			return add_bad(v, o, "malformed tree node (%s)", store_last_error());
		}
		o->level = (uint8_t)n.level;
		o->size = n.size;
		o->chunk = n.chunk_size;
		o->fanout = (uint16_t)n.fanout;
		for (uint32_t k = 0; k < n.count && !r; k++) {
			struct store_hash c;
			memcpy(c.b, n.children + (size_t)k * STORE_HASH_LEN, STORE_HASH_LEN);
			r = add_edge(v, &c, STORE_BLOB);   /* zeros kept: positions matter */
		}
	} else if (o->kind == STORE_COMMIT) {
		r = store_children(STORE_COMMIT, data, len, add_edge, v);
		if (r == -EINVAL) {
			free(data);
			return add_bad(v, o, "malformed commit (%s)", store_last_error());
		}
	} else if (o->kind != STORE_BLOB && o->kind != STORE_STATE) {
		r = add_bad(v, o, "unknown kind %u", o->kind);
	}
	free(data);
	o->n_children = v->n_edges - o->child_off;
	return r;
}

static int add_missing(struct verify *v, const struct store_hash *h, const struct vobj *parent)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 64;
		void *o = realloc(v->o, cap * sizeof(*v->o));
		if (!o)
			return store_err(ENOMEM, "out of memory");
		v->o = o;
		v->cap = cap;
	}
	struct vobj *o = &v->o[v->n++];
	memset(o, 0, sizeof(*o));
	o->h = *h;
	char hex[STORE_HASH_HEX];
	store_hex(&parent->h, hex);
	return add_bad(v, o, "missing (referenced by %s %.16s...)",
		       store_kind_name(parent->kind), hex);
}

/* Pass 2: each reference exists and fits (a commit's children are of the
 * kinds it names; tree shape, chunk sizes). */
static int check_refs(struct verify *v)
{
	int r = 0;
	for (size_t i = 0; i < v->n_existing && !r; i++) {
		struct vobj *o = &v->o[i];
		if (o->bad)
			continue;
		for (size_t k = 0; k < o->n_children && !r; k++) {
			const struct store_hash *c = &v->edges[o->child_off + k];
			if (store_hash_is_zero(c))
				continue;
			struct vobj *co = find(v, c);
			if (!co) {
				r = add_missing(v, c, &v->o[i]);
				o = &v->o[i];   /* v->o may have moved */
				continue;
			}
			enum store_kind said = v->edge_kinds[o->child_off + k];
			if (o->kind == STORE_COMMIT && co->kind && co->kind != said) {
				char hex[STORE_HASH_HEX];
				store_hex(c, hex);
				r = add_bad(v, o, "references %.16s... as a %s; it is a %s", hex,
					    store_kind_name(said), store_kind_name(co->kind));
				continue;
			}
			if (o->kind != STORE_TREE || co->bad || !co->kind)
				continue;
			struct tree_node pn = { .level = o->level, .fanout = o->fanout,
						.chunk_size = o->chunk, .size = o->size };
			struct tree_node cn = { .level = co->level, .fanout = co->fanout,
						.chunk_size = co->chunk, .size = co->size };
			if (!tree_child_fits(&pn, k, co->kind, &cn)) {
				char hex[STORE_HASH_HEX];
				store_hex(&o->h, hex);
				r = add_bad(v, co, "does not fit its place in tree %.16s... "
					    "(kind, level or size)", hex);
			}
		}
	}
	return r;
}

static int str_push(char ***v, size_t *n, const char *s)
{
	void *nv = realloc(*v, (*n + 1) * sizeof(**v));
	if (!nv)
		return store_err(ENOMEM, "out of memory");
	*v = nv;
	if (!((*v)[*n] = strdup(s)))
		return store_err(ENOMEM, "out of memory");
	(*n)++;
	return 0;
}

struct refwalk {
	struct verify *v;
	uint8_t *seen;
	size_t *stack;
	size_t n_stack;
};

/* Pass 3: which refs reach which bad objects. */
static int walk_ref(void *arg, const char *name, const struct store_hash *h)
{
	struct refwalk *w = arg;
	struct verify *v = w->v;
	memset(w->seen, 0, v->n);
	struct vobj *start = find(v, h);
	bool ref_bad = false;
	int r = 0;
	if (!start) {
		char hex[STORE_HASH_HEX];
		store_hex(h, hex);
		r = add_missing(v, h, &(struct vobj){ .h = *h, .kind = STORE_COMMIT });
		if (r)
			return r;
		snprintf(v->rep->bad[v->rep->n_bad - 1].reason, 128, "missing (named by ref %s)",
			 name);
		void *ns = realloc(w->seen, v->n);
		void *nst = realloc(w->stack, v->n * sizeof(*w->stack));
		if (ns)
			w->seen = ns;
		if (nst)
			w->stack = nst;
		if (!ns || !nst)
			return store_err(ENOMEM, "out of memory");
		memset(w->seen, 0, v->n);
		start = &v->o[v->n - 1];
	}
	w->n_stack = 0;
	w->stack[w->n_stack++] = (size_t)(start - v->o);
	w->seen[start - v->o] = 1;
	while (w->n_stack && !r) {
		struct vobj *o = &v->o[w->stack[--w->n_stack]];
		if (o->bad) {
			ref_bad = true;
			struct store_bad_object *b = &v->rep->bad[o->bad_idx];
			r = str_push(&b->refs, &b->n_refs, name);
			continue;
		}
		for (size_t k = 0; k < o->n_children; k++) {
			const struct store_hash *c = &v->edges[o->child_off + k];
			if (store_hash_is_zero(c))
				continue;
			struct vobj *co = find(v, c);
			if (!co || w->seen[co - v->o])
				continue;
			w->seen[co - v->o] = 1;
			w->stack[w->n_stack++] = (size_t)(co - v->o);
		}
	}
	if (!r && ref_bad)
		r = str_push(&v->rep->bad_refs, &v->rep->n_bad_refs, name);
	return r;
}

void store_verify_report_free(struct store_verify_report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_bad; i++) {
		for (size_t k = 0; k < r->bad[i].n_refs; k++)
			free(r->bad[i].refs[k]);
		free(r->bad[i].refs);
	}
	for (size_t i = 0; i < r->n_bad_refs; i++)
		free(r->bad_refs[i]);
	free(r->bad_refs);
	free(r->bad);
	free(r);
}

int store_verify(struct store *s, const struct store_progress *progress,
		 struct store_verify_report **ret)
{
	struct verify v = { .s = s };
	v.rep = calloc(1, sizeof(*v.rep));
	if (!v.rep)
		return store_err(ENOMEM, "out of memory");
	/* Everything from the database: no delta base from a cache. */
	atomic_store(&s->verifying, true);
	int r = list_objects(&v);
	for (size_t i = 0; i < v.n_existing && !r; i++) {
		r = check_object(&v, i);
		if (progress && progress->fn && (i % 64 == 0 || i + 1 == v.n_existing))
			progress->fn(progress->arg, v.rep->stored_bytes, 0, i + 1);
	}
	v.rep->objects = v.n_existing;
	if (!r)
		r = check_refs(&v);
	struct refwalk w = { &v, NULL, NULL, 0 };
	if (!r) {
		w.seen = malloc(v.n + 1);
		w.stack = malloc((v.n + 1) * sizeof(*w.stack));
		if (!w.seen || !w.stack)
			r = store_err(ENOMEM, "out of memory");
	}
	if (!r)
		r = store_ref_list(s, NULL, walk_ref, &w);
	atomic_store(&s->verifying, false);
	free(w.seen);
	free(w.stack);
	free(v.o);
	free(v.edges);
	free(v.edge_kinds);
	if (r) {
		store_verify_report_free(v.rep);
		return r;
	}
	*ret = v.rep;
	return (int)(v.rep->n_bad > INT32_MAX ? INT32_MAX : v.rep->n_bad);
}
