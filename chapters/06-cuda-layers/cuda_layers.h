/* cuda_layers.h — Chapter 06: the CNN's layers on the GPU, forward and backward.
 *
 * Every function takes DEVICE pointers, launches its kernels on one stream (the default stream unless
 * cuda_layers_set_stream says another) and returns at once: no function here allocates memory or waits for
 * the GPU (softmax_xent_forward_gpu even leaves the loss on the device), so that chapter 07's trainer can
 * allocate every buffer once, run a whole training step without a host-device synchronisation, and capture
 * the step into a CUDA Graph. Each launch is checked with CUDA_CHECK(cudaGetLastError()).
 *
 * Layout NCHW, row-major, shapes beside every array, as in chapter 03 (conv.h, cnn_layers.h), whose CPU
 * layers are the reference for every function here. Backward functions OVERWRITE their outputs.
 *
 * This header is the chapter's whole API: it includes cuda_gemm.h and cuda_conv.h, and declares the layers
 * that cuda_layers.cu implements (chapter 03's twins: cnn_layers.h, and chapter 02's layers.h for the loss
 * and SGD).
 *
 *   gemm_gpu                  row-major SGEMM: cuBLAS, this chapter's shared-memory tiled kernel, or chapter
 *                             05's best kernel                                               (cuda_gemm.h)
 *   conv2d_*_gpu              convolution: im2col + GEMM, or direct kernels; bias + ReLU fused into the
 *                             forward's epilogue, the ReLU mask applied in backward           (cuda_conv.h)
 *   maxpool2_*_gpu            2x2 max pooling with argmax, ties and NaN as PyTorch
 *   dropout_*_gpu             inverted dropout, the mask from Philox (common/philox.h) = the CPU's mask
 *   linear_*_gpu              fully connected layer Y = X W^T + b (+ ReLU), W (out, in)
 *   softmax_xent_*_gpu        fused softmax + mean cross-entropy, loss left on the device; its gradient
 *   sgd_momentum_gpu          SGD with momentum over ONE flat buffer holding every parameter
 *
 * Build and test (no GPU needed: the CPU simulator runs the same code):
 *   cmake --preset default && cmake --build --preset default && ctest --preset default -L ch06
 * The lesson: chapters/06-cuda-layers/README.md
 */
#ifndef CH06_CUDA_LAYERS_H
#define CH06_CUDA_LAYERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime.h>

#include "cuda_conv.h" /* the convolution (cuda_conv.cu) */
#include "cuda_gemm.h" /* the stream, the launch sizes and the GEMM (cuda_gemm.cu) */

/* ---- Max pooling 2x2, stride 2 --------------------------------------------------------------------------- */

/* As chapter 03's maxpool2_forward: y (N, C, H/2, W/2) = the max of each 2x2 window of x (N, C, H, W);
 * argmax (N, C, H/2, W/2) = its index ih*W + iw in the plane; ties keep the first in row-major window order,
 * a NaN wins (the last NaN). */
void maxpool2_forward_gpu(const float *x, float *y, int32_t *argmax, int batch, int channels, int height,
                          int width);
/* dx (N, C, H, W) = dy routed to the argmax of each window, 0 elsewhere (one thread per input: no atomics,
 * no separate zeroing). */
void maxpool2_backward_gpu(const float *dy, const int32_t *argmax, float *dx, int batch, int channels, int height,
                           int width);

/* ---- Dropout --------------------------------------------------------------------------------------------- */

/* The keep-mask on the CPU: mask[i] = philox_keep(seed, offset, i, p), i in [0, n). The GPU kernel below
 * computes exactly the same bits. */
void dropout_philox_mask_cpu(uint64_t seed, uint64_t offset, float p, uint8_t *mask, size_t n);

/* Training: mask[i] = philox_keep(seed, offset, i, p); y = x * mask / (1 - p). x, y, mask: (n); p in
 * [0, 1). Give every dropout layer and every step its own (seed, offset) pair, e.g. offset = step * L + layer. */
void dropout_forward_gpu(const float *x, float *y, uint8_t *mask, size_t n, float p, uint64_t seed,
                         uint64_t offset);
/* The same with the offset read on the device when the kernel runs: offset = *offset_base + offset_add,
 * offset_base a device pointer. For a CUDA Graph, whose kernel arguments are frozen when it is captured: the
 * graph replays every step with the same arguments, so the step's offset must come from memory that the
 * step itself advances (chapter 07). PyTorch feeds Philox to its captured graphs the same way. */
void dropout_forward_gpu_device_offset(const float *x, float *y, uint8_t *mask, size_t n, float p, uint64_t seed,
                                       const uint64_t *offset_base, uint64_t offset_add);
/* dx = dy * mask / (1 - p). */
void dropout_backward_gpu(const float *dy, const uint8_t *mask, float *dx, size_t n, float p);

/* ---- Fully connected ------------------------------------------------------------------------------------- */

/* y = x W^T + b, then ReLU when `relu`.  x (batch, in), w (out, in), b (out), y (batch, out). */
void linear_forward_gpu(GpuGemm backend, const float *x, const float *w, const float *b, float *y, int batch,
                        int in, int out, bool relu);
/* Gradients for upstream dy (batch, out); with `relu`, dy is first multiplied by (y > 0) into dz_scratch
 * (batch, out) (dz_scratch may be NULL without relu). dx = dz W (batch, in), skipped when NULL;
 * dw = dz^T x (out, in); db = column sums of dz (out). */
void linear_backward_gpu(GpuGemm backend, const float *x, const float *w, const float *y, const float *dy,
                         bool relu, float *dz_scratch, float *dx, float *dw, float *db, int batch, int in,
                         int out);

/* ---- Softmax + cross-entropy ----------------------------------------------------------------------------- */

/* probs[r] = softmax(logits[r]); loss[0] = (1/batch) sum_r (logsumexp(logits[r]) - logits[r][labels[r]]),
 * written on the DEVICE (one block, a fixed-order reduction: the same loss every run). An invalid label
 * gives a NaN loss. logits, probs (batch, classes); labels (batch); loss (1). */
void softmax_xent_forward_gpu(const float *logits, const int32_t *labels, float *probs, float *loss, int batch,
                              int classes);
/* dlogits = (probs - onehot(labels)) / batch: chapter 04's kernel (softmax_xent_backward_kernel, linked as it
 * is) launched on this chapter's stream.  probs, dlogits (batch, classes); labels (batch). */
void softmax_xent_backward_gpu(const float *probs, const int32_t *labels, float *dlogits, int batch, int classes);

/* ---- SGD with momentum over a flat parameter buffer ------------------------------------------------------ */

/* Lay `count` tensors of sizes[i] floats out one after another: offsets[i] = sizes[0] + ... + sizes[i-1]
 * (each rounded up to a multiple of 4 floats, 16 bytes, so that every tensor starts aligned for vector
 * loads). Returns the total floats. Allocate params, grads and velocity with that size once; tensor i is
 * params + offsets[i]. */
size_t flat_layout(const size_t *sizes, int count, size_t *offsets);

/* One step of torch.optim.SGD (dampening 0, no Nesterov) over n floats, ONE kernel for all parameters:
 *   g = grad + weight_decay * p;  v = momentum * v + g;  p -= lr * v
 * velocity starts at 0. The padding between tensors holds zeros and stays zero. */
void sgd_momentum_gpu(float *params, const float *grads, float *velocity, size_t n, float lr, float momentum,
                      float weight_decay);

/* dx = dy * (y > 0): ReLU's backward from its output. (n) each; dx may be dy (in place). */
void relu_backward_gpu(const float *y, const float *dy, float *dx, size_t n);

#endif
