/* train_checkpoint.h — the course's training checkpoints: a network's named tensors and the state of its training
 * run in one .safetensors file (common/safetensors.h), used by all three trainers (chapter 02's mlp_train,
 * chapter 03's cnn_train, chapter 07's mnist_train) for --save and --resume.
 *
 * What a checkpoint must hold for `--resume` to continue EXACTLY where the run stopped (the next step computes
 * the same numbers as if the run had never stopped):
 *
 *   - the weights and the optimiser's state (tensors "fc1.weight", ..., and SGD's "momentum_buffer.fc1.weight",
 *     ..., or Adam's "exp_avg.fc1.weight" and "exp_avg_sq.fc1.weight", ...): that is state too — without it the
 *     first steps after a resume would differ;
 *   - where the run is: completed epochs, steps done in the current epoch, the global step count;
 *   - the shuffling generator's state at the start of the current epoch: replaying that epoch's shuffle gives
 *     the same order, and the run skips the batches already done;
 *   - the network's own random stream where it has one (chapter 03's dropout masks), as it is now;
 *   - the hyperparameters and the architecture, so that a mismatched resume is refused with a clear message;
 *   - the history of finished epochs (accuracy, losses, training seconds of each) and the current epoch's
 *     running loss, so the final summary is whole.
 *
 * Everything but the tensors goes into the file's "__metadata__" (strings, as the format requires; floats
 * printed with 17 significant digits so they read back bit for bit). "format" names the network ("course-
 * mnist-mlp", "course-mnist-cnn"): a checkpoint of another network is refused by name before anything else.
 * The tensor names are PyTorch's state_dict keys, so PyTorch loads the weights as they are.
 *
 * A trainer describes its network once and uses the same description to save and to load:
 *
 *   CheckpointModel model = {.format = "course-mnist-mlp", .format_version = "1", .what = "chapter 02's MLP"};
 *   checkpoint_model_tensor(&model, "fc1.weight", 2, (size_t[]){128, 784}, w1, vw1);    // value, momentum
 *   checkpoint_model_arch(&model, "hidden", "--hidden", "%d", 128);                      // must match on load
 *   checkpoint_write("run.safetensors", &model, &state, &err);     // atomic: temp file, fsync, rename
 *   checkpoint_read("run.safetensors", &model, &state, &err);      // checks everything, then fills the tensors
 */
#ifndef COURSE_TRAIN_CHECKPOINT_H
#define COURSE_TRAIN_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "course_error.h"
#include "rng.h"
#include "safetensors.h"

#define CHECKPOINT_MAX_EPOCHS 1000
#define CHECKPOINT_MAX_TENSORS 16
#define CHECKPOINT_MAX_ARCH 16

typedef struct TrainState {
    int epoch; /* completed epochs */
    size_t step_in_epoch; /* batches done in the current (unfinished) epoch; 0 at an epoch boundary */
    uint64_t global_step; /* SGD steps done since the start of the run */
    Rng loader_rng; /* the shuffling stream as it was right before the current epoch's shuffle */
    double epoch_loss_sum; /* the current epoch so far: sum of batch loss * batch size */
    size_t epoch_samples; /* ... and samples */

    /* Settings of the run (checked or reused on resume). */
    int seed, batch;
    double lr, momentum, weight_decay;
    size_t train_count; /* training samples per epoch (after --train-limit) */
    size_t test_count; /* test images each evaluation used (after --test-limit): test_accuracy is over these */
    char device[8]; /* "cpu" or "cuda": informational */
    char data[512]; /* the data folder: informational */
    char trainer[32]; /* the program that wrote it ("mlp_train"): informational */

    /* Finished epochs 1..epoch: test accuracy (fraction), test loss, mean train loss, training seconds. */
    double test_accuracy[CHECKPOINT_MAX_EPOCHS], test_loss[CHECKPOINT_MAX_EPOCHS], train_loss[CHECKPOINT_MAX_EPOCHS];
    double epoch_seconds[CHECKPOINT_MAX_EPOCHS];
    double train_seconds; /* training time so far, the current epoch's part included (evaluation excluded) */
    size_t trained_samples;
} TrainState;

typedef struct CheckpointTensor {
    const char *name; /* PyTorch's state_dict key: "conv1.weight" */
    int ndim;
    size_t shape[4];
    float *value, *velocity; /* the parameter and its SGD momentum buffer, or Adam's exp_avg (same shape) */
    float *second; /* Adam's exp_avg_sq (same shape); NULL for SGD */
} CheckpointTensor;

typedef struct CheckpointArch {
    const char *key; /* metadata key: "hidden" */
    char value[64]; /* as written: "128" */
    const char *flag; /* the command-line flag that changes it ("--hidden"), or NULL */
    const char *absent; /* what a file without the key means (a setting newer than the file), or NULL: required */
} CheckpointArch;

typedef struct CheckpointModel {
    const char *format; /* metadata "format": which network, e.g. "course-mnist-cnn" */
    const char *format_version; /* metadata "format_version" */
    const char *what; /* for messages: "chapter 03's CNN" */
    CheckpointTensor tensors[CHECKPOINT_MAX_TENSORS];
    int n_tensors;
    CheckpointArch arch[CHECKPOINT_MAX_ARCH]; /* saved, and on load required to be equal */
    int n_arch;
    Rng *rng; /* the network's own random stream (saved as "network_rng_*"), or NULL */
    /* The optimiser whose state the tensors' velocity (and second) hold: "sgd" (also when NULL), "adam" or
     * "adamw" (chapter 10). Saved as metadata "optimizer"; a resume with another optimiser is refused. */
    const char *optimizer;
    /* Reading only: load the weights and leave the optimiser's state alone, whatever optimiser wrote the file
     * (programs that USE a network: serving, pictures, --init-from). */
    bool weights_only;
} CheckpointModel;

/* The state buffers an optimiser keeps per parameter and the names they are saved under ("<prefix>.<name>",
 * as in torch.optim's state): sgd 1 (momentum_buffer), adam and adamw 2 (exp_avg, exp_avg_sq). Returns the
 * count, or -1 for an optimiser this module does not know. */
int checkpoint_optimizer_states(const char *optimizer, const char *prefixes[2]);

void checkpoint_model_tensor(CheckpointModel *model, const char *name, int ndim, const size_t *shape, float *value,
                             float *velocity);
void checkpoint_model_arch(CheckpointModel *model, const char *key, const char *flag, const char *fmt, ...)
    COURSE_PRINTF(4, 5);
/* A training setting that must also match on resume (chapter 10's --augment, --lr-schedule), added after the
 * first checkpoints were written: a file without the key is read as having `absent` (the old behaviour). */
void checkpoint_model_setting(CheckpointModel *model, const char *key, const char *flag, const char *value,
                              const char *absent);

/* Remove what a save killed halfway leaves: temporary files "<path>.tmp.XXXXXX" beside path (file_util.h's
 * atomic writes). Says so on stdout for each one removed; returns how many. checkpoint_write calls it. */
int checkpoint_remove_stray_temps(const char *path);

/* Write the model's tensors and momentum buffers, its architecture and the state to path, atomically (temp
 * file, fsync, rename: a crash at any moment leaves the previous checkpoint or the new one). 0 or -1 with err. */
int checkpoint_write(const char *path, const CheckpointModel *model, const TrainState *state, CourseError *err);

/* Read path into the model's tensors and into state. Refuses, with err naming the file and the reason, a file
 * that is damaged (safetensors.h's checks, the CRC of the data included), of another network (format), of
 * another architecture or format version, or whose state is inconsistent; the tensors are then untouched.
 * A checkpoint of a run that has not started (epoch 0, step 0, e.g. initial weights written by PyTorch) may
 * leave out the random streams: the loader's is then seeded from the seed, as a fresh run's is. */
int checkpoint_read(const char *path, CheckpointModel *model, TrainState *state, CourseError *err);

/* The shared first check: the file is valid and its "format" is `format` (what: for the message). On success
 * f holds the parsed file (safetensors_free it). */
int checkpoint_open(const char *path, const char *format, const char *what, SafetensorsFile *f, CourseError *err);

/* Metadata value `key` of f as an unsigned integer / a double; -1 with err naming path when absent or not a
 * number. */
int checkpoint_meta_u64(const SafetensorsFile *f, const char *path, const char *key, uint64_t *out, CourseError *err);
int checkpoint_meta_double(const SafetensorsFile *f, const char *path, const char *key, double *out, CourseError *err);

#endif
