/* Reachability: gc (mark from refs and live writers' pins, sweep the rest in
 * one transaction; see store_int.h for why that cannot race with an
 * importer), du and logical sizes. */
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include "image/store_int.h"

struct hstack {
	struct store_hash *v;
	size_t n, cap;
};

static int hstack_push(struct hstack *st, const struct store_hash *h)
{
	if (st->n == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 1024;
		void *v = realloc(st->v, cap * sizeof(*st->v));
		if (!v)
			return store_err(ENOMEM, "out of memory");
		st->v = v;
		st->cap = cap;
	}
	st->v[st->n++] = *h;
	return 0;
}

static int push_child(void *arg, const struct store_hash *h, enum store_kind kind)
{
	(void)kind;
	return hstack_push(arg, h);
}

/* Drops sessions whose writer is gone. Caller holds s->lock and a write
 * transaction. Returns the number of live sessions or -errno. */
static int reap_sessions(struct store *s, uint64_t *ret_dead)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, "SELECT id, lock FROM sessions", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return store_sqlerr(s, rc, "listing writers");
	int64_t dead[256];
	int ndead = 0, live = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && ndead < 256) {
		int64_t id = sqlite3_column_int64(st, 0);
		const char *lock = (const char *)sqlite3_column_text(st, 1);
		if (id == s->session) {
			live++;
			continue;
		}
		bool alive = false;
		if (lock && !strchr(lock, '/')) {
			int dfd = open(s->run_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			int fd = dfd >= 0 ? openat(dfd, lock, O_RDWR | O_CLOEXEC) : -1;
			if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) && errno == EWOULDBLOCK)
				alive = true;
			else if (fd >= 0)
				unlinkat(dfd, lock, 0);
			if (fd >= 0)
				close(fd);
			if (dfd >= 0)
				close(dfd);
		}
		if (alive)
			live++;
		else
			dead[ndead++] = id;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return store_sqlerr(s, rc, "listing writers");
	for (int i = 0; i < ndead; i++) {
		char sql[96];
		snprintf(sql, sizeof(sql), "DELETE FROM sessions WHERE id=%lld", (long long)dead[i]);
		rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			return store_sqlerr(s, rc, "dropping a dead writer");
	}
	*ret_dead = (uint64_t)ndead;
	return live;
}

static int collect_roots(struct store *s, struct hstack *st)
{
	sqlite3_stmt *q;
	int rc = sqlite3_prepare_v2(s->db, "SELECT hash FROM refs UNION ALL SELECT hashes FROM pins",
				    -1, &q, NULL);
	if (rc != SQLITE_OK)
		return store_sqlerr(s, rc, "listing gc roots");
	int r = 0;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW && !r) {
		const uint8_t *p = sqlite3_column_blob(q, 0);
		size_t n = (size_t)sqlite3_column_bytes(q, 0) / STORE_HASH_LEN;
		for (size_t i = 0; i < n && !r; i++) {
			struct store_hash h;
			memcpy(h.b, p + i * STORE_HASH_LEN, STORE_HASH_LEN);
			r = hstack_push(st, &h);
		}
	}
	sqlite3_finalize(q);
	if (!r && rc != SQLITE_DONE)
		r = store_sqlerr(s, rc, "listing gc roots");
	return r;
}

/* A delta blob reaches its bases. */
static int mark_delta_bases(struct store *s, const struct store_hash *h, struct hstack *st)
{
	struct store_raw raw;
	int r = store_fetch_raw(s, h, &raw);
	if (r)
		return r;
	struct store_hash base[STORE_DELTA_BASES];
	int n = store_delta_bases(raw.data, raw.info.stored_size, base);
	store_raw_release(&raw);
	if (n < 0) {
		char hex[STORE_HASH_HEX];
		store_hex(h, hex);
		return store_err(EBADMSG, "object %s is corrupt (a delta without bases); gc "
				 "stopped without deleting anything; run 'roam verify'", hex);
	}
	for (int i = 0; i < n && !r; i++)
		r = hstack_push(st, &base[i]);
	return r;
}

/* Marks everything reachable from the stack. Takes s->lock per lookup. */
static int mark(struct store *s, struct hstack *st, struct hashset *marked,
		const struct store_progress *progress)
{
	int r = 0;
	uint64_t n = 0;
	while (st->n && !r) {
		struct store_hash h = st->v[--st->n];
		int added = hashset_add(marked, &h);
		if (added < 0)
			return store_err(ENOMEM, "out of memory");
		if (!added)
			continue;
		if (progress && progress->fn && ++n % 4096 == 0)
			progress->fn(progress->arg, 0, 0, n);
		struct store_obj_info info;
		char hex[STORE_HASH_HEX];
		r = store_stat(s, &h, &info);
		if (r == -ENOENT) {
			store_hex(&h, hex);
			return store_err(EBADMSG, "object %s is reachable but missing; gc stopped "
					 "without deleting anything; run 'roam verify'", hex);
		}
		if (r)
			return r;
		if (info.codec == STORE_CODEC_DELTA) {
			r = mark_delta_bases(s, &h, st);
			continue;
		}
		if (info.kind != STORE_TREE && info.kind != STORE_COMMIT)
			continue;
		void *data;
		size_t len;
		r = store_get(s, &h, NULL, &data, &len);
		if (r) {
			store_hex(&h, hex);
			return store_err(-r, "object %s cannot be read (%s); gc stopped without "
					 "deleting anything; run 'roam verify'", hex,
					 store_last_error());
		}
		r = store_children(info.kind, data, len, push_child, st);
		free(data);
	}
	return r;
}

int store_gc(struct store *s, const struct store_progress *progress,
	     struct store_gc_stats *ret)
{
	struct store_gc_stats stats = { 0 };
	struct hstack st = { 0 };
	struct hashset *marked = hashset_new();
	if (!marked)
		return store_err(ENOMEM, "out of memory");
	int r = store_txn_begin(s);
	if (r) {
		hashset_free(marked);
		return r;
	}
	pthread_mutex_lock(&s->lock);
	int live = reap_sessions(s, &stats.dead_sessions);
	r = live < 0 ? live : collect_roots(s, &st);
	pthread_mutex_unlock(&s->lock);
	stats.pinned_sessions = live > 0 ? (uint64_t)live - 1 : 0;   /* not counting gc's own */
	if (!r)
		r = mark(s, &st, marked, progress);
	/* Sweep: list everything, delete what is not marked. */
	struct hstack dead = { 0 };
	uint64_t dead_bytes = 0;
	pthread_mutex_lock(&s->lock);
	sqlite3_stmt *q = NULL;
	if (!r) {
		int rc = sqlite3_prepare_v2(s->db, "SELECT hash, stored_size FROM objects", -1, &q,
					    NULL);
		if (rc != SQLITE_OK)
			r = store_sqlerr(s, rc, "listing objects");
		while (!r && (rc = sqlite3_step(q)) == SQLITE_ROW) {
			struct store_hash h;
			stats.objects++;
			if (sqlite3_column_bytes(q, 0) != STORE_HASH_LEN)
				continue;
			memcpy(h.b, sqlite3_column_blob(q, 0), STORE_HASH_LEN);
			if (hashset_has(marked, &h))
				continue;
			dead_bytes += (uint64_t)sqlite3_column_int64(q, 1);
			r = hstack_push(&dead, &h);
		}
		if (!r && rc != SQLITE_DONE)
			r = store_sqlerr(s, rc, "listing objects");
		sqlite3_finalize(q);
		q = NULL;
	}
	if (!r && dead.n) {
		int rc = sqlite3_prepare_v2(s->db, "DELETE FROM objects WHERE hash=?", -1, &q, NULL);
		if (rc != SQLITE_OK)
			r = store_sqlerr(s, rc, "deleting objects");
		for (size_t i = 0; !r && i < dead.n; i++) {
			sqlite3_bind_blob(q, 1, dead.v[i].b, STORE_HASH_LEN, SQLITE_STATIC);
			rc = sqlite3_step(q);
			sqlite3_reset(q);
			if (rc != SQLITE_DONE)
				r = store_sqlerr(s, rc, "deleting objects");
			if (progress && progress->fn && i % 4096 == 0)
				progress->fn(progress->arg, 0, 0, i);
		}
		sqlite3_finalize(q);
	}
	pthread_mutex_unlock(&s->lock);
	if (r) {
		store_txn_abort(s);
	} else {
		r = store_txn_commit(s);
		stats.freed_objects = dead.n;
		stats.freed_bytes = dead_bytes;
	}
	free(st.v);
	free(dead.v);
	hashset_free(marked);
	if (r)
		return r;
	/* Give the space back to the filesystem. Failure here loses nothing. */
	store_exec(s, "PRAGMA incremental_vacuum");
	store_exec(s, "PRAGMA wal_checkpoint(TRUNCATE)");
	if (ret)
		*ret = stats;
	return 0;
}

/* ---- sizes -------------------------------------------------------------- */

/* Non-zero bytes under a tree node (duplicates counted). */
static int tree_nonzero(struct store *s, const struct store_hash *h, uint64_t *ret)
{
	void *data;
	size_t len;
	enum store_kind kind;
	int r = store_get(s, h, &kind, &data, &len);
	if (r)
		return r;
	struct tree_node n;
	if (kind != STORE_TREE || (r = tree_node_parse(data, len, &n))) {
		free(data);
		char hex[STORE_HASH_HEX];
		store_hex(h, hex);
		return store_err(EBADMSG, "object %s is not a valid tree", hex);
	}
	uint64_t sum = 0;
	for (uint32_t i = 0; i < n.count && !r; i++) {
		struct store_hash c;
		memcpy(c.b, n.children + (size_t)i * STORE_HASH_LEN, STORE_HASH_LEN);
		if (store_hash_is_zero(&c))
			continue;
		if (n.level == 0) {
			sum += tree_child_size(&n, i);
		} else {
			uint64_t sub;
			r = tree_nonzero(s, &c, &sub);
			sum += sub;
		}
	}
	free(data);
	*ret = sum;
	return r;
}

/* logical and non-zero bytes of what h names. */
static int obj_sizes(struct store *s, const struct store_hash *h, uint64_t *logical,
		     uint64_t *nonzero, int depth)
{
	struct store_obj_info info;
	int r = store_stat(s, h, &info);
	if (r)
		return r;
	if (info.kind == STORE_TREE) {
		struct store_tree *t;
		if ((r = store_tree_open(s, h, &t)))
			return r;
		*logical = store_tree_size(t);
		store_tree_free(t);
		return nonzero ? tree_nonzero(s, h, nonzero) : 0;
	}
	if (info.kind != STORE_COMMIT || depth > 0) {
		*logical = info.size;
		if (nonzero)
			*nonzero = info.size;
		return 0;
	}
	void *data;
	size_t len;
	if ((r = store_get(s, h, NULL, &data, &len)))
		return r;
	/* A commit's size is that of its roots (not of its parents). */
	struct hstack roots = { 0 };
	r = store_children(STORE_COMMIT, data, len, push_child, &roots);
	free(data);
	*logical = 0;
	if (nonzero)
		*nonzero = 0;
	for (size_t i = 0; i < roots.n && !r; i++) {
		struct store_obj_info ri;
		if ((r = store_stat(s, &roots.v[i], &ri)))
			break;
		if (ri.kind == STORE_COMMIT)
			continue;   /* a parent */
		uint64_t l = 0, z = 0;
		r = obj_sizes(s, &roots.v[i], &l, nonzero ? &z : NULL, depth + 1);
		*logical += l;
		if (nonzero)
			*nonzero += z;
	}
	free(roots.v);
	return r;
}

int store_logical_size(struct store *s, const struct store_hash *h, uint64_t *ret)
{
	return obj_sizes(s, h, ret, NULL, 0);
}

struct du_walk {
	struct store *s;
	struct store_usage *u;
};

static int du_ref(void *arg, const char *name, const struct store_hash *h)
{
	struct du_walk *w = arg;
	uint64_t l = 0, z = 0;
	int r = obj_sizes(w->s, h, &l, &z, 0);
	if (r)
		return store_err(-r, "ref %s: %s", name, store_last_error());
	w->u->logical += l;
	w->u->referenced += z;
	w->u->refs++;
	return 0;
}

int store_du(struct store *s, struct store_usage *ret)
{
	struct store_usage u = { 0 };
	pthread_mutex_lock(&s->lock);
	sqlite3_stmt *q;
	int rc = sqlite3_prepare_v2(s->db, "SELECT kind, count(*), sum(size), sum(stored_size), "
				    "codec = 2 FROM objects GROUP BY kind, codec = 2", -1, &q, NULL);
	int r = 0;
	if (rc != SQLITE_OK) {
		r = store_sqlerr(s, rc, "counting objects");
	} else {
		while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
			uint64_t n = (uint64_t)sqlite3_column_int64(q, 1);
			u.objects += n;
			u.unique += (uint64_t)sqlite3_column_int64(q, 2);
			u.stored += (uint64_t)sqlite3_column_int64(q, 3);
			if (sqlite3_column_int(q, 4))
				u.deltas += n;
			switch (sqlite3_column_int(q, 0)) {
			case STORE_BLOB: u.blobs += n; break;
			case STORE_TREE: u.trees += n; break;
			case STORE_COMMIT: u.commits += n; break;
			case STORE_STATE: u.states += n; break;
			}
		}
		if (rc != SQLITE_DONE)
			r = store_sqlerr(s, rc, "counting objects");
		sqlite3_finalize(q);
	}
	pthread_mutex_unlock(&s->lock);
	if (r)
		return r;
	struct du_walk w = { s, &u };
	if ((r = store_ref_list(s, NULL, du_ref, &w)))
		return r;
	struct stat sb;
	if (!stat(s->db_path, &sb))
		u.file_bytes += (uint64_t)sb.st_blocks * 512;
	char wal[4200];
	snprintf(wal, sizeof(wal), "%s-wal", s->db_path);
	if (!stat(wal, &sb))
		u.file_bytes += (uint64_t)sb.st_blocks * 512;
	*ret = u;
	return 0;
}
