/* Unit tests for checkpoint/: CPU state encoding, the machine-state object
 * (round trip through real VMs, unknown versions and sections, truncation,
 * corruption), the VM config JSON, the block overlay over a real store tree,
 * and guest-memory save/restore (full, incremental, lazy). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "checkpoint/lazymem.h"
#include "checkpoint/memory.h"
#include "checkpoint/overlay.h"
#include "checkpoint/state.h"
#include "checkpoint/vmconfig.h"
#include "image/store.h"
#include "monitor/dev.h"
#include "monitor/guest_mem.h"
#include "monitor/vm.h"
#define TEST_RNG_SEED 0x243f6a8885a308d3ull
#include "tests/unit/test.h"

static char tmpdir[] = "/tmp/roam-ckpt-test.XXXXXX";
static int store_no;

static struct store *new_store(uint32_t chunk)
{
	char path[300];
	snprintf(path, sizeof(path), "%s/s%d", tmpdir, store_no++);
	struct store_init_opts o = { .chunk_size = chunk };
	struct store *s = NULL;
	if (store_init(path, &o) || store_open(path, 0, &s)) {
		printf("  store: %s\n", store_last_error());
		return NULL;
	}
	return s;
}

/* ---- struct cpu_state <-> bytes ------------------------------------------ */

static void random_cpu(struct cpu_state *st)
{
	memset(st, 0, sizeof(*st));
	for (int i = 0; i < 16; i++)
		st->gpr[i] = test_rnd();
	st->rip = test_rnd();
	st->rflags = test_rnd();
	for (int i = 0; i < SEG_COUNT; i++)
		st->seg[i] = (struct cpu_seg){ .base = test_rnd(), .limit = (uint32_t)test_rnd(),
					       .attr = (uint32_t)test_rnd(), .sel = (uint16_t)test_rnd() };
	st->gdt.base = test_rnd();
	st->gdt.limit = (uint16_t)test_rnd();
	st->idt.base = test_rnd();
	st->idt.limit = (uint16_t)test_rnd();
	st->cr0 = test_rnd(); st->cr2 = test_rnd(); st->cr3 = test_rnd(); st->cr4 = test_rnd();
	st->cr8 = test_rnd(); st->efer = test_rnd(); st->xcr0 = test_rnd();
	for (int i = 0; i < 8; i++)
		st->dr[i] = test_rnd();
	st->nmsrs = CPU_MAX_MSRS;
	for (uint32_t i = 0; i < st->nmsrs; i++)
		st->msrs[i] = (struct cpu_msr){ .index = (uint32_t)test_rnd(), .value = test_rnd() };
	st->xsave_size = CPU_XSAVE_MAX - 64;
	test_fill_random(st->xsave, st->xsave_size);
	st->ev = (struct cpu_events){ .exc_pending = 1, .exc_vector = 14, .exc_has_error = 1,
				      .exc_error = 0x1234, .nmi_masked = 1, .irq_injected = 1,
				      .irq_vector = 0x31, .shadow = 2 };
	st->mp_state = CPU_STOPPED;
	st->sipi_vector = 0x9a;
	test_fill_random(st->lapic, CPU_LAPIC_SIZE);
}

static void test_cpu_roundtrip(void)
{
	static struct cpu_state a, b;
	for (int round = 0; round < 4; round++) {
		random_cpu(&a);
		struct rec_writer w;
		rec_writer_init(&w);
		ckpt_cpu_encode(&w, &a);
		CHECK(!w.err);
		struct rec_reader r;
		rec_reader_init(&r, w.buf, w.len);
		CHECK_EQ(ckpt_cpu_decode(&r, &b), 0);
		CHECK_EQ(r.pos, w.len);
		CHECK(!memcmp(&a, &b, sizeof(a)));
		/* Every strict prefix fails to decode. */
		int bad = 0;
		for (size_t n = 0; n < w.len; n += 1 + n / 64) {
			rec_reader_init(&r, w.buf, n);
			if (ckpt_cpu_decode(&r, &b) == 0)
				bad++;
		}
		CHECK_EQ(bad, 0);
		rec_writer_free(&w);
	}
}

static void test_cpu_bad_values(void)
{
	static struct cpu_state a, b;
	struct rec_writer w;
	struct rec_reader r;
	random_cpu(&a);
	a.mp_state = CPU_STOPPED + 1;
	rec_writer_init(&w);
	ckpt_cpu_encode(&w, &a);
	rec_reader_init(&r, w.buf, w.len);
	CHECK(ckpt_cpu_decode(&r, &b) < 0);
	rec_writer_free(&w);
	/* An MSR count beyond the cap is refused, not read past the array. */
	random_cpu(&a);
	rec_writer_init(&w);
	ckpt_cpu_encode(&w, &a);
	size_t msr_count_off = 16 * 8 + 16 + SEG_COUNT * 18 + 2 * 10 + 7 * 8 + 8 * 8;
	w.buf[msr_count_off + 2] = 0x7f;
	rec_reader_init(&r, w.buf, w.len);
	CHECK(ckpt_cpu_decode(&r, &b) < 0);
	rec_writer_free(&w);
}

/* ---- the machine-state object ---------------------------------------------- */

static struct vm *new_vm(int ncpus)
{
	struct vm_config c = { .mem_size = 16ULL << 20, .ncpus = ncpus, .engine = &bt_engine_ops,
			       .rng = true, .console_in = -1, .console_out = -1 };
	char err[256];
	struct vm *vm = NULL;
	if (vm_new(&c, &vm, err, sizeof(err)) < 0) {
		printf("  vm_new: %s\n", err);
		return NULL;
	}
	return vm;
}

/* Offset of the first section after MACH (its length is at 12+8). */
static size_t after_mach(const uint8_t *buf)
{
	uint32_t len = (uint32_t)buf[20] | (uint32_t)buf[21] << 8 | (uint32_t)buf[22] << 16 |
		       (uint32_t)buf[23] << 24;
	return 12 + 12 + len;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> 8 * i);
}

static void test_state_roundtrip(void)
{
	for (int ncpus = 1; ncpus <= 2; ncpus++) {
		struct vm *a = new_vm(ncpus), *b = new_vm(ncpus);
		CHECK(a && b);
		if (!a || !b) {
			vm_free(a);
			vm_free(b);
			return;
		}
		/* Make vCPU state differ from reset so a load that did nothing fails. */
		static struct cpu_state st;
		CHECK_EQ(a->eng_ops->get_state(a->eng, 0, &st), 0);
		st.gpr[0] = 0x1122334455667788ull;
		st.gpr[15] = 0xfeedfacecafebeefull;
		st.rip = 0x100000;
		CHECK_EQ(a->eng_ops->set_state(a->eng, 0, &st), 0);
		a->tsc_khz = 2345678;
		void *buf = NULL, *buf2 = NULL;
		size_t len = 0, len2 = 0;
		char err[512] = "";
		CHECK_EQ(ckpt_state_save(a, &buf, &len, err, sizeof(err)), 0);
		struct ckpt_mach m;
		CHECK_EQ(ckpt_state_peek(buf, len, &m, err, sizeof(err)), 0);
		CHECK_EQ(m.ncpus, ncpus);
		CHECK_EQ(m.mem_size, 16ULL << 20);
		CHECK_EQ(m.tsc_khz, 2345678);
		CHECK(!strcmp(m.engine, "bt"));
		CHECK_EQ(ckpt_state_load(b, buf, len, err, sizeof(err)), 0);
		if (err[0])
			printf("  load: %s\n", err);
		CHECK_EQ(b->tsc_khz, 2345678);
		CHECK(b->tsc_offset == m.guest_tsc);
		CHECK_EQ(b->eng_ops->get_state(b->eng, 0, &st), 0);
		CHECK(st.gpr[0] == 0x1122334455667788ull && st.gpr[15] == 0xfeedfacecafebeefull);
		CHECK_EQ(st.rip, 0x100000);
		/* Every vCPU reads back as saved (the TSC has moved on), and saved
		 * again the state has the same sections in the same order. */
		static struct cpu_state sa, sb;
		for (int i = 0; i < ncpus; i++) {
			CHECK_EQ(a->eng_ops->get_state(a->eng, i, &sa), 0);
			CHECK_EQ(b->eng_ops->get_state(b->eng, i, &sb), 0);
			cpu_state_set_msr(&sa, MSR_IA32_TSC, 0);
			cpu_state_set_msr(&sb, MSR_IA32_TSC, 0);
			CHECK(!memcmp(&sa, &sb, sizeof(sa)));
		}
		CHECK_EQ(ckpt_state_save(b, &buf2, &len2, err, sizeof(err)), 0);
		CHECK_EQ(len2, len);
		int sections = 0;
		for (size_t off = 12; buf && buf2 && len2 == len && off + 12 <= len; sections++) {
			const uint8_t *x = (uint8_t *)buf + off, *y = (uint8_t *)buf2 + off;
			CHECK(!memcmp(x, y, 12));
			if (memcmp(x, y, 12))
				break;
			off += 12 + ((uint32_t)x[8] | (uint32_t)x[9] << 8 | (uint32_t)x[10] << 16);
		}
		CHECK(sections >= 1 + ncpus + 5);
		free(buf);
		free(buf2);
		vm_free(a);
		vm_free(b);
	}
}

/* Saves a fresh 1-CPU VM's state into *ret. */
static int saved_state(void **ret, size_t *len)
{
	struct vm *a = new_vm(1);
	if (!a)
		return -1;
	char err[256];
	int rc = ckpt_state_save(a, ret, len, err, sizeof(err));
	vm_free(a);
	return rc;
}

static void test_state_unknown_major(void)
{
	void *buf;
	size_t len;
	CHECK_EQ(saved_state(&buf, &len), 0);
	struct vm *b = new_vm(1);
	CHECK(b);
	if (!b)
		return;
	uint8_t *p = buf;
	p[4] = 2;       /* major 2 */
	p[6] = 5;       /* minor 5 */
	char err[512] = "";
	struct ckpt_mach m;
	CHECK_EQ(ckpt_state_peek(buf, len, &m, err, sizeof(err)), -EPROTONOSUPPORT);
	CHECK(strstr(err, "version 2.5"));
	err[0] = 0;
	CHECK_EQ(ckpt_state_load(b, buf, len, err, sizeof(err)), -EPROTONOSUPPORT);
	CHECK(strstr(err, "version 2.5"));
	/* A newer minor of the same major loads. */
	p[4] = 1;
	CHECK_EQ(ckpt_state_load(b, buf, len, err, sizeof(err)), 0);
	p[0] = 'X';
	CHECK_EQ(ckpt_state_peek(buf, len, &m, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "not a roam machine state"));
	free(buf);
	vm_free(b);
}

/* Appends section {tag, version, flags, payload} to a state. */
static uint8_t *add_section(const void *buf, size_t len, const char tag[4], uint16_t version,
			    uint16_t flags, size_t *ret_len)
{
	uint8_t *p = malloc(len + 12 + 5);
	if (!p)
		return NULL;
	memcpy(p, buf, len);
	uint32_t n = (uint32_t)p[8] | (uint32_t)p[9] << 8 | (uint32_t)p[10] << 16 | (uint32_t)p[11] << 24;
	put_le32(p + 8, n + 1);
	memcpy(p + len, tag, 4);
	p[len + 4] = (uint8_t)version;
	p[len + 5] = (uint8_t)(version >> 8);
	p[len + 6] = (uint8_t)flags;
	p[len + 7] = (uint8_t)(flags >> 8);
	put_le32(p + len + 8, 5);
	memcpy(p + len + 12, "hello", 5);
	*ret_len = len + 17;
	return p;
}

static void test_state_unknown_section(void)
{
	void *buf;
	size_t len, len2;
	CHECK_EQ(saved_state(&buf, &len), 0);
	struct vm *b = new_vm(1);
	CHECK(b);
	if (!b)
		return;
	char err[512] = "";
	uint8_t *req = add_section(buf, len, "ZZZZ", 7, 1, &len2);
	CHECK_EQ(ckpt_state_load(b, req, len2, err, sizeof(err)), -EPROTONOSUPPORT);
	CHECK(strstr(err, "section ZZZZ version 7"));
	free(req);
	/* Unknown optional sections are skipped. */
	uint8_t *opt = add_section(buf, len, "OPTL", 3, 0, &len2);
	err[0] = 0;
	CHECK_EQ(ckpt_state_load(b, opt, len2, err, sizeof(err)), 0);
	free(opt);
	/* A known section with an unknown version names both. */
	uint8_t *p = buf;
	size_t vcpu = after_mach(p);
	CHECK(!memcmp(p + vcpu, "VCPU", 4));
	p[vcpu + 4] = 9;
	CHECK_EQ(ckpt_state_load(b, buf, len, err, sizeof(err)), -EPROTONOSUPPORT);
	CHECK(strstr(err, "VCPU version 9"));
	p[vcpu + 4] = 1;
	/* A device record newer than this roam reads names the device. */
	size_t dev = vcpu + 12 + ((uint32_t)p[vcpu + 8] | (uint32_t)p[vcpu + 9] << 8 |
				  (uint32_t)p[vcpu + 10] << 16);
	CHECK(!memcmp(p + dev, "DEV ", 4));
	size_t idl = p[dev + 12], tl = p[dev + 13 + idl];
	size_t verpos = dev + 14 + idl + tl;
	put_le32(p + verpos, 999);
	CHECK_EQ(ckpt_state_load(b, buf, len, err, sizeof(err)), -EPROTONOSUPPORT);
	CHECK(strstr(err, "state version 999 is not supported"));
	free(buf);
	vm_free(b);
}

/* The loader reads sections as ckpt_state_peek does: MACH first and once;
 * a device record is read to its end, no bytes left over. */
static void test_state_section_rules(void)
{
	void *buf;
	size_t len, len2;
	CHECK_EQ(saved_state(&buf, &len), 0);
	struct vm *b = new_vm(1);
	CHECK(b);
	if (!b)
		return;
	char err[512] = "";
	uint8_t *p = buf, *two = add_section(buf, len, "MACH", 1, 1, &len2);
	CHECK(two && ckpt_state_load(b, two, len2, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "second MACH"));
	free(two);
	/* An optional section before MACH: peek refuses it, so load does. */
	uint8_t *opt = add_section(buf, len, "OPTL", 1, 0, &len2), *first = malloc(len2);
	CHECK(opt && first);
	if (opt && first) {
		memcpy(first, opt, 12);
		memcpy(first + 12, opt + len, 17);
		memcpy(first + 29, opt + 12, len - 12);
		struct ckpt_mach m;
		CHECK_EQ(ckpt_state_peek(first, len2, &m, err, sizeof(err)), -EINVAL);
		CHECK_EQ(ckpt_state_load(b, first, len2, err, sizeof(err)), -EINVAL);
		CHECK(strstr(err, "does not start with its MACH section"));
		CHECK_EQ(ckpt_state_load(b, opt, len2, err, sizeof(err)), 0);
	}
	free(opt);
	free(first);
	/* The last section is a device's: one byte more in it is corrupt. */
	size_t off = 12, last = 0;
	while (off + 12 <= len) {
		last = off;
		off += 12 + ((uint32_t)p[off + 8] | (uint32_t)p[off + 9] << 8 | (uint32_t)p[off + 10] << 16);
	}
	CHECK(off == len && !memcmp(p + last, "DEV ", 4));
	uint8_t *more = malloc(len + 1);
	CHECK(more);
	if (more) {
		memcpy(more, buf, len);
		more[len] = 0;
		uint32_t n = (uint32_t)p[last + 8] | (uint32_t)p[last + 9] << 8 | (uint32_t)p[last + 10] << 16;
		put_le32(more + last + 8, n + 1);
		err[0] = 0;
		CHECK_EQ(ckpt_state_load(b, more, len + 1, err, sizeof(err)), -EINVAL);
		CHECK(strstr(err, "saved state is corrupt"));
		/* DEV with another section version. */
		memcpy(more, buf, len);
		more[last + 4] = 2;
		CHECK_EQ(ckpt_state_load(b, more, len, err, sizeof(err)), -EPROTONOSUPPORT);
		CHECK(strstr(err, "DEV version 2"));
	}
	free(more);
	free(buf);
	vm_free(b);
}

static void test_state_truncated_corrupt(void)
{
	void *buf;
	size_t len;
	CHECK_EQ(saved_state(&buf, &len), 0);
	struct vm *b = new_vm(1);
	CHECK(b);
	if (!b)
		return;
	char err[512];
	int accepted = 0, silent = 0;
	for (size_t n = 0; n < len; n += 1 + n / 97) {
		err[0] = 0;
		if (ckpt_state_load(b, buf, n, err, sizeof(err)) == 0)
			accepted++;
		else if (!err[0])
			silent++;
	}
	CHECK_EQ(accepted, 0);
	CHECK_EQ(silent, 0);
	/* Random byte flips: never a crash; a refusal always says why. */
	uint8_t *p = malloc(len);
	CHECK(p);
	for (int i = 0; p && i < 300; i++) {
		memcpy(p, buf, len);
		for (int k = 0; k < 4; k++)
			p[test_rnd() % len] ^= (uint8_t)(1 + test_rnd() % 255);
		err[0] = 0;
		if (ckpt_state_load(b, p, len, err, sizeof(err)) < 0 && !err[0])
			silent++;
	}
	CHECK_EQ(silent, 0);
	/* A state for another machine shape is refused by name. */
	struct vm *two = new_vm(2);
	CHECK(two);
	if (two) {
		CHECK_EQ(ckpt_state_load(two, buf, len, err, sizeof(err)), -EINVAL);
		CHECK(strstr(err, "1 CPUs"));
	}
	vm_free(two);
	free(p);
	free(buf);
	vm_free(b);
}

/* The state with the first device's saved id replaced by id (n bytes). */
static uint8_t *with_dev_id(const uint8_t *p, size_t len, const char *id, size_t n, size_t *ret_len)
{
	size_t vcpu = after_mach(p);
	size_t dev = vcpu + 12 + ((uint32_t)p[vcpu + 8] | (uint32_t)p[vcpu + 9] << 8 |
				  (uint32_t)p[vcpu + 10] << 16);
	uint32_t slen = (uint32_t)p[dev + 8] | (uint32_t)p[dev + 9] << 8 | (uint32_t)p[dev + 10] << 16;
	size_t old = p[dev + 12], rest = dev + 13 + old;
	uint8_t *q = malloc(len + n);
	if (!q)
		return NULL;
	memcpy(q, p, dev + 12);
	put_le32(q + dev + 8, (uint32_t)(slen - old + n));
	q[dev + 12] = (uint8_t)n;
	memcpy(q + dev + 13, id, n);
	memcpy(q + dev + 13 + n, p + rest, len - rest);
	*ret_len = len - old + n;
	return q;
}

static void test_state_hostile_device_names(void)
{
	void *buf;
	size_t len, len2;
	CHECK_EQ(saved_state(&buf, &len), 0);
	struct vm *b = new_vm(1);
	CHECK(b);
	if (!b)
		return;
	char err[512];
	const char *first = b->devs->id;
	/* The id as saved loads (the splicing is right). */
	uint8_t *q = with_dev_id(buf, len, first, strlen(first), &len2);
	CHECK(q && ckpt_state_load(b, q, len2, err, sizeof(err)) == 0);
	free(q);
	/* A newline or an escape in a saved name stays out of the message. */
	q = with_dev_id(buf, len, "x\n\033[2Jy", 7, &len2);
	err[0] = 0;
	CHECK(q && ckpt_state_load(b, q, len2, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "saved device x??[2Jy") && !strchr(err, '\n') && !strchr(err, '\033'));
	free(q);
	/* The id with a NUL and more after it is not the id. */
	char id[64];
	size_t n = (size_t)snprintf(id, sizeof(id), "%s", first);
	memcpy(id + n, "\0junk", 5);
	q = with_dev_id(buf, len, id, n + 5, &len2);
	err[0] = 0;
	CHECK(q && ckpt_state_load(b, q, len2, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "does not match"));
	free(q);
	free(buf);
	vm_free(b);
}

/* ---- VM config JSON ---------------------------------------------------------- */

static void test_config_roundtrip(void)
{
	struct ckpt_config a = { .mem = 1ULL << 30, .cpus = 2, .disks = 3, .rng = false,
				 .created = 1764000000 }, b;
	snprintf(a.name, sizeof(a.name), "web-1.test_x");
	snprintf(a.append, sizeof(a.append), "console=ttyS0 \"quoted\" back\\slash \t tab");
	snprintf(a.readonly, sizeof(a.readonly), "010");
	char *text;
	size_t len;
	char err[256] = "";
	CHECK_EQ(ckpt_config_encode(&a, &text, &len), 0);
	CHECK_EQ(ckpt_config_decode(text, len, &b, err, sizeof(err)), 0);
	CHECK(!strcmp(a.name, b.name) && !strcmp(a.append, b.append) && !strcmp(a.readonly, b.readonly));
	CHECK(a.mem == b.mem && a.cpus == b.cpus && a.disks == b.disks && a.rng == b.rng &&
	      a.created == b.created);
	/* Every strict prefix is refused. */
	int accepted = 0;
	for (size_t n = 0; n + 1 < len; n++)
		if (ckpt_config_decode(text, n, &b, err, sizeof(err)) == 0)
			accepted++;
	CHECK_EQ(accepted, 0);
	free(text);
}

static void test_config_malformed(void)
{
	static const char *bad[] = {
		"",
		"[]",
		"{\"version\":1,\"name\":\"a\",\"mem\":16777216,\"cpus\":1,\"disks\":0,\"readonly\":\"\"",
		"{\"version\":1,\"name\":\"a\",\"mem\":16777216,\"cpus\":0,\"disks\":0,\"readonly\":\"\"}",
		"{\"version\":1,\"name\":\"a\",\"mem\":16777216,\"cpus\":9,\"disks\":0,\"readonly\":\"\"}",
		"{\"version\":1,\"name\":\"a\",\"mem\":16777217,\"cpus\":1,\"disks\":0,\"readonly\":\"\"}",
		"{\"version\":1,\"name\":\"a\",\"mem\":1048576,\"cpus\":1,\"disks\":0,\"readonly\":\"\"}",
		"{\"version\":1,\"name\":\"../x\",\"mem\":16777216,\"cpus\":1,\"disks\":0,\"readonly\":\"\"}",
		"{\"version\":1,\"name\":\"a\",\"mem\":16777216,\"cpus\":1,\"disks\":2,\"readonly\":\"0\"}",
		"{\"version\":1,\"name\":\"a\",\"mem\":16777216,\"cpus\":1,\"disks\":1,\"readonly\":\"x\"}",
		"{\"version\":1,\"name\":\"a\",\"mem\":16777216,\"cpus\":1,\"disks\":9,\"readonly\":\"000000000\"}",
		"{\"version\":1,\"name\":\"a\",\"mem\":16777216,\"cpus\":1,\"disks\":0,\"readonly\":\"\",\"x\":1}",
		"{\"version\":1,\"name\":\"a\",\"mem\":16777216,\"cpus\":1,\"disks\":0,\"readonly\":\"\"} junk",
		"{\"version\":1,\"name\":\"a\",\"mem\":99999999999999999999999,\"cpus\":1,\"disks\":0,\"readonly\":\"\"}",
		"{\"version\":1,\"name\":\"a\\q\",\"mem\":16777216,\"cpus\":1,\"disks\":0,\"readonly\":\"\"}",
		"{\"version\":1,\"name\":\"a\",\"mem\":16777216,\"cpus\":1,\"disks\":0,\"readonly\":\"\",\"rng\":maybe}",
		/* \u takes exactly 4 hex digits: a short one must not swallow
		 * the closing quote, nor a sign or blanks pass as digits */
		"{\"version\":1,\"name\":\"a\",\"mem\":16777216,\"cpus\":1,\"disks\":0,\"readonly\":\"\",\"append\":\"\\u1\"zz\"}",
		"{\"version\":1,\"name\":\"a\",\"mem\":16777216,\"cpus\":1,\"disks\":0,\"readonly\":\"\",\"append\":\"\\u+01f\"}",
		"{\"version\":1,\"name\":\"a\",\"mem\":16777216,\"cpus\":1,\"disks\":0,\"readonly\":\"\",\"append\":\"\\u 1f\"}",
		/* \u0000 would cut the string short (name "a" here) */
		"{\"version\":1,\"name\":\"a\\u0000/../x\",\"mem\":16777216,\"cpus\":1,\"disks\":0,\"readonly\":\"\"}",
		/* a key twice (readers disagree on which one counts) */
		"{\"version\":1,\"name\":\"a\",\"mem\":16777216,\"cpus\":1,\"disks\":0,\"readonly\":\"\",\"cpus\":2}",
		"{\"version\":1,\"name\":\"a\",\"mem\":16777216,\"cpus\":1,\"disks\":0,\"readonly\":\"\",\"version\":1}",
		/* no version at all: malformed, not "version -1 unsupported" */
		"{\"name\":\"a\",\"mem\":16777216,\"cpus\":1,\"disks\":0,\"readonly\":\"\"}",
	};
	char err[256];
	struct ckpt_config c;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		int rc = ckpt_config_decode(bad[i], strlen(bad[i]), &c, err, sizeof(err));
		if (rc != -EINVAL || !strstr(err, "malformed"))
			printf("  accepted or unclear (%d, '%s'): %s\n", rc, err, bad[i]);
		CHECK(rc == -EINVAL && strstr(err, "malformed"));
	}
	const char *v2 = "{\"version\":2,\"name\":\"a\",\"mem\":16777216,\"cpus\":1,\"disks\":0,\"readonly\":\"\"}";
	CHECK_EQ(ckpt_config_decode(v2, strlen(v2), &c, err, sizeof(err)), -EPROTONOSUPPORT);
	CHECK(strstr(err, "version 2"));
	/* An append longer than the field is refused, not truncated. */
	size_t n = 6000;
	char *big = malloc(n + 200);
	CHECK(big);
	if (big) {
		int k = snprintf(big, 200, "{\"version\":1,\"name\":\"a\",\"mem\":16777216,\"cpus\":1,"
			       "\"disks\":0,\"readonly\":\"\",\"append\":\"");
		memset(big + k, 'a', n);
		memcpy(big + k + n, "\"}", 3);
		CHECK(ckpt_config_decode(big, strlen(big), &c, err, sizeof(err)) < 0);
		free(big);
	}
	CHECK(ckpt_name_valid("a") && ckpt_name_valid("A.b_c-9"));
	CHECK(!ckpt_name_valid("") && !ckpt_name_valid(".a") && !ckpt_name_valid("-a") &&
	      !ckpt_name_valid("a/b") && !ckpt_name_valid("a b"));
	char longname[80];
	memset(longname, 'x', 65);
	longname[65] = 0;
	CHECK(!ckpt_name_valid(longname));
	longname[64] = 0;
	CHECK(ckpt_name_valid(longname));
}

/* ---- block overlay ----------------------------------------------------------- */

#define OV_CHUNK 4096u
#define OV_CHUNKS 16u
#define OV_SIZE (OV_CHUNK * OV_CHUNKS - 1000)   /* last chunk partial */

/* Imports a disk image of OV_SIZE bytes (chunks 3 and 7 zero) into s. */
static int base_tree(struct store *s, uint8_t *img, struct store_hash *ret)
{
	test_fill_random(img, OV_SIZE);
	memset(img + 3 * OV_CHUNK, 0, OV_CHUNK);
	memset(img + 7 * OV_CHUNK, 0, OV_CHUNK);
	char path[300];
	snprintf(path, sizeof(path), "%s/base%d.img", tmpdir, store_no);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, img, OV_SIZE) != (ssize_t)OV_SIZE) {
		if (fd >= 0)
			close(fd);
		return -EIO;
	}
	lseek(fd, 0, SEEK_SET);
	int rc = store_import_fd(s, fd, NULL, ret, NULL);
	close(fd);
	unlink(path);
	return rc;
}

static int tree_bytes(struct store *s, const struct store_hash *root, uint8_t *out, size_t len)
{
	struct store_tree *t;
	int rc = store_tree_open(s, root, &t);
	if (rc < 0)
		return rc;
	ssize_t n = store_tree_read(t, out, len, 0);
	uint64_t size = store_tree_size(t);
	store_tree_free(t);
	return n == (ssize_t)len && size == len ? 0 : -EIO;
}

static uint64_t blob_count(struct store *s)
{
	struct store_usage u;
	return store_du(s, &u) == 0 ? u.blobs : 0;
}

static void test_overlay(void)
{
	struct store *s = new_store(OV_CHUNK);
	CHECK(s);
	if (!s)
		return;
	static uint8_t img[OV_SIZE], want[OV_SIZE], got[OV_SIZE];
	struct store_hash base, root, root2;
	CHECK_EQ(base_tree(s, img, &base), 0);
	memcpy(want, img, OV_SIZE);
	char work[300];
	snprintf(work, sizeof(work), "%s/disk.work", tmpdir);
	struct ckpt_overlay *o;
	CHECK_EQ(ckpt_overlay_new(s, &base, work, false, &o), 0);
	struct blockdev *b = ckpt_overlay_bdev(o);
	uint64_t size = 0;
	CHECK_EQ(blockdev_size(b, &size), 0);
	CHECK_EQ(size, OV_SIZE);
	/* Clean chunks come from the tree. */
	CHECK_EQ(blockdev_pread(b, got, OV_SIZE, 0), 0);
	CHECK(!memcmp(got, want, OV_SIZE));
	CHECK_EQ(blockdev_pread(b, got, 100, 2 * OV_CHUNK + 4000), 0);
	CHECK(!memcmp(got, want + 2 * OV_CHUNK + 4000, 100));
	CHECK_EQ(ckpt_overlay_dirty_chunks(o), 0);
	/* Partial writes copy up: one across chunks 1|2, one inside the
	 * zero chunk 7, one into the partial last chunk. */
	uint8_t data[9000];
	test_fill_random(data, sizeof(data));
	CHECK_EQ(blockdev_pwrite(b, data, 3000, OV_CHUNK + 2000), 0);
	memcpy(want + OV_CHUNK + 2000, data, 3000);
	CHECK_EQ(blockdev_pwrite(b, data + 3000, 10, 7 * OV_CHUNK + 100), 0);
	memcpy(want + 7 * OV_CHUNK + 100, data + 3000, 10);
	CHECK_EQ(blockdev_pwrite(b, data + 4000, 500, OV_SIZE - 500), 0);
	memcpy(want + OV_SIZE - 500, data + 4000, 500);
	CHECK_EQ(ckpt_overlay_dirty_chunks(o), 4);
	CHECK_EQ(blockdev_pread(b, got, OV_SIZE, 0), 0);
	CHECK(!memcmp(got, want, OV_SIZE));
	/* Out of range: refused. */
	CHECK(blockdev_pwrite(b, data, 10, OV_SIZE - 5) < 0);
	CHECK(blockdev_pread(b, got, 10, OV_SIZE + 1) < 0);
	/* Discard: a whole chunk becomes zeros, a partial range zeros only itself. */
	CHECK_EQ(blockdev_discard(b, 9 * OV_CHUNK, OV_CHUNK), 0);
	memset(want + 9 * OV_CHUNK, 0, OV_CHUNK);
	CHECK_EQ(blockdev_discard(b, 10 * OV_CHUNK + 100, 200), 0);
	memset(want + 10 * OV_CHUNK + 100, 0, 200);
	CHECK_EQ(ckpt_overlay_dirty_chunks(o), 6);
	CHECK_EQ(blockdev_pread(b, got, OV_SIZE, 0), 0);
	CHECK(!memcmp(got, want, OV_SIZE));
	/* Save: the new tree holds exactly the overlay's content, and only the
	 * dirty chunks were stored (chunk 9 is now a zero chunk: no blob). */
	uint64_t blobs = blob_count(s), bytes = 0;
	CHECK_EQ(ckpt_overlay_save(o, &root, &bytes), 0);
	CHECK_EQ(bytes, 5 * OV_CHUNK + (OV_SIZE - 15 * OV_CHUNK));
	CHECK_EQ(blob_count(s) - blobs, 5);
	/* Not adopted (as when the save's transaction fails): still dirty, the
	 * same content, and saving again gives the same tree. */
	CHECK_EQ(ckpt_overlay_dirty_chunks(o), 6);
	CHECK_EQ(blockdev_pread(b, got, OV_SIZE, 0), 0);
	CHECK(!memcmp(got, want, OV_SIZE));
	CHECK_EQ(ckpt_overlay_save(o, &root2, &bytes), 0);
	CHECK(store_hash_eq(&root, &root2));
	ckpt_overlay_adopt(o);
	CHECK_EQ(ckpt_overlay_dirty_chunks(o), 0);
	CHECK_EQ(blockdev_pread(b, got, OV_SIZE, 0), 0);
	CHECK(!memcmp(got, want, OV_SIZE));
	CHECK_EQ(tree_bytes(s, &root, got, OV_SIZE), 0);
	CHECK(!memcmp(got, want, OV_SIZE));
	struct store_tree *t;
	CHECK_EQ(store_tree_open(s, &root, &t), 0);
	struct store_hash h9, h1;
	CHECK_EQ(store_tree_chunk_hash(t, 9, &h9), 0);
	CHECK(store_hash_is_zero(&h9));
	CHECK_EQ(store_tree_chunk_hash(t, 1, &h1), 0);
	CHECK(!store_hash_is_zero(&h1));
	store_tree_free(t);
	/* Nothing written since: saving again gives the same tree, stores
	 * nothing. The base tree is unchanged. */
	blobs = blob_count(s);
	CHECK_EQ(ckpt_overlay_save(o, &root2, &bytes), 0);
	CHECK(store_hash_eq(&root, &root2));
	CHECK_EQ(bytes, 0);
	CHECK_EQ(blob_count(s), blobs);
	CHECK_EQ(tree_bytes(s, &base, got, OV_SIZE), 0);
	CHECK(!memcmp(got, img, OV_SIZE));
	/* After a save the new tree is the base: a write to one chunk stores one. */
	CHECK_EQ(blockdev_pwrite(b, data, 1, 5), 0);
	want[5] = data[0];
	CHECK_EQ(ckpt_overlay_save(o, &root2, &bytes), 0);
	CHECK_EQ(bytes, OV_CHUNK);
	ckpt_overlay_adopt(o);
	CHECK_EQ(tree_bytes(s, &root2, got, OV_SIZE), 0);
	CHECK(!memcmp(got, want, OV_SIZE));
	blockdev_free(b);
	/* Read-only overlays refuse writes. */
	CHECK_EQ(ckpt_overlay_new(s, &root2, work, true, &o), 0);
	b = ckpt_overlay_bdev(o);
	CHECK_EQ(blockdev_pwrite(b, data, 10, 0), -EROFS);
	CHECK_EQ(blockdev_discard(b, 0, OV_CHUNK), -EROFS);
	blockdev_free(b);
	/* A missing base tree is an error. */
	struct store_hash nosuch;
	store_hash_buf("nosuch", 6, &nosuch);
	CHECK(ckpt_overlay_new(s, &nosuch, work, false, &o) < 0);
	unlink(work);
	store_free(s);
}

/* ---- guest memory ------------------------------------------------------------- */

#define MEM_SIZE (4u << 20)

static void fill_mem(struct guest_mem *m)
{
	uint8_t *p = gmem_base(m);
	/* Some random pages, some text, most zero. */
	for (uint64_t off = 0; off < MEM_SIZE; off += GMEM_PAGE) {
		uint64_t r = test_rnd() % 4;
		if (r == 0)
			test_fill_random(p + off, GMEM_PAGE);
		else if (r == 1)
			for (uint64_t i = 0; i < GMEM_PAGE; i++)
				p[off + i] = (uint8_t)"roam guest memory "[i % 18];
	}
}

static void test_memory_full_incremental(void)
{
	struct store *s = new_store(16384);
	struct guest_mem *a = NULL, *b = NULL, *c = NULL;
	CHECK(s);
	CHECK_EQ(gmem_new(MEM_SIZE, &a), 0);
	CHECK_EQ(gmem_new(MEM_SIZE, &b), 0);
	CHECK_EQ(gmem_new(MEM_SIZE, &c), 0);
	if (!s || !a || !b || !c)
		goto out;
	fill_mem(a);
	char err[400];
	struct store_hash r1, r2;
	struct ckpt_mem_stats st;
	CHECK_EQ(ckpt_mem_save_full(s, a, NULL, 0, &r1, &st), 0);
	CHECK_EQ(ckpt_mem_restore(s, &r1, b, err, sizeof(err)), 0);
	CHECK(!memcmp(gmem_base(a), gmem_base(b), MEM_SIZE));
	/* Change three pages; an incremental save stores only their chunks. */
	size_t words = MEM_SIZE / GMEM_PAGE / 64;
	uint64_t *dirty = calloc(words, sizeof(uint64_t));
	CHECK(dirty);
	if (!dirty)
		goto out;
	uint64_t pages[] = { 0, 17, MEM_SIZE / GMEM_PAGE - 1 };
	for (size_t i = 0; i < 3; i++) {
		test_fill_random(gmem_base(a) + pages[i] * GMEM_PAGE + 100, 50);
		dirty[pages[i] / 64] |= 1ULL << (pages[i] % 64);
	}
	/* Pages logged as written but holding what they held (a spinlock
	 * taken and released): their chunks are not stored again. */
	uint64_t same[] = { 100, 101, 300 };
	for (size_t i = 0; i < 3; i++)
		dirty[same[i] / 64] |= 1ULL << (same[i] % 64);
	CHECK_EQ(ckpt_mem_save_dirty(s, a, &r1, dirty, &r2, &st), 0);
	CHECK_EQ(st.chunks_written, 3);
	CHECK_EQ(st.bytes_written, 3 * 16384);
	CHECK_EQ(st.chunks_unchanged, 2);
	CHECK_EQ(ckpt_mem_restore(s, &r2, c, err, sizeof(err)), 0);
	CHECK(!memcmp(gmem_base(a), gmem_base(c), MEM_SIZE));
	/* On top of r2: a chunk cleared to zeros, a chunk made a copy of
	 * another (already in the store), one written with new data. */
	memset(dirty, 0, words * sizeof(uint64_t));
	memset(gmem_base(a) + 8 * 16384, 0, 16384);
	memcpy(gmem_base(a) + 9 * 16384, gmem_base(a) + 2 * 16384, 16384);
	test_fill_random(gmem_base(a) + 10 * 16384 + 4096, 4096);
	for (uint64_t p = 8 * 4; p < 11 * 4; p++)
		dirty[p / 64] |= 1ULL << (p % 64);
	struct store_hash r3;
	CHECK_EQ(ckpt_mem_save_dirty(s, a, &r2, dirty, &r3, &st), 0);
	CHECK_EQ(st.chunks_written + st.chunks_unchanged, 3);
	struct guest_mem *d3 = NULL;
	CHECK_EQ(gmem_new(MEM_SIZE, &d3), 0);
	if (d3) {
		CHECK_EQ(ckpt_mem_restore(s, &r3, d3, err, sizeof(err)), 0);
		CHECK(!memcmp(gmem_base(a), gmem_base(d3), MEM_SIZE));
		gmem_free(d3);
	}
	/* A tree of another size is refused. */
	struct guest_mem *small = NULL;
	CHECK_EQ(gmem_new(MEM_SIZE / 2, &small), 0);
	if (small)
		CHECK(ckpt_mem_restore(s, &r2, small, err, sizeof(err)) < 0);
	gmem_free(small);
	free(dirty);
out:
	gmem_free(a);
	gmem_free(b);
	gmem_free(c);
	store_free(s);
}

/* Lazy restore: RAM reads right while chunks arrive (faults from two
 * threads), all of it is loaded in the end, and a save afterwards gives the
 * same tree. */
struct toucher { struct guest_mem *m; uint64_t start; uint64_t sum; };

static void *touch_pages(void *arg)
{
	struct toucher *t = arg;
	const uint8_t *p = gmem_base(t->m);
	for (uint64_t off = t->start; off < MEM_SIZE; off += 2 * GMEM_PAGE)
		t->sum += p[off] + p[off + GMEM_PAGE - 1];
	return NULL;
}

static void fail_cb(void *arg, int err, const char *msg)
{
	*(int *)arg = err;
	printf("  lazy load failed: %s\n", msg);
}

static void test_memory_lazy(void)
{
	char path[300];
	snprintf(path, sizeof(path), "%s/s%d", tmpdir, store_no);
	struct store *s = new_store(16384);
	struct guest_mem *a = NULL, *b = NULL;
	CHECK(s);
	CHECK_EQ(gmem_new(MEM_SIZE, &a), 0);
	CHECK_EQ(gmem_new(MEM_SIZE, &b), 0);
	if (!s || !a || !b)
		goto out;
	fill_mem(a);
	struct store_hash r1, r2;
	CHECK_EQ(ckpt_mem_save_full(s, a, NULL, 0, &r1, NULL), 0);
	struct ckpt_lazy *l = NULL;
	int failed = 0;
	int rc = ckpt_lazy_start(path, &r1, b, fail_cb, &failed, &l);
	if (rc == -ENOSYS || rc == -EPERM) {
		SKIP(test_memory_lazy, "userfaultfd not available");
		goto out;
	}
	CHECK_EQ(rc, 0);
	if (rc)
		goto out;
	struct toucher t[2] = { { b, 0, 0 }, { b, GMEM_PAGE, 0 } };
	pthread_t th;
	int started = pthread_create(&th, NULL, touch_pages, &t[1]) == 0;
	touch_pages(&t[0]);
	if (started)
		pthread_join(th, NULL);
	CHECK(!memcmp(gmem_base(a), gmem_base(b), MEM_SIZE));
	CHECK_EQ(ckpt_lazy_finish(l), 0);
	struct ckpt_lazy_stats st;
	ckpt_lazy_get_stats(l, &st);
	CHECK(st.done_ns > 0);
	CHECK_EQ(st.error, 0);
	CHECK_EQ(failed, 0);
	/* After finishing, the memfd holds everything: a full save matches. */
	CHECK_EQ(ckpt_mem_save_full(s, b, NULL, 0, &r2, NULL), 0);
	CHECK(store_hash_eq(&r1, &r2));
	ckpt_lazy_free(l);
	/* A tree of the wrong size is refused before anything is mapped. */
	struct guest_mem *small = NULL;
	CHECK_EQ(gmem_new(MEM_SIZE / 2, &small), 0);
	if (small)
		CHECK_EQ(ckpt_lazy_start(path, &r1, small, fail_cb, &failed, &l), -EINVAL);
	gmem_free(small);
out:
	gmem_free(a);
	gmem_free(b);
	store_free(s);
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	TEST(test_cpu_roundtrip);
	TEST(test_cpu_bad_values);
	TEST(test_state_roundtrip);
	TEST(test_state_unknown_major);
	TEST(test_state_unknown_section);
	TEST(test_state_section_rules);
	TEST(test_state_truncated_corrupt);
	TEST(test_state_hostile_device_names);
	TEST(test_config_roundtrip);
	TEST(test_config_malformed);
	TEST(test_overlay);
	TEST(test_memory_full_incremental);
	TEST(test_memory_lazy);
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		printf("  could not remove %s\n", tmpdir);
	TEST_EXIT();
}
