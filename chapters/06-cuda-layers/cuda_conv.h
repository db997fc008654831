/* cuda_conv.h — Chapter 06: the convolution on the GPU, forward and backward: im2col + one GEMM over the whole
 * batch with the bias and ReLU fused into its epilogue, col2im as a gather, and direct kernels that need no
 * workspace. Chapter 03's twin is conv.h, whose CPU convolution is the reference for every function here.
 *
 * Every function takes DEVICE pointers, launches its kernels on the chapter's stream (cuda_gemm.h) and
 * returns at once. Layout NCHW, row-major, shapes beside every array. Backward functions OVERWRITE their
 * outputs.
 *
 * Build and test (no GPU needed: the CPU simulator runs the same code):
 *   cmake --preset default && cmake --build --preset default && ctest --preset default -L ch06
 * The lesson: chapters/06-cuda-layers/README.md (sections 3 and 4)
 */
#ifndef CH06_CUDA_CONV_H
#define CH06_CUDA_CONV_H

#include <stdbool.h>
#include <stddef.h>

#include "cuda_gemm.h"

#ifdef __cplusplus
extern "C" { /* chapter 03's headers are C; this file's .cu are C++ */
#endif
#include "conv.h" /* chapter 03: Conv2dShape and its size helpers (plain host functions) */
#ifdef __cplusplus
}
#endif

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

#endif
