/* train_better.cu — Chapter 10's options of mnist_train, the GPU side (see train_better.h): the two hooks that
 * replace chapter 07's batch and update inside the training step (and so inside its CUDA Graph), and the device
 * table of learning rates that lets a schedule change the rate every step without capturing the graph again. */
#include "train_better.h"

#include <stdio.h>
#include <string.h>

#include <cuda_runtime.h>

#include "cuda_check.h"

/* The step's learning rate and update count, from the device cursor, for the update kernel that follows: the
 * rate is the table's entry for the step's slot in its epoch, t = global step + 1 (philox_offset is 2 * global
 * step). One thread: two numbers. */
__global__ void step_lr_kernel(const GpuStepCursor *cursor, const float *lr_table, float *lr, uint64_t *t)
{
    *lr = lr_table[cursor->slot];
    *t = cursor->philox_offset / 2 + 1;
}

static void make_batch_hook(void *context, void *stream, const uint8_t *images, const int32_t *all_labels,
                            const uint32_t *order, const GpuStepCursor *cursor, int n, int image_size, float *x,
                            int32_t *labels)
{
    TrainBetter *tb = (TrainBetter *)context;
    /* &cursor->first is an address on the device: the kernel reads it when it runs. */
    augment_batch_gpu(&tb->augment, images, all_labels, order, &cursor->first, &cursor->philox_offset, n, image_size,
                      tb->seed, x, labels, stream);
}

static void update_hook(void *context, void *stream, float *params, const float *grads, float *velocity, size_t count,
                        const GpuStepCursor *cursor)
{
    TrainBetter *tb = (TrainBetter *)context;
    step_lr_kernel<<<1, 1, 0, (cudaStream_t)stream>>>(cursor, tb->d_lr_table, tb->d_lr, tb->d_t);
    CUDA_CHECK(cudaGetLastError());
    optim_step_gpu(&tb->optimizer, &tb->gpu_segments, params, grads, velocity, tb->d_second, count, tb->d_lr, tb->d_t,
                   stream);
}

void train_better_attach_gpu(TrainBetter *tb, GpuCnn *g)
{
    tb->gpu = g;
    gpu_cnn_layout(g, tb->gpu_offsets, &tb->flat_count);
    tb->gpu_segments.count = CNN_TENSORS;
    for (int t = 0; t < CNN_TENSORS; ++t) {
        tb->gpu_segments.start[t] = tb->gpu_offsets[t];
        tb->gpu_segments.end[t] = tb->gpu_offsets[t] + tb->net->tensors[t].count;
        tb->gpu_segments.lr_scale[t] = tb->layer_scale[t];
    }
    if (tb->second != NULL) {
        CUDA_CHECK(cudaMalloc(&tb->d_second, tb->flat_count * sizeof(float)));
        CUDA_CHECK(cudaMemset(tb->d_second, 0, tb->flat_count * sizeof(float))); /* the gaps stay zero */
    }
    tb->lr_slots = gpu_cnn_loss_slots(g); /* one per step of an epoch */
    CUDA_CHECK(cudaMalloc(&tb->d_lr_table, tb->lr_slots * sizeof(float)));
    CUDA_CHECK(cudaMallocHost(&tb->lr_pinned, tb->lr_slots * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&tb->d_lr, sizeof(float)));
    CUDA_CHECK(cudaMalloc(&tb->d_t, sizeof(uint64_t)));
    GpuCnnHooks hooks;
    memset(&hooks, 0, sizeof hooks);
    hooks.context = tb;
    hooks.make_batch = tb->augment.kind != AUGMENT_NONE ? make_batch_hook : NULL;
    hooks.update = update_hook;
    gpu_cnn_set_hooks(g, &hooks);
}

void train_better_start_epoch(TrainBetter *tb, uint64_t first_step, size_t steps)
{
    if (tb->gpu == NULL) {
        return;
    }
    if (steps > tb->lr_slots) {
        die("train_better_start_epoch: %zu steps, table of %zu", steps, tb->lr_slots);
    }
    /* The previous epoch's copy from lr_pinned finished long ago (its evaluation waited for the GPU), so the
     * pinned buffer can be refilled; the copy itself is ordered on the stream before this epoch's steps. */
    for (size_t s = 0; s < steps; ++s) {
        tb->lr_pinned[s] = train_better_lr(tb, first_step + s);
    }
    CUDA_CHECK(cudaMemcpyAsync(tb->d_lr_table, tb->lr_pinned, steps * sizeof(float), cudaMemcpyHostToDevice,
                               (cudaStream_t)gpu_cnn_stream(tb->gpu)));
}

/* Copy the second state buffer tensor by tensor: the host keeps the network's packed layout, the device
 * chapter 07's flat layout with gaps. */
static void copy_second(TrainBetter *tb, bool to_host)
{
    if (tb->gpu == NULL || tb->second == NULL) {
        return;
    }
    CUDA_CHECK(cudaStreamSynchronize((cudaStream_t)gpu_cnn_stream(tb->gpu)));
    for (int t = 0; t < CNN_TENSORS; ++t) {
        float *host = tb->second + (tb->net->tensors[t].value - tb->net->parameters);
        float *device = tb->d_second + tb->gpu_offsets[t];
        const size_t bytes = tb->net->tensors[t].count * sizeof(float);
        if (to_host) {
            CUDA_CHECK(cudaMemcpy(host, device, bytes, cudaMemcpyDeviceToHost));
        } else {
            CUDA_CHECK(cudaMemcpy(device, host, bytes, cudaMemcpyHostToDevice));
        }
    }
}

void train_better_gpu_pull(TrainBetter *tb) { copy_second(tb, true); }
void train_better_gpu_push(TrainBetter *tb) { copy_second(tb, false); }

void train_better_gpu_free(TrainBetter *tb)
{
    if (tb->gpu == NULL) {
        return;
    }
    CUDA_CHECK(cudaFree(tb->d_second));
    CUDA_CHECK(cudaFree(tb->d_lr_table));
    CUDA_CHECK(cudaFreeHost(tb->lr_pinned));
    CUDA_CHECK(cudaFree(tb->d_lr));
    CUDA_CHECK(cudaFree(tb->d_t));
    tb->gpu = NULL;
}
