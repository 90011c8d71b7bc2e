/* virtio-rng (virtio 1.x section 5.4): one request queue whose
 * device-writable buffers are filled from getrandom(2). No config, no
 * device features. At most RNG_MAX_FILL bytes per buffer chain. */
#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>
#include "monitor/dev/virtio.h"
#include "monitor/dev/virtio_int.h"

#define RNG_STATE_VERSION 1
#define RNG_QUEUE_SIZE    64
#define RNG_MAX_FILL      65536

static int rng_handle(struct virtio_dev *vd, unsigned q, struct virtq_req *r, uint32_t *written)
{
	uint64_t want = r->in_bytes < RNG_MAX_FILL ? r->in_bytes : RNG_MAX_FILL;
	uint64_t done = 0;
	while (done < want) {
		uint8_t buf[4096];
		size_t n = want - done < sizeof(buf) ? (size_t)(want - done) : sizeof(buf);
		ssize_t got = getrandom(buf, n, 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			break;          /* hand back what we have */
		}
		done += virtq_req_write(&vd->s.vq[q].q, r, done, buf, (size_t)got);
	}
	*written = (uint32_t)done;
	return 0;
}

static const struct virtio_dev_ops rng_ops = {
	.device_id = 4,
	.class_code = 0x00FF00,
	.nqueues = 1,
	.queue_max = RNG_QUEUE_SIZE,
	.cfg_size = 0,
	.handle = rng_handle,
};

static const struct dev_type rng_type = {
	.name = "virtio-rng",
	.version = RNG_STATE_VERSION,
	.min_version = 1,
	.reset = virtio_dev_reset,
	.save = virtio_dev_save,
	.load = virtio_dev_load,
	.pause = virtio_dev_pause,
	.resume = virtio_dev_resume,
	.free = virtio_dev_free,
};

int virtio_rng_create(struct vm *vm)
{
	struct virtio_dev *vd = calloc(1, sizeof(*vd));
	if (!vd)
		return -ENOMEM;
	int rc = virtio_dev_init(vd, vm, &rng_ops, 0);
	if (rc < 0) {
		free(vd);
		return rc;
	}
	rc = virtio_dev_plug(vd, &rng_type, "virtio-rng0");
	if (rc < 0) {
		virtio_dev_destroy(vd);
		free(vd);
		return rc;
	}
	return 0;
}
