/* checkpoint.c — the CNN's checkpoints in .safetensors (see checkpoint.h): a thin layer over the course's
 * checkpoint module (common/train_checkpoint.h) and chapter 03's description of the CNN (cnn_checkpoint.h). */
#include "checkpoint.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "safetensors.h"

int checkpoint_save(const char *path, const Cnn *net, const TrainState *state, CourseError *err)
{
    CheckpointModel model;
    cnn_checkpoint_model((Cnn *)net, false, &model); /* the description only reads the tensors when writing */
    return checkpoint_write(path, &model, state, err);
}

int checkpoint_load(const char *path, Cnn *net, TrainState *state, CourseError *err)
{
    CheckpointModel model;
    cnn_checkpoint_model(net, false, &model);
    return checkpoint_read(path, &model, state, err);
}

/* ---- Loading a network whose shape the file gives ------------------------------------------------------- */

int checkpoint_load_network(const char *path, int max_batch, GemmBackend backend, Cnn *net, TrainState *state,
                            CourseError *err)
{
    memset(net, 0, sizeof *net);
    SafetensorsFile f;
    if (checkpoint_open(path, CHECKPOINT_FORMAT, "this course's CNN", &f, err) != 0) {
        return -1;
    }
    /* The shape, from the metadata; checkpoint_load below checks the rest (tensors, state). */
    CnnConfig config = cnn_default_config(0);
    const struct {
        const char *key;
        int *field;
        uint64_t min;
    } ints[] = {
        {"image_size", &config.image_size, 1},     {"padding", &config.padding, 0},
        {"conv1_channels", &config.conv1_channels, 1}, {"conv2_channels", &config.conv2_channels, 1},
        {"hidden", &config.hidden, 1},              {"classes", &config.classes, 2},
    };
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof ints / sizeof ints[0]; ++i) {
        uint64_t value;
        if (checkpoint_meta_u64(&f, path, ints[i].key, &value, err) != 0) {
            rc = -1;
        } else if (value < ints[i].min || value > CHECKPOINT_MAX_WIDTH) {
            rc = error_set(err, path, "metadata '%s' is %" PRIu64 ", outside [%" PRIu64 ", %d]", ints[i].key, value,
                           ints[i].min, CHECKPOINT_MAX_WIDTH);
        } else {
            *ints[i].field = (int)value;
        }
    }
    double dropout[2];
    if (rc == 0 && (checkpoint_meta_double(&f, path, "dropout1", &dropout[0], err) != 0 ||
                    checkpoint_meta_double(&f, path, "dropout2", &dropout[1], err) != 0)) {
        rc = -1;
    }
    for (int k = 0; rc == 0 && k < 2; ++k) {
        if (!(dropout[k] >= 0.0 && dropout[k] < 1.0)) {
            rc = error_set(err, path, "metadata 'dropout%d' is %g, outside [0, 1)", k + 1, dropout[k]);
        }
    }
    safetensors_free(&f);
    if (rc != 0) {
        return -1;
    }
    config.dropout1 = (float)dropout[0];
    config.dropout2 = (float)dropout[1];
    CourseError shape_err;
    if (cnn_create(net, config, max_batch, backend, &shape_err) != 0) {
        memset(net, 0, sizeof *net);
        return error_set(err, path, "its network's shape does not work: %s", shape_err.message);
    }
    /* The weights only: a program that uses the network needs no optimiser state, so a checkpoint of any
     * optimiser (chapter 10's Adam as well as SGD) serves. */
    CheckpointModel model;
    cnn_checkpoint_model(net, false, &model);
    model.weights_only = true;
    TrainState loaded;
    if (checkpoint_read(path, &model, &loaded, err) != 0) {
        cnn_destroy(net);
        memset(net, 0, sizeof *net);
        return -1;
    }
    if (state != NULL) {
        *state = loaded;
    }
    return 0;
}
