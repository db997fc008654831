/* test_sgemm.cu — Chapter 05's tests: every SGEMM kernel against a double-precision CPU reference, on odd
 * and even sizes, with alpha and beta that are not 1 and 0; and the row-major cuBLAS mapping.
 *
 *   build/bin/test_sgemm_sim --list
 *   build/bin/test_sgemm_sim 05_blocktile_2d.shapes
 *   CUSIM_ORDER=reverse build/bin/test_sgemm_sim 06_vectorized.beta0
 *
 * `ctest -L ch05` runs every case on the CPU simulator in three thread orders (label sim) and on the GPU
 * (label gpu; skipped with the reason when there is no GPU). Cases, for each kernel ID:
 *   ID.shapes   m, n, k taking each of 1, 7, 33, 64, 127, 129 (and 0 for k), a non-square 65 x 130 x 97,
 *               and pointers offset by one float (not 16-byte aligned); alpha = 0.75, beta = -0.5, C random
 *   ID.beta0    beta = 0 with C full of NaN: every element must be written, and the old C never read
 * plus 08_splitk.forced (kernel 08 with its tile and number of k slices forced) and cublas.rowmajor (cuBLAS
 * called with the operands swapped gives the row-major product).
 *
 * The tolerance is the classical bound for a dot product summed in floating point in ANY order:
 * |computed - exact| <= gamma_K * sum_p |a_ip| |b_pj|, gamma_K ~ K u (u = 2^-24, float's unit roundoff);
 * we allow 2 (K + 2) u times alpha's and beta's share. A wrong index or a missing tile gives errors of the
 * size of the values themselves, far above it; float's rounding alone never exceeds it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "cuda_check.h"
#include "sgemm.h"
#include "sgemm_cublas.h"

extern "C" {
#include "rng.h"
#include "testing.h"
}

typedef struct Shape {
    int m, n, k;
} Shape;

/* Each of 1, 7, 33, 64, 127, 129 appears as m, as n and as k; tiles of 32, 64 and 128 get partial edges in
 * every direction; k % 4 and n % 4 take both values (kernels 06 and 07's float4 and scalar paths). */
static const Shape SHAPES[] = {
    {1, 1, 1}, {1, 7, 33}, {7, 1, 64}, {7, 33, 127}, {33, 64, 129}, {33, 7, 1}, {64, 127, 7},
    {64, 64, 64}, {127, 129, 33}, {129, 127, 64}, {129, 33, 7}, {127, 1, 129}, {65, 130, 97},
    {128, 128, 16}, {7, 9, 0},
};

/* Host (m, n, k) product in double: ref = alpha * A · B + beta * C0, and the error bound of each element. */
static void reference(const Shape *s, float alpha, const float *a, const float *b, float beta, const float *c0,
                      double *ref, double *bound)
{
    const double unit_roundoff = ldexp(1.0, -24);
    for (int i = 0; i < s->m; i++) {
        for (int j = 0; j < s->n; j++) {
            double sum = 0.0, abs_sum = 0.0;
            for (int p = 0; p < s->k; p++) {
                double term = (double)a[i * s->k + p] * b[p * s->n + j];
                sum += term;
                abs_sum += fabs(term);
            }
            double old = beta != 0.0f ? c0[i * s->n + j] : 0.0;
            ref[i * s->n + j] = alpha * sum + beta * old;
            bound[i * s->n + j] =
                2.0 * (s->k + 2) * unit_roundoff * (fabs(alpha) * abs_sum + fabs(beta) * fabs(old)) + 1e-30;
        }
    }
}

/* Compares got (m, n) with ref within bound; prints the worst element on failure. NaN fails. */
static bool compare(const char *what, const Shape *s, const float *got, const double *ref, const double *bound)
{
    int n_bad = 0, worst = -1;
    double worst_ratio = 0.0;
    for (int i = 0; i < s->m * s->n; i++) {
        double err = fabs((double)got[i] - ref[i]);
        if (!(err <= bound[i])) { /* written so that NaN counts as bad */
            n_bad++;
            double ratio = isnan(err) ? INFINITY : err / bound[i];
            if (worst < 0 || ratio > worst_ratio) {
                worst = i;
                worst_ratio = ratio;
            }
        }
    }
    if (n_bad == 0) {
        return true;
    }
    printf("FAIL %s, m=%d n=%d k=%d: %d of %d elements wrong; worst C[%d][%d] = %.9g, expected %.9g (bound %.3g)\n",
           what, s->m, s->n, s->k, n_bad, s->m * s->n, worst / s->n, worst % s->n, got[worst], ref[worst],
           bound[worst]);
    return false;
}

static float *random_host(Rng *rng, int n)
{
    float *x = (float *)malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int i = 0; i < n; i++) {
        x[i] = rng_uniform_range(rng, -1.0f, 1.0f);
    }
    return x;
}

/* Runs `run` (a kernel, or cuBLAS when run is NULL) on one shape. `offset` floats are added to every device
 * pointer, so that offset 1 makes them NOT 16-byte aligned. C starts random (beta != 0) or NaN (beta == 0). */
static bool check_one(const char *what, SgemmFunction run, cublasHandle_t handle, const Shape *s, float alpha,
                      float beta, int offset, Rng *rng)
{
    const int size_a = s->m * s->k, size_b = s->k * s->n, size_c = s->m * s->n;
    float *a = random_host(rng, size_a); /* (m, k) */
    float *b = random_host(rng, size_b); /* (k, n) */
    float *c0 = beta != 0.0f ? random_host(rng, size_c) : nan_filled((size_t)size_c); /* (m, n) */
    float *got = (float *)malloc((size_t)size_c * sizeof(float));
    double *ref = (double *)malloc((size_t)size_c * sizeof(double));
    double *bound = (double *)malloc((size_t)size_c * sizeof(double));
    reference(s, alpha, a, b, beta, c0, ref, bound);

    float *d_a, *d_b, *d_c;
    CUDA_CHECK(cudaMalloc(&d_a, (size_t)(size_a + offset + 1) * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&d_b, (size_t)(size_b + offset + 1) * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&d_c, (size_t)(size_c + offset + 1) * sizeof(float)));
    CUDA_CHECK(cudaMemcpy(d_a + offset, a, (size_t)size_a * sizeof(float), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(d_b + offset, b, (size_t)size_b * sizeof(float), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(d_c + offset, c0, (size_t)size_c * sizeof(float), cudaMemcpyHostToDevice));
    if (run) {
        run(s->m, s->n, s->k, alpha, d_a + offset, d_b + offset, beta, d_c + offset);
    } else {
        sgemm_cublas_rowmajor(handle, s->m, s->n, s->k, alpha, d_a + offset, d_b + offset, beta, d_c + offset);
    }
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(got, d_c + offset, (size_t)size_c * sizeof(float), cudaMemcpyDeviceToHost));
    bool ok = compare(what, s, got, ref, bound);
    CUDA_CHECK(cudaFree(d_a));
    CUDA_CHECK(cudaFree(d_b));
    CUDA_CHECK(cudaFree(d_c));
    free(a);
    free(b);
    free(c0);
    free(got);
    free(ref);
    free(bound);
    return ok;
}

static int skip_without_device(void)
{
    char reason[256];
    if (!cuda_device_available(reason, sizeof reason)) {
        return test_skip("%s", reason);
    }
    return TEST_PASS;
}

/* "05_blocktile_2d.shapes" -> the kernel "05_blocktile_2d" */
static const SgemmKernel *kernel_of_case(const TestContext *ctx)
{
    char id[64];
    snprintf(id, sizeof id, "%s", ctx->case_name);
    char *dot = strchr(id, '.');
    if (dot) {
        *dot = '\0';
    }
    return sgemm_find_kernel(id);
}

static int test_shapes(const TestContext *ctx)
{
    if (skip_without_device() != TEST_PASS) {
        return TEST_SKIP;
    }
    const SgemmKernel *kernel = kernel_of_case(ctx);
    Rng rng;
    rng_seed(&rng, 5, 1);
    bool ok = true;
    for (size_t i = 0; i < COUNT_OF(SHAPES); i++) {
        ok &= check_one(kernel->id, kernel->run, NULL, &SHAPES[i], 0.75f, -0.5f, 0, &rng);
    }
    /* Pointers one float past a 256-byte boundary: no float4 access is allowed (kernels 06, 07 must see it). */
    const Shape unaligned = {33, 64, 64};
    ok &= check_one(kernel->id, kernel->run, NULL, &unaligned, 0.75f, -0.5f, 1, &rng);
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_beta0(const TestContext *ctx)
{
    if (skip_without_device() != TEST_PASS) {
        return TEST_SKIP;
    }
    const SgemmKernel *kernel = kernel_of_case(ctx);
    Rng rng;
    rng_seed(&rng, 5, 2);
    const Shape shapes[] = {{65, 130, 97}, {129, 7, 64}};
    bool ok = true;
    for (size_t i = 0; i < COUNT_OF(shapes); i++) {
        ok &= check_one(kernel->id, kernel->run, NULL, &shapes[i], 1.5f, 0.0f, 0, &rng);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

/* Kernel 08 with the tile and the number of k slices forced (its launcher would choose 1 slice for most
 * small shapes): the slice edges (k_slice is a multiple of 16; the last slice is short), the workspace
 * reduction with alpha and beta, and both tile sizes. */
static bool splitk_small_tile;
static int splitk_slices;

static void sgemm_08_forced(int m, int n, int k, float alpha, const float *a, const float *b, float beta, float *c)
{
    sgemm_08_splitk_with(m, n, k, alpha, a, b, beta, c, splitk_small_tile, splitk_slices);
}

static int test_splitk_forced(const TestContext *ctx)
{
    (void)ctx;
    if (skip_without_device() != TEST_PASS) {
        return TEST_SKIP;
    }
    Rng rng;
    rng_seed(&rng, 5, 4);
    const Shape shapes[] = {{65, 130, 97}, {7, 33, 129}, {129, 64, 64}, {33, 7, 1}, {64, 36, 288}};
    const int slice_counts[] = {2, 3, 7};
    bool ok = true;
    for (int small = 0; small <= 1; small++) {
        for (size_t s = 0; s < COUNT_OF(slice_counts); s++) {
            splitk_small_tile = small != 0;
            splitk_slices = slice_counts[s];
            char what[64];
            snprintf(what, sizeof what, "08_splitk (%s tile, %d slices)", small ? "64x128" : "128x128",
                     splitk_slices);
            for (size_t i = 0; i < COUNT_OF(shapes); i++) {
                ok &= check_one(what, sgemm_08_forced, NULL, &shapes[i], 0.75f, -0.5f, 0, &rng);
                ok &= check_one(what, sgemm_08_forced, NULL, &shapes[i], 1.5f, 0.0f, 0, &rng);
            }
        }
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_cublas_rowmajor(const TestContext *ctx)
{
    (void)ctx;
    if (skip_without_device() != TEST_PASS) {
        return TEST_SKIP;
    }
    cublasHandle_t handle = sgemm_cublas_create();
    Rng rng;
    rng_seed(&rng, 5, 3);
    const Shape shapes[] = {{65, 130, 97}, {7, 1, 33}, {1, 129, 7}};
    bool ok = true;
    for (size_t i = 0; i < COUNT_OF(shapes); i++) {
        ok &= check_one("cublas", NULL, handle, &shapes[i], 0.75f, -0.5f, 0, &rng);
    }
    cublasDestroy(handle);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* The case list is fixed here (CMakeLists.txt registers the same names): ID.shapes and ID.beta0 for every
 * kernel of SGEMM_KERNELS. */
static const TestCase CASES[] = {
    {"01_naive.shapes", test_shapes},
    {"01_naive.beta0", test_beta0},
    {"02_coalesced.shapes", test_shapes},
    {"02_coalesced.beta0", test_beta0},
    {"03_shared_tiling.shapes", test_shapes},
    {"03_shared_tiling.beta0", test_beta0},
    {"04_blocktile_1d.shapes", test_shapes},
    {"04_blocktile_1d.beta0", test_beta0},
    {"05_blocktile_2d.shapes", test_shapes},
    {"05_blocktile_2d.beta0", test_beta0},
    {"06_vectorized.shapes", test_shapes},
    {"06_vectorized.beta0", test_beta0},
    {"07_warptile.shapes", test_shapes},
    {"07_warptile.beta0", test_beta0},
    {"08_splitk.shapes", test_shapes},
    {"08_splitk.beta0", test_beta0},
    {"08_splitk.forced", test_splitk_forced},
    {"cublas.rowmajor", test_cublas_rowmajor},
};

int main(int argc, char **argv)
{
    return test_main(argc, argv, CASES, COUNT_OF(CASES));
}
