# Test kernels (tests/guest/): freestanding Multiboot v1 kernels, 32-bit ELF
# files that switch to long mode themselves. Each kernel is
# tests/guest/NAME.c (+ tests/guest/NAME_asm.S when present) linked with the
# runtime in tests/guest/rt/. Built as x86-64 code, linked at 1 MiB and
# converted to elf32-i386 (Multiboot loaders, QEMU's included, want ELF32).
#   make guest-tests   -> $(BUILD)/guest/NAME.elf for every kernel

GUEST_KERNELS := hello exceptions usermode timer virtio_blk hostile_virtio \
                 smp modes smc cpubench touch64 counter
GUEST_CFLAGS := -std=gnu11 -O2 -g -ffreestanding -fno-pic -fno-pie -fno-stack-protector \
                -fno-asynchronous-unwind-tables -mno-red-zone -mgeneral-regs-only \
                -mcmodel=small -fno-builtin --param=min-pagesize=0 -fno-delete-null-pointer-checks -Wall -Wextra -Werror -Wno-unused-parameter \
                -Itests/guest/rt
GUEST_ASFLAGS := -Itests/guest/rt
GUEST_RT_OBJS := $(patsubst tests/guest/rt/%,$(BUILD)/guest/obj/rt/%.o,\
                   $(wildcard tests/guest/rt/*.c tests/guest/rt/*.S))

$(BUILD)/guest/obj/%.c.o: tests/guest/%.c
	@mkdir -p $(dir $@)
	gcc $(GUEST_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/guest/obj/%.S.o: tests/guest/%.S
	@mkdir -p $(dir $@)
	gcc $(GUEST_ASFLAGS) -MMD -MP -c $< -o $@

define GUEST_KERNEL_RULE
$(BUILD)/guest/$(1).elf: $(BUILD)/guest/obj/$(1).c.o \
		$(patsubst tests/guest/%,$(BUILD)/guest/obj/%.o,$(wildcard tests/guest/$(1)_asm.S)) \
		$(GUEST_RT_OBJS) tests/guest/rt/kernel.ld
	ld -m elf_x86_64 -nostdlib -static --no-relax --no-warn-rwx-segments -z noexecstack -z max-page-size=4096 \
		-T tests/guest/rt/kernel.ld -o $$@.64 $$(filter %.o,$$^)
	objcopy -O elf32-i386 $$@.64 $$@
	rm -f $$@.64
endef
$(foreach k,$(GUEST_KERNELS),$(eval $(call GUEST_KERNEL_RULE,$(k))))

guest-tests: $(GUEST_KERNELS:%=$(BUILD)/guest/%.elf)

-include $(wildcard $(BUILD)/guest/obj/*.d $(BUILD)/guest/obj/rt/*.d)

# Host-side checker for the counter kernel's disk records.
$(BUILD)/tools/counter_check: tests/guest/tools/counter_check.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $<

guest-tests: $(BUILD)/tools/counter_check
