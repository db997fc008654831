/* test_optim.cu — Chapter 10's optimiser and schedule tests: SGD with momentum, Adam and AdamW replayed step by
 * step against torch.optim, the learning-rate schedules against torch.optim.lr_scheduler (golden files of
 * reference/train_better_optim.py), the per-range learning-rate scales, and the fused CUDA kernels against the
 * CPU update.
 *
 *   build/bin/test_optim_sim --list
 *   build/bin/test_optim_sim adam.golden --golden reference/golden
 *   build/bin/test_optim_sim gpu_equals_cpu.adamw --golden reference/golden
 *
 * `ctest -L ch10` runs the golden cases once (label cpu) and the gpu_equals_cpu cases on the simulator in
 * three thread orders (label sim) and on the GPU (label gpu; skipped with the reason when there is none).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "cuda_check.h"
#include "cuda_testing.h"

extern "C" {
#include "check.h"
#include "optim.h"
#include "testing.h"
}

/* The hyper-parameters of reference/train_better_optim.py's CASES (torch's Python floats, so double here). */
typedef struct GoldenCase {
    const char *name;
    OptimizerKind kind;
    double weight_decay;
} GoldenCase;

static const GoldenCase GOLDEN_CASES[] = {
    {"sgd", OPTIM_SGD, 0.0}, {"sgd_wd", OPTIM_SGD, 1e-3}, {"adam", OPTIM_ADAM, 0.0},
    {"adam_wd", OPTIM_ADAM, 1e-2}, {"adamw", OPTIM_ADAMW, 0.01},
};

/* The run of reference/train_better_optim.py's schedules. */
#define SCHEDULE_TOTAL_STEPS 157
#define SCHEDULE_STEPS_PER_EPOCH 23
#define SCHEDULE_BASE_LR 0.1

/* Against torch.optim: the same operations in the same order, but torch's vectorised CPU kernels compute
 * a + alpha * b (add with alpha, addcmul) as ONE fused multiply-add on AVX2 and NEON, where C rounds the
 * product and the sum apart. The two differ by up to an ulp of the product, which is an ulp of the operands,
 * not of the result (p - lr v can cancel to a much smaller number). So each array is compared with a tolerance
 * of TORCH_ULPS ulp of its largest element, over the 7 steps. */
#define TORCH_ULPS 4.0

/* |got - want| <= `ulps` ulp of max |want|, elementwise (0: bit for bit); *worst_ulps keeps the largest error
 * seen, in those ulp. */
static bool check_ulps(const char *name, const float *got, const float *want, size_t n, double ulps,
                       double *worst_ulps)
{
    double scale = 0.0, worst = 0.0;
    for (size_t i = 0; i < n; i++) scale = fabs(want[i]) > scale ? fabs(want[i]) : scale;
    const double ulp = scale > 0.0 ? ldexp(1.0, ilogb(scale) - 23) : 1e-45; /* float's spacing at scale */
    for (size_t i = 0; i < n; i++) {
        const double err = fabs((double)got[i] - (double)want[i]) / ulp;
        if (isnan(err) || err > worst) worst = err; /* a NaN sticks */
    }
    if (isnan(worst) || worst > *worst_ulps) *worst_ulps = worst;
    return check_close(name, got, want, n, NULL, 0, ulps * ulp, 0.0);
}

static bool load(const TestContext *ctx, const char *name, NpyArray *out)
{
    char path[256];
    snprintf(path, sizeof path, "ch10/%s.npy", name);
    return golden_load(ctx, path, out);
}

static float *copy_of(const float *x, size_t n)
{
    float *copy = (float *)malloc((n ? n : 1) * sizeof(float));
    memcpy(copy, x, n * sizeof(float));
    return copy;
}

/* Equal to the bit (a NaN fails; 0 and -0 count as equal). */
static bool check_identical(const char *name, const float *got, const float *want, size_t n)
{
    return check_close(name, got, want, n, NULL, 0, 0.0, 0.0);
}

/* The golden run's inputs: optim_p0 (n,) and optim_grads (steps, n). The tests that compare two of the course's
 * own updates (segments, gpu_equals_cpu) start from them too. */
static bool load_inputs(const TestContext *ctx, NpyArray *p0, NpyArray *grads)
{
    return load(ctx, "optim_p0", p0) && load(ctx, "optim_grads", grads) &&
           check_true(grads->count % p0->count == 0 && grads->count / p0->count >= 5, "optim_grads: 5 steps or more");
}

/* ---- Against torch.optim, step by step ---------------------------------------------------------------- */

/* Replays golden case `c`: from optim_p0 and the gradient and learning rate of each step, the CPU update's
 * p, m (and v) after every step against torch's. */
static bool run_golden_case(const TestContext *ctx, const GoldenCase *c)
{
    NpyArray p0, grads, lrs, want_p, want_m, want_v;
    memset(&want_v, 0, sizeof want_v); /* loaded for Adam only; npy_free of a zeroed array does nothing */
    char name[128];
    const bool adam = c->kind != OPTIM_SGD;
    if (!load_inputs(ctx, &p0, &grads) || !load(ctx, adam ? "optim_lr_adam" : "optim_lr_sgd", &lrs)) {
        return false;
    }
    snprintf(name, sizeof name, "optim_%s_p", c->name);
    if (!load(ctx, name, &want_p)) return false;
    snprintf(name, sizeof name, "optim_%s_m", c->name);
    if (!load(ctx, name, &want_m)) return false;
    snprintf(name, sizeof name, "optim_%s_v", c->name);
    if (adam && !load(ctx, name, &want_v)) return false;
    const size_t n = p0.count, steps = lrs.count;
    bool ok = check_true(grads.count == steps * n && want_p.count == steps * n, "%s: golden shapes agree", c->name);
    if (!ok) return false;

    OptimizerConfig config = optimizer_default_config(c->kind);
    config.weight_decay = c->weight_decay;
    float *p = (float *)malloc(n * sizeof(float)), *m = (float *)calloc(n, sizeof(float));
    float *v = (float *)calloc(n, sizeof(float));
    memcpy(p, p0.data, n * sizeof(float));
    double worst = 0.0;
    for (size_t s = 0; s < steps; s++) {
        const float *g = (const float *)grads.data + s * n;
        optim_step_cpu(&config, NULL, p, g, m, adam ? v : NULL, n, ((const float *)lrs.data)[s], s + 1);
        const float *wp = (const float *)want_p.data + s * n, *wm = (const float *)want_m.data + s * n;
        snprintf(name, sizeof name, "%s: p after step %zu", c->name, s + 1);
        ok &= check_ulps(name, p, wp, n, TORCH_ULPS, &worst);
        snprintf(name, sizeof name, "%s: %s after step %zu", c->name, adam ? "exp_avg" : "momentum_buffer", s + 1);
        ok &= check_ulps(name, m, wm, n, TORCH_ULPS, &worst);
        if (adam) {
            const float *wv = (const float *)want_v.data + s * n;
            snprintf(name, sizeof name, "%s: exp_avg_sq after step %zu", c->name, s + 1);
            ok &= check_ulps(name, v, wv, n, TORCH_ULPS, &worst);
        }
    }
    printf("%s: %zu steps of %zu parameters: at most %.2f ulp (of each array's largest element) from torch.optim\n",
           c->name, steps, n, worst);
    free(p), free(m), free(v);
    npy_free(&p0), npy_free(&grads), npy_free(&lrs), npy_free(&want_p), npy_free(&want_m), npy_free(&want_v);
    return ok;
}

/* sgd.golden, adam.golden, adamw.golden: every golden case of that optimiser (the case name's first part). */
static int test_golden(const TestContext *ctx)
{
    char kind_name[16];
    snprintf(kind_name, sizeof kind_name, "%.*s", (int)strcspn(ctx->case_name, "."), ctx->case_name);
    bool ok = true;
    for (size_t i = 0; i < COUNT_OF(GOLDEN_CASES); i++) {
        if ((int)GOLDEN_CASES[i].kind == optimizer_parse(kind_name)) ok &= run_golden_case(ctx, &GOLDEN_CASES[i]);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- Per-range learning rates -------------------------------------------------------------------------- */

/* The golden run's buffer (1031 parameters): [FROZEN_START, FROZEN_END) frozen, [SLOW_START, SLOW_END) at scale
 * 0.1, the rest at scale 1 (the layout of --freeze conv1 --layer-lr conv2=0.1). */
enum { FROZEN_START = 100, FROZEN_END = 333, SLOW_START = 500, SLOW_END = 719 };

static OptimSegments test_segments(void)
{
    OptimSegments s;
    memset(&s, 0, sizeof s);
    s.count = 2;
    s.start[0] = FROZEN_START, s.end[0] = FROZEN_END, s.lr_scale[0] = 0.0f;
    s.start[1] = SLOW_START, s.end[1] = SLOW_END, s.lr_scale[1] = 0.1f;
    return s;
}

/* State buffers that are not zero, so that "untouched" is seen: m = 0.1 a, v = (0.05 b)^2 (v >= 0, as Adam's
 * is) from two of the golden gradients a, b. */
static void nonzero_state(float *m, float *v, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++) m[i] = 0.1f * a[i], v[i] = (0.05f * b[i]) * (0.05f * b[i]);
}

static int test_segments_case(const TestContext *ctx)
{
    NpyArray p0, grads;
    if (!load_inputs(ctx, &p0, &grads)) return TEST_FAIL;
    const size_t n = p0.count, slow_n = SLOW_END - SLOW_START;
    const float *g_all = (const float *)grads.data;
    const OptimSegments segments = test_segments();
    const float lr = 0.03f;
    bool ok = true;
    for (int kind = OPTIM_SGD; kind <= OPTIM_ADAMW; kind++) {
        OptimizerConfig config = optimizer_default_config((OptimizerKind)kind);
        config.weight_decay = kind == OPTIM_SGD ? 1e-3 : config.weight_decay;
        float *p = copy_of((const float *)p0.data, n), *m = (float *)malloc(n * sizeof(float));
        float *v = (float *)malloc(n * sizeof(float));
        nonzero_state(m, v, g_all + 3 * n, g_all + 4 * n, n);
        /* References: the whole buffer at lr (no segments), and the slow range alone at lr * 0.1f. */
        float *p_all = copy_of(p, n), *m_all = copy_of(m, n), *v_all = copy_of(v, n);
        float *p_slow = copy_of(p + SLOW_START, slow_n), *m_slow = copy_of(m + SLOW_START, slow_n);
        float *v_slow = copy_of(v + SLOW_START, slow_n);
        float *p_frozen = copy_of(p, n), *m_frozen = copy_of(m, n), *v_frozen = copy_of(v, n);
        for (uint64_t t = 1; t <= 3; t++) {
            const float *g = g_all + (t - 1) * n;
            optim_step_cpu(&config, &segments, p, g, m, v, n, lr, t);
            optim_step_cpu(&config, NULL, p_all, g, m_all, v_all, n, lr, t);
            optim_step_cpu(&config, NULL, p_slow, g + SLOW_START, m_slow, v_slow, slow_n, lr * 0.1f, t);
        }
        const char *opt = optimizer_name((OptimizerKind)kind);
        char name[128];
        const size_t fz = FROZEN_START, fz_n = FROZEN_END - FROZEN_START;
        snprintf(name, sizeof name, "%s: frozen p untouched", opt);
        ok &= check_identical(name, p + fz, p_frozen + fz, fz_n);
        snprintf(name, sizeof name, "%s: frozen m untouched", opt);
        ok &= check_identical(name, m + fz, m_frozen + fz, fz_n);
        snprintf(name, sizeof name, "%s: frozen v untouched", opt);
        ok &= check_identical(name, v + fz, v_frozen + fz, fz_n);
        snprintf(name, sizeof name, "%s: the 0.1 range moves as a run at lr 0.1 lr (p)", opt);
        ok &= check_identical(name, p + SLOW_START, p_slow, slow_n);
        snprintf(name, sizeof name, "%s: the 0.1 range moves as a run at lr 0.1 lr (m)", opt);
        ok &= check_identical(name, m + SLOW_START, m_slow, slow_n);
        ok &= check_true(memcmp(p + SLOW_START, p_all + SLOW_START, slow_n * sizeof(float)) != 0,
                         "%s: the 0.1 range differs from a run at lr", opt);
        const size_t rest[][2] = {{0, FROZEN_START}, {FROZEN_END, SLOW_START}, {SLOW_END, n}};
        for (int r = 0; r < 3; r++) {
            snprintf(name, sizeof name, "%s: [%zu, %zu) at scale 1 (p)", opt, rest[r][0], rest[r][1]);
            ok &= check_identical(name, p + rest[r][0], p_all + rest[r][0], rest[r][1] - rest[r][0]);
            snprintf(name, sizeof name, "%s: [%zu, %zu) at scale 1 (v)", opt, rest[r][0], rest[r][1]);
            ok &= check_identical(name, v + rest[r][0], v_all + rest[r][0], rest[r][1] - rest[r][0]);
        }
        free(p), free(m), free(v), free(p_all), free(m_all), free(v_all), free(p_slow), free(m_slow), free(v_slow);
        free(p_frozen), free(m_frozen), free(v_frozen);
    }
    npy_free(&p0), npy_free(&grads);
    /* Invalid segments are refused with the problem named. */
    CourseError err;
    OptimSegments bad = test_segments();
    ok &= check_true(optim_segments_check(&bad, n, &err) == 0, "the test's segments are valid");
    bad.start[1] = FROZEN_END - 1;
    ok &= check_true(optim_segments_check(&bad, n, &err) != 0 && strstr(err.message, "overlap") != NULL,
                     "overlapping ranges refused (%s)", err.message);
    bad = test_segments(), bad.end[1] = n + 1;
    ok &= check_true(optim_segments_check(&bad, n, &err) != 0 && strstr(err.message, "outside") != NULL,
                     "a range past the end refused (%s)", err.message);
    bad = test_segments(), bad.lr_scale[1] = -1.0f;
    ok &= check_true(optim_segments_check(&bad, n, &err) != 0 && strstr(err.message, "scale") != NULL,
                     "a negative scale refused (%s)", err.message);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- Schedules ----------------------------------------------------------------------------------------- */

static int test_schedule_golden(const TestContext *ctx)
{
    static const struct {
        ScheduleKind kind;
        const char *golden;
    } schedules[] = {{SCHEDULE_STEP, "schedule_step"}, {SCHEDULE_COSINE, "schedule_cosine"},
                     {SCHEDULE_ONECYCLE, "schedule_onecycle"}};
    bool ok = true;
    for (size_t s = 0; s < COUNT_OF(schedules); s++) {
        NpyArray want;
        if (!load(ctx, schedules[s].golden, &want)) return TEST_FAIL;
        const ScheduleConfig config = schedule_default_config(schedules[s].kind, SCHEDULE_BASE_LR,
                                                              SCHEDULE_TOTAL_STEPS, SCHEDULE_STEPS_PER_EPOCH);
        ok &= check_true(want.count == SCHEDULE_TOTAL_STEPS, "%s: %zu steps", schedules[s].golden, want.count);
        float *got = (float *)malloc(want.count * sizeof(float));
        for (size_t i = 0; i < want.count; i++) got[i] = (float)schedule_lr(&config, i);
        /* torch's CosineAnnealingLR multiplies the previous rate by a ratio of cosines every step; the closed
         * form agrees to about 1e-15 relative, which float rounding can still show as 1 ulp. */
        ok &= check_close(schedules[s].golden, got, (const float *)want.data, want.count, NULL, 0, 0.0, 2.5e-7);
        ok &= check_true(strcmp(schedule_name(schedules[s].kind), "unknown") != 0 &&
                             schedule_parse(schedule_name(schedules[s].kind)) == (int)schedules[s].kind,
                         "%s: the name parses back", schedule_name(schedules[s].kind));
        free(got);
        npy_free(&want);
    }
    const ScheduleConfig constant = schedule_default_config(SCHEDULE_CONSTANT, 0.25, 100, 10);
    ok &= check_true(schedule_lr(&constant, 0) == 0.25 && schedule_lr(&constant, 99) == 0.25, "constant is constant");
    ok &= check_true(schedule_parse("warmup") == -1 && optimizer_parse("rmsprop") == -1, "unknown names refused");
    ok &= check_true(optimizer_parse("adamw") == OPTIM_ADAMW && optimizer_state_buffers(OPTIM_SGD) == 1 &&
                         optimizer_state_buffers(OPTIM_ADAM) == 2,
                     "optimizer names and state buffers");
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- The fused kernels against the CPU update ---------------------------------------------------------- */

/* The kernel is captured ONCE in a CUDA Graph on a stream of its own, with the segments of test_segments; every
 * step then writes the new learning rate, t and gradient to the device and replays the graph, without passing
 * the rate again. After every step p, m, v equal the CPU update's: bit for bit on the simulator (the same
 * float operations, optim_math.h); on a GPU within a few ulp (nvcc fuses multiply-adds, and its pow in
 * double may round differently from glibc's). */
static int run_gpu_equals_cpu(const TestContext *ctx, OptimizerKind kind)
{
    NpyArray p0, grads;
    if (!load_inputs(ctx, &p0, &grads)) return TEST_FAIL;
    const size_t n = p0.count;
    const OptimSegments segments = test_segments();
    OptimizerConfig config = optimizer_default_config(kind);
    config.weight_decay = kind == OPTIM_SGD ? 1e-3 : kind == OPTIM_ADAM ? 1e-2 : config.weight_decay;
    const bool adam = kind != OPTIM_SGD;
    float *p = copy_of((const float *)p0.data, n), *m = (float *)calloc(n, sizeof(float));
    float *v = (float *)calloc(n, sizeof(float));
    float *d_p = device_copy(p, n), *d_m = device_copy(m, n), *d_v = device_copy(v, n), *d_g = device_nan(n);
    float *d_lr = NULL;
    uint64_t *d_t = NULL;
    CUDA_CHECK(cudaMalloc(&d_lr, sizeof(float)));
    CUDA_CHECK(cudaMalloc(&d_t, sizeof(uint64_t)));

    cudaStream_t stream;
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CUDA_CHECK(cudaStreamCreate(&stream));
    CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
    optim_step_gpu(&config, &segments, d_p, d_g, d_m, adam ? d_v : NULL, n, d_lr, d_t, stream);
    CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
    CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));

#ifdef __CUSIM__
    const double ulps = 0.0; /* bit for bit */
#else
    const double ulps = 4.0; /* of each array's largest element, as against torch */
#endif
    double worst = 0.0;
    const float rates[] = {0.05f, 0.0123f, 0.031f, 0.0007f, 0.02f};
    bool ok = true;
    for (uint64_t t = 1; t <= COUNT_OF(rates); t++) {
        const float lr = (adam ? 0.1f : 1.0f) * rates[t - 1];
        const float *g = (const float *)grads.data + (t - 1) * n;
        CUDA_CHECK(cudaMemcpy(d_g, g, n * sizeof(float), cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(d_lr, &lr, sizeof lr, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(d_t, &t, sizeof t, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaGraphLaunch(exec, stream));
        CUDA_CHECK(cudaStreamSynchronize(stream));
        optim_step_cpu(&config, &segments, p, g, m, adam ? v : NULL, n, lr, t);
        float *got_p = host_copy(d_p, n), *got_m = host_copy(d_m, n), *got_v = host_copy(d_v, n);
        char name[128];
        snprintf(name, sizeof name, "%s: p after step %llu (lr %g)", optimizer_name(kind), (unsigned long long)t,
                 (double)lr);
        ok &= check_ulps(name, got_p, p, n, ulps, &worst);
        snprintf(name, sizeof name, "%s: m after step %llu", optimizer_name(kind), (unsigned long long)t);
        ok &= check_ulps(name, got_m, m, n, ulps, &worst);
        if (adam) {
            snprintf(name, sizeof name, "%s: v after step %llu", optimizer_name(kind), (unsigned long long)t);
            ok &= check_ulps(name, got_v, v, n, ulps, &worst);
        }
        free(got_p), free(got_m), free(got_v);
    }
    printf("%s: %zu steps, GPU at most %.2f ulp (of each array's largest element) from the CPU\n",
           optimizer_name(kind), COUNT_OF(rates), worst);
    CUDA_CHECK(cudaGraphExecDestroy(exec));
    CUDA_CHECK(cudaGraphDestroy(graph));
    CUDA_CHECK(cudaStreamDestroy(stream));
    free(p), free(m), free(v);
    npy_free(&p0), npy_free(&grads);
    cudaFree(d_p), cudaFree(d_m), cudaFree(d_v), cudaFree(d_g), cudaFree(d_lr), cudaFree(d_t);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* gpu_equals_cpu.sgd, .adam, .adamw: the optimiser the case name ends with. */
static int test_gpu_equals_cpu(const TestContext *ctx)
{
    return run_gpu_equals_cpu(ctx, (OptimizerKind)optimizer_parse(strchr(ctx->case_name, '.') + 1));
}

static const TestCase cases[] = {
    {"sgd.golden", test_golden},
    {"adam.golden", test_golden},
    {"adamw.golden", test_golden},
    {"segments", test_segments_case},
    {"schedule.golden", test_schedule_golden},
    {"gpu_equals_cpu.sgd", test_gpu_equals_cpu},
    {"gpu_equals_cpu.adam", test_gpu_equals_cpu},
    {"gpu_equals_cpu.adamw", test_gpu_equals_cpu},
};

int main(int argc, char **argv)
{
    char reason[256];
    if (argc > 1 && strncmp(argv[1], "gpu_equals_cpu.", 15) == 0 && !cuda_device_available(reason, sizeof reason)) {
        return test_skip("%s", reason);
    }
    return test_main(argc, argv, cases, COUNT_OF(cases));
}
