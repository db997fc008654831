/* test_gpu_cnn.cu — Chapter 07's tests of the GPU network (gpu_cnn.h), in the simulator and on a GPU.
 *
 *   build/bin/test_gpu_cnn_sim --list
 *   build/bin/test_gpu_cnn_sim parity.p0 --golden reference/golden
 *
 * (ctest -L ch07 runs every case in three thread orders, and on the GPU where there is one.)
 *   parity.p0 / .p1       five SGD steps from PyTorch's initial weights with PyTorch's batches and dropout
 *                         masks (reference/golden/ch03/net_p*): every loss and every weight afterwards matches
 *                         PyTorch, for cuBLAS and for the direct-convolution kernels;
 *   cpu_equals_gpu        the trainer's real step (batch gathered from the device copy of the data set in the
 *                         epoch's shuffled order, Philox dropout drawn on the device, losses fetched back in
 *                         windows) against chapter 03's CPU network fed by the CPU loader with the same
 *                         Philox masks: same losses, weights and evaluation, up to float rounding. The
 *                         training set has 29 images, so the last batch of the epoch is partial.
 *   graph_equals_launches the step as a CUDA Graph and as separate launches: the same bits;
 *   predict               gpu_cnn_predict on 7 and 129 host images against cnn_forward's logits.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "cuda_check.h"
#include "cuda_layers.h" /* gemm_gpu_shutdown */
#include "gpu_cnn.h"

extern "C" {
#include "check.h"
#include "cnn_parity.h"
#include "testing.h"
#include "train_util.h"
}

static int run_parity(const TestContext *ctx, int padding)
{
    bool ok = true;
    const GpuCnnKernels variants[] = {GPU_CNN_CUBLAS, GPU_CNN_DIRECT};
    for (GpuCnnKernels kernels : variants) {
        Cnn net;
        CourseError err;
        if (cnn_create(&net, cnn_parity_config(padding), CNN_PARITY_BATCH, GEMM_OPENBLAS, &err) != 0) {
            printf("FAIL %s\n", err.message);
            return TEST_FAIL;
        }
        CnnParity parity;
        if (!cnn_parity_load(ctx->golden_dir, padding, &net, &parity)) {
            cnn_destroy(&net);
            return TEST_FAIL;
        }
        GpuCnn *g = gpu_cnn_create(&net, CNN_PARITY_BATCH, kernels, &err);
        if (g == NULL) {
            printf("FAIL %s\n", err.message);
            return TEST_FAIL;
        }
        /* A one-image data set: gpu_cnn_train_step_given needs the loss array that uploading allocates. */
        uint8_t pixel_bytes[28 * 28] = {0}, label_byte = 0;
        MnistSplit tiny = {1, 28, 28, pixel_bytes, &label_byte};
        gpu_cnn_upload_data(g, &tiny, &tiny);
        gpu_cnn_set_parameters(g, &net);
        float losses[CNN_PARITY_STEPS];
        for (int step = 0; step < CNN_PARITY_STEPS; ++step) {
            losses[step] = gpu_cnn_train_step_given(g, cnn_parity_images(&parity, step),
                                                    cnn_parity_labels(&parity, step), cnn_parity_mask1(&parity, step),
                                                    cnn_parity_mask2(&parity, step), CNN_PARITY_BATCH, CNN_PARITY_LR,
                                                    CNN_PARITY_MOMENTUM);
        }
        gpu_cnn_get_parameters(g, &net);
        char what[64];
        snprintf(what, sizeof what, "GPU, %s kernels", gpu_cnn_kernels_name(kernels));
        ok &= cnn_parity_check(&parity, what, losses, &net);
        gpu_cnn_destroy(g);
        cnn_parity_free(&parity);
        cnn_destroy(&net);
    }
    return ok ? TEST_PASS : TEST_FAIL;
}

static int test_parity_p0(const TestContext *ctx) { return run_parity(ctx, 0); }
static int test_parity_p1(const TestContext *ctx) { return run_parity(ctx, 1); }

/* The first `count` images of a split (a view: the arrays stay the split's). */
static MnistSplit first_images(const MnistSplit *split, size_t count)
{
    MnistSplit view = *split;
    view.count = count < split->count ? count : split->count;
    return view;
}

static int test_cpu_equals_gpu(const TestContext *ctx)
{
    MnistSplit train_full, test_full;
    CourseError err;
    if (train_load_mnist(ctx->data_dir, &train_full, &test_full, &err) != 0) {
        printf("FAIL %s\n", err.message);
        return TEST_FAIL;
    }
    const MnistSplit train = first_images(&train_full, 29), test = first_images(&test_full, 37);
    const int batch = 8;
    const uint64_t seed = 11;
    const float lr = 0.05f, momentum = 0.9f; /* a larger step than usual, so that the weights move visibly */
    Cnn cpu, gpu_weights;
    const CnnConfig config = cnn_parity_config(1); /* the narrow network, padding 1 */
    if (cnn_create(&cpu, config, batch, GEMM_OPENBLAS, &err) != 0 ||
        cnn_create(&gpu_weights, config, batch, GEMM_OPENBLAS, &err) != 0) {
        printf("FAIL %s\n", err.message);
        return TEST_FAIL;
    }
    cnn_init(&cpu, seed);
    GpuCnn *g = gpu_cnn_create(&cpu, batch, GPU_CNN_CUBLAS, &err);
    gpu_cnn_upload_data(g, &train, &test);
    gpu_cnn_set_parameters(g, &cpu);
    char why[256];
    gpu_cnn_set_graph(g, true, why, sizeof why); /* as mnist_train: the step as a CUDA Graph */

    /* Two epochs of 4 steps (8 + 8 + 8 + 5 images), as mnist_train runs them. */
    DataLoader loader;
    data_loader_init(&loader, &train, (size_t)batch, true, seed);
    float *x = (float *)xmalloc((size_t)batch * loader.sample_size * sizeof *x); /* (batch, 1, 28, 28) */
    int32_t *labels = (int32_t *)xmalloc((size_t)batch * sizeof *labels); /* (batch) */
    float cpu_losses[8], gpu_losses[8];
    uint64_t step = 0;
    for (int epoch = 0; epoch < 2; ++epoch) {
        data_loader_start_epoch(&loader);
        gpu_cnn_set_order(g, loader.order, train.count);
        size_t slot = 0, first = 0, n;
        while ((n = data_loader_next(&loader, x, labels)) > 0) {
            gpu_cnn_train_step(g, first, (int)n, seed, step, slot, lr, momentum);
            gpu_cnn_philox_masks(&cpu, (int)n, seed, step);
            cpu_losses[step] = cnn_forward_loss(&cpu, x, labels, (int)n, true);
            cnn_backward(&cpu, labels, (int)n);
            cnn_sgd_step(&cpu, lr, momentum);
            first += n;
            ++slot;
            ++step;
        }
        /* The losses of the epoch's 4 steps, fetched as two windows (two tickets in flight), as the trainer. */
        gpu_cnn_losses_fetch(g, 0, 2, 0);
        gpu_cnn_losses_fetch(g, 2, 2, 1);
        const float *window = gpu_cnn_losses_wait(g, 0);
        gpu_losses[4 * epoch + 0] = window[0];
        gpu_losses[4 * epoch + 1] = window[1];
        window = gpu_cnn_losses_wait(g, 1);
        gpu_losses[4 * epoch + 2] = window[2];
        gpu_losses[4 * epoch + 3] = window[3];
    }
    bool ok = check_true(step == 8, "8 steps in 2 epochs of 29 images at batch 8 (got %llu)", (unsigned long long)step);
    /* Same inputs, masks and weights; the GPU's sums run in another order: float rounding only. */
    ok &= check_close("losses of 8 steps, GPU vs CPU", gpu_losses, cpu_losses, 8, NULL, 1, 1e-5, 1e-5);
    gpu_cnn_get_parameters(g, &gpu_weights);
    for (int t = 0; t < CNN_TENSORS; ++t) {
        char label[96];
        snprintf(label, sizeof label, "%s after 8 steps, GPU vs CPU", cpu.tensors[t].name);
        ok &= check_close(label, gpu_weights.tensors[t].value, cpu.tensors[t].value, cpu.tensors[t].count,
                          cpu.tensors[t].shape, cpu.tensors[t].ndim, 2e-6, 1e-5);
        snprintf(label, sizeof label, "momentum of %s, GPU vs CPU", cpu.tensors[t].name);
        ok &= check_close(label, gpu_weights.tensors[t].velocity, cpu.tensors[t].velocity, cpu.tensors[t].count,
                          cpu.tensors[t].shape, cpu.tensors[t].ndim, 2e-5, 1e-4);
    }
    size_t cpu_correct, gpu_correct;
    size_t cpu_confusion[100], gpu_confusion[100];
    const double cpu_loss = cnn_evaluate(&cpu, &test, &cpu_correct, cpu_confusion);
    const double gpu_loss = gpu_cnn_evaluate(g, &gpu_correct, gpu_confusion);
    ok &= check_true(fabs(cpu_loss - gpu_loss) <= 1e-5 * fabs(cpu_loss) + 1e-6,
                     "test loss on 37 images: GPU %.8f, CPU %.8f", gpu_loss, cpu_loss);
    ok &= check_true(cpu_correct == gpu_correct && memcmp(cpu_confusion, gpu_confusion, sizeof cpu_confusion) == 0,
                     "same predictions: GPU %zu/37 correct, CPU %zu/37, same confusion matrix", gpu_correct,
                     cpu_correct);
    free(x);
    free(labels);
    data_loader_free(&loader);
    gpu_cnn_destroy(g);
    cnn_destroy(&cpu);
    cnn_destroy(&gpu_weights);
    mnist_free(&train_full);
    mnist_free(&test_full);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* The training step as a CUDA Graph computes exactly what the separate launches compute: two networks from
 * the same weights, one replaying graphs (a full batch and the epoch's last partial batch), one launching
 * kernel by kernel, on the same batches, with an evaluation between the epochs: the same losses and the
 * same weights, bit for bit. The networks train one after the other, not step for step in turn: each has
 * its own stream, and cuBLAS promises the same bits from run to run only while a single stream is active. */
static int test_graph_equals_launches(const TestContext *ctx)
{
    MnistSplit train_full, test_full;
    CourseError err;
    if (train_load_mnist(ctx->data_dir, &train_full, &test_full, &err) != 0) {
        printf("FAIL %s\n", err.message);
        return TEST_FAIL;
    }
    const MnistSplit train = first_images(&train_full, 27), test = first_images(&test_full, 19);
    const int batch = 7;
    const uint64_t seed = 5;
    const float lr = 0.05f, momentum = 0.9f;
    Cnn host, weights;
    const CnnConfig config = cnn_parity_config(0);
    if (cnn_create(&host, config, batch, GEMM_OPENBLAS, &err) != 0 ||
        cnn_create(&weights, config, batch, GEMM_OPENBLAS, &err) != 0) {
        printf("FAIL %s\n", err.message);
        return TEST_FAIL;
    }
    cnn_init(&host, seed);
    GpuCnn *nets[2];
    char why[256];
    bool ok = true;
    for (int k = 0; k < 2; ++k) {
        nets[k] = gpu_cnn_create(&host, batch, GPU_CNN_CUBLAS, &err);
        gpu_cnn_upload_data(nets[k], &train, &test);
        gpu_cnn_set_parameters(nets[k], &host);
        ok &= check_true(gpu_cnn_set_graph(nets[k], k == 0, why, sizeof why) == (k == 0), "graph %s: %s",
                         k == 0 ? "on" : "off", why);
    }
    enum { STEPS_PER_EPOCH = 4, EPOCHS = 3 }; /* 7 + 7 + 7 + 6 images */
    float losses[2][EPOCHS * STEPS_PER_EPOCH];
    double test_loss[2][EPOCHS];
    size_t correct[2][EPOCHS];
    uint64_t step = 0;
    for (int k = 0; k < 2; ++k) {
        DataLoader loader; /* the same seed: the same orders for both networks */
        data_loader_init(&loader, &train, (size_t)batch, true, seed);
        step = 0;
        for (int epoch = 0; epoch < EPOCHS; ++epoch) {
            data_loader_start_epoch(&loader);
            gpu_cnn_set_order(nets[k], loader.order, train.count);
            for (size_t slot = 0, first = 0; first < train.count; ++slot, ++step) {
                const size_t n = train.count - first < (size_t)batch ? train.count - first : (size_t)batch;
                gpu_cnn_train_step(nets[k], first, (int)n, seed, step, slot, lr, momentum);
                first += n;
            }
            gpu_cnn_losses_fetch(nets[k], 0, STEPS_PER_EPOCH, 0);
            memcpy(&losses[k][epoch * STEPS_PER_EPOCH], gpu_cnn_losses_wait(nets[k], 0),
                   STEPS_PER_EPOCH * sizeof(float));
            test_loss[k][epoch] = gpu_cnn_evaluate(nets[k], &correct[k][epoch], NULL);
        }
        data_loader_free(&loader);
    }
    ok &= check_true(memcmp(losses[0], losses[1], sizeof losses[0]) == 0,
                     "the %d losses: graph = launches, bit for bit", EPOCHS * STEPS_PER_EPOCH);
    ok &= check_true(isfinite(losses[0][0]) && losses[0][0] > 0.0f, "a real loss (%g)", losses[0][0]);
    ok &= check_true(memcmp(test_loss[0], test_loss[1], sizeof test_loss[0]) == 0 &&
                         memcmp(correct[0], correct[1], sizeof correct[0]) == 0,
                     "the evaluations between epochs agree");
    /* conv, pool, dropout, fc layers, loss, backward, SGD, and the cursor: dozens of nodes, not a handful. */
    const size_t nodes = gpu_cnn_graph_nodes(nets[0]);
    ok &= check_true(nodes >= 30, "the step graph has %zu nodes", nodes);
    Cnn *per_net[2] = {&host, &weights};
    for (int k = 0; k < 2; ++k) {
        gpu_cnn_get_parameters(nets[k], per_net[k]);
    }
    for (int t = 0; t < CNN_TENSORS; ++t) {
        const size_t bytes = host.tensors[t].count * sizeof(float);
        ok &= check_true(memcmp(host.tensors[t].value, weights.tensors[t].value, bytes) == 0 &&
                             memcmp(host.tensors[t].velocity, weights.tensors[t].velocity, bytes) == 0,
                         "%s and its momentum after %llu steps: graph = launches, bit for bit", host.tensors[t].name,
                         (unsigned long long)step);
    }
    gpu_cnn_destroy(nets[0]);
    gpu_cnn_destroy(nets[1]);
    cnn_destroy(&host);
    cnn_destroy(&weights);
    mnist_free(&train_full);
    mnist_free(&test_full);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* Inference on the host's images (gpu_cnn_predict, what serving uses) gives chapter 03's evaluation logits:
 * 7 images (fewer than a batch) and 129 (more than the training batch, within the 256 rows the buffers
 * hold), from random weights, against cnn_forward with dropout off. */
static int test_predict(const TestContext *ctx)
{
    MnistSplit train, test;
    CourseError err;
    if (train_load_mnist(ctx->data_dir, &train, &test, &err) != 0) {
        printf("FAIL %s\n", err.message);
        return TEST_FAIL;
    }
    const int counts[] = {7, 129};
    const int most = 129;
    Cnn cpu;
    if (cnn_create(&cpu, cnn_parity_config(1), most, GEMM_OPENBLAS, &err) != 0) {
        printf("FAIL %s\n", err.message);
        return TEST_FAIL;
    }
    cnn_init(&cpu, 23);
    GpuCnn *g = gpu_cnn_create(&cpu, 16, GPU_CNN_CUBLAS, &err);
    if (g == NULL) {
        printf("FAIL %s\n", err.message);
        return TEST_FAIL;
    }
    gpu_cnn_set_parameters(g, &cpu);
    bool ok = check_true(gpu_cnn_max_rows(g) >= most, "the buffers hold %d rows (need %d)", gpu_cnn_max_rows(g), most);
    const size_t pixels = (size_t)train.rows * train.cols, classes = (size_t)cpu.config.classes;
    float *x = (float *)xmalloc((size_t)most * pixels * sizeof *x);              /* (n, 1, 28, 28) */
    float *gpu_logits = (float *)xmalloc((size_t)most * classes * sizeof *gpu_logits); /* (n, classes) */
    for (int c = 0; c < (int)COUNT_OF(counts); ++c) {
        const int n = counts[c];
        /* Test images from an odd offset, normalised as the trainer does. */
        normalize_pixels(test.images + (size_t)31 * pixels, x, (size_t)n * pixels);
        gpu_cnn_predict(g, x, n, gpu_logits);
        const float *cpu_logits = cnn_forward(&cpu, x, n, false);
        char label[64];
        snprintf(label, sizeof label, "logits of %d images, gpu_cnn_predict vs cnn_forward", n);
        const size_t shape[2] = {(size_t)n, classes};
        ok &= check_close(label, gpu_logits, cpu_logits, (size_t)n * classes, shape, 2, 1e-4, 1e-4);
    }
    free(x);
    free(gpu_logits);
    gpu_cnn_destroy(g);
    cnn_destroy(&cpu);
    mnist_free(&train);
    mnist_free(&test);
    return ok ? TEST_PASS : TEST_FAIL;
}

/* OpenMP's runtime (libgomp, linked through chapter 03), declared here rather than through <omp.h>. */
extern "C" void omp_set_num_threads(int threads);

int main(int argc, char **argv)
{
    static const TestCase cases[] = {
        {"parity.p0", test_parity_p0},
        {"parity.p1", test_parity_p1},
        {"cpu_equals_gpu", test_cpu_equals_gpu},
        {"graph_equals_launches", test_graph_equals_launches},
        {"predict", test_predict},
    };
    /* The CPU reference on one thread: these tests compare numbers, and one thread keeps ThreadSanitizer builds
     * of the simulator free of false reports from the uninstrumented OpenMP runtime (as in chapter 06). */
    omp_set_num_threads(1);
    char reason[256];
    if (argc > 1 && strcmp(argv[1], "--list") != 0 && !cuda_device_available(reason, sizeof reason)) {
        return test_skip("%s", reason);
    }
    const int status = test_main(argc, argv, cases, COUNT_OF(cases));
    gemm_gpu_shutdown();
    return status;
}
