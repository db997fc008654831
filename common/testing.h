/* testing.h — a tiny test runner: one executable holds several named cases, CTest runs each as its own test.
 *
 *   static int test_relu(const TestContext *ctx) { ... return TEST_PASS; }
 *   static const TestCase cases[] = { {"relu", test_relu}, ... };
 *   int main(int argc, char **argv) { return test_main(argc, argv, cases, COUNT_OF(cases)); }
 *
 * Command line: `test_x CASE [--golden DIR] [--data DIR]`, or `test_x --list`. Exit status 0 pass, 1 fail,
 * 77 skip (CTest is told SKIP_RETURN_CODE 77), so a missing optional input shows as skipped, never as passed.
 */
#ifndef COURSE_TESTING_H
#define COURSE_TESTING_H

#include <stdbool.h>
#include <stddef.h>

#include "npy.h"

#define COUNT_OF(array) (sizeof(array) / sizeof((array)[0]))

enum { TEST_PASS = 0, TEST_FAIL = 1, TEST_SKIP = 77 };

typedef struct TestContext {
    const char *golden_dir; /* reference/golden (or --golden) */
    const char *data_dir; /* data (or --data) */
    const char *case_name;
} TestContext;

typedef int (*TestFunction)(const TestContext *ctx);

typedef struct TestCase {
    const char *name;
    TestFunction run;
} TestCase;

int test_main(int argc, char **argv, const TestCase *cases, size_t n_cases);

/* Load "<golden_dir>/<relative>" as float32. On any problem prints the error (naming the file, and how to
 * regenerate goldens) and returns false; `out` is then zeroed. */
bool golden_load(const TestContext *ctx, const char *relative, NpyArray *out);
/* The same for any dtype (int32 labels, uint8 masks, ...): a file of another dtype is refused, named. */
bool golden_load_typed(const char *golden_dir, const char *relative, NpyDtype dtype, NpyArray *out);

/* Print "SKIP: <reason>" and return TEST_SKIP. */
int test_skip(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* A float array of n elements filled with NaN: results a function forgot to write stay NaN and fail. */
float *nan_filled(size_t n);

#endif
