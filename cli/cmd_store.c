/* Store verbs: roam init, ls, show, du, gc, verify. They print what the
 * image/ library reports; --json gives the same facts machine-readably. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli/browse.h"
#include "cli/cli.h"
#include "image/commit.h"
#include "image/store.h"

static void progress_fn(void *arg, uint64_t done, uint64_t total, uint64_t objects)
{
	(void)total;
	cli_progress_update(arg, done, objects);
}

/* ---- init ------------------------------------------------------------- */

static int run_init(struct cli_ctx *ctx, int argc, char **argv)
{
	struct store_init_opts o = { 0 };
	const char *path = ctx->store_path;
	static const struct option opts[] = {
		{ "chunk-size", required_argument, NULL, 'c' },
		{ "level", required_argument, NULL, 'l' },
		{ 0 }
	};
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		unsigned long long v;
		char *end;
		switch (c) {
		case 'c':
			if (cli_parse_size(optarg, &v) || v > UINT32_MAX)
				return cli_error("--chunk-size '%s' is not a size like 64K", optarg);
			o.chunk_size = (uint32_t)v;
			if (!o.chunk_size)
				return cli_error("--chunk-size must be 4K..1M, a power of two");
			break;
		case 'l':
			o.level = (int)strtol(optarg, &end, 10);
			if (*end || o.level < 1 || o.level > 19)
				return cli_error("--level '%s' must be a number from 1 to 19", optarg);
			break;
		default:
			return cli_error("unknown option '%s'; see 'roam init --help'",
					 argv[optind - 1]);
		}
	}
	if (optind < argc)
		path = argv[optind++];
	if (optind < argc)
		return cli_error("too many arguments; see 'roam init --help'");
	if (store_init(path, &o))
		return cli_error("%s", store_last_error());
	struct store *s;
	if (store_open(path, STORE_OPEN_RDONLY, &s))
		return cli_error("%s", store_last_error());
	char cs[32];
	cli_human_bytes(cs, sizeof(cs), store_chunk_size(s));
	if (ctx->json) {
		printf("{\"path\":");
		cli_json_str(stdout, path);
		printf(",\"chunk_size\":%u,\"level\":%d}\n", store_chunk_size(s), store_level(s));
	} else {
		printf("initialized roam store %s (chunk size %s, zstd level %d)\n", path, cs,
		       store_level(s));
	}
	store_free(s);
	return 0;
}

CLI_COMMAND(cmd_init) = {
	.name = "init",
	.summary = "create a store",
	.usage = "usage: roam init [PATH] [--chunk-size N] [--level N]\n\n"
		 "Creates a store at PATH (default: --store, $ROAM_STORE, or\n"
		 "~/.local/share/roam). --chunk-size: 4K..1M, a power of two (default 16K);\n"
		 "disks and memory are cut into chunks of this size, each stored once.\n"
		 "--level: zstd level 1..19 for new objects (default 1, the fastest; 3 saves\n"
		 "a few percent more for about 25% more CPU).\n",
	.run = run_init,
};

/* ---- ls --------------------------------------------------------------- */

struct ls_state {
	struct store *s;
	const struct cli_ctx *ctx;
	int n;
};

static int ls_one(void *arg, const char *name, const struct store_hash *h)
{
	struct ls_state *st = arg;
	struct store_obj_info info;
	uint64_t size = 0;
	char hex[STORE_HASH_HEX], sz[32];
	store_hash_hex(h, hex);
	int r = store_stat(st->s, h, &info);
	if (!r)
		r = store_logical_size(st->s, h, &size);
	const char *kind = r ? "missing" : store_kind_name(info.kind);
	if (st->ctx->json) {
		printf("%s{\"name\":", st->n ? "," : "");
		cli_json_str(stdout, name);
		printf(",\"kind\":\"%s\",\"hash\":\"%s\",\"size\":%" PRIu64 "}", kind, hex, size);
	} else {
		cli_human_bytes(sz, sizeof(sz), size);
		printf("%-40s %-7s %10s  %.12s\n", name, kind, r ? "?" : sz, hex);
	}
	st->n++;
	return 0;
}

static int run_ls(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc > 2)
		return cli_error("too many arguments; see 'roam ls --help'");
	if (argc == 2 && strchr(argv[1], ':'))
		return cli_browse_ls(ctx, argv[1]);
	struct store *s;
	if (cli_open_store(ctx, STORE_OPEN_RDONLY, &s))
		return 1;
	struct ls_state st = { s, ctx, 0 };
	if (ctx->json)
		printf("[");
	int r = store_ref_list(s, argc > 1 ? argv[1] : NULL, ls_one, &st);
	if (ctx->json)
		printf("]\n");
	else if (!r && !st.n)
		fprintf(stderr, "no refs%s%s; 'roam disk import NAME FILE' adds a disk\n",
			argc > 1 ? " under " : "", argc > 1 ? argv[1] : "");
	store_free(s);
	return r ? cli_error("%s", store_last_error()) : 0;
}

CLI_COMMAND(cmd_ls) = {
	.name = "ls",
	.summary = "list refs (disks, VMs) in the store",
	.usage = "usage: roam ls [PREFIX] [--json]\n"
		 "       roam ls VM[@TAG]:/path [--json]\n\n"
		 "Lists refs (e.g. disks/NAME) with the kind and size of what they name;\n"
		 "with VM:/path, a directory of the guest filesystem on the VM's first\n"
		 "disk (without booting it).\n",
	.run = run_ls,
};

/* ---- show ------------------------------------------------------------- */

static int resolve(struct store *s, const char *arg, struct store_hash *h, bool *is_ref)
{
	*is_ref = false;
	if (store_ref_valid(arg) && !store_ref_get(s, arg, h)) {
		*is_ref = true;
		return 0;
	}
	if (!store_hash_parse(arg, h)) {
		int r = store_has(s, h);
		if (r > 0)
			return 0;
		if (r == 0)
			return cli_error("no object or ref named '%s'; 'roam ls' lists refs", arg);
		return cli_error("%s", store_last_error());
	}
	size_t n = strlen(arg);
	if (n < 4 || strspn(arg, "0123456789abcdefABCDEF") != n)
		return cli_error("no object or ref named '%s'; 'roam ls' lists refs", arg);
	if (store_resolve_prefix(s, arg, h))
		return cli_error("%s", store_last_error());
	return 0;
}

static int show_tree(struct store *s, const struct store_hash *h, void *data, size_t len,
		     bool json)
{
	/* Tree header fields (encoding: image/store_int.h). */
	const uint8_t *p = data;
	if (len < 24)
		return cli_error("tree is malformed");
	unsigned level = p[5], fanout = p[6] | p[7] << 8;
	uint32_t chunk = (uint32_t)(p[8] | p[9] << 8 | p[10] << 16 | (uint32_t)p[11] << 24);
	uint32_t count = (uint32_t)(p[12] | p[13] << 8 | p[14] << 16 | (uint32_t)p[15] << 24);
	uint64_t size = 0;
	for (int i = 7; i >= 0; i--)
		size = size << 8 | p[16 + i];
	uint32_t zeros = 0;
	for (uint32_t i = 0; i < count && 24 + (size_t)(i + 1) * 32 <= len; i++) {
		static const uint8_t z[32];
		if (!memcmp(p + 24 + (size_t)i * 32, z, 32))
			zeros++;
	}
	(void)s;
	(void)h;
	if (json) {
		printf(",\"level\":%u,\"fanout\":%u,\"chunk_size\":%u,\"logical_size\":%" PRIu64
		       ",\"children\":%u,\"zero_children\":%u", level, fanout, chunk, size, count,
		       zeros);
	} else {
		char sz[32], cs[32];
		cli_human_bytes(sz, sizeof(sz), size);
		cli_human_bytes(cs, sizeof(cs), chunk);
		printf("logical size: %s (%" PRIu64 " bytes)\nlevel: %u (%s)\nchunk size: %s, "
		       "fanout %u\nchildren: %u (%u all zeros)\n", sz, size, level,
		       level ? "children are tree nodes" : "children are chunks", cs, fanout,
		       count, zeros);
	}
	return 0;
}

static int show_commit(void *data, size_t len, bool json)
{
	struct store_commit *c;
	if (store_commit_decode(data, len, &c))
		return cli_error("%s", store_last_error());
	char hex[STORE_HASH_HEX];
	if (json) {
		printf(",\"time\":%" PRId64 ",\"host\":", c->time);
		cli_json_str(stdout, c->host);
		printf(",\"message\":");
		cli_json_str(stdout, c->message);
		printf(",\"parents\":[");
		for (size_t i = 0; i < c->n_parents; i++) {
			store_hash_hex(&c->parents[i], hex);
			printf("%s\"%s\"", i ? "," : "", hex);
		}
		printf("],\"roots\":{");
		for (size_t i = 0; i < c->n_roots; i++) {
			store_hash_hex(&c->roots[i].hash, hex);
			printf("%s\"%s\":{\"kind\":\"%s\",\"hash\":\"%s\"}", i ? "," : "",
			       c->roots[i].name, store_kind_name(c->roots[i].kind), hex);
		}
		printf("}");
	} else {
		time_t t = (time_t)c->time;
		char when[64];
		struct tm tm;
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&t, &tm));
		printf("time: %s\nhost: %s\n", when, c->host);
		for (size_t i = 0; i < c->n_parents; i++) {
			store_hash_hex(&c->parents[i], hex);
			printf("parent: %s\n", hex);
		}
		for (size_t i = 0; i < c->n_roots; i++) {
			store_hash_hex(&c->roots[i].hash, hex);
			printf("root %s: %s %s\n", c->roots[i].name,
			       store_kind_name(c->roots[i].kind), hex);
		}
		printf("\n%s\n", c->message);
	}
	store_commit_free(c);
	return 0;
}

static int run_show(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc != 2)
		return cli_error("show needs one OBJECT or REF; see 'roam show --help'");
	struct store *s;
	if (cli_open_store(ctx, STORE_OPEN_RDONLY, &s))
		return 1;
	struct store_hash h;
	bool is_ref;
	int rc = resolve(s, argv[1], &h, &is_ref);
	struct store_obj_info info;
	void *data = NULL;
	size_t len;
	if (!rc && (store_stat(s, &h, &info) || store_get(s, &h, NULL, &data, &len)))
		rc = cli_error("%s", store_last_error());
	if (rc) {
		store_free(s);
		return rc;
	}
	char hex[STORE_HASH_HEX];
	store_hash_hex(&h, hex);
	if (ctx->json) {
		printf("{");
		if (is_ref) {
			printf("\"ref\":");
			cli_json_str(stdout, argv[1]);
			printf(",");
		}
		printf("\"hash\":\"%s\",\"kind\":\"%s\",\"size\":%" PRIu64 ",\"stored_size\":%"
		       PRIu64 ",\"codec\":\"%s\"", hex, store_kind_name(info.kind), info.size,
		       info.stored_size, store_codec_name(info.codec));
	} else {
		char a[32], b[32];
		cli_human_bytes(a, sizeof(a), info.size);
		cli_human_bytes(b, sizeof(b), info.stored_size);
		if (is_ref)
			printf("ref: %s\n", argv[1]);
		printf("%s %s\nsize: %s, stored %s (%s)\n", store_kind_name(info.kind), hex, a, b,
		       store_codec_name(info.codec));
	}
	if (info.kind == STORE_TREE)
		rc = show_tree(s, &h, data, len, ctx->json);
	else if (info.kind == STORE_COMMIT)
		rc = show_commit(data, len, ctx->json);
	if (ctx->json)
		printf("}\n");
	free(data);
	store_free(s);
	return rc;
}

CLI_COMMAND(cmd_show) = {
	.name = "show",
	.summary = "describe an object or ref",
	.usage = "usage: roam show OBJECT|REF [--json]\n\n"
		 "OBJECT is a hash or a unique prefix of at least 4 hex digits; REF a ref\n"
		 "name such as disks/root. Shows kind, sizes and, for trees and commits,\n"
		 "their contents. Reads re-hash the object: corruption is reported.\n",
	.run = run_show,
};

/* ---- du --------------------------------------------------------------- */

static double ratio(uint64_t a, uint64_t b)
{
	return b ? (double)a / (double)b : 0.0;
}

static int run_du(struct cli_ctx *ctx, int argc, char **argv)
{
	(void)argv;
	if (argc > 1)
		return cli_error("du takes no arguments; see 'roam du --help'");
	struct store *s;
	if (cli_open_store(ctx, STORE_OPEN_RDONLY, &s))
		return 1;
	struct store_usage u;
	int r = store_du(s, &u);
	store_free(s);
	if (r)
		return cli_error("%s", store_last_error());
	if (ctx->json) {
		printf("{\"refs\":%" PRIu64 ",\"objects\":%" PRIu64 ",\"blobs\":%" PRIu64
		       ",\"trees\":%" PRIu64 ",\"commits\":%" PRIu64 ",\"states\":%" PRIu64
		       ",\"delta_blobs\":%" PRIu64 ",\"logical_bytes\":%" PRIu64 ",\"referenced_bytes\":%" PRIu64
		       ",\"unique_bytes\":%" PRIu64 ",\"stored_bytes\":%" PRIu64
		       ",\"file_bytes\":%" PRIu64 ",\"dedup_ratio\":%.3f,\"compression_ratio\":%.3f"
		       ",\"total_ratio\":%.3f}\n", u.refs, u.objects, u.blobs, u.trees, u.commits,
		       u.states, u.deltas, u.logical, u.referenced, u.unique, u.stored, u.file_bytes,
		       ratio(u.referenced, u.unique), ratio(u.unique, u.stored),
		       ratio(u.logical, u.stored));
		return 0;
	}
	char l[32], rf[32], un[32], st[32], f[32];
	cli_human_bytes(l, sizeof(l), u.logical);
	cli_human_bytes(rf, sizeof(rf), u.referenced);
	cli_human_bytes(un, sizeof(un), u.unique);
	cli_human_bytes(st, sizeof(st), u.stored);
	cli_human_bytes(f, sizeof(f), u.file_bytes);
	printf("refs:        %" PRIu64 "\n"
	       "objects:     %" PRIu64 " (%" PRIu64 " blobs, %" PRIu64 " of them deltas, %" PRIu64
	       " trees, %" PRIu64 " commits, %" PRIu64 " states)\n"
	       "logical:     %s (what the refs name, zeros included)\n"
	       "referenced:  %s (non-zero data, duplicates counted)\n"
	       "unique:      %s (distinct objects, uncompressed)\n"
	       "stored:      %s (compressed objects)\n"
	       "file:        %s (store.db and its log on disk)\n"
	       "dedup:       %.2fx   compression: %.2fx   logical/stored: %.2fx\n",
	       u.refs, u.objects, u.blobs, u.deltas, u.trees, u.commits, u.states, l, rf, un, st, f,
	       ratio(u.referenced, u.unique), ratio(u.unique, u.stored),
	       ratio(u.logical, u.stored));
	return 0;
}

CLI_COMMAND(cmd_du) = {
	.name = "du",
	.summary = "show store usage: logical and stored bytes, dedup and compression",
	.usage = "usage: roam du [--json]\n\n"
		 "logical: sizes of everything refs name; referenced: their non-zero bytes;\n"
		 "unique: bytes of distinct objects; stored: bytes after compression.\n"
		 "dedup = referenced/unique, compression = unique/stored.\n",
	.run = run_du,
};

/* ---- gc --------------------------------------------------------------- */

static int run_gc(struct cli_ctx *ctx, int argc, char **argv)
{
	(void)argv;
	if (argc > 1)
		return cli_error("gc takes no arguments; see 'roam gc --help'");
	struct store *s;
	if (cli_open_store(ctx, 0, &s))
		return 1;
	struct cli_progress *p = cli_progress_start(ctx, "gc", 0);
	struct store_progress sp = { progress_fn, p };
	struct store_gc_stats st;
	int r = store_gc(s, &sp, &st);
	cli_progress_end(p);
	store_free(s);
	if (r)
		return cli_error("gc failed: %s", store_last_error());
	char b[32];
	cli_human_bytes(b, sizeof(b), st.freed_bytes);
	if (ctx->json)
		printf("{\"objects\":%" PRIu64 ",\"freed_objects\":%" PRIu64 ",\"freed_bytes\":%"
		       PRIu64 ",\"live_writers\":%" PRIu64 ",\"dead_writers\":%" PRIu64 "}\n",
		       st.objects, st.freed_objects, st.freed_bytes, st.pinned_sessions,
		       st.dead_sessions);
	else
		printf("freed %" PRIu64 " of %" PRIu64 " objects (%s)%s\n", st.freed_objects,
		       st.objects, b, st.pinned_sessions ? "; kept objects of running writers" : "");
	return 0;
}

CLI_COMMAND(cmd_gc) = {
	.name = "gc",
	.summary = "delete objects no ref reaches",
	.usage = "usage: roam gc [--json]\n\n"
		 "Deletes objects unreachable from refs. Objects that a running import or\n"
		 "VM has written but not yet named by a ref are kept.\n",
	.run = run_gc,
};

/* ---- verify ----------------------------------------------------------- */

static int run_verify(struct cli_ctx *ctx, int argc, char **argv)
{
	(void)argv;
	if (argc > 1)
		return cli_error("verify takes no arguments; see 'roam verify --help'");
	struct store *s;
	if (cli_open_store(ctx, STORE_OPEN_RDONLY, &s))
		return 1;
	struct cli_progress *p = cli_progress_start(ctx, "verify", 0);
	struct store_progress sp = { progress_fn, p };
	struct store_verify_report *rep;
	int r = store_verify(s, &sp, &rep);
	cli_progress_end(p);
	store_free(s);
	if (r < 0)
		return cli_error("verify failed: %s", store_last_error());
	char hex[STORE_HASH_HEX];
	if (ctx->json) {
		printf("{\"ok\":%s,\"objects\":%" PRIu64 ",\"stored_bytes\":%" PRIu64 ",\"bad\":[",
		       rep->n_bad ? "false" : "true", rep->objects, rep->stored_bytes);
		for (size_t i = 0; i < rep->n_bad; i++) {
			store_hash_hex(&rep->bad[i].hash, hex);
			printf("%s{\"hash\":\"%s\",\"reason\":", i ? "," : "", hex);
			cli_json_str(stdout, rep->bad[i].reason);
			printf(",\"refs\":[");
			for (size_t k = 0; k < rep->bad[i].n_refs; k++) {
				printf(k ? "," : "");
				cli_json_str(stdout, rep->bad[i].refs[k]);
			}
			printf("]}");
		}
		printf("],\"bad_refs\":[");
		for (size_t i = 0; i < rep->n_bad_refs; i++) {
			printf(i ? "," : "");
			cli_json_str(stdout, rep->bad_refs[i]);
		}
		printf("]}\n");
	} else {
		for (size_t i = 0; i < rep->n_bad; i++) {
			store_hash_hex(&rep->bad[i].hash, hex);
			printf("bad object %s: %s\n", hex, rep->bad[i].reason);
			for (size_t k = 0; k < rep->bad[i].n_refs; k++)
				printf("  reached from ref %s\n", rep->bad[i].refs[k]);
		}
		for (size_t i = 0; i < rep->n_bad_refs; i++)
			printf("damaged ref: %s\n", rep->bad_refs[i]);
		char b[32];
		cli_human_bytes(b, sizeof(b), rep->stored_bytes);
		if (rep->n_bad)
			fprintf(stderr, "roam: verify found %zu bad object(s) among %" PRIu64 "; "
				"damaged refs are listed above (restore them from another copy, or "
				"delete them and run 'roam gc')\n", rep->n_bad, rep->objects);
		else
			printf("ok: %" PRIu64 " objects (%s stored) verified\n", rep->objects, b);
	}
	int bad = rep->n_bad != 0;
	store_verify_report_free(rep);
	return bad;
}

CLI_COMMAND(cmd_verify) = {
	.name = "verify",
	.summary = "re-hash every object and check every reference",
	.usage = "usage: roam verify [--json]\n\n"
		 "Reads every object, re-hashes it and checks that everything it references\n"
		 "exists and fits. Names each bad object and every ref that reaches it.\n"
		 "Exit status 1 when anything is bad.\n",
	.run = run_verify,
};
