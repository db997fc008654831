/* cnn_checkpoint.h — the CNN as the course's checkpoint module sees it (common/train_checkpoint.h): its ten
 * tensors under PyTorch's names with their momentum buffers, and the architecture a checkpoint must match.
 * Chapter 03's cnn_train and chapter 07's mnist_train write the same format, "course-mnist-cnn", so either's
 * weights load into the other (and into PyTorch: chapters/07-mnist-gpu/load_checkpoint.py).
 */
#ifndef CH03_CNN_CHECKPOINT_H
#define CH03_CNN_CHECKPOINT_H

#include "cnn.h"
#include "train_checkpoint.h"

#define CNN_CHECKPOINT_FORMAT "course-mnist-cnn"
#define CNN_CHECKPOINT_FORMAT_VERSION "1"

/* Describe net for checkpoint_write / checkpoint_read. with_dropout_stream: also save and restore the dropout
 * masks' random stream (cnn_train's cnn_draw_dropout_masks draws from it; mnist_train's Philox masks need none). */
void cnn_checkpoint_model(Cnn *net, bool with_dropout_stream, CheckpointModel *model);

#endif
