/* sgemm_08_splitk.cu — Chapter 05, kernel 08: kernel 07 fitted to the shape — a smaller block tile for
 * short matrices, and split-K for long, thin products.
 *
 *   C = alpha * A · B + beta * C      A (m, k), B (k, n), C (m, n), row-major, on the device
 *
 * Kernel 07 launches one block per 128 x 128 tile of C. For the trainer's GEMMs that is the wrong grain
 * (lesson, section 3): with m = 64 half of every tile is padding, and the weight gradient of conv2
 * (64 x 288, k = 36864) or fc1's forward pass (64 x 128, k = 9216) give 3 blocks and 1 block to a GPU
 * with over a hundred SMs, each block walking a very long k alone. This kernel is kernel 07's warp-tiled
 * code made a template over its tile sizes, and its launcher:
 *   1. picks a 64 x 128 block tile (warp tile 32 x 64) when m <= 64 or when 128 x 128 tiles would not give
 *      every SM a block, else kernel 07's 128 x 128;
 *   2. if that still gives fewer than 2 blocks per SM, splits k into S slices ("split-K", gridDim.z = S):
 *      block z computes the partial product over its slice of k into a workspace (S, m, n), and a second
 *      kernel adds the S partial sums in a fixed order (deterministic) and applies alpha and beta.
 * sgemm_08_splitk_with() forces the tile and S, for the tests. Edges, float4 and the scalar edge path are
 * kernel 06/07's (sgemm_common.cuh).
 * Tests: tests/test_sgemm.cu (ctest -L ch05). Lesson: README.md, "Kernel 08".
 */
#include <cuda_runtime.h>

#include "cuda_check.h"
#include "sgemm.h"
#include "sgemm_common.cuh"

static constexpr int BK = 16;
static constexpr int TM = 8;
static constexpr int TN = 4;
/* Each slice of k gets at least this many values: fewer would make the workspace traffic dominate. */
static constexpr int MIN_K_PER_SLICE = 64;
static constexpr int MAX_SLICES = 256;

/* As sgemm_warptile_kernel (kernel 07), for block tile BM x BN and warp tile WM x WN, over the slice
 * [blockIdx.z * k_slice, min(k, (blockIdx.z + 1) * k_slice)) of k. With partial == NULL it writes
 * alpha * sum + beta * C to C; otherwise the raw sum to partial[blockIdx.z] (m, n). */
template <int BM, int BN, int WM, int WN, int WNITER, int THREADS>
__global__ void __launch_bounds__(THREADS) sgemm_splitk_kernel(int m, int n, int k, int k_slice, float alpha,
                                                                 const float *a, const float *b, float beta,
                                                                 float *c, float *partial, bool vec_a, bool vec_b,
                                                                 bool vec_c)
{
    constexpr int WMITER = (WM * WN) / (32 * TM * TN * WNITER);
    constexpr int WSUBM = WM / WMITER;
    constexpr int WSUBN = WN / WNITER;
    static_assert((BM / WM) * (BN / WN) * 32 == THREADS, "one warp per warp tile");
    static_assert(WMITER >= 1 && (WSUBM / TM) * (WSUBN / TN) == 32, "a sub-tile is 32 threads' thread tiles");
    static_assert((BM * BK) % (THREADS * 4) == 0 && (BK * BN) % (THREADS * 4) == 0, "whole float4 passes");
    __shared__ __align__(16) float a_tile_t[BK * BM]; /* (BK, BM): the A tile, transposed */
    __shared__ __align__(16) float b_tile[BK * BN]; /* (BK, BN) */
    const int block_row = blockIdx.y * BM;
    const int block_col = blockIdx.x * BN;
    const int k_begin = blockIdx.z * k_slice;
    const int k_end = k_begin + k_slice < k ? k_begin + k_slice : k;
    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int warp_row = warp / (BN / WN);
    const int warp_col = warp % (BN / WN);
    const int lane_row = lane / (WSUBN / TN);
    const int lane_col = lane % (WSUBN / TN);
    float acc[WMITER * TM][WNITER * TN] = {{0.0f}};
    float reg_a[WMITER * TM];
    float reg_b[WNITER * TN];
    for (int k0 = k_begin; k0 < k_end; k0 += BK) {
        load_a_tile_transposed<BM, BK, THREADS>(a, m, k_end, k, block_row, k0, vec_a, a_tile_t);
        load_b_tile<BK, BN, THREADS>(b, k_end, n, n, k0, block_col, vec_b, b_tile);
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
    /* Split: this block's partial sums, unscaled, to its own (m, n) slice of the workspace. */
    float *out = partial ? partial + (size_t)blockIdx.z * m * n : c;
    const float out_alpha = partial ? 1.0f : alpha;
    const float out_beta = partial ? 0.0f : beta;
    UNROLL
    for (int wm = 0; wm < WMITER; wm++) {
        UNROLL
        for (int i = 0; i < TM; i++) {
            const int row = block_row + warp_row * WM + wm * WSUBM + lane_row * TM + i;
            UNROLL
            for (int wn = 0; wn < WNITER; wn++) {
                const int col = block_col + warp_col * WN + wn * WSUBN + lane_col * TN;
                const float *r = acc[wm * TM + i] + wn * TN;
                store_float4(out, m, n, row, col, vec_c, out_alpha, make_float4(r[0], r[1], r[2], r[3]), out_beta);
            }
        }
    }
}

/* C = alpha * sum_z partial[z] + beta * C over the m * n elements (a grid-stride loop); the slices are
 * added in order z = 0, 1, ..., so the result does not depend on which block finished first. */
__global__ void splitk_reduce_kernel(int count, int slices, float alpha, const float *partial, float beta, float *c)
{
    for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < count; e += blockDim.x * gridDim.x) {
        float sum = 0.0f;
        for (int z = 0; z < slices; z++) {
            sum += partial[(size_t)z * count + e];
        }
        sgemm_store(&c[e], alpha, sum, beta);
    }
}

/* The device's SM count (asked once). */
static int sm_count(void)
{
    static int sms = 0;
    if (sms == 0) {
        CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
        if (sms < 1) {
            sms = 1;
        }
    }
    return sms;
}

/* A workspace of at least `floats` floats, kept between calls (grown when too small; never freed: it lives
 * as long as the program, like cuBLAS's own workspace). */
static float *workspace(size_t floats)
{
    static float *buffer = nullptr;
    static size_t capacity = 0;
    if (floats > capacity) {
        if (buffer) {
            CUDA_CHECK(cudaDeviceSynchronize()); /* a running kernel may still use the old one */
            CUDA_CHECK(cudaFree(buffer));
        }
        CUDA_CHECK(cudaMalloc(&buffer, floats * sizeof(float)));
        capacity = floats;
    }
    return buffer;
}

template <int BM, int BN, int WM, int WN, int WNITER, int THREADS>
static void launch(int m, int n, int k, int slices, float alpha, const float *a, const float *b, float beta,
                   float *c)
{
    const bool vec_a = k % 4 == 0 && aligned16(a);
    const bool vec_b = n % 4 == 0 && aligned16(b);
    /* k_slice: a multiple of BK (so that every slice but the last is whole tiles), and slices recounted so
     * that none is empty */
    const int k_slice = slices > 1 ? ceil_div(ceil_div(k, slices), BK) * BK : (k > 0 ? k : 1);
    slices = slices > 1 ? ceil_div(k, k_slice) : 1;
    dim3 grid(ceil_div(n, BN), ceil_div(m, BM), slices);
    if (slices == 1) {
        const bool vec_c = n % 4 == 0 && aligned16(c);
        sgemm_splitk_kernel<BM, BN, WM, WN, WNITER, THREADS>
            <<<grid, THREADS>>>(m, n, k, k_slice, alpha, a, b, beta, c, nullptr, vec_a, vec_b, vec_c);
        CUDA_CHECK(cudaGetLastError());
        return;
    }
    float *partial = workspace((size_t)slices * m * n); /* (slices, m, n); cudaMalloc'ed: 256-byte aligned */
    sgemm_splitk_kernel<BM, BN, WM, WN, WNITER, THREADS>
        <<<grid, THREADS>>>(m, n, k, k_slice, 1.0f, a, b, 0.0f, c, partial, vec_a, vec_b, n % 4 == 0);
    CUDA_CHECK(cudaGetLastError());
    const int count = m * n;
    const int blocks = ceil_div(count, 256) < 4096 ? ceil_div(count, 256) : 4096;
    splitk_reduce_kernel<<<blocks, 256>>>(count, slices, alpha, partial, beta, c);
    CUDA_CHECK(cudaGetLastError());
}

void sgemm_08_splitk_with(int m, int n, int k, float alpha, const float *a, const float *b, float beta, float *c,
                          bool small_tile, int slices)
{
    if (m <= 0 || n <= 0) {
        return;
    }
    if (slices < 1) {
        slices = 1;
    }
    if (small_tile) { /* 64 x 128 block, four 32 x 64 warp tiles */
        launch<64, 128, 32, 64, 2, 128>(m, n, k, slices, alpha, a, b, beta, c);
    } else { /* kernel 07's 128 x 128 block, four 64 x 64 warp tiles */
        launch<128, 128, 64, 64, 4, 128>(m, n, k, slices, alpha, a, b, beta, c);
    }
}

void sgemm_08_splitk(int m, int n, int k, float alpha, const float *a, const float *b, float beta, float *c)
{
    if (m <= 0 || n <= 0) {
        return;
    }
    const int sms = sm_count();
    const int big_blocks = ceil_div(m, 128) * ceil_div(n, 128);
    const bool small_tile = m <= 64 || big_blocks < sms;
    const int blocks = small_tile ? ceil_div(m, 64) * ceil_div(n, 128) : big_blocks;
    int slices = 1;
    while (blocks * slices < 2 * sms && slices < MAX_SLICES && k >= 2 * slices * MIN_K_PER_SLICE) {
        slices *= 2;
    }
    sgemm_08_splitk_with(m, n, k, alpha, a, b, beta, c, small_tile, slices);
}
