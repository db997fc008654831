/* trainer.c — the shared training loop (see trainer.h). */
#include "trainer.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "course_error.h"
#include "safetensors.h"
#include "testing.h"
#include "timer.h"

TrainerOptions trainer_default_options(void)
{
    return (TrainerOptions){.epochs = 4, .batch = 64, .seed = 1, .lr = 0.01, .momentum = 0.9, .log_every = 50};
}

void trainer_flags(TrainerOptions *o, FlagSpec *flags, size_t *count)
{
    const FlagSpec shared[TRAINER_FLAGS] = {
        {"--epochs", FLAG_INT, &o->epochs, 1, CHECKPOINT_MAX_EPOCHS, "train until this many epochs are done"},
        {"--batch", FLAG_INT, &o->batch, 1, 65536, "samples per SGD step (the last batch of an epoch may be smaller)"},
        {"--lr", FLAG_DOUBLE, &o->lr, 0, 1e9, "learning rate"},
        {"--momentum", FLAG_DOUBLE, &o->momentum, 0, 1, "SGD momentum mu in v = mu v + g"},
        {"--seed", FLAG_INT, &o->seed, 0, 2147483647, "seed for the initial weights, the shuffling (and dropout)"},
        {"--save", FLAG_STRING, &o->save, 0, 0, "write a .safetensors checkpoint here after every epoch (atomically)"},
        {"--save-every", FLAG_INT, &o->save_every, 0, 1 << 30, "also checkpoint every N steps (0: only at epoch ends)"},
        {"--resume", FLAG_STRING, &o->resume, 0, 0, "continue the run saved in this checkpoint"},
        {"--log", FLAG_STRING, &o->log, 0, 0, "append a CSV training log here"},
        {"--log-every", FLAG_INT, &o->log_every, 1, 1 << 30, "steps per training-loss row of the log"},
        {"--summary-json", FLAG_STRING, &o->summary, 0, 0, "write a JSON summary of the run to this file"},
        {"--train-limit", FLAG_INT, &o->train_limit, 0, 1 << 30, "train on the first N training images only (0: all)"},
        {"--test-limit", FLAG_INT, &o->test_limit, 0, 1 << 30, "evaluate on the first N test images only (0: all)"},
    };
    for (size_t i = 0; i < TRAINER_FLAGS; ++i) {
        flags[(*count)++] = shared[i];
    }
}

const char *trainer_load_data(const TrainerOptions *o, const char *data_dir, const char *bundled_dir,
                              MnistSplit *train, MnistSplit *test)
{
    const char *dir = data_dir != NULL ? data_dir : train_default_data_dir(bundled_dir);
    CourseError err;
    if (train_load_mnist(dir, train, test, &err) != 0) {
        error_exit(&err);
    }
    if (o->train_limit > 0 && (size_t)o->train_limit < train->count) {
        train->count = (size_t)o->train_limit;
    }
    if (o->test_limit > 0 && (size_t)o->test_limit < test->count) {
        test->count = (size_t)o->test_limit;
    }
    return dir;
}

bool flag_given(int argc, char **argv, const char *name)
{
    const size_t length = strlen(name);
    for (int i = 1; i < argc; ++i) {
        if (strncmp(argv[i], name, length) == 0 && (argv[i][length] == '\0' || argv[i][length] == '=')) {
            return true;
        }
    }
    return false;
}

/* ---- --resume's settings ------------------------------------------------------------------------------ */

void trainer_resume_settings(TrainerOptions *o, int argc, char **argv)
{
    if (o->resume == NULL) {
        return;
    }
    SafetensorsFile f;
    CourseError err;
    if (safetensors_read(o->resume, &f, &err) != 0) {
        error_exit(&err);
    }
    double seed, batch, lr, momentum, weight_decay = 0.0;
    uint64_t step_in_epoch;
    if (checkpoint_meta_double(&f, o->resume, "seed", &seed, &err) ||
        checkpoint_meta_double(&f, o->resume, "batch", &batch, &err) ||
        checkpoint_meta_double(&f, o->resume, "lr", &lr, &err) ||
        checkpoint_meta_double(&f, o->resume, "momentum", &momentum, &err) ||
        checkpoint_meta_u64(&f, o->resume, "step_in_epoch", &step_in_epoch, &err) ||
        (safetensors_meta(&f, "weight_decay") != NULL &&
         checkpoint_meta_double(&f, o->resume, "weight_decay", &weight_decay, &err))) {
        safetensors_free(&f);
        error_exit(&err);
    }
    safetensors_free(&f);
    if (!(seed >= 0 && seed <= INT32_MAX && batch >= 1 && batch <= 65536)) {
        die("%s: inconsistent settings (seed %g, batch %g)", o->resume, seed, batch);
    }
    struct {
        const char *flag;
        double *option_double;
        int *option_int;
        double saved;
    } settings[] = {
        {"--seed", NULL, &o->seed, seed},
        {"--batch", NULL, &o->batch, batch},
        {"--lr", &o->lr, NULL, lr},
        {"--momentum", &o->momentum, NULL, momentum},
        {"--weight-decay", &o->weight_decay, NULL, weight_decay},
    };
    for (size_t i = 0; i < COUNT_OF(settings); ++i) {
        const double current = settings[i].option_double ? *settings[i].option_double : *settings[i].option_int;
        if (!flag_given(argc, argv, settings[i].flag)) {
            if (settings[i].option_double) {
                *settings[i].option_double = settings[i].saved;
            } else {
                *settings[i].option_int = (int)settings[i].saved;
            }
        } else if (current != settings[i].saved) {
            if (strcmp(settings[i].flag, "--batch") == 0 && step_in_epoch > 0) {
                die("%s: saved in the middle of an epoch with batch %g; resume it with that batch (or from an "
                    "epoch-end checkpoint)",
                    o->resume, batch);
            }
            printf("note: %s %g differs from the checkpoint's %g: the resumed run is not an exact continuation\n",
                   settings[i].flag, current, settings[i].saved);
        }
    }
}

/* ---- Ctrl-C ------------------------------------------------------------------------------------------- */

static volatile sig_atomic_t interrupted;

static void on_sigint(int signal_number)
{
    (void)signal_number;
    interrupted = 1; /* acted on between two steps; SA_RESETHAND makes a second Ctrl-C kill at once */
}

static void install_sigint(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_sigint;
    action.sa_flags = SA_RESETHAND | SA_RESTART;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
}

/* ---- The CSV log -------------------------------------------------------------------------------------- */

static void log_open(Trainer *t)
{
    if (t->opt.log == NULL) {
        return;
    }
    /* Appended, so that a resumed run continues the same log (readers keep the last row of a step). */
    t->log = fopen(t->opt.log, "a");
    if (t->log == NULL) {
        die("%s: cannot open the training log for writing", t->opt.log);
    }
    if (ftell(t->log) == 0) {
        fprintf(t->log, "kind,epoch,step,samples,train_loss,test_loss,test_accuracy,seconds\n");
    }
}

static double run_seconds(const Trainer *t) { return t->seconds_before + (timer_seconds() - t->epoch_start); }

static void log_step(Trainer *t, uint64_t step, double loss)
{
    if (t->log == NULL) {
        return;
    }
    t->log_loss_sum += loss;
    t->log_losses++;
    if (step % (uint64_t)t->opt.log_every == 0) {
        fprintf(t->log, "train,%d,%llu,%zu,%.6f,,,%.3f\n", t->epoch, (unsigned long long)step,
                t->state.trained_samples, t->log_loss_sum / (double)t->log_losses, run_seconds(t));
        fflush(t->log);
        t->log_loss_sum = 0.0;
        t->log_losses = 0;
    }
}

/* ---- Setup -------------------------------------------------------------------------------------------- */

Trainer *trainer_create(const char *program, const TrainerOptions *options)
{
    Trainer *t = xcalloc(1, sizeof *t); /* on the heap: the state's history is 32 KB */
    t->program = program;
    t->opt = *options;
    return t;
}

void trainer_start(Trainer *t, TrainModel *model, const MnistSplit *train, size_t test_count, const char *data,
                   const char *device)
{
    TrainState *st = &t->state;
    CourseError err;
    t->test_count = test_count;
    if (t->opt.save != NULL) {
        checkpoint_remove_stray_temps(t->opt.save);
    }
    if (t->opt.resume != NULL) {
        if (checkpoint_read(t->opt.resume, &model->checkpoint, st, &err) != 0) {
            error_exit(&err);
        }
        if (st->train_count != train->count) {
            if (st->step_in_epoch > 0) {
                die("%s: saved in the middle of an epoch over %zu training samples, but this run has %zu (another "
                    "--data or --train-limit?)",
                    t->opt.resume, st->train_count, train->count);
            }
            printf("note: the checkpoint was trained on %zu samples per epoch (%s); this run has %zu\n",
                   st->train_count, st->data, train->count);
        }
        if (st->epoch == 0 && st->step_in_epoch == 0) {
            /* A run that has not started (e.g. PyTorch's initial weights): its first shuffle follows the seed in
             * use, as a fresh run's does, even when --seed overrides the checkpoint's. */
            rng_seed(&st->loader_rng, (uint64_t)t->opt.seed, DATA_LOADER_STREAM);
        }
        if (st->step_in_epoch > 0) {
            printf("resumed: %s: in epoch %d after %zu of its steps (global step %llu, trained on %s)\n",
                   t->opt.resume, st->epoch + 1, st->step_in_epoch, (unsigned long long)st->global_step, st->device);
        } else {
            printf("resumed: %s: after epoch %d (global step %llu, trained on %s)\n", t->opt.resume, st->epoch,
                   (unsigned long long)st->global_step, st->device);
        }
    }
    st->seed = t->opt.seed;
    st->batch = t->opt.batch;
    st->lr = t->opt.lr;
    st->momentum = t->opt.momentum;
    st->weight_decay = t->opt.weight_decay;
    st->train_count = train->count;
    st->test_count = test_count;
    snprintf(st->device, sizeof st->device, "%s", device);
    snprintf(st->data, sizeof st->data, "%s", data);
    snprintf(st->trainer, sizeof st->trainer, "%s", t->program);

    data_loader_init(&t->loader, train, (size_t)t->opt.batch, true, (uint64_t)t->opt.seed);
    if (t->opt.resume != NULL) {
        t->loader.rng = st->loader_rng;
    } else {
        st->loader_rng = t->loader.rng;
    }
    train_history_init(&t->history, t->opt.epochs);
    for (int e = 0; e < st->epoch && e < t->opt.epochs; ++e) {
        t->history.test_accuracy[e] = st->test_accuracy[e];
        t->history.test_loss[e] = st->test_loss[e];
        t->history.train_loss[e] = st->train_loss[e];
    }
    t->history.train_seconds = st->train_seconds;
    t->history.trained_samples = st->trained_samples;
    t->history.steps = (size_t)st->global_step;
    log_open(t);
    install_sigint();
}

/* ---- The loop ----------------------------------------------------------------------------------------- */

size_t trainer_batch_samples(const Trainer *t, size_t slot)
{
    const size_t first = slot * (size_t)t->opt.batch;
    const size_t left = t->loader.split->count - first;
    return left < (size_t)t->opt.batch ? left : (size_t)t->opt.batch;
}

void trainer_account_loss(Trainer *t, size_t slot, size_t n, float loss)
{
    CourseError err;
    if (loss_guard(loss, t->epoch, slot + 1, &err) != 0) {
        progress_finish(&t->bar);
        fprintf(stderr, "error: %s\n", err.message);
        fprintf(stderr, "(no checkpoint or summary written after this point)\n");
        exit(1);
    }
    progress_update(&t->bar, n, loss);
    t->state.epoch_loss_sum += (double)loss * (double)n;
    t->state.epoch_samples += n;
    t->state.trained_samples += n;
    const uint64_t step = t->state.global_step - (uint64_t)(t->state.step_in_epoch - slot) + 1;
    log_step(t, step, loss);
}

static void save_checkpoint(Trainer *t, TrainModel *model)
{
    if (model->drain != NULL) {
        model->drain(model->net, t);
    }
    /* At an epoch end the state is complete; in the middle of one, it holds the training time of the finished
     * epochs, so the copy saved gets the time so far. */
    static TrainState saved; /* static: 32 KB, too big for some threads' stacks */
    saved = t->state;
    if (saved.step_in_epoch > 0) {
        saved.train_seconds = run_seconds(t);
    }
    CourseError err;
    if (checkpoint_write(t->opt.save, &model->checkpoint, &saved, &err) != 0) {
        error_exit(&err);
    }
}

/* Ctrl-C was pressed: a last checkpoint (with --save), then exit 130. Called between steps only. */
static void stop_if_interrupted(Trainer *t, TrainModel *model)
{
    if (!interrupted) {
        return;
    }
    progress_finish(&t->bar);
    if (t->opt.save != NULL) {
        save_checkpoint(t, model);
        printf("interrupted: checkpoint %s written (epoch %d, %zu steps into epoch %d); continue with --resume %s\n",
               t->opt.save, t->state.epoch, t->state.step_in_epoch, t->state.epoch + 1, t->opt.save);
    } else {
        printf("interrupted: nothing saved (give --save FILE to keep a checkpoint)\n");
    }
    fflush(stdout);
    exit(130);
}

/* One epoch of training, from the state's position in it. */
static void train_epoch(Trainer *t, TrainModel *model)
{
    TrainState *st = &t->state;
    const size_t skip = st->step_in_epoch; /* batches already done (a resumed epoch) */
    data_loader_start_epoch(&t->loader); /* the shuffle, from the state's loader_rng */
    t->loader.position = skip * (size_t)t->opt.batch;
    t->loader.batch_index = skip;
    progress_start(&t->bar, t->epoch, t->opt.epochs, t->loader.split->count);
    t->bar.done = st->epoch_samples;
    t->bar.loss_sum = st->epoch_loss_sum;
    t->epoch_start = timer_seconds();
    if (model->start_epoch != NULL) {
        model->start_epoch(model->net, t);
    }
    const size_t count = t->loader.split->count, sample_size = t->loader.sample_size;
    float *x = model->host_batches ? xmalloc((size_t)t->opt.batch * sample_size * sizeof *x) : NULL; /* (B, S) */
    int32_t *labels = model->host_batches ? xmalloc((size_t)t->opt.batch * sizeof *labels) : NULL; /* (B) */
    while (t->loader.position < count) {
        const size_t slot = st->step_in_epoch;
        const size_t n = trainer_batch_samples(t, slot);
        float loss;
        if (model->host_batches) {
            data_loader_next(&t->loader, x, labels);
            loss = model->step(model->net, t, x, labels, n);
        } else {
            loss = model->step(model->net, t, NULL, NULL, n);
            t->loader.position += n;
            t->loader.batch_index++;
        }
        st->global_step++;
        st->step_in_epoch++;
        if (model->after_step != NULL) {
            model->after_step(model->net, t);
        }
        if (!model->deferred_losses) {
            trainer_account_loss(t, slot, n, loss);
        }
        if (t->opt.save != NULL && t->opt.save_every > 0 && st->global_step % (uint64_t)t->opt.save_every == 0 &&
            t->loader.position < count) {
            save_checkpoint(t, model);
        }
        stop_if_interrupted(t, model);
    }
    if (model->drain != NULL) {
        model->drain(model->net, t); /* waits for the GPU: the epoch's time below includes all its work */
    }
    free(x);
    free(labels);
}

void trainer_run(Trainer *t, TrainModel *model, size_t *confusion)
{
    TrainState *st = &t->state;
    TrainHistory *h = &t->history;
    if (st->epoch >= t->opt.epochs) {
        printf("the checkpoint already holds %d epochs: nothing to train (raise --epochs to continue)\n", st->epoch);
        return;
    }
    for (t->epoch = st->epoch + 1; t->epoch <= t->opt.epochs; ++t->epoch) {
        const int epoch = t->epoch;
        t->seconds_before = st->train_seconds;
        train_epoch(t, model);
        h->train_seconds = run_seconds(t); /* evaluation excluded */
        progress_finish(&t->bar);
        size_t correct = 0;
        const double test_loss = model->evaluate(model->net, &correct, confusion);
        h->trained_samples = st->trained_samples;
        h->steps = (size_t)st->global_step;
        CourseError err;
        if (train_history_epoch(h, epoch, &t->bar, test_loss, correct, t->test_count, &err) != 0) {
            error_exit(&err);
        }
        /* This epoch's training seconds: all of them, those before a --resume included. */
        double earlier = 0.0;
        for (int e = 0; e < epoch - 1; ++e) {
            earlier += st->epoch_seconds[e];
        }
        st->epoch_seconds[epoch - 1] = h->train_seconds - earlier;
        st->epoch = epoch;
        st->step_in_epoch = 0;
        st->epoch_loss_sum = 0.0;
        st->epoch_samples = 0;
        st->loader_rng = t->loader.rng; /* the next epoch's shuffle starts from here */
        st->test_accuracy[epoch - 1] = h->test_accuracy[epoch - 1];
        st->test_loss[epoch - 1] = h->test_loss[epoch - 1];
        st->train_loss[epoch - 1] = h->train_loss[epoch - 1];
        st->train_seconds = h->train_seconds;
        if (t->log != NULL) {
            fprintf(t->log, "test,%d,%llu,%zu,%.6f,%.6f,%.6f,%.3f\n", epoch, (unsigned long long)st->global_step,
                    st->trained_samples, h->train_loss[epoch - 1], test_loss, h->test_accuracy[epoch - 1],
                    st->train_seconds);
            fflush(t->log);
        }
        if (t->opt.save != NULL) {
            save_checkpoint(t, model);
            printf("checkpoint: %s (epoch %d)\n", t->opt.save, epoch);
        }
        stop_if_interrupted(t, model);
    }
    train_history_print_final(h, confusion, model->classes);
}

void trainer_write_summary(Trainer *t, const char *data, const JsonField *extra, size_t n_extra)
{
    if (t->opt.summary == NULL) {
        return;
    }
    enum { COMMON = 10 };
    JsonField *fields = xcalloc(COMMON + n_extra + TRAIN_HISTORY_JSON_FIELDS, sizeof *fields);
    size_t n = 0;
    fields[n++] = json_string("program", t->program);
    fields[n++] = json_string("data", data);
    fields[n++] = json_integer("batch", t->opt.batch);
    fields[n++] = json_number("lr", t->opt.lr);
    fields[n++] = json_number("momentum", t->opt.momentum);
    fields[n++] = json_integer("seed", t->opt.seed);
    fields[n++] = json_integer("train_samples", (long long)t->state.train_count);
    fields[n++] = json_integer("test_samples", (long long)t->test_count);
    fields[n++] = json_number_array("epoch_train_seconds", t->state.epoch_seconds, (size_t)t->opt.epochs);
    for (size_t i = 0; i < n_extra; ++i) {
        fields[n++] = extra[i];
    }
    train_history_json_fields(&t->history, fields, &n);
    CourseError err;
    if (json_summary_write(t->opt.summary, fields, n, &err) != 0) {
        error_exit(&err);
    }
    free(fields);
    printf("summary: %s\n", t->opt.summary);
}

void trainer_destroy(Trainer *t)
{
    if (t == NULL) {
        return;
    }
    if (t->log != NULL) {
        fclose(t->log);
    }
    train_history_free(&t->history);
    data_loader_free(&t->loader);
    free(t);
}
