/* roam boot: run a transient VM (no store) from a kernel file, console on
 * stdin/stdout. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/cli.h"
#include "monitor/vm.h"

static const char usage[] =
	"usage: roam boot KERNEL [options]\n"
	"Runs a transient VM (nothing is saved) with the console on this terminal.\n"
	"KERNEL is a Linux bzImage or a multiboot ELF kernel.\n\n"
	"  --initrd FILE        initial ramdisk (Linux)\n"
	"  --disk FILE[,ro]     raw disk image as a virtio-blk device (repeatable)\n"
	"  --mem SIZE           guest memory, e.g. 512M, 2G (default 512M)\n"
	"  --cpus N             virtual CPUs, 1-8 (default 1)\n"
	"  --append STR         kernel command line\n"
	"  --engine E           auto, kvm or bt (default auto)\n"
	"  --no-rng             no virtio-rng device\n\n"
	"Exit status: 0 when the guest powers off or reboots; (v<<1)|1 when it\n"
	"writes v to the debug-exit port 0xf4; 1 on errors.\n"
	"On a terminal, Ctrl-A x quits.\n";

/* Total host RAM in bytes, or 0 when unknown. */
static unsigned long long host_ram(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	return pages > 0 && psz > 0 ? (unsigned long long)pages * (unsigned long long)psz : 0;
}

static int check_readable(const char *what, const char *path)
{
	if (access(path, R_OK) < 0)
		return cli_error("cannot read %s %s: %s", what, path, strerror(errno));
	return 0;
}

static int run_boot(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "initrd", required_argument, NULL, 'i' },
		{ "disk", required_argument, NULL, 'd' },
		{ "mem", required_argument, NULL, 'm' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "append", required_argument, NULL, 'a' },
		{ "engine", required_argument, NULL, 'e' },
		{ "no-rng", no_argument, NULL, 'R' },
		{ 0 }
	};
	struct vm_config cfg = { .mem_size = 512ULL << 20, .ncpus = 1, .rng = true,
				 .console_in = 0, .console_out = 1 };
	const char *engine = "auto";
	char *diskspec[VM_MAX_DISKS] = { 0 };
	int c, rc = 1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		unsigned long long v;
		char *end;
		switch (c) {
		case 'i': cfg.initrd = optarg; break;
		case 'a': cfg.append = optarg; break;
		case 'e': engine = optarg; break;
		case 'R': cfg.rng = false; break;
		case 'm':
			if (cli_parse_size(optarg, &v) < 0 || v < (16ULL << 20) || v % 4096) {
				rc = cli_error("--mem %s: give a size of at least 16M in whole pages, e.g. 512M", optarg);
				goto out;
			}
			cfg.mem_size = v;
			break;
		case 'c':
			errno = 0;
			v = strtoull(optarg, &end, 10);
			if (errno || *end || v < 1 || v > VM_MAX_CPUS) {
				rc = cli_error("--cpus %s: give a number from 1 to %d", optarg, VM_MAX_CPUS);
				goto out;
			}
			cfg.ncpus = (int)v;
			break;
		case 'd': {
			if (cfg.ndisks >= VM_MAX_DISKS) {
				rc = cli_error("at most %d disks", VM_MAX_DISKS);
				goto out;
			}
			char *spec = strdup(optarg);
			if (!spec) {
				rc = cli_error("out of memory");
				goto out;
			}
			diskspec[cfg.ndisks] = spec;
			char *comma = strrchr(spec, ',');
			bool ro = false;
			if (comma && !strcmp(comma, ",ro")) {
				*comma = 0;
				ro = true;
			}
			cfg.disks[cfg.ndisks++] = (struct vm_disk){ .path = spec, .readonly = ro };
			break;
		}
		default:
			fputs(usage, stderr);
			rc = 2;
			goto out;
		}
	}
	if (optind != argc - 1) {
		rc = cli_error("boot needs exactly one KERNEL file; 'roam boot --help' shows the options");
		goto out;
	}
	cfg.kernel = argv[optind];
	if (check_readable("kernel", cfg.kernel) || (cfg.initrd && check_readable("initrd", cfg.initrd)))
		goto out;
	for (int i = 0; i < cfg.ndisks; i++)
		if (access(cfg.disks[i].path, cfg.disks[i].readonly ? R_OK : R_OK | W_OK) < 0) {
			rc = cli_error("cannot open disk %s%s: %s", cfg.disks[i].path,
				       cfg.disks[i].readonly ? "" : " for writing", strerror(errno));
			goto out;
		}
	unsigned long long ram = host_ram();
	if (ram && cfg.mem_size > ram) {
		rc = cli_error("--mem %lluM is more than this host's %lluM of RAM",
			       (unsigned long long)(cfg.mem_size >> 20), ram >> 20);
		goto out;
	}
	const char *note = NULL, *why = NULL;
	if (engine_select(engine, &cfg.engine, &note, &why) < 0) {
		rc = cli_error("engine %s: %s", engine, why ? why : "not available");
		goto out;
	}
	if (note)
		fprintf(stderr, "roam: %s\n", note);

	char err[512] = "";
	struct vm *vm;
	if (vm_new(&cfg, &vm, err, sizeof(err)) < 0) {
		rc = cli_error("%s", err);
		goto out;
	}
	if (vm_boot(vm, err, sizeof(err)) < 0) {
		rc = cli_error("%s", err);
		vm_free(vm);
		goto out;
	}
	rc = vm_run(vm);
	if (atomic_load(&vm->stop) == VM_STOP_ERROR)
		cli_error("%s", vm->error[0] ? vm->error : "the VM failed");
	vm_free(vm);
out:
	for (int i = 0; i < VM_MAX_DISKS; i++)
		free(diskspec[i]);
	return rc;
}

CLI_COMMAND(cmd_boot) = {
	.name = "boot",
	.summary = "run a transient VM from a kernel file (no store)",
	.usage = usage,
	.run = run_boot,
};
