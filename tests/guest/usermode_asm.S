/* CPL3 snippets of the usermode kernel: they check register semantics of
 * SYSCALL/SYSRET that C cannot see. */
	.text
	.code64
	.globl u_cs, u_syscall_regs, u_sysret_df, u_gs_read, u_exit_int80

u_cs:
	mov %cs, %eax
	movzwl %ax, %eax
	ret

/* returns 0, or 1 RCX wrong, 2 R11 wrong, 3 callee-saved clobbered, 4 RAX */
u_syscall_regs:
	push %rbx
	push %rbp
	push %r12
	push %r13
	push %r14
	push %r15
	mov $0x1111111111111111, %rbx
	mov $0x2222222222222222, %rbp
	mov $0x3333333333333333, %r12
	mov $0x4444444444444444, %r13
	mov $0x5555555555555555, %r14
	mov $0x6666666666666666, %r15
	mov $2, %eax                    /* SYS_ADD3 */
	mov $1, %edi
	mov $2, %esi
	mov $3, %edx
	pushfq
	pop %r8
	syscall
1:	lea 1b(%rip), %r9
	mov $1, %r10d
	cmp %r9, %rcx
	jne 9f
	mov $2, %r10d
	cmp %r8, %r11
	jne 9f
	mov $3, %r10d
	mov $0x1111111111111111, %r9
	cmp %r9, %rbx
	jne 9f
	mov $0x2222222222222222, %r9
	cmp %r9, %rbp
	jne 9f
	mov $0x3333333333333333, %r9
	cmp %r9, %r12
	jne 9f
	mov $0x4444444444444444, %r9
	cmp %r9, %r13
	jne 9f
	mov $0x5555555555555555, %r9
	cmp %r9, %r14
	jne 9f
	mov $0x6666666666666666, %r9
	cmp %r9, %r15
	jne 9f
	mov $4, %r10d
	cmp $6, %rax
	jne 9f
	xor %r10d, %r10d
9:	mov %r10, %rax
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %rbp
	pop %rbx
	ret

u_sysret_df:
	std
	mov $2, %eax
	xor %edi, %edi
	xor %esi, %esi
	xor %edx, %edx
	syscall
	pushfq
	pop %rax
	cld
	ret

u_gs_read:
	mov %gs:0, %rax
	ret

u_exit_int80:
	xor %eax, %eax                  /* SYS_EXIT, value in rdi */
	int $0x80
	ud2

/* u64 u_sse_fx(u64 buf): buf 16-byte aligned, 1024 bytes: [0,512) FXSAVE
 * area, [512,768) XMM dump after FXRSTOR, [768,1024) input patterns. */
	.globl u_sse_fx
u_sse_fx:
	.irp r, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	movdqu 768+16*\r(%rdi), %xmm\r
	.endr
	paddd %xmm0, %xmm1
	fxsave (%rdi)
	.irp r, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	pxor %xmm\r, %xmm\r
	.endr
	fxrstor (%rdi)
	.irp r, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	movdqu %xmm\r, 512+16*\r(%rdi)
	.endr
	xor %eax, %eax
	ret

	.section .note.GNU-stack, "", @progbits
