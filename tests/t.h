/*
 * t.h - the unit-test harness: one binary per module, cases as functions.
 *
 *   T_CASE(vlu_roundtrip) { T_CHECK(x == 1); T_CHECK_EQ_INT(a, b); }
 *   int main(void) { T_RUN(vlu_roundtrip); return t_done(); }
 *
 * Each case prints "PASS file:case" or "FAIL file:case: why"; tests/run.sh
 * counts those lines across all binaries and scripts.  A failed check ends
 * its case (return), later cases still run.
 */
#ifndef BUDDYFS_TESTS_T_H
#define BUDDYFS_TESTS_T_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_passed, t_failed, t_case_failed;

/* T_NAME is the test binary's name, passed in by the Makefile. */
#ifndef T_NAME
#define T_NAME "test"
#endif

#define T_CASE(name) static void name(void)

#define T_FAIL(...)                                                    \
	do {                                                           \
		t_case_failed = 1;                                     \
		fprintf(stdout, "  %s:%d: ", __FILE__, __LINE__);      \
		fprintf(stdout, __VA_ARGS__);                          \
		fputc('\n', stdout);                                   \
		return;                                                \
	} while (0)

#define T_CHECK(cond)                                                  \
	do {                                                           \
		if (!(cond))                                           \
			T_FAIL("check failed: %s", #cond);             \
	} while (0)

#define T_CHECK_EQ_INT(a, b)                                           \
	do {                                                           \
		long long t_a_ = (long long)(a), t_b_ = (long long)(b);\
		if (t_a_ != t_b_)                                      \
			T_FAIL("%s == %lld, expected %s == %lld", #a,  \
			       t_a_, #b, t_b_);                        \
	} while (0)

#define T_CHECK_MEM(a, b, n)                                           \
	do {                                                           \
		if (memcmp((a), (b), (n)) != 0)                        \
			T_FAIL("bytes differ: %s vs %s", #a, #b);      \
	} while (0)

#define T_RUN(name) t_run(#name, name)

static inline void t_run(const char *name, void (*fn)(void))
{
	t_case_failed = 0;
	fn();
	if (t_case_failed) {
		t_failed++;
		printf("FAIL %s:%s\n", T_NAME, name);
	} else {
		t_passed++;
		printf("PASS %s:%s\n", T_NAME, name);
	}
	fflush(stdout);
}

static inline int t_done(void)
{
	return t_failed ? 1 : 0;
}

/* t_hex_to_bytes - test vectors written as hex strings. */
static inline size_t t_unhex(uint8_t *out, size_t cap, const char *hex)
{
	size_t n = 0;

	while (hex[0] && hex[1] && n < cap) {
		unsigned int v;

		if (hex[0] == ' ') {
			hex++;
			continue;
		}
		if (sscanf(hex, "%2x", &v) != 1)
			break;
		out[n++] = (uint8_t)v;
		hex += 2;
	}
	return n;
}

#endif
