/* sgemm_bench.cu — Chapter 05's runner: checks every SGEMM kernel, then times it next to cuBLAS.
 *
 *   build/bin/sgemm_bench [--sizes 128,256,...] [--shapes trainer|none] [--kernels 01,05,07] [--repeat R]
 *                         [--warmup W] [--json FILE]
 *
 * Problems: square m = n = k for each of --sizes (default 128, 256, 512, 1024, 2048, 4096 on a GPU; 33, 64
 * on the simulator), and with --shapes trainer (the default on a GPU) the GEMMs of the course's trainer at
 * batch 64 (conv2 forward / weight gradient / input gradient as im2col GEMMs, fc1 forward and its two
 * gradients; see the lesson's table of shapes). Every problem is C (m, n) = A (m, k) · B (k, n), row-major,
 * alpha = 1, beta = 0, inputs uniform in [-1, 1).
 *
 * For each problem, BEFORE timing anything:
 *   - cuBLAS (FP32, CUBLAS_PEDANTIC_MATH: no TF32) computes C; |A| · |B| gives each element's error bound
 *     (the bound for a sum in any order: 2 (k + 2) u sum_p |a_ip| |b_pj|, u = 2^-24);
 *   - cuBLAS and every kernel are compared with a double-precision CPU dot product on sampled elements (all
 *     elements when m n k <= 2^22), and every kernel with cuBLAS on all elements (twice the bound: both err).
 * A kernel that fails stops the program (exit 1) before any timing is printed for it.
 * Timing: CUDA events around each run, W warm-up runs, then the median of R runs. Printed per kernel:
 * GFLOP/s (2 m n k flops / time), % of cuBLAS in the same run, % of the FP32 peak
 * (SMs x FP32 lanes per SM x clock x 2; "unknown" where the device does not report its clock).
 * --json FILE writes everything, atomically; tools: chapters/05-sgemm/make_table.py turns it into the
 * lesson's table. On the CPU simulator the same code runs and checks, but the timings mean nothing, and it
 * says so. Exit status 0, 1 on a CUDA error or a wrong result, 2 on bad arguments, 77 when there is no GPU.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "cuda_check.h"
#include "sgemm.h"
#include "sgemm_cublas.h"

extern "C" {
#include "file_util.h"
#include "rng.h"
}

enum { MAX_PROBLEMS = 32, MAX_KERNELS = 16, MAX_REPEAT = 1000 };

typedef struct Problem {
    char name[48]; /* "square 1024" or "conv2 forward" */
    int m, n, k;
} Problem;

/* The trainer's GEMMs at batch 64 (chapter 03's network, cnn.h, padding 0): conv2 is 32 -> 64 channels, 3x3, on
 * 26x26 -> 24x24 maps, so its im2col matrix is (32*3*3 = 288, 64*24*24 = 36864); fc1 is 9216 -> 128. */
static const Problem TRAINER_SHAPES[] = {
    {"conv2 forward: Y = W Xcol", 64, 36864, 288},
    {"conv2 weight grad: dW = dY Xcol^T", 64, 288, 36864},
    {"conv2 input grad: dXcol = W^T dY", 288, 36864, 64},
    {"fc1 forward: Y = X W^T", 64, 128, 9216},
    {"fc1 weight grad: dW = dY^T X", 128, 9216, 64},
    {"fc1 input grad: dX = dY W", 64, 9216, 128},
};

typedef struct Result {
    float median_ms;
    double gflops;
} Result;

static int compare_floats(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* FP32 lanes per SM by compute capability (CUDA programming guide, "arithmetic instructions"); 0 = unknown. */
static int fp32_lanes_per_sm(int major, int minor)
{
    if (major == 8 && minor == 0) {
        return 64; /* A100 */
    }
    if (major == 7 || (major == 6 && minor == 0)) {
        return 64;
    }
    if (major == 5 || major == 6 || major == 8 || major == 9 || major == 10 || major == 12) {
        return 128; /* sm_5x, 6.1/6.2, 8.6/8.7/8.9, 9.0 (H100), 10.x, 12.x */
    }
    return 0;
}

/* Parses "a,b,c" into values (each 1..1e6); returns the count, or -1 on a bad list. */
static int parse_list(const char *text, int *values, int max)
{
    int count = 0;
    const char *p = text;
    while (*p) {
        char *end = NULL;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 1000000 || count == max) {
            return -1;
        }
        values[count++] = (int)v;
        p = end;
        if (*p == ',') {
            p++;
        } else if (*p != '\0') {
            return -1;
        }
    }
    return count;
}

static void usage(const char *program)
{
    fprintf(stderr,
            "usage: %s [--sizes 128,256,...] [--shapes trainer|none] [--kernels 01,05,...] [--repeat R] "
            "[--warmup W] [--json FILE]\n",
            program);
}

/* Times `kernel` (or cuBLAS when kernel is NULL) on the problem: `warmup` runs, then the median of `repeat`. */
static float time_median_ms(const SgemmKernel *kernel, cublasHandle_t handle, const Problem *p, const float *a,
                            const float *b, float *c, int warmup, int repeat, cudaEvent_t start, cudaEvent_t stop)
{
    float times[MAX_REPEAT];
    for (int r = -warmup; r < repeat; r++) {
        CUDA_CHECK(cudaEventRecord(start));
        if (kernel) {
            kernel->run(p->m, p->n, p->k, 1.0f, a, b, 0.0f, c);
        } else {
            sgemm_cublas_rowmajor(handle, p->m, p->n, p->k, 1.0f, a, b, 0.0f, c);
        }
        CUDA_CHECK(cudaEventRecord(stop));
        CUDA_CHECK(cudaEventSynchronize(stop));
        if (r >= 0) {
            CUDA_CHECK(cudaEventElapsedTime(&times[r], start, stop));
        }
    }
    qsort(times, (size_t)repeat, sizeof times[0], compare_floats);
    return times[repeat / 2];
}

/* Checks `got` (m, n) against cuBLAS's result on every element and against the double CPU dot product on the
 * sampled elements; prints the first problem and returns false when anything is off (NaN included). */
static bool check_result(const char *who, const Problem *p, const float *got, const float *cublas_c,
                         const float *abs_product, const float *a, const float *b, int n_samples,
                         const int *sample_i, const int *sample_j)
{
    const double u = ldexp(1.0, -24);
    const size_t count = (size_t)p->m * p->n;
    for (size_t e = 0; e < count; e++) {
        double bound = 2.0 * 2.0 * (p->k + 2) * u * abs_product[e] + 1e-30; /* both results may err */
        double err = fabs((double)got[e] - cublas_c[e]);
        if (!(err <= bound)) {
            printf("WRONG %s on %s (m=%d n=%d k=%d): C[%zu][%zu] = %.9g, cuBLAS %.9g (bound %.3g)\n", who, p->name,
                   p->m, p->n, p->k, e / p->n, e % p->n, got[e], cublas_c[e], bound);
            return false;
        }
    }
    for (int s = 0; s < n_samples; s++) {
        const int i = sample_i[s], j = sample_j[s];
        double sum = 0.0, abs_sum = 0.0;
        for (int q = 0; q < p->k; q++) {
            double term = (double)a[(size_t)i * p->k + q] * b[(size_t)q * p->n + j];
            sum += term;
            abs_sum += fabs(term);
        }
        double bound = 2.0 * (p->k + 2) * u * abs_sum + 1e-30;
        double value = got[(size_t)i * p->n + j];
        if (!(fabs(value - sum) <= bound)) {
            printf("WRONG %s on %s (m=%d n=%d k=%d): C[%d][%d] = %.9g, CPU reference %.9g (bound %.3g)\n", who,
                   p->name, p->m, p->n, p->k, i, j, value, sum, bound);
            return false;
        }
    }
    return true;
}

int main(int argc, char **argv)
{
    int sizes[MAX_PROBLEMS];
    int n_sizes = -1; /* -1: the default for the device */
    int trainer_shapes = -1;
    int kernel_numbers[MAX_KERNELS];
    int n_kernel_numbers = 0;
    int repeat = -1, warmup = 2;
    const char *json_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (strcmp(arg, "--sizes") == 0 && value) {
            n_sizes = parse_list(value, sizes, MAX_PROBLEMS - (int)(sizeof TRAINER_SHAPES / sizeof TRAINER_SHAPES[0]));
            if (n_sizes < 0) {
                fprintf(stderr, "%s: --sizes wants a comma-separated list of sizes 1..1000000, got '%s'\n", argv[0],
                        value);
                return 2;
            }
        } else if (strcmp(arg, "--shapes") == 0 && value) {
            if (strcmp(value, "trainer") != 0 && strcmp(value, "none") != 0) {
                fprintf(stderr, "%s: --shapes wants 'trainer' or 'none', got '%s'\n", argv[0], value);
                return 2;
            }
            trainer_shapes = strcmp(value, "trainer") == 0;
        } else if (strcmp(arg, "--kernels") == 0 && value) {
            n_kernel_numbers = parse_list(value, kernel_numbers, MAX_KERNELS);
            for (int k = 0; k < n_kernel_numbers; k++) {
                if (kernel_numbers[k] > SGEMM_KERNEL_COUNT) {
                    n_kernel_numbers = -1;
                }
            }
            if (n_kernel_numbers < 0) {
                fprintf(stderr, "%s: --kernels wants kernel numbers 1..%d separated by commas, got '%s'\n", argv[0],
                        SGEMM_KERNEL_COUNT, value);
                return 2;
            }
        } else if (strcmp(arg, "--repeat") == 0 && value) {
            repeat = (int)strtol(value, &end, 10);
            if (*end != '\0' || repeat < 1 || repeat > MAX_REPEAT) {
                fprintf(stderr, "%s: --repeat must be 1..%d, got '%s'\n", argv[0], MAX_REPEAT, value);
                return 2;
            }
        } else if (strcmp(arg, "--warmup") == 0 && value) {
            warmup = (int)strtol(value, &end, 10);
            if (*end != '\0' || warmup < 0 || warmup > 100) {
                fprintf(stderr, "%s: --warmup must be 0..100, got '%s'\n", argv[0], value);
                return 2;
            }
        } else if (strcmp(arg, "--json") == 0 && value) {
            json_path = value;
        } else {
            usage(argv[0]);
            return strcmp(arg, "--help") == 0 ? 0 : 2;
        }
        i++;
    }

    char reason[256];
    if (!cuda_device_available(reason, sizeof reason)) {
        fprintf(stderr, "%s: %s\n", argv[0], reason);
        return 77;
    }
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    const bool simulated = strstr(prop.name, "simulator") != NULL;
    if (n_sizes < 0) {
        static const int gpu_sizes[] = {128, 256, 512, 1024, 2048, 4096};
        static const int sim_sizes[] = {33, 64};
        n_sizes = simulated ? 2 : 6;
        memcpy(sizes, simulated ? sim_sizes : gpu_sizes, (size_t)n_sizes * sizeof(int));
    }
    if (trainer_shapes < 0) {
        trainer_shapes = !simulated;
    }
    if (repeat < 0) {
        repeat = simulated ? 1 : 10;
    }
    if (simulated) {
        warmup = 0;
    }
    const SgemmKernel *kernels[MAX_KERNELS];
    int n_kernels = 0;
    if (n_kernel_numbers == 0) {
        for (int k = 0; k < SGEMM_KERNEL_COUNT; k++) {
            kernels[n_kernels++] = &SGEMM_KERNELS[k];
        }
    } else {
        for (int k = 0; k < n_kernel_numbers; k++) {
            kernels[n_kernels++] = &SGEMM_KERNELS[kernel_numbers[k] - 1];
        }
    }
    Problem problems[MAX_PROBLEMS];
    int n_problems = 0;
    for (int s = 0; s < n_sizes; s++) {
        Problem *p = &problems[n_problems++];
        snprintf(p->name, sizeof p->name, "square %d", sizes[s]);
        p->m = p->n = p->k = sizes[s];
    }
    if (trainer_shapes) {
        for (size_t s = 0; s < (sizeof TRAINER_SHAPES / sizeof TRAINER_SHAPES[0]); s++) {
            problems[n_problems++] = TRAINER_SHAPES[s];
        }
    }

    /* The device's FP32 peak: SMs x FP32 lanes per SM x clock x 2 (a fused multiply-add is 2 flops). */
    int clock_khz = 0;
    if (cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0) != cudaSuccess) {
        clock_khz = 0;
    }
    cudaGetLastError(); /* an unsupported attribute is not an error for this program */
    const int lanes = fp32_lanes_per_sm(prop.major, prop.minor);
    const double peak_gflops =
        (clock_khz > 0 && lanes > 0) ? (double)prop.multiProcessorCount * lanes * clock_khz * 1e3 * 2.0 / 1e9 : 0.0;
    printf("device: %s (compute capability %d.%d, %d SMs)\n", prop.name, prop.major, prop.minor,
           prop.multiProcessorCount);
    if (peak_gflops > 0.0) {
        printf("FP32 peak: %.0f GFLOP/s (%d SMs x %d FP32 lanes x %.3f GHz x 2)\n", peak_gflops,
               prop.multiProcessorCount, lanes, clock_khz / 1e6);
    } else {
        printf("FP32 peak: unknown (the device does not report its clock or its FP32 lanes per SM)\n");
    }
    if (simulated) {
        printf("NOTE: this is the CPU simulator. It runs and checks every kernel; the timings below mean "
               "NOTHING about a GPU.\n");
    }
    printf("cuBLAS: cublasSgemm, FP32 (CUBLAS_PEDANTIC_MATH, no TF32). Median of %d runs after %d warm-up.\n",
           repeat, warmup);

    cublasHandle_t handle = sgemm_cublas_create();
    cudaEvent_t start, stop;
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&stop));
    static Result results[MAX_PROBLEMS][MAX_KERNELS];
    static Result cublas_results[MAX_PROBLEMS];
    Rng rng;
    rng_seed(&rng, 2026, 5);

    for (int q = 0; q < n_problems; q++) {
        const Problem *p = &problems[q];
        const size_t size_a = (size_t)p->m * p->k, size_b = (size_t)p->k * p->n, size_c = (size_t)p->m * p->n;
        float *a = (float *)malloc(size_a * sizeof(float)); /* (m, k) */
        float *b = (float *)malloc(size_b * sizeof(float)); /* (k, n) */
        float *abs_a = (float *)malloc(size_a * sizeof(float));
        float *abs_b = (float *)malloc(size_b * sizeof(float));
        float *cublas_c = (float *)malloc(size_c * sizeof(float)); /* (m, n) */
        float *abs_product = (float *)malloc(size_c * sizeof(float));
        float *got = (float *)malloc(size_c * sizeof(float));
        if (!a || !b || !abs_a || !abs_b || !cublas_c || !abs_product || !got) {
            fprintf(stderr, "%s: out of host memory for %s\n", argv[0], p->name);
            return 1;
        }
        for (size_t e = 0; e < size_a; e++) {
            a[e] = rng_uniform_range(&rng, -1.0f, 1.0f);
            abs_a[e] = fabsf(a[e]);
        }
        for (size_t e = 0; e < size_b; e++) {
            b[e] = rng_uniform_range(&rng, -1.0f, 1.0f);
            abs_b[e] = fabsf(b[e]);
        }
        float *d_a, *d_b, *d_c;
        CUDA_CHECK(cudaMalloc(&d_a, size_a * sizeof(float)));
        CUDA_CHECK(cudaMalloc(&d_b, size_b * sizeof(float)));
        CUDA_CHECK(cudaMalloc(&d_c, size_c * sizeof(float)));
        /* |A| |B| first (for the bounds), then A B */
        CUDA_CHECK(cudaMemcpy(d_a, abs_a, size_a * sizeof(float), cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(d_b, abs_b, size_b * sizeof(float), cudaMemcpyHostToDevice));
        sgemm_cublas_rowmajor(handle, p->m, p->n, p->k, 1.0f, d_a, d_b, 0.0f, d_c);
        CUDA_CHECK(cudaMemcpy(abs_product, d_c, size_c * sizeof(float), cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(d_a, a, size_a * sizeof(float), cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(d_b, b, size_b * sizeof(float), cudaMemcpyHostToDevice));
        sgemm_cublas_rowmajor(handle, p->m, p->n, p->k, 1.0f, d_a, d_b, 0.0f, d_c);
        CUDA_CHECK(cudaMemcpy(cublas_c, d_c, size_c * sizeof(float), cudaMemcpyDeviceToHost));

        /* The elements checked against the CPU: all of them for small problems, else the four corners and 60
         * random ones (a dot product of length k each). */
        enum { MAX_SAMPLES = 64 };
        const bool check_all = size_c * (size_t)p->k <= ((size_t)1 << 22);
        const size_t max_samples = check_all ? size_c : (size_t)MAX_SAMPLES;
        int *sample_i = (int *)malloc(max_samples * sizeof(int));
        int *sample_j = (int *)malloc(max_samples * sizeof(int));
        if (!sample_i || !sample_j) {
            fprintf(stderr, "%s: out of host memory for %s\n", argv[0], p->name);
            return 1;
        }
        int n_samples = 0;
        if (check_all) {
            for (int i = 0; i < p->m; i++) {
                for (int j = 0; j < p->n; j++) {
                    sample_i[n_samples] = i;
                    sample_j[n_samples++] = j;
                }
            }
        } else {
            const int corner_i[4] = {0, 0, p->m - 1, p->m - 1}, corner_j[4] = {0, p->n - 1, 0, p->n - 1};
            for (int s = 0; s < 4; s++) {
                sample_i[n_samples] = corner_i[s];
                sample_j[n_samples++] = corner_j[s];
            }
            while (n_samples < MAX_SAMPLES) {
                sample_i[n_samples] = (int)rng_below(&rng, (uint32_t)p->m);
                sample_j[n_samples++] = (int)rng_below(&rng, (uint32_t)p->n);
            }
        }
        if (!check_result("cuBLAS", p, cublas_c, cublas_c, abs_product, a, b, n_samples, sample_i, sample_j)) {
            return 1;
        }
        for (int kk = 0; kk < n_kernels; kk++) {
            CUDA_CHECK(cudaMemset(d_c, 0xff, size_c * sizeof(float))); /* all bits set: NaN */
            kernels[kk]->run(p->m, p->n, p->k, 1.0f, d_a, d_b, 0.0f, d_c);
            CUDA_CHECK(cudaDeviceSynchronize());
            CUDA_CHECK(cudaMemcpy(got, d_c, size_c * sizeof(float), cudaMemcpyDeviceToHost));
            if (!check_result(kernels[kk]->id, p, got, cublas_c, abs_product, a, b, n_samples, sample_i, sample_j)) {
                return 1;
            }
        }

        const double flops = 2.0 * p->m * p->n * (double)p->k;
        printf("\n%s: m=%d n=%d k=%d (%.3g GFLOP), all kernels checked\n", p->name, p->m, p->n, p->k, flops / 1e9);
        printf("  %-20s %10s %10s %10s %10s\n", "kernel", "ms", "GFLOP/s", "% cuBLAS", "% peak");
        float ms = time_median_ms(NULL, handle, p, d_a, d_b, d_c, warmup, repeat, start, stop);
        cublas_results[q].median_ms = ms;
        cublas_results[q].gflops = ms > 0.0f ? flops / (ms * 1e6) : 0.0;
        for (int kk = -1; kk < n_kernels; kk++) {
            Result *r = &cublas_results[q];
            if (kk >= 0) {
                r = &results[q][kk];
                r->median_ms = time_median_ms(kernels[kk], handle, p, d_a, d_b, d_c, warmup, repeat, start, stop);
                r->gflops = r->median_ms > 0.0f ? flops / (r->median_ms * 1e6) : 0.0;
            }
            char peak_text[16] = "unknown";
            if (peak_gflops > 0.0) {
                snprintf(peak_text, sizeof peak_text, "%.1f", 100.0 * r->gflops / peak_gflops);
            }
            printf("  %-20s %10.3f %10.1f %10.1f %10s\n", kk < 0 ? "cuBLAS" : kernels[kk]->id, r->median_ms,
                   r->gflops, cublas_results[q].gflops > 0 ? 100.0 * r->gflops / cublas_results[q].gflops : 0.0,
                   peak_text);
        }
        CUDA_CHECK(cudaFree(d_a));
        CUDA_CHECK(cudaFree(d_b));
        CUDA_CHECK(cudaFree(d_c));
        free(a);
        free(b);
        free(abs_a);
        free(abs_b);
        free(cublas_c);
        free(abs_product);
        free(got);
        free(sample_i);
        free(sample_j);
    }
    if (simulated) {
        printf("\n(simulated: every kernel was checked; the timings are meaningless. Run on a GPU for figures.)\n");
    }

    if (json_path) {
        AtomicFile file;
        CourseError err;
        if (atomic_file_open(&file, json_path, &err) != 0) {
            fprintf(stderr, "%s: %s\n", argv[0], err.message);
            return 1;
        }
        FILE *f = file.stream;
        fprintf(f, "{\n  \"device\": \"%s\",\n  \"simulated\": %s,\n  \"compute_capability\": \"%d.%d\",\n", prop.name,
                simulated ? "true" : "false", prop.major, prop.minor);
        fprintf(f, "  \"sms\": %d,\n  \"clock_khz\": %d,\n  \"fp32_lanes_per_sm\": %d,\n  \"peak_gflops\": %.1f,\n",
                prop.multiProcessorCount, clock_khz, lanes, peak_gflops);
        fprintf(f, "  \"cublas_math\": \"CUBLAS_PEDANTIC_MATH (FP32, no TF32)\",\n  \"repeat\": %d,\n  \"warmup\": %d,\n",
                repeat, warmup);
        fprintf(f, "  \"problems\": [\n");
        for (int q = 0; q < n_problems; q++) {
            const Problem *p = &problems[q];
            fprintf(f, "    {\"name\": \"%s\", \"m\": %d, \"n\": %d, \"k\": %d,\n", p->name, p->m, p->n, p->k);
            fprintf(f, "     \"cublas\": {\"median_ms\": %.6f, \"gflops\": %.3f},\n     \"kernels\": [\n",
                    cublas_results[q].median_ms, cublas_results[q].gflops);
            for (int kk = 0; kk < n_kernels; kk++) {
                fprintf(f, "       {\"id\": \"%s\", \"median_ms\": %.6f, \"gflops\": %.3f, \"checked\": true}%s\n",
                        kernels[kk]->id, results[q][kk].median_ms, results[q][kk].gflops,
                        kk + 1 < n_kernels ? "," : "");
            }
            fprintf(f, "     ]}%s\n", q + 1 < n_problems ? "," : "");
        }
        fprintf(f, "  ]\n}\n");
        if (atomic_file_commit(&file, &err) != 0) {
            fprintf(stderr, "%s: %s\n", argv[0], err.message);
            return 1;
        }
        printf("wrote %s\n", json_path);
    }
    CUDA_CHECK(cudaEventDestroy(start));
    CUDA_CHECK(cudaEventDestroy(stop));
    cublasDestroy(handle);
    return 0;
}
