/* Unit tests for sync/: frame headers and limits, payload readers, OBJ
 * payloads, ref-name rules, URLs, remotes file, leases, the wire codec
 * (records, deltas, limits against hostile streams), and push/pull round
 * trips between stores over the local transport (protocol 2 with deltas,
 * and protocol 1), and what bundle import refuses or must commit. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "checkpoint/lease.h"
#include "image/commit.h"
#include "sync/objs.h"
#include "sync/proto.h"
#include "sync/sync.h"
#include "sync/wire.h"
#include "sync/xfer.h"
#include <zstd.h>
#include "tests/unit/test.h"

static char dir[64];

static void frame_header_limits(void)
{
	uint8_t h[SYNC_HDR] = { SYNC_OBJ, 0, 0, 0, 0, 0, 0x40, 0 };   /* 4 MiB */
	uint8_t t;
	uint32_t n;
	CHECK_EQ(sync_frame_header(h, &t, &n), 0);
	CHECK_EQ(n, SYNC_FRAME_MAX);
	h[4] = 1;                                                    /* 4 MiB + 1 */
	CHECK_EQ(sync_frame_header(h, &t, &n), -EMSGSIZE);
	h[4] = 0;
	h[2] = 1;                                                    /* reserved byte */
	CHECK_EQ(sync_frame_header(h, &t, &n), -EPROTO);
	h[2] = 0;
	h[0] = 0;
	CHECK_EQ(sync_frame_header(h, &t, &n), -EPROTO);
	h[0] = SYNC_MSG_MAX + 1;
	CHECK_EQ(sync_frame_header(h, &t, &n), -EPROTO);
}

struct membuf { uint8_t buf[4096]; size_t len, off; };
static ssize_t mem_read(void *arg, void *b, size_t len)
{
	struct membuf *m = arg;
	size_t n = m->len - m->off < len ? m->len - m->off : len;
	memcpy(b, m->buf + m->off, n);
	m->off += n;
	return (ssize_t)n;
}
static int mem_write(void *arg, const void *b, size_t len)
{
	struct membuf *m = arg;
	if (len > sizeof(m->buf) - m->len)
		return -ENOSPC;
	memcpy(m->buf + m->len, b, len);
	m->len += len;
	return 0;
}

static void frame_roundtrip(void)
{
	struct membuf m = { .len = 0 };
	struct sync_io io = { .read = mem_read, .write = mem_write, .arg = &m };
	CHECK_EQ(sync_frame_write(&io, SYNC_LIST, "vm", 2), 0);
	CHECK_EQ(sync_send_error(&io, 5, "bad %s", "thing"), 0);
	struct sync_frame f;
	CHECK_EQ(sync_frame_read(&io, &f), 0);
	CHECK_EQ(f.type, SYNC_LIST);
	CHECK_EQ(f.len, 2);
	CHECK(!memcmp(f.data, "vm", 2));
	sync_frame_release(&f);
	CHECK_EQ(sync_frame_read(&io, &f), 0);
	CHECK_EQ(f.type, SYNC_ERROR);
	CHECK(!memcmp(f.data + 4, "bad thing", 9));
	sync_frame_release(&f);
	CHECK_EQ(sync_frame_read(&io, &f), -EPIPE);
	/* a truncated payload */
	m.len = m.off = 0;
	uint8_t h[SYNC_HDR] = { SYNC_OK, 0, 0, 0, 10, 0, 0, 0 };
	mem_write(&m, h, sizeof(h));
	mem_write(&m, "abc", 3);
	CHECK_EQ(sync_frame_read(&io, &f), -EPIPE);
	CHECK(strstr(io.err, "middle") != NULL);
}

static void reader_bounds(void)
{
	uint8_t p[5] = { 1, 2, 0, 3, 0 };
	struct sync_rd r;
	sync_rd_init(&r, p, sizeof(p));
	CHECK_EQ(sync_rd_u8(&r), 1);
	CHECK_EQ(sync_rd_u16(&r), 2);
	CHECK(!r.bad);
	CHECK_EQ(sync_rd_u32(&r), 0);
	CHECK(r.bad);
	CHECK(sync_rd_bytes(&r, 1) == NULL);
	uint8_t name[] = { 5, 0, 'v', 'm', 's', '/', '.' };
	char out[STORE_REF_MAX + 1];
	sync_rd_init(&r, name, sizeof(name));
	CHECK_EQ(sync_rd_refname(&r, out), -EINVAL);
	uint8_t big[] = { 0xff, 0xff };
	sync_rd_init(&r, big, sizeof(big));
	CHECK_EQ(sync_rd_refname(&r, out), -EBADMSG);
}

static void obj_payload(void)
{
	uint8_t hdr[SYNC_OBJ_HDR + 3];
	struct store_hash h;
	store_hash_buf("abc", 3, &h);
	sync_obj_header(hdr, &h, STORE_BLOB, STORE_CODEC_RAW, 3);
	memcpy(hdr + SYNC_OBJ_HDR, "abc", 3);
	struct sync_obj o;
	CHECK_EQ(sync_obj_parse(hdr, sizeof(hdr), &o), 0);
	CHECK(store_hash_eq(&o.hash, &h));
	CHECK_EQ(o.stored_len, 3);
	void *dec;
	CHECK_EQ(sync_obj_decode(&h, o.codec, o.size, o.stored, o.stored_len, &dec), 0);
	free(dec);
	hdr[SYNC_OBJ_HDR] = 'x';
	CHECK_EQ(sync_obj_decode(&h, o.codec, o.size, o.stored, o.stored_len, &dec), -EBADMSG);
	CHECK_EQ(sync_obj_parse(hdr, SYNC_OBJ_HDR - 1, &o), -EBADMSG);
	hdr[32] = 9;                                  /* bad kind */
	CHECK_EQ(sync_obj_parse(hdr, sizeof(hdr), &o), -EBADMSG);
	hdr[32] = STORE_BLOB;
	hdr[36] = 4;                                  /* raw size != stored */
	CHECK_EQ(sync_obj_parse(hdr, sizeof(hdr), &o), -EBADMSG);
}

static void ref_rules(void)
{
	CHECK(sync_ref_allowed("vm", "vms/vm/head"));
	CHECK(sync_ref_allowed("vm", "vms/vm/lease"));
	CHECK(sync_ref_allowed("vm", "vms/vm/checkpoints/t1"));
	CHECK(sync_ref_allowed("vm", "vms/vm/replaced/1700000000"));
	CHECK(!sync_ref_allowed("vm", "vms/vm2/head"));
	CHECK(!sync_ref_allowed("vm", "vms/other/head"));
	CHECK(!sync_ref_allowed("vm", "vms/vm/../other/head"));
	CHECK(!sync_ref_allowed("vm", "vms/vm/checkpoints/a/b"));
	CHECK(!sync_ref_allowed("vm", "vms/vm/checkpoints/"));
	CHECK(!sync_ref_allowed("vm", "vms/vm/other"));
	CHECK(!sync_ref_allowed("vm", "disks/root"));
	CHECK(!sync_ref_allowed("../x", "vms/../x/head"));
	CHECK(!sync_vm_name_valid(""));
	CHECK(!sync_vm_name_valid("a/b"));
	CHECK(!sync_vm_name_valid(".x"));
}

static void urls(void)
{
	struct sync_url u;
	char err[256];
	CHECK_EQ(sync_url_parse("ssh://alice@host.example:2222/srv/roam", &u, err, sizeof(err)), 0);
	CHECK(u.ssh);
	CHECK(!strcmp(u.user, "alice"));
	CHECK(!strcmp(u.host, "host.example"));
	CHECK_EQ(u.port, 2222);
	CHECK(!strcmp(u.path, "/srv/roam"));
	CHECK_EQ(sync_url_parse("ssh://[::1]:22/x", &u, err, sizeof(err)), 0);
	CHECK(!strcmp(u.host, "::1"));
	CHECK_EQ(sync_url_parse("ssh://host/x", &u, err, sizeof(err)), 0);
	CHECK_EQ(u.port, 22);
	CHECK(u.user[0] == 0);
	CHECK_EQ(sync_url_parse("/local/store", &u, err, sizeof(err)), 0);
	CHECK(!u.ssh);
	CHECK(sync_url_parse("ssh://host", &u, err, sizeof(err)) < 0);
	CHECK(sync_url_parse("ssh://host:99999/x", &u, err, sizeof(err)) < 0);
	CHECK(sync_url_parse("ssh://@host/x", &u, err, sizeof(err)) < 0);
	CHECK(sync_url_parse("relative/path", &u, err, sizeof(err)) < 0);
}

static struct store *mkstore(const char *name)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	struct store *s = NULL;
	if (store_init(p, NULL) < 0 || store_open(p, 0, &s) < 0)
		return NULL;
	return s;
}

static void remotes_file(void)
{
	struct store *s = mkstore("r");
	CHECK(s != NULL);
	if (!s)
		return;
	char err[256];
	struct sync_remote r = { .name = "home" }, got;
	snprintf(r.url, sizeof(r.url), "ssh://h:2200/x");
	CHECK_EQ(sync_remote_add(s, &r, err, sizeof(err)), 0);
	CHECK_EQ(sync_remote_add(s, &r, err, sizeof(err)), -EEXIST);
	snprintf(r.name, sizeof(r.name), "bad name");
	CHECK_EQ(sync_remote_add(s, &r, err, sizeof(err)), -EINVAL);
	snprintf(r.name, sizeof(r.name), "office");
	snprintf(r.remote_roam, sizeof(r.remote_roam), "/opt/roam/bin/roam");
	CHECK_EQ(sync_remote_add(s, &r, err, sizeof(err)), 0);
	CHECK_EQ(sync_remote_find(s, "office", &got, err, sizeof(err)), 0);
	CHECK(!strcmp(got.remote_roam, "/opt/roam/bin/roam"));
	CHECK_EQ(sync_remote_find(s, "home", &got, err, sizeof(err)), 0);
	CHECK(got.remote_roam[0] == 0);
	CHECK_EQ(sync_remote_rm(s, "home", err, sizeof(err)), 0);
	CHECK_EQ(sync_remote_find(s, "home", &got, err, sizeof(err)), -ENOENT);
	CHECK_EQ(sync_remote_rm(s, "home", err, sizeof(err)), -ENOENT);
	store_free(s);
}

static void leases(void)
{
	struct store *s = mkstore("l");
	CHECK(s != NULL);
	if (!s)
		return;
	char err[256], host[64];
	int64_t since = 0;
	CHECK_EQ(ckpt_lease_get(s, "vm", host, sizeof(host), &since), -ENOENT);
	CHECK_EQ(ckpt_lease_take(s, "vm", "office", false, err, sizeof(err)), 0);
	CHECK_EQ(ckpt_lease_get(s, "vm", host, sizeof(host), &since), 0);
	CHECK(!strcmp(host, "office"));
	CHECK(since > 1600000000);
	CHECK_EQ(ckpt_lease_take(s, "vm", "office", false, err, sizeof(err)), 0);
	CHECK_EQ(ckpt_lease_take(s, "vm", "home", false, err, sizeof(err)), -EBUSY);
	CHECK(strstr(err, "leased by host office") != NULL);
	CHECK(strstr(err, "--steal") != NULL);
	CHECK_EQ(ckpt_lease_take(s, "vm", "home", true, err, sizeof(err)), 0);
	CHECK_EQ(ckpt_lease_get(s, "vm", host, sizeof(host), NULL), 0);
	CHECK(!strcmp(host, "home"));
	CHECK_EQ(ckpt_lease_release(s, "vm"), 0);
	CHECK_EQ(ckpt_lease_release(s, "vm"), 0);
	CHECK_EQ(ckpt_lease_get(s, "vm", host, sizeof(host), NULL), -ENOENT);
	CHECK_EQ(ckpt_lease_take(s, "a/b", "home", false, err, sizeof(err)), -EINVAL);
	CHECK_EQ(ckpt_lease_take(s, "vm", "bad host", false, err, sizeof(err)), -EINVAL);
	CHECK_EQ(ckpt_lease_parse("host=x\nsince=1\n", 15, host, sizeof(host), &since), 0);
	CHECK_EQ(ckpt_lease_parse("host=x\nsince=1", 14, NULL, 0, NULL), -EBADMSG);
	CHECK_EQ(ckpt_lease_parse("host=\nsince=1\n", 14, NULL, 0, NULL), -EBADMSG);
	CHECK_EQ(ckpt_lease_parse("host=a b\nsince=1\n", 17, NULL, 0, NULL), -EBADMSG);
	store_free(s);
}

static int mkcommit(struct store *s, const struct store_hash *parent, const char *msg,
		    struct store_hash *ret)
{
	struct store_commit c = { .time = 1700000000, .message = (char *)msg };
	struct store_hash blob;
	char data[70000];
	memset(data, msg[0], sizeof(data));
	int rc = store_put(s, STORE_BLOB, data, sizeof(data), &blob);
	if (!rc)
		rc = store_commit_add_root(&c, "config", STORE_BLOB, &blob);
	if (parent) {
		c.parents[0] = *parent;
		c.n_parents = 1;
	}
	return rc ? rc : store_commit_put(s, &c, ret);
}

static void push_pull_local(void)
{
	struct store *a = mkstore("pa"), *b = mkstore("pb");
	CHECK(a && b);
	if (!a || !b) {
		store_free(a);
		store_free(b);
		return;
	}
	struct store_hash c1, c2, got;
	CHECK_EQ(mkcommit(a, NULL, "one", &c1), 0);
	CHECK_EQ(store_ref_cas(a, "vms/vm/head", NULL, &c1), 0);
	CHECK_EQ(store_ref_cas(a, "vms/vm/checkpoints/t1", NULL, &c1), 0);
	char url[128], err[512];
	snprintf(url, sizeof(url), "%s/pb", dir);
	struct sync_opts o = { .conn = { .url = url, .remote_roam = getenv("ROAM") } };
	struct sync_stats st;
	int rc = sync_push(a, "vm", &o, &st, err, sizeof(err));
	if (rc)
		printf("  push: %s\n", err);
	CHECK_EQ(rc, 0);
	CHECK_EQ(st.objects, 2);
	CHECK_EQ(store_ref_get(b, "vms/vm/head", &got), 0);
	CHECK(store_hash_eq(&got, &c1));
	CHECK_EQ(store_ref_get(b, "vms/vm/checkpoints/t1", &got), 0);
	/* a second commit: only it and its new blob move */
	CHECK_EQ(mkcommit(a, &c1, "two", &c2), 0);
	CHECK_EQ(store_ref_cas(a, "vms/vm/head", &c1, &c2), 0);
	CHECK_EQ(sync_push(a, "vm", &o, &st, err, sizeof(err)), 0);
	CHECK_EQ(st.objects, 2);
	CHECK_EQ(store_ref_get(b, "vms/vm/head", &got), 0);
	CHECK(store_hash_eq(&got, &c2));
	/* diverge b: a push from a is refused, then forced */
	struct store_hash c3, c4;
	CHECK_EQ(mkcommit(b, &c2, "bee", &c3), 0);
	CHECK_EQ(store_ref_cas(b, "vms/vm/head", &c2, &c3), 0);
	CHECK_EQ(mkcommit(a, &c2, "aye", &c4), 0);
	CHECK_EQ(store_ref_cas(a, "vms/vm/head", &c2, &c4), 0);
	CHECK_EQ(sync_push(a, "vm", &o, &st, err, sizeof(err)), -EEXIST);
	CHECK(strstr(err, "diverged") != NULL);
	CHECK_EQ(sync_pull(a, "vm", &o, &st, err, sizeof(err)), -EEXIST);
	o.force = true;
	CHECK_EQ(sync_pull(a, "vm", &o, &st, err, sizeof(err)), 0);
	CHECK_EQ(store_ref_get(a, "vms/vm/head", &got), 0);
	CHECK(store_hash_eq(&got, &c3));
	CHECK_EQ(sync_pull(a, "nosuch", &o, &st, err, sizeof(err)), -ENOENT);
	store_free(a);
	store_free(b);
}

/* ---- wire codec ---- */

struct dynbuf { uint8_t *p; size_t len, cap, off; };
static ssize_t dyn_read(void *arg, void *b, size_t len)
{
	struct dynbuf *m = arg;
	size_t n = m->len - m->off < len ? m->len - m->off : len;
	memcpy(b, m->p + m->off, n);
	m->off += n;
	return (ssize_t)n;
}
static int dyn_write(void *arg, const void *b, size_t len)
{
	struct dynbuf *m = arg;
	if (m->len + len > m->cap) {
		size_t cap = (m->len + len) * 2;
		uint8_t *p = realloc(m->p, cap);
		if (!p)
			return -ENOMEM;
		m->p = p;
		m->cap = cap;
	}
	memcpy(m->p + m->len, b, len);
	m->len += len;
	return 0;
}

/* Text-like bytes: words from a small vocabulary (compressible, not trivial). */
static void fill_text(uint8_t *p, size_t n)
{
	static const char *w[] = { "alpha ", "bravo ", "charlie ", "delta\n", "echo ", "foxtrot ",
				   "golf ", "hotel\n" };
	size_t o = 0;
	while (o < n) {
		const char *x = w[test_rnd() % 8];
		for (size_t i = 0; x[i] && o < n; i++)
			p[o++] = (uint8_t)x[i];
	}
}

/* Reads every ZDATA frame of m into d and collects up to max records. */
static int drain(struct dynbuf *m, struct sync_wdec *d, struct sync_io *io, void **bodies,
		 size_t *lens, bool *deltas, size_t max)
{
	size_t n = 0;
	for (;;) {
		struct sync_wrec r;
		int rc = sync_wdec_next(d, &r);
		if (rc < 0)
			return rc;
		if (rc == 1) {
			if (n < max) {
				bodies[n] = malloc(r.len ? r.len : 1);
				if (r.len)
					memcpy(bodies[n], r.body, r.len);
				lens[n] = r.len;
				deltas[n] = r.delta;
			}
			n++;
			continue;
		}
		if (m->off == m->len)
			return (int)n;
		struct sync_frame f;
		rc = sync_frame_read(io, &f);
		if (rc < 0)
			return rc;
		if (f.type != SYNC_ZDATA) {
			sync_frame_release(&f);
			return -EPROTO;
		}
		sync_wdec_input(d, &f);
	}
}

static void wire_roundtrip(void)
{
	struct dynbuf m = { 0 };
	struct sync_io io = { .read = dyn_read, .write = dyn_write, .arg = &m };
	enum { N = 64 << 10 };
	uint8_t *base = malloc(N), *near = malloc(N), *other = malloc(N), *rnd = malloc(N);
	CHECK(base && near && other && rnd);
	if (!base || !near || !other || !rnd)
		goto out;
	fill_text(base, N);
	memcpy(near, base, N);
	test_fill_random(near + 8192, 4096);          /* a 4 KiB write into a known chunk */
	fill_text(other, N);
	test_fill_random(rnd, N);
	struct store_hash bh;
	store_hash_buf(base, N, &bh);
	struct sync_wenc *e;
	CHECK_EQ(sync_wenc_new(&io, 9, &e), 0);
	CHECK_EQ(sync_wenc_obj(e, STORE_BLOB, rnd, N), 0);
	CHECK_EQ(sync_wenc_obj(e, STORE_BLOB, "", 0), 0);
	CHECK_EQ(sync_wenc_obj_basis(e, STORE_BLOB, near, N, &bh, base, N), 1);
	CHECK_EQ(sync_wenc_obj_basis(e, STORE_BLOB, rnd, N, &bh, base, N), 0);  /* no gain: full */
	CHECK_EQ(sync_wenc_flush(e), 0);
	CHECK_EQ(sync_wenc_set_level(e, 3), 0);        /* a new frame in the same stream */
	CHECK_EQ(sync_wenc_obj(e, STORE_TREE, other, 1000), 0);
	CHECK_EQ(sync_wenc_flush(e), 0);
	struct sync_wire_stats ws;
	sync_wenc_stats(e, &ws);
	CHECK_EQ(ws.records, 5);
	CHECK_EQ(ws.deltas, 1);
	/* a stream of repeats compresses: the random chunk twice costs ~once */
	CHECK(ws.wire_bytes < 2 * N + 1000);
	sync_wenc_free(e);
	struct sync_wdec *d;
	CHECK_EQ(sync_wdec_new(&d), 0);
	void *bodies[8] = { 0 };
	size_t lens[8];
	bool deltas[8];
	CHECK_EQ(drain(&m, d, &io, bodies, lens, deltas, 8), 5);
	CHECK(sync_wdec_idle(d));
	CHECK(lens[0] == N && !memcmp(bodies[0], rnd, N) && !deltas[0]);
	CHECK_EQ(lens[1], 0);
	CHECK(deltas[2] && lens[2] < 6000);
	void *out = NULL;
	size_t olen = 0;
	CHECK_EQ(sync_wdec_undelta(d, base, N, bodies[2], lens[2], &out, &olen), 0);
	CHECK(olen == N && out && !memcmp(out, near, N));
	free(out);
	/* against another base the delta does not give the object back */
	out = NULL;
	int rc = sync_wdec_undelta(d, other, N, bodies[2], lens[2], &out, &olen);
	CHECK(rc < 0 || memcmp(out, near, N) != 0);
	free(out);
	CHECK(lens[3] == N && !deltas[3] && !memcmp(bodies[3], rnd, N));
	CHECK(lens[4] == 1000 && !memcmp(bodies[4], other, 1000));
	for (int i = 0; i < 8; i++)
		free(bodies[i]);
	sync_wdec_free(d);
out:
	free(m.p);
	free(base);
	free(near);
	free(other);
	free(rnd);
}

/* A delta against three bases: the object is made of pieces of two of them
 * at other offsets; the record names all three, in order, and decodes
 * against their contents one after the other. */
static void wire_multi_base(void)
{
	struct dynbuf m = { 0 };
	struct sync_io io = { .read = dyn_read, .write = dyn_write, .arg = &m };
	enum { N = 16 << 10 };
	uint8_t *pre = malloc(3 * N), *obj = malloc(N);
	CHECK(pre && obj);
	if (!pre || !obj)
		goto out;
	test_fill_random(pre, 3 * N);
	memcpy(obj, pre + 2 * N + 4096, 8192);       /* from the third base */
	memcpy(obj + 8192, pre + 100, 8192);          /* from the first */
	struct store_hash b[3];
	for (int i = 0; i < 3; i++)
		store_hash_buf(pre + i * N, N, &b[i]);
	struct sync_wenc *e;
	CHECK_EQ(sync_wenc_new(&io, 3, &e), 0);
	CHECK_EQ(sync_wenc_obj_bases(e, STORE_BLOB, obj, N, b, 3, pre, 3 * N), 1);
	/* a tree cannot have several bases: it goes in full */
	CHECK_EQ(sync_wenc_obj_bases(e, STORE_TREE, obj, N, b, 3, pre, 3 * N), 0);
	CHECK_EQ(sync_wenc_flush(e), 0);
	struct sync_wire_stats ws;
	sync_wenc_stats(e, &ws);
	CHECK(ws.wire_bytes < N + 2000);              /* random bytes: only the first went small */
	sync_wenc_free(e);
	struct sync_wdec *d;
	CHECK_EQ(sync_wdec_new(&d), 0);
	struct sync_wrec r;
	int rc = 0;
	while ((rc = sync_wdec_next(d, &r)) == 0 && m.off < m.len) {
		struct sync_frame f;
		if (sync_frame_read(&io, &f) < 0)
			break;
		sync_wdec_input(d, &f);
	}
	CHECK_EQ(rc, 1);
	if (rc == 1) {
		CHECK(r.delta && r.nbases == 3 && r.len < 200);
		for (unsigned i = 0; i < 3 && i < r.nbases; i++)
			CHECK(store_hash_eq(&r.base[i], &b[i]));
		void *out = NULL;
		size_t olen = 0;
		CHECK_EQ(sync_wdec_undelta(d, pre, 3 * N, r.body, r.len, &out, &olen), 0);
		CHECK(olen == N && out && !memcmp(out, obj, N));
		free(out);
	}
	sync_wdec_free(d);
out:
	free(m.p);
	free(pre);
	free(obj);
}

/* A ZDATA payload holding plain bytes (as a zstd frame) fed to a fresh decoder. */
static int decode_bytes(const void *p, size_t n, int window_log, char *why, size_t whylen)
{
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	size_t cap = ZSTD_compressBound(n) + 64;
	uint8_t *z = malloc(cap);
	ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, window_log);
	ZSTD_outBuffer ob = { z, cap, 0 };
	ZSTD_inBuffer in = { p, n, 0 };
	/* continue + flush + end: the frame does not know its size, so its
	 * header declares the whole window */
	ZSTD_compressStream2(cc, &ob, &in, ZSTD_e_continue);
	ZSTD_compressStream2(cc, &ob, &in, ZSTD_e_flush);
	ZSTD_inBuffer none = { NULL, 0, 0 };
	ZSTD_compressStream2(cc, &ob, &none, ZSTD_e_end);
	ZSTD_freeCCtx(cc);
	struct sync_wdec *d;
	if (sync_wdec_new(&d) < 0) {
		free(z);
		return -ENOMEM;
	}
	struct sync_frame f = { .type = SYNC_ZDATA, .len = (uint32_t)ob.pos, .data = z };
	sync_wdec_input(d, &f);
	struct sync_wrec r;
	int rc;
	while ((rc = sync_wdec_next(d, &r)) == 1)
		;
	if (rc == 0 && !sync_wdec_idle(d))
		rc = -EINPROGRESS;
	snprintf(why, whylen, "%s", sync_wdec_error(d));
	sync_wdec_free(d);
	return rc;
}

static void wire_hostile(void)
{
	char why[256];
	uint8_t rec[SYNC_WIRE_DELTA_HDR + 16] = { STORE_BLOB, 0, 16, 0, 0, 0 };
	CHECK_EQ(decode_bytes(rec, SYNC_WIRE_REC_HDR + 16, 20, why, sizeof(why)), 0);
	/* an object over the limit: refused at its header, before any allocation */
	uint32_t big = SYNC_OBJ_MAX + 1;
	memcpy(rec + 2, &big, 4);
	CHECK_EQ(decode_bytes(rec, SYNC_WIRE_REC_HDR, 20, why, sizeof(why)), -EBADMSG);
	CHECK(strstr(why, "over the limit") != NULL);
	/* a bomb: 64 MiB of zeros behind a record header is still one object */
	size_t bn = 64u << 20;
	uint8_t *bomb = calloc(1, bn);
	CHECK(bomb != NULL);
	if (bomb) {
		uint32_t claim = 0xffffffffu;
		bomb[0] = STORE_BLOB;
		memcpy(bomb + 2, &claim, 4);
		CHECK_EQ(decode_bytes(bomb, bn, 25, why, sizeof(why)), -EBADMSG);
		/* a window beyond the limit is refused by zstd itself */
		memset(bomb, 0, 8);
		CHECK_EQ(decode_bytes(bomb, SYNC_WIRE_REC_HDR, 27, why, sizeof(why)), -EBADMSG);
		CHECK(strstr(why, "does not decode") != NULL);
		free(bomb);
	}
	/* bad kind, bad form, delta for a commit */
	uint8_t k[SYNC_WIRE_REC_HDR] = { 9, 0, 0, 0, 0, 0 };
	CHECK_EQ(decode_bytes(k, sizeof(k), 20, why, sizeof(why)), -EBADMSG);
	uint8_t fm[SYNC_WIRE_REC_HDR] = { STORE_BLOB, 3, 0, 0, 0, 0 };
	CHECK_EQ(decode_bytes(fm, sizeof(fm), 20, why, sizeof(why)), -EBADMSG);
	/* several bases: 1 or more than the limit, or for something not a blob */
	uint8_t mb[SYNC_WIRE_HDR_MAX + 32] = { STORE_BLOB, 2, 0, 0, 0, 0, 1 };
	CHECK_EQ(decode_bytes(mb, SYNC_WIRE_HDR_MAX, 20, why, sizeof(why)), -EBADMSG);
	mb[6] = SYNC_WIRE_BASES_MAX + 1;
	CHECK_EQ(decode_bytes(mb, sizeof(mb), 20, why, sizeof(why)), -EBADMSG);
	CHECK(strstr(why, "bases") != NULL);
	mb[0] = STORE_TREE;
	mb[6] = 2;
	CHECK_EQ(decode_bytes(mb, sizeof(mb), 20, why, sizeof(why)), -EBADMSG);
	uint8_t dc[SYNC_WIRE_DELTA_HDR] = { STORE_COMMIT, 1, 0, 0, 0, 0 };
	CHECK_EQ(decode_bytes(dc, sizeof(dc), 20, why, sizeof(why)), -EBADMSG);
	/* a record cut short is not a boundary */
	uint8_t cut[SYNC_WIRE_REC_HDR + 4] = { STORE_BLOB, 0, 9, 0, 0, 0 };
	CHECK_EQ(decode_bytes(cut, sizeof(cut), 20, why, sizeof(why)), -EINPROGRESS);
	/* garbage where a zstd frame should be */
	struct sync_wdec *d;
	CHECK_EQ(sync_wdec_new(&d), 0);
	uint8_t *g = malloc(64);
	memset(g, 0x5a, 64);
	struct sync_frame f = { .type = SYNC_ZDATA, .len = 64, .data = g };
	sync_wdec_input(d, &f);
	struct sync_wrec r;
	CHECK_EQ(sync_wdec_next(d, &r), -EBADMSG);
	CHECK(strstr(sync_wdec_error(d), "does not decode") != NULL);
	CHECK_EQ(sync_wdec_next(d, &r), -EBADMSG);      /* stays failed */
	/* deltas: a frame without content size, a size over the limit, trailing bytes */
	uint8_t base[100] = { 1 }, out_big[16];
	void *o = NULL;
	size_t ol;
	CHECK_EQ(sync_wdec_undelta(d, base, sizeof(base), g, 0, &o, &ol), -EBADMSG);
	size_t zb = ZSTD_compressBound(SYNC_OBJ_MAX + 1);
	uint8_t *z = malloc(zb), *src = calloc(1, SYNC_OBJ_MAX + 1);
	if (z && src) {
		size_t zn = ZSTD_compress(z, zb, src, SYNC_OBJ_MAX + 1, 1);
		CHECK_EQ(sync_wdec_undelta(d, base, sizeof(base), z, zn, &o, &ol), -EBADMSG);
		zn = ZSTD_compress(z, zb, out_big, sizeof(out_big), 1);
		CHECK_EQ(sync_wdec_undelta(d, base, sizeof(base), z, zn + 1, &o, &ol), -EBADMSG);
	}
	free(z);
	free(src);
	sync_wdec_free(d);
}

/* A commit whose "disk0" root is a tree over chunks (4 KiB each) of data. */
static int mkdisk(struct store *s, const struct store_hash *parent, const uint8_t *data,
		  size_t len, struct store_hash *ret)
{
	struct store_tree_builder *b;
	struct store_hash root;
	int rc = store_tree_builder_new(s, len, NULL, &b);
	for (size_t i = 0; !rc && i * 4096 < len; i++)
		rc = store_tree_builder_set(b, i, data + i * 4096, 4096);
	if (!rc)
		rc = store_tree_builder_finish(b, &root);
	store_tree_builder_free(b);
	struct store_commit c = { .time = 1700000000, .message = (char *)"disk" };
	if (!rc)
		rc = store_commit_add_root(&c, "disk0", STORE_TREE, &root);
	if (parent) {
		c.parents[0] = *parent;
		c.n_parents = 1;
	}
	return rc ? rc : store_commit_put(s, &c, ret);
}

static struct store *mkstore_chunk(const char *name, uint32_t chunk)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	struct store_init_opts io = { .chunk_size = chunk };
	struct store *s;
	if (store_init(path, &io) < 0 || store_open(path, 0, &s) < 0)
		return NULL;
	return s;
}

static void push_pull_deltas(void)
{
	struct store *a = mkstore_chunk("da", 4096), *b = mkstore_chunk("db", 4096);
	struct store *c = mkstore_chunk("dc", 4096);
	enum { LEN = 4 << 20 };
	uint8_t *data = malloc(LEN);
	CHECK(a && b && c && data);
	if (!a || !b || !c || !data)
		goto out;
	fill_text(data, LEN);
	struct store_hash c1, c2, got;
	CHECK_EQ(mkdisk(a, NULL, data, LEN, &c1), 0);
	CHECK_EQ(store_ref_cas(a, "vms/vm/head", NULL, &c1), 0);
	char url[128], err[512];
	snprintf(url, sizeof(url), "%s/db", dir);
	struct sync_opts o = { .conn = { .url = url, .remote_roam = getenv("ROAM") } };
	struct sync_stats st;
	int rc = sync_push(a, "vm", &o, &st, err, sizeof(err));
	if (rc)
		printf("  push: %s\n", err);
	CHECK_EQ(rc, 0);
	CHECK_EQ(st.version, SYNC_VERSION);
	CHECK(st.bytes_sent < LEN / 2);               /* compressed on the wire */
	o.conn.url = url;
	rc = sync_pull(c, "vm", &o, &st, err, sizeof(err));         /* c: a copy of the old head */
	if (rc)
		printf("  pull: %s\n", err);
	CHECK_EQ(rc, 0);
	o.conn.url = url;
	/* 3 scattered 100-byte writes: three chunks and their tree path change */
	for (int i = 0; i < 3; i++)
		test_fill_random(data + (size_t)(i * 377 + 5) * 4096 + 1000, 100);
	CHECK_EQ(mkdisk(a, &c1, data, LEN, &c2), 0);
	CHECK_EQ(store_ref_cas(a, "vms/vm/head", &c1, &c2), 0);
	rc = sync_push(a, "vm", &o, &st, err, sizeof(err));
	if (rc)
		printf("  push: %s\n", err);
	CHECK_EQ(rc, 0);
	CHECK(st.deltas >= 4);                        /* the chunks and at least one tree node */
	CHECK(st.have_skipped > 0);
	CHECK(st.bytes_sent < 4000);                  /* vs ~12 KiB of chunks + 16 KiB nodes */
	CHECK_EQ(store_ref_get(b, "vms/vm/head", &got), 0);
	CHECK(store_hash_eq(&got, &c2));
	struct store_verify_report *rep;
	CHECK_EQ(store_verify(b, NULL, &rep), 0);
	store_verify_report_free(rep);
	/* pull into c: the server sends deltas against c's head (PLAN) */
	o.conn.url = url;
	rc = sync_pull(c, "vm", &o, &st, err, sizeof(err));
	if (rc)
		printf("  pull: %s\n", err);
	CHECK_EQ(rc, 0);
	if (st.deltas < 4 || st.bytes_received >= 4000)
		printf("  pull: v%d %llu deltas, %llu bytes\n", st.version, (unsigned long long)st.deltas,
		       (unsigned long long)st.bytes_received);
	CHECK(st.deltas >= 4);
	CHECK(st.bytes_received < 4000);
	CHECK_EQ(store_ref_get(c, "vms/vm/head", &got), 0);
	CHECK(store_hash_eq(&got, &c2));
	CHECK_EQ(store_verify(c, NULL, &rep), 0);
	store_verify_report_free(rep);
	/* protocol 1 (objects as stored) still works both ways */
	struct store *v1 = mkstore_chunk("dv1", 4096);
	o.wire_level = SYNC_WIRE_STORED;
	CHECK(v1 != NULL);
	if (v1) {
		CHECK_EQ(sync_pull(v1, "vm", &o, &st, err, sizeof(err)), 0);
		CHECK_EQ(st.version, 1);
		CHECK_EQ(store_ref_get(v1, "vms/vm/head", &got), 0);
		CHECK(store_hash_eq(&got, &c2));
		store_free(v1);
	}
	/* a delta against a base the receiver lacks is refused, nothing stored */
	struct sync_wdec *d;
	CHECK_EQ(sync_wdec_new(&d), 0);
	struct sync_wrec r = { .kind = STORE_BLOB, .delta = true, .nbases = 1, .body = data,
			       .len = 100 };
	memset(r.base[0].b, 0x42, STORE_HASH_LEN);
	void *obj;
	size_t olen;
	struct store_hash h;
	CHECK_EQ(sync_xfer_resolve(d, c, &r, &obj, &olen, &h, err, sizeof(err)), -ENOENT);
	CHECK(strstr(err, "does not have") != NULL);
	/* ...and one whose base is of another kind */
	r.base[0] = c2;
	CHECK_EQ(sync_xfer_resolve(d, c, &r, &obj, &olen, &h, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "which is a commit") != NULL);
	/* ...and one of several bases that is not a blob */
	r.nbases = 2;
	r.base[1] = c2;
	CHECK_EQ(store_put(c, STORE_BLOB, "a blob", 6, &r.base[0]), 0);
	CHECK_EQ(sync_xfer_resolve(d, c, &r, &obj, &olen, &h, err, sizeof(err)), -EINVAL);
	sync_wdec_free(d);
out:
	free(data);
	store_free(a);
	store_free(b);
	store_free(c);
}

/* VM NAME in s: a 100-byte config blob and disk0, a tree over it claiming
 * size bytes (100 fits; anything else is a tree whose child does not). */
static int mkvm_tree(struct store *s, const char *name, uint64_t size, struct store_hash *ret)
{
	uint8_t blob[100], node[24 + 32] = "RTRE";
	memset(blob, 'c', sizeof(blob));
	struct store_hash bh, th;
	int rc = store_put(s, STORE_BLOB, blob, sizeof(blob), &bh);
	uint32_t chunk = store_chunk_size(s), count = 1;
	node[4] = 1;                    /* version; level 0 */
	node[6] = 512 & 0xff;
	node[7] = 512 >> 8;
	memcpy(node + 8, &chunk, 4);    /* little-endian host */
	memcpy(node + 12, &count, 4);
	memcpy(node + 16, &size, 8);
	memcpy(node + 24, bh.b, 32);
	if (!rc)
		rc = store_put(s, STORE_TREE, node, sizeof(node), &th);
	struct store_commit c = { .time = 1700000000 };
	if (!rc)
		rc = store_commit_add_root(&c, "config", STORE_BLOB, &bh);
	if (!rc)
		rc = store_commit_add_root(&c, "disk0", STORE_TREE, &th);
	if (!rc)
		rc = store_commit_put(s, &c, ret);
	char ref[64];
	snprintf(ref, sizeof(ref), "vms/%s/head", name);
	return rc ? rc : store_ref_cas(s, ref, NULL, ret);
}

/* A bundle of just a manifest (libarchive, pax as bundles are). */
static int write_manifest_only(const char *file, const char *man)
{
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	int rc = -EIO;
	if (a && e && archive_write_set_format_pax_restricted(a) == ARCHIVE_OK &&
	    archive_write_open_filename(a, file) == ARCHIVE_OK) {
		archive_entry_set_pathname(e, "manifest");
		archive_entry_set_size(e, (la_int64_t)strlen(man));
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0644);
		if (archive_write_header(a, e) == ARCHIVE_OK &&
		    archive_write_data(a, man, strlen(man)) == (la_ssize_t)strlen(man) &&
		    archive_write_close(a) == ARCHIVE_OK)
			rc = 0;
	}
	archive_entry_free(e);
	archive_write_free(a);
	return rc;
}

static int committed_ref(const char *store, const char *ref, struct store_hash *ret)
{
	char p[128];
	snprintf(p, sizeof(p), "%s/%s", dir, store);
	struct store *s;
	int rc = store_open(p, STORE_OPEN_RDONLY, &s);
	if (!rc)
		rc = store_ref_get(s, ref, ret);
	store_free(s);
	return rc;
}

static void bundle_import_checks(void)
{
	struct store *a = mkstore("ba"), *b = mkstore("bb");
	CHECK(a && b);
	if (!a || !b) {
		store_free(a);
		store_free(b);
		return;
	}
	char file[128], vm[80], err[512];
	snprintf(file, sizeof(file), "%s/x.bundle", dir);
	struct sync_stats st;
	struct store_hash good, bad, h;
	CHECK_EQ(mkvm_tree(a, "good", 100, &good), 0);
	CHECK_EQ(mkvm_tree(a, "bad", 8192, &bad), 0);
	/* A tree whose child does not fit its place is refused, nothing
	 * stored (it imported, and roam verify then called it bad). */
	struct sync_bundle_opts o = { .vm = "bad" };
	CHECK_EQ(sync_bundle_create(a, &o, file, &st, err, sizeof(err)), 0);
	err[0] = 0;
	CHECK(sync_bundle_import(b, file, false, NULL, vm, sizeof(vm), &st, err, sizeof(err)) < 0);
	CHECK(strstr(err, "does not fit") != NULL);
	CHECK_EQ(store_ref_get(b, "vms/bad/head", &h), -ENOENT);
	struct store_verify_report *rep = NULL;
	CHECK_EQ(store_verify(b, NULL, &rep), 0);
	CHECK(rep && rep->objects == 0);
	store_verify_report_free(rep);
	o.vm = "good";
	CHECK_EQ(sync_bundle_create(a, &o, file, &st, err, sizeof(err)), 0);
	CHECK_EQ(sync_bundle_import(b, file, false, NULL, vm, sizeof(vm), &st, err, sizeof(err)), 0);
	CHECK_EQ(store_verify(b, NULL, &rep), 0);
	store_verify_report_free(rep);
	/* A checkpoint of the head this store has already: the new ref comes
	 * first and the head, unchanged, last; the import must still commit
	 * (it left its transaction open: the tag was lost on exit). */
	CHECK_EQ(store_ref_cas(a, "vms/good/checkpoints/t", NULL, &good), 0);
	CHECK_EQ(sync_bundle_create(a, &o, file, &st, err, sizeof(err)), 0);
	CHECK_EQ(sync_bundle_import(b, file, false, NULL, vm, sizeof(vm), &st, err, sizeof(err)), 0);
	CHECK_EQ(st.refs_updated, 1);
	CHECK_EQ(committed_ref("bb", "vms/good/checkpoints/t", &h), 0);
	CHECK(store_hash_eq(&h, &good));
	/* The base tag is printed when the base is missing: only a valid
	 * checkpoint tag passes, not a terminal escape. */
	static const char *bases[] = { "\033[2J", "../x" };
	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		char man[512];
		snprintf(man, sizeof(man), "roam-bundle 1\nvm v\nbase %s %s\nref vms/v/head %s\nend\n",
			 "abababababababababababababababababababababababababababababababab", bases[i],
			 "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd");
		CHECK_EQ(write_manifest_only(file, man), 0);
		err[0] = 0;
		CHECK_EQ(sync_bundle_import(b, file, false, NULL, vm, sizeof(vm), &st, err, sizeof(err)),
			 -EBADMSG);
		CHECK(strstr(err, "manifest is malformed") && !strchr(err, '\033'));
	}
	/* A VM's head names a commit: one naming a blob this store has is
	 * refused, the ref untouched. */
	struct store_hash blob;
	char man[512], hex[STORE_HASH_HEX];
	CHECK_EQ(store_put(b, STORE_BLOB, "not a commit", 12, &blob), 0);
	store_hash_hex(&blob, hex);
	snprintf(man, sizeof(man), "roam-bundle 1\nvm blobby\nref vms/blobby/head %s\nend\n", hex);
	CHECK_EQ(write_manifest_only(file, man), 0);
	err[0] = 0;
	CHECK_EQ(sync_bundle_import(b, file, true, NULL, vm, sizeof(vm), &st, err, sizeof(err)),
		 -EBADMSG);
	CHECK(strstr(err, "not a commit") != NULL);
	CHECK_EQ(store_ref_get(b, "vms/blobby/head", &h), -ENOENT);
	store_free(a);
	store_free(b);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/roam-sync-unit.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	TEST(frame_header_limits);
	TEST(frame_roundtrip);
	TEST(wire_multi_base);
	TEST(reader_bounds);
	TEST(obj_payload);
	TEST(ref_rules);
	TEST(urls);
	TEST(remotes_file);
	TEST(leases);
	TEST(bundle_import_checks);
	TEST(wire_roundtrip);
	TEST(wire_hostile);
	if (getenv("ROAM") && access(getenv("ROAM"), X_OK) == 0)
		TEST(push_pull_local);
	else
		SKIP(push_pull_local, "$ROAM (the roam binary for the far side) not set");
	if (getenv("ROAM") && access(getenv("ROAM"), X_OK) == 0)
		TEST(push_pull_deltas);
	else
		SKIP(push_pull_deltas, "$ROAM (the roam binary for the far side) not set");
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		printf("  could not remove %s\n", dir);
	TEST_EXIT();
}
