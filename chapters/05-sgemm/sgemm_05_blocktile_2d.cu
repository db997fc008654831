/* sgemm_05_blocktile_2d.cu — Chapter 05, kernel 05: 2D register blocking (each thread an 8x8 square of C).
 *
 *   C = alpha * A · B + beta * C      A (m, k), B (k, n), C (m, n), row-major, on the device
 *
 * A block of 256 threads computes a BM x BN = 128 x 128 tile of C, each thread a TM x TN = 8 x 8 square.
 * In the inner loop a thread copies TM values of A (a column of the A tile) and TN values of B (a row of the
 * B tile) into registers, then does their outer product: TM * TN = 64 multiply-adds for TM + TN = 16 shared
 * loads (kernel 04: 8 for 9; kernel 03: 1 for 2). Per block, every float loaded from global memory is used
 * 128 times. Each thread loads 4 floats of each tile (BM * BK / 256).
 * Tests: tests/test_sgemm.cu (ctest -L ch05). Lesson: README.md, "05 2D register blocking".
 */
#include <cuda_runtime.h>

#include "cuda_check.h"
#include "sgemm.h"
#include "sgemm_common.cuh"

static constexpr int BM = 128;
static constexpr int BN = 128;
static constexpr int BK = 8;
static constexpr int TM = 8;
static constexpr int TN = 8;
static constexpr int THREADS = (BM / TM) * (BN / TN); /* 256 */
static_assert(THREADS % BK == 0 && THREADS % BN == 0, "the tile loads below need these");

/* Launched with THREADS threads (1D) and gridDim (ceil(n / BN), ceil(m / BM)). */
__global__ void sgemm_blocktile_2d_kernel(int m, int n, int k, float alpha, const float *a, const float *b,
                                          float beta, float *c)
{
    /* BEGIN EXERCISE ch05.sgemm_2d_blocktile: as kernel 04, but each thread loads BM * BK / THREADS floats of each tile (rows t / BK + i * THREADS / BK of A), and for each p copies reg_a[i] = a_tile[(thread_row * TM + i) * BK + p] and reg_b[j] = b_tile[p * BN + thread_col * TN + j], then acc[i][j] += reg_a[i] * reg_b[j]; store the TM x TN results (about 40 lines) | zh: 同内核 04，但每个线程载入每块中的 BM * BK / THREADS 个 float（A 的第 t / BK + i * THREADS / BK 行），对每个 p 复制 reg_a[i] = a_tile[(thread_row * TM + i) * BK + p] 和 reg_b[j] = b_tile[p * BN + thread_col * TN + j]，再 acc[i][j] += reg_a[i] * reg_b[j]；写出 TM x TN 个结果（约 40 行） */
    __shared__ float a_tile[BM * BK]; /* (BM, BK) */
    __shared__ float b_tile[BK * BN]; /* (BK, BN) */
    const int block_row = blockIdx.y * BM;
    const int block_col = blockIdx.x * BN;
    const int t = threadIdx.x;
    const int thread_row = t / (BN / TN); /* this thread's rows: thread_row * TM ... + TM - 1 */
    const int thread_col = t % (BN / TN); /* its columns: thread_col * TN ... + TN - 1 */
    /* Tile loads: consecutive threads take consecutive columns (coalesced); a pass of all THREADS threads
     * covers THREADS / BK rows of the A tile and THREADS / BN rows of the B tile. */
    const int a_load_row = t / BK, a_load_col = t % BK;
    const int b_load_row = t / BN, b_load_col = t % BN;
    float acc[TM][TN] = {{0.0f}};
    float reg_a[TM];
    float reg_b[TN];
    for (int k0 = 0; k0 < k; k0 += BK) {
        for (int r = a_load_row; r < BM; r += THREADS / BK) {
            const int row = block_row + r, col = k0 + a_load_col;
            a_tile[r * BK + a_load_col] = (row < m && col < k) ? a[row * k + col] : 0.0f;
        }
        for (int r = b_load_row; r < BK; r += THREADS / BN) {
            const int row = k0 + r, col = block_col + b_load_col;
            b_tile[r * BN + b_load_col] = (row < k && col < n) ? b[row * n + col] : 0.0f;
        }
        __syncthreads();
        for (int p = 0; p < BK; p++) {
            for (int i = 0; i < TM; i++) {
                reg_a[i] = a_tile[(thread_row * TM + i) * BK + p];
            }
            for (int j = 0; j < TN; j++) {
                reg_b[j] = b_tile[p * BN + thread_col * TN + j];
            }
            for (int i = 0; i < TM; i++) {
                for (int j = 0; j < TN; j++) {
                    acc[i][j] += reg_a[i] * reg_b[j]; /* the outer product of a column and a row */
                }
            }
        }
        __syncthreads();
    }
    for (int i = 0; i < TM; i++) {
        const int row = block_row + thread_row * TM + i;
        for (int j = 0; j < TN; j++) {
            const int col = block_col + thread_col * TN + j;
            if (row < m && col < n) {
                sgemm_store(&c[row * n + col], alpha, acc[i][j], beta);
            }
        }
    }
    /* END EXERCISE */
}

void sgemm_05_blocktile_2d(int m, int n, int k, float alpha, const float *a, const float *b, float beta,
                           float *c)
{
    if (m <= 0 || n <= 0) {
        return;
    }
    dim3 grid(ceil_div(n, BN), ceil_div(m, BM));
    sgemm_blocktile_2d_kernel<<<grid, THREADS>>>(m, n, k, alpha, a, b, beta, c);
    CUDA_CHECK(cudaGetLastError());
}
