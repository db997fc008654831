/* train_util.h — the course's shared trainer kit: what every training program (chapter 02's mlp_train,
 * chapter 03's cnn_train, chapter 07's GPU trainer) needs besides the network itself.
 *
 *   - command-line flags from a table (--help generated from it, ranges checked, clear errors);
 *   - the data loader: MNIST bytes -> normalised float batches, reshuffled every epoch with the seed, the
 *     last partial batch kept (as PyTorch's DataLoader with shuffle=True, drop_last=False);
 *   - the progress bar: running loss and samples/s on stderr, redrawn in place only when stderr is a
 *     terminal, otherwise one line per epoch (so logs and CI output stay readable);
 *   - the NaN/inf loss guard: stops training with a message saying where and what to try;
 *   - the confusion matrix printer;
 *   - the JSON summary writer (atomic: temp file + rename, so a crash never leaves half a file).
 *
 * The training loop built from these pieces, with checkpoints, --resume, the CSV log and Ctrl-C, is trainer.h;
 * all three trainers use it.
 *
 * A typical trainer:
 *
 *   int epochs = 4; double lr = 0.01; const char *data = NULL;
 *   FlagSpec flags[] = {
 *       {"--epochs", FLAG_INT, &epochs, 1, 1000, "passes over the training set"},
 *       {"--lr", FLAG_DOUBLE, &lr, 0, 1e6, "learning rate"},
 *       {"--data", FLAG_STRING, &data, 0, 0, "folder with the MNIST IDX files"},
 *   };
 *   CourseError err;
 *   int parsed = flags_parse(argc, argv, flags, COUNT_OF(flags), "mlp_train", "Train ...", &err);
 *   if (parsed == FLAGS_HELP) return 0;
 *   if (parsed != 0) error_exit(&err);
 *
 *   DataLoader loader;
 *   data_loader_init(&loader, &train, 64, true, seed);         // train: an MnistSplit from mnist_load
 *   float *x = xmalloc(64 * loader.sample_size * sizeof *x);     // (batch, rows * cols)
 *   int32_t *y = xmalloc(64 * sizeof *y);                        // (batch)
 *   for (int epoch = 1; epoch <= epochs; epoch++) {
 *       data_loader_start_epoch(&loader);                        // reshuffles
 *       Progress bar;  progress_start(&bar, epoch, epochs, train.count);
 *       size_t n;
 *       while ((n = data_loader_next(&loader, x, y)) > 0) {
 *           float loss = ...train step on n samples...;
 *           if (loss_guard(loss, epoch, loader.batch_index, &err) != 0) error_exit(&err);
 *           progress_update(&bar, n, loss);
 *       }
 *       progress_finish(&bar);
 *   }
 *
 * The images come out as (batch, rows * cols) floats: the same bytes as (batch, 1, rows, cols), so a CNN
 * trainer uses the loader unchanged.
 */
#ifndef COURSE_TRAIN_UTIL_H
#define COURSE_TRAIN_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "course_error.h"
#include "idx.h"
#include "rng.h"

/* ---- Command-line flags ------------------------------------------------------------------------------ */

typedef enum FlagKind {
    FLAG_INT, /* value: int *      ("--epochs 4"), checked against [min, max] */
    FLAG_DOUBLE, /* value: double *   ("--lr 0.01"), checked against [min, max], must be finite */
    FLAG_STRING, /* value: const char ** (points into argv) */
    FLAG_SWITCH, /* value: bool *     ("--quiet", takes no argument, sets true) */
} FlagKind;

typedef struct FlagSpec {
    const char *name; /* with the dashes: "--epochs" */
    FlagKind kind;
    void *value; /* where the parsed value goes; holds the default before parsing */
    double min, max; /* accepted range for FLAG_INT / FLAG_DOUBLE (inclusive) */
    const char *help; /* one line for --help */
} FlagSpec;

enum { FLAGS_OK = 0, FLAGS_HELP = 1, FLAGS_ERROR = -1 };

/* Parse argv[1..argc) against the table. "--name value" and "--name=value" are both accepted.
 * Returns FLAGS_OK, FLAGS_HELP (after printing usage to stdout for -h/--help), or FLAGS_ERROR with err
 * naming the flag and the problem ("--epochs: 'four' is not an integer"). */
int flags_parse(int argc, char **argv, const FlagSpec *specs, size_t n_specs, const char *program,
                const char *description, CourseError *err);

/* Print "usage: program [flags]", the description and one line per flag with its default. */
void flags_print_usage(FILE *out, const char *program, const char *description, const FlagSpec *specs,
                       size_t n_specs);

/* The data folder a trainer uses when --data is not given: `compiled_default` (the source tree's data/,
 * baked in at build time) if it holds MNIST files, else "data" (relative to the working directory). */
const char *train_default_data_dir(const char *compiled_default);

/* Load "<dir>/train-*" and "<dir>/t10k-*" (each .gz or plain). On failure err names the file and problem,
 * and both splits are left empty. */
int train_load_mnist(const char *dir, MnistSplit *train, MnistSplit *test, CourseError *err);

/* ---- Data loader ------------------------------------------------------------------------------------- */

/* MNIST's normalisation (torchvision's Normalize((0.1307,), (0.3081,))): mean and standard deviation of the
 * training pixels scaled to [0, 1]. */
#define MNIST_MEAN 0.1307f
#define MNIST_STD 0.3081f

/* pixel byte -> (p / 255 - mean) / std, in float32 exactly as torchvision computes it. out: (n) */
void normalize_pixels(const uint8_t *pixels, float *out, size_t n);

typedef struct DataLoader {
    const MnistSplit *split; /* not owned */
    size_t batch_size;
    size_t sample_size; /* rows * cols floats per image */
    bool shuffle; /* false: samples in file order (evaluation) */
    Rng rng; /* the shuffling stream: seeded once, advanced every epoch */
    uint32_t *order; /* (count) sample indices in this epoch's order */
    size_t position; /* next place in order */
    size_t batch_index; /* batches handed out this epoch (1-based after the first data_loader_next) */
} DataLoader;

/* batch_size >= 1. With shuffle, the order is drawn from rng_seed(seed, DATA_LOADER_STREAM). */
#define DATA_LOADER_STREAM 2
void data_loader_init(DataLoader *loader, const MnistSplit *split, size_t batch_size, bool shuffle,
                      uint64_t seed);

/* Begin an epoch: order = 0..count-1, then (with shuffle) a fresh Fisher-Yates shuffle. Each epoch gets a
 * new permutation; the same seed gives the same sequence of permutations.
 * DEFINED IN CHAPTER 02 (chapters/02-backprop-mlp/data_loader.c, library ch02_mlp): it is the learner's
 * exercise ch02.loader_shuffle, and exercises live in chapter folders. Programs that use the loader link
 * ch02_mlp (chapter 03 and later do anyway). */
void data_loader_start_epoch(DataLoader *loader);

/* Copy the next batch: images (n, sample_size) normalised, labels (n); returns n, which is batch_size except
 * for the last, partial batch (kept, not dropped), and 0 when the epoch is over. */
size_t data_loader_next(DataLoader *loader, float *images, int32_t *labels);

/* Number of batches per epoch: ceil(count / batch_size). */
size_t data_loader_batches(const DataLoader *loader);

void data_loader_free(DataLoader *loader);

/* ---- Progress bar ------------------------------------------------------------------------------------ */

typedef struct Progress {
    int epoch, epochs;
    size_t total; /* samples in this epoch */
    size_t done; /* samples seen so far */
    double loss_sum; /* sum over samples of the batch-mean loss times the batch size */
    double start, last_draw; /* timer_seconds() */
    bool interactive; /* stderr is a terminal: redraw in place */
} Progress;

void progress_start(Progress *bar, int epoch, int epochs, size_t total_samples);
/* Account for one batch of `samples` with mean loss `batch_loss`; redraws at most ~10 times a second. */
void progress_update(Progress *bar, size_t samples, double batch_loss);
/* Final state of the epoch: one line "epoch 1/4 [====] 10000/10000 loss 0.4521 3120 samples/s 3.2 s". */
void progress_finish(Progress *bar);
/* Mean loss over the samples seen so far this epoch (NaN before the first batch). */
double progress_mean_loss(const Progress *bar);
double progress_seconds(const Progress *bar);

/* ---- NaN / inf guard --------------------------------------------------------------------------------- */

/* 0 when loss is finite and no exercise stub has run; otherwise -1 with err: "loss became nan at epoch 1,
 * batch 3: training diverged (try a smaller --lr)", or, in a student edition, "stopped at epoch 1, batch 0:
 * an exercise is not implemented yet". */
int loss_guard(double loss, int epoch, size_t batch, CourseError *err);

/* ---- Confusion matrix -------------------------------------------------------------------------------- */

/* counts: (classes, classes), row = true class, column = predicted class. Prints the table with a recall
 * column (correct / row total) and the overall accuracy. */
void confusion_matrix_print(FILE *out, const size_t *counts, int classes);

/* ---- JSON summary ------------------------------------------------------------------------------------ */

typedef enum JsonKind { JSON_NUMBER, JSON_INTEGER, JSON_STRING, JSON_NUMBER_ARRAY } JsonKind;

typedef struct JsonField {
    const char *key;
    JsonKind kind;
    double number; /* JSON_NUMBER (non-finite values are written as null) */
    long long integer; /* JSON_INTEGER */
    const char *string; /* JSON_STRING (escaped on output) */
    const double *array; /* JSON_NUMBER_ARRAY: array_length numbers */
    size_t array_length;
} JsonField;

/* Field constructors, so a summary reads as a list: { json_number("test_accuracy", acc), ... } */
JsonField json_number(const char *key, double value);
JsonField json_integer(const char *key, long long value);
JsonField json_string(const char *key, const char *value);
JsonField json_number_array(const char *key, const double *values, size_t length);

/* Write {"key": value, ...} to path atomically. Returns 0, or -1 with err naming the file. */
int json_summary_write(const char *path, const JsonField *fields, size_t n_fields, CourseError *err);

/* ---- Training history: what every trainer records per epoch and reports at the end --------------------- */

typedef struct TrainHistory {
    int epochs; /* planned */
    double *test_accuracy; /* (epochs) fraction correct on the test set after each epoch */
    double *test_loss; /* (epochs) */
    double *train_loss; /* (epochs) mean training loss of the epoch */
    double train_seconds; /* time in training steps only (evaluation excluded) */
    size_t trained_samples, steps;
} TrainHistory;

void train_history_init(TrainHistory *history, int epochs);
void train_history_free(TrainHistory *history);

/* Record epoch `epoch` (1-based) after its evaluation and print "epoch 2/4: train loss ..., test loss ...,
 * test accuracy 97.10% (9710/10000)". Returns -1 with err when the test loss is not finite. */
int train_history_epoch(TrainHistory *history, int epoch, const Progress *bar, double test_loss, size_t correct,
                        size_t test_count, CourseError *err);

/* Print the confusion matrix of the last evaluation and the throughput line. */
void train_history_print_final(const TrainHistory *history, const size_t *confusion, int classes);

/* The summary fields every trainer writes (test_accuracy, test_loss, epochs, train_seconds,
 * samples_per_second, seconds_per_step, and the per-epoch arrays), appended to fields[*count]; at most
 * TRAIN_HISTORY_JSON_FIELDS of them. */
#define TRAIN_HISTORY_JSON_FIELDS 9
void train_history_json_fields(const TrainHistory *history, JsonField *fields, size_t *count);

#endif
