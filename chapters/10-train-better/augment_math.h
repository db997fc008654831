/* augment_math.h — Chapter 10: the per-sample and per-pixel arithmetic of data augmentation, shared by the CPU
 * path (augment.c) and the CUDA kernels (augment.cu), so that both compute every image with the same float
 * operations in the same order (bit for bit on the course's simulator; on a GPU, nvcc's fused multiply-adds
 * change the last bits).
 *
 *   AffineParams p = augment_draw_affine_math(&config, seed, step, sample, size);
 *   float inverse[6];
 *   augment_inverse_matrix_math(&p, inverse);
 *   float pixel = augment_affine_pixel(image, size, inverse, x, y);      // pixel units, 0..255
 *
 * Compiled as CUDA (nvcc, or the simulator) every function is __host__ __device__, as in common/philox.h; a
 * C compiler sees plain static inline functions. Not a header a program includes on its own: augment.h is.
 */
#ifndef CH10_AUGMENT_MATH_H
#define CH10_AUGMENT_MATH_H

#include <math.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" { /* a C header */
#endif
#include "train_util.h" /* MNIST_MEAN, MNIST_STD */
#ifdef __cplusplus
}
#endif

#include "augment.h"
#include "philox.h"

#define AUGMENT_FUNCTION PHILOX_FUNCTION

/* Random numbers drawn per sample by an affine transform: angle, tx, ty, scale, shear_x (in this order). */
#define AUGMENT_AFFINE_DRAWS 5
/* The longest Gaussian kernel the elastic path accepts (sigma up to 8 pixels). */
#define AUGMENT_MAX_KERNEL 65

/* Element k of sample `sample`'s random numbers of step `step`, uniform in [0, 1). */
AUGMENT_FUNCTION float augment_uniform(uint64_t seed, uint64_t step, uint64_t per_sample, uint32_t sample, uint64_t k)
{
    return philox_uniform(seed ^ AUGMENT_KEY, step, (uint64_t)sample * per_sample + k);
}

/* torchvision's uniform_(lo, hi): lo + (hi - lo) * u. */
AUGMENT_FUNCTION float augment_between(float lo, float hi, float u)
{
    return lo + (hi - lo) * u;
}

/* RandomAffine.get_params from Philox numbers: angle, then the shift (rounded half to even, as Python's
 * round), then scale and shear along x; shear along y stays 0. */
AUGMENT_FUNCTION AffineParams augment_draw_affine_math(const AugmentConfig *config, uint64_t seed, uint64_t step,
                                                       uint32_t sample, int size)
{
    const uint64_t n = AUGMENT_AFFINE_DRAWS;
    const float max_shift = config->translate * (float)size;
    AffineParams p;
    p.angle = augment_between(-config->degrees, config->degrees, augment_uniform(seed, step, n, sample, 0));
    p.tx = rintf(augment_between(-max_shift, max_shift, augment_uniform(seed, step, n, sample, 1)));
    p.ty = rintf(augment_between(-max_shift, max_shift, augment_uniform(seed, step, n, sample, 2)));
    p.scale = augment_between(config->scale_min, config->scale_max, augment_uniform(seed, step, n, sample, 3));
    p.shear_x = augment_between(-config->shear, config->shear, augment_uniform(seed, step, n, sample, 4));
    p.shear_y = 0.0f;
    return p;
}

/* torchvision's _get_inverse_affine_matrix with the centre at the image's middle (F.affine on a tensor):
 * the forward map is T * RotateScaleShear, RSS = R(angle) S(scale) SHy(shear_y) SHx(shear_x) with det 1 before
 * scaling, so its inverse is [d, -b; -c, a] / scale, followed by undoing the shift (tx, ty). */
AUGMENT_FUNCTION
void augment_inverse_matrix_math(const AffineParams *params, float inverse[6])
{
    /* BEGIN EXERCISE ch10.inverse_matrix: rot, sx, sy in radians; a = cos(rot - sy) / cos(sy), b = -cos(rot - sy) tan(sx) / cos(sy) - sin(rot), c = sin(rot - sy) / cos(sy), d = -sin(rot - sy) tan(sx) / cos(sy) + cos(rot); inverse = [d, -b, 0, -c, a, 0] / scale, then inverse[2] = -(inverse[0] tx + inverse[1] ty) and inverse[5] = -(inverse[3] tx + inverse[4] ty) (about 12 lines) | zh: rot、sx、sy 换成弧度；a = cos(rot - sy) / cos(sy)，b = -cos(rot - sy) tan(sx) / cos(sy) - sin(rot)，c = sin(rot - sy) / cos(sy)，d = -sin(rot - sy) tan(sx) / cos(sy) + cos(rot)；inverse = [d, -b, 0, -c, a, 0] / scale，再令 inverse[2] = -(inverse[0] tx + inverse[1] ty)，inverse[5] = -(inverse[3] tx + inverse[4] ty)（约 12 行） */
    const float radians = 3.14159265358979323846f / 180.0f;
    const float rot = params->angle * radians, sx = params->shear_x * radians, sy = params->shear_y * radians;
    const float a = cosf(rot - sy) / cosf(sy);
    const float b = -cosf(rot - sy) * tanf(sx) / cosf(sy) - sinf(rot);
    const float c = sinf(rot - sy) / cosf(sy);
    const float d = -sinf(rot - sy) * tanf(sx) / cosf(sy) + cosf(rot);
    inverse[0] = d / params->scale;
    inverse[1] = -b / params->scale;
    inverse[3] = -c / params->scale;
    inverse[4] = a / params->scale;
    inverse[2] = inverse[0] * -params->tx + inverse[1] * -params->ty;
    inverse[5] = inverse[3] * -params->tx + inverse[4] * -params->ty;
    /* END EXERCISE */
}

/* The image (size, size) bytes read at the real position (x, y), in pixel units: bilinear interpolation of the
 * four neighbouring pixels, 0 for a neighbour outside the image (grid_sample's padding_mode="zeros"). The four
 * weights are written as PyTorch's grid_sampler_2d writes them, so the roundings match. */
AUGMENT_FUNCTION
float augment_bilinear(const uint8_t *image, int size, float x, float y)
{
    /* BEGIN EXERCISE ch10.bilinear: x0 = floor(x), y0 = floor(y), x1 = x0 + 1, y1 = y0 + 1; weights (x1 - x)(y1 - y) for (x0, y0), (x - x0)(y1 - y) for (x1, y0), (x1 - x)(y - y0) for (x0, y1), (x - x0)(y - y0) for (x1, y1); add weight * pixel for each corner inside 0..size-1 on both axes (about 15 lines) | zh: x0 = floor(x)，y0 = floor(y)，x1 = x0 + 1，y1 = y0 + 1；(x0, y0) 的权重 (x1 - x)(y1 - y)，(x1, y0) 为 (x - x0)(y1 - y)，(x0, y1) 为 (x1 - x)(y - y0)，(x1, y1) 为 (x - x0)(y - y0)；两个坐标都在 0..size-1 内的角点才加上 权重 * 像素值（约 15 行） */
    const float fx0 = floorf(x), fy0 = floorf(y);
    const float fx1 = fx0 + 1.0f, fy1 = fy0 + 1.0f;
    const float w00 = (fx1 - x) * (fy1 - y), w10 = (x - fx0) * (fy1 - y);
    const float w01 = (fx1 - x) * (y - fy0), w11 = (x - fx0) * (y - fy0);
    /* Positions far outside the image (a huge shift) stay well inside int's range after this clamp. */
    const int x0 = (int)fmaxf(fminf(fx0, (float)size + 1.0f), -2.0f);
    const int y0 = (int)fmaxf(fminf(fy0, (float)size + 1.0f), -2.0f);
    const int x1 = x0 + 1, y1 = y0 + 1;
    const int in_x0 = x0 >= 0 && x0 < size, in_x1 = x1 >= 0 && x1 < size;
    const int in_y0 = y0 >= 0 && y0 < size, in_y1 = y1 >= 0 && y1 < size;
    float sum = 0.0f;
    if (in_x0 && in_y0) sum += (float)image[y0 * size + x0] * w00;
    if (in_x1 && in_y0) sum += (float)image[y0 * size + x1] * w10;
    if (in_x0 && in_y1) sum += (float)image[y1 * size + x0] * w01;
    if (in_x1 && in_y1) sum += (float)image[y1 * size + x1] * w11;
    return sum;
    /* END EXERCISE */
}

/* Output pixel (x, y) of the affine transform: its centre relative to the image's middle, mapped through the
 * inverse matrix, and back to pixel coordinates (pixel i's centre is at i + 0.5). This is F.affine's grid,
 * which torchvision writes in grid_sample's [-1, 1] units; with align_corners=False both conversions cancel. */
AUGMENT_FUNCTION float augment_affine_pixel(const uint8_t *image, int size, const float inverse[6], int x, int y)
{
    const float half = 0.5f * (float)size;
    const float xc = (float)x + 0.5f - half, yc = (float)y + 0.5f - half;
    const float x_in = inverse[0] * xc + inverse[1] * yc + inverse[2] + half - 0.5f;
    const float y_in = inverse[3] * xc + inverse[4] * yc + inverse[5] + half - 0.5f;
    return augment_bilinear(image, size, x_in, y_in);
}

/* Output pixel (x, y) of the elastic transform: the input at (x + dx, y + dy), displacements in pixels. */
AUGMENT_FUNCTION float augment_elastic_pixel(const uint8_t *image, int size, float dx, float dy, int x, int y)
{
    return augment_bilinear(image, size, (float)x + dx, (float)y + dy);
}

/* A pixel value 0..255 to the network's input, the loader's formula (common/train_util.c's normalize_pixels). */
AUGMENT_FUNCTION float augment_normalize(float pixel)
{
    return (pixel / 255.0f - MNIST_MEAN) / MNIST_STD;
}

/* torchvision's ElasticTransform kernel: int(8 sigma + 1) taps, made odd. */
AUGMENT_FUNCTION int augment_kernel_size(float sigma)
{
    int taps = (int)(8.0f * sigma + 1.0f);
    return taps % 2 == 0 ? taps + 1 : taps;
}

/* _get_gaussian_kernel1d: exp(-x^2 / (2 sigma^2)) at x = -(taps-1)/2 .. (taps-1)/2, divided by its sum.
 * weights (taps). */
AUGMENT_FUNCTION void augment_gaussian_kernel(float sigma, int taps, float *weights)
{
    const float half = 0.5f * (float)(taps - 1);
    float sum = 0.0f;
    for (int k = 0; k < taps; k++) {
        const float t = ((float)k - half) / sigma;
        weights[k] = expf(-0.5f * t * t);
        sum += weights[k];
    }
    for (int k = 0; k < taps; k++) {
        weights[k] /= sum;
    }
}

/* Reflect padding (torch's mode="reflect", the edge pixel not repeated): -1 -> 1, size -> size - 2. Repeated
 * for a kernel wider than the image (torchvision refuses those; here they fold back and forth). */
AUGMENT_FUNCTION int augment_reflect(int i, int size)
{
    if (size == 1) {
        return 0;
    }
    while (i < 0 || i >= size) {
        i = i < 0 ? -i : 2 * (size - 1) - i;
    }
    return i;
}

/* One tap sum of the separable Gaussian: sum_k weights[k] * line[reflect(i + k - taps/2) * stride], where
 * line is a row (stride 1) or a column (stride size) of a (size, size) field. */
AUGMENT_FUNCTION float augment_blur_at(const float *line, int stride, int i, int size, const float *weights,
                                       int taps)
{
    float sum = 0.0f;
    for (int k = 0; k < taps; k++) {
        sum += weights[k] * line[augment_reflect(i + k - taps / 2, size) * stride];
    }
    return sum;
}

/* Element k of an elastic sample's noise: uniform in [-1, 1) (torch.rand * 2 - 1). Elements 0 .. S*S-1 are dx,
 * S*S .. 2*S*S-1 are dy, row by row. */
AUGMENT_FUNCTION float augment_noise(uint64_t seed, uint64_t step, int size, uint32_t sample, uint64_t k)
{
    return 2.0f * augment_uniform(seed, step, 2 * (uint64_t)size * size, sample, k) - 1.0f;
}

#endif
