/* check.h — the one comparison helper every test uses.
 *
 *   // ulp-level differences between libm and PyTorch's vectorised math
 *   ok &= check_close("sigmoid_forward", got, expected, n, shape, 1, 1e-6, 1e-5);
 *
 * An element passes when |got - expected| <= atol + rtol * |expected|, written as !(err <= tol) so that a NaN
 * anywhere fails (a NaN compared with anything is false). An infinity matches only the same infinity. On
 * failure it prints the tensor's name and shape, how many elements are out of tolerance, the worst one, the
 * first few (index, got, expected), the largest absolute and relative errors, and the NaN/Inf counts.
 *
 * Tests of functions that must turn NaN into NaN use check_close_ex with CHECK_NAN_EXPECTED: then a NaN is
 * accepted exactly where the expected value is NaN too, and still fails everywhere else.
 */
#ifndef COURSE_CHECK_H
#define COURSE_CHECK_H

#include <stdbool.h>
#include <stddef.h>

enum {
    CHECK_STRICT = 0, /* any NaN in `got` fails */
    CHECK_NAN_EXPECTED = 1, /* NaN in `got` passes where `expected` is NaN at the same index */
};

/* Compare n floats laid out with the given shape (ndim 0..8; shape may be NULL for a flat array). Prints a
 * report and returns false when any element is out of tolerance; prints one "ok" line and returns true
 * otherwise. */
bool check_close(const char *name, const float *got, const float *expected, size_t n, const size_t *shape,
                 int ndim, double atol, double rtol);
bool check_close_ex(const char *name, const float *got, const float *expected, size_t n, const size_t *shape,
                    int ndim, double atol, double rtol, int flags);

/* Assert a condition with a formatted explanation; prints "FAIL: ..." and returns false when it is false. */
bool check_true(bool condition, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Verbosity: when quiet, passing checks print nothing (failures always print). */
void check_set_quiet(bool quiet);

#endif
