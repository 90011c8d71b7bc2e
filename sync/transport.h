/* Transports for the sync client: an SSH exec channel (libssh2) running
 * `roam serve --stdio PATH` on the far side, or a local child process for
 * a local store path. Private to sync/. */
#ifndef ROAM_SYNC_TRANSPORT_H
#define ROAM_SYNC_TRANSPORT_H
#include "sync/proto.h"
#include "sync/sync.h"

struct sync_conn {
	struct sync_io io;
	/* Closes the stream and collects the far side's exit: its exit status
	 * (or -1 unknown) and up to msglen bytes of its stderr. */
	int (*finish)(struct sync_conn *c, char *msg, size_t msglen);
	void (*free)(struct sync_conn *c);
	char what[300];             /* "host:port" or the path, for messages */
};

int sync_ssh_connect(const struct sync_url *u, const struct sync_connect_opts *o,
		     struct sync_conn **ret, char *err, size_t errlen);
int sync_local_connect(const struct sync_url *u, const struct sync_connect_opts *o,
		       struct sync_conn **ret, char *err, size_t errlen);
/* Quotes s for a POSIX shell into out. -E2BIG if it does not fit. */
int sync_shell_quote(const char *s, char *out, size_t outlen);
#endif
