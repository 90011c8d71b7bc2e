/* Kernel entry and exit paths of the test-kernel runtime: the 256 IDT stubs
 * and their common path (SWAPGS when coming from CPL3), the SYSCALL entry
 * (returns with SYSRET), entering user mode with IRETQ and leaving it again,
 * and the CPL3-side helpers that issue SYSCALL and int 0x80. Every path
 * builds a struct rt_frame and calls rt_trap() in cpu.c. */

#define PC_RSP0    8
#define PC_SCRATCH 16
#define PC_KCTX    24
#define PC_TSS     32

	.text
	.code64

/* 16-byte stubs: rt_isr_stubs + 16 * vector */
	.align 16
	.globl rt_isr_stubs
rt_isr_stubs:
	.set vec, 0
	.rept 256
	.align 16
	.if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	.else
	pushq $0
	.endif
	pushq $vec
	jmp isr_common
	.set vec, vec + 1
	.endr

.macro PUSH_GPRS
	push %rax
	push %rbx
	push %rcx
	push %rdx
	push %rsi
	push %rdi
	push %rbp
	push %r8
	push %r9
	push %r10
	push %r11
	push %r12
	push %r13
	push %r14
	push %r15
.endm
.macro POP_GPRS
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %r11
	pop %r10
	pop %r9
	pop %r8
	pop %rbp
	pop %rdi
	pop %rsi
	pop %rdx
	pop %rcx
	pop %rbx
	pop %rax
.endm

isr_common:
	testb $3, 24(%rsp)              /* CS of the interrupted context */
	jz 1f
	swapgs
1:	PUSH_GPRS
	cld
	mov %rsp, %rdi
	call rt_trap
	POP_GPRS
	testb $3, 24(%rsp)
	jz 2f
	swapgs
2:	add $16, %rsp
	iretq

	.globl rt_syscall_entry
rt_syscall_entry:
	swapgs
	mov %rsp, %gs:PC_SCRATCH
	mov %gs:PC_RSP0, %rsp
	pushq $0x23                     /* user SS */
	pushq %gs:PC_SCRATCH            /* user RSP */
	push %r11                       /* user RFLAGS */
	pushq $0x2b                     /* user CS */
	push %rcx                       /* user RIP */
	pushq $0
	pushq $0x100                    /* RT_VEC_SYSCALL */
	PUSH_GPRS
	cld
	mov %rsp, %rdi
	call rt_trap
	POP_GPRS
	add $16, %rsp
	pop %rcx
	add $8, %rsp
	pop %r11
	pop %rsp
	swapgs
	sysretq

/* u64 rt_user_enter(u64 fn, u64 arg, u64 user_rsp, u64 rflags) */
	.globl rt_user_enter
rt_user_enter:
	push %rbx
	push %rbp
	push %r12
	push %r13
	push %r14
	push %r15
	pushfq
	cli
	mov %rsp, %gs:PC_KCTX
	mov %rsp, %rax
	and $-16, %rax
	mov %rax, %gs:PC_RSP0
	mov %gs:PC_TSS, %r8
	mov %rax, 4(%r8)                /* TSS.RSP0 */
	pushq $0x23
	push %rdx
	push %rcx
	pushq $0x2b
	push %rdi
	mov %rsi, %rdi
	xor %eax, %eax
	xor %ebx, %ebx
	xor %ecx, %ecx
	xor %edx, %edx
	xor %esi, %esi
	xor %ebp, %ebp
	xor %r8d, %r8d
	xor %r9d, %r9d
	xor %r10d, %r10d
	xor %r11d, %r11d
	xor %r12d, %r12d
	xor %r13d, %r13d
	xor %r14d, %r14d
	xor %r15d, %r15d
	swapgs
	iretq

/* void rt_user_leave(u64 value): from a trap handler (kernel GS) */
	.globl rt_user_leave
rt_user_leave:
	mov %rdi, %rax
	mov %gs:PC_KCTX, %rsp
	popfq
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %rbp
	pop %rbx
	ret

/* CPL3: where a user function returns to */
	.globl rt_user_return
rt_user_return:
	mov %rax, %rdi
	xor %eax, %eax                  /* SYS_EXIT */
	syscall
	ud2

/* u64 rt_syscall(u64 nr, u64 a, u64 b, u64 c) from CPL3 */
	.globl rt_syscall, rt_int80
rt_syscall:
	mov %rdi, %rax
	mov %rsi, %rdi
	mov %rdx, %rsi
	mov %rcx, %rdx
	syscall
	ret
rt_int80:
	mov %rdi, %rax
	mov %rsi, %rdi
	mov %rdx, %rsi
	mov %rcx, %rdx
	int $0x80
	ret

	.section .note.GNU-stack, "", @progbits
