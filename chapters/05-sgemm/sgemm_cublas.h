/* sgemm_cublas.h — Chapter 05: cuBLAS's SGEMM called on the course's ROW-MAJOR matrices.
 *
 * cuBLAS (like Fortran BLAS) stores matrices column-major. A row-major (r, c) array, read column-major, is
 * the (c, r) array of its transpose. So for row-major C (m, n) = A (m, k) · B (k, n), cuBLAS "sees"
 * Aᵀ (k, m), Bᵀ (n, k), Cᵀ (n, m), and Cᵀ = Bᵀ · Aᵀ: call cublasSgemm for an (n, m) result with B first,
 * then A, no transposes, leading dimensions n, k, n. No data is moved.
 */
#ifndef CH05_SGEMM_CUBLAS_H
#define CH05_SGEMM_CUBLAS_H

#include <cublas_v2.h>

/* A handle in plain FP32 mode (CUBLAS_PEDANTIC_MATH: no TF32 tensor cores, no reduced precision), or exit 1
 * with cuBLAS's message. */
cublasHandle_t sgemm_cublas_create(void);

/* C = alpha * A · B + beta * C, row-major, A (m, k), B (k, n), C (m, n) on the device; exits 1 with
 * cuBLAS's message on an error. */
void sgemm_cublas_rowmajor(cublasHandle_t handle, int m, int n, int k, float alpha, const float *a, const float *b,
                           float beta, float *c);

#endif
