/* BT exception raising: bt_raise, bt_raise_err and bt_raise_pf record the
 * exception in the vCPU and unwind to the vCPU loop with longjmp; the loop
 * delivers it (except.c). */
#include "monitor/bt/sys_int.h"

_Noreturn void bt_raise(struct bt_cpu *c, int vector)
{
	c->exc_vector = (uint8_t)vector;
	c->exc_has_error = 0;
	c->exc_error = 0;
	longjmp(c->jmp, 1);
}

_Noreturn void bt_raise_err(struct bt_cpu *c, int vector, uint32_t error)
{
	c->exc_vector = (uint8_t)vector;
	c->exc_has_error = 1;
	c->exc_error = error;
	longjmp(c->jmp, 1);
}

_Noreturn void bt_raise_pf(struct bt_cpu *c, uint64_t addr, uint32_t error)
{
	c->exc_cr2 = addr;
	bt_raise_err(c, BT_PF, error);
}
