/* Private structures of the BT engine's system half: the per-vCPU soft TLB
 * and segment permission cache (struct bt_sys, hung off bt_cpu.sys), the
 * engine shared by all vCPUs (struct bt_engine: translation cache, code-page
 * tracking, kick flags), and the functions the system-half files call on
 * each other. Nothing outside monitor/bt/ includes this. */
#ifndef ROAM_BT_SYS_INT_H
#define ROAM_BT_SYS_INT_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "monitor/bt/bt_int.h"

/* ---- soft TLB ----
 * Direct-mapped, BT_TLB_SIZE entries per (privilege, access kind), keyed by
 * the linear page. An entry maps only RAM and says the access is allowed at
 * that privilege: host address = addend + linear address. Write entries
 * exist only for pages whose final PTE is dirty, that hold no translated
 * code, and that were marked in the dirty log. */
#define BT_TLB_BITS 8
#define BT_TLB_SIZE (1u << BT_TLB_BITS)
#define BT_TLB_INVALID 1ULL           /* never equals a page-aligned tag */
enum { BT_ACC_R = 0, BT_ACC_W = 1, BT_ACC_X = 2 };

struct bt_tlb_ent {
	uint64_t tag;                 /* linear page address, or BT_TLB_INVALID */
	uintptr_t addend;             /* host pointer - linear address */
};

/* Segment permission cache bits (struct bt_sys.segperm). */
#define BT_SP_R     0x01              /* readable */
#define BT_SP_W     0x02              /* writable */
#define BT_SP_DOWN  0x04              /* expand-down data segment */
#define BT_SP_BAD   0x08              /* unusable (null) segment */
#define BT_SP_BIG   0x10              /* B bit: upper bound 4 GiB for expand-down */

struct bt_block;

struct bt_sys {
	struct bt_tlb_ent tlb[2][3][BT_TLB_SIZE];  /* [user][kind][index] */
	uint8_t tlb_global[2][3][BT_TLB_SIZE];  /* bit 0 global, bit 1 large */
	uint8_t have_large;           /* some entry has bit 1 */
	uint8_t user;                 /* cpl == 3: index for tlb[] */
	struct bt_tlb_ent (*tlb_cur)[BT_TLB_SIZE];  /* tlb[user], for the fast path */
	uint8_t segperm[SEG_COUNT];
	uint8_t check_events;         /* look at events at the next block boundary */
	uint8_t irq_maybe;            /* an interrupt may be pending in the irqchip
				       * (set by kicks and by device I/O, cleared
				       * when irqchip_pending says none) */
	uint8_t delivering;           /* an exception is being delivered */
	uint8_t deliv_vector;         /* ...this one */
	uint8_t triple;               /* triple fault: the vCPU stops */
	uint8_t tf_pending;           /* deliver #DB trap after this insn */
	/* RAM as the walker sees it (cached from guest_mem). */
	uint8_t *ram;
	uint64_t ram_low, ram_size;
	uint64_t dirty_gen;           /* engine dirty generation last seen */
	uint64_t tlb_gen;             /* engine tlb generation last seen */
	/* block chaining: the block that ran last and may be chained from */
	struct bt_block *prev;
	uint64_t cur_lpage;           /* linear page the current block was entered at */
	int prev_slot;
	/* the block whose instructions before its last are running (NULL
	 * otherwise): c->rip is then still the block's entry RIP and only
	 * c->next_rip advances (engine.c) */
	struct bt_block *cur;
	uint64_t sipi_vector;
	uint32_t pending_sipi;
	uint8_t nmi_masked, nmi_pending;
	uint8_t failed;               /* the VM was stopped with an error */
	long budget;                  /* blocks left in this turn */
	uint64_t spec_ctrl, mtrr_def_type;
};

static inline struct bt_sys *bt_sys_of(struct bt_cpu *c) { return c->sys; }

/* Selects the user (CPL 3) or supervisor TLB for the current privilege. */
static inline void bt_set_user(struct bt_sys *s, int user)
{
	s->user = (uint8_t)user;
	s->tlb_cur = s->tlb[user ? 1 : 0];
}

/* Guest-physical address -> host pointer for RAM, or NULL. len must not
 * cross a page. */
static inline uint8_t *bt_phys_ptr(const struct bt_sys *s, uint64_t pa)
{
	if (pa < s->ram_low)
		return s->ram + pa;
	if (pa >= 0x100000000ULL && pa - 0x100000000ULL < s->ram_size - s->ram_low)
		return s->ram + (pa - 0x100000000ULL + s->ram_low);
	return NULL;
}

/* ---- translation cache (block.c, block_page.c) ---- */
#define BT_BLOCK_MAX_INSNS 64
#define BT_BLOCK_SUCC 4
#define BT_SUCC_NONE (1ULL << 63)     /* rip of an empty slot: never a RIP */

struct bt_block {
	uint64_t key;                 /* RAM offset of the first byte */
	uint8_t mode;                 /* enum bt_mode it was decoded for */
	uint8_t valid;
	uint8_t next_slot;            /* successor slot to replace next */
	uint8_t end;                  /* BT_END_* of its last instruction */
	uint16_t n;                   /* instructions */
	uint16_t nbytes;              /* guest code bytes (within one page) */
	uint64_t gen;                 /* unique id (0: never chained to) */
	struct bt_block *hnext;       /* hash chain */
	struct bt_block *pnext;       /* per-code-page list */
	struct {
		struct bt_block *b;
		uint64_t gen;
		uint64_t rip;
	} succ[BT_BLOCK_SUCC];
	struct bt_insn *insn;         /* n entries in the engine's insn arena */
	uint8_t *bytes;               /* copy of the guest bytes decoded */
};

#define BT_END_SYS   0x01             /* system instruction: check events */
#define BT_END_PAUSE 0x02             /* PAUSE: other vCPUs may run */

struct bt_engine {
	struct vm *vm;
	int ncpus;
	struct bt_cpu *cpus;          /* ncpus entries */
	/* kick: bit 0 = events for this vCPU */
	_Atomic uint32_t *kick;       /* ncpus flags */
	pthread_mutex_t lock;         /* for the halt condvar */
	pthread_cond_t cond;
	_Atomic uint64_t dirty_gen;   /* bumped to re-arm write tracking */

	/* translation cache */
	struct bt_block *blocks;      /* arena */
	uint32_t nblocks, max_blocks;
	struct bt_insn *insns;        /* arena */
	uint32_t ninsns, max_insns;
	uint8_t *bytes;               /* arena of guest code copies */
	uint32_t nbytes, max_bytes;
	struct bt_block scratch;      /* page-crossing instruction, uncached */
	struct bt_insn scratch_insn;
	struct bt_block **hash;       /* BT_HASH_SIZE buckets */
	uint64_t next_gen;
	uint64_t flushes;
	/* statistics */
	uint64_t st_builds, st_lookups, st_page_inval, st_stale, st_cross;
	/* code pages: per RAM page, list head of blocks decoded from it */
	struct bt_block **page_blocks;
	uint8_t *code_page;           /* nonzero: page holds translated code */
	uint64_t npages;
	int cur;                      /* vCPU being run */
};
#define BT_HASH_BITS 16
#define BT_HASH_SIZE (1u << BT_HASH_BITS)

/* Creates / frees the code-tracking and translation-cache parts of e for
 * npages RAM pages. */
int bt_tcache_init(struct bt_engine *e, uint64_t npages);
void bt_tcache_fini(struct bt_engine *e);
/* Drops every block (cache full, or a mode-wide change). */
void bt_tcache_flush(struct bt_engine *e);
/* A guest write to RAM page pg that holds code: invalidates its blocks and
 * clears its code flag. */
void bt_code_page_written(struct bt_engine *e, uint64_t pg);
/* Marks pg as holding code: removes write TLB entries mapping it from every
 * vCPU so the next write takes the slow path. */
void bt_code_page_protect(struct bt_engine *e, uint64_t pg);

/* The block for the current RIP (lookup or translation; raises #PF/#GP
 * on fetch); NULL after stopping the VM (execution outside RAM). */
struct bt_block *bt_block_lookup(struct bt_cpu *c);
/* An uncached, unoptimized block of the one instruction at RIP (for
 * single-stepping); same faults and NULL as bt_block_lookup. */
struct bt_block *bt_block_single(struct bt_cpu *c);
void bt_block_link(struct bt_block *prev, struct bt_block *b, uint64_t rip);

/* ---- MMU (mmu.c) ---- */
/* Result flags of bt_walk. */
#define BT_WK_GLOBAL 0x1              /* final entry has G (and CR4.PGE) */
#define BT_WK_WOK    0x2              /* a write at this privilege is allowed */
#define BT_WK_DIRTY  0x4              /* final entry's D is set (or no paging) */
#define BT_WK_LARGE  0x8              /* from a 2M/4M/1G page */
/* Translates linear address la for an access of kind (BT_ACC_*) at user
 * (1) or supervisor (0) privilege. Sets A (and D for writes) bits on
 * success. Returns 0 with *pa and *flags, or -1 with the #PF error code in
 * *err. Never raises. */
int bt_walk(struct bt_cpu *c, uint64_t la, int kind, int user, uint64_t *pa,
	    unsigned *flags, uint32_t *err);
/* Translates or raises #PF (with CR2), then fills the TLB when the page is
 * RAM. Returns the guest-physical address. */
uint64_t bt_xlate(struct bt_cpu *c, uint64_t la, int kind, int user);
void bt_tlb_flush_all(struct bt_cpu *c);
void bt_tlb_flush_nonglobal(struct bt_cpu *c);
void bt_tlb_flush_page(struct bt_cpu *c, uint64_t la);
void bt_tlb_flush_writes(struct bt_cpu *c);

/* ---- linear and physical access (mem.c) ---- */
/* Linear-address access at an explicit privilege (system tables are
 * accessed with user = 0 even at CPL 3). Raise #PF on faults. */
uint64_t bt_lin_read(struct bt_cpu *c, uint64_t la, int size, int user);
void bt_lin_write(struct bt_cpu *c, uint64_t la, int size, uint64_t val, int user);
/* Physical accesses (RAM or MMIO) of 1..8 bytes within one page. */
uint64_t bt_phys_read(struct bt_cpu *c, uint64_t pa, int size);
void bt_phys_write(struct bt_cpu *c, uint64_t pa, int size, uint64_t val);
/* Segment offset -> linear address, with the limit/type/canonical checks
 * for an access of kind (BT_ACC_R/W) of size bytes; raises #GP/#SS. */
uint64_t bt_seg_linear(struct bt_cpu *c, int seg, uint64_t off, uint64_t size, int kind);
/* Recomputes the permission cache of one segment register. */
void bt_seg_cache(struct bt_cpu *c, int seg);

/* ---- exceptions (except.c) ---- */
/* Delivers the exception recorded in c->exc_* (after a bt_raise*),
 * handling double and triple faults. */
void bt_deliver_exception(struct bt_cpu *c);
/* Delivers an event through the IDT: vector, software (INT n: rip after the
 * instruction, DPL check), error code. Raises on failure. */
enum { BT_EV_EXC, BT_EV_EXT, BT_EV_SOFT, BT_EV_NMI };
void bt_interrupt(struct bt_cpu *c, int vector, int kind, int has_err,
		  uint32_t err, uint64_t ret_rip);

/* ---- CPU (cpu.c) ---- */
/* Sets up c (any contents) for vm, which needs only mem (and mmio / pio /
 * irq when the guest touches them). c->eng is left NULL (no code tracking);
 * the engine sets it afterwards. Starts in the architectural reset state (real mode, CS:IP
 * F000:FFF0). Returns 0 or -ENOMEM. Free with bt_cpu_fini. */
int bt_cpu_init(struct bt_cpu *c, struct vm *vm, int index);
void bt_cpu_fini(struct bt_cpu *c);
/* Architectural reset (INIT): real mode at F000:FFF0, TLB flushed. */
void bt_cpu_reset(struct bt_cpu *c);
/* Converts between struct bt_cpu and the canonical state. */
void bt_cpu_get_state(struct bt_cpu *c, struct cpu_state *st);
int bt_cpu_set_state(struct bt_cpu *c, const struct cpu_state *st);

/* ---- system instructions (sys*.c) ---- */
/* Loads a segment register in the current mode with all checks; raises. */
void bt_load_seg(struct bt_cpu *c, int seg, uint16_t sel);
/* Loads a descriptor's hidden part from its 8 bytes. */
void bt_desc_to_seg(struct cpu_seg *s, uint16_t sel, uint32_t lo, uint32_t hi);
/* Reads the 8-byte descriptor for sel from the GDT/LDT (raises #GP(sel) on
 * limit violation, with error code sel & ~3). */
uint64_t bt_read_desc(struct bt_cpu *c, uint16_t sel, int exc);
void bt_set_seg_real(struct bt_cpu *c, int seg, uint16_t sel);
/* Far transfers and IRET; they set c->next_rip (sys_seg.c). */
void bt_far_jmp(struct bt_cpu *c, uint16_t sel, uint64_t off);
void bt_far_call(struct bt_cpu *c, uint16_t sel, uint64_t off, int opsize);
void bt_far_ret(struct bt_cpu *c, int opsize, uint16_t imm);
void bt_iret(struct bt_cpu *c, int opsize);
uint64_t bt_flags_writable(struct bt_cpu *c, int opsize);
void bt_lldt(struct bt_cpu *c, uint16_t sel);
void bt_ltr(struct bt_cpu *c, uint16_t sel);
/* LAR (0) / LSL (1) / VERR (2) / VERW (3): true when ZF is to be set. */
bool bt_seg_probe(struct bt_cpu *c, uint16_t sel, int kind, uint64_t *val);
/* MSR access: 0 or -errno (the caller raises #GP). */
int bt_msr_read(struct bt_cpu *c, uint32_t idx, uint64_t *val);
int bt_msr_write(struct bt_cpu *c, uint32_t idx, uint64_t val);
void bt_msr_exec(struct bt_cpu *c, bool write);
void bt_io_exec(struct bt_cpu *c, const struct bt_insn *i);
void bt_cpuid(struct bt_cpu *c, uint32_t leaf, uint32_t sub, uint32_t out[4]);
void bt_write_cr0(struct bt_cpu *c, uint64_t v);
void bt_write_cr4(struct bt_cpu *c, uint64_t v);
void bt_write_cr3(struct bt_cpu *c, uint64_t v);
#endif
