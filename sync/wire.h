/* The sync wire codec (protocol version 2, proto.h): one streaming zstd
 * context per direction and session over the objects' raw contents, carried
 * in ZDATA frames; basis deltas (an object compressed with an object the
 * receiver already has as zstd prefix). Store-agnostic: the caller loads
 * bases and hashes/stores what comes out. Private to sync/.
 *
 * Stream content (decompressed), a sequence of records:
 *
 *   off  len  field
 *   0    1    kind (enum store_kind)
 *   1    1    form: 0 full (the body is the object), 1 delta (the body is
 *             one zstd frame with its content size, to be decoded with the
 *             base object's raw content as prefix), 2 (version 3) delta
 *             against several blobs (the prefix is their raw contents one
 *             after the other)
 *   2    4    body length N <= SYNC_OBJ_MAX (and, for a delta, the frame's
 *             content size <= SYNC_OBJ_MAX)
 *   form 1:
 *   6    32   base hash (the base's kind equals kind, which is blob, tree
 *             or state)
 *   form 2 (kind is blob):
 *   6    1    n, 1..SYNC_WIRE_BASES_MAX
 *   7    32n  the base blobs' hashes (their sizes add up to at most
 *             SYNC_WIRE_BASES_BYTES)
 *   ..   N    body
 *
 * Records carry no hash: the receiver hashes what it decodes (a puller
 * compares with the hash it asked for). The decoder refuses frames whose
 * window exceeds 2^SYNC_WIRE_WINDOW_LOG bytes. */
#ifndef ROAM_SYNC_WIRE_H
#define ROAM_SYNC_WIRE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "image/store.h"
#include "sync/proto.h"

#define SYNC_WIRE_WINDOW_LOG 25          /* 32 MiB: sender's window, receiver's limit */
#define SYNC_WIRE_FRAME (1u << 20)       /* ZDATA payload bytes at most (sender) */
#define SYNC_WIRE_REC_HDR 6
#define SYNC_WIRE_DELTA_HDR (SYNC_WIRE_REC_HDR + STORE_HASH_LEN)
#define SYNC_WIRE_BASES_MAX 8            /* bases of a form 2 delta */
#define SYNC_WIRE_BASES_BYTES (4u << 20) /* their raw sizes together, at most */
#define SYNC_WIRE_HDR_MAX (SYNC_WIRE_REC_HDR + 1 + SYNC_WIRE_BASES_MAX * STORE_HASH_LEN)
#define SYNC_WIRE_DELTA_LEVEL_MAX 7      /* delta frames: level min(wire, this) */
#define SYNC_WIRE_LDM_LEVEL 6            /* long distance matching from this level;
					    below it a compression worker thread */
#define SYNC_WIRE_BATCH_OBJS 1024u       /* sender flushes after this many objects */

/* Wire level for level 0 ("auto") given about how many raw bytes will go
 * (UINT64_MAX: unknown): high levels for small transfers (bytes matter),
 * low for large ones (the channel and the CPU must keep up), and 0 (objects
 * as stored, in OBJ frames) over SYNC_WIRE_STORED_ABOVE: there a level-1
 * stream saves only 5-8% of the bytes but costs a decompression and a
 * recompression on each side, which measured slower than sending the stored
 * bytes over loopback SSH (bench/RESULTS.md). */
#define SYNC_WIRE_STORED_ABOVE (256ull << 20)
int sync_wire_auto_level(uint64_t raw_bytes);

/* Resolves a sync_opts.wire_level (sync.h) against $ROAM_SYNC_WIRE:
 * returns the highest protocol version to speak (1 or SYNC_VERSION) and
 * sets *ret_level to a fixed level, or 0 for automatic. */
int sync_wire_setting(int opt, int *ret_level);

/* ---- sender ---- */
struct sync_wenc;
/* A stream writing ZDATA frames to io at level (1..19). */
int sync_wenc_new(struct sync_io *io, int level, struct sync_wenc **ret);
void sync_wenc_free(struct sync_wenc *e);
/* Switches to level for what follows: ends the current zstd frame when
 * records went into it (the next frame starts with an empty window). */
int sync_wenc_set_level(struct sync_wenc *e, int level);
int sync_wenc_level(const struct sync_wenc *e);
/* Appends a full record. len <= SYNC_OBJ_MAX. */
int sync_wenc_obj(struct sync_wenc *e, enum store_kind kind, const void *data, size_t len);
/* Appends data as a delta against base (the raw content of the object
 * named base_hash, which the receiver has) when that is clearly smaller
 * than compressing data alone, else as a full record. Returns 1 (delta),
 * 0 (full) or -errno. */
int sync_wenc_obj_basis(struct sync_wenc *e, enum store_kind kind, const void *data, size_t len,
			const struct store_hash *base_hash, const void *base, size_t base_len);
/* The same against n bases (a form 2 record when n > 1: version 3 peers
 * only); prefix is their raw contents one after the other. */
int sync_wenc_obj_bases(struct sync_wenc *e, enum store_kind kind, const void *data, size_t len,
			const struct store_hash *bases, unsigned n, const void *prefix,
			size_t prefix_len);
/* Flushes everything appended so far into ZDATA frames (the stream goes
 * on). Call at batch ends and before any frame that must follow the
 * records. */
int sync_wenc_flush(struct sync_wenc *e);
struct sync_wire_stats { uint64_t records, deltas, raw_bytes, wire_bytes; };
void sync_wenc_stats(const struct sync_wenc *e, struct sync_wire_stats *ret);

/* ---- receiver ---- */
struct sync_wrec {
	enum store_kind kind;
	bool delta;
	unsigned nbases;             /* delta only: 1 (form 1) or more (form 2) */
	struct store_hash base[SYNC_WIRE_BASES_MAX];
	const uint8_t *body;         /* valid until the next sync_wdec call */
	size_t len;
};
struct sync_wdec;
int sync_wdec_new(struct sync_wdec **ret);
void sync_wdec_free(struct sync_wdec *d);
/* Hands the decoder one ZDATA payload; takes ownership of f->data. Only
 * when sync_wdec_next has returned 0 (it wants input). */
void sync_wdec_input(struct sync_wdec *d, struct sync_frame *f);
/* 1: *rec is the next record; 0: needs another ZDATA payload (and then
 * sits at a record boundary iff sync_wdec_idle); -EBADMSG: the stream is
 * bad (sync_wdec_error says how), -ENOMEM. */
int sync_wdec_next(struct sync_wdec *d, struct sync_wrec *rec);
/* True when no record is partly received (the sender flushed here). */
bool sync_wdec_idle(const struct sync_wdec *d);
const char *sync_wdec_error(const struct sync_wdec *d);
/* Decodes a delta body against base (the bases' raw contents one after
 * the other) into a malloc'd buffer (*ret, *ret_len
 * <= SYNC_OBJ_MAX). -EBADMSG if the frame is malformed or does not decode
 * exactly. */
int sync_wdec_undelta(struct sync_wdec *d, const void *base, size_t base_len,
		      const void *frame, size_t frame_len, void **ret, size_t *ret_len);
#endif
