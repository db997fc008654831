/* layers.h — Chapter 02: the layers of a multilayer perceptron, forward and backward, batched.
 *
 * Every array is row-major (C order) and its shape is written beside it: x (batch, in) means x[b * in + i].
 * The conventions follow PyTorch so the golden files compare directly:
 *   - a fully connected layer stores W as (out, in), like nn.Linear, and computes Y = X W^T + b;
 *   - the loss is the mean cross-entropy over the batch (F.cross_entropy, reduction="mean");
 *   - SGD with momentum is torch.optim.SGD's: g += wd * p; v = mu * v + g; p -= lr * v.
 * Activations (ReLU) are chapter 01's relu_forward / relu_backward (activations.h), reused, not copied.
 *
 * Backward functions OVERWRITE their gradient outputs (they do not accumulate into them).
 *
 * Build and test:  cmake --preset default && cmake --build --preset default && ctest --preset default -L ch02
 * The lesson deriving every backward formula: chapters/02-backprop-mlp/README.md
 */
#ifndef CH02_LAYERS_H
#define CH02_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

/* Fully connected layer: Y = X W^T + b, that is y[b][o] = sum_i x[b][i] * w[o][i] + bias[o].
 * x (batch, in), weight (out, in), bias (out), y (batch, out). */
void linear_forward(const float *x, const float *weight, const float *bias, float *y, size_t batch, size_t in,
                    size_t out);

/* Gradients of the loss with respect to the layer's input and parameters, given dy = dL/dY (batch, out):
 *   dx      = dY W        (batch, in)    dx may be NULL when nobody needs it (the first layer)
 *   dweight = dY^T X      (out, in)
 *   dbias   = sum_b dY    (out)          (the bias is added to every row, so its gradient sums the rows) */
void linear_backward(const float *x, const float *weight, const float *dy, float *dx, float *dweight,
                     float *dbias, size_t batch, size_t in, size_t out);

/* Fused softmax + cross-entropy, mean over the batch:
 *   p[b] = softmax(logits[b]),   loss = -(1/batch) sum_b log p[b][labels[b]]
 * computed as log-sum-exp minus the label's logit (max subtracted first: stable for any finite logits).
 * logits (batch, classes), labels (batch) with values in [0, classes), probs (batch, classes) out: the
 * softmax, kept for the backward pass. Returns the mean loss, in double: a gradient check differences two
 * nearby losses, and rounding them to float would drown the difference (see gradcheck.h). */
double softmax_cross_entropy_forward(const float *logits, const int32_t *labels, float *probs, size_t batch,
                                     size_t classes);

/* dlogits = (probs - onehot(labels)) / batch.  probs (batch, classes), dlogits (batch, classes). */
void softmax_cross_entropy_backward(const float *probs, const int32_t *labels, float *dlogits, size_t batch,
                                    size_t classes);

/* L2 regularisation term (lambda / 2) * sum_i w_i^2 over n values (summed and returned in double). */
double l2_penalty(const float *weight, size_t n, float lambda);

/* Its gradient, lambda * w, ADDED to grad (n): the penalty is an extra term of the loss, so its gradient is
 * added to the gradient backpropagation already computed. */
void l2_penalty_backward(const float *weight, float *grad, size_t n, float lambda);

/* One step of SGD with momentum and weight decay, exactly as torch.optim.SGD (dampening 0, no Nesterov):
 *   g = grad + weight_decay * p;   v = momentum * v + g;   p = p - lr * v
 * param, grad, velocity: (n). velocity starts at 0 (then the first step sets v = g, as PyTorch does). */
void sgd_momentum_step(float *param, const float *grad, float *velocity, size_t n, float lr, float momentum,
                       float weight_decay);

/* PyTorch's default initialisation of nn.Linear: weight and bias uniform in [-1/sqrt(in), 1/sqrt(in)].
 * weight (out, in), bias (out). */
void linear_init(float *weight, float *bias, size_t in, size_t out, Rng *rng);

/* Index of the largest of n values (the first one on ties); the predicted class of a row of logits. */
size_t argmax(const float *values, size_t n);

#endif
