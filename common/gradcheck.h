/* gradcheck.h — a finite-difference gradient checker you can point at any layer or network.
 *
 * Backpropagation computes dL/dp for every parameter p analytically. The checker recomputes some of those
 * numbers from the definition of a derivative, with central differences,
 *
 *     dL/dp ~ (L(p + h) - L(p - h)) / (2h),        error O(h^2) (a one-sided difference is only O(h)),
 *
 * and reports, per tensor, the largest relative error |a - n| / max(|a| + |n|, floor) over the checked
 * elements (a = analytic, n = numeric). The floor is floor_fraction (1e-2) times the tensor's largest
 * analytic gradient: an element 1000 times smaller than its neighbours is compared on the tensor's scale,
 * not on its own, where the float rounding of the forward pass would dominate. Correct code gives
 * ~1e-6..1e-4 with float layers; a real bug (a missing transpose, a dropped 1/N, a wrong sign) gives ~1e-1..1.
 *
 * How you use it: write a loss function that runs your forward pass on the current parameter values and
 * returns a scalar in double, run your backward pass once to get the analytic gradients, then hand both to
 * gradcheck_run with a list of the tensors to check:
 *
 *     static double my_loss(void *context) { Net *net = context; return net_forward_loss(net); }
 *     ...
 *     net_backward(&net);                                   // fills net.dW1, net.db1, ...
 *     GradcheckTensor tensors[] = {
 *         {"W1", net.W1, net.dW1, H * 784},                 // values are perturbed in place, then restored
 *         {"b1", net.b1, net.db1, H},
 *     };
 *     GradcheckOptions options = gradcheck_default_options();
 *     bool ok = gradcheck_run(my_loss, &net, tensors, COUNT_OF(tensors), &options, NULL);
 *
 * Why double: the loss difference L(p + h) - L(p - h) is a small difference of two nearly equal numbers, so
 * its leading digits cancel; summing the loss in float would throw away the very digits the difference needs.
 * The checker works in double and the loss callback should accumulate in double. Layers written in float
 * still round their outputs (relative eps ~6e-8), and that rounding, divided by 2h, is the floor of the
 * numeric derivative's error; the truncation error grows as h^2. The default h = 1e-3 balances the two for
 * float layers (error ~ eps/h + h^2 ~ 1e-5..1e-4); for an all-double computation h ~ 1e-5 would be best.
 * The step actually taken is recomputed from the float values (p + h is rounded to a float), so the division
 * uses the true distance between the two points.
 *
 * Kinks: at a ReLU's 0 the function has no derivative; if p +- h lands on both sides of a kink, the numeric
 * value is meaningless. Keep inputs away from kinks by more than h (the chapter's tests do).
 */
#ifndef COURSE_GRADCHECK_H
#define COURSE_GRADCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Computes the scalar loss from the current values of the tensors being checked (read through `context`). */
typedef double (*GradcheckLoss)(void *context);

typedef struct GradcheckTensor {
    const char *name; /* printed in the report: "W1" */
    float *values; /* the tensor the loss depends on (a parameter or an input); restored after each probe */
    const float *analytic; /* dLoss/dvalues from your backward pass, same count */
    size_t count;
} GradcheckTensor;

typedef struct GradcheckOptions {
    double step; /* h, relative: the probe is p +- step * max(1, |p|) (default 1e-3) */
    size_t samples; /* elements checked per tensor; all of them when count <= samples (default 64) */
    uint64_t seed; /* which elements are sampled (default 1) */
    double tolerance; /* pass when the max relative error <= tolerance (default 1e-3) */
    double floor_fraction; /* the floor is floor_fraction * max |analytic| of the tensor (default 1e-2) */
    double floor; /* and at least this (default 1e-8), so an all-zero gradient does not divide by 0 */
    bool quiet; /* print only failing tensors */
} GradcheckOptions;

typedef struct GradcheckResult {
    double max_relative_error; /* over the checked elements (NaN if any value was NaN) */
    size_t worst_index; /* flat index of the worst element */
    double worst_analytic, worst_numeric;
    size_t checked; /* how many elements were probed */
    bool ok;
} GradcheckResult;

GradcheckOptions gradcheck_default_options(void);

/* Relative error of one element, as defined above. */
double gradcheck_relative_error(double analytic, double numeric, double floor);

/* Check every tensor; print one line per tensor ("gradcheck W1 (100352): 64 checked, max rel error 2.1e-06
 * at [4711] analytic 0.0123 numeric 0.0123 ok"). `results` (may be NULL) receives one entry per tensor.
 * Returns true when every tensor passes. A NaN anywhere fails. */
bool gradcheck_run(GradcheckLoss loss, void *context, const GradcheckTensor *tensors, size_t n_tensors,
                   const GradcheckOptions *options, GradcheckResult *results);

#endif
