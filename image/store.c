/* Store lifecycle: creating and opening the SQLite database (schema, pragmas,
 * version checks), error messages, transactions, writer sessions, hashing
 * and the per-thread zstd contexts. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>
#include "image/store_int.h"

static __thread char last_error[512];

const char *store_last_error(void)
{
	return last_error[0] ? last_error : "no error";
}

int store_err(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return -err;
}

int store_sqlerr(struct store *s, int rc, const char *what)
{
	const char *msg = s && s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return store_err(EBUSY, "%s: store is locked by another roam process "
				 "(waited %d s); try again when it has finished", what,
				 s ? (s->lock_timeout_ms + 999) / 1000 : 0);
	case SQLITE_FULL:
		return store_err(ENOSPC, "%s: the store's filesystem is full; free space "
				 "(or run 'roam gc') and retry", what);
	case SQLITE_READONLY:
		return store_err(EROFS, "%s: store is read-only (%s)", what, msg);
	case SQLITE_NOMEM:
		return store_err(ENOMEM, "%s: out of memory", what);
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return store_err(EBADMSG, "%s: database is corrupt (%s)", what, msg);
	case SQLITE_IOERR:
		return store_err(EIO, "%s: I/O error (%s)", what, msg);
	case SQLITE_CANTOPEN:
		return store_err(ENOENT, "%s: cannot open the database (%s)", what, msg);
	case SQLITE_CONSTRAINT:
		return store_err(EINVAL, "%s: constraint failed (%s)", what, msg);
	default:
		return store_err(EIO, "%s: %s", what, msg);
	}
}

int store_nworkers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 2 ? 2 : n > STORE_MAX_WORKERS ? STORE_MAX_WORKERS : (int)n;
}

uint64_t store_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- hashes ----------------------------------------------------------- */

/* SHA-256 is fetched from the provider once, and each thread keeps one
 * digest context: a one-shot EVP_Digest() would repeat both per chunk. */
static EVP_MD *sha256_md;
static pthread_key_t sha256_key;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static __thread EVP_MD_CTX *sha256_ctx;

static void sha256_ctx_free(void *ctx)
{
	EVP_MD_CTX_free(ctx);
}

static void sha256_init(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!sha256_md || pthread_key_create(&sha256_key, sha256_ctx_free))
		abort();   /* libcrypto cannot compute SHA-256: nothing sane to do */
}

void store_hash_buf(const void *data, size_t len, struct store_hash *ret)
{
	pthread_once(&sha256_once, sha256_init);
	if (!sha256_ctx) {
		sha256_ctx = EVP_MD_CTX_new();
		if (!sha256_ctx || pthread_setspecific(sha256_key, sha256_ctx))
			abort();
	}
	unsigned int n = 0;
	if (!EVP_DigestInit_ex2(sha256_ctx, sha256_md, NULL) ||
	    !EVP_DigestUpdate(sha256_ctx, data, len) ||
	    !EVP_DigestFinal_ex(sha256_ctx, ret->b, &n) || n != STORE_HASH_LEN)
		abort();
}

bool store_hash_is_zero(const struct store_hash *h)
{
	static const struct store_hash zero;
	return !memcmp(h, &zero, sizeof(zero));
}

bool store_is_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	/* 16 bytes first: most data fails there, before a pass over it all. */
	size_t head = n < 16 ? n : 16;
	for (size_t i = 0; i < head; i++)
		if (b[i])
			return false;
	return !memcmp(b, b + head, n - head);
}

bool store_hash_eq(const struct store_hash *a, const struct store_hash *b)
{
	return !memcmp(a->b, b->b, STORE_HASH_LEN);
}

void store_hash_hex(const struct store_hash *h, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < STORE_HASH_LEN; i++) {
		out[2 * i] = digits[h->b[i] >> 4];
		out[2 * i + 1] = digits[h->b[i] & 15];
	}
	out[2 * STORE_HASH_LEN] = 0;
}

void store_hex(const struct store_hash *h, char out[STORE_HASH_HEX])
{
	store_hash_hex(h, out);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int store_hash_parse(const char *hex, struct store_hash *ret)
{
	if (strlen(hex) != 2 * STORE_HASH_LEN)
		return -EINVAL;
	for (int i = 0; i < STORE_HASH_LEN; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		ret->b[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

const char *store_kind_name(enum store_kind kind)
{
	switch (kind) {
	case STORE_BLOB: return "blob";
	case STORE_TREE: return "tree";
	case STORE_STATE: return "state";
	case STORE_COMMIT: return "commit";
	}
	return "?";
}

const char *store_codec_name(enum store_codec codec)
{
	switch (codec) {
	case STORE_CODEC_RAW: return "raw";
	case STORE_CODEC_ZSTD: return "zstd";
	case STORE_CODEC_DELTA: return "delta";
	}
	return "?";
}

/* ---- zstd ------------------------------------------------------------- */

#define BASE_CACHE 8

/* Per thread: zstd contexts, and the delta bases decoded last (many deltas
 * share a base: copies of one file). */
struct zctx {
	ZSTD_CCtx *c;
	ZSTD_DCtx *d;
	struct {
		struct store_hash h;
		size_t len;
		uint8_t *data;     /* STORE_CHUNK_MAX bytes once used */
	} base[BASE_CACHE];
	unsigned next;
};

static void zctx_free(void *p)
{
	struct zctx *z = p;
	if (!z)
		return;
	ZSTD_freeCCtx(z->c);
	ZSTD_freeDCtx(z->d);
	for (int i = 0; i < BASE_CACHE; i++)
		free(z->base[i].data);
	free(z);
}

static struct zctx *zctx_get(struct store *s)
{
	struct zctx *z = pthread_getspecific(s->zkey);
	if (z)
		return z;
	z = calloc(1, sizeof(*z));
	if (!z)
		return NULL;
	if (pthread_setspecific(s->zkey, z)) {
		free(z);
		return NULL;
	}
	return z;
}

const uint8_t *store_base_cache_get(struct store *s, const struct store_hash *h, size_t *len)
{
	struct zctx *z = atomic_load(&s->verifying) ? NULL : zctx_get(s);
	for (int i = 0; z && i < BASE_CACHE; i++)
		if (z->base[i].data && store_hash_eq(&z->base[i].h, h)) {
			*len = z->base[i].len;
			return z->base[i].data;
		}
	return NULL;
}

void store_base_cache_put(struct store *s, const struct store_hash *h, const void *data,
			  size_t len)
{
	struct zctx *z = atomic_load(&s->verifying) ? NULL : zctx_get(s);
	if (!z || len > STORE_CHUNK_MAX)
		return;
	unsigned i = z->next;
	if (!z->base[i].data && !(z->base[i].data = malloc(STORE_CHUNK_MAX)))
		return;
	z->next = (i + 1) % BASE_CACHE;
	z->base[i].h = *h;
	z->base[i].len = len;
	memcpy(z->base[i].data, data, len);
}

size_t store_compress_bound(size_t len)
{
	return ZSTD_compressBound(len);
}

int store_compress_prefix(struct store *s, const void *src, size_t len, const void *prefix,
			  size_t plen, void *dst, size_t cap, size_t *ret_len)
{
	struct zctx *z = zctx_get(s);
	if (!z)
		return store_err(ENOMEM, "out of memory");
	if (!z->c) {
		z->c = ZSTD_createCCtx();
		if (!z->c)
			return store_err(ENOMEM, "out of memory (zstd)");
		ZSTD_CCtx_setParameter(z->c, ZSTD_c_compressionLevel, s->level);
		ZSTD_CCtx_setParameter(z->c, ZSTD_c_checksumFlag, 0);
		ZSTD_CCtx_setParameter(z->c, ZSTD_c_contentSizeFlag, 1);
	}
	/* A prefix holds for the next frame only, and can be set only on a
	 * context that is not in a frame (a failed one leaves it there). */
	if (plen && (ZSTD_isError(ZSTD_CCtx_reset(z->c, ZSTD_reset_session_only)) ||
		     ZSTD_isError(ZSTD_CCtx_refPrefix(z->c, prefix, plen))))
		return store_err(EIO, "zstd refused a prefix");
	size_t n = ZSTD_compress2(z->c, dst, cap, src, len);
	if (ZSTD_isError(n))
		return store_err(EIO, "zstd compression failed: %s", ZSTD_getErrorName(n));
	*ret_len = n;
	return 0;
}

int store_compress(struct store *s, const void *src, size_t len, void *dst, size_t cap,
		   size_t *ret_len)
{
	return store_compress_prefix(s, src, len, NULL, 0, dst, cap, ret_len);
}

int store_decompress_prefix(struct store *s, const void *src, size_t len, const void *prefix,
			    size_t plen, void *dst, size_t size)
{
	struct zctx *z = zctx_get(s);
	if (!z)
		return store_err(ENOMEM, "out of memory");
	if (!z->d) {
		z->d = ZSTD_createDCtx();
		if (!z->d)
			return store_err(ENOMEM, "out of memory (zstd)");
	}
	if (plen && (ZSTD_isError(ZSTD_DCtx_reset(z->d, ZSTD_reset_session_only)) ||
		     ZSTD_isError(ZSTD_DCtx_refPrefix(z->d, prefix, plen))))
		return -EBADMSG;
	size_t n = ZSTD_decompressDCtx(z->d, dst, size, src, len);
	if (ZSTD_isError(n) || n != size)
		return -EBADMSG;
	return 0;
}

int store_decompress(struct store *s, const void *src, size_t len, void *dst, size_t size)
{
	return store_decompress_prefix(s, src, len, NULL, 0, dst, size);
}

/* ---- open / create ---------------------------------------------------- */

static int exec_simple(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

int store_exec(struct store *s, const char *sql)
{
	pthread_mutex_lock(&s->lock);
	int rc = exec_simple(s->db, sql);
	int r = rc == SQLITE_OK ? 0 : store_sqlerr(s, rc, sql);
	pthread_mutex_unlock(&s->lock);
	return r;
}

static const char schema_sql[] =
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value NOT NULL);"
	"CREATE TABLE objects(hash BLOB PRIMARY KEY CHECK(length(hash) = 32),"
	" kind INTEGER NOT NULL, size INTEGER NOT NULL, stored_size INTEGER NOT NULL,"
	" codec INTEGER NOT NULL, data BLOB NOT NULL);"
	"CREATE TABLE refs(name TEXT PRIMARY KEY,"
	" hash BLOB NOT NULL REFERENCES objects(hash));"
	"CREATE TABLE sessions(id INTEGER PRIMARY KEY, lock TEXT NOT NULL,"
	" pid INTEGER, host TEXT, started INTEGER);"
	"CREATE TABLE pins(session INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,"
	" hashes BLOB NOT NULL);"
	"CREATE INDEX pins_session ON pins(session);";

static char *path_join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *p = malloc(la + lb + 2);
	if (!p)
		return NULL;
	memcpy(p, a, la);
	p[la] = '/';
	memcpy(p + la + 1, b, lb + 1);
	return p;
}

static int mkdir_p(const char *path)
{
	char *p = strdup(path);
	if (!p)
		return -ENOMEM;
	for (char *q = p + 1; *q; q++) {
		if (*q != '/')
			continue;
		*q = 0;
		if (mkdir(p, 0755) && errno != EEXIST) {
			int e = errno;
			free(p);
			return -e;
		}
		*q = '/';
	}
	int r = mkdir(p, 0755) && errno != EEXIST ? -errno : 0;
	free(p);
	return r;
}

int store_init(const char *path, const struct store_init_opts *opts)
{
	uint32_t chunk = opts && opts->chunk_size ? opts->chunk_size : STORE_CHUNK_DEFAULT;
	int level = opts && opts->level ? opts->level : STORE_LEVEL_DEFAULT;
	if (chunk < STORE_CHUNK_MIN || chunk > STORE_CHUNK_MAX || (chunk & (chunk - 1)))
		return store_err(EINVAL, "chunk size %u is not a power of two between 4K and 1M",
				 chunk);
	if (level < 1 || level > 19)
		return store_err(EINVAL, "compression level %d is not between 1 and 19", level);
	int r = mkdir_p(path);
	if (r)
		return store_err(-r, "cannot create %s: %s", path, strerror(-r));
	char *db_path = path_join(path, "store.db"), *run = path_join(path, "run");
	if (!db_path || !run) {
		free(db_path);
		free(run);
		return store_err(ENOMEM, "out of memory");
	}
	sqlite3 *db = NULL;
	if (!access(db_path, F_OK)) {
		r = store_err(EEXIST, "%s is already a roam store", path);
		goto out;
	}
	if (mkdir(run, 0755) && errno != EEXIST) {
		r = store_err(errno, "cannot create %s: %s", run, strerror(errno));
		goto out;
	}
	int rc = sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				 SQLITE_OPEN_EXCLUSIVE, NULL);
	if (rc != SQLITE_OK) {
		r = store_err(EIO, "cannot create %s: %s", db_path,
			      db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		goto out;
	}
	char sql[1024];
	snprintf(sql, sizeof(sql),
		 "PRAGMA page_size=%d; PRAGMA auto_vacuum=INCREMENTAL; PRAGMA journal_mode=WAL;"
		 "PRAGMA application_id=%d; BEGIN; %s"
		 "INSERT INTO meta VALUES('chunk_size', %u), ('level', %d), ('created', %lld);"
		 "PRAGMA user_version=%d; COMMIT;",
		 STORE_PAGE_SIZE, STORE_APP_ID, schema_sql, chunk, level,
		 (long long)time(NULL), STORE_SCHEMA_VERSION);
	char *err = NULL;
	rc = sqlite3_exec(db, sql, NULL, NULL, &err);
	if (rc != SQLITE_OK) {
		r = store_err(rc == SQLITE_FULL ? ENOSPC : EIO, "cannot create the store in %s: %s",
			      path, err ? err : sqlite3_errstr(rc));
		sqlite3_free(err);
		sqlite3_close(db);
		db = NULL;
		unlink(db_path);
		goto out;
	}
	r = 0;
out:
	if (db)
		sqlite3_close(db);
	free(db_path);
	free(run);
	return r;
}

static int prepare(struct store *s, sqlite3_stmt **st, const char *sql)
{
	int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
	return rc == SQLITE_OK ? 0 : store_sqlerr(s, rc, "preparing a statement");
}

static int read_meta(struct store *s)
{
	sqlite3_stmt *st;
	int r = prepare(s, &st, "SELECT key, value FROM meta");
	if (r)
		return r;
	int rc;
	s->chunk_size = 0;
	s->level = STORE_LEVEL_DEFAULT;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(st, 0);
		if (!k)
			continue;
		if (!strcmp(k, "chunk_size"))
			s->chunk_size = (uint32_t)sqlite3_column_int64(st, 1);
		else if (!strcmp(k, "level"))
			s->level = sqlite3_column_int(st, 1);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return store_sqlerr(s, rc, "reading the store settings");
	uint32_t c = s->chunk_size;
	if (c < STORE_CHUNK_MIN || c > STORE_CHUNK_MAX || (c & (c - 1)))
		return store_err(EBADMSG, "store %s has a bad chunk size %u", s->path, c);
	if (s->level < 1 || s->level > 19)
		s->level = STORE_LEVEL_DEFAULT;
	return 0;
}

static int pragma_int(struct store *s, const char *sql, int64_t *ret)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ret = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

static int busy_handler(void *arg, int count)
{
	struct store *s = arg;
	/* Sleep 1, 2, 4.. up to 50 ms per try until the timeout is used up. */
	long waited = 0;
	for (int i = 0; i < count; i++)
		waited += i < 6 ? 1L << i : 50;
	if (waited >= s->lock_timeout_ms)
		return 0;
	long ms = count < 6 ? 1L << count : 50;
	struct timespec ts = { 0, ms * 1000000L };
	nanosleep(&ts, NULL);
	return 1;
}

int store_open(const char *path, unsigned flags, struct store **ret)
{
	struct store *s = calloc(1, sizeof(*s));
	if (!s)
		return store_err(ENOMEM, "out of memory");
	s->session_fd = -1;
	s->lock_timeout_ms = 30000;
	s->rdonly = flags & STORE_OPEN_RDONLY;
	if (pthread_mutex_init(&s->lock, NULL)) {
		free(s);
		return store_err(ENOMEM, "out of memory");
	}
	if (pthread_key_create(&s->zkey, zctx_free)) {
		pthread_mutex_destroy(&s->lock);
		free(s);
		return store_err(EAGAIN, "cannot create a thread key");
	}
	int r;
	s->path = strdup(path);
	s->db_path = path_join(path, "store.db");
	s->run_dir = path_join(path, "run");
	if (!s->path || !s->db_path || !s->run_dir) {
		r = store_err(ENOMEM, "out of memory");
		goto err;
	}
	struct stat sb;
	if (stat(s->db_path, &sb)) {
		if (errno == ENOENT)
			r = store_err(ENOENT, "%s is not a roam store (no store.db); create one "
				      "with 'roam init %s'", path, path);
		else
			r = store_err(errno, "cannot open %s: %s", s->db_path, strerror(errno));
		goto err;
	}
	int oflags = s->rdonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
	int rc = sqlite3_open_v2(s->db_path, &s->db, oflags | SQLITE_OPEN_FULLMUTEX, NULL);
	if (rc != SQLITE_OK) {
		r = store_err(EIO, "cannot open %s: %s", s->db_path,
			      s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		goto err;
	}
	sqlite3_busy_handler(s->db, busy_handler, s);
	int64_t app = 0, ver = 0;
	rc = pragma_int(s, "PRAGMA application_id", &app);
	if (rc == SQLITE_NOTADB || (rc == SQLITE_OK && app != STORE_APP_ID)) {
		r = store_err(EINVAL, "%s is not a roam store (a foreign or damaged SQLite "
			      "file); use another path", s->db_path);
		goto err;
	}
	if (rc == SQLITE_OK)
		rc = pragma_int(s, "PRAGMA user_version", &ver);
	if (rc != SQLITE_OK) {
		r = store_sqlerr(s, rc, "opening the store");
		goto err;
	}
	if (ver > STORE_SCHEMA_VERSION) {
		r = store_err(EPROTONOSUPPORT, "store %s has schema version %lld, newer than "
			      "this roam understands (%d); upgrade roam", path, (long long)ver,
			      STORE_SCHEMA_VERSION);
		goto err;
	}
	if (ver < 1) {
		r = store_err(EINVAL, "%s is not a roam store (schema version %lld)", path,
			      (long long)ver);
		goto err;
	}
	rc = exec_simple(s->db, "PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;"
			 "PRAGMA cache_size=-16384; PRAGMA wal_autocheckpoint=1000;");
	if (rc != SQLITE_OK) {
		r = store_sqlerr(s, rc, "opening the store");
		goto err;
	}
	r = read_meta(s);
	if (r)
		goto err;
	if ((r = prepare(s, &s->st_get, "SELECT kind, size, codec, data FROM objects WHERE hash=?")) ||
	    (r = prepare(s, &s->st_has, "SELECT 1 FROM objects WHERE hash=?")) ||
	    (r = prepare(s, &s->st_stat, "SELECT kind, size, stored_size, codec FROM objects WHERE hash=?")))
		goto err;
	if (!s->rdonly &&
	    ((r = prepare(s, &s->st_put, "INSERT OR IGNORE INTO objects(hash, kind, size, "
			  "stored_size, codec, data) VALUES(?,?,?,?,?,?)")) ||
	     (r = prepare(s, &s->st_pin, "INSERT INTO pins(session, hashes) VALUES(?,?)"))))
		goto err;
	*ret = s;
	return 0;
err:
	store_free(s);
	return r;
}

static void session_end(struct store *s)
{
	if (!s->session)
		return;
	char sql[128];
	snprintf(sql, sizeof(sql), "DELETE FROM sessions WHERE id=%lld", (long long)s->session);
	/* Deleting the session cascades to its pins. Failure only leaves pins
	 * that gc drops once the lock below is released. */
	exec_simple(s->db, sql);
	s->session = 0;
	if (s->session_lock) {
		char *p = path_join(s->run_dir, s->session_lock);
		if (p)
			unlink(p);
		free(p);
	}
	if (s->session_fd >= 0)
		close(s->session_fd);
	s->session_fd = -1;
	free(s->session_lock);
	s->session_lock = NULL;
}

void store_free(struct store *s)
{
	if (!s)
		return;
	if (s->db) {
		if (s->txn_depth)
			exec_simple(s->db, "ROLLBACK");
		session_end(s);
		sqlite3_finalize(s->st_get);
		sqlite3_finalize(s->st_has);
		sqlite3_finalize(s->st_put);
		sqlite3_finalize(s->st_pin);
		sqlite3_finalize(s->st_stat);
		sqlite3_close(s->db);
	}
	zctx_free(pthread_getspecific(s->zkey));
	pthread_key_delete(s->zkey);
	pthread_mutex_destroy(&s->lock);
	free(s->pend);
	free(s->path);
	free(s->db_path);
	free(s->run_dir);
	free(s);
}

int store_warm_page_cache(void)
{
	int hdr = 0;
	if (sqlite3_config(SQLITE_CONFIG_PCACHE_HDRSZ, &hdr) != SQLITE_OK)
		return -EALREADY;
	size_t line = ((size_t)STORE_PAGE_SIZE + (size_t)hdr + 7) & ~(size_t)7;
	size_t len = line * STORE_CACHE_PAGES;
	void *pool = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (pool == MAP_FAILED)
		return -errno;
	/* The kernel maps it in one call, then the writes fill the host's
	 * shadow page tables: a third of the cost of faulting page by page.
	 * (A kernel before 5.14 refuses it, and the memset does it all.) */
	if (madvise(pool, len, MADV_POPULATE_WRITE) < 0 && errno != EINVAL) {
		int e = errno;
		munmap(pool, len);
		return -e;
	}
	memset(pool, 0, len);
	if (sqlite3_config(SQLITE_CONFIG_PAGECACHE, pool, (int)line, STORE_CACHE_PAGES) != SQLITE_OK) {
		munmap(pool, len);
		return -EALREADY;
	}
	return 0;   /* the pool lives as long as the process */
}

void store_release_cache(struct store *s)
{
	pthread_mutex_lock(&s->lock);
	sqlite3_db_release_memory(s->db);
	pthread_mutex_unlock(&s->lock);
}

int store_set_autocheckpoint(struct store *s, bool on)
{
	pthread_mutex_lock(&s->lock);
	int rc = exec_simple(s->db, on ? "PRAGMA wal_autocheckpoint=1000" : "PRAGMA wal_autocheckpoint=0");
	if (rc == SQLITE_OK)
		s->no_autocheckpoint = !on;
	int r = rc == SQLITE_OK ? 0 : store_sqlerr(s, rc, "setting the WAL checkpoints");
	pthread_mutex_unlock(&s->lock);
	return r;
}

static void *checkpoint_main(void *arg)
{
	char *path = arg;
	sqlite3 *db;
	/* A failure leaves the WAL to the next checkpoint: nothing is lost.
	 * A read first: a connection that has not read finds no WAL. */
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) ==
	    SQLITE_OK && exec_simple(db, "PRAGMA schema_version") == SQLITE_OK)
		sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	sqlite3_close(db);
	free(path);
	return NULL;
}

int store_checkpoint_background(struct store *s)
{
	char *path = strdup(s->db_path);
	pthread_attr_t a;
	pthread_t th;
	if (!path || pthread_attr_init(&a)) {
		free(path);
		return -ENOMEM;
	}
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	int rc = pthread_create(&th, &a, checkpoint_main, path);
	pthread_attr_destroy(&a);
	if (rc) {
		free(path);
		return -rc;
	}
	return 0;
}

void store_set_lock_timeout(struct store *s, int ms)
{
	s->lock_timeout_ms = ms < 0 ? 0 : ms;
}

const char *store_path(const struct store *s) { return s->path; }
const char *store_run_dir(const struct store *s) { return s->run_dir; }
uint32_t store_chunk_size(const struct store *s) { return s->chunk_size; }
int store_level(const struct store *s) { return s->level; }

/* ---- sessions (see store_int.h: gc and concurrent writers) ------------ */

int store_session_ensure(struct store *s)
{
	if (s->session)
		return 0;
	if (s->rdonly)
		return store_err(EROFS, "store %s was opened read-only", s->path);
	uint64_t nonce;
	if (getrandom(&nonce, sizeof(nonce), 0) != sizeof(nonce))
		nonce = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)s;
	char name[96];
	snprintf(name, sizeof(name), "writer-%ld-%016llx.lock", (long)getpid(),
		 (unsigned long long)nonce);
	char *p = path_join(s->run_dir, name);
	if (!p)
		return store_err(ENOMEM, "out of memory");
	if (mkdir(s->run_dir, 0755) && errno != EEXIST) {
		int e = errno;
		free(p);
		return store_err(e, "cannot create %s: %s", s->run_dir, strerror(e));
	}
	int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB)) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		free(p);
		return store_err(e, "cannot create the writer lock in %s: %s", s->run_dir,
				 strerror(e));
	}
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, "INSERT INTO sessions(lock, pid, host, started) "
				    "VALUES(?,?,?,?)", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, getpid());
		sqlite3_bind_text(st, 3, host, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, time(NULL));
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
	}
	if (rc != SQLITE_DONE) {
		int r = store_sqlerr(s, rc, "registering a writer");
		unlink(p);
		close(fd);
		free(p);
		return r;
	}
	free(p);
	s->session = sqlite3_last_insert_rowid(s->db);
	s->session_fd = fd;
	s->session_lock = strdup(name);
	return 0;
}

int store_unpin(struct store *s)
{
	if (!s->session)
		return 0;
	char sql[128];
	snprintf(sql, sizeof(sql), "DELETE FROM pins WHERE session=%lld", (long long)s->session);
	return store_exec(s, sql);
}

/* ---- transactions ----------------------------------------------------- */

int store_txn_begin(struct store *s)
{
	if (s->txn_depth) {
		s->txn_depth++;
		return 0;
	}
	int r = 0;
	pthread_mutex_lock(&s->lock);
	r = store_session_ensure(s);
	if (!r) {
		int rc = exec_simple(s->db, "BEGIN IMMEDIATE");
		if (rc != SQLITE_OK)
			r = store_sqlerr(s, rc, "starting a write");
	}
	if (!r) {
		s->txn_depth = 1;
		s->txn_failed = false;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

int store_txn_commit(struct store *s)
{
	if (!s->txn_depth)
		return store_err(EINVAL, "commit without a transaction");
	if (--s->txn_depth)
		return 0;
	pthread_mutex_lock(&s->lock);
	int r = 0;
	if (!s->txn_failed && s->n_pend) {
		/* This transaction's pins, as one row (see store_int.h). */
		sqlite3_stmt *st = s->st_pin;
		sqlite3_bind_int64(st, 1, s->session);
		sqlite3_bind_blob64(st, 2, s->pend, s->n_pend * sizeof(*s->pend), SQLITE_STATIC);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		if (rc != SQLITE_DONE) {
			r = store_sqlerr(s, rc, "pinning objects");
			s->txn_failed = true;
		}
	}
	s->n_pend = 0;
	if (s->txn_failed) {
		exec_simple(s->db, "ROLLBACK");
		if (!r)
			r = store_err(EIO, "an earlier write in this transaction failed; nothing "
				      "was written");
	} else {
		int rc = exec_simple(s->db, "COMMIT");
		if (rc != SQLITE_OK) {
			r = store_sqlerr(s, rc, "committing a write");
			exec_simple(s->db, "ROLLBACK");
		}
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

void store_txn_abort(struct store *s)
{
	if (!s->txn_depth)
		return;
	if (--s->txn_depth) {
		s->txn_failed = true;
		return;
	}
	pthread_mutex_lock(&s->lock);
	s->n_pend = 0;
	exec_simple(s->db, "ROLLBACK");
	pthread_mutex_unlock(&s->lock);
}

int store_pend_locked(struct store *s, const struct store_hash *h)
{
	if (s->n_pend == s->cap_pend) {
		size_t cap = s->cap_pend ? s->cap_pend * 2 : 1024;
		void *p = realloc(s->pend, cap * sizeof(*s->pend));
		if (!p)
			return store_err(ENOMEM, "out of memory");
		s->pend = p;
		s->cap_pend = cap;
	}
	s->pend[s->n_pend++] = *h;
	return 0;
}
