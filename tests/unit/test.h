/* Minimal unit-test support shared by every tests/unit/<module>/ program:
 * CHECK records a failure and continues; each TEST prints one PASS/FAIL line
 * that tests/run.sh counts. */
#ifndef ROAM_TEST_H
#define ROAM_TEST_H
#include <stdio.h>
#include <stdlib.h>

static int test_failed_now;
static int test_failures;

#define CHECK(cond) do { if (!(cond)) { \
	printf("  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
	test_failed_now = 1; } } while (0)
#define CHECK_EQ(a, b) do { long long _a = (long long)(a), _b = (long long)(b); \
	if (_a != _b) { printf("  %s:%d: %s == %lld, expected %s == %lld\n", \
	__FILE__, __LINE__, #a, _a, #b, _b); test_failed_now = 1; } } while (0)

#define TEST(fn) do { test_failed_now = 0; fn(); \
	if (test_failed_now) { test_failures++; printf("FAIL: %s\n", #fn); } \
	else { printf("PASS: %s\n", #fn); } \
	fflush(stdout); } while (0)
#define SKIP(fn, why) printf("SKIP: %s: %s\n", #fn, why)

#define TEST_EXIT() return test_failures ? 1 : 0

/* Reproducible xorshift64 data; a test may define TEST_RNG_SEED before
 * including this header. */
#include <stddef.h>
#include <stdint.h>
#ifndef TEST_RNG_SEED
#define TEST_RNG_SEED 0x9e3779b97f4a7c15ull
#endif
static uint64_t test_rng_state = TEST_RNG_SEED;
static inline uint64_t test_rnd(void)
{
	test_rng_state ^= test_rng_state << 13;
	test_rng_state ^= test_rng_state >> 7;
	test_rng_state ^= test_rng_state << 17;
	return test_rng_state;
}

static inline void test_fill_random(void *p, size_t n)
{
	uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)test_rnd();
}
#endif
