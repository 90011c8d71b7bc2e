/* Reading kernel and initrd files for the loaders, with the one-line
 * errors users see for missing, unreadable or oversized files. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "monitor/boot/boot_int.h"

int boot_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

int boot_read_file(const char *path, const char *what, size_t max,
		   uint8_t **ret_buf, size_t *ret_len, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		return boot_fail(err, errlen, -e, "%s %s: %s", what, path, strerror(e));
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return boot_fail(err, errlen, -e, "%s %s: %s", what, path, strerror(e));
	}
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		return boot_fail(err, errlen, -EISDIR, "%s %s: is a directory", what, path);
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return boot_fail(err, errlen, -ENOEXEC, "%s %s: not a regular file", what, path);
	}
	if ((uint64_t)st.st_size > max) {
		close(fd);
		return boot_fail(err, errlen, -E2BIG, "%s %s: %lld bytes, more than the %zu MiB allowed",
				 what, path, (long long)st.st_size, max >> 20);
	}
	size_t len = (size_t)st.st_size;
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf) {
		close(fd);
		return boot_fail(err, errlen, -ENOMEM, "%s %s: out of memory", what, path);
	}
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			free(buf);
			close(fd);
			return boot_fail(err, errlen, -e, "%s %s: read failed: %s", what, path,
					 n < 0 ? strerror(e) : "file shrank while reading");
		}
		got += (size_t)n;
	}
	close(fd);
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}
