/* test_activations.c — Chapter 01's tests: every activation, derivative and softmax against PyTorch.
 *
 *   build/bin/test_activations --list
 *   build/bin/test_activations sigmoid.extremes --golden reference/golden
 *
 * (ctest -L ch01 runs every case.) Inputs are the golden files' random, oddly sized vectors, plus the
 * extremes where textbook formulas fail: ±100, ±1e4, ±0, denormals, ±inf and NaN.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "activations.h"
#include "check.h"
#include "testing.h"

/* float32 math: libm and PyTorch's vectorised kernels differ by a few ulp (relative ~1e-7); 1e-5 leaves room
 * without letting a wrong formula through (a wrong formula is off by orders of magnitude more). */
#define ATOL 1e-6
#define RTOL 1e-5

typedef float (*ScalarFunction)(float x, float parameter);

typedef struct Activation {
    const char *golden_name; /* prefix of the golden files */
    ScalarFunction forward, derivative;
    float parameter; /* the negative slope for leaky ReLU */
} Activation;

static float sigmoid_p(float x, float p) { (void)p; return sigmoid(x); }
static float sigmoid_d_p(float x, float p) { (void)p; return sigmoid_derivative(x); }
static float tanh_p(float x, float p) { (void)p; return tanh_activation(x); }
static float tanh_d_p(float x, float p) { (void)p; return tanh_derivative(x); }
static float relu_p(float x, float p) { (void)p; return relu(x); }
static float relu_d_p(float x, float p) { (void)p; return relu_derivative(x); }

static const Activation SIGMOID = {"sigmoid", sigmoid_p, sigmoid_d_p, 0.0f};
static const Activation TANH = {"tanh", tanh_p, tanh_d_p, 0.0f};
static const Activation RELU = {"relu", relu_p, relu_d_p, 0.0f};
static const Activation LEAKY = {"leaky_relu", leaky_relu, leaky_relu_derivative, LEAKY_RELU_DEFAULT_SLOPE};
static const Activation LEAKY_02 = {"leaky_relu_0.2", leaky_relu, leaky_relu_derivative, 0.2f};

/* The array (layer) versions, so the tests also cover the loops later chapters call. */
static void apply_forward(const Activation *a, const float *x, float *y, size_t n)
{
    if (a->forward == sigmoid_p) {
        sigmoid_forward(x, y, n);
    } else if (a->forward == tanh_p) {
        tanh_forward(x, y, n);
    } else if (a->forward == relu_p) {
        relu_forward(x, y, n);
    } else {
        leaky_relu_forward(x, y, n, a->parameter);
    }
}

static void apply_backward(const Activation *a, const float *x, const float *dy, float *dx, size_t n)
{
    if (a->forward == sigmoid_p) {
        sigmoid_backward(x, dy, dx, n);
    } else if (a->forward == tanh_p) {
        tanh_backward(x, dy, dx, n);
    } else if (a->forward == relu_p) {
        relu_backward(x, dy, dx, n);
    } else {
        leaky_relu_backward(x, dy, dx, n, a->parameter);
    }
}

static int load_pair(const TestContext *ctx, const char *input, const char *expected, NpyArray *x, NpyArray *want)
{
    char name[256];
    snprintf(name, sizeof name, "ch01/%s.npy", input);
    if (!golden_load(ctx, name, x)) {
        return 0;
    }
    snprintf(name, sizeof name, "ch01/%s.npy", expected);
    if (!golden_load(ctx, name, want)) {
        npy_free(x);
        return 0;
    }
    if (!check_true(x->count == want->count, "%s and %s differ in size", input, expected)) {
        npy_free(x);
        npy_free(want);
        return 0;
    }
    return 1;
}

/* f(x) for the random inputs: scalar function and array layer both. */
static int run_forward(const TestContext *ctx, const Activation *a)
{
    NpyArray x, want;
    char expected[128], label[160];
    snprintf(expected, sizeof expected, "%s_y", a->golden_name);
    if (!load_pair(ctx, "x", expected, &x, &want)) {
        return TEST_FAIL;
    }
    const float *xs = x.data;
    float *got = nan_filled(x.count);
    for (size_t i = 0; i < x.count; i++) {
        got[i] = a->forward(xs[i], a->parameter);
    }
    snprintf(label, sizeof label, "%s(x)", a->golden_name);
    bool ok = check_close(label, got, want.data, x.count, x.shape, x.ndim, ATOL, RTOL);
    float *layer = nan_filled(x.count);
    apply_forward(a, xs, layer, x.count);
    snprintf(label, sizeof label, "%s_forward", a->golden_name);
    ok &= check_close(label, layer, want.data, x.count, x.shape, x.ndim, ATOL, RTOL);
    free(got);
    free(layer);
    npy_free(&x);
    npy_free(&want);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* f'(x) for the random inputs. */
static int run_derivative(const TestContext *ctx, const Activation *a)
{
    NpyArray x, want;
    char expected[128], label[160];
    snprintf(expected, sizeof expected, "%s_dydx", a->golden_name);
    if (!load_pair(ctx, "x", expected, &x, &want)) {
        return TEST_FAIL;
    }
    const float *xs = x.data;
    float *got = nan_filled(x.count);
    for (size_t i = 0; i < x.count; i++) {
        got[i] = a->derivative(xs[i], a->parameter);
    }
    snprintf(label, sizeof label, "%s'(x)", a->golden_name);
    bool ok = check_close(label, got, want.data, x.count, x.shape, x.ndim, ATOL, RTOL);
    free(got);
    npy_free(&x);
    npy_free(&want);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* dx = dy * f'(x) through the array layer, against autograd with a random upstream gradient. */
static int run_backward(const TestContext *ctx, const Activation *a)
{
    NpyArray x, want, dy;
    char expected[128], label[160];
    snprintf(expected, sizeof expected, "%s_dx", a->golden_name);
    if (!load_pair(ctx, "x", expected, &x, &want)) {
        return TEST_FAIL;
    }
    if (!golden_load(ctx, "ch01/dy.npy", &dy)) {
        npy_free(&x);
        npy_free(&want);
        return TEST_FAIL;
    }
    float *got = nan_filled(x.count);
    apply_backward(a, x.data, dy.data, got, x.count);
    snprintf(label, sizeof label, "%s_backward dx", a->golden_name);
    bool ok = check_close(label, got, want.data, x.count, x.shape, x.ndim, ATOL, RTOL);
    free(got);
    npy_free(&x);
    npy_free(&want);
    npy_free(&dy);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* The extremes: forward and derivative must match PyTorch exactly in kind (0, ±1, ±inf, NaN) and closely in
 * value, including NaN in → NaN out. */
static int run_extremes(const TestContext *ctx, const Activation *a)
{
    NpyArray x, want_y, want_d;
    char expected[128], label[160];
    snprintf(expected, sizeof expected, "%s_extremes_y", a->golden_name);
    if (!load_pair(ctx, "extremes_x", expected, &x, &want_y)) {
        return TEST_FAIL;
    }
    snprintf(expected, sizeof expected, "%s_extremes_dydx", a->golden_name);
    NpyArray x2;
    if (!load_pair(ctx, "extremes_x", expected, &x2, &want_d)) {
        npy_free(&x);
        npy_free(&want_y);
        return TEST_FAIL;
    }
    const float *xs = x.data;
    float *got_y = nan_filled(x.count);
    float *got_d = nan_filled(x.count);
    for (size_t i = 0; i < x.count; i++) {
        got_y[i] = a->forward(xs[i], a->parameter);
        got_d[i] = a->derivative(xs[i], a->parameter);
    }
    snprintf(label, sizeof label, "%s(extremes)", a->golden_name);
    bool ok = check_close_ex(label, got_y, want_y.data, x.count, x.shape, x.ndim, ATOL, RTOL, CHECK_NAN_EXPECTED);
    snprintf(label, sizeof label, "%s'(extremes)", a->golden_name);
    ok &= check_close_ex(label, got_d, want_d.data, x.count, x.shape, x.ndim, ATOL, RTOL, CHECK_NAN_EXPECTED);
    for (size_t i = 0; i < x.count; i++) {
        if (isnan(xs[i])) {
            ok &= check_true(isnan(got_y[i]) && isnan(got_d[i]), "%s: NaN in must give NaN out (got %g and %g)",
                             a->golden_name, (double)got_y[i], (double)got_d[i]);
        }
    }
    free(got_y);
    free(got_d);
    npy_free(&x);
    npy_free(&x2);
    npy_free(&want_y);
    npy_free(&want_d);
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_sigmoid_forward(const TestContext *c) { return run_forward(c, &SIGMOID); }
static int test_sigmoid_derivative(const TestContext *c) { return run_derivative(c, &SIGMOID); }
static int test_sigmoid_backward(const TestContext *c) { return run_backward(c, &SIGMOID); }
static int test_sigmoid_extremes(const TestContext *c) { return run_extremes(c, &SIGMOID); }
static int test_tanh_forward(const TestContext *c) { return run_forward(c, &TANH); }
static int test_tanh_derivative(const TestContext *c) { return run_derivative(c, &TANH); }
static int test_tanh_backward(const TestContext *c) { return run_backward(c, &TANH); }
static int test_tanh_extremes(const TestContext *c) { return run_extremes(c, &TANH); }
static int test_relu_forward(const TestContext *c) { return run_forward(c, &RELU); }
static int test_relu_derivative(const TestContext *c) { return run_derivative(c, &RELU); }
static int test_relu_backward(const TestContext *c) { return run_backward(c, &RELU); }
static int test_relu_extremes(const TestContext *c) { return run_extremes(c, &RELU); }

static int test_leaky_relu_forward(const TestContext *c)
{
    int a = run_forward(c, &LEAKY), b = run_forward(c, &LEAKY_02);
    return a == TEST_PASS && b == TEST_PASS ? TEST_PASS : TEST_FAIL;
}
static int test_leaky_relu_derivative(const TestContext *c)
{
    int a = run_derivative(c, &LEAKY), b = run_derivative(c, &LEAKY_02);
    return a == TEST_PASS && b == TEST_PASS ? TEST_PASS : TEST_FAIL;
}
static int test_leaky_relu_backward(const TestContext *c)
{
    int a = run_backward(c, &LEAKY), b = run_backward(c, &LEAKY_02);
    return a == TEST_PASS && b == TEST_PASS ? TEST_PASS : TEST_FAIL;
}
static int test_leaky_relu_extremes(const TestContext *c)
{
    int a = run_extremes(c, &LEAKY), b = run_extremes(c, &LEAKY_02);
    return a == TEST_PASS && b == TEST_PASS ? TEST_PASS : TEST_FAIL;
}

/* Far in the negative tail sigmoid(x) ~ e^x is a tiny (denormal) float, not 0. The reference is float64
 * PyTorch rounded to float32. Denormals near 5e-42 carry ~12 significant bits, hence rtol 1e-3. The naive
 * 1/(1 + e^-x) overflows e^-x to inf and returns 0 here. */
static int test_sigmoid_tail(const TestContext *ctx)
{
    NpyArray x, want;
    if (!load_pair(ctx, "sigmoid_tail_x", "sigmoid_tail_y", &x, &want)) {
        return TEST_FAIL;
    }
    float *got = nan_filled(x.count);
    for (size_t i = 0; i < x.count; i++) {
        got[i] = sigmoid(((const float *)x.data)[i]);
    }
    bool ok = check_close("sigmoid(negative tail)", got, want.data, x.count, x.shape, x.ndim, 0.0, 1e-3);
    free(got);
    npy_free(&x);
    npy_free(&want);
    return ok ? TEST_PASS : TEST_FAIL;
}

static const int SOFTMAX_SIZES[] = {1, 7, 10, 127, 129, 1000};

typedef void (*VectorFunction)(const float *x, float *y, size_t n);
typedef void (*VectorBackward)(const float *y, const float *dy, float *dx, size_t n);

/* Forward over every size, then the sum rule: softmax sums to 1, log_softmax's exponentials sum to 1. */
static int run_vector_forward(const TestContext *ctx, const char *op, VectorFunction f, int is_log)
{
    bool ok = true;
    for (size_t k = 0; k < COUNT_OF(SOFTMAX_SIZES); k++) {
        char input[64], expected[64], label[64];
        snprintf(input, sizeof input, "softmax_%d_x", SOFTMAX_SIZES[k]);
        snprintf(expected, sizeof expected, "%s_%d_y", op, SOFTMAX_SIZES[k]);
        NpyArray x, want;
        if (!load_pair(ctx, input, expected, &x, &want)) {
            return TEST_FAIL;
        }
        float *got = nan_filled(x.count);
        f(x.data, got, x.count);
        snprintf(label, sizeof label, "%s n=%zu", op, x.count);
        ok &= check_close(label, got, want.data, x.count, x.shape, x.ndim, ATOL, RTOL);
        double total = 0.0;
        for (size_t i = 0; i < x.count; i++) {
            total += is_log ? exp((double)got[i]) : (double)got[i];
        }
        ok &= check_true(fabs(total - 1.0) <= 1e-5, "%s n=%zu: probabilities sum to %.9f, not 1", op, x.count, total);
        free(got);
        npy_free(&x);
        npy_free(&want);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

static int run_vector_extremes(const TestContext *ctx, const char *op, VectorFunction f)
{
    bool ok = true;
    for (int k = 0;; k++) {
        char input[64], expected[64], label[64], path[4096];
        snprintf(input, sizeof input, "softmax_extreme%d_x", k);
        snprintf(path, sizeof path, "%s/ch01/%s.npy", ctx->golden_dir, input);
        FILE *probe = fopen(path, "rb");
        if (probe == NULL) {
            ok &= check_true(k > 0, "no softmax extreme vectors found in %s/ch01", ctx->golden_dir);
            break;
        }
        fclose(probe);
        snprintf(expected, sizeof expected, "%s_extreme%d_y", op, k);
        NpyArray x, want;
        if (!load_pair(ctx, input, expected, &x, &want)) {
            return TEST_FAIL;
        }
        float *got = nan_filled(x.count);
        f(x.data, got, x.count);
        snprintf(label, sizeof label, "%s extreme vector %d", op, k);
        ok &= check_close(label, got, want.data, x.count, x.shape, x.ndim, ATOL, RTOL);
        free(got);
        npy_free(&x);
        npy_free(&want);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

static int run_vector_backward(const TestContext *ctx, const char *op, VectorBackward b)
{
    bool ok = true;
    for (size_t k = 0; k < COUNT_OF(SOFTMAX_SIZES); k++) {
        char name[64], label[64];
        NpyArray x, dy, want;
        snprintf(name, sizeof name, "softmax_%d_dy", SOFTMAX_SIZES[k]);
        char expected[64];
        snprintf(expected, sizeof expected, "%s_%d_dx", op, SOFTMAX_SIZES[k]);
        if (!load_pair(ctx, name, expected, &dy, &want)) {
            return TEST_FAIL;
        }
        /* The backward takes the forward's output y; PyTorch's y is used so that this test checks only the
         * backward formula (the forward has its own test). */
        snprintf(name, sizeof name, "ch01/%s_%d_y.npy", op, SOFTMAX_SIZES[k]);
        if (!golden_load(ctx, name, &x)) {
            return TEST_FAIL;
        }
        const float *y = x.data;
        float *got = nan_filled(x.count);
        b(y, dy.data, got, x.count);
        snprintf(label, sizeof label, "%s_backward n=%zu", op, x.count);
        ok &= check_close(label, got, want.data, x.count, x.shape, x.ndim, ATOL, RTOL);
        free(got);
        npy_free(&x);
        npy_free(&dy);
        npy_free(&want);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_softmax_forward(const TestContext *c) { return run_vector_forward(c, "softmax", softmax, 0); }
static int test_softmax_extremes(const TestContext *c) { return run_vector_extremes(c, "softmax", softmax); }
static int test_softmax_backward(const TestContext *c)
{
    return run_vector_backward(c, "softmax", softmax_backward);
}
static int test_log_softmax_forward(const TestContext *c)
{
    return run_vector_forward(c, "log_softmax", log_softmax, 1);
}
static int test_log_softmax_extremes(const TestContext *c)
{
    return run_vector_extremes(c, "log_softmax", log_softmax);
}
static int test_log_softmax_backward(const TestContext *c)
{
    return run_vector_backward(c, "log_softmax", log_softmax_backward);
}

/* NaN anywhere in the logits makes every output NaN: the result is undefined, and must say so. */
static int test_softmax_nan(const TestContext *ctx)
{
    (void)ctx;
    const float x[5] = {1.0f, 2.0f, NAN, -1.0f, 0.5f};
    float y[5], z[5];
    softmax(x, y, 5);
    log_softmax(x, z, 5);
    bool ok = true;
    for (int i = 0; i < 5; i++) {
        ok &= check_true(isnan(y[i]) && isnan(z[i]), "softmax/log_softmax of a vector holding NaN: element %d is "
                         "%g / %g, expected NaN", i, (double)y[i], (double)z[i]);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

static const TestCase CASES[] = {
    {"sigmoid.forward", test_sigmoid_forward},
    {"sigmoid.derivative", test_sigmoid_derivative},
    {"sigmoid.backward", test_sigmoid_backward},
    {"sigmoid.extremes", test_sigmoid_extremes},
    {"sigmoid.tail", test_sigmoid_tail},
    {"tanh.forward", test_tanh_forward},
    {"tanh.derivative", test_tanh_derivative},
    {"tanh.backward", test_tanh_backward},
    {"tanh.extremes", test_tanh_extremes},
    {"relu.forward", test_relu_forward},
    {"relu.derivative", test_relu_derivative},
    {"relu.backward", test_relu_backward},
    {"relu.extremes", test_relu_extremes},
    {"leaky_relu.forward", test_leaky_relu_forward},
    {"leaky_relu.derivative", test_leaky_relu_derivative},
    {"leaky_relu.backward", test_leaky_relu_backward},
    {"leaky_relu.extremes", test_leaky_relu_extremes},
    {"softmax.forward", test_softmax_forward},
    {"softmax.extremes", test_softmax_extremes},
    {"softmax.backward", test_softmax_backward},
    {"softmax.nan", test_softmax_nan},
    {"log_softmax.forward", test_log_softmax_forward},
    {"log_softmax.extremes", test_log_softmax_extremes},
    {"log_softmax.backward", test_log_softmax_backward},
};

int main(int argc, char **argv)
{
    return test_main(argc, argv, CASES, COUNT_OF(CASES));
}
