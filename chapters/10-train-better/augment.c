/* augment.c — Chapter 10: data augmentation on the CPU (random affine transforms and elastic distortion of
 * MNIST digits), the reference the CUDA kernels in augment.cu are tested against. The arithmetic of one sample
 * and one pixel lives in augment_math.h, shared with the kernels; this file loops over pixels and samples.
 *
 *   build/bin/test_augment_sim affine.golden --golden reference/golden    (its tests: tests/test_augment.cu)
 */
#include "augment.h"

#include <stdlib.h>
#include <string.h>

#include "augment_math.h"
#include "course_error.h"
#include "train_util.h"

AugmentConfig augment_default_config(AugmentKind kind)
{
    AugmentConfig config;
    memset(&config, 0, sizeof config);
    config.kind = kind;
    if (kind == AUGMENT_AFFINE) {
        config.degrees = 10.0f;
        config.translate = 0.1f;
        config.scale_min = 0.9f;
        config.scale_max = 1.1f;
        config.shear = 10.0f;
    } else if (kind == AUGMENT_ELASTIC) {
        config.alpha = 34.0f;
        config.sigma = 4.0f;
    }
    return config;
}

static const char *const AUGMENT_NAMES[] = {"none", "affine", "elastic"};

int augment_parse(const char *name)
{
    for (int kind = 0; kind < 3; kind++) {
        if (strcmp(name, AUGMENT_NAMES[kind]) == 0) {
            return kind;
        }
    }
    return -1;
}

const char *augment_name(AugmentKind kind)
{
    return kind >= AUGMENT_NONE && kind <= AUGMENT_ELASTIC ? AUGMENT_NAMES[kind] : "unknown";
}

uint64_t augment_draws(const AugmentConfig *config, int size)
{
    switch (config->kind) {
    case AUGMENT_AFFINE:
        return AUGMENT_AFFINE_DRAWS;
    case AUGMENT_ELASTIC:
        return 2 * (uint64_t)size * (uint64_t)size;
    default:
        return 0;
    }
}

AffineParams augment_draw_affine(const AugmentConfig *config, uint64_t seed, uint64_t step, uint32_t sample, int size)
{
    return augment_draw_affine_math(config, seed, step, sample, size);
}

void augment_inverse_matrix(const AffineParams *params, float inverse[6])
{
    augment_inverse_matrix_math(params, inverse);
}

void augment_affine_image(const uint8_t *in, int size, const float inverse[6], float *out)
{
    for (int y = 0; y < size; y++) {
        for (int x = 0; x < size; x++) {
            out[y * size + x] = augment_affine_pixel(in, size, inverse, x, y);
        }
    }
}

void augment_elastic_image(const uint8_t *in, int size, const float *dx, const float *dy, float *out)
{
    for (int y = 0; y < size; y++) {
        for (int x = 0; x < size; x++) {
            const int p = y * size + x;
            out[p] = augment_elastic_pixel(in, size, dx[p], dy[p], x, y);
        }
    }
}

void augment_draw_elastic(const AugmentConfig *config, uint64_t seed, uint64_t step, uint32_t sample, int size,
                          float *dx, float *dy)
{
    const int pixels = size * size;
    const int taps = augment_kernel_size(config->sigma);
    float weights[AUGMENT_MAX_KERNEL];
    if (taps > AUGMENT_MAX_KERNEL) {
        die("augment_draw_elastic: sigma %g needs %d taps, more than the %d supported", config->sigma, taps,
            AUGMENT_MAX_KERNEL);
    }
    float *noise = xmalloc((size_t)pixels * sizeof *noise); /* (S, S) one axis' noise */
    float *rows = xmalloc((size_t)pixels * sizeof *rows); /* (S, S) the noise blurred along x */
    augment_gaussian_kernel(config->sigma, taps, weights);
    for (int axis = 0; axis < 2; axis++) {
        float *field = axis == 0 ? dx : dy;
        for (int p = 0; p < pixels; p++) {
            noise[p] = augment_noise(seed, step, size, sample, (uint64_t)axis * pixels + p);
        }
        /* Separable blur: along each row, then along each column (the 2-D kernel is an outer product). */
        for (int y = 0; y < size; y++) {
            for (int x = 0; x < size; x++) {
                rows[y * size + x] = augment_blur_at(noise + y * size, 1, x, size, weights, taps);
            }
        }
        for (int y = 0; y < size; y++) {
            for (int x = 0; x < size; x++) {
                field[y * size + x] = config->alpha * augment_blur_at(rows + x, size, y, size, weights, taps);
            }
        }
    }
    free(noise);
    free(rows);
}

void augment_batch_cpu(const AugmentConfig *config, const MnistSplit *split, const uint32_t *indices, int n,
                       uint64_t seed, uint64_t step, float *x)
{
    const int size = (int)split->rows;
    const size_t pixels = split->rows * split->cols;
    float *pixel_units = xmalloc(pixels * sizeof *pixel_units); /* (S, S) one augmented image, 0..255 */
    float *dx = xmalloc(pixels * sizeof *dx), *dy = xmalloc(pixels * sizeof *dy); /* (S, S) each */
    for (int b = 0; b < n; b++) {
        const uint8_t *image = split->images + (size_t)indices[b] * pixels;
        float *out = x + (size_t)b * pixels;
        if (config->kind == AUGMENT_AFFINE) {
            const AffineParams params = augment_draw_affine(config, seed, step, (uint32_t)b, size);
            float inverse[6] = {0}; /* (2, 3) */
            augment_inverse_matrix(&params, inverse);
            augment_affine_image(image, size, inverse, pixel_units);
        } else if (config->kind == AUGMENT_ELASTIC) {
            augment_draw_elastic(config, seed, step, (uint32_t)b, size, dx, dy);
            augment_elastic_image(image, size, dx, dy, pixel_units);
        } else {
            normalize_pixels(image, out, pixels); /* exactly the loader's batch */
            continue;
        }
        for (size_t p = 0; p < pixels; p++) {
            out[p] = augment_normalize(pixel_units[p]);
        }
    }
    free(pixel_units);
    free(dx);
    free(dy);
}
