/* serve_model.c — Chapter 08: a checkpoint loaded for serving, and one batched forward pass (serve_model.h). */
#include "serve_model.h"

#include <stdlib.h>
#include <string.h>

#include "activations.h" /* chapter 01: softmax */
#include "gpu_cnn.h"
#include "request.h"
#include "train_util.h" /* MNIST_MEAN, MNIST_STD */

void serve_model_normalize(const float *pixels, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        x[i] = (pixels[i] - MNIST_MEAN) / MNIST_STD; /* normalize_pixels' formula, on p = byte / 255 */
    }
}

int serve_model_load(ServeModel *m, const char *path, ServeDevice device, int max_batch, CourseError *err)
{
    memset(m, 0, sizeof *m);
    m->device = device;
    m->max_batch = max_batch;
    /* GEMM_OWN: a row's result independent of the batch (serve_model.h says why). */
    if (checkpoint_load_network(path, max_batch, GEMM_OWN, &m->net, &m->state, err) != 0) return -1;
    const CnnConfig *c = &m->net.config;
    if (c->image_size != REQUEST_SIDE || c->classes != 10) {
        error_set(err, path, "a network for %dx%d images and %d classes; this server needs %dx%d images and 10 "
                  "classes (MNIST digits)", c->image_size, c->image_size, c->classes, REQUEST_SIDE, REQUEST_SIDE);
        cnn_destroy(&m->net);
        return -1;
    }
    if (device == SERVE_DEVICE_CUDA) {
        m->gpu = gpu_cnn_create(&m->net, max_batch, GPU_CNN_CUBLAS, err);
        if (m->gpu == NULL) {
            cnn_destroy(&m->net);
            return -1;
        }
        gpu_cnn_set_parameters(m->gpu, &m->net);
        m->logits = malloc((size_t)max_batch * c->classes * sizeof *m->logits);
    }
    return 0;
}

void serve_model_free(ServeModel *m)
{
    if (m->gpu != NULL) gpu_cnn_destroy(m->gpu);
    free(m->logits);
    cnn_destroy(&m->net);
    memset(m, 0, sizeof *m);
}

void serve_model_predict(ServeModel *m, const float *x, int n, float *probabilities, int *digits)
{
    const int classes = m->net.config.classes;
    const float *logits; /* (n, classes) */
    if (m->device == SERVE_DEVICE_CUDA) {
        gpu_cnn_predict(m->gpu, x, n, m->logits);
        logits = m->logits;
    } else {
        logits = cnn_forward(&m->net, x, n, false);
    }
    for (int b = 0; b < n; b++) {
        const float *row = logits + (size_t)b * classes;
        softmax(row, probabilities + (size_t)b * classes, (size_t)classes);
        int best = 0;
        for (int k = 1; k < classes; k++) {
            if (row[k] > row[best]) best = k; /* the first largest, as cnn_evaluate */
        }
        digits[b] = best;
    }
}
