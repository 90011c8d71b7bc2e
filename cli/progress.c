/* Progress bar on stderr for long work: drawn only on a TTY, only once the
 * work has taken more than a second, at most ten times a second, and erased
 * at the end so the command's own output stays clean. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "cli/cli.h"

struct cli_progress {
	char what[48];
	unsigned long long total;
	double start, last;
	bool drawn;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct cli_progress *cli_progress_start(const struct cli_ctx *ctx, const char *what,
					unsigned long long total_bytes)
{
	if (!ctx->tty || ctx->json)
		return NULL;
	struct cli_progress *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	snprintf(p->what, sizeof(p->what), "%s", what);
	p->total = total_bytes;
	p->start = now_s();
	return p;
}

static void human(char *buf, size_t n, double v)
{
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int i = 0;
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	snprintf(buf, n, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

void cli_progress_update(struct cli_progress *p, unsigned long long done_bytes,
			 unsigned long long objects)
{
	if (!p)
		return;
	double t = now_s();
	if (t - p->start < 1.0 || t - p->last < 0.1)
		return;
	p->last = t;
	p->drawn = true;
	char done[32], rate[32];
	human(done, sizeof(done), (double)done_bytes);
	human(rate, sizeof(rate), (double)done_bytes / (t - p->start));
	if (p->total) {
		char total[32];
		human(total, sizeof(total), (double)p->total);
		int pct = (int)(done_bytes * 100 / p->total);
		int bar = pct * 24 / 100;
		fprintf(stderr, "\r%s [%.*s%*s] %3d%% %s / %s  %s/s ", p->what, bar,
			"########################", 24 - bar, "", pct, done, total, rate);
	} else if (done_bytes) {
		fprintf(stderr, "\r%s %s  %s/s ", p->what, done, rate);
	} else {
		fprintf(stderr, "\r%s %llu objects ", p->what, objects);
	}
	fflush(stderr);
}

void cli_progress_end(struct cli_progress *p)
{
	if (!p)
		return;
	if (p->drawn)
		fprintf(stderr, "\r\033[K");
	free(p);
}
