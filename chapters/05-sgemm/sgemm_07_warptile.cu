/* sgemm_07_warptile.cu — Chapter 05, kernel 07: warp tiling.
 *
 *   C = alpha * A · B + beta * C      A (m, k), B (k, n), C (m, n), row-major, on the device
 *
 * One more level in the hierarchy block tile -> WARP tile -> thread tile. A block of 128 threads (4 warps)
 * computes a 128 x 128 tile of C; each warp owns a WM x WN = 64 x 64 quarter of it; inside a warp the 32
 * threads are laid out 8 x 4 over a 64 x 16 "sub-tile", which the warp repeats WNITER = 4 times across
 * its 64 columns. Each thread therefore holds 8 x 16 = 128 results: TM = 8 rows by 4 strips of TN = 4
 * columns, each strip 16 columns from the next.
 * Why: (1) a warp's shared-memory reads now come from a small, compact region (64 rows of A, 64 columns
 * of B per step), so fewer distinct banks/addresses per instruction and better reuse of what registers
 * hold; (2) the tiling matches how the hardware schedules (warps), the structure tensor-core kernels keep.
 * Loads are kernel 06's: float4 from global memory (scalar edge path where k or n is not a multiple of 4),
 * A transposed in shared memory. BK = 16: more work per barrier.
 * Tests: tests/test_sgemm.cu (ctest -L ch05). Lesson: README.md, "07 warp tiling".
 */
#include <cuda_runtime.h>

#include "cuda_check.h"
#include "sgemm.h"
#include "sgemm_common.cuh"

static constexpr int THREADS = 128;
static constexpr int BM = 128; /* block tile */
static constexpr int BN = 128;
static constexpr int BK = 16;
static constexpr int WM = 64; /* warp tile */
static constexpr int WN = 64;
static constexpr int WNITER = 4; /* sub-tiles per warp along n */
static constexpr int TM = 8; /* thread tile inside one sub-tile */
static constexpr int TN = 4;
static constexpr int WMITER = (WM * WN) / (32 * TM * TN * WNITER); /* sub-tiles per warp along m: 1 */
static constexpr int WSUBM = WM / WMITER; /* 64 */
static constexpr int WSUBN = WN / WNITER; /* 16 */
static_assert((BM / WM) * (BN / WN) * 32 == THREADS, "one warp per warp tile");
static_assert(WMITER >= 1 && (WSUBM / TM) * (WSUBN / TN) == 32, "a sub-tile is 32 threads' thread tiles");
static_assert((BM * BK) % (THREADS * 4) == 0 && (BK * BN) % (THREADS * 4) == 0, "whole float4 passes");

/* Launched with THREADS threads (1D) and gridDim (ceil(n / BN), ceil(m / BM)). */
__global__ void __launch_bounds__(THREADS) sgemm_warptile_kernel(int m, int n, int k, float alpha, const float *a,
                                                                   const float *b, float beta, float *c,
                                                                   bool vec_a, bool vec_b, bool vec_c)
{
    __shared__ __align__(16) float a_tile_t[BK * BM]; /* (BK, BM): the A tile, transposed */
    __shared__ __align__(16) float b_tile[BK * BN]; /* (BK, BN) */
    const int block_row = blockIdx.y * BM;
    const int block_col = blockIdx.x * BN;
    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int warp_row = warp / (BN / WN); /* which 64 x 64 quarter of the block tile */
    const int warp_col = warp % (BN / WN);
    const int lane_row = lane / (WSUBN / TN); /* 0..7: the thread's place inside a sub-tile */
    const int lane_col = lane % (WSUBN / TN); /* 0..3 */
    float acc[WMITER * TM][WNITER * TN] = {{0.0f}};
    float reg_a[WMITER * TM];
    float reg_b[WNITER * TN];
    for (int k0 = 0; k0 < k; k0 += BK) {
        load_a_tile_transposed<BM, BK, THREADS>(a, m, k, k, block_row, k0, vec_a, a_tile_t);
        load_b_tile<BK, BN, THREADS>(b, k, n, n, k0, block_col, vec_b, b_tile);
        __syncthreads();
        UNROLL
        for (int p = 0; p < BK; p++) {
            UNROLL
            for (int wm = 0; wm < WMITER; wm++) {
                const float *src = &a_tile_t[p * BM + warp_row * WM + wm * WSUBM + lane_row * TM];
                UNROLL
                for (int i = 0; i < TM; i += 4) {
                    const float4 v = *reinterpret_cast<const float4 *>(&src[i]);
                    reg_a[wm * TM + i] = v.x;
                    reg_a[wm * TM + i + 1] = v.y;
                    reg_a[wm * TM + i + 2] = v.z;
                    reg_a[wm * TM + i + 3] = v.w;
                }
            }
            UNROLL
            for (int wn = 0; wn < WNITER; wn++) {
                const float4 v = *reinterpret_cast<const float4 *>(
                    &b_tile[p * BN + warp_col * WN + wn * WSUBN + lane_col * TN]);
                reg_b[wn * TN] = v.x;
                reg_b[wn * TN + 1] = v.y;
                reg_b[wn * TN + 2] = v.z;
                reg_b[wn * TN + 3] = v.w;
            }
            UNROLL
            for (int i = 0; i < WMITER * TM; i++) {
                UNROLL
                for (int j = 0; j < WNITER * TN; j++) {
                    acc[i][j] += reg_a[i] * reg_b[j];
                }
            }
        }
        __syncthreads();
    }
    UNROLL
    for (int wm = 0; wm < WMITER; wm++) {
        UNROLL
        for (int i = 0; i < TM; i++) {
            const int row = block_row + warp_row * WM + wm * WSUBM + lane_row * TM + i;
            UNROLL
            for (int wn = 0; wn < WNITER; wn++) {
                const int col = block_col + warp_col * WN + wn * WSUBN + lane_col * TN;
                const float *r = acc[wm * TM + i] + wn * TN;
                store_float4(c, m, n, row, col, vec_c, alpha, make_float4(r[0], r[1], r[2], r[3]), beta);
            }
        }
    }
}

void sgemm_07_warptile(int m, int n, int k, float alpha, const float *a, const float *b, float beta, float *c)
{
    if (m <= 0 || n <= 0) {
        return;
    }
    const bool vec_a = k % 4 == 0 && aligned16(a);
    const bool vec_b = n % 4 == 0 && aligned16(b);
    const bool vec_c = n % 4 == 0 && aligned16(c);
    dim3 grid(ceil_div(n, BN), ceil_div(m, BM));
    sgemm_warptile_kernel<<<grid, THREADS>>>(m, n, k, alpha, a, b, beta, c, vec_a, vec_b, vec_c);
    CUDA_CHECK(cudaGetLastError());
}
