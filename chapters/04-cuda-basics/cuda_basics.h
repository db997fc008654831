/* cuda_basics.h — Chapter 04: the first CUDA kernels, and the host functions that launch them.
 *
 * Every function here takes DEVICE pointers (from cudaMalloc) and launches one or two kernels; each launch
 * is followed by CUDA_CHECK(cudaGetLastError()) (see common/cuda_check.h). Kernels run asynchronously:
 * a result is only there once the host synchronizes (a cudaMemcpy to the host does that).
 *
 *   vector_add            c = a + b, one grid-stride loop
 *   activation_*          chapter 01's sigmoid, tanh, ReLU, leaky ReLU, forward and backward
 *   reduce_sum/max        a whole array to one number: a shared-memory tree, or warp shuffles
 *   softmax_rows          row-wise softmax, max subtracted first (stable)
 *   softmax_xent_*        chapter 02's fused softmax + cross-entropy, mean over the batch
 *
 * Build and test (no GPU needed: the CPU simulator runs the same code):
 *   cmake --preset default && cmake --build --preset default && ctest --preset default -L ch04
 * The lesson: chapters/04-cuda-basics/README.md
 */
#ifndef CH04_CUDA_BASICS_H
#define CH04_CUDA_BASICS_H

#include <stdint.h>

/* Threads per block for every kernel here: a multiple of the warp size (32) and a power of two, as the
 * tree reduction needs. */
#define CH04_THREADS 256
/* Most blocks a grid-stride kernel is launched with: enough to fill any current GPU several times over;
 * each thread then loops over the rest of the array. */
#define CH04_MAX_BLOCKS 1024
/* Floats of device scratch memory the reductions need: one partial result per block, plus the total. */
#define CH04_SCRATCH_FLOATS (CH04_MAX_BLOCKS + 1)

enum Ch04Activation { CH04_SIGMOID, CH04_TANH, CH04_RELU, CH04_LEAKY_RELU };
enum Ch04Reduction { CH04_SHARED_TREE, CH04_WARP_SHUFFLE };

/* c[i] = a[i] + b[i].  a, b, c: (n) on the device. */
void vector_add(const float *a, const float *b, float *c, int n);

/* y = f(x) and dx = dy * f'(x), elementwise over (n); negative_slope is used by leaky ReLU only.
 * Same conventions as chapter 01 (relu'(0) = 0, leaky_relu'(0) = slope, NaN in gives NaN out). */
void activation_forward(enum Ch04Activation f, const float *x, float *y, int n, float negative_slope);
void activation_backward(enum Ch04Activation f, const float *x, const float *dy, float *dx, int n,
                         float negative_slope);

/* sum_i x[i] and max_i x[i] over (n >= 1) device values, returned to the host. `scratch` is a device
 * buffer of at least CH04_SCRATCH_FLOATS floats. */
float reduce_sum(const float *x, int n, enum Ch04Reduction method, float *scratch);
float reduce_max(const float *x, int n, enum Ch04Reduction method, float *scratch);
/* The first pass alone (for the benchmark): partial[b] = the reduction of block b's grid-stride slice.
 * Returns how many blocks (partials) it used. */
int reduce_sum_partials(const float *x, int n, enum Ch04Reduction method, float *partial);

/* y[r] = softmax(x[r]) for each row r.  x, y: (rows, cols), cols >= 1. One block per row. */
void softmax_rows(const float *x, float *y, int rows, int cols);

/* Fused softmax + cross-entropy, mean over the batch (chapter 02's softmax_cross_entropy_forward):
 *   probs[b] = softmax(logits[b]),  loss = (1/batch) sum_b (log sum_c e^logits[b][c] - logits[b][label_b])
 * logits, probs (batch, classes), labels (batch) in [0, classes) (an invalid label gives a NaN loss),
 * row_loss (batch) device scratch, scratch as for reduce_sum. Returns the loss to the host. */
float softmax_xent_forward(const float *logits, const int32_t *labels, float *probs, float *row_loss, int batch,
                           int classes, float *scratch);
/* dlogits = (probs - onehot(labels)) / batch.  probs, dlogits: (batch, classes). */
void softmax_xent_backward(const float *probs, const int32_t *labels, float *dlogits, int batch, int classes);
/* Its kernel (grid-stride over batch * classes), for a launcher that needs another stream than the default
 * one: chapter 06's softmax_xent_backward_gpu. */
__global__ void softmax_xent_backward_kernel(const float *probs, const int32_t *labels, float *dlogits, int batch,
                                             int classes);

#endif
