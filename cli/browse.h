/* Entry points of cmd_browse.c used by other command files. */
#ifndef ROAM_CLI_BROWSE_H
#define ROAM_CLI_BROWSE_H
#include "cli/cli.h"

/* `roam ls VM[@TAG][:/path]`: lists a directory of the guest filesystem
 * (or the partitions of the disk). Returns the exit status. */
int cli_browse_ls(struct cli_ctx *ctx, const char *spec);
#endif
