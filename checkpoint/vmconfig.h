/* A VM's configuration as kept in its commits (root "config", a JSON blob):
 *
 *   {"version":1,"name":"web","mem":536870912,"cpus":1,
 *    "append":"console=ttyS0 acpi=off","disks":1,"readonly":"0",
 *    "rng":true,"created":1764000000}
 *
 * "readonly" has one character per disk ('1' = read-only). The kernel and
 * initrd are roots "kernel" and "initrd" (trees) of the same commit, the
 * disks "disk0".."disk7", so a commit carries everything the VM needs to run
 * on another host. The parser reads only this flat shape (what roam
 * writes) and rejects anything else. */
#ifndef ROAM_CKPT_VMCONFIG_H
#define ROAM_CKPT_VMCONFIG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CKPT_CONFIG_VERSION 1
#define CKPT_NAME_MAX 64

struct ckpt_config {
	char name[CKPT_NAME_MAX + 1];
	uint64_t mem;
	int cpus;
	char append[4096];
	int disks;
	char readonly[9];
	bool rng;
	int64_t created;
};

/* VM names: 1..64 of [A-Za-z0-9._-], not starting with '.' or '-'. */
bool ckpt_name_valid(const char *name);
/* JSON text, malloc'd. */
int ckpt_config_encode(const struct ckpt_config *c, char **ret, size_t *ret_len);
/* -EINVAL with err for malformed text or out-of-range values. */
int ckpt_config_decode(const char *text, size_t len, struct ckpt_config *ret, char *err, size_t errlen);
#endif
