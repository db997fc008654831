/* cnn_layers.h — Chapter 03: the CNN's other layers: 2x2 max pooling, inverted dropout, flatten, and the fully
 * connected layer computed with GEMM.
 *
 * Layout NCHW, row-major, shapes beside every array. Backward functions OVERWRITE their outputs.
 * (Convolution: conv.h. ReLU: chapter 01's relu_forward / relu_backward. Softmax cross-entropy and SGD with
 * momentum: chapter 02's layers.h.)
 */
#ifndef CH03_CNN_LAYERS_H
#define CH03_CNN_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "gemm.h"
#include "rng.h"

/* ---- Max pooling, 2x2 windows, stride 2 ------------------------------------------------------------------ */

/* Output size of a 2x2, stride-2 pooling: in / 2 (an odd last row or column is dropped, as PyTorch does). */
int maxpool2_output_size(int in);

/* y[n][c][i][j] = max of the 2x2 window x[n][c][2i..2i+1][2j..2j+1].
 * x (N, C, H, W), y (N, C, H/2, W/2), argmax (N, C, H/2, W/2): where the maximum came from, as an index
 * ih*W + iw into the (H, W) plane (PyTorch's return_indices). Ties go to the first maximum in row-major
 * window order (top-left, top-right, bottom-left, bottom-right), and a NaN in a window wins (it propagates;
 * the last NaN if there are several), both as in PyTorch's CPU kernel. */
void maxpool2_forward(const float *x, float *y, int32_t *argmax, int batch, int channels, int height,
                      int width);

/* Pooling's backward is routing: each output's gradient goes to the one input that won the max; every
 * other input gets 0. dy (N, C, H/2, W/2), argmax as above, dx (N, C, H, W). */
void maxpool2_backward(const float *dy, const int32_t *argmax, float *dx, int batch, int channels, int height,
                       int width);

/* ---- Inverted dropout ------------------------------------------------------------------------------------ */

/* mask[i] = 1 (keep) with probability 1 - p, else 0; n values. p in [0, 1). */
void dropout_make_mask(Rng *rng, float p, uint8_t *mask, size_t n);

/* Training: y = x * mask / (1 - p). Scaling the kept values by 1/(1-p) keeps the expected value of every
 * output equal to x, so at test time dropout is simply skipped (y = x). x, mask, y: (n). */
void dropout_forward(const float *x, const uint8_t *mask, float p, float *y, size_t n);

/* dx = dy * mask / (1 - p). dy, mask, dx: (n). */
void dropout_backward(const float *dy, const uint8_t *mask, float p, float *dx, size_t n);

/* ---- ReLU over large tensors ------------------------------------------------------------------------------ */

/* Chapter 01's relu_forward / relu_backward, element for element (NaN in, NaN out; relu'(0) = 0), written as
 * branch-free selects in this file so that GCC inlines and vectorises them: chapter 01's loops call a function
 * per element, which costs several milliseconds per training step on conv2's 2.4 million activations. The test
 * ch03.relu.matches_ch01 checks both give the same bits, extremes included. x, y, dy, dx: (n). */
void relu_forward_vectorized(const float *x, float *y, size_t n);
void relu_backward_vectorized(const float *x, const float *dy, float *dx, size_t n);

/* ---- Flatten --------------------------------------------------------------------------------------------- */

/* Flatten (N, C, H, W) -> (N, C*H*W) moves no data: in row-major order the C*H*W values of one image are
 * already contiguous, so the same pointer is read as a matrix with one row per image. This returns that row
 * length (the fc layer's input size). */
size_t flatten_features(int channels, int height, int width);

/* ---- Fully connected layer on GEMM ----------------------------------------------------------------------- */

/* The same layer as chapter 02's linear_forward / linear_backward (Y = X W^T + b, W stored (out, in) as in
 * nn.Linear), computed with sgemm: chapter 02's loops run the 9216 -> 128 layer about 50x slower.
 * x (batch, in), weight (out, in), bias (out), y (batch, out). */
void linear_forward_gemm(const float *x, const float *weight, const float *bias, float *y, int batch, int in,
                         int out, GemmBackend backend);

/* dx = dy W (batch, in) (skipped when dx is NULL); dweight = dy^T x (out, in); dbias = column sums of dy (out). */
void linear_backward_gemm(const float *x, const float *weight, const float *dy, float *dx, float *dweight,
                          float *dbias, int batch, int in, int out, GemmBackend backend);

#endif
