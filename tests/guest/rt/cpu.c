/* CPU tables and traps of the test kernels: per-CPU data (reached through
 * GS), TSS and its GDT descriptor, the IDT, the SYSCALL MSRs, the C side of
 * every trap (rt_trap), the expected-trap catcher used by the exception
 * tests, the default exception report, and rt_user_call. */
#include "rt.h"

struct tss {
	u32 res0;
	u64 rsp[3];
	u64 res1;
	u64 ist[7];
	u64 res2;
	u16 res3, iomap;
} __attribute__((packed));

struct idt_entry {
	u16 off0, sel;
	u8 ist, attr;
	u16 off1;
	u32 off2, res;
} __attribute__((packed));

extern u64 gdt[];
extern char rt_isr_stubs[], rt_syscall_entry[], rt_user_return[];
extern char boot_stack_top[];

static struct idt_entry idt[256] __attribute__((aligned(16)));
static rt_handler_t handlers[256];
static struct rt_cpu cpu0;
static struct tss tss0 __attribute__((aligned(16)));
struct rt_cpu *rt_cpus[RT_MAX_CPUS];
volatile int rt_ncpus_online;
rt_handler_t rt_syscall_hook;

volatile struct rt_caught rt_caught;
volatile u64 rt_catch_armed, rt_catch_resume, rt_catch_rsp;

static const char *const exc_names[32] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO",
	"#TS", "#NP", "#SS", "#GP", "#PF", "res15", "#MF", "#AC", "#MC", "#XM",
	"#VE", "#CP", "res22", "res23", "res24", "res25", "res26", "res27",
	"#HV", "#VC", "#SX", "res31",
};

struct rt_cpu *rt_cpu(void)
{
	struct rt_cpu *c;
	__asm__ volatile("mov %%gs:0, %0" : "=r"(c));
	return c;
}

static void set_gate(int vec, int dpl, int ist)
{
	u64 a = (u64)rt_isr_stubs + 16 * vec;
	idt[vec] = (struct idt_entry){
		.off0 = (u16)a, .sel = SEL_KCODE64, .ist = (u8)ist,
		.attr = (u8)(0x8e | (dpl << 5)), .off1 = (u16)(a >> 16),
		.off2 = (u32)(a >> 32), .res = 0,
	};
}

static void load_idt(void)
{
	struct { u16 lim; u64 base; } __attribute__((packed)) r = { sizeof(idt) - 1, (u64)idt };
	__asm__ volatile("lidt %0" :: "m"(r));
}

/* TSS descriptor, TR, GS bases and SYSCALL MSRs for the calling CPU. */
static void cpu_setup(struct rt_cpu *c, struct tss *t)
{
	u64 base = (u64)t;
	int slot = SEL_TSS(c->index) / 8;
	memset(t, 0, sizeof(*t));
	t->iomap = sizeof(*t);
	t->rsp[0] = c->kstack_top;
	t->ist[0] = (u64)rt_alloc(8192, 16, false) + 8192;   /* #DF, NMI, #MC */
	c->ist_top = t->ist[0];
	gdt[slot] = (sizeof(*t) - 1) | ((base & 0xffffff) << 16) | (0x89ULL << 40) |
		    (((base >> 24) & 0xff) << 56);
	gdt[slot + 1] = base >> 32;
	c->tss = base;
	c->rsp0 = c->kstack_top;
	__asm__ volatile("ltr %w0" :: "r"(SEL_TSS(c->index)));
	wrmsr(MSR_GS_BASE, (u64)c);
	wrmsr(MSR_KERNEL_GS_BASE, 0);
	wrmsr(MSR_STAR, ((u64)0x18 << 48) | ((u64)SEL_KCODE64 << 32));
	wrmsr(MSR_LSTAR, (u64)rt_syscall_entry);
	wrmsr(MSR_FMASK, RFLAGS_IF | RFLAGS_TF | RFLAGS_DF | 0x40000 /* AC */);
	load_idt();
}

struct rt_cpu *rt_cpu_alloc(int idx)
{
	struct rt_cpu *c = rt_alloc(sizeof(*c), 64, true);
	c->self = (u64)c;
	c->index = idx;
	c->kstack_top = (u64)rt_alloc(32768, 16, false) + 32768;
	c->ustack_top = (u64)rt_alloc(65536, 16, false) + 65536;
	return c;
}

void rt_cpu_init_ap(struct rt_cpu *c)
{
	struct tss *t = rt_alloc(sizeof(struct tss), 64, true);
	cpu_setup(c, t);
	rt_cpus[c->index] = c;
}

void rt_cpu_init_bsp(void)
{
	for (int v = 0; v < 256; v++)
		set_gate(v, (v == 3 || v == 4 || v == 0x80) ? 3 : 0, 0);
	idt[2].ist = idt[8].ist = idt[18].ist = 1;
	cpu0.self = (u64)&cpu0;
	cpu0.index = 0;
	cpu0.kstack_top = (u64)boot_stack_top;
	cpu0.ustack_top = (u64)rt_alloc(65536, 16, false) + 65536;
	cpu_setup(&cpu0, &tss0);
	/* Firmware (SeaBIOS under QEMU) may leave the 8259 delivering the PIT
	 * on vector 8; nothing here uses the PIC. */
	rt_pic_disable();
	rt_cpus[0] = &cpu0;
	rt_ncpus_online = 1;
}

void rt_set_handler(int vec, rt_handler_t h)
{
	handlers[vec & 0xff] = h;
}

void rt_idt_present(int vec, bool present)
{
	if (present)
		idt[vec & 0xff].attr |= 0x80;
	else
		idt[vec & 0xff].attr &= 0x7f;
}

void rt_catch_arm(void)
{
	memset((void *)&rt_caught, 0, sizeof(rt_caught));
	rt_catch_resume = 0;
	rt_catch_rsp = 0;
	rt_catch_armed = 1;
}

static void report_exception(struct rt_frame *f)
{
	u64 cr2 = read_cr2();
	rt_printf("EXCEPTION vector=%lu (%s) error=%#lx cr2=%#lx rip=%#lx cs=%#lx rflags=%#lx rsp=%#lx cpu=%u\n",
		  f->vector, f->vector < 32 ? exc_names[f->vector] : "irq", f->error, cr2,
		  f->rip, f->cs, f->rflags, f->rsp, rt_cpu()->index);
	rt_printf("REGS rax=%#lx rbx=%#lx rcx=%#lx rdx=%#lx rsi=%#lx rdi=%#lx rbp=%#lx\n",
		  f->rax, f->rbx, f->rcx, f->rdx, f->rsi, f->rdi, f->rbp);
	rt_panic("unexpected exception %s at rip %#lx", f->vector < 32 ? exc_names[f->vector] : "irq", f->rip);
}

static void syscall_dispatch(struct rt_frame *f)
{
	switch (f->rax) {
	case SYS_EXIT:
		rt_user_leave(f->rdi);
	case SYS_GETCPU:
		f->rax = rt_cpu()->index;
		return;
	case SYS_ADD3:
		f->rax = f->rdi + f->rsi + f->rdx;
		return;
	default:
		if (rt_syscall_hook) {
			rt_syscall_hook(f);
			return;
		}
		f->rax = (u64)-1;
	}
}

void rt_trap(struct rt_frame *f);
void rt_trap(struct rt_frame *f)
{
	u64 v = f->vector;
	if (v == RT_VEC_SYSCALL || v == 0x80) {
		syscall_dispatch(f);
		return;
	}
	if (v < 32 && rt_catch_armed) {
		rt_caught.vector = v;
		rt_caught.error = f->error;
		rt_caught.cr2 = read_cr2();
		rt_caught.rip = f->rip;
		rt_caught.cs = f->cs;
		rt_caught.rflags = f->rflags;
		rt_caught.frame = (u64)f;
		rt_caught.hit = 1;
		rt_catch_armed = 0;
		f->rflags &= ~(u64)RFLAGS_TF;
		if (rt_catch_resume)
			f->rip = rt_catch_resume;
		if (rt_catch_rsp)
			f->rsp = rt_catch_rsp;
		return;
	}
	if (v >= 32)
		rt_cpu()->irqs++;
	if (handlers[v]) {
		handlers[v](f);
		return;
	}
	if (v < 32)
		report_exception(f);
	if (v >= 0x20 && v < 0x30)   /* spurious 8259 interrupt (masked PIC) */
		return;
	if (v == 0xff)               /* LAPIC spurious vector */
		return;
	rt_printf("unexpected interrupt vector %lu on cpu %u\n", v, rt_cpu()->index);
	rt_lapic_eoi();
}

u64 rt_user_call(u64 (*fn)(u64), u64 arg, bool intr)
{
	struct rt_cpu *c = rt_cpu();
	u64 *sp = (u64 *)(c->ustack_top - 24);   /* rsp % 16 == 8 at entry */
	sp[1] = 0;
	sp[0] = (u64)rt_user_return;    /* fn's return address */
	u64 fl = 0x3002 | (intr ? RFLAGS_IF : 0);   /* IOPL 3 */
	return rt_user_enter((u64)fn, arg, (u64)sp, fl);
}
