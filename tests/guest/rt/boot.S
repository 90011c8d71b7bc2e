/* Boot stub of the test kernels: the Multiboot v1 header, the 32-bit entry,
 * the GDT, the identity page tables (0..4 GiB, 2 MiB pages, user-accessible,
 * built at assembly time so the stub runs few instructions), the
 * protected -> long mode switch shared by the BSP, the APs and the modes
 * kernel, and the 16-bit AP trampoline copied below 1 MiB by smp.c. */

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003          /* page-align modules, memory info */

#define KCODE64 0x08
#define KDATA   0x10
#define KCODE32 0x30

	.section .multiboot, "a"
	.align 4
	.long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

/* ---------------------------------------------------------------- 32-bit */
	.section .text.boot, "ax"
	.code32
	.globl _start
_start:
	cli
	cld
	mov %eax, rt_mb_magic
	mov %ebx, rt_mb_info
	lgdt gdt_ptr
	ljmp $KCODE32, $1f
1:	mov $KDATA, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov %ax, %fs
	mov %ax, %gs
	mov $boot_stack_top, %esp
	/* zero .bss (stacks included) */
	mov $__bss_start, %edi
	mov $__bss_end, %ecx
	sub %edi, %ecx
	shr $2, %ecx
	xor %eax, %eax
	rep stosl
	movl $bsp_entry64, pm32_target
	jmp rt_pm32_to_long

/* Entered in 32-bit protected mode, paging off, flat segments, IF=0: turns
 * on PAE, the identity page tables, EFER.LME/SCE(/NXE when the CPU has NX)
 * and paging, then jumps to the 64-bit address in pm32_target. */
	.globl rt_pm32_to_long
rt_pm32_to_long:
	mov %cr4, %eax
	or $0x20, %eax                  /* PAE */
	mov %eax, %cr4
	mov $boot_pml4, %eax
	mov %eax, %cr3
	mov $0x80000001, %eax
	cpuid
	mov $0x101, %esi                /* SCE | LME */
	bt $20, %edx
	jnc 2f
	or $0x800, %esi                 /* NXE */
2:	mov $0xc0000080, %ecx
	rdmsr
	or %esi, %eax
	wrmsr
	mov %cr0, %eax
	and $0x9fffffff, %eax           /* caches on */
	or $0x80010001, %eax            /* PG | WP | PE */
	mov %eax, %cr0
	ljmp $KCODE64, $long_entry

/* ---------------------------------------------------------------- 64-bit */
	.code64
long_entry:
	mov $KDATA, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	xor %eax, %eax
	mov %ax, %fs
	mov %ax, %gs
	mov pm32_target, %eax
	jmp *%rax

bsp_entry64:
	mov $boot_stack_top, %rsp
	xor %ebp, %ebp
	mov rt_mb_magic, %edi
	mov rt_mb_info, %esi
	call rt_start
3:	cli
	hlt
	jmp 3b

/* ------------------------------------------------- AP trampoline (16-bit)
 * smp.c copies [rt_tramp_start, rt_tramp_end) to RT_TRAMP_ADDR (page
 * aligned, below 1 MiB) and starts the AP there with CS = RT_TRAMP_ADDR>>4,
 * IP = 0. It loads the kernel GDT (rt_tramp_gdtr is patched with its
 * address) and enters 32-bit protected mode at rt_ap_entry32. */
	.code16
	.globl rt_tramp_start, rt_tramp_end, rt_tramp_gdtr
rt_tramp_start:
	cli
	cld
	mov %cs, %ax
	mov %ax, %ds
	lgdtl rt_tramp_gdtr - rt_tramp_start
	mov %cr0, %eax
	or $1, %eax
	mov %eax, %cr0
	ljmpl $KCODE32, $rt_ap_entry32
	.align 8
rt_tramp_gdtr:
	.word gdt_end - gdt - 1
	.long gdt
rt_tramp_end:

	.code32
rt_ap_entry32:
	mov $KDATA, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	movl $ap_entry64, pm32_target
	jmp rt_pm32_to_long

	.code64
ap_entry64:
	mov rt_ap_stack, %rsp
	xor %ebp, %ebp
	call rt_ap_start
4:	cli
	hlt
	jmp 4b

/* ------------------------------------------------------------------- data */
	.data
	.globl rt_mb_magic, rt_mb_info, pm32_target, rt_ap_stack, gdt, gdt_ptr
	.align 8
rt_mb_magic:	.long 0
rt_mb_info:	.long 0
pm32_target:	.quad 0
rt_ap_stack:	.quad 0

	.align 16
gdt:
	.quad 0                         /* 0x00 */
	.quad 0x00af9a000000ffff        /* 0x08 kernel code 64 */
	.quad 0x00cf92000000ffff        /* 0x10 kernel data */
	.quad 0x00cffa000000ffff        /* 0x18 user code 32 (SYSRET base) */
	.quad 0x00cff2000000ffff        /* 0x20 user data */
	.quad 0x00affa000000ffff        /* 0x28 user code 64 */
	.quad 0x00cf9a000000ffff        /* 0x30 kernel code 32 */
	.quad 0x00009a000000ffff        /* 0x38 kernel code 16, base 0 */
	.quad 0x000092000000ffff        /* 0x40 kernel data 16, base 0 */
	.fill 16, 8, 0                  /* 0x48: 8 TSS descriptors (16 bytes) */
gdt_end:
	.align 8
	.word 0, 0, 0
gdt_ptr:
	.word gdt_end - gdt - 1
	.quad gdt

/* Identity map 0..4 GiB with 2 MiB pages: P|W|U|PS; the top GiB (APIC,
 * PCI MMIO) uncached. */
	.section .data.pagetables, "aw"
	.align 4096
	.globl boot_pml4, boot_pdpt, boot_pd
boot_pml4:
	.quad boot_pdpt + 0x7
	.fill 511, 8, 0
boot_pdpt:
	.quad boot_pd + 0x7
	.quad boot_pd + 0x1000 + 0x7
	.quad boot_pd + 0x2000 + 0x7
	.quad boot_pd + 0x3000 + 0x7
	.fill 508, 8, 0
boot_pd:
	.set i, 0
	.rept 1536
	.quad (i << 21) | 0x87
	.set i, i + 1
	.endr
	.rept 512
	.quad (i << 21) | 0x9f
	.set i, i + 1
	.endr

	.bss
	.align 16
boot_stack:
	.skip 16384
boot_stack_top:
	.globl boot_stack_top

	.section .note.GNU-stack, "", @progbits
