/* test_ch03.c — Chapter 03's tests: GEMM, convolution (direct and im2col), pooling, dropout, the GEMM linear
 * layer and the whole network, against PyTorch's golden files (reference/ch03_cnn.py).
 *
 *   build/bin/test_ch03 --list
 *   build/bin/test_ch03 conv.backward_im2col --golden reference/golden
 *
 * (ctest -L ch03 runs every case.) Every output buffer starts as NaN, so a function that forgets to write an
 * element fails; the shapes are odd (1, 7, 127, 129, 7x9, 13x13, 5 channels) so a wrong index cannot pass.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "activations.h"
#include "check.h"
#include "cnn.h"
#include "cnn_layers.h"
#include "cnn_parity.h"
#include "conv.h"
#include "gemm.h"
#include "gradcheck.h"
#include "layers.h"
#include "rng.h"
#include "testing.h"

/* float32 sums of up to ~300 products of N(0,1) values: rounding grows like sqrt(K) * 6e-8 * |terms|, about
 * 1e-5 here; 1e-4 leaves room for a different summation order and still catches any indexing mistake. */
#define GEMM_ATOL 1e-4
#define GEMM_RTOL 1e-4
/* Convolution sums have at most 5*5*3 = 75 terms per output and N*OH*OW ~ 700 for dw. */
#define CONV_ATOL 1e-4
#define CONV_RTOL 1e-4

/* ---- helpers --------------------------------------------------------------------------------------------- */

static bool load_as(const TestContext *ctx, const char *name, NpyDtype dtype, NpyArray *out)
{
    char relative[512];
    snprintf(relative, sizeof relative, "ch03/%s.npy", name);
    return golden_load_typed(ctx->golden_dir, relative, dtype, out);
}

static bool load_f32(const TestContext *ctx, const char *name, NpyArray *out)
{
    return load_as(ctx, name, NPY_FLOAT32, out);
}

/* Load "<prefix>_<suffix>" as float32. */
static bool load_part(const TestContext *ctx, const char *prefix, const char *suffix, NpyArray *out)
{
    char name[256];
    snprintf(name, sizeof name, "%s_%s", prefix, suffix);
    return load_f32(ctx, name, out);
}

static void set_threads(int threads)
{
#ifdef _OPENMP
    omp_set_num_threads(threads);
#else
    (void)threads;
#endif
}

/* ---- GEMM ------------------------------------------------------------------------------------------------ */

typedef struct GemmCase {
    const char *name;
    int m, n, k;
    bool trans_a, trans_b;
} GemmCase;

/* The cases of reference/ch03_cnn.py (GEMM_CASES). */
static const GemmCase GEMM_CASES[] = {
    {"1x1x1", 1, 1, 1, false, false},
    {"7x9x5", 7, 9, 5, false, false},
    {"127x129x67", 127, 129, 67, false, false},
    {"129x127x300", 129, 127, 300, false, false},
    {"64x100x288", 64, 100, 288, false, false},
    {"33x17x129_ta", 33, 17, 129, true, false},
    {"33x17x129_tb", 33, 17, 129, false, true},
    {"31x45x19_tab", 31, 45, 19, true, true},
};

typedef struct GemmData {
    NpyArray a, b, c;
} GemmData;

static bool gemm_load(const TestContext *ctx, const GemmCase *gc, GemmData *d)
{
    char prefix[128];
    snprintf(prefix, sizeof prefix, "gemm_%s", gc->name);
    memset(d, 0, sizeof *d);
    return load_part(ctx, prefix, "a", &d->a) && load_part(ctx, prefix, "b", &d->b) &&
           load_part(ctx, prefix, "c", &d->c);
}

static void gemm_free(GemmData *d)
{
    npy_free(&d->a);
    npy_free(&d->b);
    npy_free(&d->c);
}

typedef enum GemmVariant { VARIANT_NAIVE, VARIANT_REORDERED, VARIANT_BLOCKED, VARIANT_PACKED, VARIANT_OPENBLAS } GemmVariant;

static int run_gemm_variant(const TestContext *ctx, GemmVariant variant)
{
    bool ok = true;
    for (size_t i = 0; i < COUNT_OF(GEMM_CASES); ++i) {
        const GemmCase *gc = &GEMM_CASES[i];
        const bool simple = !gc->trans_a && !gc->trans_b;
        if (!simple && variant <= VARIANT_BLOCKED) {
            continue; /* the progression functions take contiguous, untransposed matrices */
        }
        GemmData d;
        if (!gemm_load(ctx, gc, &d)) {
            return TEST_FAIL;
        }
        const size_t mn = (size_t)gc->m * gc->n;
        float *c = nan_filled(mn);
        const float *a = d.a.data, *b = d.b.data;
        const int lda = gc->trans_a ? gc->m : gc->k, ldb = gc->trans_b ? gc->k : gc->n;
        switch (variant) {
        case VARIANT_NAIVE: sgemm_naive(gc->m, gc->n, gc->k, a, b, c); break;
        case VARIANT_REORDERED: sgemm_reordered(gc->m, gc->n, gc->k, a, b, c); break;
        case VARIANT_BLOCKED: sgemm_blocked(gc->m, gc->n, gc->k, a, b, c); break;
        case VARIANT_PACKED:
            sgemm_packed(gc->trans_a, gc->trans_b, gc->m, gc->n, gc->k, 1.0f, a, lda, b, ldb, 0.0f, c, gc->n);
            break;
        case VARIANT_OPENBLAS:
            sgemm(GEMM_OPENBLAS, gc->trans_a, gc->trans_b, gc->m, gc->n, gc->k, 1.0f, a, lda, b, ldb, 0.0f, c, gc->n);
            break;
        }
        char name[160];
        snprintf(name, sizeof name, "C of gemm %s", gc->name);
        const size_t shape[2] = {(size_t)gc->m, (size_t)gc->n};
        ok &= check_close(name, c, d.c.data, mn, shape, 2, GEMM_ATOL, GEMM_RTOL);
        free(c);
        gemm_free(&d);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_gemm_naive(const TestContext *ctx) { return run_gemm_variant(ctx, VARIANT_NAIVE); }
static int test_gemm_reordered(const TestContext *ctx) { return run_gemm_variant(ctx, VARIANT_REORDERED); }
static int test_gemm_blocked(const TestContext *ctx) { return run_gemm_variant(ctx, VARIANT_BLOCKED); }
static int test_gemm_packed(const TestContext *ctx) { return run_gemm_variant(ctx, VARIANT_PACKED); }
static int test_gemm_openblas(const TestContext *ctx) { return run_gemm_variant(ctx, VARIANT_OPENBLAS); }

/* C = alpha op(A) op(B) + beta C on a sub-matrix of a larger C (ldc > n): the columns beyond n must stay. */
static int test_gemm_packed_alpha_beta(const TestContext *ctx)
{
    bool ok = true;
    const float alpha = 0.5f, beta = -2.0f;
    for (size_t i = 0; i < COUNT_OF(GEMM_CASES); ++i) {
        const GemmCase *gc = &GEMM_CASES[i];
        GemmData d;
        if (!gemm_load(ctx, gc, &d)) {
            return TEST_FAIL;
        }
        const int ldc = gc->n + 3;
        const size_t size = (size_t)gc->m * ldc;
        float *c = xmalloc(size * sizeof *c); /* (m, ldc) */
        float *expected = xmalloc(size * sizeof *expected);
        Rng rng;
        rng_seed(&rng, 42 + i, 0);
        for (size_t e = 0; e < size; ++e) {
            c[e] = rng_uniform_range(&rng, -1.0f, 1.0f);
        }
        const float *product = d.c.data; /* (m, n) from PyTorch */
        for (int r = 0; r < gc->m; ++r) {
            for (int col = 0; col < ldc; ++col) {
                const size_t e = (size_t)r * ldc + col;
                expected[e] = col < gc->n ? alpha * product[(size_t)r * gc->n + col] + beta * c[e] : c[e];
            }
        }
        const int lda = gc->trans_a ? gc->m : gc->k, ldb = gc->trans_b ? gc->k : gc->n;
        sgemm_packed(gc->trans_a, gc->trans_b, gc->m, gc->n, gc->k, alpha, d.a.data, lda, d.b.data, ldb, beta, c,
                     ldc);
        char name[160];
        snprintf(name, sizeof name, "0.5 op(A) op(B) - 2 C, gemm %s (ldc = n + 3)", gc->name);
        const size_t shape[2] = {(size_t)gc->m, (size_t)ldc};
        ok &= check_close(name, c, expected, size, shape, 2, GEMM_ATOL, GEMM_RTOL);
        free(c);
        free(expected);
        gemm_free(&d);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

/* op(A)[i][p] of a row-major matrix stored (m, k), or (k, m) when transposed. */
static float op_at(const float *a, bool trans, int ld, int i, int p)
{
    return trans ? a[(size_t)p * ld + i] : a[(size_t)i * ld + p];
}

static int test_gemm_pack_a(const TestContext *ctx)
{
    (void)ctx;
    bool ok = true;
    const int rows = 17, cols = 11; /* op(A) (17, 11) */
    float a[17 * 11];
    for (int e = 0; e < rows * cols; ++e) {
        a[e] = (float)(e + 1);
    }
    for (int trans = 0; trans < 2; ++trans) {
        const int ld = trans ? rows : cols; /* stored (11, 17) when transposed */
        const int row0 = 3, col0 = 2, mc = 13, kc = 7; /* 13 rows: two full panels of 6 and one of 1 */
        const int panels = (mc + GEMM_MR - 1) / GEMM_MR;
        const size_t size = (size_t)panels * GEMM_MR * kc;
        float *packed = nan_filled(size);
        float *expected = xmalloc(size * sizeof *expected);
        for (int q = 0; q < panels; ++q) {
            for (int p = 0; p < kc; ++p) {
                for (int i = 0; i < GEMM_MR; ++i) {
                    const int r = q * GEMM_MR + i;
                    expected[((size_t)q * kc + p) * GEMM_MR + i] =
                        r < mc ? 2.0f * op_at(a, trans, ld, row0 + r, col0 + p) : 0.0f;
                }
            }
        }
        gemm_pack_a(trans, a, ld, row0, col0, mc, kc, 2.0f, packed);
        ok &= check_close(trans ? "packed A (transposed source, alpha 2)" : "packed A (alpha 2)", packed, expected,
                          size, NULL, 1, 0.0, 0.0);
        free(packed);
        free(expected);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_gemm_pack_b(const TestContext *ctx)
{
    (void)ctx;
    bool ok = true;
    const int rows = 9, cols = 37; /* op(B) (9, 37) */
    float b[9 * 37];
    for (int e = 0; e < rows * cols; ++e) {
        b[e] = (float)(e + 1);
    }
    for (int trans = 0; trans < 2; ++trans) {
        const int ld = trans ? rows : cols;
        const int row0 = 1, col0 = 4, kc = 7, nc = 33; /* 33 columns: two full panels of 16 and one of 1 */
        const int panels = (nc + GEMM_NR - 1) / GEMM_NR;
        const size_t size = (size_t)panels * GEMM_NR * kc;
        float *packed = nan_filled(size);
        float *expected = xmalloc(size * sizeof *expected);
        for (int q = 0; q < panels; ++q) {
            for (int p = 0; p < kc; ++p) {
                for (int j = 0; j < GEMM_NR; ++j) {
                    const int col = q * GEMM_NR + j;
                    /* op(B)[r][c] = B[c][r] when transposed (stored (37, 9)) */
                    expected[((size_t)q * kc + p) * GEMM_NR + j] =
                        col < nc ? op_at(b, trans, ld, row0 + p, col0 + col) : 0.0f;
                }
            }
        }
        gemm_pack_b(trans, b, ld, row0, col0, kc, nc, packed);
        ok &= check_close(trans ? "packed B (transposed source)" : "packed B", packed, expected, size, NULL, 1, 0.0,
                          0.0);
        free(packed);
        free(expected);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

/* The micro-kernel alone, on panels packed by the test itself: a full 6x16 tile and an edge tile (5 x 9) that
 * must not touch anything outside it. */
static int test_gemm_microkernel(const TestContext *ctx)
{
    GemmData d;
    const GemmCase *gc = &GEMM_CASES[2]; /* 127x129x67 */
    if (!gemm_load(ctx, gc, &d)) {
        return TEST_FAIL;
    }
    const float *a = d.a.data, *b = d.b.data, *product = d.c.data;
    const int kc = gc->k;
    float *a_panel = xmalloc((size_t)GEMM_MR * kc * sizeof *a_panel);
    float *b_panel = xmalloc((size_t)GEMM_NR * kc * sizeof *b_panel);
    bool ok = true;
    const int tiles[2][2] = {{GEMM_MR, GEMM_NR}, {5, 9}};
    for (int t = 0; t < 2; ++t) {
        const int mr = tiles[t][0], nr = tiles[t][1];
        const int row0 = 12, col0 = 32; /* an interior tile of C */
        for (int p = 0; p < kc; ++p) {
            for (int i = 0; i < GEMM_MR; ++i) {
                a_panel[p * GEMM_MR + i] = i < mr ? a[(size_t)(row0 + i) * gc->k + p] : 0.0f;
            }
            for (int j = 0; j < GEMM_NR; ++j) {
                b_panel[p * GEMM_NR + j] = j < nr ? b[(size_t)p * gc->n + col0 + j] : 0.0f;
            }
        }
        /* C: a (MR + 1, NR + 4) buffer of ones; the kernel adds the product to the top-left mr x nr corner. */
        const int ldc = GEMM_NR + 4, total = (GEMM_MR + 1) * ldc;
        float c[(GEMM_MR + 1) * (GEMM_NR + 4)], expected[(GEMM_MR + 1) * (GEMM_NR + 4)];
        for (int e = 0; e < total; ++e) {
            c[e] = 1.0f;
            const int i = e / ldc, j = e % ldc;
            expected[e] = (i < mr && j < nr) ? 1.0f + product[(size_t)(row0 + i) * gc->n + col0 + j] : 1.0f;
        }
        gemm_microkernel(kc, a_panel, b_panel, c, ldc, mr, nr);
        const size_t shape[2] = {GEMM_MR + 1, GEMM_NR + 4};
        ok &= check_close(t == 0 ? "micro-kernel 6x16 tile (C += A B)" : "micro-kernel 5x9 edge tile", c, expected,
                          (size_t)total, shape, 2, GEMM_ATOL, GEMM_RTOL);
    }
    free(a_panel);
    free(b_panel);
    gemm_free(&d);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- Convolution ----------------------------------------------------------------------------------------- */

/* The cases of reference/ch03_cnn.py (CONV_CASES); their shapes are read from the _meta files. */
static const char *const CONV_CASES[] = {
    "c1_7x9_p0_s1", "c3_13x13_p1_s2", "c5_7x9_p2_s1", "c3_11x10_p0_s2", "c5_9x7_k5x3_p1_s1", "c1_28x28_p0_s1",
};

typedef struct ConvData {
    Conv2dShape shape;
    NpyArray x, w, b, dy, y, dx, dw, db;
} ConvData;

static bool conv_load(const TestContext *ctx, const char *name, ConvData *d)
{
    memset(d, 0, sizeof *d);
    char prefix[128], meta_name[160];
    snprintf(prefix, sizeof prefix, "conv_%s", name);
    snprintf(meta_name, sizeof meta_name, "%s_meta", prefix);
    NpyArray meta;
    if (!load_as(ctx, meta_name, NPY_INT32, &meta)) {
        return false;
    }
    if (meta.count != 9) {
        printf("FAIL %s: expected 9 values [N, C, H, W, OC, KH, KW, padding, stride]\n", meta_name);
        npy_free(&meta);
        return false;
    }
    const int32_t *m = meta.data;
    d->shape = (Conv2dShape){m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8]};
    npy_free(&meta);
    return load_part(ctx, prefix, "x", &d->x) && load_part(ctx, prefix, "w", &d->w) &&
           load_part(ctx, prefix, "b", &d->b) && load_part(ctx, prefix, "dy", &d->dy) &&
           load_part(ctx, prefix, "y", &d->y) && load_part(ctx, prefix, "dx", &d->dx) &&
           load_part(ctx, prefix, "dw", &d->dw) && load_part(ctx, prefix, "db", &d->db);
}

static void conv_free(ConvData *d)
{
    NpyArray *arrays[] = {&d->x, &d->w, &d->b, &d->dy, &d->y, &d->dx, &d->dw, &d->db};
    for (size_t i = 0; i < COUNT_OF(arrays); ++i) {
        npy_free(arrays[i]);
    }
}

static void describe(const ConvData *d, const char *name, const char *what, char *out, size_t size)
{
    const Conv2dShape *s = &d->shape;
    snprintf(out, size, "%s of conv %s (N %d, C %d, %dx%d, OC %d, kernel %dx%d, padding %d, stride %d)", what, name,
             s->batch, s->in_channels, s->in_height, s->in_width, s->out_channels, s->kernel_height,
             s->kernel_width, s->padding, s->stride);
}

static bool check_array(const char *label, const float *got, const NpyArray *expected, double atol, double rtol)
{
    return check_close(label, got, expected->data, expected->count, expected->shape, expected->ndim, atol, rtol);
}

static int test_conv_output_size(const TestContext *ctx)
{
    (void)ctx;
    /* in, kernel, padding, stride, expected */
    static const int cases[][5] = {
        {28, 3, 0, 1, 26}, {26, 3, 0, 1, 24}, {28, 3, 1, 1, 28}, {13, 3, 1, 2, 7}, {11, 3, 0, 2, 5},
        {7, 3, 2, 1, 9}, {9, 5, 1, 1, 7}, {3, 3, 0, 1, 1}, {2, 3, 0, 1, 0}, {2, 3, 1, 1, 2}, {10, 3, 0, 0, 0},
        {1, 1, 0, 1, 1}, {8, 2, 0, 2, 4},
        /* a negative padding is refused (PyTorch: "negative padding is not supported"), even where
         * (in + 2*padding - kernel) / stride + 1 would come out positive */
        {28, 3, -1, 1, 0}, {9, 3, -2, 1, 0}, {5, 1, -1, 2, 0},
    };
    bool ok = true;
    for (size_t i = 0; i < COUNT_OF(cases); ++i) {
        const int *c = cases[i];
        const int got = conv2d_output_size(c[0], c[1], c[2], c[3]);
        ok &= check_true(got == c[4], "conv2d_output_size(in %d, kernel %d, padding %d, stride %d) = %d, expected %d",
                         c[0], c[1], c[2], c[3], got, c[4]);
    }
    if (ok) {
        printf("ok conv2d_output_size: %zu cases, including (28 + 2*1 - 3)/1 + 1 = 28, a kernel that does not fit "
               "and negative paddings (0)\n", COUNT_OF(cases));
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

/* conv2d_shape_check accepts what PyTorch accepts and names the problem otherwise; cnn_create passes on its
 * message for a negative padding. */
static int test_conv_shape_check(const TestContext *ctx)
{
    (void)ctx;
    static const struct {
        Conv2dShape shape;
        const char *expected; /* a part of the message, or NULL: accepted */
    } cases[] = {
        {{2, 3, 13, 13, 5, 3, 3, 1, 2}, NULL},
        {{1, 1, 3, 3, 1, 3, 3, 0, 1}, NULL},
        {{1, 1, 28, 28, 32, 3, 3, -1, 1}, "padding -1 is negative"},
        {{1, 1, 28, 28, 32, 3, 3, 0, 0}, "stride 0"},
        {{1, 1, 2, 2, 32, 3, 3, 0, 1}, "does not fit"},
        {{0, 1, 28, 28, 32, 3, 3, 0, 1}, "at least 1"},
    };
    bool ok = true;
    for (size_t i = 0; i < COUNT_OF(cases); ++i) {
        CourseError err = {{0}};
        const int result = conv2d_shape_check(&cases[i].shape, "conv", &err);
        if (cases[i].expected == NULL) {
            ok &= check_true(result == 0, "case %zu must be accepted, got: %s", i, err.message);
        } else {
            ok &= check_true(result != 0 && strstr(err.message, cases[i].expected) != NULL,
                             "case %zu must be refused with a message containing '%s', got %d: '%s'", i,
                             cases[i].expected, result, err.message);
        }
    }
    Cnn net;
    CourseError err = {{0}};
    const int created = cnn_create(&net, cnn_default_config(-1), 2, GEMM_OWN, &err);
    ok &= check_true(created != 0 && strstr(err.message, "padding -1 is negative") != NULL,
                     "cnn_create with padding -1 must be refused, saying why; got %d: '%s'", created, err.message);
    if (created == 0) {
        cnn_destroy(&net);
    }
    if (ok) {
        printf("ok conv2d_shape_check: %zu shapes; cnn_create(padding -1) refused: %s\n", COUNT_OF(cases), err.message);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

typedef enum ConvPart { PART_FORWARD, PART_INPUT, PART_WEIGHT, PART_BIAS } ConvPart;

static int run_conv_direct(const TestContext *ctx, ConvPart part)
{
    bool ok = true;
    set_threads(2);
    for (size_t i = 0; i < COUNT_OF(CONV_CASES); ++i) {
        ConvData d;
        if (!conv_load(ctx, CONV_CASES[i], &d)) {
            conv_free(&d);
            return TEST_FAIL;
        }
        char label[256];
        const NpyArray *expected = NULL;
        float *got = NULL;
        switch (part) {
        case PART_FORWARD:
            expected = &d.y;
            got = nan_filled(expected->count);
            conv2d_forward_direct(&d.shape, d.x.data, d.w.data, d.b.data, got);
            describe(&d, CONV_CASES[i], "y", label, sizeof label);
            break;
        case PART_INPUT:
            expected = &d.dx;
            got = nan_filled(expected->count);
            conv2d_backward_input_direct(&d.shape, d.w.data, d.dy.data, got);
            describe(&d, CONV_CASES[i], "dx", label, sizeof label);
            break;
        case PART_WEIGHT:
            expected = &d.dw;
            got = nan_filled(expected->count);
            conv2d_backward_weight_direct(&d.shape, d.x.data, d.dy.data, got);
            describe(&d, CONV_CASES[i], "dw", label, sizeof label);
            break;
        case PART_BIAS:
            expected = &d.db;
            got = nan_filled(expected->count);
            conv2d_backward_bias(&d.shape, d.dy.data, got);
            describe(&d, CONV_CASES[i], "db", label, sizeof label);
            break;
        }
        ok &= check_array(label, got, expected, CONV_ATOL, CONV_RTOL);
        free(got);
        conv_free(&d);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_conv_forward_direct(const TestContext *ctx) { return run_conv_direct(ctx, PART_FORWARD); }
static int test_conv_backward_input_direct(const TestContext *ctx) { return run_conv_direct(ctx, PART_INPUT); }
static int test_conv_backward_weight_direct(const TestContext *ctx) { return run_conv_direct(ctx, PART_WEIGHT); }
static int test_conv_backward_bias(const TestContext *ctx) { return run_conv_direct(ctx, PART_BIAS); }

/* im2col of each image, multiplied by the weight with a plain loop (not the chapter's GEMM), must give
 * PyTorch's y: this checks every entry of cols, including the zeros of the padding. */
static int test_conv_im2col(const TestContext *ctx)
{
    bool ok = true;
    for (size_t i = 0; i < COUNT_OF(CONV_CASES); ++i) {
        ConvData d;
        if (!conv_load(ctx, CONV_CASES[i], &d)) {
            conv_free(&d);
            return TEST_FAIL;
        }
        const Conv2dShape *s = &d.shape;
        const int K = s->in_channels * s->kernel_height * s->kernel_width;
        const int P = conv2d_out_height(s) * conv2d_out_width(s);
        const size_t image = (size_t)s->in_channels * s->in_height * s->in_width;
        const size_t cols_size = (size_t)K * (P > 0 ? P : 1);
        float *cols = xmalloc(cols_size * sizeof *cols);
        float *y = nan_filled(d.y.count);
        const float *w = d.w.data, *b = d.b.data;
        for (int n = 0; n < s->batch && P > 0; ++n) {
            for (size_t e = 0; e < cols_size; ++e) {
                cols[e] = NAN;
            }
            conv2d_im2col(s, (const float *)d.x.data + n * image, cols);
            for (int oc = 0; oc < s->out_channels; ++oc) {
                for (int p = 0; p < P; ++p) {
                    double sum = b[oc];
                    for (int r = 0; r < K; ++r) {
                        sum += (double)w[(size_t)oc * K + r] * cols[(size_t)r * P + p];
                    }
                    y[((size_t)n * s->out_channels + oc) * P + p] = (float)sum;
                }
            }
        }
        char label[256];
        describe(&d, CONV_CASES[i], "w . im2col(x) + b", label, sizeof label);
        ok &= check_array(label, y, &d.y, CONV_ATOL, CONV_RTOL);
        free(cols);
        free(y);
        conv_free(&d);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

/* col2im of w^T dy (computed with a plain loop) must give PyTorch's dx. */
static int test_conv_col2im(const TestContext *ctx)
{
    bool ok = true;
    for (size_t i = 0; i < COUNT_OF(CONV_CASES); ++i) {
        ConvData d;
        if (!conv_load(ctx, CONV_CASES[i], &d)) {
            conv_free(&d);
            return TEST_FAIL;
        }
        const Conv2dShape *s = &d.shape;
        const int OC = s->out_channels, K = s->in_channels * s->kernel_height * s->kernel_width;
        const int P = conv2d_out_height(s) * conv2d_out_width(s);
        const size_t image = (size_t)s->in_channels * s->in_height * s->in_width;
        float *dcols = xmalloc((size_t)K * (P > 0 ? P : 1) * sizeof *dcols);
        float *dx = nan_filled(d.dx.count);
        const float *w = d.w.data, *dy = d.dy.data;
        for (int n = 0; n < s->batch && P > 0; ++n) {
            for (int r = 0; r < K; ++r) {
                for (int p = 0; p < P; ++p) {
                    double sum = 0.0;
                    for (int oc = 0; oc < OC; ++oc) {
                        sum += (double)w[(size_t)oc * K + r] * dy[((size_t)n * OC + oc) * P + p];
                    }
                    dcols[(size_t)r * P + p] = (float)sum;
                }
            }
            conv2d_col2im(s, dcols, dx + n * image);
        }
        char label[256];
        describe(&d, CONV_CASES[i], "col2im(w^T dy)", label, sizeof label);
        ok &= check_array(label, dx, &d.dx, CONV_ATOL, CONV_RTOL);
        free(dcols);
        free(dx);
        conv_free(&d);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

/* Both GEMM backends, with 1 and 2 threads (each thread has its own im2col buffer and dw partial sum). */
static int run_conv_im2col(const TestContext *ctx, bool backward)
{
    bool ok = true;
    for (int backend = GEMM_OWN; backend <= GEMM_OPENBLAS; ++backend) {
        for (int threads = 1; threads <= 2; ++threads) {
            set_threads(threads);
            for (size_t i = 0; i < COUNT_OF(CONV_CASES); ++i) {
                ConvData d;
                if (!conv_load(ctx, CONV_CASES[i], &d)) {
                    conv_free(&d);
                    return TEST_FAIL;
                }
                char what[96], label[256];
                if (!backward) {
                    float *y = nan_filled(d.y.count);
                    conv2d_forward_im2col(&d.shape, d.x.data, d.w.data, d.b.data, y, (GemmBackend)backend);
                    snprintf(what, sizeof what, "y [%s GEMM, %d threads]", gemm_backend_name(backend), threads);
                    describe(&d, CONV_CASES[i], what, label, sizeof label);
                    ok &= check_array(label, y, &d.y, CONV_ATOL, CONV_RTOL);
                    free(y);
                } else {
                    float *dx = nan_filled(d.dx.count), *dw = nan_filled(d.dw.count), *db = nan_filled(d.db.count);
                    conv2d_backward_im2col(&d.shape, d.x.data, d.w.data, d.dy.data, dx, dw, db, (GemmBackend)backend);
                    const char *names[3] = {"dx", "dw", "db"};
                    const float *got[3] = {dx, dw, db};
                    const NpyArray *expected[3] = {&d.dx, &d.dw, &d.db};
                    for (int g = 0; g < 3; ++g) {
                        snprintf(what, sizeof what, "%s [%s GEMM, %d threads]", names[g], gemm_backend_name(backend),
                                 threads);
                        describe(&d, CONV_CASES[i], what, label, sizeof label);
                        ok &= check_array(label, got[g], expected[g], CONV_ATOL, CONV_RTOL);
                    }
                    free(dx);
                    free(dw);
                    free(db);
                }
                conv_free(&d);
            }
        }
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_conv_forward_im2col(const TestContext *ctx) { return run_conv_im2col(ctx, false); }
static int test_conv_backward_im2col(const TestContext *ctx) { return run_conv_im2col(ctx, true); }

/* The network's conv2 shape (at batch 3): direct and im2col agree on y, dx, dw and db, with random inputs. */
static int test_conv_direct_equals_im2col(const TestContext *ctx)
{
    (void)ctx;
    set_threads(2);
    bool ok = true;
    const Conv2dShape shapes[] = {
        {3, 32, 26, 26, 64, 3, 3, 0, 1},
        {2, 7, 15, 12, 9, 3, 5, 2, 2},
    };
    for (size_t si = 0; si < COUNT_OF(shapes); ++si) {
        const Conv2dShape *s = &shapes[si];
        const size_t nx = conv2d_input_size(s), nw = conv2d_weight_size(s), ny = conv2d_output_size_total(s);
        const size_t nb = (size_t)s->out_channels;
        float *x = xmalloc(nx * sizeof *x), *w = xmalloc(nw * sizeof *w), *b = xmalloc(nb * sizeof *b);
        float *dy = xmalloc(ny * sizeof *dy);
        Rng rng;
        rng_seed(&rng, 7 + si, 0);
        for (size_t e = 0; e < nx; ++e) x[e] = (float)rng_normal(&rng);
        for (size_t e = 0; e < nw; ++e) w[e] = rng_uniform_range(&rng, -0.1f, 0.1f);
        for (size_t e = 0; e < nb; ++e) b[e] = rng_uniform_range(&rng, -0.1f, 0.1f);
        for (size_t e = 0; e < ny; ++e) dy[e] = (float)rng_normal(&rng);
        float *y_direct = nan_filled(ny), *y_im2col = nan_filled(ny);
        float *dx_direct = nan_filled(nx), *dx_im2col = nan_filled(nx);
        float *dw_direct = nan_filled(nw), *dw_im2col = nan_filled(nw);
        float *db_direct = nan_filled(nb), *db_im2col = nan_filled(nb);
        conv2d_forward_direct(s, x, w, b, y_direct);
        conv2d_backward_input_direct(s, w, dy, dx_direct);
        conv2d_backward_weight_direct(s, x, dy, dw_direct);
        conv2d_backward_bias(s, dy, db_direct);
        conv2d_forward_im2col(s, x, w, b, y_im2col, GEMM_OWN);
        conv2d_backward_im2col(s, x, w, dy, dx_im2col, dw_im2col, db_im2col, GEMM_OWN);
        /* dw sums N*OH*OW = 1728 products of N(0,1) values in a different order: allow 1e-3 absolute. */
        ok &= check_close("y: im2col vs direct", y_im2col, y_direct, ny, NULL, 1, 1e-4, 1e-4);
        ok &= check_close("dx: im2col vs direct", dx_im2col, dx_direct, nx, NULL, 1, 1e-4, 1e-4);
        ok &= check_close("dw: im2col vs direct", dw_im2col, dw_direct, nw, NULL, 1, 1e-3, 1e-4);
        ok &= check_close("db: im2col vs direct", db_im2col, db_direct, nb, NULL, 1, 1e-3, 1e-4);
        float *all[] = {x, w, b, dy, y_direct, y_im2col, dx_direct, dx_im2col, dw_direct, dw_im2col, db_direct, db_im2col};
        for (size_t e = 0; e < COUNT_OF(all); ++e) {
            free(all[e]);
        }
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- Pooling --------------------------------------------------------------------------------------------- */

typedef struct PoolCase {
    const char *name;
    int n, c, h, w;
} PoolCase;

static const PoolCase POOL_RANDOM[] = {{"7x9", 2, 3, 7, 9}, {"13x13", 1, 5, 13, 13}};
static const PoolCase POOL_TIES[] = {{"ties_8x10", 2, 3, 8, 10}, {"ties_7x7", 3, 2, 7, 7}};

static bool run_pool_forward(const TestContext *ctx, const PoolCase *pc)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "pool_%s", pc->name);
    NpyArray x = {0}, y = {0}, idx = {0};
    char idx_name[96];
    snprintf(idx_name, sizeof idx_name, "%s_idx", prefix);
    bool ok = load_part(ctx, prefix, "x", &x) && load_part(ctx, prefix, "y", &y) && load_as(ctx, idx_name, NPY_INT32, &idx);
    if (ok) {
        float *got = nan_filled(y.count);
        int32_t *arg = xmalloc(y.count * sizeof *arg);
        for (size_t e = 0; e < y.count; ++e) {
            arg[e] = -1;
        }
        maxpool2_forward(x.data, got, arg, pc->n, pc->c, pc->h, pc->w);
        char label[128];
        snprintf(label, sizeof label, "maxpool y, %s", pc->name);
        ok &= check_array(label, got, &y, 0.0, 0.0); /* a max is exact */
        const int32_t *want = idx.data;
        size_t wrong = 0, first = 0;
        for (size_t e = 0; e < y.count; ++e) {
            if (arg[e] != want[e] && wrong++ == 0) {
                first = e;
            }
        }
        ok &= check_true(wrong == 0, "maxpool argmax, %s: %zu of %zu differ from PyTorch's indices; first at %zu: got %d, "
                         "expected %d (ties go to the first maximum in row-major window order)",
                         pc->name, wrong, y.count, first, wrong ? arg[first] : 0, wrong ? want[first] : 0);
        if (wrong == 0) {
            printf("ok maxpool argmax, %s: all %zu indices match PyTorch's\n", pc->name, y.count);
        }
        free(got);
        free(arg);
    }
    npy_free(&x);
    npy_free(&y);
    npy_free(&idx);
    return ok;
}

static int test_pool_forward(const TestContext *ctx)
{
    bool ok = true;
    for (size_t i = 0; i < COUNT_OF(POOL_RANDOM); ++i) {
        ok &= run_pool_forward(ctx, &POOL_RANDOM[i]);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_pool_ties(const TestContext *ctx)
{
    bool ok = true;
    for (size_t i = 0; i < COUNT_OF(POOL_TIES); ++i) {
        ok &= run_pool_forward(ctx, &POOL_TIES[i]);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

/* Backward from PyTorch's own argmax, so this case fails only for a wrong routing. */
static int test_pool_backward(const TestContext *ctx)
{
    bool ok = true;
    const PoolCase *all[] = {&POOL_RANDOM[0], &POOL_RANDOM[1], &POOL_TIES[0], &POOL_TIES[1]};
    for (size_t i = 0; i < COUNT_OF(all); ++i) {
        const PoolCase *pc = all[i];
        char prefix[64], idx_name[96];
        snprintf(prefix, sizeof prefix, "pool_%s", pc->name);
        snprintf(idx_name, sizeof idx_name, "%s_idx", prefix);
        NpyArray dy = {0}, dx = {0}, idx = {0};
        if (!(load_part(ctx, prefix, "dy", &dy) && load_part(ctx, prefix, "dx", &dx) &&
              load_as(ctx, idx_name, NPY_INT32, &idx))) {
            return TEST_FAIL;
        }
        float *got = nan_filled(dx.count);
        maxpool2_backward(dy.data, idx.data, got, pc->n, pc->c, pc->h, pc->w);
        char label[128];
        snprintf(label, sizeof label, "maxpool dx, %s", pc->name);
        ok &= check_array(label, got, &dx, 0.0, 0.0); /* routing copies values: exact */
        free(got);
        npy_free(&dy);
        npy_free(&dx);
        npy_free(&idx);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- Dropout --------------------------------------------------------------------------------------------- */

static int run_dropout(const TestContext *ctx, bool backward)
{
    bool ok = true;
    const float ps[2] = {0.25f, 0.5f};
    const char *tags[2] = {"25", "50"};
    for (int i = 0; i < 2; ++i) {
        char prefix[64], mask_name[96];
        snprintf(prefix, sizeof prefix, "dropout_%s", tags[i]);
        snprintf(mask_name, sizeof mask_name, "%s_mask", prefix);
        NpyArray in = {0}, mask = {0}, want = {0};
        if (!(load_part(ctx, prefix, backward ? "dy" : "x", &in) && load_as(ctx, mask_name, NPY_UINT8, &mask) &&
              load_part(ctx, prefix, backward ? "dx" : "y", &want))) {
            return TEST_FAIL;
        }
        float *got = nan_filled(want.count);
        if (backward) {
            dropout_backward(in.data, mask.data, ps[i], got, in.count);
        } else {
            dropout_forward(in.data, mask.data, ps[i], got, in.count);
        }
        char label[96];
        snprintf(label, sizeof label, "dropout p = %.2f %s", ps[i], backward ? "dx" : "y");
        /* x / (1 - p) against x * (1 / (1 - p)): one rounding apart. */
        ok &= check_array(label, got, &want, 1e-7, 1e-6);
        free(got);
        npy_free(&in);
        npy_free(&mask);
        npy_free(&want);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_dropout_forward(const TestContext *ctx) { return run_dropout(ctx, false); }
static int test_dropout_backward(const TestContext *ctx) { return run_dropout(ctx, true); }

static int test_dropout_mask(const TestContext *ctx)
{
    (void)ctx;
    bool ok = true;
    const size_t n = 200000;
    uint8_t *mask = xmalloc(n);
    const float ps[3] = {0.0f, 0.25f, 0.5f};
    for (int i = 0; i < 3; ++i) {
        Rng rng;
        rng_seed(&rng, 5, 0);
        dropout_make_mask(&rng, ps[i], mask, n);
        size_t kept = 0;
        for (size_t e = 0; e < n; ++e) {
            kept += mask[e] == 1;
            ok &= mask[e] <= 1;
        }
        const double fraction = (double)kept / (double)n;
        /* binomial: standard deviation sqrt(p(1-p)/n) ~ 0.0011; 0.006 is more than 5 of them */
        ok &= check_true(fabs(fraction - (1.0 - ps[i])) < 0.006, "dropout mask p = %.2f keeps %.4f of the values, expected %.2f",
                         ps[i], fraction, 1.0 - ps[i]);
    }
    free(mask);
    if (ok) {
        printf("ok dropout masks keep 1 - p of 200000 values (p = 0, 0.25, 0.5)\n");
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- Linear on GEMM -------------------------------------------------------------------------------------- */

static int run_linear(const TestContext *ctx, bool backward)
{
    NpyArray x = {0}, w = {0}, b = {0}, dy = {0}, y = {0}, dx = {0}, dw = {0}, db = {0};
    if (!(load_f32(ctx, "linear_x", &x) && load_f32(ctx, "linear_w", &w) && load_f32(ctx, "linear_b", &b) &&
          load_f32(ctx, "linear_dy", &dy) && load_f32(ctx, "linear_y", &y) && load_f32(ctx, "linear_dx", &dx) &&
          load_f32(ctx, "linear_dw", &dw) && load_f32(ctx, "linear_db", &db))) {
        return TEST_FAIL;
    }
    const int batch = (int)x.shape[0], in = (int)x.shape[1], out = (int)w.shape[0];
    bool ok = true;
    for (int backend = GEMM_OWN; backend <= GEMM_OPENBLAS; ++backend) {
        char label[96];
        if (!backward) {
            float *got = nan_filled(y.count);
            linear_forward_gemm(x.data, w.data, b.data, got, batch, in, out, (GemmBackend)backend);
            snprintf(label, sizeof label, "linear y [%s GEMM]", gemm_backend_name(backend));
            ok &= check_array(label, got, &y, GEMM_ATOL, GEMM_RTOL);
            free(got);
        } else {
            float *gdx = nan_filled(dx.count), *gdw = nan_filled(dw.count), *gdb = nan_filled(db.count);
            linear_backward_gemm(x.data, w.data, dy.data, gdx, gdw, gdb, batch, in, out, (GemmBackend)backend);
            snprintf(label, sizeof label, "linear dx [%s GEMM]", gemm_backend_name(backend));
            ok &= check_array(label, gdx, &dx, GEMM_ATOL, GEMM_RTOL);
            snprintf(label, sizeof label, "linear dw [%s GEMM]", gemm_backend_name(backend));
            ok &= check_array(label, gdw, &dw, GEMM_ATOL, GEMM_RTOL);
            snprintf(label, sizeof label, "linear db [%s GEMM]", gemm_backend_name(backend));
            ok &= check_array(label, gdb, &db, GEMM_ATOL, GEMM_RTOL);
            free(gdx);
            free(gdw);
            free(gdb);
        }
    }
    NpyArray *all[] = {&x, &w, &b, &dy, &y, &dx, &dw, &db};
    for (size_t i = 0; i < COUNT_OF(all); ++i) {
        npy_free(all[i]);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_linear_forward(const TestContext *ctx) { return run_linear(ctx, false); }
static int test_linear_backward(const TestContext *ctx) { return run_linear(ctx, true); }

/* Chapter 02's loops and this chapter's GEMM layer compute the same layer. */
static int test_linear_matches_ch02(const TestContext *ctx)
{
    (void)ctx;
    const int batch = 5, in = 300, out = 17;
    Rng rng;
    rng_seed(&rng, 3, 0);
    float *x = xmalloc((size_t)batch * in * sizeof *x), *w = xmalloc((size_t)out * in * sizeof *w);
    float *b = xmalloc((size_t)out * sizeof *b), *dy = xmalloc((size_t)batch * out * sizeof *dy);
    for (int e = 0; e < batch * in; ++e) x[e] = (float)rng_normal(&rng);
    for (int e = 0; e < out * in; ++e) w[e] = rng_uniform_range(&rng, -0.1f, 0.1f);
    for (int e = 0; e < out; ++e) b[e] = rng_uniform_range(&rng, -0.1f, 0.1f);
    for (int e = 0; e < batch * out; ++e) dy[e] = (float)rng_normal(&rng);
    float *y2 = nan_filled((size_t)batch * out), *y3 = nan_filled((size_t)batch * out);
    float *dx2 = nan_filled((size_t)batch * in), *dx3 = nan_filled((size_t)batch * in);
    float *dw2 = nan_filled((size_t)out * in), *dw3 = nan_filled((size_t)out * in);
    float *db2 = nan_filled((size_t)out), *db3 = nan_filled((size_t)out);
    linear_forward(x, w, b, y2, (size_t)batch, (size_t)in, (size_t)out);
    linear_backward(x, w, dy, dx2, dw2, db2, (size_t)batch, (size_t)in, (size_t)out);
    linear_forward_gemm(x, w, b, y3, batch, in, out, GEMM_OWN);
    linear_backward_gemm(x, w, dy, dx3, dw3, db3, batch, in, out, GEMM_OWN);
    bool ok = true;
    ok &= check_close("y: GEMM linear vs chapter 02", y3, y2, (size_t)batch * out, NULL, 1, 1e-4, 1e-4);
    ok &= check_close("dx: GEMM linear vs chapter 02", dx3, dx2, (size_t)batch * in, NULL, 1, 1e-4, 1e-4);
    ok &= check_close("dw: GEMM linear vs chapter 02", dw3, dw2, (size_t)out * in, NULL, 1, 1e-4, 1e-4);
    ok &= check_close("db: GEMM linear vs chapter 02", db3, db2, (size_t)out, NULL, 1, 1e-4, 1e-4);
    float *all[] = {x, w, b, dy, y2, y3, dx2, dx3, dw2, dw3, db2, db3};
    for (size_t i = 0; i < COUNT_OF(all); ++i) {
        free(all[i]);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- ReLU: the vectorised form against chapter 01 ------------------------------------------------------- */

static int test_relu_matches_ch01(const TestContext *ctx)
{
    (void)ctx;
    static const float extremes[] = {0.0f, -0.0f, 1e-45f, -1e-45f, 1e-38f, -1e-38f, 1.0f, -1.0f, 3e38f, -3e38f,
                                     INFINITY, -INFINITY, NAN};
    const size_t n = 1031, ne = COUNT_OF(extremes);
    float *x = xmalloc(n * sizeof *x), *dy = xmalloc(n * sizeof *dy);
    Rng rng;
    rng_seed(&rng, 9, 0);
    for (size_t i = 0; i < n; ++i) {
        x[i] = i < ne * ne ? extremes[i % ne] : (float)rng_normal(&rng); /* every (x, dy) pair of extremes */
        dy[i] = i < ne * ne ? extremes[i / ne] : (float)rng_normal(&rng);
    }
    float *y1 = nan_filled(n), *y3 = nan_filled(n), *dx1 = nan_filled(n), *dx3 = nan_filled(n);
    relu_forward(x, y1, n);
    relu_backward(x, dy, dx1, n);
    relu_forward_vectorized(x, y3, n);
    relu_backward_vectorized(x, dy, dx3, n);
    bool ok = true;
    /* Exact: the same operations on the same floats; NaN exactly where chapter 01 gives NaN. */
    ok &= check_close_ex("relu forward: vectorised vs chapter 01", y3, y1, n, NULL, 1, 0.0, 0.0, CHECK_NAN_EXPECTED);
    ok &= check_close_ex("relu backward: vectorised vs chapter 01", dx3, dx1, n, NULL, 1, 0.0, 0.0, CHECK_NAN_EXPECTED);
    float *all[] = {x, dy, y1, y3, dx1, dx3};
    for (size_t i = 0; i < COUNT_OF(all); ++i) {
        free(all[i]);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- The network ----------------------------------------------------------------------------------------- */

static int test_net_shapes(const TestContext *ctx)
{
    (void)ctx;
    bool ok = true;
    const int paddings[3] = {0, 1, 2};
    const size_t expected_features[3] = {9216, 12544, 16384}; /* 64*12*12, 64*14*14, 64*16*16 */
    for (int i = 0; i < 3; ++i) {
        Cnn net;
        CourseError err;
        if (cnn_create(&net, cnn_default_config(paddings[i]), 2, GEMM_OWN, &err) != 0) {
            printf("FAIL cnn_create(padding %d): %s\n", paddings[i], err.message);
            return TEST_FAIL;
        }
        ok &= check_true(net.features == expected_features[i], "padding %d: fc1 has %zu inputs, expected %zu",
                         paddings[i], net.features, expected_features[i]);
        ok &= check_true(net.tensors[CNN_FC1_W].count == expected_features[i] * 128,
                         "padding %d: fc1.weight has %zu values", paddings[i], net.tensors[CNN_FC1_W].count);
        cnn_destroy(&net);
    }
    /* A configuration whose convolutions leave no pixels is refused with a message, not a crash. */
    CnnConfig tiny = cnn_default_config(0);
    tiny.image_size = 4;
    Cnn net;
    CourseError err;
    ok &= check_true(cnn_create(&net, tiny, 2, GEMM_OWN, &err) != 0, "a 4x4 image (no pixels left after pooling) must be refused");
    if (ok) {
        printf("ok fc1 inputs: padding 0 -> 9216, 1 -> 12544, 2 -> 16384; a 4x4 image is refused (%s)\n", err.message);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

/* Five SGD steps of the parity network from PyTorch's initial weights, with PyTorch's dropout masks: the loss
 * of every step and every weight afterwards must match (cnn_parity.h, shared with chapter 07's GPU test). */
static int run_parity(const TestContext *ctx, int padding)
{
    bool ok = true;
    for (int backend = GEMM_OWN; backend <= GEMM_OPENBLAS; ++backend) {
        set_threads(2);
        Cnn net;
        CourseError err;
        if (cnn_create(&net, cnn_parity_config(padding), CNN_PARITY_BATCH, (GemmBackend)backend, &err) != 0) {
            printf("FAIL %s\n", err.message);
            return TEST_FAIL;
        }
        CnnParity parity;
        if (!cnn_parity_load(ctx->golden_dir, padding, &net, &parity)) {
            cnn_destroy(&net);
            return TEST_FAIL;
        }
        float losses[CNN_PARITY_STEPS];
        for (int step = 0; step < CNN_PARITY_STEPS; ++step) {
            memcpy(net.mask1, cnn_parity_mask1(&parity, step), (size_t)CNN_PARITY_BATCH * net.features);
            memcpy(net.mask2, cnn_parity_mask2(&parity, step), (size_t)CNN_PARITY_BATCH * net.config.hidden);
            const int32_t *labels = cnn_parity_labels(&parity, step);
            losses[step] = cnn_forward_loss(&net, cnn_parity_images(&parity, step), labels, CNN_PARITY_BATCH, true);
            cnn_backward(&net, labels, CNN_PARITY_BATCH);
            cnn_sgd_step(&net, CNN_PARITY_LR, CNN_PARITY_MOMENTUM);
        }
        char what[64];
        snprintf(what, sizeof what, "CPU, %s GEMM", gemm_backend_name(backend));
        ok &= cnn_parity_check(&parity, what, losses, &net);
        cnn_parity_free(&parity);
        cnn_destroy(&net);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_net_parity_p0(const TestContext *ctx) { return run_parity(ctx, 0); }
static int test_net_parity_p1(const TestContext *ctx) { return run_parity(ctx, 1); }

/* The gradient with respect to the input images (cnn_backward_from_logits with d_input), which chapter 09's
 * saliency maps use: the parity network with padding 1 at its initial weights, no dropout, 3 images, a random
 * upstream gradient of the logits, against PyTorch's autograd (reference/ch03_cnn.py, gen_input_grad). */
static int test_net_input_gradient(const TestContext *ctx)
{
    set_threads(2);
    Cnn net;
    CourseError err;
    if (cnn_create(&net, cnn_parity_config(1), CNN_PARITY_BATCH, GEMM_OPENBLAS, &err) != 0) {
        printf("FAIL %s\n", err.message);
        return TEST_FAIL;
    }
    CnnParity parity;
    NpyArray x, dlogits, dx_expected;
    if (!cnn_parity_load(ctx->golden_dir, 1, &net, &parity)) { /* the initial weights net_p1_init_* */
        cnn_destroy(&net);
        return TEST_FAIL;
    }
    cnn_parity_free(&parity);
    if (!load_f32(ctx, "net_input_grad_x", &x) || !load_f32(ctx, "net_input_grad_dlogits", &dlogits) ||
        !load_f32(ctx, "net_input_grad_dx", &dx_expected)) {
        cnn_destroy(&net);
        return TEST_FAIL;
    }
    const int batch = (int)x.shape[0];
    cnn_forward(&net, x.data, batch, false);
    memcpy(net.d_logits, dlogits.data, dlogits.count * sizeof(float));
    float *dx = nan_filled(x.count); /* (3, 1, 28, 28) */
    cnn_backward_from_logits(&net, batch, dx);
    /* Each input pixel's gradient sums over 9 conv1 positions x 8 channels, after conv2's 72-term sums and the
     * fully connected layers: float32 rounding stays near 1e-7 of the largest values (|dx| <= 0.03 here), so
     * 1e-6 absolute is 3e-5 of them. */
    bool ok = check_close("d logits . dlogits / dx (3, 1, 28, 28)", dx, dx_expected.data, x.count, x.shape, 4, 1e-6,
                          1e-4);
    free(dx);
    npy_free(&x);
    npy_free(&dlogits);
    npy_free(&dx_expected);
    cnn_destroy(&net);
    return ok ? TEST_PASS : TEST_FAIL;
}

typedef struct GradcheckNet {
    Cnn *net;
    const float *x;
    const int32_t *labels;
    int batch;
} GradcheckNet;

/* The mean cross-entropy recomputed in double from the logits: the float loss of cnn_forward_loss is rounded
 * to ~1e-7, which divided by 2h would swamp the small gradients of this tiny network. */
static double net_loss(void *context)
{
    GradcheckNet *g = context;
    const float *logits = cnn_forward(g->net, g->x, g->batch, true);
    const int K = g->net->config.classes;
    double total = 0.0;
    for (int b = 0; b < g->batch; ++b) {
        const float *row = logits + (size_t)b * K;
        double max = row[0];
        for (int k = 1; k < K; ++k) {
            max = row[k] > max ? row[k] : max;
        }
        double sum = 0.0;
        for (int k = 0; k < K; ++k) {
            sum += exp(row[k] - max);
        }
        total += max + log(sum) - row[g->labels[b]];
    }
    return total / g->batch;
}

/* Finite differences on a tiny network (12x12 images, padding 1), every parameter tensor. */
static int test_net_gradcheck(const TestContext *ctx)
{
    (void)ctx;
    set_threads(1);
    CnnConfig config = cnn_default_config(1);
    config.image_size = 12;
    config.conv1_channels = 3;
    config.conv2_channels = 4;
    config.hidden = 6;
    const int batch = 3;
    Cnn net;
    CourseError err;
    if (cnn_create(&net, config, batch, GEMM_OWN, &err) != 0) {
        printf("FAIL %s\n", err.message);
        return TEST_FAIL;
    }
    cnn_init(&net, 11);
    Rng rng;
    rng_seed(&rng, 12, 0);
    float x[3 * 12 * 12];
    for (size_t e = 0; e < COUNT_OF(x); ++e) {
        x[e] = (float)rng_normal(&rng);
    }
    const int32_t labels[3] = {4, 0, 9};
    cnn_draw_dropout_masks(&net, batch);
    cnn_forward_loss(&net, x, labels, batch, true);
    cnn_backward(&net, labels, batch);
    GradcheckTensor tensors[CNN_TENSORS];
    for (int t = 0; t < CNN_TENSORS; ++t) {
        tensors[t] = (GradcheckTensor){net.tensors[t].name, net.tensors[t].value, net.tensors[t].grad, net.tensors[t].count};
    }
    GradcheckNet context = {&net, x, labels, batch};
    GradcheckOptions options = gradcheck_default_options();
    /* A float network: rounding of ~1e-7 relative in every activation, divided by 2h, leaves ~1e-5 of noise
     * on each numeric derivative, and a larger h lets the probe cross ReLU and max-pooling kinks. h = 3e-4
     * balances the two; gradients below 1e-3 are compared absolutely (floor); the bar is 5e-2. The exact
     * check is the parity test against PyTorch; this one shows the method, and a real bug (a missing term, a
     * wrong index, a dropped scale) still gives errors of 1e-1..1. */
    options.step = 3e-4;
    options.tolerance = 5e-2;
    options.floor = 1e-3;
    const bool ok = gradcheck_run(net_loss, &context, tensors, CNN_TENSORS, &options, NULL);
    cnn_destroy(&net);
    return ok ? TEST_PASS : TEST_FAIL;
}

static const TestCase CASES[] = {
    {"gemm.naive", test_gemm_naive},
    {"gemm.reordered", test_gemm_reordered},
    {"gemm.blocked", test_gemm_blocked},
    {"gemm.packed", test_gemm_packed},
    {"gemm.packed_alpha_beta", test_gemm_packed_alpha_beta},
    {"gemm.pack_a", test_gemm_pack_a},
    {"gemm.pack_b", test_gemm_pack_b},
    {"gemm.microkernel", test_gemm_microkernel},
    {"gemm.openblas", test_gemm_openblas},
    {"conv.output_size", test_conv_output_size},
    {"conv.shape_check", test_conv_shape_check},
    {"conv.forward_direct", test_conv_forward_direct},
    {"conv.backward_input_direct", test_conv_backward_input_direct},
    {"conv.backward_weight_direct", test_conv_backward_weight_direct},
    {"conv.backward_bias", test_conv_backward_bias},
    {"conv.im2col", test_conv_im2col},
    {"conv.col2im", test_conv_col2im},
    {"conv.forward_im2col", test_conv_forward_im2col},
    {"conv.backward_im2col", test_conv_backward_im2col},
    {"conv.direct_equals_im2col", test_conv_direct_equals_im2col},
    {"pool.forward", test_pool_forward},
    {"pool.ties", test_pool_ties},
    {"pool.backward", test_pool_backward},
    {"dropout.forward", test_dropout_forward},
    {"dropout.backward", test_dropout_backward},
    {"dropout.mask", test_dropout_mask},
    {"linear.forward", test_linear_forward},
    {"linear.backward", test_linear_backward},
    {"linear.matches_ch02", test_linear_matches_ch02},
    {"relu.matches_ch01", test_relu_matches_ch01},
    {"net.shapes", test_net_shapes},
    {"net.parity_p0", test_net_parity_p0},
    {"net.parity_p1", test_net_parity_p1},
    {"net.gradcheck", test_net_gradcheck},
    {"net.input_gradient", test_net_input_gradient},
};

int main(int argc, char **argv)
{
    check_set_quiet(false);
    return test_main(argc, argv, CASES, COUNT_OF(CASES));
}
