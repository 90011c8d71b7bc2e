/* Remotes (PATH/remotes in the store directory, one per line:
 * "NAME<TAB>URL<TAB>REMOTE_ROAM or -", replaced atomically by rename) and
 * remote URLs. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "sync/proto.h"
#include "sync/sync.h"

static bool remote_name_valid(const char *n)
{
	return sync_vm_name_valid(n) && strlen(n) <= SYNC_REMOTE_NAME_MAX;
}

static bool field_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < ' ' || *s == 0x7f)
			return false;
	return true;
}

int sync_remotes_load(struct store *s, struct sync_remote **ret, size_t *n, char *err, size_t errlen)
{
	char path[4096], line[2048];
	snprintf(path, sizeof(path), "%s/remotes", store_path(s));
	*ret = NULL;
	*n = 0;
	FILE *f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return -errno;
	}
	struct sync_remote *v = NULL;
	size_t cnt = 0;
	int lineno = 0, rc = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		line[strcspn(line, "\n")] = 0;
		if (!line[0])
			continue;
		char *name = line, *url = strchr(name, '\t'), *rr = url ? strchr(url + 1, '\t') : NULL;
		if (!rr) {
			snprintf(err, errlen, "%s line %d is malformed; fix or remove it", path, lineno);
			rc = -EINVAL;
			break;
		}
		*url++ = 0;
		*rr++ = 0;
		if (strlen(name) > SYNC_REMOTE_NAME_MAX || strlen(url) >= 1024 || strlen(rr) >= 512) {
			snprintf(err, errlen, "%s line %d is too long; fix or remove it", path, lineno);
			rc = -EINVAL;
			break;
		}
		struct sync_remote *nv = realloc(v, (cnt + 1) * sizeof(*v));
		if (!nv) {
			rc = -ENOMEM;
			break;
		}
		v = nv;
		memset(&v[cnt], 0, sizeof(v[cnt]));
		snprintf(v[cnt].name, sizeof(v[cnt].name), "%.64s", name);
		snprintf(v[cnt].url, sizeof(v[cnt].url), "%.1023s", url);
		snprintf(v[cnt].remote_roam, sizeof(v[cnt].remote_roam), "%.511s",
			 strcmp(rr, "-") ? rr : "");
		cnt++;
	}
	fclose(f);
	if (rc < 0) {
		free(v);
		return rc;
	}
	*ret = v;
	*n = cnt;
	return 0;
}

static int remotes_save(struct store *s, const struct sync_remote *v, size_t n, char *err,
			size_t errlen)
{
	char path[4096], tmp[4200];
	snprintf(path, sizeof(path), "%s/remotes", store_path(s));
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	FILE *f = fopen(tmp, "we");
	if (!f)
		goto fail;
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s\t%s\t%s\n", v[i].name, v[i].url,
			v[i].remote_roam[0] ? v[i].remote_roam : "-");
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		fclose(f);
		unlink(tmp);
		goto fail;
	}
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		goto fail;
	}
	return 0;
fail:
	snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
	return -errno;
}

int sync_remote_find(struct store *s, const char *name, struct sync_remote *ret, char *err,
		     size_t errlen)
{
	struct sync_remote *v;
	size_t n;
	int rc = sync_remotes_load(s, &v, &n, err, errlen);
	if (rc < 0)
		return rc;
	rc = -ENOENT;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].name, name)) {
			*ret = v[i];
			rc = 0;
		}
	free(v);
	if (rc == -ENOENT)
		snprintf(err, errlen, "no remote named '%s' ('roam remote ls' lists them; "
			 "'roam remote add NAME ssh://host/path' adds one)", name);
	return rc;
}

int sync_remote_add(struct store *s, const struct sync_remote *r, char *err, size_t errlen)
{
	struct sync_url u;
	if (!remote_name_valid(r->name)) {
		snprintf(err, errlen, "'%s' is not a valid remote name (letters, digits, . _ -)",
			 r->name);
		return -EINVAL;
	}
	if (!field_ok(r->url) || !field_ok(r->remote_roam) || strchr(r->remote_roam, '\t')) {
		snprintf(err, errlen, "control characters in the URL or remote roam path");
		return -EINVAL;
	}
	int rc = sync_url_parse(r->url, &u, err, errlen);
	if (rc < 0)
		return rc;
	struct sync_remote *v;
	size_t n;
	rc = sync_remotes_load(s, &v, &n, err, errlen);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].name, r->name)) {
			snprintf(err, errlen, "remote '%s' exists (%s); remove it first with "
				 "'roam remote rm %s'", r->name, v[i].url, r->name);
			free(v);
			return -EEXIST;
		}
	struct sync_remote *nv = realloc(v, (n + 1) * sizeof(*v));
	if (!nv) {
		free(v);
		return -ENOMEM;
	}
	nv[n] = *r;
	rc = remotes_save(s, nv, n + 1, err, errlen);
	free(nv);
	return rc;
}

int sync_remote_rm(struct store *s, const char *name, char *err, size_t errlen)
{
	struct sync_remote *v;
	size_t n, k = 0;
	int rc = sync_remotes_load(s, &v, &n, err, errlen);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].name, name))
			v[k++] = v[i];
	if (k == n) {
		free(v);
		snprintf(err, errlen, "no remote named '%s'", name);
		return -ENOENT;
	}
	rc = remotes_save(s, v, k, err, errlen);
	free(v);
	return rc;
}

int sync_url_parse(const char *url, struct sync_url *ret, char *err, size_t errlen)
{
	memset(ret, 0, sizeof(*ret));
	ret->port = 22;
	if (!strncmp(url, "file://", 7))
		url += 7;
	if (strncmp(url, "ssh://", 6) != 0) {
		if (url[0] != '/' || strlen(url) >= sizeof(ret->path)) {
			snprintf(err, errlen, "'%s' is not ssh://[user@]host[:port]/path or an "
				 "absolute local path", url);
			return -EINVAL;
		}
		snprintf(ret->path, sizeof(ret->path), "%s", url);
		return 0;
	}
	ret->ssh = true;
	const char *p = url + 6, *slash = strchr(p, '/');
	if (!slash || !slash[1]) {
		snprintf(err, errlen, "'%s' names no store path (ssh://host/path/to/store)", url);
		return -EINVAL;
	}
	char auth[512];
	size_t alen = (size_t)(slash - p);
	if (alen == 0 || alen >= sizeof(auth))
		goto bad;
	memcpy(auth, p, alen);
	auth[alen] = 0;
	char *hp = auth, *at = strrchr(auth, '@');
	if (at) {
		*at = 0;
		if (!auth[0] || strlen(auth) >= sizeof(ret->user))
			goto bad;
		snprintf(ret->user, sizeof(ret->user), "%s", auth);
		hp = at + 1;
	}
	char *colon = NULL;
	if (hp[0] == '[') {
		char *rb = strchr(hp, ']');
		if (!rb)
			goto bad;
		*rb = 0;
		hp++;
		if (rb[1] == ':')
			colon = rb + 1;
		else if (rb[1])
			goto bad;
	} else {
		colon = strchr(hp, ':');
	}
	if (colon) {
		*colon = 0;
		char *end;
		long port = strtol(colon + 1, &end, 10);
		if (*end || port < 1 || port > 65535)
			goto bad;
		ret->port = (int)port;
	}
	if (!hp[0] || strlen(hp) >= sizeof(ret->host))
		goto bad;
	snprintf(ret->host, sizeof(ret->host), "%s", hp);
	if (strlen(slash) >= sizeof(ret->path))
		goto bad;
	snprintf(ret->path, sizeof(ret->path), "%s", slash);
	return 0;
bad:
	snprintf(err, errlen, "'%s' is not a valid ssh://[user@]host[:port]/path URL", url);
	return -EINVAL;
}
