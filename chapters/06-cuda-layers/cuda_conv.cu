/* cuda_conv.cu — Chapter 06: the convolution on the GPU, forward and backward, and the host functions that
 * launch its kernels (declared in cuda_conv.h). Chapter 03's twin is conv.c.
 *
 * Checked against chapter 03's conv.c and PyTorch's golden files by tests/test_cuda_layers.cu (cases conv.*):
 *   ctest --preset default -L ch06          (on the CPU simulator, and on the GPU if there is one)
 *
 * Reading order, that of the lesson (chapters/06-cuda-layers/README.md, sections 3 and 4): the forward as
 * im2col + one GEMM (cuda_gemm.cu) + the fused epilogue (section 1 below), its backward as two GEMMs + col2im
 * (2), and the direct kernels, which need no workspace (3).
 *
 * One rule runs through the chapter: each kernel gives each thread exactly one OUTPUT element to write (or a
 * few, in a grid-stride loop), and the thread gathers whatever it needs to compute it. No two threads write
 * the same address, so no kernel here needs atomics, and each kernel gives the same bits on every run.
 */
#include <cuda_runtime.h>

#include "cuda_check.h"
#include "cuda_conv.h"
#include "exercise.h"

/* conv.h's conv2d_output_size, callable from kernels: (in + 2*padding - kernel) / stride + 1. */
__host__ __device__ static inline int conv_out_size(int in, int kernel, int padding, int stride)
{
    return in + 2 * padding < kernel ? 0 : (in + 2 * padding - kernel) / stride + 1;
}

/* ---- 1. Convolution forward: im2col, one GEMM, the fused epilogue -------------------------------------- */

const char *conv_algorithm_name(ConvAlgorithm algorithm)
{
    switch (algorithm) {
    case CONV_IM2COL_CUBLAS:
        return "im2col+cublas";
    case CONV_IM2COL_TILED:
        return "im2col+tiled";
    case CONV_IM2COL_CH05:
        return "im2col+ch05";
    default:
        return "direct";
    }
}

size_t conv2d_gpu_workspace_floats(const Conv2dShape *s, ConvAlgorithm algorithm)
{
    if (algorithm == CONV_DIRECT) {
        return 0;
    }
    const size_t pixels = (size_t)s->batch * conv2d_out_height(s) * conv2d_out_width(s); /* N*OH*OW */
    const size_t patch = (size_t)s->in_channels * s->kernel_height * s->kernel_width; /* C*KH*KW */
    return patch * pixels + (size_t)s->out_channels * pixels;
}

/* cols (C*KH*KW, N*OH*OW): one thread per element of cols, which reads the one input pixel it copies.
 * Consecutive threads take consecutive columns (neighbouring output pixels), so their reads of x are
 * neighbours too (stride apart) and their writes are contiguous: coalesced. */
__global__ void im2col_kernel(Conv2dShape s, const float *x, float *cols)
{
    /* BEGIN EXERCISE ch06.im2col: for each index i of cols (grid-stride, i < C*KH*KW * N*OH*OW): row = i / (N*OH*OW) gives (c, kh, kw), column = i % (N*OH*OW) gives (n, oh, ow); read x at (oh*stride + kh - padding, ow*stride + kw - padding), 0 outside the image (about 20 lines) | zh: 对 cols 的每个下标 i（网格跨步循环，i < C*KH*KW * N*OH*OW）：行 = i / (N*OH*OW) 给出 (c, kh, kw)，列 = i % (N*OH*OW) 给出 (n, oh, ow)；读取 x 在 (oh*stride + kh - padding, ow*stride + kw - padding) 处的值，图像之外取 0（约 20 行） */
    const int oh_count = conv_out_size(s.in_height, s.kernel_height, s.padding, s.stride);
    const int ow_count = conv_out_size(s.in_width, s.kernel_width, s.padding, s.stride);
    const size_t pixels = (size_t)s.batch * oh_count * ow_count; /* columns: N*OH*OW */
    const size_t total = (size_t)s.in_channels * s.kernel_height * s.kernel_width * pixels;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)blockDim.x * gridDim.x) {
        const int row = (int)(i / pixels);
        const int column = (int)(i % pixels);
        const int kw = row % s.kernel_width;
        const int kh = (row / s.kernel_width) % s.kernel_height;
        const int c = row / (s.kernel_width * s.kernel_height);
        const int ow = column % ow_count;
        const int oh = (column / ow_count) % oh_count;
        const int n = column / (ow_count * oh_count);
        const int ih = oh * s.stride + kh - s.padding, iw = ow * s.stride + kw - s.padding;
        float v = 0.0f;
        if (ih >= 0 && ih < s.in_height && iw >= 0 && iw < s.in_width) {
            v = x[(((size_t)n * s.in_channels + c) * s.in_height + ih) * s.in_width + iw];
        }
        cols[i] = v;
    }
    /* END EXERCISE */
}

/* The epilogue: the GEMM left out (OC, N*OH*OW) = W · cols, the output channels as rows. One pass puts each
 * value where NCHW wants it, adds the bias and applies the ReLU: y[n][oc][p] = relu(out[oc][n*OH*OW + p] +
 * b[oc]). Three separate elementwise kernels would read and write the whole output three times. */
__global__ void conv_epilogue_kernel(const float *gemm_out, const float *b, float *y, int batch, int channels,
                                     int plane, bool relu)
{
    /* BEGIN EXERCISE ch06.conv_epilogue: for each index i of y (N, OC, OH*OW) (grid-stride): split i into (n, oc, p); v = gemm_out[oc][n*plane + p] + b[oc]; with relu, negative v becomes 0; write y[i] (about 12 lines) | zh: 对 y (N, OC, OH*OW) 的每个下标 i（网格跨步循环）：把 i 拆成 (n, oc, p)；v = gemm_out[oc][n*plane + p] + b[oc]；带 relu 时负的 v 变成 0；写入 y[i]（约 12 行） */
    const size_t total = (size_t)batch * channels * plane;
    const size_t pixels = (size_t)batch * plane; /* columns of gemm_out */
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)blockDim.x * gridDim.x) {
        const int p = (int)(i % plane);
        const int oc = (int)((i / plane) % channels);
        const int n = (int)(i / ((size_t)plane * channels));
        float v = gemm_out[oc * pixels + (size_t)n * plane + p] + b[oc];
        if (relu && v < 0.0f) {
            v = 0.0f; /* NaN is not < 0: it propagates, as in chapter 01's relu */
        }
        y[i] = v;
    }
    /* END EXERCISE */
}

void conv2d_im2col_gpu(const Conv2dShape *s, const float *x, float *cols)
{
    const size_t total = (size_t)s->in_channels * s->kernel_height * s->kernel_width * s->batch *
                         conv2d_out_height(s) * conv2d_out_width(s);
    im2col_kernel<<<ch06_blocks_for(total), CH06_THREADS, 0, cuda_layers_stream()>>>(*s, x, cols);
    CUDA_CHECK(cudaGetLastError());
}

static GpuGemm gemm_of(ConvAlgorithm algorithm)
{
    switch (algorithm) {
    case CONV_IM2COL_CUBLAS:
        return GPU_GEMM_CUBLAS;
    case CONV_IM2COL_CH05:
        return GPU_GEMM_CH05;
    default:
        return GPU_GEMM_TILED;
    }
}

__global__ void conv_forward_direct_kernel(Conv2dShape s, const float *x, const float *w, const float *b,
                                           float *y, bool relu);

void conv2d_forward_gpu(ConvAlgorithm algorithm, const Conv2dShape *s, const float *x, const float *w,
                        const float *b, float *y, bool relu, float *workspace)
{
    const int oh = conv2d_out_height(s), ow = conv2d_out_width(s);
    const size_t total = conv2d_output_size_total(s);
    if (algorithm == CONV_DIRECT) {
        conv_forward_direct_kernel<<<ch06_blocks_for(total), CH06_THREADS, 0, cuda_layers_stream()>>>(
            *s, x, w, b, y, relu);
        CUDA_CHECK(cudaGetLastError());
        return;
    }
    const int pixels = s->batch * oh * ow; /* N*OH*OW */
    const int patch = s->in_channels * s->kernel_height * s->kernel_width; /* C*KH*KW */
    float *cols = workspace; /* (C*KH*KW, N*OH*OW) */
    float *gemm_out = workspace + (size_t)patch * pixels; /* (OC, N*OH*OW) */
    conv2d_im2col_gpu(s, x, cols);
    /* (OC, N*OH*OW) = W (OC, C*KH*KW) · cols (C*KH*KW, N*OH*OW): the whole batch's convolution in one GEMM */
    gemm_gpu(gemm_of(algorithm), false, false, s->out_channels, pixels, patch, 1.0f, w, patch, cols, pixels, 0.0f,
             gemm_out, pixels);
    conv_epilogue_kernel<<<ch06_blocks_for(total), CH06_THREADS, 0, cuda_layers_stream()>>>(
        gemm_out, b, y, s->batch, s->out_channels, oh * ow, relu);
    CUDA_CHECK(cudaGetLastError());
}

/* ---- 2. Convolution backward: two GEMMs and col2im ------------------------------------------------------ */

/* dz (OC, N*OH*OW) = dy (N, OC, OH*OW) moved into the GEMM's layout, times relu'(.) = (y > 0) when the
 * forward had the fused ReLU: the ReLU's backward fused into the reordering pass. */
__global__ void conv_grad_to_rows_kernel(const float *dy, const float *y, bool relu, float *dz, int batch,
                                         int channels, int plane)
{
    const size_t total = (size_t)batch * channels * plane;
    const size_t pixels = (size_t)batch * plane;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)blockDim.x * gridDim.x) {
        const int p = (int)(i % plane);
        const int oc = (int)((i / plane) % channels);
        const int n = (int)(i / ((size_t)plane * channels));
        dz[oc * pixels + (size_t)n * plane + p] = (relu && !(y[i] > 0.0f)) ? 0.0f : dy[i];
    }
}

/* db[oc] = sum over n and p of dy[n][oc][p] (times y > 0 with relu). One block per output channel: each
 * thread sums a strided slice, then a shared-memory tree adds the CH06_THREADS partial sums. */
__global__ void conv_bias_grad_kernel(const float *dy, const float *y, bool relu, float *db, int batch,
                                      int channels, int plane)
{
    __shared__ float partial[CH06_THREADS];
    const int oc = blockIdx.x;
    const int count = batch * plane;
    float sum = 0.0f;
    for (int j = threadIdx.x; j < count; j += blockDim.x) {
        const size_t i = ((size_t)(j / plane) * channels + oc) * plane + j % plane;
        sum += (relu && !(y[i] > 0.0f)) ? 0.0f : dy[i];
    }
    partial[threadIdx.x] = sum;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if ((int)threadIdx.x < stride) {
            partial[threadIdx.x] += partial[threadIdx.x + stride];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        db[oc] = partial[0];
    }
}

/* col2im as a GATHER: one thread per pixel of dx. Pixel (ih, iw) was copied by im2col into the column of
 * every output (oh, ow) whose window covers it, at kernel position kh = ih + padding - oh*stride (same for
 * w). So the thread loops over kh, kw, keeps the positions where (ih + padding - kh) is a multiple of the
 * stride inside [0, OH*stride), and adds those entries of dcols. Each thread writes only its own pixel:
 * no atomics, no zeroing beforehand, the same sum order every run. (The scatter version, one thread per
 * entry of dcols adding into dx, would need atomicAdd, since several entries land on one pixel.) */
__global__ void col2im_kernel(Conv2dShape s, const float *dcols, float *dx)
{
    /* BEGIN EXERCISE ch06.col2im: for each pixel (n, c, ih, iw) of dx (grid-stride): sum over kh, kw of dcols[(c*KH + kh)*KW + kw][n*OH*OW + oh*OW + ow] where oh = (ih + padding - kh) / stride and likewise ow, keeping only exact divisions with 0 <= oh < OH and 0 <= ow < OW; write the sum (about 25 lines) | zh: 对 dx 的每个像素 (n, c, ih, iw)（网格跨步循环）：对 kh、kw 求 dcols[(c*KH + kh)*KW + kw][n*OH*OW + oh*OW + ow] 的和，其中 oh = (ih + padding - kh) / stride，ow 同理，只保留整除且 0 <= oh < OH、0 <= ow < OW 的项；写入这个和（约 25 行） */
    const int oh_count = conv_out_size(s.in_height, s.kernel_height, s.padding, s.stride);
    const int ow_count = conv_out_size(s.in_width, s.kernel_width, s.padding, s.stride);
    const size_t pixels = (size_t)s.batch * oh_count * ow_count;
    const size_t total = (size_t)s.batch * s.in_channels * s.in_height * s.in_width;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)blockDim.x * gridDim.x) {
        const int iw = (int)(i % s.in_width);
        const int ih = (int)((i / s.in_width) % s.in_height);
        const int c = (int)((i / ((size_t)s.in_width * s.in_height)) % s.in_channels);
        const int n = (int)(i / ((size_t)s.in_width * s.in_height * s.in_channels));
        float sum = 0.0f;
        for (int kh = 0; kh < s.kernel_height; kh++) {
            const int th = ih + s.padding - kh; /* = oh * stride */
            if (th < 0 || th % s.stride != 0 || th / s.stride >= oh_count) {
                continue;
            }
            const int oh = th / s.stride;
            for (int kw = 0; kw < s.kernel_width; kw++) {
                const int tw = iw + s.padding - kw;
                if (tw < 0 || tw % s.stride != 0 || tw / s.stride >= ow_count) {
                    continue;
                }
                const int ow = tw / s.stride;
                const size_t row = ((size_t)c * s.kernel_height + kh) * s.kernel_width + kw;
                sum += dcols[row * pixels + ((size_t)n * oh_count + oh) * ow_count + ow];
            }
        }
        dx[i] = sum;
    }
    /* END EXERCISE */
}

void conv2d_col2im_gpu(const Conv2dShape *s, const float *dcols, float *dx)
{
    const size_t total = conv2d_input_size(s);
    col2im_kernel<<<ch06_blocks_for(total), CH06_THREADS, 0, cuda_layers_stream()>>>(*s, dcols, dx);
    CUDA_CHECK(cudaGetLastError());
}

__global__ void conv_backward_input_direct_kernel(Conv2dShape s, const float *w, const float *y, const float *dy,
                                                  bool relu, float *dx);
__global__ void conv_backward_weight_direct_kernel(Conv2dShape s, const float *x, const float *y,
                                                   const float *dy, bool relu, float *dw);

void conv2d_backward_gpu(ConvAlgorithm algorithm, const Conv2dShape *s, const float *x, const float *w,
                         const float *y, const float *dy, bool relu, float *dx, float *dw, float *db,
                         float *workspace)
{
    const int oh = conv2d_out_height(s), ow = conv2d_out_width(s);
    conv_bias_grad_kernel<<<s->out_channels, CH06_THREADS, 0, cuda_layers_stream()>>>(
        dy, y, relu, db, s->batch, s->out_channels, oh * ow);
    CUDA_CHECK(cudaGetLastError());
    if (algorithm == CONV_DIRECT) {
        if (dx) {
            conv_backward_input_direct_kernel<<<ch06_blocks_for(conv2d_input_size(s)), CH06_THREADS, 0,
                                                cuda_layers_stream()>>>(*s, w, y, dy, relu, dx);
            CUDA_CHECK(cudaGetLastError());
        }
        conv_backward_weight_direct_kernel<<<ch06_blocks_for(conv2d_weight_size(s)), CH06_THREADS, 0,
                                             cuda_layers_stream()>>>(*s, x, y, dy, relu, dw);
        CUDA_CHECK(cudaGetLastError());
        return;
    }
    const int pixels = s->batch * oh * ow; /* N*OH*OW */
    const int patch = s->in_channels * s->kernel_height * s->kernel_width; /* C*KH*KW */
    float *cols = workspace; /* (C*KH*KW, N*OH*OW): im2col(x), later dcols */
    float *dz = workspace + (size_t)patch * pixels; /* (OC, N*OH*OW) */
    const size_t total = conv2d_output_size_total(s);
    conv_grad_to_rows_kernel<<<ch06_blocks_for(total), CH06_THREADS, 0, cuda_layers_stream()>>>(
        dy, y, relu, dz, s->batch, s->out_channels, oh * ow);
    CUDA_CHECK(cudaGetLastError());
    conv2d_im2col_gpu(s, x, cols);
    /* dW (OC, C*KH*KW) = dz (OC, N*OH*OW) · cols^T: the forward's GEMM differentiated w.r.t. its left factor */
    gemm_gpu(gemm_of(algorithm), false, true, s->out_channels, patch, pixels, 1.0f, dz, pixels, cols, pixels, 0.0f,
             dw, patch);
    if (dx) {
        /* dcols (C*KH*KW, N*OH*OW) = W^T · dz, written over cols (the dW GEMM before it is done with cols:
         * both run in order on the same stream), then folded back onto the pixels by col2im */
        gemm_gpu(gemm_of(algorithm), true, false, patch, pixels, s->out_channels, 1.0f, w, patch, dz, pixels,
                 0.0f, cols, pixels);
        conv2d_col2im_gpu(s, cols, dx);
    }
}

/* ---- 3. The direct convolution: no workspace, one thread per element written ------------------------- */

/* y[n][oc][oh][ow] = relu?(b[oc] + sum over c, kh, kw of w[oc][c][kh][kw] * x[n][c][ih][iw]): the formula of
 * conv.h, one thread per output, bias and ReLU applied before the single write (fused). */
__global__ void conv_forward_direct_kernel(Conv2dShape s, const float *x, const float *w, const float *b,
                                           float *y, bool relu)
{
    const int oh_count = conv_out_size(s.in_height, s.kernel_height, s.padding, s.stride);
    const int ow_count = conv_out_size(s.in_width, s.kernel_width, s.padding, s.stride);
    const size_t total = (size_t)s.batch * s.out_channels * oh_count * ow_count;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)blockDim.x * gridDim.x) {
        const int ow = (int)(i % ow_count);
        const int oh = (int)((i / ow_count) % oh_count);
        const int oc = (int)((i / ((size_t)ow_count * oh_count)) % s.out_channels);
        const int n = (int)(i / ((size_t)ow_count * oh_count * s.out_channels));
        float sum = b[oc];
        for (int c = 0; c < s.in_channels; c++) {
            for (int kh = 0; kh < s.kernel_height; kh++) {
                const int ih = oh * s.stride + kh - s.padding;
                if (ih < 0 || ih >= s.in_height) {
                    continue;
                }
                for (int kw = 0; kw < s.kernel_width; kw++) {
                    const int iw = ow * s.stride + kw - s.padding;
                    if (iw < 0 || iw >= s.in_width) {
                        continue;
                    }
                    sum += w[(((size_t)oc * s.in_channels + c) * s.kernel_height + kh) * s.kernel_width + kw] *
                           x[(((size_t)n * s.in_channels + c) * s.in_height + ih) * s.in_width + iw];
                }
            }
        }
        if (relu && sum < 0.0f) {
            sum = 0.0f;
        }
        y[i] = sum;
    }
}

/* dz = dy, or dy * (y > 0) behind a fused ReLU; index i into (N, OC, OH, OW). */
__device__ float conv_upstream(const float *y, const float *dy, bool relu, size_t i)
{
    return (relu && !(y[i] > 0.0f)) ? 0.0f : dy[i];
}

/* dx[n][c][ih][iw] = sum of w[oc][c][kh][kw] * dz[n][oc][oh][ow] over the outputs whose window covers (ih, iw):
 * the same gather as col2im, straight from dz and w. */
__global__ void conv_backward_input_direct_kernel(Conv2dShape s, const float *w, const float *y, const float *dy,
                                                  bool relu, float *dx)
{
    const int oh_count = conv_out_size(s.in_height, s.kernel_height, s.padding, s.stride);
    const int ow_count = conv_out_size(s.in_width, s.kernel_width, s.padding, s.stride);
    const size_t total = (size_t)s.batch * s.in_channels * s.in_height * s.in_width;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)blockDim.x * gridDim.x) {
        const int iw = (int)(i % s.in_width);
        const int ih = (int)((i / s.in_width) % s.in_height);
        const int c = (int)((i / ((size_t)s.in_width * s.in_height)) % s.in_channels);
        const int n = (int)(i / ((size_t)s.in_width * s.in_height * s.in_channels));
        float sum = 0.0f;
        for (int oc = 0; oc < s.out_channels; oc++) {
            for (int kh = 0; kh < s.kernel_height; kh++) {
                const int th = ih + s.padding - kh;
                if (th < 0 || th % s.stride != 0 || th / s.stride >= oh_count) {
                    continue;
                }
                for (int kw = 0; kw < s.kernel_width; kw++) {
                    const int tw = iw + s.padding - kw;
                    if (tw < 0 || tw % s.stride != 0 || tw / s.stride >= ow_count) {
                        continue;
                    }
                    const size_t out = (((size_t)n * s.out_channels + oc) * oh_count + th / s.stride) * ow_count +
                                       tw / s.stride;
                    sum += w[(((size_t)oc * s.in_channels + c) * s.kernel_height + kh) * s.kernel_width + kw] *
                           conv_upstream(y, dy, relu, out);
                }
            }
        }
        dx[i] = sum;
    }
}

/* dw[oc][c][kh][kw] = sum over n, oh, ow of x[n][c][oh*stride + kh - padding][ow*stride + kw - padding] *
 * dz[n][oc][oh][ow]: one thread per weight, a long sum each (N*OH*OW terms) over few threads (OC*C*KH*KW):
 * the direct kernel's weak spot, where the im2col path's GEMM shines. */
__global__ void conv_backward_weight_direct_kernel(Conv2dShape s, const float *x, const float *y,
                                                   const float *dy, bool relu, float *dw)
{
    const int oh_count = conv_out_size(s.in_height, s.kernel_height, s.padding, s.stride);
    const int ow_count = conv_out_size(s.in_width, s.kernel_width, s.padding, s.stride);
    const size_t total = (size_t)s.out_channels * s.in_channels * s.kernel_height * s.kernel_width;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)blockDim.x * gridDim.x) {
        const int kw = (int)(i % s.kernel_width);
        const int kh = (int)((i / s.kernel_width) % s.kernel_height);
        const int c = (int)((i / ((size_t)s.kernel_width * s.kernel_height)) % s.in_channels);
        const int oc = (int)(i / ((size_t)s.kernel_width * s.kernel_height * s.in_channels));
        float sum = 0.0f;
        for (int n = 0; n < s.batch; n++) {
            for (int oh = 0; oh < oh_count; oh++) {
                const int ih = oh * s.stride + kh - s.padding;
                if (ih < 0 || ih >= s.in_height) {
                    continue;
                }
                for (int ow = 0; ow < ow_count; ow++) {
                    const int iw = ow * s.stride + kw - s.padding;
                    if (iw < 0 || iw >= s.in_width) {
                        continue;
                    }
                    const size_t out = (((size_t)n * s.out_channels + oc) * oh_count + oh) * ow_count + ow;
                    sum += x[(((size_t)n * s.in_channels + c) * s.in_height + ih) * s.in_width + iw] *
                           conv_upstream(y, dy, relu, out);
                }
            }
        }
        dw[i] = sum;
    }
}
