/* roam's store: immutable content-addressed objects (blob, tree, state,
 * commit) in one SQLite file, named by refs. This header is the whole public
 * API of image/ except commits (image/commit.h).
 *
 * Conventions: functions return 0 (or a count) on success and -errno on
 * failure; when a call fails, store_last_error() describes it in one line
 * (which object or ref, what to do). Objects come back through ret_*
 * pointers; *_free(NULL) is a no-op.
 *
 * Threads: a struct store may be used from several threads; reads
 * (store_get, store_tree_read) run in parallel except for the short SQLite
 * lookup. Writes through one handle share one SQLite transaction, so one
 * thread per handle should write at a time.
 *
 * gc safety: every object written (or found already present) through a
 * writable handle is pinned for the lifetime of that handle, so a concurrent
 * `roam gc` never removes it before a ref reaches it. Pins die with the
 * handle (store_free, store_unpin, or the process exiting/crashing). */
#ifndef ROAM_IMAGE_STORE_H
#define ROAM_IMAGE_STORE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define STORE_HASH_LEN 32
#define STORE_HASH_HEX 65                 /* 64 hex digits + NUL */
#define STORE_CHUNK_MIN (4u << 10)
#define STORE_CHUNK_MAX (1u << 20)
#define STORE_CHUNK_DEFAULT (16u << 10)
#define STORE_LEVEL_DEFAULT 1
#define STORE_REF_MAX 255                 /* bytes in a ref name */
#define STORE_OBJECT_MAX (64u << 20)      /* bytes in one object, uncompressed */

struct store;
struct store_tree;
struct store_tree_builder;

/* SHA-256 of an object's uncompressed content. The all-zero hash never names
 * a stored object: in trees it marks a chunk or subtree of zeros. */
struct store_hash { uint8_t b[STORE_HASH_LEN]; };

enum store_kind {
	STORE_BLOB = 1,     /* a chunk of a disk or memory image, or opaque bytes */
	STORE_TREE = 2,     /* a Merkle tree node over a file of chunks */
	STORE_STATE = 3,    /* engine-neutral machine state (references nothing) */
	STORE_COMMIT = 4,   /* see image/commit.h */
};

/* STORE_CODEC_DELTA (blobs only): a zstd frame against up to two other blobs
 * of the store (see store_int.h). It never leaves the store: store_get_raw
 * hands such an object out re-encoded as RAW or ZSTD. */
enum store_codec { STORE_CODEC_RAW = 0, STORE_CODEC_ZSTD = 1, STORE_CODEC_DELTA = 2 };

/* ---- hashes ---------------------------------------------------------- */
void store_hash_buf(const void *data, size_t len, struct store_hash *ret);
bool store_hash_is_zero(const struct store_hash *h);
/* Whether n bytes at p are all zero (a chunk of zeros is never stored). */
bool store_is_zero(const void *p, size_t n);
bool store_hash_eq(const struct store_hash *a, const struct store_hash *b);
/* Writes 64 lowercase hex digits and a NUL into out (STORE_HASH_HEX bytes). */
void store_hash_hex(const struct store_hash *h, char *out);
/* Parses exactly 64 hex digits. 0 or -EINVAL. */
int store_hash_parse(const char *hex, struct store_hash *ret);
const char *store_kind_name(enum store_kind kind);   /* "blob", ... or "?" */
const char *store_codec_name(enum store_codec codec); /* "raw", "zstd", "delta" or "?" */

/* ---- errors ----------------------------------------------------------- */
/* One-line description of the last failure in the calling thread. */
const char *store_last_error(void);

/* ---- open / create ---------------------------------------------------- */
struct store_init_opts {
	uint32_t chunk_size;    /* 0: STORE_CHUNK_DEFAULT; else power of two in [MIN, MAX] */
	int level;              /* zstd level 1..19; 0: STORE_LEVEL_DEFAULT */
};
/* Creates the store directory PATH (parents too), PATH/store.db and PATH/run/.
 * -EEXIST if PATH already holds a store. opts may be NULL. */
int store_init(const char *path, const struct store_init_opts *opts);

#define STORE_OPEN_RDONLY 1u
/* Opens the store at PATH. Errors: -ENOENT (no store there), -EINVAL (the
 * database is not a roam store), -EPROTONOSUPPORT (made by a newer roam). */
int store_open(const char *path, unsigned flags, struct store **ret);
void store_free(struct store *s);
/* Gives SQLite's page cache a pool of memory touched now, for a process
 * whose later writes are timed (the VM process: every save inserts into
 * fresh cache pages, and first touches of memory cost ~14 us a page on
 * hosts with shadow paging, half of a small save). Call before the first
 * store_open of the process; -EALREADY after it. */
int store_warm_page_cache(void);
/* Gives back what the handle's page cache holds and no statement uses (to
 * that pool, when it came from there). */
void store_release_cache(struct store *s);
/* Turns SQLite's automatic WAL checkpoints of this handle off (or back on,
 * the default). They run inside a commit once the WAL is over 64 MiB: a
 * caller that must not stall there (a VM saving its state while paused)
 * turns them off and calls store_checkpoint_background after its commits
 * (closing the store copies the rest). */
int store_set_autocheckpoint(struct store *s, bool on);
/* Copies what it can of the WAL into the database file on a thread and a
 * connection of its own, which never wait for writers or readers. */
int store_checkpoint_background(struct store *s);
/* How long a writer waits for another process's write lock before failing
 * with -EBUSY (default 30000 ms; the CLI reads $ROAM_LOCK_TIMEOUT seconds). */
void store_set_lock_timeout(struct store *s, int ms);
const char *store_path(const struct store *s);
/* PATH/run: sockets, locks and working files of running VMs. */
const char *store_run_dir(const struct store *s);
uint32_t store_chunk_size(const struct store *s);
int store_level(const struct store *s);

/* Groups writes (puts, ref updates) into one SQLite transaction; nests by
 * counting. A write outside a transaction commits on its own. */
int store_txn_begin(struct store *s);
int store_txn_commit(struct store *s);
void store_txn_abort(struct store *s);

/* ---- objects ---------------------------------------------------------- */
struct store_obj_info {
	enum store_kind kind;
	uint64_t size;          /* uncompressed bytes */
	uint64_t stored_size;   /* bytes in the database */
	enum store_codec codec;
};

/* Stores data (len bytes) as an object of kind; *ret = its hash (may be
 * NULL). Trees and commits are checked: they must decode, and every object
 * they reference must already exist (-ENOENT otherwise). Storing an object
 * that exists is a cheap no-op. */
int store_put(struct store *s, enum store_kind kind, const void *data, size_t len,
	      struct store_hash *ret);
/* Reads, decompresses and re-hashes an object. *ret_data is malloc'd
 * (caller frees); ret_kind may be NULL. -ENOENT: no such object; -EBADMSG:
 * stored bytes do not match the hash (the object is corrupt). */
int store_get(struct store *s, const struct store_hash *h, enum store_kind *ret_kind,
	      void **ret_data, size_t *ret_len);
/* 1 if the object exists, 0 if not, -errno. */
int store_has(struct store *s, const struct store_hash *h);
int store_stat(struct store *s, const struct store_hash *h, struct store_obj_info *ret);
/* Calls fn for each object that an object of kind with (decoded) content
 * data references: the children of a tree node (trees or blobs; zero
 * markers skipped), the parents and roots of a commit; blobs and states
 * reference nothing. -EINVAL if data does not decode; a non-zero return
 * from fn stops the walk and is returned. For walks (sync, gc). */
int store_children(enum store_kind kind, const void *data, size_t len,
		   int (*fn)(void *arg, const struct store_hash *h, enum store_kind kind),
		   void *arg);
/* Finds the one object whose hex hash starts with prefix (>= 4 hex digits).
 * -ENOENT none, -EEXIST ambiguous. */
int store_resolve_prefix(struct store *s, const char *prefix, struct store_hash *ret);

/* Raw objects, as stored (for moving objects between stores unchanged),
 * except that a delta blob comes out self-contained (RAW or ZSTD). */
struct store_raw {
	struct store_obj_info info;
	void *data;             /* info.stored_size bytes, malloc'd */
};
int store_get_raw(struct store *s, const struct store_hash *h, struct store_raw *ret);
void store_raw_release(struct store_raw *r);   /* frees r->data */
/* Decodes raw->data, re-hashes it (-EBADMSG unless it matches h), checks
 * references like store_put and that a tree's children fit it (as verify
 * does: it comes from another store), and stores the bytes as given. */
int store_put_raw(struct store *s, const struct store_hash *h, const struct store_raw *raw);

/* ---- refs ------------------------------------------------------------- */
/* Names are 1..255 bytes of [A-Za-z0-9._-/], '/'-separated components that
 * are not empty, ".", ".." and do not start with '.'. Examples:
 * "disks/root", "vms/web/head", "vms/web/checkpoints/before-upgrade". */
bool store_ref_valid(const char *name);
/* -ENOENT if the ref does not exist. */
int store_ref_get(struct store *s, const char *name, struct store_hash *ret);
/* Atomically: if ref name currently equals old (NULL: does not exist), set it
 * to new (NULL: delete it). -ESTALE if it has moved; -ENOENT if new is not
 * an existing object; -EINVAL for a bad name. Durable on return. */
int store_ref_cas(struct store *s, const char *name, const struct store_hash *old,
		  const struct store_hash *new);
/* Calls fn for each ref whose name starts with prefix ("" or NULL: all), in
 * name order; a non-zero return from fn stops and is returned. */
int store_ref_list(struct store *s, const char *prefix,
		   int (*fn)(void *arg, const char *name, const struct store_hash *h),
		   void *arg);
/* Drops the gc pins of this handle (see top). Call after the refs that reach
 * everything it wrote are updated. */
int store_unpin(struct store *s);

/* ---- trees: files as Merkle trees of chunks --------------------------- */
/* Opens a tree for random-access reads; holds a small cache of decompressed
 * chunks. Thread-safe. */
int store_tree_open(struct store *s, const struct store_hash *root, struct store_tree **ret);
void store_tree_free(struct store_tree *t);
uint64_t store_tree_size(const struct store_tree *t);
/* The chunk size the tree was built with (its chunks' span). */
uint32_t store_tree_chunk_size(const struct store_tree *t);
/* Reads up to len bytes at off. Returns bytes read (short only at the end of
 * the tree, 0 at or after it) or -errno (-EBADMSG: a corrupt chunk, named
 * in store_last_error). Touches only the chunks in the range. */
ssize_t store_tree_read(struct store_tree *t, void *buf, size_t len, uint64_t off);
/* Hash of chunk index (the zero hash for a chunk of zeros). */
int store_tree_chunk_hash(struct store_tree *t, uint64_t index, struct store_hash *ret);

/* Builds a tree of size bytes, chunk by chunk. Chunks not set are taken from
 * base (which must have the same size) or are zeros when base is NULL;
 * unchanged subtrees of base are reused without reading them. */
int store_tree_builder_new(struct store *s, uint64_t size, const struct store_hash *base,
			   struct store_tree_builder **ret);
/* Sets chunk index to data; len must be the chunk's length (chunk size, or
 * less for the last chunk). The blob is stored now; data is not kept. */
int store_tree_builder_set(struct store_tree_builder *b, uint64_t index, const void *data,
			   size_t len);
/* A chunk encoded away from the writing thread (store_blob_encode is safe
 * on any thread), then stored by store_tree_builder_set_blob: lets a caller
 * compress on several threads and keep the SQLite writes on one. h must be
 * the data's hash (store_hash_buf); stored may point into data, which must
 * stay unchanged until the blob is stored. */
struct store_blob {
	struct store_hash h;
	size_t size;
	enum store_codec codec;
	const void *stored;
	size_t stored_len;
	void *buf;              /* owned by the blob: the compressed bytes */
	const void *data;       /* the chunk (a delta whose bases are gone is stored from it) */
};
int store_blob_encode(struct store *s, const void *data, size_t len, const struct store_hash *h,
		      struct store_blob *ret);
/* The same for a new version of a chunk whose previous version is the blob
 * prev (or the zero hash): a delta against prev when that is much smaller. */
int store_blob_encode_like(struct store *s, const void *data, size_t len, const struct store_hash *h,
			   const struct store_hash *prev, struct store_blob *ret);
void store_blob_release(struct store_blob *b);
int store_tree_builder_set_blob(struct store_tree_builder *b, uint64_t index,
				const struct store_blob *blob);
/* Sets chunk index to an existing blob (or the zero hash). */
int store_tree_builder_set_hash(struct store_tree_builder *b, uint64_t index,
				const struct store_hash *h);
/* Stores the tree nodes; *ret = root hash. The builder is spent afterwards. */
int store_tree_builder_finish(struct store_tree_builder *b, struct store_hash *ret);
void store_tree_builder_free(struct store_tree_builder *b);

/* ---- streaming import / export ---------------------------------------- */
struct store_progress {
	/* Called from the calling thread, a few times per second at most. */
	void (*fn)(void *arg, uint64_t done_bytes, uint64_t total_bytes, uint64_t objects);
	void *arg;
};
struct store_import_stats {
	uint64_t size;          /* logical bytes */
	uint64_t zero_bytes;    /* bytes in chunks of zeros (holes included) */
	uint64_t chunks;        /* non-zero chunks */
	uint64_t new_chunks;    /* chunks not in the store before */
	uint64_t new_stored;    /* bytes those added to the database */
};
/* Imports a regular file or block device into a tree: a reader thread
 * (skipping holes with SEEK_DATA), two hashing/compressing workers and the
 * SQLite writer overlap; memory stays bounded. A memfd (guest RAM) counts as
 * a regular file: this is the fast path for a first full save; incremental
 * saves use the tree builder over the previous tree. The file must not
 * change during the call. progress and ret_stats may be NULL. */
int store_import_fd(struct store *s, int fd, const struct store_progress *progress,
		    struct store_hash *ret_root, struct store_import_stats *ret_stats);
/* The same, and a new chunk that shares content at any byte offset with
 * earlier new chunks of the same input (a file copied into RAM twice, a
 * page cache page and the buffer it was read into) or with the blobs in
 * bases (a VM's disk chunks its guest read) is stored as a zstd delta
 * against up to four of them when that is an eighth smaller or more than
 * storing it plainly. For guest RAM of a paused VM: the input must not
 * change. */
int store_import_similar_fd(struct store *s, int fd, const struct store_hash *bases,
			    size_t nbases, const struct store_progress *progress,
			    struct store_hash *ret_root, struct store_import_stats *ret_stats);
/* Writes tree root into fd from offset 0. A regular file is truncated to the
 * tree's size and written sparse (zero chunks are left as holes). */
int store_export_fd(struct store *s, const struct store_hash *root, int fd,
		    const struct store_progress *progress);

/* ---- whole-store operations ------------------------------------------- */
struct store_gc_stats {
	uint64_t objects;         /* objects before */
	uint64_t freed_objects;
	uint64_t freed_bytes;     /* stored bytes removed */
	uint64_t pinned_sessions; /* live writers whose objects were kept */
	uint64_t dead_sessions;   /* crashed writers whose pins were dropped */
};
/* Removes objects unreachable from refs and from live writers' pins. Refuses
 * (-EBADMSG) when a reachable object is missing or corrupt. */
int store_gc(struct store *s, const struct store_progress *progress,
	     struct store_gc_stats *ret);

struct store_bad_object {
	struct store_hash hash;
	char reason[128];
	char **refs;             /* refs that reach it */
	size_t n_refs;
};
struct store_verify_report {
	uint64_t objects, stored_bytes;
	size_t n_bad;
	struct store_bad_object *bad;
	size_t n_bad_refs;       /* refs reaching a bad or missing object */
	char **bad_refs;
};
/* Re-hashes every object and checks every reference. Returns the number of
 * bad objects (0: the store is sound) or -errno; *ret is always set on
 * success. */
int store_verify(struct store *s, const struct store_progress *progress,
		 struct store_verify_report **ret);
void store_verify_report_free(struct store_verify_report *r);

struct store_usage {
	uint64_t logical;        /* sum of the sizes of what refs name */
	uint64_t referenced;     /* non-zero bytes refs reach, duplicates counted */
	uint64_t unique;         /* uncompressed bytes of distinct objects */
	uint64_t stored;         /* bytes of objects in the database */
	uint64_t objects, blobs, trees, commits, states;
	uint64_t deltas;         /* blobs stored as deltas against others */
	uint64_t file_bytes;     /* store.db + its WAL on disk */
	uint64_t refs;
};
int store_du(struct store *s, struct store_usage *ret);
/* Logical size of what a ref names: a tree's size, or the sum of the sizes of
 * the root trees/blobs of a commit. */
int store_logical_size(struct store *s, const struct store_hash *h, uint64_t *ret);
#endif
