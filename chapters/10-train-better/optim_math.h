/* optim_math.h — Chapter 10: the arithmetic of one optimiser step, shared by the CPU update (optim.c) and the
 * fused CUDA kernels (optim.cu), so that both round the same float operations in the same order (bit for bit
 * on the course's simulator; on a GPU, nvcc's fused multiply-adds change the last bits).
 *
 *   OptimRange ranges[OPTIM_MAX_RANGES];
 *   int count = optim_ranges(segments, n, ranges);                 // the buffer cut into ranges of one lr scale
 *   OptimStepConstants k = optim_step_constants(&config, lr * ranges[r].lr_scale, t);    // once per range
 *   p[i] = optim_adam_element(&k, p[i], g[i], &m[i], &v[i]);        // every element i of the range
 *
 * Compiled as CUDA (nvcc, or the simulator) the inline functions are __host__ __device__, as in common/philox.h;
 * a C compiler sees plain static inline functions. Not a header a program includes on its own: optim.h is.
 */
#ifndef CH10_OPTIM_MATH_H
#define CH10_OPTIM_MATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "optim.h"
#include "philox.h" /* PHILOX_FUNCTION: static inline, and __host__ __device__ under CUDA */

#define OPTIM_FUNCTION PHILOX_FUNCTION

/* What one step applies to every element of a range, in float as torch's kernels apply it (torch passes its
 * Python-float scalars to a float tensor's kernel rounded to float). */
typedef struct OptimStepConstants {
    float lr; /* SGD: the step's learning rate */
    float momentum; /* SGD */
    float l2; /* SGD, Adam: weight decay added to the gradient; 0 for AdamW */
    float beta1, one_minus_beta1, beta2, one_minus_beta2, eps; /* Adam, AdamW */
    float neg_step_size; /* -lr / (1 - beta1^t), the division in double */
    float bias_correction2_sqrt; /* sqrt(1 - beta2^t), in double */
    float decay_factor; /* AdamW: 1 - lr wd (in double); 1 for Adam */
} OptimStepConstants;

/* The constants of update t (1-based) at learning rate lr. torch computes 1 - beta^t, lr / (1 - beta1^t),
 * sqrt(1 - beta2^t) and 1 - lr wd in Python, in double, and rounds each to float only when a kernel takes it:
 * here too. */
OPTIM_FUNCTION OptimStepConstants optim_step_constants(const OptimizerConfig *config, float lr, uint64_t t)
{
    OptimStepConstants k;
    const double bias_correction1 = 1.0 - pow(config->beta1, (double)t);
    const double bias_correction2 = 1.0 - pow(config->beta2, (double)t);
    k.lr = lr;
    k.momentum = (float)config->momentum;
    k.l2 = config->kind == OPTIM_ADAMW ? 0.0f : (float)config->weight_decay;
    k.beta1 = (float)config->beta1;
    k.one_minus_beta1 = (float)(1.0 - config->beta1);
    k.beta2 = (float)config->beta2;
    k.one_minus_beta2 = (float)(1.0 - config->beta2);
    k.eps = (float)config->eps;
    k.neg_step_size = (float)(-((double)lr / bias_correction1));
    k.bias_correction2_sqrt = (float)sqrt(bias_correction2);
    k.decay_factor = config->kind == OPTIM_ADAMW ? (float)(1.0 - (double)lr * config->weight_decay) : 1.0f;
    return k;
}

/* SGD with momentum for one element (torch.optim.SGD: d_p = g + wd p; buf = mu buf + d_p; p += -lr buf). The
 * same three lines as chapter 02's sgd_momentum_step, which optim.c calls on the CPU; this one is for the fused
 * kernel, which takes lr from device memory. */
OPTIM_FUNCTION void optim_sgd_element(const OptimStepConstants *k, float *p, float g, float *m)
{
    const float d_p = g + k->l2 * *p;
    const float buf = k->momentum * *m + d_p;
    *m = buf;
    *p -= k->lr * buf;
}

/* Adam and AdamW for one element, in torch's order: p *= 1 - lr wd (AdamW; the factor is 1 for Adam, which adds
 * wd p to the gradient instead); m = b1 m + (1 - b1) g; v = b2 v + ((1 - b2) g) g;
 * denom = sqrt(v) / sqrt(1 - b2^t) + eps; p += (-step_size m) / denom. Updates m and v, returns the new p. */
OPTIM_FUNCTION float optim_adam_element(const OptimStepConstants *k, float p, float g, float *m, float *v)
{
    /* BEGIN EXERCISE ch10.adam_element: param = p * decay_factor; g += l2 * param; m = beta1 m + one_minus_beta1 g; v = beta2 v + one_minus_beta2 * g * g; denom = sqrtf(v) / bias_correction2_sqrt + eps; store m, v; return param + neg_step_size * m / denom (about 8 lines) | zh: param = p * decay_factor；g += l2 * param；m = beta1 m + one_minus_beta1 g；v = beta2 v + one_minus_beta2 * g * g；denom = sqrtf(v) / bias_correction2_sqrt + eps；保存 m、v；返回 param + neg_step_size * m / denom（约 8 行） */
    const float param = p * k->decay_factor;
    const float grad = g + k->l2 * param;
    const float m_new = k->beta1 * *m + k->one_minus_beta1 * grad;
    const float v_new = k->beta2 * *v + k->one_minus_beta2 * grad * grad;
    const float denom = sqrtf(v_new) / k->bias_correction2_sqrt + k->eps;
    *m = m_new;
    *v = v_new;
    return param + k->neg_step_size * m_new / denom;
    /* END EXERCISE */
}

/* The flat buffer cut into ranges of one learning-rate scale: the segments, and the gaps between them at scale
 * 1; frozen segments (scale 0) are left out, so nothing touches them. At most 2 * OPTIM_MAX_SEGMENTS + 1. */
#define OPTIM_MAX_RANGES (2 * OPTIM_MAX_SEGMENTS + 1)
typedef struct OptimRange {
    size_t start, end;
    float lr_scale;
} OptimRange;

#ifdef __cplusplus
extern "C" {
#endif
/* Fills ranges (OPTIM_MAX_RANGES entries) and returns how many; stops the program, naming the problem, when
 * the segments are invalid (optim_segments_check). Defined in optim.c. */
int optim_ranges(const OptimSegments *segments, size_t n, OptimRange *ranges);
#ifdef __cplusplus
}
#endif

#endif
