/* The VM: builds the PC platform from a vm_config, loads the kernel, runs
 * vCPU threads through the engine, and owns stop/pause coordination. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include "monitor/boot/boot.h"
#include "monitor/bus.h"
#include "monitor/dev.h"
#include "monitor/dev/blockdev.h"
#include "monitor/dev/legacy.h"
#include "monitor/dev/pci.h"
#include "monitor/dev/virtio.h"
#include "monitor/evloop.h"
#include "monitor/guest_mem.h"
#include "monitor/irq.h"
#include "monitor/vm.h"

#define DEFAULT_TSC_KHZ 2000000ULL

/* Frees the caller-supplied blockdevs of disks from..ndisks-1: vm_new owns
 * them whether or not it succeeds. */
static void free_given_bdevs(const struct vm_config *cfg, int from)
{
	for (int i = from; i < cfg->ndisks; i++)
		blockdev_free(cfg->disks[i].bdev);
}

static int add_disks(struct vm *vm, int *attached, char *err, size_t errlen)
{
	for (int i = 0; i < vm->cfg.ndisks; i++) {
		const struct vm_disk *dk = &vm->cfg.disks[i];
		struct blockdev *bdev = dk->bdev;
		int rc;
		if (!bdev) {
			rc = blockdev_open_raw(dk->path, dk->readonly, &bdev);
			if (rc < 0) {
				snprintf(err, errlen, "cannot open disk %s: %s", dk->path, strerror(-rc));
				return rc;
			}
		}
		char id[32];
		snprintf(id, sizeof(id), "virtio-blk%d", i);
		rc = virtio_blk_create(vm, bdev, dk->readonly, id);
		if (rc < 0) {
			blockdev_free(bdev);
			*attached = i + 1;
			snprintf(err, errlen, "cannot attach disk %d: %s", i, strerror(-rc));
			return rc;
		}
		*attached = i + 1;
	}
	return 0;
}

int vm_new(const struct vm_config *cfg, struct vm **ret, char *err, size_t errlen)
{
	int rc;
	int attached = 0;
	if (cfg->ndisks < 0 || cfg->ndisks > VM_MAX_DISKS) {
		snprintf(err, errlen, "at most %d disks", VM_MAX_DISKS);
		return -EINVAL;
	}
	if (cfg->ncpus < 1 || cfg->ncpus > VM_MAX_CPUS) {
		snprintf(err, errlen, "--cpus must be 1 to %d, not %d", VM_MAX_CPUS, cfg->ncpus);
		free_given_bdevs(cfg, 0);
		return -EINVAL;
	}
	struct vm *vm = calloc(1, sizeof(*vm));
	if (!vm) {
		snprintf(err, errlen, "out of memory");
		free_given_bdevs(cfg, 0);
		return -ENOMEM;
	}
	vm->cfg = *cfg;
	vm->ncpus = cfg->ncpus;
	vm->eng_ops = cfg->engine;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	vm->tsc_khz = DEFAULT_TSC_KHZ;
	vm->tsc_epoch_ns = now_ns();

	rc = gmem_new(cfg->mem_size, &vm->mem);
	if (rc < 0) {
		snprintf(err, errlen, "cannot allocate %llu MiB of guest memory: %s",
			 (unsigned long long)(cfg->mem_size >> 20), strerror(-rc));
		goto err;
	}
	if ((rc = bus_new(0x10000, &vm->pio)) < 0 || (rc = bus_new(0, &vm->mmio)) < 0 ||
	    (rc = evloop_new(&vm->ev)) < 0) {
		snprintf(err, errlen, "cannot set up the machine: %s", strerror(-rc));
		goto err;
	}
	if ((rc = irqchip_new(vm, &vm->irq)) < 0) {
		snprintf(err, errlen, "cannot create interrupt controllers: %s", strerror(-rc));
		goto err;
	}
	if ((rc = legacy_devices_create(vm)) < 0) {
		snprintf(err, errlen, "cannot create platform devices: %s", strerror(-rc));
		goto err;
	}
	if ((rc = pci_host_create(vm, &vm->pci)) < 0) {
		snprintf(err, errlen, "cannot create the PCI host bridge: %s", strerror(-rc));
		goto err;
	}
	if ((rc = add_disks(vm, &attached, err, errlen)) < 0)
		goto err;
	if (cfg->rng && (rc = virtio_rng_create(vm)) < 0) {
		snprintf(err, errlen, "cannot create virtio-rng: %s", strerror(-rc));
		goto err;
	}
	if ((rc = vm->eng_ops->create(vm, &vm->eng)) < 0) {
		snprintf(err, errlen, "cannot start the %s engine: %s", vm->eng_ops->name,
			 vm->error[0] ? vm->error : strerror(-rc));
		goto err;
	}
	*ret = vm;
	return 0;
err:
	free_given_bdevs(cfg, attached);
	vm_free(vm);
	return rc;
}

void vm_free(struct vm *vm)
{
	if (!vm)
		return;
	if (vm->ev)
		evloop_stop(vm->ev);
	if (vm->eng)
		vm->eng_ops->destroy(vm->eng);
	while (vm->devs) {
		struct dev *d = vm->devs;
		vm->devs = d->next;
		if (d->type->free)
			d->type->free(d);
	}
	irqchip_free(vm->irq);
	evloop_free(vm->ev);
	bus_free(vm->mmio);
	bus_free(vm->pio);
	gmem_free(vm->mem);
	pthread_cond_destroy(&vm->cond);
	pthread_mutex_destroy(&vm->lock);
	free(vm);
}

int vm_boot(struct vm *vm, char *err, size_t errlen)
{
	struct cpu_state *st = malloc(sizeof(*st));
	if (!st) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int rc = 0;
	for (int i = 1; i < vm->ncpus && rc == 0; i++) {
		cpu_state_reset(st, 0);
		st->lapic[0x23] = (uint8_t)i;  /* APIC ID register, bits 24-31 */
		rc = vm->eng_ops->set_state(vm->eng, i, st);
	}
	if (rc < 0) {
		snprintf(err, errlen, "cannot set up the application processors: %s", strerror(-rc));
		goto out;
	}
	cpu_state_reset(st, 1);
	enum boot_kind kind;
	rc = boot_detect(vm->cfg.kernel, &kind, err, errlen);
	if (rc < 0)
		goto out;
	const char *append = vm->cfg.append ? vm->cfg.append : "";
	if (kind == BOOT_KIND_BZIMAGE) {
		char *cmdline;
		if (asprintf(&cmdline, "%s%s%s", BOOT_LINUX_CMDLINE_DEFAULT, *append ? " " : "", append) < 0) {
			rc = -ENOMEM;
			goto out;
		}
		rc = boot_linux(vm->mem, vm->ncpus, vm->cfg.kernel, vm->cfg.initrd, cmdline, st, err, errlen);
		free(cmdline);
	} else {
		rc = boot_multiboot(vm->mem, vm->cfg.kernel, append, st, err, errlen);
		if (rc == 0)
			rc = boot_mptable(vm->mem, vm->ncpus, err, errlen);
	}
	if (rc < 0)
		goto out;
	rc = vm->eng_ops->set_state(vm->eng, 0, st);
	if (rc < 0)
		snprintf(err, errlen, "cannot set the boot CPU state: %s", strerror(-rc));
out:
	free(st);
	return rc;
}

void vm_request_stop(struct vm *vm, enum vm_stop why, int status, const char *fmt, ...)
{
	pthread_mutex_lock(&vm->lock);
	if (atomic_load(&vm->stop) == VM_RUNNING) {
		vm->exit_status = status;
		if (fmt) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(vm->error, sizeof(vm->error), fmt, ap);
			va_end(ap);
		}
		atomic_store(&vm->stop, why);
	}
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	for (int i = 0; i < vm->ncpus; i++)
		vm_kick_vcpu(vm, i);
}

void vm_kick_vcpu(struct vm *vm, int cpu)
{
	if (vm->eng)
		vm->eng_ops->kick(vm->eng, cpu);
}

void vm_set_irq(struct vm *vm, unsigned gsi, int level)
{
	irqchip_set_irq(vm->irq, gsi, level);
}

void vm_msi(struct vm *vm, uint64_t addr, uint32_t data)
{
	irqchip_msi(vm->irq, addr, data);
}

uint64_t vm_guest_tsc(const struct vm *vm)
{
	uint64_t ns = now_ns() - vm->tsc_epoch_ns;
	/* ns * khz / 1e6 without overflow for centuries of uptime */
	unsigned __int128 t = (unsigned __int128)ns * vm->tsc_khz / 1000000u;
	return (uint64_t)t + vm->tsc_offset;
}

static int nthreads(const struct vm *vm)
{
	return vm->eng_ops->one_thread ? 1 : vm->ncpus;
}

struct vcpu_thread {
	struct vm *vm;
	int cpu;
	pthread_t th;
};

static void *vcpu_main(void *arg)
{
	struct vcpu_thread *t = arg;
	struct vm *vm = t->vm;
	while (atomic_load(&vm->stop) == VM_RUNNING) {
		if (atomic_load(&vm->pause)) {
			pthread_mutex_lock(&vm->lock);
			vm->parked++;
			pthread_cond_broadcast(&vm->cond);
			while (atomic_load(&vm->pause) && atomic_load(&vm->stop) == VM_RUNNING)
				pthread_cond_wait(&vm->cond, &vm->lock);
			vm->parked--;
			pthread_mutex_unlock(&vm->lock);
			continue;
		}
		int rc = vm->eng_ops->run(vm->eng, t->cpu);
		if (rc < 0)
			vm_request_stop(vm, VM_STOP_ERROR, 1, "vCPU %d: %s", t->cpu < 0 ? 0 : t->cpu,
					strerror(-rc));
	}
	return NULL;
}

/* SIGINT/SIGTERM/SIGHUP stop the VM through the event loop. */
static void on_signal(void *opaque, int fd, uint32_t events)
{
	struct vm *vm = opaque;
	struct signalfd_siginfo si;
	if (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		vm_request_stop(vm, VM_STOP_HOST, 128 + (int)si.ssi_signo,
				"stopped by signal %u", si.ssi_signo);
}

int vm_run(struct vm *vm)
{
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd >= 0 && evloop_add_fd(vm->ev, sfd, EPOLLIN, on_signal, vm) < 0) {
		close(sfd);
		sfd = -1;
	}
	int rc = evloop_start(vm->ev);
	if (rc < 0) {
		vm_request_stop(vm, VM_STOP_ERROR, 1, "cannot start the event loop: %s", strerror(-rc));
		goto out;
	}
	int n = nthreads(vm);
	struct vcpu_thread th[VM_MAX_CPUS];
	int started = 0;
	for (; started < n; started++) {
		th[started] = (struct vcpu_thread){ vm, vm->eng_ops->one_thread ? -1 : started, 0 };
		rc = pthread_create(&th[started].th, NULL, vcpu_main, &th[started]);
		if (rc) {
			vm_request_stop(vm, VM_STOP_ERROR, 1, "cannot start vCPU threads: %s", strerror(rc));
			break;
		}
	}
	pthread_mutex_lock(&vm->lock);
	while (atomic_load(&vm->stop) == VM_RUNNING)
		pthread_cond_wait(&vm->cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
	for (int i = 0; i < started; i++)
		pthread_join(th[i].th, NULL);
	evloop_stop(vm->ev);
out:
	if (sfd >= 0) {
		evloop_del_fd(vm->ev, sfd);
		close(sfd);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return vm->exit_status;
}

void vm_pause(struct vm *vm)
{
	atomic_store(&vm->pause, 1);
	for (int i = 0; i < vm->ncpus; i++)
		vm_kick_vcpu(vm, i);
	pthread_mutex_lock(&vm->lock);
	while (vm->parked < nthreads(vm) && atomic_load(&vm->stop) == VM_RUNNING)
		pthread_cond_wait(&vm->cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
}

void vm_unpause(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	atomic_store(&vm->pause, 0);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}
