/* Running a VM from the store (vmstore.h): build the machine from the head
 * commit, boot or resume it, serve `roam suspend` / `roam checkpoint` on a
 * control socket, and write commits: everything on suspend and checkpoint,
 * the disks when the guest powers off. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "checkpoint/lazymem.h"
#include "checkpoint/lease.h"
#include "checkpoint/memory.h"
#include "checkpoint/overlay.h"
#include "checkpoint/state.h"
#include "checkpoint/vmstore.h"
#include "image/commit.h"
#include "monitor/dev.h"
#include "monitor/dev/legacy.h"
#include "monitor/evloop.h"
#include "monitor/guest_mem.h"
#include "monitor/vm.h"

struct session {
	struct store *s;
	const struct ckpt_run_opts *opts;
	char name[CKPT_NAME_MAX + 1];
	char dir[PATH_MAX];          /* run/vm-NAME */
	char lock_path[PATH_MAX];
	int lock_fd, ctl_fd;
	struct ev_timer *esc_timer;  /* polls the console's escape requests */
	char host[256];
	struct store_hash head;
	struct store_commit *commit; /* decoded head */
	struct ckpt_config cfg;
	int ndisks;
	struct ckpt_overlay *ov[VM_MAX_DISKS];
	bool ov_given;               /* the overlays belong to the VM now */
	struct vm *vm;
	bool have_mem_base;
	struct store_hash mem_base;
	bool dirty_logging;          /* the engine's dirty log runs (dirty_log_start done) */
	struct ckpt_lazy *lazy;      /* memory still loading lazily (lazymem.h) */
	_Atomic bool mem_failed;     /* a chunk of memory could not be loaded */
	char mem_error[400];
	uint64_t *dirty, *dirty_tmp; /* pages written since mem_base; scratch */
	size_t dirty_words;
	bool suspended;
	bool writer_ready;           /* this process is a registered store writer */
	uint64_t started_ns;         /* when the guest started running */
};

static void notice(struct session *se, const char *fmt, ...)
{
	if (!se->opts->notice)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	se->opts->notice(se->opts->notice_arg, msg);
}

/* The control socket's abstract address: from the store's path as given
 * (store_path() returns it unchanged), so a client needs no store handle. */
static void ctl_address(const char *path, const char *name, struct sockaddr_un *a, socklen_t *len)
{
	char real[PATH_MAX], hex[STORE_HASH_HEX];
	struct store_hash h;
	if (!realpath(path, real))
		snprintf(real, sizeof(real), "%s", path);
	store_hash_buf(real, strlen(real), &h);
	store_hash_hex(&h, hex);
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	int n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "roam/%.16s/%s", hex, name);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/* ---- taking the VM: lock file, leftovers of a run that died --------------- */

static int take_lock(struct session *se, char *err, size_t errlen)
{
	snprintf(se->lock_path, sizeof(se->lock_path), "%s/vm-%s.lock", store_run_dir(se->s), se->name);
	snprintf(se->dir, sizeof(se->dir), "%s/vm-%s", store_run_dir(se->s), se->name);
	se->lock_fd = open(se->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (se->lock_fd < 0) {
		snprintf(err, errlen, "cannot create %s: %s", se->lock_path, strerror(errno));
		return -errno;
	}
	if (flock(se->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		char buf[300] = "";
		if (pread(se->lock_fd, buf, sizeof(buf) - 1, 0) < 0)
			buf[0] = 0;
		buf[strcspn(buf, "\n")] = 0;
		snprintf(err, errlen, "VM %s is already running in this store (pid and host: %s)",
			 se->name, buf[0] ? buf : "unknown");
		return -EBUSY;
	}
	/* A pid file left behind means the last run died without saving
	 * (kill -9, a crash, power loss): say so; its working files are
	 * replaced below. */
	char pidfile[PATH_MAX + 8], buf[64] = "";
	snprintf(pidfile, sizeof(pidfile), "%s/pid", se->dir);
	int fd = open(pidfile, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t k = read(fd, buf, sizeof(buf) - 1);
		buf[k > 0 ? k : 0] = 0;
		buf[strcspn(buf, " \n")] = 0;
		close(fd);
		notice(se, "the previous run of %s (pid %s) ended without saving (killed or crashed); "
			   "starting again from its last commit", se->name, buf[0] ? buf : "?");
	}
	if (mkdir(se->dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", se->dir, strerror(errno));
		return -errno;
	}
	char line[400];
	int n = snprintf(line, sizeof(line), "%d %s\n", (int)getpid(), se->host);
	if (ftruncate(se->lock_fd, 0) < 0 || pwrite(se->lock_fd, line, (size_t)n, 0) != n) {
		snprintf(err, errlen, "cannot write %s: %s", se->lock_path, strerror(errno));
		return -EIO;
	}
	fd = open(pidfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, line, (size_t)n) != n) {
		if (fd >= 0)
			close(fd);
		snprintf(err, errlen, "cannot write %s: %s", pidfile, strerror(errno));
		return -EIO;
	}
	close(fd);
	return 0;
}

/* The VM's lease names the host that may run it (lease.h): refused while
 * another host holds it, unless --steal. */
static int take_lease(struct session *se, char *err, size_t errlen)
{
	char host[CKPT_LEASE_HOST_MAX + 1], prev[CKPT_LEASE_HOST_MAX + 1] = "";
	ckpt_lease_hostname(host, sizeof(host));
	if (se->opts->steal && ckpt_lease_get(se->s, se->name, prev, sizeof(prev), NULL) < 0)
		prev[0] = 0;
	int rc = ckpt_lease_take(se->s, se->name, host, se->opts->steal, err, errlen);
	if (rc == 0 && prev[0] && strcmp(prev, host))
		notice(se, "took over the lease of %s from host %s", se->name, prev);
	return rc;
}

/* ---- building the machine from the head commit --------------------------- */

static int export_root(struct session *se, const char *root, const char *file, char *path,
		       size_t pathlen, char *err, size_t errlen)
{
	const struct store_commit_root *r = store_commit_root(se->commit, root);
	if (!r)
		return 0;
	snprintf(path, pathlen, "%s/%s", se->dir, file);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		return -errno;
	}
	int rc = store_export_fd(se->s, &r->hash, fd, NULL);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc < 0)
		snprintf(err, errlen, "cannot read the VM's %s: %s", root, store_last_error());
	return rc < 0 ? rc : 1;
}

static int load_head(struct session *se, char *err, size_t errlen)
{
	char ref[256];
	snprintf(ref, sizeof(ref), "vms/%s/head", se->name);
	int rc = store_ref_get(se->s, ref, &se->head);
	if (rc == -ENOENT) {
		snprintf(err, errlen, "no VM named %s in this store ('roam create %s' makes one)", se->name, se->name);
		return rc;
	}
	if (rc == 0)
		rc = store_commit_get(se->s, &se->head, &se->commit);
	if (rc < 0) {
		snprintf(err, errlen, "cannot read VM %s: %s", se->name, store_last_error());
		return rc;
	}
	const struct store_commit_root *r = store_commit_root(se->commit, "config");
	void *json = NULL;
	size_t len;
	if (!r || store_get(se->s, &r->hash, NULL, &json, &len) < 0) {
		snprintf(err, errlen, "VM %s: its config is missing or corrupt (%s)", se->name,
			 r ? store_last_error() : "no config root");
		return -EINVAL;
	}
	rc = ckpt_config_decode(json, len, &se->cfg, err, errlen);
	free(json);
	return rc;
}

static int build_vm(struct session *se, char *err, size_t errlen)
{
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	uint64_t host = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
	if (host && se->cfg.mem > host) {
		snprintf(err, errlen, "VM %s needs %llu MiB of memory but this host has %llu MiB",
			 se->name, (unsigned long long)(se->cfg.mem >> 20), (unsigned long long)(host >> 20));
		return -ENOMEM;
	}
	char kernel[PATH_MAX + 16] = "", initrd[PATH_MAX + 16];
	int rc, has_initrd = 0;
	/* Only a boot reads the kernel and initrd: a resume skips exporting
	 * them (megabytes before the guest's first instruction). */
	if (!store_commit_root(se->commit, "state")) {
		rc = export_root(se, "kernel", "kernel", kernel, sizeof(kernel), err, errlen);
		if (rc == 0) {
			snprintf(err, errlen, "VM %s has no kernel", se->name);
			return -EINVAL;
		}
		if (rc < 0)
			return rc;
		has_initrd = export_root(se, "initrd", "initrd", initrd, sizeof(initrd), err, errlen);
		if (has_initrd < 0)
			return has_initrd;
	}
	struct vm_config vc = {
		.mem_size = se->cfg.mem, .ncpus = se->cfg.cpus, .engine = se->opts->engine,
		.kernel = kernel[0] ? kernel : NULL, .initrd = has_initrd ? initrd : NULL, .append = se->cfg.append,
		.rng = se->cfg.rng, .console_in = se->opts->console_in,
		.console_out = se->opts->console_out,
		/* A VM in the store may be resumed on another host, under the
		 * other engine: give the guest only CPU features both have. */
		.portable_cpu = true,
	};
	for (int i = 0; i < se->cfg.disks; i++) {
		char name[16], work[PATH_MAX + 32];
		snprintf(name, sizeof(name), "disk%d", i);
		const struct store_commit_root *r = store_commit_root(se->commit, name);
		if (!r || r->kind != STORE_TREE) {
			snprintf(err, errlen, "VM %s: %s is missing from its commit", se->name, name);
			return -EINVAL;
		}
		snprintf(work, sizeof(work), "%s/%s.work", se->dir, name);
		bool ro = se->cfg.readonly[i] == '1';
		rc = ckpt_overlay_new(se->s, &r->hash, work, ro, &se->ov[i]);
		if (rc < 0) {
			snprintf(err, errlen, "VM %s: cannot open %s: %s", se->name, name,
				 rc == -ENOENT || rc == -EBADMSG ? store_last_error() : strerror(-rc));
			return rc;
		}
		vc.disks[i] = (struct vm_disk){ .bdev = ckpt_overlay_bdev(se->ov[i]), .readonly = ro };
		se->ndisks = i + 1;
	}
	vc.ndisks = se->ndisks;
	rc = vm_new(&vc, &se->vm, err, errlen);
	se->ov_given = true;         /* vm_new owns given blockdevs, even when it fails */
	if (rc < 0)
		return rc;
	se->dirty_words = (gmem_size(se->vm->mem) / GMEM_PAGE + 63) / 64;
	se->dirty = calloc(se->dirty_words, sizeof(uint64_t));
	se->dirty_tmp = calloc(se->dirty_words, sizeof(uint64_t));
	return se->dirty && se->dirty_tmp ? 0 : -ENOMEM;
}

/* Starts the engine's dirty-page log after a full save or a restore. When
 * it cannot, the next memory save is a full one (needs_full_save). */
static void start_dirty_log(struct session *se)
{
	const struct engine_ops *ops = se->vm->eng_ops;
	se->dirty_logging = false;
	if (!ops->dirty_log)
		return;
	int rc = ops->dirty_log_start ? ops->dirty_log_start(se->vm->eng) : 0;
	if (rc < 0)
		notice(se, "the %s engine cannot log dirty pages (%s); every save of %s stores all of its memory",
		       ops->name, strerror(-rc), se->name);
	else
		se->dirty_logging = true;
}

/* An incremental save needs a base tree and, for engines with their own
 * dirty log (KVM), a log running since that base was taken. */
static bool needs_full_save(const struct session *se)
{
	return !se->have_mem_base || (se->vm->eng_ops->dirty_log && !se->dirty_logging);
}

/* A chunk of lazily loaded memory is missing or corrupt: the guest stops
 * and nothing of this run is saved (the faulting page got zeros). */
static void lazy_failed(void *arg, int err, const char *msg)
{
	struct session *se = arg;
	snprintf(se->mem_error, sizeof(se->mem_error), "%s", msg);
	atomic_store(&se->mem_failed, true);
	vm_request_stop(se->vm, VM_STOP_ERROR, 1, "VM %s: %s; nothing of this run is saved", se->name, msg);
}

/* Lazily with userfaultfd where the host allows it, unless ROAM_RESTORE=eager;
 * else eagerly (every non-zero chunk read before the guest runs). */
static int restore_memory(struct session *se, const struct store_hash *root, char *err, size_t errlen)
{
	const char *mode = getenv("ROAM_RESTORE");
	int rc;
	if (!mode || strcmp(mode, "eager")) {
		rc = ckpt_lazy_start(store_path(se->s), root, se->vm->mem, lazy_failed, se, &se->lazy);
		if (rc == 0) {
			notice(se, "mapping %llu MiB of memory lazily (userfaultfd)",
			       (unsigned long long)(se->cfg.mem >> 20));
			return 0;
		}
		if (rc != -ENOSYS && rc != -EPERM && rc != -EINVAL && rc != -EOPNOTSUPP && rc != -ENOMEM) {
			snprintf(err, errlen, "VM %s: cannot restore its memory: %s", se->name,
				 rc == -EBADMSG || rc == -ENOENT ? store_last_error() : strerror(-rc));
			return rc;
		}
		notice(se, "userfaultfd is not available here (%s); loading memory before resuming",
		       strerror(-rc));
	}
	uint64_t t0 = now_ns();
	char why[400];
	rc = ckpt_mem_restore(se->s, root, se->vm->mem, why, sizeof(why));
	if (rc < 0)
		snprintf(err, errlen, "VM %s: cannot restore its memory: %s", se->name, why);
	else
		notice(se, "restored %llu MiB of memory in %.2f s", (unsigned long long)(se->cfg.mem >> 20),
		       (double)(now_ns() - t0) / 1e9);
	return rc;
}

/* Resume from the commit's memory and state, or boot. */
static int start_vm(struct session *se, char *err, size_t errlen)
{
	const struct store_commit_root *st = store_commit_root(se->commit, "state");
	const struct store_commit_root *mem = store_commit_root(se->commit, "memory");
	if (!st)
		return vm_boot(se->vm, err, errlen);
	if (!mem || mem->kind != STORE_TREE || st->kind != STORE_STATE) {
		snprintf(err, errlen, "VM %s: its suspended state is incomplete", se->name);
		return -EINVAL;
	}
	void *buf;
	size_t len;
	int rc = store_get(se->s, &st->hash, NULL, &buf, &len);
	if (rc < 0) {
		snprintf(err, errlen, "VM %s: cannot read its machine state: %s", se->name, store_last_error());
		return rc;
	}
	struct ckpt_mach mach;
	rc = ckpt_state_peek(buf, len, &mach, err, errlen);
	if (rc == 0)
		rc = restore_memory(se, &mem->hash, err, errlen);
	if (rc == 0)
		rc = ckpt_state_load(se->vm, buf, len, err, errlen);
	free(buf);
	if (rc == 0) {
		se->have_mem_base = true;
		se->mem_base = mem->hash;
		gmem_take_dirty(se->vm->mem, se->dirty_tmp);
		start_dirty_log(se);
	}
	return rc;
}

/* ---- saving ---------------------------------------------------------------- */

enum save_kind { SAVE_SUSPEND, SAVE_CHECKPOINT, SAVE_POWEROFF };

static void devices_pause(struct vm *vm, bool pause)
{
	for (struct dev *d = vm->devs; d; d = d->next) {
		if (pause && d->type->pause)
			d->type->pause(d);
		else if (!pause && d->type->resume)
			d->type->resume(d);
	}
}

static int add_root(struct store_commit *c, const char *name, enum store_kind kind,
		    const struct store_hash *h)
{
	return store_commit_add_root(c, name, kind, h);
}

/* Writes a commit of the paused VM and moves head (and the tag). With
 * SAVE_POWEROFF only the disks are saved. */
static int save(struct session *se, enum save_kind kind, const char *tag, const char *message,
		struct store_hash *ret, char *err, size_t errlen)
{
	struct vm *vm = se->vm;
	struct store_commit c = { .n_parents = 1, .time = time(NULL), .host = se->host };
	c.parents[0] = se->head;
	char msg[512];
	snprintf(msg, sizeof(msg), "%s", message && *message ? message
		 : kind == SAVE_SUSPEND ? "suspend" : kind == SAVE_POWEROFF ? "powered off" : "checkpoint");
	c.message = msg;
	uint64_t t0 = now_ns(), mem_bytes = 0, disk_bytes = 0;
	if (tag) {
		/* Checked again when the tag is set; this spares the work. */
		char tr[300];
		struct store_hash th;
		snprintf(tr, sizeof(tr), "vms/%s/checkpoints/%s", se->name, tag);
		if (store_ref_get(se->s, tr, &th) == 0) {
			snprintf(err, errlen, "VM %s already has a checkpoint '%s'", se->name, tag);
			return -ESTALE;
		}
	}
	if (atomic_load(&se->mem_failed)) {
		snprintf(err, errlen, "VM %s: %s; nothing saved", se->name, se->mem_error);
		return -EIO;
	}
	/* A full save reads RAM through the memfd, where pages not yet
	 * loaded read as zeros: load them all first. */
	if (kind != SAVE_POWEROFF && se->lazy && needs_full_save(se)) {
		int lrc = ckpt_lazy_finish(se->lazy);
		if (lrc < 0) {
			snprintf(err, errlen, "VM %s: %s; nothing saved", se->name, se->mem_error);
			return lrc;
		}
	}
	int rc = store_txn_begin(se->s);
	if (rc < 0)
		goto fail;
	static const char *keep[] = { "config", "kernel", "initrd" };
	for (size_t i = 0; i < 3 && rc == 0; i++) {
		const struct store_commit_root *r = store_commit_root(se->commit, keep[i]);
		if (r)
			rc = add_root(&c, r->name, r->kind, &r->hash);
	}
	for (int i = 0; i < se->ndisks && rc == 0; i++) {
		struct store_hash h;
		uint64_t b = 0;
		char name[16];
		snprintf(name, sizeof(name), "disk%d", i);
		rc = ckpt_overlay_save(se->ov[i], &h, &b);
		disk_bytes += b;
		if (rc == 0)
			rc = add_root(&c, name, STORE_TREE, &h);
	}
	struct store_hash mem_root = { { 0 } };
	if (rc == 0 && kind != SAVE_POWEROFF) {
		struct ckpt_mem_stats ms = { 0 };
		bool full = needs_full_save(se);
		/* se->dirty accumulates until a save succeeds, so a failed save
		 * loses no page for the next one. */
		gmem_take_dirty(vm->mem, se->dirty_tmp);
		for (size_t i = 0; i < se->dirty_words; i++)
			se->dirty[i] |= se->dirty_tmp[i];
		/* Only a running log may be read (KVM: -EINVAL before
		 * dirty_log_start); a log that cannot be read fails the save
		 * rather than miss pages. */
		if (se->dirty_logging && (rc = vm->eng_ops->dirty_log(vm->eng, se->dirty)) < 0) {
			snprintf(err, errlen, "cannot save VM %s: the %s engine's dirty-page log failed: %s",
				 se->name, vm->eng_ops->name, strerror(-rc));
		} else if (!full) {
			rc = ckpt_mem_save_dirty(se->s, vm->mem, &se->mem_base, se->dirty, &mem_root, &ms);
		} else {
			/* Disk chunks the guest read may also be in its RAM. */
			struct store_hash *bases = NULL;
			size_t nb = 0, cap = 0;
			for (int i = 0; i < se->ndisks && rc == 0; i++)
				rc = ckpt_overlay_read_blobs(se->ov[i], &bases, &nb, &cap);
			if (rc < 0)
				snprintf(err, errlen, "cannot save VM %s: %s", se->name, strerror(-rc));
			else
				rc = ckpt_mem_save_full(se->s, vm->mem, bases, nb, &mem_root, &ms);
			free(bases);
			if (rc == 0)
				start_dirty_log(se);
		}
		mem_bytes = ms.bytes_written;
		if (rc == 0)
			rc = add_root(&c, "memory", STORE_TREE, &mem_root);
		void *state = NULL;
		size_t state_len = 0;
		struct store_hash sh;
		if (rc == 0 && (rc = ckpt_state_save(vm, &state, &state_len, err, errlen)) == 0) {
			rc = store_put(se->s, STORE_STATE, state, state_len, &sh);
			if (rc == 0)
				rc = add_root(&c, "state", STORE_STATE, &sh);
		}
		free(state);
	}
	struct store_hash h;
	if (rc == 0)
		rc = store_commit_put(se->s, &c, &h);
	if (rc == 0)
		rc = store_txn_commit(se->s);
	else
		store_txn_abort(se->s);
	if (rc < 0)
		goto fail;
	/* The disks' new trees exist now: they become the overlays' bases. */
	for (int i = 0; i < se->ndisks; i++)
		ckpt_overlay_adopt(se->ov[i]);
	/* The refs move outside the objects' transaction, where store_ref_cas
	 * makes each move durable (synchronous=FULL: the WAL with every
	 * object above is on disk before it returns). Inside it they would
	 * commit at synchronous=NORMAL, lost on a power cut. The tag goes
	 * first: when it already exists nothing moves, and a crash between the
	 * two leaves a valid checkpoint with head where it was. Objects of a
	 * save that moved no ref stay pinned by this process, then gc's. */
	char head_ref[300], tag_ref[300];
	snprintf(head_ref, sizeof(head_ref), "vms/%s/head", se->name);
	if (tag) {
		snprintf(tag_ref, sizeof(tag_ref), "vms/%s/checkpoints/%s", se->name, tag);
		if ((rc = store_ref_cas(se->s, tag_ref, NULL, &h)) == -ESTALE) {
			snprintf(err, errlen, "VM %s already has a checkpoint '%s'", se->name, tag);
			return rc;
		}
		if (rc < 0)
			goto fail;
	}
	if ((rc = store_ref_cas(se->s, head_ref, &se->head, &h)) < 0) {
		char why[300];
		snprintf(why, sizeof(why), "%s", store_last_error());
		if (tag && store_ref_cas(se->s, tag_ref, &h, NULL) < 0)
			notice(se, "checkpoint '%s' was made but head did not move: %s", tag,
			       store_last_error());
		if (rc != -ESTALE)
			snprintf(err, errlen, "cannot save VM %s: %s", se->name, why);
		goto fail;
	}
	se->head = h;
	if (kind != SAVE_POWEROFF) {
		se->have_mem_base = true;
		se->mem_base = mem_root;
		memset(se->dirty, 0, se->dirty_words * sizeof(uint64_t));
	}
	/* The commit now in force is the new head. A suspend skips this and
	 * the unpin: the process ends, and its pins go with the store handle. */
	if (kind != SAVE_SUSPEND) {
		store_unpin(se->s);
		struct store_commit *nc;
		if (store_commit_get(se->s, &h, &nc) == 0) {
			store_commit_free(se->commit);
			se->commit = nc;
		}
	}
	*ret = h;
	char hex[STORE_HASH_HEX];
	store_hash_hex(&h, hex);
	notice(se, "%s %s: commit %.12s, %.1f MiB of memory and %.1f MiB of disk written in %.2f s",
	       kind == SAVE_SUSPEND ? "suspended" : kind == SAVE_CHECKPOINT ? "checkpointed" : "saved",
	       se->name, hex, (double)mem_bytes / 1048576.0, (double)disk_bytes / 1048576.0,
	       (double)(now_ns() - t0) / 1e9);
	return 0;
fail:
	if (!err[0])
		snprintf(err, errlen, "cannot save VM %s: %s", se->name,
			 rc == -ESTALE ? "its head moved (another roam changed it)" : store_last_error());
	return rc;
}

/* Suspend or checkpoint the running VM (on the event-loop thread). */
static int save_running(struct session *se, enum save_kind kind, const char *tag, const char *msg,
			char *reply, size_t replylen)
{
	char err[512] = "";
	struct store_hash h;
	vm_pause(se->vm);
	devices_pause(se->vm, true);
	int rc = save(se, kind, tag, msg, &h, err, sizeof(err));
	if (rc == 0 && kind == SAVE_SUSPEND) {
		se->suspended = true;
		char hex[STORE_HASH_HEX];
		store_hash_hex(&h, hex);
		snprintf(reply, replylen, "ok %s", hex);
		vm_request_stop(se->vm, VM_STOP_HOST, 0, NULL);
		vm_unpause(se->vm);
		return 0;
	}
	devices_pause(se->vm, false);
	vm_unpause(se->vm);
	if (rc < 0) {
		snprintf(reply, replylen, "error %s", err);
		return rc;
	}
	/* The WAL holds the save: copy it into the database while the guest
	 * runs (a suspend leaves that to the close, after its reply). */
	if (store_checkpoint_background(se->s) < 0)
		notice(se, "cannot start the store's checkpoint thread; its close will copy the WAL");
	char hex[STORE_HASH_HEX];
	store_hash_hex(&h, hex);
	snprintf(reply, replylen, "ok %s", hex);
	return 0;
}

/* ---- control socket ---------------------------------------------------------- */

static void on_ctl(void *opaque, int fd, uint32_t events)
{
	struct session *se = opaque;
	int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return;
	char line[1024];
	size_t n = 0;
	struct pollfd p = { c, POLLIN, 0 };
	while (n < sizeof(line) - 1 && poll(&p, 1, 2000) == 1) {
		ssize_t k = read(c, line + n, sizeof(line) - 1 - n);
		if (k <= 0)
			break;
		n += (size_t)k;
		if (memchr(line, '\n', n))
			break;
	}
	line[n] = 0;
	line[strcspn(line, "\n")] = 0;
	char reply[700];
	/* "suspend" | "checkpoint TAG [MESSAGE]" | "status" */
	if (!strcmp(line, "suspend")) {
		save_running(se, SAVE_SUSPEND, NULL, NULL, reply, sizeof(reply));
	} else if (!strncmp(line, "checkpoint ", 11)) {
		char *tag = line + 11, *msg = strchr(tag, ' ');
		if (msg)
			*msg++ = 0;
		if (!ckpt_name_valid(tag))
			snprintf(reply, sizeof(reply), "error '%.64s' is not a valid tag", tag);
		else
			save_running(se, SAVE_CHECKPOINT, tag, msg, reply, sizeof(reply));
	} else if (!strcmp(line, "status")) {
		snprintf(reply, sizeof(reply), "ok running pid %d", (int)getpid());
	} else {
		snprintf(reply, sizeof(reply), "error unknown request");
	}
	size_t len = strlen(reply);
	reply[len++] = '\n';
	if (write(c, reply, len) < 0) {
		/* the client went away; nothing to tell */
	}
	close(c);
}

/* Ctrl-A s on the console: the same suspend as `roam suspend`. The console
 * only records the request; this timer on the event loop picks it up. */
#define ESC_POLL_NS 100000000ULL

/* A process's first write to the store registers it as a writer (a lock
 * file and a row: store.h, gc safety), which costs milliseconds. A resumed
 * VM may never have written yet: do it while the guest runs (a second in,
 * out of the way of a resume's first moments), not inside the pause of the
 * first suspend. A failure here only means the save pays it. */
#define WRITER_PREP_NS 1000000000ULL

static void prepare_writer(struct session *se)
{
	se->writer_ready = true;
	if (store_txn_begin(se->s) == 0 && store_txn_commit(se->s) < 0)
		notice(se, "the store is not writable: %s", store_last_error());
}

static void on_esc_timer(void *opaque)
{
	struct session *se = opaque;
	if (se->suspended || atomic_load(&se->vm->stop) != VM_RUNNING)
		return;
	if (!se->writer_ready && now_ns() - se->started_ns >= WRITER_PREP_NS)
		prepare_writer(se);
	if (se->vm->con && console_take_request(se->vm->con) == 's') {
		char reply[700];
		if (save_running(se, SAVE_SUSPEND, NULL, NULL, reply, sizeof(reply)) < 0)
			notice(se, "suspend failed: %s", reply + 6);
		if (se->suspended)
			return;
	}
	ev_timer_arm(se->esc_timer, now_ns() + ESC_POLL_NS);
}

static int watch_escape(struct session *se, char *err, size_t errlen)
{
	int rc = ev_timer_new(se->vm->ev, on_esc_timer, se, &se->esc_timer);
	if (rc < 0) {
		snprintf(err, errlen, "cannot watch the console: %s", strerror(-rc));
		return rc;
	}
	se->started_ns = now_ns();
	ev_timer_arm(se->esc_timer, se->started_ns + ESC_POLL_NS);
	return 0;
}

static int listen_ctl(struct session *se, char *err, size_t errlen)
{
	struct sockaddr_un a;
	socklen_t alen;
	ctl_address(store_path(se->s), se->name, &a, &alen);
	se->ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (se->ctl_fd < 0 || bind(se->ctl_fd, (struct sockaddr *)&a, alen) < 0 ||
	    listen(se->ctl_fd, 4) < 0) {
		snprintf(err, errlen, "cannot open the control socket of VM %s: %s", se->name, strerror(errno));
		return -errno;
	}
	int rc = evloop_add_fd(se->vm->ev, se->ctl_fd, EPOLLIN, on_ctl, se);
	if (rc < 0)
		snprintf(err, errlen, "cannot watch the control socket: %s", strerror(-rc));
	return rc;
}

int ckpt_vm_request(const char *store_path, const char *name, const char *cmd, const char *tag,
		    const char *message, char *reply, size_t replylen)
{
	struct sockaddr_un a;
	socklen_t alen;
	ctl_address(store_path, name, &a, &alen);
	/* Straight to the socket (the store is opened only to explain a
	 * failure): `roam suspend` is timed by users. */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, alen) < 0) {
		if (fd >= 0)
			close(fd);
		struct store *s;
		int rc = store_open(store_path, STORE_OPEN_RDONLY, &s);
		if (rc < 0) {
			snprintf(reply, replylen, "%s", store_last_error());
			return rc;
		}
		store_free(s);
		snprintf(reply, replylen, "VM %s is not running in this store", name);
		return -ESRCH;
	}
	char line[1024];
	int n = snprintf(line, sizeof(line), "%s%s%s%s%s\n", cmd, tag ? " " : "", tag ? tag : "",
			 message ? " " : "", message ? message : "");
	if (n >= (int)sizeof(line) || write(fd, line, (size_t)n) != n) {
		close(fd);
		snprintf(reply, replylen, "cannot send the request to VM %s", name);
		return -EIO;
	}
	size_t got = 0;
	for (;;) {
		ssize_t k = read(fd, line + got, sizeof(line) - 1 - got);
		if (k <= 0 || (got += (size_t)k) >= sizeof(line) - 1)
			break;
		if (memchr(line, '\n', got))
			break;
	}
	close(fd);
	line[got] = 0;
	line[strcspn(line, "\n")] = 0;
	if (!strncmp(line, "ok", 2)) {
		snprintf(reply, replylen, "%s", line[2] ? line + 3 : "");
		return 0;
	}
	snprintf(reply, replylen, "%s", !strncmp(line, "error ", 6) ? line + 6
		 : "the VM stopped before answering");
	return -EIO;
}

/* ---- the run ------------------------------------------------------------------ */

static void cleanup(struct session *se)
{
	if (se->ctl_fd >= 0 && se->vm)
		evloop_del_fd(se->vm->ev, se->ctl_fd);
	if (se->ctl_fd >= 0)
		close(se->ctl_fd);
	/* The event loop is stopped (vm_run ended, or never started). */
	ev_timer_free(se->esc_timer);
	ckpt_lazy_free(se->lazy);    /* the guest no longer runs */
	vm_free(se->vm);
	for (int i = 0; i < se->ndisks && !se->ov_given; i++)
		blockdev_free(ckpt_overlay_bdev(se->ov[i]));
	free(se->dirty);
	free(se->dirty_tmp);
	store_commit_free(se->commit);
	if (se->dir[0]) {
		static const char *files[] = { "kernel", "initrd", "pid", "disk0.work", "disk1.work",
					       "disk2.work", "disk3.work", "disk4.work", "disk5.work",
					       "disk6.work", "disk7.work" };
		for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
			char p[PATH_MAX + 16];
			snprintf(p, sizeof(p), "%s/%s", se->dir, files[i]);
			unlink(p);
		}
		rmdir(se->dir);
	}
	if (se->lock_fd >= 0) {
		if (ftruncate(se->lock_fd, 0) < 0) {
			/* the lock dies with the fd anyway */
		}
		close(se->lock_fd);
	}
	store_free(se->s);
}

int ckpt_vm_run(const char *store_path, const char *name, const struct ckpt_run_opts *o,
		char *err, size_t errlen)
{
	struct session se = { .opts = o, .lock_fd = -1, .ctl_fd = -1 };
	err[0] = 0;
	if (!ckpt_name_valid(name)) {
		snprintf(err, errlen, "'%s' is not a valid VM name", name);
		return -EINVAL;
	}
	snprintf(se.name, sizeof(se.name), "%s", name);
	gethostname(se.host, sizeof(se.host) - 1);
	/* Saves are timed; without it, a small one spends half its time
	 * faulting in SQLite's page cache. Best effort. */
	store_warm_page_cache();
	int rc = store_open(store_path, 0, &se.s);
	if (rc < 0) {
		snprintf(err, errlen, "%s", store_last_error());
		return rc;
	}
	/* Not inside the pause of a save: save_running and the close copy the
	 * WAL into the database. */
	if (store_set_autocheckpoint(se.s, false) < 0) {
		/* then SQLite copies it in the commits, as any process does */
	}
	if ((rc = take_lock(&se, err, errlen)) < 0 || (rc = load_head(&se, err, errlen)) < 0 ||
	    (rc = take_lease(&se, err, errlen)) < 0 || (rc = build_vm(&se, err, errlen)) < 0 || (rc = start_vm(&se, err, errlen)) < 0 ||
	    (rc = listen_ctl(&se, err, errlen)) < 0 || (rc = watch_escape(&se, err, errlen)) < 0)
		goto out;
	if (store_commit_root(se.commit, "state"))
		notice(&se, "resumed %s", name);
	int status = vm_run(se.vm);
	int why = atomic_load(&se.vm->stop);
	if (se.lazy) {
		struct ckpt_lazy_stats ls;
		ckpt_lazy_get_stats(se.lazy, &ls);
		if (ls.done_ns && !ls.error)
			notice(&se, "lazy restore: all of memory was loaded %.2f s after resuming (%llu faults served)",
			       (double)ls.done_ns / 1e9, (unsigned long long)ls.faults);
		else
			notice(&se, "lazy restore: %llu chunks loaded (%llu faults served) when the VM stopped",
			       (unsigned long long)ls.chunks, (unsigned long long)ls.faults);
	}
	if (why == VM_STOP_ERROR)
		snprintf(err, errlen, "%s", se.vm->error[0] ? se.vm->error : "the VM failed");
	if (!se.suspended) {
		/* Powered off, reset, quit or failed: the disks keep what the guest
		 * wrote; memory is gone as on a real machine. */
		char serr[512] = "";
		struct store_hash h;
		devices_pause(se.vm, true);
		bool changed = store_commit_root(se.commit, "state") != NULL;
		for (int i = 0; i < se.ndisks; i++)
			changed |= ckpt_overlay_dirty_chunks(se.ov[i]) > 0;
		if (changed && save(&se, SAVE_POWEROFF, NULL,
				    why == VM_STOP_ERROR ? "powered off after an error" : NULL,
				    &h, serr, sizeof(serr)) < 0) {
			snprintf(err, errlen, "%s", serr);
			rc = -EIO;
			goto out;
		}
	}
	rc = why == VM_STOP_ERROR ? -EIO : status;
out:
	cleanup(&se);
	return rc;
}
