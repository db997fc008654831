/* sgemm_06_vectorized.cu — Chapter 05, kernel 06: float4 (16-byte) loads and a transposed A tile.
 *
 *   C = alpha * A · B + beta * C      A (m, k), B (k, n), C (m, n), row-major, on the device
 *
 * Kernel 05's blocking (128 x 128 per block, 8 x 8 per thread, BK = 8), with two changes:
 *   1. Global memory is read and written four floats at a time (float4: one 128-bit instruction instead
 *      of four 32-bit ones). Each thread loads one float4 of the A tile and one of the B tile per step.
 *   2. The A tile is stored TRANSPOSED in shared memory, a_tile_t (BK, BM), so that the TM values of A a
 *      thread needs at step p (rows thread_row * TM ... + 7 of column p) are contiguous: two float4 loads
 *      from shared memory instead of eight scalar loads with a stride of BK floats.
 * Alignment: a float4 load needs an address that is a multiple of 16 bytes. A[row][col] with col % 4 == 0
 * is at such an address only if the row length k is a multiple of 4 (and A itself is 16-byte aligned, as
 * cudaMalloc's memory is). So the host checks k % 4 and n % 4 (and the pointers) and passes vec_a, vec_b,
 * vec_c; where a flag is false, or a float4 would cross the matrix's right edge, load_float4/store_float4
 * (sgemm_common.cuh) fall back to four bounds-checked scalar accesses: the scalar edge path.
 * Tests: tests/test_sgemm.cu (ctest -L ch05). Lesson: README.md, "06 vectorised loads".
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
static_assert(THREADS * 4 == BM * BK && THREADS * 4 == BK * BN, "one float4 of each tile per thread");

/* Launched with THREADS threads (1D) and gridDim (ceil(n / BN), ceil(m / BM)). */
__global__ void __launch_bounds__(THREADS) sgemm_vectorized_kernel(int m, int n, int k, float alpha,
                                                                     const float *a, const float *b, float beta,
                                                                     float *c, bool vec_a, bool vec_b, bool vec_c)
{
    /* __align__(16): the float4 reads and writes below need 16-byte-aligned shared addresses. */
    __shared__ __align__(16) float a_tile_t[BK * BM]; /* (BK, BM): the A tile, transposed */
    __shared__ __align__(16) float b_tile[BK * BN]; /* (BK, BN) */
    const int block_row = blockIdx.y * BM;
    const int block_col = blockIdx.x * BN;
    const int thread_row = threadIdx.x / (BN / TN);
    const int thread_col = threadIdx.x % (BN / TN);
    float acc[TM][TN] = {{0.0f}};
    float reg_a[TM];
    float reg_b[TN];
    for (int k0 = 0; k0 < k; k0 += BK) {
        load_a_tile_transposed<BM, BK, THREADS>(a, m, k, k, block_row, k0, vec_a, a_tile_t);
        load_b_tile<BK, BN, THREADS>(b, k, n, n, k0, block_col, vec_b, b_tile);
        __syncthreads();
        UNROLL
        for (int p = 0; p < BK; p++) {
            UNROLL
            for (int i = 0; i < TM; i += 4) { /* contiguous thanks to the transpose: float4 from shared */
                const float4 v = *reinterpret_cast<const float4 *>(&a_tile_t[p * BM + thread_row * TM + i]);
                reg_a[i] = v.x;
                reg_a[i + 1] = v.y;
                reg_a[i + 2] = v.z;
                reg_a[i + 3] = v.w;
            }
            UNROLL
            for (int j = 0; j < TN; j += 4) {
                const float4 v = *reinterpret_cast<const float4 *>(&b_tile[p * BN + thread_col * TN + j]);
                reg_b[j] = v.x;
                reg_b[j + 1] = v.y;
                reg_b[j + 2] = v.z;
                reg_b[j + 3] = v.w;
            }
            UNROLL
            for (int i = 0; i < TM; i++) {
                UNROLL
                for (int j = 0; j < TN; j++) {
                    acc[i][j] += reg_a[i] * reg_b[j];
                }
            }
        }
        __syncthreads();
    }
    UNROLL
    for (int i = 0; i < TM; i++) {
        const int row = block_row + thread_row * TM + i;
        UNROLL
        for (int j = 0; j < TN; j += 4) {
            const float4 results = make_float4(acc[i][j], acc[i][j + 1], acc[i][j + 2], acc[i][j + 3]);
            store_float4(c, m, n, row, block_col + thread_col * TN + j, vec_c, alpha, results, beta);
        }
    }
}

void sgemm_06_vectorized(int m, int n, int k, float alpha, const float *a, const float *b, float beta, float *c)
{
    if (m <= 0 || n <= 0) {
        return;
    }
    const bool vec_a = k % 4 == 0 && aligned16(a);
    const bool vec_b = n % 4 == 0 && aligned16(b);
    const bool vec_c = n % 4 == 0 && aligned16(c);
    dim3 grid(ceil_div(n, BN), ceil_div(m, BM));
    sgemm_vectorized_kernel<<<grid, THREADS>>>(m, n, k, alpha, a, b, beta, c, vec_a, vec_b, vec_c);
    CUDA_CHECK(cudaGetLastError());
}
