/* conv.c — Chapter 03: convolution forward and backward, direct and im2col + GEMM (see conv.h, README.md).
 *
 * The direct versions are the formula of conv.h written as loops: easy to check, slow (the innermost loop
 * is a 3- or 9-element dot product with bounds checks). The im2col versions copy every input window into a
 * column of a matrix once, and hand the multiply-adds to a GEMM, where all the speed is.
 */
#include "conv.h"

#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "course_error.h"

int conv2d_output_size(int in, int kernel, int padding, int stride)
{
    /* BEGIN EXERCISE ch03.conv2d_output_size: (in + 2*padding - kernel) / stride + 1; 0 when stride < 1 or the kernel does not fit (about 4 lines) */
    if (stride < 1 || in + 2 * padding < kernel) {
        return 0;
    }
    return (in + 2 * padding - kernel) / stride + 1;
    /* END EXERCISE */
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
    /* BEGIN EXERCISE ch03.conv2d_forward_direct: for every (n, oc, oh, ow): start from b[oc], add w[oc][c][kh][kw] * x[n][c][ih][iw] with ih = oh*stride + kh - padding (skip positions outside the image) (about 30 lines) */
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
    /* BEGIN EXERCISE ch03.conv2d_backward_input_direct: zero dx; for every (n, oc, oh, ow, c, kh, kw) with (ih, iw) inside the image: dx[n][c][ih][iw] += w[oc][c][kh][kw] * dy[n][oc][oh][ow] (about 30 lines) */
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
    /* BEGIN EXERCISE ch03.conv2d_backward_weight_direct: dw[oc][c][kh][kw] = sum over n, oh, ow of x[n][c][ih][iw] * dy[n][oc][oh][ow] (inside the image only) (about 30 lines) */
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
    /* BEGIN EXERCISE ch03.conv2d_backward_bias: db[oc] = sum of dy[n][oc][oh][ow] over n, oh, ow (about 12 lines) */
    const int OC = s->out_channels;
    const size_t plane = (size_t)conv2d_out_height(s) * conv2d_out_width(s);
#pragma omp parallel for schedule(static)
    for (int oc = 0; oc < OC; ++oc) {
        double sum = 0.0; /* double: up to N*OH*OW = 36864 terms in the network's conv2 */
        for (int n = 0; n < s->batch; ++n) {
            const float *dy_plane = dy + ((size_t)n * OC + oc) * plane;
            for (size_t i = 0; i < plane; ++i) {
                sum += dy_plane[i];
            }
        }
        db[oc] = (float)sum;
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

void conv2d_im2col(const Conv2dShape *s, const float *x_image, float *cols)
{
    /* BEGIN EXERCISE ch03.conv2d_im2col: for each row r = (c*KH + kh)*KW + kw and output pixel (oh, ow): cols[r][oh*OW + ow] = x_image[c][ih][iw], or 0 in the padding (about 25 lines) */
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
                    for (int ow = ow_begin; ow < ow_end; ++ow) {
                        out[ow] = x_row[ow * s->stride + offset];
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
    /* BEGIN EXERCISE ch03.conv2d_col2im: zero dx_image; for each row (c, kh, kw) and output pixel (oh, ow) inside the image: dx_image[c][ih][iw] += cols[r][oh*OW + ow] (about 25 lines) */
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
                    for (int ow = ow_begin; ow < ow_end; ++ow) {
                        dx_row[ow * s->stride + offset] += in[ow];
                    }
                }
            }
        }
    }
    /* END EXERCISE */
}

static int max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

void conv2d_forward_im2col(const Conv2dShape *s, const float *x, const float *w, const float *b, float *y,
                           GemmBackend backend)
{
    /* BEGIN EXERCISE ch03.conv2d_forward_im2col: per image n: im2col into this thread's buffer, y[n] (OC, OH*OW) = w (OC, C*KH*KW) · cols with sgemm, then add b[oc] to row oc (about 25 lines) */
    const int OC = s->out_channels;
    const int K = s->in_channels * s->kernel_height * s->kernel_width; /* rows of cols: C*KH*KW */
    const int P = conv2d_out_height(s) * conv2d_out_width(s); /* columns of cols: OH*OW */
    const size_t cols_size = conv2d_cols_size(s);
    const size_t image_size = (size_t)s->in_channels * s->in_height * s->in_width;
    float *cols_all = xmalloc((size_t)max_threads() * cols_size * sizeof *cols_all); /* one per thread */
#pragma omp parallel for schedule(static)
    for (int n = 0; n < s->batch; ++n) {
        float *cols = cols_all + (size_t)thread_id() * cols_size; /* (K, P) */
        float *y_image = y + (size_t)n * OC * P; /* (OC, P) */
        conv2d_im2col(s, x + (size_t)n * image_size, cols);
        sgemm(backend, false, false, OC, P, K, 1.0f, w, K, cols, P, 0.0f, y_image, P);
        for (int oc = 0; oc < OC; ++oc) {
            for (int p = 0; p < P; ++p) {
                y_image[(size_t)oc * P + p] += b[oc];
            }
        }
    }
    free(cols_all);
    /* END EXERCISE */
}

void conv2d_backward_im2col(const Conv2dShape *s, const float *x, const float *w, const float *dy, float *dx,
                            float *dw, float *db, GemmBackend backend)
{
    /* BEGIN EXERCISE ch03.conv2d_backward_im2col: per image: cols = im2col(x[n]); dw += dy[n] (OC, P) · cols^T (one partial dw per thread, summed at the end); dcols = w^T · dy[n], then col2im into dx[n] (skip when dx is NULL); db via conv2d_backward_bias (about 45 lines) */
    const int OC = s->out_channels;
    const int K = s->in_channels * s->kernel_height * s->kernel_width;
    const int P = conv2d_out_height(s) * conv2d_out_width(s);
    const size_t cols_size = conv2d_cols_size(s);
    const size_t image_size = (size_t)s->in_channels * s->in_height * s->in_width;
    const size_t dw_size = conv2d_weight_size(s);
    const int threads = max_threads();
    float *cols_all = xmalloc((size_t)threads * cols_size * sizeof *cols_all); /* (threads, K, P) */
    float *dcols_all = xmalloc((size_t)threads * cols_size * sizeof *dcols_all); /* (threads, K, P) */
    /* Every image adds to all of dw: each thread sums into its own copy, and the copies are added after the
     * loop (no locks, and the same result for the same thread count). */
    float *dw_partial = xcalloc((size_t)threads * dw_size, sizeof *dw_partial); /* (threads, OC, K) */
#pragma omp parallel for schedule(static)
    for (int n = 0; n < s->batch; ++n) {
        const int t = thread_id();
        float *cols = cols_all + (size_t)t * cols_size;
        const float *dy_image = dy + (size_t)n * OC * P; /* (OC, P) */
        conv2d_im2col(s, x + (size_t)n * image_size, cols);
        /* dw (OC, K) += dy_image (OC, P) · cols^T (P, K) */
        sgemm(backend, false, true, OC, K, P, 1.0f, dy_image, P, cols, P, 1.0f, dw_partial + (size_t)t * dw_size, K);
        if (dx != NULL) {
            float *dcols = dcols_all + (size_t)t * cols_size;
            /* dcols (K, P) = w^T (K, OC) · dy_image (OC, P) */
            sgemm(backend, true, false, K, P, OC, 1.0f, w, K, dy_image, P, 0.0f, dcols, P);
            conv2d_col2im(s, dcols, dx + (size_t)n * image_size);
        }
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
    /* END EXERCISE */
}
