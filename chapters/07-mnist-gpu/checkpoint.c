/* checkpoint.c — the CNN's checkpoints in .safetensors (see checkpoint.h). */
#include "checkpoint.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "train_util.h" /* DATA_LOADER_STREAM */

/* Metadata values are strings; each gets a slot in a fixed table so that the pointers stay valid. */
enum { META_SLOTS = 48, META_VALUE = 32 };

typedef struct MetaBuilder {
    SafetensorsMeta entries[META_SLOTS];
    char values[META_SLOTS][META_VALUE];
    size_t count;
    char *lists[3]; /* the history lists, which can be long */
} MetaBuilder;

static void meta_add(MetaBuilder *m, const char *key, const char *fmt, ...) COURSE_PRINTF(3, 4);
static void meta_add(MetaBuilder *m, const char *key, const char *fmt, ...)
{
    if (m->count == META_SLOTS) {
        die("checkpoint: too many metadata entries (raise META_SLOTS)");
    }
    va_list args;
    va_start(args, fmt);
    vsnprintf(m->values[m->count], META_VALUE, fmt, args);
    va_end(args);
    m->entries[m->count].key = key;
    m->entries[m->count].value = m->values[m->count];
    m->count++;
}

/* "v1,v2,...": n doubles with 17 significant digits (enough to read back the same double). */
static char *format_list(const double *values, int n)
{
    char *text = xmalloc((size_t)n * 26 + 1);
    size_t length = 0;
    text[0] = '\0';
    for (int i = 0; i < n; ++i) {
        length += (size_t)sprintf(text + length, i == 0 ? "%.17g" : ",%.17g", values[i]);
    }
    return text;
}

/* The name a tensor's SGD momentum buffer is saved under: "momentum_buffer.<PyTorch name>". */
static void momentum_name(const CnnTensor *tensor, char *out, size_t size)
{
    snprintf(out, size, "momentum_buffer.%s", tensor->name);
}

int checkpoint_save(const char *path, const Cnn *net, const TrainState *state, CourseError *err)
{
    const CnnConfig *c = &net->config;
    MetaBuilder m = {0};
    meta_add(&m, "format", "%s", CHECKPOINT_FORMAT);
    meta_add(&m, "format_version", "%s", CHECKPOINT_FORMAT_VERSION);
    meta_add(&m, "image_size", "%d", c->image_size);
    meta_add(&m, "padding", "%d", c->padding);
    meta_add(&m, "conv1_channels", "%d", c->conv1_channels);
    meta_add(&m, "conv2_channels", "%d", c->conv2_channels);
    meta_add(&m, "hidden", "%d", c->hidden);
    meta_add(&m, "classes", "%d", c->classes);
    meta_add(&m, "fc1_inputs", "%zu", net->features);
    meta_add(&m, "dropout1", "%.9g", (double)c->dropout1);
    meta_add(&m, "dropout2", "%.9g", (double)c->dropout2);
    meta_add(&m, "epoch", "%d", state->epoch);
    meta_add(&m, "step_in_epoch", "%zu", state->step_in_epoch);
    meta_add(&m, "global_step", "%" PRIu64, state->global_step);
    meta_add(&m, "loader_rng_state", "%016" PRIx64, state->loader_rng.state);
    meta_add(&m, "loader_rng_increment", "%016" PRIx64, state->loader_rng.increment);
    meta_add(&m, "epoch_loss_sum", "%.17g", state->epoch_loss_sum);
    meta_add(&m, "epoch_samples", "%zu", state->epoch_samples);
    meta_add(&m, "seed", "%d", state->seed);
    meta_add(&m, "batch", "%d", state->batch);
    meta_add(&m, "lr", "%.17g", state->lr);
    meta_add(&m, "momentum", "%.17g", state->momentum);
    meta_add(&m, "train_count", "%zu", state->train_count);
    meta_add(&m, "test_samples", "%zu", state->test_count);
    meta_add(&m, "device", "%s", state->device);
    meta_add(&m, "train_seconds", "%.17g", state->train_seconds);
    meta_add(&m, "trained_samples", "%zu", state->trained_samples);
    if (state->epoch > 0) {
        meta_add(&m, "test_accuracy", "%.17g", state->test_accuracy[state->epoch - 1]);
        meta_add(&m, "test_loss", "%.17g", state->test_loss[state->epoch - 1]);
    }
    /* Long values: the data folder and the per-epoch history lists. */
    m.entries[m.count++] = (SafetensorsMeta){"data", state->data};
    m.lists[0] = format_list(state->test_accuracy, state->epoch);
    m.lists[1] = format_list(state->test_loss, state->epoch);
    m.lists[2] = format_list(state->train_loss, state->epoch);
    m.entries[m.count++] = (SafetensorsMeta){"history_test_accuracy", m.lists[0]};
    m.entries[m.count++] = (SafetensorsMeta){"history_test_loss", m.lists[1]};
    m.entries[m.count++] = (SafetensorsMeta){"history_train_loss", m.lists[2]};

    /* Tensors: the weights under PyTorch's names, then their momentum buffers. */
    SafetensorsTensorView views[2 * CNN_TENSORS];
    char momentum_names[CNN_TENSORS][64];
    for (int t = 0; t < CNN_TENSORS; ++t) {
        const CnnTensor *tensor = &net->tensors[t];
        SafetensorsTensorView *v = &views[t], *mv = &views[CNN_TENSORS + t];
        v->name = tensor->name;
        v->ndim = tensor->ndim;
        for (int d = 0; d < tensor->ndim; ++d) {
            v->shape[d] = tensor->shape[d];
        }
        v->data = tensor->value;
        momentum_name(tensor, momentum_names[t], sizeof momentum_names[t]);
        *mv = *v;
        mv->name = momentum_names[t];
        mv->data = tensor->velocity;
    }
    const int rc = safetensors_write_f32(path, views, 2 * CNN_TENSORS, m.entries, m.count, err);
    for (int i = 0; i < 3; ++i) {
        free(m.lists[i]);
    }
    return rc;
}

/* ---- Loading ------------------------------------------------------------------------------------------- */

/* The metadata value `key`, required. */
static const char *need(const SafetensorsFile *f, const char *path, const char *key, CourseError *err)
{
    const char *value = safetensors_meta(f, key);
    if (value == NULL) {
        error_set(err, path, "not a checkpoint of this trainer: metadata '%s' is missing", key);
    }
    return value;
}

/* Parse the whole of `text` as the given kind; -1 with err otherwise. */
static int parse_u64(const char *path, const char *key, const char *text, int base, uint64_t *out, CourseError *err)
{
    char *end;
    if (text == NULL) {
        return -1;
    }
    *out = strtoull(text, &end, base);
    if (end == text || *end != '\0' || text[0] == '-') {
        return error_set(err, path, "metadata '%s' is '%.40s', not a number", key, text);
    }
    return 0;
}

static int parse_double(const char *path, const char *key, const char *text, double *out, CourseError *err)
{
    char *end;
    if (text == NULL) {
        return -1;
    }
    *out = strtod(text, &end);
    if (end == text || *end != '\0') {
        return error_set(err, path, "metadata '%s' is '%.40s', not a number", key, text);
    }
    return 0;
}

static int get_u64(const SafetensorsFile *f, const char *path, const char *key, uint64_t *out, CourseError *err)
{
    return parse_u64(path, key, need(f, path, key, err), 10, out, err);
}

static int get_double(const SafetensorsFile *f, const char *path, const char *key, double *out, CourseError *err)
{
    return parse_double(path, key, need(f, path, key, err), out, err);
}

/* "a,b,c" into exactly n doubles ("" for n = 0). */
static int get_list(const SafetensorsFile *f, const char *path, const char *key, double *out, int n,
                    CourseError *err)
{
    const char *text = need(f, path, key, err);
    if (text == NULL) {
        return -1;
    }
    const char *p = text;
    for (int i = 0; i < n; ++i) {
        char *end;
        out[i] = strtod(p, &end);
        if (end == p || (i + 1 < n ? *end != ',' : *end != '\0')) {
            return error_set(err, path, "metadata '%s' should hold %d numbers: '%.60s'", key, n, text);
        }
        p = end + 1;
    }
    if (n == 0 && text[0] != '\0') {
        return error_set(err, path, "metadata '%s' should be empty at epoch 0", key);
    }
    return 0;
}

/* The architecture the file was saved for must be the one of net. */
static int check_architecture(const SafetensorsFile *f, const char *path, const Cnn *net, CourseError *err)
{
    const CnnConfig *c = &net->config;
    const struct {
        const char *key;
        uint64_t expected;
        const char *flag; /* what to change on the command line */
    } fields[] = {
        {"image_size", (uint64_t)c->image_size, "--data (images of another size)"},
        {"padding", (uint64_t)c->padding, "--padding"},
        {"conv1_channels", (uint64_t)c->conv1_channels, NULL},
        {"conv2_channels", (uint64_t)c->conv2_channels, NULL},
        {"hidden", (uint64_t)c->hidden, NULL},
        {"classes", (uint64_t)c->classes, NULL},
        {"fc1_inputs", (uint64_t)net->features, "--padding"},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; ++i) {
        uint64_t value;
        if (get_u64(f, path, fields[i].key, &value, err) != 0) {
            return -1;
        }
        if (value != fields[i].expected) {
            return error_set(err, path,
                             "saved for another network: its %s is %" PRIu64 ", this run's is %" PRIu64
                             "%s%s — resume with the same settings, or start a new run",
                             fields[i].key, value, fields[i].expected, fields[i].flag ? "; see " : "",
                             fields[i].flag ? fields[i].flag : "");
        }
    }
    for (int t = 0; t < CNN_TENSORS; ++t) {
        const CnnTensor *tensor = &net->tensors[t];
        char momentum[64];
        momentum_name(tensor, momentum, sizeof momentum);
        const char *names[2] = {tensor->name, momentum};
        for (int k = 0; k < 2; ++k) {
            const SafetensorsEntry *e = safetensors_find(f, names[k]);
            if (e == NULL) {
                return error_set(err, path, "tensor '%s' is missing", names[k]);
            }
            bool same = strcmp(e->dtype, "F32") == 0 && e->ndim == tensor->ndim;
            for (int d = 0; same && d < e->ndim; ++d) {
                same = e->shape[d] == tensor->shape[d];
            }
            if (!same) {
                char want[64] = "", got[64] = "";
                for (int d = 0; d < tensor->ndim; ++d) {
                    snprintf(want + strlen(want), sizeof want - strlen(want), d ? ", %zu" : "%zu", tensor->shape[d]);
                }
                for (int d = 0; d < e->ndim; ++d) {
                    snprintf(got + strlen(got), sizeof got - strlen(got), d ? ", %zu" : "%zu", e->shape[d]);
                }
                return error_set(err, path, "tensor '%s' is %s (%s); this network needs F32 (%s)", names[k], e->dtype,
                                 got, want);
            }
        }
    }
    if (f->n_tensors != 2 * CNN_TENSORS) {
        return error_set(err, path, "holds %zu tensors; a checkpoint of this network has %d", f->n_tensors,
                         2 * CNN_TENSORS);
    }
    return 0;
}

static int read_state(const SafetensorsFile *f, const char *path, TrainState *s, CourseError *err)
{
    uint64_t epoch, step_in_epoch, seed, batch, train_count, epoch_samples, trained_samples;
    if (get_u64(f, path, "epoch", &epoch, err) || get_u64(f, path, "step_in_epoch", &step_in_epoch, err) ||
        get_u64(f, path, "global_step", &s->global_step, err) || get_u64(f, path, "seed", &seed, err) ||
        get_u64(f, path, "batch", &batch, err) || get_u64(f, path, "train_count", &train_count, err) ||
        get_u64(f, path, "epoch_samples", &epoch_samples, err) ||
        get_u64(f, path, "trained_samples", &trained_samples, err) ||
        get_double(f, path, "epoch_loss_sum", &s->epoch_loss_sum, err) || get_double(f, path, "lr", &s->lr, err) ||
        get_double(f, path, "momentum", &s->momentum, err) ||
        get_double(f, path, "train_seconds", &s->train_seconds, err)) {
        return -1;
    }
    /* The shuffling generator: required once the run has started; a run that has not may leave it out. */
    const bool fresh = epoch == 0 && step_in_epoch == 0;
    if (safetensors_meta(f, "loader_rng_state") != NULL || !fresh) {
        if (parse_u64(path, "loader_rng_state", need(f, path, "loader_rng_state", err), 16, &s->loader_rng.state,
                      err) ||
            parse_u64(path, "loader_rng_increment", need(f, path, "loader_rng_increment", err), 16,
                      &s->loader_rng.increment, err)) {
            return -1;
        }
    } else if (seed <= INT32_MAX) {
        rng_seed(&s->loader_rng, seed, DATA_LOADER_STREAM);
    }
    uint64_t test_count = 0;
    if (safetensors_meta(f, "test_samples") != NULL && get_u64(f, path, "test_samples", &test_count, err) != 0) {
        return -1;
    }
    s->test_count = (size_t)test_count;
    if (epoch > CHECKPOINT_MAX_EPOCHS || seed > INT32_MAX || batch < 1 || batch > INT32_MAX ||
        (s->loader_rng.increment & 1) == 0 || step_in_epoch * batch > train_count) {
        return error_set(err, path,
                         "inconsistent training state (epoch %" PRIu64 ", step %" PRIu64 " of batch %" PRIu64
                         " in an epoch of %" PRIu64 " samples)",
                         epoch, step_in_epoch, batch, train_count);
    }
    s->epoch = (int)epoch;
    s->step_in_epoch = (size_t)step_in_epoch;
    s->seed = (int)seed;
    s->batch = (int)batch;
    s->train_count = (size_t)train_count;
    s->epoch_samples = (size_t)epoch_samples;
    s->trained_samples = (size_t)trained_samples;
    const char *device = need(f, path, "device", err), *data = need(f, path, "data", err);
    if (device == NULL || data == NULL) {
        return -1;
    }
    snprintf(s->device, sizeof s->device, "%s", device);
    snprintf(s->data, sizeof s->data, "%s", data);
    return get_list(f, path, "history_test_accuracy", s->test_accuracy, s->epoch, err) ||
                   get_list(f, path, "history_test_loss", s->test_loss, s->epoch, err) ||
                   get_list(f, path, "history_train_loss", s->train_loss, s->epoch, err)
               ? -1
               : 0;
}

int checkpoint_load(const char *path, Cnn *net, TrainState *state, CourseError *err)
{
    SafetensorsFile f;
    if (safetensors_read(path, &f, err) != 0) {
        return -1;
    }
    const char *format = safetensors_meta(&f, "format");
    const char *version = safetensors_meta(&f, "format_version");
    int rc = 0;
    if (format == NULL || strcmp(format, CHECKPOINT_FORMAT) != 0) {
        rc = error_set(err, path, "not a checkpoint of this course's CNN (metadata format is '%s', expected '%s')",
                       format ? format : "(absent)", CHECKPOINT_FORMAT);
    } else if (version == NULL || strcmp(version, CHECKPOINT_FORMAT_VERSION) != 0) {
        rc = error_set(err, path, "checkpoint format version '%s'; this trainer reads version %s",
                       version ? version : "(absent)", CHECKPOINT_FORMAT_VERSION);
    }
    TrainState loaded;
    memset(&loaded, 0, sizeof loaded);
    if (rc == 0) {
        rc = check_architecture(&f, path, net, err);
    }
    if (rc == 0) {
        rc = read_state(&f, path, &loaded, err);
    }
    if (rc == 0) { /* everything checked: only now touch the network */
        for (int t = 0; t < CNN_TENSORS; ++t) {
            CnnTensor *tensor = &net->tensors[t];
            char momentum[64];
            momentum_name(tensor, momentum, sizeof momentum);
            safetensors_copy_f32(&f, safetensors_find(&f, tensor->name), tensor->value);
            safetensors_copy_f32(&f, safetensors_find(&f, momentum), tensor->velocity);
        }
        *state = loaded;
    }
    safetensors_free(&f);
    return rc;
}

/* ---- Loading a network whose shape the file gives ------------------------------------------------------- */

int checkpoint_load_network(const char *path, int max_batch, GemmBackend backend, Cnn *net, TrainState *state,
                            CourseError *err)
{
    memset(net, 0, sizeof *net);
    SafetensorsFile f;
    if (safetensors_read(path, &f, err) != 0) {
        return -1;
    }
    /* The shape, from the metadata; checkpoint_load below checks the rest (format, tensors, state). */
    const char *format = safetensors_meta(&f, "format");
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
    if (format == NULL || strcmp(format, CHECKPOINT_FORMAT) != 0) {
        rc = error_set(err, path, "not a checkpoint of this course's CNN (metadata format is '%s', expected '%s')",
                       format ? format : "(absent)", CHECKPOINT_FORMAT);
    }
    for (size_t i = 0; rc == 0 && i < sizeof ints / sizeof ints[0]; ++i) {
        uint64_t value;
        if (get_u64(&f, path, ints[i].key, &value, err) != 0) {
            rc = -1;
        } else if (value < ints[i].min || value > CHECKPOINT_MAX_WIDTH) {
            rc = error_set(err, path, "metadata '%s' is %" PRIu64 ", outside [%" PRIu64 ", %d]", ints[i].key, value,
                           ints[i].min, CHECKPOINT_MAX_WIDTH);
        } else {
            *ints[i].field = (int)value;
        }
    }
    double dropout[2];
    if (rc == 0 && (get_double(&f, path, "dropout1", &dropout[0], err) != 0 ||
                    get_double(&f, path, "dropout2", &dropout[1], err) != 0)) {
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
    TrainState loaded;
    if (checkpoint_load(path, net, &loaded, err) != 0) {
        cnn_destroy(net);
        memset(net, 0, sizeof *net);
        return -1;
    }
    if (state != NULL) {
        *state = loaded;
    }
    return 0;
}
