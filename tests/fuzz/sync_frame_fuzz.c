/* libFuzzer harness for the sync frame and message parsers: the input is a
 * byte stream from a hostile peer, read frame by frame (header limits
 * first), each payload parsed as every message type the client and server
 * accept (OBJ, ref lists, UPDATE entries, PLAN, object decode and
 * children); ZDATA payloads go through the wire-stream decoder (records,
 * limits) and every delta record is decoded against a fixed base. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "sync/objs.h"
#include "sync/proto.h"
#include "sync/wire.h"

struct src { const uint8_t *p; size_t len, off; };

static ssize_t src_read(void *arg, void *buf, size_t len)
{
	struct src *s = arg;
	size_t n = s->len - s->off < len ? s->len - s->off : len;
	memcpy(buf, s->p + s->off, n);
	s->off += n;
	return (ssize_t)n;
}

static int sink_write(void *arg, const void *buf, size_t len)
{
	(void)arg; (void)buf; (void)len;
	return 0;
}

static int count_child(void *arg, const struct store_hash *h, enum store_kind kind)
{
	(void)h; (void)kind;
	++*(size_t *)arg;
	return 0;
}

static void parse_payload(const uint8_t *p, size_t len)
{
	struct sync_obj o;
	if (sync_obj_parse(p, len, &o) == 0) {
		void *dec;
		if (sync_obj_decode(&o.hash, o.codec, o.size, o.stored, o.stored_len, &dec) == 0) {
			size_t n = 0;
			sync_obj_children(o.kind, dec, o.size, count_child, &n);
			free(dec);
		}
	}
	/* as a ref list: u8 running, u32 n, { u16 len, name, hash } */
	struct sync_rd r;
	char name[STORE_REF_MAX + 1];
	sync_rd_init(&r, p, len);
	sync_rd_u8(&r);
	uint32_t n = sync_rd_u32(&r);
	for (uint32_t i = 0; i < n && !r.bad; i++) {
		if (sync_rd_refname(&r, name) == 0)
			(void)sync_ref_allowed("vm", name);
		sync_rd_bytes(&r, STORE_HASH_LEN);
	}
	/* as an UPDATE: u8 flags, u32 n, { name, old, new } */
	sync_rd_init(&r, p, len);
	sync_rd_u8(&r);
	n = sync_rd_u32(&r);
	for (uint32_t i = 0; i < n && !r.bad; i++) {
		sync_rd_refname(&r, name);
		sync_rd_bytes(&r, 2 * STORE_HASH_LEN);
	}
	/* as a PLAN: u8 level, u64 estimate, old, new */
	sync_rd_init(&r, p, len);
	sync_rd_u8(&r);
	sync_rd_u64(&r);
	sync_rd_bytes(&r, 2 * STORE_HASH_LEN);
	/* tree and commit children straight from the payload */
	size_t k = 0;
	sync_obj_children(STORE_TREE, p, len, count_child, &k);
	sync_obj_children(STORE_COMMIT, p, len, count_child, &k);
}

/* A ZDATA frame: into the stream decoder; drain every record. */
static int wire_payload(struct sync_wdec *d, struct sync_frame *f)
{
	static const uint8_t base[4096] = { 1, 2, 3, 4 };
	sync_wdec_input(d, f);
	for (;;) {
		struct sync_wrec r;
		int rc = sync_wdec_next(d, &r);
		if (rc <= 0)
			return rc;
		if (r.delta) {
			void *out;
			size_t n;
			if (sync_wdec_undelta(d, base, sizeof(base), r.body, r.len, &out, &n) == 0)
				free(out);
		} else if (r.kind == STORE_TREE || r.kind == STORE_COMMIT) {
			size_t k = 0;
			sync_obj_children(r.kind, r.body, r.len, count_child, &k);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct src s = { data, size, 0 };
	struct sync_io io = { .read = src_read, .write = sink_write, .arg = &s };
	struct sync_wdec *d = NULL;
	if (sync_wdec_new(&d) < 0)
		return 0;
	for (int i = 0; i < 64; i++) {
		struct sync_frame f;
		if (sync_frame_read(&io, &f) < 0)
			break;
		if (f.type == SYNC_ZDATA) {
			int rc = wire_payload(d, &f);
			sync_frame_release(&f);
			if (rc < 0)
				break;
			continue;
		}
		parse_payload(f.data, f.len);
		sync_frame_release(&f);
	}
	(void)sync_wdec_idle(d);
	sync_wdec_free(d);
	return 0;
}
