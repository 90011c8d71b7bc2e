/* The sync frame codec (proto.h): frame headers with size limits checked
 * before allocating, payload readers/writers, OBJ payloads, ref-name rules. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "sync/proto.h"

int sync_frame_header(const uint8_t hdr[SYNC_HDR], uint8_t *type, uint32_t *len)
{
	if (hdr[1] || hdr[2] || hdr[3] || hdr[0] == 0 || hdr[0] > SYNC_MSG_MAX)
		return -EPROTO;
	uint32_t n = (uint32_t)hdr[4] | (uint32_t)hdr[5] << 8 | (uint32_t)hdr[6] << 16 |
		     (uint32_t)hdr[7] << 24;
	*type = hdr[0];
	*len = n;
	return n > SYNC_FRAME_MAX ? -EMSGSIZE : 0;
}

static int read_full(struct sync_io *io, void *buf, size_t len, bool start)
{
	uint8_t *p = buf;
	size_t got = 0;
	while (got < len) {
		ssize_t n = io->read(io->arg, p + got, len - got);
		if (n < 0) {
			snprintf(io->err, sizeof(io->err), "connection failed while reading: %s",
				 strerror((int)-n));
			return (int)n;
		}
		if (n == 0) {
			snprintf(io->err, sizeof(io->err), "%s",
				 start && got == 0 ? "connection closed by the other side"
						   : "connection closed in the middle of a message");
			return -EPIPE;
		}
		got += (size_t)n;
	}
	io->bytes_in += len;
	return 0;
}

int sync_frame_read(struct sync_io *io, struct sync_frame *f)
{
	uint8_t hdr[SYNC_HDR];
	memset(f, 0, sizeof(*f));
	int rc = read_full(io, hdr, sizeof(hdr), true);
	if (rc < 0)
		return rc;
	rc = sync_frame_header(hdr, &f->type, &f->len);
	if (rc == -EMSGSIZE) {
		snprintf(io->err, sizeof(io->err),
			 "the other side sent a frame of %u bytes (the limit is %u): refused",
			 f->len, SYNC_FRAME_MAX);
		return rc;
	}
	if (rc < 0) {
		snprintf(io->err, sizeof(io->err),
			 "the other side sent a malformed frame header (type %u): not a roam sync peer?",
			 hdr[0]);
		return rc;
	}
	f->data = malloc((size_t)f->len + 1);
	if (!f->data) {
		snprintf(io->err, sizeof(io->err), "out of memory");
		return -ENOMEM;
	}
	rc = read_full(io, f->data, f->len, false);
	if (rc < 0) {
		sync_frame_release(f);
		return rc;
	}
	f->data[f->len] = 0;
	return 0;
}

void sync_frame_release(struct sync_frame *f)
{
	free(f->data);
	f->data = NULL;
	f->len = 0;
}

ssize_t sync_fd_read(int fd, void *buf, size_t len)
{
	for (;;) {
		ssize_t n = read(fd, buf, len);
		if (n >= 0 || errno != EINTR)
			return n < 0 ? -errno : n;
	}
}

int sync_fd_write(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_all(struct sync_io *io, const void *p, size_t len)
{
	if (!len)
		return 0;
	int rc = io->write(io->arg, p, len);
	if (rc < 0) {
		snprintf(io->err, sizeof(io->err), "connection failed while writing: %s",
			 rc == -EPIPE ? "the other side went away" : strerror(-rc));
		return rc;
	}
	io->bytes_out += len;
	return 0;
}

int sync_frame_write2(struct sync_io *io, uint8_t type, const void *a, size_t alen,
		      const void *b, size_t blen)
{
	size_t len = alen + blen;
	if (len > SYNC_FRAME_MAX) {
		snprintf(io->err, sizeof(io->err), "message of %zu bytes is over the frame limit", len);
		return -EMSGSIZE;
	}
	uint8_t hdr[SYNC_HDR] = { type, 0, 0, 0, (uint8_t)len, (uint8_t)(len >> 8),
				  (uint8_t)(len >> 16), (uint8_t)(len >> 24) };
	int rc = write_all(io, hdr, sizeof(hdr));
	if (!rc)
		rc = write_all(io, a, alen);
	if (!rc)
		rc = write_all(io, b, blen);
	return rc;
}

int sync_frame_write(struct sync_io *io, uint8_t type, const void *payload, size_t len)
{
	return sync_frame_write2(io, type, payload, len, NULL, 0);
}

int sync_send_error(struct sync_io *io, int err, const char *fmt, ...)
{
	char msg[SYNC_ERRMSG_MAX + 1];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	uint8_t code[4] = { (uint8_t)err, (uint8_t)(err >> 8), (uint8_t)(err >> 16),
			    (uint8_t)(err >> 24) };
	return sync_frame_write2(io, SYNC_ERROR, code, 4, msg, strlen(msg));
}

void sync_rd_init(struct sync_rd *r, const void *p, size_t len)
{
	r->p = p;
	r->len = len;
	r->off = 0;
	r->bad = false;
}

const uint8_t *sync_rd_bytes(struct sync_rd *r, size_t n)
{
	if (r->bad || n > r->len - r->off) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p + r->off;
	r->off += n;
	return p;
}

static uint64_t rd_le(struct sync_rd *r, size_t n)
{
	const uint8_t *p = sync_rd_bytes(r, n);
	uint64_t v = 0;
	for (size_t i = 0; p && i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

uint8_t sync_rd_u8(struct sync_rd *r) { return (uint8_t)rd_le(r, 1); }
uint16_t sync_rd_u16(struct sync_rd *r) { return (uint16_t)rd_le(r, 2); }
uint32_t sync_rd_u32(struct sync_rd *r) { return (uint32_t)rd_le(r, 4); }
uint64_t sync_rd_u64(struct sync_rd *r) { return rd_le(r, 8); }

int sync_rd_refname(struct sync_rd *r, char out[STORE_REF_MAX + 1])
{
	uint16_t n = sync_rd_u16(r);
	if (r->bad || n == 0 || n > STORE_REF_MAX) {
		r->bad = true;
		return -EBADMSG;
	}
	const uint8_t *p = sync_rd_bytes(r, n);
	if (!p)
		return -EBADMSG;
	memcpy(out, p, n);
	out[n] = 0;
	if (memchr(out, 0, n) || !store_ref_valid(out))
		return -EINVAL;
	return 0;
}

static void wb_grow(struct sync_wb *w, size_t n)
{
	if (w->bad)
		return;
	if (n > SIZE_MAX / 2 - w->len) {
		w->bad = true;
		return;
	}
	if (w->len + n <= w->cap)
		return;
	size_t cap = w->cap ? w->cap : 256;
	while (cap < w->len + n)
		cap *= 2;
	uint8_t *p = realloc(w->p, cap);
	if (!p) {
		w->bad = true;
		return;
	}
	w->p = p;
	w->cap = cap;
}

void sync_wb_bytes(struct sync_wb *w, const void *p, size_t n)
{
	wb_grow(w, n);
	if (w->bad || !n)
		return;
	memcpy(w->p + w->len, p, n);
	w->len += n;
}

static void wb_le(struct sync_wb *w, uint64_t v, size_t n)
{
	uint8_t b[8];
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	sync_wb_bytes(w, b, n);
}

void sync_wb_u8(struct sync_wb *w, uint8_t v) { wb_le(w, v, 1); }
void sync_wb_u16(struct sync_wb *w, uint16_t v) { wb_le(w, v, 2); }
void sync_wb_u32(struct sync_wb *w, uint32_t v) { wb_le(w, v, 4); }
void sync_wb_u64(struct sync_wb *w, uint64_t v) { wb_le(w, v, 8); }

void sync_wb_free(struct sync_wb *w)
{
	free(w->p);
	memset(w, 0, sizeof(*w));
}

int sync_obj_parse(const void *payload, size_t len, struct sync_obj *ret)
{
	struct sync_rd r;
	sync_rd_init(&r, payload, len);
	const uint8_t *h = sync_rd_bytes(&r, STORE_HASH_LEN);
	uint8_t kind = sync_rd_u8(&r), codec = sync_rd_u8(&r);
	uint16_t pad = sync_rd_u16(&r);
	uint64_t size = sync_rd_u64(&r);
	if (r.bad || pad || kind < STORE_BLOB || kind > STORE_COMMIT || codec > STORE_CODEC_ZSTD)
		return -EBADMSG;
	memcpy(ret->hash.b, h, STORE_HASH_LEN);
	if (store_hash_is_zero(&ret->hash))
		return -EBADMSG;
	ret->kind = (enum store_kind)kind;
	ret->codec = (enum store_codec)codec;
	ret->size = size;
	ret->stored = (const uint8_t *)payload + SYNC_OBJ_HDR;
	ret->stored_len = len - SYNC_OBJ_HDR;
	if (codec == STORE_CODEC_RAW && size != ret->stored_len)
		return -EBADMSG;
	return 0;
}

void sync_obj_header(uint8_t out[SYNC_OBJ_HDR], const struct store_hash *h, enum store_kind kind,
		     enum store_codec codec, uint64_t size)
{
	memcpy(out, h->b, STORE_HASH_LEN);
	out[32] = (uint8_t)kind;
	out[33] = (uint8_t)codec;
	out[34] = out[35] = 0;
	for (int i = 0; i < 8; i++)
		out[36 + i] = (uint8_t)(size >> (8 * i));
}

bool sync_vm_name_valid(const char *vm)
{
	size_t n = strlen(vm);
	if (n == 0 || n > 64 || vm[0] == '.' || vm[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = vm[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

bool sync_ref_allowed(const char *vm, const char *name)
{
	char prefix[80];
	if (!sync_vm_name_valid(vm) || !store_ref_valid(name))
		return false;
	int n = snprintf(prefix, sizeof(prefix), "vms/%s/", vm);
	if (strncmp(name, prefix, (size_t)n) != 0)
		return false;
	const char *rest = name + n;
	if (!strcmp(rest, "head") || !strcmp(rest, "lease"))
		return true;
	const char *leaf = NULL;
	if (!strncmp(rest, "checkpoints/", 12))
		leaf = rest + 12;
	else if (!strncmp(rest, "replaced/", 9))
		leaf = rest + 9;
	return leaf && *leaf && !strchr(leaf, '/');
}
