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
#endif
