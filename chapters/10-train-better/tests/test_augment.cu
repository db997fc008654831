/* test_augment.cu — Chapter 10's augmentation tests: the CPU path against torchvision (golden files from
 * reference/train_better_augment.py), the drawn parameters against a Python reimplementation of the draws, and
 * the CUDA kernels against the CPU path.
 *
 *   build/bin/test_augment_sim --list
 *   build/bin/test_augment_sim affine.golden --golden reference/golden
 *   CUSIM_ORDER=reverse build/bin/test_augment_sim cpu_equals_gpu.elastic --golden reference/golden
 *
 * `ctest -L ch10` runs them; the cpu_equals_gpu cases run on the simulator in three thread orders and on a GPU
 * (skipped with the reason when there is none). Images are 28x28 and 13x13 (odd, so a centre off by half a
 * pixel shows); every output buffer starts NaN-filled, so an element a kernel forgot to write fails.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "augment.h"
#include "cuda_check.h"
#include "cuda_testing.h"

extern "C" {
#include "check.h"
#include "course_error.h"
#include "idx.h"
#include "rng.h"
#include "testing.h"
#include "train_util.h"
}

/* torchvision computes the inverse matrix in float64 from Python's math.sin/cos/tan; the C code in float32,
 * so a sampling position is off by up to ~1e-6 pixels (float32's 6e-8 relative error times coordinates up to
 * 14 pixels). Bilinear interpolation of a [0, 1] image changes by at most 1 per pixel, so outputs in [0, 1]
 * differ by about 1e-6: 1e-5 leaves a margin and still catches any wrong weight, centre or sign (>= 1e-3). */
#define AFFINE_ATOL 1e-5
/* The displacement is a sum of 33 x 33 products in float32 (the golden in float64) of magnitude up to ~10
 * pixels: a few float32 ulps of 10 is ~5e-6 pixels; the image then inherits that, times slope <= 1. */
#define ELASTIC_FIELD_ATOL 2e-5
#define ELASTIC_ATOL 2e-5

/* ch10/augment_<name>.npy, or with a size ch10/augment_<name>_s<size>_<part>.npy (size 0: no size, no part). */
static bool load(const TestContext *ctx, const char *name, int size, const char *part, NpyDtype dtype, NpyArray *out)
{
    char relative[256];
    if (size > 0) {
        snprintf(relative, sizeof relative, "ch10/augment_%s_s%d_%s.npy", name, size, part);
    } else {
        snprintf(relative, sizeof relative, "ch10/augment_%s.npy", name);
    }
    return golden_load_typed(ctx->golden_dir, relative, dtype, out);
}

/* Pixel units (0..255) to torchvision's float image (0..1), in place: out (n). */
static void to_unit(float *pixels, size_t n)
{
    for (size_t i = 0; i < n; i++) pixels[i] /= 255.0f;
}

/* ---- CPU against torchvision ------------------------------------------------------------------------- */

/* F.affine(image / 255, angle, (tx, ty), scale, (shear_x, shear_y), bilinear, fill=None) for 28x28 and 13x13
 * images: rotations near +-90 and 180, scales below and above 1, shears along x and y, shifts. */
static bool affine_case(const TestContext *ctx, int size)
{
    char name[96];
    NpyArray images, params, want;
    if (!load(ctx, "affine", size, "images", NPY_UINT8, &images)) return false;
    if (!load(ctx, "affine", size, "params", NPY_FLOAT32, &params)) return false;
    if (!load(ctx, "affine", size, "out", NPY_FLOAT32, &want)) return false;
    const size_t count = images.shape[0], pixels = (size_t)size * size;
    const float *p = (const float *)params.data;
    float *got = nan_filled(count * pixels); /* (N, S, S) */
    for (size_t i = 0; i < count; i++) {
        const AffineParams a = {p[6 * i], p[6 * i + 1], p[6 * i + 2], p[6 * i + 3], p[6 * i + 4], p[6 * i + 5]};
        float inverse[6];
        augment_inverse_matrix(&a, inverse);
        augment_affine_image((const uint8_t *)images.data + i * pixels, size, inverse, got + i * pixels);
    }
    to_unit(got, count * pixels);
    const size_t shape[3] = {count, (size_t)size, (size_t)size};
    snprintf(name, sizeof name, "affine %dx%d vs F.affine", size, size);
    const bool ok = check_close(name, got, (const float *)want.data, count * pixels, shape, 3, AFFINE_ATOL, 0.0);
    free(got);
    npy_free(&images), npy_free(&params), npy_free(&want);
    return ok;
}

static int test_affine_golden(const TestContext *ctx)
{
    const bool ok28 = affine_case(ctx, 28), ok13 = affine_case(ctx, 13);
    return ok28 && ok13 ? TEST_PASS : TEST_FAIL;
}

/* The displacement field (Philox noise, torchvision's gaussian_blur, times alpha) and F.elastic_transform. */
static bool elastic_case(const TestContext *ctx, int size)
{
    bool ok = true;
    char name[96];
    NpyArray images, config, stream, want_dx, want_dy, want;
    if (!load(ctx, "elastic", size, "images", NPY_UINT8, &images)) return false;
    if (!load(ctx, "elastic", size, "config", NPY_FLOAT32, &config)) return false;
    if (!load(ctx, "elastic", size, "stream", NPY_INT64, &stream)) return false;
    if (!load(ctx, "elastic", size, "dx", NPY_FLOAT32, &want_dx)) return false;
    if (!load(ctx, "elastic", size, "dy", NPY_FLOAT32, &want_dy)) return false;
    if (!load(ctx, "elastic", size, "out", NPY_FLOAT32, &want)) return false;
    AugmentConfig aug = augment_default_config(AUGMENT_ELASTIC);
    aug.alpha = ((const float *)config.data)[0];
    aug.sigma = ((const float *)config.data)[1];
    const uint64_t seed = (uint64_t)((const int64_t *)stream.data)[0];
    const uint64_t step = (uint64_t)((const int64_t *)stream.data)[1];
    const size_t count = images.shape[0], pixels = (size_t)size * size;
    float *dx = nan_filled(count * pixels), *dy = nan_filled(count * pixels); /* (N, S, S) each */
    float *got = nan_filled(count * pixels); /* (N, S, S) */
    for (size_t b = 0; b < count; b++) {
        augment_draw_elastic(&aug, seed, step, (uint32_t)b, size, dx + b * pixels, dy + b * pixels);
        augment_elastic_image((const uint8_t *)images.data + b * pixels, size, dx + b * pixels, dy + b * pixels,
                              got + b * pixels);
    }
    to_unit(got, count * pixels);
    const size_t shape[3] = {count, (size_t)size, (size_t)size};
    snprintf(name, sizeof name, "elastic %dx%d dx (pixels)", size, size);
    ok &= check_close(name, dx, (const float *)want_dx.data, count * pixels, shape, 3, ELASTIC_FIELD_ATOL, 0.0);
    snprintf(name, sizeof name, "elastic %dx%d dy (pixels)", size, size);
    ok &= check_close(name, dy, (const float *)want_dy.data, count * pixels, shape, 3, ELASTIC_FIELD_ATOL, 0.0);
    snprintf(name, sizeof name, "elastic %dx%d vs F.elastic_transform", size, size);
    ok &= check_close(name, got, (const float *)want.data, count * pixels, shape, 3, ELASTIC_ATOL, 0.0);
    free(dx), free(dy), free(got);
    npy_free(&images), npy_free(&config), npy_free(&stream);
    npy_free(&want_dx), npy_free(&want_dy), npy_free(&want);
    return ok;
}

static int test_elastic_golden(const TestContext *ctx)
{
    const bool ok28 = elastic_case(ctx, 28), ok13 = elastic_case(ctx, 13);
    return ok28 && ok13 ? TEST_PASS : TEST_FAIL;
}

/* augment_draw_affine against the Python reimplementation of RandomAffine.get_params on the same Philox
 * numbers, for several steps (one above 2^32: the offset's high word) and 17 samples. The Python side uses
 * float32 arithmetic, so only a compiler that fuses a multiply-add could change the last bit: 1e-6 relative. */
static int test_params_golden(const TestContext *ctx)
{
    NpyArray stream, want;
    if (!load(ctx, "params_stream", 0, NULL, NPY_INT64, &stream)) return TEST_FAIL;
    if (!load(ctx, "params_affine", 0, NULL, NPY_FLOAT32, &want)) return TEST_FAIL;
    const int64_t *values = (const int64_t *)stream.data;
    const uint64_t seed = (uint64_t)values[0];
    const size_t steps = want.shape[0], samples = want.shape[1];
    const AugmentConfig aug = augment_default_config(AUGMENT_AFFINE);
    float *got = nan_filled(steps * samples * 6); /* (steps, samples, 6) */
    for (size_t s = 0; s < steps; s++) {
        for (size_t b = 0; b < samples; b++) {
            const AffineParams p = augment_draw_affine(&aug, seed, (uint64_t)values[1 + s], (uint32_t)b, 28);
            float *row = got + (s * samples + b) * 6;
            row[0] = p.angle, row[1] = p.tx, row[2] = p.ty, row[3] = p.scale, row[4] = p.shear_x, row[5] = p.shear_y;
        }
    }
    const size_t shape[3] = {steps, samples, 6};
    bool ok = check_close("affine parameters vs the Python draws", got, (const float *)want.data, steps * samples * 6,
                          shape, 3, 0.0, 1e-6);
    /* And the draws cover their ranges: with 68 samples every bound is approached. */
    float lo_angle = 1e9f, hi_angle = -1e9f, lo_tx = 1e9f, hi_tx = -1e9f;
    for (size_t i = 0; i < steps * samples; i++) {
        lo_angle = fminf(lo_angle, got[6 * i]), hi_angle = fmaxf(hi_angle, got[6 * i]);
        lo_tx = fminf(lo_tx, got[6 * i + 1]), hi_tx = fmaxf(hi_tx, got[6 * i + 1]);
    }
    ok &= check_true(lo_angle < -8.0f && hi_angle > 8.0f && lo_tx <= -2.0f && hi_tx >= 2.0f,
                     "drawn angles %g..%g and shifts %g..%g should span most of +-10 degrees and +-2.8 pixels",
                     lo_angle, hi_angle, lo_tx, hi_tx);
    free(got);
    npy_free(&stream), npy_free(&want);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* AUGMENT_NONE gives the data loader's batch exactly, on the CPU and in the kernel, on real MNIST samples. */
static int test_none_is_loader(const TestContext *ctx)
{
    MnistSplit train;
    CourseError err;
    if (mnist_load(&train, ctx->data_dir, "train", &err) != 0) {
        return test_skip("no MNIST training set in %s (%s)", ctx->data_dir, err.message);
    }
    const int n = 37, size = (int)train.rows;
    const size_t pixels = train.rows * train.cols;
    uint32_t indices[37];
    Rng rng;
    rng_seed(&rng, 10, 0);
    for (int b = 0; b < n; b++) indices[b] = rng_below(&rng, (uint32_t)train.count);
    float *want = nan_filled(n * pixels), *got = nan_filled(n * pixels); /* (n, 1, S, S) each */
    for (int b = 0; b < n; b++) normalize_pixels(train.images + indices[b] * pixels, want + b * pixels, pixels);
    const AugmentConfig none = augment_default_config(AUGMENT_NONE);
    augment_batch_cpu(&none, &train, indices, n, 1, 5, got);
    bool ok = check_close("AUGMENT_NONE on the CPU == normalize_pixels", got, want, n * pixels, NULL, 0, 0.0, 0.0);

    int32_t *labels = (int32_t *)xmalloc(train.count * sizeof(int32_t));
    for (size_t i = 0; i < train.count; i++) labels[i] = train.labels[i];
    const uint64_t cursor[2] = {0, 10}; /* first, philox_offset */
    uint8_t *d_images = device_copy(train.images, train.count * pixels);
    int32_t *d_labels = device_copy(labels, train.count), *d_batch_labels = device_copy(labels, n);
    uint32_t *d_order = device_copy(indices, n);
    uint64_t *d_cursor = device_copy(cursor, 2);
    float *d_x = device_nan(n * pixels);
    augment_batch_gpu(&none, d_images, d_labels, d_order, &d_cursor[0], &d_cursor[1], n, size, 1, d_x,
                      d_batch_labels, NULL);
    float *gpu = host_copy(d_x, n * pixels);
    int32_t *gpu_labels = host_copy(d_batch_labels, n);
    ok &= check_close("AUGMENT_NONE in the kernel == normalize_pixels", gpu, want, n * pixels, NULL, 0, 0.0, 0.0);
    for (int b = 0; b < n; b++) {
        ok &= check_true(gpu_labels[b] == train.labels[indices[b]], "label %d: got %d, expected %d", b,
                         gpu_labels[b], train.labels[indices[b]]);
    }
    free(want), free(got), free(gpu), free(gpu_labels), free(labels);
    cudaFree(d_images), cudaFree(d_labels), cudaFree(d_batch_labels), cudaFree(d_order), cudaFree(d_cursor);
    cudaFree(d_x);
    mnist_free(&train);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- The kernels against the CPU path --------------------------------------------------------------- */

/* A data set of `count` random digit-like 28x28 images on the host and on the device, its labels, a shuffled
 * order, and the batch of two consecutive steps of n samples starting at position `first` of the order: the
 * kernel reads the cursor (first, philox_offset = 2 * step) from device memory, and the host moves it between
 * the two launches, as chapter 07's finish_step_kernel does between graph replays. On the simulator the
 * kernels compute the CPU path's float operations in the same order, so they agree bit for bit; on a GPU, nvcc
 * fuses multiply-adds and its sinf/cosf/expf may differ from the host's by an ulp, so sampling positions move by
 * ~1e-5 pixels at most, and the normalised output, whose slope is at most 255 / (255 * 0.3081) = 3.2 per pixel,
 * by ~3e-5: 1e-4 on a GPU. */
static int cpu_equals_gpu(AugmentKind kind, int n, int count)
{
#ifdef __CUSIM__
    const double atol = 0.0;
#else
    const double atol = 1e-4;
#endif
    const int size = 28;
    const size_t pixels = (size_t)size * size;
    Rng rng;
    rng_seed(&rng, 100 + kind, 0);
    uint8_t *images = (uint8_t *)xmalloc(count * pixels); /* (count, S, S) */
    int32_t *labels = (int32_t *)xmalloc(count * sizeof(int32_t));
    uint32_t *order = (uint32_t *)xmalloc(count * sizeof(uint32_t));
    for (size_t i = 0; i < count * pixels; i++) {
        images[i] = rng_uniform(&rng) < 0.5f ? 0 : (uint8_t)rng_below(&rng, 256); /* half background */
    }
    for (int i = 0; i < count; i++) labels[i] = (int32_t)rng_below(&rng, 10), order[i] = (uint32_t)i;
    for (int i = count - 1; i > 0; i--) {
        const uint32_t j = rng_below(&rng, (uint32_t)i + 1), t = order[i];
        order[i] = order[j], order[j] = t;
    }
    MnistSplit split = {(size_t)count, (size_t)size, (size_t)size, images, NULL};
    const AugmentConfig aug = augment_default_config(kind);
    const uint64_t seed = 0xFEEDFACE12345ull, first_step = (1ull << 32) + 3;
    const uint64_t first = 5;

    uint8_t *d_images = device_copy(images, count * pixels);
    int32_t *d_labels = device_copy(labels, count);
    uint32_t *d_order = device_copy(order, count);
    uint64_t *d_cursor = NULL; /* (2) [first, philox_offset], chapter 07's StepCursor fields */
    CUDA_CHECK(cudaMalloc(&d_cursor, 2 * sizeof(uint64_t)));
    float *d_x = device_nan(n * pixels); /* (n, 1, S, S) */
    int32_t *d_batch_labels = NULL;
    CUDA_CHECK(cudaMalloc(&d_batch_labels, n * sizeof(int32_t)));
    bool ok = true;
    for (uint64_t step = first_step; step < first_step + 2; step++) {
        const uint64_t position = first + (step - first_step) * n;
        const uint64_t cursor[2] = {position, 2 * step};
        CUDA_CHECK(cudaMemcpy(d_cursor, cursor, sizeof cursor, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemset(d_batch_labels, 0x5A, n * sizeof(int32_t)));
        float *nan = nan_filled(n * pixels);
        CUDA_CHECK(cudaMemcpy(d_x, nan, n * pixels * sizeof(float), cudaMemcpyHostToDevice));
        free(nan);
        augment_batch_gpu(&aug, d_images, d_labels, d_order, &d_cursor[0], &d_cursor[1], n, size, seed, d_x,
                          d_batch_labels, NULL);
        float *gpu = host_copy(d_x, n * pixels);
        int32_t *gpu_labels = host_copy(d_batch_labels, n);

        float *cpu = nan_filled(n * pixels);
        augment_batch_cpu(&aug, &split, order + position, n, seed, step, cpu);
        char name[96];
        snprintf(name, sizeof name, "%s kernel == CPU, step %llu", augment_name(kind), (unsigned long long)step);
        const size_t shape[4] = {(size_t)n, 1, (size_t)size, (size_t)size};
        ok &= check_close(name, gpu, cpu, n * pixels, shape, 4, atol, 0.0);
        /* An augmented image is not its input (a guard against a path that forgot to transform). */
        float *plain = nan_filled(pixels);
        normalize_pixels(images + (size_t)order[position] * pixels, plain, pixels);
        double moved = 0.0;
        for (size_t p = 0; p < pixels; p++) moved += fabs(cpu[p] - plain[p]);
        ok &= check_true(moved > 1.0, "%s: sample 0 of step %llu equals its input", augment_name(kind),
                         (unsigned long long)step);
        for (int b = 0; b < n; b++) {
            ok &= check_true(gpu_labels[b] == labels[order[position + b]], "label %d: got %d, expected %d", b,
                             gpu_labels[b], labels[order[position + b]]);
        }
        free(gpu), free(gpu_labels), free(cpu), free(plain);
    }
    cudaFree(d_images), cudaFree(d_labels), cudaFree(d_order), cudaFree(d_cursor), cudaFree(d_x);
    cudaFree(d_batch_labels);
    free(images), free(labels), free(order);
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_cpu_equals_gpu_affine(const TestContext *ctx)
{
    (void)ctx;
    return cpu_equals_gpu(AUGMENT_AFFINE, 19, 61);
}

static int test_cpu_equals_gpu_elastic(const TestContext *ctx)
{
    (void)ctx;
    return cpu_equals_gpu(AUGMENT_ELASTIC, 5, 17);
}

static const TestCase CASES[] = {
    {"affine.golden", test_affine_golden},
    {"elastic.golden", test_elastic_golden},
    {"params.golden", test_params_golden},
    {"none_is_loader", test_none_is_loader},
    {"cpu_equals_gpu.affine", test_cpu_equals_gpu_affine},
    {"cpu_equals_gpu.elastic", test_cpu_equals_gpu_elastic},
};

int main(int argc, char **argv)
{
    /* Every case launches a kernel, and with no GPU the GPU build reports why and skips (the simulator has one). */
    char reason[256];
    if (argc > 1 && strcmp(argv[1], "--list") != 0 && !cuda_device_available(reason, sizeof reason)) {
        return test_skip("%s", reason);
    }
    return test_main(argc, argv, CASES, COUNT_OF(CASES));
}
