/* The FUSE3 server for `roam mount` (layout in mount.h). Paths are resolved
 * from the root on every call: refs are read from the store, snapshots come
 * from a small cache of views keyed by object hash. */
#define FUSE_USE_VERSION 35
#include <errno.h>
#include <fuse.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "fusefs/mount.h"
#include "fusefs/view.h"

#define VIEW_CACHE 32
#define MAX_DEPTH 64

struct cached_view {
	struct ffs_view *view;
	int refs;
	uint64_t used;
};

struct mnt {
	const char *store_path;
	struct store *store;
	pthread_mutex_t lock;
	struct cached_view cache[VIEW_CACHE];
	uint64_t tick;
	time_t mount_time;
};

enum kind {
	N_ROOT, N_DISKS, N_VMS, N_VM, N_CKPTS, N_SNAP, N_RAW, N_CONFIG, N_MEMORY,
	N_FILES, N_README, N_GUEST,
};

struct node {
	enum kind kind;
	struct ffs_view *view;      /* held (view_put) for N_SNAP and below */
	int disk;                   /* N_RAW */
	struct ffs_fs *fs;          /* N_GUEST */
	uint64_t ino;               /* N_GUEST */
	char name[256];             /* N_VM: the VM's name; N_CKPTS too */
};

static struct mnt *mnt(void) { return fuse_get_context()->private_data; }

static int view_get(struct mnt *m, const struct store_hash *h, struct ffs_view **ret)
{
	pthread_mutex_lock(&m->lock);
	int free_slot = -1, lru = -1;
	for (int i = 0; i < VIEW_CACHE; i++) {
		struct cached_view *c = &m->cache[i];
		if (c->view && store_hash_eq(&c->view->id, h)) {
			c->refs++;
			c->used = ++m->tick;
			*ret = c->view;
			pthread_mutex_unlock(&m->lock);
			return 0;
		}
		if (!c->view && free_slot < 0)
			free_slot = i;
		if (c->view && !c->refs && (lru < 0 || c->used < m->cache[lru].used))
			lru = i;
	}
	pthread_mutex_unlock(&m->lock);
	char err[256];
	struct ffs_view *v;
	int rc = ffs_view_open(m->store, h, &v, err, sizeof(err));
	if (rc < 0)
		return rc == -EBADMSG ? -EIO : rc == -EINVAL ? -EIO : rc;
	pthread_mutex_lock(&m->lock);
	int slot = free_slot >= 0 && !m->cache[free_slot].view ? free_slot : lru;
	if (slot < 0 || (m->cache[slot].view && m->cache[slot].refs)) {
		/* Every slot busy: serve this one uncached. */
		pthread_mutex_unlock(&m->lock);
		*ret = v;
		return 1;
	}
	ffs_view_free(m->cache[slot].view);
	m->cache[slot] = (struct cached_view){ v, 1, ++m->tick };
	pthread_mutex_unlock(&m->lock);
	*ret = v;
	return 0;
}

static void view_put(struct mnt *m, struct ffs_view *v)
{
	if (!v)
		return;
	pthread_mutex_lock(&m->lock);
	for (int i = 0; i < VIEW_CACHE; i++)
		if (m->cache[i].view == v) {
			m->cache[i].refs--;
			pthread_mutex_unlock(&m->lock);
			return;
		}
	pthread_mutex_unlock(&m->lock);
	ffs_view_free(v);           /* an uncached view */
}

static int ref_exists(struct mnt *m, const char *fmt, const char *a, const char *b,
		      struct store_hash *h)
{
	char ref[600];
	snprintf(ref, sizeof(ref), fmt, a, b);
	if (!store_ref_valid(ref))
		return -ENOENT;
	int rc = store_ref_get(m->store, ref, h);
	return rc == -ENOENT ? -ENOENT : rc < 0 ? -EIO : 0;
}

/* Resolves the components below files/ of a view. */
static int resolve_files(struct ffs_view *v, char **comp, int n, struct node *nd)
{
	int rc = ffs_view_volumes(v);
	if (rc < 0)
		return -EIO;
	bool whole = v->nvolumes == 1 && v->volumes[0].number == 0 && v->volumes[0].fs;
	char path[4096] = "";
	size_t len = 0;
	int first = 0;
	if (!whole) {
		if (n == 0) {
			nd->kind = N_FILES;
			return 0;
		}
		if (!strcmp(comp[0], "README") && n == 1 && v->readme[0]) {
			nd->kind = N_README;
			return 0;
		}
		len = (size_t)snprintf(path, sizeof(path), "/%s", comp[0]);
		first = 1;
	}
	for (int i = first; i < n; i++) {
		int w = snprintf(path + len, sizeof(path) - len, "/%s", comp[i]);
		if (w < 0 || (size_t)w >= sizeof(path) - len)
			return -ENAMETOOLONG;
		len += (size_t)w;
	}
	if (!len)
		strcpy(path, "/");
	const char *rest;
	rc = ffs_view_fs_for_path(v, path, &nd->fs, &rest);
	if (rc < 0)
		return -ENOENT;
	rc = ffs_fs_lookup(nd->fs, rest, 0, &nd->ino);
	if (rc < 0)
		return rc;
	nd->kind = N_GUEST;
	return 0;
}

/* Resolves the components below a snapshot directory. */
static int resolve_snap(struct ffs_view *v, bool bare, char **comp, int n, struct node *nd)
{
	if (n == 0) {
		nd->kind = N_SNAP;
		return 0;
	}
	if (!strcmp(comp[0], "files"))
		return resolve_files(v, comp + 1, n - 1, nd);
	if (n > 1)
		return -ENOENT;
	if (!bare && !strcmp(comp[0], "config.json") && v->config) {
		nd->kind = N_CONFIG;
		return 0;
	}
	if (!bare && !strcmp(comp[0], "memory.raw") && v->memory) {
		nd->kind = N_MEMORY;
		return 0;
	}
	for (int i = 0; i < v->ndisks; i++) {
		char name[32];
		snprintf(name, sizeof(name), "%s.raw", bare ? "disk" : v->disks[i].name);
		if (!strcmp(comp[0], name)) {
			nd->kind = N_RAW;
			nd->disk = i;
			return 0;
		}
	}
	return -ENOENT;
}

static int resolve(struct mnt *m, const char *path, struct node *nd)
{
	memset(nd, 0, sizeof(*nd));
	char buf[4096];
	if (strlen(path) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, path);
	char *comp[MAX_DEPTH];
	int n = 0;
	for (char *save, *t = strtok_r(buf, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
		if (n == MAX_DEPTH)
			return -ENAMETOOLONG;
		comp[n++] = t;
	}
	struct store_hash h;
	int rc;
	if (n == 0) {
		nd->kind = N_ROOT;
		return 0;
	}
	if (!strcmp(comp[0], "disks")) {
		if (n == 1) {
			nd->kind = N_DISKS;
			return 0;
		}
		if ((rc = ref_exists(m, "disks/%s%s", comp[1], "", &h)) < 0)
			return rc;
		if ((rc = view_get(m, &h, &nd->view)) < 0)
			return rc;
		return resolve_snap(nd->view, true, comp + 2, n - 2, nd);
	}
	if (strcmp(comp[0], "vms"))
		return -ENOENT;
	if (n == 1) {
		nd->kind = N_VMS;
		return 0;
	}
	snprintf(nd->name, sizeof(nd->name), "%s", comp[1]);
	if ((rc = ref_exists(m, "vms/%s/head%s", comp[1], "", &h)) < 0)
		return rc;
	if (n == 2) {
		nd->kind = N_VM;
		return 0;
	}
	int skip;
	if (!strcmp(comp[2], "head")) {
		skip = 3;
	} else if (!strcmp(comp[2], "checkpoints")) {
		if (n == 3) {
			nd->kind = N_CKPTS;
			return 0;
		}
		if ((rc = ref_exists(m, "vms/%s/checkpoints/%s", comp[1], comp[3], &h)) < 0)
			return rc;
		skip = 4;
	} else {
		return -ENOENT;
	}
	if ((rc = view_get(m, &h, &nd->view)) < 0)
		return rc;
	return resolve_snap(nd->view, false, comp + skip, n - skip, nd);
}

static void node_put(struct mnt *m, struct node *nd)
{
	view_put(m, nd->view);
	nd->view = NULL;
}

static void dir_attr(struct mnt *m, struct stat *st, time_t t)
{
	st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 2;
	st->st_mtime = st->st_ctime = st->st_atime = t ? t : m->mount_time;
}

static void file_attr(struct mnt *m, struct stat *st, time_t t, uint64_t size)
{
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_size = (off_t)size;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	st->st_mtime = st->st_ctime = st->st_atime = t ? t : m->mount_time;
}

static int op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct mnt *m = mnt();
	struct node nd;
	int rc = resolve(m, path, &nd);
	if (rc < 0)
		goto out;
	memset(st, 0, sizeof(*st));
	time_t t = nd.view ? (time_t)nd.view->time : 0;
	switch (nd.kind) {
	case N_ROOT: case N_DISKS: case N_VMS: case N_VM: case N_CKPTS: case N_SNAP: case N_FILES:
		dir_attr(m, st, t);
		break;
	case N_RAW: file_attr(m, st, t, nd.view->disks[nd.disk].disk.size); break;
	case N_CONFIG: file_attr(m, st, t, nd.view->config_len); break;
	case N_MEMORY: file_attr(m, st, t, store_tree_size(nd.view->memory)); break;
	case N_README: file_attr(m, st, t, strlen(nd.view->readme)); break;
	case N_GUEST: {
		struct ffs_stat fs;
		rc = ffs_fs_stat(nd.fs, nd.ino, &fs);
		if (rc < 0)
			break;
		st->st_ino = fs.ino;
		st->st_mode = fs.mode;
		st->st_nlink = fs.nlink;
		st->st_uid = fs.uid;
		st->st_gid = fs.gid;
		st->st_rdev = fs.rdev;
		st->st_size = (off_t)fs.size;
		st->st_blocks = (blkcnt_t)fs.blocks;
		st->st_blksize = 4096;
		st->st_atim = fs.atime;
		st->st_mtim = fs.mtime;
		st->st_ctim = fs.ctime;
		break;
	}
	}
out:
	node_put(m, &nd);
	return rc;
}

struct fill {
	void *buf;
	fuse_fill_dir_t filler;
};

static int fill_one(void *arg, const char *name, uint64_t ino, unsigned dtype)
{
	struct fill *f = arg;
	struct stat st = { .st_ino = ino, .st_mode = (mode_t)dtype << 12 };
	return f->filler(f->buf, name, &st, 0, 0) ? 1 : 0;
}

/* Lists the distinct next components of refs under prefix ("vms/" lists
 * VM names, "vms/x/checkpoints/" tags, "disks/" disks). */
struct ref_fill {
	struct fill *f;
	size_t plen;
	char last[256];
	const char *suffix;         /* only refs ending so ("/head"), or NULL */
};

static int ref_one(void *arg, const char *name, const struct store_hash *h)
{
	struct ref_fill *r = arg;
	const char *p = name + r->plen;
	const char *slash = strchr(p, '/');
	size_t n = slash ? (size_t)(slash - p) : strlen(p);
	if (r->suffix && (!slash || strcmp(slash, r->suffix)))
		return 0;
	if (!r->suffix && slash)
		return 0;
	if (n == 0 || n >= sizeof(r->last) || (!strncmp(r->last, p, n) && !r->last[n]))
		return 0;
	memcpy(r->last, p, n);
	r->last[n] = 0;
	return fill_one(r->f, r->last, 0, 4);
}

static int list_refs(struct mnt *m, struct fill *f, const char *prefix, const char *suffix)
{
	struct ref_fill r = { f, strlen(prefix), "", suffix };
	int rc = store_ref_list(m->store, prefix, ref_one, &r);
	return rc < 0 ? -EIO : 0;
}

static int op_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct mnt *m = mnt();
	struct node nd;
	int rc = resolve(m, path, &nd);
	if (rc < 0)
		goto out;
	struct fill f = { buf, filler };
	filler(buf, ".", NULL, 0, 0);
	filler(buf, "..", NULL, 0, 0);
	char prefix[600];
	switch (nd.kind) {
	case N_ROOT:
		fill_one(&f, "disks", 0, 4);
		fill_one(&f, "vms", 0, 4);
		break;
	case N_DISKS: rc = list_refs(m, &f, "disks/", NULL); break;
	case N_VMS: rc = list_refs(m, &f, "vms/", "/head"); break;
	case N_VM:
		fill_one(&f, "head", 0, 4);
		fill_one(&f, "checkpoints", 0, 4);
		break;
	case N_CKPTS:
		snprintf(prefix, sizeof(prefix), "vms/%s/checkpoints/", nd.name);
		rc = list_refs(m, &f, prefix, NULL);
		break;
	case N_SNAP: {
		bool bare = !strncmp(path, "/disks/", 7);
		if (!bare && nd.view->config)
			fill_one(&f, "config.json", 0, 8);
		for (int i = 0; i < nd.view->ndisks; i++) {
			char name[32];
			snprintf(name, sizeof(name), "%s.raw", bare ? "disk" : nd.view->disks[i].name);
			fill_one(&f, name, 0, 8);
		}
		if (!bare && nd.view->memory)
			fill_one(&f, "memory.raw", 0, 8);
		if (nd.view->ndisks)
			fill_one(&f, "files", 0, 4);
		break;
	}
	case N_FILES:
		for (int i = 0; i < nd.view->nvolumes; i++) {
			if (!nd.view->volumes[i].fs)
				continue;
			char name[16];
			snprintf(name, sizeof(name), "p%u", nd.view->volumes[i].number);
			fill_one(&f, name, 0, 4);
		}
		if (nd.view->readme[0])
			fill_one(&f, "README", 0, 8);
		break;
	case N_GUEST:
		rc = ffs_fs_readdir(nd.fs, nd.ino, fill_one, &f);
		if (rc > 0)
			rc = 0;
		break;
	default:
		rc = -ENOTDIR;
	}
out:
	node_put(m, &nd);
	return rc;
}

static int op_open(const char *path, struct fuse_file_info *fi)
{
	if ((fi->flags & O_ACCMODE) != O_RDONLY)
		return -EROFS;
	struct mnt *m = mnt();
	struct node *nd = malloc(sizeof(*nd));
	if (!nd)
		return -ENOMEM;
	int rc = resolve(m, path, nd);
	if (rc == 0 && nd->kind != N_RAW && nd->kind != N_CONFIG && nd->kind != N_MEMORY &&
	    nd->kind != N_README && nd->kind != N_GUEST)
		rc = -EISDIR;
	if (rc < 0) {
		node_put(m, nd);
		free(nd);
		return rc;
	}
	fi->fh = (uint64_t)(uintptr_t)nd;
	fi->keep_cache = 1;         /* contents are immutable */
	return 0;
}

static int op_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct node *nd = (struct node *)(uintptr_t)fi->fh;
	if (off < 0)
		return -EINVAL;
	const char *text = NULL;
	size_t tlen = 0;
	ssize_t n;
	switch (nd->kind) {
	case N_RAW:
		n = store_tree_read(nd->view->disks[nd->disk].tree, buf, size, (uint64_t)off);
		return n < 0 ? -EIO : (int)n;
	case N_MEMORY:
		n = store_tree_read(nd->view->memory, buf, size, (uint64_t)off);
		return n < 0 ? -EIO : (int)n;
	case N_GUEST:
		n = ffs_fs_read(nd->fs, nd->ino, buf, size, (uint64_t)off);
		return (int)n;
	case N_CONFIG: text = nd->view->config; tlen = nd->view->config_len; break;
	case N_README: text = nd->view->readme; tlen = strlen(text); break;
	default: return -EISDIR;
	}
	if ((uint64_t)off >= tlen)
		return 0;
	if (size > tlen - (size_t)off)
		size = tlen - (size_t)off;
	memcpy(buf, text + off, size);
	return (int)size;
}

static int op_release(const char *path, struct fuse_file_info *fi)
{
	struct node *nd = (struct node *)(uintptr_t)fi->fh;
	node_put(mnt(), nd);
	free(nd);
	return 0;
}

static int op_readlink(const char *path, char *buf, size_t size)
{
	struct mnt *m = mnt();
	struct node nd;
	int rc = resolve(m, path, &nd);
	if (rc == 0)
		rc = nd.kind == N_GUEST ? ffs_fs_readlink(nd.fs, nd.ino, buf, size) : -EINVAL;
	node_put(m, &nd);
	return rc;
}

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	struct mnt *m = fuse_get_context()->private_data;
	cfg->kernel_cache = 1;
	cfg->entry_timeout = 1.0;
	cfg->attr_timeout = 1.0;
	cfg->negative_timeout = 0;
	cfg->use_ino = 0;
	return m;
}

static const struct fuse_operations ops = {
	.getattr = op_getattr,
	.readdir = op_readdir,
	.open = op_open,
	.read = op_read,
	.release = op_release,
	.readlink = op_readlink,
	.init = op_init,
};

int ffs_mount(const char *store_path, const char *mountpoint, bool foreground,
	      char *err, size_t errlen)
{
	struct stat st;
	if (stat(mountpoint, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "mount point %s is not a directory", mountpoint);
		return -ENOTDIR;
	}
	if (access("/dev/fuse", R_OK | W_OK) < 0) {
		snprintf(err, errlen, "cannot use /dev/fuse: %s (install fuse3 and load the fuse module)",
			 strerror(errno));
		return -ENODEV;
	}
	/* fuse_daemonize changes to "/": keep an absolute store path. */
	char abs_store[PATH_MAX];
	if (!realpath(store_path, abs_store)) {
		snprintf(err, errlen, "no store at %s: %s", store_path, strerror(errno));
		return -errno;
	}
	struct mnt m = { .store_path = abs_store, .mount_time = time(NULL) };
	pthread_mutex_init(&m.lock, NULL);
	/* Opening the store checks it now, so errors reach the terminal; the
	 * handle is reopened in the server after fuse daemonizes (SQLite
	 * handles must not cross fork). */
	int rc = store_open(store_path, STORE_OPEN_RDONLY, &m.store);
	if (rc < 0) {
		snprintf(err, errlen, "%s", store_last_error());
		return rc;
	}
	store_free(m.store);
	m.store = NULL;

	char *args[] = { "roam", "-o", "ro,default_permissions,fsname=roam,subtype=roam", NULL };
	struct fuse_args fa = FUSE_ARGS_INIT(3, args);
	struct fuse *f = fuse_new(&fa, &ops, sizeof(ops), &m);
	if (!f) {
		snprintf(err, errlen, "cannot create the FUSE filesystem");
		return -EIO;
	}
	if (fuse_mount(f, mountpoint) != 0) {
		fuse_destroy(f);
		snprintf(err, errlen, "cannot mount on %s (is something mounted there already?)", mountpoint);
		return -EIO;
	}
	if (!foreground && fuse_daemonize(0) != 0) {
		fuse_unmount(f);
		fuse_destroy(f);
		snprintf(err, errlen, "cannot go to the background");
		return -EIO;
	}
	rc = store_open(abs_store, STORE_OPEN_RDONLY, &m.store);
	if (rc == 0) {
		fuse_set_signal_handlers(fuse_get_session(f));
		struct fuse_loop_config lc = { .clone_fd = 0, .max_idle_threads = 8 };
		rc = fuse_loop_mt(f, &lc) ? -EIO : 0;
		fuse_remove_signal_handlers(fuse_get_session(f));
	} else {
		snprintf(err, errlen, "%s", store_last_error());
	}
	fuse_unmount(f);
	fuse_destroy(f);
	for (int i = 0; i < VIEW_CACHE; i++)
		ffs_view_free(m.cache[i].view);
	store_free(m.store);
	pthread_mutex_destroy(&m.lock);
	return rc;
}

int ffs_umount(const char *mountpoint, char *err, size_t errlen)
{
	pid_t pid = fork();
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-u", "-q", mountpoint, (char *)NULL);
		_exit(127);
	}
	int status = 0;
	if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (geteuid() == 0 && umount2(mountpoint, MNT_DETACH) == 0)
		return 0;
	snprintf(err, errlen, "cannot unmount %s: not a roam mount, or busy", mountpoint);
	return -EINVAL;
}
