/* Native side of the differential test: a forked child maps code, data and
 * stack at the fixed addresses, loads every register from a control block,
 * jumps to the sequence, and stores every register back when the sequence
 * jumps to the exit stub. Faults are caught with their vector (trap
 * number), RIP and registers from the signal context. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>
#include "tests/unit/bt_isa/isa_test.h"

_Static_assert(offsetof(struct isa_state, rflags) == 0x80, "layout");
_Static_assert(offsetof(struct isa_state, mxcsr) == 0x88, "layout");
_Static_assert(offsetof(struct isa_state, xmm) == 0x90, "layout");
#define CTL_HOSTRSP 0x200
#define CTL_EXIT 0x208
#define CTL_CODE 0x210

void isa_native_enter(void);
void isa_native_exit(void);

#define X(k) "movdqu 0x1040090+16*" #k ", %xmm" #k "\n"
#define Y(k) "movdqu %xmm" #k ", 0x1040090+16*" #k "\n"
__asm__(
	".text\n.globl isa_native_enter\n.type isa_native_enter,@function\nisa_native_enter:\n"
	"push %rbx\npush %rbp\npush %r12\npush %r13\npush %r14\npush %r15\n"
	"mov %rsp, 0x1040200\n"
	X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
	"ldmxcsr 0x1040088\n"
	"fninit\n"
	"pushq 0x1040080\npopfq\n"
	"mov 0x1040000, %rax\nmov 0x1040008, %rcx\nmov 0x1040010, %rdx\nmov 0x1040018, %rbx\n"
	"mov 0x1040028, %rbp\nmov 0x1040030, %rsi\nmov 0x1040038, %rdi\nmov 0x1040040, %r8\n"
	"mov 0x1040048, %r9\nmov 0x1040050, %r10\nmov 0x1040058, %r11\nmov 0x1040060, %r12\n"
	"mov 0x1040068, %r13\nmov 0x1040070, %r14\nmov 0x1040078, %r15\nmov 0x1040020, %rsp\n"
	"jmp *0x1040210\n"
	".globl isa_native_exit\n.type isa_native_exit,@function\nisa_native_exit:\n"
	"mov %rax, 0x1040000\nmov %rcx, 0x1040008\nmov %rdx, 0x1040010\nmov %rbx, 0x1040018\n"
	"mov %rsp, 0x1040020\nmov %rbp, 0x1040028\nmov %rsi, 0x1040030\nmov %rdi, 0x1040038\n"
	"mov %r8, 0x1040040\nmov %r9, 0x1040048\nmov %r10, 0x1040050\nmov %r11, 0x1040058\n"
	"mov %r12, 0x1040060\nmov %r13, 0x1040068\nmov %r14, 0x1040070\nmov %r15, 0x1040078\n"
	"mov 0x1040200, %rsp\n"
	"pushfq\npopq 0x1040080\ncld\n"
	Y(0) Y(1) Y(2) Y(3) Y(4) Y(5) Y(6) Y(7) Y(8) Y(9) Y(10) Y(11) Y(12) Y(13) Y(14) Y(15)
	"stmxcsr 0x1040088\n"
	"pushq $0x1f80\nldmxcsr (%rsp)\naddq $8, %rsp\n"
	"fninit\n"
	"pop %r15\npop %r14\npop %r13\npop %r12\npop %rbp\npop %rbx\nret\n");

static sigjmp_buf fault_env;
static struct isa_state fault_state;

static void on_fault(int sig, siginfo_t *si, void *uctx)
{
	(void)sig;
	(void)si;
	ucontext_t *uc = uctx;
	greg_t *gr = uc->uc_mcontext.gregs;
	static const int map[16] = { REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI,
				     REG_RDI, REG_R8, REG_R9, REG_R10, REG_R11, REG_R12, REG_R13,
				     REG_R14, REG_R15 };
	for (int k = 0; k < 16; k++)
		fault_state.r[k] = (uint64_t)gr[map[k]];
	fault_state.rflags = (uint64_t)gr[REG_EFL];
	fault_state.fault_rip = (uint64_t)gr[REG_RIP];
	fault_state.fault = (int)gr[REG_TRAPNO];
	if (fault_state.fault == 0 && sig == SIGFPE && si->si_code != FPE_INTDIV && si->si_code != FPE_INTOVF)
		fault_state.fault = 19;
	if (uc->uc_mcontext.fpregs) {
		memcpy(fault_state.xmm, uc->uc_mcontext.fpregs->_xmm, sizeof(fault_state.xmm));
		fault_state.mxcsr = uc->uc_mcontext.fpregs->mxcsr;
	}
	siglongjmp(fault_env, 1);
}

static int child(const struct isa_case *t, int n, struct isa_state *out,
		 uint8_t (*data)[ISA_DATA_SIZE], uint8_t (*stack)[ISA_STACK_SIZE])
{
	static uint8_t altstack[65536];
	stack_t ss = { .ss_sp = altstack, .ss_size = sizeof(altstack) };
	if (sigaltstack(&ss, NULL))
		return 10;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	int sigs[] = { SIGSEGV, SIGFPE, SIGILL, SIGBUS, SIGTRAP };
	for (unsigned k = 0; k < 5; k++)
		if (sigaction(sigs[k], &sa, NULL))
			return 11;
	const struct { uint64_t a, n; } regions[] = {
		{ ISA_DATA, ISA_DATA_SIZE }, { ISA_CODE, ISA_CODE_SIZE },
		{ ISA_STACK, ISA_STACK_SIZE }, { ISA_CTL, 0x1000 },
	};
	for (unsigned k = 0; k < 4; k++) {
		void *p = mmap((void *)regions[k].a, regions[k].n, PROT_READ | PROT_WRITE | PROT_EXEC,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (p != (void *)regions[k].a)
			return 12;
	}
	uint8_t *ctl = (uint8_t *)ISA_CTL;
	uint64_t exitp = (uint64_t)(uintptr_t)isa_native_exit, codep = ISA_CODE;
	memcpy(ctl + CTL_EXIT, &exitp, 8);
	memcpy(ctl + CTL_CODE, &codep, 8);
	for (int k = 0; k < n; k++) {
		uint8_t *code = (uint8_t *)ISA_CODE;
		memcpy(code, t[k].code, t[k].len);
		uint8_t jmp[7] = { 0xff, 0x24, 0x25 };
		uint32_t a = (uint32_t)(ISA_CTL + CTL_EXIT);
		memcpy(jmp + 3, &a, 4);
		memcpy(code + t[k].len, jmp, 7);
		__builtin___clear_cache((char *)code, (char *)code + t[k].len + 7);
		memcpy((void *)ISA_DATA, t[k].data, ISA_DATA_SIZE);
		memcpy((void *)ISA_STACK, t[k].stack, ISA_STACK_SIZE);
		memcpy(ctl, &t[k].in, sizeof(struct isa_state));
		if (sigsetjmp(fault_env, 1) == 0) {
			isa_native_enter();
			memcpy(&out[k], ctl, sizeof(struct isa_state));
			out[k].fault = -1;
		} else {
			out[k] = fault_state;
		}
		memcpy(data[k], (void *)ISA_DATA, ISA_DATA_SIZE);
		memcpy(stack[k], (void *)ISA_STACK, ISA_STACK_SIZE);
	}
	return 0;
}

int isa_native(const struct isa_case *t, int n, struct isa_state *out,
	       uint8_t (*data)[ISA_DATA_SIZE], uint8_t (*stack)[ISA_STACK_SIZE])
{
	size_t bytes = (size_t)n * (sizeof(*out) + ISA_DATA_SIZE + ISA_STACK_SIZE);
	uint8_t *sh = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return -errno;
	struct isa_state *so = (struct isa_state *)sh;
	uint8_t (*sd)[ISA_DATA_SIZE] = (void *)(sh + (size_t)n * sizeof(*out));
	uint8_t (*ss)[ISA_STACK_SIZE] = (void *)(sh + (size_t)n * (sizeof(*out) + ISA_DATA_SIZE));
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		munmap(sh, bytes);
		return -errno;
	}
	if (pid == 0)
		_exit(child(t, n, so, sd, ss));
	int st;
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		munmap(sh, bytes);
		return -EIO;
	}
	memcpy(out, so, (size_t)n * sizeof(*out));
	memcpy(data, sd, (size_t)n * ISA_DATA_SIZE);
	memcpy(stack, ss, (size_t)n * ISA_STACK_SIZE);
	munmap(sh, bytes);
	return 0;
}
