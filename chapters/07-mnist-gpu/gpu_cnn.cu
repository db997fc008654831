/* gpu_cnn.cu — Chapter 07: the CNN's training step and evaluation on the GPU (see gpu_cnn.h).
 *
 * Built twice like every .cu of the course: by nvcc for a real GPU, and for the CPU simulator (common/cusim),
 * where chapter 07's tests run it. The layers are chapter 06's; this file adds the kernels a whole trainer
 * needs besides them (gather the batch, score the test set, keep the step's cursor), the bookkeeping that
 * keeps the host from ever waiting inside a step, and the CUDA Graph that replays a whole step as one launch.
 */
#include "gpu_cnn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "cuda_basics.h" /* chapter 04: softmax_xent_backward */
#include "cuda_check.h"
#include "cuda_layers.h" /* chapter 06: every layer */
#include "philox.h"

extern "C" {
#include "train_util.h" /* MNIST_MEAN, MNIST_STD */
}

#define EVAL_BATCH 256 /* test images per evaluation batch */

/* The step's device cursor (gpu_cnn.h says why it exists); finish_step_kernel advances it. */
typedef GpuStepCursor StepCursor;

/* One graph of the training step, for one batch size and one set of frozen arguments. */
struct StepGraph {
    enum { EMPTY, WARMED_UP, CAPTURED } state; /* WARMED_UP: this shape ran once uncaptured, not yet recorded */
    int n;
    uint64_t seed;
    float lr, momentum;
    cudaGraphExec_t exec;
};

struct GpuCnn {
    CnnConfig config;
    GpuCnnKernels kernels;
    ConvAlgorithm conv_algorithm;
    GpuGemm gemm;
    int max_batch; /* rows every activation buffer holds: max(training batch, EVAL_BATCH) */
    Conv2dShape conv1, conv2; /* .batch set per call */
    int h2, w2, h3, w3; /* conv2's output and pooling's output sizes */
    size_t features; /* F = C2 * H3 * W3 */
    size_t image_pixels; /* S * S */

    /* Parameters, gradients, momentum: one flat device buffer each, tensor t at offsets[t]. */
    size_t sizes[CNN_TENSORS], offsets[CNN_TENSORS], flat_count;
    float *params, *grads, *velocity;

    /* The data set, on the device for the whole run. */
    uint8_t *train_images, *test_images; /* (count, S*S) raw bytes */
    int32_t *train_labels, *test_labels; /* (count) */
    size_t train_count, test_count;
    uint32_t *order; /* (train_count) this epoch's sample order */
    uint32_t *order_pinned; /* (train_count) host staging for it */

    /* Activations (max_batch rows). */
    float *x; /* (B, 1, S, S) the normalised batch */
    int32_t *labels; /* (B) */
    float *r1; /* (B, C1, H1, W1) relu(conv1) */
    float *r2; /* (B, C2, H2, W2) relu(conv2) */
    float *pooled; /* (B, C2, H3, W3) = (B, F) */
    int32_t *argmax; /* (B, C2, H3, W3) */
    uint8_t *mask1; /* (B, F) */
    float *dropped1; /* (B, F) */
    float *hidden; /* (B, hidden) relu(fc1) */
    uint8_t *mask2; /* (B, hidden) */
    float *dropped2; /* (B, hidden) */
    float *logits, *probs; /* (B, classes) */
    /* Gradients flowing backwards. */
    float *d_logits; /* (B, classes) */
    float *d_hidden, *dz_hidden; /* (B, hidden): gradient w.r.t. the hidden layer, and after relu's mask */
    float *d_features; /* (B, F) */
    float *d_conv2; /* (B, C2, H2, W2) */
    float *d_conv1; /* (B, C1, H1, W1) */
    float *workspace; /* im2col columns and GEMM outputs, sized for the larger convolution */

    /* The stream all of the network's work goes to (a created one: the legacy stream cannot be captured). */
    cudaStream_t stream;
    /* The step's cursor on the device, and what it will hold once the work enqueued so far has run. */
    StepCursor *cursor;
    StepCursor cursor_expected;
    float *step_loss; /* (1) the current step's loss, before finish_step_kernel files it */
    /* The CUDA Graph of the training step: on or off, the graphs (a full batch and the last partial one),
     * and the node count of the last one captured. */
    bool use_graph;
    StepGraph graphs[2];
    /* Chapter 10's replacements for the batch and the update (gpu_cnn_set_hooks); all NULL by default. */
    GpuCnnHooks hooks;
    size_t graph_nodes;

    /* Losses: one device slot per step of an epoch, and their pinned host mirror. */
    float *losses, *losses_pinned;
    size_t loss_slots;
    cudaEvent_t loss_ready[2];
    /* Evaluation: per test sample. */
    float *eval_loss; /* (test_count) */
    int32_t *eval_predicted; /* (test_count) */
};

static int blocks_for(size_t n)
{
    const size_t blocks = (n + CH06_THREADS - 1) / CH06_THREADS;
    return blocks == 0 ? 1 : blocks > 65535 ? 65535 : (int)blocks;
}

const char *gpu_cnn_kernels_name(GpuCnnKernels kernels)
{
    switch (kernels) {
    case GPU_CNN_CUBLAS: return "cublas";
    case GPU_CNN_CH05: return "ch05";
    case GPU_CNN_TILED: return "tiled";
    case GPU_CNN_DIRECT: return "direct";
    }
    return "?";
}

int gpu_cnn_kernels_parse(const char *name)
{
    for (int k = GPU_CNN_CUBLAS; k <= GPU_CNN_DIRECT; ++k) {
        if (strcmp(name, gpu_cnn_kernels_name((GpuCnnKernels)k)) == 0) {
            return k;
        }
    }
    return -1;
}

bool gpu_cnn_is_simulator(void)
{
#ifdef __CUSIM__
    return true;
#else
    return false;
#endif
}

bool gpu_cnn_device_available(char *name, size_t name_size, char *why, size_t why_size)
{
    name[0] = why[0] = '\0';
    if (gpu_cnn_is_simulator()) {
        snprintf(why, why_size, "this build runs CUDA code on the CPU simulator (common/cusim), not on a GPU");
        return false;
    }
    int count = 0;
    const cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess || count == 0) {
        snprintf(why, why_size, "no CUDA device (%s)",
                 status != cudaSuccess ? cudaGetErrorString(status) : "cudaGetDeviceCount found none");
        (void)cudaGetLastError(); /* clear the sticky error */
        return false;
    }
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    snprintf(name, name_size, "%s", prop.name);
    return true;
}

/* ---- Kernels of this chapter ----------------------------------------------------------------------------- */

/* x[b][p] = (images[order[first + b]][p] / 255 - mean) / std and labels[b] = all_labels[order[first + b]]:
 * the batch is gathered and normalised on the device, with exactly the float operations of the CPU loader
 * (normalize_pixels in common/train_util.c), so both paths see identical inputs. order == NULL means samples
 * first .. first + n - 1 in file order (evaluation). One thread per pixel.
 * The first position is first_add + *first_base: a training step reads it from the device cursor (first_base
 * = &cursor->first, first_add = 0), which is what lets a CUDA Graph replay the step; evaluation gives it as
 * a value (first_base = NULL). */
__global__ void gather_normalize_kernel(const uint8_t *images, const int32_t *all_labels, const uint32_t *order,
                                        const uint64_t *first_base, size_t first_add, int n, int pixels, float *x,
                                        int32_t *labels)
{
    /* BEGIN EXERCISE ch07.gather_normalize: first = first_add + (first_base ? *first_base : 0); for each i < n*pixels (grid-stride): b = i / pixels, p = i % pixels; sample = order ? order[first + b] : first + b; x[i] = (images[sample*pixels + p] / 255.0f - MNIST_MEAN) / MNIST_STD; the thread with p == 0 also writes labels[b] = all_labels[sample] (about 10 lines) | zh: first = first_add + (first_base ? *first_base : 0)；对每个 i < n*pixels（网格跨步）：b = i / pixels，p = i % pixels；sample = order ? order[first + b] : first + b；x[i] = (images[sample*pixels + p] / 255.0f - MNIST_MEAN) / MNIST_STD；p == 0 的线程还要写 labels[b] = all_labels[sample]（约 10 行） */
    const size_t first = first_add + (first_base != NULL ? *first_base : 0);
    const size_t total = (size_t)n * pixels;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)blockDim.x * gridDim.x) {
        const size_t b = i / pixels, p = i % pixels;
        const size_t sample = order != NULL ? order[first + b] : first + b;
        x[i] = ((float)images[sample * pixels + p] / 255.0f - MNIST_MEAN) / MNIST_STD;
        if (p == 0) {
            labels[b] = all_labels[sample];
        }
    }
    /* END EXERCISE */
}

/* Evaluation: for each row of logits (n, classes), the cross-entropy loss against its label and the
 * prediction (the FIRST largest logit, as chapter 02's argmax), written at [first + row] of the whole test
 * set's arrays. One thread per row: 10 classes are too few to share. A label out of range gives NaN. */
__global__ void score_rows_kernel(const float *logits, const int32_t *labels, int n, int classes, size_t first,
                                  float *loss, int32_t *predicted)
{
    /* BEGIN EXERCISE ch07.score_rows: one thread per row r < n of logits (n, classes): best = the first index of the largest logit; loss = max + log(sum_k exp(z_k - max)) - z[label] (NaN for a label outside [0, classes)); write loss[first + r] and predicted[first + r] (about 20 lines) | zh: logits (n, classes) 每行 r < n 一个线程：best = 最大 logit 的第一个下标；loss = max + log(sum_k exp(z_k - max)) - z[label]（label 不在 [0, classes) 内时为 NaN）；写 loss[first + r] 和 predicted[first + r]（约 20 行） */
    const int row = blockIdx.x * blockDim.x + threadIdx.x;
    if (row >= n) {
        return;
    }
    const float *z = logits + (size_t)row * classes;
    int best = 0;
    float max = z[0];
    for (int k = 1; k < classes; ++k) {
        if (z[k] > z[best]) {
            best = k;
        }
        max = fmaxf(max, z[k]);
    }
    float sum = 0.0f;
    for (int k = 0; k < classes; ++k) {
        sum += expf(z[k] - max);
    }
    const int label = labels[row];
    loss[first + row] = (label >= 0 && label < classes) ? max + logf(sum) - z[label] : NAN;
    predicted[first + row] = best;
    /* END EXERCISE */
}

/* The training step's last kernel: file the step's loss in its slot and move the cursor to the next step.
 * One thread; it runs after every other kernel of the step (same stream), so nothing reads the cursor while
 * it changes. */
__global__ void finish_step_kernel(StepCursor *cursor, const float *step_loss, float *losses, int n)
{
    losses[cursor->slot] = *step_loss;
    cursor->first += (uint64_t)n;
    cursor->philox_offset += 2; /* two dropout layers per step */
    cursor->slot += 1;
}

/* Put the cursor where the host says (the first step of an epoch, or a resume), in stream order. */
__global__ void set_cursor_kernel(StepCursor *cursor, StepCursor value)
{
    *cursor = value;
}

/* ---- Creation ------------------------------------------------------------------------------------------- */

template <typename T> static T *device_alloc(size_t count)
{
    T *p = NULL;
    CUDA_CHECK(cudaMalloc(&p, (count > 0 ? count : 1) * sizeof(T)));
    return p;
}

GpuCnn *gpu_cnn_create(const Cnn *shape, int max_batch, GpuCnnKernels kernels, CourseError *err)
{
    if (max_batch < 1) {
        error_set(err, "gpu_cnn_create", "the batch must be at least 1 (got %d)", max_batch);
        return NULL;
    }
    GpuCnn *g = (GpuCnn *)xcalloc(1, sizeof *g);
    g->config = shape->config;
    g->kernels = kernels;
    static const ConvAlgorithm CONV[] = {CONV_IM2COL_CUBLAS, CONV_IM2COL_CH05, CONV_IM2COL_TILED, CONV_DIRECT};
    static const GpuGemm GEMM[] = {GPU_GEMM_CUBLAS, GPU_GEMM_CH05, GPU_GEMM_TILED, GPU_GEMM_TILED};
    g->conv_algorithm = CONV[kernels];
    g->gemm = GEMM[kernels];
    g->max_batch = max_batch > EVAL_BATCH ? max_batch : EVAL_BATCH;
    g->conv1 = shape->conv1;
    g->conv2 = shape->conv2;
    g->conv1.batch = g->conv2.batch = g->max_batch;
    g->h2 = shape->h2;
    g->w2 = shape->w2;
    g->h3 = shape->h3;
    g->w3 = shape->w3;
    g->features = shape->features;
    g->image_pixels = (size_t)g->config.image_size * g->config.image_size;

    for (int t = 0; t < CNN_TENSORS; ++t) {
        g->sizes[t] = shape->tensors[t].count;
    }
    g->flat_count = flat_layout(g->sizes, CNN_TENSORS, g->offsets);
    g->params = device_alloc<float>(g->flat_count);
    g->grads = device_alloc<float>(g->flat_count);
    g->velocity = device_alloc<float>(g->flat_count);
    /* The padding between tensors must hold zeros (sgd_momentum_gpu runs over it); the gradients' padding is
     * never written afterwards, so zeroing once is enough. */
    CUDA_CHECK(cudaMemset(g->params, 0, g->flat_count * sizeof(float)));
    CUDA_CHECK(cudaMemset(g->grads, 0, g->flat_count * sizeof(float)));
    CUDA_CHECK(cudaMemset(g->velocity, 0, g->flat_count * sizeof(float)));

    const size_t B = (size_t)g->max_batch;
    const CnnConfig *c = &g->config;
    const size_t conv1_size = B * c->conv1_channels * shape->h1 * shape->w1;
    const size_t conv2_size = B * c->conv2_channels * g->h2 * g->w2;
    const size_t pooled_size = B * g->features;
    g->x = device_alloc<float>(B * g->image_pixels);
    g->labels = device_alloc<int32_t>(B);
    g->r1 = device_alloc<float>(conv1_size);
    g->r2 = device_alloc<float>(conv2_size);
    g->pooled = device_alloc<float>(pooled_size);
    g->argmax = device_alloc<int32_t>(pooled_size);
    g->mask1 = device_alloc<uint8_t>(pooled_size);
    g->dropped1 = device_alloc<float>(pooled_size);
    g->hidden = device_alloc<float>(B * c->hidden);
    g->mask2 = device_alloc<uint8_t>(B * c->hidden);
    g->dropped2 = device_alloc<float>(B * c->hidden);
    g->logits = device_alloc<float>(B * c->classes);
    g->probs = device_alloc<float>(B * c->classes);
    g->d_logits = device_alloc<float>(B * c->classes);
    g->d_hidden = device_alloc<float>(B * c->hidden);
    g->dz_hidden = device_alloc<float>(B * c->hidden);
    g->d_features = device_alloc<float>(pooled_size);
    g->d_conv2 = device_alloc<float>(conv2_size);
    g->d_conv1 = device_alloc<float>(conv1_size);
    const size_t ws1 = conv2d_gpu_workspace_floats(&g->conv1, g->conv_algorithm);
    const size_t ws2 = conv2d_gpu_workspace_floats(&g->conv2, g->conv_algorithm);
    g->workspace = device_alloc<float>(ws1 > ws2 ? ws1 : ws2);
    CUDA_CHECK(cudaEventCreateWithFlags(&g->loss_ready[0], cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&g->loss_ready[1], cudaEventDisableTiming));
    g->cursor = device_alloc<StepCursor>(1);
    g->cursor_expected.first = UINT64_MAX; /* unknown: the first step sets it */
    g->step_loss = device_alloc<float>(1);
    /* A blocking stream (cudaStreamCreate's default): the plain cudaMemcpy calls below, on the legacy stream,
     * wait for it and it waits for them, so they keep their place in the order without extra syncs. */
    CUDA_CHECK(cudaStreamCreate(&g->stream));
    g->use_graph = false;
    return g;
}

bool gpu_cnn_set_graph(GpuCnn *g, bool on, char *why, size_t why_size)
{
    why[0] = '\0';
    if (on && g->kernels == GPU_CNN_CH05) {
        snprintf(why, why_size, "chapter 05's kernel is launched by chapter 05's code on the legacy default stream, "
                                "which cannot be captured");
        on = false;
    }
    g->use_graph = on;
    return on;
}

size_t gpu_cnn_graph_nodes(const GpuCnn *g) { return g->graph_nodes; }

static void destroy_graphs(GpuCnn *g)
{
    for (int i = 0; i < 2; ++i) {
        if (g->graphs[i].state == StepGraph::CAPTURED) {
            CUDA_CHECK(cudaGraphExecDestroy(g->graphs[i].exec));
        }
        g->graphs[i].state = StepGraph::EMPTY;
    }
}

void gpu_cnn_set_hooks(GpuCnn *g, const GpuCnnHooks *hooks)
{
    destroy_graphs(g); /* a captured graph holds the old batch and update kernels */
    if (hooks != NULL) {
        g->hooks = *hooks;
    } else {
        memset(&g->hooks, 0, sizeof g->hooks);
    }
}

void gpu_cnn_layout(const GpuCnn *g, size_t *offsets, size_t *flat_count)
{
    for (int t = 0; t < CNN_TENSORS; ++t) {
        offsets[t] = g->offsets[t];
    }
    *flat_count = g->flat_count;
}

void *gpu_cnn_stream(GpuCnn *g) { return (void *)g->stream; }

void gpu_cnn_destroy(GpuCnn *g)
{
    if (g == NULL) {
        return;
    }
    void *device[] = {g->params, g->grads, g->velocity, g->train_images, g->test_images, g->train_labels,
                      g->test_labels, g->order, g->x, g->labels, g->r1, g->r2, g->pooled, g->argmax, g->mask1,
                      g->dropped1, g->hidden, g->mask2, g->dropped2, g->logits, g->probs, g->d_logits,
                      g->d_hidden, g->dz_hidden, g->d_features, g->d_conv2, g->d_conv1, g->workspace, g->losses,
                      g->eval_loss, g->eval_predicted, g->cursor, g->step_loss};
    CUDA_CHECK(cudaStreamSynchronize(g->stream));
    destroy_graphs(g);
    for (size_t i = 0; i < sizeof device / sizeof device[0]; ++i) {
        CUDA_CHECK(cudaFree(device[i]));
    }
    CUDA_CHECK(cudaFreeHost(g->order_pinned));
    CUDA_CHECK(cudaFreeHost(g->losses_pinned));
    CUDA_CHECK(cudaEventDestroy(g->loss_ready[0]));
    CUDA_CHECK(cudaEventDestroy(g->loss_ready[1]));
    if (cuda_layers_stream() == g->stream) {
        cuda_layers_set_stream(0);
    }
    CUDA_CHECK(cudaStreamDestroy(g->stream));
    free(g);
}

/* ---- Data, parameters, order ----------------------------------------------------------------------------- */

static void upload_split(const MnistSplit *split, size_t pixels, uint8_t **images, int32_t **labels)
{
    *images = device_alloc<uint8_t>(split->count * pixels);
    *labels = device_alloc<int32_t>(split->count);
    CUDA_CHECK(cudaMemcpy(*images, split->images, split->count * pixels, cudaMemcpyHostToDevice));
    int32_t *host_labels = (int32_t *)xmalloc((split->count > 0 ? split->count : 1) * sizeof *host_labels);
    for (size_t i = 0; i < split->count; ++i) {
        host_labels[i] = split->labels[i];
    }
    CUDA_CHECK(cudaMemcpy(*labels, host_labels, split->count * sizeof *host_labels, cudaMemcpyHostToDevice));
    free(host_labels);
}

void gpu_cnn_upload_data(GpuCnn *g, const MnistSplit *train, const MnistSplit *test)
{
    if (train->rows * train->cols != g->image_pixels || test->rows * test->cols != g->image_pixels) {
        die("gpu_cnn_upload_data: images of %zux%zu do not fit a network built for %dx%d", train->rows, train->cols,
            g->config.image_size, g->config.image_size);
    }
    upload_split(train, g->image_pixels, &g->train_images, &g->train_labels);
    upload_split(test, g->image_pixels, &g->test_images, &g->test_labels);
    g->train_count = train->count;
    g->test_count = test->count;
    g->order = device_alloc<uint32_t>(train->count);
    CUDA_CHECK(cudaMallocHost(&g->order_pinned, (train->count > 0 ? train->count : 1) * sizeof(uint32_t)));
    /* One loss slot per step of an epoch, for the smallest batch a caller may use (1): a training run of
     * batch B uses the first ceil(count / B) slots. */
    g->loss_slots = train->count > 0 ? train->count : 1;
    g->losses = device_alloc<float>(g->loss_slots);
    CUDA_CHECK(cudaMallocHost(&g->losses_pinned, g->loss_slots * sizeof(float)));
    g->eval_loss = device_alloc<float>(test->count);
    g->eval_predicted = device_alloc<int32_t>(test->count);
}

void gpu_cnn_set_parameters(GpuCnn *g, const Cnn *host)
{
    for (int t = 0; t < CNN_TENSORS; ++t) {
        const CnnTensor *tensor = &host->tensors[t];
        CUDA_CHECK(cudaMemcpy(g->params + g->offsets[t], tensor->value, tensor->count * sizeof(float),
                              cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(g->velocity + g->offsets[t], tensor->velocity, tensor->count * sizeof(float),
                              cudaMemcpyHostToDevice));
    }
}

void gpu_cnn_get_parameters(GpuCnn *g, Cnn *host)
{
    for (int t = 0; t < CNN_TENSORS; ++t) {
        CnnTensor *tensor = &host->tensors[t];
        CUDA_CHECK(cudaMemcpy(tensor->value, g->params + g->offsets[t], tensor->count * sizeof(float),
                              cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(tensor->velocity, g->velocity + g->offsets[t], tensor->count * sizeof(float),
                              cudaMemcpyDeviceToHost));
    }
}

void gpu_cnn_set_order(GpuCnn *g, const uint32_t *order, size_t count)
{
    if (count != g->train_count) {
        die("gpu_cnn_set_order: %zu indices for a training set of %zu", count, g->train_count);
    }
    /* The previous epoch's copy out of order_pinned finished long ago: every epoch ends with an evaluation,
     * which waits for the GPU. So the staging buffer can be overwritten now. */
    memcpy(g->order_pinned, order, count * sizeof *order);
    CUDA_CHECK(cudaMemcpyAsync(g->order, g->order_pinned, count * sizeof *order, cudaMemcpyHostToDevice, g->stream));
}

size_t gpu_cnn_loss_slots(const GpuCnn *g) { return g->loss_slots; }

/* ---- The training step ---------------------------------------------------------------------------------- */

/* Chapter 06's functions launch on the stream last given to cuda_layers_set_stream: make it this network's
 * before enqueuing its work (two networks in one program each keep to their own stream). */
static void use_stream(GpuCnn *g)
{
    if (cuda_layers_stream() != g->stream) {
        cuda_layers_set_stream(g->stream);
    }
}

static float *param(GpuCnn *g, int t) { return g->params + g->offsets[t]; }
static float *grad(GpuCnn *g, int t) { return g->grads + g->offsets[t]; }

/* What dropout does in a forward pass. */
typedef enum DropoutMode {
    DROPOUT_OFF, /* evaluation: dropout is the identity */
    DROPOUT_DRAW, /* training: draw Philox masks (seed, cursor->philox_offset + layer) and apply them, in one
                   * kernel each */
    DROPOUT_GIVEN, /* training with the masks already in mask1/mask2 (the parity test's PyTorch masks) */
} DropoutMode;

/* Inverted dropout on n values: x -> y with mask (drawn or given), as the mode says; `layer` 0 or 1. */
static void dropout(GpuCnn *g, DropoutMode mode, const float *x, float *y, uint8_t *mask, size_t n, float p,
                    uint64_t seed, int layer)
{
    if (mode == DROPOUT_DRAW) {
        /* The offset is read from the device cursor when the kernel runs (see StepCursor). */
        dropout_forward_gpu_device_offset(x, y, mask, n, p, seed, &g->cursor->philox_offset, (uint64_t)layer);
    } else {
        /* With a given mask, y = x * mask / (1 - p) is exactly dropout's backward formula. */
        dropout_backward_gpu(x, mask, y, n, p);
    }
}

/* The forward pass from g->x (n rows) to g->logits. */
static void forward(GpuCnn *g, int n, DropoutMode mode, uint64_t seed)
{
    const CnnConfig *c = &g->config;
    g->conv1.batch = g->conv2.batch = n;
    /* conv + bias + ReLU in one pass each (chapter 06's fused epilogue): r = relu(conv(x) + b) */
    conv2d_forward_gpu(g->conv_algorithm, &g->conv1, g->x, param(g, CNN_CONV1_W), param(g, CNN_CONV1_B), g->r1,
                       true, g->workspace);
    conv2d_forward_gpu(g->conv_algorithm, &g->conv2, g->r1, param(g, CNN_CONV2_W), param(g, CNN_CONV2_B), g->r2,
                       true, g->workspace);
    maxpool2_forward_gpu(g->r2, g->pooled, g->argmax, n, c->conv2_channels, g->h2, g->w2);
    const float *features = g->pooled; /* flatten: (n, C2, H3, W3) is (n, F) in memory */
    if (mode != DROPOUT_OFF) {
        dropout(g, mode, g->pooled, g->dropped1, g->mask1, (size_t)n * g->features, c->dropout1, seed, 0);
        features = g->dropped1;
    }
    linear_forward_gpu(g->gemm, features, param(g, CNN_FC1_W), param(g, CNN_FC1_B), g->hidden, n,
                       (int)g->features, c->hidden, true);
    const float *hidden = g->hidden;
    if (mode != DROPOUT_OFF) {
        dropout(g, mode, g->hidden, g->dropped2, g->mask2, (size_t)n * c->hidden, c->dropout2, seed, 1);
        hidden = g->dropped2;
    }
    linear_forward_gpu(g->gemm, hidden, param(g, CNN_FC2_W), param(g, CNN_FC2_B), g->logits, n, c->hidden,
                       c->classes, false);
}

/* Loss into *loss (on the device), backward, SGD: the rest of a training step after a training forward. */
static void loss_backward_update(GpuCnn *g, int n, float *loss, float lr, float momentum)
{
    const CnnConfig *c = &g->config;
    const size_t nf = (size_t)n * g->features, nh = (size_t)n * c->hidden;
    softmax_xent_forward_gpu(g->logits, g->labels, g->probs, loss, n, c->classes);
    softmax_xent_backward_gpu(g->probs, g->labels, g->d_logits, n, c->classes);
    linear_backward_gpu(g->gemm, g->dropped2, param(g, CNN_FC2_W), NULL, g->d_logits, false, NULL, g->d_hidden,
                        grad(g, CNN_FC2_W), grad(g, CNN_FC2_B), n, c->hidden, c->classes);
    dropout_backward_gpu(g->d_hidden, g->mask2, g->d_hidden, nh, c->dropout2); /* in place: element-wise */
    linear_backward_gpu(g->gemm, g->dropped1, param(g, CNN_FC1_W), g->hidden, g->d_hidden, true, g->dz_hidden,
                        g->d_features, grad(g, CNN_FC1_W), grad(g, CNN_FC1_B), n, (int)g->features, c->hidden);
    dropout_backward_gpu(g->d_features, g->mask1, g->d_features, nf, c->dropout1);
    maxpool2_backward_gpu(g->d_features, g->argmax, g->d_conv2, n, c->conv2_channels, g->h2, g->w2);
    /* relu's mask is applied inside the convolution's backward (from its output r2, r1) */
    conv2d_backward_gpu(g->conv_algorithm, &g->conv2, g->r1, param(g, CNN_CONV2_W), g->r2, g->d_conv2, true,
                        g->d_conv1, grad(g, CNN_CONV2_W), grad(g, CNN_CONV2_B), g->workspace);
    conv2d_backward_gpu(g->conv_algorithm, &g->conv1, g->x, param(g, CNN_CONV1_W), g->r1, g->d_conv1, true, NULL,
                        grad(g, CNN_CONV1_W), grad(g, CNN_CONV1_B), g->workspace);
    if (g->hooks.update != NULL) {
        g->hooks.update(g->hooks.context, g->stream, g->params, g->grads, g->velocity, g->flat_count, g->cursor);
    } else {
        sgd_momentum_gpu(g->params, g->grads, g->velocity, g->flat_count, lr, momentum, 0.0f);
    }
}

/* Enqueue one whole training step of n samples at the device cursor, on g->stream: gather, forward, loss,
 * backward, SGD, and finish_step_kernel. Everything that changes between steps is read from the cursor, so
 * that this sequence, captured once, is a graph that every later step replays. */
static void enqueue_train_step(GpuCnn *g, int n, uint64_t seed, float lr, float momentum)
{
    if (g->hooks.make_batch != NULL) {
        g->hooks.make_batch(g->hooks.context, g->stream, g->train_images, g->train_labels, g->order, g->cursor, n,
                            g->config.image_size, g->x, g->labels);
    } else {
        gather_normalize_kernel<<<blocks_for((size_t)n * g->image_pixels), CH06_THREADS, 0, g->stream>>>(
            g->train_images, g->train_labels, g->order, &g->cursor->first, 0, n, (int)g->image_pixels, g->x,
            g->labels);
    }
    CUDA_CHECK(cudaGetLastError());
    forward(g, n, DROPOUT_DRAW, seed);
    loss_backward_update(g, n, g->step_loss, lr, momentum);
    finish_step_kernel<<<1, 1, 0, g->stream>>>(g->cursor, g->step_loss, g->losses, n);
    CUDA_CHECK(cudaGetLastError());
}

/* The instantiated graph for a step of n samples with these frozen arguments, or NULL: run this step
 * uncaptured. A shape's first step runs uncaptured, as a warm-up (a library may set itself up on first use,
 * allocating a workspace or loading kernels, which must not happen inside a capture); its second step is
 * captured, and later ones replay that graph. A run needs two shapes (the full batch, and the epoch's last
 * partial batch); a third replaces the second. */
static const StepGraph *step_graph(GpuCnn *g, int n, uint64_t seed, float lr, float momentum)
{
    StepGraph *s = NULL;
    for (int i = 0; i < 2 && s == NULL; ++i) {
        StepGraph *t = &g->graphs[i];
        if (t->state != StepGraph::EMPTY && t->n == n && t->seed == seed && t->lr == lr && t->momentum == momentum) {
            s = t;
        }
    }
    if (s != NULL && s->state == StepGraph::CAPTURED) {
        return s;
    }
    if (s == NULL) { /* a new shape: remember it, and warm up */
        s = g->graphs[0].state == StepGraph::EMPTY ? &g->graphs[0] : &g->graphs[1];
        if (s->state == StepGraph::CAPTURED) {
            CUDA_CHECK(cudaGraphExecDestroy(s->exec));
        }
        s->state = StepGraph::WARMED_UP;
        s->n = n;
        s->seed = seed;
        s->lr = lr;
        s->momentum = momentum;
        return NULL;
    }
    /* Capture: the kernels (and cuBLAS's) enqueued on the stream between Begin and End are recorded, not run. */
    cudaGraph_t graph;
    CUDA_CHECK(cudaStreamBeginCapture(g->stream, cudaStreamCaptureModeGlobal));
    enqueue_train_step(g, n, seed, lr, momentum);
    CUDA_CHECK(cudaStreamEndCapture(g->stream, &graph));
    CUDA_CHECK(cudaGraphGetNodes(graph, NULL, &g->graph_nodes));
    CUDA_CHECK(cudaGraphInstantiate(&s->exec, graph, 0));
    CUDA_CHECK(cudaGraphDestroy(graph)); /* the executable graph keeps what it needs */
    s->state = StepGraph::CAPTURED;
    return s;
}

void gpu_cnn_train_step(GpuCnn *g, size_t first, int n, uint64_t seed, uint64_t global_step, size_t slot, float lr,
                        float momentum)
{
    if (n < 1 || n > g->max_batch || first + (size_t)n > g->train_count || slot >= g->loss_slots) {
        die("gpu_cnn_train_step: samples [%zu, %zu) of %zu, batch limit %d, loss slot %zu of %zu", first,
            first + (size_t)n, g->train_count, g->max_batch, slot, g->loss_slots);
    }
    /* The cursor moves by itself from one step to the next; it is set only where the caller jumps (the first
     * step of an epoch, a resume). */
    use_stream(g);
    const StepCursor want = {first, 2 * global_step, slot};
    if (memcmp(&want, &g->cursor_expected, sizeof want) != 0) {
        set_cursor_kernel<<<1, 1, 0, g->stream>>>(g->cursor, want);
        CUDA_CHECK(cudaGetLastError());
    }
    const StepGraph *graph = g->use_graph ? step_graph(g, n, seed, lr, momentum) : NULL;
    if (graph != NULL) {
        CUDA_CHECK(cudaGraphLaunch(graph->exec, g->stream));
    } else {
        enqueue_train_step(g, n, seed, lr, momentum);
    }
    const StepCursor next = {first + (uint64_t)n, 2 * global_step + 2, slot + 1}; /* what finish_step leaves */
    g->cursor_expected = next;
}

float gpu_cnn_train_step_given(GpuCnn *g, const float *x, const int32_t *labels, const uint8_t *mask1,
                               const uint8_t *mask2, int n, float lr, float momentum)
{
    if (n < 1 || n > g->max_batch || g->losses == NULL) {
        die("gpu_cnn_train_step_given: batch %d (limit %d), or no data uploaded", n, g->max_batch);
    }
    use_stream(g);
    CUDA_CHECK(cudaMemcpy(g->x, x, (size_t)n * g->image_pixels * sizeof *x, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(g->labels, labels, (size_t)n * sizeof *labels, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(g->mask1, mask1, (size_t)n * g->features, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(g->mask2, mask2, (size_t)n * g->config.hidden, cudaMemcpyHostToDevice));
    forward(g, n, DROPOUT_GIVEN, 0);
    loss_backward_update(g, n, g->losses, lr, momentum);
    float loss;
    CUDA_CHECK(cudaMemcpy(&loss, g->losses, sizeof loss, cudaMemcpyDeviceToHost));
    return loss;
}

/* ---- Losses back to the host, without waiting ------------------------------------------------------------ */

void gpu_cnn_losses_fetch(GpuCnn *g, size_t first, size_t count, int ticket)
{
    if (first + count > g->loss_slots || ticket < 0 || ticket > 1) {
        die("gpu_cnn_losses_fetch: slots [%zu, %zu) of %zu, ticket %d", first, first + count, g->loss_slots, ticket);
    }
    /* Pinned (page-locked) host memory is what lets this copy run asynchronously: the GPU's copy engine writes
     * it directly while the host goes on queueing steps. From pageable memory the copy would be synchronous. */
    CUDA_CHECK(cudaMemcpyAsync(g->losses_pinned + first, g->losses + first, count * sizeof(float),
                               cudaMemcpyDeviceToHost, g->stream));
    CUDA_CHECK(cudaEventRecord(g->loss_ready[ticket], g->stream));
}

const float *gpu_cnn_losses_wait(GpuCnn *g, int ticket)
{
    CUDA_CHECK(cudaEventSynchronize(g->loss_ready[ticket]));
    return g->losses_pinned;
}

/* ---- Evaluation ----------------------------------------------------------------------------------------- */

double gpu_cnn_evaluate(GpuCnn *g, size_t *correct, size_t *confusion)
{
    const int K = g->config.classes;
    use_stream(g);
    for (size_t first = 0; first < g->test_count; first += (size_t)g->max_batch) {
        const size_t left = g->test_count - first;
        const int n = left < (size_t)g->max_batch ? (int)left : g->max_batch;
        gather_normalize_kernel<<<blocks_for((size_t)n * g->image_pixels), CH06_THREADS, 0, g->stream>>>(
            g->test_images, g->test_labels, (const uint32_t *)nullptr, (const uint64_t *)nullptr, first, n,
            (int)g->image_pixels, g->x, g->labels);
        CUDA_CHECK(cudaGetLastError());
        forward(g, n, DROPOUT_OFF, 0);
        score_rows_kernel<<<(n + 127) / 128, 128, 0, g->stream>>>(g->logits, g->labels, n, K, first, g->eval_loss,
                                                                  g->eval_predicted);
        CUDA_CHECK(cudaGetLastError());
    }
    const size_t count = g->test_count;
    float *loss = (float *)xmalloc((count > 0 ? count : 1) * sizeof *loss);
    int32_t *predicted = (int32_t *)xmalloc((count > 0 ? count : 1) * sizeof *predicted);
    int32_t *labels = (int32_t *)xmalloc((count > 0 ? count : 1) * sizeof *labels);
    CUDA_CHECK(cudaMemcpy(loss, g->eval_loss, count * sizeof *loss, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(predicted, g->eval_predicted, count * sizeof *predicted, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(labels, g->test_labels, count * sizeof *labels, cudaMemcpyDeviceToHost));
    if (confusion != NULL) {
        memset(confusion, 0, (size_t)K * K * sizeof *confusion);
    }
    /* Summed on the host in sample order, in double: the same mean every run. */
    double loss_sum = 0.0;
    *correct = 0;
    for (size_t i = 0; i < count; ++i) {
        loss_sum += loss[i];
        if (predicted[i] == labels[i]) {
            ++*correct;
        }
        if (confusion != NULL && labels[i] >= 0 && labels[i] < K) {
            confusion[(size_t)labels[i] * K + predicted[i]]++;
        }
    }
    free(loss);
    free(predicted);
    free(labels);
    return count > 0 ? loss_sum / (double)count : 0.0;
}

/* ---- Inference on the host's images ------------------------------------------------------------------------ */

int gpu_cnn_max_rows(const GpuCnn *g) { return g->max_batch; }

void gpu_cnn_predict(GpuCnn *g, const float *x, int n, float *logits)
{
    if (n < 1 || n > g->max_batch) {
        die("gpu_cnn_predict: %d images (limit %d)", n, g->max_batch);
    }
    use_stream(g);
    const size_t classes = (size_t)g->config.classes;
    /* Copies on the network's stream, then one wait: whoever asks needs the answer at once. */
    CUDA_CHECK(cudaMemcpyAsync(g->x, x, (size_t)n * g->image_pixels * sizeof *x, cudaMemcpyHostToDevice, g->stream));
    forward(g, n, DROPOUT_OFF, 0);
    CUDA_CHECK(cudaMemcpyAsync(logits, g->logits, (size_t)n * classes * sizeof *logits, cudaMemcpyDeviceToHost,
                               g->stream));
    CUDA_CHECK(cudaStreamSynchronize(g->stream));
}

/* ---- The CPU path's masks -------------------------------------------------------------------------------- */

void gpu_cnn_philox_masks(Cnn *net, int batch, uint64_t seed, uint64_t global_step)
{
    dropout_philox_mask_cpu(seed, 2 * global_step, net->config.dropout1, net->mask1, (size_t)batch * net->features);
    dropout_philox_mask_cpu(seed, 2 * global_step + 1, net->config.dropout2, net->mask2,
                            (size_t)batch * net->config.hidden);
}
