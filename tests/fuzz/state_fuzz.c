/* libFuzzer harness for the machine-state object (checkpoint/state.c): the
 * input is a saved state from a store or bundle, peeked at and loaded into
 * a fake VM (legacy devices, interrupt controllers, a stub engine keeping
 * each vCPU's struct cpu_state) of 1 or 2 vCPUs. A refusal must say why in
 * one line; an accepted state must save into one that loads again and
 * gives the vCPUs the same state.
 *
 * Input: byte 0 bit 0 set: start from a valid state of the VM and apply
 * the rest as 5-byte edits { op, u16 offset, u16 value } (set a byte, a
 * u16, a sign-extended u32; truncate; cut or repeat a range), so the
 * fuzzer starts deep inside the format; clear: the rest is the state.
 * Bit 1 picks the 2-vCPU VM. */
#include "checkpoint/state.h"
#include "monitor/dev/legacy.h"
#include "tests/unit/irq/fake_vm.h"

#define NCPU_MAX 2
#define EDIT_MAX_LEN (256u << 10)

struct engine { struct cpu_state cpu[NCPU_MAX]; };

static int stub_get_state(struct engine *e, int cpu, struct cpu_state *st)
{
	if (cpu < 0 || cpu >= NCPU_MAX)
		abort();
	memcpy(st, &e->cpu[cpu], sizeof(*st));
	return 0;
}

static int stub_set_state(struct engine *e, int cpu, const struct cpu_state *st)
{
	if (cpu < 0 || cpu >= NCPU_MAX)
		abort();
	memcpy(&e->cpu[cpu], st, sizeof(*st));   /* padding too: compared below */
	return 0;
}

static const struct engine_ops stub_engine = {
	.name = "fuzz",
	.get_state = stub_get_state,
	.set_state = stub_set_state,
};

struct machine {
	struct vm *vm;
	struct engine eng;
	void *valid;            /* a state ckpt_state_save made of it */
	size_t valid_len;
};

static struct machine mach[2];

static void setup(void)
{
	if (mach[0].vm)
		return;
	for (int i = 0; i < 2; i++) {
		struct machine *m = &mach[i];
		char err[256];
		if (fake_vm_new(i + 1, 16, 1, &m->vm) || legacy_devices_create(m->vm))
			abort();
		m->vm->eng_ops = &stub_engine;
		m->vm->eng = &m->eng;
		for (int c = 0; c < NCPU_MAX; c++) {
			m->eng.cpu[c].rip = 0xfff0 + (uint64_t)c;
			m->eng.cpu[c].nmsrs = 1;
			m->eng.cpu[c].msrs[0] = (struct cpu_msr){ MSR_IA32_APIC_BASE, 0xfee00900 };
			m->eng.cpu[c].xsave_size = 576;
			m->eng.cpu[c].mp_state = c ? CPU_WAIT_SIPI : CPU_RUNNABLE;
		}
		if (ckpt_state_save(m->vm, &m->valid, &m->valid_len, err, sizeof(err)) < 0)
			abort();
	}
}

static void check_refusal(const char *err)
{
	if (!err[0] || strchr(err, '\n'))
		abort();
}

/* Applies 5-byte edits to a copy of base; NULL when out of memory. */
static uint8_t *edit(const uint8_t *base, size_t base_len, const uint8_t *e, size_t n,
		     size_t *ret_len)
{
	uint8_t *p = malloc(EDIT_MAX_LEN);
	if (!p)
		return NULL;
	size_t len = base_len < EDIT_MAX_LEN ? base_len : EDIT_MAX_LEN;
	memcpy(p, base, len);
	for (; n >= 5; e += 5, n -= 5) {
		if (!len)
			break;
		size_t off = (size_t)(e[1] | e[2] << 8) % len;
		uint16_t v = (uint16_t)(e[3] | e[4] << 8);
		size_t span = v < len - off ? v : len - off;
		switch (e[0] % 6) {
		case 0:
			p[off] = (uint8_t)v;
			break;
		case 1:
			for (size_t i = 0; i < 2 && off + i < len; i++)
				p[off + i] = (uint8_t)(v >> 8 * i);
			break;
		case 2: {
			uint32_t x = (uint32_t)(int32_t)(int16_t)v;
			for (size_t i = 0; i < 4 && off + i < len; i++)
				p[off + i] = (uint8_t)(x >> 8 * i);
			break;
		}
		case 3:
			len = off;
			break;
		case 4:
			memmove(p + off, p + off + span, len - off - span);
			len -= span;
			break;
		default:
			if (span > EDIT_MAX_LEN - len)
				span = EDIT_MAX_LEN - len;
			memmove(p + off + span, p + off, len - off);
			len += span;
			break;
		}
	}
	*ret_len = len;
	return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	if (size < 1)
		return 0;
	struct machine *m = &mach[data[0] >> 1 & 1];
	uint8_t *buf;
	size_t len;
	if (data[0] & 1) {
		buf = edit(m->valid, m->valid_len, data + 1, size - 1, &len);
	} else {
		len = size - 1;
		buf = malloc(len ? len : 1);       /* exact size: over-reads are caught */
		if (buf)
			memcpy(buf, data + 1, len);
	}
	if (!buf)
		return 0;
	char err[256] = "";
	struct ckpt_mach mc;
	if (ckpt_state_peek(buf, len, &mc, err, sizeof(err)) < 0)
		check_refusal(err);
	else if (mc.ncpus < 1 || mc.ncpus > VM_MAX_CPUS || !mc.tsc_khz || strlen(mc.engine) >= sizeof(mc.engine))
		abort();
	err[0] = 0;
	if (ckpt_state_load(m->vm, buf, len, err, sizeof(err)) < 0) {
		check_refusal(err);
		free(buf);
		return 0;
	}
	free(buf);
	/* Accepted: what it loaded saves into a state that loads again and
	 * gives every vCPU the same state. */
	static struct engine loaded;
	memcpy(&loaded, &m->eng, sizeof(loaded));
	void *again;
	size_t again_len;
	if (ckpt_state_save(m->vm, &again, &again_len, err, sizeof(err)) < 0)
		abort();
	memset(&m->eng, 0xa5, sizeof(m->eng));
	if (ckpt_state_load(m->vm, again, again_len, err, sizeof(err)) < 0)
		abort();
	if (memcmp(&loaded.cpu, &m->eng.cpu, (size_t)m->vm->ncpus * sizeof(loaded.cpu[0])))
		abort();
	free(again);
	return 0;
}
