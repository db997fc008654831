/* augment.h — Chapter 10: data augmentation, random affine transforms and elastic distortion of MNIST digits,
 * the same on the CPU and on the GPU.
 *
 * Every training image is transformed afresh each time it is drawn, with random numbers from Philox
 * (common/philox.h), a counter-based generator: the parameters of sample b of training step s are a pure
 * function of (seed, s, b), so the CPU path (augment_batch_cpu) and the CUDA kernel (augment_batch_gpu) make
 * the same images for the same seed, and a resumed run makes the same images as an uninterrupted one.
 *
 * Affine (torchvision's RandomAffine(degrees, translate, scale, shear) followed by F.affine): the output pixel
 * (x, y) takes the input at M^-1 (x, y) around the image centre, read with bilinear interpolation, 0 outside
 * the image: F.affine with fill=None. (RandomAffine passes fill=[0.0], and with a fill torchvision also samples
 * a channel of ones and multiplies the image by it, so border pixels whose neighbours fall outside are darkened
 * a second time: its output is F.affine(fill=None) times the transformed ones image.) Elastic (Simard,
 * Steinkraus and Platt, 2003): a displacement field of uniform noise in [-1, 1] per pixel and axis, smoothed by
 * a Gaussian of width sigma and scaled by alpha pixels, then bilinear sampling at (x + dx, y + dy)
 * (F.elastic_transform, fill=None). Both work on the raw pixels (0..255) and normalise the result as the loader
 * does (common/train_util.h's normalize_pixels), so "outside the image" is black, as MNIST's background is.
 *
 *   AugmentConfig aug = augment_default_config(AUGMENT_AFFINE);
 *   augment_batch_cpu(&aug, &train, indices, n, seed, global_step, x);            // x (n, 1, S, S)
 *   augment_batch_gpu(&aug, d_images, d_labels, d_order, &d_cursor->first, ...);  // the same on the device
 */
#ifndef CH10_AUGMENT_H
#define CH10_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "idx.h"

typedef enum AugmentKind { AUGMENT_NONE = 0, AUGMENT_AFFINE = 1, AUGMENT_ELASTIC = 2 } AugmentKind;

typedef struct AugmentConfig {
    AugmentKind kind;
    /* Affine: angle uniform in [-degrees, degrees]; shift uniform in [-translate, translate] times the image
     * size on each axis (rounded to whole pixels, as torchvision does); scale uniform in [scale_min,
     * scale_max]; shear along x uniform in [-shear, shear] degrees (y shear 0). */
    float degrees, translate, scale_min, scale_max, shear;
    /* Elastic: alpha (pixels of displacement), sigma (pixels, the Gaussian's standard deviation; at most 8, the
     * kernel has int(8 sigma + 1) taps made odd, as torchvision's ElasticTransform). Units: torchvision's
     * ElasticTransform(alpha) displaces by alpha / 2 pixels (it scales by alpha / size in grid_sample's [-1, 1]
     * coordinates, which span 2 per image width), so alpha here equals torchvision's alpha / 2. */
    float alpha, sigma;
} AugmentConfig;

/* The course's defaults: affine degrees 10, translate 0.1, scale 0.9..1.1, shear 10; elastic alpha 34, sigma 4
 * (Simard et al.'s values for 28x28 digits). AUGMENT_NONE: everything 0. */
AugmentConfig augment_default_config(AugmentKind kind);
/* "none", "affine", "elastic" -> kind; -1 for another name. */
int augment_parse(const char *name);
const char *augment_name(AugmentKind kind);

/* The parameters of one affine transform (what torchvision's F.affine takes). */
typedef struct AffineParams {
    float angle; /* degrees; positive turns the image clockwise on the screen (y down), as F.affine */
    float tx, ty; /* whole pixels */
    float scale;
    float shear_x, shear_y; /* degrees */
} AffineParams;

/* The Philox key and offset of augmentation's random numbers for training step `step`: the key is the seed
 * with AUGMENT_KEY mixed in, so these never collide with the dropout masks' streams (key seed, offsets 2s and
 * 2s + 1); sample b uses elements [b * per_sample, (b + 1) * per_sample) of the stream (augment_draws). */
#define AUGMENT_KEY 0xA5A5A5A55A5A5A5Aull

/* How many Philox elements one sample uses (per_sample): 5 for affine (angle, tx, ty, scale, shear_x), 2 S^2
 * for elastic (the dx noise row by row, then the dy noise), 0 for none. */
uint64_t augment_draws(const AugmentConfig *config, int size);

/* Sample b of step `step`'s affine parameters (deterministic in seed, step, b). */
AffineParams augment_draw_affine(const AugmentConfig *config, uint64_t seed, uint64_t step, uint32_t sample, int size);

/* torchvision's _get_inverse_affine_matrix for an image of size x size pixels: inverse[6] maps an output
 * pixel's coordinates (relative to the centre) to the input's: (x_in, y_in) = (m0 x + m1 y + m2, m3 x + m4 y + m5). */
void augment_inverse_matrix(const AffineParams *params, float inverse[6]);

/* One image: in (S, S) bytes -> out (S, S) floats in pixel units (0..255), not yet normalised. */
void augment_affine_image(const uint8_t *in, int size, const float inverse[6], float *out);
/* Elastic with a given displacement field dx, dy (S, S) each, in pixels. */
void augment_elastic_image(const uint8_t *in, int size, const float *dx, const float *dy, float *out);
/* Sample b of step `step`'s displacement field: uniform noise, Gaussian-smoothed, times alpha. dx, dy (S, S). */
void augment_draw_elastic(const AugmentConfig *config, uint64_t seed, uint64_t step, uint32_t sample, int size,
                          float *dx, float *dy);

/* The batch of training step `step`: images indices[0..n) of split, augmented and normalised into
 * x (n, 1, S, S); batch position b draws as sample b. AUGMENT_NONE gives exactly what the data loader gives. */
void augment_batch_cpu(const AugmentConfig *config, const MnistSplit *split, const uint32_t *indices, int n,
                       uint64_t seed, uint64_t step, float *x);

/* The same on the device, enqueued on `stream` (a cudaStream_t): samples order[*first + b] of images
 * (count, S*S) bytes, labels too; the step is *philox_offset / 2 (chapter 07's device cursor, read when the
 * kernel runs, so that a CUDA Graph replays it). order NULL: samples *first + b. x (n, 1, S, S), batch_labels
 * (n). One block per image; elastic keeps its fields in shared memory
 * (the kernel's taps and 4 S*S floats within 48 KiB: S <= 55 at sigma 4). */
void augment_batch_gpu(const AugmentConfig *config, const uint8_t *images, const int32_t *all_labels,
                       const uint32_t *order, const uint64_t *first, const uint64_t *philox_offset, int n, int size,
                       uint64_t seed, float *x, int32_t *batch_labels, void *stream);

#ifdef __cplusplus
}
#endif

#endif
