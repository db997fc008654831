/* test_cuda_basics.cu — Chapter 04's tests: every kernel against PyTorch's golden files and against the
 * CPU code of chapters 01 and 02.
 *
 *   build/bin/test_cuda_basics_sim --list
 *   build/bin/test_cuda_basics_sim reduce.sum.tree --golden reference/golden
 *   CUSIM_ORDER=reverse build/bin/test_cuda_basics_sim softmax.golden --golden reference/golden
 *
 * `ctest -L ch04` runs every case on the CPU simulator in three thread orders (label sim) and on the GPU
 * (label gpu; skipped with the reason when there is no GPU). Sizes are odd on purpose (1, 7, 127, 129,
 * 1000, 100003): a kernel that forgets the bounds check or the grid-stride loop fails one of them. Every
 * output buffer starts NaN-filled, so an element a kernel forgot to write fails the comparison.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "cuda_basics.h"
#include "cuda_check.h"
#include "cuda_testing.h"

extern "C" {
#include "activations.h"
#include "check.h"
#include "layers.h"
#include "rng.h"
#include "testing.h"
}

static const int SIZES[] = {1, 7, 127, 129, 1000};

static bool load(const TestContext *ctx, const char *name, NpyArray *out)
{
    char path[256];
    snprintf(path, sizeof path, "ch04/%s.npy", name);
    return golden_load(ctx, path, out);
}

static bool load_labels(const TestContext *ctx, const char *name, NpyArray *out)
{
    char path[4096];
    CourseError err;
    snprintf(path, sizeof path, "%s/ch04/%s.npy", ctx->golden_dir, name);
    if (npy_load(path, out, &err) != 0) {
        printf("FAIL cannot load golden file: %s\n     (regenerate with reference/make_golden.py --chapter 04)\n",
               err.message);
        return false;
    }
    if (out->dtype != NPY_INT32) {
        printf("FAIL %s: expected int32, found %s\n", path, npy_dtype_name(out->dtype));
        npy_free(out);
        return false;
    }
    return true;
}

static void random_array(float *x, size_t n, uint64_t seed, float scale)
{
    Rng rng;
    rng_seed(&rng, seed, 4);
    for (size_t i = 0; i < n; i++) {
        x[i] = scale * rng_normal(&rng);
    }
}

/* ---- Vector add ------------------------------------------------------------------------------------- */

static int test_vector_add_golden(const TestContext *ctx)
{
    bool ok = true;
    for (size_t s = 0; s < COUNT_OF(SIZES); s++) {
        int n = SIZES[s];
        char name[64];
        NpyArray a, b, c;
        snprintf(name, sizeof name, "add_%d_a", n);
        if (!load(ctx, name, &a)) return TEST_FAIL;
        snprintf(name, sizeof name, "add_%d_b", n);
        if (!load(ctx, name, &b)) return TEST_FAIL;
        snprintf(name, sizeof name, "add_%d_c", n);
        if (!load(ctx, name, &c)) return TEST_FAIL;
        float *d_a = device_copy((const float *)a.data, n), *d_b = device_copy((const float *)b.data, n);
        float *d_c = device_nan(n);
        vector_add(d_a, d_b, d_c, n);
        float *got = host_copy(d_c, n);
        snprintf(name, sizeof name, "vector_add n=%d", n);
        ok &= check_close(name, got, (const float *)c.data, n, NULL, 0, 0.0, 0.0); /* one float add: exact */
        free(got);
        cudaFree(d_a), cudaFree(d_b), cudaFree(d_c);
        npy_free(&a), npy_free(&b), npy_free(&c);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

/* Against the CPU: n = 100003 (one element per thread, 391 blocks) and n = 300007, more than the
 * CH04_MAX_BLOCKS * CH04_THREADS = 262144 threads of the largest grid, so some threads must loop. */
static int test_vector_add_large(const TestContext *ctx)
{
    (void)ctx;
    bool ok = true;
    const int sizes[] = {100003, 300007};
    for (size_t s = 0; s < COUNT_OF(sizes); s++) {
        int n = sizes[s];
        float *a = (float *)malloc(n * sizeof(float)), *b = (float *)malloc(n * sizeof(float));
        float *want = (float *)malloc(n * sizeof(float));
        random_array(a, n, 1 + s, 1.0f);
        random_array(b, n, 2 + s, 1.0f);
        for (int i = 0; i < n; i++) {
            want[i] = a[i] + b[i];
        }
        float *d_a = device_copy(a, n), *d_b = device_copy(b, n), *d_c = device_nan(n);
        vector_add(d_a, d_b, d_c, n);
        float *got = host_copy(d_c, n);
        char name[64];
        snprintf(name, sizeof name, "vector_add n=%d", n);
        ok &= check_close(name, got, want, n, NULL, 0, 0.0, 0.0);
        free(a), free(b), free(want), free(got);
        cudaFree(d_a), cudaFree(d_b), cudaFree(d_c);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- Activations ------------------------------------------------------------------------------------ */

typedef struct ActivationCase {
    const char *name; /* golden prefix */
    enum Ch04Activation f;
    float slope;
} ActivationCase;

static const ActivationCase ACTIVATIONS[] = {
    {"sigmoid", CH04_SIGMOID, 0.0f},
    {"tanh", CH04_TANH, 0.0f},
    {"relu", CH04_RELU, 0.0f},
    {"leaky_relu", CH04_LEAKY_RELU, LEAKY_RELU_DEFAULT_SLOPE},
};

/* GPU expf/tanhf and PyTorch's vectorised CPU math differ by a few ulp (relative ~1e-7); 1e-5 leaves room
 * without letting a wrong formula through (as in chapter 01). */
#define ACT_ATOL 1e-6
#define ACT_RTOL 1e-5

static int test_activations_golden(const TestContext *ctx)
{
    bool ok = true;
    for (size_t s = 0; s < COUNT_OF(SIZES); s++) {
        int n = SIZES[s];
        char name[96];
        NpyArray x, dy;
        snprintf(name, sizeof name, "act_%d_x", n);
        if (!load(ctx, name, &x)) return TEST_FAIL;
        snprintf(name, sizeof name, "act_%d_dy", n);
        if (!load(ctx, name, &dy)) return TEST_FAIL;
        float *d_x = device_copy((const float *)x.data, n), *d_dy = device_copy((const float *)dy.data, n);
        for (size_t a = 0; a < COUNT_OF(ACTIVATIONS); a++) {
            const ActivationCase *act = &ACTIVATIONS[a];
            NpyArray y_want, dx_want;
            snprintf(name, sizeof name, "%s_%d_y", act->name, n);
            if (!load(ctx, name, &y_want)) return TEST_FAIL;
            snprintf(name, sizeof name, "%s_%d_dx", act->name, n);
            if (!load(ctx, name, &dx_want)) return TEST_FAIL;
            float *d_y = device_nan(n), *d_dx = device_nan(n);
            activation_forward(act->f, d_x, d_y, n, act->slope);
            activation_backward(act->f, d_x, d_dy, d_dx, n, act->slope);
            float *y = host_copy(d_y, n), *dx = host_copy(d_dx, n);
            snprintf(name, sizeof name, "%s forward n=%d", act->name, n);
            ok &= check_close(name, y, (const float *)y_want.data, n, NULL, 0, ACT_ATOL, ACT_RTOL);
            snprintf(name, sizeof name, "%s backward n=%d", act->name, n);
            ok &= check_close(name, dx, (const float *)dx_want.data, n, NULL, 0, ACT_ATOL, ACT_RTOL);
            free(y), free(dx);
            cudaFree(d_y), cudaFree(d_dx);
            npy_free(&y_want), npy_free(&dx_want);
        }
        cudaFree(d_x), cudaFree(d_dy);
        npy_free(&x), npy_free(&dy);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

/* Against chapter 01's CPU functions on a large random vector (with some saturating values). */
static int test_activations_cpu(const TestContext *ctx)
{
    (void)ctx;
    const int n = 100003;
    float *x = (float *)malloc(n * sizeof(float)), *dy = (float *)malloc(n * sizeof(float));
    float *y_cpu = (float *)malloc(n * sizeof(float)), *dx_cpu = (float *)malloc(n * sizeof(float));
    random_array(x, n, 11, 4.0f);
    random_array(dy, n, 12, 1.0f);
    float *d_x = device_copy(x, n), *d_dy = device_copy(dy, n);
    bool ok = true;
    for (size_t a = 0; a < COUNT_OF(ACTIVATIONS); a++) {
        const ActivationCase *act = &ACTIVATIONS[a];
        switch (act->f) {
        case CH04_SIGMOID:
            sigmoid_forward(x, y_cpu, n), sigmoid_backward(x, dy, dx_cpu, n);
            break;
        case CH04_TANH:
            tanh_forward(x, y_cpu, n), tanh_backward(x, dy, dx_cpu, n);
            break;
        case CH04_RELU:
            relu_forward(x, y_cpu, n), relu_backward(x, dy, dx_cpu, n);
            break;
        case CH04_LEAKY_RELU:
            leaky_relu_forward(x, y_cpu, n, act->slope), leaky_relu_backward(x, dy, dx_cpu, n, act->slope);
            break;
        }
        float *d_y = device_nan(n), *d_dx = device_nan(n);
        activation_forward(act->f, d_x, d_y, n, act->slope);
        activation_backward(act->f, d_x, d_dy, d_dx, n, act->slope);
        float *y = host_copy(d_y, n), *dx = host_copy(d_dx, n);
        char name[96];
        snprintf(name, sizeof name, "%s forward vs chapter 01", act->name);
        ok &= check_close(name, y, y_cpu, n, NULL, 0, ACT_ATOL, ACT_RTOL);
        snprintf(name, sizeof name, "%s backward vs chapter 01", act->name);
        ok &= check_close(name, dx, dx_cpu, n, NULL, 0, ACT_ATOL, ACT_RTOL);
        free(y), free(dx);
        cudaFree(d_y), cudaFree(d_dx);
    }
    free(x), free(dy), free(y_cpu), free(dx_cpu);
    cudaFree(d_x), cudaFree(d_dy);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- Reductions ------------------------------------------------------------------------------------- */

static int run_reduction(const TestContext *ctx, int is_max, enum Ch04Reduction method)
{
    const int sizes[] = {1, 7, 127, 129, 1000, 100003};
    float *d_scratch = device_nan(CH04_SCRATCH_FLOATS);
    bool ok = true;
    for (size_t s = 0; s < COUNT_OF(sizes); s++) {
        int n = sizes[s];
        char name[96];
        NpyArray x, want;
        snprintf(name, sizeof name, "reduce_%d_x", n);
        if (!load(ctx, name, &x)) return TEST_FAIL;
        snprintf(name, sizeof name, "reduce_%d_%s", n, is_max ? "max" : "sum");
        if (!load(ctx, name, &want)) return TEST_FAIL;
        const float *xs = (const float *)x.data;
        float *d_x = device_copy(xs, n);
        float got = is_max ? reduce_max(d_x, n, method, d_scratch) : reduce_sum(d_x, n, method, d_scratch);
        /* The CPU reference: chapter 01 has no reduction of its own, so a plain loop (in double). */
        double cpu = is_max ? -INFINITY : 0.0, magnitude = 0.0;
        for (int i = 0; i < n; i++) {
            cpu = is_max ? (xs[i] > cpu ? xs[i] : cpu) : cpu + xs[i];
            magnitude += fabs(xs[i]);
        }
        /* A float32 sum in any order is within about n_levels * eps * sum|x| of the exact one (the tree has
         * log2(n) levels); 1e-6 * sum|x| covers it. The maximum is exact. */
        double atol = is_max ? 0.0 : 1e-6 * magnitude + 1e-6;
        snprintf(name, sizeof name, "%s %s n=%d", is_max ? "max" : "sum",
                 method == CH04_SHARED_TREE ? "tree" : "warp", n);
        ok &= check_close(name, &got, (const float *)want.data, 1, NULL, 0, atol, 0.0);
        float cpu_f = (float)cpu;
        char cpu_name[128];
        snprintf(cpu_name, sizeof cpu_name, "%s vs CPU loop", name);
        ok &= check_close(cpu_name, &got, &cpu_f, 1, NULL, 0, atol, 0.0);
        cudaFree(d_x);
        npy_free(&x), npy_free(&want);
    }
    cudaFree(d_scratch);
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_reduce_sum_tree(const TestContext *ctx) { return run_reduction(ctx, 0, CH04_SHARED_TREE); }
static int test_reduce_sum_warp(const TestContext *ctx) { return run_reduction(ctx, 0, CH04_WARP_SHUFFLE); }
static int test_reduce_max_tree(const TestContext *ctx) { return run_reduction(ctx, 1, CH04_SHARED_TREE); }
static int test_reduce_max_warp(const TestContext *ctx) { return run_reduction(ctx, 1, CH04_WARP_SHUFFLE); }

/* ---- Softmax ---------------------------------------------------------------------------------------- */

static const int SOFTMAX_SHAPES[][2] = {{1, 1}, {7, 10}, {129, 127}, {3, 1000}, {64, 10}, {5, 1025}};
/* exp and a sum over up to 1025 terms in float32, in a different order than PyTorch: a few ulp. */
#define SOFTMAX_ATOL 1e-7
#define SOFTMAX_RTOL 2e-5

static int test_softmax_golden(const TestContext *ctx)
{
    bool ok = true;
    for (size_t s = 0; s < COUNT_OF(SOFTMAX_SHAPES); s++) {
        int rows = SOFTMAX_SHAPES[s][0], cols = SOFTMAX_SHAPES[s][1];
        size_t n = (size_t)rows * cols, shape[2] = {(size_t)rows, (size_t)cols};
        char name[96];
        NpyArray x, want;
        snprintf(name, sizeof name, "softmax_%dx%d_x", rows, cols);
        if (!load(ctx, name, &x)) return TEST_FAIL;
        snprintf(name, sizeof name, "softmax_%dx%d_y", rows, cols);
        if (!load(ctx, name, &want)) return TEST_FAIL;
        float *d_x = device_copy((const float *)x.data, n), *d_y = device_nan(n);
        softmax_rows(d_x, d_y, rows, cols);
        float *y = host_copy(d_y, n);
        snprintf(name, sizeof name, "softmax_rows %dx%d", rows, cols);
        ok &= check_close(name, y, (const float *)want.data, n, shape, 2, SOFTMAX_ATOL, SOFTMAX_RTOL);
        /* ... and row by row against chapter 01's CPU softmax. */
        float *cpu = (float *)malloc(n * sizeof(float));
        for (int r = 0; r < rows; r++) {
            softmax((const float *)x.data + (size_t)r * cols, cpu + (size_t)r * cols, cols);
        }
        snprintf(name, sizeof name, "softmax_rows %dx%d vs chapter 01", rows, cols);
        ok &= check_close(name, y, cpu, n, shape, 2, SOFTMAX_ATOL, SOFTMAX_RTOL);
        free(y), free(cpu);
        cudaFree(d_x), cudaFree(d_y);
        npy_free(&x), npy_free(&want);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- Softmax + cross-entropy ------------------------------------------------------------------------ */

static const int XENT_SHAPES[][2] = {{1, 10}, {7, 10}, {64, 10}, {129, 127}};

static int run_xent(const TestContext *ctx, bool backward)
{
    bool ok = true;
    float *d_scratch = device_nan(CH04_SCRATCH_FLOATS);
    for (size_t s = 0; s < COUNT_OF(XENT_SHAPES); s++) {
        int batch = XENT_SHAPES[s][0], classes = XENT_SHAPES[s][1];
        size_t n = (size_t)batch * classes, shape[2] = {(size_t)batch, (size_t)classes};
        char name[96], prefix[32];
        snprintf(prefix, sizeof prefix, "xent_%dx%d", batch, classes);
        NpyArray logits, labels, probs_want, loss_want, dlogits_want;
        snprintf(name, sizeof name, "%s_logits", prefix);
        if (!load(ctx, name, &logits)) return TEST_FAIL;
        snprintf(name, sizeof name, "%s_labels", prefix);
        if (!load_labels(ctx, name, &labels)) return TEST_FAIL;
        snprintf(name, sizeof name, "%s_probs", prefix);
        if (!load(ctx, name, &probs_want)) return TEST_FAIL;
        snprintf(name, sizeof name, "%s_loss", prefix);
        if (!load(ctx, name, &loss_want)) return TEST_FAIL;
        snprintf(name, sizeof name, "%s_dlogits", prefix);
        if (!load(ctx, name, &dlogits_want)) return TEST_FAIL;
        const int32_t *label_values = (const int32_t *)labels.data; /* (batch) */

        float *d_logits = device_copy((const float *)logits.data, n), *d_probs = device_nan(n);
        float *d_row_loss = device_nan(batch), *d_dlogits = device_nan(n);
        int32_t *d_labels = NULL;
        CUDA_CHECK(cudaMalloc(&d_labels, batch * sizeof(int32_t)));
        CUDA_CHECK(cudaMemcpy(d_labels, label_values, batch * sizeof(int32_t), cudaMemcpyHostToDevice));

        /* Chapter 02's CPU loss: the reference for both passes. */
        float *cpu_probs = (float *)malloc(n * sizeof(float)), *cpu_dlogits = (float *)malloc(n * sizeof(float));
        float cpu_loss = (float)softmax_cross_entropy_forward((const float *)logits.data, label_values, cpu_probs,
                                                              batch, classes);
        softmax_cross_entropy_backward(cpu_probs, label_values, cpu_dlogits, batch, classes);

        float loss = softmax_xent_forward(d_logits, d_labels, d_probs, d_row_loss, batch, classes, d_scratch);
        if (!backward) {
            float *probs = host_copy(d_probs, n);
            snprintf(name, sizeof name, "%s loss", prefix);
            /* a mean of float32 log-sum-exps: a few ulp of the loss */
            ok &= check_close(name, &loss, (const float *)loss_want.data, 1, NULL, 0, 1e-6, 1e-5);
            snprintf(name, sizeof name, "%s loss vs chapter 02", prefix);
            ok &= check_close(name, &loss, &cpu_loss, 1, NULL, 0, 1e-6, 1e-5);
            snprintf(name, sizeof name, "%s probs", prefix);
            ok &= check_close(name, probs, (const float *)probs_want.data, n, shape, 2, SOFTMAX_ATOL, SOFTMAX_RTOL);
            free(probs);
        } else {
            softmax_xent_backward(d_probs, d_labels, d_dlogits, batch, classes);
            float *dlogits = host_copy(d_dlogits, n);
            /* probs - 1 at the label cancels: absolute error ~ ulp(1) / batch, hence the atol */
            snprintf(name, sizeof name, "%s dlogits", prefix);
            ok &= check_close(name, dlogits, (const float *)dlogits_want.data, n, shape, 2, 2e-7, 1e-5);
            snprintf(name, sizeof name, "%s dlogits vs chapter 02", prefix);
            ok &= check_close(name, dlogits, cpu_dlogits, n, shape, 2, 2e-7, 1e-5);
            free(dlogits);
        }
        free(cpu_probs), free(cpu_dlogits);
        cudaFree(d_logits), cudaFree(d_probs), cudaFree(d_row_loss), cudaFree(d_dlogits), cudaFree(d_labels);
        npy_free(&logits), npy_free(&labels), npy_free(&probs_want), npy_free(&loss_want), npy_free(&dlogits_want);
    }
    cudaFree(d_scratch);
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_xent_forward(const TestContext *ctx) { return run_xent(ctx, false); }
static int test_xent_backward(const TestContext *ctx) { return run_xent(ctx, true); }

/* ---- The error check: a bad launch is reported, not ignored ----------------------------------------- */

__global__ void fill_kernel(float *x, float value, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        x[i] = value;
    }
}

static int test_launch_errors(const TestContext *ctx)
{
    (void)ctx;
    float *d_x = device_nan(64);
    fill_kernel<<<1, 2048>>>(d_x, 1.0f, 64); /* 2048 threads: more than a block may have */
    cudaError_t e = cudaGetLastError();
    bool ok = check_true(e == cudaErrorInvalidConfiguration,
                         "a 2048-thread block must fail with cudaErrorInvalidConfiguration, got %s",
                         cudaGetErrorName(e));
    ok &= check_true(cudaGetLastError() == cudaSuccess, "cudaGetLastError clears a launch error");
    fill_kernel<<<1, 64>>>(d_x, 1.0f, 64);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaDeviceSynchronize());
    float *x = host_copy(d_x, 64);
    ok &= check_true(x[0] == 1.0f && x[63] == 1.0f, "the good launch ran");
    free(x);
    cudaFree(d_x);
    return ok ? TEST_PASS : TEST_FAIL;
}

static const TestCase cases[] = {
    {"vector_add.golden", test_vector_add_golden},
    {"vector_add.large", test_vector_add_large},
    {"activations.golden", test_activations_golden},
    {"activations.cpu", test_activations_cpu},
    {"reduce.sum.tree", test_reduce_sum_tree},
    {"reduce.sum.warp", test_reduce_sum_warp},
    {"reduce.max.tree", test_reduce_max_tree},
    {"reduce.max.warp", test_reduce_max_warp},
    {"softmax.golden", test_softmax_golden},
    {"xent.forward", test_xent_forward},
    {"xent.backward", test_xent_backward},
    {"launch_errors", test_launch_errors},
};

int main(int argc, char **argv)
{
    char reason[256];
    if (argc > 1 && strcmp(argv[1], "--list") != 0 && !cuda_device_available(reason, sizeof reason)) {
        return test_skip("%s", reason);
    }
    return test_main(argc, argv, cases, COUNT_OF(cases));
}
