/* Little-endian record writer/reader for device and machine state. Errors are
 * sticky: after the first failure every get returns 0, so load functions check r->err once at the end. */
#ifndef ROAM_REC_H
#define ROAM_REC_H
#include <stddef.h>
#include <stdint.h>

struct rec_writer { uint8_t *buf; size_t len, cap; int err; };
struct rec_reader { const uint8_t *p; size_t len, pos; int err; };

void rec_writer_init(struct rec_writer *w);
void rec_writer_free(struct rec_writer *w);
void rec_put_u8(struct rec_writer *w, uint8_t v);
void rec_put_u16(struct rec_writer *w, uint16_t v);
void rec_put_u32(struct rec_writer *w, uint32_t v);
void rec_put_u64(struct rec_writer *w, uint64_t v);
void rec_put_bytes(struct rec_writer *w, const void *p, size_t n);

void rec_reader_init(struct rec_reader *r, const void *p, size_t len);
uint8_t rec_get_u8(struct rec_reader *r);
uint16_t rec_get_u16(struct rec_reader *r);
uint32_t rec_get_u32(struct rec_reader *r);
uint64_t rec_get_u64(struct rec_reader *r);
void rec_get_bytes(struct rec_reader *r, void *p, size_t n);
/* Marks the reader failed (-EINVAL; a value out of range, for instance).
 * Check r->err / w->err: 0, -EINVAL after a short read, -ENOMEM. */
void rec_fail(struct rec_reader *r);
#endif
