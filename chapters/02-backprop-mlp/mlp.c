/* mlp.c — Chapter 02: the MLP assembled from layers.c and chapter 01's ReLU (see mlp.h, README.md). */
#include "mlp.h"

#include <stdlib.h>
#include <string.h>

#include "activations.h"
#include "course_error.h"
#include "layers.h"
#include "rng.h"
#include "train_util.h"

void mlp_create(Mlp *net, size_t inputs, size_t hidden, size_t classes, size_t max_batch)
{
    memset(net, 0, sizeof *net);
    net->inputs = inputs;
    net->hidden = hidden;
    net->classes = classes;
    net->max_batch = max_batch;
    size_t n_w1 = hidden * inputs, n_w2 = classes * hidden;
    net->w1 = xcalloc(n_w1, sizeof(float));
    net->b1 = xcalloc(hidden, sizeof(float));
    net->w2 = xcalloc(n_w2, sizeof(float));
    net->b2 = xcalloc(classes, sizeof(float));
    net->dw1 = xcalloc(n_w1, sizeof(float));
    net->db1 = xcalloc(hidden, sizeof(float));
    net->dw2 = xcalloc(n_w2, sizeof(float));
    net->db2 = xcalloc(classes, sizeof(float));
    net->vw1 = xcalloc(n_w1, sizeof(float));
    net->vb1 = xcalloc(hidden, sizeof(float));
    net->vw2 = xcalloc(n_w2, sizeof(float));
    net->vb2 = xcalloc(classes, sizeof(float));
    net->h = xcalloc(max_batch * hidden, sizeof(float));
    net->a = xcalloc(max_batch * hidden, sizeof(float));
    net->z = xcalloc(max_batch * classes, sizeof(float));
    net->probs = xcalloc(max_batch * classes, sizeof(float));
    net->dz = xcalloc(max_batch * classes, sizeof(float));
    net->da = xcalloc(max_batch * hidden, sizeof(float));
    net->dh = xcalloc(max_batch * hidden, sizeof(float));
}

void mlp_destroy(Mlp *net)
{
    float *buffers[] = {net->w1, net->b1, net->w2, net->b2, net->dw1, net->db1, net->dw2, net->db2,
                        net->vw1, net->vb1, net->vw2, net->vb2, net->h, net->a, net->z, net->probs,
                        net->dz, net->da, net->dh};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) {
        free(buffers[i]);
    }
    memset(net, 0, sizeof *net);
}

void mlp_init(Mlp *net, uint64_t seed)
{
    Rng rng;
    rng_seed(&rng, seed, MLP_INIT_STREAM);
    linear_init(net->w1, net->b1, net->inputs, net->hidden, &rng);
    linear_init(net->w2, net->b2, net->hidden, net->classes, &rng);
    MlpTensor tensors[MLP_TENSORS];
    mlp_tensors(net, tensors);
    for (int t = 0; t < MLP_TENSORS; t++) {
        memset(tensors[t].velocity, 0, tensors[t].count * sizeof(float));
    }
}

void mlp_tensors(Mlp *net, MlpTensor tensors[MLP_TENSORS])
{
    tensors[0] = (MlpTensor){"w1", net->w1, net->dw1, net->vw1, net->hidden * net->inputs};
    tensors[1] = (MlpTensor){"b1", net->b1, net->db1, net->vb1, net->hidden};
    tensors[2] = (MlpTensor){"w2", net->w2, net->dw2, net->vw2, net->classes * net->hidden};
    tensors[3] = (MlpTensor){"b2", net->b2, net->db2, net->vb2, net->classes};
}

float *mlp_forward(Mlp *net, const float *x, size_t batch)
{
    net->x = x;
    linear_forward(x, net->w1, net->b1, net->h, batch, net->inputs, net->hidden); /* h (B, H) */
    relu_forward(net->h, net->a, batch * net->hidden); /* a (B, H) */
    linear_forward(net->a, net->w2, net->b2, net->z, batch, net->hidden, net->classes); /* z (B, 10) */
    return net->z;
}

double mlp_forward_loss(Mlp *net, const float *x, const int32_t *labels, size_t batch)
{
    mlp_forward(net, x, batch);
    return softmax_cross_entropy_forward(net->z, labels, net->probs, batch, net->classes);
}

void mlp_backward(Mlp *net, const int32_t *labels, size_t batch)
{
    /* BEGIN EXERCISE ch02.mlp_backward: the chain rule from the loss back to W1: softmax_cross_entropy_backward -> dz; linear_backward of layer 2 (input a) -> da, dw2, db2; relu_backward (input h) -> dh; linear_backward of layer 1 (input x, dx NULL) -> dw1, db1 (about 6 lines) | zh: 从损失沿链式法则回到 W1：softmax_cross_entropy_backward -> dz；第 2 层的 linear_backward（输入 a）-> da, dw2, db2；relu_backward（输入 h）-> dh；第 1 层的 linear_backward（输入 x，dx 为 NULL）-> dw1, db1（约 6 行） */
    size_t H = net->hidden, C = net->classes;
    softmax_cross_entropy_backward(net->probs, labels, net->dz, batch, C); /* dz (B, 10) */
    linear_backward(net->a, net->w2, net->dz, net->da, net->dw2, net->db2, batch, H, C); /* da (B, H) */
    relu_backward(net->h, net->da, net->dh, batch * H); /* dh (B, H) */
    linear_backward(net->x, net->w1, net->dh, NULL, net->dw1, net->db1, batch, net->inputs, H);
    /* END EXERCISE */
}

float mlp_train_step(Mlp *net, const float *x, const int32_t *labels, size_t batch, float lr, float momentum,
                     float weight_decay)
{
    float loss = (float)mlp_forward_loss(net, x, labels, batch);
    mlp_backward(net, labels, batch);
    MlpTensor tensors[MLP_TENSORS];
    mlp_tensors(net, tensors);
    for (int t = 0; t < MLP_TENSORS; t++) {
        sgd_momentum_step(tensors[t].value, tensors[t].grad, tensors[t].velocity, tensors[t].count, lr, momentum,
                          weight_decay);
    }
    return loss;
}

double mlp_evaluate(Mlp *net, const MnistSplit *split, size_t *correct, size_t *confusion)
{
    size_t batch_size = net->max_batch, inputs = net->inputs, C = net->classes;
    float *x = xmalloc(batch_size * inputs * sizeof *x); /* (B, inputs) */
    int32_t *labels = xmalloc(batch_size * sizeof *labels); /* (B) */
    DataLoader loader;
    data_loader_init(&loader, split, batch_size, false, 0);
    data_loader_start_epoch(&loader);
    if (confusion != NULL) {
        memset(confusion, 0, C * C * sizeof *confusion);
    }
    double loss_sum = 0.0;
    size_t right = 0, seen = 0, n;
    while ((n = data_loader_next(&loader, x, labels)) > 0) {
        double loss = mlp_forward_loss(net, x, labels, n);
        loss_sum += loss * (double)n; /* the batch mean times its size: the sum over its samples */
        for (size_t b = 0; b < n; b++) {
            size_t predicted = argmax(net->z + b * C, C);
            right += predicted == (size_t)labels[b];
            if (confusion != NULL) {
                confusion[(size_t)labels[b] * C + predicted]++;
            }
        }
        seen += n;
    }
    data_loader_free(&loader);
    free(x);
    free(labels);
    *correct = right;
    return seen > 0 ? loss_sum / (double)seen : 0.0;
}
