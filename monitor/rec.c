/* Little-endian state records (see rec.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "monitor/rec.h"

void rec_writer_init(struct rec_writer *w) { *w = (struct rec_writer){ 0 }; }

void rec_writer_free(struct rec_writer *w)
{
	free(w->buf);
	*w = (struct rec_writer){ 0 };
}

void rec_put_bytes(struct rec_writer *w, const void *p, size_t n)
{
	if (w->err)
		return;
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 256;
		while (cap < w->len + n)
			cap *= 2;
		uint8_t *b = realloc(w->buf, cap);
		if (!b) {
			w->err = -ENOMEM;
			return;
		}
		w->buf = b;
		w->cap = cap;
	}
	if (n)
		memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static void put_le(struct rec_writer *w, uint64_t v, int n)
{
	uint8_t b[8];
	for (int i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	rec_put_bytes(w, b, (size_t)n);
}

void rec_put_u8(struct rec_writer *w, uint8_t v) { put_le(w, v, 1); }
void rec_put_u16(struct rec_writer *w, uint16_t v) { put_le(w, v, 2); }
void rec_put_u32(struct rec_writer *w, uint32_t v) { put_le(w, v, 4); }
void rec_put_u64(struct rec_writer *w, uint64_t v) { put_le(w, v, 8); }

void rec_reader_init(struct rec_reader *r, const void *p, size_t len)
{
	*r = (struct rec_reader){ .p = p, .len = len };
}

void rec_fail(struct rec_reader *r)
{
	if (!r->err)
		r->err = -EINVAL;
}

void rec_get_bytes(struct rec_reader *r, void *p, size_t n)
{
	if (r->err || r->len - r->pos < n) {
		rec_fail(r);
		memset(p, 0, n);
		return;
	}
	memcpy(p, r->p + r->pos, n);
	r->pos += n;
}

static uint64_t get_le(struct rec_reader *r, int n)
{
	uint8_t b[8];
	rec_get_bytes(r, b, (size_t)n);
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

uint8_t rec_get_u8(struct rec_reader *r) { return (uint8_t)get_le(r, 1); }
uint16_t rec_get_u16(struct rec_reader *r) { return (uint16_t)get_le(r, 2); }
uint32_t rec_get_u32(struct rec_reader *r) { return (uint32_t)get_le(r, 4); }
uint64_t rec_get_u64(struct rec_reader *r) { return get_le(r, 8); }
