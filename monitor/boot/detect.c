/* boot_detect: which loader a kernel file needs, with the same checks the
 * loaders make (minus those that need guest RAM); boot_load dispatches. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "monitor/boot/boot.h"
#include "monitor/boot/boot_int.h"

#define DETECT_MAX_FILE (512u << 20)

static bool has_setup_header(const uint8_t *buf, size_t len)
{
	return len >= 0x206 && rd16(buf + 0x1fe) == 0xaa55 && !memcmp(buf + 0x202, "HdrS", 4);
}

int boot_detect(const char *path, enum boot_kind *kind, char *err, size_t errlen)
{
	uint8_t *buf;
	size_t len;
	*kind = BOOT_KIND_NONE;
	int r = boot_read_file(path, "kernel", DETECT_MAX_FILE, &buf, &len, err, errlen);
	if (r < 0)
		return r;
	if (len == 0) {
		free(buf);
		return boot_fail(err, errlen, -ENOEXEC, "kernel %s: empty file", path);
	}
	if (has_setup_header(buf, len)) {
		struct bz_hdr h;
		r = bz_parse(buf, len, path, &h, err, errlen);
		if (r == 0)
			*kind = BOOT_KIND_BZIMAGE;
	} else {
		r = mb_check(buf, len, path, err, errlen);
		if (r == 0)
			*kind = BOOT_KIND_MULTIBOOT;
	}
	free(buf);
	return r;
}

int boot_load(struct guest_mem *m, int ncpus, const char *kernel_path,
	      const char *initrd_path, const char *cmdline, struct cpu_state *bsp,
	      enum boot_kind *ret_kind, char *err, size_t errlen)
{
	enum boot_kind kind;
	int r = boot_detect(kernel_path, &kind, err, errlen);
	if (ret_kind)
		*ret_kind = kind;
	if (r < 0)
		return r;
	if (kind == BOOT_KIND_BZIMAGE)
		return boot_linux(m, ncpus, kernel_path, initrd_path, cmdline, bsp, err, errlen);
	if (initrd_path)
		return boot_fail(err, errlen, -EINVAL, "kernel %s: an initrd is only for Linux kernels, this is a Multiboot kernel",
				 kernel_path);
	if ((r = boot_multiboot(m, kernel_path, cmdline, bsp, err, errlen)) < 0)
		return r;
	return boot_mptable(m, ncpus, err, errlen);
}
