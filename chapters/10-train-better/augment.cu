/* augment.cu — Chapter 10: data augmentation on the GPU, gathered straight from the device-resident data set.
 *
 * augment_batch_gpu enqueues one kernel that builds the training batch: for sample b it reads the bytes of
 * image order[*first + b], transforms them (random affine or elastic, augment.h) and writes the normalised
 * result into x, with no copy through the host. The step's random numbers come from Philox at offset
 * *philox_offset / 2 (chapter 07's device cursor), read when the kernel runs, so a captured CUDA Graph replays
 * it with the current step. One block per image: its threads share the sample's parameters (affine) or its
 * displacement field (elastic, blurred in shared memory); the arithmetic is augment_math.h's, the CPU path's.
 *
 *   build/bin/test_augment_sim cpu_equals_gpu.elastic     (tests/test_augment.cu; on a GPU: test_augment_gpu)
 */
#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime.h>

#include "augment.h"
#include "augment_math.h"
#include "cuda_check.h"

#define AUGMENT_THREADS 256

/* The sample of batch position b: order[first + b], or first + b without an order. */
__device__ static size_t augment_sample(const uint32_t *order, const uint64_t *first, int b)
{
    const uint64_t position = *first + (uint64_t)b;
    return order != NULL ? order[position] : position;
}

/* Block b: its parameters (thread 0, into shared memory), then every pixel of its image. x (n, 1, S, S). */
__global__ void augment_affine_kernel(AugmentConfig config, const uint8_t *images, const int32_t *all_labels,
                                      const uint32_t *order, const uint64_t *first, const uint64_t *philox_offset,
                                      int size, uint64_t seed, float *x, int32_t *batch_labels)
{
    __shared__ float inverse[6];
    const int b = blockIdx.x, pixels = size * size;
    const size_t sample = augment_sample(order, first, b);
    if (threadIdx.x == 0) {
        const AffineParams params = augment_draw_affine_math(&config, seed, *philox_offset / 2, (uint32_t)b, size);
        augment_inverse_matrix_math(&params, inverse);
        batch_labels[b] = all_labels[sample];
    }
    __syncthreads();
    const uint8_t *image = images + sample * pixels;
    for (int p = threadIdx.x; p < pixels; p += blockDim.x) {
        x[(size_t)b * pixels + p] = augment_normalize(augment_affine_pixel(image, size, inverse, p % size, p / size));
    }
}

/* Block b: the sample's noise, blurred along rows then columns in shared memory, then sampled. The dynamic
 * shared memory holds weights (taps), dx and dy (S, S) each, and the row-blurred dx and dy (S, S) each. */
__global__ void augment_elastic_kernel(AugmentConfig config, const uint8_t *images, const int32_t *all_labels,
                                       const uint32_t *order, const uint64_t *first, const uint64_t *philox_offset,
                                       int size, uint64_t seed, float *x, int32_t *batch_labels)
{
    extern __shared__ float shared[];
    const int b = blockIdx.x, pixels = size * size, taps = augment_kernel_size(config.sigma);
    float *weights = shared, *field = shared + taps, *rows = field + 2 * pixels;
    const uint64_t step = *philox_offset / 2;
    const size_t sample = augment_sample(order, first, b);
    if (threadIdx.x == 0) {
        augment_gaussian_kernel(config.sigma, taps, weights);
        batch_labels[b] = all_labels[sample];
    }
    for (int i = threadIdx.x; i < 2 * pixels; i += blockDim.x) {
        field[i] = augment_noise(seed, step, size, (uint32_t)b, (uint64_t)i); /* dx noise, then dy noise */
    }
    __syncthreads();
    for (int i = threadIdx.x; i < 2 * pixels; i += blockDim.x) {
        const int p = i % pixels;
        rows[i] = augment_blur_at(field + (i - p) + (p / size) * size, 1, p % size, size, weights, taps);
    }
    __syncthreads();
    for (int i = threadIdx.x; i < 2 * pixels; i += blockDim.x) {
        const int p = i % pixels;
        field[i] = config.alpha * augment_blur_at(rows + (i - p) + p % size, size, p / size, size, weights, taps);
    }
    __syncthreads();
    const uint8_t *image = images + sample * pixels;
    for (int p = threadIdx.x; p < pixels; p += blockDim.x) {
        const float pixel = augment_elastic_pixel(image, size, field[p], field[pixels + p], p % size, p / size);
        x[(size_t)b * pixels + p] = augment_normalize(pixel);
    }
}

/* AUGMENT_NONE: the loader's batch (chapter 07's gather, with the same formula). */
__global__ void augment_none_kernel(const uint8_t *images, const int32_t *all_labels, const uint32_t *order,
                                    const uint64_t *first, int size, float *x, int32_t *batch_labels)
{
    const int b = blockIdx.x, pixels = size * size;
    const size_t sample = augment_sample(order, first, b);
    if (threadIdx.x == 0) {
        batch_labels[b] = all_labels[sample];
    }
    for (int p = threadIdx.x; p < pixels; p += blockDim.x) {
        x[(size_t)b * pixels + p] = augment_normalize((float)images[sample * pixels + p]);
    }
}

void augment_batch_gpu(const AugmentConfig *config, const uint8_t *images, const int32_t *all_labels,
                       const uint32_t *order, const uint64_t *first, const uint64_t *philox_offset, int n, int size,
                       uint64_t seed, float *x, int32_t *batch_labels, void *stream)
{
    if (n <= 0) {
        return;
    }
    cudaStream_t s = (cudaStream_t)stream;
    if (config->kind == AUGMENT_AFFINE) {
        augment_affine_kernel<<<n, AUGMENT_THREADS, 0, s>>>(*config, images, all_labels, order, first,
                                                            philox_offset, size, seed, x, batch_labels);
    } else if (config->kind == AUGMENT_ELASTIC) {
        const int taps = augment_kernel_size(config->sigma);
        const size_t shared_bytes = ((size_t)taps + 4 * (size_t)size * size) * sizeof(float);
        if (taps > AUGMENT_MAX_KERNEL || shared_bytes > 48 * 1024) {
            fprintf(stderr, "augment_batch_gpu: elastic with sigma %g on %dx%d images needs %d taps and %zu bytes of "
                            "shared memory (at most %d taps and 48 KiB)\n",
                    config->sigma, size, size, taps, shared_bytes, AUGMENT_MAX_KERNEL);
            exit(1);
        }
        augment_elastic_kernel<<<n, AUGMENT_THREADS, shared_bytes, s>>>(*config, images, all_labels, order, first,
                                                                        philox_offset, size, seed, x, batch_labels);
    } else {
        augment_none_kernel<<<n, AUGMENT_THREADS, 0, s>>>(images, all_labels, order, first, size, x, batch_labels);
    }
    CUDA_CHECK(cudaGetLastError());
}
