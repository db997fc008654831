/* bandwidth.cu — Chapter 04's benchmark: how close the elementwise and reduction kernels come to the
 * device's memory bandwidth.
 *
 *   build/bin/bandwidth [--n N] [--repeat R] [--json FILE]
 *                                   (default N = 2^25 floats on a GPU, 2^20 on the simulator)
 *
 * A memory-bound kernel's speed is the bytes it must move divided by its time: effective bandwidth in GB/s
 * (1 GB = 1e9 bytes). Each kernel is timed with CUDA events (median of R runs after one warm-up) and
 * compared with, side by side in the same run:
 *   - the device-to-device cudaMemcpy of the same array (read + write: 2 N * 4 bytes), the practical ceiling;
 *   - the theoretical peak, 2 (double data rate) * memory clock * bus width / 8, where the device reports
 *     them (cudaDeviceGetAttribute: CUDA 13 removed memoryClockRate from cudaDeviceProp).
 * On the CPU simulator it runs the same code, but the timings say nothing about a GPU, and it says so.
 * --json FILE also writes the table as JSON (for docs/benchmarks.md and scripts), atomically.
 * Exit status 0, or 1 on a CUDA error or a wrong result, 77 when built for a GPU and there is none.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "cuda_basics.h"
#include "cuda_check.h"

extern "C" {
#include "file_util.h"
}

typedef struct Bench {
    const char *name;
    double bytes; /* bytes the kernel must read + write */
    int which;
} Bench;

static int compare_floats(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static float *d_x, *d_y, *d_z, *d_scratch;
static int n_elements;

static void run_once(int which)
{
    switch (which) {
    case 0:
        CUDA_CHECK(cudaMemcpy(d_y, d_x, (size_t)n_elements * sizeof(float), cudaMemcpyDeviceToDevice));
        break;
    case 1:
        vector_add(d_x, d_y, d_z, n_elements);
        break;
    case 2:
        activation_forward(CH04_RELU, d_x, d_y, n_elements, 0.0f);
        break;
    case 3:
        activation_backward(CH04_RELU, d_x, d_y, d_z, n_elements, 0.0f);
        break;
    case 4:
        reduce_sum_partials(d_x, n_elements, CH04_SHARED_TREE, d_scratch);
        break;
    default:
        reduce_sum_partials(d_x, n_elements, CH04_WARP_SHUFFLE, d_scratch);
        break;
    }
}

/* Median milliseconds of `repeat` timed runs, after one untimed warm-up. */
static float time_ms(int which, int repeat, cudaEvent_t start, cudaEvent_t stop)
{
    float *times = (float *)malloc(repeat * sizeof(float));
    run_once(which);
    CUDA_CHECK(cudaDeviceSynchronize());
    for (int r = 0; r < repeat; r++) {
        CUDA_CHECK(cudaEventRecord(start));
        run_once(which);
        CUDA_CHECK(cudaEventRecord(stop));
        CUDA_CHECK(cudaEventSynchronize(stop));
        CUDA_CHECK(cudaEventElapsedTime(&times[r], start, stop));
    }
    qsort(times, repeat, sizeof(float), compare_floats);
    float median = times[repeat / 2];
    free(times);
    return median;
}

int main(int argc, char **argv)
{
    long n = 0;
    int repeat = 20;
    const char *json_path = NULL;
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        if (strcmp(argv[i], "--n") == 0 && i + 1 < argc) {
            n = strtol(argv[++i], &end, 10);
            if (*end != '\0' || n < 1 || n > (1L << 30)) {
                fprintf(stderr, "%s: --n must be 1..2^30, got %s\n", argv[0], argv[i]);
                return 1;
            }
        } else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) {
            repeat = (int)strtol(argv[++i], &end, 10);
            if (*end != '\0' || repeat < 1 || repeat > 10000) {
                fprintf(stderr, "%s: --repeat must be 1..10000, got %s\n", argv[0], argv[i]);
                return 1;
            }
        } else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
            json_path = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--n N] [--repeat R] [--json FILE]\n", argv[0]);
            return 1;
        }
    }
    char reason[256];
    if (!cuda_device_available(reason, sizeof reason)) {
        fprintf(stderr, "%s: %s\n", argv[0], reason);
        return 77;
    }
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    int simulated = strstr(prop.name, "simulator") != NULL;
    if (n == 0) {
        n = simulated ? 1L << 20 : 1L << 25;
    }
    n_elements = (int)n;
    size_t bytes = (size_t)n * sizeof(float);
    printf("device: %s (compute capability %d.%d, %d SMs)\n", prop.name, prop.major, prop.minor,
           prop.multiProcessorCount);
    if (simulated) {
        printf("NOTE: this is the CPU simulator. It runs the kernels to check them; the timings below say "
               "nothing about a GPU.\n");
    }
    int clock_khz = 0, bus_bits = 0;
    double peak = 0.0;
    if (cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, 0) == cudaSuccess &&
        cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, 0) == cudaSuccess && clock_khz > 0 &&
        bus_bits > 0) {
        peak = 2.0 * clock_khz * 1e3 * (bus_bits / 8.0) / 1e9;
    }
    cudaGetLastError(); /* an unsupported attribute is not an error for this program */

    CUDA_CHECK(cudaMalloc(&d_x, bytes));
    CUDA_CHECK(cudaMalloc(&d_y, bytes));
    CUDA_CHECK(cudaMalloc(&d_z, bytes));
    CUDA_CHECK(cudaMalloc(&d_scratch, CH04_SCRATCH_FLOATS * sizeof(float)));
    float *host = (float *)malloc(bytes);
    for (long i = 0; i < n; i++) {
        host[i] = (float)(i % 17) - 8.0f; /* small integers: the sum below is exact in float */
    }
    CUDA_CHECK(cudaMemcpy(d_x, host, bytes, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(d_y, host, bytes, cudaMemcpyHostToDevice));
    double want = 0.0;
    for (long i = 0; i < n; i++) {
        want += host[i];
    }
    float got = reduce_sum(d_x, n_elements, CH04_WARP_SHUFFLE, d_scratch);
    if (got != (float)want) {
        fprintf(stderr, "%s: reduce_sum gave %g, expected %g\n", argv[0], got, want);
        return 1;
    }

    const Bench benches[] = {
        {"cudaMemcpy device-to-device", 2.0 * bytes, 0},
        {"vector_add (c = a + b)", 3.0 * bytes, 1},
        {"relu forward", 2.0 * bytes, 2},
        {"relu backward", 3.0 * bytes, 3},
        {"sum, shared-memory tree", 1.0 * bytes, 4},
        {"sum, warp shuffles", 1.0 * bytes, 5},
    };
    cudaEvent_t start, stop;
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&stop));
    printf("N = %ld floats, median of %d runs\n", n, repeat);
    printf("%-30s %12s %10s %10s %10s %10s\n", "kernel", "MB moved", "ms", "GB/s", "% of copy", "% of peak");
    double copy_gbs = 0.0;
    enum { N_BENCHES = sizeof benches / sizeof benches[0] };
    float results_ms[N_BENCHES];
    for (size_t b = 0; b < N_BENCHES; b++) {
        float ms = time_ms(benches[b].which, repeat, start, stop);
        results_ms[b] = ms;
        double gbs = ms > 0.0f ? benches[b].bytes / (ms * 1e6) : 0.0;
        if (b == 0) {
            copy_gbs = gbs;
        }
        char peak_text[32] = "-";
        if (peak > 0.0) {
            snprintf(peak_text, sizeof peak_text, "%.1f", 100.0 * gbs / peak);
        }
        printf("%-30s %12.1f %10.3f %10.1f %10.1f %10s\n", benches[b].name, benches[b].bytes / 1e6, ms, gbs,
               copy_gbs > 0 ? 100.0 * gbs / copy_gbs : 0.0, peak_text);
    }
    if (peak > 0.0) {
        printf("theoretical peak: %.1f GB/s (memory clock %d kHz, %d-bit bus)\n", peak, clock_khz, bus_bits);
    } else {
        printf("theoretical peak: not reported by this device\n");
    }
    if (simulated) {
        printf("(simulated: measure on a GPU for real figures)\n");
    }
    if (json_path) {
        AtomicFile file;
        CourseError err;
        if (atomic_file_open(&file, json_path, &err) != 0) {
            fprintf(stderr, "%s: %s\n", argv[0], err.message);
            return 1;
        }
        fprintf(file.stream, "{\n  \"device\": \"%s\",\n  \"simulated\": %s,\n  \"n\": %ld,\n  \"repeat\": %d,\n",
                prop.name, simulated ? "true" : "false", n, repeat);
        fprintf(file.stream, "  \"peak_gb_per_s\": %.3f,\n  \"results\": [\n", peak);
        for (size_t b = 0; b < N_BENCHES; b++) {
            double gbs = results_ms[b] > 0.0f ? benches[b].bytes / (results_ms[b] * 1e6) : 0.0;
            fprintf(file.stream,
                    "    {\"kernel\": \"%s\", \"bytes\": %.0f, \"median_ms\": %.6f, \"gb_per_s\": %.3f}%s\n",
                    benches[b].name, benches[b].bytes, results_ms[b], gbs, b + 1 < N_BENCHES ? "," : "");
        }
        fprintf(file.stream, "  ]\n}\n");
        if (atomic_file_commit(&file, &err) != 0) {
            fprintf(stderr, "%s: %s\n", argv[0], err.message);
            return 1;
        }
        printf("wrote %s\n", json_path);
    }
    CUDA_CHECK(cudaEventDestroy(start));
    CUDA_CHECK(cudaEventDestroy(stop));
    CUDA_CHECK(cudaFree(d_x));
    CUDA_CHECK(cudaFree(d_y));
    CUDA_CHECK(cudaFree(d_z));
    CUDA_CHECK(cudaFree(d_scratch));
    free(host);
    return 0;
}
