/* cnn_bench.c — Chapter 03's benchmark: this chapter's GEMM, convolution and training step against OpenBLAS,
 * timed side by side in one run. (bench/cnn_bench.py runs this program and PyTorch together and prints both.)
 *
 *   build/bin/cnn_bench                                  # everything, 2 threads, medians of 5
 *   build/bin/cnn_bench --threads 2 --repeats 7 --json bench.json
 *   /usr/bin/python3 chapters/03-cnn-cpu/bench/cnn_bench.py --exe build/bin/cnn_bench   # with PyTorch
 *
 * Four tables:
 *   1. SGEMM, one thread: the progression (naive, reordered, blocked, packed) and OpenBLAS at 1024^3, then own
 *      packed vs OpenBLAS at the GEMM shapes of the network's training step;
 *   2. conv2 of the network (batch 64, 32 -> 64 channels, 26x26 -> 24x24): direct, im2col + own GEMM,
 *      im2col + OpenBLAS, forward and forward + backward, --threads threads;
 *   3. one full training step at batch 64 (forward, loss, backward, SGD), --threads threads;
 *   4. fc1 (batch 64, 9216 -> 128), forward + backward, one thread: chapter 02's loops against the GEMM layer
 *      (linear_*_gemm on OpenBLAS), and their ratio.
 * Every figure is the median of --repeats runs (the machine may be shared: medians resist a busy neighbour).
 * Benchmarks are programs, never tests: nothing here asserts a speed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cnn.h"
#include "cnn_layers.h"
#include "conv.h"
#include "course_error.h"
#include "file_util.h"
#include "gemm.h"
#include "layers.h" /* chapter 02: linear_forward / linear_backward, the loops */
#include "rng.h"
#include "testing.h"
#include "timer.h"
#include "train_util.h"

#define MAX_RESULTS 64

typedef struct Result {
    char table[16]; /* "gemm", "conv2", "step", "fc1" */
    char name[64];
    double seconds; /* median */
    double gflops; /* 0 when not meaningful */
} Result;

static Result results[MAX_RESULTS];
static int result_count;

static int compare_doubles(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *values, int n)
{
    qsort(values, (size_t)n, sizeof *values, compare_doubles);
    return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

static void record(const char *table, const char *name, double seconds, double flops)
{
    if (result_count >= MAX_RESULTS) {
        die("cnn_bench: more than %d results", MAX_RESULTS);
    }
    Result *r = &results[result_count++];
    snprintf(r->table, sizeof r->table, "%s", table);
    snprintf(r->name, sizeof r->name, "%s", name);
    r->seconds = seconds;
    r->gflops = flops > 0 ? flops / seconds * 1e-9 : 0.0;
    if (flops > 0) {
        printf("  %-44s %10.3f ms %8.1f GFLOP/s\n", name, 1e3 * seconds, r->gflops);
    } else {
        printf("  %-44s %10.3f ms\n", name, 1e3 * seconds);
    }
    fflush(stdout);
}

static void fill_random(float *values, size_t n, Rng *rng)
{
    for (size_t i = 0; i < n; ++i) {
        values[i] = rng_uniform_range(rng, -1.0f, 1.0f);
    }
}

/* ---- 1. SGEMM -------------------------------------------------------------------------------------------- */

typedef enum Kernel { K_NAIVE, K_REORDERED, K_BLOCKED, K_PACKED, K_OPENBLAS } Kernel;

static void run_kernel(Kernel kernel, bool ta, bool tb, int m, int n, int k, const float *a, const float *b, float *c)
{
    const int lda = ta ? m : k, ldb = tb ? k : n;
    switch (kernel) {
    case K_NAIVE: sgemm_naive(m, n, k, a, b, c); break;
    case K_REORDERED: sgemm_reordered(m, n, k, a, b, c); break;
    case K_BLOCKED: sgemm_blocked(m, n, k, a, b, c); break;
    case K_PACKED: sgemm(GEMM_OWN, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, n); break;
    case K_OPENBLAS: sgemm(GEMM_OPENBLAS, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, n); break;
    }
}

static double time_gemm(Kernel kernel, bool ta, bool tb, int m, int n, int k, int repeats, Rng *rng)
{
    float *a = xmalloc((size_t)m * k * sizeof *a), *b = xmalloc((size_t)k * n * sizeof *b);
    float *c = xmalloc((size_t)m * n * sizeof *c);
    fill_random(a, (size_t)m * k, rng);
    fill_random(b, (size_t)k * n, rng);
    run_kernel(kernel, ta, tb, m, n, k, a, b, c); /* warm-up: caches, packing buffers, OpenBLAS start-up */
    double *times = xmalloc((size_t)repeats * sizeof *times);
    for (int r = 0; r < repeats; ++r) {
        const double t0 = timer_seconds();
        run_kernel(kernel, ta, tb, m, n, k, a, b, c);
        times[r] = timer_seconds() - t0;
    }
    const double t = median(times, repeats);
    free(times);
    free(a);
    free(b);
    free(c);
    return t;
}

static void bench_gemm(int repeats, Rng *rng)
{
    const int n = 1024;
    const double flops = 2.0 * n * n * n;
    printf("\n1. SGEMM, single thread, C (M, N) = A (M, K) B (K, N)\n");
    printf("  progression at M = N = K = 1024:\n");
    /* The naive loop takes seconds at this size: one run is enough to see it. */
    record("gemm", "naive i-j-k 1024^3", time_gemm(K_NAIVE, false, false, n, n, n, 1, rng), flops);
    record("gemm", "reordered i-k-j 1024^3", time_gemm(K_REORDERED, false, false, n, n, n, repeats, rng), flops);
    record("gemm", "blocked 1024^3", time_gemm(K_BLOCKED, false, false, n, n, n, repeats, rng), flops);
    record("gemm", "packed + 6x16 micro-kernel 1024^3", time_gemm(K_PACKED, false, false, n, n, n, repeats, rng), flops);
    record("gemm", "OpenBLAS 1024^3", time_gemm(K_OPENBLAS, false, false, n, n, n, repeats, rng), flops);

    /* The GEMMs of one training step (padding 0, batch 64): per image for conv2, per batch for fc1. */
    static const struct {
        const char *what;
        int m, n, k;
        bool ta, tb;
    } shapes[] = {
        {"conv2 fwd 64x576x288", 64, 576, 288, false, false},
        {"conv2 dW 64x288x576 (B^T)", 64, 288, 576, false, true},
        {"conv2 dcols 288x576x64 (A^T)", 288, 576, 64, true, false},
        {"fc1 fwd 64x128x9216 (B^T)", 64, 128, 9216, false, true},
        {"fc1 dW 128x9216x64 (A^T)", 128, 9216, 64, true, false},
        {"fc1 dx 64x9216x128", 64, 9216, 128, false, false},
    };
    printf("  the network's shapes, own packed vs OpenBLAS:\n");
    for (size_t i = 0; i < COUNT_OF(shapes); ++i) {
        const double f = 2.0 * shapes[i].m * shapes[i].n * shapes[i].k;
        char name[64];
        snprintf(name, sizeof name, "own %s", shapes[i].what);
        record("gemm", name, time_gemm(K_PACKED, shapes[i].ta, shapes[i].tb, shapes[i].m, shapes[i].n, shapes[i].k, repeats, rng), f);
        snprintf(name, sizeof name, "OpenBLAS %s", shapes[i].what);
        record("gemm", name, time_gemm(K_OPENBLAS, shapes[i].ta, shapes[i].tb, shapes[i].m, shapes[i].n, shapes[i].k, repeats, rng), f);
    }
}

/* ---- 2. conv2 -------------------------------------------------------------------------------------------- */

typedef enum ConvMethod { CONV_DIRECT, CONV_IM2COL_OWN, CONV_IM2COL_OPENBLAS } ConvMethod;

static void conv_once(ConvMethod method, bool backward, const Conv2dShape *s, const float *x, const float *w,
                      const float *b, float *y, const float *dy, float *dx, float *dw, float *db)
{
    if (method == CONV_DIRECT) {
        conv2d_forward_direct(s, x, w, b, y);
        if (backward) {
            conv2d_backward_input_direct(s, w, dy, dx);
            conv2d_backward_weight_direct(s, x, dy, dw);
            conv2d_backward_bias(s, dy, db);
        }
        return;
    }
    const GemmBackend backend = method == CONV_IM2COL_OWN ? GEMM_OWN : GEMM_OPENBLAS;
    conv2d_forward_im2col(s, x, w, b, y, backend);
    if (backward) {
        conv2d_backward_im2col(s, x, w, dy, dx, dw, db, backend);
    }
}

static void bench_conv(int threads, int repeats, Rng *rng)
{
    const Conv2dShape s = {64, 32, 26, 26, 64, 3, 3, 0, 1};
    const size_t nx = conv2d_input_size(&s), nw = conv2d_weight_size(&s), ny = conv2d_output_size_total(&s);
    float *x = xmalloc(nx * sizeof *x), *w = xmalloc(nw * sizeof *w), *b = xmalloc(64 * sizeof *b);
    float *y = xmalloc(ny * sizeof *y), *dy = xmalloc(ny * sizeof *dy), *dx = xmalloc(nx * sizeof *dx);
    float *dw = xmalloc(nw * sizeof *dw), *db = xmalloc(64 * sizeof *db);
    fill_random(x, nx, rng);
    fill_random(w, nw, rng);
    fill_random(b, 64, rng);
    fill_random(dy, ny, rng);
    const double flops = 2.0 * ny * 32 * 9; /* forward multiply-adds; backward has twice as many */
    printf("\n2. conv2 (batch 64, 32 -> 64 channels, 3x3, 26x26 -> 24x24), %d threads\n", threads);
    static const char *names[3] = {"direct", "im2col + own GEMM", "im2col + OpenBLAS"};
    for (int method = CONV_DIRECT; method <= CONV_IM2COL_OPENBLAS; ++method) {
        for (int backward = 0; backward <= 1; ++backward) {
            /* the direct loops take ~1 s per backward pass: 3 runs are enough */
            const int reps = method == CONV_DIRECT ? (repeats < 3 ? repeats : 3) : repeats;
            conv_once((ConvMethod)method, backward, &s, x, w, b, y, dy, dx, dw, db);
            double *times = xmalloc((size_t)reps * sizeof *times);
            for (int r = 0; r < reps; ++r) {
                const double t0 = timer_seconds();
                conv_once((ConvMethod)method, backward, &s, x, w, b, y, dy, dx, dw, db);
                times[r] = timer_seconds() - t0;
            }
            char name[64];
            snprintf(name, sizeof name, "%s %s", names[method], backward ? "fwd+bwd" : "fwd");
            record("conv2", name, median(times, reps), backward ? 3.0 * flops : flops);
            free(times);
        }
    }
    float *all[] = {x, w, b, y, dy, dx, dw, db};
    for (size_t i = 0; i < COUNT_OF(all); ++i) {
        free(all[i]);
    }
}

/* ---- 3. a training step ---------------------------------------------------------------------------------- */

static void bench_step(int threads, int repeats, Rng *rng)
{
    printf("\n3. one training step, batch 64 (forward, loss, backward, SGD momentum), %d threads\n", threads);
    const int batch = 64;
    float *x = xmalloc((size_t)batch * 28 * 28 * sizeof *x); /* (64, 1, 28, 28) */
    int32_t labels[64];
    for (int i = 0; i < batch * 28 * 28; ++i) {
        x[i] = (rng_uniform(rng) - MNIST_MEAN) / MNIST_STD;
    }
    for (int i = 0; i < batch; ++i) {
        labels[i] = (int32_t)rng_below(rng, 10);
    }
    for (int backend = GEMM_OPENBLAS; backend >= GEMM_OWN; --backend) {
        Cnn net;
        CourseError err;
        if (cnn_create(&net, cnn_default_config(0), batch, (GemmBackend)backend, &err) != 0) {
            error_exit(&err);
        }
        cnn_init(&net, 1);
        const int warmup = 2, reps = repeats * 2 + 1;
        double *times = xmalloc((size_t)reps * sizeof *times);
        for (int r = -warmup; r < reps; ++r) {
            const double t0 = timer_seconds();
            cnn_draw_dropout_masks(&net, batch);
            cnn_forward_loss(&net, x, labels, batch, true);
            cnn_backward(&net, labels, batch);
            cnn_sgd_step(&net, 0.01f, 0.9f);
            if (r >= 0) {
                times[r] = timer_seconds() - t0;
            }
        }
        char name[64];
        snprintf(name, sizeof name, "training step, %s GEMM", gemm_backend_name((GemmBackend)backend));
        record("step", name, median(times, reps), 0.0);
        free(times);
        cnn_destroy(&net);
    }
    free(x);
}

/* ---- 4. fc1: chapter 02's loops against the GEMM layer ------------------------------------------------- */

static double time_fc1(bool gemm, int repeats, const float *x, const float *w, const float *b, float *y,
                       const float *dy, float *dx, float *dw, float *db)
{
    const int batch = 64, in = 9216, out = 128;
    double *times = xmalloc((size_t)repeats * sizeof *times);
    for (int r = -1; r < repeats; ++r) { /* r = -1: the warm-up */
        const double t0 = timer_seconds();
        if (gemm) {
            linear_forward_gemm(x, w, b, y, batch, in, out, GEMM_OPENBLAS);
            linear_backward_gemm(x, w, dy, dx, dw, db, batch, in, out, GEMM_OPENBLAS);
        } else {
            linear_forward(x, w, b, y, batch, in, out);
            linear_backward(x, w, dy, dx, dw, db, batch, in, out);
        }
        if (r >= 0) {
            times[r] = timer_seconds() - t0;
        }
    }
    const double t = median(times, repeats);
    free(times);
    return t;
}

static void bench_fc1(int repeats, Rng *rng)
{
    const int batch = 64, in = 9216, out = 128;
    printf("\n4. fc1 (batch 64, 9216 -> 128), forward + backward, one thread\n");
    float *x = xmalloc((size_t)batch * in * sizeof *x), *w = xmalloc((size_t)out * in * sizeof *w);
    float *b = xmalloc(out * sizeof *b), *y = xmalloc((size_t)batch * out * sizeof *y);
    float *dy = xmalloc((size_t)batch * out * sizeof *dy), *dx = xmalloc((size_t)batch * in * sizeof *dx);
    float *dw = xmalloc((size_t)out * in * sizeof *dw), *db = xmalloc(out * sizeof *db);
    fill_random(x, (size_t)batch * in, rng);
    fill_random(w, (size_t)out * in, rng);
    fill_random(b, out, rng);
    fill_random(dy, (size_t)batch * out, rng);
    const double flops = 3.0 * 2.0 * batch * in * out; /* forward, dx and dW: three products of this size */
    const double loops = time_fc1(false, repeats, x, w, b, y, dy, dx, dw, db);
    record("fc1", "chapter 02's loops fwd+bwd", loops, flops);
    const double gemm = time_fc1(true, repeats, x, w, b, y, dy, dx, dw, db);
    record("fc1", "linear_*_gemm (OpenBLAS) fwd+bwd", gemm, flops);
    printf("  loops / GEMM: %.1f\n", loops / gemm);
    float *all[] = {x, w, b, y, dy, dx, dw, db};
    for (size_t i = 0; i < COUNT_OF(all); ++i) {
        free(all[i]);
    }
}

/* ---- main ------------------------------------------------------------------------------------------------ */

static void cpu_model(char *out, size_t size)
{
    snprintf(out, size, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f == NULL) {
        return;
    }
    char line[512];
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "model name", 10) == 0) {
            const char *colon = strchr(line, ':');
            if (colon != NULL) {
                snprintf(out, size, "%s", colon + 2);
                out[strcspn(out, "\n")] = '\0';
            }
            break;
        }
    }
    fclose(f);
}

static int write_json(const char *path, const char *cpu, int threads, int repeats, CourseError *err)
{
    AtomicFile file;
    if (atomic_file_open(&file, path, err) != 0) {
        return -1;
    }
    FILE *out = file.stream;
    char date[64];
    const time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    fprintf(out, "{\n  \"program\": \"cnn_bench\",\n  \"date\": \"%s\",\n  \"cpu\": \"%s\",\n", date, cpu);
    fprintf(out, "  \"threads\": %d,\n  \"repeats\": %d,\n  \"results\": [\n", threads, repeats);
    for (int i = 0; i < result_count; ++i) {
        fprintf(out, "    {\"table\": \"%s\", \"name\": \"%s\", \"seconds\": %.6g, \"gflops\": %.4g}%s\n", results[i].table,
                results[i].name, results[i].seconds, results[i].gflops, i + 1 < result_count ? "," : "");
    }
    fprintf(out, "  ]\n}\n");
    return atomic_file_commit(&file, err);
}

int main(int argc, char **argv)
{
    int threads = 2, repeats = 5;
    const char *json_path = NULL, *only = "all";
    FlagSpec flags[] = {
        {"--threads", FLAG_INT, &threads, 1, 1024, "threads for the convolution and training-step tables"},
        {"--repeats", FLAG_INT, &repeats, 1, 1000, "timed runs per figure (the median is reported)"},
        {"--only", FLAG_STRING, &only, 0, 0, "one table: gemm, conv2, step, fc1 (default: all)"},
        {"--json", FLAG_STRING, &json_path, 0, 0, "write the results to this JSON file"},
    };
    CourseError err;
    const int parsed = flags_parse(argc, argv, flags, COUNT_OF(flags), "cnn_bench",
                                   "Time chapter 03's GEMM, convolution and training step against OpenBLAS.", &err);
    if (parsed == FLAGS_HELP) {
        return 0;
    }
    if (parsed != FLAGS_OK) {
        error_exit(&err);
    }
    if (strcmp(only, "all") != 0 && strcmp(only, "gemm") != 0 && strcmp(only, "conv2") != 0 &&
        strcmp(only, "step") != 0 && strcmp(only, "fc1") != 0) {
        die("--only: '%s' is not one of: all, gemm, conv2, step, fc1", only);
    }
    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    printf("cnn_bench: %s, %d threads for conv2 and the step, medians of %d runs\n", cpu, threads, repeats);
    Rng rng;
    rng_seed(&rng, 1, 0);
    gemm_set_openblas_threads(1); /* single-thread GEMM table; the layers parallelise over images themselves */
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    if (strcmp(only, "all") == 0 || strcmp(only, "gemm") == 0) {
        bench_gemm(repeats, &rng);
    }
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    if (strcmp(only, "all") == 0 || strcmp(only, "conv2") == 0) {
        bench_conv(threads, repeats, &rng);
    }
    if (strcmp(only, "all") == 0 || strcmp(only, "step") == 0) {
        bench_step(threads, repeats, &rng);
    }
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    if (strcmp(only, "all") == 0 || strcmp(only, "fc1") == 0) {
        bench_fc1(repeats, &rng);
    }
    if (json_path != NULL) {
        if (write_json(json_path, cpu, threads, repeats, &err) != 0) {
            error_exit(&err);
        }
        printf("\nresults: %s\n", json_path);
    }
    return 0;
}
