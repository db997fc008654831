/* sgemm_cublas.cu — Chapter 05: the row-major wrapper around cublasSgemm (see sgemm_cublas.h for why the
 * operands are swapped). Used by the tests (tests/test_sgemm.cu) and the benchmark (sgemm_bench.cu). */
#include <stdio.h>
#include <stdlib.h>

#include "sgemm_cublas.h"

#define CUBLAS_CHECK(call) \
    do { \
        cublasStatus_t cublas_status_ = (call); \
        if (cublas_status_ != CUBLAS_STATUS_SUCCESS) { \
            fprintf(stderr, "%s:%d: cuBLAS error in %s: %s\n", __FILE__, __LINE__, #call, \
                    cublasGetStatusString(cublas_status_)); \
            exit(1); \
        } \
    } while (0)

cublasHandle_t sgemm_cublas_create(void)
{
    cublasHandle_t handle = NULL;
    CUBLAS_CHECK(cublasCreate(&handle));
    /* FP32 as written: the default mode could use TF32 tensor cores when the TF32 environment switch is
     * set; pedantic mode rules that out, so the comparison is FP32 against FP32. */
    CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_PEDANTIC_MATH));
    return handle;
}

void sgemm_cublas_rowmajor(cublasHandle_t handle, int m, int n, int k, float alpha, const float *a, const float *b,
                           float beta, float *c)
{
    if (m <= 0 || n <= 0) {
        return;
    }
    /* Column-major Cᵀ (n, m) = Bᵀ (n, k) · Aᵀ (k, m): B's row-major array is Bᵀ column-major, ld n; A's is
     * Aᵀ, ld k; C's is Cᵀ, ld n. cuBLAS wants ld >= 1 even when k == 0. */
    CUBLAS_CHECK(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &alpha, b, n, a, k > 0 ? k : 1, &beta, c,
                             n));
}
