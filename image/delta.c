/* Delta blobs (format in store_int.h): decoding one against its bases, the
 * writer's check of the bases, encoding a new version of a chunk against its
 * previous one (incremental memory saves), and the similarity index that
 * import uses to pick bases among the chunks it stored before. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "image/store_int.h"

int store_delta_bases(const void *stored, size_t len, struct store_hash ret[STORE_DELTA_BASES])
{
	const uint8_t *p = stored;
	if (len < 1 || p[0] < 1 || p[0] > STORE_DELTA_BASES || len <= STORE_DELTA_HDR(p[0]))
		return -EBADMSG;
	for (unsigned i = 0; i < p[0]; i++)
		memcpy(ret[i].b, p + 1 + (size_t)i * STORE_HASH_LEN, STORE_HASH_LEN);
	return p[0];
}

bool store_delta_base_ok(enum store_kind kind, uint64_t size, enum store_codec codec)
{
	return kind == STORE_BLOB && size <= STORE_CHUNK_MAX &&
	       (codec == STORE_CODEC_RAW || codec == STORE_CODEC_ZSTD);
}

int store_delta_base_decode(struct store *s, const struct store_raw *b, void *out)
{
	if (b->info.codec == STORE_CODEC_ZSTD)
		return store_decompress(s, b->data, b->info.stored_size, out, b->info.size);
	if (b->info.stored_size != b->info.size)
		return -EBADMSG;
	memcpy(out, b->data, b->info.size);
	return 0;
}

static int bad_delta(const struct store_hash *h, const struct store_hash *base, const char *why)
{
	char hex[STORE_HASH_HEX], bhex[STORE_HASH_HEX];
	store_hex(h, hex);
	store_hex(base, bhex);
	return store_err(EBADMSG, "object %s is corrupt (its delta base %s %s); run 'roam verify'",
			 hex, bhex, why);
}

int store_delta_decode(struct store *s, const struct store_hash *h, const void *stored,
		       size_t stored_len, void *out, size_t size)
{
	struct store_hash base[STORE_DELTA_BASES];
	struct store_raw raw[STORE_DELTA_BASES] = { 0 };
	int n = store_delta_bases(stored, stored_len, base), got = 0, r = 0;
	if (n < 0) {
		char hex[STORE_HASH_HEX];
		store_hex(h, hex);
		return store_err(EBADMSG, "object %s is corrupt (a delta without bases); run "
				 "'roam verify'", hex);
	}
	/* Bases this thread decoded lately come from its cache (raw[i].data
	 * stays NULL for them); the others are read. */
	size_t plen = 0, len;
	for (; got < n && !r; got++) {
		if (store_base_cache_get(s, &base[got], &len)) {
			raw[got].info.size = len;
			plen += len;
			continue;
		}
		r = store_fetch_raw(s, &base[got], &raw[got]);
		if (r == -ENOENT)
			r = bad_delta(h, &base[got], "is missing");
		else if (!r && !store_delta_base_ok(raw[got].info.kind, raw[got].info.size,
						    raw[got].info.codec))
			r = bad_delta(h, &base[got], "is not a plain blob");
		else if (!r)
			plen += raw[got].info.size;
	}
	uint8_t *prefix = r ? NULL : malloc(plen ? plen : 1);
	if (!r && !prefix)
		r = store_err(ENOMEM, "out of memory");
	/* Cached ones first: storing the others in the cache may evict them.
	 * The bases are not re-hashed: the delta's own hash, checked by the
	 * caller, fails if one of them is not what it was made against. */
	size_t off = 0;
	for (int i = 0; i < n && !r; off += raw[i].info.size, i++) {
		const uint8_t *c = raw[i].data ? NULL : store_base_cache_get(s, &base[i], &len);
		if (c)
			memcpy(prefix + off, c, len);
	}
	off = 0;
	for (int i = 0; i < n && !r; off += raw[i].info.size, i++) {
		if (!raw[i].data)
			continue;
		r = store_delta_base_decode(s, &raw[i], prefix + off);
		if (r == -EBADMSG)
			r = bad_delta(h, &base[i], "does not decode");
		else if (!r)
			store_base_cache_put(s, &base[i], prefix + off, raw[i].info.size);
	}
	size_t hdr = STORE_DELTA_HDR(n);
	if (!r && (r = store_decompress_prefix(s, (const uint8_t *)stored + hdr, stored_len - hdr,
					       prefix, plen, out, size)) == -EBADMSG) {
		char hex[STORE_HASH_HEX];
		store_hex(h, hex);
		r = store_err(EBADMSG, "object %s is corrupt (its delta does not decode); run "
			      "'roam verify'", hex);
	}
	for (int i = 0; i < got; i++)
		store_raw_release(&raw[i]);
	free(prefix);
	return r;
}

int store_delta_check_locked(struct store *s, const void *stored, size_t len)
{
	struct store_hash base[STORE_DELTA_BASES];
	int n = store_delta_bases(stored, len, base);
	if (n < 0)
		return 0;
	for (int i = 0; i < n; i++) {
		sqlite3_stmt *st = s->st_stat;
		sqlite3_bind_blob(st, 1, base[i].b, STORE_HASH_LEN, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		bool ok = rc == SQLITE_ROW &&
			  store_delta_base_ok(sqlite3_column_int(st, 0),
					      (uint64_t)sqlite3_column_int64(st, 1),
					      sqlite3_column_int(st, 3));
		sqlite3_reset(st);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return store_sqlerr(s, rc, "looking up a delta base");
		if (!ok)
			return 0;
		int r = store_pend_locked(s, &base[i]);
		if (r)
			return r;
	}
	return 1;
}

/* ---- a new version of a chunk against its previous one ------------------- */

/* Appends base h's content (its row in raw, checked against h) to prefix:
 * 1, or 0 when it cannot serve as a base. */
static int load_base(struct store *s, const struct store_hash *h, const struct store_raw *raw,
		     size_t max, uint8_t *prefix, size_t *plen)
{
	if (!store_delta_base_ok(raw->info.kind, raw->info.size, raw->info.codec) ||
	    raw->info.size > max || store_decode_into(s, h, raw->info.codec, raw->info.size, raw->data,
						      raw->info.stored_size, prefix + *plen))
		return 0;
	*plen += raw->info.size;
	return 1;
}

/* The bases a new version of prev can be made against, their contents in
 * prefix: prev itself when it is plain, else the bases prev was made
 * against (a base is never a delta). prev's own content goes to old (len
 * bytes: the same chunk of an earlier save). Their count, 0 if none do. */
static int prev_bases(struct store *s, const struct store_hash *prev, size_t len,
		      struct store_hash base[STORE_DELTA_BASES], uint8_t *prefix, size_t *plen,
		      uint8_t *old)
{
	struct store_raw raw, b;
	*plen = 0;
	if (store_fetch_raw(s, prev, &raw))
		return 0;
	int n = 0;
	if (raw.info.size != len || raw.info.kind != STORE_BLOB) {
		/* not this chunk's previous version */
	} else if (raw.info.codec != STORE_CODEC_DELTA) {
		base[0] = *prev;
		n = load_base(s, prev, &raw, len, prefix, plen);
		if (n)
			memcpy(old, prefix, len);
	} else if ((n = store_delta_bases(raw.data, raw.info.stored_size, base)) > 0) {
		for (int i = 0; i < n; i++) {
			int ok = !store_fetch_raw(s, &base[i], &b) &&
				 load_base(s, &base[i], &b, len, prefix, plen);
			store_raw_release(&b);
			if (!ok)
				n = 0;
		}
		size_t hdr = STORE_DELTA_HDR(n);
		if (n && store_decompress_prefix(s, (uint8_t *)raw.data + hdr, raw.info.stored_size - hdr,
						 prefix, *plen, old, len))
			n = 0;
	}
	store_raw_release(&raw);
	return n < 0 ? 0 : n;
}

/* Whether at least a quarter of the 8-byte words of a and b are equal:
 * a delta then has a chance, and time is not spent on one otherwise. */
static bool alike(const uint8_t *a, const uint8_t *b, size_t len)
{
	size_t same = 0, n = len / 8;
	for (size_t i = 0; i < n; i++)
		same += !memcmp(a + 8 * i, b + 8 * i, 8);
	return n && same * 4 >= n;
}

size_t store_delta_encode(struct store *s, const void *data, size_t len, const void *prefix,
			  size_t plen, const struct store_hash *base, unsigned n, uint8_t *out, size_t cap)
{
	size_t hdr = STORE_DELTA_HDR(n), z;
	if (cap <= hdr || store_compress_prefix(s, data, len, prefix, plen, out + hdr, cap - hdr, &z))
		return 0;
	out[0] = (uint8_t)n;
	for (unsigned i = 0; i < n; i++)
		memcpy(out + 1 + (size_t)i * STORE_HASH_LEN, base[i].b, STORE_HASH_LEN);
	return hdr + z;
}

int store_blob_encode_like(struct store *s, const void *data, size_t len, const struct store_hash *h,
			   const struct store_hash *prev, struct store_blob *ret)
{
	struct store_hash base[STORE_DELTA_BASES];
	size_t plen = 0, n = 0;
	/* The bases' contents, then the previous version's. */
	uint8_t *prefix = store_hash_is_zero(prev) ? NULL : malloc((STORE_DELTA_BASES + 1) * len);
	uint8_t *old = prefix ? prefix + STORE_DELTA_BASES * len : NULL;
	int nb = prefix ? prev_bases(s, prev, len, base, prefix, &plen, old) : 0;
	uint8_t *out = nb && alike(data, old, len) ?
		       malloc(STORE_DELTA_HDR(nb) + store_compress_bound(len)) : NULL;
	/* The same rule as a full save's: a quarter of the chunk at most, or
	 * an eighth less than its plain encoding. */
	if (out)
		n = store_delta_encode(s, data, len, prefix, plen, base, (unsigned)nb, out, len / 4);
	int r = 0;
	if (!n) {
		r = store_blob_encode(s, data, len, h, ret);
		if (!r && out && ret->stored_len > len / 4 &&
		    (n = store_delta_encode(s, data, len, prefix, plen, base, (unsigned)nb, out,
					    ret->stored_len - ret->stored_len / 8)))
			store_blob_release(ret);
	}
	if (n) {
		*ret = (struct store_blob){ .h = *h, .size = len, .codec = STORE_CODEC_DELTA,
					    .stored = out, .stored_len = n, .buf = out, .data = data };
		out = NULL;
	}
	free(out);
	free(prefix);
	return r;
}

/* ---- similarity index ------------------------------------------------------ */

/* Gear rolling hash: each byte shifts the hash left by one, so a value
 * depends on the last 64 bytes only. An anchor is a position whose hash
 * has its top 9 bits clear: one per 512 bytes on average. */
#define ANCHOR_BITS 9
#define ANCHOR_SKIP 32    /* positions whose window starts before the chunk */

static uint64_t gear[256];
static pthread_once_t gear_once = PTHREAD_ONCE_INIT;

static void gear_init(void)
{
	uint64_t x = 0x524f414d;   /* splitmix64 */
	for (int i = 0; i < 256; i++) {
		uint64_t z = (x += 0x9e3779b97f4a7c15ull);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		gear[i] = z ^ (z >> 31);
	}
}

unsigned sim_anchors(const uint8_t *p, size_t len, uint64_t out[SIM_MAX_ANCHORS])
{
	pthread_once(&gear_once, gear_init);
	uint64_t h = 0;
	unsigned n = 0;
	for (size_t i = 0; i < len && n < SIM_MAX_ANCHORS; i++) {
		h = (h << 1) + gear[p[i]];
		if (i >= ANCHOR_SKIP && !(h >> (64 - ANCHOR_BITS)))
			out[n++] = h;
	}
	return n;
}

/* Open addressing: a slot holds 32 bits of the anchor (the others chose
 * the slot) and the entry + 1 of the first chunk that had it; entries keep
 * the chunk's index and hash. Full at 3/4: later chunks are then not
 * added. */
struct sim_index {
	pthread_mutex_t m;
	uint64_t *slot;           /* tag << 32 | (entry + 1) */
	uint64_t mask, used;
	struct sim_base *ent;
	size_t nent, cap;
};

struct sim_index *sim_index_new(uint64_t nchunks, uint32_t chunk_size)
{
	/* Room for every anchor of every chunk at most 3/4 full (up to 64 MiB
	 * of table). */
	uint64_t per = chunk_size >> ANCHOR_BITS, n = 1u << 12;
	uint64_t want = nchunks * (per < SIM_MAX_ANCHORS ? per : SIM_MAX_ANCHORS) / 3 * 4;
	while (n < want && n < (1u << 23))
		n <<= 1;
	struct sim_index *x = calloc(1, sizeof(*x));
	if (!x || !(x->slot = calloc(n, sizeof(*x->slot))) ||
	    !(x->ent = malloc((nchunks ? nchunks : 1) * sizeof(*x->ent)))) {
		if (x)
			free(x->slot);
		free(x);
		return NULL;
	}
	x->mask = n - 1;
	x->cap = nchunks;
	pthread_mutex_init(&x->m, NULL);
	return x;
}

void sim_index_free(struct sim_index *x)
{
	if (!x)
		return;
	pthread_mutex_destroy(&x->m);
	free(x->slot);
	free(x->ent);
	free(x);
}

/* The slot of anchor a: its own, or the empty one where it would go. */
static uint64_t *sim_slot(struct sim_index *x, uint64_t a)
{
	uint64_t tag = a >> 32;
	for (uint64_t i = a & x->mask;; i = (i + 1) & x->mask)
		if (!x->slot[i] || x->slot[i] >> 32 == tag)
			return &x->slot[i];
}

unsigned sim_find(struct sim_index *x, const uint64_t *a, unsigned n, uint64_t before,
		  struct sim_base ret[STORE_DELTA_BASES])
{
	uint64_t cand[SIM_MAX_ANCHORS];
	unsigned votes[SIM_MAX_ANCHORS], nc = 0, got = 0;
	pthread_mutex_lock(&x->m);
	for (unsigned i = 0; i < n; i++) {
		uint64_t v = *sim_slot(x, a[i]) & 0xffffffffu;
		if (!v || (!x->ent[v - 1].stored && x->ent[v - 1].chunk >= before))
			continue;
		unsigned k = 0;
		while (k < nc && cand[k] != v - 1)
			k++;
		if (k == nc) {
			cand[nc] = v - 1;
			votes[nc++] = 0;
		}
		votes[k]++;
	}
	while (got < STORE_DELTA_BASES) {
		unsigned best = nc;
		for (unsigned k = 0; k < nc; k++)
			if (votes[k] && (best == nc || votes[k] > votes[best]))
				best = k;
		if (best == nc)
			break;
		ret[got++] = x->ent[cand[best]];
		votes[best] = 0;
	}
	pthread_mutex_unlock(&x->m);
	return got;
}

void sim_add(struct sim_index *x, const uint64_t *a, unsigned n, const struct sim_base *b)
{
	pthread_mutex_lock(&x->m);
	size_t e = x->nent;
	bool added = false;
	for (unsigned i = 0; i < n && e < x->cap && x->used < x->mask / 4 * 3; i++) {
		uint64_t *sl = sim_slot(x, a[i]);
		if (*sl)
			continue;   /* the first chunk with this anchor stays */
		*sl = (a[i] >> 32) << 32 | (e + 1);
		x->used++;
		added = true;
	}
	if (added)
		x->ent[x->nent++] = *b;
	pthread_mutex_unlock(&x->m);
}
