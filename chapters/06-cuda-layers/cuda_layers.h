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
 *   gemm_gpu                  row-major SGEMM: cuBLAS, this chapter's shared-memory tiled kernel, or chapter
 *                             05's best kernel
 *   conv2d_*_gpu              convolution: im2col + GEMM, or direct kernels; bias + ReLU fused into the
 *                             forward's epilogue, the ReLU mask applied in backward
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

#ifdef __cplusplus
extern "C" { /* chapter 03's headers are C; this file's .cu are C++ */
#endif
#include "conv.h" /* chapter 03: Conv2dShape and its size helpers (plain host functions) */
#ifdef __cplusplus
}
#endif

/* Threads per block of the one-thread-per-element kernels. */
#define CH06_THREADS 256
/* Tile edge of the tiled GEMM kernel: a 16x16 block computes a 16x16 tile of C. */
#define CH06_TILE 16

/* ---- The stream ------------------------------------------------------------------------------------------ */

/* Every later launch of this chapter's functions, and the cuBLAS handle's work, goes to `stream` (as
 * cublasSetStream does for cuBLAS). Chapter 07 gives a stream it created, because a CUDA Graph can only be
 * captured from such a stream, never from the legacy default stream 0. Chapter 05's kernel (GPU_GEMM_CH05)
 * is launched by chapter 05's code on the default stream whatever is set here: it keeps its place in the
 * order (the legacy stream waits for, and is waited for by, every stream made by cudaStreamCreate), but
 * cannot be captured. */
void cuda_layers_set_stream(cudaStream_t stream);
cudaStream_t cuda_layers_stream(void);

/* ---- GEMM ------------------------------------------------------------------------------------------------ */

typedef enum GpuGemm {
    GPU_GEMM_CUBLAS = 0, /* cublasSgemm (a handle created once, on first use) */
    GPU_GEMM_TILED = 1, /* gemm_tiled_kernel below: shared-memory tiles, one output per thread */
    GPU_GEMM_CH05 = 2, /* chapter 05's sgemm_07_warptile for untransposed, contiguous products (lda == k,
                        * ldb == ldc == n); the tiled kernel for the others, which chapter 05's kernels do
                        * not take (a transposed operand, or a stride) */
} GpuGemm;

/* C = alpha * op(A) · op(B) + beta * C, row-major, the arguments of cblas_sgemm(CblasRowMajor, ...) and of
 * chapter 03's sgemm: op(A) (m, k), op(B) (k, n), C (m, n) with row strides lda, ldb, ldc. beta == 0
 * overwrites C (NaN in C does not leak through). m, n, k >= 1. */
void gemm_gpu(GpuGemm backend, bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
              int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* "cublas", "tiled" or "ch05". */
const char *gpu_gemm_name(GpuGemm backend);

/* Destroy the cuBLAS handle gemm_gpu created (if any). Optional, at the end of a program. */
void gemm_gpu_shutdown(void);

/* ---- Convolution ----------------------------------------------------------------------------------------- */

typedef enum ConvAlgorithm {
    CONV_IM2COL_CUBLAS = 0, /* im2col, then one GEMM over the whole batch (cuBLAS) */
    CONV_IM2COL_TILED = 1, /* the same with the tiled GEMM kernel */
    CONV_DIRECT = 2, /* one thread per output (forward), per input / weight element (backward) */
    CONV_IM2COL_CH05 = 3, /* im2col with chapter 05's kernel: the forward GEMM (untransposed) runs on
                           * sgemm_07_warptile; the backward's two GEMMs have a transposed operand and run on
                           * the tiled kernel (see GPU_GEMM_CH05) */
} ConvAlgorithm;

const char *conv_algorithm_name(ConvAlgorithm algorithm);

/* Floats of device workspace the convolution needs (0 for CONV_DIRECT). The im2col path unfolds the WHOLE
 * batch, so that one GEMM does the layer: cols (C*KH*KW, N*OH*OW), plus the GEMM's output in (OC, N*OH*OW)
 * order. The workspace can be shared by all layers (size it for the largest); it holds nothing between
 * calls. */
size_t conv2d_gpu_workspace_floats(const Conv2dShape *s, ConvAlgorithm algorithm);

/* y = conv(x, w) + b, then ReLU when `relu` (the fused epilogue).
 * x (N, C, H, W), w (OC, C, KH, KW), b (OC), y (N, OC, OH, OW); workspace as above. */
void conv2d_forward_gpu(ConvAlgorithm algorithm, const Conv2dShape *s, const float *x, const float *w,
                        const float *b, float *y, bool relu, float *workspace);

/* The gradients of the layer above for upstream gradient dy (N, OC, OH, OW). With `relu`, y (N, OC, OH, OW)
 * is that forward's output and dy is first multiplied by relu'(.) = (y > 0); without, y is not read (may be
 * NULL). dx (N, C, H, W) may be NULL (the first layer needs none); dw (OC, C, KH, KW), db (OC).
 * The im2col path recomputes im2col(x) in the workspace rather than keeping it from the forward. */
void conv2d_backward_gpu(ConvAlgorithm algorithm, const Conv2dShape *s, const float *x, const float *w,
                         const float *y, const float *dy, bool relu, float *dx, float *dw, float *db,
                         float *workspace);

/* The pieces of the im2col path, public so that the tests check each one.
 * im2col of the whole batch: cols[(c*KH + kh)*KW + kw][n*OH*OW + oh*OW + ow] =
 *   x[n][c][oh*stride + kh - padding][ow*stride + kw - padding] (0 in the padding).  cols (C*KH*KW, N*OH*OW) */
void conv2d_im2col_gpu(const Conv2dShape *s, const float *x, float *cols);
/* Its adjoint: dx[n][c][ih][iw] = the sum of every entry of dcols (C*KH*KW, N*OH*OW) that im2col copied from
 * that pixel, computed as a gather (one thread per pixel of dx: no atomics). dx (N, C, H, W) overwritten. */
void conv2d_col2im_gpu(const Conv2dShape *s, const float *dcols, float *dx);

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
