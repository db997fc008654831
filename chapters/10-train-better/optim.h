/* optim.h — Chapter 10: optimisers (SGD with momentum, Adam, AdamW) as one fused update each, on the CPU and
 * on the GPU, and learning-rate schedules (constant, step, cosine, one-cycle), all with torch.optim's exact
 * semantics (the tests replay torch.optim step by step from the same gradients).
 *
 *   SGD momentum (torch.optim.SGD):   g += wd p;  v = mu v + g;  p -= lr v
 *   Adam (torch.optim.Adam):          g += wd p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *                                     p -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 *   AdamW (torch.optim.AdamW):        p *= 1 - lr wd;  then Adam's update without the g += wd p
 *
 * t is the 1-based count of updates. The state buffers start at zero: with m = 0, SGD's first update stores
 * m = mu 0 + g = g, which is what torch does (it creates the momentum buffer as a copy of g on the first step).
 *
 * The arithmetic is torch 1.13's single-tensor code (foreach=False), operation for operation: the element
 * updates round in float in torch's order, and the bias corrections 1 - beta^t, lr / (1 - beta1^t) and AdamW's
 * 1 - lr wd are computed in double, as Python computes them. The CPU result agrees with torch.optim to 1 ulp of
 * the operands: torch's vectorised kernels (AVX2, NEON) compute a + alpha b as one fused multiply-add where C
 * rounds the product and the sum apart. SGD on the CPU is chapter 02's sgd_momentum_step, range by range.
 *
 * The learning rate of a step comes from the schedule (schedule_lr); on the GPU the update reads it, and t, from
 * DEVICE memory, so that chapter 07's CUDA Graph of the training step is captured once and replayed with a new
 * learning rate every step (mnist_train uploads a table of the epoch's rates once per epoch, and a one-thread
 * kernel at the start of each step copies the step's entry and count where these kernels read them:
 * train_better.cu).
 *
 * Layers can learn at different rates: OptimSegments splits the flat parameter buffer into ranges, each with a
 * learning-rate scale; a scale of 0 freezes the range (no update, its state untouched: what PyTorch does for a
 * parameter with requires_grad=False). Transfer learning uses it (--freeze conv1,conv2, --layer-lr conv1=0.1).
 *
 *   OptimizerConfig opt = optimizer_default_config(OPTIM_ADAM);
 *   ScheduleConfig sch = schedule_default_config(SCHEDULE_COSINE, 1e-3, epochs * 157, 157);
 *   float lr = (float)schedule_lr(&sch, step);                        // step: 0-based
 *   optim_step_cpu(&opt, NULL, p, g, m, v, n, lr, step + 1);
 *   optim_step_gpu(&opt, &segments, d_p, d_g, d_m, d_v, n, d_lr, d_t, stream);   // lr, t on the device
 */
#ifndef CH10_OPTIM_H
#define CH10_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "course_error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum OptimizerKind { OPTIM_SGD = 0, OPTIM_ADAM = 1, OPTIM_ADAMW = 2 } OptimizerKind;

/* The hyper-parameters are double because torch's are Python floats: 1 - beta1^t is computed from beta1 = 0.9
 * exactly as torch computes it (0.9f is another number, and would move Adam's step by a few ulp). The element
 * updates use them rounded to float, as torch's float kernels do. */
typedef struct OptimizerConfig {
    OptimizerKind kind;
    double momentum; /* SGD: mu (0.9); dampening 0, not Nesterov */
    double beta1, beta2, eps; /* Adam, AdamW: 0.9, 0.999, 1e-8 */
    double weight_decay; /* SGD, Adam: L2 added to the gradient; AdamW: decoupled (p *= 1 - lr wd) */
} OptimizerConfig;

/* torch.optim's defaults (SGD momentum 0.9 as the course's recipe, weight decay 0; AdamW's default weight decay
 * 0.01). */
OptimizerConfig optimizer_default_config(OptimizerKind kind);
/* "sgd", "adam", "adamw" -> kind; -1 for another name. */
int optimizer_parse(const char *name);
const char *optimizer_name(OptimizerKind kind);
/* Does the optimiser keep a second state buffer (Adam's v)? SGD keeps one (momentum), Adam two (m, v). */
int optimizer_state_buffers(OptimizerKind kind);

#define OPTIM_MAX_SEGMENTS 16
/* Ranges [start, end) of the flat parameter buffer with their learning-rate scale; elements in no range are
 * updated at scale 1. NULL or count 0: everything at scale 1. Ranges are sorted by start and do not overlap.
 * A range's learning rate is the float product lr * lr_scale, so a range at scale 0.1f moves exactly as a run
 * at learning rate lr * 0.1f would; scale 0 freezes it (p, m, v untouched). */
typedef struct OptimSegments {
    int count;
    size_t start[OPTIM_MAX_SEGMENTS], end[OPTIM_MAX_SEGMENTS];
    float lr_scale[OPTIM_MAX_SEGMENTS];
} OptimSegments;

/* 0 when the segments are valid for a buffer of n elements (sorted, not overlapping, end <= n, count <=
 * OPTIM_MAX_SEGMENTS, scales finite and >= 0); else -1 with the problem in err. optim_step_* stop the program
 * with this message on invalid segments. */
int optim_segments_check(const OptimSegments *segments, size_t n, CourseError *err);

/* One update of the n parameters p from their gradients g: m is the first state buffer (SGD's momentum, Adam's
 * exp_avg), v the second (Adam's exp_avg_sq; NULL for SGD). lr: this step's learning rate; t: 1-based update
 * count (Adam's bias correction). p, g, m, v: (n,), flat. */
void optim_step_cpu(const OptimizerConfig *config, const OptimSegments *segments, float *p, const float *g, float *m,
                    float *v, size_t n, float lr, uint64_t t);

/* The same as one fused kernel (DEVICE pointers p, g, m, v: (n,)), enqueued on `stream` (a cudaStream_t; NULL:
 * the default stream); lr and t are read from device memory when the kernel runs (one float, one uint64_t), so
 * a captured CUDA Graph replays it with whatever the host (or a kernel) wrote there since. Bit for bit
 * optim_step_cpu's result on the simulator; on a GPU within float rounding (nvcc fuses multiplies and adds,
 * and the device's pow may differ from glibc's in the last bit of a double). */
void optim_step_gpu(const OptimizerConfig *config, const OptimSegments *segments, float *p, const float *g, float *m,
                    float *v, size_t n, const float *lr, const uint64_t *t, void *stream);

typedef enum ScheduleKind {
    SCHEDULE_CONSTANT = 0,
    SCHEDULE_STEP = 1, /* torch StepLR stepped every epoch: base * gamma^floor(epoch / step_epochs) */
    SCHEDULE_COSINE = 2, /* torch CosineAnnealingLR(T_max = total_steps, eta_min = 0) stepped every batch */
    SCHEDULE_ONECYCLE = 3, /* torch OneCycleLR(max_lr = base, total_steps, pct_start, cos, div_factor,
                              final_div_factor, cycle_momentum=False) stepped every batch: a warm-up from
                              base / div_factor to base over pct_start of the steps, then a cosine down to
                              base / div_factor / final_div_factor */
} ScheduleKind;

typedef struct ScheduleConfig {
    ScheduleKind kind;
    double base_lr;
    uint64_t total_steps; /* steps of the whole run (epochs * steps per epoch) */
    uint64_t steps_per_epoch;
    int step_epochs; /* STEP: every this many epochs (default 3) */
    double gamma; /* STEP: times this (default 0.1) */
    double pct_start, div_factor, final_div_factor; /* ONECYCLE: 0.3, 25, 1e4 */
} ScheduleConfig;

/* The schedule's defaults for a run of total_steps steps, steps_per_epoch a epoch. */
ScheduleConfig schedule_default_config(ScheduleKind kind, double base_lr, uint64_t total_steps,
                                       uint64_t steps_per_epoch);
/* "constant", "step", "cosine", "onecycle" -> kind; -1 for another name. */
int schedule_parse(const char *name);
const char *schedule_name(ScheduleKind kind);
/* The learning rate of step `step` (0-based: the first update uses schedule_lr(c, 0)), as torch's scheduler
 * gives it after `step` calls of scheduler.step() (StepLR: after step / steps_per_epoch epochs). Computed in
 * double, in closed form (torch's CosineAnnealingLR is recursive: the two agree to about 1e-15). Steps past the
 * run (step >= total_steps) get the last step's rate. */
double schedule_lr(const ScheduleConfig *config, uint64_t step);

#ifdef __cplusplus
}
#endif

#endif
