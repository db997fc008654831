/* optim.c — Chapter 10: the optimisers' CPU update and the learning-rate schedules (see optim.h).
 *
 * The element arithmetic is optim_math.h's, shared with the CUDA kernels of optim.cu; SGD's is chapter 02's
 * sgd_momentum_step, which already rounds as torch.optim.SGD does. The tests (tests/test_optim.cu) replay
 * torch.optim and torch.optim.lr_scheduler step by step:
 *
 *   build/bin/test_optim_sim adam.golden --golden reference/golden
 */
#include "optim.h"

#include <math.h>
#include <string.h>

#include "layers.h" /* chapter 02: sgd_momentum_step */
#include "optim_math.h"

OptimizerConfig optimizer_default_config(OptimizerKind kind)
{
    OptimizerConfig c = {.kind = kind, .momentum = 0.9, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    c.weight_decay = kind == OPTIM_ADAMW ? 0.01 : 0.0;
    return c;
}

static const char *const OPTIMIZER_NAMES[] = {"sgd", "adam", "adamw"};
static const char *const SCHEDULE_NAMES[] = {"constant", "step", "cosine", "onecycle"};

static int find_name(const char *name, const char *const *names, int count)
{
    for (int i = 0; name != NULL && i < count; i++) {
        if (strcmp(name, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

int optimizer_parse(const char *name)
{
    return find_name(name, OPTIMIZER_NAMES, 3);
}

const char *optimizer_name(OptimizerKind kind)
{
    return kind >= 0 && kind < 3 ? OPTIMIZER_NAMES[kind] : "unknown";
}

int optimizer_state_buffers(OptimizerKind kind)
{
    return kind == OPTIM_SGD ? 1 : 2;
}

int optim_segments_check(const OptimSegments *segments, size_t n, CourseError *err)
{
    if (segments == NULL) {
        return 0;
    }
    if (segments->count < 0 || segments->count > OPTIM_MAX_SEGMENTS) {
        return error_set(err, "optimizer segments", "%d ranges (0 to %d allowed)", segments->count,
                         OPTIM_MAX_SEGMENTS);
    }
    size_t previous_end = 0;
    for (int s = 0; s < segments->count; s++) {
        const size_t start = segments->start[s], end = segments->end[s];
        const float scale = segments->lr_scale[s];
        if (start > end || end > n) {
            return error_set(err, "optimizer segments", "range %d is [%zu, %zu), outside the %zu parameters", s,
                             start, end, n);
        }
        if (start < previous_end) {
            return error_set(err, "optimizer segments", "range %d starts at %zu, before range %d ends (%zu): "
                             "ranges must be sorted and must not overlap", s, start, s - 1, previous_end);
        }
        if (!(scale >= 0.0f) || isinf(scale)) {
            return error_set(err, "optimizer segments", "range %d has learning-rate scale %g (finite, >= 0)", s,
                             (double)scale);
        }
        previous_end = end;
    }
    return 0;
}

int optim_ranges(const OptimSegments *segments, size_t n, OptimRange *ranges)
{
    CourseError err;
    if (optim_segments_check(segments, n, &err) != 0) {
        error_exit(&err);
    }
    int count = 0;
    size_t position = 0;
    const int segment_count = segments != NULL ? segments->count : 0;
    for (int s = 0; s < segment_count; s++) {
        if (segments->start[s] > position) {
            ranges[count++] = (OptimRange){position, segments->start[s], 1.0f};
        }
        if (segments->lr_scale[s] != 0.0f && segments->end[s] > segments->start[s]) {
            ranges[count++] = (OptimRange){segments->start[s], segments->end[s], segments->lr_scale[s]};
        }
        position = segments->end[s];
    }
    if (n > position) {
        ranges[count++] = (OptimRange){position, n, 1.0f};
    }
    return count;
}

void optim_step_cpu(const OptimizerConfig *config, const OptimSegments *segments, float *p, const float *g, float *m,
                    float *v, size_t n, float lr, uint64_t t)
{
    OptimRange ranges[OPTIM_MAX_RANGES];
    const int count = optim_ranges(segments, n, ranges);
    for (int r = 0; r < count; r++) {
        const size_t a = ranges[r].start, len = ranges[r].end - ranges[r].start;
        const float range_lr = lr * ranges[r].lr_scale;
        if (config->kind == OPTIM_SGD) {
            sgd_momentum_step(p + a, g + a, m + a, len, range_lr, (float)config->momentum,
                              (float)config->weight_decay);
            continue;
        }
        const OptimStepConstants k = optim_step_constants(config, range_lr, t);
        for (size_t i = a; i < a + len; i++) {
            p[i] = optim_adam_element(&k, p[i], g[i], &m[i], &v[i]);
        }
    }
}

/* ---- Learning-rate schedules ------------------------------------------------------------------------------ */

ScheduleConfig schedule_default_config(ScheduleKind kind, double base_lr, uint64_t total_steps,
                                       uint64_t steps_per_epoch)
{
    ScheduleConfig c = {.kind = kind,
                        .base_lr = base_lr,
                        .total_steps = total_steps,
                        .steps_per_epoch = steps_per_epoch,
                        .step_epochs = 3,
                        .gamma = 0.1,
                        .pct_start = 0.3,
                        .div_factor = 25.0,
                        .final_div_factor = 1e4};
    return c;
}

int schedule_parse(const char *name)
{
    return find_name(name, SCHEDULE_NAMES, 4);
}

const char *schedule_name(ScheduleKind kind)
{
    return kind >= 0 && kind < 4 ? SCHEDULE_NAMES[kind] : "unknown";
}

/* CosineAnnealingLR(T_max = total_steps, eta_min = 0) after `step` steps, in closed form:
 * base (1 + cos(pi step / T_max)) / 2. (torch updates the rate recursively, multiplying the previous rate by a
 * ratio of two cosines; the two agree to about 1e-15, far below float.) */
static double schedule_cosine(double base_lr, uint64_t step, uint64_t total_steps)
{
    /* BEGIN EXERCISE ch10.schedule_cosine: base_lr * (1 + cos(pi * step / total_steps)) / 2, in double (about 2 lines) | zh: base_lr * (1 + cos(pi * step / total_steps)) / 2，用 double 计算（约 2 行） */
    const double pi = 3.14159265358979323846;
    return base_lr * (1.0 + cos(pi * (double)step / (double)total_steps)) / 2.0;
    /* END EXERCISE */
}

/* torch's OneCycleLR._annealing_cos: from start to end as pct goes from 0 to 1, in its order of operations. */
static double anneal_cos(double start, double end, double pct)
{
    const double pi = 3.14159265358979323846;
    const double cos_out = cos(pi * pct) + 1.0;
    return end + (start - end) / 2.0 * cos_out;
}

double schedule_lr(const ScheduleConfig *config, uint64_t step)
{
    const uint64_t total = config->total_steps > 0 ? config->total_steps : 1;
    if (step >= total) {
        step = total - 1; /* past the end of the run: the last step's rate */
    }
    switch (config->kind) {
    case SCHEDULE_STEP: {
        /* StepLR multiplies the rate by gamma at every step_epochs-th epoch; repeated multiplication, as torch
         * does it, rather than pow (which rounds differently). */
        const uint64_t per_epoch = config->steps_per_epoch > 0 ? config->steps_per_epoch : 1;
        const uint64_t every = config->step_epochs > 0 ? (uint64_t)config->step_epochs : 1;
        const uint64_t decays = step / per_epoch / every;
        double lr = config->base_lr;
        for (uint64_t d = 0; d < decays; d++) {
            lr *= config->gamma;
        }
        return lr;
    }
    case SCHEDULE_COSINE:
        return schedule_cosine(config->base_lr, step, total);
    case SCHEDULE_ONECYCLE: {
        /* torch's two phases: warm-up from initial = max / div_factor to max until step pct_start total - 1,
         * then down to initial / final_div_factor at step total - 1; pct counts from the phase's start. */
        const double max_lr = config->base_lr;
        const double initial_lr = max_lr / config->div_factor;
        const double min_lr = initial_lr / config->final_div_factor;
        const double warmup_end = config->pct_start * (double)total - 1.0;
        const double s = (double)step;
        const double anneal_steps = (double)total - 1.0 - warmup_end;
        if (s <= warmup_end) {
            return anneal_cos(initial_lr, max_lr, warmup_end > 0.0 ? s / warmup_end : 1.0);
        }
        return anneal_cos(max_lr, min_lr, anneal_steps > 0.0 ? (s - warmup_end) / anneal_steps : 1.0);
    }
    case SCHEDULE_CONSTANT:
    default:
        return config->base_lr;
    }
}
