/* counter_check: host-side checker for the records the counter test kernel
 * appends to its disk (see tests/guest/README.md for the layout).
 *
 *   counter_check IMAGE [START_SECTOR [MIN_RECORDS]]
 *
 * Reads records from START_SECTOR (default 0) until the first sector that
 * is not a record (or the end of the file) and checks that every record
 * has a valid checksum, seq equal to its index, one boot_id throughout,
 * a strictly increasing counter and non-decreasing ticks and ap counter.
 * Prints "counter_check: records=N boot_id=0x... last_counter=N
 * last_ticks=N" and exits 0, or prints "counter_check: record N: why" and
 * exits 1 (2 for usage or I/O errors). MIN_RECORDS: fewer is an error. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t get64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t fnv(const unsigned char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: counter_check IMAGE [START_SECTOR [MIN_RECORDS]]\n");
		return 2;
	}
	unsigned long long start = argc > 2 ? strtoull(argv[2], NULL, 0) : 0;
	unsigned long long min = argc > 3 ? strtoull(argv[3], NULL, 0) : 0;
	FILE *f = fopen(argv[1], "rb");
	if (!f) {
		fprintf(stderr, "counter_check: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	if (fseeko(f, (off_t)(start * 512), SEEK_SET)) {
		fprintf(stderr, "counter_check: %s: cannot seek to sector %llu\n", argv[1], start);
		fclose(f);
		return 2;
	}
	unsigned char r[512];
	uint64_t n = 0, boot = 0, last_ctr = 0, last_ticks = 0, last_ap = 0;
	int rc = 0;
	while (fread(r, 1, 512, f) == 512) {
		if (memcmp(r, "ROAMCNT1", 8))
			break;
		uint64_t seq = get64(r + 8), ctr = get64(r + 16), ticks = get64(r + 24);
		uint64_t bid = get64(r + 32), ap = get64(r + 40);
		const char *why = NULL;
		if (get64(r + 504) != fnv(r, 504))
			why = "bad checksum";
		else if (seq != n)
			why = "seq out of order (lost or repeated record)";
		else if (n && bid != boot)
			why = "boot_id changed (the guest rebooted)";
		else if (n && ctr <= last_ctr)
			why = "counter did not increase";
		else if (n && ticks < last_ticks)
			why = "ticks went backwards";
		else if (n && ap < last_ap)
			why = "ap counter went backwards";
		for (int i = 48; i < 504 && !why; i++)
			if (r[i] != (unsigned char)(seq + i))
				why = "filler bytes corrupt";
		if (why) {
			printf("counter_check: record %" PRIu64 " (seq %" PRIu64 "): %s\n", n, seq, why);
			rc = 1;
			break;
		}
		boot = bid;
		last_ctr = ctr;
		last_ticks = ticks;
		last_ap = ap;
		n++;
	}
	if (ferror(f)) {
		fprintf(stderr, "counter_check: %s: read error\n", argv[1]);
		rc = 2;
	}
	fclose(f);
	if (rc)
		return rc;
	if (n < min) {
		printf("counter_check: only %" PRIu64 " records, want at least %llu\n", n, min);
		return 1;
	}
	printf("counter_check: records=%" PRIu64 " boot_id=%#" PRIx64 " last_counter=%" PRIu64
	       " last_ticks=%" PRIu64 "\n", n, boot, last_ctr, last_ticks);
	return 0;
}
