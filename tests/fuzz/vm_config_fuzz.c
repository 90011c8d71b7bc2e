/* libFuzzer harness for the VM config parser (checkpoint/vmconfig.c): the
 * input is a config object from a remote store or a bundle. It must be
 * refused with a one-line message, or accepted; an accepted config encodes
 * into text that decodes to the same config (every field, every byte of
 * the string fields) and encodes again to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "checkpoint/vmconfig.h"

static int same_config(const struct ckpt_config *a, const struct ckpt_config *b)
{
	/* Whole arrays: decode zeroes the struct, so bytes after a string's
	 * NUL are zero unless the text smuggled a NUL into the string. */
	return !memcmp(a->name, b->name, sizeof(a->name)) && a->mem == b->mem &&
	       a->cpus == b->cpus && !memcmp(a->append, b->append, sizeof(a->append)) &&
	       a->disks == b->disks && !memcmp(a->readonly, b->readonly, sizeof(a->readonly)) &&
	       a->rng == b->rng && a->created == b->created;
}

static void check_refusal(const char *err)
{
	if (!err[0] || strchr(err, '\n'))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy: a read past the end of the text is caught. */
	char *text = malloc(size ? size : 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	static struct ckpt_config a, b;
	char err[256] = "";
	if (ckpt_config_decode(text, size, &a, err, sizeof(err)) < 0) {
		check_refusal(err);
		free(text);
		return 0;
	}
	free(text);
	char *t1, *t2;
	size_t n1, n2;
	if (ckpt_config_encode(&a, &t1, &n1) < 0)
		abort();
	if (ckpt_config_decode(t1, n1, &b, err, sizeof(err)) < 0 || !same_config(&a, &b))
		abort();
	if (ckpt_config_encode(&b, &t2, &n2) < 0)
		abort();
	if (n1 != n2 || memcmp(t1, t2, n1))
		abort();
	free(t1);
	free(t2);
	return 0;
}
