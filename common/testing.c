/* testing.c — see testing.h. */
#include "testing.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "course_error.h"

int test_main(int argc, char **argv, const TestCase *cases, size_t n_cases)
{
    TestContext ctx = {"reference/golden", "data", NULL};
    const char *case_name = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--golden") == 0 && i + 1 < argc) {
            ctx.golden_dir = argv[++i];
        } else if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) {
            ctx.data_dir = argv[++i];
        } else if (strcmp(argv[i], "--list") == 0) {
            for (size_t k = 0; k < n_cases; k++) {
                printf("%s\n", cases[k].name);
            }
            return TEST_PASS;
        } else if (argv[i][0] != '-' && case_name == NULL) {
            case_name = argv[i];
        } else {
            fprintf(stderr, "usage: %s CASE [--golden DIR] [--data DIR] | --list\n", argv[0]);
            return TEST_FAIL;
        }
    }
    if (case_name == NULL) {
        fprintf(stderr, "usage: %s CASE [--golden DIR] [--data DIR] | --list\n", argv[0]);
        return TEST_FAIL;
    }
    for (size_t k = 0; k < n_cases; k++) {
        if (strcmp(cases[k].name, case_name) == 0) {
            ctx.case_name = case_name;
            int status = cases[k].run(&ctx);
            fflush(stdout);
            if (status == TEST_PASS) {
                printf("PASS %s\n", case_name);
            } else if (status == TEST_SKIP) {
                printf("SKIPPED %s\n", case_name);
            } else {
                printf("FAILED %s\n", case_name);
                status = TEST_FAIL;
            }
            return status;
        }
    }
    fprintf(stderr, "%s: no test case named '%s' (--list shows them)\n", argv[0], case_name);
    return TEST_FAIL;
}

bool golden_load_typed(const char *golden_dir, const char *relative, NpyDtype dtype, NpyArray *out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", golden_dir, relative);
    CourseError err;
    if (npy_load(path, out, &err) != 0) {
        printf("FAIL cannot load golden file: %s\n     (regenerate with reference/make_golden.py)\n", err.message);
        return false;
    }
    if (out->dtype != dtype) {
        printf("FAIL %s: expected %s, found %s\n", path, npy_dtype_name(dtype), npy_dtype_name(out->dtype));
        npy_free(out);
        return false;
    }
    return true;
}

bool golden_load(const TestContext *ctx, const char *relative, NpyArray *out)
{
    return golden_load_typed(ctx->golden_dir, relative, NPY_FLOAT32, out);
}

int test_skip(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    printf("SKIP: ");
    vprintf(fmt, args);
    printf("\n");
    va_end(args);
    return TEST_SKIP;
}

float *nan_filled(size_t n)
{
    float *p = xmalloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) {
        p[i] = NAN;
    }
    return p;
}
