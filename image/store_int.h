/* Private to image/: the store handle, the SQLite schema and the encodings
 * of tree and commit objects. Everything on disk is defined here.
 *
 * Store directory PATH:
 *   PATH/store.db            the SQLite database (WAL mode: also -wal, -shm)
 *   PATH/run/                working files of running VMs and writer locks
 *   PATH/run/writer-<pid>-<nonce>.lock   flock'd by a live writer (session)
 *
 * SQLite database (PRAGMA application_id = 0x524f414d "ROAM",
 * user_version = STORE_SCHEMA_VERSION, page_size 65536, WAL,
 * auto_vacuum = INCREMENTAL, foreign_keys = ON):
 *
 *   table     column        type      meaning
 *   --------  ------------  --------  ------------------------------------
 *   meta      key           TEXT PK   "chunk_size", "level", "created"
 *             value         any
 *   objects   hash          BLOB PK   SHA-256 of the uncompressed content
 *             kind          INTEGER   enum store_kind
 *             size          INTEGER   uncompressed bytes
 *             stored_size   INTEGER   length(data)
 *             codec         INTEGER   0 raw, 1 zstd (one frame), 2 delta
 *                                     (blobs only, below)
 *             data          BLOB      stored bytes (last: reading the other
 *                                     columns never touches overflow pages)
 *   refs      name          TEXT PK   see store_ref_valid()
 *             hash          BLOB      REFERENCES objects(hash)
 *   sessions  id            INTEGER PK  one live (or crashed) writer
 *             lock          TEXT      file name in run/ the writer flocks
 *             pid, host, started      for humans
 *   pins      session       INTEGER   REFERENCES sessions(id) ON DELETE CASCADE
 *             hashes        BLOB      32-byte hashes a writer wrote or reused
 *                                     in one transaction, back to back (one
 *                                     row per transaction: cheap); gc roots
 *                                     while the session's lock is held
 *
 * gc and concurrent writers: a writer inserts blobs long before a ref reaches
 * them, and dedup makes it reuse objects that nothing else reaches. So each
 * writable handle is a session: it flocks run/writer-*.lock, registers it in
 * sessions, and pins every object it writes or reuses, in the same
 * transaction as the write (a reused object is re-checked inside that
 * transaction). gc runs mark and sweep in one IMMEDIATE transaction, so no
 * writer interleaves; its roots are refs plus the pins of sessions whose
 * lock is held. A session whose lock is free belongs to a dead process: gc
 * drops its pins. Crashing never leaks a pin forever and never loses an
 * object a live writer relies on.
 *
 * Delta blob (codec 2): u8 n (1..STORE_DELTA_BASES = 4), n base hashes (32
 * bytes each), then one zstd frame made with the bases' contents, back to
 * back, as its prefix. A base is a blob stored raw or zstd, never itself a
 * delta, of at most STORE_CHUNK_MAX bytes: reading a delta reads at most n
 * more objects. The writer checks this before inserting (the bases exist
 * and are pinned in the same transaction); gc keeps the bases of every
 * delta it reaches; the decoder refuses anything else as corrupt.
 *
 * Tree node (kind tree), little-endian:
 *
 *   off  len   field
 *   0    4     magic "RTRE"
 *   4    1     version = 1
 *   5    1     level: 0 = children are chunks (blobs), k = children are
 *              level k-1 nodes
 *   6    2     fanout F (children per full node; the builder uses 512)
 *   8    4     chunk_size C (power of two, 4 KiB..1 MiB)
 *   12   4     count = number of children
 *   16   8     size = logical bytes under this node
 *   24   32*count  child hashes; 32 zero bytes = the child is all zeros
 *                  (never stored)
 *
 * A child of a level-k node spans S(k) = C * F^k bytes; count must equal
 * ceil(size / S(k)) and be <= F. Every child spans exactly S(k) bytes except
 * the last, which spans the remainder, so sizes are implied rather than
 * stored: the shape of a tree depends only on (size, C, F) and identical
 * content gives an identical root hash. The root has the smallest level with
 * size <= S(level) * F (level 0 for an empty file) and is always stored, even
 * when all its children are zero. Any non-root node whose children are all
 * zero is itself a zero marker. A 4 GiB file of zeros with C = 64 KiB is one
 * level-1 root of 64 zero markers: 2 KiB.
 *
 * Commit (kind commit), little-endian:
 *
 *   off  len   field
 *   0    4     magic "RCMT"
 *   4    1     version = 1
 *   5    1     n_parents (<= 16)
 *   6    1     n_roots (<= 64)
 *   7    1     host_len
 *   8    8     time (signed unix seconds)
 *   16   4     msg_len (<= 65536)
 *   20   32*n_parents   parent commit hashes (non-zero)
 *   ..   host_len       host name, no NUL
 *   ..   n_roots x { u8 kind (blob|tree|state), u8 name_len (1..64),
 *                    name [A-Za-z0-9._-], hash[32] non-zero }
 *                       names strictly ascending (memcmp order)
 *   ..   msg_len        message, no NUL
 *   (nothing may follow)
 *
 * Blob and state objects are opaque and reference nothing. */
#ifndef ROAM_IMAGE_STORE_INT_H
#define ROAM_IMAGE_STORE_INT_H
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include "image/store.h"

#define STORE_APP_ID 0x524f414d
#define STORE_SCHEMA_VERSION 1
#define STORE_PAGE_SIZE 65536
#define STORE_CACHE_PAGES ((16 << 20) / STORE_PAGE_SIZE)   /* cache_size=-16384 */

#define TREE_MAGIC "RTRE"
#define TREE_VERSION 1
#define TREE_HDR 24
#define TREE_FANOUT 512
#define TREE_FANOUT_MIN 2
#define TREE_FANOUT_MAX 4096
#define TREE_LEVEL_MAX 8

#define COMMIT_MAGIC "RCMT"
#define COMMIT_VERSION 1
#define COMMIT_HDR 20

/* Largest object accepted (a decoded size cap against hostile input). */
#define STORE_OBJ_MAX ((size_t)STORE_OBJECT_MAX)

struct store {
	char *path, *db_path, *run_dir;
	sqlite3 *db;
	pthread_mutex_t lock;       /* guards db and the prepared statements */
	pthread_key_t zkey;         /* per-thread zstd contexts */
	bool rdonly;
	uint32_t chunk_size;
	int level;
	int lock_timeout_ms;
	bool no_autocheckpoint;   /* store_set_autocheckpoint(s, false) */
	_Atomic bool verifying;   /* store_verify runs: no cached delta bases */
	int txn_depth;
	bool txn_failed;            /* an inner failure: the outer commit aborts */
	int64_t session;            /* 0 until the first write */
	int session_fd;
	char *session_lock;
	sqlite3_stmt *st_get, *st_has, *st_put, *st_pin, *st_stat;
	struct store_hash *pend;    /* pins of the open transaction */
	size_t n_pend, cap_pend;
};

/* errors: set the thread's message and return -err (err > 0). */
int store_err(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Maps a SQLite result to -errno, with a message naming what was being done. */
int store_sqlerr(struct store *s, int rc, const char *what);
void store_hex(const struct store_hash *h, char out[STORE_HASH_HEX]);

/* zstd, with per-thread contexts owned by the store. */
int store_compress(struct store *s, const void *src, size_t len, void *dst, size_t cap,
		   size_t *ret_len);
int store_decompress(struct store *s, const void *src, size_t len, void *dst, size_t size);
size_t store_compress_bound(size_t len);

/* The same with a prefix (the bases of a delta blob). */
int store_compress_prefix(struct store *s, const void *src, size_t len, const void *prefix,
			  size_t plen, void *dst, size_t cap, size_t *ret_len);
int store_decompress_prefix(struct store *s, const void *src, size_t len, const void *prefix,
			    size_t plen, void *dst, size_t size);

/* The delta bases this thread decoded last: a base's bytes (valid until
 * the next put on this thread), or NULL. */
const uint8_t *store_base_cache_get(struct store *s, const struct store_hash *h, size_t *len);
void store_base_cache_put(struct store *s, const struct store_hash *h, const void *data,
			  size_t len);

/* ---- delta blobs (delta.c) ----------------------------------------------- */
#define STORE_DELTA_BASES 4
#define STORE_DELTA_HDR(n) (1 + (size_t)(n) * STORE_HASH_LEN)
/* The base hashes of a delta's stored bytes: their count, or -EBADMSG. */
int store_delta_bases(const void *stored, size_t len, struct store_hash ret[STORE_DELTA_BASES]);
/* What a base may be: a raw or zstd blob of at most STORE_CHUNK_MAX bytes. */
bool store_delta_base_ok(enum store_kind kind, uint64_t size, enum store_codec codec);
/* Decodes such a base's row into out (b->info.size bytes) without re-hashing
 * it (a delta's own hash catches a wrong base): 0 or -EBADMSG. */
int store_delta_base_decode(struct store *s, const struct store_raw *b, void *out);
/* Writes into out a delta of data (len bytes) against the n bases whose
 * contents are prefix (plen bytes) if it takes at most cap bytes: its
 * length, or 0. */
size_t store_delta_encode(struct store *s, const void *data, size_t len, const void *prefix,
			  size_t plen, const struct store_hash *base, unsigned n, uint8_t *out, size_t cap);
/* Decodes a delta's stored bytes into out (size bytes): reads its bases. */
int store_delta_decode(struct store *s, const struct store_hash *h, const void *stored,
		       size_t stored_len, void *out, size_t size);
/* Before a delta is inserted: 1 if every base is a stored raw or zstd blob
 * (then pinned), 0 if not (store the chunk plainly), -errno. Locked + txn. */
int store_delta_check_locked(struct store *s, const void *stored, size_t len);

/* Finding similar chunks: content-defined anchors (a rolling hash of the
 * last bytes hits a pattern about every 512 bytes, wherever the content
 * sits in the chunk) in an index from anchor to the first chunk that had
 * it. */
#define SIM_MAX_ANCHORS 64
struct sim_index;
struct sim_base {
	uint64_t chunk;           /* in the input, unless stored */
	bool stored;              /* a blob already in the store */
	struct store_hash h;
};
/* For at most nchunks chunks of chunk_size bytes. */
struct sim_index *sim_index_new(uint64_t nchunks, uint32_t chunk_size);
void sim_index_free(struct sim_index *x);
unsigned sim_anchors(const uint8_t *p, size_t len, uint64_t out[SIM_MAX_ANCHORS]);
/* Up to STORE_DELTA_BASES chunks (of the input before chunk `before`, or
 * stored) sharing the most anchors, best first. Thread-safe. */
unsigned sim_find(struct sim_index *x, const uint64_t *a, unsigned n, uint64_t before,
		  struct sim_base ret[STORE_DELTA_BASES]);
/* Adds a base under its anchors not yet in the index. */
void sim_add(struct sim_index *x, const uint64_t *a, unsigned n, const struct sim_base *b);

/* Reads an object's row as stored (delta blobs included). */
int store_fetch_raw(struct store *s, const struct store_hash *h, struct store_raw *ret);

/* Transaction helpers for the writer paths (s->lock not held). */
int store_exec(struct store *s, const char *sql);
int store_session_ensure(struct store *s);

/* Inserts an already-hashed object inside the current transaction and pins
 * it: 1 if it was new, 0 if it existed. stored/stored_len/codec is what goes
 * to disk. Caller holds s->lock and an open transaction, and has checked
 * references. */
int store_insert_locked(struct store *s, const struct store_hash *h, enum store_kind kind,
			uint64_t size, enum store_codec codec, const void *stored,
			size_t stored_len);
/* Adds h to the pins written when the open transaction commits. Locked. */
int store_pend_locked(struct store *s, const struct store_hash *h);
/* Decodes stored bytes into a fresh malloc'd buffer and checks the hash
 * (-EBADMSG naming the object on mismatch). */
int store_decode(struct store *s, const struct store_hash *h, enum store_codec codec,
		 uint64_t size, const void *stored, size_t stored_len, void **ret);
/* The same into out, which holds size bytes (the caller checked size). */
int store_decode_into(struct store *s, const struct store_hash *h, enum store_codec codec,
		      uint64_t size, const void *stored, size_t stored_len, void *out);
/* Pins h for this session if it exists: 1 pinned, 0 missing. Locked + txn. */
int store_pin_locked(struct store *s, const struct store_hash *h);
/* Stores an object already hashed and encoded (in its own transaction,
 * nested in the caller's) and pins it. A delta whose bases are not stored
 * plain blobs is refused with -ESTALE (no message): store it plainly. */
int store_put_encoded(struct store *s, const struct store_hash *h, enum store_kind kind,
		      uint64_t size, enum store_codec codec, const void *stored, size_t stored_len);
/* Encodes data for storage: compressed when that pays, else raw.
 * *ret_buf is malloc'd only when compressed (else it points at data). */
int store_encode(struct store *s, const void *data, size_t len, const void **ret_stored,
		 size_t *ret_len, enum store_codec *ret_codec, void **ret_buf);
/* Checks that every object referenced by (kind, data) exists. */
int store_check_refs(struct store *s, enum store_kind kind, const void *data, size_t len);

/* Tree nodes. */
struct tree_node {
	unsigned level;
	unsigned fanout;
	uint32_t chunk_size;
	uint32_t count;
	uint64_t size;
	const uint8_t *children;    /* count * 32 bytes, inside the decoded buffer */
};
/* Validates a node. 0 or -EINVAL (message set). */
int tree_node_parse(const void *data, size_t len, struct tree_node *ret);
/* Span of one child of a level-k node; 0 on overflow. */
uint64_t tree_child_span(uint32_t chunk_size, unsigned fanout, unsigned level);
/* Logical bytes under child k of node n (the last child: the rest). */
uint64_t tree_child_size(const struct tree_node *n, uint64_t k);
/* Whether an object of kind, described by c (a blob: only c->size), fits as
 * child k of n: a blob of exactly its bytes at level 0, above it a node one
 * level down with n's chunk size and fanout covering them. */
bool tree_child_fits(const struct tree_node *n, uint64_t k, enum store_kind kind,
		     const struct tree_node *c);
/* Level of the root for a file of size bytes. */
unsigned tree_root_level(uint64_t size, uint32_t chunk_size, unsigned fanout);
/* Encodes a node into buf (TREE_HDR + 32*count bytes). */
size_t tree_node_encode(uint8_t *buf, unsigned level, unsigned fanout, uint32_t chunk_size,
			uint64_t size, const uint8_t *children, uint32_t count);

/* Streaming tree writer used by import and the builder: push chunk hashes in
 * order; completed nodes are stored as they fill. Call within a transaction. */
struct tree_writer;
int tree_writer_new(struct store *s, uint64_t size, struct tree_writer **ret);
/* Pushes the hash of the next chunk (zero hash: zeros). */
int tree_writer_push(struct tree_writer *w, const struct store_hash *h);
/* Pushes a whole subtree at level k (node hash, or zero) covering the next
 * S(k+1)... i.e. exactly one level-k node's span; only at aligned positions. */
int tree_writer_push_node(struct tree_writer *w, unsigned level, const struct store_hash *h);
uint64_t tree_writer_pos(const struct tree_writer *w);   /* chunks pushed */
int tree_writer_finish(struct tree_writer *w, struct store_hash *ret);
void tree_writer_free(struct tree_writer *w);

/* Set of hashes (open addressing), for gc, verify and du. */
struct hashset;
struct hashset *hashset_new(void);
void hashset_free(struct hashset *hs);
/* 1 if added, 0 if present, -ENOMEM. */
int hashset_add(struct hashset *hs, const struct store_hash *h);
bool hashset_has(const struct hashset *hs, const struct store_hash *h);
size_t hashset_count(const struct hashset *hs);

/* Little-endian fields of the object encodings (n bytes). */
static inline void store_put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t store_get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Helpers of the import and export pipelines. */
#define STORE_MAX_WORKERS 8
int store_nworkers(void);    /* one per online CPU, 2..STORE_MAX_WORKERS */
uint64_t store_now_ms(void); /* CLOCK_MONOTONIC */

#endif
