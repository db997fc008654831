/* sgemm_01_naive.cu — Chapter 05, kernel 01: the naive SGEMM, one thread per element of C.
 *
 *   C = alpha * A · B + beta * C      A (m, k), B (k, n), C (m, n), row-major, on the device
 *
 * Thread (x, y) of the grid computes C[row][col] with row = the x index and col = the y index. threadIdx.x
 * is the fastest-varying index inside a warp, so the 32 threads of a warp have 32 consecutive ROWS: at each
 * step p they read A[row][p] from 32 different rows (k floats apart: 32 separate memory transactions) and
 * write C 32 rows apart. That is the uncoalesced access kernel 02 fixes by swapping two lines.
 * Tests: tests/test_sgemm.cu (ctest -L ch05). Lesson: README.md, "01 naive".
 */
#include <cuda_runtime.h>

#include "cuda_check.h"
#include "sgemm.h"
#include "sgemm_common.cuh"

/* Block of 32 x 32 threads; one thread per element of C. */
static constexpr int NAIVE_BLOCK = 32;

__global__ void sgemm_naive_kernel(int m, int n, int k, float alpha, const float *a, const float *b, float beta,
                                   float *c)
{
    /* BEGIN EXERCISE ch05.sgemm_naive: row = blockIdx.x * blockDim.x + threadIdx.x, col from the y indices; if both are inside C, acc = sum over p < k of a[row * k + p] * b[p * n + col], then sgemm_store(&c[row * n + col], alpha, acc, beta) (about 8 lines) | zh: row = blockIdx.x * blockDim.x + threadIdx.x，col 由 y 方向的下标求出；若两者都在 C 之内，acc = 对 p < k 求和 a[row * k + p] * b[p * n + col]，然后 sgemm_store(&c[row * n + col], alpha, acc, beta)（约 8 行） */
    const int row = blockIdx.x * blockDim.x + threadIdx.x;
    const int col = blockIdx.y * blockDim.y + threadIdx.y;
    if (row < m && col < n) {
        float acc = 0.0f;
        for (int p = 0; p < k; p++) {
            acc += a[row * k + p] * b[p * n + col];
        }
        sgemm_store(&c[row * n + col], alpha, acc, beta);
    }
    /* END EXERCISE */
}

void sgemm_01_naive(int m, int n, int k, float alpha, const float *a, const float *b, float beta, float *c)
{
    if (m <= 0 || n <= 0) {
        return;
    }
    dim3 block(NAIVE_BLOCK, NAIVE_BLOCK);
    dim3 grid(ceil_div(m, NAIVE_BLOCK), ceil_div(n, NAIVE_BLOCK));
    sgemm_naive_kernel<<<grid, block>>>(m, n, k, alpha, a, b, beta, c);
    CUDA_CHECK(cudaGetLastError());
}
