/* make_checkpoint.c — for chapter 09's end-to-end tests: write a checkpoint of random weights (PyTorch's
 * default initialisation, chapter 03's cnn_init) of any width, or a file of another architecture, without
 * training anything.
 *
 *   make_checkpoint --out FILE [--conv1 8 --conv2 16 --hidden 32 --padding 0 --classes 10 --image-size 28
 *                   --seed 1]
 *   make_checkpoint --out FILE --mlp      # a two-layer perceptron's weights: not the course's CNN
 */
#include <stdbool.h>
#include <stdio.h>

#include "cnn.h"
#include "fresh_checkpoint.h"
#include "safetensors.h"
#include "testing.h"
#include "train_util.h"

int main(int argc, char **argv)
{
    const char *out = NULL;
    int conv1 = 8, conv2 = 16, hidden = 32, padding = 0, classes = 10, image_size = 28, seed = 1;
    bool mlp = false;
    const FlagSpec flags[] = {
        {"--out", FLAG_STRING, &out, 0, 0, "the checkpoint to write"},
        {"--conv1", FLAG_INT, &conv1, 1, 4096, "conv1's channels"},
        {"--conv2", FLAG_INT, &conv2, 1, 4096, "conv2's channels"},
        {"--hidden", FLAG_INT, &hidden, 1, 4096, "fc1's outputs"},
        {"--padding", FLAG_INT, &padding, 0, 8, "both convolutions' padding"},
        {"--classes", FLAG_INT, &classes, 2, 4096, "fc2's outputs"},
        {"--image-size", FLAG_INT, &image_size, 1, 4096, "the square input's side"},
        {"--seed", FLAG_INT, &seed, 0, 1 << 30, "initialisation seed"},
        {"--mlp", FLAG_SWITCH, &mlp, 0, 0, "write a 784-64-10 MLP's weights instead (another architecture)"},
    };
    CourseError err;
    const int parsed = flags_parse(argc, argv, flags, COUNT_OF(flags), "make_checkpoint",
                                   "Write a checkpoint of random weights for chapter 09's tests.", &err);
    if (parsed == FLAGS_HELP) {
        return 0;
    }
    if (parsed != 0) {
        error_exit(&err);
    }
    if (out == NULL) {
        die("make_checkpoint: --out FILE is required");
    }
    if (mlp) {
        static float w1[64 * 784], b1[64], w2[10 * 64], b2[10]; /* zeros: only the shapes matter */
        const SafetensorsTensorView tensors[] = {{"fc1.weight", 2, {64, 784}, w1},
                                                 {"fc1.bias", 1, {64}, b1},
                                                 {"fc2.weight", 2, {10, 64}, w2},
                                                 {"fc2.bias", 1, {10}, b2}};
        const SafetensorsMeta meta[] = {{"model", "mlp 784-64-10"}};
        if (safetensors_write_f32(out, tensors, COUNT_OF(tensors), meta, COUNT_OF(meta), &err) != 0) {
            error_exit(&err);
        }
        return 0;
    }
    CnnConfig config = cnn_default_config(padding);
    config.conv1_channels = conv1;
    config.conv2_channels = conv2;
    config.hidden = hidden;
    config.classes = classes;
    config.image_size = image_size;
    Cnn net;
    if (cnn_create(&net, config, 1, GEMM_OPENBLAS, &err) != 0) {
        error_exit(&err);
    }
    cnn_init(&net, (uint64_t)seed);
    if (fresh_checkpoint_save(out, &net, &err) != 0) {
        error_exit(&err);
    }
    cnn_destroy(&net);
    return 0;
}
