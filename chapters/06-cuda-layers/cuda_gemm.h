/* cuda_gemm.h — Chapter 06's base: the stream every function of the chapter launches on, the grid size of its
 * one-thread-per-element kernels, and the row-major GEMM on the GPU (cuBLAS, a shared-memory tiled kernel, or
 * chapter 05's best kernel). Chapter 03's twin is gemm.h; the convolution (cuda_conv.h) and the fully
 * connected layer (cuda_layers.h) run on this GEMM.
 *
 * Every function takes DEVICE pointers, launches on the chapter's stream and returns at once (no allocation
 * after the first cuBLAS call, no waiting for the GPU). Row-major, shapes beside every array.
 *
 * Build and test (no GPU needed: the CPU simulator runs the same code):
 *   cmake --preset default && cmake --build --preset default && ctest --preset default -L ch06
 * The lesson: chapters/06-cuda-layers/README.md (sections 1 and 3)
 */
#ifndef CH06_CUDA_GEMM_H
#define CH06_CUDA_GEMM_H

#include <stdbool.h>
#include <stddef.h>

#include <cuda_runtime.h>

/* Threads per block of the one-thread-per-element kernels. */
#define CH06_THREADS 256
/* Tile edge of the tiled GEMM kernel: a 16x16 block computes a 16x16 tile of C. */
#define CH06_TILE 16
/* Most blocks of a grid-stride kernel; each thread loops over the rest. */
#define CH06_MAX_BLOCKS 4096

/* Blocks of CH06_THREADS for a grid-stride kernel over n elements: enough for one element per thread, at
 * least 1, at most CH06_MAX_BLOCKS. */
static inline int ch06_blocks_for(size_t n)
{
    size_t blocks = (n + CH06_THREADS - 1) / CH06_THREADS;
    return blocks < CH06_MAX_BLOCKS ? (int)(blocks ? blocks : 1) : CH06_MAX_BLOCKS;
}

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
    GPU_GEMM_TILED = 1, /* gemm_tiled_kernel (cuda_gemm.cu): shared-memory tiles, one output per thread */
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

#endif
