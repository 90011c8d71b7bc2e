/* roam's entry point: global options, verb dispatch, --help. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/cli.h"

extern const struct cli_cmd __start_roam_cli_cmds[];
extern const struct cli_cmd __stop_roam_cli_cmds[];

int cli_error(const char *fmt, ...)
{
	va_list ap;
	fputs("roam: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int cli_usage(const struct cli_cmd *cmd)
{
	fprintf(stderr, "%s", cmd->usage);
	return 2;
}

bool cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return true;
	}
	return false;
}

int cli_parse_size(const char *s, unsigned long long *ret)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -EINVAL;
	unsigned shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (*end == 'i' && shift)
		end++;
	if ((*end == 'B' || *end == 'b') && end[1] == 0)
		end++;
	if (*end || (shift && v > (~0ULL >> shift)))
		return -EINVAL;
	*ret = v << shift;
	return 0;
}

static int cmd_cmp(const void *a, const void *b)
{
	return strcmp((*(const struct cli_cmd *const *)a)->name, (*(const struct cli_cmd *const *)b)->name);
}

static void print_help(void)
{
	size_t n = (size_t)(__stop_roam_cli_cmds - __start_roam_cli_cmds);
	const struct cli_cmd **sorted = malloc(n * sizeof(*sorted));
	printf("usage: roam [--store PATH] [--json] VERB [ARGS]\n\n"
	       "roam runs x86-64 virtual machines whose whole state lives in a\n"
	       "content-addressed store, so they can be suspended, checkpointed,\n"
	       "moved between hosts and browsed without booting.\n\nverbs:\n");
	for (size_t i = 0; sorted && i < n; i++)
		sorted[i] = &__start_roam_cli_cmds[i];
	if (sorted)
		qsort(sorted, n, sizeof(*sorted), cmd_cmp);
	for (size_t i = 0; sorted && i < n; i++)
		printf("  %-12s %s\n", sorted[i]->name, sorted[i]->summary);
	free(sorted);
	printf("\n'roam VERB --help' describes one verb.\n"
	       "The store is --store PATH, else $ROAM_STORE, else ~/.local/share/roam.\n");
}

static const char *default_store(void)
{
	const char *s = getenv("ROAM_STORE");
	if (s && *s)
		return s;
	static char path[4096];
	const char *home = getenv("HOME");
	snprintf(path, sizeof(path), "%s/.local/share/roam", home && *home ? home : ".");
	return path;
}

int main(int argc, char **argv)
{
	struct cli_ctx ctx = { .tty = isatty(2) };
	int n = 0;
	char **args = calloc((size_t)argc + 1, sizeof(*args));
	if (!args)
		return cli_error("out of memory");
	/* Global options may stand anywhere before a "--". */
	for (int i = 1, dashdash = 0; i < argc; i++) {
		if (dashdash) {
			args[n++] = argv[i];
		} else if (!strcmp(argv[i], "--")) {
			dashdash = 1;
			args[n++] = argv[i];
		} else if (!strcmp(argv[i], "--store")) {
			if (i + 1 >= argc) {
				free(args);
				return cli_error("--store needs a path");
			}
			ctx.store_path = argv[++i];
		} else if (!strncmp(argv[i], "--store=", 8)) {
			ctx.store_path = argv[i] + 8;
		} else if (!strcmp(argv[i], "--json")) {
			ctx.json = true;
		} else {
			args[n++] = argv[i];
		}
	}
	if (!ctx.store_path)
		ctx.store_path = default_store();
	if (n == 0 || !strcmp(args[0], "--help") || !strcmp(args[0], "-h") ||
	    !strcmp(args[0], "help")) {
		print_help();
		free(args);
		return n == 0 ? 2 : 0;
	}
	for (const struct cli_cmd *c = __start_roam_cli_cmds; c < __stop_roam_cli_cmds; c++) {
		if (strcmp(c->name, args[0]))
			continue;
		int rc;
		if (cli_wants_help(n, args)) {
			printf("%s", c->usage);
			rc = 0;
		} else {
			rc = c->run(&ctx, n, args);
		}
		free(args);
		return rc;
	}
	cli_error("unknown verb '%s'; 'roam --help' lists them", args[0]);
	free(args);
	return 2;
}
