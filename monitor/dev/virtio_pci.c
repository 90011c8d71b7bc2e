/* The virtio 1.x modern PCI transport: capabilities, common config
 * (feature negotiation, status state machine, queue setup), ISR, device
 * config window, notify region, interrupts (MSI-X or INTx), queue service
 * loop, reset, pause/resume and the transport part of the state record. */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "monitor/dev/virtio_int.h"
#include "monitor/vm.h"

#define VIRTIO_PCI_CAP_COMMON 1
#define VIRTIO_PCI_CAP_NOTIFY 2
#define VIRTIO_PCI_CAP_ISR    3
#define VIRTIO_PCI_CAP_DEVICE 4
#define VIRTIO_PCI_CAP_PCI_CFG 5

static uint64_t feat(unsigned bit) { return 1ULL << bit; }

/* ---- interrupts ---- */

static void raise_intx(struct virtio_dev *vd, uint8_t bit)
{
	vd->s.isr |= bit;
	pci_set_intx(&vd->pci, 1);
}

static void notify_queue(struct virtio_dev *vd, unsigned q)
{
	if (pci_msix_enabled(&vd->pci)) {
		if (vd->s.vq[q].vector != VIRTIO_NO_VECTOR)
			pci_msix_notify(&vd->pci, vd->s.vq[q].vector);
	} else {
		raise_intx(vd, 1);
	}
}

static void notify_config(struct virtio_dev *vd)
{
	if (pci_msix_enabled(&vd->pci)) {
		if (vd->s.msix_config != VIRTIO_NO_VECTOR)
			pci_msix_notify(&vd->pci, vd->s.msix_config);
	} else {
		raise_intx(vd, 2);
	}
}

void virtio_dev_fail(struct virtio_dev *vd)
{
	if (vd->s.status & VIRTIO_S_NEEDS_RESET)
		return;
	vd->s.status |= VIRTIO_S_NEEDS_RESET;
	vd->s.cfg_gen++;
	if (vd->s.status & VIRTIO_S_DRIVER_OK)
		notify_config(vd);
}

/* ---- queue service (worker thread) ---- */

/* Serves queue qi until it is empty, broken or the device is paused.
 * Lock held on entry and exit; dropped around each ops->handle. */
static void process_queue(struct virtio_dev *vd, unsigned qi)
{
	struct virtq *q = &vd->s.vq[qi].q;
	bool pushed = false;
	while (q->ready && !(vd->s.status & VIRTIO_S_NEEDS_RESET) &&
	       (vd->s.status & VIRTIO_S_DRIVER_OK)) {
		if (vd->paused || vd->hold || vd->stop) {
			vd->s.kick |= 1u << qi;     /* finish later */
			break;
		}
		int rc = virtq_pop(q, vd->req);
		if (rc == 0)
			break;
		uint32_t written = 0;
		if (rc > 0) {
			vd->inflight = true;
			pthread_mutex_unlock(&vd->lock);
			rc = vd->ops->handle(vd, qi, vd->req, &written);
			pthread_mutex_lock(&vd->lock);
			vd->inflight = false;
			pthread_cond_broadcast(&vd->idle);
		}
		if (rc < 0 || virtq_push(q, vd->req->head, written) < 0) {
			virtio_dev_fail(vd);
			return;
		}
		pushed = true;
	}
	if (pushed && virtq_should_notify(q))
		notify_queue(vd, qi);
}

static void *worker_main(void *arg)
{
	struct virtio_dev *vd = arg;
	pthread_mutex_lock(&vd->lock);
	while (!vd->stop) {
		if (vd->paused || vd->hold || !vd->s.kick) {
			pthread_cond_broadcast(&vd->idle);
			pthread_cond_wait(&vd->work, &vd->lock);
			continue;
		}
		unsigned qi = (unsigned)__builtin_ctz(vd->s.kick);
		vd->s.kick &= ~(1u << qi);
		process_queue(vd, qi);
	}
	pthread_mutex_unlock(&vd->lock);
	return NULL;
}

/* Waits until no chain is being served, holding the worker off so it
 * does not start the next one meanwhile. Lock held. */
static void wait_not_inflight(struct virtio_dev *vd)
{
	vd->hold++;
	while (vd->inflight)
		pthread_cond_wait(&vd->idle, &vd->lock);
	vd->hold--;
	if (!vd->hold)
		pthread_cond_signal(&vd->work);
}

void virtio_dev_drain(struct virtio_dev *vd)
{
	pthread_mutex_lock(&vd->lock);
	while (vd->inflight || (vd->s.kick && !vd->paused && !vd->hold && !vd->stop))
		pthread_cond_wait(&vd->idle, &vd->lock);
	pthread_mutex_unlock(&vd->lock);
}

/* ---- reset ---- */

/* Lock held. */
static void reset_locked(struct virtio_dev *vd)
{
	wait_not_inflight(vd);
	vd->s.status = 0;
	vd->s.guest_features = 0;
	vd->s.dfselect = vd->s.gfselect = 0;
	vd->s.isr = 0;
	vd->s.msix_config = VIRTIO_NO_VECTOR;
	vd->s.queue_sel = 0;
	vd->s.kick = 0;
	for (unsigned i = 0; i < vd->ops->nqueues; i++) {
		virtq_reset(&vd->s.vq[i].q, vd->vm->mem, vd->ops->queue_max);
		vd->s.vq[i].vector = VIRTIO_NO_VECTOR;
	}
	if (vd->ops->reset)
		vd->ops->reset(vd);
	pci_set_intx(&vd->pci, 0);
}

/* ---- common config ---- */

static const struct { uint8_t off, size; } common_fields[] = {
	{ 0x00, 4 }, { 0x04, 4 }, { 0x08, 4 }, { 0x0C, 4 }, { 0x10, 2 }, { 0x12, 2 },
	{ 0x14, 1 }, { 0x15, 1 }, { 0x16, 2 }, { 0x18, 2 }, { 0x1A, 2 }, { 0x1C, 2 },
	{ 0x1E, 2 }, { 0x20, 8 }, { 0x28, 8 }, { 0x30, 8 }, { 0x38, 2 }, { 0x3A, 2 },
};

static struct virtio_queue *sel_queue(struct virtio_dev *vd)
{
	return vd->s.queue_sel < vd->ops->nqueues ? &vd->s.vq[vd->s.queue_sel] : NULL;
}

static uint64_t common_get(struct virtio_dev *vd, unsigned off)
{
	struct virtio_queue *vq = sel_queue(vd);
	switch (off) {
	case 0x00: return vd->s.dfselect;
	case 0x04: return vd->s.dfselect < 2 ? (uint32_t)(vd->s.host_features >> (32 * vd->s.dfselect)) : 0;
	case 0x08: return vd->s.gfselect;
	case 0x0C: return vd->s.gfselect < 2 ? (uint32_t)(vd->s.guest_features >> (32 * vd->s.gfselect)) : 0;
	case 0x10: return vd->s.msix_config;
	case 0x12: return vd->ops->nqueues;
	case 0x14: return vd->s.status;
	case 0x15: return vd->s.cfg_gen;
	case 0x16: return vd->s.queue_sel;
	case 0x18: return vq ? vq->q.size : 0;
	case 0x1A: return vq ? vq->vector : VIRTIO_NO_VECTOR;
	case 0x1C: return vq ? vq->q.ready : 0;
	case 0x1E: return vq ? vd->s.queue_sel : 0;
	case 0x20: return vq ? vq->q.desc : 0;
	case 0x28: return vq ? vq->q.avail : 0;
	case 0x30: return vq ? vq->q.used : 0;
	case 0x38: return vq ? vd->s.queue_sel : 0;
	default: return 0;
	}
}

static uint16_t check_vector(struct virtio_dev *vd, uint16_t v)
{
	return v < pci_msix_nvec(&vd->pci) ? v : VIRTIO_NO_VECTOR;
}

static void enable_queue(struct virtio_dev *vd, struct virtio_queue *vq)
{
	struct virtq *q = &vq->q;
	q->event_idx = vd->s.guest_features & feat(VIRTIO_F_EVENT_IDX);
	q->indirect = vd->s.guest_features & feat(VIRTIO_F_INDIRECT_DESC);
	if (q->size > vd->ops->queue_max || virtq_check(q) < 0) {
		virtio_dev_fail(vd);
		return;
	}
	q->ready = true;
}

static void set_status(struct virtio_dev *vd, uint8_t v)
{
	if (v == 0) {
		reset_locked(vd);
		return;
	}
	/* Only the driver-owned bits; NEEDS_RESET is the device's. */
	v &= VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER | VIRTIO_S_DRIVER_OK |
	     VIRTIO_S_FEATURES_OK | VIRTIO_S_FAILED;
	if ((v & VIRTIO_S_FEATURES_OK) && !(vd->s.status & VIRTIO_S_FEATURES_OK)) {
		/* Refuse: features not offered, or a legacy (pre-1.0) driver. */
		if ((vd->s.guest_features & ~vd->s.host_features) ||
		    !(vd->s.guest_features & feat(VIRTIO_F_VERSION_1)))
			v &= (uint8_t)~VIRTIO_S_FEATURES_OK;
	}
	if (!(v & VIRTIO_S_FEATURES_OK))
		v &= (uint8_t)~VIRTIO_S_DRIVER_OK;
	vd->s.status = v | (vd->s.status & VIRTIO_S_NEEDS_RESET);
}

static void common_set(struct virtio_dev *vd, unsigned off, uint64_t v)
{
	struct virtio_queue *vq = sel_queue(vd);
	bool qwritable = vq && !vq->q.ready;
	switch (off) {
	case 0x00: vd->s.dfselect = (uint32_t)v; break;
	case 0x08: vd->s.gfselect = (uint32_t)v; break;
	case 0x0C:
		if (vd->s.gfselect < 2 && !(vd->s.status & VIRTIO_S_FEATURES_OK)) {
			unsigned sh = 32 * vd->s.gfselect;
			vd->s.guest_features = (vd->s.guest_features & ~(0xFFFFFFFFULL << sh)) |
					     (uint64_t)(uint32_t)v << sh;
		}
		break;
	case 0x10: vd->s.msix_config = check_vector(vd, (uint16_t)v); break;
	case 0x14: set_status(vd, (uint8_t)v); break;
	case 0x16: vd->s.queue_sel = (uint16_t)v; break;
	case 0x18: if (qwritable) vq->q.size = (uint16_t)v; break;
	case 0x1A: if (vq) vq->vector = check_vector(vd, (uint16_t)v); break;
	case 0x1C: if (qwritable && (v & 1)) enable_queue(vd, vq); break;
	case 0x20: if (qwritable) vq->q.desc = v; break;
	case 0x28: if (qwritable) vq->q.avail = v; break;
	case 0x30: if (qwritable) vq->q.used = v; break;
	default: break;             /* read-only fields */
	}
}

static void common_read(struct virtio_dev *vd, uint64_t off, uint8_t *out, unsigned len)
{
	for (unsigned i = 0; i < len; i++) {
		uint64_t o = off + i;
		out[i] = 0;
		for (size_t f = 0; f < sizeof(common_fields) / sizeof(common_fields[0]); f++) {
			unsigned fo = common_fields[f].off, fs = common_fields[f].size;
			if (o >= fo && o < fo + fs) {
				out[i] = (uint8_t)(common_get(vd, fo) >> (8 * (o - fo)));
				break;
			}
		}
	}
}

static void common_write(struct virtio_dev *vd, uint64_t off, const uint8_t *in, unsigned len)
{
	for (size_t f = 0; f < sizeof(common_fields) / sizeof(common_fields[0]); f++) {
		unsigned fo = common_fields[f].off, fs = common_fields[f].size;
		if (off + len <= fo || off >= fo + fs)
			continue;
		uint64_t v = common_get(vd, fo);
		for (unsigned i = 0; i < len; i++) {
			uint64_t o = off + i;
			if (o >= fo && o < fo + fs) {
				unsigned sh = 8 * (unsigned)(o - fo);
				v = (v & ~(0xFFULL << sh)) | (uint64_t)in[i] << sh;
			}
		}
		common_set(vd, fo, v);
	}
}

/* ---- BAR4 dispatch ---- */

static void main_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct virtio_dev *vd = opaque;
	uint8_t *out = data;
	memset(out, 0, len);
	pthread_mutex_lock(&vd->lock);
	if (off < VIRTIO_COMMON_OFF + VIRTIO_COMMON_LEN) {
		common_read(vd, off, out, len);
	} else if (off == VIRTIO_ISR_OFF) {
		out[0] = vd->s.isr;
		vd->s.isr = 0;
		pci_set_intx(&vd->pci, 0);
	} else if (off >= VIRTIO_DEVCFG_OFF && off - VIRTIO_DEVCFG_OFF + len <= vd->ops->cfg_size) {
		uint8_t buf[0x1000];
		vd->ops->get_config(vd, buf);
		memcpy(out, buf + (off - VIRTIO_DEVCFG_OFF), len);
	}
	pthread_mutex_unlock(&vd->lock);
}

static void main_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct virtio_dev *vd = opaque;
	pthread_mutex_lock(&vd->lock);
	if (off < VIRTIO_COMMON_OFF + VIRTIO_COMMON_LEN) {
		common_write(vd, off, data, len);
	} else if (off >= VIRTIO_NOTIFY_OFF &&
		   off < VIRTIO_NOTIFY_OFF + (uint64_t)VIRTIO_NOTIFY_MULT * vd->ops->nqueues) {
		unsigned q = (unsigned)(off - VIRTIO_NOTIFY_OFF) / VIRTIO_NOTIFY_MULT;
		vd->s.kick |= 1u << q;
		pthread_cond_signal(&vd->work);
	}
	/* Device config is read-only for the devices here. */
	pthread_mutex_unlock(&vd->lock);
}

static const struct bus_ops main_ops = { .read = main_read, .write = main_write };

/* ---- VIRTIO_PCI_CAP_PCI_CFG: BAR access through config space ---- */

/* The window's BAR, offset and length, when they name a valid access. */
static const struct pci_bar *pcicfg_target(struct pci_dev *pd, uint32_t *off, uint32_t *len)
{
	const uint8_t *cap = pd->cfg + pd->hook_off - 16;
	uint8_t bar = cap[4];
	memcpy(off, cap + 8, 4);
	memcpy(len, cap + 12, 4);
	if (bar > 5 || pd->bar[bar].type == PCI_BAR_NONE ||
	    (*len != 1 && *len != 2 && *len != 4) || *off % *len ||
	    (uint64_t)*off + *len > pd->bar[bar].size)
		return NULL;
	return &pd->bar[bar];
}

static void pcicfg_read(struct pci_dev *pd, unsigned reg, uint8_t *out, unsigned len)
{
	uint32_t off, n;
	const struct pci_bar *b = pcicfg_target(pd, &off, &n);
	uint8_t buf[4] = { 0 };
	if (b)
		b->ops->read(b->opaque, off, buf, n);
	memcpy(pd->cfg + pd->hook_off, buf, 4);
	for (unsigned i = 0; i < len; i++)
		if (reg + i >= pd->hook_off && reg + i < pd->hook_off + 4u)
			out[i] = buf[reg + i - pd->hook_off];
}

static void pcicfg_write(struct pci_dev *pd, unsigned reg, unsigned len)
{
	uint32_t off, n;
	const struct pci_bar *b = pcicfg_target(pd, &off, &n);
	if (b)
		b->ops->write(b->opaque, off, pd->cfg + pd->hook_off, n);
}

/* ---- setup ---- */

static void pci_quiesce(struct pci_dev *pd);

static int add_vcap(struct virtio_dev *vd, uint8_t type, uint32_t off, uint32_t len, bool notify)
{
	uint8_t cap[20] = { PCI_CAP_ID_VNDR, 0, notify ? 20 : 16, type, VIRTIO_BAR_MAIN };
	memcpy(cap + 8, &off, 4);
	memcpy(cap + 12, &len, 4);
	uint32_t mult = VIRTIO_NOTIFY_MULT;
	if (notify)
		memcpy(cap + 16, &mult, 4);
	int rc = pci_dev_add_cap(&vd->pci, cap, notify ? 20 : 16);
	return rc < 0 ? rc : 0;
}

int virtio_dev_init(struct virtio_dev *vd, struct vm *vm, const struct virtio_dev_ops *ops,
		    uint64_t host_features)
{
	if (!vm->pci || ops->nqueues == 0 || ops->nqueues > VIRTIO_MAX_QUEUES ||
	    ops->cfg_size > 0x1000)
		return -EINVAL;
	vd->vm = vm;
	vd->ops = ops;
	vd->s.host_features = host_features | feat(VIRTIO_F_VERSION_1);
	vd->req = malloc(sizeof(*vd->req));
	if (!vd->req)
		return -ENOMEM;
	int rc = pthread_mutex_init(&vd->lock, NULL);
	if (rc) {
		free(vd->req);
		return -rc;
	}
	if ((rc = pthread_cond_init(&vd->work, NULL)) != 0) {
		rc = -rc;
		goto err_lock;
	}
	if ((rc = pthread_cond_init(&vd->idle, NULL)) != 0) {
		rc = -rc;
		goto err_work;
	}
	rc = pci_dev_init(&vd->pci, vm->pci, 0x1AF4, (uint16_t)(0x1040 + ops->device_id),
			  ops->class_code, 1, 0x1AF4, 0x1100);
	if (rc < 0)
		goto err_idle;
	if ((rc = pci_dev_add_msix(&vd->pci, VIRTIO_BAR_MSIX, ops->nqueues + 1)) < 0 ||
	    (rc = pci_dev_add_bar(&vd->pci, VIRTIO_BAR_MAIN, PCI_BAR_MEM64, VIRTIO_BAR_SIZE,
				  &main_ops, vd)) < 0 ||
	    (rc = add_vcap(vd, VIRTIO_PCI_CAP_COMMON, VIRTIO_COMMON_OFF, VIRTIO_COMMON_LEN, false)) < 0 ||
	    (rc = add_vcap(vd, VIRTIO_PCI_CAP_ISR, VIRTIO_ISR_OFF, 1, false)) < 0 ||
	    (rc = add_vcap(vd, VIRTIO_PCI_CAP_NOTIFY, VIRTIO_NOTIFY_OFF,
			   VIRTIO_NOTIFY_MULT * ops->nqueues, true)) < 0 ||
	    (ops->cfg_size &&
	     (rc = add_vcap(vd, VIRTIO_PCI_CAP_DEVICE, VIRTIO_DEVCFG_OFF, ops->cfg_size, false)) < 0))
		goto err_pci;
	/* The config-space access window (cap + u8 pci_cfg_data[4]). */
	uint8_t pcap[20] = { PCI_CAP_ID_VNDR, 0, 20, VIRTIO_PCI_CAP_PCI_CFG };
	if ((rc = pci_dev_add_cap(&vd->pci, pcap, sizeof(pcap))) < 0)
		goto err_pci;
	vd->pci.wmask[rc + 4] = 0xFF;
	memset(vd->pci.wmask + rc + 8, 0xFF, 12);   /* offset, length, data */
	vd->pci.hook_off = (uint8_t)(rc + 16);
	vd->pci.hook_len = 4;
	vd->pci.cfg_hook_read = pcicfg_read;
	vd->pci.cfg_hook_write = pcicfg_write;
	vd->pci.quiesce = pci_quiesce;
	reset_locked(vd);
	/* The worker inherits a full signal mask: process signals belong
	 * to the threads that handle them. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&vd->worker, NULL, worker_main, vd);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc < 0)
		goto err_pci;
	return 0;
err_pci:
	pci_dev_destroy(&vd->pci);
err_idle:
	pthread_cond_destroy(&vd->idle);
err_work:
	pthread_cond_destroy(&vd->work);
err_lock:
	pthread_mutex_destroy(&vd->lock);
	free(vd->req);
	vd->req = NULL;
	return rc;
}

int virtio_dev_plug(struct virtio_dev *vd, const struct dev_type *t, const char *id)
{
	if (!id || !*id || strlen(id) >= sizeof(vd->dev.id))
		return -EINVAL;
	if (vm_find_dev(vd->vm, id))
		return -EEXIST;
	int rc = pci_dev_plug(&vd->pci);
	if (rc < 0)
		return rc;
	vm_add_dev(vd->vm, &vd->dev, t, id);
	return 0;
}

/* Stops and joins the worker (once). */
static void stop_worker(struct virtio_dev *vd)
{
	pthread_mutex_lock(&vd->lock);
	bool was = vd->stop;
	vd->stop = true;
	pthread_cond_signal(&vd->work);
	pthread_cond_broadcast(&vd->idle);
	pthread_mutex_unlock(&vd->lock);
	if (!was)
		pthread_join(vd->worker, NULL);
}

static void pci_quiesce(struct pci_dev *pd)
{
	stop_worker((struct virtio_dev *)((char *)pd - offsetof(struct virtio_dev, pci)));
}

void virtio_dev_destroy(struct virtio_dev *vd)
{
	stop_worker(vd);
	pthread_cond_destroy(&vd->idle);
	pthread_cond_destroy(&vd->work);
	pci_dev_destroy(&vd->pci);
	pthread_mutex_destroy(&vd->lock);
	free(vd->req);
	vd->req = NULL;
}

/* ---- dev_type callbacks ---- */

void virtio_dev_reset(struct dev *d)
{
	struct virtio_dev *vd = (struct virtio_dev *)d;
	pthread_mutex_lock(&vd->lock);
	reset_locked(vd);
	pthread_mutex_unlock(&vd->lock);
	pci_dev_reset(&vd->pci);
}

int virtio_dev_save(struct dev *d, struct rec_writer *w)
{
	struct virtio_dev *vd = (struct virtio_dev *)d;
	/* Not under vd->lock: the host lock nests outside device locks
	 * (config cycle -> BAR move -> bus write lock vs MMIO -> device). */
	pci_dev_save(&vd->pci, w);
	pthread_mutex_lock(&vd->lock);
	wait_not_inflight(vd);
	rec_put_u64(w, vd->s.host_features);
	rec_put_u64(w, vd->s.guest_features);
	rec_put_u32(w, vd->s.dfselect);
	rec_put_u32(w, vd->s.gfselect);
	rec_put_u8(w, vd->s.status);
	rec_put_u8(w, vd->s.cfg_gen);
	rec_put_u8(w, vd->s.isr);
	rec_put_u16(w, vd->s.msix_config);
	rec_put_u16(w, vd->s.queue_sel);
	rec_put_u8(w, (uint8_t)vd->ops->nqueues);
	for (unsigned i = 0; i < vd->ops->nqueues; i++) {
		rec_put_u16(w, vd->s.vq[i].vector);
		virtq_save(&vd->s.vq[i].q, w);
	}
	rec_put_u32(w, vd->s.kick);
	if (vd->ops->save)
		vd->ops->save(vd, w);
	pthread_mutex_unlock(&vd->lock);
	return w->err;
}

static bool vector_ok(struct virtio_dev *vd, uint16_t v)
{
	return v == VIRTIO_NO_VECTOR || v < pci_msix_nvec(&vd->pci);
}

int virtio_dev_load(struct dev *d, struct rec_reader *r, uint32_t version)
{
	struct virtio_dev *vd = (struct virtio_dev *)d;
	if (version < 1 || version > d->type->version || pci_dev_load(&vd->pci, r) < 0)
		goto bad;
	pthread_mutex_lock(&vd->lock);
	wait_not_inflight(vd);
	struct virtio_state t = vd->s;  /* parsed copy; committed when valid */
	if (rec_get_u64(r) != vd->s.host_features)
		rec_fail(r);
	t.guest_features = rec_get_u64(r);
	t.dfselect = rec_get_u32(r);
	t.gfselect = rec_get_u32(r);
	t.status = rec_get_u8(r);
	t.cfg_gen = rec_get_u8(r);
	t.isr = rec_get_u8(r);
	t.msix_config = rec_get_u16(r);
	t.queue_sel = rec_get_u16(r);
	if (rec_get_u8(r) != vd->ops->nqueues)
		rec_fail(r);
	for (unsigned i = 0; i < vd->ops->nqueues && !r->err; i++) {
		t.vq[i].vector = rec_get_u16(r);
		if (!vector_ok(vd, t.vq[i].vector) ||
		    virtq_load(&t.vq[i].q, r, vd->ops->queue_max) < 0)
			rec_fail(r);
	}
	t.kick = rec_get_u32(r);
	/* A driver may write any feature bits; they must be offered ones
	 * only once FEATURES_OK was accepted. */
	if (((t.status & VIRTIO_S_FEATURES_OK) &&
	     ((t.guest_features & ~vd->s.host_features) ||
	      !(t.guest_features & feat(VIRTIO_F_VERSION_1)))) ||
	    (t.status & 0x30) || t.isr > 3 ||
	    !vector_ok(vd, t.msix_config) || (t.kick >> vd->ops->nqueues))
		rec_fail(r);
	if (!r->err) {
		/* Kicks in the record wait for the next notify or resume: the
		 * caller may still be restoring memory and dirty bitmaps. */
		vd->s = t;
		if (vd->ops->load && vd->ops->load(vd, r) < 0)
			rec_fail(r);
	}
	pthread_mutex_unlock(&vd->lock);
	if (r->err)
		goto bad;
	return 0;
bad:
	virtio_dev_reset(d);
	return -EINVAL;
}

void virtio_dev_pause(struct dev *d)
{
	struct virtio_dev *vd = (struct virtio_dev *)d;
	/* Finish every request already kicked, so a save taken after
	 * vm_pause + pause has nothing half-done or waiting. */
	pthread_mutex_lock(&vd->lock);
	while (vd->inflight || (vd->s.kick && !vd->paused && !vd->stop))
		pthread_cond_wait(&vd->idle, &vd->lock);
	vd->paused = true;
	pthread_mutex_unlock(&vd->lock);
}

void virtio_dev_resume(struct dev *d)
{
	struct virtio_dev *vd = (struct virtio_dev *)d;
	pthread_mutex_lock(&vd->lock);
	vd->paused = false;
	pthread_cond_signal(&vd->work);
	pthread_mutex_unlock(&vd->lock);
}

void virtio_dev_free(struct dev *d)
{
	struct virtio_dev *vd = (struct virtio_dev *)d;
	stop_worker(vd);                /* before the backend goes away */
	if (vd->ops->release)
		vd->ops->release(vd);
	virtio_dev_destroy(vd);
	free(vd);
}
