/* cnn_checkpoint.c — the CNN's checkpoint description (see cnn_checkpoint.h). */
#include "cnn_checkpoint.h"

#include <string.h>

void cnn_checkpoint_model(Cnn *net, bool with_dropout_stream, CheckpointModel *model)
{
    memset(model, 0, sizeof *model);
    model->format = CNN_CHECKPOINT_FORMAT;
    model->format_version = CNN_CHECKPOINT_FORMAT_VERSION;
    model->what = "this course's CNN";
    const CnnConfig *c = &net->config;
    checkpoint_model_arch(model, "image_size", "--data (images of another size)", "%d", c->image_size);
    checkpoint_model_arch(model, "padding", "--padding", "%d", c->padding);
    checkpoint_model_arch(model, "conv1_channels", NULL, "%d", c->conv1_channels);
    checkpoint_model_arch(model, "conv2_channels", NULL, "%d", c->conv2_channels);
    checkpoint_model_arch(model, "hidden", NULL, "%d", c->hidden);
    checkpoint_model_arch(model, "classes", NULL, "%d", c->classes);
    checkpoint_model_arch(model, "fc1_inputs", "--padding", "%zu", net->features);
    checkpoint_model_arch(model, "dropout1", "mnist_train's --dropout1", "%.9g", (double)c->dropout1);
    checkpoint_model_arch(model, "dropout2", "mnist_train's --dropout2", "%.9g", (double)c->dropout2);
    for (int t = 0; t < CNN_TENSORS; ++t) {
        CnnTensor *tensor = &net->tensors[t];
        checkpoint_model_tensor(model, tensor->name, tensor->ndim, tensor->shape, tensor->value, tensor->velocity);
    }
    model->rng = with_dropout_stream ? &net->dropout_rng : NULL;
}
