/* cublas.cpp — the simulator's cuBLAS (see include/cublas_v2.h): handles, math mode, the handle's stream,
 * and SGEMM on the CPU with cuBLAS's column-major semantics and argument checks. An SGEMM on a stream that is
 * being captured becomes a node of the CUDA Graph (run at each cudaGraphLaunch), as cuBLAS's kernels do. */
#include "include/cublas_v2.h"

#include <vector>

struct cublasContext {
    cublasMath_t mode;
    cudaStream_t stream; /* where the handle's work goes: cublasSetStream; 0 (legacy stream) at creation */
};

cublasStatus_t cublasCreate(cublasHandle_t *handle)
{
    if (!handle) {
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    *handle = new cublasContext{CUBLAS_DEFAULT_MATH, nullptr};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle)
{
    if (!handle) {
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode)
{
    if (!handle) {
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    handle->mode = mode; /* the CPU GEMM is plain float32 whatever the mode */
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetMathMode(cublasHandle_t handle, cublasMath_t *mode)
{
    if (!handle) {
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    *mode = handle->mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream)
{
    if (!handle) {
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetStream(cublasHandle_t handle, cudaStream_t *stream)
{
    if (!handle) {
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    *stream = handle->stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void *workspace, size_t workspace_bytes)
{
    if (!handle) {
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    if (workspace_bytes > 0 && workspace == nullptr) {
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    return CUBLAS_STATUS_SUCCESS;
}

/* The product itself, on the CPU (arguments already checked). */
static void sgemm_now(bool ta, bool tb, int m, int n, int k, float a_scale, const float *A, int lda, const float *B,
                      int ldb, float b_scale, float *C, int ldc);

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                           int k, const float *alpha, const float *A, int lda, const float *B, int ldb,
                           const float *beta, float *C, int ldc)
{
    if (!handle) {
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
    if ((transa != CUBLAS_OP_N && transa != CUBLAS_OP_T && transa != CUBLAS_OP_C) ||
        (transb != CUBLAS_OP_N && transb != CUBLAS_OP_T && transb != CUBLAS_OP_C)) {
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    /* cuBLAS's checks: sizes non-negative, leading dimensions at least the stored rows (and >= 1). */
    int rows_a = ta ? k : m, rows_b = tb ? n : k;
    if (m < 0 || n < 0 || k < 0 || lda < (rows_a > 1 ? rows_a : 1) || ldb < (rows_b > 1 ? rows_b : 1) ||
        ldc < (m > 1 ? m : 1) || !alpha || !beta) {
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (m == 0 || n == 0) {
        return CUBLAS_STATUS_SUCCESS;
    }
    /* alpha and beta are host pointers (CUBLAS_POINTER_MODE_HOST): their values are read now, also when the
     * call is captured into a graph. */
    const float a_scale = *alpha, b_scale = *beta;
    switch (cusim::capture_action(handle->stream, "cublasSgemm", nullptr, 0)) {
    case cusim::CAPTURE_RUN_NOW:
        break;
    case cusim::CAPTURE_RECORD:
        cusim::capture_record("cublasSgemm", [=]() {
            sgemm_now(ta, tb, m, n, k, a_scale, A, lda, B, ldb, b_scale, C, ldc);
            return cudaSuccess;
        });
        return CUBLAS_STATUS_SUCCESS;
    case cusim::CAPTURE_REFUSED:
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    sgemm_now(ta, tb, m, n, k, a_scale, A, lda, B, ldb, b_scale, C, ldc);
    return CUBLAS_STATUS_SUCCESS;
}

static void sgemm_now(bool ta, bool tb, int m, int n, int k, float a_scale, const float *A, int lda, const float *B,
                      int ldb, float b_scale, float *C, int ldc)
{
    std::vector<float> column(m);
    for (int j = 0; j < n; j++) {
        for (int i = 0; i < m; i++) {
            column[i] = 0.0f;
        }
        for (int p = 0; p < k; p++) {
            float b = tb ? B[j + (size_t)p * ldb] : B[p + (size_t)j * ldb]; /* op(B)[p][j] */
            if (ta) {
                for (int i = 0; i < m; i++) {
                    column[i] += A[p + (size_t)i * lda] * b; /* op(A)[i][p] = A[p][i] */
                }
            } else {
                const float *a = A + (size_t)p * lda;
                for (int i = 0; i < m; i++) {
                    column[i] += a[i] * b;
                }
            }
        }
        float *c = C + (size_t)j * ldc;
        for (int i = 0; i < m; i++) {
            /* beta == 0: C is write-only (it may hold NaN or garbage), as cuBLAS specifies. */
            c[i] = b_scale == 0.0f ? a_scale * column[i] : a_scale * column[i] + b_scale * c[i];
        }
    }
}

const char *cublasGetStatusName(cublasStatus_t status)
{
    switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}

const char *cublasGetStatusString(cublasStatus_t status)
{
    return cublasGetStatusName(status);
}
