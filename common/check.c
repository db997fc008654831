/* check.c — see check.h. */
#include "check.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#define CHECK_SHOW_FIRST 5

static bool check_quiet = false;

void check_set_quiet(bool quiet)
{
    check_quiet = quiet;
}

/* Write a flat index as a multi-dimensional one, e.g. [2, 0, 17], using the shape (row-major). */
static void format_index(char *buf, size_t size, size_t flat, const size_t *shape, int ndim)
{
    if (shape == NULL || ndim <= 1) {
        snprintf(buf, size, "[%zu]", flat);
        return;
    }
    size_t coords[16];
    for (int d = ndim - 1; d >= 0; d--) {
        size_t extent = shape[d] ? shape[d] : 1;
        coords[d] = flat % extent;
        flat /= extent;
    }
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < ndim && used < size; d++) {
        used += (size_t)snprintf(buf + used, size - used, d ? ", %zu" : "%zu", coords[d]);
    }
    if (used < size) {
        snprintf(buf + used, size - used, "]");
    }
}

static void format_shape(char *buf, size_t size, size_t n, const size_t *shape, int ndim)
{
    if (shape == NULL) {
        snprintf(buf, size, "(%zu,)", n);
        return;
    }
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int d = 0; d < ndim && used < size; d++) {
        used += (size_t)snprintf(buf + used, size - used, d ? ", %zu" : "%zu", shape[d]);
    }
    if (used < size) {
        snprintf(buf + used, size - used, ndim == 1 ? ",)" : ")");
    }
}

/* Does element i pass? Written so that every comparison involving NaN lands on "fail". */
static bool element_ok(float got, float expected, double atol, double rtol, int flags)
{
    if (isnan(expected) && (flags & CHECK_NAN_EXPECTED)) {
        return isnan(got);
    }
    if (isinf(expected) || isinf(got)) {
        return got == expected; /* inf - inf is NaN, so infinities are compared for equality */
    }
    double err = fabs((double)got - (double)expected);
    double tol = atol + rtol * fabs((double)expected);
    return err <= tol;
}

bool check_close_ex(const char *name, const float *got, const float *expected, size_t n, const size_t *shape,
                    int ndim, double atol, double rtol, int flags)
{
    size_t bad = 0, nan_got = 0, inf_got = 0;
    size_t worst = 0;
    double worst_excess = -1.0; /* error / tolerance of the worst element; INFINITY for NaN/Inf mismatches */
    double max_abs = 0.0, max_rel = 0.0;
    size_t first[CHECK_SHOW_FIRST];
    size_t n_first = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(got[i])) {
            nan_got++;
        } else if (isinf(got[i])) {
            inf_got++;
        }
        bool ok = element_ok(got[i], expected[i], atol, rtol, flags);
        double diff = fabs((double)got[i] - (double)expected[i]);
        if (isfinite(diff)) {
            if (diff > max_abs) {
                max_abs = diff;
            }
            /* relative error only where it is defined: an expected 0 has none */
            if (expected[i] != 0.0f && diff / fabs((double)expected[i]) > max_rel) {
                max_rel = diff / fabs((double)expected[i]);
            }
        }
        if (!ok) {
            double excess = isfinite(diff) ? diff / (atol + rtol * fabs((double)expected[i])) : INFINITY;
            if (bad == 0 || excess > worst_excess) {
                worst_excess = excess;
                worst = i;
            }
            if (n_first < CHECK_SHOW_FIRST) {
                first[n_first++] = i;
            }
            bad++;
        }
    }
    char shape_text[128];
    format_shape(shape_text, sizeof shape_text, n, shape, ndim);
    if (bad == 0) {
        if (!check_quiet) {
            printf("ok   %-32s %-16s max abs err %.2e, max rel err %.2e\n", name, shape_text, max_abs, max_rel);
        }
        return true;
    }
    char index[128];
    printf("FAIL %s %s: %zu of %zu elements out of tolerance (atol %.1e, rtol %.1e)\n", name, shape_text, bad, n,
           atol, rtol);
    format_index(index, sizeof index, worst, shape, ndim);
    printf("  worst mismatch at %s: got %.9g, expected %.9g\n", index, (double)got[worst], (double)expected[worst]);
    printf("  first mismatches:\n");
    for (size_t k = 0; k < n_first; k++) {
        format_index(index, sizeof index, first[k], shape, ndim);
        printf("    %-16s got %-16.9g expected %.9g\n", index, (double)got[first[k]], (double)expected[first[k]]);
    }
    printf("  max abs err %.3e, max rel err %.3e (over finite differences; relative where expected != 0); NaN in result: %zu, Inf in result: %zu\n",
           max_abs, max_rel, nan_got, inf_got);
    return false;
}

bool check_close(const char *name, const float *got, const float *expected, size_t n, const size_t *shape,
                 int ndim, double atol, double rtol)
{
    return check_close_ex(name, got, expected, n, shape, ndim, atol, rtol, CHECK_STRICT);
}

bool check_true(bool condition, const char *fmt, ...)
{
    if (condition) {
        return true;
    }
    va_list args;
    va_start(args, fmt);
    printf("FAIL ");
    vprintf(fmt, args);
    printf("\n");
    va_end(args);
    return false;
}
