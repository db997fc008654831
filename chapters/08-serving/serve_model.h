/* serve_model.h — Chapter 08: the trained network as the server uses it: load a checkpoint of chapter 07's
 * mnist_train, then answer batches of images, on the CPU (chapter 03's forward pass) or the GPU (chapter 07's
 * gpu_cnn_predict).
 *
 *   ServeModel m;  CourseError err;
 *   if (serve_model_load(&m, "run.safetensors", SERVE_DEVICE_CPU, 32, &err) != 0) error_exit(&err);
 *   serve_model_predict(&m, x, n, probabilities, digits);   // x (n, 1, 28, 28) normalised; n <= m.max_batch
 *   serve_model_free(&m);
 *
 * A row's answer does not depend on the other rows of its batch, bit for bit: on the CPU the network runs on
 * chapter 03's own GEMM (GEMM_OWN), whose sums for one output row take the same steps in the same order for
 * any number of rows. OpenBLAS does not promise that: it picks its kernels and blockings by the matrix sizes,
 * and on an Intel Xeon (2 cores) all 64 rows of a batch of 64 test images differed in their last bits from
 * the same images forwarded one by one (`test_serve_model_sim batch_invariance CHECKPOINT data` prints it).
 * tests/test_serve_model.c checks the server's path. On the GPU the same holds as long as cuBLAS picks the
 * same algorithm for every batch size, which it does not promise either.
 */
#ifndef CH08_SERVE_MODEL_H
#define CH08_SERVE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "cnn.h"
#include "course_error.h"

typedef enum ServeDevice { SERVE_DEVICE_CPU = 0, SERVE_DEVICE_CUDA = 1 } ServeDevice;

struct GpuCnn;

typedef struct ServeModel {
    ServeDevice device;
    int max_batch; /* rows one serve_model_predict call takes */
    Cnn net; /* the network (CPU path), or its shape and the host copy of the weights (CUDA path) */
    TrainState state; /* the checkpoint's training state: epochs, test accuracy ... */
    struct GpuCnn *gpu; /* CUDA path only */
    float *logits; /* (max_batch, classes) scratch of the CUDA path */
} ServeModel;

/* Load a checkpoint for serving 28x28 images into 10 classes: anything else (another architecture, image
 * size or class count, another format, a damaged file) is refused with err naming the file and the problem. */
int serve_model_load(ServeModel *m, const char *path, ServeDevice device, int max_batch, CourseError *err);
void serve_model_free(ServeModel *m);

/* pixels (n) in [0, 1] -> x (n): the trainer's normalisation (p - 0.1307) / 0.3081 (common/train_util.h). */
void serve_model_normalize(const float *pixels, float *x, size_t n);

/* Forward n images x (n, 1, 28, 28), normalised, no dropout: probabilities (n, 10) (softmax of the logits)
 * and digits (n), the first largest logit as in the trainer's evaluation. 1 <= n <= m->max_batch. */
void serve_model_predict(ServeModel *m, const float *x, int n, float *probabilities, int *digits);

#endif
