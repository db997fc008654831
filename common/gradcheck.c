/* gradcheck.c — see gradcheck.h: central differences in double, sampled elements, per-tensor report. */
#include "gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "course_error.h"
#include "rng.h"

GradcheckOptions gradcheck_default_options(void)
{
    GradcheckOptions options = {
        .step = 1e-3,
        .samples = 64,
        .seed = 1,
        .tolerance = 1e-3,
        .floor_fraction = 1e-2,
        .floor = 1e-8,
        .quiet = false,
    };
    return options;
}

double gradcheck_relative_error(double analytic, double numeric, double floor)
{
    double scale = fabs(analytic) + fabs(numeric);
    if (scale < floor) {
        scale = floor;
    }
    return fabs(analytic - numeric) / scale;
}

/* Numeric derivative of the loss with respect to values[index]: (L(p + h) - L(p - h)) / (p_plus - p_minus),
 * where p_plus and p_minus are the float values actually stored (p + h rounds to a float). */
static double numeric_derivative(GradcheckLoss loss, void *context, float *values, size_t index, double step)
{
    float original = values[index];
    double h = step * fmax(1.0, fabs((double)original));
    float plus = (float)((double)original + h);
    float minus = (float)((double)original - h);
    values[index] = plus;
    double loss_plus = loss(context);
    values[index] = minus;
    double loss_minus = loss(context);
    values[index] = original;
    double distance = (double)plus - (double)minus;
    if (!(distance > 0.0)) {
        return NAN; /* the step vanished in float rounding: no meaningful estimate */
    }
    return (loss_plus - loss_minus) / distance;
}

bool gradcheck_run(GradcheckLoss loss, void *context, const GradcheckTensor *tensors, size_t n_tensors,
                   const GradcheckOptions *options, GradcheckResult *results)
{
    GradcheckOptions defaults = gradcheck_default_options();
    if (options == NULL) {
        options = &defaults;
    }
    bool all_ok = true;
    for (size_t t = 0; t < n_tensors; t++) {
        const GradcheckTensor *tensor = &tensors[t];
        GradcheckResult result = {0.0, 0, 0.0, 0.0, 0, true};
        bool every = tensor->count <= options->samples;
        size_t probes = every ? tensor->count : options->samples;
        double largest = 0.0;
        for (size_t i = 0; i < tensor->count; i++) {
            double magnitude = fabs((double)tensor->analytic[i]);
            largest = magnitude > largest ? magnitude : largest; /* a NaN is skipped here, caught below */
        }
        double floor = fmax(options->floor, options->floor_fraction * largest);
        Rng rng;
        rng_seed(&rng, options->seed, 1000 + t); /* each tensor its own sample of indices */
        for (size_t k = 0; k < probes; k++) {
            size_t index = every ? k : (size_t)rng_below(&rng, (uint32_t)tensor->count);
            double analytic = tensor->analytic[index];
            double numeric = numeric_derivative(loss, context, tensor->values, index, options->step);
            double error = gradcheck_relative_error(analytic, numeric, floor);
            result.checked++;
            /* !(error <= worst) also catches a NaN error, which then stays the worst and fails below. */
            if (k == 0 || !(error <= result.max_relative_error)) {
                result.max_relative_error = error;
                result.worst_index = index;
                result.worst_analytic = analytic;
                result.worst_numeric = numeric;
                if (isnan(error)) {
                    break;
                }
            }
        }
        result.ok = result.checked > 0 && result.max_relative_error <= options->tolerance;
        all_ok = all_ok && result.ok;
        if (!options->quiet || !result.ok) {
            printf("%s gradcheck %s (%zu elements): %zu checked, max rel error %.3g at [%zu] analytic %.7g "
                   "numeric %.7g (tolerance %.1g)\n",
                   result.ok ? "ok  " : "FAIL", tensor->name, tensor->count, result.checked,
                   result.max_relative_error, result.worst_index, result.worst_analytic, result.worst_numeric,
                   options->tolerance);
        }
        if (results != NULL) {
            results[t] = result;
        }
    }
    return all_ok;
}
