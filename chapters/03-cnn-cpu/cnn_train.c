/* cnn_train.c — Chapter 03's program: train the course's CNN (cnn.h) on MNIST with SGD + momentum, on the CPU.
 *
 *   build/bin/cnn_train                                   # 4 epochs on the bundled data/ (10,000 digits)
 *   build/bin/cnn_train --epochs 4 --seed 1 --threads 2 --summary-json run.json
 *   build/bin/cnn_train --save run.safetensors --log run.csv          # checkpoint every epoch, CSV log
 *   build/bin/cnn_train --resume run.safetensors --save run.safetensors --epochs 8   # on to epoch 8
 *   build/bin/cnn_train --padding 1                       # the source article's padding: fc1 gets 12544 inputs
 *   build/bin/cnn_train --data /usr/share/datasets/fashion-mnist --epochs 2
 *   build/bin/cnn_train --gemm own                        # this chapter's GEMM instead of OpenBLAS
 *   build/bin/cnn_train --help
 *
 * Every epoch: a progress bar (running loss, samples/s) on stderr, then the test-set loss and accuracy on
 * stdout. At the end: the confusion matrix and, with --summary-json, a machine-readable summary written
 * atomically. A loss that becomes NaN or infinite stops training with exit status 1 (try --lr 100).
 * The loop, the checkpoints (--save, --resume: an exact continuation, the dropout stream included), the log and
 * Ctrl-C (a last checkpoint, exit 130) are the course's trainer kit, common/trainer.h, as in all three trainers.
 * Threads: the convolutions spread the images of a batch over --threads OpenMP threads; OpenBLAS itself is
 * kept at one thread per call so the two never compete for the cores.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cnn.h"
#include "cnn_checkpoint.h"
#include "course_error.h"
#include "gemm.h"
#include "idx.h"
#include "testing.h"
#include "train_util.h"
#include "trainer.h"

#ifndef COURSE_DATA_DIR_DEFAULT
#define COURSE_DATA_DIR_DEFAULT "data"
#endif

typedef struct CnnRun {
    Cnn net;
    const MnistSplit *test;
    float lr, momentum;
} CnnRun;

static float cnn_run_step(void *context, Trainer *t, const float *x, const int32_t *labels, size_t n)
{
    (void)t;
    CnnRun *r = context;
    cnn_draw_dropout_masks(&r->net, (int)n);
    const float loss = cnn_forward_loss(&r->net, x, labels, (int)n, true);
    cnn_backward(&r->net, labels, (int)n);
    cnn_sgd_step(&r->net, r->lr, r->momentum);
    return loss;
}

static double cnn_run_evaluate(void *context, size_t *correct, size_t *confusion)
{
    CnnRun *r = context;
    return cnn_evaluate(&r->net, r->test, correct, confusion);
}

int main(int argc, char **argv)
{
    const char *data_dir = NULL;
    const char *gemm_name = "openblas";
    int threads = 2, padding = 0;
    TrainerOptions options = trainer_default_options();
    FlagSpec flags[4 + TRAINER_FLAGS] = {
        {"--data", FLAG_STRING, &data_dir, 0, 0, "folder with the MNIST IDX files (.gz or plain); default: the bundled data/"},
        {"--threads", FLAG_INT, &threads, 1, 1024, "CPU threads for the convolutions (OpenMP)"},
        {"--padding", FLAG_INT, &padding, 0, 8, "zero padding of both 3x3 convolutions (0: fc1 9216 inputs; 1: 12544)"},
        {"--gemm", FLAG_STRING, &gemm_name, 0, 0, "matrix multiply: openblas (default) or own (this chapter's)"},
    };
    size_t n_flags = 4;
    trainer_flags(&options, flags, &n_flags);
    CourseError err;
    int parsed = flags_parse(argc, argv, flags, n_flags, "cnn_train",
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
    trainer_resume_settings(&options, argc, argv);
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    gemm_set_openblas_threads(1);

    MnistSplit train, test;
    data_dir = trainer_load_data(&options, data_dir, COURSE_DATA_DIR_DEFAULT, &train, &test);
    CnnConfig config;
    if (cnn_config_for_images(&config, padding, &train, data_dir, &err) != 0) {
        error_exit(&err);
    }
    CnnRun run = {.test = &test, .lr = (float)options.lr, .momentum = (float)options.momentum};
    if (cnn_create(&run.net, config, options.batch, backend, &err) != 0) {
        error_exit(&err);
    }
    const int K = config.classes;
    printf("data: %s: %zu training and %zu test images of %zux%zu\n", data_dir, train.count, test.count, train.rows,
           train.cols);
    printf("network: conv %d, conv %d (3x3, padding %d), maxpool 2, dropout %.2f, fc %zu->%d, dropout %.2f, fc %d->%d\n",
           config.conv1_channels, config.conv2_channels, padding, config.dropout1, run.net.features, config.hidden,
           config.dropout2, config.hidden, K);
    printf("training: batch %d, lr %g, momentum %g, seed %d, %d threads, GEMM %s\n", options.batch, options.lr,
           options.momentum, options.seed, threads, gemm_backend_name(backend));

    cnn_init(&run.net, (uint64_t)options.seed);
    TrainModel model = {.net = &run, .classes = K, .host_batches = true, .step = cnn_run_step,
                        .evaluate = cnn_run_evaluate};
    cnn_checkpoint_model(&run.net, true, &model.checkpoint); /* the dropout stream is state too */
    size_t *confusion = xcalloc((size_t)K * K, sizeof *confusion); /* (true, predicted) */

    Trainer *trainer = trainer_create("cnn_train", &options);
    trainer_start(trainer, &model, &train, test.count, data_dir, "cpu");
    trainer_run(trainer, &model, confusion);
    const JsonField extra[] = {
        json_integer("padding", padding),
        json_integer("fc1_inputs", (long long)run.net.features),
        json_integer("threads", threads),
        json_string("gemm", gemm_backend_name(backend)),
    };
    trainer_write_summary(trainer, data_dir, extra, COUNT_OF(extra));

    trainer_destroy(trainer);
    free(confusion);
    cnn_destroy(&run.net);
    mnist_free(&train);
    mnist_free(&test);
    return 0;
}
