/* test_ch09.c — Chapter 09's tests: saliency and Grad-CAM against PyTorch (reference/ch09_visualise.py), PCA
 * against numpy's SVD, PNG files written and read back, and the refusal of checkpoints that do not fit.
 *
 *   build/bin/test_ch09 --list
 *   build/bin/test_ch09 saliency.p0 --golden reference/golden
 *
 * (ctest -L ch09 runs every case.) The networks are loaded from checkpoints, as mnist_explain loads them: the
 * golden weights are saved with chapter 07's checkpoint_save and read back with checkpoint_load_network.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "checkpoint.h"
#include "cnn.h"
#include "explain.h"
#include "fresh_checkpoint.h"
#include "image.h"
#include "layers.h"
#include "rng.h"
#include "testing.h"

/* ---- helpers --------------------------------------------------------------------------------------------- */

static char temp_dir[512];

static void temp_path(char *out, size_t size, const char *name)
{
    if (temp_dir[0] == '\0') {
        snprintf(temp_dir, sizeof temp_dir, "%s/ch09-test-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (mkdtemp(temp_dir) == NULL) {
            die("cannot create a temporary folder");
        }
    }
    snprintf(out, size, "%s/%s", temp_dir, name);
}

static bool load_golden(const TestContext *ctx, const char *name, NpyDtype dtype, NpyArray *out)
{
    char relative[512];
    snprintf(relative, sizeof relative, "ch09/%s.npy", name);
    return golden_load_typed(ctx->golden_dir, relative, dtype, out);
}

/* The golden network of padding P (reference/ch09_visualise.py: 5 and 7 channels, 11 hidden units) saved as a
 * checkpoint and loaded back with checkpoint_load_network, for batches of max_batch. */
static bool load_golden_network(const TestContext *ctx, int padding, int max_batch, Cnn *net)
{
    static const char *const files[CNN_TENSORS] = {"conv1_w", "conv1_b", "conv2_w", "conv2_b",
                                                   "fc1_w",   "fc1_b",   "fc2_w",   "fc2_b"};
    CnnConfig config = cnn_default_config(padding);
    config.conv1_channels = 5;
    config.conv2_channels = 7;
    config.hidden = 11;
    Cnn golden;
    CourseError err;
    if (cnn_create(&golden, config, 1, GEMM_OPENBLAS, &err) != 0) {
        printf("FAIL %s\n", err.message);
        return false;
    }
    for (int t = 0; t < CNN_TENSORS; ++t) {
        char name[64];
        snprintf(name, sizeof name, "explain_p%d_%s", padding, files[t]);
        NpyArray a;
        if (!load_golden(ctx, name, NPY_FLOAT32, &a)) {
            cnn_destroy(&golden);
            return false;
        }
        const bool fits = a.count == golden.tensors[t].count;
        if (fits) {
            memcpy(golden.tensors[t].value, a.data, a.count * sizeof(float));
        } else {
            printf("FAIL %s has %zu values, %s has %zu\n", name, a.count, golden.tensors[t].name,
                   golden.tensors[t].count);
        }
        npy_free(&a);
        if (!fits) {
            cnn_destroy(&golden);
            return false;
        }
    }
    char path[600];
    temp_path(path, sizeof path, "golden.safetensors");
    const bool saved = fresh_checkpoint_save(path, &golden, &err) == 0;
    cnn_destroy(&golden);
    if (!saved || checkpoint_load_network(path, max_batch, GEMM_OPENBLAS, net, NULL, &err) != 0) {
        printf("FAIL %s\n", err.message);
        return false;
    }
    unlink(path);
    return true;
}

static double max_abs(const float *v, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; ++i) {
        m = fabs(v[i]) > m ? fabs(v[i]) : m;
    }
    return m;
}

/* ---- saliency and Grad-CAM ------------------------------------------------------------------------------ */

typedef enum Method { SALIENCY, GRADCAM } Method;

static int run_explain(const TestContext *ctx, int padding, Method method)
{
    char name[64];
    NpyArray x, logits_expected, predicted_expected, expected;
    snprintf(name, sizeof name, "explain_p%d_x", padding);
    if (!load_golden(ctx, name, NPY_FLOAT32, &x)) {
        return TEST_FAIL;
    }
    const int n = (int)x.shape[0];
    Cnn net;
    if (!load_golden_network(ctx, padding, n, &net)) {
        npy_free(&x);
        return TEST_FAIL;
    }
    snprintf(name, sizeof name, "explain_p%d_logits", padding);
    bool loaded = load_golden(ctx, name, NPY_FLOAT32, &logits_expected);
    snprintf(name, sizeof name, "explain_p%d_predicted", padding);
    loaded = loaded && load_golden(ctx, name, NPY_INT32, &predicted_expected);
    snprintf(name, sizeof name, "explain_p%d_%s", padding, method == SALIENCY ? "saliency" : "gradcam");
    loaded = loaded && load_golden(ctx, name, NPY_FLOAT32, &expected);
    if (!loaded) {
        cnn_destroy(&net);
        return TEST_FAIL;
    }
    /* The predictions first: the maps are of the predicted class. */
    const size_t K = (size_t)net.config.classes;
    const float *logits = cnn_forward(&net, x.data, n, false);
    const size_t logits_shape[2] = {(size_t)n, K};
    bool ok = check_close("logits (N, 10)", logits, logits_expected.data, (size_t)n * K, logits_shape, 2, 1e-5, 1e-4);
    int32_t *classes = xmalloc((size_t)n * sizeof *classes);
    for (int b = 0; b < n; ++b) {
        classes[b] = (int32_t)argmax(logits + (size_t)b * K, K);
        ok &= check_true(classes[b] == ((const int32_t *)predicted_expected.data)[b],
                         "image %d: predicted %d, PyTorch predicts %d", b, classes[b],
                         ((const int32_t *)predicted_expected.data)[b]);
    }
    const size_t S = (size_t)net.config.image_size;
    float *saliency = nan_filled((size_t)n * S * S); /* (N, S, S) */
    explain_saliency(&net, x.data, n, classes, saliency);
    /* Gradients through two convolutions and two linear layers in float32 come out within about 1e-7 of the
     * largest value of the map (random weights make small maps: |saliency| <= 1e-2, Grad-CAM <= 2e-4), so the
     * absolute tolerance is 1e-5 of the map's largest value, and 1e-4 relative. */
    const double atol = 1e-5 * max_abs(expected.data, expected.count);
    if (method == SALIENCY) {
        const size_t shape[3] = {(size_t)n, S, S};
        ok &= check_close("saliency d logit[predicted] / d x (N, 28, 28)", saliency, expected.data, expected.count,
                          shape, 3, atol, 1e-4);
    } else {
        const size_t plane = (size_t)net.h2 * net.w2;
        float *cam = nan_filled((size_t)n * plane); /* (N, H2, W2) */
        explain_gradcam(&net, n, cam);
        const size_t shape[3] = {(size_t)n, (size_t)net.h2, (size_t)net.w2};
        ok &= check_true(expected.count == (size_t)n * plane, "Grad-CAM golden has %zu values, expected %zu",
                         expected.count, (size_t)n * plane);
        ok = ok && check_close("Grad-CAM on conv2 (N, H2, W2)", cam, expected.data, expected.count, shape, 3, atol,
                               1e-4);
        free(cam);
    }
    free(saliency);
    free(classes);
    npy_free(&x);
    npy_free(&logits_expected);
    npy_free(&predicted_expected);
    npy_free(&expected);
    cnn_destroy(&net);
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_saliency_p0(const TestContext *ctx) { return run_explain(ctx, 0, SALIENCY); }
static int test_saliency_p1(const TestContext *ctx) { return run_explain(ctx, 1, SALIENCY); }
static int test_gradcam_p0(const TestContext *ctx) { return run_explain(ctx, 0, GRADCAM); }
static int test_gradcam_p1(const TestContext *ctx) { return run_explain(ctx, 1, GRADCAM); }

/* ---- PCA --------------------------------------------------------------------------------------------------- */

static int test_pca(const TestContext *ctx)
{
    NpyArray x, components_expected, variances_expected;
    if (!load_golden(ctx, "pca_x", NPY_FLOAT32, &x) ||
        !load_golden(ctx, "pca_components", NPY_FLOAT32, &components_expected) ||
        !load_golden(ctx, "pca_variances", NPY_FLOAT32, &variances_expected)) {
        return TEST_FAIL;
    }
    const size_t n = x.shape[0], d = x.shape[1];
    const int k = (int)components_expected.shape[0];
    float *mean = nan_filled(d), *components = nan_filled((size_t)k * d);
    double variances[16];
    CourseError err;
    if (pca_fit(x.data, n, d, k, mean, components, variances, &err) != 0) {
        printf("FAIL %s\n", err.message);
        return TEST_FAIL;
    }
    /* An eigenvector's sign is arbitrary: compare each component with the expected one turned to its side. */
    const float *expected = components_expected.data;
    float *aligned = xmalloc((size_t)k * d * sizeof *aligned);
    for (int c = 0; c < k; ++c) {
        double dot = 0.0;
        for (size_t i = 0; i < d; ++i) {
            dot += (double)components[(size_t)c * d + i] * expected[(size_t)c * d + i];
        }
        for (size_t i = 0; i < d; ++i) {
            aligned[(size_t)c * d + i] = (dot < 0.0 ? -1.0f : 1.0f) * expected[(size_t)c * d + i];
        }
    }
    float got_variances[16];
    for (int c = 0; c < k; ++c) {
        got_variances[c] = (float)variances[c];
    }
    /* Both sides in double from the same float32 rows; the variances differ by a factor of 2 or more, so each
     * direction is well defined and agrees to ~1e-7. */
    const size_t shape[2] = {(size_t)k, d}, vshape[1] = {(size_t)k};
    bool ok = check_close("PCA components (3, 13), up to sign", components, aligned, (size_t)k * d, shape, 2, 1e-5,
                          1e-4);
    ok &= check_close("PCA variances (3)", got_variances, variances_expected.data, (size_t)k, vshape, 1, 1e-5, 1e-5);
    /* The projection's coordinates have the components' variances. */
    float *y = xmalloc(n * (size_t)k * sizeof *y);
    pca_project(x.data, n, d, k, mean, components, y);
    for (int c = 0; c < k; ++c) {
        double sum = 0.0, sum2 = 0.0;
        for (size_t r = 0; r < n; ++r) {
            sum += y[r * k + c];
            sum2 += (double)y[r * k + c] * y[r * k + c];
        }
        const double variance = (sum2 - sum * sum / (double)n) / (double)(n - 1);
        ok &= check_true(fabs(variance - variances[c]) <= 1e-4 * variances[c],
                         "projection %d has variance %g, the component's is %g", c, variance, variances[c]);
    }
    free(y);
    free(aligned);
    free(mean);
    free(components);
    npy_free(&x);
    npy_free(&components_expected);
    npy_free(&variances_expected);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- PNG ------------------------------------------------------------------------------------------------- */

static int test_png_roundtrip(const TestContext *ctx)
{
    (void)ctx;
    Image img = image_create(37, 23, IMAGE_WHITE); /* odd sizes: a row stride mistake cannot pass */
    Rng rng;
    rng_seed(&rng, 9, 0);
    for (size_t i = 0; i < (size_t)img.width * img.height * 3; ++i) {
        img.rgb[i] = (uint8_t)(rng_u32(&rng) & 0xff);
    }
    char path[600];
    temp_path(path, sizeof path, "roundtrip.png");
    CourseError err;
    bool ok = check_true(png_write_rgb(path, &img, &err) == 0, "png_write_rgb: %s", err.message);
    Image back;
    ok = ok && check_true(png_read_rgb(path, &back, &err) == 0, "png_read_rgb: %s", err.message);
    if (ok) {
        ok &= check_true(back.width == img.width && back.height == img.height, "read back %dx%d, wrote %dx%d",
                         back.width, back.height, img.width, img.height);
        ok = ok && check_true(memcmp(back.rgb, img.rgb, (size_t)img.width * img.height * 3) == 0,
                              "the pixels read back are the pixels written");
        image_free(&back);
    }
    /* Not a PNG: refused with the file's name. */
    char bad[600];
    temp_path(bad, sizeof bad, "not-a.png");
    FILE *f = fopen(bad, "wb");
    fputs("GIF89a, or anything else", f);
    fclose(f);
    ok &= check_true(png_read_rgb(bad, &back, &err) != 0 && strstr(err.message, bad) != NULL &&
                         strstr(err.message, "not a PNG") != NULL,
                     "a file that is not a PNG is refused, named: %s", err.message);
    /* A folder that does not exist: an error, not a crash. */
    ok &= check_true(png_write_rgb("/nonexistent-folder/x.png", &img, &err) != 0, "writing into a missing folder fails");
    image_free(&img);
    unlink(path);
    unlink(bad);
    if (ok) {
        printf("ok a 37x23 PNG comes back pixel for pixel; a non-PNG is refused (%s)\n", err.message);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

/* ---- checkpoints that do not fit -------------------------------------------------------------------------- */

static int test_refuse_other_network(const TestContext *ctx)
{
    (void)ctx;
    MnistSplit digits = {.count = 1, .rows = 28, .cols = 28}; /* only the sizes are read */
    CnnConfig config = cnn_default_config(0);
    config.conv1_channels = 3;
    config.conv2_channels = 4;
    config.hidden = 5;
    bool ok = true;
    CourseError err;
    struct {
        int classes, image_size;
        const char *expect;
    } cases[] = {{10, 28, NULL}, {5, 28, "has 5 outputs"}, {10, 20, "takes 20x20 images"}};
    for (size_t i = 0; i < COUNT_OF(cases); ++i) {
        config.classes = cases[i].classes;
        config.image_size = cases[i].image_size;
        Cnn net;
        if (cnn_create(&net, config, 1, GEMM_OPENBLAS, &err) != 0) {
            printf("FAIL %s\n", err.message);
            return TEST_FAIL;
        }
        const int rc = explain_check_network(&net, "model.safetensors", &digits, &err);
        if (cases[i].expect == NULL) {
            ok &= check_true(rc == 0, "a 10-class 28x28 network is accepted (%s)", rc ? err.message : "");
        } else {
            ok &= check_true(rc != 0 && strstr(err.message, cases[i].expect) != NULL &&
                                 strstr(err.message, "model.safetensors") != NULL,
                             "refused, naming the file and '%s': %s", cases[i].expect, err.message);
        }
        cnn_destroy(&net);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

static const TestCase CASES[] = {
    {"saliency.p0", test_saliency_p0},
    {"saliency.p1", test_saliency_p1},
    {"gradcam.p0", test_gradcam_p0},
    {"gradcam.p1", test_gradcam_p1},
    {"pca", test_pca},
    {"png.roundtrip", test_png_roundtrip},
    {"refuse.other_network", test_refuse_other_network},
};

int main(int argc, char **argv)
{
    check_set_quiet(false);
    const int rc = test_main(argc, argv, CASES, COUNT_OF(CASES));
    if (temp_dir[0] != '\0') {
        rmdir(temp_dir);
    }
    return rc;
}
