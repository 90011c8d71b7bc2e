/* Unit tests for sync/: frame headers and limits, payload readers, OBJ
 * payloads, ref-name rules, URLs, remotes file, leases, and a push/pull
 * round trip between two stores over the local transport. */
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

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/roam-sync-unit.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	TEST(frame_header_limits);
	TEST(frame_roundtrip);
	TEST(reader_bounds);
	TEST(obj_payload);
	TEST(ref_rules);
	TEST(urls);
	TEST(remotes_file);
	TEST(leases);
	if (getenv("ROAM") && access(getenv("ROAM"), X_OK) == 0)
		TEST(push_pull_local);
	else
		SKIP(push_pull_local, "$ROAM (the roam binary for the far side) not set");
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		printf("  could not remove %s\n", dir);
	TEST_EXIT();
}
