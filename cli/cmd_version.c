/* roam version: the binary's version and build. */
#include <stdio.h>
#include "cli/cli.h"

#ifndef ROAM_VERSION
#define ROAM_VERSION "0.1"
#endif

static int run_version(struct cli_ctx *ctx, int argc, char **argv)
{
	(void)argc; (void)argv;
	if (ctx->json)
		printf("{\"version\":\"%s\"}\n", ROAM_VERSION);
	else
		printf("roam %s\n", ROAM_VERSION);
	return 0;
}

CLI_COMMAND(cmd_version) = {
	.name = "version",
	.summary = "print roam's version",
	.usage = "usage: roam version [--json]\n",
	.run = run_version,
};
