/* sgemm_03_shared_tiling.cu — Chapter 05, kernel 03: shared-memory tiling.
 *
 *   C = alpha * A · B + beta * C      A (m, k), B (k, n), C (m, n), row-major, on the device
 *
 * A block of TILE x TILE threads computes a TILE x TILE tile of C. It walks along k in steps of TILE: each
 * step, every thread loads ONE element of the A tile and ONE of the B tile into shared memory (coalesced:
 * threadIdx.x runs along a row), the block waits at a barrier, and each thread does TILE multiply-adds
 * from shared memory. Every float loaded from global memory is now used TILE times (once per thread of its
 * row or column), instead of once. Outside the matrices the tiles are filled with zeros, which add nothing
 * to the sums: that is how any m, n, k works.
 * Tests: tests/test_sgemm.cu (ctest -L ch05). Lesson: README.md, "03 shared-memory tiling".
 */
#include <cuda_runtime.h>

#include "cuda_check.h"
#include "sgemm.h"
#include "sgemm_common.cuh"

static constexpr int TILE = 32;

/* Launched with blockDim (TILE, TILE) and gridDim (ceil(n / TILE), ceil(m / TILE)). */
__global__ void sgemm_tiled_kernel(int m, int n, int k, float alpha, const float *a, const float *b, float beta,
                                   float *c)
{
    /* BEGIN EXERCISE ch05.sgemm_tiled: declare two shared-memory arrays a_tile and b_tile of TILE x TILE floats; row = blockIdx.y * TILE + threadIdx.y, col = blockIdx.x * TILE + threadIdx.x; for k0 = 0, TILE, ... < k: load a[row][k0 + threadIdx.x] and b[k0 + threadIdx.y][col] (0 outside the matrix), __syncthreads(), add the TILE products a_tile[ty][p] * b_tile[p][tx], __syncthreads(); finally sgemm_store if row < m and col < n (about 20 lines) | zh: 声明两个 TILE x TILE 个 float 的共享内存（shared memory）数组 a_tile 和 b_tile；row = blockIdx.y * TILE + threadIdx.y，col = blockIdx.x * TILE + threadIdx.x；对 k0 = 0, TILE, ... < k：载入 a[row][k0 + threadIdx.x] 和 b[k0 + threadIdx.y][col]（矩阵外为 0），__syncthreads()，累加 TILE 个乘积 a_tile[ty][p] * b_tile[p][tx]，__syncthreads()；最后在 row < m 且 col < n 时 sgemm_store（约 20 行） */
    __shared__ float a_tile[TILE][TILE]; /* (TILE rows of A, TILE values of k) */
    __shared__ float b_tile[TILE][TILE]; /* (TILE values of k, TILE columns of B) */
    const int tx = threadIdx.x;
    const int ty = threadIdx.y;
    const int row = blockIdx.y * TILE + ty;
    const int col = blockIdx.x * TILE + tx;
    float acc = 0.0f;
    for (int k0 = 0; k0 < k; k0 += TILE) {
        a_tile[ty][tx] = (row < m && k0 + tx < k) ? a[row * k + k0 + tx] : 0.0f;
        b_tile[ty][tx] = (k0 + ty < k && col < n) ? b[(k0 + ty) * n + col] : 0.0f;
        __syncthreads(); /* the whole tile is loaded before anyone reads it */
        for (int p = 0; p < TILE; p++) {
            acc += a_tile[ty][p] * b_tile[p][tx];
        }
        __syncthreads(); /* everyone has finished reading before the next step overwrites the tile */
    }
    if (row < m && col < n) {
        sgemm_store(&c[row * n + col], alpha, acc, beta);
    }
    /* END EXERCISE */
}

void sgemm_03_shared_tiling(int m, int n, int k, float alpha, const float *a, const float *b, float beta,
                            float *c)
{
    if (m <= 0 || n <= 0) {
        return;
    }
    dim3 block(TILE, TILE);
    dim3 grid(ceil_div(n, TILE), ceil_div(m, TILE));
    sgemm_tiled_kernel<<<grid, block>>>(m, n, k, alpha, a, b, beta, c);
    CUDA_CHECK(cudaGetLastError());
}
