/* Faulting snippets of the exceptions kernel. Each records where it will
 * fault (x_fault_rip), arms the resume point and stack for the trap
 * handler (rt_catch_resume/rt_catch_rsp), runs its setup and then the one
 * instruction expected to trap; the handler resumes at label 8. Callable
 * at CPL0 or CPL3; argument in %rdi. Return value: 0 when the instruction
 * completed without a trap. */
	.text
	.code64

.macro SNIP name, setup, insn
	.globl \name
\name:
	push %rbx
	lea 8f(%rip), %rax
	mov %rax, rt_catch_resume(%rip)
	mov %rsp, rt_catch_rsp(%rip)
	lea 9f(%rip), %rax
	mov %rax, x_fault_rip(%rip)
	\setup
9:	\insn
	xor %eax, %eax
	pop %rbx
	ret
8:	mov $1, %eax
	pop %rbx
	ret
.endm

SNIP x_de, "xor %ecx, %ecx; mov $7, %eax; xor %edx, %edx", "div %ecx"
SNIP x_de_idiv, "mov $0x8000000000000000, %rax; mov $-1, %rcx; cqo", "idiv %rcx"
SNIP x_ud, "", "ud2"
SNIP x_gp_sel, "mov $0xfffb, %eax", "mov %eax, %ds"
SNIP x_gp_noncanon, "mov $0x8000000000000000, %rbx", "mov (%rbx), %rax"
SNIP x_gp_priv, "", "mov %cr0, %rax"
SNIP x_gp_intgate, "", "int $0x0d"
SNIP x_bp, "", "int3"
SNIP x_db_step, "pushfq; orq $0x100, (%rsp); popfq", "nop"
SNIP x_ss, "mov $0x8000000000000000, %rsp", "push %rax"
SNIP x_nm, "", "fninit"
SNIP x_rdmsr, "mov $0xdeadbeef, %ecx", "rdmsr"
SNIP x_read, "", "mov (%rdi), %al"
SNIP x_write, "", "movb $1, (%rdi)"
SNIP x_exec, "", "call *%rdi"

	.data
	.globl x_fault_rip
x_fault_rip: .quad 0

	.section .note.GNU-stack, "", @progbits
