/* VMs in the store: roam create, run, suspend, checkpoint, rollback, tag,
 * log, rm, status. The work is in checkpoint/; this file parses arguments
 * and prints. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "checkpoint/vmstore.h"
#include "cli/cli.h"
#include "image/commit.h"
#include "monitor/boot/boot.h"
#include "monitor/vm.h"

/* The guest kit: $ROAM_KIT, else kit/ beside the roam binary (build/kit),
 * else PREFIX/share/roam/kit. */
static const char *kit_dir(void)
{
	static char dir[PATH_MAX + 32];
	const char *env = getenv("ROAM_KIT");
	if (env && *env)
		return env;
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = 0;
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = 0;
			snprintf(dir, sizeof(dir), "%s/kit", exe);
			if (access(dir, R_OK) == 0)
				return dir;
			snprintf(dir, sizeof(dir), "%s/../share/roam/kit", exe);
			if (access(dir, R_OK) == 0)
				return dir;
		}
	}
	return NULL;
}

/* ---- roam create ---------------------------------------------------------- */

static const char create_usage[] =
	"usage: roam create VM [options]\n"
	"Makes a VM in the store, powered off. Without --kernel it uses the guest\n"
	"kit (kernel, initrd and, without --disk, the kit's root disk).\n\n"
	"  --kernel FILE       Linux bzImage or multiboot ELF\n"
	"  --initrd FILE       initial ramdisk\n"
	"  --disk FILE[,ro]    raw disk image to import (repeatable, up to 8)\n"
	"  --no-disk           no disk at all\n"
	"  --mem SIZE          memory (default 512M)\n"
	"  --cpus N            1-8 (default 1)\n"
	"  --append STR        kernel command line\n"
	"  --no-rng            no virtio-rng device\n";

static int run_create(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, 'k' }, { "initrd", required_argument, NULL, 'i' },
		{ "disk", required_argument, NULL, 'd' }, { "mem", required_argument, NULL, 'm' },
		{ "cpus", required_argument, NULL, 'c' }, { "append", required_argument, NULL, 'a' },
		{ "no-rng", no_argument, NULL, 'R' }, { "no-disk", no_argument, NULL, 'D' }, { 0 } };
	struct ckpt_create_opts o = { .mem = 512ULL << 20, .cpus = 1, .rng = true };
	char *specs[8] = { 0 };
	bool no_disk = false, initrd_given = false;
	int c, rc = 1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		unsigned long long v;
		switch (c) {
		case 'k': o.kernel = optarg; break;
		case 'i': o.initrd = optarg; initrd_given = true; break;
		case 'a': o.append = optarg; break;
		case 'R': o.rng = false; break;
		case 'D': no_disk = true; break;
		case 'm':
			if (cli_parse_size(optarg, &v) < 0 || v < (16ULL << 20) || v % 4096) {
				rc = cli_error("--mem %s: give a size of at least 16M in whole pages", optarg);
				goto out;
			}
			o.mem = v;
			break;
		case 'c':
			o.cpus = atoi(optarg);
			if (o.cpus < 1 || o.cpus > VM_MAX_CPUS) {
				rc = cli_error("--cpus %s: give a number from 1 to %d", optarg, VM_MAX_CPUS);
				goto out;
			}
			break;
		case 'd':
			if (o.ndisks == 8) {
				rc = cli_error("at most 8 disks");
				goto out;
			}
			specs[o.ndisks] = strdup(optarg);
			if (!specs[o.ndisks]) {
				rc = cli_error("out of memory");
				goto out;
			}
			char *comma = strrchr(specs[o.ndisks], ',');
			if (comma && !strcmp(comma, ",ro")) {
				*comma = 0;
				o.readonly[o.ndisks] = true;
			}
			o.disks[o.ndisks] = specs[o.ndisks];
			o.ndisks++;
			break;
		default:
			fputs(create_usage, stderr);
			rc = 2;
			goto out;
		}
	}
	if (optind != argc - 1) {
		rc = cli_error("create needs one VM name; 'roam create --help' shows the options");
		goto out;
	}
	o.name = argv[optind];
	char kernel[PATH_MAX + 64], initrd[PATH_MAX + 64], root[PATH_MAX + 64];
	if (!o.kernel) {
		const char *kit = kit_dir();
		if (!kit) {
			rc = cli_error("no --kernel given and no guest kit found (run 'make kit', or set ROAM_KIT)");
			goto out;
		}
		snprintf(kernel, sizeof(kernel), "%s/vmlinuz", kit);
		o.kernel = kernel;
		if (!initrd_given) {
			snprintf(initrd, sizeof(initrd), "%s/initrd.img", kit);
			o.initrd = initrd;
		}
		if (!o.ndisks && !no_disk) {
			snprintf(root, sizeof(root), "%s/root.ext4", kit);
			o.disks[o.ndisks++] = root;
		}
	}
	char err[512];
	enum boot_kind kind;
	if (boot_detect(o.kernel, &kind, err, sizeof(err)) < 0) {
		rc = cli_error("%s", err);
		goto out;
	}
	struct store *s = cli_store(ctx, false);
	if (!s)
		goto out;
	if (ckpt_vm_create(s, &o, err, sizeof(err)) < 0)
		rc = cli_error("%s", err);
	else {
		printf("created VM %s (%llu MiB, %d CPU%s, %d disk%s); start it with 'roam run %s'\n",
		       o.name, (unsigned long long)(o.mem >> 20), o.cpus, o.cpus > 1 ? "s" : "",
		       o.ndisks, o.ndisks == 1 ? "" : "s", o.name);
		rc = 0;
	}
	store_free(s);
out:
	for (int i = 0; i < 8; i++)
		free(specs[i]);
	return rc;
}

CLI_COMMAND(cmd_create) = {
	.name = "create", .summary = "make a VM in the store (powered off)",
	.usage = create_usage, .run = run_create,
};

/* ---- roam run ------------------------------------------------------------- */

static void print_notice(void *arg, const char *msg)
{
	fprintf(stderr, "roam: %s\n", msg);
}

static int run_run(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { { "engine", required_argument, NULL, 'e' },
					      { "steal", no_argument, NULL, 's' }, { 0 } };
	const char *engine = "auto";
	bool steal = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 's')
			steal = true;
		else if (c == 'e')
			engine = optarg;
		else
			return cli_error("run: unknown option; see 'roam run --help'");
	}
	if (optind != argc - 1)
		return cli_error("run needs one VM name");
	struct ckpt_run_opts o = { .console_in = 0, .console_out = 1, .notice = print_notice,
				   .steal = steal };
	const char *note = NULL, *why = NULL;
	if (engine_select(engine, &o.engine, &note, &why) < 0)
		return cli_error("engine %s: %s", engine, why ? why : "not available");
	if (note)
		fprintf(stderr, "roam: %s\n", note);
	char err[512];
	int rc = ckpt_vm_run(ctx->store_path, argv[optind], &o, err, sizeof(err));
	if (rc < 0)
		return cli_error("%s", err);
	return rc;
}

CLI_COMMAND(cmd_run) = {
	.name = "run", .summary = "boot a powered-off VM or resume a suspended one",
	.usage = "usage: roam run VM [--engine auto|kvm|bt] [--steal]\n"
		 "Runs the VM with its console on this terminal (or on pipes). From another\n"
		 "terminal, 'roam suspend VM' saves it and stops; 'roam checkpoint VM TAG'\n"
		 "saves it and keeps it running. On a terminal, Ctrl-A s suspends and\n"
		 "Ctrl-A x quits (like pulling the power: the disks keep what was written).\n"
		 "The VM's lease names the host running it; a VM leased by another host\n"
		 "is refused unless --steal takes the lease over.\n"
		 "Memory is loaded lazily on resume (userfaultfd) where the host allows;\n"
		 "ROAM_RESTORE=eager loads all of it before the guest runs.\n",
	.run = run_run,
};

/* ---- roam suspend / checkpoint ----------------------------------------------- */

static int run_suspend(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc != 2)
		return cli_error("suspend needs one VM name");
	char reply[700];
	if (ckpt_vm_request(ctx->store_path, argv[1], "suspend", NULL, NULL, reply, sizeof(reply)) < 0)
		return cli_error("%s", reply);
	printf("suspended %s: commit %.12s\n", argv[1], reply);
	return 0;
}

CLI_COMMAND(cmd_suspend) = {
	.name = "suspend", .summary = "save a running VM's whole state and stop it",
	.usage = "usage: roam suspend VM\n'roam run VM' resumes it, here or on another host.\n",
	.run = run_suspend,
};

static int run_checkpoint(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "message", required_argument, NULL, 'm' }, { "delete", no_argument, NULL, 'd' }, { 0 } };
	const char *msg = NULL;
	bool del = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "m:", opts, NULL)) != -1) {
		if (c == 'm')
			msg = optarg;
		else if (c == 'd')
			del = true;
		else
			return cli_error("checkpoint: unknown option; see 'roam checkpoint --help'");
	}
	if (optind != argc - 2)
		return cli_error("checkpoint needs a VM name and a TAG");
	const char *name = argv[optind], *tag = argv[optind + 1];
	char err[700];
	struct store *s = cli_store(ctx, false);
	if (!s)
		return 1;
	int rc = 0;
	if (del) {
		rc = ckpt_vm_untag(s, name, tag, err, sizeof(err));
		if (rc == 0)
			printf("deleted checkpoint %s of %s\n", tag, name);
	} else if (ckpt_vm_running(s, name, NULL, NULL, 0) == 1) {
		store_free(s);
		s = NULL;
		rc = ckpt_vm_request(ctx->store_path, name, "checkpoint", tag, msg, err, sizeof(err));
		if (rc == 0)
			printf("checkpoint %s of running %s: commit %.12s\n", tag, name, err);
	} else {
		rc = ckpt_vm_tag(s, name, tag, NULL, err, sizeof(err));
		if (rc == 0)
			printf("checkpoint %s of %s (not running)\n", tag, name);
	}
	store_free(s);
	return rc < 0 ? cli_error("%s", err) : 0;
}

CLI_COMMAND(cmd_checkpoint) = {
	.name = "checkpoint", .summary = "save a named checkpoint of a VM (running or not)",
	.usage = "usage: roam checkpoint VM TAG [-m MESSAGE]\n"
		 "       roam checkpoint --delete VM TAG\n"
		 "A running VM pauses briefly while its state is saved, then continues.\n",
	.run = run_checkpoint,
};

static int run_tag(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc < 3 || argc > 4)
		return cli_error("tag needs VM TAG [COMMIT|TAG]");
	struct store *s = cli_store(ctx, false);
	if (!s)
		return 1;
	char err[512];
	int rc = ckpt_vm_tag(s, argv[1], argv[2], argc == 4 ? argv[3] : NULL, err, sizeof(err));
	store_free(s);
	return rc < 0 ? cli_error("%s", err) : 0;
}

CLI_COMMAND(cmd_tag) = {
	.name = "tag", .summary = "name a commit of a VM as a checkpoint",
	.usage = "usage: roam tag VM TAG [COMMIT|TAG]\nTags the head, or the given commit (hash prefix) or checkpoint.\n",
	.run = run_tag,
};

/* ---- roam rollback / rm ------------------------------------------------------- */

static int run_rollback(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { { "stop", no_argument, NULL, 's' }, { 0 } };
	bool stop = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 's')
			return cli_error("rollback: unknown option; see 'roam rollback --help'");
		stop = true;
	}
	if (optind != argc - 2)
		return cli_error("rollback needs a VM name and a TAG");
	const char *name = argv[optind], *tag = argv[optind + 1];
	char err[700];
	if (stop) {
		int r = ckpt_vm_request(ctx->store_path, name, "suspend", NULL, NULL, err, sizeof(err));
		if (r < 0 && r != -ESRCH)
			return cli_error("cannot stop %s: %s", name, err);
		/* The suspended process exits right after answering. */
		for (int i = 0; i < 100; i++) {
			struct store *s = cli_store(ctx, true);
			if (!s)
				return 1;
			int running = ckpt_vm_running(s, name, NULL, NULL, 0);
			store_free(s);
			if (running != 1)
				break;
			usleep(100000);
		}
	}
	struct store *s = cli_store(ctx, false);
	if (!s)
		return 1;
	int rc = ckpt_vm_rollback(s, name, tag, err, sizeof(err));
	store_free(s);
	if (rc < 0)
		return cli_error("%s", err);
	printf("%s is at checkpoint %s; the replaced state is kept ('roam log %s')\n", name, tag, name);
	return 0;
}

CLI_COMMAND(cmd_rollback) = {
	.name = "rollback", .summary = "make a VM's head one of its checkpoints",
	.usage = "usage: roam rollback VM TAG [--stop]\n"
		 "The current head stays reachable (shown by 'roam log VM'). A running VM is\n"
		 "refused unless --stop, which suspends it first.\n",
	.run = run_rollback,
};

static int run_rm(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc != 2)
		return cli_error("rm needs one VM name");
	struct store *s = cli_store(ctx, false);
	if (!s)
		return 1;
	char err[512];
	int rc = ckpt_vm_remove(s, argv[1], err, sizeof(err));
	store_free(s);
	if (rc < 0)
		return cli_error("%s", err);
	printf("removed VM %s ('roam gc' frees its space)\n", argv[1]);
	return 0;
}

CLI_COMMAND(cmd_rm) = {
	.name = "rm", .summary = "remove a VM and its checkpoints from the store",
	.usage = "usage: roam rm VM\n", .run = run_rm,
};

/* ---- roam log / status ------------------------------------------------------------ */

struct vm_refs {
	char **names;
	struct store_hash *hashes;
	size_t n, cap;
};

static int add_ref(void *arg, const char *name, const struct store_hash *h)
{
	struct vm_refs *r = arg;
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 16;
		char **nn = realloc(r->names, cap * sizeof(*nn));
		if (!nn)
			return -ENOMEM;
		r->names = nn;
		struct store_hash *hh = realloc(r->hashes, cap * sizeof(*hh));
		if (!hh)
			return -ENOMEM;
		r->hashes = hh;
		r->cap = cap;
	}
	if (!(r->names[r->n] = strdup(name)))
		return -ENOMEM;
	r->hashes[r->n++] = *h;
	return 0;
}

static void refs_free(struct vm_refs *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->names[i]);
	free(r->names);
	free(r->hashes);
}

struct logent {
	struct store_hash h;
	struct store_commit *c;
};

static int cmp_time(const void *a, const void *b)
{
	const struct logent *x = a, *y = b;
	return x->c->time < y->c->time ? 1 : x->c->time > y->c->time ? -1 : 0;
}

static int run_log(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc != 2)
		return cli_error("log needs one VM name");
	const char *name = argv[1];
	struct store *s = cli_store(ctx, true);
	if (!s)
		return 1;
	char prefix[300];
	snprintf(prefix, sizeof(prefix), "vms/%s/", name);
	struct vm_refs refs = { 0 };
	struct logent *ents = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	if (store_ref_list(s, prefix, add_ref, &refs) < 0 || refs.n == 0) {
		rc = cli_error("no VM named %s in this store", name);
		goto out;
	}
	/* Every commit reachable from the VM's refs, through parents. */
	struct store_hash *pending = malloc(refs.n * sizeof(*pending) + 1);
	size_t npend = refs.n, pendcap = refs.n;
	if (!pending) {
		rc = cli_error("out of memory");
		goto out;
	}
	/* The lease ref names a blob (who runs the VM), not a commit. */
	npend = 0;
	for (size_t i = 0; i < refs.n; i++)
		if (strcmp(refs.names[i] + strlen(prefix), "lease"))
			pending[npend++] = refs.hashes[i];
	while (npend) {
		struct store_hash h = pending[--npend];
		bool seen = false;
		for (size_t i = 0; i < n && !seen; i++)
			seen = store_hash_eq(&ents[i].h, &h);
		if (seen)
			continue;
		struct store_commit *c;
		if (store_commit_get(s, &h, &c) < 0) {
			fprintf(stderr, "roam: %s\n", store_last_error());
			continue;
		}
		if (n == cap) {
			cap = cap ? 2 * cap : 32;
			struct logent *e = realloc(ents, cap * sizeof(*e));
			if (!e) {
				store_commit_free(c);
				break;
			}
			ents = e;
		}
		ents[n++] = (struct logent){ h, c };
		for (size_t p = 0; p < c->n_parents; p++) {
			if (npend == pendcap) {
				pendcap = pendcap * 2 + 8;
				struct store_hash *t = realloc(pending, pendcap * sizeof(*t));
				if (!t)
					break;
				pending = t;
			}
			pending[npend++] = c->parents[p];
		}
	}
	free(pending);
	qsort(ents, n, sizeof(*ents), cmp_time);
	if (ctx->json)
		printf("[");
	for (size_t i = 0; i < n; i++) {
		struct store_commit *c = ents[i].c;
		char hex[STORE_HASH_HEX], when[64];
		store_hash_hex(&ents[i].h, hex);
		time_t t = (time_t)c->time;
		struct tm tm;
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
		uint64_t disk = 0, mem = 0;
		for (size_t r = 0; r < c->n_roots; r++) {
			uint64_t sz = 0;
			if (store_logical_size(s, &c->roots[r].hash, &sz) < 0)
				continue;
			if (!strncmp(c->roots[r].name, "disk", 4))
				disk += sz;
			else if (!strcmp(c->roots[r].name, "memory"))
				mem += sz;
		}
		bool suspended = store_commit_root(c, "state") != NULL;
		char labels[1024] = "";
		size_t ll = 0;
		for (size_t r = 0; r < refs.n; r++) {
			if (!store_hash_eq(&refs.hashes[r], &ents[i].h))
				continue;
			const char *label = refs.names[r] + strlen(prefix);
			if (!strncmp(label, "checkpoints/", 12))
				label += 12;
			ll += (size_t)snprintf(labels + ll, sizeof(labels) - ll, "%s%s", ll ? ", " : "", label);
			if (ll >= sizeof(labels))
				ll = sizeof(labels) - 1;
		}
		if (ctx->json) {
			printf("%s{\"commit\":\"%s\",\"time\":%lld,\"host\":", i ? "," : "", hex, (long long)c->time);
			cli_json_str(stdout, c->host);
			printf(",\"message\":");
			cli_json_str(stdout, c->message);
			printf(",\"state\":\"%s\",\"memory_bytes\":%llu,\"disk_bytes\":%llu,\"refs\":",
			       suspended ? "suspended" : "off", (unsigned long long)mem, (unsigned long long)disk);
			cli_json_str(stdout, labels);
			printf(",\"parents\":[");
			for (size_t p = 0; p < c->n_parents; p++) {
				char ph[STORE_HASH_HEX];
				store_hash_hex(&c->parents[p], ph);
				printf("%s\"%s\"", p ? "," : "", ph);
			}
			printf("]}");
		} else {
			printf("%.12s %s %-10s %s%s%s%s\n", hex, when, c->host ? c->host : "",
			       labels[0] ? "(" : "", labels, labels[0] ? ") " : "", c->message ? c->message : "");
			printf("             %s, memory %llu MiB, disks %llu MiB\n", suspended ? "suspended" : "off",
			       (unsigned long long)(mem >> 20), (unsigned long long)(disk >> 20));
		}
	}
	if (ctx->json)
		printf("]\n");
out:
	for (size_t i = 0; i < n; i++)
		store_commit_free(ents[i].c);
	free(ents);
	refs_free(&refs);
	store_free(s);
	return rc;
}

CLI_COMMAND(cmd_log) = {
	.name = "log", .summary = "show a VM's commits, checkpoints and rollbacks",
	.usage = "usage: roam log VM [--json]\n", .run = run_log,
};

static int status_one(struct cli_ctx *ctx, struct store *s, const char *name, int idx)
{
	char ref[300];
	struct store_hash h;
	struct store_commit *c;
	snprintf(ref, sizeof(ref), "vms/%s/head", name);
	if (store_ref_get(s, ref, &h) < 0 || store_commit_get(s, &h, &c) < 0)
		return cli_error("no VM named %s in this store", name);
	pid_t pid = 0;
	char host[256] = "";
	int running = ckpt_vm_running(s, name, &pid, host, sizeof(host));
	const char *state = running == 1 ? "running" : store_commit_root(c, "state") ? "suspended" : "off";
	struct ckpt_config cfg = { 0 };
	const struct store_commit_root *r = store_commit_root(c, "config");
	void *json;
	size_t len;
	char err[256];
	if (r && store_get(s, &r->hash, NULL, &json, &len) == 0) {
		ckpt_config_decode(json, len, &cfg, err, sizeof(err));
		free(json);
	}
	uint64_t disk = 0;
	for (size_t i = 0; i < c->n_roots; i++) {
		uint64_t sz;
		if (!strncmp(c->roots[i].name, "disk", 4) && store_logical_size(s, &c->roots[i].hash, &sz) == 0)
			disk += sz;
	}
	if (ctx->json) {
		printf("%s{\"name\":", idx ? "," : "");
		cli_json_str(stdout, name);
		printf(",\"state\":\"%s\",\"pid\":%d,\"host\":", state, running == 1 ? (int)pid : 0);
		cli_json_str(stdout, host);
		printf(",\"mem\":%llu,\"cpus\":%d,\"disks\":%d,\"disk_bytes\":%llu,\"time\":%lld}",
		       (unsigned long long)cfg.mem, cfg.cpus, cfg.disks, (unsigned long long)disk,
		       (long long)c->time);
	} else {
		char where[300] = "";
		if (running == 1)
			snprintf(where, sizeof(where), " (pid %d on %s)", (int)pid, host);
		printf("%-16s %-9s%s  %llu MiB, %d CPU, %d disk (%llu MiB)\n", name, state, where,
		       (unsigned long long)(cfg.mem >> 20), cfg.cpus, cfg.disks,
		       (unsigned long long)(disk >> 20));
	}
	store_commit_free(c);
	return 0;
}

struct names {
	char last[256];
	struct cli_ctx *ctx;
	struct store *s;
	int n, rc;
};

static int status_ref(void *arg, const char *name, const struct store_hash *h)
{
	struct names *nm = arg;
	const char *p = name + 4, *slash = strchr(p, '/');
	if (!slash || strcmp(slash, "/head"))
		return 0;
	snprintf(nm->last, sizeof(nm->last), "%.*s", (int)(slash - p), p);
	if (status_one(nm->ctx, nm->s, nm->last, nm->n++))
		nm->rc = 1;
	return 0;
}

static int run_status(struct cli_ctx *ctx, int argc, char **argv)
{
	struct store *s = cli_store(ctx, true);
	if (!s)
		return 1;
	int rc = 0;
	if (ctx->json)
		printf("[");
	if (argc >= 2) {
		for (int i = 1; i < argc; i++)
			rc |= status_one(ctx, s, argv[i], i - 1);
	} else {
		struct names nm = { "", ctx, s, 0, 0 };
		store_ref_list(s, "vms/", status_ref, &nm);
		rc = nm.rc;
		if (!nm.n && !ctx->json)
			printf("no VMs in this store ('roam create NAME' makes one)\n");
	}
	if (ctx->json)
		printf("]\n");
	store_free(s);
	return rc;
}

CLI_COMMAND(cmd_status) = {
	.name = "status", .summary = "show VMs: running (pid, host), suspended or off",
	.usage = "usage: roam status [VM...] [--json]\n", .run = run_status,
};
