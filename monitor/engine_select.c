/* engine_select(): maps --engine auto|kvm|bt to an engine. auto takes KVM
 * only where the CPU has hardware virtualization (vmx/svm in
 * /proc/cpuinfo) and /dev/kvm works: a /dev/kvm without vmx/svm is PVM,
 * which runs guest kernels far slower than the binary translator. An
 * explicit kvm is allowed there. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "monitor/engine.h"

bool host_cpu_has(const char *flag)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	if (!f)
		return false;
	char line[8192];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "flags", 5) != 0)
			continue;
		for (char *save = NULL, *w = strtok_r(line, " \t\n", &save); w && !found;
		     w = strtok_r(NULL, " \t\n", &save))
			found = !strcmp(w, flag);
	}
	fclose(f);
	return found;
}

static bool cpu_has_hwvirt(void)
{
	return host_cpu_has("vmx") || host_cpu_has("svm");
}

int engine_select(const char *name, const struct engine_ops **ret,
		  const char **note, const char **why)
{
	*note = NULL;
	if (!strcmp(name, "bt")) {
		*ret = &bt_engine_ops;
		return 0;
	}
	if (!strcmp(name, "kvm")) {
		int r = kvm_engine_ops.probe(why);
		if (r < 0)
			return r;
		*ret = &kvm_engine_ops;
		return 0;
	}
	if (strcmp(name, "auto") != 0) {
		*why = "unknown engine (use auto, kvm or bt)";
		return -EINVAL;
	}
	*ret = &bt_engine_ops;
	if (!cpu_has_hwvirt()) {
		*note = "no hardware virtualization (vmx/svm) on this host: using the binary translator";
		return 0;
	}
	const char *kvm_why = NULL;
	int r = kvm_engine_ops.probe(&kvm_why);
	if (r == -ENOENT || r == -ENODEV || r == -ENXIO)
		*note = "/dev/kvm absent: using the binary translator";
	else if (r == -EACCES || r == -EPERM)
		*note = "no /dev/kvm access (permission denied; join the kvm group): using the binary translator";
	else if (r < 0)
		*note = "KVM is not usable here (see --engine kvm): using the binary translator";
	else
		*ret = &kvm_engine_ops;
	return 0;
}
