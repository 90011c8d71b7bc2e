/* libFuzzer harness: the partition-table parser over arbitrary disk bytes.
 * The input is the start of a disk; the disk's size is taken from its first
 * bytes so huge-disk paths (backup GPT header at the end) are reached too. */
#include <errno.h>
#include <string.h>
#include "fusefs/parttable.h"

struct fz { const uint8_t *p; size_t n; };

static ssize_t fz_pread(void *o, void *buf, size_t len, uint64_t off)
{
	const struct fz *f = o;
	/* Beyond the input the disk reads as a repeating copy of it. */
	for (size_t i = 0; i < len; i++)
		((uint8_t *)buf)[i] = f->n ? f->p[(off + i) % f->n] : 0;
	return (ssize_t)len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 8)
		return 0;
	uint64_t disk_size;
	memcpy(&disk_size, data, 8);
	disk_size %= 1ULL << 44;
	struct fz f = { data + 8, size - 8 };
	struct ffs_disk d = { disk_size, fz_pread, &f };
	static struct ffs_parts r;
	int rc = ffs_parse_parts(&d, &r);
	if (rc != 0 && rc != -EINVAL)
		__builtin_trap();
	for (int i = 0; i < r.n; i++)
		if (r.part[i].start + r.part[i].size > disk_size)
			__builtin_trap();
	return 0;
}
