/* checkpoint.h — Chapter 07: save and resume a training run of the CNN as a .safetensors file.
 *
 * The checkpoint module itself is the course's, shared by all three trainers: common/train_checkpoint.h says
 * what a checkpoint must hold for `--resume` to continue EXACTLY where the run stopped (weights AND momentum,
 * the position in the epoch, the random streams, the settings, the history) and how it is written (atomically:
 * temp file, fsync, rename) and refused (another network, another architecture, a damaged file). The CNN's
 * description for it (its tensors under PyTorch's names, its architecture) is chapter 03's cnn_checkpoint.h, so
 * chapter 03's cnn_train writes the same format. This header keeps chapter 07's interface over them: save and
 * load the CNN, and, for programs that USE a trained network, load one whose shape the file gives.
 *
 * On the GPU path the dropout masks are Philox draws keyed by 2 * global_step + layer (gpu_cnn.h), so no
 * dropout state needs saving beyond the step count.
 */
#ifndef CH07_CHECKPOINT_H
#define CH07_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "cnn.h"
#include "cnn_checkpoint.h"
#include "course_error.h"
#include "rng.h"
#include "train_checkpoint.h" /* TrainState, CHECKPOINT_MAX_EPOCHS */

#define CHECKPOINT_FORMAT CNN_CHECKPOINT_FORMAT
#define CHECKPOINT_FORMAT_VERSION CNN_CHECKPOINT_FORMAT_VERSION

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
 * batches of up to max_batch with the given GEMM backend, and load the checkpoint's weights into it
 * (checkpoint_load's checks, all of them; the optimiser's state is not read, so any optimiser's checkpoint
 * loads). state, if not NULL, gets the training state (epoch, test accuracy ...). On failure net
 * is left destroyed (nothing to free) and err names the file and the problem; a shape beyond
 * CHECKPOINT_MAX_WIDTH is refused before anything is allocated. */
#define CHECKPOINT_MAX_WIDTH 4096
int checkpoint_load_network(const char *path, int max_batch, GemmBackend backend, Cnn *net, TrainState *state,
                            CourseError *err);

#endif
