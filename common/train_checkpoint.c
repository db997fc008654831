/* train_checkpoint.c — training checkpoints in .safetensors (see train_checkpoint.h). */
#include "train_checkpoint.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "train_util.h" /* DATA_LOADER_STREAM */

void checkpoint_model_tensor(CheckpointModel *model, const char *name, int ndim, const size_t *shape, float *value,
                             float *velocity)
{
    if (model->n_tensors == CHECKPOINT_MAX_TENSORS || ndim < 1 || ndim > 4) {
        die("checkpoint: tensor '%s' does not fit the model description (raise CHECKPOINT_MAX_TENSORS?)", name);
    }
    CheckpointTensor *t = &model->tensors[model->n_tensors++];
    t->name = name;
    t->ndim = ndim;
    for (int d = 0; d < ndim; ++d) {
        t->shape[d] = shape[d];
    }
    t->value = value;
    t->velocity = velocity;
    t->second = NULL;
}

void checkpoint_model_arch(CheckpointModel *model, const char *key, const char *flag, const char *fmt, ...)
{
    if (model->n_arch == CHECKPOINT_MAX_ARCH) {
        die("checkpoint: too many architecture entries (raise CHECKPOINT_MAX_ARCH)");
    }
    CheckpointArch *a = &model->arch[model->n_arch++];
    a->key = key;
    a->flag = flag;
    a->absent = NULL;
    va_list args;
    va_start(args, fmt);
    vsnprintf(a->value, sizeof a->value, fmt, args);
    va_end(args);
}

void checkpoint_model_setting(CheckpointModel *model, const char *key, const char *flag, const char *value,
                              const char *absent)
{
    checkpoint_model_arch(model, key, flag, "%s", value);
    model->arch[model->n_arch - 1].absent = absent;
}

/* ---- Stray temporary files ------------------------------------------------------------------------------ */

int checkpoint_remove_stray_temps(const char *path)
{
    /* file_util.c's atomic_file_open names its temp file "<path>.tmp.XXXXXX" (mkstemp: 6 characters). */
    char folder[4096], prefix[4096];
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(folder, sizeof folder, ".");
        snprintf(prefix, sizeof prefix, "%s.tmp.", path);
    } else {
        snprintf(folder, sizeof folder, "%.*s", (int)(slash - path) > 0 ? (int)(slash - path) : 1, path);
        snprintf(prefix, sizeof prefix, "%s.tmp.", slash + 1);
    }
    DIR *dir = opendir(folder);
    if (dir == NULL) {
        return 0;
    }
    const size_t prefix_length = strlen(prefix);
    int removed = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (strncmp(entry->d_name, prefix, prefix_length) == 0 && strlen(entry->d_name) == prefix_length + 6) {
            char stray[8192];
            snprintf(stray, sizeof stray, "%s/%s", folder, entry->d_name);
            if (unlink(stray) == 0) {
                printf("removed %s: the temporary file of a save that was interrupted (the checkpoint itself is "
                       "whole)\n", stray);
                removed++;
            }
        }
    }
    closedir(dir);
    return removed;
}

/* ---- Writing -------------------------------------------------------------------------------------------- */

/* Metadata values are strings; each gets a slot in a fixed table so that the pointers stay valid. */
enum { META_SLOTS = 48 + CHECKPOINT_MAX_ARCH, META_VALUE = 72, META_LISTS = 4 };

typedef struct MetaBuilder {
    SafetensorsMeta entries[META_SLOTS];
    char values[META_SLOTS][META_VALUE];
    size_t count;
    char *lists[META_LISTS]; /* the history lists, which can be long */
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

int checkpoint_optimizer_states(const char *optimizer, const char *prefixes[2])
{
    if (optimizer == NULL || strcmp(optimizer, "sgd") == 0) {
        prefixes[0] = "momentum_buffer";
        prefixes[1] = NULL;
        return 1;
    }
    if (strcmp(optimizer, "adam") == 0 || strcmp(optimizer, "adamw") == 0) {
        prefixes[0] = "exp_avg";
        prefixes[1] = "exp_avg_sq";
        return 2;
    }
    return -1;
}

static const char *model_optimizer(const CheckpointModel *model)
{
    return model->optimizer != NULL ? model->optimizer : "sgd";
}

/* The name of a tensor's state buffer k under an optimiser: "momentum_buffer.<PyTorch name>", ... */
static void state_name(const char *optimizer, int k, const CheckpointTensor *tensor, char *out, size_t size)
{
    const char *prefixes[2];
    checkpoint_optimizer_states(optimizer, prefixes);
    snprintf(out, size, "%s.%s", prefixes[k], tensor->name);
}

/* The buffer that holds state k of a tensor in memory. */
static float *state_buffer(const CheckpointTensor *tensor, int k)
{
    return k == 0 ? tensor->velocity : tensor->second;
}

int checkpoint_write(const char *path, const CheckpointModel *model, const TrainState *state, CourseError *err)
{
    checkpoint_remove_stray_temps(path);
    MetaBuilder m = {0};
    meta_add(&m, "format", "%s", model->format);
    meta_add(&m, "format_version", "%s", model->format_version);
    const char *optimizer = model_optimizer(model);
    const char *prefixes[2];
    const int states = checkpoint_optimizer_states(optimizer, prefixes);
    if (states < 0) {
        return error_set(err, path, "unknown optimiser '%s'", optimizer);
    }
    for (int t = 0; t < model->n_tensors; ++t) {
        for (int k = 0; k < states; ++k) {
            if (state_buffer(&model->tensors[t], k) == NULL) {
                return error_set(err, path, "no %s buffer for tensor '%s' (a bug in the trainer)", prefixes[k],
                                 model->tensors[t].name);
            }
        }
    }
    meta_add(&m, "optimizer", "%s", optimizer);
    for (int i = 0; i < model->n_arch; ++i) {
        meta_add(&m, model->arch[i].key, "%s", model->arch[i].value);
    }
    meta_add(&m, "trainer", "%s", state->trainer);
    meta_add(&m, "epoch", "%d", state->epoch);
    meta_add(&m, "step_in_epoch", "%zu", state->step_in_epoch);
    meta_add(&m, "global_step", "%" PRIu64, state->global_step);
    meta_add(&m, "loader_rng_state", "%016" PRIx64, state->loader_rng.state);
    meta_add(&m, "loader_rng_increment", "%016" PRIx64, state->loader_rng.increment);
    if (model->rng != NULL) {
        meta_add(&m, "network_rng_state", "%016" PRIx64, model->rng->state);
        meta_add(&m, "network_rng_increment", "%016" PRIx64, model->rng->increment);
    }
    meta_add(&m, "epoch_loss_sum", "%.17g", state->epoch_loss_sum);
    meta_add(&m, "epoch_samples", "%zu", state->epoch_samples);
    meta_add(&m, "seed", "%d", state->seed);
    meta_add(&m, "batch", "%d", state->batch);
    meta_add(&m, "lr", "%.17g", state->lr);
    meta_add(&m, "momentum", "%.17g", state->momentum);
    meta_add(&m, "weight_decay", "%.17g", state->weight_decay);
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
    static const char *const list_keys[META_LISTS] = {"history_test_accuracy", "history_test_loss",
                                                       "history_train_loss", "history_epoch_seconds"};
    const double *lists[META_LISTS] = {state->test_accuracy, state->test_loss, state->train_loss,
                                       state->epoch_seconds};
    for (int i = 0; i < META_LISTS; ++i) {
        m.lists[i] = format_list(lists[i], state->epoch);
        m.entries[m.count++] = (SafetensorsMeta){list_keys[i], m.lists[i]};
    }

    /* Tensors: the weights under PyTorch's names, then the optimiser's state buffers (one set per buffer). */
    SafetensorsTensorView views[3 * CHECKPOINT_MAX_TENSORS];
    char names[2][CHECKPOINT_MAX_TENSORS][96];
    const int n = model->n_tensors;
    for (int t = 0; t < n; ++t) {
        const CheckpointTensor *tensor = &model->tensors[t];
        SafetensorsTensorView *v = &views[t];
        v->name = tensor->name;
        v->ndim = tensor->ndim;
        for (int d = 0; d < tensor->ndim; ++d) {
            v->shape[d] = tensor->shape[d];
        }
        v->data = tensor->value;
        for (int k = 0; k < states; ++k) {
            SafetensorsTensorView *sv = &views[(k + 1) * n + t];
            state_name(optimizer, k, tensor, names[k][t], sizeof names[k][t]);
            *sv = *v;
            sv->name = names[k][t];
            sv->data = state_buffer(tensor, k);
        }
    }
    const int rc = safetensors_write_f32(path, views, (size_t)(states + 1) * n, m.entries, m.count, err);
    for (int i = 0; i < META_LISTS; ++i) {
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

int checkpoint_meta_u64(const SafetensorsFile *f, const char *path, const char *key, uint64_t *out, CourseError *err)
{
    return parse_u64(path, key, need(f, path, key, err), 10, out, err);
}

int checkpoint_meta_double(const SafetensorsFile *f, const char *path, const char *key, double *out, CourseError *err)
{
    return parse_double(path, key, need(f, path, key, err), out, err);
}

/* A random stream saved as "<prefix>_state" and "<prefix>_increment" (hex). */
static int get_rng(const SafetensorsFile *f, const char *path, const char *prefix, Rng *out, CourseError *err)
{
    char state_key[48], increment_key[48];
    snprintf(state_key, sizeof state_key, "%s_state", prefix);
    snprintf(increment_key, sizeof increment_key, "%s_increment", prefix);
    if (parse_u64(path, state_key, need(f, path, state_key, err), 16, &out->state, err) ||
        parse_u64(path, increment_key, need(f, path, increment_key, err), 16, &out->increment, err)) {
        return -1;
    }
    if ((out->increment & 1) == 0) {
        return error_set(err, path, "metadata '%s' is even: not a generator's increment", increment_key);
    }
    return 0;
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

int checkpoint_open(const char *path, const char *format, const char *what, SafetensorsFile *f, CourseError *err)
{
    if (safetensors_read(path, f, err) != 0) {
        return -1;
    }
    const char *found = safetensors_meta(f, "format");
    if (found == NULL || strcmp(found, format) != 0) {
        const char *trainer = safetensors_meta(f, "trainer");
        error_set(err, path, "not a checkpoint of %s (metadata format is '%s', expected '%s')%s%s%s", what,
                  found ? found : "(absent)", format, trainer ? "; it was written by " : "", trainer ? trainer : "",
                  trainer ? ", which trains another network" : "");
        safetensors_free(f);
        return -1;
    }
    return 0;
}

/* The architecture the file was saved for must be the model's. */
static int check_architecture(const SafetensorsFile *f, const char *path, const CheckpointModel *model,
                              CourseError *err)
{
    for (int i = 0; i < model->n_arch; ++i) {
        const CheckpointArch *a = &model->arch[i];
        const char *value =
            a->absent != NULL && safetensors_meta(f, a->key) == NULL ? a->absent : need(f, path, a->key, err);
        if (value == NULL) {
            return -1;
        }
        if (strcmp(value, a->value) != 0) {
            return error_set(err, path,
                             "saved %s: its %s is %.40s, this run's is %s%s%s — resume with the same settings, or "
                             "start a new run",
                             a->absent != NULL ? "by a run with other settings" : "for another network", a->key,
                             value, a->value, a->flag ? "; see " : "", a->flag ? a->flag : "");
        }
    }
    /* The optimiser that wrote the file (checkpoints older than chapter 10 name none: SGD's). */
    const char *saved_optimizer = safetensors_meta(f, "optimizer") != NULL ? safetensors_meta(f, "optimizer") : "sgd";
    const char *prefixes[2];
    const int states = checkpoint_optimizer_states(saved_optimizer, prefixes);
    if (states < 0) {
        return error_set(err, path, "metadata 'optimizer' is '%.40s', not one of sgd, adam, adamw", saved_optimizer);
    }
    if (!model->weights_only && strcmp(saved_optimizer, model_optimizer(model)) != 0) {
        return error_set(err, path,
                         "saved by a run with --optimizer %s; this run's is %s — resume with the same settings, or "
                         "start a new run (--init-from takes the weights of any checkpoint)",
                         saved_optimizer, model_optimizer(model));
    }
    for (int t = 0; t < model->n_tensors; ++t) {
        const CheckpointTensor *tensor = &model->tensors[t];
        char names[3][96];
        snprintf(names[0], sizeof names[0], "%s", tensor->name);
        for (int k = 0; k < states; ++k) {
            state_name(saved_optimizer, k, tensor, names[k + 1], sizeof names[k + 1]);
        }
        for (int k = 0; k < states + 1; ++k) {
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
    if (f->n_tensors != (size_t)(states + 1) * model->n_tensors) {
        return error_set(err, path, "holds %zu tensors; a checkpoint of this network trained with %s has %d",
                         f->n_tensors, saved_optimizer, (states + 1) * model->n_tensors);
    }
    return 0;
}

/* An optional double (default `fallback`). */
static int get_optional_double(const SafetensorsFile *f, const char *path, const char *key, double fallback,
                               double *out, CourseError *err)
{
    *out = fallback;
    return safetensors_meta(f, key) != NULL ? parse_double(path, key, safetensors_meta(f, key), out, err) : 0;
}

static int read_state(const SafetensorsFile *f, const char *path, const CheckpointModel *model, TrainState *s,
                      Rng *network_rng, CourseError *err)
{
    uint64_t epoch, step_in_epoch, seed, batch, train_count, epoch_samples, trained_samples;
    if (checkpoint_meta_u64(f, path, "epoch", &epoch, err) ||
        checkpoint_meta_u64(f, path, "step_in_epoch", &step_in_epoch, err) ||
        checkpoint_meta_u64(f, path, "global_step", &s->global_step, err) ||
        checkpoint_meta_u64(f, path, "seed", &seed, err) || checkpoint_meta_u64(f, path, "batch", &batch, err) ||
        checkpoint_meta_u64(f, path, "train_count", &train_count, err) ||
        checkpoint_meta_u64(f, path, "epoch_samples", &epoch_samples, err) ||
        checkpoint_meta_u64(f, path, "trained_samples", &trained_samples, err) ||
        checkpoint_meta_double(f, path, "epoch_loss_sum", &s->epoch_loss_sum, err) ||
        checkpoint_meta_double(f, path, "lr", &s->lr, err) ||
        checkpoint_meta_double(f, path, "momentum", &s->momentum, err) ||
        checkpoint_meta_double(f, path, "train_seconds", &s->train_seconds, err) ||
        get_optional_double(f, path, "weight_decay", 0.0, &s->weight_decay, err)) {
        return -1;
    }
    /* The random streams: required once the run has started; a run that has not may leave them out. */
    const bool fresh = epoch == 0 && step_in_epoch == 0;
    if (safetensors_meta(f, "loader_rng_state") != NULL || !fresh) {
        if (get_rng(f, path, "loader_rng", &s->loader_rng, err) != 0) {
            return -1;
        }
    } else if (seed <= INT32_MAX) {
        rng_seed(&s->loader_rng, seed, DATA_LOADER_STREAM);
    }
    if (model->rng != NULL && (safetensors_meta(f, "network_rng_state") != NULL || !fresh)) {
        if (safetensors_meta(f, "network_rng_state") == NULL) {
            const char *trainer = safetensors_meta(f, "trainer");
            return error_set(err, path,
                             "saved in the middle of a run by %s, which keeps no state of %s's random stream "
                             "(metadata 'network_rng_state' is missing): resume it with the trainer that wrote it",
                             trainer ? trainer : "another trainer", model->what);
        }
        if (get_rng(f, path, "network_rng", network_rng, err) != 0) {
            return -1;
        }
    }
    uint64_t test_count = 0;
    if (safetensors_meta(f, "test_samples") != NULL &&
        checkpoint_meta_u64(f, path, "test_samples", &test_count, err) != 0) {
        return -1;
    }
    s->test_count = (size_t)test_count;
    if (epoch > CHECKPOINT_MAX_EPOCHS || seed > INT32_MAX || batch < 1 || batch > INT32_MAX ||
        step_in_epoch * batch > train_count) {
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
    const char *trainer = safetensors_meta(f, "trainer");
    snprintf(s->trainer, sizeof s->trainer, "%s", trainer ? trainer : "");
    /* The seconds of each epoch: checkpoints written before they were recorded lack the list (zeros then). */
    if (safetensors_meta(f, "history_epoch_seconds") != NULL &&
        get_list(f, path, "history_epoch_seconds", s->epoch_seconds, s->epoch, err) != 0) {
        return -1;
    }
    return get_list(f, path, "history_test_accuracy", s->test_accuracy, s->epoch, err) ||
                   get_list(f, path, "history_test_loss", s->test_loss, s->epoch, err) ||
                   get_list(f, path, "history_train_loss", s->train_loss, s->epoch, err)
               ? -1
               : 0;
}

int checkpoint_read(const char *path, CheckpointModel *model, TrainState *state, CourseError *err)
{
    SafetensorsFile f;
    if (checkpoint_open(path, model->format, model->what, &f, err) != 0) {
        return -1;
    }
    const char *version = safetensors_meta(&f, "format_version");
    int rc = 0;
    if (version == NULL || strcmp(version, model->format_version) != 0) {
        rc = error_set(err, path, "checkpoint format version '%s'; this trainer reads version %s",
                       version ? version : "(absent)", model->format_version);
    }
    static TrainState loaded; /* static: 32 KB, too big for some threads' stacks */
    memset(&loaded, 0, sizeof loaded);
    Rng network_rng = model->rng != NULL ? *model->rng : (Rng){0};
    if (rc == 0) {
        rc = check_architecture(&f, path, model, err);
    }
    if (rc == 0) {
        rc = read_state(&f, path, model, &loaded, &network_rng, err);
    }
    if (rc == 0) { /* everything checked: only now touch the network */
        const char *optimizer = model_optimizer(model);
        const int states = model->weights_only ? 0 : checkpoint_optimizer_states(optimizer, (const char *[2]){0});
        for (int t = 0; t < model->n_tensors; ++t) {
            const CheckpointTensor *tensor = &model->tensors[t];
            safetensors_copy_f32(&f, safetensors_find(&f, tensor->name), tensor->value);
            for (int k = 0; k < states; ++k) {
                char name[96];
                state_name(optimizer, k, tensor, name, sizeof name);
                safetensors_copy_f32(&f, safetensors_find(&f, name), state_buffer(tensor, k));
            }
        }
        if (model->rng != NULL) {
            *model->rng = network_rng;
        }
        *state = loaded;
    }
    safetensors_free(&f);
    return rc;
}
