/* Browsing VMs without booting them: roam mount/umount (FUSE) and
 * roam cat/cp/diff plus `roam ls VM[@TAG]:/path`, all read-only views of
 * store objects through fusefs/. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "cli/browse.h"
#include "cli/cli.h"
#include "fusefs/mount.h"
#include "fusefs/view.h"

/* An opened "VM[@TAG]:/path": the store, the view and the path inside. */
struct target {
	struct store *s;
	struct ffs_view *v;
	char path[4096];
};

static void target_close(struct target *t)
{
	ffs_view_free(t->v);
	store_free(t->s);
	t->v = NULL;
	t->s = NULL;
}

/* Opens the view part of spec ("VM", "VM@TAG"); path_required: the spec must
 * be "VM[@TAG]:/path". Returns 0 or an exit status after printing. */
static int target_open(struct cli_ctx *ctx, struct store *shared, const char *spec,
		       bool path_required, struct target *t)
{
	memset(t, 0, sizeof(*t));
	char name[512];
	const char *colon = strchr(spec, ':');
	size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
	if (n >= sizeof(name))
		return cli_error("'%s' is too long", spec);
	memcpy(name, spec, n);
	name[n] = 0;
	if (colon && !colon[1]) {
		strcpy(t->path, "/");
	} else if (colon) {
		if (colon[1] != '/')
			return cli_error("'%s': the path after ':' must start with '/'", spec);
		snprintf(t->path, sizeof(t->path), "%s", colon + 1);
	} else if (path_required) {
		return cli_error("'%s': give VM[@TAG]:/path", spec);
	} else {
		strcpy(t->path, "/");
	}
	if (shared) {
		t->s = shared;
	} else if (store_open(ctx->store_path, STORE_OPEN_RDONLY, &t->s) < 0) {
		return cli_error("%s", store_last_error());
	}
	struct store_hash h;
	char err[512];
	if (ffs_resolve_target(t->s, name, &h, err, sizeof(err)) < 0 ||
	    ffs_view_open(t->s, &h, &t->v, err, sizeof(err)) < 0) {
		if (!shared)
			store_free(t->s);
		t->s = NULL;
		return cli_error("%s", err);
	}
	return 0;
}

/* Resolves the target's path to a filesystem and inode. */
static int target_lookup(struct target *t, const char *spec, int follow, struct ffs_fs **fs,
			 uint64_t *ino)
{
	const char *rest;
	int rc = ffs_view_fs_for_path(t->v, t->path, fs, &rest);
	if (rc < 0) {
		const struct ffs_view *v = t->v;
		if (rc == -EIO || (v->nvolumes == 0 && v->readme[0]))
			return cli_error("%s: %.*s", spec, (int)strcspn(v->readme, "\n"),
					 v->readme[0] ? v->readme : "cannot read the disk");
		char parts[256] = "";
		size_t n = 0;
		for (int i = 0; i < v->nvolumes && n < sizeof(parts) - 8; i++)
			if (v->volumes[i].fs)
				n += (size_t)snprintf(parts + n, sizeof(parts) - n, " /p%u", v->volumes[i].number);
		return cli_error("%s: the disk is partitioned; paths start with a partition with a "
				 "filesystem:%s", spec, n ? parts : " (none readable)");
	}
	rc = ffs_fs_lookup(*fs, rest, follow, ino);
	if (rc == -EIO)
		return cli_error("%s: the guest filesystem is damaged or unreadable there (I/O error)", spec);
	if (rc < 0)
		return cli_error("%s: %s", spec, strerror(-rc));
	return 0;
}

/* ---- roam cat ---------------------------------------------------------- */

/* Copies a guest file to fd; sparse: leave holes for runs of zeros (fd is a
 * new regular file). */
static int copy_file_out(struct ffs_fs *fs, uint64_t ino, uint64_t size, int fd, bool sparse,
			 const char *spec)
{
	size_t bufsz = 1 << 20;
	char *buf = malloc(bufsz);
	if (!buf)
		return cli_error("out of memory");
	int rc = 0;
	for (uint64_t off = 0; off < size;) {
		ssize_t n = ffs_fs_read(fs, ino, buf, bufsz, off);
		if (n < 0) {
			rc = cli_error("%s: read error at byte %llu: %s", spec, (unsigned long long)off,
				       n == -EIO ? "the disk data is damaged or missing (roam verify)" : strerror((int)-n));
			break;
		}
		if (n == 0)
			break;
		if (sparse && store_is_zero(buf, (size_t)n)) {
			off += (uint64_t)n;
			if (lseek(fd, (off_t)off, SEEK_SET) < 0 || ftruncate(fd, (off_t)off) < 0) {
				rc = cli_error("write failed: %s", strerror(errno));
				break;
			}
			continue;
		}
		for (ssize_t w = 0; w < n;) {
			ssize_t k = write(fd, buf + w, (size_t)(n - w));
			if (k < 0) {
				rc = cli_error("write failed: %s", strerror(errno));
				goto out;
			}
			w += k;
		}
		off += (uint64_t)n;
	}
out:
	free(buf);
	return rc;
}

static int run_cat(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc < 2)
		return cli_error("cat needs VM[@TAG]:/path");
	int status = 0;
	for (int i = 1; i < argc; i++) {
		struct target t;
		struct ffs_fs *fs;
		uint64_t ino;
		struct ffs_stat st;
		int rc = target_open(ctx, NULL, argv[i], true, &t);
		if (rc == 0 && (rc = target_lookup(&t, argv[i], 1, &fs, &ino)) == 0) {
			if (ffs_fs_stat(fs, ino, &st) < 0)
				rc = cli_error("%s: cannot read its inode", argv[i]);
			else if ((st.mode & 0170000) == 0040000)
				rc = cli_error("%s: is a directory ('roam ls %s')", argv[i], argv[i]);
			else
				rc = copy_file_out(fs, ino, st.size, 1, false, argv[i]);
		}
		target_close(&t);
		if (rc)
			status = rc;
	}
	return status;
}

CLI_COMMAND(cmd_cat) = {
	.name = "cat",
	.summary = "print a file from a VM's disk without booting it",
	.usage = "usage: roam cat VM[@TAG]:/path ...\n"
		 "Prints files from the guest filesystem on the VM's first disk, at its\n"
		 "current state or at checkpoint TAG. VM may also be an imported disk.\n"
		 "On a partitioned disk, paths start with the partition: VM:/p1/etc/hostname.\n",
	.run = run_cat,
};

/* ---- roam ls VM:/path ---------------------------------------------------- */

static void mode_string(uint32_t mode, char out[11])
{
	static const char types[] = "?pc?d?b?-?l?s???";
	out[0] = types[(mode >> 12) & 15];
	const char *rwx = "rwxrwxrwx";
	for (int i = 0; i < 9; i++)
		out[1 + i] = mode & (0400u >> i) ? rwx[i] : '-';
	if (mode & 04000) out[3] = out[3] == 'x' ? 's' : 'S';
	if (mode & 02000) out[6] = out[6] == 'x' ? 's' : 'S';
	if (mode & 01000) out[9] = out[9] == 'x' ? 't' : 'T';
	out[10] = 0;
}

struct ls_ctx {
	struct cli_ctx *ctx;
	struct ffs_fs *fs;
	int n;
};

static void print_entry(struct ls_ctx *l, const char *name, uint64_t ino)
{
	struct ffs_stat st;
	if (ffs_fs_stat(l->fs, ino, &st) < 0) {
		fprintf(stderr, "roam: %s: cannot read its inode\n", name);
		return;
	}
	char link[4096] = "";
	if ((st.mode & 0170000) == 0120000 && ffs_fs_readlink(l->fs, ino, link, sizeof(link)) < 0)
		strcpy(link, "?");
	if (l->ctx->json) {
		printf("%s{\"name\":", l->n++ ? "," : "");
		cli_json_str(stdout, name);
		printf(",\"mode\":%u,\"uid\":%u,\"gid\":%u,\"nlink\":%u,\"size\":%llu,\"mtime\":%lld",
		       st.mode, st.uid, st.gid, st.nlink, (unsigned long long)st.size,
		       (long long)st.mtime.tv_sec);
		if (link[0]) {
			printf(",\"target\":");
			cli_json_str(stdout, link);
		}
		printf("}");
		return;
	}
	char m[11], when[32];
	mode_string(st.mode, m);
	struct tm tm;
	time_t t = st.mtime.tv_sec;
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M", gmtime_r(&t, &tm));
	printf("%s %3u %5u %5u %12llu %s %s%s%s\n", m, st.nlink, st.uid, st.gid,
	       (unsigned long long)st.size, when, name, link[0] ? " -> " : "", link);
}

static int ls_one(void *arg, const char *name, uint64_t ino, unsigned dtype)
{
	print_entry(arg, name, ino);
	return 0;
}

int cli_browse_ls(struct cli_ctx *ctx, const char *spec)
{
	struct target t;
	struct ffs_fs *fs;
	uint64_t ino;
	int rc = target_open(ctx, NULL, spec, false, &t);
	if (rc)
		return rc;
	if (ffs_view_volumes(t.v) < 0) {
		rc = cli_error("%s: cannot read the disk", spec);
		goto out;
	}
	/* The top of a partitioned disk lists its partitions. */
	if (!strcmp(t.path, "/") && !(t.v->nvolumes == 1 && t.v->volumes[0].number == 0)) {
		if (ctx->json)
			printf("[");
		for (int i = 0, n = 0; i < t.v->nvolumes; i++) {
			if (!t.v->volumes[i].fs)
				continue;
			if (ctx->json)
				printf("%s{\"name\":\"p%u\",\"partition\":true}", n++ ? "," : "", t.v->volumes[i].number);
			else
				printf("p%u/\n", t.v->volumes[i].number);
		}
		if (ctx->json)
			printf("]\n");
		if (t.v->readme[0])
			fprintf(stderr, "roam: %s", t.v->readme);
		goto out;
	}
	if ((rc = target_lookup(&t, spec, 1, &fs, &ino)) != 0)
		goto out;
	struct ffs_stat st;
	struct ls_ctx l = { ctx, fs, 0 };
	if (ffs_fs_stat(fs, ino, &st) < 0) {
		rc = cli_error("%s: cannot read its inode", spec);
		goto out;
	}
	if (ctx->json)
		printf("[");
	if ((st.mode & 0170000) == 0040000) {
		int r = ffs_fs_readdir(fs, ino, ls_one, &l);
		if (r < 0)
			rc = cli_error("%s: %s", spec, strerror(-r));
	} else {
		const char *base = strrchr(t.path, '/');
		print_entry(&l, base ? base + 1 : t.path, ino);
	}
	if (ctx->json)
		printf("]\n");
out:
	target_close(&t);
	return rc;
}

/* ---- roam cp ------------------------------------------------------------- */

static int cp_tree(struct ffs_fs *fs, uint64_t ino, const char *dest, const char *spec, int depth);

struct cp_dir {
	struct ffs_fs *fs;
	const char *dest, *spec;
	int depth, rc;
};

static int cp_child(void *arg, const char *name, uint64_t ino, unsigned dtype)
{
	struct cp_dir *d = arg;
	char path[4096], spec[4096];
	if (snprintf(path, sizeof(path), "%s/%s", d->dest, name) >= (int)sizeof(path) ||
	    snprintf(spec, sizeof(spec), "%s/%s", d->spec, name) >= (int)sizeof(spec)) {
		d->rc = cli_error("%s/%s: path too long", d->spec, name);
		return 0;
	}
	int rc = cp_tree(d->fs, ino, path, spec, d->depth + 1);
	if (rc)
		d->rc = rc;
	return 0;
}

static int cp_tree(struct ffs_fs *fs, uint64_t ino, const char *dest, const char *spec, int depth)
{
	struct ffs_stat st;
	if (depth > 256)
		return cli_error("%s: directories nested too deeply", spec);
	if (ffs_fs_stat(fs, ino, &st) < 0)
		return cli_error("%s: cannot read its inode", spec);
	int rc = 0;
	mode_t perm = st.mode & 07777;
	switch (st.mode & 0170000) {
	case 0040000: {
		if (mkdir(dest, 0700) < 0 && errno != EEXIST)
			return cli_error("cannot create %s: %s", dest, strerror(errno));
		struct cp_dir d = { fs, dest, spec, depth, 0 };
		int r = ffs_fs_readdir(fs, ino, cp_child, &d);
		rc = d.rc ? d.rc : r < 0 ? cli_error("%s: %s", spec, strerror(-r)) : 0;
		if (chmod(dest, perm) < 0)
			rc = cli_error("cannot set the mode of %s: %s", dest, strerror(errno));
		break;
	}
	case 0100000: {
		int fd = open(dest, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0)
			return cli_error("cannot create %s: %s", dest, strerror(errno));
		rc = copy_file_out(fs, ino, st.size, fd, true, spec);
		if (fchmod(fd, perm) < 0 && !rc)
			rc = cli_error("cannot set the mode of %s: %s", dest, strerror(errno));
		if (close(fd) < 0 && !rc)
			rc = cli_error("cannot write %s: %s", dest, strerror(errno));
		break;
	}
	case 0120000: {
		char target[4096];
		if (ffs_fs_readlink(fs, ino, target, sizeof(target)) < 0)
			return cli_error("%s: cannot read the symlink", spec);
		if (symlink(target, dest) < 0)
			return cli_error("cannot create symlink %s: %s", dest, strerror(errno));
		return 0;
	}
	default:
		fprintf(stderr, "roam: %s: not copied (a device, fifo or socket)\n", spec);
		return 0;
	}
	struct timespec times[2] = { st.atime, st.mtime };
	if (utimensat(AT_FDCWD, dest, times, 0) < 0 && !rc)
		rc = cli_error("cannot set the times of %s: %s", dest, strerror(errno));
	return rc;
}

static int run_cp(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc != 3)
		return cli_error("cp needs VM[@TAG]:/path and a LOCAL destination");
	struct target t;
	struct ffs_fs *fs;
	uint64_t ino;
	int rc = target_open(ctx, NULL, argv[1], true, &t);
	if (rc)
		return rc;
	if ((rc = target_lookup(&t, argv[1], 1, &fs, &ino)) == 0) {
		char dest[4096];
		struct stat st;
		const char *base = strrchr(t.path, '/');
		base = base && base[1] ? base + 1 : "root";
		if (stat(argv[2], &st) == 0 && S_ISDIR(st.st_mode))
			snprintf(dest, sizeof(dest), "%s/%s", argv[2], base);
		else
			snprintf(dest, sizeof(dest), "%s", argv[2]);
		rc = cp_tree(fs, ino, dest, argv[1], 0);
	}
	target_close(&t);
	return rc;
}

CLI_COMMAND(cmd_cp) = {
	.name = "cp",
	.summary = "copy files out of a VM's disk without booting it",
	.usage = "usage: roam cp VM[@TAG]:/path LOCAL\n"
		 "Copies a file or a directory tree (modes, times and symlinks kept) from\n"
		 "the guest filesystem to LOCAL (into it, when LOCAL is a directory).\n",
	.run = run_cp,
};

/* ---- roam diff ------------------------------------------------------------ */

struct dent {
	char *name;
	uint64_t ino;
};

struct dlist {
	struct dent *e;
	size_t n, cap;
};

static int dlist_add(void *arg, const char *name, uint64_t ino, unsigned dtype)
{
	struct dlist *l = arg;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct dent *e = realloc(l->e, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		l->e = e;
		l->cap = cap;
	}
	l->e[l->n].name = strdup(name);
	if (!l->e[l->n].name)
		return -ENOMEM;
	l->e[l->n++].ino = ino;
	return 0;
}

static void dlist_free(struct dlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->e[i].name);
	free(l->e);
}

static int dent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dent *)a)->name, ((const struct dent *)b)->name);
}

struct diff {
	struct cli_ctx *ctx;
	struct ffs_fs *a, *b;
	struct store_tree *ta, *tb;     /* disk0 of each snapshot */
	int changes, errors;
};

/* Block lists of a file: offsets of its data blocks on the disk. */
struct blist {
	uint64_t *off;
	size_t n, cap;
	uint32_t bs;
};

static int blist_add(void *arg, uint64_t off, uint32_t len)
{
	struct blist *l = arg;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		uint64_t *o = realloc(l->off, cap * sizeof(*o));
		if (!o)
			return -ENOMEM;
		l->off = o;
		l->cap = cap;
	}
	l->off[l->n++] = off;
	l->bs = len;
	return 0;
}

/* True when the file's data provably did not change between the two
 * snapshots: the same blocks, and every store chunk holding them has the
 * same hash in both disks. Nothing is read but tree nodes. */
static bool same_blocks(struct diff *d, uint64_t ia, uint64_t ib)
{
	struct blist la = { 0 }, lb = { 0 };
	bool same = false;
	if (ffs_fs_data_blocks(d->a, ia, blist_add, &la) < 0 ||
	    ffs_fs_data_blocks(d->b, ib, blist_add, &lb) < 0 || la.n != lb.n ||
	    ffs_fs_offset(d->a) != ffs_fs_offset(d->b) ||
	    (la.n && memcmp(la.off, lb.off, la.n * sizeof(*la.off))))
		goto out;
	uint64_t base = ffs_fs_offset(d->a), last = UINT64_MAX;
	uint64_t chunk = store_tree_chunk_size(d->ta);
	if (chunk != store_tree_chunk_size(d->tb))
		goto out;
	same = true;
	for (size_t i = 0; i < la.n && same; i++) {
		for (uint64_t c = (base + la.off[i]) / chunk; c <= (base + la.off[i] + la.bs - 1) / chunk; c++) {
			if (c == last)
				continue;
			last = c;
			struct store_hash ha, hb;
			if (store_tree_chunk_hash(d->ta, c, &ha) < 0 || store_tree_chunk_hash(d->tb, c, &hb) < 0 ||
			    !store_hash_eq(&ha, &hb)) {
				same = false;
				break;
			}
		}
	}
out:
	free(la.off);
	free(lb.off);
	return same;
}

static void report(struct diff *d, char what, const char *path)
{
	d->changes++;
	if (d->ctx->json) {
		printf("%s{\"change\":\"%c\",\"path\":", d->changes > 1 ? "," : "", what);
		cli_json_str(stdout, path);
		printf("}");
	} else {
		printf("%c %s\n", what, path);
	}
}

/* Same content? Proven without reading data when the file occupies the
 * same blocks and the store chunks under them are identical in both
 * snapshots; otherwise the bytes are compared. */
static int same_content(struct diff *d, uint64_t ia, const struct ffs_stat *sa, uint64_t ib,
			const struct ffs_stat *sb)
{
	if (sa->size != sb->size)
		return 0;
	if ((sa->mode & 0170000) == 0100000 && same_blocks(d, ia, ib))
		return 1;
	if ((sa->mode & 0170000) == 0120000) {
		char la[4096], lb[4096];
		if (ffs_fs_readlink(d->a, ia, la, sizeof(la)) < 0 || ffs_fs_readlink(d->b, ib, lb, sizeof(lb)) < 0)
			return 0;
		return !strcmp(la, lb);
	}
	if ((sa->mode & 0170000) != 0100000)
		return 1;
	static char ba[1 << 16], bb[1 << 16];
	for (uint64_t off = 0; off < sa->size;) {
		ssize_t na = ffs_fs_read(d->a, ia, ba, sizeof(ba), off);
		ssize_t nb = ffs_fs_read(d->b, ib, bb, sizeof(bb), off);
		if (na < 0 || nb < 0) {
			d->errors++;
			return 0;
		}
		if (na != nb || memcmp(ba, bb, (size_t)na))
			return 0;
		if (na == 0)
			break;
		off += (uint64_t)na;
	}
	return 1;
}

static void diff_tree(struct diff *d, const char *path, uint64_t ia, uint64_t ib, int depth);

static void diff_entry(struct diff *d, const char *path, uint64_t ia, uint64_t ib, int depth)
{
	struct ffs_stat sa, sb;
	if (ffs_fs_stat(d->a, ia, &sa) < 0 || ffs_fs_stat(d->b, ib, &sb) < 0) {
		fprintf(stderr, "roam: %s: cannot read its inode\n", path);
		d->errors++;
		return;
	}
	bool dir_a = (sa.mode & 0170000) == 0040000, dir_b = (sb.mode & 0170000) == 0040000;
	if ((sa.mode & 0170000) != (sb.mode & 0170000)) {
		report(d, 'M', path);
	} else if (dir_a && dir_b) {
		if ((sa.mode & 07777) != (sb.mode & 07777) || sa.uid != sb.uid || sa.gid != sb.gid)
			report(d, 'M', path);
		diff_tree(d, path, ia, ib, depth + 1);
	} else if ((sa.mode & 07777) != (sb.mode & 07777) || sa.uid != sb.uid || sa.gid != sb.gid ||
		   !same_content(d, ia, &sa, ib, &sb)) {
		report(d, 'M', path);
	}
}

static void diff_tree(struct diff *d, const char *path, uint64_t ia, uint64_t ib, int depth)
{
	struct dlist la = { 0 }, lb = { 0 };
	if (depth > 256 || ffs_fs_readdir(d->a, ia, dlist_add, &la) < 0 ||
	    ffs_fs_readdir(d->b, ib, dlist_add, &lb) < 0) {
		fprintf(stderr, "roam: %s: cannot read the directory\n", path);
		d->errors++;
		goto out;
	}
	if (la.n)
		qsort(la.e, la.n, sizeof(*la.e), dent_cmp);
	if (lb.n)
		qsort(lb.e, lb.n, sizeof(*lb.e), dent_cmp);
	size_t i = 0, j = 0;
	while (i < la.n || j < lb.n) {
		int c = i == la.n ? 1 : j == lb.n ? -1 : strcmp(la.e[i].name, lb.e[j].name);
		char child[4096];
		snprintf(child, sizeof(child), "%s%s%s", path, strcmp(path, "/") ? "/" : "",
			 c <= 0 ? la.e[i].name : lb.e[j].name);
		if (c < 0) {
			report(d, 'D', child);
			i++;
		} else if (c > 0) {
			report(d, 'A', child);
			j++;
		} else {
			diff_entry(d, child, la.e[i].ino, lb.e[j].ino, depth);
			i++;
			j++;
		}
	}
out:
	dlist_free(&la);
	dlist_free(&lb);
}

static int run_diff(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc < 3 || argc > 4)
		return cli_error("diff needs two snapshots: roam diff VM@A VM@B [PATH]");
	const char *path = argc == 4 ? argv[3] : "/";
	if (path[0] != '/')
		return cli_error("diff: PATH must start with '/'");
	struct target ta, tb;
	int rc = target_open(ctx, NULL, argv[1], false, &ta);
	if (rc)
		return rc;
	rc = target_open(ctx, ta.s, argv[2], false, &tb);
	if (rc) {
		target_close(&ta);
		return rc;
	}
	snprintf(ta.path, sizeof(ta.path), "%s", path);
	snprintf(tb.path, sizeof(tb.path), "%s", path);
	struct diff d = { ctx, NULL, NULL, ta.v->disks[0].tree, tb.v->disks[0].tree, 0, 0 };
	uint64_t ia, ib;
	char spec_a[4200], spec_b[4200];
	snprintf(spec_a, sizeof(spec_a), "%s:%s", argv[1], path);
	snprintf(spec_b, sizeof(spec_b), "%s:%s", argv[2], path);
	if ((rc = target_lookup(&ta, spec_a, 0, &d.a, &ia)) == 0 &&
	    (rc = target_lookup(&tb, spec_b, 0, &d.b, &ib)) == 0) {
		if (ctx->json)
			printf("[");
		diff_entry(&d, path, ia, ib, 0);
		if (ctx->json)
			printf("]\n");
		if (d.errors)
			rc = cli_error("%d entries could not be compared", d.errors);
	}
	tb.s = NULL;                 /* shared with ta */
	target_close(&tb);
	target_close(&ta);
	return rc;
}

CLI_COMMAND(cmd_diff) = {
	.name = "diff",
	.summary = "list files added, removed and changed between two checkpoints",
	.usage = "usage: roam diff VM@A VM@B [PATH] [--json]\n"
		 "Compares the guest filesystems of two snapshots (VM alone is its head)\n"
		 "below PATH (default /) and prints one line per difference:\n"
		 "  A path   added in B\n  D path   deleted in B\n  M path   changed\n",
	.run = run_diff,
};

/* ---- roam mount / umount -------------------------------------------------- */

static int run_mount(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "foreground", no_argument, NULL, 'f' }, { 0 } };
	bool fg = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "f", opts, NULL)) != -1) {
		if (c != 'f')
			return cli_error("mount: unknown option; see 'roam mount --help'");
		fg = true;
	}
	if (optind != argc - 1)
		return cli_error("mount needs one MOUNTPOINT");
	char err[512];
	if (ffs_mount(ctx->store_path, argv[optind], fg, err, sizeof(err)) < 0)
		return cli_error("%s", err);
	return 0;
}

CLI_COMMAND(cmd_mount) = {
	.name = "mount",
	.summary = "mount a read-only view of every VM, checkpoint and disk (FUSE)",
	.usage = "usage: roam mount MOUNTPOINT [--foreground]\n"
		 "Shows the store as files: disks/NAME/disk.raw, vms/VM/head/ and\n"
		 "vms/VM/checkpoints/TAG/ with config.json, disk0.raw, memory.raw and\n"
		 "files/ (the guest's own files). New checkpoints appear as they are made.\n"
		 "Unmount with 'roam umount MOUNTPOINT'.\n",
	.run = run_mount,
};

static int run_umount(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc != 2)
		return cli_error("umount needs one MOUNTPOINT");
	char err[512];
	if (ffs_umount(argv[1], err, sizeof(err)) < 0)
		return cli_error("%s", err);
	return 0;
}

CLI_COMMAND(cmd_umount) = {
	.name = "umount",
	.summary = "unmount a 'roam mount'",
	.usage = "usage: roam umount MOUNTPOINT\n",
	.run = run_umount,
};
