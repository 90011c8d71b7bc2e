/* libFuzzer harness for the split-virtqueue walker (monitor/dev/virtq.c):
 * the input chooses the queue geometry and negotiated features and fills
 * guest RAM (rings, descriptors, indirect tables); the harness then pops,
 * reads, writes and pushes chains like a device until the queue is empty or
 * reports -EINVAL. ASan catches any access outside guest RAM.
 *
 * Input: u8 size_log2 (mod 9), u8 flags (bit0 EVENT_IDX, bit1 INDIRECT),
 * u16 last_avail, u32 desc, u32 avail, u32 used (guest-physical), then RAM
 * contents from address 0. Build: clang -fsanitize=fuzzer,address. */
#include <stdint.h>
#include <string.h>
#include "monitor/dev/virtq.h"
#include "monitor/guest_mem.h"

#define FUZZ_RAM (1ULL << 20)

static struct guest_mem *mem;
static struct virtq_req req;
static size_t dirty_len;

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!mem && gmem_new(FUZZ_RAM, &mem) < 0)
		return 0;
	if (size < 16)
		return 0;
	uint8_t *ram = gmem_base(mem);
	memset(ram, 0, dirty_len);
	size_t n = size - 16 < FUZZ_RAM ? size - 16 : FUZZ_RAM;
	memcpy(ram, data + 16, n);
	dirty_len = n > 0x40000 ? n : 0x40000;   /* the device writes too */
	if (dirty_len > FUZZ_RAM)
		dirty_len = FUZZ_RAM;

	struct virtq q;
	virtq_reset(&q, mem, (uint16_t)(1u << (data[0] % 9)));
	q.event_idx = data[1] & 1;
	q.indirect = data[1] & 2;
	q.last_avail = (uint16_t)(data[2] | data[3] << 8);
	q.used_idx = q.last_avail;
	q.desc = rd32(data + 4) % 0x100000;
	q.avail = rd32(data + 8) % 0x100000;
	q.used = rd32(data + 12) % 0x100000;
	/* Rings outside the first 256 KiB are zeroed between runs only there. */
	if (q.desc >= 0x40000 || q.avail >= 0x40000 || q.used >= 0x40000)
		return 0;
	if (virtq_check(&q) < 0)
		return 0;
	q.ready = true;
	for (int i = 0; i < 512; i++) {
		int rc = virtq_pop(&q, &req);
		if (rc <= 0)
			break;
		uint8_t buf[64];
		size_t got = virtq_req_read(&req, req.out_bytes / 2, buf, sizeof(buf));
		size_t put = virtq_req_write(&q, &req, req.in_bytes / 3, buf, got);
		if (virtq_push(&q, req.head, (uint32_t)put) < 0)
			break;
		virtq_should_notify(&q);
	}
	return 0;
}
