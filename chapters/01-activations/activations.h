/* activations.h — Chapter 01: activation functions, their derivatives, softmax and log-softmax.
 *
 * Scalar functions are what the lesson derives and what the exercises ask for; the array functions apply
 * them to whole tensors and are what later chapters call (chapter 02's MLP, chapter 04's CUDA kernels are
 * checked against them).
 *
 * Conventions, matching PyTorch so that the golden files compare:
 *   - relu'(0) = 0 and leaky_relu'(0) = negative_slope (the subgradient PyTorch picks at the kink);
 *   - NaN in gives NaN out, for every function and every derivative;
 *   - backward functions take the forward's input x and the upstream gradient dy and return
 *     dx = dy * f'(x) (the chain rule for an elementwise function).
 *
 * Build and test:  cmake --preset default && cmake --build --preset default && ctest --preset default -L ch01
 * Table of values: build/bin/activations_table -3 -1 0 1 3      (see README.md)
 */
#ifndef CH01_ACTIVATIONS_H
#define CH01_ACTIVATIONS_H

#include <stddef.h>

#define LEAKY_RELU_DEFAULT_SLOPE 0.01f

/* sigmoid(x) = 1 / (1 + e^-x), range (0, 1); computed without overflow for any x. */
float sigmoid(float x);
/* sigmoid'(x) = sigmoid(x) * (1 - sigmoid(x)), at most 1/4 (at x = 0). */
float sigmoid_derivative(float x);

/* tanh(x) = (e^x - e^-x) / (e^x + e^-x) = 2 sigmoid(2x) - 1, range (-1, 1). (Named tanh_activation because
 * <math.h> already has tanh.) */
float tanh_activation(float x);
/* tanh'(x) = 1 - tanh(x)^2, at most 1 (at x = 0). */
float tanh_derivative(float x);

/* relu(x) = max(0, x), range [0, inf). */
float relu(float x);
/* relu'(x) = 1 for x > 0, 0 for x <= 0. */
float relu_derivative(float x);

/* leaky_relu(x) = x for x > 0, negative_slope * x otherwise; range (-inf, inf) for a positive slope. */
float leaky_relu(float x, float negative_slope);
/* leaky_relu'(x) = 1 for x > 0, negative_slope for x <= 0. */
float leaky_relu_derivative(float x, float negative_slope);

/* Elementwise layers over n values: y = f(x) and dx = dy * f'(x).  x, y, dy, dx: (n) */
void sigmoid_forward(const float *x, float *y, size_t n);
void sigmoid_backward(const float *x, const float *dy, float *dx, size_t n);
void tanh_forward(const float *x, float *y, size_t n);
void tanh_backward(const float *x, const float *dy, float *dx, size_t n);
void relu_forward(const float *x, float *y, size_t n);
void relu_backward(const float *x, const float *dy, float *dx, size_t n);
void leaky_relu_forward(const float *x, float *y, size_t n, float negative_slope);
void leaky_relu_backward(const float *x, const float *dy, float *dx, size_t n, float negative_slope);

/* softmax(x)_i = e^(x_i - m) / sum_j e^(x_j - m), with m = max_j x_j so that no exponential overflows.
 * x, y: (n), n >= 1. */
void softmax(const float *x, float *y, size_t n);
/* log_softmax(x)_i = x_i - m - log(sum_j e^(x_j - m)): exact where log(softmax(x)) would take log(0). */
void log_softmax(const float *x, float *y, size_t n);

/* Vector-Jacobian products. y is the forward's output, dy the upstream gradient; all (n).
 * softmax:      dx_i = y_i * (dy_i - sum_j dy_j y_j)
 * log_softmax:  dx_i = dy_i - e^(y_i) * sum_j dy_j */
void softmax_backward(const float *y, const float *dy, float *dx, size_t n);
void log_softmax_backward(const float *y, const float *dy, float *dx, size_t n);

#endif
