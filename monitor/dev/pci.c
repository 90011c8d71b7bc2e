/* The PCI host bridge: configuration mechanism 1 on ports 0xCF8/0xCFC, the
 * slot table of bus 0, type-0 config space with write masks, BAR sizing and
 * (re)mapping on vm->mmio, MSI-X table/PBA emulation and INTx routing.
 *
 * Locks: host->lock serializes config cycles (and BAR moves, which take the
 * MMIO bus write lock under it); pd->msix_lock guards the MSI-X table and
 * PBA and is never held while taking another roam lock. MMIO handlers never
 * take host->lock, so a BAR move cannot deadlock against an MMIO access. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "monitor/boot/boot.h"
#include "monitor/dev.h"
#include "monitor/dev/pci.h"
#include "monitor/vm.h"

#define PCI_HOST_STATE_VERSION 1

struct pci_host {
	struct dev dev;                 /* first: the VM's device list */
	struct vm *vm;
	pthread_mutex_t lock;
	uint32_t addr;                  /* 0xCF8 */
	struct pci_dev bridge;
	struct pci_dev *slots[PCI_MAX_SLOTS];
	uint64_t next_mmio;
	pci_msi_fn msi;
	pci_intx_fn intx;
	void *hook_opaque;
};

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16; }
static void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void wr32(uint8_t *p, uint32_t v) { wr16(p, (uint16_t)v); wr16(p + 2, (uint16_t)(v >> 16)); }

void pci_host_set_irq_hooks(struct pci_host *h, pci_msi_fn msi, pci_intx_fn intx,
			    void *opaque)
{
	h->msi = msi;
	h->intx = intx;
	h->hook_opaque = opaque;
}

static void host_send_msi(struct pci_host *h, uint64_t addr, uint32_t data)
{
	if (!h)
		return;                 /* host already freed (VM teardown) */
	if (h->msi)
		h->msi(h->hook_opaque, addr, data);
	else
		vm_msi(h->vm, addr, data);
}

static void host_send_intx(struct pci_host *h, unsigned gsi, int level)
{
	if (!h)
		return;
	if (h->intx)
		h->intx(h->hook_opaque, gsi, level);
	else
		vm_set_irq(h->vm, gsi, level);
}

/* ---- BARs ---- */

static uint64_t bar_addr(const struct pci_dev *pd, int i)
{
	const uint8_t *p = pd->cfg + PCI_BAR0 + 4 * i;
	uint64_t a = rd32(p) & ~0xFULL;
	if (pd->bar[i].type == PCI_BAR_MEM64)
		a |= (uint64_t)rd32(p + 4) << 32;
	return a;
}

/* Makes the bus registrations match the config image. Host lock held. */
static void update_bars(struct pci_dev *pd)
{
	struct bus *mmio = pd->host->vm->mmio;
	bool mem_on = rd16(pd->cfg + PCI_COMMAND) & PCI_CMD_MEM;
	for (int i = 0; i < 6; i++) {
		struct pci_bar *b = &pd->bar[i];
		if (b->type == PCI_BAR_NONE)
			continue;
		uint64_t a = bar_addr(pd, i);
		bool want = mem_on && a != 0 && a + b->size - 1 > a;
		if (b->mapped && (!want || a != b->mapped_addr)) {
			bus_unregister(mmio, b->mapped_addr);
			b->mapped = false;
		}
		if (want && !b->mapped) {
			/* A BAR placed over another range stays unmapped, as
			 * a decode conflict would leave it on real hardware. */
			if (bus_register(mmio, a, b->size, b->ops, b->opaque) == 0) {
				b->mapped = true;
				b->mapped_addr = a;
			}
		}
	}
}

/* ---- INTx ---- */

/* Drives the line from the device's level and Command.INTxDisable. Under
 * msix_lock (the function's interrupt lock), so level changes from the
 * device and command writes from config cycles reach the IOAPIC in the
 * order they happened. */
static void drive_intx_locked(struct pci_dev *pd)
{
	if (pd->slot == 0)
		return;
	int level = atomic_load(&pd->intx_level) && !pd->intx_off;
	host_send_intx(pd->host, BOOT_PCI_IRQ_PIN(pd->slot, 0), level);
}

/* Command register changed (host lock held). */
static void intx_cmd_update(struct pci_dev *pd)
{
	bool off = rd16(pd->cfg + PCI_COMMAND) & PCI_CMD_INTX_OFF;
	pthread_mutex_lock(&pd->msix_lock);
	if (off != pd->intx_off) {
		pd->intx_off = off;
		drive_intx_locked(pd);
	}
	pthread_mutex_unlock(&pd->msix_lock);
}

void pci_set_intx(struct pci_dev *pd, int level)
{
	level = !!level;
	pthread_mutex_lock(&pd->msix_lock);
	if (atomic_exchange(&pd->intx_level, level) != level)
		drive_intx_locked(pd);
	pthread_mutex_unlock(&pd->msix_lock);
}

/* ---- MSI-X ---- */

static void msix_fire(struct pci_dev *pd, unsigned v)
{
	const uint8_t *e = pd->msix_table + 16 * v;
	uint64_t addr = rd32(e) | (uint64_t)rd32(e + 4) << 32;
	host_send_msi(pd->host, addr, rd32(e + 8));
}

static bool msix_masked(const struct pci_dev *pd, unsigned v)
{
	return pd->msix_fmask || (rd32(pd->msix_table + 16 * v + 12) & 1);
}

/* Delivers pending vectors that are no longer masked. msix_lock held. */
static void msix_flush_pending(struct pci_dev *pd)
{
	if (!pd->msix_enabled)
		return;
	for (unsigned v = 0; v < pd->msix_nvec; v++) {
		if ((pd->msix_pba & (1u << v)) && !msix_masked(pd, v)) {
			pd->msix_pba &= ~(1u << v);
			msix_fire(pd, v);
		}
	}
}

bool pci_msix_enabled(struct pci_dev *pd)
{
	pthread_mutex_lock(&pd->msix_lock);
	bool on = pd->msix_enabled;
	pthread_mutex_unlock(&pd->msix_lock);
	return on;
}

unsigned pci_msix_nvec(const struct pci_dev *pd)
{
	return pd->msix_nvec;
}

void pci_msix_notify(struct pci_dev *pd, unsigned vec)
{
	pthread_mutex_lock(&pd->msix_lock);
	if (vec < pd->msix_nvec && pd->msix_enabled) {
		if (msix_masked(pd, vec))
			pd->msix_pba |= 1u << vec;
		else
			msix_fire(pd, vec);
	}
	pthread_mutex_unlock(&pd->msix_lock);
}

/* Message control changed in config space. Host lock held. */
static void msix_ctrl_update(struct pci_dev *pd)
{
	uint16_t ctl = rd16(pd->cfg + pd->msix_cap + 2);
	pthread_mutex_lock(&pd->msix_lock);
	pd->msix_enabled = ctl & PCI_MSIX_ENABLE;
	pd->msix_fmask = ctl & PCI_MSIX_FMASK;
	msix_flush_pending(pd);
	pthread_mutex_unlock(&pd->msix_lock);
}

static void msix_bar_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct pci_dev *pd = opaque;
	uint8_t *out = data;
	memset(out, 0, len);
	pthread_mutex_lock(&pd->msix_lock);
	uint64_t tlen = 16ULL * pd->msix_nvec;
	if (off + len <= tlen) {
		memcpy(out, pd->msix_table + off, len);
	} else if (off >= PCI_MSIX_PBA_OFF && off + len <= PCI_MSIX_PBA_OFF + 8) {
		uint8_t pba[8] = { 0 };
		wr32(pba, pd->msix_pba);
		memcpy(out, pba + (off - PCI_MSIX_PBA_OFF), len);
	}
	pthread_mutex_unlock(&pd->msix_lock);
}

static void msix_bar_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct pci_dev *pd = opaque;
	pthread_mutex_lock(&pd->msix_lock);
	if (off + len <= 16ULL * pd->msix_nvec) {
		memcpy(pd->msix_table + off, data, len);
		/* Only bit 0 of vector control is defined; keep the rest 0. */
		for (unsigned v = (unsigned)(off / 16); v <= (off + len - 1) / 16; v++) {
			uint8_t *ctl = pd->msix_table + 16 * v + 12;
			wr32(ctl, rd32(ctl) & 1);
		}
		msix_flush_pending(pd);
	}
	pthread_mutex_unlock(&pd->msix_lock);
}

static const struct bus_ops msix_bar_ops = {
	.read = msix_bar_read,
	.write = msix_bar_write,
};

static void msix_reset(struct pci_dev *pd)
{
	memset(pd->msix_table, 0, sizeof(pd->msix_table));
	for (unsigned v = 0; v < pd->msix_nvec; v++)
		pd->msix_table[16 * v + 12] = 1;        /* masked */
	pd->msix_pba = 0;
	pd->msix_enabled = pd->msix_fmask = false;
}

/* ---- function setup ---- */

int pci_dev_init(struct pci_dev *pd, struct pci_host *h, uint16_t vendor,
		 uint16_t device, uint32_t class_code, uint8_t revision,
		 uint16_t subsys_vendor, uint16_t subsys_id)
{
	memset(pd, 0, sizeof(*pd));
	int rc = pthread_mutex_init(&pd->msix_lock, NULL);
	if (rc)
		return -rc;
	pd->host = h;
	uint8_t *c = pd->init;
	wr16(c + PCI_VENDOR_ID, vendor);
	wr16(c + PCI_DEVICE_ID, device);
	wr16(c + PCI_COMMAND, PCI_CMD_MEM);
	c[PCI_REVISION] = revision;
	c[PCI_CLASS_PROG] = (uint8_t)class_code;
	c[PCI_CLASS_PROG + 1] = (uint8_t)(class_code >> 8);
	c[PCI_CLASS_PROG + 2] = (uint8_t)(class_code >> 16);
	wr16(c + PCI_SUBSYS_VENDOR, subsys_vendor);
	wr16(c + PCI_SUBSYS_ID, subsys_id);
	wr16(pd->wmask + PCI_COMMAND, PCI_CMD_IO | PCI_CMD_MEM | PCI_CMD_MASTER | PCI_CMD_INTX_OFF);
	pd->wmask[0x0C] = 0xFF;                 /* cache line size */
	pd->wmask[0x0D] = 0xFF;                 /* latency timer */
	pd->wmask[PCI_INT_LINE] = 0xFF;
	pd->cap_end = PCI_CAP_START;
	memcpy(pd->cfg, pd->init, PCI_CFG_SIZE);
	return 0;
}

void pci_dev_destroy(struct pci_dev *pd)
{
	struct pci_host *h = pd->host;
	if (h && pd->slot) {
		pthread_mutex_lock(&h->lock);
		if (h->slots[pd->slot] == pd)
			h->slots[pd->slot] = NULL;
		pthread_mutex_unlock(&h->lock);
	}
	pthread_mutex_destroy(&pd->msix_lock);
}

int pci_dev_add_bar(struct pci_dev *pd, int idx, enum pci_bar_type type, uint64_t size,
		    const struct bus_ops *ops, void *opaque)
{
	int n = type == PCI_BAR_MEM64 ? 2 : 1;
	if (idx < 0 || idx + n > 6 || size < 4096 || (size & (size - 1)) ||
	    size > 0x10000000 || type == PCI_BAR_NONE)
		return -EINVAL;
	for (int i = idx; i < idx + n; i++)
		if (pd->bar[i].type != PCI_BAR_NONE || (i > 0 && pd->bar[i - 1].type == PCI_BAR_MEM64))
			return -EEXIST;
	struct pci_host *h = pd->host;
	uint64_t a = (h->next_mmio + size - 1) & ~(size - 1);
	if (a + size > PCI_MMIO_END)
		return -ENOSPC;
	h->next_mmio = a + size;
	pd->bar[idx] = (struct pci_bar){ .type = type, .size = size, .ops = ops, .opaque = opaque };
	uint8_t *c = pd->init + PCI_BAR0 + 4 * idx, *m = pd->wmask + PCI_BAR0 + 4 * idx;
	wr32(c, (uint32_t)a | (type == PCI_BAR_MEM64 ? 0x4 : 0));
	wr32(m, (uint32_t)~(size - 1) & ~0xFu);
	if (type == PCI_BAR_MEM64) {
		wr32(c + 4, (uint32_t)(a >> 32));
		wr32(m + 4, 0xFFFFFFFFu);
	}
	memcpy(pd->cfg, pd->init, PCI_CFG_SIZE);
	return 0;
}

int pci_dev_add_cap(struct pci_dev *pd, const uint8_t *cap, unsigned len)
{
	unsigned off = (pd->cap_end + 3u) & ~3u;
	if (len < 2 || off + len > PCI_CFG_SIZE)
		return -ENOSPC;
	memcpy(pd->init + off, cap, len);
	pd->init[off + 1] = 0;
	if (pd->cap_last)
		pd->init[pd->cap_last + 1] = (uint8_t)off;
	else
		pd->init[PCI_CAP_PTR] = (uint8_t)off;
	wr16(pd->init + PCI_STATUS, rd16(pd->init + PCI_STATUS) | PCI_STATUS_CAPS);
	pd->cap_last = (uint8_t)off;
	pd->cap_end = (uint8_t)(off + len);
	memcpy(pd->cfg, pd->init, PCI_CFG_SIZE);
	return (int)off;
}

int pci_dev_add_msix(struct pci_dev *pd, int bar_idx, unsigned nvec)
{
	if (nvec < 1 || nvec > PCI_MSIX_MAX || pd->msix_nvec)
		return -EINVAL;
	int rc = pci_dev_add_bar(pd, bar_idx, PCI_BAR_MEM32, PCI_MSIX_BAR_SIZE, &msix_bar_ops, pd);
	if (rc < 0)
		return rc;
	uint8_t cap[12] = { PCI_CAP_ID_MSIX, 0 };
	wr16(cap + 2, (uint16_t)(nvec - 1));
	wr32(cap + 4, (uint32_t)bar_idx);                       /* table at 0 */
	wr32(cap + 8, PCI_MSIX_PBA_OFF | (uint32_t)bar_idx);
	int off = pci_dev_add_cap(pd, cap, sizeof(cap));
	if (off < 0)
		return off;
	pd->msix_cap = (uint8_t)off;
	pd->msix_bar = (uint8_t)bar_idx;
	pd->msix_nvec = nvec;
	pd->wmask[off + 3] = (PCI_MSIX_ENABLE | PCI_MSIX_FMASK) >> 8;
	msix_reset(pd);
	return 0;
}

static int plug_at(struct pci_dev *pd, unsigned slot)
{
	struct pci_host *h = pd->host;
	pd->slot = slot;
	if (slot)
		pd->init[PCI_INT_LINE] = (uint8_t)BOOT_PCI_IRQ_PIN(slot, 0);
	pd->init[PCI_INT_PIN] = slot ? 1 : 0;
	memcpy(pd->cfg, pd->init, PCI_CFG_SIZE);
	pthread_mutex_lock(&h->lock);
	update_bars(pd);
	int rc = 0;
	for (int i = 0; i < 6; i++)
		if (pd->bar[i].type != PCI_BAR_NONE && !pd->bar[i].mapped)
			rc = -EEXIST;
	if (rc == 0)
		h->slots[slot] = pd;
	else
		for (int i = 0; i < 6; i++)
			if (pd->bar[i].mapped) {
				bus_unregister(h->vm->mmio, pd->bar[i].mapped_addr);
				pd->bar[i].mapped = false;
			}
	pthread_mutex_unlock(&h->lock);
	return rc;
}

int pci_dev_plug(struct pci_dev *pd)
{
	struct pci_host *h = pd->host;
	for (unsigned s = 1; s < PCI_MAX_SLOTS; s++)
		if (!h->slots[s])
			return plug_at(pd, s);
	return -ENOSPC;
}

void pci_dev_reset(struct pci_dev *pd)
{
	struct pci_host *h = pd->host;
	if (!h)
		return;                 /* VM teardown: nothing left to reset */
	pthread_mutex_lock(&h->lock);
	memcpy(pd->cfg, pd->init, PCI_CFG_SIZE);
	update_bars(pd);
	pthread_mutex_unlock(&h->lock);
	pthread_mutex_lock(&pd->msix_lock);
	msix_reset(pd);
	pd->intx_off = false;
	atomic_store(&pd->intx_level, 0);
	drive_intx_locked(pd);
	pthread_mutex_unlock(&pd->msix_lock);
}

/* ---- config cycles (host lock held) ---- */

static void cfg_read(struct pci_dev *pd, unsigned reg, uint8_t *out, unsigned len)
{
	for (unsigned i = 0; i < len; i++) {
		unsigned o = reg + i;
		uint8_t v = pd->cfg[o];
		if (o == PCI_STATUS && atomic_load(&pd->intx_level))
			v |= PCI_STATUS_INTX;
		out[i] = v;
	}
	if (pd->cfg_hook_read && reg < pd->hook_off + pd->hook_len && reg + len > pd->hook_off)
		pd->cfg_hook_read(pd, reg, out, len);
}

static void cfg_write(struct pci_dev *pd, unsigned reg, const uint8_t *in, unsigned len)
{
	bool bars = false, msix = false, cmd = false;
	for (unsigned i = 0; i < len; i++) {
		unsigned o = reg + i;
		uint8_t old = pd->cfg[o];
		pd->cfg[o] = (uint8_t)((old & ~pd->wmask[o]) | (in[i] & pd->wmask[o]));
		if (o == PCI_COMMAND || o == PCI_COMMAND + 1)
			bars = cmd = true;
		if (o >= PCI_BAR0 && o < PCI_BAR0 + 24)
			bars = true;
		if (pd->msix_nvec && o == pd->msix_cap + 3u)
			msix = true;
	}
	if (pd->cfg_hook_write && reg < pd->hook_off + pd->hook_len && reg + len > pd->hook_off)
		pd->cfg_hook_write(pd, reg, len);
	if (bars)
		update_bars(pd);
	if (msix)
		msix_ctrl_update(pd);
	if (cmd)
		intx_cmd_update(pd);
}

static struct pci_dev *cur_dev(struct pci_host *h, unsigned *reg)
{
	uint32_t a = h->addr;
	if (!(a & 0x80000000u) || ((a >> 16) & 0xFF) != 0 || ((a >> 8) & 7) != 0)
		return NULL;
	*reg = a & 0xFC;
	return h->slots[(a >> 11) & 0x1F];
}

static void addr_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct pci_host *h = opaque;
	if (off == 0 && len == 4) {
		pthread_mutex_lock(&h->lock);
		wr32(data, h->addr);
		pthread_mutex_unlock(&h->lock);
	}
}

static void addr_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct pci_host *h = opaque;
	if (off == 0 && len == 4) {
		pthread_mutex_lock(&h->lock);
		h->addr = rd32(data) & 0x80FFFFFCu;
		pthread_mutex_unlock(&h->lock);
	}
}

static void data_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct pci_host *h = opaque;
	unsigned reg;
	pthread_mutex_lock(&h->lock);
	struct pci_dev *pd = cur_dev(h, &reg);
	if (pd && len <= 4 && off + len <= 4)
		cfg_read(pd, reg + (unsigned)off, data, len);
	else
		memset(data, 0xFF, len);
	pthread_mutex_unlock(&h->lock);
}

static void data_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct pci_host *h = opaque;
	unsigned reg;
	pthread_mutex_lock(&h->lock);
	struct pci_dev *pd = cur_dev(h, &reg);
	if (pd && len <= 4 && off + len <= 4)
		cfg_write(pd, reg + (unsigned)off, data, len);
	pthread_mutex_unlock(&h->lock);
}

static const struct bus_ops addr_ops = { .read = addr_read, .write = addr_write };
static const struct bus_ops data_ops = { .read = data_read, .write = data_write };

/* ---- state ---- */

void pci_dev_save(struct pci_dev *pd, struct rec_writer *w)
{
	struct pci_host *h = pd->host;
	if (h)
		pthread_mutex_lock(&h->lock);
	rec_put_bytes(w, pd->cfg, PCI_CFG_SIZE);
	if (h)
		pthread_mutex_unlock(&h->lock);
	pthread_mutex_lock(&pd->msix_lock);
	rec_put_u8(w, (uint8_t)pd->msix_nvec);
	rec_put_bytes(w, pd->msix_table, 16 * pd->msix_nvec);
	rec_put_u32(w, pd->msix_pba);
	pthread_mutex_unlock(&pd->msix_lock);
	rec_put_u8(w, (uint8_t)atomic_load(&pd->intx_level));
}

int pci_dev_load(struct pci_dev *pd, struct rec_reader *r)
{
	uint8_t cfg[PCI_CFG_SIZE], table[PCI_MSIX_MAX * 16];
	rec_get_bytes(r, cfg, sizeof(cfg));
	unsigned nvec = rec_get_u8(r);
	if (nvec != pd->msix_nvec)
		rec_fail(r);
	rec_get_bytes(r, table, 16 * pd->msix_nvec);
	uint32_t pba = rec_get_u32(r);
	uint8_t intx = rec_get_u8(r);
	if (r->err)
		return -EINVAL;
	for (unsigned i = 0; i < PCI_CFG_SIZE; i++)
		if ((cfg[i] ^ pd->init[i]) & ~pd->wmask[i])
			return -EINVAL;
	if (intx > 1 || (nvec < 32 && (pba >> nvec)))
		return -EINVAL;
	for (unsigned v = 0; v < nvec; v++)
		if (rd32(table + 16 * v + 12) & ~1u)
			return -EINVAL;

	struct pci_host *h = pd->host;
	if (!h)
		return -ENODEV;
	pthread_mutex_lock(&h->lock);
	memcpy(pd->cfg, cfg, PCI_CFG_SIZE);
	update_bars(pd);
	pthread_mutex_lock(&pd->msix_lock);
	memcpy(pd->msix_table, table, 16 * nvec);
	pd->msix_pba = pba;
	if (nvec) {
		uint16_t ctl = rd16(pd->cfg + pd->msix_cap + 2);
		pd->msix_enabled = ctl & PCI_MSIX_ENABLE;
		pd->msix_fmask = ctl & PCI_MSIX_FMASK;
	}
	pd->intx_off = rd16(pd->cfg + PCI_COMMAND) & PCI_CMD_INTX_OFF;
	atomic_store(&pd->intx_level, intx);
	drive_intx_locked(pd);
	pthread_mutex_unlock(&pd->msix_lock);
	pthread_mutex_unlock(&h->lock);
	return 0;
}

/* ---- the host bridge device ---- */

static void host_reset(struct dev *d)
{
	struct pci_host *h = (struct pci_host *)d;
	pthread_mutex_lock(&h->lock);
	h->addr = 0;
	pthread_mutex_unlock(&h->lock);
	pci_dev_reset(&h->bridge);
}

static int host_save(struct dev *d, struct rec_writer *w)
{
	struct pci_host *h = (struct pci_host *)d;
	pthread_mutex_lock(&h->lock);
	rec_put_u32(w, h->addr);
	pthread_mutex_unlock(&h->lock);
	pci_dev_save(&h->bridge, w);
	return w->err;
}

static int host_load(struct dev *d, struct rec_reader *r, uint32_t version)
{
	struct pci_host *h = (struct pci_host *)d;
	uint32_t addr = rec_get_u32(r);
	if (r->err || (addr & ~0x80FFFFFCu))
		goto bad;
	if (pci_dev_load(&h->bridge, r) < 0)
		goto bad;
	pthread_mutex_lock(&h->lock);
	h->addr = addr;
	pthread_mutex_unlock(&h->lock);
	return 0;
bad:
	host_reset(d);
	return -EINVAL;
}

static void host_free(struct dev *d)
{
	struct pci_host *h = (struct pci_host *)d;
	for (unsigned s = 1; s < PCI_MAX_SLOTS; s++) {
		struct pci_dev *pd = h->slots[s];
		if (!pd)
			continue;
		if (pd->quiesce)
			pd->quiesce(pd);
		pd->host = NULL;
	}
	pci_dev_destroy(&h->bridge);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

static const struct dev_type pci_host_type = {
	.name = "pci-host",
	.version = PCI_HOST_STATE_VERSION,
	.min_version = 1,
	.reset = host_reset,
	.save = host_save,
	.load = host_load,
	.free = host_free,
};

int pci_host_create(struct vm *vm, struct pci_host **ret)
{
	struct pci_host *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	int rc = pthread_mutex_init(&h->lock, NULL);
	if (rc) {
		free(h);
		return -rc;
	}
	h->vm = vm;
	h->next_mmio = PCI_MMIO_BASE;
	rc = pci_dev_init(&h->bridge, h, 0x8086, 0x1237, 0x060000, 0x02, 0, 0);
	if (rc < 0)
		goto err_lock;
	rc = plug_at(&h->bridge, 0);
	if (rc < 0)
		goto err_bridge;
	rc = bus_register(vm->pio, 0xCF8, 4, &addr_ops, h);
	if (rc < 0)
		goto err_bridge;
	rc = bus_register(vm->pio, 0xCFC, 4, &data_ops, h);
	if (rc < 0)
		goto err_cf8;
	vm_add_dev(vm, &h->dev, &pci_host_type, "pci0");
	*ret = h;
	return 0;
err_cf8:
	bus_unregister(vm->pio, 0xCF8);
err_bridge:
	pci_dev_destroy(&h->bridge);
err_lock:
	pthread_mutex_destroy(&h->lock);
	free(h);
	return rc;
}
