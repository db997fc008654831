/* gpu_cnn.h — Chapter 07: the course's CNN (chapter 03's cnn.h) trained on the GPU, one whole training step
 * without the host.
 *
 * Chapter 06 gave every layer as a GPU function; this file strings them into the network of chapter 03
 * (cnn.h) and keeps EVERYTHING on the device for the whole run:
 *
 *   - the data set: uploaded once as bytes (47 MB for 60,000 images); each step gathers its batch from the
 *     epoch's shuffled order and normalises it on the device (gather_normalize_kernel), so no image crosses
 *     PCIe after the start;
 *   - the parameters, gradients and momentum buffers: three flat device buffers (chapter 06's flat_layout),
 *     so the SGD update is one kernel;
 *   - the loss: each step writes its loss into a device array; the host fetches a window of losses now and
 *     then with an asynchronous copy into pinned memory and reads the PREVIOUS window (already finished), so
 *     the progress bar and the NaN guard never make the host wait for the step in flight;
 *   - evaluation: per-sample loss and prediction on the device, one copy back per evaluation;
 *   - the training step as a CUDA Graph (gpu_cnn_set_graph): captured once per batch size, then replayed
 *     with one launch per step instead of about 38. What changes from step to step (the batch's position,
 *     the dropout offset, the loss slot) lives in a small device "cursor" that the step advances itself.
 *
 * Dropout masks come from Philox (common/philox.h) with stream (seed, offset = 2 * global_step + layer), so
 * the CPU path (gpu_cnn_philox_masks below fills a chapter 03 Cnn's masks the same way) draws exactly the same
 * masks: `mnist_train --device cpu` and `--device cuda` with one seed train the same trajectory, differing
 * only by float rounding.
 *
 * This header is C (mnist_train.c includes it); gpu_cnn.cu implements it in CUDA C++.
 *
 *   GpuCnn *g = gpu_cnn_create(&host_net, 64, GPU_CNN_CUBLAS, &err);   // host_net: a chapter 03 Cnn (shapes)
 *   gpu_cnn_upload_data(g, &train, &test);
 *   gpu_cnn_set_parameters(g, &host_net);                              // the same initial weights as the CPU
 *   gpu_cnn_set_order(g, loader.order, train.count);                   // once per epoch
 *   gpu_cnn_train_step(g, first, n, seed, global_step, slot, lr, momentum);   // enqueued, returns at once
 *   ...
 *   size_t correct; double loss = gpu_cnn_evaluate(g, confusion, &correct);  // waits for the GPU
 *   gpu_cnn_get_parameters(g, &host_net);                              // for a checkpoint
 */
#ifndef CH07_GPU_CNN_H
#define CH07_GPU_CNN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "cnn.h" /* chapter 03: Cnn, CnnConfig, the tensor order */
#include "course_error.h"
#include "idx.h"

/* How the GPU network computes its convolutions and matrix products (chapter 06's choices). */
typedef enum GpuCnnKernels {
    GPU_CNN_CUBLAS = 0, /* im2col + cuBLAS, fully connected layers on cuBLAS (the fast default) */
    GPU_CNN_CH05 = 1, /* chapter 05's warp-tiled SGEMM where it applies, the tiled kernel elsewhere */
    GPU_CNN_TILED = 2, /* chapter 06's shared-memory tiled GEMM everywhere */
    GPU_CNN_DIRECT = 3, /* direct convolution kernels, tiled GEMM for the fully connected layers */
} GpuCnnKernels;

/* "cublas", "ch05", "tiled", "direct"; and the reverse (-1 for an unknown name). */
const char *gpu_cnn_kernels_name(GpuCnnKernels kernels);
int gpu_cnn_kernels_parse(const char *name);

/* Is there a GPU to run on? false with a reason in `why` (no device, or this build runs CUDA on the CPU
 * simulator). `name` gets the device's name when there is one. */
bool gpu_cnn_device_available(char *name, size_t name_size, char *why, size_t why_size);
/* true when this program was built against the CPU simulator (common/cusim) rather than real CUDA. */
bool gpu_cnn_is_simulator(void);

typedef struct GpuCnn GpuCnn;

/* Allocate every device buffer for the network shaped like `shape` (its config and sizes; its values are
 * not read) and batches of up to max_batch (evaluation uses batches of max(max_batch, 256)). Returns NULL
 * with err on a shape problem; a CUDA failure (out of memory) stops the program with CUDA_CHECK's message. */
GpuCnn *gpu_cnn_create(const Cnn *shape, int max_batch, GpuCnnKernels kernels, CourseError *err);
void gpu_cnn_destroy(GpuCnn *g);

/* Copy both splits' bytes and labels to the device (once). The splits must match the network's image size. */
void gpu_cnn_upload_data(GpuCnn *g, const MnistSplit *train, const MnistSplit *test);

/* Parameters and momentum buffers: host Cnn -> device, and back (the latter waits for the GPU). */
void gpu_cnn_set_parameters(GpuCnn *g, const Cnn *host);
void gpu_cnn_get_parameters(GpuCnn *g, Cnn *host);

/* This epoch's sample order (count = the training set's size), e.g. a DataLoader's order after
 * data_loader_start_epoch. Copied through pinned memory, asynchronously. */
void gpu_cnn_set_order(GpuCnn *g, const uint32_t *order, size_t count);

/* One SGD step on the n samples order[first .. first + n): gather + normalise, forward with dropout
 * (Philox stream (seed, 2 * global_step + layer)), loss into the device loss array at `slot`, backward,
 * SGD momentum. Only enqueues work: returns before the GPU has run it. slot < gpu_cnn_loss_slots(g). */
void gpu_cnn_train_step(GpuCnn *g, size_t first, int n, uint64_t seed, uint64_t global_step, size_t slot, float lr,
                        float momentum);
/* Run each training step as a CUDA Graph (captured at the first step of each batch size, replayed after) or
 * as separate launches. Both give the same bits. Returns whether graphs are now on; false with the reason in
 * `why` when they cannot be (the ch05 kernels). Off by default. */
bool gpu_cnn_set_graph(GpuCnn *g, bool on, char *why, size_t why_size);
/* Nodes (kernels, cuBLAS's kernels, copies) of the last step graph captured; 0 before the first. */
size_t gpu_cnn_graph_nodes(const GpuCnn *g);

/* Slots of the device loss array: enough for one epoch's steps (set by gpu_cnn_upload_data). */
size_t gpu_cnn_loss_slots(const GpuCnn *g);

/* Start copying the losses of slots [first, first + count) to pinned host memory, asynchronously (ticket 0
 * or 1: two copies can be in flight). gpu_cnn_losses_wait(ticket) waits for that copy and returns the host
 * array indexed by slot (entries outside the fetched range are stale). */
void gpu_cnn_losses_fetch(GpuCnn *g, size_t first, size_t count, int ticket);
const float *gpu_cnn_losses_wait(GpuCnn *g, int ticket);

/* Evaluate on the uploaded test split (no dropout). Waits for the GPU. Returns the mean loss; *correct gets
 * the number classified right; confusion (classes, classes), if not NULL, is filled (row = true label).
 * The same prediction rule as chapter 03's cnn_evaluate: the first largest logit. */
double gpu_cnn_evaluate(GpuCnn *g, size_t *correct, size_t *confusion);

/* Inference on images given by the host (serving, visualising): x (n, 1, S, S) already normalised, no
 * dropout, no gradients; logits (n, classes) come back. 1 <= n <= gpu_cnn_max_rows(g). Waits for the GPU.
 * Needs no uploaded data set. */
void gpu_cnn_predict(GpuCnn *g, const float *x, int n, float *logits);
/* Rows the activation buffers hold: max(max_batch given to gpu_cnn_create, the evaluation batch 256). */
int gpu_cnn_max_rows(const GpuCnn *g);

/* ---- Extension points (chapter 10) ---------------------------------------------------------------------------
 * Chapter 10 changes two parts of the training step without copying the rest: how the batch is made (data
 * augmentation instead of the plain gather + normalise) and how the parameters are updated (Adam, AdamW, a
 * learning-rate schedule, layers frozen or slowed). Both run inside the step, so inside its CUDA Graph: what
 * changes from step to step they must read from the device cursor below, never from their arguments. */

/* The values that change from one training step to the next, kept on the DEVICE. A CUDA Graph freezes its
 * kernels' arguments when it is captured, so a graph replayed every step cannot be handed the step's batch
 * position, dropout offset or loss slot as arguments; its kernels read them from here instead, and the
 * step's last kernel advances them for the next replay. */
typedef struct GpuStepCursor {
    uint64_t first; /* the batch's first position in the epoch's order */
    uint64_t philox_offset; /* 2 * global_step: dropout layer l draws from Philox offset philox_offset + l */
    uint64_t slot; /* the step's index in its epoch: the loss slot it writes */
} GpuStepCursor;

typedef struct GpuCnnHooks {
    void *context; /* passed back to both */
    /* Instead of gather + normalise (NULL: that): the batch of n samples at positions cursor->first .. of the
     * epoch's order, from the device-resident images (count, S*S) bytes and their labels, into x (n, 1, S, S)
     * normalised and labels (n). stream: the network's cudaStream_t, where everything must be enqueued. */
    void (*make_batch)(void *context, void *stream, const uint8_t *images, const int32_t *all_labels,
                       const uint32_t *order, const GpuStepCursor *cursor, int n, int image_size, float *x,
                       int32_t *labels);
    /* Instead of SGD momentum (NULL: that): update the flat parameter buffer (gpu_cnn_layout) from the
     * gradients; velocity is the network's momentum buffer (the first state buffer of any optimiser). */
    void (*update)(void *context, void *stream, float *params, const float *grads, float *velocity, size_t count,
                   const GpuStepCursor *cursor);
} GpuCnnHooks;

/* Use these hooks in every later training step (the step graphs are captured again). NULL: none. */
void gpu_cnn_set_hooks(GpuCnn *g, const GpuCnnHooks *hooks);
/* Where tensor t (CNN_CONV1_W ...) starts in the flat parameter, gradient and momentum buffers, and their
 * length (the gaps between tensors hold zeros). offsets: (CNN_TENSORS). */
void gpu_cnn_layout(const GpuCnn *g, size_t *offsets, size_t *flat_count);
/* The stream all of the network's work goes to (a cudaStream_t). */
void *gpu_cnn_stream(GpuCnn *g);

/* For tests: one step on batch data given by the host, with the dropout masks given (not drawn): x
 * (n, 1, S, S) normalised floats, labels (n), mask1 (n, F), mask2 (n, hidden) uint8. Returns the loss
 * (waits for the GPU). Used by the parity test against PyTorch's golden steps. */
float gpu_cnn_train_step_given(GpuCnn *g, const float *x, const int32_t *labels, const uint8_t *mask1,
                               const uint8_t *mask2, int n, float lr, float momentum);

/* The CPU path's dropout masks with the GPU's random numbers: fill net->mask1 (batch, F) and net->mask2
 * (batch, hidden) from Philox streams (seed, 2 * global_step) and (seed, 2 * global_step + 1) — bit for bit
 * the masks gpu_cnn_train_step draws for the same arguments. */
void gpu_cnn_philox_masks(Cnn *net, int batch, uint64_t seed, uint64_t global_step);

#ifdef __cplusplus
}
#endif

#endif
