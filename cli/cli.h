/* The roam command: each command group lives in its own cli/cmd_*.c file and
 * registers its verbs with CLI_COMMAND, so adding a verb touches no shared
 * file. main.c handles the global options (--store, --json, --help) and
 * dispatch. Only code under cli/ prints to the user or exits. */
#ifndef ROAM_CLI_H
#define ROAM_CLI_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct store;

struct cli_ctx {
	const char *store_path;   /* --store, else $ROAM_STORE, else ~/.local/share/roam */
	bool json;                /* --json */
	bool tty;                 /* stderr is a terminal: progress bars allowed */
};

struct cli_cmd {
	const char *name;         /* "init", "disk", "boot" */
	const char *summary;      /* one line for `roam --help` */
	const char *usage;        /* full text for `roam VERB --help` */
	/* argv[0] is the verb; global options are already removed. Returns the
	 * process exit status. */
	int (*run)(struct cli_ctx *ctx, int argc, char **argv);
};

#define CLI_COMMAND(var) \
	static const struct cli_cmd var \
	__attribute__((used, section("roam_cli_cmds"), aligned(sizeof(void *))))

/* Prints "roam: <message>" to stderr and returns 1 (exit status). */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints the usage of cmd to stderr and returns 2. */
int cli_usage(const struct cli_cmd *cmd);
/* True when argv has -h or --help. */
bool cli_wants_help(int argc, char **argv);
/* Parses sizes like 512M, 1G, 4096, 64k. Returns 0 or -EINVAL. */
int cli_parse_size(const char *s, unsigned long long *ret);

/* Opens the store ctx names (flags as store_open), applying
 * $ROAM_LOCK_TIMEOUT (seconds). Returns 0, or 1 after printing the error. */
int cli_open_store(const struct cli_ctx *ctx, unsigned flags, struct store **ret);
/* The same as a pointer: NULL after printing the error. */
struct store *cli_store(const struct cli_ctx *ctx, bool rdonly);
/* "1.5 GiB", "512 B". */
void cli_human_bytes(char *buf, size_t n, uint64_t v);
/* Writes s (NULL: "") as a JSON string literal. */
void cli_json_str(FILE *f, const char *s);

/* Progress bar on stderr when ctx->tty, shown only for work over a second. */
struct cli_progress;
struct cli_progress *cli_progress_start(const struct cli_ctx *ctx, const char *what,
					unsigned long long total_bytes);
void cli_progress_update(struct cli_progress *p, unsigned long long done_bytes,
			 unsigned long long objects);
void cli_progress_end(struct cli_progress *p);   /* NULL-safe */
#endif
