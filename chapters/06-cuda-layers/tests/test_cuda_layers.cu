/* test_cuda_layers.cu — Chapter 06's tests: every GPU layer against PyTorch's golden files AND against
 * chapter 03's CPU layer on the same random inputs.
 *
 *   build/bin/test_cuda_layers_sim --list
 *   build/bin/test_cuda_layers_sim conv.cublas.forward --golden reference/golden
 *   CUSIM_ORDER=reverse build/bin/test_cuda_layers_sim pool.forward --golden reference/golden
 *
 * `ctest -L ch06` runs every case on the CPU simulator in three thread orders (label sim) and on the GPU
 * (label gpu; skipped with the reason when there is no GPU). Shapes are small and odd (batch 1-3, channels
 * 1/3/5, 7x9 and 13x13 images, padding 0/1, stride 1/2), so a wrong index fails and the simulator stays
 * fast. Every output buffer starts NaN-filled, so an element a kernel forgot to write fails the comparison.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "cuda_basics.h"
#include "cuda_check.h"
#include "cuda_testing.h"
#include "cuda_layers.h"
#include "philox.h"

extern "C" {
#include "check.h"
#include "cnn_layers.h"
#include "conv.h"
#include "gemm.h"
#include "layers.h"
#include "rng.h"
#include "testing.h"
}

/* Tolerance of a float sum of a few hundred products computed in another order than PyTorch's or the
 * CPU's: rounding differences of a few ulps of the largest partial sums. */
#define SUM_ATOL 1e-4
#define SUM_RTOL 1e-4

/* ---- Helpers: golden files, random inputs (device copies: common/cuda_testing.h) -------------------- */

/* A device int32/uint8 buffer filled with a pattern that no kernel writes (0x5A bytes). */
template <typename T> static T *device_garbage(size_t n)
{
    T *d = NULL;
    CUDA_CHECK(cudaMalloc(&d, (n ? n : 1) * sizeof(T)));
    CUDA_CHECK(cudaMemset(d, 0x5A, (n ? n : 1) * sizeof(T)));
    return d;
}

static bool load(const TestContext *ctx, const char *name, NpyArray *out)
{
    char path[256];
    snprintf(path, sizeof path, "ch06/%s.npy", name);
    return golden_load(ctx, path, out);
}

/* A golden file of another dtype (int32 indices, uint8 masks, int64 Philox words). */
static bool load_typed(const TestContext *ctx, const char *name, NpyDtype dtype, NpyArray *out)
{
    char relative[512];
    snprintf(relative, sizeof relative, "ch06/%s.npy", name);
    return golden_load_typed(ctx->golden_dir, relative, dtype, out);
}

static float *random_array(size_t n, uint64_t seed, float scale)
{
    float *x = (float *)malloc((n ? n : 1) * sizeof(float));
    Rng rng;
    rng_seed(&rng, seed, 6);
    for (size_t i = 0; i < n; i++) {
        x[i] = scale * rng_normal(&rng);
    }
    return x;
}

/* Exact comparison of integer arrays; prints the first mismatch. */
template <typename T> static bool check_equal(const char *name, const T *got, const T *want, size_t n)
{
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        if (got[i] != want[i]) {
            if (bad++ == 0) {
                first = i;
            }
        }
    }
    if (bad) {
        printf("FAIL %s: %zu of %zu elements differ; first at %zu: got %lld, expected %lld\n", name, bad, n, first,
               (long long)got[first], (long long)want[first]);
        return false;
    }
    printf("ok   %s (%zu elements, exact)\n", name, n);
    return true;
}

/* ---- Philox and dropout -------------------------------------------------------------------------------- */

__global__ void philox_kat_kernel(const uint32_t *in, uint32_t *out)
{
    Philox4x32 counter;
    for (int i = 0; i < 4; i++) {
        counter.v[i] = in[i];
    }
    Philox4x32 r = philox4x32_10(counter, in[4], in[5]);
    for (int i = 0; i < 4; i++) {
        out[i] = r.v[i];
    }
}

/* The Random123 known-answer vectors, as computed by the Python transcription in reference/ch06_layers.py,
 * reproduced by common/philox.h on the CPU and inside a kernel. */
static int test_philox_kat(const TestContext *ctx)
{
    bool ok = true;
    for (int k = 0; k < 3; k++) {
        char name[64];
        NpyArray in, out;
        snprintf(name, sizeof name, "philox_kat_%d_in", k);
        if (!load_typed(ctx, name, NPY_INT64, &in)) return TEST_FAIL;
        snprintf(name, sizeof name, "philox_kat_%d_out", k);
        if (!load_typed(ctx, name, NPY_INT64, &out)) return TEST_FAIL;
        uint32_t in32[6], want[4];
        for (int i = 0; i < 6; i++) in32[i] = (uint32_t)((const int64_t *)in.data)[i];
        for (int i = 0; i < 4; i++) want[i] = (uint32_t)((const int64_t *)out.data)[i];
        Philox4x32 counter = {{in32[0], in32[1], in32[2], in32[3]}};
        Philox4x32 cpu = philox4x32_10(counter, in32[4], in32[5]);
        snprintf(name, sizeof name, "philox4x32_10 KAT %d on the CPU", k);
        ok &= check_equal(name, cpu.v, want, 4);
        uint32_t *d_in = device_copy(in32, 6), *d_out = device_garbage<uint32_t>(4);
        philox_kat_kernel<<<1, 1>>>(d_in, d_out);
        CUDA_CHECK(cudaGetLastError());
        uint32_t *gpu = host_copy(d_out, 4);
        snprintf(name, sizeof name, "philox4x32_10 KAT %d on the GPU", k);
        ok &= check_equal(name, gpu, want, 4);
        free(gpu);
        cudaFree(d_in), cudaFree(d_out);
        npy_free(&in), npy_free(&out);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

/* Seed, offset and p of the golden Philox masks (reference/ch06_layers.py). */
static const uint64_t GOLDEN_SEED = 0x0123456789ABCDEFull, GOLDEN_OFFSET = 7;
static const float GOLDEN_P = 0.25f;

/* The masks of the CPU function and of the GPU kernel equal the Python implementation's, bit for bit. */
static int test_philox_golden_mask(const TestContext *ctx)
{
    bool ok = true;
    const int sizes[] = {1, 7, 129, 1003};
    for (size_t s = 0; s < COUNT_OF(sizes); s++) {
        const size_t n = (size_t)sizes[s];
        char name[64];
        NpyArray want;
        snprintf(name, sizeof name, "philox_mask_%zu", n);
        if (!load_typed(ctx, name, NPY_UINT8, &want)) return TEST_FAIL;
        uint8_t *cpu = (uint8_t *)malloc(n);
        dropout_philox_mask_cpu(GOLDEN_SEED, GOLDEN_OFFSET, GOLDEN_P, cpu, n);
        snprintf(name, sizeof name, "CPU Philox mask n=%zu", n);
        ok &= check_equal(name, cpu, (const uint8_t *)want.data, n);

        float *ones = (float *)malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) ones[i] = 1.0f;
        float *d_x = device_copy(ones, n), *d_y = device_nan(n);
        uint8_t *d_mask = device_garbage<uint8_t>(n);
        dropout_forward_gpu(d_x, d_y, d_mask, n, GOLDEN_P, GOLDEN_SEED, GOLDEN_OFFSET);
        uint8_t *gpu = host_copy(d_mask, n);
        snprintf(name, sizeof name, "GPU dropout mask n=%zu", n);
        ok &= check_equal(name, gpu, (const uint8_t *)want.data, n);
        free(cpu), free(gpu), free(ones);
        cudaFree(d_x), cudaFree(d_y), cudaFree(d_mask);
        npy_free(&want);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

/* CPU == GPU, bit for bit, on large odd sizes and several streams; and y equals chapter 03's dropout_forward
 * with that mask exactly (the same float multiply). */
static int test_dropout_cpu_equals_gpu(const TestContext *ctx)
{
    (void)ctx;
    bool ok = true;
    const struct {
        size_t n;
        uint64_t seed, offset;
        float p;
    } cases[] = {{100003, 1, 0, 0.25f}, {100003, 1, 1, 0.5f}, {4099, 0xFFFFFFFFFFFFull, 1ull << 40, 0.1f}};
    for (size_t c = 0; c < COUNT_OF(cases); c++) {
        const size_t n = cases[c].n;
        float *x = random_array(n, 100 + c, 1.0f);
        uint8_t *cpu_mask = (uint8_t *)malloc(n);
        dropout_philox_mask_cpu(cases[c].seed, cases[c].offset, cases[c].p, cpu_mask, n);
        float *want = (float *)malloc(n * sizeof(float));
        dropout_forward(x, cpu_mask, cases[c].p, want, n); /* chapter 03 */

        float *d_x = device_copy(x, n), *d_y = device_nan(n);
        uint8_t *d_mask = device_garbage<uint8_t>(n);
        dropout_forward_gpu(d_x, d_y, d_mask, n, cases[c].p, cases[c].seed, cases[c].offset);
        uint8_t *gpu_mask = host_copy(d_mask, n);
        float *got = host_copy(d_y, n);
        char name[96];
        snprintf(name, sizeof name, "mask CPU vs GPU n=%zu seed=%llu offset=%llu", n,
                 (unsigned long long)cases[c].seed, (unsigned long long)cases[c].offset);
        ok &= check_equal(name, gpu_mask, cpu_mask, n);
        snprintf(name, sizeof name, "dropout y vs chapter 03 n=%zu", n);
        ok &= check_close(name, got, want, n, NULL, 0, 0.0, 0.0); /* the same multiply: exact */
        free(x), free(cpu_mask), free(want), free(gpu_mask), free(got);
        cudaFree(d_x), cudaFree(d_y), cudaFree(d_mask);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

/* The keep rate is 1 - p within 5 standard deviations (a false failure about once in 3.5 million runs), and
 * two streams (different offsets) are not the same mask: they agree on about p^2 + (1-p)^2 of the elements. */
static int test_dropout_keep_rate(const TestContext *ctx)
{
    (void)ctx;
    bool ok = true;
    const size_t n = 200003;
    const float ps[] = {0.1f, 0.25f, 0.5f, 0.9f};
    float *ones = (float *)malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) ones[i] = 1.0f;
    float *d_x = device_copy(ones, n), *d_y = device_nan(n);
    uint8_t *d_mask = device_garbage<uint8_t>(n);
    for (size_t k = 0; k < COUNT_OF(ps); k++) {
        const double p = ps[k];
        uint8_t *masks[2];
        for (int offset = 0; offset < 2; offset++) {
            dropout_forward_gpu(d_x, d_y, d_mask, n, ps[k], 42, (uint64_t)offset);
            masks[offset] = host_copy(d_mask, n);
        }
        size_t kept = 0, agree = 0, invalid = 0;
        for (size_t i = 0; i < n; i++) {
            kept += masks[0][i] == 1;
            invalid += masks[0][i] > 1;
            agree += masks[0][i] == masks[1][i];
        }
        const double rate = (double)kept / n, sigma = sqrt(p * (1 - p) / n);
        const double agree_rate = (double)agree / n, agree_want = p * p + (1 - p) * (1 - p);
        const double agree_sigma = sqrt(agree_want * (1 - agree_want) / n);
        const bool good = invalid == 0 && fabs(rate - (1 - p)) <= 5 * sigma &&
                          fabs(agree_rate - agree_want) <= 5 * agree_sigma;
        printf("%s p=%.2f: kept %.5f (expected %.5f +- %.5f), offsets 0 and 1 agree on %.5f (expected %.5f)%s\n",
               good ? "ok  " : "FAIL", p, rate, 1 - p, 5 * sigma, agree_rate, agree_want,
               invalid ? ", mask values other than 0/1" : "");
        ok &= good;
        free(masks[0]), free(masks[1]);
    }
    free(ones);
    cudaFree(d_x), cudaFree(d_y), cudaFree(d_mask);
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_dropout_golden(const TestContext *ctx)
{
    NpyArray x, dy, mask, y, dx;
    if (!load(ctx, "dropout_x", &x) || !load(ctx, "dropout_dy", &dy) || !load(ctx, "dropout_y", &y) ||
        !load(ctx, "dropout_dx", &dx) || !load_typed(ctx, "dropout_mask", NPY_UINT8, &mask)) {
        return TEST_FAIL;
    }
    const size_t n = x.count;
    float *d_x = device_copy((const float *)x.data, n), *d_y = device_nan(n);
    float *d_dy = device_copy((const float *)dy.data, n), *d_dx = device_nan(n);
    uint8_t *d_mask = device_garbage<uint8_t>(n);
    dropout_forward_gpu(d_x, d_y, d_mask, n, GOLDEN_P, GOLDEN_SEED, GOLDEN_OFFSET);
    dropout_backward_gpu(d_dy, d_mask, d_dx, n, GOLDEN_P);
    float *got_y = host_copy(d_y, n), *got_dx = host_copy(d_dx, n);
    uint8_t *got_mask = host_copy(d_mask, n);
    bool ok = check_equal("dropout mask vs golden", got_mask, (const uint8_t *)mask.data, n);
    /* x * (1/0.75) here, x * 1 / 0.75 in PyTorch: one rounding apart at most */
    ok &= check_close("dropout y", got_y, (const float *)y.data, n, x.shape, x.ndim, 1e-6, 1e-6);
    ok &= check_close("dropout dx", got_dx, (const float *)dx.data, n, x.shape, x.ndim, 1e-6, 1e-6);
    free(got_y), free(got_dx), free(got_mask);
    cudaFree(d_x), cudaFree(d_y), cudaFree(d_dy), cudaFree(d_dx), cudaFree(d_mask);
    npy_free(&x), npy_free(&dy), npy_free(&mask), npy_free(&y), npy_free(&dx);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- Max pooling ------------------------------------------------------------------------------------------- */

static const char *POOL_CASES[] = {"7x9", "13x13", "ties_8x6"};

/* Random input with ties (values from {-1, 0, 1} in half the planes) and a NaN, for the CPU comparison. */
static float *pool_input(int n, int c, int h, int w, uint64_t seed)
{
    const size_t count = (size_t)n * c * h * w;
    float *x = random_array(count, seed, 1.0f);
    for (size_t i = 0; i < count; i++) {
        if ((i / ((size_t)h * w)) % 2 == 1) {
            x[i] = roundf(x[i]);
        }
    }
    x[count / 3] = NAN;
    return x;
}

static int test_pool_forward(const TestContext *ctx)
{
    bool ok = true;
    for (size_t k = 0; k < COUNT_OF(POOL_CASES); k++) {
        char name[96];
        NpyArray x, y, idx;
        snprintf(name, sizeof name, "pool_%s_x", POOL_CASES[k]);
        if (!load(ctx, name, &x)) return TEST_FAIL;
        snprintf(name, sizeof name, "pool_%s_y", POOL_CASES[k]);
        if (!load(ctx, name, &y)) return TEST_FAIL;
        snprintf(name, sizeof name, "pool_%s_idx", POOL_CASES[k]);
        if (!load_typed(ctx, name, NPY_INT32, &idx)) return TEST_FAIL;
        const int n = (int)x.shape[0], c = (int)x.shape[1], h = (int)x.shape[2], w = (int)x.shape[3];
        float *d_x = device_copy((const float *)x.data, x.count), *d_y = device_nan(y.count);
        int32_t *d_idx = device_garbage<int32_t>(y.count);
        maxpool2_forward_gpu(d_x, d_y, d_idx, n, c, h, w);
        float *got = host_copy(d_y, y.count);
        int32_t *got_idx = host_copy(d_idx, y.count);
        snprintf(name, sizeof name, "maxpool y %s", POOL_CASES[k]);
        ok &= check_close(name, got, (const float *)y.data, y.count, y.shape, y.ndim, 0.0, 0.0); /* a copy */
        snprintf(name, sizeof name, "maxpool argmax %s (PyTorch's indices)", POOL_CASES[k]);
        ok &= check_equal(name, got_idx, (const int32_t *)idx.data, y.count);
        free(got), free(got_idx);
        cudaFree(d_x), cudaFree(d_y), cudaFree(d_idx);
        npy_free(&x), npy_free(&y), npy_free(&idx);
    }
    /* Against chapter 03 on random input with ties and a NaN (which must propagate, at the same index). */
    const int n = 3, c = 5, h = 13, w = 9;
    const size_t in_count = (size_t)n * c * h * w, out_count = (size_t)n * c * (h / 2) * (w / 2);
    float *x = pool_input(n, c, h, w, 7);
    float *want = (float *)malloc(out_count * sizeof(float));
    int32_t *want_idx = (int32_t *)malloc(out_count * sizeof(int32_t));
    maxpool2_forward(x, want, want_idx, n, c, h, w);
    float *d_x = device_copy(x, in_count), *d_y = device_nan(out_count);
    int32_t *d_idx = device_garbage<int32_t>(out_count);
    maxpool2_forward_gpu(d_x, d_y, d_idx, n, c, h, w);
    float *got = host_copy(d_y, out_count);
    int32_t *got_idx = host_copy(d_idx, out_count);
    ok &= check_close_ex("maxpool y vs chapter 03 (3, 5, 13, 9), ties and a NaN", got, want, out_count, NULL, 0, 0.0,
                         0.0, CHECK_NAN_EXPECTED);
    ok &= check_equal("maxpool argmax vs chapter 03", got_idx, want_idx, out_count);
    free(x), free(want), free(want_idx), free(got), free(got_idx);
    cudaFree(d_x), cudaFree(d_y), cudaFree(d_idx);
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_pool_backward(const TestContext *ctx)
{
    bool ok = true;
    for (size_t k = 0; k < COUNT_OF(POOL_CASES); k++) {
        char name[96];
        NpyArray x, dy, dx, idx;
        snprintf(name, sizeof name, "pool_%s_x", POOL_CASES[k]);
        if (!load(ctx, name, &x)) return TEST_FAIL;
        snprintf(name, sizeof name, "pool_%s_dy", POOL_CASES[k]);
        if (!load(ctx, name, &dy)) return TEST_FAIL;
        snprintf(name, sizeof name, "pool_%s_dx", POOL_CASES[k]);
        if (!load(ctx, name, &dx)) return TEST_FAIL;
        snprintf(name, sizeof name, "pool_%s_idx", POOL_CASES[k]);
        if (!load_typed(ctx, name, NPY_INT32, &idx)) return TEST_FAIL;
        const int n = (int)x.shape[0], c = (int)x.shape[1], h = (int)x.shape[2], w = (int)x.shape[3];
        float *d_dy = device_copy((const float *)dy.data, dy.count), *d_dx = device_nan(x.count);
        int32_t *d_idx = device_copy((const int32_t *)idx.data, idx.count);
        maxpool2_backward_gpu(d_dy, d_idx, d_dx, n, c, h, w);
        float *got = host_copy(d_dx, x.count);
        snprintf(name, sizeof name, "maxpool dx %s", POOL_CASES[k]);
        ok &= check_close(name, got, (const float *)dx.data, x.count, x.shape, x.ndim, 0.0, 0.0); /* routing */
        free(got);
        cudaFree(d_dy), cudaFree(d_dx), cudaFree(d_idx);
        npy_free(&x), npy_free(&dy), npy_free(&dx), npy_free(&idx);
    }
    /* Against chapter 03: argmax from its forward, random dy. */
    const int n = 2, c = 3, h = 9, w = 13;
    const size_t in_count = (size_t)n * c * h * w, out_count = (size_t)n * c * (h / 2) * (w / 2);
    float *x = pool_input(n, c, h, w, 8), *dy = random_array(out_count, 9, 1.0f);
    float *y = (float *)malloc(out_count * sizeof(float)), *want = (float *)malloc(in_count * sizeof(float));
    int32_t *idx = (int32_t *)malloc(out_count * sizeof(int32_t));
    maxpool2_forward(x, y, idx, n, c, h, w);
    maxpool2_backward(dy, idx, want, n, c, h, w);
    float *d_dy = device_copy(dy, out_count), *d_dx = device_nan(in_count);
    int32_t *d_idx = device_copy(idx, out_count);
    maxpool2_backward_gpu(d_dy, d_idx, d_dx, n, c, h, w);
    float *got = host_copy(d_dx, in_count);
    ok &= check_close("maxpool dx vs chapter 03 (2, 3, 9, 13)", got, want, in_count, NULL, 0, 0.0, 0.0);
    free(x), free(dy), free(y), free(want), free(idx), free(got);
    cudaFree(d_dy), cudaFree(d_dx), cudaFree(d_idx);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- GEMM ------------------------------------------------------------------------------------------------ */

static int test_gemm(GpuGemm backend)
{
    bool ok = true;
    const struct {
        int m, n, k;
        bool ta, tb;
    } cases[] = {{1, 1, 1, false, false}, {7, 9, 5, false, false}, {33, 17, 129, true, false},
                 {31, 45, 19, false, true}, {17, 33, 40, true, true}};
    for (size_t c = 0; c < COUNT_OF(cases); c++) {
        const int m = cases[c].m, n = cases[c].n, k = cases[c].k;
        const bool ta = cases[c].ta, tb = cases[c].tb;
        float *a = random_array((size_t)m * k, 20 + c, 1.0f), *b = random_array((size_t)k * n, 30 + c, 1.0f);
        float *c0 = random_array((size_t)m * n, 40 + c, 1.0f);
        const int lda = ta ? m : k, ldb = tb ? k : n;
        for (int beta_case = 0; beta_case < 2; beta_case++) {
            const float alpha = beta_case ? 0.5f : 1.0f, beta = beta_case ? -2.0f : 0.0f;
            float *want = (float *)malloc((size_t)m * n * sizeof(float));
            memcpy(want, c0, (size_t)m * n * sizeof(float));
            sgemm_packed(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, want, n); /* chapter 03 */
            float *d_a = device_copy(a, (size_t)m * k), *d_b = device_copy(b, (size_t)k * n);
            float *d_c = beta_case ? device_copy(c0, (size_t)m * n) : device_nan((size_t)m * n);
            gemm_gpu(backend, ta, tb, m, n, k, alpha, d_a, lda, d_b, ldb, beta, d_c, n);
            float *got = host_copy(d_c, (size_t)m * n);
            char name[128];
            snprintf(name, sizeof name, "%s gemm m=%d n=%d k=%d%s%s alpha=%g beta=%g", gpu_gemm_name(backend), m, n,
                     k, ta ? " A^T" : "", tb ? " B^T" : "", alpha, beta);
            ok &= check_close(name, got, want, (size_t)m * n, NULL, 0, SUM_ATOL, SUM_RTOL);
            free(want), free(got);
            cudaFree(d_a), cudaFree(d_b), cudaFree(d_c);
        }
        free(a), free(b), free(c0);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_gemm_cublas(const TestContext *ctx)
{
    (void)ctx;
    return test_gemm(GPU_GEMM_CUBLAS);
}

static int test_gemm_tiled(const TestContext *ctx)
{
    (void)ctx;
    return test_gemm(GPU_GEMM_TILED);
}

static int test_gemm_ch05(const TestContext *ctx)
{
    (void)ctx;
    return test_gemm(GPU_GEMM_CH05);
}

/* ---- Convolution ----------------------------------------------------------------------------------------- */

static const char *CONV_CASES[] = {"c1_7x9_p0_s1", "c3_13x13_p1_s2", "c5_7x9_p1_s1", "c3_9x7_p0_s2"};

/* Shapes for the chapter 03 comparison (random inputs): batch, C, H, W, OC, K, padding, stride. */
static const Conv2dShape CPU_SHAPES[] = {
    {3, 5, 13, 13, 4, 3, 3, 1, 2},
    {1, 3, 7, 9, 5, 3, 3, 0, 1},
    {2, 1, 9, 7, 3, 5, 3, 1, 1},
};

typedef struct ConvData {
    Conv2dShape s;
    NpyArray x, w, b, dy, z, y, dx, dw, db, rdx, rdw, rdb;
} ConvData;

static bool conv_load(const TestContext *ctx, const char *name, ConvData *d)
{
    char file[128];
    NpyArray meta;
    snprintf(file, sizeof file, "conv_%s_meta", name);
    if (!load_typed(ctx, file, NPY_INT32, &meta)) return false;
    const int32_t *m = (const int32_t *)meta.data;
    d->s = (Conv2dShape){m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8]};
    npy_free(&meta);
    const char *suffixes[] = {"x", "w", "b", "dy", "z", "y", "dx", "dw", "db", "rdx", "rdw", "rdb"};
    NpyArray *arrays[] = {&d->x, &d->w, &d->b, &d->dy, &d->z, &d->y, &d->dx, &d->dw, &d->db, &d->rdx, &d->rdw, &d->rdb};
    for (size_t i = 0; i < COUNT_OF(suffixes); i++) {
        snprintf(file, sizeof file, "conv_%s_%s", name, suffixes[i]);
        if (!load(ctx, file, arrays[i])) return false;
    }
    return true;
}

static void conv_free(ConvData *d)
{
    NpyArray *arrays[] = {&d->x, &d->w, &d->b, &d->dy, &d->z, &d->y, &d->dx, &d->dw, &d->db, &d->rdx, &d->rdw, &d->rdb};
    for (size_t i = 0; i < COUNT_OF(arrays); i++) npy_free(arrays[i]);
}

static float *device_workspace(const Conv2dShape *s, ConvAlgorithm algorithm)
{
    return device_nan(conv2d_gpu_workspace_floats(s, algorithm) + 1);
}

/* Run the GPU forward on host inputs; returns the host copy of y. */
static float *run_conv_forward(ConvAlgorithm algorithm, const Conv2dShape *s, const float *x, const float *w,
                               const float *b, bool relu)
{
    float *d_x = device_copy(x, conv2d_input_size(s)), *d_w = device_copy(w, conv2d_weight_size(s));
    float *d_b = device_copy(b, (size_t)s->out_channels), *d_y = device_nan(conv2d_output_size_total(s));
    float *d_work = device_workspace(s, algorithm);
    conv2d_forward_gpu(algorithm, s, d_x, d_w, d_b, d_y, relu, d_work);
    float *y = host_copy(d_y, conv2d_output_size_total(s));
    cudaFree(d_x), cudaFree(d_w), cudaFree(d_b), cudaFree(d_y), cudaFree(d_work);
    return y;
}

/* Run the GPU backward; dx, dw, db come back as host copies (dx NULL when with_dx is false). */
static void run_conv_backward(ConvAlgorithm algorithm, const Conv2dShape *s, const float *x, const float *w,
                              const float *y, const float *dy, bool relu, bool with_dx, float **dx, float **dw,
                              float **db)
{
    float *d_x = device_copy(x, conv2d_input_size(s)), *d_w = device_copy(w, conv2d_weight_size(s));
    float *d_y = y ? device_copy(y, conv2d_output_size_total(s)) : NULL;
    float *d_dy = device_copy(dy, conv2d_output_size_total(s));
    float *d_dx = with_dx ? device_nan(conv2d_input_size(s)) : NULL;
    float *d_dw = device_nan(conv2d_weight_size(s)), *d_db = device_nan((size_t)s->out_channels);
    float *d_work = device_workspace(s, algorithm);
    conv2d_backward_gpu(algorithm, s, d_x, d_w, d_y, d_dy, relu, d_dx, d_dw, d_db, d_work);
    *dx = with_dx ? host_copy(d_dx, conv2d_input_size(s)) : NULL;
    *dw = host_copy(d_dw, conv2d_weight_size(s));
    *db = host_copy(d_db, (size_t)s->out_channels);
    cudaFree(d_x), cudaFree(d_w), cudaFree(d_y), cudaFree(d_dy), cudaFree(d_dx), cudaFree(d_dw), cudaFree(d_db);
    cudaFree(d_work);
}

static int test_conv_forward(ConvAlgorithm algorithm, const TestContext *ctx)
{
    bool ok = true;
    char name[160];
    for (size_t k = 0; k < COUNT_OF(CONV_CASES); k++) {
        ConvData d;
        if (!conv_load(ctx, CONV_CASES[k], &d)) return TEST_FAIL;
        for (int relu = 0; relu < 2; relu++) {
            float *got = run_conv_forward(algorithm, &d.s, (const float *)d.x.data, (const float *)d.w.data,
                                          (const float *)d.b.data, relu);
            const NpyArray *want = relu ? &d.y : &d.z;
            snprintf(name, sizeof name, "%s conv%s %s", conv_algorithm_name(algorithm), relu ? "+bias+relu" : "+bias",
                     CONV_CASES[k]);
            ok &= check_close(name, got, (const float *)want->data, want->count, want->shape, want->ndim, SUM_ATOL,
                              SUM_RTOL);
            free(got);
        }
        conv_free(&d);
    }
    for (size_t k = 0; k < COUNT_OF(CPU_SHAPES); k++) {
        const Conv2dShape *s = &CPU_SHAPES[k];
        float *x = random_array(conv2d_input_size(s), 50 + k, 1.0f);
        float *w = random_array(conv2d_weight_size(s), 60 + k, 0.5f), *b = random_array(s->out_channels, 70 + k, 0.5f);
        const size_t ny = conv2d_output_size_total(s);
        float *want = (float *)malloc(ny * sizeof(float));
        conv2d_forward_direct(s, x, w, b, want); /* chapter 03 */
        float *got = run_conv_forward(algorithm, s, x, w, b, false);
        snprintf(name, sizeof name, "%s conv vs chapter 03, shape %zu", conv_algorithm_name(algorithm), k);
        ok &= check_close(name, got, want, ny, NULL, 0, SUM_ATOL, SUM_RTOL);
        free(got);
        for (size_t i = 0; i < ny; i++) want[i] = want[i] > 0.0f ? want[i] : 0.0f;
        got = run_conv_forward(algorithm, s, x, w, b, true);
        snprintf(name, sizeof name, "%s conv+relu vs chapter 03 + relu, shape %zu", conv_algorithm_name(algorithm), k);
        ok &= check_close(name, got, want, ny, NULL, 0, SUM_ATOL, SUM_RTOL);
        free(got), free(want), free(x), free(w), free(b);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_conv_backward(ConvAlgorithm algorithm, const TestContext *ctx)
{
    bool ok = true;
    char name[160];
    const char *alg = conv_algorithm_name(algorithm);
    for (size_t k = 0; k < COUNT_OF(CONV_CASES); k++) {
        ConvData d;
        if (!conv_load(ctx, CONV_CASES[k], &d)) return TEST_FAIL;
        for (int relu = 0; relu < 2; relu++) {
            float *dx, *dw, *db;
            run_conv_backward(algorithm, &d.s, (const float *)d.x.data, (const float *)d.w.data,
                              relu ? (const float *)d.y.data : NULL, (const float *)d.dy.data, relu, true, &dx, &dw,
                              &db);
            const NpyArray *wdx = relu ? &d.rdx : &d.dx, *wdw = relu ? &d.rdw : &d.dw, *wdb = relu ? &d.rdb : &d.db;
            const char *tag = relu ? " through relu" : "";
            snprintf(name, sizeof name, "%s conv dx%s %s", alg, tag, CONV_CASES[k]);
            ok &= check_close(name, dx, (const float *)wdx->data, wdx->count, wdx->shape, wdx->ndim, SUM_ATOL, SUM_RTOL);
            snprintf(name, sizeof name, "%s conv dw%s %s", alg, tag, CONV_CASES[k]);
            ok &= check_close(name, dw, (const float *)wdw->data, wdw->count, wdw->shape, wdw->ndim, SUM_ATOL, SUM_RTOL);
            snprintf(name, sizeof name, "%s conv db%s %s", alg, tag, CONV_CASES[k]);
            ok &= check_close(name, db, (const float *)wdb->data, wdb->count, wdb->shape, wdb->ndim, SUM_ATOL, SUM_RTOL);
            free(dx), free(dw), free(db);
        }
        conv_free(&d);
    }
    for (size_t k = 0; k < COUNT_OF(CPU_SHAPES); k++) {
        const Conv2dShape *s = &CPU_SHAPES[k];
        const size_t nx = conv2d_input_size(s), nw = conv2d_weight_size(s), ny = conv2d_output_size_total(s);
        float *x = random_array(nx, 80 + k, 1.0f), *w = random_array(nw, 90 + k, 0.5f);
        float *y = random_array(ny, 100 + k, 1.0f), *dy = random_array(ny, 110 + k, 1.0f);
        /* chapter 03's gradients of dz = dy * (y > 0): what the fused ReLU backward must compute */
        float *dz = (float *)malloc(ny * sizeof(float));
        for (size_t i = 0; i < ny; i++) dz[i] = y[i] > 0.0f ? dy[i] : 0.0f;
        float *want_dx = (float *)malloc(nx * sizeof(float)), *want_dw = (float *)malloc(nw * sizeof(float));
        float *want_db = (float *)malloc(s->out_channels * sizeof(float));
        conv2d_backward_input_direct(s, w, dz, want_dx);
        conv2d_backward_weight_direct(s, x, dz, want_dw);
        conv2d_backward_bias(s, dz, want_db);
        for (int with_dx = 0; with_dx < 2; with_dx++) {
            float *dx, *dw, *db;
            run_conv_backward(algorithm, s, x, w, y, dy, true, with_dx, &dx, &dw, &db);
            if (with_dx) {
                snprintf(name, sizeof name, "%s conv dx vs chapter 03, shape %zu", alg, k);
                ok &= check_close(name, dx, want_dx, nx, NULL, 0, SUM_ATOL, SUM_RTOL);
            }
            snprintf(name, sizeof name, "%s conv dw vs chapter 03, shape %zu%s", alg, k, with_dx ? "" : " (dx NULL)");
            ok &= check_close(name, dw, want_dw, nw, NULL, 0, SUM_ATOL, SUM_RTOL);
            snprintf(name, sizeof name, "%s conv db vs chapter 03, shape %zu%s", alg, k, with_dx ? "" : " (dx NULL)");
            ok &= check_close(name, db, want_db, s->out_channels, NULL, 0, SUM_ATOL, SUM_RTOL);
            free(dx), free(dw), free(db);
        }
        free(x), free(w), free(y), free(dy), free(dz), free(want_dx), free(want_dw), free(want_db);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_conv_cublas_forward(const TestContext *ctx) { return test_conv_forward(CONV_IM2COL_CUBLAS, ctx); }
static int test_conv_tiled_forward(const TestContext *ctx) { return test_conv_forward(CONV_IM2COL_TILED, ctx); }
static int test_conv_direct_forward(const TestContext *ctx) { return test_conv_forward(CONV_DIRECT, ctx); }
static int test_conv_cublas_backward(const TestContext *ctx) { return test_conv_backward(CONV_IM2COL_CUBLAS, ctx); }
static int test_conv_tiled_backward(const TestContext *ctx) { return test_conv_backward(CONV_IM2COL_TILED, ctx); }
static int test_conv_direct_backward(const TestContext *ctx) { return test_conv_backward(CONV_DIRECT, ctx); }
static int test_conv_ch05_forward(const TestContext *ctx) { return test_conv_forward(CONV_IM2COL_CH05, ctx); }
static int test_conv_ch05_backward(const TestContext *ctx) { return test_conv_backward(CONV_IM2COL_CH05, ctx); }

/* im2col of the whole batch equals chapter 03's per-image im2col, placed side by side; col2im (gather)
 * equals chapter 03's col2im (scatter) per image. Both are copies and sums of copies: exact up to the order
 * of at most KH*KW additions. */
static int test_conv_im2col_col2im(const TestContext *ctx)
{
    (void)ctx;
    bool ok = true;
    char name[128];
    for (size_t k = 0; k < COUNT_OF(CPU_SHAPES); k++) {
        const Conv2dShape *s = &CPU_SHAPES[k];
        const int plane = conv2d_out_height(s) * conv2d_out_width(s);
        const int rows = s->in_channels * s->kernel_height * s->kernel_width;
        const size_t pixels = (size_t)s->batch * plane, ncols = (size_t)rows * pixels;
        const size_t image = (size_t)s->in_channels * s->in_height * s->in_width, nx = conv2d_input_size(s);
        float *x = random_array(nx, 120 + k, 1.0f), *dcols = random_array(ncols, 130 + k, 1.0f);
        float *want_cols = (float *)malloc(ncols * sizeof(float)), *want_dx = (float *)malloc(nx * sizeof(float));
        float *one_cols = (float *)malloc((size_t)rows * plane * sizeof(float));
        for (int n = 0; n < s->batch; n++) {
            conv2d_im2col(s, x + n * image, one_cols);
            for (int r = 0; r < rows; r++) {
                memcpy(want_cols + r * pixels + (size_t)n * plane, one_cols + (size_t)r * plane, plane * sizeof(float));
            }
            for (int r = 0; r < rows; r++) {
                memcpy(one_cols + (size_t)r * plane, dcols + r * pixels + (size_t)n * plane, plane * sizeof(float));
            }
            conv2d_col2im(s, one_cols, want_dx + n * image);
        }
        float *d_x = device_copy(x, nx), *d_cols = device_nan(ncols);
        float *d_dcols = device_copy(dcols, ncols), *d_dx = device_nan(nx);
        conv2d_im2col_gpu(s, d_x, d_cols);
        conv2d_col2im_gpu(s, d_dcols, d_dx);
        float *got_cols = host_copy(d_cols, ncols), *got_dx = host_copy(d_dx, nx);
        snprintf(name, sizeof name, "im2col vs chapter 03, shape %zu", k);
        ok &= check_close(name, got_cols, want_cols, ncols, NULL, 0, 0.0, 0.0); /* a copy: exact */
        snprintf(name, sizeof name, "col2im vs chapter 03, shape %zu", k);
        ok &= check_close(name, got_dx, want_dx, nx, NULL, 0, 1e-5, 1e-5);
        free(x), free(dcols), free(want_cols), free(want_dx), free(one_cols), free(got_cols), free(got_dx);
        cudaFree(d_x), cudaFree(d_cols), cudaFree(d_dcols), cudaFree(d_dx);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- Fully connected ------------------------------------------------------------------------------------- */

typedef struct LinearData {
    NpyArray x, w, b, dy, z, y, dx, dw, db, rdx, rdw, rdb;
} LinearData;

static bool linear_load(const TestContext *ctx, LinearData *d)
{
    const char *suffixes[] = {"x", "w", "b", "dy", "z", "y", "dx", "dw", "db", "rdx", "rdw", "rdb"};
    NpyArray *arrays[] = {&d->x, &d->w, &d->b, &d->dy, &d->z, &d->y, &d->dx, &d->dw, &d->db, &d->rdx, &d->rdw, &d->rdb};
    for (size_t i = 0; i < COUNT_OF(suffixes); i++) {
        char file[64];
        snprintf(file, sizeof file, "linear_%s", suffixes[i]);
        if (!load(ctx, file, arrays[i])) return false;
    }
    return true;
}

static void linear_free(LinearData *d)
{
    NpyArray *arrays[] = {&d->x, &d->w, &d->b, &d->dy, &d->z, &d->y, &d->dx, &d->dw, &d->db, &d->rdx, &d->rdw, &d->rdb};
    for (size_t i = 0; i < COUNT_OF(arrays); i++) npy_free(arrays[i]);
}

static int test_linear_forward(const TestContext *ctx)
{
    LinearData d;
    if (!linear_load(ctx, &d)) return TEST_FAIL;
    bool ok = true;
    const int batch = (int)d.x.shape[0], in = (int)d.x.shape[1], out = (int)d.w.shape[0];
    /* chapter 03's layer on the same input, for the second comparison */
    float *cpu = (float *)malloc((size_t)batch * out * sizeof(float));
    linear_forward_gemm((const float *)d.x.data, (const float *)d.w.data, (const float *)d.b.data, cpu, batch, in,
                        out, GEMM_OWN);
    for (int backend = 0; backend < 3; backend++) {
        for (int relu = 0; relu < 2; relu++) {
            float *d_x = device_copy((const float *)d.x.data, d.x.count);
            float *d_w = device_copy((const float *)d.w.data, d.w.count);
            float *d_b = device_copy((const float *)d.b.data, d.b.count), *d_y = device_nan((size_t)batch * out);
            linear_forward_gpu((GpuGemm)backend, d_x, d_w, d_b, d_y, batch, in, out, relu);
            float *got = host_copy(d_y, (size_t)batch * out);
            const NpyArray *want = relu ? &d.y : &d.z;
            char name[96];
            snprintf(name, sizeof name, "linear%s (%s)", relu ? "+relu" : "", gpu_gemm_name((GpuGemm)backend));
            ok &= check_close(name, got, (const float *)want->data, want->count, want->shape, want->ndim, SUM_ATOL,
                              SUM_RTOL);
            if (!relu) {
                snprintf(name, sizeof name, "linear vs chapter 03 (%s)", gpu_gemm_name((GpuGemm)backend));
                ok &= check_close(name, got, cpu, (size_t)batch * out, NULL, 0, SUM_ATOL, SUM_RTOL);
            }
            free(got);
            cudaFree(d_x), cudaFree(d_w), cudaFree(d_b), cudaFree(d_y);
        }
    }
    free(cpu);
    linear_free(&d);
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_linear_backward(const TestContext *ctx)
{
    LinearData d;
    if (!linear_load(ctx, &d)) return TEST_FAIL;
    bool ok = true;
    const int batch = (int)d.x.shape[0], in = (int)d.x.shape[1], out = (int)d.w.shape[0];
    float *cdx = (float *)malloc(d.x.count * sizeof(float)), *cdw = (float *)malloc(d.w.count * sizeof(float));
    float *cdb = (float *)malloc(d.b.count * sizeof(float));
    linear_backward_gemm((const float *)d.x.data, (const float *)d.w.data, (const float *)d.dy.data, cdx, cdw, cdb,
                         batch, in, out, GEMM_OWN); /* chapter 03, no ReLU */
    for (int backend = 0; backend < 3; backend++) {
        for (int relu = 0; relu < 2; relu++) {
            float *d_x = device_copy((const float *)d.x.data, d.x.count);
            float *d_w = device_copy((const float *)d.w.data, d.w.count);
            float *d_y = device_copy((const float *)d.y.data, d.y.count);
            float *d_dy = device_copy((const float *)d.dy.data, d.dy.count), *d_dz = device_nan(d.dy.count);
            float *d_dx = device_nan(d.x.count), *d_dw = device_nan(d.w.count), *d_db = device_nan(d.b.count);
            linear_backward_gpu((GpuGemm)backend, d_x, d_w, d_y, d_dy, relu, relu ? d_dz : NULL, d_dx, d_dw, d_db,
                                batch, in, out);
            float *dx = host_copy(d_dx, d.x.count), *dw = host_copy(d_dw, d.w.count), *db = host_copy(d_db, d.b.count);
            const NpyArray *wdx = relu ? &d.rdx : &d.dx, *wdw = relu ? &d.rdw : &d.dw, *wdb = relu ? &d.rdb : &d.db;
            char name[96];
            const char *tag = relu ? " through relu" : "", *gemm = gpu_gemm_name((GpuGemm)backend);
            snprintf(name, sizeof name, "linear dx%s (%s)", tag, gemm);
            ok &= check_close(name, dx, (const float *)wdx->data, wdx->count, wdx->shape, wdx->ndim, SUM_ATOL, SUM_RTOL);
            snprintf(name, sizeof name, "linear dw%s (%s)", tag, gemm);
            ok &= check_close(name, dw, (const float *)wdw->data, wdw->count, wdw->shape, wdw->ndim, SUM_ATOL, SUM_RTOL);
            snprintf(name, sizeof name, "linear db%s (%s)", tag, gemm);
            ok &= check_close(name, db, (const float *)wdb->data, wdb->count, wdb->shape, wdb->ndim, SUM_ATOL, SUM_RTOL);
            if (!relu) {
                snprintf(name, sizeof name, "linear dx, dw, db vs chapter 03 (%s)", gemm);
                ok &= check_close(name, dx, cdx, d.x.count, NULL, 0, SUM_ATOL, SUM_RTOL) &&
                      check_close(name, dw, cdw, d.w.count, NULL, 0, SUM_ATOL, SUM_RTOL) &&
                      check_close(name, db, cdb, d.b.count, NULL, 0, SUM_ATOL, SUM_RTOL);
            }
            free(dx), free(dw), free(db);
            cudaFree(d_x), cudaFree(d_w), cudaFree(d_y), cudaFree(d_dy), cudaFree(d_dz), cudaFree(d_dx);
            cudaFree(d_dw), cudaFree(d_db);
        }
    }
    free(cdx), free(cdw), free(cdb);
    linear_free(&d);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- Softmax + cross-entropy ----------------------------------------------------------------------------- */

static int test_xent_forward(const TestContext *ctx)
{
    NpyArray logits, labels, probs, loss;
    if (!load(ctx, "xent_logits", &logits) || !load_typed(ctx, "xent_labels", NPY_INT32, &labels) ||
        !load(ctx, "xent_probs", &probs) || !load(ctx, "xent_loss", &loss)) {
        return TEST_FAIL;
    }
    const int batch = (int)logits.shape[0], classes = (int)logits.shape[1];
    float *d_logits = device_copy((const float *)logits.data, logits.count), *d_probs = device_nan(logits.count);
    int32_t *d_labels = device_copy((const int32_t *)labels.data, labels.count);
    float *d_loss = device_nan(1);
    softmax_xent_forward_gpu(d_logits, d_labels, d_probs, d_loss, batch, classes);
    float *got_probs = host_copy(d_probs, logits.count), *got_loss = host_copy(d_loss, 1);
    bool ok = check_close("softmax probs", got_probs, (const float *)probs.data, probs.count, probs.shape, probs.ndim,
                          1e-6, 1e-5);
    ok &= check_close("mean cross-entropy (on the device)", got_loss, (const float *)loss.data, 1, NULL, 0, 1e-5, 1e-5);
    /* chapter 02's CPU loss on the same logits */
    float *cpu_probs = (float *)malloc(logits.count * sizeof(float));
    float cpu_loss = (float)softmax_cross_entropy_forward((const float *)logits.data, (const int32_t *)labels.data,
                                                          cpu_probs, batch, classes);
    ok &= check_close("mean cross-entropy vs chapter 02", got_loss, &cpu_loss, 1, NULL, 0, 1e-5, 1e-5);
    /* an invalid label gives a NaN loss, never a silent number */
    int32_t bad = classes;
    CUDA_CHECK(cudaMemcpy(d_labels + batch / 2, &bad, sizeof bad, cudaMemcpyHostToDevice));
    softmax_xent_forward_gpu(d_logits, d_labels, d_probs, d_loss, batch, classes);
    float nan_loss = 0.0f;
    CUDA_CHECK(cudaMemcpy(&nan_loss, d_loss, sizeof nan_loss, cudaMemcpyDeviceToHost));
    ok &= check_true(isnan(nan_loss), "label %d of %d classes gives a NaN loss (got %g)", bad, classes, nan_loss);
    free(got_probs), free(got_loss), free(cpu_probs);
    cudaFree(d_logits), cudaFree(d_probs), cudaFree(d_labels), cudaFree(d_loss);
    npy_free(&logits), npy_free(&labels), npy_free(&probs), npy_free(&loss);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* The backward is chapter 04's kernel, linked as it is and launched by softmax_xent_backward_gpu on this
 * chapter's stream (here a created one, as chapter 07's): checked on this chapter's golden file. */
static int test_xent_backward(const TestContext *ctx)
{
    NpyArray probs, labels, dlogits;
    if (!load(ctx, "xent_probs", &probs) || !load_typed(ctx, "xent_labels", NPY_INT32, &labels) ||
        !load(ctx, "xent_dlogits", &dlogits)) {
        return TEST_FAIL;
    }
    const int batch = (int)probs.shape[0], classes = (int)probs.shape[1];
    float *d_probs = device_copy((const float *)probs.data, probs.count), *d_dl = device_nan(probs.count);
    int32_t *d_labels = device_copy((const int32_t *)labels.data, labels.count);
    cudaStream_t stream;
    CUDA_CHECK(cudaStreamCreate(&stream));
    cuda_layers_set_stream(stream);
    softmax_xent_backward_gpu(d_probs, d_labels, d_dl, batch, classes);
    CUDA_CHECK(cudaStreamSynchronize(stream));
    cuda_layers_set_stream(0);
    CUDA_CHECK(cudaStreamDestroy(stream));
    float *got = host_copy(d_dl, probs.count);
    bool ok = check_close("dlogits", got, (const float *)dlogits.data, dlogits.count, dlogits.shape, dlogits.ndim, 1e-6,
                          1e-5);
    free(got);
    cudaFree(d_probs), cudaFree(d_dl), cudaFree(d_labels);
    npy_free(&probs), npy_free(&labels), npy_free(&dlogits);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- SGD over a flat parameter buffer -------------------------------------------------------------------- */

/* Three tensors of PyTorch's golden run laid out in one flat buffer; three steps of ONE kernel each match
 * torch.optim.SGD(lr 0.01, momentum 0.9, weight_decay 5e-4) on every tensor, and the padding stays 0. */
static int test_sgd_golden(const TestContext *ctx)
{
    enum { TENSORS = 3, STEPS = 3 };
    NpyArray p0[TENSORS], wd;
    size_t sizes[TENSORS], offsets[TENSORS];
    char name[64];
    if (!load(ctx, "sgd_wd", &wd)) return TEST_FAIL;
    for (int t = 0; t < TENSORS; t++) {
        snprintf(name, sizeof name, "sgd_%d_p0", t);
        if (!load(ctx, name, &p0[t])) return TEST_FAIL;
        sizes[t] = p0[t].count;
    }
    const size_t total = flat_layout(sizes, TENSORS, offsets);
    float *flat = (float *)calloc(total, sizeof(float)), *grads = (float *)calloc(total, sizeof(float));
    for (int t = 0; t < TENSORS; t++) memcpy(flat + offsets[t], p0[t].data, sizes[t] * sizeof(float));
    float *d_params = device_copy(flat, total), *d_grads = device_copy(grads, total), *d_velocity = NULL;
    CUDA_CHECK(cudaMalloc(&d_velocity, total * sizeof(float)));
    CUDA_CHECK(cudaMemset(d_velocity, 0, total * sizeof(float)));
    bool ok = true;
    for (int step = 0; step < STEPS; step++) {
        for (int t = 0; t < TENSORS; t++) {
            NpyArray g;
            snprintf(name, sizeof name, "sgd_%d_g%d", t, step);
            if (!load(ctx, name, &g)) return TEST_FAIL;
            memcpy(grads + offsets[t], g.data, sizes[t] * sizeof(float));
            npy_free(&g);
        }
        CUDA_CHECK(cudaMemcpy(d_grads, grads, total * sizeof(float), cudaMemcpyHostToDevice));
        sgd_momentum_gpu(d_params, d_grads, d_velocity, total, 0.01f, 0.9f, ((const float *)wd.data)[0]);
        float *got = host_copy(d_params, total);
        for (int t = 0; t < TENSORS; t++) {
            NpyArray want;
            snprintf(name, sizeof name, "sgd_%d_p%d", t, step + 1);
            if (!load(ctx, name, &want)) return TEST_FAIL;
            snprintf(name, sizeof name, "tensor %d after step %d", t, step + 1);
            ok &= check_close(name, got + offsets[t], (const float *)want.data, want.count, want.shape, want.ndim, 1e-6,
                              1e-5);
            npy_free(&want);
        }
        size_t padding_nonzero = 0;
        for (int t = 0; t < TENSORS; t++) {
            const size_t end = t + 1 < TENSORS ? offsets[t + 1] : total;
            for (size_t i = offsets[t] + sizes[t]; i < end; i++) padding_nonzero += got[i] != 0.0f;
        }
        ok &= check_true(padding_nonzero == 0, "the padding between tensors stays 0 (%zu nonzero)", padding_nonzero);
        free(got);
    }
    free(flat), free(grads);
    cudaFree(d_params), cudaFree(d_grads), cudaFree(d_velocity);
    for (int t = 0; t < TENSORS; t++) npy_free(&p0[t]);
    npy_free(&wd);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* Against chapter 02's sgd_momentum_step on a large odd-sized buffer (more than the grid's threads, so the
 * grid-stride loop is exercised), two steps, with weight decay. */
static int test_sgd_cpu(const TestContext *ctx)
{
    (void)ctx;
    const size_t n = 4096 * CH06_THREADS + 1001;
    float *p = random_array(n, 140, 1.0f), *v = (float *)calloc(n, sizeof(float));
    float *d_p = device_copy(p, n), *d_v = device_copy(v, n);
    bool ok = true;
    for (int step = 0; step < 2; step++) {
        float *g = random_array(n, 150 + step, 1.0f);
        float *d_g = device_copy(g, n);
        sgd_momentum_step(p, g, v, n, 0.01f, 0.9f, 1e-4f); /* chapter 02 */
        sgd_momentum_gpu(d_p, d_g, d_v, n, 0.01f, 0.9f, 1e-4f);
        float *got_p = host_copy(d_p, n), *got_v = host_copy(d_v, n);
        char name[64];
        snprintf(name, sizeof name, "params after step %d vs chapter 02", step + 1);
        ok &= check_close(name, got_p, p, n, NULL, 0, 1e-6, 1e-6); /* same formula; at most an FMA apart */
        snprintf(name, sizeof name, "velocity after step %d vs chapter 02", step + 1);
        ok &= check_close(name, got_v, v, n, NULL, 0, 1e-6, 1e-6);
        free(g), free(got_p), free(got_v);
        cudaFree(d_g);
    }
    free(p), free(v);
    cudaFree(d_p), cudaFree(d_v);
    return ok ? TEST_PASS : TEST_FAIL;
}

static const TestCase cases[] = {
    {"philox.kat", test_philox_kat},
    {"philox.golden_mask", test_philox_golden_mask},
    {"dropout.cpu_equals_gpu", test_dropout_cpu_equals_gpu},
    {"dropout.keep_rate", test_dropout_keep_rate},
    {"dropout.golden", test_dropout_golden},
    {"pool.forward", test_pool_forward},
    {"pool.backward", test_pool_backward},
    {"gemm.cublas", test_gemm_cublas},
    {"gemm.tiled", test_gemm_tiled},
    {"gemm.ch05", test_gemm_ch05},
    {"conv.im2col_col2im", test_conv_im2col_col2im},
    {"conv.cublas.forward", test_conv_cublas_forward},
    {"conv.cublas.backward", test_conv_cublas_backward},
    {"conv.tiled.forward", test_conv_tiled_forward},
    {"conv.tiled.backward", test_conv_tiled_backward},
    {"conv.direct.forward", test_conv_direct_forward},
    {"conv.direct.backward", test_conv_direct_backward},
    {"conv.ch05.forward", test_conv_ch05_forward},
    {"conv.ch05.backward", test_conv_ch05_backward},
    {"linear.forward", test_linear_forward},
    {"linear.backward", test_linear_backward},
    {"xent.forward", test_xent_forward},
    {"xent.backward", test_xent_backward},
    {"sgd.golden", test_sgd_golden},
    {"sgd.cpu", test_sgd_cpu},
};

/* OpenMP's runtime (libgomp, linked through chapter 03); declared here rather than through <omp.h>, which this
 * file does not otherwise need. */
extern "C" void omp_set_num_threads(int threads);

int main(int argc, char **argv)
{
    /* Chapter 03's CPU references run on one thread here: the tests compare numbers, not speed, and one
     * thread keeps ThreadSanitizer builds (-DCOURSE_CUSIM_TSAN=ON) free of false reports from the OpenMP
     * runtime, which is not instrumented. */
    omp_set_num_threads(1);
    char reason[256];
    if (argc > 1 && strcmp(argv[1], "--list") != 0 && !cuda_device_available(reason, sizeof reason)) {
        return test_skip("%s", reason);
    }
    int status = test_main(argc, argv, cases, COUNT_OF(cases));
    gemm_gpu_shutdown();
    return status;
}
