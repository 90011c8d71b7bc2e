/* Bundles: a VM (or what changed since a checkpoint) as one tar file
 * (libarchive), the offline twin of push and pull.
 *
 * Layout (ustar/pax):
 *   manifest          text, first entry, <= BUNDLE_MANIFEST_MAX bytes:
 *                       roam-bundle 1
 *                       vm NAME
 *                       base HEX TAG            (incremental bundles only)
 *                       ref NAME HEX            (one per ref)
 *                       object HEX KIND SIZE CODEC STORED   (children first)
 *                       end
 *   objects/HEX       one per object line, in manifest order: the object's
 *                     bytes as stored (zstd or raw)
 *
 * Import reads the file twice: the first pass checks everything (manifest,
 * entry order and sizes, every object's hash, that every reference resolves
 * in the bundle or this store, the base) and changes nothing; the second
 * stores the objects in one transaction, checking as each tree is stored
 * that its children (stored before it) fit it, and then moves the refs. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "checkpoint/vmstore.h"
#include "sync/objs.h"
#include "sync/proto.h"
#include "sync/sync.h"

#define BUNDLE_VERSION 1
#define BUNDLE_MANIFEST_MAX (256u << 20)

/* ---- create ----------------------------------------------------------------- */

struct frame_st { struct store_hash h; enum store_kind kind; struct sync_hlist kids; size_t i; };

static int kid_push(void *arg, const struct store_hash *h, enum store_kind kind)
{
	return sync_hlist_push(arg, h, kind);
}

/* Post-order (children first) list of everything reachable from (h, kind)
 * that is not in done; adds what it lists to done. */
static int walk_post(struct store *s, const struct store_hash *h, enum store_kind kind,
		     struct sync_hset *done, struct sync_hlist *out)
{
	struct frame_st *st = NULL;
	size_t sp = 0, cap = 0;
	int rc = 0;
	if (sync_hset_has(done, h))
		return 0;
	for (bool push = true;;) {
		if (push) {
			if (sp == cap) {
				cap = cap ? cap * 2 : 16;
				struct frame_st *n = realloc(st, cap * sizeof(*st));
				if (!n) {
					rc = -ENOMEM;
					break;
				}
				st = n;
			}
			memset(&st[sp], 0, sizeof(st[sp]));
			st[sp].h = *h;
			st[sp].kind = kind;
			if (kind == STORE_TREE || kind == STORE_COMMIT) {
				void *data;
				size_t len;
				rc = store_get(s, h, NULL, &data, &len);
				if (rc < 0)
					break;
				rc = sync_obj_children(kind, data, len, kid_push, &st[sp].kids);
				free(data);
				if (rc < 0) {
					sync_hlist_free(&st[sp].kids);
					break;
				}
			}
			sp++;
			push = false;
		}
		if (!sp)
			break;
		struct frame_st *f = &st[sp - 1];
		if (f->i < f->kids.n) {
			struct sync_hent *e = &f->kids.v[f->i++];
			if (sync_hset_has(done, &e->h))
				continue;
			h = &e->h;
			kind = e->kind;
			push = true;
			continue;
		}
		rc = sync_hset_add(done, &f->h);
		if (rc == 1)
			rc = sync_hlist_push(out, &f->h, f->kind);
		sync_hlist_free(&f->kids);
		sp--;
		if (rc < 0)
			break;
		if (!sp)
			break;
	}
	for (size_t i = 0; i < sp; i++)
		sync_hlist_free(&st[i].kids);
	free(st);
	return rc < 0 ? rc : 0;
}

struct bref_list { struct sync_ref *v; size_t n; const char *vm; };

static int bref_add(struct bref_list *l, const char *name, const struct store_hash *h)
{
	return sync_ref_add(&l->v, &l->n, name, h);
}

static int bref_collect(void *arg, const char *name, const struct store_hash *h)
{
	struct bref_list *l = arg;
	if (!sync_ref_allowed(l->vm, name) || !strcmp(name + strlen(l->vm) + 5, "lease"))
		return 0;
	return bref_add(l, name, h);
}

static int add_entry(struct archive *a, const char *name, const void *data, size_t len)
{
	struct archive_entry *e = archive_entry_new();
	if (!e)
		return -ENOMEM;
	archive_entry_set_pathname(e, name);
	archive_entry_set_size(e, (la_int64_t)len);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_mtime(e, 0, 0);
	int rc = archive_write_header(a, e) == ARCHIVE_OK ? 0 : -EIO;
	if (!rc && len && archive_write_data(a, data, len) != (la_ssize_t)len)
		rc = -EIO;
	archive_entry_free(e);
	return rc;
}

int sync_bundle_create(struct store *s, const struct sync_bundle_opts *o, const char *file,
		       struct sync_stats *stats, char *err, size_t errlen)
{
	struct bref_list refs = { .vm = o->vm };
	struct sync_hset *done = sync_hset_new();
	struct sync_hlist objs = { 0 };
	struct sync_wb m = { 0 };
	struct archive *a = NULL;
	char ref[STORE_REF_MAX + 1], tmp[4200], hex[STORE_HASH_HEX];
	struct store_hash base = { { 0 } };
	int rc = 0;
	memset(stats, 0, sizeof(*stats));
	if (!done)
		return -ENOMEM;
	if (!sync_vm_name_valid(o->vm)) {
		snprintf(err, errlen, "'%s' is not a valid VM name", o->vm);
		rc = -EINVAL;
		goto out;
	}
	if (o->tag) {
		struct store_hash h;
		snprintf(ref, sizeof(ref), "vms/%s/checkpoints/%s", o->vm, o->tag);
		if (!store_ref_valid(ref) || store_ref_get(s, ref, &h) < 0) {
			snprintf(err, errlen, "VM %s has no checkpoint '%s' ('roam log %s' lists them)",
				 o->vm, o->tag, o->vm);
			rc = -ENOENT;
			goto out;
		}
		char head[STORE_REF_MAX + 1];
		snprintf(head, sizeof(head), "vms/%s/head", o->vm);
		rc = bref_add(&refs, head, &h);
		if (!rc)
			rc = bref_add(&refs, ref, &h);
	} else {
		snprintf(ref, sizeof(ref), "vms/%s/", o->vm);
		rc = store_ref_list(s, ref, bref_collect, &refs);
		if (!rc && !refs.n) {
			snprintf(err, errlen, "no VM named %s in this store", o->vm);
			rc = -ENOENT;
		}
	}
	if (rc < 0)
		goto fail_msg;
	if (o->since) {
		snprintf(ref, sizeof(ref), "vms/%s/checkpoints/%s", o->vm, o->since);
		if (!store_ref_valid(ref) || store_ref_get(s, ref, &base) < 0) {
			snprintf(err, errlen, "VM %s has no checkpoint '%s' to start from", o->vm, o->since);
			rc = -ENOENT;
			goto out;
		}
		rc = sync_reach(s, &base, done);
		if (rc < 0)
			goto fail_msg;
	}
	for (size_t i = 0; i < refs.n && rc >= 0; i++)
		rc = walk_post(s, &refs.v[i].h, STORE_COMMIT, done, &objs);
	if (rc < 0)
		goto fail_msg;
	/* manifest */
	char line[512];
	int n = snprintf(line, sizeof(line), "roam-bundle %d\nvm %s\n", BUNDLE_VERSION, o->vm);
	sync_wb_bytes(&m, line, (size_t)n);
	if (o->since) {
		store_hash_hex(&base, hex);
		n = snprintf(line, sizeof(line), "base %s %s\n", hex, o->since);
		sync_wb_bytes(&m, line, (size_t)n);
	}
	for (size_t i = 0; i < refs.n; i++) {
		store_hash_hex(&refs.v[i].h, hex);
		n = snprintf(line, sizeof(line), "ref %s %s\n", refs.v[i].name, hex);
		sync_wb_bytes(&m, line, (size_t)n);
	}
	uint64_t total = 0;
	for (size_t i = 0; i < objs.n; i++) {
		struct store_obj_info info;
		rc = store_stat(s, &objs.v[i].h, &info);
		if (rc == 0 && info.codec == STORE_CODEC_DELTA) {
			/* written self-contained, as store_get_raw gives it below */
			struct store_raw raw;
			rc = store_get_raw(s, &objs.v[i].h, &raw);
			info = raw.info;
			store_raw_release(&raw);
		}
		if (rc < 0)
			goto fail_msg;
		store_hash_hex(&objs.v[i].h, hex);
		n = snprintf(line, sizeof(line), "object %s %d %" PRIu64 " %d %" PRIu64 "\n", hex,
			     (int)info.kind, info.size, (int)info.codec, info.stored_size);
		sync_wb_bytes(&m, line, (size_t)n);
		total += info.stored_size;
	}
	sync_wb_bytes(&m, "end\n", 4);
	if (m.bad || m.len > BUNDLE_MANIFEST_MAX) {
		rc = -ENOMEM;
		snprintf(err, errlen, "the manifest is too large");
		goto out;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", file);
	a = archive_write_new();
	if (!a || archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_open_filename(a, tmp) != ARCHIVE_OK) {
		snprintf(err, errlen, "cannot write %s: %s", tmp, a ? archive_error_string(a) : "no memory");
		rc = -EIO;
		goto out;
	}
	rc = add_entry(a, "manifest", m.p, m.len);
	uint64_t done_bytes = 0;
	for (size_t i = 0; i < objs.n && !rc; i++) {
		struct store_raw raw;
		rc = store_get_raw(s, &objs.v[i].h, &raw);
		if (rc < 0)
			goto fail_msg;
		store_hash_hex(&objs.v[i].h, hex);
		char name[80];
		snprintf(name, sizeof(name), "objects/%s", hex);
		rc = add_entry(a, name, raw.data, raw.info.stored_size);
		done_bytes += raw.info.stored_size;
		store_raw_release(&raw);
		stats->objects++;
		if (o->progress.fn)
			o->progress.fn(o->progress.arg, done_bytes, total, stats->objects);
	}
	if (rc < 0 || archive_write_close(a) != ARCHIVE_OK) {
		snprintf(err, errlen, "cannot write %s: %s", tmp, archive_error_string(a));
		unlink(tmp);
		rc = -EIO;
		goto out;
	}
	if (rename(tmp, file) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, file, strerror(errno));
		unlink(tmp);
		goto out;
	}
	stats->object_bytes = done_bytes;
	stats->refs_updated = refs.n;
	goto out;
fail_msg:
	snprintf(err, errlen, "%s", store_last_error());
out:
	if (a)
		archive_write_free(a);
	sync_wb_free(&m);
	sync_hlist_free(&objs);
	sync_hset_free(done);
	free(refs.v);
	return rc < 0 ? rc : 0;
}

/* ---- import ----------------------------------------------------------------- */

struct bobj { struct store_hash h; enum store_kind kind; uint64_t size, stored; enum store_codec codec; };

struct manifest {
	char vm[80];
	bool has_base;
	struct store_hash base;
	char base_tag[STORE_REF_MAX + 1];
	struct bref_list refs;
	struct bobj *objs;
	size_t n_objs;
};

static void manifest_free(struct manifest *m)
{
	free(m->refs.v);
	free(m->objs);
}

static int parse_manifest(char *text, struct manifest *m)
{
	char *save = NULL, *line;
	int state = 0;
	size_t cap = 0;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char a[300], b[300];
		int ver;
		if (state == 0) {
			if (sscanf(line, "roam-bundle %d", &ver) != 1)
				return -EBADMSG;
			if (ver != BUNDLE_VERSION)
				return -EPROTONOSUPPORT;
			state = 1;
		} else if (state == 1) {
			if (sscanf(line, "vm %79s", m->vm) != 1 || !sync_vm_name_valid(m->vm))
				return -EBADMSG;
			state = 2;
			m->refs.vm = m->vm;
		} else if (!strcmp(line, "end")) {
			state = 3;
			break;
		} else if (!strncmp(line, "base ", 5)) {
			/* The tag is a checkpoint's (create checks it so), and
			 * it is printed when the base is missing here. */
			char ref[2 * STORE_REF_MAX];
			if (m->has_base || sscanf(line, "base %299s %255s", a, m->base_tag) != 2 ||
			    store_hash_parse(a, &m->base) < 0)
				return -EBADMSG;
			snprintf(ref, sizeof(ref), "vms/%s/checkpoints/%s", m->vm, m->base_tag);
			if (!store_ref_valid(ref))
				return -EBADMSG;
			m->has_base = true;
		} else if (!strncmp(line, "ref ", 4)) {
			struct store_hash h;
			if (sscanf(line, "ref %299s %299s", a, b) != 2 || store_hash_parse(b, &h) < 0 ||
			    !sync_ref_allowed(m->vm, a) || !strcmp(a + strlen(m->vm) + 5, "lease"))
				return -EBADMSG;
			for (size_t i = 0; i < m->refs.n; i++)
				if (!strcmp(m->refs.v[i].name, a))
					return -EBADMSG;
			if (bref_add(&m->refs, a, &h) < 0)
				return -ENOMEM;
		} else if (!strncmp(line, "object ", 7)) {
			int kind, codec;
			uint64_t size, stored;
			if (sscanf(line, "object %299s %d %" SCNu64 " %d %" SCNu64, a, &kind, &size, &codec,
				   &stored) != 5)
				return -EBADMSG;
			if (m->n_objs == cap) {
				cap = cap ? cap * 2 : 256;
				struct bobj *v = realloc(m->objs, cap * sizeof(*v));
				if (!v)
					return -ENOMEM;
				m->objs = v;
			}
			struct bobj *ob = &m->objs[m->n_objs];
			if (store_hash_parse(a, &ob->h) < 0 || kind < STORE_BLOB || kind > STORE_COMMIT ||
			    codec < 0 || codec > STORE_CODEC_ZSTD || size > SYNC_OBJ_MAX ||
			    stored > SYNC_OBJ_MAX + 4096)
				return -EBADMSG;
			ob->kind = (enum store_kind)kind;
			ob->codec = (enum store_codec)codec;
			ob->size = size;
			ob->stored = stored;
			m->n_objs++;
		} else {
			return -EBADMSG;
		}
	}
	return state == 3 && m->refs.n ? 0 : -EBADMSG;
}

static struct archive *open_bundle(const char *file, char *err, size_t errlen)
{
	struct archive *a = archive_read_new();
	if (!a) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	archive_read_support_format_tar(a);
	if (archive_read_open_filename(a, file, 1 << 16) != ARCHIVE_OK) {
		snprintf(err, errlen, "cannot open bundle %s: %s", file, archive_error_string(a));
		archive_read_free(a);
		return NULL;
	}
	return a;
}

static int read_entry(struct archive *a, size_t len, void **ret)
{
	uint8_t *buf = malloc(len + 1);
	if (!buf)
		return -ENOMEM;
	size_t got = 0;
	while (got < len) {
		la_ssize_t n = archive_read_data(a, buf + got, len - got);
		if (n <= 0) {
			free(buf);
			return -EBADMSG;
		}
		got += (size_t)n;
	}
	char extra;
	if (archive_read_data(a, &extra, 1) != 0) {
		free(buf);
		return -EBADMSG;
	}
	buf[len] = 0;
	*ret = buf;
	return 0;
}

struct chk { struct store *s; struct sync_hset *have; int missing; };

static int check_child(void *arg, const struct store_hash *h, enum store_kind kind)
{
	(void)kind;
	struct chk *c = arg;
	if (sync_hset_has(c->have, h))
		return 0;
	int r = store_has(c->s, h);
	if (r < 0)
		return r;
	if (!r)
		c->missing = 1;
	return 0;
}

/* Pass over the entries after the manifest. verify: check each object and
 * its references; else store it (in the caller's transaction). */
static int pass_objects(struct store *s, struct archive *a, const struct manifest *m, bool verify,
			const struct sync_progress *p, struct sync_stats *st, char *err,
			size_t errlen)
{
	struct sync_hset *have = verify ? sync_hset_new() : NULL;
	if (verify && !have)
		return -ENOMEM;
	struct chk ck = { s, have, 0 };
	int rc = 0;
	uint64_t done = 0, total = 0;
	for (size_t i = 0; i < m->n_objs; i++)
		total += m->objs[i].stored;
	for (size_t i = 0; i < m->n_objs && !rc; i++) {
		const struct bobj *ob = &m->objs[i];
		struct archive_entry *e;
		char hex[STORE_HASH_HEX], want[80];
		store_hash_hex(&ob->h, hex);
		snprintf(want, sizeof(want), "objects/%s", hex);
		if (archive_read_next_header(a, &e) != ARCHIVE_OK) {
			snprintf(err, errlen, "the bundle is truncated: object %zu of %zu (%.16s) is "
				 "missing; nothing changed", i + 1, m->n_objs, hex);
			rc = -EBADMSG;
			break;
		}
		if (strcmp(archive_entry_pathname(e), want) ||
		    archive_entry_size(e) != (la_int64_t)ob->stored) {
			snprintf(err, errlen, "the bundle is inconsistent: entry %zu is not object %.16s "
				 "of the size its manifest says; nothing changed", i + 2, hex);
			rc = -EBADMSG;
			break;
		}
		void *data;
		rc = read_entry(a, ob->stored, &data);
		if (rc < 0) {
			snprintf(err, errlen, "the bundle is truncated or unreadable at object %.16s: %s; "
				 "nothing changed", hex, archive_error_string(a) ? archive_error_string(a) : "short entry");
			break;
		}
		if (verify) {
			void *dec;
			rc = sync_obj_decode(&ob->h, ob->codec, ob->size, data, ob->stored, &dec);
			if (rc < 0) {
				snprintf(err, errlen, "object %s in the bundle is corrupt (its content does "
					 "not match its hash); nothing changed", hex);
			} else {
				rc = sync_obj_children(ob->kind, dec, ob->size, check_child, &ck);
				free(dec);
				if (rc < 0)
					snprintf(err, errlen, "object %.16s in the bundle is malformed; "
						 "nothing changed", hex);
				else if (ck.missing)
					snprintf(err, errlen, "object %.16s in the bundle references an "
						 "object neither the bundle nor this store has; nothing "
						 "changed", hex);
				if (!rc && ck.missing)
					rc = -ENOENT;
				if (!rc && sync_hset_add(have, &ob->h) < 0)
					rc = -ENOMEM;
			}
		} else {
			struct store_raw raw = { .info = { .kind = ob->kind, .size = ob->size,
				.stored_size = ob->stored, .codec = ob->codec }, .data = data };
			rc = store_put_raw(s, &ob->h, &raw);
			if (rc < 0)
				snprintf(err, errlen, "cannot store object %.16s: %s; nothing changed", hex,
					 store_last_error());
			st->objects++;
			st->object_bytes += ob->stored;
		}
		free(data);
		done += ob->stored;
		if (p && p->fn && !verify)
			p->fn(p->arg, done, total, st->objects);
	}
	if (!rc && verify) {
		struct archive_entry *e;
		int r = archive_read_next_header(a, &e);
		if (r != ARCHIVE_EOF) {
			snprintf(err, errlen, "the bundle has %s after its last object; nothing changed",
				 r == ARCHIVE_OK ? "extra entries" : "damage");
			rc = -EBADMSG;
		}
		for (size_t i = 0; !rc && i < m->refs.n; i++) {
			ck.missing = 0;
			rc = check_child(&ck, &m->refs.v[i].h, STORE_COMMIT);
			if (!rc && ck.missing) {
				snprintf(err, errlen, "ref %s in the bundle names an object it does not "
					 "carry; nothing changed", m->refs.v[i].name);
				rc = -ENOENT;
			}
		}
	}
	sync_hset_free(have);
	return rc;
}

static int read_manifest(struct archive *a, struct manifest *m, char *err, size_t errlen)
{
	struct archive_entry *e;
	if (archive_read_next_header(a, &e) != ARCHIVE_OK ||
	    strcmp(archive_entry_pathname(e), "manifest") || archive_entry_size(e) <= 0 ||
	    archive_entry_size(e) > BUNDLE_MANIFEST_MAX) {
		snprintf(err, errlen, "not a roam bundle (no manifest first)");
		return -EBADMSG;
	}
	void *text;
	int rc = read_entry(a, (size_t)archive_entry_size(e), &text);
	if (rc < 0) {
		snprintf(err, errlen, "the bundle is truncated in its manifest");
		return rc;
	}
	rc = strlen(text) == (size_t)archive_entry_size(e) ? parse_manifest(text, m) : -EBADMSG;
	free(text);
	if (rc == -EPROTONOSUPPORT)
		snprintf(err, errlen, "the bundle was made by a newer roam (format version); update roam");
	else if (rc < 0)
		snprintf(err, errlen, "the bundle's manifest is malformed");
	return rc;
}

int sync_bundle_import(struct store *s, const char *file, bool force,
		       const struct sync_progress *progress, char *ret_vm, size_t vmlen,
		       struct sync_stats *st, char *err, size_t errlen)
{
	struct manifest m;
	memset(&m, 0, sizeof(m));
	memset(st, 0, sizeof(*st));
	struct archive *a = open_bundle(file, err, errlen);
	if (!a)
		return -EIO;
	int rc = read_manifest(a, &m, err, errlen);
	if (!rc)
		snprintf(ret_vm, vmlen, "%s", m.vm);
	if (!rc && m.has_base && store_has(s, &m.base) != 1) {
		char hex[STORE_HASH_HEX];
		store_hash_hex(&m.base, hex);
		snprintf(err, errlen, "this bundle needs commit %.16s (checkpoint %s of VM %s) which "
			 "this store does not have; import the full bundle first", hex, m.base_tag, m.vm);
		rc = -ENOENT;
	}
	if (!rc)
		rc = pass_objects(s, a, &m, true, NULL, st, err, errlen);
	archive_read_free(a);
	a = NULL;
	char head[STORE_REF_MAX + 1];
	snprintf(head, sizeof(head), "vms/%s/head", m.vm);
	const struct sync_ref *nh = NULL;
	for (size_t i = 0; i < m.refs.n; i++)
		if (!strcmp(m.refs.v[i].name, head))
			nh = &m.refs.v[i];
	if (!rc && ckpt_vm_running(s, m.vm, NULL, NULL, 0) == 1) {
		snprintf(err, errlen, "VM %s is running here; suspend it before importing", m.vm);
		rc = -EBUSY;
	}
	/* second pass: store, then move refs */
	if (!rc && !(a = open_bundle(file, err, errlen)))
		rc = -EIO;
	if (!rc && (rc = store_txn_begin(s)) < 0)
		snprintf(err, errlen, "%s", store_last_error());
	if (!rc) {
		struct manifest m2;
		memset(&m2, 0, sizeof(m2));
		rc = read_manifest(a, &m2, err, errlen);
		manifest_free(&m2);
		if (!rc)
			rc = pass_objects(s, a, &m, false, progress, st, err, errlen);
		if (rc)
			store_txn_abort(s);
		else if ((rc = store_txn_commit(s)) < 0)
			snprintf(err, errlen, "%s", store_last_error());
	}
	struct store_hash cur;
	if (!rc && nh && !force && store_ref_get(s, head, &cur) == 0 && !store_hash_eq(&cur, &nh->h)) {
		int anc = sync_is_ancestor(s, &cur, &nh->h);
		if (anc <= 0) {
			snprintf(err, errlen, "VM %s has diverged: this store's head is not in the "
				 "bundle's history; import with --force to replace it", m.vm);
			rc = anc < 0 ? anc : -EEXIST;
		}
	}
	/* The refs move together. The transaction ends here whichever ref
	 * is last (one already at its value too). */
	if (!rc && (rc = store_txn_begin(s)) < 0) {
		snprintf(err, errlen, "%s", store_last_error());
	} else if (!rc) {
		for (size_t i = 0; !rc && i < m.refs.n; i++) {
			bool have = store_ref_get(s, m.refs.v[i].name, &cur) == 0;
			if (have && store_hash_eq(&cur, &m.refs.v[i].h))
				continue;
			if ((rc = sync_ref_target_ok(s, m.refs.v[i].name, &m.refs.v[i].h, err,
						     errlen)) < 0)
				break;
			rc = store_ref_cas(s, m.refs.v[i].name, have ? &cur : NULL, &m.refs.v[i].h);
			if (rc < 0)
				snprintf(err, errlen, "cannot update ref %s: %s", m.refs.v[i].name,
					 store_last_error());
			else
				st->refs_updated++;
		}
		if (rc < 0)
			store_txn_abort(s);
		else if ((rc = store_txn_commit(s)) < 0)
			snprintf(err, errlen, "%s", store_last_error());
		if (rc < 0)
			st->refs_updated = 0;
	}
	if (a)
		archive_read_free(a);
	manifest_free(&m);
	return rc < 0 ? rc : 0;
}
