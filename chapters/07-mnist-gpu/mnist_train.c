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
 */
#include <math.h>
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
#include "timer.h"
#include "train_util.h"

#ifndef COURSE_DATA_DIR_DEFAULT
#define COURSE_DATA_DIR_DEFAULT "data"
#endif

/* Steps per window of losses the host fetches from the GPU (see the top of this file). */
#define LOSS_WINDOW 50

typedef struct Options {
    const char *device, *data, *kernels, *cuda_graph, *save, *resume, *log, *summary;
    int epochs, batch, seed, threads, padding, save_every, log_every, train_limit, test_limit;
    double lr, momentum;
} Options;

/* Was `name` given on the command line (as "--name value" or "--name=value")? */
static bool flag_given(int argc, char **argv, const char *name)
{
    const size_t length = strlen(name);
    for (int i = 1; i < argc; ++i) {
        if (strncmp(argv[i], name, length) == 0 && (argv[i][length] == '\0' || argv[i][length] == '=')) {
            return true;
        }
    }
    return false;
}

/* ---- The CSV training log ---------------------------------------------------------------------------------- */

typedef struct TrainLog {
    FILE *file; /* NULL: no --log */
    int every; /* a "train" row every this many steps */
    double loss_sum; /* losses since the last train row */
    size_t losses;
} TrainLog;

static void log_open(TrainLog *log, const char *path, int every)
{
    memset(log, 0, sizeof *log);
    log->every = every;
    if (path == NULL) {
        return;
    }
    /* Appended, so that a resumed run continues the same log (readers keep the last row of a step). */
    log->file = fopen(path, "a");
    if (log->file == NULL) {
        die("%s: cannot open the training log for writing", path);
    }
    if (ftell(log->file) == 0) {
        fprintf(log->file, "kind,epoch,step,samples,train_loss,test_loss,test_accuracy,seconds\n");
    }
}

static void log_step(TrainLog *log, int epoch, uint64_t step, size_t samples, double loss, double seconds)
{
    if (log->file == NULL) {
        return;
    }
    log->loss_sum += loss;
    log->losses++;
    if (step % (uint64_t)log->every == 0) {
        fprintf(log->file, "train,%d,%llu,%zu,%.6f,,,%.3f\n", epoch, (unsigned long long)step, samples,
                log->loss_sum / (double)log->losses, seconds);
        fflush(log->file);
        log->loss_sum = 0.0;
        log->losses = 0;
    }
}

static void log_epoch(TrainLog *log, int epoch, uint64_t step, size_t samples, double train_loss, double test_loss,
                      double accuracy, double seconds)
{
    if (log->file != NULL) {
        fprintf(log->file, "test,%d,%llu,%zu,%.6f,%.6f,%.6f,%.3f\n", epoch, (unsigned long long)step, samples,
                train_loss, test_loss, accuracy, seconds);
        fflush(log->file);
    }
}

/* ---- The run ----------------------------------------------------------------------------------------------- */

typedef struct Run {
    Options opt;
    bool cuda;
    Cnn net; /* the CPU network; on the GPU path it holds the weights for checkpoints */
    GpuCnn *gpu; /* NULL on the CPU path */
    bool graph; /* the GPU step runs as a CUDA Graph */
    MnistSplit train, test;
    DataLoader loader;
    TrainState state;
    TrainHistory history;
    TrainLog log;
    Progress bar;
    double epoch_start; /* timer_seconds() at the start of the epoch's training */
    double seconds_before; /* training seconds of earlier epochs */
    /* GPU loss windows: slots [0, processed) are accounted for; fetched windows wait in tickets. */
    size_t processed, fetched;
    bool pending[2];
    size_t pending_first[2], pending_count[2];
    int next_ticket;
} Run;

static double run_seconds(const Run *r) { return r->seconds_before + (timer_seconds() - r->epoch_start); }

/* Account for the loss of step `slot` of the current epoch (n samples): progress bar, NaN guard, log. */
static void account_loss(Run *r, int epoch, size_t slot, size_t n, float loss)
{
    CourseError err;
    if (loss_guard(loss, epoch, slot + 1, &err) != 0) {
        progress_finish(&r->bar);
        fprintf(stderr, "error: %s\n", err.message);
        fprintf(stderr, "(no checkpoint or summary written after this point)\n");
        exit(1);
    }
    progress_update(&r->bar, n, loss);
    r->state.epoch_loss_sum += (double)loss * (double)n;
    r->state.epoch_samples += n;
    r->state.trained_samples += n;
    const uint64_t step = r->state.global_step - (uint64_t)(r->state.step_in_epoch - slot) + 1;
    log_step(&r->log, epoch, step, r->state.trained_samples, loss, run_seconds(r));
}

static size_t slot_samples(const Run *r, size_t slot)
{
    const size_t first = slot * (size_t)r->opt.batch;
    const size_t left = r->train.count - first;
    return left < (size_t)r->opt.batch ? left : (size_t)r->opt.batch;
}

static void process_ticket(Run *r, int epoch, int ticket)
{
    const float *losses = gpu_cnn_losses_wait(r->gpu, ticket);
    for (size_t s = r->pending_first[ticket]; s < r->pending_first[ticket] + r->pending_count[ticket]; ++s) {
        account_loss(r, epoch, s, slot_samples(r, s), losses[s]);
    }
    r->processed = r->pending_first[ticket] + r->pending_count[ticket];
    r->pending[ticket] = false;
}

/* Fetch the losses of the steps enqueued since the last fetch; then process the OLDER pending window, whose
 * copy has long finished, so the host does not wait for the GPU. */
static void fetch_window(Run *r, int epoch)
{
    const size_t done = r->state.step_in_epoch;
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
        process_ticket(r, epoch, older);
    }
    r->next_ticket = older;
}

/* Wait for every step enqueued so far and account for all their losses (before a checkpoint, at epoch end). */
static void drain_losses(Run *r, int epoch)
{
    if (!r->cuda) {
        return;
    }
    fetch_window(r, epoch);
    for (int k = 0; k < 2; ++k) { /* the older window first */
        const int ticket = r->next_ticket;
        if (r->pending[ticket]) {
            process_ticket(r, epoch, ticket);
        }
        r->next_ticket = 1 - ticket;
    }
}

static void save_checkpoint(Run *r, int epoch)
{
    drain_losses(r, epoch);
    if (r->cuda) {
        gpu_cnn_get_parameters(r->gpu, &r->net);
    }
    /* At an epoch end the state is complete; in the middle of one, it still holds the training time of the
     * finished epochs, so the copy saved gets the time so far. */
    static TrainState saved; /* static: 24 KB, too big for some threads' stacks */
    saved = r->state;
    if (saved.step_in_epoch > 0) {
        saved.train_seconds = run_seconds(r);
    }
    CourseError err;
    if (checkpoint_save(r->opt.save, &r->net, &saved, &err) != 0) {
        error_exit(&err);
    }
}

/* One epoch of training (from the state's position in it). */
static void train_epoch(Run *r, int epoch)
{
    TrainState *st = &r->state;
    const size_t skip = st->step_in_epoch; /* batches already done (a resumed epoch) */
    data_loader_start_epoch(&r->loader); /* the shuffle, from the state's loader_rng */
    r->loader.position = skip * (size_t)r->opt.batch;
    r->loader.batch_index = skip;
    progress_start(&r->bar, epoch, r->opt.epochs, r->train.count);
    r->bar.done = st->epoch_samples;
    r->bar.loss_sum = st->epoch_loss_sum;
    r->processed = r->fetched = skip;
    r->epoch_start = timer_seconds();
    if (r->cuda) {
        gpu_cnn_set_order(r->gpu, r->loader.order, r->train.count);
    }
    const size_t sample_size = r->loader.sample_size;
    float *x = r->cuda ? NULL : xmalloc((size_t)r->opt.batch * sample_size * sizeof *x); /* (B, 1, S, S) */
    int32_t *labels = r->cuda ? NULL : xmalloc((size_t)r->opt.batch * sizeof *labels); /* (B) */
    const uint64_t seed = (uint64_t)r->opt.seed;
    while (r->loader.position < r->train.count) {
        const size_t slot = st->step_in_epoch;
        const size_t n = slot_samples(r, slot);
        if (r->cuda) {
            gpu_cnn_train_step(r->gpu, r->loader.position, (int)n, seed, st->global_step, slot, (float)r->opt.lr,
                               (float)r->opt.momentum);
            r->loader.position += n;
            r->loader.batch_index++;
            st->global_step++;
            st->step_in_epoch++;
            if (st->step_in_epoch - r->fetched >= LOSS_WINDOW) {
                fetch_window(r, epoch);
            }
        } else {
            data_loader_next(&r->loader, x, labels);
            gpu_cnn_philox_masks(&r->net, (int)n, seed, st->global_step);
            const float loss = cnn_forward_loss(&r->net, x, labels, (int)n, true);
            cnn_backward(&r->net, labels, (int)n);
            cnn_sgd_step(&r->net, (float)r->opt.lr, (float)r->opt.momentum);
            st->global_step++;
            st->step_in_epoch++;
            account_loss(r, epoch, slot, n, loss);
            r->processed = st->step_in_epoch;
        }
        if (r->opt.save != NULL && r->opt.save_every > 0 && st->global_step % (uint64_t)r->opt.save_every == 0 &&
            r->loader.position < r->train.count) {
            save_checkpoint(r, epoch);
        }
    }
    drain_losses(r, epoch); /* waits for the GPU: the epoch's time below includes all its work */
    free(x);
    free(labels);
}

static void run_training(Run *r)
{
    TrainState *st = &r->state;
    TrainHistory *h = &r->history;
    const int K = r->net.config.classes;
    size_t *confusion = xcalloc((size_t)K * K, sizeof *confusion); /* (true, predicted) */
    double *epoch_seconds = xcalloc((size_t)r->opt.epochs, sizeof *epoch_seconds);
    for (int epoch = st->epoch + 1; epoch <= r->opt.epochs; ++epoch) {
        r->seconds_before = st->train_seconds;
        train_epoch(r, epoch);
        const double seconds = timer_seconds() - r->epoch_start;
        epoch_seconds[epoch - 1] = seconds;
        progress_finish(&r->bar);

        size_t correct = 0;
        const double test_loss = r->cuda ? gpu_cnn_evaluate(r->gpu, &correct, confusion)
                                         : cnn_evaluate(&r->net, &r->test, &correct, confusion);
        h->train_seconds = st->train_seconds + seconds;
        h->trained_samples = st->trained_samples;
        h->steps = (size_t)st->global_step;
        CourseError err;
        if (train_history_epoch(h, epoch, &r->bar, test_loss, correct, r->test.count, &err) != 0) {
            error_exit(&err);
        }
        st->epoch = epoch;
        st->step_in_epoch = 0;
        r->processed = r->fetched = 0;
        st->epoch_loss_sum = 0.0;
        st->epoch_samples = 0;
        st->loader_rng = r->loader.rng; /* the next epoch's shuffle starts from here */
        st->test_accuracy[epoch - 1] = h->test_accuracy[epoch - 1];
        st->test_loss[epoch - 1] = h->test_loss[epoch - 1];
        st->train_loss[epoch - 1] = h->train_loss[epoch - 1];
        st->train_seconds = h->train_seconds;
        log_epoch(&r->log, epoch, st->global_step, st->trained_samples, h->train_loss[epoch - 1], test_loss,
                  h->test_accuracy[epoch - 1], st->train_seconds);
        if (r->opt.save != NULL) {
            save_checkpoint(r, epoch);
            printf("checkpoint: %s (epoch %d)\n", r->opt.save, epoch);
        }
    }
    train_history_print_final(h, confusion, K);
    free(confusion);

    if (r->opt.summary != NULL) {
        JsonField fields[20 + TRAIN_HISTORY_JSON_FIELDS] = {
            json_string("program", "mnist_train"),
            json_string("device", r->cuda ? "cuda" : "cpu"),
            json_string("data", r->opt.data),
            json_integer("batch", r->opt.batch),
            json_integer("padding", r->opt.padding),
            json_integer("fc1_inputs", (long long)r->net.features),
            json_number("lr", r->opt.lr),
            json_number("momentum", r->opt.momentum),
            json_integer("seed", r->opt.seed),
            json_integer("threads", r->opt.threads),
            json_string("kernels", r->cuda ? r->opt.kernels : "openblas"),
            json_integer("train_samples", (long long)r->train.count),
            json_integer("test_samples", (long long)r->test.count),
            json_number_array("epoch_train_seconds", epoch_seconds, (size_t)r->opt.epochs),
            json_string("cuda_graph", !r->cuda ? "n/a" : r->graph ? "on" : "off"),
            json_integer("cuda_graph_nodes", r->graph ? (long long)gpu_cnn_graph_nodes(r->gpu) : 0),
        };
        size_t n_fields = 16;
        train_history_json_fields(h, fields, &n_fields);
        CourseError err;
        if (json_summary_write(r->opt.summary, fields, n_fields, &err) != 0) {
            error_exit(&err);
        }
        printf("summary: %s\n", r->opt.summary);
    }
    free(epoch_seconds);
}

/* --resume: load the checkpoint into the network and the state; settings not given on the command line are
 * the checkpoint's. */
static void resume(Run *r, int argc, char **argv)
{
    CourseError err;
    TrainState *st = &r->state;
    if (checkpoint_load(r->opt.resume, &r->net, st, &err) != 0) {
        error_exit(&err);
    }
    struct {
        const char *flag;
        double *option_double;
        int *option_int;
        double saved;
    } settings[] = {
        {"--seed", NULL, &r->opt.seed, st->seed},
        {"--batch", NULL, &r->opt.batch, st->batch},
        {"--lr", &r->opt.lr, NULL, st->lr},
        {"--momentum", &r->opt.momentum, NULL, st->momentum},
    };
    for (size_t i = 0; i < COUNT_OF(settings); ++i) {
        const double current = settings[i].option_double ? *settings[i].option_double : *settings[i].option_int;
        if (!flag_given(argc, argv, settings[i].flag)) {
            if (settings[i].option_double) {
                *settings[i].option_double = settings[i].saved;
            } else {
                *settings[i].option_int = (int)settings[i].saved;
            }
        } else if (current != settings[i].saved) {
            if (strcmp(settings[i].flag, "--batch") == 0 && st->step_in_epoch > 0) {
                die("%s: saved in the middle of an epoch with batch %d; resume it with that batch (or from an "
                    "epoch-end checkpoint)",
                    r->opt.resume, st->batch);
            }
            printf("note: %s %g differs from the checkpoint's %g: the resumed run is not an exact continuation\n",
                   settings[i].flag, current, settings[i].saved);
        }
    }
    if (st->train_count != r->train.count) {
        if (st->step_in_epoch > 0) {
            die("%s: saved in the middle of an epoch over %zu training samples, but this run has %zu (another "
                "--data or --train-limit?)",
                r->opt.resume, st->train_count, r->train.count);
        }
        printf("note: the checkpoint was trained on %zu samples per epoch (%s); this run has %zu\n", st->train_count,
               st->data, r->train.count);
    }
    if (st->epoch == 0 && st->step_in_epoch == 0) {
        /* A run that has not started (e.g. PyTorch's initial weights): its first shuffle follows the seed in
         * use, as a fresh run's does, even when --seed overrides the checkpoint's. */
        rng_seed(&st->loader_rng, (uint64_t)r->opt.seed, DATA_LOADER_STREAM);
    }
    st->seed = r->opt.seed;
    st->batch = r->opt.batch;
    st->lr = r->opt.lr;
    st->momentum = r->opt.momentum;
    st->train_count = r->train.count;
    st->test_count = r->test.count;
    if (st->step_in_epoch > 0) {
        printf("resumed: %s: in epoch %d after %zu of its steps (global step %llu, trained on %s)\n", r->opt.resume,
               st->epoch + 1, st->step_in_epoch, (unsigned long long)st->global_step, st->device);
    } else {
        printf("resumed: %s: after epoch %d (global step %llu, trained on %s)\n", r->opt.resume, st->epoch,
               (unsigned long long)st->global_step, st->device);
    }
}

int main(int argc, char **argv)
{
    Run run;
    memset(&run, 0, sizeof run);
    Options *o = &run.opt;
    *o = (Options){.device = "auto", .kernels = "cublas", .cuda_graph = "on", .epochs = 4, .batch = 64, .seed = 1, .threads = 2,
                   .log_every = 50, .lr = 0.01, .momentum = 0.9};
    FlagSpec flags[] = {
        {"--device", FLAG_STRING, &o->device, 0, 0, "auto (the GPU if there is one, else the CPU), cuda or cpu"},
        {"--data", FLAG_STRING, &o->data, 0, 0, "folder with the MNIST IDX files (.gz or plain); default: the bundled data/"},
        {"--epochs", FLAG_INT, &o->epochs, 1, CHECKPOINT_MAX_EPOCHS, "train until this many epochs are done"},
        {"--batch", FLAG_INT, &o->batch, 1, 65536, "samples per SGD step (the last batch of an epoch may be smaller)"},
        {"--lr", FLAG_DOUBLE, &o->lr, 0, 1e9, "learning rate"},
        {"--momentum", FLAG_DOUBLE, &o->momentum, 0, 1, "SGD momentum mu in v = mu v + g"},
        {"--seed", FLAG_INT, &o->seed, 0, 2147483647, "seed for the initial weights, the shuffling and dropout"},
        {"--padding", FLAG_INT, &o->padding, 0, 8, "zero padding of both 3x3 convolutions (0: fc1 9216 inputs; 1: 12544)"},
        {"--threads", FLAG_INT, &o->threads, 1, 1024, "CPU threads (the cpu device's convolutions)"},
        {"--kernels", FLAG_STRING, &o->kernels, 0, 0, "GPU kernels: cublas (default), ch05, tiled or direct"},
        {"--cuda-graph", FLAG_STRING, &o->cuda_graph, 0, 0, "on (default): a GPU step is one graph launch"},
        {"--save", FLAG_STRING, &o->save, 0, 0, "write a .safetensors checkpoint here after every epoch (atomically)"},
        {"--save-every", FLAG_INT, &o->save_every, 0, 1 << 30, "also checkpoint every N steps (0: only at epoch ends)"},
        {"--resume", FLAG_STRING, &o->resume, 0, 0, "continue the run saved in this checkpoint"},
        {"--log", FLAG_STRING, &o->log, 0, 0, "append a CSV training log here (plot it with plot_log.py)"},
        {"--log-every", FLAG_INT, &o->log_every, 1, 1 << 30, "steps per training-loss row of the log"},
        {"--train-limit", FLAG_INT, &o->train_limit, 0, 1 << 30, "train on the first N training images only (0: all)"},
        {"--test-limit", FLAG_INT, &o->test_limit, 0, 1 << 30, "evaluate on the first N test images only (0: all)"},
        {"--summary-json", FLAG_STRING, &o->summary, 0, 0, "write a JSON summary of the run to this file"},
    };
    CourseError err;
    const int parsed = flags_parse(argc, argv, flags, COUNT_OF(flags), "mnist_train",
                                   "Train the MNIST CNN (conv 32, conv 64, maxpool, dropout, fc 128, fc 10) on the "
                                   "GPU or the CPU, with resumable checkpoints (chapter 07).",
                                   &err);
    if (parsed == FLAGS_HELP) {
        return 0;
    }
    if (parsed != FLAGS_OK) {
        error_exit(&err);
    }
    const int kernels = gpu_cnn_kernels_parse(o->kernels);
    if (kernels < 0) {
        die("--kernels: '%s' is not one of: cublas, ch05, tiled, direct", o->kernels);
    }
    if (strcmp(o->cuda_graph, "on") != 0 && strcmp(o->cuda_graph, "off") != 0) {
        die("--cuda-graph: '%s' is not one of: on, off", o->cuda_graph);
    }
    char gpu_name[256], why[256];
    const bool have_gpu = gpu_cnn_device_available(gpu_name, sizeof gpu_name, why, sizeof why);
    if (strcmp(o->device, "auto") == 0) {
        run.cuda = have_gpu;
        if (!have_gpu) {
            printf("device: cpu (%s%s)\n", why, gpu_cnn_is_simulator() ? "; --device cuda runs the simulator, slowly" : "");
        }
    } else if (strcmp(o->device, "cuda") == 0) {
        if (!have_gpu && !gpu_cnn_is_simulator()) {
            die("--device cuda: %s", why);
        }
        run.cuda = true;
        if (!have_gpu) {
            printf("device: cuda on the CPU simulator (%s): correct but slow; use small --train-limit values\n", why);
        }
    } else if (strcmp(o->device, "cpu") != 0) {
        die("--device: '%s' is not one of: auto, cuda, cpu", o->device);
    }
    if (run.cuda && have_gpu) {
        printf("device: cuda (%s)\n", gpu_name);
    } else if (!run.cuda && strcmp(o->device, "cpu") == 0) {
        printf("device: cpu\n");
    }
    if (o->data == NULL) {
        o->data = train_default_data_dir(COURSE_DATA_DIR_DEFAULT);
    }
#ifdef _OPENMP
    omp_set_num_threads(o->threads);
#endif
    gemm_set_openblas_threads(1);

    if (train_load_mnist(o->data, &run.train, &run.test, &err) != 0) {
        error_exit(&err);
    }
    if (o->train_limit > 0 && (size_t)o->train_limit < run.train.count) {
        run.train.count = (size_t)o->train_limit; /* the first N: the arrays stay allocated in full */
    }
    if (o->test_limit > 0 && (size_t)o->test_limit < run.test.count) {
        run.test.count = (size_t)o->test_limit;
    }
    if (run.train.rows != run.train.cols || run.test.rows != run.train.rows || run.test.cols != run.train.cols) {
        die("%s: the CNN needs square images of one size; found %zux%zu training and %zux%zu test images", o->data,
            run.train.rows, run.train.cols, run.test.rows, run.test.cols);
    }
    CnnConfig config = cnn_default_config(o->padding);
    config.image_size = (int)run.train.rows;
    if (cnn_create(&run.net, config, o->batch, GEMM_OPENBLAS, &err) != 0) {
        error_exit(&err);
    }
    cnn_init(&run.net, (uint64_t)o->seed);
    TrainState *st = &run.state;
    if (o->resume != NULL) {
        resume(&run, argc, argv);
        if (st->batch != run.net.max_batch) { /* --batch came from the checkpoint: resize the CPU network */
            Cnn resized;
            if (cnn_create(&resized, config, st->batch, GEMM_OPENBLAS, &err) != 0) {
                error_exit(&err);
            }
            for (int t = 0; t < CNN_TENSORS; ++t) {
                memcpy(resized.tensors[t].value, run.net.tensors[t].value, run.net.tensors[t].count * sizeof(float));
                memcpy(resized.tensors[t].velocity, run.net.tensors[t].velocity,
                       run.net.tensors[t].count * sizeof(float));
            }
            cnn_destroy(&run.net);
            run.net = resized;
        }
    } else {
        st->seed = o->seed;
        st->batch = o->batch;
        st->lr = o->lr;
        st->momentum = o->momentum;
        st->train_count = run.train.count;
        st->test_count = run.test.count;
    }
    snprintf(st->device, sizeof st->device, "%s", run.cuda ? "cuda" : "cpu");
    snprintf(st->data, sizeof st->data, "%s", o->data);

    data_loader_init(&run.loader, &run.train, (size_t)o->batch, true, (uint64_t)o->seed);
    if (o->resume != NULL) {
        run.loader.rng = st->loader_rng;
    } else {
        st->loader_rng = run.loader.rng;
    }
    printf("data: %s: %zu training and %zu test images of %zux%zu\n", o->data, run.train.count, run.test.count,
           run.train.rows, run.train.cols);
    printf("network: conv %d, conv %d (3x3, padding %d), maxpool 2, dropout %.2f, fc %zu->%d, dropout %.2f, fc %d->%d\n",
           config.conv1_channels, config.conv2_channels, o->padding, config.dropout1, run.net.features, config.hidden,
           config.dropout2, config.hidden, config.classes);
    printf("training: batch %d, lr %g, momentum %g, seed %d, ", o->batch, o->lr, o->momentum, o->seed);
    char graph_why[256] = "";
    if (run.cuda) {
        run.gpu = gpu_cnn_create(&run.net, o->batch, (GpuCnnKernels)kernels, &err);
        if (run.gpu == NULL) {
            error_exit(&err);
        }
        run.graph = gpu_cnn_set_graph(run.gpu, strcmp(o->cuda_graph, "on") == 0, graph_why, sizeof graph_why);
        printf("GPU kernels %s, CUDA Graph %s%s%s\n", o->kernels, run.graph ? "on" : "off", graph_why[0] ? ": " : "",
               graph_why);
    } else {
        printf("%d CPU threads, OpenBLAS\n", o->threads);
    }
    if (run.cuda) {
        gpu_cnn_upload_data(run.gpu, &run.train, &run.test);
        gpu_cnn_set_parameters(run.gpu, &run.net);
    }

    train_history_init(&run.history, o->epochs);
    for (int e = 0; e < st->epoch && e < o->epochs; ++e) {
        run.history.test_accuracy[e] = st->test_accuracy[e];
        run.history.test_loss[e] = st->test_loss[e];
        run.history.train_loss[e] = st->train_loss[e];
    }
    run.history.train_seconds = st->train_seconds;
    run.history.trained_samples = st->trained_samples;
    run.history.steps = (size_t)st->global_step;
    log_open(&run.log, o->log, o->log_every);

    if (st->epoch >= o->epochs) {
        printf("the checkpoint already holds %d epochs: nothing to train (raise --epochs to continue)\n", st->epoch);
    } else {
        run_training(&run);
        if (run.graph) {
            printf("CUDA Graph: %zu nodes per training step, one launch\n", gpu_cnn_graph_nodes(run.gpu));
        }
    }

    if (run.log.file != NULL) {
        fclose(run.log.file);
    }
    gpu_cnn_destroy(run.gpu);
    train_history_free(&run.history);
    data_loader_free(&run.loader);
    cnn_destroy(&run.net);
    mnist_free(&run.train);
    mnist_free(&run.test);
    return 0;
}
