/* The machine-state object (kind "state" in the store): engine-neutral CPU
 * state of every vCPU plus every device's versioned record.
 *
 * Encoding, little-endian:
 *
 *   off  len  field
 *   0    4    magic "RMST"
 *   4    2    major = 1  (a reader refuses another major)
 *   6    2    minor = 0  (newer minors only add optional sections)
 *   8    4    section count
 *   12   ...  sections: { u32 tag, u16 version, u16 flags, u32 length,
 *                         payload[length] }
 *             flags bit 0: required (an unknown required section is an
 *             error; unknown optional sections are skipped)
 *
 *   tag "MACH" v1 required: u32 ncpus, u64 mem_size, u64 guest TSC at save,
 *             u64 tsc_khz, i64 host wall-clock ns at save, u8 engine name
 *             length + name (the engine that saved it; informational)
 *   tag "VCPU" v1 required, one per vCPU in order: struct cpu_state field by
 *             field (see state.c: gprs, rip, rflags, segments, descriptor
 *             tables, control and debug registers, xcr0, MSR list, XSAVE
 *             area, events, mp_state, sipi vector, LAPIC page)
 *   tag "DEV " required, one per device in VM order: u8 id length + id,
 *             u8 type-name length + name, u32 record version, record bytes
 *             (the device type's own format)
 *
 * Every count and length is capped; a state that does not parse is refused
 * with a message naming the section and version. */
#ifndef ROAM_CKPT_STATE_H
#define ROAM_CKPT_STATE_H
#include <stddef.h>
#include <stdint.h>
#include "monitor/cpu_state.h"
#include "monitor/rec.h"

struct vm;

#define CKPT_STATE_MAJOR 1
#define CKPT_STATE_MINOR 0

/* Machine-wide facts carried in "MACH". */
struct ckpt_mach {
	uint32_t ncpus;
	uint64_t mem_size;
	uint64_t guest_tsc, tsc_khz;
	int64_t wall_ns;
	char engine[16];
};

/* Serializes a paused vm (vCPUs stopped, devices quiesced). *ret is
 * malloc'd. Returns 0 or -errno with err set. */
int ckpt_state_save(struct vm *vm, void **ret, size_t *ret_len, char *err, size_t errlen);
/* Reads only the "MACH" section (to check a state fits a VM before
 * building it). */
int ckpt_state_peek(const void *buf, size_t len, struct ckpt_mach *ret, char *err, size_t errlen);
/* Restores into a freshly built vm of the same shape (ncpus, memory size,
 * devices). Continues the guest TSC from the saved value. */
int ckpt_state_load(struct vm *vm, const void *buf, size_t len, char *err, size_t errlen);

/* cpu_state <-> bytes (exposed for tests). */
void ckpt_cpu_encode(struct rec_writer *w, const struct cpu_state *st);
int ckpt_cpu_decode(struct rec_reader *r, struct cpu_state *st);
#endif
