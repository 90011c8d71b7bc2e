/* Unit tests for image/: object encoding and re-hashing, tree encoding and
 * building, commits, refs CAS, gc with live and dead writers, verify,
 * import/export, delta blobs, concurrent tree reads and bad databases. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "image/commit.h"
#include "image/store.h"
#include "image/store_int.h"
#define TEST_RNG_SEED 0x9e3779b97f4a7c15ull
#include "tests/unit/test.h"

static char tmpdir[] = "/tmp/roam-image-test.XXXXXX";
static int store_no;

/* A fresh store with the given chunk size; path returned in buf. */
static struct store *new_store(uint32_t chunk, char *buf, size_t n)
{
	snprintf(buf, n, "%s/s%d", tmpdir, store_no++);
	struct store_init_opts o = { .chunk_size = chunk };
	if (store_init(buf, &o)) {
		printf("  store_init: %s\n", store_last_error());
		return NULL;
	}
	struct store *s = NULL;
	if (store_open(buf, 0, &s))
		printf("  store_open: %s\n", store_last_error());
	return s;
}

static void test_hash_hex(void)
{
	struct store_hash h, g;
	store_hash_buf("abc", 3, &h);
	char hex[STORE_HASH_HEX];
	store_hash_hex(&h, hex);
	CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
	CHECK(!store_hash_parse(hex, &g) && store_hash_eq(&g, &h));
	CHECK(store_hash_parse("xyz", &g) == -EINVAL);
	hex[5] = 'g';
	CHECK(store_hash_parse(hex, &g) == -EINVAL);
}

static void test_is_zero(void)
{
	static uint8_t b[100];
	CHECK(store_is_zero(b, 0) && store_is_zero(b, 5) && store_is_zero(b, sizeof(b)));
	b[99] = 1;
	CHECK(!store_is_zero(b, sizeof(b)) && store_is_zero(b, 99));
	b[3] = 1;
	CHECK(!store_is_zero(b, 4) && store_is_zero(b, 3));
}

static void test_put_get(void)
{
	char path[256];
	struct store *s = new_store(0, path, sizeof(path));
	CHECK(s);
	if (!s)
		return;
	static uint8_t text[65536], noise[65536];
	for (size_t i = 0; i < sizeof(text); i++)
		text[i] = "roam stores objects "[i % 20];
	test_fill_random(noise, sizeof(noise));
	struct store_hash ht, hn, he;
	CHECK(!store_put(s, STORE_BLOB, text, sizeof(text), &ht));
	CHECK(!store_put(s, STORE_BLOB, noise, sizeof(noise), &hn));
	CHECK(!store_put(s, STORE_STATE, "", 0, &he));
	CHECK(!store_put(s, STORE_BLOB, text, sizeof(text), NULL));   /* again: no-op */
	struct store_obj_info it, in;
	CHECK(!store_stat(s, &ht, &it) && !store_stat(s, &hn, &in));
	CHECK_EQ(it.codec, STORE_CODEC_ZSTD);
	CHECK(it.stored_size < 1000);
	CHECK_EQ(in.codec, STORE_CODEC_RAW);     /* random data does not pay */
	CHECK_EQ(in.stored_size, sizeof(noise));
	void *d;
	size_t len;
	enum store_kind k;
	CHECK(!store_get(s, &hn, &k, &d, &len));
	CHECK(len == sizeof(noise) && k == STORE_BLOB && !memcmp(d, noise, len));
	free(d);
	CHECK(!store_get(s, &he, &k, &d, &len) && len == 0 && k == STORE_STATE);
	free(d);
	struct store_hash missing;
	store_hash_buf("nope", 4, &missing);
	CHECK_EQ(store_get(s, &missing, NULL, &d, &len), -ENOENT);
	CHECK_EQ(store_has(s, &missing), 0);
	CHECK_EQ(store_has(s, &ht), 1);
	/* A prefix of the hash finds it. */
	char hex[STORE_HASH_HEX];
	store_hash_hex(&ht, hex);
	hex[10] = 0;
	struct store_hash got;
	CHECK(!store_resolve_prefix(s, hex, &got) && store_hash_eq(&got, &ht));
	/* Raw round trip into a second store, and a forged one is refused. */
	char p2[256];
	struct store *s2 = new_store(0, p2, sizeof(p2));
	struct store_raw raw;
	CHECK(!store_get_raw(s, &ht, &raw));
	CHECK(s2 && !store_put_raw(s2, &ht, &raw));
	CHECK(s2 && store_put_raw(s2, &hn, &raw) == -EBADMSG);
	store_raw_release(&raw);
	CHECK(s2 && !store_get(s2, &ht, NULL, &d, &len) && len == sizeof(text));
	free(d);
	store_free(s2);
	store_free(s);
}

/* Runs sql (one '?' for a hash) on the store's database behind its back:
 * 0 if it changed exactly one row. */
static int on_object(const char *path, const char *sql, const struct store_hash *h)
{
	char db[300];
	snprintf(db, sizeof(db), "%s/store.db", path);
	sqlite3 *c;
	if (sqlite3_open(db, &c) != SQLITE_OK)
		return -1;
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(c, sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_blob(st, 1, h->b, 32, SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(c) == 1 ? 0 : -1;
		sqlite3_finalize(st);
	}
	sqlite3_close(c);
	return rc;
}

/* Flips one byte of an object's stored data. */
static int corrupt(const char *path, const struct store_hash *h)
{
	return on_object(path, "UPDATE objects SET data = substr(data, 1, 99) || x'5a' || "
			 "substr(data, 101) WHERE hash = ?", h);
}

/* Deletes an object. */
static int drop_object(const char *path, const struct store_hash *h)
{
	return on_object(path, "DELETE FROM objects WHERE hash = ?", h);
}

static void test_corruption(void)
{
	char path[256];
	struct store *s = new_store(0, path, sizeof(path));
	if (!s)
		return;
	static uint8_t noise[65536];
	test_fill_random(noise, sizeof(noise));
	struct store_hash h;
	CHECK(!store_put(s, STORE_BLOB, noise, sizeof(noise), &h));
	CHECK(!corrupt(path, &h));
	void *d = NULL;
	size_t len;
	CHECK_EQ(store_get(s, &h, NULL, &d, &len), -EBADMSG);
	char hex[STORE_HASH_HEX];
	store_hash_hex(&h, hex);
	CHECK(strstr(store_last_error(), hex) != NULL);
	store_free(s);
}

static void test_tree_encoding(void)
{
	CHECK_EQ(tree_root_level(0, 65536, 512), 0);
	CHECK_EQ(tree_root_level(65536ull * 512, 65536, 512), 0);
	CHECK_EQ(tree_root_level(65536ull * 512 + 1, 65536, 512), 1);
	CHECK_EQ(tree_root_level(4ull << 30, 65536, 512), 1);
	CHECK_EQ(tree_root_level(1ull << 40, 4096, 512), 3);
	uint8_t kids[3 * 32] = { 0 }, buf[TREE_HDR + sizeof(kids)];
	kids[40] = 1;
	size_t n = tree_node_encode(buf, 0, 512, 65536, 2 * 65536 + 5, kids, 3);
	CHECK_EQ(n, sizeof(buf));
	struct tree_node t;
	CHECK(!tree_node_parse(buf, n, &t));
	CHECK(t.level == 0 && t.count == 3 && t.size == 2 * 65536 + 5 && t.fanout == 512);
	CHECK(tree_node_parse(buf, n - 1, &t) == -EINVAL);         /* truncated */
	n = tree_node_encode(buf, 0, 512, 65536, 4 * 65536, kids, 3);
	CHECK(tree_node_parse(buf, n, &t) == -EINVAL);             /* count != size */
	n = tree_node_encode(buf, 0, 512, 65536 + 1, 3 * 65536, kids, 3);
	CHECK(tree_node_parse(buf, n, &t) == -EINVAL);             /* chunk size */
	n = tree_node_encode(buf, 0, 512, 65536, 3 * 65536, kids, 3);
	buf[4] = 9;
	CHECK(tree_node_parse(buf, n, &t) == -EINVAL);             /* version */
	/* Every truncation of a valid node is rejected. */
	n = tree_node_encode(buf, 0, 512, 65536, 3 * 65536, kids, 3);
	int bad = 0;
	for (size_t i = 0; i < n; i++)
		bad += tree_node_parse(buf, i, &t) == -EINVAL;
	CHECK_EQ(bad, (int)n);
}

/* Builds a tree of size bytes from buf via the builder, checks reads. */
static void check_tree(struct store *s, const struct store_hash *root, const uint8_t *want,
		       uint64_t size)
{
	struct store_tree *t;
	CHECK(!store_tree_open(s, root, &t));
	if (!t)
		return;
	CHECK_EQ(store_tree_size(t), size);
	uint8_t *got = malloc(size + 1);
	CHECK_EQ(store_tree_read(t, got, size + 100, 0), (long long)size);
	CHECK(!memcmp(got, want, size));
	for (int i = 0; i < 200 && size; i++) {
		uint64_t off = test_rnd() % size, len = test_rnd() % 20000;
		ssize_t n = store_tree_read(t, got, len, off);
		uint64_t exp = len < size - off ? len : size - off;
		CHECK_EQ(n, (long long)exp);
		if (n > 0 && memcmp(got, want + off, (size_t)n)) {
			CHECK(!"range read differs");
			break;
		}
	}
	CHECK_EQ(store_tree_read(t, got, 10, size), 0);
	free(got);
	store_tree_free(t);
}

struct blob_job {
	struct store *s;
	uint8_t data[2][4096];
	struct store_blob blob[2];
	int rc[2];
};

static void *encode_blobs(void *arg)
{
	struct blob_job *j = arg;
	for (int i = 0; i < 2; i++) {
		struct store_hash h;
		store_hash_buf(j->data[i], sizeof(j->data[i]), &h);
		j->rc[i] = store_blob_encode(j->s, j->data[i], sizeof(j->data[i]), &h, &j->blob[i]);
	}
	return NULL;
}

static void test_tree_builder(void)
{
	char path[256];
	struct store *s = new_store(4096, path, sizeof(path));
	if (!s)
		return;
	/* 2 levels with 4 KiB chunks: more than 512 chunks. */
	uint64_t size = 3 * 1024 * 1024 + 1234;
	uint64_t nch = (size + 4095) / 4096;
	uint8_t *img = calloc(1, size);
	for (uint64_t c = 0; c < nch; c += 3)
		test_fill_random(img + c * 4096, c * 4096 + 4096 <= size ? 4096 : size - c * 4096);
	struct store_tree_builder *b;
	CHECK(!store_tree_builder_new(s, size, NULL, &b));
	for (uint64_t c = 0; c < nch; c++) {
		size_t len = c * 4096 + 4096 <= size ? 4096 : size - c * 4096;
		CHECK(!store_tree_builder_set(b, c, img + c * 4096, len));
	}
	CHECK_EQ(store_tree_builder_set(b, nch, img, 4096), -EINVAL);
	struct store_hash root, root2, root3;
	CHECK(!store_tree_builder_finish(b, &root));
	store_tree_builder_free(b);
	check_tree(s, &root, img, size);
	/* The same content through import gives the same root. */
	char f[300];
	snprintf(f, sizeof(f), "%s/img", tmpdir);
	int fd = open(f, O_RDWR | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0 && write(fd, img, size) == (ssize_t)size);
	struct store_import_stats st;
	CHECK(!store_import_fd(s, fd, NULL, &root2, &st));
	close(fd);
	CHECK(store_hash_eq(&root, &root2));
	CHECK_EQ(st.new_chunks, 0);
	/* Change a few chunks over the base: only those are read. */
	CHECK(!store_tree_builder_new(s, size, &root, &b));
	uint8_t chunk[4096];
	test_fill_random(chunk, sizeof(chunk));
	CHECK(!store_tree_builder_set(b, 700, chunk, 4096));
	memcpy(img + 700 * 4096, chunk, 4096);
	memset(chunk, 0, sizeof(chunk));
	CHECK(!store_tree_builder_set(b, 3, chunk, 4096));
	memset(img + 3 * 4096, 0, 4096);
	struct store_hash zero = { { 0 } };
	CHECK(!store_tree_builder_set_hash(b, 1, &zero));
	memset(img + 4096, 0, 4096);
	CHECK(!store_tree_builder_finish(b, &root3));
	store_tree_builder_free(b);
	check_tree(s, &root3, img, size);
	/* The same changes as blobs encoded on another thread: the same tree;
	 * one compressible (zstd), one random (stored raw). */
	struct blob_job bj = { .s = s };
	memcpy(bj.data[0], img + 700 * 4096, 4096);
	memset(bj.data[1], 'x', 4096);
	pthread_t th;
	CHECK(!pthread_create(&th, NULL, encode_blobs, &bj) && !pthread_join(th, NULL));
	CHECK(!bj.rc[0] && !bj.rc[1]);
	CHECK_EQ(bj.blob[0].codec, STORE_CODEC_RAW);
	CHECK(bj.blob[1].codec == STORE_CODEC_ZSTD && bj.blob[1].stored_len < 4096);
	CHECK(!store_tree_builder_new(s, size, &root, &b));
	CHECK(!store_tree_builder_set_blob(b, 700, &bj.blob[0]));
	CHECK(!store_tree_builder_set_blob(b, 4, &bj.blob[1]));
	bj.blob[1].size = 100;
	CHECK_EQ(store_tree_builder_set_blob(b, 5, &bj.blob[1]), -EINVAL);
	CHECK(!store_tree_builder_set(b, 3, chunk, 4096));
	CHECK(!store_tree_builder_set_hash(b, 1, &zero));
	memset(img + 4 * 4096, 'x', 4096);
	struct store_hash root4;
	CHECK(!store_tree_builder_finish(b, &root4));
	store_tree_builder_free(b);
	check_tree(s, &root4, img, size);
	store_blob_release(&bj.blob[0]);
	store_blob_release(&bj.blob[1]);
	/* No changes over a base: the base itself. */
	CHECK(!store_tree_builder_new(s, size, &root3, &b));
	CHECK(!store_tree_builder_finish(b, &root2) && store_hash_eq(&root2, &root3));
	store_tree_builder_free(b);
	/* A base of another size is refused. */
	CHECK_EQ(store_tree_builder_new(s, size + 4096, &root3, &b), -EINVAL);
	/* A missing blob hash is refused. */
	struct store_hash bogus;
	store_hash_buf("bogus", 5, &bogus);
	CHECK(!store_tree_builder_new(s, size, NULL, &b));
	CHECK(!store_tree_builder_set_hash(b, 5, &bogus));
	CHECK_EQ(store_tree_builder_finish(b, &root2), -ENOENT);
	store_tree_builder_free(b);
	/* An empty tree and an all-zero 4 GiB tree are tiny. */
	CHECK(!store_tree_builder_new(s, 0, NULL, &b) && !store_tree_builder_finish(b, &root2));
	store_tree_builder_free(b);
	check_tree(s, &root2, img, 0);
	CHECK(!store_tree_builder_new(s, 4ull << 30, NULL, &b) &&
	      !store_tree_builder_finish(b, &root2));
	store_tree_builder_free(b);
	struct store_obj_info info;
	CHECK(!store_stat(s, &root2, &info) && info.stored_size < 4096);
	struct store_tree *t;
	CHECK(!store_tree_open(s, &root2, &t));
	CHECK(t && store_tree_size(t) == 4ull << 30);
	CHECK(t && store_tree_read(t, chunk, 4096, (4ull << 30) - 4096) == 4096 &&
	      chunk[0] == 0 && !memcmp(chunk, chunk + 1, 4095));
	store_tree_free(t);
	free(img);
	store_free(s);
}

static void test_tree_rejects_missing_children(void)
{
	char path[256];
	struct store *s = new_store(0, path, sizeof(path));
	if (!s)
		return;
	uint8_t kids[32], buf[TREE_HDR + 32];
	memset(kids, 7, sizeof(kids));
	size_t n = tree_node_encode(buf, 0, 512, 65536, 100, kids, 1);
	CHECK_EQ(store_put(s, STORE_TREE, buf, n, NULL), -ENOENT);
	CHECK_EQ(store_put(s, STORE_TREE, "junk", 4, NULL), -EINVAL);
	store_free(s);
}

struct rd {
	struct store_tree *t;
	const uint8_t *want;
	uint64_t size;
	int bad;
	uint64_t seed;
};

static void *reader(void *arg)
{
	struct rd *r = arg;
	uint8_t buf[70000];
	for (int i = 0; i < 300; i++) {
		r->seed = r->seed * 6364136223846793005ull + 1442695040888963407ull;
		uint64_t off = (r->seed >> 11) % r->size;
		size_t len = (size_t)((r->seed >> 40) % sizeof(buf));
		ssize_t n = store_tree_read(r->t, buf, len, off);
		size_t exp = len < r->size - off ? len : (size_t)(r->size - off);
		if (n != (ssize_t)exp || memcmp(buf, r->want + off, exp))
			r->bad++;
	}
	return NULL;
}

static void test_tree_threads(void)
{
	char path[256];
	struct store *s = new_store(0, path, sizeof(path));
	if (!s)
		return;
	uint64_t size = 8 << 20;
	uint8_t *img = malloc(size);
	test_fill_random(img, size);
	memset(img + (1 << 20), 0, 2 << 20);
	char f[300];
	snprintf(f, sizeof(f), "%s/thr", tmpdir);
	int fd = open(f, O_RDWR | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0 && write(fd, img, size) == (ssize_t)size);
	struct store_hash root;
	CHECK(!store_import_fd(s, fd, NULL, &root, NULL));
	close(fd);
	struct store_tree *t;
	CHECK(!store_tree_open(s, &root, &t));
	pthread_t th[4];
	struct rd r[4];
	for (int i = 0; i < 4; i++) {
		r[i] = (struct rd){ t, img, size, 0, (uint64_t)i * 7919 + 1 };
		pthread_create(&th[i], NULL, reader, &r[i]);
	}
	int bad = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		bad += r[i].bad;
	}
	CHECK_EQ(bad, 0);
	store_tree_free(t);
	free(img);
	store_free(s);
}

static void test_commit_encoding(void)
{
	struct store_commit c = { .time = 1700000000, .host = "h1", .message = "first" };
	struct store_hash a, b;
	store_hash_buf("a", 1, &a);
	store_hash_buf("b", 1, &b);
	c.parents[0] = a;
	c.n_parents = 1;
	CHECK(!store_commit_add_root(&c, "memory", STORE_TREE, &b));
	CHECK(!store_commit_add_root(&c, "config", STORE_BLOB, &a));
	CHECK_EQ(store_commit_add_root(&c, "config", STORE_BLOB, &a), -EEXIST);
	CHECK_EQ(store_commit_add_root(&c, "bad/name", STORE_BLOB, &a), -EINVAL);
	CHECK_EQ(store_commit_add_root(&c, "x", STORE_COMMIT, &a), -EINVAL);
	void *buf;
	size_t len;
	CHECK(!store_commit_encode(&c, &buf, &len));
	struct store_commit *d;
	CHECK(!store_commit_decode(buf, len, &d));
	if (d) {
		CHECK(d->time == 1700000000 && !strcmp(d->host, "h1") &&
		      !strcmp(d->message, "first") && d->n_parents == 1 && d->n_roots == 2);
		CHECK(!strcmp(d->roots[0].name, "config"));   /* sorted */
		const struct store_commit_root *m = store_commit_root(d, "memory");
		CHECK(m && m->kind == STORE_TREE && store_hash_eq(&m->hash, &b));
		store_commit_free(d);
	}
	/* Encoding is canonical: root order does not matter. */
	struct store_commit c2 = c;
	c2.roots[0] = c.roots[1];
	c2.roots[1] = c.roots[0];
	void *buf2;
	size_t len2;
	CHECK(!store_commit_encode(&c2, &buf2, &len2));
	CHECK(len == len2 && !memcmp(buf, buf2, len));
	free(buf2);
	/* Every truncation and every appended byte is rejected. */
	int bad = 0;
	for (size_t i = 0; i < len; i++)
		bad += store_commit_decode(buf, i, &d) == -EINVAL;
	CHECK_EQ(bad, (int)len);
	uint8_t *longer = malloc(len + 1);
	memcpy(longer, buf, len);
	longer[len] = 'x';
	CHECK_EQ(store_commit_decode(longer, len + 1, &d), -EINVAL);
	free(longer);
	free(buf);
}

static void test_commit_store(void)
{
	char path[256];
	struct store *s = new_store(0, path, sizeof(path));
	if (!s)
		return;
	struct store_hash cfg, h, h2;
	CHECK(!store_put(s, STORE_BLOB, "{\"mem\":64}", 10, &cfg));
	struct store_commit c = { .time = 5, .host = "x" };
	CHECK(!store_commit_add_root(&c, "config", STORE_BLOB, &cfg));
	CHECK(!store_commit_put(s, &c, &h));
	struct store_commit c2 = { .time = 6, .n_parents = 1 };
	c2.parents[0] = h;
	CHECK(!store_commit_add_root(&c2, "config", STORE_BLOB, &cfg));
	CHECK(!store_commit_put(s, &c2, &h2));
	struct store_commit *d;
	CHECK(!store_commit_get(s, &h2, &d));
	CHECK(d && d->n_parents == 1 && store_hash_eq(&d->parents[0], &h));
	store_commit_free(d);
	CHECK_EQ(store_commit_get(s, &cfg, &d), -EINVAL);
	/* A commit whose parent is missing is refused. */
	store_hash_buf("ghost", 5, &c2.parents[0]);
	CHECK_EQ(store_commit_put(s, &c2, &h2), -ENOENT);
	/* So is one whose parent or root is not of the kind it says. */
	c2.parents[0] = cfg;
	CHECK_EQ(store_commit_put(s, &c2, &h2), -EBADMSG);
	CHECK(strstr(store_last_error(), "it is a blob") != NULL);
	c2.parents[0] = h;
	CHECK(!store_commit_add_root(&c2, "memory", STORE_TREE, &cfg));
	CHECK_EQ(store_commit_put(s, &c2, &h2), -EBADMSG);
	store_free(s);
}

static int count_ref(void *arg, const char *name, const struct store_hash *h)
{
	(void)name;
	(void)h;
	(*(int *)arg)++;
	return 0;
}

static void test_refs(void)
{
	CHECK(store_ref_valid("disks/root"));
	CHECK(store_ref_valid("vms/web-1/checkpoints/v1.2_x"));
	CHECK(!store_ref_valid(""));
	CHECK(!store_ref_valid("a//b"));
	CHECK(!store_ref_valid("/a"));
	CHECK(!store_ref_valid("a/"));
	CHECK(!store_ref_valid("a/../b"));
	CHECK(!store_ref_valid("a/./b"));
	CHECK(!store_ref_valid(".hidden"));
	CHECK(!store_ref_valid("a b"));
	CHECK(!store_ref_valid("a\nb"));
	char longname[300];
	memset(longname, 'a', 299);
	longname[299] = 0;
	CHECK(!store_ref_valid(longname));
	char path[256];
	struct store *s = new_store(0, path, sizeof(path));
	if (!s)
		return;
	struct store_hash a, b, cur, ghost;
	CHECK(!store_put(s, STORE_BLOB, "a", 1, &a));
	CHECK(!store_put(s, STORE_BLOB, "b", 1, &b));
	store_hash_buf("ghost", 5, &ghost);
	CHECK_EQ(store_ref_get(s, "disks/x", &cur), -ENOENT);
	CHECK(!store_ref_cas(s, "disks/x", NULL, &a));
	CHECK_EQ(store_ref_cas(s, "disks/x", NULL, &b), -ESTALE);   /* exists */
	CHECK_EQ(store_ref_cas(s, "disks/x", &b, &b), -ESTALE);     /* moved */
	CHECK(!store_ref_cas(s, "disks/x", &a, &b));
	CHECK(!store_ref_get(s, "disks/x", &cur) && store_hash_eq(&cur, &b));
	CHECK_EQ(store_ref_cas(s, "disks/x", &b, &ghost), -ENOENT);  /* no such object */
	CHECK(!store_ref_get(s, "disks/x", &cur) && store_hash_eq(&cur, &b));
	CHECK_EQ(store_ref_cas(s, "bad//name", NULL, &a), -EINVAL);
	CHECK(!store_ref_cas(s, "vms/a/head", NULL, &a));
	int n = 0;
	CHECK(!store_ref_list(s, "disks/", count_ref, &n));
	CHECK_EQ(n, 1);
	n = 0;
	CHECK(!store_ref_list(s, NULL, count_ref, &n));
	CHECK_EQ(n, 2);
	CHECK(!store_ref_cas(s, "disks/x", &b, NULL));
	CHECK_EQ(store_ref_get(s, "disks/x", &cur), -ENOENT);
	store_free(s);
}

static void test_gc(void)
{
	char path[256];
	struct store *w = new_store(65536, path, sizeof(path));
	if (!w)
		return;
	struct store_hash keep, drop, pinned;
	CHECK(!store_put(w, STORE_BLOB, "keep", 4, &keep));
	CHECK(!store_put(w, STORE_BLOB, "drop", 4, &drop));
	CHECK(!store_ref_cas(w, "disks/k", NULL, &keep));
	CHECK(!store_unpin(w));
	/* A second, live writer has written an object no ref names yet. */
	struct store *live;
	CHECK(!store_open(path, 0, &live));
	CHECK(!store_put(live, STORE_BLOB, "pinned", 6, &pinned));
	/* A crashed writer: a child process writes and dies without cleanup. */
	struct store_hash crashed;
	store_hash_buf("crashed", 7, &crashed);
	pid_t pid = fork();
	if (pid == 0) {
		struct store *c;
		if (store_open(path, 0, &c) || store_put(c, STORE_BLOB, "crashed", 7, NULL))
			_exit(1);
		_exit(0);
	}
	int status;
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && !WEXITSTATUS(status));
	CHECK_EQ(store_has(w, &crashed), 1);
	struct store_gc_stats st;
	CHECK(!store_gc(w, NULL, &st));
	CHECK_EQ(st.freed_objects, 2);           /* drop, crashed */
	CHECK_EQ(st.dead_sessions, 1);
	CHECK_EQ(st.pinned_sessions, 1);
	CHECK_EQ(store_has(w, &keep), 1);
	CHECK_EQ(store_has(w, &pinned), 1);
	CHECK_EQ(store_has(w, &drop), 0);
	CHECK_EQ(store_has(w, &crashed), 0);
	/* Once the live writer is gone, its unnamed object goes too. */
	store_free(live);
	CHECK(!store_gc(w, NULL, &st));
	CHECK_EQ(st.freed_objects, 1);
	CHECK_EQ(store_has(w, &pinned), 0);
	/* Reachability goes through commits and trees. */
	struct store_hash blob, root, commit;
	static uint8_t data[65536 * 2];
	test_fill_random(data, sizeof(data));
	struct store_tree_builder *b;
	CHECK(!store_tree_builder_new(w, sizeof(data), NULL, &b));
	CHECK(!store_tree_builder_set(b, 1, data + 65536, 65536));
	CHECK(!store_tree_builder_finish(b, &root));
	store_tree_builder_free(b);
	struct store_tree *t;
	CHECK(!store_tree_open(w, &root, &t));
	CHECK(t && !store_tree_chunk_hash(t, 1, &blob));
	store_tree_free(t);
	struct store_commit c = { .time = 1 };
	CHECK(!store_commit_add_root(&c, "disk0", STORE_TREE, &root));
	CHECK(!store_commit_put(w, &c, &commit));
	CHECK(!store_ref_cas(w, "vms/v/head", NULL, &commit));
	CHECK(!store_unpin(w));
	CHECK(!store_gc(w, NULL, &st));
	CHECK_EQ(st.freed_objects, 0);
	CHECK_EQ(store_has(w, &blob), 1);
	CHECK(!store_ref_cas(w, "vms/v/head", &commit, NULL));
	CHECK(!store_gc(w, NULL, &st));
	CHECK_EQ(st.freed_objects, 3);
	CHECK_EQ(store_has(w, &blob), 0);
	store_free(w);
}

static void test_verify(void)
{
	char path[256];
	struct store *s = new_store(65536, path, sizeof(path));
	if (!s)
		return;
	static uint8_t data[65536 * 3];
	test_fill_random(data, sizeof(data));
	char f[300];
	snprintf(f, sizeof(f), "%s/v", tmpdir);
	int fd = open(f, O_RDWR | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0 && write(fd, data, sizeof(data)) == (ssize_t)sizeof(data));
	struct store_hash root, bad;
	CHECK(!store_import_fd(s, fd, NULL, &root, NULL));
	close(fd);
	CHECK(!store_ref_cas(s, "disks/one", NULL, &root));
	CHECK(!store_ref_cas(s, "disks/two", NULL, &root));
	struct store_hash other;
	CHECK(!store_put(s, STORE_BLOB, "x", 1, &other));
	CHECK(!store_ref_cas(s, "disks/fine", NULL, &other));
	struct store_verify_report *rep;
	CHECK_EQ(store_verify(s, NULL, &rep), 0);
	CHECK(rep && rep->objects == 5);
	store_verify_report_free(rep);
	struct store_tree *t;
	CHECK(!store_tree_open(s, &root, &t));
	CHECK(t && !store_tree_chunk_hash(t, 2, &bad));
	store_tree_free(t);
	CHECK(!corrupt(path, &bad));
	CHECK_EQ(store_verify(s, NULL, &rep), 1);
	if (rep && rep->n_bad == 1) {
		CHECK(store_hash_eq(&rep->bad[0].hash, &bad));
		CHECK_EQ(rep->bad[0].n_refs, 2);
		CHECK_EQ(rep->n_bad_refs, 2);
		CHECK(!strcmp(rep->bad_refs[0], "disks/one") && !strcmp(rep->bad_refs[1], "disks/two"));
	}
	store_verify_report_free(rep);
	/* gc refuses to run over a corrupt reachable tree? It only needs trees:
	 * a corrupt blob does not stop it. */
	struct store_gc_stats st;
	CHECK(!store_gc(s, NULL, &st));
	CHECK_EQ(store_has(s, &bad), 1);
	CHECK(!corrupt(path, &root));
	CHECK_EQ(store_gc(s, NULL, &st), -EBADMSG);
	store_free(s);
	/* A commit whose root is not the kind it names (the row's kind changed
	 * behind the store's back): verify names the commit and its ref. */
	s = new_store(0, path, sizeof(path));
	if (!s)
		return;
	struct store_hash node, c;
	uint8_t kids[32] = { 0 }, enc[TREE_HDR + 32];
	size_t len = tree_node_encode(enc, 0, TREE_FANOUT, 65536, 1, kids, 1);
	CHECK(!store_put(s, STORE_TREE, enc, len, &node));
	struct store_commit cm = { .time = 1, .host = "h" };
	CHECK(!store_commit_add_root(&cm, "memory", STORE_TREE, &node));
	CHECK(!store_commit_put(s, &cm, &c) && !store_ref_cas(s, "vms/k/head", NULL, &c));
	CHECK_EQ(store_verify(s, NULL, &rep), 0);
	store_verify_report_free(rep);
	CHECK(!on_object(path, "UPDATE objects SET kind = 1 WHERE hash = ?", &node));
	CHECK_EQ(store_verify(s, NULL, &rep), 1);
	CHECK(rep && rep->n_bad == 1 && store_hash_eq(&rep->bad[0].hash, &c) &&
	      strstr(rep->bad[0].reason, "as a tree; it is a blob") && rep->n_bad_refs == 1);
	store_verify_report_free(rep);
	store_free(s);
}

static void test_import_export(void)
{
	char path[256];
	struct store *s = new_store(0, path, sizeof(path));
	if (!s)
		return;
	static const uint64_t sizes[] = { 0, 1, 65535, 65536, 65537, 3 * 1048576 + 17 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint64_t size = sizes[i];
		uint8_t *img = calloc(1, size + 1);
		if (size > 200000) {
			test_fill_random(img, 100000);
			test_fill_random(img + 2 * 1048576, size - 2 * 1048576);
		} else {
			test_fill_random(img, size);
		}
		char in[300], out[300];
		snprintf(in, sizeof(in), "%s/in%zu", tmpdir, i);
		snprintf(out, sizeof(out), "%s/out%zu", tmpdir, i);
		int fd = open(in, O_RDWR | O_CREAT | O_TRUNC, 0644);
		CHECK(fd >= 0 && write(fd, img, size) == (ssize_t)size);
		struct store_hash root;
		struct store_import_stats st;
		CHECK(!store_import_fd(s, fd, NULL, &root, &st));
		close(fd);
		CHECK_EQ(st.size, size);
		int ofd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0644);
		CHECK(!store_export_fd(s, &root, ofd, NULL));
		uint8_t *got = malloc(size + 1);
		struct stat sb;
		CHECK(!fstat(ofd, &sb) && (uint64_t)sb.st_size == size);
		CHECK(pread(ofd, got, size, 0) == (ssize_t)size && !memcmp(got, img, size));
		close(ofd);
		free(got);
		free(img);
	}
	/* A memfd (how guest RAM is held) imports like a file, holes skipped. */
	int mfd = memfd_create("ram", MFD_CLOEXEC);
	CHECK(mfd >= 0 && !ftruncate(mfd, 8 << 20));
	static uint8_t page[4096];
	test_fill_random(page, sizeof(page));
	CHECK(pwrite(mfd, page, sizeof(page), 5 << 20) == sizeof(page));
	struct store_hash mroot;
	struct store_import_stats mst;
	CHECK(!store_import_fd(s, mfd, NULL, &mroot, &mst));
	CHECK_EQ(mst.chunks, 1);
	struct store_tree *mt;
	uint8_t back[4096];
	CHECK(!store_tree_open(s, &mroot, &mt));
	CHECK(mt && store_tree_read(mt, back, sizeof(back), 5 << 20) == sizeof(back) &&
	      !memcmp(back, page, sizeof(page)));
	store_tree_free(mt);
	close(mfd);
	/* A directory is not importable. */
	int dfd = open(tmpdir, O_RDONLY);
	struct store_hash root;
	CHECK_EQ(store_import_fd(s, dfd, NULL, &root, NULL), -EINVAL);
	close(dfd);
	store_free(s);
}

/* Text-like bytes: words from a small vocabulary (compressible, but no
 * 16 KiB of it repeats). */
static void fill_words(uint8_t *p, size_t n)
{
	static const char *const w[] = { "kernel ", "page ", "tree ", "roam ", "chunk ",
		"store ", "delta ", "guest ", "\n", "0x", "ffffffff81", "T ", "t ", "D " };
	size_t i = 0;
	while (i < n) {
		const char *x = w[(unsigned)test_rnd() % (sizeof(w) / sizeof(w[0]))];
		for (; *x && i < n; x++)
			p[i++] = (uint8_t)*x;
		if (i < n)
			p[i++] = (uint8_t)('a' + (unsigned)test_rnd() % 26);
	}
}

/* Similar chunks: a text copied again at a shift of 1000 bytes is stored
 * as deltas against the first copy, reads back exactly, leaves the store
 * self-contained (raw reads, gc), and a corrupt base is an error. */
static void test_similar(void)
{
	enum { C = 16384, TEXT = 6 * C };
	char pa[256], pb[256], f[300];
	struct store *a = new_store(C, pa, sizeof(pa)), *b = new_store(C, pb, sizeof(pb));
	if (!a || !b)
		return;
	static uint8_t img[2 * TEXT + 2 * C], back[sizeof(img)];
	fill_words(img, TEXT);
	memcpy(img + TEXT + 1000, img, TEXT);
	test_fill_random(img + 2 * TEXT + 1000, sizeof(img) - 2 * TEXT - 1000);
	snprintf(f, sizeof(f), "%s/similar", tmpdir);
	int fd = open(f, O_RDWR | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0 && write(fd, img, sizeof(img)) == (ssize_t)sizeof(img));
	struct store_hash plain, root;
	struct store_import_stats sp, ss;
	CHECK(!store_import_fd(b, fd, NULL, &plain, &sp));
	CHECK(!store_import_similar_fd(a, fd, NULL, 0, NULL, &root, &ss));
	close(fd);
	CHECK(store_hash_eq(&plain, &root));
	/* The second copy costs well under half of what it costs plainly. */
	uint64_t text_plain = sp.new_stored - (sizeof(img) - 2 * TEXT);
	CHECK(ss.new_stored < sp.new_stored - text_plain / 4);
	struct store_tree *t;
	CHECK(!store_tree_open(a, &root, &t));
	CHECK(t && store_tree_read(t, back, sizeof(back), 0) == (ssize_t)sizeof(back) &&
	      !memcmp(back, img, sizeof(img)));
	/* Find the deltas and their bases. */
	struct store_hash delta = { { 0 } }, base[STORE_DELTA_BASES];
	int ndelta = 0, nbase = 0;
	for (uint64_t c = 0; c < sizeof(img) / C; c++) {
		struct store_hash h;
		struct store_obj_info info;
		CHECK(!store_tree_chunk_hash(t, c, &h) && !store_stat(a, &h, &info));
		if (info.codec != STORE_CODEC_DELTA)
			continue;
		CHECK(c >= TEXT / C);   /* only the copy */
		struct store_raw raw;
		CHECK(!store_fetch_raw(a, &h, &raw));
		if (!ndelta++) {
			delta = h;
			nbase = store_delta_bases(raw.data, raw.info.stored_size, base);
		}
		store_raw_release(&raw);
		/* Handed out self-contained; another store takes it. */
		CHECK(!store_get_raw(a, &h, &raw));
		CHECK(raw.info.codec != STORE_CODEC_DELTA);
		CHECK_EQ(store_put_raw(b, &h, &raw), 0);
		store_raw_release(&raw);
	}
	store_tree_free(t);
	CHECK(ndelta >= 4);
	CHECK(nbase >= 1);
	/* gc keeps the bases of a delta that only another tree reaches: zero
	 * every chunk of the first copy, keep only that tree. */
	struct store_tree_builder *bl;
	struct store_hash root2;
	static const struct store_hash zero;
	CHECK(!store_tree_builder_new(a, sizeof(img), &root, &bl));
	for (uint64_t c = 0; c < TEXT / C; c++)
		CHECK(!store_tree_builder_set_hash(bl, c, &zero));
	CHECK(!store_tree_builder_finish(bl, &root2));
	store_tree_builder_free(bl);
	CHECK(!store_ref_cas(a, "disks/copy", NULL, &root2));
	CHECK(!store_unpin(a));
	struct store_gc_stats gs;
	CHECK(!store_gc(a, NULL, &gs));
	CHECK(gs.freed_objects > 0);
	CHECK(!store_tree_open(a, &root2, &t));
	CHECK(t && store_tree_read(t, back, sizeof(back), 0) == (ssize_t)sizeof(back) &&
	      !memcmp(back + TEXT, img + TEXT, sizeof(img) - TEXT));
	store_tree_free(t);
	struct store_verify_report *rep;
	CHECK_EQ(store_verify(a, NULL, &rep), 0);
	store_verify_report_free(rep);
	/* A corrupt base: reading the delta fails (through a handle that has
	 * not cached the base before it was damaged), verify names both. */
	CHECK(nbase >= 1 && !corrupt(pa, &base[0]));
	void *data;
	size_t len;
	struct store *a2 = NULL;
	CHECK(!store_open(pa, 0, &a2));
	CHECK(a2 && store_get(a2, &delta, NULL, &data, &len) == -EBADMSG);
	CHECK(strstr(store_last_error(), "corrupt") != NULL);
	store_free(a2);
	int nbad = store_verify(a, NULL, &rep);
	CHECK(nbad >= 2 && rep && (int)rep->n_bad == nbad && rep->n_bad_refs == 1);
	store_verify_report_free(rep);
	/* Hostile delta headers are refused as corrupt. */
	uint8_t hdr[1 + 2 * STORE_HASH_LEN + 4] = { 3 };
	CHECK_EQ(store_delta_bases(hdr, sizeof(hdr), base), -EBADMSG);
	hdr[0] = 0;
	CHECK_EQ(store_delta_bases(hdr, sizeof(hdr), base), -EBADMSG);
	hdr[0] = 2;
	CHECK_EQ(store_delta_bases(hdr, 1 + 2 * STORE_HASH_LEN, base), -EBADMSG);
	store_free(a);
	store_free(b);
}

/* A new version of a chunk against its previous one (incremental memory
 * saves): a small change is a small delta, the next version of a delta is
 * made against that delta's bases, and nothing else serves as a base. */
static void test_encode_like(void)
{
	enum { C = 16384 };
	char path[256];
	struct store *s = new_store(C, path, sizeof(path));
	if (!s)
		return;
	static uint8_t v[5][C], img[2 * C];
	test_fill_random(v[0], C);
	memcpy(v[1], v[0], C);
	v[1][100] ^= 1;
	v[1][9000] ^= 0x55;
	memcpy(v[2], v[1], C);
	memset(v[2] + 5000, 'x', 64);
	test_fill_random(v[3], C);
	memcpy(v[4], v[0], C);
	v[4][200] ^= 1;
	struct store_hash h[5];
	static const struct store_hash zero;
	for (int i = 0; i < 5; i++)
		store_hash_buf(v[i], C, &h[i]);
	CHECK(!store_put(s, STORE_BLOB, v[0], C, NULL));
	struct store_blob b1, b2, b;
	CHECK(!store_blob_encode_like(s, v[1], C, &h[1], &h[0], &b1));
	CHECK(b1.codec == STORE_CODEC_DELTA && b1.stored_len < C / 16);
	struct store_tree_builder *tb;
	struct store_hash root, base[STORE_DELTA_BASES];
	CHECK(!store_tree_builder_new(s, 2 * C, NULL, &tb));
	CHECK(!store_tree_builder_set_blob(tb, 0, &b1));
	CHECK(!store_blob_encode_like(s, v[2], C, &h[2], &h[1], &b2));
	CHECK(b2.codec == STORE_CODEC_DELTA &&
	      store_delta_bases(b2.stored, b2.stored_len, base) == 1 && store_hash_eq(&base[0], &h[0]));
	CHECK(!store_tree_builder_set_blob(tb, 1, &b2));
	CHECK(!store_tree_builder_finish(tb, &root));
	store_tree_builder_free(tb);
	memcpy(img, v[1], C);
	memcpy(img + C, v[2], C);
	check_tree(s, &root, img, sizeof(img));
	store_blob_release(&b1);
	store_blob_release(&b2);
	/* Plain: nothing in common, no previous version, one not stored. */
	CHECK(!store_blob_encode_like(s, v[3], C, &h[3], &h[0], &b) && b.codec == STORE_CODEC_RAW);
	store_blob_release(&b);
	CHECK(!store_blob_encode_like(s, v[1], C, &h[1], &zero, &b) && b.codec == STORE_CODEC_RAW);
	store_blob_release(&b);
	CHECK(!store_blob_encode_like(s, v[1], C, &h[1], &h[3], &b) && b.codec == STORE_CODEC_RAW);
	store_blob_release(&b);
	/* The base vanished between encoding and storing: stored plainly. */
	CHECK(!store_blob_encode_like(s, v[4], C, &h[4], &h[0], &b) && b.codec == STORE_CODEC_DELTA);
	CHECK(!drop_object(path, &h[0]));
	CHECK(!store_tree_builder_new(s, 2 * C, NULL, &tb));
	CHECK(!store_tree_builder_set_blob(tb, 0, &b));
	CHECK(!store_tree_builder_finish(tb, &root));
	store_tree_builder_free(tb);
	store_blob_release(&b);
	struct store_obj_info info;
	CHECK(!store_stat(s, &h[4], &info) && info.codec == STORE_CODEC_RAW);
	memcpy(img, v[4], C);
	memset(img + C, 0, C);
	check_tree(s, &root, img, sizeof(img));
	/* A corrupt previous version is not used. */
	CHECK(!corrupt(path, &h[4]));
	CHECK(!store_blob_encode_like(s, v[0], C, &h[0], &h[4], &b) && b.codec == STORE_CODEC_RAW);
	store_blob_release(&b);
	store_free(s);
}

/* A zstd context whose last frame failed (output too small, corrupt input)
 * still takes a prefix for the next one. */
static void test_prefix_after_failure(void)
{
	char path[256];
	struct store *s = new_store(0, path, sizeof(path));
	if (!s)
		return;
	static uint8_t base[16384], data[16384], out[20000], back[16384];
	test_fill_random(base, sizeof(base));
	memcpy(data, base + 100, sizeof(data) - 100);
	size_t n;
	CHECK(store_compress(s, base, sizeof(base), out, 100, &n) < 0);
	CHECK(!store_compress_prefix(s, data, sizeof(data), base, sizeof(base), out, sizeof(out), &n));
	CHECK(n < 1000);
	CHECK(store_decompress(s, "garbage!", 8, back, sizeof(back)) < 0);
	CHECK(!store_decompress_prefix(s, out, n, base, sizeof(base), back, sizeof(back)) &&
	      !memcmp(back, data, sizeof(data)));
	store_free(s);
}

/* Deltas against stored blobs: RAM holding a disk's random bytes at a
 * shift of 1000 is stored as deltas against the disk's chunks offered as
 * bases, and only then. */
static void test_similar_stored(void)
{
	enum { C = 16384, N = 16 };
	char pa[256], f[300];
	struct store *a = new_store(C, pa, sizeof(pa));
	if (!a)
		return;
	static uint8_t disk[N * C], ram[N * C];
	test_fill_random(disk, sizeof(disk));
	/* A first chunk of new random bytes: its failed plain compression
	 * must not spoil the deltas after it. */
	test_fill_random(ram, C);
	memcpy(ram + C, disk + 1000, sizeof(ram) - C);
	snprintf(f, sizeof(f), "%s/sdisk", tmpdir);
	int fd = open(f, O_RDWR | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0 && write(fd, disk, sizeof(disk)) == (ssize_t)sizeof(disk));
	struct store_hash droot, root, bases[N];
	CHECK(!store_import_fd(a, fd, NULL, &droot, NULL));
	close(fd);
	struct store_tree *t;
	CHECK(!store_tree_open(a, &droot, &t));
	for (int c = 0; c < N; c++)
		CHECK(t && !store_tree_chunk_hash(t, (uint64_t)c, &bases[c]));
	store_tree_free(t);
	snprintf(f, sizeof(f), "%s/sram", tmpdir);
	fd = open(f, O_RDWR | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0 && write(fd, ram, sizeof(ram)) == (ssize_t)sizeof(ram));
	struct store_import_stats st;
	CHECK(!store_import_similar_fd(a, fd, bases, N, NULL, &root, &st));
	CHECK(st.new_stored < sizeof(ram) / 8);
	CHECK(!store_tree_open(a, &root, &t));
	CHECK(t && store_tree_read(t, disk, sizeof(disk), 0) == (ssize_t)sizeof(disk) &&
	      !memcmp(disk, ram, sizeof(ram)));
	store_tree_free(t);
	/* Without the bases the same bytes cost their size. */
	for (int c = 0; c < N; c++)
		ram[c * C] ^= 1;
	CHECK(pwrite(fd, ram, sizeof(ram), 0) == (ssize_t)sizeof(ram));
	CHECK(!store_import_similar_fd(a, fd, NULL, 0, NULL, &root, &st));
	CHECK(st.new_stored > sizeof(ram) / 2);
	close(fd);
	store_free(a);
}

static void test_bad_databases(void)
{
	char path[300], db[320];
	struct store *s;
	snprintf(path, sizeof(path), "%s/none", tmpdir);
	CHECK_EQ(store_open(path, 0, &s), -ENOENT);
	CHECK(strstr(store_last_error(), "roam init") != NULL);
	/* A foreign SQLite file. */
	snprintf(path, sizeof(path), "%s/foreign", tmpdir);
	mkdir(path, 0755);
	snprintf(db, sizeof(db), "%s/store.db", path);
	sqlite3 *c;
	CHECK(sqlite3_open(db, &c) == SQLITE_OK);
	CHECK(sqlite3_exec(c, "CREATE TABLE t(x)", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(c);
	CHECK_EQ(store_open(path, 0, &s), -EINVAL);
	/* Not SQLite at all. */
	FILE *f = fopen(db, "w");
	CHECK(f && fputs("hello, this is not a database at all, no no no no\n", f) >= 0);
	fclose(f);
	CHECK_EQ(store_open(path, 0, &s), -EINVAL);
	/* A store from a newer roam. */
	char p2[256];
	s = new_store(0, p2, sizeof(p2));
	store_free(s);
	snprintf(db, sizeof(db), "%s/store.db", p2);
	CHECK(sqlite3_open(db, &c) == SQLITE_OK);
	CHECK(sqlite3_exec(c, "PRAGMA user_version=99", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(c);
	CHECK_EQ(store_open(p2, 0, &s), -EPROTONOSUPPORT);
	/* init twice, bad options. */
	CHECK_EQ(store_init(p2, NULL), -EEXIST);
	snprintf(path, sizeof(path), "%s/badopt", tmpdir);
	CHECK_EQ(store_init(path, &(struct store_init_opts){ .chunk_size = 3000 }), -EINVAL);
	CHECK_EQ(store_init(path, &(struct store_init_opts){ .chunk_size = 2u << 20 }), -EINVAL);
	CHECK_EQ(store_init(path, &(struct store_init_opts){ .level = 30 }), -EINVAL);
}

static off_t file_size(const char *dir, const char *name)
{
	char p[400];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	struct stat sb;
	return stat(p, &sb) ? -1 : sb.st_size;
}

/* With SQLite's automatic checkpoints off, a big commit stays in the WAL;
 * store_checkpoint_background then copies it into the database. */
static void test_deferred_checkpoint(void)
{
	char path[256];
	struct store *s = new_store(65536, path, sizeof(path));
	if (!s)
		return;
	CHECK_EQ(store_set_autocheckpoint(s, false), 0);
	enum { N = 65536, COUNT = 1200 };   /* 75 MiB: over the 64 MiB autocheckpoint */
	uint8_t *buf = malloc(N);
	CHECK(buf != NULL);
	CHECK_EQ(store_txn_begin(s), 0);
	for (int i = 0; buf && i < COUNT; i++) {
		test_fill_random(buf, N);
		struct store_hash h;
		CHECK_EQ(store_put(s, STORE_BLOB, buf, N, &h), 0);
	}
	CHECK_EQ(store_txn_commit(s), 0);
	off_t db0 = file_size(path, "store.db");
	CHECK(file_size(path, "store.db-wal") > (off_t)COUNT * N);
	CHECK(db0 < (off_t)COUNT * N / 2);
	CHECK_EQ(store_checkpoint_background(s), 0);
	off_t db = db0;
	for (int k = 0; k < 200 && db < (off_t)COUNT * N; k++) {
		usleep(50000);
		db = file_size(path, "store.db");
	}
	CHECK(db >= (off_t)COUNT * N);
	store_release_cache(s);
	struct store_usage u;
	CHECK_EQ(store_du(s, &u), 0);
	free(buf);
	store_free(s);
}

static void test_lock_timeout(void)
{
	char path[256];
	struct store *s = new_store(0, path, sizeof(path));
	if (!s)
		return;
	char db[300];
	snprintf(db, sizeof(db), "%s/store.db", path);
	sqlite3 *c;
	CHECK(sqlite3_open(db, &c) == SQLITE_OK);
	CHECK(sqlite3_exec(c, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);
	store_set_lock_timeout(s, 200);
	CHECK_EQ(store_put(s, STORE_BLOB, "x", 1, NULL), -EBUSY);
	CHECK(strstr(store_last_error(), "locked by another roam process") != NULL);
	sqlite3_exec(c, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(c);
	CHECK(!store_put(s, STORE_BLOB, "x", 1, NULL));
	store_free(s);
}

/* Hostile bytes: mutated valid encodings and random buffers never crash the
 * parsers, and whatever they accept re-encodes to the same bytes. */
/* A tree from another store (store_put_raw) is refused unless its children
 * fit it as verify checks: chunks of their place's size, subtrees one
 * level down of the same shape. */
static void test_put_raw_tree_fit(void)
{
	enum { C = 4096 };
	char path[256];
	struct store *s = new_store(C, path, sizeof(path));
	if (!s)
		return;
	static uint8_t full[C], half[C / 2];
	test_fill_random(full, sizeof(full));
	test_fill_random(half, sizeof(half));
	struct store_hash hf, hh, t;
	CHECK(!store_put(s, STORE_BLOB, full, sizeof(full), &hf));
	CHECK(!store_put(s, STORE_BLOB, half, sizeof(half), &hh));
	uint8_t kids[2 * 32], node[TREE_HDR + sizeof(kids)];
	struct store_raw raw = { .info = { .kind = STORE_TREE, .codec = STORE_CODEC_RAW }, .data = node };
	/* [full, half] over 1.5 chunks fits; [half, full] does not. */
	for (int bad = 0; bad < 2; bad++) {
		memcpy(kids, bad ? hh.b : hf.b, 32);
		memcpy(kids + 32, bad ? hf.b : hh.b, 32);
		size_t len = tree_node_encode(node, 0, TREE_FANOUT, C, C + C / 2, kids, 2);
		raw.info.size = raw.info.stored_size = len;
		store_hash_buf(node, len, &t);
		CHECK_EQ(store_put_raw(s, &t, &raw), bad ? -EBADMSG : 0);
		CHECK_EQ(store_has(s, &t), !bad);
	}
	CHECK(strstr(store_last_error(), "does not fit") != NULL);
	store_free(s);
}

static void test_parsers_hostile(void)
{
	struct store_commit c = { .time = 42, .host = "host", .message = "msg" };
	struct store_hash a;
	store_hash_buf("a", 1, &a);
	c.parents[0] = a;
	c.n_parents = 1;
	CHECK(!store_commit_add_root(&c, "disk0", STORE_TREE, &a));
	void *enc;
	size_t len;
	CHECK(!store_commit_encode(&c, &enc, &len));
	uint8_t kids[4 * 32], tree[TREE_HDR + sizeof(kids)];
	test_fill_random(kids, sizeof(kids));
	size_t tlen = tree_node_encode(tree, 1, 512, 65536, 3ull * 65536 * 512 + 7, kids, 4);
	int accepted = 0, roundtrip_bad = 0;
	uint8_t buf[512];
	for (int i = 0; i < 20000; i++) {
		bool is_commit = i & 1;
		size_t n = is_commit ? len : tlen;
		memcpy(buf, is_commit ? enc : (void *)tree, n);
		int flips = 1 + (int)(test_rnd() % 4);
		for (int f = 0; f < flips; f++)
			buf[test_rnd() % n] ^= (uint8_t)(1u << (test_rnd() % 8));
		if (test_rnd() % 8 == 0)
			n = test_rnd() % n;
		if (is_commit) {
			struct store_commit *d;
			if (store_commit_decode(buf, n, &d) == 0) {
				accepted++;
				void *re;
				size_t rl;
				if (store_commit_encode(d, &re, &rl) || rl != n || memcmp(re, buf, n))
					roundtrip_bad++;
				else
					free(re);
				store_commit_free(d);
			}
		} else {
			struct tree_node t;
			if (tree_node_parse(buf, n, &t) == 0) {
				accepted++;
				uint8_t re[sizeof(tree)];
				size_t rl = tree_node_encode(re, t.level, t.fanout, t.chunk_size, t.size,
							     t.children, t.count);
				if (rl != n || memcmp(re, buf, n))
					roundtrip_bad++;
			}
		}
	}
	CHECK_EQ(roundtrip_bad, 0);
	CHECK(accepted > 0);      /* flips inside hashes and text are still valid */
	for (int i = 0; i < 5000; i++) {
		size_t n = test_rnd() % sizeof(buf);
		test_fill_random(buf, n);
		if (n >= 4 && i % 2)
			memcpy(buf, i % 4 == 1 ? "RCMT" : "RTRE", 4);
		struct store_commit *d;
		struct tree_node t;
		if (!store_commit_decode(buf, n, &d))
			store_commit_free(d);
		(void)tree_node_parse(buf, n, &t);
	}
	free(enc);
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	TEST(test_hash_hex);
	TEST(test_is_zero);
	TEST(test_put_get);
	TEST(test_corruption);
	TEST(test_tree_encoding);
	TEST(test_tree_builder);
	TEST(test_tree_rejects_missing_children);
	TEST(test_tree_threads);
	TEST(test_commit_encoding);
	TEST(test_commit_store);
	TEST(test_parsers_hostile);
	TEST(test_put_raw_tree_fit);
	TEST(test_refs);
	TEST(test_gc);
	TEST(test_verify);
	TEST(test_import_export);
	TEST(test_similar);
	TEST(test_similar_stored);
	TEST(test_prefix_after_failure);
	TEST(test_encode_like);
	TEST(test_bad_databases);
	TEST(test_lock_timeout);
	TEST(test_deferred_checkpoint);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd))
		printf("  could not remove %s\n", tmpdir);
	TEST_EXIT();
}
