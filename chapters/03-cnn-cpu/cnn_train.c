/* cnn_train.c — Chapter 03's program: train the course's CNN (cnn.h) on MNIST with SGD + momentum, on the CPU.
 *
 *   build/bin/cnn_train                                   # 4 epochs on the bundled data/ (10,000 digits)
 *   build/bin/cnn_train --epochs 4 --seed 1 --threads 2 --summary-json run.json
 *   build/bin/cnn_train --padding 1                       # the source article's padding: fc1 gets 12544 inputs
 *   build/bin/cnn_train --data /usr/share/datasets/fashion-mnist --epochs 2
 *   build/bin/cnn_train --gemm own                        # this chapter's GEMM instead of OpenBLAS
 *   build/bin/cnn_train --help
 *
 * Every epoch: a progress bar (running loss, samples/s) on stderr, then the test-set loss and accuracy on
 * stdout. At the end: the confusion matrix and, with --summary-json, a machine-readable summary written
 * atomically. A loss that becomes NaN or infinite stops training with exit status 1 (try --lr 100).
 * Threads: the convolutions spread the images of a batch over --threads OpenMP threads; OpenBLAS itself is
 * kept at one thread per call so the two never compete for the cores.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cnn.h"
#include "course_error.h"
#include "gemm.h"
#include "idx.h"
#include "testing.h"
#include "timer.h"
#include "train_util.h"

#ifndef COURSE_DATA_DIR_DEFAULT
#define COURSE_DATA_DIR_DEFAULT "data"
#endif

#define MAX_EPOCHS 1000

int main(int argc, char **argv)
{
    const char *data_dir = NULL;
    const char *summary_path = NULL;
    const char *gemm_name = "openblas";
    int epochs = 4, batch = 64, seed = 1, threads = 2, padding = 0;
    double lr = 0.01, momentum = 0.9;
    FlagSpec flags[] = {
        {"--data", FLAG_STRING, &data_dir, 0, 0, "folder with the MNIST IDX files (.gz or plain); default: the bundled data/"},
        {"--epochs", FLAG_INT, &epochs, 1, MAX_EPOCHS, "passes over the training set"},
        {"--batch", FLAG_INT, &batch, 1, 65536, "samples per SGD step (the last batch of an epoch may be smaller)"},
        {"--lr", FLAG_DOUBLE, &lr, 0, 1e9, "learning rate"},
        {"--momentum", FLAG_DOUBLE, &momentum, 0, 1, "SGD momentum mu in v = mu v + g"},
        {"--seed", FLAG_INT, &seed, 0, 2147483647, "seed for the initial weights, the shuffling and dropout"},
        {"--threads", FLAG_INT, &threads, 1, 1024, "CPU threads for the convolutions (OpenMP)"},
        {"--padding", FLAG_INT, &padding, 0, 8, "zero padding of both 3x3 convolutions (0: fc1 9216 inputs; 1: 12544)"},
        {"--gemm", FLAG_STRING, &gemm_name, 0, 0, "matrix multiply: openblas (default) or own (this chapter's)"},
        {"--summary-json", FLAG_STRING, &summary_path, 0, 0, "write a JSON summary of the run to this file"},
    };
    CourseError err;
    int parsed = flags_parse(argc, argv, flags, COUNT_OF(flags), "cnn_train",
                             "Train the MNIST CNN (conv 32, conv 64, maxpool, dropout, fc 128, fc 10) on the CPU (chapter 03).",
                             &err);
    if (parsed == FLAGS_HELP) {
        return 0;
    }
    if (parsed != FLAGS_OK) {
        error_exit(&err);
    }
    GemmBackend backend;
    if (strcmp(gemm_name, "openblas") == 0) {
        backend = GEMM_OPENBLAS;
    } else if (strcmp(gemm_name, "own") == 0) {
        backend = GEMM_OWN;
    } else {
        die("--gemm: '%s' is not one of: openblas, own", gemm_name);
    }
    if (data_dir == NULL) {
        data_dir = train_default_data_dir(COURSE_DATA_DIR_DEFAULT);
    }
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    gemm_set_openblas_threads(1);

    MnistSplit train, test;
    if (train_load_mnist(data_dir, &train, &test, &err) != 0) {
        error_exit(&err);
    }
    if (train.rows != train.cols || test.rows != train.rows || test.cols != train.cols) {
        die("%s: the CNN needs square images of one size; found %zux%zu training and %zux%zu test images", data_dir,
            train.rows, train.cols, test.rows, test.cols);
    }
    CnnConfig config = cnn_default_config(padding);
    config.image_size = (int)train.rows;
    Cnn net;
    if (cnn_create(&net, config, batch, backend, &err) != 0) {
        error_exit(&err);
    }
    const int K = config.classes;
    printf("data: %s: %zu training and %zu test images of %zux%zu\n", data_dir, train.count, test.count, train.rows,
           train.cols);
    printf("network: conv %d, conv %d (3x3, padding %d), maxpool 2, dropout %.2f, fc %zu->%d, dropout %.2f, fc %d->%d\n",
           config.conv1_channels, config.conv2_channels, padding, config.dropout1, net.features, config.hidden,
           config.dropout2, config.hidden, K);
    printf("training: batch %d, lr %g, momentum %g, seed %d, %d threads, GEMM %s\n", batch, lr, momentum, seed, threads,
           gemm_backend_name(backend));

    cnn_init(&net, (uint64_t)seed);
    DataLoader loader;
    data_loader_init(&loader, &train, (size_t)batch, true, (uint64_t)seed);
    float *x = xmalloc((size_t)batch * loader.sample_size * sizeof *x); /* (batch, 1, rows, cols) */
    int32_t *labels = xmalloc((size_t)batch * sizeof *labels); /* (batch) */
    size_t *confusion = xcalloc((size_t)K * K, sizeof *confusion); /* (true, predicted) */
    TrainHistory history;
    train_history_init(&history, epochs);

    for (int epoch = 1; epoch <= epochs; epoch++) {
        Progress bar;
        progress_start(&bar, epoch, epochs, train.count);
        data_loader_start_epoch(&loader);
        double t0 = timer_seconds();
        size_t n;
        while ((n = data_loader_next(&loader, x, labels)) > 0) {
            cnn_draw_dropout_masks(&net, (int)n);
            float loss = cnn_forward_loss(&net, x, labels, (int)n, true);
            if (loss_guard(loss, epoch, loader.batch_index, &err) != 0) {
                progress_finish(&bar);
                fprintf(stderr, "error: %s\n", err.message);
                fprintf(stderr, "(no summary written)\n");
                return 1; /* the OS frees the buffers */
            }
            cnn_backward(&net, labels, (int)n);
            cnn_sgd_step(&net, (float)lr, (float)momentum);
            progress_update(&bar, n, loss);
            history.trained_samples += n;
            history.steps++;
        }
        history.train_seconds += timer_seconds() - t0;
        progress_finish(&bar);

        size_t correct = 0;
        double test_loss = cnn_evaluate(&net, &test, &correct, confusion);
        if (train_history_epoch(&history, epoch, &bar, test_loss, correct, test.count, &err) != 0) {
            error_exit(&err);
        }
    }
    train_history_print_final(&history, confusion, K);

    if (summary_path != NULL) {
        JsonField fields[12 + TRAIN_HISTORY_JSON_FIELDS] = {
            json_string("program", "cnn_train"),
            json_string("data", data_dir),
            json_integer("batch", batch),
            json_integer("padding", padding),
            json_integer("fc1_inputs", (long long)net.features),
            json_number("lr", lr),
            json_number("momentum", momentum),
            json_integer("seed", seed),
            json_integer("threads", threads),
            json_string("gemm", gemm_backend_name(backend)),
            json_integer("train_samples", (long long)train.count),
            json_integer("test_samples", (long long)test.count),
        };
        size_t n_fields = 12;
        train_history_json_fields(&history, fields, &n_fields);
        if (json_summary_write(summary_path, fields, n_fields, &err) != 0) {
            error_exit(&err);
        }
        printf("summary: %s\n", summary_path);
    }

    train_history_free(&history);
    free(confusion);
    free(x);
    free(labels);
    data_loader_free(&loader);
    cnn_destroy(&net);
    mnist_free(&train);
    mnist_free(&test);
    return 0;
}
