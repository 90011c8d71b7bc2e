/* The execution-engine interface. An engine runs vCPUs of a struct vm; the
 * VM owns memory, the bus and devices. KVM (monitor/kvm/) and the binary
 * translator (monitor/bt/) implement it; nothing outside an engine's folder
 * knows which one runs.
 *
 * Engines dispatch port and MMIO accesses to vm->pio / vm->mmio themselves
 * (KVM on exits, BT inline), deliver interrupts, and return from run() only
 * when the VM asks them to stop (vm_request_stop, vm_pause) or on an engine
 * error. */
#ifndef ROAM_ENGINE_H
#define ROAM_ENGINE_H
#include <stdbool.h>
#include <stdint.h>
#include "monitor/cpu_state.h"

struct vm;
struct engine;

struct engine_ops {
	const char *name;                    /* "kvm", "bt" */
	/* true: vm starts one thread and calls run(e, -1), which runs every
	 * vCPU (round-robin); false: one thread per vCPU calling run(e, i). */
	bool one_thread;

	/* Is this engine usable on this host? 0, or -errno with *why set to
	 * a static one-line reason. */
	int (*probe)(const char **why);
	/* vm->mem, vm->ncpus, buses and irq routing exist already. vCPUs
	 * start in the architectural reset state. */
	int (*create)(struct vm *vm, struct engine **ret);
	void (*destroy)(struct engine *e);

	/* Runs until vm->stop or vm->pause is set (returns 0) or the vCPU
	 * cannot continue (returns -errno after vm_request_stop with
	 * VM_STOP_ERROR and a message). */
	int (*run)(struct engine *e, int cpu);
	/* Makes run() on that vCPU return soon (from any thread). */
	void (*kick)(struct engine *e, int cpu);

	/* Canonical state; only while the vCPU is not running. */
	int (*get_state)(struct engine *e, int cpu, struct cpu_state *st);
	int (*set_state)(struct engine *e, int cpu, const struct cpu_state *st);

	/* Interrupt lines and MSIs from devices (any thread). */
	void (*irq_line)(struct engine *e, unsigned gsi, int level);
	void (*msi)(struct engine *e, uint64_t addr, uint32_t data);

	/* ORs pages written since the last call (one bit per 4 KiB of RAM
	 * offset, as gmem_take_dirty) into bits and clears the engine's log.
	 * Engines that mark through gmem_mark_dirty may leave this NULL. */
	int (*dirty_log)(struct engine *e, uint64_t *bits);
	/* Starts dirty logging (memory saves after the first). */
	int (*dirty_log_start)(struct engine *e);
};

extern const struct engine_ops kvm_engine_ops;
extern const struct engine_ops bt_engine_ops;

/* True when a "flags" line of /proc/cpuinfo names flag ("vmx", "svm"). */
bool host_cpu_has(const char *flag);

/* Picks an engine by name: "kvm", "bt" or "auto" (KVM only where the CPU
 * has vmx/svm and /dev/kvm is usable; otherwise BT, with *note saying why).
 * Returns 0 or -errno with *why set. */
int engine_select(const char *name, const struct engine_ops **ret,
		  const char **note, const char **why);
#endif
