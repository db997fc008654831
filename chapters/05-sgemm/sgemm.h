/* sgemm.h — Chapter 05: single-precision matrix multiply (SGEMM) on the GPU, from the naive kernel to warp
 * tiling. One kernel per file (sgemm_01_naive.cu ... sgemm_07_warptile.cu); each file also holds the host
 * function that launches its kernel, declared here.
 *
 * Every kernel computes, in the course's row-major convention (C order, like every array in the course),
 *
 *     C = alpha * A · B + beta * C        A (m, k), B (k, n), C (m, n), all on the device, contiguous
 *
 * for any m, n, k >= 0 (tiles that overhang the matrix edges are handled in every kernel). As in BLAS, when
 * beta == 0 the old C is not read, so NaN or garbage in C does not leak into the result.
 *
 * Build and test (no GPU needed: the CPU simulator runs the same code):
 *   cmake --preset default && cmake --build --preset default && ctest --preset default -L ch05
 * Benchmark: build/bin/sgemm_bench --help.  The lesson: chapters/05-sgemm/README.md
 */
#ifndef CH05_SGEMM_H
#define CH05_SGEMM_H

/* The signature every kernel's launcher shares (a kernel launch is asynchronous: synchronise before reading
 * C on the host; each launcher checks the launch itself with CUDA_CHECK(cudaGetLastError())). */
typedef void (*SgemmFunction)(int m, int n, int k, float alpha, const float *a, const float *b, float beta,
                              float *c);

/* 01: one thread per element of C; consecutive threads take consecutive ROWS (uncoalesced on purpose). */
void sgemm_01_naive(int m, int n, int k, float alpha, const float *a, const float *b, float beta, float *c);
/* 02: the same, but consecutive threads take consecutive COLUMNS: the loads of B and the store of C coalesce. */
void sgemm_02_coalesced(int m, int n, int k, float alpha, const float *a, const float *b, float beta, float *c);
/* 03: 32x32 tiles of A and B staged in shared memory; each value loaded from global memory is used 32 times. */
void sgemm_03_shared_tiling(int m, int n, int k, float alpha, const float *a, const float *b, float beta,
                            float *c);
/* 04: 64x64 block tile, each thread computes a column of 8 results (1D register blocking). */
void sgemm_04_blocktile_1d(int m, int n, int k, float alpha, const float *a, const float *b, float beta,
                           float *c);
/* 05: 128x128 block tile, each thread computes an 8x8 square of results (2D register blocking). */
void sgemm_05_blocktile_2d(int m, int n, int k, float alpha, const float *a, const float *b, float beta,
                           float *c);
/* 06: 05 with float4 (16-byte) global loads and stores, and the A tile stored transposed in shared memory;
 * a scalar path takes over where k or n is not a multiple of 4 (alignment) and at the matrix edges. */
void sgemm_06_vectorized(int m, int n, int k, float alpha, const float *a, const float *b, float beta,
                         float *c);
/* 07: 06 plus warp tiling: each warp owns a 64x64 sub-tile, each thread 8x16 results in 4 strips. */
void sgemm_07_warptile(int m, int n, int k, float alpha, const float *a, const float *b, float beta, float *c);

/* 08: 07 fitted to the shape: a 64 x 128 block tile for short matrices, and split-K (k cut into slices
 * computed by separate blocks, then summed by a second kernel) when there are too few blocks for the SMs.
 * sgemm_08_splitk chooses by itself; sgemm_08_splitk_with forces the tile and the number of slices. */
void sgemm_08_splitk(int m, int n, int k, float alpha, const float *a, const float *b, float beta, float *c);
void sgemm_08_splitk_with(int m, int n, int k, float alpha, const float *a, const float *b, float beta, float *c,
                          bool small_tile, int slices);

/* The progression, in order, for the tests and the benchmark. */
typedef struct SgemmKernel {
    const char *id; /* short name used on command lines and in JSON: "01_naive", ... */
    const char *description;
    SgemmFunction run;
} SgemmKernel;

extern const SgemmKernel SGEMM_KERNELS[];
extern const int SGEMM_KERNEL_COUNT;

/* The kernel whose id is `id` ("05_blocktile_2d"), or its number ("05" or "5"); NULL if there is none. */
const SgemmKernel *sgemm_find_kernel(const char *id);

#endif
