/* trainer.h — the training loop every trainer shares (chapter 02's mlp_train, chapter 03's cnn_train, chapter
 * 07's mnist_train), so that all three offer the same flags with the same behaviour:
 *
 *   --epochs --batch --lr --momentum --seed       the recipe (with --resume, the checkpoint's unless given)
 *   --save FILE [--save-every N]                  a checkpoint after every epoch (and every N steps), atomic
 *   --resume FILE                                 continue exactly: the resumed run ends bit for bit where an
 *                                                 uninterrupted one ends (tests/scripts/test_resume.sh)
 *   --log FILE.csv [--log-every N]                a CSV log, appended to on resume
 *   --summary-json FILE                           a JSON summary at the end, atomic
 *   --train-limit N --test-limit N                only the first N images (quick runs, tests)
 *
 * and the same progress bar (common/train_util.h), the same NaN stop (exit 1, nothing written after it), and
 * the same Ctrl-C: SIGINT finishes the step under way, writes a last checkpoint when --save is set, and exits
 * with 130 (128 + SIGINT, what a shell reports for a program stopped by Ctrl-C); a second Ctrl-C kills at once.
 * Starting with --save removes stray temporary files an earlier, killed save left (and says so).
 *
 * The network comes in through a TrainModel: a step function, an evaluation, and its checkpoint description.
 *
 *   trainer_flags(&options, flags, &n_flags); flags_parse(...);     // the shared flags, and the program's
 *   trainer_resume_settings(&options, argc, argv);                  // --resume: the checkpoint's recipe
 *   ... load the data, create the network with options.batch, fill a TrainModel ...
 *   Trainer *t = trainer_create("mlp_train", &options);
 *   trainer_start(t, &model, &train, test_count, data_dir, "cpu");   // --resume happens here
 *   trainer_run(t, &model, confusion);                                 // epochs, checkpoints, final report
 *   trainer_write_summary(t, data_dir, extra_fields, n_extra);          // --summary-json
 *   trainer_destroy(t);
 */
#ifndef COURSE_TRAINER_H
#define COURSE_TRAINER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "idx.h"
#include "train_checkpoint.h"
#include "train_util.h"

typedef struct TrainerOptions {
    int epochs, batch, seed;
    double lr, momentum, weight_decay;
    const char *save, *resume, *log, *summary;
    int save_every, log_every;
    int train_limit, test_limit; /* 0: all */
} TrainerOptions;

/* The defaults of all three trainers: 4 epochs, batch 64, lr 0.01, momentum 0.9, seed 1, a log row every 50
 * steps. */
TrainerOptions trainer_default_options(void);

/* The shared flags (--epochs ... --summary-json), appended to flags[*count]; TRAINER_FLAGS of them. */
#define TRAINER_FLAGS 13
void trainer_flags(TrainerOptions *options, FlagSpec *flags, size_t *count);

/* The data of a run, once the flags are parsed: the folder data_dir (NULL: the bundled data, found by
 * train_default_data_dir from bundled_dir), both splits loaded and checked (train_load_mnist), and
 * --train-limit / --test-limit applied (the first N images of each split are kept; the arrays stay allocated in
 * full). Exits with a message naming the file and the problem on any error. Returns the folder used. */
const char *trainer_load_data(const TrainerOptions *options, const char *data_dir, const char *bundled_dir,
                              MnistSplit *train, MnistSplit *test);

/* Was `name` given on the command line (as "--name value" or "--name=value")? */
bool flag_given(int argc, char **argv, const char *name);

/* With --resume: read the checkpoint's settings (seed, batch, lr, momentum, weight decay) into options where
 * the command line did not give them; call before creating the network, whose batch size this may change.
 * A checkpoint from the middle of an epoch refuses another --batch. Exits with a message on any problem. */
void trainer_resume_settings(TrainerOptions *options, int argc, char **argv);

typedef struct Trainer Trainer;

typedef struct TrainModel {
    void *net; /* passed back to every callback */
    int classes;
    /* true: the loop hands step() each batch in host memory; false: step() reads the batch itself (on the GPU)
     * at t->loader.position, and the loop only advances the loader. */
    bool host_batches;
    /* true: step() returns no loss; the model reports each step's loss later with trainer_account_loss (at the
     * latest in drain()). false: the loss step() returns is accounted at once. */
    bool deferred_losses;
    /* One SGD step on n samples (x: (n, sample_size), labels: (n), NULL without host_batches). */
    float (*step)(void *net, Trainer *t, const float *x, const int32_t *labels, size_t n);
    /* Optional: after every step, once the step counters count it (e.g. fetch a window of GPU losses). */
    void (*after_step)(void *net, Trainer *t);
    /* Optional: at the start of every epoch, after the shuffle (e.g. hand the order to the GPU). */
    void (*start_epoch)(void *net, Trainer *t);
    /* Optional: account for every pending loss, and bring the weights to the host (before a checkpoint). */
    void (*drain)(void *net, Trainer *t);
    /* The test set: mean loss, *correct, confusion (classes, classes). */
    double (*evaluate)(void *net, size_t *correct, size_t *confusion);
    /* The checkpoint description of the network (train_checkpoint.h). */
    CheckpointModel checkpoint;
} TrainModel;

struct Trainer {
    const char *program;
    TrainerOptions opt;
    size_t test_count;
    DataLoader loader;
    TrainState state; /* where the run is; what a checkpoint holds */
    TrainHistory history;
    Progress bar;
    FILE *log; /* --log, or NULL */
    double log_loss_sum;
    size_t log_losses;
    double epoch_start; /* timer_seconds() at the start of this process's part of the epoch */
    double seconds_before; /* training seconds before it */
    int epoch; /* the epoch being trained (1-based) */
};

/* A trainer for the options (already parsed, and passed through trainer_resume_settings); on the heap. */
Trainer *trainer_create(const char *program, const TrainerOptions *options);

/* Prepare the run: the loader over train (the first train->count samples), the state fresh or --resume'd
 * (model->checkpoint's tensors are filled from the file), the log, the SIGINT handler; prints "resumed: ...".
 * device: "cpu" or "cuda", recorded in checkpoints. Exits with a message on any problem. */
void trainer_start(Trainer *t, TrainModel *model, const MnistSplit *train, size_t test_count, const char *data,
                   const char *device);

/* Train epochs state.epoch + 1 .. opt.epochs (checkpoints, log, NaN stop, Ctrl-C), then print the confusion
 * matrix of the last evaluation (confusion: (classes, classes)) and the throughput. */
void trainer_run(Trainer *t, TrainModel *model, size_t *confusion);

/* The common summary fields (program, data, recipe, sizes, history, epoch_train_seconds), then `extra`, written
 * to --summary-json (if given). */
void trainer_write_summary(Trainer *t, const char *data, const JsonField *extra, size_t n_extra);

/* For models with deferred losses: the samples in step `slot` of the current epoch, and the accounting of that
 * step's loss (progress bar, NaN stop, log) once it is known. */
size_t trainer_batch_samples(const Trainer *t, size_t slot);
void trainer_account_loss(Trainer *t, size_t slot, size_t n, float loss);

void trainer_destroy(Trainer *t);

#endif
