/* touch64: boots, writes every 4 KiB page of mb MiB (default 64) from user
 * mode, reads them back and exits: the workload of the boot benchmark. */
#include "rt.h"

const char rt_kernel_name[] = "touch64";

static u64 u_touch(u64 arg)
{
	u64 *base = (u64 *)arg, pages = (rt_opt_u64("mb", 64) << 20) / RT_PAGE, bad = 0;
	for (u64 i = 0; i < pages; i++)
		base[i * 512] = i ^ 0x5555;
	for (u64 i = 0; i < pages; i++)
		if (base[i * 512] != (i ^ 0x5555))
			bad++;
	return bad;
}

void test_main(void)
{
	u64 mb = rt_opt_u64("mb", 64);
	u64 *buf = rt_alloc(mb << 20, RT_PAGE, false);
	u64 bad = rt_user_call(u_touch, (u64)buf, false);
	rt_printf("touch64: touched %lu MiB\n", mb);
	if (bad) rt_fail("touch64", "%lu pages read back wrong", bad);
	else rt_ok("touch64");
}
