/* test_mlp.c — Chapter 02's tests: every layer forward and backward against PyTorch, gradient checks on every
 * layer and on the whole network, SGD against torch.optim.SGD, a parity run of the MLP against PyTorch, the
 * data loader, and the trainer kit (flags, loss guard, JSON summary).
 *
 *   build/bin/test_mlp --list
 *   build/bin/test_mlp linear.backward --golden reference/golden
 *
 * (ctest -L ch02 runs every case.) Goldens: reference/ch02_mlp.py. Layer goldens are exact float64 results
 * rounded to float32, so the tolerances below only have to absorb the C code's own float32 rounding.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "activations.h"
#include "check.h"
#include "course_error.h"
#include "file_util.h"
#include "gradcheck.h"
#include "layers.h"
#include "mlp.h"
#include "rng.h"
#include "testing.h"
#include "train_util.h"

#define MAX_GOLDEN 16

/* ---- Golden-file helpers ----------------------------------------------------------------------------- */

/* Load "ch02/<name>.npy" as float32, or fail the test. */
static bool load(const TestContext *ctx, const char *name, NpyArray *out)
{
    char path[512];
    snprintf(path, sizeof path, "ch02/%s.npy", name);
    return golden_load(ctx, path, out);
}

/* Load an int32 or uint8 golden (labels, pixels, batch sizes), which golden_load (float32 only) refuses. */
static bool load_typed(const TestContext *ctx, const char *name, NpyDtype dtype, NpyArray *out)
{
    char relative[512];
    snprintf(relative, sizeof relative, "ch02/%s.npy", name);
    return golden_load_typed(ctx->golden_dir, relative, dtype, out);
}

/* A set of goldens freed together. */
typedef struct Goldens {
    NpyArray arrays[MAX_GOLDEN];
    int count;
    bool ok;
} Goldens;

static float *golden(const TestContext *ctx, Goldens *g, const char *fmt, const char *prefix)
{
    char name[256];
    snprintf(name, sizeof name, fmt, prefix);
    if (!g->ok || g->count >= MAX_GOLDEN || !load(ctx, name, &g->arrays[g->count])) {
        g->ok = false;
        return NULL;
    }
    return g->arrays[g->count++].data;
}

static const NpyArray *last(const Goldens *g)
{
    return &g->arrays[g->count - 1];
}

static void goldens_free(Goldens *g)
{
    for (int i = 0; i < g->count; i++) {
        npy_free(&g->arrays[i]);
    }
    g->count = 0;
}

/* ---- Linear layer ------------------------------------------------------------------------------------ */

typedef struct LinearCase {
    size_t batch, in, out;
} LinearCase;

/* Batch 1, 7, 33; widths 5, 127, 129 and 3, 10, 17: no power of two, so a swapped index cannot pass. */
static const LinearCase LINEAR_CASES[] = {{1, 5, 3}, {7, 127, 10}, {33, 129, 17}};

/* float32 dot products of up to 129 terms of size ~1 against the exact value: rounding ~1e-6. */
#define LINEAR_ATOL 2e-5
#define LINEAR_RTOL 1e-5

static int test_linear(const TestContext *ctx, bool backward)
{
    bool ok = true;
    for (size_t k = 0; k < COUNT_OF(LINEAR_CASES); k++) {
        LinearCase c = LINEAR_CASES[k];
        char prefix[64];
        snprintf(prefix, sizeof prefix, "linear_%zux%zux%zu", c.batch, c.in, c.out);
        Goldens g = {.ok = true};
        const float *x = golden(ctx, &g, "%s_x", prefix); /* (batch, in) */
        const float *w = golden(ctx, &g, "%s_w", prefix); /* (out, in) */
        const float *b = golden(ctx, &g, "%s_b", prefix); /* (out) */
        const float *dy = golden(ctx, &g, "%s_dy", prefix); /* (batch, out) */
        const float *want_y = golden(ctx, &g, "%s_y", prefix);
        const float *want_dx = golden(ctx, &g, "%s_dx", prefix);
        const float *want_dw = golden(ctx, &g, "%s_dw", prefix);
        const float *want_db = golden(ctx, &g, "%s_db", prefix);
        if (!g.ok) {
            goldens_free(&g);
            return TEST_FAIL;
        }
        size_t shape_y[2] = {c.batch, c.out}, shape_x[2] = {c.batch, c.in}, shape_w[2] = {c.out, c.in};
        char label[128];
        if (!backward) {
            float *y = nan_filled(c.batch * c.out);
            linear_forward(x, w, b, y, c.batch, c.in, c.out);
            snprintf(label, sizeof label, "%s y = x W^T + b", prefix);
            ok &= check_close(label, y, want_y, c.batch * c.out, shape_y, 2, LINEAR_ATOL, LINEAR_RTOL);
            free(y);
        } else {
            float *dx = nan_filled(c.batch * c.in), *dw = nan_filled(c.out * c.in), *db = nan_filled(c.out);
            linear_backward(x, w, dy, dx, dw, db, c.batch, c.in, c.out);
            snprintf(label, sizeof label, "%s dx = dy W", prefix);
            ok &= check_close(label, dx, want_dx, c.batch * c.in, shape_x, 2, LINEAR_ATOL, LINEAR_RTOL);
            snprintf(label, sizeof label, "%s dW = dy^T x", prefix);
            ok &= check_close(label, dw, want_dw, c.out * c.in, shape_w, 2, LINEAR_ATOL, LINEAR_RTOL);
            snprintf(label, sizeof label, "%s db = sum_b dy", prefix);
            ok &= check_close(label, db, want_db, c.out, &c.out, 1, LINEAR_ATOL, LINEAR_RTOL);
            /* dx = NULL (the first layer) must still give the same parameter gradients. */
            float *dw2 = nan_filled(c.out * c.in), *db2 = nan_filled(c.out);
            linear_backward(x, w, dy, NULL, dw2, db2, c.batch, c.in, c.out);
            snprintf(label, sizeof label, "%s dW with dx = NULL", prefix);
            ok &= check_close(label, dw2, want_dw, c.out * c.in, shape_w, 2, LINEAR_ATOL, LINEAR_RTOL);
            snprintf(label, sizeof label, "%s db with dx = NULL", prefix);
            ok &= check_close(label, db2, want_db, c.out, &c.out, 1, LINEAR_ATOL, LINEAR_RTOL);
            /* Overwrite, not accumulate: a second call on the same buffers gives the same answer. */
            linear_backward(x, w, dy, dx, dw, db, c.batch, c.in, c.out);
            snprintf(label, sizeof label, "%s dW after a second call (must overwrite)", prefix);
            ok &= check_close(label, dw, want_dw, c.out * c.in, shape_w, 2, LINEAR_ATOL, LINEAR_RTOL);
            free(dx);
            free(dw);
            free(db);
            free(dw2);
            free(db2);
        }
        goldens_free(&g);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_linear_forward(const TestContext *ctx)
{
    return test_linear(ctx, false);
}

static int test_linear_backward(const TestContext *ctx)
{
    return test_linear(ctx, true);
}

/* ---- ReLU layer (chapter 01's functions, used as a batched layer) ------------------------------------- */

static int test_relu_layer(const TestContext *ctx)
{
    Goldens g = {.ok = true};
    const float *x = golden(ctx, &g, "%s_x", "relu"); /* (7, 129) */
    const float *dy = golden(ctx, &g, "%s_dy", "relu");
    const float *want_y = golden(ctx, &g, "%s_y", "relu");
    const float *want_dx = golden(ctx, &g, "%s_dx", "relu");
    if (!g.ok) {
        goldens_free(&g);
        return TEST_FAIL;
    }
    size_t n = g.arrays[0].count;
    float *y = nan_filled(n), *dx = nan_filled(n);
    relu_forward(x, y, n);
    relu_backward(x, dy, dx, n);
    /* exact: max(0, x) and dy * {0, 1} involve no rounding */
    bool ok = check_close("relu_forward (7, 129)", y, want_y, n, g.arrays[0].shape, 2, 0.0, 0.0);
    ok &= check_close("relu_backward (7, 129)", dx, want_dx, n, g.arrays[0].shape, 2, 0.0, 0.0);
    free(y);
    free(dx);
    goldens_free(&g);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- Softmax + cross-entropy ------------------------------------------------------------------------- */

/* exp/log in float32 against the exact answer: a few ulp. */
#define LOSS_ATOL 1e-6
#define LOSS_RTOL 1e-5

static int run_loss_case(const TestContext *ctx, const char *prefix, bool backward)
{
    Goldens g = {.ok = true};
    const float *logits = golden(ctx, &g, "%s_logits", prefix); /* (batch, classes) */
    if (!g.ok) {
        return TEST_FAIL;
    }
    size_t batch = last(&g)->shape[0], classes = last(&g)->shape[1];
    const float *want_loss = golden(ctx, &g, "%s_loss", prefix); /* (1) */
    const float *want_probs = golden(ctx, &g, "%s_probs", prefix); /* (batch, classes) */
    const float *want_dlogits = golden(ctx, &g, "%s_dlogits", prefix); /* (batch, classes) */
    NpyArray labels_array;
    char name[128];
    snprintf(name, sizeof name, "%s_labels", prefix);
    if (!g.ok || !load_typed(ctx, name, NPY_INT32, &labels_array)) {
        goldens_free(&g);
        return TEST_FAIL;
    }
    const int32_t *labels = labels_array.data; /* (batch) */
    size_t shape[2] = {batch, classes};
    float *probs = nan_filled(batch * classes);
    double loss = softmax_cross_entropy_forward(logits, labels, probs, batch, classes);
    float loss_f = (float)loss;
    char label[128];
    bool ok = true;
    if (!backward) {
        snprintf(label, sizeof label, "%s mean cross-entropy", prefix);
        ok &= check_close(label, &loss_f, want_loss, 1, NULL, 1, LOSS_ATOL, LOSS_RTOL);
        snprintf(label, sizeof label, "%s softmax probabilities", prefix);
        ok &= check_close(label, probs, want_probs, batch * classes, shape, 2, LOSS_ATOL, LOSS_RTOL);
    } else {
        float *dlogits = nan_filled(batch * classes);
        softmax_cross_entropy_backward(want_probs, labels, dlogits, batch, classes);
        snprintf(label, sizeof label, "%s dlogits = (softmax - onehot) / N", prefix);
        ok &= check_close(label, dlogits, want_dlogits, batch * classes, shape, 2, LOSS_ATOL, LOSS_RTOL);
        free(dlogits);
    }
    free(probs);
    npy_free(&labels_array);
    goldens_free(&g);
    return ok ? TEST_PASS : TEST_FAIL;
}

static const char *const LOSS_CASES[] = {"loss_1x10", "loss_33x10", "loss_7x129"};

static int test_loss(const TestContext *ctx, bool backward)
{
    int status = TEST_PASS;
    for (size_t k = 0; k < COUNT_OF(LOSS_CASES); k++) {
        if (run_loss_case(ctx, LOSS_CASES[k], backward) != TEST_PASS) {
            status = TEST_FAIL;
        }
    }
    return status;
}

static int test_loss_forward(const TestContext *ctx)
{
    return test_loss(ctx, false);
}

static int test_loss_backward(const TestContext *ctx)
{
    return test_loss(ctx, true);
}

static int test_loss_extremes(const TestContext *ctx)
{
    int forward = run_loss_case(ctx, "loss_extreme", false);
    int backward = run_loss_case(ctx, "loss_extreme", true);
    return forward == TEST_PASS && backward == TEST_PASS ? TEST_PASS : TEST_FAIL;
}

/* ---- L2 penalty and weight decay --------------------------------------------------------------------- */

#define L2_LAMBDA 0.01f /* as in reference/ch02_mlp.py */

static int test_l2_penalty(const TestContext *ctx)
{
    Goldens g = {.ok = true};
    const float *w = golden(ctx, &g, "%s_w", "l2"); /* (129, 7) */
    const float *want_loss = golden(ctx, &g, "%s_loss", "l2");
    const float *want_grad = golden(ctx, &g, "%s_grad", "l2");
    if (!g.ok) {
        goldens_free(&g);
        return TEST_FAIL;
    }
    size_t n = g.arrays[0].count;
    float loss = (float)l2_penalty(w, n, L2_LAMBDA);
    /* a double sum rounded once: float32 ulp */
    bool ok = check_close("l2_penalty (lambda/2)||w||^2", &loss, want_loss, 1, NULL, 1, 0.0, 1e-6);
    /* The backward ADDS lambda * w: start from a known gradient of 1 and expect 1 + lambda w. */
    float *grad = xmalloc(n * sizeof *grad), *want = xmalloc(n * sizeof *want);
    for (size_t i = 0; i < n; i++) {
        grad[i] = 1.0f;
        want[i] = 1.0f + want_grad[i];
    }
    l2_penalty_backward(w, grad, n, L2_LAMBDA);
    ok &= check_close("l2_penalty_backward 1 + lambda w", grad, want, n, g.arrays[0].shape, 2, 1e-7, 1e-6);
    free(grad);
    free(want);
    goldens_free(&g);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* The lesson's claim: SGD on loss + (lambda/2)||w||^2 is SGD with weight decay lambda. Two parameter copies,
 * one updated with l2_penalty_backward and no decay, the other with weight_decay = lambda, must agree. */
static int test_l2_weight_decay(const TestContext *ctx)
{
    (void)ctx;
    enum { N = 131, STEPS = 4 };
    Rng rng;
    rng_seed(&rng, 7, 0);
    float p1[N], p2[N], v1[N] = {0}, v2[N] = {0}, g[N], g1[N];
    for (size_t i = 0; i < N; i++) {
        p1[i] = p2[i] = (float)rng_normal(&rng);
    }
    for (int step = 0; step < STEPS; step++) {
        for (size_t i = 0; i < N; i++) {
            g[i] = (float)rng_normal(&rng);
            g1[i] = g[i];
        }
        l2_penalty_backward(p1, g1, N, 0.05f);
        sgd_momentum_step(p1, g1, v1, N, 0.1f, 0.9f, 0.0f);
        sgd_momentum_step(p2, g, v2, N, 0.1f, 0.9f, 0.05f);
    }
    size_t n = N;
    /* same float operations in the same order: identical up to one rounding of g + lambda p */
    return check_close("L2 penalty gradient == weight decay", p1, p2, N, &n, 1, 1e-6, 1e-6) ? TEST_PASS
                                                                                              : TEST_FAIL;
}

/* ---- SGD with momentum ------------------------------------------------------------------------------- */

static int test_sgd_momentum(const TestContext *ctx)
{
    Goldens g = {.ok = true};
    const float *param0 = golden(ctx, &g, "%s_param0", "sgd"); /* (129) */
    const float *grads = golden(ctx, &g, "%s_grads", "sgd"); /* (3, 129) */
    const float *want = golden(ctx, &g, "%s_params", "sgd"); /* (3, 129) after each step */
    if (!g.ok) {
        goldens_free(&g);
        return TEST_FAIL;
    }
    size_t n = g.arrays[0].count;
    float *param = xmalloc(n * sizeof *param), *velocity = xcalloc(n, sizeof *velocity);
    memcpy(param, param0, n * sizeof *param);
    bool ok = true;
    for (int step = 0; step < 3; step++) {
        sgd_momentum_step(param, grads + (size_t)step * n, velocity, n, 0.1f, 0.9f, 0.01f);
        char label[96];
        snprintf(label, sizeof label, "SGD(lr 0.1, momentum 0.9, wd 0.01) step %d", step + 1);
        /* the same float32 operations as torch.optim.SGD; 1e-6 covers a fused multiply-add here or there */
        ok &= check_close(label, param, want + (size_t)step * n, n, &n, 1, 1e-6, 1e-6);
    }
    free(param);
    free(velocity);
    goldens_free(&g);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- Initialisation ---------------------------------------------------------------------------------- */

static int test_init_uniform(const TestContext *ctx)
{
    (void)ctx;
    enum { IN = 129, OUT = 257 };
    float *w = nan_filled(IN * OUT), *b = nan_filled(OUT);
    Rng rng;
    rng_seed(&rng, 3, MLP_INIT_STREAM);
    linear_init(w, b, IN, OUT, &rng);
    double bound = 1.0 / sqrt((double)IN), sum = 0.0, sum_sq = 0.0;
    bool in_range = true;
    for (size_t i = 0; i < IN * OUT; i++) {
        in_range &= fabs(w[i]) <= bound; /* false for NaN too */
        sum += w[i];
        sum_sq += (double)w[i] * w[i];
    }
    for (size_t i = 0; i < OUT; i++) {
        in_range &= fabs(b[i]) <= bound;
    }
    double n = IN * OUT, mean = sum / n, variance = sum_sq / n - mean * mean;
    double want_variance = bound * bound / 3.0; /* variance of uniform(-a, a) is a^2 / 3 */
    bool ok = check_true(in_range, "every weight and bias within +-1/sqrt(%d) = %.5f", IN, bound);
    /* 33153 samples: the mean's standard error is bound/sqrt(3n) ~ 2.8e-4; 5 of those is 1.4e-3 */
    ok &= check_true(fabs(mean) < 5.0 * bound / sqrt(3.0 * n), "weight mean %.3g is near 0", mean);
    ok &= check_true(fabs(variance / want_variance - 1.0) < 0.03, "weight variance %.5g is near bound^2/3 = %.5g",
                     variance, want_variance);
    /* Different rows must differ (a forgotten rng call would repeat one value). */
    ok &= check_true(w[0] != w[IN] && b[0] != b[1], "weights are not repeated");
    free(w);
    free(b);
    if (ok) {
        printf("ok   init: %d x %d weights in +-%.5f, mean %.2g, variance %.5g (expected %.5g)\n", OUT, IN, bound,
               mean, variance, want_variance);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- Gradient checks --------------------------------------------------------------------------------- */

/* A layer's "loss" for the check: L = sum over outputs of y * r in double, with r a fixed random tensor, so
 * dL/dy = r is the upstream gradient handed to the backward pass. */
typedef struct LinearCheck {
    float *x, *w, *b; /* (B, in), (out, in), (out) */
    const float *r; /* (B, out) */
    float *y; /* (B, out) */
    size_t batch, in, out;
} LinearCheck;

static double linear_check_loss(void *context)
{
    LinearCheck *c = context;
    linear_forward(c->x, c->w, c->b, c->y, c->batch, c->in, c->out);
    double loss = 0.0;
    for (size_t i = 0; i < c->batch * c->out; i++) {
        loss += (double)c->y[i] * c->r[i];
    }
    return loss;
}

static float *copy_floats(const float *src, size_t n)
{
    float *dst = xmalloc(n * sizeof *dst);
    memcpy(dst, src, n * sizeof *dst);
    return dst;
}

static int test_gradcheck_linear(const TestContext *ctx)
{
    Goldens g = {.ok = true};
    const char *prefix = "linear_7x127x10";
    const float *x = golden(ctx, &g, "%s_x", prefix);
    const float *w = golden(ctx, &g, "%s_w", prefix);
    const float *b = golden(ctx, &g, "%s_b", prefix);
    const float *r = golden(ctx, &g, "%s_dy", prefix);
    if (!g.ok) {
        goldens_free(&g);
        return TEST_FAIL;
    }
    LinearCheck c = {copy_floats(x, 7 * 127), copy_floats(w, 10 * 127), copy_floats(b, 10), r, nan_filled(7 * 10),
                     7, 127, 10};
    float *dx = nan_filled(7 * 127), *dw = nan_filled(10 * 127), *db = nan_filled(10);
    linear_backward(c.x, c.w, r, dx, dw, db, 7, 127, 10);
    GradcheckTensor tensors[] = {{"linear x", c.x, dx, 7 * 127}, {"linear W", c.w, dw, 10 * 127},
                                 {"linear b", c.b, db, 10}};
    GradcheckOptions options = gradcheck_default_options();
    /* L is linear in every one of x, W, b: the central difference has no truncation error, so a large step
     * only shrinks the float32 rounding error of the forward pass (which is divided by 2h). */
    options.step = 0.1;
    bool ok = gradcheck_run(linear_check_loss, &c, tensors, COUNT_OF(tensors), &options, NULL);
    free(c.x);
    free(c.w);
    free(c.b);
    free(c.y);
    free(dx);
    free(dw);
    free(db);
    goldens_free(&g);
    return ok ? TEST_PASS : TEST_FAIL;
}

typedef struct ReluCheck {
    float *x, *y; /* (n) */
    const float *r; /* (n) */
    size_t n;
} ReluCheck;

static double relu_check_loss(void *context)
{
    ReluCheck *c = context;
    relu_forward(c->x, c->y, c->n);
    double loss = 0.0;
    for (size_t i = 0; i < c->n; i++) {
        loss += (double)c->y[i] * c->r[i];
    }
    return loss;
}

static int test_gradcheck_relu(const TestContext *ctx)
{
    Goldens g = {.ok = true};
    const float *x0 = golden(ctx, &g, "%s_x", "relu");
    const float *r = golden(ctx, &g, "%s_dy", "relu");
    if (!g.ok) {
        goldens_free(&g);
        return TEST_FAIL;
    }
    size_t n = g.arrays[0].count;
    ReluCheck c = {copy_floats(x0, n), nan_filled(n), r, n};
    /* ReLU has a kink at 0 where no derivative exists: move inputs closer to it than the probe step away. */
    for (size_t i = 0; i < n; i++) {
        if (fabsf(c.x[i]) < 0.2f) {
            c.x[i] = c.x[i] < 0 ? -0.2f : 0.2f;
        }
    }
    float *dx = nan_filled(n);
    relu_backward(c.x, r, dx, n);
    GradcheckTensor tensors[] = {{"relu x", c.x, dx, n}};
    GradcheckOptions options = gradcheck_default_options();
    options.step = 0.1; /* piecewise linear and no input within 0.2 of the kink: a large step is exact */
    options.samples = n; /* all of them: it is cheap */
    bool ok = gradcheck_run(relu_check_loss, &c, tensors, COUNT_OF(tensors), &options, NULL);
    free(c.x);
    free(c.y);
    free(dx);
    goldens_free(&g);
    return ok ? TEST_PASS : TEST_FAIL;
}

typedef struct LossCheck {
    float *logits, *probs; /* (B, C) */
    const int32_t *labels; /* (B) */
    size_t batch, classes;
} LossCheck;

static double loss_check_loss(void *context)
{
    LossCheck *c = context;
    return softmax_cross_entropy_forward(c->logits, c->labels, c->probs, c->batch, c->classes);
}

static int test_gradcheck_loss(const TestContext *ctx)
{
    bool ok = true;
    for (size_t k = 0; k < COUNT_OF(LOSS_CASES); k++) {
        NpyArray logits, labels;
        char name[128];
        snprintf(name, sizeof name, "%s_logits", LOSS_CASES[k]);
        if (!load(ctx, name, &logits)) {
            return TEST_FAIL;
        }
        snprintf(name, sizeof name, "%s_labels", LOSS_CASES[k]);
        if (!load_typed(ctx, name, NPY_INT32, &labels)) {
            npy_free(&logits);
            return TEST_FAIL;
        }
        size_t batch = logits.shape[0], classes = logits.shape[1], n = batch * classes;
        LossCheck c = {logits.data, nan_filled(n), labels.data, batch, classes};
        float *dlogits = nan_filled(n);
        softmax_cross_entropy_forward(c.logits, c.labels, c.probs, batch, classes);
        softmax_cross_entropy_backward(c.probs, c.labels, dlogits, batch, classes);
        char tensor_name[128];
        snprintf(tensor_name, sizeof tensor_name, "%s logits", LOSS_CASES[k]);
        GradcheckTensor tensors[] = {{tensor_name, c.logits, dlogits, n}};
        GradcheckOptions options = gradcheck_default_options();
        /* smooth: the default step (truncation ~h^2, rounding ~eps/h balanced) */
        options.samples = 128;
        ok &= gradcheck_run(loss_check_loss, &c, tensors, 1, &options, NULL);
        free(c.probs);
        free(dlogits);
        npy_free(&logits);
        npy_free(&labels);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

typedef struct L2Check {
    float *w;
    size_t n;
} L2Check;

static double l2_check_loss(void *context)
{
    L2Check *c = context;
    return l2_penalty(c->w, c->n, L2_LAMBDA);
}

static int test_gradcheck_l2(const TestContext *ctx)
{
    NpyArray w;
    if (!load(ctx, "l2_w", &w)) {
        return TEST_FAIL;
    }
    L2Check c = {w.data, w.count};
    float *grad = xcalloc(w.count, sizeof *grad); /* zero, then the backward adds lambda w */
    l2_penalty_backward(c.w, grad, c.n, L2_LAMBDA);
    GradcheckTensor tensors[] = {{"l2 w", c.w, grad, c.n}};
    GradcheckOptions options = gradcheck_default_options();
    /* quadratic: the central difference is exact up to rounding, for any step */
    options.step = 0.1;
    bool ok = gradcheck_run(l2_check_loss, &c, tensors, 1, &options, NULL);
    free(grad);
    npy_free(&w);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* The whole network: L = cross-entropy + (lambda/2)(||W1||^2 + ||W2||^2), every parameter tensor. */
typedef struct MlpCheck {
    Mlp *net;
    const float *x; /* (B, in) */
    const int32_t *labels; /* (B) */
    size_t batch;
    float lambda;
} MlpCheck;

static double mlp_check_loss(void *context)
{
    MlpCheck *c = context;
    Mlp *net = c->net;
    double loss = mlp_forward_loss(net, c->x, c->labels, c->batch);
    loss += l2_penalty(net->w1, net->hidden * net->inputs, c->lambda);
    loss += l2_penalty(net->w2, net->classes * net->hidden, c->lambda);
    return loss;
}

/* True when every hidden pre-activation of the batch is farther than `margin` from ReLU's kink. */
static bool clear_of_kinks(Mlp *net, const float *x, size_t batch, float margin)
{
    mlp_forward(net, x, batch);
    for (size_t i = 0; i < batch * net->hidden; i++) {
        if (!(fabsf(net->h[i]) > margin)) {
            return false;
        }
    }
    return true;
}

static int test_gradcheck_mlp(const TestContext *ctx)
{
    (void)ctx;
    enum { IN = 129, HIDDEN = 33, CLASSES = 10, BATCH = 7, POOL = 20000 };
    Mlp net;
    mlp_create(&net, IN, HIDDEN, CLASSES, BATCH);
    mlp_init(&net, 5);
    Rng rng;
    rng_seed(&rng, 11, 0);
    /* Random inputs, keeping only samples whose hidden units all sit farther than 0.05 from ReLU's kink: a
     * probe (step 1e-2 below) moves a pre-activation by at most step * max(1, |w|) * |x| ~ 1e-2 * 4, so no
     * probe crosses the kink. */
    float *x = nan_filled(BATCH * IN); /* (BATCH, IN) */
    float candidate[IN];
    size_t kept = 0;
    for (int tries = 0; tries < POOL && kept < BATCH; tries++) {
        for (size_t i = 0; i < IN; i++) {
            candidate[i] = (float)rng_normal(&rng);
        }
        if (clear_of_kinks(&net, candidate, 1, 0.05f)) {
            memcpy(x + kept * IN, candidate, sizeof candidate);
            kept++;
        }
    }
    if (!check_true(kept == BATCH, "found %d samples clear of ReLU kinks (got %zu)", BATCH, kept)) {
        free(x);
        mlp_destroy(&net);
        return TEST_FAIL;
    }
    int32_t labels[BATCH];
    for (size_t b = 0; b < BATCH; b++) {
        labels[b] = (int32_t)rng_below(&rng, CLASSES);
    }
    MlpCheck c = {&net, x, labels, BATCH, 0.01f};
    mlp_check_loss(&c);
    mlp_backward(&net, labels, BATCH);
    l2_penalty_backward(net.w1, net.dw1, HIDDEN * IN, c.lambda);
    l2_penalty_backward(net.w2, net.dw2, CLASSES * HIDDEN, c.lambda);
    /* mlp_backward's gradients live in the net and are not touched by later forward passes. */
    GradcheckTensor tensors[] = {{"mlp W1", net.w1, net.dw1, HIDDEN * IN},
                                 {"mlp b1", net.b1, net.db1, HIDDEN},
                                 {"mlp W2", net.w2, net.dw2, CLASSES * HIDDEN},
                                 {"mlp b2", net.b2, net.db2, CLASSES}};
    GradcheckOptions options = gradcheck_default_options();
    /* The network is piecewise linear up to the softmax, which is smooth on the scale of 1e-2: a step of
     * 1e-2 keeps the truncation error ~h^2 small while dividing the float rounding of the forward pass by
     * ten times more than the default step would. */
    options.step = 1e-2;
    bool ok = gradcheck_run(mlp_check_loss, &c, tensors, COUNT_OF(tensors), &options, NULL);
    free(x);
    mlp_destroy(&net);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* The checker itself must notice wrong gradients: the linear layer with a 10% error, a wrong sign, or
 * gradients of the transposed shape, must each fail. */
static int test_gradcheck_catches_bugs(const TestContext *ctx)
{
    Goldens g = {.ok = true};
    const char *prefix = "linear_7x127x10";
    const float *x = golden(ctx, &g, "%s_x", prefix);
    const float *w = golden(ctx, &g, "%s_w", prefix);
    const float *b = golden(ctx, &g, "%s_b", prefix);
    const float *r = golden(ctx, &g, "%s_dy", prefix);
    const float *dw_true = golden(ctx, &g, "%s_dw", prefix); /* (10, 127) */
    if (!g.ok) {
        goldens_free(&g);
        return TEST_FAIL;
    }
    LinearCheck c = {copy_floats(x, 7 * 127), copy_floats(w, 10 * 127), copy_floats(b, 10), r, nan_filled(7 * 10),
                     7, 127, 10};
    float *bad = xmalloc(10 * 127 * sizeof *bad);
    GradcheckOptions options = gradcheck_default_options();
    options.step = 0.1;
    bool ok = true;
    const char *bugs[] = {"10% too large", "wrong sign", "transposed layout"};
    for (int bug = 0; bug < 3; bug++) {
        for (size_t o = 0; o < 10; o++) {
            for (size_t i = 0; i < 127; i++) {
                float v = dw_true[o * 127 + i];
                if (bug == 0) {
                    bad[o * 127 + i] = 1.1f * v;
                } else if (bug == 1) {
                    bad[o * 127 + i] = -v;
                } else {
                    bad[i * 10 + o] = v; /* (127, 10) written where (10, 127) is expected */
                }
            }
        }
        GradcheckTensor tensors[] = {{bugs[bug], c.w, bad, 10 * 127}};
        GradcheckResult result;
        printf("(expected to fail:) ");
        bool passed = gradcheck_run(linear_check_loss, &c, tensors, 1, &options, &result);
        ok &= check_true(!passed && result.max_relative_error > 10 * options.tolerance,
                         "gradcheck must reject a gradient that is %s (max rel error %.3g)", bugs[bug],
                         result.max_relative_error);
    }
    /* and a NaN gradient fails too */
    bad[0] = NAN;
    for (size_t i = 1; i < 10 * 127; i++) {
        bad[i] = dw_true[i];
    }
    GradcheckTensor nan_tensor[] = {{"NaN at [0]", c.w, bad, 10 * 127}};
    options.samples = 10 * 127;
    printf("(expected to fail:) ");
    ok &= check_true(!gradcheck_run(linear_check_loss, &c, nan_tensor, 1, &options, NULL),
                     "gradcheck must reject a NaN gradient");
    free(bad);
    free(c.x);
    free(c.w);
    free(c.b);
    free(c.y);
    goldens_free(&g);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- The whole network against PyTorch --------------------------------------------------------------- */

typedef struct Parity {
    Goldens g;
    NpyArray labels, batches, pixels;
    float *x; /* (total, inputs) */
    size_t total, inputs, hidden;
    float lr, momentum, weight_decay;
} Parity;

static bool parity_load(const TestContext *ctx, const char *name, Parity *p)
{
    memset(p, 0, sizeof *p);
    p->g.ok = true;
    char file[128];
    snprintf(file, sizeof file, "parity_%s_labels", name);
    if (!load_typed(ctx, file, NPY_INT32, &p->labels)) {
        return false;
    }
    snprintf(file, sizeof file, "parity_%s_batches", name);
    if (!load_typed(ctx, file, NPY_INT32, &p->batches)) {
        return false;
    }
    p->total = p->labels.count;
    snprintf(file, sizeof file, "parity_%s_pixels", name);
    char path[4096];
    snprintf(path, sizeof path, "%s/ch02/%s.npy", ctx->golden_dir, file);
    FILE *probe = fopen(path, "rb");
    if (probe != NULL) {
        /* MNIST pixels: normalise them here exactly as the data loader does. */
        fclose(probe);
        if (!load_typed(ctx, file, NPY_UINT8, &p->pixels)) {
            return false;
        }
        p->inputs = p->pixels.shape[1];
        p->x = xmalloc(p->total * p->inputs * sizeof *p->x);
        normalize_pixels(p->pixels.data, p->x, p->total * p->inputs);
    } else {
        const float *x = golden(ctx, &p->g, "parity_%s_x", name);
        if (x == NULL) {
            return false;
        }
        p->inputs = last(&p->g)->shape[1];
        p->x = copy_floats(x, p->total * p->inputs);
    }
    const float *hyper = golden(ctx, &p->g, "parity_%s_hyper", name);
    if (hyper == NULL) {
        return false;
    }
    p->lr = hyper[0];
    p->momentum = hyper[1];
    p->weight_decay = hyper[2];
    return true;
}

static void parity_free(Parity *p)
{
    goldens_free(&p->g);
    npy_free(&p->labels);
    npy_free(&p->batches);
    npy_free(&p->pixels);
    free(p->x);
}

/* Create the net with PyTorch's initial weights. */
static bool parity_net(const TestContext *ctx, const char *name, Parity *p, Mlp *net)
{
    const float *w1 = golden(ctx, &p->g, "parity_%s_w1_init", name); /* (H, in) */
    if (w1 == NULL) {
        return false;
    }
    p->hidden = last(&p->g)->shape[0];
    const float *b1 = golden(ctx, &p->g, "parity_%s_b1_init", name);
    const float *w2 = golden(ctx, &p->g, "parity_%s_w2_init", name);
    const float *b2 = golden(ctx, &p->g, "parity_%s_b2_init", name);
    if (!p->g.ok) {
        return false;
    }
    size_t max_batch = 1;
    const int32_t *sizes = p->batches.data;
    for (size_t s = 0; s < p->batches.count; s++) {
        max_batch = (size_t)sizes[s] > max_batch ? (size_t)sizes[s] : max_batch;
    }
    mlp_create(net, p->inputs, p->hidden, 10, max_batch);
    memcpy(net->w1, w1, p->hidden * p->inputs * sizeof(float));
    memcpy(net->b1, b1, p->hidden * sizeof(float));
    memcpy(net->w2, w2, 10 * p->hidden * sizeof(float));
    memcpy(net->b2, b2, 10 * sizeof(float));
    return true;
}

/* Compare the four parameter tensors (or their gradients) with goldens named parity_<name>_<p><suffix>. */
static bool parity_compare(const TestContext *ctx, const char *name, Mlp *net, const char *prefix,
                           const char *suffix, bool gradients, double atol, double rtol)
{
    MlpTensor tensors[MLP_TENSORS];
    mlp_tensors(net, tensors);
    bool ok = true;
    for (int t = 0; t < MLP_TENSORS; t++) {
        char file[128], fmt[128];
        snprintf(fmt, sizeof fmt, "parity_%%s_%s%s%s", prefix, tensors[t].name, suffix);
        snprintf(file, sizeof file, fmt, name);
        NpyArray want;
        if (!load(ctx, file, &want)) {
            return false;
        }
        if (!check_true(want.count == tensors[t].count, "%s has %zu elements, the net's %s %zu", file, want.count,
                        tensors[t].name, tensors[t].count)) {
            npy_free(&want);
            return false;
        }
        char label[160];
        snprintf(label, sizeof label, "%s: %s%s", name, gradients ? "d" : "", tensors[t].name);
        ok &= check_close(label, gradients ? tensors[t].grad : tensors[t].value, want.data, want.count, want.shape,
                          want.ndim, atol, rtol);
        npy_free(&want);
    }
    return ok;
}

/* One forward + backward from PyTorch's initial weights on its first batch: every gradient of the network. */
static int test_mlp_backward(const TestContext *ctx)
{
    Parity p;
    Mlp net;
    if (!parity_load(ctx, "mnist", &p) || !parity_net(ctx, "mnist", &p, &net)) {
        parity_free(&p);
        return TEST_FAIL;
    }
    size_t batch = (size_t)((const int32_t *)p.batches.data)[0];
    mlp_forward_loss(&net, p.x, p.labels.data, batch);
    mlp_backward(&net, p.labels.data, batch);
    /* sums of 64 float32 products, against PyTorch's float32 (another summation order): ~1e-7 of the largest
     * gradient, which is ~0.1 */
    bool ok = parity_compare(ctx, "mnist", &net, "d", "_step0", true, 2e-7, 1e-4);
    mlp_destroy(&net);
    parity_free(&p);
    return ok ? TEST_PASS : TEST_FAIL;
}

static int run_parity(const TestContext *ctx, const char *name)
{
    Parity p;
    Mlp net;
    if (!parity_load(ctx, name, &p) || !parity_net(ctx, name, &p, &net)) {
        parity_free(&p);
        return TEST_FAIL;
    }
    const float *want_losses = golden(ctx, &p.g, "parity_%s_losses", name);
    if (want_losses == NULL) {
        mlp_destroy(&net);
        parity_free(&p);
        return TEST_FAIL;
    }
    size_t steps = p.batches.count;
    const int32_t *sizes = p.batches.data, *labels = p.labels.data;
    float *losses = nan_filled(steps);
    size_t start = 0;
    for (size_t s = 0; s < steps && start + (size_t)sizes[s] <= p.total; s++) {
        size_t n = (size_t)sizes[s];
        losses[s] = mlp_train_step(&net, p.x + start * p.inputs, labels + start, n, p.lr, p.momentum,
                                   p.weight_decay);
        start += n;
    }
    printf("%s: %zu SGD steps, batch sizes", name, steps);
    for (size_t s = 0; s < steps; s++) {
        printf(" %d", sizes[s]);
    }
    printf(", lr %g, momentum %g, weight decay %g\n", p.lr, p.momentum, p.weight_decay);
    char label[96];
    snprintf(label, sizeof label, "%s: loss before each step", name);
    /* float32 forward passes in another summation order than PyTorch's, drifting apart over the steps */
    bool ok = check_close(label, losses, want_losses, steps, &steps, 1, 1e-6, 2e-5);
    /* weights ~0.1 after a few updates of lr * v ~1e-3: the gradients' ~1e-4 relative rounding differences
     * move them by ~1e-7 */
    ok &= parity_compare(ctx, name, &net, "", "_final", false, 1e-6, 1e-5);
    free(losses);
    mlp_destroy(&net);
    parity_free(&p);
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_parity_mnist(const TestContext *ctx)
{
    return run_parity(ctx, "mnist");
}

static int test_parity_odd(const TestContext *ctx)
{
    return run_parity(ctx, "odd");
}

/* ---- Data loader ------------------------------------------------------------------------------------- */

/* A small fake data set: 131 images of 3x5 whose first pixel is the sample's index, so a batch says which
 * samples it holds. */
typedef struct FakeData {
    MnistSplit split;
} FakeData;

static void fake_data(FakeData *d, size_t count)
{
    d->split.count = count;
    d->split.rows = 3;
    d->split.cols = 5;
    d->split.images = xcalloc(count * 15, 1);
    d->split.labels = xcalloc(count, 1);
    for (size_t i = 0; i < count; i++) {
        d->split.images[i * 15] = (uint8_t)i;
        d->split.images[i * 15 + 14] = 255;
        d->split.labels[i] = (uint8_t)(i % 10);
    }
}

/* Run one epoch; order[k] receives the sample index of the k-th sample handed out. Returns the number of
 * samples seen, or (size_t)-1 when a batch was inconsistent. */
static size_t run_epoch(DataLoader *loader, size_t *order, size_t *batches, size_t *last_batch)
{
    float x[16 * 15];
    int32_t y[16];
    size_t seen = 0, n;
    *batches = 0;
    *last_batch = 0;
    data_loader_start_epoch(loader);
    while ((n = data_loader_next(loader, x, y)) > 0 && *batches < 1000) {
        for (size_t b = 0; b < n; b++) {
            /* undo the normalisation of the first pixel to read the index back */
            float pixel = (x[b * 15] * MNIST_STD + MNIST_MEAN) * 255.0f;
            size_t index = (size_t)lrintf(pixel);
            if (index >= 131 || y[b] != (int32_t)(index % 10) || seen >= 131) {
                return (size_t)-1;
            }
            order[seen++] = index;
        }
        (*batches)++;
        *last_batch = n;
    }
    return seen;
}

static int test_loader_epoch(const TestContext *ctx)
{
    (void)ctx;
    FakeData d;
    fake_data(&d, 131);
    DataLoader loader, again, plain;
    data_loader_init(&loader, &d.split, 16, true, 42);
    data_loader_init(&again, &d.split, 16, true, 42);
    data_loader_init(&plain, &d.split, 16, false, 42);
    size_t epoch1[131], epoch2[131], replay[131], unshuffled[131], batches, last_batch;
    bool ok = true;
    size_t seen = run_epoch(&loader, epoch1, &batches, &last_batch);
    ok &= check_true(seen == 131, "an epoch hands out all 131 samples (got %zu)", seen);
    ok &= check_true(batches == 9 && last_batch == 3 && data_loader_batches(&loader) == 9,
                     "131 samples in batches of 16: 8 full batches and a last partial batch of 3 (got %zu batches, "
                     "last %zu)", batches, last_batch);
    bool present[131] = {false};
    for (size_t i = 0; i < 131 && seen == 131; i++) {
        present[epoch1[i]] = true;
    }
    bool permutation = seen == 131;
    for (size_t i = 0; i < 131; i++) {
        permutation &= present[i];
    }
    ok &= check_true(permutation, "every sample appears exactly once per epoch");
    size_t moved = 0;
    for (size_t i = 0; i < 131 && seen == 131; i++) {
        moved += epoch1[i] != i;
    }
    ok &= check_true(moved > 100, "the epoch is shuffled (%zu of 131 samples out of file order)", moved);
    seen = run_epoch(&loader, epoch2, &batches, &last_batch);
    size_t moved2 = 0, same = 0;
    for (size_t i = 0; i < 131 && seen == 131; i++) {
        moved2 += epoch2[i] != i;
        same += epoch2[i] == epoch1[i];
    }
    ok &= check_true(seen == 131 && moved2 > 100 && same < 30,
                     "the second epoch is reshuffled: %zu of 131 out of file order, %zu in the first epoch's place",
                     moved2, same);
    seen = run_epoch(&again, replay, &batches, &last_batch);
    ok &= check_true(seen == 131 && memcmp(epoch1, replay, sizeof epoch1) == 0,
                     "the same seed gives the same first epoch");
    seen = run_epoch(&plain, unshuffled, &batches, &last_batch);
    bool identity = seen == 131;
    for (size_t i = 0; i < 131 && identity; i++) {
        identity = unshuffled[i] == i;
    }
    ok &= check_true(identity, "without shuffle the samples come in file order");
    /* Normalisation: torchvision's (p / 255 - 0.1307) / 0.3081 in float32. */
    uint8_t pixels[3] = {0, 128, 255};
    float got[3], want[3];
    normalize_pixels(pixels, got, 3);
    for (int i = 0; i < 3; i++) {
        want[i] = ((float)pixels[i] / 255.0f - 0.1307f) / 0.3081f;
    }
    size_t three = 3;
    ok &= check_close("normalize_pixels 0, 128, 255", got, want, 3, &three, 1, 0.0, 0.0);
    ok &= check_true(fabsf(got[0] - -0.424212f) < 1e-5f && fabsf(got[2] - 2.821487f) < 1e-5f,
                     "0 -> -0.4242 and 255 -> 2.8215 (got %.6f, %.6f)", got[0], got[2]);
    data_loader_free(&loader);
    data_loader_free(&again);
    data_loader_free(&plain);
    free(d.split.images);
    free(d.split.labels);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- Trainer kit: flags, loss guard, JSON ------------------------------------------------------------ */

static int test_trainkit_flags(const TestContext *ctx)
{
    (void)ctx;
    int epochs = 4;
    double lr = 0.01;
    const char *data = NULL;
    bool quiet = false;
    FlagSpec specs[] = {
        {"--epochs", FLAG_INT, &epochs, 1, 100, "epochs"},
        {"--lr", FLAG_DOUBLE, &lr, 0, 10, "learning rate"},
        {"--data", FLAG_STRING, &data, 0, 0, "data folder"},
        {"--quiet", FLAG_SWITCH, &quiet, 0, 0, "less output"},
    };
    CourseError err;
    char *good[] = {"prog", "--epochs", "7", "--lr=0.5", "--data", "dir", "--quiet"};
    bool ok = check_true(flags_parse(7, good, specs, 4, "prog", NULL, &err) == FLAGS_OK, "valid flags parse");
    ok &= check_true(epochs == 7 && lr == 0.5 && data != NULL && strcmp(data, "dir") == 0 && quiet,
                     "values: epochs %d, lr %g, data %s, quiet %d", epochs, lr, data ? data : "(null)", quiet);
    struct {
        int argc;
        char *argv[3];
        const char *message; /* a piece of the expected error */
    } bad[] = {
        {3, {"prog", "--epochs", "four"}, "not an integer"},
        {3, {"prog", "--epochs", "0"}, "out of range"},
        {3, {"prog", "--lr", "nan"}, "not a finite number"},
        {3, {"prog", "--lr", "1e400"}, "not a finite number"},
        {2, {"prog", "--lr"}, "needs a value"},
        {2, {"prog", "--bogus"}, "unknown argument"},
        {3, {"prog", "--epochs", "3x"}, "not an integer"},
    };
    for (size_t i = 0; i < COUNT_OF(bad); i++) {
        err.message[0] = '\0';
        int status = flags_parse(bad[i].argc, bad[i].argv, specs, 4, "prog", NULL, &err);
        ok &= check_true(status == FLAGS_ERROR && strstr(err.message, bad[i].message) != NULL,
                         "'%s %s' is refused with '%s' (got '%s')", bad[i].argv[1],
                         bad[i].argc > 2 ? bad[i].argv[2] : "", bad[i].message, err.message);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_trainkit_loss_guard(const TestContext *ctx)
{
    (void)ctx;
    CourseError err;
    bool ok = check_true(loss_guard(2.3, 1, 5, &err) == 0, "a finite loss passes");
    ok &= check_true(loss_guard(NAN, 2, 17, &err) != 0 && strstr(err.message, "nan at epoch 2, batch 17") != NULL,
                     "NaN is caught and located (got '%s')", err.message);
    ok &= check_true(loss_guard(INFINITY, 1, 3, &err) != 0 && strstr(err.message, "inf") != NULL,
                     "inf is caught (got '%s')", err.message);
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_trainkit_json(const TestContext *ctx)
{
    (void)ctx;
    char path[] = "/tmp/ch02_summary_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        return test_skip("cannot create a temporary file in /tmp");
    }
    close(fd);
    double history[2] = {0.5, NAN};
    JsonField fields[] = {json_number("test_accuracy", 0.9346), json_integer("epochs", 4),
                          json_string("note", "a \"quoted\"\\ line\n"), json_number_array("curve", history, 2)};
    CourseError err;
    bool ok = check_true(json_summary_write(path, fields, COUNT_OF(fields), &err) == 0, "summary written");
    unsigned char *text = NULL;
    size_t length = 0;
    if (ok && file_read_all(path, &text, &length, &err) == 0) {
        char *s = xmalloc(length + 1);
        memcpy(s, text, length);
        s[length] = '\0';
        ok &= check_true(strstr(s, "\"test_accuracy\": 0.9346") != NULL, "number written: %s", s);
        ok &= check_true(strstr(s, "\"epochs\": 4,") != NULL, "integer written");
        ok &= check_true(strstr(s, "\"note\": \"a \\\"quoted\\\"\\\\ line\\u000a\"") != NULL, "string escaped");
        ok &= check_true(strstr(s, "\"curve\": [0.5, null]") != NULL, "NaN written as null");
        ok &= check_true(s[0] == '{' && strstr(s, "}\n") != NULL, "one JSON object");
        free(s);
        free(text);
    } else {
        ok = false;
    }
    /* A summary that cannot be written fails with a message naming the file. */
    ok &= check_true(json_summary_write("/nonexistent-dir/x.json", fields, 1, &err) != 0 &&
                         strstr(err.message, "/nonexistent-dir/x.json") != NULL,
                     "an unwritable path is reported (got '%s')", err.message);
    remove(path);
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_data_missing(const TestContext *ctx)
{
    (void)ctx;
    MnistSplit train, test;
    CourseError err;
    bool ok = check_true(train_load_mnist("/nonexistent-mnist-dir", &train, &test, &err) != 0 &&
                             strstr(err.message, "/nonexistent-mnist-dir/train-images-idx3-ubyte") != NULL,
                         "a missing folder is reported naming the file (got '%s')", err.message);
    return ok ? TEST_PASS : TEST_FAIL;
}

static const TestCase cases[] = {
    {"linear.forward", test_linear_forward},
    {"linear.backward", test_linear_backward},
    {"relu.layer", test_relu_layer},
    {"loss.forward", test_loss_forward},
    {"loss.backward", test_loss_backward},
    {"loss.extremes", test_loss_extremes},
    {"l2.penalty", test_l2_penalty},
    {"l2.weight_decay", test_l2_weight_decay},
    {"sgd.momentum", test_sgd_momentum},
    {"init.uniform", test_init_uniform},
    {"gradcheck.linear", test_gradcheck_linear},
    {"gradcheck.relu", test_gradcheck_relu},
    {"gradcheck.loss", test_gradcheck_loss},
    {"gradcheck.l2", test_gradcheck_l2},
    {"gradcheck.mlp", test_gradcheck_mlp},
    {"gradcheck.catches_bugs", test_gradcheck_catches_bugs},
    {"mlp.backward", test_mlp_backward},
    {"parity.mnist", test_parity_mnist},
    {"parity.odd", test_parity_odd},
    {"loader.epoch", test_loader_epoch},
    {"data.missing", test_data_missing},
    {"trainkit.flags", test_trainkit_flags},
    {"trainkit.loss_guard", test_trainkit_loss_guard},
    {"trainkit.json", test_trainkit_json},
};

int main(int argc, char **argv)
{
    return test_main(argc, argv, cases, COUNT_OF(cases));
}
