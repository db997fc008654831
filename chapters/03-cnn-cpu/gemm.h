/* gemm.h — Chapter 03: single-precision matrix multiply (SGEMM), from the triple loop to a packed, cache-blocked
 * kernel, and OpenBLAS as the fast path. Convolution (im2col) and the fully connected layers run on these.
 *
 * All matrices are row-major (C order), like every array in the course. The progression the lesson measures
 * (bench/cnn_bench times each step):
 *
 *   sgemm_naive      C = A·B, the textbook i-j-k triple loop (inner loop walks B down a column: a cache miss
 *                    per multiply-add once B is larger than the cache)
 *   sgemm_reordered  the same sum in i-k-j order: the inner loop walks rows of B and C contiguously, so it
 *                    streams through memory and the compiler vectorises it
 *   sgemm_blocked    i-k-j on tiles, so that the tile of B being reused stays in the L2 cache
 *   sgemm_packed     the BLIS/GotoBLAS structure: copy ("pack") blocks of A and B into the order the inner
 *                    kernel reads them, then a 6x16 register-tile micro-kernel does all the arithmetic
 *
 *   float c[M * N];
 *   sgemm_packed(false, false, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);     // C (M, N) = A (M, K) · B (K, N)
 *   sgemm(GEMM_OPENBLAS, false, true, ...);                                // the same through cblas_sgemm
 */
#ifndef CH03_GEMM_H
#define CH03_GEMM_H

#include <stdbool.h>

/* Which implementation sgemm() dispatches to. */
typedef enum GemmBackend {
    GEMM_OWN = 0, /* sgemm_packed, this chapter's kernel */
    GEMM_OPENBLAS = 1, /* cblas_sgemm from OpenBLAS */
} GemmBackend;

/* Register tile of the micro-kernel: MR rows of A times NR columns of B stay in 12 vector registers. */
#define GEMM_MR 6
#define GEMM_NR 16
/* Cache blocks: a KC x NR sliver of B (16 KiB) stays in L1, an MC x KC block of A (144 KiB) in L2, a KC x NC
 * panel of B in L3. (AMD EPYC here: L1d 32 KiB, L2 512 KiB per core; L3 32 MiB shared; see the lesson.) */
#define GEMM_MC 144
#define GEMM_KC 256
#define GEMM_NC 3072

/* The progression, on contiguous matrices. C (m, n) = A (m, k) · B (k, n); C is overwritten. */
void sgemm_naive(int m, int n, int k, const float *a, const float *b, float *c);
void sgemm_reordered(int m, int n, int k, const float *a, const float *b, float *c);
void sgemm_blocked(int m, int n, int k, const float *a, const float *b, float *c);

/* The full SGEMM, with the semantics of cblas_sgemm(CblasRowMajor, ...):
 *   C = alpha * op(A) · op(B) + beta * C,   op(A) (m, k), op(B) (k, n), C (m, n)
 * op(A) = A (stored (m, k), row stride lda) or, with trans_a, A^T (A stored (k, m)); likewise B with ldb.
 * beta == 0 overwrites C (NaN already in C does not leak through, as in BLAS). */
void sgemm_packed(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc);

/* The pieces of sgemm_packed, public so that the tests can check each one.
 * Pack rows [row0, row0 + mc) and columns [col0, col0 + kc) of alpha * op(A) into micro-panels of GEMM_MR rows:
 * panel r holds, for each p in [0, kc), the GEMM_MR values op(A)[row0 + r*MR + i][col0 + p] (i = 0..MR-1),
 * zero beyond row mc. `packed` holds ceil(mc / MR) * MR * kc floats. */
void gemm_pack_a(bool trans_a, const float *a, int lda, int row0, int col0, int mc, int kc, float alpha,
                 float *packed);
/* Pack rows [row0, row0 + kc) and columns [col0, col0 + nc) of op(B) into micro-panels of GEMM_NR columns:
 * panel q holds, for each p, the GEMM_NR values op(B)[row0 + p][col0 + q*NR + j], zero beyond column nc. */
void gemm_pack_b(bool trans_b, const float *b, int ldb, int row0, int col0, int kc, int nc, float *packed);
/* C[0..mr)[0..nr) += (packed A panel, MR x kc) · (packed B panel, kc x NR); mr <= MR and nr <= NR cut the
 * tile at the matrix edge. */
void gemm_microkernel(int kc, const float *a_panel, const float *b_panel, float *c, int ldc, int mr, int nr);

/* sgemm_packed or cblas_sgemm, same arguments. */
void sgemm(GemmBackend backend, bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
           int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* sgemm with the columns of C split into one slice per OpenMP thread (each slice a single-threaded sgemm):
 * for the fully connected layers, whose GEMMs run outside the convolutions' per-image parallel loops. Inside a
 * parallel region, or with one thread, it is plain sgemm. */
void sgemm_parallel(GemmBackend backend, bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                    const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* "own" or "openblas". */
const char *gemm_backend_name(GemmBackend backend);

/* Threads OpenBLAS may use inside one cblas_sgemm call (the CNN layers parallelise over images with OpenMP
 * instead and keep this at 1). */
void gemm_set_openblas_threads(int threads);

#endif
