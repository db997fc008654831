/* cnn.h — Chapter 03: the course's convolutional network (README.md, "Chapters") on the CPU, forward, backward
 * and SGD step.
 *
 *   x (B, 1, 28, 28)
 *   -> conv1 3x3 (1 -> C1, padding P)  -> a1 (B, C1, H1, W1)   H1 = 28 + 2P - 2
 *   -> relu                            -> r1
 *   -> conv2 3x3 (C1 -> C2, padding P) -> a2 (B, C2, H2, W2)   H2 = H1 + 2P - 2
 *   -> relu, maxpool 2x2               -> pooled (B, C2, H3, W3)   H3 = H2 / 2
 *      (computed as maxpool, then relu in place on pooled: the two commute, and the relu touches 4x fewer values)
 *   -> dropout 0.25, flatten           -> features (B, F)     F = C2 * H3 * W3
 *   -> fc1 (F -> hidden), relu         -> hidden (B, hidden)
 *   -> dropout 0.5
 *   -> fc2 (hidden -> 10)              -> logits (B, 10) -> softmax cross-entropy (mean over the batch)
 *
 * With PyTorch's example widths (C1 32, C2 64, hidden 128): padding 0 gives F = 64*12*12 = 9216, padding 1
 * gives F = 64*14*14 = 12544. The parity test runs the same code at a narrower width.
 *
 *   Cnn net;  CourseError err;
 *   if (cnn_create(&net, cnn_default_config(0), 64, GEMM_OPENBLAS, &err) != 0) error_exit(&err);
 *   cnn_init(&net, seed);
 *   cnn_draw_dropout_masks(&net, batch);                       // training: fresh masks for this batch
 *   float loss = cnn_forward_loss(&net, x, labels, batch, true);
 *   cnn_backward(&net, labels, batch);
 *   cnn_sgd_step(&net, 0.01f, 0.9f);
 */
#ifndef CH03_CNN_H
#define CH03_CNN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conv.h"
#include "course_error.h"
#include "gemm.h"
#include "idx.h"
#include "rng.h"

/* Random streams of the network (the data loader shuffles with DATA_LOADER_STREAM = 2). */
#define CNN_INIT_STREAM 1
#define CNN_DROPOUT_STREAM 3

typedef struct CnnConfig {
    int image_size; /* 28: square single-channel images */
    int conv1_channels; /* C1: 32 */
    int conv2_channels; /* C2: 64 */
    int hidden; /* fc1 outputs: 128 */
    int classes; /* 10 */
    int padding; /* P of both convolutions: 0 (PyTorch's example) or 1 (the source article) */
    float dropout1, dropout2; /* 0.25 after pooling, 0.5 after fc1 */
} CnnConfig;

/* PyTorch's examples/mnist network with the given padding. */
CnnConfig cnn_default_config(int padding);

/* The trainers' network for a data set: cnn_default_config(padding) sized to its images, which must be square
 * (err names data_dir otherwise). */
int cnn_config_for_images(CnnConfig *config, int padding, const MnistSplit *images, const char *data_dir,
                          CourseError *err);

/* The parameters, in PyTorch's named_parameters() order. */
enum {
    CNN_CONV1_W, /* (C1, 1, 3, 3) */
    CNN_CONV1_B, /* (C1) */
    CNN_CONV2_W, /* (C2, C1, 3, 3) */
    CNN_CONV2_B, /* (C2) */
    CNN_FC1_W, /* (hidden, F) */
    CNN_FC1_B, /* (hidden) */
    CNN_FC2_W, /* (classes, hidden) */
    CNN_FC2_B, /* (classes) */
    CNN_TENSORS
};

typedef struct CnnTensor {
    const char *name; /* "conv1.weight", ... as in PyTorch */
    int ndim;
    size_t shape[4];
    size_t count;
    float *value, *grad, *velocity; /* views into the network's parameter, gradient and momentum blocks */
} CnnTensor;

typedef struct Cnn {
    CnnConfig config;
    int max_batch;
    GemmBackend backend;
    Conv2dShape conv1, conv2; /* .batch is set by every forward call */
    int h1, w1, h2, w2, h3, w3; /* spatial sizes after conv1, conv2, pooling */
    size_t features; /* F = C2 * H3 * W3 */

    size_t parameter_count;
    float *parameters, *gradients, *velocity; /* (parameter_count) each; tensors[] point into them */
    CnnTensor tensors[CNN_TENSORS];

    /* Activations of the last forward pass (max_batch rows), kept for the backward pass. */
    const float *x; /* (B, 1, 28, 28) not owned */
    float *a1, *r1; /* (B, C1, H1, W1) conv1 output, after relu */
    float *a2; /* (B, C2, H2, W2) conv2 output (its relu is applied after pooling, to pooled) */
    float *pooled; /* (B, C2, H3, W3) relu(maxpool(a2)) */
    int32_t *argmax; /* (B, C2, H3, W3) pooling's winners (in a2's planes) */
    float *dropped1; /* (B, F) pooled after dropout 1 (training) */
    float *fc1_out, *hidden_act, *dropped2; /* (B, hidden): fc1 output, after relu, after dropout 2 */
    float *logits, *probs; /* (B, classes) */
    bool training; /* the last forward used dropout */

    /* Dropout keep-masks (1 = kept) for the next training forward; cnn_draw_dropout_masks fills them, the
     * parity test writes PyTorch's into them. */
    uint8_t *mask1; /* (B, F) */
    uint8_t *mask2; /* (B, hidden) */
    Rng dropout_rng;

    /* Gradients flowing backwards. */
    float *d_logits; /* (B, classes) */
    float *d_hidden; /* (B, hidden) */
    float *d_features; /* (B, F) */
    float *d_conv2; /* (B, C2, H2, W2) */
    float *d_conv1; /* (B, C1, H1, W1) */
} Cnn;

/* Check the configuration's shapes (the convolutions and pooling must leave at least one pixel) and allocate
 * every buffer for batches of up to max_batch. Returns 0, or -1 with err saying which shape does not work. */
int cnn_create(Cnn *net, CnnConfig config, int max_batch, GemmBackend backend, CourseError *err);
void cnn_destroy(Cnn *net);

/* PyTorch's default initialisation (uniform in +-1/sqrt(fan_in) for every weight and bias) from
 * rng_seed(seed, CNN_INIT_STREAM); momentum zeroed; the dropout stream seeded with (seed, CNN_DROPOUT_STREAM). */
void cnn_init(Cnn *net, uint64_t seed);

/* Fresh dropout masks for a training batch of `batch` images: one seed from the dropout stream, then image b's
 * masks from rng_seed(seed, b), drawn in parallel (the same masks for any number of threads). */
void cnn_draw_dropout_masks(Cnn *net, int batch);

/* Forward pass of x (batch, 1, 28, 28) to the logits. training: apply dropout with the masks in mask1/mask2;
 * otherwise dropout is the identity. Records x, training and the batch in net, then runs
 * cnn_forward_layers. Returns net->logits (batch, classes). */
float *cnn_forward(Cnn *net, const float *x, int batch, bool training);

/* The layers of the forward pass, from net->x to net->logits (with dropout when net->training). */
void cnn_forward_layers(Cnn *net, int batch);

/* cnn_forward plus the mean softmax cross-entropy against labels (batch); fills probs. Returns the loss. */
float cnn_forward_loss(Cnn *net, const float *x, const int32_t *labels, int batch, bool training);

/* Backward pass after cnn_forward_loss on the same batch: fills every tensor's grad (overwriting it). */
void cnn_backward(Cnn *net, const int32_t *labels, int batch);

/* The backward pass from any gradient of the logits: net->d_logits (batch, classes) holds dL/dlogits for some
 * scalar L (cnn_backward puts the cross-entropy's there; chapter 09's saliency puts a one-hot row there, so
 * that L is one class's logit). Fills every tensor's grad, and, when d_input is not NULL, the gradient with
 * respect to the input images, d_input (batch, 1, S, S) = dL/dx: the trainer never needs it (x is data, not a
 * parameter), a picture of what the network looks at does. After cnn_forward on the same batch. */
void cnn_backward_from_logits(Cnn *net, int batch, float *d_input);

/* SGD with momentum (torch.optim.SGD: v = mu v + g; p -= lr v) on every parameter. */
void cnn_sgd_step(Cnn *net, float lr, float momentum);

/* Evaluate on a whole split in batches of max_batch (no dropout). Returns the mean loss; *correct gets the
 * number classified right; confusion (classes, classes), if not NULL, is filled (row = true label). */
double cnn_evaluate(Cnn *net, const MnistSplit *split, size_t *correct, size_t *confusion);

#endif
