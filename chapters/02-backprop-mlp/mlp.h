/* mlp.h — Chapter 02: the 784-H-10 ReLU network, its forward and backward pass, training step and evaluation.
 *
 *   x (B, 784) -> linear1 -> h (B, H) -> relu -> a (B, H) -> linear2 -> z (B, 10) -> softmax-CE(labels) -> loss
 *
 * Parameters are stored like PyTorch's nn.Linear: W1 (H, 784), b1 (H), W2 (10, H), b2 (10), so the parity test
 * can load PyTorch's initial weights and compare the weights after training step by step.
 *
 *   Mlp net;
 *   mlp_create(&net, 784, 128, 10, 64);        // input, hidden, classes, largest batch
 *   mlp_init(&net, seed);                      // PyTorch's default initialisation
 *   float loss = mlp_train_step(&net, x, labels, batch, lr, momentum, weight_decay);
 *   mlp_destroy(&net);
 */
#ifndef CH02_MLP_H
#define CH02_MLP_H

#include <stddef.h>
#include <stdint.h>

#include "idx.h"

/* The random stream the weights are drawn from (the data loader shuffles with DATA_LOADER_STREAM). */
#define MLP_INIT_STREAM 1

typedef struct Mlp {
    size_t inputs, hidden, classes; /* 784, H, 10 */
    size_t max_batch; /* the activation buffers hold this many rows */

    /* Parameters, and their gradients and momentum buffers (same shapes). */
    float *w1, *b1, *w2, *b2; /* (H, in), (H), (classes, H), (classes) */
    float *dw1, *db1, *dw2, *db2; /* same shapes: dLoss/dparameter from the last mlp_backward */
    float *vw1, *vb1, *vw2, *vb2; /* SGD momentum buffers, zero at the start */

    /* Activations of the last forward pass, kept for the backward pass; and their gradients. */
    const float *x; /* (B, in) the input of the last forward (not owned) */
    float *h; /* (B, H) pre-activation of the hidden layer: x W1^T + b1 */
    float *a; /* (B, H) relu(h) */
    float *z; /* (B, classes) logits */
    float *probs; /* (B, classes) softmax(z) */
    float *dz, *da, *dh; /* (B, classes), (B, H), (B, H) gradients flowing backwards */
} Mlp;

/* Allocate every buffer (parameters zero). max_batch: the largest batch forward will be called with. */
void mlp_create(Mlp *net, size_t inputs, size_t hidden, size_t classes, size_t max_batch);
void mlp_destroy(Mlp *net);

/* PyTorch's default initialisation of both layers from rng_seed(seed, MLP_INIT_STREAM); momentum zeroed. */
void mlp_init(Mlp *net, uint64_t seed);

/* Number of parameters, and a list of them in a fixed order (w1, b1, w2, b2) for optimisers and tests. */
#define MLP_TENSORS 4
typedef struct MlpTensor {
    const char *name;
    float *value, *grad, *velocity;
    size_t count;
} MlpTensor;
void mlp_tensors(Mlp *net, MlpTensor tensors[MLP_TENSORS]);

/* Forward pass on x (batch, inputs) up to the logits: fills h, a, z. Returns net->z, (batch, classes). */
float *mlp_forward(Mlp *net, const float *x, size_t batch);

/* Forward pass plus the mean cross-entropy against labels (batch); fills probs. Returns the loss. */
double mlp_forward_loss(Mlp *net, const float *x, const int32_t *labels, size_t batch);

/* Backward pass after mlp_forward_loss on the same batch: fills dw1, db1, dw2, db2 (overwriting them). */
void mlp_backward(Mlp *net, const int32_t *labels, size_t batch);

/* forward + backward + sgd_momentum_step on every parameter. Returns the batch's loss (before the step). */
float mlp_train_step(Mlp *net, const float *x, const int32_t *labels, size_t batch, float lr, float momentum,
                     float weight_decay);

/* Evaluate on a whole split (normalised the same way as training, in batches of net->max_batch or fewer).
 * Returns the mean loss; *correct receives the number classified right; confusion (classes, classes), if not
 * NULL, is filled (row = true label, column = prediction). */
double mlp_evaluate(Mlp *net, const MnistSplit *split, size_t *correct, size_t *confusion);

#endif
