/* BT translation cache: blocks of pre-decoded instructions keyed by the
 * RAM offset of their first byte and the decode mode, built by fetching
 * through the exec TLB (so fetch faults are #PF at the right RIP), ended at
 * a branch, a system instruction or the page end; a bounded arena flushed
 * whole when full; a hash table; per-page lists for invalidation; and the
 * saved guest bytes of each block, compared on every hash lookup so that
 * code replaced behind the engine's back (device DMA) is never run stale. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "monitor/bt/sys_int.h"
#include "monitor/vm.h"

#define MAX_BLOCKS  (1u << 16)
#define MAX_INSNS   (1u << 18)
#define MAX_BYTES   (MAX_INSNS * 5u)

static void exec_ud(struct bt_cpu *c, const struct bt_insn *i)
{
	(void)i;
	bt_raise(c, BT_UD);
}

static void exec_gp0(struct bt_cpu *c, const struct bt_insn *i)
{
	(void)i;
	bt_raise_err(c, BT_GP, 0);
}

int bt_tcache_init(struct bt_engine *e, uint64_t npages)
{
	e->max_blocks = MAX_BLOCKS;
	e->max_insns = MAX_INSNS;
	e->max_bytes = MAX_BYTES;
	e->blocks = calloc(MAX_BLOCKS, sizeof(*e->blocks));
	e->insns = calloc(MAX_INSNS, sizeof(*e->insns));
	e->bytes = malloc(MAX_BYTES);
	e->hash = calloc(BT_HASH_SIZE, sizeof(*e->hash));
	e->page_blocks = calloc(npages, sizeof(*e->page_blocks));
	e->code_page = calloc(npages, 1);
	e->npages = npages;
	e->next_gen = 1;
	if (!e->blocks || !e->insns || !e->bytes || !e->hash || !e->page_blocks || !e->code_page) {
		bt_tcache_fini(e);
		return -ENOMEM;
	}
	return 0;
}

void bt_tcache_fini(struct bt_engine *e)
{
	free(e->blocks);
	free(e->insns);
	free(e->bytes);
	free(e->hash);
	free(e->page_blocks);
	free(e->code_page);
	e->blocks = NULL;
	e->insns = NULL;
	e->bytes = NULL;
	e->hash = NULL;
	e->page_blocks = NULL;
	e->code_page = NULL;
}

void bt_tcache_flush(struct bt_engine *e)
{
	for (uint32_t k = 0; k < e->nblocks; k++) {
		e->blocks[k].valid = 0;
		e->blocks[k].gen = 0;
	}
	e->nblocks = 0;
	e->ninsns = 0;
	e->nbytes = 0;
	memset(e->hash, 0, BT_HASH_SIZE * sizeof(*e->hash));
	memset(e->page_blocks, 0, e->npages * sizeof(*e->page_blocks));
	/* pages stay write-protected until their next write: harmless */
	e->flushes++;
	for (int i = 0; i < e->ncpus; i++)
		if (e->cpus[i].sys)
			e->cpus[i].sys->prev = NULL;
}

static inline unsigned hash_key(uint64_t key, uint8_t mode)
{
	uint64_t h = (key ^ ((uint64_t)mode << 40)) * 0x9e3779b97f4a7c15ULL;
	return (unsigned)(h >> (64 - BT_HASH_BITS));
}

/* Linear address of the current RIP. */
static inline uint64_t rip_linear(const struct bt_cpu *c)
{
	if (c->mode == BT_MODE64)
		return c->rip;
	return (c->seg[SEG_CS].base + c->rip) & 0xffffffffULL;
}

/* Host pointer to the code byte at linear address la (exec TLB, else a
 * walk that raises #PF). Stops the VM and returns NULL for non-RAM. */
static const uint8_t *fetch_ptr(struct bt_cpu *c, uint64_t la)
{
	struct bt_sys *s = c->sys;
	const struct bt_tlb_ent *t = &s->tlb_cur[BT_ACC_X][(la >> 12) & (BT_TLB_SIZE - 1)];
	if (t->tag == (la & ~0xfffULL))
		return (const uint8_t *)(t->addend + la);
	uint64_t pa = bt_xlate(c, la, BT_ACC_X, s->user);
	return bt_phys_ptr(s, pa);
}

/* Decodes the one instruction at la into *out when it crosses a page
 * (fetching both pages); such instructions are never cached. */
static int decode_cross(struct bt_cpu *c, uint64_t la, const uint8_t *h1, struct bt_insn *out)
{
	uint8_t buf[16];
	size_t n1 = 4096 - (la & 0xfff);
	if (n1 > 15)
		n1 = 15;
	memcpy(buf, h1, n1);
	int r = bt_decode(buf, n1, (enum bt_mode)c->mode, out);
	if (r != -EAGAIN)
		return r;
	uint64_t la2 = la + n1;
	if (c->mode != BT_MODE64)
		la2 &= 0xffffffffULL;
	const uint8_t *h2 = fetch_ptr(c, la2);
	if (!h2)
		return -EFAULT;
	memcpy(buf + n1, h2, 15 - n1);
	return bt_decode(buf, 15, (enum bt_mode)c->mode, out);
}

/* REP string instructions restart themselves (next_rip = rip) after a
 * bounded amount of work, so they end their block like a branch; PAUSE
 * ends its block so that a spinning vCPU can give way to the others. */
static bool is_pause(const struct bt_insn *i)
{
	return i->op == BT_OP(0, 0x90) && i->rep == 0xf3 && !i->rex;
}

static bool ends_block(const struct bt_insn *i)
{
	if (is_pause(i))
		return true;   /* a spin-wait: the scheduler may switch vCPUs */
	if (!i->rep || BT_MAP(i->op) != 0)
		return false;
	uint8_t b = (uint8_t)BT_BYTE(i->op);
	return (b >= 0xa4 && b <= 0xa7) || (b >= 0xaa && b <= 0xaf) || (b >= 0x6c && b <= 0x6f);
}

static void set_exec(struct bt_insn *i, int r)
{
	if (r == -E2BIG) {
		i->exec = exec_gp0;
		i->len = 15;
	} else if (r < 0) {
		i->exec = exec_ud;
		if (!i->len)
			i->len = 1;
	} else {
		i->exec = bt_select(i);
		if (!i->exec)
			i->exec = exec_ud;
	}
}

/* The one-instruction block used for page-crossing instructions and for
 * single-stepping (uncached, unoptimized). */
static struct bt_block *cross_block(struct bt_cpu *c, uint64_t la, const uint8_t *h)
{
	struct bt_engine *e = c->eng;
	struct bt_block *b = &e->scratch;
	e->st_cross++;
	memset(&e->scratch_insn, 0, sizeof(e->scratch_insn));
	int r = decode_cross(c, la, h, &e->scratch_insn);
	if (r == -EFAULT)
		return NULL;
	if (r == 0 && c->mode != BT_MODE64 && (c->cr0 & 1) &&
	    c->rip + e->scratch_insn.len - 1 > c->seg[SEG_CS].limit)
		r = -E2BIG;   /* beyond CS limit: #GP(0) */
	set_exec(&e->scratch_insn, r);
	memset(b, 0, sizeof(*b));
	b->insn = &e->scratch_insn;
	b->n = 1;
	b->end = (e->scratch_insn.flags & BT_I_SYS) ? BT_END_SYS : 0;
	b->mode = c->mode;
	b->valid = 1;
	b->gen = 0;   /* never chained to */
	return b;
}

static struct bt_block *build(struct bt_cpu *c, uint64_t la, const uint8_t *h, uint64_t key)
{
	struct bt_engine *e = c->eng;
	if (e->nblocks >= e->max_blocks || e->ninsns + BT_BLOCK_MAX_INSNS > e->max_insns ||
	    e->nbytes + BT_BLOCK_MAX_INSNS * 15 > e->max_bytes)
		bt_tcache_flush(e);
	struct bt_block *b = &e->blocks[e->nblocks];
	e->st_builds++;
	struct bt_insn *ins = &e->insns[e->ninsns];
	size_t room = 4096 - (la & 0xfff);
	size_t pos = 0;
	int n = 0;
	bool limit_check = c->mode != BT_MODE64 && (c->cr0 & 1);
	while (n < BT_BLOCK_MAX_INSNS && pos < room) {
		struct bt_insn *i = &ins[n];
		memset(i, 0, sizeof(*i));
		int r = bt_decode(h + pos, room - pos, (enum bt_mode)c->mode, i);
		if (r == -EAGAIN)
			break;   /* crosses the page: it starts the next block */
		if (r == 0 && limit_check && c->rip + pos + i->len - 1 > c->seg[SEG_CS].limit)
			r = -E2BIG;   /* beyond CS limit: #GP(0) */
		set_exec(i, r);
		if (r < 0) {
			n++;
			pos += i->len;
			break;
		}
		n++;
		pos += i->len;
		if (i->flags & (BT_I_BRANCH | BT_I_SYS) || ends_block(i))
			break;
	}
	if (n == 0)
		return NULL;
	if (pos > room)
		pos = room;
	int nopt = 0, nslots = n;   /* a fused Jcc keeps its slot */
	while (nopt < n && ins[nopt].exec != exec_ud && ins[nopt].exec != exec_gp0)
		nopt++;
	if (nopt == n)
		n = bt_block_optimize(ins, n);
	else
		bt_block_optimize(ins, nopt);   /* no Jcc there: nothing fused */
	b->key = key;
	b->end = (uint8_t)((is_pause(&ins[n - 1]) ? BT_END_PAUSE : 0) |
			   ((ins[n - 1].flags & BT_I_SYS) ? BT_END_SYS : 0));
	b->mode = c->mode;
	b->valid = 1;
	b->n = (uint16_t)n;
	b->gen = e->next_gen++;
	b->insn = ins;
	b->bytes = e->bytes + e->nbytes;
	b->nbytes = (uint16_t)pos;
	memcpy(b->bytes, h, pos);
	for (int k = 0; k < BT_BLOCK_SUCC; k++) {
		b->succ[k].b = NULL;
		b->succ[k].rip = BT_SUCC_NONE;
	}
	unsigned hv = hash_key(key, b->mode);
	b->hnext = e->hash[hv];
	e->hash[hv] = b;
	uint64_t pg = key >> 12;
	b->pnext = e->page_blocks[pg];
	e->page_blocks[pg] = b;
	e->nblocks++;
	e->ninsns += (uint32_t)nslots;
	e->nbytes += (uint32_t)pos;
	bt_code_page_protect(e, pg);
	return b;
}

/* Host pointer to the code at RIP (raises #GP beyond the CS limit, #PF);
 * NULL after stopping the VM for code outside RAM. */
static const uint8_t *code_ptr(struct bt_cpu *c, uint64_t la)
{
	if (c->mode != BT_MODE64 && (c->cr0 & 1) && c->rip > c->seg[SEG_CS].limit)
		bt_raise_err(c, BT_GP, 0);
	const uint8_t *h = fetch_ptr(c, la);
	if (!h)
		vm_request_stop(c->vm, VM_STOP_ERROR, 1,
				"vCPU %d: executing outside RAM at rip %#llx (linear %#llx)",
				c->index, (unsigned long long)c->rip, (unsigned long long)la);
	return h;
}

struct bt_block *bt_block_single(struct bt_cpu *c)
{
	uint64_t la = rip_linear(c);
	const uint8_t *h = code_ptr(c, la);
	return h ? cross_block(c, la, h) : NULL;
}

struct bt_block *bt_block_lookup(struct bt_cpu *c)
{
	struct bt_engine *e = c->eng;
	struct bt_sys *s = c->sys;
	uint64_t la = rip_linear(c);
	const uint8_t *h = code_ptr(c, la);
	if (!h)
		return NULL;
	/* a page-crossing instruction at the very start */
	size_t room = 4096 - (la & 0xfff);
	if (room < 15) {
		struct bt_insn tmp;
		int r = bt_decode(h, room, (enum bt_mode)c->mode, &tmp);
		if (r == -EAGAIN)
			return cross_block(c, la, h);
	}
	uint64_t key = (uint64_t)(h - s->ram);
	e->st_lookups++;
	unsigned hv = hash_key(key, c->mode);
	struct bt_block **pp = &e->hash[hv];
	for (struct bt_block *b = *pp; b; b = *pp) {
		if (!b->valid) {
			*pp = b->hnext;
			continue;
		}
		if (b->key == key && b->mode == c->mode) {
			if (memcmp(b->bytes, h, b->nbytes) == 0)
				return b;
			/* replaced without a CPU write (DMA): drop the page */
			e->st_stale++;
			bt_code_page_written(e, key >> 12);
			*pp = b->hnext;
			break;
		}
		pp = &b->hnext;
	}
	return build(c, la, h, key);
}

void bt_block_link(struct bt_block *prev, struct bt_block *b, uint64_t rip)
{
	if (!b->gen)
		return;
	int k;
	/* the slot of a stale link for this RIP, else a free one, else
	 * round-robin */
	for (k = 0; k < BT_BLOCK_SUCC; k++)
		if (prev->succ[k].rip == rip)
			goto set;
	for (k = 0; k < BT_BLOCK_SUCC; k++)
		if (!prev->succ[k].b)
			goto set;
	k = prev->next_slot;
	prev->next_slot = (uint8_t)((k + 1) % BT_BLOCK_SUCC);
set:
	prev->succ[k].b = b;
	prev->succ[k].gen = b->gen;
	prev->succ[k].rip = rip;
}
