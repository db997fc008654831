/* mnist_train.c — Chapter 07's program, the course's destination: train the course's CNN (cnn.h) on MNIST, on the GPU
 * (CUDA) or on the CPU (chapter 03's code), with checkpoints that resume exactly and that PyTorch can load.
 *
 *   build/bin/mnist_train                                  # GPU if there is one, else CPU; bundled data/
 *   build/bin/mnist_train --device cuda --data data/mnist-full --epochs 2     # after data/fetch_mnist.sh
 *   build/bin/mnist_train --save run.safetensors --log run.csv                 # checkpoint every epoch, CSV log
 *   build/bin/mnist_train --resume run.safetensors --save run.safetensors --epochs 8   # on to epoch 8
 *   build/bin/mnist_train --help
 *
 *   /usr/bin/python3 chapters/07-mnist-gpu/load_checkpoint.py run.safetensors  # its accuracy, in PyTorch
 *   /usr/bin/python3 chapters/07-mnist-gpu/plot_log.py run.csv                 # run.png
 *
 * One seed, one trajectory on either device: both shuffle with the same generator (common/train_util.h's
 * loader) and draw the same Philox dropout masks (gpu_cnn.h), and start from the same initial weights
 * (chapter 03's cnn_init), so `--device cpu` and `--device cuda` differ only by float rounding.
 *
 * On the GPU the whole data set lives on the device and a step is only enqueued: the host reads the losses
 * in windows, one window behind the GPU (gpu_cnn_losses_fetch/_wait), so it never waits inside a step. A loss
 * that turns NaN or infinite is therefore noticed up to two windows late, but it is reported at the step
 * where it happened, and no checkpoint is written after it (saving first drains every pending loss).
 *
 * Checkpoints (--save FILE): written at the end of every epoch and, with --save-every N, every N steps, always
 * atomically (temp file + rename): killing the trainer at any moment leaves the previous checkpoint or the new
 * one. --resume FILE restores weights, momentum, the position in the epoch and the random streams, so the
 * resumed run computes what the uninterrupted run would have (tests/test_resume.sh checks it, SIGKILL
 * included). Hyperparameters default to the checkpoint's; a flag given explicitly overrides them (with a note).
 * The loop, the checkpoint module, the log, the summary and Ctrl-C (a last checkpoint, exit 130) are the
 * course's trainer kit (common/trainer.h, common/train_checkpoint.h), the same in all three trainers; this file
 * adds the GPU: a step enqueued on the device, its loss accounted once the window it is in comes back.
 *
 * Chapter 10 adds its flags here (--augment, --optimizer, --lr-schedule, --dropout1/2, --init-from, --freeze,
 * --layer-lr: chapters/10-train-better/train_better.h). Without them the trainer runs exactly chapter 07's
 * recipe; with them, chapter 10's step runs on the CPU path, and its hooks inside the GPU's training step.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "checkpoint.h"
#include "cnn.h"
#include "course_error.h"
#include "gemm.h"
#include "gpu_cnn.h"
#include "idx.h"
#include "testing.h"
#include "train_better.h" /* chapter 10 */
#include "train_util.h"
#include "trainer.h"

#ifndef COURSE_DATA_DIR_DEFAULT
#define COURSE_DATA_DIR_DEFAULT "data"
#endif

/* Steps per window of losses the host fetches from the GPU (see the top of this file). */
#define LOSS_WINDOW 50

typedef struct Run {
    bool cuda;
    Cnn net; /* the CPU network; on the GPU path it holds the weights for checkpoints */
    GpuCnn *gpu; /* NULL on the CPU path */
    const MnistSplit *test;
    uint64_t seed;
    float lr, momentum;
    TrainBetter better; /* chapter 10's options; better.active: its step instead of chapter 07's */
    /* GPU loss windows: steps [0, fetched) of the epoch have been fetched; fetched windows wait in tickets. */
    size_t fetched;
    bool pending[2];
    size_t pending_first[2], pending_count[2];
    int next_ticket;
} Run;

static void process_ticket(Run *r, Trainer *t, int ticket)
{
    const float *losses = gpu_cnn_losses_wait(r->gpu, ticket);
    for (size_t s = r->pending_first[ticket]; s < r->pending_first[ticket] + r->pending_count[ticket]; ++s) {
        trainer_account_loss(t, s, trainer_batch_samples(t, s), losses[s]);
    }
    r->pending[ticket] = false;
}

/* Fetch the losses of the steps enqueued since the last fetch; then process the OLDER pending window, whose
 * copy has long finished, so the host does not wait for the GPU. */
static void fetch_window(Run *r, Trainer *t)
{
    const size_t done = t->state.step_in_epoch;
    if (done <= r->fetched) {
        return;
    }
    const int ticket = r->next_ticket;
    gpu_cnn_losses_fetch(r->gpu, r->fetched, done - r->fetched, ticket);
    r->pending[ticket] = true;
    r->pending_first[ticket] = r->fetched;
    r->pending_count[ticket] = done - r->fetched;
    r->fetched = done;
    const int older = 1 - ticket;
    if (r->pending[older]) {
        process_ticket(r, t, older);
    }
    r->next_ticket = older;
}

/* Wait for every step enqueued so far, account for all their losses and bring the weights to the host (before
 * a checkpoint, at the end of an epoch). */
static void run_drain(void *context, Trainer *t)
{
    Run *r = context;
    if (!r->cuda) {
        return;
    }
    fetch_window(r, t);
    for (int k = 0; k < 2; ++k) { /* the older window first */
        const int ticket = r->next_ticket;
        if (r->pending[ticket]) {
            process_ticket(r, t, ticket);
        }
        r->next_ticket = 1 - ticket;
    }
    gpu_cnn_get_parameters(r->gpu, &r->net);
    train_better_gpu_pull(&r->better);
}

static void run_start_epoch(void *context, Trainer *t)
{
    Run *r = context;
    r->fetched = t->state.step_in_epoch;
    if (r->cuda) {
        gpu_cnn_set_order(r->gpu, t->loader.order, t->loader.split->count);
        train_better_start_epoch(&r->better, t->state.global_step - t->state.step_in_epoch,
                                 data_loader_batches(&t->loader));
    }
}

/* One step: on the GPU enqueued (the batch at the loader's position; its loss comes back with its window), on
 * the CPU computed with chapter 03's layers and the same Philox dropout masks. */
static float run_step(void *context, Trainer *t, const float *x, const int32_t *labels, size_t n)
{
    Run *r = context;
    TrainState *st = &t->state;
    if (r->cuda) {
        gpu_cnn_train_step(r->gpu, t->loader.position, (int)n, r->seed, st->global_step, st->step_in_epoch, r->lr,
                           r->momentum);
        return 0.0f; /* the loss comes back with its window: run_after_step */
    }
    if (r->better.active) { /* the loader has just handed out order[position - n, position) */
        return train_better_cpu_step(&r->better, t->loader.split, t->loader.order + t->loader.position - n, x, labels,
                                     (int)n, st->global_step);
    }
    gpu_cnn_philox_masks(&r->net, (int)n, r->seed, st->global_step);
    const float loss = cnn_forward_loss(&r->net, x, labels, (int)n, true);
    cnn_backward(&r->net, labels, (int)n);
    cnn_sgd_step(&r->net, r->lr, r->momentum);
    return loss;
}

static void run_after_step(void *context, Trainer *t)
{
    Run *r = context;
    if (r->cuda && t->state.step_in_epoch - r->fetched >= LOSS_WINDOW) {
        fetch_window(r, t);
    }
}

static double run_evaluate(void *context, size_t *correct, size_t *confusion)
{
    Run *r = context;
    return r->cuda ? gpu_cnn_evaluate(r->gpu, correct, confusion) : cnn_evaluate(&r->net, r->test, correct, confusion);
}

int main(int argc, char **argv)
{
    Run run;
    memset(&run, 0, sizeof run);
    const char *device = "auto", *data = NULL, *kernels_name = "cublas", *cuda_graph = "on";
    int threads = 2, padding = 0;
    TrainerOptions options = trainer_default_options();
    TrainBetterOptions better_options;
    train_better_default_options(&better_options);
    FlagSpec flags[6 + TRAINER_FLAGS + TRAIN_BETTER_FLAGS] = {
        {"--device", FLAG_STRING, &device, 0, 0, "auto (the GPU if there is one, else the CPU), cuda or cpu"},
        {"--data", FLAG_STRING, &data, 0, 0, "folder with the MNIST IDX files (.gz or plain); default: the bundled data/"},
        {"--padding", FLAG_INT, &padding, 0, 8, "zero padding of both 3x3 convolutions (0: fc1 9216 inputs; 1: 12544)"},
        {"--threads", FLAG_INT, &threads, 1, 1024, "CPU threads (the cpu device's convolutions)"},
        {"--kernels", FLAG_STRING, &kernels_name, 0, 0, "GPU kernels: cublas (default), ch05, tiled or direct"},
        {"--cuda-graph", FLAG_STRING, &cuda_graph, 0, 0, "on (default): a GPU step is one graph launch"},
    };
    size_t n_flags = 6;
    trainer_flags(&options, flags, &n_flags);
    train_better_flags(&better_options, &options, flags, &n_flags);
    CourseError err;
    const int parsed = flags_parse(argc, argv, flags, n_flags, "mnist_train",
                                   "Train the MNIST CNN (conv 32, conv 64, maxpool, dropout, fc 128, fc 10) on the "
                                   "GPU or the CPU, with resumable checkpoints (chapter 07).",
                                   &err);
    if (parsed == FLAGS_HELP) {
        return 0;
    }
    if (parsed != FLAGS_OK) {
        error_exit(&err);
    }
    const int kernels = gpu_cnn_kernels_parse(kernels_name);
    if (kernels < 0) {
        die("--kernels: '%s' is not one of: cublas, ch05, tiled, direct", kernels_name);
    }
    if (strcmp(cuda_graph, "on") != 0 && strcmp(cuda_graph, "off") != 0) {
        die("--cuda-graph: '%s' is not one of: on, off", cuda_graph);
    }
    char gpu_name[256], why[256];
    const bool have_gpu = gpu_cnn_device_available(gpu_name, sizeof gpu_name, why, sizeof why);
    if (strcmp(device, "auto") == 0) {
        run.cuda = have_gpu;
        if (!have_gpu) {
            printf("device: cpu (%s%s)\n", why, gpu_cnn_is_simulator() ? "; --device cuda runs the simulator, slowly" : "");
        }
    } else if (strcmp(device, "cuda") == 0) {
        if (!have_gpu && !gpu_cnn_is_simulator()) {
            die("--device cuda: %s", why);
        }
        run.cuda = true;
        if (!have_gpu) {
            printf("device: cuda on the CPU simulator (%s): correct but slow; use small --train-limit values\n", why);
        }
    } else if (strcmp(device, "cpu") != 0) {
        die("--device: '%s' is not one of: auto, cuda, cpu", device);
    }
    if (run.cuda && have_gpu) {
        printf("device: cuda (%s)\n", gpu_name);
    } else if (!run.cuda && strcmp(device, "cpu") == 0) {
        printf("device: cpu\n");
    }
    trainer_resume_settings(&options, argc, argv);
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    gemm_set_openblas_threads(1);

    MnistSplit train, test;
    data = trainer_load_data(&options, data, COURSE_DATA_DIR_DEFAULT, &train, &test);
    CnnConfig config;
    if (cnn_config_for_images(&config, padding, &train, data, &err) != 0) {
        error_exit(&err);
    }
    better_options.weight_decay_given = flag_given(argc, argv, "--weight-decay");
    if (train_better_setup(&run.better, &better_options, &options, &config, &err) != 0) {
        error_exit(&err);
    }
    if (cnn_create(&run.net, config, options.batch, GEMM_OPENBLAS, &err) != 0) {
        error_exit(&err);
    }
    cnn_init(&run.net, (uint64_t)options.seed);
    train_better_start(&run.better, &run.net, &options, train.count); /* --init-from, the optimiser's buffers */
    run.test = &test;
    run.seed = (uint64_t)options.seed;
    run.lr = (float)options.lr;
    run.momentum = (float)options.momentum;
    TrainModel model = {.net = &run, .classes = config.classes, .host_batches = !run.cuda,
                        .deferred_losses = run.cuda, .step = run_step, .after_step = run_after_step, .start_epoch = run_start_epoch,
                        .drain = run_drain, .evaluate = run_evaluate};
    cnn_checkpoint_model(&run.net, false, &model.checkpoint); /* Philox masks: no dropout stream to save */
    train_better_checkpoint(&run.better, &model.checkpoint); /* the optimiser's state, chapter 10's settings */
    Trainer *trainer = trainer_create("mnist_train", &options);
    trainer_start(trainer, &model, &train, test.count, data, run.cuda ? "cuda" : "cpu");

    printf("data: %s: %zu training and %zu test images of %zux%zu\n", data, train.count, test.count, train.rows,
           train.cols);
    printf("network: conv %d, conv %d (3x3, padding %d), maxpool 2, dropout %.2f, fc %zu->%d, dropout %.2f, fc %d->%d\n",
           config.conv1_channels, config.conv2_channels, padding, config.dropout1, run.net.features, config.hidden,
           config.dropout2, config.hidden, config.classes);
    printf("training: batch %d, lr %g, momentum %g, seed %d, ", options.batch, options.lr, options.momentum,
           options.seed);
    char graph_why[256] = "";
    bool graph = false;
    if (run.cuda) {
        run.gpu = gpu_cnn_create(&run.net, options.batch, (GpuCnnKernels)kernels, &err);
        if (run.gpu == NULL) {
            error_exit(&err);
        }
        graph = gpu_cnn_set_graph(run.gpu, strcmp(cuda_graph, "on") == 0, graph_why, sizeof graph_why);
        printf("GPU kernels %s, CUDA Graph %s%s%s\n", kernels_name, graph ? "on" : "off", graph_why[0] ? ": " : "",
               graph_why);
        gpu_cnn_upload_data(run.gpu, &train, &test);
        gpu_cnn_set_parameters(run.gpu, &run.net);
        if (run.better.active) {
            train_better_attach_gpu(&run.better, run.gpu);
            train_better_gpu_push(&run.better); /* Adam's second moment after a --resume */
        }
    } else {
        printf("%d CPU threads, OpenBLAS\n", threads);
    }
    train_better_print(&run.better);

    const int K = config.classes;
    size_t *confusion = xcalloc((size_t)K * K, sizeof *confusion); /* (true, predicted) */
    const bool trained = trainer->state.epoch < options.epochs;
    trainer_run(trainer, &model, confusion);
    if (trained) {
        if (graph) {
            printf("CUDA Graph: %zu nodes per training step, one launch\n", gpu_cnn_graph_nodes(run.gpu));
        }
        JsonField extra[7 + TRAIN_BETTER_JSON_FIELDS] = {
            json_string("device", run.cuda ? "cuda" : "cpu"),
            json_integer("padding", padding),
            json_integer("fc1_inputs", (long long)run.net.features),
            json_integer("threads", threads),
            json_string("kernels", run.cuda ? kernels_name : "openblas"),
            json_string("cuda_graph", !run.cuda ? "n/a" : graph ? "on" : "off"),
            json_integer("cuda_graph_nodes", graph ? (long long)gpu_cnn_graph_nodes(run.gpu) : 0),
        };
        size_t n_extra = 7;
        train_better_json_fields(&run.better, extra, &n_extra);
        trainer_write_summary(trainer, data, extra, n_extra);
    }
    free(confusion);
    trainer_destroy(trainer);
    train_better_destroy(&run.better);
    gpu_cnn_destroy(run.gpu);
    cnn_destroy(&run.net);
    mnist_free(&train);
    mnist_free(&test);
    return 0;
}
