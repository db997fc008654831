/* train_util.c — see train_util.h: flags, data loader, progress bar, loss guard, confusion matrix, JSON. */
#include "train_util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exercise.h"
#include "file_util.h"
#include "timer.h"

/* ---- Command-line flags ------------------------------------------------------------------------------ */

static void format_default(char *buf, size_t size, const FlagSpec *spec)
{
    switch (spec->kind) {
    case FLAG_INT: snprintf(buf, size, "%d", *(const int *)spec->value); break;
    case FLAG_DOUBLE: snprintf(buf, size, "%g", *(const double *)spec->value); break;
    case FLAG_STRING: {
        const char *s = *(const char *const *)spec->value;
        snprintf(buf, size, "%s", s ? s : "none");
        break;
    }
    case FLAG_SWITCH: snprintf(buf, size, "%s", *(const bool *)spec->value ? "on" : "off"); break;
    }
}

void flags_print_usage(FILE *out, const char *program, const char *description, const FlagSpec *specs,
                       size_t n_specs)
{
    fprintf(out, "usage: %s [flags]\n", program);
    if (description != NULL) {
        fprintf(out, "%s\n", description);
    }
    fprintf(out, "\nflags:\n");
    for (size_t i = 0; i < n_specs; i++) {
        char value[512];
        format_default(value, sizeof value, &specs[i]);
        const char *arg = specs[i].kind == FLAG_INT ? " N" : specs[i].kind == FLAG_DOUBLE ? " X"
                        : specs[i].kind == FLAG_STRING ? " S" : "";
        char left[64];
        snprintf(left, sizeof left, "%s%s", specs[i].name, arg);
        fprintf(out, "  %-22s %s (default: %s)\n", left, specs[i].help, value);
    }
    fprintf(out, "  %-22s %s\n", "-h, --help", "show this help");
}

static int parse_value(const FlagSpec *spec, const char *text, CourseError *err)
{
    char *end = NULL;
    errno = 0;
    if (spec->kind == FLAG_INT) {
        long v = strtol(text, &end, 10);
        if (end == text || *end != '\0' || errno == ERANGE) {
            return error_set(err, spec->name, "'%s' is not an integer", text);
        }
        if ((double)v < spec->min || (double)v > spec->max) {
            return error_set(err, spec->name, "%ld is out of range [%.0f, %.0f]", v, spec->min, spec->max);
        }
        *(int *)spec->value = (int)v;
    } else if (spec->kind == FLAG_DOUBLE) {
        double v = strtod(text, &end);
        if (end == text || *end != '\0' || errno == ERANGE || !isfinite(v)) {
            return error_set(err, spec->name, "'%s' is not a finite number", text);
        }
        if (v < spec->min || v > spec->max) {
            return error_set(err, spec->name, "%g is out of range [%g, %g]", v, spec->min, spec->max);
        }
        *(double *)spec->value = v;
    } else if (spec->kind == FLAG_STRING) {
        if (text[0] == '\0') {
            return error_set(err, spec->name, "needs a non-empty value");
        }
        *(const char **)spec->value = text;
    }
    return 0;
}

int flags_parse(int argc, char **argv, const FlagSpec *specs, size_t n_specs, const char *program,
                const char *description, CourseError *err)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            flags_print_usage(stdout, program, description, specs, n_specs);
            return FLAGS_HELP;
        }
        const char *equals = strchr(arg, '=');
        size_t name_length = equals ? (size_t)(equals - arg) : strlen(arg);
        const FlagSpec *spec = NULL;
        for (size_t k = 0; k < n_specs; k++) {
            if (strlen(specs[k].name) == name_length && strncmp(specs[k].name, arg, name_length) == 0) {
                spec = &specs[k];
                break;
            }
        }
        if (spec == NULL) {
            error_set(err, program, "unknown argument '%s' (try --help)", arg);
            return FLAGS_ERROR;
        }
        if (spec->kind == FLAG_SWITCH) {
            if (equals != NULL) {
                error_set(err, spec->name, "takes no value");
                return FLAGS_ERROR;
            }
            *(bool *)spec->value = true;
            continue;
        }
        const char *text = equals ? equals + 1 : NULL;
        if (text == NULL) {
            if (i + 1 >= argc) {
                error_set(err, spec->name, "needs a value (try --help)");
                return FLAGS_ERROR;
            }
            text = argv[++i];
        }
        if (parse_value(spec, text, err) != 0) {
            return FLAGS_ERROR;
        }
    }
    return FLAGS_OK;
}

static bool has_mnist_files(const char *dir)
{
    static const char *const names[] = {"train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[4096];
        struct stat info;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (stat(path, &info) == 0) {
            return true;
        }
    }
    return false;
}

const char *train_default_data_dir(const char *compiled_default)
{
    if (compiled_default != NULL && has_mnist_files(compiled_default)) {
        return compiled_default;
    }
    return "data";
}

int train_load_mnist(const char *dir, MnistSplit *train, MnistSplit *test, CourseError *err)
{
    memset(test, 0, sizeof *test);
    if (mnist_load(train, dir, "train", err) != 0) {
        return -1;
    }
    if (mnist_load(test, dir, "t10k", err) != 0) {
        mnist_free(train);
        return -1;
    }
    if (train->rows != test->rows || train->cols != test->cols) {
        error_set(err, dir, "training images are %zux%zu but test images are %zux%zu", train->rows, train->cols,
                  test->rows, test->cols);
        mnist_free(train);
        mnist_free(test);
        return -1;
    }
    return 0;
}

/* ---- Data loader ------------------------------------------------------------------------------------- */

void normalize_pixels(const uint8_t *pixels, float *out, size_t n)
{
    /* The same float32 operations as torchvision: ToTensor divides by 255, Normalize subtracts the mean and
     * divides by the standard deviation, so the parity test sees identical inputs. */
    for (size_t i = 0; i < n; i++) {
        out[i] = ((float)pixels[i] / 255.0f - MNIST_MEAN) / MNIST_STD;
    }
}

void data_loader_init(DataLoader *loader, const MnistSplit *split, size_t batch_size, bool shuffle,
                      uint64_t seed)
{
    memset(loader, 0, sizeof *loader);
    loader->split = split;
    loader->batch_size = batch_size > 0 ? batch_size : 1;
    loader->sample_size = split->rows * split->cols;
    loader->shuffle = shuffle;
    rng_seed(&loader->rng, seed, DATA_LOADER_STREAM);
    /* calloc: all zeros until the first epoch starts, so a missing shuffle shows up as one repeated sample. */
    loader->order = xcalloc(split->count > 0 ? split->count : 1, sizeof *loader->order);
    loader->position = split->count; /* nothing to hand out before data_loader_start_epoch */
}

/* data_loader_start_epoch is chapter 02's exercise ch02.loader_shuffle: it lives in
 * chapters/02-backprop-mlp/data_loader.c (library ch02_mlp), see train_util.h. */

size_t data_loader_next(DataLoader *loader, float *images, int32_t *labels)
{
    const MnistSplit *split = loader->split;
    if (loader->position >= split->count) {
        return 0;
    }
    size_t n = split->count - loader->position;
    if (n > loader->batch_size) {
        n = loader->batch_size; /* the last batch keeps whatever is left */
    }
    for (size_t b = 0; b < n; b++) {
        size_t sample = loader->order[loader->position + b];
        normalize_pixels(split->images + sample * loader->sample_size, images + b * loader->sample_size,
                         loader->sample_size);
        labels[b] = split->labels[sample];
    }
    loader->position += n;
    loader->batch_index++;
    return n;
}

size_t data_loader_batches(const DataLoader *loader)
{
    return (loader->split->count + loader->batch_size - 1) / loader->batch_size;
}

void data_loader_free(DataLoader *loader)
{
    free(loader->order);
    memset(loader, 0, sizeof *loader);
}

/* ---- Progress bar ------------------------------------------------------------------------------------ */

#define PROGRESS_WIDTH 30
#define PROGRESS_REDRAW_SECONDS 0.1

void progress_start(Progress *bar, int epoch, int epochs, size_t total_samples)
{
    memset(bar, 0, sizeof *bar);
    bar->epoch = epoch;
    bar->epochs = epochs;
    bar->total = total_samples;
    bar->start = timer_seconds();
    bar->last_draw = bar->start - 1.0;
    bar->interactive = isatty(fileno(stderr)) != 0;
}

double progress_mean_loss(const Progress *bar)
{
    return bar->done > 0 ? bar->loss_sum / (double)bar->done : NAN;
}

double progress_seconds(const Progress *bar)
{
    return timer_seconds() - bar->start;
}

static void progress_draw(const Progress *bar, const char *end)
{
    double seconds = progress_seconds(bar);
    size_t filled = bar->total > 0 ? bar->done * PROGRESS_WIDTH / bar->total : PROGRESS_WIDTH;
    char cells[PROGRESS_WIDTH + 1];
    for (size_t i = 0; i < PROGRESS_WIDTH; i++) {
        cells[i] = i < filled ? '=' : (i == filled ? '>' : ' ');
    }
    cells[PROGRESS_WIDTH] = '\0';
    /* "\r" returns to the start of the line, so an interactive bar overwrites itself in place. */
    fprintf(stderr, "%sepoch %d/%d [%s] %zu/%zu loss %.4f %.0f samples/s %.1f s%s", bar->interactive ? "\r" : "",
            bar->epoch, bar->epochs, cells, bar->done, bar->total, progress_mean_loss(bar),
            seconds > 0 ? (double)bar->done / seconds : 0.0, seconds, end);
    fflush(stderr);
}

void progress_update(Progress *bar, size_t samples, double batch_loss)
{
    bar->done += samples;
    bar->loss_sum += batch_loss * (double)samples;
    if (!bar->interactive) {
        return; /* a log file gets one line per epoch, from progress_finish */
    }
    double now = timer_seconds();
    if (now - bar->last_draw >= PROGRESS_REDRAW_SECONDS) {
        bar->last_draw = now;
        progress_draw(bar, "");
    }
}

void progress_finish(Progress *bar)
{
    progress_draw(bar, "\n");
}

/* ---- NaN / inf guard --------------------------------------------------------------------------------- */

int loss_guard(double loss, int epoch, size_t batch, CourseError *err)
{
    if (course_todo_count() > 0) {
        /* A stubbed exercise (student edition) ran: the numbers mean nothing, so stop now rather than train
         * a whole epoch of garbage. The stub has already printed which exercise it is. */
        return error_set(err, "training", "stopped at epoch %d, batch %zu: an exercise is not implemented yet "
                         "(named above)", epoch, batch);
    }
    if (isfinite(loss)) {
        return 0;
    }
    char where[64];
    snprintf(where, sizeof where, "epoch %d, batch %zu", epoch, batch);
    return error_set(err, "training", "loss became %s at %s: training diverged (try a smaller --lr)",
                     isnan(loss) ? "nan" : (loss > 0 ? "inf" : "-inf"), where);
}

/* ---- Confusion matrix -------------------------------------------------------------------------------- */

void confusion_matrix_print(FILE *out, const size_t *counts, int classes)
{
    size_t total = 0, correct = 0;
    fprintf(out, "confusion matrix (rows: true digit, columns: predicted digit)\n");
    fprintf(out, "true\\pred");
    for (int p = 0; p < classes; p++) {
        fprintf(out, " %5d", p);
    }
    fprintf(out, "  recall\n");
    for (int t = 0; t < classes; t++) {
        size_t row = 0;
        fprintf(out, "%9d", t);
        for (int p = 0; p < classes; p++) {
            size_t c = counts[(size_t)t * (size_t)classes + (size_t)p];
            row += c;
            fprintf(out, " %5zu", c);
        }
        size_t hit = counts[(size_t)t * (size_t)classes + (size_t)t];
        total += row;
        correct += hit;
        if (row > 0) {
            fprintf(out, "  %5.1f%%\n", 100.0 * (double)hit / (double)row);
        } else {
            fprintf(out, "      -\n");
        }
    }
    if (total > 0) {
        fprintf(out, "accuracy %.2f%% (%zu/%zu)\n", 100.0 * (double)correct / (double)total, correct, total);
    }
}

/* ---- JSON summary ------------------------------------------------------------------------------------ */

JsonField json_number(const char *key, double value)
{
    JsonField f = {key, JSON_NUMBER, value, 0, NULL, NULL, 0};
    return f;
}

JsonField json_integer(const char *key, long long value)
{
    JsonField f = {key, JSON_INTEGER, 0.0, value, NULL, NULL, 0};
    return f;
}

JsonField json_string(const char *key, const char *value)
{
    JsonField f = {key, JSON_STRING, 0.0, 0, value, NULL, 0};
    return f;
}

JsonField json_number_array(const char *key, const double *values, size_t length)
{
    JsonField f = {key, JSON_NUMBER_ARRAY, 0.0, 0, NULL, values, length};
    return f;
}

static void json_write_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\') {
            fprintf(out, "\\%c", *p);
        } else if (*p < 0x20) {
            fprintf(out, "\\u%04x", *p);
        } else {
            fputc(*p, out);
        }
    }
    fputc('"', out);
}

static void json_write_number(FILE *out, double v)
{
    if (isfinite(v)) {
        /* 15 significant digits when they read back as the same double (0.9346 stays 0.9346), else 17,
         * which always do. */
        char text[40];
        snprintf(text, sizeof text, "%.15g", v);
        if (strtod(text, NULL) != v) {
            snprintf(text, sizeof text, "%.17g", v);
        }
        fputs(text, out);
    } else {
        fprintf(out, "null"); /* JSON has no NaN or infinity */
    }
}

int json_summary_write(const char *path, const JsonField *fields, size_t n_fields, CourseError *err)
{
    AtomicFile file;
    if (atomic_file_open(&file, path, err) != 0) {
        return -1;
    }
    FILE *out = file.stream;
    fprintf(out, "{\n");
    for (size_t i = 0; i < n_fields; i++) {
        const JsonField *f = &fields[i];
        fprintf(out, "  ");
        json_write_string(out, f->key);
        fprintf(out, ": ");
        switch (f->kind) {
        case JSON_NUMBER: json_write_number(out, f->number); break;
        case JSON_INTEGER: fprintf(out, "%lld", f->integer); break;
        case JSON_STRING: json_write_string(out, f->string); break;
        case JSON_NUMBER_ARRAY:
            fputc('[', out);
            for (size_t k = 0; k < f->array_length; k++) {
                if (k > 0) {
                    fprintf(out, ", ");
                }
                json_write_number(out, f->array[k]);
            }
            fputc(']', out);
            break;
        }
        fprintf(out, i + 1 < n_fields ? ",\n" : "\n");
    }
    fprintf(out, "}\n");
    if (ferror(out)) {
        atomic_file_abort(&file);
        return error_set(err, path, "write failed");
    }
    return atomic_file_commit(&file, err);
}

/* ---- Training history -------------------------------------------------------------------------------- */

void train_history_init(TrainHistory *history, int epochs)
{
    memset(history, 0, sizeof *history);
    history->epochs = epochs;
    history->test_accuracy = xcalloc((size_t)epochs, sizeof *history->test_accuracy);
    history->test_loss = xcalloc((size_t)epochs, sizeof *history->test_loss);
    history->train_loss = xcalloc((size_t)epochs, sizeof *history->train_loss);
}

void train_history_free(TrainHistory *history)
{
    free(history->test_accuracy);
    free(history->test_loss);
    free(history->train_loss);
    memset(history, 0, sizeof *history);
}

int train_history_epoch(TrainHistory *history, int epoch, const Progress *bar, double test_loss, size_t correct,
                        size_t test_count, CourseError *err)
{
    double accuracy = test_count > 0 ? (double)correct / (double)test_count : 0.0;
    history->test_accuracy[epoch - 1] = accuracy;
    history->test_loss[epoch - 1] = test_loss;
    history->train_loss[epoch - 1] = progress_mean_loss(bar);
    printf("epoch %d/%d: train loss %.4f, test loss %.4f, test accuracy %.2f%% (%zu/%zu)\n", epoch, history->epochs,
           progress_mean_loss(bar), test_loss, 100.0 * accuracy, correct, test_count);
    fflush(stdout);
    if (!isfinite(test_loss)) {
        return error_set(err, "evaluation", "test loss became %s after epoch %d: training diverged (try a smaller --lr)",
                         isnan(test_loss) ? "nan" : "inf", epoch);
    }
    return 0;
}

static double samples_per_second(const TrainHistory *history)
{
    return history->train_seconds > 0 ? (double)history->trained_samples / history->train_seconds : 0.0;
}

static double seconds_per_step(const TrainHistory *history)
{
    return history->steps > 0 ? history->train_seconds / (double)history->steps : 0.0;
}

void train_history_print_final(const TrainHistory *history, const size_t *confusion, int classes)
{
    printf("\n");
    confusion_matrix_print(stdout, confusion, classes);
    printf("trained %zu samples in %.2f s (%.0f samples/s, %.1f ms per step)\n", history->trained_samples,
           history->train_seconds, samples_per_second(history), 1000.0 * seconds_per_step(history));
}

void train_history_json_fields(const TrainHistory *history, JsonField *fields, size_t *count)
{
    size_t last = history->epochs > 0 ? (size_t)history->epochs - 1 : 0;
    fields[(*count)++] = json_integer("epochs", history->epochs);
    fields[(*count)++] = json_number("test_accuracy", history->test_accuracy[last]);
    fields[(*count)++] = json_number("test_loss", history->test_loss[last]);
    fields[(*count)++] = json_number("train_seconds", history->train_seconds);
    fields[(*count)++] = json_number("samples_per_second", samples_per_second(history));
    fields[(*count)++] = json_number("seconds_per_step", seconds_per_step(history));
    fields[(*count)++] = json_number_array("epoch_test_accuracy", history->test_accuracy, (size_t)history->epochs);
    fields[(*count)++] = json_number_array("epoch_test_loss", history->test_loss, (size_t)history->epochs);
    fields[(*count)++] = json_number_array("epoch_train_loss", history->train_loss, (size_t)history->epochs);
}
