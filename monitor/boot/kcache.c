/* Cache of decompressed kernel payloads: decompressing a distribution's XZ
 * kernel costs over a second of host CPU at every boot, so the result is
 * kept in a file named by the SHA-256 of the compressed payload, in
 * $ROAM_CACHE_DIR/kernels (else $XDG_CACHE_HOME/roam/kernels, else
 * ~/.cache/roam/kernels; ROAM_CACHE_DIR set but empty turns the cache off).
 * Each entry holds the SHA-256 of its content, checked on every read: a
 * damaged entry is a miss and is removed. Writing is best effort (the cache
 * only saves time); the KCACHE_KEEP most recently used entries are kept. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "monitor/boot/boot_int.h"

#define KCACHE_MAGIC "ROAMKC01"
#define KCACHE_HDR (8 + 8 + 32)
#define KCACHE_KEEP 4

static bool sha256(const void *p, size_t n, uint8_t out[32])
{
	unsigned int len = 0;
	return EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) && len == 32;
}

/* The cache folder, made if missing; false when there is none. */
static bool cache_dir(char *dir, size_t n)
{
	const char *env = getenv("ROAM_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	int w;
	if (env)
		w = *env ? snprintf(dir, n, "%s", env) : -1;
	else if (xdg && *xdg)
		w = snprintf(dir, n, "%s/roam", xdg);
	else if (home && *home)
		w = snprintf(dir, n, "%s/.cache/roam", home);
	else
		w = -1;
	if (w < 0 || (size_t)w + sizeof("/kernels") > n)
		return false;
	/* Make the parents of .../roam/kernels one level at a time (a failure
	 * shows in the last mkdir). */
	for (char *p = dir + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			mkdir(dir, 0700);
			*p = '/';
		}
	mkdir(dir, 0700);
	strcat(dir, "/kernels");
	return !mkdir(dir, 0700) || errno == EEXIST;
}

static bool entry_path(const uint8_t *payload, size_t plen, char *path, size_t n)
{
	char dir[PATH_MAX - 80];
	uint8_t key[32];
	if (!cache_dir(dir, sizeof(dir)) || !sha256(payload, plen, key))
		return false;
	int w = snprintf(path, n, "%s/vmlinux-", dir);
	for (int i = 0; i < 32 && w > 0 && (size_t)w + 3 < n; i++)
		w += snprintf(path + w, n - (size_t)w, "%02x", key[i]);
	return w > 0 && (size_t)w + 1 < n;
}

int kcache_get(const uint8_t *payload, size_t plen, size_t max_out, uint8_t **ret,
	       size_t *ret_len)
{
	char path[PATH_MAX];
	if (!entry_path(payload, plen, path, sizeof(path)))
		return -ENOENT;
	FILE *f = fopen(path, "rbe");
	if (!f)
		return -ENOENT;
	uint8_t hdr[KCACHE_HDR], sum[32];
	uint8_t *out = NULL;
	uint64_t len = 0;
	struct stat st;
	bool ok = !fstat(fileno(f), &st) && fread(hdr, sizeof(hdr), 1, f) == 1 &&
		  !memcmp(hdr, KCACHE_MAGIC, 8);
	if (ok) {
		for (int i = 7; i >= 0; i--)
			len = len << 8 | hdr[8 + i];
		ok = len > 0 && len <= max_out && (uint64_t)st.st_size == KCACHE_HDR + len &&
		     (out = malloc(len)) && fread(out, len, 1, f) == 1 &&
		     sha256(out, len, sum) && !memcmp(sum, hdr + 16, 32);
	}
	if (ok)
		futimens(fileno(f), NULL);   /* most recently used */
	fclose(f);
	if (!ok) {
		free(out);
		if (len <= max_out)
			unlink(path);   /* damaged; one too big for this VM stays */
		return -ENOENT;
	}
	*ret = out;
	*ret_len = len;
	return 0;
}

/* Removes the least recently used entries beyond KCACHE_KEEP. */
static void prune(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct { char name[80]; struct timespec t; } e[KCACHE_KEEP + 1];
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat st;
		if (strncmp(de->d_name, "vmlinux-", 8) || strlen(de->d_name) >= sizeof(e[0].name) ||
		    fstatat(dirfd(d), de->d_name, &st, 0))
			continue;
		/* Keep the newest KCACHE_KEEP in e; drop the oldest of KCACHE_KEEP + 1. */
		snprintf(e[n].name, sizeof(e[n].name), "%s", de->d_name);
		e[n].t = st.st_mtim;
		if (++n <= KCACHE_KEEP)
			continue;
		int old = 0;
		for (int i = 1; i < n; i++)
			if (e[i].t.tv_sec < e[old].t.tv_sec ||
			    (e[i].t.tv_sec == e[old].t.tv_sec && e[i].t.tv_nsec < e[old].t.tv_nsec))
				old = i;
		unlinkat(dirfd(d), e[old].name, 0);
		e[old] = e[--n];
	}
	closedir(d);
}

void kcache_put(const uint8_t *payload, size_t plen, const uint8_t *out, size_t len)
{
	char path[PATH_MAX], tmp[PATH_MAX + 16];
	uint8_t hdr[KCACHE_HDR];
	if (!entry_path(payload, plen, path, sizeof(path)) || !sha256(out, len, hdr + 16))
		return;
	memcpy(hdr, KCACHE_MAGIC, 8);
	for (int i = 0; i < 8; i++)
		hdr[8 + i] = (uint8_t)((uint64_t)len >> (8 * i));
	snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return;
	FILE *f = fdopen(fd, "wb");
	if (!f) {
		close(fd);
		unlink(tmp);
		return;
	}
	bool ok = fwrite(hdr, sizeof(hdr), 1, f) == 1 && fwrite(out, len, 1, f) == 1;
	ok = !fclose(f) && ok && !rename(tmp, path);
	if (!ok) {
		unlink(tmp);
		return;
	}
	*strrchr(path, '/') = 0;
	prune(path);
}
