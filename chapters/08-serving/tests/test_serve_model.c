/* test_serve_model.c — Chapter 08: the server's model (serve_model.h) without HTTP.
 *
 *   test_serve_model_sim batch_invariance CHECKPOINT DATA_DIR
 *       A row's answer does not depend on its batch: 64 test images forwarded together, one by one and in
 *       odd-sized batches give the same probabilities bit for bit (CPU path; and the CUDA path on the
 *       simulator for a few images). Exit 0 or 1.
 *   test_serve_model_sim reference CHECKPOINT DATA_DIR N
 *       For tests/test_serve.py: chapter 03's forward pass on OpenBLAS, as mnist_train evaluates, over the
 *       first N test images. Prints "accuracy RECORDED MEASURED COUNT" (the checkpoint's test accuracy as
 *       mnist_train recorded it, and cnn_evaluate's on the same COUNT images), then one line per image:
 *       "index label digit p0 ... p9" (probabilities with 9 significant digits: float32 exactly).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "activations.h"
#include "checkpoint.h"
#include "cnn.h"
#include "idx.h"
#include "serve_model.h"
#include "train_util.h"

#define PIXELS 784
#define CLASSES 10

static int batch_invariance(const char *checkpoint, const MnistSplit *test, ServeDevice device, int images)
{
    ServeModel m;
    CourseError err;
    if (serve_model_load(&m, checkpoint, device, images, &err) != 0) {
        fprintf(stderr, "FAIL: %s\n", err.message);
        return 1;
    }
    float *x = malloc((size_t)images * PIXELS * sizeof *x); /* (images, 1, 28, 28) */
    normalize_pixels(test->images, x, (size_t)images * PIXELS);
    float *whole = malloc((size_t)images * CLASSES * sizeof *whole), *part = malloc((size_t)images * CLASSES * sizeof *part);
    int *whole_digits = malloc((size_t)images * sizeof(int)), *part_digits = malloc((size_t)images * sizeof(int));
    serve_model_predict(&m, x, images, whole, whole_digits);
    int failures = 0;
    const int chunk_sizes[] = {1, 7, 13, images - 1};
    for (size_t c = 0; c < sizeof chunk_sizes / sizeof chunk_sizes[0]; c++) {
        const int chunk = chunk_sizes[c] < 1 ? 1 : chunk_sizes[c];
        for (int first = 0; first < images; first += chunk) {
            const int n = images - first < chunk ? images - first : chunk;
            serve_model_predict(&m, x + (size_t)first * PIXELS, n, part + (size_t)first * CLASSES, part_digits + first);
        }
        for (int i = 0; i < images; i++) {
            if (memcmp(whole + (size_t)i * CLASSES, part + (size_t)i * CLASSES, CLASSES * sizeof(float)) != 0 ||
                whole_digits[i] != part_digits[i]) {
                if (failures++ < 5) {
                    fprintf(stderr, "FAIL: %s: image %d in batches of %d: p[0] %.9g, digit %d; in one batch of %d: "
                            "p[0] %.9g, digit %d\n", device == SERVE_DEVICE_CPU ? "cpu" : "cuda", i, chunk,
                            part[(size_t)i * CLASSES], part_digits[i], images, whole[(size_t)i * CLASSES], whole_digits[i]);
                }
            }
        }
    }
    printf("%s: %d images, batches of 1, 7, 13, %d and %d: %s\n", device == SERVE_DEVICE_CPU ? "cpu" : "cuda (simulator)",
           images, images - 1, images, failures ? "DIFFER" : "identical bits");
    free(x);
    free(whole);
    free(part);
    free(whole_digits);
    free(part_digits);
    serve_model_free(&m);
    return failures != 0;
}

/* For comparison (printed, not asserted): the same check on OpenBLAS, which serve_model.c does not use. */
static void openblas_invariance(const char *checkpoint, const MnistSplit *test, int images)
{
    Cnn net;
    CourseError err;
    if (checkpoint_load_network(checkpoint, images, GEMM_OPENBLAS, &net, NULL, &err) != 0) error_exit(&err);
    float *x = malloc((size_t)images * PIXELS * sizeof *x);
    normalize_pixels(test->images, x, (size_t)images * PIXELS);
    float *whole = malloc((size_t)images * CLASSES * sizeof *whole);
    memcpy(whole, cnn_forward(&net, x, images, false), (size_t)images * CLASSES * sizeof *whole);
    int differ = 0;
    for (int i = 0; i < images; i++) {
        differ += memcmp(whole + (size_t)i * CLASSES, cnn_forward(&net, x + (size_t)i * PIXELS, 1, false),
                         CLASSES * sizeof(float)) != 0;
    }
    printf("for comparison, chapter 03's forward on OpenBLAS: %d of %d logit rows differ between a batch of %d and "
           "batches of 1\n", differ, images, images);
    free(x);
    free(whole);
    cnn_destroy(&net);
}

static int reference(const char *checkpoint, const MnistSplit *test, int n)
{
    Cnn net;
    TrainState state;
    CourseError err;
    const int batch = 100;
    if (checkpoint_load_network(checkpoint, batch, GEMM_OPENBLAS, &net, &state, &err) != 0) error_exit(&err);
    /* mnist_train's own evaluation, on the images it evaluated. */
    MnistSplit evaluated = *test;
    evaluated.count = state.test_count < test->count ? state.test_count : test->count;
    size_t correct = 0;
    cnn_evaluate(&net, &evaluated, &correct, NULL);
    printf("accuracy %.17g %.17g %zu\n", state.epoch > 0 ? state.test_accuracy[state.epoch - 1] : -1.0,
           (double)correct / (double)evaluated.count, evaluated.count);
    float *x = malloc((size_t)batch * PIXELS * sizeof *x);
    float probabilities[CLASSES];
    for (int first = 0; first < n; first += batch) {
        const int rows = n - first < batch ? n - first : batch;
        normalize_pixels(test->images + (size_t)first * PIXELS, x, (size_t)rows * PIXELS);
        const float *logits = cnn_forward(&net, x, rows, false);
        for (int b = 0; b < rows; b++) {
            const float *row = logits + (size_t)b * CLASSES;
            softmax(row, probabilities, CLASSES);
            int best = 0;
            for (int k = 1; k < CLASSES; k++) best = row[k] > row[best] ? k : best;
            printf("%d %d %d", first + b, test->labels[first + b], best);
            for (int k = 0; k < CLASSES; k++) printf(" %.9g", probabilities[k]);
            printf("\n");
        }
    }
    free(x);
    cnn_destroy(&net);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s batch_invariance CHECKPOINT DATA_DIR | reference CHECKPOINT DATA_DIR N\n", argv[0]);
        return 2;
    }
    MnistSplit test;
    CourseError err;
    if (mnist_load(&test, argv[3], "t10k", &err) != 0) error_exit(&err);
    int rc;
    if (strcmp(argv[1], "batch_invariance") == 0) {
        rc = batch_invariance(argv[2], &test, SERVE_DEVICE_CPU, 64);
        rc |= batch_invariance(argv[2], &test, SERVE_DEVICE_CUDA, 5);
        openblas_invariance(argv[2], &test, 64);
    } else if (strcmp(argv[1], "reference") == 0 && argc == 5) {
        const int n = atoi(argv[4]);
        if (n < 1 || (size_t)n > test.count) die("reference: N must be in [1, %zu]", test.count);
        rc = reference(argv[2], &test, n);
    } else {
        fprintf(stderr, "%s: unknown command '%s'\n", argv[0], argv[1]);
        rc = 2;
    }
    mnist_free(&test);
    return rc;
}
