/* The KVM_RUN loop of one vCPU and its kicks. Port and MMIO exits are
 * dispatched to the VM's buses; shutdowns, system events and failures stop
 * the VM; IOAPIC EOIs go to the userspace IOAPIC; the PIC's output is
 * injected into vCPU 0 before each entry.
 *
 * Kicks: kvm_kick sets kvm_run.immediate_exit and sends KVM_KICK_SIGNAL to
 * the vCPU thread, whose handler sets immediate_exit again on that thread's
 * own kvm_run. A kick landing inside KVM_RUN ends it with EINTR; one landing
 * just before it makes it return at once; one whose immediate_exit the loop
 * cleared after an exit is re-armed by the handler when the signal arrives.
 * Callers change the state the vCPU must notice (vm->stop, vm->pause, the
 * PIC) before kicking, and the loop checks that state before every entry,
 * so no kick is lost. This avoids KVM_SET_SIGNAL_MASK, which costs a
 * sighand lock on every KVM_RUN. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include "monitor/bus.h"
#include "monitor/irq.h"
#include "monitor/kvm/kvm_int.h"

/* The kvm_run of the vCPU this thread is running, for the signal handler
 * (per thread by nature; NULL outside kvm_run_vcpu). */
static __thread struct kvm_run *volatile thread_run;

static void kick_handler(int sig)
{
	(void)sig;
	struct kvm_run *run = thread_run;
	if (run)
		__atomic_store_n(&run->immediate_exit, 1, __ATOMIC_SEQ_CST);
}

int kvm_install_kick_handler(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;   /* no SA_RESTART: KVM_RUN returns EINTR */
	sigemptyset(&sa.sa_mask);
	if (sigaction(KVM_KICK_SIGNAL, &sa, NULL) < 0)
		return -errno;
	return 0;
}

void kvm_kick(struct engine *e, int cpu)
{
	struct kvm_engine *k = kvm_of(e);
	if (cpu < 0 || cpu >= k->ncpus)
		return;
	struct kvm_vcpu_ctx *v = &k->cpu[cpu];
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&v->kick_lock);
	if (v->in_run)
		pthread_kill(v->thread, KVM_KICK_SIGNAL);
	pthread_mutex_unlock(&v->kick_lock);
}

/* Makes sure the kick signal reaches this thread's handler. */
static int unblock_kick_signal(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, KVM_KICK_SIGNAL);
	int r = pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	return r ? -r : 0;
}

static int handle_io(struct kvm_engine *k, struct kvm_vcpu_ctx *v)
{
	struct kvm_run *run = v->run;
	unsigned size = run->io.size;
	uint64_t count = run->io.count;
	uint64_t off = run->io.data_offset;

	if ((size != 1 && size != 2 && size != 4) || off > v->run_size ||
	    count > (v->run_size - off) / size) {
		vm_request_stop(k->vm, VM_STOP_ERROR, 1,
				"vCPU %d: malformed KVM_EXIT_IO (port 0x%x size %u count %llu)",
				v->index, run->io.port, size, (unsigned long long)count);
		return -EIO;
	}
	uint8_t *p = (uint8_t *)run + off;
	for (uint64_t i = 0; i < count; i++, p += size) {
		if (run->io.direction == KVM_EXIT_IO_IN)
			bus_read(k->vm->pio, run->io.port, p, size);
		else
			bus_write(k->vm->pio, run->io.port, p, size);
	}
	return 0;
}

static void handle_mmio(struct kvm_engine *k, struct kvm_vcpu_ctx *v)
{
	struct kvm_run *run = v->run;
	uint64_t addr = run->mmio.phys_addr;
	unsigned len = run->mmio.len;
	uint8_t *data = run->mmio.data;

	if (len > 8)
		len = 8;
	if (len == 1 || len == 2 || len == 4 || len == 8) {
		if (run->mmio.is_write)
			bus_write(k->vm->mmio, addr, data, len);
		else
			bus_read(k->vm->mmio, addr, data, len);
		return;
	}
	/* Odd sizes (instructions KVM splits at a page or region edge) go
	 * through as byte accesses. */
	for (unsigned i = 0; i < len; i++) {
		if (run->mmio.is_write)
			bus_write(k->vm->mmio, addr + i, data + i, 1);
		else
			bus_read(k->vm->mmio, addr + i, data + i, 1);
	}
}

static unsigned long long vcpu_rip(struct kvm_vcpu_ctx *v)
{
	struct kvm_regs regs;
	if (kvm_ioctl(v->fd, KVM_GET_REGS, &regs) < 0)
		return ~0ULL;
	return regs.rip;
}

static const char *internal_suberror(uint32_t s)
{
	switch (s) {
	case KVM_INTERNAL_ERROR_EMULATION: return "emulation failure";
	case KVM_INTERNAL_ERROR_SIMUL_EX: return "exception during exception delivery";
	case KVM_INTERNAL_ERROR_DELIVERY_EV: return "event delivery failed";
	case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON: return "unexpected exit reason";
	default: return "unknown suberror";
	}
}

static void stop_internal_error(struct kvm_engine *k, struct kvm_vcpu_ctx *v)
{
	struct kvm_run *run = v->run;
	uint32_t n = run->internal.ndata;
	if (n > 4)
		n = 4;
	char extra[128] = "";
	size_t used = 0;
	for (uint32_t i = 0; i < n && used < sizeof(extra); i++) {
		int w = snprintf(extra + used, sizeof(extra) - used, " 0x%llx",
				 (unsigned long long)run->internal.data[i]);
		if (w < 0)
			break;
		used += (size_t)w;
	}
	vm_request_stop(k->vm, VM_STOP_ERROR, 1,
			"vCPU %d: KVM internal error %u (%s) at RIP 0x%llx%s%s",
			v->index, run->internal.suberror, internal_suberror(run->internal.suberror),
			vcpu_rip(v), n ? ", data" : "", extra);
}

static void stop_system_event(struct kvm_engine *k, struct kvm_vcpu_ctx *v)
{
	switch (v->run->system_event.type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		vm_request_stop(k->vm, VM_STOP_POWEROFF, 0, NULL);
		break;
	case KVM_SYSTEM_EVENT_RESET:
		vm_request_stop(k->vm, VM_STOP_RESET, 0, NULL);
		break;
	case KVM_SYSTEM_EVENT_CRASH:
		vm_request_stop(k->vm, VM_STOP_ERROR, 1, "vCPU %d: guest reported a crash (system event)",
				v->index);
		break;
	default:
		vm_request_stop(k->vm, VM_STOP_ERROR, 1, "vCPU %d: unhandled KVM system event %u",
				v->index, v->run->system_event.type);
		break;
	}
}

/* Returns 0 to keep running, -errno after stopping the VM. */
static int handle_exit(struct kvm_engine *k, struct kvm_vcpu_ctx *v)
{
	struct kvm_run *run = v->run;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		return handle_io(k, v);
	case KVM_EXIT_MMIO:
		handle_mmio(k, v);
		return 0;
	case KVM_EXIT_IOAPIC_EOI:
		irqchip_ioapic_eoi(k->vm->irq, run->eoi.vector);
		return 0;
	case KVM_EXIT_IRQ_WINDOW_OPEN:
	case KVM_EXIT_INTR:
	case KVM_EXIT_HLT:
		/* HLT exits only without an in-kernel LAPIC; resuming is a
		 * spurious wakeup, which HLT permits. */
		return 0;
	case KVM_EXIT_SHUTDOWN:
		vm_request_stop(k->vm, VM_STOP_RESET, 0, "vCPU %d: triple fault at RIP 0x%llx",
				v->index, vcpu_rip(v));
		return 0;
	case KVM_EXIT_SYSTEM_EVENT:
		stop_system_event(k, v);
		return 0;
	case KVM_EXIT_INTERNAL_ERROR:
		stop_internal_error(k, v);
		return -EIO;
	case KVM_EXIT_FAIL_ENTRY:
		vm_request_stop(k->vm, VM_STOP_ERROR, 1,
				"vCPU %d: VM entry failed (hardware reason 0x%llx) at RIP 0x%llx",
				v->index,
				(unsigned long long)run->fail_entry.hardware_entry_failure_reason,
				vcpu_rip(v));
		return -EIO;
	default:
		vm_request_stop(k->vm, VM_STOP_ERROR, 1,
				"vCPU %d: unhandled KVM exit reason %u at RIP 0x%llx",
				v->index, run->exit_reason, vcpu_rip(v));
		return -EIO;
	}
}

int kvm_run_vcpu(struct engine *e, int cpu)
{
	struct kvm_engine *k = kvm_of(e);
	struct vm *vm = k->vm;
	if (cpu < 0 || cpu >= k->ncpus)
		return -EINVAL;
	struct kvm_vcpu_ctx *v = &k->cpu[cpu];

	int r = unblock_kick_signal();
	if (r < 0) {
		vm_request_stop(vm, VM_STOP_ERROR, 1, "vCPU %d: cannot set up kick signal: %s",
				cpu, strerror(-r));
		return r;
	}
	thread_run = v->run;
	pthread_mutex_lock(&v->kick_lock);
	v->thread = pthread_self();
	v->in_run = true;
	pthread_mutex_unlock(&v->kick_lock);

	r = 0;
	while (!atomic_load(&vm->stop) && !atomic_load(&vm->pause)) {
		if (cpu == 0 && (r = kvm_pic_inject(k, v)) < 0)
			break;
		int ret = ioctl(v->fd, KVM_RUN, 0);
		int err = errno;
		/* A kick racing with this store is seen by the checks above
		 * (its state change came first) or re-armed by its signal. */
		__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
		if (ret < 0) {
			if (err == EINTR || err == EAGAIN)
				continue;
			vm_request_stop(vm, VM_STOP_ERROR, 1, "vCPU %d: KVM_RUN failed: %s",
					cpu, strerror(err));
			r = -err;
			break;
		}
		if ((r = handle_exit(k, v)) < 0)
			break;
	}

	pthread_mutex_lock(&v->kick_lock);
	v->in_run = false;
	pthread_mutex_unlock(&v->kick_lock);
	thread_run = NULL;
	return r;
}
