/* libFuzzer harness for bundle import (sync/bundle.c): a bundle is one tar
 * file from a USB stick. The harness writes the tar itself (libarchive,
 * pax as bundle.c writes it) from a manifest and objects cut out of the
 * input, or takes the input as the file, and imports it into a store made
 * once in a temp dir. An import must fail with one line of printable text
 * and leave the refs alone, or succeed with everything committed (a second
 * handle sees the same refs) and store_verify finding nothing bad. After
 * each run the refs are put back and gc empties the store, so a run does
 * not depend on the ones before it.
 *
 * Input: byte 0 flags, then parts separated by "\xff\xfe":
 *   flags bit 0   the rest is the bundle file itself
 *         bit 1   import with force
 *         bit 2   part 0 is the whole manifest; else roam's header, part 0
 *                 as extra lines, "ref vms/fz/head" of the last object
 *                 unless part 0 has refs, an object line per object, end
 *         bit 3   objects stored zstd (codec 1), else raw
 *         bit 4   an extra entry after the objects
 *         bit 5   (generated) also "ref vms/fz/checkpoints/t" of the last
 *                 object, before the head
 *         bit 6   (generated) the head ref names the seed commit, where
 *                 this store has it already
 *   part 0        manifest text: "$N" is the hex hash of object N (0-7),
 *                 "$S" of the seed commit, "$X" of an object nowhere,
 *                 "~N" object N's "KIND SIZE CODEC STORED"
 *   parts 1..8    objects: byte 0 bits 0-1 kind - 1, bit 2 built by the
 *                 harness (tree: a node over earlier objects; commit:
 *                 parents and roots from earlier objects, the rest as its
 *                 message); else the rest is the content, with "$N" (N
 *                 earlier), "$S" and "$X" replaced by the 32-byte hash.
 * The store starts with VM "seed" and vms/fz/head both at the seed commit
 * (roots "config", a blob, and "disk0", a tree over it). */
#include <archive.h>
#include <archive_entry.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include "image/commit.h"
#include "image/store.h"
#include "sync/sync.h"

#define MAX_OBJS 8
#define SEP "\xff\xfe"

struct obj {
	enum store_kind kind;
	uint8_t *data;          /* content */
	size_t len;
	struct store_hash h;
	uint8_t *stored;        /* data or its zstd frame */
	size_t stored_len;
	int codec;
};

struct ref { char name[STORE_REF_MAX + 1]; struct store_hash h; };
struct refs { struct ref v[64]; size_t n; int overflow; };

static char dir[] = "/tmp/roam-bundle-fuzz.XXXXXX";
static char file[300];
static struct store *s, *ro;       /* writer; a second, read-only handle */
static struct store_hash seed, nowhere = { { 0xee, 0xee, 0xee } };
static struct refs initial;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static void cleanup(void)
{
	store_free(ro);
	store_free(s);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int ref_collect(void *arg, const char *name, const struct store_hash *h)
{
	struct refs *r = arg;
	if (r->n == sizeof(r->v) / sizeof(r->v[0])) {
		r->overflow = 1;
		return 0;
	}
	snprintf(r->v[r->n].name, sizeof(r->v[0].name), "%s", name);
	r->v[r->n++].h = *h;
	return 0;
}

static void list_refs(struct store *st, struct refs *r)
{
	r->n = 0;
	r->overflow = 0;
	if (store_ref_list(st, "", ref_collect, r) < 0 || r->overflow)
		abort();
}

static int same_refs(const struct refs *a, const struct refs *b)
{
	if (a->n != b->n)
		return 0;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->v[i].name, b->v[i].name) || !store_hash_eq(&a->v[i].h, &b->v[i].h))
			return 0;
	return 1;
}

static void setup(void)
{
	if (s)
		return;
	char path[300];
	if (!mkdtemp(dir))
		abort();
	atexit(cleanup);
	snprintf(path, sizeof(path), "%s/store", dir);
	snprintf(file, sizeof(file), "%s/in.bundle", dir);
	if (store_init(path, NULL) < 0 || store_open(path, 0, &s) < 0 ||
	    store_open(path, STORE_OPEN_RDONLY, &ro) < 0)
		abort();
	static const char config[] = "{\"version\":1,\"name\":\"seed\",\"mem\":16777216,\"cpus\":1,"
				     "\"append\":\"\",\"disks\":1,\"readonly\":\"0\"}";
	struct store_hash blob, tree;
	struct store_tree_builder *b;
	struct store_commit c = { .time = 1764000000 };
	if (store_put(s, STORE_BLOB, config, sizeof(config) - 1, &blob) < 0 ||
	    store_tree_builder_new(s, sizeof(config) - 1, NULL, &b) < 0 ||
	    store_tree_builder_set_hash(b, 0, &blob) < 0 || store_tree_builder_finish(b, &tree) < 0 ||
	    store_commit_add_root(&c, "config", STORE_BLOB, &blob) < 0 ||
	    store_commit_add_root(&c, "disk0", STORE_TREE, &tree) < 0 ||
	    store_commit_put(s, &c, &seed) < 0 ||
	    store_ref_cas(s, "vms/seed/head", NULL, &seed) < 0 ||
	    store_ref_cas(s, "vms/fz/head", NULL, &seed) < 0)
		abort();
	store_tree_builder_free(b);
	if (store_unpin(s) < 0)
		abort();
	list_refs(s, &initial);
	struct store_verify_report *rep;
	if (store_verify(ro, NULL, &rep) != 0)
		abort();
	store_verify_report_free(rep);
}

/* Puts the refs back as they were and drops every object nothing reaches. */
static void restore(void)
{
	struct refs now;
	struct store_gc_stats gs;
	list_refs(s, &now);
	for (size_t i = 0; i < now.n; i++) {
		const struct ref *r = &now.v[i], *was = NULL;
		for (size_t k = 0; k < initial.n; k++)
			if (!strcmp(initial.v[k].name, r->name))
				was = &initial.v[k];
		if (!was && store_ref_cas(s, r->name, &r->h, NULL) < 0)
			abort();
		if (was && !store_hash_eq(&was->h, &r->h) && store_ref_cas(s, r->name, &r->h, &was->h) < 0)
			abort();
	}
	list_refs(s, &now);
	if (!same_refs(&now, &initial) || store_unpin(s) < 0 || store_gc(s, NULL, &gs) < 0)
		abort();
}

/* A one-line message of printable text. */
static void check_refusal(const char *err)
{
	if (!err[0])
		abort();
	for (const char *p = err; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			abort();
}

/* Next part of [*p, end) up to SEP. */
static int next_part(const uint8_t **p, const uint8_t *end, const uint8_t **ret, size_t *ret_len)
{
	if (!*p)
		return 0;
	const uint8_t *q = memmem(*p, (size_t)(end - *p), SEP, 2);
	*ret = *p;
	*ret_len = (size_t)((q ? q : end) - *p);
	*p = q ? q + 2 : NULL;
	return 1;
}

/* in with "$N" (N < n) and "$S" replaced: by the raw hash (hex 0) or its
 * hex (hex 1, which also replaces "~N"). malloc'd, *ret_len bytes. */
static uint8_t *subst(const uint8_t *in, size_t len, const struct obj *o, size_t n, int hex,
		      size_t *ret_len)
{
	uint8_t *out = malloc(len * 48 + 1), *w = out;
	if (!out)
		abort();
	for (size_t i = 0; i < len; i++) {
		const struct store_hash *h = NULL;
		if (i + 1 < len && in[i] == '$' && in[i + 1] == 'S')
			h = &seed;
		else if (i + 1 < len && in[i] == '$' && in[i + 1] == 'X')
			h = &nowhere;
		else if (i + 1 < len && in[i] == '$' && in[i + 1] >= '0' && in[i + 1] < '0' + (int)n)
			h = &o[in[i + 1] - '0'].h;
		if (h && hex) {
			store_hash_hex(h, (char *)w);
			w += STORE_HASH_HEX - 1;
		} else if (h) {
			memcpy(w, h->b, STORE_HASH_LEN);
			w += STORE_HASH_LEN;
		} else if (hex && i + 1 < len && in[i] == '~' && in[i + 1] >= '0' &&
			   in[i + 1] < '0' + (int)n) {
			const struct obj *ob = &o[in[i + 1] - '0'];
			w += sprintf((char *)w, "%d %zu %d %zu", (int)ob->kind, ob->len, ob->codec,
				     ob->stored_len);
		} else {
			*w++ = in[i];
			continue;
		}
		i++;
	}
	*ret_len = (size_t)(w - out);
	return out;
}

/* A tree node over earlier objects: p[0] level, p[1] count, p[2..9]
 * logical size, then one byte per child (index of an earlier object, or
 * beyond them: a zero child). */
static uint8_t *build_tree(const uint8_t *p, size_t len, const struct obj *o, size_t n,
			   size_t *ret_len)
{
	uint8_t hdr[24] = "RTRE";
	unsigned count = len > 1 ? p[1] % 9 : 1;
	uint64_t size = (uint64_t)count * store_chunk_size(s);
	if (len >= 10)
		memcpy(&size, p + 2, 8);
	uint32_t cs = store_chunk_size(s);
	hdr[4] = 1;
	hdr[5] = len > 0 ? p[0] % 3 : 0;
	hdr[6] = 512 & 0xff;
	hdr[7] = 512 >> 8;
	memcpy(hdr + 8, &cs, 4);
	memcpy(hdr + 12, &count, 4);
	memcpy(hdr + 16, &size, 8);
	uint8_t *out = calloc(1, sizeof(hdr) + count * STORE_HASH_LEN);
	if (!out)
		abort();
	memcpy(out, hdr, sizeof(hdr));
	for (unsigned i = 0; i < count; i++) {
		size_t k = 10 + i < len ? p[10 + i] : i;
		if (k < n)
			memcpy(out + sizeof(hdr) + i * STORE_HASH_LEN, o[k].h.b, STORE_HASH_LEN);
	}
	*ret_len = sizeof(hdr) + count * STORE_HASH_LEN;
	return out;
}

/* A commit: p[0] parents (bit k: object k, bit 7: the seed commit), p[1]
 * roots (bit k: object k under the k-th name), the rest its message. NULL
 * when encode refuses it (the caller then takes the bytes as content). */
static uint8_t *build_commit(const uint8_t *p, size_t len, const struct obj *o, size_t n,
			     size_t *ret_len)
{
	static const char *names[] = { "config", "disk0", "kernel", "state", "memory",
				       "initrd", "disk1", "x.y" };
	static struct store_commit c;
	memset(&c, 0, sizeof(c));
	c.time = 1764000001;
	c.host = "fuzz";
	uint8_t par = len > 0 ? p[0] : 0x80, roots = len > 1 ? p[1] : 0;
	for (size_t k = 0; k < 8; k++) {
		if (par >> k & 1 && (k == 7 || k < n))
			c.parents[c.n_parents++] = k == 7 ? seed : o[k].h;
		if (roots >> k & 1 && k < n && o[k].kind != STORE_COMMIT)
			store_commit_add_root(&c, names[k], o[k].kind, &o[k].h);
	}
	char *msg = NULL;
	if (len > 2) {
		msg = strndup((const char *)p + 2, len - 2);
		if (!msg)
			abort();
		c.message = msg;
	}
	void *out = NULL;
	if (store_commit_encode(&c, &out, ret_len) < 0)
		out = NULL;
	free(msg);
	return out;
}

static void add_entry(struct archive *a, const char *name, const void *data, size_t len)
{
	struct archive_entry *e = archive_entry_new();
	if (!e)
		abort();
	archive_entry_set_pathname(e, name);
	archive_entry_set_size(e, (la_int64_t)len);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	if (archive_write_header(a, e) != ARCHIVE_OK ||
	    (len && archive_write_data(a, data, len) != (la_ssize_t)len))
		abort();
	archive_entry_free(e);
}

static void write_file(const void *data, size_t len)
{
	FILE *f = fopen(file, "wb");
	if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f))
		abort();
}

/* Builds the bundle described by in (flags in flags) at file. */
static void build(uint8_t flags, const uint8_t *in, size_t len)
{
	const uint8_t *p = in, *end = in + len, *part;
	size_t plen;
	static struct obj o[MAX_OBJS];
	size_t n = 0;
	const uint8_t *man_in = (const uint8_t *)"";
	size_t man_in_len = 0;
	if (next_part(&p, end, &part, &plen)) {
		man_in = part;
		man_in_len = plen;
	}
	while (n < MAX_OBJS && next_part(&p, end, &part, &plen)) {
		struct obj *ob = &o[n];
		uint8_t how = plen ? part[0] : 0;
		ob->kind = (enum store_kind)(1 + (how & 3));
		ob->data = NULL;
		if (how & 4 && ob->kind == STORE_TREE)
			ob->data = build_tree(part + 1, plen - 1, o, n, &ob->len);
		else if (how & 4 && ob->kind == STORE_COMMIT)
			ob->data = build_commit(part + 1, plen - 1, o, n, &ob->len);
		if (!ob->data)
			ob->data = subst(plen ? part + 1 : part, plen ? plen - 1 : 0, o, n, 0, &ob->len);
		store_hash_buf(ob->data, ob->len, &ob->h);
		ob->codec = flags & 8 ? STORE_CODEC_ZSTD : STORE_CODEC_RAW;
		ob->stored = ob->data;
		ob->stored_len = ob->len;
		if (ob->codec == STORE_CODEC_ZSTD) {
			size_t cap = ZSTD_compressBound(ob->len);
			ob->stored = malloc(cap);
			if (!ob->stored)
				abort();
			ob->stored_len = ZSTD_compress(ob->stored, cap, ob->data, ob->len, 1);
			if (ZSTD_isError(ob->stored_len))
				abort();
		}
		n++;
	}
	size_t extra_len;
	uint8_t *extra = subst(man_in, man_in_len, o, n, 1, &extra_len);
	char *man = NULL;
	size_t man_len = 0;
	FILE *m = open_memstream(&man, &man_len);
	if (!m)
		abort();
	if (flags & 4) {
		fwrite(extra, 1, extra_len, m);
	} else {
		char hex[STORE_HASH_HEX];
		fprintf(m, "roam-bundle 1\nvm fz\n");
		fwrite(extra, 1, extra_len, m);
		if (extra_len && extra[extra_len - 1] != '\n')
			fputc('\n', m);
		if (!memmem(extra, extra_len, "ref ", 4)) {
			store_hash_hex(n ? &o[n - 1].h : &seed, hex);
			if (flags & 32)
				fprintf(m, "ref vms/fz/checkpoints/t %s\n", hex);
			if (flags & 64)
				store_hash_hex(&seed, hex);
			fprintf(m, "ref vms/fz/head %s\n", hex);
		}
		for (size_t i = 0; i < n; i++) {
			store_hash_hex(&o[i].h, hex);
			fprintf(m, "object %s %d %zu %d %zu\n", hex, (int)o[i].kind, o[i].len,
				o[i].codec, o[i].stored_len);
		}
		fprintf(m, "end\n");
	}
	if (fclose(m))
		abort();
	free(extra);

	struct archive *a = archive_write_new();
	if (!a || archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_open_filename(a, file) != ARCHIVE_OK)
		abort();
	add_entry(a, "manifest", man, man_len);
	for (size_t i = 0; i < n; i++) {
		char hex[STORE_HASH_HEX], name[80];
		store_hash_hex(&o[i].h, hex);
		snprintf(name, sizeof(name), "objects/%s", hex);
		add_entry(a, name, o[i].stored, o[i].stored_len);
	}
	if (flags & 16)
		add_entry(a, "objects/extra", "x", 1);
	if (archive_write_close(a) != ARCHIVE_OK)
		abort();
	archive_write_free(a);
	free(man);
	for (size_t i = 0; i < n; i++) {
		if (o[i].stored != o[i].data)
			free(o[i].stored);
		free(o[i].data);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	if (size < 1)
		return 0;
	if (data[0] & 1)
		write_file(data + 1, size - 1);
	else
		build(data[0], data + 1, size - 1);
	char vm[80], err[512] = "";
	struct sync_stats st;
	int rc = sync_bundle_import(s, file, data[0] & 2, NULL, vm, sizeof(vm), &st, err, sizeof(err));
	struct refs mine, theirs;
	list_refs(s, &mine);
	list_refs(ro, &theirs);
	/* What this handle sees is committed: another handle sees it too. */
	if (!same_refs(&mine, &theirs))
		abort();
	if (rc < 0) {
		check_refusal(err);
		if (!same_refs(&mine, &initial))
			abort();
	} else {
		struct store_verify_report *rep;
		if (store_verify(ro, NULL, &rep) != 0 || rep->n_bad || rep->n_bad_refs)
			abort();
		store_verify_report_free(rep);
	}
	restore();
	return 0;
}
