/* VM leases (see lease.h): the ref vms/NAME/lease and its blob. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "checkpoint/lease.h"

static int lease_ref(const char *name, char *ref, size_t reflen)
{
	if (!name || !*name || strchr(name, '/'))
		return -EINVAL;
	int n = snprintf(ref, reflen, "vms/%s/lease", name);
	if (n < 0 || (size_t)n >= reflen || !store_ref_valid(ref))
		return -EINVAL;
	return 0;
}

static bool host_valid(const char *h)
{
	size_t n = strlen(h);
	if (n == 0 || n > CKPT_LEASE_HOST_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)h[i];
		if (c <= ' ' || c >= 0x7f || c == '=')
			return false;
	}
	return true;
}

void ckpt_lease_hostname(char *out, size_t outlen)
{
	char h[256];
	if (gethostname(h, sizeof(h)) < 0 || !h[0])
		snprintf(h, sizeof(h), "localhost");
	h[sizeof(h) - 1] = 0;
	snprintf(out, outlen, "%s", h);
}

int ckpt_lease_parse(const void *data, size_t len, char *host, size_t hostlen, int64_t *since)
{
	char buf[CKPT_LEASE_BLOB_MAX + 1];
	if (len == 0 || len > CKPT_LEASE_BLOB_MAX || memchr(data, 0, len))
		return -EBADMSG;
	memcpy(buf, data, len);
	buf[len] = 0;
	if (strncmp(buf, "host=", 5) != 0)
		return -EBADMSG;
	char *h = buf + 5, *nl = strchr(h, '\n');
	if (!nl)
		return -EBADMSG;
	*nl = 0;
	if (!host_valid(h))
		return -EBADMSG;
	char *s = nl + 1;
	if (strncmp(s, "since=", 6) != 0)
		return -EBADMSG;
	s += 6;
	char *end;
	errno = 0;
	long long t = strtoll(s, &end, 10);
	if (errno || end == s || strcmp(end, "\n") != 0)
		return -EBADMSG;
	if (host && hostlen)
		snprintf(host, hostlen, "%s", h);
	if (since)
		*since = t;
	return 0;
}

static int lease_read(struct store *s, const char *ref, struct store_hash *ret_h, char *host,
		      size_t hostlen, int64_t *since)
{
	int rc = store_ref_get(s, ref, ret_h);
	if (rc < 0)
		return rc;
	void *data;
	size_t len;
	enum store_kind kind;
	rc = store_get(s, ret_h, &kind, &data, &len);
	if (rc < 0)
		return rc;
	rc = kind == STORE_BLOB ? ckpt_lease_parse(data, len, host, hostlen, since) : -EBADMSG;
	free(data);
	return rc;
}

int ckpt_lease_get(struct store *s, const char *name, char *host, size_t hostlen, int64_t *since)
{
	char ref[STORE_REF_MAX + 1];
	struct store_hash h;
	if (lease_ref(name, ref, sizeof(ref)) < 0)
		return -EINVAL;
	return lease_read(s, ref, &h, host, hostlen, since);
}

int ckpt_lease_take(struct store *s, const char *name, const char *host, bool steal,
		    char *err, size_t errlen)
{
	char ref[STORE_REF_MAX + 1], holder[CKPT_LEASE_HOST_MAX + 1];
	struct store_hash cur, nh;
	int64_t since = 0;
	if (lease_ref(name, ref, sizeof(ref)) < 0 || !host || !host_valid(host)) {
		snprintf(err, errlen, "bad VM name or host name for a lease");
		return -EINVAL;
	}
	for (int attempt = 0; attempt < 8; attempt++) {
		int rc = lease_read(s, ref, &cur, holder, sizeof(holder), &since);
		bool have = rc == 0 || rc == -EBADMSG;
		if (rc < 0 && rc != -ENOENT && rc != -EBADMSG) {
			snprintf(err, errlen, "cannot read the lease of VM %s: %s", name,
				 store_last_error());
			return rc;
		}
		if (rc == 0 && strcmp(holder, host) == 0)
			return 0;
		if (rc == 0 && !steal) {
			char when[64] = "";
			time_t t = (time_t)since;
			struct tm tm;
			if (gmtime_r(&t, &tm))
				strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
			snprintf(err, errlen,
				 "VM %s is leased by host %s since %s; suspend it there and push, "
				 "or take it over with --steal", name, holder, when);
			return -EBUSY;
		}
		char blob[CKPT_LEASE_BLOB_MAX];
		int n = snprintf(blob, sizeof(blob), "host=%s\nsince=%" PRId64 "\n", host,
				 (int64_t)time(NULL));
		if (n < 0 || (size_t)n >= sizeof(blob))
			return -EINVAL;
		rc = store_put(s, STORE_BLOB, blob, (size_t)n, &nh);
		if (rc < 0) {
			snprintf(err, errlen, "cannot write the lease of VM %s: %s", name,
				 store_last_error());
			return rc;
		}
		rc = store_ref_cas(s, ref, have ? &cur : NULL, &nh);
		if (rc == 0)
			return 0;
		if (rc != -ESTALE) {
			snprintf(err, errlen, "cannot write the lease of VM %s: %s", name,
				 store_last_error());
			return rc;
		}
	}
	snprintf(err, errlen, "the lease of VM %s keeps changing; try again", name);
	return -EAGAIN;
}

int ckpt_lease_release(struct store *s, const char *name)
{
	char ref[STORE_REF_MAX + 1];
	if (lease_ref(name, ref, sizeof(ref)) < 0)
		return -EINVAL;
	for (int attempt = 0; attempt < 8; attempt++) {
		struct store_hash cur;
		int rc = store_ref_get(s, ref, &cur);
		if (rc == -ENOENT)
			return 0;
		if (rc < 0)
			return rc;
		rc = store_ref_cas(s, ref, &cur, NULL);
		if (rc != -ESTALE)
			return rc;
	}
	return -EAGAIN;
}
