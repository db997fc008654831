/* train_better.h — Chapter 10's options of the course's trainer, mnist_train (chapter 07): data augmentation,
 * optimisers, learning-rate schedules, dropout rates, and transfer learning (start from another run's
 * convolutions, frozen or slowed), on the CPU path and inside the GPU's training step.
 *
 *   build/bin/mnist_train --augment affine --epochs 15 --lr-schedule onecycle --lr 0.05
 *   build/bin/mnist_train --optimizer adam --lr 0.001 --lr-schedule cosine
 *   build/bin/mnist_train --data /usr/share/datasets/fashion-mnist --train-limit 1000 \
 *       --init-from mnist.safetensors --freeze conv1,conv2
 *
 * The flags (train_better_flags), with chapter 07's recipe as every default, so that mnist_train without them
 * computes exactly what it did before this chapter:
 *
 *   --augment none|affine|elastic        augment.h: each training image transformed afresh every time it is drawn
 *   --optimizer sgd|adam|adamw           optim.h (--momentum is SGD's)
 *   --weight-decay WD                    L2 added to the gradient for sgd and adam, decoupled for adamw
 *   --lr-schedule constant|step|cosine|onecycle   optim.h; --step-epochs N, --gamma G for step
 *   --dropout1 P, --dropout2 P           the two dropout rates (0.25, 0.5)
 *   --init-from CKPT                     conv1 and conv2 (weights and biases) from a mnist_train checkpoint; the
 *                                        fully connected layers start fresh, a new "head" for the new task
 *   --freeze LAYERS                      e.g. conv1,conv2: those layers are not updated
 *   --layer-lr LAYER=SCALE,...           e.g. conv1=0.1,conv2=0.1: those layers learn at SCALE times --lr
 *
 * How it plugs in: on the CPU path train_better_cpu_step replaces chapter 07's step (augment the batch, forward,
 * backward, update); on the GPU path train_better_attach_gpu installs chapter 07's hooks (gpu_cnn.h), so that the
 * augmentation kernel makes the batch and the fused optimiser kernel updates the parameters INSIDE the step's
 * CUDA Graph. The learning rate of every step of an epoch is uploaded once per epoch into a device table that
 * the update kernel indexes with the step's slot (the device cursor): the graph is never captured again.
 */
#ifndef CH10_TRAIN_BETTER_H
#define CH10_TRAIN_BETTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" { /* train_better.cu is CUDA C++; the functions are C */
#endif

#include "augment.h"
#include "cnn.h"
#include "course_error.h"
#include "gpu_cnn.h"
#include "optim.h"
#include "train_checkpoint.h"
#include "train_util.h"
#include "trainer.h"

typedef struct TrainBetterOptions {
    const char *augment, *optimizer, *schedule;
    int step_epochs;
    double gamma;
    double dropout1, dropout2; /* the recipe's 0.25, 0.5 by default */
    const char *init_from, *freeze, *layer_lr;
    bool weight_decay_given; /* --weight-decay on the command line (else AdamW takes torch's 0.01) */
} TrainBetterOptions;

#define TRAIN_BETTER_FLAGS 11
void train_better_default_options(TrainBetterOptions *options);
/* Chapter 10's flags, appended to flags[*count]; TRAIN_BETTER_FLAGS of them (--weight-decay goes into the
 * trainer's options: the checkpoint keeps it with the recipe). */
void train_better_flags(TrainBetterOptions *options, TrainerOptions *trainer, FlagSpec *flags, size_t *count);

typedef struct TrainBetter {
    bool active; /* some option differs from chapter 07's recipe: the chapter 10 path runs */
    AugmentConfig augment;
    OptimizerConfig optimizer;
    ScheduleConfig schedule; /* total_steps set by train_better_start */
    int step_epochs;
    double gamma;
    float layer_scale[CNN_TENSORS]; /* learning-rate scale of each tensor (0: frozen) */
    char layer_text[128]; /* the scales as "conv1=0,conv2=0" (checkpoint setting, summary), "" for none */
    const char *init_from;
    uint64_t seed;
    Cnn *net; /* the CPU network (its tensors give the host layout) */
    float *second; /* (parameter_count) Adam's exp_avg_sq, in the net's parameter layout; NULL for SGD */
    OptimSegments cpu_segments;
    float *x; /* (batch, S*S) the CPU path's augmented batch */
    /* The GPU side (train_better_attach_gpu). */
    GpuCnn *gpu;
    size_t gpu_offsets[CNN_TENSORS], flat_count;
    OptimSegments gpu_segments;
    float *d_second; /* (flat_count) */
    float *d_lr_table, *lr_pinned; /* (lr_slots) the learning rate of each step of the epoch */
    size_t lr_slots;
    float *d_lr; /* (1) this step's learning rate */
    uint64_t *d_t; /* (1) this step's 1-based update count */
} TrainBetter;

/* Check the options and fill tb (nothing allocated yet); config's dropout rates are set from them, and the
 * trainer's weight decay to AdamW's default 0.01 when --optimizer adamw comes without --weight-decay (a new run).
 * Returns 0, or -1 with err naming the flag and the problem. */
int train_better_setup(TrainBetter *tb, const TrainBetterOptions *options, TrainerOptions *trainer, CnnConfig *config,
                       CourseError *err);
/* After cnn_create + cnn_init: the optimiser's buffers for net, and --init-from's convolutions. Exits with a
 * message naming the file when the checkpoint cannot serve. */
void train_better_start(TrainBetter *tb, Cnn *net, const TrainerOptions *trainer, size_t train_count);
/* The checkpoint description: the optimiser's state buffers and chapter 10's settings (a resume with other
 * settings is refused, naming the flag). */
void train_better_checkpoint(TrainBetter *tb, CheckpointModel *model);
/* The CPU path's step: augment the batch (the samples indices[0..n) of split, already normalised in x by the
 * loader), dropout masks as chapter 07's, forward, backward, the optimiser's update. Returns the loss. */
float train_better_cpu_step(TrainBetter *tb, const MnistSplit *split, const uint32_t *indices, const float *x,
                            const int32_t *labels, int n, uint64_t global_step);
/* The learning rate of step `global_step` (0-based). */
float train_better_lr(const TrainBetter *tb, uint64_t global_step);

/* The GPU path: allocate the device state and install the hooks into g's training step. */
void train_better_attach_gpu(TrainBetter *tb, GpuCnn *g);
/* At the start of each epoch: upload the learning rates of its steps (the first is global step `first_step`). */
void train_better_start_epoch(TrainBetter *tb, uint64_t first_step, size_t steps);
/* The optimiser's second state buffer between host and device (before a checkpoint, after a resume). */
void train_better_gpu_pull(TrainBetter *tb);
void train_better_gpu_push(TrainBetter *tb);
/* Free the device state (train_better_destroy calls it; nothing to do without a GPU path). */
void train_better_gpu_free(TrainBetter *tb);

/* The summary fields of chapter 10's settings, appended to fields[*count]; TRAIN_BETTER_JSON_FIELDS of them. */
#define TRAIN_BETTER_JSON_FIELDS 8
void train_better_json_fields(const TrainBetter *tb, JsonField *fields, size_t *count);
/* One line: "chapter 10: augment affine, optimizer adam, lr schedule cosine, ..." (nothing when !active). */
void train_better_print(const TrainBetter *tb);

void train_better_destroy(TrainBetter *tb);

#ifdef __cplusplus
}
#endif

#endif
