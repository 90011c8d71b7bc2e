/* The sync wire protocol between `roam push/pull/clone` (the client) and
 * `roam serve --stdio STORE` (the server), and the frame codec both use.
 * Everything is little-endian. Private to sync/.
 *
 * Frame (every message):
 *
 *   off  len  field
 *   0    1    type (enum sync_msg)
 *   1    3    reserved, must be 0
 *   4    4    payload length N; N <= SYNC_FRAME_MAX, checked before any
 *             allocation (a larger frame ends the session)
 *   8    N    payload
 *
 * Messages (C = client, S = server). A hash is 32 bytes (SHA-256 of the
 * object's uncompressed content); the zero hash means "absent".
 *
 *   type          dir   payload
 *   ------------  ----  ------------------------------------------------------
 *   1 HELLO       C>S   "ROAMSYNC", u16 min_version, u16 max_version,
 *                       u32 flags (1: create the store if it does not exist)
 *   1 HELLO       S>C   "ROAMSYNC", u16 version, u16 0, u8 host_len, host
 *   2 ERROR       any   u32 errno, message (<= 1024 bytes, no NUL); ends the
 *                       session
 *   3 LIST        C>S   VM name
 *   4 REFS        S>C   u8 running (the VM's lock is held there), u32 n,
 *                       n x { u16 name_len, name, hash }: every ref
 *                       vms/VM/... of the server's store
 *   5 HAVE        C>S   n x hash (n <= SYNC_BATCH_MAX)
 *   6 HAVE_REPLY  S>C   n x u8 (1: the server has the object, and so
 *                       everything it references)
 *   7 GET         C>S   n x hash (n <= SYNC_BATCH_MAX)
 *   8 OBJ         any   hash, u8 kind, u8 codec, u16 0, u64 size, stored
 *                       bytes: one object exactly as stored (GET answers one
 *                       OBJ per hash in order; a push streams OBJs)
 *   9 FLUSH       C>S   (empty) commit what arrived
 *  10 FLUSHED     S>C   u64 objects, u64 new objects, u64 bytes received
 *  11 UPDATE      C>S   u8 flags (1: force), u32 n, n x { u16 name_len,
 *                       name, old hash, new hash }: compare-and-swap every
 *                       ref, all or nothing (new = zero deletes)
 *  12 OK          S>C   (empty)
 *  13 BYE         C>S   (empty) the server exits 0
 *  14 ZDATA       any   the next piece (<= 1 MiB) of the sender's wire stream
 *                       (version 2, sync/wire.h): records of objects in
 *                       raw form or as basis deltas, zstd-compressed as one
 *                       stream per direction and session
 *  15 PLAN        C>S   (version 2) u8 wire level (0: the server picks),
 *                       u64 raw bytes the client expects to GET, old commit
 *                       hash, new commit hash (zero: none): the client has
 *                       old and is about to GET what new reaches, so the
 *                       server may send those objects as deltas against
 *                       what old reaches. No reply; the server ignores the
 *                       basis when it lacks either commit.
 *
 * Push: HELLO, LIST, then HAVE batches walking the client's objects top
 * down (an object the server has is never descended into: an unchanged
 * subtree costs one hash), OBJ stream children first (blobs, tree nodes
 * bottom up, commits), FLUSH, UPDATE, BYE. The server stores OBJs with
 * store_put_raw (re-hash, reference check) in transactions of at most
 * SYNC_TXN_OBJS objects / SYNC_TXN_BYTES bytes, so an interrupted push keeps
 * what arrived and the next HAVE walk skips it.
 *
 * Versions: the client offers min..max (1..3), the server answers the
 * highest it speaks within that range. Version 1 moves objects exactly as
 * stored in OBJ frames. Version 2 ("wire codec") moves them in ZDATA
 * frames: each side that sends objects keeps one zstd stream (level chosen
 * by the sender for the job: sync_wire_auto_level, window 32 MiB with long
 * distance matching from level 6) over the objects' raw contents, flushed
 * at every batch end (at most SYNC_WIRE_BATCH_OBJS objects / SYNC_TXN_BYTES
 * raw bytes, before FLUSH and at the end of every GET answer) so the
 * receiver can hash, store and commit what arrived. A push answers GET-less: the client streams
 * records, the server hashes each, stores it at its own store's level and
 * counts it. A GET is answered by one record per hash in order, each
 * checked against the hash asked for. An object over SYNC_OBJ_MAX still
 * travels as an OBJ frame (after a flush, so order holds). Deltas: when an
 * object replaces one at the same place in a tree the receiver already
 * has (same root name in the commit the far side has, same chunk or node
 * position), the sender may send it as a zstd frame with the old object as
 * prefix, naming the old one; the receiver loads that base (it must exist
 * and be of the same kind: else the session fails, nothing of that batch is
 * kept), decodes with hard limits and re-hashes as always. On a push the
 * client learns the far head from REFS; on a pull it names its own head in
 * PLAN. A push also skips HAVE for every object the far head reaches
 * (the far store holds them by the store's invariants). Version 3 adds
 * deltas against several blobs (wire.h, form 2): when the new commit has
 * new memory, the sender indexes the 4 KiB pages of every blob the far
 * side's commit reaches, and a memory chunk whose pages sit in such blobs
 * (a file the guest read is in its page cache and on its disk; pages the
 * guest moved) goes as a delta against them and its old self.
 *
 * Pull: HELLO, LIST, then GET batches walking the server's commits and
 * tree nodes top down (skipping what the client has), GET of the missing
 * blobs, local inserts children first, local ref CAS, BYE. */
#ifndef ROAM_SYNC_PROTO_H
#define ROAM_SYNC_PROTO_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "image/store.h"

#define SYNC_MAGIC "ROAMSYNC"
#define SYNC_VERSION 3         /* highest version spoken */
#define SYNC_VERSION_MIN 1
#define SYNC_HDR 8
#define SYNC_FRAME_MAX (4u << 20)
#define SYNC_BATCH_MAX 8192u
#define SYNC_ERRMSG_MAX 1024
#define SYNC_OBJ_HDR 44
#define SYNC_TXN_OBJS 256
#define SYNC_TXN_BYTES (32u << 20)

enum sync_msg {
	SYNC_HELLO = 1, SYNC_ERROR, SYNC_LIST, SYNC_REFS, SYNC_HAVE, SYNC_HAVE_REPLY,
	SYNC_GET, SYNC_OBJ, SYNC_FLUSH, SYNC_FLUSHED, SYNC_UPDATE, SYNC_OK, SYNC_BYE,
	SYNC_ZDATA, SYNC_PLAN,
	SYNC_MSG_MAX = SYNC_PLAN,
};

/* A byte stream both ways: ssh channel, pipes. read returns bytes (0: end of
 * stream) or -errno; write writes all or returns -errno. */
struct sync_io {
	ssize_t (*read)(void *arg, void *buf, size_t len);
	int (*write)(void *arg, const void *buf, size_t len);
	void *arg;
	uint64_t bytes_in, bytes_out;       /* counted by the frame layer */
	char err[256];                      /* why the last frame call failed */
};
/* The read and write of a sync_io over a pipe or socket fd (EINTR retried). */
ssize_t sync_fd_read(int fd, void *buf, size_t len);
int sync_fd_write(int fd, const void *buf, size_t len);

struct sync_frame {
	uint8_t type;
	uint32_t len;
	uint8_t *data;      /* malloc'd payload (len bytes, +1 NUL for convenience) */
};

/* Parses a frame header: 0 and *type, *len, or -EPROTO (reserved bytes,
 * unknown type) / -EMSGSIZE (len > SYNC_FRAME_MAX). */
int sync_frame_header(const uint8_t hdr[SYNC_HDR], uint8_t *type, uint32_t *len);
/* Reads one frame; f->data is malloc'd (sync_frame_release). -EPIPE at end
 * of stream, -EPROTO/-EMSGSIZE on a bad header; io->err says which. */
int sync_frame_read(struct sync_io *io, struct sync_frame *f);
void sync_frame_release(struct sync_frame *f);
int sync_frame_write(struct sync_io *io, uint8_t type, const void *payload, size_t len);
/* Writes the header then two payload parts (no copy). */
int sync_frame_write2(struct sync_io *io, uint8_t type, const void *a, size_t alen,
		      const void *b, size_t blen);
/* ERROR frame with a printf message. Returns the write result. */
int sync_send_error(struct sync_io *io, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Bounded reader over a payload: every get fails (returns -EBADMSG and
 * stays failed) past the end. */
struct sync_rd { const uint8_t *p; size_t len, off; bool bad; };
void sync_rd_init(struct sync_rd *r, const void *p, size_t len);
uint8_t sync_rd_u8(struct sync_rd *r);
uint16_t sync_rd_u16(struct sync_rd *r);
uint32_t sync_rd_u32(struct sync_rd *r);
uint64_t sync_rd_u64(struct sync_rd *r);
const uint8_t *sync_rd_bytes(struct sync_rd *r, size_t n);
/* A u16-length ref name into out (NUL-terminated): valid per store_ref_valid. */
int sync_rd_refname(struct sync_rd *r, char out[STORE_REF_MAX + 1]);

/* Growable write buffer; any allocation failure sticks (bad). */
struct sync_wb { uint8_t *p; size_t len, cap; bool bad; };
void sync_wb_u8(struct sync_wb *w, uint8_t v);
void sync_wb_u16(struct sync_wb *w, uint16_t v);
void sync_wb_u32(struct sync_wb *w, uint32_t v);
void sync_wb_u64(struct sync_wb *w, uint64_t v);
void sync_wb_bytes(struct sync_wb *w, const void *p, size_t n);
void sync_wb_free(struct sync_wb *w);

/* OBJ payload <-> parts. parse points into the payload. */
struct sync_obj {
	struct store_hash hash;
	enum store_kind kind;
	enum store_codec codec;
	uint64_t size;
	const uint8_t *stored;
	size_t stored_len;
};
int sync_obj_parse(const void *payload, size_t len, struct sync_obj *ret);
/* Header part of an OBJ payload (SYNC_OBJ_HDR bytes) for sync_frame_write2. */
void sync_obj_header(uint8_t out[SYNC_OBJ_HDR], const struct store_hash *h, enum store_kind kind,
		     enum store_codec codec, uint64_t size);

/* Whether ref name belongs to VM vm and may move between stores:
 * vms/VM/head, vms/VM/lease, vms/VM/checkpoints/X, vms/VM/replaced/X. */
bool sync_ref_allowed(const char *vm, const char *name);
bool sync_vm_name_valid(const char *vm);
#endif
