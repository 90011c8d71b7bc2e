/* roam disk: raw disk images <-> trees under refs disks/NAME (import,
 * export, rm). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli/cli.h"
#include "image/store.h"

static void progress_fn(void *arg, uint64_t done, uint64_t total, uint64_t objects)
{
	(void)total;
	cli_progress_update(arg, done, objects);
}

static int ref_name(const char *name, char *buf, size_t n)
{
	snprintf(buf, n, "disks/%s", name);
	if (strchr(name, '/') || !store_ref_valid(buf))
		return cli_error("'%s' is not a valid disk name (letters, digits, '.', '_', "
				 "'-'; not starting with '.')", name);
	return 0;
}

static int disk_import(const struct cli_ctx *ctx, int argc, char **argv)
{
	bool force = false;
	const char *pos[2];
	int np = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--force") || !strcmp(argv[i], "-f"))
			force = true;
		else if (np < 2)
			pos[np++] = argv[i];
		else
			return cli_error("too many arguments; see 'roam disk --help'");
	}
	if (np != 2)
		return cli_error("usage: roam disk import NAME FILE");
	char ref[300];
	if (ref_name(pos[0], ref, sizeof(ref)))
		return 1;
	int fd = open(pos[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cli_error("cannot open %s: %s", pos[1], strerror(errno));
	struct store *s;
	if (cli_open_store(ctx, 0, &s)) {
		close(fd);
		return 1;
	}
	struct store_hash old, root;
	bool exists = !store_ref_get(s, ref, &old);
	if (exists && !force) {
		close(fd);
		store_free(s);
		return cli_error("disk '%s' already exists; use --force to replace it", pos[0]);
	}
	struct stat sb;
	uint64_t total = !fstat(fd, &sb) ? (uint64_t)sb.st_size : 0;
	struct cli_progress *p = cli_progress_start(ctx, "import", total);
	struct store_progress sp = { progress_fn, p };
	struct store_import_stats st;
	int r = store_import_fd(s, fd, &sp, &root, &st);
	cli_progress_end(p);
	close(fd);
	if (r) {
		store_free(s);
		return cli_error("import of %s failed: %s", pos[1], store_last_error());
	}
	if (store_ref_cas(s, ref, exists ? &old : NULL, &root)) {
		store_free(s);
		return cli_error("%s", store_last_error());
	}
	store_free(s);
	char hex[STORE_HASH_HEX], a[32], b[32];
	store_hash_hex(&root, hex);
	cli_human_bytes(a, sizeof(a), st.size);
	cli_human_bytes(b, sizeof(b), st.new_stored);
	if (ctx->json)
		printf("{\"ref\":\"%s\",\"tree\":\"%s\",\"size\":%" PRIu64 ",\"zero_bytes\":%" PRIu64
		       ",\"chunks\":%" PRIu64 ",\"new_chunks\":%" PRIu64 ",\"new_stored_bytes\":%"
		       PRIu64 "}\n", ref, hex, st.size, st.zero_bytes, st.chunks, st.new_chunks,
		       st.new_stored);
	else
		printf("imported %s: %s, %" PRIu64 " data chunks (%" PRIu64 " new, %s stored), "
		       "tree %.12s\n", ref, a, st.chunks, st.new_chunks, b, hex);
	return 0;
}

static int disk_export(const struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc != 3)
		return cli_error("usage: roam disk export NAME FILE");
	char ref[300];
	if (ref_name(argv[1], ref, sizeof(ref)))
		return 1;
	struct store *s;
	if (cli_open_store(ctx, STORE_OPEN_RDONLY, &s))
		return 1;
	struct store_hash root;
	if (store_ref_get(s, ref, &root)) {
		store_free(s);
		return cli_error("no disk '%s' in %s; 'roam ls disks/' lists disks", argv[1],
				 ctx->store_path);
	}
	struct stat sb;
	int flags = O_WRONLY | O_CREAT | O_CLOEXEC;
	if (stat(argv[2], &sb) || S_ISREG(sb.st_mode))
		flags |= O_TRUNC;
	int fd = open(argv[2], flags, 0644);
	if (fd < 0) {
		store_free(s);
		return cli_error("cannot create %s: %s", argv[2], strerror(errno));
	}
	uint64_t size = 0;
	store_logical_size(s, &root, &size);
	struct cli_progress *p = cli_progress_start(ctx, "export", size);
	struct store_progress sp = { progress_fn, p };
	int r = store_export_fd(s, &root, fd, &sp);
	cli_progress_end(p);
	store_free(s);
	if (close(fd) && !r)
		return cli_error("cannot write %s: %s", argv[2], strerror(errno));
	if (r)
		return cli_error("export to %s failed: %s", argv[2], store_last_error());
	return 0;
}

static int disk_rm(const struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc != 2)
		return cli_error("usage: roam disk rm NAME");
	char ref[300];
	if (ref_name(argv[1], ref, sizeof(ref)))
		return 1;
	struct store *s;
	if (cli_open_store(ctx, 0, &s))
		return 1;
	struct store_hash old;
	int r = store_ref_get(s, ref, &old);
	if (r == -ENOENT) {
		store_free(s);
		return cli_error("no disk '%s'; 'roam ls disks/' lists disks", argv[1]);
	}
	if (!r)
		r = store_ref_cas(s, ref, &old, NULL);
	store_free(s);
	if (r)
		return cli_error("%s", store_last_error());
	return 0;
}

static int run_disk(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc < 2)
		return cli_error("disk needs a subcommand: import, export or rm; see "
				 "'roam disk --help'");
	if (!strcmp(argv[1], "import"))
		return disk_import(ctx, argc - 1, argv + 1);
	if (!strcmp(argv[1], "export"))
		return disk_export(ctx, argc - 1, argv + 1);
	if (!strcmp(argv[1], "rm"))
		return disk_rm(ctx, argc - 1, argv + 1);
	return cli_error("unknown disk subcommand '%s'; use import, export or rm", argv[1]);
}

CLI_COMMAND(cmd_disk) = {
	.name = "disk",
	.summary = "import, export or remove raw disk images",
	.usage = "usage: roam disk import NAME FILE [--force]\n"
		 "       roam disk export NAME FILE\n"
		 "       roam disk rm NAME\n\n"
		 "import stores a raw disk image (file or block device) as ref disks/NAME:\n"
		 "cut into chunks, each stored once, compressed; holes and zeros cost\n"
		 "nothing. --force replaces an existing disk. export writes it back\n"
		 "byte for byte (sparse). rm deletes the ref; 'roam gc' frees the space.\n",
	.run = run_disk,
};
