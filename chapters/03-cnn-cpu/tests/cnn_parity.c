/* cnn_parity.c — the CNN parity run's golden files and checks (see cnn_parity.h). */
#include "cnn_parity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "course_error.h"
#include "testing.h"

CnnConfig cnn_parity_config(int padding)
{
    CnnConfig config = cnn_default_config(padding);
    config.conv1_channels = 8;
    config.conv2_channels = 16;
    config.hidden = 32;
    return config;
}

/* "<golden_dir>/ch03/net_p<P>_<name>.npy" of the given dtype. */
static bool load(const char *golden_dir, int padding, const char *name, NpyDtype dtype, NpyArray *out)
{
    char relative[512];
    snprintf(relative, sizeof relative, "ch03/net_p%d_%s.npy", padding, name);
    return golden_load_typed(golden_dir, relative, dtype, out);
}

static const char *const PARAM_FILES[CNN_TENSORS] = {"conv1_w", "conv1_b", "conv2_w", "conv2_b",
                                                     "fc1_w",   "fc1_b",   "fc2_w",   "fc2_b"};

/* "<stage>_<param>" for every tensor, into `into[t]` (count-checked against net's tensors). */
static bool load_weights(const char *golden_dir, int padding, const char *stage, const Cnn *net, float **into)
{
    for (int t = 0; t < CNN_TENSORS; ++t) {
        char name[64];
        snprintf(name, sizeof name, "%s_%s", stage, PARAM_FILES[t]);
        NpyArray a;
        if (!load(golden_dir, padding, name, NPY_FLOAT32, &a)) {
            return false;
        }
        const bool fits = a.count == net->tensors[t].count;
        if (!fits) {
            printf("FAIL net_p%d_%s has %zu values, the network's %s has %zu\n", padding, name, a.count,
                   net->tensors[t].name, net->tensors[t].count);
        } else {
            memcpy(into[t], a.data, a.count * sizeof(float));
        }
        npy_free(&a);
        if (!fits) {
            return false;
        }
    }
    return true;
}

bool cnn_parity_load(const char *golden_dir, int padding, Cnn *net, CnnParity *parity)
{
    memset(parity, 0, sizeof *parity);
    parity->padding = padding;
    parity->features = net->features;
    parity->hidden = (size_t)net->config.hidden;
    float *initial[CNN_TENSORS];
    for (int t = 0; t < CNN_TENSORS; ++t) {
        initial[t] = net->tensors[t].value;
        parity->final[t] = xmalloc(net->tensors[t].count * sizeof(float));
    }
    const size_t B = CNN_PARITY_BATCH, S = CNN_PARITY_STEPS;
    bool ok = load_weights(golden_dir, padding, "init", net, initial) &&
              load_weights(golden_dir, padding, "final", net, parity->final) &&
              load(golden_dir, padding, "images", NPY_FLOAT32, &parity->images) &&
              load(golden_dir, padding, "labels", NPY_INT32, &parity->labels) &&
              load(golden_dir, padding, "mask1", NPY_UINT8, &parity->mask1) &&
              load(golden_dir, padding, "mask2", NPY_UINT8, &parity->mask2) &&
              load(golden_dir, padding, "losses", NPY_FLOAT32, &parity->losses);
    if (ok && (parity->images.count != S * B * 28 * 28 || parity->labels.count != S * B ||
               parity->mask1.count != S * B * parity->features || parity->mask2.count != S * B * parity->hidden ||
               parity->losses.count != S)) {
        printf("FAIL net_p%d_*: golden files of the wrong size for %zu steps of batch %zu\n", padding, S, B);
        ok = false;
    }
    if (!ok) {
        cnn_parity_free(parity);
    }
    return ok;
}

const float *cnn_parity_images(const CnnParity *parity, int step)
{
    return (const float *)parity->images.data + (size_t)step * CNN_PARITY_BATCH * 28 * 28;
}

const int32_t *cnn_parity_labels(const CnnParity *parity, int step)
{
    return (const int32_t *)parity->labels.data + (size_t)step * CNN_PARITY_BATCH;
}

const uint8_t *cnn_parity_mask1(const CnnParity *parity, int step)
{
    return (const uint8_t *)parity->mask1.data + (size_t)step * CNN_PARITY_BATCH * parity->features;
}

const uint8_t *cnn_parity_mask2(const CnnParity *parity, int step)
{
    return (const uint8_t *)parity->mask2.data + (size_t)step * CNN_PARITY_BATCH * parity->hidden;
}

bool cnn_parity_check(const CnnParity *parity, const char *what, const float *losses, const Cnn *net)
{
    char label[160];
    snprintf(label, sizeof label, "losses of %d steps, padding %d [%s]", CNN_PARITY_STEPS, parity->padding, what);
    /* a loss ~2.3 from sums of float32 products: 1e-5 relative */
    bool ok = check_close(label, losses, parity->losses.data, CNN_PARITY_STEPS, NULL, 1, 1e-5, 1e-5);
    for (int t = 0; t < CNN_TENSORS; ++t) {
        const CnnTensor *tensor = &net->tensors[t];
        snprintf(label, sizeof label, "%s after %d steps, padding %d [%s]", tensor->name, CNN_PARITY_STEPS,
                 parity->padding, what);
        /* weights ~0.1 that moved by ~1e-3..1e-2: 2e-6 absolute catches a wrong gradient (an error of a few
         * percent in any gradient moves a weight by ~1e-5) while allowing float rounding. */
        ok &= check_close(label, tensor->value, parity->final[t], tensor->count, tensor->shape, tensor->ndim, 2e-6,
                          1e-5);
    }
    return ok;
}

void cnn_parity_free(CnnParity *parity)
{
    for (int t = 0; t < CNN_TENSORS; ++t) {
        free(parity->final[t]);
        parity->final[t] = NULL;
    }
    npy_free(&parity->images);
    npy_free(&parity->labels);
    npy_free(&parity->mask1);
    npy_free(&parity->mask2);
    npy_free(&parity->losses);
}
