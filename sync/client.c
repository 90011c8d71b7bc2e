/* The client side of push and pull (proto.h): connect, handshake, list the
 * VM's refs, walk Merkle trees top down so only missing objects move,
 * transfer, and move refs by compare-and-swap. Everything the far side says
 * is checked: ref names, object hashes and kinds, frame sizes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "checkpoint/lease.h"
#include "checkpoint/vmstore.h"
#include "sync/objs.h"
#include "sync/transport.h"
#include "sync/xfer.h"

#define GET_BATCH 256

struct rref { char name[STORE_REF_MAX + 1]; struct store_hash h; };

struct client {
	struct sync_conn *conn;
	struct sync_io *io;
	char host[CKPT_LEASE_HOST_MAX + 1];   /* the far side's host name */
	char what[320];
	const char *roam;
	struct rref *refs;
	size_t n_refs;
	bool running;
	int version;                /* negotiated */
	int wire_level;             /* 0: automatic */
	struct sync_wdec *dec;      /* version 2 pull: the server's stream */
	uint64_t deltas;            /* records received as deltas */
};

/* Printable copy of untrusted text. */
static void clean(char *dst, size_t dstlen, const char *src, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n && src[i] && o + 1 < dstlen; i++) {
		unsigned char ch = (unsigned char)src[i];
		if (ch == '\n' && i + 1 < n && src[i + 1])
			ch = ' ';
		else if (ch == '\n')
			break;
		dst[o++] = ch >= ' ' && ch < 0x7f ? (char)ch : '?';
	}
	dst[o] = 0;
}

/* The connection ended early: explain why from the far side's exit. */
static int far_failure(struct client *c, int rc, char *err, size_t errlen)
{
	char msg[1024], line[300];
	int st = c->conn->finish(c->conn, msg, sizeof(msg));
	clean(line, sizeof(line), msg, strlen(msg));
	if (st == 127)
		snprintf(err, errlen, "roam was not found on %s (ran '%s'): install it there or give "
			 "its path with --remote-roam", c->what, c->roam);
	else if (st == 2 || strstr(msg, "unknown command") || strstr(msg, "unrecognized"))
		snprintf(err, errlen, "the roam on %s is too old to serve sync (%s): update it",
			 c->what, line[0] ? line : "no 'serve --stdio'");
	else if (line[0])
		snprintf(err, errlen, "%s: %s", c->what, line);
	else
		snprintf(err, errlen, "%s: %s", c->what, c->io->err);
	return rc < 0 ? rc : -EPIPE;
}

static int read_reply(struct client *c, uint8_t want, struct sync_frame *f, char *err,
		      size_t errlen)
{
	int rc = sync_frame_read(c->io, f);
	/* the far side's exit status and stderr say more than the channel */
	if (rc == -EPIPE || rc == -EIO)
		return far_failure(c, rc, err, errlen);
	if (rc < 0) {
		snprintf(err, errlen, "%s: %s", c->what, c->io->err);
		return rc;
	}
	if (f->type == SYNC_ERROR) {
		char m[SYNC_ERRMSG_MAX + 1];
		clean(m, sizeof(m), f->len > 4 ? (const char *)f->data + 4 : "", f->len > 4 ? f->len - 4 : 0);
		snprintf(err, errlen, "%s: %s", c->what, m);
		sync_frame_release(f);
		return -EREMOTEIO;
	}
	if (f->type != want && !(want == SYNC_ZDATA && f->type == SYNC_OBJ)) {
		snprintf(err, errlen, "%s sent an unexpected message (type %u where %u was due)",
			 c->what, f->type, want);
		sync_frame_release(f);
		return -EPROTO;
	}
	return 0;
}

/* A write failed: the far side may have said why before it hung up. */
static int write_failed(struct client *c, int rc, char *err, size_t errlen)
{
	struct sync_frame f;
	if (read_reply(c, SYNC_OK, &f, err, errlen) == 0) {
		sync_frame_release(&f);
		snprintf(err, errlen, "%s: %s", c->what, c->io->err);
	}
	return rc;
}

static void client_close(struct client *c, bool bye)
{
	if (c->conn) {
		if (bye && sync_frame_write(c->io, SYNC_BYE, NULL, 0) == 0)
			c->conn->finish(c->conn, NULL, 0);
		c->conn->free(c->conn);
	}
	sync_wdec_free(c->dec);
	free(c->refs);
	memset(c, 0, sizeof(*c));
}

static int client_open(struct client *c, const char *vm, const struct sync_connect_opts *o,
		       int wire_opt, char *err, size_t errlen)
{
	struct sync_url u;
	memset(c, 0, sizeof(*c));
	int maxver = sync_wire_setting(wire_opt, &c->wire_level);
	int rc = sync_url_parse(o->url, &u, err, errlen);
	if (rc < 0)
		return rc;
	c->roam = o->remote_roam && *o->remote_roam ? o->remote_roam : "roam";
	rc = u.ssh ? sync_ssh_connect(&u, o, &c->conn, err, errlen)
		   : sync_local_connect(&u, o, &c->conn, err, errlen);
	if (rc < 0)
		return rc;
	c->io = &c->conn->io;
	snprintf(c->what, sizeof(c->what), "%s", c->conn->what);
	struct sync_wb w = { 0 };
	sync_wb_bytes(&w, SYNC_MAGIC, 8);
	sync_wb_u16(&w, SYNC_VERSION_MIN);
	sync_wb_u16(&w, (uint16_t)maxver);
	sync_wb_u32(&w, o->create ? 1 : 0);
	rc = w.bad ? -ENOMEM : sync_frame_write(c->io, SYNC_HELLO, w.p, w.len);
	sync_wb_free(&w);
	struct sync_frame f;
	if (rc < 0)
		return far_failure(c, rc, err, errlen);
	rc = read_reply(c, SYNC_HELLO, &f, err, errlen);
	if (rc < 0)
		return rc;
	struct sync_rd r;
	sync_rd_init(&r, f.data, f.len);
	const uint8_t *magic = sync_rd_bytes(&r, 8);
	uint16_t ver = sync_rd_u16(&r);
	sync_rd_u16(&r);
	uint8_t hl = sync_rd_u8(&r);
	const uint8_t *host = sync_rd_bytes(&r, hl);
	if (r.bad || memcmp(magic, SYNC_MAGIC, 8)) {
		sync_frame_release(&f);
		snprintf(err, errlen, "%s did not answer like a roam server", c->what);
		return -EPROTO;
	}
	if (ver < SYNC_VERSION_MIN || ver > maxver) {
		sync_frame_release(&f);
		snprintf(err, errlen, "%s speaks sync version %u, this roam %u..%d: update roam",
			 c->what, ver, SYNC_VERSION_MIN, maxver);
		return -EPROTONOSUPPORT;
	}
	c->version = ver;
	clean(c->host, sizeof(c->host), (const char *)host, hl);
	sync_frame_release(&f);
	if (!c->host[0])
		snprintf(c->host, sizeof(c->host), "%.250s", u.ssh ? u.host : "localhost");

	/* LIST: every ref of the VM there, each name checked */
	rc = sync_frame_write(c->io, SYNC_LIST, vm, strlen(vm));
	if (rc < 0)
		return write_failed(c, rc, err, errlen);
	rc = read_reply(c, SYNC_REFS, &f, err, errlen);
	if (rc < 0)
		return rc;
	sync_rd_init(&r, f.data, f.len);
	c->running = sync_rd_u8(&r) != 0;
	uint32_t n = sync_rd_u32(&r);
	if (r.bad || n > f.len / 35) {
		sync_frame_release(&f);
		snprintf(err, errlen, "%s sent a malformed ref list", c->what);
		return -EPROTO;
	}
	c->refs = calloc(n ? n : 1, sizeof(*c->refs));
	if (!c->refs) {
		sync_frame_release(&f);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < n; i++) {
		char name[STORE_REF_MAX + 1];
		int nr = sync_rd_refname(&r, name);
		const uint8_t *h = sync_rd_bytes(&r, STORE_HASH_LEN);
		if (nr == -EINVAL || (!nr && h && !sync_ref_allowed(vm, name))) {
			char shown[300];
			clean(shown, sizeof(shown), name, strlen(name));
			snprintf(err, errlen, "%s sent ref '%s', which is not a ref of VM %s: refused, "
				 "nothing changed", c->what, shown, vm);
			sync_frame_release(&f);
			return -EINVAL;
		}
		if (nr < 0 || !h)
			break;
		snprintf(c->refs[i].name, sizeof(c->refs[i].name), "%s", name);
		memcpy(c->refs[i].h.b, h, STORE_HASH_LEN);
		if (store_hash_is_zero(&c->refs[i].h))
			r.bad = true;
		for (uint32_t j = 0; j < i; j++)
			if (!strcmp(c->refs[j].name, name))
				r.bad = true;
		c->n_refs++;
	}
	bool bad = r.bad || r.off != f.len;
	sync_frame_release(&f);
	if (bad) {
		snprintf(err, errlen, "%s sent a malformed ref list", c->what);
		return -EPROTO;
	}
	return 0;
}

static const struct rref *remote_ref(const struct client *c, const char *name)
{
	for (size_t i = 0; i < c->n_refs; i++)
		if (!strcmp(c->refs[i].name, name))
			return &c->refs[i];
	return NULL;
}

static void progress(const struct sync_progress *p, uint64_t done, uint64_t total, uint64_t objs)
{
	if (p && p->fn)
		p->fn(p->arg, done, total, objs);
}

/* ---- push ------------------------------------------------------------------ */

struct lref_list { struct sync_ref *v; size_t n; const char *vm; bool with_lease; };

static int collect_ref(void *arg, const char *name, const struct store_hash *h)
{
	struct lref_list *l = arg;
	if (!sync_ref_allowed(l->vm, name))
		return 0;
	if (!l->with_lease && !strcmp(name + 4 + strlen(l->vm) + 1, "lease"))
		return 0;
	return sync_ref_add(&l->v, &l->n, name, h);
}

static int local_refs(struct store *s, const char *vm, bool with_lease, struct lref_list *l)
{
	char prefix[80];
	snprintf(prefix, sizeof(prefix), "vms/%s/", vm);
	l->v = NULL;
	l->n = 0;
	l->vm = vm;
	l->with_lease = with_lease;
	return store_ref_list(s, prefix, collect_ref, l);
}

/* A missing interior object and its children (indexes into the send walk). */
struct inode { struct store_hash h; struct store_hash *kids; size_t n_kids; int state; };

struct push_walk {
	struct store *s;
	struct sync_hlist next;
	struct sync_hlist blobs;
	struct inode *nodes;
	size_t n_nodes, cap_nodes;
	struct store_hash *kids;      /* children of the node being expanded */
	size_t n_kids, cap_kids;
	struct sync_hset *known;      /* reachable from the far side's refs: there */
};

/* A child met while expanding a node: appended to kids and queued in next
 * (the level below). */
static int add_kid(struct store_hash **kids, size_t *n, size_t *cap, struct sync_hlist *next,
		   const struct store_hash *h, enum store_kind kind)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		struct store_hash *k = realloc(*kids, c * sizeof(*k));
		if (!k)
			return -ENOMEM;
		*kids = k;
		*cap = c;
	}
	(*kids)[(*n)++] = *h;
	return sync_hlist_push(next, h, kind);
}

static int push_child(void *arg, const struct store_hash *h, enum store_kind kind)
{
	struct push_walk *w = arg;
	return add_kid(&w->kids, &w->n_kids, &w->cap_kids, &w->next, h, kind);
}

static int cmp_inode(const void *a, const void *b)
{
	return memcmp(((const struct inode *)a)->h.b, ((const struct inode *)b)->h.b, STORE_HASH_LEN);
}

static struct inode *find_inode(struct inode *v, size_t n, const struct store_hash *h)
{
	struct inode key = { .h = *h };
	return bsearch(&key, v, n, sizeof(*v), cmp_inode);
}

/* Post-order over the missing interior objects: children before parents. */
static int topo_order(struct inode *v, size_t n, struct store_hash **ret)
{
	if (n)
		qsort(v, n, sizeof(*v), cmp_inode);
	struct store_hash *out = malloc((n ? n : 1) * sizeof(*out));
	struct { size_t node, kid; } *stack = malloc((n ? n : 1) * sizeof(*stack));
	size_t o = 0;
	if (!out || !stack) {
		free(out);
		free(stack);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		if (v[i].state)
			continue;
		size_t sp = 0;
		stack[sp].node = i;
		stack[sp++].kid = 0;
		v[i].state = 1;
		while (sp) {
			struct inode *nd = &v[stack[sp - 1].node];
			if (stack[sp - 1].kid < nd->n_kids) {
				struct inode *k = find_inode(v, n, &nd->kids[stack[sp - 1].kid++]);
				if (k && !k->state) {
					k->state = 1;
					stack[sp].node = (size_t)(k - v);
					stack[sp++].kid = 0;
				}
				continue;
			}
			out[o++] = nd->h;
			sp--;
		}
	}
	free(stack);
	*ret = out;
	return 0;
}

static int send_obj(struct client *c, struct store *s, const struct store_hash *h,
		    uint64_t *bytes, char *err, size_t errlen)
{
	struct store_raw raw;
	int rc = store_get_raw(s, h, &raw);
	if (rc < 0) {
		snprintf(err, errlen, "%s", store_last_error());
		return rc;
	}
	uint8_t hdr[SYNC_OBJ_HDR];
	sync_obj_header(hdr, h, raw.info.kind, raw.info.codec, raw.info.size);
	rc = sync_frame_write2(c->io, SYNC_OBJ, hdr, sizeof(hdr), raw.data, raw.info.stored_size);
	*bytes += raw.info.stored_size;
	store_raw_release(&raw);
	return rc < 0 ? write_failed(c, rc, err, errlen) : 0;
}

static int push_walk_run(struct client *c, struct push_walk *w, struct sync_hlist *frontier,
			 struct sync_stats *st, char *err, size_t errlen)
{
	struct sync_hset *seen = sync_hset_new();
	if (!seen)
		return -ENOMEM;
	int rc = 0;
	while (!rc && frontier->n) {
		struct sync_hlist batch = { 0 };
		for (size_t i = 0; !rc && i < frontier->n; i++) {
			int a = sync_hset_add(seen, &frontier->v[i].h);
			if (a < 0)
				rc = a;
			else if (a && w->known && sync_hset_has(w->known, &frontier->v[i].h))
				st->have_skipped++;
			else if (a)
				rc = sync_hlist_push(&batch, &frontier->v[i].h, frontier->v[i].kind);
		}
		frontier->n = 0;
		for (size_t off = 0; !rc && off < batch.n; off += SYNC_BATCH_MAX) {
			size_t n = batch.n - off < SYNC_BATCH_MAX ? batch.n - off : SYNC_BATCH_MAX;
			uint8_t *q = malloc(n * STORE_HASH_LEN);
			if (!q) {
				rc = -ENOMEM;
				break;
			}
			for (size_t i = 0; i < n; i++)
				memcpy(q + i * STORE_HASH_LEN, batch.v[off + i].h.b, STORE_HASH_LEN);
			rc = sync_frame_write(c->io, SYNC_HAVE, q, n * STORE_HASH_LEN);
			free(q);
			if (rc < 0) {
				rc = write_failed(c, rc, err, errlen);
				break;
			}
			struct sync_frame f;
			rc = read_reply(c, SYNC_HAVE_REPLY, &f, err, errlen);
			if (rc < 0)
				break;
			if (f.len != n) {
				sync_frame_release(&f);
				snprintf(err, errlen, "%s answered HAVE with a wrong count", c->what);
				rc = -EPROTO;
				break;
			}
			st->have_queries += n;
			for (size_t i = 0; !rc && i < n; i++) {
				const struct sync_hent *e = &batch.v[off + i];
				if (f.data[i])
					continue;
				if (e->kind != STORE_TREE && e->kind != STORE_COMMIT) {
					rc = sync_hlist_push(&w->blobs, &e->h, e->kind);
					continue;
				}
				void *data;
				size_t len;
				rc = store_get(w->s, &e->h, NULL, &data, &len);
				if (rc < 0) {
					snprintf(err, errlen, "%s", store_last_error());
					break;
				}
				w->n_kids = 0;
				rc = sync_obj_children(e->kind, data, len, push_child, w);
				free(data);
				if (rc < 0)
					break;
				if (w->n_nodes == w->cap_nodes) {
					size_t cap = w->cap_nodes ? w->cap_nodes * 2 : 64;
					struct inode *nv = realloc(w->nodes, cap * sizeof(*nv));
					if (!nv) {
						rc = -ENOMEM;
						break;
					}
					w->nodes = nv;
					w->cap_nodes = cap;
				}
				struct inode *nd = &w->nodes[w->n_nodes++];
				memset(nd, 0, sizeof(*nd));
				nd->h = e->h;
				nd->kids = malloc((w->n_kids ? w->n_kids : 1) * sizeof(*nd->kids));
				if (!nd->kids) {
					rc = -ENOMEM;
					break;
				}
				if (w->n_kids)
					memcpy(nd->kids, w->kids, w->n_kids * sizeof(*nd->kids));
				nd->n_kids = w->n_kids;
			}
			sync_frame_release(&f);
		}
		sync_hlist_free(&batch);
		/* the next level */
		struct sync_hlist t = *frontier;
		*frontier = w->next;
		w->next = t;
	}
	sync_hset_free(seen);
	return rc;
}

/* Version 2: every missing object into one wire stream, blobs first, then
 * interior objects children first; deltas against what sits at the same
 * place under the far side's head; a flush at every batch end. */
static int push_wire(struct client *c, struct store *s, struct push_walk *w,
		     const struct store_hash *order, const struct rref *rhead,
		     const struct lref_list *lr, uint64_t raw_total, const struct sync_progress *p,
		     struct sync_stats *st, char *err, size_t errlen)
{
	int level = c->wire_level ? c->wire_level : sync_wire_auto_level(raw_total);
	struct sync_wenc *e = NULL;
	struct sync_bmap *m = NULL;
	int rc = level ? sync_wenc_new(c->io, level, &e) : 0;
	if (rc < 0)
		return rc;
	st->wire_level = level;
	if (e && rhead && store_has(s, &rhead->h) == 1 && sync_bmap_new(&m) == 0) {
		for (size_t i = 0; m && i < lr->n; i++) {
			const struct rref *rr = remote_ref(c, lr->v[i].name);
			if (rr && store_hash_eq(&rr->h, &lr->v[i].h))
				continue;
			/* no basis only costs bytes */
			if (sync_bmap_add_commits(m, s, &lr->v[i].h, &rhead->h, c->version >= 3) < 0) {
				sync_bmap_free(m);
				m = NULL;
			}
		}
	}
	uint64_t raw = 0, batch_raw = 0, batch_n = 0;
	size_t n = w->blobs.n + w->n_nodes;
	for (size_t i = 0; i < n && rc >= 0; i++) {
		const struct store_hash *h = i < w->blobs.n ? &w->blobs.v[i].h : &order[i - w->blobs.n];
		bool io_failed;
		uint64_t before = raw;
		rc = sync_xfer_send(e, c->io, s, m, h, &raw, &io_failed, err, errlen);
		if (rc < 0) {
			if (io_failed)
				rc = write_failed(c, rc, err, errlen);
			break;
		}
		st->objects++;
		batch_raw += raw - before;
		if (++batch_n >= SYNC_WIRE_BATCH_OBJS || batch_raw >= SYNC_TXN_BYTES || i + 1 == n) {
			rc = e ? sync_wenc_flush(e) : 0;
			if (rc < 0)
				rc = write_failed(c, rc, err, errlen);
			batch_n = batch_raw = 0;
			progress(p, raw, raw_total, st->objects);
		}
	}
	struct sync_wire_stats ws = { 0 };
	if (e)
		sync_wenc_stats(e, &ws);
	st->raw_bytes = raw;
	st->deltas = ws.deltas;
	sync_wenc_free(e);
	sync_bmap_free(m);
	return rc;
}

int sync_push(struct store *s, const char *vm, const struct sync_opts *o,
	      struct sync_stats *st, char *err, size_t errlen)
{
	struct client c;
	struct lref_list lr = { 0 };
	struct push_walk w = { .s = s };
	struct sync_hlist frontier = { 0 };
	struct store_hash *order = NULL;
	memset(st, 0, sizeof(*st));
	if (!sync_vm_name_valid(vm)) {
		snprintf(err, errlen, "'%s' is not a valid VM name", vm);
		return -EINVAL;
	}
	int rc = local_refs(s, vm, false, &lr);
	if (rc < 0) {
		snprintf(err, errlen, "%s", store_last_error());
		return rc;
	}
	char head[STORE_REF_MAX + 1];
	snprintf(head, sizeof(head), "vms/%s/head", vm);
	const struct sync_ref *lhead = NULL;
	for (size_t i = 0; i < lr.n; i++)
		if (!strcmp(lr.v[i].name, head))
			lhead = &lr.v[i];
	if (!lhead) {
		free(lr.v);
		snprintf(err, errlen, "no VM named %s in this store ('roam ls' lists them)", vm);
		return -ENOENT;
	}
	if (ckpt_vm_running(s, vm, NULL, NULL, 0) == 1) {
		free(lr.v);
		snprintf(err, errlen, "VM %s is running; suspend it first (roam suspend %s)", vm, vm);
		return -EBUSY;
	}
	struct sync_connect_opts co = o->conn;
	co.create = true;
	rc = client_open(&c, vm, &co, o->wire_level, err, errlen);
	if (rc < 0)
		goto out;
	if (c.running) {
		snprintf(err, errlen, "VM %s is running on %s; suspend it there first", vm, c.host);
		rc = -EBUSY;
		goto out;
	}
	const struct rref *rhead = remote_ref(&c, head);
	if (rhead && !store_hash_eq(&rhead->h, &lhead->h) && !o->force) {
		int a = store_has(s, &rhead->h) == 1 ? sync_is_ancestor(s, &rhead->h, &lhead->h) : 0;
		if (a <= 0) {
			snprintf(err, errlen, "VM %s has diverged: %s has a head this store does not "
				 "have in its history (both sides changed); pull it first, or push "
				 "with --force to overwrite it there", vm, c.host);
			rc = -EEXIST;
			goto out;
		}
	}
	/* what the far side's refs reach is there (a store holds everything its
	 * refs reach): no need to ask about it */
	w.known = sync_hset_new();
	for (size_t i = 0; w.known && i < c.n_refs; i++) {
		const char *leaf = c.refs[i].name + 4 + strlen(vm) + 1;
		if (!strcmp(leaf, "lease") || store_has(s, &c.refs[i].h) != 1)
			continue;
		if (sync_reach(s, &c.refs[i].h, w.known) < 0) {
			sync_hset_free(w.known);
			w.known = NULL;
		}
	}
	for (size_t i = 0; i < lr.n && rc >= 0; i++)
		rc = sync_hlist_push(&frontier, &lr.v[i].h, STORE_COMMIT);
	if (rc >= 0)
		rc = push_walk_run(&c, &w, &frontier, st, err, errlen);
	if (rc < 0)
		goto out;
	rc = topo_order(w.nodes, w.n_nodes, &order);
	if (rc < 0)
		goto out;
	uint64_t total = 0, raw_total = 0, done = 0;
	for (size_t i = 0; i < w.blobs.n; i++) {
		struct store_obj_info info;
		if (store_stat(s, &w.blobs.v[i].h, &info) == 0) {
			total += info.stored_size;
			raw_total += info.size;
		}
	}
	if (c.version >= 2)
		rc = push_wire(&c, s, &w, order, rhead, &lr, raw_total, &o->progress, st, err, errlen);
	for (size_t i = 0; c.version < 2 && i < w.blobs.n && rc >= 0; i++) {
		rc = send_obj(&c, s, &w.blobs.v[i].h, &done, err, errlen);
		st->objects++;
		progress(&o->progress, done, total, st->objects);
	}
	for (size_t i = 0; c.version < 2 && i < w.n_nodes && rc >= 0; i++) {
		rc = send_obj(&c, s, &order[i], &done, err, errlen);
		st->objects++;
	}
	if (rc < 0)
		goto out;
	if (c.version >= 2)
		done = total;
	st->object_bytes = done;
	rc = sync_frame_write(c.io, SYNC_FLUSH, NULL, 0);
	struct sync_frame f;
	if (rc < 0 || (rc = read_reply(&c, SYNC_FLUSHED, &f, err, errlen)) < 0) {
		if (rc == -EPIPE)
			write_failed(&c, rc, err, errlen);
		goto out;
	}
	sync_frame_release(&f);
	/* refs: CAS each from what the far side had; hand the lease off */
	struct sync_wb u = { 0 };
	uint32_t n = 0;
	sync_wb_u8(&u, o->force ? 1 : 0);
	sync_wb_u32(&u, 0);
	for (size_t i = 0; i < lr.n; i++) {
		const struct rref *rr = remote_ref(&c, lr.v[i].name);
		if (rr && store_hash_eq(&rr->h, &lr.v[i].h))
			continue;
		struct store_hash zero = { { 0 } };
		sync_wb_u16(&u, (uint16_t)strlen(lr.v[i].name));
		sync_wb_bytes(&u, lr.v[i].name, strlen(lr.v[i].name));
		sync_wb_bytes(&u, rr ? rr->h.b : zero.b, STORE_HASH_LEN);
		sync_wb_bytes(&u, lr.v[i].h.b, STORE_HASH_LEN);
		n++;
	}
	char lease[STORE_REF_MAX + 1];
	snprintf(lease, sizeof(lease), "vms/%s/lease", vm);
	const struct rref *rl = remote_ref(&c, lease);
	if (rl) {
		struct store_hash zero = { { 0 } };
		sync_wb_u16(&u, (uint16_t)strlen(lease));
		sync_wb_bytes(&u, lease, strlen(lease));
		sync_wb_bytes(&u, rl->h.b, STORE_HASH_LEN);
		sync_wb_bytes(&u, zero.b, STORE_HASH_LEN);
		n++;
	}
	if (u.bad) {
		sync_wb_free(&u);
		rc = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < 4; i++)
		u.p[1 + i] = (uint8_t)(n >> (8 * i));
	if (n) {
		rc = sync_frame_write(c.io, SYNC_UPDATE, u.p, u.len);
		if (rc < 0)
			rc = write_failed(&c, rc, err, errlen);
		else
			rc = read_reply(&c, SYNC_OK, &f, err, errlen);
		if (rc == 0)
			sync_frame_release(&f);
	}
	sync_wb_free(&u);
	if (rc < 0)
		goto out;
	st->refs_updated = n;
	rc = ckpt_lease_release(s, vm);
	if (rc < 0)
		snprintf(err, errlen, "pushed, but releasing the local lease failed: %s",
			 store_last_error());
out:
	st->bytes_sent = c.io ? c.io->bytes_out : 0;
	st->bytes_received = c.io ? c.io->bytes_in : 0;
	st->version = c.version;
	if (c.deltas)
		st->deltas = c.deltas;
	client_close(&c, rc >= 0);
	for (size_t i = 0; i < w.n_nodes; i++)
		free(w.nodes[i].kids);
	free(w.nodes);
	free(w.kids);
	free(order);
	sync_hset_free(w.known);
	sync_hlist_free(&w.blobs);
	sync_hlist_free(&w.next);
	sync_hlist_free(&frontier);
	free(lr.v);
	return rc < 0 ? rc : 0;
}

/* ---- pull ------------------------------------------------------------------- */

struct fetched {
	struct inode n;
	enum store_kind kind;
	struct store_raw raw;       /* stored form (raw.data), or */
	void *plain;                /* the object itself (wire codec) */
	size_t plain_len;
};

struct pull_walk {
	struct client *c;
	struct store *s;
	struct sync_hset *seen;
	struct sync_hlist next, blobs;
	struct fetched *v;
	size_t n, cap;
	struct store_hash *kids;
	size_t n_kids, cap_kids;
	struct sync_stats *st;
};

static int pull_child(void *arg, const struct store_hash *h, enum store_kind kind)
{
	struct pull_walk *w = arg;
	return add_kid(&w->kids, &w->n_kids, &w->cap_kids, &w->next, h, kind);
}

static bool kind_ok(enum store_kind want, enum store_kind got)
{
	return want == STORE_BLOB ? got == STORE_BLOB || got == STORE_STATE : got == want;
}

/* Checks one OBJ frame answering a GET for (h, kind) against both. */
static int check_obj(struct client *c, const struct store_hash *h, enum store_kind kind,
		     struct sync_frame *f, struct sync_obj *ob, char *err, size_t errlen)
{
	char hex[STORE_HASH_HEX];
	store_hash_hex(h, hex);
	if (sync_obj_parse(f->data, f->len, ob) < 0 || !store_hash_eq(&ob->hash, h)) {
		sync_frame_release(f);
		snprintf(err, errlen, "%s sent a malformed or unasked-for object where %.16s was "
			 "due: refused, nothing changed", c->what, hex);
		return -EPROTO;
	}
	if (!kind_ok(kind, ob->kind)) {
		sync_frame_release(f);
		snprintf(err, errlen, "%s sent object %.16s as a %s where a %s was due: refused",
			 c->what, hex, store_kind_name(ob->kind), store_kind_name(kind));
		return -EPROTO;
	}
	return 0;
}

static int corrupt(struct client *c, const struct store_hash *h, char *err, size_t errlen);

/* One object answering a GET for (h, kind): an OBJ frame (stored form: f,
 * ob) or, in version 2, a record of the server's wire stream, resolved
 * against this store and verified (plain, len). */
struct got {
	bool stored;
	struct sync_frame f;
	struct sync_obj ob;
	void *plain;
	size_t len;
	enum store_kind kind;       /* of plain */
};

static void got_release(struct got *g)
{
	sync_frame_release(&g->f);
	free(g->plain);
	g->plain = NULL;
}

static int next_obj(struct client *c, struct store *s, const struct store_hash *h,
		    enum store_kind kind, struct got *g, char *err, size_t errlen)
{
	memset(g, 0, sizeof(*g));
	if (c->version < 2) {
		g->stored = true;
		int rc = read_reply(c, SYNC_OBJ, &g->f, err, errlen);
		return rc < 0 ? rc : check_obj(c, h, kind, &g->f, &g->ob, err, errlen);
	}
	if (!c->dec && sync_wdec_new(&c->dec) < 0)
		return -ENOMEM;
	for (;;) {
		struct sync_wrec rec;
		int rc = sync_wdec_next(c->dec, &rec);
		if (rc < 0) {
			snprintf(err, errlen, "%s sent a bad wire stream (%s): refused", c->what,
				 sync_wdec_error(c->dec));
			return rc;
		}
		if (rc == 1) {
			char why[400], hex[STORE_HASH_HEX];
			struct store_hash got;
			store_hash_hex(h, hex);
			if (!kind_ok(kind, rec.kind)) {
				snprintf(err, errlen, "%s sent object %.16s as a %s where a %s was due: "
					 "refused", c->what, hex, store_kind_name(rec.kind),
					 store_kind_name(kind));
				return -EPROTO;
			}
			g->kind = rec.kind;
			c->deltas += rec.delta;
			rc = sync_xfer_resolve(c->dec, s, &rec, &g->plain, &g->len, &got, why, sizeof(why));
			if (rc < 0) {
				snprintf(err, errlen, "%s: %s", c->what, why);
				return rc;
			}
			if (!store_hash_eq(&got, h)) {
				got_release(g);
				return corrupt(c, h, err, errlen);
			}
			return 0;
		}
		rc = read_reply(c, SYNC_ZDATA, &g->f, err, errlen);
		if (rc < 0)
			return rc;
		if (g->f.type == SYNC_ZDATA) {
			sync_wdec_input(c->dec, &g->f);
			continue;
		}
		if (!sync_wdec_idle(c->dec)) {
			sync_frame_release(&g->f);
			snprintf(err, errlen, "%s sent an OBJ frame in the middle of its wire stream: "
				 "refused", c->what);
			return -EPROTO;
		}
		g->stored = true;
		return check_obj(c, h, kind, &g->f, &g->ob, err, errlen);
	}
}

static int send_get(struct client *c, const struct sync_hent *v, size_t n, char *err, size_t errlen)
{
	uint8_t *q = malloc((n ? n : 1) * STORE_HASH_LEN);
	if (!q)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		memcpy(q + i * STORE_HASH_LEN, v[i].h.b, STORE_HASH_LEN);
	int rc = sync_frame_write(c->io, SYNC_GET, q, n * STORE_HASH_LEN);
	free(q);
	return rc < 0 ? write_failed(c, rc, err, errlen) : 0;
}

static int corrupt(struct client *c, const struct store_hash *h, char *err, size_t errlen)
{
	char hex[STORE_HASH_HEX];
	store_hash_hex(h, hex);
	snprintf(err, errlen, "%s sent object %s whose content does not match its hash: "
		 "refused, nothing changed", c->what, hex);
	return -EBADMSG;
}

static int pull_level(struct pull_walk *w, struct sync_hlist *frontier, char *err, size_t errlen)
{
	struct sync_hlist want = { 0 };
	int rc = 0;
	for (size_t i = 0; !rc && i < frontier->n; i++) {
		const struct sync_hent *e = &frontier->v[i];
		int a = sync_hset_add(w->seen, &e->h);
		if (a <= 0) {
			rc = a;
			continue;
		}
		w->st->have_queries++;
		int has = store_has(w->s, &e->h);
		if (has < 0) {
			snprintf(err, errlen, "%s", store_last_error());
			rc = has;
		} else if (!has) {
			rc = e->kind == STORE_TREE || e->kind == STORE_COMMIT
				? sync_hlist_push(&want, &e->h, e->kind)
				: sync_hlist_push(&w->blobs, &e->h, STORE_BLOB);
		}
	}
	for (size_t off = 0; !rc && off < want.n; off += GET_BATCH) {
		size_t n = want.n - off < GET_BATCH ? want.n - off : GET_BATCH;
		rc = send_get(w->c, want.v + off, n, err, errlen);
		for (size_t i = 0; !rc && i < n; i++) {
			const struct sync_hent *e = &want.v[off + i];
			struct got g;
			rc = next_obj(w->c, w->s, &e->h, e->kind, &g, err, errlen);
			if (rc < 0) {
				got_release(&g);
				break;
			}
			void *dec = NULL;
			const void *data = g.plain;
			size_t dlen = g.len;
			if (g.stored) {
				rc = sync_obj_decode(&e->h, g.ob.codec, g.ob.size, g.ob.stored,
						     g.ob.stored_len, &dec);
				if (rc < 0) {
					got_release(&g);
					rc = corrupt(w->c, &e->h, err, errlen);
					break;
				}
				data = dec;
				dlen = g.ob.size;
			}
			w->n_kids = 0;
			rc = sync_obj_children(e->kind, data, dlen, pull_child, w);
			free(dec);
			if (rc < 0) {
				got_release(&g);
				snprintf(err, errlen, "%s sent a malformed %s: refused", w->c->what,
					 store_kind_name(e->kind));
				break;
			}
			if (w->n == w->cap) {
				size_t cap = w->cap ? w->cap * 2 : 64;
				struct fetched *nv = realloc(w->v, cap * sizeof(*nv));
				if (!nv) {
					got_release(&g);
					rc = -ENOMEM;
					break;
				}
				w->v = nv;
				w->cap = cap;
			}
			struct fetched *fe = &w->v[w->n];
			memset(fe, 0, sizeof(*fe));
			fe->n.h = e->h;
			fe->kind = e->kind;
			fe->n.kids = malloc((w->n_kids ? w->n_kids : 1) * sizeof(*fe->n.kids));
			size_t slen = g.stored ? g.ob.stored_len : 0;
			fe->raw.data = g.stored ? malloc(slen ? slen : 1) : NULL;
			if (!fe->n.kids || (g.stored && !fe->raw.data)) {
				free(fe->n.kids);
				free(fe->raw.data);
				got_release(&g);
				rc = -ENOMEM;
				break;
			}
			if (w->n_kids)
				memcpy(fe->n.kids, w->kids, w->n_kids * sizeof(*w->kids));
			fe->n.n_kids = w->n_kids;
			if (g.stored) {
				if (slen)
					memcpy(fe->raw.data, g.ob.stored, slen);
				fe->raw.info = (struct store_obj_info){ .kind = g.ob.kind, .size = g.ob.size,
					.stored_size = slen, .codec = g.ob.codec };
				w->st->object_bytes += slen;
			} else {
				fe->plain = g.plain;
				fe->plain_len = g.len;
				g.plain = NULL;
				w->st->raw_bytes += fe->plain_len;
			}
			w->n++;
			w->st->objects++;
			got_release(&g);
		}
	}
	sync_hlist_free(&want);
	return rc;
}

/* rc, with the store's reason in err when it refused the object. */
static int refused(struct client *c, const struct store_hash *h, int rc, char *err,
		   size_t errlen)
{
	if (rc < 0) {
		char hex[STORE_HASH_HEX];
		store_hash_hex(h, hex);
		snprintf(err, errlen, "object %.16s from %s refused: %s", hex, c->what,
			 store_last_error());
	}
	return rc;
}

static int put_checked(struct client *c, struct store *s, const struct store_hash *h,
		       const struct store_raw *raw, char *err, size_t errlen)
{
	int rc = store_put_raw(s, h, raw);
	if (rc == -EBADMSG)
		return corrupt(c, h, err, errlen);
	return refused(c, h, rc, err, errlen);
}

/* Stores an object received (and verified) in plain form at this store's level. */
static int put_plain(struct client *c, struct store *s, const struct store_hash *h,
		     enum store_kind kind, const void *data, size_t len, char *err, size_t errlen)
{
	struct store_hash got;
	int rc = store_put(s, kind, data, len, &got);
	if (rc == 0 && !store_hash_eq(&got, h))
		return corrupt(c, h, err, errlen);
	return refused(c, h, rc, err, errlen);
}

/* Version 2: the wire level and expected size of what follows, and the
 * basis (this store's head) for deltas. */
static int send_plan(struct client *c, uint64_t estimate, const struct store_hash *old,
		     const struct store_hash *new, char *err, size_t errlen)
{
	struct store_hash zero = { { 0 } };
	struct sync_wb w = { 0 };
	sync_wb_u8(&w, (uint8_t)c->wire_level);
	sync_wb_u64(&w, estimate);
	sync_wb_bytes(&w, old ? old->b : zero.b, STORE_HASH_LEN);
	sync_wb_bytes(&w, new->b, STORE_HASH_LEN);
	int rc = w.bad ? -ENOMEM : sync_frame_write(c->io, SYNC_PLAN, w.p, w.len);
	sync_wb_free(&w);
	return rc < 0 && rc != -ENOMEM ? write_failed(c, rc, err, errlen) : rc;
}

static int pull_blobs(struct pull_walk *w, const struct sync_progress *p, char *err, size_t errlen)
{
	int rc = 0;
	size_t n_total = w->blobs.n;
	/* two GETs in flight: the next batch is asked for before this one is read */
	if (n_total)
		rc = send_get(w->c, w->blobs.v, n_total < GET_BATCH ? n_total : GET_BATCH, err, errlen);
	uint64_t done = 0;
	for (size_t off = 0; !rc && off < n_total; off += GET_BATCH) {
		size_t n = n_total - off < GET_BATCH ? n_total - off : GET_BATCH;
		size_t noff = off + GET_BATCH;
		if (noff < n_total)
			rc = send_get(w->c, w->blobs.v + noff,
				      n_total - noff < GET_BATCH ? n_total - noff : GET_BATCH, err, errlen);
		if (!rc && (rc = store_txn_begin(w->s)) < 0)
			snprintf(err, errlen, "%s", store_last_error());
		if (rc)
			break;
		for (size_t i = 0; !rc && i < n; i++) {
			const struct sync_hent *e = &w->blobs.v[off + i];
			struct got g;
			rc = next_obj(w->c, w->s, &e->h, STORE_BLOB, &g, err, errlen);
			if (rc < 0) {
				got_release(&g);
				break;
			}
			if (g.stored) {
				struct store_raw raw = { .info = { .kind = g.ob.kind, .size = g.ob.size,
					.stored_size = g.ob.stored_len, .codec = g.ob.codec },
					.data = (void *)g.ob.stored };
				rc = put_checked(w->c, w->s, &e->h, &raw, err, errlen);
				done += g.ob.stored_len;
				w->st->object_bytes += g.ob.stored_len;
			} else {
				rc = put_plain(w->c, w->s, &e->h, g.kind, g.plain, g.len, err, errlen);
				done += g.len;
				w->st->raw_bytes += g.len;
			}
			w->st->objects++;
			got_release(&g);
		}
		if (rc) {
			store_txn_abort(w->s);
			break;
		}
		if ((rc = store_txn_commit(w->s)) < 0)
			snprintf(err, errlen, "%s", store_last_error());
		progress(p, done, 0, w->st->objects);
	}
	return rc;
}

static int cmp_fetched(const void *a, const void *b)
{
	return memcmp(((const struct fetched *)a)->n.h.b, ((const struct fetched *)b)->n.h.b,
		      STORE_HASH_LEN);
}

static int pull_interior(struct pull_walk *w, char *err, size_t errlen)
{
	if (!w->n)
		return 0;
	/* children first: post-order over the fetched nodes */
	qsort(w->v, w->n, sizeof(*w->v), cmp_fetched);
	struct inode *nodes = calloc(w->n ? w->n : 1, sizeof(*nodes));
	if (!nodes)
		return -ENOMEM;
	for (size_t i = 0; i < w->n; i++)
		nodes[i] = w->v[i].n;
	struct store_hash *order;
	int rc = topo_order(nodes, w->n, &order);
	free(nodes);
	if (rc < 0)
		return rc;
	if ((rc = store_txn_begin(w->s)) < 0) {
		free(order);
		snprintf(err, errlen, "%s", store_last_error());
		return rc;
	}
	for (size_t i = 0; !rc && i < w->n; i++) {
		struct fetched key = { .n.h = order[i] };
		struct fetched *fe = bsearch(&key, w->v, w->n, sizeof(*w->v), cmp_fetched);
		rc = fe->plain ? put_plain(w->c, w->s, &fe->n.h, fe->kind, fe->plain, fe->plain_len, err,
					   errlen)
			       : put_checked(w->c, w->s, &fe->n.h, &fe->raw, err, errlen);
	}
	free(order);
	if (rc) {
		store_txn_abort(w->s);
		return rc;
	}
	if ((rc = store_txn_commit(w->s)) < 0)
		snprintf(err, errlen, "%s", store_last_error());
	return rc;
}


int sync_pull(struct store *s, const char *vm, const struct sync_opts *o,
	      struct sync_stats *st, char *err, size_t errlen)
{
	struct client c;
	struct pull_walk w = { .s = s, .st = st };
	struct sync_hlist frontier = { 0 };
	memset(st, 0, sizeof(*st));
	if (!sync_vm_name_valid(vm)) {
		snprintf(err, errlen, "'%s' is not a valid VM name", vm);
		return -EINVAL;
	}
	if (ckpt_vm_running(s, vm, NULL, NULL, 0) == 1) {
		snprintf(err, errlen, "VM %s is running here; suspend it before pulling", vm);
		return -EBUSY;
	}
	w.seen = sync_hset_new();
	if (!w.seen)
		return -ENOMEM;
	int rc = client_open(&c, vm, &o->conn, o->wire_level, err, errlen);
	w.c = &c;
	if (rc < 0)
		goto out;
	char head[STORE_REF_MAX + 1], lease[STORE_REF_MAX + 1];
	snprintf(head, sizeof(head), "vms/%s/head", vm);
	snprintf(lease, sizeof(lease), "vms/%s/lease", vm);
	const struct rref *rhead = remote_ref(&c, head);
	if (!rhead) {
		snprintf(err, errlen, "%s has no VM named %s", c.host, vm);
		rc = -ENOENT;
		goto out;
	}
	struct store_hash basis;
	bool have_basis = store_ref_get(s, head, &basis) == 0 && !store_hash_eq(&basis, &rhead->h);
	if (c.version >= 2)
		rc = send_plan(&c, UINT64_MAX, have_basis ? &basis : NULL, &rhead->h, err, errlen);
	for (size_t i = 0; i < c.n_refs && rc >= 0; i++)
		rc = sync_hlist_push(&frontier, &c.refs[i].h,
				     strcmp(c.refs[i].name, lease) ? STORE_COMMIT : STORE_BLOB);
	while (rc >= 0 && frontier.n) {
		rc = pull_level(&w, &frontier, err, errlen);
		struct sync_hlist t = frontier;
		frontier = w.next;
		w.next = t;
		w.next.n = 0;
	}
	if (rc >= 0 && c.version >= 2)
		rc = send_plan(&c, (uint64_t)w.blobs.n * store_chunk_size(s),
			       have_basis ? &basis : NULL, &rhead->h, err, errlen);
	if (rc >= 0)
		rc = pull_blobs(&w, &o->progress, err, errlen);
	if (rc >= 0)
		rc = pull_interior(&w, err, errlen);
	if (rc < 0)
		goto out;
	/* a lease blob must be one */
	const struct rref *rl = remote_ref(&c, lease);
	if (rl) {
		void *data;
		size_t len;
		enum store_kind k;
		rc = store_get(s, &rl->h, &k, &data, &len);
		if (rc == 0) {
			rc = k == STORE_BLOB ? ckpt_lease_parse(data, len, NULL, 0, NULL) : -EBADMSG;
			free(data);
		}
		if (rc < 0) {
			snprintf(err, errlen, "%s sent a malformed lease for %s: refused", c.what, vm);
			goto out;
		}
	}
	/* refs: head moves forward only (unless forced); all in one transaction */
	struct store_hash lhead;
	bool have_head = store_ref_get(s, head, &lhead) == 0;
	if (have_head && !store_hash_eq(&lhead, &rhead->h) && !o->force) {
		int a = sync_is_ancestor(s, &lhead, &rhead->h);
		if (a <= 0) {
			bool ahead = sync_is_ancestor(s, &rhead->h, &lhead) == 1;
			snprintf(err, errlen, ahead
				 ? "VM %s here is newer than on %s (its head there is in this history); "
				   "push it instead, or pull with --force to go back"
				 : "VM %s has diverged: this store's head is not in %s's history "
				   "(both sides changed); push --force or pull --force to pick one",
				 vm, c.host);
			rc = a < 0 ? a : -EEXIST;
			goto out;
		}
	}
	if (ckpt_vm_running(s, vm, NULL, NULL, 0) == 1) {
		snprintf(err, errlen, "VM %s started running here during the pull; nothing changed", vm);
		rc = -EBUSY;
		goto out;
	}
	/* the lease as it is there; a VM running there without one is leased to it */
	struct store_hash synth;
	bool use_synth = false;
	if (!rl && c.running) {
		char blob[CKPT_LEASE_BLOB_MAX];
		int n = snprintf(blob, sizeof(blob), "host=%s\nsince=%lld\n", c.host, (long long)time(NULL));
		if (n > 0 && (size_t)n < sizeof(blob) && ckpt_lease_parse(blob, (size_t)n, NULL, 0, NULL) == 0 &&
		    store_put(s, STORE_BLOB, blob, (size_t)n, &synth) == 0)
			use_synth = true;
	}
	if ((rc = store_txn_begin(s)) < 0) {
		snprintf(err, errlen, "%s", store_last_error());
		goto out;
	}
	for (size_t i = 0; i < c.n_refs && rc >= 0; i++) {
		struct store_hash cur;
		bool have = store_ref_get(s, c.refs[i].name, &cur) == 0;
		if (have && store_hash_eq(&cur, &c.refs[i].h))
			continue;
		if ((rc = sync_ref_target_ok(s, c.refs[i].name, &c.refs[i].h, err, errlen)) < 0) {
			store_txn_abort(s);
			goto out;
		}
		rc = store_ref_cas(s, c.refs[i].name, have ? &cur : NULL, &c.refs[i].h);
		st->refs_updated++;
	}
	if (rc >= 0 && !rl) {
		struct store_hash cur;
		bool have = store_ref_get(s, lease, &cur) == 0;
		if (use_synth)
			rc = store_ref_cas(s, lease, have ? &cur : NULL, &synth);
		else if (have)
			rc = store_ref_cas(s, lease, &cur, NULL);
	}
	if (rc < 0) {
		snprintf(err, errlen, "cannot update the refs of %s: %s", vm, store_last_error());
		store_txn_abort(s);
		goto out;
	}
	if ((rc = store_txn_commit(s)) < 0)
		snprintf(err, errlen, "%s", store_last_error());
out:
	st->bytes_sent = c.io ? c.io->bytes_out : 0;
	st->bytes_received = c.io ? c.io->bytes_in : 0;
	st->version = c.version;
	if (c.deltas)
		st->deltas = c.deltas;
	client_close(&c, rc >= 0);
	for (size_t i = 0; i < w.n; i++) {
		free(w.v[i].n.kids);
		free(w.v[i].raw.data);
		free(w.v[i].plain);
	}
	free(w.v);
	free(w.kids);
	sync_hset_free(w.seen);
	sync_hlist_free(&w.next);
	sync_hlist_free(&w.blobs);
	sync_hlist_free(&frontier);
	return rc < 0 ? rc : 0;
}
