/* Leases: which host may run a VM. A VM that runs (or was resumed) on host A
 * carries the ref vms/NAME/lease naming a small blob
 *   "host=<hostname>\nsince=<unix seconds>\n"
 * so that the same VM, copied to host B by a pull, is not run there by
 * accident while A still holds it. Taking it over is explicit (steal).
 *
 * Who calls what:
 *   roam run           ckpt_lease_take(s, name, this host, --steal)
 *   roam push (done)   ckpt_lease_release on both stores (a suspended or
 *                      powered-off VM is handed off by the push)
 *   roam pull          copies the remote's lease ref as it is */
#ifndef ROAM_CKPT_LEASE_H
#define ROAM_CKPT_LEASE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "image/store.h"

#define CKPT_LEASE_HOST_MAX 255
#define CKPT_LEASE_BLOB_MAX 512

/* Takes the lease of VM name for host (e.g. gethostname()). Succeeds when
 * there is no lease, when host already holds it (since is kept), or when
 * steal is set. Another holder without steal: -EBUSY and err says who holds
 * it since when and how to take it over. -EINVAL for a bad name/host. */
int ckpt_lease_take(struct store *s, const char *name, const char *host, bool steal,
		    char *err, size_t errlen);
/* Removes the lease ref of VM name; 0 also when there was none. */
int ckpt_lease_release(struct store *s, const char *name);
/* Reads the lease: host (NUL-terminated, truncated to hostlen) and since.
 * -ENOENT when there is none; -EBADMSG when the blob is malformed. host and
 * since may be NULL. */
int ckpt_lease_get(struct store *s, const char *name, char *host, size_t hostlen,
		   int64_t *since);
/* Parses a lease blob (untrusted bytes, e.g. from a remote). 0 or -EBADMSG. */
int ckpt_lease_parse(const void *data, size_t len, char *host, size_t hostlen, int64_t *since);
/* This machine's host name for leases ("localhost" if it has none). */
void ckpt_lease_hostname(char *out, size_t outlen);
#endif
