/* cuda_gemm.cu — Chapter 06: the stream every launch of the chapter uses, and the row-major GEMM on the GPU:
 * cuBLAS, a shared-memory tiled kernel, or chapter 05's best kernel (declared in cuda_gemm.h). Chapter 03's twin
 * is gemm.c; the convolution (cuda_conv.cu) and the fully connected layer (cuda_layers.cu) run on this GEMM.
 *
 * Checked against cuBLAS and the CPU by tests/test_cuda_layers.cu (cases gemm.*):
 *   ctest --preset default -L ch06          (on the CPU simulator, and on the GPU if there is one)
 * The lesson: chapters/06-cuda-layers/README.md, section 3.
 */
#include <stdio.h>
#include <stdlib.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "cuda_check.h"
#include "cuda_gemm.h"
#include "sgemm.h" /* chapter 05 */

#define CUBLAS_CHECK(call) \
    do { \
        cublasStatus_t cublas_check_status_ = (call); \
        if (cublas_check_status_ != CUBLAS_STATUS_SUCCESS) { \
            fprintf(stderr, "%s:%d: cuBLAS error in %s: %s\n", __FILE__, __LINE__, #call, \
                    cublasGetStatusName(cublas_check_status_)); \
            exit(1); \
        } \
    } while (0)

/* ---- GEMM: cuBLAS, and a shared-memory tiled kernel ------------------------------------------------------ */

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

/* The stream every launch of this chapter (and the cuBLAS handle) uses; 0, the legacy default stream, until
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
