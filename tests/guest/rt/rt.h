/* Runtime for roam's freestanding test kernels: the one header every kernel
 * includes. Owns the public API of tests/guest/rt/: console and test
 * reporting, command line options, CPU tables and traps, user mode, page
 * tables and the heap, interrupt controllers and timers, PCI, virtio-blk,
 * SMP. See tests/guest/README.md for the contract with the host side.
 *
 * Execution model: the boot stub enters long mode with 0..4 GiB identity
 * mapped by 2 MiB pages, all user-accessible and writable, then calls the
 * kernel's test_main() on the BSP at CPL0 with interrupts off. Kernels do
 * their heavy work in user mode (rt_user_call), which runs with IOPL=3, so
 * user code may use port I/O, MMIO and the whole runtime directly. */
#ifndef ROAM_GUEST_RT_H
#define ROAM_GUEST_RT_H
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;

#define RT_MAX_CPUS 8
#define RT_PAGE 4096ULL
#define RT_2M (2ULL << 20)

/* ---- provided by each kernel ---- */
extern const char rt_kernel_name[];   /* e.g. "hello" */
void test_main(void);                 /* BSP, CPL0, IF=0; may return */

/* ---- exit codes (debug-exit port 0xf4; status = (v << 1) | 1) ---- */
#define RT_EXIT_PASS 0x10   /* roam/QEMU exit status 33 */
#define RT_EXIT_FAIL 0x11   /* 35 */
#define RT_EXIT_SKIP 0x12   /* 37 */
void rt_exit(u8 v) __attribute__((noreturn));

/* ---- console (COM1, polled; safe from any CPU and from CPL3) ---- */
void rt_putc(char c);
void rt_puts(const char *s);
int rt_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int rt_vsnprintf(char *buf, size_t n, const char *fmt, va_list ap);
int rt_snprintf(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- test reporting: lines "TEST name: ok|FAIL why|SKIP why" ---- */
void rt_ok(const char *name);
void rt_fail(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rt_skip(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "RESULT: PASS|FAIL|SKIP (N ok, N failed, N skipped)" and exits. */
void rt_finish(void) __attribute__((noreturn));
/* Unrecoverable: prints "FATAL: why", "RESULT: FAIL ..." and exits. */
void rt_panic(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* True when the cmdline has no test= option or name matches one of its
 * comma-separated entries (an entry ending in '*' matches a prefix), and
 * name is not in the skip= list (then it prints "TEST name: SKIP ..."). */
bool rt_test_enabled(const char *name);

/* ---- command line (multiboot cmdline, "key=value" words) ---- */
const char *rt_cmdline(void);
/* Copies the value of key into buf; returns false when absent. A bare word
 * "key" has value "1". */
bool rt_opt(const char *key, char *buf, size_t n);
u64 rt_opt_u64(const char *key, u64 dflt);
u64 rt_mem_top(void);         /* end of usable RAM below 4 GiB */

/* ---- string helpers (gcc may call mem* itself) ---- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
u64 rt_strtou64(const char *s, const char **end);

/* ---- CPU ---- */
struct rt_frame {   /* saved by every trap stub, lowest address first */
	u64 r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
	u64 vector, error;
	u64 rip, cs, rflags, rsp, ss;  /* the CPU's interrupt frame */
};
#define RT_VEC_SYSCALL 0x100   /* frame->vector for SYSCALL entries */
typedef void (*rt_handler_t)(struct rt_frame *f);

/* GDT selectors */
#define SEL_KCODE64 0x08
#define SEL_KDATA   0x10
#define SEL_UCODE32 0x1b
#define SEL_UDATA   0x23
#define SEL_UCODE64 0x2b
#define SEL_KCODE32 0x30
#define SEL_KCODE16 0x38
#define SEL_KDATA16 0x40
#define SEL_TSS(i)  (0x48 + 16 * (i))

struct rt_cpu {              /* per CPU, reached through GS in the kernel */
	u64 self;            /* 0: this struct's address */
	u64 rsp0;            /* 8: kernel stack for traps from CPL3 */
	u64 scratch;         /* 16: user RSP during SYSCALL entry */
	u64 kctx;            /* 24: kernel RSP saved by rt_user_enter */
	u64 tss;             /* 32: this CPU's TSS */
	u32 index, apic_id;  /* 40, 44 */
	u64 ustack_top;      /* 48: user stack */
	u64 kstack_top;      /* 56 */
	volatile u64 irqs;   /* interrupts taken by this CPU (all vectors >= 32) */
	u64 ist_top;         /* IST1 stack (#DF, NMI, #MC) */
};
struct rt_cpu *rt_cpu(void);         /* current CPU (kernel mode only) */
extern struct rt_cpu *rt_cpus[RT_MAX_CPUS];
extern volatile int rt_ncpus_online;

void rt_set_handler(int vec, rt_handler_t h);
void rt_idt_present(int vec, bool present);   /* toggles the gate's P bit */
/* Syscall numbers handled by the runtime; others go to the hook, which sets
 * f->rax. SYSCALL and int 0x80 both use rax = number, rdi, rsi, rdx. */
#define SYS_EXIT 0        /* leave user mode: rt_user_call returns rdi */
#define SYS_GETCPU 1      /* returns the CPU index */
#define SYS_ADD3 2        /* returns rdi + rsi + rdx (round-trip tests) */
extern rt_handler_t rt_syscall_hook;
u64 rt_syscall(u64 nr, u64 a, u64 b, u64 c);   /* from CPL3, via SYSCALL */
u64 rt_int80(u64 nr, u64 a, u64 b, u64 c);     /* from CPL3, via int 0x80 */

/* Runs fn(arg) at CPL3 on this CPU's user stack with IOPL=3 and IF=1 (if
 * intr) and returns its return value (or the value given to SYS_EXIT). */
u64 rt_user_call(u64 (*fn)(u64), u64 arg, bool intr);

/* Expected-trap catcher: arm it, run code that faults; the trap handler
 * records the trap, disarms and resumes at rt_catch_resume with RSP
 * rt_catch_rsp (set by the faulting snippet). Vectors 0..31 only. */
struct rt_caught { u64 vector, error, cr2, rip, cs, rflags, frame; int hit; };
extern volatile struct rt_caught rt_caught;
extern volatile u64 rt_catch_armed, rt_catch_resume, rt_catch_rsp;
void rt_catch_arm(void);

static inline void outb(u16 p, u8 v) { __asm__ volatile("outb %0, %1" :: "a"(v), "Nd"(p)); }
static inline void outw(u16 p, u16 v) { __asm__ volatile("outw %0, %1" :: "a"(v), "Nd"(p)); }
static inline void outl(u16 p, u32 v) { __asm__ volatile("outl %0, %1" :: "a"(v), "Nd"(p)); }
static inline u8 inb(u16 p) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static inline u16 inw(u16 p) { u16 v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static inline u32 inl(u16 p) { u32 v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static inline u64 rdmsr(u32 m) { u32 lo, hi; __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(m)); return ((u64)hi << 32) | lo; }
static inline void wrmsr(u32 m, u64 v) { __asm__ volatile("wrmsr" :: "c"(m), "a"((u32)v), "d"((u32)(v >> 32)) : "memory"); }
static inline u64 rdtsc(void) { u32 lo, hi; __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)); return ((u64)hi << 32) | lo; }
static inline void cpuid(u32 leaf, u32 sub, u32 r[4]) { __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub)); }
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }
static inline void mb(void) { __asm__ volatile("mfence" ::: "memory"); }
static inline u64 read_cr0(void) { u64 v; __asm__ volatile("mov %%cr0, %0" : "=r"(v)); return v; }
static inline u64 read_cr2(void) { u64 v; __asm__ volatile("mov %%cr2, %0" : "=r"(v)); return v; }
static inline u64 read_cr3(void) { u64 v; __asm__ volatile("mov %%cr3, %0" : "=r"(v)); return v; }
static inline u64 read_cr4(void) { u64 v; __asm__ volatile("mov %%cr4, %0" : "=r"(v)); return v; }
static inline void write_cr0(u64 v) { __asm__ volatile("mov %0, %%cr0" :: "r"(v) : "memory"); }
static inline void write_cr3(u64 v) { __asm__ volatile("mov %0, %%cr3" :: "r"(v) : "memory"); }
static inline void write_cr4(u64 v) { __asm__ volatile("mov %0, %%cr4" :: "r"(v) : "memory"); }
static inline void invlpg(u64 va) { __asm__ volatile("invlpg (%0)" :: "r"(va) : "memory"); }
static inline u64 read_rflags(void) { u64 v; __asm__ volatile("pushfq; pop %0" : "=r"(v)); return v; }
static inline void sti(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
static inline u32 mmio_read32(u64 a) { return *(volatile u32 *)a; }
static inline void mmio_write32(u64 a, u32 v) { *(volatile u32 *)a = v; }
static inline u16 mmio_read16(u64 a) { return *(volatile u16 *)a; }
static inline void mmio_write16(u64 a, u16 v) { *(volatile u16 *)a = v; }
static inline u8 mmio_read8(u64 a) { return *(volatile u8 *)a; }
static inline void mmio_write8(u64 a, u8 v) { *(volatile u8 *)a = v; }
#define MSR_EFER 0xc0000080
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_FMASK 0xc0000084
#define MSR_GS_BASE 0xc0000101
#define MSR_KERNEL_GS_BASE 0xc0000102
#define MSR_APIC_BASE 0x1b
#define RFLAGS_IF 0x200
#define RFLAGS_TF 0x100
#define RFLAGS_DF 0x400

/* ---- memory: heap and page tables ---- */
/* Page-aligned, zeroed (when zero) allocation from RAM above the kernel;
 * never freed. Panics when RAM runs out. */
void *rt_alloc(u64 size, u64 align, bool zero);
#define PTE_P   0x1ULL
#define PTE_W   0x2ULL
#define PTE_U   0x4ULL
#define PTE_PWT 0x8ULL
#define PTE_PCD 0x10ULL
#define PTE_A   0x20ULL
#define PTE_D   0x40ULL
#define PTE_PS  0x80ULL
#define PTE_NX  (1ULL << 63)
#define PTE_ADDR 0x000ffffffffff000ULL
/* Maps va -> pa (4 KiB or 2 MiB), splitting a 2 MiB page when needed and
 * creating intermediate tables (P|W|U). flags: PTE_* without PS. */
void rt_map_4k(u64 va, u64 pa, u64 flags);
void rt_map_2m(u64 va, u64 pa, u64 flags);
/* Maps len bytes (4 KiB aligned) with 4 KiB pages, then flushes the TLB
 * once: cheap even where CPL0 code is emulated. */
void rt_map_range_4k(u64 va, u64 pa, u64 len, u64 flags);
void rt_unmap(u64 va);
/* Leaf entry for va (4 KiB PTE or 2 MiB PDE), or the entry at a given level
 * (1 = PTE, 2 = PDE, 3 = PDPTE, 4 = PML4E); NULL when not present. */
u64 *rt_pte(u64 va);
u64 *rt_pt_entry(u64 va, int level);
void rt_map_identity(u64 pa, u64 len, u64 flags);   /* 2 MiB pages */
int rt_maxphyaddr(void);
u64 rt_pte_nx(void);   /* PTE_NX when EFER.NXE is on, else 0 (reserved) */

/* ---- time ---- */
/* Coarse wall-clock seconds counter from the CMOS RTC (changes once a
 * second); used for timeouts that do not depend on interrupts. */
u32 rt_rtc_tick(void);
struct rt_deadline { u8 last; u32 left; u32 polls; };
void rt_deadline_start(struct rt_deadline *d, u32 seconds);
bool rt_deadline_passed(struct rt_deadline *d);   /* polls the RTC */
void rt_spin(u32 n);    /* roughly n pause iterations */

/* ---- interrupt controllers and timers ---- */
void rt_pic_disable(void);             /* remap to 0x20..0x2f and mask */
u64 rt_lapic_base(void);
void rt_lapic_enable(void);            /* this CPU */
u32 rt_lapic_id(void);
void rt_lapic_eoi(void);
u32 rt_lapic_read(u32 reg);
void rt_lapic_write(u32 reg, u32 v);
/* periodic (true) or one-shot LAPIC timer, divide by 16 */
void rt_lapic_timer(int vector, u32 count, bool periodic);
void rt_lapic_timer_stop(void);
int rt_ipi(u32 apic_id, u32 icr_low);  /* 0 or -1 when delivery stuck */
void rt_ioapic_route(int pin, int vector, u32 apic_id, bool level, bool low, bool masked);
int rt_isa_irq_pin(int irq);           /* from the MP table; identity else */
void rt_pit_periodic(u32 hz);          /* channel 0, mode 2 */
void rt_pit_stop(void);
/* MP table: fills APIC ids of enabled processors; returns count (0 if no
 * MP table). */
int rt_mp_cpus(u32 *apic_ids, int max);

/* ---- PCI (conf1) ---- */
struct rt_pci { u8 bus, dev, fn; u16 vendor, device; };
u32 rt_pci_read32(const struct rt_pci *p, u8 off);
u16 rt_pci_read16(const struct rt_pci *p, u8 off);
u8 rt_pci_read8(const struct rt_pci *p, u8 off);
void rt_pci_write32(const struct rt_pci *p, u8 off, u32 v);
void rt_pci_write16(const struct rt_pci *p, u8 off, u16 v);
/* Finds the nth (0-based) function with vendor:device on buses 0..255
 * reachable from bus 0; 0 or -1. */
int rt_pci_find(u16 vendor, u16 device, int nth, struct rt_pci *ret);
/* Base address of BAR bar (64-bit aware); assigns one from a private window
 * when the BAR is 0; maps it; enables memory decoding and bus mastering. */
u64 rt_pci_bar(const struct rt_pci *p, int bar);

/* ---- virtio 1.x modern PCI block device (one queue, polled) ---- */
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_F_VERSION_1 32
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_STATUS_NEEDS_RESET 0x40
struct vblk;
struct vring_desc { u64 addr; u32 len; u16 flags, next; };
#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4
struct vblk_ring {       /* exposed for hostile_virtio */
	u16 size;
	struct vring_desc *desc;
	volatile u16 *avail;      /* flags, idx, ring[size] */
	volatile u16 *used;       /* flags, idx, {u32 id, u32 len}[size] */
	u16 avail_idx, used_seen;
	u64 notify;               /* MMIO address to write the queue index */
};
/* Finds the nth virtio-blk device, resets, negotiates VERSION_1 (+FLUSH, RO
 * when offered) and sets up queue 0 with up to 64 entries. 0 or -1 (with a
 * reason printed). */
int vblk_init(int nth, struct vblk **ret);
int vblk_reinit(struct vblk *b);       /* reset + full init again */
u64 vblk_capacity(struct vblk *b);      /* 512-byte sectors */
u64 vblk_features(struct vblk *b);
u8 vblk_status(struct vblk *b);        /* device_status register */
struct vblk_ring *vblk_ring(struct vblk *b);
u64 vblk_common(struct vblk *b);        /* common cfg MMIO base */
const struct rt_pci *vblk_pci(struct vblk *b);
/* One request: type, sector, buffer of len bytes (multiple of 512 for
 * IN/OUT; NULL/0 for FLUSH). Returns the device status byte (0 ok), or -1
 * on timeout (timeout_s seconds) / device error state. */
int vblk_rw(struct vblk *b, u32 type, u64 sector, void *buf, u32 len);
/* Publishes head (already in desc[]) and waits up to timeout_s for the
 * device to use it: 0 used, -1 timeout or NEEDS_RESET. */
int vblk_submit_raw(struct vblk *b, u16 head, u32 timeout_s);

/* ---- SMP ---- */
/* Starts the CPU with apic_id as index idx (1..RT_MAX_CPUS-1) via
 * INIT-SIPI-SIPI; it runs fn(idx) at CPL0 with interrupts off after its
 * tables, LAPIC and syscall MSRs are set up; when fn returns the CPU idles
 * in sti;hlt. Returns 0 when it came online within 5 s, else -1. */
int rt_start_ap(int idx, u32 apic_id, void (*fn)(int idx));
/* Number of CPUs to use and their APIC ids: the MP table's, limited by
 * cmdline cpus=N; when cpus=N asks for more than the MP table lists (or
 * there is none), APIC ids 0..N-1. */
int rt_cpu_count(u32 *apic_ids, int max);

/* ---- atomics ---- */
static inline u64 atomic_add(volatile u64 *p, u64 v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline u64 atomic_load(volatile u64 *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline void atomic_store(volatile u64 *p, u64 v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }

/* ---- internal, shared between runtime files ---- */
void rt_cpu_init_bsp(void);
void rt_cpu_init_ap(struct rt_cpu *c);
struct rt_cpu *rt_cpu_alloc(int idx);
void rt_console_init(void);
void rt_mem_init(u64 mem_top);
u64 rt_user_enter(u64 fn, u64 arg, u64 user_rsp, u64 rflags);
void rt_user_leave(u64 value) __attribute__((noreturn));
#endif
