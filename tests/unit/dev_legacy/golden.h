/* Golden version-1 state records (golden.c) and the guest programming
 * that produced them (golden_setup). A device must keep loading these
 * records, and saving right after a load must give the same bytes back:
 * a change to a record format needs a new version, not an edit here. */
#ifndef ROAM_TEST_DEV_GOLDEN_H
#define ROAM_TEST_DEV_GOLDEN_H
#include <stddef.h>
#include <stdint.h>

struct vm;

extern const uint8_t golden_pic_v1[], golden_ioapic_v1[], golden_uart0_v1[],
	golden_pit_v1[], golden_rtc_v1[], golden_i8042_v1[];
extern const size_t golden_pic_v1_len, golden_ioapic_v1_len, golden_uart0_v1_len,
	golden_pit_v1_len, golden_rtc_v1_len, golden_i8042_v1_len;

/* Programs every device of a 2-CPU VM with irqchip and legacy devices
 * into the golden state (the PIT is paused first so its counts do not
 * depend on time; the RTC keeps its SET bit so its clock does not). */
void golden_setup(struct vm *vm);
#endif
