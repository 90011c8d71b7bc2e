/* Mode switches of the modes kernel (CPL0, interrupts off):
 * - u32 modes_compat(u32 a): long mode -> 32-bit compatibility mode (code
 *   segment 0x30) -> back. Returns (a - 1) computed with the one-byte DEC
 *   (a REX prefix in 64-bit mode) | (stack push width << 16).
 * - u32 modes_roundtrip(u32 a): long -> compatibility -> legacy protected
 *   mode with paging off (EFER.LME cleared) -> 16-bit protected mode ->
 *   real mode -> 32-bit protected mode -> long mode again (through
 *   rt_pm32_to_long). On the way down, with long mode off, it also turns
 *   on legacy 32-bit paging (4 KiB and 4 MiB pages) and then PAE paging
 *   (4 KiB and 2 MiB pages) with tables modes.c built, accesses memory
 *   through them, and turns paging off again.
 *   The 16-bit part is copied to MODES_ADDR by C first.
 *   Results land in modes_pm32_mark and the blob's data words. */

#define MODES_ADDR 0x6000
#define KCODE64 0x08
#define KDATA   0x10
#define KCODE32 0x30
#define KCODE16 0x38
#define KDATA16 0x40

	.text
	.code64
	.globl modes_compat, modes_roundtrip, modes_blob, modes_blob_end
	.globl modes_d_arg, modes_d_res, modes_d_width, modes_d_gdtr

modes_compat:
	push %rbx
	push %rbp
	mov %rsp, modes_saved_rsp(%rip)
	mov %edi, %eax
	pushq $KCODE32
	pushq $c32
	lretq
	.code32
c32:
	mov %esp, %edi
	push %eax
	mov %esp, %esi
	pop %eax
	sub %esi, %edi                  /* 4 in 32-bit code */
	.byte 0x48                      /* dec %eax */
	and $0xffff, %eax
	shl $16, %edi
	or %edi, %eax
	pushl $KCODE64
	pushl $c64
	lret
	.code64
c64:
	mov modes_saved_rsp(%rip), %rsp
	pop %rbp
	pop %rbx
	ret

modes_roundtrip:
	push %rbx
	push %rbp
	push %r12
	push %r13
	push %r14
	push %r15
	mov %rsp, modes_saved_rsp(%rip)
	pushq $KCODE32
	pushq $rt_pm32
	lretq

	.code32
rt_pm32:
	mov %cr0, %eax
	and $0x7fffffff, %eax           /* paging off: leaves long mode */
	mov %eax, %cr0
	mov $0xc0000080, %ecx
	rdmsr
	and $~0x100, %eax               /* EFER.LME off */
	wrmsr
	mov $KDATA, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	movl $0x32323232, modes_pm32_mark
	mov %cr0, %eax
	mov %eax, modes_pm32_cr0
	/* legacy 32-bit paging, 4 MiB (PSE) and 4 KiB pages (tables from C) */
	mov %cr4, %eax
	and $~0x20, %eax
	or $0x10, %eax
	mov %eax, %cr4
	mov $modes_pd32, %eax
	mov %eax, %cr3
	mov %cr0, %eax
	or $0x80000000, %eax
	mov %eax, %cr0
	movl $0x11223344, 0x40000000    /* 4 KiB page -> modes_page1 */
	mov 0x80000000 + modes_pm32_mark, %eax   /* 4 MiB page at 2 GiB -> 0 */
	mov %eax, modes_pse_read
	mov %cr0, %eax
	and $0x7fffffff, %eax
	mov %eax, %cr0
	/* PAE paging without long mode */
	mov %cr4, %eax
	or $0x20, %eax
	mov %eax, %cr4
	mov $modes_pdpt, %eax
	mov %eax, %cr3
	mov %cr0, %eax
	or $0x80000000, %eax
	mov %eax, %cr0
	movl $0x55667788, 0x40000000    /* 4 KiB page -> modes_page2 */
	mov 0x40200000 + 0x7020, %eax   /* 2 MiB page at 1 GiB + 2 MiB -> 0 */
	mov %eax, modes_pae_read
	mov %cr0, %eax
	and $0x7fffffff, %eax
	mov %eax, %cr0
	ljmp $KCODE16, $(MODES_ADDR + m_pm16 - modes_blob)

/* ---- copied to MODES_ADDR; position-dependent on that address ---- */
	.code16
	.align 16
modes_blob:
m_pm16:
	mov $KDATA16, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov $(MODES_ADDR + 0xff0), %sp
	mov %cr0, %eax
	and $~1, %eax                   /* PE off */
	mov %eax, %cr0
	ljmp $(MODES_ADDR >> 4), $(m_real - modes_blob)
m_real:
	mov %cs, %ax
	mov %ax, %ds
	mov %ax, %ss
	mov $0xff0, %sp
	mov $0x0700, %ax
	mov %ax, %es
	movw $0xbeef, %es:0x10          /* physical 0x7010 */
	mov %sp, %bx
	push %ax
	sub %sp, %bx                    /* 2: 16-bit push */
	pop %ax
	mov %bx, (modes_d_width - modes_blob)
	movl (modes_d_arg - modes_blob), %eax
	add $0x1234, %ax                /* 16-bit wrap, upper half kept */
	movl %eax, (modes_d_res - modes_blob)
	lgdtl (modes_d_gdtr - modes_blob)
	mov %cr0, %eax
	or $1, %eax
	mov %eax, %cr0
	ljmpl $KCODE32, $m_back32
	.align 4
modes_d_arg:	.long 0
modes_d_res:	.long 0
modes_d_width:	.long 0
	.align 4
	.word 0
modes_d_gdtr:	.word 0
		.long 0
modes_blob_end:

	.code32
m_back32:
	mov $KDATA, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	movl $m_back64, pm32_target
	jmp rt_pm32_to_long

	.code64
m_back64:
	mov modes_saved_rsp(%rip), %rsp
	mov $KDATA, %ax
	mov %ax, %ss
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %rbp
	pop %rbx
	movl modes_d_res - modes_blob + MODES_ADDR, %eax
	ret

	.data
	.align 8
	.globl modes_pm32_mark, modes_pm32_cr0, modes_pse_read, modes_pae_read
modes_saved_rsp: .quad 0
modes_pse_read: .long 0
modes_pae_read: .long 0
modes_pm32_mark: .long 0
modes_pm32_cr0: .long 0

	.section .note.GNU-stack, "", @progbits
