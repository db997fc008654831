/* activations.c — Chapter 01: activation functions and their derivatives (see activations.h, README.md).
 *
 * Every function here must be right at the extremes, not only for "normal" inputs: x = ±100, ±1e4, ±inf, 0,
 * denormals, and NaN (which must come out as NaN, never be silently turned into a number). The tests check
 * exactly these values against PyTorch.
 */
#include "activations.h"

#include <math.h>

float sigmoid(float x)
{
    /* BEGIN EXERCISE ch01.sigmoid: compute 1/(1+e^-x) so that no exponential can overflow: for x >= 0 use e^-x, for x < 0 use e^x / (1 + e^x) (about 6 lines) | zh: 计算 1/(1+e^-x)，且任何指数都不能溢出：x >= 0 时用 e^-x，x < 0 时用 e^x / (1 + e^x)（约 6 行） */
    /* Only ever exponentiate a non-positive number: e^-|x| lies in (0, 1], so nothing overflows, and for very
     * negative x the result e^x / (1 + e^x) keeps its tiny value instead of underflowing 1/(1 + inf) to 0. */
    if (x >= 0.0f) {
        return 1.0f / (1.0f + expf(-x));
    }
    float e = expf(x); /* also the path NaN takes: expf(NaN) is NaN */
    return e / (1.0f + e);
    /* END EXERCISE */
}

float sigmoid_derivative(float x)
{
    /* BEGIN EXERCISE ch01.sigmoid_derivative: reuse sigmoid(x): s * (1 - s) (about 2 lines) | zh: 复用 sigmoid(x)：s * (1 - s)（约 2 行） */
    float s = sigmoid(x);
    return s * (1.0f - s);
    /* END EXERCISE */
}

float tanh_activation(float x)
{
    /* BEGIN EXERCISE ch01.tanh: tanh without overflow (libm's tanhf is stable; the textbook quotient is not) (about 1 line) | zh: 不会溢出的 tanh（libm 的 tanhf 是数值稳定的，教科书上的商式不是）（约 1 行） */
    return tanhf(x);
    /* END EXERCISE */
}

float tanh_derivative(float x)
{
    /* BEGIN EXERCISE ch01.tanh_derivative: 1 - tanh(x)^2, reusing tanh_activation (about 2 lines) | zh: 1 - tanh(x)^2，复用 tanh_activation（约 2 行） */
    float t = tanh_activation(x);
    return 1.0f - t * t;
    /* END EXERCISE */
}

float relu(float x)
{
    /* BEGIN EXERCISE ch01.relu: return x for x > 0, else 0; NaN must stay NaN (about 1 line) | zh: x > 0 时返回 x，否则返回 0；NaN 必须仍是 NaN（约 1 行） */
    /* Written as "x < 0 ? 0 : x" rather than "x > 0 ? x : 0": every comparison with NaN is false, so this form
     * lets NaN through (NaN in, NaN out) where the other would turn NaN into 0 and hide a bug upstream. */
    return x < 0.0f ? 0.0f : x;
    /* END EXERCISE */
}

float relu_derivative(float x)
{
    /* BEGIN EXERCISE ch01.relu_derivative: 1 for x > 0, 0 for x <= 0, NaN for NaN (about 4 lines) | zh: x > 0 时为 1，x <= 0 时为 0，NaN 时为 NaN（约 4 行） */
    if (isnan(x)) {
        return x;
    }
    return x > 0.0f ? 1.0f : 0.0f;
    /* END EXERCISE */
}

float leaky_relu(float x, float negative_slope)
{
    /* BEGIN EXERCISE ch01.leaky_relu: x for x > 0, negative_slope * x otherwise; NaN stays NaN (about 1 line) | zh: x > 0 时为 x，否则为 negative_slope * x；NaN 仍是 NaN（约 1 行） */
    return x > 0.0f ? x : negative_slope * x; /* NaN takes the second branch, and slope * NaN is NaN */
    /* END EXERCISE */
}

float leaky_relu_derivative(float x, float negative_slope)
{
    /* BEGIN EXERCISE ch01.leaky_relu_derivative: 1 for x > 0, negative_slope for x <= 0, NaN for NaN (about 4 lines) | zh: x > 0 时为 1，x <= 0 时为 negative_slope，NaN 时为 NaN（约 4 行） */
    if (isnan(x)) {
        return x;
    }
    return x > 0.0f ? 1.0f : negative_slope;
    /* END EXERCISE */
}

void sigmoid_forward(const float *x, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = sigmoid(x[i]);
    }
}

void sigmoid_backward(const float *x, const float *dy, float *dx, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        dx[i] = dy[i] * sigmoid_derivative(x[i]);
    }
}

void tanh_forward(const float *x, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = tanh_activation(x[i]);
    }
}

void tanh_backward(const float *x, const float *dy, float *dx, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        dx[i] = dy[i] * tanh_derivative(x[i]);
    }
}

void relu_forward(const float *x, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = relu(x[i]);
    }
}

void relu_backward(const float *x, const float *dy, float *dx, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        dx[i] = dy[i] * relu_derivative(x[i]);
    }
}

void leaky_relu_forward(const float *x, float *y, size_t n, float negative_slope)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = leaky_relu(x[i], negative_slope);
    }
}

void leaky_relu_backward(const float *x, const float *dy, float *dx, size_t n, float negative_slope)
{
    for (size_t i = 0; i < n; i++) {
        dx[i] = dy[i] * leaky_relu_derivative(x[i], negative_slope);
    }
}

/* The largest element; NaN if any element is NaN (so that NaN in gives NaN out in softmax). */
static float max_element(const float *x, size_t n)
{
    float m = x[0];
    for (size_t i = 0; i < n; i++) {
        if (isnan(x[i])) {
            return x[i];
        }
        if (x[i] > m) {
            m = x[i];
        }
    }
    return m;
}

void softmax(const float *x, float *y, size_t n)
{
    /* BEGIN EXERCISE ch01.softmax: subtract the maximum before exponentiating, then normalise by the sum (about 10 lines) | zh: 先减去最大值再取指数，然后除以总和归一化（约 10 行） */
    /* e^(x_i - m) <= 1, so the sum lies in [1, n]: no overflow, and no division by an underflowed 0. */
    float m = max_element(x, n);
    double sum = 0.0; /* accumulate in double: n terms of float would lose low bits for large n */
    for (size_t i = 0; i < n; i++) {
        y[i] = expf(x[i] - m);
        sum += y[i];
    }
    float inverse = (float)(1.0 / sum);
    for (size_t i = 0; i < n; i++) {
        y[i] *= inverse;
    }
    /* END EXERCISE */
}

void log_softmax(const float *x, float *y, size_t n)
{
    /* BEGIN EXERCISE ch01.log_softmax: x_i - m - log(sum_j e^(x_j - m)) with m the maximum (the log-sum-exp trick) (about 8 lines) | zh: x_i - m - log(sum_j e^(x_j - m))，m 为最大值（log-sum-exp 技巧）（约 8 行） */
    float m = max_element(x, n);
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        sum += expf(x[i] - m);
    }
    float log_sum = (float)log(sum); /* sum >= 1, so log_sum >= 0 and finite */
    for (size_t i = 0; i < n; i++) {
        y[i] = (x[i] - m) - log_sum;
    }
    /* END EXERCISE */
}

void softmax_backward(const float *y, const float *dy, float *dx, size_t n)
{
    /* BEGIN EXERCISE ch01.softmax_backward: dx_i = y_i * (dy_i - sum_j dy_j * y_j) (about 6 lines) | zh: dx_i = y_i * (dy_i - sum_j dy_j * y_j)（约 6 行） */
    double dot = 0.0;
    for (size_t j = 0; j < n; j++) {
        dot += (double)dy[j] * y[j];
    }
    for (size_t i = 0; i < n; i++) {
        dx[i] = y[i] * (dy[i] - (float)dot);
    }
    /* END EXERCISE */
}

void log_softmax_backward(const float *y, const float *dy, float *dx, size_t n)
{
    /* BEGIN EXERCISE ch01.log_softmax_backward: dx_i = dy_i - e^(y_i) * sum_j dy_j (about 6 lines) | zh: dx_i = dy_i - e^(y_i) * sum_j dy_j（约 6 行） */
    double sum = 0.0;
    for (size_t j = 0; j < n; j++) {
        sum += dy[j];
    }
    for (size_t i = 0; i < n; i++) {
        dx[i] = dy[i] - expf(y[i]) * (float)sum;
    }
    /* END EXERCISE */
}
