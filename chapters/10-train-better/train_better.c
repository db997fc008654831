/* train_better.c — Chapter 10's options of mnist_train, the CPU side (see train_better.h): the flags, their
 * checks, --init-from, the checkpoint description, and the CPU path's training step. The GPU side (the hooks
 * inside chapter 07's training step) is train_better.cu. */
#include "train_better.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h" /* chapter 07: checkpoint_load_network */

void train_better_default_options(TrainBetterOptions *o)
{
    memset(o, 0, sizeof *o);
    o->augment = "none";
    o->optimizer = "sgd";
    o->schedule = "constant";
    o->step_epochs = 3;
    o->gamma = 0.1;
    const CnnConfig recipe = cnn_default_config(0);
    o->dropout1 = recipe.dropout1;
    o->dropout2 = recipe.dropout2;
}

void train_better_flags(TrainBetterOptions *o, TrainerOptions *trainer, FlagSpec *flags, size_t *count)
{
    const FlagSpec mine[TRAIN_BETTER_FLAGS] = {
        {"--augment", FLAG_STRING, &o->augment, 0, 0, "none, affine or elastic: a fresh random distortion of every "
                                                      "training image each time it is drawn (chapter 10)"},
        {"--optimizer", FLAG_STRING, &o->optimizer, 0, 0, "sgd (with --momentum), adam or adamw"},
        {"--weight-decay", FLAG_DOUBLE, &trainer->weight_decay, 0, 1,
         "weight decay: L2 added to the gradient (sgd, adam), decoupled (adamw: 0.01 unless given)"},
        {"--lr-schedule", FLAG_STRING, &o->schedule, 0, 0, "constant, step, cosine or onecycle"},
        {"--step-epochs", FLAG_INT, &o->step_epochs, 1, 1000, "--lr-schedule step: multiply by --gamma every N epochs"},
        {"--gamma", FLAG_DOUBLE, &o->gamma, 0, 1, "--lr-schedule step: the factor"},
        {"--dropout1", FLAG_DOUBLE, &o->dropout1, 0, 0.99, "dropout rate after pooling"},
        {"--dropout2", FLAG_DOUBLE, &o->dropout2, 0, 0.99, "dropout rate after fc1"},
        {"--init-from", FLAG_STRING, &o->init_from, 0, 0, "start conv1, conv2 from this checkpoint (transfer learning)"},
        {"--freeze", FLAG_STRING, &o->freeze, 0, 0, "layers not to update, e.g. conv1,conv2"},
        {"--layer-lr", FLAG_STRING, &o->layer_lr, 0, 0, "per-layer learning-rate scales, e.g. conv1=0.1,conv2=0.1"},
    };
    for (size_t i = 0; i < TRAIN_BETTER_FLAGS; ++i) {
        flags[(*count)++] = mine[i];
    }
}

/* "conv1" -> its weight tensor (the bias is the next one); -1 for another name. */
static int layer_tensor(const char *name, size_t length)
{
    static const char *const layers[] = {"conv1", "conv2", "fc1", "fc2"};
    static const int tensors[] = {CNN_CONV1_W, CNN_CONV2_W, CNN_FC1_W, CNN_FC2_W};
    for (int i = 0; i < 4; ++i) {
        if (strlen(layers[i]) == length && strncmp(name, layers[i], length) == 0) {
            return tensors[i];
        }
    }
    return -1;
}

/* "conv1,conv2" (scale = fixed, text NULL) or "conv1=0.1,conv2=0.1" into the per-tensor scales. */
static int parse_layers(const char *flag, const char *text, bool with_values, float *scale, CourseError *err)
{
    const char *p = text;
    while (*p != '\0') {
        const char *end = p + strcspn(p, ",");
        const char *equals = memchr(p, '=', (size_t)(end - p));
        const char *name_end = with_values ? equals : end;
        if (with_values && equals == NULL) {
            return error_set(err, flag, "'%.*s' is not LAYER=SCALE (e.g. conv1=0.1)", (int)(end - p), p);
        }
        const int t = layer_tensor(p, (size_t)(name_end - p));
        if (t < 0) {
            return error_set(err, flag, "'%.*s' is not a layer; the layers are conv1, conv2, fc1, fc2",
                             (int)(name_end - p), p);
        }
        float value = 0.0f;
        if (with_values) {
            char *stop;
            const double v = strtod(equals + 1, &stop);
            if (stop == equals + 1 || stop != end || !(v >= 0.0 && v <= 1000.0)) {
                return error_set(err, flag, "'%.*s': the scale must be a number in [0, 1000]", (int)(end - p), p);
            }
            value = (float)v;
        }
        scale[t] = scale[t + 1] = value; /* weight and bias */
        p = *end == ',' ? end + 1 : end;
    }
    return 0;
}

int train_better_setup(TrainBetter *tb, const TrainBetterOptions *o, TrainerOptions *trainer, CnnConfig *config,
                       CourseError *err)
{
    memset(tb, 0, sizeof *tb);
    const int augment = augment_parse(o->augment);
    if (augment < 0) {
        return error_set(err, "--augment", "'%s' is not one of: none, affine, elastic", o->augment);
    }
    const int optimizer = optimizer_parse(o->optimizer);
    if (optimizer < 0) {
        return error_set(err, "--optimizer", "'%s' is not one of: sgd, adam, adamw", o->optimizer);
    }
    const int schedule = schedule_parse(o->schedule);
    if (schedule < 0) {
        return error_set(err, "--lr-schedule", "'%s' is not one of: constant, step, cosine, onecycle", o->schedule);
    }
    tb->augment = augment_default_config((AugmentKind)augment);
    tb->optimizer = optimizer_default_config((OptimizerKind)optimizer);
    if (optimizer == OPTIM_ADAMW && !o->weight_decay_given && trainer->resume == NULL) {
        trainer->weight_decay = tb->optimizer.weight_decay; /* torch's AdamW default, 0.01; the checkpoint keeps it */
    }
    tb->optimizer.momentum = trainer->momentum;
    tb->optimizer.weight_decay = trainer->weight_decay;
    tb->schedule.kind = (ScheduleKind)schedule;
    tb->step_epochs = o->step_epochs;
    tb->gamma = o->gamma;
    for (int t = 0; t < CNN_TENSORS; ++t) {
        tb->layer_scale[t] = 1.0f;
    }
    if ((o->freeze != NULL && parse_layers("--freeze", o->freeze, false, tb->layer_scale, err) != 0) ||
        (o->layer_lr != NULL && parse_layers("--layer-lr", o->layer_lr, true, tb->layer_scale, err) != 0)) {
        return -1;
    }
    static const char *const layers[] = {"conv1", "conv2", "fc1", "fc2"};
    bool scaled = false;
    for (int l = 0; l < 4; ++l) {
        const float s = tb->layer_scale[2 * l];
        if (s != 1.0f) {
            const size_t used = strlen(tb->layer_text);
            snprintf(tb->layer_text + used, sizeof tb->layer_text - used, "%s%s=%g", scaled ? "," : "", layers[l],
                     (double)s);
            scaled = true;
        }
    }
    config->dropout1 = (float)o->dropout1;
    config->dropout2 = (float)o->dropout2;
    tb->init_from = o->init_from;
    if (tb->init_from != NULL && trainer->resume != NULL) {
        return error_set(err, "--init-from", "starts a new run from another run's convolutions; --resume continues "
                                             "a run: give one of them");
    }
    /* Chapter 07's recipe is SGD momentum at a constant rate on the plain images, every layer learning; anything
     * else takes this chapter's step. (Dropout rates and --init-from need no other step.) */
    tb->active = augment != AUGMENT_NONE || optimizer != OPTIM_SGD || schedule != SCHEDULE_CONSTANT || scaled ||
                 trainer->weight_decay != 0.0;
    tb->seed = (uint64_t)trainer->seed;
    return 0;
}

/* --init-from: conv1 and conv2 (weights and biases) from another run's checkpoint. */
static void init_from_checkpoint(TrainBetter *tb, Cnn *net)
{
    Cnn source;
    TrainState state;
    CourseError err;
    if (checkpoint_load_network(tb->init_from, 1, GEMM_OPENBLAS, &source, &state, &err) != 0) {
        die("--init-from %s", err.message);
    }
    const CnnConfig *a = &source.config, *b = &net->config;
    if (a->conv1_channels != b->conv1_channels || a->conv2_channels != b->conv2_channels) {
        die("--init-from %s: its convolutions have %d and %d channels; this network's have %d and %d", tb->init_from,
            a->conv1_channels, a->conv2_channels, b->conv1_channels, b->conv2_channels);
    }
    const int copied[] = {CNN_CONV1_W, CNN_CONV1_B, CNN_CONV2_W, CNN_CONV2_B};
    for (size_t i = 0; i < sizeof copied / sizeof copied[0]; ++i) {
        const int t = copied[i];
        memcpy(net->tensors[t].value, source.tensors[t].value, net->tensors[t].count * sizeof(float));
    }
    printf("init: conv1 and conv2 from %s (trained %d epoch(s) on %s); fc1 and fc2 freshly initialised\n",
           tb->init_from, state.epoch, state.data);
    cnn_destroy(&source);
}

void train_better_start(TrainBetter *tb, Cnn *net, const TrainerOptions *trainer, size_t train_count)
{
    tb->net = net;
    if (optimizer_state_buffers(tb->optimizer.kind) == 2) {
        tb->second = xcalloc(net->parameter_count, sizeof *tb->second);
    }
    tb->cpu_segments.count = CNN_TENSORS;
    for (int t = 0; t < CNN_TENSORS; ++t) {
        tb->cpu_segments.start[t] = (size_t)(net->tensors[t].value - net->parameters);
        tb->cpu_segments.end[t] = tb->cpu_segments.start[t] + net->tensors[t].count;
        tb->cpu_segments.lr_scale[t] = tb->layer_scale[t];
    }
    const size_t pixels = (size_t)net->config.image_size * (size_t)net->config.image_size;
    tb->x = xmalloc((size_t)trainer->batch * pixels * sizeof *tb->x);
    const uint64_t steps_per_epoch = (train_count + (size_t)trainer->batch - 1) / (size_t)trainer->batch;
    const ScheduleKind kind = tb->schedule.kind;
    tb->schedule = schedule_default_config(kind, trainer->lr, steps_per_epoch * (uint64_t)trainer->epochs,
                                           steps_per_epoch);
    tb->schedule.step_epochs = tb->step_epochs;
    tb->schedule.gamma = tb->gamma;
    if (tb->init_from != NULL) {
        init_from_checkpoint(tb, net);
    }
}

void train_better_checkpoint(TrainBetter *tb, CheckpointModel *model)
{
    model->optimizer = optimizer_name(tb->optimizer.kind);
    if (tb->second != NULL) {
        for (int t = 0; t < model->n_tensors; ++t) { /* the model lists the network's tensors in order */
            model->tensors[t].second = tb->second + (tb->net->tensors[t].value - tb->net->parameters);
        }
    }
    char schedule[64];
    const char *schedule_flags = "--lr-schedule";
    const ScheduleConfig *sc = &tb->schedule;
    if (sc->kind == SCHEDULE_STEP) {
        snprintf(schedule, sizeof schedule, "step:%d:%g", tb->step_epochs, tb->gamma);
    } else if (sc->kind == SCHEDULE_COSINE || sc->kind == SCHEDULE_ONECYCLE) {
        /* Their rate at step t depends on the run's length T (from --epochs), so a resume with another
         * --epochs would not continue the same curve: the length is part of the setting. */
        const unsigned long long epochs = sc->steps_per_epoch > 0 ? sc->total_steps / sc->steps_per_epoch : 0;
        snprintf(schedule, sizeof schedule, "%s over %llu epoch%s", schedule_name(sc->kind), epochs,
                 epochs == 1 ? "" : "s");
        schedule_flags = "--lr-schedule and --epochs";
    } else {
        snprintf(schedule, sizeof schedule, "%s", schedule_name(sc->kind));
    }
    checkpoint_model_setting(model, "augment", "--augment", augment_name(tb->augment.kind), "none");
    checkpoint_model_setting(model, "lr_schedule", schedule_flags, schedule, "constant");
    checkpoint_model_setting(model, "layer_lr", "--freeze and --layer-lr", tb->layer_text, "");
}

float train_better_lr(const TrainBetter *tb, uint64_t global_step)
{
    return (float)schedule_lr(&tb->schedule, global_step);
}

float train_better_cpu_step(TrainBetter *tb, const MnistSplit *split, const uint32_t *indices, const float *x,
                            const int32_t *labels, int n, uint64_t global_step)
{
    Cnn *net = tb->net;
    const float *input = x; /* (n, 1, S, S) */
    if (tb->augment.kind != AUGMENT_NONE) {
        augment_batch_cpu(&tb->augment, split, indices, n, tb->seed, global_step, tb->x);
        input = tb->x;
    }
    gpu_cnn_philox_masks(net, n, tb->seed, global_step); /* the GPU's dropout masks, as chapter 07's CPU path */
    const float loss = cnn_forward_loss(net, input, labels, n, true);
    cnn_backward(net, labels, n);
    optim_step_cpu(&tb->optimizer, &tb->cpu_segments, net->parameters, net->gradients, net->velocity, tb->second,
                   net->parameter_count, train_better_lr(tb, global_step), global_step + 1);
    return loss;
}

void train_better_json_fields(const TrainBetter *tb, JsonField *fields, size_t *count)
{
    fields[(*count)++] = json_string("augment", augment_name(tb->augment.kind));
    fields[(*count)++] = json_string("optimizer", optimizer_name(tb->optimizer.kind));
    fields[(*count)++] = json_string("lr_schedule", schedule_name(tb->schedule.kind));
    fields[(*count)++] = json_number("weight_decay", (double)tb->optimizer.weight_decay);
    fields[(*count)++] = json_number("dropout1", (double)tb->net->config.dropout1);
    fields[(*count)++] = json_number("dropout2", (double)tb->net->config.dropout2);
    fields[(*count)++] = json_string("init_from", tb->init_from != NULL ? tb->init_from : "");
    fields[(*count)++] = json_string("layer_lr", tb->layer_text);
}

void train_better_print(const TrainBetter *tb)
{
    if (!tb->active && tb->init_from == NULL) {
        return;
    }
    printf("chapter 10: augment %s, optimizer %s, lr schedule %s", augment_name(tb->augment.kind),
           optimizer_name(tb->optimizer.kind), schedule_name(tb->schedule.kind));
    if (tb->optimizer.weight_decay != 0.0) {
        printf(", weight decay %g", (double)tb->optimizer.weight_decay);
    }
    if (tb->layer_text[0] != '\0') {
        printf(", layer learning-rate scales %s", tb->layer_text);
    }
    printf("\n");
}

void train_better_destroy(TrainBetter *tb)
{
    free(tb->second);
    free(tb->x);
    train_better_gpu_free(tb);
    memset(tb, 0, sizeof *tb);
}
