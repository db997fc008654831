/* gemm.c — Chapter 03: SGEMM step by step (see gemm.h and README.md, "Making GEMM fast").
 *
 * Built with -O3 and -ffp-contract=fast (CMakeLists.txt) so that the compiler turns `acc += a * b` into fused
 * multiply-adds and vectorises the micro-kernel; with COURSE_NATIVE_ARCH (default ON) also with -march=native
 * so it may use AVX2/FMA. bench/cnn_bench times every function here against OpenBLAS.
 */
#include "gemm.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "course_error.h"

void sgemm_naive(int m, int n, int k, const float *a, const float *b, float *c)
{
    /* BEGIN EXERCISE ch03.sgemm_naive: C[i][j] = sum over p of A[i][p] * B[p][j]; loops i, j, p (about 9 lines) | zh: C[i][j] = 对 p 求和 A[i][p] * B[p][j]；循环顺序 i, j, p（约 9 行） */
    for (int i = 0; i < m; ++i) {
        for (int j = 0; j < n; ++j) {
            float sum = 0.0f;
            for (int p = 0; p < k; ++p) {
                sum += a[(size_t)i * k + p] * b[(size_t)p * n + j]; /* B walked down a column: stride n */
            }
            c[(size_t)i * n + j] = sum;
        }
    }
    /* END EXERCISE */
}

void sgemm_reordered(int m, int n, int k, const float *a, const float *b, float *c)
{
    /* BEGIN EXERCISE ch03.sgemm_reordered: zero row i of C, then for each p add A[i][p] * (row p of B) to it: loops i, p, j (about 11 lines) | zh: 把 C 的第 i 行清零，再对每个 p 把 A[i][p] * (B 的第 p 行) 加上去：循环顺序 i, p, j（约 11 行） */
    for (int i = 0; i < m; ++i) {
        float *c_row = c + (size_t)i * n;
        for (int j = 0; j < n; ++j) {
            c_row[j] = 0.0f;
        }
        for (int p = 0; p < k; ++p) {
            const float a_ip = a[(size_t)i * k + p];
            const float *b_row = b + (size_t)p * n;
            for (int j = 0; j < n; ++j) { /* contiguous in B and C: vectorised, one cache line feeds 16 floats */
                c_row[j] += a_ip * b_row[j];
            }
        }
    }
    /* END EXERCISE */
}

/* Tile sizes of sgemm_blocked: a 256 x 256 tile of B is 256 KiB and fits the 512 KiB L2. */
#define BLOCK_K 256
#define BLOCK_N 256
#define BLOCK_M 64

static int min_int(int a, int b)
{
    return a < b ? a : b;
}

void sgemm_blocked(int m, int n, int k, const float *a, const float *b, float *c)
{
    /* BEGIN EXERCISE ch03.sgemm_blocked: zero C; for tiles (j0 by BLOCK_N, p0 by BLOCK_K, i0 by BLOCK_M) run the i-p-j loops of sgemm_reordered inside the tile (about 22 lines) | zh: 把 C 清零；按分块（j0 步长 BLOCK_N，p0 步长 BLOCK_K，i0 步长 BLOCK_M）在块内运行 sgemm_reordered 的 i-p-j 循环（约 22 行） */
    for (size_t idx = 0; idx < (size_t)m * n; ++idx) {
        c[idx] = 0.0f;
    }
    /* The B tile (BLOCK_K x BLOCK_N) is reused by every row of A in the i0 loop: it stays in L2 while the
     * rows of A and C stream past it. */
    for (int j0 = 0; j0 < n; j0 += BLOCK_N) {
        const int j1 = min_int(j0 + BLOCK_N, n);
        for (int p0 = 0; p0 < k; p0 += BLOCK_K) {
            const int p1 = min_int(p0 + BLOCK_K, k);
            for (int i0 = 0; i0 < m; i0 += BLOCK_M) {
                const int i1 = min_int(i0 + BLOCK_M, m);
                for (int i = i0; i < i1; ++i) {
                    float *c_row = c + (size_t)i * n;
                    for (int p = p0; p < p1; ++p) {
                        const float a_ip = a[(size_t)i * k + p];
                        const float *b_row = b + (size_t)p * n;
                        for (int j = j0; j < j1; ++j) {
                            c_row[j] += a_ip * b_row[j];
                        }
                    }
                }
            }
        }
    }
    /* END EXERCISE */
}

void gemm_pack_a(bool trans_a, const float *a, int lda, int row0, int col0, int mc, int kc, float alpha,
                 float *packed)
{
    /* BEGIN EXERCISE ch03.gemm_pack_a: for each micro-panel of MR rows, for p in [0, kc), write the MR values alpha * op(A)[row][col0 + p] (0 past row mc) (about 16 lines) | zh: 对每个 MR 行的微面板（micro-panel），对 p in [0, kc)，写入 MR 个值 alpha * op(A)[row][col0 + p]（超过第 mc 行为 0）（约 16 行） */
    for (int r0 = 0; r0 < mc; r0 += GEMM_MR) {
        float *panel = packed + (size_t)r0 * kc; /* each panel holds MR * kc floats */
        for (int p = 0; p < kc; ++p) {
            const int col = col0 + p;
            for (int i = 0; i < GEMM_MR; ++i) {
                const int row = row0 + r0 + i;
                float value = 0.0f; /* zero padding: the micro-kernel always computes a full MR x NR tile */
                if (r0 + i < mc) {
                    value = trans_a ? a[(size_t)col * lda + row] : a[(size_t)row * lda + col];
                }
                panel[(size_t)p * GEMM_MR + i] = alpha * value;
            }
        }
    }
    /* END EXERCISE */
}

void gemm_pack_b(bool trans_b, const float *b, int ldb, int row0, int col0, int kc, int nc, float *packed)
{
    /* BEGIN EXERCISE ch03.gemm_pack_b: for each micro-panel of NR columns, for p in [0, kc), write the NR values op(B)[row0 + p][col] (0 past column nc) (about 16 lines) | zh: 对每个 NR 列的微面板，对 p in [0, kc)，写入 NR 个值 op(B)[row0 + p][col]（超过第 nc 列为 0）（约 16 行） */
    for (int q0 = 0; q0 < nc; q0 += GEMM_NR) {
        float *panel = packed + (size_t)q0 * kc; /* each panel holds NR * kc floats */
        for (int p = 0; p < kc; ++p) {
            const int row = row0 + p;
            for (int j = 0; j < GEMM_NR; ++j) {
                const int col = col0 + q0 + j;
                float value = 0.0f;
                if (q0 + j < nc) {
                    value = trans_b ? b[(size_t)col * ldb + row] : b[(size_t)row * ldb + col];
                }
                panel[(size_t)p * GEMM_NR + j] = value;
            }
        }
    }
    /* END EXERCISE */
}

/* Eight floats as one value: a GCC/Clang vector extension (not ISO C, but supported by both compilers on every
 * architecture). `x * y + z` on two Float8 is one AVX2 fused multiply-add with -march=native, two SSE
 * multiply-adds without it. We use it because GCC does not reliably keep a plain float acc[6][16] array in
 * registers: it spills the tile to memory and the kernel runs 30x slower. */
typedef float Float8 __attribute__((vector_size(32)));

void gemm_microkernel(int kc, const float *a_panel, const float *b_panel, float *c, int ldc, int mr, int nr)
{
    /* BEGIN EXERCISE ch03.gemm_microkernel: keep the MR x NR tile in 12 Float8 accumulators (two per row of A); for each p add a[p*MR + i] * (the two Float8 of b at p*NR) to row i; then add the first mr x nr entries to C (about 30 lines) | zh: 把 MR x NR 的块放在 12 个 Float8 累加器里（A 的每行两个）；对每个 p，把 a[p*MR + i] * (b 在 p*NR 处的两个 Float8) 加到第 i 行；最后把前 mr x nr 个元素加到 C 上（约 30 行） */
    /* 6 rows x 2 vectors = 12 of the 16 AVX registers; per step p: 2 loads of B, 6 broadcasts of A, 12 FMAs. */
    Float8 acc[GEMM_MR][2];
    for (int i = 0; i < GEMM_MR; ++i) {
        acc[i][0] = (Float8){0};
        acc[i][1] = (Float8){0};
    }
    for (int p = 0; p < kc; ++p) {
        Float8 b0, b1;
        memcpy(&b0, b_panel + (size_t)p * GEMM_NR, sizeof b0); /* memcpy: an unaligned-safe vector load */
        memcpy(&b1, b_panel + (size_t)p * GEMM_NR + 8, sizeof b1);
        const float *a_p = a_panel + (size_t)p * GEMM_MR;
        for (int i = 0; i < GEMM_MR; ++i) {
            const float a_ip = a_p[i];
            const Float8 a_i = {a_ip, a_ip, a_ip, a_ip, a_ip, a_ip, a_ip, a_ip}; /* one broadcast instruction */
            acc[i][0] += a_i * b0;
            acc[i][1] += a_i * b1;
        }
    }
    float tile[GEMM_MR][GEMM_NR];
    for (int i = 0; i < GEMM_MR; ++i) {
        memcpy(&tile[i][0], &acc[i][0], sizeof acc[i][0]);
        memcpy(&tile[i][8], &acc[i][1], sizeof acc[i][1]);
    }
    for (int i = 0; i < mr; ++i) { /* mr x nr: the tile may hang over the edge of C */
        for (int j = 0; j < nr; ++j) {
            c[(size_t)i * ldc + j] += tile[i][j];
        }
    }
    /* END EXERCISE */
}

/* Per-thread packing buffers, kept between calls: the conv layers call GEMM once per image, and allocating
 * (and page-faulting) fresh buffers every call would cost more than the small GEMMs themselves. */
static _Thread_local float *tls_pack_a;
static _Thread_local float *tls_pack_b;

static float *pack_buffer(float **slot, size_t floats)
{
    if (*slot == NULL) {
        /* The largest block sgemm_packed ever packs, so one allocation per thread suffices. */
        *slot = aligned_alloc(64, ((floats * sizeof(float) + 63) / 64) * 64);
        if (*slot == NULL) {
            die("sgemm_packed: out of memory for a %zu-float packing buffer", floats);
        }
    }
    return *slot;
}

static void scale_c(int m, int n, float beta, float *c, int ldc)
{
    if (beta == 1.0f) {
        return;
    }
    for (int i = 0; i < m; ++i) {
        float *c_row = c + (size_t)i * ldc;
        for (int j = 0; j < n; ++j) {
            c_row[j] = beta == 0.0f ? 0.0f : beta * c_row[j];
        }
    }
}

void sgemm_packed(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc)
{
    /* BEGIN EXERCISE ch03.sgemm_packed: scale C by beta; then for column blocks jc (NC), depth blocks pc (KC): pack B, and for row blocks ic (MC): pack A and run the micro-kernel on every MR x NR tile (about 30 lines) | zh: 先把 C 乘以 beta；然后对列块 jc (NC)、深度块 pc (KC)：打包 B，再对行块 ic (MC)：打包 A，并在每个 MR x NR 的块上运行微内核（micro-kernel）（约 30 行） */
    scale_c(m, n, beta, c, ldc);
    if (m <= 0 || n <= 0 || k <= 0 || alpha == 0.0f) {
        return;
    }
    float *packed_a = pack_buffer(&tls_pack_a, (size_t)GEMM_MC * GEMM_KC);
    float *packed_b = pack_buffer(&tls_pack_b, (size_t)GEMM_KC * GEMM_NC);
    for (int jc = 0; jc < n; jc += GEMM_NC) {
        const int nc = min_int(GEMM_NC, n - jc);
        for (int pc = 0; pc < k; pc += GEMM_KC) {
            const int kc = min_int(GEMM_KC, k - pc);
            gemm_pack_b(trans_b, b, ldb, pc, jc, kc, nc, packed_b);
            for (int ic = 0; ic < m; ic += GEMM_MC) {
                const int mc = min_int(GEMM_MC, m - ic);
                gemm_pack_a(trans_a, a, lda, ic, pc, mc, kc, alpha, packed_a);
                for (int jr = 0; jr < nc; jr += GEMM_NR) {
                    for (int ir = 0; ir < mc; ir += GEMM_MR) {
                        gemm_microkernel(kc, packed_a + (size_t)ir * kc, packed_b + (size_t)jr * kc,
                                         c + (size_t)(ic + ir) * ldc + jc + jr, ldc, min_int(GEMM_MR, mc - ir),
                                         min_int(GEMM_NR, nc - jr));
                    }
                }
            }
        }
    }
    /* END EXERCISE */
}

void sgemm(GemmBackend backend, bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
           int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    if (backend == GEMM_OPENBLAS) {
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n,
                    k, alpha, a, lda, b, ldb, beta, c, ldc);
    } else {
        sgemm_packed(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
}

void sgemm_parallel(GemmBackend backend, bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                    const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
#ifdef _OPENMP
    const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
#else
    const int threads = 1;
#endif
    /* Slices of whole micro-kernel widths (GEMM_NR columns), so no slice adds an extra edge tile. */
    const int tiles = (n + GEMM_NR - 1) / GEMM_NR;
    if (threads <= 1 || tiles < 2) {
        sgemm(backend, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    const int slices = threads < tiles ? threads : tiles;
#pragma omp parallel for num_threads(slices) schedule(static)
    for (int slice = 0; slice < slices; ++slice) {
        const int j0 = (int)((long)tiles * slice / slices) * GEMM_NR;
        const int j1 = min_int((int)((long)tiles * (slice + 1) / slices) * GEMM_NR, n);
        /* Columns j0..j1 of op(B): B stored (k, n) starts at column j0; B^T stored (n, k) at row j0. */
        const float *b_slice = trans_b ? b + (size_t)j0 * ldb : b + j0;
        sgemm(backend, trans_a, trans_b, m, j1 - j0, k, alpha, a, lda, b_slice, ldb, beta, c + j0, ldc);
    }
}

const char *gemm_backend_name(GemmBackend backend)
{
    return backend == GEMM_OPENBLAS ? "openblas" : "own";
}

void gemm_set_openblas_threads(int threads)
{
    openblas_set_num_threads(threads);
}
