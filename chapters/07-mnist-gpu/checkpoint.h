/* checkpoint.h — Chapter 07: save and resume a training run of the CNN as a .safetensors file.
 *
 * What a checkpoint must hold for `--resume` to continue EXACTLY where the run stopped (the next step computes
 * the same numbers as if the run had never stopped):
 *
 *   - the weights and the SGD momentum buffers (tensors "conv1.weight", ..., "momentum_buffer.conv1.weight",
 *     ...): momentum is state too — without it the first steps after a resume would differ;
 *   - where the run is: completed epochs, steps done in the current epoch, the global step count (the dropout
 *     masks' Philox offset is 2 * global_step + layer, so no dropout state needs saving beyond it);
 *   - the shuffling generator's state at the start of the current epoch: replaying that epoch's shuffle gives
 *     the same order, and the run skips the batches already done;
 *   - the hyperparameters and the architecture, so that a mismatched resume is refused with a clear message;
 *   - the history of finished epochs and the current epoch's running loss, so the final summary is whole.
 *
 * Everything but the tensors goes into the file's "__metadata__" (strings, as the format requires; floats
 * printed with 17 significant digits so they read back bit for bit). The tensor names are PyTorch's
 * state_dict keys, so `load_checkpoint.py` (this folder) loads the weights into torch's model as they are.
 */
#ifndef CH07_CHECKPOINT_H
#define CH07_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "cnn.h"
#include "course_error.h"
#include "rng.h"

#define CHECKPOINT_FORMAT "course-mnist-cnn"
#define CHECKPOINT_FORMAT_VERSION "1"
#define CHECKPOINT_MAX_EPOCHS 1000

typedef struct TrainState {
    int epoch; /* completed epochs */
    size_t step_in_epoch; /* batches done in the current (unfinished) epoch; 0 at an epoch boundary */
    uint64_t global_step; /* SGD steps done since the start of the run */
    Rng loader_rng; /* the shuffling stream as it was right before the current epoch's shuffle */
    double epoch_loss_sum; /* the current epoch so far: sum of batch loss * batch size */
    size_t epoch_samples; /* ... and samples */

    /* Settings of the run (checked or reused on resume). */
    int seed, batch;
    double lr, momentum;
    size_t train_count; /* training samples per epoch (after --train-limit) */
    size_t test_count; /* test images each evaluation used (after --test-limit): test_accuracy is over these */
    char device[8]; /* "cpu" or "cuda": informational, both draw the same dropout masks */
    char data[512]; /* the data folder: informational */

    /* Finished epochs: test accuracy (fraction), test loss, mean train loss of epochs 1..epoch. */
    double test_accuracy[CHECKPOINT_MAX_EPOCHS], test_loss[CHECKPOINT_MAX_EPOCHS], train_loss[CHECKPOINT_MAX_EPOCHS];
    double train_seconds; /* training time so far (evaluation excluded) */
    size_t trained_samples;
} TrainState;

/* Write net's parameters and momentum and the state to path, atomically (temp file + rename: a crash at any
 * moment leaves the previous checkpoint or the new one, never half of one). Returns 0 or -1 with err. */
int checkpoint_save(const char *path, const Cnn *net, const TrainState *state, CourseError *err);

/* Read path into net (whose configuration must match the file's: architecture, image size) and state.
 * Refuses, with err naming the file and the difference, a checkpoint of another architecture, another
 * format, or a damaged file (safetensors.h's checks, including the CRC of the data); net is then untouched.
 * A checkpoint of a run that has not started (epoch 0, step 0, e.g. initial weights written by PyTorch
 * through load_checkpoint.py --write-test-checkpoint) may leave out the shuffling generator's state: the run
 * then seeds it from the seed, as a fresh run does. */
int checkpoint_load(const char *path, Cnn *net, TrainState *state, CourseError *err);

/* For programs that USE a trained network (serving, visualising) rather than train it: read the network's
 * shape from path's metadata (image size, padding, widths, dropout rates), create `net` with that shape for
 * batches of up to max_batch with the given GEMM backend, and load the checkpoint into it (checkpoint_load's
 * checks, all of them). state, if not NULL, gets the training state (epoch, test accuracy ...). On failure net
 * is left destroyed (nothing to free) and err names the file and the problem; a shape beyond
 * CHECKPOINT_MAX_WIDTH is refused before anything is allocated. */
#define CHECKPOINT_MAX_WIDTH 4096
int checkpoint_load_network(const char *path, int max_batch, GemmBackend backend, Cnn *net, TrainState *state,
                            CourseError *err);

#endif
