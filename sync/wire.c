/* The sync wire codec (wire.h): the streaming zstd sender and receiver of
 * ZDATA frames, record framing inside the stream, and basis deltas (zstd
 * with the base object as prefix). Everything decoded is bounded: the
 * window (ZSTD_d_windowLogMax), every record's length and every delta's
 * content size (SYNC_OBJ_MAX). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include "sync/objs.h"
#include "sync/sync.h"
#include "sync/wire.h"

int sync_wire_auto_level(uint64_t raw_bytes)
{
	if (raw_bytes > SYNC_WIRE_STORED_ABOVE && raw_bytes != UINT64_MAX)
		return 0;
	if (raw_bytes <= (4u << 20))
		return 19;
	if (raw_bytes <= (32u << 20))
		return 12;
	if (raw_bytes <= (96u << 20))
		return 6;
	return 1;
}

int sync_wire_setting(int opt, int *ret_level)
{
	*ret_level = 0;
	if (opt == SYNC_WIRE_STORED)
		return 1;
	if (opt >= 1 && opt <= ZSTD_maxCLevel()) {
		*ret_level = opt;
		return SYNC_VERSION;
	}
	const char *env = getenv("ROAM_SYNC_WIRE");
	if (env && !strcmp(env, "stored"))
		return 1;
	if (env && *env) {
		char *end;
		long v = strtol(env, &end, 10);
		if (!*end && v >= 1 && v <= ZSTD_maxCLevel())
			*ret_level = (int)v;
	}
	return SYNC_VERSION;
}

/* ---- sender ------------------------------------------------------------- */

struct sync_wenc {
	struct sync_io *io;
	ZSTD_CCtx *stream, *one;     /* the session stream; single frames (deltas, probes) */
	int level;
	bool started;                /* records went into the current frame */
	uint8_t *out;                /* pending ZDATA payload */
	size_t out_len;
	uint8_t *tmp, *tmp2;         /* delta frame and probe buffers */
	size_t tmp_cap;
	struct sync_wire_stats st;
};

int sync_wenc_new(struct sync_io *io, int level, struct sync_wenc **ret)
{
	if (level < 1 || level > ZSTD_maxCLevel())
		return -EINVAL;
	struct sync_wenc *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->io = io;
	e->level = level;
	e->stream = ZSTD_createCCtx();
	e->one = ZSTD_createCCtx();
	e->out = malloc(SYNC_WIRE_FRAME);
	if (!e->stream || !e->one || !e->out) {
		sync_wenc_free(e);
		return -ENOMEM;
	}
	size_t r = ZSTD_CCtx_setParameter(e->stream, ZSTD_c_compressionLevel, level);
	if (!ZSTD_isError(r))
		r = ZSTD_CCtx_setParameter(e->stream, ZSTD_c_windowLog, SYNC_WIRE_WINDOW_LOG);
	/* long distance matching pays at the levels chosen for small and
	 * medium transfers; at the low levels of big ones it costs ~40% more
	 * CPU for <1% of bytes */
	if (!ZSTD_isError(r))
		r = ZSTD_CCtx_setParameter(e->stream, ZSTD_c_enableLongDistanceMatching,
					   level >= SYNC_WIRE_LDM_LEVEL);
	if (!ZSTD_isError(r))
		r = ZSTD_CCtx_setParameter(e->stream, ZSTD_c_checksumFlag, 0);
	if (ZSTD_isError(r)) {
		sync_wenc_free(e);
		return -EINVAL;
	}
	/* big transfers: compress in a worker thread while this one reads
	 * the store and writes the channel (ignored by a single-threaded zstd) */
	if (level < SYNC_WIRE_LDM_LEVEL)
		(void)ZSTD_CCtx_setParameter(e->stream, ZSTD_c_nbWorkers, 1);
	*ret = e;
	return 0;
}

void sync_wenc_free(struct sync_wenc *e)
{
	if (!e)
		return;
	ZSTD_freeCCtx(e->stream);
	ZSTD_freeCCtx(e->one);
	free(e->out);
	free(e->tmp);
	free(e->tmp2);
	free(e);
}

static int emit(struct sync_wenc *e)
{
	if (!e->out_len)
		return 0;
	int rc = sync_frame_write(e->io, SYNC_ZDATA, e->out, e->out_len);
	e->st.wire_bytes += e->out_len;
	e->out_len = 0;
	return rc;
}

static int feed(struct sync_wenc *e, const void *p, size_t n, ZSTD_EndDirective mode)
{
	ZSTD_inBuffer in = { p, n, 0 };
	for (;;) {
		ZSTD_outBuffer ob = { e->out + e->out_len, SYNC_WIRE_FRAME - e->out_len, 0 };
		size_t r = ZSTD_compressStream2(e->stream, &ob, &in, mode);
		if (ZSTD_isError(r)) {
			snprintf(e->io->err, sizeof(e->io->err), "wire compression failed: %s",
				 ZSTD_getErrorName(r));
			return -EIO;
		}
		e->out_len += ob.pos;
		if (e->out_len == SYNC_WIRE_FRAME) {
			int rc = emit(e);
			if (rc < 0)
				return rc;
		}
		if (mode == ZSTD_e_continue ? in.pos == in.size : r == 0)
			break;
	}
	return mode == ZSTD_e_continue ? 0 : emit(e);
}

/* A record: full (n == 0), form 1 (one base) or form 2 (several). */
static int put_record(struct sync_wenc *e, enum store_kind kind, const void *body, size_t len,
		      const struct store_hash *bases, unsigned n)
{
	if (len > SYNC_OBJ_MAX || n > SYNC_WIRE_BASES_MAX)
		return -E2BIG;
	uint8_t h[SYNC_WIRE_HDR_MAX] = { (uint8_t)kind, (uint8_t)(n > 1 ? 2 : n), (uint8_t)len,
		(uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24) };
	size_t hl = SYNC_WIRE_REC_HDR;
	if (n > 1)
		h[hl++] = (uint8_t)n;
	for (unsigned i = 0; i < n; i++, hl += STORE_HASH_LEN)
		memcpy(h + hl, bases[i].b, STORE_HASH_LEN);
	e->started = true;
	int rc = feed(e, h, hl, ZSTD_e_continue);
	if (!rc)
		rc = feed(e, body, len, ZSTD_e_continue);
	e->st.records++;
	e->st.raw_bytes += len;
	return rc;
}

int sync_wenc_obj(struct sync_wenc *e, enum store_kind kind, const void *data, size_t len)
{
	return put_record(e, kind, data, len, NULL, 0);
}

int sync_wenc_obj_basis(struct sync_wenc *e, enum store_kind kind, const void *data, size_t len,
			const struct store_hash *base_hash, const void *base, size_t base_len)
{
	return sync_wenc_obj_bases(e, kind, data, len, base_hash, 1, base, base_len);
}

int sync_wenc_obj_bases(struct sync_wenc *e, enum store_kind kind, const void *data, size_t len,
			const struct store_hash *bases, unsigned nb, const void *base,
			size_t base_len)
{
	if (len > SYNC_OBJ_MAX || base_len > (nb > 1 ? SYNC_WIRE_BASES_BYTES : SYNC_OBJ_MAX) ||
	    kind == STORE_COMMIT || !len || !nb || nb > SYNC_WIRE_BASES_MAX ||
	    (nb > 1 && kind != STORE_BLOB))
		return sync_wenc_obj(e, kind, data, len) < 0 ? -EIO : 0;
	size_t cap = ZSTD_compressBound(len);
	if (cap > e->tmp_cap) {
		uint8_t *a = realloc(e->tmp, cap), *b = a ? realloc(e->tmp2, cap) : NULL;
		if (a)
			e->tmp = a;
		if (b)
			e->tmp2 = b;
		if (!a || !b)
			return -ENOMEM;
		e->tmp_cap = cap;
	}
	/* what the object costs alone at level 1, the yardstick for the delta */
	size_t plain = ZSTD_compressCCtx(e->one, e->tmp2, cap, data, len, 1);
	int lvl = e->level < SYNC_WIRE_DELTA_LEVEL_MAX ? e->level : SYNC_WIRE_DELTA_LEVEL_MAX;
	ZSTD_CCtx_reset(e->one, ZSTD_reset_session_and_parameters);
	size_t r = ZSTD_CCtx_setParameter(e->one, ZSTD_c_compressionLevel, lvl);
	if (!ZSTD_isError(r))
		r = ZSTD_CCtx_setParameter(e->one, ZSTD_c_windowLog, 22);
	/* long distance matching finds the base's long runs that the level's
	 * own match finder misses in repetitive data */
	if (!ZSTD_isError(r))
		r = ZSTD_CCtx_setParameter(e->one, ZSTD_c_enableLongDistanceMatching, 1);
	if (!ZSTD_isError(r))
		r = ZSTD_CCtx_refPrefix(e->one, base, base_len);
	size_t d = ZSTD_isError(r) ? r : ZSTD_compress2(e->one, e->tmp, cap, data, len);
	ZSTD_CCtx_reset(e->one, ZSTD_reset_session_and_parameters);
	if (ZSTD_isError(plain) || ZSTD_isError(d) || d * 10 >= plain * 6)
		return put_record(e, kind, data, len, NULL, 0);
	int rc = put_record(e, kind, e->tmp, d, bases, nb);
	e->st.deltas++;
	return rc < 0 ? rc : 1;
}

int sync_wenc_set_level(struct sync_wenc *e, int level)
{
	if (level < 1 || level > ZSTD_maxCLevel())
		return -EINVAL;
	if (level == e->level)
		return 0;
	if (e->started) {
		int rc = feed(e, NULL, 0, ZSTD_e_end);
		if (rc < 0)
			return rc;
		e->started = false;
	}
	if (ZSTD_isError(ZSTD_CCtx_setParameter(e->stream, ZSTD_c_compressionLevel, level)))
		return -EINVAL;
	e->level = level;
	return 0;
}

int sync_wenc_level(const struct sync_wenc *e)
{
	return e->level;
}

int sync_wenc_flush(struct sync_wenc *e)
{
	return feed(e, NULL, 0, ZSTD_e_flush);
}

void sync_wenc_stats(const struct sync_wenc *e, struct sync_wire_stats *ret)
{
	*ret = e->st;
}

/* ---- receiver ------------------------------------------------------------ */

#define OBUF (128u << 10)

struct sync_wdec {
	ZSTD_DCtx *stream, *one;
	uint8_t *in;                 /* current ZDATA payload (owned) */
	size_t in_len, in_pos;
	uint8_t *obuf;               /* decompressed, not yet consumed */
	size_t o_len, o_pos;
	bool more;                   /* the last call filled obuf: zstd may hold more */
	uint8_t hdr[SYNC_WIRE_HDR_MAX];
	size_t hdr_got, hdr_need;
	uint8_t *body;
	size_t body_len, body_got, body_cap;
	bool in_body;
	bool bad;
	char err[200];
};

int sync_wdec_new(struct sync_wdec **ret)
{
	struct sync_wdec *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->stream = ZSTD_createDCtx();
	d->one = ZSTD_createDCtx();
	d->obuf = malloc(OBUF);
	if (!d->stream || !d->one || !d->obuf ||
	    ZSTD_isError(ZSTD_DCtx_setParameter(d->stream, ZSTD_d_windowLogMax, SYNC_WIRE_WINDOW_LOG))) {
		sync_wdec_free(d);
		return -ENOMEM;
	}
	d->hdr_need = SYNC_WIRE_REC_HDR;
	*ret = d;
	return 0;
}

void sync_wdec_free(struct sync_wdec *d)
{
	if (!d)
		return;
	ZSTD_freeDCtx(d->stream);
	ZSTD_freeDCtx(d->one);
	free(d->in);
	free(d->obuf);
	free(d->body);
	free(d);
}

void sync_wdec_input(struct sync_wdec *d, struct sync_frame *f)
{
	free(d->in);
	d->in = f->data;
	d->in_len = f->len;
	d->in_pos = 0;
	f->data = NULL;
	f->len = 0;
}

static int bad(struct sync_wdec *d, const char *fmt, unsigned long long v)
{
	snprintf(d->err, sizeof(d->err), fmt, v);
	d->bad = true;
	return -EBADMSG;
}

/* Checks a complete record header; sets up the body. */
static int start_body(struct sync_wdec *d)
{
	const uint8_t *h = d->hdr;
	size_t len = (size_t)h[2] | (size_t)h[3] << 8 | (size_t)h[4] << 16 | (size_t)h[5] << 24;
	if (h[0] < STORE_BLOB || h[0] > STORE_COMMIT || h[1] > 2 || (h[1] == 2 && h[0] != STORE_BLOB))
		return bad(d, "the wire stream holds a malformed record (kind/form %llu)",
			   (unsigned long long)(h[0] | h[1] << 8));
	if (len > SYNC_OBJ_MAX)
		return bad(d, "the wire stream holds an object of %llu bytes, over the limit: refused",
			   (unsigned long long)len);
	if (h[1] == 1 && h[0] == STORE_COMMIT)
		return bad(d, "the wire stream holds a delta for a commit%llu", 0);
	if (h[1] == 1 && d->hdr_need == SYNC_WIRE_REC_HDR) {
		d->hdr_need = SYNC_WIRE_DELTA_HDR;
		return 0;
	}
	if (h[1] == 2 && d->hdr_need == SYNC_WIRE_REC_HDR) {
		d->hdr_need = SYNC_WIRE_REC_HDR + 1;   /* the count of bases */
		return 0;
	}
	if (h[1] == 2 && d->hdr_need == SYNC_WIRE_REC_HDR + 1) {
		unsigned n = h[SYNC_WIRE_REC_HDR];
		if (n < 2 || n > SYNC_WIRE_BASES_MAX)
			return bad(d, "the wire stream holds a delta with %llu bases: refused",
				   (unsigned long long)n);
		d->hdr_need = SYNC_WIRE_REC_HDR + 1 + n * STORE_HASH_LEN;
		return 0;
	}
	if (len > d->body_cap) {
		uint8_t *b = realloc(d->body, len);
		if (!b)
			return -ENOMEM;
		d->body = b;
		d->body_cap = len;
	}
	d->body_len = len;
	d->body_got = 0;
	d->in_body = true;
	return 0;
}

int sync_wdec_next(struct sync_wdec *d, struct sync_wrec *rec)
{
	if (d->bad)
		return -EBADMSG;
	for (;;) {
		/* consume decompressed bytes into the record being received */
		while (d->o_pos < d->o_len || (d->in_body && d->body_got == d->body_len)) {
			if (d->in_body) {
				size_t n = d->o_len - d->o_pos;
				if (n > d->body_len - d->body_got)
					n = d->body_len - d->body_got;
				if (n)
					memcpy(d->body + d->body_got, d->obuf + d->o_pos, n);
				d->o_pos += n;
				d->body_got += n;
				if (d->body_got < d->body_len)
					continue;
				rec->kind = (enum store_kind)d->hdr[0];
				rec->delta = d->hdr[1] != 0;
				rec->nbases = d->hdr[1] == 2 ? d->hdr[SYNC_WIRE_REC_HDR] : d->hdr[1];
				const uint8_t *bh = d->hdr + SYNC_WIRE_REC_HDR + (d->hdr[1] == 2);
				for (unsigned i = 0; i < rec->nbases; i++)
					memcpy(rec->base[i].b, bh + i * STORE_HASH_LEN, STORE_HASH_LEN);
				rec->body = d->body ? d->body : (const uint8_t *)"";
				rec->len = d->body_len;
				d->in_body = false;
				d->hdr_got = 0;
				d->hdr_need = SYNC_WIRE_REC_HDR;
				return 1;
			}
			size_t n = d->o_len - d->o_pos;
			if (n > d->hdr_need - d->hdr_got)
				n = d->hdr_need - d->hdr_got;
			memcpy(d->hdr + d->hdr_got, d->obuf + d->o_pos, n);
			d->o_pos += n;
			d->hdr_got += n;
			if (d->hdr_got == d->hdr_need) {
				int rc = start_body(d);
				if (rc < 0)
					return rc;
			}
		}
		if (d->in_pos == d->in_len && !d->more)
			return 0;
		ZSTD_inBuffer in = { d->in, d->in_len, d->in_pos };
		ZSTD_outBuffer ob = { d->obuf, OBUF, 0 };
		size_t r = ZSTD_decompressStream(d->stream, &ob, &in);
		if (ZSTD_isError(r)) {
			snprintf(d->err, sizeof(d->err), "the wire stream does not decode: %s",
				 ZSTD_getErrorName(r));
			d->bad = true;
			return -EBADMSG;
		}
		d->in_pos = in.pos;
		d->o_len = ob.pos;
		d->o_pos = 0;
		d->more = ob.pos == OBUF;
	}
}

bool sync_wdec_idle(const struct sync_wdec *d)
{
	return !d->bad && !d->in_body && d->hdr_got == 0 && d->o_pos == d->o_len &&
	       d->in_pos == d->in_len && !d->more;
}

const char *sync_wdec_error(const struct sync_wdec *d)
{
	return d->err[0] ? d->err : "the wire stream is malformed";
}

int sync_wdec_undelta(struct sync_wdec *d, const void *base, size_t base_len,
		      const void *frame, size_t frame_len, void **ret, size_t *ret_len)
{
	unsigned long long n = ZSTD_getFrameContentSize(frame, frame_len);
	if (n == ZSTD_CONTENTSIZE_UNKNOWN || n == ZSTD_CONTENTSIZE_ERROR || n > SYNC_OBJ_MAX ||
	    ZSTD_findFrameCompressedSize(frame, frame_len) != frame_len)
		return bad(d, "a delta in the wire stream is malformed (%llu)", n);
	void *out = malloc(n ? n : 1);
	if (!out)
		return -ENOMEM;
	ZSTD_DCtx_reset(d->one, ZSTD_reset_session_and_parameters);
	size_t r = ZSTD_DCtx_setParameter(d->one, ZSTD_d_windowLogMax, SYNC_WIRE_WINDOW_LOG);
	if (!ZSTD_isError(r))
		r = ZSTD_DCtx_refPrefix(d->one, base, base_len);
	if (!ZSTD_isError(r))
		r = ZSTD_decompressDCtx(d->one, out, n, frame, frame_len);
	ZSTD_DCtx_reset(d->one, ZSTD_reset_session_and_parameters);
	if (ZSTD_isError(r) || r != n) {
		free(out);
		snprintf(d->err, sizeof(d->err), "a delta in the wire stream does not decode against "
			 "its base%s", "");
		return -EBADMSG;
	}
	*ret = out;
	*ret_len = (size_t)n;
	return 0;
}
