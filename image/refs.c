/* Refs: validated names pointing at existing objects, changed only by
 * compare-and-swap inside a transaction and made durable (synchronous=FULL
 * for the commit). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "image/store_int.h"

bool store_ref_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > STORE_REF_MAX)
		return false;
	const char *comp = name;
	for (size_t i = 0; i <= n; i++) {
		char c = name[i];
		if (c == '/' || c == 0) {
			size_t len = (size_t)(name + i - comp);
			if (len == 0 || comp[0] == '.')
				return false;   /* empty, ".", "..", hidden */
			comp = name + i + 1;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static int ref_get_locked(struct store *s, const char *name, struct store_hash *ret)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, "SELECT hash FROM refs WHERE name=?", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return store_sqlerr(s, rc, "reading a ref");
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	int r;
	if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 0) == STORE_HASH_LEN) {
		memcpy(ret->b, sqlite3_column_blob(st, 0), STORE_HASH_LEN);
		r = 0;
	} else if (rc == SQLITE_ROW) {
		r = store_err(EBADMSG, "ref %s holds a malformed hash; run 'roam verify'", name);
	} else if (rc == SQLITE_DONE) {
		r = store_err(ENOENT, "ref %s does not exist; 'roam ls' lists refs", name);
	} else {
		r = store_sqlerr(s, rc, "reading a ref");
	}
	sqlite3_finalize(st);
	return r;
}

int store_ref_get(struct store *s, const char *name, struct store_hash *ret)
{
	if (!store_ref_valid(name))
		return store_err(EINVAL, "'%s' is not a valid ref name", name);
	pthread_mutex_lock(&s->lock);
	int r = ref_get_locked(s, name, ret);
	pthread_mutex_unlock(&s->lock);
	return r;
}

static int step_done(struct store *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : store_sqlerr(s, rc, what);
}

static int cas_locked(struct store *s, const char *name, const struct store_hash *old,
		      const struct store_hash *new)
{
	struct store_hash cur;
	int r = ref_get_locked(s, name, &cur);
	if (r && r != -ENOENT)
		return r;
	bool exists = r == 0;
	if (exists != (old != NULL) || (old && !store_hash_eq(&cur, old)))
		return store_err(ESTALE, "ref %s was changed by someone else; look again and "
				 "retry", name);
	sqlite3_stmt *st;
	int rc;
	if (!new) {
		rc = sqlite3_prepare_v2(s->db, "DELETE FROM refs WHERE name=?", -1, &st, NULL);
		if (rc != SQLITE_OK)
			return store_sqlerr(s, rc, "deleting a ref");
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		return step_done(s, st, "deleting a ref");
	}
	r = store_pin_locked(s, new);
	if (r < 0)
		return r;
	if (r == 0) {
		char hex[STORE_HASH_HEX];
		store_hex(new, hex);
		return store_err(ENOENT, "cannot point ref %s at %s: no such object", name, hex);
	}
	rc = sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO refs(name, hash) VALUES(?,?)",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return store_sqlerr(s, rc, "updating a ref");
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, new->b, STORE_HASH_LEN, SQLITE_STATIC);
	return step_done(s, st, "updating a ref");
}

int store_ref_cas(struct store *s, const char *name, const struct store_hash *old,
		  const struct store_hash *new)
{
	if (!store_ref_valid(name))
		return store_err(EINVAL, "'%s' is not a valid ref name (use letters, digits, "
				 "'.', '_', '-' and '/')", name);
	bool outer = s->txn_depth == 0;
	if (outer && (store_exec(s, "PRAGMA synchronous=FULL")))
		return -EIO;
	int r = store_txn_begin(s);
	if (!r) {
		pthread_mutex_lock(&s->lock);
		r = cas_locked(s, name, old, new);
		pthread_mutex_unlock(&s->lock);
		if (r)
			store_txn_abort(s);
		else
			r = store_txn_commit(s);
	}
	if (outer)
		store_exec(s, "PRAGMA synchronous=NORMAL");
	return r;
}

int store_ref_list(struct store *s, const char *prefix,
		   int (*fn)(void *arg, const char *name, const struct store_hash *h),
		   void *arg)
{
	if (!prefix)
		prefix = "";
	/* Collect first: fn may call back into the store. */
	pthread_mutex_lock(&s->lock);
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, "SELECT name, hash FROM refs WHERE substr(name, 1, ?)"
				    " = ? ORDER BY name", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		int r = store_sqlerr(s, rc, "listing refs");
		pthread_mutex_unlock(&s->lock);
		return r;
	}
	sqlite3_bind_int(st, 1, (int)strlen(prefix));
	sqlite3_bind_text(st, 2, prefix, -1, SQLITE_STATIC);
	size_t n = 0, cap = 0;
	struct ent { char *name; struct store_hash h; } *v = NULL;
	int r = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_bytes(st, 1) != STORE_HASH_LEN)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			void *nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				r = store_err(ENOMEM, "out of memory");
				break;
			}
			v = nv;
		}
		v[n].name = strdup((const char *)sqlite3_column_text(st, 0));
		if (!v[n].name) {
			r = store_err(ENOMEM, "out of memory");
			break;
		}
		memcpy(v[n].h.b, sqlite3_column_blob(st, 1), STORE_HASH_LEN);
		n++;
	}
	if (!r && rc != SQLITE_DONE)
		r = store_sqlerr(s, rc, "listing refs");
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < n && !r; i++)
		r = fn(arg, v[i].name, &v[i].h);
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
	return r;
}
