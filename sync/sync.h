/* roam's mobility: remotes, push/pull/clone over SSH (or a local path),
 * the server side (`roam serve --stdio`), and single-file bundles. Wire
 * protocol: sync/proto.h. Functions return 0 or -errno and describe a
 * failure in err (one line: what failed and what to do). */
#ifndef ROAM_SYNC_H
#define ROAM_SYNC_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "image/store.h"

/* ---- remotes: PATH/remotes in the store directory --------------------- */
#define SYNC_REMOTE_NAME_MAX 64
struct sync_remote {
	char name[SYNC_REMOTE_NAME_MAX + 1];
	char url[1024];
	char remote_roam[512];      /* "" = "roam" on the far side's PATH */
};
/* *ret is a malloc'd array (free()); *n may be 0. */
int sync_remotes_load(struct store *s, struct sync_remote **ret, size_t *n, char *err, size_t errlen);
int sync_remote_add(struct store *s, const struct sync_remote *r, char *err, size_t errlen);
int sync_remote_rm(struct store *s, const char *name, char *err, size_t errlen);
/* -ENOENT when there is no remote of that name. */
int sync_remote_find(struct store *s, const char *name, struct sync_remote *ret, char *err,
		     size_t errlen);

/* ---- URLs --------------------------------------------------------------- */
struct sync_url {
	bool ssh;                   /* false: a local store path */
	char user[128], host[256];
	int port;                   /* 22 unless given */
	char path[2048];
};
/* ssh://[user@]host[:port]/path, or a local path (absolute, or file://). */
int sync_url_parse(const char *url, struct sync_url *ret, char *err, size_t errlen);

/* ---- connections -------------------------------------------------------- */
struct sync_connect_opts {
	const char *url;
	const char *remote_roam;    /* NULL or "": "roam" */
	const char *identity;       /* -i FILE, or NULL */
	bool accept_new_host_key;
	bool create;                /* the far side creates its store if missing */
};

struct sync_stats {
	uint64_t objects;           /* objects moved */
	uint64_t object_bytes;      /* their stored bytes */
	uint64_t have_queries;      /* hashes asked about (push) or checked (pull) */
	uint64_t bytes_sent, bytes_received;   /* protocol bytes both ways */
	uint64_t refs_updated;
	/* wire codec (protocol 2); zero under protocol 1 */
	uint64_t raw_bytes;         /* raw object bytes that went into the stream(s) */
	uint64_t deltas;            /* objects sent or received as basis deltas */
	uint64_t have_skipped;      /* push: hashes known to be there, not asked */
	int version;                /* protocol version spoken */
	int wire_level;             /* push: the level chosen */
};

/* Progress: done/total stored bytes, objects so far. */
struct sync_progress {
	void (*fn)(void *arg, uint64_t done, uint64_t total, uint64_t objects);
	void *arg;
};

/* Wire codec levels for sync_opts.wire_level. */
#define SYNC_WIRE_AUTO 0            /* $ROAM_SYNC_WIRE if set ("stored" or 1..19), else by size */
#define SYNC_WIRE_STORED (-1)       /* protocol 1: objects exactly as stored */

struct sync_opts {
	struct sync_connect_opts conn;
	bool force;                 /* move a diverged head */
	int wire_level;             /* SYNC_WIRE_AUTO, SYNC_WIRE_STORED or 1..19 */
	struct sync_progress progress;
};

/* Pushes every ref of VM vm (head, checkpoints, replaced) and the objects
 * they reach; refuses a running VM and a diverged remote head (unless
 * force). On success the lease is removed on both sides. */
int sync_push(struct store *s, const char *vm, const struct sync_opts *o,
	      struct sync_stats *stats, char *err, size_t errlen);
/* Pulls VM vm's refs and objects into s; the remote's lease is copied as it
 * is. Refuses while vm runs here and a diverged local head (unless force). */
int sync_pull(struct store *s, const char *vm, const struct sync_opts *o,
	      struct sync_stats *stats, char *err, size_t errlen);

/* Serves one client on in_fd/out_fd for the store at path (created first
 * when create is set or the client asks). $ROAM_SYNC_WIRE=stored makes it
 * speak protocol 1 only (as an older roam would). Returns the process exit status
 * (0 after BYE or the client closing). Messages for humans go to stderr. */
int sync_serve(const char *path, bool create, int in_fd, int out_fd);

/* ---- bundles -------------------------------------------------------------- */
struct sync_bundle_opts {
	const char *vm;
	const char *tag;            /* VM@TAG: only that checkpoint (as head), or NULL */
	const char *since;          /* incremental from checkpoint TAG, or NULL */
	struct sync_progress progress;
};
int sync_bundle_create(struct store *s, const struct sync_bundle_opts *o, const char *file,
		       struct sync_stats *stats, char *err, size_t errlen);
/* Verifies the whole bundle (manifest, every object's hash, references
 * complete given this store, base present) before storing anything, then
 * stores the objects and moves the refs. *ret_vm gets the VM name. */
int sync_bundle_import(struct store *s, const char *file, bool force,
		       const struct sync_progress *progress, char *ret_vm, size_t vmlen,
		       struct sync_stats *stats, char *err, size_t errlen);
#endif
