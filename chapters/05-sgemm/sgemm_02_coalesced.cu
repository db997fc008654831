/* sgemm_02_coalesced.cu — Chapter 05, kernel 02: the naive SGEMM with coalesced memory accesses.
 *
 *   C = alpha * A · B + beta * C      A (m, k), B (k, n), C (m, n), row-major, on the device
 *
 * The only change from kernel 01: the fast index threadIdx.x now picks the COLUMN. The 32 threads of a warp
 * then share one row: at step p they all read the same A[row][p] (one broadcast load) and 32 consecutive
 * floats B[p][col .. col+31] (one 128-byte transaction), and they write 32 consecutive floats of C. Same
 * arithmetic, a fraction of the memory transactions.
 * Tests: tests/test_sgemm.cu (ctest -L ch05). Lesson: README.md, "02 coalescing".
 */
#include <cuda_runtime.h>

#include "cuda_check.h"
#include "sgemm.h"
#include "sgemm_common.cuh"

static constexpr int COALESCED_BLOCK = 32;

__global__ void sgemm_coalesced_kernel(int m, int n, int k, float alpha, const float *a, const float *b,
                                       float beta, float *c)
{
    const int col = blockIdx.x * blockDim.x + threadIdx.x; /* consecutive threads: consecutive columns */
    const int row = blockIdx.y * blockDim.y + threadIdx.y;
    if (row < m && col < n) {
        float acc = 0.0f;
        for (int p = 0; p < k; p++) {
            acc += a[row * k + p] * b[p * n + col];
        }
        sgemm_store(&c[row * n + col], alpha, acc, beta);
    }
}

void sgemm_02_coalesced(int m, int n, int k, float alpha, const float *a, const float *b, float beta, float *c)
{
    if (m <= 0 || n <= 0) {
        return;
    }
    dim3 block(COALESCED_BLOCK, COALESCED_BLOCK);
    dim3 grid(ceil_div(n, COALESCED_BLOCK), ceil_div(m, COALESCED_BLOCK));
    sgemm_coalesced_kernel<<<grid, block>>>(m, n, k, alpha, a, b, beta, c);
    CUDA_CHECK(cudaGetLastError());
}
