/* mlp_train.c — Chapter 02's program: train a 784-128-10 ReLU network on MNIST with SGD + momentum, on the CPU.
 *
 *   build/bin/mlp_train                                   # 4 epochs on the bundled data/ (10,000 digits)
 *   build/bin/mlp_train --epochs 4 --seed 1 --summary-json run.json
 *   build/bin/mlp_train --data /usr/share/datasets/fashion-mnist --epochs 10
 *   build/bin/mlp_train --help
 *
 * Every epoch: a progress bar (running loss, samples/s) on stderr, then the test-set loss and accuracy on
 * stdout. At the end: the confusion matrix and, with --summary-json, a machine-readable summary written
 * atomically. A loss that becomes NaN or infinite stops training with exit status 1 (try --lr 1000).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "course_error.h"
#include "idx.h"
#include "mlp.h"
#include "testing.h"
#include "timer.h"
#include "train_util.h"

#ifndef COURSE_DATA_DIR_DEFAULT
#define COURSE_DATA_DIR_DEFAULT "data"
#endif

#define MAX_EPOCHS 1000
#define CLASSES 10

int main(int argc, char **argv)
{
    const char *data_dir = NULL;
    const char *summary_path = NULL;
    int epochs = 4, batch = 64, hidden = 128, seed = 1;
    double lr = 0.01, momentum = 0.9, weight_decay = 0.0;
    FlagSpec flags[] = {
        {"--data", FLAG_STRING, &data_dir, 0, 0, "folder with the MNIST IDX files (.gz or plain); default: the bundled data/"},
        {"--epochs", FLAG_INT, &epochs, 1, MAX_EPOCHS, "passes over the training set"},
        {"--batch", FLAG_INT, &batch, 1, 65536, "samples per SGD step (the last batch of an epoch may be smaller)"},
        {"--lr", FLAG_DOUBLE, &lr, 0, 1e9, "learning rate"},
        {"--momentum", FLAG_DOUBLE, &momentum, 0, 1, "SGD momentum mu in v = mu v + g"},
        {"--weight-decay", FLAG_DOUBLE, &weight_decay, 0, 1e3, "L2 weight decay lambda added to every gradient"},
        {"--hidden", FLAG_INT, &hidden, 1, 100000, "hidden units"},
        {"--seed", FLAG_INT, &seed, 0, 2147483647, "seed for the initial weights and the shuffling"},
        {"--summary-json", FLAG_STRING, &summary_path, 0, 0, "write a JSON summary of the run to this file"},
    };
    CourseError err;
    int parsed = flags_parse(argc, argv, flags, COUNT_OF(flags), "mlp_train",
                             "Train a 784-H-10 ReLU MLP on MNIST with SGD + momentum (chapter 02).", &err);
    if (parsed == FLAGS_HELP) {
        return 0;
    }
    if (parsed != FLAGS_OK) {
        error_exit(&err);
    }
    if (data_dir == NULL) {
        data_dir = train_default_data_dir(COURSE_DATA_DIR_DEFAULT);
    }

    MnistSplit train, test;
    if (train_load_mnist(data_dir, &train, &test, &err) != 0) {
        error_exit(&err);
    }
    size_t inputs = train.rows * train.cols;
    printf("data: %s: %zu training and %zu test images of %zux%zu\n", data_dir, train.count, test.count, train.rows,
           train.cols);
    printf("network: %zu-%d-%d ReLU, batch %d, lr %g, momentum %g, weight decay %g, seed %d\n", inputs, hidden,
           CLASSES, batch, lr, momentum, weight_decay, seed);

    Mlp net;
    mlp_create(&net, inputs, (size_t)hidden, CLASSES, (size_t)batch);
    mlp_init(&net, (uint64_t)seed);
    DataLoader loader;
    data_loader_init(&loader, &train, (size_t)batch, true, (uint64_t)seed);
    float *x = xmalloc((size_t)batch * inputs * sizeof *x); /* (batch, inputs) */
    int32_t *labels = xmalloc((size_t)batch * sizeof *labels); /* (batch) */
    size_t confusion[CLASSES * CLASSES]; /* (true, predicted) */
    TrainHistory history;
    train_history_init(&history, epochs);

    for (int epoch = 1; epoch <= epochs; epoch++) {
        Progress bar;
        progress_start(&bar, epoch, epochs, train.count);
        data_loader_start_epoch(&loader);
        double t0 = timer_seconds();
        size_t n;
        while ((n = data_loader_next(&loader, x, labels)) > 0) {
            float loss = mlp_train_step(&net, x, labels, n, (float)lr, (float)momentum, (float)weight_decay);
            if (loss_guard(loss, epoch, loader.batch_index, &err) != 0) {
                progress_finish(&bar);
                fprintf(stderr, "error: %s\n", err.message);
                fprintf(stderr, "(no summary written)\n");
                return 1; /* the OS frees the buffers */
            }
            progress_update(&bar, n, loss);
            history.trained_samples += n;
            history.steps++;
        }
        history.train_seconds += timer_seconds() - t0;
        progress_finish(&bar);

        size_t correct = 0;
        double test_loss = mlp_evaluate(&net, &test, &correct, confusion);
        if (train_history_epoch(&history, epoch, &bar, test_loss, correct, test.count, &err) != 0) {
            error_exit(&err);
        }
    }
    train_history_print_final(&history, confusion, CLASSES);

    if (summary_path != NULL) {
        JsonField fields[10 + TRAIN_HISTORY_JSON_FIELDS] = {
            json_string("program", "mlp_train"),
            json_string("data", data_dir),
            json_integer("batch", batch),
            json_integer("hidden", hidden),
            json_number("lr", lr),
            json_number("momentum", momentum),
            json_number("weight_decay", weight_decay),
            json_integer("seed", seed),
            json_integer("train_samples", (long long)train.count),
            json_integer("test_samples", (long long)test.count),
        };
        size_t n_fields = 10;
        train_history_json_fields(&history, fields, &n_fields);
        if (json_summary_write(summary_path, fields, n_fields, &err) != 0) {
            error_exit(&err);
        }
        printf("summary: %s\n", summary_path);
    }

    train_history_free(&history);
    free(x);
    free(labels);
    data_loader_free(&loader);
    mlp_destroy(&net);
    mnist_free(&train);
    mnist_free(&test);
    return 0;
}
