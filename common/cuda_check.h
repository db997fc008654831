/* cuda_check.h — the error check every CUDA call and launch in the course goes through (cuda-samples style).
 *
 *   CUDA_CHECK(cudaMalloc(&d_x, n * sizeof(float)));
 *   my_kernel<<<blocks, threads>>>(d_x, n);
 *   CUDA_CHECK(cudaGetLastError());        // launch errors: bad configuration, too much shared memory
 *   CUDA_CHECK(cudaDeviceSynchronize());   // errors while the kernel ran (only seen once it has finished)
 *
 * On failure it prints the file, line, the call, and CUDA's error name and text, and exits with status 1.
 * A kernel launch returns nothing, so it is checked with cudaGetLastError right after it.
 *
 * Standard CUDA C: works with nvcc and with the course's CPU simulator alike.
 */
#ifndef COURSE_CUDA_CHECK_H
#define COURSE_CUDA_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime.h>

#define CUDA_CHECK(call) \
    do { \
        cudaError_t cuda_check_error_ = (call); \
        if (cuda_check_error_ != cudaSuccess) { \
            fprintf(stderr, "%s:%d: CUDA error in %s: %s (%s)\n", __FILE__, __LINE__, #call, \
                    cudaGetErrorName(cuda_check_error_), cudaGetErrorString(cuda_check_error_)); \
            exit(1); \
        } \
    } while (0)

/* For tests: true if a CUDA device can be used; otherwise false with the reason in `reason` (a `gpu`
 * test then exits 77 so that CTest shows it as skipped with that reason). Always true in the simulator. */
static inline int cuda_device_available(char *reason, size_t reason_size)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        snprintf(reason, reason_size, "no usable CUDA device: cudaGetDeviceCount says %s (%s)", cudaGetErrorName(e),
                 cudaGetErrorString(e));
        return 0;
    }
    if (count == 0) {
        snprintf(reason, reason_size, "no CUDA device on this machine");
        return 0;
    }
    return 1;
}

#endif
