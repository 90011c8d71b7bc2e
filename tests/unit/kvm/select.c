/* engine_select() and the KVM probe's reasons, as seen on this host. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "monitor/engine.h"
#include "tests/unit/test.h"
#include "tests/unit/kvm/kvm_tests.h"

static bool host_hwvirt(void)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[8192];
	bool found = false;
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		if (!strncmp(line, "flags", 5))
			found = strstr(line, " vmx") || strstr(line, " svm");
	fclose(f);
	return found;
}

static void select_bt_and_unknown(void)
{
	const struct engine_ops *e = NULL;
	const char *note = "x", *why = NULL;
	CHECK_EQ(engine_select("bt", &e, &note, &why), 0);
	CHECK(e == &bt_engine_ops);
	CHECK(note == NULL);
	CHECK_EQ(engine_select("vmware", &e, &note, &why), -EINVAL);
	CHECK(why && strstr(why, "auto, kvm or bt"));
}

static void select_kvm_reason(void)
{
	const struct engine_ops *e = NULL;
	const char *note = NULL, *why = NULL;
	int r = engine_select("kvm", &e, &note, &why);
	if (access("/dev/kvm", F_OK) != 0) {
		CHECK_EQ(r, -ENOENT);
		CHECK(why && strstr(why, "no /dev/kvm access") && strstr(why, "/dev/kvm absent"));
	} else if (r == 0) {
		CHECK(e == &kvm_engine_ops);
	} else {
		CHECK(why && why[0]);
		CHECK(strchr(why, '\n') == NULL);
	}
	const char *pwhy = NULL;
	int p = kvm_engine_ops.probe(&pwhy);
	CHECK_EQ(p, r);
	CHECK(p == 0 || (pwhy && pwhy == why));
}

static void select_auto(void)
{
	const struct engine_ops *e = NULL;
	const char *note = NULL, *why = NULL;
	CHECK_EQ(engine_select("auto", &e, &note, &why), 0);
	if (!host_hwvirt()) {
		CHECK(e == &bt_engine_ops);
		CHECK(note && strstr(note, "no hardware virtualization (vmx/svm)"));
	} else if (access("/dev/kvm", F_OK) != 0) {
		CHECK(e == &bt_engine_ops);
		CHECK(note && strstr(note, "/dev/kvm absent"));
	} else {
		CHECK(e == &kvm_engine_ops || (note && strstr(note, "binary translator")));
	}
}

int kvm_select_tests(void)
{
	TEST(select_bt_and_unknown);
	TEST(select_kvm_reason);
	TEST(select_auto);
	return test_failures;
}
