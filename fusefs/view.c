/* Snapshot views over store objects (view.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fusefs/view.h"
#include "image/commit.h"

static ssize_t tree_pread(void *opaque, void *buf, size_t len, uint64_t off)
{
	return store_tree_read(opaque, buf, len, off);
}

static int add_disk(struct ffs_view *v, const char *name, const struct store_hash *h)
{
	if (v->ndisks >= FFS_VIEW_DISKS)
		return -E2BIG;
	struct ffs_view_disk *d = &v->disks[v->ndisks];
	int rc = store_tree_open(v->store, h, &d->tree);
	if (rc < 0)
		return rc;
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->disk = (struct ffs_disk){ store_tree_size(d->tree), tree_pread, d->tree };
	v->ndisks++;
	return 0;
}

int ffs_view_open(struct store *s, const struct store_hash *h, struct ffs_view **ret,
		  char *err, size_t errlen)
{
	struct store_obj_info info;
	int rc = store_stat(s, h, &info);
	if (rc < 0) {
		snprintf(err, errlen, "%s", store_last_error());
		return rc;
	}
	struct ffs_view *v = calloc(1, sizeof(*v));
	if (!v) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	v->store = s;
	v->id = *h;
	pthread_mutex_init(&v->lock, NULL);
	if (info.kind == STORE_TREE) {
		rc = add_disk(v, "disk0", h);
		if (rc < 0)
			goto err_store;
		*ret = v;
		return 0;
	}
	if (info.kind != STORE_COMMIT) {
		snprintf(err, errlen, "object is a %s, not a VM commit or a disk", store_kind_name(info.kind));
		rc = -EINVAL;
		goto err;
	}
	struct store_commit *c;
	rc = store_commit_get(s, h, &c);
	if (rc < 0)
		goto err_store;
	v->time = c->time;
	for (int i = 0; i < FFS_VIEW_DISKS && rc == 0; i++) {
		char name[16];
		snprintf(name, sizeof(name), "disk%d", i);
		const struct store_commit_root *r = store_commit_root(c, name);
		if (r && r->kind == STORE_TREE)
			rc = add_disk(v, name, &r->hash);
	}
	const struct store_commit_root *r = store_commit_root(c, "memory");
	if (rc == 0 && r && r->kind == STORE_TREE)
		rc = store_tree_open(s, &r->hash, &v->memory);
	r = store_commit_root(c, "config");
	if (rc == 0 && r && r->kind == STORE_BLOB) {
		void *data;
		rc = store_get(s, &r->hash, NULL, &data, &v->config_len);
		v->config = data;
	}
	store_commit_free(c);
	if (rc < 0)
		goto err_store;
	*ret = v;
	return 0;
err_store:
	snprintf(err, errlen, "%s", store_last_error());
err:
	ffs_view_free(v);
	return rc;
}

void ffs_view_free(struct ffs_view *v)
{
	if (!v)
		return;
	for (int i = 0; i < v->nvolumes; i++)
		ffs_fs_free(v->volumes[i].fs);
	free(v->volumes);
	for (int i = 0; i < v->ndisks; i++)
		store_tree_free(v->disks[i].tree);
	store_tree_free(v->memory);
	free(v->config);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

static void add_volume(struct ffs_view *v, unsigned number, uint64_t start, uint64_t size)
{
	char err[160];
	struct ffs_volume *vol = &v->volumes[v->nvolumes++];
	vol->number = number;
	vol->fs = NULL;
	if (ffs_fs_open(&v->disks[0].disk, start, size, &vol->fs, err, sizeof(err)) < 0) {
		size_t n = strlen(v->readme);
		if (number)
			snprintf(v->readme + n, sizeof(v->readme) - n, "p%u: %s\n", number, err);
		else
			snprintf(v->readme + n, sizeof(v->readme) - n, "%s\n", err);
	}
}

int ffs_view_volumes(struct ffs_view *v)
{
	pthread_mutex_lock(&v->lock);
	int rc = 0;
	if (v->volumes_ready || v->ndisks == 0)
		goto out;
	const struct ffs_disk *d = &v->disks[0].disk;
	v->volumes = calloc(FFS_MAX_PARTS + 1, sizeof(*v->volumes));
	if (!v->volumes) {
		rc = -ENOMEM;
		goto out;
	}
	int probe = ffs_fs_probe(d, 0);
	if (probe < 0) {
		/* The disk's own data is unreadable (a corrupt or missing chunk). */
		snprintf(v->readme, sizeof(v->readme), "disk0 cannot be read: %s\n",
			 probe == -EBADMSG || probe == -ENOENT ? store_last_error() : strerror(-probe));
		rc = -EIO;
		goto out;
	}
	if (probe) {
		add_volume(v, 0, 0, d->size);
	} else {
		rc = ffs_parse_parts(d, &v->parts);
		if (rc < 0 && rc != -EINVAL)
			goto out;
		if (rc == -EINVAL)
			snprintf(v->readme, sizeof(v->readme), "partition table: %s\n", v->parts.note);
		rc = 0;
		for (int i = 0; i < v->parts.n; i++)
			add_volume(v, v->parts.part[i].number, v->parts.part[i].start, v->parts.part[i].size);
		if (v->parts.note[0] && v->parts.table != FFS_TABLE_NONE) {
			size_t n = strlen(v->readme);
			snprintf(v->readme + n, sizeof(v->readme) - n, "%s\n", v->parts.note);
		}
		if (v->parts.table == FFS_TABLE_NONE && !v->readme[0])
			snprintf(v->readme, sizeof(v->readme),
				 "disk0 holds no partition table and no ext2/3/4 filesystem that roam can read;\n"
				 "the raw disk is disk0.raw.\n");
	}
	v->volumes_ready = 1;
out:
	pthread_mutex_unlock(&v->lock);
	return rc;
}

int ffs_view_fs_for_path(struct ffs_view *v, const char *path, struct ffs_fs **ret,
			 const char **rest)
{
	int rc = ffs_view_volumes(v);
	if (rc < 0)
		return rc;
	if (v->nvolumes == 1 && v->volumes[0].number == 0) {
		if (!v->volumes[0].fs)
			return -ENOENT;
		*ret = v->volumes[0].fs;
		*rest = path;
		return 0;
	}
	unsigned n;
	int used = 0;
	if (sscanf(path, "/p%u%n", &n, &used) != 1 || (path[used] && path[used] != '/'))
		return -ENOENT;
	for (int i = 0; i < v->nvolumes; i++)
		if (v->volumes[i].number == n && v->volumes[i].fs) {
			*ret = v->volumes[i].fs;
			*rest = path[used] ? path + used : "/";
			return 0;
		}
	return -ENOENT;
}

static int valid_name(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!(*s == '-' || *s == '_' || *s == '.' || (*s >= '0' && *s <= '9') ||
		      (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
			return 0;
	return 1;
}

int ffs_resolve_target(struct store *s, const char *target, struct store_hash *ret,
		       char *err, size_t errlen)
{
	char name[256], ref[600];
	int rc;
	const char *at = strchr(target, '@');
	size_t n = at ? (size_t)(at - target) : strlen(target);
	if (n == 0 || n >= sizeof(name)) {
		snprintf(err, errlen, "'%s' does not name a VM or disk", target);
		return -EINVAL;
	}
	memcpy(name, target, n);
	name[n] = 0;
	if (!valid_name(name) || (at && !valid_name(at + 1))) {
		snprintf(err, errlen, "'%s' is not a valid VM[@TAG] name", target);
		return -EINVAL;
	}
	if (at) {
		snprintf(ref, sizeof(ref), "vms/%s/checkpoints/%s", name, at + 1);
		rc = store_ref_get(s, ref, ret);
		if (rc != -ENOENT)
			goto out;
		if (strlen(at + 1) >= 4 && store_resolve_prefix(s, at + 1, ret) == 0)
			return 0;
		snprintf(err, errlen, "VM %s has no checkpoint '%s' ('roam log %s' lists them)",
			 name, at + 1, name);
		return -ENOENT;
	}
	snprintf(ref, sizeof(ref), "vms/%s/head", name);
	rc = store_ref_get(s, ref, ret);
	if (rc != -ENOENT)
		goto out;
	snprintf(ref, sizeof(ref), "disks/%s", name);
	rc = store_ref_get(s, ref, ret);
	if (rc == -ENOENT) {
		snprintf(err, errlen, "no VM or disk named '%s' in this store ('roam ls' lists them)", name);
		return rc;
	}
out:
	if (rc < 0)
		snprintf(err, errlen, "%s", store_last_error());
	return rc;
}
