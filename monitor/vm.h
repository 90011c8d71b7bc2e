/* A virtual machine: guest RAM, buses, devices, interrupt controllers, an
 * event loop and an engine running the vCPUs. vm_new builds the PC platform
 * (legacy devices, PCI host, virtio devices from the config); vm_boot loads
 * a kernel; vm_run runs until the guest powers off, resets, exits through
 * the debug port, or the host asks it to stop. */
#ifndef ROAM_VM_H
#define ROAM_VM_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "monitor/cpu_state.h"
#include "monitor/engine.h"

struct guest_mem;
struct bus;
struct evloop;
struct irqchip;
struct dev;
struct console;
struct pci_host;
struct blockdev;

#define VM_MAX_CPUS  8
#define VM_MAX_DISKS 8

struct vm_disk {
	const char *path;          /* raw file, or NULL when bdev is given */
	struct blockdev *bdev;     /* caller-supplied backend (checkpoint/) */
	bool readonly;
};

struct vm_config {
	uint64_t mem_size;         /* bytes */
	int ncpus;
	const struct engine_ops *engine;
	const char *kernel, *initrd, *append;
	struct vm_disk disks[VM_MAX_DISKS];
	int ndisks;
	bool rng;                  /* virtio-rng */
	int console_in, console_out;  /* fds for the UART (-1: none) */
	/* KVM: give the guest only the CPU features the BT engine implements
	 * (monitor/kvm/cpuid.c), so a VM started under KVM can be resumed
	 * under BT. false: the fuller host-derived model. */
	bool portable_cpu;
};

enum vm_stop {
	VM_RUNNING = 0,
	VM_STOP_POWEROFF,          /* guest powered off: status 0 */
	VM_STOP_RESET,             /* guest reset / triple fault: status 0 */
	VM_STOP_DEBUG_EXIT,        /* port 0xf4: status (v << 1) | 1 */
	VM_STOP_HOST,              /* console escape, signal, roam suspend */
	VM_STOP_ERROR,             /* engine or device failure: status 1 */
};

struct vm {
	struct vm_config cfg;
	int ncpus;
	struct guest_mem *mem;
	struct bus *pio, *mmio;
	struct evloop *ev;
	struct irqchip *irq;
	struct pci_host *pci;
	struct console *con;
	const struct engine_ops *eng_ops;
	struct engine *eng;
	struct dev *devs;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	_Atomic int stop;          /* enum vm_stop; first writer wins */
	int exit_status;
	char error[256];
	_Atomic int pause;         /* set: vCPU threads park after run() */
	int parked;

	/* Guest TSC = (now_ns() - tsc_epoch_ns) * tsc_khz / 1e6 + tsc_offset. */
	uint64_t tsc_khz, tsc_epoch_ns, tsc_offset;
};

/* Builds the machine described by cfg (copies cfg; strings must outlive the
 * vm). Returns 0 or -errno with a message in *err (static or in vm). */
int vm_new(const struct vm_config *cfg, struct vm **ret, char *err, size_t errlen);
void vm_free(struct vm *vm);

/* Loads cfg.kernel (bzImage or multiboot ELF), initrd and command line, and
 * sets the BSP's initial state. -errno with a one-line reason in err. */
int vm_boot(struct vm *vm, char *err, size_t errlen);

/* Runs the vCPUs until a stop; returns the process exit status for it. */
int vm_run(struct vm *vm);

/* Stops the VM (any thread); the first request wins. msg may be NULL. */
void vm_request_stop(struct vm *vm, enum vm_stop why, int status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Pauses all vCPUs (returns once every vCPU thread is parked) / resumes. */
void vm_pause(struct vm *vm);
void vm_unpause(struct vm *vm);

/* Interrupts from devices, routed through vm->irq. */
void vm_set_irq(struct vm *vm, unsigned gsi, int level);
void vm_msi(struct vm *vm, uint64_t addr, uint32_t data);
/* Wakes vCPU cpu (an interrupt became pending for it). */
void vm_kick_vcpu(struct vm *vm, int cpu);

uint64_t vm_guest_tsc(const struct vm *vm);
#endif
