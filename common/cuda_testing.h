/* cuda_testing.h — small helpers the CUDA chapters' tests share: host <-> device copies of test arrays.
 *
 *   float *d_x = device_copy(x, n);          // cudaMalloc + copy in
 *   float *d_y = device_nan(n);              // output buffer full of NaN: whatever a kernel forgets stays NaN
 *   ...launch...
 *   float *y = host_copy(d_y, n);            // malloc + copy out (free it with free)
 *
 * Every call goes through CUDA_CHECK. Zero-length arrays get a one-element allocation so that n = 0 cases
 * need no special path. C++ (templates), for .cu files: nvcc, or the CPU simulator's g++.
 */
#ifndef COURSE_CUDA_TESTING_H
#define COURSE_CUDA_TESTING_H

#include <stdlib.h>

#include <cuda_runtime.h>

#include "cuda_check.h"

extern "C" {
#include "testing.h" /* a C header: nan_filled has C linkage */
}

template <typename T> static inline T *device_copy(const T *host, size_t n)
{
    T *d = NULL;
    CUDA_CHECK(cudaMalloc(&d, (n ? n : 1) * sizeof(T)));
    CUDA_CHECK(cudaMemcpy(d, host, n * sizeof(T), cudaMemcpyHostToDevice));
    return d;
}

/* A device array of n NaNs. */
static inline float *device_nan(size_t n)
{
    float *host = nan_filled(n ? n : 1);
    float *d = device_copy(host, n ? n : 1);
    free(host);
    return d;
}

template <typename T> static inline T *host_copy(const T *device, size_t n)
{
    T *host = (T *)malloc((n ? n : 1) * sizeof(T));
    if (host == NULL) {
        fprintf(stderr, "out of memory copying %zu elements to the host\n", n);
        exit(1);
    }
    CUDA_CHECK(cudaMemcpy(host, device, n * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
}

#endif
