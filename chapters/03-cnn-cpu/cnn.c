/* cnn.c — Chapter 03: the CNN of cnn.h wired from the chapter's layers (conv.h, cnn_layers.h), chapter 01's
 * ReLU and chapter 02's softmax cross-entropy and SGD step.
 *
 * Most layers run on the whole batch, one call each. conv2 and the layers around it (pooling, ReLU, dropout 1)
 * run image by image inside one OpenMP loop instead, so that each image's 144 KiB of conv2 output goes from one
 * layer to the next while it is still in the core's cache (README.md, section 8).
 */
#include "cnn.h"

#include <stdlib.h>
#include <string.h>

#include "activations.h"
#include "cnn_layers.h"
#include "layers.h"
#include "threads.h"
#include "train_util.h"

CnnConfig cnn_default_config(int padding)
{
    CnnConfig config = {
        .image_size = 28,
        .conv1_channels = 32,
        .conv2_channels = 64,
        .hidden = 128,
        .classes = 10,
        .padding = padding,
        .dropout1 = 0.25f,
        .dropout2 = 0.5f,
    };
    return config;
}

int cnn_config_for_images(CnnConfig *config, int padding, const MnistSplit *images, const char *data_dir,
                          CourseError *err)
{
    if (images->rows != images->cols) {
        return error_set(err, data_dir, "the CNN needs square images; these are %zux%zu", images->rows, images->cols);
    }
    *config = cnn_default_config(padding);
    config->image_size = (int)images->rows;
    return 0;
}

static void set_tensor(CnnTensor *t, const char *name, int ndim, size_t d0, size_t d1, size_t d2, size_t d3)
{
    t->name = name;
    t->ndim = ndim;
    size_t dims[4] = {d0, d1, d2, d3};
    t->count = 1;
    for (int i = 0; i < 4; ++i) {
        t->shape[i] = i < ndim ? dims[i] : 0;
        if (i < ndim) {
            t->count *= dims[i];
        }
    }
}

int cnn_create(Cnn *net, CnnConfig config, int max_batch, GemmBackend backend, CourseError *err)
{
    memset(net, 0, sizeof *net);
    const int P = config.padding;
    if (config.image_size < 1 || config.conv1_channels < 1 || config.conv2_channels < 1 || config.hidden < 1 ||
        config.classes < 1 || max_batch < 1) {
        return error_set(err, "cnn", "sizes must be positive");
    }
    if (!(config.dropout1 >= 0.0f && config.dropout1 < 1.0f && config.dropout2 >= 0.0f && config.dropout2 < 1.0f)) {
        return error_set(err, "cnn", "dropout probabilities must lie in [0, 1)");
    }
    net->config = config;
    net->max_batch = max_batch;
    net->backend = backend;
    net->conv1 = (Conv2dShape){max_batch, 1, config.image_size, config.image_size, config.conv1_channels, 3, 3, P, 1};
    if (conv2d_shape_check(&net->conv1, "cnn: conv1", err) != 0) { /* e.g. a negative padding, with the reason */
        return -1;
    }
    net->h1 = conv2d_out_height(&net->conv1);
    net->w1 = conv2d_out_width(&net->conv1);
    net->conv2 = (Conv2dShape){max_batch, config.conv1_channels, net->h1, net->w1, config.conv2_channels, 3, 3, P, 1};
    if (conv2d_shape_check(&net->conv2, "cnn: conv2", err) != 0) {
        return -1;
    }
    net->h2 = conv2d_out_height(&net->conv2);
    net->w2 = conv2d_out_width(&net->conv2);
    net->h3 = maxpool2_output_size(net->h2);
    net->w3 = maxpool2_output_size(net->w2);
    if (net->h1 < 1 || net->h2 < 1 || net->h3 < 1) {
        return error_set(err, "cnn", "a %dx%d image with padding %d leaves no pixels after conv1, conv2 and pooling",
                         config.image_size, config.image_size, P);
    }
    net->features = flatten_features(config.conv2_channels, net->h3, net->w3);

    const size_t C1 = (size_t)config.conv1_channels, C2 = (size_t)config.conv2_channels;
    const size_t H = (size_t)config.hidden, K = (size_t)config.classes, F = net->features;
    set_tensor(&net->tensors[CNN_CONV1_W], "conv1.weight", 4, C1, 1, 3, 3);
    set_tensor(&net->tensors[CNN_CONV1_B], "conv1.bias", 1, C1, 0, 0, 0);
    set_tensor(&net->tensors[CNN_CONV2_W], "conv2.weight", 4, C2, C1, 3, 3);
    set_tensor(&net->tensors[CNN_CONV2_B], "conv2.bias", 1, C2, 0, 0, 0);
    set_tensor(&net->tensors[CNN_FC1_W], "fc1.weight", 2, H, F, 0, 0);
    set_tensor(&net->tensors[CNN_FC1_B], "fc1.bias", 1, H, 0, 0, 0);
    set_tensor(&net->tensors[CNN_FC2_W], "fc2.weight", 2, K, H, 0, 0);
    set_tensor(&net->tensors[CNN_FC2_B], "fc2.bias", 1, K, 0, 0, 0);
    size_t total = 0;
    for (int i = 0; i < CNN_TENSORS; ++i) {
        total += net->tensors[i].count;
    }
    net->parameter_count = total;
    net->parameters = xcalloc(total, sizeof(float));
    net->gradients = xcalloc(total, sizeof(float));
    net->velocity = xcalloc(total, sizeof(float));
    size_t offset = 0;
    for (int i = 0; i < CNN_TENSORS; ++i) {
        net->tensors[i].value = net->parameters + offset;
        net->tensors[i].grad = net->gradients + offset;
        net->tensors[i].velocity = net->velocity + offset;
        offset += net->tensors[i].count;
    }

    /* Zeroed, not just allocated: even before a forward pass (or with a layer still a stub) every buffer
     * holds valid numbers and pooling's argmax valid indices, so a backward pass cannot crash. */
    const size_t B = (size_t)max_batch;
    const size_t conv1_size = B * C1 * net->h1 * net->w1, conv2_size = B * C2 * net->h2 * net->w2;
    net->a1 = xcalloc(conv1_size, sizeof(float));
    net->r1 = xcalloc(conv1_size, sizeof(float));
    net->a2 = xcalloc(conv2_size, sizeof(float));
    net->pooled = xcalloc(B * F, sizeof(float));
    net->argmax = xcalloc(B * F, sizeof(int32_t));
    net->dropped1 = xcalloc(B * F, sizeof(float));
    net->fc1_out = xcalloc(B * H, sizeof(float));
    net->hidden_act = xcalloc(B * H, sizeof(float));
    net->dropped2 = xcalloc(B * H, sizeof(float));
    net->logits = xcalloc(B * K, sizeof(float));
    net->probs = xcalloc(B * K, sizeof(float));
    net->mask1 = xcalloc(B * F, sizeof(uint8_t));
    net->mask2 = xcalloc(B * H, sizeof(uint8_t));
    net->d_logits = xcalloc(B * K, sizeof(float));
    net->d_hidden = xcalloc(B * H, sizeof(float));
    net->d_features = xcalloc(B * F, sizeof(float));
    net->d_conv2 = xcalloc(conv2_size, sizeof(float));
    net->d_conv1 = xcalloc(conv1_size, sizeof(float));
    rng_seed(&net->dropout_rng, 0, CNN_DROPOUT_STREAM);
    return 0;
}

void cnn_destroy(Cnn *net)
{
    float *buffers[] = {net->parameters, net->gradients, net->velocity, net->a1, net->r1, net->a2,
                        net->pooled, net->dropped1, net->fc1_out, net->hidden_act, net->dropped2, net->logits,
                        net->probs, net->d_logits, net->d_hidden, net->d_features, net->d_conv2, net->d_conv1};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; ++i) {
        free(buffers[i]);
    }
    free(net->argmax);
    free(net->mask1);
    free(net->mask2);
    memset(net, 0, sizeof *net);
}

void cnn_init(Cnn *net, uint64_t seed)
{
    Rng rng;
    rng_seed(&rng, seed, CNN_INIT_STREAM);
    /* A conv weight (OC, C, KH, KW) is, in memory, a linear layer's (out = OC, in = C*KH*KW) weight, with the
     * same fan-in: chapter 02's linear_init gives PyTorch's default for both. */
    for (int i = 0; i < CNN_TENSORS; i += 2) {
        CnnTensor *w = &net->tensors[i];
        const size_t out = w->shape[0];
        linear_init(w->value, net->tensors[i + 1].value, w->count / out, out, &rng);
    }
    memset(net->velocity, 0, net->parameter_count * sizeof(float));
    rng_seed(&net->dropout_rng, seed, CNN_DROPOUT_STREAM);
}

/* Element-wise layers over millions of values (conv2's output is 64*64*24*24 = 2.4 M floats at batch 64),
 * spread over the OpenMP threads in chunks: each chunk is an ordinary call of the layer function. ReLU is
 * chapter 01's, in the vectorisable form of cnn_layers.h. */
#define ELEMENTWISE_CHUNK 16384

static void relu_forward_parallel(const float *x, float *y, size_t n)
{
    const long chunks = (long)((n + ELEMENTWISE_CHUNK - 1) / ELEMENTWISE_CHUNK);
#pragma omp parallel for schedule(static)
    for (long i = 0; i < chunks; ++i) {
        const size_t begin = (size_t)i * ELEMENTWISE_CHUNK;
        const size_t length = n - begin < ELEMENTWISE_CHUNK ? n - begin : ELEMENTWISE_CHUNK;
        relu_forward_vectorized(x + begin, y + begin, length);
    }
}

void cnn_draw_dropout_masks(Cnn *net, int batch)
{
    /* 600,000 random numbers per batch, drawn image by image in parallel: one 64-bit seed per batch from the
     * network's dropout stream, then image b's masks from its own generator rng_seed(seed, b) (rng.h: same seed,
     * different streams, independent sequences). The masks depend only on the seed and b, never on which
     * thread drew them, so training stays reproducible. */
    const uint64_t seed = ((uint64_t)rng_u32(&net->dropout_rng) << 32) | rng_u32(&net->dropout_rng);
    const size_t F = net->features, H = (size_t)net->config.hidden;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < batch; ++b) {
        Rng rng;
        rng_seed(&rng, seed, (uint64_t)b);
        dropout_make_mask(&rng, net->config.dropout1, net->mask1 + (size_t)b * F, F);
        dropout_make_mask(&rng, net->config.dropout2, net->mask2 + (size_t)b * H, H);
    }
}

float *cnn_forward(Cnn *net, const float *x, int batch, bool training)
{
    net->x = x;
    net->training = training;
    net->conv1.batch = batch;
    net->conv2.batch = batch;
    cnn_forward_layers(net, batch);
    return net->logits;
}

void cnn_forward_layers(Cnn *net, int batch)
{
    /* BEGIN EXERCISE ch03.cnn_forward_layers: from net->x, chain conv1, relu (whole batch); then per image (OpenMP loop, a cols buffer per thread): conv2, maxpool, relu in place on pooled (it commutes with maxpool), dropout 1 (training only); then fc1, relu, dropout 2 (training only), fc2, keeping every activation in net for the backward pass (about 45 lines) | zh: 从 net->x 开始，依次做 conv1、relu（整个批次）；然后逐张图像（OpenMP 循环，每个线程一个 cols 缓冲区）：conv2、maxpool、在 pooled 上原地 relu（它与 maxpool 可交换）、dropout 1（仅训练时）；再做 fc1、relu、dropout 2（仅训练时）、fc2，把每个激活值都留在 net 中供反向传播使用（约 45 行） */
    const CnnConfig *cfg = &net->config;
    const size_t B = (size_t)batch;
    const size_t conv1_size = B * cfg->conv1_channels * net->h1 * net->w1;
    const bool training = net->training;
    const CnnTensor *t = net->tensors;
    conv2d_forward_im2col(&net->conv1, net->x, t[CNN_CONV1_W].value, t[CNN_CONV1_B].value, net->a1, net->backend);
    relu_forward_parallel(net->a1, net->r1, conv1_size);
    /* conv2, relu, maxpool and dropout 1, image by image: each image's conv2 output (C2*H2*W2 floats, 144 KiB)
     * is pooled while it is still in this core's cache, instead of being read back from memory after the whole
     * batch. relu then maxpool is computed as maxpool then relu: the two commute (the largest of four relus is
     * the relu of the largest), and the relu then touches a quarter of the values (README.md, section 8).
     * (maxpool2_forward's own OpenMP loop runs on one thread here: a parallel region started inside another
     * gets a team of one, unless nested parallelism is switched on.) */
    const size_t F = net->features; /* pooled values per image; flatten: pooled (B, C2, H3, W3) is (B, F) */
    const size_t a2_image = (size_t)cfg->conv2_channels * net->h2 * net->w2, r1_image = conv1_size / B;
    const size_t cols_size = conv2d_cols_size(&net->conv2);
    float *cols_all = xmalloc((size_t)parallel_max_threads() * cols_size * sizeof *cols_all); /* one per thread */
#pragma omp parallel for schedule(static)
    for (int n = 0; n < batch; ++n) {
        float *a2 = net->a2 + (size_t)n * a2_image; /* (C2, H2, W2) */
        float *pooled = net->pooled + (size_t)n * F; /* (C2, H3, W3) */
        conv2d_forward_im2col_image(&net->conv2, net->r1 + (size_t)n * r1_image, t[CNN_CONV2_W].value,
                                    t[CNN_CONV2_B].value, a2, cols_all + (size_t)parallel_thread_index() * cols_size, net->backend);
        maxpool2_forward(a2, pooled, net->argmax + (size_t)n * F, 1, cfg->conv2_channels, net->h2, net->w2);
        relu_forward_vectorized(pooled, pooled, F);
        if (training) {
            dropout_forward(pooled, net->mask1 + (size_t)n * F, cfg->dropout1, net->dropped1 + (size_t)n * F, F);
        }
    }
    free(cols_all);
    const float *features = training ? net->dropped1 : net->pooled; /* (B, F) */
    linear_forward_gemm(features, t[CNN_FC1_W].value, t[CNN_FC1_B].value, net->fc1_out, batch, (int)net->features,
                        cfg->hidden, net->backend);
    relu_forward(net->fc1_out, net->hidden_act, B * cfg->hidden);
    const float *hidden = net->hidden_act;
    if (training) {
        dropout_forward(net->hidden_act, net->mask2, cfg->dropout2, net->dropped2, B * cfg->hidden);
        hidden = net->dropped2;
    }
    linear_forward_gemm(hidden, t[CNN_FC2_W].value, t[CNN_FC2_B].value, net->logits, batch, cfg->hidden,
                        cfg->classes, net->backend);
    /* END EXERCISE */
}

float cnn_forward_loss(Cnn *net, const float *x, const int32_t *labels, int batch, bool training)
{
    cnn_forward(net, x, batch, training);
    return softmax_cross_entropy_forward(net->logits, labels, net->probs, (size_t)batch,
                                         (size_t)net->config.classes);
}

void cnn_backward(Cnn *net, const int32_t *labels, int batch)
{
    softmax_cross_entropy_backward(net->probs, labels, net->d_logits, (size_t)batch, (size_t)net->config.classes);
    cnn_backward_from_logits(net, batch, NULL);
}

void cnn_backward_from_logits(Cnn *net, int batch, float *d_input)
{
    /* BEGIN EXERCISE ch03.cnn_backward: walk cnn_forward backwards from net->d_logits: fc2, dropout 2, relu, fc1 (whole batch); then per image (OpenMP loop, cols/dcols and a conv2 weight-gradient copy per thread): dropout 1, relu (x = pooled), maxpool, conv2, relu 1; sum the copies; conv2's bias; conv1 (its input gradient into d_input, which may be NULL), filling every tensor's grad (about 65 lines) | zh: 从 net->d_logits 出发把 cnn_forward 倒着走一遍：fc2、dropout 2、relu、fc1（整个批次）；然后逐张图像（OpenMP 循环，每个线程一份 cols/dcols 和一份 conv2 权重梯度副本）：dropout 1、relu（x = pooled）、maxpool、conv2、relu 1；把各副本相加；conv2 的偏置；conv1（输入梯度写进 d_input，它可以是 NULL），填好每个张量的 grad（约 65 行） */
    const CnnConfig *cfg = &net->config;
    const size_t B = (size_t)batch;
    const size_t conv1_size = B * cfg->conv1_channels * net->h1 * net->w1;
    const CnnTensor *t = net->tensors;
    const float *features = net->training ? net->dropped1 : net->pooled;
    const float *hidden = net->training ? net->dropped2 : net->hidden_act;

    linear_backward_gemm(hidden, t[CNN_FC2_W].value, net->d_logits, net->d_hidden, t[CNN_FC2_W].grad,
                         t[CNN_FC2_B].grad, batch, cfg->hidden, cfg->classes, net->backend);
    /* The element-wise backward passes below run in place (dx == dy): each dx[i] reads only dy[i]. */
    if (net->training) {
        dropout_backward(net->d_hidden, net->mask2, cfg->dropout2, net->d_hidden, B * cfg->hidden);
    }
    relu_backward(net->fc1_out, net->d_hidden, net->d_hidden, B * cfg->hidden);
    linear_backward_gemm(features, t[CNN_FC1_W].value, net->d_hidden, net->d_features, t[CNN_FC1_W].grad,
                         t[CNN_FC1_B].grad, batch, (int)net->features, cfg->hidden, net->backend);
    /* Dropout 1, relu, maxpool, conv2 and relu 1 backwards, image by image (as in the forward: each image's
     * gradients stay in cache from one layer to the next). The forward ran maxpool before relu, so relu's
     * backward comes first, on the pooled values: relu'(relu(v)) = relu'(v), so pooled serves as relu's input.
     * Every image adds to all of conv2's weight gradient: each thread sums into its own copy, and the copies
     * are added in thread order after the loop (no locks; the same result for the same thread count). */
    const size_t F = net->features, d2_image = (size_t)cfg->conv2_channels * net->h2 * net->w2;
    const size_t d1_image = conv1_size / B, cols_size = conv2d_cols_size(&net->conv2);
    const size_t dw_size = t[CNN_CONV2_W].count;
    const int threads = parallel_max_threads();
    float *scratch = xmalloc((size_t)threads * 2 * cols_size * sizeof *scratch); /* (threads, cols + dcols) */
    float *dw_partial = xcalloc((size_t)threads * dw_size, sizeof *dw_partial); /* (threads, C2, C1*3*3) */
#pragma omp parallel for schedule(static)
    for (int n = 0; n < batch; ++n) {
        const int tid = parallel_thread_index();
        float *d_pooled = net->d_features + (size_t)n * F; /* (C2, H3, W3), in place */
        float *d_conv2 = net->d_conv2 + (size_t)n * d2_image; /* (C2, H2, W2) */
        float *d_conv1 = net->d_conv1 + (size_t)n * d1_image; /* (C1, H1, W1) */
        float *cols = scratch + (size_t)tid * 2 * cols_size;
        if (net->training) {
            dropout_backward(d_pooled, net->mask1 + (size_t)n * F, cfg->dropout1, d_pooled, F);
        }
        relu_backward_vectorized(net->pooled + (size_t)n * F, d_pooled, d_pooled, F);
        maxpool2_backward(d_pooled, net->argmax + (size_t)n * F, d_conv2, 1, cfg->conv2_channels, net->h2, net->w2);
        conv2d_backward_im2col_image(&net->conv2, net->r1 + (size_t)n * d1_image, t[CNN_CONV2_W].value, d_conv2,
                                     d_conv1, dw_partial + (size_t)tid * dw_size, cols, cols + cols_size,
                                     net->backend);
        relu_backward_vectorized(net->a1 + (size_t)n * d1_image, d_conv1, d_conv1, d1_image);
    }
    for (size_t i = 0; i < dw_size; ++i) {
        float sum = 0.0f;
        for (int k = 0; k < threads; ++k) {
            sum += dw_partial[(size_t)k * dw_size + i];
        }
        t[CNN_CONV2_W].grad[i] = sum;
    }
    free(scratch);
    free(dw_partial);
    conv2d_backward_bias(&net->conv2, net->d_conv2, t[CNN_CONV2_B].grad);
    conv2d_backward_im2col(&net->conv1, net->x, t[CNN_CONV1_W].value, net->d_conv1, d_input, t[CNN_CONV1_W].grad,
                           t[CNN_CONV1_B].grad, net->backend);
    /* END EXERCISE */
}

void cnn_sgd_step(Cnn *net, float lr, float momentum)
{
    /* All parameters live in one block and the update is element-wise: chapter 02's step on chunks of it,
     * spread over the threads. */
    const size_t n = net->parameter_count;
    const long chunks = (long)((n + ELEMENTWISE_CHUNK - 1) / ELEMENTWISE_CHUNK);
#pragma omp parallel for schedule(static)
    for (long i = 0; i < chunks; ++i) {
        const size_t begin = (size_t)i * ELEMENTWISE_CHUNK;
        const size_t length = n - begin < ELEMENTWISE_CHUNK ? n - begin : ELEMENTWISE_CHUNK;
        sgd_momentum_step(net->parameters + begin, net->gradients + begin, net->velocity + begin, length, lr,
                          momentum, 0.0f);
    }
}

double cnn_evaluate(Cnn *net, const MnistSplit *split, size_t *correct, size_t *confusion)
{
    const int K = net->config.classes;
    DataLoader loader;
    data_loader_init(&loader, split, (size_t)net->max_batch, false, 0);
    data_loader_start_epoch(&loader);
    float *x = xmalloc((size_t)net->max_batch * loader.sample_size * sizeof *x); /* (B, 1, 28, 28) */
    int32_t *labels = xmalloc((size_t)net->max_batch * sizeof *labels); /* (B) */
    if (confusion != NULL) {
        memset(confusion, 0, (size_t)K * K * sizeof *confusion);
    }
    *correct = 0;
    double loss_sum = 0.0;
    size_t n;
    while ((n = data_loader_next(&loader, x, labels)) > 0) {
        const float loss = cnn_forward_loss(net, x, labels, (int)n, false);
        loss_sum += (double)loss * (double)n;
        for (size_t b = 0; b < n; ++b) {
            const size_t predicted = argmax(net->logits + b * K, (size_t)K);
            if ((int32_t)predicted == labels[b]) {
                ++*correct;
            }
            if (confusion != NULL && labels[b] >= 0 && labels[b] < K) {
                confusion[(size_t)labels[b] * K + predicted]++;
            }
        }
    }
    free(x);
    free(labels);
    data_loader_free(&loader);
    return split->count > 0 ? loss_sum / (double)split->count : 0.0;
}
