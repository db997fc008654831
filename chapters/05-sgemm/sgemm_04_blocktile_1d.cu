/* sgemm_04_blocktile_1d.cu — Chapter 05, kernel 04: 1D register blocking (each thread computes TM results).
 *
 *   C = alpha * A · B + beta * C      A (m, k), B (k, n), C (m, n), row-major, on the device
 *
 * Kernel 03 does one multiply-add per two shared-memory loads: shared memory, not arithmetic, is then the
 * limit. Here a block of BM * BN / TM = 512 threads computes a BM x BN = 64 x 64 tile of C, and each thread
 * a column of TM = 8 results, kept in registers. In the inner loop a thread loads one value of B from
 * shared memory into a register and reuses it for its TM rows: TM multiply-adds for TM + 1 shared loads.
 * Tiles of A (BM x BK) and B (BK x BN) with BK = 8: each of the 512 threads loads exactly one float of each.
 * Tests: tests/test_sgemm.cu (ctest -L ch05). Lesson: README.md, "04 1D register blocking".
 */
#include <cuda_runtime.h>

#include "cuda_check.h"
#include "sgemm.h"
#include "sgemm_common.cuh"

static constexpr int BM = 64; /* rows of C per block */
static constexpr int BN = 64; /* columns of C per block */
static constexpr int BK = 8; /* values of k per shared tile */
static constexpr int TM = 8; /* rows of C per thread */
static constexpr int THREADS = BM * BN / TM; /* 512 */
static_assert(THREADS == BM * BK && THREADS == BK * BN, "each thread loads one float of each tile");

/* Launched with THREADS threads (1D) and gridDim (ceil(n / BN), ceil(m / BM)). */
__global__ void sgemm_blocktile_1d_kernel(int m, int n, int k, float alpha, const float *a, const float *b,
                                          float beta, float *c)
{
    /* BEGIN EXERCISE ch05.sgemm_1d_blocktile: shared a_tile (BM * BK) and b_tile (BK * BN); thread t loads a_tile[t] = A[block_row + t / BK][k0 + t % BK] and b_tile[t] = B[k0 + t / BN][block_col + t % BN] (0 outside), barrier; then for each p < BK: b_val = b_tile[p * BN + t % BN], and acc[i] += a_tile[((t / BN) * TM + i) * BK + p] * b_val for i < TM; barrier; finally store the TM results of rows block_row + (t / BN) * TM + i (about 30 lines) | zh: 共享内存 a_tile (BM * BK) 和 b_tile (BK * BN)；线程 t 载入 a_tile[t] = A[block_row + t / BK][k0 + t % BK] 和 b_tile[t] = B[k0 + t / BN][block_col + t % BN]（矩阵外为 0），屏障；然后对每个 p < BK：b_val = b_tile[p * BN + t % BN]，对 i < TM 累加 acc[i] += a_tile[((t / BN) * TM + i) * BK + p] * b_val；屏障；最后写出第 block_row + (t / BN) * TM + i 行的 TM 个结果（约 30 行） */
    __shared__ float a_tile[BM * BK]; /* (BM, BK) */
    __shared__ float b_tile[BK * BN]; /* (BK, BN) */
    const int block_row = blockIdx.y * BM;
    const int block_col = blockIdx.x * BN;
    const int t = threadIdx.x;
    const int thread_col = t % BN; /* the column of C this thread computes */
    const int thread_row = t / BN; /* its TM rows are thread_row * TM ... + TM - 1 */
    float acc[TM] = {0.0f}; /* the thread's TM results, in registers */
    for (int k0 = 0; k0 < k; k0 += BK) {
        const int a_row = block_row + t / BK, a_col = k0 + t % BK;
        a_tile[t] = (a_row < m && a_col < k) ? a[a_row * k + a_col] : 0.0f;
        const int b_row = k0 + t / BN, b_col = block_col + t % BN;
        b_tile[t] = (b_row < k && b_col < n) ? b[b_row * n + b_col] : 0.0f;
        __syncthreads();
        for (int p = 0; p < BK; p++) {
            const float b_val = b_tile[p * BN + thread_col]; /* loaded once, used TM times */
            for (int i = 0; i < TM; i++) {
                acc[i] += a_tile[(thread_row * TM + i) * BK + p] * b_val;
            }
        }
        __syncthreads();
    }
    const int col = block_col + thread_col;
    for (int i = 0; i < TM; i++) {
        const int row = block_row + thread_row * TM + i;
        if (row < m && col < n) {
            sgemm_store(&c[row * n + col], alpha, acc[i], beta);
        }
    }
    /* END EXERCISE */
}

void sgemm_04_blocktile_1d(int m, int n, int k, float alpha, const float *a, const float *b, float beta,
                           float *c)
{
    if (m <= 0 || n <= 0) {
        return;
    }
    dim3 grid(ceil_div(n, BN), ceil_div(m, BM));
    sgemm_blocktile_1d_kernel<<<grid, THREADS>>>(m, n, k, alpha, a, b, beta, c);
    CUDA_CHECK(cudaGetLastError());
}
