/* test_checkpoint.c — Chapter 07's checkpoint tests (checkpoint.h): what is saved comes back bit for bit, and
 * a checkpoint of another network, of another format, or damaged is refused with a message naming the file
 * and the problem, leaving the network untouched.
 *
 *   build/bin/test_checkpoint --list
 *   build/bin/test_checkpoint checkpoint.roundtrip
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "checkpoint.h"
#include "cnn.h"
#include "file_util.h"
#include "safetensors.h"
#include "testing.h"

static char temp_dir[256];

static void temp_path(char *out, size_t size, const char *name)
{
    if (temp_dir[0] == '\0') {
        snprintf(temp_dir, sizeof temp_dir, "%s/ch07-checkpoint-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (mkdtemp(temp_dir) == NULL) {
            die("cannot create a temporary folder");
        }
    }
    snprintf(out, size, "%s/%s", temp_dir, name);
}

/* A narrow network (so the files are small) with random weights and momentum. */
static void make_net(Cnn *net, int padding, int hidden, uint64_t seed)
{
    CnnConfig config = cnn_default_config(padding);
    config.conv1_channels = 4;
    config.conv2_channels = 6;
    config.hidden = hidden;
    CourseError err;
    if (cnn_create(net, config, 4, GEMM_OPENBLAS, &err) != 0) {
        error_exit(&err);
    }
    cnn_init(net, seed);
    Rng rng;
    rng_seed(&rng, seed, 99);
    for (size_t i = 0; i < net->parameter_count; ++i) {
        net->velocity[i] = rng_uniform_range(&rng, -1.0f, 1.0f);
    }
}

static TrainState make_state(void)
{
    static TrainState state; /* static: 24 KB */
    memset(&state, 0, sizeof state);
    state.epoch = 2;
    state.step_in_epoch = 17;
    state.global_step = 331;
    rng_seed(&state.loader_rng, 5, 2);
    rng_u32(&state.loader_rng);
    state.epoch_loss_sum = 1.0 / 3.0;
    state.epoch_samples = 17 * 64;
    state.seed = 5;
    state.batch = 64;
    state.lr = 0.01;
    state.momentum = 0.9;
    state.train_count = 10000;
    snprintf(state.device, sizeof state.device, "cuda");
    snprintf(state.data, sizeof state.data, "data/with \"quotes\" and \\ backslash");
    state.test_accuracy[0] = 0.9512;
    state.test_accuracy[1] = 0.97130000000000005;
    state.test_loss[0] = 0.151;
    state.test_loss[1] = 1e-300;
    state.train_loss[0] = 0.4;
    state.train_loss[1] = 0.1;
    state.train_seconds = 12.5;
    state.trained_samples = 21088;
    return state;
}

static int test_roundtrip(const TestContext *ctx)
{
    (void)ctx;
    Cnn saved, loaded;
    make_net(&saved, 0, 7, 1);
    make_net(&loaded, 0, 7, 2); /* different values, to be overwritten */
    const TrainState state = make_state();
    char path[512];
    temp_path(path, sizeof path, "round.safetensors");
    CourseError err;
    if (checkpoint_save(path, &saved, &state, &err) != 0) {
        printf("FAIL %s\n", err.message);
        return TEST_FAIL;
    }
    static TrainState back;
    if (checkpoint_load(path, &loaded, &back, &err) != 0) {
        printf("FAIL %s\n", err.message);
        return TEST_FAIL;
    }
    bool ok = check_true(memcmp(saved.parameters, loaded.parameters, saved.parameter_count * sizeof(float)) == 0,
                         "weights come back bit for bit");
    ok &= check_true(memcmp(saved.velocity, loaded.velocity, saved.parameter_count * sizeof(float)) == 0,
                     "momentum buffers come back bit for bit");
    ok &= check_true(back.epoch == 2 && back.step_in_epoch == 17 && back.global_step == 331 && back.seed == 5 &&
                         back.batch == 64 && back.train_count == 10000 && back.epoch_samples == 17 * 64 &&
                         back.trained_samples == 21088,
                     "position and settings come back");
    ok &= check_true(back.loader_rng.state == state.loader_rng.state &&
                         back.loader_rng.increment == state.loader_rng.increment,
                     "the shuffling generator's state comes back");
    ok &= check_true(back.lr == state.lr && back.momentum == state.momentum &&
                         back.epoch_loss_sum == state.epoch_loss_sum && back.train_seconds == state.train_seconds,
                     "doubles come back exactly (17 significant digits)");
    ok &= check_true(memcmp(back.test_accuracy, state.test_accuracy, 2 * sizeof(double)) == 0 &&
                         memcmp(back.test_loss, state.test_loss, 2 * sizeof(double)) == 0 &&
                         memcmp(back.train_loss, state.train_loss, 2 * sizeof(double)) == 0,
                     "the history of finished epochs comes back");
    ok &= check_true(strcmp(back.device, "cuda") == 0 && strcmp(back.data, state.data) == 0,
                     "strings come back (quotes and backslashes escaped)");
    /* PyTorch's names, so load_checkpoint.py can load_state_dict() them. */
    SafetensorsFile f;
    if (safetensors_read(path, &f, &err) == 0) {
        ok &= check_true(safetensors_find(&f, "fc1.weight") != NULL &&
                             safetensors_find(&f, "momentum_buffer.conv2.bias") != NULL && f.n_tensors == 16,
                         "tensors under PyTorch's state_dict names, momentum under momentum_buffer.*");
        safetensors_free(&f);
    }
    cnn_destroy(&saved);
    cnn_destroy(&loaded);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* Loading `path` into net must fail with a message containing the path and `keyword`, net unchanged. */
static bool expect_refused(const char *path, Cnn *net, const char *keyword)
{
    float *before = xmalloc(net->parameter_count * sizeof *before);
    memcpy(before, net->parameters, net->parameter_count * sizeof *before);
    static TrainState state;
    CourseError err = {{0}};
    const int rc = checkpoint_load(path, net, &state, &err);
    bool ok = check_true(rc != 0, "%s is refused", path);
    if (rc != 0) {
        printf("refused as expected: %s\n", err.message);
        ok &= check_true(strstr(err.message, path) != NULL && strstr(err.message, keyword) != NULL,
                         "the message names the file and says '%s'", keyword);
    }
    ok &= check_true(memcmp(before, net->parameters, net->parameter_count * sizeof *before) == 0,
                     "the network is untouched by the refused load");
    free(before);
    return ok;
}

static int test_mismatch(const TestContext *ctx)
{
    (void)ctx;
    Cnn p0, p1, wide;
    make_net(&p0, 0, 7, 1);
    make_net(&p1, 1, 7, 1);
    make_net(&wide, 0, 9, 1);
    const TrainState state = make_state();
    char path[512];
    temp_path(path, sizeof path, "p0.safetensors");
    CourseError err;
    if (checkpoint_save(path, &p0, &state, &err) != 0) {
        printf("FAIL %s\n", err.message);
        return TEST_FAIL;
    }
    bool ok = expect_refused(path, &p1, "padding"); /* padding 0 file, padding 1 network */
    ok &= expect_refused(path, &wide, "hidden"); /* 7 hidden units in the file, 9 in the network */
    cnn_destroy(&p0);
    cnn_destroy(&p1);
    cnn_destroy(&wide);
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_damaged(const TestContext *ctx)
{
    (void)ctx;
    Cnn net;
    make_net(&net, 0, 7, 1);
    const TrainState state = make_state();
    char path[512], bad[512];
    temp_path(path, sizeof path, "good.safetensors");
    CourseError err;
    unsigned char *bytes;
    size_t length;
    if (checkpoint_save(path, &net, &state, &err) != 0 || file_read_all(path, &bytes, &length, &err) != 0) {
        printf("FAIL %s\n", err.message);
        return TEST_FAIL;
    }
    bool ok = true;
    /* A flipped bit in the weights: only the CRC can tell. */
    temp_path(bad, sizeof bad, "flipped.safetensors");
    bytes[length - 100] ^= 0x04;
    FILE *f = fopen(bad, "wb");
    fwrite(bytes, 1, length, f);
    fclose(f);
    bytes[length - 100] ^= 0x04;
    ok &= expect_refused(bad, &net, "CRC-32");
    /* Cut short, as a crash during a NON-atomic write would leave it. */
    temp_path(bad, sizeof bad, "truncated.safetensors");
    f = fopen(bad, "wb");
    fwrite(bytes, 1, length / 2, f);
    fclose(f);
    ok &= expect_refused(bad, &net, "truncated");
    /* A valid safetensors file that is not a checkpoint of this network. */
    temp_path(bad, sizeof bad, "other.safetensors");
    float w[3] = {1, 2, 3};
    SafetensorsTensorView view = {"weight", 1, {3}, w};
    if (safetensors_write_f32(bad, &view, 1, NULL, 0, &err) != 0) {
        printf("FAIL %s\n", err.message);
        return TEST_FAIL;
    }
    ok &= expect_refused(bad, &net, "not a checkpoint");
    /* Not there at all. */
    temp_path(bad, sizeof bad, "missing.safetensors");
    ok &= expect_refused(bad, &net, "missing.safetensors");
    free(bytes);
    cnn_destroy(&net);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* checkpoint_load_network: the shape comes from the file (here padding 1 and odd widths, not the defaults),
 * the weights come back bit for bit, and a file whose metadata asks for an absurd shape or is not a
 * checkpoint is refused before anything is allocated. */
static int test_load_network(const TestContext *ctx)
{
    (void)ctx;
    Cnn saved, loaded;
    make_net(&saved, 1, 5, 3);
    const TrainState state = make_state();
    char path[512];
    temp_path(path, sizeof path, "network.safetensors");
    CourseError err;
    static TrainState back;
    if (checkpoint_save(path, &saved, &state, &err) != 0 ||
        checkpoint_load_network(path, 3, GEMM_OWN, &loaded, &back, &err) != 0) {
        printf("FAIL %s\n", err.message);
        return TEST_FAIL;
    }
    bool ok = check_true(loaded.config.padding == 1 && loaded.config.conv1_channels == 4 &&
                             loaded.config.conv2_channels == 6 && loaded.config.hidden == 5 &&
                             loaded.max_batch == 3 && loaded.backend == GEMM_OWN,
                         "the network has the file's shape and the caller's batch and backend");
    ok &= check_true(loaded.parameter_count == saved.parameter_count &&
                         memcmp(saved.parameters, loaded.parameters, saved.parameter_count * sizeof(float)) == 0,
                     "weights come back bit for bit");
    ok &= check_true(back.epoch == 2 && back.test_accuracy[1] == state.test_accuracy[1], "the state comes back");
    cnn_destroy(&loaded);

    /* The same tensors under a metadata that claims a huge network: refused, naming the key. */
    char bad[512];
    temp_path(bad, sizeof bad, "huge.safetensors");
    SafetensorsFile f;
    if (safetensors_read(path, &f, &err) != 0) {
        printf("FAIL %s\n", err.message);
        return TEST_FAIL;
    }
    SafetensorsTensorView views[2 * CNN_TENSORS];
    float *data[2 * CNN_TENSORS];
    for (size_t t = 0; t < f.n_tensors && t < 2 * CNN_TENSORS; ++t) {
        const SafetensorsEntry *e = &f.tensors[t];
        data[t] = xmalloc(e->count * sizeof(float));
        safetensors_copy_f32(&f, e, data[t]);
        views[t] = (SafetensorsTensorView){e->name, e->ndim, {0}, data[t]};
        memcpy(views[t].shape, e->shape, sizeof e->shape);
    }
    SafetensorsMeta meta[64];
    size_t n_meta = 0;
    for (size_t m = 0; m < f.n_meta && n_meta < 64; ++m) {
        if (strcmp(f.meta[m].key, "data_crc32") != 0) {
            meta[n_meta] = f.meta[m];
            if (strcmp(meta[n_meta].key, "conv2_channels") == 0) {
                meta[n_meta].value = "1000000";
            }
            n_meta++;
        }
    }
    if (safetensors_write_f32(bad, views, f.n_tensors, meta, n_meta, &err) != 0) {
        printf("FAIL %s\n", err.message);
        return TEST_FAIL;
    }
    for (size_t t = 0; t < f.n_tensors && t < 2 * CNN_TENSORS; ++t) {
        free(data[t]);
    }
    safetensors_free(&f);
    CourseError refused = {{0}};
    const int rc = checkpoint_load_network(bad, 3, GEMM_OWN, &loaded, NULL, &refused);
    printf("refused as expected: %s\n", refused.message);
    ok &= check_true(rc != 0 && strstr(refused.message, bad) != NULL &&
                         strstr(refused.message, "conv2_channels") != NULL,
                     "an absurd width is refused, naming the file and the key");
    ok &= check_true(loaded.parameters == NULL, "nothing is left allocated after a refusal");

    /* Not a checkpoint of this network at all. */
    temp_path(bad, sizeof bad, "other-network.safetensors");
    float w[3] = {1, 2, 3};
    SafetensorsTensorView view = {"weight", 1, {3}, w};
    if (safetensors_write_f32(bad, &view, 1, NULL, 0, &err) != 0) {
        printf("FAIL %s\n", err.message);
        return TEST_FAIL;
    }
    memset(&refused, 0, sizeof refused);
    ok &= check_true(checkpoint_load_network(bad, 3, GEMM_OWN, &loaded, NULL, &refused) != 0 &&
                         strstr(refused.message, "not a checkpoint") != NULL,
                     "another file is refused: %s", refused.message);
    cnn_destroy(&saved);
    return ok ? TEST_PASS : TEST_FAIL;
}

int main(int argc, char **argv)
{
    static const TestCase cases[] = {
        {"checkpoint.roundtrip", test_roundtrip},
        {"checkpoint.mismatch", test_mismatch},
        {"checkpoint.damaged", test_damaged},
        {"checkpoint.load_network", test_load_network},
    };
    return test_main(argc, argv, cases, COUNT_OF(cases));
}
