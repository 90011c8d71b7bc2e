/* BT code-page tracking: which RAM pages hold translated code, the list of
 * blocks decoded from each, invalidation when the guest (or the walker)
 * writes such a page, and removal of write TLB entries when a page starts
 * holding code so that the next write to it takes the slow path. */
#include "monitor/bt/sys_int.h"

/* What the remaining instructions of an invalidated block do if that
 * block is the one running (it wrote its own code): nothing, not even
 * advance next_rip (which the loop advanced by len before the call), so
 * the loop leaves RIP at the instruction after the write and translates
 * afresh. */
static void exec_skip(struct bt_cpu *c, const struct bt_insn *i)
{
	c->next_rip -= i->len;
}

void bt_code_page_written(struct bt_engine *e, uint64_t pg)
{
	if (pg >= e->npages)
		return;
	e->st_page_inval++;
	for (struct bt_block *b = e->page_blocks[pg]; b; b = b->pnext) {
		b->valid = 0;
		b->gen = 0;   /* chained pointers to it no longer match */
		for (unsigned k = 0; k < b->n; k++)
			b->insn[k].exec = exec_skip;
	}
	e->page_blocks[pg] = NULL;
	e->code_page[pg] = 0;
}

void bt_code_page_protect(struct bt_engine *e, uint64_t pg)
{
	if (pg >= e->npages || e->code_page[pg])
		return;
	e->code_page[pg] = 1;
	for (int i = 0; i < e->ncpus; i++) {
		struct bt_cpu *c = &e->cpus[i];
		struct bt_sys *s = c->sys;
		if (!s)
			continue;
		for (int u = 0; u < 2; u++) {
			for (unsigned k = 0; k < BT_TLB_SIZE; k++) {
				struct bt_tlb_ent *t = &s->tlb[u][BT_ACC_W][k];
				if (t->tag == BT_TLB_INVALID)
					continue;
				uint8_t *h = (uint8_t *)(t->addend + t->tag);
				if ((uint64_t)(h - s->ram) >> 12 == pg)
					t->tag = BT_TLB_INVALID;
			}
		}
	}
}
