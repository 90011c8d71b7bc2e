/* Guest physical memory: one memfd mapped once and shared by the engine and
 * every device. RAM below 3 GiB is at guest-physical 0; the rest starts at
 * 4 GiB, leaving [3 GiB, 4 GiB) for MMIO (PCI BARs, IOAPIC, LAPIC).
 * All guest-supplied addresses go through the checked accessors here. */
#ifndef ROAM_GUEST_MEM_H
#define ROAM_GUEST_MEM_H
#include <stddef.h>
#include <stdint.h>

#define GMEM_LOW_MAX    0xC0000000ULL   /* RAM below the MMIO hole */
#define GMEM_HIGH_BASE  0x100000000ULL  /* RAM above it */
#define GMEM_PAGE       4096ULL

struct guest_mem;

/* Creates size bytes of zeroed RAM (multiple of 4 KiB, at least 1 MiB).
 * Returns 0 or -errno (-ENOMEM when the host cannot give it). */
int gmem_new(uint64_t size, struct guest_mem **ret);
void gmem_free(struct guest_mem *m);

uint64_t gmem_size(const struct guest_mem *m);      /* bytes of RAM */
int gmem_fd(const struct guest_mem *m);             /* the memfd */
uint8_t *gmem_base(const struct guest_mem *m);      /* host address of RAM offset 0 */

/* RAM offset <-> guest-physical address. gmem_gpa_to_off returns -1 (as
 * uint64_t) when gpa..gpa+len is not wholly inside one RAM region. */
uint64_t gmem_gpa_to_off(const struct guest_mem *m, uint64_t gpa, uint64_t len);
uint64_t gmem_off_to_gpa(const struct guest_mem *m, uint64_t off);

/* Host pointer to gpa..gpa+len, or NULL when any byte of it is not RAM.
 * The only way devices and loaders may touch guest memory. */
void *gmem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len);
int gmem_read(const struct guest_mem *m, uint64_t gpa, void *buf, size_t len);
int gmem_write(struct guest_mem *m, uint64_t gpa, const void *buf, size_t len);

/* Dirty tracking by software writers (devices doing DMA, the BT engine):
 * one bit per 4 KiB page of RAM offset. Engines with hardware dirty logging
 * merge theirs in through the engine interface. */
void gmem_mark_dirty(struct guest_mem *m, uint64_t gpa, uint64_t len);
/* Copies out and clears the bitmap: bits must hold gmem_size()/4096 bits. */
void gmem_take_dirty(struct guest_mem *m, uint64_t *bits);

/* e820-style description of RAM regions (at most 2). */
struct gmem_region { uint64_t gpa, size; };
int gmem_regions(const struct guest_mem *m, struct gmem_region out[2]);
#endif
