/* sgemm_common.cuh — small device helpers shared by chapter 05's SGEMM kernels (included by the .cu files).
 *
 *   ceil_div              how many tiles of size b cover a (host and device)
 *   sgemm_store           C[i] = alpha * acc + beta * C[i], without reading C when beta == 0 (BLAS rule)
 *   load_float4           four consecutive floats of a row-major matrix, as one 16-byte load when allowed,
 *                         else four bounds-checked scalar loads (zeros outside the matrix)
 *   load_a_tile_transposed, load_b_tile
 *                         the float4 tile loaders of kernels 06 and 07
 */
#ifndef CH05_SGEMM_COMMON_CUH
#define CH05_SGEMM_COMMON_CUH

#include <stdint.h>

#include <cuda_runtime.h>

/* Asks nvcc to unroll the loop that follows completely. The register-blocked kernels index their
 * accumulator arrays with loop counters; only when every loop over them is unrolled are all indices
 * constants, and only then can the arrays live in registers (otherwise: slow local memory). nvcc usually
 * unrolls such loops by itself, but not always when they are nested deeply (kernel 07). Host compilers
 * (the simulator's g++) do not know the pragma, so there it is nothing. */
#if defined(__CUDACC__)
#define UNROLL _Pragma("unroll")
#else
#define UNROLL
#endif

static __host__ __device__ __forceinline__ int ceil_div(int a, int b)
{
    return (a + b - 1) / b;
}

/* The epilogue of every kernel. BLAS semantics: with beta == 0 the old value of C is never read, so a C
 * buffer full of NaN (as the tests pass) is simply overwritten. */
static __device__ __forceinline__ void sgemm_store(float *c, float alpha, float acc, float beta)
{
    *c = (beta == 0.0f) ? alpha * acc : alpha * acc + beta * *c;
}

/* True if a device pointer may be read as float4: a float4 load must be 16-byte aligned, or it faults.
 * cudaMalloc returns 256-byte-aligned memory, but a caller may pass a pointer into the middle of a buffer. */
static inline bool aligned16(const void *p)
{
    return ((uintptr_t)p % 16) == 0;
}

/* x row-major with row stride ld; the four floats x[row][col .. col+3], zero where row >= rows or a column
 * >= cols (the part of the matrix in use: usually rows and cols are its shape and ld == cols; kernel 08
 * reads a slice of k with a smaller cols). `vec` says a 16-byte load is safe at every multiple-of-4 column:
 * x is 16-byte aligned and ld % 4 == 0 (then x[row][col] with col % 4 == 0 sits at a multiple of 16 bytes).
 * Otherwise — or at the ragged right end — four scalar loads do the same work: the "scalar edge path". */
static __device__ __forceinline__ float4 load_float4(const float *x, int rows, int cols, int ld, int row, int col,
                                                     bool vec)
{
    if (row >= rows) {
        return make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
    const float *p = x + (size_t)row * ld + col;
    if (vec && col + 3 < cols) {
        return *reinterpret_cast<const float4 *>(p);
    }
    float4 v;
    v.x = col + 0 < cols ? p[0] : 0.0f;
    v.y = col + 1 < cols ? p[1] : 0.0f;
    v.z = col + 2 < cols ? p[2] : 0.0f;
    v.w = col + 3 < cols ? p[3] : 0.0f;
    return v;
}

/* Loads the (BM, BK) tile of A (m, k_end used of row stride lda) whose top-left corner is A[block_row][k0]
 * into shared memory TRANSPOSED, as a_tile_t (BK, BM): a_tile_t[p * BM + r] = A[block_row + r][k0 + p]
 * (zero past row m or column k_end). Each thread loads float4s along k
 * (coalesced: neighbouring threads read neighbouring 16-byte pieces) and scatters the four values down a
 * column of a_tile_t, so that the inner loop later reads TM consecutive rows of A with one float4 load from
 * shared memory. THREADS threads, all taking part; BK must be a multiple of 4, BM a multiple of
 * THREADS * 4 / BK. */
template <int BM, int BK, int THREADS>
static __device__ __forceinline__ void load_a_tile_transposed(const float *a, int m, int k_end, int lda, int block_row,
                                                              int k0, bool vec_a, float *a_tile_t)
{
    constexpr int ROW_STEP = THREADS * 4 / BK; /* rows of the tile loaded per pass of all threads */
    const int tile_row = threadIdx.x / (BK / 4);
    const int tile_col = (threadIdx.x % (BK / 4)) * 4;
    for (int r = tile_row; r < BM; r += ROW_STEP) {
        float4 v = load_float4(a, m, k_end, lda, block_row + r, k0 + tile_col, vec_a);
        a_tile_t[(tile_col + 0) * BM + r] = v.x;
        a_tile_t[(tile_col + 1) * BM + r] = v.y;
        a_tile_t[(tile_col + 2) * BM + r] = v.z;
        a_tile_t[(tile_col + 3) * BM + r] = v.w;
    }
}

/* Loads the (BK, BN) tile of B (k_end rows used, n columns, row stride ldb) whose top-left corner is
 * B[k0][block_col] into b_tile (BK, BN), as float4s along the rows of B (row-major stays row-major: no
 * transpose needed). BN a multiple of 4. */
template <int BK, int BN, int THREADS>
static __device__ __forceinline__ void load_b_tile(const float *b, int k_end, int n, int ldb, int k0, int block_col,
                                                   bool vec_b, float *b_tile)
{
    constexpr int ROW_STEP = THREADS * 4 / BN;
    const int tile_row = threadIdx.x / (BN / 4);
    const int tile_col = (threadIdx.x % (BN / 4)) * 4;
    for (int r = tile_row; r < BK; r += ROW_STEP) {
        float4 v = load_float4(b, k_end, n, ldb, k0 + r, block_col + tile_col, vec_b);
        *reinterpret_cast<float4 *>(&b_tile[r * BN + tile_col]) = v;
    }
}

/* Writes four results acc.x .. acc.w to C[row][col .. col+3] with the epilogue, as one float4 store (and one
 * float4 load of the old C when beta != 0) when `vec` allows it and all four are inside C, else scalar.
 * The results come by value, not as a pointer into the caller's accumulator array: taking that array's
 * address would make the compiler keep it in (slow, off-chip) local memory instead of registers. */
static __device__ __forceinline__ void store_float4(float *c, int m, int n, int row, int col, bool vec, float alpha,
                                                    float4 acc, float beta)
{
    if (row >= m || col >= n) {
        return;
    }
    float *p = c + (size_t)row * n + col;
    if (vec && col + 3 < n) {
        float4 out = make_float4(alpha * acc.x, alpha * acc.y, alpha * acc.z, alpha * acc.w);
        if (beta != 0.0f) {
            float4 old = *reinterpret_cast<const float4 *>(p);
            out.x += beta * old.x;
            out.y += beta * old.y;
            out.z += beta * old.z;
            out.w += beta * old.w;
        }
        *reinterpret_cast<float4 *>(p) = out;
        return;
    }
    sgemm_store(&p[0], alpha, acc.x, beta); /* col < n was checked above */
    if (col + 1 < n) {
        sgemm_store(&p[1], alpha, acc.y, beta);
    }
    if (col + 2 < n) {
        sgemm_store(&p[2], alpha, acc.z, beta);
    }
    if (col + 3 < n) {
        sgemm_store(&p[3], alpha, acc.w, beta);
    }
}

#endif
