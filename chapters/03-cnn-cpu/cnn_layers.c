/* cnn_layers.c — Chapter 03: max pooling, inverted dropout, flatten and the GEMM fully connected layer (see
 * cnn_layers.h and README.md).
 */
#include "cnn_layers.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

int maxpool2_output_size(int in)
{
    return in / 2;
}

void maxpool2_forward(const float *x, float *y, int32_t *argmax, int batch, int channels, int height,
                      int width)
{
    /* BEGIN EXERCISE ch03.maxpool2_forward: for every output (i, j) scan the window rows 2i..2i+1, columns 2j..2j+1 in row-major order; keep the first strictly larger value (or a NaN); write the max and its index ih*W + iw (about 30 lines) | zh: 对每个输出 (i, j) 按行优先顺序扫描窗口的第 2i..2i+1 行、第 2j..2j+1 列；保留第一个严格更大的值（或 NaN）；写出最大值及其下标 ih*W + iw（约 30 行） */
    const int out_h = maxpool2_output_size(height), out_w = maxpool2_output_size(width);
#pragma omp parallel for schedule(static)
    for (int plane = 0; plane < batch * channels; ++plane) {
        const float *x_plane = x + (size_t)plane * height * width; /* (H, W) */
        float *y_plane = y + (size_t)plane * out_h * out_w; /* (H/2, W/2) */
        int32_t *arg_plane = argmax + (size_t)plane * out_h * out_w; /* (H/2, W/2) */
        for (int i = 0; i < out_h; ++i) {
            for (int j = 0; j < out_w; ++j) {
                int best_index = (2 * i) * width + 2 * j; /* the window's top-left pixel */
                float best = x_plane[best_index];
                for (int di = 0; di < 2; ++di) {
                    for (int dj = 0; dj < 2; ++dj) {
                        const int index = (2 * i + di) * width + (2 * j + dj);
                        const float v = x_plane[index];
                        /* Strictly greater: on a tie the earlier pixel stays. A NaN always takes over (so
                         * NaN propagates), the same test as PyTorch's CPU kernel. Written as selects, not an
                         * `if`: the compiler makes them branch-free, and on real data a branch here would be
                         * mispredicted about as often as not. (v != v is true only for NaN.) */
                        const bool take = (v > best) | (v != v);
                        best = take ? v : best;
                        best_index = take ? index : best_index;
                    }
                }
                y_plane[i * out_w + j] = best;
                arg_plane[i * out_w + j] = best_index;
            }
        }
    }
    /* END EXERCISE */
}

void maxpool2_backward(const float *dy, const int32_t *argmax, float *dx, int batch, int channels, int height,
                       int width)
{
    /* BEGIN EXERCISE ch03.maxpool2_backward: zero dx; for every output, add dy to dx at its argmax in the same (H, W) plane (about 12 lines) | zh: 把 dx 清零；对每个输出，把 dy 加到同一 (H, W) 平面内其 argmax 处的 dx 上（约 12 行） */
    const int out_h = maxpool2_output_size(height), out_w = maxpool2_output_size(width);
    memset(dx, 0, (size_t)batch * channels * height * width * sizeof *dx);
#pragma omp parallel for schedule(static)
    for (int plane = 0; plane < batch * channels; ++plane) {
        float *dx_plane = dx + (size_t)plane * height * width;
        const float *dy_plane = dy + (size_t)plane * out_h * out_w;
        const int32_t *arg_plane = argmax + (size_t)plane * out_h * out_w;
        for (int k = 0; k < out_h * out_w; ++k) {
            dx_plane[arg_plane[k]] += dy_plane[k]; /* += : with stride 2 windows never overlap, but be safe */
        }
    }
    /* END EXERCISE */
}

void dropout_make_mask(Rng *rng, float p, uint8_t *mask, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        mask[i] = rng_uniform(rng) >= p ? 1 : 0;
    }
}

void dropout_forward(const float *x, const uint8_t *mask, float p, float *y, size_t n)
{
    /* BEGIN EXERCISE ch03.dropout_forward: y[i] = x[i] * (mask[i] ? 1 / (1 - p) : 0) (about 5 lines) | zh: y[i] = x[i] * (mask[i] ? 1 / (1 - p) : 0)（约 5 行） */
    const float scale = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; ++i) {
        /* x times the mask's factor (1/(1-p) or 0), as PyTorch computes it: a multiply, not a branch, so the
         * compiler vectorises the loop (and, as in PyTorch, a dropped NaN or infinity gives NaN). */
        y[i] = x[i] * (mask[i] ? scale : 0.0f);
    }
    /* END EXERCISE */
}

void dropout_backward(const float *dy, const uint8_t *mask, float p, float *dx, size_t n)
{
    /* BEGIN EXERCISE ch03.dropout_backward: dx[i] = dy[i] * (mask[i] ? 1 / (1 - p) : 0) (about 5 lines) | zh: dx[i] = dy[i] * (mask[i] ? 1 / (1 - p) : 0)（约 5 行） */
    const float scale = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; ++i) {
        dx[i] = dy[i] * (mask[i] ? scale : 0.0f); /* a multiply, not a branch, as in dropout_forward */
    }
    /* END EXERCISE */
}

void relu_forward_vectorized(const float *x, float *y, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        y[i] = x[i] < 0.0f ? 0.0f : x[i]; /* a NaN fails the test and passes through, as in chapter 01 */
    }
}

void relu_backward_vectorized(const float *x, const float *dy, float *dx, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        /* relu'(x): 1 for x > 0, 0 for x <= 0, NaN for NaN (x == x is false only for NaN) */
        const float derivative = x[i] > 0.0f ? 1.0f : (x[i] == x[i] ? 0.0f : x[i]);
        dx[i] = dy[i] * derivative;
    }
}

size_t flatten_features(int channels, int height, int width)
{
    return (size_t)channels * height * width;
}

void linear_forward_gemm(const float *x, const float *weight, const float *bias, float *y, int batch, int in,
                         int out, GemmBackend backend)
{
    /* BEGIN EXERCISE ch03.linear_forward_gemm: y (batch, out) = x (batch, in) · weight^T with sgemm_parallel (transpose B), then add bias[o] to every row (about 8 lines) | zh: 用 sgemm_parallel（B 转置）算 y (batch, out) = x (batch, in) · weight^T，再给每一行加上 bias[o]（约 8 行） */
    sgemm_parallel(backend, false, true, batch, out, in, 1.0f, x, in, weight, in, 0.0f, y, out);
    for (int b = 0; b < batch; ++b) {
        for (int o = 0; o < out; ++o) {
            y[(size_t)b * out + o] += bias[o];
        }
    }
    /* END EXERCISE */
}

void linear_backward_gemm(const float *x, const float *weight, const float *dy, float *dx, float *dweight,
                          float *dbias, int batch, int in, int out, GemmBackend backend)
{
    /* BEGIN EXERCISE ch03.linear_backward_gemm: dweight = dy^T · x (transpose A); dx = dy · weight (when dx is not NULL); dbias = column sums of dy (about 15 lines) | zh: dweight = dy^T · x（A 转置）；dx = dy · weight（dx 不为 NULL 时）；dbias = dy 的按列求和（约 15 行） */
    sgemm_parallel(backend, true, false, out, in, batch, 1.0f, dy, out, x, in, 0.0f, dweight, in);
    if (dx != NULL) {
        sgemm_parallel(backend, false, false, batch, in, out, 1.0f, dy, out, weight, in, 0.0f, dx, in);
    }
    for (int o = 0; o < out; ++o) {
        float sum = 0.0f;
        for (int b = 0; b < batch; ++b) {
            sum += dy[(size_t)b * out + o];
        }
        dbias[o] = sum;
    }
    /* END EXERCISE */
}
