/* layers.c — Chapter 02: fully connected layer, softmax + cross-entropy, L2 penalty, SGD with momentum.
 *
 * See layers.h for the shapes and README.md for the derivations. Loops are written plainly, in the order
 * that walks memory contiguously in the innermost loop, so a learner can match each line to the math.
 */
#include "layers.h"

#include <math.h>
#include <string.h>

void linear_forward(const float *x, const float *weight, const float *bias, float *y, size_t batch, size_t in,
                    size_t out)
{
    /* BEGIN EXERCISE ch02.linear_forward: y[b*out + o] = bias[o] + sum over i of x[b*in + i] * weight[o*in + i] (W is (out, in): row o of W dotted with row b of X) (about 9 lines) | zh: y[b*out + o] = bias[o] + 对 i 求和 x[b*in + i] * weight[o*in + i]（W 的形状是 (out, in)：W 的第 o 行与 X 的第 b 行做点积）（约 9 行） */
    for (size_t b = 0; b < batch; b++) {
        const float *x_row = x + b * in; /* (in) */
        for (size_t o = 0; o < out; o++) {
            const float *w_row = weight + o * in; /* (in) */
            float sum = bias[o];
            for (size_t i = 0; i < in; i++) {
                sum += x_row[i] * w_row[i];
            }
            y[b * out + o] = sum;
        }
    }
    /* END EXERCISE */
}

void linear_backward(const float *x, const float *weight, const float *dy, float *dx, float *dweight,
                     float *dbias, size_t batch, size_t in, size_t out)
{
    /* BEGIN EXERCISE ch02.linear_backward: dbias = column sums of dy; dweight = dy^T x (out, in); dx = dy W (batch, in), skipped when dx is NULL. Zero the outputs first: they are overwritten, not accumulated (about 30 lines) | zh: dbias = dy 的按列求和；dweight = dy^T x (out, in)；dx = dy W (batch, in)，dx 为 NULL 时跳过。先把输出清零：它们是被覆盖，不是累加（约 30 行） */
    memset(dweight, 0, out * in * sizeof *dweight);
    memset(dbias, 0, out * sizeof *dbias);
    for (size_t b = 0; b < batch; b++) {
        const float *x_row = x + b * in; /* (in) */
        const float *dy_row = dy + b * out; /* (out) */
        for (size_t o = 0; o < out; o++) {
            /* dW[o][i] += dy[b][o] * x[b][i]: sample b's contribution to dY^T X */
            float g = dy_row[o];
            float *dw_row = dweight + o * in;
            for (size_t i = 0; i < in; i++) {
                dw_row[i] += g * x_row[i];
            }
            dbias[o] += g;
        }
    }
    if (dx != NULL) {
        for (size_t b = 0; b < batch; b++) {
            const float *dy_row = dy + b * out; /* (out) */
            float *dx_row = dx + b * in; /* (in) */
            memset(dx_row, 0, in * sizeof *dx_row);
            for (size_t o = 0; o < out; o++) {
                /* dX[b][i] += dy[b][o] * W[o][i]: row b of dY W, built one row of W at a time */
                float g = dy_row[o];
                const float *w_row = weight + o * in;
                for (size_t i = 0; i < in; i++) {
                    dx_row[i] += g * w_row[i];
                }
            }
        }
    }
    /* END EXERCISE */
}

double softmax_cross_entropy_forward(const float *logits, const int32_t *labels, float *probs, size_t batch,
                                     size_t classes)
{
    /* BEGIN EXERCISE ch02.softmax_cross_entropy_forward: per row: m = max logit, s = sum exp(z - m), probs = exp(z - m) / s, loss_b = m + log(s) - z[label]; return the mean over the batch (accumulate in double) (about 20 lines) | zh: 逐行：m = 最大 logit，s = sum exp(z - m)，probs = exp(z - m) / s，loss_b = m + log(s) - z[label]；返回整个批次的均值（用 double 累加）（约 20 行） */
    double total = 0.0;
    for (size_t b = 0; b < batch; b++) {
        const float *z = logits + b * classes; /* (classes) */
        float *p = probs + b * classes; /* (classes) */
        /* Subtracting the row's maximum makes every exponent <= 0, so exp never overflows, and the largest
         * term is exactly 1, so the sum never underflows to 0 and its log is finite. */
        float m = z[0];
        for (size_t c = 1; c < classes; c++) {
            m = z[c] > m ? z[c] : m;
        }
        double sum = 0.0;
        for (size_t c = 0; c < classes; c++) {
            p[c] = expf(z[c] - m);
            sum += p[c];
        }
        for (size_t c = 0; c < classes; c++) {
            p[c] = (float)(p[c] / sum);
        }
        /* -log p[label] = log(sum_c e^(z_c)) - z_label = m + log(sum) - z_label: exact even when p[label]
         * underflows to 0 in float (where -log(p) would be +inf). */
        total += (double)m + log(sum) - (double)z[labels[b]];
    }
    return total / (double)batch;
    /* END EXERCISE */
}

void softmax_cross_entropy_backward(const float *probs, const int32_t *labels, float *dlogits, size_t batch,
                                    size_t classes)
{
    /* BEGIN EXERCISE ch02.softmax_cross_entropy_backward: dlogits = (probs - onehot(label)) / batch: copy probs scaled by 1/batch, then subtract 1/batch at each row's label (about 8 lines) | zh: dlogits = (probs - onehot(label)) / batch：把 probs 乘以 1/batch 复制过来，再在每行的 label 处减去 1/batch（约 8 行） */
    float scale = 1.0f / (float)batch; /* the loss is a mean over the batch */
    for (size_t b = 0; b < batch; b++) {
        for (size_t c = 0; c < classes; c++) {
            dlogits[b * classes + c] = probs[b * classes + c] * scale;
        }
        dlogits[b * classes + (size_t)labels[b]] -= scale;
    }
    /* END EXERCISE */
}

double l2_penalty(const float *weight, size_t n, float lambda)
{
    /* BEGIN EXERCISE ch02.l2_penalty: (lambda / 2) * sum of w^2, summed in double (about 5 lines) | zh: (lambda / 2) * w^2 之和，用 double 求和（约 5 行） */
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        sum += (double)weight[i] * weight[i];
    }
    return 0.5 * lambda * sum;
    /* END EXERCISE */
}

void l2_penalty_backward(const float *weight, float *grad, size_t n, float lambda)
{
    /* BEGIN EXERCISE ch02.l2_penalty_backward: grad[i] += lambda * w[i] (add, do not overwrite) (about 3 lines) | zh: grad[i] += lambda * w[i]（累加，不要覆盖）（约 3 行） */
    for (size_t i = 0; i < n; i++) {
        grad[i] += lambda * weight[i];
    }
    /* END EXERCISE */
}

void sgd_momentum_step(float *param, const float *grad, float *velocity, size_t n, float lr, float momentum,
                       float weight_decay)
{
    /* BEGIN EXERCISE ch02.sgd_momentum_step: g = grad + weight_decay * p; v = momentum * v + g; p -= lr * v (PyTorch's order) (about 6 lines) | zh: g = grad + weight_decay * p；v = momentum * v + g；p -= lr * v（与 PyTorch 的顺序相同）（约 6 行） */
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] + weight_decay * param[i];
        velocity[i] = momentum * velocity[i] + g;
        param[i] -= lr * velocity[i];
    }
    /* END EXERCISE */
}

void linear_init(float *weight, float *bias, size_t in, size_t out, Rng *rng)
{
    /* PyTorch's kaiming_uniform_(a = sqrt(5)) for the weight gives the bound sqrt(6 / ((1 + 5) * in)) =
     * 1 / sqrt(in); the bias uses the same bound. The order of draws (all weights, then all biases) is this
     * course's choice: the numbers differ from PyTorch's generator, the distribution is the same. */
    float bound = 1.0f / sqrtf((float)in);
    for (size_t k = 0; k < out * in; k++) {
        weight[k] = rng_uniform_range(rng, -bound, bound);
    }
    for (size_t o = 0; o < out; o++) {
        bias[o] = rng_uniform_range(rng, -bound, bound);
    }
}

size_t argmax(const float *values, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++) {
        if (values[i] > values[best]) {
            best = i;
        }
    }
    return best;
}
