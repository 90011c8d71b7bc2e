/* The far side of push, pull and clone: `roam serve --stdio STORE` answers
 * framed requests (proto.h) on stdin/stdout. Everything the client sends is
 * checked here again: objects are re-hashed and reference-checked by
 * store_put_raw, ref names must belong to one VM, refs move by
 * compare-and-swap, and a head only moves forward unless forced. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "checkpoint/lease.h"
#include "checkpoint/vmstore.h"
#include "sync/objs.h"
#include "sync/proto.h"
#include "sync/sync.h"
#include "sync/xfer.h"

struct server {
	struct sync_io io;
	int in, out;
	struct store *s;
	bool txn;
	uint64_t txn_objs, txn_bytes;
	uint64_t objs, new_objs, bytes;
	int version;                /* negotiated in HELLO */
	struct sync_wenc *enc;      /* version 2: GET answers */
	struct sync_wdec *dec;      /* version 2: pushed objects */
	struct sync_bmap *bmap;     /* from PLAN: delta bases for GET answers */
	int plan_level;             /* GET answers: wire level, 0 as stored */
	int env_level;              /* $ROAM_SYNC_WIRE here; 0: none */
	struct store_hash plan_old, plan_new;   /* the basis in bmap */
};

static ssize_t fd_read(void *arg, void *buf, size_t len)
{
	return sync_fd_read(((struct server *)arg)->in, buf, len);
}

static int fd_write(void *arg, const void *buf, size_t len)
{
	return sync_fd_write(((struct server *)arg)->out, buf, len);
}

static int fail(struct server *sv, int err, const char *fmt, const char *a, const char *b)
{
	char msg[SYNC_ERRMSG_MAX];
	snprintf(msg, sizeof(msg), fmt, a, b ? b : "");
	fprintf(stderr, "roam serve: %s\n", msg);
	sync_send_error(&sv->io, err, "%s", msg);
	return 1;
}

static int txn_commit(struct server *sv)
{
	if (!sv->txn)
		return 0;
	sv->txn = false;
	sv->txn_objs = sv->txn_bytes = 0;
	return store_txn_commit(sv->s);
}

struct list_ctx { struct sync_wb *w; const char *vm; uint32_t n; };

static int list_one(void *arg, const char *name, const struct store_hash *h)
{
	struct list_ctx *c = arg;
	if (!sync_ref_allowed(c->vm, name))
		return 0;
	sync_wb_u16(c->w, (uint16_t)strlen(name));
	sync_wb_bytes(c->w, name, strlen(name));
	sync_wb_bytes(c->w, h->b, STORE_HASH_LEN);
	c->n++;
	return 0;
}

static int do_list(struct server *sv, const struct sync_frame *f)
{
	const char *vm = (const char *)f->data;
	if (strlen(vm) != f->len || !sync_vm_name_valid(vm))
		return fail(sv, EINVAL, "'%s' is not a valid VM name%s", vm, NULL);
	char prefix[80];
	snprintf(prefix, sizeof(prefix), "vms/%s/", vm);
	struct sync_wb w = { 0 };
	int running = ckpt_vm_running(sv->s, vm, NULL, NULL, 0);
	sync_wb_u8(&w, running == 1);
	sync_wb_u32(&w, 0);
	struct list_ctx c = { &w, vm, 0 };
	int rc = store_ref_list(sv->s, prefix, list_one, &c);
	if (rc < 0 || w.bad || w.len > SYNC_FRAME_MAX) {
		sync_wb_free(&w);
		return fail(sv, EIO, "cannot list the refs of %s: %s", vm, store_last_error());
	}
	for (int i = 0; i < 4; i++)
		w.p[1 + i] = (uint8_t)(c.n >> (8 * i));
	rc = sync_frame_write(&sv->io, SYNC_REFS, w.p, w.len);
	sync_wb_free(&w);
	return rc < 0 ? 1 : 0;
}

static int do_have(struct server *sv, const struct sync_frame *f)
{
	size_t n = f->len / STORE_HASH_LEN;
	if (f->len % STORE_HASH_LEN || n > SYNC_BATCH_MAX)
		return fail(sv, EPROTO, "malformed HAVE message%s%s", "", NULL);
	uint8_t *rep = malloc(n ? n : 1);
	if (!rep)
		return fail(sv, ENOMEM, "out of memory%s%s", "", NULL);
	for (size_t i = 0; i < n; i++) {
		struct store_hash h;
		memcpy(h.b, f->data + i * STORE_HASH_LEN, STORE_HASH_LEN);
		int r = store_hash_is_zero(&h) ? 0 : store_has(sv->s, &h);
		if (r < 0) {
			free(rep);
			return fail(sv, EIO, "%s%s", store_last_error(), NULL);
		}
		rep[i] = (uint8_t)r;
	}
	int rc = sync_frame_write(&sv->io, SYNC_HAVE_REPLY, rep, n);
	free(rep);
	return rc < 0 ? 1 : 0;
}

/* Version 2: GET answered by records in the wire stream, flushed at the end. */
static int get_wire(struct server *sv, const struct sync_frame *f, size_t n)
{
	if (sv->plan_level && !sv->enc && sync_wenc_new(&sv->io, sv->plan_level, &sv->enc) < 0)
		return fail(sv, ENOMEM, "out of memory%s%s", "", NULL);
	struct sync_wenc *e = sv->plan_level ? sv->enc : NULL;
	for (size_t i = 0; i < n; i++) {
		struct store_hash h;
		char why[400];
		bool io_failed;
		uint64_t raw = 0;
		memcpy(h.b, f->data + i * STORE_HASH_LEN, STORE_HASH_LEN);
		int rc = sync_xfer_send(e, &sv->io, sv->s, sv->bmap, &h, &raw, &io_failed, why,
					sizeof(why));
		if (rc < 0 && io_failed)
			return 1;
		if (rc < 0) {
			char hex[STORE_HASH_HEX];
			store_hash_hex(&h, hex);
			return fail(sv, -rc, "cannot read object %s: %s", hex, why);
		}
	}
	return e && sync_wenc_flush(e) < 0 ? 1 : 0;
}

static int do_plan(struct server *sv, const struct sync_frame *f)
{
	struct sync_rd r;
	sync_rd_init(&r, f->data, f->len);
	uint8_t level = sync_rd_u8(&r);
	uint64_t estimate = sync_rd_u64(&r);
	const uint8_t *o = sync_rd_bytes(&r, STORE_HASH_LEN), *nw = sync_rd_bytes(&r, STORE_HASH_LEN);
	if (r.bad || r.off != f->len || sv->version < 2 || level > 19)
		return fail(sv, EPROTO, "malformed PLAN message%s%s", "", NULL);
	int lvl = level ? level : sv->env_level ? sv->env_level : sync_wire_auto_level(estimate);
	sv->plan_level = lvl;
	if (lvl && sv->enc && sync_wenc_set_level(sv->enc, lvl) < 0)
		return 1;
	struct store_hash oh, nh;
	memcpy(oh.b, o, STORE_HASH_LEN);
	memcpy(nh.b, nw, STORE_HASH_LEN);
	if (store_hash_is_zero(&oh) || store_hash_is_zero(&nh) || store_has(sv->s, &oh) != 1 ||
	    store_has(sv->s, &nh) != 1 ||
	    (store_hash_eq(&oh, &sv->plan_old) && store_hash_eq(&nh, &sv->plan_new)))
		return 0;
	sv->plan_old = oh;
	sv->plan_new = nh;
	if (!sv->bmap && sync_bmap_new(&sv->bmap) < 0)
		return fail(sv, ENOMEM, "out of memory%s%s", "", NULL);
	/* a basis that cannot be built only costs bytes: go on without it */
	if (sync_bmap_add_commits(sv->bmap, sv->s, &nh, &oh, sv->version >= 3) < 0) {
		sync_bmap_free(sv->bmap);
		sv->bmap = NULL;
	}
	return 0;
}

static int do_get(struct server *sv, const struct sync_frame *f)
{
	size_t n = f->len / STORE_HASH_LEN;
	if (f->len % STORE_HASH_LEN || n > SYNC_BATCH_MAX)
		return fail(sv, EPROTO, "malformed GET message%s%s", "", NULL);
	if (sv->version >= 2)
		return get_wire(sv, f, n);
	for (size_t i = 0; i < n; i++) {
		struct store_hash h;
		struct store_raw raw;
		char hex[STORE_HASH_HEX];
		memcpy(h.b, f->data + i * STORE_HASH_LEN, STORE_HASH_LEN);
		store_hash_hex(&h, hex);
		int rc = store_get_raw(sv->s, &h, &raw);
		if (rc < 0)
			return fail(sv, -rc, "cannot read object %s: %s", hex, store_last_error());
		uint8_t hdr[SYNC_OBJ_HDR];
		sync_obj_header(hdr, &h, raw.info.kind, raw.info.codec, raw.info.size);
		rc = sync_frame_write2(&sv->io, SYNC_OBJ, hdr, sizeof(hdr), raw.data,
				       raw.info.stored_size);
		store_raw_release(&raw);
		if (rc < 0)
			return 1;
	}
	return 0;
}

static int txn_open(struct server *sv)
{
	if (sv->txn)
		return 0;
	if (store_txn_begin(sv->s) < 0)
		return fail(sv, EIO, "%s%s", store_last_error(), NULL);
	sv->txn = true;
	return 0;
}

/* One object arrived (wire bytes of it: wire); commit at the batch limits. */
static int counted(struct server *sv, bool had, uint64_t wire, uint64_t size)
{
	sv->objs++;
	sv->new_objs += !had;
	sv->bytes += wire;
	sv->txn_objs++;
	sv->txn_bytes += size;
	if (sv->txn_objs >= SYNC_TXN_OBJS || sv->txn_bytes >= SYNC_TXN_BYTES) {
		if (txn_commit(sv) < 0)
			return fail(sv, EIO, "%s%s", store_last_error(), NULL);
	}
	return 0;
}

static int refuse(struct server *sv, int err, const char *what, const char *why)
{
	store_txn_abort(sv->s);
	sv->txn = false;
	return fail(sv, err, "refused %s: %s", what, why);
}

/* Version 2: a piece of the client's wire stream; store every record. */
static int do_zdata(struct server *sv, struct sync_frame *f)
{
	if (sv->version < 2)
		return fail(sv, EPROTO, "unexpected message type ZDATA%s%s", "", NULL);
	if (!sv->dec && sync_wdec_new(&sv->dec) < 0)
		return fail(sv, ENOMEM, "out of memory%s%s", "", NULL);
	uint64_t wire = f->len;
	sync_wdec_input(sv->dec, f);
	for (;;) {
		struct sync_wrec rec;
		int rc = sync_wdec_next(sv->dec, &rec);
		if (rc == 0)
			return 0;
		if (rc < 0)
			return refuse(sv, -rc, "the pushed objects", sync_wdec_error(sv->dec));
		if (txn_open(sv))
			return 1;
		char why[512];
		void *data;
		size_t len;
		struct store_hash h, got;
		rc = sync_xfer_resolve(sv->dec, sv->s, &rec, &data, &len, &h, why, sizeof(why));
		if (rc < 0)
			return refuse(sv, -rc, "a pushed object", why);
		int had = store_has(sv->s, &h);
		rc = had < 0 ? had : store_put(sv->s, rec.kind, data, len, &got);
		free(data);
		if (rc < 0) {
			char hex[STORE_HASH_HEX];
			snprintf(why, sizeof(why), "%s", store_last_error());
			store_hash_hex(&h, hex);
			char what[100];
			snprintf(what, sizeof(what), "object %s", hex);
			return refuse(sv, -rc, what, why);
		}
		if (counted(sv, had == 1, wire, len))
			return 1;
		wire = 0;
	}
}

static int do_obj(struct server *sv, const struct sync_frame *f)
{
	struct sync_obj o;
	if (sync_obj_parse(f->data, f->len, &o) < 0)
		return fail(sv, EPROTO, "malformed OBJ message%s%s", "", NULL);
	char hex[STORE_HASH_HEX];
	store_hash_hex(&o.hash, hex);
	if (sv->dec && !sync_wdec_idle(sv->dec))
		return fail(sv, EPROTO, "an OBJ frame arrived in the middle of an object in the wire "
			    "stream%s%s", "", NULL);
	if (txn_open(sv))
		return 1;
	int had = store_has(sv->s, &o.hash);
	struct store_raw raw = { .info = { .kind = o.kind, .size = o.size,
					   .stored_size = o.stored_len, .codec = o.codec },
				 .data = (void *)o.stored };
	int rc = had < 0 ? had : store_put_raw(sv->s, &o.hash, &raw);
	if (rc < 0) {
		char why[512];
		snprintf(why, sizeof(why), "%s", store_last_error());
		store_txn_abort(sv->s);
		sv->txn = false;
		return fail(sv, -rc, "refused object %s: %s", hex, why);
	}
	return counted(sv, had == 1, f->len, o.stored_len);
}

static int do_flush(struct server *sv)
{
	if (sv->dec && !sync_wdec_idle(sv->dec))
		return refuse(sv, EPROTO, "the pushed objects",
			      "the wire stream stopped in the middle of an object");
	if (txn_commit(sv) < 0)
		return fail(sv, EIO, "%s%s", store_last_error(), NULL);
	struct sync_wb w = { 0 };
	sync_wb_u64(&w, sv->objs);
	sync_wb_u64(&w, sv->new_objs);
	sync_wb_u64(&w, sv->bytes);
	int rc = w.bad ? -ENOMEM : sync_frame_write(&sv->io, SYNC_FLUSHED, w.p, w.len);
	sync_wb_free(&w);
	return rc < 0 ? 1 : 0;
}

struct upd { char name[STORE_REF_MAX + 1]; struct store_hash old, new; };

static int do_update(struct server *sv, const struct sync_frame *f)
{
	struct sync_rd r;
	sync_rd_init(&r, f->data, f->len);
	uint8_t flags = sync_rd_u8(&r);
	uint32_t n = sync_rd_u32(&r);
	if (r.bad || n == 0 || n > 100000 || (size_t)n * 66 > f->len)
		return fail(sv, EPROTO, "malformed UPDATE message%s%s", "", NULL);
	struct upd *u = calloc(n, sizeof(*u));
	if (!u)
		return fail(sv, ENOMEM, "out of memory%s%s", "", NULL);
	char vm[80] = "";
	int ret = 0;
	for (uint32_t i = 0; i < n && !ret; i++) {
		int rc = sync_rd_refname(&r, u[i].name);
		const uint8_t *o = sync_rd_bytes(&r, STORE_HASH_LEN), *nw = sync_rd_bytes(&r, STORE_HASH_LEN);
		if (rc < 0 || !o || !nw) {
			ret = fail(sv, EINVAL, "bad ref name in UPDATE%s%s", "", NULL);
			break;
		}
		memcpy(u[i].old.b, o, STORE_HASH_LEN);
		memcpy(u[i].new.b, nw, STORE_HASH_LEN);
		if (i == 0) {
			const char *a = u[0].name + 4, *slash = strchr(a, '/');
			if (strncmp(u[0].name, "vms/", 4) || !slash || (size_t)(slash - a) >= sizeof(vm)) {
				ret = fail(sv, EINVAL, "ref '%s' is not a VM's ref%s", u[0].name, NULL);
				break;
			}
			memcpy(vm, a, (size_t)(slash - a));
			vm[slash - a] = 0;
		}
		if (!sync_ref_allowed(vm, u[i].name))
			ret = fail(sv, EINVAL, "ref '%s' does not belong to VM %s", u[i].name, vm);
	}
	if (!ret && r.off != f->len)
		ret = fail(sv, EPROTO, "malformed UPDATE message%s%s", "", NULL);
	if (!ret && ckpt_vm_running(sv->s, vm, NULL, NULL, 0) == 1)
		ret = fail(sv, EBUSY, "VM %s is running on the far side; suspend it there first%s",
			   vm, NULL);
	for (uint32_t i = 0; i < n && !ret; i++) {
		const char *leaf = u[i].name + 4 + strlen(vm) + 1;
		if (strcmp(leaf, "head") || (flags & 1) || store_hash_is_zero(&u[i].old) ||
		    store_hash_eq(&u[i].old, &u[i].new))
			continue;
		int a = store_hash_is_zero(&u[i].new) ? 0 : sync_is_ancestor(sv->s, &u[i].old, &u[i].new);
		if (a < 0)
			ret = fail(sv, -a, "cannot check the history of %s: %s", vm, store_last_error());
		else if (!a)
			ret = fail(sv, EEXIST,
				   "VM %s has diverged: its head on the far side is not an ancestor "
				   "of the one pushed (both sides changed); pull it first, or use "
				   "--force to overwrite%s", vm, NULL);
	}
	if (!ret && txn_commit(sv) < 0)
		ret = fail(sv, EIO, "%s%s", store_last_error(), NULL);
	if (!ret && store_txn_begin(sv->s) < 0)
		ret = fail(sv, EIO, "%s%s", store_last_error(), NULL);
	for (uint32_t i = 0; i < n && !ret; i++) {
		const struct store_hash *o = store_hash_is_zero(&u[i].old) ? NULL : &u[i].old;
		const struct store_hash *nw = store_hash_is_zero(&u[i].new) ? NULL : &u[i].new;
		char why[400];
		int rc = nw ? sync_ref_target_ok(sv->s, u[i].name, nw, why, sizeof(why)) : 0;
		if (rc < 0) {
			store_txn_abort(sv->s);
			ret = fail(sv, -rc, "%s%s", why, NULL);
			break;
		}
		rc = store_ref_cas(sv->s, u[i].name, o, nw);
		if (rc == -ENOENT && !nw)
			rc = 0;
		if (rc < 0) {
			snprintf(why, sizeof(why), "%s", rc == -ESTALE
				 ? "it moved during the transfer; run the command again"
				 : store_last_error());
			store_txn_abort(sv->s);
			ret = fail(sv, -rc, "cannot update ref %s: %s", u[i].name, why);
			break;
		}
		if (i + 1 == n && store_txn_commit(sv->s) < 0)
			ret = fail(sv, EIO, "%s%s", store_last_error(), NULL);
	}
	free(u);
	if (!ret && sync_frame_write(&sv->io, SYNC_OK, NULL, 0) < 0)
		ret = 1;
	return ret;
}

static int hello(struct server *sv, const char *path, bool create)
{
	struct sync_frame f;
	if (sync_frame_read(&sv->io, &f) < 0) {
		fprintf(stderr, "roam serve: %s\n", sv->io.err);
		return 1;
	}
	struct sync_rd r;
	sync_rd_init(&r, f.data, f.len);
	const uint8_t *magic = sync_rd_bytes(&r, 8);
	uint16_t lo = sync_rd_u16(&r), hi = sync_rd_u16(&r);
	uint32_t flags = sync_rd_u32(&r);
	bool ok = f.type == SYNC_HELLO && magic && !memcmp(magic, SYNC_MAGIC, 8) && !r.bad;
	sync_frame_release(&f);
	if (!ok)
		return fail(sv, EPROTO, "expected a roam sync HELLO%s%s", "", NULL);
	int wl;
	int mine = sync_wire_setting(SYNC_WIRE_AUTO, &wl);
	if (lo > mine || hi < SYNC_VERSION_MIN) {
		char v[64], m[32];
		snprintf(v, sizeof(v), "%u..%u", lo, hi);
		snprintf(m, sizeof(m), "%u..%d", SYNC_VERSION_MIN, mine);
		return fail(sv, EPROTONOSUPPORT,
			    "the far side's roam speaks sync versions %s, the client %s: "
			    "update roam on one side", m, v);
	}
	sv->version = hi < mine ? hi : mine;
	sv->env_level = wl;
	sv->plan_level = wl ? wl : 3;
	if ((flags & 1) || create) {
		int rc = store_init(path, NULL);
		if (rc < 0 && rc != -EEXIST)
			return fail(sv, -rc, "cannot create a store at %s: %s", path, store_last_error());
	}
	int rc = store_open(path, 0, &sv->s);
	if (rc < 0)
		return fail(sv, -rc, "cannot open the store at %s: %s", path, store_last_error());
	char host[CKPT_LEASE_HOST_MAX + 1];
	ckpt_lease_hostname(host, sizeof(host));
	struct sync_wb w = { 0 };
	sync_wb_bytes(&w, SYNC_MAGIC, 8);
	sync_wb_u16(&w, (uint16_t)sv->version);
	sync_wb_u16(&w, 0);
	sync_wb_u8(&w, (uint8_t)strlen(host));
	sync_wb_bytes(&w, host, strlen(host));
	rc = w.bad ? -ENOMEM : sync_frame_write(&sv->io, SYNC_HELLO, w.p, w.len);
	sync_wb_free(&w);
	return rc < 0 ? 1 : 0;
}

int sync_serve(const char *path, bool create, int in_fd, int out_fd)
{
	struct server sv = { .in = in_fd, .out = out_fd };
	sv.io.read = fd_read;
	sv.io.write = fd_write;
	sv.io.arg = &sv;
	signal(SIGPIPE, SIG_IGN);
	int ret = hello(&sv, path, create);
	while (!ret) {
		struct sync_frame f;
		int rc = sync_frame_read(&sv.io, &f);
		if (rc < 0) {
			/* the client went away: keep what arrived */
			txn_commit(&sv);
			if (rc != -EPIPE || strstr(sv.io.err, "middle"))
				fprintf(stderr, "roam serve: %s\n", sv.io.err);
			ret = rc == -EPIPE ? 0 : 1;
			break;
		}
		switch (f.type) {
		case SYNC_LIST: ret = do_list(&sv, &f); break;
		case SYNC_HAVE: ret = do_have(&sv, &f); break;
		case SYNC_GET: ret = do_get(&sv, &f); break;
		case SYNC_OBJ: ret = do_obj(&sv, &f); break;
		case SYNC_ZDATA: ret = do_zdata(&sv, &f); break;
		case SYNC_PLAN: ret = do_plan(&sv, &f); break;
		case SYNC_FLUSH: ret = do_flush(&sv); break;
		case SYNC_UPDATE: ret = do_update(&sv, &f); break;
		case SYNC_BYE: ret = txn_commit(&sv) < 0 ? 1 : -1; break;
		default: ret = fail(&sv, EPROTO, "unexpected message type %s%s",
				    f.type == SYNC_ERROR ? "ERROR" : "?", NULL);
		}
		sync_frame_release(&f);
	}
	if (sv.txn)
		store_txn_abort(sv.s);
	sync_wenc_free(sv.enc);
	sync_wdec_free(sv.dec);
	sync_bmap_free(sv.bmap);
	store_free(sv.s);
	return ret < 0 ? 0 : ret;
}
