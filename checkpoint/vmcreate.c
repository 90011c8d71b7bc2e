/* roam create: import a VM's kernel, initrd and disks and make its first
 * commit (powered off). Also the small VM-ref operations: tags, rollback,
 * removal, and whether a VM runs. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>
#include "checkpoint/vmstore.h"
#include "image/commit.h"

static int import_file(struct store *s, const char *path, struct store_hash *ret,
		       char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return -errno;
	}
	int rc = store_import_fd(s, fd, NULL, ret, NULL);
	close(fd);
	if (rc < 0)
		snprintf(err, errlen, "cannot import %s: %s", path, store_last_error());
	return rc;
}

int ckpt_vm_create(struct store *s, const struct ckpt_create_opts *o, char *err, size_t errlen)
{
	if (!ckpt_name_valid(o->name)) {
		snprintf(err, errlen, "'%s' is not a valid VM name (letters, digits, '.', '_', '-')", o->name);
		return -EINVAL;
	}
	char ref[256];
	snprintf(ref, sizeof(ref), "vms/%s/head", o->name);
	struct store_hash h;
	if (store_ref_get(s, ref, &h) == 0) {
		snprintf(err, errlen, "VM %s exists already ('roam rm %s' removes it)", o->name, o->name);
		return -EEXIST;
	}
	struct ckpt_config cfg = { .mem = o->mem, .cpus = o->cpus, .disks = o->ndisks, .rng = o->rng,
				   .created = time(NULL) };
	snprintf(cfg.name, sizeof(cfg.name), "%s", o->name);
	snprintf(cfg.append, sizeof(cfg.append), "%s", o->append ? o->append : "");
	for (int i = 0; i < o->ndisks; i++)
		cfg.readonly[i] = o->readonly[i] ? '1' : '0';
	struct store_commit c = { .time = cfg.created, .message = "created" };
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	c.host = host;
	char *json = NULL;
	size_t json_len;
	int rc = ckpt_config_encode(&cfg, &json, &json_len);
	if (rc < 0) {
		snprintf(err, errlen, "out of memory");
		return rc;
	}
	if ((rc = store_put(s, STORE_BLOB, json, json_len, &h)) < 0 ||
	    (rc = store_commit_add_root(&c, "config", STORE_BLOB, &h)) < 0) {
		snprintf(err, errlen, "%s", store_last_error());
		goto out;
	}
	if ((rc = import_file(s, o->kernel, &h, err, errlen)) < 0 ||
	    (rc = store_commit_add_root(&c, "kernel", STORE_TREE, &h)) < 0)
		goto out;
	if (o->initrd && ((rc = import_file(s, o->initrd, &h, err, errlen)) < 0 ||
			  (rc = store_commit_add_root(&c, "initrd", STORE_TREE, &h)) < 0))
		goto out;
	for (int i = 0; i < o->ndisks; i++) {
		char name[16];
		snprintf(name, sizeof(name), "disk%d", i);
		if ((rc = import_file(s, o->disks[i], &h, err, errlen)) < 0 ||
		    (rc = store_commit_add_root(&c, name, STORE_TREE, &h)) < 0)
			goto out;
	}
	if ((rc = store_commit_put(s, &c, &h)) < 0 || (rc = store_ref_cas(s, ref, NULL, &h)) < 0) {
		snprintf(err, errlen, "%s", rc == -ESTALE ? "another roam created the VM at the same time"
							: store_last_error());
		goto out;
	}
	store_unpin(s);
out:
	free(json);
	return rc;
}

/* ---- refs of one VM ---------------------------------------------------- */

static int check_vm(struct store *s, const char *name, struct store_hash *head, char *err, size_t errlen)
{
	char ref[256];
	if (!ckpt_name_valid(name)) {
		snprintf(err, errlen, "'%s' is not a valid VM name", name);
		return -EINVAL;
	}
	snprintf(ref, sizeof(ref), "vms/%s/head", name);
	int rc = store_ref_get(s, ref, head);
	if (rc == -ENOENT)
		snprintf(err, errlen, "no VM named %s in this store ('roam ls' lists them)", name);
	else if (rc < 0)
		snprintf(err, errlen, "%s", store_last_error());
	return rc;
}

int ckpt_vm_running(struct store *s, const char *name, pid_t *pid, char *host, size_t hostlen)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/vm-%s.lock", store_run_dir(s), name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	int running = 0;
	if (flock(fd, LOCK_SH | LOCK_NB) < 0) {
		running = errno == EWOULDBLOCK ? 1 : -errno;
	} else {
		flock(fd, LOCK_UN);
	}
	if (running == 1) {
		char buf[512] = "";
		ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
		long p = 0;
		char h[256] = "";
		if (n > 0 && sscanf(buf, "%ld %255s", &p, h) >= 1) {
			if (pid)
				*pid = (pid_t)p;
			if (host)
				snprintf(host, hostlen, "%s", h);
		}
	}
	close(fd);
	return running;
}

static int refuse_running(struct store *s, const char *name, const char *what, char *err, size_t errlen)
{
	pid_t pid = 0;
	int r = ckpt_vm_running(s, name, &pid, NULL, 0);
	if (r == 1) {
		snprintf(err, errlen, "VM %s is running (pid %d): %s", name, (int)pid, what);
		return -EBUSY;
	}
	return r < 0 ? r : 0;
}

static bool tag_valid(const char *tag)
{
	return ckpt_name_valid(tag);
}

int ckpt_vm_tag(struct store *s, const char *name, const char *tag, const char *target,
		char *err, size_t errlen)
{
	struct store_hash head, h;
	int rc = check_vm(s, name, &head, err, errlen);
	if (rc < 0)
		return rc;
	if (!tag_valid(tag)) {
		snprintf(err, errlen, "'%s' is not a valid tag (letters, digits, '.', '_', '-')", tag);
		return -EINVAL;
	}
	h = head;
	if (target) {
		char ref[300];
		snprintf(ref, sizeof(ref), "vms/%s/checkpoints/%s", name, target);
		if (store_ref_get(s, ref, &h) < 0 && store_resolve_prefix(s, target, &h) < 0) {
			snprintf(err, errlen, "VM %s has no checkpoint or commit '%s'", name, target);
			return -ENOENT;
		}
	}
	char ref[300];
	snprintf(ref, sizeof(ref), "vms/%s/checkpoints/%s", name, tag);
	rc = store_ref_cas(s, ref, NULL, &h);
	if (rc == -ESTALE)
		snprintf(err, errlen, "VM %s already has a checkpoint '%s' ('roam checkpoint --delete %s %s')",
			 name, tag, name, tag);
	else if (rc < 0)
		snprintf(err, errlen, "%s", store_last_error());
	return rc;
}

int ckpt_vm_untag(struct store *s, const char *name, const char *tag, char *err, size_t errlen)
{
	struct store_hash head, h;
	int rc = check_vm(s, name, &head, err, errlen);
	if (rc < 0)
		return rc;
	char ref[300];
	snprintf(ref, sizeof(ref), "vms/%s/checkpoints/%s", name, tag);
	if (!tag_valid(tag) || store_ref_get(s, ref, &h) < 0) {
		snprintf(err, errlen, "VM %s has no checkpoint '%s'", name, tag);
		return -ENOENT;
	}
	rc = store_ref_cas(s, ref, &h, NULL);
	if (rc < 0)
		snprintf(err, errlen, "%s", store_last_error());
	return rc;
}

int ckpt_vm_rollback(struct store *s, const char *name, const char *tag, char *err, size_t errlen)
{
	struct store_hash head, h;
	int rc = check_vm(s, name, &head, err, errlen);
	if (rc < 0)
		return rc;
	if ((rc = refuse_running(s, name, "stop it first, or use --stop", err, errlen)) < 0)
		return rc;
	char ref[300];
	snprintf(ref, sizeof(ref), "vms/%s/checkpoints/%s", name, tag);
	if (!tag_valid(tag) || store_ref_get(s, ref, &h) < 0) {
		snprintf(err, errlen, "VM %s has no checkpoint '%s' ('roam log %s' lists them)", name, tag, name);
		return -ENOENT;
	}
	if (store_hash_eq(&h, &head))
		return 0;
	/* Keep the replaced head reachable, then move head. */
	char keep[300];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(keep, sizeof(keep), "vms/%s/replaced/%lld.%09ld", name, (long long)ts.tv_sec, ts.tv_nsec);
	if ((rc = store_txn_begin(s)) < 0)
		goto fail;
	if ((rc = store_ref_cas(s, keep, NULL, &head)) < 0) {
		store_txn_abort(s);
		goto fail;
	}
	snprintf(ref, sizeof(ref), "vms/%s/head", name);
	if ((rc = store_ref_cas(s, ref, &head, &h)) < 0) {
		store_txn_abort(s);
		goto fail;
	}
	if ((rc = store_txn_commit(s)) < 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "%s", rc == -ESTALE ? "the VM changed meanwhile; try again" : store_last_error());
	return rc;
}

struct collect {
	char **names;
	size_t n, cap;
};

static int collect_ref(void *arg, const char *name, const struct store_hash *h)
{
	struct collect *c = arg;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		char **v = realloc(c->names, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		c->names = v;
		c->cap = cap;
	}
	if (!(c->names[c->n] = strdup(name)))
		return -ENOMEM;
	c->n++;
	return 0;
}

int ckpt_vm_remove(struct store *s, const char *name, char *err, size_t errlen)
{
	struct store_hash head;
	int rc = check_vm(s, name, &head, err, errlen);
	if (rc < 0)
		return rc;
	if ((rc = refuse_running(s, name, "stop it before removing it", err, errlen)) < 0)
		return rc;
	char prefix[300];
	snprintf(prefix, sizeof(prefix), "vms/%s/", name);
	struct collect c = { 0 };
	rc = store_ref_list(s, prefix, collect_ref, &c);
	if (rc == 0)
		rc = store_txn_begin(s);
	for (size_t i = 0; rc == 0 && i < c.n; i++) {
		struct store_hash h;
		rc = store_ref_get(s, c.names[i], &h);
		if (rc == 0)
			rc = store_ref_cas(s, c.names[i], &h, NULL);
	}
	if (rc == 0)
		rc = store_txn_commit(s);
	else
		store_txn_abort(s);
	if (rc < 0)
		snprintf(err, errlen, "%s", store_last_error());
	for (size_t i = 0; i < c.n; i++)
		free(c.names[i]);
	free(c.names);
	return rc;
}
