/* vector_add.cu — Chapter 04's first program: the whole round trip of a CUDA computation.
 *
 *   build/bin/vector_add [N]          (default N = 1048576)
 *
 * The host (CPU) drives: it prepares the inputs in its own memory, allocates memory on the device, copies the
 * inputs there, queues a kernel on the device, and copies the result back. The device (GPU) only runs what the
 * host queues (one program on two processors, not a client and a server: chapter 08's lesson, section 2).
 * Every call is checked with CUDA_CHECK.
 *
 * bin/vector_add runs on the GPU when the build found one, else on the CPU simulator (common/cusim); it
 * prints which. Exit status: 0 if the device's result matches the CPU's, 1 if not or on a CUDA error, 77
 * when the program was built for a GPU and the machine has none.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "cuda_basics.h"
#include "cuda_check.h"

int main(int argc, char **argv)
{
    char *end = NULL;
    long n = argc > 1 ? strtol(argv[1], &end, 10) : 1L << 20;
    if (argc > 2 || (argc > 1 && (*end != '\0' || n < 1 || n > (1L << 30)))) {
        fprintf(stderr, "usage: %s [N]   (1 <= N <= 2^30 elements; default 1048576)\n", argv[0]);
        return 1;
    }
    char reason[256];
    if (!cuda_device_available(reason, sizeof reason)) {
        fprintf(stderr, "%s: %s (reconfigure with -DCOURSE_CUDA_BACKEND=SIM to use the CPU simulator)\n", argv[0],
                reason);
        return 77;
    }
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s\n", prop.name);

    /* 1. The host prepares the work in host memory. */
    size_t bytes = (size_t)n * sizeof(float);
    float *a = (float *)malloc(bytes), *b = (float *)malloc(bytes), *c = (float *)malloc(bytes);
    if (!a || !b || !c) {
        fprintf(stderr, "%s: out of host memory for %ld elements\n", argv[0], n);
        return 1;
    }
    for (long i = 0; i < n; i++) {
        a[i] = (float)(i % 1000) * 0.5f;
        b[i] = (float)(i % 7) - 3.0f;
    }
    /* 2. Device memory, and the inputs sent over (host -> device). */
    float *d_a, *d_b, *d_c;
    CUDA_CHECK(cudaMalloc(&d_a, bytes));
    CUDA_CHECK(cudaMalloc(&d_b, bytes));
    CUDA_CHECK(cudaMalloc(&d_c, bytes));
    CUDA_CHECK(cudaMemcpy(d_a, a, bytes, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(d_b, b, bytes, cudaMemcpyHostToDevice));
    /* 3. Launch the kernel (asynchronous: the call returns before the device is done). Events
     * recorded around it measure the device's time. */
    cudaEvent_t start, stop;
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&stop));
    CUDA_CHECK(cudaEventRecord(start));
    vector_add(d_a, d_b, d_c, (int)n); /* launches, then CUDA_CHECK(cudaGetLastError()) */
    CUDA_CHECK(cudaEventRecord(stop));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    /* 4. The reply: copy the result back (device -> host); this waits for the kernel to finish. */
    CUDA_CHECK(cudaMemcpy(c, d_c, bytes, cudaMemcpyDeviceToHost));

    long wrong = 0;
    for (long i = 0; i < n; i++) {
        wrong += c[i] != a[i] + b[i];
    }
    printf("c = a + b for %ld elements: %s (%ld wrong)\n", n, wrong == 0 ? "matches the CPU" : "WRONG", wrong);
    printf("kernel time %.3f ms, %.1f GB/s (3 arrays of %zu bytes)%s\n", ms, ms > 0 ? 3.0 * bytes / (ms * 1e6) : 0.0,
           bytes, strstr(prop.name, "simulator") ? " -- simulated on the CPU: says nothing about a GPU" : "");

    CUDA_CHECK(cudaEventDestroy(start));
    CUDA_CHECK(cudaEventDestroy(stop));
    CUDA_CHECK(cudaFree(d_a));
    CUDA_CHECK(cudaFree(d_b));
    CUDA_CHECK(cudaFree(d_c));
    free(a), free(b), free(c);
    return wrong == 0 ? 0 : 1;
}
