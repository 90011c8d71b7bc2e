/* The BT engine: engine_ops bt_engine_ops, the vCPU loop (block lookup,
 * chaining, execution, exception delivery via setjmp/longjmp), event
 * checks at block boundaries (one atomic flag per vCPU set by kick),
 * interrupt/NMI/INIT/SIPI delivery from the irqchip, HLT, single-step, and
 * round-robin scheduling of all vCPUs on the one host thread vm gives it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "monitor/bt/sys_int.h"
#include "monitor/guest_mem.h"
#include "monitor/irq.h"
#include "monitor/vm.h"

#define SLICE_BLOCKS 20000      /* blocks per vCPU turn when several run */

static struct bt_engine *eng_of(struct engine *e) { return (struct bt_engine *)e; }

static int bt_probe(const char **why)
{
	(void)why;
	return 0;
}

static int bt_create(struct vm *vm, struct engine **ret)
{
	struct bt_engine *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->vm = vm;
	e->ncpus = vm->ncpus > 0 ? vm->ncpus : 1;
	e->cpus = calloc((size_t)e->ncpus, sizeof(*e->cpus));
	e->kick = calloc((size_t)e->ncpus, sizeof(*e->kick));
	int r = -ENOMEM;
	if (!e->cpus || !e->kick)
		goto err;
	r = bt_tcache_init(e, gmem_size(vm->mem) / GMEM_PAGE);
	if (r < 0)
		goto err;
	for (int i = 0; i < e->ncpus; i++) {
		r = bt_cpu_init(&e->cpus[i], vm, i);
		if (r < 0)
			goto err;
		e->cpus[i].eng = e;
	}
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->cond, NULL);
	*ret = (struct engine *)e;
	return 0;
err:
	if (e->cpus)
		for (int i = 0; i < e->ncpus; i++)
			bt_cpu_fini(&e->cpus[i]);
	bt_tcache_fini(e);
	free(e->cpus);
	free((void *)e->kick);
	free(e);
	return r;
}

static void bt_destroy(struct engine *eng)
{
	struct bt_engine *e = eng_of(eng);
	if (!e)
		return;
	for (int i = 0; i < e->ncpus; i++)
		bt_cpu_fini(&e->cpus[i]);
	bt_tcache_fini(e);
	pthread_mutex_destroy(&e->lock);
	pthread_cond_destroy(&e->cond);
	free(e->cpus);
	free((void *)e->kick);
	free(e);
}

static void bt_kick(struct engine *eng, int cpu)
{
	struct bt_engine *e = eng_of(eng);
	if (cpu >= 0 && cpu < e->ncpus)
		atomic_store_explicit(&e->kick[cpu], 1, memory_order_release);
	else
		for (int i = 0; i < e->ncpus; i++)
			atomic_store_explicit(&e->kick[i], 1, memory_order_release);
	pthread_mutex_lock(&e->lock);
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->lock);
}

static bool vm_should_return(const struct vm *vm)
{
	return atomic_load_explicit(&vm->stop, memory_order_acquire) ||
	       atomic_load_explicit(&vm->pause, memory_order_acquire);
}

/* ---- events ---- */

static void do_init(struct bt_cpu *c)
{
	bt_cpu_reset(c);
	c->mp_state = CPU_WAIT_SIPI;
}

static void do_sipi(struct bt_cpu *c, uint8_t vector)
{
	c->seg[SEG_CS].sel = (uint16_t)(vector << 8);
	c->seg[SEG_CS].base = (uint64_t)vector << 12;
	c->seg[SEG_CS].limit = 0xffff;
	c->rip = 0;
	c->mp_state = CPU_RUNNABLE;
	c->halted = 0;
	bt_mode_changed(c);
}

/* Handles pending events at a block boundary. Returns false when the vCPU
 * cannot run now (halted, waiting for SIPI). Delivery may raise (longjmp
 * to the loop). */
static bool events(struct bt_cpu *c)
{
	struct bt_sys *s = c->sys;
	struct bt_engine *e = c->eng;
	struct irqchip *irq = c->vm->irq;
	/* The irqchip kicks this vCPU whenever its state changes (new IRR
	 * bit, NMI, INIT/SIPI), so the locked irqchip calls are made only
	 * after a kick or after this vCPU's own device I/O. */
	uint32_t kicked = atomic_exchange_explicit(&e->kick[c->index], 0, memory_order_acquire);
	s->check_events = 0;
	if (kicked) {
		s->irq_maybe = 1;
		uint64_t dg = atomic_load_explicit(&e->dirty_gen, memory_order_acquire);
		if (dg != s->dirty_gen) {
			s->dirty_gen = dg;
			bt_tlb_flush_writes(c);
		}
		if (irq) {
			uint8_t vec = 0;
			int r = irqchip_take_init_sipi(irq, c->index, &vec);
			if (r == 1) {
				do_init(c);
				s->prev = NULL;
			} else if (r == 2 && c->mp_state == CPU_WAIT_SIPI) {
				do_sipi(c, vec);
				s->prev = NULL;
			}
			if (irqchip_take_nmi(irq, c->index))
				s->nmi_pending = 1;
		}
	}
	if (c->mp_state == CPU_WAIT_SIPI || c->mp_state == CPU_STOPPED)
		return false;
	if (c->shadow) {
		/* one instruction (block) runs before interrupts are taken */
		c->shadow = 0;
		s->check_events = 1;
		return !c->halted;
	}
	if (s->nmi_pending && !s->nmi_masked) {
		s->nmi_pending = 0;
		s->nmi_masked = 1;
		c->halted = 0;
		c->mp_state = CPU_RUNNABLE;
		s->prev = NULL;
		bt_interrupt(c, BT_NMI, BT_EV_NMI, 0, 0, c->rip);
	}
	if (irq && s->irq_maybe && (c->rflags & BT_IF)) {
		int v = irqchip_pending(irq, c->index) >= 0 ? irqchip_ack(irq, c->index) : -1;
		if (v < 0)
			s->irq_maybe = 0;
		if (v >= 0) {
			c->halted = 0;
			c->mp_state = CPU_RUNNABLE;
			s->prev = NULL;
			bt_interrupt(c, v, BT_EV_EXT, 0, 0, c->rip);
		}
	}
	return !c->halted;
}

/* ---- execution ---- */

static inline uint64_t rip_linear(const struct bt_cpu *c)
{
	if (c->mode == BT_MODE64)
		return c->rip;
	return (c->seg[SEG_CS].base + c->rip) & 0xffffffffULL;
}

/* A chained successor of prev valid for the current RIP, or NULL. Within
 * the linear page the previous block was entered at, the mapping is the
 * one already checked; elsewhere the exec TLB must still map the page to
 * the successor's RAM page. An invalidated or flushed block has gen 0,
 * which no chaining slot holds. */
static inline struct bt_block *chain(struct bt_cpu *c, struct bt_block *prev)
{
	struct bt_sys *s = c->sys;
	int k = 0;
	while (prev->succ[k].rip != c->rip)
		if (++k == BT_BLOCK_SUCC)
			return NULL;
	struct bt_block *b = prev->succ[k].b;
	if (!b || b->gen != prev->succ[k].gen || b->mode != c->mode)
		return NULL;
	uint64_t la = rip_linear(c);
	uint64_t lp = la & ~0xfffULL;
	if (lp == s->cur_lpage && ((b->key ^ prev->key) >> 12) == 0)
		return b;
	const struct bt_tlb_ent *t = &s->tlb_cur[BT_ACC_X][(la >> 12) & (BT_TLB_SIZE - 1)];
	if (t->tag != lp || (const uint8_t *)(t->addend + lp) != s->ram + (b->key & ~0xfffULL))
		return NULL;
	s->cur_lpage = lp;
	return b;
}

/* Single step (RFLAGS.TF): one instruction from an unoptimized block, then
 * the #DB trap. Returns false when the VM was stopped. */
static bool single_step(struct bt_cpu *c)
{
	struct bt_sys *s = c->sys;
	s->prev = NULL;
	struct bt_block *b = bt_block_single(c);
	if (!b)
		return false;
	const struct bt_insn *i = b->insn;
	c->next_rip = c->rip + i->len;
	i->exec(c, i);
	c->rip = c->next_rip;
	if (c->mode != BT_MODE64)
		c->rip &= 0xffffffffULL;
	c->dr[6] |= 0x4000;
	bt_interrupt(c, BT_DB, BT_EV_EXC, 0, 0, c->rip);
	s->check_events = 1;   /* stays set while TF is */
	s->cur_lpage = 1;
	return true;
}

/* Where a fault raised while s->cur's instructions before its last ran
 * came from: c->rip is still the block's entry RIP and c->next_rip the end
 * of the faulting instruction; sets c->rip to its start. */
static void fault_rip(struct bt_cpu *c)
{
	struct bt_block *b = c->sys->cur;
	uint64_t r = c->rip;
	c->sys->cur = NULL;
	for (unsigned k = 0; k + 1 < b->n; k++) {
		if (r + b->insn[k].len == c->next_rip) {
			c->rip = c->mode == BT_MODE64 ? r : r & 0xffffffffULL;
			return;
		}
		r += b->insn[k].len;
	}
}

/* Runs blocks until the budget is spent, an event needs the outer loop,
 * or the vCPU halts. Exceptions longjmp out of here.
 *
 * Instructions before a block's last run with c->rip left at the block's
 * entry and c->next_rip advanced past each before it runs (so RIP-relative
 * operands see the right value); none of them changes next_rip except the
 * self-modified-code no-op (block_page.c), which undoes its advance. A
 * fault among them is located by fault_rip(). The last instruction runs
 * with c->rip at its start, as bt_int.h describes. */
static void __attribute__((noinline)) exec_blocks(struct bt_cpu *c)
{
	struct bt_sys *s = c->sys;
	struct bt_engine *e = c->eng;
	_Atomic uint32_t *kick = &e->kick[c->index];
	while (s->budget > 0) {
		s->budget--;
		if (__builtin_expect(atomic_load_explicit(kick, memory_order_relaxed) |
				     s->check_events, 0)) {
			if (vm_should_return(c->vm) || !events(c)) {
				s->budget = 0;
				return;
			}
			if (__builtin_expect(c->rflags & BT_TF, 0)) {
				if (!single_step(c)) {
					s->budget = 0;
					s->failed = 1;
					return;
				}
				continue;
			}
		}
		struct bt_block *b = NULL;
		if (s->prev)
			b = chain(c, s->prev);
		if (!b) {
			s->cur_lpage = rip_linear(c) & ~0xfffULL;
			b = bt_block_lookup(c);
			if (!b) {
				s->budget = 0;
				s->failed = 1;
				return;
			}
			if (s->prev)
				bt_block_link(s->prev, b, c->rip);
		}
		const struct bt_insn *i = b->insn, *last = i + b->n - 1;
		c->next_rip = c->rip;
		if (i != last) {
			s->cur = b;
			/* Unrolled so that consecutive instructions dispatch
			 * from different indirect call sites, which the host's
			 * branch predictor tells apart. A block that writes
			 * its own code finds its remaining instructions turned
			 * into no-ops (block_page.c), so no per-instruction
			 * check is needed. */
#define STEP() do { \
				c->next_rip += i->len; \
				i->exec(c, i); \
				if (++i == last) \
					goto done; \
			} while (0)
			for (;;) {
				STEP();
				STEP();
				STEP();
				STEP();
			}
#undef STEP
done:
			s->cur = NULL;
		}
		c->rip = c->next_rip;
		c->next_rip += i->len;
		i->exec(c, i);
		c->rip = c->next_rip;
		if (c->mode != BT_MODE64)
			c->rip &= 0xffffffffULL;
		/* Chaining stays valid across system instructions: the chain
		 * check compares the mode and revalidates the page through the
		 * TLB of the current privilege. */
		s->prev = b->gen ? b : NULL;
		if (__builtin_expect(b->end, 0)) {
			if (b->end & BT_END_SYS) {
				/* it may have changed the mapping or the
				 * privilege: no same-page shortcut for the next
				 * chain step */
				s->cur_lpage = 1;
				s->check_events = 1;
				if (c->halted)
					return;
			}
			if ((b->end & BT_END_PAUSE) && e->ncpus > 1)
				return;   /* spin-wait: let the vCPU it waits for run */
		}
	}
}

/* Runs vCPU c for up to budget blocks. Returns 0, or -EFAULT when the VM
 * was stopped with an error. */
static int run_cpu(struct bt_cpu *c, long budget)
{
	struct bt_sys *s = c->sys;
	s->budget = budget;
	if (setjmp(c->jmp)) {
		/* an exception: c->rip is the faulting instruction */
		if (s->cur)
			fault_rip(c);
		s->prev = NULL;
		bt_deliver_exception(c);
		if (s->triple) {
			s->triple = 0;
			vm_request_stop(c->vm, VM_STOP_RESET, 0,
					"vCPU %d: triple fault at rip %#llx", c->index,
					(unsigned long long)c->rip);
			return 0;
		}
		s->check_events = 1;
	}
	exec_blocks(c);
	return s->failed ? -EFAULT : 0;
}

/* Can c run now? Wakes halted vCPUs with a deliverable interrupt. */
static bool runnable(struct bt_cpu *c)
{
	struct bt_engine *e = c->eng;
	struct irqchip *irq = c->vm->irq;
	if (atomic_load_explicit(&e->kick[c->index], memory_order_acquire))
		c->sys->check_events = 1;
	if (c->mp_state == CPU_WAIT_SIPI) {
		if (!c->sys->check_events || !irq)
			return false;
		uint8_t vec = 0;
		atomic_store_explicit(&e->kick[c->index], 0, memory_order_relaxed);
		int r = irqchip_take_init_sipi(irq, c->index, &vec);
		if (r == 2)
			do_sipi(c, vec);
		else if (r == 1)
			do_init(c);
		return c->mp_state == CPU_RUNNABLE;
	}
	if (c->mp_state == CPU_STOPPED)
		return false;
	if (!c->halted)
		return true;
	if (!irq)
		return false;
	if (irqchip_take_nmi(irq, c->index))
		c->sys->nmi_pending = 1;
	if (c->sys->nmi_pending && !c->sys->nmi_masked)
		return true;
	if ((c->rflags & BT_IF) && irqchip_pending(irq, c->index) >= 0)
		return true;
	return false;
}

static int bt_run(struct engine *eng, int cpu)
{
	struct bt_engine *e = eng_of(eng);
	struct vm *vm = e->vm;
	(void)cpu;
	for (int i = 0; i < e->ncpus; i++) {
		e->cpus[i].sys->check_events = 1;
		e->cpus[i].sys->irq_maybe = 1;
	}
	while (!vm_should_return(vm)) {
		bool ran = false;
		for (int i = 0; i < e->ncpus && !vm_should_return(vm); i++) {
			struct bt_cpu *c = &e->cpus[i];
			if (!runnable(c))
				continue;
			c->halted = 0;
			if (c->mp_state == CPU_HALTED)
				c->mp_state = CPU_RUNNABLE;
			c->sys->check_events = 1;
			ran = true;
			e->cur = i;
			if (run_cpu(c, e->ncpus > 1 ? SLICE_BLOCKS : 1L << 40) < 0)
				return -EFAULT;
		}
		if (ran || vm_should_return(vm))
			continue;
		/* every vCPU is halted: sleep until a kick */
		pthread_mutex_lock(&e->lock);
		bool any = false;
		for (int i = 0; i < e->ncpus; i++)
			any |= atomic_load_explicit(&e->kick[i], memory_order_acquire) != 0;
		if (!any && !vm_should_return(vm)) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 10 * 1000 * 1000;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&e->cond, &e->lock, &ts);
		}
		pthread_mutex_unlock(&e->lock);
	}
	return 0;
}

static int bt_get_state(struct engine *eng, int cpu, struct cpu_state *st)
{
	struct bt_engine *e = eng_of(eng);
	if (cpu < 0 || cpu >= e->ncpus)
		return -EINVAL;
	bt_cpu_get_state(&e->cpus[cpu], st);
	return 0;
}

static int bt_set_state(struct engine *eng, int cpu, const struct cpu_state *st)
{
	struct bt_engine *e = eng_of(eng);
	if (cpu < 0 || cpu >= e->ncpus)
		return -EINVAL;
	int r = bt_cpu_set_state(&e->cpus[cpu], st);
	e->cpus[cpu].sys->prev = NULL;
	e->cpus[cpu].sys->check_events = 1;
	return r;
}

static void bt_irq_line(struct engine *eng, unsigned gsi, int level)
{
	struct bt_engine *e = eng_of(eng);
	if (e->vm->irq)
		irqchip_set_irq(e->vm->irq, gsi, level);
}

static void bt_msi(struct engine *eng, uint64_t addr, uint32_t data)
{
	struct bt_engine *e = eng_of(eng);
	if (e->vm->irq)
		irqchip_msi(e->vm->irq, addr, data);
}

/* Re-arms write tracking: every vCPU drops its write TLB entries before it
 * runs again, so the next write to each page is marked in guest_mem's
 * dirty bitmap (the engine keeps no log of its own). */
static int bt_dirty_log(struct engine *eng, uint64_t *bits)
{
	struct bt_engine *e = eng_of(eng);
	(void)bits;
	atomic_fetch_add(&e->dirty_gen, 1);
	for (int i = 0; i < e->ncpus; i++)
		atomic_store_explicit(&e->kick[i], 1, memory_order_release);
	return 0;
}

static int bt_dirty_log_start(struct engine *eng)
{
	return bt_dirty_log(eng, NULL);
}

const struct engine_ops bt_engine_ops = {
	.name = "bt",
	.one_thread = true,
	.probe = bt_probe,
	.create = bt_create,
	.destroy = bt_destroy,
	.run = bt_run,
	.kick = bt_kick,
	.get_state = bt_get_state,
	.set_state = bt_set_state,
	.irq_line = bt_irq_line,
	.msi = bt_msi,
	.dirty_log = bt_dirty_log,
	.dirty_log_start = bt_dirty_log_start,
};
