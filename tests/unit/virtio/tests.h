/* Shared declarations of the virtio unit-test program (one per folder). */
#ifndef ROAM_TEST_VIRTIO_TESTS_H
#define ROAM_TEST_VIRTIO_TESTS_H
#include <stdbool.h>
#include <stdint.h>
#include "tests/unit/virtio/harness.h"

#define F_VERSION_1   (1ULL << 32)
#define F_INDIRECT    (1ULL << 28)
#define F_EVENT_IDX   (1ULL << 29)
#define DATA_GPA      0x200000ULL
#define QBASE         0x10000ULL

extern char disk_path[64];
int make_disk(uint64_t size);
/* virtio-blk on a fresh 1 MiB temp disk in slot 1, probed into d. */
struct tvm *blk_vm(bool ro, struct drv *d);
/* ... negotiated (VERSION_1 | extra), MSI-X, queue 0 size 16, DRIVER_OK. */
struct tvm *blk_ready(bool ro, struct drv *d, uint64_t extra);
void blk_done(struct tvm *t);
struct dev *tvm_dev(struct tvm *t, const char *id);

/* Each returns its number of failed tests. */
int run_hostile_tests(void);
int run_state_tests(void);
#endif
