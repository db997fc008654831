/* conv.c — Chapter 03: convolution forward and backward, direct and im2col + GEMM (see conv.h, README.md).
 *
 * The direct versions are the formula of conv.h written as loops: easy to check, slow (the innermost loop
 * is a 3- or 9-element dot product with bounds checks). The im2col versions copy every input window into a
 * column of a matrix once, and hand the multiply-adds to a GEMM, where all the speed is.
 */
#include "conv.h"

#include <stdlib.h>
#include <string.h>

#include "course_error.h"
#include "threads.h"

int conv2d_output_size(int in, int kernel, int padding, int stride)
{
    /* BEGIN EXERCISE ch03.conv2d_output_size: (in + 2*padding - kernel) / stride + 1; 0 when stride < 1, padding < 0 or the kernel does not fit (about 4 lines) | zh: (in + 2*padding - kernel) / stride + 1；stride < 1、padding < 0 或卷积核放不下时为 0（约 4 行） */
    if (stride < 1 || padding < 0 || in + 2 * padding < kernel) {
        return 0;
    }
    return (in + 2 * padding - kernel) / stride + 1;
    /* END EXERCISE */
}

int conv2d_shape_check(const Conv2dShape *s, const char *name, CourseError *err)
{
    if (s->batch < 1 || s->in_channels < 1 || s->in_height < 1 || s->in_width < 1 || s->out_channels < 1 ||
        s->kernel_height < 1 || s->kernel_width < 1) {
        return error_set(err, name,
                         "every size must be at least 1 (batch %d, channels %d -> %d, image %dx%d, kernel %dx%d)",
                         s->batch, s->in_channels, s->out_channels, s->in_height, s->in_width, s->kernel_height,
                         s->kernel_width);
    }
    if (s->padding < 0) {
        return error_set(err, name, "padding %d is negative: zero padding adds pixels around the image, it cannot take "
                         "them away (PyTorch refuses it too: \"negative padding is not supported\")", s->padding);
    }
    if (s->stride < 1) {
        return error_set(err, name, "stride %d: the step between outputs must be at least 1", s->stride);
    }
    if (conv2d_out_height(s) < 1 || conv2d_out_width(s) < 1) {
        return error_set(err, name, "a %dx%d kernel does not fit in a %dx%d image with padding %d", s->kernel_height,
                         s->kernel_width, s->in_height, s->in_width, s->padding);
    }
    return 0;
}

int conv2d_out_height(const Conv2dShape *s)
{
    return conv2d_output_size(s->in_height, s->kernel_height, s->padding, s->stride);
}

int conv2d_out_width(const Conv2dShape *s)
{
    return conv2d_output_size(s->in_width, s->kernel_width, s->padding, s->stride);
}

size_t conv2d_input_size(const Conv2dShape *s)
{
    return (size_t)s->batch * s->in_channels * s->in_height * s->in_width;
}

size_t conv2d_weight_size(const Conv2dShape *s)
{
    return (size_t)s->out_channels * s->in_channels * s->kernel_height * s->kernel_width;
}

size_t conv2d_output_size_total(const Conv2dShape *s)
{
    return (size_t)s->batch * s->out_channels * conv2d_out_height(s) * conv2d_out_width(s);
}

size_t conv2d_cols_size(const Conv2dShape *s)
{
    return (size_t)s->in_channels * s->kernel_height * s->kernel_width * conv2d_out_height(s) *
           conv2d_out_width(s);
}

void conv2d_forward_direct(const Conv2dShape *s, const float *x, const float *w, const float *b, float *y)
{
    /* BEGIN EXERCISE ch03.conv2d_forward_direct: for every (n, oc, oh, ow): start from b[oc], add w[oc][c][kh][kw] * x[n][c][ih][iw] with ih = oh*stride + kh - padding (skip positions outside the image) (about 30 lines) | zh: 对每个 (n, oc, oh, ow)：从 b[oc] 开始，累加 w[oc][c][kh][kw] * x[n][c][ih][iw]，其中 ih = oh*stride + kh - padding（跳过图像外的位置）（约 30 行） */
    const int C = s->in_channels, H = s->in_height, W = s->in_width;
    const int OC = s->out_channels, KH = s->kernel_height, KW = s->kernel_width;
    const int OH = conv2d_out_height(s), OW = conv2d_out_width(s);
#pragma omp parallel for schedule(static)
    for (int n = 0; n < s->batch; ++n) {
        for (int oc = 0; oc < OC; ++oc) {
            float *y_plane = y + ((size_t)n * OC + oc) * OH * OW; /* (OH, OW) */
            for (int oh = 0; oh < OH; ++oh) {
                for (int ow = 0; ow < OW; ++ow) {
                    float sum = b[oc];
                    for (int c = 0; c < C; ++c) {
                        const float *x_plane = x + ((size_t)n * C + c) * H * W; /* (H, W) */
                        const float *w_kernel = w + ((size_t)oc * C + c) * KH * KW; /* (KH, KW) */
                        for (int kh = 0; kh < KH; ++kh) {
                            const int ih = oh * s->stride + kh - s->padding;
                            if (ih < 0 || ih >= H) {
                                continue; /* a padding row: contributes 0 */
                            }
                            for (int kw = 0; kw < KW; ++kw) {
                                const int iw = ow * s->stride + kw - s->padding;
                                if (iw >= 0 && iw < W) {
                                    sum += w_kernel[kh * KW + kw] * x_plane[(size_t)ih * W + iw];
                                }
                            }
                        }
                    }
                    y_plane[(size_t)oh * OW + ow] = sum;
                }
            }
        }
    }
    /* END EXERCISE */
}

void conv2d_backward_input_direct(const Conv2dShape *s, const float *w, const float *dy, float *dx)
{
    /* BEGIN EXERCISE ch03.conv2d_backward_input_direct: zero dx; for every (n, oc, oh, ow, c, kh, kw) with (ih, iw) inside the image: dx[n][c][ih][iw] += w[oc][c][kh][kw] * dy[n][oc][oh][ow] (about 30 lines) | zh: 把 dx 清零；对每个 (n, oc, oh, ow, c, kh, kw)，当 (ih, iw) 在图像内时：dx[n][c][ih][iw] += w[oc][c][kh][kw] * dy[n][oc][oh][ow]（约 30 行） */
    const int C = s->in_channels, H = s->in_height, W = s->in_width;
    const int OC = s->out_channels, KH = s->kernel_height, KW = s->kernel_width;
    const int OH = conv2d_out_height(s), OW = conv2d_out_width(s);
    memset(dx, 0, conv2d_input_size(s) * sizeof *dx);
    /* Parallel over images: image n's outputs only ever scatter into image n's dx, so threads never collide. */
#pragma omp parallel for schedule(static)
    for (int n = 0; n < s->batch; ++n) {
        for (int oc = 0; oc < OC; ++oc) {
            const float *dy_plane = dy + ((size_t)n * OC + oc) * OH * OW; /* (OH, OW) */
            for (int oh = 0; oh < OH; ++oh) {
                for (int ow = 0; ow < OW; ++ow) {
                    const float g = dy_plane[(size_t)oh * OW + ow];
                    for (int c = 0; c < C; ++c) {
                        float *dx_plane = dx + ((size_t)n * C + c) * H * W; /* (H, W) */
                        const float *w_kernel = w + ((size_t)oc * C + c) * KH * KW; /* (KH, KW) */
                        for (int kh = 0; kh < KH; ++kh) {
                            const int ih = oh * s->stride + kh - s->padding;
                            if (ih < 0 || ih >= H) {
                                continue;
                            }
                            for (int kw = 0; kw < KW; ++kw) {
                                const int iw = ow * s->stride + kw - s->padding;
                                if (iw >= 0 && iw < W) {
                                    dx_plane[(size_t)ih * W + iw] += w_kernel[kh * KW + kw] * g;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    /* END EXERCISE */
}

void conv2d_backward_weight_direct(const Conv2dShape *s, const float *x, const float *dy, float *dw)
{
    /* BEGIN EXERCISE ch03.conv2d_backward_weight_direct: dw[oc][c][kh][kw] = sum over n, oh, ow of x[n][c][ih][iw] * dy[n][oc][oh][ow] (inside the image only) (about 30 lines) | zh: dw[oc][c][kh][kw] = 对 n, oh, ow 求和 x[n][c][ih][iw] * dy[n][oc][oh][ow]（只算图像内的位置）（约 30 行） */
    const int C = s->in_channels, H = s->in_height, W = s->in_width;
    const int OC = s->out_channels, KH = s->kernel_height, KW = s->kernel_width;
    const int OH = conv2d_out_height(s), OW = conv2d_out_width(s);
    /* Parallel over output channels: each thread owns whole rows of dw, so no two threads add to one entry. */
#pragma omp parallel for schedule(static)
    for (int oc = 0; oc < OC; ++oc) {
        for (int c = 0; c < C; ++c) {
            for (int kh = 0; kh < KH; ++kh) {
                for (int kw = 0; kw < KW; ++kw) {
                    float sum = 0.0f;
                    for (int n = 0; n < s->batch; ++n) {
                        const float *x_plane = x + ((size_t)n * C + c) * H * W; /* (H, W) */
                        const float *dy_plane = dy + ((size_t)n * OC + oc) * OH * OW; /* (OH, OW) */
                        for (int oh = 0; oh < OH; ++oh) {
                            const int ih = oh * s->stride + kh - s->padding;
                            if (ih < 0 || ih >= H) {
                                continue;
                            }
                            for (int ow = 0; ow < OW; ++ow) {
                                const int iw = ow * s->stride + kw - s->padding;
                                if (iw >= 0 && iw < W) {
                                    sum += x_plane[(size_t)ih * W + iw] * dy_plane[(size_t)oh * OW + ow];
                                }
                            }
                        }
                    }
                    dw[(((size_t)oc * C + c) * KH + kh) * KW + kw] = sum;
                }
            }
        }
    }
    /* END EXERCISE */
}

void conv2d_backward_bias(const Conv2dShape *s, const float *dy, float *db)
{
    /* BEGIN EXERCISE ch03.conv2d_backward_bias: db[oc] = sum of dy[n][oc][oh][ow] over n, oh, ow, accumulated in double (about 20 lines) | zh: db[oc] = dy[n][oc][oh][ow] 对 n, oh, ow 的和，用 double 累加（约 20 行） */
    const int OC = s->out_channels;
    const size_t plane = (size_t)conv2d_out_height(s) * conv2d_out_width(s);
#pragma omp parallel for schedule(static)
    for (int oc = 0; oc < OC; ++oc) {
        /* double: up to N*OH*OW = 36864 terms in the network's conv2. Eight partial sums (lane i takes the
         * elements i, i+8, i+16, ... of each plane) instead of one: the compiler may not reorder a sum by
         * itself, but eight independent ones it turns into vector additions. */
        double lane[8] = {0};
        for (int n = 0; n < s->batch; ++n) {
            const float *dy_plane = dy + ((size_t)n * OC + oc) * plane;
            size_t i = 0;
            for (; i + 8 <= plane; i += 8) {
                for (int j = 0; j < 8; ++j) {
                    lane[j] += dy_plane[i + j];
                }
            }
            for (; i < plane; ++i) {
                lane[0] += dy_plane[i];
            }
        }
        db[oc] = (float)(((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7])));
    }
    /* END EXERCISE */
}

/* The output columns ow whose input column iw = ow*stride + offset lies inside [0, width): [*begin, *end).
 * Computing the range once per row lets im2col and col2im run their inner loops without a bounds test per
 * element (the test would stop the compiler from vectorising the copy). */
static void valid_columns(int offset, int stride, int width, int out_width, int *begin, int *end)
{
    /* smallest ow with ow*stride + offset >= 0, and smallest ow with ow*stride + offset >= width */
    int first = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    int last = width - offset <= 0 ? 0 : (width - offset + stride - 1) / stride;
    *begin = first < out_width ? first : out_width;
    *end = last < out_width ? last : out_width;
    if (*end < *begin) {
        *end = *begin;
    }
}

/* With stride 1 the input pixels of one row of cols are contiguous in x, and so are the pixels col2im adds
 * into: the two helpers below are those inner loops. `restrict` promises the compiler that the two rows do
 * not overlap, so it may use vector loads and stores (without it, a store to dst might change src). Stride 1
 * is every convolution of the network; other strides take the general loop. */
static void copy_row(float *restrict dst, const float *restrict src, int begin, int end)
{
    for (int i = begin; i < end; ++i) {
        dst[i] = src[i];
    }
}

static void add_row(float *restrict dst, const float *restrict src, int begin, int end)
{
    for (int i = begin; i < end; ++i) {
        dst[i] += src[i];
    }
}

void conv2d_im2col(const Conv2dShape *s, const float *x_image, float *cols)
{
    /* BEGIN EXERCISE ch03.conv2d_im2col: for each row r = (c*KH + kh)*KW + kw and output pixel (oh, ow): cols[r][oh*OW + ow] = x_image[c][ih][iw], or 0 in the padding (about 30 lines) | zh: 对每一行 r = (c*KH + kh)*KW + kw 和每个输出像素 (oh, ow)：cols[r][oh*OW + ow] = x_image[c][ih][iw]，在填充区为 0（约 30 行） */
    const int C = s->in_channels, H = s->in_height, W = s->in_width;
    const int KH = s->kernel_height, KW = s->kernel_width;
    const int OH = conv2d_out_height(s), OW = conv2d_out_width(s);
    for (int c = 0; c < C; ++c) {
        const float *x_plane = x_image + (size_t)c * H * W; /* (H, W) */
        for (int kh = 0; kh < KH; ++kh) {
            for (int kw = 0; kw < KW; ++kw) {
                float *row = cols + ((size_t)(c * KH + kh) * KW + kw) * OH * OW; /* (OH*OW) */
                const int offset = kw - s->padding; /* iw = ow*stride + offset */
                int ow_begin, ow_end;
                valid_columns(offset, s->stride, W, OW, &ow_begin, &ow_end);
                for (int oh = 0; oh < OH; ++oh) {
                    const int ih = oh * s->stride + kh - s->padding;
                    float *out = row + (size_t)oh * OW;
                    if (ih < 0 || ih >= H) {
                        for (int ow = 0; ow < OW; ++ow) {
                            out[ow] = 0.0f; /* a whole row of padding */
                        }
                        continue;
                    }
                    const float *x_row = x_plane + (size_t)ih * W;
                    for (int ow = 0; ow < ow_begin; ++ow) {
                        out[ow] = 0.0f; /* left padding */
                    }
                    if (s->stride == 1) {
                        copy_row(out, x_row + offset, ow_begin, ow_end); /* a contiguous run: vectorised */
                    } else {
                        for (int ow = ow_begin; ow < ow_end; ++ow) {
                            out[ow] = x_row[ow * s->stride + offset];
                        }
                    }
                    for (int ow = ow_end; ow < OW; ++ow) {
                        out[ow] = 0.0f; /* right padding */
                    }
                }
            }
        }
    }
    /* END EXERCISE */
}

void conv2d_col2im(const Conv2dShape *s, const float *cols, float *dx_image)
{
    /* BEGIN EXERCISE ch03.conv2d_col2im: zero dx_image; for each row (c, kh, kw) and output pixel (oh, ow) inside the image: dx_image[c][ih][iw] += cols[r][oh*OW + ow] (about 30 lines) | zh: 把 dx_image 清零；对每一行 (c, kh, kw) 和每个落在图像内的输出像素 (oh, ow)：dx_image[c][ih][iw] += cols[r][oh*OW + ow]（约 30 行） */
    const int C = s->in_channels, H = s->in_height, W = s->in_width;
    const int KH = s->kernel_height, KW = s->kernel_width;
    const int OH = conv2d_out_height(s), OW = conv2d_out_width(s);
    memset(dx_image, 0, (size_t)C * H * W * sizeof *dx_image);
    for (int c = 0; c < C; ++c) {
        float *dx_plane = dx_image + (size_t)c * H * W; /* (H, W) */
        for (int kh = 0; kh < KH; ++kh) {
            for (int kw = 0; kw < KW; ++kw) {
                const float *row = cols + ((size_t)(c * KH + kh) * KW + kw) * OH * OW; /* (OH*OW) */
                const int offset = kw - s->padding;
                int ow_begin, ow_end;
                valid_columns(offset, s->stride, W, OW, &ow_begin, &ow_end);
                for (int oh = 0; oh < OH; ++oh) {
                    const int ih = oh * s->stride + kh - s->padding;
                    if (ih < 0 || ih >= H) {
                        continue; /* gradient that flowed into the padding goes nowhere */
                    }
                    float *dx_row = dx_plane + (size_t)ih * W;
                    const float *in = row + (size_t)oh * OW;
                    if (s->stride == 1) {
                        add_row(dx_row + offset, in, ow_begin, ow_end);
                    } else {
                        for (int ow = ow_begin; ow < ow_end; ++ow) {
                            dx_row[ow * s->stride + offset] += in[ow];
                        }
                    }
                }
            }
        }
    }
    /* END EXERCISE */
}

void conv2d_forward_im2col_image(const Conv2dShape *s, const float *x_image, const float *w, const float *b,
                                 float *y_image, float *cols, GemmBackend backend)
{
    /* BEGIN EXERCISE ch03.conv2d_forward_im2col: im2col x_image into cols; fill row oc of y_image (OC, OH*OW) with b[oc]; then y_image += w (OC, C*KH*KW) · cols with sgemm (beta = 1) (about 15 lines) | zh: 把 x_image 做 im2col 得到 cols；用 b[oc] 填满 y_image (OC, OH*OW) 的第 oc 行；再用 sgemm（beta = 1）做 y_image += w (OC, C*KH*KW) · cols（约 15 行） */
    const int OC = s->out_channels;
    const int K = s->in_channels * s->kernel_height * s->kernel_width; /* rows of cols: C*KH*KW */
    const int P = conv2d_out_height(s) * conv2d_out_width(s); /* columns of cols: OH*OW */
    conv2d_im2col(s, x_image, cols);
    /* Start every row oc of y_image at b[oc] and let the GEMM add to it (beta = 1): one pass over y fewer
     * than computing the product first (beta = 0 zeroes it) and adding the bias after. */
    for (int oc = 0; oc < OC; ++oc) {
        for (int p = 0; p < P; ++p) {
            y_image[(size_t)oc * P + p] = b[oc];
        }
    }
    sgemm(backend, false, false, OC, P, K, 1.0f, w, K, cols, P, 1.0f, y_image, P);
    /* END EXERCISE */
}

void conv2d_forward_im2col(const Conv2dShape *s, const float *x, const float *w, const float *b, float *y,
                           GemmBackend backend)
{
    const size_t cols_size = conv2d_cols_size(s);
    const size_t image_size = (size_t)s->in_channels * s->in_height * s->in_width; /* C*H*W */
    const size_t y_image_size = (size_t)s->out_channels * conv2d_out_height(s) * conv2d_out_width(s);
    float *cols_all = xmalloc((size_t)parallel_max_threads() * cols_size * sizeof *cols_all); /* one per thread */
#pragma omp parallel for schedule(static)
    for (int n = 0; n < s->batch; ++n) {
        float *cols = cols_all + (size_t)parallel_thread_index() * cols_size; /* (C*KH*KW, OH*OW) */
        conv2d_forward_im2col_image(s, x + (size_t)n * image_size, w, b, y + (size_t)n * y_image_size, cols, backend);
    }
    free(cols_all);
}

void conv2d_backward_im2col_image(const Conv2dShape *s, const float *x_image, const float *w,
                                  const float *dy_image, float *dx_image, float *dw_sum, float *cols, float *dcols,
                                  GemmBackend backend)
{
    /* BEGIN EXERCISE ch03.conv2d_backward_im2col: cols = im2col(x_image); dw_sum (OC, K) += dy_image (OC, P) · cols^T (sgemm, beta = 1); unless dx_image is NULL: dcols = w^T · dy_image (beta = 0), then col2im into dx_image (about 15 lines) | zh: cols = im2col(x_image)；dw_sum (OC, K) += dy_image (OC, P) · cols^T（sgemm，beta = 1）；除非 dx_image 为 NULL：dcols = w^T · dy_image（beta = 0），再 col2im 到 dx_image（约 15 行） */
    const int OC = s->out_channels;
    const int K = s->in_channels * s->kernel_height * s->kernel_width;
    const int P = conv2d_out_height(s) * conv2d_out_width(s);
    conv2d_im2col(s, x_image, cols);
    /* dw_sum (OC, K) += dy_image (OC, P) · cols^T (P, K) */
    sgemm(backend, false, true, OC, K, P, 1.0f, dy_image, P, cols, P, 1.0f, dw_sum, K);
    if (dx_image != NULL) {
        /* dcols (K, P) = w^T (K, OC) · dy_image (OC, P) */
        sgemm(backend, true, false, K, P, OC, 1.0f, w, K, dy_image, P, 0.0f, dcols, P);
        conv2d_col2im(s, dcols, dx_image);
    }
    /* END EXERCISE */
}

void conv2d_backward_im2col(const Conv2dShape *s, const float *x, const float *w, const float *dy, float *dx,
                            float *dw, float *db, GemmBackend backend)
{
    const int threads = parallel_max_threads();
    const size_t cols_size = conv2d_cols_size(s);
    const size_t image_size = (size_t)s->in_channels * s->in_height * s->in_width;
    const size_t dy_image_size = (size_t)s->out_channels * conv2d_out_height(s) * conv2d_out_width(s);
    const size_t dw_size = conv2d_weight_size(s);
    float *cols_all = xmalloc((size_t)threads * cols_size * sizeof *cols_all); /* (threads, K, P) */
    float *dcols_all = xmalloc((size_t)threads * cols_size * sizeof *dcols_all); /* (threads, K, P) */
    /* Every image adds to all of dw: each thread sums into its own copy, and the copies are added after the
     * loop in thread order (no locks, and the same result for the same thread count). */
    float *dw_partial = xcalloc((size_t)threads * dw_size, sizeof *dw_partial); /* (threads, OC, K) */
#pragma omp parallel for schedule(static)
    for (int n = 0; n < s->batch; ++n) {
        const int t = parallel_thread_index();
        conv2d_backward_im2col_image(s, x + (size_t)n * image_size, w, dy + (size_t)n * dy_image_size,
                                     dx != NULL ? dx + (size_t)n * image_size : NULL, dw_partial + (size_t)t * dw_size,
                                     cols_all + (size_t)t * cols_size, dcols_all + (size_t)t * cols_size, backend);
    }
    for (size_t i = 0; i < dw_size; ++i) {
        float sum = 0.0f;
        for (int t = 0; t < threads; ++t) {
            sum += dw_partial[(size_t)t * dw_size + i];
        }
        dw[i] = sum;
    }
    conv2d_backward_bias(s, dy, db);
    free(cols_all);
    free(dcols_all);
    free(dw_partial);
}
