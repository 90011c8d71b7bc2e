/* VMs in a store: create, run (boot or resume), suspend, checkpoint,
 * rollback, tags, removal, status and history.
 *
 * Refs of VM NAME:
 *   vms/NAME/head                  the current commit
 *   vms/NAME/checkpoints/TAG       named checkpoints
 *   vms/NAME/replaced/<time>       heads replaced by a rollback (kept
 *                                  reachable; `roam log` shows them)
 * A commit's roots: "config" (JSON blob, vmconfig.h), "kernel", "initrd",
 * "disk0".."disk7" (trees), and when the VM is suspended "memory" (tree)
 * and "state" (state object, state.h). No "state" root = powered off.
 *
 * A running VM holds run/vm-NAME.lock (flock) in the store's run directory
 * and writes its working files to run/vm-NAME/. It listens for `roam
 * suspend` / `roam checkpoint` on an abstract unix socket named after the
 * store and the VM. */
#ifndef ROAM_CKPT_VMSTORE_H
#define ROAM_CKPT_VMSTORE_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "checkpoint/vmconfig.h"
#include "image/store.h"
#include "monitor/engine.h"

struct ckpt_create_opts {
	const char *name;
	const char *kernel, *initrd;         /* files to import */
	const char *disks[8];                /* raw disk images to import */
	bool readonly[8];
	int ndisks;
	uint64_t mem;
	int cpus;
	const char *append;
	bool rng;
};

/* Imports the kernel, initrd and disks and makes the first commit (powered
 * off) as vms/NAME/head. -EEXIST when the VM exists. */
int ckpt_vm_create(struct store *s, const struct ckpt_create_opts *o, char *err, size_t errlen);

struct ckpt_run_opts {
	const struct engine_ops *engine;
	int console_in, console_out;
	/* Called with one-line notices for the user (resuming, a previous run
	 * that died, what was saved). May be NULL. */
	void (*notice)(void *arg, const char *msg);
	void *notice_arg;
	/* Take the VM's lease (lease.h) even when another host holds it. */
	bool steal;
};

/* Runs VM NAME of the store at store_path until it stops: boots a powered-off
 * VM, resumes a suspended one. On the guest powering off, the disks are
 * committed as a powered-off state; on suspend, everything is. Returns the
 * VM's exit status (>= 0) or -errno with err set. */
int ckpt_vm_run(const char *store_path, const char *name, const struct ckpt_run_opts *o,
		char *err, size_t errlen);

/* Asks the running VM NAME to "suspend" or "checkpoint" (with tag and
 * message); waits for the reply line, copied to reply. -ESRCH when the VM is
 * not running. */
int ckpt_vm_request(const char *store_path, const char *name, const char *cmd, const char *tag,
		    const char *message, char *reply, size_t replylen);

/* Whether VM NAME is running: 1 (and *pid, host), 0, or -errno. */
int ckpt_vm_running(struct store *s, const char *name, pid_t *pid, char *host, size_t hostlen);

/* Tags the head of a VM that is not running: vms/NAME/checkpoints/TAG. */
int ckpt_vm_tag(struct store *s, const char *name, const char *tag, const char *target,
		char *err, size_t errlen);
int ckpt_vm_untag(struct store *s, const char *name, const char *tag, char *err, size_t errlen);
/* Makes head the commit of checkpoint TAG; the replaced head stays
 * reachable as vms/NAME/replaced/<time>. Refused while the VM runs. */
int ckpt_vm_rollback(struct store *s, const char *name, const char *tag, char *err, size_t errlen);
/* Removes every ref of the VM (objects go at the next gc). */
int ckpt_vm_remove(struct store *s, const char *name, char *err, size_t errlen);
#endif
