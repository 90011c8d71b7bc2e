/* Mobility verbs: roam remote (add, ls, rm), push, pull, clone, serve,
 * bundle (create, import) and lease. The work is in sync/ and
 * checkpoint/lease.c; this file parses arguments and prints. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "checkpoint/lease.h"
#include "cli/cli.h"
#include "sync/sync.h"

struct prog { const struct cli_ctx *ctx; const char *what; struct cli_progress *p; };

static void prog_fn(void *arg, uint64_t done, uint64_t total, uint64_t objects)
{
	struct prog *pg = arg;
	if (!pg->p)
		pg->p = cli_progress_start(pg->ctx, pg->what, total);
	cli_progress_update(pg->p, done, objects);
}

static void print_stats(const struct cli_ctx *ctx, const char *verb, const char *vm,
			const char *where, const struct sync_stats *st)
{
	if (ctx->json) {
		printf("{\"verb\":\"%s\",\"vm\":\"%s\",\"objects\":%llu,\"object_bytes\":%llu,"
		       "\"hashes_compared\":%llu,\"bytes_sent\":%llu,\"bytes_received\":%llu,"
		       "\"refs_updated\":%llu,\"protocol\":%d,\"wire_level\":%d,\"raw_bytes\":%llu,"
		       "\"deltas\":%llu}\n", verb, vm, (unsigned long long)st->objects,
		       (unsigned long long)st->object_bytes, (unsigned long long)st->have_queries,
		       (unsigned long long)st->bytes_sent, (unsigned long long)st->bytes_received,
		       (unsigned long long)st->refs_updated, st->version, st->wire_level,
		       (unsigned long long)st->raw_bytes, (unsigned long long)st->deltas);
		return;
	}
	fprintf(stderr, "roam: %s %s %s: %llu objects (%llu bytes), %llu bytes sent, %llu received, "
		"%llu hashes compared, %llu refs updated", verb, vm, where,
		(unsigned long long)st->objects, (unsigned long long)st->object_bytes,
		(unsigned long long)st->bytes_sent, (unsigned long long)st->bytes_received,
		(unsigned long long)st->have_queries, (unsigned long long)st->refs_updated);
	if (st->deltas)
		fprintf(stderr, ", %llu as deltas", (unsigned long long)st->deltas);
	fputc('\n', stderr);
}

/* ---- roam remote -------------------------------------------------------- */

static const char remote_usage[] =
	"usage: roam remote add NAME ssh://[user@]host[:port]/path [--remote-roam PATH]\n"
	"       roam remote ls [--json]\n"
	"       roam remote rm NAME\n"
	"Remotes are other stores, usually on other machines, reached over SSH.\n"
	"--remote-roam names the roam binary there when it is not on the PATH.\n";

static int run_remote(struct cli_ctx *ctx, int argc, char **argv);

CLI_COMMAND(cmd_remote) = {
	.name = "remote",
	.summary = "add, list and remove remote stores",
	.usage = remote_usage,
	.run = run_remote,
};

static int run_remote(struct cli_ctx *ctx, int argc, char **argv)
{
	char err[512];
	if (argc < 2)
		return cli_usage(&cmd_remote);
	const char *sub = argv[1];
	if (!strcmp(sub, "add")) {
		struct sync_remote r = { 0 };
		const char *pos[2];
		int np = 0;
		for (int i = 2; i < argc; i++) {
			if (!strcmp(argv[i], "--remote-roam") && i + 1 < argc)
				snprintf(r.remote_roam, sizeof(r.remote_roam), "%s", argv[++i]);
			else if (!strncmp(argv[i], "--remote-roam=", 14))
				snprintf(r.remote_roam, sizeof(r.remote_roam), "%s", argv[i] + 14);
			else if (argv[i][0] == '-' || np == 2)
				return cli_usage(&cmd_remote);
			else
				pos[np++] = argv[i];
		}
		if (np != 2)
			return cli_usage(&cmd_remote);
		if (strlen(pos[0]) > SYNC_REMOTE_NAME_MAX || strlen(pos[1]) >= sizeof(r.url))
			return cli_error("remote name or URL too long");
		snprintf(r.name, sizeof(r.name), "%s", pos[0]);
		snprintf(r.url, sizeof(r.url), "%s", pos[1]);
		struct store *s = cli_store(ctx, false);
		if (!s)
			return 1;
		int rc = sync_remote_add(s, &r, err, sizeof(err));
		store_free(s);
		return rc < 0 ? cli_error("%s", err) : 0;
	}
	if (!strcmp(sub, "rm") && argc == 3) {
		struct store *s = cli_store(ctx, false);
		if (!s)
			return 1;
		int rc = sync_remote_rm(s, argv[2], err, sizeof(err));
		store_free(s);
		return rc < 0 ? cli_error("%s", err) : 0;
	}
	if ((!strcmp(sub, "ls") || !strcmp(sub, "list")) && argc == 2) {
		struct store *s = cli_store(ctx, true);
		if (!s)
			return 1;
		struct sync_remote *v;
		size_t n;
		int rc = sync_remotes_load(s, &v, &n, err, sizeof(err));
		store_free(s);
		if (rc < 0)
			return cli_error("%s", err);
		if (ctx->json)
			printf("[");
		for (size_t i = 0; i < n; i++) {
			if (ctx->json) {
				printf("%s{\"name\":\"%s\",\"url\":\"", i ? "," : "", v[i].name);
				for (const char *p = v[i].url; *p; p++)
					printf(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
				printf("\",\"remote_roam\":\"");
				for (const char *p = v[i].remote_roam; *p; p++)
					printf(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
				printf("\"}");
			} else {
				printf("%s\t%s%s%s\n", v[i].name, v[i].url,
				       v[i].remote_roam[0] ? "\t--remote-roam " : "", v[i].remote_roam);
			}
		}
		if (ctx->json)
			printf("]\n");
		free(v);
		return 0;
	}
	return cli_usage(&cmd_remote);
}

/* ---- push / pull / clone ----------------------------------------------------- */

static const struct option xfer_opts[] = {
	{ "force", no_argument, NULL, 'f' },
	{ "identity", required_argument, NULL, 'i' },
	{ "accept-new-host-key", no_argument, NULL, 'A' },
	{ "remote-roam", required_argument, NULL, 'R' },
	{ "wire-level", required_argument, NULL, 'W' },
	{ 0 },
};

#define XFER_OPTS_HELP \
	"  -i, --identity FILE       SSH private key (else ssh-agent, ~/.ssh/id_*)\n" \
	"  --accept-new-host-key     accept and record an unknown host key\n" \
	"  --remote-roam PATH        the roam binary on the far side\n" \
	"  --wire-level N|stored     zstd level 1..19 of the wire stream (default: by\n" \
	"                            transfer size), or objects exactly as stored\n" \
	"  --force                   move a diverged head\n"

struct xfer_args { const char *identity, *remote_roam; bool force, accept; int wire_level; };

static int parse_xfer(const struct cli_cmd *cmd, int argc, char **argv, struct xfer_args *x)
{
	int c;
	optind = 1;
	opterr = 1;
	while ((c = getopt_long(argc, argv, "fi:", xfer_opts, NULL)) != -1) {
		switch (c) {
		case 'f': x->force = true; break;
		case 'i': x->identity = optarg; break;
		case 'A': x->accept = true; break;
		case 'R': x->remote_roam = optarg; break;
		case 'W': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (!strcmp(optarg, "stored"))
				x->wire_level = SYNC_WIRE_STORED;
			else if (*optarg && !*end && v >= 1 && v <= 19)
				x->wire_level = (int)v;
			else {
				cli_error("--wire-level '%s': a level 1..19 or 'stored'", optarg);
				return -1;
			}
			break;
		}
		default: return -1;
		}
	}
	(void)cmd;
	return optind;
}

/* REMOTE is a configured name or a URL. */
static int resolve_remote(struct store *s, const char *arg, struct sync_remote *r)
{
	char err[512];
	memset(r, 0, sizeof(*r));
	if (strstr(arg, "://") || arg[0] == '/') {
		if (strlen(arg) >= sizeof(r->url))
			return cli_error("URL too long");
		snprintf(r->url, sizeof(r->url), "%s", arg);
		snprintf(r->name, sizeof(r->name), "url");
		return 0;
	}
	if (sync_remote_find(s, arg, r, err, sizeof(err)) < 0)
		return cli_error("%s", err);
	return 0;
}

/* Runs one push or pull (what: "push", "pull" or "clone") over url and
 * reports it as verb; frees s. */
static int transfer(struct cli_ctx *ctx, struct store *s, const char *url, const char *remote_roam,
		    const struct xfer_args *x, const char *vm, bool push, const char *what,
		    const char *verb, const char *where)
{
	struct prog pg = { ctx, what, NULL };
	struct sync_opts o = {
		.conn = { .url = url, .remote_roam = remote_roam, .identity = x->identity,
			  .accept_new_host_key = x->accept },
		.force = x->force, .wire_level = x->wire_level, .progress = { prog_fn, &pg },
	};
	struct sync_stats st;
	char err[1024];
	int rc = push ? sync_push(s, vm, &o, &st, err, sizeof(err))
		      : sync_pull(s, vm, &o, &st, err, sizeof(err));
	cli_progress_end(pg.p);
	store_free(s);
	if (rc < 0)
		return cli_error("%s %s: %s", what, vm, err);
	print_stats(ctx, verb, vm, where, &st);
	return 0;
}

static int xfer(struct cli_ctx *ctx, const struct cli_cmd *cmd, int argc, char **argv, bool push)
{
	struct xfer_args x = { 0 };
	int i = parse_xfer(cmd, argc, argv, &x);
	if (i < 0 || argc - i != 2)
		return cli_usage(cmd);
	struct store *s = cli_store(ctx, false);
	if (!s)
		return 1;
	struct sync_remote r;
	if (resolve_remote(s, argv[i], &r)) {
		store_free(s);
		return 1;
	}
	char where[1100];
	snprintf(where, sizeof(where), "%s %s", push ? "to" : "from", argv[i]);
	return transfer(ctx, s, r.url, x.remote_roam ? x.remote_roam : r.remote_roam, &x,
			argv[i + 1], push, push ? "push" : "pull", push ? "pushed" : "pulled", where);
}

static const char push_usage[] =
	"usage: roam push REMOTE VM [options]\n"
	"Sends VM (its head, checkpoints and replaced heads, and every object they\n"
	"reach that the far side lacks) to REMOTE (a name from 'roam remote ls' or\n"
	"an ssh:// URL). The VM must not be running; its lease is handed off.\n\n"
	XFER_OPTS_HELP;
static int run_push(struct cli_ctx *ctx, int argc, char **argv);
CLI_COMMAND(cmd_push) = { .name = "push", .summary = "send a VM to a remote store",
			  .usage = push_usage, .run = run_push };
static int run_push(struct cli_ctx *ctx, int argc, char **argv)
{
	return xfer(ctx, &cmd_push, argc, argv, true);
}

static const char pull_usage[] =
	"usage: roam pull REMOTE VM [options]\n"
	"Fetches VM from REMOTE into this store. The far side's lease comes along:\n"
	"a VM leased to (running on) another host is refused by 'roam run' here\n"
	"unless --steal.\n\n" XFER_OPTS_HELP;
static int run_pull(struct cli_ctx *ctx, int argc, char **argv);
CLI_COMMAND(cmd_pull) = { .name = "pull", .summary = "fetch a VM from a remote store",
			  .usage = pull_usage, .run = run_pull };
static int run_pull(struct cli_ctx *ctx, int argc, char **argv)
{
	return xfer(ctx, &cmd_pull, argc, argv, false);
}

static const char clone_usage[] =
	"usage: roam clone ssh://[user@]host[:port]/path VM [options]\n"
	"Pulls VM from the store at the URL into this store (made if missing) and\n"
	"records the URL as remote 'origin' when there is none.\n\n" XFER_OPTS_HELP;
static int run_clone(struct cli_ctx *ctx, int argc, char **argv);
CLI_COMMAND(cmd_clone) = { .name = "clone", .summary = "copy a VM from a store at a URL",
			   .usage = clone_usage, .run = run_clone };
static int run_clone(struct cli_ctx *ctx, int argc, char **argv)
{
	struct xfer_args x = { 0 };
	int i = parse_xfer(&cmd_clone, argc, argv, &x);
	if (i < 0 || argc - i != 2)
		return cli_usage(&cmd_clone);
	char err[1024];
	struct sync_url u;
	if (sync_url_parse(argv[i], &u, err, sizeof(err)) < 0)
		return cli_error("%s", err);
	int rc = store_init(ctx->store_path, NULL);
	if (rc < 0 && rc != -EEXIST)
		return cli_error("%s", store_last_error());
	struct store *s = cli_store(ctx, false);
	if (!s)
		return 1;
	struct sync_remote r = { 0 };
	if (sync_remote_find(s, "origin", &r, err, sizeof(err)) == -ENOENT) {
		snprintf(r.name, sizeof(r.name), "origin");
		snprintf(r.url, sizeof(r.url), "%s", argv[i]);
		snprintf(r.remote_roam, sizeof(r.remote_roam), "%s", x.remote_roam ? x.remote_roam : "");
		if (sync_remote_add(s, &r, err, sizeof(err)) < 0)
			fprintf(stderr, "roam: note: %s\n", err);
	}
	return transfer(ctx, s, argv[i], x.remote_roam, &x, argv[i + 1], false, "clone", "cloned",
			"from the URL");
}

/* ---- serve -------------------------------------------------------------- */

static const char serve_usage[] =
	"usage: roam serve --stdio [--create] STORE\n"
	"The far side of push, pull and clone: speaks roam's sync protocol on\n"
	"stdin/stdout (run over SSH by the client). --create makes STORE if\n"
	"missing.\n";
static int run_serve(struct cli_ctx *ctx, int argc, char **argv);
CLI_COMMAND(cmd_serve) = { .name = "serve", .summary = "serve a store to push/pull over stdio",
			   .usage = serve_usage, .run = run_serve };
static int run_serve(struct cli_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	bool stdio = false, create = false;
	const char *path = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--stdio"))
			stdio = true;
		else if (!strcmp(argv[i], "--create"))
			create = true;
		else if (argv[i][0] != '-' && !path)
			path = argv[i];
		else
			return cli_usage(&cmd_serve);
	}
	if (!stdio || !path)
		return cli_usage(&cmd_serve);
	return sync_serve(path, create, 0, 1);
}

/* ---- bundle ------------------------------------------------------------- */

static const char bundle_usage[] =
	"usage: roam bundle create VM[@TAG] -o FILE [--since TAG]\n"
	"       roam bundle import FILE [--force]\n"
	"A bundle is one file holding a VM (or the objects since checkpoint TAG):\n"
	"push and pull without a network. import verifies the whole file before\n"
	"anything changes.\n";
static int run_bundle(struct cli_ctx *ctx, int argc, char **argv);
CLI_COMMAND(cmd_bundle) = { .name = "bundle", .summary = "write or import a VM as one file",
			    .usage = bundle_usage, .run = run_bundle };
static int run_bundle(struct cli_ctx *ctx, int argc, char **argv)
{
	char err[1024];
	struct sync_stats st;
	if (argc >= 2 && !strcmp(argv[1], "create")) {
		const char *spec = NULL, *out = NULL, *since = NULL;
		for (int i = 2; i < argc; i++) {
			if (!strcmp(argv[i], "-o") && i + 1 < argc)
				out = argv[++i];
			else if (!strcmp(argv[i], "--since") && i + 1 < argc)
				since = argv[++i];
			else if (argv[i][0] != '-' && !spec)
				spec = argv[i];
			else
				return cli_usage(&cmd_bundle);
		}
		if (!spec || !out)
			return cli_usage(&cmd_bundle);
		char vm[128];
		snprintf(vm, sizeof(vm), "%s", spec);
		char *at = strchr(vm, '@');
		if (at)
			*at++ = 0;
		struct store *s = cli_store(ctx, true);
		if (!s)
			return 1;
		struct prog pg = { ctx, "bundle", NULL };
		struct sync_bundle_opts o = { .vm = vm, .tag = at, .since = since,
					      .progress = { prog_fn, &pg } };
		int rc = sync_bundle_create(s, &o, out, &st, err, sizeof(err));
		cli_progress_end(pg.p);
		store_free(s);
		if (rc < 0)
			return cli_error("bundle create: %s", err);
		print_stats(ctx, "bundled", vm, "into a file", &st);
		return 0;
	}
	if (argc >= 3 && !strcmp(argv[1], "import")) {
		bool force = false;
		const char *file = NULL;
		for (int i = 2; i < argc; i++) {
			if (!strcmp(argv[i], "--force"))
				force = true;
			else if (!file)
				file = argv[i];
			else
				return cli_usage(&cmd_bundle);
		}
		if (!file)
			return cli_usage(&cmd_bundle);
		int rc = store_init(ctx->store_path, NULL);
		if (rc < 0 && rc != -EEXIST)
			return cli_error("%s", store_last_error());
		struct store *s = cli_store(ctx, false);
		if (!s)
			return 1;
		struct prog pg = { ctx, "import", NULL };
		struct sync_progress p = { prog_fn, &pg };
		char vm[128] = "";
		rc = sync_bundle_import(s, file, force, &p, vm, sizeof(vm), &st, err, sizeof(err));
		cli_progress_end(pg.p);
		store_free(s);
		if (rc < 0)
			return cli_error("bundle import: %s", err);
		print_stats(ctx, "imported", vm, "from a bundle", &st);
		return 0;
	}
	return cli_usage(&cmd_bundle);
}

/* ---- lease -------------------------------------------------------------- */

static const char lease_usage[] =
	"usage: roam lease VM [--json]           who holds VM's lease\n"
	"       roam lease VM --take [--steal] [--host NAME]\n"
	"                                        take it for this host (or NAME)\n"
	"       roam lease VM --release          drop it\n"
	"A VM that runs on a host holds a lease naming it, so that the same VM is\n"
	"not run on two hosts by accident; --steal takes it over explicitly.\n";
static int run_lease(struct cli_ctx *ctx, int argc, char **argv);
CLI_COMMAND(cmd_lease) = { .name = "lease", .summary = "show, take or release a VM's lease",
			   .usage = lease_usage, .run = run_lease };
static int run_lease(struct cli_ctx *ctx, int argc, char **argv)
{
	const char *vm = NULL, *as = NULL;
	bool take = false, steal = false, release = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--host") && i + 1 < argc)
			as = argv[++i];
		else if (!strcmp(argv[i], "--take"))
			take = true;
		else if (!strcmp(argv[i], "--steal"))
			steal = take = true;
		else if (!strcmp(argv[i], "--release"))
			release = true;
		else if (argv[i][0] != '-' && !vm)
			vm = argv[i];
		else
			return cli_usage(&cmd_lease);
	}
	if (!vm || (take && release))
		return cli_usage(&cmd_lease);
	struct store *s = cli_store(ctx, !(take || release));
	if (!s)
		return 1;
	char err[512], host[CKPT_LEASE_HOST_MAX + 1];
	int rc = 0;
	if (take) {
		if (as)
			snprintf(host, sizeof(host), "%s", as);
		else
			ckpt_lease_hostname(host, sizeof(host));
		rc = ckpt_lease_take(s, vm, host, steal, err, sizeof(err));
		store_free(s);
		return rc < 0 ? cli_error("%s", err) : 0;
	}
	if (release) {
		rc = ckpt_lease_release(s, vm);
		store_free(s);
		return rc < 0 ? cli_error("cannot release the lease of %s: %s", vm, strerror(-rc)) : 0;
	}
	int64_t since = 0;
	rc = ckpt_lease_get(s, vm, host, sizeof(host), &since);
	store_free(s);
	if (rc == -ENOENT) {
		if (ctx->json)
			printf("{\"vm\":\"%s\",\"host\":null}\n", vm);
		else
			printf("%s: no lease\n", vm);
		return 0;
	}
	if (rc < 0)
		return cli_error("cannot read the lease of %s: %s", vm, strerror(-rc));
	if (ctx->json) {
		printf("{\"vm\":\"%s\",\"host\":\"%s\",\"since\":%lld}\n", vm, host, (long long)since);
	} else {
		char when[64] = "?";
		time_t t = (time_t)since;
		struct tm tm;
		if (gmtime_r(&t, &tm))
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
		printf("%s: leased by %s since %s\n", vm, host, when);
	}
	return 0;
}
