/* Small helpers every command file uses: opening the store with the CLI's
 * lock-timeout setting, sizes for humans, JSON strings. */
#include <stdio.h>
#include <stdlib.h>
#include "cli/cli.h"
#include "image/store.h"

int cli_open_store(const struct cli_ctx *ctx, unsigned flags, struct store **ret)
{
	if (store_open(ctx->store_path, flags, ret) < 0)
		return cli_error("%s", store_last_error());
	const char *t = getenv("ROAM_LOCK_TIMEOUT");
	if (t && *t)
		store_set_lock_timeout(*ret, (int)(strtod(t, NULL) * 1000));
	return 0;
}

struct store *cli_store(const struct cli_ctx *ctx, bool rdonly)
{
	struct store *s;
	return cli_open_store(ctx, rdonly ? STORE_OPEN_RDONLY : 0, &s) ? NULL : s;
}

void cli_human_bytes(char *buf, size_t n, uint64_t v)
{
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double d = (double)v;
	int i = 0;
	while (d >= 1024 && i < 4) {
		d /= 1024;
		i++;
	}
	snprintf(buf, n, i ? "%.1f %s" : "%.0f %s", d, u[i]);
}

void cli_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}
