/* hello: the smallest test kernel. Prints a greeting and the machine it
 * found (memory, CPUs from the MP table), then exits with PASS. */
#include "rt.h"

const char rt_kernel_name[] = "hello";

void test_main(void)
{
	u32 ids[RT_MAX_CPUS];
	rt_printf("hello from roam test kernel: mem_top=%#lx cpus_in_mp_table=%d\n",
		  rt_mem_top(), rt_mp_cpus(ids, RT_MAX_CPUS));
	if (rt_test_enabled("hello"))
		rt_ok("hello");
}
