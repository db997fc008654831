/* cuda_layers.cu — Chapter 06's kernels: the CNN's layers on the GPU, and the host functions that launch them
 * (declared in cuda_layers.h).
 *
 * Checked against chapter 03's CPU layers and PyTorch's golden files by tests/test_cuda_layers.cu:
 *   ctest --preset default -L ch06          (on the CPU simulator, and on the GPU if there is one)
 *
 * Reading order: the GEMM (section 1), the convolution as im2col + GEMM + epilogue (2), its backward as two
 * GEMMs + col2im (3), the direct convolution (4), pooling (5), dropout with Philox (6), the fully connected
 * layer (7), softmax + cross-entropy (8), the flat SGD kernel (9).
 *
 * One rule runs through the file: each kernel gives each thread exactly one OUTPUT element to write (or a
 * few, in a grid-stride loop), and the thread gathers whatever it needs to compute it. No two threads write
 * the same address, so no kernel here needs atomics, and each kernel gives the same bits on every run.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "cuda_basics.h" /* chapter 04: softmax_xent_backward_kernel */
#include "cuda_check.h"
#include "cuda_layers.h"
#include "exercise.h"
#include "philox.h"
#include "sgemm.h" /* chapter 05 */

/* Most blocks of a grid-stride kernel; each thread loops over the rest. */
#define CH06_MAX_BLOCKS 4096

static int blocks_for(size_t n)
{
    size_t blocks = (n + CH06_THREADS - 1) / CH06_THREADS;
    return blocks < CH06_MAX_BLOCKS ? (int)(blocks ? blocks : 1) : CH06_MAX_BLOCKS;
}

/* conv.h's conv2d_output_size, callable from kernels: (in + 2*padding - kernel) / stride + 1. */
__host__ __device__ static inline int conv_out_size(int in, int kernel, int padding, int stride)
{
    return in + 2 * padding < kernel ? 0 : (in + 2 * padding - kernel) / stride + 1;
}

#define CUBLAS_CHECK(call) \
    do { \
        cublasStatus_t cublas_check_status_ = (call); \
        if (cublas_check_status_ != CUBLAS_STATUS_SUCCESS) { \
            fprintf(stderr, "%s:%d: cuBLAS error in %s: %s\n", __FILE__, __LINE__, #call, \
                    cublasGetStatusName(cublas_check_status_)); \
            exit(1); \
        } \
    } while (0)

/* ---- 1. GEMM: cuBLAS, and a shared-memory tiled kernel ----------------------------------------------- */

/* C = alpha * op(A) op(B) + beta * C, row-major. A 16x16 block computes a 16x16 tile of C, one element per
 * thread. The k dimension is walked in 16-wide steps: the block loads a 16x16 tile of op(A) and of op(B)
 * into shared memory (each thread one element of each), waits, and every thread then does 16 multiply-adds
 * from shared memory. Each element loaded from global memory is so used 16 times instead of once. The
 * second barrier stops a fast thread from overwriting a tile that others are still reading. */
__global__ void gemm_tiled_kernel(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
                                  int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    __shared__ float a_tile[CH06_TILE][CH06_TILE + 1]; /* +1: a padding column, so no bank conflicts */
    __shared__ float b_tile[CH06_TILE][CH06_TILE + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int row = blockIdx.y * CH06_TILE + ty, col = blockIdx.x * CH06_TILE + tx;
    float acc = 0.0f;
    for (int k0 = 0; k0 < k; k0 += CH06_TILE) {
        /* op(A)[row][k0 + tx] and op(B)[k0 + ty][col], 0 beyond the matrix edge */
        const int ka = k0 + tx, kb = k0 + ty;
        float va = 0.0f, vb = 0.0f;
        if (row < m && ka < k) {
            va = trans_a ? a[(size_t)ka * lda + row] : a[(size_t)row * lda + ka];
        }
        if (kb < k && col < n) {
            vb = trans_b ? b[(size_t)col * ldb + kb] : b[(size_t)kb * ldb + col];
        }
        a_tile[ty][tx] = va;
        b_tile[ty][tx] = vb;
        __syncthreads();
        for (int i = 0; i < CH06_TILE; i++) {
            acc += a_tile[ty][i] * b_tile[i][tx];
        }
        __syncthreads();
    }
    if (row < m && col < n) {
        float *out = &c[(size_t)row * ldc + col];
        *out = beta == 0.0f ? alpha * acc : alpha * acc + beta * *out;
    }
}

/* The stream every launch of this file (and the cuBLAS handle) uses; 0, the legacy default stream, until
 * cuda_layers_set_stream. */
static cudaStream_t layer_stream = 0;
static cublasHandle_t cublas_handle = NULL;
/* cuBLAS's workspace: a buffer of our own rather than cuBLAS's default pool. With the pool, cuBLAS documents
 * that it may pick other internal implementations (other bits) when several streams are in use, and
 * cublasSetStream resets the workspace to the pool; with one buffer that is always the same, nothing about
 * cuBLAS's memory differs between streams or between a GEMM captured into a CUDA Graph and one that is not,
 * and a capture needs no allocation. NVIDIA's recommended size: 32 MiB on Hopper (compute capability 9) and
 * later, 4 MiB before. */
static void *cublas_workspace = NULL;
static size_t cublas_workspace_bytes = 0;

static void set_cublas_stream(cudaStream_t stream)
{
    CUBLAS_CHECK(cublasSetStream(cublas_handle, stream));
    CUBLAS_CHECK(cublasSetWorkspace(cublas_handle, cublas_workspace, cublas_workspace_bytes)); /* see above */
}

static cublasHandle_t get_cublas_handle(void)
{
    if (!cublas_handle) {
        CUBLAS_CHECK(cublasCreate(&cublas_handle));
        /* Plain FP32 (no TF32 tensor cores), so that results compare with the CPU at FP32 tolerances. */
        CUBLAS_CHECK(cublasSetMathMode(cublas_handle, CUBLAS_DEFAULT_MATH));
        int device = 0, major = 0;
        CUDA_CHECK(cudaGetDevice(&device));
        CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
        cublas_workspace_bytes = (size_t)(major >= 9 ? 32 : 4) << 20;
        CUDA_CHECK(cudaMalloc(&cublas_workspace, cublas_workspace_bytes));
        set_cublas_stream(layer_stream);
    }
    return cublas_handle;
}

void cuda_layers_set_stream(cudaStream_t stream)
{
    layer_stream = stream;
    if (cublas_handle) {
        set_cublas_stream(stream);
    }
}

cudaStream_t cuda_layers_stream(void)
{
    return layer_stream;
}

void gemm_gpu_shutdown(void)
{
    if (cublas_handle) {
        CUBLAS_CHECK(cublasDestroy(cublas_handle));
        CUDA_CHECK(cudaFree(cublas_workspace));
        cublas_handle = NULL;
        cublas_workspace = NULL;
    }
}

const char *gpu_gemm_name(GpuGemm backend)
{
    switch (backend) {
    case GPU_GEMM_CUBLAS:
        return "cublas";
    case GPU_GEMM_CH05:
        return "ch05";
    default:
        return "tiled";
    }
}

void gemm_gpu(GpuGemm backend, bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
              int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    if (backend == GPU_GEMM_CUBLAS) {
        /* cuBLAS is column-major. A row-major (m, n) matrix with row stride ldc IS a column-major (n, m)
         * matrix with leading dimension ldc: C^T. And C^T = op(B)^T op(A)^T, so ask cuBLAS for that product
         * with the operands swapped; no data moves. */
        CUBLAS_CHECK(cublasSgemm(get_cublas_handle(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                 trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b, ldb, a, lda, &beta, c,
                                 ldc));
        return;
    }
    if (backend == GPU_GEMM_CH05 && !trans_a && !trans_b && lda == k && ldb == n && ldc == n) {
        sgemm_07_warptile(m, n, k, alpha, a, b, beta, c); /* C = alpha A B + beta C, contiguous row-major */
        return;
    }
    dim3 block(CH06_TILE, CH06_TILE);
    dim3 grid((n + CH06_TILE - 1) / CH06_TILE, (m + CH06_TILE - 1) / CH06_TILE);
    gemm_tiled_kernel<<<grid, block, 0, layer_stream>>>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    CUDA_CHECK(cudaGetLastError());
}

/* ---- 2. Convolution forward: im2col, one GEMM, the fused epilogue -------------------------------------- */

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
    /* BEGIN EXERCISE ch06.im2col: for each index i of cols (grid-stride, i < C*KH*KW * N*OH*OW): row = i / (N*OH*OW) gives (c, kh, kw), column = i % (N*OH*OW) gives (n, oh, ow); read x at (oh*stride + kh - padding, ow*stride + kw - padding), 0 outside the image (about 20 lines) */
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
    /* BEGIN EXERCISE ch06.conv_epilogue: for each index i of y (N, OC, OH*OW) (grid-stride): split i into (n, oc, p); v = gemm_out[oc][n*plane + p] + b[oc]; with relu, negative v becomes 0; write y[i] (about 12 lines) */
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
    im2col_kernel<<<blocks_for(total), CH06_THREADS, 0, layer_stream>>>(*s, x, cols);
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
        conv_forward_direct_kernel<<<blocks_for(total), CH06_THREADS, 0, layer_stream>>>(*s, x, w, b, y, relu);
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
    conv_epilogue_kernel<<<blocks_for(total), CH06_THREADS, 0, layer_stream>>>(
        gemm_out, b, y, s->batch, s->out_channels, oh * ow, relu);
    CUDA_CHECK(cudaGetLastError());
}

/* ---- 3. Convolution backward: two GEMMs and col2im ------------------------------------------------------ */

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
    /* BEGIN EXERCISE ch06.col2im: for each pixel (n, c, ih, iw) of dx (grid-stride): sum over kh, kw of dcols[(c*KH + kh)*KW + kw][n*OH*OW + oh*OW + ow] where oh = (ih + padding - kh) / stride and likewise ow, keeping only exact divisions with 0 <= oh < OH and 0 <= ow < OW; write the sum (about 25 lines) */
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
    col2im_kernel<<<blocks_for(total), CH06_THREADS, 0, layer_stream>>>(*s, dcols, dx);
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
    conv_bias_grad_kernel<<<s->out_channels, CH06_THREADS, 0, layer_stream>>>(
        dy, y, relu, db, s->batch, s->out_channels, oh * ow);
    CUDA_CHECK(cudaGetLastError());
    if (algorithm == CONV_DIRECT) {
        if (dx) {
            conv_backward_input_direct_kernel<<<blocks_for(conv2d_input_size(s)), CH06_THREADS, 0, layer_stream>>>(
                *s, w, y, dy, relu, dx);
            CUDA_CHECK(cudaGetLastError());
        }
        conv_backward_weight_direct_kernel<<<blocks_for(conv2d_weight_size(s)), CH06_THREADS, 0, layer_stream>>>(
            *s, x, y, dy, relu, dw);
        CUDA_CHECK(cudaGetLastError());
        return;
    }
    const int pixels = s->batch * oh * ow; /* N*OH*OW */
    const int patch = s->in_channels * s->kernel_height * s->kernel_width; /* C*KH*KW */
    float *cols = workspace; /* (C*KH*KW, N*OH*OW): im2col(x), later dcols */
    float *dz = workspace + (size_t)patch * pixels; /* (OC, N*OH*OW) */
    const size_t total = conv2d_output_size_total(s);
    conv_grad_to_rows_kernel<<<blocks_for(total), CH06_THREADS, 0, layer_stream>>>(
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

/* ---- 4. The direct convolution: no workspace, one thread per element written ------------------------- */

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

/* ---- 5. Max pooling 2x2, stride 2 ------------------------------------------------------------------------ */

/* One thread per output: scan the 2x2 window in row-major order, keep the first strictly larger value (ties
 * stay with the earlier pixel) or a NaN (which then propagates), as chapter 03 and PyTorch do. */
__global__ void maxpool2_forward_kernel(const float *x, float *y, int32_t *argmax, int planes, int height,
                                        int width)
{
    /* BEGIN EXERCISE ch06.maxpool2_forward: for each output (plane, i, j) (grid-stride over planes * (H/2) * (W/2)): scan rows 2i..2i+1, columns 2j..2j+1 of its plane in row-major order, keep the first strictly larger value or a NaN; write the max to y and ih*W + iw to argmax (about 25 lines) */
    const int out_h = height / 2, out_w = width / 2;
    const size_t total = (size_t)planes * out_h * out_w;
    for (size_t o = (size_t)blockIdx.x * blockDim.x + threadIdx.x; o < total; o += (size_t)blockDim.x * gridDim.x) {
        const int j = (int)(o % out_w);
        const int i = (int)((o / out_w) % out_h);
        const size_t plane = o / ((size_t)out_w * out_h);
        const float *x_plane = x + plane * height * width; /* (H, W) */
        int best_index = (2 * i) * width + 2 * j;
        float best = x_plane[best_index];
        for (int di = 0; di < 2; di++) {
            for (int dj = 0; dj < 2; dj++) {
                const int index = (2 * i + di) * width + 2 * j + dj;
                const float v = x_plane[index];
                if (v > best || isnan(v)) {
                    best = v;
                    best_index = index;
                }
            }
        }
        y[o] = best;
        argmax[o] = best_index;
    }
    /* END EXERCISE */
}

/* One thread per INPUT pixel: its window is (ih/2, iw/2); it receives that output's gradient if it is the
 * window's argmax, else 0 (and 0 in a dropped odd last row or column). Every pixel of dx is written exactly
 * once, so dx needs no zeroing first and no two threads collide. */
__global__ void maxpool2_backward_kernel(const float *dy, const int32_t *argmax, float *dx, int planes,
                                         int height, int width)
{
    /* BEGIN EXERCISE ch06.maxpool2_backward: for each input pixel (plane, ih, iw) (grid-stride): its window is (ih/2, iw/2); write dy of that window if ih < 2*(H/2), iw < 2*(W/2) and the window's argmax equals ih*W + iw, else 0 (about 15 lines) */
    const int out_h = height / 2, out_w = width / 2;
    const size_t total = (size_t)planes * height * width;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)blockDim.x * gridDim.x) {
        const int iw = (int)(i % width);
        const int ih = (int)((i / width) % height);
        const size_t plane = i / ((size_t)width * height);
        float g = 0.0f;
        if (ih / 2 < out_h && iw / 2 < out_w) {
            const size_t o = (plane * out_h + ih / 2) * out_w + iw / 2;
            if (argmax[o] == ih * width + iw) {
                g = dy[o];
            }
        }
        dx[i] = g;
    }
    /* END EXERCISE */
}

void maxpool2_forward_gpu(const float *x, float *y, int32_t *argmax, int batch, int channels, int height,
                          int width)
{
    const size_t total = (size_t)batch * channels * (height / 2) * (width / 2);
    if (total == 0) {
        return;
    }
    maxpool2_forward_kernel<<<blocks_for(total), CH06_THREADS, 0, layer_stream>>>(
        x, y, argmax, batch * channels, height, width);
    CUDA_CHECK(cudaGetLastError());
}

void maxpool2_backward_gpu(const float *dy, const int32_t *argmax, float *dx, int batch, int channels, int height,
                           int width)
{
    const size_t total = (size_t)batch * channels * height * width;
    if (total == 0) {
        return;
    }
    maxpool2_backward_kernel<<<blocks_for(total), CH06_THREADS, 0, layer_stream>>>(
        dy, argmax, dx, batch * channels, height, width);
    CUDA_CHECK(cudaGetLastError());
}

/* ---- 6. Dropout with a counter-based RNG ------------------------------------------------------------------ */

void dropout_philox_mask_cpu(uint64_t seed, uint64_t offset, float p, uint8_t *mask, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mask[i] = (uint8_t)philox_keep(seed, offset, i, p);
    }
}

/* One thread per group of 4 elements: one Philox call gives 4 random words, one for each of elements
 * 4g .. 4g+3 (exactly the words philox_keep(seed, offset, i, p) uses for element i, so the CPU mask is the
 * same). y = x * scale where kept, 0 where dropped; scale = 1 / (1 - p) is computed once on the host, the
 * same float chapter 03 multiplies by. */
__global__ void dropout_forward_kernel(const float *x, float *y, uint8_t *mask, size_t n, float p, float scale,
                                       uint64_t seed, uint64_t offset_add, const uint64_t *offset_base)
{
    /* BEGIN EXERCISE ch06.dropout_forward: offset = offset_add + (offset_base ? *offset_base : 0); for each group g of 4 elements (grid-stride, g < ceil(n/4)): words = philox_block(seed, offset, g); for j = 0..3 with i = 4g + j < n: keep = philox_to_uniform(words.v[j]) >= p; mask[i] = keep; y[i] = keep ? x[i] * scale : 0 (about 12 lines) */
    /* The Philox offset: a value, plus (for a CUDA Graph) a base read from device memory. */
    const uint64_t offset = offset_add + (offset_base != NULL ? *offset_base : 0);
    const size_t groups = (n + 3) / 4;
    for (size_t g = (size_t)blockIdx.x * blockDim.x + threadIdx.x; g < groups; g += (size_t)blockDim.x * gridDim.x) {
        const Philox4x32 words = philox_block(seed, offset, g);
        for (int j = 0; j < 4; j++) {
            const size_t i = 4 * g + j;
            if (i < n) {
                const bool keep = philox_to_uniform(words.v[j]) >= p;
                mask[i] = keep ? 1 : 0;
                y[i] = keep ? x[i] * scale : 0.0f;
            }
        }
    }
    /* END EXERCISE */
}

__global__ void dropout_backward_kernel(const float *dy, const uint8_t *mask, float *dx, size_t n, float scale)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)blockDim.x * gridDim.x) {
        dx[i] = mask[i] ? dy[i] * scale : 0.0f;
    }
}

static void launch_dropout_forward(const float *x, float *y, uint8_t *mask, size_t n, float p, uint64_t seed,
                                   uint64_t offset_add, const uint64_t *offset_base)
{
    if (n == 0) {
        return;
    }
    const float scale = 1.0f / (1.0f - p);
    dropout_forward_kernel<<<blocks_for((n + 3) / 4), CH06_THREADS, 0, layer_stream>>>(x, y, mask, n, p, scale, seed,
                                                                                     offset_add, offset_base);
    CUDA_CHECK(cudaGetLastError());
}

void dropout_forward_gpu(const float *x, float *y, uint8_t *mask, size_t n, float p, uint64_t seed,
                         uint64_t offset)
{
    launch_dropout_forward(x, y, mask, n, p, seed, offset, NULL);
}

void dropout_forward_gpu_device_offset(const float *x, float *y, uint8_t *mask, size_t n, float p, uint64_t seed,
                                       const uint64_t *offset_base, uint64_t offset_add)
{
    launch_dropout_forward(x, y, mask, n, p, seed, offset_add, offset_base);
}

void dropout_backward_gpu(const float *dy, const uint8_t *mask, float *dx, size_t n, float p)
{
    if (n == 0) {
        return;
    }
    const float scale = 1.0f / (1.0f - p);
    dropout_backward_kernel<<<blocks_for(n), CH06_THREADS, 0, layer_stream>>>(dy, mask, dx, n, scale);
    CUDA_CHECK(cudaGetLastError());
}

/* ---- 7. Fully connected layer ------------------------------------------------------------------------------ */

/* y[r][j] = relu?(y[r][j] + b[j]) in place: the GEMM's epilogue.  y (rows, cols) */
__global__ void bias_act_rows_kernel(float *y, const float *b, int rows, int cols, bool relu)
{
    const size_t total = (size_t)rows * cols;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)blockDim.x * gridDim.x) {
        float v = y[i] + b[i % cols];
        if (relu && v < 0.0f) {
            v = 0.0f;
        }
        y[i] = v;
    }
}

/* db[j] = sum over r of dz[r][j]: one thread per column, rows added in order (deterministic; the batch is
 * small, and consecutive threads read consecutive addresses of each row). */
__global__ void column_sums_kernel(const float *dz, float *db, int rows, int cols)
{
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < cols; j += blockDim.x * gridDim.x) {
        float sum = 0.0f;
        for (int r = 0; r < rows; r++) {
            sum += dz[(size_t)r * cols + j];
        }
        db[j] = sum;
    }
}

__global__ void relu_backward_kernel(const float *y, const float *dy, float *dx, size_t n)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)blockDim.x * gridDim.x) {
        dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
    }
}

void relu_backward_gpu(const float *y, const float *dy, float *dx, size_t n)
{
    if (n == 0) {
        return;
    }
    relu_backward_kernel<<<blocks_for(n), CH06_THREADS, 0, layer_stream>>>(y, dy, dx, n);
    CUDA_CHECK(cudaGetLastError());
}

void linear_forward_gpu(GpuGemm backend, const float *x, const float *w, const float *b, float *y, int batch,
                        int in, int out, bool relu)
{
    /* y (batch, out) = x (batch, in) · W^T, W stored (out, in) */
    gemm_gpu(backend, false, true, batch, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
    bias_act_rows_kernel<<<blocks_for((size_t)batch * out), CH06_THREADS, 0, layer_stream>>>(y, b, batch, out, relu);
    CUDA_CHECK(cudaGetLastError());
}

void linear_backward_gpu(GpuGemm backend, const float *x, const float *w, const float *y, const float *dy,
                         bool relu, float *dz_scratch, float *dx, float *dw, float *db, int batch, int in,
                         int out)
{
    const float *dz = dy; /* (batch, out) */
    if (relu) {
        relu_backward_gpu(y, dy, dz_scratch, (size_t)batch * out);
        dz = dz_scratch;
    }
    if (dx) {
        /* dx (batch, in) = dz (batch, out) · W (out, in) */
        gemm_gpu(backend, false, false, batch, in, out, 1.0f, dz, out, w, in, 0.0f, dx, in);
    }
    /* dW (out, in) = dz^T (out, batch) · x (batch, in) */
    gemm_gpu(backend, true, false, out, in, batch, 1.0f, dz, out, x, in, 0.0f, dw, in);
    column_sums_kernel<<<(out + CH06_THREADS - 1) / CH06_THREADS, CH06_THREADS, 0, layer_stream>>>(dz, db, batch, out);
    CUDA_CHECK(cudaGetLastError());
}

/* ---- 8. Softmax + cross-entropy, the loss left on the device ----------------------------------------------- */

/* ONE block: thread t handles rows t, t + blockDim.x, ... (softmax of a row of `classes` values, max
 * subtracted first, and its loss logsumexp - logit[label]); then a shared-memory tree adds the per-thread
 * losses in a fixed order. The loss stays in device memory: the trainer reads it when it wants to (every
 * N steps), and the GPU never waits for the host. */
__global__ void softmax_xent_forward_kernel(const float *logits, const int32_t *labels, float *probs, float *loss,
                                            int batch, int classes)
{
    __shared__ float partial[CH06_THREADS];
    float thread_loss = 0.0f;
    for (int r = threadIdx.x; r < batch; r += blockDim.x) {
        const float *row = logits + (size_t)r * classes;
        float *p = probs + (size_t)r * classes;
        float m = row[0];
        for (int c = 1; c < classes; c++) {
            m = fmaxf(m, row[c]);
        }
        float sum = 0.0f;
        for (int c = 0; c < classes; c++) {
            sum += expf(row[c] - m);
        }
        for (int c = 0; c < classes; c++) {
            p[c] = expf(row[c] - m) / sum;
        }
        const int label = labels[r];
        thread_loss += (label >= 0 && label < classes) ? logf(sum) + m - row[label] : NAN;
    }
    partial[threadIdx.x] = thread_loss;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if ((int)threadIdx.x < stride) {
            partial[threadIdx.x] += partial[threadIdx.x + stride];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        loss[0] = partial[0] / batch;
    }
}

void softmax_xent_forward_gpu(const float *logits, const int32_t *labels, float *probs, float *loss, int batch,
                              int classes)
{
    softmax_xent_forward_kernel<<<1, CH06_THREADS, 0, layer_stream>>>(logits, labels, probs, loss, batch, classes);
    CUDA_CHECK(cudaGetLastError());
}

void softmax_xent_backward_gpu(const float *probs, const int32_t *labels, float *dlogits, int batch, int classes)
{
    if (batch <= 0 || classes <= 0) {
        return;
    }
    softmax_xent_backward_kernel<<<blocks_for((size_t)batch * classes), CH06_THREADS, 0, layer_stream>>>(
        probs, labels, dlogits, batch, classes);
    CUDA_CHECK(cudaGetLastError());
}

/* ---- 9. SGD with momentum: one kernel over every parameter ------------------------------------------------- */

size_t flat_layout(const size_t *sizes, int count, size_t *offsets)
{
    size_t total = 0;
    for (int i = 0; i < count; i++) {
        offsets[i] = total;
        total += (sizes[i] + 3) / 4 * 4;
    }
    return total;
}

/* The update is elementwise and the same for every tensor, so with all parameters (and their gradients and
 * velocities) in one flat buffer, a single launch updates the whole network: 1 launch instead of one per
 * tensor (8 for chapter 03's network), each thread reading p, g, v and writing p, v once. */
__global__ void sgd_momentum_kernel(float *params, const float *grads, float *velocity, size_t n, float lr,
                                    float momentum, float weight_decay)
{
    /* BEGIN EXERCISE ch06.sgd_momentum: for each i < n (grid-stride): g = grads[i] + weight_decay * params[i]; v = momentum * velocity[i] + g; store v; params[i] -= lr * v (about 6 lines) */
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)blockDim.x * gridDim.x) {
        const float g = grads[i] + weight_decay * params[i];
        const float v = momentum * velocity[i] + g;
        velocity[i] = v;
        params[i] -= lr * v;
    }
    /* END EXERCISE */
}

void sgd_momentum_gpu(float *params, const float *grads, float *velocity, size_t n, float lr, float momentum,
                      float weight_decay)
{
    if (n == 0) {
        return;
    }
    sgd_momentum_kernel<<<blocks_for(n), CH06_THREADS, 0, layer_stream>>>(
        params, grads, velocity, n, lr, momentum, weight_decay);
    CUDA_CHECK(cudaGetLastError());
}
