/* conv.h — Chapter 03: 2-D convolution (as PyTorch's nn.Conv2d: a cross-correlation), forward and backward,
 * in two versions the lesson compares: the direct loop nest, and im2col + GEMM.
 *
 * Layout NCHW, row-major, shapes beside every array:
 *   x  (N, C, H, W)         input
 *   w  (OC, C, KH, KW)      weight
 *   b  (OC)                 bias
 *   y  (N, OC, OH, OW)      output, OH = (H + 2*padding - KH) / stride + 1 (integer division), same for OW
 *
 *   y[n][oc][oh][ow] = b[oc] + sum over c, kh, kw of
 *                      w[oc][c][kh][kw] * x[n][c][oh*stride + kh - padding][ow*stride + kw - padding]
 *   (x outside the image counts as 0: zero padding)
 *
 * The backward functions OVERWRITE their outputs (dx, dw, db), as chapter 02's do.
 * Build and test: cmake --build build && ctest --test-dir build -L ch03 (lesson: chapters/03-cnn-cpu/README.md)
 */
#ifndef CH03_CONV_H
#define CH03_CONV_H

#include <stdbool.h>
#include <stddef.h>

#include "course_error.h"
#include "gemm.h"

typedef struct Conv2dShape {
    int batch; /* N */
    int in_channels; /* C */
    int in_height, in_width; /* H, W */
    int out_channels; /* OC */
    int kernel_height, kernel_width; /* KH, KW */
    int padding; /* zeros added on every side */
    int stride; /* step between neighbouring outputs, in input pixels */
} Conv2dShape;

/* (in + 2*padding - kernel) / stride + 1, or 0 when the kernel does not fit (in + 2*padding < kernel), when
 * stride < 1, or when padding < 0 (PyTorch's F.conv2d refuses a negative padding: "negative padding is not
 * supported"). */
int conv2d_output_size(int in, int kernel, int padding, int stride);

/* 0 when PyTorch would accept the shape and it leaves at least one output pixel; otherwise -1, with err saying
 * "<name>: <problem>": a size below 1, a negative padding, a stride below 1, or a kernel that does not fit. */
int conv2d_shape_check(const Conv2dShape *s, const char *name, CourseError *err);

/* OH and OW of a shape. */
int conv2d_out_height(const Conv2dShape *s);
int conv2d_out_width(const Conv2dShape *s);

/* Element counts of x, w, y, and of one image's im2col matrix (C*KH*KW rows, OH*OW columns). */
size_t conv2d_input_size(const Conv2dShape *s);
size_t conv2d_weight_size(const Conv2dShape *s);
size_t conv2d_output_size_total(const Conv2dShape *s);
size_t conv2d_cols_size(const Conv2dShape *s);

/* ---- Direct loop nest ------------------------------------------------------------------------------------ */

/* y = conv(x, w) + b, the formula above as seven nested loops. */
void conv2d_forward_direct(const Conv2dShape *s, const float *x, const float *w, const float *b, float *y);

/* dx[n][c][ih][iw] = sum of w[oc][c][kh][kw] * dy[n][oc][oh][ow] over every (oc, oh, ow, kh, kw) whose window
 * put (ih, iw) at kernel position (kh, kw): each output scatters its gradient back through the same weights
 * it gathered with. dx (N, C, H, W). */
void conv2d_backward_input_direct(const Conv2dShape *s, const float *w, const float *dy, float *dx);

/* dw[oc][c][kh][kw] = sum over n, oh, ow of x[n][c][oh*stride + kh - padding][...] * dy[n][oc][oh][ow].
 * dw (OC, C, KH, KW). */
void conv2d_backward_weight_direct(const Conv2dShape *s, const float *x, const float *dy, float *dw);

/* db[oc] = sum over n, oh, ow of dy[n][oc][oh][ow]. db (OC). (Used by both versions.) */
void conv2d_backward_bias(const Conv2dShape *s, const float *dy, float *db);

/* ---- im2col + GEMM --------------------------------------------------------------------------------------- */

/* Unfold one image x_image (C, H, W) into cols (C*KH*KW, OH*OW):
 *   cols[(c*KH + kh)*KW + kw][oh*OW + ow] = x_image[c][oh*stride + kh - padding][ow*stride + kw - padding]
 * (0 where that falls into the padding). Column j holds the input window of output pixel j, so the whole
 * convolution of the image becomes one matrix product: y_image (OC, OH*OW) = w (OC, C*KH*KW) · cols. */
void conv2d_im2col(const Conv2dShape *s, const float *x_image, float *cols);

/* The adjoint of im2col: dx_image (C, H, W) = sum of every entry of cols (C*KH*KW, OH*OW) added back to the
 * pixel im2col copied it from (padding entries are dropped). dx_image is overwritten. */
void conv2d_col2im(const Conv2dShape *s, const float *cols, float *dx_image);

/* The same results as the direct versions, computed per image as GEMMs on the im2col matrix with the
 * chosen GEMM backend. Images are spread over OpenMP threads (omp_set_num_threads / --threads); each thread
 * unfolds its image into its own buffer. dx may be NULL (the first layer needs no input gradient). */
void conv2d_forward_im2col(const Conv2dShape *s, const float *x, const float *w, const float *b, float *y,
                           GemmBackend backend);
void conv2d_backward_im2col(const Conv2dShape *s, const float *x, const float *w, const float *dy, float *dx,
                            float *dw, float *db, GemmBackend backend);

/* One image of the two functions above (s->batch is ignored), single-threaded, for callers that run their
 * own loop over the images (cnn.c does, to pool each image while its conv output is still in cache).
 * x_image (C, H, W), y_image and dy_image (OC, OH*OW), dx_image (C, H, W) or NULL; cols and dcols are scratch
 * buffers of conv2d_cols_size(s) floats. The backward ADDS the image's weight gradient into dw_sum
 * (OC, C*KH*KW) and overwrites dx_image; the bias gradient is left to conv2d_backward_bias. */
void conv2d_forward_im2col_image(const Conv2dShape *s, const float *x_image, const float *w, const float *b,
                                 float *y_image, float *cols, GemmBackend backend);
void conv2d_backward_im2col_image(const Conv2dShape *s, const float *x_image, const float *w,
                                  const float *dy_image, float *dx_image, float *dw_sum, float *cols, float *dcols,
                                  GemmBackend backend);

#endif
