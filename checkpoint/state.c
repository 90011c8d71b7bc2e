/* The machine-state object: encoding and decoding (format in state.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "checkpoint/state.h"
#include "monitor/dev.h"
#include "monitor/evloop.h"
#include "monitor/vm.h"

#define TAG(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
#define TAG_MACH TAG('M', 'A', 'C', 'H')
#define TAG_VCPU TAG('V', 'C', 'P', 'U')
#define TAG_DEV  TAG('D', 'E', 'V', ' ')
#define F_REQUIRED 1
#define MAX_SECTIONS 1024
#define MAX_SECTION_LEN (64u << 20)

static void seg_put(struct rec_writer *w, const struct cpu_seg *s)
{
	rec_put_u64(w, s->base);
	rec_put_u32(w, s->limit);
	rec_put_u32(w, s->attr);
	rec_put_u16(w, s->sel);
}

static void seg_get(struct rec_reader *r, struct cpu_seg *s)
{
	s->base = rec_get_u64(r);
	s->limit = rec_get_u32(r);
	s->attr = rec_get_u32(r);
	s->sel = rec_get_u16(r);
}

void ckpt_cpu_encode(struct rec_writer *w, const struct cpu_state *st)
{
	for (int i = 0; i < 16; i++)
		rec_put_u64(w, st->gpr[i]);
	rec_put_u64(w, st->rip);
	rec_put_u64(w, st->rflags);
	for (int i = 0; i < SEG_COUNT; i++)
		seg_put(w, &st->seg[i]);
	rec_put_u64(w, st->gdt.base);
	rec_put_u16(w, st->gdt.limit);
	rec_put_u64(w, st->idt.base);
	rec_put_u16(w, st->idt.limit);
	const uint64_t cr[] = { st->cr0, st->cr2, st->cr3, st->cr4, st->cr8, st->efer, st->xcr0 };
	for (size_t i = 0; i < sizeof(cr) / sizeof(cr[0]); i++)
		rec_put_u64(w, cr[i]);
	for (int i = 0; i < 8; i++)
		rec_put_u64(w, st->dr[i]);
	rec_put_u32(w, st->nmsrs);
	for (uint32_t i = 0; i < st->nmsrs && i < CPU_MAX_MSRS; i++) {
		rec_put_u32(w, st->msrs[i].index);
		rec_put_u64(w, st->msrs[i].value);
	}
	rec_put_u32(w, st->xsave_size);
	rec_put_bytes(w, st->xsave, st->xsave_size <= CPU_XSAVE_MAX ? st->xsave_size : 0);
	const struct cpu_events *e = &st->ev;
	const uint8_t ev[] = { e->exc_pending, e->exc_injected, e->exc_vector, e->exc_has_error,
			       e->nmi_pending, e->nmi_injected, e->nmi_masked, e->irq_injected,
			       e->irq_vector, e->shadow };
	rec_put_bytes(w, ev, sizeof(ev));
	rec_put_u32(w, e->exc_error);
	rec_put_u32(w, st->mp_state);
	rec_put_u32(w, st->sipi_vector);
	rec_put_bytes(w, st->lapic, CPU_LAPIC_SIZE);
}

int ckpt_cpu_decode(struct rec_reader *r, struct cpu_state *st)
{
	memset(st, 0, sizeof(*st));
	for (int i = 0; i < 16; i++)
		st->gpr[i] = rec_get_u64(r);
	st->rip = rec_get_u64(r);
	st->rflags = rec_get_u64(r);
	for (int i = 0; i < SEG_COUNT; i++)
		seg_get(r, &st->seg[i]);
	st->gdt.base = rec_get_u64(r);
	st->gdt.limit = rec_get_u16(r);
	st->idt.base = rec_get_u64(r);
	st->idt.limit = rec_get_u16(r);
	uint64_t *cr[] = { &st->cr0, &st->cr2, &st->cr3, &st->cr4, &st->cr8, &st->efer, &st->xcr0 };
	for (size_t i = 0; i < sizeof(cr) / sizeof(cr[0]); i++)
		*cr[i] = rec_get_u64(r);
	for (int i = 0; i < 8; i++)
		st->dr[i] = rec_get_u64(r);
	st->nmsrs = rec_get_u32(r);
	if (st->nmsrs > CPU_MAX_MSRS) {
		rec_fail(r);
		return -EINVAL;
	}
	for (uint32_t i = 0; i < st->nmsrs; i++) {
		st->msrs[i].index = rec_get_u32(r);
		st->msrs[i].value = rec_get_u64(r);
	}
	st->xsave_size = rec_get_u32(r);
	if (st->xsave_size > CPU_XSAVE_MAX) {
		rec_fail(r);
		return -EINVAL;
	}
	rec_get_bytes(r, st->xsave, st->xsave_size);
	uint8_t ev[10];
	rec_get_bytes(r, ev, sizeof(ev));
	struct cpu_events *e = &st->ev;
	e->exc_pending = ev[0]; e->exc_injected = ev[1]; e->exc_vector = ev[2];
	e->exc_has_error = ev[3]; e->nmi_pending = ev[4]; e->nmi_injected = ev[5];
	e->nmi_masked = ev[6]; e->irq_injected = ev[7]; e->irq_vector = ev[8]; e->shadow = ev[9];
	e->exc_error = rec_get_u32(r);
	st->mp_state = rec_get_u32(r);
	st->sipi_vector = rec_get_u32(r);
	rec_get_bytes(r, st->lapic, CPU_LAPIC_SIZE);
	if (st->mp_state > CPU_STOPPED || e->exc_vector > 31 || e->shadow > 2)
		rec_fail(r);
	return r->err;
}

/* Writes a section header now and patches its length when it ends. */
static size_t section_begin(struct rec_writer *w, uint32_t tag, uint16_t version, uint16_t flags)
{
	rec_put_u32(w, tag);
	rec_put_u16(w, version);
	rec_put_u16(w, flags);
	rec_put_u32(w, 0);
	return w->len;
}

static void section_end(struct rec_writer *w, size_t start)
{
	if (w->err)
		return;
	uint32_t len = (uint32_t)(w->len - start);
	for (int i = 0; i < 4; i++)
		w->buf[start - 4 + i] = (uint8_t)(len >> 8 * i);
}

static void put_str8(struct rec_writer *w, const char *s)
{
	size_t n = strlen(s);
	if (n > 255)
		n = 255;
	rec_put_u8(w, (uint8_t)n);
	rec_put_bytes(w, s, n);
}

int ckpt_state_save(struct vm *vm, void **ret, size_t *ret_len, char *err, size_t errlen)
{
	struct rec_writer w;
	rec_writer_init(&w);
	int ndev = 0;
	for (struct dev *d = vm->devs; d; d = d->next)
		ndev++;
	rec_put_bytes(&w, "RMST", 4);
	rec_put_u16(&w, CKPT_STATE_MAJOR);
	rec_put_u16(&w, CKPT_STATE_MINOR);
	rec_put_u32(&w, (uint32_t)(1 + vm->ncpus + ndev));

	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	size_t s = section_begin(&w, TAG_MACH, 1, F_REQUIRED);
	rec_put_u32(&w, (uint32_t)vm->ncpus);
	rec_put_u64(&w, vm->cfg.mem_size);
	rec_put_u64(&w, vm_guest_tsc(vm));
	rec_put_u64(&w, vm->tsc_khz);
	rec_put_u64(&w, (uint64_t)((int64_t)now.tv_sec * 1000000000LL + now.tv_nsec));
	put_str8(&w, vm->eng_ops->name);
	section_end(&w, s);

	struct cpu_state *st = malloc(sizeof(*st));
	int rc = st ? 0 : -ENOMEM;
	for (int i = 0; i < vm->ncpus && rc == 0; i++) {
		rc = vm->eng_ops->get_state(vm->eng, i, st);
		if (rc < 0) {
			snprintf(err, errlen, "cannot read the state of vCPU %d: %s", i, strerror(-rc));
			break;
		}
		s = section_begin(&w, TAG_VCPU, 1, F_REQUIRED);
		ckpt_cpu_encode(&w, st);
		section_end(&w, s);
	}
	free(st);
	for (struct dev *d = vm->devs; d && rc == 0; d = d->next) {
		s = section_begin(&w, TAG_DEV, 1, F_REQUIRED);
		put_str8(&w, d->id);
		put_str8(&w, d->type->name);
		rec_put_u32(&w, d->type->version);
		if (d->type->save && (rc = d->type->save(d, &w)) < 0)
			snprintf(err, errlen, "cannot save device %s: %s", d->id, strerror(-rc));
		section_end(&w, s);
	}
	if (rc == 0 && w.err) {
		rc = w.err;
		snprintf(err, errlen, "out of memory while saving the machine state");
	}
	if (rc < 0) {
		rec_writer_free(&w);
		return rc;
	}
	*ret = w.buf;
	*ret_len = w.len;
	return 0;
}

struct section {
	uint32_t tag;
	uint16_t version, flags;
	struct rec_reader body;
};

static void tag_str(uint32_t tag, char out[5])
{
	for (int i = 0; i < 4; i++) {
		char c = (char)(tag >> 8 * i);
		out[i] = c >= 0x20 && c < 0x7f ? c : '?';
	}
	out[4] = 0;
}

/* The n bytes of a name read from a state, made safe to print in a
 * one-line message (they are hostile: newlines, escapes, NULs). */
static void printable(char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
			s[i] = '?';
}

/* A saved name matches want exactly (no NUL inside, nothing after). */
static bool name_is(const char *want, const char *got, size_t n)
{
	return strlen(want) == n && !memcmp(want, got, n);
}

/* Iterates sections: 1 with *sec filled, 0 at the end, -EINVAL. */
static int next_section(struct rec_reader *r, uint32_t *left, struct section *sec)
{
	if (*left == 0)
		return r->pos == r->len ? 0 : -EINVAL;
	(*left)--;
	sec->tag = rec_get_u32(r);
	sec->version = rec_get_u16(r);
	sec->flags = rec_get_u16(r);
	uint32_t len = rec_get_u32(r);
	if (r->err || len > MAX_SECTION_LEN || len > r->len - r->pos)
		return -EINVAL;
	rec_reader_init(&sec->body, r->p + r->pos, len);
	r->pos += len;
	return 1;
}

static int open_state(struct rec_reader *r, const void *buf, size_t len, uint32_t *nsec,
		      char *err, size_t errlen)
{
	rec_reader_init(r, buf, len);
	char magic[4];
	rec_get_bytes(r, magic, 4);
	uint16_t major = rec_get_u16(r), minor = rec_get_u16(r);
	*nsec = rec_get_u32(r);
	if (r->err || memcmp(magic, "RMST", 4)) {
		snprintf(err, errlen, "the state object is not a roam machine state");
		return -EINVAL;
	}
	if (major != CKPT_STATE_MAJOR) {
		snprintf(err, errlen, "machine state version %u.%u is not supported by this roam (it reads %u.x)",
			 major, minor, CKPT_STATE_MAJOR);
		return -EPROTONOSUPPORT;
	}
	if (*nsec > MAX_SECTIONS) {
		snprintf(err, errlen, "the machine state has %u sections (corrupt)", *nsec);
		return -EINVAL;
	}
	return 0;
}

static int read_mach(struct section *sec, struct ckpt_mach *m, char *err, size_t errlen)
{
	if (sec->version != 1) {
		snprintf(err, errlen, "machine state section MACH version %u is not supported", sec->version);
		return -EPROTONOSUPPORT;
	}
	struct rec_reader *r = &sec->body;
	memset(m, 0, sizeof(*m));
	m->ncpus = rec_get_u32(r);
	m->mem_size = rec_get_u64(r);
	m->guest_tsc = rec_get_u64(r);
	m->tsc_khz = rec_get_u64(r);
	m->wall_ns = (int64_t)rec_get_u64(r);
	uint8_t n = rec_get_u8(r);
	char name[256];
	rec_get_bytes(r, name, n);
	snprintf(m->engine, sizeof(m->engine), "%.*s", (int)n, name);
	if (r->err || m->ncpus < 1 || m->ncpus > VM_MAX_CPUS || !m->tsc_khz) {
		snprintf(err, errlen, "machine state section MACH is corrupt");
		return -EINVAL;
	}
	return 0;
}

int ckpt_state_peek(const void *buf, size_t len, struct ckpt_mach *ret, char *err, size_t errlen)
{
	struct rec_reader r;
	uint32_t left;
	int rc = open_state(&r, buf, len, &left, err, errlen);
	if (rc < 0)
		return rc;
	struct section sec;
	if (next_section(&r, &left, &sec) != 1 || sec.tag != TAG_MACH) {
		snprintf(err, errlen, "the machine state does not start with its MACH section");
		return -EINVAL;
	}
	return read_mach(&sec, ret, err, errlen);
}

int ckpt_state_load(struct vm *vm, const void *buf, size_t len, char *err, size_t errlen)
{
	struct rec_reader r;
	uint32_t left;
	if (errlen)
		err[0] = 0;
	int rc = open_state(&r, buf, len, &left, err, errlen);
	if (rc < 0)
		return rc;
	struct ckpt_mach mach;
	int have_mach = 0, cpu = 0;
	struct dev *dev = vm->devs;
	struct cpu_state *st = malloc(sizeof(*st));
	if (!st)
		return -ENOMEM;
	struct section sec;
	char tag[5];
	/* MACH comes first and once, as ckpt_state_peek (which resume uses
	 * to size the machine) reads it. */
	while ((rc = next_section(&r, &left, &sec)) == 1) {
		tag_str(sec.tag, tag);
		if ((sec.tag == TAG_MACH) == have_mach) {
			snprintf(err, errlen, have_mach ? "the machine state has a second MACH section (corrupt)"
				 : "the machine state does not start with its MACH section");
			rc = -EINVAL;
			break;
		}
		if (sec.tag == TAG_MACH) {
			if ((rc = read_mach(&sec, &mach, err, errlen)) < 0)
				break;
			if (mach.ncpus != (uint32_t)vm->ncpus || mach.mem_size != vm->cfg.mem_size) {
				snprintf(err, errlen, "the saved machine has %u CPUs and %llu MiB, this VM %d and %llu MiB",
					 mach.ncpus, (unsigned long long)(mach.mem_size >> 20), vm->ncpus,
					 (unsigned long long)(vm->cfg.mem_size >> 20));
				rc = -EINVAL;
				break;
			}
			have_mach = 1;
			/* The guest's TSC continues from where it stopped. Set
			 * before the vCPUs' state: engines (KVM) scale and offset
			 * the TSC in set_state from these. */
			vm->tsc_khz = mach.tsc_khz;
			vm->tsc_epoch_ns = now_ns();
			vm->tsc_offset = mach.guest_tsc;
		} else if (sec.tag == TAG_VCPU) {
			if (sec.version != 1) {
				snprintf(err, errlen, "machine state section VCPU version %u is not supported", sec.version);
				rc = -EPROTONOSUPPORT;
				break;
			}
			if (cpu >= vm->ncpus || ckpt_cpu_decode(&sec.body, st) < 0 ||
			    sec.body.pos != sec.body.len) {
				snprintf(err, errlen, "machine state section VCPU %d is corrupt", cpu);
				rc = -EINVAL;
				break;
			}
			if ((rc = vm->eng_ops->set_state(vm->eng, cpu, st)) < 0) {
				snprintf(err, errlen, "vCPU %d: the engine refused the saved state: %s", cpu, strerror(-rc));
				break;
			}
			cpu++;
		} else if (sec.tag == TAG_DEV) {
			if (sec.version != 1) {
				snprintf(err, errlen, "machine state section DEV version %u is not supported", sec.version);
				rc = -EPROTONOSUPPORT;
				break;
			}
			struct rec_reader *b = &sec.body;
			char id[256], type[256];
			uint8_t idlen = rec_get_u8(b);
			rec_get_bytes(b, id, idlen);
			id[idlen] = 0;
			uint8_t typelen = rec_get_u8(b);
			rec_get_bytes(b, type, typelen);
			type[typelen] = 0;
			uint32_t version = rec_get_u32(b);
			if (b->err || !dev || !name_is(dev->id, id, idlen) ||
			    !name_is(dev->type->name, type, typelen)) {
				printable(id, idlen);
				printable(type, typelen);
				snprintf(err, errlen, "saved device %s (%s) does not match this VM's device %s",
					 b->err ? "?" : id, b->err ? "?" : type, dev ? dev->id : "(none)");
				rc = -EINVAL;
				break;
			}
			if (version > dev->type->version || version < dev->type->min_version) {
				snprintf(err, errlen, "device %s: state version %u is not supported (this roam reads %u..%u)",
					 id, version, dev->type->min_version, dev->type->version);
				rc = -EPROTONOSUPPORT;
				break;
			}
			if ((dev->type->load && (rc = dev->type->load(dev, b, version)) < 0) ||
			    b->err || b->pos != b->len) {
				snprintf(err, errlen, "device %s: its saved state is corrupt", id);
				rc = rc < 0 ? rc : -EINVAL;
				break;
			}
			dev = dev->next;
		} else if (sec.flags & F_REQUIRED) {
			snprintf(err, errlen, "machine state section %s version %u is required but unknown to this roam",
				 tag, sec.version);
			rc = -EPROTONOSUPPORT;
			break;
		}
	}
	free(st);
	if (rc < 0) {
		if (!err[0])
			snprintf(err, errlen, "the machine state is truncated or corrupt");
		return rc;
	}
	if (!have_mach || cpu != vm->ncpus || dev) {
		snprintf(err, errlen, "the machine state is incomplete (%d of %d vCPUs%s)", cpu, vm->ncpus,
			 dev ? ", devices missing" : "");
		return -EINVAL;
	}
	return 0;
}
